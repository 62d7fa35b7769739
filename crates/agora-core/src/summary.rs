//! `RunSummary`: the one result format of every driver (`agora sim --json`, `agora run --json`),
//! so tables, reports and scripts read one shape. It is built in one place per driver:
//! `agora_sim::Outcome::summary` and `agora_net::report::summarize`.

use crate::check::{NotJudged, Property, Violation};
use crate::metrics::{Counters, Metrics, Quantiles};
use serde::Serialize;

/// A violation as reported to a user: where, when, and how to replay it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ViolationReport {
    /// The name of the broken property.
    pub property: String,
    /// The node where it was seen broken; `None` for a property of the whole run.
    pub node: Option<u32>,
    /// When, in milliseconds since the run began.
    pub at_ms: f64,
    /// What was seen, in words.
    pub detail: String,
    /// The run's seed (in the runtime, the cluster's).
    pub seed: u64,
    /// One shell command that replays this run.
    pub reproduce: String,
}

impl ViolationReport {
    /// The report of `v` in a run of seed `seed`, with the command that replays it.
    pub fn new(v: &Violation, seed: u64, reproduce: String) -> Self {
        ViolationReport {
            property: v.property.to_string(),
            node: v.node.map(|n| n.0),
            at_ms: v.at.as_millis_f64(),
            detail: v.detail.clone(),
            seed,
            reproduce,
        }
    }
}

/// A property the run did not judge, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NotJudgedReport {
    /// The property's name.
    pub property: String,
    /// E.g. "time limit", "messages may have been lost".
    pub reason: String,
}

/// Counters of one message type.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct KindRow {
    /// The message type's name ([`crate::Message::kind`]).
    pub kind: String,
    /// Its messages and bytes; flattened into the row in JSON.
    #[serde(flatten)]
    pub counters: Counters,
}

/// The summary of one run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunSummary {
    /// The protocol's CLI name ("flood").
    pub protocol: String,
    /// "sim" or "tcp".
    pub runtime: String,
    /// The cluster size.
    pub nodes: usize,
    /// The run's seed (in the runtime, the cluster's: it seeds every node's random source).
    pub seed: u64,
    /// Why the run ended, in kebab case: `quiescent`, `time-limit`, `event-limit` or `violation`
    /// in the simulator (`agora_sim::EndReason`); `quiescent`, `idle`, `time-limit`,
    /// `interrupted` or `storage-failure` in the runtime (`agora_net::End`); `running` for a
    /// history judged while its nodes run.
    pub end: String,
    /// Messages handed to the network, one per destination.
    pub messages_sent: u64,
    /// Messages handed to a node, duplicates included.
    pub messages_delivered: u64,
    /// Messages lost: link loss, partition, a crashed destination or a full send queue.
    pub messages_dropped: u64,
    /// Extra copies the network made (simulator only; zero over TCP).
    pub messages_duplicated: u64,
    /// Wire bytes sent, each frame's 4-byte header included.
    pub bytes_sent: u64,
    /// Wire bytes delivered, each frame's 4-byte header included.
    pub bytes_delivered: u64,
    /// Operations begun (see [`crate::Effect::OpBegin`]).
    pub ops_begun: u64,
    /// Operations begun that ended.
    pub ops_completed: u64,
    /// Operations begun and never completed in a run that did not end on its own (a time or
    /// event limit, an interrupt): unfinished work, not a quiet end.
    pub ops_unfinished: u64,
    /// Messages sent per operation begun (`null` without operations).
    pub msgs_per_op: Option<f64>,
    /// Wire bytes sent per operation begun (`null` without operations).
    pub bytes_per_op: Option<f64>,
    /// Latency of completed operations.
    pub latency_ms: Quantiles,
    /// Operations completed per second from the first one's start to the last one's end
    /// (virtual seconds in the simulator).
    pub ops_per_s: Option<f64>,
    /// How long the run lasted on its clock, in milliseconds: virtual time in the simulator, wall
    /// time since the start in the runtime.
    pub virtual_time_ms: f64,
    /// Wall-clock milliseconds the run took to compute (not a property of the protocol).
    pub wall_ms: f64,
    /// Events handled: every queued event in the simulator (deliveries, timer firings, faults);
    /// every handler step (start, message, timer) in the runtime.
    pub events: u64,
    /// Delivered messages per second of wall time.
    pub delivered_per_s: f64,
    /// The run's fingerprint (simulator only).
    pub trace_digest: Option<String>,
    /// The properties judged, by name (see [`RunSummary::judged`]).
    pub properties: Vec<String>,
    /// The properties not judged, with why: never reported as "ok".
    pub not_judged: Vec<NotJudgedReport>,
    /// The violations seen, in the order they were found (a simulated run stops at the first).
    pub violations: Vec<ViolationReport>,
    /// The run's faults outside its protocol's fault model, in words (see [`crate::model`]):
    /// when not empty, violations are what the model's assumption buys, not bugs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub outside_model: Vec<String>,
    /// The counters of each message type, in the order the types were first seen.
    pub by_kind: Vec<KindRow>,
    /// Per-node counters, for runs of at most [`PER_NODE_JSON_LIMIT`] nodes.
    pub per_node: Option<Vec<Counters>>,
    /// The process's peak resident memory, where the OS reports it.
    pub peak_rss_mb: Option<f64>,
    /// CPU time (user + system) of the node processes, runtime only.
    pub cpu_ms: Option<f64>,
    /// Durable transactions (each one fsync) of all nodes, runtime with storage only.
    pub fsyncs: Option<u64>,
}

/// Above this many nodes the JSON summary omits per-node counters (use a CSV instead).
pub const PER_NODE_JSON_LIMIT: usize = 100;

impl RunSummary {
    /// Fills the metric fields from `metrics`; the caller sets the rest.
    #[allow(clippy::too_many_arguments)]
    pub fn from_metrics(
        protocol: &str,
        runtime: &str,
        nodes: usize,
        seed: u64,
        end: &str,
        metrics: &Metrics,
        per_node: &[Counters],
        virtual_time_ms: f64,
        wall_ms: f64,
        events: u64,
    ) -> RunSummary {
        let t = metrics.totals();
        let ops = metrics.ops();
        let per_op = |x: u64| (ops.begun > 0).then(|| x as f64 / ops.begun as f64);
        let first = metrics.op_events().map(|(_, b, _)| b).min();
        let last = metrics.op_events().filter_map(|(_, _, e)| e).max();
        let ops_per_s = match (first, last) {
            (Some(f), Some(l)) if l > f && f != crate::Time::MAX => {
                Some(ops.completed as f64 / (l.since(f).as_secs_f64()))
            }
            _ => None,
        };
        RunSummary {
            protocol: protocol.to_string(),
            runtime: runtime.to_string(),
            nodes,
            seed,
            end: end.to_string(),
            messages_sent: t.sent,
            messages_delivered: t.delivered,
            messages_dropped: t.dropped,
            messages_duplicated: t.duplicated,
            bytes_sent: t.bytes_sent,
            bytes_delivered: t.bytes_delivered,
            ops_begun: ops.begun,
            ops_completed: ops.completed,
            ops_unfinished: if matches!(end, "quiescent" | "idle") {
                0
            } else {
                ops.begun.saturating_sub(ops.completed)
            },
            msgs_per_op: per_op(t.sent),
            bytes_per_op: per_op(t.bytes_sent),
            latency_ms: ops.latency,
            ops_per_s,
            virtual_time_ms,
            wall_ms,
            events,
            delivered_per_s: if wall_ms > 0.0 { t.delivered as f64 / (wall_ms / 1e3) } else { 0.0 },
            trace_digest: None,
            properties: Vec::new(),
            not_judged: Vec::new(),
            violations: Vec::new(),
            outside_model: Vec::new(),
            by_kind: metrics
                .by_kind()
                .iter()
                .map(|(k, c)| KindRow { kind: k.to_string(), counters: *c })
                .collect(),
            per_node: (nodes <= PER_NODE_JSON_LIMIT).then(|| per_node.to_vec()),
            peak_rss_mb: None,
            cpu_ms: None,
            fsyncs: None,
        }
    }

    /// Records which of the checker's `properties` were judged: all but those in
    /// `not_judged`. A property skipped because the run did not end on its own gets the
    /// run's end (`self.end`: time limit, event limit, ...) as its reason.
    pub fn judged(&mut self, properties: &[Property], not_judged: &[(&'static str, NotJudged)]) {
        let unended = match self.end.as_str() {
            "time-limit" => "time limit".to_string(),
            "event-limit" => "event limit".to_string(),
            "queue-limit" => "too many events waiting at once".to_string(),
            "interrupted" => "interrupted".to_string(),
            // A history read from nodes that still run (`agora cluster status`).
            "running" => "the nodes still run".to_string(),
            other => format!("the run ended: {other}"),
        };
        self.not_judged = not_judged
            .iter()
            .map(|(name, why)| NotJudgedReport {
                property: name.to_string(),
                reason: if *why == NotJudged::Unended { unended.clone() } else { why.to_string() },
            })
            .collect();
        self.properties = properties
            .iter()
            .filter(|p| !not_judged.iter().any(|(n, _)| *n == p.name))
            .map(|p| p.name.to_string())
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::PropertyKind;

    #[test]
    fn an_unjudged_property_is_not_listed_as_judged_and_says_why() {
        let props = [
            Property { name: "safe", kind: PropertyKind::Always, description: "" },
            Property { name: "live", kind: PropertyKind::AtEnd, description: "" },
        ];
        let mut s =
            RunSummary::from_metrics("p", "sim", 1, 1, "time-limit", &Metrics::new(), &[], 0.0, 0.0, 0);
        s.judged(&props, &[("live", NotJudged::Unended)]);
        assert_eq!(s.properties, ["safe"]);
        assert_eq!(s.not_judged, [NotJudgedReport { property: "live".into(), reason: "time limit".into() }]);
        s.judged(&props, &[]);
        assert_eq!(s.properties, ["safe", "live"]);
        assert!(s.not_judged.is_empty());
    }
}
