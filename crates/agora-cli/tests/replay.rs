//! `agora sim --html`: the replay page is written, loads nothing from anywhere else, and holds
//! the run's events — as many messages sent, delivered and lost as the run's summary counts —
//! and its summary; a run too big for it is refused.

mod common;

use serde_json::Value;
use std::process::{Command, Output};

fn agora(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agora")).args(args).output().expect("the agora binary runs")
}

/// The run's data the page carries: the JSON of its `#run-data` script.
fn page_data(html: &str) -> Value {
    let open = r#"<script id="run-data" type="application/json">"#;
    let start = html.find(open).expect("the page carries the run's data") + open.len();
    let len = html[start..].find("</script>").expect("the data ends");
    serde_json::from_str(&html[start..start + len]).expect("the data is JSON")
}

/// The events of `kind` the page carries.
fn count(data: &Value, kind: &str) -> u64 {
    data["events"].as_array().unwrap().iter().filter(|e| e[0] == kind).count() as u64
}

#[test]
fn the_replay_page_is_self_contained_and_holds_the_runs_events() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("bully.html");
    let out = agora(&[
        "sim",
        "bully",
        "--nodes",
        "5",
        "--crash",
        "4@40",
        "--partition",
        "0..2|2..5@100..160",
        "--loss",
        "0.05",
        "--max-time-ms",
        "300",
        "--json",
        "--html",
        page.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).expect("one JSON summary");
    let html = std::fs::read_to_string(&page).expect("the page is written");

    // Self-contained: nothing to fetch. The one `http` is the SVG's namespace, a name.
    assert!(html.starts_with("<!doctype html>") && html.trim_end().ends_with("</html>"));
    for outside in ["src=", "href=", "<link", "@import", "url(http", "fetch(", "XMLHttpRequest"] {
        assert!(!html.contains(outside), "the page refers outside itself: {outside}");
    }
    assert_eq!(html.matches("http").count(), html.matches("http://www.w3.org/2000/svg").count());
    assert!(html.contains("<svg") && html.contains("<style>") && html.contains("<script>"));

    // The run's events, as many as its summary counts.
    let data = page_data(&html);
    assert!(summary["messages_sent"].as_u64().unwrap() > 20, "{summary}");
    assert!(summary["messages_dropped"].as_u64().unwrap() > 0, "loss and a partition lose some: {summary}");
    assert_eq!(count(&data, "send"), summary["messages_sent"].as_u64().unwrap());
    assert_eq!(count(&data, "deliver"), summary["messages_delivered"].as_u64().unwrap());
    assert_eq!(count(&data, "drop"), summary["messages_dropped"].as_u64().unwrap());
    let lives: Vec<&Value> = data["events"].as_array().unwrap().iter().filter(|e| e[0] == "life").collect();
    assert_eq!(lives.len(), 1, "{lives:?}");
    assert_eq!((&lives[0][2], &lives[0][3]), (&Value::from(4), &Value::from("crashed")));
    let cuts: Vec<&Value> = data["events"].as_array().unwrap().iter().filter(|e| e[0] == "cut").collect();
    assert_eq!(cuts.len(), 2, "the partition begins and heals: {cuts:?}");
    assert_eq!((&cuts[0][1], &cuts[1][1]), (&Value::from(100_000_000), &Value::from(160_000_000)));
    assert_eq!(cuts[0][3], "partition 0..2 | 2..5");
    assert!(count(&data, "observe") > 0);
    // Every message is drawn too: one arrow per send, titled `KIND #id: node a → node b, ...`.
    assert_eq!(html.matches(" → node ").count() as u64, summary["messages_sent"].as_u64().unwrap());
    assert_eq!(data["summary"]["trace_digest"], summary["trace_digest"]);
    assert_eq!(data["summary"]["properties"], summary["properties"]);
    assert_eq!(
        data["reproduce"],
        "agora sim bully --nodes 5 --crash 4@40 --partition '0..2|2..5@100..160' --loss 0.05 --max-time-ms 300 --seed 1"
    );
}

#[test]
fn a_run_too_big_for_a_replay_page_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("big.html");
    let out = agora(&["sim", "all-to-all", "--nodes", "50", "--html", page.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("a diagram shows at most 5000") && !stderr.contains("panicked"), "{stderr}");
    assert!(!page.exists(), "nothing is written for a run too big");
    common::assert_mistake(
        &["sim", "flood", "--nodes", "60", "--html", "x.html"],
        "--html draws at most 50 nodes",
    );
    common::assert_mistake(
        &["sim", "bully", "--schedule", "/nonexistent.json", "--html", "x.html"],
        "--html replays a seeded run",
    );
}
