//! Human-readable output: the summary table, per-node CSV, files, and peak memory.

use crate::error::UserError;
use agora_core::{Counters, RunSummary};
use std::fmt::Write as _;
use std::path::Path;

/// The summary as an aligned table.
pub fn table(s: &RunSummary) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "agora {} {} — {} nodes, seed {}", s.runtime, s.protocol, s.nodes, s.seed);
    if s.runtime == "sim" {
        let _ = writeln!(
            t,
            "end            {} after {} events; virtual {:.3} ms, wall {:.1} ms",
            s.end, s.events, s.virtual_time_ms, s.wall_ms
        );
    } else {
        let _ = writeln!(
            t,
            "end            {} after {} events; wall {:.1} ms, cpu {:.1} ms",
            s.end,
            s.events,
            s.wall_ms,
            s.cpu_ms.unwrap_or(0.0)
        );
    }
    let _ = writeln!(
        t,
        "messages       sent {}  delivered {}  dropped {}  duplicated {}",
        s.messages_sent, s.messages_delivered, s.messages_dropped, s.messages_duplicated
    );
    let _ = writeln!(t, "bytes          sent {}  delivered {}", s.bytes_sent, s.bytes_delivered);
    let per_op = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.1}"));
    let _ = writeln!(
        t,
        "operations     {} begun, {} completed; {} msgs/op, {} bytes/op",
        s.ops_begun,
        s.ops_completed,
        per_op(s.msgs_per_op),
        per_op(s.bytes_per_op)
    );
    if s.ops_unfinished > 0 {
        let _ = writeln!(
            t,
            "unfinished     {} operations begun and never completed ({})",
            s.ops_unfinished, s.end
        );
    }
    let l = &s.latency_ms;
    if l.count > 0 {
        let _ = writeln!(
            t,
            "latency (ms)   p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}",
            l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms
        );
    }
    if let Some(r) = s.ops_per_s {
        let unit = if s.runtime == "sim" { "virtual" } else { "wall" };
        let _ = writeln!(t, "ops/s          {r:.0} completed per {unit} second (first start to last end)");
    }
    let _ = writeln!(t, "throughput     {:.0} delivered msgs per wall second", s.delivered_per_s);
    if let Some(f) = s.fsyncs {
        let _ = writeln!(t, "fsyncs         {f} ({:.0} per second)", f as f64 / (s.wall_ms / 1e3).max(1e-9));
    }
    if let Some(d) = &s.trace_digest {
        let _ = writeln!(t, "trace digest   {d}");
    }
    if let Some(m) = s.peak_rss_mb {
        let _ = writeln!(t, "peak memory    {m:.0} MiB");
    }
    let _ = writeln!(
        t,
        "by type        {:<12} {:>10} {:>10} {:>9} {:>9} {:>12}",
        "", "sent", "delivered", "dropped", "dup", "bytes"
    );
    for k in &s.by_kind {
        let c = &k.counters;
        let _ = writeln!(
            t,
            "               {:<12} {:>10} {:>10} {:>9} {:>9} {:>12}",
            k.kind, c.sent, c.delivered, c.dropped, c.duplicated, c.bytes_sent
        );
    }
    t.push_str(&verdict(s));
    t
}

/// The checker's verdict: each violation with its reproduce command, or the properties judged
/// ok; then the properties not judged, with why.
pub fn verdict(s: &RunSummary) -> String {
    let mut t = String::new();
    if !s.outside_model.is_empty() {
        let _ = writeln!(
            t,
            "fault model    outside it: {} (a violation is expected here, not a bug)",
            s.outside_model.join(", ")
        );
    }
    if s.violations.is_empty() {
        t.push_str(&checks(s));
        return t;
    }
    for v in &s.violations {
        let node = v.node.map_or(String::new(), |n| format!(" at node {n}"));
        let _ = writeln!(t, "VIOLATION      `{}`{node} at {:.3} ms: {}", v.property, v.at_ms, v.detail);
        let _ = writeln!(t, "reproduce      {}", v.reproduce);
    }
    t.push_str(&not_judged(s));
    t
}

/// The verdict of a run without violations: "ok" only about the properties judged, then one
/// line per property that was not judged, with why.
pub fn checks(s: &RunSummary) -> String {
    let mut t = String::new();
    if s.properties.is_empty() {
        let _ = writeln!(t, "checks         none judged");
    } else {
        let _ = writeln!(t, "checks         ok: {}", s.properties.join(", "));
    }
    t.push_str(&not_judged(s));
    t
}

/// One line per reason: `not judged     a, b (why)`.
fn not_judged(s: &RunSummary) -> String {
    let mut reasons: Vec<(&str, Vec<&str>)> = Vec::new();
    for n in &s.not_judged {
        match reasons.iter_mut().find(|(r, _)| *r == n.reason) {
            Some((_, names)) => names.push(&n.property),
            None => reasons.push((&n.reason, vec![&n.property])),
        }
    }
    let mut t = String::new();
    for (reason, names) in reasons {
        let _ = writeln!(t, "not judged     {} ({reason})", names.join(", "));
    }
    t
}

/// Per-node counters as CSV.
pub fn per_node_csv(nodes: &[Counters]) -> String {
    let mut s = String::from("node,sent,delivered,dropped,duplicated,bytes_sent,bytes_delivered\n");
    for (i, c) in nodes.iter().enumerate() {
        let _ = writeln!(
            s,
            "{i},{},{},{},{},{},{}",
            c.sent, c.delivered, c.dropped, c.duplicated, c.bytes_sent, c.bytes_delivered
        );
    }
    s
}

/// Writes a whole file, or explains in one line why it could not.
pub fn write_file(path: &Path, contents: &str) -> Result<(), UserError> {
    std::fs::write(path, contents).map_err(|e| UserError(format!("cannot write {}: {e}", path.display())))
}

/// The process's peak resident set size (Linux `VmHWM`), in MiB.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Draws a chart's legend, boxed on a translucent white, at `at`.
pub fn legend<'a, DB: plotters::prelude::DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut plotters::prelude::ChartContext<'a, DB, CT>,
    at: plotters::prelude::SeriesLabelPosition,
) -> Result<(), String> {
    use plotters::prelude::*;
    chart
        .configure_series_labels()
        .position(at)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}
