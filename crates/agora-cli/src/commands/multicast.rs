//! `agora multicast`: the seed report's experiment and comparison server in one command —
//! every ordering guarantee over a sweep of peers, messages and repetitions, in the simulator
//! (with any fault, a multi-region latency model included) or over loopback TCP.

use super::shared::tcp::run_in_process;
use super::shared::{create_dir, output, sweep, tcp_runtime};
use crate::cli::MulticastArgs;
use crate::error::UserError;
use crate::faults;
use agora_core::Time;
use agora_protocols::multicast::peer::MulticastSetup;
use agora_protocols::multicast::{analyse, quantile, McastObs, Order};
use agora_sim::{Faults, SimConfig, Simulation};
use plotters::prelude::*;
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

#[derive(Serialize, Clone)]
struct Row {
    order: String,
    peers: usize,
    msgs: u32,
    rep: u64,
    seed: u64,
    runtime: String,
    disagreements: u64,
    fifo_violations: u64,
    causal_violations: u64,
    /// Messages of every type sent during the run.
    messages: u64,
    bytes: u64,
    messages_per_multicast: f64,
    bytes_per_multicast: f64,
    latency_ms_p50: f64,
    latency_ms_p99: f64,
    delivered: u64,
    expected: u64,
    violations: usize,
    /// Wall time of the run, and deliveries per second of it.
    wall_ms: f64,
    deliveries_per_s: f64,
}

/// What a run gives back: observations with times in ms, and the totals.
struct RunData {
    obs: Vec<(f64, u32, McastObs)>,
    messages: u64,
    bytes: u64,
    violations: usize,
    wall_ms: f64,
}

/// One run of the sweep.
struct Point {
    order: Order,
    peers: usize,
    msgs: u32,
    rep: u64,
}

/// Runs `agora multicast`; returns the process exit code.
pub fn run(args: &MulticastArgs) -> Result<i32, UserError> {
    let orders: Vec<Order> = args
        .order
        .iter()
        .map(|o| {
            Order::parse(o).ok_or_else(|| {
                UserError(format!(
                    "--order `{o}`: expected unordered, fifo, causal, total-lamport or total-sequencer"
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    let tcp = tcp_runtime(&args.runtime)?;
    if args.peers.is_empty() || args.peers.iter().any(|&p| !(2..=64).contains(&p)) {
        return Err(UserError("--peers: from 2 to 64 peers".into()));
    }
    if args.msgs.is_empty() || args.msgs.iter().any(|&m| m == 0 || m > 10_000) {
        return Err(UserError("--msgs: from 1 to 10000 messages per peer".into()));
    }
    if args.reps == 0 || args.reps > 1_000 {
        return Err(UserError("--reps: from 1 to 1000".into()));
    }
    let max_peers = *args.peers.iter().max().expect("checked non-empty");
    let fault_cfg: Faults = faults::build(&args.faults, max_peers)?;
    if tcp && fault_cfg != Faults::default() {
        return Err(UserError(
            "--runtime tcp runs over the real loopback network: fault flags apply to sim only".into(),
        ));
    }
    let mut points = Vec::new();
    for &order in &orders {
        for &peers in &args.peers {
            for &msgs in &args.msgs {
                points.extend((0..args.reps).map(|rep| Point { order, peers, msgs, rep }));
            }
        }
    }
    let rows = sweep(
        &points,
        "{msg:28} [{bar:40}] {pos}/{len} runs, {elapsed} (eta {eta})",
        args.json,
        |p| format!("{} {}x{} #{}", p.order.name(), p.peers, p.msgs, p.rep),
        |p| {
            let data = if tcp { over_tcp(args, p)? } else { simulate(args, &fault_cfg, p)? };
            Ok(row(args, p, data))
        },
    )?;
    if let Some(dir) = &args.out {
        write_out(dir, &rows)?;
    }
    if args.json {
        println!("{}", serde_json::json!({ "rows": rows }));
    } else {
        print!("{}", table(&rows));
        if let Some(dir) = &args.out {
            println!(
                "wrote {0}/multicast.csv, {0}/disagreements.svg, {0}/latency.svg, {0}/cost.svg",
                dir.display()
            );
        }
    }
    Ok(if rows.iter().all(|r| r.violations == 0) { 0 } else { 1 })
}

/// The setup of one run, from the parameter schema: the same values and checks as
/// `agora sim ORDER` with these flags.
fn setup(args: &MulticastArgs, p: &Point) -> Result<MulticastSetup, UserError> {
    use agora_protocols::params::{INTERVAL_MS, MSGS, TIMEOUT_MS};
    use agora_protocols::FromParams;
    let timeout_ms = args.timeout_ms.unwrap_or(if args.faults.regions.is_some() { 700.0 } else { 20.0 });
    let mut params = agora_protocols::Params::new(p.peers, args.seed);
    params.set(&MSGS, p.msgs)?;
    params.set(&INTERVAL_MS, args.interval_ms)?;
    params.set(&TIMEOUT_MS, timeout_ms)?;
    let entry = agora_protocols::registry::entry(p.order.name())?;
    Ok(MulticastSetup::from_params(&params.resolve(entry.name, entry.specs)?)?)
}

/// One run in the simulator, under the faults of the command line.
fn simulate(args: &MulticastArgs, faults: &Faults, p: &Point) -> Result<RunData, UserError> {
    let peers = p.peers;
    let mut f = faults.clone();
    f.validate(peers).map_err(|e| UserError(format!("faults do not fit {peers} peers: {e}")))?;
    if let Some(r) = &mut f.network.regions {
        r.nodes = None;
    }
    let mut cfg = SimConfig::new(args.seed + p.rep).with_faults(f);
    cfg.max_time = Time::from_millis(3_600_000);
    cfg.keep_observations = true;
    let o = Simulation::new(setup(args, p)?, cfg).run();
    let t = o.metrics.totals();
    Ok(RunData {
        obs: o.observations.into_iter().map(|(t, n, ob)| (t.as_millis_f64(), n.0, ob)).collect(),
        messages: t.sent,
        bytes: t.bytes_sent,
        violations: o.violations.len(),
        wall_ms: o.wall.as_secs_f64() * 1e3,
    })
}

/// One run over loopback TCP, every peer in this process.
fn over_tcp(args: &MulticastArgs, p: &Point) -> Result<RunData, UserError> {
    let seed = args.seed + p.rep;
    let setup = Arc::new(setup(args, p)?);
    let (g, last_active_unix_ns) =
        run_in_process(&setup, "multicast", seed, Duration::from_secs(60), |_| {})?;
    let started = g.started_unix_ns;
    let mut obs: Vec<(f64, u32, McastObs)> = g
        .observations
        .iter()
        .map(|(t, node, o)| (t.saturating_sub(started) as f64 / 1e6, node.0, o.clone()))
        .collect();
    obs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let totals = g.metrics.totals();
    let (messages, bytes) = (totals.sent, totals.bytes_sent);
    let summary = agora_net::report::summarize(&*setup, seed, g, "");
    // From the nodes' start to the last event handled (quiescence detection excluded).
    let wall_ms = last_active_unix_ns.saturating_sub(started) as f64 / 1e6;
    Ok(RunData { obs, messages, bytes, violations: summary.violations.len(), wall_ms })
}

/// The row of one run: what its observations show, and its cost.
fn row(args: &MulticastArgs, p: &Point, data: RunData) -> Row {
    let (peers, msgs) = (p.peers, p.msgs);
    let mut a = analyse(peers, &data.obs);
    let multicasts = (peers as u64 * msgs as u64).max(1);
    let delivered =
        data.obs.iter().filter(|(_, _, o)| matches!(o, McastObs::Delivered { .. })).count() as u64;
    Row {
        order: p.order.name().to_string(),
        peers,
        msgs,
        rep: p.rep,
        seed: args.seed + p.rep,
        runtime: args.runtime.clone(),
        disagreements: a.disagreements,
        fifo_violations: a.fifo_violations,
        causal_violations: a.causal_violations,
        messages: data.messages,
        bytes: data.bytes,
        messages_per_multicast: data.messages as f64 / multicasts as f64,
        bytes_per_multicast: data.bytes as f64 / multicasts as f64,
        latency_ms_p50: quantile(&mut a.latencies_ms, 0.5),
        latency_ms_p99: quantile(&mut a.latencies_ms, 0.99),
        delivered,
        expected: multicasts * peers as u64,
        violations: data.violations,
        wall_ms: data.wall_ms,
        deliveries_per_s: if data.wall_ms > 0.0 { delivered as f64 / (data.wall_ms / 1e3) } else { 0.0 },
    }
}

/// `--out`: the rows as CSV and three charts.
fn write_out(dir: &Path, rows: &[Row]) -> Result<(), UserError> {
    create_dir(dir)?;
    output::write_file(&dir.join("multicast.csv"), &csv(rows))?;
    bars(&dir.join("disagreements.svg"), rows, "Positions where receivers disagree (mean over reps)", |r| {
        r.disagreements as f64
    })?;
    bars(&dir.join("latency.svg"), rows, "Delivery latency p50 (ms, mean over reps)", |r| r.latency_ms_p50)?;
    bars(&dir.join("cost.svg"), rows, "Messages per multicast (mean over reps)", |r| r.messages_per_multicast)
}

/// Rows averaged over repetitions, per (order, peers, msgs).
fn grouped(rows: &[Row]) -> Vec<(String, usize, u32, Vec<&Row>)> {
    let mut out: Vec<(String, usize, u32, Vec<&Row>)> = Vec::new();
    for r in rows {
        match out.iter_mut().find(|g| g.0 == r.order && g.1 == r.peers && g.2 == r.msgs) {
            Some(g) => g.3.push(r),
            None => out.push((r.order.clone(), r.peers, r.msgs, vec![r])),
        }
    }
    out
}

fn mean(rs: &[&Row], f: impl Fn(&Row) -> f64) -> f64 {
    rs.iter().map(|r| f(r)).sum::<f64>() / rs.len().max(1) as f64
}

fn table(rows: &[Row]) -> String {
    let mut t = format!(
        "{:<16} {:>5} {:>5} {:>4} {:>13} {:>8} {:>8} {:>10} {:>9} {:>9} {:>10}\n",
        "order",
        "peers",
        "msgs",
        "reps",
        "disagreements",
        "fifo",
        "causal",
        "msgs/mcast",
        "p50 ms",
        "p99 ms",
        "delivered"
    );
    for (order, peers, msgs, rs) in grouped(rows) {
        t.push_str(&format!(
            "{:<16} {:>5} {:>5} {:>4} {:>13.1} {:>8.1} {:>8.1} {:>10.1} {:>9.2} {:>9.2} {:>9.1}% {:>12.0}\n",
            order,
            peers,
            msgs,
            rs.len(),
            mean(&rs, |r| r.disagreements as f64),
            mean(&rs, |r| r.fifo_violations as f64),
            mean(&rs, |r| r.causal_violations as f64),
            mean(&rs, |r| r.messages_per_multicast),
            mean(&rs, |r| r.latency_ms_p50),
            mean(&rs, |r| r.latency_ms_p99),
            100.0 * mean(&rs, |r| r.delivered as f64 / r.expected as f64),
            mean(&rs, |r| r.deliveries_per_s),
        ));
    }
    t
}

fn csv(rows: &[Row]) -> String {
    let mut s = String::from("order,peers,msgs,rep,seed,runtime,disagreements,fifo_violations,causal_violations,messages,bytes,messages_per_multicast,bytes_per_multicast,latency_ms_p50,latency_ms_p99,delivered,expected,violations\n");
    for r in rows {
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{:.3},{:.3},{:.3},{:.3},{},{},{}\n",
            r.order,
            r.peers,
            r.msgs,
            r.rep,
            r.seed,
            r.runtime,
            r.disagreements,
            r.fifo_violations,
            r.causal_violations,
            r.messages,
            r.bytes,
            r.messages_per_multicast,
            r.bytes_per_multicast,
            r.latency_ms_p50,
            r.latency_ms_p99,
            r.delivered,
            r.expected,
            r.violations
        ));
    }
    s
}

/// Grouped bars: one group per (peers, msgs) configuration, one bar per order.
fn bars(path: &Path, rows: &[Row], title: &str, value: impl Fn(&Row) -> f64) -> Result<(), UserError> {
    let err = |e: String| UserError(format!("cannot draw {}: {e}", path.display()));
    let groups = grouped(rows);
    let mut orders: Vec<String> = Vec::new();
    let mut configs: Vec<(usize, u32)> = Vec::new();
    for (o, p, m, _) in &groups {
        if !orders.contains(o) {
            orders.push(o.clone());
        }
        if !configs.contains(&(*p, *m)) {
            configs.push((*p, *m));
        }
    }
    let width = orders.len() as f64 + 1.0;
    let top = groups.iter().map(|g| mean(&g.3, &value)).fold(0.0, f64::max).max(1.0) * 1.15;
    let root = SVGBackend::new(path, (1200, 650)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let labels = configs.clone();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..configs.len() as f64 * width, 0.0..top)
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(configs.len().max(1))
        .x_label_formatter(&|x| {
            let i = (x / width).floor() as usize;
            labels.get(i).map_or(String::new(), |(p, m)| format!("{p} peers x {m}"))
        })
        .y_desc(title.split(" (").next().unwrap_or(""))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    for (oi, order) in orders.iter().enumerate() {
        let color = Palette99::pick(oi).to_rgba();
        let bars: Vec<Rectangle<(f64, f64)>> = groups
            .iter()
            .filter(|g| &g.0 == order)
            .map(|g| {
                let ci = configs.iter().position(|c| *c == (g.1, g.2)).unwrap_or(0) as f64;
                let x0 = ci * width + oi as f64 + 0.5;
                Rectangle::new([(x0, 0.0), (x0 + 0.9, mean(&g.3, &value))], color.filled())
            })
            .collect();
        chart
            .draw_series(bars)
            .map_err(|e| err(e.to_string()))?
            .label(order.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    output::legend(&mut chart, SeriesLabelPosition::UpperLeft).map_err(err)?;
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}
