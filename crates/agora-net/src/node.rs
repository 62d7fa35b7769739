//! The node driver: one tokio task per node that owns the protocol state machine, feeds it
//! messages and timers, and applies its effects — persists first, then sends.
//!
//! **Group commit.** The driver handles the messages already waiting in its inbox (up to 256)
//! one step after another, gathers their writes, commits them in one redb transaction (one
//! fsync), and only then hands the messages of all those steps to the network. Every step's
//! writes are thus durable before any of its messages leave, as the protocol API promises, at
//! the cost of one fsync per batch rather than per message.
//!
//! **Pipelined.** The transaction is committed on the node's committer thread, not on the
//! driver's: while the disk syncs, the driver goes on handling what arrives, and gathers the
//! next batch's writes and messages. That batch is held — its messages, the timers of
//! `Effect::Synced`, its deferred writes and its observations — until the batch before it is
//! durable; then its own transaction starts, and so on, one transaction in flight at a time.
//! So nothing leaves before every write of its step *and of every step before it* is durable:
//! what the outside sees is what one synchronous commit per batch would show, and a crash
//! loses only steps whose messages never left. A driver whose held batch has grown to
//! [`HELD_MAX`] effects stops taking messages and calls until the commit lands. The exception is a message sent
//! early (`Effect::SendEarly`): it is handed to the network as soon as the driver has handled
//! the messages waiting (the batch of steps it came from), before that batch's commit and
//! before any commit in flight, so that it travels while the disk syncs (a Raft leader's
//! appends reach its followers while it writes the same entries), and a step that asked to
//! hear of its writes' durability (`Effect::Synced`) is told by a timer right after the
//! commit.
//!
//! Send queues are bounded (`NetConfig::queue_capacity` frames per peer). **When a queue is
//! full the message is dropped and counted** (`messages_dropped`, and `queue_full` in the
//! node's report), exactly as a lossy link would lose it: the driver never blocks on a slow
//! peer, so two nodes flooding each other cannot deadlock, and protocols that need reliability
//! retransmit as they must on any real network.

use crate::clock::{unix_ns, ClockBend};
use crate::conn::{
    delay_frames, serve_inbound, serve_outbound, Budget, Dial, Inbound, InboundCtx, Slots, WriterShared,
};
use crate::handshake::{Expect, Secret};
use crate::limits::{self, Socket, Throttle};
use crate::store::{node_file, OpenMode, Store, StoreError, Write};
use agora_core::interp::{Frame, Host, Interp, Targets, Timers, Write as Effected};
use agora_core::{
    wire, Context, Counters, Deferred, EffectOf, Message, Metrics, NodeId, OpId, Protocol, Rng, Setup,
    Stable, Time, Violation,
};
use bytes::Bytes;
use rand::SeedableRng;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};
use tracing::{debug, error, info, warn};

/// A step or a commit that takes this long is logged (at `info`): the node handled nothing
/// else meanwhile.
const SLOW: Duration = Duration::from_millis(20);

/// Writes and messages a batch may gather while the batch before it is being committed;
/// past this, the driver takes no more messages or local calls until that commit lands.
const HELD_MAX: usize = 16 * 1024;

/// The first wait after a failed accept; it doubles up to a second while accepts fail.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);

/// Observations per chunk of a node's record.
const OBS_CHUNK: usize = 1 << 16;

/// The chunks of observations as one vector, sized once; each chunk is freed as soon as it is
/// moved, so the node never holds its observations twice over.
fn flatten<T>(chunks: Vec<Vec<T>>) -> Vec<T> {
    let mut all = Vec::with_capacity(chunks.iter().map(Vec::len).sum());
    for chunk in chunks {
        all.extend(chunk);
    }
    all
}

/// Settings every node of a runtime cluster shares.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// The cluster's name: a hello naming another cluster is refused, so two clusters on the
    /// same hosts never mix.
    pub cluster: String,
    /// Address of every node, indexed by node id.
    pub addrs: Vec<SocketAddr>,
    /// The `host:port` a node's address was resolved from, for the nodes given by name (none
    /// for an address given as such): resolved again at every dial, so a peer whose host
    /// comes back with another address (a restarted container) is found there. `addrs` is
    /// the fallback when a name does not resolve, none when it is unspecified (the name never
    /// resolved yet: the dial fails and is tried again). Empty: every address is final.
    pub names: Vec<Option<String>>,
    /// The key every node proves it holds in the handshake (see `handshake`).
    pub secret: Secret,
    /// Where each node keeps its redb database (`node-<id>.redb`); `None`: nothing survives
    /// a restart.
    pub data_dir: Option<PathBuf>,
    /// Whether a node's database must exist, may be created, or is being recreated after a
    /// loss (see [`OpenMode`]).
    pub open: OpenMode,
    /// Seeds each node's random source (mixed with its id).
    pub seed: u64,
    /// Frames waiting per outbound connection before new ones are dropped.
    pub queue_capacity: usize,
    /// Messages waiting for a node's driver before connections stop being read.
    pub inbox_capacity: usize,
    /// A peer must complete its handshake within this time.
    pub handshake_timeout: Duration,
    /// An authenticated connection that sends no frame for this long is closed. Dialers send a
    /// keepalive every third of the acceptor's idle timeout (it tells them in its handshake).
    pub idle_timeout: Duration,
    /// A frame must arrive whole within this time of its first byte (waiting for budget
    /// included), or its connection is closed.
    pub frame_timeout: Duration,
    /// Inbound connections still in their handshake a node serves at once; a newer one closes
    /// the one that has waited longest. (Authenticated connections: one per peer.)
    pub max_handshaking: usize,
    /// Bytes a node's inbound connections may hold, together, for frames larger than their
    /// own read buffer (`conn::MESSAGE_BUFFER_BYTES`); a frame larger than the whole budget
    /// closes its connection, so keep it at least one frame of the maximum size.
    pub frame_budget_bytes: usize,
    /// Bytes gathered into one socket write.
    pub max_batch_bytes: usize,
    /// Keep every observation for the node's report (the checker judges them at the end).
    /// A server that runs for days turns it off: observations then only reach the node's
    /// observation hook, if any.
    pub keep_observations: bool,
    /// Keep a sample of each node's latest messages, this many sent and received
    /// (`NodeShared::recent`), for a live view; 0: none (the default).
    pub recent_messages: usize,
    /// A modelled one-way latency per link, `link_delay[from][to]` (a region matrix of a
    /// cluster file): every frame waits this long after it is queued before it is written.
    /// Empty, or a link left out: no added delay.
    pub link_delay: Vec<Vec<Duration>>,
    /// How far its nodes' clocks depart from real time, set while they run (a clock fault;
    /// see [`ClockBend`]). Shared by every node of the config.
    pub clock: Arc<ClockBend>,
}

impl NetConfig {
    /// Defaults, with a fresh random secret: right when every node runs in this process; nodes
    /// in several processes must share a secret (a cluster file's `secret`).
    pub fn new(cluster: &str, addrs: Vec<SocketAddr>) -> Self {
        NetConfig {
            cluster: cluster.to_string(),
            addrs,
            names: Vec::new(),
            secret: Secret::random(),
            data_dir: None,
            open: OpenMode::Existing,
            seed: 1,
            queue_capacity: 16_384,
            inbox_capacity: 16_384,
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            frame_timeout: Duration::from_secs(30),
            max_handshaking: 64,
            frame_budget_bytes: 4 * (wire::MAX_FRAME_BYTES + wire::FRAME_HEADER_BYTES),
            max_batch_bytes: 64 * 1024,
            keep_observations: true,
            recent_messages: 0,
            link_delay: Vec::new(),
            clock: Arc::new(ClockBend::default()),
        }
    }
}

/// State a node shares with the process that runs it.
pub struct NodeShared {
    /// Messages sent (by any node of this process) and not yet handled: for quiescence.
    pub in_flight: Arc<AtomicI64>,
    /// Timers set and not yet fired or cancelled, plus 1 until `on_start` has run.
    pub pending: AtomicI64,
    /// When this node last handled an event (Unix ns): for idle detection across processes.
    pub last_active_ns: AtomicU64,
    /// Live metrics, for the Prometheus endpoint and the final report.
    pub live: Mutex<(Metrics, Counters)>,
    /// Set if the node stopped on a storage failure.
    pub failed: AtomicBool,
    /// Frames queued to peers and not yet written.
    pub unsent: Arc<AtomicI64>,
    /// Since when (Unix ns) the protocol says only background work is left; 0: it has work.
    pub background_since_ns: AtomicU64,
    /// Bytes held in the read buffers of the node's inbound connections: at most
    /// `MESSAGE_BUFFER_BYTES` per authenticated peer, a handshake frame per stranger, and the
    /// frame budget.
    pub inbound_buffered_bytes: Arc<AtomicI64>,
    /// Asks the node to leave cleanly: it runs [`agora_core::Protocol::on_stop`] and flushes.
    pub leave: tokio::sync::Notify,
    /// Set once the node has run `on_stop` and handed what it sent to its connections.
    pub left: AtomicBool,
    /// Messages sent to each node of the cluster (by id; this node's own included): the
    /// traffic per link, for a live view. Counted when the step sends it, before a cut link
    /// or a full queue drops it, so that what a link lost is `sent_to` at the sender minus
    /// `received_from` at the receiver (and what is still on its way). One relaxed add per
    /// destination.
    pub sent_to: Vec<AtomicU64>,
    /// Messages from each node of the cluster (by id) that reached this node and were
    /// handled: not those a cut link dropped on arrival.
    pub received_from: Vec<AtomicU64>,
    /// While `true` the node handles nothing (no message, timer or local call): what arrives
    /// waits for it (`faults`: a pause).
    pub paused: watch::Sender<bool>,
    /// `cut_to[j]`: the link from this node to node `j` is cut; what the node would queue on
    /// it is dropped (`faults`: a cut or a partition).
    pub cut_to: Vec<AtomicBool>,
    /// `cut_from[j]`: the link from node `j` to this node is cut; what arrives on it (sent
    /// before the cut) is dropped.
    pub cut_from: Vec<AtomicBool>,
    /// The latest messages sent and received, numbered per link, if the configuration asks
    /// (`NetConfig::recent_messages`): filled by the driver once per batch (`Driver::stage`).
    pub recent: Option<Mutex<crate::recent::Recent>>,
}

impl NodeShared {
    /// The node has been in the background for at least `d`.
    pub fn background_for(&self, d: Duration) -> bool {
        let since = self.background_since_ns.load(Ordering::Acquire);
        since != 0 && unix_ns().saturating_sub(since) >= d.as_nanos() as u64
    }
}

/// What a node reports when it stops.
pub struct NodeReport<O> {
    /// The node's id.
    pub id: NodeId,
    /// This node's share of the run's metrics: what it sent and delivered, per message type, and
    /// the operations it began or ended.
    pub metrics: Metrics,
    /// This node's message counters.
    pub counters: Counters,
    /// Messages dropped because a send queue was full.
    pub queue_full: u64,
    /// Messages lost in a connection that broke.
    pub lost: u64,
    /// `(Unix ns, observation)`.
    pub observations: Vec<(u64, O)>,
    /// Whether the node stopped on a storage failure.
    pub failed: bool,
    /// Events handled: start, messages, timers.
    pub events: u64,
    /// Durable transactions committed, each one fsync (group commit: one per batch of steps).
    pub commits: u64,
    /// `(Unix ns, violation)`: rules every driver enforces that this node's protocol broke (a
    /// destination outside the cluster, a frame over the limit, a message that does not
    /// round-trip), logged when they happened.
    pub violations: Vec<(u64, Violation)>,
}

impl<O> NodeReport<O> {
    /// Adds the report of the same node's next incarnation (after a crash and a restart).
    pub fn absorb(&mut self, later: NodeReport<O>) {
        self.metrics.merge(&later.metrics);
        self.counters.add(&later.counters);
        self.queue_full += later.queue_full;
        self.lost += later.lost;
        self.observations.extend(later.observations);
        self.failed |= later.failed;
        self.events += later.events;
        self.commits += later.commits;
        self.violations.extend(later.violations);
    }
}

type Msg<S> = <<S as Setup>::Node as Protocol>::Msg;
type ObsOf<S> = <<S as Setup>::Node as Protocol>::Obs;
type TimerOf<S> = <<S as Setup>::Node as Protocol>::Timer;
/// A deferred write: key, value to compute, timer to fire once durable.
type Later<S> = (String, Deferred, TimerOf<S>);
/// A deferred write that landed: key, the hash of its value, its timer.
type Landed<S> = (String, [u8; 32], TimerOf<S>);

/// What the steps of one batch do once their writes, and every write before them, are
/// durable.
struct Held<S: Setup> {
    sends: Vec<Outgoing<Msg<S>>>,
    synced: Vec<TimerOf<S>>,
    laters: Vec<Later<S>>,
    unreported: Vec<(u64, ObsOf<S>)>,
    /// Messages handled and timers fired by those steps.
    handled: i64,
    fired: i64,
}

/// A transaction committed by the committer thread: its outcome, its time, its size.
struct Committed {
    result: Result<(), StoreError>,
    took: Duration,
    writes: usize,
    bytes: usize,
}

/// The thread that commits a node's batches, one after another, in the order given.
struct Committer {
    tx: std::sync::mpsc::Sender<Vec<Write>>,
    thread: std::thread::JoinHandle<()>,
}

/// A message of a step waiting for the step's writes to be durable (group commit), already
/// checked and counted as sent by the interpreter.
struct Outgoing<M> {
    to: Vec<NodeId>,
    /// The frame, shared by every destination's queue.
    frame: Bytes,
    /// The decoded copy, for a message to this node itself.
    msg: M,
    kind: usize,
}

/// A started node: its shared state now, its report when it stops.
pub type Started<S> = (Arc<NodeShared>, tokio::task::JoinHandle<NodeReport<ObsOf<S>>>);

/// Where a node started by another process (`agora up`, the process tests) finds its
/// listening socket: `agora node --listen-fd 3`.
pub const LISTEN_FD: i32 = 3;

/// In a child between fork and exec (`pre_exec`): puts the listening socket `fd` at
/// [`LISTEN_FD`], open across exec. Only async-signal-safe calls (fcntl, dup2).
pub fn hand_down_listener(fd: i32) -> std::io::Result<()> {
    // SAFETY: fcntl and dup2 on descriptors of this process; the caller owns `fd`.
    let ok = unsafe {
        if fd == LISTEN_FD {
            libc::fcntl(fd, libc::F_SETFD, 0) != -1
        } else {
            libc::dup2(fd, LISTEN_FD) != -1
        }
    };
    if ok {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Called with each observation as the node makes it (Unix ns, observation): to follow a
/// node's progress while it runs (`agora node --events`).
pub type ObsHook<O> = Arc<dyn Fn(u64, &O) + Send + Sync>;

/// A node bound to its address, ready to run.
pub struct BoundNode {
    /// The node's id.
    pub id: NodeId,
    /// Its listening socket, already bound (and listening).
    pub listener: TcpListener,
}

impl BoundNode {
    /// Binds node `id`'s socket to `addr` (port 0: the kernel picks one, see [`Self::local_addr`]).
    pub async fn bind(id: NodeId, addr: SocketAddr) -> std::io::Result<BoundNode> {
        Ok(BoundNode { id, listener: TcpListener::bind(addr).await? })
    }

    /// A node on a socket already bound and listening, e.g. one its parent process bound to
    /// port 0 and handed down (`agora node --listen-fd`): the port is never free for anyone
    /// else to take, also while the node restarts.
    pub fn from_std(id: NodeId, listener: std::net::TcpListener) -> std::io::Result<BoundNode> {
        listener.set_nonblocking(true)?;
        Ok(BoundNode { id, listener: TcpListener::from_std(listener)? })
    }

    /// The address the node listens on (the port the kernel picked, for a port-0 bind).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// A call into a running node from its own process (a front end serving local clients, such
/// as `agora kv`'s RESP connections): run as one step of the node, with the same effects as
/// a message's (persist first, then send).
pub type LocalCall<N> = Box<dyn FnOnce(&mut N, &mut Context<'_, N>) + Send>;

/// Starts a node: opens its storage, builds the protocol from what it persisted, starts
/// accepting connections and drives it until `stop` is set. Returns the shared state now and
/// the report when the node stops.
pub fn start<S: Setup>(
    setup: Arc<S>,
    bound: BoundNode,
    cfg: Arc<NetConfig>,
    in_flight: Arc<AtomicI64>,
    stop: watch::Receiver<bool>,
    on_obs: Option<ObsHook<ObsOf<S>>>,
) -> Result<Started<S>, StoreError> {
    start_with(setup, bound, cfg, in_flight, stop, on_obs, None)
}

/// [`start`], with calls into the node from this process: each one received on `local` runs
/// as a step of the node; the calls waiting together run one after another and their writes
/// are committed together (group commit), as messages are.
pub fn start_with<S: Setup>(
    setup: Arc<S>,
    bound: BoundNode,
    cfg: Arc<NetConfig>,
    in_flight: Arc<AtomicI64>,
    stop: watch::Receiver<bool>,
    on_obs: Option<ObsHook<ObsOf<S>>>,
    local: Option<mpsc::UnboundedReceiver<LocalCall<S::Node>>>,
) -> Result<Started<S>, StoreError> {
    // Raised once per process, before the first node holds a socket.
    limits::fd_limit();
    let id = bound.id;
    let (cfg_seed, cfg_nodes) = (cfg.seed, cfg.addrs.len());
    if cfg.open == OpenMode::Rejoin && !setup.rejoins(id) {
        return Err(StoreError::CannotRejoin { id: id.0 });
    }
    let (store, stable, path) = match &cfg.data_dir {
        Some(dir) => {
            let path = dir.join(node_file(id.0));
            let (s, st) = Store::open(&path, cfg.open)?;
            (Some(Arc::new(s)), st, path)
        }
        None => (None, Stable::new(), PathBuf::new()),
    };
    let node = setup.build(id, &stable).map_err(|e| StoreError::Corrupt { path, reason: e.to_string() })?;
    let shared = Arc::new(NodeShared {
        in_flight,
        pending: AtomicI64::new(1),
        last_active_ns: AtomicU64::new(unix_ns()),
        live: Mutex::new((Metrics::new(), Counters::default())),
        failed: AtomicBool::new(false),
        unsent: Arc::new(AtomicI64::new(0)),
        background_since_ns: AtomicU64::new(0),
        inbound_buffered_bytes: Arc::new(AtomicI64::new(0)),
        leave: tokio::sync::Notify::new(),
        left: AtomicBool::new(false),
        sent_to: (0..cfg.addrs.len()).map(|_| AtomicU64::new(0)).collect(),
        received_from: (0..cfg.addrs.len()).map(|_| AtomicU64::new(0)).collect(),
        paused: watch::Sender::new(false),
        cut_to: (0..cfg.addrs.len()).map(|_| AtomicBool::new(false)).collect(),
        cut_from: (0..cfg.addrs.len()).map(|_| AtomicBool::new(false)).collect(),
        recent: (cfg.recent_messages > 0)
            .then(|| Mutex::new(crate::recent::Recent::new(cfg.recent_messages))),
    });
    let (inbox_tx, inbox_rx) = mpsc::channel(cfg.inbox_capacity);
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let (committed_tx, committed_rx) = mpsc::unbounded_channel();
    let budget = cfg.frame_budget_bytes;
    let inbound = InboundCtx {
        expect: Expect {
            cluster: cfg.cluster.clone(),
            protocol: setup.name().to_string(),
            me: id.0,
            nodes: cfg.addrs.len() as u32,
        },
        secret: cfg.secret.clone(),
        handshake_timeout: cfg.handshake_timeout,
        idle_timeout: cfg.idle_timeout,
        frame_timeout: cfg.frame_timeout,
        budget: Budget {
            bytes: Arc::new(Semaphore::new(budget)),
            total: budget,
            buffered: shared.inbound_buffered_bytes.clone(),
        },
        slots: Slots::new(cfg.addrs.len(), cfg.max_handshaking.max(1)),
        inbox: inbox_tx.clone(),
        stop: stop.clone(),
    };
    tokio::spawn(accept_loop(bound.listener, Arc::new(inbound)));
    let stage =
        (cfg.recent_messages > 0).then(|| crate::recent::Stage::new(cfg.recent_messages, cfg.addrs.len()));
    let driver = Driver::<S> {
        id,
        n: cfg.addrs.len(),
        protocol: setup.name(),
        cfg,
        node,
        store,
        writer: None,
        laters: Vec::new(),
        done_tx,
        committer: None,
        committed_tx,
        committing: None,
        rng: Rng::seed_from_u64(cfg_seed ^ ((id.0 as u64) << 32)),
        writers: Vec::new(),
        writer_shared: Vec::new(),
        self_tx: inbox_tx,
        interp: Interp::new(cfg_nodes),
        timers: Timers::new(),
        effects: Vec::new(),
        observations: Vec::new(),
        on_obs,
        unreported: Vec::new(),
        stage,
        queue_full: 0,
        events: 0,
        writes: Vec::new(),
        sends: Vec::new(),
        early: Vec::new(),
        synced: Vec::new(),
        violations: Vec::new(),
        handled: 0,
        fired: 0,
        commits: 0,
        stopped: false,
        shared: shared.clone(),
        started: Instant::now(),
        stop: stop.clone(),
    };
    let handle = tokio::spawn(driver.run(inbox_rx, done_rx, committed_rx, local));
    Ok((shared, handle))
}

/// Accepts connections until the node stops. A connection over the process's socket cap is
/// closed at once; a failed accept (out of descriptors, a connection reset before it was
/// taken) backs off and goes on: nothing a peer does stops the node from accepting.
async fn accept_loop<M: Message>(listener: TcpListener, ctx: Arc<InboundCtx<M>>) {
    let me = ctx.expect.me;
    let mut stop = ctx.stop.clone();
    let over_cap = Throttle::new();
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        let (stream, addr) = match accepted {
            Ok(a) => {
                backoff = ACCEPT_BACKOFF_MIN;
                a
            }
            Err(e) => {
                if backoff == ACCEPT_BACKOFF_MIN {
                    warn!("node {me}: accept failed: {e}; retrying");
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let Some(socket) = Socket::inbound() else {
            if let Some(n) = over_cap.hit() {
                warn!(
                    "node {me}: closed {n} connection(s) on accept: the process holds {} sockets, its cap",
                    limits::socket_cap()
                );
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_inbound(stream, addr, ctx.clone(), socket));
    }
}

struct Driver<S: Setup> {
    id: NodeId,
    n: usize,
    protocol: &'static str,
    cfg: Arc<NetConfig>,
    node: S::Node,
    store: Option<Arc<Store>>,
    /// Deferred writes for this node's writer thread (started on the first), and the
    /// deferred writes of the steps since the last flush.
    writer: Option<std::sync::mpsc::Sender<Later<S>>>,
    laters: Vec<Later<S>>,
    /// The writer thread's finished writes: the timers to fire.
    done_tx: mpsc::UnboundedSender<Landed<S>>,
    /// Commits the batches (started on the first), and tells the driver on `committed_tx`.
    committer: Option<Committer>,
    committed_tx: mpsc::UnboundedSender<Committed>,
    /// The batch whose transaction is being committed, if one is: held until it lands.
    committing: Option<Held<S>>,
    rng: Rng,
    /// Outbound queue per peer, created on first send.
    writers: Vec<Option<mpsc::Sender<Bytes>>>,
    writer_shared: Vec<Arc<WriterShared>>,
    self_tx: mpsc::Sender<Inbound<Msg<S>>>,
    /// Applies effects: timers, destinations, frames, round trips, accounting.
    interp: Interp,
    /// Pending named timers, on tokio's clock.
    timers: Timers<TimerOf<S>, Instant>,
    effects: Vec<EffectOf<S::Node>>,
    /// In chunks of [`OBS_CHUNK`]: one vector doubling would copy (and fault in) every
    /// observation so far in the middle of a step, stalling the node for as long.
    observations: Vec<Vec<(u64, ObsOf<S>)>>,
    on_obs: Option<ObsHook<ObsOf<S>>>,
    /// Observations for `on_obs` since the last flush: reported once what their steps
    /// persisted is durable, so a test that kills the node on one finds it on disk.
    unreported: Vec<(u64, ObsOf<S>)>,
    /// The latest messages of this batch, handed to `NodeShared::recent` at each flush (with
    /// `NetConfig::recent_messages`): no lock and no clock read per message.
    stage: Option<crate::recent::Stage>,
    queue_full: u64,
    events: u64,
    /// Writes and messages of the steps since the last flush (group commit).
    writes: Vec<Write>,
    sends: Vec<Outgoing<Msg<S>>>,
    /// Messages of those steps that may leave before their writes are durable, and the timers
    /// to fire once they are.
    early: Vec<Outgoing<Msg<S>>>,
    synced: Vec<TimerOf<S>>,
    /// See [`NodeReport::violations`].
    violations: Vec<(u64, Violation)>,
    /// Messages handled and timers fired since the last flush.
    handled: i64,
    fired: i64,
    /// Durable transactions committed (each one fsync).
    commits: u64,
    /// `on_stop` has run: from then on the node takes no step (no message, timer or `Synced`
    /// notice reaches it), though the batches before its goodbye are still released.
    stopped: bool,
    shared: Arc<NodeShared>,
    started: Instant,
    stop: watch::Receiver<bool>,
}

impl<S: Setup> Driver<S> {
    fn now(&self) -> Time {
        Time(self.cfg.clock.local_ns(self.started))
    }

    async fn run(
        mut self,
        mut inbox: mpsc::Receiver<Inbound<Msg<S>>>,
        mut written: mpsc::UnboundedReceiver<Landed<S>>,
        mut committed: mpsc::UnboundedReceiver<Committed>,
        mut local: Option<mpsc::UnboundedReceiver<LocalCall<S::Node>>>,
    ) -> NodeReport<ObsOf<S>> {
        self.step(|| "start".into(), |node, ctx| node.on_start(ctx));
        // The start is pending until its batch is released.
        self.fired += 1;
        self.flush();
        let mut stop = self.stop.clone();
        let mut paused = self.shared.paused.subscribe();
        while !self.shared.failed.load(Ordering::Relaxed) {
            if *paused.borrow_and_update() {
                // Paused: nothing is handled until it resumes (or stops); what arrives waits.
                tokio::select! {
                    biased;
                    _ = stop.wait_for(|s| *s) => break,
                    _ = paused.wait_for(|p| !*p) => continue,
                }
            }
            // A node that has left is delivered nothing more: no message, no timer. It only
            // waits, its goodbye written, for the process to end.
            let gone = self.stopped;
            let next_timer = self.timers.next_deadline().filter(|_| !gone);
            let committing = self.committing.is_some();
            // A batch held behind a slow commit stops growing: what arrives waits in the
            // inbox, whose bound then holds back the connections.
            let open = !committing || self.writes.len() + self.sends.len() < HELD_MAX;
            let mut leaving = false;
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => break,
                _ = paused.changed() => continue,
                Some(done) = committed.recv(), if committing => self.landed(done),
                _ = self.shared.leave.notified(), if !gone => {
                    self.step(|| "stop".into(), |node, ctx| node.on_stop(ctx));
                    self.stopped = true;
                    self.flush();
                    leaving = true;
                }
                m = inbox.recv(), if open => {
                    let Some(m) = m else { break };
                    if gone {
                        // Dropped, and no longer in flight.
                        self.handled += 1;
                        self.flush();
                        continue;
                    }
                    self.deliver(m);
                    // Drain what is already queued without going back to the scheduler.
                    for _ in 0..256 {
                        match inbox.try_recv() {
                            Ok(m) => self.deliver(m),
                            Err(_) => break,
                        }
                    }
                    // A busy inbox must not starve the timers, nor the local calls.
                    self.local_calls(&mut local);
                    self.fire_timers();
                    self.flush();
                }
                Some(call) = recv_local(&mut local), if open => {
                    if gone {
                        // Not run: its answers' senders are dropped with it, and whoever
                        // waits for them learns that the node stopped.
                        drop(call);
                        continue;
                    }
                    self.step(|| "local call".into(), call);
                    // The calls that arrived meanwhile: one commit for all of them.
                    self.local_calls(&mut local);
                    self.fire_timers();
                    self.flush();
                }
                _ = sleep_until(next_timer), if next_timer.is_some() => {
                    self.fire_timers();
                    self.flush();
                }
                Some((key, hash, done)) = written.recv() => {
                    // A deferred write is durable: the database records it (with the next
                    // commit, before anything this step sends), and its timer fires.
                    if self.store.is_some() {
                        self.writes.push(Write::Landed(key, hash));
                    }
                    if gone {
                        // Its timer is not run, but no longer pending.
                        self.fired += 1;
                        self.flush();
                        continue;
                    }
                    let name = done.clone();
                    self.step(move || format!("written {name:?}"), |node, ctx| node.on_timer(ctx, done));
                    self.fired += 1;
                    self.flush();
                }
            }
            if leaving {
                // Left once the goodbye is handed to the connections, so after the batches
                // before it, and its own, are durable.
                while self.committing.is_some() {
                    let Some(done) = committed.recv().await else { break };
                    self.landed(done);
                }
                self.shared.left.store(true, Ordering::Release);
            }
        }
        self.stop_committer(&mut committed).await;
        let (metrics, counters) = std::mem::take(&mut *self.shared.live.lock().expect("metrics lock"));
        let lost = self.writer_shared.iter().map(|w| w.lost.load(Ordering::Relaxed)).sum();
        NodeReport {
            id: self.id,
            metrics,
            counters,
            queue_full: self.queue_full,
            lost,
            observations: flatten(std::mem::take(&mut self.observations)),
            failed: self.shared.failed.load(Ordering::Relaxed),
            events: self.events,
            commits: self.commits,
            violations: std::mem::take(&mut self.violations),
        }
    }

    /// Runs the local calls waiting now (up to 1024) as steps.
    fn local_calls(&mut self, local: &mut Option<mpsc::UnboundedReceiver<LocalCall<S::Node>>>) {
        let Some(l) = local else { return };
        for _ in 0..1024 {
            match l.try_recv() {
                Ok(call) => self.step(|| "local call".into(), call),
                Err(_) => break,
            }
        }
    }

    fn deliver(&mut self, m: Inbound<Msg<S>>) {
        let cut = self.shared.cut_from.get(m.from.index()).is_some_and(|c| c.load(Ordering::Relaxed));
        if let Some(stage) = &mut self.stage {
            stage.received(m.from.0, m.msg.kind());
        }
        {
            let mut live = self.shared.live.lock().expect("metrics lock");
            let (metrics, counters) = &mut *live;
            let kind = metrics.kind_index(m.msg.kind());
            if cut && m.from != self.id {
                // Sent before its link was cut: lost on the link, as if it never arrived.
                Interp::dropped(metrics, counters, kind);
                self.handled += 1;
                return;
            }
            Interp::delivered(metrics, counters, kind, m.bytes as u64);
        }
        if let Some(c) = self.shared.received_from.get(m.from.index()) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let from = m.from;
        let kind = m.msg.kind();
        self.step(|| kind.into(), |node, ctx| node.on_message(ctx, from, m.msg));
        // Counted as handled once its step's messages are sent (in `flush`).
        self.handled += 1;
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(timer) = self.timers.pop_due(now) {
            let name = timer.clone();
            self.step(move || format!("timer {name:?}"), |node, ctx| node.on_timer(ctx, timer));
            self.fired += 1;
        }
    }

    /// Runs one handler and applies its effects: persists durably first, then sends.
    fn step(
        &mut self,
        what: impl FnOnce() -> String,
        f: impl FnOnce(&mut S::Node, &mut Context<'_, S::Node>),
    ) {
        self.shared.last_active_ns.store(unix_ns(), Ordering::Relaxed);
        self.events += 1;
        let now = self.now();
        let mut effects = std::mem::take(&mut self.effects);
        let began = Instant::now();
        f(&mut self.node, &mut Context::new(self.id, self.n, now, &mut self.rng, &mut effects));
        let took = began.elapsed();
        if took >= SLOW {
            let what = what();
            info!(
                node = self.id.0,
                ms = took.as_secs_f64() * 1e3,
                effects = effects.len(),
                what,
                "slow step"
            );
        }
        let mut host = NetHost::<S> {
            id: self.id,
            started: self.started,
            clock: &self.cfg.clock,
            shared: &self.shared,
            live: self.shared.live.lock().expect("metrics lock"),
            timers: &mut self.timers,
            writes: &mut self.writes,
            laters: &mut self.laters,
            sends: &mut self.sends,
            early: &mut self.early,
            synced: &mut self.synced,
            observations: &mut self.observations,
            unreported: self.on_obs.is_some().then_some(&mut self.unreported),
            violations: &mut self.violations,
            keep: self.cfg.keep_observations,
        };
        for e in effects.drain(..) {
            self.interp.apply(&mut host, self.id, e);
        }
        drop(host);
        self.effects = effects;
        let background = self.node.background();
        let since = self.shared.background_since_ns.load(Ordering::Relaxed);
        if background && since == 0 {
            self.shared.background_since_ns.store(unix_ns(), Ordering::Release);
        } else if !background && since != 0 {
            self.shared.background_since_ns.store(0, Ordering::Release);
        }
    }

    /// Sends the messages that need not wait, then hands the gathered writes to the committer
    /// thread, holding the batch's messages, deferred writes, observations and `Synced`
    /// timers until the transaction lands ([`Driver::landed`]). A batch with nothing to write
    /// is released at once. While a transaction is in flight, only the early messages leave:
    /// the steps since then form the next batch, which waits for it. Then hands the latest
    /// messages staged since the last flush to the live view's sample.
    fn flush(&mut self) {
        // The protocol's promise for these: their meaning rests on no write of their step
        // or of the steps before it (`Effect::SendEarly`).
        for out in std::mem::take(&mut self.early) {
            self.send(out);
        }
        self.flush_batches();
        if let (Some(stage), Some(recent)) = (&mut self.stage, &self.shared.recent) {
            if !stage.is_empty() {
                // After the batch's steps: later than each of its messages' receipt.
                stage.publish(recent, unix_ns());
            }
        }
    }

    /// See [`Driver::flush`].
    fn flush_batches(&mut self) {
        while self.committing.is_none() {
            // A released batch's `Synced` timers run as steps, which may send early too.
            for out in std::mem::take(&mut self.early) {
                self.send(out);
            }
            let writes = std::mem::take(&mut self.writes);
            let held = Held {
                sends: std::mem::take(&mut self.sends),
                synced: std::mem::take(&mut self.synced),
                laters: std::mem::take(&mut self.laters),
                unreported: std::mem::take(&mut self.unreported),
                handled: std::mem::take(&mut self.handled),
                fired: std::mem::take(&mut self.fired),
            };
            if !writes.is_empty() && self.store.is_some() {
                if self.commit(writes) {
                    self.committing = Some(held);
                } else {
                    self.fail_with(held);
                }
                return;
            }
            if !self.release(held) {
                return;
            }
        }
    }

    /// Hands one batch's writes to the committer thread (started on first use); false if it
    /// cannot be started or has stopped.
    fn commit(&mut self, writes: Vec<Write>) -> bool {
        if self.committer.is_none() {
            let (tx, rx) = std::sync::mpsc::channel::<Vec<Write>>();
            let store = self.store.clone().expect("committing only with a store");
            let done = self.committed_tx.clone();
            let spawned =
                std::thread::Builder::new().name(format!("node-{}-commit", self.id.0)).spawn(move || {
                    for writes in rx {
                        let began = Instant::now();
                        let result = store.apply(&writes);
                        let committed = Committed {
                            result,
                            took: began.elapsed(),
                            writes: writes.len(),
                            bytes: writes.iter().map(Write::bytes).sum(),
                        };
                        if done.send(committed).is_err() {
                            return; // the node stopped
                        }
                    }
                });
            match spawned {
                Ok(thread) => self.committer = Some(Committer { tx, thread }),
                Err(e) => {
                    error!("node {}: stopping: cannot start its committer thread: {e}", self.id);
                    return false;
                }
            }
        }
        self.committer.as_ref().is_some_and(|c| c.tx.send(writes).is_ok())
    }

    /// The transaction of the batch in flight has landed: releases that batch (its `Synced`
    /// timers run as steps, joining the next batch), then commits the next one.
    fn landed(&mut self, done: Committed) {
        let held = self.committing.take().expect("a commit lands only while one is in flight");
        if done.took >= SLOW {
            info!(
                node = self.id.0,
                ms = done.took.as_secs_f64() * 1e3,
                writes = done.writes,
                bytes = done.bytes,
                "slow commit"
            );
        }
        if let Err(e) = done.result {
            error!("node {}: stopping: {e}", self.id);
            self.fail_with(held);
            return;
        }
        self.commits += 1;
        self.release(held);
        self.flush();
    }

    /// Stops the node on a failed write: the held batch's messages are lost with it.
    fn fail_with(&mut self, held: Held<S>) {
        self.shared.failed.store(true, Ordering::Relaxed);
        self.lose(held.sends);
    }

    /// Messages held for a batch that will never be released. They were counted as sent when
    /// their step ran: they are lost with the node.
    fn lose(&self, sends: Vec<Outgoing<Msg<S>>>) {
        let mut live = self.shared.live.lock().expect("metrics lock");
        let (metrics, counters) = &mut *live;
        for out in sends {
            for _ in &out.to {
                Interp::dropped(metrics, counters, out.kind);
            }
        }
    }

    /// Lets a durable batch go: reports its observations, hands its deferred writes to the
    /// writer thread, sends its messages, then runs its `Synced` timers as steps (their
    /// effects join the next batch). True if it had such timers.
    fn release(&mut self, held: Held<S>) -> bool {
        if let Some(hook) = &self.on_obs {
            for (at, o) in &held.unreported {
                hook(*at, o);
            }
        }
        for later in held.laters {
            // After its batch's commit: a deferred write lands after every write before it.
            self.write_later(later);
        }
        for out in held.sends {
            self.send(out);
        }
        self.shared.in_flight.fetch_sub(held.handled, Ordering::AcqRel);
        self.shared.pending.fetch_sub(held.fired, Ordering::AcqRel);
        if held.synced.is_empty() {
            return false;
        }
        for done in held.synced {
            if !self.stopped {
                let name = done.clone();
                self.step(move || format!("synced {name:?}"), |node, ctx| node.on_timer(ctx, done));
            }
            self.fired += 1;
        }
        true
    }

    /// At the end of the run: waits for the transaction in flight, if any (what the node
    /// acknowledged before it stopped must be on disk once it has), drops what that batch
    /// held as a crash would, and lets the committer thread end.
    async fn stop_committer(&mut self, committed: &mut mpsc::UnboundedReceiver<Committed>) {
        if let Some(held) = self.committing.take() {
            match committed.recv().await {
                Some(Committed { result: Ok(()), .. }) => self.commits += 1,
                Some(Committed { result: Err(e), .. }) => error!("node {}: {e}", self.id),
                None => {}
            }
            self.lose(held.sends);
        }
        if let Some(Committer { tx, thread }) = self.committer.take() {
            drop(tx);
            // The thread has nothing left to commit: it ends at once, and with it its hold
            // on the database, which a restart of this node opens again.
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        if let Some(store) = self.store.clone() {
            // A checkpoint under way holds the database too: it ends before the node does.
            let id = self.id;
            let closed = tokio::task::spawn_blocking(move || store.close()).await;
            if let Ok(Err(e)) = closed {
                error!("node {id}: {e}");
            }
        }
    }

    /// Hands a deferred write to the node's writer thread, which computes the value, writes it
    /// (if the node has storage) and then passes the timer back to the driver.
    fn write_later(&mut self, later: Later<S>) {
        let writer = self.writer.get_or_insert_with(|| {
            let (tx, rx) = std::sync::mpsc::channel::<Later<S>>();
            let (store, done_tx, shared, id) =
                (self.store.clone(), self.done_tx.clone(), self.shared.clone(), self.id);
            let spawned =
                std::thread::Builder::new().name(format!("node-{}-writer", id.0)).spawn(move || {
                    for (key, value, done) in rx {
                        let computed =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| value.compute()));
                        let Ok(bytes) = computed else {
                            error!("node {id}: stopping: computing the value of {key} panicked");
                            shared.failed.store(true, Ordering::Relaxed);
                            return;
                        };
                        let mut hash = [0; 32];
                        if let Some(store) = &store {
                            let began = Instant::now();
                            match store.put_later(&key, &bytes) {
                                Ok(h) => hash = h,
                                Err(e) => {
                                    error!("node {id}: stopping: {e}");
                                    shared.failed.store(true, Ordering::Relaxed);
                                    return;
                                }
                            }
                            debug!(
                                node = id.0,
                                ms = began.elapsed().as_secs_f64() * 1e3,
                                bytes = bytes.len(),
                                key,
                                "deferred write"
                            );
                        }
                        if done_tx.send((key, hash, done)).is_err() {
                            return; // the node stopped
                        }
                    }
                });
            if let Err(e) = spawned {
                error!("node {id}: cannot start its writer thread: {e}");
                self.shared.failed.store(true, Ordering::Relaxed);
            }
            tx
        });
        // A send fails only if the writer thread stopped on a storage failure, which has
        // already stopped the node.
        let _ = writer.send(later);
    }

    /// Queues one message (checked and counted as sent when its step ran) to each of its
    /// destinations; a full queue drops the copy and counts it.
    fn send(&mut self, out: Outgoing<Msg<S>>) {
        let bytes = out.frame.len() as u32;
        let shared = self.shared.clone();
        let mut live = shared.live.lock().expect("metrics lock");
        let (metrics, counters) = &mut *live;
        for t in out.to {
            if let Some(c) = self.shared.sent_to.get(t.index()) {
                c.fetch_add(1, Ordering::Relaxed);
            }
            if t != self.id && self.shared.cut_to.get(t.index()).is_some_and(|c| c.load(Ordering::Relaxed)) {
                // The link is cut: lost, as on a lossy link.
                Interp::dropped(metrics, counters, out.kind);
                continue;
            }
            self.shared.in_flight.fetch_add(1, Ordering::AcqRel);
            let ok = if t == self.id {
                let m = Inbound { from: self.id, msg: out.msg.clone(), bytes };
                self.self_tx.try_send(m).is_ok()
            } else {
                let queued = self.writer(t).try_send(out.frame.clone()).is_ok();
                if queued {
                    shared.unsent.fetch_add(1, Ordering::AcqRel);
                }
                queued
            };
            if ok {
                if let Some(stage) = &mut self.stage {
                    stage.sent(t.0, metrics.by_kind()[out.kind].0, unix_ns);
                }
            } else {
                self.queue_full += 1;
                Interp::dropped(metrics, counters, out.kind);
                self.shared.in_flight.fetch_sub(1, Ordering::AcqRel);
                debug!(node = self.id.0, to = t.0, "send queue full: message dropped");
            }
        }
    }

    /// The outbound queue to `peer`, starting its connection on first use.
    fn writer(&mut self, peer: NodeId) -> &mpsc::Sender<Bytes> {
        if self.writers.is_empty() {
            self.writers = vec![None; self.n];
        }
        if self.writers[peer.index()].is_none() {
            let (tx, rx) = mpsc::channel(self.cfg.queue_capacity);
            let shared = Arc::new(WriterShared {
                lost: AtomicU64::new(0),
                in_flight: self.shared.in_flight.clone(),
                unsent: self.shared.unsent.clone(),
            });
            self.writer_shared.push(shared.clone());
            let dial = Dial {
                me: self.id.0,
                peer: peer.0,
                addr: self.cfg.addrs[peer.index()],
                name: self.cfg.names.get(peer.index()).cloned().flatten(),
                cluster: self.cfg.cluster.clone(),
                protocol: self.protocol,
                secret: self.cfg.secret.clone(),
            };
            let delay = self.cfg.link_delay.get(self.id.index()).and_then(|d| d.get(peer.index()));
            let rx = match delay.copied().filter(|d| !d.is_zero()) {
                Some(d) => {
                    let (delayed_tx, delayed_rx) = mpsc::channel(self.cfg.queue_capacity);
                    tokio::spawn(delay_frames(rx, delayed_tx, d, self.cfg.queue_capacity));
                    delayed_rx
                }
                None => rx,
            };
            tokio::spawn(serve_outbound(dial, rx, self.cfg.max_batch_bytes, shared, self.stop.clone()));
            self.writers[peer.index()] = Some(tx);
        }
        self.writers[peer.index()].as_ref().expect("just created")
    }
}

/// The next local call; never, without a channel or once every sender is gone.
async fn recv_local<N: Protocol>(
    local: &mut Option<mpsc::UnboundedReceiver<LocalCall<N>>>,
) -> Option<LocalCall<N>> {
    match local {
        Some(l) => match l.recv().await {
            Some(c) => Some(c),
            None => {
                *local = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// A runtime node as the interpreter's host: its timers on tokio's clock, and the writes and
/// messages of the steps since the last flush (group commit).
struct NetHost<'a, S: Setup> {
    id: NodeId,
    started: Instant,
    clock: &'a ClockBend,
    shared: &'a NodeShared,
    /// Held while one step's effects are applied.
    live: std::sync::MutexGuard<'a, (Metrics, Counters)>,
    timers: &'a mut Timers<TimerOf<S>, Instant>,
    writes: &'a mut Vec<Write>,
    laters: &'a mut Vec<Later<S>>,
    sends: &'a mut Vec<Outgoing<Msg<S>>>,
    early: &'a mut Vec<Outgoing<Msg<S>>>,
    synced: &'a mut Vec<TimerOf<S>>,
    observations: &'a mut Vec<Vec<(u64, ObsOf<S>)>>,
    /// Observations for the node's observation hook, if it has one.
    unreported: Option<&'a mut Vec<(u64, ObsOf<S>)>>,
    violations: &'a mut Vec<(u64, Violation)>,
    /// See [`NetConfig::keep_observations`].
    keep: bool,
}

impl<S: Setup> Host<S::Node> for NetHost<'_, S> {
    type Deadline = Instant;

    fn now(&self) -> Time {
        Time(self.clock.local_ns(self.started))
    }

    fn accounts(&mut self, _: NodeId) -> (&mut Metrics, &mut Counters) {
        let (metrics, counters) = &mut *self.live;
        (metrics, counters)
    }

    fn timers(&mut self, _: NodeId) -> &mut Timers<TimerOf<S>, Instant> {
        self.timers
    }

    fn deadline(&self, _: NodeId, after: Duration) -> Instant {
        Instant::now() + self.clock.to_real(after)
    }

    fn timer_set(&mut self, _: NodeId, _: TimerOf<S>, _: u64, _: Instant, replaced: bool) {
        if !replaced {
            self.shared.pending.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn timer_cancelled(&mut self, _: NodeId) {
        self.shared.pending.fetch_sub(1, Ordering::AcqRel);
    }

    fn transmit(&mut self, _: NodeId, to: Targets<'_>, msg: Msg<S>, frame: &Frame<'_>) {
        let frame_bytes = Bytes::copy_from_slice(frame.wire);
        self.sends.push(Outgoing { to: to.to_vec(), frame: frame_bytes, msg, kind: frame.kind });
    }

    fn transmit_early(&mut self, _: NodeId, to: Targets<'_>, msg: Msg<S>, frame: &Frame<'_>) {
        let frame_bytes = Bytes::copy_from_slice(frame.wire);
        self.early.push(Outgoing { to: to.to_vec(), frame: frame_bytes, msg, kind: frame.kind });
    }

    fn synced(&mut self, _: NodeId, done: TimerOf<S>) {
        self.shared.pending.fetch_add(1, Ordering::AcqRel);
        self.synced.push(done);
    }

    fn persist(&mut self, _: NodeId, write: Effected) {
        self.writes.push(match write {
            Effected::Put(key, value) => Write::Put(key, value),
            Effected::Remove(key) => Write::Remove(key),
            Effected::RemoveRange(from, to) => Write::RemoveRange(from, to),
        });
    }

    fn persist_later(&mut self, _: NodeId, key: String, value: Deferred, done: TimerOf<S>) {
        self.shared.pending.fetch_add(1, Ordering::AcqRel);
        self.laters.push((key, value, done));
    }

    fn observe(&mut self, _: NodeId, obs: ObsOf<S>) {
        if !self.keep {
            if let Some(unreported) = &mut self.unreported {
                unreported.push((unix_ns(), obs));
            }
            return;
        }
        if self.observations.last().is_none_or(|c| c.len() == OBS_CHUNK) {
            self.observations.push(Vec::with_capacity(OBS_CHUNK));
        }
        let at = unix_ns();
        if let Some(unreported) = &mut self.unreported {
            unreported.push((at, obs.clone()));
        }
        self.observations.last_mut().expect("just ensured").push((at, obs));
    }

    fn operation(&mut self, _: NodeId, op: OpId, end: bool) {
        let at = Time(unix_ns());
        if end {
            self.live.0.op_end_unmatched(op, at);
        } else {
            self.live.0.op_begin(op, at);
        }
    }

    fn violation(&mut self, v: Violation) {
        error!("node {}: {v}", self.id);
        self.violations.push((unix_ns(), v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::disk_probe;
    use agora_core::{Checker, Corrupt, NoProperties};
    use serde::{Deserialize, Serialize};

    const PINGS: u64 = 300;
    const EVERY: u64 = 30;

    #[test]
    fn observation_chunks_flatten_in_order_into_one_exact_allocation() {
        let chunks = vec![vec![1, 2, 3], Vec::new(), vec![4], vec![5, 6]];
        let all = flatten(chunks);
        assert_eq!(all, [1, 2, 3, 4, 5, 6]);
        assert_eq!(all.capacity(), 6, "sized once, with no room to spare");
    }

    #[derive(Clone, Debug, Serialize, Deserialize)]
    enum Msg {
        Ping(u64),
        Pong(u64),
    }

    impl Message for Msg {
        fn kind(&self) -> &'static str {
            match self {
                Msg::Ping(_) => "PING",
                Msg::Pong(_) => "PONG",
            }
        }
    }

    /// Node 0 pings node 1 [`PINGS`] times, a ping a millisecond; node 1 persists every
    /// [`EVERY`]th ping and answers each; node 0 observes every answer.
    struct Echo;

    impl Protocol for Echo {
        type Msg = Msg;
        type Timer = u64;
        type Obs = u64;
        fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
            if ctx.id() == NodeId(0) {
                ctx.set_timer(0, Duration::from_millis(1));
            }
        }
        fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: Msg) {
            match msg {
                Msg::Ping(i) => {
                    if i % EVERY == 0 {
                        ctx.persist(format!("ping-{i}"), &i);
                    }
                    ctx.send(from, Msg::Pong(i));
                }
                Msg::Pong(i) => ctx.observe(i),
            }
        }
        fn on_timer(&mut self, ctx: &mut Context<'_, Self>, i: u64) {
            ctx.send(NodeId(1), Msg::Ping(i));
            if i + 1 < PINGS {
                ctx.set_timer(i + 1, Duration::from_millis(1));
            }
        }
    }

    struct EchoSetup;
    impl Setup for EchoSetup {
        type Node = Echo;
        fn name(&self) -> &'static str {
            "echo"
        }
        fn nodes(&self) -> usize {
            2
        }
        fn build(&self, _: NodeId, _: &Stable) -> Result<Echo, Corrupt> {
            Ok(Echo)
        }
        fn checker(&self) -> Box<dyn Checker<Echo>> {
            Box::new(NoProperties)
        }
    }

    /// With a disk slow enough that the pings keep arriving while node 1 commits, no answer
    /// reaches node 0 before the last write node 1 made before answering is durable, whether
    /// that write was of the answer's own step or of an earlier one: a batch held behind a
    /// commit in flight waits for it, and for its own, if it has writes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_message_leaves_before_the_writes_of_its_step_are_durable() {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let b0 = BoundNode::bind(NodeId(0), any).await.unwrap();
        let b1 = BoundNode::bind(NodeId(1), any).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut cfg =
            NetConfig::new("pipelined-commit-test", vec![b0.local_addr().unwrap(), b1.local_addr().unwrap()]);
        cfg.data_dir = Some(dir.path().to_path_buf());
        cfg.open = OpenMode::New;
        let db1 = dir.path().join(node_file(1));
        disk_probe::watch(&db1, Duration::from_millis(15));
        let cfg = Arc::new(cfg);
        let (stop, rx) = watch::channel(false);
        let in_flight = Arc::new(AtomicI64::new(0));
        let (seen_tx, mut seen) = watch::channel((0u64, Vec::<u64>::new()));
        let probe = db1.clone();
        let hook: ObsHook<u64> = Arc::new(move |_, i: &u64| {
            let durable = disk_probe::durable(&probe, &format!("ping-{}", i - i % EVERY));
            seen_tx.send_modify(|(answers, early)| {
                *answers += 1;
                if !durable {
                    early.push(*i);
                }
            });
        });
        let setup = Arc::new(EchoSetup);
        let (_, h0) =
            start(setup.clone(), b0, cfg.clone(), in_flight.clone(), rx.clone(), Some(hook)).unwrap();
        let (_, h1) = start(setup, b1, cfg, in_flight, rx, None).unwrap();
        let all =
            tokio::time::timeout(Duration::from_secs(120), seen.wait_for(|(n, _)| *n == PINGS)).await.is_ok();
        let (answers, early) = seen.borrow().clone();
        let _ = stop.send(true);
        let (r0, r1) = (h0.await.unwrap(), h1.await.unwrap());
        assert!(all, "only {answers} of {PINGS} answers arrived");
        assert!(early.is_empty(), "answers that left before their ping was durable: {early:?}");
        assert!(!r0.failed && !r1.failed);
        // Group commit: fewer transactions than pings, and every ping on disk.
        assert!(r1.commits >= 1 && r1.commits < PINGS, "{} commits", r1.commits);
        assert!((0..PINGS).step_by(EVERY as usize).all(|i| disk_probe::durable(&db1, &format!("ping-{i}"))));
    }
}
