//! The cluster file read by `agora node` and `agora up` (see `examples/cluster.toml`).

use crate::error::UserError;
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
        if let Some(d) = &f.data_dir {
            if d.is_relative() {
                f.data_dir = Some(path.parent().unwrap_or(Path::new(".")).join(d));
            }
        }
        Ok(f)
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
            nodes: nodes.collect(),
        };
        toml::to_string(&copy).map_err(|e| UserError(format!("cannot write the cluster file: {e}")))
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
