//! `agora experiment raft-downtime`: Figure 16 of Ongaro and Ousterhout's Raft paper (§9.3 of
//! the extended version; Figure 14 and §8.3 in the USENIX ATC 2014 proceedings) in the
//! simulator — how long a cluster of five replicas is without a leader after its leader
//! crashes, over many trials, for each election timeout range.
//!
//! One trial is two runs of the same seed. The first, without faults, elects a leader and
//! ends once the cluster only heartbeats; it names the leader, its term and when it was
//! elected. The second replays the same run and crashes that leader (no restart) at a time
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
//! **Invariant:** a trial is a pure function of (range, seed, latency, pre-vote): trial `i`
//! runs seed `--seed + i`, so `--trials 1 --seed` that seed replays it alone.

use super::cdf_chart;
use crate::cli::RaftDowntimeArgs;
use crate::commands::shared::{create_dir, output, progress_bar};
use crate::error::UserError;
use crate::values::TimeoutRange;
use agora_core::{NodeId, Time};
use agora_protocols::raft::kv::{KvSetup, Workload};
use agora_protocols::raft::{RaftObs, Term};
use agora_sim::{CrashSpec, Digest, EndReason, Latency, NodeSet, SimConfig, Simulation};
use serde::Serialize;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

/// The top graph of the paper's figure: the randomness of the timeout varied.
pub const PAPER_TOP: &[(u32, u32)] =
    &[(150, 150), (150, 151), (150, 155), (150, 175), (150, 200), (150, 300)];
/// The bottom graph: the minimum timeout scaled, the range as wide as the minimum.
pub const PAPER_BOTTOM: &[(u32, u32)] = &[(12, 24), (25, 50), (50, 100), (100, 200), (150, 300)];
/// Trials per line in the paper, and for the line whose bounds are equal.
const PAPER_TRIALS: u32 = 1000;
const PAPER_TRIALS_EQUAL: u32 = 100;

/// The cluster of the paper's measurements.
pub const REPLICAS: usize = 5;
/// Heartbeat intervals between the leader's election and the interval its crash falls in.
const STEADY_HEARTBEATS: u32 = 10;
/// The longest wait for a leader, before the crash and after it: two minutes of virtual time
/// (the paper's top graph ends at 100 s).
pub const LIMIT_MS: u64 = 120_000;
/// The first wait after the crash, in maximum election timeouts; most trials end within it.
const FIRST_WAIT_TIMEOUTS: u32 = 20;
/// The downtime a table's `within` column counts up to.
pub const WITHIN_MS: f64 = 300.0;
/// The default one-way latency: a broadcast time (§5.6 of the paper: all four replies in) of
/// about 15 ms, as the paper's cluster had.
pub const DEFAULT_LATENCY: Latency = Latency::Uniform { min_ms: 4.0, max_ms: 9.0 };
/// The stream of the crash's phase, apart from the simulator's own streams of the seed.
const PHASE_STREAM: u64 = 0x5241_4654; // "RAFT"
/// The streams of the replicas' boot times, one each from this one.
const BOOT_STREAM: u64 = PHASE_STREAM + 1;

/// What every trial of one range shares.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// The election timeout range.
    pub range: TimeoutRange,
    /// One-way message latency.
    pub latency: Latency,
    /// Whether replicas pre-vote before standing.
    pub pre_vote: bool,
}

/// How a trial ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ending {
    /// A new leader was elected after the crash.
    Elected,
    /// None was within [`LIMIT_MS`] of the crash.
    NoLeader,
    /// No leader was steady before the crash: none was elected within [`LIMIT_MS`], or the
    /// one elected lost its office before its crash (latency too long for the timeouts).
    Unsettled,
}

impl Ending {
    fn as_str(self) -> &'static str {
        match self {
            Ending::Elected => "elected",
            Ending::NoLeader => "no-leader",
            Ending::Unsettled => "unsettled",
        }
    }
}

/// One trial: a crash and what followed.
#[derive(Clone, Debug, Serialize)]
pub struct Trial {
    /// The range, `MIN-MAX`.
    pub range: String,
    /// The trial's number within its range, from 0.
    pub trial: u32,
    /// The seed that replays it.
    pub seed: u64,
    /// How it ended.
    pub ending: Ending,
    /// The leader crashed.
    pub crashed: Option<u32>,
    /// When it crashed, in ms of virtual time.
    pub crash_at_ms: Option<f64>,
    /// From the crash to the new leader's election, in ms.
    pub downtime_ms: Option<f64>,
    /// The terms the election took: 1 when the first candidate won, one more per split vote
    /// (without pre-vote; with it, a pre-vote round that fails takes no term). With no leader
    /// within [`LIMIT_MS`], the terms started in that time.
    pub terms: Option<Term>,
    /// The replica elected.
    pub elected: Option<u32>,
    /// From the crash until every live replica has the new leader's first entry (its first
    /// append, which carries the term's no-op): the paper's measure, one message later.
    pub all_heard_ms: Option<f64>,
}

/// A property the checker found violated in a trial's run, with the trial's seed.
#[derive(Debug)]
pub struct Violated {
    /// The seed of the run.
    pub seed: u64,
    /// The property and what happened.
    pub detail: String,
}

impl Settings {
    fn heartbeat(&self) -> Duration {
        Duration::from_micros(u64::from(self.range.min_ms) * 500)
    }

    fn max_timeout(&self) -> Duration {
        Duration::from_millis(u64::from(self.range.max_ms))
    }

    /// Five replicas, no clients; the paper's timeouts and heartbeat.
    fn setup(&self) -> KvSetup {
        let min = Duration::from_millis(u64::from(self.range.min_ms));
        let idle = Workload { ops: 0, window: 1, interval: Duration::ZERO, reads: 0.0, retry: min * 5 };
        let mut setup = KvSetup::new(REPLICAS, 0, min, idle);
        // Liveness is this experiment's measurement, not a property to stop a run for.
        setup.settle = Duration::from_millis(LIMIT_MS * 4);
        let cfg = Arc::get_mut(&mut setup.raft).expect("just built");
        cfg.election_timeout_max = self.max_timeout();
        cfg.pre_vote = self.pre_vote;
        cfg.heartbeat = self.heartbeat();
        setup
    }

    fn run(
        &self,
        seed: u64,
        crash: Option<(NodeId, Time)>,
        max_time: Time,
    ) -> Result<agora_sim::Outcome<RaftObs>, Violated> {
        let mut cfg = SimConfig::new(seed);
        cfg.faults.network.latency = self.latency;
        cfg.keep_observations = true;
        cfg.max_time = max_time;
        // The replicas boot one after another, within one maximum timeout: down at 0, up at
        // their boot time. Booted at the same instant with equal timeouts, they would stand in
        // lockstep for ever and the first leader never be elected.
        for i in 0..REPLICAS as u32 {
            let boot_ms = (draw(seed, BOOT_STREAM + u64::from(i)) * f64::from(self.range.max_ms)).max(0.001);
            cfg.faults.crashes.push(CrashSpec {
                nodes: NodeSet::single(i),
                at_ms: 0.0,
                restart_ms: Some(boot_ms),
                wipe: Default::default(),
            });
        }
        if let Some((node, at)) = crash {
            cfg.faults.crashes.push(CrashSpec {
                nodes: NodeSet::single(node.0),
                at_ms: at.as_millis_f64(),
                restart_ms: None,
                wipe: Default::default(),
            });
            cfg.min_time = max_time;
        }
        let out = Simulation::new(self.setup(), cfg).run();
        match out.violations.first() {
            Some(v) => Err(Violated {
                seed,
                detail: format!("`{}` at {:.3} ms: {}", v.property, v.at.as_millis_f64(), v.detail),
            }),
            None => Ok(out),
        }
    }

    /// Runs trial `trial` of seed `seed`.
    pub fn trial(&self, trial: u32, seed: u64) -> Result<Trial, Violated> {
        let mut t = Trial {
            range: self.range.to_string(),
            trial,
            seed,
            ending: Ending::Unsettled,
            crashed: None,
            crash_at_ms: None,
            downtime_ms: None,
            terms: None,
            elected: None,
            all_heard_ms: None,
        };
        let Some((elected_at, leader, term)) = self.first_leader(seed)? else { return Ok(t) };
        let steady = self.heartbeat() * STEADY_HEARTBEATS;
        let crash_at = elected_at.after(steady + self.heartbeat().mul_f64(draw(seed, PHASE_STREAM)));
        t.crashed = Some(leader.0);
        t.crash_at_ms = Some(crash_at.as_millis_f64());
        let since_crash = |at: Time| at.since(crash_at).as_secs_f64() * 1e3;
        for wait in [self.max_timeout() * FIRST_WAIT_TIMEOUTS, Duration::from_millis(LIMIT_MS)] {
            let out = self.run(seed, Some((leader, crash_at)), crash_at.after(wait))?;
            let (before, after): (Vec<_>, Vec<_>) =
                out.observations.iter().partition(|(at, ..)| *at < crash_at);
            let lost_office = before.iter().any(|(_, node, o)| match o {
                RaftObs::Leader { term: later } => *later > term,
                RaftObs::SteppedDown { .. } => *node == leader,
                _ => false,
            });
            if lost_office {
                t.ending = Ending::Unsettled;
                return Ok(t);
            }
            let next = after.iter().find_map(|(at, node, o)| match o {
                RaftObs::Leader { term: later } if *later > term => Some((*at, *node, *later)),
                _ => None,
            });
            if let Some((at, node, later)) = next {
                t.ending = Ending::Elected;
                t.downtime_ms = Some(since_crash(at));
                t.terms = Some(later - term);
                t.elected = Some(node.0);
                t.all_heard_ms = all_heard(&after, leader, node, later).map(since_crash);
                return Ok(t);
            }
            t.ending = Ending::NoLeader;
            let highest = after.iter().filter_map(|(_, _, o)| match o {
                RaftObs::Voted { term: v, .. } => Some(*v),
                _ => None,
            });
            t.terms = Some(highest.max().unwrap_or(term) - term);
        }
        Ok(t)
    }

    /// The leader, its term and when it was elected, once the cluster of seed `seed` only
    /// heartbeats; `None` if it never does within [`LIMIT_MS`].
    fn first_leader(&self, seed: u64) -> Result<Option<(Time, NodeId, Term)>, Violated> {
        let first = self.run(seed, None, Time::from_millis(LIMIT_MS))?;
        if first.end != EndReason::Quiescent {
            return Ok(None);
        }
        Ok(first.observations.iter().rev().find_map(|(at, node, o)| match o {
            RaftObs::Leader { term } => Some((*at, *node, *term)),
            _ => None,
        }))
    }
}

/// When the last live replica but the new leader `elected` (of `term`) wrote the first entry
/// of `term` (`crashed` is down); `None` if one did not within the run.
fn all_heard(obs: &[&(Time, NodeId, RaftObs)], crashed: NodeId, elected: NodeId, term: Term) -> Option<Time> {
    let followers = (0..REPLICAS as u32).map(NodeId).filter(|&n| n != crashed && n != elected);
    let heard = |f: NodeId| {
        obs.iter().find_map(|(at, node, o)| match o {
            RaftObs::Appended { entries, .. } if *node == f && entries.iter().any(|e| e.0 >= term) => {
                Some(*at)
            }
            _ => None,
        })
    };
    followers.map(heard).collect::<Option<Vec<Time>>>()?.into_iter().max()
}

/// A number in `[0, 1)` drawn from the seed's stream `stream`, apart from the simulator's own
/// streams: where in its heartbeat interval the leader crashes, when a replica boots.
fn draw(seed: u64, stream: u64) -> f64 {
    let mut d = Digest::default();
    d.word(seed);
    d.word(stream);
    (d.value() >> 11) as f64 / (1u64 << 53) as f64
}

/// One range's results.
#[derive(Clone, Debug, Serialize)]
pub struct RangeStats {
    /// `MIN-MAX`.
    pub range: String,
    /// Trials run.
    pub trials: u32,
    /// Trials that elected a new leader.
    pub elected: u32,
    /// Trials with no new leader within [`LIMIT_MS`].
    pub no_leader: u32,
    /// Trials with no steady leader to crash.
    pub unsettled: u32,
    /// Downtime percentiles (nearest rank) over the trials that crashed a leader, a trial
    /// with no new leader counting as longer than any; `None`: beyond [`LIMIT_MS`].
    pub median_ms: Option<f64>,
    /// The 90th percentile.
    pub p90_ms: Option<f64>,
    /// The 99th percentile.
    pub p99_ms: Option<f64>,
    /// The longest.
    pub max_ms: Option<f64>,
    /// The share of those trials with a leader within [`WITHIN_MS`].
    pub within_300ms: Option<f64>,
    /// The mean number of terms an election took, over the trials that elected a leader.
    pub mean_terms: Option<f64>,
    /// The median of `all_heard_ms` over the trials that elected a leader.
    pub all_heard_median_ms: Option<f64>,
}

/// The downtimes of the trials that crashed a leader, `None` for no new leader.
pub fn downtimes(trials: &[Trial]) -> Vec<Option<f64>> {
    trials.iter().filter(|t| t.ending != Ending::Unsettled).map(|t| t.downtime_ms).collect()
}

/// Summarizes one range's trials.
pub fn stats(range: &str, trials: &[Trial]) -> RangeStats {
    let count = |e: Ending| trials.iter().filter(|t| t.ending == e).count() as u32;
    let mut d: Vec<f64> = downtimes(trials).into_iter().map(|d| d.unwrap_or(f64::INFINITY)).collect();
    d.sort_by(f64::total_cmp);
    let rank = |p: f64| -> Option<f64> {
        let i = ((p * d.len() as f64).ceil() as usize).clamp(1, d.len().max(1)) - 1;
        d.get(i).copied().filter(|v| v.is_finite())
    };
    let terms: Vec<Term> =
        trials.iter().filter(|t| t.ending == Ending::Elected).filter_map(|t| t.terms).collect();
    let mut heard: Vec<f64> = trials.iter().filter_map(|t| t.all_heard_ms).collect();
    heard.sort_by(f64::total_cmp);
    RangeStats {
        range: range.to_string(),
        trials: trials.len() as u32,
        elected: count(Ending::Elected),
        no_leader: count(Ending::NoLeader),
        unsettled: count(Ending::Unsettled),
        median_ms: rank(0.5),
        p90_ms: rank(0.9),
        p99_ms: rank(0.99),
        max_ms: rank(1.0),
        within_300ms: (!d.is_empty())
            .then(|| d.iter().filter(|&&v| v <= WITHIN_MS).count() as f64 / d.len() as f64),
        mean_terms: (!terms.is_empty()).then(|| terms.iter().sum::<Term>() as f64 / terms.len() as f64),
        all_heard_median_ms: heard.get(heard.len().saturating_sub(1) / 2).copied(),
    }
}

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
    let stats: Vec<RangeStats> = all.iter().map(|(r, t)| stats(&r.to_string(), t)).collect();
    if let Some(dir) = &args.out {
        output::write_file(&dir.join("raft-downtime.csv"), &csv(&all))?;
        let lines: Vec<cdf_chart::Line> =
            all.iter().map(|(r, t)| cdf_chart::Line { range: *r, downtimes: downtimes(t) }).collect();
        cdf_chart::draw(&dir.join("raft-downtime.svg"), &lines, &caption(args))?;
    }
    if args.json {
        let out = serde_json::json!({
            "experiment": "raft-downtime",
            "replicas": REPLICAS,
            "seed": args.seed,
            "latency": args.latency.to_string(),
            "pre_vote": pre_vote,
            "heartbeat": "half the minimum election timeout",
            "limit_ms": LIMIT_MS,
            "wall_s": wall_s,
            "ranges": stats,
        });
        println!("{out}");
    } else {
        print!("{}", table(args, &stats));
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

fn caption(args: &RaftDowntimeArgs) -> String {
    let pv = if args.pre_vote == "on" { "with" } else { "without" };
    format!(
        "Time without a leader after the leader's crash: {REPLICAS} replicas, latency {}, {pv} pre-vote, seed {}",
        args.latency, args.seed
    )
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| format!(">{LIMIT_MS}"), |v| format!("{v:.1}"))
}

fn table(args: &RaftDowntimeArgs, stats: &[RangeStats]) -> String {
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

fn csv(all: &[(TimeoutRange, Vec<Trial>)]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(min_ms: u32, max_ms: u32) -> Settings {
        Settings {
            range: TimeoutRange { min_ms, max_ms },
            latency: Latency::Uniform { min_ms: 4.0, max_ms: 9.0 },
            pre_vote: false,
        }
    }

    fn trials(s: &Settings, n: u32) -> Vec<Trial> {
        (0..n).map(|i| s.trial(i, 100 + u64::from(i)).expect("no violation")).collect()
    }

    #[test]
    fn a_wider_range_splits_fewer_votes_than_equal_timeouts() {
        // Terms started after the crash: one per split vote, plus the winner's.
        let mean_terms = |min, max| {
            let t = trials(&settings(min, max), 50);
            assert!(t.iter().all(|t| t.ending != Ending::Unsettled), "{min}-{max}: {t:?}");
            t.iter().map(|t| t.terms.unwrap() as f64).sum::<f64>() / t.len() as f64
        };
        let (equal, wide) = (mean_terms(150, 150), mean_terms(150, 300));
        assert!(equal > 10.0 * wide, "150-300 took {wide} terms on average, 150-150 {equal}");
        assert!(wide < 1.5, "150-300 split votes in most trials: {wide} terms on average");
    }

    #[test]
    fn a_trial_measures_from_the_crash_to_a_new_leader_in_a_later_term() {
        let s = settings(150, 300);
        for t in trials(&s, 20) {
            assert_eq!(t.ending, Ending::Elected, "{t:?}");
            let d = t.downtime_ms.unwrap();
            // Not before the earliest timeout could fire after the last heartbeat, nor later
            // than a few rounds of timeouts.
            assert!(d > 75.0 - 1e-9 && d < 2000.0, "{t:?}");
            assert_ne!(t.elected, t.crashed, "{t:?}");
            assert!(t.terms.unwrap() >= 1);
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_trial() {
        let s = settings(150, 155);
        let (a, b) = (s.trial(3, 42).unwrap(), s.trial(3, 42).unwrap());
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        assert!(trials(&s, 5).iter().any(|t| t.downtime_ms != a.downtime_ms), "seeds differ");
    }

    #[test]
    fn percentiles_count_a_trial_without_leader_as_the_longest() {
        let t = |d: Option<f64>, ending| Trial {
            range: "1-2".into(),
            trial: 0,
            seed: 0,
            ending,
            crashed: Some(0),
            crash_at_ms: Some(1.0),
            downtime_ms: d,
            terms: d.map(|_| 1),
            elected: d.map(|_| 1),
            all_heard_ms: d,
        };
        let mut v: Vec<Trial> = (1..=9).map(|i| t(Some(f64::from(i) * 100.0), Ending::Elected)).collect();
        v.push(t(None, Ending::NoLeader));
        v.push(t(None, Ending::Unsettled));
        let s = stats("1-2", &v);
        assert_eq!((s.trials, s.elected, s.no_leader, s.unsettled), (11, 9, 1, 1));
        assert_eq!(s.median_ms, Some(500.0));
        assert_eq!(s.p90_ms, Some(900.0));
        assert_eq!(s.max_ms, None, "the trial without a leader is the longest");
        assert_eq!(s.within_300ms, Some(0.3));
    }
}
