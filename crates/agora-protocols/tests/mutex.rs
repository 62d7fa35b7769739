//! Mutual exclusion: messages per entry against 3(N−1), 2(N−1) and 3; never two nodes inside;
//! campaigns under the faults each algorithm tolerates; Lamport's algorithm served by the
//! reliable link layer under loss, duplication and reordering, and caught on raw links, where
//! its FIFO-and-reliable assumption is broken.

mod common;

use agora_protocols::params::{LINKS, REQUESTS};
use agora_protocols::Params;
use common::{campaign, check};

fn mutex(n: usize, requests: u32, seed: u64) -> Params {
    Params::new(n, seed).with(&REQUESTS, requests)
}

/// Lamport's algorithm on raw links: the network's faults reach it.
fn raw(n: usize, requests: u32, seed: u64) -> Params {
    mutex(n, requests, seed).with(&LINKS, "raw")
}

#[test]
fn messages_per_entry_match_the_formulas() {
    for n in [2u64, 3, 5, 8] {
        let r = 3;
        let entries = n * r as u64;
        let lamport = check("lamport-mutex", &raw(n as usize, r, 1), "");
        assert_eq!(lamport.totals.sent, 3 * (n - 1) * entries, "Lamport, N = {n}");
        let ra = check("ricart-agrawala", &mutex(n as usize, r, 1), "");
        assert_eq!(ra.totals.sent, 2 * (n - 1) * entries, "Ricart-Agrawala, N = {n}");
        let central = check("central-mutex", &mutex(n as usize, r, 1), "");
        assert_eq!(central.totals.sent, 3 * (n - 1) * r as u64, "central, N = {n} ({} clients)", n - 1);
        let token = check("token-ring-mutex", &mutex(n as usize, r, 1), "");
        // The token must reach every node; beyond that it also circulates while nodes think.
        assert!(token.totals.sent >= n - 1, "token ring, N = {n}: {}", token.totals.sent);
        for run in [&lamport, &ra, &central, &token] {
            assert!(run.violations.is_empty(), "{:?}", run.violations);
        }
        assert_eq!(lamport.ops.completed, entries);
        assert_eq!(ra.ops.completed, entries);
        assert_eq!(central.ops.completed, (n - 1) * r as u64);
        assert_eq!(token.ops.completed, entries);
    }
}

#[test]
fn entries_never_overlap_in_time() {
    for protocol in ["lamport-mutex", "ricart-agrawala", "central-mutex", "token-ring-mutex"] {
        let r = check(
            protocol,
            &mutex(6, 4, 3),
            "[network]\nlatency = { dist = \"uniform\", min_ms = 0.2, max_ms = 2 }\nfifo = true",
        );
        let mut inside: Option<u32> = None;
        for (_, node, o) in &r.observations {
            match o.as_str() {
                "Entered" => {
                    assert_eq!(inside, None, "{protocol}: node {node} entered while {inside:?} inside");
                    inside = Some(*node);
                }
                "Exited" => inside = None,
                _ => {}
            }
        }
        assert!(r.violations.is_empty());
    }
}

const STOP: &str = "[random_crashes]\ncount = 2\nfrom_ms = 0\nto_ms = 20\nrestart = false\n";
const RESTART: &str =
    "[random_crashes]\ncount = 2\nfrom_ms = 0\nto_ms = 20\nmin_down_ms = 1\nmax_down_ms = 30\n";
const JITTER: &str =
    "[network]\nlatency = { dist = \"uniform\", min_ms = 0.5, max_ms = 3 }\nduplicate = 0.1\n";

#[test]
fn safe_under_the_faults_each_algorithm_tolerates() {
    let lossy = format!("{JITTER}loss = 0.05\n");
    for protocol in ["ricart-agrawala", "central-mutex", "token-ring-mutex"] {
        campaign(protocol, |s| mutex(5, 3, s), 0..150, &format!("{lossy}{STOP}"));
        campaign(protocol, |s| mutex(5, 3, s), 0..150, &format!("{lossy}{RESTART}"));
    }
    // Lamport's algorithm: reliable FIFO links, crash-stop. On raw FIFO links as it assumes,
    // and over the link layer with loss and reordering on top.
    campaign("lamport-mutex", |s| raw(5, 3, s), 0..300, &format!("{JITTER}fifo = true\n{STOP}"));
    let reorder = format!("{lossy}reorder = 0.3\n");
    campaign("lamport-mutex", |s| mutex(5, 3, s), 0..150, &format!("{reorder}{STOP}"));
}

#[test]
fn lamport_mutex_over_the_link_layer_serves_every_request_under_loss() {
    // 20% loss, duplicates, reordering and jitter, no crash: the link layer sends again until
    // every message is through, so every request is served, and that is judged.
    let faults = format!("{JITTER}loss = 0.2\nreorder = 0.3\n");
    for seed in 0..100 {
        let r = check("lamport-mutex", &mutex(4, 3, seed), &faults);
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        assert!(r.not_judged.is_empty(), "seed {seed}: not judged {:?}", r.not_judged);
        assert_eq!(r.ops.completed, 12, "seed {seed}");
    }
    // A partition that heals: the messages it swallowed are sent again after it.
    let split = format!(
        "{JITTER}loss = 0.1\n[[partition]]\ngroups = [\"0..2\", \"2..4\"]\nat_ms = 2\nheal_ms = 400\n"
    );
    for seed in 0..30 {
        let r = check("lamport-mutex", &mutex(4, 3, seed), &split);
        assert!(
            r.violations.is_empty() && r.not_judged.is_empty(),
            "seed {seed}: {:?} {:?}",
            r.violations,
            r.not_judged
        );
        assert_eq!(r.ops.completed, 12, "seed {seed}");
    }
}

#[test]
fn lamport_mutex_without_reliable_links_is_caught() {
    let lossy = format!("{JITTER}fifo = true\nloss = 0.05\n");
    let caught = (0..100)
        .filter(|&s| {
            let r = check("lamport-mutex", &raw(5, 3, s), &lossy);
            r.violations.first().is_some_and(|v| v.property == "mutual-exclusion")
        })
        .count();
    assert!(caught > 5, "{caught} of 100 seeds caught");
}
