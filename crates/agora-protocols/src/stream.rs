//! `stream`: every node streams M small messages to every other node (or, with a topology
//! other than `complete`, to each of its neighbours), with at most W in flight per directed
//! link — a throughput workload for benchmarking runtimes.
//!
//! **Algorithm.** At start a node sends min(W, M) DATA messages to each peer (every other
//! node, or its neighbours: the topologies are undirected, so each link carries a stream each
//! way). Each DATA it
//! receives from a peer lets it send one more to that peer, until it has sent M; so a link
//! carries at most W unreceived messages (flow control by the protocol, as the runtime's send
//! queues are bounded and drop when full).
//!
//! **Properties.** *complete-once* (always): a node reports a peer's stream complete at most
//! once and never receives more than M from one peer. *all-streams-complete* (at end, when no
//! message could be lost): every never-crashed node received M from every other (every
//! neighbour).
//!
//! **Message complexity.** Exactly M·N(N−1) messages on the complete graph; M times the sum
//! of the degrees on another (M·N·K on `regular:K`).
//!
//! **Tolerates** nothing in particular: it is a load generator, not a fault-tolerant protocol.

use crate::topology::Graph;
use agora_core::{
    at_end_not_judged, Checker, Context, Corrupt, EndState, Message, NodeId, NotJudged, Property,
    PropertyKind, Protocol, Stable, Time, Violation,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One message of a stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Data {
    /// The message's number in its stream.
    pub seq: u32,
}

impl Message for Data {
    fn kind(&self) -> &'static str {
        "DATA"
    }
}

/// "The stream from `from` is complete."
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Complete {
    /// The node whose greeting or stream this is.
    pub from: NodeId,
    /// Messages received in it.
    pub received: u32,
}

/// One stream node: a sender to every peer and a receiver from each.
pub struct Stream {
    /// Whom it streams to and hears from: every other node, or its neighbours.
    peers: Vec<NodeId>,
    msgs: u32,
    window: u32,
    sent_to: Vec<u32>,
    received_from: Vec<u32>,
}

impl Stream {
    /// A node that has sent and received nothing yet.
    fn new(setup: &StreamSetup, me: NodeId, _: &Stable) -> Result<Self, Corrupt> {
        Ok(Stream {
            peers: setup.peers(me),
            msgs: setup.msgs,
            window: setup.window,
            sent_to: vec![0; setup.nodes],
            received_from: vec![0; setup.nodes],
        })
    }

    fn send(&mut self, ctx: &mut Context<'_, Self>, to: NodeId) {
        let seq = self.sent_to[to.index()];
        self.sent_to[to.index()] += 1;
        ctx.send(to, Data { seq });
    }
}

impl Protocol for Stream {
    type Msg = Data;
    type Timer = ();
    type Obs = Complete;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        for p in self.peers.clone() {
            for _ in 0..self.window.min(self.msgs) {
                self.send(ctx, p);
            }
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, _: Data) {
        let r = &mut self.received_from[from.index()];
        *r += 1;
        if *r == self.msgs {
            let received = *r;
            ctx.observe(Complete { from, received });
        }
        if self.sent_to[from.index()] < self.msgs {
            self.send(ctx, from);
        }
    }

    fn on_timer(&mut self, _: &mut Context<'_, Self>, _: ()) {}
}

/// A stream run.
pub struct StreamSetup {
    /// The cluster size: ids are `0..nodes`.
    pub nodes: usize,
    /// Messages each node streams to every other.
    pub msgs: u32,
    /// Messages in flight per directed link.
    pub window: u32,
    /// The links streamed on: `None`, every pair of nodes (the complete graph).
    pub graph: Option<Arc<Graph>>,
}

impl StreamSetup {
    /// Whom node `me` streams to and hears from.
    pub fn peers(&self, me: NodeId) -> Vec<NodeId> {
        match &self.graph {
            Some(g) => g.neighbours(me).collect(),
            None => (0..self.nodes as u32).map(NodeId).filter(|p| *p != me).collect(),
        }
    }
}

/// The faults under which the checker's safety properties hold: a load generator: no fault tolerance.
pub const MODEL: agora_core::FaultModel = agora_core::FaultModel::NONE;

setup!(StreamSetup => Stream, "stream", model: MODEL, checker: |s| StreamChecker {
    peers: (0..s.nodes as u32).map(|i| s.peers(NodeId(i))).collect(),
    n: s.nodes,
    msgs: s.msgs,
    done: vec![false; s.nodes * s.nodes],
});

/// Judges stream runs.
pub struct StreamChecker {
    /// Each node's peers: whom it hears a stream from.
    peers: Vec<Vec<NodeId>>,
    n: usize,
    msgs: u32,
    /// `done[receiver * n + sender]`.
    done: Vec<bool>,
}

impl Checker<Stream> for StreamChecker {
    fn properties(&self) -> Vec<Property> {
        vec![
            Property {
                name: "complete-once",
                kind: PropertyKind::Always,
                description: "each stream completes once, with exactly M messages",
            },
            Property {
                name: "all-streams-complete",
                kind: PropertyKind::AtEnd,
                description: "with no loss, every never-crashed node received M from every other",
            },
        ]
    }

    fn observe(&mut self, at: Time, node: NodeId, obs: &Complete) -> Result<(), Violation> {
        let slot = &mut self.done[node.index() * self.n + obs.from.index()];
        if *slot || obs.received != self.msgs {
            return Err(Violation::new(
                "complete-once",
                Some(node),
                at,
                format!("stream from node {} completed again or with {} messages", obs.from, obs.received),
            ));
        }
        *slot = true;
        Ok(())
    }

    fn not_judged(&self, end: &EndState<'_>) -> Vec<(&'static str, NotJudged)> {
        at_end_not_judged(&self.properties(), end.unjudged(false, false))
    }

    fn finish(&mut self, end: &EndState<'_>) -> Vec<Violation> {
        if !(end.network_reliable && end.quiescent) || self.msgs == 0 {
            return Vec::new();
        }
        for r in (0..self.n).filter(|&r| end.never_crashed(NodeId(r as u32))) {
            for s in self.peers[r].iter().map(|s| s.index()).filter(|&s| end.never_crashed(NodeId(s as u32)))
            {
                if !self.done[r * self.n + s] {
                    return vec![Violation::new(
                        "all-streams-complete",
                        Some(NodeId(r as u32)),
                        end.at,
                        format!("the stream from node {s} never completed"),
                    )];
                }
            }
        }
        Vec::new()
    }
}

impl crate::registry::FromParams for StreamSetup {
    const SPECS: &'static [crate::params::Spec] = {
        use crate::params::{count, text, Spec, MSGS, TOPOLOGY, WINDOW};
        &[
            Spec::new(&MSGS, count(1000)),
            Spec::new(&WINDOW, count(100)),
            Spec::new(&TOPOLOGY, text("complete")),
        ]
    };
    fn from_params(p: &crate::params::Resolved) -> Result<Self, crate::params::ParamError> {
        use crate::params::{ParamError, MSGS, TOPOLOGY, WINDOW};
        use crate::topology::TopologyKind;
        p.at_most_nodes(1_000, "nodes stream to each other")?;
        let kind: TopologyKind =
            p.text(&TOPOLOGY).unwrap_or("complete").parse().map_err(|e| ParamError::invalid(&TOPOLOGY, e))?;
        let graph = match kind {
            TopologyKind::Complete => None,
            kind => Some(Arc::new(
                Graph::build(kind, p.nodes, p.seed).map_err(|e| ParamError::invalid(&TOPOLOGY, e))?,
            )),
        };
        Ok(StreamSetup { nodes: p.nodes, msgs: p.count(&MSGS), window: p.count(&WINDOW), graph })
    }
}
