//! `agora run`, `agora node` and `agora up` end to end over loopback TCP.

mod common;

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The secret of the test cluster files.
const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn agora(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agora")).args(args).output().expect("the agora binary runs")
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

mod procs;

/// A cluster file for `agora up` at `dir/up.toml`: every address has port 0, so `up` binds
/// each node's socket on a port the kernel picks and hands it to the node.
fn cluster_file(dir: &Path, protocol: &str, params: &str, n: usize, idle_ms: u64) -> std::path::PathBuf {
    let mut text = format!(
        "cluster = \"test\"\nprotocol = \"{protocol}\"\nsecret = \"{SECRET}\"\ndata_dir = \"data\"\nidle_ms = {idle_ms}\nmax_time_ms = 60000\n[params]\n{params}\n"
    );
    for i in 0..n {
        text.push_str(&format!("[[node]]\nid = {i}\naddr = \"127.0.0.1:0\"\n"));
    }
    let path = dir.join("up.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn run_prints_the_same_summary_fields_as_sim() {
    let tcp = agora(&["run", "flood", "--nodes", "9", "--topology", "grid", "--json"]);
    assert_eq!(tcp.status.code(), Some(0), "{}", String::from_utf8_lossy(&tcp.stderr));
    let sim = agora(&["sim", "flood", "--nodes", "9", "--topology", "grid", "--json"]);
    let (tcp, sim) = (json_of(&tcp), json_of(&sim));
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&tcp), keys(&sim));
    assert_eq!(tcp["runtime"], "tcp");
    assert_eq!(tcp["trace_digest"], Value::Null);
    for k in ["messages_sent", "messages_delivered", "bytes_sent", "ops_completed"] {
        assert_eq!(tcp[k], sim[k], "{k}");
    }
    assert!(tcp["cpu_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(tcp["violations"].as_array().unwrap().len(), 0);
}

#[test]
fn run_reports_a_broken_variant() {
    let out =
        agora(&["run", "flood", "--nodes", "10", "--topology", "ring", "--variant", "no-relay", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json_of(&out)["violations"][0]["property"], "reachable-delivered");
}

#[test]
fn up_runs_every_node_as_a_process_and_state_survives_restarts() {
    // Idle time: a node with nothing to do yet must not stop before its peers have started
    // (the test runs beside others on a loaded machine).
    let dir = tempfile::tempdir().unwrap();
    let file = cluster_file(dir.path(), "flood", "topology = \"ring\"\norigin = 2", 5, 2_000);
    let first = agora(&["up", "--config", file.to_str().unwrap(), "--json"]);
    assert_eq!(first.status.code(), Some(0), "{}", String::from_utf8_lossy(&first.stderr));
    let v = json_of(&first);
    assert_eq!(v["nodes"], 5);
    assert_eq!(v["messages_sent"], 6);
    assert_eq!(v["messages_delivered"], 6);
    assert_eq!(v["ops_completed"], 1);
    assert!(v["latency_ms"]["max_ms"].as_f64().unwrap() > 0.0);
    for i in 0..5 {
        assert!(dir.path().join(format!("data/node-{i}.redb")).exists());
    }
    // Every node persisted its delivery: restarted, the origin does not broadcast again.
    let second = json_of(&agora(&["up", "--config", file.to_str().unwrap(), "--json"]));
    assert_eq!(second["messages_sent"], 0);
    assert_eq!(second["violations"].as_array().unwrap().len(), 0);
}

/// `agora up` on a Raft cluster ends when the whole cluster is idle, every node at once: a
/// replica stopping on its own while the others still heartbeat would look crashed to them, and
/// they would hold elections until `max_time_ms` instead of ending.
#[test]
fn up_stops_a_raft_cluster_together_once_every_node_is_idle() {
    let dir = tempfile::tempdir().unwrap();
    // 3 replicas and 2 clients of 30 operations each, with Raft's default 20 ms election
    // timeout, which a loaded machine makes a replica miss now and then.
    let file = cluster_file(dir.path(), "raft", "clients = 2\nmsgs = 30", 5, 300);
    let out = agora(&["up", "--config", file.to_str().unwrap(), "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let v = json_of(&out);
    // Every node reported and ended idle (any other end, such as `time-limit`, would be the
    // summary's).
    assert_eq!(v["end"], "idle", "{v}");
    assert_eq!(v["per_node"].as_array().unwrap().len(), 5, "{v}");
    assert_eq!(v["ops_begun"], 60, "{v}");
    assert_eq!(v["ops_completed"], 60, "{v}");
    assert_eq!(v["ops_unfinished"], 0, "{v}");
    assert_eq!(v["violations"].as_array().unwrap().len(), 0, "{v}");
    assert_eq!(v["not_judged"].as_array().unwrap().len(), 0, "{v}");
    let judged: Vec<&str> = v["properties"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    for p in ["election-safety", "state-machine-safety", "exactly-once", "acked-applied", "liveness"] {
        assert!(judged.contains(&p), "{p} not judged: {v}");
    }
    // The nodes' idle reports are `up`'s business: without --events they are not printed.
    assert!(!stderr.contains("\"idle\""), "{stderr}");
}

#[test]
fn a_single_node_runs_from_the_cluster_file() {
    let dir = tempfile::tempdir().unwrap();
    let head = "cluster = \"test\"\nprotocol = \"all-to-all\"\ndata_dir = \"data\"\nidle_ms = 1500\n";
    let mut c = procs::Cluster::new(dir.path(), head, 2);
    // The secret from a file, relative to the cluster file's folder.
    let text = std::fs::read_to_string(&c.config).unwrap();
    let secret = format!("secret = \"{}\"", "5e".repeat(32));
    std::fs::write(&c.config, text.replace(&secret, "secret_file = \"key.hex\"")).unwrap();
    std::fs::write(dir.path().join("key.hex"), format!("{}\n", "5e".repeat(32))).unwrap();
    c.start_node(1);
    let me = c.command(0).output().unwrap();
    assert_eq!(me.status.code(), Some(0), "{}", String::from_utf8_lossy(&me.stderr));
    let text = String::from_utf8(me.stdout).unwrap();
    assert!(text.contains("sent 1  delivered 1"), "{text}");
    assert!(text.contains("node 0 alone"));
    // Node 1's own results are not looked at: dropping the cluster stops it.
    drop(c);
}

#[test]
fn ctrl_c_stops_up_and_every_node_with_it() {
    let dir = tempfile::tempdir().unwrap();
    // Nodes would idle for a minute before stopping on their own.
    let file = cluster_file(dir.path(), "all-to-all", "", 3, 60_000);
    let mut up = Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(["up", "--config", file.to_str().unwrap(), "--json", "--events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The nodes' events come through `up`'s stderr: wait until every greeting was received.
    let stderr = std::io::BufReader::new(up.stderr.take().unwrap());
    let mut lines = std::io::BufRead::lines(stderr);
    let (mut greeted, mut pids) = (0, Vec::new());
    while greeted < 6 || pids.len() < 3 {
        let line = lines.next().expect("up's stderr ends only when up does").unwrap();
        let Some(event) = line.strip_prefix("event ") else { continue };
        let e: Value = serde_json::from_str(event).unwrap();
        greeted += e.get("obs").is_some() as usize;
        pids.extend(e["pid"].as_u64());
    }
    // SAFETY: sending SIGINT to our own child process.
    unsafe { libc::kill(up.id() as i32, libc::SIGINT) };
    let status = up.wait().unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(up.stdout.as_mut().unwrap(), &mut out).unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["end"], "interrupted");
    assert_eq!(v["messages_delivered"], 6, "the greetings were exchanged before the interrupt");
    assert!(status.code().is_some());
    // `up` waits for its nodes before it exits: none is left.
    let orphans: Vec<u64> =
        pids.into_iter().filter(|pid| Path::new(&format!("/proc/{pid}")).exists()).collect();
    assert!(orphans.is_empty(), "orphan node processes left: {orphans:?}");
}

#[test]
fn bad_cluster_files_and_flags_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "cluster = \"x\"\nprotocol = \"flood\"\n[[node]]\nid = 1\naddr = \"127.0.0.1:1\"\n")
        .unwrap();
    let unknown = dir.path().join("unknown.toml");
    std::fs::write(&unknown, "cluster = \"x\"\nprotocol = \"flood\"\nnodez = 3\n").unwrap();
    let badaddr = dir.path().join("addr.toml");
    std::fs::write(&badaddr, "cluster = \"x\"\nprotocol = \"flood\"\n[[node]]\nid = 0\naddr = \"nowhere\"\n")
        .unwrap();
    let node = "[[node]]\nid = 0\naddr = \"127.0.0.1:1\"\n";
    let secrets = [
        ("nosecret.toml", String::new()),
        ("badsecret.toml", "secret = \"xyz\"\n".to_string()),
        ("nofile.toml", "secret_file = \"absent.hex\"\n".to_string()),
        ("both.toml", format!("secret = \"{SECRET}\"\nsecret_file = \"absent.hex\"\n")),
    ]
    .map(|(name, secret)| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("cluster = \"x\"\nprotocol = \"flood\"\n{secret}{node}")).unwrap();
        path.to_str().unwrap().to_string()
    });
    let port0 = dir.path().join("port0.toml");
    std::fs::write(
        &port0,
        format!("cluster = \"x\"\nprotocol = \"flood\"\nsecret = \"{SECRET}\"\n[[node]]\nid = 0\naddr = \"127.0.0.1:0\"\n"),
    )
    .unwrap();
    let one = dir.path().join("one.toml");
    std::fs::write(&one, format!("cluster = \"x\"\nprotocol = \"flood\"\nsecret = \"{SECRET}\"\n[[node]]\nid = 0\naddr = \"127.0.0.1:1\"\n"))
        .unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["node", "--config", port0.to_str().unwrap(), "--id", "0"], "port 0 in the cluster file"),
        (
            vec!["node", "--config", one.to_str().unwrap(), "--id", "0", "--listen-fd", "999"],
            "--listen-fd 999: not an open file descriptor",
        ),
        (
            vec!["up", "--config", &secrets[0]],
            "no `secret`: every node must prove it holds the cluster's secret",
        ),
        (vec!["node", "--config", &secrets[0], "--id", "0"], "add a line such as secret = \""),
        (vec!["up", "--config", &secrets[1]], "secret: a secret is 64 hexadecimal digits"),
        (vec!["up", "--config", &secrets[2]], "cannot read secret_file"),
        (vec!["up", "--config", &secrets[3]], "not both"),
        (vec!["up", "--config", "/nonexistent.toml"], "cannot read cluster file"),
        (vec!["up", "--config", bad.to_str().unwrap()], "ids 0, 1, 2"),
        (vec!["up", "--config", unknown.to_str().unwrap()], "nodez"),
        (
            vec!["node", "--config", badaddr.to_str().unwrap(), "--id", "0"],
            "cannot resolve address `nowhere`",
        ),
        (vec!["node", "--config", bad.to_str().unwrap(), "--id", "7"], "ids 0, 1, 2"),
        (vec!["run", "paxos"], "unknown protocol"),
        (vec!["run", "flood", "--metrics-addr", "nonsense"], "--metrics-addr `nonsense`"),
        (vec!["run", "flood", "--max-time-ms", "0"], "--max-time-ms"),
    ];
    for (args, expected) in cases {
        common::assert_mistake(&args, expected);
    }
}

#[test]
fn what_a_node_persisted_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let head = "cluster = \"test\"\nprotocol = \"flood\"\ndata_dir = \"data\"\nidle_ms = 600000\n\
        [params]\ntopology = \"complete\"\n";
    let mut c = procs::Cluster::new(dir.path(), head, 3);
    c.start_all();
    // Once every node has delivered the flood, kill every node without warning.
    let mut delivered = std::collections::BTreeSet::new();
    c.until(|node, e| {
        if e["obs"].get("Delivered").is_some() {
            delivered.insert(node);
        }
        delivered.len() == 3
    });
    for id in 0..3 {
        c.kill(id);
    }
    drop(c);
    // Restarted on the same data, every node knows it delivered: nothing is sent again, and
    // the checker accepts the restored deliveries.
    let file = cluster_file(dir.path(), "flood", "topology = \"complete\"", 3, 300);
    let again = agora(&["up", "--config", file.to_str().unwrap(), "--json"]);
    let v = json_of(&again);
    assert_eq!(v["messages_sent"], 0, "{v}");
    assert_eq!(v["violations"].as_array().unwrap().len(), 0, "{v}");
}

/// `agora node` alone, on each node of a Raft cluster with clients: a client judges nothing it
/// cannot (its acknowledgements are checked against what the replicas applied, in `agora
/// up`), says so, and exits 0 once its operations are done.
#[test]
fn a_lone_raft_node_judges_only_what_it_can() {
    let dir = tempfile::tempdir().unwrap();
    let head =
        "cluster = \"test\"\nprotocol = \"raft\"\ndata_dir = \"data\"\nidle_ms = 500\nmax_time_ms = 60000\n\
                [params]\nclients = 1\nmsgs = 20\n";
    let c = procs::Cluster::new(dir.path(), head, 4);
    let spawn = |id: usize| c.command(id).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let nodes: Vec<_> = (0..4).map(spawn).collect();
    for (id, node) in nodes.into_iter().enumerate() {
        let out = node.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "node {id}: {text}{}", String::from_utf8_lossy(&out.stderr));
        assert!(!text.contains("VIOLATION"), "node {id}: {text}");
        assert!(text.contains("checks         none judged"), "node {id}: {text}");
        let line = text.lines().find(|l| l.starts_with("not judged")).unwrap_or_default();
        assert!(line.contains("acked-applied") && line.contains("(this node's observations alone"), "{text}");
        assert!(!text.contains("unfinished"), "node {id}: {text}");
    }
}

/// Mistakes a node process would find, found by `up` first or passed on by it: one line,
/// exit code 2.
#[test]
fn up_reports_set_up_mistakes_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let busy = dir.path().join("busy.toml");
    std::fs::write(
        &busy,
        format!(
            "cluster = \"c\"\nprotocol = \"flood\"\nsecret = \"{SECRET}\"\n[[node]]\nid = 0\naddr = \"127.0.0.1:{port}\"\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("file"), "not a directory").unwrap();
    let data_file = dir.path().join("datafile.toml");
    std::fs::write(
        &data_file,
        format!(
            "cluster = \"c\"\nprotocol = \"flood\"\nsecret = \"{SECRET}\"\ndata_dir = \"file\"\n[[node]]\nid = 0\naddr = \"127.0.0.1:0\"\n"
        ),
    )
    .unwrap();
    let cases = [(busy, "cannot listen on"), (data_file, "data directory")];
    for (file, expected) in cases {
        let out = agora(&["up", "--config", file.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(expected), "`{expected}` not in {stderr}");
    }
    // The same data directory mistake, found by the node process itself: one line, exit 2.
    let c =
        procs::Cluster::new(dir.path(), "cluster = \"c\"\nprotocol = \"flood\"\ndata_dir = \"file\"\n", 1);
    let out = c.command_as_is(0).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    drop(taken);
}

/// A cluster of `protocol` with a short time limit in which only node `me` will ever run: its
/// peers are at privileged ports where nothing listens.
fn short_cluster(dir: &Path, protocol: &str, params: &str, n: usize, me: usize) -> procs::Cluster {
    let head =
        format!("cluster = \"lone\"\nprotocol = \"{protocol}\"\nidle_ms = 100\nmax_time_ms = 1500\n[params]\n{params}\n");
    let c = procs::Cluster::new(dir, &head, n);
    let mut text = std::fs::read_to_string(&c.config).unwrap();
    for i in (0..n).filter(|&i| i != me) {
        let at = text.find(&format!("id = {i}\naddr = ")).unwrap();
        let line_end = at + text[at..].find("\"\n").unwrap() + 2;
        let line = text[at..line_end].to_string();
        text = text.replace(&line, &format!("id = {i}\naddr = \"127.0.0.1:{}\"\n", i + 1));
    }
    std::fs::write(&c.config, text).unwrap();
    c
}

/// A node whose peer never comes does not call itself idle (it would have stopped long before
/// a late peer started): it runs to its time limit and says what it did not judge.
#[test]
fn a_node_does_not_go_idle_before_its_peers_are_up() {
    let dir = tempfile::tempdir().unwrap();
    let c = short_cluster(dir.path(), "flood", "", 2, 0);
    let out = c.command(0).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("end            time-limit"), "{text}");
    assert!(text.contains("not judged"), "{text}");
}

/// A Raft client whose replicas never answer does not finish its operations: that is not a
/// clean run, whatever the checker could judge.
#[test]
fn a_client_that_finishes_nothing_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let c = short_cluster(dir.path(), "raft", "clients = 1\nmsgs = 20", 4, 3);
    let out = c.command(3).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("unfinished     20 operations begun and never completed"), "{text}");
    let out = c.command(3).arg("--json").output().unwrap();
    assert_eq!(json_of(&out)["end"], "time-limit");
}
