//! The `agora` binary end to end: JSON summaries, exit codes, reproduce commands, diagrams,
//! and every documented user error.

mod common;

use serde_json::Value;
use std::process::{Command, Output};

fn agora(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agora")).args(args).output().expect("the agora binary runs")
}

fn json(args: &[&str]) -> (Value, i32) {
    let out = agora(args);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "exactly one JSON line: {stdout}");
    (serde_json::from_str(&stdout).expect("valid JSON"), out.status.code().unwrap())
}

/// `stream --topology`: each node streams to its neighbours only — M·N·K messages on a
/// K-regular graph, not M·N(N−1) — and every one of those streams is judged complete, in the
/// simulator and over TCP.
#[test]
fn stream_on_a_topology_streams_to_its_neighbours_only() {
    for runtime in ["sim", "run"] {
        let args = [runtime, "stream", "--nodes", "10", "--msgs", "5", "--topology", "regular:4", "--json"];
        let (v, code) = json(&args);
        assert_eq!(code, 0, "{v}");
        assert_eq!(v["messages_delivered"], 5 * 10 * 4, "{runtime}: {v}");
        assert_eq!(v["violations"], serde_json::json!([]), "{runtime}: {v}");
        let judged: Vec<&str> =
            v["properties"].as_array().unwrap().iter().filter_map(|p| p.as_str()).collect();
        assert!(judged.contains(&"all-streams-complete"), "{runtime}: {v}");
    }
}

#[test]
fn sim_json_has_every_documented_field() {
    let (v, code) =
        json(&["sim", "flood", "--nodes", "50", "--topology", "regular:4", "--seed", "3", "--json"]);
    assert_eq!(code, 0);
    for key in [
        "protocol",
        "nodes",
        "seed",
        "messages_sent",
        "messages_delivered",
        "messages_dropped",
        "bytes_sent",
        "virtual_time_ms",
        "wall_ms",
        "trace_digest",
        "violations",
        "by_kind",
        "latency_ms",
        "msgs_per_op",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert_eq!(v["protocol"], "flood");
    assert_eq!(v["nodes"], 50);
    assert_eq!(v["seed"], 3);
    assert_eq!(v["messages_sent"], 50 * 3 + 1);
    assert_eq!(v["violations"].as_array().unwrap().len(), 0);
    assert_eq!(v["trace_digest"].as_str().unwrap().len(), 16);
}

#[test]
fn the_same_command_gives_the_same_digest() {
    let args = ["sim", "all-to-all", "--nodes", "6", "--latency", "exp:4", "--loss", "0.2", "--json"];
    let (a, _) = json(&args);
    let (b, _) = json(&args);
    assert_eq!(a["trace_digest"], b["trace_digest"]);
    let (c, _) = json(&[&args[..], &["--seed", "2"]].concat());
    assert_ne!(a["trace_digest"], c["trace_digest"]);
}

#[test]
fn a_violation_exits_1_and_its_reproduce_command_replays_it() {
    let (v, code) = json(&[
        "sim",
        "flood",
        "--nodes",
        "40",
        "--topology",
        "regular:4",
        "--variant",
        "no-dedup",
        "--latency",
        "uniform:1,5",
        "--partition",
        "0..5|5..40@50..60",
        "--seed",
        "9",
        "--json",
    ]);
    assert_eq!(code, 1);
    let violation = &v["violations"][0];
    assert_eq!(violation["property"], "no-duplication");
    assert_eq!(violation["seed"], 9);
    let cmd = violation["reproduce"].as_str().unwrap();
    assert!(cmd.starts_with("agora sim flood ") && cmd.ends_with("--seed 9"), "{cmd}");
    assert!(cmd.contains("'0..5|5..40@50..60'"), "shell-quoted: {cmd}");

    // Replay it through a shell, exactly as a user would paste it.
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_agora")).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new("sh").arg("-c").arg(format!("{cmd} --json")).env("PATH", path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let replay: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(replay["violations"][0]["property"], violation["property"]);
    assert_eq!(replay["violations"][0]["node"], violation["node"]);
    assert_eq!(replay["violations"][0]["at_ms"], violation["at_ms"]);
    assert_eq!(replay["trace_digest"], v["trace_digest"]);
}

#[test]
fn the_table_names_the_violation_and_the_command() {
    let out = agora(&["sim", "flood", "--nodes", "10", "--topology", "ring", "--variant", "no-relay"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("VIOLATION      `reachable-delivered`"), "{text}");
    assert!(text
        .contains("reproduce      agora sim flood --nodes 10 --topology ring --variant no-relay --seed 1"));
}

#[test]
fn diagram_and_per_node_files_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("run.svg");
    let csv = dir.path().join("nodes.csv");
    let out = agora(&[
        "sim",
        "flood",
        "--nodes",
        "6",
        "--topology",
        "ring",
        "--loss",
        "0.3",
        "--crash",
        "2@1..4",
        "--diagram",
        svg.to_str().unwrap(),
        "--per-node",
        csv.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let svg = std::fs::read_to_string(svg).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("RUMOR") && svg.contains("crash"));
    let csv = std::fs::read_to_string(csv).unwrap();
    assert_eq!(csv.lines().count(), 7);
    assert!(csv.starts_with("node,sent,delivered,dropped"));
}

#[test]
fn fault_files_load_and_flags_add_to_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("faults.toml");
    std::fs::write(&file, "[network]\nloss = 1.0\n").unwrap();
    let (v, code) =
        json(&["sim", "all-to-all", "--nodes", "4", "--faults", file.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0);
    assert_eq!(v["messages_delivered"], 0);
    let (v, _) = json(&[
        "sim",
        "all-to-all",
        "--nodes",
        "4",
        "--faults",
        file.to_str().unwrap(),
        "--loss",
        "0",
        "--json",
    ]);
    assert_eq!(v["messages_delivered"], 12);
}

#[test]
fn the_example_fault_file_is_valid() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/faults.toml");
    let (v, code) = json(&["sim", "all-to-all", "--nodes", "12", "--faults", example, "--json"]);
    assert_eq!(code, 0, "{v}");
    // The one-way partition from node 8 to nodes 9..12 alone loses three greetings.
    assert!(v["messages_dropped"].as_u64().unwrap() >= 3, "{v}");
}

/// Every documented user mistake: exit code 2 and one line naming the problem.
#[test]
fn user_mistakes_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad_toml = dir.path().join("bad.toml");
    std::fs::write(&bad_toml, "[network]\nloss = \"lots\"\n").unwrap();
    let unknown_key = dir.path().join("unknown.toml");
    std::fs::write(&unknown_key, "[network]\nlos = 0.1\n").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["sim", "paxos"], "unknown protocol `paxos`"),
        (vec!["sim", "flood", "--loss", "1.5"], "'1.5' for '--loss"),
        (vec!["sim", "flood", "--duplicate", "-0.1"], "--duplicate"),
        (vec!["sim", "flood", "--nodes", "0"], "0 is not in 1..=1000000"),
        (vec!["sim", "flood", "--nodes", "many"], "invalid value 'many'"),
        (vec!["sim", "flood", "--faults", bad_toml.to_str().unwrap()], "fault file"),
        (vec!["sim", "flood", "--faults", unknown_key.to_str().unwrap()], "los"),
        (vec!["sim", "flood", "--faults", "/nonexistent/f.toml"], "cannot read fault file"),
        (vec!["sim", "flood", "--frobnicate"], "unexpected argument '--frobnicate'"),
        (vec!["sim", "flood", "--topology", "star"], "unknown topology `star`"),
        (vec!["sim", "flood", "--topology", "regular:3", "--nodes", "5"], "must be even"),
        (vec!["sim", "flood", "--origin", "7"], "--origin 7"),
        (vec!["sim", "flood", "--latency", "normal:3"], "latency `normal:3`"),
        (vec!["sim", "flood", "--crash", "9@10"], "outside 0..5"),
        (vec!["sim", "flood", "--crash", "1"], "--crash `1`"),
        (vec!["sim", "flood", "--pause", "1@50..20"], "must come after"),
        (vec!["sim", "flood", "--partition", "0..2|x@1"], "--partition"),
        (vec!["sim", "flood", "--skew", "1:5"], "--skew"),
        (vec!["sim", "flood", "--max-time-ms", "-1"], "--max-time-ms"),
        (vec!["sim", "flood", "--nodes", "60", "--diagram", "x.svg"], "at most 50 nodes"),
        (vec!["sim", "flood", "--variant", "nonsense"], "no variant `nonsense`"),
        (vec!["sim", "all-to-all", "--nodes", "4001"], "above its limit"),
        (vec!["sim", "raft", "--fanout", "3"], "--fanout is not a parameter of raft"),
        (vec!["sim", "2pc", "--no-votes", "0"], "--no-votes 0: participants are nodes 1..5"),
        (vec!["sim", "raft", "--reads", "2"], "'2' for '--reads"),
        (vec!["sim", "raft", "--nodes", "16"], "at most 15"),
        (vec!["sim", "raft", "--snapshot-every", "0"], "--snapshot-every"),
        (vec!["sim", "raft", "--crash", "7@10"], "outside 0..7"),
        (vec!["check", "raft", "--variant", "fast"], "no variant `fast`"),
        (vec!["frobnicate"], "unrecognized subcommand"),
    ];
    for (args, expected) in cases {
        common::assert_mistake(&args, expected);
    }
}

#[test]
fn a_diagram_of_too_many_events_is_refused_after_the_run() {
    let out = agora(&["sim", "all-to-all", "--nodes", "50", "--diagram", "/tmp/agora-never-written.svg"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("a diagram shows at most 5000"));
}

#[test]
fn help_is_there_for_a_newcomer() {
    let out = agora(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("agora sim flood") && text.contains("Exit codes"));
    let out = agora(&["protocols"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("flood") && text.contains("no-duplication") && text.contains("all-greeted"));
}

#[test]
fn complexity_rows_match_their_formulas_and_carbon_scales_linearly() {
    let base = ["complexity", "--nodes", "2,4,8", "--json"];
    let (v, code) = json(&base);
    assert_eq!(code, 0, "{v}");
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 15 * 3);
    for r in rows {
        for key in ["algorithm", "nodes", "messages", "bytes", "energy_j", "co2e_g"] {
            assert!(r.get(key).is_some(), "missing {key}");
        }
        if let Some(f) = r["formula"].as_u64() {
            assert_eq!(r["messages"].as_u64().unwrap(), f, "{r}");
        }
        assert_eq!(r["violations"], 0, "{r}");
    }
    let find = |v: &Value, a: &str, n: u64| {
        v["rows"].as_array().unwrap().iter().find(|r| r["algorithm"] == a && r["nodes"] == n).unwrap().clone()
    };
    assert_eq!(find(&v, "2pc", 4)["messages"], 12);
    assert_eq!(find(&v, "3pc", 4)["messages"], 18);
    let (half, _) = json(&[&base[..], &["--carbon-intensity", "0.2145"]].concat());
    for r in rows {
        let other = find(&half, r["algorithm"].as_str().unwrap(), r["nodes"].as_u64().unwrap());
        let (a, b) = (r["co2e_g"].as_f64().unwrap(), other["co2e_g"].as_f64().unwrap());
        assert!((a - 2.0 * b).abs() <= 1e-12 * a.max(1.0), "{a} vs {b}");
        assert_eq!(r["energy_j"], other["energy_j"]);
    }
}

#[test]
fn complexity_writes_csv_and_charts() {
    let dir = tempfile::tempdir().unwrap();
    let out = agora(&[
        "complexity",
        "--algorithms",
        "2pc,bully",
        "--nodes",
        "2,4",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let csv = std::fs::read_to_string(dir.path().join("complexity.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5);
    for chart in ["messages.svg", "carbon.svg"] {
        let svg = std::fs::read_to_string(dir.path().join(chart)).unwrap();
        assert!(svg.contains("<svg") && svg.contains("bully") && svg.contains("2pc"), "{chart}");
    }
}

#[test]
fn clocks_print_the_seed_reports_notation() {
    let out = agora(&["clocks", "lamport"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("PI_0_0(1) MS_0(2) PI_0_2(3) MR_1(5) MS_2(6)"), "{text}");
    assert!(text.contains("MR_3(2) MR_0(3) MS_1(4)"));
    assert!(text.contains("MS_3(1) PI_2_9(2) MR_2(7)"));
    let out = agora(&["clocks", "vector", "--compare", "MS_0,MR_3", "--compare", "MS_3,MR_2"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("MS_0 ∥ MR_3: concurrent"), "{text}");
    assert!(text.contains("MS_3 → MR_2: MS_3 happened before MR_2"));
    assert_eq!(agora(&["clocks", "vector", "--scenario", "MR0; MR1"]).status.code(), Some(2));
    assert_eq!(agora(&["clocks", "sundial"]).status.code(), Some(2));
}

#[test]
fn check_campaigns_report_failing_seeds_with_their_replay() {
    let (v, code) = json(&[
        "check",
        "3pc",
        "--nodes",
        "4",
        "--seeds",
        "0..40",
        "--partition",
        "0..2|2..4@2.5..300",
        "--latency",
        "uniform:0.5,1.5",
        "--json",
    ]);
    assert_eq!(code, 1);
    let failures = v["failures"].as_array().unwrap();
    assert!(!failures.is_empty());
    let first = &failures[0];
    assert_eq!(first["property"], "atomicity");
    let reproduce = first["reproduce"].as_str().unwrap();
    assert!(
        reproduce.starts_with("agora sim 3pc") && reproduce.ends_with(&format!("--seed {}", first["seed"]))
    );
    let (v, code) =
        json(&["check", "2pc", "--nodes", "4", "--seeds", "0..100", "--random-crashes", "3", "--json"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["runs"], 100);
    assert_eq!(agora(&["check", "2pc", "--seeds", "5..5"]).status.code(), Some(2));
}

#[test]
fn raft_campaigns_pass_and_a_broken_variant_is_reported_with_its_replay() {
    // Faults may name the clients (nodes 3 and 4 here) as well as the replicas.
    let (v, code) = json(&[
        "check",
        "raft",
        "--nodes",
        "3",
        "--seeds",
        "0..60",
        "--loss",
        "0.2",
        "--duplicate",
        "0.1",
        "--crash",
        "4@30..200",
        "--random-crashes",
        "2",
        "--json",
    ]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["failed"], 0);
    let (v, code) = json(&[
        "check",
        "raft",
        "--variant",
        "no-dedup",
        "--nodes",
        "3",
        "--seeds",
        "0..20",
        "--loss",
        "0.3",
        "--duplicate",
        "0.2",
        "--json",
    ]);
    assert_eq!(code, 1);
    let first = &v["failures"][0];
    assert_eq!(first["property"], "exactly-once");
    let replay: Vec<String> =
        first["reproduce"].as_str().unwrap().split(' ').skip(1).map(str::to_string).collect();
    let replay: Vec<&str> = replay.iter().map(String::as_str).collect();
    assert_eq!(agora(&replay).status.code(), Some(1), "the replay finds the violation again");
}

#[test]
fn multicast_compares_the_orders_with_one_command() {
    let dir = tempfile::tempdir().unwrap();
    let (v, code) = json(&[
        "multicast",
        "--peers",
        "2,4",
        "--msgs",
        "10",
        "--reps",
        "2",
        "--latency",
        "uniform:1,20",
        "--out",
        dir.path().to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{v}");
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 5 * 2 * 2);
    for r in rows {
        for key in [
            "order",
            "peers",
            "msgs",
            "rep",
            "disagreements",
            "fifo_violations",
            "causal_violations",
            "messages",
            "latency_ms_p50",
            "latency_ms_p99",
        ] {
            assert!(r.get(key).is_some(), "missing {key}");
        }
        if r["order"].as_str().unwrap().starts_with("total") {
            assert_eq!(r["disagreements"], 0, "{r}");
        }
        assert_eq!(r["delivered"], r["expected"], "{r}");
    }
    assert!(rows.iter().any(|r| r["order"] == "unordered" && r["disagreements"].as_u64().unwrap() > 0));
    for f in ["multicast.csv", "disagreements.svg", "latency.svg", "cost.svg"] {
        assert!(dir.path().join(f).exists(), "{f}");
    }
    assert_eq!(agora(&["multicast", "--order", "chaos"]).status.code(), Some(2));
}

#[test]
fn a_run_cut_by_its_time_limit_says_what_was_not_judged() {
    let (v, code) = json(&["sim", "flood", "--max-time-ms", "0.5", "--json"]);
    assert_eq!(code, 0);
    assert_eq!(v["end"], "time-limit");
    let not_judged = v["not_judged"].as_array().unwrap();
    assert_eq!(not_judged.len(), 1, "{v}");
    assert_eq!(not_judged[0]["property"], "reachable-delivered");
    assert_eq!(not_judged[0]["reason"], "time limit");
    let judged: Vec<&str> = v["properties"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert!(!judged.contains(&"reachable-delivered"), "{judged:?}");
    let text = String::from_utf8(agora(&["sim", "flood", "--max-time-ms", "0.5"]).stdout).unwrap();
    let ok_line = text.lines().find(|l| l.starts_with("checks")).unwrap();
    assert!(!ok_line.contains("reachable-delivered"), "{ok_line}");
    assert!(text.contains("not judged     reachable-delivered (time limit)"), "{text}");
    // A run that ends on its own judges everything.
    let (v, _) = json(&["sim", "flood", "--json"]);
    assert_eq!(v["not_judged"].as_array().unwrap().len(), 0, "{v}");
    assert!(v["properties"].as_array().unwrap().iter().any(|p| p == "reachable-delivered"));
}

#[test]
fn a_lossy_run_does_not_call_its_delivery_property_ok() {
    let (v, _) = json(&["sim", "flood", "--loss", "0.5", "--json"]);
    assert_eq!(v["not_judged"][0]["reason"], "messages may have been lost", "{v}");
}

#[test]
fn a_campaign_counts_the_runs_that_were_not_fully_judged() {
    let (v, code) = json(&["check", "flood", "--seeds", "0..3", "--max-time-ms", "0.5", "--json"]);
    assert_eq!(code, 0);
    assert_eq!(v["not_judged"]["runs"], 3, "{v}");
    assert_eq!(v["not_judged"]["properties"][0], "reachable-delivered");
}
