//! `agora bench`: simulator throughput and peak memory, each cluster size in its own process
//! so that peak memory belongs to that size alone.

use crate::cli::BenchArgs;
use crate::error::UserError;
use serde::Serialize;
use std::process::Command;

#[derive(Serialize)]
struct Row {
    protocol: String,
    topology: String,
    nodes: usize,
    seed: u64,
    messages_delivered: u64,
    wall_ms: f64,
    delivered_per_s: f64,
    peak_rss_mb: Option<f64>,
    violations: usize,
}

pub fn run(args: &BenchArgs) -> Result<i32, UserError> {
    let exe = std::env::current_exe().map_err(|e| UserError(format!("cannot find the agora binary: {e}")))?;
    let mut rows = Vec::new();
    for &n in &args.nodes {
        if !args.json {
            eprintln!("bench: {} on {} with {n} nodes ...", args.protocol, args.topology);
        }
        let out = Command::new(&exe)
            .args(["sim", &args.protocol, "--nodes", &n.to_string(), "--topology", &args.topology])
            .args(["--seed", &args.seed.to_string(), "--json"])
            .output()
            .map_err(|e| UserError(format!("cannot start {}: {e}", exe.display())))?;
        if out.status.code() == Some(2) {
            return Err(UserError(String::from_utf8_lossy(&out.stderr).trim().to_string()));
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| UserError(format!("the benchmark run for {n} nodes printed no summary: {e}")))?;
        let num = |k: &str| v[k].as_f64().unwrap_or(0.0);
        rows.push(Row {
            protocol: args.protocol.clone(),
            topology: args.topology.clone(),
            nodes: n,
            seed: args.seed,
            messages_delivered: v["messages_delivered"].as_u64().unwrap_or(0),
            wall_ms: num("wall_ms"),
            delivered_per_s: num("delivered_per_s"),
            peak_rss_mb: v["peak_rss_mb"].as_f64(),
            violations: v["violations"].as_array().map_or(0, Vec::len),
        });
    }
    if args.json {
        println!("{}", serde_json::json!({ "rows": rows }));
    } else {
        println!(
            "{:<10} {:<12} {:>10} {:>14} {:>10} {:>16} {:>12}",
            "protocol", "topology", "nodes", "delivered", "wall ms", "delivered/s", "peak MiB"
        );
        for r in &rows {
            println!(
                "{:<10} {:<12} {:>10} {:>14} {:>10.0} {:>16.0} {:>12}",
                r.protocol,
                r.topology,
                r.nodes,
                r.messages_delivered,
                r.wall_ms,
                r.delivered_per_s,
                r.peak_rss_mb.map_or("-".into(), |m| format!("{m:.0}"))
            );
        }
    }
    Ok(if rows.iter().all(|r| r.violations == 0) { 0 } else { 1 })
}
