//! `agora explore` end to end: the classic elections break one-leader-per-term on an
//! asynchronous network, with a shortest trace, and hold on a synchronous one (with a crash and
//! a restart too); 3PC breaks atomicity when timeouts prove nothing and holds when they do;
//! 2PC holds with a crash and a restart; the market with its trader's own books trades a buy
//! twice, and with the replicated ledger does not within the bounds. Explorations are
//! deterministic, the same on one thread or several, symmetry reduction finds what the full
//! search finds, and mistakes exit 2. At-end properties are judged in dead ends and in
//! cycles: a bully that follows a lower leader for ever is caught in a cycle, and an unfair
//! cycle is no violation.

use serde_json::Value;
use std::process::{Command, Output};

fn agora(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agora")).args(args).output().expect("the agora binary runs")
}

/// `agora explore ARGS --json`: its exit code and its report.
fn explore(args: &[&str]) -> (i32, Value) {
    let mut all = vec!["explore"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = agora(&all);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    (out.status.code().expect("an exit code"), v)
}

/// The violated property and the length of the shortest trace to it.
fn violation(v: &Value) -> (&str, usize) {
    let f = &v["violation"];
    (f["property"].as_str().expect("a violation"), f["trace"].as_array().unwrap().len())
}

/// Runs the violation's `replay` command (`agora sim ... --schedule FILE --json`), which must
/// reach `property`'s violation by the same steps; the command's arguments.
fn replays_to(v: &Value, property: &str) -> Vec<String> {
    let replay = v["violation"]["replay"].as_str().unwrap();
    let mut sim: Vec<String> = replay.split_whitespace().skip(1).map(String::from).collect();
    sim.push("--json".into());
    let out = agora(&sim.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(1), "{replay}: {}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["violation"]["property"], property);
    assert_eq!(r["steps"], v["violation"]["trace"]);
    sim
}

/// Searched every state within the bounds, and found nothing.
fn holds(code: i32, v: &Value) {
    assert_eq!(code, 0, "{v}");
    assert!(v["violation"].is_null(), "{v}");
    assert_eq!(v["complete"], true, "the bounds cut the search off: {v}");
}

#[test]
fn bully_elects_two_leaders_in_a_term_only_when_timeouts_prove_nothing() {
    let (code, v) = explore(&["bully", "--nodes", "3"]);
    assert_eq!(code, 1);
    // Node 1's timeout fires before node 2's OK arrives; both lead in the same term.
    assert_eq!(violation(&v), ("one-leader-per-term", 7), "{v}");
    let trace: Vec<&str> =
        v["violation"]["trace"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert!(trace.iter().any(|s| s.starts_with("fire timer NoAnswer")), "{trace:?}");
    assert_eq!(v["judged"], serde_json::json!(["one-leader-per-term"]));
    assert_eq!(v["not_judged"], serde_json::json!(["highest-live-leader"]));

    let (code, v) = explore(&["bully", "--nodes", "3", "--timing", "sync"]);
    holds(code, &v);
    let (code, v) =
        explore(&["bully", "--nodes", "3", "--timing", "sync", "--crashes", "1", "--restarts", "1"]);
    holds(code, &v);
    assert!(v["unique"].as_u64().unwrap() > 1000, "crashes and restarts add states: {v}");
}

#[test]
fn ring_election_breaks_asynchronously_and_holds_synchronously_within_the_depth() {
    let (code, v) = explore(&["ring-election", "--nodes", "3"]);
    assert_eq!(code, 1);
    assert_eq!(violation(&v), ("one-leader-per-term", 4), "{v}");
    let (code, v) = explore(&["ring-election", "--nodes", "3", "--timing", "sync", "--depth", "8"]);
    assert_eq!(code, 0, "{v}");
    assert!(v["violation"].is_null());
    assert_eq!(v["depth_complete"], 8, "{v}");
}

#[test]
fn three_phase_commit_needs_synchrony_and_two_phase_commit_does_not() {
    let (code, v) = explore(&["3pc", "--nodes", "3"]);
    assert_eq!(code, 1);
    assert_eq!(violation(&v).0, "atomicity", "{v}");
    let (code, v) = explore(&["3pc", "--nodes", "3", "--timing", "sync", "--crashes", "1"]);
    holds(code, &v);
    let (code, v) =
        explore(&["2pc", "--nodes", "3", "--timing", "sync", "--crashes", "1", "--restarts", "1"]);
    holds(code, &v);
    // Asynchronously 2PC's state space has no end (the coordinator resends); within a depth,
    // it holds.
    let (code, v) = explore(&["2pc", "--nodes", "3", "--depth", "8"]);
    assert_eq!(code, 0, "{v}");
    assert!(v["violation"].is_null());
}

#[test]
fn an_exploration_is_the_same_every_time() {
    let (_, a) = explore(&["bully", "--nodes", "3", "--loss", "1", "--duplicate", "1"]);
    let (_, b) = explore(&["bully", "--nodes", "3", "--loss", "1", "--duplicate", "1"]);
    for key in ["states", "unique", "depth", "violation"] {
        assert_eq!(a[key], b[key], "{key}");
    }
}

#[test]
fn the_state_limit_is_reported_as_an_incomplete_search() {
    let (code, v) = explore(&["2pc", "--nodes", "3", "--max-states", "50"]);
    assert_eq!(code, 0);
    assert_eq!(v["complete"], false);
    assert!(v["unique"].as_u64().unwrap() <= 50, "{v}");
    let out = agora(&["explore", "2pc", "--nodes", "3", "--max-states", "50"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("the bounds cut the search off"), "{text}");
}

#[test]
fn mistakes_are_one_line_and_exit_2() {
    for args in [
        &["explore", "gossip", "--nodes", "3"][..],
        &["explore", "no-such-protocol"],
        &["explore", "bully", "--timing", "sometimes"],
        &["explore", "bully", "--depth", "0"],
        &["explore", "bully", "--loss", "-1"],
        &["explore", "bully", "--msgs", "3"],
    ] {
        let out = agora(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn lamport_mutex_needs_fifo_links_and_ricart_agrawala_does_not() {
    // Raw reordering links: a REPLY overtakes the REQUEST before it, and two nodes enter
    // together.
    let (code, v) = explore(&["lamport-mutex", "--links", "raw", "--nodes", "3"]);
    assert_eq!(code, 1);
    assert_eq!(violation(&v), ("mutual-exclusion", 10), "{v}");
    // FIFO links, its model: no violation within the depth; one lost message breaks it.
    let (code, v) = explore(&["lamport-mutex", "--links", "raw", "--nodes", "3", "--fifo", "--depth", "12"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["depth_complete"], 12, "{v}");
    let (code, v) = explore(&[
        "lamport-mutex",
        "--links",
        "raw",
        "--nodes",
        "3",
        "--fifo",
        "--loss",
        "1",
        "--max-states",
        "400000",
    ]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(violation(&v).0, "mutual-exclusion", "{v}");
    // Ricart-Agrawala's timestamps need no FIFO links.
    let (code, v) = explore(&["ricart-agrawala", "--nodes", "3", "--depth", "14"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["depth_complete"], 14, "{v}");
    for p in ["central-mutex", "token-ring-mutex"] {
        let (code, v) = explore(&[p, "--nodes", "3", "--depth", "14"]);
        assert_eq!(code, 0, "{p}: {v}");
        assert!(v["violation"].is_null(), "{p}: {v}");
    }
}

#[test]
fn a_violations_trace_is_drawn_as_a_space_time_diagram() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("bully.svg");
    let (code, v) = explore(&["bully", "--nodes", "3", "--diagram", svg.to_str().unwrap()]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["violation"]["diagram"], svg.to_str().unwrap());
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg"), "{text}");
    assert!(text.contains("the shortest trace to `one-leader-per-term`"), "{text}");
    // Every message the trace delivered is an arrow with its kind: the steps name ELECTION, OK
    // and HEARTBEAT deliveries.
    for kind in ["ELECTION", "OK", "HEARTBEAT"] {
        assert!(text.contains(&format!(">{kind}<")), "{kind} is drawn");
    }
    // Nothing is drawn when nothing is found.
    let quiet = dir.path().join("none.svg");
    let (code, _) =
        explore(&["bully", "--nodes", "3", "--timing", "sync", "--diagram", quiet.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(!quiet.exists());
}

#[test]
fn agora_sim_replays_a_schedule_to_the_same_violation() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lamport.json");
    let path = file.to_str().unwrap();
    let (code, v) = explore(&["lamport-mutex", "--links", "raw", "--nodes", "3", "--schedule", path]);
    assert_eq!(code, 1, "{v}");
    let (property, steps) = violation(&v);
    let replay = v["violation"]["replay"].as_str().unwrap();
    assert_eq!(replay, format!("agora sim lamport-mutex --links raw --nodes 3 --schedule {path}"));
    let sim = |extra: &[&str]| {
        let mut args =
            vec!["sim", "lamport-mutex", "--nodes", "3", "--links", "raw", "--schedule", path, "--json"];
        args.extend_from_slice(extra);
        agora(&args)
    };
    let out = sim(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["violation"]["property"], property);
    assert_eq!(r["steps"], v["violation"]["trace"], "the same steps, described the same way");
    assert_eq!(r["steps"].as_array().unwrap().len(), steps);
    // A schedule cut short breaks nothing; a step the state does not allow, a fault flag, or
    // another protocol is a mistake.
    let mut s: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    s["steps"].as_array_mut().unwrap().pop();
    std::fs::write(&file, s.to_string()).unwrap();
    let out = sim(&[]);
    assert_eq!(out.status.code(), Some(0));
    s["steps"].as_array_mut().unwrap().push(serde_json::json!({"deliver": 99}));
    std::fs::write(&file, s.to_string()).unwrap();
    let out = sim(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not possible in the state it is taken from"));
    let out = sim(&["--loss", "0.1"]);
    assert_eq!(out.status.code(), Some(2));
    let out = agora(&["sim", "bully", "--schedule", path]);
    assert_eq!(out.status.code(), Some(2));
}

/// The deliveries of a sampled `agora sim` run up to its violation (the run stops there), for
/// each seed in `seeds`.
fn sampled_steps(args: &[&str], seeds: std::ops::Range<u64>, property: &str) -> Vec<u64> {
    seeds
        .map(|seed| {
            let seed = seed.to_string();
            let mut all = vec!["sim"];
            all.extend_from_slice(args);
            all.extend_from_slice(&["--seed", &seed, "--json"]);
            let out = agora(&all);
            assert_eq!(out.status.code(), Some(1), "{all:?}: {}", String::from_utf8_lossy(&out.stdout));
            let s: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(s["violations"][0]["property"], property, "{s}");
            s["messages_delivered"].as_u64().unwrap() + s["messages_dropped"].as_u64().unwrap()
        })
        .collect()
}

#[test]
fn flood_without_deduplication_is_caught_in_three_deliveries_and_correct_flood_holds() {
    // Node 1 relays the rumour to node 2 before the origin's own copy reaches node 2.
    let (code, v) = explore(&["flood", "--nodes", "5", "--variant", "no-dedup"]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(violation(&v), ("no-duplication", 3), "{v}");
    // Sampled runs break it later: the origin's four copies arrive before any relayed one.
    let sampled = sampled_steps(&["flood", "--nodes", "5", "--variant", "no-dedup"], 1..11, "no-duplication");
    assert!(
        sampled.iter().all(|&s| s > 3),
        "the explored trace is shorter than every sampled run's: {sampled:?}"
    );
    // The algorithm as described: no node delivers twice, with a duplicate, a crash and a
    // restart (its delivery is persisted before it is reported).
    let (code, v) =
        explore(&["flood", "--nodes", "4", "--duplicate", "1", "--crashes", "1", "--restarts", "1"]);
    holds(code, &v);
    assert_eq!(v["judged"], serde_json::json!(["no-duplication", "no-creation"]));
}

/// Raft's properties judged in every state of an exploration.
const RAFT_JUDGED: &[&str] =
    &["election-safety", "log-matching", "leader-completeness", "state-machine-safety"];

#[test]
fn raft_keeps_election_safety_and_log_matching_for_three_replicas_within_the_bounds() {
    // Synchronous timing, up to four timer firings (so at most four terms, and a log of at
    // most their no-ops), one message lost, a replica crashing and restarting from what it
    // persisted: every state explored. A leader that crashes after committing its no-op with
    // one follower, the other follower having lost the append, is among them: a candidate
    // that lacks the entry must not win.
    let (code, v) = explore(&[
        "raft",
        "--nodes",
        "3",
        "--clients",
        "0",
        "--timing",
        "sync",
        "--fires",
        "4",
        "--loss",
        "1",
        "--crashes",
        "1",
        "--restarts",
        "1",
        "--depth",
        "60",
    ]);
    holds(code, &v);
    let judged = v["judged"].as_array().unwrap();
    for p in RAFT_JUDGED {
        assert!(judged.iter().any(|j| j == p), "{p} judged: {v}");
    }
    assert_eq!(v["not_judged"], serde_json::json!(["liveness"]));
    assert!(v["unique"].as_u64().unwrap() > 10_000, "a crash and a restart add states: {v}");
}

#[test]
fn raft_symmetry_counts_renamed_replicas_once_and_finds_the_same() {
    let both = |args: &[&str]| {
        let mut without = args.to_vec();
        without.push("--no-symmetry");
        (explore(args), explore(&without))
    };
    let raft = ["raft", "--nodes", "3", "--clients", "0", "--timing", "sync", "--fires", "4"];
    // Votes, leaders and a leader's view of its peers name replicas: renamed inside each
    // state, its storage and its observations, the three replicas' renamings count as one.
    let mut args = raft.to_vec();
    args.extend_from_slice(&["--crashes", "1", "--restarts", "1", "--depth", "60"]);
    let ((c1, with), (c2, without)) = both(&args);
    holds(c1, &with);
    holds(c2, &without);
    assert_eq!((&with["symmetry"], &without["symmetry"]), (&Value::Bool(true), &Value::Bool(false)));
    let (w, wo) = (with["unique"].as_u64().unwrap(), without["unique"].as_u64().unwrap());
    assert!(w * 4 < wo, "three interchangeable replicas: {w} unique states with symmetry, {wo} without");
    assert_eq!(with["depth"], without["depth"]);
    // Voters that grant without comparing logs: a leader lacking a committed entry, found
    // as soon either way (the bounds of the test above), and the symmetric search's trace
    // replays.
    let mut args = raft.to_vec();
    args.extend_from_slice(&[
        "--loss",
        "1",
        "--crashes",
        "1",
        "--restarts",
        "1",
        "--variant",
        "no-log-check",
    ]);
    let ((c1, with), (c2, without)) = both(&args);
    assert_eq!((c1, c2), (1, 1), "{with} {without}");
    assert_eq!(violation(&with), ("leader-completeness", 16), "{with}");
    assert_eq!(violation(&with), violation(&without));
    assert!(with["states"].as_u64().unwrap() * 4 < without["states"].as_u64().unwrap(), "{with} {without}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("no-log-check.json");
    args.extend_from_slice(&["--schedule", file.to_str().unwrap()]);
    let (_, with) = explore(&args);
    replays_to(&with, "leader-completeness");
    // With a client, which tries the replicas in an order of its own, none are declared.
    let (_, v) =
        explore(&["raft", "--nodes", "3", "--clients", "1", "--msgs", "1", "--fires", "1", "--depth", "4"]);
    assert_eq!(v["symmetry"], false, "{v}");
}

/// A client with one command, sent at once, and one election: `raft --nodes 3` explored
/// asynchronously, one timer firing, one duplicated message, to `depth` steps.
fn raft_one_command_args<'a>(variant: &'a str, depth: &'a str) -> Vec<&'a str> {
    vec![
        "raft",
        "--nodes",
        "3",
        "--clients",
        "1",
        "--msgs",
        "1",
        "--reads",
        "0",
        "--interval-ms",
        "0",
        "--variant",
        variant,
        "--fires",
        "1",
        "--duplicate",
        "1",
        "--depth",
        depth,
    ]
}

fn raft_one_command(variant: &str, depth: &str) -> (i32, Value) {
    explore(&raft_one_command_args(variant, depth))
}

#[test]
fn raft_without_deduplication_applies_a_duplicated_command_twice() {
    // The client's request arrives twice at the leader, which appends it twice; without the
    // session table both entries take effect.
    let (code, v) = raft_one_command("no-dedup", "11");
    assert_eq!(code, 1, "{v}");
    assert_eq!(violation(&v), ("exactly-once", 11), "{v}");
    let trace: Vec<&str> =
        v["violation"]["trace"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert!(trace.iter().any(|s| s.starts_with("deliver, and keep a duplicate of, REQUEST")), "{trace:?}");
    // Sampled runs (two clients of 50 operations, 5% of messages duplicated) deliver many more
    // messages before the first command takes effect twice.
    let sampled = sampled_steps(
        &["raft", "--nodes", "3", "--variant", "no-dedup", "--duplicate", "0.05"],
        1..4,
        "exactly-once",
    );
    assert!(
        sampled.iter().all(|&s| s > 11),
        "the explored trace is shorter than every sampled run's: {sampled:?}"
    );
    // The same bounds, with the session table: no command takes effect twice.
    let (code, v) = raft_one_command("correct", "11");
    assert_eq!(code, 0, "{v}");
    assert!(v["violation"].is_null(), "{v}");
    assert_eq!(v["depth_complete"], 11, "{v}");
}

/// One client of two reads, one in flight at a time, on FIFO links, two timer firings (two
/// elections), to depth 21.
const RAFT_TWO_READS: &[&str] = &[
    "raft",
    "--nodes",
    "3",
    "--clients",
    "1",
    "--msgs",
    "2",
    "--window",
    "1",
    "--reads",
    "1",
    "--interval-ms",
    "0",
    "--variant",
    "stale-reads",
    "--fires",
    "2",
    "--fifo",
    "--depth",
    "21",
];

#[test]
fn raft_serving_reads_without_a_quorum_reads_stale_data_after_a_new_election() {
    // Replica 1 is elected and answers the client's first read after its no-op; replica 0,
    // which has the no-op but not yet the news that it is committed, is elected next; the
    // client's second read, redirected by replica 1, is answered by replica 0 at once, from
    // before the no-op — older than what the client already read. (About 620,000 distinct
    // states: the longest search of these tests.)
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stale.json");
    let path = file.to_str().unwrap();
    let mut args = RAFT_TWO_READS.to_vec();
    args.extend_from_slice(&["--schedule", path]);
    let (code, v) = explore(&args);
    assert_eq!(code, 1, "{v}");
    assert_eq!(violation(&v), ("linearizable-reads", 21), "{v}");
    let trace: Vec<&str> =
        v["violation"]["trace"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    let answered = trace.iter().filter(|s| s.starts_with("deliver REPLY") && s.contains("Read {")).count();
    assert_eq!(answered, 2, "the client read twice: {trace:?}");
    // `agora sim` takes the same steps to the same stale read.
    let sim = replays_to(&v, "linearizable-reads");
    // The client only reads: no step makes a choice, and a schedule that names one is a
    // mistake.
    let mut s: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(s["choices"], serde_json::json!(vec![0; 22]), "the start and each step: {s}");
    s["choices"][9] = serde_json::json!(1);
    std::fs::write(&file, s.to_string()).unwrap();
    let out = agora(&sim.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not ones its handlers can take"));
}

#[test]
fn a_clients_choice_to_read_or_write_is_taken_both_ways() {
    // Unique states within a depth: a client that may read or write (both taken) reaches
    // those of a client that only writes and those of one that only reads, which differ.
    let unique = |reads: &str| {
        let (code, v) = explore(&[
            "raft",
            "--nodes",
            "3",
            "--clients",
            "1",
            "--msgs",
            "2",
            "--window",
            "1",
            "--reads",
            reads,
            "--interval-ms",
            "0",
            "--fires",
            "2",
            "--depth",
            "7",
        ]);
        assert_eq!(code, 0, "{v}");
        v["unique"].as_u64().unwrap()
    };
    let (writes, reads, either) = (unique("0"), unique("1"), unique("0.5"));
    assert_ne!(writes, reads, "a read and a write are different requests");
    assert!(either > writes.max(reads), "both alternatives taken: {either} against {writes} and {reads}");
}

/// `explore ARGS` on one thread and on three (more than this machine may have cores).
fn on_one_and_three_threads(args: &[&str]) -> [(i32, Value); 2] {
    ["1", "3"].map(|t| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--threads", t]);
        explore(&all)
    })
}

#[test]
fn parallel_and_single_thread_searches_find_the_same_states_and_the_same_shortest_trace() {
    // Complete searches, levels of thousands of states (several batches, each split among the
    // threads), with and without symmetry.
    for args in [
        &["2pc", "--nodes", "3", "--fires", "2"][..],
        &["flood", "--nodes", "4", "--duplicate", "1", "--crashes", "1", "--restarts", "1", "--no-symmetry"],
        &["bully", "--nodes", "3", "--timing", "sync", "--crashes", "1", "--restarts", "1"],
        // Symmetry with ids renamed inside the state (Raft's replicas).
        &[
            "raft",
            "--nodes",
            "3",
            "--clients",
            "0",
            "--timing",
            "sync",
            "--fires",
            "4",
            "--crashes",
            "1",
            "--restarts",
            "1",
            "--depth",
            "60",
        ],
    ] {
        let [(c1, one), (c3, three)] = on_one_and_three_threads(args);
        holds(c1, &one);
        holds(c3, &three);
        assert_eq!((one["threads"].as_u64(), three["threads"].as_u64()), (Some(1), Some(3)));
        for key in ["states", "unique", "depth", "cycles"] {
            assert_eq!(one[key], three[key], "{args:?}: {key}");
        }
        assert!(one["unique"].as_u64().unwrap() > 2000, "{args:?}: {one}");
    }
    // A violation: the same shortest trace, step for step, and the same count of states.
    for args in [&["bully", "--nodes", "3"][..], &["lamport-mutex", "--links", "raw", "--nodes", "3"]] {
        let [(c1, one), (c3, three)] = on_one_and_three_threads(args);
        assert_eq!((c1, c3), (1, 1), "{args:?}");
        assert_eq!(one["violation"]["trace"], three["violation"]["trace"], "{args:?}");
        assert_eq!(one["states"], three["states"], "{args:?}");
    }
    // The state limit cuts both at the same state.
    let [(_, one), (_, three)] = on_one_and_three_threads(&["2pc", "--nodes", "4", "--max-states", "3000"]);
    assert_eq!(one["complete"], false);
    for key in ["states", "unique", "depth", "depth_complete"] {
        assert_eq!(one[key], three[key], "{key}");
    }
}

#[test]
fn symmetry_counts_renamings_of_interchangeable_nodes_once_and_finds_the_same() {
    let both = |args: &[&str]| {
        let mut without = args.to_vec();
        without.push("--no-symmetry");
        (explore(args), explore(&without))
    };
    // 2PC's three participants, all voting yes, with a message lost: it holds either way, in
    // fewer states with symmetry.
    let ((c1, with), (c2, without)) = both(&["2pc", "--nodes", "4", "--timing", "sync", "--loss", "1"]);
    holds(c1, &with);
    holds(c2, &without);
    assert_eq!((&with["symmetry"], &without["symmetry"]), (&Value::Bool(true), &Value::Bool(false)));
    let (w, wo) = (with["unique"].as_u64().unwrap(), without["unique"].as_u64().unwrap());
    assert!(w * 2 < wo, "three interchangeable participants: {w} unique states with symmetry, {wo} without");
    // Flood on a complete graph (every node but the origin interchangeable): the correct
    // algorithm holds either way, in fewer states; the broken one is caught either way, with
    // a trace as short.
    let ((c1, with), (c2, without)) =
        both(&["flood", "--nodes", "4", "--duplicate", "1", "--crashes", "1", "--restarts", "1"]);
    holds(c1, &with);
    holds(c2, &without);
    assert!(with["unique"].as_u64().unwrap() < without["unique"].as_u64().unwrap(), "{with} {without}");
    let ((c1, with), (c2, without)) = both(&["flood", "--nodes", "5", "--variant", "no-dedup"]);
    assert_eq!((c1, c2), (1, 1));
    assert_eq!(violation(&with), ("no-duplication", 3), "{with}");
    assert_eq!(violation(&with), violation(&without));
    assert!(with["states"].as_u64().unwrap() < without["states"].as_u64().unwrap(), "{with} {without}");
    // A protocol that declares no interchangeable nodes is searched as it was.
    let (_, bully) = explore(&["bully", "--nodes", "3", "--timing", "sync"]);
    assert_eq!(bully["symmetry"], false);
}

#[test]
fn dead_ends_are_judged_by_the_at_end_properties_a_deadlock_is_found_and_correct_runs_pass() {
    // Ricart-Agrawala without the timestamps' priority: both nodes request, each defers the
    // other's REQUEST, and nothing is left to deliver or fire.
    let (code, v) =
        explore(&["ricart-agrawala", "--nodes", "2", "--requests", "1", "--variant", "no-priority"]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["violation"]["dead_end"], true, "{v}");
    // Both think timers fire, both REQUESTs arrive: four steps.
    assert_eq!(violation(&v), ("every-request-served", 4), "{v}");
    // The algorithm itself reaches dead ends only with every request served, on three nodes
    // too and with a duplicate; so does flood, whose dead ends are reached with every node
    // delivered.
    for args in [
        &["ricart-agrawala", "--nodes", "2", "--requests", "1"][..],
        &["ricart-agrawala", "--nodes", "3", "--requests", "1", "--duplicate", "1"],
        &["flood", "--nodes", "4", "--topology", "ring", "--duplicate", "1"],
    ] {
        let (code, v) = explore(args);
        holds(code, &v);
        assert!(v["dead_ends"].as_u64().unwrap() > 0, "{args:?}: {v}");
        assert_eq!(v["not_judged"], serde_json::json!([]), "{args:?}: {v}");
        assert_eq!(v["judged_at_dead_ends"], v["at_end"], "{args:?}: {v}");
    }
    // Asynchronously a timeout proves nothing: 2PC's coordinator may abort before the votes
    // arrive, so non-triviality is judged only with synchronous timing; termination always.
    let (code, v) = explore(&["2pc", "--nodes", "3", "--fires", "2"]);
    holds(code, &v);
    assert_eq!(v["judged_at_dead_ends"], serde_json::json!(["termination"]), "{v}");
    assert_eq!(v["not_judged"], serde_json::json!(["non-triviality"]), "{v}");
    let (code, v) =
        explore(&["2pc", "--nodes", "3", "--timing", "sync", "--crashes", "1", "--restarts", "1"]);
    holds(code, &v);
    assert_eq!(v["judged_at_dead_ends"], serde_json::json!(["non-triviality", "termination"]), "{v}");
    // A lost message is a fault to blame: the checker does not judge the dead ends it leaves.
    let (code, v) = explore(&["ricart-agrawala", "--nodes", "3", "--requests", "1", "--loss", "1"]);
    holds(code, &v);
    // Flood that does not relay: on a ring, the nodes beyond the origin's neighbours never
    // deliver.
    let (code, v) = explore(&["flood", "--nodes", "4", "--topology", "ring", "--variant", "no-relay"]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["violation"]["dead_end"], true, "{v}");
    assert_eq!(violation(&v), ("reachable-delivered", 2), "{v}");
    // With heartbeats a protocol never goes quiet: no dead end, its at-end property judged in
    // the cycles its heartbeats go round.
    let (code, v) = explore(&["bully", "--nodes", "3", "--timing", "sync"]);
    holds(code, &v);
    assert_eq!(v["dead_ends"], 0, "{v}");
    assert!(v["cycles"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["judged_in_cycles"], serde_json::json!(["highest-live-leader"]));
    assert_eq!(v["not_judged"], serde_json::json!([]));
}

/// Bully with a crash and a restart of any node, on a synchronous network: `variant`.
fn bully_restarted(variant: &str) -> Vec<&str> {
    vec![
        "bully",
        "--nodes",
        "3",
        "--timing",
        "sync",
        "--crashes",
        "1",
        "--restarts",
        "1",
        "--variant",
        variant,
    ]
}

#[test]
fn a_restarted_bully_that_follows_a_lower_leader_for_ever_is_a_cycle_without_progress() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("no-bully.json");
    let path = file.to_str().unwrap();
    let svg = dir.path().join("no-bully.svg");
    let mut args = bully_restarted("no-bully");
    args.extend(["--schedule", path, "--diagram", svg.to_str().unwrap()]);
    let (code, v) = explore(&args);
    assert_eq!(code, 1, "{v}");
    // Node 2 crashes and restarts while node 1 is elected, then follows node 1, which is lower:
    // node 1's heartbeats go round for ever (steps 8 to 10) and node 2 never takes over.
    assert_eq!(violation(&v), ("highest-live-leader", 10), "{v}");
    let f = &v["violation"];
    assert_eq!((&f["cycle"], &f["dead_end"]), (&serde_json::json!(8), &Value::Bool(false)), "{v}");
    let trace: Vec<&str> = f["trace"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert!(trace[..7].contains(&"restart node 2 from what it persisted"), "{trace:?}");
    assert_eq!(trace[7], "fire timer Beat at node 1", "{trace:?}");
    assert!(trace[8..].iter().all(|s| s.starts_with("deliver HEARTBEAT")), "{trace:?}");
    let drawn = std::fs::read_to_string(&svg).unwrap();
    assert!(drawn.contains("then the cycle from step 8"), "{drawn}");
    // `agora sim` takes the lasso, finds the cycle back at its start, and judges it.
    let replay = f["replay"].as_str().unwrap().to_string();
    let mut sim: Vec<&str> = replay.split_whitespace().skip(1).collect();
    sim.push("--json");
    let out = agora(&sim);
    assert_eq!(out.status.code(), Some(1), "{replay}: {}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["violation"]["property"], "highest-live-leader");
    assert_eq!(
        (&r["violation"]["cycle"], &r["violation"]["dead_end"]),
        (&Value::Bool(true), &Value::Bool(false))
    );
    assert_eq!(r["steps"], f["trace"]);
    // A cycle that does not lead back to where it starts is a mistake.
    let mut s: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(s["cycle"], 7, "an index into the steps: {s}");
    s["cycle"] = serde_json::json!(6);
    std::fs::write(&file, s.to_string()).unwrap();
    let out = agora(&sim);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not lead back"));
    // The bully rule is the fix: every cycle of the algorithm, with the same faults, has the
    // highest live node leading.
    let (code, v) = explore(&bully_restarted("correct"));
    holds(code, &v);
    assert!(v["cycles"].as_u64().unwrap() > 100, "{v}");
    assert_eq!(v["unfair_cycles"], 0, "{v}");
    assert_eq!(v["judged_in_cycles"], serde_json::json!(["highest-live-leader"]), "{v}");
    assert_eq!(v["not_judged"], serde_json::json!([]), "{v}");
}

#[test]
fn a_cycle_that_leaves_a_message_in_flight_for_ever_is_no_violation() {
    // Asynchronous 2PC: a participant that voted asks for the decision again and again while
    // its vote and the other participant's VOTE-REQ wait in flight. Termination does not hold
    // in those cycles, but a fair run delivers the waiting messages and leaves them.
    let (code, v) = explore(&["2pc", "--nodes", "3", "--depth", "10"]);
    assert_eq!(code, 0, "{v}");
    assert!(v["violation"].is_null(), "{v}");
    let cycles = v["cycles"].as_u64().unwrap();
    assert!(cycles > 0, "{v}");
    assert_eq!(v["unfair_cycles"], cycles, "{v}");
    assert_eq!(v["judged_in_cycles"], serde_json::json!(["termination"]), "{v}");
}

#[test]
fn every_request_served_is_judged_in_the_cycles_of_lamports_mutual_exclusion() {
    // Lamport's mutual exclusion over its link layer does not go quiet while a frame waits
    // for its acknowledgement (the retransmission timer may fire at any step), so it goes
    // round cycles. Nothing more is observed in a cycle, so every-request-served, which says
    // that entries will be observed, is judged in them; where a request is not served the
    // cycle starves a message in flight (every run that stays is unfair): no violation.
    let (code, v) = explore(&["lamport-mutex", "--nodes", "2", "--requests", "1", "--depth", "10"]);
    assert_eq!(code, 0, "{v}");
    assert!(v["violation"].is_null(), "{v}");
    let cycles = v["cycles"].as_u64().unwrap();
    assert!(cycles > 10, "{v}");
    assert_eq!(v["unfair_cycles"], cycles, "{v}");
    assert_eq!(v["judged_in_cycles"], serde_json::json!(["every-request-served"]), "{v}");
    assert_eq!(v["not_judged"], serde_json::json!([]), "{v}");
    // Not after a loss: the link layer resends once a timeout has passed on the clock, which
    // the explorer gives only protocols that say they read it; here its timer fires for ever
    // and resends nothing (a lost REPLY is never sent again), a cycle the real link leaves.
    let (code, v) =
        explore(&["lamport-mutex", "--nodes", "2", "--requests", "1", "--loss", "1", "--depth", "15"]);
    assert_eq!(code, 0, "{v}");
    assert!(v["violation"].is_null(), "{v}");
    assert!(v["cycles"].as_u64().unwrap() > 1000, "{v}");
}

#[test]
fn agora_sim_replays_a_schedule_to_the_same_dead_end() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ra.json");
    let path = file.to_str().unwrap();
    let args = ["ricart-agrawala", "--nodes", "2", "--requests", "1", "--variant", "no-priority"];
    let mut with_schedule = args.to_vec();
    with_schedule.extend(["--schedule", path]);
    let (code, v) = explore(&with_schedule);
    assert_eq!(code, 1, "{v}");
    let mut sim = vec!["sim"];
    sim.extend(args);
    sim.extend(["--schedule", path, "--json"]);
    let out = agora(&sim);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["violation"]["property"], "every-request-served");
    assert_eq!(r["violation"]["dead_end"], true);
    assert_eq!(r["steps"], v["violation"]["trace"]);
}

/// `raft_one_command`'s bounds, deeper, sampled by random walks instead of searched.
fn raft_walks<'a>(variant: &'a str, more: &[&'a str]) -> (i32, Value) {
    let mut args = raft_one_command_args(variant, "40");
    args.extend_from_slice(&["--walks", "100000"]);
    args.extend_from_slice(more);
    explore(&args)
}

#[test]
fn random_walks_find_a_duplicated_command_replay_it_and_prove_nothing_when_they_find_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (code, v) = raft_walks("no-dedup", &["--seed", "1"]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["search"], "walks");
    let (property, steps) = violation(&v);
    assert_eq!(property, "exactly-once", "{v}");
    // A walk's trace is the one it took: no shorter than the shortest, 11 steps (above).
    assert!((11..=40).contains(&steps), "{v}");
    assert_eq!(v["complete"], false, "a sample proves nothing: {v}");
    // The same seed, the same walks; the trace replays in the simulator to the same violation.
    let (again_code, again) = raft_walks("no-dedup", &["--seed", "1"]);
    assert_eq!((again_code, &again["states"], &again["violation"]), (code, &v["states"], &v["violation"]));
    let file = dir.path().join("walk.json");
    let path = file.to_str().unwrap();
    let (code, w) = raft_walks("no-dedup", &["--schedule", path]);
    assert_eq!(code, 1);
    let replay = w["violation"]["replay"].as_str().expect("the command that replays the walk").to_string();
    let mut sim: Vec<&str> = replay.split_whitespace().skip(1).collect();
    sim.push("--json");
    let out = agora(&sim);
    assert_eq!(out.status.code(), Some(1), "{replay}: {}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["violation"]["property"], "exactly-once");
    assert_eq!(r["steps"].as_array().unwrap().len(), steps);
    // With the session table, as many walks find nothing, and say that it is a sample.
    let (code, v) = raft_walks("correct", &["--seed", "1"]);
    assert_eq!(code, 0, "{v}");
    assert!(v["violation"].is_null(), "{v}");
    assert_eq!(v["complete"], false, "{v}");
    assert!(v["states"].as_u64().unwrap() > 100_000, "every walk took steps: {v}");
    // A walk judges the dead ends it reaches: the requesters that defer each other's REQUEST.
    let (code, v) = explore(&[
        "ricart-agrawala",
        "--nodes",
        "2",
        "--requests",
        "1",
        "--variant",
        "no-priority",
        "--walks",
        "1000",
    ]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["violation"]["property"], "every-request-served", "{v}");
    assert_eq!(v["violation"]["dead_end"], true, "{v}");
    let (code, v) = explore(&["ricart-agrawala", "--nodes", "2", "--requests", "1", "--walks", "1000"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["dead_ends"], 1000, "every walk ends in a dead end: {v}");
    assert_eq!(v["judged_at_dead_ends"], serde_json::json!(["every-request-served"]), "{v}");
    // A seed without walks is a mistake.
    let out = agora(&["explore", "bully", "--seed", "3"]);
    assert_eq!(out.status.code(), Some(2));
}

/// The market with the report's design, the ledger in the trader's memory: a buyer whose
/// election timer fires before the trader's answer arrives makes itself trader too, and its
/// buy takes effect in two books (4 steps, no fault needed). With the replicated ledger
/// (the default) nothing breaks within the same bounds and a crash.
#[test]
fn a_market_with_the_traders_own_books_trades_a_buy_twice_and_the_replicated_ledger_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("twice.json");
    let path = file.to_str().unwrap();
    let local = ["market", "--nodes", "3", "--buys", "1", "--ledger", "local", "--fifo", "--fires", "2"];
    let (code, v) = explore(&[&local[..], &["--schedule", path]].concat());
    assert_eq!(code, 1, "{v}");
    assert_eq!(violation(&v), ("trade-exactly-once", 4), "{v}");
    let trace = v["violation"]["trace"].to_string();
    assert!(trace.contains("deliver BUY") && trace.contains("NoAnswer"), "{trace}");
    // `agora sim` takes the same steps to the same violation.
    replays_to(&v, "trade-exactly-once");

    let replicated = ["market", "--nodes", "3", "--buys", "1", "--fifo", "--fires", "2", "--crashes", "1"];
    let (code, v) = explore(&[&replicated[..], &["--depth", "6"]].concat());
    assert_eq!(code, 0, "{v}");
    assert!(v["violation"].is_null(), "{v}");
    // Every state within 6 steps (about 51,000): the depth, not the state limit, ends it.
    assert_eq!((v["depth"].as_u64(), v["complete"].as_bool()), (Some(6), Some(false)), "{v}");
    assert!(v["unique"].as_u64() > Some(10_000), "{v}");
}

/// A search whose states are large stops at its memory bound rather than take the machine's
/// memory (the market with its defaults took 24 GB and was killed by the kernel before the
/// bound existed), and says which bound stopped it.
#[test]
fn a_search_stops_at_its_memory_bound_and_says_so() {
    let args = ["market", "--nodes", "3", "--buys", "1", "--fifo", "--depth", "40", "--max-memory-mb", "64"];
    // About 640 MB of states at the state limit: the memory bound comes first.
    let (code, v) = explore(&[&args[..], &["--max-states", "64000"]].concat());
    assert_eq!(code, 0, "{v}");
    assert!(v["violation"].is_null(), "{v}");
    assert_eq!((v["complete"].as_bool(), v["memory_limited"].as_bool()), (Some(false), Some(true)), "{v}");
    // Without the bound the same search goes on (here, until its state limit).
    let (code, v) = explore(&[&args[..8], &["--max-states", "20000"]].concat());
    assert_eq!(code, 0, "{v}");
    assert_eq!((v["unique"].as_u64(), v["memory_limited"].as_bool()), (Some(20_000), Some(false)), "{v}");
    let out = agora(&["explore", "market", "--max-memory-mb", "8"]);
    assert_eq!(out.status.code(), Some(2));
}
