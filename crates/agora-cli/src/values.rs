//! The typed, range-checked values of the command line: every number a flag takes is parsed
//! here against a documented range, so that a value out of range is a one-line error before
//! anything runs (no overflow, no huge allocation, no zero-length timer later).
//!
//! Each range is named once below and quoted in the flag's help text.

use clap::builder::RangedU64ValueParser;
use std::ops::Range;

/// Most nodes of a simulated cluster (and of `bench` and `complexity` sizes).
pub use agora_protocols::params::MAX_NODES;
/// Most nodes of a TCP cluster: one socket and a few tasks each, in one process or machine.
pub const MAX_TCP_NODES: usize = 1_000;
/// Longest time limit (`--max-time-ms`, `--close-after-ms`): 10^9 ms, about 11.6 days.
pub const MAX_LIMIT_MS: f64 = 1e9;
pub use agora_protocols::params::{MAX_TIMER_MS, MIN_TIMER_MS};
/// Longest mean interval between a workload's operations: one hour.
pub const MAX_INTERVAL_MS: f64 = 3.6e6;
/// Most seeds of one `agora check` campaign.
pub const MAX_SEEDS: u64 = 1_000_000;
/// Most events of one simulated run.
pub const MAX_EVENTS: u64 = 1_000_000_000_000;
/// Largest energy or carbon constant (`complexity`).
pub const MAX_CONSTANT: f64 = 1e6;

/// An integer flag within `lo..=hi` (clap's message names the range).
pub fn count<T>(lo: u64, hi: u64) -> RangedU64ValueParser<T>
where
    T: TryFrom<u64> + Clone + Send + Sync + 'static,
    <T as TryFrom<u64>>::Error: std::error::Error + Send + Sync + 'static,
{
    RangedU64ValueParser::<T>::new().range(lo..=hi)
}

fn number(s: &str) -> Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|_| format!("`{s}` is not a number"))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("`{s}` is not a finite number"))
    }
}

/// `s` as a number in `lo..=hi` (above `lo` when `lo_open`); the error quotes `s` and names
/// the range.
fn within(s: &str, lo: f64, hi: f64, lo_open: bool, unit: &str) -> Result<f64, String> {
    let v = number(s)?;
    let above = if lo_open { v > lo } else { v >= lo };
    if above && v <= hi {
        Ok(v)
    } else {
        let open = if lo_open { "(" } else { "[" };
        Err(format!("{} is not in {open}{lo}, {hi}]{unit}", s.trim()))
    }
}

/// A time limit in milliseconds: above 0, at most [`MAX_LIMIT_MS`].
pub fn limit_ms(s: &str) -> Result<f64, String> {
    within(s, 0.0, MAX_LIMIT_MS, true, " ms")
}

/// A protocol timer in milliseconds, in [`MIN_TIMER_MS`]..=[`MAX_TIMER_MS`].
pub fn timer_ms(s: &str) -> Result<f64, String> {
    within(s, MIN_TIMER_MS, MAX_TIMER_MS, false, " ms")
}

/// A mean interval or a delay in milliseconds, in `0..=`[`MAX_INTERVAL_MS`].
pub fn interval_ms(s: &str) -> Result<f64, String> {
    within(s, 0.0, MAX_INTERVAL_MS, false, " ms")
}

/// A probability, in `0..=1`.
pub fn probability(s: &str) -> Result<f64, String> {
    within(s, 0.0, 1.0, false, " (a probability)")
}

/// A non-negative physical constant, at most [`MAX_CONSTANT`].
pub fn constant(s: &str) -> Result<f64, String> {
    within(s, 0.0, MAX_CONSTANT, false, "")
}

/// A seed range `A..B` (B excluded), A < B, at most [`MAX_SEEDS`] seeds.
pub fn seeds(s: &str) -> Result<Range<u64>, String> {
    let bad = || format!("`{s}`: expected A..B with A < B, e.g. 0..1000");
    let (a, b) = s.split_once("..").ok_or_else(bad)?;
    let a = a.trim().parse::<u64>().map_err(|_| bad())?;
    let b = b.trim().parse::<u64>().map_err(|_| bad())?;
    if a >= b {
        return Err(bad());
    }
    if b - a > MAX_SEEDS {
        return Err(format!("`{s}` names {} seeds; a campaign runs at most {MAX_SEEDS}", b - a));
    }
    Ok(a..b)
}

/// One of the `count` shards of a campaign: the seeds whose index in the range (seed minus
/// the range's first seed) leaves `index` when divided by `count`. `index` counts from 0, as
/// Kubernetes' completion index and a Swarm replicated job's task slot do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    /// Which shard, in `0..count`.
    pub index: u64,
    /// How many shards the campaign has, in `1..=`[`MAX_SEEDS`].
    pub count: u64,
}

impl Shard {
    /// The whole campaign as one shard.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Whether the seed at `offset` in the range (its index from the first seed) is this
    /// shard's.
    pub fn has(self, offset: u64) -> bool {
        offset % self.count == self.index
    }

    /// How many of the `total` seeds of a range are this shard's.
    pub fn seeds_of(self, total: u64) -> u64 {
        if self.index >= total {
            0
        } else {
            (total - self.index).div_ceil(self.count)
        }
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// A shard `I/N`: N shards (1..=[`MAX_SEEDS`]), I counted from 0 (`0/3`, `1/3`, `2/3`).
pub fn shard(s: &str) -> Result<Shard, String> {
    let bad = || format!("`{s}`: expected I/N, shard I of N counted from 0, e.g. 0/3 (0/3, 1/3, 2/3)");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let index = i.trim().parse::<u64>().map_err(|_| bad())?;
    let count = n.trim().parse::<u64>().map_err(|_| bad())?;
    if count == 0 || count > MAX_SEEDS {
        return Err(format!("`{s}`: the number of shards is in 1..={MAX_SEEDS}"));
    }
    if index >= count {
        return Err(format!(
            "`{s}`: shards of {count} are 0/{count} to {}/{count} (counted from 0)",
            count - 1
        ));
    }
    Ok(Shard { index, count })
}

/// Longest election timeout of `agora experiment raft-downtime`'s ranges: 6 s, so that 20 of
/// them fit in its two-minute wait for a leader.
pub const MAX_ELECTION_TIMEOUT_MS: u32 = 6_000;

/// An election timeout range `MIN-MAX` in whole milliseconds, as the Raft paper writes them
/// (`150-300`): timeouts are drawn uniformly between the two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeoutRange {
    /// The shortest timeout, in milliseconds (at least 1).
    pub min_ms: u32,
    /// The longest, in milliseconds (at least `min_ms`, at most [`MAX_ELECTION_TIMEOUT_MS`]).
    pub max_ms: u32,
}

impl std::fmt::Display for TimeoutRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.min_ms, self.max_ms)
    }
}

/// `MIN-MAX`: whole milliseconds, `1 <= MIN <= MAX <=` [`MAX_ELECTION_TIMEOUT_MS`].
pub fn timeout_range(s: &str) -> Result<TimeoutRange, String> {
    let max = MAX_ELECTION_TIMEOUT_MS;
    let bad =
        || format!("`{s}`: expected MIN-MAX in whole milliseconds, 1 <= MIN <= MAX <= {max}, e.g. 150-300");
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let min_ms = a.trim().parse::<u32>().map_err(|_| bad())?;
    let max_ms = b.trim().parse::<u32>().map_err(|_| bad())?;
    if min_ms == 0 || min_ms > max_ms || max_ms > max {
        return Err(bad());
    }
    Ok(TimeoutRange { min_ms, max_ms })
}

/// A one-way latency distribution (`constant:MS`, `uniform:MIN,MAX`, `exp:MEAN`,
/// `lognormal:MEDIAN,SIGMA`), checked as `--latency` is everywhere.
pub fn latency(s: &str) -> Result<agora_sim::Latency, String> {
    s.parse::<agora_sim::Latency>().map_err(|e| e.0)
}

/// A cluster name, carried by every handshake: 1 to
/// [`agora_net::handshake::MAX_NAME_BYTES`] bytes of ASCII letters, digits, `-`, `_` and `.`.
pub fn cluster_name(s: &str) -> Result<String, String> {
    let max = agora_net::handshake::MAX_NAME_BYTES;
    if s.is_empty() || s.len() > max {
        return Err(format!("a cluster name has 1 to {max} bytes; this one has {}", s.len()));
    }
    if let Some(c) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
        return Err(format!("{c:?} in a cluster name: use letters, digits, `-`, `_` and `.`"));
    }
    Ok(s.to_string())
}

/// A span of wall time written with its unit (`1500ms`, `15s`, `2m`, `1h`), 1 s to 24 h: how
/// long `agora cluster nemesis` breaks a cluster, and how long it lets it recover.
pub fn nemesis_span(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let scale = match unit.trim() {
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("`{s}`: a number and its unit, e.g. 500ms, 60s, 2m, 1h")),
    };
    let secs = number(n)? * scale;
    if !(1.0..=86_400.0).contains(&secs) {
        return Err(format!("{t} is not between 1 s and 24 h"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nemesis_spans_have_a_unit_and_a_range() {
        assert_eq!(nemesis_span("60s"), Ok(std::time::Duration::from_secs(60)));
        assert_eq!(nemesis_span("1500ms"), Ok(std::time::Duration::from_millis(1500)));
        assert_eq!(nemesis_span("2m"), Ok(std::time::Duration::from_secs(120)));
        assert_eq!(nemesis_span(" 1.5 s"), Ok(std::time::Duration::from_millis(1500)));
        for bad in ["60", "s", "0s", "999ms", "25h", "-1s", "1e3s", "1x"] {
            assert!(nemesis_span(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn numbers_outside_their_range_are_refused() {
        assert_eq!(limit_ms("60000"), Ok(60_000.0));
        for bad in ["0", "-1", "1e300", "inf", "NaN", "", "1e10"] {
            assert!(limit_ms(bad).is_err(), "{bad}");
        }
        assert!(timer_ms("0.000001").is_err());
        assert_eq!(timer_ms("0.001"), Ok(0.001));
        assert!(probability("1.0001").is_err());
        assert!(probability("-0").is_ok());
        assert!(interval_ms("0").is_ok());
        assert!(constant("-1e-9").is_err());
    }

    #[test]
    fn cluster_names_fit_the_handshake() {
        assert!(cluster_name("agora-1.test_a").is_ok());
        assert!(cluster_name(&"a".repeat(agora_net::handshake::MAX_NAME_BYTES)).is_ok());
        assert!(cluster_name(&"a".repeat(agora_net::handshake::MAX_NAME_BYTES + 1)).is_err());
        for bad in ["", "a b", "é", "a\n"] {
            assert!(cluster_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn shards_count_from_zero_and_split_a_range_evenly() {
        assert_eq!(shard("0/3"), Ok(Shard { index: 0, count: 3 }));
        assert_eq!(shard(" 2 / 3 "), Ok(Shard { index: 2, count: 3 }));
        for bad in ["0/0", "3/3", "5/3", "x", "1", "/3", "1/", "-1/3", "1/2/3", "0/1000001"] {
            assert!(shard(bad).is_err(), "{bad}");
        }
        // Every seed of a range is in exactly one shard, and `seeds_of` counts them.
        for total in [1u64, 2, 7, 60] {
            for count in [1u64, 2, 3, 8, 61] {
                let mut covered = 0;
                for index in 0..count {
                    let s = Shard { index, count };
                    let mine = (0..total).filter(|&o| s.has(o)).count() as u64;
                    assert_eq!(mine, s.seeds_of(total), "{s} of {total}");
                    covered += mine;
                }
                assert_eq!(covered, total);
            }
        }
    }

    #[test]
    fn seed_ranges_are_capped_and_never_wrap() {
        assert_eq!(seeds("0..100"), Ok(0..100));
        assert_eq!(seeds("18446744073709551614..18446744073709551615"), Ok(u64::MAX - 1..u64::MAX));
        assert!(seeds("0..18446744073709551615").unwrap_err().contains("at most"));
        for bad in ["5..5", "6..5", "..5", "0..", "a..b", "0...5", "-1..3"] {
            assert!(seeds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timeout_ranges_are_ordered_whole_milliseconds() {
        assert_eq!(timeout_range("150-300"), Ok(TimeoutRange { min_ms: 150, max_ms: 300 }));
        assert_eq!(timeout_range("150-150").map(|r| r.to_string()), Ok("150-150".into()));
        assert_eq!(timeout_range("1-6000"), Ok(TimeoutRange { min_ms: 1, max_ms: 6000 }));
        for bad in ["200-100", "0-0", "0-5", "abc", "150", "150-", "-300", "1.5-3", "150-6001", "-1-5"] {
            assert!(timeout_range(bad).is_err(), "{bad}");
        }
    }
}
