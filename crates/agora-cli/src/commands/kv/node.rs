//! The node of `agora kv`: a Raft replica of the [`Strings`] store and, beside it, the client
//! session its RESP front end submits through. The replica stays the sans-IO protocol of
//! `agora_protocols::raft`; this wrapper only routes messages and timers, and keeps the
//! front end's waiting answers.
//!
//! **Batching.** The front end's commands queue here; at most one request of this node's
//! session is in flight at a time, and it carries everything that queued while the one before
//! was in flight (up to [`BATCH_OPS`] operations and [`BATCH_BYTES`] bytes): one log entry per
//! batch, whatever the number of connections and their pipelines.
//!
//! **Forwarding.** The session is a Raft client ([`Client`]): it sends to this replica first;
//! a follower redirects it to its leader, and the request goes there over the cluster's own
//! authenticated connections. Retries keep their sequence numbers, so a command is applied
//! once whatever the retries (the replicas' session table).

use agora_core::{Checker, Context, Corrupt, NodeId, Protocol, Setup, Stable};
use agora_protocols::raft::checker::RaftChecker;
use agora_protocols::raft::client::{next_incarnation, session_id, Client};
use agora_protocols::raft::strings::{StrOut, Strings};
use agora_protocols::raft::{Config, Op, Outcome, RaftMsg, RaftObs, RaftTimer, Replica, Role};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// Operations per batch (one log entry), at most.
pub const BATCH_OPS: usize = 4096;
/// Bytes of keys and values per batch, about: a batch is at most this plus one request (at
/// most 8 MiB, `--max-bulk`), within a frame's 16 MiB with room to spare.
pub const BATCH_BYTES: usize = 4 << 20;

const INCARNATION: &str = "kv/incarnation";

/// Where a waiting operation's answer goes.
pub type Answer = oneshot::Sender<StrOut>;

/// The settings of an `agora kv` cluster.
pub struct KvSetup {
    /// The replicas' Raft settings.
    pub raft: Arc<Config>,
    /// The front end's session retries with another replica after this long without progress.
    pub retry: Duration,
}

impl KvSetup {
    /// `n` replicas with `timeout` as the shortest election timeout.
    pub fn new(n: usize, timeout: Duration) -> Self {
        let ids = (0..n as u32).map(NodeId).collect();
        KvSetup { raft: Arc::new(Config::new(ids, timeout)), retry: timeout * 4 }
    }
}

impl Setup for KvSetup {
    type Node = KvNode;

    fn name(&self) -> &'static str {
        "kv"
    }

    fn nodes(&self) -> usize {
        self.raft.replicas.len()
    }

    fn rejoins(&self, _: NodeId) -> bool {
        true
    }

    fn build(&self, id: NodeId, stable: &Stable) -> Result<KvNode, Corrupt> {
        Ok(KvNode {
            replica: Replica::new(self.raft.clone(), id, stable)?,
            client: None,
            incarnation: stable.load(INCARNATION)?.unwrap_or(0),
            replicas: self.raft.replicas.clone(),
            retry: self.retry,
            queue: VecDeque::new(),
            waiting: HashMap::new(),
        })
    }

    fn fault_model(&self) -> agora_core::FaultModel {
        let n = self.raft.replicas.len();
        agora_core::FaultModel::any(Some((n - 1) / 2))
    }

    fn checker(&self) -> Box<dyn Checker<KvNode>> {
        let n = self.nodes();
        Box::new(RaftChecker::new(n, &self.raft.replicas, &[], self.raft.election_timeout * 250))
    }
}

/// What the front end can learn of its replica at once.
#[derive(Clone, Debug)]
pub struct Status {
    /// This replica.
    pub me: NodeId,
    /// Its role.
    pub role: Role,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// Its term.
    pub term: u64,
    /// Its commit and applied index.
    pub commit: u64,
    /// Its applied index.
    pub applied: u64,
    /// The keys in its state.
    pub keys: usize,
}

/// A replica with its front end's session.
pub struct KvNode {
    replica: Replica<Strings>,
    client: Option<Client<Strings>>,
    incarnation: u32,
    replicas: Vec<NodeId>,
    retry: Duration,
    /// Submitted, not yet handed to the session: the next batch.
    queue: VecDeque<(Op<Strings>, usize, Answer)>,
    /// Handed to the session: its sequence number to the answer.
    waiting: HashMap<u64, Answer>,
}

impl KvNode {
    /// Queues operations (with their approximate sizes in bytes) and sends a batch if none is
    /// in flight. Called from the front end as a local call.
    pub fn submit(&mut self, ctx: &mut Context<'_, Self>, ops: Vec<(Op<Strings>, usize, Answer)>) {
        self.queue.extend(ops);
        self.send_batch(ctx);
    }

    /// Answers a read from this replica's own state at once (a stale read).
    pub fn read_local(&self, q: &agora_protocols::raft::strings::StrQuery) -> StrOut {
        use agora_protocols::raft::StateMachine;
        self.replica.state().query(q)
    }

    /// The replica's role, leader and progress.
    pub fn status(&self, me: NodeId) -> Status {
        Status {
            me,
            role: self.replica.role(),
            leader: self.replica.leader(),
            term: self.replica.term(),
            commit: self.replica.commit_index(),
            applied: self.replica.applied_index(),
            keys: self.replica.state().len(),
        }
    }

    fn send_batch(&mut self, ctx: &mut Context<'_, Self>) {
        let Some(client) = &mut self.client else { return };
        if client.pending() > 0 || self.queue.is_empty() {
            return;
        }
        let mut bytes = 0;
        let mut n = 0;
        while let Some((op, size, answer)) = self.queue.pop_front() {
            if answer.is_closed() {
                // Its connection is gone and nothing was sent: drop it.
                continue;
            }
            let seq = client.enqueue(ctx, op);
            self.waiting.insert(seq, answer);
            n += 1;
            bytes += size;
            if n >= BATCH_OPS || bytes >= BATCH_BYTES {
                break;
            }
        }
        client.flush(ctx);
    }
}

impl Protocol for KvNode {
    type Msg = RaftMsg<Strings>;
    type Timer = RaftTimer;
    type Obs = RaftObs;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        self.replica.on_start(ctx);
        // A new session per start (see `next_incarnation`): the old one's numbers are spent,
        // also when this replica lost its storage and rejoins.
        self.incarnation = next_incarnation(self.incarnation, self.replica.rejoining(), ctx.rng());
        ctx.persist(INCARNATION, &self.incarnation);
        let mut client = Client::new(
            session_id(ctx.id(), self.incarnation),
            self.replicas.clone(),
            BATCH_OPS * 2,
            self.retry,
        );
        client.prefer(ctx.id());
        self.client = Some(client);
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: RaftMsg<Strings>) {
        match msg {
            RaftMsg::Reply { .. } | RaftMsg::Redirect { .. } => {
                let Some(client) = &mut self.client else { return };
                for (seq, outcome) in client.on_message(ctx, from, msg) {
                    let output = match outcome {
                        Outcome::Applied { output, .. } | Outcome::Read { output, .. } => output,
                    };
                    if let Some(answer) = self.waiting.remove(&seq) {
                        let _ = answer.send(output);
                    }
                }
                self.send_batch(ctx);
            }
            msg => self.replica.on_message(ctx, from, msg),
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, timer: RaftTimer) {
        match timer {
            RaftTimer::ClientRetry => {
                if let Some(client) = &mut self.client {
                    client.on_retry(ctx);
                }
            }
            t => self.replica.on_timer(ctx, t),
        }
    }

    fn background(&self) -> bool {
        self.replica.settled() && self.waiting.is_empty() && self.queue.is_empty()
    }
}
