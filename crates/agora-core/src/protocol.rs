//! The sans-IO protocol API: a protocol is one state machine per node.
//!
//! Inputs arrive as method calls (`on_start`, `on_message`, `on_timer`); outputs leave as
//! [`Effect`]s pushed into the [`Context`]. The context also hands in the node's current time
//! and its random source. A driver (the simulator, the TCP runtime) applies the effects.
//!
//! **Invariant:** nothing in a protocol reads a clock, draws OS randomness, performs IO or
//! iterates a `HashMap` in a way that changes behaviour. Given the same inputs, times and random
//! source, a node makes the same effects.

use crate::check::Checker;
use crate::id::{NodeId, OpId, Time};
use crate::stable::{Corrupt, Stable};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;
use std::time::Duration;

/// The random source handed to protocols: seeded by the driver, never by the OS inside a
/// protocol. It implements `rand::RngCore`, so `rand::Rng`'s methods work on it.
pub type Rng = Xoshiro256PlusPlus;

/// A message a protocol sends between nodes. It is a serde type; its wire encoding
/// (see [`crate::wire`]) is what the TCP runtime sends and what the simulator counts as bytes.
pub trait Message: Serialize + DeserializeOwned + Clone + Debug + Send + Sync + 'static {
    /// The message type's name, for per-type metrics and diagrams ("PROPOSE", "ACK").
    fn kind(&self) -> &'static str;
}

/// A named timer. Setting a timer that is already set replaces it; a node has at most one
/// pending timer per name.
pub trait TimerName: Clone + PartialEq + Debug + Send + 'static {}
impl<T: Clone + PartialEq + Debug + Send + 'static> TimerName for T {}

/// An observation a protocol reports for checkers and reports ("delivered m", "elected 7 in
/// term 3"). It is serializable so that it can enter the run's trace digest and travel from a
/// node process to the one that checks the whole cluster.
pub trait Observation: Clone + Debug + Serialize + DeserializeOwned + Send + 'static {}
impl<T: Clone + Debug + Serialize + DeserializeOwned + Send + 'static> Observation for T {}

/// A protocol: the state machine of one node. It is `Send` so that a runtime may move it
/// between threads; it is only ever driven by one thread at a time.
pub trait Protocol: Send + 'static {
    /// The messages its nodes exchange.
    type Msg: Message;
    /// The names of its timers.
    type Timer: TimerName;
    /// What its nodes report to the checker (and, over TCP, to the process that checks the cluster).
    type Obs: Observation;

    /// Called once when the node starts, and again after every restart (on a node freshly built
    /// from what it persisted).
    fn on_start(&mut self, ctx: &mut Context<'_, Self>);

    /// Called when a message from `from` is delivered.
    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: Self::Msg);

    /// Called when a timer set with [`Context::set_timer`] fires.
    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, timer: Self::Timer);

    /// Called once when the node is asked to leave cleanly (a lone `agora node` told to stop
    /// with SIGTERM or Ctrl-C): what it does here — a goodbye to its peers, a handover — is
    /// written and sent before it stops, and nothing is delivered to the node after it (no
    /// message, no timer, no notice of a write made durable, including one asked for here):
    /// it has left. Never called on a crash, nor when a whole cluster ends together. The
    /// default does nothing.
    fn on_stop(&mut self, _ctx: &mut Context<'_, Self>) {}

    /// Whether all that is left for this node is background work that never ends on its own
    /// (heartbeats, failure detection). Drivers end a run when every node is in the background
    /// (and no fault is still to come), as they do when nothing at all is left to do. The
    /// default, `false`, leaves the end to quiescence.
    fn background(&self) -> bool {
        false
    }
}

/// How to build the nodes of one run of a protocol, and how to judge the run.
///
/// A setup is built once per run (from the protocol's parameters and the run's seed) and is
/// shared by every node. On restart the driver calls [`Setup::build`] again with the node's
/// persisted state: whatever the node did not persist is gone.
pub trait Setup: Send + Sync + 'static {
    /// The protocol each node runs.
    type Node: Protocol;

    /// The protocol's CLI name ("flood").
    fn name(&self) -> &'static str;

    /// The number of nodes in the cluster; ids are `0..nodes`.
    fn nodes(&self) -> usize;

    /// A node in its initial state, or rebuilt from `stable` after a crash. A persisted value
    /// that does not decode is an error, never read as "nothing persisted": a 2PC participant
    /// that cannot read its vote must not presume abort.
    fn build(&self, id: NodeId, stable: &Stable) -> Result<Self::Node, Corrupt>;

    /// Whether node `id`, having lost its storage, may start again, empty, and catch up from its peers
    /// before it takes part in decisions (see [`crate::stable::REJOINING`]). Protocols that
    /// cannot make that safe (most: a node's persisted promises are its whole safety) say no,
    /// and drivers refuse to start such a node empty.
    fn rejoins(&self, _id: NodeId) -> bool {
        false
    }

    /// A fresh checker of the protocol's properties.
    fn checker(&self) -> Box<dyn Checker<Self::Node>>;

    /// Whether a node's behaviour depends on the clock it reads ([`Context::now`]), not only
    /// on which timers fire. The exhaustive explorer then gives handlers its virtual time
    /// and counts the time in a state's identity. The default: no.
    fn reads_clock(&self) -> bool {
        false
    }

    /// The faults under which this setup's safety properties are claimed to hold
    /// ([`crate::model`]); drivers label violations outside it as expected.
    fn fault_model(&self) -> crate::FaultModel {
        crate::FaultModel::UNDECLARED
    }

    /// The nodes that are interchangeable, for the exhaustive explorer's symmetry reduction.
    /// The default: none.
    fn symmetry(&self) -> Option<Symmetry<Self::Node>> {
        None
    }
}

/// Nodes of a setup that are interchangeable: renaming them (a permutation within each class)
/// in any state of the cluster gives a state whose futures are the first one's, renamed, and
/// in which every property holds or breaks as in the first. The explorer then counts a state
/// and its renamings as one.
///
/// What makes nodes interchangeable: the same input (a 2PC participant's vote), the same
/// place (the same neighbours, renamed), and behaviour that never compares their ids. The
/// declaring protocol vouches that its timers carry no id of a node in a class, that its
/// messages, storage and observations carry none either unless [`Symmetry::names`] renames
/// them, that whatever a node draws from its random source does not depend on its id within
/// its class (the explorer seeds every node of a class alike), and that its checker's
/// properties do not single out such a node.
pub struct Symmetry<P: Protocol> {
    /// Disjoint sets of nodes, any two nodes of a set interchangeable.
    pub classes: Vec<Vec<NodeId>>,
    /// A node's state with every node id renamed: node `i` becomes `to[i]` (its own id, and
    /// whatever it keeps per node).
    pub rename: fn(&P, &[NodeId]) -> P,
    /// Where messages, storage or observations name nodes of a class (a Raft vote, a leader
    /// hint): how to rename them. `None`: they name none, and the explorer renames only who
    /// holds what and who sends to whom.
    pub names: Option<Names<P>>,
}

/// How to rename node ids inside a protocol's messages, storage and observations (see
/// [`Symmetry::names`]); each `to` maps node `i` to `to[i]`.
pub struct Names<P: Protocol> {
    /// A message with every node id renamed, or `None` if it names no node.
    pub msg: fn(&P::Msg, &[NodeId]) -> Option<P::Msg>,
    /// An observation with every node id renamed, or `None` if it names no node.
    pub obs: fn(&P::Obs, &[NodeId]) -> Option<P::Obs>,
    /// The storage keys whose values may name nodes; no other key's value does.
    pub stored_keys: &'static [&'static str],
    /// The value stored under one of `stored_keys` with every node id renamed (a value that
    /// does not decode is returned as it is).
    pub stored: fn(&str, &[u8], &[NodeId]) -> Vec<u8>,
}

impl<P: Protocol> Clone for Names<P> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<P: Protocol> Copy for Names<P> {}

/// The destinations of a multicast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destinations {
    /// Every node of the cluster except the sender.
    AllOthers,
    /// These nodes, in this order.
    Nodes(Vec<NodeId>),
}

/// Bytes a protocol asks its driver to compute off the protocol's path: a pure function of
/// state the protocol copied when it asked (see [`Effect::PersistLater`]).
#[derive(Clone)]
pub struct Deferred(std::sync::Arc<dyn Fn() -> Vec<u8> + Send + Sync>);

impl Deferred {
    /// Wraps `f`; it may run on another thread, later, so it must own what it reads.
    pub fn new(f: impl Fn() -> Vec<u8> + Send + Sync + 'static) -> Self {
        Deferred(std::sync::Arc::new(f))
    }

    /// Runs the computation (the driver does, once, off the protocol's path).
    pub fn compute(&self) -> Vec<u8> {
        (self.0)()
    }
}

impl Debug for Deferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Deferred(..)")
    }
}

/// What a protocol asks its driver to do. Effects of one step are applied in order; a driver
/// makes every `Persist` of a step durable before any message of that step leaves the node
/// (except a message sent with [`Effect::SendEarly`]).
#[derive(Clone, Debug)]
pub enum Effect<M, T, O> {
    /// One message to one node.
    Send {
        /// The destination, in `0..nodes`; any other id is the violation `valid-destination`.
        to: NodeId,
        /// The message.
        msg: M,
    },
    /// One message to one node that may leave before the writes of its step (and of the
    /// steps before it) are durable, and so may overtake messages sent before it. Only for a
    /// message whose meaning does not rest on those writes, such as a Raft leader's append
    /// of entries it is still writing (§10.2.1 of the Raft thesis); a step that needs to know
    /// when its writes are durable asks with [`Effect::Synced`]. If the node crashes first,
    /// the message may be out and the writes lost.
    SendEarly {
        /// The destination, in `0..nodes`; any other id is the violation `valid-destination`.
        to: NodeId,
        /// The message.
        msg: M,
    },
    /// One message to several nodes, encoded once.
    Multicast {
        /// The destinations; an id outside the cluster is the violation `valid-destination`.
        to: Destinations,
        /// The message, the same for every destination.
        msg: M,
    },
    /// One message to several nodes, encoded once, that may leave before the writes of its
    /// step are durable: [`Effect::SendEarly`] to each destination.
    MulticastEarly {
        /// The destinations; an id outside the cluster is the violation `valid-destination`.
        to: Destinations,
        /// The message, the same for every destination.
        msg: M,
    },
    /// Sets the timer `timer` to fire `after` from now on the node's clock, replacing its pending
    /// setting if it has one.
    SetTimer {
        /// Which timer.
        timer: T,
        /// The delay, on the node's clock (which may be skewed or drift in the simulator).
        after: Duration,
    },
    /// Cancels the timer `timer`, if it is pending.
    CancelTimer {
        /// Which timer.
        timer: T,
    },
    /// Durable write: survives a crash of the node.
    Persist {
        /// Where: a key of the node's own storage, replacing what it held.
        key: String,
        /// The bytes, handed back unchanged in [`Stable`] after a restart.
        value: Vec<u8>,
    },
    /// Durable removal of a key.
    Unpersist {
        /// The key removed; removing an absent key does nothing.
        key: String,
    },
    /// Durable removal of every key from `from` (included) to `to` (excluded), in byte order:
    /// a log's compacted prefix in one effect, not one per entry.
    UnpersistRange {
        /// The first key removed.
        from: String,
        /// The first key kept; a range with `to <= from` removes nothing.
        to: String,
    },
    /// A durable write too slow for a step (a snapshot of a large state): the driver computes
    /// `value` and writes it off the protocol's path, one such write after another in the order
    /// asked, and then fires the timer `done`. The node meanwhile goes on handling events and
    /// its other writes, which may land before this one. If the node crashes before `done`
    /// fires, the write may or may not have landed. Until `done` fires the protocol must not
    /// write or remove `key` by other means.
    PersistLater {
        /// Where the computed bytes go.
        key: String,
        /// What computes them.
        value: Deferred,
        /// The timer fired once the write is durable.
        done: T,
    },
    /// Fires the timer `done` once every write of this step, and of the steps before it, is
    /// durable; every request fires once, in the order asked, unless the node crashes first.
    Synced {
        /// The timer fired.
        done: T,
    },
    /// Reports an observation to the run's checker (and the simulator's trace digest).
    Observe(O),
    /// An operation starts now (for msgs-per-op and latency).
    OpBegin(OpId),
    /// An operation completes here; its latency runs to the last `OpEnd` reported for it.
    OpEnd(OpId),
}

/// The effect type of protocol `P`.
pub type EffectOf<P> = Effect<<P as Protocol>::Msg, <P as Protocol>::Timer, <P as Protocol>::Obs>;

/// Decides the alternatives a protocol leaves open ([`Context::choose`]) for a driver that
/// takes every one of them rather than drawing one: the exhaustive explorer, which runs a
/// handler once per alternative, each into a state of its own.
pub trait Chooser {
    /// One of `0..of` (`of` at least 2): the alternative taken at this point of the handler.
    fn choose(&mut self, of: u64) -> u64;
}

/// What a handler sees of the world: its id, the cluster size, its clock, its random source,
/// and the effect buffer it writes to.
pub struct Context<'a, P: Protocol + ?Sized> {
    id: NodeId,
    nodes: usize,
    now: Time,
    rng: &'a mut Rng,
    effects: &'a mut Vec<EffectOf<P>>,
    /// Takes the choices ([`Context::choose`]) instead of the random source, if set.
    chooser: Option<&'a mut dyn Chooser>,
}

impl<'a, P: Protocol + ?Sized> Context<'a, P> {
    /// Drivers build one context per step.
    pub fn new(
        id: NodeId,
        nodes: usize,
        now: Time,
        rng: &'a mut Rng,
        effects: &'a mut Vec<EffectOf<P>>,
    ) -> Self {
        Context { id, nodes, now, rng, effects, chooser: None }
    }

    /// The same context with its choices ([`Context::choose`]) taken by `chooser` rather than
    /// drawn from the random source.
    pub fn with_chooser(self, chooser: &'a mut dyn Chooser) -> Self {
        Context { chooser: Some(chooser), ..self }
    }

    /// This node's id, in `0..nodes()`.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The number of nodes in the cluster.
    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// The node's local clock: in the simulator this includes the node's skew and drift.
    pub fn now(&self) -> Time {
        self.now
    }

    /// The node's random source (seeded by the driver). Draws from it are data to the
    /// exhaustive explorer, the same at every step of a node (see [`Context::choose`]).
    pub fn rng(&mut self) -> &mut Rng {
        self.rng
    }

    /// One of `0..of` alternatives the protocol leaves open (`of` at least 1): a simulated or
    /// deployed node draws it uniformly from its random source (as `rng().random_range(0..of)`
    /// would), and the exhaustive explorer takes every one, each into a state of its own. For
    /// a choice the protocol's properties may depend on (whether a client reads or writes);
    /// mere data (a value written) can come from [`Context::rng`].
    pub fn choose(&mut self, of: u64) -> u64 {
        assert!(of > 0, "a choice among no alternatives");
        match &mut self.chooser {
            Some(_) if of == 1 => 0,
            Some(c) => {
                let i = c.choose(of);
                assert!(i < of, "the chooser took alternative {i} of {of}");
                i
            }
            None => rand::Rng::random_range(&mut *self.rng, 0..of),
        }
    }

    /// `true` with probability `p` ([`Context::choose`] between two alternatives): a simulated
    /// or deployed node draws it (as `rng().random_bool(p)` would); the exhaustive explorer
    /// takes each alternative whose probability is above zero.
    pub fn choose_bool(&mut self, p: f64) -> bool {
        match &mut self.chooser {
            Some(_) if p <= 0.0 => false,
            Some(_) if p >= 1.0 => true,
            Some(c) => c.choose(2) == 1,
            None => rand::Rng::random_bool(&mut *self.rng, p),
        }
    }

    /// Sends `msg` to node `to`.
    pub fn send(&mut self, to: NodeId, msg: P::Msg) {
        self.effects.push(Effect::Send { to, msg });
    }

    /// Sends `msg` to node `to`, perhaps before this step's writes are durable (see
    /// [`Effect::SendEarly`]).
    pub fn send_early(&mut self, to: NodeId, msg: P::Msg) {
        self.effects.push(Effect::SendEarly { to, msg });
    }

    /// Fires the timer `done` once this step's writes, and those before them, are durable
    /// (see [`Effect::Synced`]).
    pub fn when_synced(&mut self, done: P::Timer) {
        self.effects.push(Effect::Synced { done });
    }

    /// Sends `msg` to each node of `to`, in that order; the message is encoded once.
    pub fn multicast(&mut self, to: Vec<NodeId>, msg: P::Msg) {
        self.effects.push(Effect::Multicast { to: Destinations::Nodes(to), msg });
    }

    /// Sends `msg` to every other node of the cluster.
    pub fn broadcast(&mut self, msg: P::Msg) {
        self.effects.push(Effect::Multicast { to: Destinations::AllOthers, msg });
    }

    /// As [`Self::multicast`], perhaps before this step's writes are durable (see
    /// [`Effect::MulticastEarly`]).
    pub fn multicast_early(&mut self, to: Vec<NodeId>, msg: P::Msg) {
        self.effects.push(Effect::MulticastEarly { to: Destinations::Nodes(to), msg });
    }

    /// As [`Self::broadcast`], perhaps before this step's writes are durable (see
    /// [`Effect::MulticastEarly`]).
    pub fn broadcast_early(&mut self, msg: P::Msg) {
        self.effects.push(Effect::MulticastEarly { to: Destinations::AllOthers, msg });
    }

    /// Sets (or resets) the timer `timer` to fire `after` from now, on the node's clock.
    pub fn set_timer(&mut self, timer: P::Timer, after: Duration) {
        self.effects.push(Effect::SetTimer { timer, after });
    }

    /// Cancels the timer `timer`; nothing happens if it is not pending.
    pub fn cancel_timer(&mut self, timer: P::Timer) {
        self.effects.push(Effect::CancelTimer { timer });
    }

    /// Durably stores `value` under `key` (postcard-encoded).
    pub fn persist<V: Serialize>(&mut self, key: impl Into<String>, value: &V) {
        let value = crate::wire::encode(value);
        self.effects.push(Effect::Persist { key: key.into(), value });
    }

    /// Durably stores bytes the protocol encoded itself (a log entry, a snapshot).
    pub fn persist_bytes(&mut self, key: impl Into<String>, value: Vec<u8>) {
        self.effects.push(Effect::Persist { key: key.into(), value });
    }

    /// Durably removes `key`.
    pub fn unpersist(&mut self, key: impl Into<String>) {
        self.effects.push(Effect::Unpersist { key: key.into() });
    }

    /// Durably removes every key in `from..to` (byte order).
    pub fn unpersist_range(&mut self, from: impl Into<String>, to: impl Into<String>) {
        self.effects.push(Effect::UnpersistRange { from: from.into(), to: to.into() });
    }

    /// Durably stores what `value` computes under `key`, off the protocol's path; the timer
    /// `done` fires once it is durable (see [`Effect::PersistLater`]).
    pub fn persist_later(&mut self, key: impl Into<String>, value: Deferred, done: P::Timer) {
        self.effects.push(Effect::PersistLater { key: key.into(), value, done });
    }

    /// Reports `obs` to the run's checker.
    pub fn observe(&mut self, obs: P::Obs) {
        self.effects.push(Effect::Observe(obs));
    }

    /// Operation `op` begins now (for msgs-per-op and latency; the first begin counts).
    pub fn op_begin(&mut self, op: OpId) {
        self.effects.push(Effect::OpBegin(op));
    }

    /// Operation `op` ends here; its latency runs to the last end reported for it.
    pub fn op_end(&mut self, op: OpId) {
        self.effects.push(Effect::OpEnd(op));
    }
}
