//! Jepsen's log lines: `INFO  jepsen.util - 3<TAB>:invoke<TAB>:read<TAB>nil`, and its
//! `history.txt` (`3<TAB>:ok<TAB>:read<TAB>4`). Separated by tabs or spaces: whatever comes
//! before the process (a timestamp, a level, a logger), the process, the type, the function,
//! the value as EDN, and perhaps an error after. Other lines of the log are skipped, as are the
//! nemesis's events.

use crate::edn;
use crate::error::Error;
use crate::history::{Event, Kind};
use crate::value::Value;

/// The history events of a Jepsen log.
pub fn parse_events(text: &str) -> Result<Vec<Event>, Error> {
    let mut events = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let Some(m) = split(line) else { continue };
        let Ok(process) = m.process.parse::<i64>() else {
            // `:nemesis` and other processes that are not clients.
            continue;
        };
        let values = edn::read_all(m.value).map_err(|e| match e {
            Error::Parse { msg, .. } => {
                Error::parse(line_no, format!("the value `{}`: {msg}", m.value.trim()))
            }
            other => other,
        })?;
        // What follows the value, if anything, is an error message (`:timed-out`).
        let value = values.into_iter().next().map_or(Value::Nil, |(_, v)| v.to_value());
        events.push(Event {
            process,
            kind: m.kind,
            f: m.f.to_string(),
            key: None,
            value,
            time: None,
            line: line_no,
        });
    }
    if events.is_empty() {
        return Err(Error::Invalid(
            "no history events in the log (expected lines like `INFO  jepsen.util - 3\t:invoke\t:read\tnil`)"
                .into(),
        ));
    }
    Ok(events)
}

/// Whether `line` is a history event of a Jepsen log.
pub fn is_event_line(line: &str) -> bool {
    split(line).is_some()
}

/// A log line's event, in pieces.
struct Parts<'a> {
    process: &'a str,
    kind: Kind,
    f: &'a str,
    value: &'a str,
}

/// Finds `PROCESS :TYPE :F VALUE` in a line, separated by tabs or spaces, after whatever
/// prefix: the type is the first `:invoke`, `:ok`, `:fail` or `:info` word after another.
fn split(line: &str) -> Option<Parts<'_>> {
    let words = words(line);
    let at = words.iter().skip(1).position(|(_, w)| w.strip_prefix(':').and_then(Kind::parse).is_some())? + 1;
    let kind = Kind::parse(&words[at].1[1..])?;
    let (_, process) = words[at - 1];
    let (f_at, f) = *words.get(at + 1)?;
    let f = f.strip_prefix(':').unwrap_or(f);
    let value = &line[f_at + words[at + 1].1.len()..];
    if !(process.parse::<i64>().is_ok() || process.starts_with(':')) {
        return None;
    }
    Some(Parts { process, kind, f, value })
}

/// The whitespace-separated words of `line`, each with its byte offset.
fn words(line: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in line.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                out.push((s, &line[s..i]));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, &line[s..]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_log_lines_and_skips_the_rest() {
        let log = "2017-01-01 INFO  jepsen.core - Running test\n\
                   INFO  jepsen.util - 3\t:invoke\t:read\tnil\n\
                   INFO  jepsen.util - :nemesis\t:info\t:start\tnil\n\
                   INFO  jepsen.util - 3\t:ok\t:read\t4\n\
                   INFO  jepsen.util - 1\t:invoke\t:cas\t[1 2]\n\
                   INFO  jepsen.util - 1\t:info\t:cas\t[1 2]\t:timed-out\n\
                   7\t:fail\t:write\t2\n\
                   INFO  jepsen.util - 2   :invoke :cas    [4 3]\n";
        let events = parse_events(log).unwrap();
        assert_eq!(events.len(), 6);
        assert_eq!(events[5].value, Value::List(vec![Value::Int(4), Value::Int(3)]));
        assert_eq!(
            (events[0].process, events[0].kind, events[0].f.as_str(), events[0].line),
            (3, Kind::Invoke, "read", 2)
        );
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
