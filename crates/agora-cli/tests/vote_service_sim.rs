//! `agora sim vote-service` and `agora check vote-service` end to end: a campaign with loss
//! and crashes of servers and members passes, a broken variant fails with exit code 1 and the
//! property it breaks, and bad parameters are one line and exit code 2.

use std::process::{Command, Output};

fn agora(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agora")).args(args).output().expect("the agora binary runs")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn a_campaign_with_loss_and_crashes_passes() {
    let out = agora(&[
        "check",
        "vote-service",
        "-n",
        "3",
        "--seeds",
        "0..15",
        "--loss",
        "0.05",
        "--random-crashes",
        "1",
        "--partition",
        "0,3,4|1,2,5..9@80..600",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("checked 15 seeds of vote-service"), "{}", text(&out));
}

#[test]
fn one_run_reports_every_property_judged() {
    let out = agora(&["sim", "vote-service", "-n", "3", "--seed", "3"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    for p in [
        "one-vote-per-member",
        "members-caught-up",
        "fail-after-timeout",
        "no-work-after-end",
        "log-matching",
    ] {
        assert!(t.lines().any(|l| l.starts_with("checks") && l.contains(p)), "{p} not judged ok: {t}");
    }
    assert!(t.contains("BALLOT") && t.contains("PUSH"), "{t}");
}

#[test]
fn a_broken_variant_fails_the_campaign() {
    let args = ["check", "vote-service", "-n", "3", "--seeds", "0..10", "--variant", "early-expiry"];
    let out = agora(&[&args[..], &["--random-crashes", "2"]].concat());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("`fail-after-timeout`"), "{}", text(&out));
}

#[test]
fn bad_parameters_are_one_line_and_exit_2() {
    for (args, says) in [
        (&["-n", "4"][..], "odd number of servers"),
        (&["--members", "0"][..], "members"),
        (&["--members", "many"][..], "members"),
        (&["--session-ms", "30"][..], "at least 4 election timeouts"),
        (&["--variant", "sloppy"][..], "sloppy"),
        (&["--clients", "3"][..], "clients"),
    ] {
        let out = agora(&[&["check", "vote-service", "--seeds", "0..2"][..], args].concat());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn agora_vote_sim_runs_the_service_in_the_simulator_with_faults() {
    let out = agora(&["vote", "--sim", "--loss", "0.05", "--random-crashes", "1", "--seed", "3", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["protocol"], "vote-service");
    assert_eq!(v["runtime"], "sim");
    // 3 servers and the default 24 members.
    assert_eq!(v["nodes"], 27);
    assert!(v["properties"].as_array().unwrap().iter().any(|p| p == "fail-after-timeout"), "{v}");
    assert!(v["violations"].as_array().unwrap().is_empty(), "{v}");
    // Fault flags need the simulator; an even number of servers is refused.
    for args in [&["vote", "--loss", "0.1"][..], &["vote", "--sim", "--servers", "4"]] {
        let out = agora(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
    }
}
