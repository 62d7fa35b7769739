//! Running nodes: a whole cluster in this process (`agora run`), or one node of a cluster
//! file (`agora node`), each until it is done.
//!
//! *Done* in one process means quiescent: no message in flight anywhere (sent and not yet
//! handled), no timer pending, for a few consecutive polls. A lone node cannot see the other
//! processes, so it is done when it has been idle (no event handled, no timer pending, its
//! send queues empty) for `idle`. Nodes that heartbeat forever count as done once their
//! protocol says only that is left (`Protocol::background`): every node of the process for
//! 100 ms, or the lone node for `idle`. Both stop at `max_time` regardless.
//!
//! A lone node's idle time counts only from the moment every peer of the cluster file has
//! been seen listening: a replica started long before its clients must not stop before they
//! come (the node dials each peer until its port accepts a connection, then closes it).
//!
//! A node whose idleness alone must not end it — one of a cluster that a supervisor sees
//! whole ([`Supervised`], `agora up`) — reports each change of its idleness instead, and ends
//! when the supervisor, having seen every node idle at once, tells it to. A replica that
//! stopped on its own would look crashed to the others, which would start elections and
//! never be idle again.

use crate::clock::{cpu_ms, unix_ns};
use crate::faults::{Controls, Happened, Nodes, Order};
use crate::node::{self, BoundNode, NetConfig, NodeReport, NodeShared, ObsHook};
use crate::store::Store;
use agora_core::{NodeId, Protocol, Setup};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tracing::warn;

/// Why a runtime run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// All nodes in one process: nothing in flight and no timer pending, or every node only in
    /// the background, for a few checks in a row.
    Quiescent,
    /// A lone node: no event (or only background work) for its idle time, counted once every
    /// peer's port accepted a connection.
    Idle,
    /// The time limit passed first.
    TimeLimit,
    /// A signal (Ctrl-C, SIGTERM) stopped the node.
    Interrupted,
    /// A node's storage failed: its writes could not be made durable, so it stopped.
    Failed,
}

impl End {
    /// The name a [`agora_core::RunSummary`]'s `end` gives it (kebab case).
    pub fn as_str(self) -> &'static str {
        match self {
            End::Quiescent => "quiescent",
            End::Idle => "idle",
            End::TimeLimit => "time-limit",
            End::Interrupted => "interrupted",
            End::Failed => "storage-failure",
        }
    }
}

/// What a runtime run produced.
pub struct RunOutcome<O> {
    /// One report per node of the run, in id order.
    pub reports: Vec<NodeReport<O>>,
    /// Why the run ended.
    pub end: End,
    /// Wall-clock time the run took.
    pub wall: Duration,
    /// CPU time of this process during the run.
    pub cpu_ms: f64,
    /// Unix ns when the run started (observation times are reported relative to it).
    pub started_unix_ns: u64,
    /// Unix ns of the last event any node handled.
    pub last_active_unix_ns: u64,
    /// The faults injected while it ran (`Controls`), with their Unix ns, in order.
    pub faults: Vec<(u64, Happened)>,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A node's socket could not be bound to its address.
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    /// A node's database could not be opened or created.
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
}

/// How long every node of a one-process cluster must have been in the background (only
/// heartbeats left, see `Protocol::background`) before the run ends.
const BACKGROUND_SETTLE: Duration = Duration::from_millis(100);

/// After a crash, how long the running nodes must have handled nothing before the run counts
/// as quiescent (see [`idle`]).
const AFTER_CRASH_SETTLE: Duration = Duration::from_millis(1500);

type ObsOf<S> = <<S as Setup>::Node as Protocol>::Obs;

/// Makes each node's observation hook, given the node's id (see [`run_local_observed`]).
pub type ObsHooks<O> = Box<dyn Fn(NodeId) -> ObsHook<O> + Send + Sync>;

/// Runs every node of `setup` in this process on 127.0.0.1 with ephemeral ports. Their
/// databases, if any, are all created (a new cluster) or must all exist (a restart): see
/// [`Store::cluster_mode`].
/// `metrics` receives the nodes' live state once they start (for `--metrics-addr`).
pub async fn run_local<S: Setup>(
    setup: Arc<S>,
    cfg: NetConfig,
    max_time: Duration,
    on_start: impl FnOnce(Vec<Arc<NodeShared>>),
) -> Result<RunOutcome<ObsOf<S>>, RunError> {
    run_local_observed(setup, cfg, max_time, on_start, None, None).await
}

/// [`run_local`], with each node's observations also handed to the hook `on_obs` makes for it
/// (called once per node, with its id) as they are made, once what their steps persisted is
/// durable: to follow the run while it goes (a live view). The hook runs on the node's task:
/// it must be quick. With `controls`, the faults they ask for are injected while it runs.
pub async fn run_local_observed<S: Setup>(
    setup: Arc<S>,
    cfg: NetConfig,
    max_time: Duration,
    on_start: impl FnOnce(Vec<Arc<NodeShared>>),
    on_obs: Option<ObsHooks<ObsOf<S>>>,
    controls: Option<Controls>,
) -> Result<RunOutcome<ObsOf<S>>, RunError> {
    let n = setup.nodes();
    let any: SocketAddr = "127.0.0.1:0".parse().expect("literal address");
    let mut bound = Vec::with_capacity(n);
    for i in 0..n {
        bound.push(BoundNode::bind(NodeId(i as u32), any).await.map_err(|e| RunError::Bind(any, e))?);
    }
    run_bound_observed(setup, bound, cfg, max_time, on_start, on_obs, controls).await
}

/// Runs every node of `setup` in this process on listeners already bound (node `i` on
/// `bound[i]`), until quiescent as [`run_local`], with its databases as [`run_local`] opens
/// them.
pub async fn run_bound<S: Setup>(
    setup: Arc<S>,
    bound: Vec<BoundNode>,
    cfg: NetConfig,
    max_time: Duration,
    on_start: impl FnOnce(Vec<Arc<NodeShared>>),
) -> Result<RunOutcome<ObsOf<S>>, RunError> {
    run_bound_observed(setup, bound, cfg, max_time, on_start, None, None).await
}

/// [`run_bound`], with the observations handed to `on_obs` as [`run_local_observed`] does,
/// and, with `controls`, the faults it asks for injected while the run goes (see `faults`).
pub async fn run_bound_observed<S: Setup>(
    setup: Arc<S>,
    bound: Vec<BoundNode>,
    mut cfg: NetConfig,
    max_time: Duration,
    on_start: impl FnOnce(Vec<Arc<NodeShared>>),
    on_obs: Option<ObsHooks<ObsOf<S>>>,
    controls: Option<Controls>,
) -> Result<RunOutcome<ObsOf<S>>, RunError> {
    let n = setup.nodes();
    assert_eq!(bound.len(), n, "one listener per node");
    if let Some(dir) = &cfg.data_dir {
        cfg.open = Store::cluster_mode(dir, n)?;
    }
    cfg.addrs = bound.iter().map(|b| b.local_addr().expect("bound socket has an address")).collect();
    let cfg = Arc::new(cfg);
    let in_flight = Arc::new(AtomicI64::new(0));
    let (t0, cpu0, unix0) = (Instant::now(), cpu_ms(), unix_ns());
    let mut nodes = Nodes::new(setup.clone(), cfg, in_flight.clone(), on_obs);
    for b in bound {
        nodes.start(b)?;
    }
    on_start(nodes.shared());
    let (mut orders, hold, mut on_fault) = match controls {
        Some(c) => (Some(c.orders), Some(c.hold), Some(c.on_fault)),
        None => (None, None, None),
    };
    let mut quiet = 0;
    let end = loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(2)) => {}
            Some(order) = next_order(&mut orders) => {
                let on_fault = on_fault.as_mut().expect("orders come with controls");
                let outcome = nodes.apply(order.fault, on_fault).await;
                let _ = order.done.send(outcome);
            }
        }
        if nodes.running().any(|s| s.failed.load(Ordering::Relaxed)) {
            break End::Failed;
        }
        let held = hold.as_ref().is_some_and(|h| h.load(Ordering::Relaxed));
        quiet = if !held && idle(&nodes, &in_flight) { quiet + 1 } else { 0 };
        if quiet >= 3 {
            break End::Quiescent;
        }
        if t0.elapsed() >= max_time {
            break End::TimeLimit;
        }
    };
    let shared = nodes.shared();
    if end == End::TimeLimit {
        // A run that should have ended: say which nodes still had work of their own.
        let busy: Vec<usize> =
            (0..n).filter(|&i| shared[i].background_since_ns.load(Ordering::Acquire) == 0).collect();
        warn!("time limit reached; nodes not yet in the background: {busy:?}");
    }
    let (reports, faults) = nodes.stop().await;
    let last = shared.iter().map(|s| s.last_active_ns.load(Ordering::Relaxed)).max().unwrap_or(unix0);
    Ok(RunOutcome {
        reports,
        end,
        wall: t0.elapsed(),
        cpu_ms: cpu_ms() - cpu0,
        started_unix_ns: unix0,
        last_active_unix_ns: last,
        faults,
    })
}

/// The next fault asked for; never, without controls or once the askers are gone.
async fn next_order(orders: &mut Option<mpsc::Receiver<Order>>) -> Option<Order> {
    match orders {
        Some(o) => match o.recv().await {
            Some(order) => Some(order),
            None => {
                *orders = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

/// Whether the nodes of a one-process run have nothing left to do: no paused node (its work
/// waits for it), and either every running node only in the background, or nothing in flight
/// and no timer pending. Once a node has crashed, the messages lost with it stay counted in
/// flight, so then the running nodes must instead have had no timer pending and handled
/// nothing for [`AFTER_CRASH_SETTLE`] (longer than a writer's reconnect backoff, so a message
/// waiting for a restarted node has reached it).
fn idle<S: Setup>(nodes: &Nodes<S>, in_flight: &AtomicI64) -> bool {
    if nodes.any_paused() {
        return false;
    }
    if nodes.running().all(|s| s.background_for(BACKGROUND_SETTLE)) {
        return true;
    }
    let no_timers = nodes.running().all(|s| s.pending.load(Ordering::Acquire) == 0);
    if !nodes.any_crashed() {
        return no_timers && in_flight.load(Ordering::Acquire) == 0;
    }
    let settled = unix_ns().saturating_sub(AFTER_CRASH_SETTLE.as_nanos() as u64);
    no_timers && nodes.running().all(|s| s.last_active_ns.load(Ordering::Relaxed) <= settled)
}

/// Dials each of `peers` until its port accepts a connection (then closes it: the peer logs a
/// connection closed before its handshake at debug level), and sends the Unix ns at which the
/// last one did. Gives up when `stop` is set. One task, one connection attempt at a time.
async fn await_peers(
    mut peers: Vec<(SocketAddr, Option<String>)>,
    all_up: watch::Sender<Option<u64>>,
    mut stop: watch::Receiver<bool>,
) {
    const RETRY: Duration = Duration::from_millis(50);
    const DIAL_TIMEOUT: Duration = Duration::from_millis(500);
    while let Some((addr, name)) = peers.last() {
        // A peer given by name is dialled where its name resolves now, as the node's own
        // dials do: one that did not resolve at the start has no address until it does.
        let dial = tokio::time::timeout(DIAL_TIMEOUT, async {
            match crate::conn::peer_addr(*addr, name.as_deref()).await {
                Some(a) => tokio::net::TcpStream::connect(a).await,
                None => Err(std::io::ErrorKind::NotFound.into()),
            }
        });
        if let Ok(Ok(stream)) = dial.await {
            drop(stream);
            peers.pop();
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(RETRY) => {}
            _ = stop.changed() => return,
        }
    }
    let _ = all_up.send(Some(unix_ns()));
}

/// How a lone node is run besides its cluster's settings.
pub struct Lone<O> {
    /// How long the node must be idle (or only in the background) before it ends.
    pub idle: Duration,
    /// The longest the node runs, whatever it is doing.
    pub max_time: Duration,
    /// A socket already listening at the node's address (else it binds its address itself).
    pub listener: Option<std::net::TcpListener>,
    /// Called with each observation as it is made.
    pub on_obs: Option<ObsHook<O>>,
    /// Set when a supervisor decides when the whole cluster is done: the node then does not
    /// end when it is idle.
    pub supervised: Option<Supervised>,
}

/// The node's side of a supervisor that sees every node of the cluster.
pub struct Supervised {
    /// Called with `true` when the node becomes idle (when a lone node would end) and with
    /// `false` when it has work again.
    pub on_idle: Box<dyn FnMut(bool) + Send>,
    /// Resolves when the supervisor has seen every node idle at once: the node ends as idle.
    pub stop: StopFuture,
}

/// What a supervisor's stop is to a node.
pub type StopFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// How long a node told to stop waits for its goodbye (`Protocol::on_stop`) to be written to
/// its connections before it stops anyway.
const LEAVE_GRACE: Duration = Duration::from_secs(2);

/// Asks the node to leave cleanly and waits, at most [`LEAVE_GRACE`], until it has run
/// `on_stop` and its connections have written everything it sent.
async fn leave(id: NodeId, shared: &NodeShared) {
    shared.leave.notify_one();
    let deadline = Instant::now() + LEAVE_GRACE;
    while Instant::now() < deadline {
        if shared.left.load(Ordering::Acquire) && shared.unsent.load(Ordering::Acquire) == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tracing::warn!("node {id}: stopping before its last messages were written");
}

/// Runs node `id` of a cluster whose addresses are in `cfg`, until it is idle for
/// `lone.idle` (under a supervisor: until the supervisor stops it), `lone.max_time` passes, or
/// `interrupt` resolves (a signal). `on_bound` gets the address it listens on before the node
/// starts, so before its first observation; `on_start` gets the node's shared state once it
/// runs.
pub async fn run_node<S: Setup>(
    setup: Arc<S>,
    id: NodeId,
    cfg: NetConfig,
    lone: Lone<ObsOf<S>>,
    interrupt: impl std::future::Future<Output = ()>,
    on_bound: impl FnOnce(SocketAddr),
    on_start: impl FnOnce(Vec<Arc<NodeShared>>),
) -> Result<RunOutcome<ObsOf<S>>, RunError> {
    let Lone { idle, max_time, listener, on_obs, supervised } = lone;
    let (mut on_idle, mut stopped) = match supervised {
        Some(s) => (Some(s.on_idle), s.stop),
        None => (None, Box::pin(std::future::pending()) as StopFuture),
    };
    let mut was_idle = false;
    let addr = cfg.addrs[id.index()];
    let bound = match listener {
        Some(l) => BoundNode::from_std(id, l),
        None => BoundNode::bind(id, addr).await,
    }
    .map_err(|e| RunError::Bind(addr, e))?;
    let local = bound.local_addr().map_err(|e| RunError::Bind(addr, e))?;
    let cfg = Arc::new(cfg);
    let (stop_tx, stop) = watch::channel(false);
    let (t0, cpu0, unix0) = (Instant::now(), cpu_ms(), unix_ns());
    let name = |i: usize| cfg.names.get(i).cloned().flatten();
    let peers: Vec<(SocketAddr, Option<String>)> =
        (0..cfg.addrs.len()).filter(|i| *i != id.index()).map(|i| (cfg.addrs[i], name(i))).collect();
    on_bound(local);
    let (shared, handle) = node::start(setup, bound, cfg, Arc::new(AtomicI64::new(0)), stop.clone(), on_obs)?;
    on_start(vec![shared.clone()]);
    let (all_up_tx, all_up) = watch::channel(None::<u64>);
    tokio::spawn(await_peers(peers, all_up_tx, stop));
    tokio::pin!(interrupt);
    let end = loop {
        tokio::select! {
            _ = &mut interrupt => {
                leave(id, &shared).await;
                break End::Interrupted;
            }
            _ = &mut stopped => break End::Idle,
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
        if shared.failed.load(Ordering::Relaxed) {
            break End::Failed;
        }
        // Idle time counts from the last event or from when the last peer came up.
        let all_up_ns = *all_up.borrow();
        let is_idle = all_up_ns.is_some_and(|all_up_ns| {
            let now = unix_ns();
            let since_up = now.saturating_sub(all_up_ns) >= idle.as_nanos() as u64;
            let quiet_ns = now.saturating_sub(shared.last_active_ns.load(Ordering::Relaxed));
            let drained = shared.unsent.load(Ordering::Acquire) == 0;
            let quiet =
                drained && shared.pending.load(Ordering::Acquire) == 0 && quiet_ns >= idle.as_nanos() as u64;
            since_up && (quiet || shared.background_for(idle))
        });
        match &mut on_idle {
            None if is_idle => break End::Idle,
            Some(report) if is_idle != was_idle => {
                was_idle = is_idle;
                report(is_idle);
            }
            _ => {}
        }
        if t0.elapsed() >= max_time {
            break End::TimeLimit;
        }
    };
    let _ = stop_tx.send(true);
    let report = handle.await.expect("node task does not panic");
    Ok(RunOutcome {
        reports: vec![report],
        end,
        wall: t0.elapsed(),
        cpu_ms: cpu_ms() - cpu0,
        started_unix_ns: unix0,
        last_active_unix_ns: shared.last_active_ns.load(Ordering::Relaxed),
        faults: Vec::new(),
    })
}
