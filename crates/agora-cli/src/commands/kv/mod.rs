//! `agora kv`: a Raft-replicated key-value store with a Redis protocol (RESP) front end on
//! every replica (docs/kv.md). `agora kv` runs every replica in this process on loopback
//! with redb; `agora kv serve` runs one replica of a cluster file.
//!
//! The replica is the sans-IO Raft of `agora_protocols::raft` over the [`Strings`] state
//! machine, driven by agora-net's node driver like every other protocol; the RESP front end
//! ([`front`]) is tokio I/O beside it and reaches the replica through local calls.
//!
//! [`Strings`]: agora_protocols::raft::strings::Strings

mod embedded;
pub mod front;
pub mod history;
mod live;
pub mod node;
pub mod workload;

use super::shared::tcp::{interrupted, listen_for_clients, metrics_endpoint, parse_addr, runtime};
use super::shared::ui;
use super::shared::{clock_file, event, inherited_listener, open_mode};
use crate::cli::{KvAction, KvArgs, KvCommon, KvLocalArgs, KvServeArgs};
use crate::cluster_file::ClusterFile;
use crate::error::UserError;
use crate::resp::Limits;
use agora_core::{Lifecycle, NodeId, Setup};
use agora_net::node::BoundNode;
use agora_net::store::Store;
use agora_net::{Happened, NetConfig, ObsHook};
use agora_protocols::raft::RaftObs;
use embedded::{Launcher, Running};
use history::History;
use live::Live;
use node::KvSetup;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// `agora kv` and `agora kv serve`.
pub fn run(args: &KvArgs) -> Result<i32, UserError> {
    match &args.action {
        Some(KvAction::Serve(a)) => serve(a),
        Some(KvAction::Workload(a)) => clients(a),
        None => local(&args.local),
    }
}

/// One replica to start: its id, its cluster socket, its RESP socket.
struct Replica {
    id: NodeId,
    bound: BoundNode,
    resp: TcpListener,
}

/// How the replicas of this process run.
struct Plan {
    setup: Arc<KvSetup>,
    cfg: NetConfig,
    replicas: Vec<Replica>,
    /// Each replica's RESP address, where this process listens (the live view asks them
    /// too); a replica of another process's is never dialled, and may be unspecified.
    resp_addrs: Vec<SocketAddr>,
    /// Each replica's RESP address as INFO and ROLE tell it: the cluster file's, which may
    /// be a name.
    resp_shown: Vec<String>,
    common: Limits,
    timeout: Duration,
    max_clients: usize,
    /// The server's history, if it writes one.
    history: Option<Arc<History>>,
    on_obs: Option<ObsHook<RaftObs>>,
    /// The live view's socket (`--ui`), if any.
    ui: Option<TcpListener>,
    /// `kv serve --sample-ms`: how often each replica prints its message counters.
    sample: Option<Duration>,
    /// `kv serve --metrics-addr`: where the replicas' counters are served.
    metrics: Option<SocketAddr>,
}

/// Starts every replica of `plan` with its front end and runs until `until` resolves or a
/// replica fails; returns 0, or 3 when a replica stopped on a storage failure. With a live
/// view (`plan.ui`), also samples the replicas for it and crashes and restarts them when
/// the page asks.
async fn run_plan(plan: Plan, until: impl std::future::Future<Output = ()>) -> Result<i32, UserError> {
    let Plan {
        setup,
        cfg,
        replicas,
        resp_addrs,
        resp_shown,
        common,
        timeout,
        max_clients,
        history,
        on_obs,
        ui,
        sample,
        metrics,
    } = plan;
    let (leaders_tx, mut leaders) = mpsc::channel(1024);
    let mut cfg = cfg;
    if ui.is_some() || sample.is_some() || metrics.is_some() {
        // Each replica keeps its latest messages, for the page's space-time diagram.
        cfg.recent_messages = ui::sampler::RECENT;
    }
    let register = metrics_endpoint(metrics, replicas.iter().map(|r| r.id.0).collect()).await?;
    let launcher = Launcher {
        setup,
        cfg: Arc::new(cfg),
        in_flight: Arc::new(AtomicI64::new(0)),
        resp_addrs: resp_addrs.clone(),
        resp_shown,
        limits: common,
        timeout,
        max_clients,
        history: history.clone(),
        on_obs,
        leaders: ui.is_some().then_some(leaders_tx),
    };
    let mut running = Vec::new();
    for r in replicas {
        let run = launcher.launch(r.id, r.bound, r.resp)?;
        if let Some(every) = sample {
            tokio::spawn(super::node::print_counts(r.id.0, run.shared.clone(), every));
        }
        running.push(Some(run));
    }
    register(running.iter().flatten().map(|r| r.shared.clone()).collect());
    let (actions_tx, mut actions) = mpsc::channel(16);
    let mut live = None;
    if let Some(listener) = ui {
        let (snapshot_tx, snapshot) = watch::channel(String::new());
        let accepts = ui::Accepts { nodes: running.len(), verbs: live::VERBS };
        tokio::spawn(ui::serve(listener, snapshot, actions_tx, accepts));
        live = Some(Live::new(resp_addrs, snapshot_tx));
    }
    let mut switches = ui::steer::Switches::new(running.len());
    let mut next_sample = tokio::time::Instant::now();
    tokio::pin!(until);
    let failed = loop {
        tokio::select! {
            _ = &mut until => break false,
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            Some((id, o)) = leaders.recv() => {
                if let Some(l) = &mut live {
                    l.observed(id, &o);
                }
            }
            Some(a) = actions.recv() => {
                if let Some(l) = &mut live {
                    act(a, &launcher, &mut running, &mut switches, l).await;
                    next_sample = tokio::time::Instant::now();
                }
            }
        }
        if running.iter().flatten().any(|s| s.shared.failed.load(Ordering::Relaxed)) {
            break true;
        }
        if let Some(l) = &mut live {
            if tokio::time::Instant::now() >= next_sample {
                l.sample(&running, &switches).await;
                next_sample = tokio::time::Instant::now() + live::SAMPLE;
            }
        }
    };
    for r in running.into_iter().flatten() {
        r.stop().await;
    }
    if let Some(h) = &history {
        h.flush();
    }
    Ok(if failed { 3 } else { 0 })
}

/// Runs an action of the live view's page and puts it on the timeline: a crash or a restart
/// here ([`Running::crash`], [`Launcher::restart`]), a pause or a cut through the replicas'
/// switches.
async fn act(
    a: ui::Action,
    launcher: &Launcher,
    running: &mut [Option<Running>],
    switches: &mut ui::steer::Switches,
    live: &mut Live,
) {
    let (crash, i) = match a.command {
        ui::Command::Crash(i) => (true, i),
        ui::Command::Restart(i) => (false, i),
        other => {
            let outcome = match ui::steer::fault_of(&other) {
                Some(fault) => {
                    let nodes: Vec<_> = running.iter().map(|r| r.as_ref().map(|r| &*r.shared)).collect();
                    switches.apply(fault, &nodes).map(|(happened, text)| {
                        live.happened(&happened);
                        text
                    })
                }
                None => Err(format!("{}: not a control of agora kv", other.verb())),
            };
            let _ = a.done.send(outcome);
            return;
        }
    };
    let outcome = match (crash, running.get_mut(i)) {
        (_, None) => Err(format!("no replica {i}: the replicas are 0..{}", running.len())),
        (true, Some(slot)) => match slot.take() {
            Some(r) => {
                r.crash().await;
                switches.crashed(i);
                live.happened(&Happened::Life(NodeId(i as u32), Lifecycle::Crashed));
                Ok(format!("replica {i} crashed"))
            }
            None => Err(format!("replica {i} is already crashed")),
        },
        (false, Some(slot)) => match slot {
            Some(_) => Err(format!("replica {i} is running")),
            None => match launcher.restart(NodeId(i as u32)).await {
                Ok(r) => {
                    switches.restarted(i, &r.shared);
                    *slot = Some(r);
                    live.restarted(i);
                    live.happened(&Happened::Life(NodeId(i as u32), Lifecycle::Restarted));
                    Ok(format!("replica {i} restarted"))
                }
                Err(e) => {
                    live.event("failure", Some(i), format!("replica {i} did not restart: {e}"));
                    Err(format!("replica {i} did not restart: {e}"))
                }
            },
        },
    };
    let _ = a.done.send(outcome);
}

fn limits(c: &KvCommon) -> Limits {
    Limits { max_bulk: c.max_bulk, max_pending: (c.max_bulk * 2).max(4 << 20), ..Limits::default() }
}

fn open_history(path: &Path, first: u64) -> Result<Arc<History>, UserError> {
    History::create(path, first)
        .map(Arc::new)
        .map_err(|e| UserError(format!("--history {}: {e}", path.display())))
}

/// `agora kv`: every replica in this process.
fn local(a: &KvLocalArgs) -> Result<i32, UserError> {
    let n = a.replicas;
    let temp;
    let data_dir = match &a.data_dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| UserError(format!("--data-dir {}: {e}", d.display())))?;
            d.clone()
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("agora-kv-")
                .tempdir()
                .map_err(|e| UserError(format!("cannot create a temporary data directory: {e}")))?;
            temp.path().to_path_buf()
        }
    };
    let setup = Arc::new(KvSetup::new(n, Duration::from_millis(a.election_timeout_ms)));
    let rt = runtime()?;
    rt.block_on(async {
        let any: SocketAddr = "127.0.0.1:0".parse().expect("literal address");
        let mut replicas = Vec::new();
        let mut addrs = Vec::new();
        let mut resp_addrs = Vec::new();
        for i in 0..n {
            let id = NodeId(i as u32);
            let bound =
                BoundNode::bind(id, any).await.map_err(|e| UserError(format!("cannot bind {any}: {e}")))?;
            let port = if a.port == 0 { 0 } else { a.port.checked_add(i as u16).unwrap_or(0) };
            let want = SocketAddr::from(([127, 0, 0, 1], port));
            let resp = listen_for_clients(want).map_err(|e| {
                UserError(format!(
                    "replica {i}: cannot listen for RESP on {want}: {e} (another server there? try --port 0)"
                ))
            })?;
            addrs.push(bound.local_addr().expect("bound"));
            resp_addrs.push(resp.local_addr().expect("bound"));
            replicas.push(Replica { id, bound, resp });
        }
        let mut cfg = NetConfig::new("kv", addrs);
        cfg.open = Store::cluster_mode(&data_dir, n).map_err(|e| UserError::from_run(e.into()))?;
        cfg.data_dir = Some(data_dir.clone());
        cfg.keep_observations = false;
        let history = match (&a.common.history, a.workload) {
            (Some(p), None) => Some(open_history(p, 0)?),
            _ => None,
        };
        let plan = Plan {
            setup,
            cfg,
            replicas,
            resp_shown: resp_addrs.iter().map(SocketAddr::to_string).collect(),
            resp_addrs: resp_addrs.clone(),
            common: limits(&a.common),
            timeout: Duration::from_millis(a.common.timeout_ms),
            max_clients: a.common.max_clients,
            history,
            on_obs: None,
            ui: match &a.ui {
                Some(addr) => Some(ui::bind(addr).await?),
                None => None,
            },
            sample: None,
            metrics: None,
        };
        for (i, r) in resp_addrs.iter().enumerate() {
            println!("replica {i}  resp {r}   redis-cli -p {}", r.port());
        }
        if let Some(l) = &plan.ui {
            let addr = l.local_addr().map_err(|e| UserError(format!("--ui: {e}")))?;
            println!("ui       {}", ui::url(addr));
        }
        println!("data     {}", data_dir.display());
        match a.workload {
            None => {
                println!("serving until Ctrl-C");
                run_plan(plan, interrupted()).await
            }
            Some(ops) => {
                let w = workload::Spec {
                    ops,
                    clients: a.shape.clients,
                    keys: a.shape.keys,
                    seed: a.shape.seed,
                    timeout: Duration::from_millis(a.common.timeout_ms),
                    history: a.common.history.clone(),
                    stale_reads: false,
                    key_prefix: String::new(),
                };
                let (report_tx, report_rx) = tokio::sync::oneshot::channel();
                let run = async move {
                    let r = workload::run(w, resp_addrs, std::future::pending()).await;
                    let _ = report_tx.send(r);
                };
                let code = run_plan(plan, run).await?;
                let report =
                    report_rx.await.map_err(|_| UserError("the workload did not finish".into()))??;
                print!("{report}");
                Ok(code)
            }
        }
    })
}

/// `agora kv workload`: the workload's clients against running replicas, until done or told
/// to stop.
fn clients(a: &crate::cli::KvWorkloadArgs) -> Result<i32, UserError> {
    let spec = workload::Spec {
        ops: a.ops,
        clients: a.shape.clients,
        keys: a.shape.keys,
        seed: a.shape.seed,
        timeout: Duration::from_millis(a.timeout_ms),
        history: a.history.clone(),
        stale_reads: false,
        key_prefix: String::new(),
    };
    let report = runtime()?.block_on(workload::run(spec, a.servers.clone(), interrupted()))?;
    print!("{report}");
    Ok(0)
}

/// `agora kv serve`: one replica of a cluster file.
fn serve(a: &KvServeArgs) -> Result<i32, UserError> {
    let cf = ClusterFile::load(&a.config)?;
    if cf.protocol != "kv" {
        return Err(UserError(format!(
            "cluster file {}: protocol = {:?}; `agora kv serve` runs `protocol = \"kv\"` clusters",
            a.config.display(),
            cf.protocol
        )));
    }
    let me = a.id as usize;
    let addrs = cf.peer_addrs_for(me, Duration::from_millis(a.wait_resolve_ms), "replicas")?;
    let (resp_addr, resp_shown) = cf.client_addrs_for(
        me,
        "resp",
        "where it serves RESP clients, e.g. resp = \"127.0.0.1:6380\"",
        |n| n.resp.as_deref(),
    )?;
    let timeout_ms = match cf.params.get("timeout_ms") {
        None => 150.0,
        Some(toml::Value::Integer(i)) if *i > 0 => *i as f64,
        Some(toml::Value::Float(f)) if *f > 0.0 && *f <= 60_000.0 => *f,
        Some(v) => {
            return Err(UserError(format!("params.timeout_ms = {v}: expected a positive number of ms")))
        }
    };
    if let Some(k) = cf.params.keys().find(|k| k.as_str() != "timeout_ms") {
        return Err(UserError(format!("params.{k}: not a parameter of kv (its parameters: timeout_ms)")));
    }
    let setup = Arc::new(KvSetup::new(addrs.len(), Duration::from_secs_f64(timeout_ms / 1e3)));
    let mut cfg = NetConfig::new(&cf.cluster, addrs.clone());
    cfg.names = cf.names();
    cfg.secret = cf.secret(&a.config)?;
    cfg.data_dir = cf.data_dir.clone();
    cfg.seed = cf.seed;
    cfg.keep_observations = false;
    cfg.open = open_mode(a.new, a.rejoin);
    let cluster_listener =
        a.listen_fd.map(|fd| inherited_listener(fd, addrs[me], "--listen-fd")).transpose()?;
    let resp_listener = a.resp_fd.map(|fd| inherited_listener(fd, resp_addr, "--resp-fd")).transpose()?;
    let history = a.common.history.as_deref().map(|p| open_history(p, (me as u64) << 40)).transpose()?;
    let events = a.events;
    let id = a.id;
    let on_obs: Option<ObsHook<RaftObs>> = events.then(|| {
        Arc::new(move |_at: u64, o: &RaftObs| match o {
            RaftObs::Leader { term } => event(serde_json::json!({ "node": id, "leader": id, "term": term })),
            RaftObs::SteppedDown { term } => event(serde_json::json!({ "node": id, "stepped_down": term })),
            _ => {}
        }) as ObsHook<RaftObs>
    });
    let rt = runtime()?;
    rt.block_on(async move {
        if let Some(path) = a.clock_file.clone() {
            clock_file::watch(path, cfg.clock.clone(), clock_file::event(id, events))?;
        }
        let nid = NodeId(a.id);
        let bound = match cluster_listener {
            Some(l) => BoundNode::from_std(nid, l),
            None => BoundNode::bind(nid, addrs[me]).await,
        }
        .map_err(|e| UserError(format!("cannot listen at {}: {e}", addrs[me])))?;
        let resp = match resp_listener {
            Some(l) => {
                l.set_nonblocking(true).map_err(|e| UserError(format!("--resp-fd: {e}")))?;
                TcpListener::from_std(l).map_err(|e| UserError(format!("--resp-fd: {e}")))?
            }
            None => listen_for_clients(resp_addr)
                .map_err(|e| UserError(format!("cannot listen for RESP at {resp_addr}: {e}")))?,
        };
        let resp_local = resp.local_addr().map_err(|e| UserError(e.to_string()))?;
        if events {
            event(serde_json::json!({
                "node": id,
                "listening": bound.local_addr().map(|a| a.to_string()).unwrap_or_default(),
                "resp": resp_local.to_string(),
                "pid": std::process::id(),
            }));
        } else {
            eprintln!("agora kv: replica {id} serving RESP at {resp_local}");
        }
        let plan = Plan {
            setup: setup.clone(),
            cfg,
            replicas: vec![Replica { id: nid, bound, resp }],
            // Only this replica's is bound here (a restart from a live view is `agora kv`'s).
            resp_addrs: (0..resp_shown.len())
                .map(|i| if i == me { resp_addr } else { SocketAddr::from(([0, 0, 0, 0], 0)) })
                .collect(),
            resp_shown,
            common: limits(&a.common),
            timeout: Duration::from_millis(a.common.timeout_ms),
            max_clients: a.common.max_clients,
            history,
            on_obs,
            ui: None,
            sample: a.sample_ms.map(Duration::from_millis),
            metrics: parse_addr(&a.metrics_addr)?,
        };
        let _ = setup.nodes();
        run_plan(plan, interrupted()).await
    })
}
