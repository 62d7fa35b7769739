//! `agora cluster` on this machine's Docker: a 3-replica Raft key-value store in containers,
//! written to over RESP at the containers' addresses, its leader's container killed
//! (SIGKILL), then every acknowledged write read back from the replicas left; and one broken by
//! `agora cluster nemesis` (kills, pauses, partitions, then a full disk and a wiped volume)
//! while clients record a history that must be linearizable — and is not when the clients
//! read stale values on purpose. And the
//! voting service, 3 servers in containers: members on the host invited, registered and
//! voting; a member whose process is stopped (SIGSTOP of the Python client of
//! examples/vote_client.py: its connection stays open, it says nothing) failed for the others
//! after the session timeout, one treated the same but not stopped not; then the leader's
//! container SIGKILLed, its member resuming elsewhere, and every acknowledged vote counted.
//! And the trading post, 3 peers in containers: its trader's container SIGKILLed, every trade
//! acknowledged before in the books of the peers left, and the market's checker judging the
//! history the peers logged; then the same market under the nemesis (kills, partitions).
//! The voting service under the nemesis, members on the host voting through kills, pauses,
//! partitions, one-way cuts, clean restarts and disconnections, every acknowledged vote
//! counted. And the multicast experiment, peers in
//! the regions of the latency model: every delivery no sooner than the model allows, and
//! the total order held.
//!
//! The Docker tests run one at a time: they share the machine's cores and the image.
//!
//! The image holds the binary this test build made (with its libraries when it is linked
//! dynamically): no second build. Everything the test makes — containers, network, volumes,
//! the image if it was new — is removed at its end, also when it fails (`Cleanup`). Without
//! Docker the test prints a note and passes (CI checks that Docker runs: `.ci/run`).

use agora_cli::resp::{self, Reply};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, MutexGuard};
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

/// This test's turn to use Docker, or `None` (a note printed) where Docker does not run.
fn docker_turn() -> Option<MutexGuard<'static, ()>> {
    if !docker_runs() {
        eprintln!("note: Docker (with Compose) does not run here; test skipped");
        return None;
    }
    Some(one_at_a_time())
}

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

/// A node as `agora cluster status --json` shows it.
#[derive(Debug)]
struct Node {
    id: usize,
    container: String,
    /// Its clients' address (RESP, or the voting service's members'), while its container has
    /// an address.
    addr: Option<SocketAddr>,
}

/// The RESP port of a key-value replica.
const RESP_PORT: u16 = 6379;
/// The members' port of a voting-service server.
const VOTE_PORT: u16 = 7400;

/// `agora cluster status --json`: every node, its clients' address at `port`, and the leader
/// (for the store, the one a majority follows; for the voting service, the one that says so).
fn status(dir: &Path, port: u16) -> (Vec<Node>, Option<usize>) {
    let out = agora(&["cluster", "status", "--json", "--dir", &dir.to_string_lossy()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status --json prints JSON");
    let nodes = v["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .map(|c| Node {
            id: c["node"].as_u64().unwrap() as usize,
            container: c["id"].as_str().unwrap().to_string(),
            addr: c["ip"].as_str().map(|ip| SocketAddr::new(ip.parse().expect("an IP"), port)),
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
    up(what, &["--system", "raft"])
}

/// A cluster of 3 started with `agora cluster up ARGS` in a new temporary folder, and the
/// guard that removes it.
fn up(what: &str, args: &[&str]) -> (Cleanup, PathBuf) {
    let (cleanup, dir, said) = cluster_up(what, args);
    // An election counts, is judged and ends: `up` does not wait for it to answer.
    assert!(said.contains("answering") || args.contains(&"election"), "{said}");
    // Started, the file no longer creates databases: a node recreated from it must find its own.
    let compose = std::fs::read_to_string(dir.join("docker-compose.yml")).unwrap();
    assert!(!compose.contains("--new"), "{compose}");
    (cleanup, dir)
}

/// `agora cluster up --nodes 3 ARGS` in a new temporary folder, which must succeed: the guard
/// that removes what it made, the folder, and what `up` printed.
fn cluster_up(what: &str, args: &[&str]) -> (Cleanup, PathBuf, String) {
    let (mut cleanup, dir) = cluster_dir(what);
    let d = dir.to_string_lossy().into_owned();
    let up = agora(&[&["cluster", "up", "--nodes", "3", "--dir", &d], args].concat());
    let said = String::from_utf8_lossy(&up.stdout).into_owned();
    let err = String::from_utf8_lossy(&up.stderr);
    adopt_image(&mut cleanup, &said, &err);
    assert!(up.status.success(), "cluster up: {said}{err}");
    (cleanup, dir, said)
}

/// A new folder for a cluster, and the guard that removes what will be made of it.
fn cluster_dir(what: &str) -> (Cleanup, PathBuf) {
    let parent = tempfile::tempdir().unwrap().keep();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let name = format!("agora-{what}-{}-{nanos}", std::process::id());
    let dir = parent.join(&name);
    (Cleanup { dir: dir.clone(), name, image: None }, dir)
}

/// The image `up` printed in `said` is removed by `cleanup` if `up` built it (or an earlier
/// test left it for this one); an image left by another test and not used is removed now.
fn adopt_image(cleanup: &mut Cleanup, said: &str, err: &str) {
    let image = said.split_whitespace().find(|w| w.starts_with("agora-node:")).map(String::from);
    let left = LEFT_IMAGE.lock().unwrap_or_else(|e| e.into_inner()).take();
    if err.contains("building the image") || (left.is_some() && left == image) {
        cleanup.image = image;
    } else if let Some(other) = left {
        let _ = Command::new("docker").args(["rmi", &other]).output();
    }
}

#[test]
fn a_raft_cluster_in_containers_keeps_every_acknowledged_write_when_its_leader_is_killed() {
    let Some(_one) = docker_turn() else { return };
    let (_cleanup, dir) = up3("test");

    let (nodes, leader) = status(&dir, RESP_PORT);
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    let leader = leader.expect("up returns once a majority follows a leader");
    let addrs: Vec<SocketAddr> =
        nodes.iter().map(|n| n.addr.expect("a running replica has an address")).collect();
    write_all(&addrs, 0..100);

    // SIGKILL: the leader gets no chance to say goodbye.
    let killed = &nodes.iter().find(|n| n.id == leader).expect("the leader's container").container;
    let kill = Command::new("docker").args(["kill", "--signal", "KILL", killed]).output().unwrap();
    assert!(kill.status.success(), "docker kill: {}", String::from_utf8_lossy(&kill.stderr));
    let left: Vec<SocketAddr> = nodes.iter().filter(|n| n.id != leader).map(|n| n.addr.unwrap()).collect();
    write_all(&left, 100..200);

    let (after, new_leader) = status(&dir, RESP_PORT);
    let new_leader = new_leader.expect("the two replicas left elect a leader");
    assert_ne!(new_leader, leader, "the killed replica cannot lead");
    assert!(
        after.iter().any(|n| n.id == leader && n.addr.is_none()),
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
    let Some(_one) = docker_turn() else { return };
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

    // Lost and full disks, on the same cluster: seed 1 fills the leader's disk, then wipes the
    // volume of the replica leading then. A wiped replica must refuse to start (it was not
    // told --new) and come back only as the nemesis rejoins it; one on a full disk must keep
    // running or stop saying why; no acknowledged operation may be lost, and every replica
    // must follow a leader again.
    let data =
        ["--faults", "wipe,disk", "--for", "10s", "--interval-ms", "3000", "--quiet", "3s", "--seed", "1"];
    let (code, v) = nemesis(&dir, &data);
    for p in
        ["faults applied", "healed", "linearizable", "answering after healing", "storage faults taken safely"]
    {
        assert_eq!(property(&v, p), true, "{p}: {v:#}");
    }
    assert_eq!(code, Some(0), "{v:#}");
    let faults = v["faults"].as_array().expect("faults");
    let seen = |kind: &str| -> Vec<String> {
        let f = faults.iter().find(|f| f["kind"] == kind).unwrap_or_else(|| panic!("no {kind}: {v:#}"));
        assert_eq!(f["leader_found"], true, "seed 1 aims the {kind} at the leader: {f}");
        f["seen"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
    };
    let wiped = seen("wipe");
    assert!(
        wiped.iter().any(|s| s.contains("refused its emptied volume") && s.contains("does not exist")),
        "{wiped:?}"
    );
    let full = seen("disk");
    assert!(full.iter().any(|s| s.contains("filled")), "{full:?}");
    let healed: Vec<&str> =
        faults.iter().flat_map(|f| f["healed"].as_array().unwrap()).filter_map(|h| h.as_str()).collect();
    assert!(healed.iter().any(|h| h.contains("rejoining")), "{healed:?}");
    assert!(healed.iter().any(|h| h.contains("data back on its volume")), "{healed:?}");

    // Clocks bent, on the same cluster: each replica hit reports its new clock before the
    // fault counts as applied, and is put back on real time; nothing acknowledged is lost.
    let clocks =
        ["--faults", "clock", "--for", "8s", "--interval-ms", "2000", "--quiet", "2s", "--seed", "3"];
    let (code, v) = nemesis(&dir, &clocks);
    for p in ["faults applied", "healed", "linearizable", "answering after healing"] {
        assert_eq!(property(&v, p), true, "{p}: {v:#}");
    }
    assert_eq!(code, Some(0), "{v:#}");
    let faults = v["faults"].as_array().expect("faults");
    assert!(faults.len() >= 2, "{v:#}");
    for f in faults {
        assert!(f["error"].is_null(), "{f}");
        let seen = f["seen"].as_array().unwrap();
        assert!(seen.iter().any(|s| s.as_str().unwrap().contains("'s clock ")), "{f}");
        let healed = f["healed"].as_array().unwrap();
        assert!(healed.iter().any(|h| h.as_str().unwrap().ends_with("'s clock on real time")), "{f}");
    }

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

/// A member of the voting service from the host, on the line protocol
/// (docs/vote-protocol.md): a reader thread hands over the server's lines, a pinger thread
/// keeps the session alive (`PING` every `PING_EVERY`, its `OK PING` replies dropped), so a
/// member that is slow to be asked something is not taken for a silent one.
struct Member {
    conn: Arc<Mutex<TcpStream>>,
    lines: Receiver<String>,
    /// Every `EVENT` received, as (number, the rest of the line).
    events: Vec<(u64, String)>,
    stop: Arc<AtomicBool>,
}

/// How often members say they are alive; the cluster's session timeout is `SESSION_MS`.
const PING_EVERY: Duration = Duration::from_millis(500);
const SESSION_MS: &str = "4000";

/// The lines of `from`, one by one, on a channel, until it closes.
fn line_reader(from: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(from)) {
            let Ok(line) = line else { break };
            if tx.send(line.trim_end_matches('\r').to_string()).is_err() {
                break;
            }
        }
    });
    rx
}

impl Member {
    /// A connection to `addr`, greeted.
    fn connect(addr: SocketAddr) -> Member {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("a server answers");
        let lines = line_reader(stream.try_clone().unwrap());
        let conn = Arc::new(Mutex::new(stream));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (conn.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                std::thread::sleep(PING_EVERY);
                let _ = c.lock().unwrap_or_else(|e| e.into_inner()).write_all(b"PING\n");
            }
        });
        let mut m = Member { conn, lines, events: Vec::new(), stop };
        let hello = m.line().expect("HELLO");
        assert!(hello.starts_with("HELLO agora-vote 1 "), "{hello}");
        m
    }

    /// The next line, `None` once the connection is gone.
    fn line(&mut self) -> Option<String> {
        self.lines.recv_timeout(STUCK).ok()
    }

    /// Keeps a pushed line; returns a reply (not a ping's).
    fn take(&mut self, l: String) -> Option<String> {
        if let Some(rest) = l.strip_prefix("EVENT ") {
            let (n, e) = rest.split_once(' ').expect("EVENT <n> ...");
            self.events.push((n.parse().expect("an event number"), e.to_string()));
            None
        } else if l == "OK PING" || l.starts_with('#') || l.starts_with("HELLO") || l.starts_with("GAP") {
            None
        } else {
            Some(l)
        }
    }

    /// Sends a command; its reply, `None` if the connection is gone.
    fn try_cmd(&mut self, line: &str) -> Option<String> {
        self.conn.lock().unwrap().write_all(format!("{line}\n").as_bytes()).ok()?;
        loop {
            let l = self.line()?;
            if let Some(r) = self.take(l) {
                return Some(r);
            }
        }
    }

    fn cmd(&mut self, line: &str) -> String {
        self.try_cmd(line).unwrap_or_else(|| panic!("{line}: the connection closed"))
    }

    /// Reads until an event equal to `want` has come (one already received counts).
    fn wait_event(&mut self, want: &str) {
        let deadline = Instant::now() + STUCK;
        while !self.events.iter().any(|(_, e)| e == want) {
            assert!(Instant::now() < deadline, "no {want} within {STUCK:?}: {:?}", self.events);
            let l = self.line().unwrap_or_else(|| panic!("the connection closed while waiting for {want}"));
            if let Some(r) = self.take(l) {
                panic!("a reply while waiting for {want}: {r}");
            }
        }
    }

    /// The latest event number seen.
    fn last_event(&self) -> u64 {
        self.events.last().map_or(0, |(n, _)| *n)
    }

    /// Goes on at `addr` with the session of `token` (`RESUME`), asking again while the
    /// cluster has no leader to answer; returns the reply.
    fn resume_at(&mut self, addr: SocketAddr, token: &str) -> String {
        let deadline = Instant::now() + STUCK;
        loop {
            let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("a server left");
            self.lines = line_reader(stream.try_clone().unwrap());
            *self.conn.lock().unwrap() = stream;
            let after = self.last_event();
            let r = self.try_cmd(&format!("RESUME {token} {after}"));
            match r {
                Some(r) if r.starts_with("OK RESUME ") => return r,
                Some(r) if r.starts_with("ERR unavailable") && Instant::now() < deadline => {}
                other => panic!("RESUME at {addr}: {other:?}"),
            }
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn field<'a>(reply: &'a str, key: &str) -> &'a str {
    reply
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key}= in {reply}"))
}

/// A member in a process of its own: the Python client of the protocol
/// (examples/vote_client.py, interactive), logged in; this test writes `PING` to its stdin
/// every `PING_EVERY` and reads what it prints. Killed when dropped.
struct PyMember {
    child: std::process::Child,
    lines: Receiver<String>,
    printed: Vec<String>,
    pin: String,
    stop: Arc<AtomicBool>,
}

impl PyMember {
    fn start(addr: SocketAddr, name: &str) -> PyMember {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/vote_client.py");
        let mut child = Command::new("python3")
            .arg("-u")
            .arg(script)
            .args(["--server", &addr.to_string(), "--name", name, "--password", &format!("pw-{name}")])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("python3 runs");
        let lines = line_reader(child.stdout.take().unwrap());
        let mut stdin = child.stdin.take().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) && stdin.write_all(b"PING\n").is_ok() {
                std::thread::sleep(PING_EVERY);
            }
        });
        let mut m = PyMember { child, lines, printed: Vec::new(), pin: String::new(), stop };
        m.wait_for(|l| l.starts_with("OK LOGIN ") || l.starts_with("ERR "));
        let login = m.printed.iter().find(|l| l.starts_with("OK LOGIN ")).expect("logged in").clone();
        m.pin = field(&login, "pin").to_string();
        m
    }

    /// Reads what it prints until a line satisfies `want` (one already printed counts).
    fn wait_for(&mut self, want: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + STUCK;
        while !self.printed.iter().any(|l| want(l)) {
            assert!(Instant::now() < deadline, "not printed within {STUCK:?}: {:?}", self.printed);
            let l = self.lines.recv_timeout(STUCK).expect("the Python member prints on");
            self.printed.push(l);
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let r = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(r, 0, "kill({sig}): {}", std::io::Error::last_os_error());
    }
}

impl Drop for PyMember {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The event of an `EVENT <n> ...` line, without its number.
fn event_of(line: &str) -> Option<&str> {
    Some(line.strip_prefix("EVENT ")?.split_once(' ')?.1)
}

/// The option each member votes for.
const LETTERS: [&str; 3] = ["A", "B", "C"];

/// Member `k % 3` opens question `k` with three options; member `i` votes for option `i`,
/// each vote acknowledged as a first vote and recorded in `acked`.
fn vote_round(ms: &mut [Member], acked: &mut Vec<(String, usize)>, k: usize) {
    let q = field(&ms[k % 3].cmd(&format!("OPEN question {k} | red | green | blue")), "question").to_string();
    for (i, m) in ms.iter_mut().enumerate() {
        let r = m.cmd(&format!("VOTE {q} {}", LETTERS[i]));
        assert!(r.starts_with("OK VOTE ") && r.contains("again=no"), "m{i} on {q}: {r}");
        acked.push((q.clone(), i));
    }
}

#[test]
fn a_vote_cluster_in_containers_fails_a_paused_member_and_keeps_every_vote_when_its_leader_is_killed() {
    let Some(_one) = docker_turn() else { return };
    let python = Command::new("python3").arg("--version").output().is_ok_and(|o| o.status.success());
    let (mut cleanup, dir) = up("vote", &["--system", "vote", "--session-timeout-ms", SESSION_MS]);
    let (nodes, leader) = status(&dir, VOTE_PORT);
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    let leader = leader.expect("up returns once a server leads");
    let addrs: Vec<SocketAddr> =
        nodes.iter().map(|n| n.addr.expect("a running server has an address")).collect();
    let config = dir.join("cluster.toml");
    let token = agora(&["vote", "admin-token", "--config", &config.to_string_lossy()]);
    assert!(token.status.success(), "{}", String::from_utf8_lossy(&token.stderr));
    let token = String::from_utf8(token.stdout).unwrap().trim().to_string();

    // The administrator invites; each member registers with its invitation and logs in, the
    // member m<i> at server i.
    let mut admin = Member::connect(addrs[0]);
    assert_eq!(admin.cmd(&format!("ADMIN {token}")), "OK ADMIN");
    let names = ["m0", "m1", "m2", "paused", "live"];
    for name in names {
        let invite = admin.cmd("INVITE");
        let mut m = Member::connect(addrs[1]);
        let r = m.cmd(&format!("REGISTER {} {name} pw-{name}", field(&invite, "token")));
        assert!(r.starts_with("OK REGISTER pin="), "{name}: {r}");
    }
    let mut ms: Vec<Member> = (0..3).map(|i| Member::connect(addrs[i])).collect();
    let mut sessions = Vec::new();
    for (i, m) in ms.iter_mut().enumerate() {
        let r = m.cmd(&format!("LOGIN m{i} pw-m{i}"));
        assert!(r.starts_with("OK LOGIN "), "m{i}: {r}");
        sessions.push((field(&r, "pin").to_string(), field(&r, "token").to_string()));
    }

    // Questions, each voted on by every member, one option each: no consensus closes them.
    let mut acked: Vec<(String, usize)> = Vec::new();
    for k in 0..4 {
        vote_round(&mut ms, &mut acked, k);
    }

    // A member whose process stops (SIGSTOP: its connection stays open, it says nothing) is
    // failed for every other member once its session times out; one treated the same but
    // not stopped is not.
    if python {
        let paused = PyMember::start(addrs[(leader + 1) % 3], "paused");
        let mut live = PyMember::start(addrs[(leader + 2) % 3], "live");
        for m in ms.iter_mut() {
            m.wait_event(&format!("JOIN {} paused", paused.pin));
            m.wait_event(&format!("JOIN {} live", live.pin));
        }
        paused.signal(libc::SIGSTOP);
        let failed = format!("FAIL {}", paused.pin);
        for m in ms.iter_mut() {
            m.wait_event(&failed);
        }
        live.wait_for(|l| event_of(l) == Some(&failed));
        paused.signal(libc::SIGCONT);
        for (i, m) in ms.iter().enumerate() {
            let fails: Vec<_> = m.events.iter().filter(|(_, e)| e.starts_with("FAIL ")).collect();
            assert_eq!(fails.len(), 1, "m{i} saw only the paused member fail: {fails:?}");
        }
    } else {
        eprintln!("note: python3 is not installed; the paused member was not run");
    }

    // SIGKILL of the leader's container: its member resumes its session on another server.
    let killed = &nodes.iter().find(|n| n.id == leader).expect("the leader's container").container;
    let kill = Command::new("docker").args(["kill", "--signal", "KILL", killed]).output().unwrap();
    assert!(kill.status.success(), "docker kill: {}", String::from_utf8_lossy(&kill.stderr));
    let elsewhere = addrs[(leader + 1) % 3];
    let r = ms[leader].resume_at(elsewhere, &sessions[leader].1);
    assert_eq!(field(&r, "pin"), sessions[leader].0, "the same member: {r}");

    // Every vote acknowledged before the kill is still there (the same vote again is
    // acknowledged again), voting goes on, and the counts are exactly the acknowledged votes.
    for (q, i) in &acked {
        let r = ms[*i].cmd(&format!("VOTE {q} {}", LETTERS[*i]));
        assert!(r.starts_with("OK VOTE ") && r.contains("again=yes"), "m{i} on {q} after the kill: {r}");
    }
    for k in 4..6 {
        vote_round(&mut ms, &mut acked, k);
    }
    let questions: std::collections::BTreeSet<&String> = acked.iter().map(|(q, _)| q).collect();
    assert_eq!(questions.len(), 6);
    for q in questions {
        let r = ms[(leader + 2) % 3].cmd(&format!("STATS {q}"));
        let v: serde_json::Value =
            serde_json::from_str(r.strip_prefix("OK STATS ").expect("OK STATS")).unwrap();
        assert_eq!(v["votes"], 3, "{q}: {v}");
        let options = v["options"].as_array().unwrap();
        assert!(options.len() == 3 && options.iter().all(|o| o["votes"] == 1), "{q}: {v}");
    }
    for (i, m) in ms.iter().enumerate() {
        let fails = m.events.iter().filter(|(_, e)| e.starts_with("FAIL ")).count();
        assert_eq!(fails, usize::from(python), "m{i}: no member but the paused one failed: {:?}", m.events);
    }

    let (after, new_leader) = status(&dir, VOTE_PORT);
    let new_leader = new_leader.expect("the two servers left elect a leader");
    assert_ne!(new_leader, leader, "the killed server cannot lead");
    assert!(after.iter().any(|n| n.id == leader && n.addr.is_none()), "{after:?}");

    // The live view of this cluster (`agora cluster ui`) shows the members and questions the
    // servers' boards hold (`BOARD`, with the administrator token): the six questions, three
    // votes each, one per option; and the server that leads now.
    let view = LiveView::attach(&dir);
    let s = snapshot_until(&view.addr, "the six questions and the leader", |s| {
        s["system"]["questions"].as_array().is_some_and(|q| q.len() == 6) && s["lead"]["id"].is_u64()
    });
    assert_eq!(s["lead"]["id"].as_u64(), Some(new_leader as u64), "{s}");
    for q in s["system"]["questions"].as_array().unwrap() {
        assert_eq!(q["votes"], 3, "{q}");
        assert!(q["options"].as_array().unwrap().iter().all(|o| o["votes"] == 1), "{q}");
    }
    assert_eq!(s["system"]["rows"].as_array().map(Vec::len), Some(18), "a row per option: {s}");
    let (code, said, err) = view.interrupt(&mut cleanup);
    assert_eq!(code, Some(0), "{said}{err}");
}

#[test]
fn a_vote_cluster_in_containers_counts_every_acknowledged_vote_under_the_nemesis() {
    let Some(_one) = docker_turn() else { return };
    let (_cleanup, dir) = up("vnemesis", &["--system", "vote", "--session-timeout-ms", SESSION_MS]);
    // About 15 s of every fault the nemesis has for a voting service, each once: seed 6 aims
    // the partition, the kill, the one-way cut and the clean restart at the leader, then
    // pauses and disconnects n1. Four members vote from this machine; the last falls silent
    // about 4 s in.
    let faults = ["kill", "pause", "partition", "cut", "restart", "disconnect"];
    let list = faults.join(",");
    let args = ["--faults", &list, "--for", "15s", "--interval-ms", "1500", "--quiet", "3s", "--seed", "6"];
    let (code, v) = nemesis(&dir, &args);
    for p in [
        "faults applied",
        "healed",
        "members-did-their-part",
        "acked-votes-counted-once",
        "one-consensus",
        "same-event-order",
        "fail-of-the-silent-member",
        "answering after healing",
    ] {
        assert_eq!(property(&v, p), true, "{p}: {v:#}");
    }
    assert_eq!(code, Some(0), "{v:#}");
    let ran = v["faults"].as_array().expect("faults");
    for kind in faults {
        assert!(ran.iter().any(|f| f["kind"] == kind && f["error"].is_null()), "no {kind}: {v:#}");
    }
    for f in ran {
        assert!(f["heal_error"].is_null(), "{f}");
        assert!(!f["healed"].as_array().unwrap().is_empty(), "every fault left something to undo: {f}");
    }
    for kind in ["cut", "restart"] {
        let hit = ran.iter().any(|f| f["kind"] == kind && f["leader_found"] == true);
        assert!(hit, "seed 6 aims the {kind} at the leader: {v:#}");
    }
    assert!(v["votes"]["answered"].as_u64() > Some(0), "{v:#}");
    assert!(v["members"]["questions"].as_u64() > Some(0), "{v:#}");
}

/// `agora cluster status --json` of a market, and its exit code.
fn market_status(dir: &Path) -> (Option<i32>, serde_json::Value) {
    let out = agora(&["cluster", "status", "--json", "--dir", &dir.to_string_lossy()]);
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("status printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), v)
}

/// Asks `agora cluster status` until `done` holds of its JSON; that JSON.
fn market_until(dir: &Path, what: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + STUCK;
    loop {
        let (_, v) = market_status(dir);
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {STUCK:?}: {v}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The observations container `id` logged (`--events`), every run's.
fn logged(id: &str) -> Vec<serde_json::Value> {
    let out = Command::new("docker").args(["logs", id]).output().expect("docker logs runs");
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l.strip_prefix("event ")?).ok())
        .filter_map(|e| e.get("obs").cloned())
        .collect()
}

/// The buys a peer's log says it was answered: `(buyer, seq) -> answer`.
fn answers(node: u64, obs: &[serde_json::Value]) -> BTreeMap<(u64, u64), serde_json::Value> {
    obs.iter()
        .filter_map(|o| o.get("Answered"))
        .map(|a| ((node, a["seq"].as_u64().unwrap()), a["result"].clone()))
        .collect()
}

/// The trades a ledger replica's log says it applied: `(buyer, seq) -> answer`.
fn applied(obs: &[serde_json::Value]) -> BTreeMap<(u64, u64), serde_json::Value> {
    obs.iter()
        .filter_map(|o| o["Applied"]["note"]["event"].get("Trade"))
        .map(|t| {
            ((t["buy"]["buyer"].as_u64().unwrap(), t["buy"]["seq"].as_u64().unwrap()), t["answer"].clone())
        })
        .collect()
}

fn answered(v: &serde_json::Value) -> u64 {
    v["answered"].as_u64().expect("answered")
}

fn trader(v: &serde_json::Value) -> Option<u64> {
    v["trader"]["node"].as_u64()
}

/// The containers of a market's status, by node.
fn market_containers(v: &serde_json::Value) -> Vec<String> {
    v["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_market_in_containers_loses_no_acknowledged_trade_when_its_traders_container_is_killed() {
    let Some(_one) = docker_turn() else { return };
    // 3 peers, each a replica of the books: peer 0 buys, peers 1 and 2 sell; peer 2 trades.
    let (_cleanup, dir) = up("market", &["--system", "market"]);
    let v = market_until(&dir, "trading", |v| answered(v) >= 20);
    let killed = trader(&v).expect("a trader");
    let containers = market_containers(&v);

    // SIGKILL: the trader gets no chance to hand anything on.
    let kill = Command::new("docker")
        .args(["kill", "--signal", "KILL", &containers[killed as usize]])
        .output()
        .unwrap();
    assert!(kill.status.success(), "docker kill: {}", String::from_utf8_lossy(&kill.stderr));
    // What the buyer was answered up to the kill (it may take more answers meanwhile: those
    // are checked too, below).
    let acked = answers(0, &logged(&containers[0]));
    assert!(acked.len() >= 20, "{acked:?}");
    let before = answered(&v);
    market_until(&dir, "another trader", |v| {
        trader(v).is_some_and(|t| t != killed) && answered(v) >= before + 20
    });

    // Restarted, the killed peer takes its post back and trading goes on.
    let start = Command::new("docker").args(["start", &containers[killed as usize]]).output().unwrap();
    assert!(start.status.success(), "docker start: {}", String::from_utf8_lossy(&start.stderr));
    let v = market_status(&dir).1;
    let before = answered(&v);
    market_until(&dir, "the restarted peer trading", |v| {
        let runs = &v["runs"][killed as usize]["runs"];
        trader(v) == Some(killed) && runs == 2 && answered(v) >= before + 20
    });

    // No acknowledged trade lost: every answer the buyer took before the kill is a trade in the
    // books of each peer that was not killed, with the same answer.
    for (node, c) in containers.iter().enumerate().filter(|(n, _)| *n as u64 != killed) {
        let books = applied(&logged(c));
        for (req, answer) in &acked {
            assert_eq!(books.get(req), Some(answer), "node {node}: buy {req:?} acknowledged before the kill");
        }
    }
    // And the market's checker, on every peer's history (the killed run's included), finds every
    // property it judges held.
    let (code, v) = market_status(&dir);
    let checks = &v["checks"];
    assert_eq!(checks["violations"].as_array().map(Vec::len), Some(0), "{checks:#}");
    for p in [
        "trade-exactly-once",
        "no-negative-stock",
        "goods-conserved",
        "money-conserved",
        "one-trader-per-term",
    ] {
        assert!(
            checks["properties"].as_array().unwrap().iter().any(|q| q == p),
            "{p} not judged: {checks:#}"
        );
    }
    assert_eq!(code, Some(0), "{v:#}");

    // A peer whose volume is emptied under its container is refused when started again, with
    // a line naming its database: it never comes back as an empty peer.
    refuses_its_emptied_volume(&containers[0], 0);
}

/// Kills container `id` (node `node`), empties its data volume and starts it: it must stop
/// with a line naming its missing database.
fn refuses_its_emptied_volume(id: &str, node: u32) {
    let format = "{{range .Mounts}}{{if eq .Destination \"/data\"}}{{.Source}}{{end}}{{end}}";
    let dir = docker(&["inspect", "--format", format, id]).expect("docker inspect");
    let dir = Path::new(dir.trim());
    docker(&["kill", "--signal", "KILL", id]).expect("docker kill");
    wait_until_stopped(id);
    let emptied = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in emptied {
        let path = entry.unwrap().path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
    }
    docker(&["start", id]).expect("docker start");
    wait_until_stopped(id);
    let out = Command::new("docker").args(["logs", "--tail", "3", id]).output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    let db = format!("node-{node}.redb");
    assert!(said.contains(&db) && said.contains("does not exist"), "no refusal naming {db}: {said}");
}

/// Waits until container `id` has stopped (running `false`), within `STUCK`.
fn wait_until_stopped(id: &str) {
    let deadline = Instant::now() + STUCK;
    while docker(&["inspect", "--format", "{{.State.Running}}", id]).expect("docker inspect").trim()
        != "false"
    {
        assert!(Instant::now() < deadline, "container {id} still runs after {STUCK:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_market_in_containers_keeps_its_books_under_the_nemesis() {
    let Some(_one) = docker_turn() else { return };
    let (_cleanup, dir) = up("mnemesis", &["--system", "market"]);
    // About 12 s of kills and partitions; seed 7 aims faults at the trader.
    let args: Vec<&str> =
        "--faults kill,partition --for 12s --interval-ms 2500 --quiet 3s --seed 7".split(' ').collect();
    let (code, v) = nemesis(&dir, &args);
    for p in ["faults applied", "healed", "trade-exactly-once", "no-negative-stock", "trading after healing"]
    {
        assert_eq!(property(&v, p), true, "{p}: {v:#}");
    }
    assert_eq!(code, Some(0), "{v:#}");
    let faults = v["faults"].as_array().expect("faults");
    for kind in ["kill", "partition"] {
        assert!(faults.iter().any(|f| f["kind"] == kind && f["error"].is_null()), "no {kind}: {v:#}");
    }
    assert!(faults.iter().any(|f| f["leader_found"] == true), "no fault hit the trader: {v:#}");
    assert!(v["buys"]["answered"].as_u64() > Some(0), "{v:#}");
}

#[test]
fn an_election_in_containers_loses_no_acknowledged_ballot_when_its_leader_is_partitioned_and_killed() {
    let Some(_one) = docker_turn() else { return };
    // 15 containers: 3 legislators, 2 coordinators, 5 regions, 5 citizens' nodes; enough
    // voters that the count outlasts the faults (it closes 60 s after it starts at the latest).
    let (_cleanup, dir) = up("enemesis", &["--system", "election", "--voters", "100000"]);
    // Seed 23 partitions the legislature's leader away from every other node (1.25 s to 4.6 s),
    // then SIGKILLs the leader of then (6.5 s to 9.3 s), each healed; the count goes on to its end.
    let args: Vec<&str> =
        "--faults kill,partition --for 10s --interval-ms 2500 --seed 23".split(' ').collect();
    let (code, v) = nemesis(&dir, &args);
    let faults = v["faults"].as_array().expect("faults");
    for kind in ["partition", "kill"] {
        let f = faults
            .iter()
            .find(|f| f["kind"] == kind)
            .unwrap_or_else(|| panic!("seed 23 has a {kind}: {v:#}"));
        assert!(f["error"].is_null() && f["heal_error"].is_null(), "{f}");
        assert_eq!(f["leader_found"], true, "the {kind} hit the legislature's leader: {f}");
        assert!(f["nodes"][0].as_u64() < Some(3), "a legislator: {f}");
    }
    let cut_off = faults.iter().find(|f| f["kind"] == "partition").unwrap();
    assert!(cut_off["leader_at_end"].is_u64(), "the majority side elected a leader: {cut_off}");
    assert_ne!(cut_off["leader_at_end"], cut_off["nodes"][0], "{cut_off}");
    // Every property held: the election's checker's, judged on the history every node logged
    // (the killed run's too) and, since the election ended, at its end; Raft's among them.
    for p in v["properties"].as_array().expect("properties") {
        assert_eq!(p["ok"], true, "{p}: {v:#}");
    }
    for p in [
        "faults applied",
        "healed",
        "election-safety",
        "durable-log",
        "counted-once",
        "receipt-counted",
        "verification",
        "replicas-agree",
        "results-everywhere",
        "election ended",
        "acknowledged ballots counted",
    ] {
        assert_eq!(property(&v, p), true, "{p}: {v:#}");
    }
    assert_eq!(v["not_judged"].as_array().map(Vec::len), Some(0), "{v:#}");
    assert_eq!(code, Some(0), "{v:#}");
    // No acknowledged ballot lost: every receipt a citizen took is a ballot of the tally.
    let receipts = &v["receipts"];
    assert_eq!(receipts["missing"], 0, "{v:#}");
    assert!(receipts["voters"].as_u64() > Some(1000), "{v:#}");
    assert!(receipts["tallied"].as_u64() >= receipts["voters"].as_u64(), "{v:#}");
    assert!(v["ballots"]["answered"].as_u64() > Some(1000), "{v:#}");
}

/// `docker ARGS`: its stdout, or why it failed.
/// Every observation container `id` logged (`--events`), with its time (Unix ns).
fn timed(id: &str) -> Vec<(u64, serde_json::Value)> {
    let out = Command::new("docker").args(["logs", id]).output().expect("docker logs runs");
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l.strip_prefix("event ")?).ok())
        .filter_map(|e| Some((e["at"].as_u64()?, e.get("obs")?.clone())))
        .collect()
}

#[test]
fn a_multicast_in_containers_takes_the_region_models_latency_and_keeps_its_total_order() {
    let Some(_one) = docker_turn() else { return };
    // 3 peers, in us-east-1, us-west-1 and eu-west-1 of the model, 10 messages each.
    let args = ["--system", "multicast", "--order", "total-lamport", "--msgs", "10"];
    let (_cleanup, dir, said) = cluster_up("mcast", &args);
    assert!(said.contains("started"), "{said}");
    market_until(&dir, "every peer ended", |v| v["ended"] == true);
    let (code, v) = market_status(&dir);
    assert_eq!(code, Some(0), "{v:#}");

    // The checker judged the whole run: every property, none violated, none left unjudged.
    let checks = &v["checks"];
    for p in ["exactly-once", "total-order", "all-delivered"] {
        assert!(
            checks["properties"].as_array().unwrap().iter().any(|q| q == p),
            "{p} not judged: {checks:#}"
        );
    }
    assert_eq!(checks["violations"].as_array().map(Vec::len), Some(0), "{checks:#}");
    assert_eq!(checks["not_judged"].as_array().map(Vec::len), Some(0), "{checks:#}");
    assert_eq!(v["latency_applied"], true, "{v:#}");

    // The latency, measured here from the peers' own logs: no message of a peer reached
    // another sooner than the model's latency between their regions allows (the least of the
    // direct link and the path through the third region). On the bridge without the model a
    // delivery takes a few ms; the model's least here is 36 ms.
    let text = std::fs::read_to_string(dir.join("cluster.toml")).unwrap();
    let file: toml::Table = toml::from_str(&text).unwrap();
    let names: Vec<&str> =
        file["regions"]["names"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    let model: Vec<Vec<f64>> = file["regions"]["latency_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row.as_array().unwrap().iter().map(|ms| ms.as_float().unwrap()).collect())
        .collect();
    let nodes = file["node"].as_array().unwrap();
    let region: Vec<usize> =
        nodes.iter().map(|n| names.iter().position(|r| Some(*r) == n["region"].as_str()).unwrap()).collect();
    assert_eq!(region, [0, 1, 2], "three peers, three regions");
    let least = |a: usize, b: usize| {
        let via = 3 - a - b;
        model[region[a]][region[b]].min(model[region[a]][region[via]] + model[region[via]][region[b]])
    };
    let logs: Vec<Vec<(u64, serde_json::Value)>> = market_containers(&v).iter().map(|c| timed(c)).collect();
    let id = |o: &serde_json::Value| (o["id"]["origin"].as_u64().unwrap(), o["id"]["seq"].as_u64().unwrap());
    let sent: BTreeMap<(u64, u64), u64> =
        logs.iter().flatten().filter_map(|(at, o)| Some((id(o.get("Multicast")?), *at))).collect();
    assert_eq!(sent.len(), 30, "10 multicasts of each peer");
    let mut measured = 0;
    for (node, log) in logs.iter().enumerate() {
        for (at, o) in log {
            let Some(d) = o.get("Delivered") else { continue };
            let (origin, seq) = id(d);
            if origin as usize == node {
                continue;
            }
            let took_ms = (at - sent[&(origin, seq)]) as f64 / 1e6;
            let bound = least(origin as usize, node);
            assert!(bound >= 36.0, "{bound}");
            assert!(
                took_ms >= bound,
                "{origin}/{seq} reached node {node} in {took_ms} ms; the model's least is {bound} ms"
            );
            measured += 1;
        }
    }
    assert_eq!(measured, 60, "every message delivered at both other peers");
    // The deliveries of every peer, in the same order.
    let order = |log: &[(u64, serde_json::Value)]| -> Vec<(u64, u64)> {
        log.iter().filter_map(|(_, o)| Some(id(o.get("Delivered")?))).collect()
    };
    assert_eq!(order(&logs[0]), order(&logs[1]));
    assert_eq!(order(&logs[0]), order(&logs[2]));
    assert_eq!(order(&logs[0]).len(), 30);
}

fn docker(args: &[&str]) -> Result<String, String> {
    let o = Command::new("docker").args(args).output().map_err(|e| e.to_string())?;
    if o.status.success() {
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    } else {
        Err(format!("docker {}: {}", args.join(" "), String::from_utf8_lossy(&o.stderr).trim()))
    }
}

/// Removes a stack and what it left (its tasks' containers, volumes and network go
/// asynchronously), and leaves the swarm if the test made it: however the test ends.
struct Stack {
    name: String,
    /// The test ran `docker swarm init`: the machine was in no swarm before.
    left_swarm: bool,
}

impl Drop for Stack {
    fn drop(&mut self) {
        // The relay `status` started holds the stack's network: it goes first.
        let _ = docker(&["rm", "-f", &format!("{}-relay", self.name)]);
        let _ = docker(&["stack", "rm", &self.name]);
        let ns = format!("label=com.docker.stack.namespace={}", self.name);
        let listed = |args: &[&str]| -> Vec<String> {
            docker(args).map(|o| o.split_whitespace().map(String::from).collect()).unwrap_or_default()
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline
            && !(listed(&["ps", "-aq", "--filter", &ns]).is_empty()
                && listed(&["network", "ls", "-q", "--filter", &ns]).is_empty())
        {
            std::thread::sleep(Duration::from_millis(250));
        }
        for id in listed(&["ps", "-aq", "--filter", &ns]) {
            let _ = docker(&["rm", "-f", "-v", &id]);
        }
        for id in listed(&["volume", "ls", "-q", "--filter", &ns]) {
            let _ = docker(&["volume", "rm", "-f", &id]);
        }
        if self.left_swarm {
            if let Err(e) = docker(&["swarm", "leave", "--force"]) {
                eprintln!("{e}");
            }
        }
    }
}

/// What `agora health --resp` says inside a running container of stack `name`, by node.
fn swarm_roles(name: &str) -> BTreeMap<usize, String> {
    let ns = format!("label=com.docker.stack.namespace={name}");
    let format = "{{.ID}} {{.Label \"agora.node\"}}";
    let mut out = BTreeMap::new();
    for line in docker(&["ps", "--filter", &ns, "--format", format]).unwrap_or_default().lines() {
        let mut f = line.split_whitespace();
        let (Some(id), Some(Ok(node))) = (f.next(), f.next().map(str::parse::<usize>)) else { continue };
        let said = docker(&["exec", id, "/agora", "health", "--resp", &format!("n{node}:{RESP_PORT}")]);
        if let Some(role) = said
            .ok()
            .and_then(|s| s.split_whitespace().find_map(|w| w.strip_prefix("raft_role:").map(String::from)))
        {
            out.insert(node, role);
        }
    }
    out
}

/// The guard of stack `name`, this machine made the manager of a single-node swarm if it was
/// in none (and left again by the guard); `None`, with a note, if its swarm is in any other
/// state.
fn on_a_swarm(name: &str) -> Option<Stack> {
    let state = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]).expect("docker info");
    let state = state.trim();
    if state != "inactive" && state != "active" {
        eprintln!("note: this machine's swarm is {state:?}, neither in one nor out of one; test skipped");
        return None;
    }
    let mut stack = Stack { name: name.to_string(), left_swarm: false };
    if state == "inactive" {
        if let Err(e) = docker(&["swarm", "init"]) {
            // A machine with several addresses must be told which to advertise.
            docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"])
                .unwrap_or_else(|e2| panic!("{e}; {e2}"));
        }
        stack.left_swarm = true;
    }
    Some(stack)
}

/// Checks that `stack` left nothing behind once dropped, and the machine in the swarm state
/// it was in.
fn gone(stack: Stack) {
    let ns = format!("label=com.docker.stack.namespace={}", stack.name);
    let made_swarm = stack.left_swarm;
    drop(stack);
    assert_eq!(docker(&["ps", "-aq", "--filter", &ns]).unwrap().split_whitespace().count(), 0);
    assert_eq!(docker(&["volume", "ls", "-q", "--filter", &ns]).unwrap().split_whitespace().count(), 0);
    if made_swarm {
        let now = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]).unwrap();
        assert_eq!(now.trim(), "inactive", "the machine left the swarm it was not in");
    }
}

/// `agora cluster status --dir DIR --json`, asked until it exits 0 (every node up, nothing
/// violated) and `also` holds of what it says.
fn status_until(dir: &Path, also: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let d = dir.to_string_lossy();
    let deadline = Instant::now() + STUCK;
    loop {
        let out = agora(&["cluster", "status", "--dir", &d, "--json"]);
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        let v: serde_json::Value = serde_json::from_str(&said)
            .unwrap_or_else(|e| panic!("status: {e}: {said}{}", String::from_utf8_lossy(&out.stderr)));
        if out.status.success() && also(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "status never said all is well within {STUCK:?}: {v}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn the_files_up_writes_deploy_a_raft_cluster_on_a_single_node_swarm() {
    let Some(_one) = docker_turn() else { return };
    // The folder and image first: dropped last, once the stack is gone.
    let (mut cleanup, dir, said) = cluster_up("swarm", &["--system", "raft", "--no-start"]);
    assert!(said.contains("docker stack deploy"), "{said}");
    let name = cleanup.name.clone();
    let Some(stack) = on_a_swarm(&name) else { return };
    let compose = dir.join("docker-compose.yml");
    docker(&["stack", "deploy", "-c", &compose.to_string_lossy(), &name]).unwrap_or_else(|e| panic!("{e}"));

    // Each replica, asked from inside its own task's container by its service name (the
    // overlay network is not routed from the host): one leads, the others follow. And the
    // Swarm judged every task healthy by the Compose file's health check: a task is in the
    // Swarm's DNS only once it is, so the replicas listened before their peers' names
    // resolved, and found each other once they did.
    let deadline = Instant::now() + STUCK;
    let ns = format!("label=com.docker.stack.namespace={name}");
    loop {
        let roles = swarm_roles(&name);
        let leaders = roles.values().filter(|r| *r == "leader").count();
        let followers = roles.values().filter(|r| *r == "follower").count();
        let healthy = docker(&["ps", "-q", "--filter", &ns, "--filter", "health=healthy"])
            .map_or(0, |o| o.split_whitespace().count());
        if roles.len() == 3 && leaders == 1 && followers == 2 && healthy == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no leader with two followers, all healthy, on the swarm within {STUCK:?}: {roles:?}, {healthy} healthy"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // `agora cluster status`, from this manager: the tasks as the Swarm sees them, wherever
    // they run, and each replica asked through the relay it starts on the stack's overlay
    // network. It names the same leader as the replicas themselves, and every replica answers.
    let status = status_until(&dir, |_| true);
    let leader = status["leader"]["node"].as_u64().expect("a leader") as usize;
    assert_eq!(status["answering"], 3, "{status}");
    assert_eq!(swarm_roles(&name).get(&leader).map(String::as_str), Some("leader"), "{status}");
    for c in status["containers"].as_array().expect("containers") {
        assert_eq!(c["state"], "running", "{status}");
        assert_eq!(c["tasks"].as_array().map(Vec::len), Some(1), "{status}");
    }
    // Its leader's RESP address, through the relay, serves a client on this machine.
    let resp = status["leader"]["resp"].as_str().expect("the leader's address");
    let mut conn = std::net::TcpStream::connect(resp).expect("the relay answers");
    conn.set_read_timeout(Some(STUCK)).unwrap();
    conn.write_all(b"*3\r\n$3\r\nSET\r\n$5\r\nswarm\r\n$2\r\nok\r\n").unwrap();
    let mut answer = [0u8; 5];
    conn.read_exact(&mut answer).expect("an answer through the relay");
    assert_eq!(&answer, b"+OK\r\n");
    drop(conn);

    // The live view of the cluster on the Swarm: the leader the replicas name, their traffic
    // (each one's counters, asked through the relay), and no controls, with the reason.
    let view = LiveView::attach(&dir);
    let s = snapshot_until(&view.addr, "the leader and traffic", |s| {
        s["lead"]["id"].as_u64() == Some(leader as u64)
            && s["kinds"].as_array().is_some_and(|k| k.iter().any(|k| k["per_s"].as_f64() > Some(0.0)))
    });
    assert_eq!(s["verbs"].as_array().map(Vec::len), Some(0), "{s}");
    assert!(s["unavailable"].as_str().is_some_and(|u| u.contains("Swarm")), "{s}");
    let (code, said, err) = view.interrupt(&mut cleanup);
    assert_eq!(code, Some(0), "{said}{err}");

    // The nemesis acts through this machine's Docker: it refuses a cluster on a Swarm.
    let out = agora(&["cluster", "nemesis", "--dir", &dir.to_string_lossy(), "--for", "1s"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is deployed on a Swarm"), "{out:?}");

    // `agora cluster down`: the stack, the relay and the volumes go.
    let out = agora(&["cluster", "down", "--dir", &dir.to_string_lossy()]);
    assert!(out.status.success(), "down: {}", String::from_utf8_lossy(&out.stderr));
    assert!(docker(&["inspect", &format!("{name}-relay")]).is_err(), "the relay is left");
    assert_eq!(docker(&["service", "ls", "-q", "--filter", &ns]).unwrap().split_whitespace().count(), 0);
    assert_eq!(docker(&["volume", "ls", "-q", "--filter", &ns]).unwrap().split_whitespace().count(), 0);
    gone(stack);
}

#[test]
fn a_market_started_on_a_swarm_keeps_its_books_when_its_traders_task_is_killed() {
    let Some(_one) = docker_turn() else { return };
    // The folder first, the stack's guard second: the stack goes before the image.
    let (mut cleanup, dir) = cluster_dir("swarmmarket");
    let name = cleanup.name.clone();
    let Some(stack) = on_a_swarm(&name) else { return };
    let d = dir.to_string_lossy().into_owned();
    let up = agora(&["cluster", "up", "--nodes", "3", "--dir", &d, "--system", "market", "--swarm"]);
    let said = String::from_utf8_lossy(&up.stdout).into_owned();
    let err = String::from_utf8_lossy(&up.stderr);
    adopt_image(&mut cleanup, &said, &err);
    assert!(up.status.success(), "cluster up --swarm: {said}{err}");
    assert!(said.contains("trades"), "{said}");
    // `up` deployed the first file, then the steady one once every peer had its database,
    // each peer kept on the machine of its volume: two tasks, two runs, per peer.
    let steady = std::fs::read_to_string(dir.join("docker-compose.steady.yml")).unwrap();
    assert_eq!(steady.matches("node.id == ").count(), 3, "{steady}");
    assert!(!steady.contains("--new-once"), "{steady}");
    let before = status_until(&dir, |v| v["answered"].as_u64() > Some(0));
    for c in before["containers"].as_array().expect("containers") {
        assert_eq!(c["tasks"].as_array().map(Vec::len), Some(2), "{before}");
    }
    let trader = before["trader"]["node"].as_u64().expect("a trader") as usize;
    let answered = before["answered"].as_u64().unwrap();
    // The live view follows the peers' tasks' logs and judges them as they come.
    let view = LiveView::attach(&dir);
    let fine = |s: &serde_json::Value| {
        s["verdicts"]["properties"].as_array().is_some_and(|ps| {
            ps.iter().any(|p| p["verdict"] == "ok") && ps.iter().all(|p| p["verdict"] != "violated")
        })
    };
    let seen = snapshot_until(&view.addr, "the trader and a verdict", |s| {
        s["lead"]["label"] == "Trader" && s["lead"]["id"].is_u64() && fine(s)
    });
    assert!(seen["unavailable"].as_str().is_some_and(|u| u.contains("Swarm")), "{seen}");
    let judged = seen["verdicts"]["observations_judged"].as_u64().unwrap_or(0);

    // SIGKILL the trader's task (on this machine: a single-node swarm). The Swarm starts
    // another task of it on its volume; `status` reads the peers' history from all their
    // tasks, the killed one's too, and the market's checker finds nothing violated, with
    // more buys answered than before.
    let ns = format!("label=com.docker.swarm.service.name={name}_n{trader}");
    let id = docker(&["ps", "-q", "--filter", &ns]).unwrap();
    docker(&["kill", "--signal", "KILL", id.trim()]).unwrap();
    let after = status_until(&dir, |v| {
        let tasks = v["containers"][trader]["tasks"].as_array().map_or(0, Vec::len);
        tasks == 3 && v["answered"].as_u64() > Some(answered) && v["containers"][trader]["state"] == "running"
    });
    let runs = after["runs"].as_array().expect("runs");
    assert_eq!(runs[trader]["runs"].as_u64(), Some(3), "{after}");
    // The view read on into the new task: more of the history judged, nothing violated, and
    // more observations of the killed peer itself than it had when its new task was running.
    let then = snapshot_until(&view.addr, "a verdict on the history after the kill", |s| {
        fine(s) && s["verdicts"]["observations_judged"].as_u64() > Some(judged)
    });
    let observed = then["replicas"][trader]["observed"].as_u64().expect("observations counted");
    snapshot_until(&view.addr, "observations of the killed peer's new task", |s| {
        fine(s) && s["replicas"][trader]["observed"].as_u64() > Some(observed)
    });
    let (code, said, err) = view.interrupt(&mut cleanup);
    assert_eq!(code, Some(0), "{said}{err}");

    let out = agora(&["cluster", "down", "--dir", &d]);
    assert!(out.status.success(), "down: {}", String::from_utf8_lossy(&out.stderr));
    gone(stack);
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
    // `--swarm`: not for the systems that end by themselves, not with --ui; the relay's targets.
    refused(
        &mut cmd(&["cluster", "up", "--system", "election", "--swarm", "--dir", &at("el")]),
        2,
        "end by themselves",
    );
    refused(&mut cmd(&["cluster", "up", "--system", "raft", "--swarm", "--ui", "127.0.0.1:0"]), 2, "--ui");
    refused(&mut cmd(&["cluster", "relay", "--to", "n0"]), 2, "expected HOST:PORT");
    refused(&mut cmd(&["cluster", "relay", "--to", "n0:0"]), 2, "expected HOST:PORT");
    refused(&mut cmd(&["cluster", "relay"]), 2, "--to");
    refused(&mut cmd(&["health", "--resp", "no-such-host.invalid:6379"]), 2, "no-such-host.invalid");
    refused(&mut cmd(&["health"]), 2, "--resp");
    // A socket that accepts and never answers (held here: no port is probed): unhealthy once
    // the check's read times out, exit 1.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    refused(&mut cmd(&["health", "--metrics", &addr]), 1, "unhealthy");
    refused(&mut cmd(&["health", "--resp", &addr]), 1, "unhealthy");
    refused(&mut cmd(&["health", "--vote", &addr]), 1, "unhealthy");
    refused(
        &mut cmd(&["cluster", "up", "--system", "raft", "--session-timeout-ms", "1000", "--dir", &at("kv3")]),
        2,
        "only with --system vote",
    );
    refused(
        &mut cmd(&["cluster", "up", "--system", "raft", "--voters", "5000", "--dir", &at("kv3")]),
        2,
        "only with --system election",
    );
    refused(
        &mut cmd(&["cluster", "up", "--system", "raft", "--order", "causal", "--dir", &at("kv3")]),
        2,
        "only with --system multicast",
    );
    refused(
        &mut cmd(&["cluster", "up", "--system", "multicast", "--order", "sorted", "--dir", &at("m3")]),
        2,
        "--order `sorted`",
    );
    refused(
        &mut cmd(&["cluster", "up", "--system", "multicast", "--msgs", "0", "--dir", &at("m3")]),
        2,
        "--msgs",
    );
    // Data faults only where a replica can rejoin after losing its data: a Raft store.
    let v3 = dir.path().join("v3");
    std::fs::create_dir(&v3).unwrap();
    let mut file = format!("cluster = \"v3\"\nsecret = \"{}\"\nprotocol = \"vote\"\n", "ab".repeat(32));
    for id in 0..3 {
        file += &format!("\n[[node]]\nid = {id}\naddr = \"n{id}:7000\"\nvote = \"n{id}:7400\"\n");
    }
    std::fs::write(v3.join("cluster.toml"), file).unwrap();
    let v3 = v3.to_string_lossy().into_owned();
    for faults in ["kill,wipe", "disk"] {
        let mut nemesis = cmd(&["cluster", "nemesis", "--dir", &v3, "--faults", faults]);
        refused(&mut nemesis, 2, "only on a Raft key-value store");
    }
    refused(&mut cmd(&["cluster", "nemesis", "--dir", &v3, "--faults", "wipe,disks"]), 2, "disks");
}

/// `POST /action/PATH` on a live view, as its page does: (status line, body).
fn page_action(addr: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).expect("the view accepts");
    s.set_read_timeout(Some(STUCK)).unwrap();
    let request = format!(
        "POST /action/{path} HTTP/1.1\r\nHost: {addr}\r\nX-Agora-Action: 1\r\nContent-Length: 0\r\n\r\n"
    );
    s.write_all(request.as_bytes()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response");
    (head.lines().next().unwrap_or("").to_string(), body.trim_end().to_string())
}

/// An action the view must take: its answer.
fn page_does(addr: &str, path: &str) -> String {
    let (status, body) = page_action(addr, path);
    assert_eq!(status, "HTTP/1.1 200 OK", "{path}: {body}");
    body
}

/// Reads a live view's stream of snapshots until `done` accepts one; returns it.
fn snapshot_until(addr: &str, what: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    use std::io::BufRead;
    let mut s = TcpStream::connect(addr).expect("the view accepts");
    s.set_read_timeout(Some(STUCK)).unwrap();
    s.write_all(format!("GET /events HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()).unwrap();
    let mut r = std::io::BufReader::new(s);
    let (mut line, mut last) = (String::new(), serde_json::Value::Null);
    let deadline = Instant::now() + STUCK;
    loop {
        line.clear();
        let n = r.read_line(&mut line).unwrap_or(0);
        assert!(n > 0, "the stream ended before {what}; last snapshot: {last}");
        assert!(Instant::now() < deadline, "no snapshot showed {what} within {STUCK:?}; last: {last}");
        if let Some(data) = line.trim_end().strip_prefix("data: ") {
            last = serde_json::from_str(data).expect("a JSON snapshot");
            if done(&last) {
                return last;
            }
        }
    }
}

/// Whether container `id` runs, and whether it is paused.
fn running_paused(id: &str) -> (bool, bool) {
    let s =
        docker(&["inspect", "--format", "{{.State.Running}} {{.State.Paused}}", id]).expect("docker inspect");
    let mut f = s.split_whitespace();
    (f.next() == Some("true"), f.next() == Some("true"))
}

/// The rules of the live view's chain in container `id`'s network namespace (empty: none).
fn filters(id: &str) -> String {
    let pid = docker(&["inspect", "--format", "{{.State.Pid}}", id]).expect("docker inspect");
    let out = Command::new("nsenter")
        .args(["--target", pid.trim(), "--net", "iptables", "--wait", "-S", "agora-view"])
        .output()
        .expect("nsenter runs");
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains("DROP")).collect::<Vec<_>>().join("\n")
}

/// The verdict a snapshot shows so far has judged the market and found nothing violated.
fn judged_fine(s: &serde_json::Value) -> bool {
    let v = &s["verdicts"];
    let ps = v["properties"].as_array().map(Vec::as_slice).unwrap_or_default();
    v["so_far"] == true
        && v["observations_judged"].as_u64() > Some(0)
        && ps.iter().any(|p| p["property"] == "trade-exactly-once" && p["verdict"] == "ok")
        && ps.iter().all(|p| p["verdict"] != "violated")
}

/// `agora cluster up --nodes 3 --system SYSTEM --ui 127.0.0.1:0` running: the process, the
/// page's address, and what it prints, gathered until it ends.
struct LiveView {
    child: std::process::Child,
    addr: String,
    said: Option<std::thread::JoinHandle<String>>,
    err: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl LiveView {
    fn up(dir: &Path, system: &str) -> LiveView {
        let d = dir.to_string_lossy().into_owned();
        LiveView::start(&[
            "cluster",
            "up",
            "--nodes",
            "3",
            "--dir",
            &d,
            "--system",
            system,
            "--ui",
            "127.0.0.1:0",
        ])
    }

    /// `agora cluster ui --dir DIR --ui 127.0.0.1:0`: the view of a cluster already up.
    fn attach(dir: &Path) -> LiveView {
        LiveView::start(&["cluster", "ui", "--dir", &dir.to_string_lossy(), "--ui", "127.0.0.1:0"])
    }

    fn start(args: &[&str]) -> LiveView {
        use std::io::BufRead;
        let mut child = Command::new(BIN)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("agora runs");
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let stdout = child.stdout.take().unwrap();
        let said = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
        // The page's address, from its `ui:` line; the rest of stderr kept for the end.
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let err = std::thread::spawn(move || {
            let mut all = Vec::new();
            for line in stderr.lines().map_while(Result::ok) {
                let _ = tx.send(line.clone());
                all.push(line);
            }
            all
        });
        let mut view = LiveView { child, addr: String::new(), said: Some(said), err: Some(err) };
        view.addr = loop {
            let line = rx.recv_timeout(STUCK).expect("a `ui:` line within the guard");
            if let Some(url) = line.strip_prefix("ui: ") {
                break url.trim_start_matches("http://").trim_end_matches('/').to_string();
            }
        };
        view
    }

    /// Ctrl-C: its exit code, what it printed on stdout and on stderr; the image it used is
    /// left to `cleanup`.
    fn interrupt(mut self, cleanup: &mut Cleanup) -> (Option<i32>, String, String) {
        // SAFETY: kill with the pid of our own child and SIGINT (Ctrl-C).
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) }, 0);
        let code = self.child.wait().expect("the view ends").code();
        let said = self.said.take().unwrap().join().unwrap();
        let err = self.err.take().unwrap().join().unwrap().join("\n");
        adopt_image(cleanup, &said, &err);
        (code, said, err)
    }
}

impl Drop for LiveView {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_market_in_containers_is_watched_and_broken_from_its_live_view() {
    let Some(_one) = docker_turn() else { return };
    let (mut cleanup, dir) = cluster_dir("mview");
    let view = LiveView::up(&dir, "market");
    let addr = view.addr.clone();

    // The page shows the trader the logs name, the containers' messages per second, and the
    // checker's verdict so far.
    let s = snapshot_until(&addr, "a trader, traffic and a verdict", |s| {
        s["lead"]["label"] == "Trader"
            && s["lead"]["id"].is_u64()
            && s["kinds"].as_array().is_some_and(|k| k.iter().any(|k| k["per_s"].as_f64() > Some(0.0)))
            && judged_fine(s)
    });
    let shown = s["lead"]["id"].as_u64().unwrap() as usize;
    // The market's own table, as `agora market --ui` shows it: the buys answered, the latest first.
    let s = snapshot_until(&addr, "the market's trades", |s| {
        s["system"]["title"] == "Trades, the latest first"
            && s["system"]["rows"].as_array().is_some_and(|r| !r.is_empty())
    });
    assert!(
        s["system"]["note"].as_str().is_some_and(|n| n.contains(&format!("trader: node {shown}"))),
        "{s}"
    );
    let (_, st) = market_status(&dir);
    let containers = market_containers(&st);
    assert_eq!(trader(&st).map(|t| t as usize), Some(shown), "the page's trader is the logs' own: {st:#}");
    let other = (shown + 1) % 3;

    // Crash from the page: the trader's container is killed, and another trader is shown.
    page_does(&addr, &format!("crash/{shown}"));
    assert_eq!(running_paused(&containers[shown]), (false, false), "the crash killed the container");
    snapshot_until(&addr, "another trader", |s| {
        s["lead"]["id"].as_u64().is_some_and(|t| t as usize != shown)
            && s["replicas"][shown]["health"] == "crashed"
    });
    // A crashed node cannot be crashed again; a bad action is refused.
    assert_eq!(page_action(&addr, &format!("crash/{shown}")).0, "HTTP/1.1 409 Conflict");
    // Restart: the same container starts again on its volume.
    page_does(&addr, &format!("restart/{shown}"));
    assert_eq!(running_paused(&containers[shown]), (true, false));

    // A partition writes the filters on both sides; heal removes them.
    page_does(&addr, &format!("partition/{other}"));
    for (i, c) in containers.iter().enumerate() {
        assert!(filters(c).contains("DROP"), "node {i} has no filter after the partition");
    }
    page_does(&addr, "heal");
    for (i, c) in containers.iter().enumerate() {
        assert_eq!(filters(c), "", "node {i} keeps a filter after heal");
    }
    // A cut from one node to another drops, in the receiver alone, what the sender sends it.
    let ips: Vec<String> = market_status(&dir).1["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .map(|c| c["ip"].as_str().expect("a running container's address").to_string())
        .collect();
    page_does(&addr, &format!("cut/{other}/{shown}"));
    for (i, c) in containers.iter().enumerate() {
        let rules = filters(c);
        if i == shown {
            assert!(rules.contains(&format!("-s {}/32", ips[other])), "node {i}: {rules}");
        } else {
            assert_eq!(rules, "", "node {i} is not the receiver of the cut link");
        }
    }
    page_does(&addr, "heal");

    // Trading goes on, judged fine so far; then the view ends with a node paused from the page
    // and resumes it on the way out.
    let before = answered(&market_status(&dir).1);
    market_until(&dir, "trading after the page's faults", |v| answered(v) >= before + 10);
    snapshot_until(&addr, "a verdict after the faults", judged_fine);
    page_does(&addr, &format!("pause/{other}"));
    assert_eq!(running_paused(&containers[other]), (true, true));
    let (code, said, err) = view.interrupt(&mut cleanup);
    assert_eq!(code, Some(0), "{said}{err}");
    assert!(err.contains(&format!("node {other} resumed")), "{err}");
    assert_eq!(running_paused(&containers[other]), (true, false), "paused from the page, resumed at the end");
    let (code, v) = market_status(&dir);
    assert_eq!(code, Some(0), "{v:#}");
}

#[test]
fn a_raft_cluster_in_containers_is_watched_and_its_leader_crashed_from_its_live_view() {
    let Some(_one) = docker_turn() else { return };
    let (mut cleanup, dir) = cluster_dir("kview");
    let view = LiveView::up(&dir, "raft");
    let addr = view.addr.clone();
    // The page shows the leader, every replica's commit index as its INFO says, the replicas'
    // messages per second, and says that the history is not judged here, and where it is.
    let s = snapshot_until(&addr, "a leader, two followers, their INFO and traffic", |s| {
        let roles: Vec<&str> =
            s["replicas"].as_array().into_iter().flatten().filter_map(|r| r["role"].as_str()).collect();
        s["lead"]["label"] == "Leader"
            && s["lead"]["id"].is_u64()
            && roles.iter().filter(|r| **r == "follower").count() == 2
            && s["system"]["rows"].as_array().is_some_and(|r| r.len() == 3)
            && s["kinds"].as_array().is_some_and(|k| k.iter().any(|k| k["per_s"].as_f64() > Some(0.0)))
    });
    let leader = s["lead"]["id"].as_u64().unwrap() as usize;
    let (nodes, agreed) = status(&dir, RESP_PORT);
    assert_eq!(agreed, Some(leader), "the page's leader is the one the replicas follow: {s}");
    let row = &s["system"]["rows"][leader];
    assert_eq!((row[2].as_str(), row[5].as_u64().is_some()), (Some("leader"), true), "{row}");
    let verdict = &s["verdicts"]["properties"][0];
    assert_eq!((&verdict["property"], &verdict["verdict"]), (&"linearizable".into(), &"not judged".into()));
    assert!(verdict["detail"].as_str().is_some_and(|d| d.contains("agora cluster nemesis")), "{verdict}");

    // Crash the leader from the page: its container is killed, and another leader is shown.
    page_does(&addr, &format!("crash/{leader}"));
    assert_eq!(running_paused(&nodes[leader].container), (false, false));
    snapshot_until(&addr, "another leader", |s| {
        s["lead"]["id"].as_u64().is_some_and(|l| l as usize != leader)
            && s["replicas"][leader]["health"] == "crashed"
    });
    page_does(&addr, &format!("restart/{leader}"));
    assert_eq!(running_paused(&nodes[leader].container), (true, false));
    let (code, said, err) = view.interrupt(&mut cleanup);
    assert_eq!(code, Some(0), "{said}{err}");
    // Nothing the page did is left: the three replicas run and follow one leader.
    let deadline = Instant::now() + STUCK;
    while status(&dir, RESP_PORT).1.is_none() {
        assert!(Instant::now() < deadline, "no leader within {STUCK:?} after the view");
        std::thread::sleep(Duration::from_millis(250));
    }
    for n in &status(&dir, RESP_PORT).0 {
        assert_eq!(running_paused(&n.container), (true, false), "node {}", n.id);
    }
}
