//! `flood`: flooding broadcast of one rumour from an origin over a topology.
//!
//! **Algorithm.** The origin delivers its rumour and sends it to every neighbour. A node that
//! receives the rumour for the first time delivers it, persists that it did, and forwards it to
//! every neighbour except the one it came from; later copies are ignored.
//!
//! **Properties.** *no-duplication* (always): a node delivers the rumour at most once, even
//! across restarts (the delivery is persisted before it is observed, and a node rebuilt from
//! storage reports the rumour it already has instead of delivering it again). *no-creation* (always):
//! a node delivers only a rumour the origin broadcast. *reachable-delivered* (at end, when no
//! message could be lost): every node reachable from the origin through nodes that never
//! crashed has delivered.
//!
//! **Message complexity.** Every node forwards once to all neighbours but the sender: the
//! origin sends deg(origin) messages and every other reached node deg(v) − 1, so
//! 2|E| − (N − 1) messages on a connected graph with N nodes and |E| edges; N(N−1)−(N−1) =
//! (N−1)² on a complete graph and N(K−1)+1 on a K-regular one (Lynch, *Distributed
//! Algorithms*, 1996, §4.1; Attiya & Welch, *Distributed Computing*, 2004, §2.1).
//!
//! **Tolerates** duplication, reordering, crashes of nodes that are not cut vertices, and loss
//! that leaves another path. It does not retransmit: a lost message on a cut edge, or a
//! partition, leaves nodes without the rumour.
//!
//! Two variants are deliberately broken so that users can watch the checker catch them:
//! `no-dedup` delivers every copy it receives (breaks no-duplication) and `no-relay` never
//! forwards what it receives (breaks reachable-delivered).

use crate::topology::Graph;
use agora_core::{
    at_end_not_judged, Checker, Context, Corrupt, EndState, Message, NodeId, NotJudged, Property,
    PropertyKind, Protocol, Stable, Time, Violation,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The rumour.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rumor {
    /// The node that broadcasts.
    pub origin: NodeId,
    /// What it broadcasts.
    pub payload: u64,
}

impl Message for Rumor {
    fn kind(&self) -> &'static str {
        "RUMOR"
    }
}

/// What a flood node reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FloodObs {
    /// At start, the origin broadcasts its rumour (reported before it delivers it itself):
    /// the only rumour any node may deliver.
    Broadcast {
        /// The rumour's content.
        payload: u64,
    },
    /// A node delivered a rumour (the origin its own, the others the first copy received);
    /// persisted before it is reported.
    Delivered {
        /// The node that broadcast the rumour.
        origin: NodeId,
        /// The rumour's content.
        payload: u64,
    },
    /// At start, a node rebuilt from storage reports the rumour it delivered in an earlier
    /// life (before a crash, or in an earlier run on the same data).
    Restored {
        /// The node that broadcast the rumour.
        origin: NodeId,
        /// The rumour's content.
        payload: u64,
    },
}

/// Correct or deliberately broken behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// Delivers the first copy only and forwards it: the algorithm as described above.
    Correct,
    /// Delivers every copy it receives: violates no-duplication.
    NoDedup,
    /// Only the origin sends: violates reachable-delivered beyond its neighbours.
    NoRelay,
}

/// The persisted key recording that this node delivered.
const DELIVERED: &str = "delivered";
/// The flood is the run's only operation.
const OP: u64 = 0;

/// One flood node.
#[derive(Clone)]
pub struct Flood {
    id: NodeId,
    origin: NodeId,
    payload: u64,
    graph: Arc<Graph>,
    /// The rumour this node delivered, if any (persisted before it is observed).
    delivered: Option<Rumor>,
    variant: Variant,
}

/// A node's state for the explorer: only the rumour it delivered changes; the rest is the
/// setup's, the same in every state.
impl std::hash::Hash for Flood {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.delivered.hash(state);
    }
}

impl Flood {
    /// Node `id` of the flood, with the rumour it delivered in an earlier life, if any.
    fn new(setup: &FloodSetup, id: NodeId, stable: &Stable) -> Result<Self, Corrupt> {
        Ok(Flood {
            id,
            origin: setup.origin,
            payload: setup.payload,
            graph: setup.graph.clone(),
            delivered: stable.load::<Rumor>(DELIVERED)?,
            variant: setup.variant,
        })
    }

    fn deliver(&mut self, ctx: &mut Context<'_, Self>, from: Option<NodeId>, rumor: &Rumor) {
        let first = self.delivered.is_none();
        if first || self.variant == Variant::NoDedup {
            self.delivered = Some(rumor.clone());
            ctx.persist(DELIVERED, rumor);
            ctx.observe(FloodObs::Delivered { origin: rumor.origin, payload: rumor.payload });
            ctx.op_end(OP);
        }
        if first && (from.is_none() || self.variant != Variant::NoRelay) {
            let to: Vec<NodeId> = self.graph.neighbours(self.id).filter(|n| Some(*n) != from).collect();
            if !to.is_empty() {
                ctx.multicast(to, rumor.clone());
            }
        }
    }
}

impl Protocol for Flood {
    type Msg = Rumor;
    type Timer = ();
    type Obs = FloodObs;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        if let Some(r) = &self.delivered {
            ctx.observe(FloodObs::Restored { origin: r.origin, payload: r.payload });
            return;
        }
        if self.id == self.origin {
            ctx.observe(FloodObs::Broadcast { payload: self.payload });
            ctx.op_begin(OP);
            let rumor = Rumor { origin: self.id, payload: self.payload };
            self.deliver(ctx, None, &rumor);
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: Rumor) {
        self.deliver(ctx, Some(from), &msg);
    }

    fn on_timer(&mut self, _: &mut Context<'_, Self>, _: ()) {}
}

/// A flood run: the topology, the origin and the variant.
pub struct FloodSetup {
    /// The topology.
    pub graph: Arc<Graph>,
    /// The node that broadcasts.
    pub origin: NodeId,
    /// What it broadcasts.
    pub payload: u64,
    /// Correct, or deliberately broken.
    pub variant: Variant,
}

/// The faults under which the checker's safety properties hold: duplicates are ignored; loss and crashes only reduce coverage.
pub const MODEL: agora_core::FaultModel = agora_core::FaultModel::asynchronous(agora_core::Crashes::Stop);

setup!(FloodSetup => Flood, "flood", nodes: |s| s.graph.nodes(), model: MODEL, checker: |s| FloodChecker {
    graph: s.graph.clone(),
    origin: s.origin,
    broadcast: None,
    delivered: vec![false; s.graph.nodes()],
}, symmetry: |s| s.interchangeable());

impl FloodSetup {
    /// On a complete graph every node but the origin has the same place, and a node's
    /// behaviour never compares ids but the origin's (which messages and observations name):
    /// those nodes are interchangeable. On another topology, none are.
    fn interchangeable(&self) -> Option<agora_core::Symmetry<Flood>> {
        if !matches!(*self.graph, Graph::Complete { .. }) {
            return None;
        }
        let others: Vec<NodeId> =
            (0..self.graph.nodes() as u32).map(NodeId).filter(|n| *n != self.origin).collect();
        Some(agora_core::Symmetry {
            classes: vec![others],
            rename: |node, to| Flood { id: to[node.id.index()], ..node.clone() },
            names: None,
        })
    }
}

/// Judges flood runs.
#[derive(Clone)]
pub struct FloodChecker {
    graph: Arc<Graph>,
    origin: NodeId,
    broadcast: Option<u64>,
    delivered: Vec<bool>,
}

impl Checker<Flood> for FloodChecker {
    fn fork(&self) -> Option<Box<dyn Checker<Flood>>> {
        Some(Box::new(self.clone()))
    }
    fn fork_into(&self, into: &mut Box<dyn Checker<Flood>>) -> bool {
        agora_core::check::fork_into(self, into)
    }
    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        Some(self)
    }

    fn properties(&self) -> Vec<Property> {
        vec![
            Property {
                name: "no-duplication",
                kind: PropertyKind::Always,
                description: "a node delivers the rumour at most once",
            },
            Property {
                name: "no-creation",
                kind: PropertyKind::Always,
                description: "only the origin's broadcast rumour is delivered",
            },
            Property {
                name: "reachable-delivered",
                kind: PropertyKind::AtEnd,
                description:
                    "with no loss, every node reachable from the origin through never-crashed nodes delivered",
            },
        ]
    }

    fn observe(&mut self, at: Time, node: NodeId, obs: &FloodObs) -> Result<(), Violation> {
        match *obs {
            FloodObs::Broadcast { payload } => {
                self.broadcast = Some(payload);
                Ok(())
            }
            FloodObs::Restored { origin, payload } => {
                // Delivered in an earlier life: the broadcast happened then too.
                if origin == self.origin {
                    self.broadcast.get_or_insert(payload);
                    self.delivered[node.index()] = true;
                }
                Ok(())
            }
            FloodObs::Delivered { origin, payload } => {
                if origin != self.origin || self.broadcast != Some(payload) {
                    return Err(Violation::new(
                        "no-creation",
                        Some(node),
                        at,
                        format!(
                            "delivered rumour {payload} from {origin}, which node {} never broadcast",
                            self.origin
                        ),
                    ));
                }
                if std::mem::replace(&mut self.delivered[node.index()], true) {
                    return Err(Violation::new(
                        "no-duplication",
                        Some(node),
                        at,
                        "delivered the rumour a second time",
                    ));
                }
                Ok(())
            }
        }
    }

    fn not_judged(&self, end: &EndState<'_>) -> Vec<(&'static str, NotJudged)> {
        at_end_not_judged(&self.properties(), end.unjudged_once_observed(false, false))
    }

    fn finish(&mut self, end: &EndState<'_>) -> Vec<Violation> {
        // Every node delivers, it says: judged once nothing more will be observed, quiet or
        // going round a cycle for ever (`EndState::observed_all`).
        if end.unjudged_once_observed(false, false).is_some() {
            return Vec::new();
        }
        let reach = self.graph.reachable(self.origin, |n| end.never_crashed(n));
        let missing: Vec<usize> = (0..reach.len()).filter(|&i| reach[i] && !self.delivered[i]).collect();
        match missing.first() {
            None => Vec::new(),
            Some(&first) => vec![Violation::new(
                "reachable-delivered",
                Some(NodeId(first as u32)),
                end.at,
                format!("{} reachable node(s) never delivered (first: node {first})", missing.len()),
            )],
        }
    }
}

impl crate::registry::FromParams for FloodSetup {
    const SPECS: &'static [crate::params::Spec] = {
        use crate::params::{count, text, Spec, ORIGIN, TOPOLOGY, VARIANT};
        &[Spec::new(&TOPOLOGY, text("complete")), Spec::new(&ORIGIN, count(0)), Spec::optional(&VARIANT)]
    };
    fn from_params(p: &crate::params::Resolved) -> Result<Self, crate::params::ParamError> {
        use crate::params::{ParamError, ORIGIN, TOPOLOGY};
        let variant = match p.variant(&["correct", "no-dedup", "no-relay"])? {
            "no-dedup" => Variant::NoDedup,
            "no-relay" => Variant::NoRelay,
            _ => Variant::Correct,
        };
        let topology: crate::topology::TopologyKind =
            p.text(&TOPOLOGY).unwrap_or("complete").parse().map_err(|e| ParamError::invalid(&TOPOLOGY, e))?;
        if topology == crate::topology::TopologyKind::Complete {
            p.at_most_nodes(
                crate::all_to_all::MAX_NODES,
                "nodes on a complete graph, where flood sends (N-1)^2 messages; use the topology regular:K",
            )?;
        }
        let graph = Graph::build(topology, p.nodes, p.seed).map_err(|e| ParamError::invalid(&TOPOLOGY, e))?;
        Ok(FloodSetup {
            graph: Arc::new(graph),
            origin: p.node(&ORIGIN)?.unwrap_or(NodeId(0)),
            payload: p.seed,
            variant,
        })
    }
}
