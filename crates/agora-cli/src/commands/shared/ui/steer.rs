//! The controls of a run of every node in this process (`agora run`, `election`, `market`
//! with `--ui`): the page's actions become agora-net's faults (`agora_net::faults`), applied
//! by the run itself, and each fault that took effect is kept here for the sampler to show —
//! the node's state (crashed, paused, partitioned), the links cut, the timeline.
//!
//! The run tells [`Steered`] of each fault as it takes effect, under a lock the sampler takes
//! once per sample; what it keeps is bounded (the nodes' state, the links cut, the events not
//! yet shown, at most [`EVENTS`]).

use super::{Action, Command};
use agora_core::{Lifecycle, NodeId};
use agora_net::{Controls, Fault, Happened, NodeShared, Order};
use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// The verbs these runs take.
pub const VERBS: &[&str] = &["crash", "restart", "pause", "resume", "cut", "partition", "heal", "release"];

/// The verbs of a run whose nodes a command started itself, crashes and restarts itself, and
/// pauses and cuts off through [`Switches`] (`agora kv`, `agora vote`).
pub const STOP_START: &[&str] = &["crash", "restart", "pause", "resume", "cut", "partition", "heal"];

/// Events kept until the sampler takes them; older ones are dropped (and counted).
const EVENTS: usize = 256;

/// A node's state, as the faults left it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Up,
    Crashed,
    Paused,
}

/// A fault that took effect, for the timeline.
pub struct Event {
    pub at: Instant,
    /// `crash`, `restart`, `pause`, `resume`, `cut`, `partition`, `heal`, `release`.
    pub kind: &'static str,
    pub node: Option<usize>,
    pub text: String,
}

/// What the faults did to the run, as the sampler reads it.
pub struct Steered {
    /// Every node's shared state, in id order (a restarted node's new one).
    pub nodes: Vec<Arc<NodeShared>>,
    pub state: Vec<State>,
    /// The links cut now, `(from, to)`.
    pub cut: BTreeSet<(usize, usize)>,
    /// Events the sampler has not taken yet.
    pub events: VecDeque<Event>,
    /// Events dropped because the sampler did not take them in time.
    pub dropped: u64,
    /// The run does not end when it goes quiet, until released.
    pub held: bool,
}

impl Steered {
    fn event(&mut self, kind: &'static str, node: Option<usize>, text: String) {
        if self.events.len() == EVENTS {
            self.events.pop_front();
            self.dropped += 1;
        }
        self.events.push_back(Event { at: Instant::now(), kind, node, text });
    }

    /// Node `i` has a link cut, to or from it.
    pub fn partitioned(&self, i: usize) -> bool {
        // Cuts are few next to the nodes' count in any run a person steers by hand.
        self.cut.iter().any(|&(a, b)| a == i || b == i)
    }

    fn happened(&mut self, h: &Happened, nodes: &[Arc<NodeShared>]) {
        self.nodes = nodes.to_vec();
        let n = self.state.len();
        match h {
            Happened::Life(id, what) => {
                let state = match what {
                    Lifecycle::Crashed | Lifecycle::Wiped => State::Crashed,
                    Lifecycle::Restarted | Lifecycle::Resumed => State::Up,
                    Lifecycle::Paused => State::Paused,
                };
                if let Some(s) = self.state.get_mut(id.index()) {
                    *s = state;
                }
            }
            Happened::Cut { from, to } => {
                self.cut.insert((from.index(), to.index()));
            }
            Happened::Partition(side) => {
                let side: BTreeSet<usize> = side.iter().map(|i| i.index()).collect();
                for a in &side {
                    for b in (0..n).filter(|b| !side.contains(b)) {
                        self.cut.insert((*a, b));
                        self.cut.insert((b, *a));
                    }
                }
            }
            Happened::Healed => self.cut.clear(),
        }
        let (kind, node, text) = describe(h, n, "node");
        self.event(kind, node, text);
    }
}

/// A fault that took effect, for the timeline of a cluster of `n` nodes each called `noun`
/// (`node`, `replica`): its kind (`crash`, `restart`, `pause`, `resume`, `cut`, `partition`,
/// `heal`), the node it befell, if one, and its text.
pub fn describe(h: &Happened, n: usize, noun: &str) -> (&'static str, Option<usize>, String) {
    match h {
        Happened::Life(id, what) => {
            let (kind, text) = match what {
                Lifecycle::Crashed => ("crash", format!("{noun} {id} crashed (from the page)")),
                Lifecycle::Restarted => ("restart", format!("{noun} {id} restarted from its database")),
                Lifecycle::Paused => ("pause", format!("{noun} {id} paused (from the page)")),
                Lifecycle::Resumed => ("resume", format!("{noun} {id} resumed")),
                Lifecycle::Wiped => ("crash", format!("{noun} {id} lost its storage")),
            };
            (kind, Some(id.index()), text)
        }
        Happened::Cut { from, to } => {
            ("cut", Some(from.index()), format!("link {from} → {to} cut (from the page)"))
        }
        Happened::Partition(side) => {
            let side: BTreeSet<usize> = side.iter().map(|i| i.index()).collect();
            let list = |v: Vec<String>| v.join(",");
            let one = list(side.iter().map(|i| i.to_string()).collect());
            let other = list((0..n).filter(|b| !side.contains(b)).map(|i| i.to_string()).collect());
            ("partition", None, format!("partition {one} | {other} (from the page)"))
        }
        Happened::Healed => ("heal", None, "every link mended".into()),
    }
}

/// The controls of a run of `n` nodes: what the run needs (`Controls`), the channel the page's
/// actions go to, and the state the sampler reads. `hold` keeps the run going once it is quiet
/// until the page releases it.
pub fn controls(n: usize, hold: bool) -> (Controls, mpsc::Sender<Action>, Arc<Mutex<Steered>>) {
    let steered = Arc::new(Mutex::new(Steered {
        nodes: Vec::new(),
        state: vec![State::Up; n],
        cut: BTreeSet::new(),
        events: VecDeque::new(),
        dropped: 0,
        held: hold,
    }));
    let held = Arc::new(AtomicBool::new(hold));
    let (orders_tx, orders) = mpsc::channel(16);
    let (actions_tx, actions) = mpsc::channel(16);
    tokio::spawn(steer(actions, orders_tx, held.clone(), steered.clone()));
    let seen = steered.clone();
    let on_fault = Box::new(move |_at: u64, h: &Happened, nodes: &[Arc<NodeShared>]| {
        seen.lock().expect("steered lock").happened(h, nodes);
    });
    (Controls { orders, hold: held, on_fault }, actions_tx, steered)
}

/// Hands each action of the page to the run as a fault and its outcome back to the page.
async fn steer(
    mut actions: mpsc::Receiver<Action>,
    orders: mpsc::Sender<Order>,
    held: Arc<AtomicBool>,
    steered: Arc<Mutex<Steered>>,
) {
    while let Some(a) = actions.recv().await {
        let Some(fault) = fault_of(&a.command) else {
            let was = held.swap(false, Ordering::Relaxed);
            let mut s = steered.lock().expect("steered lock");
            s.held = false;
            let outcome = if was {
                s.event("release", None, "the run may end once it is quiet (from the page)".into());
                Ok("the run ends once it is quiet".to_string())
            } else {
                Err("the run is not held".to_string())
            };
            let _ = a.done.send(outcome);
            continue;
        };
        let (done, outcome) = oneshot::channel();
        let answer = match orders.send(Order { fault, done }).await {
            Ok(()) => outcome.await.unwrap_or_else(|_| Err("the run has ended".into())),
            Err(_) => Err("the run has ended".into()),
        };
        let _ = a.done.send(answer);
    }
}

/// The fault a command of the page asks for (`None`: `release`, which is no fault).
pub fn fault_of(c: &Command) -> Option<Fault> {
    let id = |i: usize| NodeId(i as u32);
    Some(match c {
        Command::Crash(i) => Fault::Crash(id(*i)),
        Command::Restart(i) => Fault::Restart(id(*i)),
        Command::Pause(i) => Fault::Pause(id(*i)),
        Command::Resume(i) => Fault::Resume(id(*i)),
        Command::Cut(from, to) => Fault::Cut { from: id(*from), to: id(*to) },
        Command::Partition(side) => Fault::Partition(side.iter().copied().map(id).collect()),
        Command::Heal => Fault::Heal,
        Command::Release => return None,
    })
}

/// The pauses and cuts of nodes that a command started itself (its own
/// `agora_net::node::start_with`, not `run_local_observed`, which applies every fault): each
/// node's driver already obeys its `paused` switch and its `cut_to`/`cut_from` flags, so these
/// faults need nothing of the command but the nodes' shared state. A node the command crashed
/// and started again gets a new shared state: [`Switches::restarted`] sets its links as they
/// are cut now.
pub struct Switches {
    paused: Vec<bool>,
    cut: BTreeSet<(usize, usize)>,
}

impl Switches {
    /// The switches of `n` nodes, none paused, no link cut.
    pub fn new(n: usize) -> Switches {
        Switches { paused: vec![false; n], cut: BTreeSet::new() }
    }

    /// The links cut now, `(from, to)`.
    pub fn cut(&self) -> &BTreeSet<(usize, usize)> {
        &self.cut
    }

    /// Node `i` is paused.
    pub fn paused(&self, i: usize) -> bool {
        self.paused.get(i).copied().unwrap_or(false)
    }

    /// Node `i` has a link cut, to or from it.
    pub fn partitioned(&self, i: usize) -> bool {
        self.cut.iter().any(|&(a, b)| a == i || b == i)
    }

    /// Node `i` crashed: it is paused no more (it restarts running).
    pub fn crashed(&mut self, i: usize) {
        if let Some(p) = self.paused.get_mut(i) {
            *p = false;
        }
    }

    /// Node `i` started again with a new shared state: its links as they are cut now.
    pub fn restarted(&self, i: usize, shared: &NodeShared) {
        for &(from, to) in &self.cut {
            if from == i {
                if let Some(c) = shared.cut_to.get(to) {
                    c.store(true, Ordering::Relaxed);
                }
            }
            if to == i {
                if let Some(c) = shared.cut_from.get(from) {
                    c.store(true, Ordering::Relaxed);
                }
            }
        }
    }

    /// Applies a pause, resume, cut, partition or heal to `nodes` (in id order; `None`: a node
    /// not running, which a cut still marks, for when it restarts): what happened and the
    /// answer, or why it cannot be done. A crash or a restart is refused: the command does
    /// those itself.
    pub fn apply(
        &mut self,
        fault: Fault,
        nodes: &[Option<&NodeShared>],
    ) -> Result<(Happened, String), String> {
        let n = nodes.len();
        let set = |from: usize, to: usize, on: bool| {
            if let Some(c) = nodes[from].and_then(|s| s.cut_to.get(to)) {
                c.store(on, Ordering::Relaxed);
            }
            if let Some(c) = nodes[to].and_then(|s| s.cut_from.get(from)) {
                c.store(on, Ordering::Relaxed);
            }
        };
        match fault {
            Fault::Pause(id) | Fault::Resume(id) if id.index() < n => {
                let (i, pause) = (id.index(), matches!(fault, Fault::Pause(_)));
                let Some(node) = nodes[i] else {
                    return Err(format!("node {id} is not running: only a running node pauses"));
                };
                match (pause, self.paused[i]) {
                    (true, true) => Err(format!("node {id} is already paused")),
                    (false, false) => Err(format!("node {id} is not paused")),
                    (true, false) => {
                        self.paused[i] = true;
                        node.paused.send_replace(true);
                        Ok((Happened::Life(id, Lifecycle::Paused), format!("node {id} paused")))
                    }
                    (false, true) => {
                        self.paused[i] = false;
                        node.paused.send_replace(false);
                        Ok((Happened::Life(id, Lifecycle::Resumed), format!("node {id} resumed")))
                    }
                }
            }
            Fault::Cut { from, to } if from.index() < n && to.index() < n && from != to => {
                if !self.cut.insert((from.index(), to.index())) {
                    Err(format!("the link {from} → {to} is already cut"))
                } else {
                    set(from.index(), to.index(), true);
                    Ok((Happened::Cut { from, to }, format!("link {from} → {to} cut")))
                }
            }
            Fault::Partition(side)
                if !side.is_empty() && side.len() < n && side.iter().all(|i| i.index() < n) =>
            {
                let one: BTreeSet<usize> = side.iter().map(|i| i.index()).collect();
                for &a in &one {
                    for b in (0..n).filter(|b| !one.contains(b)) {
                        for (from, to) in [(a, b), (b, a)] {
                            self.cut.insert((from, to));
                            set(from, to, true);
                        }
                    }
                }
                Ok((Happened::Partition(side), "partitioned".to_string()))
            }
            Fault::Heal if self.cut.is_empty() => Err("no link is cut".to_string()),
            Fault::Heal => {
                for (from, to) in std::mem::take(&mut self.cut) {
                    set(from, to, false);
                }
                Ok((Happened::Healed, "every link mended".to_string()))
            }
            Fault::Crash(_) | Fault::Restart(_) => {
                Err("this run's servers cannot be crashed or restarted from the page".to_string())
            }
            other => Err(format!("not a fault of this cluster: {other:?}")),
        }
    }
}
