//! `central`: a centralized client–server pattern. Node 0 is the server; every other node is a
//! client that JOINs, is WELCOMEd, then makes `--requests` REQUEST/REPLY exchanges, one at a
//! time.
//!
//! **Properties.** *reply-once* (always): a client accepts one reply per request, and only to
//! a request it made. *all-served* (at end, when the run went quiet): every client that never
//! crashed joined and had every request answered.
//!
//! **Message complexity.** 2 + 2R per client, 2(N−1)(1 + R) in all; the server handles all of
//! them — the bottleneck and single point of failure the seed report names.
//!
//! **Tolerates** loss, duplication and reordering: a client resends its JOIN or REQUEST every
//! timeout until answered, and the server answers a repeated request from its cache instead
//! of serving it twice. A crashed server stalls the clients until it restarts.

use agora_core::{
    Checker, Context, Corrupt, EndState, NodeId, Property, PropertyKind, Protocol, Stable, Time, Violation,
};
use serde::{Deserialize, Serialize};
use std::time::Duration;

const SERVER: NodeId = NodeId(0);

/// The protocol's messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// Client to server, at start: asks to join; resent every timeout until WELCOMEd.
    Join,
    /// Server to client, in answer to every JOIN: the client may now send requests.
    Welcome,
    /// Client to server, after joining: one request at a time, resent every timeout until
    /// its REPLY comes.
    Request {
        /// The request's number, from 0 up to `--requests` − 1.
        seq: u32,
    },
    /// Server to client, in answer to every REQUEST (a repeat gets the same answer).
    Reply {
        /// The number of the request answered; the client accepts only the reply to the request
        /// it awaits.
        seq: u32,
        /// The server's "work": a deterministic function of the client and the request number.
        result: u64,
    },
}

kinds!(Msg { Join => "JOIN", Welcome => "WELCOME", Request => "REQUEST", Reply => "REPLY" });

/// What client–server nodes report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CentralObs {
    /// A client was WELCOMEd: it has joined and starts its requests.
    Joined,
    /// A client accepted the reply to one of its requests.
    Served {
        /// The number of the request answered; the checker expects them in order, each once.
        seq: u32,
    },
}

/// The client's retransmission timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry;

/// The server (node 0) or a client.
pub struct Central {
    id: NodeId,
    requests: u32,
    timeout: Duration,
    joined: bool,
    /// Client: the request awaiting its reply.
    next: u32,
    /// Server: requests served per client (the answer to a repeat comes from here).
    served: Vec<u32>,
}

impl Central {
    /// Node `id`: the server or a client that has not joined yet.
    fn new(setup: &CentralSetup, id: NodeId, _: &Stable) -> Result<Self, Corrupt> {
        Ok(Central {
            id,
            requests: setup.requests,
            timeout: setup.timeout,
            joined: false,
            next: 0,
            served: vec![0; setup.nodes],
        })
    }

    fn ask(&mut self, ctx: &mut Context<'_, Self>) {
        if !self.joined {
            ctx.send(SERVER, Msg::Join);
        } else if self.next < self.requests {
            ctx.send(SERVER, Msg::Request { seq: self.next });
        } else {
            ctx.cancel_timer(Retry);
            return;
        }
        ctx.set_timer(Retry, self.timeout);
    }

    fn op(&self) -> u64 {
        (self.id.0 as u64) << 32 | self.next as u64
    }
}

impl Protocol for Central {
    type Msg = Msg;
    type Timer = Retry;
    type Obs = CentralObs;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        if self.id != SERVER {
            ctx.op_begin(self.op());
            self.ask(ctx);
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: Msg) {
        match msg {
            Msg::Join if self.id == SERVER => ctx.send(from, Msg::Welcome),
            Msg::Request { seq } if self.id == SERVER => {
                let done = &mut self.served[from.index()];
                if seq >= *done {
                    *done = seq + 1;
                }
                // The "work": a deterministic function of the request.
                ctx.send(from, Msg::Reply { seq, result: (from.0 as u64) * 1_000 + seq as u64 });
            }
            Msg::Welcome if !self.joined => {
                self.joined = true;
                ctx.observe(CentralObs::Joined);
                ctx.op_end(self.op());
                ctx.op_begin(self.op() + 1);
                self.ask(ctx);
            }
            Msg::Reply { seq, .. } if self.joined && seq == self.next => {
                ctx.observe(CentralObs::Served { seq });
                ctx.op_end(self.op() + 1);
                self.next += 1;
                if self.next < self.requests {
                    ctx.op_begin(self.op() + 1);
                }
                self.ask(ctx);
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, _: Retry) {
        self.ask(ctx);
    }
}

/// A client–server run.
pub struct CentralSetup {
    /// The cluster size: ids are `0..nodes`.
    pub nodes: usize,
    /// Critical-section entries (or requests) per node.
    pub requests: u32,
    /// The protocol's timeout.
    pub timeout: Duration,
}

/// The faults under which the checker's safety properties hold: loss, duplication and reordering are retried or answered from the cache; a crash only stalls.
pub const MODEL: agora_core::FaultModel = agora_core::FaultModel::asynchronous(agora_core::Crashes::Recover);

setup!(CentralSetup => Central, "central", model: MODEL, checker: |s| CentralChecker {
    requests: s.requests,
    joined: vec![false; s.nodes],
    served: vec![0; s.nodes],
});

/// Judges client–server runs.
pub struct CentralChecker {
    requests: u32,
    joined: Vec<bool>,
    served: Vec<u32>,
}

impl Checker<Central> for CentralChecker {
    fn properties(&self) -> Vec<Property> {
        vec![
            Property {
                name: "reply-once",
                kind: PropertyKind::Always,
                description: "one reply per request, in order",
            },
            Property {
                name: "all-served",
                kind: PropertyKind::AtEnd,
                description: "when the run went quiet, every never-crashed client was served fully",
            },
        ]
    }

    fn observe(&mut self, at: Time, node: NodeId, obs: &CentralObs) -> Result<(), Violation> {
        match obs {
            CentralObs::Joined => self.joined[node.index()] = true,
            CentralObs::Served { seq } => {
                if !self.joined[node.index()] || *seq != self.served[node.index()] {
                    return Err(Violation::new(
                        "reply-once",
                        Some(node),
                        at,
                        format!(
                            "accepted the reply to request {seq}, expected {}",
                            self.served[node.index()]
                        ),
                    ));
                }
                self.served[node.index()] += 1;
            }
        }
        Ok(())
    }

    fn lifecycle(&mut self, _: Time, node: NodeId, event: agora_core::Lifecycle) {
        if event == agora_core::Lifecycle::Crashed {
            // A restarted client starts over.
            self.joined[node.index()] = false;
            self.served[node.index()] = 0;
        }
    }

    fn finish(&mut self, end: &EndState<'_>) -> Vec<Violation> {
        if !end.quiescent {
            return Vec::new();
        }
        for c in (1..self.served.len()).filter(|&c| end.never_crashed(NodeId(c as u32))) {
            if self.served[c] < self.requests {
                return vec![Violation::new(
                    "all-served",
                    Some(NodeId(c as u32)),
                    end.at,
                    format!("served {} of {} requests", self.served[c], self.requests),
                )];
            }
        }
        Vec::new()
    }
}
