//! One protocol, two runtimes, same answer: failure-free runs of `flood` and `all-to-all` in
//! the simulator and over TCP (one process) agree on every count and every observation; and a
//! protocol that breaks a rule every driver enforces (a destination outside the cluster, a
//! frame over the limit, a message that does not round-trip) gets the same named violation
//! from both.

use agora_core::{Counters, Protocol, Setup};
use agora_net::{report, run_local, Gathered, NetConfig};
use agora_protocols::params::{ORIGIN, TOPOLOGY};
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
        let params = Params::new(n, 3).with(&TOPOLOGY, topology).with(&ORIGIN, 1u32);
        both("flood", params);
    }
}

#[test]
fn all_to_all_agrees_between_simulator_and_tcp() {
    for n in [1, 2, 5, 10] {
        both("all-to-all", Params::new(n, 1));
    }
}

/// How [`Bad`] breaks the rules: node 0 sends one bad message at start, then a good one.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    /// To node `n`, in a cluster of nodes `0..n`.
    Outside,
    /// A payload one byte over the frame limit.
    Oversized,
    /// A message whose deserialize fails.
    Undecodable,
}

/// A message type with one variant that encodes and never decodes.
#[derive(Clone, Debug, serde::Serialize)]
enum BadMsg {
    Fine(u32),
    Big(Vec<u8>),
    Broken,
}

impl<'de> serde::Deserialize<'de> for BadMsg {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        enum Wire {
            Fine(u32),
            Big(Vec<u8>),
            Broken,
        }
        match Wire::deserialize(d)? {
            Wire::Fine(x) => Ok(BadMsg::Fine(x)),
            Wire::Big(b) => Ok(BadMsg::Big(b)),
            Wire::Broken => Err(serde::de::Error::custom("Broken never decodes")),
        }
    }
}

impl agora_core::Message for BadMsg {
    fn kind(&self) -> &'static str {
        match self {
            BadMsg::Fine(_) => "FINE",
            BadMsg::Big(_) => "BIG",
            BadMsg::Broken => "BROKEN",
        }
    }
}

struct Bad(Fault);

impl Protocol for Bad {
    type Msg = BadMsg;
    type Timer = ();
    type Obs = u32;

    fn on_start(&mut self, ctx: &mut agora_core::Context<'_, Self>) {
        if ctx.id().0 != 0 {
            return;
        }
        let n = ctx.nodes() as u32;
        match self.0 {
            Fault::Outside => ctx.send(agora_core::NodeId(n), BadMsg::Fine(1)),
            Fault::Oversized => {
                ctx.send(agora_core::NodeId(1), BadMsg::Big(vec![7; agora_core::wire::MAX_FRAME_BYTES]))
            }
            Fault::Undecodable => ctx.send(agora_core::NodeId(1), BadMsg::Broken),
        }
        ctx.send(agora_core::NodeId(1), BadMsg::Fine(2));
    }

    fn on_message(&mut self, ctx: &mut agora_core::Context<'_, Self>, _: agora_core::NodeId, msg: BadMsg) {
        if let BadMsg::Fine(x) = msg {
            ctx.observe(x);
        }
    }

    fn on_timer(&mut self, _: &mut agora_core::Context<'_, Self>, _: ()) {}
}

struct BadSetup(Fault);

impl Setup for BadSetup {
    type Node = Bad;
    fn name(&self) -> &'static str {
        "bad"
    }
    fn nodes(&self) -> usize {
        3
    }
    fn build(&self, _: agora_core::NodeId, _: &agora_core::Stable) -> Result<Bad, agora_core::Corrupt> {
        Ok(Bad(self.0))
    }
    fn checker(&self) -> Box<dyn agora_core::Checker<Bad>> {
        Box::new(agora_core::NoProperties)
    }
}

/// The violations of a summary: (property, node), in order.
type Verdict = Vec<(String, Option<u32>)>;

fn verdict(s: &agora_core::RunSummary) -> Verdict {
    s.violations.iter().map(|v| (v.property.clone(), v.node)).collect()
}

/// Both drivers' verdicts on `fault`, and what the runtime's node 1 delivered.
fn verdicts(fault: Fault) -> (Verdict, Verdict) {
    let sim = Simulation::new(BadSetup(fault), SimConfig::new(1)).run().summary("");
    assert_eq!(sim.end, "violation");
    let setup = Arc::new(BadSetup(fault));
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let cfg = NetConfig::new("same-verdict", Vec::new());
    let out = rt.block_on(run_local(setup.clone(), cfg, Duration::from_secs(30), |_| {})).unwrap();
    assert_eq!(out.end, agora_net::End::Quiescent);
    let g = Gathered::from_run(3, out);
    // The bad message was refused, not sent; the good one after it went through.
    assert_eq!(g.metrics.totals().sent, 1, "{fault:?}");
    assert_eq!(g.observations.iter().map(|(_, n, o)| (n.0, *o)).collect::<Vec<_>>(), vec![(1, 2)]);
    let tcp = report::summarize(&*setup, 1, g, "");
    (verdict(&sim), verdict(&tcp))
}

#[test]
fn a_send_outside_the_cluster_is_the_same_violation_in_both() {
    let (sim, tcp) = verdicts(Fault::Outside);
    assert_eq!(sim, vec![("valid-destination".to_string(), Some(0))]);
    assert_eq!(tcp, sim);
}

#[test]
fn a_frame_over_the_limit_is_the_same_violation_in_both() {
    let (sim, tcp) = verdicts(Fault::Oversized);
    assert_eq!(sim, vec![("frame-limit".to_string(), Some(0))]);
    assert_eq!(tcp, sim);
}

#[test]
fn a_message_that_does_not_decode_is_the_same_violation_in_both() {
    let (sim, tcp) = verdicts(Fault::Undecodable);
    assert_eq!(sim, vec![("wire-round-trip".to_string(), Some(0))]);
    assert_eq!(tcp, sim);
}
