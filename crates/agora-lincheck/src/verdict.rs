//! Checking a whole history: its keys one by one (linearizability is compositional: a history
//! is linearizable when each key's is), on every core, and the verdict — linearizable, not
//! (naming the first key that is not, and where its search stuck), or unknown.

use crate::history::{History, Op, Outcome};
use crate::model::ModelKind;
use crate::search::{search, Found};
use crate::value::Value;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// How many of the operations concurrent with a culprit a verdict lists.
pub const MAX_LISTED: usize = 32;

/// How to check.
#[derive(Clone, Debug)]
pub struct Options {
    /// The most search steps per key before its verdict is unknown; `None` for no limit.
    pub max_steps: Option<u64>,
    /// Threads checking keys at once (at least 1).
    pub threads: usize,
    /// Check every key even after one is found not linearizable (by default the keys still
    /// being checked then are given up: the verdict is known).
    pub all_keys: bool,
}

impl Default for Options {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Options { max_steps: None, threads, all_keys: false }
    }
}

/// The verdict on a history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Every key's operations have a linearization.
    Linearizable,
    /// At least one key's have none.
    NotLinearizable,
    /// No key was found non-linearizable, but the search of at least one gave up.
    Unknown,
}

/// A key whose operations cannot be linearized, and where the search stuck.
#[derive(Clone, Debug, Serialize)]
pub struct Failure {
    /// The key (`null`: the history's only register).
    pub key: Option<Value>,
    /// The key's operations (ok and ambiguous).
    pub operations: usize,
    /// How many of them the longest linearizable prefix found holds.
    pub linearized: usize,
    /// The value after that prefix.
    pub state: Value,
    /// The first operation to complete that could not be linearized after that prefix.
    pub culprit: Op,
    /// Operations left that were invoked before the culprit completed (at most
    /// [`MAX_LISTED`]): no order of them fits.
    pub concurrent: Vec<Op>,
    /// How many there are in all.
    pub concurrent_count: usize,
    /// The last operations of the prefix, in linearization order (at most 8).
    pub prefix_tail: Vec<Op>,
    /// Search steps taken.
    pub steps: u64,
    /// The prefix's operations (ids in the history), in order.
    #[serde(skip)]
    pub prefix: Vec<usize>,
    /// The culprit and every concurrent operation left (ids in the history).
    #[serde(skip)]
    pub stuck: Vec<usize>,
    /// Every operation of the key (ids in the history).
    #[serde(skip)]
    pub key_ops: Vec<usize>,
}

/// A key whose search gave up (out of steps), or was not finished or begun once another key
/// was found not linearizable.
#[derive(Clone, Debug, Serialize)]
pub struct GaveUp {
    /// The key.
    pub key: Option<Value>,
    /// Its operations.
    pub operations: usize,
    /// The steps taken.
    pub steps: u64,
    /// Whether it was left because another key was found not linearizable.
    pub cancelled: bool,
}

/// What checking a history found.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The verdict.
    pub verdict: Verdict,
    /// The model checked against.
    pub model: ModelKind,
    /// Client events read.
    pub events: usize,
    /// Operations checked (ok and ambiguous).
    pub operations: usize,
    /// Of them, ambiguous (`:info` or never completed) writes, CASes and appends.
    pub ambiguous: usize,
    /// Failed operations, dropped.
    pub failed: usize,
    /// Ambiguous reads, dropped.
    pub ambiguous_reads: usize,
    /// Keys checked.
    pub keys: usize,
    /// Keys whose operations cannot be linearized, in order of first invocation; the first
    /// is the verdict's key.
    pub failures: Vec<Failure>,
    /// Keys whose search gave up, or were left once a violation was found.
    pub unknown: Vec<GaveUp>,
    /// Search steps taken by the keys that failed or gave up.
    pub steps: u64,
}

/// Checks `history` key by key.
pub fn check(history: &History, model: ModelKind, opts: &Options) -> Report {
    let parts = history.partitions();
    let results: Vec<Mutex<Option<Found>>> = parts.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let cancel = AtomicBool::new(false);
    // Big keys first would balance better; keys in order keep it simple and deterministic.
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some((_, ids)) = parts.get(i) else { break };
        let found = if cancel.load(Ordering::Relaxed) {
            Found::Unknown { steps: 0, cancelled: true }
        } else {
            let ops: Vec<&Op> = ids.iter().map(|&id| &history.ops[id]).collect();
            search(&ops, opts.max_steps, &cancel)
        };
        if matches!(found, Found::Violation(_)) && !opts.all_keys {
            cancel.store(true, Ordering::Relaxed);
        }
        *results[i].lock().expect("no thread panics holding it") = Some(found);
    };
    let threads = opts.threads.clamp(1, parts.len().max(1));
    if threads == 1 {
        work();
    } else {
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(work);
            }
        });
    }

    let mut report = Report {
        verdict: Verdict::Linearizable,
        model,
        events: history.events,
        operations: history.ops.len(),
        ambiguous: history.ops.iter().filter(|o| o.outcome == Outcome::Info).count(),
        failed: history.failed,
        ambiguous_reads: history.ambiguous_reads,
        keys: parts.len(),
        failures: Vec::new(),
        unknown: Vec::new(),
        steps: 0,
    };
    for ((key, ids), found) in parts.into_iter().zip(results) {
        let found = found.into_inner().expect("no thread panics holding it").expect("every key is searched");
        match found {
            Found::Linearizable => {}
            Found::Unknown { steps, cancelled } => {
                report.steps += steps;
                report.unknown.push(GaveUp { key, operations: ids.len(), steps, cancelled });
            }
            Found::Violation(s) => {
                report.steps += s.steps;
                let op = |i: usize| history.ops[ids[i]].clone();
                let stuck: Vec<usize> =
                    std::iter::once(s.culprit).chain(s.concurrent.iter().copied()).collect();
                let tail = s.prefix.len().saturating_sub(8);
                report.failures.push(Failure {
                    key,
                    operations: ids.len(),
                    linearized: s.prefix.len(),
                    state: s.state,
                    culprit: op(s.culprit),
                    concurrent: s.concurrent.iter().take(MAX_LISTED).map(|&i| op(i)).collect(),
                    concurrent_count: s.concurrent.len(),
                    prefix_tail: s.prefix[tail..].iter().map(|&i| op(i)).collect(),
                    steps: s.steps,
                    prefix: s.prefix.iter().map(|&i| ids[i]).collect(),
                    stuck: stuck.iter().map(|&i| ids[i]).collect(),
                    key_ops: ids.clone(),
                });
            }
        }
    }
    report.verdict = if !report.failures.is_empty() {
        Verdict::NotLinearizable
    } else if !report.unknown.is_empty() {
        Verdict::Unknown
    } else {
        Verdict::Linearizable
    };
    report
}
