//! Leader election: the `bully` algorithm and Chang–Roberts `ring-election`, with the failure
//! path — the leader heartbeats, followers that miss its heartbeats for a timeout start a new
//! election — and the checker they share.
//!
//! **Properties.** *one-leader-per-term* (always): no two nodes are announced leader in the
//! same term. *highest-live-leader* (at end, with no loss, long enough after the last fault):
//! every live node follows the highest live id.

pub mod bully;
mod params;
pub mod ring_election;

use agora_core::{
    at_end_not_judged, Checker, EndState, NodeId, NotJudged, Property, PropertyKind, Protocol, Time,
    Violation,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;

/// What election nodes report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElectionObs {
    /// An election began here.
    Started { term: u64 },
    /// This node now follows `leader`, elected in `term` (the leader reports itself too).
    Leader { leader: NodeId, term: u64 },
}

/// Heartbeat period, as a fraction of the failure-detection timeout.
pub fn heartbeat(timeout: Duration) -> Duration {
    timeout / 4
}

/// Judges election runs.
pub struct ElectionChecker {
    settle: Time,
    leaders: HashMap<u64, NodeId>,
    following: Vec<Option<NodeId>>,
}

impl ElectionChecker {
    pub fn new(n: usize, timeout: Duration) -> Self {
        ElectionChecker {
            settle: Time(timeout.as_nanos() as u64 * 10),
            leaders: HashMap::new(),
            following: vec![None; n],
        }
    }
}

impl<P: Protocol<Obs = ElectionObs> + ?Sized> Checker<P> for ElectionChecker {
    fn properties(&self) -> Vec<Property> {
        vec![
            Property {
                name: "one-leader-per-term",
                kind: PropertyKind::Always,
                description: "no two leaders are announced in the same term",
            },
            Property {
                name: "highest-live-leader",
                kind: PropertyKind::AtEnd,
                description: "with no loss, once faults stop every live node follows the highest live id",
            },
        ]
    }

    fn observe(&mut self, at: Time, node: NodeId, obs: &ElectionObs) -> Result<(), Violation> {
        if let ElectionObs::Leader { leader, term } = *obs {
            match self.leaders.get(&term) {
                Some(l) if *l != leader => {
                    return Err(Violation::new(
                        "one-leader-per-term",
                        Some(node),
                        at,
                        format!(
                            "follows node {leader} in term {term}, but node {l} was elected in that term"
                        ),
                    ));
                }
                _ => {
                    self.leaders.insert(term, leader);
                }
            }
            self.following[node.index()] = Some(leader);
        }
        Ok(())
    }

    fn lifecycle(&mut self, _: Time, node: NodeId, event: agora_core::Lifecycle) {
        if event == agora_core::Lifecycle::Crashed {
            self.following[node.index()] = None;
        }
    }

    fn not_judged(&self, end: &EndState<'_>) -> Vec<(&'static str, NotJudged)> {
        let settled = end.at.0.saturating_sub(end.last_fault.0) >= self.settle.0;
        let why = if !end.network_reliable {
            NotJudged::Unreliable
        } else if !settled {
            NotJudged::Unsettled
        } else {
            return Vec::new();
        };
        at_end_not_judged(&Checker::<P>::properties(self), why)
    }

    fn finish(&mut self, end: &EndState<'_>) -> Vec<Violation> {
        let settled = end.at.0.saturating_sub(end.last_fault.0) >= self.settle.0;
        if !end.network_reliable || !settled {
            return Vec::new();
        }
        let Some(highest) = (0..end.live.len()).rev().find(|&i| end.live[i]) else {
            return Vec::new();
        };
        let want = NodeId(highest as u32);
        match (0..end.live.len()).find(|&i| end.live[i] && self.following[i] != Some(want)) {
            None => Vec::new(),
            Some(i) => vec![Violation::new(
                "highest-live-leader",
                Some(NodeId(i as u32)),
                end.at,
                format!("follows {:?} at the end, but the highest live node is {want}", self.following[i]),
            )],
        }
    }
}
