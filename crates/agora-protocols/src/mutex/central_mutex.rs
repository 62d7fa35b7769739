//! `central-mutex`: a coordinator grants the critical section (Tanenbaum & van Steen,
//! *Distributed Systems*, 3rd ed., 2017, §6.3).
//!
//! **Algorithm.** Node 0 is the coordinator; nodes 1..N are clients. A client sends REQUEST;
//! the coordinator answers GRANT when the section is free, otherwise queues the request; the
//! client sends RELEASE on exit and the coordinator grants the next queued request.
//!
//! **Message complexity.** 3 per entry (REQUEST, GRANT, RELEASE), independent of N; the
//! coordinator is a single point of failure and a bottleneck.
//!
//! **Tolerates** duplication (requests carry a sequence number) and a coordinator crash as far
//! as safety goes: it persists who holds the section, so after a restart it grants nobody else
//! until that client releases; queued requests are lost and their clients wait. Loss blocks.

pub use super::Timer;
use super::{MutexChecker, MutexObs, Workload};
use agora_core::{Context, Corrupt, NodeId, Protocol, Stable};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

const COORDINATOR: NodeId = NodeId(0);
const HOLDER: &str = "holder";

/// The protocol's messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// Client to coordinator, when it wants the critical section; the coordinator queues it
    /// (once, however often it arrives) and grants it when the section is free.
    Request {
        /// The client's request number: how many entries it made before this one.
        seq: u32,
    },
    /// Coordinator to the client at the head of its queue: the section is free, enter.
    Grant {
        /// The number of the request granted; a client enters only on a grant of its current
        /// request.
        seq: u32,
    },
    /// Client to coordinator, on leaving the critical section: the coordinator grants the
    /// next queued request.
    Release {
        /// The number of the request whose entry is over; the coordinator frees the section
        /// only if that request holds it.
        seq: u32,
    },
}

kinds!(Msg { Request => "REQUEST", Grant => "GRANT", Release => "RELEASE" });

/// The coordinator (node 0) or a client.
#[derive(Clone, Hash)]
pub struct CentralMutex {
    id: NodeId,
    work: Workload,
    waiting: bool,
    /// Coordinator: who holds the section (persisted), and who waits.
    holder: Option<(NodeId, u32)>,
    queue: VecDeque<(NodeId, u32)>,
}

impl CentralMutex {
    /// Node `id`: the coordinator, knowing whom it granted the section in an earlier life, or
    /// a client before its first request.
    fn new(setup: &CentralMutexSetup, id: NodeId, stable: &Stable) -> Result<Self, Corrupt> {
        Ok(CentralMutex {
            id,
            work: Workload::new(setup.requests),
            waiting: false,
            holder: stable.load(HOLDER)?.flatten(),
            queue: VecDeque::new(),
        })
    }

    fn grant_next(&mut self, ctx: &mut Context<'_, Self>) {
        if self.holder.is_some() {
            return;
        }
        if let Some((c, seq)) = self.queue.pop_front() {
            self.holder = Some((c, seq));
            ctx.persist(HOLDER, &self.holder);
            ctx.send(c, Msg::Grant { seq });
        }
    }
}

impl Protocol for CentralMutex {
    type Msg = Msg;
    type Timer = Timer;
    type Obs = MutexObs;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        if self.id != COORDINATOR {
            self.work.think(ctx);
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: Msg) {
        match msg {
            Msg::Request { seq } if self.id == COORDINATOR => {
                let known = self.holder == Some((from, seq)) || self.queue.contains(&(from, seq));
                if !known {
                    self.queue.push_back((from, seq));
                }
                self.grant_next(ctx);
            }
            Msg::Release { seq } if self.id == COORDINATOR && self.holder == Some((from, seq)) => {
                self.holder = None;
                ctx.persist(HOLDER, &self.holder);
                self.grant_next(ctx);
            }
            Msg::Grant { seq } if self.waiting && seq == self.work.done() => {
                self.waiting = false;
                self.work.enter(ctx);
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, timer: Timer) {
        match timer {
            Timer::Think => {
                self.waiting = true;
                self.work.request(ctx);
                ctx.send(COORDINATOR, Msg::Request { seq: self.work.done() });
            }
            Timer::Hold => {
                self.work.exit(ctx);
                ctx.send(COORDINATOR, Msg::Release { seq: self.work.done() });
                self.work.next(ctx);
            }
        }
    }
}

/// A central-mutex run.
pub struct CentralMutexSetup {
    /// The cluster size: ids are `0..nodes`.
    pub nodes: usize,
    /// Critical-section entries (or requests) per node.
    pub requests: u32,
}

/// The faults under which the checker's safety properties hold: the holder is persisted: loss and crashes block, they never grant twice.
pub const MODEL: agora_core::FaultModel = agora_core::FaultModel::asynchronous(agora_core::Crashes::Recover);

setup!(CentralMutexSetup => CentralMutex, "central-mutex", model: MODEL, checker: |s| {
    let mut expected = vec![s.requests; s.nodes];
    expected[COORDINATOR.index()] = 0;
    MutexChecker::new(expected)
});
