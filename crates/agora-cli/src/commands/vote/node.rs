//! The node of `agora vote`: one server of the voting service ([`Server`]: a Raft replica of
//! the [`Board`], its front end's client session, batched heartbeats, the leader's failure
//! detector) as a protocol agora-net's driver runs. This wrapper only routes Raft's messages
//! and timers, hands answers to the connections waiting for them (a oneshot per operation)
//! and publishes the board's events, in log order, on a broadcast channel every connection of
//! this server subscribes to.
//!
//! The line-protocol front end reaches it through local calls ([`LocalCall`]), run as steps
//! of the node — never through the server's API from another thread.
//!
//! [`LocalCall`]: agora_net::LocalCall

use agora_core::{Checker, Context, Corrupt, NoProperties, NodeId, Protocol, Setup, Stable};
use agora_protocols::raft::{Op, RaftMsg, RaftObs, RaftTimer};
use agora_protocols::vote_service::board::Stats;
use agora_protocols::vote_service::server::{Server, ServerConfig, ServerObs, ServerTimer, Status};
use agora_protocols::vote_service::{Board, BoardOut, Event, Sid};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{broadcast, oneshot};

/// Events a connection may fall behind by before it catches up with a query.
pub const EVENT_BACKLOG: usize = 4096;

/// One numbered event, shared by every connection it is pushed to.
pub type Numbered = Arc<(u64, Event)>;

/// Where an operation's answer goes, with the number of the latest event this server had
/// published when it was given (every event up to it is on the channel before the answer).
pub type Answer = oneshot::Sender<(BoardOut, u64)>;

/// A node's timers: Raft's and the server's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteTimer {
    /// One of Raft's (the replica's or the session's).
    Raft(RaftTimer),
    /// The server's tick.
    Server(ServerTimer),
}

impl From<RaftTimer> for VoteTimer {
    fn from(t: RaftTimer) -> Self {
        VoteTimer::Raft(t)
    }
}

impl From<ServerTimer> for VoteTimer {
    fn from(t: ServerTimer) -> Self {
        VoteTimer::Server(t)
    }
}

/// What a node reports: Raft's observations and the server's.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum VoteObs {
    /// Raft's.
    Raft(RaftObs),
    /// The server's (events emitted, expiries submitted).
    Server(ServerObs),
}

impl From<RaftObs> for VoteObs {
    fn from(o: RaftObs) -> Self {
        VoteObs::Raft(o)
    }
}

impl From<ServerObs> for VoteObs {
    fn from(o: ServerObs) -> Self {
        VoteObs::Server(o)
    }
}

/// The settings of a voting-service cluster, and each server's event channel.
pub struct VoteSetup {
    /// What every server shares.
    pub cfg: Arc<ServerConfig>,
    /// Server `i`'s event channel is `events[i]` (only the servers of this process have one
    /// that anyone listens to).
    pub events: Vec<broadcast::Sender<Numbered>>,
}

impl VoteSetup {
    /// A cluster of `cfg.raft.replicas` servers, with an event channel each.
    pub fn new(cfg: ServerConfig) -> Self {
        let events = cfg.raft.replicas.iter().map(|_| broadcast::channel(EVENT_BACKLOG).0).collect();
        VoteSetup { cfg: Arc::new(cfg), events }
    }
}

impl Setup for VoteSetup {
    type Node = VoteNode;

    fn name(&self) -> &'static str {
        "vote-service"
    }

    fn nodes(&self) -> usize {
        self.cfg.raft.replicas.len()
    }

    fn rejoins(&self, _: NodeId) -> bool {
        true
    }

    fn build(&self, id: NodeId, stable: &Stable) -> Result<VoteNode, Corrupt> {
        Ok(VoteNode {
            server: Server::new(self.cfg.clone(), id, stable)?,
            answers: HashMap::new(),
            next_tag: 0,
            events: self.events[id.index()].clone(),
        })
    }

    fn checker(&self) -> Box<dyn Checker<VoteNode>> {
        // The service's properties are judged from what its clients saw (`agora vote`) and
        // by the simulator's checker; this driver keeps no observations.
        Box::new(NoProperties)
    }
}

/// A server as the live view sees it ([`VoteNode::glance`]).
pub struct Glance {
    /// Its replica's role, term, progress, members online.
    pub status: Status,
    /// Accounts on its board.
    pub accounts: usize,
    /// Questions on its board.
    pub questions: usize,
    /// The latest questions, newest first, with their votes.
    pub latest: Vec<Stats>,
}

/// One server with its waiting answers.
pub struct VoteNode {
    server: Server,
    /// Operations submitted by connections: tag to where the answer goes.
    answers: HashMap<u64, Answer>,
    next_tag: u64,
    events: broadcast::Sender<Numbered>,
}

impl VoteNode {
    /// Submits operations of the front end; each answer goes to its sender. Called as a local
    /// call.
    pub fn submit(&mut self, ctx: &mut Context<'_, Self>, ops: Vec<(Op<Board>, Answer)>) {
        for (op, answer) in ops {
            if answer.is_closed() {
                // Its connection is gone and nothing was sent: drop it.
                continue;
            }
            self.next_tag += 1;
            let tag = self.next_tag;
            self.answers.insert(tag, answer);
            self.server.submit(ctx, op, tag);
        }
        self.flush();
    }

    /// What the live view shows of this server: its Raft status, and its board's members
    /// online, accounts and latest `questions` questions (newest first). Called as a local
    /// call.
    pub fn glance(&self, questions: usize) -> Glance {
        let board = self.server.board();
        let members = board.members() as u32;
        let latest = board
            .questions()
            .iter()
            .rev()
            .take(questions)
            .map(|(&id, q)| Stats {
                id,
                text: q.text.clone(),
                counts: q.options.iter().cloned().zip(q.counts.iter().copied()).collect(),
                members,
                consensus: q.consensus,
                closed: q.closed,
            })
            .collect();
        Glance {
            status: self.server.status(),
            accounts: board.accounts(),
            questions: board.questions().len(),
            latest,
        }
    }

    /// Records signs of life of sessions (heartbeats, sent with the next tick).
    pub fn touch(&mut self, sids: &[Sid]) {
        for &sid in sids {
            self.server.touch(sid);
        }
    }

    /// Publishes the events the board emitted, then hands out the answers: a connection
    /// learns of an event before the answer of the operation that emitted it.
    fn flush(&mut self) {
        for e in self.server.take_events() {
            // No receiver (no connection yet) is not an error.
            let _ = self.events.send(Arc::new(e));
        }
        let last = self.server.board().last_event();
        for (tag, out) in self.server.take_done() {
            if let Some(answer) = self.answers.remove(&tag) {
                let _ = answer.send((out, last));
            }
        }
    }
}

impl Protocol for VoteNode {
    type Msg = RaftMsg<Board>;
    type Timer = VoteTimer;
    type Obs = VoteObs;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        self.server.on_start(ctx);
        self.flush();
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: RaftMsg<Board>) {
        self.server.on_message(ctx, from, msg);
        self.flush();
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, timer: VoteTimer) {
        match timer {
            VoteTimer::Raft(t) => self.server.on_raft_timer(ctx, t),
            VoteTimer::Server(t) => self.server.on_timer(ctx, t),
        }
        self.flush();
    }

    fn background(&self) -> bool {
        self.server.settled() && self.answers.is_empty()
    }
}
