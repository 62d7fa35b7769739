//! Exhaustive exploration: every interleaving of a small cluster's message deliveries and
//! timer firings, the real protocol code run state by state, with bounded loss, duplication,
//! crashes and restarts, and the protocol's `always` properties judged at every step.
//!
//! **The model.** A state is the whole system: every node's state (the protocol's own
//! struct, compared by its `Hash`), what each node persisted, each node's pending timers,
//! the multiset of messages in flight, which nodes are down, the faults spent, and each
//! node's observations so far (a hash chain: the checker's verdicts depend on them). From a
//! state, a step is one of: deliver a message in flight (any of them: the network may reorder
//! anything), deliver it and keep a copy (duplication), drop it (loss), fire a pending timer,
//! crash a node (it loses what it did not persist; messages on their way to it are lost with
//! its connections) and restart a crashed node from what it persisted.
//!
//! **Time.** With [`Timing::Async`] any pending timer may fire at any step, before any message
//! arrives and whatever its delay — an asynchronous network, where a timeout proves nothing.
//! With [`Timing::Sync`] messages take no time and timers keep their delays: a timer fires
//! only when no message is in flight, and only the one due first (any of them, if several are
//! due together) — the synchronous network the classic elections assume. Virtual time then
//! advances to the timer's deadline; states compare deadlines relative to the present, so a
//! state that recurs later is the same state. Handlers of most protocols see time zero: they
//! do not read the clock. A protocol that does ([`Setup::reads_clock`]: Raft's leader
//! stickiness, a client's retry) reads virtual time, which then moves to a timer's deadline
//! whenever that timer fires, in both timings, so a timeout has passed when one fired; the
//! time is then part of a state (a node may keep times it read), so its states recur only
//! within a bound on timer firings ([`Bounds::fires`]).
//!
//! **Choices.** Where a protocol leaves an alternative open ([`agora_core::Context::choose`]:
//! whether a Raft client's next operation reads or writes), a step is taken once for each
//! alternative, each leading to a state of its own; the start likewise, so there may be
//! several initial states. What a handler draws from its random source is data, not a
//! choice: each handler's generator is seeded with its node's id, so a node draws the same
//! at every step, and the same state always has the same successors.
//!
//! **Search.** Breadth first, so the first violation found is a shortest trace; states are
//! deduplicated by a 128-bit fingerprint of the whole system ([`fingerprint`]; a collision
//! may hide a state: the search is exhaustive up to that chance, about n²/2¹²⁹ for n states).
//! A violation comes with the steps that lead to it, replayed from the initial state.
//!
//! **Dead ends.** A state with no message in flight and no timer pending will never change
//! but by a fault: the checker's at-end properties are judged there, as at the quiet end of a
//! run that went on for ever after its last fault ([`EndState`]), and one that does not hold
//! is a liveness violation, reported with the shortest trace to it like a safety one.
//!
//! **Cycles.** A protocol that never goes quiet has no dead end; the search keeps the graph of
//! its fair steps (deliveries, uncounted timer firings) and, after it, judges the at-end
//! properties in each strongly connected component as at the end of a run that goes round it
//! for ever; one that does not hold in a fair cycle is a liveness violation, reported as a
//! lasso (the `cycles` module).

mod choice;
mod cycles;
mod fingerprint;
mod pool;
mod symmetry;

use choice::Choices;
pub use symmetry::check_symmetry;

use fingerprint::{hash_of, Fingerprinter, H128};

use crate::diagram::{Rec, Recorder};
use agora_core::{
    wire, Checker, Context, Counters, Deferred, EffectOf, EndState, Frame, Host, Interp, Lifecycle,
    Message as _, Metrics, Names, NodeId, OpId, Protocol, Rng, Setup, Stable, Symmetry, Targets, Time,
    Timers, Violation, Write,
};
use rand::SeedableRng as _;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

type MsgOf<S> = <<S as Setup>::Node as Protocol>::Msg;
type TimerOf<S> = <<S as Setup>::Node as Protocol>::Timer;
type ObsOf<S> = <<S as Setup>::Node as Protocol>::Obs;

/// The time a dead end is judged at: later than any fault by more than any protocol's
/// settling time, and far enough from [`Time::MAX`] that a checker's arithmetic on it cannot
/// overflow.
const FOR_EVER: Time = Time(u64::MAX / 4);

/// When timers may fire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timing {
    /// At any step: an asynchronous network.
    Async,
    /// Only when no message is in flight: a synchronous network.
    Sync,
}

/// How far the search goes and which faults it may use.
#[derive(Clone, Debug)]
pub struct Bounds {
    /// Steps from the initial state.
    pub depth: usize,
    /// Unique states; the search stops when it has seen this many.
    pub states: usize,
    /// Messages it may drop, in any one trace.
    pub loss: u8,
    /// Messages it may duplicate.
    pub duplicate: u8,
    /// Crashes.
    pub crashes: u8,
    /// Restarts of crashed nodes.
    pub restarts: u8,
    /// Timer firings, in any one trace (`None`: as many as the depth allows). Bounds what a
    /// protocol driven by its timers does: a Raft cluster's terms (each begins with an
    /// election timer firing), and with them its log.
    pub fires: Option<u32>,
    /// When timers may fire.
    pub timing: Timing,
    /// Links deliver in the order sent (a duplicate comes right after its original); else
    /// the network may reorder anything.
    pub fifo: bool,
    /// The process's resident memory, in bytes, past which the search takes no new state, as
    /// at the state limit (`None`: no such bound). A state of a large protocol holds kilobytes
    /// (a market's peers, each with its Raft replica and books), and the states of the level
    /// being searched are all held at once: without it, a search can take all the machine's
    /// memory before it reaches `states`. Read every [`MEMORY_EVERY`] new states (Linux's
    /// `/proc/self/status`; elsewhere not bounded).
    pub memory: Option<u64>,
}

/// How many new states the search takes between two readings of its resident memory.
pub const MEMORY_EVERY: u64 = 4096;

/// This process's resident memory (`VmRSS`), in bytes, where Linux reports it.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// How the search runs: on how many threads, and whether it counts renamings of a state as
/// one. Neither changes what it finds — whether a property breaks, and the length of the
/// shortest trace — only how fast, and (symmetry) in how many unique states.
#[derive(Clone, Copy, Debug)]
pub struct Search {
    /// Threads expanding each level (1: the caller's alone; at most 256 are used). Any number
    /// gives the same states, the same counts and the same trace.
    pub threads: usize,
    /// Counts a state and its renamings of interchangeable nodes as one, where the protocol
    /// declares some ([`Setup::symmetry`]; see the `symmetry` module).
    pub symmetry: bool,
}

/// Where the search is, for a progress line.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Steps taken (states generated, duplicates included).
    pub states: u64,
    /// Distinct states seen.
    pub unique: u64,
    /// The depth being explored.
    pub depth: usize,
    /// Since the search began.
    pub elapsed: Duration,
}

/// A violation and the shortest trace to it.
#[derive(Clone, Debug)]
pub struct Found {
    /// What broke.
    pub violation: Violation,
    /// The steps from the initial state, in words; the last one broke the property.
    pub trace: Vec<String>,
    /// The trace as a space-time diagram's events: step `i` at `i` ms (start at 0), each
    /// message from the step that sent it to the one that delivered or lost it
    /// ([`crate::diagram::render_svg`]).
    pub diagram: Recorder,
    /// The steps themselves: a schedule [`replay`] takes again to the same violation.
    pub steps: Vec<Step>,
    /// The alternatives the handlers took where the protocol left them open
    /// ([`agora_core::Context::choose`]), one number per step (see the `choice` module):
    /// the first for the nodes' start, then one for each of `steps`.
    pub choices: Vec<u64>,
    /// The violation is of an at-end property in a dead end: a state with nothing left to
    /// deliver or fire (see [`Report::dead_ends`]), not of a safety property.
    pub dead_end: bool,
    /// The violation is of an at-end property in a cycle (see [`Report::cycles`]): the steps
    /// from this index on lead from a state back to itself, and a fair run goes round them
    /// for ever; those before it are the shortest trace to that state. Together, a lasso.
    pub cycle: Option<usize>,
}

/// A schedule taken step by step ([`replay`]).
#[derive(Debug)]
pub struct Replayed {
    /// The steps in words, each described in the state it was taken from.
    pub trace: Vec<String>,
    /// The steps as a space-time diagram's events (see [`Found::diagram`]).
    pub diagram: Recorder,
    /// The violation a step (the last one taken) led to, if any.
    pub violation: Option<Violation>,
    /// That violation is of an at-end property, in the dead end the last step reached.
    pub dead_end: bool,
    /// That violation is of an at-end property, in the cycle the schedule's last steps go
    /// round ([`Found::cycle`]).
    pub cycle: bool,
}

/// What a search found.
#[derive(Clone, Debug)]
pub struct Report {
    /// Where it ended.
    pub progress: Progress,
    /// Every state this many steps or fewer from the start was reached and judged.
    pub depth_done: usize,
    /// Every state within the bounds was explored: the depth or state limit cut nothing off.
    pub complete: bool,
    /// The first violation, if any (the search stops there).
    pub found: Option<Found>,
    /// Renamings of interchangeable nodes were counted as one state.
    pub symmetry: bool,
    /// Distinct dead ends reached: states with no message in flight and no timer pending at
    /// any node, where nothing will ever happen again but faults. The checker's at-end
    /// properties are judged in each, as at the quiet end of a run that went on for ever
    /// after its last fault (the checker still declines those its conditions exclude: after
    /// a message was lost, say).
    pub dead_ends: u64,
    /// The at-end properties the checker judged in at least one dead end.
    pub judged_at_end: Vec<&'static str>,
    /// Cycles found among the states explored: strongly connected components of the graph
    /// of fair steps (deliveries and timer firings; faults are counted in a state, so no
    /// cycle takes one), each a set of states a run may go round for ever. The at-end
    /// properties are judged in each, as at the end of a run that stays in it (see the
    /// `cycles` module). Not looked for by random walks.
    pub cycles: u64,
    /// Cycles in which an at-end property does not hold but no run that stays in them is
    /// fair: a message in flight or a timer pending waits for ever in every one tried (the
    /// shortest cycle through the component's first state, and a walk through all its steps).
    /// Not violations: a fair run leaves them. (With symmetry, also those whose cycle did
    /// not lead back to the very state it starts from within a few rounds.)
    pub unfair_cycles: u64,
    /// The at-end properties the checker judged in at least one cycle.
    pub judged_in_cycles: Vec<&'static str>,
    /// The memory bound ([`Bounds::memory`]) turned states away.
    pub memory_limited: bool,
}

/// Why a protocol cannot be explored.
#[derive(Debug, thiserror::Error)]
pub enum ExploreError {
    /// Its checker cannot be copied ([`Checker::fork`]).
    #[error("the checker of {0} cannot be copied, so its runs cannot be branched")]
    NoFork(&'static str),
    /// A node could not be rebuilt from what it persisted.
    #[error("node {0} could not be rebuilt from what it persisted: {1}")]
    Corrupt(NodeId, agora_core::Corrupt),
    /// A schedule's step is not one the state it is taken from allows.
    #[error("step {0} of the schedule ({1:?}) is not possible in the state it is taken from")]
    Impossible(usize, Step),
    /// A schedule's cycle (from step `0` on) does not lead back to the state it starts from.
    #[error("the schedule's cycle from step {0} does not lead back to the state it starts from")]
    OpenCycle(usize),
    /// A schedule's cycle leaves a message in flight or a timer pending for ever.
    #[error("the schedule's cycle from step {0} leaves a message in flight or a timer pending for ever")]
    UnfairCycle(usize),
    /// A schedule's choices at a step (0: the start) are not ones its handlers can take.
    #[error("the choices {1} at step {0} of the schedule are not ones its handlers can take")]
    BadChoice(usize, u64),
    /// With symmetry, a cycle of the search could not be followed from a renaming of its
    /// states: the renaming of a state with many interchangeable nodes alike was not exact
    /// (past 720 orders of them), so the cycle can be judged neither way.
    #[error(
        "a cycle of the search could not be followed from a renaming of its states (too many interchangeable nodes alike for an exact renaming): explore again with --no-symmetry"
    )]
    Unfollowed,
    /// One step's handlers made more choices than 64 bits can name.
    #[error("a step of {0} made more choices than 64 bits can name")]
    TooManyChoices(&'static str),
}

/// A message on its way.
struct Flight<M> {
    from: NodeId,
    to: NodeId,
    msg: M,
    /// Of `(from, to, body)`: orders the multiset and identifies equal messages.
    hash: H128,
    /// Of the encoding: the message whoever sends it to whomever (symmetry renames the ends).
    body: H128,
    /// When it was sent (a count of sends): its place on its link, for FIFO links.
    sent: u64,
}

impl<M: Clone> Clone for Flight<M> {
    fn clone(&self) -> Self {
        Flight {
            from: self.from,
            to: self.to,
            msg: self.msg.clone(),
            hash: self.hash,
            body: self.body,
            sent: self.sent,
        }
    }

    fn clone_from(&mut self, source: &Self) {
        self.from = source.from;
        self.to = source.to;
        self.msg.clone_from(&source.msg);
        self.hash = source.hash;
        self.body = source.body;
        self.sent = source.sent;
    }
}

/// Faults spent on the way to a state.
#[derive(Clone, Copy, Default, Hash)]
struct Spent {
    loss: u8,
    duplicate: u8,
    crashes: u8,
    restarts: u8,
    fires: u32,
}

/// One step from a state: indices into the state's canonical order (messages in flight sorted
/// by their hash, each node's pending timers in its table's order), so a schedule of steps
/// replays the same way every time from the same start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Deliver the `i`th message in flight.
    Deliver(usize),
    /// Deliver a copy of the `i`th message in flight and keep it in flight.
    Duplicate(usize),
    /// Lose the `i`th message in flight.
    Drop(usize),
    /// Fire node `n`'s `t`th pending timer.
    Fire(usize, usize),
    /// Crash node `n`.
    Crash(usize),
    /// Restart crashed node `n` from what it persisted.
    Restart(usize),
}

impl Step {
    /// A step a run may take again and again for ever (see the `cycles` module): a delivery,
    /// or a timer firing when firings are not counted. Faults are counted in the state, and so
    /// are firings under [`Bounds::fires`]: such steps never close a cycle.
    fn fair(self, b: &Bounds) -> bool {
        match self {
            Step::Deliver(_) => true,
            Step::Fire(..) => b.fires.is_none(),
            _ => false,
        }
    }

    /// The step in a word: its kind in the top byte, its two indices in 28 bits each (a
    /// state's messages, nodes and timers number far fewer).
    fn pack(self) -> u64 {
        let (kind, a, b) = match self {
            Step::Deliver(i) => (0, i, 0),
            Step::Duplicate(i) => (1, i, 0),
            Step::Drop(i) => (2, i, 0),
            Step::Fire(n, t) => (3, n, t),
            Step::Crash(n) => (4, n, 0),
            Step::Restart(n) => (5, n, 0),
        };
        debug_assert!(a < 1 << 28 && b < 1 << 28);
        (kind << 56) | ((a as u64 & 0xfff_ffff) << 28) | (b as u64 & 0xfff_ffff)
    }

    /// The step [`Step::pack`] made `w` of.
    fn unpack(w: u64) -> Step {
        let (a, b) = (((w >> 28) & 0xfff_ffff) as usize, (w & 0xfff_ffff) as usize);
        match w >> 56 {
            0 => Step::Deliver(a),
            1 => Step::Duplicate(a),
            2 => Step::Drop(a),
            3 => Step::Fire(a, b),
            4 => Step::Crash(a),
            _ => Step::Restart(a),
        }
    }
}

/// What a state holds of one node: kept together, so that a state's nodes take one
/// allocation, not one for each of these.
struct Slot<S: Setup> {
    /// Shared between a state and its successors until the node takes a step: a fork
    /// copies pointers, and a step copies the one node that moves. `None` while it is down.
    node: Option<Arc<S::Node>>,
    /// The hash of `node`, kept up to date as it steps: a state's identity hashes this, not
    /// the node again.
    hash: H128,
    /// What it persisted: shared between a state and its successors until the node writes.
    stable: Arc<Stable>,
    /// The hash of `stable`, kept up to date as it is written.
    stable_hash: H128,
    /// Its pending timers with their deadlines (ns of virtual time).
    timers: Timers<TimerOf<S>, u64>,
    /// Its observations, as a hash chain (an observation that names nodes, see
    /// [`World::names`], by its place among the node's in [`World::named`] only).
    seen: H128,
    /// It crashed at least once on the way here (a dead end's checker is told).
    crashed_ever: bool,
}

impl<S: Setup> Clone for Slot<S> {
    fn clone(&self) -> Self {
        Slot {
            node: self.node.clone(),
            hash: self.hash,
            stable: self.stable.clone(),
            stable_hash: self.stable_hash,
            timers: self.timers.clone(),
            seen: self.seen,
            crashed_ever: self.crashed_ever,
        }
    }

    /// Reuses this slot's room (its timer table's), and leaves the node and its storage alone
    /// where they are already `src`'s: a spare was most often the previous successor of the
    /// same state, which differs from it in one node or none, and copying a shared pointer
    /// costs a write to memory the node shares.
    fn clone_from(&mut self, src: &Self) {
        // Every field named, none left out: a field added to a slot must be copied here.
        let Slot { node, hash, stable, stable_hash, timers, seen, crashed_ever } = src;
        let same_node = match (&self.node, node) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (a, b) => a.is_none() && b.is_none(),
        };
        if !same_node {
            self.node.clone_from(node);
        }
        self.hash = *hash;
        if !Arc::ptr_eq(&self.stable, stable) {
            self.stable.clone_from(stable);
        }
        self.stable_hash = *stable_hash;
        self.timers.clone_from(timers);
        self.seen = *seen;
        self.crashed_ever = *crashed_ever;
    }
}

/// The whole system.
struct World<S: Setup> {
    /// Each node's, in id order.
    slots: Vec<Slot<S>>,
    /// Virtual time: the latest deadline of a timer fired, with [`Timing::Sync`] or when the
    /// protocol reads the clock (else it stays 0 with [`Timing::Async`], where delays do not
    /// count).
    now: u64,
    sync: bool,
    /// The protocol reads the clock ([`Setup::reads_clock`]): handlers see `now`, and it is
    /// part of the state (a node may keep times it read).
    clock: bool,
    fifo: bool,
    /// Timer firings are bounded, so they are counted (and part of the state); unbounded,
    /// counting them would make a state that recurs later (a heartbeat round) a new one.
    count_fires: bool,
    /// Messages sent so far: stamps each with its place on its link.
    sends: u64,
    /// Sorted by hash: a canonical order for the multiset.
    flight: Vec<Flight<MsgOf<S>>>,
    /// Where messages, storage and observations name nodes of a symmetry class: how to
    /// rename them ([`agora_core::Names`]).
    names: Option<Names<S::Node>>,
    /// The observations that name nodes, each with the node that made it, in the order made:
    /// kept whole, so that a renaming can rename them. (Of every state's, not each slot's: few
    /// protocols have any, and an empty vector in every slot would cost each state room.)
    named: Vec<(u32, ObsOf<S>)>,
    spent: Spent,
    checker: Box<dyn Checker<S::Node>>,
}

/// An initial state, the number of the choices its nodes made as they started, and the
/// violation starting broke, if any.
type Start<S> = (World<S>, u64, Option<Violation>);

/// The names of a checker's at-end properties, in its order.
fn at_end<P: Protocol + ?Sized>(c: &dyn Checker<P>) -> impl Iterator<Item = &'static str> {
    c.properties().into_iter().filter(|p| p.kind == agora_core::PropertyKind::AtEnd).map(|p| p.name).take(64)
}

/// The names of the at-end properties whose bits `mask` sets (bit `i`: the `i`th of [`at_end`]).
fn at_end_named<S: Setup>(setup: &S, mask: u64) -> Vec<&'static str> {
    at_end(setup.checker().as_ref()).enumerate().filter(|(i, _)| mask & 1 << i != 0).map(|(_, p)| p).collect()
}

/// The hash of what a node persisted, but for the values of `keys` (which name nodes: a
/// state's identity hashes them apart, renamed).
fn storage_hash(st: &Stable, keys: &[&str]) -> u128 {
    let mut h = Fingerprinter::new();
    st.len().hash(&mut h);
    for (k, v) in st.iter() {
        k.hash(&mut h);
        if !keys.contains(&k) {
            v.hash(&mut h);
        }
    }
    h.finish128()
}

impl<S: Setup> World<S>
where
    S::Node: Clone + Hash + Sync,
    TimerOf<S>: Hash,
{
    fn fork(&self) -> Self {
        World {
            slots: self.slots.clone(),
            now: self.now,
            sync: self.sync,
            clock: self.clock,
            fifo: self.fifo,
            count_fires: self.count_fires,
            sends: self.sends,
            flight: self.flight.clone(),
            names: self.names,
            named: self.named.clone(),
            spent: self.spent,
            checker: self.checker.fork().expect("checked forkable before the search"),
        }
    }

    /// [`World::fork`] into this spare state, reusing its vectors' room: the explorer tries
    /// every successor in a spare, and most are states seen before, dropped again.
    fn refork(&mut self, src: &Self) {
        // Every field named, none left out: a field added to the state must be copied here.
        let World { slots, now, sync, clock, fifo, count_fires, sends, flight, names, named, spent, checker } =
            src;
        self.slots.clone_from(slots);
        (self.now, self.sync, self.clock, self.fifo, self.count_fires) =
            (*now, *sync, *clock, *fifo, *count_fires);
        self.sends = *sends;
        self.flight.clone_from(flight);
        self.names = *names;
        self.named.clone_from(named);
        self.spent = *spent;
        assert!(checker.fork_into(&mut self.checker), "checked forkable before the search");
    }

    /// Every node built empty and started, in id order.
    fn initial(setup: &S, b: &Bounds, d: &mut Driver) -> Result<(Self, Option<Violation>), ExploreError> {
        let n = setup.nodes();
        let checker = setup.checker();
        if checker.fork().is_none() {
            return Err(ExploreError::NoFork(setup.name()));
        }
        let names = setup.symmetry().and_then(|s| s.names);
        let keys = names.map_or(&[][..], |m| m.stored_keys);
        let stable = Arc::new(Stable::new());
        let stable_hash = storage_hash(&stable, keys);
        let slots = (0..n)
            .map(|i| {
                let node = setup
                    .build(NodeId(i as u32), &stable)
                    .map(|node| Some(Arc::new(node)))
                    .map_err(|e| ExploreError::Corrupt(NodeId(i as u32), e))?;
                Ok(Slot {
                    hash: hash_of(&node).into(),
                    node,
                    stable: stable.clone(),
                    stable_hash: stable_hash.into(),
                    timers: Timers::new(),
                    seen: H128::default(),
                    crashed_ever: false,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut w = World {
            slots,
            now: 0,
            sync: b.timing == Timing::Sync,
            clock: setup.reads_clock(),
            fifo: b.fifo,
            count_fires: b.fires.is_some(),
            sends: 0,
            flight: Vec::new(),
            names,
            named: Vec::new(),
            spent: Spent::default(),
            checker,
        };
        let mut broke = None;
        for i in 0..n {
            if let Err(v) = w.step(d, i, 0, |node: &mut S::Node, ctx| node.on_start(ctx)) {
                broke.get_or_insert(v);
            }
        }
        Ok((w, broke))
    }

    /// Every initial state: one for each combination of the choices the nodes make as they
    /// start, with its choices' number and the violation starting broke, if any.
    fn initials(setup: &S, b: &Bounds, d: &mut Driver) -> Result<Vec<Start<S>>, ExploreError> {
        d.choices = Choices::search();
        let mut out = Vec::new();
        loop {
            let (w, broke) = World::initial(setup, b, d)?;
            out.push((w, d.code(setup)?, broke));
            if !d.choices.advance() {
                return Ok(out);
            }
        }
    }

    /// The state's identity; with `sym`, the same for every renaming of its interchangeable
    /// nodes (that of its canonical renaming, [`symmetry`]).
    fn fingerprint(&self, sym: Option<&Symmetry<S::Node>>) -> u128 {
        match sym {
            None => self.identity(None),
            // Ids inside the state: the least identity of all its renamings, when they are few.
            Some(sym) if sym.names.is_some() => match symmetry::Renaming::all(self.slots.len(), sym) {
                Some(all) => self.least_identity(&all),
                None => self.least_identity(&symmetry::Renaming::canonical(self, sym)),
            },
            Some(sym) => self.least_identity(&symmetry::Renaming::canonical(self, sym)),
        }
    }

    /// The least identity of the states `renamings` rename this one to.
    fn least_identity(&self, renamings: &[symmetry::Renaming<'_, S::Node>]) -> u128 {
        renamings.iter().map(|r| self.identity(Some(r))).min().expect("at least one renaming")
    }

    /// The hash of the state, or of the state its nodes renamed by `r` would be.
    fn identity(&self, r: Option<&symmetry::Renaming<'_, S::Node>>) -> u128 {
        let mut h = Fingerprinter::new();
        // The node at place `j` of the renamed state.
        let at = |j: usize| r.map_or(j, |r| r.from[j]);
        for j in 0..self.slots.len() {
            let slot = &self.slots[at(j)];
            match (&slot.node, r) {
                (Some(node), Some(r)) => hash_of(&Some((r.sym.rename)(node, &r.to))).hash(&mut h),
                _ => slot.hash.hash(&mut h),
            }
        }
        let names = self.names;
        for j in 0..self.slots.len() {
            let slot = &self.slots[at(j)];
            slot.stable_hash.hash(&mut h);
            for key in names.map_or(&[][..], |m| m.stored_keys) {
                match (slot.stable.get_bytes(key), r, names) {
                    (Some(v), Some(r), Some(m)) => (m.stored)(key, v, &r.to).hash(&mut h),
                    (v, _, _) => v.hash(&mut h),
                }
            }
        }
        for j in 0..self.slots.len() {
            self.timers_hash(at(j)).hash(&mut h);
        }
        match r {
            None => {
                for f in &self.flight {
                    self.flight_hash(f, f.hash.get()).hash(&mut h);
                }
            }
            Some(r) => {
                let mut renamed: Vec<_> = self
                    .flight
                    .iter()
                    .map(|f| {
                        let body = match r.sym.names.and_then(|m| (m.msg)(&f.msg, &r.to)) {
                            Some(renamed) => hash_of(&wire::encode(&renamed)),
                            None => f.body.get(),
                        };
                        self.flight_hash(f, hash_of(&(r.to[f.from.index()], r.to[f.to.index()], body)))
                    })
                    .collect();
                renamed.sort_unstable();
                renamed.hash(&mut h);
            }
        }
        if self.clock {
            // Nodes may hold times they read: the same state at another time may act otherwise.
            self.now.hash(&mut h);
        }
        for j in 0..self.slots.len() {
            let slot = &self.slots[at(j)];
            (slot.seen, slot.crashed_ever).hash(&mut h);
            for (_, obs) in self.named.iter().filter(|(k, _)| *k as usize == at(j)) {
                match (r, names) {
                    (Some(r), Some(m)) => (m.obs)(obs, &r.to).map(|o| wire::encode(&o)).hash(&mut h),
                    _ => wire::encode(obs).hash(&mut h),
                }
            }
        }
        self.spent.hash(&mut h);
        h.finish128()
    }

    /// Node `n`'s pending timers: a set (the order they were set in does not matter), each
    /// deadline relative to the present (a timer already due, asynchronously when a later one
    /// fired first, is due now).
    fn timers_hash(&self, n: usize) -> (usize, u128) {
        let timers = &self.slots[n].timers;
        let set = timers
            .iter()
            .map(|(t, _, due)| hash_of(&(t, due.saturating_sub(self.now))))
            .fold(0, u128::wrapping_add);
        (timers.len(), set)
    }

    /// A message in flight, `hash` its `(from, to, body)` as named in the state hashed: on
    /// FIFO links, with its place on its link (the order matters; when it was sent does not).
    fn flight_hash(&self, f: &Flight<MsgOf<S>>, hash: u128) -> (u128, usize) {
        (hash, if self.fifo { self.ahead(f) } else { 0 })
    }

    /// The steps this state allows within `b`.
    /// Messages sent before `f` on its link and still in flight.
    fn ahead(&self, f: &Flight<MsgOf<S>>) -> usize {
        self.flight.iter().filter(|g| (g.from, g.to) == (f.from, f.to) && g.sent < f.sent).count()
    }

    fn steps(&self, b: &Bounds) -> Vec<Step> {
        let mut out = Vec::new();
        for (i, f) in self.flight.iter().enumerate() {
            if i > 0 && self.flight[i - 1].hash == f.hash {
                continue; // the same message again: the same successors
            }
            if self.fifo && self.ahead(f) > 0 {
                continue; // not the first on its link
            }
            out.push(Step::Deliver(i));
            if self.spent.duplicate < b.duplicate {
                out.push(Step::Duplicate(i));
            }
            if self.spent.loss < b.loss {
                out.push(Step::Drop(i));
            }
        }
        let first = self.slots.iter().filter_map(|s| s.timers.next_deadline()).min();
        let fire = b.fires.is_none_or(|f| self.spent.fires < f);
        for (n, slot) in self.slots.iter().enumerate().filter(|_| fire) {
            for (t, (_, _, due)) in slot.timers.iter().enumerate() {
                let fires = match b.timing {
                    Timing::Async => true,
                    Timing::Sync => self.flight.is_empty() && Some(due) == first,
                };
                if fires {
                    out.push(Step::Fire(n, t));
                }
            }
        }
        for (n, slot) in self.slots.iter().enumerate() {
            match slot.node {
                Some(_) if self.spent.crashes < b.crashes => out.push(Step::Crash(n)),
                None if self.spent.restarts < b.restarts => out.push(Step::Restart(n)),
                _ => {}
            }
        }
        out
    }

    /// Nothing is left to deliver or fire: no message in flight, no timer pending. Only a
    /// fault (a crash, a restart) could change this state.
    fn dead_end(&self) -> bool {
        self.flight.is_empty() && self.slots.iter().all(|s| s.timers.is_empty())
    }

    /// The at-end properties judged in this state, a dead end reached in `depth` steps: those
    /// the checker judged (bit `i`: its `i`th at-end property), or the first it finds broken.
    /// The end is that of a run that went quiet here and stayed so for ever after its last
    /// fault, since nothing else will happen in it.
    fn judge_end(&self, depth: usize) -> Result<u64, Violation> {
        self.judge(depth, true)
    }

    /// The at-end properties judged at the end of a run that stays in this state's cycle for
    /// ever (see the `cycles` module): as in a dead end, but the run is not quiescent, and
    /// nothing it does from here on is observed.
    fn judge_cycle(&self, depth: usize) -> Result<u64, Violation> {
        self.judge(depth, false)
    }

    /// The at-end properties judged in this state, reached in `depth` steps, as the end of a
    /// run that stays here for ever after its last fault: quiet (`quiescent`, a dead end) or
    /// going round a cycle that observes nothing.
    fn judge(&self, depth: usize, quiescent: bool) -> Result<u64, Violation> {
        let mut checker = self.checker.fork().expect("checked forkable before the search");
        let live: Vec<bool> = self.slots.iter().map(|s| s.node.is_some()).collect();
        let crashed_ever: Vec<bool> = self.slots.iter().map(|s| s.crashed_ever).collect();
        let end = EndState {
            at: FOR_EVER,
            live: &live,
            crashed_ever: &crashed_ever,
            network_reliable: self.spent.loss == 0,
            quiescent,
            // A dead end observes nothing more; nor does a cycle, judged only as a run that
            // goes round it fairly for ever (the `cycles` module) — unless a message was lost
            // on the way: a protocol that resends by the clock (a link layer) but does not
            // say it reads it sees time stand still here and never resends, so a cycle after
            // a loss may be one it would leave.
            observed_all: quiescent || self.spent.loss == 0,
            last_fault: Time::ZERO,
            partitioned: false,
            timely: self.sync,
        };
        if let Some(mut v) = checker.finish(&end).into_iter().next() {
            v.at = Time::from_millis_f64(depth as f64);
            return Err(v);
        }
        let skipped = checker.not_judged(&end);
        let judged = at_end(checker.as_ref())
            .enumerate()
            .filter(|(_, p)| !skipped.iter().any(|(q, _)| q == p))
            .fold(0, |mask, (i, _)| mask | 1 << i);
        Ok(judged)
    }

    /// The step in words, as taken from this state.
    fn describe(&self, s: Step) -> String {
        let msg = |i: usize| {
            let f = &self.flight[i];
            format!("{} {:?} from node {} to node {}", f.msg.kind(), f.msg, f.from, f.to)
        };
        match s {
            Step::Deliver(i) => format!("deliver {}", msg(i)),
            Step::Duplicate(i) => format!("deliver, and keep a duplicate of, {}", msg(i)),
            Step::Drop(i) => format!("lose {}", msg(i)),
            Step::Fire(n, t) => format!("fire timer {:?} at node {n}", self.timer(n, t).0),
            Step::Crash(n) => format!("crash node {n}"),
            Step::Restart(n) => format!("restart node {n} from what it persisted"),
        }
    }

    /// The `t`th of node `n`'s pending timers, in its table's order: name, generation, deadline.
    fn timer(&self, n: usize, t: usize) -> (TimerOf<S>, u64, u64) {
        let (timer, gen, due) = self.slots[n].timers.iter().nth(t).expect("a step names a pending timer");
        (timer.clone(), gen, due)
    }

    /// Takes step `s`, the `depth`th of its trace.
    fn apply(&mut self, d: &mut Driver, setup: &S, s: Step, depth: usize) -> Result<(), Violation> {
        let at = Time::from_millis_f64(depth as f64);
        match s {
            Step::Deliver(i) | Step::Duplicate(i) => {
                let f = match s {
                    Step::Duplicate(_) => {
                        self.spent.duplicate += 1;
                        self.flight[i].clone()
                    }
                    _ => self.flight.remove(i),
                };
                self.step(d, f.to.index(), depth, |node, ctx| node.on_message(ctx, f.from, f.msg))
            }
            Step::Drop(i) => {
                self.spent.loss += 1;
                self.flight.remove(i);
                Ok(())
            }
            Step::Fire(n, t) => {
                let (timer, gen, due) = self.timer(n, t);
                self.slots[n].timers.fire(gen);
                if self.count_fires {
                    self.spent.fires += 1;
                }
                if self.sync || self.clock {
                    self.now = self.now.max(due);
                }
                self.step(d, n, depth, |node, ctx| node.on_timer(ctx, timer))
            }
            Step::Crash(n) => {
                self.spent.crashes += 1;
                let slot = &mut self.slots[n];
                slot.crashed_ever = true;
                slot.node = None;
                slot.hash = hash_of(&slot.node).into();
                slot.timers.clear();
                self.flight.retain(|f| f.to.index() != n);
                self.checker.lifecycle(at, NodeId(n as u32), Lifecycle::Crashed);
                Ok(())
            }
            Step::Restart(n) => {
                self.spent.restarts += 1;
                let id = NodeId(n as u32);
                let node = setup.build(id, &self.slots[n].stable).map_err(|e| {
                    Violation::new("restart", Some(id), at, format!("cannot rebuild from its storage: {e}"))
                })?;
                self.slots[n].node = Some(Arc::new(node));
                self.checker.lifecycle(at, id, Lifecycle::Restarted);
                self.step(d, n, depth, |node, ctx| node.on_start(ctx))
            }
        }
    }

    /// Runs one handler of node `n` and applies its effects through the interpreter every
    /// driver shares; a deferred write lands at once and its timer fires right after.
    fn step(
        &mut self,
        d: &mut Driver,
        n: usize,
        depth: usize,
        f: impl FnOnce(&mut S::Node, &mut Context<'_, S::Node>),
    ) -> Result<(), Violation> {
        let count = self.slots.len();
        let id = NodeId(n as u32);
        let slot = &mut self.slots[n];
        let Some(node) = slot.node.as_mut().map(Arc::make_mut) else { return Ok(()) };
        let mut rng = Rng::seed_from_u64(d.seeds[n]);
        let mut effects: Vec<EffectOf<S::Node>> =
            d.effects.downcast_mut().map(std::mem::take).unwrap_or_default();
        let now = if self.clock { Time(self.now) } else { Time::ZERO };
        f(node, &mut Context::new(id, count, now, &mut rng, &mut effects).with_chooser(&mut d.choices));
        slot.hash = hash_of(&slot.node).into();
        // This state may have been reached on another thread, whose interpreter issued its
        // timers' generations.
        if let Some(gen) = slot.timers.iter().map(|(_, gen, _)| gen).max() {
            d.interp.generations_above(gen);
        }
        self.effects(d, n, depth, effects)
    }

    /// Applies node `n`'s effects of one step.
    fn effects(
        &mut self,
        d: &mut Driver,
        n: usize,
        depth: usize,
        mut effects: Vec<EffectOf<S::Node>>,
    ) -> Result<(), Violation> {
        let id = NodeId(n as u32);
        let at = Time::from_millis_f64(depth as f64);
        let mut host = StepHost {
            world: self,
            at,
            scratch: &mut d.scratch,
            buf: &mut d.buf,
            broke: None,
            landed: Vec::new(),
        };
        for e in effects.drain(..) {
            d.interp.apply(&mut host, id, e);
        }
        let StepHost { broke, landed, .. } = host;
        match d.effects.downcast_mut() {
            Some(room) => *room = effects,
            None => d.effects = Box::new(effects),
        }
        self.flight.sort_by_key(|f| f.hash);
        if let Some(v) = broke {
            return Err(v);
        }
        for done in landed {
            self.step(d, n, depth, |node, ctx| node.on_timer(ctx, done))?;
        }
        Ok(())
    }
}

/// What the explorer keeps across steps: the interpreter every driver shares, the
/// accounts it keeps (part of no state), and where the handlers' choices come from in the
/// step being taken.
struct Driver {
    interp: Interp,
    scratch: (Metrics, Counters),
    choices: Choices,
    /// The seed of each node's random source in every step.
    seeds: Vec<u64>,
    /// Room for a step's effects, kept from step to step: a `Vec` of the protocol's effects
    /// (the driver is not generic over the protocol).
    effects: Box<dyn std::any::Any + Send>,
    /// Room to encode an observation in (see [`StepHost::observe`]).
    buf: Vec<u8>,
}

impl Driver {
    fn new(setup: &impl Setup) -> Self {
        let n = setup.nodes();
        // Every node of a class of interchangeable nodes draws what the class's first draws:
        // a renaming must not change what a node does. With or without symmetry in the
        // search, so that both search the same system (and a schedule replays in it).
        let mut seeds: Vec<u64> = (0..n as u64).collect();
        for class in setup.symmetry().map(|s| s.classes).unwrap_or_default() {
            let first = class.iter().map(|i| i.0 as u64).min().unwrap_or(0);
            for i in class {
                seeds[i.index()] = first;
            }
        }
        Driver {
            interp: Interp::new(n),
            scratch: (Metrics::new(), Counters::default()),
            choices: Choices::search(),
            seeds,
            effects: Box::new(()),
            buf: Vec::new(),
        }
    }

    /// The number of the choices the step just taken made.
    fn code(&self, setup: &impl Setup) -> Result<u64, ExploreError> {
        self.choices.code().ok_or(ExploreError::TooManyChoices(setup.name()))
    }
}

/// The explorer's side of one step's effects: the state's timers, network, storage and checker.
struct StepHost<'a, S: Setup> {
    world: &'a mut World<S>,
    at: Time,
    scratch: &'a mut (Metrics, Counters),
    /// Room to encode an observation in, to hash it.
    buf: &'a mut Vec<u8>,
    broke: Option<Violation>,
    /// The timers of deferred writes, which land at once.
    landed: Vec<TimerOf<S>>,
}

impl<S: Setup> Host<S::Node> for StepHost<'_, S> {
    type Deadline = u64;

    fn now(&self) -> Time {
        self.at
    }

    fn accounts(&mut self, _: NodeId) -> (&mut Metrics, &mut Counters) {
        (&mut self.scratch.0, &mut self.scratch.1)
    }

    fn timers(&mut self, node: NodeId) -> &mut Timers<TimerOf<S>, u64> {
        &mut self.world.slots[node.index()].timers
    }

    fn deadline(&self, _: NodeId, after: Duration) -> u64 {
        self.world.now.saturating_add(after.as_nanos() as u64)
    }

    fn timer_set(&mut self, _: NodeId, _: TimerOf<S>, _: u64, _: u64, _: bool) {}

    fn timer_cancelled(&mut self, _: NodeId) {}

    fn transmit(&mut self, from: NodeId, to: Targets<'_>, msg: MsgOf<S>, frame: &Frame<'_>) {
        let w = &mut *self.world;
        let body = hash_of(&frame.payload());
        to.for_each(|to| {
            // A crashed node's connections are gone: what is sent to it is lost.
            if w.slots[to.index()].node.is_some() {
                w.sends += 1;
                let hash = hash_of(&(from, to, body));
                let (hash, body) = (hash.into(), body.into());
                w.flight.push(Flight { from, to, msg: msg.clone(), hash, body, sent: w.sends });
            }
        });
    }

    fn persist(&mut self, node: NodeId, write: Write) {
        let n = node.index();
        let keys = self.world.names.map_or(&[][..], |m| m.stored_keys);
        let slot = &mut self.world.slots[n];
        let st = Arc::make_mut(&mut slot.stable);
        match write {
            Write::Put(key, value) => st.put(key, value),
            Write::Remove(key) => st.remove(&key),
            Write::RemoveRange(from, to) => st.remove_range(&from, &to),
        }
        slot.stable_hash = storage_hash(st, keys).into();
    }

    fn persist_later(&mut self, node: NodeId, key: String, value: Deferred, done: TimerOf<S>) {
        let n = node.index();
        let keys = self.world.names.map_or(&[][..], |m| m.stored_keys);
        let slot = &mut self.world.slots[n];
        let st = Arc::make_mut(&mut slot.stable);
        st.put(key, value.compute());
        slot.stable_hash = storage_hash(st, keys).into();
        self.landed.push(done);
    }

    fn synced(&mut self, _: NodeId, done: TimerOf<S>) {
        // Writes are durable at once here.
        self.landed.push(done);
    }

    fn observe(&mut self, node: NodeId, obs: ObsOf<S>) {
        let n = node.index();
        let w = &mut *self.world;
        let count = w.slots.len() as u32;
        // Whether it names nodes: the renaming that changes nothing renames it.
        let names_nodes =
            w.names.is_some_and(|m| (m.obs)(&obs, &(0..count).map(NodeId).collect::<Vec<_>>()).is_some());
        let slot = &mut w.slots[n];
        if names_nodes {
            w.named.push((n as u32, obs.clone()));
            let count = w.named.iter().filter(|(k, _)| *k as usize == n).count();
            slot.seen = hash_of(&(slot.seen, u8::MAX, count)).into();
        } else {
            self.buf.clear();
            wire::encode_into(&obs, self.buf);
            // Hashed as the encoding's `Vec` would be: as a slice.
            slot.seen = hash_of(&(slot.seen, &self.buf[..])).into();
        }
        if self.broke.is_none() {
            if let Err(v) = self.world.checker.observe(self.at, node, &obs) {
                self.broke = Some(v);
            }
        }
    }

    fn operation(&mut self, _: NodeId, _: OpId, _: bool) {}

    fn violation(&mut self, v: Violation) {
        self.broke.get_or_insert(v);
    }
}

/// Explores every state of `setup`'s cluster within `bounds`, breadth first, and stops at the
/// first violation. `progress` is called now and then (about every 64k states).
///
/// Threads ([`Search::threads`]) expand each level's states in parallel. The search is the
/// same whatever their number: a level is taken in batches, each batch's states shared among
/// the threads, and what they found merged in the order of the states it came from, so the
/// states counted, the unique states, the trace found and the state limit's cut are those of
/// one thread.
pub fn explore<S: Setup>(
    setup: &S,
    bounds: &Bounds,
    search: Search,
    mut progress: impl FnMut(&Progress),
) -> Result<Report, ExploreError>
where
    S::Node: Clone + Hash + Sync,
    TimerOf<S>: Hash,
{
    let began = Instant::now();
    let threads = search.threads.clamp(1, 256);
    let symmetry = if search.symmetry { setup.symmetry() } else { None };
    let sym = symmetry.as_ref();
    let mut drivers: Vec<Driver> = (0..threads).map(|_| Driver::new(setup)).collect();
    let mut p = Progress { states: 0, unique: 0, depth: 0, elapsed: Duration::ZERO };
    let symmetry = sym.is_some();
    let mut dead_ends = 0;
    // The at-end properties judged in some dead end, as bits (see `World::judge_end`).
    let mut judged = 0;
    // The bit of the at-end property a dead end broke.
    let bit =
        |v: &Violation| at_end(setup.checker().as_ref()).position(|p| p == v.property).map_or(0, |i| 1 << i);
    let names = |mask: u64| at_end_named(setup, mask);
    // Each state's number (in the order found), and each number's link: the trace back to
    // an initial state.
    let mut seen: Seen = Seen::default();
    let mut tree: Vec<Link> = Vec::new();
    // The fair steps between the states numbered, for the cycles.
    let mut graph = cycles::Graph::default();
    let mut level: Vec<pool::Queued<S>> = Vec::new();
    for (init, choices, broke) in World::initials(setup, bounds, &mut drivers[0])? {
        p.states += 1;
        let (broke, dead_end) = match broke {
            Some(v) => (Some(v), false),
            None if init.dead_end() => match init.judge_end(0) {
                Ok(mask) => {
                    judged |= mask;
                    (None, true)
                }
                Err(v) => {
                    judged |= bit(&v);
                    (Some(v), true)
                }
            },
            None => (None, false),
        };
        dead_ends += u64::from(init.dead_end());
        if let Some(violation) = broke {
            let diagram = replay(setup, bounds, &[], &[choices], None)?.diagram;
            let trace = vec!["start every node".into()];
            let choices = vec![choices];
            let found =
                Found { violation, trace, diagram, steps: Vec::new(), choices, dead_end, cycle: None };
            let (found, judged_at_end) = (Some(found), names(judged));
            return Ok(Report {
                progress: p,
                depth_done: 0,
                complete: false,
                found,
                symmetry,
                dead_ends,
                judged_at_end,
                cycles: 0,
                unfair_cycles: 0,
                judged_in_cycles: Vec::new(),
                memory_limited: false,
            });
        }
        let fp = Fp::of(init.fingerprint(sym));
        if seen.contains_key(&fp) {
            continue;
        }
        let number = tree.len() as u32;
        seen.insert(fp, number);
        tree.push(Link { parent: ROOT, step: 0, choices });
        p.unique += 1;
        level.push((Box::new(init), number, 0));
    }
    // A state at the depth limit had steps left / the state limit turned states away.
    let (mut cut, mut limited) = (false, false);
    // The memory bound: whether it turned states away, and the states taken since it was read.
    let (mut memory_limited, mut since_read) = (false, 0u64);
    let mut depth_done = 0;
    let mut depth = 0;
    let seen = RwLock::new(seen);
    let mut main_driver = None;
    let ended = std::thread::scope(|scope| -> Result<Option<Report>, ExploreError> {
        let mut pool = pool::Pool::start(scope, setup, bounds, sym, &seen, drivers);
        while !level.is_empty() {
            if depth > p.depth {
                depth_done = p.depth;
                p.depth = depth;
            }
            if depth >= bounds.depth {
                cut |= level.iter().any(|(w, _, _)| !w.steps(bounds).is_empty());
                break;
            }
            let mut next = Vec::new();
            let mut states = level.into_iter();
            loop {
                let batch: Vec<_> = states.by_ref().take(BATCH * threads).collect();
                if batch.is_empty() {
                    break;
                }
                let expanded = pool.expand(batch, depth + 1);
                let mut seen = seen.write().unwrap_or_else(|e| e.into_inner());
                for (outcome, maker) in expanded {
                    p.states += 1;
                    if p.states % (1 << 16) == 0 {
                        p.elapsed = began.elapsed();
                        progress(&p);
                    }
                    match outcome {
                        Outcome::Known { to, parent, step } => {
                            if step.fair(bounds) {
                                graph.add(parent, to);
                            }
                        }
                        Outcome::Again { fp, parent, step } => {
                            // Not numbered if its first was turned away by a limit: so is this.
                            if let Some(&to) = seen.get(&fp) {
                                if step.fair(bounds) {
                                    graph.add(parent, to);
                                }
                            }
                        }
                        Outcome::Failed { error, .. } => return Err(error),
                        Outcome::Broke { violation, parent, step, choices: code, dead_end } => {
                            p.elapsed = began.elapsed();
                            if dead_end {
                                dead_ends += 1;
                                judged |= bit(&violation);
                            }
                            let (mut steps, mut choices) = path(&tree, parent);
                            steps.push(step);
                            choices.push(code);
                            let Replayed { trace, diagram, .. } =
                                replay(setup, bounds, &steps, &choices, None)?;
                            let found =
                                Found { violation, trace, diagram, steps, choices, dead_end, cycle: None };
                            return Ok(Some(Report {
                                progress: p,
                                depth_done,
                                complete: false,
                                found: Some(found),
                                symmetry,
                                dead_ends,
                                judged_at_end: names(judged),
                                cycles: 0,
                                unfair_cycles: 0,
                                judged_in_cycles: Vec::new(),
                                memory_limited,
                            }));
                        }
                        Outcome::New { world, fp, parent, step, choices, dead_end } => {
                            if let Some(&to) = seen.get(&fp) {
                                if step.fair(bounds) {
                                    graph.add(parent, to);
                                }
                                continue;
                            }
                            if seen.len() >= bounds.states.min(u32::MAX as usize) || memory_limited {
                                limited = true;
                                continue;
                            }
                            since_read += 1;
                            if since_read >= MEMORY_EVERY {
                                since_read = 0;
                                let over =
                                    bounds.memory.zip(resident_bytes()).is_some_and(|(most, now)| now > most);
                                if over {
                                    (memory_limited, limited) = (true, true);
                                    continue;
                                }
                            }
                            let number = tree.len() as u32;
                            seen.insert(fp, number);
                            tree.push(Link { parent, step: step.pack(), choices });
                            if step.fair(bounds) {
                                graph.add(parent, number);
                            }
                            p.unique += 1;
                            if let Some(mask) = dead_end {
                                dead_ends += 1;
                                judged |= mask;
                            }
                            next.push((world, number, maker));
                        }
                    }
                }
            }
            level = next;
            depth += 1;
        }
        main_driver = Some(pool.into_driver());
        Ok(None)
    });
    if let Some(report) = ended? {
        return Ok(report);
    }
    let seen = seen.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut driver = main_driver.expect("the search ended with its driver");
    if !limited {
        depth_done = p.depth;
    }
    let complete = !cut && !limited;
    let judged_at_end = names(judged);
    let cycles = cycles::judge(setup, bounds, sym, &mut driver, &seen, &tree, &graph)?;
    p.elapsed = began.elapsed();
    Ok(Report {
        progress: p,
        depth_done,
        complete,
        found: cycles.found,
        symmetry,
        dead_ends,
        judged_at_end,
        cycles: cycles.cycles,
        unfair_cycles: cycles.unfair,
        judged_in_cycles: names(cycles.judged),
        memory_limited,
    })
}

/// A sampled search ([`walk`]): this many random walks from the initial state, each of at
/// most [`Bounds::depth`] steps, drawn from a generator seeded with `seed`.
#[derive(Clone, Copy, Debug)]
pub struct Walks {
    /// Walks taken.
    pub walks: u64,
    /// The seed of the draws: the same seed, the same walks.
    pub seed: u64,
}

/// Random walks instead of the breadth-first search: from the initial state, again and again,
/// a step drawn uniformly from those the state allows within `bounds` (faults and timer
/// firings counted against their bounds as in [`explore`]), until a property breaks, the walk
/// reaches a dead end (where the at-end properties are judged) or `bounds.depth` steps. It
/// keeps no set of states seen, so memory stays flat and a walk may go as deep as the bound,
/// far beyond what the breadth-first search completes; in exchange it proves nothing when it
/// finds nothing, and the trace it reports is the first it found, not the shortest. In the
/// report, `states` counts the steps taken, `unique` stays 0 and `complete` false; dead ends
/// are counted each time one is reached.
pub fn walk<S: Setup>(
    setup: &S,
    bounds: &Bounds,
    walks: Walks,
    mut progress: impl FnMut(&Progress),
) -> Result<Report, ExploreError>
where
    S::Node: Clone + Hash + Sync,
    TimerOf<S>: Hash,
{
    use rand::Rng as _;
    let began = Instant::now();
    let mut d = Driver::new(setup);
    let starts = World::initials(setup, bounds, &mut d)?;
    let mut p = Progress { states: 0, unique: 0, depth: 0, elapsed: Duration::ZERO };
    let report = |p: Progress, found: Option<Found>, dead_ends: u64, judged: u64| Report {
        progress: p,
        depth_done: 0,
        complete: false,
        found,
        symmetry: false,
        dead_ends,
        judged_at_end: at_end_named(setup, judged),
        cycles: 0,
        unfair_cycles: 0,
        judged_in_cycles: Vec::new(),
        memory_limited: false,
    };
    let found = |violation: Violation, steps: Vec<Step>, choices: Vec<u64>, dead_end: bool| {
        let Replayed { trace, diagram, .. } = replay(setup, bounds, &steps, &choices, None)?;
        Ok::<_, ExploreError>(Found { violation, trace, diagram, steps, choices, dead_end, cycle: None })
    };
    let (mut dead_ends, mut judged) = (0u64, 0u64);
    for (init, code, broke) in &starts {
        if let Some(v) = broke {
            let f = found(v.clone(), Vec::new(), vec![*code], false)?;
            return Ok(report(p, Some(f), dead_ends, judged));
        }
        if init.dead_end() {
            dead_ends += 1;
            match init.judge_end(0) {
                Ok(mask) => judged |= mask,
                Err(v) => {
                    return Ok(report(p, Some(found(v, Vec::new(), vec![*code], true)?), dead_ends, judged))
                }
            }
        }
    }
    // One generator draws the walks' starts, steps and choices.
    d.choices = Choices::drawn(walks.seed);
    for _ in 0..walks.walks {
        let start = if starts.len() > 1 { d.choices.rng().random_range(0..starts.len()) } else { 0 };
        let (init, code, _) = &starts[start];
        let mut w = init.fork();
        let (mut steps, mut choices) = (Vec::new(), vec![*code]);
        for depth in 1..=bounds.depth {
            let options = w.steps(bounds);
            if options.is_empty() {
                break; // only faults were left, and none are allowed any more
            }
            let step = options[d.choices.rng().random_range(0..options.len())];
            steps.push(step);
            p.states += 1;
            p.depth = p.depth.max(depth);
            if p.states % (1 << 16) == 0 {
                p.elapsed = began.elapsed();
                progress(&p);
            }
            d.choices.restart();
            let applied = w.apply(&mut d, setup, step, depth);
            choices.push(d.code(setup)?);
            if let Err(v) = applied {
                p.elapsed = began.elapsed();
                return Ok(report(p, Some(found(v, steps, choices, false)?), dead_ends, judged));
            }
            if w.dead_end() {
                dead_ends += 1;
                match w.judge_end(depth) {
                    Ok(mask) => judged |= mask,
                    Err(v) => {
                        p.elapsed = began.elapsed();
                        return Ok(report(p, Some(found(v, steps, choices, true)?), dead_ends, judged));
                    }
                }
                // Only faults can follow, if any are left: the walk takes them too.
            }
        }
    }
    p.elapsed = began.elapsed();
    Ok(report(p, None, dead_ends, judged))
}

/// States a thread expands between two merges: large enough that handing out the work costs
/// little, small enough that the successors waiting to be merged take little memory.
const BATCH: usize = 512;

/// A state's fingerprint (two halves of a 128-bit hash: aligned as `u64`, so an entry of
/// [`Seen`] takes 24 bytes, not the 32 a `u128` key would).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Fp(u64, u64);

impl Fp {
    fn of(h: u128) -> Self {
        Fp(h as u64, (h >> 64) as u64)
    }
}

impl Hash for Fp {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Already a uniform hash: one half is a bucket, the other tells states apart.
        state.write_u64(self.0);
    }
}

/// The unique states seen, each with its number (its place in the search's tree). Keys are already
/// hashes, so the map hashes them no further.
type Seen = HashMap<Fp, u32, BuildHasherDefault<Prehashed>>;

/// A hasher for keys that are already uniform 64-bit hashes: it keeps them as they are.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is expected; anything else is still hashed, if poorly.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// What one step from a state of the level led to.
enum Outcome<S: Setup> {
    /// A state seen at an earlier level (or batch), number `to`, reached from `parent` by `step`.
    Known { to: u32, parent: u32, step: Step },
    /// A state this thread found earlier in the batch (the first time as [`Outcome::New`]),
    /// reached again from `parent` by `step`: its number is the first one's, once merged.
    Again { fp: Fp, parent: u32, step: Step },
    /// A state not seen when the batch began, the first time this thread found it (another
    /// thread may have found it too); if a dead end, the at-end properties judged in it,
    /// which hold. `choices`: those the step's
    /// handlers took (see [`Found::choices`]).
    ///
    /// The state is boxed: most outcomes are [`Outcome::Known`], and a whole state inline
    /// would make each of them as large, copied as the outcomes grow.
    New { world: Box<World<S>>, fp: Fp, parent: u32, step: Step, choices: u64, dead_end: Option<u64> },
    /// A violation: of a safety property, or of an at-end property in a dead end.
    Broke { violation: Violation, parent: u32, step: Step, choices: u64, dead_end: bool },
    /// The search cannot go on: a step from `parent` failed.
    Failed { error: ExploreError, parent: u32 },
}

impl<S: Setup> Outcome<S> {
    /// The number of the state the step was taken from.
    fn parent(&self) -> u32 {
        match self {
            Outcome::Known { parent, .. }
            | Outcome::Again { parent, .. }
            | Outcome::New { parent, .. }
            | Outcome::Broke { parent, .. }
            | Outcome::Failed { parent, .. } => *parent,
        }
    }
}

/// One thread's share of a batch (see [`pool::Pool::expand`]).
fn expand<S: Setup>(
    setup: &S,
    bounds: &Bounds,
    sym: Option<&Symmetry<S::Node>>,
    d: &mut Driver,
    parents: &Seen,
    part: pool::Part<S>,
    depth: usize,
) -> Vec<Outcome<S>>
where
    S::Node: Clone + Hash + Sync,
    TimerOf<S>: Hash,
{
    let mut out = Vec::new();
    // Successors seen before, and states once expanded, are kept for their room, which
    // serves the next successors (the last kept first: most often the previous successor of
    // the same state, which differs from the next in a node or two).
    let mut spares: Vec<Box<World<S>>> = Vec::new();
    // The states new to this batch found so far: a state reached again is not kept again.
    let mut made: HashSet<Fp, BuildHasherDefault<Prehashed>> = HashSet::default();
    for (w, parent) in part {
        for step in w.steps(bounds) {
            // The step again for every combination of the choices its handlers make.
            d.choices = Choices::search();
            loop {
                let mut next = match spares.pop() {
                    Some(mut next) => {
                        next.refork(&w);
                        next
                    }
                    None => Box::new(w.fork()),
                };
                let applied = next.apply(d, setup, step, depth);
                let choices = match d.code(setup) {
                    Ok(code) => code,
                    Err(e) => {
                        out.push(Outcome::Failed { error: e, parent });
                        return out;
                    }
                };
                if let Err(violation) = applied {
                    out.push(Outcome::Broke { violation, parent, step, choices, dead_end: false });
                    return out;
                }
                let fp = Fp::of(next.fingerprint(sym));
                if let Some(&to) = parents.get(&fp) {
                    out.push(Outcome::Known { to, parent, step });
                    spares.push(next);
                } else {
                    // A dead end is judged in every copy not seen before the batch, the state
                    // reached again too: its checker, which the fingerprint does not hash
                    // whole, may have seen the same observations in another order.
                    let dead_end = match next.dead_end().then(|| next.judge_end(depth)) {
                        None => None,
                        Some(Ok(judged)) => Some(judged),
                        Some(Err(violation)) => {
                            out.push(Outcome::Broke { violation, parent, step, choices, dead_end: true });
                            return out;
                        }
                    };
                    if made.insert(fp) {
                        out.push(Outcome::New { world: next, fp, parent, step, choices, dead_end });
                    } else {
                        out.push(Outcome::Again { fp, parent, step });
                        spares.push(next);
                    }
                }
                if !d.choices.advance() {
                    break;
                }
            }
        }
        if spares.len() < SPARES {
            spares.push(w);
        }
    }
    out
}

/// The most states a thread keeps for their room (see [`expand`]).
const SPARES: usize = 16;

/// How the search reached a state: from which state (its number; [`ROOT`] for an initial
/// state), by which step ([`Step::pack`]), with which choices ([`Found::choices`]).
#[derive(Clone, Copy)]
struct Link {
    parent: u32,
    step: u64,
    choices: u64,
}

/// The parent of an initial state.
const ROOT: u32 = u32::MAX;

/// The steps from an initial state to state number `n`, and the choices of the start and
/// of each step.
fn path(tree: &[Link], mut n: u32) -> (Vec<Step>, Vec<u64>) {
    let (mut steps, mut choices) = (Vec::new(), Vec::new());
    loop {
        let link = tree[n as usize];
        choices.push(link.choices);
        if link.parent == ROOT {
            break;
        }
        steps.push(Step::unpack(link.step));
        n = link.parent;
    }
    steps.reverse();
    choices.reverse();
    (steps, choices)
}

/// Takes `steps` from the initial state, one by one, each checked to be one the state allows
/// within `bounds`, until the schedule ends or a step breaks a property: the trace in words,
/// its diagram, and the violation. `choices` names the alternatives the handlers take where
/// the protocol leaves them open, at the start and at each step ([`Found::choices`]; those
/// missing: the first alternative of each), each checked to be ones they can take. With
/// `cycle`, the steps from that index on must lead back to the state they start from, and
/// fairly (nothing in flight or pending there is still waiting at the end, else an error):
/// the at-end properties are then judged as in a cycle the run goes round for ever.
pub fn replay<S: Setup>(
    setup: &S,
    bounds: &Bounds,
    steps: &[Step],
    choices: &[u64],
    cycle: Option<usize>,
) -> Result<Replayed, ExploreError>
where
    S::Node: Clone + Hash + Sync,
    TimerOf<S>: Hash,
{
    let mut d = Driver::new(setup);
    let code = |i: usize| choices.get(i).copied().unwrap_or(0);
    d.choices = Choices::named(code(0));
    let (mut w, broke) = World::initial(setup, bounds, &mut d)?;
    if !d.choices.replayed_whole() {
        return Err(ExploreError::BadChoice(0, code(0)));
    }
    let mut rec = Recorder::new(usize::MAX);
    let ms = |i: usize| Time::from_millis_f64(i as f64);
    // Sends are numbered in order: those above `shown` are not drawn yet.
    let mut shown = 0;
    let mut sends = |w: &World<S>, rec: &mut Recorder, at: Time| {
        for f in w.flight.iter().filter(|f| f.sent > shown) {
            rec.push(Rec::Send { id: f.sent, from: f.from, to: f.to, kind: f.msg.kind(), at });
        }
        shown = shown.max(w.sends);
    };
    sends(&w, &mut rec, ms(0));
    let mut copies = u64::MAX;
    let mut out = Vec::with_capacity(steps.len());
    let ended =
        |trace, diagram, violation, dead_end| Replayed { trace, diagram, violation, dead_end, cycle: false };
    if let Some(violation) = broke {
        return Ok(ended(out, rec, Some(violation), false));
    }
    if let Some(Err(violation)) = w.dead_end().then(|| w.judge_end(0)) {
        return Ok(ended(out, rec, Some(violation), true));
    }
    // The state the cycle starts from: its identity, and what is waiting in it.
    let mut entry = None;
    for (i, s) in steps.iter().enumerate() {
        if cycle == Some(i) {
            entry = Some((w.identity(None), cycles::Pending::of(&w)));
        }
        if !w.steps(bounds).contains(s) {
            return Err(ExploreError::Impossible(i + 1, *s));
        }
        let at = ms(i + 1);
        out.push(w.describe(*s));
        match *s {
            Step::Deliver(f) => rec.push(Rec::Deliver { id: w.flight[f].sent, at }),
            Step::Drop(f) => rec.push(Rec::Drop { id: w.flight[f].sent, at }),
            Step::Duplicate(f) => {
                // The copy delivered now is a message of its own; the original stays in flight.
                let f = &w.flight[f];
                copies -= 1;
                rec.push(Rec::Send { id: copies, from: f.from, to: f.to, kind: f.msg.kind(), at });
                rec.push(Rec::Deliver { id: copies, at });
            }
            Step::Crash(n) => rec.push(Rec::Life { node: NodeId(n as u32), at, what: Lifecycle::Crashed }),
            Step::Restart(n) => {
                rec.push(Rec::Life { node: NodeId(n as u32), at, what: Lifecycle::Restarted })
            }
            Step::Fire(..) => {}
        }
        d.choices = Choices::named(code(i + 1));
        let broke = w.apply(&mut d, setup, *s, i + 1);
        if !d.choices.replayed_whole() {
            return Err(ExploreError::BadChoice(i + 1, code(i + 1)));
        }
        sends(&w, &mut rec, at);
        if let Err(violation) = broke {
            return Ok(ended(out, rec, Some(violation), false));
        }
        if let Some(Err(violation)) = w.dead_end().then(|| w.judge_end(i + 1)) {
            return Ok(ended(out, rec, Some(violation), true));
        }
    }
    let Some(c) = cycle else { return Ok(ended(out, rec, None, false)) };
    let Some((start, waiting)) = entry else { return Err(ExploreError::OpenCycle(c)) };
    if w.identity(None) != start {
        return Err(ExploreError::OpenCycle(c));
    }
    if !waiting.all_gone(&cycles::Pending::of(&w)) {
        return Err(ExploreError::UnfairCycle(c));
    }
    let violation = w.judge_cycle(steps.len()).err();
    Ok(Replayed { trace: out, diagram: rec, cycle: violation.is_some(), violation, dead_end: false })
}

#[cfg(test)]
mod tests {
    use super::Step;

    #[test]
    fn a_packed_step_unpacks_to_itself() {
        let big = (1 << 28) - 1;
        for s in [
            Step::Deliver(0),
            Step::Deliver(big),
            Step::Duplicate(3),
            Step::Drop(7),
            Step::Fire(2, 5),
            Step::Fire(big, big),
            Step::Crash(4),
            Step::Restart(1),
        ] {
            assert_eq!(Step::unpack(s.pack()), s);
        }
    }
}
