//! `lamport-mutex`: Lamport's distributed mutual exclusion (Lamport, *Time, Clocks, and the
//! Ordering of Events in a Distributed System*, CACM 1978).
//!
//! **Algorithm.** Every node keeps a Lamport clock and a queue of requests ordered by
//! (timestamp, id). To request, a node stamps REQUEST and sends it to all others and queues it
//! itself; a node receiving a REQUEST queues it and answers REPLY. A node enters when its own
//! request heads its queue and it has received a later-stamped message from every other node.
//! On exit it dequeues its request and sends RELEASE to all, which dequeue it too.
//!
//! **Message complexity.** 3(N−1) per entry: N−1 REQUEST, N−1 REPLY, N−1 RELEASE (Lamport
//! 1978; Singhal & Shivaratri, *Advanced Concepts in Operating Systems*, 1994, §6.6).
//!
//! **Tolerates** duplication (requests and releases carry their timestamp, so a stale copy
//! changes nothing) and crash-stop failures (the survivors block; they never enter together).
//! It **requires reliable FIFO links**: a lost or overtaken REQUEST leaves a node unaware of an
//! earlier request, and two nodes may then enter together. agora therefore runs it over its
//! reliable link layer ([`crate::reliable`]) by default, as it would run over TCP, so that
//! `--loss`, `--duplicate` and `--reorder` test it as deployed; `--links raw` takes the layer
//! away, and `agora check lamport-mutex --links raw --loss 0.05` shows what the assumption
//! buys. It does **not** tolerate crash-recovery: a restarted node has lost the request queue.

pub use super::Timer;
use super::{MutexChecker, MutexObs, Workload};
use crate::reliable::{Links, Reliable};
use agora_core::{Context, Corrupt, NodeId, Protocol, Stable};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The protocol's messages.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Msg {
    /// Sent to every other node by a node that wants the critical section; each receiver
    /// queues the request (replacing an older one of the same node) and answers REPLY.
    Request {
        /// The request's Lamport timestamp: with the sender's id, its place in every queue.
        ts: u64,
    },
    /// Answer to REQUEST: a message stamped later than the request, which the requester needs
    /// from every other node before it may enter.
    Reply {
        /// The replier's Lamport clock, after it received the request.
        ts: u64,
    },
    /// Sent to every other node on leaving the critical section: the receivers dequeue the
    /// sender's request.
    Release {
        /// The sender's Lamport clock when it left.
        ts: u64,
        /// The timestamp of the request being released.
        request: u64,
    },
}

kinds!(Msg { Request => "REQUEST", Reply => "REPLY", Release => "RELEASE" });

/// One node of Lamport's algorithm.
#[derive(Clone, Hash)]
pub struct LamportMutex {
    id: NodeId,
    n: usize,
    work: Workload,
    clock: u64,
    /// (timestamp, node) of every known outstanding request.
    queue: BTreeSet<(u64, u32)>,
    /// The latest timestamp received from each node.
    latest: Vec<u64>,
    mine: Option<u64>,
}

impl LamportMutex {
    /// Node `id`, before its first request.
    fn new(setup: &LamportMutexSetup, id: NodeId, _: &Stable) -> Result<Self, Corrupt> {
        Ok(LamportMutex {
            id,
            n: setup.nodes,
            work: Workload::new(setup.requests),
            clock: 0,
            queue: BTreeSet::new(),
            latest: vec![0; setup.nodes],
            mine: None,
        })
    }

    fn tick(&mut self, seen: u64) {
        self.clock = self.clock.max(seen) + 1;
    }

    fn try_enter(&mut self, ctx: &mut Context<'_, Self>) {
        let Some(ts) = self.mine else { return };
        if self.work.inside() || self.queue.first() != Some(&(ts, self.id.0)) {
            return;
        }
        if (0..self.n).all(|j| j == self.id.index() || self.latest[j] > ts) {
            self.work.enter(ctx);
        }
    }
}

impl Protocol for LamportMutex {
    type Msg = Msg;
    type Timer = Timer;
    type Obs = MutexObs;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        self.work.think(ctx);
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: Msg) {
        let j = from.index();
        match msg {
            Msg::Request { ts } => {
                self.tick(ts);
                // Replace an older request of the same node; ignore a stale copy.
                let older: Vec<_> =
                    self.queue.iter().filter(|(t, n)| *n == from.0 && *t < ts).copied().collect();
                let newer = self.queue.iter().any(|(t, n)| *n == from.0 && *t > ts);
                if !newer {
                    for e in older {
                        self.queue.remove(&e);
                    }
                    self.queue.insert((ts, from.0));
                }
                self.latest[j] = self.latest[j].max(ts);
                ctx.send(from, Msg::Reply { ts: self.clock });
            }
            Msg::Reply { ts } => {
                self.tick(ts);
                self.latest[j] = self.latest[j].max(ts);
            }
            Msg::Release { ts, request } => {
                self.tick(ts);
                self.queue.remove(&(request, from.0));
                self.latest[j] = self.latest[j].max(ts);
            }
        }
        self.try_enter(ctx);
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, timer: Timer) {
        match timer {
            Timer::Think => {
                self.clock += 1;
                let ts = self.clock;
                self.mine = Some(ts);
                self.queue.insert((ts, self.id.0));
                self.work.request(ctx);
                ctx.broadcast(Msg::Request { ts });
                self.try_enter(ctx);
            }
            Timer::Hold => {
                self.work.exit(ctx);
                let request = self.mine.take().expect("inside means requested");
                self.queue.remove(&(request, self.id.0));
                self.clock += 1;
                ctx.broadcast(Msg::Release { ts: self.clock, request });
                self.work.next(ctx);
            }
        }
    }
}

/// A lamport-mutex run.
pub struct LamportMutexSetup {
    /// The cluster size: ids are `0..nodes`.
    pub nodes: usize,
    /// Critical-section entries (or requests) per node.
    pub requests: u32,
    /// Reliable FIFO links (the default, as over TCP) or raw ones (`--links raw`).
    pub links: Links,
}

/// The faults under which the checker's safety properties hold over raw links: reliable FIFO
/// links and crash-stop, as Lamport's algorithm assumes. Over [`Links::Reliable`] (the
/// default) loss, duplication, reordering and partitions are added: the link layer hides them.
pub const MODEL: agora_core::FaultModel = agora_core::FaultModel {
    duplication: true,
    crashes: agora_core::Crashes::Stop,
    pauses: true,
    clocks: true,
    ..agora_core::FaultModel::NONE
};

/// A node of the algorithm over its links.
pub type Node = Reliable<LamportMutex>;

impl agora_core::Setup for LamportMutexSetup {
    type Node = Node;

    fn name(&self) -> &'static str {
        "lamport-mutex"
    }

    fn nodes(&self) -> usize {
        self.nodes
    }

    fn build(&self, id: NodeId, stable: &Stable) -> Result<Node, Corrupt> {
        Ok(Reliable::new(LamportMutex::new(self, id, stable)?, self.nodes, self.links))
    }

    fn checker(&self) -> Box<dyn agora_core::Checker<Node>> {
        Box::new(MutexChecker::each(self.nodes, self.requests).over(self.links))
    }

    fn fault_model(&self) -> agora_core::FaultModel {
        self.links.model(MODEL)
    }
}
