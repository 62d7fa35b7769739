//! Fault models: `agora protocols` says what each protocol tolerates, and `agora sim` and
//! `agora check` label a violation as expected exactly when the run's faults lie outside that
//! model — never a run within it.

use serde_json::Value;
use std::process::Command;

fn agora(args: &[&str]) -> (String, i32) {
    let out =
        Command::new(env!("CARGO_BIN_EXE_agora")).args(args).env_remove("AGORA_SHARD").output().unwrap();
    (String::from_utf8(out.stdout).unwrap(), out.status.code().unwrap_or(-1))
}

fn json(args: &[&str]) -> (Value, i32) {
    let (out, code) = agora(args);
    (serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}")), code)
}

#[test]
fn every_protocol_declares_what_it_tolerates() {
    let (out, code) = agora(&["protocols"]);
    assert_eq!(code, 0);
    let declared = out.lines().filter(|l| l.trim_start().starts_with("tolerates: ")).count();
    let protocols = out.lines().filter(|l| !l.starts_with(' ')).count();
    assert_eq!(declared, protocols, "{out}");
    assert!(!out.contains("not declared"), "{out}");
    assert!(
        out.contains(
            "tolerates: crash-stop, loss, duplication, reordering, partitions, pauses, clock skew and drift"
        ),
        "lamport-mutex over the link layer:\n{out}"
    );
}

#[test]
fn lamport_mutex_broken_by_loss_is_labelled_expected() {
    // Over the reliable link layer, its default, loss reaches no message of the algorithm.
    let (v, code) = json(&["check", "lamport-mutex", "--seeds", "91000..91040", "--loss", "0.1", "--json"]);
    assert_eq!((code, v["failed"].as_u64()), (0, Some(0)), "{v}");
    // On raw links, loss breaks it, outside its model.
    let (v, code) = json(&[
        "check",
        "lamport-mutex",
        "--links",
        "raw",
        "--seeds",
        "91000..91040",
        "--loss",
        "0.1",
        "--json",
    ]);
    assert_eq!(code, 1, "{v}");
    let failed = v["failed"].as_u64().unwrap();
    assert!(failed > 0, "loss breaks Lamport's algorithm: {v}");
    assert_eq!(v["failed_outside_model"].as_u64(), Some(failed), "{v}");
    for f in v["failures"].as_array().unwrap() {
        assert_eq!(f["outside_model"], serde_json::json!(["message loss"]), "{f}");
    }
}

#[test]
fn a_run_within_the_model_is_never_labelled() {
    // Raft tolerates loss, duplication and one replica of three down: nothing is outside.
    let args = [
        "sim",
        "raft",
        "--nodes",
        "3",
        "--loss",
        "0.1",
        "--duplicate",
        "0.1",
        "--crash",
        "1@50..200",
        "--json",
    ];
    let (v, code) = json(&args);
    assert_eq!(code, 0, "{v}");
    assert!(v.get("outside_model").is_none(), "{v}");
    // Two of three down at once is outside it, and the text says so.
    let (out, _) = agora(&["sim", "raft", "--nodes", "3", "--crash", "0..2@50..200"]);
    assert!(out.contains("fault model    outside it: 2 nodes down at once (it tolerates 1)"), "{out}");
    // A broken variant's violation within the model is a bug, and is not labelled.
    let (v, code) = json(&["check", "flood", "--variant", "no-dedup", "--seeds", "0..3", "--json"]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["failed_outside_model"].as_u64(), Some(0), "{v}");
}

#[test]
fn bully_under_loss_and_jittery_links_names_each_assumption() {
    let (out, _) = agora(&["sim", "bully", "--loss", "0.2", "--latency", "uniform:0.5,3", "--seed", "3"]);
    let line = out.lines().find(|l| l.starts_with("fault model")).unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("message loss (it needs a synchronous network)"), "{line}");
    assert!(line.contains("reordering (it needs FIFO links)"), "{line}");
    // FIFO links take reordering away.
    let (out, _) =
        agora(&["sim", "bully", "--loss", "0.2", "--latency", "uniform:0.5,3", "--fifo", "--seed", "3"]);
    assert!(!out.contains("reordering"), "{out}");
}
