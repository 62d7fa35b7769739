//! `agora bench`: throughput and memory of the simulator, or of the TCP runtime with all nodes
//! in one process or one process per node. Every size runs in its own process (`agora sim`,
//! `agora run` or `agora up`), so peak memory and CPU time belong to that size alone.

use super::shared::tcp::temp_dir;
use super::shared::{tcp_runtime, Validate};
use crate::cli::BenchArgs;
use crate::error::UserError;
use serde::Serialize;
use std::path::Path;
use std::process::Command;

#[derive(Serialize)]
struct Row {
    protocol: String,
    runtime: String,
    mode: String,
    nodes: usize,
    seed: u64,
    messages_delivered: u64,
    wall_ms: f64,
    delivered_per_s: f64,
    peak_rss_mb: Option<f64>,
    cpu_ms: Option<f64>,
    violations: usize,
}

/// A cluster file for `agora up` on loopback, port 0 (`up` binds each node's socket on a port
/// the kernel picks), with a secret drawn for this run.
fn cluster_file(
    dir: &Path,
    args: &BenchArgs,
    protocol: &str,
    n: usize,
) -> Result<std::path::PathBuf, UserError> {
    let mut text = format!(
        "cluster = \"bench\"\nprotocol = \"{protocol}\"\nsecret = \"{}\"\nseed = {}\nidle_ms = 1000\nmax_time_ms = 600000\n[params]\n",
        agora_net::Secret::random().to_hex(),
        args.seed,
    );
    for (name, value) in bench_params(protocol, n, args)?.given() {
        let value = match value {
            agora_protocols::params::Value::Text(t) => format!("{t:?}"),
            v => v.to_string(),
        };
        text.push_str(&format!("{name} = {value}\n"));
    }
    for i in 0..n {
        text.push_str(&format!("[[node]]\nid = {i}\naddr = \"127.0.0.1:0\"\n"));
    }
    let path = dir.join("bench-cluster.toml");
    std::fs::write(&path, text).map_err(|e| UserError(format!("cannot write {}: {e}", path.display())))?;
    Ok(path)
}

/// Runs `agora bench`; returns the process exit code.
pub fn run(args: &BenchArgs) -> Result<i32, UserError> {
    let exe = std::env::current_exe().map_err(|e| UserError(format!("cannot find the agora binary: {e}")))?;
    let tcp = tcp_runtime(&args.runtime)?;
    if args.processes && !tcp {
        return Err(UserError("--processes goes with --runtime tcp".into()));
    }
    let protocol = args.protocol.clone().unwrap_or_else(|| if tcp { "stream" } else { "flood" }.to_string());
    let sizes = if !args.nodes.is_empty() {
        args.nodes.clone()
    } else if tcp {
        vec![2, 4, 8]
    } else {
        vec![100_000, 1_000_000]
    };
    let mode = if !tcp {
        "one process"
    } else if args.processes {
        "process per node"
    } else {
        "one process"
    };
    validate(args, tcp, &protocol, &sizes)?;
    let dir = temp_dir()?;
    let mut rows = Vec::new();
    for &n in &sizes {
        if !args.json {
            eprintln!("bench: {protocol} on {} ({mode}) with {n} nodes ...", args.runtime);
        }
        let mut cmd = Command::new(&exe);
        if !tcp {
            cmd.args(["sim", &protocol]);
            common_args(&mut cmd, args, &protocol, n)?;
        } else if !args.processes {
            cmd.args(["run", &protocol]);
            common_args(&mut cmd, args, &protocol, n)?;
            cmd.arg("--data-dir").arg(dir.path().join(format!("run-{n}")));
        } else {
            let file = cluster_file(dir.path(), args, &protocol, n)?;
            cmd.args(["up", "--json", "--config"]).arg(file);
        }
        let out = cmd.output().map_err(|e| UserError(format!("cannot start {}: {e}", exe.display())))?;
        if out.status.code() == Some(2) {
            // The run's own one-line mistake, without its `agora: ` (ours adds one).
            let stderr = String::from_utf8_lossy(&out.stderr);
            let line = stderr.lines().rev().find_map(|l| l.strip_prefix("agora: "));
            return Err(UserError(line.unwrap_or("the benchmark run refused its arguments").to_string()));
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| UserError(format!("the benchmark run for {n} nodes printed no summary: {e}")))?;
        let num = |k: &str| v[k].as_f64().unwrap_or(0.0);
        rows.push(Row {
            protocol: protocol.clone(),
            runtime: args.runtime.clone(),
            mode: mode.to_string(),
            nodes: n,
            seed: args.seed,
            messages_delivered: v["messages_delivered"].as_u64().unwrap_or(0),
            wall_ms: num("wall_ms"),
            delivered_per_s: num("delivered_per_s"),
            peak_rss_mb: v["peak_rss_mb"].as_f64(),
            cpu_ms: v["cpu_ms"].as_f64(),
            violations: v["violations"].as_array().map_or(0, Vec::len),
        });
    }
    if args.json {
        println!("{}", serde_json::json!({ "rows": rows }));
    } else {
        print!("{}", table(&rows));
    }
    Ok(if rows.iter().all(|r| r.violations == 0) { 0 } else { 1 })
}

/// Every size's parameters, checked before the first run, so a mistake is one line.
fn validate(args: &BenchArgs, tcp: bool, protocol: &str, sizes: &[usize]) -> Result<(), UserError> {
    for &n in sizes {
        if tcp && !(2..=crate::values::MAX_TCP_NODES).contains(&n) {
            return Err(UserError(format!(
                "--nodes {n}: a TCP benchmark runs 2 to {} nodes",
                crate::values::MAX_TCP_NODES
            )));
        }
        agora_protocols::dispatch(protocol, &bench_params(protocol, n, args)?, Validate)?;
    }
    Ok(())
}

/// The flags `agora sim` and `agora run` take alike: the benchmark's parameters that
/// `protocol` reads.
fn common_args(c: &mut Command, args: &BenchArgs, protocol: &str, n: usize) -> Result<(), UserError> {
    c.args(["--nodes", &n.to_string(), "--seed", &args.seed.to_string(), "--json"]);
    for (name, value) in bench_params(protocol, n, args)?.given() {
        c.arg(format!("--{}", name.replace('_', "-"))).arg(value.to_string());
    }
    Ok(())
}

/// The benchmark's parameters, for whichever of them `protocol` reads.
fn bench_params(protocol: &str, n: usize, args: &BenchArgs) -> Result<agora_protocols::Params, UserError> {
    use agora_protocols::params::{MSGS, TOPOLOGY, WINDOW};
    let mut all = agora_protocols::Params::new(n, args.seed);
    all.set(&TOPOLOGY, args.topology.as_str())?;
    all.set(&MSGS, args.msgs)?;
    all.set(&WINDOW, args.window)?;
    Ok(all.only_used_by(agora_protocols::registry::entry(protocol)?.specs))
}

fn table(rows: &[Row]) -> String {
    let mut t = format!(
        "{:<9} {:<4} {:<17} {:>9} {:>12} {:>9} {:>13} {:>9} {:>9}\n",
        "protocol", "run", "mode", "nodes", "delivered", "wall ms", "delivered/s", "peak MiB", "cpu ms"
    );
    for r in rows {
        let opt = |v: Option<f64>| v.map_or("-".into(), |m| format!("{m:.0}"));
        t.push_str(&format!(
            "{:<9} {:<4} {:<17} {:>9} {:>12} {:>9.0} {:>13.0} {:>9} {:>9}\n",
            r.protocol,
            r.runtime,
            r.mode,
            r.nodes,
            r.messages_delivered,
            r.wall_ms,
            r.delivered_per_s,
            opt(r.peak_rss_mb),
            opt(r.cpu_ms)
        ));
    }
    t
}
