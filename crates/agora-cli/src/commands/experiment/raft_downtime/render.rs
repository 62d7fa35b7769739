//! What a run prints and writes: the table of every range and the CSV of every trial.

use super::stats::RangeStats;
use super::trial::{Trial, LIMIT_MS, REPLICAS};
use crate::cli::RaftDowntimeArgs;
use crate::values::TimeoutRange;
use std::fmt::Write as _;

/// The chart's title.
pub fn caption(args: &RaftDowntimeArgs) -> String {
    let pv = if args.pre_vote == "on" { "with" } else { "without" };
    format!(
        "Time without a leader after the leader's crash: {REPLICAS} replicas, latency {}, {pv} pre-vote, seed {}",
        args.latency, args.seed
    )
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| format!(">{LIMIT_MS}"), |v| format!("{v:.1}"))
}

/// One row per range.
pub fn table(args: &RaftDowntimeArgs, stats: &[RangeStats]) -> String {
    let pv = if args.pre_vote == "on" { "on" } else { "off" };
    let mut t = format!(
        "agora experiment raft-downtime — {REPLICAS} replicas, leader crashed; latency {}, heartbeat half the \
         minimum timeout, pre-vote {pv}, seed {}\n",
        args.latency, args.seed
    );
    t.push_str(
        "downtime: from the crash to the first replica elected leader in a later term (virtual ms); \
         heard: until every live replica has its first append\n",
    );
    let _ = writeln!(
        t,
        "{:<10} {:>7} {:>10} {:>9} {:>9} {:>9} {:>9} {:>7} {:>11} {:>10} {:>10}",
        "range ms",
        "trials",
        "median",
        "p90",
        "p99",
        "max",
        "<=300ms",
        "terms",
        "heard p50",
        "no leader",
        "unsettled"
    );
    for s in stats {
        let _ = writeln!(
            t,
            "{:<10} {:>7} {:>10} {:>9} {:>9} {:>9} {:>9} {:>7} {:>11} {:>10} {:>10}",
            s.range,
            s.trials,
            ms(s.median_ms),
            ms(s.p90_ms),
            ms(s.p99_ms),
            ms(s.max_ms),
            s.within_300ms.map_or("-".into(), |w| format!("{:.1}%", w * 100.0)),
            s.mean_terms.map_or("-".into(), |m| format!("{m:.2}")),
            s.all_heard_median_ms.map_or("-".into(), |m| format!("{m:.1}")),
            s.no_leader,
            s.unsettled,
        );
    }
    t
}

/// One row per trial.
pub fn csv(all: &[(TimeoutRange, Vec<Trial>)]) -> String {
    let mut s =
        String::from("range,trial,seed,ending,crashed,crash_at_ms,downtime_ms,terms,elected,all_heard_ms\n");
    let opt = |v: Option<String>| v.unwrap_or_default();
    for t in all.iter().flat_map(|(_, t)| t) {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{}",
            t.range,
            t.trial,
            t.seed,
            t.ending.as_str(),
            opt(t.crashed.map(|c| c.to_string())),
            opt(t.crash_at_ms.map(|c| format!("{c:.6}"))),
            opt(t.downtime_ms.map(|d| format!("{d:.6}"))),
            opt(t.terms.map(|n| n.to_string())),
            opt(t.elected.map(|e| e.to_string())),
            opt(t.all_heard_ms.map(|d| format!("{d:.6}"))),
        );
    }
    s
}
