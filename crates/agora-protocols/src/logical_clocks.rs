//! `lamport-clock` and `vector-clock`: logical clocks over a scenario of events.
//!
//! A **scenario** gives each process a list of events: an internal event (`PI`), the send of
//! message k (`MS<k>`) or its receipt (`MR<k>`). Processes run their lists in order in the
//! simulator; a receipt waits until its message arrives. The seed report's example is
//! [`SEED_SCENARIO`]; [`Scenario::random`] draws deadlock-free ones from a seed.
//!
//! **Lamport clocks** (Lamport, *Time, Clocks, and the Ordering of Events in a Distributed
//! System*, CACM 1978): an internal event or a send ticks the clock, a send carries it, a
//! receipt sets it to max(local, carried) + 1. *Clock condition*: if a happened before b,
//! C(a) < C(b) — not the converse.
//!
//! **Vector clocks** (Fidge 1988; Mattern 1989): each process counts its own events in its
//! entry; a receipt takes the element-wise maximum, then ticks. They *characterize*
//! happened-before: a → b if and only if V(a) < V(b); otherwise a and b are concurrent.
//!
//! **Checker.** Happened-before is computed from the scenario itself (program order plus
//! message edges, transitively), independently of the clocks, and every pair of executed
//! events is judged: *clock-condition* for Lamport clocks, *characterizes-causality* for vector
//! clocks (both at the end of the run).
//!
//! **Message complexity.** One message per send event.
//!
//! **Tolerates** duplication (a message is received once) and reordering. A lost message leaves
//! its receiver waiting, and the events after it unexecuted (they are simply not judged).

use agora_core::{
    Checker, Context, Corrupt, EndState, Message, NodeId, NotJudged, Property, PropertyKind, Protocol, Rng,
    Setup, Stable, Time, Violation,
};
use rand::{Rng as _, SeedableRng};
use serde::{Deserialize, Serialize};
use std::fmt;

/// One event of a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ev {
    /// `PI`: an internal event.
    Internal,
    /// `MS<k>`: the send of message `k` (each message is sent once, and received once).
    Send(u32),
    /// `MR<k>`: the receipt of message `k`; the process waits until it arrives.
    Recv(u32),
}

/// The seed report's example: three processes, four messages.
pub const SEED_SCENARIO: &str = "PI MS0 PI MR1 MS2; MR3 MR0 MS1; MS3 PI MR2";

/// Per process, its events in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// `processes[p]`: process `p`'s events, in program order.
    pub processes: Vec<Vec<Ev>>,
}

impl Scenario {
    /// Parses `PI MS0 MR1; MR0 MS1` (processes separated by `;` or newlines).
    pub fn parse(text: &str) -> Result<Scenario, String> {
        let text = if text == "seed" { SEED_SCENARIO } else { text };
        let mut processes = Vec::new();
        for line in text.split([';', '\n']).map(str::trim).filter(|l| !l.is_empty()) {
            let mut evs = Vec::new();
            for tok in line.split_whitespace() {
                let num = |s: &str| {
                    s.parse::<u32>().map_err(|_| format!("scenario: `{tok}` is not PI, MS<k> or MR<k>"))
                };
                evs.push(match tok {
                    "PI" => Ev::Internal,
                    t if t.starts_with("MS") => Ev::Send(num(&t[2..])?),
                    t if t.starts_with("MR") => Ev::Recv(num(&t[2..])?),
                    _ => return Err(format!("scenario: `{tok}` is not PI, MS<k> or MR<k>")),
                });
            }
            processes.push(evs);
        }
        let s = Scenario { processes };
        s.validate()?;
        Ok(s)
    }

    /// Every message is sent once and received once, by another process, and the scenario can
    /// run to its end (no process waits for a message that is sent only after that wait).
    pub fn validate(&self) -> Result<(), String> {
        use std::collections::HashMap;
        if self.processes.is_empty() {
            return Err("scenario: no processes".into());
        }
        let mut senders: HashMap<u32, usize> = HashMap::new();
        let mut receivers: HashMap<u32, usize> = HashMap::new();
        for (p, evs) in self.processes.iter().enumerate() {
            for e in evs {
                let (map, k) = match e {
                    Ev::Send(k) => (&mut senders, *k),
                    Ev::Recv(k) => (&mut receivers, *k),
                    Ev::Internal => continue,
                };
                if map.insert(k, p).is_some() {
                    return Err(format!("scenario: message {k} is sent or received twice"));
                }
            }
        }
        for (k, s) in &senders {
            match receivers.get(k) {
                None => return Err(format!("scenario: message {k} is sent but never received")),
                Some(r) if r == s => {
                    return Err(format!("scenario: process {s} sends message {k} to itself"))
                }
                _ => {}
            }
        }
        if let Some(k) = receivers.keys().find(|k| !senders.contains_key(k)) {
            return Err(format!("scenario: message {k} is received but never sent"));
        }
        // Run it abstractly: repeatedly execute any process whose next event can run.
        let mut next = vec![0usize; self.processes.len()];
        let mut sent = std::collections::HashSet::new();
        loop {
            let mut moved = false;
            for (p, evs) in self.processes.iter().enumerate() {
                while let Some(e) = evs.get(next[p]) {
                    match e {
                        Ev::Recv(k) if !sent.contains(k) => break,
                        Ev::Send(k) => {
                            sent.insert(*k);
                        }
                        _ => {}
                    }
                    next[p] += 1;
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
        if let Some(p) = (0..next.len()).find(|&p| next[p] < self.processes[p].len()) {
            return Err(format!("scenario: deadlock — process {p} waits forever at event {}", next[p]));
        }
        Ok(())
    }

    /// A random deadlock-free scenario: `events` events per process, about 30% internal, the
    /// rest sends and receipts of messages between random processes.
    pub fn random(processes: usize, events: usize, seed: u64) -> Scenario {
        let mut rng = Rng::seed_from_u64(seed ^ 0x636c_6f63_6b73);
        let mut procs = vec![Vec::new(); processes];
        let mut inbox: Vec<Vec<u32>> = vec![Vec::new(); processes];
        let mut next_msg = 0u32;
        let target = processes * events;
        let mut total = 0;
        let mut guard = 0;
        while total < target && guard < target * 20 {
            guard += 1;
            let p = rng.random_range(0..processes);
            if procs[p].len() >= events {
                continue;
            }
            let roll: f64 = rng.random();
            let ev = if !inbox[p].is_empty() && roll < 0.4 {
                let i = rng.random_range(0..inbox[p].len());
                Ev::Recv(inbox[p].swap_remove(i))
            } else if processes > 1 && roll < 0.75 && total + 1 < target {
                let mut q = rng.random_range(0..processes - 1);
                if q >= p {
                    q += 1;
                }
                inbox[q].push(next_msg);
                next_msg += 1;
                Ev::Send(next_msg - 1)
            } else {
                Ev::Internal
            };
            procs[p].push(ev);
            total += 1;
        }
        // Messages still in flight are received last.
        for (q, msgs) in inbox.into_iter().enumerate() {
            for k in msgs {
                procs[q].push(Ev::Recv(k));
            }
        }
        Scenario { processes: procs }
    }

    /// The global index of event `i` of process `p` (processes' lists laid end to end), as in
    /// the seed report's `PI_p_g` names.
    pub fn global(&self, p: usize, i: usize) -> usize {
        self.processes[..p].iter().map(Vec::len).sum::<usize>() + i
    }

    /// The seed report's name of an event: `PI_p_g`, `MS_k`, `MR_k`.
    pub fn name(&self, p: usize, i: usize) -> String {
        match self.processes[p][i] {
            Ev::Internal => format!("PI_{p}_{}", self.global(p, i)),
            Ev::Send(k) => format!("MS_{k}"),
            Ev::Recv(k) => format!("MR_{k}"),
        }
    }

    /// `hb[a][b]`: event a happened before event b (global indices), from program order and
    /// message edges, transitively.
    pub fn happened_before(&self) -> Vec<Vec<bool>> {
        let n: usize = self.processes.iter().map(Vec::len).sum();
        let mut hb = vec![vec![false; n]; n];
        let mut send_of = std::collections::HashMap::new();
        for (p, evs) in self.processes.iter().enumerate() {
            for (i, e) in evs.iter().enumerate() {
                if let Ev::Send(k) = e {
                    send_of.insert(*k, self.global(p, i));
                }
            }
        }
        for (p, evs) in self.processes.iter().enumerate() {
            for (i, e) in evs.iter().enumerate() {
                let b = self.global(p, i);
                if i > 0 {
                    hb[self.global(p, i - 1)][b] = true;
                }
                if let Ev::Recv(k) = e {
                    hb[send_of[k]][b] = true;
                }
            }
        }
        // Transitive closure (Floyd–Warshall on booleans).
        for k in 0..n {
            let via = hb[k].clone();
            for row in hb.iter_mut() {
                if row[k] {
                    for (cell, v) in row.iter_mut().zip(&via) {
                        *cell |= *v;
                    }
                }
            }
        }
        hb
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (p, evs) in self.processes.iter().enumerate() {
            if p > 0 {
                f.write_str("; ")?;
            }
            let toks: Vec<String> = evs
                .iter()
                .map(|e| match e {
                    Ev::Internal => "PI".to_string(),
                    Ev::Send(k) => format!("MS{k}"),
                    Ev::Recv(k) => format!("MR{k}"),
                })
                .collect();
            f.write_str(&toks.join(" "))?;
        }
        Ok(())
    }
}

/// Which clock a node keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockKind {
    /// Lamport's scalar clock.
    Lamport,
    /// A vector clock with one entry per process.
    Vector,
}

/// A timestamp: a Lamport clock or a vector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stamp {
    /// A Lamport clock's value.
    Lamport(u64),
    /// A vector clock's value: `v[p]` counts process `p`'s events known.
    Vector(Vec<u64>),
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stamp::Lamport(c) => write!(f, "({c})"),
            Stamp::Vector(v) => {
                let parts: Vec<String> = v.iter().map(u64::to_string).collect();
                write!(f, "[{}]", parts.join(","))
            }
        }
    }
}

/// `a < b` for vectors: every entry ≤ and at least one <.
pub fn vector_less(a: &[u64], b: &[u64]) -> bool {
    a.iter().zip(b).all(|(x, y)| x <= y) && a.iter().zip(b).any(|(x, y)| x < y)
}

/// Message `k` of the scenario, with its sender's timestamp.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockMsg {
    /// The message's number in the scenario.
    pub k: u32,
    /// The sender's clock at the send event.
    pub stamp: Stamp,
}

impl Message for ClockMsg {
    fn kind(&self) -> &'static str {
        "MSG"
    }
}

/// "Process `p` executed its event `i` with this timestamp."
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Executed {
    /// The event's index in the process's list.
    pub i: u32,
    /// The process's clock after the event.
    pub stamp: Stamp,
}

/// A process of a scenario, running its events in order with a logical clock.
pub struct LogicalClock {
    id: NodeId,
    kind: ClockKind,
    events: Vec<Ev>,
    next: usize,
    lamport: u64,
    vector: Vec<u64>,
    /// Messages that arrived before their receive event: (k, stamp).
    arrived: Vec<(u32, Stamp)>,
    received: Vec<u32>,
    /// Receiver of each message, by message number.
    receivers: std::sync::Arc<std::collections::HashMap<u32, NodeId>>,
}

impl LogicalClock {
    fn stamp(&self) -> Stamp {
        match self.kind {
            ClockKind::Lamport => Stamp::Lamport(self.lamport),
            ClockKind::Vector => Stamp::Vector(self.vector.clone()),
        }
    }

    fn tick(&mut self) {
        self.lamport += 1;
        self.vector[self.id.index()] += 1;
    }

    fn merge(&mut self, s: &Stamp) {
        match s {
            Stamp::Lamport(c) => self.lamport = self.lamport.max(*c),
            Stamp::Vector(v) => {
                for (mine, theirs) in self.vector.iter_mut().zip(v) {
                    *mine = (*mine).max(*theirs);
                }
            }
        }
    }

    /// Executes events until the next receipt whose message has not arrived.
    fn run(&mut self, ctx: &mut Context<'_, Self>) {
        while let Some(&e) = self.events.get(self.next) {
            match e {
                Ev::Internal => self.tick(),
                Ev::Send(k) => {
                    self.tick();
                    ctx.send(self.receivers[&k], ClockMsg { k, stamp: self.stamp() });
                }
                Ev::Recv(k) => {
                    let Some(pos) = self.arrived.iter().position(|(m, _)| *m == k) else { return };
                    let (_, stamp) = self.arrived.swap_remove(pos);
                    self.merge(&stamp);
                    self.tick();
                    self.received.push(k);
                }
            }
            ctx.observe(Executed { i: self.next as u32, stamp: self.stamp() });
            self.next += 1;
        }
    }
}

impl Protocol for LogicalClock {
    type Msg = ClockMsg;
    type Timer = ();
    type Obs = Executed;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        self.run(ctx);
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, _: NodeId, m: ClockMsg) {
        if self.received.contains(&m.k) || self.arrived.iter().any(|(k, _)| *k == m.k) {
            return; // a duplicate
        }
        self.arrived.push((m.k, m.stamp));
        self.run(ctx);
    }

    fn on_timer(&mut self, _: &mut Context<'_, Self>, _: ()) {}
}

/// A run of a scenario with one kind of clock.
pub struct LogicalClockSetup {
    /// Which clock every process keeps.
    pub kind: ClockKind,
    /// The events each process runs; the cluster has one node per process.
    pub scenario: Scenario,
}

impl LogicalClockSetup {
    fn receivers(&self) -> std::collections::HashMap<u32, NodeId> {
        let mut r = std::collections::HashMap::new();
        for (p, evs) in self.scenario.processes.iter().enumerate() {
            for e in evs {
                if let Ev::Recv(k) = e {
                    r.insert(*k, NodeId(p as u32));
                }
            }
        }
        r
    }
}

impl Setup for LogicalClockSetup {
    type Node = LogicalClock;

    fn name(&self) -> &'static str {
        match self.kind {
            ClockKind::Lamport => "lamport-clock",
            ClockKind::Vector => "vector-clock",
        }
    }

    fn nodes(&self) -> usize {
        self.scenario.processes.len()
    }

    fn build(&self, id: NodeId, _: &Stable) -> Result<LogicalClock, Corrupt> {
        Ok(LogicalClock {
            id,
            kind: self.kind,
            events: self.scenario.processes[id.index()].clone(),
            next: 0,
            lamport: 0,
            vector: vec![0; self.nodes()],
            arrived: Vec::new(),
            received: Vec::new(),
            receivers: std::sync::Arc::new(self.receivers()),
        })
    }

    fn fault_model(&self) -> agora_core::FaultModel {
        // A message is received once; loss leaves later events unexecuted (not judged).
        use agora_core::FaultModel;
        FaultModel { loss: true, duplication: true, reordering: true, partitions: true, ..FaultModel::NONE }
    }

    fn checker(&self) -> Box<dyn Checker<LogicalClock>> {
        Box::new(ClockChecker {
            kind: self.kind,
            hb: self.scenario.happened_before(),
            scenario: self.scenario.clone(),
            stamps: Vec::new(),
        })
    }
}

/// Judges clocks against happened-before computed from the scenario.
pub struct ClockChecker {
    kind: ClockKind,
    scenario: Scenario,
    hb: Vec<Vec<bool>>,
    /// (global index, stamp) of every executed event.
    stamps: Vec<(usize, Stamp)>,
}

impl Checker<LogicalClock> for ClockChecker {
    fn properties(&self) -> Vec<Property> {
        match self.kind {
            ClockKind::Lamport => vec![Property {
                name: "clock-condition",
                kind: PropertyKind::AtEnd,
                description: "if a happened before b then C(a) < C(b)",
            }],
            ClockKind::Vector => vec![Property {
                name: "characterizes-causality",
                kind: PropertyKind::AtEnd,
                description: "a happened before b if and only if V(a) < V(b)",
            }],
        }
    }

    fn observe(&mut self, _: Time, node: NodeId, obs: &Executed) -> Result<(), Violation> {
        self.stamps.push((self.scenario.global(node.index(), obs.i as usize), obs.stamp.clone()));
        Ok(())
    }

    /// Judged over whatever executed, whenever the run ended.
    fn not_judged(&self, _: &EndState<'_>) -> Vec<(&'static str, NotJudged)> {
        Vec::new()
    }

    fn finish(&mut self, end: &EndState<'_>) -> Vec<Violation> {
        let name = |g: usize| {
            let mut g2 = g;
            for (p, evs) in self.scenario.processes.iter().enumerate() {
                if g2 < evs.len() {
                    return self.scenario.name(p, g2);
                }
                g2 -= evs.len();
            }
            format!("#{g}")
        };
        for (a, sa) in &self.stamps {
            for (b, sb) in &self.stamps {
                if a == b {
                    continue;
                }
                let before = self.hb[*a][*b];
                let bad = match (sa, sb) {
                    (Stamp::Lamport(x), Stamp::Lamport(y)) => before && x >= y,
                    (Stamp::Vector(x), Stamp::Vector(y)) => before != vector_less(x, y),
                    _ => true,
                };
                if bad {
                    let (prop, what) = match self.kind {
                        ClockKind::Lamport => ("clock-condition", "happened before"),
                        ClockKind::Vector => (
                            "characterizes-causality",
                            if before { "happened before" } else { "did not happen before" },
                        ),
                    };
                    return vec![Violation::new(
                        prop,
                        None,
                        end.at,
                        format!("{} {sa} {what} {} {sb}", name(*a), name(*b)),
                    )];
                }
            }
        }
        Vec::new()
    }
}

impl crate::registry::FromParams for LogicalClockSetup {
    const SPECS: &'static [crate::params::Spec] = {
        use crate::params::{count, text, Spec, MSGS, SCENARIO};
        &[Spec::new(&SCENARIO, text("random")), Spec::new(&MSGS, count(8))]
    };
    /// The scenario's processes are the nodes: a given scenario needs as many nodes.
    fn from_params(p: &crate::params::Resolved) -> Result<Self, crate::params::ParamError> {
        use crate::params::{ParamError, MSGS, SCENARIO};
        let scenario = match p.text(&SCENARIO).unwrap_or("random") {
            "random" => {
                let events: u64 = p.count(&MSGS);
                p.at_most_nodes(200, "processes in a random clock scenario")?;
                if events > 200 {
                    return Err(ParamError::invalid(
                        &MSGS,
                        format!("{events}: at most 200 events per process"),
                    ));
                }
                Scenario::random(p.nodes, events as usize, p.seed)
            }
            text => Scenario::parse(text).map_err(|e| ParamError::invalid(&SCENARIO, e))?,
        };
        if scenario.processes.len() != p.nodes {
            return Err(ParamError::nodes(format!(
                "{}: the scenario has {} processes; run it with as many nodes",
                p.nodes,
                scenario.processes.len()
            )));
        }
        let kind = if p.protocol == "vector-clock" { ClockKind::Vector } else { ClockKind::Lamport };
        Ok(LogicalClockSetup { kind, scenario })
    }
}
