//! A long history of a simulated atomic register — 10 processes, 50,000 operations with
//! random overlapping intervals, some failing or ambiguous — is linearizable; the same with
//! one read corrupted is not, and the corrupted read is among the operations named.

use agora_lincheck::{check, Event, History, Kind, ModelKind, Options, Value, Verdict};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

const PROCESSES: i64 = 10;
const OPS: usize = 50_000;

/// What a process is doing.
#[derive(Clone)]
enum Busy {
    Idle,
    /// Invoked, not yet taken effect.
    Invoked {
        f: &'static str,
        value: Value,
    },
    /// Taken effect at its linearization point; completes with this event.
    Done {
        kind: Kind,
        f: &'static str,
        value: Value,
    },
}

/// Runs clients against one atomic register: each operation is invoked, takes effect at one
/// instant later and completes later still, interleaved at random with the others'.
fn simulate(seed: u64, ambiguous: f64) -> Vec<Event> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut register = Value::Nil;
    let mut procs = vec![Busy::Idle; PROCESSES as usize];
    let mut events = Vec::new();
    let mut invoked = 0;
    let push = |events: &mut Vec<Event>, p: usize, kind: Kind, f: &str, value: Value| {
        let line = events.len() + 1;
        events.push(Event { process: p as i64, kind, f: f.into(), key: None, value, time: None, line });
    };
    loop {
        let p = rng.random_range(0..procs.len());
        match procs[p].clone() {
            Busy::Idle if invoked < OPS => {
                let (f, value) = match rng.random_range(0..3) {
                    0 => ("read", Value::Nil),
                    1 => ("write", Value::Int(rng.random_range(0..5))),
                    _ => (
                        "cas",
                        Value::List(vec![
                            Value::Int(rng.random_range(0..5)),
                            Value::Int(rng.random_range(0..5)),
                        ]),
                    ),
                };
                push(&mut events, p, Kind::Invoke, f, value.clone());
                procs[p] = Busy::Invoked { f, value };
                invoked += 1;
            }
            Busy::Idle => {
                if procs.iter().all(|b| matches!(b, Busy::Idle)) {
                    return events;
                }
            }
            Busy::Invoked { f, value } => {
                // The linearization point.
                let (mut kind, value) = match f {
                    "read" => (Kind::Ok, register.clone()),
                    "write" => {
                        register = value.clone();
                        (Kind::Ok, value)
                    }
                    _ => {
                        let (old, new) = value.pair().unwrap();
                        if *old == register {
                            register = new.clone();
                            (Kind::Ok, value)
                        } else {
                            (Kind::Fail, value)
                        }
                    }
                };
                // Now and then nobody hears back: the client calls it ambiguous.
                if f != "read" && rng.random_bool(ambiguous) {
                    kind = Kind::Info;
                }
                procs[p] = Busy::Done { kind, f, value };
            }
            Busy::Done { kind, f, value } => {
                push(&mut events, p, kind, f, value);
                procs[p] = Busy::Idle;
            }
        }
    }
}

#[test]
fn a_long_atomic_register_history_is_linearizable_and_one_bad_read_is_found() {
    let events = simulate(7, 0.01);
    let h = History::build(&events, ModelKind::CasRegister).unwrap();
    assert_eq!(h.ops.len() + h.failed + h.ambiguous_reads, OPS);
    assert!(h.ops.iter().any(|o| o.outcome == agora_lincheck::Outcome::Info));
    let r = check(&h, ModelKind::CasRegister, &Options::default());
    assert_eq!(r.verdict, Verdict::Linearizable, "{:#?}", r.failures.first().map(|f| &f.culprit));

    // Corrupt one read in the middle: it returns a value never written.
    let mut bad = events.clone();
    let at = (bad.len() / 2..).find(|&i| bad[i].kind == Kind::Ok && bad[i].f == "read").unwrap();
    bad[at].value = Value::Int(-1);
    let h = History::build(&bad, ModelKind::CasRegister).unwrap();
    let r = check(&h, ModelKind::CasRegister, &Options::default());
    assert_eq!(r.verdict, Verdict::NotLinearizable);
    let f = &r.failures[0];
    let named: Vec<_> = std::iter::once(&f.culprit).chain(&f.concurrent).map(|o| o.ret_line).collect();
    assert!(named.contains(&Some(at + 1)), "the corrupted read (line {}) among {named:?}", at + 1);
    assert!(f.linearized > 10_000, "the prefix reaches the corruption: {}", f.linearized);
}

#[test]
fn a_stale_read_deep_in_a_long_history_is_found() {
    // No ambiguous operations here: one left open could explain a stale value.
    let mut events = simulate(11, 0.0);
    // A read in the middle that returns a value written before, but not the latest: chosen
    // where no write or CAS overlaps it, so it is stale for certain.
    let h = History::build(&events, ModelKind::CasRegister).unwrap();
    let at = h
        .ops
        .iter()
        .skip(h.ops.len() / 2)
        .find(|r| {
            r.func == agora_lincheck::Func::Read && r.out == Value::Int(1) && {
                let (a, b) = (r.call, r.ret.unwrap());
                // Nothing touching the register overlaps it or just precedes it.
                h.ops.iter().all(|o| {
                    o.func == agora_lincheck::Func::Read || o.ret.is_some_and(|x| x < a) || o.call > b
                })
            }
        })
        .map(|r| r.ret_line.unwrap() - 1)
        .expect("a quiet read of 1");
    events[at].value = Value::Int(3);
    let h = History::build(&events, ModelKind::CasRegister).unwrap();
    let r = check(&h, ModelKind::CasRegister, &Options::default());
    assert_eq!(r.verdict, Verdict::NotLinearizable);
}
