//! `Faults`: the one named configuration of everything that can go wrong in a simulated run.
//!
//! Network (latency shape, loss, duplication, reordering or per-link FIFO, regions, per-link
//! overrides), partitions (symmetric or one-way, scheduled start and heal), node faults (crash
//! with optional restart, pause and resume) and clocks (skew, drift). It loads from TOML
//! (`Faults::from_toml`, see `examples/faults.toml`) and every part of it can also be set by a
//! CLI flag, through the `FromStr` parsers below. Tests use this struct too: no fault is ever
//! injected by ad-hoc code.

use crate::nodeset::NodeSet;
use agora_core::RunFaults;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A one-line description of what is wrong with a fault configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FaultError(pub String);

impl FaultError {
    /// An error whose text may quote the user's input: control characters (a newline in a
    /// flag's value) are escaped, so the message stays one line.
    pub fn new(msg: impl Into<String>) -> FaultError {
        FaultError(escape_controls(&msg.into()))
    }
}

/// `s` with its control characters escaped (`\n`, `\u{1b}`): one line, whatever it quotes.
pub fn escape_controls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The largest time a fault may name (start, heal, restart, resume, a random-crash window):
/// 10^9 ms, about 11.6 days of virtual time.
pub const MAX_TIME_MS: f64 = 1e9;
/// The largest latency a distribution may name (constant, bounds, mean, median), a region's
/// base latency and `reorder_delay_ms`: one hour. Samples of heavy tails are capped there too.
pub const MAX_LATENCY_MS: f64 = 3.6e6;
/// The largest clock skew, either way: 10^9 ms.
pub const MAX_SKEW_MS: f64 = 1e9;
/// Clock drift lies in `(-10^6, 10^6]` ppm: a clock stands still at -10^6 and runs twice as
/// fast at 10^6.
pub const MAX_DRIFT_PPM: f64 = 1e6;
/// The largest sigma of a log-normal latency.
pub const MAX_SIGMA: f64 = 10.0;
/// At most this many random crashes per run.
pub const MAX_RANDOM_CRASHES: u32 = 10_000;
/// At most this many entries of each list (partitions, crashes, links, regions, ...).
pub const MAX_SPECS: usize = 10_000;

fn err<T>(msg: impl Into<String>) -> Result<T, FaultError> {
    Err(FaultError::new(msg))
}

/// A one-way message latency distribution, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "dist", rename_all = "lowercase", deny_unknown_fields)]
pub enum Latency {
    /// Always the same.
    Constant {
        /// The latency, in milliseconds.
        ms: f64,
    },
    /// Uniform between two bounds.
    Uniform {
        /// The lower bound, in milliseconds.
        min_ms: f64,
        /// The upper bound, in milliseconds (at least `min_ms`).
        max_ms: f64,
    },
    /// Exponential: many short delays and a long tail (capped at [`MAX_LATENCY_MS`]).
    Exponential {
        /// The mean, in milliseconds.
        mean_ms: f64,
    },
    /// Log-normal with the given median and shape (`sigma` of the underlying normal).
    LogNormal {
        /// The median, in milliseconds (above zero).
        median_ms: f64,
        /// The spread: 0 is constant at the median, larger values have a heavier tail (at
        /// most [`MAX_SIGMA`]).
        sigma: f64,
    },
}

impl Default for Latency {
    fn default() -> Self {
        Latency::Constant { ms: 1.0 }
    }
}

impl Latency {
    /// Every sample is the same: messages on one link keep their order.
    pub fn is_constant(&self) -> bool {
        match *self {
            Latency::Constant { .. } => true,
            Latency::Uniform { min_ms, max_ms } => min_ms == max_ms,
            Latency::LogNormal { sigma, .. } => sigma == 0.0,
            Latency::Exponential { .. } => false,
        }
    }

    fn validate(&self, what: &str) -> Result<(), FaultError> {
        let ok = |v: f64| (0.0..=MAX_LATENCY_MS).contains(&v);
        let fine = match *self {
            Latency::Constant { ms } => ok(ms),
            Latency::Uniform { min_ms, max_ms } => ok(min_ms) && ok(max_ms) && min_ms <= max_ms,
            Latency::Exponential { mean_ms } => ok(mean_ms),
            Latency::LogNormal { median_ms, sigma } => {
                ok(median_ms) && median_ms > 0.0 && (0.0..=MAX_SIGMA).contains(&sigma)
            }
        };
        if fine {
            Ok(())
        } else {
            err(format!(
                "{what}: invalid latency {self:?} (milliseconds in 0..={MAX_LATENCY_MS}, min <= max, \
                 a log-normal median above 0 and sigma in 0..={MAX_SIGMA})"
            ))
        }
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Latency::Constant { ms } => write!(f, "constant:{ms}"),
            Latency::Uniform { min_ms, max_ms } => write!(f, "uniform:{min_ms},{max_ms}"),
            Latency::Exponential { mean_ms } => write!(f, "exp:{mean_ms}"),
            Latency::LogNormal { median_ms, sigma } => write!(f, "lognormal:{median_ms},{sigma}"),
        }
    }
}

impl FromStr for Latency {
    type Err = FaultError;

    /// `constant:MS`, `uniform:MIN,MAX`, `exp:MEAN`, `lognormal:MEDIAN,SIGMA` (milliseconds).
    fn from_str(s: &str) -> Result<Self, FaultError> {
        let usage = "expected constant:MS, uniform:MIN,MAX, exp:MEAN or lognormal:MEDIAN,SIGMA";
        let (name, args) = s.split_once(':').unwrap_or((s, ""));
        let nums: Result<Vec<f64>, _> = args.split(',').map(|a| a.trim().parse::<f64>()).collect();
        let Ok(nums) = nums else {
            return err(format!("latency `{s}`: {usage}"));
        };
        let l = match (name, nums.as_slice()) {
            ("constant", [ms]) => Latency::Constant { ms: *ms },
            ("uniform", [a, b]) => Latency::Uniform { min_ms: *a, max_ms: *b },
            ("exp" | "exponential", [m]) => Latency::Exponential { mean_ms: *m },
            ("lognormal", [m, s]) => Latency::LogNormal { median_ms: *m, sigma: *s },
            _ => return err(format!("latency `{s}`: {usage}")),
        };
        l.validate("--latency")?;
        Ok(l)
    }
}

/// A latency override for the links from one set of nodes to another.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    /// The senders whose links it covers.
    pub from: NodeSet,
    /// The destinations whose links it covers.
    pub to: NodeSet,
    /// The latency of those links; the first matching override wins over regions and the base
    /// latency.
    pub latency: Latency,
}

/// Nodes placed in named regions; the latency between two nodes is the base one-way latency
/// between their regions plus a jitter sample.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Regions {
    /// The regions' names, in the order of `latency_ms`' rows and columns (1 to 1,000).
    pub names: Vec<String>,
    /// `latency_ms[a][b]`: base one-way latency from region a to region b.
    pub latency_ms: Vec<Vec<f64>>,
    /// Which nodes are in each region. Omitted: node i is in region `i % regions`.
    #[serde(default)]
    pub nodes: Option<Vec<NodeSet>>,
    /// Added to the base latency of every message.
    #[serde(default = "no_jitter")]
    pub jitter: Latency,
}

impl Regions {
    /// A named preset: `aws` — six AWS regions (N. Virginia, N. California, Ireland, Frankfurt,
    /// Tokyo, Sydney) with one-way latency half the average inter-region round trip reported in
    /// "Latency Between AWS Global Regions" (2017, as tabulated in "A computer scientist learns
    /// AWS: Regions", acomputerscientistlearnsaws.blogspot.com, April 2017); 0.5 ms within a
    /// region (our assumption); jitter uniform 0–2 ms. Nodes are spread round-robin.
    pub fn preset(name: &str) -> Result<Regions, FaultError> {
        match name {
            "aws" => {
                let rtt = [
                    [0.0, 72.74, 80.55, 88.66, 145.3, 230.0],
                    [72.74, 0.0, 153.2, 166.6, 102.5, 157.5],
                    [80.55, 153.2, 0.0, 19.56, 212.4, 309.6],
                    [88.66, 166.6, 19.56, 0.0, 236.5, 323.5],
                    [145.3, 102.5, 212.4, 236.5, 0.0, 103.9],
                    [230.0, 157.5, 309.6, 323.5, 103.9, 0.0],
                ];
                let latency_ms = rtt
                    .iter()
                    .map(|row| row.iter().map(|r| if *r == 0.0 { 0.5 } else { r / 2.0 }).collect())
                    .collect();
                Ok(Regions {
                    names: [
                        "us-east-1",
                        "us-west-1",
                        "eu-west-1",
                        "eu-central-1",
                        "ap-northeast-1",
                        "ap-southeast-2",
                    ]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                    latency_ms,
                    nodes: None,
                    jitter: Latency::Uniform { min_ms: 0.0, max_ms: 2.0 },
                })
            }
            other => {
                err(format!("--regions `{other}`: the only preset is `aws` (use a fault file for others)"))
            }
        }
    }
}

fn no_jitter() -> Latency {
    Latency::Constant { ms: 0.0 }
}

/// The network model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Network {
    /// Latency of every link without a more specific setting.
    pub latency: Latency,
    /// Probability that a message is lost.
    pub loss: f64,
    /// Probability that a message is delivered twice (the copy has its own latency).
    pub duplicate: f64,
    /// Probability that a message is held back by an extra delay uniform in
    /// `[0, reorder_delay_ms]`, so that later messages overtake it.
    pub reorder: f64,
    /// The most extra delay a reordered message gets, in milliseconds (0 to [`MAX_LATENCY_MS`]).
    pub reorder_delay_ms: f64,
    /// Per-link FIFO: messages on one link are delivered in the order they were sent.
    pub fifo: bool,
    /// Places nodes in regions, whose latencies replace `latency`; an override in `links` still
    /// wins.
    pub regions: Option<Regions>,
    /// Latency overrides for links between two sets of nodes (first match wins).
    pub links: Vec<LinkSpec>,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            latency: Latency::default(),
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay_ms: 10.0,
            fifo: false,
            regions: None,
            links: Vec::new(),
        }
    }
}

/// A symmetric partition: nodes in different groups cannot reach each other. Nodes in no
/// group form one more group of their own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionSpec {
    /// The groups, at least one; a node named in two belongs to the first.
    pub groups: Vec<NodeSet>,
    /// When it begins, in milliseconds of virtual time since the run began.
    pub at_ms: f64,
    /// When it heals; never if omitted.
    #[serde(default)]
    pub heal_ms: Option<f64>,
}

/// A one-way partition: messages from `from` to `to` are lost; the reverse direction works.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OneWaySpec {
    /// The senders whose messages are lost.
    pub from: NodeSet,
    /// The destinations they cannot reach.
    pub to: NodeSet,
    /// When it begins, in milliseconds of virtual time since the run began.
    pub at_ms: f64,
    /// When it heals, after `at_ms`; never if omitted.
    #[serde(default)]
    pub heal_ms: Option<f64>,
}

/// A crash: volatile state is lost; with `restart_ms`, the node is rebuilt from what it
/// persisted and started again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrashSpec {
    /// The nodes that crash, all at the same time.
    pub nodes: NodeSet,
    /// When they crash, in milliseconds of virtual time since the run began.
    pub at_ms: f64,
    /// When they restart, after `at_ms`; if omitted they stay down.
    #[serde(default)]
    pub restart_ms: Option<f64>,
    /// Whether the crash loses the node's storage too.
    #[serde(default)]
    pub wipe: Wipe,
}

/// What a crash does to a node's storage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Wipe {
    /// It survives (the usual crash).
    #[default]
    No,
    /// It is lost, and the node restarts empty, marked as rejoining (`agora node --rejoin`):
    /// a protocol that can rejoin catches up before it votes again; a node whose protocol
    /// cannot ([`agora_core::Setup::rejoins`]) stays down, as `agora node` refuses to start it.
    Rejoin,
    /// It is lost, and the node restarts as a brand-new member: what a runtime that treats a
    /// missing database as a new one would do. A broken variant, for showing what checkers
    /// find when that happens.
    Fresh,
}

/// A pause: the node handles nothing (messages and timers wait) until it resumes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PauseSpec {
    /// The nodes that pause, all at the same time.
    pub nodes: NodeSet,
    /// When they pause, in milliseconds of virtual time since the run began.
    pub at_ms: f64,
    /// When they resume, after `at_ms`; if omitted they stay paused.
    #[serde(default)]
    pub resume_ms: Option<f64>,
}

/// A node's clock: `local = global * (1 + drift_ppm / 1e6) + skew_ms`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockSpec {
    /// The nodes whose clock this is.
    pub nodes: NodeSet,
    /// A constant offset in milliseconds (within ±[`MAX_SKEW_MS`]); a local time below zero reads
    /// as zero.
    #[serde(default)]
    pub skew_ms: f64,
    /// How much faster (or, negative, slower) the clock runs, in parts per million, in
    /// `(-`[`MAX_DRIFT_PPM`]`, `[`MAX_DRIFT_PPM`]`]`.
    #[serde(default)]
    pub drift_ppm: f64,
}

/// Crashes drawn from the run's seed: `count` crashes of nodes from `nodes` (all by default)
/// at times uniform in `[from_ms, to_ms]`, each followed by a restart after a downtime uniform
/// in `[min_down_ms, max_down_ms]` (or no restart when `restart` is false).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RandomCrashes {
    /// How many crashes to draw (at most [`MAX_RANDOM_CRASHES`]); a node may be drawn more than once.
    pub count: u32,
    /// The nodes to draw from; every node of the cluster if omitted.
    pub nodes: Option<NodeSet>,
    /// The start of the window crash times are drawn from, in milliseconds of virtual time.
    pub from_ms: f64,
    /// The end of that window (included).
    pub to_ms: f64,
    /// The shortest downtime before a restart, in milliseconds.
    pub min_down_ms: f64,
    /// The longest downtime before a restart, in milliseconds.
    pub max_down_ms: f64,
    /// Whether crashed nodes restart at all.
    pub restart: bool,
    /// What each crash does to the node's storage.
    pub wipe: Wipe,
}

impl Default for RandomCrashes {
    fn default() -> Self {
        RandomCrashes {
            count: 1,
            nodes: None,
            from_ms: 0.0,
            to_ms: 500.0,
            min_down_ms: 10.0,
            max_down_ms: 300.0,
            restart: true,
            wipe: Wipe::No,
        }
    }
}

impl RandomCrashes {
    /// The concrete crashes for a run of `nodes` nodes, drawn from `rng`.
    pub fn draw(&self, nodes: usize, rng: &mut agora_core::Rng) -> Vec<CrashSpec> {
        use rand::Rng as _;
        let pool: Vec<u32> = match &self.nodes {
            Some(set) => set.iter().map(|n| n.0).collect(),
            None => (0..nodes as u32).collect(),
        };
        (0..self.count)
            .filter(|_| !pool.is_empty())
            .map(|_| {
                let node = pool[rng.random_range(0..pool.len())];
                let at_ms = rng.random_range(self.from_ms..=self.to_ms);
                let down = rng.random_range(self.min_down_ms..=self.max_down_ms);
                CrashSpec {
                    nodes: NodeSet::single(node),
                    at_ms,
                    restart_ms: self.restart.then_some(at_ms + down.max(0.001)),
                    wipe: self.wipe,
                }
            })
            .collect()
    }
}

/// Everything that can go wrong in a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Latency, loss, duplication, reordering and links.
    pub network: Network,
    /// Symmetric partitions (`[[partition]]` in TOML).
    #[serde(rename = "partition")]
    pub partitions: Vec<PartitionSpec>,
    /// One-way partitions (`[[one_way]]`).
    pub one_way: Vec<OneWaySpec>,
    /// Scheduled crashes (`[[crash]]`).
    #[serde(rename = "crash")]
    pub crashes: Vec<CrashSpec>,
    /// Scheduled pauses (`[[pause]]`).
    #[serde(rename = "pause")]
    pub pauses: Vec<PauseSpec>,
    /// Clock skew and drift per node (`[[clock]]`); nodes not named keep the global clock.
    #[serde(rename = "clock")]
    pub clocks: Vec<ClockSpec>,
    /// Crashes drawn from the run's seed (for campaigns over many seeds).
    pub random_crashes: Option<RandomCrashes>,
}

impl Faults {
    /// Parses a TOML fault file (unknown keys are errors).
    pub fn from_toml(text: &str) -> Result<Faults, FaultError> {
        toml::from_str(text).map_err(|e| FaultError(one_line(&e.to_string())))
    }

    /// True when no message between two live nodes can be lost (no loss, no partition).
    /// Crashes and pauses may still happen: checkers judge liveness among never-crashed nodes.
    pub fn lossless(&self) -> bool {
        self.network.loss == 0.0 && self.partitions.is_empty() && self.one_way.is_empty()
    }

    /// The kinds of fault this configuration injects, to compare with a protocol's
    /// [`FaultModel`](agora_core::FaultModel). Random crashes count only once drawn into
    /// `crashes` (the simulator draws them at the start of a run and judges the run with
    /// them).
    pub fn kinds(&self) -> RunFaults {
        let net = &self.network;
        let jitter = !net.latency.is_constant()
            || net.regions.as_ref().is_some_and(|r| !r.jitter.is_constant())
            || net.links.iter().any(|l| !l.latency.is_constant());
        let downs: Vec<(f64, Option<f64>, u32)> = self
            .crashes
            .iter()
            .flat_map(|c| c.nodes.iter().map(move |id| (c.at_ms, c.restart_ms, id.0)))
            .collect();
        RunFaults {
            loss: net.loss > 0.0,
            duplication: net.duplicate > 0.0,
            reordering: net.reorder > 0.0 || (jitter && !net.fifo),
            partitions: !self.partitions.is_empty() || !self.one_way.is_empty(),
            crashes: !downs.is_empty(),
            restarts: self.crashes.iter().any(|c| c.restart_ms.is_some()),
            downs,
            wipes: self.crashes.iter().any(|c| c.wipe != Wipe::No),
            pauses: !self.pauses.is_empty(),
            clocks: self.clocks.iter().any(|c| c.skew_ms != 0.0 || c.drift_ppm != 0.0),
        }
    }

    /// True when no node crashes (scheduled or random).
    pub fn crash_free(&self) -> bool {
        self.crashes.is_empty() && self.random_crashes.as_ref().is_none_or(|r| r.count == 0)
    }

    /// Checks every value against the cluster size; the error names the offending setting.
    pub fn validate(&self, nodes: usize) -> Result<(), FaultError> {
        self.network.validate_values()?;
        self.validate_list_lengths()?;
        self.network.validate_shape(nodes)?;
        self.validate_schedule(nodes)?;
        if let Some(r) = &self.random_crashes {
            r.validate(nodes)?;
        }
        for c in &self.clocks {
            c.validate(nodes)?;
        }
        Ok(())
    }

    /// No list is longer than [`MAX_SPECS`].
    fn validate_list_lengths(&self) -> Result<(), FaultError> {
        let lists = [
            ("network.links", self.network.links.len()),
            ("partition", self.partitions.len()),
            ("one_way", self.one_way.len()),
            ("crash", self.crashes.len()),
            ("pause", self.pauses.len()),
            ("clock", self.clocks.len()),
        ];
        for (what, len) in lists {
            if len > MAX_SPECS {
                return err(format!("{what}: {len} entries; at most {MAX_SPECS}"));
            }
        }
        Ok(())
    }

    /// Partitions, one-way partitions, crashes and pauses name nodes of the cluster, and each
    /// window starts in range and ends after it starts.
    fn validate_schedule(&self, nodes: usize) -> Result<(), FaultError> {
        for p in &self.partitions {
            if p.groups.is_empty() {
                return err("partition: at least one group is needed");
            }
            for g in &p.groups {
                in_range(g, "partition group", nodes)?;
            }
            window("partition", p.at_ms, p.heal_ms)?;
        }
        for p in &self.one_way {
            in_range(&p.from, "one-way partition from", nodes)?;
            in_range(&p.to, "one-way partition to", nodes)?;
            window("one-way partition", p.at_ms, p.heal_ms)?;
        }
        for c in &self.crashes {
            in_range(&c.nodes, "crash", nodes)?;
            window("crash", c.at_ms, c.restart_ms)?;
        }
        for p in &self.pauses {
            in_range(&p.nodes, "pause", nodes)?;
            window("pause", p.at_ms, p.resume_ms)?;
        }
        Ok(())
    }
}

impl Network {
    /// The probabilities and the reorder delay are in range.
    fn validate_values(&self) -> Result<(), FaultError> {
        for (name, p) in [("loss", self.loss), ("duplicate", self.duplicate), ("reorder", self.reorder)] {
            if !(0.0..=1.0).contains(&p) || p.is_nan() {
                return err(format!("--{name} {p:?}: a probability must be between 0 and 1"));
            }
        }
        if !(0.0..=MAX_LATENCY_MS).contains(&self.reorder_delay_ms) {
            return err(format!(
                "--reorder-delay-ms {:?}: must be in 0..={MAX_LATENCY_MS} ms",
                self.reorder_delay_ms
            ));
        }
        Ok(())
    }

    /// The latencies are valid, and links and regions name nodes of the cluster.
    fn validate_shape(&self, nodes: usize) -> Result<(), FaultError> {
        self.latency.validate("network.latency")?;
        for l in &self.links {
            in_range(&l.from, "link from", nodes)?;
            in_range(&l.to, "link to", nodes)?;
            l.latency.validate("link latency")?;
        }
        if let Some(r) = &self.regions {
            r.validate(nodes)?;
        }
        Ok(())
    }
}

impl Regions {
    /// 1 to 1,000 regions, a square matrix of latencies in range, valid jitter, and one node
    /// set per region if they are given.
    fn validate(&self, nodes: usize) -> Result<(), FaultError> {
        let k = self.names.len();
        if k == 0 || k > 1_000 {
            return err(format!("regions: {k} regions; 1 to 1000 are allowed"));
        }
        if self.latency_ms.len() != k || self.latency_ms.iter().any(|row| row.len() != k) {
            return err(format!("regions: latency_ms must be a {k}x{k} matrix"));
        }
        if self.latency_ms.iter().flatten().any(|v| !(0.0..=MAX_LATENCY_MS).contains(v)) {
            return err(format!("regions: latencies must be in 0..={MAX_LATENCY_MS} ms"));
        }
        self.jitter.validate("regions.jitter")?;
        if let Some(sets) = &self.nodes {
            if sets.len() != k {
                return err(format!("regions: `nodes` must list {k} node sets, one per region"));
            }
            for s in sets {
                in_range(s, "region nodes", nodes)?;
            }
        }
        Ok(())
    }
}

impl RandomCrashes {
    /// The node set is in the cluster, the count bounded, and both windows ordered and in
    /// range.
    fn validate(&self, nodes: usize) -> Result<(), FaultError> {
        if let Some(set) = &self.nodes {
            in_range(set, "random crashes", nodes)?;
        }
        if self.count > MAX_RANDOM_CRASHES {
            return err(format!("random crashes: count {}; at most {MAX_RANDOM_CRASHES}", self.count));
        }
        let ok = |v: f64| (0.0..=MAX_TIME_MS).contains(&v);
        if !(ok(self.from_ms) && ok(self.to_ms) && self.from_ms <= self.to_ms) {
            return err("random crashes: from_ms..to_ms must be a non-negative window");
        }
        if !(ok(self.min_down_ms) && ok(self.max_down_ms) && self.min_down_ms <= self.max_down_ms) {
            return err("random crashes: min_down_ms..max_down_ms must be a non-negative range");
        }
        Ok(())
    }
}

impl ClockSpec {
    /// The nodes are in the cluster, the skew and drift in range.
    fn validate(&self, nodes: usize) -> Result<(), FaultError> {
        in_range(&self.nodes, "clock", nodes)?;
        let skew_ok = (-MAX_SKEW_MS..=MAX_SKEW_MS).contains(&self.skew_ms);
        let drift_ok = self.drift_ppm > -MAX_DRIFT_PPM && self.drift_ppm <= MAX_DRIFT_PPM;
        if !(skew_ok && drift_ok) {
            return err(format!(
                "clock: skew {:?} ms, drift {:?} ppm: skew must be within ±{MAX_SKEW_MS} ms and drift in \
                 (-{MAX_DRIFT_PPM}, {MAX_DRIFT_PPM}] ppm",
                self.skew_ms, self.drift_ppm
            ));
        }
        Ok(())
    }
}

/// `set` names at least one node, all in `0..nodes`.
fn in_range(set: &NodeSet, what: &str, nodes: usize) -> Result<(), FaultError> {
    if set.end() as usize > nodes {
        return err(format!("{what} `{set}` names a node outside 0..{nodes}"));
    }
    if set.is_empty() {
        return err(format!("{what} is empty"));
    }
    Ok(())
}

/// A fault's window: it starts in `0..=MAX_TIME_MS` and, if it ends, ends after it starts, at
/// most at `MAX_TIME_MS`.
fn window(what: &str, at: f64, end: Option<f64>) -> Result<(), FaultError> {
    if !(0.0..=MAX_TIME_MS).contains(&at) {
        return err(format!("{what}: start time {at:?} ms must be in 0..={MAX_TIME_MS}"));
    }
    match end {
        Some(e) if !(e > at && e <= MAX_TIME_MS) => err(format!(
            "{what}: end time {e:?} ms must come after the start ({at:?} ms), at most {MAX_TIME_MS}"
        )),
        _ => Ok(()),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn parse_ms(s: &str, what: &str) -> Result<f64, FaultError> {
    s.trim()
        .parse::<f64>()
        .map_err(|_| FaultError::new(format!("{what}: `{s}` is not a time in milliseconds")))
}

fn parse_set(s: &str, what: &str) -> Result<NodeSet, FaultError> {
    s.parse::<NodeSet>().map_err(|e| FaultError::new(format!("{what}: {e}")))
}

/// Splits `X@START[..END]`.
fn split_window(s: &str, what: &str) -> Result<(String, f64, Option<f64>), FaultError> {
    let Some((head, times)) = s.split_once('@') else {
        return err(format!("{what} `{s}`: expected ...@START_MS or ...@START_MS..END_MS"));
    };
    let (at, end) = match times.split_once("..") {
        Some((a, b)) => (parse_ms(a, what)?, Some(parse_ms(b, what)?)),
        None => (parse_ms(times, what)?, None),
    };
    Ok((head.to_string(), at, end))
}

impl FromStr for PartitionSpec {
    type Err = FaultError;

    /// `0..2|2..5@100..500`: groups separated by `|`, from 100 ms, healed at 500 ms.
    fn from_str(s: &str) -> Result<Self, FaultError> {
        let (groups, at_ms, heal_ms) = split_window(s, "--partition")?;
        let groups = groups.split('|').map(|g| parse_set(g, "--partition")).collect::<Result<_, _>>()?;
        Ok(PartitionSpec { groups, at_ms, heal_ms })
    }
}

impl FromStr for OneWaySpec {
    type Err = FaultError;

    /// `0..2>2..5@100..500`: messages from 0..2 to 2..5 are lost from 100 ms to 500 ms.
    fn from_str(s: &str) -> Result<Self, FaultError> {
        let (sets, at_ms, heal_ms) = split_window(s, "--one-way")?;
        let Some((from, to)) = sets.split_once('>') else {
            return err(format!("--one-way `{s}`: expected FROM>TO@START_MS[..HEAL_MS]"));
        };
        Ok(OneWaySpec {
            from: parse_set(from, "--one-way")?,
            to: parse_set(to, "--one-way")?,
            at_ms,
            heal_ms,
        })
    }
}

impl FromStr for CrashSpec {
    type Err = FaultError;

    /// `3@100` (crash node 3 at 100 ms) or `3@100..400` (and restart it at 400 ms).
    fn from_str(s: &str) -> Result<Self, FaultError> {
        let (nodes, at_ms, restart_ms) = split_window(s, "--crash")?;
        Ok(CrashSpec { nodes: parse_set(&nodes, "--crash")?, at_ms, restart_ms, wipe: Wipe::No })
    }
}

impl FromStr for PauseSpec {
    type Err = FaultError;

    /// `3@100..400`: node 3 is paused from 100 ms to 400 ms.
    fn from_str(s: &str) -> Result<Self, FaultError> {
        let (nodes, at_ms, resume_ms) = split_window(s, "--pause")?;
        Ok(PauseSpec { nodes: parse_set(&nodes, "--pause")?, at_ms, resume_ms })
    }
}

/// Parses `NODES=VALUE` (for `--skew` and `--drift`).
pub fn parse_node_value(s: &str, what: &str) -> Result<(NodeSet, f64), FaultError> {
    let Some((nodes, v)) = s.split_once('=') else {
        return err(format!("{what} `{s}`: expected NODES=VALUE, e.g. 0..3=5"));
    };
    let v = v
        .trim()
        .parse::<f64>()
        .map_err(|_| FaultError::new(format!("{what} `{s}`: `{v}` is not a number")))?;
    Ok((parse_set(nodes, what)?, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trip_of_every_part() {
        let text = r#"
            [network]
            latency = { dist = "lognormal", median_ms = 5.0, sigma = 0.5 }
            loss = 0.01
            duplicate = 0.02
            fifo = true
            [[network.links]]
            from = "0"
            to = "1..3"
            latency = { dist = "constant", ms = 50 }
            [network.regions]
            names = ["a", "b"]
            latency_ms = [[1, 80], [80, 1]]
            [[partition]]
            groups = ["0..2", "2..5"]
            at_ms = 100
            heal_ms = 500
            [[one_way]]
            from = [0, 1]
            to = "4"
            at_ms = 0
            [[crash]]
            nodes = 3
            at_ms = 10
            restart_ms = 20
            [[pause]]
            nodes = "4"
            at_ms = 1
            resume_ms = 2
            [[clock]]
            nodes = "0..5"
            skew_ms = -3
            drift_ppm = 50
        "#;
        let f = Faults::from_toml(text).unwrap();
        f.validate(5).unwrap();
        assert_eq!(f.partitions[0].groups.len(), 2);
        assert_eq!(f.crashes[0].restart_ms, Some(20.0));
        assert!(!f.lossless());
        let again = Faults::from_toml(&toml::to_string(&f).unwrap()).unwrap();
        assert_eq!(again, f);
    }

    #[test]
    fn cli_strings_parse() {
        let p: PartitionSpec = "0..2|2..5@100..500".parse().unwrap();
        assert_eq!((p.groups.len(), p.at_ms, p.heal_ms), (2, 100.0, Some(500.0)));
        let o: OneWaySpec = "0>1..3@5".parse().unwrap();
        assert_eq!(o.heal_ms, None);
        let c: CrashSpec = "3@100..400".parse().unwrap();
        assert_eq!(c.restart_ms, Some(400.0));
        assert_eq!(
            "lognormal:5,0.5".parse::<Latency>().unwrap(),
            Latency::LogNormal { median_ms: 5.0, sigma: 0.5 }
        );
        assert_eq!(parse_node_value("0..2=-5", "--skew").unwrap().1, -5.0);
    }

    #[test]
    fn nonsense_is_refused_with_a_reason() {
        let mut f = Faults::default();
        f.network.loss = 1.5;
        assert!(f.validate(3).unwrap_err().0.contains("--loss 1.5"));
        let f = Faults { crashes: vec!["7@1".parse().unwrap()], ..Faults::default() };
        assert!(f.validate(3).unwrap_err().0.contains("outside 0..3"));
        let f = Faults { pauses: vec!["1@10..5".parse().unwrap()], ..Faults::default() };
        assert!(f.validate(3).is_err());
        assert!("uniform:5,1".parse::<Latency>().is_err());
        assert!("gauss:1".parse::<Latency>().is_err());
        assert!("3".parse::<CrashSpec>().is_err());
        assert!(Faults::from_toml("[network]\nlos = 0.1").unwrap_err().0.contains("los"));
    }
}
