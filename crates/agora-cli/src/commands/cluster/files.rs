//! The files `agora cluster up` writes: the cluster file every node reads, and the Compose
//! file that starts one container per node. Both name nodes by service (`n0`, `n1`, ...):
//! Docker's DNS resolves a service's name on the cluster's network, in Compose as on a
//! Swarm, so the same two files run on one machine and on many.
//!
//! The Compose file keeps to what `docker-compose` 1.29 and `docker stack deploy` both read
//! (file format 3.8): the cluster file, which holds the cluster's secret, is a `secret` (a
//! bind mount under Compose, a Swarm secret on a Swarm; Compose 1.x ignores `configs`), each
//! node has a named volume, the network's driver is left to the tool (a bridge, an overlay
//! on a Swarm), and no host port is published. On a Swarm a name resolves to its task's
//! own address (`endpoint_mode: dnsrr`; Compose ignores `deploy`).
//!
//! The market's peers also read a market file, [`MARKET_FILE`] beside the cluster file (a
//! second secret): who buys and who sells.
//!
//! **A `healthcheck`** per node, `agora health` (the image has no shell). A Swarm leaves a
//! task whose health check has not yet passed out of its DNS, so a node must pass it before
//! its peers' names resolve: it listens at once, and looks each peer's name up at every dial
//! until it resolves (`ClusterFile::peer_addrs_for`). `agora cluster status` asks every
//! replica the same question from outside.

use crate::cli::System;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Where a node's data volume is mounted.
pub const DATA: &str = "/data";
/// The file a market, election or multicast node writes in its container's own file system
/// (not its volume) once it has made its database (`agora node --new-once`).
pub const FIRST_START_MARK: &str = "/agora-first-start-done";
/// Where a node's clock is set from (`--clock-file`), in its container's own file system: the
/// nemesis's clock fault writes it (absent: real time).
pub const CLOCK_FILE: &str = "/agora-clock.toml";
/// Where the cluster file is mounted.
pub const CONFIG: &str = "/run/secrets/cluster";
/// The port the nodes talk to each other on.
pub const PEER_PORT: u16 = 7000;
/// The RESP port of a key-value replica.
pub const RESP_PORT: u16 = 6379;
/// The metrics port of every node (`agora health --metrics` reads it; `agora cluster ui`
/// asks its `/counts`).
pub const METRICS_PORT: u16 = 9100;
/// The members' port of a voting-service server (the line protocol).
pub const VOTE_PORT: u16 = 7400;
/// The voting service's session timeout unless `up` is given one.
pub const SESSION_TIMEOUT_MS: u64 = 30_000;
/// The market file's name, beside the cluster file on this machine and in the containers.
pub const MARKET_FILE: &str = "market.toml";
/// Buys each buyer of a market makes: enough to trade for hours.
const MARKET_BUYS: u64 = 1_000_000;
/// The election's voters unless `up` is given a number.
pub const VOTERS: u64 = 20_000;
/// The multicast's order unless `up` is given one.
pub const ORDER: &str = "total-lamport";
/// Messages each multicast peer sends unless `up` is given a number.
pub const MSGS: u32 = 20;
/// The region model the multicast's peers are placed in (round robin): the simulator's.
pub const REGIONS: &str = "aws";
/// How long a node waits for its own name to resolve when it starts (its peers' names are
/// looked up at each dial, so it listens before they exist).
const WAIT_RESOLVE_MS: u64 = 120_000;

/// A cluster to write the files of.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The cluster's name: its Compose project, its handshake's cluster name, its label.
    pub name: String,
    /// What runs.
    pub system: System,
    /// Every node: the replicas first, then (for the election) its other roles.
    pub nodes: usize,
    /// The election's nodes that are not replicas (`params.clients`); 0 for Raft.
    pub clients: usize,
    /// The image every container runs.
    pub image: String,
    /// The voting service's session timeout (ms): a member silent this long fails.
    pub session_timeout_ms: u64,
    /// The election's voters.
    pub voters: u64,
    /// The multicast's order: its protocol's name.
    pub order: String,
    /// Messages each multicast peer sends.
    pub msgs: u32,
}

/// A node's service name, also its host name.
pub fn service(id: usize) -> String {
    format!("n{id}")
}

impl Plan {
    /// The nodes of `system` around `replicas` replicas.
    pub fn new(name: &str, system: System, replicas: usize, image: &str) -> Plan {
        let clients = match system {
            System::Raft | System::Vote | System::Market | System::Multicast => 0,
            System::Election => {
                let p = agora_protocols::Params::new(replicas, 1);
                let total = agora_protocols::registry::cluster_size("election", &p)
                    .expect("the election takes any legislature of 3 to 9 replicas");
                total - replicas
            }
        };
        Plan {
            name: name.into(),
            system,
            nodes: replicas + clients,
            clients,
            image: image.into(),
            session_timeout_ms: SESSION_TIMEOUT_MS,
            voters: VOTERS,
            order: ORDER.into(),
            msgs: MSGS,
        }
    }

    /// The cluster file (`secret`: 64 hex digits).
    pub fn cluster_file(&self, secret: &str) -> String {
        let mut s = format!(
            "# Written by `agora cluster up` (docs/cluster.md): read by every node of the cluster at {CONFIG}.\n\
             cluster = \"{}\"\nsecret = \"{secret}\"\ndata_dir = \"{DATA}\"\n",
            self.name
        );
        match self.system {
            System::Raft => s.push_str("protocol = \"kv\"\n\n[params]\ntimeout_ms = 150\n"),
            System::Vote => s.push_str("protocol = \"vote\"\n\n[params]\ntimeout_ms = 150\n"),
            // It trades until stopped: an hour idle or ten days, whichever comes first.
            System::Market => {
                let _ = write!(
                    s,
                    "protocol = \"market\"\nidle_ms = 3600000\nmax_time_ms = 864000000\n\n[params]\n\
                     market = \"{MARKET_FILE}\"\nbuys = {MARKET_BUYS}\ntimeout_ms = 200\nsick = 0.0\ninterval_ms = 20\n"
                );
            }
            System::Election => {
                let _ = write!(
                    s,
                    "protocol = \"election\"\nidle_ms = 3000\nmax_time_ms = 600000\n\n[params]\n\
                     clients = {}\nvoters = {}\ntimeout_ms = 100\n",
                    self.clients, self.voters
                );
            }
            System::Multicast => {
                // Messages 100 ms apart on average; a retransmission after a second, well
                // above the longest round trip of the model (and ten of them before a silent
                // peer is given up, more than the containers take to start).
                let _ = write!(
                    s,
                    "protocol = \"{}\"\nidle_ms = 5000\nmax_time_ms = 600000\n\n[params]\nmsgs = {}\n\
                     interval_ms = 100\ntimeout_ms = 1000\n\n{}",
                    self.order,
                    self.msgs,
                    regions_table(&self.regions())
                );
            }
        }
        let regions = self.regions();
        for id in 0..self.nodes {
            let _ = write!(s, "\n[[node]]\nid = {id}\naddr = \"{}:{PEER_PORT}\"\n", service(id));
            match self.system {
                System::Raft => {
                    let _ = writeln!(s, "resp = \"{}:{RESP_PORT}\"", service(id));
                }
                System::Vote => {
                    let _ = writeln!(s, "vote = \"{}:{VOTE_PORT}\"", service(id));
                }
                System::Multicast => {
                    let _ = writeln!(s, "region = {:?}", regions.names[id % regions.names.len()]);
                }
                System::Election | System::Market => {}
            }
        }
        s
    }

    /// The region model of a multicast: the simulator's preset, its base latencies (the
    /// jitter is left out: every link's latency is constant).
    pub fn regions(&self) -> agora_sim::faults::Regions {
        agora_sim::faults::Regions::preset(REGIONS).expect("the preset exists")
    }

    /// A node's command line, after the image's `agora` entry point; `first` for the cluster's
    /// first start, when each node creates its database (`--new`).
    fn command(&self, id: usize, first: bool) -> Vec<String> {
        let mut c: Vec<String> = match self.system {
            // `--events`: each replica says on stderr when it leads, and when its clock is set.
            System::Raft => vec!["kv".into(), "serve".into(), "--events".into()],
            // `--json`: its report at its end, which `status` judges; `--events`: every
            // observation as it comes, which the nemesis reads back, a killed run's too.
            System::Election | System::Multicast => vec!["node".into(), "--json".into(), "--events".into()],
            // `--events`: every observation, with its time, in the container's log, where
            // `status` and `nemesis` read the history back, a killed run's too.
            System::Market => vec!["node".into(), "--events".into()],
            // `--events`: each server says on stderr when it leads; `status` reads its log.
            System::Vote => vec!["vote".into(), "serve".into(), "--events".into()],
        };
        let id = id.to_string();
        let wait = WAIT_RESOLVE_MS.to_string();
        c.extend(
            ["--config", CONFIG, "--id", &id, "--wait-resolve-ms", &wait, "--clock-file", CLOCK_FILE]
                .map(String::from),
        );
        if first {
            match self.system {
                // Each is made again without `--new` once every node has its database (`up`).
                System::Raft | System::Vote => c.push("--new".into()),
                // Their history is in their containers' logs, which a container made again
                // would lose: each keeps its container, and makes its database only on its
                // container's first start.
                System::Election | System::Market | System::Multicast => {
                    c.extend(["--new-once".into(), FIRST_START_MARK.into()])
                }
            }
        }
        // Its counters, served: Prometheus's `/metrics`, and `/counts`, which a live view
        // asks twice a second while it runs and nobody otherwise (`agora cluster ui`).
        c.extend(["--metrics-addr".into(), format!("0.0.0.0:{METRICS_PORT}")]);
        if self.system == System::Vote {
            c.extend(["--session-timeout-ms".into(), self.session_timeout_ms.to_string()]);
        }
        c
    }

    /// A node's `healthcheck`: `agora health` asks what it serves — a replica's RESP `INFO`,
    /// a voting server's greeting, any other node's metrics endpoint — at its own address,
    /// as its container sees it. A Swarm puts a task in its DNS once this has passed, which
    /// a node can pass with no peer up: it listens before their names resolve.
    fn healthcheck(&self, id: usize) -> String {
        let (flag, addr) = match self.system {
            System::Raft => ("--resp", format!("{}:{RESP_PORT}", service(id))),
            System::Vote => ("--vote", format!("{}:{VOTE_PORT}", service(id))),
            System::Election | System::Market | System::Multicast => {
                ("--metrics", format!("127.0.0.1:{METRICS_PORT}"))
            }
        };
        format!(
            "    healthcheck:\n      test: [\"CMD\", \"/agora\", \"health\", \"{flag}\", \"{addr}\"]\n\
             \x20     interval: 2s\n      timeout: 5s\n      retries: 5\n      start_period: 60s\n"
        )
    }

    /// The Compose file: with `first`, for the cluster's first start (each node creates its
    /// database); without, for every start after it, when a node whose volume is empty
    /// refuses to start rather than join as a new, empty replica (docs/cluster.md).
    pub fn compose_file(&self, first: bool) -> String {
        self.compose(first, &BTreeMap::new())
    }

    /// The Compose file for every start after the first on a Swarm: as
    /// [`Plan::compose_file`] without `first`, with each node in `pinned` kept on the Swarm
    /// node whose id is given there, where its volume is (a named volume lives on the machine that made it).
    pub fn swarm_steady_file(&self, pinned: &BTreeMap<usize, String>) -> String {
        self.compose(false, pinned)
    }

    fn compose(&self, first: bool, pinned: &BTreeMap<usize, String>) -> String {
        let list = |v: Vec<String>| {
            format!("[{}]", v.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>().join(", "))
        };
        let mut s = format!(
            "# Written by `agora cluster up` (docs/cluster.md). One machine:\n\
             #   docker-compose -p {name} -f docker-compose.yml up -d\n\
             # A Swarm (the image on every machine, or in a registry):\n\
             #   docker stack deploy -c docker-compose.yml {name}\n\
             version: \"3.8\"\nservices:\n",
            name = self.name
        );
        for id in 0..self.nodes {
            let n = service(id);
            let _ = write!(
                s,
                "  {n}:\n    image: {image}\n    hostname: {n}\n    command: {command}\n\
                 \x20   labels:\n      agora.cluster: {name:?}\n      agora.node: \"{id}\"\n\
                 \x20   secrets:\n      - cluster\n{market}\
                 \x20   volumes:\n      - {n}-data:{DATA}\n    networks:\n      - agora\n\
                 \x20   deploy:\n      endpoint_mode: dnsrr\n{restart}{placement}{health}{logging}",
                image = self.image,
                // A node that ends by itself is done: a Swarm starts it again only if it failed.
                restart = if matches!(self.system, System::Election | System::Multicast) {
                    "      restart_policy:\n        condition: on-failure\n"
                } else {
                    ""
                },
                placement = pinned.get(&id).map_or(String::new(), |host| {
                    format!("      placement:\n        constraints: [\"node.id == {host}\"]\n")
                }),
                health = self.healthcheck(id),
                command = list(self.command(id, first)),
                name = self.name,
                logging = if matches!(self.system, System::Election | System::Multicast) {
                    // Its history is its log, judged whole once it ends: room for all of it
                    // (a Docker daemon may rotate logs at a few MB).
                    "    logging:\n      driver: json-file\n      options:\n        max-size: \"100m\"\n        max-file: \"10\"\n"
                } else {
                    ""
                },
                market = if self.system == System::Market {
                    format!("      - source: market\n        target: {MARKET_FILE}\n")
                } else {
                    String::new()
                },
            );
        }
        s.push_str("volumes:\n");
        for id in 0..self.nodes {
            let _ = writeln!(s, "  {}-data: {{}}", service(id));
        }
        // Attachable: on a Swarm, `status` reaches the nodes through a relay container it
        // attaches to this network (`swarm.rs`); Compose's bridge takes the flag as it is.
        s.push_str(
            "networks:\n  agora:\n    attachable: true\nsecrets:\n  cluster:\n    file: ./cluster.toml\n",
        );
        if self.system == System::Market {
            let _ = writeln!(s, "  market:\n    file: ./{MARKET_FILE}");
        }
        s
    }

    /// The market file: the two highest peers sell fish and salt, the others buy. The first
    /// trader is the highest peer and the next the one below it (the bully election), so
    /// whichever of them trades, the other sells and every buyer keeps buying.
    pub fn market_file(&self) -> String {
        let mut s = String::from(
            "# Written by `agora cluster up --system market` (docs/cluster.md): who buys and who\n\
             # sells. Read by every peer at /run/secrets/market.toml.\n[goods]\nfish = 100\nsalt = 100\n",
        );
        for id in 0..self.nodes {
            let role = match self.nodes - id {
                1 => "role = \"seller\"\ngood = \"fish\"",
                2 => "role = \"seller\"\ngood = \"salt\"",
                _ => "role = \"buyer\"",
            };
            let _ = write!(s, "\n[[peer]]    # peer {id}\n{role}\n");
        }
        s
    }
}

/// A `[regions]` table: the regions' names and their one-way latencies.
fn regions_table(r: &agora_sim::faults::Regions) -> String {
    let names: Vec<String> = r.names.iter().map(|n| format!("{n:?}")).collect();
    let rows: Vec<String> = r
        .latency_ms
        .iter()
        .map(|row| format!("  [{}],", row.iter().map(|ms| format!("{ms:?}")).collect::<Vec<_>>().join(", ")))
        .collect();
    format!("[regions]\nnames = [{}]\nlatency_ms = [\n{}\n]\n", names.join(", "), rows.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster_file::ClusterFile;

    fn check(system: System, replicas: usize) -> (Plan, ClusterFile) {
        let plan = Plan::new("t-1", system, replicas, "agora-node:0123");
        let f = ClusterFile::parse(&plan.cluster_file(&"ab".repeat(32))).unwrap();
        assert_eq!(f.nodes.len(), plan.nodes);
        if system == System::Election {
            let p = f.params().unwrap();
            assert_eq!(agora_protocols::registry::cluster_size("election", &p).unwrap(), plan.nodes);
        }
        (plan, f)
    }

    #[test]
    fn the_cluster_files_are_clusters_of_their_nodes() {
        let (plan, f) = check(System::Raft, 5);
        assert_eq!((plan.nodes, f.nodes.len()), (5, 5));
        assert_eq!(f.nodes[4].resp.as_deref(), Some("n4:6379"));
        let (plan, f) = check(System::Election, 3);
        assert_eq!(plan.nodes, f.nodes.len());
        assert!(plan.clients > 0 && f.nodes.iter().all(|n| n.resp.is_none()));
        let yml = plan.compose_file(true);
        assert_eq!(yml.matches("[\"node\", \"--json\", \"--events\", ").count(), plan.nodes, "{yml}");
        assert_eq!(yml.matches("        max-size: \"100m\"\n").count(), plan.nodes, "{yml}");
        // Its containers are not made again: each makes its database on its first start only.
        let once = format!("\"--new-once\", \"{FIRST_START_MARK}\"");
        assert_eq!(yml.matches(&once).count(), plan.nodes, "{yml}");
        assert!(!yml.contains("\"--new\""), "{yml}");
        assert!(!plan.compose_file(false).contains("--new"));
        let (plan, f) = check(System::Vote, 3);
        assert_eq!((plan.nodes, plan.clients, f.protocol.as_str()), (3, 0, "vote"));
        assert!(f.nodes.iter().all(|n| n.resp.is_none()));
        assert_eq!(f.nodes[2].vote.as_deref(), Some("n2:7400"));
        assert_eq!(f.nodes[2].addr, "n2:7000");
    }

    #[test]
    fn on_a_swarm_the_steady_file_keeps_each_node_on_its_machine_and_a_finished_node_stays_done() {
        let plan = Plan::new("t-1", System::Raft, 3, "agora-node:0123");
        let pinned: BTreeMap<usize, String> = [(0, "a".into()), (2, "c".into())].into();
        let yml = plan.swarm_steady_file(&pinned);
        assert!(yml.contains("  n0:\n") && yml.contains("constraints: [\"node.id == a\"]"), "{yml}");
        assert!(yml.contains("constraints: [\"node.id == c\"]"), "{yml}");
        assert_eq!(yml.matches("node.id ==").count(), 2, "{yml}");
        assert!(!yml.contains("--new"), "{yml}");
        assert!(!plan.compose_file(true).contains("placement"));
        // The relay joins the network from outside the stack.
        assert!(yml.contains("networks:\n  agora:\n    attachable: true\n"), "{yml}");
        // An election's and a multicast's nodes end by themselves: a Swarm leaves them ended.
        for (system, policy) in [(System::Election, true), (System::Multicast, true), (System::Market, false)]
        {
            let yml = Plan::new("t-1", system, 3, "agora-node:0123").compose_file(true);
            assert_eq!(yml.contains("restart_policy:\n        condition: on-failure\n"), policy, "{yml}");
        }
    }

    #[test]
    fn every_node_serves_its_counters_and_prints_none() {
        for system in [System::Raft, System::Vote, System::Market, System::Election, System::Multicast] {
            let yml = Plan::new("t-1", system, 3, "agora-node:0123").compose_file(true);
            let commands = yml.lines().filter(|l| l.trim_start().starts_with("command:")).count();
            assert!(commands >= 3, "{system:?}: {yml}");
            assert_eq!(
                yml.matches("\"--metrics-addr\", \"0.0.0.0:9100\"").count(),
                commands,
                "{system:?}: {yml}"
            );
            assert!(!yml.contains("--sample-ms"), "{system:?}: {yml}");
        }
    }

    #[test]
    fn a_vote_server_waits_for_its_peers_and_says_when_it_leads() {
        let mut plan = Plan::new("t-1", System::Vote, 3, "agora-node:0123");
        plan.session_timeout_ms = 1500;
        let yml = plan.compose_file(true);
        for id in 0..3 {
            let cmd = format!(
                "[\"vote\", \"serve\", \"--events\", \"--config\", \"/run/secrets/cluster\", \"--id\", \"{id}\", \
                 \"--wait-resolve-ms\", \"120000\", \"--clock-file\", \"/agora-clock.toml\", \"--new\", \
                 \"--metrics-addr\", \"0.0.0.0:9100\", \"--session-timeout-ms\", \"1500\"]"
            );
            assert!(yml.contains(&format!("    command: {cmd}\n")), "{yml}");
            assert!(yml.contains(&format!("      - n{id}-data:/data\n")));
        }
        assert!(!plan.compose_file(false).contains("--new"));
        assert!(!yml.contains("ports:"), "the members' port is reached at the container's address");
        // The file the servers read: what `agora vote serve` accepts (its only parameter).
        let f = ClusterFile::parse(&plan.cluster_file(&"cd".repeat(32))).unwrap();
        assert_eq!(f.params.keys().collect::<Vec<_>>(), ["timeout_ms"]);
        assert_eq!(f.data_dir.as_deref(), Some(std::path::Path::new("/data")));
    }

    #[test]
    fn a_market_reads_who_buys_and_sells_from_the_market_file_beside_its_cluster_file() {
        use agora_protocols::market::{roles::Role, MarketSetup};
        use agora_protocols::registry::FromParams;
        let dir = tempfile::tempdir().unwrap();
        let plan = Plan::new("t-1", System::Market, 5, "agora-node:0123");
        std::fs::write(dir.path().join("cluster.toml"), plan.cluster_file(&"ab".repeat(32))).unwrap();
        std::fs::write(dir.path().join(MARKET_FILE), plan.market_file()).unwrap();
        let f = ClusterFile::load(&dir.path().join("cluster.toml")).unwrap();
        let p = f.params().unwrap().resolve("market", MarketSetup::SPECS).unwrap();
        let setup = MarketSetup::from_params(&p).unwrap();
        let buys: Vec<bool> = setup.s.roles.iter().map(|r| matches!(r, Role::Buyer { .. })).collect();
        assert_eq!(buys, [true, true, true, false, false], "the two highest peers sell");
        assert_eq!(setup.s.sick, 0.0, "a trader leaves only when the nemesis says");
        let yml = plan.compose_file(true);
        assert!(
            yml.contains("      - cluster\n      - source: market\n        target: market.toml\n"),
            "{yml}"
        );
        assert!(yml.ends_with("  market:\n    file: ./market.toml\n"), "{yml}");
        assert_eq!(yml.matches("[\"node\", \"--events\", ").count(), 5, "every peer logs its history");
        assert!(!Plan::new("t-1", System::Raft, 3, "i").compose_file(true).contains("market"));
    }

    #[test]
    fn a_multicast_places_its_peers_in_the_models_regions_with_their_latency() {
        let mut plan = Plan::new("t-1", System::Multicast, 7, "agora-node:0123");
        plan.order = "causal".into();
        plan.msgs = 5;
        let f = ClusterFile::parse(&plan.cluster_file(&"ab".repeat(32))).unwrap();
        let model = plan.regions();
        assert_eq!(f.protocol, "causal");
        assert_eq!(f.params().unwrap().nodes, 7);
        // Round robin: node 6 is back in the first region, with node 0.
        assert_eq!(f.node_regions(), [0, 1, 2, 3, 4, 5, 0]);
        let delay = f.link_delay();
        let ms = |a: usize, b: usize| delay[a][b].as_secs_f64() * 1e3;
        assert!((ms(0, 4) - model.latency_ms[0][4]).abs() < 1e-6, "{} ms", ms(0, 4));
        assert!((ms(4, 0) - model.latency_ms[4][0]).abs() < 1e-6);
        assert!((ms(0, 6) - model.latency_ms[0][0]).abs() < 1e-6, "one region: its own latency");
        let yml = plan.compose_file(true);
        assert_eq!(yml.matches("[\"node\", \"--json\", \"--events\", ").count(), 7, "{yml}");
        assert_eq!(yml.matches("        max-size: \"100m\"\n").count(), 7, "a whole log to judge");
    }

    #[test]
    fn every_node_is_a_service_with_its_volume() {
        let plan = Plan::new("t-1", System::Raft, 3, "agora-node:0123");
        let yml = plan.compose_file(true);
        assert_eq!(yml.matches("\"--new\"").count(), 3, "every node creates its database at first");
        assert!(!plan.compose_file(false).contains("--new"), "and never after");
        for id in 0..3 {
            assert!(yml.contains(&format!("  n{id}:\n    image: agora-node:0123\n")), "{yml}");
            assert!(yml.contains(&format!("      - n{id}-data:/data\n")));
            assert!(yml.contains(&format!("\"--id\", \"{id}\"")));
        }
        assert!(!yml.contains("ports:"), "no host port is published");
        assert_eq!(yml.matches("    healthcheck:\n").count(), 3, "{yml}");
        assert!(yml.contains("test: [\"CMD\", \"/agora\", \"health\", \"--resp\", \"n2:6379\"]"), "{yml}");
        let vote = Plan::new("t-1", System::Vote, 3, "i").compose_file(true);
        assert!(vote.contains("\"health\", \"--vote\", \"n0:7400\"]"), "{vote}");
        let market = Plan::new("t-1", System::Market, 3, "i").compose_file(true);
        assert!(market.contains("\"health\", \"--metrics\", \"127.0.0.1:9100\"]"), "{market}");
        assert!(!yml.contains("\t"));
    }
}
