//! `all-to-all`: every node greets every other node once (the seed report's "distributed"
//! pattern, where every process contacts every other).
//!
//! **Algorithm.** At start each node sends HELLO to all N−1 others. A node records each
//! sender's greeting once (duplicates from the network are ignored).
//!
//! **Properties.** *greeted-once* (always): a node records at most one greeting per sender.
//! *all-greeted* (at end, when no message could be lost): every never-crashed node was greeted
//! by every other never-crashed node.
//!
//! **Message complexity.** Exactly N(N−1) messages (each of N nodes sends N−1), the cost of a
//! complete exchange (Lynch, *Distributed Algorithms*, 1996, ch. 4). Each greeting is one
//! operation; its latency runs until the last node received it.
//!
//! **Tolerates** duplication and reordering; it does not retransmit, so loss and partitions
//! leave greetings missing (the at-end property is then not judged).

use agora_core::{
    at_end_not_judged, Checker, Context, Corrupt, EndState, Message, NodeId, NotJudged, Property,
    PropertyKind, Protocol, Stable, Time, Violation,
};
use serde::{Deserialize, Serialize};

/// The greeting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello;

impl Message for Hello {
    fn kind(&self) -> &'static str {
        "HELLO"
    }
}

/// "node `from` greeted me".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Greeted {
    /// The node whose greeting or stream this is.
    pub from: NodeId,
}

/// The largest cluster all-to-all accepts: its N(N−1) messages and the checker's N×N table
/// grow quadratically. Every greeting is in flight at once, so the simulator's limit of 20M
/// waiting events (`agora_sim::MAX_PENDING_EVENTS`) sets it: 4,000 × 3,999 is 16M.
pub const MAX_NODES: usize = 4_000;

/// One all-to-all node.
pub struct AllToAll {
    /// Which senders have greeted this node (duplicates are ignored).
    seen: Vec<bool>,
}

impl AllToAll {
    /// A node nobody has greeted yet.
    fn new(setup: &AllToAllSetup, _: NodeId, _: &Stable) -> Result<Self, Corrupt> {
        Ok(AllToAll { seen: vec![false; setup.nodes] })
    }
}

impl Protocol for AllToAll {
    type Msg = Hello;
    type Timer = ();
    type Obs = Greeted;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        ctx.op_begin(ctx.id().0 as u64);
        ctx.broadcast(Hello);
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, _: Hello) {
        if !std::mem::replace(&mut self.seen[from.index()], true) {
            ctx.observe(Greeted { from });
            ctx.op_end(from.0 as u64);
        }
    }

    fn on_timer(&mut self, _: &mut Context<'_, Self>, _: ()) {}
}

/// An all-to-all run.
pub struct AllToAllSetup {
    /// The cluster size: ids are `0..nodes`.
    pub nodes: usize,
}

/// The faults under which the checker's safety properties hold: duplicates are counted once; loss leaves greetings missing (not judged).
pub const MODEL: agora_core::FaultModel = agora_core::FaultModel::asynchronous(agora_core::Crashes::None);

setup!(AllToAllSetup => AllToAll, "all-to-all", model: MODEL, checker: |s| AllToAllChecker {
    n: s.nodes,
    greeted: vec![0; (s.nodes * s.nodes).div_ceil(64)],
});

/// Judges all-to-all runs with an N×N bit table of (receiver, sender) greetings.
pub struct AllToAllChecker {
    n: usize,
    greeted: Vec<u64>,
}

impl Checker<AllToAll> for AllToAllChecker {
    fn properties(&self) -> Vec<Property> {
        vec![
            Property {
                name: "greeted-once",
                kind: PropertyKind::Always,
                description: "one greeting per sender per node",
            },
            Property {
                name: "all-greeted",
                kind: PropertyKind::AtEnd,
                description: "with no loss, every never-crashed node was greeted by every other",
            },
        ]
    }

    fn observe(&mut self, at: Time, node: NodeId, obs: &Greeted) -> Result<(), Violation> {
        let bit = node.index() * self.n + obs.from.index();
        let (word, mask) = (bit / 64, 1u64 << (bit % 64));
        if self.greeted[word] & mask != 0 {
            return Err(Violation::new(
                "greeted-once",
                Some(node),
                at,
                format!("recorded node {}'s greeting twice", obs.from),
            ));
        }
        self.greeted[word] |= mask;
        Ok(())
    }

    fn not_judged(&self, end: &EndState<'_>) -> Vec<(&'static str, NotJudged)> {
        at_end_not_judged(&self.properties(), end.unjudged(false, false))
    }

    fn finish(&mut self, end: &EndState<'_>) -> Vec<Violation> {
        if !(end.network_reliable && end.quiescent) {
            return Vec::new();
        }
        for r in (0..self.n).filter(|&r| end.never_crashed(NodeId(r as u32))) {
            for s in (0..self.n).filter(|&s| s != r && end.never_crashed(NodeId(s as u32))) {
                let bit = r * self.n + s;
                if self.greeted[bit / 64] & (1 << (bit % 64)) == 0 {
                    return vec![Violation::new(
                        "all-greeted",
                        Some(NodeId(r as u32)),
                        end.at,
                        format!("never greeted by node {s}"),
                    )];
                }
            }
        }
        Vec::new()
    }
}

impl crate::registry::FromParams for AllToAllSetup {
    const SPECS: &'static [crate::params::Spec] = &[];
    fn from_params(p: &crate::params::Resolved) -> Result<Self, crate::params::ParamError> {
        p.at_most_nodes(MAX_NODES, "nodes, as all-to-all sends N(N-1) messages")?;
        Ok(AllToAllSetup { nodes: p.nodes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_core::Setup;

    fn end<'a>(live: &'a [bool], crashed: &'a [bool], lossless: bool) -> EndState<'a> {
        EndState {
            at: Time::ZERO,
            live,
            crashed_ever: crashed,
            network_reliable: lossless,
            quiescent: true,
            observed_all: true,
            last_fault: Time::ZERO,
            partitioned: false,
            timely: true,
        }
    }

    #[test]
    fn checker_catches_a_repeated_greeting_and_a_missing_one() {
        let mut c = AllToAllSetup { nodes: 3 }.checker();
        let g = |from| Greeted { from: NodeId(from) };
        assert!(c.observe(Time::ZERO, NodeId(0), &g(1)).is_ok());
        let v = c.observe(Time::ZERO, NodeId(0), &g(1)).unwrap_err();
        assert_eq!(v.property, "greeted-once");
        let (live, crashed) = ([true; 3], [false; 3]);
        let v = c.finish(&end(&live, &crashed, true));
        assert_eq!(v[0].property, "all-greeted");
        assert!(c.finish(&end(&live, &crashed, false)).is_empty(), "not judged when messages may be lost");
    }

    #[test]
    fn crashed_nodes_are_not_owed_greetings() {
        let mut c = AllToAllSetup { nodes: 2 }.checker();
        c.observe(Time::ZERO, NodeId(0), &Greeted { from: NodeId(1) }).unwrap();
        let (live, crashed) = ([true, true], [false, true]);
        assert!(c.finish(&end(&live, &crashed, true)).is_empty());
    }
}
