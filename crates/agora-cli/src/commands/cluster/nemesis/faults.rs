//! Faults applied to a cluster's containers, and their healing.
//!
//! - kill: `docker kill --signal KILL`; healed by `docker start` (same container, same volume).
//! - restart: `docker stop` (SIGTERM, then SIGKILL after 10 s); healed by `docker start`.
//! - pause: `docker pause` (the cgroup freezer); healed by `docker unpause`.
//! - disconnect: `docker network disconnect`; healed by `docker network connect` with the
//!   node's service name as its alias again (Docker drops it with the endpoint).
//! - partition and cut: packet filters inside each container's network namespace, entered from
//!   the host (`nsenter --target PID --net iptables ...`, the PID from `docker inspect`), in a
//!   chain of their own, [`CHAIN`], jumped to from INPUT and OUTPUT. A partition drops, on each
//!   side, every packet from the other side's addresses. A cut of replica X drops, in every
//!   other replica, the packets of the connections X dialled to its peer port (X's inbound
//!   packets to port 7000 and the replies from it): a node sends on the connections it dials
//!   and reads on those it accepts, so what X sends is lost while what the others send X
//!   arrives. The clients (on the host) reach every replica throughout.
//!
//! - wipe and disk: a replica's data volume emptied, or its disk full ([`data`]).
//! - clock: a replica's clock set ahead or behind and made to run fast or slow ([`clock`]).
//!
//! Healing undoes everything, whatever is applied: it unpauses, reconnects and starts what
//! needs it, puts back data faults' volumes and removes the chain wherever it is. [`Faults`] heals when dropped, so an error
//! or a panic leaves no fault behind.

mod clock;
mod data;

pub use data::Seen;

use super::super::docker::{host, Docker};
use super::super::files::PEER_PORT;
use crate::cli::NemesisFault;
use crate::error::UserError;
use std::net::IpAddr;

/// The packet-filter chain the nemesis adds to a container's network namespace.
pub const CHAIN: &str = "agora-nemesis";

/// A replica's container.
#[derive(Clone, Debug)]
pub struct Node {
    pub id: usize,
    /// Docker's container id.
    pub container: String,
    /// Its address on the cluster's network when the run began.
    pub ip: IpAddr,
}

/// The faults of one cluster; heals when dropped.
pub struct Faults<'a> {
    docker: &'a Docker,
    nodes: Vec<Node>,
    /// The cluster's network.
    network: String,
    /// Each replica's data volume on this machine, once asked (`None`: not found here).
    volumes: std::cell::RefCell<std::collections::BTreeMap<usize, Option<std::path::PathBuf>>>,
    /// Whether dropping it heals (not once the nodes are to end on their own).
    armed: std::cell::Cell<bool>,
    /// The replicas whose clock the nemesis has bent and not yet put back.
    bent: std::cell::RefCell<std::collections::BTreeSet<usize>>,
}

/// A container as `docker inspect` sees it now.
struct Now {
    running: bool,
    paused: bool,
    pid: u64,
    /// Its address on the cluster's network, while it has one.
    ip: Option<IpAddr>,
    /// Whether it is attached to the cluster's network (a stopped container is, without an
    /// address).
    connected: bool,
}

impl<'a> Faults<'a> {
    /// The faults of `nodes`' containers, on the network the first is connected to.
    pub fn new(docker: &'a Docker, nodes: Vec<Node>) -> Result<Faults<'a>, UserError> {
        let first = nodes.first().ok_or_else(|| UserError("the cluster has no containers".into()))?;
        let listed = docker.docker(&[
            "inspect",
            "--format",
            "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}\n{{end}}",
            &first.container,
        ])?;
        let network = String::from_utf8_lossy(&listed).lines().next().unwrap_or_default().trim().to_string();
        if network.is_empty() {
            return Err(UserError(format!("node {}'s container is on no network", first.id)));
        }
        Ok(Faults {
            docker,
            nodes,
            network,
            volumes: Default::default(),
            armed: std::cell::Cell::new(true),
            bent: Default::default(),
        })
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    fn node(&self, id: usize) -> &Node {
        &self.nodes[id]
    }

    fn now(&self, n: &Node) -> Result<Now, UserError> {
        let format = format!(
            "{{{{.State.Running}}}} {{{{.State.Paused}}}} {{{{.State.Pid}}}} \
             {{{{with index .NetworkSettings.Networks \"{}\"}}}}connected {{{{.IPAddress}}}}{{{{end}}}}",
            self.network
        );
        let out = self.docker.docker(&["inspect", "--format", &format, &n.container])?;
        let text = String::from_utf8_lossy(&out);
        let mut f = text.split_whitespace();
        Ok(Now {
            running: f.next() == Some("true"),
            paused: f.next() == Some("true"),
            pid: f.next().and_then(|p| p.parse().ok()).unwrap_or(0),
            connected: f.next() == Some("connected"),
            ip: f.next().and_then(|ip| ip.parse().ok()),
        })
    }

    /// `iptables ARGS` in the network namespace of the process `pid`.
    pub fn iptables(pid: u64, args: &[&str]) -> Result<Vec<u8>, UserError> {
        let pid = pid.to_string();
        let mut all = vec!["--target", &pid, "--net", "iptables", "--wait"];
        all.extend_from_slice(args);
        host("nsenter", &all)
    }

    /// Checks that packet filters can be set in the containers' network namespaces (root,
    /// `nsenter` and `iptables` on this machine): before anything is broken.
    pub fn check_filters(&self) -> Result<(), UserError> {
        let n = self.node(0);
        let pid = self.now(n)?.pid;
        Self::iptables(pid, &["--list", "INPUT", "--numeric"]).map(|_| ()).map_err(|e| {
            UserError(format!(
                "partitions and cuts need packet filters in the containers' network namespaces \
                 (root, nsenter and iptables on this machine): {}",
                e.msg
            ))
        })
    }

    /// Adds `rules` (each the arguments of one rule, after `--append CHAIN`) to node `id`.
    fn filter(&self, id: usize, rules: &[Vec<String>]) -> Result<(), UserError> {
        let pid = self.now(self.node(id))?.pid;
        if Self::iptables(pid, &["--list", CHAIN, "--numeric"]).is_err() {
            Self::iptables(pid, &["--new-chain", CHAIN])?;
            Self::iptables(pid, &["--insert", "INPUT", "--jump", CHAIN])?;
            Self::iptables(pid, &["--insert", "OUTPUT", "--jump", CHAIN])?;
        }
        for r in rules {
            let mut args = vec!["--append", CHAIN];
            args.extend(r.iter().map(String::as_str));
            Self::iptables(pid, &args)?;
        }
        Ok(())
    }

    /// Applies `kind` to `nodes` (the replicas hit: one, or a partition's minority side), a
    /// clock fault with its `bend`; what it was seen to do, for a data or clock fault.
    pub fn apply(
        &self,
        kind: NemesisFault,
        nodes: &[usize],
        bend: Option<(i64, i64)>,
    ) -> Result<Seen, UserError> {
        let one = || &self.node(nodes[0]).container;
        let done = match kind {
            NemesisFault::Clock => {
                let bend = bend.ok_or_else(|| UserError("a clock fault without its bend".into()))?;
                return self.bend_clock(self.node(nodes[0]), bend);
            }
            NemesisFault::Wipe => return self.wipe(self.node(nodes[0])),
            NemesisFault::Disk => return self.disk_full(self.node(nodes[0])),
            NemesisFault::Kill => self.docker.docker(&["kill", "--signal", "KILL", one()]).map(|_| ()),
            NemesisFault::Restart => self.docker.docker(&["stop", "--time", "10", one()]).map(|_| ()),
            NemesisFault::Pause => self.docker.docker(&["pause", one()]).map(|_| ()),
            NemesisFault::Disconnect => {
                self.docker.docker(&["network", "disconnect", &self.network, one()]).map(|_| ())
            }
            NemesisFault::Partition => {
                let (inside, outside): (Vec<&Node>, Vec<&Node>) =
                    self.nodes.iter().partition(|n| nodes.contains(&n.id));
                let drop_from = |others: &[&Node]| -> Vec<Vec<String>> {
                    others
                        .iter()
                        .map(|o| vec!["--source".into(), o.ip.to_string(), "--jump".into(), "DROP".into()])
                        .collect()
                };
                for n in &inside {
                    self.filter(n.id, &drop_from(&outside))?;
                }
                for n in &outside {
                    self.filter(n.id, &drop_from(&inside))?;
                }
                Ok(())
            }
            NemesisFault::Cut => {
                let x = self.node(nodes[0]).ip.to_string();
                let port = PEER_PORT.to_string();
                let rules = [
                    ["--source", &x, "--protocol", "tcp", "--dport", &port, "--jump", "DROP"],
                    ["--destination", &x, "--protocol", "tcp", "--sport", &port, "--jump", "DROP"],
                ]
                .map(|r| r.map(String::from).to_vec());
                for n in self.nodes.iter().filter(|n| !nodes.contains(&n.id)) {
                    self.filter(n.id, &rules)?;
                }
                Ok(())
            }
        };
        done.map(|()| Seen::default())
    }

    /// What a fault did before it is healed: for a full disk, whether its replica kept running
    /// or stopped with a line saying why.
    pub fn seen_before_healing(&self, kind: NemesisFault, nodes: &[usize]) -> Result<Seen, UserError> {
        match kind {
            NemesisFault::Disk => self.after_disk_full(self.node(nodes[0])),
            _ => Ok(Seen::default()),
        }
    }

    /// Undoes every fault, whatever is applied; what it did, one phrase each (`started n1`).
    /// Every step is tried; the first error is returned after.
    pub fn heal(&self) -> Result<Vec<String>, UserError> {
        let mut did = Vec::new();
        let mut first_error = None;
        for n in &self.nodes {
            if let Err(e) = self.heal_one(n, &mut did) {
                first_error.get_or_insert(UserError(format!("healing n{}: {}", n.id, e.msg)));
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(did),
        }
    }

    fn heal_one(&self, n: &Node, did: &mut Vec<String>) -> Result<(), UserError> {
        let c = &n.container;
        let mut now = self.now(n)?;
        if now.paused {
            self.docker.docker(&["unpause", c])?;
            did.push(format!("unpaused n{}", n.id));
        }
        if !now.connected {
            let alias = format!("n{}", n.id);
            self.docker.docker(&["network", "connect", "--alias", &alias, &self.network, c])?;
            did.push(format!("connected n{}", n.id));
        }
        self.heal_data(n, now.running, did)?;
        now = self.now(n)?;
        // Before a stopped node starts: it reads its file then.
        self.heal_clock(n, now.running, did)?;
        if !now.running {
            self.docker.docker(&["start", c])?;
            did.push(format!("started n{}", n.id));
            now = self.now(n)?;
        }
        if now.running && Self::iptables(now.pid, &["--list", CHAIN, "--numeric"]).is_ok() {
            for parent in ["INPUT", "OUTPUT"] {
                // Absent if an earlier heal stopped half-way: not an error.
                let _ = Self::iptables(now.pid, &["--delete", parent, "--jump", CHAIN]);
            }
            Self::iptables(now.pid, &["--flush", CHAIN])?;
            Self::iptables(now.pid, &["--delete-chain", CHAIN])?;
            did.push(format!("filters of n{} removed", n.id));
        }
        Ok(())
    }

    /// From now on the nodes end on their own (an election): dropping the faults heals nothing,
    /// so a container that has exited is not started again.
    pub fn disarm(&self) {
        self.armed.set(false);
    }

    /// The replicas whose address is not the one they had when the run began (a container
    /// connected again may be given another): `(node, now)`.
    pub fn moved(&self) -> Result<Vec<(usize, Option<IpAddr>)>, UserError> {
        let mut out = Vec::new();
        for n in &self.nodes {
            let ip = self.now(n)?.ip;
            if ip != Some(n.ip) {
                out.push((n.id, ip));
            }
        }
        Ok(out)
    }
}

impl Drop for Faults<'_> {
    fn drop(&mut self) {
        if !self.armed.get() {
            return;
        }
        match self.heal() {
            Ok(did) if !did.is_empty() => {
                eprintln!("agora: nemesis healed on the way out: {}", did.join(", "))
            }
            Ok(_) => {}
            Err(e) => eprintln!("agora: the nemesis could not heal everything: {}", e.msg),
        }
    }
}
