//! Campaigns cut into shards (`agora check --shard I/N --findings`) and joined again (`agora
//! check merge`): N shards find exactly what one run finds, and merge refuses what is not
//! one whole campaign.

mod common;

use common::assert_mistake;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

/// 3PC under a partition: most seeds fail, the others leave properties not judged.
const CAMPAIGN: &[&str] = &[
    "check",
    "3pc",
    "--nodes",
    "4",
    "--seeds",
    "0..60",
    "--partition",
    "0..2|2..4@2.5..300",
    "--latency",
    "uniform:0.5,1.5",
];

fn agora(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(args)
        .env_remove("AGORA_SHARD")
        .output()
        .expect("the agora binary runs")
}

/// The campaign with `extra` flags, as one JSON object, and its exit code.
fn campaign(extra: &[&str]) -> (Value, i32) {
    let args: Vec<&str> = CAMPAIGN.iter().chain(extra).copied().collect();
    let out = agora(&args);
    let stdout = String::from_utf8(out.stdout).unwrap();
    (
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}")),
        out.status.code().unwrap(),
    )
}

/// The seed lines of a findings file, parsed.
fn seed_lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.first().unwrap()["line"], "campaign");
    assert_eq!(lines.last().unwrap()["line"], "totals");
    lines[1..lines.len() - 1].to_vec()
}

fn seeds_of(failures: &Value) -> BTreeSet<u64> {
    failures.as_array().unwrap().iter().map(|f| f["seed"].as_u64().unwrap()).collect()
}

/// The shards' findings in `dir` (one finished run of the 3-shard campaign).
fn shard_files(dir: &Path) -> Vec<String> {
    (0..3).map(|i| dir.join(format!("shard-{i}-of-3.jsonl")).display().to_string()).collect()
}

/// Runs the 3 shards of the campaign into `dir`; returns each shard's JSON report.
fn run_shards(dir: &Path) -> Vec<Value> {
    let dir = dir.to_str().unwrap();
    (0..3)
        .map(|i| {
            let shard = format!("{i}/3");
            let (v, code) = campaign(&["--shard", &shard, "--findings", dir, "--json"]);
            assert_eq!(code, i32::from(v["failed"].as_u64().unwrap() > 0), "{v}");
            assert_eq!(v["shard"], serde_json::json!({"index": i, "count": 3}));
            v
        })
        .collect()
}

#[test]
fn three_shards_find_the_failing_seeds_one_run_finds_and_merge_prints_its_report() {
    let dir = tempfile::tempdir().unwrap();
    let whole_file = dir.path().join("whole.jsonl");
    let (whole, code) = campaign(&["--json", "--findings", whole_file.to_str().unwrap()]);
    assert_eq!(code, 1, "{whole}");
    assert_eq!(whole["runs"], 60);
    let failing = seeds_of(&whole["failures"]);
    assert!(failing.len() > 5 && failing.len() < 60, "a campaign with both kinds of seeds: {failing:?}");
    assert!(whole["not_judged"]["runs"].as_u64().unwrap() > 0);

    let shards = run_shards(dir.path());
    // The union of the shards' failing seeds is the single run's, each with the same replay.
    let mut union = BTreeSet::new();
    let mut reproduce = Vec::new();
    for s in &shards {
        union.extend(seeds_of(&s["failures"]));
        reproduce.extend(s["failures"].as_array().unwrap().iter().map(|f| f["reproduce"].clone()));
    }
    assert_eq!(union, failing);
    let mut single: Vec<Value> =
        whole["failures"].as_array().unwrap().iter().map(|f| f["reproduce"].clone()).collect();
    single.sort_by_key(|r| r.to_string());
    reproduce.sort_by_key(|r| r.to_string());
    assert_eq!(reproduce, single);
    for r in &reproduce {
        assert!(!r.as_str().unwrap().contains("--shard"), "{r}");
    }

    // The shards' seed lines are disjoint, cover the range, and say what the single run's say.
    let mut by_seed = std::collections::BTreeMap::new();
    for (i, path) in shard_files(dir.path()).iter().enumerate() {
        for line in seed_lines(Path::new(path)) {
            let seed = line["seed"].as_u64().unwrap();
            assert_eq!(seed % 3, i as u64, "seed {seed} in shard {i}");
            assert!(by_seed.insert(seed, line).is_none(), "seed {seed} twice");
        }
    }
    assert_eq!(by_seed.keys().copied().collect::<Vec<_>>(), (0..60).collect::<Vec<_>>());
    for line in seed_lines(&whole_file) {
        assert_eq!(by_seed[&line["seed"].as_u64().unwrap()], line);
    }

    // Merged, the shards print the single run's report.
    let files = shard_files(dir.path());
    let mut args = vec!["check", "merge", "--json"];
    args.extend(files.iter().rev().map(String::as_str));
    let out = agora(&args);
    assert_eq!(out.status.code(), Some(1));
    let merged: Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in ["protocol", "seeds", "runs", "failed", "failures", "event_limited", "not_judged"] {
        assert_eq!(merged[key], whole[key], "{key}");
    }
    assert_eq!(merged["shards"]["count"], 3);
    assert_eq!(merged["shards"]["seeds_not_run"], 0);

    // As text: the failing seeds sorted, each with its replay, then the totals.
    let mut args = vec!["check", "merge"];
    args.extend(files.iter().map(String::as_str));
    let text = String::from_utf8(agora(&args).stdout).unwrap();
    let seeds: Vec<u64> =
        text.lines().filter_map(|l| l.strip_prefix("seed ")?.split(':').next()?.parse().ok()).collect();
    assert_eq!(seeds, failing.iter().copied().collect::<Vec<_>>());
    assert_eq!(text.matches("    reproduce: agora sim 3pc").count(), failing.len());
    assert!(text.contains("checked 60 seeds of 3pc in 3 of 3 shard(s)"), "{text}");
    assert!(text.contains(&format!(": {} failed", failing.len())), "{text}");
}

#[test]
fn merge_refuses_what_is_not_one_whole_campaign() {
    let dir = tempfile::tempdir().unwrap();
    run_shards(dir.path());
    let files = shard_files(dir.path());
    let (s0, s1, s2) = (files[0].as_str(), files[1].as_str(), files[2].as_str());
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name).display().to_string();
        std::fs::write(&path, text).unwrap();
        path
    };
    let shard2 = std::fs::read_to_string(s2).unwrap();
    let lines: Vec<&str> = shard2.lines().collect();

    // A shard of another campaign: other faults.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let mut args: Vec<&str> = CAMPAIGN.to_vec();
    args[7] = "0..1|1..4@2.5..300";
    args.extend(["--shard", "2/3", "--findings", other.to_str().unwrap(), "--json"]);
    agora(&args);
    let other2 = other.join("shard-2-of-3.jsonl").display().to_string();
    assert_mistake(&["check", "merge", s0, s1, &other2], "they differ in faults");
    // Another shard count; the same shard twice.
    let whole = dir.path().join("whole.jsonl").display().to_string();
    agora(&[CAMPAIGN, &["--findings", &whole, "--json"]].concat());
    assert_mistake(&["check", "merge", s0, &whole], "one of 3 shards");
    assert_mistake(&["check", "merge", s0, s1, s2, s1], "is in both");

    // A missing shard, an unfinished one, a line cut short: refused, or merged with --partial.
    assert_mistake(
        &["check", "merge", s0, s1],
        "20 of the 60 seeds of 0..60 were not run: 1 shard(s) missing (2/3)",
    );
    let unfinished = write("unfinished.jsonl", &(lines[..6].join("\n") + "\n"));
    assert_mistake(
        &["check", "merge", s0, s1, &unfinished],
        "without its totals line: shard 2/3 did not finish",
    );
    let cut = write("cut.jsonl", &(lines[..6].join("\n") + "\n" + &lines[6][..20]));
    assert_mistake(&["check", "merge", s0, s1, &cut], "line 7: cut short");
    let out = agora(&["check", "merge", "--partial", "--json", s0, s1, &cut]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["runs"], 40 + 5);
    assert_eq!(v["shards"]["seeds_not_run"], 15);
    assert_eq!(out.status.code(), Some(i32::from(v["failed"].as_u64().unwrap() > 0)));

    // Damaged lines: not JSON, a seed of another shard, a seed twice, totals that disagree.
    let with = |name: &str, at: usize, line: &str| {
        let mut l = lines.clone();
        l[at] = line;
        write(name, &(l.join("\n") + "\n"))
    };
    let garbage = with("garbage.jsonl", 3, "{\"line\":\"seed\"");
    assert_mistake(&["check", "merge", s0, s1, &garbage], "garbage.jsonl line 4: not a findings line");
    let foreign = lines[3].replacen(r#""seed":"#, r#""seed":1"#, 1);
    // Seed S of shard 2/3 becomes 1S (10+S or 100+S), which leaves 0 divided by 3.
    let moved = with("moved.jsonl", 3, &foreign);
    assert_mistake(&["check", "merge", s0, s1, &moved], "line 4: seed 1");
    assert_mistake(&["check", "merge", s0, s1, &moved], "is not one of shard 2/3 of 0..60");
    let twice = with("twice.jsonl", 3, lines[2]);
    assert_mistake(&["check", "merge", s0, s1, &twice], "a second time");
    let totals = lines.last().unwrap().replacen(r#""runs":20"#, r#""runs":21"#, 1);
    let wrong = with("totals.jsonl", lines.len() - 1, &totals);
    assert_mistake(&["check", "merge", s0, s1, &wrong], "disagree with the seed lines");
    let not_findings = write("empty.jsonl", "");
    assert_mistake(&["check", "merge", &not_findings], "not a findings file");
    assert_mistake(&["check", "merge", "/nonexistent/shard.jsonl"], "cannot read findings file");
    let empty = tempfile::tempdir().unwrap();
    assert_mistake(&["check", "merge", empty.path().to_str().unwrap()], "holds no findings files");
}

#[test]
fn shards_are_checked_and_one_with_no_seeds_still_finishes() {
    for (shard, expected) in
        [("0/0", "1..=1000000"), ("5/3", "0/3 to 2/3"), ("3/3", "0/3 to 2/3"), ("x", "I/N")]
    {
        assert_mistake(&["check", "3pc", "--shard", shard], expected);
    }
    // Two seeds in three shards: the third has none, and says so in a finished file.
    // A path ending in `/` is a directory, made if need be.
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().join("findings");
    let path = &format!("{}/", dir.display());
    for i in 0..3 {
        let out = Command::new(env!("CARGO_BIN_EXE_agora"))
            .args(["check", "2pc", "--seeds", "7..9", "--findings", path, "--json"])
            .env("AGORA_SHARD", format!("{i}/3"))
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["runs"], u64::from(i < 2), "{v}");
    }
    assert!(seed_lines(&dir.join("shard-2-of-3.jsonl")).is_empty());
    // A directory stands for the findings files in it.
    let out = agora(&["check", "merge", "--json", path]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v["runs"].as_u64(), out.status.code()), (Some(2), Some(0)), "{v}");
}

#[test]
fn a_shard_stopped_midway_leaves_the_seeds_it_ran() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stopped.jsonl");
    // Every seed of this broken variant fails; a million would take long. The failures are
    // printed as they are found, each after its line is written: stop at the first.
    let mut child = Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(["check", "flood", "--nodes", "10", "--variant", "no-dedup", "--seeds", "0..1000000"])
        .args(["--threads", "1", "--findings", file.to_str().unwrap()])
        .env_remove("AGORA_SHARD")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let first = stdout.lines().map(Result::unwrap).find(|l| l.starts_with("    reproduce: ")).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();

    let path = file.to_str().unwrap();
    assert_mistake(&["check", "merge", path], "stopped.jsonl");
    let out = agora(&["check", "merge", "--partial", "--json", path]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = v["runs"].as_u64().unwrap();
    assert!(runs >= 1 && runs == v["failed"].as_u64().unwrap(), "{v}");
    assert_eq!(v["shards"]["seeds_not_run"].as_u64(), Some(1_000_000 - runs));
    assert_eq!(v["shards"]["files"][0]["finished"], false);
    assert_eq!(format!("    reproduce: {}", v["failures"][0]["reproduce"].as_str().unwrap()), first);
}

#[test]
fn merge_keeps_a_bounded_report_whatever_the_files_say() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.jsonl");
    agora(&["check", "2pc", "--seeds", "0..2", "--findings", real.to_str().unwrap(), "--json"]);
    let header =
        std::fs::read_to_string(&real).unwrap().lines().next().unwrap().replace(r#""to":2"#, r#""to":2000"#);
    // 1001 seeds, each naming another property it did not judge: more names than a report lists.
    let mut text = header + "\n";
    for seed in 0..1001 {
        text += &format!(
            r#"{{"line":"seed","seed":{seed},"verdict":"partly-judged","not_judged":["p{seed}"],"event_limited":false,"events":1,"virtual_ms":1.0}}"#
        );
        text.push('\n');
    }
    let forged = dir.path().join("forged.jsonl");
    std::fs::write(&forged, text).unwrap();
    assert_mistake(
        &["check", "merge", "--partial", forged.to_str().unwrap()],
        "line 1002: more failures than a report holds",
    );
}
