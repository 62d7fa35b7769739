//! `Simulation`: drives the nodes of a [`Setup`] with virtual time, one seed and a fault model.
//!
//! One global queue holds every pending event (a delivery, a timer, a scheduled fault); the
//! loop pops the earliest, hands it to its node, and applies the effects the node returns.
//! Four random streams derive from the master seed: the network's, the protocols', the disk's
//! (which deferred writes a crash lets land) and the random crashes' draw, so that one part's
//! choices do not shift when another's model changes.
//!
//! **Invariant:** the run is a pure function of (setup, seed, faults, limits). Nothing here
//! reads the wall clock except to report `wall_ms`.

use crate::diagram::{Rec, Recorder};
use crate::digest::Digest;
use crate::faults::{Faults, Wipe};
use crate::net::{Fate, Net};
use crate::queue::Queue;
use agora_core::interp::{Frame, Host, Interp, Targets, Timers, Write};
use agora_core::{
    Checker, Context, Counters, Deferred, EffectOf, EndState, Lifecycle, Message, Metrics, NodeId, OpId,
    Protocol, Rng, RunSummary, Setup, Stable, Time, Violation, ViolationReport, REJOINING,
};
use rand::{Rng as _, SeedableRng};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Limits and options of one simulated run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The master seed: every random choice of the run derives from it.
    pub seed: u64,
    /// What goes wrong in the run; validated against the cluster size ([`Faults::validate`])
    /// before the run is built.
    pub faults: Faults,
    /// The run stops at this virtual time.
    pub max_time: Time,
    /// The run does not end for having only background work left (heartbeats) before this
    /// virtual time: an experiment that crashes a leader watches the election that follows,
    /// though the followers, still trusting the dead leader for a while, are in the background.
    pub min_time: Time,
    /// The run stops after this many events.
    pub max_events: u64,
    /// Stop (with `EndReason::QueueLimit`) when more events than this wait at once
    /// [default: `MAX_PENDING_EVENTS`].
    pub max_pending: usize,
    /// Record up to this many events for a space-time diagram.
    pub record_events: Option<usize>,
    /// Keep every observation in the outcome (for reports and tests).
    pub keep_observations: bool,
}

impl SimConfig {
    /// A run of seed `seed` without faults, stopped at 600 s of virtual time, with no event limit.
    pub fn new(seed: u64) -> Self {
        SimConfig {
            seed,
            faults: Faults::default(),
            max_time: Time::from_millis(600_000),
            min_time: Time::ZERO,
            max_events: u64::MAX,
            max_pending: MAX_PENDING_EVENTS,
            record_events: None,
            keep_observations: false,
        }
    }

    /// The same configuration with `faults` instead.
    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }
}

/// The most events (messages in flight, timers, writes) the simulator holds at once: about
/// 2.5 GB at some 120 bytes an event.
pub const MAX_PENDING_EVENTS: usize = 20_000_000;

/// Why a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndReason {
    /// Nothing was left to do.
    Quiescent,
    /// Virtual time reached [`SimConfig::max_time`] with work left.
    TimeLimit,
    /// [`SimConfig::max_events`] events were handled with work left.
    EventLimit,
    /// More than [`MAX_PENDING_EVENTS`] events were waiting at once: a workload whose message
    /// volume would exhaust memory (say, gossip to a million peers per round) is stopped.
    QueueLimit,
    /// A checker found a violation.
    Violation,
}

impl EndReason {
    /// The name a [`RunSummary`]'s `end` gives it (as serde spells it).
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Quiescent => "quiescent",
            EndReason::TimeLimit => "time-limit",
            EndReason::EventLimit => "event-limit",
            EndReason::QueueLimit => "queue-limit",
            EndReason::Violation => "violation",
        }
    }
}

/// Everything a run produced.
pub struct Outcome<O> {
    /// The protocol's CLI name.
    pub protocol: &'static str,
    /// The cluster size.
    pub nodes: usize,
    /// The run's seed.
    pub seed: u64,
    /// Messages and operations of the run, by message type.
    pub metrics: Metrics,
    /// Message counters of each node.
    pub per_node: Vec<Counters>,
    /// The violations found; the run stops once there is one.
    pub violations: Vec<Violation>,
    /// Why the run ended.
    pub end: EndReason,
    /// Virtual time when the run ended.
    pub virtual_time: Time,
    /// Wall-clock time the run took to compute.
    pub wall: Duration,
    /// Events handled: deliveries, timer firings, faults and writes.
    pub events: u64,
    /// The run's fingerprint: the same inputs give the same digest.
    pub trace_digest: Digest,
    /// `(global time, node, observation)`, when asked for.
    pub observations: Vec<(Time, NodeId, O)>,
    /// The recorded events, when asked for; `None` inside if the limit was exceeded.
    pub recording: Option<Recorder>,
    /// What each node had persisted when the run ended.
    pub stable: Vec<Stable>,
    /// The properties the run was judged by.
    pub properties: Vec<agora_core::Property>,
    /// The at-end properties that were not judged, and why (see `Checker::not_judged`).
    pub not_judged: Vec<(&'static str, agora_core::NotJudged)>,
    /// The run's faults outside the protocol's fault model ([`agora_core::model`]), in words;
    /// when not empty, its violations are expected there.
    pub outside_model: Vec<String>,
}

impl<O> Outcome<O> {
    /// The run's summary: the one place a simulated run becomes a [`RunSummary`] (`reproduce`:
    /// the command that replays it, for its violations).
    pub fn summary(&self, reproduce: &str) -> RunSummary {
        let mut summary = RunSummary::from_metrics(
            self.protocol,
            "sim",
            self.nodes,
            self.seed,
            self.end.as_str(),
            &self.metrics,
            &self.per_node,
            self.virtual_time.as_millis_f64(),
            self.wall.as_secs_f64() * 1e3,
            self.events,
        );
        summary.trace_digest = Some(self.trace_digest.hex());
        summary.judged(&self.properties, &self.not_judged);
        summary.outside_model = self.outside_model.clone();
        summary.violations = self
            .violations
            .iter()
            .map(|v| ViolationReport::new(v, self.seed, reproduce.to_string()))
            .collect();
        summary
    }
}

#[derive(Clone, Copy, Debug)]
enum Action {
    PartitionStart(usize),
    PartitionHeal(usize),
    OneWayStart(usize),
    OneWayHeal(usize),
    Crash(NodeId, Wipe),
    Restart(NodeId),
    Pause(NodeId),
    Resume(NodeId),
}

enum Event<M, T> {
    Deliver {
        from: NodeId,
        to: NodeId,
        msg: M,
        id: u64,
        bytes: u32,
        kind: u16,
    },
    Timer {
        node: NodeId,
        timer: T,
        gen: u64,
    },
    /// A deferred write (`Effect::PersistLater`) is done: it lands, then `done` fires.
    Written {
        node: NodeId,
        id: u64,
        done: T,
    },
    /// The node's writes up to a step that asked (`Effect::Synced`) are durable: `done` fires.
    Synced {
        node: NodeId,
        id: u64,
        done: T,
    },
    Fault(Action),
}

/// The simulated disk for deferred writes: a fixed cost per write plus a transfer rate. The
/// node's deferred writes run one after another.
const DISK_WRITE_NS: u64 = 1_000_000;
const DISK_NS_PER_BYTE: u64 = 10; // 100 MB/s
/// A node's writes are durable at once in the simulator; what it asks to hear of with
/// `Effect::Synced` is told up to this long later (uniformly drawn, in the order asked), so
/// that answers of its peers may come first, as they may over TCP where the node sends before
/// its fsync ends.
const SYNC_MAX_NS: u64 = 2_000_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Up,
    Down,
    Paused,
}

/// Everything the simulator keeps per node, together so that handling an event for a node
/// touches one place in memory.
struct Slot<N, T> {
    /// The node's volatile state; `None` while crashed.
    node: Option<N>,
    status: Status,
    crashed_ever: bool,
    counters: Counters,
    /// Pending named timers (the interpreter's table; the event queue holds their firings).
    timers: Timers<T, Time>,
    /// What the node persisted: survives crashes.
    stable: Stable,
    /// Deferred writes not yet landed, in order: (id, key, value).
    later: std::collections::VecDeque<(u64, String, Vec<u8>)>,
    /// When the node's last deferred write will be done.
    disk_free: Time,
    /// `Effect::Synced` requests not yet told, in order (their ids), and when the last is.
    syncs: std::collections::VecDeque<u64>,
    synced_at: Time,
    /// What its last crash did to its storage, for its restart.
    wiped: Wipe,
}

type Msg<S> = <<S as Setup>::Node as Protocol>::Msg;
type TimerOf<S> = <<S as Setup>::Node as Protocol>::Timer;
type ObsOf<S> = <<S as Setup>::Node as Protocol>::Obs;
type EventOf<S> = Event<Msg<S>, TimerOf<S>>;

/// A simulated run of the protocol described by `S`.
pub struct Simulation<S: Setup> {
    setup: S,
    config: SimConfig,
    n: usize,
    slots: Vec<Slot<S::Node, TimerOf<S>>>,
    /// `(skew ns, drift ppm)` per node, when any clock is configured.
    clocks: Option<Vec<(i64, f64)>>,
    /// Events that arrived while their node was paused, in arrival order.
    stash: HashMap<u32, Vec<EventOf<S>>>,
    queue: Queue<EventOf<S>>,
    net: Net,
    net_rng: Rng,
    proto_rng: Rng,
    /// Decides which deferred writes a crash lets land.
    disk_rng: Rng,
    now: Time,
    metrics: Metrics,
    checker: Box<dyn Checker<S::Node>>,
    digest: Digest,
    effects: Vec<EffectOf<S::Node>>,
    /// Applies effects: timers, destinations, frames, round trips, accounting.
    interp: Interp,
    /// The encoding of an observation, for the digest.
    scratch: Vec<u8>,
    violations: Vec<Violation>,
    observations: Vec<(Time, NodeId, ObsOf<S>)>,
    recorder: Option<Recorder>,
    next_msg_id: u64,
    next_later: u64,
    events: u64,
    /// When the last scheduled fault (crash, partition, ...) took effect.
    last_fault: Time,
    /// Fault events scheduled and not yet applied.
    faults_left: usize,
    /// When to next ask whether every node is in the background.
    next_idle_check: Time,
}

/// The stream of the random crashes' draw (1 to 3 are the network's, the protocols' and the
/// disk's).
const CRASH_STREAM: u64 = 4;

/// Derives an independent stream seed from the master seed.
fn stream(seed: u64, stream: u64) -> Rng {
    let mut d = Digest::default();
    d.word(seed);
    d.word(stream);
    Rng::seed_from_u64(d.value())
}

impl<S: Setup> Simulation<S> {
    /// Prepares a run. The fault configuration must have been validated against the cluster
    /// size (`Faults::validate`); this constructor asserts it.
    pub fn new(setup: S, config: SimConfig) -> Self {
        let n = setup.nodes();
        debug_assert!(config.faults.validate(n).is_ok(), "faults must be validated before a run");
        let empty = Stable::new();
        let slots = (0..n)
            .map(|i| Slot {
                node: Some(
                    setup.build(NodeId(i as u32), &empty).expect("nothing to decode in empty storage"),
                ),
                status: Status::Up,
                crashed_ever: false,
                counters: Counters::default(),
                timers: Timers::new(),
                stable: Stable::new(),
                later: Default::default(),
                disk_free: Time::ZERO,
                syncs: Default::default(),
                synced_at: Time::ZERO,
                wiped: Wipe::No,
            })
            .collect();
        let clocks = (!config.faults.clocks.is_empty()).then(|| {
            let mut v = vec![(0i64, 0f64); n];
            for c in &config.faults.clocks {
                for id in c.nodes.iter() {
                    v[id.index()] = ((c.skew_ms * 1e6) as i64, c.drift_ppm);
                }
            }
            v
        });
        Simulation {
            checker: setup.checker(),
            net: Net::new(&config.faults, n),
            net_rng: stream(config.seed, 1),
            proto_rng: stream(config.seed, 2),
            disk_rng: stream(config.seed, 3),
            recorder: config.record_events.map(Recorder::new),
            setup,
            n,
            slots,
            clocks,
            stash: HashMap::new(),
            queue: Queue::new(),
            now: Time::ZERO,
            metrics: Metrics::new(),
            digest: Digest::default(),
            effects: Vec::new(),
            interp: Interp::new(n),
            scratch: Vec::new(),
            violations: Vec::new(),
            observations: Vec::new(),
            next_msg_id: 0,
            next_later: 0,
            events: 0,
            last_fault: Time::ZERO,
            faults_left: 0,
            next_idle_check: Time::ZERO,
            config,
        }
    }

    /// Runs to the end: quiescence, a limit, or the first violation.
    pub fn run(mut self) -> Outcome<ObsOf<S>> {
        let wall = Instant::now();
        self.schedule_faults();
        self.start_nodes();
        let end = self.event_loop();
        let not_judged = self.judge_end(end);
        let end = if self.violations.is_empty() { end } else { EndReason::Violation };
        self.outcome(end, not_judged, wall)
    }

    /// Starts every node in id order, unless a violation or the queue limit stops the run first.
    fn start_nodes(&mut self) {
        for i in 0..self.n {
            if !self.violations.is_empty() || self.queue.len() > self.config.max_pending {
                break;
            }
            self.step(NodeId(i as u32), |node, ctx| node.on_start(ctx));
        }
    }

    /// Handles queued events in time order until the run ends, and says why it did.
    fn event_loop(&mut self) -> EndReason {
        loop {
            if !self.violations.is_empty() {
                return EndReason::Violation;
            }
            if self.events >= self.config.max_events {
                return EndReason::EventLimit;
            }
            if self.queue.len() > self.config.max_pending {
                return EndReason::QueueLimit;
            }
            let Some((at, event)) = self.queue.pop() else {
                return EndReason::Quiescent;
            };
            if at > self.config.max_time {
                self.now = self.config.max_time;
                return EndReason::TimeLimit;
            }
            if at >= self.next_idle_check && at >= self.config.min_time {
                // Protocols that heartbeat forever end when every node says only that is left.
                self.next_idle_check = at.after(std::time::Duration::from_millis(10));
                if self.all_background() {
                    return EndReason::Quiescent;
                }
            }
            self.now = at;
            self.events += 1;
            self.handle(event);
        }
    }

    /// The checker's verdict on the end state: its at-end violations (kept in
    /// `self.violations`) and the properties it did not judge. After a violation, no at-end
    /// property is judged.
    fn judge_end(&mut self, end: EndReason) -> Vec<(&'static str, agora_core::NotJudged)> {
        if end == EndReason::Violation {
            let mut not_judged = agora_core::at_end_not_judged(
                &self.checker.properties(),
                agora_core::NotJudged::AfterViolation,
            );
            not_judged.extend(self.undecided());
            return not_judged;
        }
        let live: Vec<bool> = self.slots.iter().map(|s| s.status == Status::Up).collect();
        let crashed_ever: Vec<bool> = self.slots.iter().map(|s| s.crashed_ever).collect();
        let state = EndState {
            at: self.now,
            live: &live,
            crashed_ever: &crashed_ever,
            network_reliable: self.config.faults.lossless(),
            quiescent: end == EndReason::Quiescent,
            observed_all: end == EndReason::Quiescent,
            last_fault: self.last_fault,
            partitioned: self.net.any_cut(),
            timely: true,
        };
        let mut not_judged = self.checker.not_judged(&state);
        self.violations = self.checker.finish(&state);
        not_judged.extend(self.undecided());
        not_judged
    }

    /// The checker's open claims ([`agora_core::Checker::undecided`]) of properties not violated.
    fn undecided(&self) -> Vec<(&'static str, agora_core::NotJudged)> {
        let mut open = self.checker.undecided();
        open.retain(|(p, _)| !self.violations.iter().any(|v| v.property == *p));
        open
    }

    /// What the run produced; `wall` is when it began on the wall clock.
    fn outcome(
        self,
        end: EndReason,
        not_judged: Vec<(&'static str, agora_core::NotJudged)>,
        wall: Instant,
    ) -> Outcome<ObsOf<S>> {
        // The crashes drawn from the seed are in `crashes` by now.
        let outside_model = self.config.faults.kinds().outside(&self.setup.fault_model());
        Outcome {
            outside_model,
            protocol: self.setup.name(),
            nodes: self.n,
            seed: self.config.seed,
            metrics: self.metrics,
            per_node: self.slots.iter().map(|s| s.counters).collect(),
            violations: self.violations,
            end,
            virtual_time: self.now,
            wall: wall.elapsed(),
            events: self.events,
            trace_digest: self.digest,
            observations: self.observations,
            recording: self.recorder,
            stable: self.slots.into_iter().map(|s| s.stable).collect(),
            properties: self.checker.properties(),
            not_judged,
        }
    }

    fn push_fault(&mut self, at: Time, event: EventOf<S>) {
        self.faults_left += 1;
        self.queue.push(at, event);
    }

    /// Every node is crashed, paused or in the background, and no fault is still to come.
    fn all_background(&self) -> bool {
        self.faults_left == 0
            && self
                .slots
                .iter()
                .all(|s| s.status != Status::Up || s.node.as_ref().is_none_or(|n| n.background()))
    }

    fn schedule_faults(&mut self) {
        if let Some(r) = self.config.faults.random_crashes.clone() {
            let drawn = r.draw(self.n, &mut stream(self.config.seed, CRASH_STREAM));
            self.config.faults.crashes.extend(drawn);
        }
        let f = self.config.faults.clone();
        let at = Time::from_millis_f64;
        for (i, p) in f.partitions.iter().enumerate() {
            self.push_fault(at(p.at_ms), Event::Fault(Action::PartitionStart(i)));
            if let Some(h) = p.heal_ms {
                self.push_fault(at(h), Event::Fault(Action::PartitionHeal(i)));
            }
        }
        for (i, p) in f.one_way.iter().enumerate() {
            self.push_fault(at(p.at_ms), Event::Fault(Action::OneWayStart(i)));
            if let Some(h) = p.heal_ms {
                self.push_fault(at(h), Event::Fault(Action::OneWayHeal(i)));
            }
        }
        for c in &f.crashes {
            for id in c.nodes.iter() {
                self.push_fault(at(c.at_ms), Event::Fault(Action::Crash(id, c.wipe)));
                if let Some(r) = c.restart_ms {
                    self.push_fault(at(r), Event::Fault(Action::Restart(id)));
                }
            }
        }
        for p in &f.pauses {
            for id in p.nodes.iter() {
                self.push_fault(at(p.at_ms), Event::Fault(Action::Pause(id)));
                if let Some(r) = p.resume_ms {
                    self.push_fault(at(r), Event::Fault(Action::Resume(id)));
                }
            }
        }
    }

    /// The node's local clock at the current global time.
    fn local_time(&self, id: NodeId) -> Time {
        match &self.clocks {
            None => self.now,
            Some(c) => {
                let (skew, drift) = c[id.index()];
                let scaled = self.now.0 as f64 * (1.0 + drift * 1e-6);
                Time((scaled as i64).saturating_add(skew).max(0) as u64)
            }
        }
    }

    /// Converts a duration on the node's clock to global virtual time.
    fn to_global(&self, id: NodeId, d: Duration) -> Duration {
        match &self.clocks {
            Some(c) if c[id.index()].1 != 0.0 => d.div_f64(1.0 + c[id.index()].1 * 1e-6),
            _ => d,
        }
    }

    fn record(&mut self, rec: impl FnOnce() -> Rec) {
        if let Some(r) = &mut self.recorder {
            r.push(rec());
        }
    }

    /// Records that partition `id` (symmetric ones first, then one-way) began or healed.
    fn record_cut(&mut self, id: usize, healed: bool) {
        if self.recorder.is_none() {
            return;
        }
        let f = &self.config.faults;
        let label = match f.partitions.get(id) {
            Some(p) => {
                let groups: Vec<String> = p.groups.iter().map(|g| g.to_string()).collect();
                format!("partition {}", groups.join(" | "))
            }
            None => {
                let p = &f.one_way[id - f.partitions.len()];
                format!("one-way {} → {}", p.from, p.to)
            }
        };
        let at = self.now;
        self.record(|| Rec::Cut { id, at, label, healed });
    }

    fn lifecycle(&mut self, id: NodeId, what: Lifecycle) {
        self.digest.word(0xF0 + what as u64);
        self.digest.word(id.0 as u64);
        self.checker.lifecycle(self.now, id, what);
        let at = self.now;
        self.record(|| Rec::Life { node: id, at, what });
    }

    fn handle(&mut self, event: EventOf<S>) {
        match event {
            Event::Deliver { from, to, msg, id, bytes, kind } => match self.slots[to.index()].status {
                Status::Paused => self.stash.entry(to.0).or_default().push(Event::Deliver {
                    from,
                    to,
                    msg,
                    id,
                    bytes,
                    kind,
                }),
                Status::Down => self.drop_message(to, kind as usize, id),
                Status::Up if self.net.partitioned(from, to) => self.drop_message(to, kind as usize, id),
                Status::Up => {
                    let counters = &mut self.slots[to.index()].counters;
                    Interp::delivered(&mut self.metrics, counters, kind as usize, bytes as u64);
                    self.digest.word(self.now.0);
                    self.digest.word(id);
                    let at = self.now;
                    self.record(|| Rec::Deliver { id, at });
                    self.step(to, |node, ctx| node.on_message(ctx, from, msg));
                }
            },
            Event::Timer { node, timer, gen } => match self.slots[node.index()].status {
                Status::Paused => {
                    self.stash.entry(node.0).or_default().push(Event::Timer { node, timer, gen })
                }
                Status::Down => {}
                Status::Up => {
                    if !self.slots[node.index()].timers.fire(gen) {
                        return; // cancelled or replaced
                    }
                    self.digest.word(self.now.0);
                    self.digest.word(gen);
                    self.step(node, |n, ctx| n.on_timer(ctx, timer));
                }
            },
            Event::Written { node, id, done } => match self.slots[node.index()].status {
                Status::Paused => {
                    self.stash.entry(node.0).or_default().push(Event::Written { node, id, done })
                }
                Status::Down => {} // settled when it crashed
                Status::Up => {
                    let slot = &mut self.slots[node.index()];
                    if slot.later.front().map(|l| l.0) != Some(id) {
                        return; // from before a crash
                    }
                    let (_, key, value) = slot.later.pop_front().expect("checked");
                    self.digest.bytes(key.as_bytes());
                    self.digest.bytes(&value);
                    slot.stable.put(key, value);
                    self.step(node, |n, ctx| n.on_timer(ctx, done));
                }
            },
            Event::Synced { node, id, done } => match self.slots[node.index()].status {
                Status::Paused => {
                    self.stash.entry(node.0).or_default().push(Event::Synced { node, id, done })
                }
                Status::Down => {}
                Status::Up => {
                    let slot = &mut self.slots[node.index()];
                    if slot.syncs.front() != Some(&id) {
                        return; // from before a crash
                    }
                    slot.syncs.pop_front();
                    self.digest.word(id);
                    self.step(node, |n, ctx| n.on_timer(ctx, done));
                }
            },
            Event::Fault(action) => {
                self.faults_left -= 1;
                self.fault(action)
            }
        }
    }

    fn drop_message(&mut self, to: NodeId, kind: usize, id: u64) {
        Interp::dropped(&mut self.metrics, &mut self.slots[to.index()].counters, kind);
        let at = self.now;
        self.record(|| Rec::Drop { id, at });
    }

    fn fault(&mut self, action: Action) {
        self.last_fault = self.now;
        let faults = &self.config.faults;
        let symmetric = faults.partitions.len();
        match action {
            Action::PartitionStart(i) => {
                self.net.start_partition(i, &faults.partitions[i]);
                self.record_cut(i, false);
            }
            Action::PartitionHeal(i) => {
                self.net.heal(i);
                self.record_cut(i, true);
            }
            Action::OneWayStart(i) => {
                self.net.start_one_way(symmetric + i, &faults.one_way[i]);
                self.record_cut(symmetric + i, false);
            }
            Action::OneWayHeal(i) => {
                self.net.heal(symmetric + i);
                self.record_cut(symmetric + i, true);
            }
            Action::Crash(id, wipe) => self.crash(id, wipe),
            Action::Restart(id) => self.restart(id),
            Action::Pause(id) => {
                if self.slots[id.index()].status == Status::Up {
                    self.slots[id.index()].status = Status::Paused;
                    self.lifecycle(id, Lifecycle::Paused);
                }
            }
            Action::Resume(id) => {
                if self.slots[id.index()].status == Status::Paused {
                    self.slots[id.index()].status = Status::Up;
                    self.lifecycle(id, Lifecycle::Resumed);
                    for e in self.stash.remove(&id.0).unwrap_or_default() {
                        self.queue.push(self.now, e);
                    }
                }
            }
        }
    }

    /// Node `id` crashes (if it is up or paused): its volatile state and timers are gone, its
    /// storage too if `wipe` says so, a random prefix of its deferred writes lands, and the
    /// messages that waited for it while paused are lost.
    fn crash(&mut self, id: NodeId, wipe: Wipe) {
        let slot = &mut self.slots[id.index()];
        if slot.status == Status::Down {
            return;
        }
        slot.status = Status::Down;
        slot.node = None;
        slot.timers.clear();
        slot.syncs.clear();
        slot.crashed_ever = true;
        slot.wiped = wipe;
        if wipe != Wipe::No {
            slot.stable = Stable::new();
            slot.later.clear();
            slot.disk_free = self.now;
        }
        // Deferred writes under way: the first few may have landed, in order.
        if !slot.later.is_empty() {
            let landed = self.disk_rng.random_range(0..=slot.later.len());
            for (_, key, value) in slot.later.drain(..).take(landed) {
                self.digest.bytes(key.as_bytes());
                slot.stable.put(key, value);
            }
            slot.disk_free = self.now;
        }
        for e in self.stash.remove(&id.0).unwrap_or_default() {
            if let Event::Deliver { to, kind, id, .. } = e {
                self.drop_message(to, kind as usize, id);
            }
        }
        self.lifecycle(id, Lifecycle::Crashed);
        if wipe != Wipe::No {
            self.lifecycle(id, Lifecycle::Wiped);
        }
    }

    /// Node `id` restarts (if it is down), rebuilt from what it persisted; after a
    /// [`Wipe::Rejoin`] it is marked as rejoining, or stays down if its protocol cannot rejoin.
    /// A value that does not decode is the violation `storage-decodes`.
    fn restart(&mut self, id: NodeId) {
        let slot = &mut self.slots[id.index()];
        if slot.status != Status::Down {
            return;
        }
        if slot.wiped == Wipe::Rejoin {
            if !self.setup.rejoins(id) {
                return;
            }
            slot.stable.put(REJOINING.to_string(), Vec::new());
        }
        slot.wiped = Wipe::No;
        match self.setup.build(id, &slot.stable) {
            Ok(node) => slot.node = Some(node),
            Err(e) => {
                let detail = format!("cannot restart from what it persisted: {e}");
                self.violations.push(Violation::new("storage-decodes", Some(id), self.now, detail));
                return;
            }
        }
        slot.status = Status::Up;
        self.lifecycle(id, Lifecycle::Restarted);
        self.step(id, |node, ctx| node.on_start(ctx));
    }

    /// Runs one handler of node `id` and has the interpreter apply its effects.
    fn step(&mut self, id: NodeId, f: impl FnOnce(&mut S::Node, &mut Context<'_, S::Node>)) {
        let local = self.local_time(id);
        let Some(node) = self.slots[id.index()].node.as_mut() else {
            return;
        };
        let mut ctx = Context::new(id, self.n, local, &mut self.proto_rng, &mut self.effects);
        f(node, &mut ctx);
        let mut effects = std::mem::take(&mut self.effects);
        let mut interp = std::mem::take(&mut self.interp);
        let mut host = SimHost(self);
        for e in effects.drain(..) {
            interp.apply(&mut host, id, e);
        }
        self.interp = interp;
        self.effects = effects;
    }

    /// Hands one message to the network: one copy per destination, the last one moved.
    fn transmit_all(&mut self, from: NodeId, to: Targets<'_>, msg: Msg<S>, frame: &Frame<'_>) {
        let mut h = Digest::default();
        h.bytes(frame.payload());
        let (kind, bytes, hash) = (frame.kind as u16, frame.bytes() as u32, h.value());
        let mut left = to.len();
        let mut msg = Some(msg);
        to.for_each(|t| {
            left -= 1;
            let m = if left == 0 { msg.take() } else { msg.clone() };
            self.transmit(from, t, m.expect("one copy per destination"), kind, bytes, hash);
        });
    }

    /// Routes one copy (already checked and counted by the interpreter) to node `to`.
    fn transmit(&mut self, from: NodeId, to: NodeId, msg: Msg<S>, kind: u16, bytes: u32, hash: u64) {
        self.next_msg_id += 1;
        let id = self.next_msg_id;
        for w in [self.now.0, (from.0 as u64) << 32 | to.0 as u64, hash] {
            self.digest.word(w);
        }
        let at = self.now;
        let name = msg.kind();
        self.record(|| Rec::Send { id, from, to, kind: name, at });
        match self.net.route(from, to, self.now, &mut self.net_rng) {
            Fate::Partitioned | Fate::Lost => self.drop_message(to, kind as usize, id),
            Fate::Deliver(at, dup) => {
                if let Some(dup_at) = dup {
                    self.metrics.duplicated(kind as usize);
                    self.slots[to.index()].counters.duplicated += 1;
                    self.next_msg_id += 1;
                    let dup_id = self.next_msg_id;
                    let now = self.now;
                    self.record(|| Rec::Send { id: dup_id, from, to, kind: name, at: now });
                    self.queue
                        .push(dup_at, Event::Deliver { from, to, msg: msg.clone(), id: dup_id, bytes, kind });
                }
                self.queue.push(at, Event::Deliver { from, to, msg, id, bytes, kind });
            }
        }
    }
}

/// The simulator as the interpreter's host: its event queue, node slots, storage and checker.
struct SimHost<'a, S: Setup>(&'a mut Simulation<S>);

impl<S: Setup> Host<S::Node> for SimHost<'_, S> {
    type Deadline = Time;

    fn now(&self) -> Time {
        self.0.now
    }

    fn accounts(&mut self, node: NodeId) -> (&mut Metrics, &mut Counters) {
        let sim = &mut *self.0;
        (&mut sim.metrics, &mut sim.slots[node.index()].counters)
    }

    fn timers(&mut self, node: NodeId) -> &mut Timers<TimerOf<S>, Time> {
        &mut self.0.slots[node.index()].timers
    }

    fn deadline(&self, node: NodeId, after: Duration) -> Time {
        self.0.now.after(self.0.to_global(node, after))
    }

    fn timer_set(&mut self, node: NodeId, timer: TimerOf<S>, gen: u64, at: Time, _replaced: bool) {
        // A replaced setting's event stays queued; its stale generation makes it a no-op.
        self.0.queue.push(at, Event::Timer { node, timer, gen });
    }

    fn timer_cancelled(&mut self, _: NodeId) {}

    fn transmit(&mut self, from: NodeId, to: Targets<'_>, msg: Msg<S>, frame: &Frame<'_>) {
        self.0.transmit_all(from, to, msg, frame);
    }

    fn persist(&mut self, node: NodeId, write: Write) {
        let sim = &mut *self.0;
        let stable = &mut sim.slots[node.index()].stable;
        match write {
            Write::Put(key, value) => {
                sim.digest.bytes(key.as_bytes());
                sim.digest.bytes(&value);
                stable.put(key, value);
            }
            Write::Remove(key) => {
                sim.digest.bytes(key.as_bytes());
                stable.remove(&key);
            }
            Write::RemoveRange(from, to) => {
                sim.digest.bytes(from.as_bytes());
                sim.digest.bytes(to.as_bytes());
                stable.remove_range(&from, &to);
            }
        }
    }

    fn persist_later(&mut self, node: NodeId, key: String, value: Deferred, done: TimerOf<S>) {
        let sim = &mut *self.0;
        let value = value.compute();
        sim.next_later += 1;
        let wid = sim.next_later;
        let slot = &mut sim.slots[node.index()];
        let start = slot.disk_free.max(sim.now);
        let at = Time(start.0 + DISK_WRITE_NS + DISK_NS_PER_BYTE * value.len() as u64);
        slot.disk_free = at;
        slot.later.push_back((wid, key, value));
        sim.queue.push(at, Event::Written { node, id: wid, done });
    }

    fn synced(&mut self, node: NodeId, done: TimerOf<S>) {
        let sim = &mut *self.0;
        sim.next_later += 1;
        let id = sim.next_later;
        let delay = sim.disk_rng.random_range(0..=SYNC_MAX_NS);
        let slot = &mut sim.slots[node.index()];
        let at = Time(sim.now.0 + delay).max(slot.synced_at);
        slot.synced_at = at;
        slot.syncs.push_back(id);
        sim.queue.push(at, Event::Synced { node, id, done });
    }

    fn observe(&mut self, node: NodeId, obs: ObsOf<S>) {
        let sim = &mut *self.0;
        sim.scratch.clear();
        agora_core::wire::encode_into(&obs, &mut sim.scratch);
        sim.digest.bytes(&sim.scratch);
        if sim.recorder.is_some() {
            let (at, label) = (sim.now, format!("{obs:?}"));
            sim.record(|| Rec::Observe { node, at, label });
        }
        if let Err(v) = sim.checker.observe(sim.now, node, &obs) {
            if sim.violations.is_empty() {
                sim.violations.push(v);
            }
        }
        if sim.config.keep_observations {
            sim.observations.push((sim.now, node, obs));
        }
    }

    fn operation(&mut self, _: NodeId, op: OpId, end: bool) {
        let sim = &mut *self.0;
        if end {
            sim.metrics.op_end(op, sim.now);
        } else {
            sim.metrics.op_begin(op, sim.now);
        }
    }

    fn violation(&mut self, v: Violation) {
        self.0.violations.push(v);
    }
}
