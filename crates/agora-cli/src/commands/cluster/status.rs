//! `agora cluster status`: the cluster's containers as Docker sees them, and what the nodes
//! say: a key-value replica its Raft role, term, leader and commit index (`INFO
//! replication`); a voting-service server its greeting on the members' port and, in its log
//! (`--events`), the terms it led; the election, once every node has ended, its checker's
//! verdict on the reports the nodes printed; the market, its trader and its checker's verdict
//! on the history its peers logged so far ([`super::market`]).

use super::docker::Docker;
use super::files::{RESP_PORT, VOTE_PORT};
use super::Files;
use crate::commands::health;
use crate::commands::shared::{exit_code, output};
use crate::error::UserError;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// A node's container.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Container {
    /// The node's id (its `agora.node` label).
    pub node: usize,
    /// Docker's container id.
    pub id: String,
    /// `running`, `exited`, `paused`, ...
    pub state: String,
    /// Its exit code, once exited.
    pub exit_code: i64,
    /// Its health check's verdict, if it has one: `starting`, `healthy`, `unhealthy`.
    pub health: Option<String>,
    /// Its address on the cluster's network, while it has one (Compose).
    pub ip: Option<IpAddr>,
    /// On a Swarm: the node's tasks, oldest first (the last is `id`); each run of the node
    /// is a task of its own, and its log is theirs in order. Empty under Compose.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<String>,
    /// On a Swarm: the machine its latest task was placed on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// On a Swarm: where this machine reaches the node's ports, through the relay
    /// ([`super::swarm`]), by port.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub relayed: BTreeMap<u16, SocketAddr>,
}

impl Container {
    /// Where this machine reaches the node's `port`: its address on the bridge under Compose,
    /// the relay on a Swarm; `None` while it has no address.
    pub fn at(&self, port: u16) -> Option<SocketAddr> {
        if self.tasks.is_empty() {
            self.ip.map(|ip| SocketAddr::new(ip, port))
        } else {
            self.relayed.get(&port).copied()
        }
    }

    /// Where it is, as text: its address under Compose, the machine of its task on a Swarm.
    pub fn place(&self) -> String {
        match (self.ip, &self.host) {
            (Some(ip), _) => ip.to_string(),
            (None, Some(host)) => format!("on {host}"),
            (None, None) => "-".into(),
        }
    }

    /// `at(port)` as text, `-` without one.
    pub fn shown_at(&self, port: u16) -> String {
        self.at(port).map_or("-".into(), |a| a.to_string())
    }
}

/// The containers labelled as nodes of cluster `name`, by node id: Compose's. (A Swarm's
/// tasks on this machine carry the same labels; they are left out here, and
/// [`super::swarm::containers`] gives a Swarm's nodes, wherever they run.)
pub fn containers(docker: &Docker, name: &str) -> Result<Vec<Container>, UserError> {
    let label = format!("label=agora.cluster={name}");
    let mut out: Vec<Container> = docker
        .inspect_listed(&["ps", "-a", "-q", "--no-trunc", "--filter", &label])?
        .iter()
        .filter_map(container)
        .collect();
    out.sort_by_key(|c| c.node);
    Ok(out)
}

/// One container of `docker inspect`; `None` without our label.
fn container(v: &serde_json::Value) -> Option<Container> {
    if v["Config"]["Labels"].get("com.docker.stack.namespace").is_some() {
        return None;
    }
    let node = v["Config"]["Labels"]["agora.node"].as_str()?.parse().ok()?;
    let state = &v["State"];
    let ip = v["NetworkSettings"]["Networks"]
        .as_object()
        .into_iter()
        .flat_map(|n| n.values())
        .filter_map(|n| n["IPAddress"].as_str()?.parse().ok())
        .next();
    Some(Container {
        node,
        id: v["Id"].as_str().unwrap_or_default().chars().take(12).collect(),
        state: state["Status"].as_str().unwrap_or("unknown").to_string(),
        exit_code: state["ExitCode"].as_i64().unwrap_or(0),
        health: state["Health"]["Status"].as_str().map(String::from),
        ip,
        tasks: Vec::new(),
        host: None,
        relayed: BTreeMap::new(),
    })
}

/// What a key-value replica says of itself.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Replica {
    /// `leader`, `follower` or `candidate`.
    pub role: String,
    /// Its current term.
    pub term: u64,
    /// The leader it follows, if any.
    pub leader: Option<usize>,
    /// Its commit index.
    pub commit: u64,
}

fn replica_at(at: SocketAddr) -> Option<Replica> {
    let i: BTreeMap<String, String> = health::info(at).ok()?;
    Some(Replica {
        role: i["raft_role"].clone(),
        term: i.get("raft_term")?.parse().ok()?,
        leader: i.get("raft_leader").and_then(|l| l.parse().ok()),
        commit: i.get("raft_commit_index").and_then(|l| l.parse().ok()).unwrap_or(0),
    })
}

/// What every replica says of itself (`None`: it did not answer), all asked at once.
pub fn replicas(cs: &[Container]) -> Vec<Option<Replica>> {
    ask_running(cs, RESP_PORT, replica_at)
}

/// `ask` of every running container's `port`, all at once so that a silent one (a paused
/// container) costs one timeout, not one each; `None` for one not running or not answering.
pub fn ask_running<T: Send>(
    cs: &[Container],
    port: u16,
    ask: impl Fn(SocketAddr) -> Option<T> + Sync,
) -> Vec<Option<T>> {
    let ask = &ask;
    std::thread::scope(|s| {
        let asked: Vec<_> = cs
            .iter()
            .map(|c| s.spawn(move || c.at(port).filter(|_| c.state == "running").and_then(ask)))
            .collect();
        // A thread that panicked answered nothing.
        asked.into_iter().map(|h| h.join().unwrap_or(None)).collect()
    })
}

/// The leader a majority of `nodes` replicas follow (itself included), and its RESP address.
pub fn agreed_leader(cs: &[Container], rs: &[Option<Replica>], nodes: usize) -> Option<(usize, SocketAddr)> {
    let (c, _) = cs.iter().zip(rs).find(|(_, r)| r.as_ref().is_some_and(|r| r.role == "leader"))?;
    let followers = rs.iter().flatten().filter(|r| r.leader == Some(c.node)).count();
    (followers > nodes / 2).then(|| c.at(RESP_PORT).expect("answered")).map(|a| (c.node, a))
}

/// Where a cluster's nodes run: containers of one machine's Compose project, or the
/// services of a Swarm's stack ([`super::swarm`]), asked through a relay on these ports.
#[derive(Clone, Debug)]
pub enum Where {
    /// Compose, on this machine.
    Compose,
    /// A stack on the Swarm this machine manages.
    Swarm {
        /// The cluster's nodes.
        nodes: usize,
        /// The ports of each node that are asked.
        ports: Vec<u16>,
        /// Where the relay publishes them, as last found.
        relay: super::swarm::RelayCache,
    },
}

impl Where {
    /// Where cluster `name`, of cluster file `cf`, runs: on a Swarm if this machine manages
    /// one where it is deployed, else under Compose.
    pub fn of(docker: &Docker, name: &str, cf: &crate::cluster_file::ClusterFile) -> Where {
        if super::swarm::deployed(docker, name) {
            Where::Swarm {
                nodes: cf.nodes.len(),
                ports: super::swarm::ports(&cf.protocol),
                relay: Default::default(),
            }
        } else {
            Where::Compose
        }
    }

    /// The cluster's nodes, by node id.
    pub fn containers(&self, docker: &Docker, name: &str) -> Result<Vec<Container>, UserError> {
        match self {
            Where::Compose => containers(docker, name),
            Where::Swarm { nodes, ports, relay } => {
                super::swarm::containers(docker, name, *nodes, ports, relay)
            }
        }
    }
}

/// Asks every replica until a majority follows one leader, or `deadline`.
pub fn wait_for_leader(
    docker: &Docker,
    name: &str,
    place: &Where,
    nodes: usize,
    deadline: Instant,
) -> Result<Option<(usize, SocketAddr)>, UserError> {
    wait_until(docker, name, place, deadline, |cs| agreed_leader(cs, &replicas(cs), nodes))
}

/// Asks every voting-service server until all `nodes` greet and one says it leads, or
/// `deadline`; the leader's members' address.
pub fn wait_for_vote_leader(
    docker: &Docker,
    name: &str,
    place: &Where,
    nodes: usize,
    deadline: Instant,
) -> Result<Option<(usize, SocketAddr)>, UserError> {
    wait_until(docker, name, place, deadline, |cs| {
        let vs = vote_servers(docker, cs);
        let all = vs.iter().filter(|v| v.answers).count() == nodes;
        vote_leader(cs, &vs).filter(|_| all).map(|(n, a, _)| (n, a))
    })
}

/// Looks at the cluster's containers until `found` finds what it looks for, or `deadline`;
/// a container that stopped meanwhile is an error with its last log line (under Compose: on
/// a Swarm, a task that ended is followed by another).
pub(super) fn wait_until<T>(
    docker: &Docker,
    name: &str,
    place: &Where,
    deadline: Instant,
    found: impl Fn(&[Container]) -> Option<T>,
) -> Result<Option<T>, UserError> {
    loop {
        let cs = place.containers(docker, name)?;
        let compose = matches!(place, Where::Compose);
        if let Some(c) = cs.iter().find(|c| compose && (c.state == "exited" || c.state == "dead")) {
            return Err(UserError(format!(
                "node {} stopped (exit code {}): {}",
                c.node,
                c.exit_code,
                docker.last_log_line(&c.id)
            )));
        }
        if let Some(it) = found(&cs) {
            return Ok(Some(it));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `agora cluster status`: 0 if every node is up (or, for a finished election, every check
/// held), 1 otherwise.
pub fn run(docker: &Docker, files: &Files, json: bool) -> Result<i32, UserError> {
    let cf = files.load()?;
    let nodes = cf.nodes.len();
    let place = Where::of(docker, &files.name, &cf);
    let cs = place.containers(docker, &files.name)?;
    if matches!(place, Where::Swarm { .. }) {
        super::swarm::warn_pruned(docker, &cs);
    }
    match cf.protocol.as_str() {
        "kv" => Ok(raft(&files.name, &cs, nodes, json)),
        "election" => election(docker, &cs, &cf, json),
        "vote" => Ok(vote(docker, &files.name, &cs, nodes, json)),
        "market" => super::market::status(docker, &files.name, &cs, &cf, json),
        p if agora_protocols::multicast::Order::parse(p).is_some() => {
            super::multicast::status(docker, &files.name, &cs, &cf, json)
        }
        other => Err(UserError(format!(
            "{}: protocol {other:?} is not one agora cluster starts",
            files.cluster.display()
        ))),
    }
}

pub(super) fn state(c: &Container) -> String {
    match (c.state.as_str(), &c.health) {
        ("exited", _) => format!("exited({})", c.exit_code),
        (s, Some(h)) => format!("{s} ({h})"),
        (s, None) => s.to_string(),
    }
}

fn raft(name: &str, cs: &[Container], nodes: usize, json: bool) -> i32 {
    let rs = replicas(cs);
    let leader = agreed_leader(cs, &rs, nodes);
    // Election safety, as far as the answers show it: one leader per term.
    let mut leaders: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (c, r) in cs.iter().zip(&rs) {
        if let Some(r) = r.as_ref().filter(|r| r.role == "leader") {
            leaders.entry(r.term).or_default().push(c.node);
        }
    }
    let two = leaders.iter().find(|(_, l)| l.len() > 1);
    let up = rs.iter().flatten().count();
    if json {
        let v = serde_json::json!({
            "cluster": name, "system": "raft", "nodes": nodes,
            "containers": cs, "replicas": rs, "answering": up,
            "leader": leader.map(|(n, a)| serde_json::json!({ "node": n, "resp": a.to_string() })),
            "one_leader_per_term": two.is_none(),
        });
        println!("{v}");
    } else {
        println!("cluster {name}: raft, {nodes} replicas, {} container(s)", cs.len());
        println!(
            "{:<5} {:<22} {:<18} {:<10} {:>6} {:>7} {:>8}",
            "node", "container", "resp", "role", "term", "leader", "commit"
        );
        for (c, r) in cs.iter().zip(&rs) {
            let addr = c.shown_at(RESP_PORT);
            let (role, term, follows, commit) = match r {
                Some(r) => (
                    r.role.clone(),
                    r.term.to_string(),
                    r.leader.map_or("-".into(), |l| l.to_string()),
                    r.commit.to_string(),
                ),
                None => ("-".into(), "-".into(), "-".into(), "-".into()),
            };
            println!(
                "{:<5} {:<22} {addr:<18} {role:<10} {term:>6} {follows:>7} {commit:>8}",
                c.node,
                state(c)
            );
        }
        match leader {
            Some((n, a)) => {
                println!("leader  node {n}, followed by a majority; redis-cli -h {} -p {}", a.ip(), a.port())
            }
            None => println!("leader  none followed by a majority of the {nodes} replicas"),
        }
        println!(
            "answering  {up} of {nodes} replicas (a majority: {})",
            if up > nodes / 2 { "yes" } else { "no" }
        );
        match two {
            None => println!("checks  one leader per term among the answers: ok"),
            Some((t, l)) => println!("checks  one leader per term: VIOLATED, term {t} has leaders {l:?}"),
        }
    }
    i32::from(!(leader.is_some() && up == nodes && two.is_none()))
}

/// What a voting-service server shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VoteServer {
    /// It greets on the members' port (`HELLO agora-vote ...`).
    pub answers: bool,
    /// The term it says it leads, from its log: the latest term it began leading in its
    /// current run and has not stepped down from.
    pub leads: Option<u64>,
    /// Every term it said it began to lead, over all its runs.
    pub led: Vec<u64>,
}

/// The terms a server's `--events` log says it led: `(leads now, every term it began to lead)`.
/// A new run (its `listening` line) leads nothing until it says so again.
pub fn leading(log: &str) -> (Option<u64>, Vec<u64>) {
    let (mut now, mut led) = (None, Vec::new());
    for v in log.lines().filter_map(|l| l.strip_prefix("event ")?.parse::<serde_json::Value>().ok()) {
        if v.get("listening").is_some() {
            now = None;
        } else if let (Some(t), Some(_)) = (v["term"].as_u64(), v.get("leader")) {
            now = Some(t);
            led.push(t);
        } else if v["stepped_down"].as_u64().is_some_and(|t| now == Some(t)) {
            now = None;
        }
    }
    (now, led)
}

/// Every server's greeting and log, the greetings asked all at once.
fn vote_servers(docker: &Docker, cs: &[Container]) -> Vec<VoteServer> {
    let greets = ask_running(cs, VOTE_PORT, |at| health::hello(at).ok());
    cs.iter()
        .zip(greets.iter().map(Option::is_some))
        .map(|(c, answers)| {
            let (leads, led) = docker.node_stderr(c).map(|l| leading(&l)).unwrap_or_default();
            VoteServer { answers, leads: leads.filter(|_| c.state == "running"), led }
        })
        .collect()
}

/// The server that leads the highest term among those running that say they lead: its id,
/// its members' address and the term.
fn vote_leader(cs: &[Container], vs: &[VoteServer]) -> Option<(usize, SocketAddr, u64)> {
    cs.iter()
        .zip(vs)
        .filter_map(|(c, v)| Some((c.node, c.at(VOTE_PORT)?, v.leads?)))
        .max_by_key(|&(_, _, t)| t)
}

fn vote(docker: &Docker, name: &str, cs: &[Container], nodes: usize, json: bool) -> i32 {
    let vs = vote_servers(docker, cs);
    let leader = vote_leader(cs, &vs);
    let up = vs.iter().filter(|v| v.answers).count();
    // Election safety, as far as the logs show it: no term led by two servers.
    let mut by_term: BTreeMap<u64, std::collections::BTreeSet<usize>> = BTreeMap::new();
    for (c, v) in cs.iter().zip(&vs) {
        for &t in &v.led {
            by_term.entry(t).or_default().insert(c.node);
        }
    }
    let two = by_term.iter().find(|(_, l)| l.len() > 1);
    if json {
        let v = serde_json::json!({
            "cluster": name, "system": "vote", "nodes": nodes,
            "containers": cs, "servers": vs, "answering": up,
            "leader": leader.map(|(n, a, t)| serde_json::json!({ "node": n, "vote": a.to_string(), "term": t })),
            "one_leader_per_term": two.is_none(),
        });
        println!("{v}");
    } else {
        println!("cluster {name}: vote, {nodes} servers, {} container(s)", cs.len());
        println!("{:<5} {:<22} {:<20} {:<7} {:>9}", "node", "container", "members at", "greets", "leads");
        for (c, v) in cs.iter().zip(&vs) {
            let addr = c.shown_at(VOTE_PORT);
            let leads = v.leads.map_or("-".into(), |t| format!("term {t}"));
            let greets = if v.answers { "yes" } else { "no" };
            println!("{:<5} {:<22} {addr:<20} {greets:<7} {leads:>9}", c.node, state(c));
        }
        match leader {
            Some((n, a, t)) => {
                println!("leader  node {n} (term {t}); a member connects with: nc {} {}", a.ip(), a.port())
            }
            None => println!("leader  none says it leads"),
        }
        println!("answering  {up} of {nodes} servers");
        match two {
            None => println!("checks  one leader per term in the servers' logs: ok"),
            Some((t, l)) => println!("checks  one leader per term: VIOLATED, term {t} was led by {l:?}"),
        }
    }
    i32::from(!(leader.is_some() && up == nodes && two.is_none()))
}

fn election(
    docker: &Docker,
    cs: &[Container],
    cf: &crate::cluster_file::ClusterFile,
    json: bool,
) -> Result<i32, UserError> {
    let nodes = cf.nodes.len();
    let ended = cs.len() == nodes && cs.iter().all(|c| c.state == "exited");
    if !ended || json {
        if json {
            println!(
                "{}",
                serde_json::json!({ "system": "election", "nodes": nodes, "containers": cs, "ended": ended })
            );
        } else {
            println!("cluster {}: election, {nodes} nodes, {} container(s)", cf.cluster, cs.len());
            for c in cs {
                println!("{:<5} {:<22} {}", c.node, state(c), c.place());
            }
            println!("checks  judged once every node has ended (their reports are in their logs)");
        }
        if !ended {
            return Ok(1);
        }
    }
    // Every node printed its report (`agora node --json`) on stdout: judge them as `agora up`.
    let mut ends = Vec::new();
    for c in cs {
        let log = docker.node_stdout(c);
        ends.push(
            log.map(|stdout| crate::commands::up::ChildEnd::exited(c.exit_code, stdout))
                .map_err(|e| std::io::Error::other(e.msg)),
        );
    }
    let params = cf.params()?;
    let summary = agora_protocols::dispatch(&cf.protocol, &params, Judge { ends, seed: cf.seed })??;
    if !json {
        print!("{}", output::table(&summary));
    }
    Ok(exit_code(&summary))
}

/// The election's reports, judged by its checker.
struct Judge {
    ends: Vec<std::io::Result<crate::commands::up::ChildEnd>>,
    seed: u64,
}

impl agora_protocols::Driver for Judge {
    type Output = Result<agora_core::RunSummary, UserError>;

    fn run<S: agora_core::Setup>(self, setup: S) -> Self::Output {
        let g = crate::commands::up::gather::<S>(self.ends, 0.0);
        Ok(agora_net::report::summarize(&setup, self.seed, g, "agora cluster status"))
    }
}
