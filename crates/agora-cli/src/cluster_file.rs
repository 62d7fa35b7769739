//! The cluster file read by `agora node` and `agora up` (see `examples/cluster.toml`).
//!
//! Everything in it is checked when it is read, with the ranges of the matching flags
//! ([`crate::values`]): a mistake is one line and exit code 2 in `agora node` and `agora up`
//! alike, never a node that starts and then refuses its peers.

use crate::error::UserError;
use crate::values;
use agora_net::Secret;
use agora_protocols::Params;
use serde::{Deserialize, Serialize};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    /// Name every handshake must carry: nodes of another cluster are refused.
    pub cluster: String,
    pub protocol: String,
    /// The cluster secret, 64 hexadecimal digits: every handshake proves it (see
    /// `agora_net::handshake`). Exactly one of `secret` and `secret_file` is required.
    pub secret: Option<String>,
    /// A file holding the secret; relative to the cluster file's folder.
    pub secret_file: Option<PathBuf>,
    #[serde(default = "one")]
    pub seed: u64,
    /// Where nodes keep their databases; relative to the cluster file's folder.
    pub data_dir: Option<PathBuf>,
    #[serde(default)]
    pub params: ParamsFile,
    /// A node that has handled nothing for this long, with no timer pending, is done.
    #[serde(default = "idle_default")]
    pub idle_ms: u64,
    #[serde(default = "max_time_default")]
    pub max_time_ms: u64,
    #[serde(rename = "node")]
    pub nodes: Vec<NodeEntry>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ParamsFile {
    pub topology: Option<String>,
    pub origin: Option<u32>,
    pub variant: Option<String>,
    pub msgs: Option<u32>,
    pub window: Option<u32>,
    #[serde(default)]
    pub no_votes: Vec<u32>,
    pub timeout_ms: Option<f64>,
    pub requests: Option<u32>,
    pub fanout: Option<u32>,
    pub start: Option<u32>,
    pub rounds: Option<u32>,
    pub scenario: Option<String>,
    pub interval_ms: Option<f64>,
    /// Raft: how many of the nodes (the last ones) are clients; the others are replicas.
    pub clients: Option<u32>,
    pub reads: Option<f64>,
    pub snapshot_every: Option<u64>,
    /// Election: voters on the synthetic roll and the share of bad ballots.
    pub voters: Option<u64>,
    pub bad_ballots: Option<f64>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeEntry {
    pub id: u32,
    /// `host:port`; a host name is resolved when the node starts.
    pub addr: String,
}

fn one() -> u64 {
    1
}
fn idle_default() -> u64 {
    2_000
}
fn max_time_default() -> u64 {
    60_000
}

/// The shortest and longest `idle_ms` of a cluster file.
pub const IDLE_MS: (u64, u64) = (1, 3_600_000);

impl ClusterFile {
    /// Reads and checks a cluster file; relative paths become relative to its folder.
    pub fn load(path: &Path) -> Result<ClusterFile, UserError> {
        let text = crate::input::read_text(path, "cluster file", crate::input::MAX_CONFIG_BYTES)?;
        let mut f = ClusterFile::parse(&text)
            .map_err(|e| UserError(format!("cluster file {}: {}", path.display(), e.msg)))?;
        let folder = path.parent().unwrap_or(Path::new("."));
        for p in [&mut f.data_dir, &mut f.secret_file].into_iter().flatten() {
            if p.is_relative() {
                *p = folder.join(&*p);
            }
        }
        Ok(f)
    }

    /// The cluster secret, from `secret` or `secret_file`. Without either, the error says how
    /// to add one and offers a freshly drawn secret.
    pub fn secret(&self, path: &Path) -> Result<Secret, UserError> {
        let at = |e: String| UserError(format!("cluster file {}: {e}", path.display()));
        match (&self.secret, &self.secret_file) {
            (Some(hex), None) => Secret::from_hex(hex).map_err(|e| at(format!("secret: {e}"))),
            (None, Some(file)) => {
                let hex = std::fs::read_to_string(file)
                    .map_err(|e| at(format!("cannot read secret_file {}: {e}", file.display())))?;
                Secret::from_hex(&hex).map_err(|e| at(format!("secret_file {}: {e}", file.display())))
            }
            (Some(_), Some(_)) => Err(at("give `secret` or `secret_file`, not both".into())),
            (None, None) => Err(at(format!(
                "no `secret`: every node must prove it holds the cluster's secret; add a line such as \
                 secret = \"{}\" (freshly drawn; give every node the same), or secret_file = \"PATH\"",
                Secret::random().to_hex()
            ))),
        }
    }

    /// Parses and checks a cluster file's text (paths are left as written).
    pub fn parse(text: &str) -> Result<ClusterFile, UserError> {
        let f: ClusterFile = toml::from_str(text)
            .map_err(|e| UserError(e.to_string().split_whitespace().collect::<Vec<_>>().join(" ")))?;
        f.check()?;
        Ok(f)
    }

    /// Every value against its range.
    fn check(&self) -> Result<(), UserError> {
        let bad = |msg: String| Err(UserError(msg));
        if self.nodes.is_empty() || self.nodes.len() > values::MAX_TCP_NODES {
            return bad(format!(
                "{} [[node]] entries; 1 to {} are allowed",
                self.nodes.len(),
                values::MAX_TCP_NODES
            ));
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if n.id as usize != i {
                return bad(format!(
                    "nodes must be listed with ids 0, 1, 2, ... in order (entry {i} has id {})",
                    n.id
                ));
            }
        }
        values::cluster_name(&self.cluster)
            .map_err(|e| UserError(format!("cluster = {:?}: {e}", self.cluster)))?;
        if !(IDLE_MS.0..=IDLE_MS.1).contains(&self.idle_ms) {
            return bad(format!("idle_ms = {}: must be in {}..={}", self.idle_ms, IDLE_MS.0, IDLE_MS.1));
        }
        if self.max_time_ms == 0 || self.max_time_ms as f64 > values::MAX_LIMIT_MS {
            return bad(format!(
                "max_time_ms = {}: must be in 1..={}",
                self.max_time_ms,
                values::MAX_LIMIT_MS
            ));
        }
        let p = &self.params;
        let float = |name: &str, v: Option<f64>, parse: fn(&str) -> Result<f64, String>| match v {
            Some(v) => {
                parse(&v.to_string()).map(|_| ()).map_err(|e| UserError(format!("params.{name}: {e}")))
            }
            None => Ok(()),
        };
        float("timeout_ms", p.timeout_ms, values::timer_ms)?;
        float("interval_ms", p.interval_ms, values::interval_ms)?;
        float("reads", p.reads, values::probability)?;
        float("bad_ballots", p.bad_ballots, values::probability)?;
        let int = |name: &str, v: Option<u64>, lo: u64, hi: u64| match v {
            Some(v) if !(lo..=hi).contains(&v) => bad(format!("params.{name} = {v}: must be in {lo}..={hi}")),
            _ => Ok(()),
        };
        int("msgs", p.msgs.map(u64::from), 0, 10_000_000)?;
        int("window", p.window.map(u64::from), 1, 1_000_000)?;
        int("requests", p.requests.map(u64::from), 0, 1_000_000)?;
        int("fanout", p.fanout.map(u64::from), 1, 1_000_000)?;
        int("rounds", p.rounds.map(u64::from), 0, 1_000_000)?;
        int("snapshot_every", p.snapshot_every, 1, 1_000_000_000)?;
        int("voters", p.voters, 1, crate::cli::MAX_VOTERS)?;
        Ok(())
    }

    pub fn params(&self) -> Result<Params, UserError> {
        let topology = self.params.topology.as_deref().unwrap_or("complete").parse().map_err(UserError)?;
        let mut nodes = self.nodes.len();
        if let Some(c) = self.params.clients {
            if c as usize >= nodes {
                return Err(UserError(format!(
                    "cluster file: clients = {c} leaves no replica among its {nodes} nodes"
                )));
            }
            nodes -= c as usize;
        }
        let defaults = Params::new(nodes, self.seed);
        Ok(Params {
            clients: self.params.clients.unwrap_or(0),
            reads: self.params.reads.unwrap_or(defaults.reads),
            snapshot_every: self.params.snapshot_every.unwrap_or(defaults.snapshot_every),
            voters: self.params.voters.unwrap_or(defaults.voters),
            bad_ballots: self.params.bad_ballots.unwrap_or(defaults.bad_ballots),
            topology,
            origin: self.params.origin.unwrap_or(0),
            variant: self.params.variant.clone(),
            msgs: self.params.msgs.or(defaults.msgs),
            window: self.params.window.unwrap_or(defaults.window),
            no_votes: self.params.no_votes.clone(),
            timeout_ms: self.params.timeout_ms.unwrap_or(defaults.timeout_ms),
            requests: self.params.requests.unwrap_or(defaults.requests),
            fanout: self.params.fanout.unwrap_or(defaults.fanout),
            start: self.params.start.or(defaults.start),
            rounds: self.params.rounds.unwrap_or(defaults.rounds),
            scenario: self.params.scenario.clone().unwrap_or(defaults.scenario),
            interval_ms: self.params.interval_ms.unwrap_or(defaults.interval_ms),
            ..defaults
        })
    }

    /// A copy of this file with `addrs` in place of the nodes' addresses and an absolute
    /// data folder, for nodes started from another folder (`agora up` with port 0).
    pub fn resolved(&self, addrs: &[SocketAddr]) -> Result<String, UserError> {
        let data_dir = match &self.data_dir {
            Some(d) => Some(
                std::path::absolute(d).map_err(|e| UserError(format!("data folder {}: {e}", d.display())))?,
            ),
            None => None,
        };
        let nodes = self.nodes.iter().zip(addrs).map(|(n, a)| NodeEntry { id: n.id, addr: a.to_string() });
        let copy = ClusterFile {
            cluster: self.cluster.clone(),
            protocol: self.protocol.clone(),
            seed: self.seed,
            data_dir,
            params: toml::from_str(&toml::to_string(&self.params).expect("params serialize"))
                .expect("params read back"),
            idle_ms: self.idle_ms,
            max_time_ms: self.max_time_ms,
            secret: self.secret.clone(),
            secret_file: match &self.secret_file {
                Some(f) => Some(
                    std::path::absolute(f)
                        .map_err(|e| UserError(format!("secret_file {}: {e}", f.display())))?,
                ),
                None => None,
            },
            nodes: nodes.collect(),
        };
        toml::to_string(&copy).map_err(|e| UserError(format!("cannot write the cluster file: {e}")))
    }

    /// Every node's address, resolved; two nodes may not share one.
    pub fn addrs(&self) -> Result<Vec<SocketAddr>, UserError> {
        let addrs =
            self.nodes
                .iter()
                .map(|n| {
                    n.addr.to_socket_addrs().ok().and_then(|mut a| a.next()).ok_or_else(|| {
                        UserError(format!("node {}: cannot resolve address `{}`", n.id, n.addr))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
        for (i, a) in addrs.iter().enumerate() {
            if let Some(j) = addrs[..i].iter().position(|b| b == a && a.port() != 0) {
                return Err(UserError(format!("nodes {j} and {i} both listen on {a}")));
            }
        }
        Ok(addrs)
    }
}
