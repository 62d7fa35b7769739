//! `agora lincheck` end to end: exit codes of a linearizable history, a violation and an
//! undecided one; `--json`; the timeline and verdict of `--out`; each format read; malformed
//! files refused in one line with exit code 2.

mod common;

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn agora(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agora")).args(args).output().expect("the agora binary runs")
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// A register: write 1, write 2, then a read of 1 (stale) or 2.
fn register_edn(read: i64) -> String {
    format!(
        "{{:process 0, :type :invoke, :f :write, :value 1}}\n\
         {{:process 0, :type :ok, :f :write, :value 1}}\n\
         {{:process 1, :type :invoke, :f :write, :value 2}}\n\
         {{:process 1, :type :ok, :f :write, :value 2}}\n\
         {{:process 2, :type :invoke, :f :read, :value nil}}\n\
         {{:process 2, :type :ok, :f :read, :value {read}}}\n"
    )
}

#[test]
fn exit_codes_say_linearizable_or_not() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.edn", &register_edn(2));
    let out = agora(&["lincheck", &good]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("verdict        linearizable"), "{text}");

    let bad = write(dir.path(), "bad.edn", &register_edn(1));
    let out = agora(&["lincheck", &bad]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("NOT linearizable") && text.contains("r 1"), "{text}");
}

#[test]
fn json_is_one_object_naming_the_key_and_operations() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "bad.edn", &register_edn(1));
    let out = agora(&["lincheck", &bad, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["verdict"], "not-linearizable");
    assert_eq!(v["linearizable"], false);
    assert_eq!(v["format"], "edn");
    assert_eq!(v["model"], "cas-register");
    let f = &v["failures"][0];
    assert_eq!(f["key"], Value::Null);
    assert_eq!(f["culprit"]["process"], 2);
    assert_eq!(f["culprit"]["out"], 1);
    assert_eq!(f["state"], 2);
    assert_eq!(f["linearized"], 2);

    let good = write(dir.path(), "good.edn", &register_edn(2));
    let v = json(&agora(&["lincheck", &good, "--json"]));
    assert_eq!((v["verdict"].as_str(), v["operations"].as_u64()), (Some("linearizable"), Some(3)));
}

#[test]
fn out_writes_the_timeline_and_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "bad.edn", &register_edn(1));
    let out_dir = dir.path().join("out");
    let out = agora(&["lincheck", &bad, "--out", out_dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let svg = std::fs::read_to_string(out_dir.join("lincheck.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("#d62728") && svg.contains(">process 2<"));
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("lincheck.json")).unwrap()).unwrap();
    assert_eq!(v["verdict"], "not-linearizable");
}

#[test]
fn every_format_is_read_and_detected() {
    let dir = tempfile::tempdir().unwrap();
    let agora_lines = r#"{"process":1,"type":"invoke","f":"put","key":"k","value":"v","time_ns":10}
{"process":2,"type":"invoke","f":"get","key":"k","value":null,"time_ns":11}
{"process":1,"type":"ok","f":"put","key":"k","value":"v","time_ns":20}
{"process":2,"type":"ok","f":"get","key":"k","value":"v","time_ns":21}
{"process":3,"type":"invoke","f":"cas","key":"k","value":["v","w"],"time_ns":30}
{"process":3,"type":"info","f":"cas","key":"k","value":["v","w"],"time_ns":40}
{"process":2,"type":"invoke","f":"get","key":"k","value":null,"time_ns":50}
{"process":2,"type":"ok","f":"get","key":"k","value":"w","time_ns":60}
"#;
    let log = "INFO  jepsen.util - 0\t:invoke\t:write\t3\n\
               INFO  jepsen.util - 0\t:ok\t:write\t3\n\
               INFO  jepsen.util - :nemesis\t:info\t:start\tnil\n\
               INFO  jepsen.util - 1\t:invoke\t:read\tnil\n\
               INFO  jepsen.util - 1\t:ok\t:read\t3\n";
    for (name, text, format, model) in [
        ("h.jsonl", agora_lines, "agora", "kv"),
        ("h.log", log, "jepsen-log", "cas-register"),
        ("h.edn", &register_edn(2) as &str, "edn", "cas-register"),
    ] {
        let path = write(dir.path(), name, text);
        let out = agora(&["lincheck", &path, "--json"]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let v = json(&out);
        assert_eq!((v["format"].as_str(), v["model"].as_str()), (Some(format), Some(model)), "{name}");
        let out = agora(&["lincheck", &path, "--format", format, "--model", model]);
        assert_eq!(out.status.code(), Some(0), "{name}");
    }
}

#[test]
fn a_search_out_of_steps_is_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for p in 0..8 {
        text.push_str(&format!("{p}\t:invoke\t:write\t{p}\n{p}\t:info\t:write\t{p}\n"));
    }
    for v in [3, 5, 3] {
        text.push_str(&format!("9\t:invoke\t:read\tnil\n9\t:ok\t:read\t{v}\n"));
    }
    let path = write(dir.path(), "h.txt", &text);
    let out = agora(&["lincheck", &path, "--max-steps", "2", "--json"]);
    assert_eq!(out.status.code(), Some(4));
    let v = json(&out);
    assert_eq!((v["verdict"].as_str(), &v["linearizable"]), (Some("unknown"), &Value::Null));
    assert_eq!(agora(&["lincheck", &path]).status.code(), Some(1));
}

#[test]
fn malformed_files_are_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("unclosed.edn", "[{:process 0, :type :invoke, :f :read, :value nil}\n", "unclosed `[`"),
        ("notype.edn", "{:process 0, :f :read}\n", "line 1: an operation without :type"),
        ("bad.jsonl", "{\"process\":1,\"type\":\"invoke\",\"f\":\"get\"}\n{\"process\":1,\n", "line 2:"),
        ("orphan.edn", "{:process 0, :type :ok, :f :read, :value 1}\n", "did not invoke"),
        ("lock.edn", "{:process 0, :type :invoke, :f :acquire, :value nil}\n", "unknown operation `acquire`"),
        ("empty.edn", "", "empty"),
        ("prose.txt", "hello world\n", "--format"),
    ];
    for (name, text, expected) in cases {
        let path = write(dir.path(), name, text);
        common::assert_mistake(&["lincheck", &path], expected);
    }
    let append = write(dir.path(), "append.edn", "{:process 0, :type :invoke, :f :append, :value 1}\n");
    common::assert_mistake(&["lincheck", &append, "--model", "cas-register"], "--model kv");
    common::assert_mistake(&["lincheck", "/nonexistent/history.edn"], "cannot read history");
    common::assert_mistake(&["lincheck", dir.path().to_str().unwrap()], "not a regular file");
    common::assert_mistake(&["lincheck", &append, "--format", "xml"], "xml");
}
