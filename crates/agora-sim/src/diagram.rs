//! Space-time diagrams: a recording of a run's events and its rendering as SVG.
//!
//! One horizontal line per node, time running left to right; an arrow per message labelled
//! with its type; a red cross where a message was lost; crashes, restarts and pauses marked on
//! the node's line; a dot per observation (hover for its text); a shaded band while a
//! partition is in force. Meant for runs of up to [`MAX_DIAGRAM_NODES`] nodes and
//! [`MAX_DIAGRAM_EVENTS`] events.
//!
//! The SVG carries what a page needs to put a cursor over it: the root's `data-left`,
//! `data-width` and `data-end-ns` map a time to an x coordinate, `data-top` and `data-bottom`
//! span the node lines, and every mark of an event has its time in `data-t` (ns).

use agora_core::{Lifecycle, NodeId, Time};
use std::collections::HashMap;
use std::fmt::Write as _;

/// The most nodes a diagram draws: beyond it the lines are too close to read.
pub const MAX_DIAGRAM_NODES: usize = 50;
/// The most events a diagram draws (and a run records for one); more make an SVG no browser
/// renders usefully.
pub const MAX_DIAGRAM_EVENTS: usize = 5_000;

/// One recorded event. Times are the simulator's global (virtual) time.
#[derive(Clone, Debug)]
pub enum Rec {
    /// A message left `from` for `to` (a duplicate the network made is a send of its own).
    Send {
        /// The message's id in this run, which its `Deliver` or `Drop` names.
        id: u64,
        /// The sender.
        from: NodeId,
        /// The destination.
        to: NodeId,
        /// The message type ([`agora_core::Message::kind`]), the arrow's label.
        kind: &'static str,
        /// When it was sent.
        at: Time,
    },
    /// The message `id` reached its destination.
    Deliver {
        /// The message's id, as its `Send` gave it.
        id: u64,
        /// When it arrived.
        at: Time,
    },
    /// The message `id` was lost (loss, partition, a crashed destination).
    Drop {
        /// The message's id, as its `Send` gave it.
        id: u64,
        /// When it was lost.
        at: Time,
    },
    /// A node crashed, restarted, paused, resumed or lost its storage.
    Life {
        /// The node.
        node: NodeId,
        /// When.
        at: Time,
        /// What happened to it.
        what: Lifecycle,
    },
    /// A node reported an observation.
    Observe {
        /// The node.
        node: NodeId,
        /// When.
        at: Time,
        /// The observation's `Debug` text, shown on hover.
        label: String,
    },
    /// A partition (symmetric or one-way) began, or healed.
    Cut {
        /// The partition's index in the run's faults (symmetric ones first, then one-way): its
        /// heal names the same.
        id: usize,
        /// When.
        at: Time,
        /// The partition in words: `partition 0..2 | 2..5`, `one-way 8 → 9..12`.
        label: String,
        /// It healed (else it began).
        healed: bool,
    },
}

impl Rec {
    /// When it happened.
    pub fn at(&self) -> Time {
        match self {
            Rec::Send { at, .. }
            | Rec::Deliver { at, .. }
            | Rec::Drop { at, .. }
            | Rec::Life { at, .. }
            | Rec::Observe { at, .. }
            | Rec::Cut { at, .. } => *at,
        }
    }
}

/// Records events up to a limit.
#[derive(Clone, Debug)]
pub struct Recorder {
    limit: usize,
    recs: Vec<Rec>,
    /// Events seen in all, recorded or not.
    seen: usize,
}

impl Recorder {
    /// A recorder that keeps the first `limit` events and counts the rest.
    pub fn new(limit: usize) -> Self {
        Recorder { limit, recs: Vec::new(), seen: 0 }
    }

    /// Records `rec` while fewer than the limit are recorded; counts it either way.
    pub fn push(&mut self, rec: Rec) {
        self.seen += 1;
        if self.recs.len() < self.limit {
            self.recs.push(rec);
        }
    }

    /// Every event of the run was recorded.
    pub fn complete(&self) -> bool {
        self.seen <= self.limit
    }

    /// Events seen in all, recorded or not.
    pub fn events_seen(&self) -> usize {
        self.seen
    }

    /// The events recorded, in the order they happened.
    pub fn records(&self) -> &[Rec] {
        &self.recs
    }
}

const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
    "#d62728",
];

/// `s` with the characters XML and HTML give a meaning to (`& < > "`) escaped.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Renders a recording of a run of `nodes` nodes as an SVG document.
pub fn render_svg(title: &str, nodes: usize, rec: &Recorder) -> String {
    let recs = rec.records();
    let end = recs.iter().map(Rec::at).max().unwrap_or(Time::ZERO).0.max(1) as f64;
    let l = Layout { left: 80.0, top: 60.0, width: 1200.0, row: 34.0, end, nodes };
    let mut s = String::new();
    header(&mut s, &l, title);
    cuts(&mut s, &l, recs);
    node_lines(&mut s, &l, recs);
    let kinds = messages(&mut s, &l, recs);
    marks(&mut s, &l, recs);
    axis_and_legend(&mut s, &l, &kinds);
    s.push_str("</svg>\n");
    s
}

/// Where things go: time runs left to right over `width`, one row per node.
struct Layout {
    left: f64,
    top: f64,
    width: f64,
    row: f64,
    /// The last recorded time in ns (at least 1): the right edge.
    end: f64,
    nodes: usize,
}

impl Layout {
    fn x(&self, t: Time) -> f64 {
        self.left + t.0 as f64 / self.end * self.width
    }

    fn y(&self, n: NodeId) -> f64 {
        self.top + self.row * n.0 as f64
    }

    /// The time axis, under the last node's line.
    fn axis_y(&self) -> f64 {
        self.top + self.row * self.nodes.max(1) as f64 - self.row / 2.0 + 14.0
    }
}

/// The document's opening tag, arrow marker, background and title.
fn header(s: &mut String, l: &Layout, title: &str) {
    let left = l.left;
    let height = l.top + l.row * l.nodes.max(1) as f64 + 90.0;
    let total_w = left + l.width + 60.0;
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{total_w}" height="{height}" viewBox="0 0 {total_w} {height}" font-family="sans-serif" font-size="11" data-left="{left}" data-width="{}" data-end-ns="{}" data-top="{}" data-bottom="{}">"#,
        l.width,
        l.end,
        l.top - 24.0,
        l.axis_y()
    );
    s.push_str(r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="context-stroke"/></marker></defs>"##);
    s.push_str("\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
    let _ = writeln!(s, r#"<text x="{left}" y="24" font-size="15" font-weight="bold">{}</text>"#, esc(title));
}

/// When each node was down (crashed) or paused: `(node, from, to, why)`, up to the end for a
/// node that never came back.
fn down_stretches(recs: &[Rec], end: f64) -> Vec<(NodeId, Time, Time, Lifecycle)> {
    let mut down_since: HashMap<u32, (Time, Lifecycle)> = HashMap::new();
    let mut stretches: Vec<(NodeId, Time, Time, Lifecycle)> = Vec::new();
    for r in recs {
        if let Rec::Life { node, at, what } = r {
            match what {
                Lifecycle::Crashed | Lifecycle::Paused => {
                    down_since.insert(node.0, (*at, *what));
                }
                Lifecycle::Restarted | Lifecycle::Resumed => {
                    if let Some((from, how)) = down_since.remove(&node.0) {
                        stretches.push((*node, from, *at, how));
                    }
                }
                Lifecycle::Wiped => {}
            }
        }
    }
    for (node, (from, how)) in down_since {
        stretches.push((NodeId(node), from, Time(end as u64), how));
    }
    stretches
}

/// One labelled line per node, with its down and paused stretches drawn over it.
fn node_lines(s: &mut String, l: &Layout, recs: &[Rec]) {
    let stretches = down_stretches(recs, l.end);
    let (left, width) = (l.left, l.width);
    for i in 0..l.nodes {
        let n = NodeId(i as u32);
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{}" text-anchor="end">node {i}</text><line x1="{left}" y1="{y}" x2="{}" y2="{y}" stroke="#333" stroke-width="1.5"/>"##,
            left - 10.0,
            l.y(n) + 4.0,
            left + width,
            y = l.y(n)
        );
    }
    for (n, a, b, how) in &stretches {
        let (color, dash) = if *how == Lifecycle::Crashed { ("#d62728", "4 3") } else { ("#f0ad4e", "") };
        let _ = writeln!(
            s,
            r##"<g data-t="{}"><line x1="{}" y1="{y}" x2="{}" y2="{y}" stroke="white" stroke-width="3"/><line x1="{}" y1="{y}" x2="{}" y2="{y}" stroke="{color}" stroke-width="2" stroke-dasharray="{dash}"/></g>"##,
            a.0,
            l.x(*a),
            l.x(*b),
            l.x(*a),
            l.x(*b),
            y = l.y(*n)
        );
    }
}

/// The recorded messages: each send by id, each message's fate (`true`: delivered, `false`:
/// lost) by id, and the message types in the order first sent (which picks their colours).
struct Traffic {
    sends: HashMap<u64, (NodeId, NodeId, &'static str, Time)>,
    fates: HashMap<u64, (Time, bool)>,
    kinds: Vec<&'static str>,
}

fn traffic(recs: &[Rec]) -> Traffic {
    let mut t = Traffic { sends: HashMap::new(), fates: HashMap::new(), kinds: Vec::new() };
    for r in recs {
        match r {
            Rec::Send { id, from, to, kind, at } => {
                t.sends.insert(*id, (*from, *to, kind, *at));
                if !t.kinds.contains(kind) {
                    t.kinds.push(kind);
                }
            }
            Rec::Deliver { id, at } => {
                t.fates.insert(*id, (*at, true));
            }
            Rec::Drop { id, at } => {
                t.fates.insert(*id, (*at, false));
            }
            _ => {}
        }
    }
    t
}

/// An arrow per message, in id order (labelled with its type when there are few); returns the
/// message types in colour order, for the legend.
fn messages(s: &mut String, l: &Layout, recs: &[Rec]) -> Vec<&'static str> {
    let t = traffic(recs);
    let label_all = t.sends.len() <= 150;
    let mut ids: Vec<_> = t.sends.keys().copied().collect();
    ids.sort_unstable();
    for id in ids {
        message(s, l, &t, id, label_all);
    }
    t.kinds
}

/// The arrow of message `id`: to its destination if delivered, ending in a red cross if lost,
/// dashed to the right edge if still in flight at the end.
fn message(s: &mut String, l: &Layout, t: &Traffic, id: u64, label_all: bool) {
    let (from, to, kind, sent) = t.sends[&id];
    let color = PALETTE[t.kinds.iter().position(|k| *k == kind).unwrap_or(0) % PALETTE.len()];
    let (x1, y1, y2full) = (l.x(sent), l.y(from), l.y(to));
    let (x2, y2, dropped, in_flight) = match t.fates.get(&id) {
        Some((at, true)) => (l.x(*at), y2full, false, false),
        Some((at, false)) if *at == sent => {
            // Lost on the way: a stub a third of the way towards the receiver.
            (x1 + 18.0, y1 + (y2full - y1) / 3.0, true, false)
        }
        Some((at, false)) => (l.x(*at), y2full, true, false),
        None => (l.left + l.width, y1 + (y2full - y1) / 2.0, false, true),
    };
    let dash = if in_flight { r#" stroke-dasharray="3 3""# } else { "" };
    let marker = if dropped { "" } else { r#" marker-end="url(#arrow)""# };
    let status = if dropped {
        "lost"
    } else if in_flight {
        "in flight at the end"
    } else {
        "delivered"
    };
    let _ = write!(
        s,
        r#"<g data-t="{}"><title>{kind} #{id}: node {from} → node {to}, sent {sent}, {status}</title><line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="{color}" stroke-width="1.2"{marker}{dash}/>"#,
        sent.0,
        kind = esc(kind)
    );
    if dropped {
        let _ = write!(
            s,
            r##"<path d="M{a:.1},{b:.1} l6,6 m0,-6 l-6,6" stroke="#d62728" stroke-width="2"/>"##,
            a = x2 - 3.0,
            b = y2 - 3.0
        );
    }
    if label_all {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" fill="{color}" font-size="9">{}</text>"#,
            (x1 + x2) / 2.0 + 2.0,
            (y1 + y2) / 2.0 - 2.0,
            esc(kind)
        );
    }
    s.push_str("</g>\n");
}

/// A shaded band over every node line while a partition is in force, labelled above them.
fn cuts(s: &mut String, l: &Layout, recs: &[Rec]) {
    let mut begun: HashMap<usize, (Time, &str)> = HashMap::new();
    let mut bands: Vec<(Time, Time, &str)> = Vec::new();
    for r in recs {
        if let Rec::Cut { id, at, label, healed } = r {
            if !*healed {
                begun.insert(*id, (*at, label.as_str()));
            } else if let Some((from, label)) = begun.remove(id) {
                bands.push((from, *at, label));
            }
        }
    }
    bands.extend(begun.into_values().map(|(from, label)| (from, Time(l.end as u64), label)));
    bands.sort_by(|a, b| (a.0, a.2).cmp(&(b.0, b.2)));
    let (top, bottom) = (l.top - l.row / 2.0, l.axis_y() - 14.0);
    for (i, (from, to, label)) in bands.iter().enumerate() {
        let (x1, x2) = (l.x(*from), l.x(*to));
        let _ = writeln!(
            s,
            r##"<g data-t="{}"><title>{} from {from} to {to}</title><rect x="{x1:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="#9467bd" fill-opacity="0.12"/><text x="{:.1}" y="{:.1}" fill="#5b3a8a" font-size="10">{}</text></g>"##,
            from.0,
            esc(label),
            (x2 - x1).max(1.0),
            bottom - top,
            x1 + 2.0,
            top - 2.0 - 11.0 * (i % 2) as f64,
            esc(label)
        );
    }
}

/// Lifecycle markers (crash, restart, pause, resume, disk lost) and observation dots.
fn marks(s: &mut String, l: &Layout, recs: &[Rec]) {
    for r in recs {
        match r {
            Rec::Life { node, at, what } => {
                let (sym, color) = match what {
                    Lifecycle::Crashed => ("✕ crash", "#d62728"),
                    Lifecycle::Restarted => ("▲ restart", "#2ca02c"),
                    Lifecycle::Paused => ("❚❚ pause", "#f0ad4e"),
                    Lifecycle::Resumed => ("▶ resume", "#f0ad4e"),
                    Lifecycle::Wiped => ("✕ disk lost", "#8c564b"),
                };
                let _ = writeln!(
                    s,
                    r#"<text x="{:.1}" y="{:.1}" fill="{color}" font-size="10" font-weight="bold" data-t="{}">{sym}</text>"#,
                    l.x(*at) - 4.0,
                    l.y(*node) - 6.0,
                    at.0
                );
            }
            Rec::Observe { node, at, label } => {
                let _ = writeln!(
                    s,
                    r##"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="#0b3d91" data-t="{}"><title>node {node} at {at}: {}</title></circle>"##,
                    l.x(*at),
                    l.y(*node),
                    at.0,
                    esc(label)
                );
            }
            _ => {}
        }
    }
}

/// The time axis (nine ticks in ms) and the legend: one arrow per message type, then the key.
fn axis_and_legend(s: &mut String, l: &Layout, kinds: &[&'static str]) {
    let (left, width, end) = (l.left, l.width, l.end);
    let axis_y = l.axis_y();
    let _ = writeln!(
        s,
        r##"<line x1="{left}" y1="{axis_y}" x2="{}" y2="{axis_y}" stroke="#999"/>"##,
        left + width
    );
    for i in 0..=8 {
        let t = Time((end * i as f64 / 8.0) as u64);
        let _ = writeln!(
            s,
            r##"<line x1="{xx:.1}" y1="{axis_y}" x2="{xx:.1}" y2="{}" stroke="#999"/><text x="{xx:.1}" y="{}" text-anchor="middle" fill="#555">{:.2} ms</text>"##,
            axis_y + 5.0,
            axis_y + 17.0,
            t.as_millis_f64(),
            xx = l.x(t)
        );
    }
    let mut lx = left;
    let ly = axis_y + 40.0;
    for (i, k) in kinds.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="2" marker-end="url(#arrow)"/><text x="{}" y="{}">{}</text>"#,
            lx + 24.0,
            lx + 30.0,
            ly + 4.0,
            esc(k)
        );
        lx += 60.0 + 7.0 * k.len() as f64;
    }
    let _ = writeln!(
        s,
        r##"<text x="{lx}" y="{}" fill="#555">red ✕: message lost · dashed red: node down · orange: paused · purple band: partition · dots: observations (hover)</text>"##,
        ly + 4.0
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_arrows_drops_and_crashes() {
        let mut r = Recorder::new(100);
        r.push(Rec::Send { id: 1, from: NodeId(0), to: NodeId(1), kind: "PING", at: Time(0) });
        r.push(Rec::Deliver { id: 1, at: Time(1_000_000) });
        r.push(Rec::Send { id: 2, from: NodeId(1), to: NodeId(0), kind: "PONG", at: Time(1_000_000) });
        r.push(Rec::Drop { id: 2, at: Time(1_000_000) });
        r.push(Rec::Life { node: NodeId(1), at: Time(2_000_000), what: Lifecycle::Crashed });
        r.push(Rec::Observe { node: NodeId(0), at: Time(500_000), label: "a<b".into() });
        r.push(Rec::Cut { id: 0, at: Time(600_000), label: "partition 0 | 1".into(), healed: false });
        r.push(Rec::Cut { id: 0, at: Time(700_000), label: "partition 0 | 1".into(), healed: true });
        let svg = render_svg("t", 2, &r);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("PING #1") && svg.contains("PONG #2"));
        assert!(svg.contains("lost") && svg.contains("crash") && svg.contains("a&lt;b"));
        assert!(svg.contains(r#"data-t="600000"><title>partition 0 | 1 from 0.600 ms to 0.700 ms"#), "{svg}");
        assert!(
            svg.contains(r#"data-end-ns="2000000""#) && svg.contains(r#"<g data-t="1000000"><title>PONG"#)
        );
        assert!(r.complete());
        let mut small = Recorder::new(1);
        small.push(Rec::Deliver { id: 1, at: Time(0) });
        small.push(Rec::Deliver { id: 2, at: Time(0) });
        assert!(!small.complete());
    }
}
