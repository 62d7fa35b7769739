//! The cluster file read by `agora node` and `agora up` (see `examples/cluster.toml`).
//!
//! Everything in it is checked when it is read, with the ranges of the matching flags
//! ([`crate::values`]): a mistake is one line and exit code 2 in `agora node` and `agora up`
//! alike, never a node that starts and then refuses its peers.

use crate::error::UserError;
use crate::values;
use agora_net::Secret;
use agora_protocols::params::{Value, CLIENTS, MARKET};
use agora_protocols::{ParamError, Params};
use serde::{Deserialize, Serialize};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

/// A cluster file, as read and checked.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    /// Name every handshake must carry: nodes of another cluster are refused.
    pub cluster: String,
    /// The protocol every node runs (a name of `agora protocols`).
    pub protocol: String,
    /// The cluster secret, 64 hexadecimal digits: every handshake proves it (see
    /// `agora_net::handshake`). Exactly one of `secret` and `secret_file` is required.
    pub secret: Option<String>,
    /// A file holding the secret; relative to the cluster file's folder.
    pub secret_file: Option<PathBuf>,
    /// Seeds the nodes' random sources and random topologies.
    #[serde(default = "one")]
    pub seed: u64,
    /// Where nodes keep their databases; relative to the cluster file's folder.
    pub data_dir: Option<PathBuf>,
    /// The protocol's parameters, by their names in the schema ([`agora_protocols::params`]),
    /// and `clients`: how many of the nodes (the last ones) are not replicas. A `market` file
    /// is relative to the cluster file's folder.
    #[serde(default)]
    pub params: toml::Table,
    /// A node that has handled nothing for this long, with no timer pending, is done.
    #[serde(default = "idle_default")]
    pub idle_ms: u64,
    /// A node stops after this long even if it is not done.
    #[serde(default = "max_time_default")]
    pub max_time_ms: u64,
    /// Regions the nodes are placed in, and the one-way latency between them, which every
    /// node adds to what it sends (`NetConfig::link_delay`): the simulator's region model on
    /// real links. Each node then names its `region`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regions: Option<RegionTable>,
    /// The nodes, with ids 0, 1, 2, ... in order.
    #[serde(rename = "node")]
    pub nodes: Vec<NodeEntry>,
}

/// The `[regions]` table of a cluster file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegionTable {
    /// The regions' names, in the order of `latency_ms`' rows and columns.
    pub names: Vec<String>,
    /// `latency_ms[a][b]`: one-way latency from region a to region b, in ms.
    pub latency_ms: Vec<Vec<f64>>,
}

/// The most regions a cluster file may name.
pub const MAX_REGIONS: usize = 1_000;
/// The most latency a link may be given, in ms.
pub const MAX_LINK_LATENCY_MS: f64 = 60_000.0;

/// One `[[node]]` of a cluster file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeEntry {
    /// The node's id: its position in the file.
    pub id: u32,
    /// `host:port`; a host name is resolved when the node starts.
    pub addr: String,
    /// Where an `agora kv serve` replica serves RESP clients (`host:port`); only for
    /// `protocol = "kv"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resp: Option<String>,
    /// Where an `agora vote serve` server serves members (`host:port`, the line protocol of
    /// docs/vote-protocol.md); only for `protocol = "vote"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vote: Option<String>,
    /// The region the node is in: one of `[regions]`' names (only with `[regions]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
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
        if let Some(market) = market_file(&mut f.params) {
            if Path::new(market.as_str()).is_relative() {
                *market = folder.join(&*market).to_string_lossy().into_owned();
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
        for (key, value) in &self.params {
            param_value(key, value)?;
        }
        self.check_regions()
    }

    /// `[regions]`: named once each, a square matrix of latencies in range, and a region of
    /// its for every node; a node's `region` only with it.
    fn check_regions(&self) -> Result<(), UserError> {
        let bad = |msg: String| Err(UserError(msg));
        let Some(r) = &self.regions else {
            return match self.nodes.iter().find(|n| n.region.is_some()) {
                Some(n) => bad(format!("node {}: a `region` needs a [regions] table", n.id)),
                None => Ok(()),
            };
        };
        let k = r.names.len();
        if k == 0 || k > MAX_REGIONS {
            return bad(format!("regions.names: {k} regions; 1 to {MAX_REGIONS} are allowed"));
        }
        if let Some(i) = (1..k).find(|&i| r.names[..i].contains(&r.names[i])) {
            return bad(format!("regions.names: {:?} is named twice", r.names[i]));
        }
        if r.latency_ms.len() != k || r.latency_ms.iter().any(|row| row.len() != k) {
            return bad(format!("regions.latency_ms: must be {k} rows of {k} numbers, one per region"));
        }
        let out_of_range = |ms: &f64| !(0.0..=MAX_LINK_LATENCY_MS).contains(ms);
        if let Some(ms) = r.latency_ms.iter().flatten().find(|ms| out_of_range(ms)) {
            return bad(format!("regions.latency_ms: {ms} must be in 0..={MAX_LINK_LATENCY_MS} ms"));
        }
        for n in &self.nodes {
            match &n.region {
                None => return bad(format!("node {}: no `region` (one of regions.names)", n.id)),
                Some(name) if !r.names.contains(name) => {
                    return bad(format!("node {}: region {name:?} is not in regions.names", n.id))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Each node's region, by its index in `[regions]` (empty without regions).
    pub fn node_regions(&self) -> Vec<usize> {
        let Some(r) = &self.regions else { return Vec::new() };
        let index = |n: &NodeEntry| r.names.iter().position(|x| Some(x) == n.region.as_ref()).unwrap_or(0);
        self.nodes.iter().map(index).collect()
    }

    /// The one-way latency the region model gives each link, `[from][to]` (empty without
    /// regions): what `agora node` adds to every frame it sends.
    pub fn link_delay(&self) -> Vec<Vec<std::time::Duration>> {
        let Some(r) = &self.regions else { return Vec::new() };
        let of = self.node_regions();
        let ms = |a: usize, b: usize| std::time::Duration::from_secs_f64(r.latency_ms[of[a]][of[b]] / 1e3);
        (0..of.len()).map(|a| (0..of.len()).map(|b| ms(a, b)).collect()).collect()
    }

    /// The protocol's parameters: the file's values, its nodes (less its `clients`), its
    /// seed. Checked against the protocol: a value it does not read is an error here.
    pub fn params(&self) -> Result<Params, UserError> {
        let total = self.nodes.len();
        let mut clients = 0;
        let mut given = Vec::new();
        for (key, value) in &self.params {
            let (param, value) = param_value(key, value)?;
            if std::ptr::eq(param, &CLIENTS) {
                let Value::Count(c) = value else { unreachable!("clients is a count") };
                clients = c as usize;
            } else {
                given.push((param, value));
            }
        }
        if clients >= total {
            return Err(UserError(format!(
                "params.clients = {clients} leaves no replica among the {total} nodes"
            )));
        }
        let entry = agora_protocols::registry::entry(&self.protocol).map_err(in_file)?;
        let mut p = Params::new(total - clients, self.seed);
        if entry.specs.iter().any(|s| std::ptr::eq(s.param, &CLIENTS)) {
            p.set(&CLIENTS, clients as u64).map_err(in_file)?;
        }
        for (param, value) in given {
            p.set(param, value).map_err(in_file)?;
        }
        agora_protocols::registry::cluster_size(&self.protocol, &p).map_err(in_file)?;
        Ok(p)
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
        let nodes = self.nodes.iter().zip(addrs).map(|(n, a)| NodeEntry {
            id: n.id,
            addr: a.to_string(),
            resp: n.resp.clone(),
            vote: n.vote.clone(),
            region: n.region.clone(),
        });
        let mut params = self.params.clone();
        if let Some(market) = market_file(&mut params) {
            let path = std::path::absolute(&*market)
                .map_err(|e| UserError(format!("params.market {market}: {e}")))?;
            *market = path.to_string_lossy().into_owned();
        }
        let copy = ClusterFile {
            cluster: self.cluster.clone(),
            protocol: self.protocol.clone(),
            seed: self.seed,
            data_dir,
            params,
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
            regions: self.regions.clone(),
            nodes: nodes.collect(),
        };
        toml::to_string(&copy).map_err(|e| UserError(format!("cannot write the cluster file: {e}")))
    }

    /// For each node given by host name rather than by address, that `host:port`: the
    /// runtime resolves it again at every dial (`NetConfig::names`).
    pub fn names(&self) -> Vec<Option<String>> {
        self.nodes.iter().map(|n| n.addr.parse::<SocketAddr>().is_err().then(|| n.addr.clone())).collect()
    }

    /// Node `me`'s client-facing address (`field` of its entry, named `key` in the file, e.g.
    /// `resp` or `vote`), resolved, and every node's as the file gives it (a peer's name may
    /// not resolve yet: see [`ClusterFile::peer_addrs_for`]); a node without one is a mistake
    /// (`example` shows one).
    pub fn client_addrs_for(
        &self,
        me: usize,
        key: &str,
        example: &str,
        field: impl Fn(&NodeEntry) -> Option<&str>,
    ) -> Result<(SocketAddr, Vec<String>), UserError> {
        let given = self
            .nodes
            .iter()
            .map(|n| {
                field(n)
                    .map(String::from)
                    .ok_or_else(|| UserError(format!("node {}: no `{key}` address ({example})", n.id)))
            })
            .collect::<Result<Vec<String>, UserError>>()?;
        let mine = given.get(me).ok_or_else(|| {
            UserError(format!("--id {me}: the cluster file lists nodes 0..{}", self.nodes.len()))
        })?;
        let addr = resolve_within(mine, std::time::Duration::ZERO)
            .ok_or_else(|| UserError(format!("node {me}: cannot resolve {key} address `{mine}`")))?;
        Ok((addr, given))
    }

    /// Every node's address, resolved; two nodes may not share one.
    pub fn addrs(&self) -> Result<Vec<SocketAddr>, UserError> {
        self.addrs_within(std::time::Duration::ZERO)
    }

    /// Every node's address as node `me` needs it: its own resolved, trying again for up to
    /// `wait` while its name does not resolve; each peer's resolved if its name resolves now,
    /// and otherwise left to the dial, which looks the name up again each time
    /// ([`ClusterFile::names`]), with the unspecified address of its port standing in. So a
    /// node listens without waiting for its peers: in containers, a peer's name exists only
    /// once its container runs, and on a Swarm only once its health check has passed, which
    /// needs the peer listening (docs/cluster.md, *The health check*). Two nodes may not share
    /// an address; port 0 is refused (`who`, `replicas` or `servers`, must know where to dial).
    pub fn peer_addrs_for(
        &self,
        me: usize,
        wait: std::time::Duration,
        who: &str,
    ) -> Result<Vec<SocketAddr>, UserError> {
        if me >= self.nodes.len() {
            return Err(UserError(format!(
                "--id {me}: the cluster file lists nodes 0..{}",
                self.nodes.len()
            )));
        }
        let mut addrs = Vec::with_capacity(self.nodes.len());
        for (i, n) in self.nodes.iter().enumerate() {
            let wait = if i == me { wait } else { std::time::Duration::ZERO };
            let addr = match resolve_within(&n.addr, wait) {
                Some(a) => a,
                None if i != me => match n.addr.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()) {
                    Some(port) => SocketAddr::from(([0, 0, 0, 0], port)),
                    None => {
                        return Err(UserError(format!("node {}: address `{}` has no port", n.id, n.addr)))
                    }
                },
                None => return Err(UserError(format!("node {}: cannot resolve address `{}`", n.id, n.addr))),
            };
            addrs.push(addr);
        }
        if let Some(i) = addrs.iter().position(|a| a.port() == 0) {
            return Err(UserError(format!(
                "node {i}: port 0 in the cluster file; {who} must know where to dial each other"
            )));
        }
        // A stand-in (unspecified) is no address: two may share a port.
        distinct(&addrs, |a| a.ip().is_unspecified())?;
        Ok(addrs)
    }

    /// Every node's address, resolved, trying again for up to `wait` while a name does not
    /// resolve: in containers, a peer's name exists only once its container runs.
    pub fn addrs_within(&self, wait: std::time::Duration) -> Result<Vec<SocketAddr>, UserError> {
        let deadline = std::time::Instant::now() + wait;
        let mut addrs = Vec::with_capacity(self.nodes.len());
        for n in &self.nodes {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let addr = resolve_within(&n.addr, left)
                .ok_or_else(|| UserError(format!("node {}: cannot resolve address `{}`", n.id, n.addr)))?;
            addrs.push(addr);
        }
        // Port 0 is no address either: the kernel picks one for each.
        distinct(&addrs, |a| a.port() == 0)?;
        Ok(addrs)
    }
}

/// No two nodes share an address, leaving out those `unplaced` says are not one yet.
fn distinct(addrs: &[SocketAddr], unplaced: impl Fn(&SocketAddr) -> bool) -> Result<(), UserError> {
    for (i, a) in addrs.iter().enumerate().filter(|(_, a)| !unplaced(a)) {
        if let Some(j) = addrs[..i].iter().position(|b| b == a) {
            return Err(UserError(format!("nodes {j} and {i} both listen on {a}")));
        }
    }
    Ok(())
}

/// `addr` (`host:port`) resolved, trying again every 200 ms for up to `wait`.
fn resolve_within(addr: &str, wait: std::time::Duration) -> Option<SocketAddr> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        if let Some(a) = addr.to_socket_addrs().ok().and_then(|mut a| a.next()) {
            return Some(a);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// The market file a `[params]` table names, if any.
fn market_file(params: &mut toml::Table) -> Option<&mut String> {
    match params.get_mut(MARKET.name) {
        Some(toml::Value::String(path)) => Some(path),
        _ => None,
    }
}

/// A `[params]` entry as a parameter and its value, checked against the parameter's kind.
fn param_value(
    key: &str,
    value: &toml::Value,
) -> Result<(&'static agora_protocols::params::Param, Value), UserError> {
    let param = agora_protocols::params::named(key).ok_or_else(|| {
        let names: Vec<&str> = agora_protocols::params::ALL.iter().map(|p| p.name).collect();
        UserError(format!("params.{key}: no such parameter (parameters: {})", names.join(", ")))
    })?;
    let text = match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Array(ids) => {
            let ids: Option<Vec<String>> =
                ids.iter().map(|v| v.as_integer().map(|i| i.to_string())).collect();
            ids.ok_or_else(|| UserError(format!("params.{key}: expected a list of node ids")))?.join(",")
        }
        other => {
            return Err(UserError(format!(
                "params.{key} = {other}: expected a number, text or a list of node ids"
            )))
        }
    };
    let textual = matches!(value, toml::Value::String(_));
    if textual != matches!(param.kind, agora_protocols::params::Kind::Text) {
        return Err(UserError(format!("params.{key} = {value}: of the wrong type")));
    }
    let value = param.parse(&text).map_err(|e| UserError(format!("params.{key}: {e}")))?;
    Ok((param, value))
}

/// A parameter's mistake in the file's words: `params.origin`, not `--origin`.
fn in_file(e: ParamError) -> UserError {
    UserError(match e {
        ParamError::UnknownProtocol(_) => e.to_string(),
        ParamError::NotUsed { protocol, param, used } => {
            format!(
                "params.{param} is not a parameter of {protocol} (its parameters: {})",
                agora_protocols::params::list(&used)
            )
        }
        ParamError::Invalid { param: "nodes", why } => {
            format!("the nodes of the file, less params.clients: {why}")
        }
        ParamError::Invalid { param, why } => format!("params.{param} {why}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(name: &str) -> ClusterFile {
        ClusterFile::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(name)).unwrap()
    }

    #[test]
    fn the_example_cluster_files_build_clusters_of_their_nodes() {
        for name in ["cluster.toml", "election-cluster.toml"] {
            let f = example(name);
            let p = f.params().unwrap_or_else(|e| panic!("{name}: {e}"));
            let size = agora_protocols::registry::cluster_size(&f.protocol, &p).unwrap();
            assert_eq!(size, f.nodes.len(), "{name}");
        }
    }

    #[test]
    fn regions_give_every_link_its_latency_and_mistakes_are_named() {
        let file = |regions: &str, r0: &str| {
            format!(
                "cluster = \"m\"\nprotocol = \"causal\"\nsecret = \"00\"\n{regions}\n\
                 [[node]]\nid = 0\naddr = \"127.0.0.1:7000\"\n{r0}\n\
                 [[node]]\nid = 1\naddr = \"127.0.0.1:7001\"\nregion = \"b\"\n"
            )
        };
        let two = "[regions]\nnames = [\"a\", \"b\"]\nlatency_ms = [[0.5, 40.0], [30.0, 1.0]]";
        let f = ClusterFile::parse(&file(two, "region = \"a\"")).unwrap();
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        let delay = f.link_delay();
        assert_eq!((ms(delay[0][1]), ms(delay[1][0]), ms(delay[1][1])), (40.0, 30.0, 1.0));
        assert_eq!(f.node_regions(), [0, 1]);
        // It survives the copy `agora up` writes for its nodes.
        let copy = ClusterFile::parse(&f.resolved(&f.addrs().unwrap()).unwrap()).unwrap();
        assert_eq!(copy.link_delay(), delay);
        let refused = |text: String, says: &str| {
            let e = ClusterFile::parse(&text).unwrap_err().msg;
            assert!(e.contains(says), "{e}");
        };
        refused(file(two, "region = \"c\""), "region \"c\" is not in regions.names");
        refused(file(two, ""), "node 0: no `region`");
        refused(file("", "region = \"a\""), "a `region` needs a [regions] table");
        refused(file(&two.replace("[30.0, 1.0]", "[30.0]"), "region = \"a\""), "2 rows of 2 numbers");
        refused(file(&two.replace("40.0", "-1.0"), "region = \"a\""), "-1 must be in 0..=60000");
        refused(file(&two.replace("\"b\"]", "\"a\"]"), "region = \"a\""), "\"a\" is named twice");
        let plain = file("", "").replace("region = \"b\"\n", "");
        assert!(ClusterFile::parse(&plain).unwrap().link_delay().is_empty(), "no regions, no delay");
    }

    #[test]
    fn the_kv_example_gives_every_replica_a_resp_address() {
        let f = example("kv-cluster.toml");
        assert_eq!(f.protocol, "kv");
        assert_eq!(f.addrs().unwrap().len(), 3);
        assert!(f.nodes.iter().all(|n| n.resp.is_some()));
        let copy = ClusterFile::parse(&f.resolved(&f.addrs().unwrap()).unwrap()).unwrap();
        assert_eq!(copy.nodes[2].resp.as_deref(), Some("127.0.0.1:6382"), "resolved keeps resp");
    }

    #[test]
    fn parameters_are_checked_in_the_files_words() {
        let file = |params: &str| {
            format!(
                "cluster = \"c\"\nprotocol = \"raft\"\nsecret = \"{}\"\n[params]\n{params}\n\
                 [[node]]\nid = 0\naddr = \"127.0.0.1:1\"\n[[node]]\nid = 1\naddr = \"127.0.0.1:2\"\n",
                "5e".repeat(32)
            )
        };
        let err = |params: &str| match ClusterFile::parse(&file(params)).and_then(|f| f.params()) {
            Ok(_) => panic!("{params}: accepted"),
            Err(e) => e.msg,
        };
        assert!(err("fanout = 3").starts_with("params.fanout is not a parameter of raft"));
        assert!(err("fanotu = 3").contains("params.fanotu: no such parameter"));
        assert!(err("reads = 2.0").contains("params.reads: 2 is not in [0, 1]"));
        assert!(err("window = \"many\"").contains("params.window"));
        assert!(err("clients = 2").contains("leaves no replica"));
        let ok = ClusterFile::parse(&file("clients = 1\nreads = 0.5")).unwrap().params().unwrap();
        assert_eq!(ok.nodes, 1, "one of the two nodes is a client");
        assert_eq!(agora_protocols::registry::cluster_size("raft", &ok).unwrap(), 2);
    }

    #[test]
    fn a_node_starts_before_its_peers_names_resolve_but_not_before_its_own() {
        let mut f = example("cluster.toml");
        let mine = f.nodes[0].addr.clone();
        f.nodes[1].addr = "peer-not-up-yet.invalid:7001".into();
        f.nodes[2].addr = "other-not-up-yet.invalid:7001".into();
        let addrs = f.peer_addrs_for(0, std::time::Duration::ZERO, "replicas").unwrap();
        assert_eq!(addrs[0].to_string(), mine);
        // Two stand-ins may share a port: neither is dialled (the name is, at every dial).
        assert_eq!(addrs[1], SocketAddr::from(([0, 0, 0, 0], 7001)));
        assert_eq!(addrs[2], SocketAddr::from(([0, 0, 0, 0], 7001)));
        assert_eq!(f.names()[1].as_deref(), Some("peer-not-up-yet.invalid:7001"));
        let own = f.peer_addrs_for(1, std::time::Duration::ZERO, "replicas").unwrap_err().msg;
        assert!(own.contains("node 1: cannot resolve address `peer-not-up-yet.invalid:7001`"), "{own}");
        let id = f.peer_addrs_for(5, std::time::Duration::ZERO, "replicas").unwrap_err().msg;
        assert!(id.contains("--id 5: the cluster file lists nodes 0..5"), "{id}");
        f.nodes[2].addr = "other-not-up-yet.invalid".into();
        let port = f.peer_addrs_for(0, std::time::Duration::ZERO, "replicas").unwrap_err().msg;
        assert!(port.contains("has no port"), "{port}");
        f.nodes[2].addr = mine;
        let twice = f.peer_addrs_for(0, std::time::Duration::ZERO, "replicas").unwrap_err().msg;
        assert!(twice.contains("nodes 0 and 2 both listen on"), "{twice}");
    }

    #[test]
    fn nodes_given_by_name_are_named_for_dialling_again() {
        let mut f = example("cluster.toml");
        f.nodes[1].addr = "localhost:7001".into();
        let names = f.names();
        assert_eq!(names[1].as_deref(), Some("localhost:7001"));
        assert!(names.iter().enumerate().all(|(i, n)| i == 1 || n.is_none()), "{names:?}");
    }

    #[test]
    fn a_market_file_is_relative_to_the_cluster_file() {
        let dir = tempfile::tempdir().unwrap();
        let market =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/market.toml"))
                .unwrap();
        std::fs::create_dir(dir.path().join("shop")).unwrap();
        std::fs::write(dir.path().join("shop/m.toml"), &market).unwrap();
        let peers = agora_protocols::market::file::parse(&market).unwrap().peers();
        let nodes: String =
            (0..peers).map(|i| format!("[[node]]\nid = {i}\naddr = \"127.0.0.1:0\"\n")).collect();
        let cluster = format!(
            "cluster = \"c\"\nprotocol = \"market\"\nsecret = \"{}\"\n[params]\nmarket = \"shop/m.toml\"\n{nodes}",
            "5e".repeat(32)
        );
        std::fs::write(dir.path().join("cluster.toml"), cluster).unwrap();
        let f = ClusterFile::load(&dir.path().join("cluster.toml")).unwrap();
        let p = f.params().unwrap();
        assert_eq!(agora_protocols::registry::cluster_size("market", &p).unwrap(), peers);
        let copy = ClusterFile::parse(&f.resolved(&f.addrs().unwrap()).unwrap()).unwrap();
        let path = copy.params["market"].as_str().unwrap().to_string();
        assert!(Path::new(&path).is_absolute() && path.ends_with("shop/m.toml"), "{path}");
        std::fs::write(dir.path().join("shop/m.toml"), "[goods]\nfish = 0\n").unwrap();
        let e = f.params().unwrap_err().msg;
        assert!(e.starts_with("params.market ") && e.ends_with("goods.fish: price must be above 0"), "{e}");
    }
}
