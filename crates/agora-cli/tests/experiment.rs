//! `agora experiment raft-downtime` end to end: the files it writes, that a seed replays a
//! run and each trial alone, its JSON, and the mistakes it refuses.

mod common;

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn agora(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agora")).args(args).output().expect("the agora binary runs")
}

/// Runs the experiment with `extra` arguments, writing into `dir`; returns its CSV.
fn csv(dir: &Path, extra: &[&str]) -> String {
    let out_dir = dir.to_str().unwrap();
    let mut args = vec!["experiment", "raft-downtime", "--out", out_dir];
    args.extend_from_slice(extra);
    let out = agora(&args);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::read_to_string(dir.join("raft-downtime.csv")).unwrap()
}

#[test]
fn a_seed_replays_the_run_and_each_trial_alone() {
    let (a, b, one) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let run = ["--ranges", "150-155,100-200", "--trials", "4", "--seed", "7"];
    let first = csv(a.path(), &run);
    assert_eq!(first, csv(b.path(), &run), "the same seed, the same trials");
    let rows: Vec<Vec<&str>> = first.lines().skip(1).map(|l| l.split(',').collect()).collect();
    assert_eq!(first.lines().next().unwrap().split(',').nth(6), Some("downtime_ms"));
    assert_eq!(rows.len(), 8);
    assert!(rows.iter().all(|r| r[3] == "elected" && r[6].parse::<f64>().unwrap() > 0.0), "{first}");
    let seeds: Vec<&str> = rows.iter().take(4).map(|r| r[2]).collect();
    assert_eq!(seeds, ["7", "8", "9", "10"]);
    // Trial 2 of 100-200 (seed 9), alone: the same crash, the same downtime.
    let alone = csv(one.path(), &["--ranges", "100-200", "--trials", "1", "--seed", "9"]);
    let alone: Vec<&str> = alone.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(alone[1], "0");
    assert_eq!(alone[2..], rows[6][2..], "trial 2 of 100-200 replayed alone");
    let svg = std::fs::read_to_string(a.path().join("raft-downtime.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("150-155 ms") && svg.contains("100-200 ms"));
}

#[test]
fn json_gives_every_ranges_figures() {
    let out = agora(&["experiment", "raft-downtime", "--ranges", "50-100", "--trials", "5", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "exactly one JSON line: {stdout}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["replicas"], 5);
    assert_eq!(v["pre_vote"], false);
    let r = &v["ranges"][0];
    assert_eq!(
        (r["range"].as_str(), r["trials"].as_u64(), r["elected"].as_u64()),
        (Some("50-100"), Some(5), Some(5))
    );
    let (median, max) = (r["median_ms"].as_f64().unwrap(), r["max_ms"].as_f64().unwrap());
    // At least half a minimum timeout (the crash falls within a heartbeat interval of half of
    // it) and at most the longest.
    assert!(25.0 <= median && median <= max, "{r}");
}

#[test]
fn bad_ranges_and_counts_are_refused_in_one_line() {
    use common::assert_mistake;
    let rd = |extra: &[&'static str]| [&["experiment", "raft-downtime"][..], extra].concat();
    assert_mistake(&rd(&["--ranges", "200-100"]), "200-100");
    assert_mistake(&rd(&["--ranges", "0-0"]), "0-0");
    assert_mistake(&rd(&["--ranges", "abc"]), "MIN-MAX");
    assert_mistake(&rd(&["--ranges", "150-300,12-"]), "12-");
    assert_mistake(&rd(&["--ranges", "150-7000"]), "6000");
    assert_mistake(&rd(&["--trials", "0"]), "--trials");
    assert_mistake(&rd(&["--latency", "uniform:9,4"]), "latency");
    assert_mistake(&rd(&["--pre-vote", "maybe"]), "--pre-vote");
    assert_mistake(&["experiment", "raft-uptime"], "raft-uptime");
}
