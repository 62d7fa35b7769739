//! Two- and three-phase commit: message counts against 4(n−1) and 6(n−1), votes, blocking and
//! its resolution, campaigns under crashes and loss, and 3PC's known failure under partitions.

mod common;

use agora_protocols::params::NO_VOTES;
use agora_protocols::Params;
use common::{campaign, check, random_crashes};

fn commit(n: usize, seed: u64) -> Params {
    Params::new(n, seed)
}

fn decisions(r: &common::Run) -> Vec<(f64, u32, String)> {
    r.observations.iter().filter(|(_, _, o)| o.starts_with("Decided")).cloned().collect()
}

#[test]
fn failure_free_message_counts_match_the_formulas() {
    for n in [2, 3, 4, 5, 8, 16] {
        let two = check("2pc", &commit(n, 1), "");
        assert_eq!(two.totals.sent, 4 * (n as u64 - 1), "2PC with {n} nodes");
        let three = check("3pc", &commit(n, 1), "");
        assert_eq!(three.totals.sent, 6 * (n as u64 - 1), "3PC with {n} nodes");
        for r in [&two, &three] {
            assert!(r.violations.is_empty());
            assert_eq!(decisions(r).len(), n);
            assert!(decisions(r).iter().all(|(_, _, d)| d.contains("commit: true")));
            assert_eq!(r.ops.completed, 1);
        }
    }
    // The seed report's figures for 4 nodes.
    assert_eq!(check("2pc", &commit(4, 1), "").totals.sent, 12);
    assert_eq!(check("3pc", &commit(4, 1), "").totals.sent, 18);
}

#[test]
fn one_no_vote_aborts_everywhere() {
    for protocol in ["2pc", "3pc"] {
        let p = commit(5, 1).with(&NO_VOTES, vec![2]);
        let r = check(protocol, &p, "");
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        let d = decisions(&r);
        assert_eq!(d.len(), 5, "{protocol}: {d:?}");
        assert!(d.iter().all(|(_, _, o)| o.contains("commit: false")), "{protocol}");
    }
}

/// The coordinator crashes after its VOTE-REQs left and before any vote arrived, and comes
/// back at 200 ms.
const COORDINATOR_DOWN: &str = "[[crash]]\nnodes = 0\nat_ms = 1.5\nrestart_ms = 200";

#[test]
fn two_phase_commit_blocks_until_the_coordinator_recovers() {
    let r = check("2pc", &commit(4, 1), COORDINATOR_DOWN);
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    let blocked: Vec<_> = r.observations.iter().filter(|(_, _, o)| o == "Blocked").collect();
    assert_eq!(blocked.len(), 3, "every participant reports being blocked");
    let d = decisions(&r);
    assert_eq!(d.len(), 4);
    assert!(d.iter().all(|(t, _, o)| *t >= 200.0 && o.contains("commit: false")), "{d:?}");
}

#[test]
fn three_phase_commit_terminates_without_the_coordinator() {
    let r = check("3pc", &commit(4, 1), COORDINATOR_DOWN);
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    let d = decisions(&r);
    let participants: Vec<_> = d.iter().filter(|(_, n, _)| *n != 0).collect();
    assert_eq!(participants.len(), 3);
    assert!(participants.iter().all(|(t, _, o)| *t < 200.0 && o.contains("commit: false")), "{d:?}");
    // After pre-commit, a coordinator crash leads the survivors to commit.
    let r = check("3pc", &commit(4, 1), "[[crash]]\nnodes = 0\nat_ms = 2.5");
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    let d = decisions(&r);
    assert_eq!(d.len(), 3, "{d:?}");
    assert!(d.iter().all(|(_, _, o)| o.contains("commit: true")), "{d:?}");
}

#[test]
fn two_phase_commit_is_safe_under_crashes_loss_and_duplication() {
    let faults = format!(
        "{}[network]\nloss = 0.1\nduplicate = 0.05\nlatency = {{ dist = \"uniform\", min_ms = 0.5, max_ms = 3 }}\n",
        random_crashes(3, 8.0, true)
    );
    campaign("2pc", |s| commit(4, s), 0..300, &faults);
    campaign("2pc", |s| commit(3, s).with(&NO_VOTES, vec![1]), 0..100, &faults);
    campaign("2pc", |s| commit(5, s), 0..100, &random_crashes(1, 8.0, false));
}

#[test]
fn three_phase_commit_is_safe_and_live_under_crashes() {
    campaign("3pc", |s| commit(4, s), 0..300, &random_crashes(3, 8.0, true));
    campaign("3pc", |s| commit(5, s), 0..100, &random_crashes(2, 8.0, false));
    campaign("3pc", |s| commit(5, s).with(&NO_VOTES, vec![3]), 0..100, &random_crashes(3, 8.0, true));
}

#[test]
fn three_phase_commit_splits_under_a_partition_as_theory_predicts() {
    // Coordinator and participant 1 on one side, 2 and 3 on the other, right after pre-commit
    // reached some: each side terminates on its own. The checker catches the split decision.
    let faults = "[[partition]]\ngroups = [\"0..2\", \"2..4\"]\nat_ms = 2.5\nheal_ms = 300\n[network]\nlatency = { dist = \"uniform\", min_ms = 0.5, max_ms = 1.5 }";
    let failing = (0..50).filter(|&s| {
        let r = check("3pc", &commit(4, s), faults);
        r.violations.first().is_some_and(|v| v.property == "atomicity")
    });
    assert!(failing.count() > 10);
    // 2PC blocks instead, and stays safe.
    campaign("2pc", |s| commit(4, s), 0..50, faults);
}
