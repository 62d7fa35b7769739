//! Faults injected on command into a cluster whose nodes all run in this process (the live
//! view's controls): crash and restart a node, pause and resume it, cut a link one way,
//! partition the cluster in two, heal. They are faults of the running nodes, not of a display:
//!
//! - **crash**: the node's own stop signal ends its driver between two of its batches (what
//!   the last batch committed is in its database, nothing later is; its timers, inbox and
//!   volatile state are gone) and closes its listening socket and every connection to and
//!   from it, so frames on their way are lost, as with `kill -9`.
//! - **restart**: binds the node's address again and starts it from its database, as
//!   `agora node` does after a crash. A run without a data directory kept nothing: its nodes
//!   cannot restart.
//! - **pause**: the driver handles nothing (no message, timer or local call) until it
//!   resumes; messages wait in its inbox, then in TCP's buffers, then in the peers' send
//!   queues (which drop when full), as for a process stopped by `SIGSTOP`.
//! - **cut** `from → to`: the sender drops what it would queue on the link and the receiver
//!   drops what reaches it on it (sent before the cut), both counted as dropped. A partition
//!   cuts every link between a group and the rest, both ways; heal mends every link.
//!
//! Each fault that takes effect is recorded with its time ([`Happened`]): the checker learns
//! of crashes, restarts and pauses where they fall among the observations, and of the cuts
//! through the run's end state (`report::summarize`).

use crate::clock::unix_ns;
use crate::node::{self, BoundNode, NetConfig, NodeReport, NodeShared, ObsHook};
use crate::store::{OpenMode, StoreError};
use crate::RunError;
use agora_core::{Lifecycle, NodeId, Protocol, RunFaults, Setup};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// A crashed node's sockets close as its tasks end, and a deferred write of its may still be
/// finishing on its writer thread (which holds its database): a restart that finds the
/// address in use or the database open tries again this many times, [`RETRY_WAIT`] apart.
const RETRIES: u32 = 40;
const RETRY_WAIT: Duration = Duration::from_millis(50);

/// A fault to inject (or to heal).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Crash a node that is up or paused.
    Crash(NodeId),
    /// Restart a crashed node from what it persisted.
    Restart(NodeId),
    /// Pause a node that is up.
    Pause(NodeId),
    /// Resume a paused node.
    Resume(NodeId),
    /// Cut the link from one node to another (one way).
    Cut {
        /// The sender.
        from: NodeId,
        /// The receiver.
        to: NodeId,
    },
    /// Cut every link between these nodes and the others, both ways.
    Partition(Vec<NodeId>),
    /// Mend every link.
    Heal,
}

/// A fault that took effect, as the run records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Happened {
    /// A node crashed, restarted, paused or resumed.
    Life(NodeId, Lifecycle),
    /// A link was cut.
    Cut {
        /// The sender.
        from: NodeId,
        /// The receiver.
        to: NodeId,
    },
    /// The links between these nodes and the others were cut, both ways.
    Partition(Vec<NodeId>),
    /// Every link was mended.
    Healed,
}

/// A fault asked for, and where to say how it went: `Ok` with what was done, or `Err` with
/// why it was not (one line each).
pub struct Order {
    /// The fault.
    pub fault: Fault,
    /// The outcome.
    pub done: oneshot::Sender<Result<String, String>>,
}

/// Told of each fault as it takes effect: its Unix ns, what happened, and the nodes' shared
/// state as it now is (a restarted node has a new one).
pub type OnFault = Box<dyn FnMut(u64, &Happened, &[Arc<NodeShared>]) + Send>;

/// How a one-process run is steered (see [`crate::run_bound_observed`]).
pub struct Controls {
    /// The faults asked for, applied one at a time, in order.
    pub orders: mpsc::Receiver<Order>,
    /// While set, the run does not end when it goes quiet (only at its time limit), so faults
    /// can still be injected.
    pub hold: Arc<AtomicBool>,
    /// See [`OnFault`].
    pub on_fault: OnFault,
}

/// Where a node of the run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Up,
    Paused,
    Down,
}

type ObsOf<S> = <<S as Setup>::Node as Protocol>::Obs;

/// One node of the run: its current incarnation and what the earlier ones reported.
struct Member<O> {
    shared: Arc<NodeShared>,
    handle: Option<JoinHandle<NodeReport<O>>>,
    /// This incarnation's own stop (its driver, listener and connections).
    stop: watch::Sender<bool>,
    status: Status,
    /// The reports of its incarnations before the last crash, merged.
    before: Option<NodeReport<O>>,
}

/// The nodes of a one-process run, started, stopped, and faulted on command.
pub(crate) struct Nodes<S: Setup> {
    setup: Arc<S>,
    cfg: Arc<NetConfig>,
    in_flight: Arc<AtomicI64>,
    on_obs: Option<crate::ObsHooks<ObsOf<S>>>,
    members: Vec<Member<ObsOf<S>>>,
    /// The links cut now, `(from, to)`.
    cut: BTreeSet<(u32, u32)>,
    /// Every fault that took effect, with its Unix ns.
    pub(crate) happened: Vec<(u64, Happened)>,
}

impl<S: Setup> Nodes<S> {
    pub(crate) fn new(
        setup: Arc<S>,
        cfg: Arc<NetConfig>,
        in_flight: Arc<AtomicI64>,
        on_obs: Option<crate::ObsHooks<ObsOf<S>>>,
    ) -> Self {
        Nodes {
            setup,
            cfg,
            in_flight,
            on_obs,
            members: Vec::new(),
            cut: BTreeSet::new(),
            happened: Vec::new(),
        }
    }

    /// Starts the next node (in id order) on its bound socket.
    pub(crate) fn start(&mut self, bound: BoundNode) -> Result<(), RunError> {
        assert_eq!(bound.id.index(), self.members.len(), "nodes start in id order");
        let (shared, handle, stop) = self.launch(bound, self.cfg.clone())?;
        self.members.push(Member { shared, handle: Some(handle), stop, status: Status::Up, before: None });
        Ok(())
    }

    #[allow(clippy::type_complexity)]
    fn launch(
        &self,
        bound: BoundNode,
        cfg: Arc<NetConfig>,
    ) -> Result<(Arc<NodeShared>, JoinHandle<NodeReport<ObsOf<S>>>, watch::Sender<bool>), StoreError> {
        let (stop_tx, stop) = watch::channel(false);
        let hook: Option<ObsHook<ObsOf<S>>> = self.on_obs.as_ref().map(|make| make(bound.id));
        let (shared, handle) =
            node::start(self.setup.clone(), bound, cfg, self.in_flight.clone(), stop, hook)?;
        Ok((shared, handle, stop_tx))
    }

    /// Every node's shared state, in id order (a crashed node's is its last incarnation's).
    pub(crate) fn shared(&self) -> Vec<Arc<NodeShared>> {
        self.members.iter().map(|m| m.shared.clone()).collect()
    }

    /// The nodes not crashed.
    pub(crate) fn running(&self) -> impl Iterator<Item = &NodeShared> {
        self.members.iter().filter(|m| m.status != Status::Down).map(|m| &*m.shared)
    }

    /// Some node is paused (its work waits for it).
    pub(crate) fn any_paused(&self) -> bool {
        self.members.iter().any(|m| m.status == Status::Paused)
    }

    /// Some node has crashed during the run.
    pub(crate) fn any_crashed(&self) -> bool {
        self.happened.iter().any(|(_, h)| matches!(h, Happened::Life(_, Lifecycle::Crashed)))
    }

    /// Applies `fault`, records it and tells `on_fault`; the outcome in one line.
    pub(crate) async fn apply(&mut self, fault: Fault, on_fault: &mut OnFault) -> Result<String, String> {
        let n = self.members.len();
        let check = |id: NodeId| {
            if id.index() < n {
                Ok(id)
            } else {
                Err(format!("no node {id}: the cluster has {n} (0 to {})", n - 1))
            }
        };
        let (happened, text) = match fault {
            Fault::Crash(id) => {
                let m = &mut self.members[check(id)?.index()];
                if m.status == Status::Down {
                    return Err(format!("node {id} has already crashed"));
                }
                m.status = Status::Down;
                let _ = m.stop.send(true);
                let report = match m.handle.take() {
                    Some(h) => h.await.map_err(|e| format!("node {id} ended badly: {e}"))?,
                    None => return Err(format!("node {id} is not running")),
                };
                m.before = Some(match m.before.take() {
                    Some(mut earlier) => {
                        earlier.absorb(report);
                        earlier
                    }
                    None => report,
                });
                (Happened::Life(id, Lifecycle::Crashed), format!("node {id} crashed"))
            }
            Fault::Restart(id) => {
                let i = check(id)?.index();
                if self.members[i].status != Status::Down {
                    return Err(format!("node {id} is running: only a crashed node restarts"));
                }
                if self.cfg.data_dir.is_none() {
                    return Err(format!("node {id} kept nothing (the run has no data directory)"));
                }
                let (shared, handle, stop) = self.relaunch(id).await?;
                self.cut_links(&shared, id);
                let m = &mut self.members[i];
                (m.shared, m.handle, m.stop, m.status) = (shared, Some(handle), stop, Status::Up);
                (Happened::Life(id, Lifecycle::Restarted), format!("node {id} restarted from its database"))
            }
            Fault::Pause(id) => {
                let m = &mut self.members[check(id)?.index()];
                if m.status != Status::Up {
                    return Err(format!("node {id} is not running: only a running node pauses"));
                }
                m.status = Status::Paused;
                m.shared.paused.send_replace(true);
                (Happened::Life(id, Lifecycle::Paused), format!("node {id} paused"))
            }
            Fault::Resume(id) => {
                let m = &mut self.members[check(id)?.index()];
                if m.status != Status::Paused {
                    return Err(format!("node {id} is not paused"));
                }
                m.status = Status::Up;
                m.shared.paused.send_replace(false);
                (Happened::Life(id, Lifecycle::Resumed), format!("node {id} resumed"))
            }
            Fault::Cut { from, to } => {
                check(from)?;
                check(to)?;
                if from == to {
                    return Err(format!("node {from} to itself is no link"));
                }
                if !self.cut.insert((from.0, to.0)) {
                    return Err(format!("the link {from} → {to} is already cut"));
                }
                self.set_link(from, to, true);
                (Happened::Cut { from, to }, format!("link {from} → {to} cut"))
            }
            Fault::Partition(side) => {
                let side: BTreeSet<NodeId> = side.into_iter().map(check).collect::<Result<_, _>>()?;
                if side.is_empty() || side.len() == n {
                    return Err("a partition needs nodes on both sides".into());
                }
                let others: Vec<NodeId> = (0..n as u32).map(NodeId).filter(|i| !side.contains(i)).collect();
                for &a in &side {
                    for &b in &others {
                        for (from, to) in [(a, b), (b, a)] {
                            self.cut.insert((from.0, to.0));
                            self.set_link(from, to, true);
                        }
                    }
                }
                let side: Vec<NodeId> = side.into_iter().collect();
                let text = format!("partitioned: {} | {}", list(&side), list(&others));
                (Happened::Partition(side), text)
            }
            Fault::Heal => {
                if self.cut.is_empty() {
                    return Err("no link is cut".into());
                }
                for (from, to) in std::mem::take(&mut self.cut) {
                    self.set_link(NodeId(from), NodeId(to), false);
                }
                (Happened::Healed, "every link mended".to_string())
            }
        };
        let at = unix_ns();
        on_fault(at, &happened, &self.shared());
        self.happened.push((at, happened));
        Ok(text)
    }

    /// Starts crashed node `id` again from its database, on its address.
    #[allow(clippy::type_complexity)]
    async fn relaunch(
        &self,
        id: NodeId,
    ) -> Result<(Arc<NodeShared>, JoinHandle<NodeReport<ObsOf<S>>>, watch::Sender<bool>), String> {
        let mut cfg = (*self.cfg).clone();
        cfg.open = OpenMode::Existing;
        let cfg = Arc::new(cfg);
        let addr = cfg.addrs[id.index()];
        let mut tries = 0;
        loop {
            let attempt = match BoundNode::bind(id, addr).await {
                Ok(bound) => self
                    .launch(bound, cfg.clone())
                    .map_err(|e| (matches!(e, StoreError::Db { .. }), e.to_string())),
                Err(e) => Err((
                    e.kind() == std::io::ErrorKind::AddrInUse,
                    format!("cannot listen on {addr} again: {e}"),
                )),
            };
            match attempt {
                Ok(started) => return Ok(started),
                Err((transient, _)) if transient && tries < RETRIES => {
                    tries += 1;
                    tokio::time::sleep(RETRY_WAIT).await;
                }
                Err((_, why)) => return Err(format!("node {id} cannot restart: {why}")),
            }
        }
    }

    /// Marks the link `from → to` cut (or mended) at both its ends.
    fn set_link(&self, from: NodeId, to: NodeId, cut: bool) {
        if let Some(c) = self.members[from.index()].shared.cut_to.get(to.index()) {
            c.store(cut, Ordering::Relaxed);
        }
        if let Some(c) = self.members[to.index()].shared.cut_from.get(from.index()) {
            c.store(cut, Ordering::Relaxed);
        }
    }

    /// A restarted node's links as they are cut now (its shared state is new).
    fn cut_links(&self, shared: &NodeShared, id: NodeId) {
        for &(from, to) in &self.cut {
            if from == id.0 {
                shared.cut_to[to as usize].store(true, Ordering::Relaxed);
            }
            if to == id.0 {
                shared.cut_from[from as usize].store(true, Ordering::Relaxed);
            }
        }
    }

    /// Stops every node still running and returns one report per node, in id order (each
    /// node's incarnations merged), with the faults that took effect.
    pub(crate) async fn stop(self) -> (Vec<NodeReport<ObsOf<S>>>, Vec<(u64, Happened)>) {
        for m in &self.members {
            let _ = m.stop.send(true);
        }
        let mut reports = Vec::with_capacity(self.members.len());
        for m in self.members {
            let last = match m.handle {
                Some(h) => Some(h.await.expect("node task does not panic")),
                None => None,
            };
            reports.push(match (m.before, last) {
                (Some(mut before), Some(last)) => {
                    before.absorb(last);
                    before
                }
                (Some(r), None) | (None, Some(r)) => r,
                (None, None) => unreachable!("a node has run at least once"),
            });
        }
        (reports, self.happened)
    }
}

fn list(ids: &[NodeId]) -> String {
    ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",")
}

/// What the checker needs to know of the faults of a run of `n` nodes, which were `up` at its
/// end (not crashed, not paused).
pub struct FaultState {
    /// `crashed_ever[i]`: node i crashed at least once.
    pub crashed_ever: Vec<bool>,
    /// `down_at_end[i]`: node i was crashed or paused when the run ended.
    pub down_at_end: Vec<bool>,
    /// A link was cut at some time.
    pub any_cut: bool,
    /// A link was still cut at the end.
    pub cut_at_end: bool,
    /// Unix ns of the last fault (0: none).
    pub last_unix_ns: u64,
    /// The kinds of fault, to compare with the protocol's fault model.
    pub kinds: RunFaults,
}

impl FaultState {
    /// Replays `happened` (in time order) for a run of `n` nodes that started at
    /// `started_unix_ns`.
    pub fn of(n: usize, happened: &[(u64, Happened)], started_unix_ns: u64) -> FaultState {
        let mut s = FaultState {
            crashed_ever: vec![false; n],
            down_at_end: vec![false; n],
            any_cut: false,
            cut_at_end: false,
            last_unix_ns: 0,
            kinds: RunFaults::default(),
        };
        let ms = |t: u64| t.saturating_sub(started_unix_ns) as f64 / 1e6;
        for (t, h) in happened {
            s.last_unix_ns = *t;
            match h {
                Happened::Life(id, ev) => {
                    let i = id.index();
                    if i >= n {
                        continue;
                    }
                    match ev {
                        Lifecycle::Crashed => {
                            s.crashed_ever[i] = true;
                            s.down_at_end[i] = true;
                            s.kinds.crashes = true;
                            s.kinds.downs.push((ms(*t), None, id.0));
                        }
                        Lifecycle::Restarted => {
                            s.down_at_end[i] = false;
                            s.kinds.restarts = true;
                            if let Some(d) = s.kinds.downs.iter_mut().rev().find(|d| d.2 == id.0) {
                                d.1.get_or_insert(ms(*t));
                            }
                        }
                        Lifecycle::Paused => {
                            s.down_at_end[i] = true;
                            s.kinds.pauses = true;
                        }
                        Lifecycle::Resumed => s.down_at_end[i] = false,
                        Lifecycle::Wiped => s.kinds.wipes = true,
                    }
                }
                Happened::Cut { .. } | Happened::Partition(_) => {
                    s.any_cut = true;
                    s.cut_at_end = true;
                    s.kinds.partitions = true;
                }
                Happened::Healed => s.cut_at_end = false,
            }
        }
        s
    }
}
