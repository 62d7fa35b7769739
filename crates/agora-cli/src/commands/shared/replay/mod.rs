//! `agora sim --html`: one self-contained page that replays a simulated run offline — its
//! space-time diagram with a cursor, a time slider, each node's state at the chosen time (up,
//! crashed or paused; messages sent, received and lost; its latest observations) and the
//! checker's verdicts with the command that replays the run.
//!
//! The page is the SVG of [`render_svg`], the run's recorded events as JSON, and the style and
//! script of this folder, all inline: it loads nothing, so it works from a file, offline. The
//! script knows nothing of any protocol: it replays the recorded events (sends, deliveries,
//! losses, crashes, partitions, observations as their `Debug` text) up to the chosen one.

use agora_core::{Lifecycle, RunSummary};
use agora_sim::diagram::{esc, render_svg, Rec, Recorder};
use serde_json::{json, Value};

const PAGE: &str = include_str!("page.html");
const STYLE: &str = include_str!("page.css");
const SCRIPT: &str = include_str!("page.js");

/// The most characters of an observation's text the page keeps (a replica's restored log can
/// be long); a longer one ends in `…`.
const MAX_LABEL_CHARS: usize = 300;

/// The page replaying the run recorded in `rec` (`nodes` nodes), titled `title`, with the
/// run's summary and the command that replays it.
pub fn render(title: &str, nodes: usize, rec: &Recorder, summary: &RunSummary, reproduce: &str) -> String {
    let data = json!({
        "nodes": nodes,
        "events": rec.records().iter().map(event).collect::<Vec<_>>(),
        "summary": summary,
        "reproduce": reproduce,
    });
    let svg = render_svg(title, nodes, rec);
    fill(
        PAGE,
        &[
            ("title", &esc(title)),
            ("style", STYLE),
            ("diagram", &svg),
            ("data", &script_safe(&data.to_string())),
            ("script", SCRIPT),
        ],
    )
}

/// One recorded event as a JSON array: its type, its time in ns, then what it concerns.
fn event(r: &Rec) -> Value {
    let t = r.at().0;
    match r {
        Rec::Send { id, from, to, kind, .. } => json!(["send", t, id, from.0, to.0, kind]),
        Rec::Deliver { id, .. } => json!(["deliver", t, id]),
        Rec::Drop { id, .. } => json!(["drop", t, id]),
        Rec::Life { node, what, .. } => {
            let what = match what {
                Lifecycle::Crashed => "crashed",
                Lifecycle::Restarted => "restarted",
                Lifecycle::Paused => "paused",
                Lifecycle::Resumed => "resumed",
                Lifecycle::Wiped => "wiped",
            };
            json!(["life", t, node.0, what])
        }
        Rec::Observe { node, label, .. } => json!(["observe", t, node.0, shorten(label)]),
        Rec::Cut { id, label, healed, .. } => json!(["cut", t, id, label, healed]),
    }
}

fn shorten(label: &str) -> String {
    match label.char_indices().nth(MAX_LABEL_CHARS) {
        Some((i, _)) => format!("{}…", &label[..i]),
        None => label.to_string(),
    }
}

/// JSON to sit inside `<script>`: `<`, `>` and `&` (found only in its strings) as `\u` escapes,
/// so no text of the run can close the element.
fn script_safe(json: &str) -> String {
    json.replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026")
}

/// `template` with each `{{name}}` replaced by its value, in one pass: a value is never read
/// for markers of its own.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + values.iter().map(|(_, v)| v.len()).sum::<usize>());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else { break };
        let name = &rest[start + 2..start + len];
        let value = values.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        out.push_str(&rest[..start]);
        out.push_str(value.expect("every marker of the page has a value"));
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_core::{NodeId, Time};

    #[test]
    fn the_page_holds_the_events_inline_and_nothing_escapes_its_script() {
        let mut r = Recorder::new(10);
        r.push(Rec::Send { id: 1, from: NodeId(0), to: NodeId(1), kind: "PING", at: Time(0) });
        r.push(Rec::Deliver { id: 1, at: Time(1_000) });
        r.push(Rec::Observe { node: NodeId(1), at: Time(1_000), label: "</script><b>".into() });
        let summary = RunSummary::from_metrics(
            "p",
            "sim",
            2,
            1,
            "quiescent",
            &agora_core::Metrics::new(),
            &[],
            0.0,
            0.0,
            0,
        );
        let page = render("a <title>", 2, &r, &summary, "agora sim p --seed 1");
        assert!(page.starts_with("<!doctype html>"));
        assert!(page.contains("<title>agora: a &lt;title&gt;</title>"));
        assert_eq!(page.matches("</script>").count(), 2, "the data and the script, nothing else");
        assert!(page.contains(r#"["send",0,1,0,1,"PING"]"#) && page.contains(r#"\u003c/script\u003e"#));
        assert!(!page.contains("{{"), "every marker filled");
    }

    #[test]
    fn long_observations_are_shortened() {
        assert_eq!(shorten("abc"), "abc");
        let long = "é".repeat(MAX_LABEL_CHARS + 5);
        assert_eq!(shorten(&long).chars().count(), MAX_LABEL_CHARS + 1);
    }
}
