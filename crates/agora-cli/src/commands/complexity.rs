//! `agora complexity`: the seed report's two graphs, measured — message count and carbon
//! footprint against N for every classic algorithm — with bytes, msgs-per-op, latency, energy
//! and CO2e, and each count next to its textbook formula. The energy model is in
//! docs/energy.md.

use super::shared::tcp::run_in_process;
use super::shared::{create_dir, output, sweep, tcp_runtime};
use crate::cli::ComplexityArgs;
use crate::error::UserError;
use agora_core::{RunSummary, Setup, Time};
use agora_net::report;
use agora_protocols::logical_clocks::{Ev, Scenario};
use agora_protocols::{Driver, Params};
use agora_sim::{SimConfig, Simulation};
use plotters::prelude::*;
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The classic algorithms of the report, in the order the tables list them.
pub const ALGORITHMS: &[&str] = &[
    "central",
    "all-to-all",
    "flood",
    "ring-token",
    "gossip",
    "lamport-clock",
    "vector-clock",
    "central-mutex",
    "lamport-mutex",
    "ricart-agrawala",
    "token-ring-mutex",
    "bully",
    "ring-election",
    "2pc",
    "3pc",
];

/// Mutual-exclusion entries per node, client requests, and logical-clock events per process.
const R: u64 = 3;
const EVENTS: u32 = 8;

#[derive(Serialize, Clone)]
pub struct Row {
    pub algorithm: String,
    pub nodes: usize,
    pub runtime: String,
    pub messages: u64,
    pub bytes: u64,
    pub ops: u64,
    pub msgs_per_op: Option<f64>,
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    pub energy_j: f64,
    pub co2e_g: f64,
    /// The textbook count for this workload, where one exists.
    pub formula: Option<u64>,
    pub formula_text: Option<String>,
    pub violations: usize,
    /// What the count includes.
    pub note: String,
}

/// The report's workload, for whichever of its parameters `algorithm` reads: R requests,
/// elections started by node 0, random clock scenarios of EVENTS events per process. The
/// runs lose nothing, so Lamport's mutual exclusion runs on raw links: the count is the
/// algorithm's own messages, without the link layer's acknowledgements.
fn params(algorithm: &str, n: usize, seed: u64) -> Params {
    use agora_protocols::params::{LINKS, MSGS, REQUESTS, SCENARIO, START};
    let workload = Params::new(n, seed)
        .with(&LINKS, "raw")
        .with(&REQUESTS, R as u32)
        .with(&START, 0u32)
        .with(&SCENARIO, "random")
        .with(&MSGS, EVENTS);
    let entry = agora_protocols::registry::entry(algorithm).expect("ALGORITHMS are in the registry");
    workload.only_used_by(entry.specs)
}

/// The textbook message count of the report's workload, with its formula.
fn formula(algorithm: &str, n: u64, seed: u64) -> Option<(u64, String)> {
    let f = |v: u64, t: &str| Some((v, t.to_string()));
    match algorithm {
        "central" => f(2 * (n - 1) * (1 + R), "2(N-1)(1+R), R = 3 requests"),
        "all-to-all" => f(n * (n - 1), "N(N-1)"),
        "flood" => f((n - 1) * (n - 1), "(N-1)^2 on a complete graph"),
        "ring-token" => f(n, "N per round"),
        "lamport-clock" | "vector-clock" => {
            let s = Scenario::random(n as usize, EVENTS as usize, seed);
            let sends = s.processes.iter().flatten().filter(|e| matches!(e, Ev::Send(_))).count() as u64;
            f(sends, "one per send event of the scenario")
        }
        "central-mutex" => f(3 * (n - 1) * R, "3 per entry, (N-1) clients x R entries"),
        "lamport-mutex" => f(3 * (n - 1) * n * R, "3(N-1) per entry, N x R entries"),
        "ricart-agrawala" => f(2 * (n - 1) * n * R, "2(N-1) per entry, N x R entries"),
        "bully" => f(n * n - 1, "N^2 - 1 (worst case: node 0 starts)"),
        "ring-election" => f(2 * (3 * n - 1), "(N-1) + 2N hops from node 0, one ACK per hop"),
        "2pc" => f(4 * (n - 1), "4(N-1)"),
        "3pc" => f(6 * (n - 1), "6(N-1)"),
        _ => None,
    }
}

/// Message types a row leaves out: heartbeats run for as long as the run does.
fn excluded(algorithm: &str) -> &'static [&'static str] {
    match algorithm {
        "bully" | "ring-election" => &["HEARTBEAT"],
        _ => &[],
    }
}

/// One measured run, before energy is attached.
struct Measured {
    summary: RunSummary,
    messages: u64,
    bytes: u64,
}

fn measured(summary: RunSummary, algorithm: &str) -> Measured {
    let skip = excluded(algorithm);
    let (messages, bytes) = summary
        .by_kind
        .iter()
        .filter(|k| !skip.contains(&k.kind.as_str()))
        .fold((0, 0), |(m, b), k| (m + k.counters.sent, b + k.counters.bytes_sent));
    Measured { summary, messages, bytes }
}

struct SimRun {
    seed: u64,
    max_time: Time,
}

impl Driver for SimRun {
    type Output = RunSummary;
    fn run<S: Setup>(self, setup: S) -> RunSummary {
        let mut cfg = SimConfig::new(self.seed);
        cfg.max_time = self.max_time;
        Simulation::new(setup, cfg).run().summary("")
    }
}

struct TcpRun {
    seed: u64,
    max_time: Duration,
}

impl Driver for TcpRun {
    type Output = Result<RunSummary, UserError>;
    fn run<S: Setup>(self, setup: S) -> Self::Output {
        let setup = Arc::new(setup);
        let (g, _) = run_in_process(&setup, "complexity", self.seed, self.max_time, |_| {})?;
        Ok(report::summarize(&*setup, self.seed, g, ""))
    }
}

/// Runs `agora complexity`; returns the process exit code.
pub fn run(args: &ComplexityArgs) -> Result<i32, UserError> {
    let algorithms: Vec<String> = if args.algorithms.is_empty() {
        ALGORITHMS.iter().map(|s| s.to_string()).collect()
    } else {
        args.algorithms.clone()
    };
    if let Some(a) = algorithms.iter().find(|a| !ALGORITHMS.contains(&a.as_str())) {
        return Err(UserError(format!("--algorithms: `{a}` is not one of {}", ALGORITHMS.join(", "))));
    }
    let tcp = tcp_runtime(&args.runtime)?;
    for (name, v) in [
        ("--carbon-intensity", args.carbon_intensity),
        ("--network-j-per-byte", args.network_j_per_byte),
        ("--host-j-per-message", args.host_j_per_message),
        ("--watts-per-core", args.watts_per_core),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            return Err(UserError(format!("{name} {v}: must be a non-negative number")));
        }
    }
    if args.nodes.is_empty() || args.nodes.iter().any(|&n| !(2..=1000).contains(&n)) {
        return Err(UserError("--nodes: sizes from 2 to 1000".into()));
    }
    if tcp && args.nodes.iter().any(|&n| n > 64) {
        return Err(UserError("--runtime tcp: at most 64 nodes per run".into()));
    }
    let points: Vec<(&str, usize)> =
        algorithms.iter().flat_map(|a| args.nodes.iter().map(move |&n| (a.as_str(), n))).collect();
    let rows = sweep(
        &points,
        "{msg:24} [{bar:40}] {pos}/{len} runs, {elapsed}",
        args.json,
        |(a, n)| format!("{a} N={n}"),
        |&(a, n)| row(args, tcp, a, n),
    )?;
    if let Some(dir) = &args.out {
        create_dir(dir)?;
        output::write_file(&dir.join("complexity.csv"), &csv(&rows))?;
        chart(&dir.join("messages.svg"), &rows, "Messages against N (measured)", "messages", |r| {
            r.messages as f64
        })?;
        chart(&dir.join("carbon.svg"), &rows, "Carbon footprint against N (measured)", "CO2e (g)", |r| {
            r.co2e_g
        })?;
    }
    if args.json {
        let out = serde_json::json!({
            "runtime": args.runtime,
            "carbon_intensity_kg_per_kwh": args.carbon_intensity,
            "network_j_per_byte": args.network_j_per_byte,
            "host_j_per_message": args.host_j_per_message,
            "watts_per_core": args.watts_per_core,
            "rows": rows,
        });
        println!("{out}");
    } else {
        print!("{}", table(&rows));
        if let Some(dir) = &args.out {
            println!("wrote {0}/complexity.csv, {0}/messages.svg, {0}/carbon.svg", dir.display());
        }
    }
    Ok(if rows.iter().all(|r| r.violations == 0) { 0 } else { 1 })
}

/// Runs `algorithm` with `n` nodes and measures it.
fn row(args: &ComplexityArgs, tcp: bool, a: &str, n: usize) -> Result<Row, UserError> {
    let p = params(a, n, args.seed);
    let elections = matches!(a, "bully" | "ring-election");
    let m = if tcp {
        let max = Duration::from_millis(if elections { 300 } else { 30_000 });
        measured(agora_protocols::dispatch(a, &p, TcpRun { seed: args.seed, max_time: max })??, a)
    } else {
        let max = Time::from_millis(if elections { 500 } else { 600_000 });
        measured(agora_protocols::dispatch(a, &p, SimRun { seed: args.seed, max_time: max })?, a)
    };
    let energy_j = if tcp {
        m.summary.cpu_ms.unwrap_or(0.0) / 1e3 * args.watts_per_core + m.bytes as f64 * args.network_j_per_byte
    } else {
        m.messages as f64 * args.host_j_per_message + m.bytes as f64 * args.network_j_per_byte
    };
    let co2e_g = energy_j / 3.6e6 * args.carbon_intensity * 1e3;
    let f = formula(a, n as u64, args.seed);
    let s = &m.summary;
    Ok(Row {
        algorithm: a.to_string(),
        nodes: n,
        runtime: args.runtime.clone(),
        messages: m.messages,
        bytes: m.bytes,
        ops: s.ops_completed,
        msgs_per_op: (s.ops_completed > 0).then(|| m.messages as f64 / s.ops_completed as f64),
        latency_ms_p50: s.latency_ms.p50_ms,
        latency_ms_p99: s.latency_ms.p99_ms,
        energy_j,
        co2e_g,
        formula: f.as_ref().map(|x| x.0),
        formula_text: f.map(|x| x.1),
        violations: s.violations.len(),
        note: if excluded(a).is_empty() { String::new() } else { "heartbeats excluded".into() },
    })
}

fn table(rows: &[Row]) -> String {
    let mut t = format!(
        "{:<17} {:>5} {:>10} {:>10} {:>10} {:>9} {:>10} {:>11} {:>11}  formula\n",
        "algorithm", "N", "messages", "bytes", "msgs/op", "p50 ms", "energy J", "CO2e g", "expected"
    );
    for r in rows {
        let expected = match r.formula {
            Some(f) if f == r.messages => format!("{f} ok"),
            Some(f) => format!("{f} (differs)"),
            None => "-".into(),
        };
        t.push_str(&format!(
            "{:<17} {:>5} {:>10} {:>10} {:>10} {:>9.3} {:>10.3e} {:>11.3e} {:>11}  {}\n",
            r.algorithm,
            r.nodes,
            r.messages,
            r.bytes,
            r.msgs_per_op.map_or("-".into(), |m| format!("{m:.1}")),
            r.latency_ms_p50,
            r.energy_j,
            r.co2e_g,
            expected,
            r.formula_text.as_deref().unwrap_or(""),
        ));
    }
    t
}

fn csv(rows: &[Row]) -> String {
    let mut s = String::from(
        "algorithm,nodes,runtime,messages,bytes,ops,msgs_per_op,latency_ms_p50,latency_ms_p99,energy_j,co2e_g,formula,violations,note\n",
    );
    for r in rows {
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            r.algorithm,
            r.nodes,
            r.runtime,
            r.messages,
            r.bytes,
            r.ops,
            r.msgs_per_op.map_or(String::new(), |m| format!("{m:.3}")),
            r.latency_ms_p50,
            r.latency_ms_p99,
            r.energy_j,
            r.co2e_g,
            r.formula.map_or(String::new(), |f| f.to_string()),
            r.violations,
            r.note
        ));
    }
    s
}

/// A log-log line chart of `value` against N, one line per algorithm.
fn chart(
    path: &Path,
    rows: &[Row],
    title: &str,
    y_label: &str,
    value: impl Fn(&Row) -> f64,
) -> Result<(), UserError> {
    let err = |e: String| UserError(format!("cannot draw {}: {e}", path.display()));
    let mut algorithms: Vec<&str> = Vec::new();
    for r in rows {
        if !algorithms.contains(&r.algorithm.as_str()) {
            algorithms.push(&r.algorithm);
        }
    }
    let xs: Vec<f64> = rows.iter().map(|r| r.nodes as f64).collect();
    let ys: Vec<f64> = rows.iter().map(&value).filter(|v| *v > 0.0).collect();
    let (x0, x1) = (xs.iter().copied().fold(f64::MAX, f64::min), xs.iter().copied().fold(0.0, f64::max));
    let (y0, y1) = (ys.iter().copied().fold(f64::MAX, f64::min), ys.iter().copied().fold(0.0, f64::max));
    let root = SVGBackend::new(path, (1100, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 24))
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .right_y_label_area_size(0)
        .build_cartesian_2d(
            (x0.max(1.0)..x1.max(2.0)).log_scale(),
            (y0.max(1e-12) / 2.0..y1.max(1e-12) * 2.0).log_scale(),
        )
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("N (nodes)")
        .y_desc(y_label)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.2e}"))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    for (i, a) in algorithms.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let pts: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.algorithm == *a && value(r) > 0.0)
            .map(|r| (r.nodes as f64, value(r)))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|e| err(e.to_string()))?
            .label(*a)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))
            .map_err(|e| err(e.to_string()))?;
    }
    output::legend(&mut chart, SeriesLabelPosition::UpperLeft).map_err(err)?;
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}
