//! Communication patterns: central, ring-token and gossip against their formulas, and
//! campaigns under loss, duplication and crashes.

mod common;

use agora_protocols::params::{FANOUT, REQUESTS, ROUNDS};
use agora_protocols::Params;
use common::{campaign, check};

#[test]
fn central_costs_two_per_exchange_per_client() {
    for (n, r) in [(2u64, 1u32), (4, 2), (10, 5)] {
        let run = check("central", &Params::new(n as usize, 1).with(&REQUESTS, r), "");
        assert_eq!(run.totals.sent, 2 * (n - 1) * (1 + r as u64), "N = {n}, R = {r}");
        assert!(run.violations.is_empty());
        assert_eq!(run.ops.completed, (n - 1) * (1 + r as u64));
    }
}

#[test]
fn ring_token_costs_n_per_round() {
    for (n, r) in [(3u64, 1u32), (4, 3), (16, 2)] {
        let run = check("ring-token", &Params::new(n as usize, 1).with(&ROUNDS, r), "");
        assert_eq!(run.totals.sent, n * r as u64, "N = {n}, {r} rounds");
        assert!(run.violations.is_empty());
    }
}

#[test]
fn gossip_reaches_everyone_for_far_less_than_all_to_all() {
    for n in [16usize, 64, 256] {
        let run = check("gossip", &Params::new(n, 7).with(&FANOUT, 3u32), "");
        assert!(run.violations.is_empty(), "{:?}", run.violations);
        let delivered = run.observations.iter().filter(|(_, _, o)| o.starts_with("Delivered")).count();
        assert_eq!(delivered, n);
        let rounds = (n as f64).log2().ceil() as u64 + 4;
        assert!(run.totals.sent <= 3 * n as u64 * rounds, "at most k pushes per node per round");
        // O(kN log N) against N(N−1): cheaper from 64 nodes on, far cheaper at 256.
        let all_to_all = (n * (n - 1)) as u64;
        let factor = if n >= 256 { 4 } else { 1 };
        if n >= 64 {
            assert!(
                run.totals.sent * factor < all_to_all,
                "gossip {} vs all-to-all {all_to_all}",
                run.totals.sent
            );
        }
    }
}

#[test]
fn patterns_stay_safe_under_loss_duplication_and_crashes() {
    let faults = "[network]\nlatency = { dist = \"uniform\", min_ms = 0.5, max_ms = 3 }\nloss = 0.1\nduplicate = 0.1\n[random_crashes]\ncount = 2\nfrom_ms = 0\nto_ms = 100\nmin_down_ms = 1\nmax_down_ms = 50\n";
    for (protocol, param) in [("central", &REQUESTS), ("ring-token", &ROUNDS), ("gossip", &FANOUT)] {
        campaign(
            protocol,
            |s| Params::new(8, s).with(param, if param == &ROUNDS { 2u32 } else { 3 }),
            0..200,
            faults,
        );
    }
    // Without loss, the at-end properties are judged too.
    let lossless = "[network]\nlatency = { dist = \"uniform\", min_ms = 0.5, max_ms = 3 }\nduplicate = 0.1\n";
    for (protocol, param) in [("central", &REQUESTS), ("ring-token", &ROUNDS), ("gossip", &FANOUT)] {
        campaign(
            protocol,
            |s| Params::new(8, s).with(param, if param == &ROUNDS { 2u32 } else { 3 }),
            0..200,
            lossless,
        );
    }
}
