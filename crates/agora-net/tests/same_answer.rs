//! One protocol, two runtimes, same answer: failure-free runs of `flood` and `all-to-all` in
//! the simulator and over TCP (one process) agree on every count and every observation.

use agora_core::{Counters, Protocol, Setup};
use agora_net::{report, run_local, Gathered, NetConfig};
use agora_protocols::{dispatch, Driver, Params};
use agora_sim::{SimConfig, Simulation};
use std::sync::Arc;
use std::time::Duration;

/// What both runtimes must agree on.
#[derive(Debug, PartialEq)]
struct Answer {
    totals: Counters,
    by_kind: Vec<(String, u64, u64, u64)>,
    /// Messages each node sent. (Which node receives a second copy where two flood waves
    /// meet depends on timing, so per-node deliveries may differ; their total may not.)
    per_node_sent: Vec<u64>,
    /// Every observation, as text, sorted (arrival order differs between runtimes).
    observations: Vec<String>,
    violations: usize,
}

fn answer<O: std::fmt::Debug>(
    metrics: &agora_core::Metrics,
    per_node: &[Counters],
    obs: impl Iterator<Item = (u32, O)>,
    violations: usize,
) -> Answer {
    let mut observations: Vec<String> = obs.map(|(n, o)| format!("{n}:{o:?}")).collect();
    observations.sort();
    Answer {
        totals: metrics.totals(),
        by_kind: metrics
            .by_kind()
            .iter()
            .map(|(k, c)| (k.to_string(), c.sent, c.delivered, c.bytes_sent))
            .collect(),
        per_node_sent: per_node.iter().map(|c| c.sent).collect(),
        observations,
        violations,
    }
}

struct Sim;
impl Driver for Sim {
    type Output = Answer;
    fn run<S: Setup>(self, setup: S) -> Answer {
        let mut cfg = SimConfig::new(1);
        cfg.keep_observations = true;
        let o = Simulation::new(setup, cfg).run();
        answer(
            &o.metrics,
            &o.per_node,
            o.observations.into_iter().map(|(_, n, ob)| (n.0, ob)),
            o.violations.len(),
        )
    }
}

struct Tcp;
impl Driver for Tcp {
    type Output = Answer;
    fn run<S: Setup>(self, setup: S) -> Answer {
        let setup = Arc::new(setup);
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = NetConfig::new("same-answer", Vec::new());
        cfg.data_dir = Some(dir.path().to_path_buf());
        let out = rt.block_on(run_local(setup.clone(), cfg, Duration::from_secs(30), |_| {})).unwrap();
        assert_eq!(out.end, agora_net::End::Quiescent);
        let n = setup.nodes();
        let mut g: Gathered<<S::Node as Protocol>::Obs> =
            Gathered::new(n, out.end.as_str(), 1.0, 0.0, out.started_unix_ns);
        for r in out.reports {
            g.add_report(r);
        }
        let partial =
            answer(&g.metrics, &g.per_node, g.observations.iter().map(|(_, n, o)| (n.0, o.clone())), 0);
        let summary = report::summarize(&*setup, 1, g, "");
        Answer { violations: summary.violations.len(), ..partial }
    }
}

fn both(protocol: &str, params: Params) {
    let sim = dispatch(protocol, &params, Sim).unwrap();
    let tcp = dispatch(protocol, &params, Tcp).unwrap();
    assert_eq!(sim, tcp, "{protocol} {params:?}");
    assert!(sim.totals.sent > 0 || params.nodes == 1);
    assert_eq!(sim.violations, 0);
}

#[test]
fn flood_agrees_between_simulator_and_tcp() {
    for (n, topology) in [(2, "ring"), (7, "ring"), (9, "grid"), (12, "regular:4"), (6, "complete")] {
        let params = Params { topology: topology.parse().unwrap(), origin: 1, ..Params::new(n, 3) };
        both("flood", params);
    }
}

#[test]
fn all_to_all_agrees_between_simulator_and_tcp() {
    for n in [1, 2, 5, 10] {
        both("all-to-all", Params::new(n, 1));
    }
}
