//! `agora cluster ui` (and `agora cluster up --ui`): the live view of a cluster of containers
//! on this machine, served while they run, until Ctrl-C. A market's, an election's and a
//! multicast's nodes (`agora node`) print every observation; a key-value store's and a voting
//! service's servers print only when they lead, so their roles come from those lines and
//! from what each says of itself when asked every second — a key-value replica its `INFO`
//! (its commit index too), a voting server its `BOARD` (its members online and latest
//! questions, asked with the administrator token the cluster's secret gives) — and their
//! histories (their clients') are not judged here but by `agora cluster nemesis`.
//!
//! What the page shows comes from the containers' logs, followed as they grow (`docker logs
//! --follow`), where each node prints every observation as an `event` line (`--events`), and
//! from each node's counters, asked every [`SAMPLE`] on its metrics port (`/counts`), which
//! the sampler reads as it reads the counters of `agora up`'s processes. A node's runs are
//! told apart by its `listening` lines and by its process's start time. The checker's verdict
//! is the one `agora cluster status` gives: the history the logs hold, judged again every
//! [`JUDGE_EVERY`] and shown as the verdict *so far*.
//!
//! The page's controls act on the containers: crash is `docker kill --signal KILL`, restart
//! `docker start` (same container, same volume), pause and resume `docker pause` and
//! `unpause`. Links are cut with the nemesis's packet filters ([`CHAIN`], in each container's
//! network namespace): a cut from A to B drops, in B, the packets of the connections A dialled
//! to B's peer port (a node sends on the connections it dials), and a partition is every link
//! across it cut both ways. Which links are cut is kept here, and every running container's
//! filters are written again from it after each change and each restart (a restarted
//! container has a new network namespace and may have a new address). Heal removes them all.
//!
//! On the way out the view undoes what its page did and is still in force: links mended,
//! paused containers resumed, containers it killed started again. A container that ended on
//! its own (an election's node, once it has counted) is left as it is. A second Ctrl-C while
//! it undoes ends it at once and leaves the rest as it is.

use super::docker::Docker;
use super::files::{METRICS_PORT, VOTE_PORT};
use super::history::{self, Run};
use super::nemesis::faults::{cut_rules, Faults};
use super::status::{self, Container};
use super::Files;
use crate::cli::ClusterDirArgs;
use crate::cluster_file::ClusterFile;
use crate::commands::election::Ballots;
use crate::commands::health;
use crate::commands::market::Trades;
use crate::commands::shared::tcp::{interrupted, runtime};
use crate::commands::shared::ui::sampler::{verdicts, Counts, Flags, LiveRun, Plain, SoFar, System, SAMPLE};
use crate::commands::vote::front::admin_token;
use crate::commands::vote::live::board_table;
use crate::commands::vote::node::VoteObs;
use crate::error::UserError;
use agora_core::{Lifecycle, NodeId, Observation, Protocol, Setup};
use agora_net::faults::OnFault;
use agora_net::{Fault, Happened, Order};
use agora_protocols::market::{MarketObs, MarketSetup};
use agora_protocols::raft::RaftObs;
use agora_protocols::vote_count::obs::VoteObs as ElectionObs;
use agora_protocols::vote_count::setup::VoteSetup as ElectionSetup;
use agora_protocols::Driver;
use std::any::Any;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The controls the page offers for containers.
const VERBS: &[&str] = &["crash", "restart", "pause", "resume", "cut", "partition", "heal"];
/// Why a cluster on a Swarm gets no controls.
const ON_A_SWARM: &str = "this cluster runs on a Swarm: the controls kill, pause and cut containers through \
                          this machine's Docker, which reaches only the tasks placed here (docs/cluster.md)";
/// How often the history in the logs is judged again.
const JUDGE_EVERY: Duration = Duration::from_secs(3);
/// How often the view looks the containers' addresses up again, to ask them their counters.
const LOOK_AGAIN: Duration = Duration::from_secs(5);
/// A node's `/counts` is read up to this many bytes: a larger one is not one.
const COUNTS_BYTES: u64 = 1 << 20;
/// How often a key-value cluster's replicas are asked their `INFO`.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// The packet-filter chain of the view's cuts, in each container's network namespace: its
/// own, so that a nemesis run at the same time (`agora-nemesis`) and the view do not clear
/// each other's rules.
const CHAIN: &str = "agora-view";
/// What the reproduce line of a verdict says.
const REPRODUCE: &str = "agora cluster status";

/// `agora cluster ui --dir DIR --ui ADDR`: serves the view until Ctrl-C; 0, or 1 if the
/// checker found a property violated in the history judged last.
pub fn run(dir: &ClusterDirArgs, addr: &str) -> Result<i32, UserError> {
    let files = Files::of(dir)?;
    let cf = files.load()?;
    let docker = Docker::find()?;
    let place = status::Where::of(&docker, &files.name, &cf);
    let cs = place.containers(&docker, &files.name)?;
    if cs.len() != cf.nodes.len() || cs.iter().enumerate().any(|(i, c)| c.node != i) {
        return Err(UserError(format!(
            "cluster {} has {} of its {} containers: `agora cluster status --dir {}`",
            files.name,
            cs.len(),
            cf.nodes.len(),
            dir.dir.display()
        )));
    }
    let watch = Watch { docker, cf: &cf, name: files.name.clone(), place, containers: cs, addr };
    match cf.protocol.as_str() {
        // Their servers print no observations, only when they lead: the page's roles come
        // from those lines, and a key-value replica's commit index from its `INFO`.
        "kv" => {
            let table = Polled::default();
            let poll = Judging::Replicas(table.clone());
            watch.run::<RaftObs>(
                Box::new(table),
                leadership(|term, leads| match leads {
                    true => RaftObs::Leader { term },
                    false => RaftObs::SteppedDown { term },
                }),
                poll,
            )
        }
        // Its servers' boards, read with the administrator token (`BOARD`), give the page
        // its members and questions, and each server's role.
        "vote" => {
            let table = Polled::default();
            let admin = admin_token(&cf.secret(&files.cluster)?.to_hex());
            watch.run::<VoteObs>(
                Box::new(table.clone()),
                leadership(|term, leads| match leads {
                    true => VoteObs::Raft(RaftObs::Leader { term }),
                    false => VoteObs::Raft(RaftObs::SteppedDown { term }),
                }),
                Judging::Members(table, admin),
            )
        }
        _ => {
            let params = cf.params()?;
            agora_protocols::dispatch(&cf.protocol, &params, watch)?
        }
    }
}

/// A view to serve: the cluster and where.
struct Watch<'a> {
    docker: Docker,
    cf: &'a ClusterFile,
    /// The cluster's name (its containers' `agora.cluster` label).
    name: String,
    /// Compose's containers, or a Swarm's stack.
    place: status::Where,
    containers: Vec<Container>,
    addr: &'a str,
}

/// The observations of a setup's nodes.
type Obs<S> = <<S as Setup>::Node as Protocol>::Obs;

/// An `agora node`'s observation line (`"obs"`), as its protocol serializes it.
fn observed<O: Observation>(v: &mut serde_json::Value) -> Option<O> {
    serde_json::from_value(v.get_mut("obs")?.take()).ok()
}

/// A server's leadership lines (`"leader"`, `"stepped_down"`), as the observation `make`
/// gives for (term, leads).
fn leadership<O>(
    make: fn(u64, bool) -> O,
) -> impl Fn(&mut serde_json::Value) -> Option<O> + Send + Sync + Clone {
    move |v: &mut serde_json::Value| {
        if let Some(term) = v.get("stepped_down").and_then(serde_json::Value::as_u64) {
            return Some(make(term, false));
        }
        v.get("leader")?;
        Some(make(v.get("term")?.as_u64()?, true))
    }
}

/// How the view judges while it runs.
enum Judging {
    /// The history in the nodes' logs, by the protocol's checker.
    Logs,
    /// A key-value store: its history is its clients', which the view does not have; each
    /// replica's `INFO` goes to the page's table.
    Replicas(Polled),
    /// The voting service: its history is its members', which the view does not have; each
    /// server's `BOARD` (asked with the administrator token, the second field) gives the
    /// page's table and the servers' roles.
    Members(Polled, String),
}

impl Driver for Watch<'_> {
    type Output = Result<i32, UserError>;

    fn run<S: Setup>(self, setup: S) -> Self::Output {
        if setup.nodes() != self.containers.len() {
            return Err(UserError(format!(
                "the cluster file's {} setup has {} nodes, the cluster {} containers",
                setup.name(),
                setup.nodes(),
                self.containers.len()
            )));
        }
        self.run::<Obs<S>>(system_of(&setup), observed::<Obs<S>>, Judging::Logs)
    }
}

impl Watch<'_> {
    /// Serves the view until Ctrl-C, the nodes' lines read with `parse`, the page's own table
    /// from `system`.
    fn run<O: Observation>(
        self,
        system: Box<dyn System<O>>,
        parse: impl Fn(&mut serde_json::Value) -> Option<O> + Send + Sync + Clone + 'static,
        judging: Judging,
    ) -> Result<i32, UserError> {
        let nodes = self.containers.len();
        let rt = runtime()?;
        let swarm = matches!(self.place, status::Where::Swarm { .. });
        let flags = if swarm {
            Flags { addr: self.addr, linger: false, hold: false, verbs: &[], unavailable: Some(ON_A_SWARM) }
        } else {
            Flags { addr: self.addr, linger: false, hold: false, verbs: VERBS, unavailable: None }
        };
        let mut live = rt.block_on(LiveRun::<O>::start(flags, nodes, system, |_| true))?;
        let counts = Arc::new(Mutex::new(vec![None; nodes]));
        live.remote(counts.clone());
        let observe = live.observer();
        let controls = live.take_controls().expect("the controls are taken once");
        let stop = Arc::new(AtomicBool::new(false));
        let ids: Vec<String> = self.containers.iter().map(|c| c.id.clone()).collect();
        let followed: Followed = Arc::new(Mutex::new(
            (0..nodes)
                .map(|node| FollowedLog {
                    log: history::NodeLog { node, ..Default::default() },
                    to_the_end: false,
                })
                .collect(),
        ));
        for (id, container) in ids.iter().enumerate() {
            let (counts, observe, parse) = (counts.clone(), observe.clone(), parse.clone());
            let into = NodeSink { id, counts, followed: followed.clone(), observe, parse, runs: 0 };
            if swarm {
                rt.spawn(follow_tasks::<O, _, _>(self.docker.clone(), self.name.clone(), into));
            } else {
                rt.spawn(follow::<O, _, _>(container.clone(), into));
            }
        }
        rt.spawn(poll_counts(self.docker.clone(), self.name.clone(), self.place.clone(), counts.clone()));
        // Roles the replicas' `INFO` tells (a follower prints no line), as leadership lines.
        let (roles_tx, mut roles) = tokio::sync::mpsc::unbounded_channel::<(usize, serde_json::Value)>();
        rt.spawn(async move {
            while let Some((id, mut line)) = roles.recv().await {
                if let Some(o) = parse(&mut line) {
                    observe(NodeId(id as u32), o);
                }
            }
        });
        let judging = {
            let (docker, cf, so_far, stop) =
                (self.docker.clone(), self.cf.clone(), live.so_far(), stop.clone());
            let name = self.name.clone();
            let watched = Watched { docker, cf, name, place: self.place.clone(), followed };
            std::thread::spawn(move || judge_while(&watched, &judging, &so_far, &stop, &roles_tx))
        };
        let steering = {
            let (docker, ids) = (self.docker.clone(), ids.clone());
            let agora_net::Controls { mut orders, on_fault, .. } = controls;
            std::thread::spawn(move || {
                if !swarm {
                    return steer(&docker, ids, orders, on_fault);
                }
                // The page offers no control; an order sent all the same is refused.
                while let Some(Order { done, .. }) = orders.blocking_recv() {
                    let _ = done.send(Err(ON_A_SWARM.to_string()));
                }
                Vec::new()
            })
        };
        let what = if swarm { "tasks'" } else { "containers'" };
        eprintln!("agora: following {nodes} nodes' {what} logs; Ctrl-C ends the view");
        rt.block_on(interrupted());
        // Undoing what the page did takes Docker's time: a second Ctrl-C leaves it as it is
        // and ends at once, by SIGINT's default action, restored here.
        eprintln!(
            "agora: ending the view; what its page did is undone first (Ctrl-C again: leave it, end now)"
        );
        // SAFETY: sets SIGINT's action for this process back to the default; nothing here
        // waits for SIGINT any more.
        unsafe { libc::signal(libc::SIGINT, libc::SIG_DFL) };
        stop.store(true, Ordering::Relaxed);
        let last = judging.join().unwrap_or(None);
        drop(rt.block_on(live.finish_with(last.clone().unwrap_or(serde_json::Value::Null))));
        // The page's server, its followers and its controls end with the runtime; then what
        // the controls left in force is undone.
        rt.shutdown_timeout(Duration::from_secs(1));
        let undone = steering.join().unwrap_or_default();
        if !undone.is_empty() {
            eprintln!("agora: undone on the way out: {}", undone.join(", "));
        }
        let violated = last
            .as_ref()
            .and_then(|v| v["properties"].as_array().cloned())
            .is_some_and(|ps| ps.iter().any(|p| p["verdict"] == "violated"));
        Ok(i32::from(violated))
    }
}

/// A table the view fills from outside the observations: a key-value cluster's replicas as
/// their `INFO` says.
#[derive(Clone, Default)]
struct Polled(Arc<Mutex<serde_json::Value>>);

impl<O> System<O> for Polled {
    fn see(&mut self, _: NodeId, _: &O) {}
    fn view(&self) -> serde_json::Value {
        self.0.lock().expect("polled lock").clone()
    }
}

/// The system's own table on the page, where the command that runs it in one process has one:
/// the market's goods, accounts and latest trades ([`Trades`]), the election's tile map of
/// its regions ([`Ballots`]); none for the others.
fn system_of<S: Setup>(setup: &S) -> Box<dyn System<Obs<S>>> {
    let any: &dyn Any = setup;
    let boxed: Box<dyn Any> = if let Some(m) = any.downcast_ref::<MarketSetup>() {
        let trades: Box<dyn System<MarketObs>> = Box::new(Trades::new(m.s.clone()));
        Box::new(trades)
    } else if let Some(e) = any.downcast_ref::<ElectionSetup>() {
        let ballots = Ballots::new(&e.s.spec, e.s.roll.as_deref().map(Vec::as_slice));
        let ballots: Box<dyn System<ElectionObs>> = Box::new(ballots);
        Box::new(ballots)
    } else {
        return Box::new(Plain);
    };
    match boxed.downcast::<Box<dyn System<Obs<S>>>>() {
        Ok(system) => *system,
        Err(_) => Box::new(Plain),
    }
}

/// Where a node's log lines go: its counters to `counts`, its lines to `followed` (for the
/// checker), its observations to `observe`.
struct NodeSink<P, F> {
    id: usize,
    counts: Arc<Mutex<Vec<Option<Counts>>>>,
    followed: Followed,
    observe: F,
    parse: P,
    /// The node's runs seen so far: a counter's incarnation (a container's process is always
    /// pid 1, so the pid tells no runs apart).
    runs: u64,
}

impl<P, F> NodeSink<P, F> {
    /// Takes one line the node wrote on stderr.
    fn take<O: Observation>(&mut self, line: &str)
    where
        P: Fn(&mut serde_json::Value) -> Option<O>,
        F: Fn(NodeId, O),
    {
        let id = self.id;
        let Some(json) = line.strip_prefix("event ") else { return };
        let Ok(mut v) = serde_json::from_str::<serde_json::Value>(json) else { return };
        if v.get("node").and_then(serde_json::Value::as_u64) != Some(id as u64) {
            return;
        }
        self.followed.lock().expect("followed lock")[id].log.push(&v);
        if v.get("listening").is_some() {
            self.runs += 1;
        } else if let Some(c) = v.get("counts") {
            let nodes = self.counts.lock().expect("counts lock").len();
            if let Some(c) = Counts::from_json(c, self.runs.max(1), nodes) {
                self.counts.lock().expect("counts lock")[id] = Some(c);
            }
        } else if let Some(o) = (self.parse)(&mut v) {
            (self.observe)(NodeId(id as u32), o);
        }
    }

    /// Whether the node's log is known whole: its last run ended and was read to its end.
    fn to_the_end(&self, whole: bool) {
        self.followed.lock().expect("followed lock")[self.id].to_the_end = whole;
    }
}

/// Follows a node's container log (Compose) into `into`. Follows it again when it ends (the
/// container stopped), from then on, so a container started again is followed into its new
/// run. (Not from Docker's time of the last line read, with `--timestamps`: Docker stamps
/// each 16 KiB piece of a longer line apart, so such lines would come back cut by
/// timestamps.)
async fn follow<O, P, F>(container: String, mut into: NodeSink<P, F>)
where
    O: Observation,
    P: Fn(&mut serde_json::Value) -> Option<O>,
    F: Fn(NodeId, O),
{
    use tokio::io::AsyncBufReadExt;
    let id = into.id;
    let mut since: Option<f64> = None;
    loop {
        let mut cmd = tokio::process::Command::new("docker");
        cmd.args(["logs", "--follow"]);
        if let Some(s) = since {
            cmd.args(["--since", &format!("{s:.6}")]);
        }
        cmd.arg(&container);
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let began = Instant::now();
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("agora: cannot follow node {id}'s log: {e}");
                return;
            }
        };
        into.to_the_end(false);
        let mut lines = tokio::io::BufReader::new(child.stderr.take().expect("piped")).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            into.take::<O>(&line);
        }
        let ended = child.wait().await.is_ok_and(|e| e.success());
        into.to_the_end(ended);
        since = Some(agora_net::clock::unix_ns() as f64 / 1e9);
        // A stopped container's log ends at once: asked again at this pace until it runs.
        if began.elapsed() < Duration::from_secs(1) {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Follows a node of a Swarm (of stack `name`) into `into`: each of its tasks (each run) in
/// turn, oldest first, wherever it runs. `docker service logs --follow` of a task does not
/// end when the task does, so the task's state is looked at every [`POLL_EVERY`]; once it
/// has ended, its log is read whole and the lines not yet taken are taken, and the next task
/// is followed. A task whose log cannot be read after [`TRIES`] tries is given up, said on
/// stderr, and the node's log is never taken as whole again.
async fn follow_tasks<O, P, F>(docker: Docker, name: String, mut into: NodeSink<P, F>)
where
    O: Observation,
    P: Fn(&mut serde_json::Value) -> Option<O>,
    F: Fn(NodeId, O),
{
    use tokio::io::AsyncBufReadExt;
    const TRIES: u32 = 30;
    let node = into.id;
    // Lines taken of each task, tries of each, and the tasks done with.
    let mut taken: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut tries: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut lost = false;
    let tasks = |docker: Docker, name: String| async move {
        tokio::task::spawn_blocking(move || super::swarm::tasks(&docker, &name, node)).await.ok()?.ok()
    };
    loop {
        let Some(all) = tasks(docker.clone(), name.clone()).await else {
            tokio::time::sleep(POLL_EVERY).await;
            continue;
        };
        let Some((task, _)) = all.iter().find(|(t, _)| !done.contains(t)).cloned() else {
            // Every task read to its end: whole until the Swarm starts another.
            into.to_the_end(!lost && all.last().is_some_and(|(_, ended)| *ended));
            tokio::time::sleep(POLL_EVERY).await;
            continue;
        };
        into.to_the_end(false);
        let began = Instant::now();
        let skip = taken.get(&task).copied().unwrap_or(0);
        let mut cmd = tokio::process::Command::new("docker");
        cmd.args(["service", "logs", "--follow", "--raw", &task])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let Ok(mut child) = cmd.spawn() else {
            eprintln!("agora: cannot follow the log of task {task}");
            return;
        };
        let mut reader = tokio::io::BufReader::new(child.stderr.take().expect("piped"));
        let (mut read, mut line) = (0usize, Vec::new());
        let mut tick = tokio::time::interval(POLL_EVERY);
        let ended = loop {
            tokio::select! {
                got = reader.read_until(b'\n', &mut line) => match got {
                    Ok(n) if n > 0 && line.ends_with(b"\n") => {
                        read += 1;
                        if read > skip {
                            into.take::<O>(String::from_utf8_lossy(&line).trim_end_matches('\n'));
                        }
                        line.clear();
                    }
                    // Its end, or a line cut short: read whole once the task ends.
                    _ => break false,
                },
                _ = tick.tick() => {
                    let now = tasks(docker.clone(), name.clone()).await;
                    if now.is_some_and(|all| all.iter().any(|(t, ended)| *t == task && *ended)) {
                        break true;
                    }
                }
            }
        };
        drop(reader);
        drop(child);
        taken.insert(task.clone(), read.max(skip));
        if ended {
            // Ended: what its log holds beyond the lines taken.
            let (d, t) = (docker.clone(), task.clone());
            if let Ok(Ok(whole)) = tokio::task::spawn_blocking(move || d.task_stderr(&t)).await {
                let have = taken[&task];
                for line in whole.lines().skip(have) {
                    into.take::<O>(line);
                }
                taken.insert(task.clone(), have.max(whole.lines().count()));
                done.insert(task);
                continue;
            }
        }
        let n = tries.entry(task.clone()).or_insert(0);
        *n += 1;
        if *n >= TRIES {
            eprintln!(
                "agora: node {node}: the log of task {task} could not be read in {TRIES} tries; given up"
            );
            lost = true;
            done.insert(task);
        } else if began.elapsed() < POLL_EVERY {
            // Not read, or its follow ended at once: asked again at this pace.
            tokio::time::sleep(POLL_EVERY).await;
        }
    }
}

/// Each node's log as [`follow`] has read it so far, which the checker judges.
type Followed = Arc<Mutex<Vec<FollowedLog>>>;

/// One node's log as read so far.
#[derive(Clone, Default)]
struct FollowedLog {
    log: history::NodeLog,
    /// The last `docker logs --follow` ended well: the container had stopped, and every line
    /// of its run was read. (Cleared when the next one starts.)
    to_the_end: bool,
}

/// Asks every running node its counters (`/counts` on its metrics port) every [`SAMPLE`],
/// all at once, for as long as the view runs: the page's traffic, the nodes' links and their
/// latest messages. The containers' addresses are looked up again every few seconds, and at
/// once after a node did not answer (a restarted container may have another).
async fn poll_counts(
    docker: Docker,
    name: String,
    place: status::Where,
    counts: Arc<Mutex<Vec<Option<Counts>>>>,
) {
    let nodes = counts.lock().expect("counts lock").len();
    let mut at: Vec<Option<std::net::SocketAddr>> = vec![None; nodes];
    let mut looked: Option<Instant> = None;
    let mut tick = tokio::time::interval(SAMPLE);
    loop {
        tick.tick().await;
        if looked.is_none_or(|t| t.elapsed() > LOOK_AGAIN) {
            let (d, n, p) = (docker.clone(), name.clone(), place.clone());
            if let Ok(Ok(cs)) = tokio::task::spawn_blocking(move || p.containers(&d, &n)).await {
                at = vec![None; nodes];
                for c in cs.iter().filter(|c| c.node < nodes && c.state == "running") {
                    at[c.node] = c.at(METRICS_PORT);
                }
                looked = Some(Instant::now());
            }
        }
        let mut asked = tokio::task::JoinSet::new();
        for (i, addr) in at.iter().enumerate() {
            if let Some(addr) = *addr {
                asked.spawn(async move {
                    (i, tokio::time::timeout(SAMPLE, node_counts(addr)).await.ok().flatten())
                });
            }
        }
        while let Some(Ok((i, got))) = asked.join_next().await {
            let Some(v) = got else {
                looked = None;
                continue;
            };
            let started = v["started"].as_u64().filter(|s| *s > 0).unwrap_or(1);
            let mine =
                v["nodes"].as_array().into_iter().flatten().find(|n| n["node"].as_u64() == Some(i as u64));
            if let Some(c) = mine.and_then(|n| Counts::from_json(&n["counts"], started, nodes)) {
                counts.lock().expect("counts lock")[i] = Some(c);
            }
        }
    }
}

/// A node's `/counts` (its metrics endpoint's JSON page), or `None`: no answer, or not one.
async fn node_counts(addr: std::net::SocketAddr) -> Option<serde_json::Value> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(b"GET /counts HTTP/1.1\r\nHost: agora\r\nConnection: close\r\n\r\n").await.ok()?;
    let mut got = Vec::new();
    (&mut s).take(COUNTS_BYTES).read_to_end(&mut got).await.ok()?;
    let body = got.windows(4).position(|w| w == b"\r\n\r\n").map(|i| &got[i + 4..])?;
    serde_json::from_slice(body).ok()
}

/// Judges the logs every [`JUDGE_EVERY`] until `stop`, each verdict put in `so_far`; returns
/// the last one (`None` if none could be made, and why is said on stderr).
fn judge_while(
    watched: &Watched,
    judging: &Judging,
    so_far: &SoFar,
    stop: &AtomicBool,
    roles: &RolesTx,
) -> Option<serde_json::Value> {
    let Watched { docker, cf, name, place, .. } = watched;
    let mut said = None::<String>;
    let mut known = vec![None; cf.nodes.len()];
    let every = match judging {
        Judging::Replicas(_) | Judging::Members(..) => POLL_EVERY,
        _ => JUDGE_EVERY,
    };
    loop {
        let judged = match judging {
            Judging::Logs => judge_now(watched),
            Judging::Replicas(table) => {
                poll_replicas(docker, name, place, table, &mut known, roles).map(|()| unjudged("key-value"))
            }
            Judging::Members(table, admin) => {
                poll_boards(docker, name, place, admin, table, &mut known, roles).map(|()| unjudged("vote"))
            }
        };
        match judged {
            Ok(v) => *so_far.lock().expect("so far lock") = Some(v),
            Err(e) => {
                // The page says so rather than keep showing an older verdict as the latest.
                *so_far.lock().expect("so far lock") = Some(not_judged(&e.msg));
                if said.as_deref() != Some(&e.msg) {
                    eprintln!("agora: the history is not judged: {}", e.msg);
                    said = Some(e.msg);
                }
            }
        }
        let next = Instant::now() + every;
        while Instant::now() < next {
            if stop.load(Ordering::Relaxed) {
                return so_far.lock().expect("so far lock").clone();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The verdict when the history could not be judged now, and why.
fn not_judged(why: &str) -> serde_json::Value {
    serde_json::json!({
        "end": "running", "so_far": true, "judged_at": clock_time(), "reproduce": REPRODUCE,
        "properties": [{ "property": "history", "verdict": "not judged", "detail": why }],
    })
}

/// The verdict of a system whose history the view does not have: nothing judged, and where
/// it is judged.
fn unjudged(system: &str) -> serde_json::Value {
    let (property, detail) = match system {
        "key-value" => (
            "linearizable",
            "a key-value store's history is its clients': `agora cluster nemesis` runs clients, \
             records what they saw and judges it",
        ),
        _ => (
            "vote-service",
            "the voting service's history is its members': `agora cluster nemesis` runs members and \
             judges what they saw",
        ),
    };
    serde_json::json!({
        "end": "running", "so_far": true, "judged_at": clock_time(), "reproduce": REPRODUCE,
        "properties": [{ "property": property, "verdict": "not judged", "detail": detail }],
    })
}

/// Where the replicas' roles go, as leadership lines, by node.
type RolesTx = tokio::sync::mpsc::UnboundedSender<(usize, serde_json::Value)>;

/// Tells `roles` of server `node`'s role `(leads, term)` as the line it would print, if it
/// changed since `known`.
fn tell_role(node: usize, now: (bool, u64), known: &mut [Option<(bool, u64)>], roles: &RolesTx) {
    let Some(k) = known.get_mut(node).filter(|k| **k != Some(now)) else { return };
    *k = Some(now);
    let line = match now {
        (true, term) => serde_json::json!({ "node": node, "leader": node, "term": term }),
        (false, term) => serde_json::json!({ "node": node, "stepped_down": term }),
    };
    let _ = roles.send((node, line));
}

/// Asks every key-value replica its `INFO` and puts the answers in `table`; a replica whose
/// role or term changed since `known` is told to `roles` as the line it would print.
fn poll_replicas(
    docker: &Docker,
    name: &str,
    place: &status::Where,
    table: &Polled,
    known: &mut [Option<(bool, u64)>],
    roles: &RolesTx,
) -> Result<(), UserError> {
    let cs = place.containers(docker, name)?;
    let rs = status::replicas(&cs);
    for (c, r) in cs.iter().zip(&rs) {
        let Some(r) = r else { continue };
        tell_role(c.node, (r.role == "leader", r.term), known, roles);
    }
    let rows: Vec<serde_json::Value> = cs
        .iter()
        .zip(&rs)
        .map(|(c, r)| {
            let ip = c.place();
            match r {
                Some(r) => serde_json::json!([
                    format!("replica {}", c.node),
                    ip,
                    r.role,
                    r.term,
                    r.leader.map_or("-".to_string(), |l| format!("replica {l}")),
                    r.commit
                ]),
                None => {
                    serde_json::json!([format!("replica {}", c.node), ip, status::state(c), "-", "-", "-"])
                }
            }
        })
        .collect();
    *table.0.lock().expect("polled lock") = serde_json::json!({
        "title": "Replicas, as each says of itself",
        "columns": ["Replica", "Address", "Role", "Term", "Follows", "Commit index"],
        "rows": rows,
        "note": format!("INFO replication over RESP, asked every {} s; {}", POLL_EVERY.as_secs(), clock_time()),
    });
    Ok(())
}

/// Asks every voting-service server its `BOARD` and puts the board of the one furthest along
/// (the highest applied index: the others hold a prefix of the same log) in `table`; a server
/// whose role or term changed since `known` is told to `roles` as the line it would print.
fn poll_boards(
    docker: &Docker,
    name: &str,
    place: &status::Where,
    admin: &str,
    table: &Polled,
    known: &mut [Option<(bool, u64)>],
    roles: &RolesTx,
) -> Result<(), UserError> {
    let cs = place.containers(docker, name)?;
    let boards = status::ask_running(&cs, VOTE_PORT, |at| health::board(at, admin).ok());
    for (c, b) in cs.iter().zip(&boards) {
        let Some(b) = b else { continue };
        tell_role(c.node, (b["role"] == "leader", b["term"].as_u64().unwrap_or(0)), known, roles);
    }
    let best = boards.iter().flatten().max_by_key(|b| b["applied"].as_u64().unwrap_or(0));
    let mut t = match best {
        Some(b) => board_table(b),
        None => serde_json::json!({
            "title": "Members and questions",
            "columns": ["Question", "Option", "Votes", "Percent", "Decided"],
            "rows": [],
            "note": "no server answered BOARD",
        }),
    };
    let answered = boards.iter().flatten().count();
    let note = t["note"].as_str().unwrap_or_default().to_string();
    t["note"] = serde_json::json!(format!(
        "{note}; BOARD answered by {answered} of {} servers, asked every {} s; {}",
        cs.len(),
        POLL_EVERY.as_secs(),
        clock_time()
    ));
    *table.0.lock().expect("polled lock") = t;
    Ok(())
}

/// What the judging thread watches: the cluster, and its logs as followed.
struct Watched {
    docker: Docker,
    cf: ClusterFile,
    name: String,
    place: status::Where,
    followed: Followed,
}

/// The checker's verdict on the logs as followed so far, as the page shows it. A log is
/// whole up to its last line read (the lines come in the order of their times: see
/// [`history::cut`]), or whole if its container had stopped before the containers were
/// listed and its log was read to the end since.
fn judge_now(w: &Watched) -> Result<serde_json::Value, UserError> {
    let Watched { docker, cf, name, place, followed } = w;
    let cs = place.containers(docker, name)?;
    let logs: Vec<history::NodeLog> = {
        let followed = followed.lock().expect("followed lock");
        cs.iter()
            .filter_map(|c| {
                let f = followed.get(c.node)?;
                let mut log = f.log.clone();
                let stopped = matches!(c.state.as_str(), "exited" | "dead" | "created");
                if !(stopped && (f.to_the_end || c.state == "created")) {
                    log.whole_until = Some(log.last_line().unwrap_or(0));
                }
                Some(log)
            })
            .collect()
    };
    let ended = cs.len() == cf.nodes.len() && cs.iter().all(|c| c.state == "exited" && c.exit_code == 0);
    let run = if ended { Run::Ended } else { Run::Going };
    let summary = history::judge(cf, &logs, REPRODUCE, run)?;
    let mut v = verdicts(&summary, REPRODUCE);
    v["so_far"] = serde_json::json!(run == Run::Going);
    v["judged_at"] = serde_json::json!(clock_time());
    // How much of the history the verdict is on: the observations up to the cut.
    let cut = history::cut(&logs).unwrap_or(u64::MAX);
    let judged: usize = logs.iter().map(|l| l.obs.iter().filter(|(at, _)| *at <= cut).count()).sum();
    v["observations_judged"] = serde_json::json!(judged);
    Ok(v)
}

/// The wall-clock time of day, `HH:MM:SS` UTC.
fn clock_time() -> String {
    let s = agora_net::clock::unix_ns() / 1_000_000_000;
    format!("{:02}:{:02}:{:02} UTC", s / 3600 % 24, s / 60 % 60, s % 60)
}

/// A container as the controls need it now.
struct Now {
    running: bool,
    paused: bool,
    pid: u64,
    ip: Option<IpAddr>,
}

fn now(docker: &Docker, container: &str) -> Result<Now, UserError> {
    let format = "{{.State.Running}} {{.State.Paused}} {{.State.Pid}} \
                  {{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}";
    let out = docker.docker(&["inspect", "--format", format, container])?;
    let text = String::from_utf8_lossy(&out);
    let mut f = text.split_whitespace();
    Ok(Now {
        running: f.next() == Some("true"),
        paused: f.next() == Some("true"),
        pid: f.next().and_then(|p| p.parse().ok()).unwrap_or(0),
        ip: f.next().and_then(|ip| ip.parse().ok()),
    })
}

/// The page's controls, applied to the containers: what is in force, to undo on the way out.
struct Steer<'a> {
    docker: &'a Docker,
    containers: Vec<String>,
    /// The links cut now, `(from, to)`.
    cut: BTreeSet<(usize, usize)>,
    /// Each node's address while its container runs.
    ips: Vec<Option<IpAddr>>,
    /// Containers this view killed and has not started again.
    killed: BTreeSet<usize>,
    /// Containers this view paused and has not resumed.
    paused: BTreeSet<usize>,
}

/// Applies the page's orders until the page's server ends; then undoes what is in force and
/// says what it undid.
fn steer(
    docker: &Docker,
    containers: Vec<String>,
    mut orders: tokio::sync::mpsc::Receiver<Order>,
    mut on_fault: OnFault,
) -> Vec<String> {
    let n = containers.len();
    let mut s = Steer {
        docker,
        containers,
        cut: BTreeSet::new(),
        ips: vec![None; n],
        killed: BTreeSet::new(),
        paused: BTreeSet::new(),
    };
    // Rules a view ended by SIGKILL left behind are cleared before the page cuts anything.
    if let Err(e) = s.write_filters() {
        eprintln!("agora: {e}");
    }
    while let Some(Order { fault, done }) = orders.blocking_recv() {
        let answer = s.apply(&fault).map(|(happened, text)| {
            on_fault(agora_net::clock::unix_ns(), &happened, &[]);
            text
        });
        let _ = done.send(answer);
    }
    s.undo()
}

impl Steer<'_> {
    fn now(&mut self, i: usize) -> Result<Now, String> {
        let now = now(self.docker, &self.containers[i]).map_err(|e| e.msg)?;
        // A stopped container sends nothing, and Docker may give its address to another.
        self.ips[i] = if now.running { now.ip } else { None };
        Ok(now)
    }

    fn docker(&self, args: &[&str]) -> Result<(), String> {
        self.docker.docker(args).map(|_| ()).map_err(|e| e.msg)
    }

    /// Applies one fault: what happened and what was done, or why not.
    fn apply(&mut self, fault: &Fault) -> Result<(Happened, String), String> {
        let name = |i: usize, c: &str| format!("node {i} (container {})", &c[..c.len().min(12)]);
        match *fault {
            Fault::Crash(id) | Fault::Restart(id) | Fault::Pause(id) | Fault::Resume(id) => {
                let i = id.index();
                let c = self.containers.get(i).cloned().ok_or_else(|| format!("no node {id}"))?;
                let now = self.now(i)?;
                let (what, text) = match fault {
                    Fault::Crash(_) if !now.running => return Err(format!("{} is not running", name(i, &c))),
                    Fault::Crash(_) => {
                        self.docker(&["kill", "--signal", "KILL", &c])?;
                        self.killed.insert(i);
                        self.paused.remove(&i);
                        (Lifecycle::Crashed, format!("{} killed (docker kill --signal KILL)", name(i, &c)))
                    }
                    Fault::Restart(_) if now.running => {
                        return Err(format!("{} is running: a crashed node restarts", name(i, &c)))
                    }
                    Fault::Restart(_) => {
                        self.docker(&["start", &c])?;
                        self.killed.remove(&i);
                        // Its new network namespace has no filters, and it may have another
                        // address, which the others' filters must name.
                        self.now(i)?;
                        self.write_filters()?;
                        (Lifecycle::Restarted, format!("{} started again on its volume", name(i, &c)))
                    }
                    Fault::Pause(_) if !now.running || now.paused => {
                        return Err(format!(
                            "{} is not running unpaused: only a running node pauses",
                            name(i, &c)
                        ))
                    }
                    Fault::Pause(_) => {
                        self.docker(&["pause", &c])?;
                        self.paused.insert(i);
                        (Lifecycle::Paused, format!("{} paused (docker pause)", name(i, &c)))
                    }
                    _ if !now.paused => return Err(format!("{} is not paused", name(i, &c))),
                    _ => {
                        self.docker(&["unpause", &c])?;
                        self.paused.remove(&i);
                        (Lifecycle::Resumed, format!("{} resumed (docker unpause)", name(i, &c)))
                    }
                };
                Ok((Happened::Life(id, what), text))
            }
            Fault::Cut { from, to } => {
                self.cut.insert((from.index(), to.index()));
                self.write_filters()?;
                let text = format!("link {from} → {to} cut: node {to} drops what node {from} sends it");
                Ok((Happened::Cut { from, to }, text))
            }
            Fault::Partition(ref side) => {
                let inside: BTreeSet<usize> = side.iter().map(|i| i.index()).collect();
                for &a in &inside {
                    for b in (0..self.containers.len()).filter(|b| !inside.contains(b)) {
                        self.cut.insert((a, b));
                        self.cut.insert((b, a));
                    }
                }
                self.write_filters()?;
                Ok((
                    Happened::Partition(side.clone()),
                    "every link across the partition cut, both ways".into(),
                ))
            }
            Fault::Heal => {
                self.cut.clear();
                self.write_filters()?;
                Ok((Happened::Healed, "every link mended: the containers' filters removed".into()))
            }
        }
    }

    /// Writes every running container's filters again from the links cut now: in node `to`,
    /// a drop of the connections each `from` dialled to its peer port, both directions.
    fn write_filters(&mut self) -> Result<(), String> {
        for i in 0..self.containers.len() {
            self.now(i)?;
        }
        for to in 0..self.containers.len() {
            let now = self.now(to)?;
            if !now.running {
                continue;
            }
            let from: Vec<IpAddr> =
                self.cut.iter().filter(|(_, t)| *t == to).filter_map(|(f, _)| self.ips[*f]).collect();
            let rules: Vec<Vec<String>> = from.into_iter().flat_map(cut_rules).collect();
            Faults::write_chain(now.pid, CHAIN, &rules, true)
                .map_err(|e| format!("node {to}'s packet filters: {}", e.msg))?;
        }
        Ok(())
    }

    /// Undoes what the page did that is still in force; what it did, one phrase each.
    fn undo(mut self) -> Vec<String> {
        let mut did = Vec::new();
        if !self.cut.is_empty() {
            self.cut.clear();
            match self.write_filters() {
                Ok(()) => did.push("links mended".to_string()),
                Err(e) => eprintln!("agora: could not mend the links: {e}"),
            }
        }
        for i in std::mem::take(&mut self.paused) {
            match self.docker(&["unpause", &self.containers[i]]) {
                Ok(()) => did.push(format!("node {i} resumed")),
                Err(e) => eprintln!("agora: could not resume node {i}: {e}"),
            }
        }
        for i in std::mem::take(&mut self.killed) {
            match self.docker(&["start", &self.containers[i]]) {
                Ok(()) => did.push(format!("node {i} started again")),
                Err(e) => eprintln!("agora: could not start node {i} again: {e}"),
            }
        }
        did
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_s_leadership_lines_are_its_roles() {
        let parse = leadership(|term, leads| match leads {
            true => RaftObs::Leader { term },
            false => RaftObs::SteppedDown { term },
        });
        let line = |s: &str| parse(&mut serde_json::from_str(s).unwrap());
        assert_eq!(line(r#"{"node":1,"leader":1,"term":4}"#), Some(RaftObs::Leader { term: 4 }));
        assert_eq!(line(r#"{"node":1,"stepped_down":5}"#), Some(RaftObs::SteppedDown { term: 5 }));
        assert_eq!(line(r#"{"node":1,"listening":"0.0.0.0:7000"}"#), None);
        assert_eq!(line(r#"{"node":1,"leader":1}"#), None, "no term: no role");
        assert_eq!(line(r#"{"node":1,"clock":{"skew_ms":0,"drift_ppm":0}}"#), None);
    }

    #[test]
    fn a_view_of_a_history_it_does_not_have_judges_nothing_and_says_where_it_is_judged() {
        for system in ["key-value", "vote"] {
            let v = unjudged(system);
            let ps = v["properties"].as_array().unwrap();
            assert!(ps.iter().all(|p| p["verdict"] == "not judged"), "{v}");
            assert!(
                ps.iter().all(|p| p["detail"].as_str().unwrap().contains("agora cluster nemesis")),
                "{v}"
            );
            assert_eq!(v["so_far"], true);
        }
    }
}
