//! `agora election` end to end: in the simulator and over TCP, its files, `register` and
//! `verify`, and bad input.

mod common;

use serde_json::Value;
use std::process::{Command, Output};

fn agora(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agora")).args(args).output().expect("the agora binary runs")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn check_report(v: &Value, voters: u64) {
    for k in [
        "cast",
        "acknowledged",
        "rejected",
        "counted",
        "results",
        "replicas_agree",
        "results_digest",
        "ballots_per_s",
        "latency_ms_p50",
        "latency_ms_p99",
    ] {
        assert!(v.get(k).is_some(), "no `{k}` in {v}");
    }
    assert_eq!(v["replicas_agree"], true);
    assert_eq!(v["checks_passed"], true, "{}", v["summary"]["violations"]);
    // Every voter's valid ballot is acknowledged and counted; bad ones are rejected.
    assert_eq!(v["counted"].as_u64(), Some(voters));
    assert_eq!(v["acknowledged"].as_u64(), Some(voters));
    assert_eq!(v["cast"].as_u64().unwrap(), voters + v["rejected"].as_u64().unwrap());
    let results = v["results"].as_object().unwrap();
    assert_eq!(results.len(), 50);
    let total: u64 =
        results.values().flat_map(|s| s.as_object().unwrap().values()).map(|c| c.as_u64().unwrap()).sum();
    assert_eq!(total, voters);
}

#[test]
fn a_simulated_election_writes_its_map_board_and_receipts_and_receipts_verify() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = agora(&[
        "election",
        "--sim",
        "--voters",
        "3000",
        "--bad-ballots",
        "0.02",
        "--loss",
        "0.2",
        "--crash-replicas",
        "2",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let v = json(&o);
    check_report(&v, 3000);
    assert!(v["rejected"].as_u64().unwrap() > 0);
    for f in ["results.json", "results.csv", "map.svg", "board.csv", "receipts.csv", "receipts.jsonl"] {
        assert!(out.join(f).exists(), "{f}");
    }
    let svg = std::fs::read_to_string(out.join("map.svg")).unwrap();
    assert_eq!(svg.matches("<rect x=").count(), 50 + 3, "50 tiles and 3 legend swatches");
    // Every receipt verifies; a tampered one does not.
    let receipts = std::fs::read_to_string(out.join("receipts.csv")).unwrap();
    let line = receipts.lines().nth(17).unwrap();
    let receipt = dir.path().join("receipt.csv");
    std::fs::write(&receipt, line).unwrap();
    let verify = || {
        agora(&[
            "election",
            "verify",
            "--receipt",
            receipt.to_str().unwrap(),
            "--results",
            out.to_str().unwrap(),
        ])
    };
    let ok = verify();
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stdout));
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("INCLUDED"));
    let mut f: Vec<String> = line.split(',').map(String::from).collect();
    f[4] = f[4].chars().rev().collect();
    std::fs::write(&receipt, f.join(",")).unwrap();
    let bad = verify();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stdout).starts_with("NOT INCLUDED"));
}

#[test]
fn an_election_over_tcp_counts_every_ballot() {
    let o = agora(&["election", "--voters", "5000", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let v = json(&o);
    check_report(&v, 5000);
    assert_eq!(v["runtime"], "tcp");
    assert!(v["summary"]["fsyncs"].as_u64().unwrap() > 0);
}

#[test]
fn an_election_file_and_a_registered_roll() {
    let dir = tempfile::tempdir().unwrap();
    let roll = dir.path().join("roll.csv");
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/election.toml");
    let r = agora(&[
        "election",
        "register",
        "--election",
        file,
        "--voters",
        "1200",
        "--out",
        roll.to_str().unwrap(),
    ]);
    assert_eq!(r.status.code(), Some(0), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(std::fs::read_to_string(&roll).unwrap().lines().count(), 1201);
    let o = agora(&["election", "--sim", "--election", file, "--roll", roll.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let v = json(&o);
    check_report(&v, 1200);
    assert_eq!(v["national"].as_object().unwrap().len(), 4, "the file's four options");
}

#[test]
fn bad_election_files_rolls_and_flags_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/election.toml"))
            .unwrap();
    let no_texas = write("no-texas.toml", &example.replace("\"TX\"", "\"ZZ\""));
    let twice = write("twice.toml", &example.replace("\"HI\"]", "\"HI\", \"TX\"]"));
    let missing = write("missing.toml", &example.replace(", \"TX\"]", "]"));
    let no_options = write(
        "no-options.toml",
        &example.replace("options = [\"Alder\", \"Birch\", \"Cedar\", \"Dogwood\"]", "options = []"),
    );
    let garbage = write("garbage.toml", "id = \n");
    let bad_roll =
        write("roll.csv", "voter,state,credential\n0,CA,00112233445566778899aabbccddeeff\n2,CA,00\n");
    let wide_roll = write("wide.csv", &format!("0,TX,{}\n", "é".repeat(16)));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["election", "--election", &no_texas], "`ZZ` is not a state"),
        (vec!["election", "--election", &twice], "TX is in two regions"),
        (vec!["election", "--election", &missing], "TX is in no region"),
        (vec!["election", "--election", &no_options], "0 options"),
        (vec!["election", "--election", &garbage], "election file"),
        (vec!["election", "--election", "/nonexistent.toml"], "cannot read election file"),
        (vec!["election", "--roll", &bad_roll], "line 3"),
        (vec!["election", "--roll", &wide_roll], "32 hex digits"),
        (vec!["election", "--voters", "0"], "'0' for '--voters"),
        (vec!["election", "--replicas", "0"], "replicas"),
        (vec!["election", "--bad-ballots", "0.9"], "--bad-ballots"),
        (vec!["election", "--loss", "0.1"], "--loss needs --sim"),
        (vec!["election", "--duplicate", "0.1", "--reorder", "0.2"], "--duplicate, --reorder need --sim"),
        (vec!["election", "verify", "--receipt", "/nonexistent", "--results", "/tmp"], "cannot read receipt"),
    ];
    for (args, expected) in cases {
        common::assert_mistake(&args, expected);
    }
}

#[test]
fn every_fault_flag_without_sim_is_refused_by_name() {
    // Over TCP the election injects no faults: each flag is refused, none silently ignored.
    let flags: [&[&str]; 16] = [
        &["--faults", "/nonexistent.toml"],
        &["--latency", "constant:5"],
        &["--loss", "0.1"],
        &["--duplicate", "0.1"],
        &["--reorder", "0.1"],
        &["--reorder-delay-ms", "5"],
        &["--fifo"],
        &["--partition", "0..2|2..5@100..500"],
        &["--one-way", "0..2>2..5@100..500"],
        &["--crash", "0@100..400"],
        &["--pause", "0@100..400"],
        &["--skew", "0=5"],
        &["--drift", "0=100"],
        &["--regions", "aws"],
        &["--random-crashes", "2"],
        &["--crash-replicas", "1"],
    ];
    for flag in flags {
        let mut args = vec!["election", "--voters", "10"];
        args.extend_from_slice(flag);
        let out = agora(&args);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(&format!("{} needs --sim", flag[0])), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing ran");
    }
}
