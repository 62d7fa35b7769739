//! The threads that expand a level's states beside the caller's, started once for a search.
//!
//! A thread started for every batch of states, as the search used to, cost more than it
//! gave: each new thread takes a fresh heap from the allocator, the states it makes outlive
//! it, and on its end its heap's pages are handed back for the next threads to collect
//! again. Two such threads used two fifths more CPU time than one thread for the same
//! search, in about the same time. A pool's threads keep their heaps and their drivers for
//! the whole search.
//!
//! The seen states are read by every thread while a batch is expanded and written by the
//! caller alone between batches, when the threads wait for work: hence the lock, taken once
//! a batch.

use super::{expand, Bounds, Driver, Outcome, Seen, TimerOf, World};
use agora_core::{Setup, Symmetry};
use std::hash::Hash;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::RwLock;
use std::thread::Scope;

/// A level's states to expand, each with its number.
pub(super) type Part<S> = Vec<(Box<World<S>>, u32)>;

/// The threads and the caller's share of the work.
pub(super) struct Pool<'a, S: Setup> {
    setup: &'a S,
    bounds: &'a Bounds,
    sym: Option<&'a Symmetry<S::Node>>,
    seen: &'a RwLock<Seen>,
    /// The caller's driver (it expands the first part of each batch).
    driver: Driver,
    /// Each thread's work, and the outcomes it sends back for it, in the threads' order.
    /// At most 255 threads besides the caller's (a state names its maker in a byte).
    threads: Vec<Thread<S>>,
}

/// A thread of the pool: where its work goes (a share of a batch, and its depth) and where
/// its outcomes come back.
type Thread<S> = (Sender<(Part<S>, usize)>, Receiver<Vec<Outcome<S>>>);

impl<'a, S: Setup> Pool<'a, S>
where
    S::Node: Clone + Hash + Sync,
    TimerOf<S>: Hash,
{
    /// Starts a thread in `scope` for each driver after the first, which stays the caller's.
    /// The threads end once the pool is dropped.
    pub(super) fn start<'scope>(
        scope: &'scope Scope<'scope, '_>,
        setup: &'a S,
        bounds: &'a Bounds,
        sym: Option<&'a Symmetry<S::Node>>,
        seen: &'a RwLock<Seen>,
        drivers: Vec<Driver>,
    ) -> Self
    where
        'a: 'scope,
    {
        let mut drivers = drivers.into_iter();
        let driver = drivers.next().expect("at least one driver");
        let threads = drivers
            .map(|mut d| {
                let (work_tx, work_rx) = channel::<(Part<S>, usize)>();
                let (out_tx, out_rx) = channel();
                scope.spawn(move || {
                    for (part, depth) in work_rx {
                        let out = {
                            let seen = seen.read().unwrap_or_else(|e| e.into_inner());
                            expand(setup, bounds, sym, &mut d, &seen, part, depth)
                        };
                        if out_tx.send(out).is_err() {
                            return; // the search ended
                        }
                    }
                });
                (work_tx, out_rx)
            })
            .collect();
        Pool { setup, bounds, sym, seen, driver, threads }
    }

    /// Ends the threads and gives the caller's driver back, for the work after the search.
    pub(super) fn into_driver(self) -> Driver {
        self.driver
    }

    /// The steps from each state of `batch`, at `depth`, shared among the threads: each
    /// thread takes the states it made, as far as the shares stay even (a state is freed, or
    /// its room reused, where it was made, and may still be in that core's caches). Each
    /// share's outcomes come back in its states' order and their steps', up to its first
    /// violation; [`merge`] puts them in the batch's order. The caller expands the first share.
    pub(super) fn expand(&mut self, batch: Vec<Queued<S>>, depth: usize) -> Vec<(Outcome<S>, u8)> {
        let (setup, bounds, sym) = (self.setup, self.bounds, self.sym);
        let n = self.threads.len() + 1;
        if n == 1 || batch.len() < 2 {
            let seen = self.seen.read().unwrap_or_else(|e| e.into_inner());
            let part = batch.into_iter().map(|(w, number, _)| (w, number)).collect();
            return expand(setup, bounds, sym, &mut self.driver, &seen, part, depth)
                .into_iter()
                .map(|o| (o, 0))
                .collect();
        }
        let mut parts = shares(batch, n);
        let first = std::mem::take(&mut parts[0]);
        for (part, (work, _)) in parts.drain(1..).zip(&self.threads) {
            work.send((part, depth)).expect("an exploring thread does not panic");
        }
        let mut out = Vec::with_capacity(n);
        {
            let seen = self.seen.read().unwrap_or_else(|e| e.into_inner());
            out.push(expand(setup, bounds, sym, &mut self.driver, &seen, first, depth));
        }
        for (_, results) in &self.threads {
            out.push(results.recv().expect("an exploring thread does not panic"));
        }
        merge(out)
    }
}

/// A state queued for expansion: the state, its number, and the thread that made it.
pub(super) type Queued<S> = (Box<World<S>>, u32, u8);

/// Splits `batch` (in its states' order) into `n` shares as even as they can be, each in its
/// states' order, each state in its maker's share where the evenness allows.
fn shares<S: Setup>(batch: Vec<Queued<S>>, n: usize) -> Vec<Part<S>> {
    let most = batch.len().div_ceil(n);
    let mut parts: Vec<Part<S>> = (0..n).map(|_| Vec::with_capacity(most)).collect();
    let mut over = Vec::new();
    for (w, number, maker) in batch {
        let part = &mut parts[maker as usize % n];
        if part.len() < most {
            part.push((w, number));
        } else {
            over.push((w, number));
        }
    }
    for part in &mut parts {
        if over.is_empty() {
            break;
        }
        let room = most - part.len();
        if room > 0 {
            part.extend(over.drain(..room.min(over.len())));
            part.sort_unstable_by_key(|(_, number)| *number);
        }
    }
    parts
}

/// The outcomes of every share, in the order of the states they came from (the order of the
/// search with one thread), each with the share (the thread) it came from. A share stops at
/// its first violation or failure; the outcomes of other shares' later states then come after
/// it, and the search ends before them.
fn merge<S: Setup>(shares: Vec<Vec<Outcome<S>>>) -> Vec<(Outcome<S>, u8)> {
    let total = shares.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(total);
    let mut shares: Vec<_> = shares.into_iter().map(|s| s.into_iter().peekable()).collect();
    loop {
        let next = (0..shares.len()).filter_map(|i| shares[i].peek().map(|o| (o.parent(), i))).min();
        let Some((_, i)) = next else { return out };
        let outcome = shares[i].next().expect("peeked");
        out.push((outcome, i as u8));
    }
}
