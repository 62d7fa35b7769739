//! `raft`: a replicated key-value store on the Raft log, with a client workload — the example
//! and test subject of [`super`].
//!
//! Nodes `0..R` are replicas (`--nodes R`), nodes `R..R+C` are clients (`--clients C`). Each
//! client runs `--msgs` operations (default 50) at random intervals (exponential, mean
//! `--interval-ms`), at most `--window` in flight; with `--interval-ms 0` it runs closed-loop,
//! a new operation as soon as one is answered, `--window` in flight. An operation is a read
//! (`Get`, through the read index) with probability `--reads`, otherwise a `Put` or an `Add`
//! (not idempotent: applying it twice shows) on one of eight keys. A restarted client starts
//! a new session and runs its workload again.
//!
//! **Checked** by [`RaftChecker`] on every run. Liveness is required within 250 shortest
//! election timeouts (5 s at the default `--timeout-ms 20`) of the last fault, or when every
//! node has only heartbeats left: a leader, every acknowledged command applied on every live
//! replica, every live client answered. The election timeout must exceed the network's round
//! trip (Raft's timing requirement, §5.6 of the paper): `agora check raft --latency
//! uniform:5,40` needs `--timeout-ms 150` or so, or elections split forever.
//!
//! Variants that break the protocol, to watch the checker catch them: `stale-reads` (the
//! leader answers queries at once from its own state), `no-dedup` (retried commands are
//! applied again) and `no-log-check` (voters grant without comparing the candidate's log with
//! their own, §5.4.1's restriction taken out: a leader may lack a committed entry).

use super::checker::RaftChecker;
use super::client::{op_id, session_id, Client};
use super::{Config, Op, Pos, RaftMsg, RaftObs, RaftTimer, Replica, StateMachine};
use agora_core::{Checker, Context, Corrupt, NodeId, Protocol, Setup, Stable};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

/// The key-value store.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Kv {
    map: BTreeMap<u64, u64>,
}

/// A command of the key-value store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvCmd {
    /// Sets `key` to `value`; answers [`KvOut::Done`].
    Put {
        /// The key.
        key: u64,
        /// The new value.
        value: u64,
    },
    /// Adds `delta` to the value (0 if absent); answers the new value.
    Add {
        /// The key.
        key: u64,
        /// What to add (wrapping at `u64::MAX`).
        delta: u64,
    },
}

/// A query of the key-value store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvQuery {
    /// The value of `key`, if it has one.
    Get {
        /// The key read.
        key: u64,
    },
}

/// What the key-value store answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvOut {
    /// A `Put` took effect.
    Done,
    /// A value: the new one after an `Add`, the one read by a `Get` (`None`: no such key).
    Value(Option<u64>),
}

impl StateMachine for Kv {
    type Command = KvCmd;
    type Query = KvQuery;
    type Output = KvOut;

    fn apply(&mut self, _: Pos, cmd: &KvCmd) -> KvOut {
        match *cmd {
            KvCmd::Put { key, value } => {
                self.map.insert(key, value);
                KvOut::Done
            }
            KvCmd::Add { key, delta } => {
                let v = self.map.entry(key).or_insert(0);
                *v = v.wrapping_add(delta);
                KvOut::Value(Some(*v))
            }
        }
    }

    fn query(&self, q: &KvQuery) -> KvOut {
        match q {
            KvQuery::Get { key } => KvOut::Value(self.map.get(key).copied()),
        }
    }
}

/// Timers of the key-value protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KvTimer {
    /// One of the Raft timers of a replica or client.
    Raft(RaftTimer),
    /// A client's next operation.
    Next,
}

impl From<RaftTimer> for KvTimer {
    fn from(t: RaftTimer) -> Self {
        KvTimer::Raft(t)
    }
}

const KEYS: u64 = 8;
const INCARNATION: &str = "client/incarnation";

/// The workload of one client.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Operations the client runs in all.
    pub ops: u32,
    /// Operations in flight at most (the client's window).
    pub window: usize,
    /// Mean time between operations; zero submits them all at once.
    pub interval: Duration,
    /// Probability that an operation is a read.
    pub reads: f64,
    /// A client retries with another replica after this long without an answer.
    pub retry: Duration,
}

/// A client node: a session of the key-value store running its workload. A restarted client
/// starts a new session.
#[derive(Clone)]
pub struct KvClient {
    client: Option<Client<Kv>>,
    incarnation: u32,
    replicas: Vec<NodeId>,
    work: Workload,
    remaining: u32,
    reported: bool,
    /// Some operation of this session was answered.
    answered: bool,
}

/// A node of the key-value protocol.
#[derive(Clone)]
pub enum KvNode {
    /// A replica of the store.
    Replica(Box<Replica<Kv>>),
    /// A client running a workload.
    Client(Box<KvClient>),
}

/// A node's state for the exhaustive explorer (a client's replicas and workload are the
/// setup's).
impl Hash for KvNode {
    fn hash<H: Hasher>(&self, h: &mut H) {
        match self {
            KvNode::Replica(r) => r.hash(h),
            KvNode::Client(c) => {
                (&c.client, c.incarnation, c.remaining, c.reported, c.answered).hash(h);
            }
        }
    }
}

impl KvNode {
    /// The node with every replica's id renamed, replica `r` becoming `to[r]` (see
    /// [`Replica::renamed`] and [`Client::renamed`]).
    pub fn renamed(&self, to: &[NodeId]) -> Self {
        match self {
            KvNode::Replica(r) => KvNode::Replica(Box::new(r.renamed(to))),
            KvNode::Client(c) => KvNode::Client(Box::new(KvClient {
                client: c.client.as_ref().map(|k| k.renamed(to)),
                replicas: c.replicas.iter().map(|r| to[r.index()]).collect(),
                ..(**c).clone()
            })),
        }
    }
}

impl KvClient {
    /// Queues the next operation of the workload (sent by the client's next flush).
    fn next_op(&mut self, ctx: &mut Context<'_, KvNode>) {
        let Some(client) = &mut self.client else { return };
        let key = ctx.rng().random_range(0..KEYS);
        // Whether it reads or writes is what the checker's properties turn on (a stale read
        // needs a write before it), so the explorer takes both; the key and the command are
        // data to it.
        let op = if ctx.choose_bool(self.work.reads) {
            Op::Query(KvQuery::Get { key })
        } else {
            let rng = ctx.rng();
            if rng.random_bool(0.5) {
                Op::Command(KvCmd::Put { key, value: rng.random() })
            } else {
                Op::Command(KvCmd::Add { key, delta: rng.random_range(1..100) })
            }
        };
        self.remaining -= 1;
        let session = client.session();
        let seq = client.enqueue(ctx, op);
        ctx.op_begin(op_id(session, seq));
    }

    /// Closed loop: keeps `window` operations in flight until the workload is done, so an
    /// operation's latency runs from its sending to its answer. Until the first answer (the
    /// client has found the leader) only one is in flight.
    fn fill(&mut self, ctx: &mut Context<'_, KvNode>) {
        let window = if self.answered { self.work.window } else { 1 };
        while self.remaining > 0 && self.client.as_ref().is_some_and(|c| c.pending() < window) {
            self.next_op(ctx);
        }
        if let Some(c) = &mut self.client {
            c.flush(ctx);
        }
    }

    fn schedule(&mut self, ctx: &mut Context<'_, KvNode>) {
        if self.remaining == 0 {
            return;
        }
        let mean = self.work.interval.as_secs_f64();
        let u: f64 = ctx.rng().random::<f64>();
        let after = Duration::from_secs_f64(-mean * (1.0 - u).ln());
        ctx.set_timer(KvTimer::Next, after);
    }

    fn check_done(&mut self, ctx: &mut Context<'_, KvNode>) {
        if let Some(c) = &self.client {
            if self.remaining == 0 && c.is_idle() && !self.reported {
                self.reported = true;
                ctx.observe(RaftObs::ClientDone { session: c.session() });
            }
        }
    }
}

impl Protocol for KvNode {
    type Msg = RaftMsg<Kv>;
    type Timer = KvTimer;
    type Obs = RaftObs;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        match self {
            KvNode::Replica(r) => r.on_start(ctx),
            KvNode::Client(c) => {
                c.incarnation += 1;
                ctx.persist(INCARNATION, &c.incarnation);
                let session = session_id(ctx.id(), c.incarnation);
                c.client = Some(Client::new(session, c.replicas.clone(), c.work.window, c.work.retry));
                c.remaining = c.work.ops;
                c.reported = false;
                c.answered = false;
                if c.work.interval.is_zero() {
                    c.fill(ctx);
                } else {
                    c.schedule(ctx);
                }
                c.check_done(ctx);
            }
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: RaftMsg<Kv>) {
        match self {
            KvNode::Replica(r) => r.on_message(ctx, from, msg),
            KvNode::Client(c) => {
                let Some(client) = &mut c.client else { return };
                let session = client.session();
                for (seq, _) in client.on_message(ctx, from, msg) {
                    ctx.op_end(op_id(session, seq));
                    c.answered = true;
                }
                if c.work.interval.is_zero() {
                    c.fill(ctx);
                }
                c.check_done(ctx);
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, timer: KvTimer) {
        match (self, timer) {
            (KvNode::Replica(r), KvTimer::Raft(t)) => r.on_timer(ctx, t),
            (KvNode::Client(c), KvTimer::Raft(RaftTimer::ClientRetry)) => {
                if let Some(client) = &mut c.client {
                    client.on_retry(ctx);
                }
            }
            (KvNode::Client(c), KvTimer::Next) => {
                c.next_op(ctx);
                if let Some(client) = &mut c.client {
                    client.flush(ctx);
                }
                c.schedule(ctx);
                c.check_done(ctx);
            }
            _ => {}
        }
    }

    fn background(&self) -> bool {
        match self {
            KvNode::Replica(r) => r.settled(),
            KvNode::Client(c) => c.reported,
        }
    }
}

/// A run of the replicated key-value store.
pub struct KvSetup {
    /// Replicas, node ids `0..replicas`.
    pub replicas: usize,
    /// Client nodes, after the replicas.
    pub clients: usize,
    /// The replicas' settings, shared.
    pub raft: Arc<Config>,
    /// Every client's workload.
    pub work: Workload,
    /// Liveness is judged this long after the last fault.
    pub settle: Duration,
}

impl KvSetup {
    /// `replicas` replicas and `clients` clients with Raft's defaults for `timeout`, the
    /// shortest election timeout.
    pub fn new(replicas: usize, clients: usize, timeout: Duration, work: Workload) -> Self {
        let ids = (0..replicas as u32).map(NodeId).collect();
        KvSetup { replicas, clients, raft: Arc::new(Config::new(ids, timeout)), work, settle: timeout * 250 }
    }
}

impl Setup for KvSetup {
    type Node = KvNode;

    fn name(&self) -> &'static str {
        "raft"
    }

    fn nodes(&self) -> usize {
        self.replicas + self.clients
    }

    /// Replicas rejoin (see [`Replica`]); a client's session numbering would restart.
    fn rejoins(&self, id: NodeId) -> bool {
        id.index() < self.replicas
    }

    fn build(&self, id: NodeId, stable: &Stable) -> Result<KvNode, Corrupt> {
        Ok(if id.index() < self.replicas {
            KvNode::Replica(Box::new(Replica::new(self.raft.clone(), id, stable)?))
        } else {
            KvNode::Client(Box::new(KvClient {
                client: None,
                incarnation: stable.load(INCARNATION)?.unwrap_or(0),
                replicas: self.raft.replicas.clone(),
                work: self.work.clone(),
                remaining: 0,
                reported: false,
                answered: false,
            }))
        })
    }

    fn fault_model(&self) -> agora_core::FaultModel {
        agora_core::FaultModel::any(Some((self.replicas - 1) / 2)).among_first(self.replicas)
    }

    /// Leader stickiness compares when the leader was last heard with the clock, and a
    /// client resends what has waited a retry timeout.
    fn reads_clock(&self) -> bool {
        true
    }

    /// Without clients, the replicas are interchangeable: a replica never compares ids, each
    /// draws what replica 0 draws under the explorer, and what names a replica — a vote, a
    /// leader, a leader's view of its peers, a redirection, the stored vote, a vote observed —
    /// is renamed ([`KvNode::renamed`], [`RaftMsg::renamed`], [`RaftObs::renamed`],
    /// [`super::renamed_hard_state`]). A client tries the replicas in an order of its own (the
    /// setup's, from the one its session number picks), and every reachable state has it so:
    /// a renaming of one would permute that order, so no two reachable states are renamings
    /// of each other, and with clients none are declared (the reduction would find none and
    /// cost the renamings' hashing).
    fn symmetry(&self) -> Option<agora_core::Symmetry<KvNode>> {
        if self.clients > 0 {
            return None;
        }
        Some(agora_core::Symmetry {
            classes: vec![self.raft.replicas.clone()],
            rename: KvNode::renamed,
            names: Some(agora_core::Names {
                msg: RaftMsg::renamed,
                obs: RaftObs::renamed,
                stored_keys: &[super::HARD_STATE],
                stored: |_, value, to| super::renamed_hard_state(value, to),
            }),
        })
    }

    fn checker(&self) -> Box<dyn Checker<KvNode>> {
        let clients: Vec<NodeId> = (self.replicas..self.nodes()).map(|i| NodeId(i as u32)).collect();
        Box::new(RaftChecker::new(self.nodes(), &self.raft.replicas, &clients, self.settle))
    }
}
