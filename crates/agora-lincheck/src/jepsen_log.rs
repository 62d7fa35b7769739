//! Jepsen's log lines: `INFO  jepsen.util - 3	:invoke	:read	nil`, and its `history.txt`
//! (`3	:ok	:read	4`). Tab separated: whatever comes before the process (a timestamp, a
//! level, a logger), the process, the type, the function, the value as EDN, and perhaps an
//! error after. Other lines of the log are skipped, as are the nemesis's events.

use crate::edn;
use crate::error::Error;
use crate::history::{Event, Kind};

/// The history events of a Jepsen log.
pub fn parse_events(text: &str) -> Result<Vec<Event>, Error> {
    let mut events = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() < 4 {
            continue;
        }
        let Some(kind) = fields[1].trim().strip_prefix(':').and_then(Kind::parse) else { continue };
        let Some(process) = fields[0].split_whitespace().last() else { continue };
        let Ok(process) = process.parse::<i64>() else {
            // `:nemesis` and other processes that are not clients.
            continue;
        };
        let f = fields[2].trim();
        let f = f.strip_prefix(':').unwrap_or(f).to_string();
        let mut values = edn::read_all(fields[3]).map_err(|e| match e {
            Error::Parse { msg, .. } => Error::parse(line_no, format!("the value `{}`: {msg}", fields[3])),
            other => other,
        })?;
        let value = match values.len() {
            0 => crate::value::Value::Nil,
            1 => values.remove(0).1.to_value(),
            _ => return Err(Error::parse(line_no, format!("the value `{}` is more than one value", fields[3]))),
        };
        events.push(Event { process, kind, f, key: None, value, time: None, line: line_no });
    }
    if events.is_empty() {
        return Err(Error::Invalid(
            "no history events in the log (expected lines like `INFO  jepsen.util - 3\\t:invoke\\t:read\\tnil`)".into(),
        ));
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    #[test]
    fn reads_log_lines_and_skips_the_rest() {
        let log = "2017-01-01 INFO  jepsen.core - Running test\n\
                   INFO  jepsen.util - 3\t:invoke\t:read\tnil\n\
                   INFO  jepsen.util - :nemesis\t:info\t:start\tnil\n\
                   INFO  jepsen.util - 3\t:ok\t:read\t4\n\
                   INFO  jepsen.util - 1\t:invoke\t:cas\t[1 2]\n\
                   INFO  jepsen.util - 1\t:info\t:cas\t[1 2]\t:timed-out\n\
                   7\t:fail\t:write\t2\n";
        let events = parse_events(log).unwrap();
        assert_eq!(events.len(), 5);
        assert_eq!((events[0].process, events[0].kind, events[0].f.as_str(), events[0].line), (3, Kind::Invoke, "read", 2));
        assert_eq!(events[1].value, Value::Int(4));
        assert_eq!(events[2].value, Value::List(vec![Value::Int(1), Value::Int(2)]));
        assert_eq!((events[4].process, events[4].kind), (7, Kind::Fail));
    }

    #[test]
    fn refuses_a_bad_value_and_a_log_without_events() {
        let e = parse_events("INFO x - 3\t:ok\t:read\t[1 2\n").unwrap_err();
        assert!(matches!(&e, Error::Parse { line: 1, msg } if msg.contains("unclosed")), "{e}");
        assert!(parse_events("hello\nworld\n").unwrap_err().to_string().contains("no history events"));
    }
}
