//! `gossip`: push gossip (rumour mongering) of one rumour from `--origin`, after Demers et
//! al., *Epidemic Algorithms for Replicated Database Maintenance*, PODC 1987.
//!
//! **Algorithm.** Every round (a quarter of `--timeout-ms`), every node that knows the rumour
//! pushes it to `--fanout` peers chosen at random (from the injected random source), for
//! ⌈log₂N⌉ + 4 rounds after it learnt it, then falls silent.
//!
//! **Properties.** *no-duplication* and *no-creation* (always): a node delivers the rumour
//! once, and only the origin's. *full-coverage* (at end, with no loss and no crash): every
//! node delivered. Coverage is probabilistic: a node is missed only if none of the roughly
//! k·N·(log₂N + 4 − log_{k+1}N) pushes reaches it, a chance of about
//! e^{−k·(log₂N + 4 − log_{k+1}N)} per node — below 10⁻⁶ for k = 3 at N ≤ 1000 — so the
//! check can, in principle, fail on a correct run; the complexity report shows the messages
//! this costs.
//!
//! **Message complexity.** About k·N·(log₂N + 4 − log_{k+1}N) pushes: O(kN log N), against
//! N(N−1) for all-to-all.
//!
//! **Tolerates** loss, duplication, reordering and crashes gracefully: coverage degrades, safety
//! never does (a delivery is persisted, so a restarted node does not deliver again).

use agora_core::{
    at_end_not_judged, Checker, Context, Corrupt, EndState, Message, NodeId, NotJudged, Property,
    PropertyKind, Protocol, Stable, Time, Violation,
};
use rand::seq::index::sample;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The rumour, pushed to a few random peers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Push {
    /// The node that broadcasts.
    pub origin: NodeId,
    /// What it broadcasts.
    pub payload: u64,
}

impl Message for Push {
    fn kind(&self) -> &'static str {
        "PUSH"
    }
}

/// What gossip nodes report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GossipObs {
    /// At start, the origin broadcasts its rumour (reported before it delivers it itself):
    /// the only rumour any node may deliver.
    Broadcast {
        /// The rumour's content.
        payload: u64,
    },
    /// A node learnt the rumour (the origin at start, the others from their first PUSH) and
    /// starts pushing it; persisted before it is reported.
    Delivered {
        /// The rumour's content.
        payload: u64,
    },
    /// At restart: the rumour this node delivered in an earlier life.
    Restored {
        /// The rumour's content.
        payload: u64,
    },
}

/// The delivered rumour, persisted before it is observed.
const DELIVERED: &str = "delivered";

/// The timer of the next gossip round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Round;

/// One gossip node.
pub struct Gossip {
    id: NodeId,
    n: usize,
    origin: NodeId,
    payload: u64,
    fanout: usize,
    period: Duration,
    rounds: u32,
    known: Option<Push>,
    left: u32,
}

impl Gossip {
    /// Node `id`, with the rumour it delivered in an earlier life, if any.
    fn new(setup: &GossipSetup, id: NodeId, stable: &Stable) -> Result<Self, Corrupt> {
        Ok(Gossip {
            id,
            n: setup.nodes,
            origin: setup.origin,
            payload: setup.payload,
            fanout: setup.fanout,
            period: setup.period,
            rounds: setup.rounds(),
            known: stable.load(DELIVERED)?,
            left: 0,
        })
    }

    fn learn(&mut self, ctx: &mut Context<'_, Self>, p: Push) {
        ctx.persist(DELIVERED, &p);
        ctx.observe(GossipObs::Delivered { payload: p.payload });
        ctx.op_end(0);
        self.known = Some(p);
        self.left = self.rounds;
        self.round(ctx);
    }

    fn round(&mut self, ctx: &mut Context<'_, Self>) {
        let Some(p) = self.known.clone() else { return };
        if self.left == 0 || self.n < 2 {
            return;
        }
        self.left -= 1;
        // k distinct peers other than this node.
        let k = self.fanout.min(self.n - 1);
        let me = self.id.index();
        let to: Vec<NodeId> = sample(ctx.rng(), self.n - 1, k)
            .into_iter()
            .map(|i| NodeId(if i >= me { i + 1 } else { i } as u32))
            .collect();
        ctx.multicast(to, p);
        ctx.set_timer(Round, self.period);
    }
}

impl Protocol for Gossip {
    type Msg = Push;
    type Timer = Round;
    type Obs = GossipObs;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        if let Some(p) = &self.known {
            ctx.observe(GossipObs::Restored { payload: p.payload });
            return;
        }
        if self.id == self.origin {
            ctx.observe(GossipObs::Broadcast { payload: self.payload });
            ctx.op_begin(0);
            self.learn(ctx, Push { origin: self.id, payload: self.payload });
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, _: NodeId, p: Push) {
        if self.known.is_none() {
            self.learn(ctx, p);
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, _: Round) {
        self.round(ctx);
    }
}

/// A gossip run.
pub struct GossipSetup {
    /// The cluster size: ids are `0..nodes`.
    pub nodes: usize,
    /// The node that broadcasts.
    pub origin: NodeId,
    /// What it broadcasts.
    pub payload: u64,
    /// Peers told per round.
    pub fanout: usize,
    /// Time between rounds.
    pub period: Duration,
}

impl GossipSetup {
    /// Rounds a node pushes after it learnt the rumour: ⌈log₂N⌉ + 4.
    pub fn rounds(&self) -> u32 {
        (self.nodes.max(2) as f64).log2().ceil() as u32 + 4
    }
}

/// The faults under which the checker's safety properties hold: coverage degrades under faults, safety does not; a lost disk would deliver again.
pub const MODEL: agora_core::FaultModel = agora_core::FaultModel::asynchronous(agora_core::Crashes::Recover);

setup!(GossipSetup => Gossip, "gossip", model: MODEL, checker: |s| GossipChecker {
    broadcast: None,
    delivered: vec![false; s.nodes],
    crashed: false,
});

/// Judges gossip runs.
pub struct GossipChecker {
    broadcast: Option<u64>,
    delivered: Vec<bool>,
    crashed: bool,
}

impl Checker<Gossip> for GossipChecker {
    fn properties(&self) -> Vec<Property> {
        vec![
            Property {
                name: "no-duplication",
                kind: PropertyKind::Always,
                description: "a node delivers at most once",
            },
            Property {
                name: "no-creation",
                kind: PropertyKind::Always,
                description: "only the origin's rumour",
            },
            Property {
                name: "full-coverage",
                kind: PropertyKind::AtEnd,
                description: "with no loss and no crash, every node delivered (probabilistic)",
            },
        ]
    }

    fn observe(&mut self, at: Time, node: NodeId, obs: &GossipObs) -> Result<(), Violation> {
        match *obs {
            GossipObs::Broadcast { payload } => self.broadcast = Some(payload),
            GossipObs::Restored { payload } => {
                self.broadcast.get_or_insert(payload);
                self.delivered[node.index()] = true;
            }
            GossipObs::Delivered { payload } => {
                if self.broadcast != Some(payload) {
                    return Err(Violation::new(
                        "no-creation",
                        Some(node),
                        at,
                        format!("delivered {payload}"),
                    ));
                }
                if std::mem::replace(&mut self.delivered[node.index()], true) {
                    return Err(Violation::new("no-duplication", Some(node), at, "delivered twice"));
                }
            }
        }
        Ok(())
    }

    fn lifecycle(&mut self, _: Time, _: NodeId, event: agora_core::Lifecycle) {
        if event == agora_core::Lifecycle::Crashed {
            self.crashed = true;
        }
    }

    fn not_judged(&self, end: &EndState<'_>) -> Vec<(&'static str, NotJudged)> {
        at_end_not_judged(&self.properties(), end.unjudged(true, self.crashed))
    }

    fn finish(&mut self, end: &EndState<'_>) -> Vec<Violation> {
        if !end.network_reliable || self.crashed || !end.quiescent {
            return Vec::new();
        }
        let missing = self.delivered.iter().filter(|d| !**d).count();
        match self.delivered.iter().position(|d| !d) {
            None => Vec::new(),
            Some(i) => vec![Violation::new(
                "full-coverage",
                Some(NodeId(i as u32)),
                end.at,
                format!("{missing} node(s) never heard the rumour"),
            )],
        }
    }
}
