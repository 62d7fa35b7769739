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
    at_end_not_judged, Checker, Context, Corrupt, EndState, NodeId, NotJudged, Property, PropertyKind,
    Protocol, Stable, Time, Violation,
};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;

/// What election nodes report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElectionObs {
    /// An election began here.
    Started {
        /// The highest term this node knew when it started the election; the winner announces
        /// a newer one.
        term: u64,
    },
    /// This node now follows `leader`, elected in `term` (the leader reports itself too).
    Leader {
        /// The node now followed (this node itself, when it won).
        leader: NodeId,
        /// The term in which `leader` was announced; the checker requires one leader per term.
        term: u64,
    },
}

/// Heartbeat period, as a fraction of the failure-detection timeout.
pub fn heartbeat(timeout: Duration) -> Duration {
    timeout / 4
}

/// The key under which a node persists the highest term it knows.
const TERM: &str = "term";

/// What a node of either election knows of its leader — the highest term it knows
/// (persisted) and the leader it follows — and its failure detector, which waits for the
/// leader's heartbeats.
#[derive(Clone, Hash)]
pub(super) struct View {
    /// The failure-detection timeout.
    timeout: Duration,
    /// Whether this node notices a silent leader first (it waits one timeout, the others
    /// three, long enough for its whole election) and starts the first election.
    fast: bool,
    /// Whether this node was rebuilt from what it persisted.
    restarted: bool,
    /// The highest term this node knows.
    pub(super) term: u64,
    /// The leader this node follows (itself when it leads).
    pub(super) leader: Option<NodeId>,
}

impl View {
    /// A node's view, with the term it persisted in an earlier life.
    pub(super) fn new(timeout: Duration, fast: bool, stable: &Stable) -> Result<Self, Corrupt> {
        Ok(View {
            timeout,
            fast,
            restarted: !stable.is_empty(),
            term: stable.load(TERM)?.unwrap_or(0),
            leader: None,
        })
    }

    /// The failure-detection timeout.
    pub(super) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether this node starts the first election: the fast node, unless it restarted (a
    /// restarted node listens for a heartbeat first, to learn the term in force).
    pub(super) fn starts(&self) -> bool {
        self.fast && !self.restarted
    }

    /// How long the detector waits for a heartbeat before it suspects the leader, jittered.
    pub(super) fn detect_after(&self, rng: &mut agora_core::Rng) -> Duration {
        let base = if self.fast { self.timeout } else { self.timeout * 3 };
        base + self.timeout.mul_f64(rng.random_range(0.0..0.25))
    }

    /// Waits for the leader's heartbeat: the timer `silent` fires if none comes.
    pub(super) fn listen<P: Protocol + ?Sized>(&self, ctx: &mut Context<'_, P>, silent: P::Timer) {
        let t = self.detect_after(ctx.rng());
        ctx.set_timer(silent, t);
    }

    /// Persists the term, the highest of this node's and `term`.
    pub(super) fn raise<P: Protocol + ?Sized>(&mut self, ctx: &mut Context<'_, P>, term: u64) {
        self.term = self.term.max(term);
        ctx.persist(TERM, &self.term);
    }

    /// Leads in `term` (persisted): the timers in `cancel` cancelled, the leadership reported,
    /// and `op`, the election's operation, ended.
    pub(super) fn lead<P: Protocol<Obs = ElectionObs> + ?Sized>(
        &mut self,
        ctx: &mut Context<'_, P>,
        term: u64,
        cancel: &[P::Timer],
        op: u64,
    ) {
        self.term = term;
        ctx.persist(TERM, &self.term);
        self.leader = Some(ctx.id());
        for timer in cancel {
            ctx.cancel_timer(timer.clone());
        }
        ctx.observe(ElectionObs::Leader { leader: ctx.id(), term });
        ctx.op_end(op);
    }

    /// Follows `leader`, announced in `term`: the term raised and persisted, the timers in
    /// `cancel` cancelled, a new leader reported (its election's operation, `op(term)`, ends),
    /// and the leader's next heartbeat awaited.
    pub(super) fn follow<P: Protocol<Obs = ElectionObs> + ?Sized>(
        &mut self,
        ctx: &mut Context<'_, P>,
        (leader, term): (NodeId, u64),
        cancel: &[P::Timer],
        silent: P::Timer,
        op: impl FnOnce(u64) -> u64,
    ) {
        self.raise(ctx, term);
        for timer in cancel {
            ctx.cancel_timer(timer.clone());
        }
        if self.leader != Some(leader) {
            self.leader = Some(leader);
            ctx.observe(ElectionObs::Leader { leader, term });
            ctx.op_end(op(term));
        }
        self.listen(ctx, silent);
    }
}

/// Judges election runs.
#[derive(Clone)]
pub struct ElectionChecker {
    settle: Time,
    leaders: HashMap<u64, NodeId>,
    following: Vec<Option<NodeId>>,
}

impl ElectionChecker {
    /// A checker of `n` nodes whose failure detectors wait `timeout`.
    pub fn new(n: usize, timeout: Duration) -> Self {
        ElectionChecker {
            settle: Time(timeout.as_nanos() as u64 * 10),
            leaders: HashMap::new(),
            following: vec![None; n],
        }
    }
}

impl<P: Protocol<Obs = ElectionObs> + ?Sized> Checker<P> for ElectionChecker {
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
