//! The command line: every subcommand and flag of `agora`, with the help a newcomer reads.

//!
//! Every number is parsed by a range-checked parser of [`crate::values`]; the range is in the
//! flag's help.

use crate::values::{self, count, MAX_NODES};
use agora_protocols::params::{self, Kind, Param, Value};
use agora_protocols::Params;
use clap::{Arg, ArgAction, Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

pub use agora_protocols::params::MAX_VOTERS;

/// The whole command line.
#[derive(Parser, Debug)]
#[command(
    name = "agora",
    version,
    about = "Distributed algorithms, simulated deterministically and checked against their properties.",
    long_about = "Distributed algorithms, simulated deterministically and checked against their properties.\n\n\
        agora runs a protocol's nodes in a simulator with virtual time: one --seed replays a run exactly, \
        faults (loss, partitions, crashes, pauses, clock skew) are flags or a TOML file, every message and \
        byte is counted, and every run is judged by the protocol's checker.\n\n\
        Start here:\n  agora protocols\n  agora sim flood --nodes 20 --topology ring --diagram flood.svg\n  \
        agora sim all-to-all --nodes 8 --loss 0.1 --json\n  agora run flood --nodes 8 --topology ring    (over TCP)\n\n\
        Logs (network runs) go to stderr; set RUST_LOG=info or debug for more.\n\n\
        Exit codes: 0 success, 1 a property was violated, 2 a mistake in the command or its input\n\
        (agora lincheck: 4 unknown, its search gave up)."
)]
pub struct Cli {
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// `agora`'s subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a protocol in the deterministic simulator and check it.
    Sim(Box<SimArgs>),
    /// List the protocols, what they do and the properties their checkers judge.
    Protocols,
    /// Message complexity, bytes, latency, energy and CO2e of the classic algorithms against N,
    /// as a table, CSV, JSON and SVG charts.
    Complexity(ComplexityArgs),
    /// Ordered multicast compared side by side: disagreements, FIFO and causal violations,
    /// cost and latency of every ordering guarantee over a sweep of peers and messages.
    Multicast(Box<MulticastArgs>),
    /// Logical clocks over a scenario: every event with its Lamport or vector timestamp.
    Clocks(ClocksArgs),
    /// Run a protocol in the simulator over a range of seeds and report every failing seed.
    Check(Box<CheckArgs>),
    /// Run a protocol over TCP: every node in this process on 127.0.0.1, no set-up.
    Run(Box<RunArgs>),
    /// Run one node of a cluster file (one process per node, or per machine).
    Node(NodeArgs),
    /// Start every node of a cluster file as a local process, gather their summaries.
    Up(UpArgs),
    /// Measure the simulator's speed and memory (runs each size in its own process).
    Bench(BenchArgs),
    /// The federated election count: citizens vote through 5 regions, coordinators forward
    /// ballots to a Raft legislature that verifies, counts and publishes them. Runs over
    /// loopback TCP with redb (or in the simulator with --sim); `register` and `verify` below.
    Election(Box<ElectionArgs>),
    /// The trading post of the seed report: buyers and sellers of fish, salt and boar trade
    /// through a bully-elected trader who falls sick now and then; every trade committed to a
    /// replicated ledger. Runs the report's test case 1 over loopback TCP with redb by default
    /// (or in the simulator with --sim), prints the trade log, the announcements, the accounts
    /// and the checker's verdict.
    Market(Box<MarketArgs>),
    /// Check a history of key-value or compare-and-set register operations for
    /// linearizability (Jepsen's EDN or log lines, or agora's JSON lines), key by key; exit 0
    /// linearizable, 1 not, 2 bad input, 4 unknown (--max-steps reached).
    Lincheck(LincheckArgs),
    /// Explore every interleaving of a small cluster's deliveries and timers, with bounded
    /// loss, duplication, crashes and restarts, judging the protocol's safety properties in
    /// every state; a violation prints its shortest trace. Exit 0 none found, 1 found.
    Explore(Box<ExploreArgs>),
    /// A published experiment reproduced in the simulator: `raft-downtime` (Figure 16 of the
    /// Raft paper: how long a 5-replica cluster is without a leader after its leader crashes).
    Experiment(ExperimentArgs),
    /// A Raft-replicated key-value store that speaks the Redis protocol (RESP): redis-cli,
    /// redis-benchmark and Redis client libraries work unmodified. Without a subcommand: 3
    /// replicas on loopback with redb, their RESP ports printed, until Ctrl-C (or a built-in
    /// workload with --workload); `serve` runs one replica of a cluster file (docs/kv.md).
    Kv(Box<KvArgs>),
    /// A cluster of containers on this machine's Docker (or a Swarm): `up` writes a cluster
    /// file and a Compose file, builds the image if missing and starts every node in its own
    /// container; `status` says who is up and who leads; `down` removes what `up` made.
    Cluster(ClusterArgs),
    /// Exit 0 if the node at an address answers (the containers' health check: the image has
    /// no shell), 1 with one line if it does not.
    Health(HealthArgs),
    /// The voting service (docs/vote-protocol.md): members log in, declare and negotiate their
    /// node info, discover each other, vote, and see every join, leave, failure and consensus
    /// pushed to them; the state is a Raft log on a cluster of servers. Without a subcommand:
    /// 3 servers on loopback and a crowd of simulated members, then the result and the checks;
    /// `serve` runs one server of a cluster file; `conformance` tests any server.
    Vote(Box<VoteArgs>),
}

/// The arguments of `agora explore`.
#[derive(Args, Debug)]
pub struct ExploreArgs {
    /// The protocol to explore: flood, 2pc, 3pc, bully, ring-election, central-mutex,
    /// lamport-mutex, ricart-agrawala, token-ring-mutex or raft.
    pub protocol: String,
    /// The protocol\'s parameters.
    #[command(flatten)]
    pub params: ProtocolArgs,
    /// Explore at most this many steps from the start [1..=1000].
    #[arg(long, value_name = "N", default_value_t = 30, value_parser = count::<usize>(1, 1000))]
    pub depth: usize,
    /// Stop after this many distinct states [1..=10^9].
    #[arg(long, value_name = "N", default_value_t = 2_000_000, value_parser = count::<usize>(1, 1_000_000_000))]
    pub max_states: usize,
    /// Take no new state once this process holds this many MiB (default: half of this
    /// machine's memory); the search then ends as at the state limit [16..=16777216].
    #[arg(long, value_name = "MIB", value_parser = count::<u64>(16, 1 << 24))]
    pub max_memory_mb: Option<u64>,
    /// Messages the network may lose in any one trace [0..=10].
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = count::<u8>(0, 10))]
    pub loss: u8,
    /// Messages the network may duplicate in any one trace [0..=10].
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = count::<u8>(0, 10))]
    pub duplicate: u8,
    /// Nodes that may crash in any one trace [0..=10].
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = count::<u8>(0, 10))]
    pub crashes: u8,
    /// Restarts of crashed nodes in any one trace [0..=10].
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = count::<u8>(0, 10))]
    pub restarts: u8,
    /// Timer firings in any one trace [0..=1000] (default: no bound but the depth): bounds a
    /// protocol driven by its timers, such as Raft's terms.
    #[arg(long, value_name = "N", value_parser = count::<u32>(0, 1000))]
    pub fires: Option<u32>,
    /// When timers fire: async (at any step, before any message arrives) or sync (only when
    /// no message is in flight: the synchronous network classic elections assume).
    #[arg(long, default_value = "async", value_parser = ["async", "sync"])]
    pub timing: String,
    /// FIFO links: each link delivers in the order sent (as TCP does); by default the network
    /// may reorder any messages.
    #[arg(long)]
    pub fifo: bool,
    /// Threads exploring each level [1..=256] (default: one per core). Any number finds the
    /// same states and the same shortest trace.
    #[arg(long, value_name = "N", value_parser = count::<usize>(1, 256))]
    pub threads: Option<usize>,
    /// Count a state and its renamings of interchangeable nodes apart (by default they count
    /// as one, where the protocol declares interchangeable nodes: 2PC's participants with the
    /// same vote, flood's nodes other than the origin on a complete graph).
    #[arg(long)]
    pub no_symmetry: bool,
    /// Instead of every state: N random walks from the initial state, each step drawn from
    /// those the state allows, each walk up to --depth steps [1..=1e9]. Keeps no states, so
    /// it goes deeper than the search can; finds, but cannot prove the absence of, violations.
    #[arg(long, value_name = "N", value_parser = count::<u64>(1, 1_000_000_000))]
    pub walks: Option<u64>,
    /// With --walks: the seed of the draws (the same seed, the same walks).
    #[arg(long, value_name = "N", default_value_t = 1, requires = "walks")]
    pub seed: u64,
    /// Print exactly one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    /// When a violation is found, draw its shortest trace as a space-time diagram (SVG), one
    /// step per millisecond.
    #[arg(long, value_name = "FILE.svg")]
    pub diagram: Option<PathBuf>,
    /// When a violation is found, write its shortest trace as a schedule that `agora sim
    /// --schedule FILE` replays step by step.
    #[arg(long, value_name = "FILE.json")]
    pub schedule: Option<PathBuf>,
}

/// The arguments of `agora experiment`.
#[derive(Args, Debug)]
pub struct ExperimentArgs {
    /// The experiment to run.
    #[command(subcommand)]
    pub which: Experiment,
}

/// The experiments `agora experiment` reproduces.
#[derive(Subcommand, Debug)]
pub enum Experiment {
    /// Figure 16 of Ongaro and Ousterhout's Raft paper (USENIX ATC 2014): 5 replicas, the
    /// leader crashed, the time until a new leader is elected, over many trials for each
    /// election timeout range; a table row per range, a CSV of every trial and the two CDF charts
    /// (docs/raft-downtime.md).
    RaftDowntime(RaftDowntimeArgs),
}

/// The arguments of `agora experiment raft-downtime`.
#[derive(Args, Debug)]
pub struct RaftDowntimeArgs {
    /// Trials per range [1..=100000] [default: the paper's, 1000 per range and 100 for a range
    /// whose bounds are equal].
    #[arg(long, value_name = "N", value_parser = count::<u32>(1, 100_000))]
    pub trials: Option<u32>,
    /// Trial i of every range runs seed SEED+i: `--trials 1 --seed SEED+i` replays it alone.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Election timeout ranges MIN-MAX in ms, comma-separated, 1 <= MIN <= MAX <= 6000
    /// [default: the paper's,
    /// 150-150,150-151,150-155,150-175,150-200,150-300 and 12-24,25-50,50-100,100-200].
    #[arg(long, value_delimiter = ',', value_parser = values::timeout_range)]
    pub ranges: Vec<values::TimeoutRange>,
    /// One-way message latency: constant:MS, uniform:MIN,MAX, exp:MEAN or
    /// lognormal:MEDIAN,SIGMA [default: uniform:4,9, a broadcast time of about 15 ms as in the
    /// paper].
    #[arg(long, value_name = "DIST", default_value = "uniform:4,9", value_parser = values::latency)]
    pub latency: agora_sim::Latency,
    /// Pre-vote (§9.6 of Ongaro's thesis): off, as in the paper's implementation, or on, as
    /// agora's Raft runs by default.
    #[arg(long, default_value = "off", value_parser = ["off", "on"])]
    pub pre_vote: String,
    /// Write raft-downtime.csv (one row per trial) and raft-downtime.svg (the CDF charts) here.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print exactly one JSON object on stdout instead of the tables.
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `agora lincheck`.
#[derive(Args, Debug)]
pub struct LincheckArgs {
    /// The history file.
    pub history: PathBuf,
    /// The sequential object: kv (get, put, append, cas), cas-register (read, write, cas), or
    /// auto (kv if an operation is a get, put or append).
    #[arg(long, default_value = "auto", value_parser = ["auto", "kv", "cas-register"])]
    pub model: String,
    /// The file's format: edn (Jepsen's history.edn), jepsen-log (Jepsen's log lines or
    /// history.txt), agora (agora's JSON lines), or auto (from its first characters).
    #[arg(long, default_value = "auto", value_parser = ["auto", "edn", "jepsen-log", "agora"])]
    pub format: String,
    /// Give up on a key after this many search steps and call it unknown [1..=10^15]
    /// [default: no limit].
    #[arg(long, value_name = "N", value_parser = count::<u64>(1, 1_000_000_000_000_000))]
    pub max_steps: Option<u64>,
    /// Check every key even after one is found not linearizable (by default the others are
    /// left then: the verdict is known, and a key with many concurrent clients can take long).
    #[arg(long)]
    pub all_keys: bool,
    /// Write lincheck.svg (the timeline of the first key that is not linearizable) and
    /// lincheck.json (the verdict) here.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print exactly one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

/// A flag of a protocol parameter, parsed (and range-checked) by the parameter schema.
fn schema(p: &'static Param) -> impl Fn(&str) -> Result<Value, String> + Clone + Send + Sync + 'static {
    move |s: &str| p.parse(s)
}

/// The arguments of `agora market`.
#[derive(Args, Debug)]
#[command(allow_negative_numbers = true)]
pub struct MarketArgs {
    /// The report's scenario: test-case-1 (7 peers: 5 sellers, 2 buyers after two different
    /// goods), test-case-2 (5 peers: 4 sellers, 1 buyer, peer 4 sick at the start),
    /// test-case-3 (as 1, both buyers after the same good), experiment (the report's table: 5
    /// peers, 3 buyers, 1 seller, peer 4 the first trader; 334 buys each) or normal (roles
    /// drawn from the seed) [default: test-case-1, unless --market gives the roles].
    #[arg(long, value_parser = schema(&params::SCENARIO))]
    pub scenario: Option<Value>,
    /// A market file (TOML, see examples/market.toml): the goods, their prices, the trader's
    /// commission, the restock amount and every peer's role, in place of a scenario.
    #[arg(long, value_name = "FILE")]
    pub market: Option<PathBuf>,
    /// Peers [default: the scenario's or the market file's; 7 for normal] [2..=256].
    #[arg(long, value_name = "N", value_parser = count::<usize>(2, 256))]
    pub peers: Option<usize>,
    /// Buys each buyer makes, one at a time [default: 1000 in test-case-2, 334 in experiment,
    /// else 10]
    /// [0..=1000000].
    #[arg(long, value_name = "N", value_parser = schema(&params::BUYS))]
    pub buys: Option<Value>,
    /// Chance per transaction that the trader falls sick [default: 0.02] [0..=1].
    #[arg(long, value_name = "P", value_parser = schema(&params::SICK))]
    pub sick: Option<Value>,
    /// How long a sick peer stays away before it rejoins [default: 200] [0.001..=3600000].
    #[arg(long, value_name = "MS", value_parser = schema(&params::RECOVER_MS))]
    pub recover_ms: Option<Value>,
    /// Where the ledger lives: replicated (a Raft log on the last 3 or 5 peers) or local (the
    /// trader's memory, the report's design) [default: replicated].
    #[arg(long, value_name = "MODE", value_parser = schema(&params::LEDGER))]
    pub ledger: Option<Value>,
    /// Mean pause of a buyer between an answer and its next buy, drawn from an exponential
    /// distribution; 0 buys back to back [default: 2] [0..=3600000].
    #[arg(long, value_name = "MS", value_parser = schema(&params::INTERVAL_MS))]
    pub interval_ms: Option<Value>,
    /// Buys each buyer keeps in flight; the report's buyers make one at a time [default: 1]
    /// [1..=1024].
    #[arg(long, value_name = "N", value_parser = schema(&params::WINDOW))]
    pub window: Option<Value>,
    /// Whom buyers send their buys to: all (every peer, with Lamport timestamps, as in the
    /// report) or trader (the trader alone; its answers carry its Lamport clock)
    /// [default: all].
    #[arg(long, value_name = "TO", value_parser = schema(&params::MULTICAST))]
    pub multicast: Option<Value>,
    /// Timeout for elections and retries [default: 200 over TCP, 20 in the simulator]
    /// [0.001..=3600000].
    #[arg(long, value_name = "MS", value_parser = schema(&params::TIMEOUT_MS))]
    pub timeout_ms: Option<Value>,
    /// The seed of the run's random sources (roles of `normal`, sickness, goods).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Run in the deterministic simulator instead of over TCP (fault flags apply).
    #[arg(long)]
    pub sim: bool,
    /// The faults to inject (with --sim).
    #[command(flatten)]
    pub faults: FaultArgs,
    /// Give up after this much (wall or virtual) time (0..=1e9].
    #[arg(long, value_name = "MS", default_value_t = 600_000.0, value_parser = values::limit_ms)]
    pub max_time_ms: f64,
    /// Write market.svg (the response time of every buy against its number, elections marked:
    /// the report's Figure 2) and market.csv here.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print exactly one JSON object on stdout instead of the log and tables.
    #[arg(long)]
    pub json: bool,
    /// The live view of the run in a browser (docs/live-view.md).
    #[command(flatten)]
    pub live: LiveArgs,
}

/// The arguments of `agora election`.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, allow_negative_numbers = true)]
pub struct ElectionArgs {
    /// `register` or `verify`; none runs an election.
    #[command(subcommand)]
    pub action: Option<ElectionAction>,
    /// The election to run when no action is given.
    #[command(flatten)]
    pub run: ElectionRunArgs,
}

/// What `agora election` can do besides running one.
#[derive(Subcommand, Debug)]
pub enum ElectionAction {
    /// Write a voter roll with one secret credential per voter (CSV: voter,state,credential).
    Register(RegisterArgs),
    /// Check the published bulletin board against the results (every leaf, the Merkle root,
    /// the counts, the digest) and every receipt given against the board.
    Verify(VerifyArgs),
}

/// The arguments of an election run (`agora election`).
#[derive(Args, Debug)]
pub struct ElectionRunArgs {
    /// The election file (TOML; see examples/election.toml) [default: a 3-option demo over
    /// the 50 states in 5 regions].
    #[arg(long, value_name = "FILE")]
    pub election: Option<PathBuf>,
    /// A voter roll from `agora election register` [default: a synthetic roll of --voters].
    #[arg(long, value_name = "FILE")]
    pub roll: Option<PathBuf>,
    /// Voters of a synthetic roll [1..=2000000].
    #[arg(long, default_value_t = 100_000, value_parser = count::<u64>(1, MAX_VOTERS))]
    pub voters: u64,
    /// Legislature replicas (an odd number tolerates the crash of a minority) [1..=15].
    #[arg(long, default_value_t = 3, value_parser = count::<usize>(1, 15))]
    pub replicas: usize,
    /// Run in the deterministic simulator instead of over TCP (fault flags apply).
    #[arg(long)]
    pub sim: bool,
    /// The seed of the run's random sources: the same seed gives the same run.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Simulator: crash this many random legislature replicas (one at a time at most a
    /// minority), each restarted after a while [0..=10000].
    #[arg(long, value_name = "K", value_parser = count::<u32>(0, 10_000))]
    pub crash_replicas: Option<u32>,
    /// The faults to inject.
    #[command(flatten)]
    pub faults: FaultArgs,
    /// Ballots each citizen keeps in flight (more: more throughput, longer queues)
    /// [1..=100000].
    #[arg(long, default_value_t = 192, value_parser = count::<u32>(1, 100_000))]
    pub window: u32,
    /// Share of bad ballots cast (forged credentials, options not on the ballot, second votes)
    /// [0..=1].
    #[arg(long, value_name = "P", default_value_t = 0.001, value_parser = values::probability)]
    pub bad_ballots: f64,
    /// Timeout for elections and retries [default: 300 over TCP, 20 in the simulator]
    /// [0.001..=3600000].
    #[arg(long, value_name = "MS", value_parser = values::timer_ms)]
    pub timeout_ms: Option<f64>,
    /// Close the election this long after the start if some region has not finished
    /// (0..=1e9].
    #[arg(long, value_name = "MS", default_value_t = 600_000.0, value_parser = values::limit_ms)]
    pub close_after_ms: f64,
    /// Keep the replicas' databases here [default: a temporary directory, removed afterwards].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Write results.json, results.csv, map.svg (a tile map of the states), board.csv (every
    /// counted ballot), receipts.csv and receipts.jsonl here.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Give up after this much (wall or virtual) time (0..=1e9].
    #[arg(long, value_name = "MS", default_value_t = 600_000.0, value_parser = values::limit_ms)]
    pub max_time_ms: f64,
    /// Print exactly one JSON object on stdout instead of tables.
    #[arg(long)]
    pub json: bool,
    /// The live view of the run in a browser (docs/live-view.md).
    #[command(flatten)]
    pub live: LiveArgs,
}

/// The arguments of `agora election register`.
#[derive(Args, Debug)]
pub struct RegisterArgs {
    /// The election file [default: the demo election].
    #[arg(long, value_name = "FILE")]
    pub election: Option<PathBuf>,
    /// Voters on the roll [1..=2000000].
    #[arg(long, default_value_t = 100_000, value_parser = count::<u64>(1, MAX_VOTERS))]
    pub voters: u64,
    /// Seeds the demo election's key (as `agora election --seed`).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where to write the roll.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// The arguments of `agora election verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Receipts, each checked: lines of receipts.csv or receipts.jsonl (as --out writes them),
    /// one JSON object, or a JSON array of them.
    #[arg(long, value_name = "FILE")]
    pub receipt: PathBuf,
    /// The folder an election wrote with --out (results.json and board.csv).
    #[arg(long, value_name = "DIR")]
    pub results: PathBuf,
}

/// The arguments of `agora multicast`.
#[derive(Args, Debug)]
#[command(allow_negative_numbers = true)]
pub struct MulticastArgs {
    /// Ordering guarantees, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "unordered,fifo,causal,total-lamport,total-sequencer"
    )]
    pub order: Vec<String>,
    /// Numbers of peers, comma-separated [each 1..=256].
    #[arg(long, value_delimiter = ',', default_value = "2,3,4,6,8", value_parser = count::<usize>(1, 256))]
    pub peers: Vec<usize>,
    /// Messages per peer, comma-separated [each 1..=100000].
    #[arg(long, value_delimiter = ',', default_value = "10,50,100", value_parser = count::<u32>(1, 100_000))]
    pub msgs: Vec<u32>,
    /// Repetitions of each configuration (seeds S, S+1, ...) [1..=10000].
    #[arg(long, default_value_t = 10, value_parser = count::<u64>(1, 10_000))]
    pub reps: u64,
    /// Where to run: sim (the simulator) or tcp (loopback TCP).
    #[arg(long, default_value = "sim")]
    pub runtime: String,
    /// The seed of the run's random sources: the same seed gives the same run.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Mean time between a peer's messages (exponentially distributed) [0..=3600000].
    #[arg(long, value_name = "MS", default_value_t = 5.0, value_parser = values::interval_ms)]
    pub interval_ms: f64,
    /// Retransmission and failure-detection timeout [default: 20, or 700 with --regions]
    /// [0.001..=3600000].
    #[arg(long, value_name = "MS", value_parser = values::timer_ms)]
    pub timeout_ms: Option<f64>,
    /// The faults to inject.
    #[command(flatten)]
    pub faults: FaultArgs,
    /// Write multicast.csv and SVG charts here.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print exactly one JSON object on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `agora complexity`.
#[derive(Args, Debug)]
pub struct ComplexityArgs {
    /// Algorithms, comma-separated [default: all of the classic algorithms].
    #[arg(long, value_delimiter = ',')]
    pub algorithms: Vec<String>,
    /// Cluster sizes, comma-separated [each 1..=10000].
    #[arg(long, value_delimiter = ',', default_value = "2,4,8,16,32,64", value_parser = count::<usize>(1, 10_000))]
    pub nodes: Vec<usize>,
    /// Where to run: sim (the simulator) or tcp (loopback TCP, energy from measured CPU time).
    #[arg(long, default_value = "sim")]
    pub runtime: String,
    /// Grid carbon intensity [default: 0.429, EPA eGRID 2018 US average, as in the seed report].
    #[arg(long, value_name = "KG_PER_KWH", default_value_t = 0.429, value_parser = values::constant)]
    pub carbon_intensity: f64,
    /// Network energy per byte sent (docs/energy.md) [default: 0.06 kWh/GB].
    #[arg(long, value_name = "J", default_value_t = 2.16e-4, value_parser = values::constant)]
    pub network_j_per_byte: f64,
    /// Host energy per message, sent and handled, in the simulator (docs/energy.md).
    #[arg(long, value_name = "J", default_value_t = 1e-5, value_parser = values::constant)]
    pub host_j_per_message: f64,
    /// Power of a busy core, for --runtime tcp (docs/energy.md).
    #[arg(long, value_name = "W", default_value_t = 10.0, value_parser = values::constant)]
    pub watts_per_core: f64,
    /// The seed of the run's random sources: the same seed gives the same run.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write complexity.csv, messages.svg and carbon.svg here.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print exactly one JSON object on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `agora clocks`.
#[derive(Args, Debug)]
pub struct ClocksArgs {
    /// lamport or vector.
    pub kind: String,
    /// `seed` (the seed report's example), `random` (from --seed), or events in the seed's
    /// notation, processes separated by `;`: 'PI MS0 PI MR1 MS2; MR3 MR0 MS1; MS3 PI MR2'.
    #[arg(long, default_value = "seed")]
    pub scenario: String,
    /// Processes of a random scenario [1..=200].
    #[arg(long, short = 'n', default_value_t = 4, value_parser = count::<usize>(1, 200))]
    pub nodes: usize,
    /// Events per process of a random scenario [1..=200].
    #[arg(long, default_value_t = 6, value_parser = count::<u32>(1, 200))]
    pub events: u32,
    /// The seed of the run's random sources: the same seed gives the same run.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Two events to compare, e.g. MS_0,MR_3 (repeatable): ordered or concurrent?
    #[arg(long, value_name = "A,B")]
    pub compare: Vec<String>,
    /// Print exactly one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `agora check`: a campaign, or `merge`.
#[derive(Args, Debug)]
#[command(
    allow_negative_numbers = true,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct CheckArgs {
    /// `merge`; none runs a campaign.
    #[command(subcommand)]
    pub action: Option<CheckAction>,
    /// The protocol to check (see `agora protocols`).
    #[arg(required = true)]
    pub protocol: Option<String>,
    /// Seeds to run, A..B (B excluded), e.g. 0..1000; at most 1000000 seeds.
    #[arg(long, default_value = "0..100", value_parser = values::seeds)]
    pub seeds: std::ops::Range<u64>,
    /// Run only shard I of N of the seeds, I counted from 0 (0/3, 1/3, 2/3): the seeds whose
    /// index in the range leaves I when divided by N. Each seed runs as it does unsharded.
    /// AGORA_SHARD stands for the flag where a command cannot be templated (a Swarm job's
    /// environment can) [N in 1..=1000000].
    #[arg(long, value_name = "I/N", env = "AGORA_SHARD", value_parser = values::shard)]
    pub shard: Option<values::Shard>,
    /// Write the campaign's findings here as JSON lines, as they are found: the campaign, one
    /// line per seed run, the totals (what `agora check merge` joins). A directory (or a path
    /// ending in `/`, made if need be) gets a file named after the shard, shard-I-of-N.jsonl.
    #[arg(long, value_name = "FILE")]
    pub findings: Option<PathBuf>,
    /// The protocol\'s parameters.
    #[command(flatten)]
    pub params: ProtocolArgs,
    /// The faults to inject.
    #[command(flatten)]
    pub faults: FaultArgs,
    /// Stop each run at this virtual time (0..=1e9].
    #[arg(long, value_name = "MS", default_value_t = 60_000.0, value_parser = values::limit_ms)]
    pub max_time_ms: f64,
    /// Stop each run after this many events (a runaway run is reported, not a failure)
    /// [1..=1e12].
    #[arg(long, value_name = "N", default_value_t = 5_000_000, value_parser = count::<u64>(1, values::MAX_EVENTS))]
    pub max_events: u64,
    /// Worker threads [default: the number of cores] [1..=1024].
    #[arg(long, value_parser = count::<usize>(1, 1024))]
    pub threads: Option<usize>,
    /// Print exactly one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What `agora check` can do besides running a campaign.
#[derive(Subcommand, Debug)]
pub enum CheckAction {
    /// Join the findings files of a campaign's shards (`agora check --shard I/N --findings
    /// FILE`) into the report one run over every seed prints; exit 1 if a seed failed, 0 if
    /// none, 2 if the files are of different campaigns, damaged, or leave seeds unrun.
    Merge(MergeArgs),
}

/// The arguments of `agora check merge`.
#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The findings files, one per shard, in any order; a directory stands for the *.jsonl
    /// files in it.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Report what the files hold even if shards are missing or unfinished (the report counts
    /// the seeds not run; the exit code judges only the seeds that ran).
    #[arg(long)]
    pub partial: bool,
    /// Print exactly one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `--ui` on a run of every node in this process: `agora run`, `agora election`,
/// `agora market`.
#[derive(Args, Debug, Clone, Default)]
pub struct LiveArgs {
    /// Serve the live view of the run at this address (e.g. 127.0.0.1:0; port 0: one the
    /// kernel picks; the URL is printed on stderr): the nodes, their roles, messages per
    /// second by kind and by link, their observations, and the checker's verdicts at the end;
    /// its controls crash, restart, pause and resume nodes, cut links and partition the
    /// cluster (docs/live-view.md). Over TCP only.
    #[arg(long, value_name = "ADDR")]
    pub ui: Option<String>,
    /// With --ui: keep serving the page once the run has ended, until Ctrl-C [default: exit].
    #[arg(long, requires = "ui")]
    pub ui_linger: bool,
    /// With --ui: keep the run going once it is quiet, so that the page's controls can still
    /// break it, until the page's "Let the run end" (or --max-time-ms) [default: it ends when
    /// quiet].
    #[arg(long, requires = "ui")]
    pub ui_hold: bool,
}

/// The arguments of `agora run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The protocol to run (see `agora protocols`).
    pub protocol: String,
    /// The protocol\'s parameters.
    #[command(flatten)]
    pub params: ProtocolArgs,
    /// Seeds the nodes' random sources and random topologies.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Stop after this much wall time if the cluster has not gone quiet (0..=1e9].
    #[arg(long, value_name = "MS", default_value_t = 60_000.0, value_parser = values::limit_ms)]
    pub max_time_ms: f64,
    /// Keep the nodes' databases here [default: a temporary directory, removed afterwards].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The cluster name carried by every handshake (1 to 128 letters, digits, `-`, `_`, `.`).
    #[arg(long, default_value = "agora", value_parser = values::cluster_name)]
    pub cluster: String,
    /// Serve Prometheus metrics at http://HOST:PORT/metrics while running.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<String>,
    /// Print exactly one JSON object on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The live view of the run in a browser (docs/live-view.md).
    #[command(flatten)]
    pub live: LiveArgs,
}

/// The arguments of `agora node`.
#[derive(Args, Debug)]
pub struct NodeArgs {
    /// The cluster file (see examples/cluster.toml).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// This node's id in the cluster file.
    #[arg(long, value_parser = count::<u32>(0, MAX_NODES - 1))]
    pub id: u32,
    /// Serve Prometheus metrics at http://HOST:PORT/metrics while running, and at `/counts`
    /// the node's message counters and latest messages as JSON (what `agora cluster ui` asks).
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<String>,
    /// Print this node's raw results as one JSON object (what `agora up` reads).
    #[arg(long)]
    pub json: bool,
    /// Create this node's database if it does not exist: the first start of a new cluster.
    /// Without it (or --rejoin) a missing database is refused: a node that has been part of a
    /// cluster never comes back empty unasked.
    #[arg(long, conflicts_with = "rejoin")]
    pub new: bool,
    /// Set this node's clock from FILE (TOML: `skew_ms`, `drift_ppm`; none or empty: real
    /// time) at the start and again on each SIGUSR1: how `agora cluster nemesis --faults
    /// clock` bends a node's clock in a container.
    #[arg(long, value_name = "FILE")]
    pub clock_file: Option<PathBuf>,
    /// --new the first time only: while FILE does not exist, create this node's database if
    /// it does not exist, then create FILE; once FILE exists, refuse a missing database as
    /// without --new. FILE belongs outside the database's directory, on storage that lasts
    /// as long as the node does: `agora cluster up` gives each container a file of its own
    /// file system, so a volume emptied under a container that goes on is refused, not made
    /// again empty.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["new", "rejoin"])]
    pub new_once: Option<PathBuf>,
    /// This node lost its storage: start it empty; it catches up from the others before it
    /// votes again (Raft replicas only). A damaged database is kept beside as `*.corrupt`.
    #[arg(long)]
    pub rejoin: bool,
    /// Listen on this inherited file descriptor, a socket already bound to this node's
    /// address and listening, instead of binding the address (what `agora up` and the tests
    /// do: the parent binds port 0 and keeps the socket, so no one else can take the port).
    #[arg(long, value_name = "FD")]
    pub listen_fd: Option<i32>,
    /// Print progress on stderr, one `event {JSON}` line each: the address the node listens
    /// on (and its process id) once it runs, then every observation once what its step
    /// persisted is durable.
    #[arg(long)]
    pub events: bool,
    /// Run under a supervisor that sees the whole cluster (what `agora up` does): do not stop
    /// when idle, print `event {"idle":true,"node":ID}` on stderr when the node becomes idle
    /// (`false` when it has work again), and stop as idle when stdin reaches its end.
    #[arg(long)]
    pub supervised: bool,
    /// Wait up to this long for the names of the cluster file to resolve (peers in
    /// containers that have not started yet) [0..=600000]; 0: fail at once.
    #[arg(long, value_name = "MS", default_value_t = 0, value_parser = count::<u64>(0, MAX_WAIT_RESOLVE_MS))]
    pub wait_resolve_ms: u64,
    /// With --events: every this many ms, also print the node's message counters (sent and
    /// handled, per kind and per link) and its latest messages, one `event {"counts":..}` line
    /// (what `agora up --ui` and `agora cluster up --ui` read) [50..=60000].
    #[arg(long, value_name = "MS", requires = "events", value_parser = count::<u64>(50, 60_000))]
    pub sample_ms: Option<u64>,
}

/// The arguments of `agora up`.
#[derive(Args, Debug)]
pub struct UpArgs {
    /// The cluster file (see examples/cluster.toml). Addresses with port 0 get a port the
    /// kernel chooses.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Print exactly one JSON object on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Pass `--events` to every node: their progress lines on stderr.
    #[arg(long)]
    pub events: bool,
    /// The live view of the nodes (`--ui ADDR`; docs/live-view.md). Its controls crash
    /// (SIGKILL), restart (from the node's database), pause (SIGSTOP) and resume (SIGCONT)
    /// the node processes.
    #[command(flatten)]
    pub live: LiveArgs,
}

/// A protocol's parameters from the command line: `--nodes`, and a flag for every parameter of
/// the schema ([`agora_protocols::params`]), named after it (`timeout_ms` is `--timeout-ms`),
/// with its help, its range and each protocol's default. Only the flags given are kept; the
/// protocol's defaults fill in the rest, and a flag the protocol does not read is refused when
/// the protocol is built.
#[derive(Debug, Clone, Default)]
pub struct ProtocolArgs {
    /// Number of nodes.
    pub nodes: usize,
    /// The parameters given, in the schema's order.
    pub given: Vec<(&'static Param, Value)>,
}

impl ProtocolArgs {
    /// The registry's parameters, with `seed`.
    pub fn params(&self, seed: u64) -> Params {
        let mut p = Params::new(self.nodes, seed);
        for (param, value) in &self.given {
            p.set(param, value.clone()).expect("checked when parsed");
        }
        p
    }
}

/// The flag of a parameter: `timeout_ms` is `--timeout-ms`.
pub fn flag(param: &Param) -> String {
    format!("--{}", param.name.replace('_', "-"))
}

/// A parameter's help: its text, its range, and which protocols read it with which default.
fn param_help(param: &'static Param) -> String {
    let mut defaults: Vec<(String, Vec<&str>)> = Vec::new();
    for e in agora_protocols::PROTOCOLS {
        if let Some(s) = e.specs.iter().find(|s| std::ptr::eq(s.param, param)) {
            let d = s.default.as_ref().map(|d| d.to_string()).filter(|d| !d.is_empty());
            let d = d.unwrap_or_else(|| "none".to_string());
            match defaults.iter_mut().find(|(v, _)| *v == d) {
                Some((_, names)) => names.push(e.name),
                None => defaults.push((d, vec![e.name])),
            }
        }
    }
    let used: Vec<String> = if defaults.len() == 1 {
        vec![format!("{} [default: {}]", defaults[0].1.join(", "), defaults[0].0)]
    } else {
        defaults.iter().map(|(d, names)| format!("{} (default {d})", names.join(", "))).collect()
    };
    format!("{} {}\nUsed by: {}.", param.help, param.range(), used.join("; "))
}

fn param_arg(param: &'static Param) -> Arg {
    let value_name = match param.kind {
        Kind::Real { unit: " ms", .. } => "MS",
        Kind::Real { .. } => "P",
        Kind::Nodes => "IDS",
        Kind::Count { .. } | Kind::Text => "VALUE",
    };
    Arg::new(param.name)
        .long(param.name.replace('_', "-"))
        .value_name(value_name)
        .help(param_help(param))
        .action(ArgAction::Set)
        .value_parser(move |s: &str| param.parse(s))
}

impl clap::Args for ProtocolArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        let nodes = Arg::new("nodes")
            .long("nodes")
            .short('n')
            .default_value("5")
            .value_parser(count::<usize>(1, MAX_NODES))
            .help("Number of nodes (ids 0..N) [1..=1000000; over TCP at most 1000].");
        agora_protocols::params::ALL.iter().fold(cmd.arg(nodes), |cmd, p| cmd.arg(param_arg(p)))
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl clap::FromArgMatches for ProtocolArgs {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let nodes = *m.get_one::<usize>("nodes").expect("--nodes has a default");
        let given = agora_protocols::params::ALL
            .iter()
            .filter_map(|p| m.get_one::<Value>(p.name).map(|v| (*p, v.clone())))
            .collect();
        Ok(ProtocolArgs { nodes, given })
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

/// Everything that can go wrong; flags add to (or override) a `--faults` file.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Faults")]
pub struct FaultArgs {
    /// A TOML fault file (see examples/faults.toml); the flags below add to it.
    #[arg(long, value_name = "FILE")]
    pub faults: Option<PathBuf>,
    /// Link latency: constant:MS, uniform:MIN,MAX, exp:MEAN or lognormal:MEDIAN,SIGMA
    /// [default: constant:1] (milliseconds up to 3600000, sigma up to 10).
    #[arg(long, value_name = "DIST")]
    pub latency: Option<String>,
    /// Probability that a message is lost [0..=1].
    #[arg(long, value_name = "P", value_parser = values::probability)]
    pub loss: Option<f64>,
    /// Probability that a message is delivered twice [0..=1].
    #[arg(long, value_name = "P", value_parser = values::probability)]
    pub duplicate: Option<f64>,
    /// Probability that a message is held back (up to --reorder-delay-ms) and overtaken [0..=1].
    #[arg(long, value_name = "P", value_parser = values::probability)]
    pub reorder: Option<f64>,
    /// Largest extra delay of a reordered message [0..=3600000].
    #[arg(long, value_name = "MS", value_parser = values::interval_ms)]
    pub reorder_delay_ms: Option<f64>,
    /// Deliver messages on each link in the order they were sent.
    #[arg(long)]
    pub fifo: bool,
    /// Symmetric partition GROUP|GROUP[|...]@START[..HEAL] in ms, e.g. '0..2|2..5@100..500'
    /// (times of every fault spec: 0..=1e9 ms; node ids below the cluster size).
    #[arg(long, value_name = "SPEC")]
    pub partition: Vec<String>,
    /// One-way partition FROM>TO@START[..HEAL], e.g. '0..2>2..5@100..500'.
    #[arg(long, value_name = "SPEC")]
    pub one_way: Vec<String>,
    /// Crash NODES@T, or NODES@T..RESTART to restart from persisted state, e.g. 3@100..400.
    #[arg(long, value_name = "SPEC")]
    pub crash: Vec<String>,
    /// Pause NODES@T..RESUME: the node handles nothing meanwhile.
    #[arg(long, value_name = "SPEC")]
    pub pause: Vec<String>,
    /// Clock skew NODES=MS (may be negative, within ±1e9), e.g. 0..3=5.
    #[arg(long, value_name = "NODES=MS")]
    pub skew: Vec<String>,
    /// Clock drift NODES=PPM in (-1000000, 1000000], e.g. 2=100.
    #[arg(long, value_name = "NODES=PPM")]
    pub drift: Vec<String>,
    /// Place nodes in regions: `aws` (six AWS regions with measured inter-region latencies,
    /// see docs/multicast.md).
    #[arg(long, value_name = "PRESET")]
    pub regions: Option<String>,
    /// K crashes of random nodes at random times in the first 500 ms, each restarted after
    /// 10..300 ms, drawn from the seed (finer control: [random_crashes] in a fault file)
    /// [0..=10000].
    #[arg(long, value_name = "K", value_parser = count::<u32>(0, 10_000))]
    pub random_crashes: Option<u32>,
}

impl FaultArgs {
    /// The flags given, by name: for commands that inject faults only in the simulator.
    pub fn given(&self) -> Vec<&'static str> {
        let set = [
            ("--faults", self.faults.is_some()),
            ("--latency", self.latency.is_some()),
            ("--loss", self.loss.is_some()),
            ("--duplicate", self.duplicate.is_some()),
            ("--reorder", self.reorder.is_some()),
            ("--reorder-delay-ms", self.reorder_delay_ms.is_some()),
            ("--fifo", self.fifo),
            ("--partition", !self.partition.is_empty()),
            ("--one-way", !self.one_way.is_empty()),
            ("--crash", !self.crash.is_empty()),
            ("--pause", !self.pause.is_empty()),
            ("--skew", !self.skew.is_empty()),
            ("--drift", !self.drift.is_empty()),
            ("--regions", self.regions.is_some()),
            ("--random-crashes", self.random_crashes.is_some()),
        ];
        set.into_iter().filter(|(_, on)| *on).map(|(flag, _)| flag).collect()
    }
}

/// The arguments of `agora sim`.
#[derive(Args, Debug)]
#[command(allow_negative_numbers = true)]
pub struct SimArgs {
    /// The protocol to run (see `agora protocols`).
    pub protocol: String,
    /// The protocol\'s parameters.
    #[command(flatten)]
    pub params: ProtocolArgs,
    /// The master seed: the same seed replays the same run.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The faults to inject.
    #[command(flatten)]
    pub faults: FaultArgs,
    /// Stop at this virtual time (0..=1e9].
    #[arg(long, value_name = "MS", default_value_t = 600_000.0, value_parser = values::limit_ms)]
    pub max_time_ms: f64,
    /// Stop after this many events [1..=1e12].
    #[arg(long, value_name = "N", value_parser = count::<u64>(1, values::MAX_EVENTS))]
    pub max_events: Option<u64>,
    /// Print exactly one JSON object on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Write a space-time diagram of the run (at most 50 nodes and 5000 events).
    #[arg(long, value_name = "FILE.svg")]
    pub diagram: Option<PathBuf>,
    /// Write the run as one self-contained page to replay offline in a browser: its diagram,
    /// a time slider, each node's state at the chosen time and the checker's verdicts (at most
    /// 50 nodes and 5000 events).
    #[arg(long, value_name = "FILE.html")]
    pub html: Option<PathBuf>,
    /// Write per-node message counters as CSV.
    #[arg(long, value_name = "FILE.csv")]
    pub per_node: Option<PathBuf>,
    /// Replay, step by step, a schedule `agora explore --schedule` wrote (the interleaving of
    /// deliveries, losses, timer firings, crashes and restarts it found) instead of drawing one
    /// from the seed; the fault flags do not apply.
    #[arg(long, value_name = "FILE.json")]
    pub schedule: Option<PathBuf>,
}

/// The arguments of `agora bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Where to run: sim (the simulator) or tcp (loopback TCP).
    #[arg(long, default_value = "sim")]
    pub runtime: String,
    /// With --runtime tcp: one process per node (`agora up`) instead of all in one process.
    #[arg(long)]
    pub processes: bool,
    /// The protocol to measure [default: flood for sim, stream for tcp].
    #[arg(long)]
    pub protocol: Option<String>,
    /// Cluster sizes, comma-separated [default: 100000,1000000 for sim, 2,4,8 for tcp]
    /// [each 1..=1000000; over TCP 2..=1000].
    #[arg(long, value_delimiter = ',', value_parser = count::<usize>(1, MAX_NODES))]
    pub nodes: Vec<usize>,
    /// Topology of the flood benchmark: complete, ring, grid or regular:K.
    #[arg(long, default_value = "regular:8")]
    pub topology: String,
    /// Messages per stream (stream) [1..=10000000].
    #[arg(long, default_value_t = 200_000, value_parser = count::<u32>(1, 10_000_000))]
    pub msgs: u32,
    /// Messages in flight per link (stream) [1..=1000000].
    #[arg(long, default_value_t = 1_000, value_parser = count::<u32>(1, 1_000_000))]
    pub window: u32,
    /// The seed of the run's random sources: the same seed gives the same run.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `agora kv`.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct KvArgs {
    /// `serve`: one replica of a cluster file; none runs every replica in this process.
    #[command(subcommand)]
    pub action: Option<KvAction>,
    /// The embedded cluster, when no action is given.
    #[command(flatten)]
    pub local: KvLocalArgs,
}

/// What `agora kv` can do besides running an embedded cluster.
#[derive(Subcommand, Debug)]
pub enum KvAction {
    /// Run one replica of a cluster file (`protocol = "kv"`, a `resp` address per node).
    Serve(KvServeArgs),
    /// Run the workload's clients against a running cluster (any RESP servers), recording
    /// what they saw: the client side of a Jepsen-style test. Ctrl-C (or SIGTERM) stops it
    /// after each client's operation in flight, the history complete.
    Workload(KvWorkloadArgs),
}

/// The arguments of `agora kv workload`.
#[derive(Args, Debug)]
pub struct KvWorkloadArgs {
    /// The replicas' RESP addresses, comma-separated (HOST:PORT,...).
    #[arg(long, value_name = "ADDRS", value_delimiter = ',', required = true)]
    pub servers: Vec<SocketAddr>,
    /// Operations in all [1..=100000000].
    #[arg(long, default_value_t = 10_000, value_parser = count::<u64>(1, 100_000_000))]
    pub ops: u64,
    /// Who the clients are.
    #[command(flatten)]
    pub shape: KvClients,
    /// An operation not answered within this time is recorded as unknown (`info`) and the
    /// client moves to the next replica [1..=3600000].
    #[arg(long, default_value_t = 2_000, value_parser = count::<u64>(1, 3_600_000))]
    pub timeout_ms: u64,
    /// Record every operation's invocation and completion here (agora's JSON lines; judge it
    /// with `agora lincheck FILE`).
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,
}

/// The clients of a key-value workload (`agora kv --workload`, `agora kv workload`).
#[derive(Args, Debug)]
pub struct KvClients {
    /// Clients, one connection each, one operation at a time [1..=1000].
    #[arg(long, default_value_t = 8, value_parser = count::<usize>(1, 1000))]
    pub clients: usize,
    /// The keys the workload uses [1..=1000000].
    #[arg(long, default_value_t = 8, value_parser = count::<usize>(1, 1_000_000))]
    pub keys: usize,
    /// Seeds the workload's choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// What both `agora kv` and `agora kv serve` take.
#[derive(Args, Debug)]
pub struct KvCommon {
    /// Record every client operation's invocation and completion here (agora's JSON lines;
    /// judge it with `agora lincheck FILE`). With --workload the workload's clients record it;
    /// otherwise the server does, for every RESP connection.
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,
    /// A command not answered within this time gets `-TRYAGAIN` (it may still take effect)
    /// [1..=3600000].
    #[arg(long, default_value_t = 10_000, value_parser = count::<u64>(1, 3_600_000))]
    pub timeout_ms: u64,
    /// RESP connections served at once per replica [1..=100000].
    #[arg(long, default_value_t = 10_000, value_parser = count::<usize>(1, 100_000))]
    pub max_clients: usize,
    /// The longest bulk string a client may send, in bytes [1..=4194304]. A request must also
    /// fit in max(2 × this, 4 MiB), so that a batch of commands fits one Raft message.
    #[arg(long, default_value_t = 1 << 20, value_parser = count::<usize>(1, 4 << 20))]
    pub max_bulk: usize,
}

/// The arguments of `agora kv` without an action: the embedded cluster.
#[derive(Args, Debug)]
pub struct KvLocalArgs {
    /// Replicas, each in this process with its own redb database [1..=15].
    #[arg(long, default_value_t = 3, value_parser = count::<usize>(1, 15))]
    pub replicas: usize,
    /// The RESP port of replica 0; replica i listens on PORT + i. 0: ports the kernel picks
    /// [0..=65535].
    #[arg(long, default_value_t = 7379, value_parser = count::<u16>(0, 65535))]
    pub port: u16,
    /// Keep the databases here (a later run with the same folder finds its data) [default: a
    /// temporary folder, removed at the end].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Raft's shortest election timeout, in ms [1..=60000].
    #[arg(long, default_value_t = 150, value_parser = count::<u64>(1, 60_000))]
    pub election_timeout_ms: u64,
    /// Run the built-in workload of this many operations (GET, SET, APPEND, CAS, MSET, MGET on
    /// --keys keys from --clients connections, spread over the replicas), print what it
    /// measured and stop [1..=100000000].
    #[arg(long, value_name = "OPS", value_parser = count::<u64>(1, 100_000_000))]
    pub workload: Option<u64>,
    /// Serve the live view of the replicas at this address (e.g. 127.0.0.1:0, port 0: one the
    /// kernel picks; the URL is printed): roles, terms, commit indexes, messages per second,
    /// a timeline, and buttons that crash and restart replicas (docs/live-view.md).
    #[arg(long, value_name = "ADDR")]
    pub ui: Option<String>,
    /// The workload's clients.
    #[command(flatten)]
    pub shape: KvClients,
    /// Settings shared with `agora kv serve`.
    #[command(flatten)]
    pub common: KvCommon,
}

/// The arguments of `agora kv serve`.
#[derive(Args, Debug)]
pub struct KvServeArgs {
    /// The cluster file (`protocol = "kv"`; see docs/kv.md).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// This replica's id in the cluster file.
    #[arg(long, value_parser = count::<u32>(0, MAX_NODES - 1))]
    pub id: u32,
    /// Create this replica's database if it does not exist: the first start of a new cluster.
    #[arg(long, conflicts_with = "rejoin")]
    pub new: bool,
    /// Set this node's clock from FILE (TOML: `skew_ms`, `drift_ppm`; none or empty: real
    /// time) at the start and again on each SIGUSR1: how `agora cluster nemesis --faults
    /// clock` bends a node's clock in a container.
    #[arg(long, value_name = "FILE")]
    pub clock_file: Option<PathBuf>,
    /// This replica lost its storage: start it empty; it catches up before it votes again.
    #[arg(long)]
    pub rejoin: bool,
    /// Take the cluster socket from this inherited file descriptor (as `agora node --listen-fd`).
    #[arg(long, value_name = "FD")]
    pub listen_fd: Option<i32>,
    /// Take the RESP socket from this inherited file descriptor, a socket already bound to the
    /// node's `resp` address and listening (tests bind port 0 and hand it down).
    #[arg(long, value_name = "FD")]
    pub resp_fd: Option<i32>,
    /// Print `event {JSON}` lines on stderr: the addresses once listening, then each change of
    /// leader this replica sees.
    #[arg(long)]
    pub events: bool,
    /// With --events: every this many ms, also print the replica's message counters, as
    /// `agora node --sample-ms` does (what `agora cluster ui` reads) [50..=60000].
    #[arg(long, value_name = "MS", requires = "events", value_parser = count::<u64>(50, 60_000))]
    pub sample_ms: Option<u64>,
    /// Serve the replica's counters over HTTP here: Prometheus text at `/metrics`, and at
    /// `/counts` its message counters and latest messages as JSON (what `agora cluster ui`
    /// asks twice a second).
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<String>,
    /// Wait up to this long for the names of the cluster file to resolve (as `agora node
    /// --wait-resolve-ms`) [0..=600000].
    #[arg(long, value_name = "MS", default_value_t = 0, value_parser = count::<u64>(0, MAX_WAIT_RESOLVE_MS))]
    pub wait_resolve_ms: u64,
    /// Settings shared with `agora kv`.
    #[command(flatten)]
    pub common: KvCommon,
}

/// The longest `--wait-resolve-ms`: ten minutes.
pub const MAX_WAIT_RESOLVE_MS: u64 = 600_000;

/// The arguments of `agora cluster`.
#[derive(Args, Debug)]
pub struct ClusterArgs {
    /// `up`, `status`, `down`, `nemesis` or `ui`.
    #[command(subcommand)]
    pub action: ClusterAction,
}

/// What `agora cluster` does.
#[derive(Subcommand, Debug)]
pub enum ClusterAction {
    /// Write DIR/cluster.toml and DIR/docker-compose.yml, build the image if missing, start
    /// every node in its own container on a private network, each with its own volume.
    Up(ClusterUpArgs),
    /// Who is up, who leads and what can be said of the checks.
    Status(ClusterDirArgs),
    /// Remove the containers, the network and the volumes `up` made (not the image).
    Down(ClusterDirArgs),
    /// Break a running key-value cluster on purpose (kills, pauses, partitions, ...) on a
    /// schedule drawn from --seed while clients run from outside; then heal it and judge what
    /// the clients saw (linearizable?) and whether the cluster answers again.
    Nemesis(ClusterNemesisArgs),
    /// Serve the live view of a running cluster of containers until Ctrl-C: the nodes, their
    /// roles, messages per second (if `up --ui` started it), the checker's verdict on their
    /// logs so far; its controls kill, start, pause and resume containers, cut links and
    /// partition the network (docs/live-view.md).
    Ui(ClusterUiArgs),
    /// Forward ports to the nodes of a cluster on a Swarm: `status` runs it in a container on
    /// the cluster's overlay network (docs/cluster.md); port 20000 + k reaches the k-th --to.
    #[command(hide = true)]
    Relay(ClusterRelayArgs),
}

/// The arguments of `agora cluster relay`.
#[derive(Args, Debug)]
pub struct ClusterRelayArgs {
    /// A target, `HOST:PORT`, resolved again for every connection; one per port, in order.
    #[arg(long = "to", value_name = "HOST:PORT", required = true)]
    pub to: Vec<String>,
}

/// The arguments of `agora cluster ui`.
#[derive(Args, Debug)]
pub struct ClusterUiArgs {
    /// The cluster.
    #[command(flatten)]
    pub dir: ClusterDirArgs,
    /// Serve the page at this address (e.g. 127.0.0.1:0; port 0: one the kernel picks; the
    /// URL is printed on stderr).
    #[arg(long, value_name = "ADDR")]
    pub ui: String,
}

/// The faults `agora cluster nemesis` applies.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NemesisFault {
    /// SIGKILL a replica's container (`docker kill --signal KILL`); `docker start` at the end.
    Kill,
    /// Freeze a replica's container (`docker pause`); `docker unpause` at the end.
    Pause,
    /// Cut a minority of the replicas off from the others, both ways (iptables rules in each
    /// container's network namespace).
    Partition,
    /// A one-way cut: what one replica sends to the others is lost, what they send it arrives.
    Cut,
    /// Stop a replica cleanly (`docker stop`: SIGTERM); `docker start` at the end.
    Restart,
    /// Take a replica's container off the network (`docker network disconnect`); connected
    /// again at the end.
    Disconnect,
    /// Lose a replica's data: SIGKILL it, empty its volume and start it, which it must refuse;
    /// at the end its database is made again empty and marked as rejoining (`--rejoin`), and
    /// it catches up before it votes. Raft key-value stores only.
    Wipe,
    /// Fill a replica's disk: SIGKILL it, move its data onto a small file system of its own
    /// (a loop-mounted file on the host), start it and fill that file system; at the end its
    /// data goes back to its volume. Raft key-value stores only.
    Disk,
    /// Bend a replica's clock: 1 to 10 s ahead or behind, and 10 to 50% fast or slow (its
    /// `--clock-file`, written into its container, and SIGUSR1); put back on real time at the
    /// end. Its timers run on that clock.
    Clock,
}

/// The arguments of `agora cluster nemesis`.
#[derive(Args, Debug)]
pub struct ClusterNemesisArgs {
    /// The cluster (`agora cluster up --system raft --dir DIR`), and --json: one JSON object.
    #[command(flatten)]
    pub dir: ClusterDirArgs,
    /// The faults to draw from, comma-separated; each round of the schedule applies every one
    /// once, in an order drawn from --seed.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "kill,pause,partition")]
    pub faults: Vec<NemesisFault>,
    /// How long faults are applied, e.g. 60s, 90s, 2m, 1500ms [1 s..=24 h].
    #[arg(long = "for", value_name = "TIME", default_value = "60s", value_parser = values::nemesis_span)]
    pub duration: std::time::Duration,
    /// Seeds the schedule (and the clients' choices).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The mean time a fault lasts; the healthy gap between two faults is about half of it
    /// [100..=600000].
    #[arg(long, default_value_t = 3_000, value_parser = count::<u64>(100, 600_000))]
    pub interval_ms: u64,
    /// How long the clients go on once every fault is healed, e.g. 5s [1 s..=24 h].
    #[arg(long, value_name = "TIME", default_value = "5s", value_parser = values::nemesis_span)]
    pub quiet: std::time::Duration,
    /// Write the history (history.jsonl), the timeline (timeline.svg, timeline.csv), the
    /// verdict (nemesis.json, lincheck.json) and a violation's timeline (lincheck.svg) here.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Clients, one connection and one operation at a time each [1..=1000]; on the voting
    /// service, its members (at least 2).
    #[arg(long, default_value_t = 4, value_parser = count::<usize>(1, 1000))]
    pub clients: usize,
    /// The keys the clients use [1..=1000000].
    #[arg(long, default_value_t = 16, value_parser = count::<usize>(1, 1_000_000))]
    pub keys: usize,
    /// An operation not answered within this time is recorded as unknown (`info`) and its
    /// client moves to the next replica [1..=3600000].
    #[arg(long, default_value_t = 1_000, value_parser = count::<u64>(1, 3_600_000))]
    pub timeout_ms: u64,
    /// The clients send READONLY: a follower answers their reads from its own state, which
    /// may be stale. Not linearizable on purpose: to watch the checker catch it.
    #[arg(long)]
    pub stale_reads: bool,
}

/// The systems `agora cluster up` can start.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum System {
    /// The Raft key-value store (`agora kv serve`): a RESP front end on every replica.
    Raft,
    /// The federated election (`agora node`, protocol `election`): it runs, checks and ends.
    Election,
    /// The voting service (`agora vote serve`): members' line protocol on every server.
    Vote,
    /// The trading post (`agora node`, protocol `market`): buyers and sellers trade through
    /// an elected trader, the books kept in a Raft log; it runs until stopped.
    Market,
    /// The seed's ordered-multicast experiment (`agora node`, protocol `--order`): peers in
    /// regions, the region latency model on their links; it runs, is judged and ends.
    Multicast,
}

/// The arguments of `agora cluster up`.
#[derive(Args, Debug)]
pub struct ClusterUpArgs {
    /// What to run.
    #[arg(long, value_enum)]
    pub system: System,
    /// Replicas [3..=9]: the Raft replicas of the store, the election's legislature, the
    /// voting service's servers, or the market's peers.
    #[arg(long, default_value_t = 3, value_parser = count::<usize>(3, 9))]
    pub nodes: usize,
    /// Where the generated files go; it names the Compose project too.
    #[command(flatten)]
    pub dir: ClusterDirArgs,
    /// The agora binary the image holds (default: this one). A statically linked binary is
    /// the whole image; a dynamically linked one comes with the libraries its loader names.
    #[arg(long, value_name = "FILE")]
    pub binary: Option<PathBuf>,
    /// Write the files and build the image, start nothing: for `docker stack deploy` on a
    /// Swarm, or to read the files first.
    #[arg(long)]
    pub no_start: bool,
    /// Deploy on the Swarm this machine manages (`docker stack deploy`), its services on
    /// whichever machines the Swarm picks, rather than with Compose on this one; `status`,
    /// `down` and `ui` then find it there (`--system raft`, `vote` or `market`; docs/cluster.md).
    #[arg(long, conflicts_with = "no_start")]
    pub swarm: bool,
    /// The voting service's session timeout: a member silent this long fails, in ms
    /// [100..=3600000] (`--system vote` only).
    #[arg(long, value_name = "MS", value_parser = count::<u64>(100, 3_600_000))]
    pub session_timeout_ms: Option<u64>,
    /// The election's voters [1000..=10000000] (`--system election` only; default 20000):
    /// more voters, a longer count (it closes 60 s after the coordinators start at the latest).
    #[arg(long, value_name = "N", value_parser = count::<u64>(1_000, 10_000_000))]
    pub voters: Option<u64>,
    /// The multicast's ordering guarantee: unordered, fifo, causal, total-lamport or
    /// total-sequencer (`--system multicast` only; default total-lamport).
    #[arg(long, value_name = "ORDER")]
    pub order: Option<String>,
    /// Messages each multicast peer sends [1..=10000] (`--system multicast` only; default 20).
    #[arg(long, value_name = "N", value_parser = count::<u32>(1, 10_000))]
    pub msgs: Option<u32>,
    /// Once the cluster is up, serve its live view at this address until Ctrl-C, as `agora
    /// cluster ui` does.
    #[arg(long, value_name = "ADDR", conflicts_with_all = ["no_start", "swarm"])]
    pub ui: Option<String>,
}

/// Where a cluster's files are.
#[derive(Args, Debug, Clone)]
pub struct ClusterDirArgs {
    /// The folder of the cluster's files; its name (letters, digits, `-`, `_`) names the
    /// cluster and its Compose project.
    #[arg(long, value_name = "DIR", default_value = "agora-cluster")]
    pub dir: PathBuf,
    /// Print one JSON object instead of a table (`status`).
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `agora health`.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct HealthArgs {
    /// A key-value replica's RESP address: healthy if it answers `INFO replication` with its
    /// Raft role.
    #[arg(long, value_name = "HOST:PORT")]
    pub resp: Option<String>,
    /// A node's metrics address (`--metrics-addr`): healthy if it serves its metrics.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics: Option<String>,
    /// A voting-service server's members' address: healthy if it greets with `HELLO`.
    #[arg(long, value_name = "HOST:PORT")]
    pub vote: Option<String>,
}

/// The arguments of `agora vote`.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct VoteArgs {
    /// `serve`, `conformance` or `admin-token`; none runs the embedded cluster and its crowd.
    #[command(subcommand)]
    pub action: Option<VoteAction>,
    /// The embedded cluster, when no action is given.
    #[command(flatten)]
    pub local: VoteLocalArgs,
}

/// What `agora vote` can do besides running an embedded cluster.
#[derive(Subcommand, Debug)]
pub enum VoteAction {
    /// Run one server of a cluster file (`protocol = "vote"`, a `vote` address per node).
    Serve(VoteServeArgs),
    /// Test a server of any implementation against docs/vote-protocol.md; exit 1 if it fails.
    Conformance(VoteConformanceArgs),
    /// Print the administrator token of a cluster file (for `ADMIN <token>`).
    AdminToken(VoteTokenArgs),
    /// Load a cluster with many members at once: logins/s, votes/s, vote latency, a JOIN to
    /// everyone, recovery after SIGKILL of the leader, memory per member.
    Bench(VoteBenchArgs),
}

/// The arguments of `agora vote bench`.
#[derive(Args, Debug)]
pub struct VoteBenchArgs {
    /// Members connected at once [1..=100000].
    #[arg(long, default_value_t = 10_000, value_parser = count::<usize>(1, 100_000))]
    pub clients: usize,
    /// Questions every member votes on, one after the other [1..=1000].
    #[arg(long, default_value_t = 1, value_parser = count::<usize>(1, 1000))]
    pub questions: usize,
    /// Servers of the cluster the bench starts (`agora vote serve` processes) [1..=15].
    #[arg(long, default_value_t = 3, value_parser = count::<usize>(1, 15))]
    pub cluster_size: usize,
    /// Load these running servers (`host:port,...`) instead of starting a cluster.
    #[arg(long, value_name = "HOST:PORT,...", requires = "admin_token")]
    pub servers: Option<String>,
    /// The administrator token of --servers.
    #[arg(long, value_name = "TOKEN", env = "AGORA_VOTE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// After the votes, SIGKILL the leader and time its members' RESUME on another server.
    #[arg(long, conflicts_with = "servers")]
    pub kill_leader: bool,
    /// Pace the votes at this many per second in all (an open loop: each vote is due at its
    /// own time, its latency counted from then), instead of every member voting at once
    /// [1..=10000000].
    #[arg(long, value_name = "VOTES_PER_S", value_parser = count::<u64>(1, 10_000_000))]
    pub rate: Option<u64>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// What both `agora vote` and `agora vote serve` take.
#[derive(Args, Debug)]
pub struct VoteCommon {
    /// A command not answered by the cluster within this time gets `ERR unavailable`
    /// [1..=3600000].
    #[arg(long, default_value_t = 10_000, value_parser = count::<u64>(1, 3_600_000))]
    pub timeout_ms: u64,
    /// Connections served at once per server [1..=100000].
    #[arg(long, default_value_t = 20_000, value_parser = count::<usize>(1, 100_000))]
    pub max_clients: usize,
}

/// The arguments of `agora vote` without an action.
#[derive(Args, Debug)]
pub struct VoteLocalArgs {
    /// Servers, each in this process with its own redb database [1..=15].
    #[arg(long, default_value_t = 3, value_parser = count::<usize>(1, 15))]
    pub servers: usize,
    /// Simulated members, each a connection speaking the line protocol [3..=5000].
    #[arg(long, default_value_t = 24, value_parser = count::<usize>(3, 5000))]
    pub clients: usize,
    /// Members that go silent without logging out, to be failed by the cluster [0..=1000].
    #[arg(long, default_value_t = 1, value_parser = count::<usize>(0, 1000))]
    pub vanish: usize,
    /// A member silent this long fails, in ms [100..=3600000].
    #[arg(long, default_value_t = 2_000, value_parser = count::<u64>(100, 3_600_000))]
    pub session_timeout_ms: u64,
    /// Raft's shortest election timeout, in ms [1..=60000].
    #[arg(long, default_value_t = 150, value_parser = count::<u64>(1, 60_000))]
    pub election_timeout_ms: u64,
    /// Seeds the members' choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Keep the servers up after the crowd is done, until Ctrl-C, for people to connect to.
    #[arg(long)]
    pub stay: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Settings shared with `agora vote serve`.
    #[command(flatten)]
    pub common: VoteCommon,
    /// Run in the deterministic simulator instead of over TCP: `agora sim vote-service` with
    /// these servers and members (the fault flags apply), its summary and the checks.
    #[arg(long)]
    pub sim: bool,
    /// The faults to inject (with --sim).
    #[command(flatten)]
    pub faults: FaultArgs,
    /// Serve the live view of the run at this address (e.g. 127.0.0.1:0; the URL is printed
    /// on stderr): the servers with their Raft roles and traffic, the members online and each
    /// question's votes; its controls pause and resume servers, cut links and partition the
    /// cluster (docs/live-view.md). Over TCP only.
    #[arg(long, value_name = "ADDR")]
    pub ui: Option<String>,
    /// With --ui: keep serving the page once the run has ended, until Ctrl-C [default: exit].
    #[arg(long, requires = "ui")]
    pub ui_linger: bool,
}

/// The arguments of `agora vote serve`.
#[derive(Args, Debug)]
pub struct VoteServeArgs {
    /// The cluster file (`protocol = "vote"`; see docs/vote-protocol.md).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// This server's id in the cluster file.
    #[arg(long, value_parser = count::<u32>(0, MAX_NODES - 1))]
    pub id: u32,
    /// Create this server's database if it does not exist: the first start of a new cluster.
    #[arg(long, conflicts_with = "rejoin")]
    pub new: bool,
    /// Set this node's clock from FILE (TOML: `skew_ms`, `drift_ppm`; none or empty: real
    /// time) at the start and again on each SIGUSR1: how `agora cluster nemesis --faults
    /// clock` bends a node's clock in a container.
    #[arg(long, value_name = "FILE")]
    pub clock_file: Option<PathBuf>,
    /// This server lost its storage: start it empty; it catches up before it votes again.
    #[arg(long)]
    pub rejoin: bool,
    /// A member silent this long fails, in ms [100..=3600000].
    #[arg(long, default_value_t = 30_000, value_parser = count::<u64>(100, 3_600_000))]
    pub session_timeout_ms: u64,
    /// Wait up to this long for the names of the cluster file to resolve (as `agora node
    /// --wait-resolve-ms`) [0..=600000].
    #[arg(long, value_name = "MS", default_value_t = 0, value_parser = count::<u64>(0, MAX_WAIT_RESOLVE_MS))]
    pub wait_resolve_ms: u64,
    /// Take the cluster socket from this inherited file descriptor (as `agora node --listen-fd`).
    #[arg(long, value_name = "FD")]
    pub listen_fd: Option<i32>,
    /// Take the members' socket from this inherited file descriptor, a socket already bound to
    /// the node's `vote` address and listening.
    #[arg(long, value_name = "FD")]
    pub vote_fd: Option<i32>,
    /// Print `event {JSON}` lines on stderr: the addresses once listening, then each change of
    /// leader this server sees.
    #[arg(long)]
    pub events: bool,
    /// With --events: every this many ms, also print the server's message counters, as
    /// `agora node --sample-ms` does (what `agora cluster ui` reads) [50..=60000].
    #[arg(long, value_name = "MS", requires = "events", value_parser = count::<u64>(50, 60_000))]
    pub sample_ms: Option<u64>,
    /// Serve the server's counters over HTTP here: Prometheus text at `/metrics`, and at
    /// `/counts` its message counters and latest messages as JSON (what `agora cluster ui`
    /// asks twice a second).
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<String>,
    /// Serve members over TLS with this certificate chain (PEM); with --tls-key.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Settings shared with `agora vote`.
    #[command(flatten)]
    pub common: VoteCommon,
}

/// The arguments of `agora vote conformance`.
#[derive(Args, Debug)]
pub struct VoteConformanceArgs {
    /// The server to test, `host:port`.
    #[arg(long, value_name = "HOST:PORT")]
    pub server: String,
    /// The administrator token (to create the test's accounts with `ADMIN`/`ACCOUNT`).
    #[arg(long, value_name = "TOKEN", env = "AGORA_VOTE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `agora vote admin-token`.
#[derive(Args, Debug)]
pub struct VoteTokenArgs {
    /// The cluster file.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}
