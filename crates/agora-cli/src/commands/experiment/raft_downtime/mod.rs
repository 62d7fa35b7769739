//! `agora experiment raft-downtime`: Figure 16 of Ongaro and Ousterhout's Raft paper (§9.3 of
//! the extended version; Figure 14 and §8.3 in the USENIX ATC 2014 proceedings) in the
//! simulator — how long a cluster of five replicas is without a leader after its leader
//! crashes, over many trials, for each election timeout range.
//!
//! One trial is two runs of the same seed. In the first the replicas boot at random moments
//! within one maximum timeout (each down from time 0 until then) and elect a leader; it ends
//! once the cluster only heartbeats, and names the leader, its term and when it was elected.
//! The second replays the same run and crashes that leader (no restart) at a time
//! drawn uniformly within one heartbeat interval, ten intervals after its election, so the
//! followers' timers are at a random phase as in the paper. The **downtime** is the virtual
//! time from the crash to the first replica that becomes leader in a later term (its
//! `Leader` observation; the others learn of it one message later). The run goes on for a
//! while after the crash even though the followers, still trusting the dead leader, only
//! wait (`SimConfig::min_time`), first for 20 maximum timeouts, then, if no leader was
//! elected, for [`LIMIT_MS`]; a trial with no leader by then counts as such.
//!
//! As in the paper: the leader's heartbeat interval is half the minimum election timeout,
//! and replicas stand without pre-vote (`--pre-vote on` turns agora's default back on). What
//! differs, and why, is in docs/raft-downtime.md.
//!
//! One file per concern: [`trial`] (the two runs of a seed and what they show), [`stats`]
//! (one range's figures), [`render`] (the table and the CSV), [`chart`] (the CDF panels).
//!
//! **Invariant:** a trial is a pure function of (range, seed, latency, pre-vote): trial `i`
//! runs seed `--seed + i`, so `--trials 1 --seed` that seed replays it alone.

pub mod chart;
pub mod render;
pub mod stats;
pub mod trial;

use self::stats::RangeStats;
use self::trial::{Settings, Trial, LIMIT_MS, REPLICAS};
use crate::cli::RaftDowntimeArgs;
use crate::commands::shared::{create_dir, output, progress_bar};
use crate::error::UserError;
use crate::values::TimeoutRange;
use agora_sim::Latency;
use std::fmt::Write as _;

/// The top graph of the paper's figure: the randomness of the timeout varied.
pub const PAPER_TOP: &[(u32, u32)] =
    &[(150, 150), (150, 151), (150, 155), (150, 175), (150, 200), (150, 300)];
/// The bottom graph: the minimum timeout scaled, the range as wide as the minimum.
pub const PAPER_BOTTOM: &[(u32, u32)] = &[(12, 24), (25, 50), (50, 100), (100, 200), (150, 300)];
/// Trials per line in the paper, and for the line whose bounds are equal.
const PAPER_TRIALS: u32 = 1000;
const PAPER_TRIALS_EQUAL: u32 = 100;
/// The default one-way latency: a broadcast time (§5.6 of the paper: all four replies in) of
/// about 15 ms, as the paper's cluster had.
pub const DEFAULT_LATENCY: Latency = Latency::Uniform { min_ms: 4.0, max_ms: 9.0 };

/// The ranges to run: those given, or the paper's two sets (150-300 once).
fn ranges(args: &RaftDowntimeArgs) -> Vec<TimeoutRange> {
    if !args.ranges.is_empty() {
        let mut v: Vec<TimeoutRange> = Vec::new();
        for r in &args.ranges {
            if !v.contains(r) {
                v.push(*r);
            }
        }
        return v;
    }
    let mut v: Vec<TimeoutRange> =
        PAPER_TOP.iter().map(|&(min_ms, max_ms)| TimeoutRange { min_ms, max_ms }).collect();
    for &(min_ms, max_ms) in PAPER_BOTTOM {
        let r = TimeoutRange { min_ms, max_ms };
        if !v.contains(&r) {
            v.push(r);
        }
    }
    v
}

/// The flags that replay trials of this run, but for the range, trials and seed.
fn settings_flags(args: &RaftDowntimeArgs) -> String {
    let mut s = String::new();
    if args.latency != DEFAULT_LATENCY {
        let _ = write!(s, " --latency {}", args.latency);
    }
    if args.pre_vote == "on" {
        s.push_str(" --pre-vote on");
    }
    s
}

/// Runs `agora experiment raft-downtime`; returns the process exit code.
pub fn run(args: &RaftDowntimeArgs) -> Result<i32, UserError> {
    let ranges = ranges(args);
    let pre_vote = args.pre_vote == "on";
    let trials_of = |r: &TimeoutRange| match args.trials {
        Some(n) => n,
        None if r.min_ms == r.max_ms => PAPER_TRIALS_EQUAL,
        None => PAPER_TRIALS,
    };
    if let Some(dir) = &args.out {
        create_dir(dir)?;
    }
    let total: u64 = ranges.iter().map(|r| u64::from(trials_of(r))).sum();
    let bar = progress_bar(total, "{msg:10} [{bar:40}] {pos}/{len} trials, {elapsed}", args.json);
    let wall = std::time::Instant::now();
    let mut all: Vec<(TimeoutRange, Vec<Trial>)> = Vec::new();
    for r in &ranges {
        bar.set_message(r.to_string());
        let s = Settings { range: *r, latency: args.latency, pre_vote };
        let mut trials = Vec::new();
        for i in 0..trials_of(r) {
            match s.trial(i, args.seed.wrapping_add(u64::from(i))) {
                Ok(t) => trials.push(t),
                Err(v) => {
                    bar.finish_and_clear();
                    eprintln!("VIOLATION      {}", v.detail);
                    eprintln!(
                        "reproduce      agora experiment raft-downtime --ranges {r} --trials 1 --seed {}{}",
                        v.seed,
                        settings_flags(args)
                    );
                    return Ok(1);
                }
            }
            bar.inc(1);
        }
        all.push((*r, trials));
    }
    bar.finish_and_clear();
    let wall_s = wall.elapsed().as_secs_f64();
    report(args, &all, wall_s)
}

/// Writes the files of `--out` and prints the table or the JSON of a finished run.
fn report(
    args: &RaftDowntimeArgs,
    all: &[(TimeoutRange, Vec<Trial>)],
    wall_s: f64,
) -> Result<i32, UserError> {
    let stats: Vec<RangeStats> = all.iter().map(|(r, t)| stats::stats(&r.to_string(), t)).collect();
    if let Some(dir) = &args.out {
        output::write_file(&dir.join("raft-downtime.csv"), &render::csv(all))?;
        let lines: Vec<chart::Line> =
            all.iter().map(|(r, t)| chart::Line { range: *r, downtimes: stats::downtimes(t) }).collect();
        chart::draw(&dir.join("raft-downtime.svg"), &lines, &render::caption(args))?;
    }
    if args.json {
        let out = serde_json::json!({
            "experiment": "raft-downtime",
            "replicas": REPLICAS,
            "seed": args.seed,
            "latency": args.latency.to_string(),
            "pre_vote": args.pre_vote == "on",
            "heartbeat": "half the minimum election timeout",
            "limit_ms": LIMIT_MS,
            "wall_s": wall_s,
            "ranges": stats,
        });
        println!("{out}");
    } else {
        print!("{}", render::table(args, &stats));
        println!("wall {wall_s:.1} s");
        if let Some(dir) = &args.out {
            println!("wrote {0}/raft-downtime.csv, {0}/raft-downtime.svg", dir.display());
        }
        println!(
            "replay one trial: agora experiment raft-downtime --ranges RANGE --trials 1 --seed SEED{} \
             (SEED = {} + the trial's number; the CSV lists every trial's seed)",
            settings_flags(args),
            args.seed
        );
    }
    Ok(0)
}
