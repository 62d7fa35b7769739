//! The TCP runtime as the commands use it: the async runtime, every node of a cluster in this
//! process over loopback (`run_in_process`, for the commands that sweep many runs), the
//! Prometheus endpoint of `--metrics-addr`, waiting for an interrupt, and a progress bar fed
//! by the running nodes.

use super::ui::sampler::Counts;
use crate::error::UserError;
use agora_core::{Protocol, Setup};
use agora_net::{prometheus, run_local, Gathered, NetConfig, NodeShared};
use indicatif::ProgressBar;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub fn runtime() -> Result<tokio::runtime::Runtime, UserError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| UserError(format!("cannot start the async runtime: {e}")))
}

/// The configuration of a cluster whose nodes all run in this process, with their databases
/// in `data_dir`: `NetConfig::new` draws the run's secret.
pub fn local_config(cluster: &str, data_dir: PathBuf, seed: u64) -> NetConfig {
    let mut cfg = NetConfig::new(cluster, Vec::new());
    cfg.data_dir = Some(data_dir);
    cfg.seed = seed;
    cfg
}

/// A new temporary directory, removed when dropped.
pub fn temp_dir() -> Result<tempfile::TempDir, UserError> {
    tempfile::tempdir().map_err(|e| UserError(format!("cannot create a temporary directory: {e}")))
}

/// The gathered reports of an in-process run, and when its last event was handled.
pub type InProcess<S> = (Gathered<<<S as Setup>::Node as Protocol>::Obs>, u64);

/// Runs every node of `setup` in this process over loopback TCP, with databases in a
/// temporary directory, and gathers their reports; also returns when the last event was
/// handled (Unix ns). `hook` gets the nodes when they start (a progress bar's, or `|_| {}`).
pub fn run_in_process<S: Setup>(
    setup: &Arc<S>,
    cluster: &str,
    seed: u64,
    max_time: Duration,
    hook: impl FnOnce(Vec<Arc<NodeShared>>),
) -> Result<InProcess<S>, UserError> {
    let dir = temp_dir()?;
    let cfg = local_config(cluster, dir.path().to_path_buf(), seed);
    let out =
        runtime()?.block_on(run_local(setup.clone(), cfg, max_time, hook)).map_err(UserError::from_run)?;
    let last = out.last_active_unix_ns;
    Ok((Gathered::from_run(setup.nodes(), out), last))
}

/// The address of `--metrics-addr`, if given.
pub fn parse_addr(s: &Option<String>) -> Result<Option<SocketAddr>, UserError> {
    s.as_ref()
        .map(|a| {
            a.parse().map_err(|_| {
                UserError(format!("--metrics-addr `{a}`: expected HOST:PORT, e.g. 127.0.0.1:9100"))
            })
        })
        .transpose()
}

/// Starts the Prometheus endpoint if asked, returning a hook that registers nodes with it.
pub async fn metrics_endpoint(
    addr: Option<SocketAddr>,
    ids: Vec<u32>,
) -> Result<impl FnOnce(Vec<Arc<NodeShared>>), UserError> {
    let list = match addr {
        Some(a) => {
            let (local, list) = prometheus::start(a, Some(counts_page()))
                .await
                .map_err(|e| UserError(format!("--metrics-addr {a}: {e}")))?;
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

/// The metrics endpoint's `/counts`: every node's message counters as `--sample-ms` prints
/// them (`{"started": ns, "nodes": [{"node": id, "counts": {..}}]}`), with the time this
/// process started, which tells its runs apart (in a container its process id is always 1).
/// `agora cluster ui` asks it of every container twice a second.
fn counts_page() -> prometheus::Page {
    let started = agora_net::clock::unix_ns();
    Arc::new(move |path, nodes| {
        (path == "/counts").then(|| {
            let nodes: Vec<serde_json::Value> = nodes
                .iter()
                .map(|(id, n)| serde_json::json!({ "node": id, "counts": Counts::of(n).to_json() }))
                .collect();
            serde_json::json!({ "started": started, "nodes": nodes }).to_string()
        })
    })
}

/// Resolves at Ctrl-C or SIGTERM (never, if SIGTERM cannot be watched).
pub async fn interrupted() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// A progress bar of a run over TCP, its position polled from the running nodes by a thread
/// of its own.
pub struct Progress {
    bar: ProgressBar,
    /// The nodes, once the run has started them.
    nodes: Arc<Mutex<Vec<Arc<NodeShared>>>>,
    stop: Arc<AtomicBool>,
    poller: std::thread::JoinHandle<()>,
}

impl Progress {
    /// Starts setting `bar` to what `count` reads from the nodes, four times a second.
    pub fn start(bar: ProgressBar, count: impl Fn(&[Arc<NodeShared>]) -> u64 + Send + 'static) -> Self {
        let nodes: Arc<Mutex<Vec<Arc<NodeShared>>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let poller = {
            let (nodes, stop, bar) = (nodes.clone(), stop.clone(), bar.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(250));
                    let done = count(&nodes.lock().expect("nodes lock"));
                    bar.set_position(done);
                }
            })
        };
        Progress { bar, nodes, stop, poller }
    }

    /// The hook that hands the run's nodes to the poller when they start.
    pub fn hook(&self) -> impl FnOnce(Vec<Arc<NodeShared>>) {
        let nodes = self.nodes.clone();
        move |shared: Vec<Arc<NodeShared>>| *nodes.lock().expect("nodes lock") = shared
    }

    /// Stops the poller and clears the bar.
    pub fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.poller.join();
        self.bar.finish_and_clear();
    }
}

/// The accept queue a client-facing listener asks the kernel for (it is capped at
/// `net.core.somaxconn`, 4096 on current Linux). A crowd of clients reconnecting at once when
/// their server dies arrives within a few milliseconds; a short queue overflows, and with SYN
/// cookies a client may then believe itself connected to a server that never heard of it.
pub const CLIENT_BACKLOG: u32 = 4096;

/// A listener on `addr` with an accept queue of [`CLIENT_BACKLOG`].
pub fn listen_for_clients(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket =
        if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(CLIENT_BACKLOG)
}

/// A restart binds a node's addresses again; the sockets of the crashed node close
/// as its tasks end, so a bind that finds the address in use tries again this many times,
/// [`REBIND_WAIT`] apart.
pub const REBIND_TRIES: u32 = 40;
pub const REBIND_WAIT: Duration = Duration::from_millis(50);

/// Binds with `bind`, trying again while the address is still in use.
pub async fn rebind<T, F: std::future::Future<Output = std::io::Result<T>>>(
    bind: impl Fn() -> F,
) -> Result<T, String> {
    let mut tries = 0;
    loop {
        match bind().await {
            Ok(t) => return Ok(t),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < REBIND_TRIES => {
                tries += 1;
                tokio::time::sleep(REBIND_WAIT).await;
            }
            Err(e) => return Err(format!("cannot bind its address again: {e}")),
        }
    }
}
