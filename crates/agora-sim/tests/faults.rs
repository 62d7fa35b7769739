//! Each fault kind, shown by its effect on a small periodic protocol.
//!
//! `Pinger`: every node pings every other node every 10 ms (on its own clock) and counts its
//! ticks, both in volatile state and persisted. Observations carry global-time receipts, so each
//! test reads off what the fault did.

use agora_core::{Checker, Context, Corrupt, Message, NoProperties, NodeId, Protocol, Setup, Stable, Time};
use agora_sim::{Faults, Latency, Outcome, Regions, SimConfig, Simulation};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Ping {
    seq: u64,
}

impl Message for Ping {
    fn kind(&self) -> &'static str {
        "PING"
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Obs {
    /// At (re)start: the volatile tick count (0 for a fresh node) and the persisted one.
    Started {
        volatile: u64,
        persisted: u64,
    },
    Got {
        from: NodeId,
        seq: u64,
    },
    Tick {
        local: Time,
    },
}

struct Pinger {
    ticks: u64,
    persisted: u64,
    seq: u64,
}

const PERIOD: Duration = Duration::from_millis(10);

impl Protocol for Pinger {
    type Msg = Ping;
    type Timer = ();
    type Obs = Obs;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        ctx.observe(Obs::Started { volatile: self.ticks, persisted: self.persisted });
        ctx.set_timer((), PERIOD);
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: Ping) {
        ctx.observe(Obs::Got { from, seq: msg.seq });
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, _: ()) {
        self.ticks += 1;
        self.persisted += 1;
        ctx.persist("ticks", &self.persisted);
        ctx.observe(Obs::Tick { local: ctx.now() });
        self.seq += 1;
        ctx.broadcast(Ping { seq: self.seq });
        ctx.set_timer((), PERIOD);
    }
}

struct PingSetup(usize);

impl Setup for PingSetup {
    type Node = Pinger;
    fn name(&self) -> &'static str {
        "pinger"
    }
    fn nodes(&self) -> usize {
        self.0
    }
    fn build(&self, _: NodeId, stable: &Stable) -> Result<Pinger, Corrupt> {
        Ok(Pinger { ticks: 0, persisted: stable.load("ticks")?.unwrap_or(0), seq: 0 })
    }
    fn checker(&self) -> Box<dyn Checker<Pinger>> {
        Box::new(NoProperties)
    }
}

/// Runs `nodes` pingers for `ms` of virtual time under `faults`.
fn check(nodes: usize, ms: u64, seed: u64, faults: Faults) -> Outcome<Obs> {
    faults.validate(nodes).expect("test faults are valid");
    let mut cfg = SimConfig::new(seed).with_faults(faults);
    cfg.max_time = Time::from_millis(ms);
    cfg.keep_observations = true;
    Simulation::new(PingSetup(nodes), cfg).run()
}

/// `(receive time ms, from, to)` of every ping received.
fn receipts(o: &Outcome<Obs>) -> Vec<(f64, u32, u32)> {
    o.observations
        .iter()
        .filter_map(|(t, n, obs)| match obs {
            Obs::Got { from, .. } => Some((t.as_millis_f64(), from.0, n.0)),
            _ => None,
        })
        .collect()
}

fn faults(text: &str) -> Faults {
    Faults::from_toml(text).unwrap()
}

#[test]
fn no_faults_delivers_every_ping_after_the_link_latency() {
    let o = check(3, 100, 1, Faults::default());
    let t = o.metrics.totals();
    assert_eq!(t.sent, t.delivered + 6, "only the last round (sent at 100 ms) is still in flight");
    assert!(receipts(&o).iter().all(|(ms, _, _)| (ms - 1.0) % 10.0 == 0.0), "constant 1 ms latency");
}

#[test]
fn total_loss_delivers_nothing() {
    let o = check(4, 200, 1, faults("[network]\nloss = 1.0"));
    let t = o.metrics.totals();
    assert!(t.sent > 0);
    assert_eq!(t.delivered, 0);
    assert_eq!(t.dropped, t.sent);
}

#[test]
fn partial_loss_drops_about_that_fraction() {
    let o = check(4, 2_000, 3, faults("[network]\nloss = 0.25"));
    let t = o.metrics.totals();
    let rate = t.dropped as f64 / t.sent as f64;
    assert!((0.2..0.3).contains(&rate), "loss rate {rate}");
}

#[test]
fn a_partition_stops_crossing_traffic_until_it_heals() {
    let o =
        check(4, 300, 1, faults("[[partition]]\ngroups = [\"0..2\", \"2..4\"]\nat_ms = 100\nheal_ms = 200"));
    let r = receipts(&o);
    let crosses = |from: u32, to: u32| (from < 2) != (to < 2);
    assert!(r.iter().any(|&(ms, f, t)| ms < 100.0 && crosses(f, t)), "crossing traffic before");
    assert!(!r.iter().any(|&(ms, f, t)| (100.0..=200.0).contains(&ms) && crosses(f, t)), "none during");
    assert!(
        r.iter().any(|&(ms, f, t)| (100.0..=200.0).contains(&ms) && !crosses(f, t)),
        "inside groups goes on"
    );
    assert!(r.iter().any(|&(ms, f, t)| ms > 200.0 && crosses(f, t)), "crossing traffic after healing");
}

#[test]
fn a_one_way_partition_cuts_one_direction_only() {
    let o = check(2, 200, 1, faults("[[one_way]]\nfrom = \"0\"\nto = \"1\"\nat_ms = 0"));
    let r = receipts(&o);
    assert!(r.iter().all(|&(_, f, _)| f == 1), "nothing from 0 reaches 1");
    assert!(r.iter().any(|&(_, f, t)| f == 1 && t == 0), "1 still reaches 0");
}

#[test]
fn a_crash_loses_volatile_state_and_a_restart_restores_persisted_state() {
    let o = check(3, 300, 1, faults("[[crash]]\nnodes = 1\nat_ms = 105\nrestart_ms = 200"));
    let starts: Vec<_> = o
        .observations
        .iter()
        .filter(|(_, n, obs)| *n == NodeId(1) && matches!(obs, Obs::Started { .. }))
        .map(|(t, _, obs)| (t.as_millis_f64(), obs.clone()))
        .collect();
    assert_eq!(starts.len(), 2);
    assert_eq!(starts[0], (0.0, Obs::Started { volatile: 0, persisted: 0 }));
    // Ten ticks (10..100 ms) happened before the crash at 105 ms.
    assert_eq!(starts[1], (200.0, Obs::Started { volatile: 0, persisted: 10 }));
    let r = receipts(&o);
    assert!(
        !r.iter().any(|&(ms, _, t)| t == 1 && (105.0..200.0).contains(&ms)),
        "a crashed node receives nothing"
    );
    assert!(!r.iter().any(|&(ms, f, _)| f == 1 && (107.0..211.0).contains(&ms)), "nor sends");
    assert!(o.per_node[1].dropped > 0, "messages to the crashed node are counted as dropped");
    assert_eq!(o.stable[1].get::<u64>("ticks").unwrap(), Some(20), "10 before + 10 after the restart");
}

#[test]
fn a_paused_node_handles_nothing_until_it_resumes() {
    let o = check(2, 300, 1, faults("[[pause]]\nnodes = 1\nat_ms = 55\nresume_ms = 150"));
    let r = receipts(&o);
    assert!(!r.iter().any(|&(ms, _, t)| t == 1 && (55.0..150.0).contains(&ms)));
    // Pings that arrived meanwhile wait and are handled at the resume, none is lost.
    let at_resume = r.iter().filter(|&&(ms, _, t)| t == 1 && ms == 150.0).count();
    assert!(at_resume >= 9, "{at_resume} pings handled at resume");
    assert_eq!(o.metrics.totals().dropped, 0);
}

#[test]
fn duplication_delivers_extra_copies() {
    let o = check(3, 200, 1, faults("[network]\nduplicate = 1.0"));
    let t = o.metrics.totals();
    assert_eq!(t.duplicated, t.sent);
    let got = receipts(&o).len() as u64;
    assert!(got > t.sent, "{got} receipts for {} sends", t.sent);
}

/// Counts pairs of pings on one link received in the opposite order to the one sent.
fn inversions(o: &Outcome<Obs>) -> usize {
    let mut last: std::collections::HashMap<(u32, u32), u64> = Default::default();
    let mut inv = 0;
    for (_, n, obs) in &o.observations {
        if let Obs::Got { from, seq } = obs {
            let l = last.entry((from.0, n.0)).or_insert(0);
            if *seq < *l {
                inv += 1;
            }
            *l = (*l).max(*seq);
        }
    }
    inv
}

#[test]
fn reordering_happens_and_fifo_links_prevent_it() {
    let reorder = "[network]\nreorder = 0.5\nreorder_delay_ms = 50\n";
    assert!(inversions(&check(3, 500, 1, faults(reorder))) > 0);
    assert_eq!(inversions(&check(3, 500, 1, faults(&format!("{reorder}fifo = true")))), 0);
    assert_eq!(
        inversions(&check(
            3,
            500,
            1,
            faults("[network]\nlatency = { dist = \"uniform\", min_ms = 1, max_ms = 40 }\nfifo = true")
        )),
        0
    );
}

#[test]
fn latency_distributions_shape_delivery_times() {
    let delays = |latency: Latency| -> Vec<f64> {
        let mut f = Faults::default();
        f.network.latency = latency;
        // Pings are sent at multiples of 10 ms; the remainder is the latency.
        receipts(&check(2, 2_000, 5, f)).iter().map(|(ms, _, _)| ms - (ms / 10.0).floor() * 10.0).collect()
    };
    let u = delays(Latency::Uniform { min_ms: 2.0, max_ms: 6.0 });
    assert!(u.iter().all(|d| (2.0..6.0).contains(d)));
    let mean = u.iter().sum::<f64>() / u.len() as f64;
    assert!((mean - 4.0).abs() < 0.3, "uniform mean {mean}");
    let e = delays(Latency::Exponential { mean_ms: 1.0 });
    let mean = e.iter().sum::<f64>() / e.len() as f64;
    assert!((mean - 1.0).abs() < 0.2, "exponential mean {mean}");
    let mut l = delays(Latency::LogNormal { median_ms: 2.0, sigma: 0.3 });
    l.sort_by(f64::total_cmp);
    let median = l[l.len() / 2];
    assert!((median - 2.0).abs() < 0.2, "lognormal median {median}");
}

#[test]
fn regions_and_link_overrides_set_latency_per_pair() {
    let mut f = Faults::default();
    f.network.regions = Some(Regions {
        names: vec!["us-east".into(), "eu-west".into()],
        latency_ms: vec![vec![1.0, 7.0], vec![7.0, 2.0]],
        nodes: Some(vec!["0..2".parse().unwrap(), "2..3".parse().unwrap()]),
        jitter: Latency::Constant { ms: 0.0 },
    });
    f.network.links.push(agora_sim::LinkSpec {
        from: "1".parse().unwrap(),
        to: "0".parse().unwrap(),
        latency: Latency::Constant { ms: 3.0 },
    });
    let r = receipts(&check(3, 100, 1, f));
    let delay =
        |from, to| r.iter().find(|&&(_, f, t)| f == from && t == to).map(|(ms, _, _)| ms - 10.0).unwrap();
    assert_eq!(delay(0, 1), 1.0, "inside us-east");
    assert_eq!(delay(0, 2), 7.0, "us-east to eu-west");
    assert_eq!(delay(1, 0), 3.0, "link override");
}

#[test]
fn clock_skew_and_drift_change_what_a_node_reads_and_when_its_timers_fire() {
    let f = faults("[[clock]]\nnodes = 1\nskew_ms = 5\ndrift_ppm = 100000");
    let o = check(2, 1_000, 1, f);
    let ticks = |n: u32| -> Vec<(f64, f64)> {
        o.observations
            .iter()
            .filter_map(|(t, node, obs)| match obs {
                Obs::Tick { local } if node.0 == n => Some((t.as_millis_f64(), local.as_millis_f64())),
                _ => None,
            })
            .collect()
    };
    let (normal, fast) = (ticks(0), ticks(1));
    assert!(normal.iter().all(|(g, l)| g == l));
    // A clock 10% fast fires its 10 ms timer every 10/1.1 ms of global time.
    assert!(fast.len() >= 108 && fast.len() <= 111, "{} ticks", fast.len());
    for (g, l) in &fast {
        assert!((l - (g * 1.1 + 5.0)).abs() < 0.01, "local {l} for global {g}");
    }
}

#[test]
fn same_seed_same_digest_and_different_seed_different_digest() {
    let f = || {
        faults("[network]\nlatency = { dist = \"exponential\", mean_ms = 3 }\nloss = 0.1\nduplicate = 0.1")
    };
    let a = check(5, 500, 42, f());
    let b = check(5, 500, 42, f());
    let c = check(5, 500, 43, f());
    assert_eq!(a.trace_digest, b.trace_digest);
    assert_eq!(a.metrics.totals(), b.metrics.totals());
    assert_eq!(a.observations, b.observations);
    assert_ne!(a.trace_digest, c.trace_digest);
}

#[test]
fn a_run_with_too_many_events_waiting_stops_at_the_queue_limit() {
    // 30 pingers broadcast every 10 ms over 1-second links: thousands of pings in flight.
    let mut cfg =
        SimConfig::new(1).with_faults(faults("[network]\nlatency = { dist = \"constant\", ms = 1000 }"));
    cfg.max_time = Time::from_millis(5_000);
    cfg.max_pending = 1_000;
    let o = Simulation::new(PingSetup(30), cfg).run();
    assert_eq!(o.end, agora_sim::EndReason::QueueLimit);
    assert!(o.virtual_time < Time::from_millis(1_000), "stopped before the first ping arrived");
}
