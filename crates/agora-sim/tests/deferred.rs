//! Deferred writes (`Effect::PersistLater`): they take simulated disk time, land in order, fire
//! their timer once durable, and a crash before that may or may not have let them land.

use agora_core::{
    Checker, Context, Corrupt, Deferred, Message, NoProperties, NodeId, Protocol, Setup, Stable, Time,
};
use agora_sim::{Faults, Outcome, SimConfig, Simulation};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Nothing;

impl Message for Nothing {
    fn kind(&self) -> &'static str {
        "NOTHING"
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Obs {
    /// At (re)start: the generations found written.
    Started { found: Vec<u8> },
    /// A deferred write's timer fired.
    Written { generation: u8 },
}

/// On each start, asks for two deferred writes of 100 kB ("a", then "b"), each holding the
/// node's generation (one more than the last it found).
struct Writer {
    generation: u8,
    found: Vec<u8>,
}

impl Protocol for Writer {
    type Msg = Nothing;
    type Timer = u8;
    type Obs = Obs;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        ctx.observe(Obs::Started { found: self.found.clone() });
        let g = self.generation;
        for key in ["a", "b"] {
            ctx.persist_later(key, Deferred::new(move || vec![g; 100_000]), g);
        }
    }

    fn on_message(&mut self, _: &mut Context<'_, Self>, _: NodeId, _: Nothing) {}

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, generation: u8) {
        ctx.observe(Obs::Written { generation });
    }
}

struct WriterSetup;

impl Setup for WriterSetup {
    type Node = Writer;
    fn name(&self) -> &'static str {
        "writer"
    }
    fn nodes(&self) -> usize {
        1
    }
    fn build(&self, _: NodeId, stable: &Stable) -> Result<Writer, Corrupt> {
        let found: Vec<u8> = ["a", "b"].iter().map(|k| stable.get_bytes(k).map_or(0, |v| v[0])).collect();
        Ok(Writer { generation: found.iter().max().unwrap() + 1, found })
    }
    fn checker(&self) -> Box<dyn Checker<Writer>> {
        Box::new(NoProperties)
    }
}

fn run(seed: u64, faults: &str) -> Outcome<Obs> {
    let mut cfg = SimConfig::new(seed).with_faults(Faults::from_toml(faults).unwrap());
    cfg.max_time = Time::from_millis(100);
    cfg.keep_observations = true;
    Simulation::new(WriterSetup, cfg).run()
}

fn written_at(o: &Outcome<Obs>) -> Vec<(f64, u8)> {
    o.observations
        .iter()
        .filter_map(|(t, _, obs)| match obs {
            Obs::Written { generation } => Some((t.as_millis_f64(), *generation)),
            _ => None,
        })
        .collect()
}

#[test]
fn deferred_writes_take_disk_time_one_after_another_and_then_fire() {
    let o = run(1, "");
    // 1 ms + 100 kB at 100 MB/s = 2 ms each, the second after the first.
    assert_eq!(written_at(&o), vec![(2.0, 1), (4.0, 1)]);
    assert_eq!(o.stable[0].get_bytes("a").map(|v| (v.len(), v[0])), Some((100_000, 1)));
    assert_eq!(o.stable[0].get_bytes("b").map(|v| v[0]), Some(1));
}

#[test]
fn a_crash_lets_a_prefix_of_the_pending_writes_land_and_never_fires_their_timers() {
    // The crash at 1 ms comes before either write is done; the node restarts at 50 ms.
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..64 {
        let o = run(seed, "[[crash]]\nnodes = 0\nat_ms = 1\nrestart_ms = 50");
        let starts: Vec<&Obs> = o
            .observations
            .iter()
            .map(|(_, _, obs)| obs)
            .filter(|obs| matches!(obs, Obs::Started { .. }))
            .collect();
        assert_eq!(starts.len(), 2);
        let Obs::Started { found } = starts[1] else { unreachable!() };
        assert!(
            matches!(found[..], [0, 0] | [1, 0] | [1, 1]),
            "seed {seed}: writes land in order, so b only after a: found {found:?}"
        );
        seen.insert(found.clone());
        let w = written_at(&o);
        assert!(
            w.iter().all(|&(t, g)| t > 50.0 && g >= 1),
            "seed {seed}: no timer of the crashed incarnation: {w:?}"
        );
        assert_eq!(w.len(), 2, "seed {seed}: the restarted node's two writes fire");
    }
    assert_eq!(seen.len(), 3, "every prefix happens across seeds: {seen:?}");
}
