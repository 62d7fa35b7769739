//! The timeline of a violation, as SVG: one lane per process, each operation a bar from its
//! invocation to its completion (an ambiguous one runs to the right edge), the operation that
//! could not be linearized in red and those concurrent with it that could not be placed either
//! in pink, the end of the longest linearizable prefix in green with its order.
//!
//! The horizontal axis is the order of events, not time: every distinct invocation or
//! completion drawn gets its own column, so that overlaps read plainly however the times were.

use crate::history::{History, Op};
use crate::verdict::Failure;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

/// The most operations drawn: the culprit's neighbourhood, not the whole history.
pub const MAX_DRAWN: usize = 300;
/// Prefix operations drawn before the culprit, for context.
const CONTEXT: usize = 12;

const LANE_H: f64 = 30.0;
const BAR_H: f64 = 18.0;
const LEFT: f64 = 100.0;
const TOP: f64 = 56.0;

/// The SVG timeline of `failure`, a key of `history` that is not linearizable.
pub fn timeline(history: &History, failure: &Failure) -> String {
    let ops = &history.ops;
    let stuck: BTreeSet<usize> = failure.stuck.iter().copied().collect();
    let order: HashMap<usize, usize> =
        failure.prefix.iter().enumerate().map(|(i, &id)| (id, i + 1)).collect();
    let culprit = failure.culprit.id;

    // The window: from the earliest of the stuck ops and the prefix's last few, to the last
    // completion among the stuck ones.
    let context = &failure.prefix[failure.prefix.len().saturating_sub(CONTEXT)..];
    let picked = stuck.iter().chain(context.iter());
    let lo = picked.clone().map(|&id| ops[id].call).min().unwrap_or(0);
    let hi =
        stuck.iter().filter_map(|&id| ops[id].ret).max().unwrap_or(ops[culprit].call).max(ops[culprit].call);
    let mut drawn: Vec<&Op> = failure
        .key_ops
        .iter()
        .map(|&id| &ops[id])
        .filter(|o| o.call <= hi && o.ret.is_none_or(|r| r >= lo))
        .collect();
    if drawn.len() > MAX_DRAWN {
        // Keep the stuck ones and those nearest the culprit.
        drawn.sort_by_key(|o| (!stuck.contains(&o.id), o.call.abs_diff(ops[culprit].call)));
        drawn.truncate(MAX_DRAWN);
        drawn.sort_by_key(|o| o.call);
    }

    // Columns: every distinct event position drawn, then one for "open to the end".
    let mut columns: BTreeSet<usize> = BTreeSet::new();
    for o in &drawn {
        columns.insert(o.call);
        if let Some(r) = o.ret {
            columns.insert(r);
        }
    }
    let col: HashMap<usize, usize> = columns.iter().enumerate().map(|(i, &p)| (p, i)).collect();
    let ncols = columns.len() + 1;
    let step = (1100.0 / ncols as f64).clamp(8.0, 48.0);
    let x = |c: usize| LEFT + c as f64 * step + step / 2.0;
    let lanes: BTreeMap<i64, usize> = {
        let procs: BTreeSet<i64> = drawn.iter().map(|o| o.process).collect();
        procs.into_iter().enumerate().map(|(i, p)| (p, i)).collect()
    };
    let width = LEFT + ncols as f64 * step + 40.0;
    let height = TOP + lanes.len() as f64 * LANE_H + 70.0;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" font-family="monospace" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let key = failure.key.as_ref().map_or("the register".to_string(), |k| format!("key {k}"));
    let title = format!(
        "{key}: not linearizable. {} of {} operations linearized, then the value is {}; {} (process {}, line {}) cannot be placed",
        failure.linearized,
        failure.operations,
        failure.state,
        failure.culprit.label(),
        failure.culprit.process,
        failure.culprit.call_line
    );
    let _ = writeln!(s, r#"<text x="10" y="20" font-size="13">{}</text>"#, esc(&title));
    let _ = writeln!(
        s,
        r##"<text x="10" y="38" fill="#555">operations near it, in event order (columns are events, not time); hover a bar for details</text>"##
    );
    for (p, lane) in &lanes {
        let y = TOP + *lane as f64 * LANE_H;
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#eee"/><text x="10" y="{:.1}">process {p}</text>"##,
            y + LANE_H / 2.0,
            width - 20.0,
            y + LANE_H / 2.0,
            y + LANE_H / 2.0 + 4.0
        );
    }
    for o in &drawn {
        let y = TOP + lanes[&o.process] as f64 * LANE_H + (LANE_H - BAR_H) / 2.0;
        let x0 = x(col[&o.call]) - step * 0.4;
        let x1 = o.ret.map_or(x(ncols - 1) + step * 0.4, |r| x(col[&r]) + step * 0.4);
        let (fill, stroke) = if o.id == culprit {
            ("#d62728", "#7f0000")
        } else if stuck.contains(&o.id) {
            ("#f4a6a6", "#d62728")
        } else if order.contains_key(&o.id) {
            ("#a6d8a6", "#2c7a2c")
        } else {
            ("#dddddd", "#999999")
        };
        let dash = if o.ret.is_none() { r#" stroke-dasharray="4 2""# } else { "" };
        let placed =
            order.get(&o.id).map_or("not in the prefix".to_string(), |n| format!("#{n} in the prefix"));
        let tip = format!(
            "process {} {} ({}), lines {}..{}; {placed}",
            o.process,
            o.label(),
            if o.ret.is_some() { "ok" } else { "ambiguous" },
            o.call_line,
            o.ret_line.map_or("never completed".to_string(), |l| l.to_string())
        );
        let _ = writeln!(
            s,
            r#"<g><title>{}</title><rect x="{x0:.1}" y="{y:.1}" width="{:.1}" height="{BAR_H}" rx="3" fill="{fill}" stroke="{stroke}"{dash}/>"#,
            esc(&tip),
            (x1 - x0).max(2.0)
        );
        let mut label = o.label();
        if let Some(n) = order.get(&o.id) {
            label = format!("{label} #{n}");
        }
        let _ = writeln!(s, r#"<text x="{:.1}" y="{:.1}">{}</text></g>"#, x0 + 3.0, y + 13.0, esc(&label));
    }
    let ly = height - 30.0;
    let mut lx = 10.0;
    for (fill, what) in [
        ("#d62728", "cannot be linearized"),
        ("#f4a6a6", "concurrent, not placed either"),
        ("#a6d8a6", "in the longest linearizable prefix (#order)"),
        ("#dddddd", "other"),
    ] {
        let _ = writeln!(
            s,
            r#"<rect x="{lx:.1}" y="{:.1}" width="14" height="12" fill="{fill}"/><text x="{:.1}" y="{ly:.1}">{what}</text>"#,
            ly - 10.0,
            lx + 20.0
        );
        lx += 40.0 + 7.0 * what.chars().count() as f64;
    }
    let _ = writeln!(
        s,
        r##"<text x="10" y="{:.1}" fill="#555">dashed: ambiguous (:info or never completed), open to the end</text>"##,
        ly + 18.0
    );
    s.push_str("</svg>\n");
    s
}

/// Escapes text for XML.
fn esc(t: &str) -> String {
    t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
