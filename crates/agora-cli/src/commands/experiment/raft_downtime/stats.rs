//! One range's figures: downtime percentiles (nearest rank), the share within 300 ms, the
//! terms an election took, and the trials that found no leader or no steady one.

use super::trial::{Ending, Trial};
use agora_protocols::raft::Term;
use serde::Serialize;

/// The downtime a table's `within` column counts up to.
pub const WITHIN_MS: f64 = 300.0;

/// One range's results.
#[derive(Clone, Debug, Serialize)]
pub struct RangeStats {
    /// `MIN-MAX`.
    pub range: String,
    /// Trials run.
    pub trials: u32,
    /// Trials that elected a new leader.
    pub elected: u32,
    /// Trials with no new leader within [`LIMIT_MS`](super::trial::LIMIT_MS).
    pub no_leader: u32,
    /// Trials with no steady leader to crash.
    pub unsettled: u32,
    /// Downtime percentiles (nearest rank) over the trials that crashed a leader, a trial
    /// with no new leader counting as longer than any; `None`: beyond [`LIMIT_MS`](super::trial::LIMIT_MS).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::experiment::raft_downtime::trial::{Ending, Trial};

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
