//! The verdict of the nemesis on a system whose nodes log their own history (a market, an
//! election; [`history`](super::super::history)): the faults, the system's checker on every
//! node's history (killed runs included), and the system's own properties once the faults are
//! healed; printed as text or one JSON object, with the timeline of its operations.

use super::super::history::NodeLog;
use super::faults::Faults;
use super::report::{self, FaultRun, HistOp};
use super::{apply_all, schedule, unix_ns, Clock};
use crate::cli::ClusterNemesisArgs;
use crate::commands::shared::create_dir;
use crate::commands::shared::tcp::runtime;
use crate::error::UserError;
use agora_core::RunSummary;
use agora_lincheck::Kind;
use serde::Serialize;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;

/// A property and its verdict.
#[derive(Debug, Serialize)]
pub struct Property {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// Everything the run found.
pub struct Outcome {
    pub cluster: String,
    /// `market`, `election`.
    pub system: &'static str,
    pub seed: u64,
    pub interrupted: bool,
    pub runs: Vec<FaultRun>,
    pub healed_at_s: f64,
    pub heal_errors: Vec<String>,
    /// The system's checker on the history; none for a system whose nodes do not log it
    /// (the voting service: its members' own checks are in `after`).
    pub checks: Option<RunSummary>,
    /// The workload's operations, from the history.
    pub ops: Vec<HistOp>,
    /// What an operation is, plural (`buys`, `ballots`).
    pub what: &'static str,
    pub start_ns: u64,
    /// The system's own properties once every fault is healed.
    pub after: Vec<Property>,
    /// More of the JSON object.
    pub extra: Vec<(&'static str, serde_json::Value)>,
}

/// A schedule run on a system whose workload is its own, every fault healed.
pub struct Broken {
    /// The runtime of the clock's Ctrl-C watch, kept while the clock is used.
    pub _rt: tokio::runtime::Runtime,
    pub clock: Clock,
    /// Dropped once the run is over.
    pub stop: std::sync::mpsc::Sender<()>,
    pub runs: Vec<FaultRun>,
    /// When every fault was healed (Unix ns), and why that last healing failed.
    pub healed_ns: u64,
    pub last_heal: Option<String>,
}

/// Draws the schedule of `a` over `nodes` nodes, prints it (`workload`: what the operations
/// are), applies every fault, each healed when it ends (`leader`: the node a fault on the
/// leader hits), and heals everything once more.
pub fn break_and_heal(
    a: &ClusterNemesisArgs,
    name: &str,
    nodes: usize,
    workload: &str,
    faults: &Faults,
    leader: &dyn Fn() -> Option<usize>,
) -> Result<Broken, UserError> {
    let plan =
        schedule::draw(&a.faults, nodes, a.duration, std::time::Duration::from_millis(a.interval_ms), a.seed);
    if !a.dir.json {
        print!("{}", report::schedule_text(name, a, workload, &plan));
    }
    if let Some(out) = &a.out {
        create_dir(out)?;
    }
    let rt = runtime()?;
    let (mut clock, stop) = Clock::start(&rt);
    let runs = apply_all(faults, &plan, &mut clock, a.dir.json, leader);
    let healed_ns = unix_ns();
    let last_heal = faults.heal().err().map(|e| e.msg);
    Ok(Broken { _rt: rt, clock, stop, runs, healed_ns, last_heal })
}

/// The workload's operations in the logs: each from the observation `begins` gives a key for
/// to the first after it at the same node that `ends` gives the same key for (none: `info`).
pub fn operations(
    logs: &[NodeLog],
    begins: impl Fn(&serde_json::Value) -> Option<u64>,
    ends: impl Fn(&serde_json::Value) -> Option<u64>,
) -> Vec<HistOp> {
    let mut ops = Vec::new();
    let mut open: HashMap<(usize, u64), usize> = HashMap::new();
    let mut events: Vec<(u64, usize, &serde_json::Value)> =
        logs.iter().flat_map(|l| l.obs.iter().map(move |(t, o)| (*t, l.node, o))).collect();
    events.sort_by_key(|(t, n, _)| (*t, *n));
    for (t, node, o) in events {
        if let Some(key) = begins(o) {
            open.insert((node, key), ops.len());
            ops.push(HistOp { begin: t, end: None, kind: Kind::Info });
        } else if let Some(i) = ends(o).and_then(|key| open.remove(&(node, key))) {
            ops[i].end = Some(t);
            ops[i].kind = Kind::Ok;
        }
    }
    ops
}

/// What went wrong healing: each fault's, the last healing's, and nodes that came back at
/// another address (their peers resolved names once and do not follow).
pub fn heal_errors(
    runs: &[FaultRun],
    last_heal: Option<String>,
    moved: &[(usize, Option<IpAddr>)],
) -> Vec<String> {
    let mut out: Vec<String> = runs.iter().filter_map(|r| r.heal_error.clone()).chain(last_heal).collect();
    out.extend(moved.iter().map(|(n, ip)| match ip {
        Some(ip) => format!("n{n} came back at another address, {ip}: its peers do not follow"),
        None => format!("n{n} has no address on the cluster's network"),
    }));
    out
}

impl Outcome {
    fn properties(&self) -> Vec<Property> {
        let applied = self.runs.iter().filter(|r| r.error.is_none()).count();
        let mut p = vec![
            Property {
                name: "faults applied".into(),
                ok: applied == self.runs.len() && !self.runs.is_empty(),
                detail: format!("{applied} of {} applied", self.runs.len()),
            },
            Property {
                name: "healed".into(),
                ok: self.heal_errors.is_empty(),
                detail: if self.heal_errors.is_empty() {
                    format!("every fault undone at {:.2} s", self.healed_at_s)
                } else {
                    self.heal_errors.join("; ")
                },
            },
        ];
        // The checker's properties judged on the history, each ok or its violation. The checker
        // stops at its first violation: the others held until then.
        let Some(checks) = &self.checks else { return p };
        let first = checks.violations.first();
        for name in &checks.properties {
            let broken = checks.violations.iter().find(|v| v.property == *name);
            let held = match first {
                None => "the checker, on every node's history".to_string(),
                Some(v) => format!("held until the checker's first violation, at {:.0} ms", v.at_ms),
            };
            p.push(Property {
                name: name.clone(),
                ok: broken.is_none(),
                detail: broken
                    .map_or(held, |v| format!("at {:.0} ms, node {:?}: {}", v.at_ms, v.node, v.detail)),
            });
        }
        p
    }

    /// Prints the outcome (and writes `out`'s files); the exit code: 0 if every property held.
    pub fn print(self, json: bool, out: Option<&Path>) -> Result<i32, UserError> {
        let mut props = self.properties();
        props.extend(self.after);
        let code = i32::from(props.iter().any(|p| !p.ok));
        let answered = self.ops.iter().filter(|o| o.kind == Kind::Ok).count();
        let mut v = serde_json::json!({
            "cluster": self.cluster,
            "system": self.system,
            "seed": self.seed,
            "interrupted": self.interrupted,
            "faults": self.runs,
            "healed_at_s": self.healed_at_s,
            "properties": props,
            "not_judged": self.checks.as_ref().map_or(&[][..], |c| &c.not_judged[..]),
            "ok": code == 0,
        });
        v[self.what] = serde_json::json!({ "answered": answered, "unanswered": self.ops.len() - answered });
        for (k, x) in self.extra {
            v[k] = x;
        }
        let drawn = report::timeline(&self.ops, &self.runs, self.start_ns);
        let Some(mut t) = report::emit(&v, json, out, self.interrupted, &drawn, self.what)? else {
            return Ok(code);
        };
        let _ = writeln!(t, "{:<8} {answered} answered, {} not (yet)", self.what, self.ops.len() - answered);
        let _ = writeln!(
            t,
            "faults   (times in s from the start; the {} begun meanwhile: ok answered, info not)",
            self.what
        );
        for r in &self.runs {
            let _ = writeln!(t, "  {}", r.row());
        }
        t.push_str("properties\n");
        for p in &props {
            let _ = writeln!(t, "  {:<24} {:<8} {}", p.name, if p.ok { "ok" } else { "VIOLATED" }, p.detail);
        }
        for n in self.checks.iter().flat_map(|c| &c.not_judged) {
            let _ = writeln!(t, "  {:<24} {:<8} not judged: {}", n.property, "-", n.reason);
        }
        match out {
            Some(dir) => {
                let _ = writeln!(t, "out      {}: timeline.svg, timeline.csv, nemesis.json", dir.display());
            }
            None => t.push_str("out      --out DIR draws the timeline\n"),
        }
        print!("{t}");
        Ok(code)
    }
}
