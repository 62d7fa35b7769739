//! `agora clocks`: runs a logical-clock scenario in the simulator and prints every event with
//! its timestamp in the seed report's notation (`PI_0_0(1) MS_0(2) MR_1(5)`), and, for chosen
//! pairs, whether they are causally ordered or concurrent.

use crate::cli::ClocksArgs;
use crate::error::UserError;
use agora_core::Setup;
use agora_protocols::logical_clocks::{vector_less, ClockKind, Executed, LogicalClockSetup, Scenario, Stamp};
use agora_sim::{SimConfig, Simulation};
use serde::Serialize;

#[derive(Serialize)]
struct Event {
    process: usize,
    name: String,
    stamp: String,
}

#[derive(Serialize)]
struct Comparison {
    a: String,
    b: String,
    relation: String,
}

/// Runs `agora clocks`; returns the process exit code.
pub fn run(args: &ClocksArgs) -> Result<i32, UserError> {
    let kind = match args.kind.as_str() {
        "lamport" => ClockKind::Lamport,
        "vector" => ClockKind::Vector,
        k => return Err(UserError(format!("clock `{k}`: expected lamport or vector"))),
    };
    let scenario = scenario(args)?;
    let setup = LogicalClockSetup { kind, scenario: scenario.clone() };
    let properties: Vec<String> = setup.checker().properties().iter().map(|p| p.name.to_string()).collect();
    let mut cfg = SimConfig::new(args.seed);
    cfg.keep_observations = true;
    let out = Simulation::new(setup, cfg).run();

    // Stamps by (process, event index).
    let mut stamps: Vec<Vec<Option<Stamp>>> =
        scenario.processes.iter().map(|e| vec![None; e.len()]).collect();
    for (_, node, Executed { i, stamp }) in &out.observations {
        stamps[node.index()][*i as usize] = Some(stamp.clone());
    }
    let hb = scenario.happened_before();
    let comparisons =
        args.compare.iter().map(|c| compare(&scenario, &hb, &stamps, c)).collect::<Result<Vec<_>, _>>()?;
    let mut events = Vec::new();
    let mut lines = Vec::new();
    for (p, row) in stamps.iter().enumerate() {
        let mut line = Vec::new();
        for (i, stamp) in row.iter().enumerate() {
            let name = scenario.name(p, i);
            let stamp = stamp.as_ref().map_or("(not executed)".to_string(), Stamp::to_string);
            line.push(format!("{name}{stamp}"));
            events.push(Event { process: p, name, stamp });
        }
        lines.push(line.join(" "));
    }
    let violations: Vec<String> = out.violations.iter().map(|v| v.to_string()).collect();
    let messages = out.metrics.totals().sent;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "clock": args.kind,
                "scenario": scenario.to_string(),
                "events": events,
                "comparisons": comparisons,
                "messages": messages,
                "properties": properties,
                "violations": violations,
            })
        );
    } else {
        println!("scenario: {scenario}");
        println!("{} timestamped:", if kind == ClockKind::Lamport { "Lamport" } else { "vector" });
        for l in &lines {
            println!("    {l}");
        }
        println!("messages: {messages}");
        for c in &comparisons {
            println!("{}", c.relation);
        }
        if violations.is_empty() {
            println!(
                "checks ok: {} (against happened-before computed from the scenario)",
                properties.join(", ")
            );
        } else {
            for v in &violations {
                println!("VIOLATION {v}");
            }
        }
    }
    Ok(if violations.is_empty() { 0 } else { 1 })
}

/// The scenario of `--scenario`: a random one of `--nodes` processes and `--events` events
/// each, or one in the seed report's notation.
fn scenario(args: &ClocksArgs) -> Result<Scenario, UserError> {
    if args.scenario != "random" {
        return Scenario::parse(&args.scenario).map_err(UserError);
    }
    if args.nodes == 0 || args.nodes > 200 || args.events > 200 {
        return Err(UserError("a random scenario takes 1 to 200 processes and at most 200 --events".into()));
    }
    Ok(Scenario::random(args.nodes, args.events as usize, args.seed))
}

/// The process and index of the event called `name`.
fn find(scenario: &Scenario, name: &str) -> Result<(usize, usize), UserError> {
    for (p, evs) in scenario.processes.iter().enumerate() {
        for i in 0..evs.len() {
            if scenario.name(p, i) == name {
                return Ok((p, i));
            }
        }
    }
    Err(UserError(format!("--compare: no event named `{name}` (names look like PI_0_2, MS_1, MR_3)")))
}

/// `--compare A,B`: what the clocks say of two events. Vector clocks tell causality from
/// concurrency; of Lamport clocks, say what causality (`hb`) says, and that the clock can't.
fn compare(
    scenario: &Scenario,
    hb: &[Vec<bool>],
    stamps: &[Vec<Option<Stamp>>],
    c: &str,
) -> Result<Comparison, UserError> {
    let (a, b) = c.split_once(',').ok_or_else(|| UserError(format!("--compare `{c}`: expected A,B")))?;
    let ((pa, ia), (pb, ib)) = (find(scenario, a.trim())?, find(scenario, b.trim())?);
    let relation = match (&stamps[pa][ia], &stamps[pb][ib]) {
        (Some(Stamp::Vector(x)), Some(Stamp::Vector(y))) => {
            if vector_less(x, y) {
                format!("{a} → {b}: {a} happened before {b}")
            } else if vector_less(y, x) {
                format!("{b} → {a}: {b} happened before {a}")
            } else {
                format!("{a} ∥ {b}: concurrent")
            }
        }
        _ => {
            let (ga, gb) = (scenario.global(pa, ia), scenario.global(pb, ib));
            let truth = if hb[ga][gb] {
                format!("{a} happened before {b}")
            } else if hb[gb][ga] {
                format!("{b} happened before {a}")
            } else {
                "concurrent".to_string()
            };
            format!("{a} vs {b}: {truth} (Lamport clocks alone cannot distinguish this from concurrency)")
        }
    };
    Ok(Comparison { a: a.to_string(), b: b.to_string(), relation })
}
