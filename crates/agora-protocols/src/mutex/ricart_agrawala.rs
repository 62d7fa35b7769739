//! `ricart-agrawala`: Ricart and Agrawala's mutual exclusion (Ricart & Agrawala, *An Optimal
//! Algorithm for Mutual Exclusion in Computer Networks*, CACM 1981).
//!
//! **Algorithm.** To request, a node stamps REQUEST with its Lamport clock and sends it to all
//! others. A node receiving a REQUEST answers REPLY at once unless it is in the critical
//! section, or is requesting with an earlier (timestamp, id) — then it defers the reply until
//! it exits. A node enters once it holds a REPLY from every other node.
//!
//! **Message complexity.** 2(N−1) per entry: N−1 REQUEST and N−1 REPLY (Ricart & Agrawala
//! 1981), one round of RELEASE fewer than Lamport's algorithm.
//!
//! **Tolerates** duplication and reordering (a REPLY names the request it answers, by
//! incarnation and timestamp), and crashes as far as safety goes: a node persists an
//! incarnation number that grows at every start, so a REPLY to a request of an earlier life
//! can never count for a new one; a restarted node has lost only its own deferred replies, so
//! others may wait forever but never enter together. Loss of a REQUEST or REPLY blocks the
//! requester.
//!
//! **Variant** `no-priority` (a deliberate bug): a node that is requesting defers every
//! REQUEST, whatever its timestamp, instead of answering the earlier one. Two nodes requesting
//! together then each wait for the other's REPLY for ever — a deadlock, never two in the
//! section: `agora explore ricart-agrawala --variant no-priority` finds the dead end.

pub use super::Timer;
use super::{MutexChecker, MutexObs, Workload};
use agora_core::{Context, Corrupt, NodeId, Protocol, Stable};
use serde::{Deserialize, Serialize};

/// The protocol's messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// Sent to every other node by a node that wants the critical section. A receiver answers
    /// REPLY at once, unless it is inside or requesting with an earlier (timestamp, id); then
    /// it defers the reply until it exits.
    Request {
        /// The request's Lamport timestamp; ties are broken by the sender's id.
        ts: u64,
        /// The sender's incarnation, returned in the REPLY.
        inc: u32,
    },
    /// Permission for the request stamped `ts` in incarnation `inc`: the requester enters once
    /// it holds one from every other node.
    Reply {
        /// The timestamp of the request answered; a reply to an earlier request is ignored.
        ts: u64,
        /// The incarnation of the request answered; a reply to a request of an earlier life is
        /// ignored.
        inc: u32,
    },
}

kinds!(Msg { Request => "REQUEST", Reply => "REPLY" });

const INCARNATION: &str = "incarnation";

/// One node of Ricart and Agrawala's algorithm.
#[derive(Clone, Hash)]
pub struct RicartAgrawala {
    id: NodeId,
    n: usize,
    work: Workload,
    clock: u64,
    /// This node's incarnation: persisted, one more at every start.
    inc: u32,
    mine: Option<u64>,
    replied: Vec<bool>,
    /// Requests answered when this node exits: (node, their timestamp, their incarnation).
    deferred: Vec<(NodeId, u64, u32)>,
    /// The `no-priority` variant: defer every REQUEST while requesting.
    no_priority: bool,
}

impl RicartAgrawala {
    /// Node `id`, in the incarnation after the one it persisted, if any.
    fn new(setup: &RicartAgrawalaSetup, id: NodeId, stable: &Stable) -> Result<Self, Corrupt> {
        Ok(RicartAgrawala {
            inc: stable.load::<u32>(INCARNATION)?.map_or(0, |i| i + 1),
            id,
            n: setup.nodes,
            work: Workload::new(setup.requests),
            clock: 0,
            mine: None,
            replied: vec![false; setup.nodes],
            deferred: Vec::new(),
            no_priority: setup.no_priority,
        })
    }
}

impl Protocol for RicartAgrawala {
    type Msg = Msg;
    type Timer = Timer;
    type Obs = MutexObs;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        ctx.persist(INCARNATION, &self.inc);
        self.work.think(ctx);
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: Msg) {
        match msg {
            Msg::Request { ts, inc } => {
                self.clock = self.clock.max(ts) + 1;
                let mine_first =
                    self.mine.is_some_and(|m| self.no_priority || (m, self.id.0) < (ts, from.0));
                if self.work.inside() || mine_first {
                    if !self.deferred.contains(&(from, ts, inc)) {
                        self.deferred.push((from, ts, inc));
                    }
                } else {
                    ctx.send(from, Msg::Reply { ts, inc });
                }
            }
            Msg::Reply { ts, inc } => {
                if self.mine != Some(ts) || inc != self.inc || self.work.inside() {
                    return; // for an earlier request of ours
                }
                self.replied[from.index()] = true;
                if (0..self.n).all(|j| j == self.id.index() || self.replied[j]) {
                    self.work.enter(ctx);
                }
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, timer: Timer) {
        match timer {
            Timer::Think => {
                self.clock += 1;
                self.mine = Some(self.clock);
                self.replied = vec![false; self.n];
                self.work.request(ctx);
                if self.n == 1 {
                    self.work.enter(ctx);
                } else {
                    ctx.broadcast(Msg::Request { ts: self.clock, inc: self.inc });
                }
            }
            Timer::Hold => {
                self.mine = None;
                self.work.exit(ctx);
                for (to, ts, inc) in std::mem::take(&mut self.deferred) {
                    ctx.send(to, Msg::Reply { ts, inc });
                }
                self.work.next(ctx);
            }
        }
    }
}

/// A ricart-agrawala run.
pub struct RicartAgrawalaSetup {
    /// The cluster size: ids are `0..nodes`.
    pub nodes: usize,
    /// Critical-section entries (or requests) per node.
    pub requests: u32,
    /// The `no-priority` variant (see the module's docs): deadlocks.
    pub no_priority: bool,
}

/// The faults under which the checker's safety properties hold: replies name their request and incarnation: loss and crashes block, never two in the section.
pub const MODEL: agora_core::FaultModel = agora_core::FaultModel::asynchronous(agora_core::Crashes::Recover);

setup!(RicartAgrawalaSetup => RicartAgrawala, "ricart-agrawala", model: MODEL, checker: |s| MutexChecker::each(s.nodes, s.requests));
