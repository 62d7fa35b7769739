//! `agora up`: every node of a cluster file as a local child process (`agora node --json`),
//! each handed a socket bound here; their reports gathered into one summary.

use super::shared::repro;
use super::shared::tcp::{interrupted, runtime};
use super::shared::{exit_code, print};
use crate::cli::UpArgs;
use crate::cluster_file::ClusterFile;
use crate::error::{UserError, EXIT_STORAGE};
use agora_core::{Protocol, RunSummary, Setup};
use agora_net::store::{OpenMode, Store};
use agora_net::{hand_down_listener, report, Gathered, NodeOutput, LISTEN_FD};
use agora_protocols::{Driver, Params};
use std::net::SocketAddr;
use std::path::PathBuf;

struct Up {
    config: PathBuf,
    /// Whether the nodes' databases are created (a new cluster) or must exist.
    new: bool,
    /// Every node's socket, bound here and handed to its process as `--listen-fd 3`.
    listeners: Vec<std::net::TcpListener>,
    seed: u64,
    reproduce: String,
    events: bool,
}

impl Driver for Up {
    /// The summary, and how many nodes failed to report.
    type Output = Result<(RunSummary, usize), UserError>;

    fn run<S: Setup>(self, setup: S) -> Self::Output {
        runtime()?.block_on(async move {
            let exe = std::env::current_exe()
                .map_err(|e| UserError(format!("cannot find the agora binary: {e}")))?;
            let t0 = std::time::Instant::now();
            let nodes = self.listeners.len();
            let children = (0..nodes).map(|id| self.spawn(&exe, id)).collect::<Result<Vec<_>, _>>()?;
            let ends = wait_all(children, self.events).await?;
            let (g, missing) = gather::<S>(ends, t0.elapsed().as_secs_f64() * 1e3);
            Ok((report::summarize(&setup, self.seed, g, &self.reproduce), missing))
        })
    }
}

/// The observations of a setup's nodes.
type Obs<S> = <<S as Setup>::Node as Protocol>::Obs;

impl Up {
    /// Starts node `id` as `agora node --json`, its socket handed down at [`LISTEN_FD`].
    fn spawn(&self, exe: &std::path::Path, id: usize) -> Result<tokio::process::Child, UserError> {
        let mut cmd = tokio::process::Command::new(exe);
        cmd.args(["node", "--json", "--id", &id.to_string(), "--config"]).arg(&self.config);
        if self.new {
            cmd.arg("--new");
        }
        // Each node reports when it is idle and stops when `up` closes its stdin.
        cmd.args(["--listen-fd", &LISTEN_FD.to_string(), "--supervised"]);
        if self.events {
            cmd.arg("--events");
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

/// Waits for every node process to end, in node order. The nodes stop together: once every
/// node still running has said it is idle, `up` closes their stdins (replicas that stopped one
/// at a time would look crashed to the others). The first node that exits 2 (a mistake in the
/// cluster or its set-up) or 3 (its storage) stops the others, which cannot succeed without
/// it, and its mistake is the result; an interrupt stops them all, and their reports so far
/// are gathered.
async fn wait_all(
    mut children: Vec<tokio::process::Child>,
    events: bool,
) -> Result<Vec<std::io::Result<ChildEnd>>, UserError> {
    let nodes = children.len();
    let pids: Vec<u32> = children.iter().filter_map(|c| c.id()).collect();
    let terminate = |pids: &[u32]| {
        for pid in pids {
            // SAFETY: kill with a pid of our own child and a valid signal.
            unsafe { libc::kill(*pid as i32, libc::SIGTERM) };
        }
    };
    let mut stdins: Vec<_> = children.iter_mut().map(|c| c.stdin.take()).collect();
    let (mut idle, mut exited) = (vec![false; nodes], vec![false; nodes]);
    let (idle_tx, mut idle_rx) = tokio::sync::mpsc::unbounded_channel();
    let (done_tx, mut done) = tokio::sync::mpsc::unbounded_channel();
    for (id, child) in children.into_iter().enumerate() {
        let tx = done_tx.clone();
        let idle_tx = idle_tx.clone();
        let on_idle = move |is_idle| {
            let _ = idle_tx.send((id, is_idle));
        };
        tokio::spawn(async move {
            let _ = tx.send((id, wait_child(child, on_idle, events).await));
        });
    }
    drop((done_tx, idle_tx));
    let mut outputs: Vec<Option<std::io::Result<ChildEnd>>> = (0..nodes).map(|_| None).collect();
    let mut mistake = None;
    let interrupt = interrupted();
    tokio::pin!(interrupt);
    let mut interrupted_once = false;
    loop {
        tokio::select! {
            next = done.recv() => match next {
                Some((id, out)) => {
                    if let Ok(end) = &out {
                        let code = end.status.code().unwrap_or(0);
                        if (code == 2 || code == 3) && mistake.is_none() {
                            mistake = Some((code as u8, format!("node {id}: {}", end.mistake)));
                            terminate(&pids);
                        }
                    }
                    outputs[id] = Some(out);
                    exited[id] = true;
                }
                None => break,
            },
            Some((id, is_idle)) = idle_rx.recv() => idle[id] = is_idle,
            _ = &mut interrupt, if !interrupted_once => {
                interrupted_once = true;
                terminate(&pids);
            }
        }
        if (0..nodes).all(|i| idle[i] || exited[i]) {
            // A closed stdin is each node's cue to stop (see `agora node --supervised`).
            stdins.iter_mut().for_each(|s| drop(s.take()));
        }
    }
    if let Some((code, msg)) = mistake {
        return Err(UserError { msg, code });
    }
    Ok(outputs.into_iter().map(|o| o.expect("every child reported its end")).collect())
}

/// The nodes' reports gathered into one run, and how many nodes gave none (each said on
/// stderr). `wall_ms` is used only if no node says when it last handled an event.
pub(crate) fn gather<S: Setup>(
    ends: Vec<std::io::Result<ChildEnd>>,
    wall_ms: f64,
) -> (Gathered<Obs<S>>, usize) {
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
    (g, nodes - starts.len())
}

/// How a node process ended: its status, its stdout (the JSON summary), and the last
/// `agora: ...` line of its stderr (its one-line mistake when it exits 2).
pub(crate) struct ChildEnd {
    status: std::process::ExitStatus,
    stdout: Vec<u8>,
    mistake: String,
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
        }
    }
}

/// Waits for a node process, passing its log lines through to our stderr as they come, except
/// its final `agora: ` line, which `up` reports in its own words, and its reports of being idle
/// or busy, which go to `on_idle` (and through only with `--events`).
async fn wait_child(
    mut child: tokio::process::Child,
    on_idle: impl Fn(bool) + Send + 'static,
    events: bool,
) -> std::io::Result<ChildEnd> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let mut stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let forward = tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        let mut mistake = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            match line.strip_prefix("agora: ") {
                Some(m) => {
                    if !mistake.is_empty() {
                        eprintln!("agora: {mistake}");
                    }
                    mistake = m.to_string();
                }
                None => {
                    let idle = idle_report(&line);
                    if let Some(is_idle) = idle {
                        on_idle(is_idle);
                    }
                    if idle.is_none() || events {
                        eprintln!("{line}");
                    }
                }
            }
        }
        mistake
    });
    let mut out = Vec::new();
    stdout.read_to_end(&mut out).await?;
    let status = child.wait().await?;
    let mistake = forward.await.unwrap_or_default();
    if !status.success() && !matches!(status.code(), Some(2 | 3)) && !mistake.is_empty() {
        eprintln!("agora: {mistake}");
    }
    Ok(ChildEnd { status, stdout: out, mistake })
}

/// The idleness a `--supervised` node reports in an `event {"idle":BOOL,"node":ID}` line.
fn idle_report(line: &str) -> Option<bool> {
    let json = line.strip_prefix("event ")?;
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
        listeners,
        seed: cf.seed,
        reproduce: repro::command(argv, cf.seed),
        events: args.events,
    };
    let (summary, missing) = agora_protocols::dispatch(&cf.protocol, &params, driver)??;
    print(&summary, args.json);
    if missing > 0 {
        eprintln!("agora: {missing} node(s) did not report; their messages are missing from the summary");
        return Ok(1);
    }
    Ok(exit_code(&summary))
}
