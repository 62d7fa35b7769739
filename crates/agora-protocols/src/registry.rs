//! The registry: protocol CLI names, their parameters, and dispatch to a driver.
//!
//! A driver (the simulator, later the TCP runtime) implements [`Driver`]; [`dispatch`] builds
//! the named protocol's [`Setup`] from [`Params`] and hands it to the driver, so every driver
//! runs every protocol without a match of its own.

use crate::all_to_all::{self, AllToAllSetup};
use crate::commit::three_phase_commit::ThreePhaseCommitSetup;
use crate::commit::two_phase_commit::TwoPhaseCommitSetup;
use crate::election::bully::BullySetup;
use crate::election::ring_election::RingElectionSetup;
use crate::flood::{self, FloodSetup};
use crate::logical_clocks::{ClockKind, LogicalClockSetup, Scenario};
use crate::multicast::peer::MulticastSetup;
use crate::multicast::Order;
use crate::mutex::central_mutex::CentralMutexSetup;
use crate::mutex::lamport_mutex::LamportMutexSetup;
use crate::mutex::ricart_agrawala::RicartAgrawalaSetup;
use crate::mutex::token_ring_mutex::TokenRingMutexSetup;
use crate::patterns::central::CentralSetup;
use crate::patterns::gossip::GossipSetup;
use crate::patterns::ring_token::RingTokenSetup;
use crate::stream::StreamSetup;
use crate::topology::{Graph, TopologyKind};
use agora_core::{NodeId, Setup};
use std::sync::Arc;

/// A protocol's name and a one-line description, for `--help` and error messages.
pub const PROTOCOLS: &[(&str, &str)] = &[
    ("all-to-all", "every node greets every other: N(N-1) messages"),
    ("flood", "flooding broadcast from --origin over --topology"),
    ("stream", "every node streams --msgs messages to every other, --window in flight per link (load)"),
    ("2pc", "two-phase commit: node 0 coordinates, --no-votes lists participants voting no"),
    ("3pc", "three-phase commit with Skeen's termination protocol"),
    ("central-mutex", "mutual exclusion granted by coordinator node 0: 3 messages per entry"),
    ("lamport-mutex", "Lamport's mutual exclusion: 3(N-1) messages per entry"),
    ("ricart-agrawala", "Ricart-Agrawala mutual exclusion: 2(N-1) messages per entry"),
    ("token-ring-mutex", "mutual exclusion by a token circulating a ring from --start"),
    ("central", "clients JOIN server node 0, then make --requests request/reply exchanges"),
    ("ring-token", "a token circulates the ring for --rounds rounds from --start"),
    ("gossip", "push gossip of a rumour from --origin to --fanout random peers per round"),
    ("lamport-clock", "Lamport clocks over a scenario (--scenario seed|random|TEXT)"),
    ("vector-clock", "vector clocks over a scenario (--scenario seed|random|TEXT)"),
    ("unordered", "multicast, best effort: --msgs per peer at random intervals"),
    ("fifo", "reliable multicast delivered in each sender's order"),
    ("causal", "reliable causal multicast (vector clocks)"),
    ("total-lamport", "reliable total-order multicast by Lamport timestamps and acknowledgements"),
    ("total-sequencer", "reliable total-order multicast by a sequencer, with failover"),
    ("bully", "bully leader election with heartbeats; --start picks who starts (best/worst case)"),
    ("ring-election", "Chang-Roberts election on a ring with heartbeats; --start: single initiator"),
    ("raft", "a Raft-replicated key-value store: --nodes replicas, --clients clients of --msgs operations"),
    ("election", "the federated election count: --nodes legislature replicas, --voters ballots, 5 regions"),
];

/// Parameters shared by the protocols; each protocol uses the ones it needs.
#[derive(Clone, Debug)]
pub struct Params {
    pub nodes: usize,
    /// The run's master seed (random topologies derive from it).
    pub seed: u64,
    pub topology: TopologyKind,
    pub origin: u32,
    /// A deliberately broken variant, for watching checkers at work.
    pub variant: Option<String>,
    /// Messages per stream (`stream`, default 1000) or events per process of a random
    /// logical-clock scenario (default 8); `None`: the protocol's default.
    pub msgs: Option<u32>,
    /// Messages in flight per link (`stream`).
    pub window: u32,
    /// Participants that vote no (`2pc`, `3pc`).
    pub no_votes: Vec<u32>,
    /// Protocol timeout: votes, retransmissions, failure detection.
    pub timeout_ms: f64,
    /// Critical-section entries per node (mutual exclusion).
    pub requests: u32,
    /// Gossip fanout.
    pub fanout: u32,
    /// The node that starts (an election, a token); `None`: the protocol's default.
    pub start: Option<u32>,
    /// Rounds of the ring token.
    pub rounds: u32,
    /// Logical clocks: `seed`, `random` (from the seed, --msgs events per process) or a
    /// scenario in the seed report's notation.
    pub scenario: String,
    /// Mean time between a multicast peer's messages, or a Raft client's operations
    /// (exponential).
    pub interval_ms: f64,
    /// Client nodes (`raft`).
    pub clients: u32,
    /// Probability that a client operation is a read (`raft`).
    pub reads: f64,
    /// Compact the log after this many applied entries (`raft`).
    pub snapshot_every: u64,
    /// Voters on the roll (`election`).
    pub voters: u64,
    /// Share of bad ballots cast (`election`).
    pub bad_ballots: f64,
}

impl Params {
    pub fn new(nodes: usize, seed: u64) -> Self {
        Params {
            nodes,
            seed,
            topology: TopologyKind::Complete,
            origin: 0,
            variant: None,
            msgs: None,
            window: 100,
            no_votes: Vec::new(),
            timeout_ms: 20.0,
            requests: 3,
            fanout: 3,
            start: None,
            rounds: 1,
            scenario: "random".into(),
            interval_ms: 5.0,
            clients: 2,
            reads: 0.25,
            snapshot_every: 64,
            voters: 2_000,
            bad_ballots: 0.01,
        }
    }
}

/// A user's mistake in the protocol name or parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("unknown protocol `{0}`; known protocols: {known}", known = names())]
    UnknownProtocol(String),
    #[error("{0}")]
    Invalid(String),
}

fn names() -> String {
    PROTOCOLS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

/// Runs a protocol's setup; implemented by each driver.
pub trait Driver {
    type Output;
    fn run<S: Setup>(self, setup: S) -> Self::Output;
}

/// The scenario of a logical-clock run. A given scenario sets the number of processes.
pub fn scenario(params: &Params) -> Result<Scenario, ParamError> {
    if params.scenario == "random" {
        let events = params.msgs.unwrap_or(8);
        if params.nodes > 200 || events > 200 {
            return Err(ParamError::Invalid(
                "logical clocks: at most 200 processes and 200 events (--msgs) per process".into(),
            ));
        }
        return Ok(Scenario::random(params.nodes, events as usize, params.seed));
    }
    Scenario::parse(&params.scenario).map_err(ParamError::Invalid)
}

fn start(params: &Params) -> Result<Option<u32>, ParamError> {
    match params.start {
        Some(s) if s as usize >= params.nodes => {
            Err(ParamError::Invalid(format!("--start {s} is not a node (nodes are 0..{})", params.nodes)))
        }
        s => Ok(s),
    }
}

fn timeout(params: &Params) -> Result<std::time::Duration, ParamError> {
    if !(params.timeout_ms.is_finite() && params.timeout_ms > 0.0 && params.timeout_ms < 3.6e6) {
        return Err(ParamError::Invalid(format!(
            "--timeout-ms {}: must be a positive number of milliseconds",
            params.timeout_ms
        )));
    }
    Ok(std::time::Duration::from_secs_f64(params.timeout_ms / 1e3))
}

/// Builds protocol `name` from `params` and runs it with `driver`.
pub fn dispatch<D: Driver>(name: &str, params: &Params, driver: D) -> Result<D::Output, ParamError> {
    if params.nodes == 0 {
        return Err(ParamError::Invalid("--nodes must be at least 1".into()));
    }
    let variant = params.variant.as_deref();
    let bad_variant = |v: &str| ParamError::Invalid(format!("protocol `{name}` has no variant `{v}`"));
    match name {
        "all-to-all" => {
            if params.nodes > all_to_all::MAX_NODES {
                return Err(ParamError::Invalid(format!(
                    "all-to-all sends N(N-1) messages; --nodes {} is above its limit of {}",
                    params.nodes,
                    all_to_all::MAX_NODES
                )));
            }
            if let Some(v) = variant {
                return Err(bad_variant(v));
            }
            Ok(driver.run(AllToAllSetup { nodes: params.nodes }))
        }
        "flood" => {
            if params.origin as usize >= params.nodes {
                return Err(ParamError::Invalid(format!(
                    "--origin {} is not a node (nodes are 0..{})",
                    params.origin, params.nodes
                )));
            }
            let variant = match variant {
                None | Some("correct") => flood::Variant::Correct,
                Some("no-dedup") => flood::Variant::NoDedup,
                Some("no-relay") => flood::Variant::NoRelay,
                Some(v) => return Err(bad_variant(v)),
            };
            if params.topology == TopologyKind::Complete && params.nodes > all_to_all::MAX_NODES {
                return Err(ParamError::Invalid(format!(
                    "flood on a complete graph sends (N-1)^2 messages; use --topology regular:K above {} nodes",
                    all_to_all::MAX_NODES
                )));
            }
            let graph =
                Graph::build(params.topology, params.nodes, params.seed).map_err(ParamError::Invalid)?;
            Ok(driver.run(FloodSetup {
                graph: Arc::new(graph),
                origin: NodeId(params.origin),
                payload: params.seed,
                variant,
            }))
        }
        "stream" => {
            if let Some(v) = variant {
                return Err(bad_variant(v));
            }
            if params.window == 0 {
                return Err(ParamError::Invalid("--window must be at least 1".into()));
            }
            if params.nodes > 1_000 {
                return Err(ParamError::Invalid(format!(
                    "stream: --nodes {} is above its limit of 1000",
                    params.nodes
                )));
            }
            let msgs = params.msgs.unwrap_or(1000);
            Ok(driver.run(StreamSetup { nodes: params.nodes, msgs, window: params.window }))
        }
        "2pc" | "3pc" => {
            if let Some(v) = variant {
                return Err(bad_variant(v));
            }
            if params.nodes < 2 {
                return Err(ParamError::Invalid(format!(
                    "{name} needs a coordinator and a participant: --nodes 2 or more"
                )));
            }
            if let Some(p) = params.no_votes.iter().find(|p| **p == 0 || **p as usize >= params.nodes) {
                return Err(ParamError::Invalid(format!(
                    "--no-votes {p}: participants are nodes 1..{}",
                    params.nodes
                )));
            }
            let timeout = timeout(params)?;
            let no_votes = params.no_votes.clone();
            Ok(if name == "2pc" {
                driver.run(TwoPhaseCommitSetup { nodes: params.nodes, no_votes, timeout })
            } else {
                driver.run(ThreePhaseCommitSetup { nodes: params.nodes, no_votes, timeout })
            })
        }
        "central-mutex" | "lamport-mutex" | "ricart-agrawala" | "token-ring-mutex" => {
            if let Some(v) = variant {
                return Err(bad_variant(v));
            }
            let (nodes, requests) = (params.nodes, params.requests);
            if name == "central-mutex" && nodes < 2 {
                return Err(ParamError::Invalid(
                    "central-mutex needs a coordinator and a client: --nodes 2 or more".into(),
                ));
            }
            Ok(match name {
                "central-mutex" => driver.run(CentralMutexSetup { nodes, requests }),
                "lamport-mutex" => driver.run(LamportMutexSetup { nodes, requests }),
                "ricart-agrawala" => driver.run(RicartAgrawalaSetup { nodes, requests }),
                _ => driver.run(TokenRingMutexSetup {
                    nodes,
                    requests,
                    start: NodeId(start(params)?.unwrap_or(0)),
                }),
            })
        }
        "central" | "ring-token" | "gossip" => {
            if let Some(v) = variant {
                return Err(bad_variant(v));
            }
            let nodes = params.nodes;
            Ok(match name {
                "central" => {
                    if nodes < 2 {
                        return Err(ParamError::Invalid(
                            "central needs a server and a client: --nodes 2 or more".into(),
                        ));
                    }
                    driver.run(CentralSetup { nodes, requests: params.requests, timeout: timeout(params)? })
                }
                "ring-token" => {
                    let start = NodeId(start(params)?.unwrap_or(0));
                    driver.run(RingTokenSetup { nodes, rounds: params.rounds, start })
                }
                _ => {
                    if params.origin as usize >= nodes {
                        return Err(ParamError::Invalid(format!(
                            "--origin {} is not a node (nodes are 0..{nodes})",
                            params.origin
                        )));
                    }
                    if params.fanout == 0 {
                        return Err(ParamError::Invalid("--fanout must be at least 1".into()));
                    }
                    driver.run(GossipSetup {
                        nodes,
                        origin: NodeId(params.origin),
                        payload: params.seed,
                        fanout: params.fanout as usize,
                        period: timeout(params)? / 4,
                    })
                }
            })
        }
        "unordered" | "fifo" | "causal" | "total-lamport" | "total-sequencer" => {
            if let Some(v) = variant {
                return Err(bad_variant(v));
            }
            let order = Order::parse(name).expect("matched above");
            let msgs = params.msgs.unwrap_or(10);
            if params.nodes > 256 || msgs > 100_000 {
                return Err(ParamError::Invalid(
                    "multicast: at most 256 peers and 100000 --msgs each".into(),
                ));
            }
            let interval_ms = params.interval_ms;
            if !(interval_ms.is_finite() && interval_ms > 0.0) {
                return Err(ParamError::Invalid(format!(
                    "--interval-ms {interval_ms}: must be a positive number"
                )));
            }
            Ok(driver.run(MulticastSetup {
                order,
                nodes: params.nodes,
                msgs,
                interval_ms,
                timeout: timeout(params)?,
            }))
        }
        "lamport-clock" | "vector-clock" => {
            if let Some(v) = variant {
                return Err(bad_variant(v));
            }
            let scenario = scenario(params)?;
            if scenario.processes.len() != params.nodes {
                return Err(ParamError::Invalid(format!(
                    "the scenario has {} processes: run it with --nodes {}",
                    scenario.processes.len(),
                    scenario.processes.len()
                )));
            }
            let kind = if name == "lamport-clock" { ClockKind::Lamport } else { ClockKind::Vector };
            Ok(driver.run(LogicalClockSetup { kind, scenario }))
        }
        "bully" | "ring-election" => {
            if let Some(v) = variant {
                return Err(bad_variant(v));
            }
            let (nodes, timeout, starter) = (params.nodes, timeout(params)?, start(params)?.map(NodeId));
            Ok(if name == "bully" {
                driver.run(BullySetup { nodes, starter: starter.unwrap_or(NodeId(0)), timeout })
            } else {
                driver.run(RingElectionSetup { nodes, starter, timeout })
            })
        }
        "raft" => {
            let stale = match variant {
                None => false,
                Some("stale-reads") => true,
                Some("no-dedup") => false,
                Some(v) => return Err(bad_variant(v)),
            };
            if params.nodes > 15 {
                return Err(ParamError::Invalid(format!(
                    "raft: --nodes {} replicas; at most 15",
                    params.nodes
                )));
            }
            if params.clients > 1_000 {
                return Err(ParamError::Invalid(format!("raft: --clients {}; at most 1000", params.clients)));
            }
            if !(0.0..=1.0).contains(&params.reads) {
                return Err(ParamError::Invalid(format!(
                    "--reads {}: must be a probability in 0..1",
                    params.reads
                )));
            }
            if !(params.interval_ms.is_finite() && params.interval_ms >= 0.0) {
                return Err(ParamError::Invalid(format!(
                    "--interval-ms {}: must be zero or a positive number",
                    params.interval_ms
                )));
            }
            if params.snapshot_every == 0 || params.window == 0 {
                return Err(ParamError::Invalid("--snapshot-every and --window must be at least 1".into()));
            }
            let t = timeout(params)?;
            let work = crate::raft::kv::Workload {
                ops: params.msgs.unwrap_or(50),
                window: params.window as usize,
                interval: std::time::Duration::from_secs_f64(params.interval_ms / 1e3),
                reads: params.reads,
                retry: t * 5,
            };
            let mut setup = crate::raft::kv::KvSetup::new(params.nodes, params.clients as usize, t, work);
            let cfg = Arc::get_mut(&mut setup.raft).expect("just built");
            cfg.snapshot_every = params.snapshot_every;
            cfg.stale_reads = stale;
            cfg.dedup = variant != Some("no-dedup");
            Ok(driver.run(setup))
        }
        "election" => {
            if let Some(v) = variant {
                return Err(bad_variant(v));
            }
            let s = crate::vote_count::settings::Settings {
                spec: std::sync::Arc::new(crate::vote_count::default_spec(params.voters, params.seed)),
                replicas: params.nodes,
                timeout: timeout(params)?,
                window: params.window as usize,
                bad: params.bad_ballots,
                close_after: std::time::Duration::from_secs(60),
                seed: params.seed,
                roll: None,
            };
            crate::vote_count::validate(&s).map_err(ParamError::Invalid)?;
            Ok(driver.run(crate::vote_count::setup::VoteSetup::new(s)))
        }
        _ => Err(ParamError::UnknownProtocol(name.to_string())),
    }
}
