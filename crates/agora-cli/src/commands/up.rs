//! `agora up`: every node of a cluster file as a local child process (`agora node --json`),
//! each handed a socket bound here; their reports gathered into one summary.
//!
//! With `--ui ADDR` the nodes also print their observations and, every sample, their message
//! counters (`agora node --events --sample-ms`): `up` reads them from the nodes' stderr and
//! feeds the live view (`shared::ui::sampler`, as for the runs of one process). The page's
//! controls act on the processes ([`Supervisor`]): crash is SIGKILL, restart starts the node
//! again from its database on the socket `up` still holds, pause is SIGSTOP and resume
//! SIGCONT. The links between the processes cannot be told to drop anything from here, so
//! the page offers no cut or partition and says why. What the controls did reaches the
//! checker as lifecycle events, as the crashes of a history read back from logs do, and the
//! observations of a process killed from the page are those it printed as `event` lines
//! before the kill (it gives no report); a node crashed and left so is not waited for (its
//! peers' idleness ends the run) and its missing report is expected.

use super::shared::repro;
use super::shared::tcp::{interrupted, runtime};
use super::shared::ui::sampler::{verdicts, Counts, Flags, Linger, LiveRun, Plain};
use super::shared::{exit_code, print};
use crate::cli::{LiveArgs, UpArgs};
use crate::cluster_file::ClusterFile;
use crate::error::{UserError, EXIT_STORAGE};
use agora_core::{Lifecycle, NodeId, Observation, Protocol, RunSummary, Setup};
use agora_net::faults::OnFault;
use agora_net::store::{OpenMode, Store};
use agora_net::{hand_down_listener, report, Fault, Gathered, Happened, NodeOutput, Order, LISTEN_FD};
use agora_protocols::{Driver, Params};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::process::{Child, ChildStdin};
use tokio::sync::mpsc;

/// The page's controls of node processes.
const VERBS: &[&str] = &["crash", "restart", "pause", "resume", "release"];
/// What the page says of the controls it does not offer.
const NO_LINKS: &str = "Cutting a link and partitioning are not offered: each node runs in a process of its \
                        own, and its links to the others cannot be told to drop messages from here.";
/// How often the nodes print their counts for the view (`agora node --sample-ms`).
const SAMPLE_MS: u64 = 500;

struct Up {
    config: PathBuf,
    /// Whether the nodes' databases are created (a new cluster) or must exist.
    new: bool,
    /// The nodes keep databases: one crashed from the page can restart from its own.
    persists: bool,
    /// Every node's socket, bound here and handed to its process as `--listen-fd 3`.
    listeners: Vec<std::net::TcpListener>,
    seed: u64,
    reproduce: String,
    events: bool,
    live: LiveArgs,
}

impl Driver for Up {
    /// The summary, how many nodes failed to report unexpectedly (a node crashed from the page
    /// and not restarted is expected to give none), and the page if `--ui-linger` keeps it.
    type Output = Result<(RunSummary, usize, Linger), UserError>;

    fn run<S: Setup>(self, setup: S) -> Self::Output {
        let rt = runtime()?;
        let nodes = self.listeners.len();
        let mut live = match &self.live.ui {
            Some(addr) => {
                let flags = Flags {
                    addr,
                    linger: self.live.ui_linger,
                    hold: self.live.ui_hold,
                    verbs: VERBS,
                    unavailable: Some(NO_LINKS),
                };
                Some(rt.block_on(LiveRun::<Obs<S>>::start(flags, nodes, Box::new(Plain), |_| true))?)
            }
            None => None,
        };
        let (summary, missing) = rt.block_on(async {
            let exe = std::env::current_exe()
                .map_err(|e| UserError(format!("cannot find the agora binary: {e}")))?;
            let t0 = std::time::Instant::now();
            let feed = live.as_mut().map(|l| feed::<Obs<S>>(l, nodes));
            let controls = live.as_mut().and_then(LiveRun::take_controls);
            let Ended { mut ends, lifecycle, mut earlier } =
                Supervisor::start(&self, exe, feed)?.run(controls).await?;
            let left_crashed = left_crashed(nodes, &lifecycle);
            for id in left_crashed.iter().enumerate().filter(|(_, c)| **c).map(|(i, _)| i) {
                eprintln!("agora: node {id} was crashed from the page and not restarted: it gave no report");
            }
            let last: Vec<_> = ends
                .iter_mut()
                .map(|e| e.as_mut().map(|e| std::mem::take(&mut e.observed)).unwrap_or_default())
                .collect();
            let mut g = gather::<S>(ends, t0.elapsed().as_secs_f64() * 1e3);
            let missing = (0..nodes).filter(|&i| !g.reported[i] && !left_crashed[i]).count();
            // What the killed processes observed, from their event lines: the earlier
            // incarnations of restarted nodes, and the last one of a node that gave no report.
            for (i, (before, last)) in earlier.iter_mut().zip(last).enumerate() {
                let lost = if g.reported[i] { Vec::new() } else { last };
                for (at, o) in before.drain(..).chain(lost) {
                    if let Ok(o) = serde_json::from_value::<Obs<S>>(o) {
                        g.observations.push((at, NodeId(i as u32), o));
                    }
                }
            }
            g.lifecycle = lifecycle;
            Ok::<_, UserError>((report::summarize(&setup, self.seed, g, &self.reproduce), missing))
        })?;
        let linger = match live {
            Some(live) => {
                let lingers = live.lingers();
                let snapshots = rt.block_on(live.finish_with(verdicts(&summary, &self.reproduce)));
                Linger::new(lingers.then_some((rt, snapshots)))
            }
            None => Linger::new(None),
        };
        Ok((summary, missing, linger))
    }
}

/// The observations of a setup's nodes.
type Obs<S> = <<S as Setup>::Node as Protocol>::Obs;

/// The lifecycle events the page's controls caused: `(Unix ns, node, event)`, in time order.
type Lifecycles = Vec<(u64, NodeId, Lifecycle)>;

/// How the node processes of a run ended (see [`Supervisor::run`]).
struct Ended {
    /// How each node's last process ended.
    ends: Vec<std::io::Result<ChildEnd>>,
    /// What the page's controls did.
    lifecycle: Lifecycles,
    /// Each node's observations in its incarnations before the last.
    earlier: Vec<Vec<(u64, serde_json::Value)>>,
}

/// Which nodes the page crashed last (no restart after): each gave no report, as expected.
fn left_crashed(nodes: usize, lifecycle: &Lifecycles) -> Vec<bool> {
    let mut crashed = vec![false; nodes];
    for &(_, id, event) in lifecycle {
        match event {
            Lifecycle::Crashed => crashed[id.index()] = true,
            Lifecycle::Restarted => crashed[id.index()] = false,
            _ => {}
        }
    }
    crashed
}

/// Reads one node's `event` line (its JSON), for the live view.
type OnEvent = Arc<dyn Fn(usize, &str) + Send + Sync>;

/// The live view's reader of the nodes' `event` lines: each node's counts to the sampler's
/// table (`Counts`, the latest kept), its observations to the sampler's queue. A line that is
/// not what a node of this cluster prints is ignored.
fn feed<O: Observation>(live: &mut LiveRun<O>, nodes: usize) -> OnEvent {
    let counts = Arc::new(Mutex::new(vec![None; nodes]));
    live.remote(counts.clone());
    let observe = live.observer();
    Arc::new(move |id: usize, json: &str| {
        let Ok(mut v) = serde_json::from_str::<serde_json::Value>(json) else { return };
        if v.get("node").and_then(serde_json::Value::as_u64) != Some(id as u64) {
            return;
        }
        if let Some(c) = v.get("counts") {
            let pid = v.get("pid").and_then(serde_json::Value::as_u64).filter(|p| *p != 0);
            if let Some(c) = pid.and_then(|pid| Counts::from_json(c, pid, nodes)) {
                counts.lock().expect("counts lock")[id] = Some(c);
            }
        } else if let Some(o) = v.get_mut("obs") {
            if let Ok(o) = serde_json::from_value::<O>(o.take()) {
                observe(NodeId(id as u32), o);
            }
        }
    })
}

impl Up {
    /// Starts node `id` as `agora node --json`, its socket handed down at [`LISTEN_FD`];
    /// `new`: its database is created.
    fn spawn(&self, exe: &Path, id: usize, new: bool) -> Result<Child, UserError> {
        let mut cmd = tokio::process::Command::new(exe);
        cmd.args(["node", "--json", "--id", &id.to_string(), "--config"]).arg(&self.config);
        if new {
            cmd.arg("--new");
        }
        // Each node reports when it is idle and stops when `up` closes its stdin.
        cmd.args(["--listen-fd", &LISTEN_FD.to_string(), "--supervised"]);
        if self.events || self.live.ui.is_some() {
            cmd.arg("--events");
        }
        if self.live.ui.is_some() {
            cmd.args(["--sample-ms", &SAMPLE_MS.to_string()]);
        }
        cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).kill_on_drop(true);
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.listeners[id]);
        // SAFETY: prctl is async-signal-safe, and so is hand_down_listener. The child
        // asks to receive SIGTERM if this process dies, so no node outlives `agora up`
        // even if it is killed; and it gets its listening socket at LISTEN_FD.
        unsafe {
            cmd.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                hand_down_listener(fd)
            });
        }
        cmd.stderr(std::process::Stdio::piped());
        cmd.spawn().map_err(|e| UserError(format!("cannot start node {id}: {e}")))
    }
}

/// Sends `signal` to process `pid`, one of our children.
fn signal(pid: u32, signal: i32) {
    // SAFETY: kill with a pid of our own child and a valid signal.
    unsafe { libc::kill(pid as i32, signal) };
}

/// The node processes of a run: each one's current process, whether it is idle, paused or
/// has exited, and how each ended. The nodes stop together: once every node still running
/// has said it is idle (and none is paused, and the page does not hold the run), `up` closes
/// their stdins (replicas that stopped one at a time would look crashed to the others). The
/// first node that exits 2 (a mistake in the cluster or its set-up) or 3 (its storage) stops
/// the others, which cannot succeed without it, and its mistake is the result; an interrupt
/// stops them all, and their reports so far are gathered.
struct Supervisor<'a> {
    up: &'a Up,
    exe: PathBuf,
    on_event: Option<OnEvent>,
    pids: Vec<u32>,
    stdins: Vec<Option<ChildStdin>>,
    idle: Vec<bool>,
    exited: Vec<bool>,
    paused: Vec<bool>,
    /// The stdins are closed: the nodes are stopping.
    stopping: bool,
    /// What the page's controls did, for the checker.
    lifecycle: Lifecycles,
    /// Each node's observations in its incarnations before the current one (crashed and
    /// restarted from the page), from their `event` lines.
    earlier: Vec<Vec<(u64, serde_json::Value)>>,
    outputs: Vec<Option<std::io::Result<ChildEnd>>>,
    done_tx: mpsc::UnboundedSender<(usize, std::io::Result<ChildEnd>)>,
    done: mpsc::UnboundedReceiver<(usize, std::io::Result<ChildEnd>)>,
    idle_tx: mpsc::UnboundedSender<(usize, bool)>,
    idle_rx: mpsc::UnboundedReceiver<(usize, bool)>,
}

impl<'a> Supervisor<'a> {
    /// Starts every node.
    fn start(up: &'a Up, exe: PathBuf, on_event: Option<OnEvent>) -> Result<Self, UserError> {
        let nodes = up.listeners.len();
        let (done_tx, done) = mpsc::unbounded_channel();
        let (idle_tx, idle_rx) = mpsc::unbounded_channel();
        let mut s = Supervisor {
            up,
            exe,
            on_event,
            pids: vec![0; nodes],
            stdins: (0..nodes).map(|_| None).collect(),
            idle: vec![false; nodes],
            exited: vec![false; nodes],
            paused: vec![false; nodes],
            stopping: false,
            lifecycle: Vec::new(),
            earlier: vec![Vec::new(); nodes],
            outputs: (0..nodes).map(|_| None).collect(),
            done_tx,
            done,
            idle_tx,
            idle_rx,
        };
        for id in 0..nodes {
            s.launch(id, up.new)?;
        }
        Ok(s)
    }

    /// Starts node `id`'s process and a task that waits for it.
    fn launch(&mut self, id: usize, new: bool) -> Result<(), UserError> {
        let mut child = self.up.spawn(&self.exe, id, new)?;
        self.pids[id] = child.id().unwrap_or(0);
        self.stdins[id] = child.stdin.take();
        (self.idle[id], self.exited[id], self.paused[id]) = (false, false, false);
        if let Some(Ok(end)) = self.outputs[id].take() {
            self.earlier[id].extend(end.observed);
        }
        let (tx, idle_tx, events) = (self.done_tx.clone(), self.idle_tx.clone(), self.up.events);
        let keep = self.up.live.ui.is_some();
        let on_event = self.on_event.clone();
        tokio::spawn(async move {
            let on_idle = move |is_idle| {
                let _ = idle_tx.send((id, is_idle));
            };
            let on_event = move |line: &str| {
                if let Some(f) = &on_event {
                    f(id, line);
                }
            };
            let _ = tx.send((id, wait_child(child, on_idle, on_event, (events, keep)).await));
        });
        Ok(())
    }

    fn running(&self) -> impl Iterator<Item = u32> + '_ {
        self.pids.iter().zip(&self.exited).filter(|(_, e)| !**e).map(|(p, _)| *p)
    }

    /// Every node still running gets SIGTERM (and SIGCONT, if paused: a stopped process
    /// would hold its SIGTERM).
    fn terminate(&self) {
        for pid in self.running() {
            signal(pid, libc::SIGTERM);
            signal(pid, libc::SIGCONT);
        }
    }

    /// Waits for every node process to end, in node order, applying the page's `controls`
    /// meanwhile: how each ended, and what the controls did. A node crashed and not restarted
    /// has exited: the others' idleness alone ends the run.
    async fn run(mut self, controls: Option<agora_net::Controls>) -> Result<Ended, UserError> {
        let nodes = self.pids.len();
        let (mut orders, hold, mut on_fault) = match controls {
            Some(c) => (Some(c.orders), c.hold, Some(c.on_fault)),
            None => (None, Arc::new(AtomicBool::new(false)), None),
        };
        let mut mistake = None;
        let interrupt = interrupted();
        tokio::pin!(interrupt);
        let mut interrupted_once = false;
        // Only to notice that the page let a held run end.
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            let held = hold.load(Ordering::Relaxed);
            if self.exited.iter().all(|e| *e) && !held {
                break;
            }
            tokio::select! {
                Some((id, out)) = self.done.recv() => {
                    if let Ok(end) = &out {
                        let code = end.status.code().unwrap_or(0);
                        if (code == 2 || code == 3) && mistake.is_none() {
                            mistake = Some((code as u8, format!("node {id}: {}", end.mistake)));
                            hold.store(false, Ordering::Relaxed);
                            self.terminate();
                        }
                    }
                    self.outputs[id] = Some(out);
                    self.exited[id] = true;
                    self.stdins[id] = None;
                }
                Some((id, is_idle)) = self.idle_rx.recv() => self.idle[id] = is_idle,
                Some(Order { fault, done }) = async { orders.as_mut()?.recv().await } => {
                    let answer = self.apply(fault, on_fault.as_mut());
                    let _ = done.send(answer);
                }
                _ = &mut interrupt, if !interrupted_once => {
                    interrupted_once = true;
                    hold.store(false, Ordering::Relaxed);
                    self.terminate();
                }
                _ = tick.tick() => {}
            }
            let quiet = (0..nodes).all(|i| self.idle[i] || self.exited[i]);
            if quiet && !self.paused.contains(&true) && !hold.load(Ordering::Relaxed) {
                // A closed stdin is each node's cue to stop (see `agora node --supervised`).
                self.stopping = true;
                self.stdins.iter_mut().for_each(|s| drop(s.take()));
            }
        }
        if let Some((code, msg)) = mistake {
            return Err(UserError { msg, code });
        }
        let ends = self.outputs.into_iter().map(|o| o.expect("every child reported its end")).collect();
        Ok(Ended { ends, lifecycle: self.lifecycle, earlier: self.earlier })
    }

    /// Applies one of the page's controls to the processes: what was done, or why not.
    fn apply(&mut self, fault: Fault, on_fault: Option<&mut OnFault>) -> Result<String, String> {
        let id = match fault {
            Fault::Crash(id) | Fault::Restart(id) | Fault::Pause(id) | Fault::Resume(id) => id,
            _ => return Err(NO_LINKS.to_string()),
        };
        let i = id.index();
        if i >= self.pids.len() {
            return Err(format!("no node {id}"));
        }
        // A restart is noted before the new process can observe anything.
        let before = agora_net::clock::unix_ns();
        let (happened, text) = match fault {
            Fault::Crash(_) => {
                if self.exited[i] {
                    return Err(format!("node {id} is not running"));
                }
                signal(self.pids[i], libc::SIGKILL);
                self.paused[i] = false;
                (Lifecycle::Crashed, format!("node {id} killed (SIGKILL to process {})", self.pids[i]))
            }
            Fault::Restart(_) => {
                if !self.exited[i] {
                    return Err(format!(
                        "node {id} is running (a crashed node restarts once its process has ended)"
                    ));
                }
                if self.stopping {
                    return Err("the run is ending: the nodes are stopping".into());
                }
                if !self.up.persists {
                    return Err(format!(
                        "node {id} has no database (the cluster file sets no data_dir): it would restart empty"
                    ));
                }
                self.launch(i, false).map_err(|e| e.msg)?;
                let text = format!("node {id} restarted from its database (process {})", self.pids[i]);
                (Lifecycle::Restarted, text)
            }
            _ => {
                let pause = matches!(fault, Fault::Pause(_));
                if self.exited[i] {
                    return Err(format!("node {id} is not running: only a running node pauses"));
                }
                match (pause, self.paused[i]) {
                    (true, true) => return Err(format!("node {id} is already paused")),
                    (false, false) => return Err(format!("node {id} is not paused")),
                    (true, false) if self.stopping => {
                        return Err("the run is ending: the nodes are stopping".into())
                    }
                    _ => {}
                }
                self.paused[i] = pause;
                signal(self.pids[i], if pause { libc::SIGSTOP } else { libc::SIGCONT });
                let (what, name) =
                    if pause { (Lifecycle::Paused, "SIGSTOP") } else { (Lifecycle::Resumed, "SIGCONT") };
                (what, format!("node {id}: {name} to process {}", self.pids[i]))
            }
        };
        // Any other action is noted once done: a killed process observed nothing after it.
        let now = if happened == Lifecycle::Restarted { before } else { agora_net::clock::unix_ns() };
        self.lifecycle.push((now, id, happened));
        if let Some(f) = on_fault {
            f(now, &Happened::Life(id, happened), &[]);
        }
        Ok(text)
    }
}

/// The nodes' reports gathered into one run (`Gathered::reported` says which gave one; each
/// that gave none is said on stderr). `wall_ms` is used only if no node says when it last
/// handled an event.
pub(crate) fn gather<S: Setup>(ends: Vec<std::io::Result<ChildEnd>>, wall_ms: f64) -> Gathered<Obs<S>> {
    let nodes = ends.len();
    let mut g = Gathered::new(nodes, "idle", wall_ms, 0.0, 0);
    let mut starts = Vec::new();
    let mut last_active = 0u64;
    for (id, out) in ends.into_iter().enumerate() {
        match out {
            Ok(o) if o.status.success() => match serde_json::from_slice::<NodeOutput<Obs<S>>>(&o.stdout) {
                Ok(node) => {
                    starts.push(node.started_unix_ns);
                    last_active = last_active.max(node.last_active_unix_ns);
                    if node.end != "idle" {
                        g.end = node.end.clone();
                    }
                    g.add_output(node);
                }
                Err(e) => eprintln!("agora: node {id} printed no readable summary: {e}"),
            },
            Ok(o) => eprintln!("agora: node {id} exited with {}", o.status),
            Err(e) => eprintln!("agora: node {id}: {e}"),
        }
    }
    g.started_unix_ns = starts.iter().copied().min().unwrap_or(0);
    // The run's wall time: from the first node's start to the last event any node
    // handled; the nodes' idle wait before stopping is not part of the work.
    if last_active > g.started_unix_ns {
        g.wall_ms = (last_active - g.started_unix_ns) as f64 / 1e6;
    }
    g
}

/// How a node process ended: its status, its stdout (the JSON summary), and the last
/// `agora: ...` line of its stderr (its one-line mistake when it exits 2).
pub(crate) struct ChildEnd {
    status: std::process::ExitStatus,
    stdout: Vec<u8>,
    mistake: String,
    /// `(Unix ns, observation)` the process printed as `event` lines, kept while the page's
    /// controls can kill it: what it observed, should it give no report.
    observed: Vec<(u64, serde_json::Value)>,
}

impl ChildEnd {
    /// A node that ran elsewhere (in a container) and exited with `code`, having printed
    /// `stdout`.
    pub(crate) fn exited(code: i64, stdout: Vec<u8>) -> ChildEnd {
        use std::os::unix::process::ExitStatusExt;
        ChildEnd {
            status: std::process::ExitStatus::from_raw(((code & 0xff) as i32) << 8),
            stdout,
            mistake: String::new(),
            observed: Vec::new(),
        }
    }
}

/// Waits for a node process, passing its log lines through to our stderr as they come, except
/// its final `agora: ` line, which `up` reports in its own words, and its `event` lines: its
/// reports of being idle or busy go to `on_idle`, every other event (observations and counts,
/// for the live view) to `on_event`, and all through only with `--events`. With `keep`, the
/// observations among them are kept in [`ChildEnd::observed`].
async fn wait_child(
    mut child: Child,
    on_idle: impl Fn(bool) + Send + 'static,
    on_event: impl Fn(&str) + Send + 'static,
    (events, keep): (bool, bool),
) -> std::io::Result<ChildEnd> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let mut stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let forward = tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        let mut mistake = String::new();
        let mut observed = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(m) = line.strip_prefix("agora: ") {
                if !mistake.is_empty() {
                    eprintln!("agora: {mistake}");
                }
                mistake = m.to_string();
                continue;
            }
            let Some(json) = line.strip_prefix("event ") else {
                eprintln!("{line}");
                continue;
            };
            match idle_report(json) {
                Some(is_idle) => on_idle(is_idle),
                None => {
                    if keep {
                        observed.extend(observation(json));
                    }
                    on_event(json)
                }
            }
            if events {
                eprintln!("{line}");
            }
        }
        (mistake, observed)
    });
    let mut out = Vec::new();
    stdout.read_to_end(&mut out).await?;
    let status = child.wait().await?;
    let (mistake, observed) = forward.await.unwrap_or_default();
    if !status.success() && !matches!(status.code(), Some(2 | 3)) && !mistake.is_empty() {
        eprintln!("agora: {mistake}");
    }
    Ok(ChildEnd { status, stdout: out, mistake, observed })
}

/// The time (Unix ns) and the observation of an `event {"node":..,"at":..,"obs":..}` line's
/// JSON, the observation as the protocol serializes it.
fn observation(json: &str) -> Option<(u64, serde_json::Value)> {
    let mut v = serde_json::from_str::<serde_json::Value>(json).ok()?;
    let at = v.get("at")?.as_u64()?;
    Some((at, v.get_mut("obs")?.take()))
}

/// The idleness a `--supervised` node reports in an `event {"idle":BOOL,"node":ID}` line's
/// JSON.
fn idle_report(json: &str) -> Option<bool> {
    if !json.contains("\"idle\":") {
        return None;
    }
    serde_json::from_str::<serde_json::Value>(json).ok()?.get("idle")?.as_bool()
}
/// What `agora up` can check before it starts any node, besides binding every address: the
/// data directory is a directory it can write to. A node process that still finds a mistake
/// exits 2 with one line (3 for its storage), which `up` reports as its own.
fn preflight(cf: &ClusterFile) -> Result<(), UserError> {
    if let Some(dir) = &cf.data_dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| UserError(format!("data directory {}: {e}", dir.display())))?;
        tempfile::tempfile_in(dir)
            .map_err(|e| UserError(format!("data directory {}: cannot write in it: {e}", dir.display())))?;
    }
    Ok(())
}

/// `agora up`: every node of a cluster file as a local child process.
pub fn up(args: &UpArgs, argv: &[String]) -> Result<i32, UserError> {
    let cf = ClusterFile::load(&args.config)?;
    let params: Params = cf.params()?;
    preflight(&cf)?;
    // Checked here once, rather than by every child.
    cf.secret(&args.config)?;
    let new = match &cf.data_dir {
        Some(dir) => {
            Store::cluster_mode(dir, cf.nodes.len())
                .map_err(|e| UserError { msg: e.to_string(), code: EXIT_STORAGE })?
                == OpenMode::New
        }
        None => true,
    };
    // Every node's socket is bound here, before any node starts: a node never dials a peer
    // that is not listening yet, and a port 0 becomes one the kernel chose, free for sure.
    let mut listeners = Vec::new();
    for (id, addr) in cf.addrs()?.into_iter().enumerate() {
        let l = std::net::TcpListener::bind(addr)
            .map_err(|e| UserError(format!("node {id}: cannot listen on {addr}: {e}")))?;
        listeners.push(l);
    }
    let bound: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().expect("bound")).collect();
    let temp;
    let config = if cf.addrs()? == bound {
        args.config.clone()
    } else {
        temp = tempfile::Builder::new()
            .prefix("agora-up-")
            .tempdir()
            .map_err(|e| UserError(format!("cannot create a temporary directory: {e}")))?;
        let path = temp.path().join("cluster.toml");
        std::fs::write(&path, cf.resolved(&bound)?)
            .map_err(|e| UserError(format!("cannot write {}: {e}", path.display())))?;
        path
    };
    let driver = Up {
        config,
        new,
        persists: cf.data_dir.is_some(),
        listeners,
        seed: cf.seed,
        reproduce: repro::command(argv, cf.seed),
        events: args.events,
        live: args.live.clone(),
    };
    let (summary, missing, linger) = agora_protocols::dispatch(&cf.protocol, &params, driver)??;
    print(&summary, args.json);
    let code = if missing > 0 {
        eprintln!("agora: {missing} node(s) did not report; their messages are missing from the summary");
        1
    } else {
        exit_code(&summary)
    };
    linger.wait();
    Ok(code)
}
