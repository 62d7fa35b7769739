//! Run metrics shared by every driver: messages and bytes per message type and per node,
//! operations (msgs-per-op, bytes-per-op, latency quantiles from an HDR histogram).

use crate::id::{OpId, Time};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Message counters, kept per message type and per node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Messages handed to the network (one per destination).
    pub sent: u64,
    /// Messages handed to a node (duplicates included).
    pub delivered: u64,
    /// Messages lost: link loss, partition, or a crashed destination.
    pub dropped: u64,
    /// Extra copies the network made.
    pub duplicated: u64,
    /// Wire bytes sent (frame header included).
    pub bytes_sent: u64,
    /// Wire bytes delivered.
    pub bytes_delivered: u64,
}

impl Counters {
    /// One message of `bytes` wire bytes handed to the network.
    pub fn count_sent(&mut self, bytes: u64) {
        self.sent += 1;
        self.bytes_sent += bytes;
    }

    /// `copies` messages of `bytes` each handed to the network (a multicast).
    pub fn count_sent_many(&mut self, copies: u64, bytes: u64) {
        self.sent += copies;
        self.bytes_sent += copies * bytes;
    }

    /// One message of `bytes` wire bytes handed to the node.
    pub fn count_delivered(&mut self, bytes: u64) {
        self.delivered += 1;
        self.bytes_delivered += bytes;
    }

    /// Adds `o`'s counts (two incarnations of one node, or two nodes).
    pub fn add(&mut self, o: &Counters) {
        self.sent += o.sent;
        self.delivered += o.delivered;
        self.dropped += o.dropped;
        self.duplicated += o.duplicated;
        self.bytes_sent += o.bytes_sent;
        self.bytes_delivered += o.bytes_delivered;
    }
}

/// Latency quantiles in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Quantiles {
    /// Operations measured.
    pub count: u64,
    /// Median, in milliseconds.
    pub p50_ms: f64,
    /// 90th percentile, in milliseconds.
    pub p90_ms: f64,
    /// 99th percentile, in milliseconds.
    pub p99_ms: f64,
    /// The largest, in milliseconds.
    pub max_ms: f64,
}

impl Quantiles {
    /// Quantiles of a histogram recorded in nanoseconds.
    pub fn from_histogram_ns(h: &Histogram<u64>) -> Quantiles {
        if h.is_empty() {
            return Quantiles::default();
        }
        let ms = |ns: u64| ns as f64 / 1e6;
        Quantiles {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }
}

/// A new latency histogram: 1 ns to about 1 hour, 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("static histogram bounds are valid")
}

/// Metrics of one run: counters per message type, and operations. Per-node [`Counters`] are
/// kept by the driver next to its other per-node state (one cache line per node matters at a
/// million nodes).
#[derive(Debug, Default)]
pub struct Metrics {
    kinds: Vec<(&'static str, Counters)>,
    /// Open and finished operations: begin time and the latest end time seen.
    ops: HashMap<OpId, (Time, Option<Time>)>,
}

impl Metrics {
    /// Empty metrics: no message type, no operation.
    pub fn new() -> Self {
        Self::default()
    }

    /// The index of message type `kind` in the per-type table (few types: a linear scan).
    pub fn kind_index(&mut self, kind: &'static str) -> usize {
        if let Some(i) = self.kinds.iter().position(|(k, _)| std::ptr::eq(*k, kind) || *k == kind) {
            return i;
        }
        self.kinds.push((kind, Counters::default()));
        self.kinds.len() - 1
    }

    /// One message of type `kind` (an index from [`Metrics::kind_index`]) and `bytes` wire bytes
    /// sent. Panics if `kind` was not issued by these metrics.
    pub fn sent(&mut self, kind: usize, bytes: u64) {
        self.kinds[kind].1.count_sent(bytes);
    }

    /// `copies` messages of type `kind` and `bytes` each sent (a multicast).
    pub fn sent_many(&mut self, kind: usize, copies: u64, bytes: u64) {
        self.kinds[kind].1.count_sent_many(copies, bytes);
    }

    /// One message of type `kind` and `bytes` wire bytes delivered.
    pub fn delivered(&mut self, kind: usize, bytes: u64) {
        self.kinds[kind].1.count_delivered(bytes);
    }

    /// Adds whole counters to message type `kind` (when merging reports).
    pub fn add_counters(&mut self, kind: usize, c: &Counters) {
        self.kinds[kind].1.add(c);
    }

    /// One message of type `kind` lost (by the network, or to a crashed node).
    pub fn dropped(&mut self, kind: usize) {
        self.kinds[kind].1.dropped += 1;
    }

    /// One extra copy of a message of type `kind` made by the network.
    pub fn duplicated(&mut self, kind: usize) {
        self.kinds[kind].1.duplicated += 1;
    }

    /// An operation began (the first begin counts).
    pub fn op_begin(&mut self, op: OpId, at: Time) {
        self.ops.entry(op).or_insert((at, None));
    }

    /// An operation ended here; its latency runs to the last end reported.
    pub fn op_end(&mut self, op: OpId, at: Time) {
        if let Some((_, end)) = self.ops.get_mut(&op) {
            *end = Some(end.map_or(at, |e| e.max(at)));
        }
    }

    /// Adds another run's (or another node's) metrics into these: counters by message type
    /// name, operations by id (earliest begin, latest end).
    pub fn merge(&mut self, other: &Metrics) {
        for (kind, c) in &other.kinds {
            let i = self.kind_index(kind);
            self.kinds[i].1.add(c);
        }
        for (op, (begin, end)) in &other.ops {
            let e = self.ops.entry(*op).or_insert((*begin, None));
            e.0 = e.0.min(*begin);
            e.1 = match (e.1, *end) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
    }

    /// Operations with an end so far (cheap enough to poll for a progress bar).
    pub fn ops_ended(&self) -> u64 {
        self.ops.values().filter(|(_, e)| e.is_some()).count() as u64
    }

    /// Every operation: id, begin, last end.
    pub fn op_events(&self) -> impl Iterator<Item = (OpId, Time, Option<Time>)> + '_ {
        self.ops.iter().map(|(op, (b, e))| (*op, *b, *e))
    }

    /// Records an operation's end even if its begin was seen elsewhere (merged later).
    pub fn op_end_unmatched(&mut self, op: OpId, at: Time) {
        let e = self.ops.entry(op).or_insert((Time::MAX, None));
        e.1 = Some(e.1.map_or(at, |x| x.max(at)));
    }

    /// The counters of every message type added up: the run's totals.
    pub fn totals(&self) -> Counters {
        let mut t = Counters::default();
        for (_, c) in &self.kinds {
            t.add(c);
        }
        t
    }

    /// The counters of each message type, in the order the types were first seen.
    pub fn by_kind(&self) -> &[(&'static str, Counters)] {
        &self.kinds
    }

    /// Operations begun, operations completed, and the latency quantiles of completed ones.
    pub fn ops(&self) -> OpStats {
        let mut h = latency_histogram();
        let mut completed = 0;
        let mut begun = 0;
        for (begin, end) in self.ops.values() {
            if *begin == Time::MAX {
                continue; // an end whose begin was never seen
            }
            begun += 1;
            if let Some(end) = end {
                completed += 1;
                h.saturating_record(end.0.saturating_sub(begin.0).max(1));
            }
        }
        OpStats { begun, completed, latency: Quantiles::from_histogram_ns(&h) }
    }
}

/// Operation statistics of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct OpStats {
    /// Operations that began (an end whose begin was never seen is not counted).
    pub begun: u64,
    /// Operations that began and ended.
    pub completed: u64,
    /// The latency of completed operations, from begin to last end.
    pub latency: Quantiles,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_kind() {
        let mut m = Metrics::new();
        let a = m.kind_index("A");
        let b = m.kind_index("B");
        assert_eq!(m.kind_index("A"), a);
        m.sent(a, 10);
        m.sent(b, 5);
        m.delivered(a, 10);
        m.dropped(b);
        let t = m.totals();
        assert_eq!((t.sent, t.delivered, t.dropped, t.bytes_sent), (2, 1, 1, 15));
        assert_eq!(m.by_kind()[1].1.dropped, 1);
    }

    #[test]
    fn merging_adds_counters_by_name_and_joins_operations() {
        let mut a = Metrics::new();
        let k = a.kind_index("A");
        a.sent(k, 3);
        a.op_begin(1, Time::from_millis(1));
        let mut b = Metrics::new();
        let _ = b.kind_index("B");
        let k = b.kind_index("A");
        b.sent(k, 4);
        b.op_end_unmatched(1, Time::from_millis(9));
        b.op_end_unmatched(2, Time::from_millis(9));
        a.merge(&b);
        assert_eq!(a.by_kind()[0].1.bytes_sent, 7);
        let ops = a.ops();
        assert_eq!((ops.begun, ops.completed), (1, 1));
        assert!((ops.latency.max_ms - 8.0).abs() < 0.01);
    }

    #[test]
    fn op_latency_runs_to_the_last_end() {
        let mut m = Metrics::new();
        m.op_begin(1, Time::from_millis(10));
        m.op_end(1, Time::from_millis(15));
        m.op_end(1, Time::from_millis(30));
        m.op_end(1, Time::from_millis(20));
        m.op_begin(2, Time::from_millis(10));
        let ops = m.ops();
        assert_eq!((ops.begun, ops.completed), (2, 1));
        assert!((ops.latency.max_ms - 20.0).abs() < 0.05, "{:?}", ops.latency);
    }
}
