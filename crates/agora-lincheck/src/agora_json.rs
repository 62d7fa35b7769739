//! agora's own history format: JSON lines, one event per line, as `agora kv --history FILE`
//! and the other commands write them (see docs/lincheck.md):
//!
//! ```text
//! {"process":1,"type":"invoke","f":"put","key":"k","value":"v","time_ns":1200}
//! {"process":1,"type":"ok","f":"put","key":"k","value":"v","time_ns":3400}
//! {"process":2,"type":"invoke","f":"get","key":"k","value":null,"time_ns":1500}
//! {"process":2,"type":"info","f":"get","key":"k","value":null,"time_ns":9000}
//! ```

use crate::error::Error;
use crate::history::{Event, Kind};
use crate::value::Value;
use serde::{Deserialize, Serialize};

/// One line of an agora history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgoraEvent {
    /// The client that invoked or completed the operation.
    pub process: u64,
    /// `invoke`, `ok`, `fail` (did not take effect) or `info` (may have: a timeout, a crash).
    #[serde(rename = "type")]
    pub kind: Kind,
    /// `get`, `put`, `append`, `cas` (kv) or `read`, `write`, `cas` (register).
    pub f: String,
    /// The key; absent for a single register.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The value written or appended, a cas's `[old, new]`, the value a get returned (`null`
    /// for none); `null` in a get's invocation.
    #[serde(default)]
    pub value: serde_json::Value,
    /// When, in nanoseconds from any fixed origin (informative: order is the lines' order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_ns: Option<u64>,
}

impl AgoraEvent {
    /// The event as one JSON line, without its newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("an event serializes")
    }
}

/// The history events of agora JSON lines; blank lines are skipped.
pub fn parse_events(text: &str) -> Result<Vec<Event>, Error> {
    let mut events = Vec::with_capacity(text.bytes().filter(|&b| b == b'\n').count() + 1);
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let e: AgoraEvent = serde_json::from_str(line).map_err(|e| Error::parse(i + 1, e.to_string()))?;
        let process = i64::try_from(e.process).map_err(|_| Error::parse(i + 1, "process out of range"))?;
        events.push(Event {
            process,
            kind: e.kind,
            f: e.f,
            key: e.key.map(Value::Str),
            value: value(&e.value),
            time: e.time_ns.and_then(|t| i64::try_from(t).ok()),
            line: i + 1,
        });
    }
    Ok(events)
}

/// A JSON value as a history value; an object becomes a list of `[k v]` pairs.
fn value(v: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match v {
        J::Null => Value::Nil,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => n.as_i64().map_or_else(|| Value::Str(n.to_string()), Value::Int),
        J::String(s) => Value::Str(s.clone()),
        J::Array(items) => Value::List(items.iter().map(value).collect()),
        J::Object(m) => {
            Value::List(m.iter().map(|(k, v)| Value::List(vec![Value::Str(k.clone()), value(v)])).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reads_lines() {
        let e = AgoraEvent {
            process: 1,
            kind: Kind::Invoke,
            f: "put".into(),
            key: Some("k".into()),
            value: serde_json::json!("v"),
            time_ns: Some(5),
        };
        let line = e.to_line();
        assert_eq!(line, r#"{"process":1,"type":"invoke","f":"put","key":"k","value":"v","time_ns":5}"#);
        let text = format!("{line}\n\n{}\n", r#"{"process":1,"type":"ok","f":"cas","value":[1,2]}"#);
        let events = parse_events(&text).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].key, Some(Value::Str("k".into())));
        assert_eq!((events[1].line, events[1].key.clone()), (3, None));
        assert_eq!(events[1].value, Value::List(vec![Value::Int(1), Value::Int(2)]));
    }

    #[test]
    fn refuses_bad_lines_with_their_number() {
        let e = parse_events("{\"process\":1,\"type\":\"maybe\",\"f\":\"get\"}").unwrap_err();
        assert!(matches!(&e, Error::Parse { line: 1, .. }), "{e}");
        let e = parse_events("\n{\"process\":1}").unwrap_err();
        assert!(matches!(&e, Error::Parse { line: 2, msg } if msg.contains("type")), "{e}");
    }
}
