//! The federated election count in the simulator: every acknowledged ballot counted exactly
//! once and the same results on every replica, under loss, duplication, reordering,
//! partitions and crashes of replicas, coordinators, regions and citizens.

mod common;

use agora_protocols::params::{BAD_BALLOTS, TIMEOUT_MS, VOTERS, WINDOW};
use agora_protocols::{dispatch, Params};
use agora_sim::{Faults, SimConfig};
use common::{random_crashes, Run, Sim};

/// 3 replicas, 2 coordinators, 5 regions, 5 citizens: nodes 0..15.
fn election(voters: u64, seed: u64) -> Params {
    Params::new(3, seed).with(&VOTERS, voters).with(&WINDOW, 64u32).with(&BAD_BALLOTS, 0.02)
}

fn run(p: &Params, faults: &str) -> Run {
    let faults = Faults::from_toml(faults).unwrap();
    faults.validate(p.nodes + 12).unwrap();
    let mut cfg = SimConfig::new(p.seed).with_faults(faults);
    cfg.max_time = agora_core::Time::from_millis(600_000);
    cfg.keep_observations = true;
    dispatch("election", p, Sim(cfg)).unwrap()
}

fn count(r: &Run, prefix: &str) -> usize {
    r.observations.iter().filter(|o| o.2.starts_with(prefix)).count()
}

/// The per-state results a run published (as text), checking that they were published.
fn published(r: &Run) -> String {
    let res = r.observations.iter().find(|o| o.2.starts_with("Results")).expect("results were published");
    let s = &res.2;
    // Counts and the number counted; the digest also covers the order of the log.
    s[s.find("per_state").unwrap()..s.find(", root").unwrap()].to_string()
}

fn campaign(seeds: std::ops::Range<u64>, voters: u64, faults: &str) {
    for seed in seeds {
        let r = run(&election(voters, seed), faults);
        assert!(r.violations.is_empty(), "seed {seed} [{faults}]: {:?}", r.violations);
        assert!(count(&r, "Results") >= 10, "seed {seed}: every region and citizen has the results");
    }
}

/// A legislature of one replica commits each entry when its own write is durable (the
/// `Synced` timer), so every receipt leaves in a timer's step: what that step counted must be
/// reported in it, before the receipt reaches its citizen, or `receipt-counted` sees a receipt
/// for a leaf no replica has reported (as it did until the legislator reported on timers).
#[test]
fn a_lone_replica_reports_what_it_counts_before_its_receipts_arrive() {
    for seed in 0..5 {
        let p = Params::new(1, seed).with(&VOTERS, 600u64).with(&WINDOW, 64u32).with(&BAD_BALLOTS, 0.02);
        let r = run(&p, "");
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        assert!(count(&r, "Results") >= 10, "seed {seed}: every region and citizen has the results");
    }
}

#[test]
fn lossy_duplicating_reordering_links() {
    let faults = "[network]\nloss = 0.3\nduplicate = 0.2\nreorder = 0.3\nreorder_delay_ms = 20\n";
    campaign(0..30, 600, faults);
}

#[test]
fn replicas_crash_and_restart() {
    let faults = "[network]\nloss = 0.1\n[random_crashes]\ncount = 4\nnodes = \"0..3\"\nfrom_ms = 0\nto_ms = 1500\nmin_down_ms = 20\nmax_down_ms = 400\n";
    campaign(0..30, 600, faults);
}

#[test]
fn coordinators_regions_and_citizens_crash_too() {
    // Node 3 is a coordinator, 6 a region, 11 a citizen.
    let faults = "[network]\nloss = 0.05\n\
        [[crash]]\nnodes = \"3\"\nat_ms = 30\nrestart_ms = 400\n\
        [[crash]]\nnodes = \"6\"\nat_ms = 60\nrestart_ms = 300\n\
        [[crash]]\nnodes = \"11\"\nat_ms = 45\nrestart_ms = 250\n";
    campaign(0..20, 600, faults);
    campaign(0..20, 600, &random_crashes(6, 800.0, true));
}

#[test]
fn partitions_come_and_heal() {
    let faults = "[[partition]]\ngroups = [\"0\", \"1..15\"]\nat_ms = 40\nheal_ms = 500\n\
        [[one_way]]\nfrom = \"3..5\"\nto = \"0..3\"\nat_ms = 600\nheal_ms = 900\n";
    campaign(0..20, 600, faults);
}

#[test]
fn while_a_majority_is_down_ballots_are_refused_not_lost() {
    // Two of three replicas down from 30 ms to 2 s: coordinators answer "unavailable", the
    // citizens cast again, and in the end every ballot has its final answer.
    let faults = "[[crash]]\nnodes = \"1..3\"\nat_ms = 30\nrestart_ms = 2000\n";
    for seed in 0..10 {
        let r = run(&election(2000, seed).with(&TIMEOUT_MS, 10.0), faults);
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        assert!(count(&r, "Results") >= 10, "seed {seed}");
        let late = r.observations.iter().filter(|o| o.0 > 2000.0 && o.2.contains("Counted(Receipt")).count();
        assert!(late > 0, "seed {seed}: ballots were acknowledged after the majority returned");
    }
}

#[test]
fn the_same_ballots_give_the_same_results_whatever_the_faults() {
    let calm = run(&election(800, 5), "");
    assert!(calm.violations.is_empty(), "{:?}", calm.violations);
    let stormy = run(
        &election(800, 5),
        &format!("[network]\nloss = 0.3\nduplicate = 0.2\n{}", random_crashes(5, 1000.0, true)),
    );
    assert!(stormy.violations.is_empty(), "{:?}", stormy.violations);
    assert_eq!(published(&calm), published(&stormy));
}

#[test]
fn bad_ballots_are_rejected_with_their_reason() {
    let r = run(&election(500, 3).with(&BAD_BALLOTS, 0.2), "");
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    for reason in ["BadCredential", "NoSuchOption", "AlreadyVoted"] {
        assert!(
            r.observations.iter().any(|o| o.2.contains(&format!("Rejected({reason})"))),
            "no ballot was rejected as {reason}"
        );
    }
}
