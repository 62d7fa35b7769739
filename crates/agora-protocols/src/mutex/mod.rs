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
//! and no crash): every node entered as often as it asked.

pub mod central_mutex;
pub mod lamport_mutex;
mod params;
pub mod ricart_agrawala;
pub mod token_ring_mutex;

use agora_core::{
    at_end_not_judged, Checker, EndState, Lifecycle, NodeId, NotJudged, Property, PropertyKind, Protocol,
    Time, Violation,
};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What mutual-exclusion nodes report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MutexObs {
    Requested,
    Entered,
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

/// Judges mutual-exclusion runs.
pub struct MutexChecker {
    /// Nodes expected to enter, and how often each.
    pub expected: Vec<u32>,
    holder: Option<NodeId>,
    entries: Vec<u32>,
    crashed: bool,
}

impl MutexChecker {
    pub fn new(expected: Vec<u32>) -> Self {
        let n = expected.len();
        MutexChecker { expected, holder: None, entries: vec![0; n], crashed: false }
    }
}

impl<P: Protocol<Obs = MutexObs> + ?Sized> Checker<P> for MutexChecker {
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
        at_end_not_judged(&Checker::<P>::properties(self), end.unjudged(true, self.crashed))
    }

    fn finish(&mut self, end: &EndState<'_>) -> Vec<Violation> {
        if !end.network_reliable || self.crashed || !end.quiescent {
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
