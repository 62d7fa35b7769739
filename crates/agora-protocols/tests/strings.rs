//! The `Strings` store of `agora kv` in the simulator: 3 replicas and 2 clients running every
//! kind of command (SET with NX/XX, DEL, INCRBY, APPEND, MSET, CAS, reads through the log and
//! at a read index) under loss, duplication, reordering and crash-restarts, judged by Raft's
//! checker (safety, exactly-once, linearizable reads, liveness) on every seed.

use agora_core::{Checker, Context, Corrupt, NodeId, Protocol, Setup, Stable};
use agora_protocols::raft::checker::RaftChecker;
use agora_protocols::raft::client::{session_id, Client};
use agora_protocols::raft::strings::{SetIf, StrCmd, StrQuery, Strings};
use agora_protocols::raft::{Config, Op, RaftMsg, RaftObs, RaftTimer, Replica};
use agora_sim::{Faults, SimConfig, Simulation};
use rand::Rng as _;
use std::sync::Arc;
use std::time::Duration;

const OPS: u32 = 40;
const INCARNATION: &str = "client/incarnation";

enum Node {
    Replica(Box<Replica<Strings>>),
    Client { client: Option<Client<Strings>>, incarnation: u32, replicas: Vec<NodeId>, left: u32, done: bool },
}

fn key(ctx: &mut Context<'_, Node>) -> Vec<u8> {
    format!("k{}", ctx.rng().random_range(0..4)).into_bytes()
}

fn op(ctx: &mut Context<'_, Node>) -> Op<Strings> {
    let k = key(ctx);
    let v = ctx.rng().random_range(0..5u32).to_string().into_bytes();
    match ctx.rng().random_range(0..10) {
        0 => Op::Query(StrQuery::Get { key: k }),
        1 => Op::Query(StrQuery::MGet { keys: vec![k, key(ctx)] }),
        2 => Op::Command(StrCmd::Read(StrQuery::Exists { keys: vec![k] })),
        3 => {
            let cond = [SetIf::Always, SetIf::Absent, SetIf::Present][ctx.rng().random_range(0..3)];
            Op::Command(StrCmd::Set { key: k, value: v, cond, get: ctx.rng().random_bool(0.3) })
        }
        4 => Op::Command(StrCmd::Del { keys: vec![k] }),
        5 => Op::Command(StrCmd::IncrBy { key: k, delta: ctx.rng().random_range(-3..4) }),
        6 => Op::Command(StrCmd::Append { key: k, value: v }),
        7 => Op::Command(StrCmd::MSet { pairs: vec![(k, v.clone()), (key(ctx), v)] }),
        _ => Op::Command(StrCmd::Cas { key: k, expected: v, new: b"1".to_vec() }),
    }
}

impl Node {
    fn fill(&mut self, ctx: &mut Context<'_, Node>) {
        let Node::Client { client: Some(c), left, done, .. } = self else { return };
        while *left > 0 && c.pending() < 8 {
            *left -= 1;
            let o = op(ctx);
            c.enqueue(ctx, o);
        }
        c.flush(ctx);
        if *left == 0 && c.is_idle() && !*done {
            *done = true;
            ctx.observe(RaftObs::ClientDone { session: c.session() });
        }
    }
}

impl Protocol for Node {
    type Msg = RaftMsg<Strings>;
    type Timer = RaftTimer;
    type Obs = RaftObs;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        match self {
            Node::Replica(r) => r.on_start(ctx),
            Node::Client { client, incarnation, replicas, left, done } => {
                *incarnation += 1;
                ctx.persist(INCARNATION, &*incarnation);
                let session = session_id(ctx.id(), *incarnation);
                *client = Some(Client::new(session, replicas.clone(), 8, Duration::from_millis(100)));
                (*left, *done) = (OPS, false);
                self.fill(ctx);
            }
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: RaftMsg<Strings>) {
        match self {
            Node::Replica(r) => r.on_message(ctx, from, msg),
            Node::Client { client: Some(c), .. } => {
                c.on_message(ctx, from, msg);
                self.fill(ctx);
            }
            Node::Client { .. } => {}
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, timer: RaftTimer) {
        match self {
            Node::Replica(r) => r.on_timer(ctx, timer),
            Node::Client { client: Some(c), .. } => c.on_retry(ctx),
            Node::Client { .. } => {}
        }
    }

    fn background(&self) -> bool {
        match self {
            Node::Replica(r) => r.settled(),
            Node::Client { done, .. } => *done,
        }
    }
}

struct StringsSetup {
    raft: Arc<Config>,
}

impl Setup for StringsSetup {
    type Node = Node;

    fn name(&self) -> &'static str {
        "strings"
    }

    fn nodes(&self) -> usize {
        5
    }

    fn rejoins(&self, id: NodeId) -> bool {
        id.index() < 3
    }

    fn build(&self, id: NodeId, stable: &Stable) -> Result<Node, Corrupt> {
        Ok(if id.index() < 3 {
            Node::Replica(Box::new(Replica::new(self.raft.clone(), id, stable)?))
        } else {
            Node::Client {
                client: None,
                incarnation: stable.load(INCARNATION)?.unwrap_or(0),
                replicas: self.raft.replicas.clone(),
                left: 0,
                done: false,
            }
        })
    }

    fn checker(&self) -> Box<dyn Checker<Node>> {
        let clients = [NodeId(3), NodeId(4)];
        Box::new(RaftChecker::new(5, &self.raft.replicas, &clients, Duration::from_secs(5)))
    }
}

const FAULTS: &str = "[network]\nlatency = { dist = \"uniform\", min_ms = 1.0, max_ms = 5.0 }\nloss = 0.2\n\
        duplicate = 0.1\nreorder = 0.2\nreorder_delay_ms = 10\n\
        [random_crashes]\ncount = 4\nfrom_ms = 0\nto_ms = 600\nmin_down_ms = 1\nmax_down_ms = 150\nrestart = true\n";

fn run(seed: u64, dedup: bool) -> agora_sim::Outcome<RaftObs> {
    let faults = Faults::from_toml(FAULTS).unwrap();
    faults.validate(5).unwrap();
    let mut cfg = SimConfig::new(seed).with_faults(faults);
    cfg.max_time = agora_core::Time::from_millis(30_000);
    cfg.keep_observations = true;
    let mut raft = Config::new((0..3).map(NodeId).collect(), Duration::from_millis(20));
    raft.snapshot_every = 4;
    raft.dedup = dedup;
    Simulation::new(StringsSetup { raft: Arc::new(raft) }, cfg).run()
}

#[test]
fn the_strings_store_passes_raft_checks_under_faults() {
    for seed in 0..60 {
        let out = run(seed, true);
        assert!(out.violations.is_empty(), "seed {seed}: {:?}", out.violations);
        let applied = out.observations.iter().filter(|o| matches!(o.2, RaftObs::Applied { .. })).count();
        let done = out.observations.iter().filter(|o| matches!(o.2, RaftObs::ClientDone { .. })).count();
        assert!(done >= 2 && applied > 0, "seed {seed}: {done} clients done, {applied} entries applied");
    }
}

/// The checker is awake: with retried commands applied again (`dedup` off) some seed breaks
/// exactly-once.
#[test]
fn without_dedup_the_checker_catches_a_retried_command_applied_twice() {
    let caught = (0..60).any(|seed| run(seed, false).violations.iter().any(|v| v.property == "exactly-once"));
    assert!(caught);
}
