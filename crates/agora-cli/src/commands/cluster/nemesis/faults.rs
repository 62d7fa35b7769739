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
//! needs it (not, where nodes end on their own, one that has: see `Faults::ends`), puts back
//! data faults' volumes and removes the chain wherever it is. [`Faults`] heals when dropped,
//! so an error or a panic leaves no fault behind.

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
    /// The replicas the nemesis stopped (kill, restart) and has not yet started again.
    stopped: std::cell::RefCell<std::collections::BTreeSet<usize>>,
    /// Whether the nodes end on their own (an election's, once the count is over): then a
    /// node that exited cleanly with no fault of the nemesis on it is done, not to be started
    /// again or faulted. Other systems' nodes run until stopped, and any that stopped is
    /// started by the heal.
    ends: bool,
}

/// A container as `docker inspect` sees it now.
struct Now {
    running: bool,
    paused: bool,
    pid: u64,
    /// The exit code of its last run (0 while it runs or before it ever ended).
    exit_code: i64,
    /// Its address on the cluster's network, while it has one.
    ip: Option<IpAddr>,
    /// Whether it is attached to the cluster's network (a stopped container is, without an
    /// address).
    connected: bool,
}

impl Now {
    /// One line of [`Faults::inspect`]'s format.
    fn parse(line: &str) -> Now {
        let mut f = line.split_whitespace();
        Now {
            running: f.next() == Some("true"),
            paused: f.next() == Some("true"),
            pid: f.next().and_then(|p| p.parse().ok()).unwrap_or(0),
            exit_code: f.next().and_then(|c| c.parse().ok()).unwrap_or(0),
            connected: f.next() == Some("connected"),
            ip: f.next().and_then(|ip| ip.parse().ok()),
        }
    }

    /// Whether it stopped by itself, cleanly (an election's node once the count is over), given
    /// whether nodes end on their own at all (`ends`: elsewhere they run until stopped) and
    /// whether the nemesis stopped it (kill, restart) or just put its data back (which kills
    /// it): such a node is done, not to be started again.
    fn ended_on_its_own(&self, ends: bool, faulted: bool) -> bool {
        ends && !self.running && self.exit_code == 0 && !faulted
    }
}

impl<'a> Faults<'a> {
    /// The faults of `nodes`' containers, on the network the first is connected to; `ends`:
    /// the nodes end on their own (see the field).
    pub fn new(docker: &'a Docker, nodes: Vec<Node>, ends: bool) -> Result<Faults<'a>, UserError> {
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
            stopped: Default::default(),
            ends,
        })
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    fn node(&self, id: usize) -> &Node {
        &self.nodes[id]
    }

    /// Whether node `id`, as `now` shows it, has ended on its own (only where nodes do:
    /// `ends`); `data_healed`: the heal just put its data back.
    fn ended(&self, id: usize, now: &Now, data_healed: bool) -> bool {
        now.ended_on_its_own(self.ends, data_healed || self.stopped.borrow().contains(&id))
    }

    fn now(&self, n: &Node) -> Result<Now, UserError> {
        self.inspect(&[n]).map(|mut all| all.remove(0))
    }

    /// How every one of `nodes` is now, in their order: one `docker inspect` for all.
    fn inspect(&self, nodes: &[&Node]) -> Result<Vec<Now>, UserError> {
        let format = format!(
            "{{{{.State.Running}}}} {{{{.State.Paused}}}} {{{{.State.Pid}}}} {{{{.State.ExitCode}}}} \
             {{{{with index .NetworkSettings.Networks \"{}\"}}}}connected {{{{.IPAddress}}}}{{{{end}}}}",
            self.network
        );
        let mut args = vec!["inspect", "--format", &format];
        args.extend(nodes.iter().map(|n| n.container.as_str()));
        let out = self.docker.docker(&args)?;
        let text = String::from_utf8_lossy(&out);
        let all: Vec<Now> = text.lines().map(Now::parse).collect();
        if all.len() != nodes.len() {
            return Err(UserError(format!(
                "docker inspect described {} containers of {}",
                all.len(),
                nodes.len()
            )));
        }
        Ok(all)
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
        // An empty change, applied as the faults' are (`restore`): it changes nothing.
        Self::iptables(pid, &["--list", "INPUT", "--numeric"])
            .and_then(|_| Self::restore(pid, "*filter\nCOMMIT\n"))
            .map_err(|e| {
                UserError(format!(
                    "partitions and cuts need packet filters in the containers' network namespaces \
                     (root, nsenter, and iptables with iptables-restore --wait on this machine): {}",
                    e.msg
                ))
            })
    }

    /// Adds to each node its rules (each the arguments of one rule, after `--append CHAIN`),
    /// every node at once: under load a node's filters take a few process starts each, and
    /// one after the other they made a fault on fifteen nodes take seconds.
    fn filter(&self, rules: &[(usize, Vec<Vec<String>>)]) -> Result<(), UserError> {
        let nodes: Vec<&Node> = rules.iter().map(|(id, _)| self.node(*id)).collect();
        let nows = self.inspect(&nodes)?;
        // A node that does not run has no network namespace: nothing to filter (and none of
        // its packets to drop).
        let jobs: Vec<(usize, u64, &[Vec<String>])> = nows
            .iter()
            .zip(rules)
            .filter(|(now, _)| now.running && now.pid != 0)
            .map(|(now, (id, r))| (*id, now.pid, r.as_slice()))
            .collect();
        each_at_once(&jobs, |&(id, pid, r)| {
            Self::write_chain(pid, CHAIN, r, false).map_err(|e| UserError(format!("n{id}: {}", e.msg)))
        })
        .into_iter()
        .collect::<Result<Vec<()>, _>>()
        .map(|_| ())
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
        if self.ends && kind != NemesisFault::Partition {
            // A node that has ended on its own is not the nemesis's to fault (a kill would
            // leave it to the heal to start, running a finished node again; a cut of it would
            // cut nothing).
            let now = self.now(self.node(nodes[0]))?;
            if self.ended(nodes[0], &now, false) {
                return Err(UserError(format!("n{} has ended on its own (exit code 0)", nodes[0])));
            }
        }
        let done = match kind {
            NemesisFault::Clock => {
                let bend = bend.ok_or_else(|| UserError("a clock fault without its bend".into()))?;
                return self.bend_clock(self.node(nodes[0]), bend);
            }
            NemesisFault::Wipe => return self.wipe(self.node(nodes[0])),
            NemesisFault::Disk => return self.disk_full(self.node(nodes[0])),
            NemesisFault::Kill | NemesisFault::Restart => {
                // Counted as stopped by the nemesis before it asks: a kill that fails half-way
                // may still have stopped it; one that left it running did not.
                self.stopped.borrow_mut().insert(nodes[0]);
                let args: &[&str] = match kind {
                    NemesisFault::Kill => &["kill", "--signal", "KILL"],
                    _ => &["stop", "--time", "10"],
                };
                let done = self.docker.docker(&[args, &[one().as_str()]].concat()).map(|_| ());
                // Not the nemesis's doing after all: a kill that failed and left it running,
                // or found it ended (a SIGKILL's exit code is 137, not 0), where nodes end.
                let not_ours = |now: Now| now.running || (self.ends && now.exit_code == 0);
                if done.is_err() && self.now(self.node(nodes[0])).is_ok_and(not_ours) {
                    self.stopped.borrow_mut().remove(&nodes[0]);
                }
                done
            }
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
                let mut rules: Vec<(usize, Vec<Vec<String>>)> =
                    inside.iter().map(|n| (n.id, drop_from(&outside))).collect();
                rules.extend(outside.iter().map(|n| (n.id, drop_from(&inside))));
                self.filter(&rules)
            }
            NemesisFault::Cut => {
                let cut = cut_rules(self.node(nodes[0]).ip);
                let others = self.nodes.iter().filter(|n| !nodes.contains(&n.id));
                self.filter(&others.map(|n| (n.id, cut.to_vec())).collect::<Vec<_>>())
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
    /// Every step is tried; the first error is returned after. Where nodes end on their own
    /// (`ends`), one that exited with code 0 and was not stopped by the nemesis (an election's
    /// node once the count is over) is not started: healing undoes faults, it does not run a
    /// finished node again.
    pub fn heal(&self) -> Result<Vec<String>, UserError> {
        let mut did = Vec::new();
        let mut first_error = None;
        let mut fail = |id: usize, e: UserError| {
            first_error.get_or_insert(UserError(format!("healing n{id}: {}", e.msg)));
        };
        let all: Vec<&Node> = self.nodes.iter().collect();
        // One inspection for all; one each if that fails (a container gone fails it), so
        // that the others are healed still.
        let nows: Vec<Result<Now, UserError>> = match self.inspect(&all) {
            Ok(nows) => nows.into_iter().map(Ok).collect(),
            Err(_) => self.nodes.iter().map(|n| self.now(n)).collect(),
        };
        let mut running = Vec::new();
        for (n, now) in self.nodes.iter().zip(nows) {
            match now.and_then(|now| self.heal_one(n, now, &mut did)) {
                Ok(Some(pid)) => running.push((n.id, pid)),
                Ok(None) => {}
                Err(e) => fail(n.id, e),
            }
        }
        // The filters of every running node, all at once (see `filter`).
        let removed = each_at_once(&running, |&(_, pid)| Self::remove_filters(pid));
        for (&(id, _), r) in running.iter().zip(removed) {
            match r {
                Ok(true) => did.push(format!("filters of n{id} removed")),
                Ok(false) => {}
                Err(e) => fail(id, e),
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(did),
        }
    }

    /// Heals `n` but for its filters; the process id of its container if it runs.
    fn heal_one(&self, n: &Node, mut now: Now, did: &mut Vec<String>) -> Result<Option<u64>, UserError> {
        let c = &n.container;
        let before = did.len();
        if now.paused {
            self.docker.docker(&["unpause", c])?;
            did.push(format!("unpaused n{}", n.id));
        }
        if !now.connected {
            let alias = format!("n{}", n.id);
            self.docker.docker(&["network", "connect", "--alias", &alias, &self.network, c])?;
            did.push(format!("connected n{}", n.id));
        }
        let before_data = did.len();
        self.heal_data(n, now.running, did)?;
        let data_healed = did.len() > before_data;
        // Looked at again if anything was done, or before its clock is put back (it may have
        // stopped since the heal's first look: a stopped node is not signalled).
        if did.len() > before || self.bent.borrow().contains(&n.id) {
            now = self.now(n)?;
        }
        if now.running {
            // Whatever the nemesis did to it is over (a start that reported an error may
            // still have started it).
            self.stopped.borrow_mut().remove(&n.id);
        }
        // Before a stopped node starts: it reads its file then (an ended one's is put back too).
        self.heal_clock(n, now.running, did)?;
        if self.ended(n.id, &now, data_healed) {
            return Ok(None);
        }
        if !now.running {
            self.docker.docker(&["start", c])?;
            self.stopped.borrow_mut().remove(&n.id);
            did.push(format!("started n{}", n.id));
            now = self.now(n)?;
        }
        Ok(now.running.then_some(now.pid))
    }

    /// Appends `rules` (each the arguments of one rule, after `--append CHAIN`) to `chain` in
    /// the network namespace of process `pid`, making the chain and its jumps from INPUT and
    /// OUTPUT if it has none (nothing is made for no rules); `replace`: the chain's rules
    /// before are removed first. One `iptables-restore`, so one change.
    pub fn write_chain(pid: u64, chain: &str, rules: &[Vec<String>], replace: bool) -> Result<(), UserError> {
        let mut script = String::from("*filter\n");
        if Self::iptables(pid, &["--list", chain, "--numeric"]).is_err() {
            if rules.is_empty() {
                return Ok(());
            }
            script += &format!(":{chain} - [0:0]\n-I INPUT -j {chain}\n-I OUTPUT -j {chain}\n");
        } else if replace {
            script += &format!("-F {chain}\n");
        }
        for r in rules {
            script += &format!("-A {chain} {}\n", r.join(" "));
        }
        Self::restore(pid, &(script + "COMMIT\n"))
    }

    /// Removes the nemesis's filters from the network namespace of process `pid`, if it has
    /// them; whether it had.
    fn remove_filters(pid: u64) -> Result<bool, UserError> {
        if Self::iptables(pid, &["--list", CHAIN, "--numeric"]).is_err() {
            return Ok(false);
        }
        let all =
            format!("*filter\n-D INPUT -j {CHAIN}\n-D OUTPUT -j {CHAIN}\n-F {CHAIN}\n-X {CHAIN}\nCOMMIT\n");
        if Self::restore(pid, &all).is_ok() {
            return Ok(true);
        }
        // One of the jumps is gone (an earlier heal stopped half-way): one step at a time.
        for parent in ["INPUT", "OUTPUT"] {
            let _ = Self::iptables(pid, &["--delete", parent, "--jump", CHAIN]);
        }
        Self::iptables(pid, &["--flush", CHAIN])?;
        Self::iptables(pid, &["--delete-chain", CHAIN])?;
        Ok(true)
    }

    /// `script` (`iptables-restore`'s format) applied as one change in the network namespace
    /// of process `pid`, the rules already there kept: one process where a rule each took one.
    fn restore(pid: u64, script: &str) -> Result<(), UserError> {
        use std::io::Write as _;
        let fail =
            |e: std::io::Error| UserError(format!("cannot write the nemesis's filters to a file: {e}"));
        let mut file = tempfile::NamedTempFile::new().map_err(fail)?;
        file.write_all(script.as_bytes()).map_err(fail)?;
        let pid = pid.to_string();
        let mut args: Vec<&std::ffi::OsStr> =
            ["--target", &pid, "--net", "iptables-restore", "--wait", "--noflush"]
                .map(std::ffi::OsStr::new)
                .to_vec();
        args.push(file.path().as_os_str());
        host("nsenter", &args).map(|_| ())
    }

    /// From now on the nodes end on their own (an election): dropping the faults heals nothing,
    /// so a container that has exited is not started again.
    pub fn disarm(&self) {
        self.armed.set(false);
    }

    /// The replicas whose address is not the one they had when the run began (a container
    /// connected again may be given another): `(node, now)`, with no address for one that
    /// does not run — but for a node that has ended on its own, where nodes do (`ends`).
    pub fn moved(&self) -> Result<Vec<(usize, Option<IpAddr>)>, UserError> {
        let all: Vec<&Node> = self.nodes.iter().collect();
        let nows = self.inspect(&all)?;
        Ok(self
            .nodes
            .iter()
            .zip(nows)
            .filter(|(n, now)| now.ip != Some(n.ip) && !self.ended(n.id, now, false))
            .map(|(n, now)| (n.id, now.ip))
            .collect())
    }
}

/// The rules that cut the connections `from` dialled to a node's peer port, in that node:
/// its packets to the port and the replies to it (a node sends on the connections it dials).
pub fn cut_rules(from: IpAddr) -> Vec<Vec<String>> {
    let (ip, port) = (from.to_string(), PEER_PORT.to_string());
    [
        ["--source", &ip, "--protocol", "tcp", "--dport", &port, "--jump", "DROP"],
        ["--destination", &ip, "--protocol", "tcp", "--sport", &port, "--jump", "DROP"],
    ]
    .map(|r| r.map(String::from).to_vec())
    .to_vec()
}

/// `f` of every job, each on a thread of its own, all at once; the results in the jobs' order.
fn each_at_once<J: Sync, R: Send>(
    jobs: &[J],
    f: impl Fn(&J) -> Result<R, UserError> + Sync,
) -> Vec<Result<R, UserError>> {
    std::thread::scope(|s| {
        let f = &f;
        let handles: Vec<_> = jobs.iter().map(|j| s.spawn(move || f(j))).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(UserError("a thread of the nemesis panicked".into()))))
            .collect()
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `docker inspect`'s line read field by field, and who counts as having ended on its own:
    /// a clean exit the nemesis did not cause, not a kill, a crash or a stop of its own.
    #[test]
    fn a_container_s_state_and_whether_it_ended_on_its_own() {
        let running = Now::parse("true false 4242 0 connected 172.18.0.5");
        assert!(running.running && !running.paused && running.connected);
        assert_eq!((running.pid, running.ip), (4242, Some("172.18.0.5".parse().unwrap())));
        assert!(!running.ended_on_its_own(true, false), "a running node ended");

        let done = Now::parse("false false 0 0 connected ");
        assert!(!done.running && done.connected && done.ip.is_none());
        assert!(done.ended_on_its_own(true, false));
        assert!(!done.ended_on_its_own(true, true), "a node the nemesis stopped taken for one that ended");
        assert!(
            !done.ended_on_its_own(false, false),
            "a node of a system whose nodes run until stopped ended"
        );

        let killed = Now::parse("false false 0 137 connected ");
        assert_eq!(killed.exit_code, 137);
        assert!(!killed.ended_on_its_own(true, false), "a crashed node taken for one that ended");
        let away = Now::parse("true true 7 0");
        assert!(away.paused && !away.connected && away.ip.is_none());
    }
}
