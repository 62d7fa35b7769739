//! The search for a linearization of one key's operations: Wing and Gong's algorithm (1993)
//! with Lowe's memoization (2017), iteratively.
//!
//! The history is a doubly linked list of call and return entries in real-time order. The
//! search walks it from the head: at a call it tries to linearize that operation now (the model
//! must allow it in the current state, and the pair (set of linearized operations, new state)
//! must not have been reached before); if so it lifts the operation's call and return out of
//! the list, pushes the step on a stack and starts again from the head. Reaching a return means
//! its operation cannot be put off any longer: the search backtracks, undoing the last step
//! and trying the next call after it. The history is linearizable when every ok operation is
//! lifted; it is not when the search must backtrack from an empty stack.
//!
//! A read that fits the current state is taken at once and alone (it changes nothing, so if
//! anything works, it works with the read first); the refinements are listed in
//! docs/lincheck.md.
//!
//! An ambiguous operation has a call and no return: it may be linearized at any point after
//! its call, or never. Failed operations and ambiguous reads were dropped before: they cannot
//! have changed anything.
//!
//! The cache keys on the set of linearized operations, encoded as the boundaries of its runs
//! over operations ordered ok-first by invocation: the set is nearly always a prefix plus a few
//! operations concurrent with its end, so a key is a handful of integers even on a register of
//! 100,000 operations.

use crate::fxhash::FxBuildHasher;
use crate::history::{Op, Outcome};
use crate::model::{step, Func, Step};
use crate::value::Value;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

/// No entry: the end of the list.
const NONE: u32 = u32::MAX;

/// What the search found for one key.
#[derive(Clone, Debug, PartialEq)]
pub enum Found {
    /// Every operation has a place in one sequential order the model allows.
    Linearizable,
    /// There is none. The longest linearizable prefix the search reached, and where it stuck.
    Violation(Stuck),
    /// The search took more steps than it was allowed, or was cancelled; nothing is known.
    Unknown {
        /// The steps taken.
        steps: u64,
        /// Whether it was cancelled (rather than out of steps).
        cancelled: bool,
    },
}

/// The furthest the search got in a history that cannot be linearized.
#[derive(Clone, Debug, PartialEq)]
pub struct Stuck {
    /// The longest linearizable prefix found: positions in the key's operations, in order.
    pub prefix: Vec<usize>,
    /// The model's state after that prefix.
    pub state: Value,
    /// The ok operation that could not be linearized after it: of the operations left, the
    /// first to complete.
    pub culprit: usize,
    /// The operations left that were invoked before the culprit completed: those the search
    /// tried to place before it, and could not place in any order.
    pub concurrent: Vec<usize>,
    /// The steps taken.
    pub steps: u64,
}

/// One call or return in the list.
#[derive(Clone, Copy)]
struct Entry {
    /// The operation, a position in the key's operations.
    op: u32,
    /// A call, or a return.
    call: bool,
}

/// A step taken: the call entry lifted and the state before it.
struct Frame {
    entry: u32,
    state: Value,
    /// The pass the call was taken in.
    pass: Pass,
    /// Taken as the only move worth trying (a read that fits now): when it fails, so does the
    /// configuration it was taken from.
    forced: bool,
}

/// Which calls a walk of the list tries: ok operations first, ambiguous ones only when no ok
/// one fits (the order does not change what the search finds, only how soon).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    Ok,
    Info,
}

/// How often (in steps) the search looks at its cancel flag.
const CANCEL_EVERY: u64 = 1 << 12;

/// Searches for a linearization of `ops` (one key's operations, ordered by invocation),
/// starting from nil, taking at most `max_steps` steps (attempts to linearize an operation),
/// and giving up soon after `cancel` is set.
pub fn search(ops: &[&Op], max_steps: Option<u64>, cancel: &AtomicBool) -> Found {
    let n = ops.len();
    // Bit positions: ok operations first, then the ambiguous ones, each by invocation.
    let mut bit = vec![0u32; n];
    let mut next_bit = 0u32;
    for outcome in [Outcome::Ok, Outcome::Info] {
        for (i, o) in ops.iter().enumerate() {
            if o.outcome == outcome {
                bit[i] = next_bit;
                next_bit += 1;
            }
        }
    }
    let n_ok = ops.iter().filter(|o| o.outcome == Outcome::Ok).count();
    if n_ok == 0 {
        return Found::Linearizable;
    }
    let twin = twins(ops);
    let impossible = impossible(ops);

    // Entries in real-time order; the list's head is the extra entry at index `len`.
    let mut timed: Vec<(usize, Entry)> = Vec::with_capacity(n + n_ok);
    for (i, o) in ops.iter().enumerate() {
        timed.push((o.call, Entry { op: i as u32, call: true }));
        if let Some(r) = o.ret {
            timed.push((r, Entry { op: i as u32, call: false }));
        }
    }
    timed.sort_by_key(|&(t, e)| (t, !e.call));
    let entries: Vec<Entry> = timed.into_iter().map(|(_, e)| e).collect();
    let len = entries.len() as u32;
    let head = len;
    let mut next: Vec<u32> = (1..=len).map(|i| if i == len { NONE } else { i }).collect();
    next.push(if len == 0 { NONE } else { 0 });
    let mut prev: Vec<u32> = (0..len).map(|i| if i == 0 { head } else { i - 1 }).collect();
    prev.push(NONE);
    let mut ret_of = vec![NONE; n];
    for (i, e) in entries.iter().enumerate() {
        if !e.call {
            ret_of[e.op as usize] = i as u32;
        }
    }

    let unlink = |next: &mut Vec<u32>, prev: &mut Vec<u32>, i: u32| {
        let (p, nx) = (prev[i as usize], next[i as usize]);
        next[p as usize] = nx;
        if nx != NONE {
            prev[nx as usize] = p;
        }
    };
    let relink = |next: &mut Vec<u32>, prev: &mut Vec<u32>, i: u32| {
        let (p, nx) = (prev[i as usize], next[i as usize]);
        next[p as usize] = i;
        if nx != NONE {
            prev[nx as usize] = i;
        }
    };

    let mut linearized = vec![0u64; n.div_ceil(64)];
    let mut cache: HashSet<(Box<[u32]>, Value), FxBuildHasher> = HashSet::default();
    let mut runs_buf = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut state = Value::Nil;
    let mut ok_left = n_ok;
    let mut steps = 0u64;
    // The longest prefix seen, kept up to date by copying only what changed since.
    let mut best: Vec<u32> = Vec::new();
    let mut best_state = Value::Nil;
    let mut low = 0usize;

    let mut entry = next[head as usize];
    let mut pass = Pass::Ok;
    // At a configuration reached anew: look for a read that fits first.
    let mut fresh = true;
    let mut cancel_at = CANCEL_EVERY;
    loop {
        if ok_left == 0 {
            return Found::Linearizable;
        }
        if let Some(m) = max_steps.filter(|&m| steps > m) {
            return Found::Unknown { steps: m, cancelled: false };
        }
        if steps >= cancel_at {
            cancel_at = steps + CANCEL_EVERY;
            if cancel.load(Ordering::Relaxed) {
                return Found::Unknown { steps, cancelled: true };
            }
        }
        let mut take: Option<(u32, Value, bool)> = None;
        let mut back = false;
        if fresh {
            fresh = false;
            // An ok read that fits now (or a CAS from v to v) changes nothing: if the
            // operations left can be linearized, they can with it first. So it is the only
            // move tried here, and if it fails the configuration fails.
            let mut e = next[head as usize];
            while e != NONE && entries[e as usize].call {
                let o = ops[entries[e as usize].op as usize];
                let reads = o.func == Func::Read
                    || (o.func == Func::Cas && o.arg.pair().is_some_and(|(a, b)| a == b));
                if o.outcome == Outcome::Ok && reads && step(&state, o.func, &o.arg, &o.out) != Step::Illegal
                {
                    break;
                }
                e = next[e as usize];
            }
            if e != NONE && entries[e as usize].call {
                steps += 1;
                take = Some((e, state.clone(), true));
            }
        }
        if take.is_none() {
            let e = if entry == NONE { None } else { Some(entries[entry as usize]) };
            match e {
                Some(Entry { op, call: true })
                    if (ops[op as usize].outcome == Outcome::Ok) != (pass == Pass::Ok)
                        || twin[op as usize].is_some_and(|t| !is_set(&linearized, bit[t] as usize)) =>
                {
                    // Not this pass's; or an ambiguous operation whose identical twin, invoked
                    // before it, is not linearized yet: that one goes first.
                    entry = next[entry as usize];
                }
                Some(Entry { op, call: false }) if pass == Pass::Ok && impossible[op as usize] => {
                    // No state allows this operation: nothing before it can help.
                    return Found::Violation(stuck(ops, &best, best_state, steps));
                }
                Some(Entry { call: false, .. }) | None if pass == Pass::Ok => {
                    pass = Pass::Info;
                    entry = next[head as usize];
                }
                Some(Entry { op, call: true }) => {
                    steps += 1;
                    let o = ops[op as usize];
                    // Right after an ambiguous operation, a blind write would undo it: that order
                    // is no better than the one without the ambiguous operation, searched anyway.
                    let after_info = stack
                        .last()
                        .is_some_and(|f| ops[entries[f.entry as usize].op as usize].outcome == Outcome::Info);
                    if after_info && o.func == Func::Write {
                        entry = next[entry as usize];
                        continue;
                    }
                    let new = match step(&state, o.func, &o.arg, &o.out) {
                        Step::Illegal => None,
                        // An ambiguous operation that changes nothing is better kept for later.
                        Step::Same if pass == Pass::Info => None,
                        Step::New(v) if pass == Pass::Info && v == state => None,
                        Step::Same => Some(state.clone()),
                        Step::New(v) => Some(v),
                    };
                    match new {
                        Some(new) => take = Some((entry, new, false)),
                        None => entry = next[entry as usize],
                    }
                }
                // A return whose operation is not linearized yet (or the end): backtrack.
                _ => back = true,
            }
        }
        if let Some((at, new, forced)) = take {
            let op = entries[at as usize].op;
            let b = bit[op as usize] as usize;
            linearized[b / 64] |= 1 << (b % 64);
            runs(&linearized, &mut runs_buf);
            if cache.insert((runs_buf.as_slice().into(), new.clone())) {
                let old = std::mem::replace(&mut state, new);
                stack.push(Frame { entry: at, state: old, pass, forced });
                unlink(&mut next, &mut prev, at);
                if ret_of[op as usize] != NONE {
                    unlink(&mut next, &mut prev, ret_of[op as usize]);
                    ok_left -= 1;
                }
                if stack.len() > best.len() {
                    best.truncate(low);
                    best.extend(stack[low..].iter().map(|f| entries[f.entry as usize].op));
                    best_state = state.clone();
                    low = stack.len();
                }
                entry = next[head as usize];
                pass = Pass::Ok;
                fresh = true;
            } else {
                linearized[b / 64] &= !(1 << (b % 64));
                if forced {
                    // Its configuration was searched before: this one fails with it.
                    back = true;
                } else {
                    entry = next[at as usize];
                }
            }
        }
        if back {
            // Undo steps until one whose configuration still has moves to try.
            loop {
                let Some(frame) = stack.pop() else {
                    return Found::Violation(stuck(ops, &best, best_state, steps));
                };
                low = low.min(stack.len());
                let op = entries[frame.entry as usize].op;
                let b = bit[op as usize] as usize;
                linearized[b / 64] &= !(1 << (b % 64));
                if ret_of[op as usize] != NONE {
                    relink(&mut next, &mut prev, ret_of[op as usize]);
                    ok_left += 1;
                }
                relink(&mut next, &mut prev, frame.entry);
                state = frame.state;
                pass = frame.pass;
                entry = next[frame.entry as usize];
                if !frame.forced {
                    break;
                }
            }
        }
    }
}

fn is_set(words: &[u64], b: usize) -> bool {
    words[b / 64] & (1 << (b % 64)) != 0
}

/// For each ambiguous operation, the last one invoked before it that does exactly the same
/// (function and argument). Any linearization that takes a later one and not its earlier twin
/// can take the twin in its place, so the search takes twins in invocation order only.
fn twins(ops: &[&Op]) -> Vec<Option<usize>> {
    let mut last: HashMap<(Func, &Value), usize> = HashMap::new();
    ops.iter()
        .enumerate()
        .map(|(i, o)| match o.outcome {
            Outcome::Info => last.insert((o.func, &o.arg), i),
            Outcome::Ok => None,
        })
        .collect()
}

/// Ok operations no state can allow: a read of a value nothing writes, a CAS from one. (Not
/// worked out when there are appends, whose values are built.)
fn impossible(ops: &[&Op]) -> Vec<bool> {
    if ops.iter().any(|o| o.func == Func::Append) {
        return vec![false; ops.len()];
    }
    let mut held: HashSet<&Value> = HashSet::from([&Value::Nil]);
    for o in ops {
        match o.func {
            Func::Write => {
                held.insert(&o.arg);
            }
            Func::Cas => {
                if let Some((_, new)) = o.arg.pair() {
                    held.insert(new);
                }
            }
            _ => {}
        }
    }
    ops.iter()
        .map(|o| {
            o.outcome == Outcome::Ok
                && match o.func {
                    Func::Read => !held.contains(&o.out),
                    Func::Cas => o.arg.pair().is_some_and(|(old, _)| !held.contains(old)),
                    _ => false,
                }
        })
        .collect()
}

/// Where the search stuck, from the longest prefix it found.
fn stuck(ops: &[&Op], best: &[u32], state: Value, steps: u64) -> Stuck {
    let mut done = vec![false; ops.len()];
    for &i in best {
        done[i as usize] = true;
    }
    let culprit = (0..ops.len())
        .filter(|&i| !done[i] && ops[i].outcome == Outcome::Ok)
        .min_by_key(|&i| ops[i].ret)
        .expect("a violation leaves an ok operation");
    let until = ops[culprit].ret.unwrap_or(usize::MAX);
    let concurrent = (0..ops.len()).filter(|&i| i != culprit && !done[i] && ops[i].call < until).collect();
    Stuck { prefix: best.iter().map(|&i| i as usize).collect(), state, culprit, concurrent, steps }
}

/// The set `words` as the positions where its bits change, starting from 0.
fn runs(words: &[u64], out: &mut Vec<u32>) {
    out.clear();
    let mut carry = 0u64;
    for (wi, &w) in words.iter().enumerate() {
        let mut flips = w ^ ((w << 1) | carry);
        carry = w >> 63;
        while flips != 0 {
            let b = flips.trailing_zeros();
            out.push(wi as u32 * 64 + b);
            flips &= flips - 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_mark_where_bits_change() {
        let mut out = Vec::new();
        runs(&[0b0111, 0], &mut out);
        assert_eq!(out, [0, 3]);
        runs(&[u64::MAX, 1], &mut out);
        assert_eq!(out, [0, 65]);
        runs(&[1 << 63, 0b10], &mut out);
        assert_eq!(out, [63, 64, 65, 66]);
        runs(&[0, 0], &mut out);
        assert!(out.is_empty());
    }
}
