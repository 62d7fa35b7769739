//! The cluster file read by `agora node` and `agora up` (see `examples/cluster.toml`).

use crate::error::UserError;
use agora_net::Secret;
use agora_protocols::Params;
use serde::Deserialize;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
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

#[derive(Debug, Default, Deserialize)]
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

#[derive(Debug, Deserialize)]
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

impl ClusterFile {
    /// Reads and checks a cluster file; relative paths become relative to its folder.
    pub fn load(path: &Path) -> Result<ClusterFile, UserError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| UserError(format!("cannot read cluster file {}: {e}", path.display())))?;
        let mut f: ClusterFile = toml::from_str(&text).map_err(|e| {
            UserError(format!(
                "cluster file {}: {}",
                path.display(),
                e.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
            ))
        })?;
        if f.nodes.is_empty() {
            return Err(UserError(format!("cluster file {}: no [[node]] entries", path.display())));
        }
        for (i, n) in f.nodes.iter().enumerate() {
            if n.id as usize != i {
                return Err(UserError(format!(
                    "cluster file {}: nodes must be listed with ids 0, 1, 2, ... in order (entry {i} has id {})",
                    path.display(),
                    n.id
                )));
            }
        }
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

    /// Every node's address, resolved.
    pub fn addrs(&self) -> Result<Vec<SocketAddr>, UserError> {
        self.nodes
            .iter()
            .map(|n| {
                n.addr
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut a| a.next())
                    .ok_or_else(|| UserError(format!("node {}: cannot resolve address `{}`", n.id, n.addr)))
            })
            .collect()
    }
}
