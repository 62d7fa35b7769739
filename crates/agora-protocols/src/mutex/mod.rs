//! Mutual exclusion: `central-mutex`, `lamport-mutex`, `ricart-agrawala`,
//! `token-ring-mutex`, sharing one workload and one checker.
//!
//! **Workload.** Every node (every client, for the central algorithm) enters the critical
//! section `--requests` times: it thinks for a random 0–5 ms, requests, holds the section for
//! 1 ms once it enters, and releases it. Each entry is an operation, from request to entry, so
//! the operation latency is the waiting time and msgs-per-op the messages per entry.
//!
//! **Properties.** *mutual-exclusion* (always): never two nodes in the critical section at
//! once (a node that crashes inside leaves it). *every-request-served* (at end, with no loss
//! and no crash; over reliable links, with loss too once partitions have healed): every node
//! entered as often as it asked.

pub mod central_mutex;
pub mod lamport_mutex;
mod params;
pub mod ricart_agrawala;
pub mod token_ring_mutex;

use agora_core::{
    at_end_not_judged, Checker, Context, EndState, Lifecycle, NodeId, NotJudged, Property, PropertyKind,
    Protocol, Time, Violation,
};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What mutual-exclusion nodes report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MutexObs {
    /// The node asked for the critical section; its operation begins.
    Requested,
    /// The node entered the critical section; its operation ends. The checker requires that
    /// no other node is inside.
    Entered,
    /// The node left the critical section, after holding it for [`HOLD`].
    Exited,
}

/// How long a node holds the critical section.
pub const HOLD: Duration = Duration::from_millis(1);

/// A random think time before the next request: 0–5 ms.
pub fn think(rng: &mut agora_core::Rng) -> Duration {
    Duration::from_micros(rng.random_range(0..5_000))
}

/// The operation id of a node's k-th entry.
pub fn op(node: NodeId, k: u32) -> u64 {
    (node.0 as u64) << 32 | k as u64
}

/// The timers of every mutual-exclusion node: the workload's two waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Thinking is over: request the critical section.
    Think,
    /// The critical section has been held long enough: release it.
    Hold,
}

/// One node's side of the workload every algorithm runs: think, request, enter, hold, exit,
/// as many times as it was asked to. The algorithm decides when the node may enter; the
/// workload reports the steps, times the operations and sets the timers, the same way for all.
#[derive(Clone, Debug, Hash)]
pub struct Workload {
    /// Entries still to make.
    left: u32,
    /// Entries made: the current request's number.
    done: u32,
    /// Whether the node is in the critical section.
    inside: bool,
}

impl Workload {
    /// A workload of `requests` entries.
    pub fn new(requests: u32) -> Self {
        Workload { left: requests, done: 0, inside: false }
    }

    /// The number of the current (or next) request: the entries made so far.
    pub fn done(&self) -> u32 {
        self.done
    }

    /// Whether the node is in the critical section.
    pub fn inside(&self) -> bool {
        self.inside
    }

    /// Thinks before the next request, if one is left.
    pub fn think<P: Protocol<Timer = Timer> + ?Sized>(&self, ctx: &mut Context<'_, P>) {
        if self.left > 0 {
            let t = think(ctx.rng());
            ctx.set_timer(Timer::Think, t);
        }
    }

    /// The node requests the critical section: its operation begins.
    pub fn request<P: Protocol<Obs = MutexObs> + ?Sized>(&self, ctx: &mut Context<'_, P>) {
        ctx.observe(MutexObs::Requested);
        ctx.op_begin(op(ctx.id(), self.done));
    }

    /// The node enters the critical section: its operation ends, and it holds the section
    /// for [`HOLD`].
    pub fn enter<P: Protocol<Obs = MutexObs, Timer = Timer> + ?Sized>(&mut self, ctx: &mut Context<'_, P>) {
        self.inside = true;
        ctx.observe(MutexObs::Entered);
        ctx.op_end(op(ctx.id(), self.done));
        ctx.set_timer(Timer::Hold, HOLD);
    }

    /// The node leaves the critical section (the algorithm then tells whom it must).
    pub fn exit<P: Protocol<Obs = MutexObs> + ?Sized>(&mut self, ctx: &mut Context<'_, P>) {
        self.inside = false;
        ctx.observe(MutexObs::Exited);
    }

    /// The entry is over: counted, and the node thinks before its next request, if any.
    pub fn next<P: Protocol<Timer = Timer> + ?Sized>(&mut self, ctx: &mut Context<'_, P>) {
        self.done += 1;
        self.left -= 1;
        self.think(ctx);
    }
}

/// Judges mutual-exclusion runs.
#[derive(Clone)]
pub struct MutexChecker {
    /// Nodes expected to enter, and how often each.
    pub expected: Vec<u32>,
    holder: Option<NodeId>,
    entries: Vec<u32>,
    crashed: bool,
    /// The algorithm runs over reliable links ([`crate::reliable`]): lost messages are sent
    /// again, so whether every request was served is judged under loss too, once partitions
    /// have healed.
    reliable_links: bool,
}

impl MutexChecker {
    /// A checker of nodes that each enter `expected[node]` times.
    pub fn new(expected: Vec<u32>) -> Self {
        let n = expected.len();
        MutexChecker { expected, holder: None, entries: vec![0; n], crashed: false, reliable_links: false }
    }

    /// The same checker, for an algorithm run over `links`.
    pub fn over(mut self, links: crate::reliable::Links) -> Self {
        self.reliable_links = links == crate::reliable::Links::Reliable;
        self
    }

    /// Why `every-request-served` is not judged at `end`, if it is not. It says that entries
    /// will be observed, so it is judged once nothing more will be ([`EndState::observed_all`]):
    /// at a quiet end, and in a cycle the explorer finds a run going round for ever (an
    /// algorithm over the link layer, whose retransmissions never let it go quiet).
    fn unjudged(&self, end: &EndState<'_>) -> Option<NotJudged> {
        if !end.observed_all {
            Some(NotJudged::Unended)
        } else if self.reliable_links && !end.network_reliable {
            if end.partitioned {
                Some(NotJudged::Partitioned)
            } else if self.crashed {
                Some(NotJudged::Crashed)
            } else {
                None
            }
        } else {
            end.unjudged_once_observed(true, self.crashed)
        }
    }

    /// A checker of `nodes` nodes that each enter `requests` times.
    pub fn each(nodes: usize, requests: u32) -> Self {
        MutexChecker::new(vec![requests; nodes])
    }
}

impl<P: Protocol<Obs = MutexObs> + ?Sized> Checker<P> for MutexChecker {
    fn fork(&self) -> Option<Box<dyn Checker<P>>> {
        Some(Box::new(self.clone()))
    }
    fn fork_into(&self, into: &mut Box<dyn Checker<P>>) -> bool {
        agora_core::check::fork_into(self, into)
    }
    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        Some(self)
    }
    fn properties(&self) -> Vec<Property> {
        vec![
            Property {
                name: "mutual-exclusion",
                kind: PropertyKind::Always,
                description: "never two nodes in the critical section at once",
            },
            Property {
                name: "every-request-served",
                kind: PropertyKind::AtEnd,
                description: "with no loss and no crash, every node entered as often as it asked",
            },
        ]
    }

    fn observe(&mut self, at: Time, node: NodeId, obs: &MutexObs) -> Result<(), Violation> {
        match obs {
            MutexObs::Requested => Ok(()),
            MutexObs::Entered => {
                if let Some(h) = self.holder {
                    return Err(Violation::new(
                        "mutual-exclusion",
                        Some(node),
                        at,
                        format!("entered the critical section while node {h} is in it"),
                    ));
                }
                self.holder = Some(node);
                self.entries[node.index()] += 1;
                Ok(())
            }
            MutexObs::Exited => {
                if self.holder == Some(node) {
                    self.holder = None;
                }
                Ok(())
            }
        }
    }

    fn lifecycle(&mut self, _: Time, node: NodeId, event: Lifecycle) {
        if event == Lifecycle::Crashed {
            self.crashed = true;
            if self.holder == Some(node) {
                self.holder = None;
            }
        }
    }

    fn not_judged(&self, end: &EndState<'_>) -> Vec<(&'static str, NotJudged)> {
        at_end_not_judged(&Checker::<P>::properties(self), self.unjudged(end))
    }

    fn finish(&mut self, end: &EndState<'_>) -> Vec<Violation> {
        if self.unjudged(end).is_some() {
            return Vec::new();
        }
        match (0..self.entries.len()).find(|&i| self.entries[i] < self.expected[i]) {
            None => Vec::new(),
            Some(i) => vec![Violation::new(
                "every-request-served",
                Some(NodeId(i as u32)),
                end.at,
                format!("entered {} of {} times", self.entries[i], self.expected[i]),
            )],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{MutexChecker, MutexObs};
    use crate::mutex::lamport_mutex::LamportMutex;
    use crate::reliable::{Links, Reliable};
    use agora_core::{Checker, EndState, NodeId, NotJudged, Time};

    type Lamport = Reliable<LamportMutex>;

    /// The end of a run without a fault: quiet or not, and whether anything more will be observed.
    fn end<'a>(live: &'a [bool], quiescent: bool, observed_all: bool) -> EndState<'a> {
        EndState {
            at: Time::from_millis_f64(10.0),
            live,
            crashed_ever: &[false, false],
            network_reliable: true,
            quiescent,
            observed_all,
            last_fault: Time::ZERO,
            partitioned: false,
            timely: true,
        }
    }

    #[test]
    fn every_request_served_is_judged_once_nothing_more_will_be_observed_quiet_or_not() {
        // Node 0 entered once; node 1 asked and never did.
        let mut c = MutexChecker::each(2, 1).over(Links::Reliable);
        Checker::<Lamport>::observe(&mut c, Time::ZERO, NodeId(0), &MutexObs::Entered).unwrap();
        Checker::<Lamport>::observe(&mut c, Time::ZERO, NodeId(0), &MutexObs::Exited).unwrap();
        let live = [true, true];
        // A run stopped by a limit may yet serve it: not judged.
        let stopped = end(&live, false, false);
        assert_eq!(
            Checker::<Lamport>::not_judged(&c, &stopped),
            vec![("every-request-served", NotJudged::Unended)]
        );
        assert!(Checker::<Lamport>::finish(&mut c.clone(), &stopped).is_empty());
        // A run that goes round a fair cycle for ever observing nothing never will: judged,
        // as at a quiet end.
        for (quiescent, observed_all) in [(false, true), (true, true)] {
            let end = end(&live, quiescent, observed_all);
            assert!(Checker::<Lamport>::not_judged(&c, &end).is_empty());
            let v = Checker::<Lamport>::finish(&mut c.clone(), &end);
            assert_eq!(v.len(), 1, "{v:?}");
            assert_eq!((v[0].property, v[0].node), ("every-request-served", Some(NodeId(1))));
        }
    }
}
