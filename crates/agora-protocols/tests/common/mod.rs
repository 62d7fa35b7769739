//! The one `check` helper the protocol scenario tests share: run a protocol by its CLI name in
//! the simulator with a fault configuration written as TOML.

#![allow(dead_code)]

use agora_core::{Counters, Metrics, OpStats, Protocol, Setup, Time, Violation};
use agora_protocols::params::TOPOLOGY;
use agora_protocols::{dispatch, Driver, Params};
use agora_sim::{Digest, Faults, SimConfig, Simulation};

/// What the tests read from a run.
pub struct Run {
    pub totals: Counters,
    pub metrics: Metrics,
    pub ops: OpStats,
    pub violations: Vec<Violation>,
    pub digest: Digest,
    /// `(time ms, node, observation as text)`.
    pub observations: Vec<(f64, u32, String)>,
    pub end_ms: f64,
    /// The at-end properties the checker did not judge.
    pub not_judged: Vec<&'static str>,
}

pub struct Sim(pub SimConfig);

impl Driver for Sim {
    type Output = Run;
    fn run<S: Setup>(self, setup: S) -> Run {
        let o = Simulation::new(setup, self.0).run();
        Run {
            totals: o.metrics.totals(),
            ops: o.metrics.ops(),
            violations: o.violations,
            digest: o.trace_digest,
            observations: o
                .observations
                .iter()
                .map(|(t, n, ob): &(Time, _, <S::Node as Protocol>::Obs)| {
                    (t.as_millis_f64(), n.0, format!("{ob:?}"))
                })
                .collect(),
            end_ms: o.virtual_time.as_millis_f64(),
            not_judged: o.not_judged.iter().map(|(p, _)| *p).collect(),
            metrics: o.metrics,
        }
    }
}

/// Runs `protocol` with `params` under the faults in `faults` (TOML), to 60 s of virtual time.
pub fn check(protocol: &str, params: &Params, faults: &str) -> Run {
    check_until(protocol, params, faults, 60_000)
}

/// Like [`check`], stopping at `ms` of virtual time.
pub fn check_until(protocol: &str, params: &Params, faults: &str, ms: u64) -> Run {
    let faults = Faults::from_toml(faults).unwrap();
    faults.validate(agora_protocols::registry::cluster_size(protocol, params).unwrap()).unwrap();
    let mut cfg = SimConfig::new(params.seed).with_faults(faults);
    cfg.max_time = Time::from_millis(ms);
    cfg.keep_observations = true;
    dispatch(protocol, params, Sim(cfg)).unwrap()
}

pub fn params(nodes: usize, seed: u64, topology: &str) -> Params {
    Params::new(nodes, seed).with(&TOPOLOGY, topology)
}

/// Asserts that `protocol` holds every property across `seeds` under `faults`.
pub fn campaign(protocol: &str, make: impl Fn(u64) -> Params, seeds: std::ops::Range<u64>, faults: &str) {
    for seed in seeds {
        let r = check(protocol, &make(seed), faults);
        assert!(r.violations.is_empty(), "{protocol} seed {seed} [{faults}]: {:?}", r.violations);
    }
}

/// Random crashes during the first `to_ms` of a run, each node restarting after up to 150 ms.
pub fn random_crashes(count: u32, to_ms: f64, restart: bool) -> String {
    format!(
        "[random_crashes]\ncount = {count}\nfrom_ms = 0\nto_ms = {to_ms}\nmin_down_ms = 1\nmax_down_ms = 150\nrestart = {restart}\n"
    )
}
