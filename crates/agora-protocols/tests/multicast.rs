//! Ordered multicast: every guarantee holds across seeds on jittery, lossy, duplicating links;
//! unordered multicast shows the problem; and message counts per multicast match each
//! algorithm's cost; the sequencer fails over after crashes, on lossy links too, without
//! losing, duplicating or reordering a survivor's message.

mod common;

use agora_core::{Setup, Time};
use agora_protocols::multicast::{analyse, Analysis, McastObs};
use agora_protocols::params::MSGS;
use agora_protocols::{dispatch, Driver, Params};
use agora_sim::{Faults, SimConfig, Simulation};

struct Out {
    analysis: Analysis,
    violations: Vec<agora_core::Violation>,
    delivered: usize,
    kinds: Vec<(String, u64)>,
}

struct Run(SimConfig, Option<u32>);

impl Driver for Run {
    type Output = Out;
    fn run<S: Setup>(self, setup: S) -> Out {
        let mut cfg = self.0;
        cfg.keep_observations = true;
        let n = setup.nodes();
        let o = Simulation::new(setup, cfg).run();
        let obs: Vec<(f64, u32, McastObs)> = o
            .observations
            .iter()
            .map(|(t, node, ob)| {
                let m: McastObs = serde_json::from_value(serde_json::to_value(ob).unwrap()).unwrap();
                (t.as_millis_f64(), node.0, m)
            })
            // A crashed peer is left out of the analysis, as sender and as receiver.
            .filter(|(_, node, m)| {
                Some(*node) != self.1
                    && match m {
                        McastObs::Multicast { id, .. } | McastObs::Delivered { id } => {
                            Some(id.origin) != self.1
                        }
                    }
            })
            .collect();
        Out {
            delivered: obs.iter().filter(|(_, _, o)| matches!(o, McastObs::Delivered { .. })).count(),
            analysis: analyse(n, &obs),
            violations: o.violations,
            kinds: o.metrics.by_kind().iter().map(|(k, c)| (k.to_string(), c.sent)).collect(),
        }
    }
}

fn run(order: &str, peers: usize, msgs: u32, seed: u64, faults: &str) -> Out {
    run_excluding(order, peers, msgs, seed, faults, None)
}

/// Like `run`, leaving a crashed peer out of the analysis.
fn run_excluding(order: &str, peers: usize, msgs: u32, seed: u64, faults: &str, crashed: Option<u32>) -> Out {
    let f = Faults::from_toml(faults).unwrap();
    let mut cfg = SimConfig::new(seed).with_faults(f);
    cfg.max_time = Time::from_millis(600_000);
    let p = Params::new(peers, seed).with(&MSGS, msgs);
    dispatch(order, &p, Run(cfg, crashed)).unwrap()
}

fn sent(o: &Out, kind: &str) -> u64 {
    o.kinds.iter().find(|(k, _)| k == kind).map_or(0, |(_, c)| *c)
}

const ROUGH: &str = "[network]\nlatency = { dist = \"uniform\", min_ms = 1, max_ms = 20 }\nloss = 0.15\nduplicate = 0.1\nreorder = 0.2";

#[test]
fn every_guarantee_holds_on_rough_links() {
    for seed in 0..40 {
        let peers = 2 + seed as usize % 5;
        for order in ["fifo", "causal", "total-lamport", "total-sequencer"] {
            let o = run(order, peers, 15, seed, ROUGH);
            assert!(o.violations.is_empty(), "{order} seed {seed}: {:?}", o.violations);
            assert_eq!(
                o.delivered,
                peers * peers * 15,
                "{order} seed {seed}: every message everywhere, once"
            );
            assert_eq!(o.analysis.fifo_violations, 0, "{order}");
            if order != "fifo" {
                assert_eq!(o.analysis.causal_violations, 0, "{order}");
            }
            if order.starts_with("total") {
                assert_eq!(o.analysis.disagreements, 0, "{order} seed {seed}");
            }
        }
    }
}

#[test]
fn unordered_multicast_shows_the_problem() {
    let jitter = "[network]\nlatency = { dist = \"uniform\", min_ms = 1, max_ms = 20 }";
    let o = run("unordered", 4, 50, 1, jitter);
    assert!(o.analysis.disagreements > 0);
    assert!(o.analysis.fifo_violations > 0);
    assert!(o.violations.is_empty(), "unordered promises no order");
    // FIFO fixes FIFO, not agreement; only the total orders agree.
    let fifo = run("fifo", 4, 50, 1, jitter);
    assert_eq!(fifo.analysis.fifo_violations, 0);
    assert!(fifo.analysis.disagreements > 0);
}

#[test]
fn the_sequencer_fails_over_without_losing_or_reordering() {
    let jitter =
        "[network]\nlatency = { dist = \"uniform\", min_ms = 1, max_ms = 20 }\nduplicate = 0.1\nloss = 0.1\n";
    // The sequencer (node 4) crashes mid-run.
    let one = format!("{jitter}[[crash]]\nnodes = 4\nat_ms = 40");
    // Two sequencers in a row.
    let two = format!("{jitter}[[crash]]\nnodes = 4\nat_ms = 30\n[[crash]]\nnodes = 3\nat_ms = 60");
    // Or before the start barrier completes.
    let early = format!("{jitter}[[crash]]\nnodes = 4\nat_ms = 5");
    for seed in 0..100 {
        let o = run_excluding("total-sequencer", 5, 20, seed, &early, Some(4));
        assert!(o.violations.is_empty(), "early, seed {seed}: {:?}", o.violations);
        let o = run_excluding("total-sequencer", 5, 20, seed, &one, Some(4));
        assert!(o.violations.is_empty(), "seed {seed}: {:?}", o.violations);
        assert_eq!(o.analysis.fifo_violations, 0, "seed {seed}");
        assert_eq!(o.analysis.disagreements, 0, "seed {seed}");
        assert!(sent(&o, "NEW-ORDER") > 0, "seed {seed}: a new sequencer took over");
        let o = run("total-sequencer", 5, 20, seed, &two);
        assert!(o.violations.is_empty(), "seed {seed}: {:?}", o.violations);
    }
}

#[test]
fn a_crashed_member_is_given_up_on() {
    // Without a failure detector a link would retransmit to a dead peer forever.
    let faults = "[network]\nlatency = { dist = \"uniform\", min_ms = 1, max_ms = 20 }\n[[crash]]\nnodes = 1\nat_ms = 40";
    for order in ["fifo", "causal", "total-sequencer"] {
        let o = run(order, 5, 20, 3, faults);
        assert!(o.violations.is_empty(), "{order}: {:?}", o.violations);
        let data = sent(&o, "DATA") + sent(&o, "ORDER");
        assert!(data < 5 * 20 * 5 * 3, "{order}: {data} DATA/ORDER frames — a retransmission storm");
    }
}

#[test]
fn message_counts_per_multicast_match_the_algorithms() {
    for n in [2u64, 3, 5, 8] {
        let m = 10u64;
        let multicasts = n * m;
        let fifo = run("fifo", n as usize, m as u32, 1, "");
        assert_eq!(sent(&fifo, "DATA"), multicasts * (n - 1), "N-1 DATA per multicast");
        let lamport = run("total-lamport", n as usize, m as u32, 1, "");
        assert_eq!(sent(&lamport, "DATA"), multicasts * (n - 1));
        assert_eq!(sent(&lamport, "TS-ACK"), multicasts * (n - 1) * (n - 1), "(N-1)^2 TS-ACK per multicast");
        let seq = run("total-sequencer", n as usize, m as u32, 1, "");
        assert_eq!(sent(&seq, "DATA"), (n - 1) * m, "one DATA to the sequencer, from every other peer");
        assert_eq!(sent(&seq, "ORDER"), multicasts * (n - 1), "N-1 ORDER per multicast");
        let unordered = run("unordered", n as usize, m as u32, 1, "");
        assert_eq!(sent(&unordered, "DATA"), multicasts * (n - 1));
    }
}
