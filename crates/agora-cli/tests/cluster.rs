//! `agora cluster` on this machine's Docker: a 3-replica Raft key-value store in containers,
//! written to over RESP at the containers' addresses, its leader's container killed
//! (SIGKILL), then every acknowledged write read back from the replicas left; and one broken by
//! `agora cluster nemesis` (kills, pauses, partitions) while clients record a history that
//! must be linearizable — and is not when the clients read stale values on purpose.
//!
//! The Docker tests run one at a time: they share the machine's cores and the image.
//!
//! The image holds the binary this test build made (with its libraries when it is linked
//! dynamically): no second build. Everything the test makes — containers, network, volumes,
//! the image if it was new — is removed at its end, also when it fails (`Cleanup`). Without
//! Docker the test prints a note and passes (CI checks that Docker runs: `.ci/run`).

use agora_cli::resp::{self, Reply};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_agora");

/// A guard against hanging forever, not a measure of speed: a busy machine may be slow.
const STUCK: Duration = Duration::from_secs(300);

fn agora(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("the agora binary runs")
}

fn docker_runs() -> bool {
    let ok = |program: &str, args: &[&str]| {
        Command::new(program).args(args).output().is_ok_and(|o| o.status.success())
    };
    ok("docker", &["info"]) && (ok("docker-compose", &["version"]) || ok("docker", &["compose", "version"]))
}

/// Docker tests waiting for their turn.
static WAITING: AtomicUsize = AtomicUsize::new(0);
/// The image a finished test built, left for the next to use and remove.
static LEFT_IMAGE: Mutex<Option<String>> = Mutex::new(None);

/// One Docker test at a time (a failed one leaves the lock usable).
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static DOCKER: Mutex<()> = Mutex::new(());
    WAITING.fetch_add(1, Ordering::SeqCst);
    let turn = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    WAITING.fetch_sub(1, Ordering::SeqCst);
    turn
}

/// Removes what the test made when it ends, however it ends.
struct Cleanup {
    dir: PathBuf,
    name: String,
    /// The image, if this test built it.
    image: Option<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let dir = self.dir.to_string_lossy().into_owned();
        let down = agora(&["cluster", "down", "--dir", &dir]);
        if !down.status.success() {
            eprintln!("cluster down: {}", String::from_utf8_lossy(&down.stderr));
        }
        // What `down` could not remove (it needs the files `up` wrote).
        let docker = |args: &[&str]| Command::new("docker").args(args).output().ok();
        let listed = |args: &[&str]| {
            docker(args)
                .map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().map(String::from).collect())
                .unwrap_or_else(Vec::new)
        };
        let ours = format!("label=agora.cluster={}", self.name);
        let project = format!("label=com.docker.compose.project={}", self.name);
        for id in listed(&["ps", "-aq", "--filter", &ours]) {
            docker(&["rm", "-f", "-v", &id]);
        }
        for id in listed(&["network", "ls", "-q", "--filter", &project]) {
            docker(&["network", "rm", &id]);
        }
        for id in listed(&["volume", "ls", "-q", "--filter", &project]) {
            docker(&["volume", "rm", "-f", &id]);
        }
        if let Some(image) = self.image.take() {
            if WAITING.load(Ordering::SeqCst) > 0 {
                // A test of this run waits for its turn: it uses the image, then removes it.
                *LEFT_IMAGE.lock().unwrap_or_else(|e| e.into_inner()) = Some(image);
            } else {
                // Refused while another run uses it: then that run removes it.
                docker(&["rmi", &image]);
            }
        }
        let _ = std::fs::remove_dir_all(self.dir.parent().expect("a parent"));
    }
}

/// One RESP connection with timeouts; `None` when the connection fails.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Option<Client> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        Some(Client { stream, buf: Vec::new() })
    }

    fn call(&mut self, args: &[&str]) -> Option<Reply> {
        let mut req = Vec::new();
        resp::encode_request(args, &mut req);
        self.stream.write_all(&req).ok()?;
        loop {
            if let Some((r, used)) = resp::parse_reply(&self.buf).expect("a well-formed reply") {
                self.buf.drain(..used);
                return Some(r);
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// A replica as `agora cluster status --json` shows it.
#[derive(Debug)]
struct Node {
    id: usize,
    container: String,
    /// Its RESP address, while its container has an address.
    resp: Option<SocketAddr>,
}

/// `agora cluster status --json`: every replica and the leader a majority follows.
fn status(dir: &Path) -> (Vec<Node>, Option<usize>) {
    let out = agora(&["cluster", "status", "--json", "--dir", &dir.to_string_lossy()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status --json prints JSON");
    let nodes = v["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .map(|c| Node {
            id: c["node"].as_u64().unwrap() as usize,
            container: c["id"].as_str().unwrap().to_string(),
            resp: c["ip"].as_str().map(|ip| SocketAddr::new(ip.parse().expect("an IP"), 6379)),
        })
        .collect();
    (nodes, v["leader"]["node"].as_u64().map(|n| n as usize))
}

/// Writes `keys`, each to one of `addrs` in turn until one acknowledges it; returns when
/// every key is acknowledged.
fn write_all(addrs: &[SocketAddr], keys: std::ops::Range<usize>) {
    let deadline = Instant::now() + STUCK;
    let mut client = None;
    let mut target = 0;
    for k in keys {
        let (key, value) = (format!("k{k}"), format!("v{k}"));
        loop {
            assert!(Instant::now() < deadline, "no replica acknowledged {key} in {STUCK:?}");
            if client.is_none() {
                client = Client::connect(addrs[target % addrs.len()]);
            }
            match client.as_mut().and_then(|c| c.call(&["SET", &key, &value])) {
                Some(Reply::Simple(ok)) if ok == "OK" => break,
                // No leader yet, or a connection to a dead replica: the next replica.
                _ => {
                    client = None;
                    target += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }
}

/// A 3-replica store started with `agora cluster up` in a new temporary folder, and the
/// guard that removes it.
fn up3(what: &str) -> (Cleanup, PathBuf) {
    let parent = tempfile::tempdir().unwrap().keep();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let name = format!("agora-{what}-{}-{nanos}", std::process::id());
    let dir = parent.join(&name);
    let mut cleanup = Cleanup { dir: dir.clone(), name, image: None };

    let up = agora(&["cluster", "up", "--system", "raft", "--nodes", "3", "--dir", &dir.to_string_lossy()]);
    let said = String::from_utf8_lossy(&up.stdout).into_owned();
    let err = String::from_utf8_lossy(&up.stderr);
    let image = said.split_whitespace().find(|w| w.starts_with("agora-node:")).map(String::from);
    let left = LEFT_IMAGE.lock().unwrap_or_else(|e| e.into_inner()).take();
    if err.contains("building the image") || (left.is_some() && left == image) {
        cleanup.image = image;
    } else if let Some(other) = left {
        let _ = Command::new("docker").args(["rmi", &other]).output();
    }
    assert!(up.status.success(), "cluster up: {said}{err}");
    assert!(said.contains("answering"), "{said}");
    // Started, the file no longer creates databases: a node recreated from it must find its own.
    let compose = std::fs::read_to_string(dir.join("docker-compose.yml")).unwrap();
    assert!(!compose.contains("--new"), "{compose}");
    (cleanup, dir)
}

#[test]
fn a_raft_cluster_in_containers_keeps_every_acknowledged_write_when_its_leader_is_killed() {
    if !docker_runs() {
        eprintln!("note: Docker (with Compose) does not run here; test skipped");
        return;
    }
    let _one = one_at_a_time();
    let (_cleanup, dir) = up3("test");

    let (nodes, leader) = status(&dir);
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    let leader = leader.expect("up returns once a majority follows a leader");
    let addrs: Vec<SocketAddr> =
        nodes.iter().map(|n| n.resp.expect("a running replica has an address")).collect();
    write_all(&addrs, 0..100);

    // SIGKILL: the leader gets no chance to say goodbye.
    let killed = &nodes.iter().find(|n| n.id == leader).expect("the leader's container").container;
    let kill = Command::new("docker").args(["kill", "--signal", "KILL", killed]).output().unwrap();
    assert!(kill.status.success(), "docker kill: {}", String::from_utf8_lossy(&kill.stderr));
    let left: Vec<SocketAddr> = nodes.iter().filter(|n| n.id != leader).map(|n| n.resp.unwrap()).collect();
    write_all(&left, 100..200);

    let (after, new_leader) = status(&dir);
    let new_leader = new_leader.expect("the two replicas left elect a leader");
    assert_ne!(new_leader, leader, "the killed replica cannot lead");
    assert!(
        after.iter().any(|n| n.id == leader && n.resp.is_none()),
        "the killed container has no address: {after:?}"
    );

    // Every acknowledged write, read back (GET goes through the read index) from each replica
    // left: a follower forwards to the new leader.
    for addr in &left {
        let mut c = Client::connect(*addr).expect("a replica left answers");
        for k in 0..200 {
            let got = c.call(&["GET", &format!("k{k}")]);
            assert_eq!(got, Some(Reply::Bulk(format!("v{k}").into_bytes())), "k{k} at {addr}");
        }
    }
}

/// `agora cluster nemesis ARGS --dir DIR --json`: its exit code and its JSON object.
fn nemesis(dir: &Path, args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let mut all = vec!["cluster", "nemesis", "--json"];
    let d = dir.to_string_lossy();
    all.extend(["--dir", &d]);
    all.extend_from_slice(args);
    let out = agora(&all);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "nemesis printed no JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), v)
}

/// The verdict of property `name`.
fn property(v: &serde_json::Value, name: &str) -> serde_json::Value {
    let props = v["properties"].as_array().expect("properties");
    props.iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("no property {name}: {v}"))["ok"]
        .clone()
}

#[test]
fn a_raft_cluster_in_containers_stays_linearizable_under_the_nemesis_and_stale_reads_are_caught() {
    if !docker_runs() {
        eprintln!("note: Docker (with Compose) does not run here; test skipped");
        return;
    }
    let _one = one_at_a_time();
    let (cleanup, dir) = up3("nemesis");
    let out = dir.parent().expect("a parent").join("out");
    let o = out.to_string_lossy().into_owned();

    // About 15 s of kills, pauses and partitions; seed 7 aims every fault at the leader.
    let args = [
        "--faults",
        "kill,pause,partition",
        "--for",
        "15s",
        "--interval-ms",
        "2500",
        "--quiet",
        "3s",
        "--seed",
        "7",
    ];
    let (code, v) = nemesis(&dir, &[&args[..], &["--out", &o]].concat());
    assert_eq!(code, Some(0), "{v:#}");
    assert_eq!(v["linearizable"], true, "{v:#}");
    for p in ["faults applied", "healed", "linearizable", "answering after healing"] {
        assert_eq!(property(&v, p), true, "{p}: {v:#}");
    }
    let faults = v["faults"].as_array().expect("faults");
    for kind in ["kill", "pause", "partition"] {
        assert!(faults.iter().any(|f| f["kind"] == kind), "no {kind}: {v:#}");
    }
    for f in faults {
        assert!(f["error"].is_null() && f["heal_error"].is_null(), "{f}");
        assert!(f["end_s"].as_f64() > f["start_s"].as_f64(), "{f}");
        assert!(!f["healed"].as_array().unwrap().is_empty(), "every fault left something to undo: {f}");
    }
    // The faults bit: operations went unanswered while they lasted, and cutting the leader
    // off made another replica lead.
    let unanswered: u64 =
        faults.iter().map(|f| f["fail"].as_u64().unwrap() + f["info"].as_u64().unwrap()).sum();
    assert!(unanswered > 0, "{v:#}");
    let cut_off = faults
        .iter()
        .find(|f| f["kind"] == "partition" && f["leader_found"] == true)
        .unwrap_or_else(|| panic!("seed 7 partitions the leader away: {v:#}"));
    assert_ne!(cut_off["leader_at_end"], cut_off["nodes"][0], "{cut_off}");
    assert!(cut_off["leader_at_end"].is_u64(), "the majority side elected a leader: {cut_off}");
    assert!(v["operations"]["ok"].as_u64().unwrap() > 100, "{v:#}");
    let svg = std::fs::read_to_string(out.join("timeline.svg")).expect("timeline.svg");
    assert!(svg.contains("<svg") && svg.contains("partition"), "the faults are drawn");
    let history = std::fs::read_to_string(out.join("history.jsonl")).expect("history.jsonl");
    assert!(history.lines().count() > 200, "{}", history.lines().count());

    // The same path judges a history of stale reads: the clients read from followers' own
    // state, which a partition keeps behind.
    let stale = [
        "--faults",
        "partition",
        "--for",
        "8s",
        "--interval-ms",
        "3000",
        "--quiet",
        "1s",
        "--seed",
        "2",
        "--keys",
        "4",
    ];
    let (code, v) = nemesis(&dir, &[&stale[..], &["--stale-reads"]].concat());
    assert_eq!(v["linearizable"], false, "{v:#}");
    assert_eq!(property(&v, "linearizable"), false, "{v:#}");
    assert_eq!(code, Some(1), "{v:#}");
    assert_eq!(property(&v, "healed"), true, "{v:#}");

    // Everything the test made goes with the guard.
    let name = cleanup.name.clone();
    drop(cleanup);
    let listed = |args: &[&str]| {
        let o = Command::new("docker").args(args).output().expect("docker runs");
        String::from_utf8_lossy(&o.stdout).split_whitespace().count()
    };
    assert_eq!(listed(&["ps", "-aq", "--filter", &format!("label=agora.cluster={name}")]), 0);
    let project = format!("label=com.docker.compose.project={name}");
    assert_eq!(listed(&["network", "ls", "-q", "--filter", &project]), 0);
    assert_eq!(listed(&["volume", "ls", "-q", "--filter", &project]), 0);
}

/// One line on stderr and exit code `code`, the line containing `says`.
fn refused(cmd: &mut Command, code: i32, says: &str) {
    let out = cmd.output().expect("the agora binary runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{cmd:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{cmd:?}: one line: {err}");
    assert!(err.contains(says), "{cmd:?}: {err}");
}

#[test]
fn mistakes_and_a_missing_docker_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let cmd = |args: &[&str]| {
        let mut c = Command::new(BIN);
        c.args(args);
        c
    };
    refused(&mut cmd(&["cluster", "up", "--system", "raft", "--nodes", "2"]), 2, "--nodes");
    refused(&mut cmd(&["cluster", "up", "--system", "paxos"]), 2, "paxos");
    refused(&mut cmd(&["cluster", "up", "--system", "raft", "--dir", &at("Kv 3")]), 2, "names the cluster");
    refused(&mut cmd(&["cluster", "status", "--dir", &at("none")]), 2, "no cluster was started there");
    refused(&mut cmd(&["cluster", "down", "--dir", &at("none")]), 2, "no cluster was started there");
    // No docker on the PATH: what a machine without Docker says.
    let mut no_docker = cmd(&["cluster", "up", "--system", "raft", "--dir", &at("kv3")]);
    no_docker.env("PATH", dir.path());
    refused(&mut no_docker, 2, "`docker` is not installed");
    refused(&mut cmd(&["health", "--resp", "no-such-host.invalid:6379"]), 2, "no-such-host.invalid");
    refused(&mut cmd(&["health"]), 2, "--resp");
    // A socket that accepts and never answers (held here: no port is probed): unhealthy once
    // the check's read times out, exit 1.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    refused(&mut cmd(&["health", "--metrics", &addr]), 1, "unhealthy");
    refused(&mut cmd(&["health", "--resp", &addr]), 1, "unhealthy");
}
