//! The voting service in the simulator: every property holds under loss, duplication,
//! reordering, crashes of servers (the leader included) and of members, and partitions;
//! crashed members are failed by the cluster; runs replay from their seed; the broken
//! variants are caught.

mod common;

use agora_protocols::params::{MEMBERS, VARIANT};
use agora_protocols::Params;
use common::{check, Run};

/// 3 servers (nodes 0..3) and 6 members (nodes 3..9).
fn service(seed: u64) -> Params {
    Params::new(3, seed).with(&MEMBERS, 6u32)
}

fn count(r: &Run, prefix: &str) -> usize {
    r.observations.iter().filter(|o| o.2.starts_with(prefix)).count()
}

/// Events the servers applied whose text contains `what`, once each (server 0..3's reports
/// repeat them).
fn events(r: &Run, what: &str) -> usize {
    let mut seen = std::collections::BTreeSet::new();
    for o in r.observations.iter().filter(|o| o.2.starts_with("Server(Events(")) {
        for part in o.2.split("), (") {
            if part.contains(what) {
                seen.insert(
                    part.trim_start_matches("Server(Events([(").split(',').next().unwrap().to_string(),
                );
            }
        }
    }
    seen.len()
}

/// No violation, votes acknowledged, and every at-end property judged.
fn assert_clean(r: &Run, what: &str) {
    assert!(r.violations.is_empty(), "{what}: {:?}", r.violations);
    assert!(count(r, "VoteAcked") > 0, "{what}: no vote acknowledged");
    assert!(r.not_judged.is_empty(), "{what}: not judged {:?} (end {} ms)", r.not_judged, r.end_ms);
}

const LOSSY: &str = "[network]\nlatency = { dist = \"uniform\", min_ms = 1.0, max_ms = 4.0 }\nloss = 0.05\n\
    duplicate = 0.05\nreorder = 0.1\nreorder_delay_ms = 10\n";

const JITTER: &str = "[network]\nlatency = { dist = \"uniform\", min_ms = 1.0, max_ms = 4.0 }\n";

#[test]
fn every_property_holds_under_loss_duplication_and_reordering() {
    for seed in 0..20 {
        let r = check("vote-service", &service(seed), LOSSY);
        assert_clean(&r, &format!("seed {seed}"));
        assert!(events(&r, "Consensus") <= 1, "seed {seed}");
    }
}

/// One server (seed % 3) crashes while members vote and comes back 400 ms later: its members
/// resume their sessions elsewhere at once; in some seeds it is the leader. (A server down for
/// good is the same for safety, but a leader with a follower missing never settles, so such a
/// run ends at its time limit with the at-end properties not judged.)
#[test]
fn a_crashed_server_loses_nothing_and_its_members_resume_elsewhere() {
    let mut leader_crashed = 0;
    for seed in 0..12 {
        let victim = seed % 3;
        let faults = format!("{LOSSY}[[crash]]\nnodes = \"{victim}\"\nat_ms = 110\nrestart_ms = 510\n");
        let r = check("vote-service", &service(seed), &faults);
        assert_clean(&r, &format!("seed {seed}"));
        let leader = r.observations.iter().rev().find(|o| o.0 < 110.0 && o.2.starts_with("Raft(Leader"));
        leader_crashed += usize::from(leader.is_some_and(|o| o.1 == victim as u32));
        assert!(count(&r, "Session { sid") > 6, "seed {seed}: no member resumed");
    }
    assert!(leader_crashed > 0, "the leader never crashed");
}

/// Two members (not the first, which opens the question) crash for good: the cluster fails
/// each one that had a session, once, and only after the timeout (`fail-after-timeout`,
/// judged in every run). Without loss, no live member fails: under loss a live member's
/// heartbeats may all be lost for the timeout, and it is failed and logs in again.
#[test]
fn crashed_members_are_failed_by_the_cluster() {
    let mut failed = 0;
    for seed in 0..12 {
        let faults = format!("{JITTER}[[crash]]\nnodes = \"4,5\"\nat_ms = 120\n");
        let r = check("vote-service", &service(seed), &faults);
        assert_clean(&r, &format!("seed {seed}"));
        let logged_in = (4..6)
            .filter(|&m| r.observations.iter().any(|o| o.1 == m && o.0 < 120.0 && o.2.starts_with("Session")))
            .count();
        let fails = events(&r, "Fail");
        assert!(
            logged_in <= fails && fails <= 2,
            "seed {seed}: {fails} FAILs, {logged_in} crashed in session"
        );
        failed += fails;
    }
    assert!(failed >= 12, "{failed} FAILs in 12 runs");
}

/// Server 0 and two members are cut off from the rest: the majority fails the two members,
/// who log in again once the partition heals.
#[test]
fn members_cut_off_with_a_minority_server_fail_and_come_back() {
    for seed in 0..12 {
        let faults = "[network]\nlatency = { dist = \"uniform\", min_ms = 1.0, max_ms = 3.0 }\n\
            [[partition]]\ngroups = [\"0,3,4\", \"1,2,5..9\"]\nat_ms = 80\nheal_ms = 700\n";
        let r = check("vote-service", &service(seed), faults);
        assert_clean(&r, &format!("seed {seed}"));
    }
}

/// Random crashes of any node (servers and members, restarted from what they persisted) with
/// loss: `agora check vote-service --random-crashes 2 --loss 0.05`.
#[test]
fn random_crashes_of_servers_and_members() {
    for seed in 0..20 {
        let faults = format!(
            "{LOSSY}[random_crashes]\ncount = 2\nfrom_ms = 0\nto_ms = 300\nmin_down_ms = 10\nmax_down_ms = 400\n"
        );
        let r = check("vote-service", &service(seed), &faults);
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
    }
}

/// Crashes that lose the node's storage (one server, members): the server rejoins as Raft's
/// rejoin allows and opens a client session of a new id (a reused one would be answered with
/// the old session's results, never applied: `no-work-after-end` caught it); a member that lost
/// its token logs in again.
#[test]
fn crashes_that_lose_storage() {
    for seed in 0..20 {
        let server = 1 + seed % 2;
        let faults = format!(
            "{LOSSY}[[crash]]\nnodes = \"{server}\"\nat_ms = 150\nrestart_ms = 300\nwipe = \"rejoin\"\n\
             [random_crashes]\ncount = 2\nnodes = \"3..9\"\nfrom_ms = 0\nto_ms = 400\nmin_down_ms = 10\n\
             max_down_ms = 300\nwipe = \"rejoin\"\n"
        );
        let r = check("vote-service", &service(seed), &faults);
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
    }
}

#[test]
fn a_run_replays_from_its_seed() {
    let a = check("vote-service", &service(5), LOSSY);
    let b = check("vote-service", &service(5), LOSSY);
    assert_eq!(a.digest, b.digest);
    let c = check("vote-service", &service(6), LOSSY);
    assert_ne!(a.digest, c.digest);
}

fn caught(variant: &str, faults: &str) -> Vec<&'static str> {
    (0..12)
        .filter_map(|seed| {
            let r = check("vote-service", &service(seed).with(&VARIANT, variant), faults);
            r.violations.first().map(|v| v.property)
        })
        .collect()
}

#[test]
fn an_early_expiry_is_caught() {
    let faults = format!("{LOSSY}[[crash]]\nnodes = \"3,4\"\nat_ms = 90\n");
    let found = caught("early-expiry", &faults);
    assert!(found.contains(&"fail-after-timeout"), "{found:?}");
}

#[test]
fn members_that_skip_holes_are_caught() {
    let found = caught("no-catch-up", "[network]\nloss = 0.1\n");
    assert!(found.contains(&"members-see-every-event"), "{found:?}");
}

#[test]
fn a_vote_acknowledged_without_the_log_is_caught() {
    let found = caught("ack-unapplied", "");
    assert!(found.contains(&"acked-vote-counted"), "{found:?}");
}
