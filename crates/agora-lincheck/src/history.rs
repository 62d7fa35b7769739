//! The history model: events as a file records them (a process invokes, then its operation
//! completes ok, fails or is ambiguous), and the operations they pair into.
//!
//! Real-time order is the order of the events in the file: an operation precedes another if it
//! completed before the other was invoked. An `:ok` operation took effect once between its
//! invocation and completion; a `:fail` one never did and is dropped; an `:info` one (or one
//! never completed) may or may not have taken effect, at any time after its invocation: it stays
//! open to the end of the history.

use crate::error::Error;
use crate::model::{Func, ModelKind};
use crate::value::Value;
use std::collections::HashMap;

/// What an event records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A process began an operation.
    Invoke,
    /// The operation took effect; a read's event carries the value read.
    Ok,
    /// The operation did not take effect.
    Fail,
    /// Nobody knows whether the operation took effect (a timeout, a crash).
    Info,
}

impl Kind {
    /// Parses `invoke`, `ok`, `fail` or `info`.
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "invoke" => Kind::Invoke,
            "ok" => Kind::Ok,
            "fail" => Kind::Fail,
            "info" => Kind::Info,
            _ => return None,
        })
    }
}

/// One line of a history: a client process's invocation or completion.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// The client process (a nemesis's events are left out by the parsers).
    pub process: i64,
    /// Invocation or completion.
    pub kind: Kind,
    /// The function's name as written (`read`, `put`, ...).
    pub f: String,
    /// The key, when the format names it apart from the value (`:key`, agora's `key`).
    pub key: Option<Value>,
    /// The value: written, appended, `[old new]`, read; `[k v]` in an independent history.
    pub value: Value,
    /// The event's time if recorded (nanoseconds in agora's format; as given in Jepsen's).
    pub time: Option<i64>,
    /// Where it is in the file (1-based line), for messages.
    pub line: usize,
}

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It took effect between invocation and completion.
    Ok,
    /// It may have taken effect, at any time after its invocation.
    Info,
}

/// One operation of a history, its invocation paired with its completion.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Op {
    /// Its index in [`History::ops`].
    pub id: usize,
    /// The client process.
    pub process: i64,
    /// The key it is on (`None`: the history's only register).
    pub key: Option<Value>,
    /// What it does.
    pub func: Func,
    /// Its argument: the value written or appended, a CAS's `[old new]`; nil for a read.
    pub arg: Value,
    /// Its result: the value a read returned; nil otherwise.
    pub out: Value,
    /// Ok, or ambiguous.
    pub outcome: Outcome,
    /// The position of its invocation among the history's events.
    pub call: usize,
    /// The position of its completion; `None` for an ambiguous operation (open to the end).
    pub ret: Option<usize>,
    /// The invocation's line in the file.
    pub call_line: usize,
    /// The completion's line, if it completed (ok, or info: then `ret` is `None`).
    pub ret_line: Option<usize>,
    /// The invocation's time, if recorded.
    pub call_time: Option<i64>,
    /// The completion's time, if recorded.
    pub ret_time: Option<i64>,
}

impl Op {
    /// `r 3`, `w 4`, `cas 1→2`, `app "x"`: what it did, in a few characters.
    pub fn label(&self) -> String {
        match self.func {
            Func::Read => format!("r {}", self.out),
            Func::Cas => match self.arg.pair() {
                Some((a, b)) => format!("cas {a}→{b}"),
                None => format!("cas {}", self.arg),
            },
            f => format!("{} {}", f.short(), self.arg),
        }
    }
}

/// A history ready to check: its ok and ambiguous operations, by invocation.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// The operations, ordered by invocation.
    pub ops: Vec<Op>,
    /// The events read (client events only).
    pub events: usize,
    /// Operations that failed, dropped: they did not happen.
    pub failed: usize,
    /// Ambiguous reads, dropped: a read that may not have happened changes nothing.
    pub ambiguous_reads: usize,
    /// Whether keys came from `[k v]` values (Jepsen's independent histories).
    pub independent: bool,
}

impl History {
    /// Pairs `events` into operations of `model`; a process's invocation is completed by its
    /// next event. Refuses a completion without an invocation, a second invocation before the
    /// first completed, and functions or values the model does not know.
    pub fn build(events: &[Event], model: ModelKind) -> Result<History, Error> {
        let independent = is_independent(events);
        let mut open: HashMap<i64, usize> = HashMap::new();
        let mut pending: Vec<Option<PendingOp>> = Vec::with_capacity(events.len() / 2 + 1);
        let mut h = History { events: events.len(), independent, ..History::default() };
        h.ops.reserve(events.len() / 2 + 1);
        for (pos, e) in events.iter().enumerate() {
            let bad = |msg: String| Error::parse(e.line, msg);
            let func = model.func(&e.f).map_err(bad)?;
            match e.kind {
                Kind::Invoke => {
                    if let Some(&prev) = open.get(&e.process) {
                        let line = pending[prev].as_ref().map_or(0, |p| p.event.line);
                        return Err(bad(format!(
                            "process {} invokes an operation while its operation of line {line} is still open",
                            e.process
                        )));
                    }
                    let (key, value) = split_key(e, independent);
                    let arg = match func {
                        Func::Read => Value::Nil,
                        _ => value,
                    };
                    if func == Func::Cas && arg.pair().is_none() {
                        return Err(bad(format!("a cas takes [old new], not {arg}")));
                    }
                    open.insert(e.process, pending.len());
                    pending.push(Some(PendingOp { event: e, pos, func, key, arg }));
                }
                Kind::Ok | Kind::Fail | Kind::Info => {
                    let Some(i) = open.remove(&e.process) else {
                        return Err(bad(format!(
                            "process {} completes an operation it did not invoke",
                            e.process
                        )));
                    };
                    let p = pending[i].take().expect("an open operation is pending");
                    if p.func != func {
                        return Err(bad(format!(
                            "process {} invoked {} (line {}) but completes {}",
                            e.process, p.event.f, p.event.line, e.f
                        )));
                    }
                    match e.kind {
                        Kind::Fail => h.failed += 1,
                        Kind::Info if func == Func::Read => h.ambiguous_reads += 1,
                        Kind::Info => {
                            let mut op = p.into_op(Outcome::Info, None, Value::Nil);
                            op.ret_line = Some(e.line);
                            h.ops.push(op);
                        }
                        _ => {
                            let out = match func {
                                Func::Read => split_key(e, independent).1,
                                _ => Value::Nil,
                            };
                            h.ops.push(p.into_op(Outcome::Ok, Some((pos, e)), out));
                        }
                    }
                }
            }
        }
        // Never completed: ambiguous, like :info.
        for p in pending.into_iter().flatten() {
            if p.func == Func::Read {
                h.ambiguous_reads += 1;
            } else {
                h.ops.push(p.into_op(Outcome::Info, None, Value::Nil));
            }
        }
        if model == ModelKind::Kv {
            // A store's get of a key never written returns nothing, and many say "" for it.
            for o in &mut h.ops {
                empty_is_nil(&mut o.arg);
                empty_is_nil(&mut o.out);
                if o.func == Func::Cas {
                    if let Value::List(pair) = &mut o.arg {
                        pair.iter_mut().for_each(empty_is_nil);
                    }
                }
            }
        }
        h.ops.sort_by_key(|o| o.call);
        for (i, o) in h.ops.iter_mut().enumerate() {
            o.id = i;
        }
        Ok(h)
    }

    /// The keys in order of first invocation, each with its operations' ids.
    pub fn partitions(&self) -> Vec<(Option<Value>, Vec<usize>)> {
        let mut index: HashMap<&Option<Value>, usize> = HashMap::new();
        let mut parts: Vec<(Option<Value>, Vec<usize>)> = Vec::new();
        for o in &self.ops {
            let i = *index.entry(&o.key).or_insert_with(|| {
                parts.push((o.key.clone(), Vec::new()));
                parts.len() - 1
            });
            parts[i].1.push(o.id);
        }
        parts
    }
}

/// An invocation waiting for its completion.
struct PendingOp<'a> {
    event: &'a Event,
    pos: usize,
    func: Func,
    key: Option<Value>,
    arg: Value,
}

impl PendingOp<'_> {
    fn into_op(self, outcome: Outcome, ret: Option<(usize, &Event)>, out: Value) -> Op {
        Op {
            id: 0,
            process: self.event.process,
            key: self.key,
            func: self.func,
            arg: self.arg,
            out,
            outcome,
            call: self.pos,
            ret: ret.map(|(p, _)| p),
            call_line: self.event.line,
            ret_line: ret.map(|(_, e)| e.line),
            call_time: self.event.time,
            ret_time: ret.and_then(|(_, e)| e.time),
        }
    }
}

/// Jepsen's independent histories carry `[k v]` as every value (a read invokes `[k nil]`, a
/// CAS `[k [old new]]`); a single register's never do (a read invokes `nil`). Decided over the
/// whole history: every invocation's value must be such a pair, and no event names a key apart.
fn is_independent(events: &[Event]) -> bool {
    let mut any = false;
    for e in events {
        if e.key.is_some() {
            return false;
        }
        if e.kind != Kind::Invoke {
            continue;
        }
        let Some((_, v)) = e.value.pair() else { return false };
        if Func::parse(&e.f) == Some(Func::Cas) && v.pair().is_none() {
            return false;
        }
        any = true;
    }
    any
}

/// In the kv model an empty string and no value are the same.
fn empty_is_nil(v: &mut Value) {
    if matches!(v, Value::Str(s) if s.is_empty()) {
        *v = Value::Nil;
    }
}

/// The event's key and value.
fn split_key(e: &Event, independent: bool) -> (Option<Value>, Value) {
    if independent {
        if let Some((k, v)) = e.value.pair() {
            return (Some(k.clone()), v.clone());
        }
    }
    (e.key.clone(), e.value.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(process: i64, kind: Kind, f: &str, value: Value) -> Event {
        Event { process, kind, f: f.into(), key: None, value, time: None, line: 0 }
    }

    #[test]
    fn pairs_invocations_with_completions_and_drops_failures() {
        use Kind::*;
        let events = [
            ev(1, Invoke, "write", Value::Int(1)),
            ev(2, Invoke, "read", Value::Nil),
            ev(1, Ok, "write", Value::Int(1)),
            ev(2, Ok, "read", Value::Int(1)),
            ev(3, Invoke, "cas", Value::List(vec![Value::Int(1), Value::Int(2)])),
            ev(3, Fail, "cas", Value::List(vec![Value::Int(1), Value::Int(2)])),
            ev(4, Invoke, "write", Value::Int(5)),
            ev(4, Info, "write", Value::Int(5)),
            ev(5, Invoke, "write", Value::Int(6)),
        ];
        let h = History::build(&events, ModelKind::CasRegister).unwrap();
        assert_eq!(h.failed, 1);
        assert_eq!(h.ops.len(), 4);
        assert_eq!((h.ops[0].call, h.ops[0].ret), (0, Some(2)));
        assert_eq!(h.ops[1].out, Value::Int(1));
        assert_eq!((h.ops[2].outcome, h.ops[2].ret), (Outcome::Info, None));
        assert_eq!((h.ops[3].outcome, h.ops[3].arg.clone()), (Outcome::Info, Value::Int(6)));
        assert!(!h.independent);
    }

    #[test]
    fn independent_tuples_become_keys() {
        use Kind::*;
        let kv = |k: i64, v: Value| Value::List(vec![Value::Int(k), v]);
        let events = [
            ev(1, Invoke, "read", kv(7, Value::Nil)),
            ev(1, Ok, "read", kv(7, Value::Int(3))),
            ev(2, Invoke, "cas", kv(8, Value::List(vec![Value::Int(1), Value::Int(2)]))),
            ev(2, Ok, "cas", kv(8, Value::List(vec![Value::Int(1), Value::Int(2)]))),
        ];
        let h = History::build(&events, ModelKind::CasRegister).unwrap();
        assert!(h.independent);
        assert_eq!(h.ops[0].key, Some(Value::Int(7)));
        assert_eq!(h.ops[0].out, Value::Int(3));
        assert_eq!(h.ops[1].arg.pair().unwrap().1, &Value::Int(2));
        assert_eq!(h.partitions().len(), 2);
    }

    #[test]
    fn refuses_what_is_not_a_history() {
        use Kind::*;
        let e = History::build(&[ev(1, Ok, "read", Value::Nil)], ModelKind::CasRegister).unwrap_err();
        assert!(e.to_string().contains("did not invoke"), "{e}");
        let twice = [ev(1, Invoke, "read", Value::Nil), ev(1, Invoke, "read", Value::Nil)];
        assert!(History::build(&twice, ModelKind::CasRegister)
            .unwrap_err()
            .to_string()
            .contains("still open"));
        let cas = [ev(1, Invoke, "cas", Value::Int(1))];
        assert!(History::build(&cas, ModelKind::CasRegister).unwrap_err().to_string().contains("[old new]"));
        let other = [ev(1, Invoke, "lock", Value::Nil)];
        assert!(History::build(&other, ModelKind::Kv).unwrap_err().to_string().contains("unknown operation"));
    }
}
