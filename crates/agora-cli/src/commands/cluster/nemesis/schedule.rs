//! The nemesis's schedule, drawn from its seed before anything runs: one fault at a time,
//! each for about `--interval-ms`, with a healthy gap of about half that between two. Each
//! round applies every fault asked for once, in an order drawn from the seed, so a run long
//! enough for one round has seen each.

use crate::cli::NemesisFault;
use crate::commands::kv::workload::Mix;
use std::fmt;
use std::time::Duration;

/// Whom a fault hits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Side {
    /// The replica leading when the fault begins (found by asking the replicas).
    Leader,
    /// These replicas (a partition's minority side, or one replica).
    Nodes(Vec<usize>),
}

/// One fault of the schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    pub kind: NemesisFault,
    /// When it begins and ends, from the start of the run.
    pub at: Duration,
    pub until: Duration,
    pub side: Side,
    /// The replica hit when `side` is the leader and no replica leads.
    pub fallback: usize,
    /// For a clock fault, how its clock is bent: `(skew ms, drift ppm)`.
    pub bend: Option<(i64, i64)>,
}

/// A fault's name on the command line.
pub fn fault_name(kind: NemesisFault) -> &'static str {
    match kind {
        NemesisFault::Kill => "kill",
        NemesisFault::Pause => "pause",
        NemesisFault::Partition => "partition",
        NemesisFault::Cut => "cut",
        NemesisFault::Restart => "restart",
        NemesisFault::Disconnect => "disconnect",
        NemesisFault::Wipe => "wipe",
        NemesisFault::Disk => "disk",
        NemesisFault::Clock => "clock",
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Side::Leader => f.write_str("the leader"),
            Side::Nodes(ns) => f.write_str(&names(ns)),
        }
    }
}

/// `n0 n2`: replicas by service name.
pub fn names(ns: &[usize]) -> String {
    ns.iter().map(|n| format!("n{n}")).collect::<Vec<_>>().join(" ")
}

/// A duration of `base` times a factor drawn in `lo..=hi` (thousandths).
fn scaled(rng: &mut Mix, base: Duration, lo: u64, hi: u64) -> Duration {
    base * (lo + rng.below(hi - lo + 1)) as u32 / 1000
}

/// The schedule of `kinds` on a cluster of `nodes` replicas, over `span`, faults lasting about
/// `interval` each (half to one and a half times), healthy gaps of a quarter to three quarters
/// of it, the first after a gap of half of it (or a quarter of the span, if shorter).
pub fn draw(
    kinds: &[NemesisFault],
    nodes: usize,
    span: Duration,
    interval: Duration,
    seed: u64,
) -> Vec<Planned> {
    let mut kinds = kinds.to_vec();
    kinds.sort_unstable();
    kinds.dedup();
    let mut rng = Mix(seed ^ 0x6e65_6d65_7369_7321);
    let mut plan = Vec::new();
    let mut round: Vec<NemesisFault> = Vec::new();
    let mut t = (interval / 2).min(span / 4);
    while t < span && !kinds.is_empty() {
        if round.is_empty() {
            round = kinds.clone();
            for i in (1..round.len()).rev() {
                round.swap(i, rng.below(i as u64 + 1) as usize);
            }
        }
        let kind = round.pop().expect("a round is refilled when empty");
        let until = (t + scaled(&mut rng, interval, 500, 1500)).min(span);
        let mut order: Vec<usize> = (0..nodes).collect();
        for i in (1..nodes).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let fallback = order[0];
        let side = if rng.below(2) == 0 {
            Side::Leader
        } else if kind == NemesisFault::Partition {
            // A minority: 1 to (nodes - 1) / 2 replicas.
            let size = 1 + rng.below(((nodes - 1) / 2).max(1) as u64) as usize;
            let mut group = order[..size].to_vec();
            group.sort_unstable();
            Side::Nodes(group)
        } else {
            Side::Nodes(vec![fallback])
        };
        // Drawn last, and only for a clock fault: a schedule without one is what its seed drew
        // before clock faults existed.
        let bend = (kind == NemesisFault::Clock).then(|| {
            let sign = |rng: &mut Mix| if rng.below(2) == 0 { 1 } else { -1 };
            let skew_ms = sign(&mut rng) * (1_000 + rng.below(9_001)) as i64;
            let drift_ppm = sign(&mut rng) * (100_000 + rng.below(400_001)) as i64;
            (skew_ms, drift_ppm)
        });
        plan.push(Planned { kind, at: t, until, side, fallback, bend });
        t = until + scaled(&mut rng, interval, 250, 750);
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use NemesisFault::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_seed_draws_one_schedule_of_ordered_faults_within_the_span() {
        let kinds = [Kill, Pause, Partition, Cut];
        let a = draw(&kinds, 5, 60 * S, 3 * S, 7);
        assert_eq!(a, draw(&kinds, 5, 60 * S, 3 * S, 7), "the same seed, the same schedule");
        assert_ne!(a, draw(&kinds, 5, 60 * S, 3 * S, 8), "another seed, another schedule");
        assert!(a.len() >= 8, "about 60 s / 4.5 s of faults: {}", a.len());
        assert_eq!(a[0].at, 1500 * Duration::from_millis(1), "half an interval of calm first");
        for w in a.windows(2) {
            assert!(w[0].until + 750 * Duration::from_millis(1) <= w[1].at, "a healthy gap between: {w:?}");
        }
        for p in &a {
            assert!(p.at < p.until && p.until <= 60 * S, "{p:?}");
            assert!(p.fallback < 5);
            if let Side::Nodes(ns) = &p.side {
                let most = if p.kind == Partition { 2 } else { 1 };
                assert!(!ns.is_empty() && ns.len() <= most && ns.iter().all(|&n| n < 5), "{p:?}");
            }
        }
        // Every round of four holds each fault once.
        for round in a.chunks_exact(4) {
            let mut ks: Vec<_> = round.iter().map(|p| p.kind).collect();
            ks.sort_unstable();
            assert_eq!(ks, kinds.to_vec());
        }
        assert!(a.iter().any(|p| p.side == Side::Leader) && a.iter().any(|p| p.side != Side::Leader));
    }

    #[test]
    fn a_clock_fault_bends_by_one_to_ten_seconds_and_ten_to_fifty_percent() {
        let plan = draw(&[Clock, Kill], 3, 120 * S, S, 5);
        let bends: Vec<(i64, i64)> = plan.iter().filter_map(|p| p.bend).collect();
        assert_eq!(bends.len(), plan.iter().filter(|p| p.kind == Clock).count());
        assert!(bends.len() >= 10, "{plan:?}");
        for (skew, drift) in &bends {
            assert!((1_000..=10_000).contains(&skew.abs()), "{skew}");
            assert!((100_000..=500_000).contains(&drift.abs()), "{drift}");
        }
        assert!(bends.iter().any(|b| b.0 < 0) && bends.iter().any(|b| b.0 > 0));
        assert!(bends.iter().any(|b| b.1 < 0) && bends.iter().any(|b| b.1 > 0));
    }

    #[test]
    fn a_short_run_has_at_least_one_fault_and_repeats_are_one() {
        let p = draw(&[Pause, Pause], 3, S, 3 * S, 1);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!((p[0].kind, p[0].at, p[0].until), (Pause, S / 4, S));
        assert!(draw(&[], 3, 60 * S, S, 1).is_empty());
    }
}
