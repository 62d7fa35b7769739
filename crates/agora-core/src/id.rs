//! Identifiers and virtual time: `NodeId`, `Time`, `OpId`.
//!
//! `Time` is a point on a node's (or the simulator's) clock in nanoseconds since the run began.
//! It is a plain number handed to protocols; nothing here reads a real clock.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// A node of a cluster, numbered densely from 0.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct NodeId(pub u32);

impl NodeId {
    /// The node's position in per-node tables.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u32> for NodeId {
    fn from(v: u32) -> Self {
        NodeId(v)
    }
}

/// Identifies one operation (a broadcast, a critical-section entry, a commit) for the
/// msgs-per-op and latency metrics. The protocol chooses the numbering.
pub type OpId = u64;

/// A point in time, in nanoseconds since the run began.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct Time(pub u64);

impl Time {
    /// The moment the run begins.
    pub const ZERO: Time = Time(0);
    /// The latest representable time: "never" for deadlines and limits.
    pub const MAX: Time = Time(u64::MAX);

    /// `ms` milliseconds after the run began, saturating at [`Time::MAX`].
    pub fn from_millis(ms: u64) -> Time {
        Time(ms.saturating_mul(1_000_000))
    }

    /// Fractional milliseconds (from a user's setting or a sampled latency), rounded to the
    /// nearest nanosecond; negative values become zero and values past the range saturate.
    pub fn from_millis_f64(ms: f64) -> Time {
        Time((ms.max(0.0) * 1e6).round() as u64)
    }

    /// Nanoseconds since the run began.
    pub fn as_nanos(self) -> u64 {
        self.0
    }

    /// Milliseconds since the run began, as a float for reports (exact below about 104 days).
    pub fn as_millis_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }

    /// `self + d`, saturating at `Time::MAX`.
    pub fn after(self, d: Duration) -> Time {
        Time(self.0.saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)))
    }

    /// The time from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Time) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Debug for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3}ms", self.as_millis_f64())
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3} ms", self.as_millis_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_arithmetic_saturates() {
        assert_eq!(Time::from_millis(2).after(Duration::from_millis(3)), Time::from_millis(5));
        assert_eq!(Time::MAX.after(Duration::from_secs(1)), Time::MAX);
        assert_eq!(Time::from_millis(1).since(Time::from_millis(5)), Duration::ZERO);
        assert_eq!(Time::from_millis_f64(1.5).as_nanos(), 1_500_000);
    }
}
