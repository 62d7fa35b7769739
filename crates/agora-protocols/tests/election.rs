//! Leader election: message counts of best and worst cases against the documented formulas,
//! the failure path (leader crash, detection by timeout, new election), and campaigns.

mod common;

use agora_protocols::params::START;
use agora_protocols::Params;

fn election(n: usize, start: Option<u32>, seed: u64) -> Params {
    let p = Params::new(n, seed);
    match start {
        Some(s) => p.with(&START, s),
        None => p,
    }
}

fn sent(r: &common::Run, kind: &str) -> u64 {
    r.metrics.by_kind().iter().find(|(k, _)| *k == kind).map_or(0, |(_, c)| c.sent)
}

/// Ends runs shortly after the elections, before heartbeats dominate.
const SHORT: &str = "";

fn short(protocol: &str, p: &Params, faults: &str) -> common::Run {
    common::check_until(protocol, p, faults, 400)
}

#[test]
fn bully_initial_election_costs_match_the_formula() {
    for n in [2u64, 4, 8, 12] {
        for s in [0, n / 2, n - 1] {
            let r = short("bully", &election(n as usize, Some(s as u32), 1), SHORT);
            let k = n - s;
            assert_eq!(sent(&r, "ELECTION"), k * (k - 1) / 2, "N = {n}, start {s}");
            assert_eq!(sent(&r, "OK"), k * (k - 1) / 2);
            assert_eq!(sent(&r, "COORDINATOR"), n - 1);
            assert!(r.violations.is_empty(), "{:?}", r.violations);
        }
        // Worst case N²−1, best case N−1.
        let worst = short("bully", &election(n as usize, Some(0), 1), SHORT);
        assert_eq!(sent(&worst, "ELECTION") + sent(&worst, "OK") + sent(&worst, "COORDINATOR"), n * n - 1);
        let best = short("bully", &election(n as usize, Some(n as u32 - 1), 1), SHORT);
        assert_eq!(sent(&best, "ELECTION") + sent(&best, "OK") + sent(&best, "COORDINATOR"), n - 1);
    }
}

#[test]
fn bully_after_the_leader_crashes() {
    let n = 8u64;
    let crash = "[[crash]]\nnodes = 7\nat_ms = 50";
    // Best case: node 6 notices first — 1 ELECTION (unanswered) + N−2 COORDINATOR.
    let best = short("bully", &election(8, Some(6), 1), crash);
    let initial = 1 + 1 + (n - 1); // node 6's first election: ELECTION and OK from 7, then COORDINATOR
    let after = sent(&best, "ELECTION") + sent(&best, "OK") + sent(&best, "COORDINATOR") - initial;
    assert_eq!(after, n - 1);
    // Worst case: node 0 notices — N(N−1) messages.
    let worst = short("bully", &election(8, Some(0), 1), crash);
    let initial = n * n - 1;
    let after = sent(&worst, "ELECTION") + sent(&worst, "OK") + sent(&worst, "COORDINATOR") - initial;
    assert_eq!(after, n * (n - 1));
    for r in [&best, &worst] {
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        let last = r.observations.iter().rev().find(|(_, n, o)| *n == 0 && o.starts_with("Leader")).unwrap();
        assert!(last.2.contains("leader: n6"), "{last:?}");
    }
}

#[test]
fn ring_election_costs_match_the_formula() {
    for n in [2u64, 3, 5, 8, 13] {
        for s in [0, n - 1] {
            let r = short("ring-election", &election(n as usize, Some(s as u32), 1), SHORT);
            assert_eq!(sent(&r, "ELECTION"), (n - 1 - s) + n, "N = {n}, start {s}");
            assert_eq!(sent(&r, "ELECTED"), n);
            assert_eq!(sent(&r, "ACK"), sent(&r, "ELECTION") + sent(&r, "ELECTED"), "one ACK per hop");
            assert!(r.violations.is_empty(), "{:?}", r.violations);
        }
        let all = short("ring-election", &election(n as usize, None, 1), SHORT);
        assert_eq!(sent(&all, "ELECTION") + sent(&all, "ELECTED"), 3 * n - 1, "all initiate, N = {n}");
    }
}

#[test]
fn ring_election_heals_around_a_crashed_leader() {
    let r = short("ring-election", &election(6, Some(0), 1), "[[crash]]\nnodes = 5\nat_ms = 50");
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    for node in 0..5 {
        let last =
            r.observations.iter().rev().find(|(_, n, o)| *n == node && o.starts_with("Leader")).unwrap();
        assert!(last.2.contains("leader: n4"), "node {node}: {last:?}");
    }
}

const STOP: &str = "[random_crashes]\ncount = 2\nfrom_ms = 0\nto_ms = 300\nrestart = false\n";
const RESTART: &str =
    "[random_crashes]\ncount = 3\nfrom_ms = 0\nto_ms = 300\nmin_down_ms = 1\nmax_down_ms = 200\n";

#[test]
fn elections_hold_under_crashes() {
    let run = |p: &Params, faults: &str, protocol: &str| {
        let r = common::check_until(protocol, p, faults, 1_200);
        assert!(r.violations.is_empty(), "{protocol} seed {} [{faults}]: {:?}", p.seed, r.violations);
    };
    let jitter = "[network]\nlatency = { dist = \"uniform\", min_ms = 0.5, max_ms = 3 }\nduplicate = 0.1\n";
    for seed in 0..120 {
        for protocol in ["bully", "ring-election"] {
            run(&election(6, None, seed), STOP, protocol);
            run(&election(6, None, seed), &format!("{jitter}{STOP}"), protocol);
        }
        run(&election(6, None, seed), RESTART, "bully");
    }
}
