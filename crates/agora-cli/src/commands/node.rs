//! `agora node`: one node of a cluster file, in this process; `agora up` starts one of these
//! per node. With `--json` it prints its own report for `up` to gather; otherwise a summary of
//! what this node alone saw.

use super::shared::tcp::{interrupted, metrics_endpoint, parse_addr, runtime};
use super::shared::ui::{self, sampler::Counts};
use super::shared::{clock_file, event, exit_code, inherited_listener, open_mode, output};
use crate::cli::NodeArgs;
use crate::cluster_file::ClusterFile;
use crate::error::UserError;
use agora_core::{NodeId, Protocol, Setup};
use agora_net::{
    report, run_node, Gathered, Lone, NetConfig, NodeOutput, NodeShared, ObsHook, RunOutcome, Supervised,
};
use agora_protocols::Driver;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The observations of a setup's nodes.
type Obs<S> = <<S as Setup>::Node as Protocol>::Obs;

/// `agora node`: one node of a cluster file.
pub fn node(args: &NodeArgs) -> Result<i32, UserError> {
    let cf = ClusterFile::load(&args.config)?;
    let params = cf.params()?;
    let wait = Duration::from_millis(args.wait_resolve_ms);
    let addrs = cf.peer_addrs_for(args.id as usize, wait, "nodes (only `agora up` picks ports)")?;
    let listener = args
        .listen_fd
        .map(|fd| inherited_listener(fd, addrs[args.id as usize], "--listen-fd"))
        .transpose()?;
    let mut cfg = NetConfig::new(&cf.cluster, addrs);
    // A peer whose name did not resolve yet is looked up at every dial.
    cfg.names = cf.names();
    cfg.secret = cf.secret(&args.config)?;
    cfg.data_dir = cf.data_dir.clone();
    // `--new-once`: its file is written once the node has its database.
    let first_mark = match &args.new_once {
        Some(mark) => match std::fs::metadata(mark) {
            Ok(_) => None,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(mark.clone()),
            Err(e) => return Err(UserError(format!("--new-once {}: {e}", mark.display()))),
        },
        None => None,
    };
    cfg.open = open_mode(args.new || first_mark.is_some(), args.rejoin);
    cfg.seed = cf.seed;
    // The region model's latency, added to every frame this node sends (docs/cluster.md).
    cfg.link_delay = cf.link_delay();
    // Only the JSON report lists the observations: a node without it keeps none, so one that
    // runs for days (a market in a container) does not grow.
    cfg.keep_observations = args.json;
    // Its latest messages, for a live view's space-time diagram: printed with the counters
    // (`--sample-ms`) or served with them (`--metrics-addr`'s `/counts`).
    if args.sample_ms.is_some() || args.metrics_addr.is_some() {
        cfg.recent_messages = ui::sampler::RECENT;
    }
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
        sample: args.sample_ms.map(Duration::from_millis),
        first_mark,
        clock_file: args.clock_file.clone(),
    };
    agora_protocols::dispatch(&cf.protocol, &params, driver)?
}

/// Runs node `id` of any protocol's setup.
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
    /// `--sample-ms`: how often to print the node's counts.
    sample: Option<Duration>,
    /// `--new-once FILE` the first time: FILE, to write once the database exists.
    first_mark: Option<PathBuf>,
    /// `--clock-file`: where the node's clock is set from.
    clock_file: Option<PathBuf>,
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
        let (id, seed, json) = (self.id, self.cfg.seed, self.json);
        let out = runtime()?.block_on(self.start(setup.clone()))?;
        if json {
            print_output(&*setup, out);
            return Ok(0);
        }
        Ok(summarize_alone(&*setup, seed, id, out))
    }
}

impl OneNode {
    /// Runs the node until it is idle, reaches its time limit or is interrupted; with
    /// `--events`, reports its address and every observation on stderr as they come, each
    /// with its time (`at`, Unix ns): a killed node's history is what it said before, which
    /// `agora cluster` reads back from the containers' logs to judge.
    async fn start<S: Setup>(self, setup: Arc<S>) -> Result<RunOutcome<Obs<S>>, UserError> {
        let metrics = metrics_endpoint(self.metrics_addr, vec![self.id]).await?;
        let (id, events, sample) = (self.id, self.events, self.sample);
        if let Some(path) = self.clock_file {
            clock_file::watch(path, self.cfg.clock.clone(), clock_file::event(id, events))?;
        }
        let first_mark = self.first_mark;
        let hook = move |nodes: Vec<Arc<NodeShared>>| {
            if let Some(mark) = first_mark {
                // The database exists (the node opened it before it started): from now on it
                // must be found, not made again.
                if let Err(e) = write_mark(&mark) {
                    eprintln!(
                        "agora: --new-once {}: cannot write it: {e}; stopping, since an emptied \
                         volume would be taken for a first start",
                        mark.display()
                    );
                    std::process::exit(2);
                }
            }
            if let (Some(every), Some(node)) = (sample, nodes.first()) {
                tokio::spawn(print_counts(id, node.clone(), every));
            }
            metrics(nodes);
        };
        let on_obs: Option<ObsHook<_>> = events.then(|| {
            Arc::new(move |at: u64, o: &Obs<S>| {
                event(serde_json::json!({ "node": id, "at": at, "obs": o }));
            }) as ObsHook<_>
        });
        // Under `agora up`: idleness is reported, and the end comes from `up`.
        let supervised = self.supervised.then(|| Supervised {
            on_idle: Box::new(move |idle| event(serde_json::json!({ "node": id, "idle": idle }))),
            stop: stdin_closed(),
        });
        let lone =
            Lone { idle: self.idle, max_time: self.max_time, listener: self.listener, on_obs, supervised };
        // The address is reported before the node starts: a log's observations then all
        // follow the run's `listening` line, which is how `agora cluster` tells a whole log
        // from one Docker rotated.
        let on_bound = move |local: SocketAddr| {
            if events {
                let pid = std::process::id();
                let at = agora_net::clock::unix_ns();
                event(
                    serde_json::json!({ "node": id, "at": at, "listening": local.to_string(), "pid": pid }),
                );
            }
        };
        run_node(setup, NodeId(id), self.cfg, lone, interrupted(), on_bound, hook)
            .await
            .map_err(UserError::from_run)
    }
}

/// Creates `--new-once`'s file, durably.
fn write_mark(path: &std::path::Path) -> std::io::Result<()> {
    std::fs::File::create(path)?.sync_all()?;
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
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

/// `--sample-ms`: the node's counts every `every`, one `event` line each, with the process id
/// that tells its incarnations apart. Ends with the runtime.
pub(crate) async fn print_counts(id: u32, node: Arc<NodeShared>, every: Duration) {
    let pid = std::process::id();
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let counts = Counts::of(&node).to_json();
        event(serde_json::json!({ "node": id, "pid": pid, "counts": counts }));
    }
}

/// `--json`: the node's report as one line, for `agora up` to gather.
fn print_output<S: Setup>(setup: &S, out: RunOutcome<Obs<S>>) {
    let o = NodeOutput::from_report(
        &out.reports[0],
        setup.name(),
        out.end.as_str(),
        out.wall.as_secs_f64() * 1e3,
        out.cpu_ms,
        out.started_unix_ns,
        out.last_active_unix_ns,
    );
    println!("{}", serde_json::to_string(&o).expect("node outputs serialize"));
}

/// The summary table of what node `id` alone saw; returns the exit code.
fn summarize_alone<S: Setup>(setup: &S, seed: u64, id: u32, out: RunOutcome<Obs<S>>) -> i32 {
    let wall_ms = out.wall.as_secs_f64() * 1e3;
    let mut g = Gathered::new(setup.nodes(), out.end.as_str(), wall_ms, out.cpu_ms, out.started_unix_ns);
    g.add_report(out.reports.into_iter().next().expect("one report"));
    let summary = report::summarize_alone(setup, seed, g);
    print!("{}", output::table(&summary));
    println!("note           this is node {id} alone; `agora up` checks the whole cluster");
    exit_code(&summary)
}
