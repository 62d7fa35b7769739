//! The effect interpreter every driver shares: what a node's [`Effect`]s mean, applied once.
//!
//! A driver runs a handler and hands each effect of the step to [`Interp::apply`], with a
//! [`Host`]: the part that is the driver's own (the simulator's event queue and fault model;
//! the runtime's sockets and redb). The interpreter owns what must not differ between drivers:
//!
//! - **Timers** — the [`Timers`] table (set replaces, cancel removes, each setting a new
//!   generation so a stale firing is recognised), generic over the deadline type: virtual
//!   [`Time`] in the simulator, `Instant` in the runtime.
//! - **Destinations** — `AllOthers` expanded against the cluster size; a destination outside
//!   the cluster is the violation `valid-destination`, and that copy is not sent.
//! - **The frame** — every message is encoded once per effect as the frame the runtime writes
//!   (`[u32 length][postcard]`); a payload over [`wire::MAX_FRAME_BYTES`] is the violation
//!   `frame-limit` and the message is not sent.
//! - **The round trip** — the payload is decoded and re-encoded; a message that does not
//!   decode, or does not re-encode to the same bytes, is the violation `wire-round-trip` and is
//!   not sent. The copy handed to the host is the decoded one: what crosses any driver is what
//!   would cross a socket.
//! - **Accounting** — the message type's index, its frame bytes, per-type [`Metrics`] and the
//!   sender's [`Counters`], one count per destination.
//!
//! The host reports the violations: the simulator records them (the run stops), the runtime
//! logs them and reports them in its node's summary, so both drivers give the same verdict.
//!
//! **Not here:** persistence, observations and operations go straight to the host, which is
//! what they are about.

use crate::check::Violation;
use crate::id::{NodeId, OpId, Time};
use crate::metrics::{Counters, Metrics};
use crate::protocol::{Deferred, Destinations, Effect, EffectOf, Message, Protocol};
use crate::wire;
use std::time::Duration;

/// The property a send to a node outside the cluster violates.
pub const VALID_DESTINATION: &str = "valid-destination";
/// The property a message whose frame is over [`wire::MAX_FRAME_BYTES`] violates.
pub const FRAME_LIMIT: &str = "frame-limit";
/// The property a message that does not decode, or re-encode to its bytes, violates.
pub const WIRE_ROUND_TRIP: &str = "wire-round-trip";

/// One node's pending named timers: at most one per name, each with the generation of its
/// last setting and its deadline. Generations are issued by the [`Interp`] (unique across every
/// table it serves), so a firing that names an older generation is a timer since replaced or
/// cancelled.
#[derive(Debug)]
pub struct Timers<T, D> {
    /// `(name, generation, deadline)`; few per node: a linear scan.
    pending: Vec<(T, u64, D)>,
}

impl<T: Clone, D: Clone> Clone for Timers<T, D> {
    fn clone(&self) -> Self {
        Timers { pending: self.pending.clone() }
    }

    /// Reuses this table's room (the explorer copies a state into a spare one per successor).
    fn clone_from(&mut self, source: &Self) {
        self.pending.clone_from(&source.pending);
    }
}

impl<T, D> Default for Timers<T, D> {
    fn default() -> Self {
        Timers { pending: Vec::new() }
    }
}

impl<T: PartialEq, D: Copy + Ord> Timers<T, D> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `timer` to fire at `at` under generation `gen`, replacing its pending setting.
    /// Returns whether it was pending (replaced) rather than new.
    pub fn set(&mut self, timer: T, gen: u64, at: D) -> bool {
        match self.pending.iter_mut().find(|(t, _, _)| *t == timer) {
            Some(p) => {
                debug_assert!(p.1 < gen, "generations only grow");
                p.1 = gen;
                p.2 = at;
                true
            }
            None => {
                self.pending.push((timer, gen, at));
                false
            }
        }
    }

    /// Cancels `timer`; returns whether it was pending.
    pub fn cancel(&mut self, timer: &T) -> bool {
        match self.pending.iter().position(|(t, _, _)| t == timer) {
            Some(pos) => {
                self.pending.swap_remove(pos);
                true
            }
            None => false,
        }
    }

    /// A firing of generation `gen` (the simulator's queued timer event): removes and returns
    /// true if that setting is still pending, false if it was replaced or cancelled since.
    pub fn fire(&mut self, gen: u64) -> bool {
        match self.pending.iter().position(|(_, g, _)| *g == gen) {
            Some(pos) => {
                self.pending.swap_remove(pos);
                true
            }
            None => false,
        }
    }

    /// Removes and returns the earliest timer due at `now` (the runtime's clock), if any.
    pub fn pop_due(&mut self, now: D) -> Option<T> {
        let pos = (0..self.pending.len()).filter(|&i| self.pending[i].2 <= now).min_by_key(|&i| {
            let p = &self.pending[i];
            (p.2, p.1)
        })?;
        Some(self.pending.swap_remove(pos).0)
    }

    /// The pending timers: `(name, generation, deadline)`, in the table's order.
    pub fn iter(&self) -> impl Iterator<Item = (&T, u64, D)> + '_ {
        self.pending.iter().map(|(t, g, d)| (t, *g, *d))
    }

    /// The earliest deadline pending.
    pub fn next_deadline(&self) -> Option<D> {
        self.pending.iter().map(|p| p.2).min()
    }

    /// Timers pending.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Forgets every timer (the node crashed).
    pub fn clear(&mut self) {
        self.pending.clear();
    }
}

/// Destinations of one send, checked against the cluster: every id is in `0..n`.
#[derive(Clone, Copy, Debug)]
pub enum Targets<'a> {
    /// Every node but `me`.
    AllOthers {
        /// The sender, left out.
        me: NodeId,
        /// The cluster size: destinations are `0..n`.
        n: u32,
    },
    /// These nodes, in this order.
    Nodes(&'a [NodeId]),
}

impl Targets<'_> {
    /// Calls `f` with each destination, in order.
    #[inline]
    pub fn for_each(&self, mut f: impl FnMut(NodeId)) {
        match *self {
            Targets::AllOthers { me, n } => (0..n).map(NodeId).filter(|t| *t != me).for_each(f),
            Targets::Nodes(list) => list.iter().for_each(|t| f(*t)),
        }
    }

    /// The number of destinations.
    pub fn len(&self) -> usize {
        match *self {
            Targets::AllOthers { me, n } => n as usize - usize::from(me.0 < n),
            Targets::Nodes(list) => list.len(),
        }
    }

    /// Whether the send has no destination at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The destinations as a list.
    pub fn to_vec(&self) -> Vec<NodeId> {
        let mut v = Vec::with_capacity(self.len());
        self.for_each(|t| v.push(t));
        v
    }
}

/// A message ready to leave, encoded once for all its destinations.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// The message type's index in [`Metrics`].
    pub kind: usize,
    /// The whole frame, `[u32 big-endian length][postcard payload]`: what the runtime writes.
    pub wire: &'a [u8],
}

impl Frame<'_> {
    /// The postcard payload (what the simulator's trace digest hashes).
    pub fn payload(&self) -> &[u8] {
        &self.wire[wire::FRAME_HEADER_BYTES..]
    }

    /// Wire bytes per copy, header included: what every byte counter counts.
    pub fn bytes(&self) -> u64 {
        self.wire.len() as u64
    }
}

/// A durable write of one step (`Persist`, `Unpersist`, `UnpersistRange`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// Store `value` under `key`, replacing what was there.
    Put(String, Vec<u8>),
    /// Remove `key`, if present.
    Remove(String),
    /// Every key in `from..to`, byte order.
    RemoveRange(String, String),
}

/// What a driver supplies to the interpreter: its clock, its node state, its network, its
/// storage and its checker. Called in the order of the step's effects.
pub trait Host<P: Protocol> {
    /// The clock timers run on (`Time` in the simulator, `Instant` in the runtime).
    type Deadline: Copy + Ord;

    /// The run's time, to stamp violations with.
    fn now(&self) -> Time;
    /// The run's per-type metrics and node `node`'s counters.
    fn accounts(&mut self, node: NodeId) -> (&mut Metrics, &mut Counters);
    /// Node `node`'s timer table.
    fn timers(&mut self, node: NodeId) -> &mut Timers<P::Timer, Self::Deadline>;
    /// When a timer node `node` sets to fire `after` from now (on its clock) is due.
    fn deadline(&self, node: NodeId, after: Duration) -> Self::Deadline;
    /// A timer was set in the table (`replaced`: it was pending under an older generation).
    fn timer_set(&mut self, node: NodeId, timer: P::Timer, gen: u64, at: Self::Deadline, replaced: bool);
    /// A pending timer was cancelled.
    fn timer_cancelled(&mut self, node: NodeId);
    /// Hands one message (already counted as sent to each destination) to the network.
    fn transmit(&mut self, from: NodeId, to: Targets<'_>, msg: P::Msg, frame: &Frame<'_>);
    /// Like [`Host::transmit`], for a message that may leave before the durable writes of its
    /// step and of the steps before it ([`Effect::SendEarly`](crate::Effect::SendEarly)). A
    /// host whose writes are durable at once hands it over as any other.
    fn transmit_early(&mut self, from: NodeId, to: Targets<'_>, msg: P::Msg, frame: &Frame<'_>) {
        self.transmit(from, to, msg, frame)
    }
    /// Fires node `node`'s timer `done` once its writes so far are durable
    /// ([`Effect::Synced`](crate::Effect::Synced)).
    fn synced(&mut self, node: NodeId, done: P::Timer);
    /// A durable write of node `node`'s step: the host makes it durable before any message of
    /// the same step leaves the node.
    fn persist(&mut self, node: NodeId, write: Write);
    /// Computes `value` off the protocol's path and writes it under `key`, then fires the
    /// node's timer `done` (see [`Effect::PersistLater`](crate::Effect::PersistLater)).
    fn persist_later(&mut self, node: NodeId, key: String, value: Deferred, done: P::Timer);
    /// Hands an observation to the run's checker and trace.
    fn observe(&mut self, node: NodeId, obs: P::Obs);
    /// An operation begins (`end` false) or ends here.
    fn operation(&mut self, node: NodeId, op: OpId, end: bool);
    /// A node broke a rule every driver enforces (a bad destination, frame or encoding).
    fn violation(&mut self, v: Violation);
}

/// The interpreter: the cluster's size, the timer generations, and the encoding buffers.
/// One serves a whole simulation, or one runtime node.
#[derive(Debug, Default)]
pub struct Interp {
    n: usize,
    /// The last timer generation issued.
    gen: u64,
    /// The frame of the message being sent.
    frame: Vec<u8>,
    /// The round trip's re-encoding.
    again: Vec<u8>,
}

impl Interp {
    /// An interpreter for a cluster of `n` nodes (ids `0..n`).
    pub fn new(n: usize) -> Self {
        assert!(n <= u32::MAX as usize, "node ids are u32");
        Interp { n, ..Interp::default() }
    }

    /// The cluster size `n` this interpreter checks destinations against.
    pub fn nodes(&self) -> usize {
        self.n
    }

    /// Issues no generation at or below `gen` from now on: a driver that moves a node's timer
    /// table between interpreters (the explorer's threads, each with its own) keeps the
    /// table's generations growing.
    pub fn generations_above(&mut self, gen: u64) {
        self.gen = self.gen.max(gen);
    }

    /// Applies one effect of node `id`'s step.
    pub fn apply<P: Protocol, H: Host<P>>(&mut self, host: &mut H, id: NodeId, effect: EffectOf<P>) {
        match effect {
            Effect::Send { to, msg } => self.send(host, id, Some(std::slice::from_ref(&to)), msg, false),
            Effect::SendEarly { to, msg } => self.send(host, id, Some(std::slice::from_ref(&to)), msg, true),
            Effect::Multicast { to: Destinations::AllOthers, msg } => self.send(host, id, None, msg, false),
            Effect::Multicast { to: Destinations::Nodes(list), msg } => {
                self.send(host, id, Some(&list), msg, false)
            }
            Effect::MulticastEarly { to: Destinations::AllOthers, msg } => {
                self.send(host, id, None, msg, true)
            }
            Effect::MulticastEarly { to: Destinations::Nodes(list), msg } => {
                self.send(host, id, Some(&list), msg, true)
            }
            Effect::SetTimer { timer, after } => {
                self.gen += 1;
                let at = host.deadline(id, after);
                let replaced = host.timers(id).set(timer.clone(), self.gen, at);
                host.timer_set(id, timer, self.gen, at, replaced);
            }
            Effect::CancelTimer { timer } => {
                if host.timers(id).cancel(&timer) {
                    host.timer_cancelled(id);
                }
            }
            Effect::Persist { key, value } => host.persist(id, Write::Put(key, value)),
            Effect::Unpersist { key } => host.persist(id, Write::Remove(key)),
            Effect::UnpersistRange { from, to } => host.persist(id, Write::RemoveRange(from, to)),
            Effect::PersistLater { key, value, done } => host.persist_later(id, key, value, done),
            Effect::Synced { done } => host.synced(id, done),
            Effect::Observe(obs) => host.observe(id, obs),
            Effect::OpBegin(op) => host.operation(id, op, false),
            Effect::OpEnd(op) => host.operation(id, op, true),
        }
    }

    /// Encodes, checks, counts and hands over one message for all its destinations (`None`:
    /// every other node); `early` if it may leave before its step's writes are durable.
    fn send<P: Protocol, H: Host<P>>(
        &mut self,
        host: &mut H,
        from: NodeId,
        to: Option<&[NodeId]>,
        msg: P::Msg,
        early: bool,
    ) {
        let n = self.n as u32;
        let checked;
        let targets = match to {
            None => Targets::AllOthers { me: from, n },
            Some(list) if list.iter().all(|t| t.0 < n) => Targets::Nodes(list),
            Some(list) => {
                for t in list.iter().filter(|t| t.0 >= n) {
                    let detail =
                        format!("sent {} to node {t}, but the cluster has nodes 0..{}", msg.kind(), self.n);
                    host.violation(Violation::new(VALID_DESTINATION, Some(from), host.now(), detail));
                }
                checked = list.iter().copied().filter(|t| t.0 < n).collect::<Vec<_>>();
                Targets::Nodes(&checked)
            }
        };
        if targets.is_empty() {
            return;
        }
        let Some(msg) = self.encode(host, from, msg) else {
            return;
        };
        let (metrics, counters) = host.accounts(from);
        let kind = metrics.kind_index(msg.kind());
        let copies = targets.len() as u64;
        let frame = Frame { kind, wire: &self.frame };
        metrics.sent_many(kind, copies, frame.bytes());
        counters.count_sent_many(copies, frame.bytes());
        match early {
            true => host.transmit_early(from, targets, msg, &frame),
            false => host.transmit(from, targets, msg, &frame),
        }
    }

    /// Encodes `msg` as a frame into `self.frame` and checks it against the frame limit and the
    /// round trip; returns the decoded copy, or `None` (and a violation) if it cannot cross.
    fn encode<P: Protocol, H: Host<P>>(&mut self, host: &mut H, from: NodeId, msg: P::Msg) -> Option<P::Msg> {
        self.frame.clear();
        self.frame.extend_from_slice(&[0; wire::FRAME_HEADER_BYTES]);
        let len = wire::encode_into(&msg, &mut self.frame);
        let refuse = |host: &mut H, property, detail: String| {
            host.violation(Violation::new(property, Some(from), host.now(), detail));
            None
        };
        if len > wire::MAX_FRAME_BYTES {
            let detail = format!(
                "a {} of {len} bytes is over the frame limit of {} bytes",
                msg.kind(),
                wire::MAX_FRAME_BYTES
            );
            return refuse(host, FRAME_LIMIT, detail);
        }
        self.frame[..wire::FRAME_HEADER_BYTES].copy_from_slice(&(len as u32).to_be_bytes());
        let payload = &self.frame[wire::FRAME_HEADER_BYTES..];
        let decoded = match wire::decode::<P::Msg>(payload) {
            Ok(m) => m,
            Err(e) => return refuse(host, WIRE_ROUND_TRIP, format!("a {} does not decode: {e}", msg.kind())),
        };
        self.again.clear();
        wire::encode_into(&decoded, &mut self.again);
        if self.again != payload {
            let detail =
                format!("a {} decodes to {decoded:?}, which does not encode to its bytes", msg.kind());
            return refuse(host, WIRE_ROUND_TRIP, detail);
        }
        Some(decoded)
    }

    /// Counts a message delivered to `to` (the driver calls it where its network delivers).
    pub fn delivered(metrics: &mut Metrics, counters: &mut Counters, kind: usize, bytes: u64) {
        metrics.delivered(kind, bytes);
        counters.count_delivered(bytes);
    }

    /// Counts a message lost on its way to the node whose `counters` these are.
    pub fn dropped(metrics: &mut Metrics, counters: &mut Counters, kind: usize) {
        metrics.dropped(kind);
        counters.dropped += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Context;
    use serde::{Deserialize, Deserializer, Serialize};

    /// Encodes as its number; 7 does not decode, 8 decodes as 9 (so does not re-encode).
    #[derive(Clone, Debug, PartialEq, Serialize)]
    struct Odd(u32);

    impl<'de> Deserialize<'de> for Odd {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            match u32::deserialize(d)? {
                7 => Err(serde::de::Error::custom("seven is refused")),
                8 => Ok(Odd(9)),
                x => Ok(Odd(x)),
            }
        }
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    enum M {
        Small(u32),
        Big(Vec<u8>),
        Odd(Odd),
    }

    impl Message for M {
        fn kind(&self) -> &'static str {
            match self {
                M::Small(_) => "SMALL",
                M::Big(_) => "BIG",
                M::Odd(_) => "ODD",
            }
        }
    }

    struct P;
    impl Protocol for P {
        type Msg = M;
        type Timer = u8;
        type Obs = u32;
        fn on_start(&mut self, _: &mut Context<'_, Self>) {}
        fn on_message(&mut self, _: &mut Context<'_, Self>, _: NodeId, _: M) {}
        fn on_timer(&mut self, _: &mut Context<'_, Self>, _: u8) {}
    }

    /// Records everything the interpreter asks of it; deadlines are milliseconds.
    #[derive(Default)]
    struct Rec {
        metrics: Metrics,
        counters: Vec<Counters>,
        timers: Vec<Timers<u8, u64>>,
        set: Vec<(u8, u64, u64, bool)>,
        cancelled: usize,
        sent: Vec<(NodeId, Vec<NodeId>, M, u64)>,
        /// Which of `sent` were handed over early, by index.
        early: Vec<usize>,
        violations: Vec<Violation>,
    }

    impl Rec {
        fn new(n: usize) -> Self {
            Rec { counters: vec![Counters::default(); n], timers: vec![Timers::new(); n], ..Rec::default() }
        }

        fn properties(&self) -> Vec<&'static str> {
            self.violations.iter().map(|v| v.property).collect()
        }
    }

    impl Host<P> for Rec {
        type Deadline = u64;
        fn now(&self) -> Time {
            Time::from_millis(5)
        }
        fn accounts(&mut self, node: NodeId) -> (&mut Metrics, &mut Counters) {
            (&mut self.metrics, &mut self.counters[node.index()])
        }
        fn timers(&mut self, node: NodeId) -> &mut Timers<u8, u64> {
            &mut self.timers[node.index()]
        }
        fn deadline(&self, _: NodeId, after: Duration) -> u64 {
            5 + after.as_millis() as u64
        }
        fn timer_set(&mut self, _: NodeId, timer: u8, gen: u64, at: u64, replaced: bool) {
            self.set.push((timer, gen, at, replaced));
        }
        fn timer_cancelled(&mut self, _: NodeId) {
            self.cancelled += 1;
        }
        fn transmit(&mut self, from: NodeId, to: Targets<'_>, msg: M, frame: &Frame<'_>) {
            assert_eq!(wire::decode::<M>(frame.payload()).as_ref(), Ok(&msg));
            self.sent.push((from, to.to_vec(), msg, frame.bytes()));
        }
        fn transmit_early(&mut self, from: NodeId, to: Targets<'_>, msg: M, frame: &Frame<'_>) {
            self.early.push(self.sent.len());
            self.transmit(from, to, msg, frame);
        }
        fn persist(&mut self, _: NodeId, _: Write) {}
        fn persist_later(&mut self, _: NodeId, _: String, _: Deferred, _: u8) {}
        fn synced(&mut self, _: NodeId, _: u8) {}
        fn observe(&mut self, _: NodeId, _: u32) {}
        fn operation(&mut self, _: NodeId, _: OpId, _: bool) {}
        fn violation(&mut self, v: Violation) {
            self.violations.push(v);
        }
    }

    /// Applies `effects` of node `id` in a cluster of 3.
    fn check(effects: Vec<EffectOf<P>>, id: u32) -> Rec {
        let mut host = Rec::new(3);
        let mut interp = Interp::new(3);
        for e in effects {
            interp.apply(&mut host, NodeId(id), e);
        }
        host
    }

    fn ms(x: u64) -> Duration {
        Duration::from_millis(x)
    }

    #[test]
    fn a_timer_set_again_replaces_its_generation_and_deadline() {
        let host = check(
            vec![
                Effect::SetTimer { timer: 1, after: ms(10) },
                Effect::SetTimer { timer: 2, after: ms(20) },
                Effect::SetTimer { timer: 1, after: ms(30) },
            ],
            0,
        );
        assert_eq!(host.set, vec![(1, 1, 15, false), (2, 2, 25, false), (1, 3, 35, true)]);
        let mut t = host.timers[0].clone();
        assert_eq!((t.len(), t.next_deadline()), (2, Some(25)));
        assert!(!t.fire(1), "generation 1 was replaced by 3");
        assert!(t.fire(3));
        assert!(!t.fire(3), "fires once");
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn a_cancelled_timer_is_gone_and_cancelling_twice_is_nothing() {
        let host = check(
            vec![
                Effect::SetTimer { timer: 1, after: ms(10) },
                Effect::CancelTimer { timer: 1 },
                Effect::CancelTimer { timer: 1 },
                Effect::CancelTimer { timer: 4 },
            ],
            0,
        );
        assert_eq!(host.cancelled, 1);
        let mut t = host.timers[0].clone();
        assert!(t.is_empty() && t.next_deadline().is_none());
        assert!(!t.fire(1), "a cancelled timer's firing is stale");
    }

    #[test]
    fn due_timers_pop_earliest_first() {
        let mut t: Timers<u8, u64> = Timers::new();
        t.set(1, 1, 30);
        t.set(2, 2, 10);
        t.set(3, 3, 20);
        assert_eq!(t.pop_due(5), None);
        assert_eq!(t.pop_due(25), Some(2));
        assert_eq!(t.pop_due(25), Some(3));
        assert_eq!(t.pop_due(25), None);
        assert_eq!(t.next_deadline(), Some(30));
        t.clear();
        assert!(t.is_empty());
    }

    #[test]
    fn all_others_expands_and_counts_one_message_per_destination() {
        let host = check(vec![Effect::Multicast { to: Destinations::AllOthers, msg: M::Small(1) }], 1);
        let bytes = wire::frame_bytes(wire::encoded_len(&M::Small(1))) as u64;
        assert_eq!(host.sent, vec![(NodeId(1), vec![NodeId(0), NodeId(2)], M::Small(1), bytes)]);
        assert_eq!((host.counters[1].sent, host.counters[1].bytes_sent), (2, 2 * bytes));
        assert_eq!(host.metrics.by_kind()[0].0, "SMALL");
        assert_eq!(host.metrics.totals().sent, 2);
        assert!(host.violations.is_empty());
    }

    #[test]
    fn an_early_multicast_is_encoded_once_and_handed_over_early() {
        let host = check(
            vec![
                Effect::MulticastEarly { to: Destinations::AllOthers, msg: M::Small(1) },
                Effect::Multicast { to: Destinations::AllOthers, msg: M::Small(2) },
                Effect::MulticastEarly { to: Destinations::Nodes(vec![NodeId(2)]), msg: M::Small(3) },
                Effect::SendEarly { to: NodeId(0), msg: M::Small(4) },
            ],
            1,
        );
        let to: Vec<Vec<NodeId>> = host.sent.iter().map(|s| s.1.clone()).collect();
        assert_eq!(
            to,
            [vec![NodeId(0), NodeId(2)], vec![NodeId(0), NodeId(2)], vec![NodeId(2)], vec![NodeId(0)]]
        );
        assert_eq!(host.early, [0, 2, 3]);
        assert_eq!(host.counters[1].sent, 6);
    }

    #[test]
    fn a_destination_outside_the_cluster_is_a_violation_and_is_not_sent() {
        let host = check(
            vec![
                Effect::Send { to: NodeId(3), msg: M::Small(1) },
                Effect::Multicast { to: Destinations::Nodes(vec![NodeId(2), NodeId(9)]), msg: M::Small(2) },
            ],
            0,
        );
        assert_eq!(host.properties(), vec![VALID_DESTINATION, VALID_DESTINATION]);
        assert_eq!(host.violations[0].node, Some(NodeId(0)));
        assert!(host.violations[1].detail.contains("node 9"), "{}", host.violations[1].detail);
        assert_eq!(host.sent.len(), 1, "the valid destination still gets its copy");
        assert_eq!(host.sent[0].1, vec![NodeId(2)]);
        assert_eq!(host.counters[0].sent, 1);
    }

    #[test]
    fn a_frame_over_the_limit_is_a_violation_and_is_not_sent_or_counted() {
        let big = M::Big(vec![0; wire::MAX_FRAME_BYTES]);
        let host = check(vec![Effect::Send { to: NodeId(1), msg: big }], 0);
        assert_eq!(host.properties(), vec![FRAME_LIMIT]);
        assert!(host.sent.is_empty());
        assert_eq!(host.metrics.totals(), Counters::default());
        // The largest payload that fits is sent.
        let fits = M::Big(vec![0; wire::MAX_FRAME_BYTES - 8]);
        assert!(wire::encoded_len(&fits) <= wire::MAX_FRAME_BYTES);
        let host = check(vec![Effect::Send { to: NodeId(1), msg: fits }], 0);
        assert!(host.violations.is_empty());
        assert_eq!(host.sent.len(), 1);
    }

    #[test]
    fn a_message_that_does_not_decode_or_reencode_is_a_violation_and_is_not_sent() {
        let host = check(vec![Effect::Send { to: NodeId(1), msg: M::Odd(Odd(7)) }], 0);
        assert_eq!(host.properties(), vec![WIRE_ROUND_TRIP]);
        assert!(host.violations[0].detail.contains("does not decode"), "{}", host.violations[0].detail);
        let host = check(vec![Effect::Send { to: NodeId(1), msg: M::Odd(Odd(8)) }], 0);
        assert_eq!(host.properties(), vec![WIRE_ROUND_TRIP]);
        assert!(host.sent.is_empty());
        let host = check(vec![Effect::Send { to: NodeId(1), msg: M::Odd(Odd(6)) }], 0);
        assert!(host.violations.is_empty());
        assert_eq!(host.sent[0].2, M::Odd(Odd(6)));
    }
}
