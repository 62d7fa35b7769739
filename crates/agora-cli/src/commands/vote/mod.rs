//! `agora vote`: the voting service of `../shared/seeds/003_*` on a cluster of servers
//! (docs/vote-protocol.md). `agora vote` runs the servers in this process on loopback with
//! redb and a crowd of simulated members speaking the line protocol, then judges what they
//! saw; `agora vote serve` runs one server of a cluster file; `agora vote conformance` tests
//! any server against the protocol; `agora vote bench` loads a cluster with many members.
//!
//! Each server is the sans-IO [`Server`] of `agora_protocols::vote_service` (a Raft replica of
//! the board and its front end's session), driven by agora-net's node driver like every other
//! protocol; the line-protocol front end ([`front`]) is tokio I/O beside it and reaches it
//! through local calls.
//!
//! [`Server`]: agora_protocols::vote_service::server::Server

mod bench;
pub mod client;
mod conformance;
pub(crate) mod crowd;
pub mod front;
mod kdf;
pub(crate) mod live;
pub mod node;
mod servers;
mod tls;

use super::shared::tcp::{interrupted, metrics_endpoint, parse_addr, runtime};
use super::shared::ui::sampler::{Flags, LiveRun, RECENT};
use super::shared::ui::steer;
use super::shared::{clock_file, event, inherited_listener, open_mode, repro};
use crate::cli::{VoteAction, VoteArgs, VoteCommon, VoteLocalArgs, VoteServeArgs, VoteTokenArgs};
use crate::cluster_file::ClusterFile;
use crate::error::UserError;
use agora_core::NodeId;
use agora_net::handshake::Secret;
use agora_net::node::BoundNode;
use agora_net::store::Store;
use agora_net::{NetConfig, ObsHook, ObsHooks};
use agora_protocols::raft::RaftObs;
use agora_protocols::vote_service::server::ServerConfig;
use node::{VoteObs, VoteSetup};
use servers::{Launcher, Servers};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// `agora vote` and its actions.
pub fn run(args: &VoteArgs, argv: Vec<String>) -> Result<i32, UserError> {
    match &args.action {
        Some(VoteAction::Serve(a)) => serve(a),
        Some(VoteAction::Conformance(a)) => conformance::run(a),
        Some(VoteAction::Bench(a)) => bench::run(a),
        Some(VoteAction::AdminToken(a)) => print_admin_token(a),
        None if args.local.sim && args.local.ui.is_some() => {
            Err(UserError("--ui: the live view watches a run over TCP, not --sim".into()))
        }
        None if args.local.sim => simulate(&args.local, argv),
        None => {
            super::shared::sim_only(&args.local.faults.given(), "over TCP the servers run unharmed")?;
            local(&args.local, &argv)
        }
    }
}

/// `agora vote --sim`: the same service in the simulator (`agora sim vote-service`), with the
/// fault flags; its summary and the checker's verdict.
fn simulate(a: &VoteLocalArgs, argv: Vec<String>) -> Result<i32, UserError> {
    use agora_protocols::params::{MEMBERS, SESSION_MS, TIMEOUT_MS};
    if a.servers % 2 == 0 {
        return Err(UserError(format!("--servers {}: an odd number of servers", a.servers)));
    }
    let params = agora_protocols::Params::new(a.servers, a.seed)
        .with(&MEMBERS, a.clients as u32)
        .with(&SESSION_MS, a.session_timeout_ms as f64)
        .with(&TIMEOUT_MS, a.election_timeout_ms as f64);
    let n = agora_protocols::registry::cluster_size("vote-service", &params)?;
    let faults = crate::faults::build(&a.faults, n)?;
    let config = agora_sim::SimConfig::new(a.seed).with_faults(faults);
    let driver = super::sim::SimDriver { config, argv };
    let result = agora_protocols::dispatch("vote-service", &params, driver)?;
    super::shared::print(&result.summary, a.json);
    Ok(if result.summary.violations.is_empty() { 0 } else { 1 })
}

/// One server to start: its id, its cluster socket, its members' socket.
struct Listening {
    id: NodeId,
    bound: BoundNode,
    members: TcpListener,
}

/// How the servers of this process run.
struct Plan {
    setup: Arc<VoteSetup>,
    cfg: NetConfig,
    servers: Vec<Listening>,
    common: FrontSettings,
    /// Each server's observation hook.
    on_obs: Option<ObsHooks<VoteObs>>,
    /// Told of the servers once they have all started.
    on_start: Option<OnStart>,
}

/// See [`Plan::on_start`].
type OnStart = Box<dyn FnOnce(Arc<Servers>) + Send>;

/// What every front end of this process is given.
#[derive(Clone)]
struct FrontSettings {
    timeout: Duration,
    max_clients: usize,
    admin: Option<String>,
    session_timeout: Duration,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl FrontSettings {
    fn new(c: &VoteCommon, admin: Option<String>, session_timeout: Duration) -> Self {
        FrontSettings {
            timeout: Duration::from_millis(c.timeout_ms),
            max_clients: c.max_clients,
            admin,
            session_timeout,
            tls: None,
        }
    }
}

/// Starts every server of `plan` with its front end and runs until `until` resolves or a
/// server fails; returns 0, or 3 when a server stopped on a storage failure.
async fn run_plan(plan: Plan, until: impl std::future::Future<Output = ()>) -> Result<i32, UserError> {
    let Plan { setup, cfg, servers, common, on_obs, on_start } = plan;
    let member_addrs = servers
        .iter()
        .map(|s| s.members.local_addr())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| UserError(format!("the members' socket: {e}")))?;
    let launcher = Launcher {
        setup,
        cfg: Arc::new(cfg),
        in_flight: Arc::new(AtomicI64::new(0)),
        common,
        on_obs,
        member_addrs,
        nodes: NodeThread::new()?,
    };
    let mut running = Vec::new();
    for s in servers {
        let cluster = s
            .bound
            .listener
            .into_std()
            .map_err(|e| UserError(format!("server {}: its cluster socket: {e}", s.id)))?;
        running.push(Some(launcher.launch(s.id, cluster, s.members)?));
    }
    let servers = Arc::new(Servers { launcher, running: tokio::sync::Mutex::new(running) });
    if let Some(on_start) = on_start {
        on_start(servers.clone());
    }
    tokio::pin!(until);
    let failed = loop {
        tokio::select! {
            _ = &mut until => break false,
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
        if servers.running.lock().await.iter().flatten().any(|s| s.shared.failed.load(Ordering::Relaxed)) {
            break true;
        }
    };
    // Every slot emptied: a restart asked for from now on finds the servers stopping.
    let all = std::mem::take(&mut *servers.running.lock().await);
    for r in all.into_iter().flatten() {
        r.stop().await;
    }
    Ok(if failed { 3 } else { 0 })
}

/// The thread the servers' nodes run on — their Raft drivers, timers and peer connections —
/// apart from the members' connections and the password hashing: a crowd of members, however
/// busy, cannot queue a heartbeat behind its own work past the election timeout.
struct NodeThread(Option<tokio::runtime::Runtime>);

impl NodeThread {
    fn new() -> Result<NodeThread, UserError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("agora-vote-node")
            .enable_all()
            .build()
            .map_err(|e| UserError(format!("cannot start the nodes' runtime: {e}")))?;
        Ok(NodeThread(Some(rt)))
    }

    /// While the guard lives, what is spawned or registered runs on the node thread.
    fn enter(&self) -> tokio::runtime::EnterGuard<'_> {
        self.0.as_ref().expect("running").enter()
    }
}

impl Drop for NodeThread {
    fn drop(&mut self) {
        // Dropped inside the members' runtime, where waiting is not allowed: the nodes have
        // stopped by then (or never started); what is left is let go.
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// `agora vote`: every server in this process, and a crowd of members unless `--stay` alone.
fn local(a: &VoteLocalArgs, argv: &[String]) -> Result<i32, UserError> {
    if a.vanish * 2 >= a.clients {
        return Err(UserError(format!(
            "--vanish {}: fewer than half the --clients ({}) may vanish",
            a.vanish, a.clients
        )));
    }
    let n = a.servers;
    let temp = tempfile::Builder::new()
        .prefix("agora-vote-")
        .tempdir()
        .map_err(|e| UserError(format!("cannot create a temporary data directory: {e}")))?;
    let data_dir = temp.path().to_path_buf();
    let session_timeout = Duration::from_millis(a.session_timeout_ms);
    let election = Duration::from_millis(a.election_timeout_ms);
    let setup = Arc::new(VoteSetup::new(ServerConfig::new(n, election, session_timeout)));
    let admin = front::admin_token(&Secret::random().to_hex());
    let rt = runtime()?;
    rt.block_on(async {
        let mut view = match &a.ui {
            Some(addr) => {
                let flags = Flags {
                    addr,
                    linger: a.ui_linger,
                    hold: false,
                    verbs: steer::STOP_START,
                    unavailable: None,
                };
                let boards = live::Boards::default();
                let run = LiveRun::start(flags, n, Box::new(boards.clone()), live::keep).await?;
                Some((run, boards))
            }
            None => None,
        };
        let (last_tx, last_rx) = tokio::sync::oneshot::channel::<tokio::sync::oneshot::Sender<()>>();
        let (on_obs, on_start) = match view.as_mut() {
            Some((run, boards)) => {
                let nodes_to_view = run.on_start();
                let controls = run.take_controls();
                let boards = boards.clone();
                let on_start: OnStart = Box::new(move |servers: Arc<Servers>| {
                    let shared = servers
                        .running
                        .try_lock()
                        .map(|r| r.iter().flatten().map(|r| r.shared.clone()).collect::<Vec<_>>());
                    // Nobody else holds the servers yet: they have just started.
                    let shared = shared.expect("the servers, just started");
                    nodes_to_view(shared.clone());
                    if let Some(controls) = controls {
                        tokio::spawn(live::steer(controls, servers.clone(), shared));
                    }
                    tokio::spawn(live::read_boards(servers, boards, last_rx));
                });
                (Some(run.on_obs()), Some(on_start))
            }
            None => (None, None),
        };
        let last_read = view.is_some().then_some(last_tx);
        let any: SocketAddr = "127.0.0.1:0".parse().expect("literal address");
        let mut servers = Vec::new();
        let mut addrs = Vec::new();
        let mut member_addrs = Vec::new();
        for i in 0..n {
            let id = NodeId(i as u32);
            let bound =
                BoundNode::bind(id, any).await.map_err(|e| UserError(format!("cannot bind {any}: {e}")))?;
            let members = crate::commands::shared::tcp::listen_for_clients(any)
                .map_err(|e| UserError(format!("cannot bind {any}: {e}")))?;
            addrs.push(bound.local_addr().expect("bound"));
            member_addrs.push(members.local_addr().expect("bound"));
            servers.push(Listening { id, bound, members });
        }
        let mut cfg = NetConfig::new("vote", addrs);
        cfg.open = Store::cluster_mode(&data_dir, n).map_err(|e| UserError::from_run(e.into()))?;
        cfg.data_dir = Some(data_dir.clone());
        cfg.keep_observations = false;
        if view.is_some() {
            cfg.recent_messages = RECENT;
        }
        let plan = Plan {
            setup,
            cfg,
            servers,
            common: FrontSettings::new(&a.common, Some(admin.clone()), session_timeout),
            on_obs,
            on_start,
        };
        let spec = crowd::Spec {
            clients: a.clients,
            vanish: a.vanish,
            seed: a.seed,
            session_timeout,
            admin: admin.clone(),
            json: a.json,
        };
        let stay = a.stay;
        let (report_tx, report_rx) = tokio::sync::oneshot::channel();
        let addrs_for_crowd = member_addrs.clone();
        let work = async move {
            let r = crowd::run(spec, addrs_for_crowd).await;
            let failed = r.is_err();
            let _ = report_tx.send(r);
            if stay && !failed {
                for (i, addr) in member_addrs.iter().enumerate() {
                    println!("server {i}  {addr}   nc {} {}", addr.ip(), addr.port());
                }
                println!("admin token {admin}");
                println!("serving until Ctrl-C");
                interrupted().await;
            }
            // The live view reads the boards once more, as the members left them.
            if let Some(last) = last_read {
                let (ack, acked) = tokio::sync::oneshot::channel();
                if last.send(ack).is_ok() {
                    let _ = tokio::time::timeout(Duration::from_secs(5), acked).await;
                }
            }
        };
        let code = run_plan(plan, work).await?;
        let report = report_rx.await.map_err(|_| UserError("the crowd did not finish".into()))??;
        if code != 0 {
            return Ok(code);
        }
        let Some((run, _)) = view else { return Ok(report.print(a.json)) };
        let linger = run.lingers();
        let snapshots = run.finish_with(report.verdicts(&repro::command(argv, a.seed))).await;
        let code = report.print(a.json);
        if linger {
            eprintln!("ui: the run has ended; the page stays up until Ctrl-C");
            interrupted().await;
        }
        drop(snapshots);
        Ok(code)
    })
}

/// The cluster file of `agora vote serve`, checked, its names resolved.
struct ServeFile {
    cf: ClusterFile,
    addrs: Vec<SocketAddr>,
    member_addr: SocketAddr,
    election: Duration,
}

/// A `protocol = "vote"` cluster file and its election timeout, checked; no name resolved
/// (the administrator token needs none, and may be asked where the names mean nothing).
fn load(path: &std::path::Path) -> Result<(ClusterFile, Duration), UserError> {
    let cf = ClusterFile::load(path)?;
    if cf.protocol != "vote" {
        return Err(UserError(format!(
            "cluster file {}: protocol = {:?}; `agora vote serve` runs `protocol = \"vote\"` clusters",
            path.display(),
            cf.protocol
        )));
    }
    let election_ms = match cf.params.get("timeout_ms") {
        None => 150.0,
        Some(toml::Value::Integer(i)) if *i > 0 && *i <= 60_000 => *i as f64,
        Some(toml::Value::Float(f)) if *f > 0.0 && *f <= 60_000.0 => *f,
        Some(v) => {
            return Err(UserError(format!("params.timeout_ms = {v}: expected a number of ms in (0, 60000]")))
        }
    };
    if let Some(k) = cf.params.keys().find(|k| k.as_str() != "timeout_ms") {
        return Err(UserError(format!("params.{k}: not a parameter of vote (its parameters: timeout_ms)")));
    }
    Ok((cf, Duration::from_secs_f64(election_ms / 1e3)))
}

/// [`load`], then the addresses server `me` needs: every server's cluster address
/// (`ClusterFile::peer_addrs_for`: its own resolved, trying again for up to `wait`; a peer's
/// name that does not resolve yet is looked up at every dial) and its own members' address.
fn load_resolved(path: &std::path::Path, me: usize, wait: Duration) -> Result<ServeFile, UserError> {
    let (cf, election) = load(path)?;
    let addrs = cf.peer_addrs_for(me, wait, "servers")?;
    let (member_addr, _) =
        cf.client_addrs_for(me, "vote", "where it serves members, e.g. vote = \"127.0.0.1:7400\"", |n| {
            n.vote.as_deref()
        })?;
    Ok(ServeFile { cf, addrs, member_addr, election })
}

/// `agora vote admin-token`.
fn print_admin_token(a: &VoteTokenArgs) -> Result<i32, UserError> {
    let (cf, _) = load(&a.config)?;
    println!("{}", front::admin_token(&cf.secret(&a.config)?.to_hex()));
    Ok(0)
}

/// `agora vote serve`: one server of a cluster file.
fn serve(a: &VoteServeArgs) -> Result<i32, UserError> {
    let me = a.id as usize;
    let ServeFile { cf, addrs, member_addr, election } =
        load_resolved(&a.config, me, Duration::from_millis(a.wait_resolve_ms))?;
    let session_timeout = Duration::from_millis(a.session_timeout_ms);
    let setup = Arc::new(VoteSetup::new(ServerConfig::new(addrs.len(), election, session_timeout)));
    let secret = cf.secret(&a.config)?;
    let admin = front::admin_token(&secret.to_hex());
    let mut cfg = NetConfig::new(&cf.cluster, addrs.clone());
    cfg.names = cf.names();
    cfg.secret = secret;
    cfg.data_dir = cf.data_dir.clone();
    cfg.seed = cf.seed;
    cfg.keep_observations = false;
    cfg.open = open_mode(a.new, a.rejoin);
    let sample = a.sample_ms.map(Duration::from_millis);
    let metrics = parse_addr(&a.metrics_addr)?;
    if sample.is_some() || metrics.is_some() {
        // Each server keeps its latest messages, for the live view's space-time diagram.
        cfg.recent_messages = RECENT;
    }
    let cluster_listener =
        a.listen_fd.map(|fd| inherited_listener(fd, addrs[me], "--listen-fd")).transpose()?;
    let member_listener = a.vote_fd.map(|fd| inherited_listener(fd, member_addr, "--vote-fd")).transpose()?;
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(c), Some(k)) => Some(tls::acceptor(c, k)?),
        (None, None) => None,
        _ => return Err(UserError("--tls-cert and --tls-key go together".into())),
    };
    let events = a.events;
    let id = a.id;
    let on_obs: Option<ObsHook<VoteObs>> = events.then(|| {
        Arc::new(move |_at: u64, o: &VoteObs| match o {
            VoteObs::Raft(RaftObs::Leader { term }) => {
                event(serde_json::json!({ "node": id, "leader": id, "term": term }))
            }
            VoteObs::Raft(RaftObs::SteppedDown { term }) => {
                event(serde_json::json!({ "node": id, "stepped_down": term }))
            }
            _ => {}
        }) as ObsHook<VoteObs>
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
        let members = match member_listener {
            Some(l) => {
                l.set_nonblocking(true).map_err(|e| UserError(format!("--vote-fd: {e}")))?;
                TcpListener::from_std(l).map_err(|e| UserError(format!("--vote-fd: {e}")))?
            }
            None => crate::commands::shared::tcp::listen_for_clients(member_addr)
                .map_err(|e| UserError(format!("cannot listen for members at {member_addr}: {e}")))?,
        };
        let local = members.local_addr().map_err(|e| UserError(e.to_string()))?;
        let tls_on = tls.is_some();
        if events {
            event(serde_json::json!({
                "node": id,
                "listening": bound.local_addr().map(|a| a.to_string()).unwrap_or_default(),
                "vote": local.to_string(),
                "tls": tls_on,
                "pid": std::process::id(),
            }));
        } else {
            eprintln!("agora vote: server {id} serving members at {local}");
        }
        let register = metrics_endpoint(metrics, vec![id]).await?;
        let plan = Plan {
            setup,
            cfg,
            servers: vec![Listening { id: nid, bound, members }],
            common: FrontSettings { tls, ..FrontSettings::new(&a.common, Some(admin), session_timeout) },
            on_obs: on_obs.map(|hook| Box::new(move |_| hook.clone()) as ObsHooks<VoteObs>),
            // The server's message counters: printed as `agora node` prints them
            // (`--sample-ms`), served at `--metrics-addr`.
            on_start: Some(Box::new(move |servers: Arc<Servers>| {
                // Nobody else holds the servers yet: they have just started.
                if let Ok(running) = servers.running.try_lock() {
                    let shared: Vec<_> = running.iter().flatten().map(|r| r.shared.clone()).collect();
                    if let Some(every) = sample {
                        for s in &shared {
                            tokio::spawn(super::node::print_counts(id, s.clone(), every));
                        }
                    }
                    register(shared);
                }
            }) as OnStart),
        };
        run_plan(plan, interrupted()).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The node runs on its own thread: with every thread of the members' runtime held (here
    /// its only one, blocked), a one-server cluster still elects itself and reports it.
    #[test]
    fn the_node_makes_progress_while_the_members_runtime_is_blocked() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let (leader_tx, leader_rx) = std::sync::mpsc::channel::<u64>();
        let leader_tx = std::sync::Mutex::new(leader_tx);
        let on_obs: ObsHook<VoteObs> = Arc::new(move |_, o: &VoteObs| {
            if let VoteObs::Raft(RaftObs::Leader { term }) = o {
                let _ = leader_tx.lock().expect("not poisoned").send(*term);
            }
        });
        let (end_tx, end_rx) = tokio::sync::oneshot::channel::<()>();
        rt.block_on(async move {
            let peer = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = peer.local_addr().expect("address");
            let bound = BoundNode::from_std(NodeId(0), peer).expect("listener");
            let members = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let session = Duration::from_secs(60);
            let setup = Arc::new(VoteSetup::new(ServerConfig::new(1, Duration::from_millis(150), session)));
            let plan = Plan {
                setup,
                cfg: NetConfig::new("isolated", vec![addr]),
                servers: vec![Listening { id: NodeId(0), bound, members }],
                common: FrontSettings {
                    timeout: Duration::from_secs(10),
                    max_clients: 16,
                    admin: None,
                    session_timeout: session,
                    tls: None,
                },
                on_obs: Some(Box::new(move |_| on_obs.clone())),
                on_start: None,
            };
            let run = run_plan(plan, async {
                let _ = end_rx.await;
            });
            tokio::pin!(run);
            // Polled once: the node is started (everything before the plan's first wait).
            tokio::select! {
                biased;
                r = &mut run => panic!("the plan ended at once: {r:?}"),
                _ = std::future::ready(()) => {}
            }
            // This thread, the members' runtime's only one, now blocks: nothing of that
            // runtime runs until the node has reported its election (or the guard runs out).
            let term = leader_rx.recv_timeout(Duration::from_secs(120));
            assert!(term.is_ok(), "no election reported while the members' runtime was blocked");
            let _ = end_tx.send(());
            assert_eq!(run.await.ok(), Some(0));
        });
    }
}
