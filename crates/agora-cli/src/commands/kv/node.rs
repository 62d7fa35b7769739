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
//! **Holding a batch for the connections it answered.** Clients that wait for each answer
//! before they send again (redis-benchmark without `-P`, most applications) come back once a
//! batch is answered, but not at the same instant: sending the next batch on the first command
//! back takes only the few already there and leaves the others a whole round behind them. The
//! connections then settle into cohorts that take turns, and every command waits about two
//! rounds (measured: 100,000 SETs of 50 connections went in 4,190 entries, 24 a batch, at a
//! p50 of two rounds). So with nothing in flight, the next batch waits for every connection
//! the last batch answered to send again (any command: a PING or a stale read counts) or to
//! close, for [`HOLD`] at most. A connection whose next commands had queued before the batch
//! was answered is not waited for, and a full batch ([`BATCH_OPS`], [`BATCH_BYTES`]) waits
//! for no one; a connection that pauses before its next command holds one batch back by up
//! to `HOLD`.
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
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// Operations per batch (one log entry), at most.
pub const BATCH_OPS: usize = 4096;
/// Bytes of keys and values per batch, about: a batch is at most this plus one request (at
/// most 8 MiB, `--max-bulk`), within a frame's 16 MiB with room to spare.
pub const BATCH_BYTES: usize = 4 << 20;

const INCARNATION: &str = "kv/incarnation";

/// The longest a batch waits for the clients the last one answered (see the module docs). The
/// TCP runtime's timers tick in milliseconds: it fires within one or two.
pub const HOLD: Duration = Duration::from_millis(1);

/// A node's timers: Raft's (the replica's and the session's), and the batch's hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvTimer {
    /// One of Raft's.
    Raft(RaftTimer),
    /// The next batch has waited long enough for the clients the last one answered.
    Hold,
}

impl From<RaftTimer> for KvTimer {
    fn from(t: RaftTimer) -> Self {
        KvTimer::Raft(t)
    }
}

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
            queued_bytes: 0,
            waiting: HashMap::new(),
            batch: HashSet::new(),
            awaited: HashSet::new(),
            holding: false,
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
    queue: VecDeque<Queued>,
    /// The sizes of the queued commands, summed.
    queued_bytes: usize,
    /// Handed to the session: its sequence number to the answer.
    waiting: HashMap<u64, Answer>,
    /// The front end's connections with a command in the batch in flight.
    batch: HashSet<u64>,
    /// Connections the last batch answered that have not sent again: the next batch waits
    /// for them, at most [`HOLD`].
    awaited: HashSet<u64>,
    /// The next batch waits ([`KvTimer::Hold`] is set).
    holding: bool,
}

/// A command waiting for the next batch: the operation, its size in bytes (about), where its
/// answer goes, and the front end's connection it came from.
type Queued = (Op<Strings>, usize, Answer, u64);

impl KvNode {
    /// Queues operations of connection `conn` (with their approximate sizes in bytes) and sends
    /// a batch if it need not wait. Called from the front end as a local call for each read
    /// that held a command, also when none needs the log (`ops` empty: a stale read, INFO, a
    /// PING): the connection is back, and no batch waits for it any more.
    pub fn submit(&mut self, ctx: &mut Context<'_, Self>, conn: u64, ops: Vec<(Op<Strings>, usize, Answer)>) {
        self.awaited.remove(&conn);
        for (op, size, answer) in ops {
            self.queued_bytes += size;
            self.queue.push_back((op, size, answer, conn));
        }
        self.send_batch(ctx, false);
    }

    /// The front end's connection `conn` closed: no batch waits for it.
    pub fn closed(&mut self, ctx: &mut Context<'_, Self>, conn: u64) {
        // Its commands in flight, if any, are answered to no one.
        self.batch.remove(&conn);
        if self.awaited.remove(&conn) {
            self.send_batch(ctx, false);
        }
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

    /// Sends the next batch if none is in flight and it need not wait for more clients
    /// (`held_enough`: the hold is over).
    fn send_batch(&mut self, ctx: &mut Context<'_, Self>, held_enough: bool) {
        let Some(client) = &mut self.client else { return };
        if client.pending() > 0 || self.queue.is_empty() {
            return;
        }
        let full = self.queue.len() >= BATCH_OPS || self.queued_bytes >= BATCH_BYTES;
        if !held_enough && !full && !self.awaited.is_empty() {
            if !self.holding {
                self.holding = true;
                ctx.set_timer(KvTimer::Hold, HOLD);
            }
            return;
        }
        if self.holding {
            self.holding = false;
            ctx.cancel_timer(KvTimer::Hold);
        }
        self.awaited.clear();
        let mut bytes = 0;
        let mut n = 0;
        while let Some((op, size, answer, conn)) = self.queue.pop_front() {
            self.queued_bytes -= size;
            if answer.is_closed() {
                // Its connection is gone and nothing was sent: drop it.
                continue;
            }
            self.batch.insert(conn);
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
    type Timer = KvTimer;
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
                let done = client.on_message(ctx, from, msg);
                let answered = !done.is_empty();
                for (seq, outcome) in done {
                    let output = match outcome {
                        Outcome::Applied { output, .. } | Outcome::Read { output, .. } => output,
                    };
                    if let Some(answer) = self.waiting.remove(&seq) {
                        let _ = answer.send(output);
                    }
                }
                if answered && client.pending() == 0 {
                    // The batch is answered: the next waits for its connections, but not for
                    // those already back.
                    self.awaited = std::mem::take(&mut self.batch);
                    for (.., conn) in &self.queue {
                        self.awaited.remove(conn);
                    }
                }
                self.send_batch(ctx, false);
            }
            msg => self.replica.on_message(ctx, from, msg),
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, timer: KvTimer) {
        match timer {
            KvTimer::Raft(RaftTimer::ClientRetry) => {
                if let Some(client) = &mut self.client {
                    client.on_retry(ctx);
                }
            }
            KvTimer::Raft(t) => self.replica.on_timer(ctx, t),
            KvTimer::Hold => {
                self.holding = false;
                self.send_batch(ctx, true);
            }
        }
    }

    fn background(&self) -> bool {
        self.replica.settled() && self.waiting.is_empty() && self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_core::{Effect, Rng, Stable, Time};
    use agora_protocols::raft::strings::{SetIf, StrCmd};
    use agora_protocols::raft::Pos;
    use rand::SeedableRng as _;

    type Effects = Vec<agora_core::EffectOf<KvNode>>;

    /// Runs `f` as one step of `node` (replica 0 of 3); its effects.
    fn step(node: &mut KvNode, f: impl FnOnce(&mut KvNode, &mut Context<'_, KvNode>)) -> Effects {
        let (mut rng, mut effects) = (Rng::seed_from_u64(1), Effects::new());
        let mut ctx = Context::new(NodeId(0), 3, Time::ZERO, &mut rng, &mut effects);
        f(node, &mut ctx);
        effects
    }

    /// The operations of the session's requests among `effects`.
    fn requested(effects: &Effects) -> Vec<u64> {
        let mut seqs = Vec::new();
        for e in effects {
            if let Effect::Send { msg: RaftMsg::Request { ops, .. }, .. }
            | Effect::SendEarly { msg: RaftMsg::Request { ops, .. }, .. } = e
            {
                seqs.extend(ops.iter().map(|(seq, _)| *seq));
            }
        }
        seqs
    }

    fn set(key: &str) -> (Op<Strings>, usize, Answer) {
        let cmd = StrCmd::Set { key: key.into(), value: b"v".to_vec(), cond: SetIf::Always, get: false };
        let (answer, waits) = oneshot::channel();
        // Its connection stays open for the whole test: a command whose answer no one waits
        // for any more is dropped, not sent.
        std::mem::forget(waits);
        (Op::Command(cmd), 2, answer)
    }

    /// The leader's answer to every operation in flight.
    fn answer_all(node: &mut KvNode, seqs: &[u64]) -> Effects {
        let session = node.client.as_ref().unwrap().session();
        let results = seqs
            .iter()
            .map(|&seq| {
                let pos = Pos { index: 1, offset: seq as u32 };
                (seq, Outcome::Applied { pos, output: StrOut::Ok })
            })
            .collect();
        step(node, |n, ctx| n.on_message(ctx, NodeId(0), RaftMsg::Reply { session, results }))
    }

    /// Once a batch is answered, the next waits for every connection it answered to send again
    /// (or to close, or for the hold to pass), then carries them all in one request: clients
    /// that each wait for their answer end up in one batch, not in cohorts taking turns.
    #[test]
    fn the_next_batch_waits_for_the_connections_the_last_one_answered() {
        let setup = KvSetup::new(3, Duration::from_millis(50));
        let mut node = setup.build(NodeId(0), &Stable::new()).unwrap();
        step(&mut node, |n, ctx| n.on_start(ctx));
        let held = |e: &Effects| e.iter().any(|e| matches!(e, Effect::SetTimer { timer: KvTimer::Hold, .. }));
        let released =
            |e: &Effects| e.iter().any(|e| matches!(e, Effect::CancelTimer { timer: KvTimer::Hold }));
        // Nothing in flight: connection 1's command leaves at once, alone; 2 and 3 queue.
        let first = requested(&step(&mut node, |n, ctx| n.submit(ctx, 1, vec![set("a")])));
        assert_eq!(first.len(), 1);
        assert!(requested(&step(&mut node, |n, ctx| n.submit(ctx, 2, vec![set("b")]))).is_empty());
        assert!(requested(&step(&mut node, |n, ctx| n.submit(ctx, 3, vec![set("c")]))).is_empty());
        // Answered, the batch holds the next for connection 1, which joins 2 and 3.
        let e = answer_all(&mut node, &first);
        assert!(requested(&e).is_empty() && held(&e), "the next batch left without connection 1");
        let e = step(&mut node, |n, ctx| n.submit(ctx, 1, vec![set("d")]));
        let second = requested(&e);
        assert_eq!(second.len(), 3, "one batch for the three connections");
        assert!(released(&e));

        // They come back one after the other: the batch leaves with the last.
        answer_all(&mut node, &second);
        for (conn, key) in [(3, "e"), (2, "f")] {
            let e = step(&mut node, |n, ctx| n.submit(ctx, conn, vec![set(key)]));
            assert!(requested(&e).is_empty(), "sent before connection 1 was back");
        }
        let third = requested(&step(&mut node, |n, ctx| n.submit(ctx, 1, vec![set("g")])));
        assert_eq!(third.len(), 3);

        // A connection that closes is not waited for.
        answer_all(&mut node, &third);
        assert!(requested(&step(&mut node, |n, ctx| n.submit(ctx, 2, vec![set("h")]))).is_empty());
        assert!(requested(&step(&mut node, |n, ctx| n.submit(ctx, 1, vec![set("i")]))).is_empty());
        let fourth = requested(&step(&mut node, |n, ctx| n.closed(ctx, 3)));
        assert_eq!(fourth.len(), 2);

        // Ones that stay silent are waited for until the hold passes.
        answer_all(&mut node, &fourth);
        let e = step(&mut node, |n, ctx| n.submit(ctx, 4, vec![set("j")]));
        assert!(requested(&e).is_empty(), "sent before connections 1 and 2 were back or the hold passed");
        assert_eq!(requested(&step(&mut node, |n, ctx| n.on_timer(ctx, KvTimer::Hold))).len(), 1);
    }

    /// Who a batch waits for: not a connection whose next command queued while the batch was
    /// in flight, nor one that closed then; a command that needs no log (a PING) brings a
    /// connection back; a late duplicate of an answer does not end the hold; a full batch
    /// waits for no one.
    #[test]
    fn a_batch_waits_only_for_connections_that_may_still_send() {
        let setup = KvSetup::new(3, Duration::from_millis(50));
        let mut node = setup.build(NodeId(0), &Stable::new()).unwrap();
        step(&mut node, |n, ctx| n.on_start(ctx));
        // Connection 1 pipelines: its next command queued before the answer, so the next
        // batch leaves at once.
        let a = requested(&step(&mut node, |n, ctx| n.submit(ctx, 1, vec![set("a")])));
        step(&mut node, |n, ctx| n.submit(ctx, 1, vec![set("b")]));
        let b = requested(&answer_all(&mut node, &a));
        assert_eq!(b.len(), 1, "a pipelining connection was waited for");
        // Connection 1 closes with its command in flight: it is not waited for.
        step(&mut node, |n, ctx| n.submit(ctx, 2, vec![set("c")]));
        step(&mut node, |n, ctx| n.closed(ctx, 1));
        let c = requested(&answer_all(&mut node, &b));
        assert_eq!(c.len(), 1, "a closed connection was waited for");
        // Connection 2 is waited for; a late duplicate of its answer does not end the hold,
        // and a PING (no command for the log) brings it back.
        answer_all(&mut node, &c);
        let e = step(&mut node, |n, ctx| n.submit(ctx, 3, vec![set("d")]));
        assert!(requested(&e).is_empty() && node.holding);
        let e = answer_all(&mut node, &c);
        assert!(requested(&e).is_empty() && node.holding, "a duplicate answer ended the hold");
        let d = requested(&step(&mut node, |n, ctx| n.submit(ctx, 2, Vec::new())));
        assert_eq!(d.len(), 1, "connection 2's PING did not bring it back");
        // Connection 3 is waited for, but not by a full batch.
        answer_all(&mut node, &d);
        let many: Vec<_> = (0..BATCH_OPS).map(|i| set(&i.to_string())).collect();
        let e = step(&mut node, |n, ctx| n.submit(ctx, 9, many));
        assert_eq!(requested(&e).len(), BATCH_OPS, "a full batch was held");
    }
}
