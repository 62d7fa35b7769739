//! From node reports to one `RunSummary`: merged metrics, and the protocol's checker run over
//! every node's observations in time order.
//!
//! The same code serves `agora run` (all reports from one process) and `agora up` (reports
//! gathered from node processes as [`NodeOutput`] JSON).

use crate::faults::{FaultState, Happened};
use crate::node::NodeReport;
use agora_core::{
    Checker, Counters, EndState, KindRow, Lifecycle, Metrics, NodeId, Protocol, RunSummary, Setup, Time,
    Violation, ViolationReport,
};
use serde::{Deserialize, Serialize};

/// One node's results in a form that crosses process boundaries (`agora node --json`).
#[derive(Serialize, Deserialize)]
#[serde(bound = "O: Serialize + serde::de::DeserializeOwned")]
pub struct NodeOutput<O> {
    /// The node's id.
    pub node: u32,
    /// The protocol's CLI name.
    pub protocol: String,
    /// Why the node's run ended ([`crate::End::as_str`]).
    pub end: String,
    /// The node's counters per message type.
    pub by_kind: Vec<KindRow>,
    /// The node's message counters.
    pub counters: Counters,
    /// `(operation, begin Unix ns or none, last end Unix ns or none)`.
    pub ops: Vec<(u64, Option<u64>, Option<u64>)>,
    /// `(Unix ns, observation)`.
    pub observations: Vec<(u64, O)>,
    /// Messages dropped because a send queue was full (already counted in `counters.dropped`).
    pub queue_full: u64,
    /// Messages lost in a connection that broke.
    pub lost: u64,
    /// Handler steps the node ran: start, messages, timers.
    pub events: u64,
    /// Durable transactions (fsyncs).
    #[serde(default)]
    pub commits: u64,
    /// Wall-clock milliseconds the node ran.
    pub wall_ms: f64,
    /// CPU milliseconds (user + system) of the node's process.
    pub cpu_ms: f64,
    /// Unix ns when the node started.
    pub started_unix_ns: u64,
    /// When this node last handled an event.
    pub last_active_unix_ns: u64,
    /// Rules every driver enforces that the node's protocol broke (see `NodeReport`).
    #[serde(default)]
    pub violations: Vec<NodeViolation>,
}

/// A violation the node's driver found, in a form that crosses process boundaries.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeViolation {
    /// The name of the rule broken (`valid-destination`, `frame-limit`, `wire-round-trip`).
    pub property: String,
    /// The node that broke it.
    pub node: Option<u32>,
    /// When, in Unix ns.
    pub unix_ns: u64,
    /// What was seen, in words.
    pub detail: String,
}

impl<O: Clone> NodeOutput<O> {
    /// The output of node report `r`, with the run's facts the report does not hold (ns since the
    /// Unix epoch, milliseconds of wall and CPU time).
    pub fn from_report(
        r: &NodeReport<O>,
        protocol: &str,
        end: &str,
        wall_ms: f64,
        cpu_ms: f64,
        started_unix_ns: u64,
        last_active_unix_ns: u64,
    ) -> Self {
        NodeOutput {
            node: r.id.0,
            protocol: protocol.to_string(),
            end: end.to_string(),
            by_kind: r
                .metrics
                .by_kind()
                .iter()
                .map(|(k, c)| KindRow { kind: k.to_string(), counters: *c })
                .collect(),
            counters: r.counters,
            ops: r
                .metrics
                .op_events()
                .map(|(op, b, e)| (op, (b != Time::MAX).then_some(b.0), e.map(|e| e.0)))
                .collect(),
            observations: r.observations.clone(),
            queue_full: r.queue_full,
            lost: r.lost,
            events: r.events,
            commits: r.commits,
            wall_ms,
            cpu_ms,
            started_unix_ns,
            last_active_unix_ns,
            violations: r
                .violations
                .iter()
                .map(|(t, v)| NodeViolation {
                    property: v.property.to_string(),
                    node: v.node.map(|n| n.0),
                    unix_ns: *t,
                    detail: v.detail.clone(),
                })
                .collect(),
        }
    }
}

/// Everything needed to summarize a runtime run, gathered from all its nodes.
pub struct Gathered<O> {
    /// The cluster size.
    pub nodes: usize,
    /// The run's metrics, every node's merged: counters by message type name, operations by id
    /// (earliest begin, latest end).
    pub metrics: Metrics,
    /// Each node's counters, in id order (zero for a node that did not report).
    pub per_node: Vec<Counters>,
    /// `(Unix ns, node, observation)`.
    pub observations: Vec<(u64, NodeId, O)>,
    /// Messages lost in connections that broke, all nodes together.
    pub lost: u64,
    /// Handler steps, all nodes together.
    pub events: u64,
    /// Durable transactions (fsyncs), all nodes together.
    pub commits: u64,
    /// Why the run ended, as the summary spells it.
    pub end: String,
    /// Wall-clock milliseconds the run took.
    pub wall_ms: f64,
    /// CPU milliseconds of the run: this process's, plus each node process's output.
    pub cpu_ms: f64,
    /// Unix ns when the run started: observation times count from it.
    pub started_unix_ns: u64,
    /// Nodes that reported (a node killed before reporting is missing).
    pub reported: Vec<bool>,
    /// `(Unix ns, violation)` the nodes' drivers found.
    pub violations: Vec<(u64, Violation)>,
    /// `(Unix ns, node, event)`: a node's process killed and started again, when the history
    /// spans several of its runs (read back from logs); the checker hears of them in time
    /// order with the observations, as it does in the simulator, each `Crashed` after being
    /// told that the node's last reports may be lost (`Checker::reports_lost`).
    pub lifecycle: Vec<(u64, NodeId, Lifecycle)>,
    /// The faults injected while the run went (a live view's controls), in time order.
    pub faults: Vec<(u64, Happened)>,
}

impl<O> Gathered<O> {
    /// Nothing gathered yet, for a run of `nodes` nodes.
    pub fn new(nodes: usize, end: &str, wall_ms: f64, cpu_ms: f64, started_unix_ns: u64) -> Self {
        Gathered {
            nodes,
            metrics: Metrics::new(),
            per_node: vec![Counters::default(); nodes],
            observations: Vec::new(),
            lost: 0,
            events: 0,
            commits: 0,
            end: end.to_string(),
            wall_ms,
            cpu_ms,
            started_unix_ns,
            reported: vec![false; nodes],
            violations: Vec::new(),
            lifecycle: Vec::new(),
            faults: Vec::new(),
        }
    }

    /// Everything an in-process run (`run_local`) of `nodes` nodes reported.
    pub fn from_run(nodes: usize, out: crate::RunOutcome<O>) -> Self {
        let mut g = Gathered::new(
            nodes,
            out.end.as_str(),
            out.wall.as_secs_f64() * 1e3,
            out.cpu_ms,
            out.started_unix_ns,
        );
        g.faults = out.faults;
        // Room for them all at once: growing by doubling would hold up to twice the run's
        // observations, most of a long run's memory.
        g.observations.reserve_exact(out.reports.iter().map(|r| r.observations.len()).sum());
        for r in out.reports {
            g.add_report(r);
        }
        g
    }

    /// Adds one node's in-process report.
    pub fn add_report(&mut self, r: NodeReport<O>) {
        self.metrics.merge(&r.metrics);
        self.per_node[r.id.index()] = r.counters;
        self.reported[r.id.index()] = true;
        self.lost += r.lost;
        self.events += r.events;
        self.commits += r.commits;
        self.observations.extend(r.observations.into_iter().map(|(t, o)| (t, r.id, o)));
        self.violations.extend(r.violations);
    }

    /// Adds one node process's output.
    pub fn add_output(&mut self, o: NodeOutput<O>) {
        let mut m = Metrics::new();
        for row in &o.by_kind {
            let i = m.kind_index(intern(&row.kind));
            m.add_counters(i, &row.counters);
        }
        for (op, begin, end) in &o.ops {
            if let Some(b) = begin {
                m.op_begin(*op, Time(*b));
            }
            if let Some(e) = end {
                m.op_end_unmatched(*op, Time(*e));
            }
        }
        self.metrics.merge(&m);
        let id = NodeId(o.node);
        if id.index() < self.nodes {
            self.per_node[id.index()] = o.counters;
            self.reported[id.index()] = true;
        }
        self.lost += o.lost;
        self.events += o.events;
        self.commits += o.commits;
        self.cpu_ms += o.cpu_ms;
        self.observations.extend(o.observations.into_iter().map(|(t, obs)| (t, id, obs)));
        self.violations.extend(o.violations.into_iter().map(|v| {
            let at = Time(v.unix_ns);
            (v.unix_ns, Violation::new(intern(&v.property), v.node.map(NodeId), at, v.detail))
        }));
    }
}

/// A `'static` copy of a message type name read from a node's output. Names are protocol
/// constants, so the table stays as small as the set of message types.
fn intern(name: &str) -> &'static str {
    static NAMES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut names = NAMES.lock().expect("intern lock");
    if let Some(n) = names.iter().find(|n| **n == name) {
        return n;
    }
    let n: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.push(n);
    n
}

/// The summary of one node's run (`agora node` alone): its counters and operations, with no
/// property judged. Properties are judged over every node's observations (a client's
/// acknowledgement is checked against what the replicas applied), so one node's alone would
/// report violations that did not happen; `agora up` judges them all.
pub fn summarize_alone<S: Setup>(
    setup: &S,
    seed: u64,
    g: Gathered<<S::Node as Protocol>::Obs>,
) -> RunSummary {
    let mut summary = metrics_summary(setup, seed, &g);
    let properties = setup.checker().properties();
    let alone: Vec<_> = properties.iter().map(|p| (p.name, agora_core::NotJudged::OneNode)).collect();
    summary.judged(&properties, &alone);
    summary
}

/// The summary's counters, times and operations, before any judging.
fn metrics_summary<S: Setup, O>(setup: &S, seed: u64, g: &Gathered<O>) -> RunSummary {
    let mut summary = RunSummary::from_metrics(
        setup.name(),
        "tcp",
        g.nodes,
        seed,
        &g.end,
        &g.metrics,
        &g.per_node,
        // In the runtime, "virtual" time is the wall time the run took.
        g.wall_ms,
        g.wall_ms,
        g.events,
    );
    summary.messages_dropped += g.lost;
    summary.cpu_ms = Some(g.cpu_ms);
    summary.fsyncs = (g.commits > 0).then_some(g.commits);
    summary
}

/// Tells `checker` of a lifecycle event of a history read back from logs: a crash there is a
/// process killed from outside, whose last reports may be lost.
fn tell<P: Protocol + ?Sized>(checker: &mut dyn Checker<P>, at: Time, node: NodeId, event: Lifecycle) {
    if event == Lifecycle::Crashed {
        checker.reports_lost(at, node);
    }
    checker.lifecycle(at, node, event);
}

/// Runs the protocol's checker over the gathered observations and builds the summary: the
/// violations the nodes' drivers found come first, in time order, then the checker's.
pub fn summarize<S: Setup>(
    setup: &S,
    seed: u64,
    g: Gathered<<S::Node as Protocol>::Obs>,
    reproduce: &str,
) -> RunSummary {
    summarize_keeping(setup, seed, g, reproduce).0
}

/// `(Unix ns, node, observation)`: a run's observations, every node's.
pub type Observations<O> = Vec<(u64, NodeId, O)>;

/// [`summarize`], and all the observations, sorted as judged (by time, then node), for a
/// command that reads them again for its report: handed back, not copied, since a long run's
/// observations are most of its memory.
pub fn summarize_keeping<S: Setup>(
    setup: &S,
    seed: u64,
    mut g: Gathered<<S::Node as Protocol>::Obs>,
    reproduce: &str,
) -> (RunSummary, Observations<<S::Node as Protocol>::Obs>) {
    let mut checker: Box<dyn Checker<S::Node>> = setup.checker();
    g.observations.sort_by_key(|(t, n, _)| (*t, *n));
    let rel = |t: u64| Time(t.saturating_sub(g.started_unix_ns));
    g.violations.sort_by_key(|(t, v)| (*t, v.node));
    let driver: Vec<Violation> = g.violations.drain(..).map(|(t, v)| Violation { at: rel(t), ..v }).collect();
    // The checker learns of each crash, restart and pause where it falls among the
    // observations (a crashed node's observations all come before its crash; a lifecycle
    // event comes before an observation of the same time). A process killed outside this
    // run (read back from logs) may have lost its last reports; a node the live view's
    // controls crashed stopped between two batches and lost none.
    let mut events: Vec<(u64, NodeId, Lifecycle, bool)> =
        g.lifecycle.iter().map(|&(t, n, e)| (t, n, e, true)).collect();
    events.extend(g.faults.iter().filter_map(|(t, h)| match h {
        Happened::Life(n, e) => Some((*t, *n, *e, false)),
        _ => None,
    }));
    events.sort_by_key(|&(t, n, _, _)| (t, n));
    let mut events = events.into_iter().peekable();
    let mut lifecycle = |checker: &mut Box<dyn Checker<S::Node>>, upto: u64| {
        while let Some((t, n, e, from_logs)) = events.next_if(|(t, ..)| *t <= upto) {
            if from_logs {
                tell(&mut **checker, rel(t), n, e);
            } else {
                checker.lifecycle(rel(t), n, e);
            }
        }
    };
    let mut violations = Vec::new();
    for (t, node, obs) in &g.observations {
        lifecycle(&mut checker, *t);
        if let Err(v) = checker.observe(rel(*t), *node, obs) {
            violations.push(v);
            break;
        }
    }
    if violations.is_empty() {
        lifecycle(&mut checker, u64::MAX);
        // A node that never reported was killed: its last observations may be missing.
        for i in (0..g.nodes).filter(|&i| !g.reported[i]) {
            checker.reports_lost(Time((g.wall_ms * 1e6) as u64), NodeId(i as u32));
        }
    }
    let faulted = FaultState::of(g.nodes, &g.faults, g.started_unix_ns);
    let mut summary = metrics_summary(setup, seed, &g);
    summary.outside_model = faulted.kinds.outside(&setup.fault_model());
    let mut not_judged =
        agora_core::at_end_not_judged(&checker.properties(), agora_core::NotJudged::AfterViolation);
    // As in the simulator, where the first violation ends the run, a run in which a node broke
    // a driver's rule is not judged at its end. Nor is a history read from nodes that still run
    // (`agora cluster status`): it has no end, and what must hold eventually may yet happen
    // (a follower applies what the leader acknowledged a moment before the logs were cut).
    let still_running = g.end == "running";
    if still_running {
        not_judged = agora_core::at_end_not_judged(
            &checker.properties(),
            if violations.is_empty() {
                agora_core::NotJudged::Unended
            } else {
                agora_core::NotJudged::AfterViolation
            },
        );
    }
    if violations.is_empty() && driver.is_empty() && !still_running {
        let live: Vec<bool> = (0..g.nodes).map(|i| g.reported[i] && !faulted.down_at_end[i]).collect();
        let crashed: Vec<bool> = (0..g.nodes).map(|i| !g.reported[i] || faulted.crashed_ever[i]).collect();
        let end = EndState {
            at: Time((g.wall_ms * 1e6) as u64),
            live: &live,
            crashed_ever: &crashed,
            // A message sent and never delivered (a peer unreachable, a refused handshake, a
            // cut link) is as lost as a dropped one.
            network_reliable: summary.messages_dropped == 0
                && summary.messages_delivered >= summary.messages_sent
                && !faulted.any_cut,
            quiescent: matches!(g.end.as_str(), "quiescent" | "idle"),
            observed_all: matches!(g.end.as_str(), "quiescent" | "idle"),
            last_fault: if faulted.last_unix_ns == 0 { Time::ZERO } else { rel(faulted.last_unix_ns) },
            partitioned: faulted.cut_at_end,
            timely: true,
        };
        not_judged = checker.not_judged(&end);
        violations = checker.finish(&end);
    }
    let violated = |p: &str| driver.iter().chain(&violations).any(|v| v.property == p);
    not_judged.extend(checker.undecided().into_iter().filter(|(p, _)| !violated(p)));
    summary.judged(&checker.properties(), &not_judged);
    summary.violations = driver
        .iter()
        .chain(&violations)
        .map(|v| ViolationReport::new(v, seed, reproduce.to_string()))
        .collect();
    (summary, g.observations)
}
