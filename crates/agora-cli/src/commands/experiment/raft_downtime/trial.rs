//! One trial of the experiment: two simulated runs of one seed — the first names the steady
//! leader, the second replays it and crashes that leader — and what they show: the downtime,
//! the terms the election took, when every live replica heard the new leader.

use crate::values::TimeoutRange;
use agora_core::{NodeId, Time};
use agora_protocols::raft::kv::{KvSetup, Workload};
use agora_protocols::raft::{RaftObs, Term};
use agora_sim::{CrashSpec, Digest, EndReason, Latency, NodeSet, SimConfig, Simulation};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// The cluster of the paper's measurements.
pub const REPLICAS: usize = 5;
/// Heartbeat intervals between the leader's election and the interval its crash falls in.
const STEADY_HEARTBEATS: u32 = 10;
/// The longest wait for a leader, before the crash and after it: two minutes of virtual time
/// (the paper's top graph ends at 100 s).
pub const LIMIT_MS: u64 = 120_000;
/// The first wait after the crash, in maximum election timeouts; most trials end within it.
const FIRST_WAIT_TIMEOUTS: u32 = 20;
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
    /// Its name in the CSV.
    pub fn as_str(self) -> &'static str {
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
                debug_assert!(
                    at >= crash_at && node != leader,
                    "a leader elected before the crash, or the dead one"
                );
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
}
