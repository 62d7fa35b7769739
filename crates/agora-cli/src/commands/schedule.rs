//! Schedules: the interleaving `agora explore` found, written by `agora explore --schedule` and
//! replayed step by step by `agora sim --schedule` — the same protocol code taken through the
//! same deliveries, losses, timer firings, crashes and restarts to the same violation.

use super::shared::output;
use crate::cli::SimArgs;
use crate::error::UserError;
use crate::faults;
use agora_core::{Protocol, Setup};
use agora_protocols::registry::{cluster_size, dispatch_explore, ExploreDriver, EXPLORABLE};
use agora_sim::diagram::{render_svg, MAX_DIAGRAM_NODES};
use agora_sim::explore::{replay, Bounds, ExploreError, Replayed, Step, Timing};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::hash::Hash;
use std::path::Path;

/// The largest schedule file read, in bytes.
const MAX_FILE: u64 = 64 << 20;

/// A schedule file.
#[derive(Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// The protocol explored.
    pub protocol: String,
    /// When timers could fire: `async` or `sync`.
    pub timing: String,
    /// Links delivered in the order sent.
    pub fifo: bool,
    /// The bounds the steps were taken within.
    pub loss: u8,
    /// Duplicates allowed.
    pub duplicate: u8,
    /// Crashes allowed.
    pub crashes: u8,
    /// Restarts allowed.
    pub restarts: u8,
    /// Timer firings allowed (absent: no bound).
    #[serde(default)]
    pub fires: Option<u32>,
    /// The property the schedule broke when it was written.
    pub violated: Option<String>,
    /// The steps, from the initial state.
    pub steps: Vec<Step>,
    /// The alternatives the nodes took where the protocol leaves them open: one number for
    /// the start, then one per step (absent or short: the first alternative of each; those
    /// after the last step, as in a schedule cut short, are not used).
    #[serde(default)]
    pub choices: Vec<u64>,
    /// Where the cycle of a lasso begins (an index into `steps`): the steps from there on go
    /// round a cycle that breaks an at-end property for ever (absent: no cycle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cycle: Option<usize>,
}

impl Schedule {
    /// The bounds to replay it within.
    pub fn bounds(&self) -> Result<Bounds, UserError> {
        let timing = match self.timing.as_str() {
            "async" => Timing::Async,
            "sync" => Timing::Sync,
            t => return Err(UserError(format!("the schedule's timing is {t:?}: async or sync"))),
        };
        Ok(Bounds {
            depth: self.steps.len(),
            states: 1,
            loss: self.loss,
            duplicate: self.duplicate,
            crashes: self.crashes,
            restarts: self.restarts,
            fires: self.fires,
            timing,
            fifo: self.fifo,
            memory: None,
        })
    }

    /// Writes it as JSON.
    pub fn write(&self, path: &Path) -> Result<(), UserError> {
        let text = serde_json::to_string_pretty(self).expect("a schedule serializes");
        output::write_file(path, &text)
    }

    /// Reads one, refusing what is not a schedule.
    pub fn read(path: &Path) -> Result<Schedule, UserError> {
        let what = |e: &dyn std::fmt::Display| UserError(format!("--schedule {}: {e}", path.display()));
        let len = std::fs::metadata(path).map_err(|e| what(&e))?.len();
        if len > MAX_FILE {
            return Err(what(&format!("{len} bytes; a schedule is at most {MAX_FILE}")));
        }
        let text = std::fs::read_to_string(path).map_err(|e| what(&e))?;
        serde_json::from_str(&text).map_err(|e| what(&e))
    }
}

/// The command line that replays a schedule: `argv` (an `agora explore` command line without
/// the program name) with `sim` for `explore` and without explore's own flags.
pub fn replay_command(argv: &[String], path: &Path) -> String {
    const WITH_VALUE: &[&str] = &[
        "--depth",
        "--max-states",
        "--max-memory-mb",
        "--loss",
        "--duplicate",
        "--crashes",
        "--restarts",
        "--fires",
        "--timing",
        "--diagram",
        "--schedule",
        "--threads",
        "--walks",
        "--seed",
    ];
    const ALONE: &[&str] = &["--fifo", "--json", "--no-symmetry"];
    let mut out = vec!["agora".to_string(), "sim".to_string()];
    let mut it = argv.iter().skip(1);
    while let Some(a) = it.next() {
        let name = a.split('=').next().unwrap_or(a);
        if WITH_VALUE.contains(&name) {
            if !a.contains('=') {
                it.next();
            }
        } else if !ALONE.contains(&name) {
            out.push(a.clone());
        }
    }
    out.push("--schedule".into());
    out.push(path.display().to_string());
    out.join(" ")
}

/// Replays a schedule in a setup.
struct Replayer {
    schedule: Schedule,
    bounds: Bounds,
}

impl ExploreDriver for Replayer {
    type Output = Result<Replayed, ExploreError>;

    fn run<S: Setup>(self, setup: S) -> Self::Output
    where
        S::Node: Clone + Hash + Sync,
        <S::Node as Protocol>::Timer: Hash,
    {
        replay(&setup, &self.bounds, &self.schedule.steps, &self.schedule.choices, self.schedule.cycle)
    }
}

/// `agora sim PROTOCOL --schedule FILE`: the schedule replayed; exit 1 if it breaks a property,
/// as a simulated run that does.
pub fn sim(args: &SimArgs, path: &Path) -> Result<i32, UserError> {
    if args.html.is_some() {
        return Err(UserError("--html replays a seeded run; a --schedule is drawn with --diagram".into()));
    }
    let schedule = Schedule::read(path)?;
    if schedule.protocol != args.protocol {
        return Err(UserError(format!(
            "--schedule {} was explored for {}, not {}",
            path.display(),
            schedule.protocol,
            args.protocol
        )));
    }
    if !EXPLORABLE.contains(&args.protocol.as_str()) {
        return Err(UserError(format!("{} has no schedules: it cannot be explored", args.protocol)));
    }
    // The setup the schedule was explored on: what it draws from the seed is explore's.
    let params = args.params.params(super::explore::SEED);
    let n = cluster_size(&args.protocol, &params)?;
    if faults::build(&args.faults, n)? != agora_sim::Faults::default() {
        return Err(UserError(
            "--schedule replays the schedule's own faults: leave out the fault flags".into(),
        ));
    }
    if args.diagram.is_some() && n > MAX_DIAGRAM_NODES {
        return Err(UserError(format!("--diagram draws at most {MAX_DIAGRAM_NODES} nodes")));
    }
    let bounds = schedule.bounds()?;
    let schedule_cycle = schedule.cycle;
    let driver = Replayer { schedule, bounds };
    let Some(replayed) = dispatch_explore(&args.protocol, &params, driver)? else {
        unreachable!("checked explorable above")
    };
    let r = replayed.map_err(|e| UserError(format!("--schedule {}: {e}", path.display())))?;
    if let Some(svg) = &args.diagram {
        let title = format!("{}: the schedule {} (step i at i ms)", args.protocol, path.display());
        output::write_file(svg, &render_svg(&title, n, &r.diagram))?;
    }
    if args.json {
        let violation = r
            .violation
            .as_ref()
            .map(|v| json!({ "property": v.property, "node": v.node.map(|n| n.0), "detail": v.detail, "dead_end": r.dead_end, "cycle": r.cycle }));
        println!("{}", json!({ "protocol": args.protocol, "steps": r.trace, "violation": violation }));
    } else {
        println!("replay {} — {} steps of {}", args.protocol, r.trace.len(), path.display());
        for (i, s) in r.trace.iter().enumerate() {
            println!("  {:>3}. {s}", i + 1);
        }
        match &r.violation {
            Some(v) if r.dead_end => println!("a dead end: nothing left to deliver or fire, and\n{v}"),
            Some(v) if r.cycle => println!(
                "a cycle: the steps from step {} on lead back to the state they start from, fairly, and a \
                 run may go round them for ever; there\n{v}",
                schedule_cycle.map_or(0, |c| c + 1)
            ),
            Some(v) => println!("{v}"),
            None => println!("the schedule ended with no property broken"),
        }
    }
    Ok(i32::from(r.violation.is_some()))
}
