//! `agora run`, `agora node` and `agora up`: the same protocols over TCP — a whole cluster in
//! this process, one node per process from a cluster file, or every node of a cluster file as
//! local child processes.

use crate::cli::{NodeArgs, RunArgs, UpArgs};
use crate::cluster_file::ClusterFile;
use crate::error::{UserError, EXIT_STORAGE};
use crate::{output, repro, values};
use agora_core::{Protocol, RunSummary, Setup};
use agora_net::store::{OpenMode, Store};
use agora_net::{
    hand_down_listener, prometheus, report, run_local, run_node, Gathered, Lone, NetConfig, NodeOutput,
    NodeShared, ObsHook, Supervised, LISTEN_FD,
};
use agora_protocols::{Driver, Params};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, UserError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| UserError(format!("cannot start the async runtime: {e}")))
}

/// The gathered reports of an in-process run, and when its last event was handled.
type InProcess<S> = (Gathered<<<S as Setup>::Node as Protocol>::Obs>, u64);

/// Runs every node of `setup` in this process over loopback TCP, with databases in a
/// temporary directory, and gathers their reports; also returns when the last event was
/// handled (Unix ns). For commands that sweep many runs (`complexity`, `multicast`).
pub fn run_in_process<S: Setup>(
    setup: &Arc<S>,
    cluster: &str,
    seed: u64,
    max_time: Duration,
) -> Result<InProcess<S>, UserError> {
    let dir =
        tempfile::tempdir().map_err(|e| UserError(format!("cannot create a temporary directory: {e}")))?;
    let mut cfg = NetConfig::new(cluster, Vec::new());
    cfg.data_dir = Some(dir.path().to_path_buf());
    cfg.seed = seed;
    let out =
        runtime()?.block_on(run_local(setup.clone(), cfg, max_time, |_| {})).map_err(UserError::from_run)?;
    let last = out.last_active_unix_ns;
    Ok((Gathered::from_run(setup.nodes(), out), last))
}

fn parse_addr(s: &Option<String>) -> Result<Option<SocketAddr>, UserError> {
    s.as_ref()
        .map(|a| {
            a.parse().map_err(|_| {
                UserError(format!("--metrics-addr `{a}`: expected HOST:PORT, e.g. 127.0.0.1:9100"))
            })
        })
        .transpose()
}

/// Starts the Prometheus endpoint if asked, returning a hook that registers nodes with it.
async fn metrics_endpoint(
    addr: Option<SocketAddr>,
    ids: Vec<u32>,
) -> Result<impl FnOnce(Vec<Arc<NodeShared>>), UserError> {
    let list = match addr {
        Some(a) => {
            let (local, list) =
                prometheus::start(a).await.map_err(|e| UserError(format!("--metrics-addr {a}: {e}")))?;
            tracing::info!("metrics at http://{local}/metrics");
            Some(list)
        }
        None => None,
    };
    Ok(move |nodes: Vec<Arc<NodeShared>>| {
        if let Some(list) = list {
            *list.lock().expect("metrics nodes lock") = ids.into_iter().zip(nodes).collect();
        }
    })
}

fn print(summary: &RunSummary, json: bool) {
    if json {
        println!("{}", serde_json::to_string(summary).expect("summaries serialize"));
    } else {
        print!("{}", output::table(summary));
    }
}

/// 1 when a property was violated, or when the run reached its time limit with operations
/// unfinished (over TCP the limit is a safety net: a healthy run ends on its own); else 0.
fn exit_code(s: &RunSummary) -> i32 {
    if s.violations.is_empty() && s.ops_unfinished == 0 {
        0
    } else {
        1
    }
}

struct Local {
    cfg: NetConfig,
    max_time: Duration,
    metrics_addr: Option<SocketAddr>,
    reproduce: String,
}

impl Driver for Local {
    type Output = Result<RunSummary, UserError>;

    fn run<S: Setup>(self, setup: S) -> Self::Output {
        let setup = Arc::new(setup);
        let seed = self.cfg.seed;
        let n = setup.nodes();
        runtime()?.block_on(async move {
            let hook = metrics_endpoint(self.metrics_addr, (0..n as u32).collect()).await?;
            let out =
                run_local(setup.clone(), self.cfg, self.max_time, hook).await.map_err(UserError::from_run)?;
            let g = Gathered::from_run(n, out);
            let mut summary = report::summarize(&*setup, seed, g, &self.reproduce);
            summary.peak_rss_mb = output::peak_rss_mb();
            Ok(summary)
        })
    }
}

/// `agora run`: every node in this process over loopback TCP.
pub fn run(args: &RunArgs, argv: &[String]) -> Result<i32, UserError> {
    let params = crate::sim_cmd::params(&args.params, args.seed)?;
    let nodes = crate::sim_cmd::cluster_size(&args.protocol, &params)?;
    if nodes > values::MAX_TCP_NODES {
        return Err(UserError(format!(
            "{nodes} nodes over TCP; at most {} (one socket and a database each)",
            values::MAX_TCP_NODES
        )));
    }
    let temp;
    let data_dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::Builder::new()
                .prefix("agora-run-")
                .tempdir()
                .map_err(|e| UserError(format!("cannot create a temporary data directory: {e}")))?;
            temp.path().to_path_buf()
        }
    };
    // Every node runs in this process: `NetConfig::new` draws the run's secret.
    let mut cfg = NetConfig::new(&args.cluster, Vec::new());
    cfg.data_dir = Some(data_dir);
    cfg.seed = args.seed;
    let driver = Local {
        cfg,
        max_time: Duration::from_secs_f64(args.max_time_ms / 1e3),
        metrics_addr: parse_addr(&args.metrics_addr)?,
        reproduce: repro::command(argv, args.seed),
    };
    let summary = agora_protocols::dispatch(&args.protocol, &params, driver)??;
    print(&summary, args.json);
    Ok(exit_code(&summary))
}

struct OneNode {
    id: u32,
    cfg: NetConfig,
    idle: Duration,
    max_time: Duration,
    metrics_addr: Option<SocketAddr>,
    json: bool,
    listener: Option<std::net::TcpListener>,
    events: bool,
    supervised: bool,
}

/// One `--events` line on stderr: `event {JSON}`, written whole.
fn event(v: serde_json::Value) {
    use std::io::Write;
    let line = format!("event {v}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// The socket of `--listen-fd FD`, checked to listen at `addr`, the node's address.
fn inherited_listener(fd: i32, addr: SocketAddr) -> Result<std::net::TcpListener, UserError> {
    use std::os::fd::FromRawFd;
    // SAFETY: fcntl only queries whether `fd` is open.
    if fd < 3 || unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(UserError(format!("--listen-fd {fd}: not an open file descriptor above stderr")));
    }
    // SAFETY: `fd` is open, was handed to this process for this purpose and nothing else here
    // owns it; if it is not a socket, local_addr fails below and it is closed.
    let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    match listener.local_addr() {
        Ok(a) if a == addr => Ok(listener),
        Ok(a) => Err(UserError(format!("--listen-fd {fd}: listens at {a}, the cluster file says {addr}"))),
        Err(e) => Err(UserError(format!("--listen-fd {fd}: not a listening socket: {e}"))),
    }
}

/// Resolves when stdin reaches its end: how `agora up` stops a `--supervised` node. Read on a
/// thread of its own, which ends with the process (a blocking read in the runtime's pool
/// would hold up its shutdown when the node ends otherwise).
fn stdin_closed() -> agora_net::cluster::StopFuture {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        loop {
            match std::io::Read::read(&mut std::io::stdin().lock(), &mut buf) {
                Ok(0) => break,
                Err(e) if e.kind() != std::io::ErrorKind::Interrupted => break,
                _ => {}
            }
        }
        let _ = tx.send(());
    });
    Box::pin(async move {
        let _ = rx.await;
    })
}

async fn interrupted() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

impl Driver for OneNode {
    type Output = Result<i32, UserError>;

    fn run<S: Setup>(self, setup: S) -> Self::Output {
        if setup.nodes() != self.cfg.addrs.len() {
            return Err(UserError(format!(
                "the cluster file lists {} nodes but this {} cluster has {}",
                self.cfg.addrs.len(),
                setup.name(),
                setup.nodes()
            )));
        }
        let setup = Arc::new(setup);
        let seed = self.cfg.seed;
        runtime()?.block_on(async move {
            let hook = metrics_endpoint(self.metrics_addr, vec![self.id]).await?;
            let id = self.id;
            let on_obs: Option<ObsHook<_>> = self.events.then(|| {
                Arc::new(move |_at: u64, o: &<S::Node as Protocol>::Obs| {
                    event(serde_json::json!({ "node": id, "obs": o }));
                }) as ObsHook<_>
            });
            let events = self.events;
            // Under `agora up`: idleness is reported, and the end comes from `up`.
            let supervised = self.supervised.then(|| Supervised {
                on_idle: Box::new(move |idle| event(serde_json::json!({ "node": id, "idle": idle }))),
                stop: stdin_closed(),
            });
            let lone = Lone {
                idle: self.idle,
                max_time: self.max_time,
                listener: self.listener,
                on_obs,
                supervised,
            };
            let on_start = move |nodes: Vec<Arc<NodeShared>>, local: SocketAddr| {
                hook(nodes);
                if events {
                    let pid = std::process::id();
                    event(serde_json::json!({ "node": id, "listening": local.to_string(), "pid": pid }));
                }
            };
            let out =
                run_node(setup.clone(), agora_core::NodeId(self.id), self.cfg, lone, interrupted(), on_start)
                    .await
                    .map_err(UserError::from_run)?;
            let wall_ms = out.wall.as_secs_f64() * 1e3;
            let report = &out.reports[0];
            if self.json {
                let o = NodeOutput::from_report(
                    report,
                    setup.name(),
                    out.end.as_str(),
                    wall_ms,
                    out.cpu_ms,
                    out.started_unix_ns,
                    out.last_active_unix_ns,
                );
                println!("{}", serde_json::to_string(&o).expect("node outputs serialize"));
                return Ok(0);
            }
            let n = setup.nodes();
            let mut g = Gathered::new(n, out.end.as_str(), wall_ms, out.cpu_ms, out.started_unix_ns);
            g.add_report(out.reports.into_iter().next().expect("one report"));
            let summary = report::summarize_alone(&*setup, seed, g);
            print!("{}", output::table(&summary));
            println!("note           this is node {} alone; `agora up` checks the whole cluster", self.id);
            Ok(exit_code(&summary))
        })
    }
}

/// `agora node`: one node of a cluster file.
pub fn node(args: &NodeArgs) -> Result<i32, UserError> {
    let cf = ClusterFile::load(&args.config)?;
    let params = cf.params()?;
    let addrs = cf.addrs()?;
    if args.id as usize >= addrs.len() {
        return Err(UserError(format!("--id {}: the cluster file lists nodes 0..{}", args.id, addrs.len())));
    }
    if let Some(i) = addrs.iter().position(|a| a.port() == 0) {
        return Err(UserError(format!(
            "node {i}: port 0 in the cluster file; only `agora up` chooses ports (nodes must know each other's)"
        )));
    }
    let listener = args.listen_fd.map(|fd| inherited_listener(fd, addrs[args.id as usize])).transpose()?;
    let mut cfg = NetConfig::new(&cf.cluster, addrs);
    cfg.secret = cf.secret(&args.config)?;
    cfg.data_dir = cf.data_dir.clone();
    cfg.open = match (args.new, args.rejoin) {
        (_, true) => OpenMode::Rejoin,
        (true, _) => OpenMode::New,
        _ => OpenMode::Existing,
    };
    cfg.seed = cf.seed;
    let driver = OneNode {
        id: args.id,
        cfg,
        idle: Duration::from_millis(cf.idle_ms),
        max_time: Duration::from_millis(cf.max_time_ms),
        metrics_addr: parse_addr(&args.metrics_addr)?,
        json: args.json,
        listener,
        events: args.events,
        supervised: args.supervised,
    };
    agora_protocols::dispatch(&cf.protocol, &params, driver)?
}

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
            let mut children = Vec::new();
            let nodes = self.listeners.len();
            for id in 0..nodes {
                let mut cmd = tokio::process::Command::new(&exe);
                cmd.args(["node", "--json", "--id", &id.to_string(), "--config"]).arg(&self.config);
                if self.new {
                    cmd.arg("--new");
                }
                // Each node reports when it is idle and stops when `up` closes its stdin.
                cmd.args(["--listen-fd", &LISTEN_FD.to_string(), "--supervised"]);
                if self.events {
                    cmd.arg("--events");
                }
                cmd.stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .kill_on_drop(true);
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
                let child = cmd.spawn().map_err(|e| UserError(format!("cannot start node {id}: {e}")))?;
                children.push(child);
            }
            let pids: Vec<u32> = children.iter().filter_map(|c| c.id()).collect();
            let terminate = |pids: &[u32]| {
                for pid in pids {
                    // SAFETY: kill with a pid of our own child and a valid signal.
                    unsafe { libc::kill(*pid as i32, libc::SIGTERM) };
                }
            };
            // Replicas that stopped one at a time would look crashed to the others: the nodes
            // stop together, once every node still running has said it is idle.
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
                let events = self.events;
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
                            // A node that exits 2 (a mistake in the cluster or its set-up) or 3 (its storage):
                            // the others cannot succeed without it.
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
            let mut g = Gathered::new(nodes, "idle", t0.elapsed().as_secs_f64() * 1e3, 0.0, 0);
            let mut starts = Vec::new();
            let mut last_active = 0u64;
            for (id, out) in outputs.into_iter().enumerate() {
                match out.expect("every child reported its end") {
                    Ok(o) if o.status.success() => {
                        match serde_json::from_slice::<NodeOutput<<S::Node as Protocol>::Obs>>(&o.stdout) {
                            Ok(node) => {
                                starts.push(node.started_unix_ns);
                                last_active = last_active.max(node.last_active_unix_ns);
                                if node.end != "idle" {
                                    g.end = node.end.clone();
                                }
                                g.add_output(node);
                            }
                            Err(e) => eprintln!("agora: node {id} printed no readable summary: {e}"),
                        }
                    }
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
            let missing = nodes - starts.len();
            Ok((report::summarize(&setup, self.seed, g, &self.reproduce), missing))
        })
    }
}

/// How a node process ended: its status, its stdout (the JSON summary), and the last
/// `agora: ...` line of its stderr (its one-line mistake when it exits 2).
struct ChildEnd {
    status: std::process::ExitStatus,
    stdout: Vec<u8>,
    mistake: String,
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
