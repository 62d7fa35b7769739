//! Scenario tests: message counts against their formulas, checkers across many seeds and
//! faults, and a deliberately broken variant caught.

mod common;

use agora_protocols::params::{ORIGIN, TOPOLOGY, VARIANT};
use agora_protocols::{dispatch, Params};
use agora_sim::SimConfig;
use common::{check, params, Sim};

#[test]
fn all_to_all_sends_n_times_n_minus_one_messages() {
    for n in [1, 2, 4, 10, 33] {
        let r = check("all-to-all", &Params::new(n, 1), "");
        assert_eq!(r.totals.sent, (n * (n - 1)) as u64, "N = {n}");
        assert_eq!(r.totals.delivered, r.totals.sent);
        assert_eq!(r.ops.begun, n as u64);
        assert!(r.violations.is_empty(), "{:?}", r.violations);
    }
}

#[test]
fn flood_message_count_is_twice_the_edges_minus_n_minus_one() {
    for n in [2, 5, 16, 100] {
        let complete = check("flood", &params(n, 1, "complete"), "");
        assert_eq!(complete.totals.sent, ((n - 1) * (n - 1)) as u64, "complete, N = {n}");
        let ring = check("flood", &params(n, 1, "ring"), "");
        let ring_edges = if n == 2 { 1 } else { n };
        assert_eq!(ring.totals.sent, (2 * ring_edges - (n - 1)) as u64, "ring, N = {n}");
    }
    for (n, k) in [(10, 3), (100, 4), (1000, 8)] {
        let r = check("flood", &params(n, 7, &format!("regular:{k}")), "");
        assert_eq!(r.totals.sent, (n * (k - 1) + 1) as u64, "regular:{k}, N = {n}");
        assert!(r.violations.is_empty());
        assert_eq!(r.ops.completed, 1);
    }
    let grid = check("flood", &params(9, 1, "grid"), "");
    assert_eq!(grid.totals.sent, 2 * 12 - 8, "3x3 grid has 12 edges");
}

#[test]
fn flood_and_all_to_all_hold_their_properties_under_faults_across_seeds() {
    let fault_sets = [
        "[network]\nlatency = { dist = \"uniform\", min_ms = 1, max_ms = 20 }\nduplicate = 0.2\nreorder = 0.3",
        "[network]\nloss = 0.2\nlatency = { dist = \"exponential\", mean_ms = 5 }",
        "[[crash]]\nnodes = \"3..6\"\nat_ms = 1\nrestart_ms = 30\n[[pause]]\nnodes = 7\nat_ms = 0\nresume_ms = 15",
        "[[partition]]\ngroups = [\"0..10\"]\nat_ms = 2\nheal_ms = 9\n[network]\nduplicate = 0.5",
    ];
    for faults in fault_sets {
        for seed in 0..60 {
            for topology in ["regular:4", "ring", "grid"] {
                let r = check("flood", &params(24, seed, topology), faults);
                assert!(
                    r.violations.is_empty(),
                    "flood {topology} seed {seed} [{faults}]: {:?}",
                    r.violations
                );
            }
            let r = check("all-to-all", &Params::new(12, seed), faults);
            assert!(r.violations.is_empty(), "all-to-all seed {seed} [{faults}]: {:?}", r.violations);
        }
    }
}

#[test]
fn flood_without_loss_reaches_every_node_that_stayed_up() {
    // Node 3 of a ring of 8 crashes before the rumour arrives: nodes 4..=5 are reached only the
    // other way round; every node but 3 delivers and the at-end check passes.
    let r = check("flood", &params(8, 1, "ring"), "[[crash]]\nnodes = 3\nat_ms = 0");
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert!(r.totals.dropped >= 1);
}

#[test]
fn the_broken_flood_variant_is_caught_and_replays_identically() {
    let mut p = params(30, 11, "regular:4");
    p.set(&VARIANT, "no-dedup").unwrap();
    let faults = "[network]\nlatency = { dist = \"uniform\", min_ms = 1, max_ms = 9 }";
    let a = check("flood", &p, faults);
    let b = check("flood", &p, faults);
    assert_eq!(a.violations.len(), 1);
    assert_eq!(a.violations[0].property, "no-duplication");
    assert_eq!(a.violations, b.violations, "the same seed replays the same violation");
    assert_eq!(a.digest, b.digest);
}

#[test]
fn a_flood_that_does_not_relay_fails_the_at_end_check() {
    let mut p = params(10, 1, "ring");
    p.set(&VARIANT, "no-relay").unwrap();
    let r = check("flood", &p, "");
    assert_eq!(r.violations.len(), 1);
    assert_eq!(r.violations[0].property, "reachable-delivered");
    assert!(r.violations[0].detail.starts_with("7 reachable node(s)"), "{}", r.violations[0].detail);
}

#[test]
fn different_seeds_give_different_random_graphs_and_runs() {
    let faults = "[network]\nlatency = { dist = \"lognormal\", median_ms = 3, sigma = 0.5 }";
    let digests: std::collections::HashSet<u64> =
        (0..20).map(|s| check("flood", &params(50, s, "regular:4"), faults).digest.value()).collect();
    assert_eq!(digests.len(), 20);
}

#[test]
fn bad_parameters_are_refused_with_a_reason() {
    let err = |name: &str, p: Params| dispatch(name, &p, Sim(SimConfig::new(1))).err().unwrap().to_string();
    assert!(err("paxos", Params::new(3, 1)).contains("unknown protocol `paxos`"));
    assert!(err("flood", Params::new(0, 1)).starts_with("nodes: 0"));
    assert!(err("flood", Params::new(3, 1).with(&ORIGIN, 9u32)).contains("origin: 9 is not a node"));
    assert!(err("flood", Params::new(5, 1).with(&TOPOLOGY, "regular:3")).contains("even"));
    assert!(err("all-to-all", Params::new(3, 1).with(&VARIANT, "x")).contains("variant"));
}
