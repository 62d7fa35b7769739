//! `agora kv`: a 3-replica cluster of `agora kv serve` processes, talked to over RESP — the
//! string commands, CAS, forwarding by followers, pipelining, a hostile client closed while
//! others go on, acknowledged writes surviving SIGKILL of the leader, a server-side history
//! judged by `agora lincheck`, the real `redis-cli`/`redis-benchmark` when installed, and the
//! embedded cluster's workload with its client-side history.
//!
//! Ports: the test binds every node's cluster and RESP sockets on port 0 and hands them down
//! (`--listen-fd 3 --resp-fd 4`), as the process helper does for `agora node`.

use agora_cli::resp::{self, Reply};
use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_agora");

/// A guard against hanging forever, not a measure of speed.
const STUCK: Duration = Duration::from_secs(120);

struct Cluster {
    dir: PathBuf,
    config: PathBuf,
    peers: Vec<TcpListener>,
    resps: Vec<TcpListener>,
    children: Vec<Option<Child>>,
    tx: std::sync::mpsc::Sender<(usize, serde_json::Value)>,
    rx: std::sync::mpsc::Receiver<(usize, serde_json::Value)>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Cluster {
    fn new(dir: &Path, n: usize) -> Cluster {
        let bind = || TcpListener::bind("127.0.0.1:0").unwrap();
        let peers: Vec<TcpListener> = (0..n).map(|_| bind()).collect();
        let resps: Vec<TcpListener> = (0..n).map(|_| bind()).collect();
        let mut text = format!(
            "cluster = \"kvtest\"\nprotocol = \"kv\"\nsecret = \"{}\"\ndata_dir = \"data\"\n[params]\ntimeout_ms = 100\n",
            "5e".repeat(32)
        );
        for i in 0..n {
            text.push_str(&format!(
                "[[node]]\nid = {i}\naddr = \"{}\"\nresp = \"{}\"\n",
                peers[i].local_addr().unwrap(),
                resps[i].local_addr().unwrap()
            ));
        }
        let config = dir.join("cluster.toml");
        std::fs::write(&config, text).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        Cluster {
            dir: dir.to_path_buf(),
            config,
            peers,
            resps,
            children: (0..n).map(|_| None).collect(),
            tx,
            rx,
        }
    }

    fn resp_addr(&self, i: usize) -> SocketAddr {
        self.resps[i].local_addr().unwrap()
    }

    fn start(&mut self, i: usize, extra: &[&str]) {
        let mut cmd = Command::new(BIN);
        cmd.args(["kv", "serve", "--id", &i.to_string(), "--listen-fd", "3", "--resp-fd", "4", "--events"])
            .arg("--config")
            .arg(&self.config)
            .args(extra);
        if !self.dir.join("data").join(format!("node-{i}.redb")).exists() && !extra.contains(&"--rejoin") {
            cmd.arg("--new");
        }
        let (a, b) = (self.peers[i].as_raw_fd(), self.resps[i].as_raw_fd());
        // SAFETY: fcntl and dup2 are async-signal-safe; the descriptors are ours.
        unsafe {
            cmd.pre_exec(move || {
                let a2 = libc::fcntl(a, libc::F_DUPFD, 100);
                let b2 = libc::fcntl(b, libc::F_DUPFD, 100);
                if a2 < 0 || b2 < 0 || libc::dup2(a2, 3) < 0 || libc::dup2(b2, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
        };
        let mut child =
            cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("agora kv serve starts");
        // Events to the test; other lines (logs) dropped, so the node never blocks on stderr.
        let stderr = child.stderr.take().unwrap();
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(json) = line.strip_prefix("event ") {
                    let _ = tx.send((i, serde_json::from_str(json).expect("an event is JSON")));
                }
            }
        });
        self.children[i] = Some(child);
    }

    fn kill(&mut self, i: usize) {
        let mut c = self.children[i].take().expect("running");
        c.kill().unwrap();
        c.wait().unwrap();
    }

    /// The replica that became leader in a term above `after`, from the replicas' events, once
    /// it still says so when asked (ROLE): a leader of a term since deposed is passed over.
    fn leader(&self, after: u64) -> (usize, u64) {
        loop {
            let (i, v) = self.rx.recv_timeout(STUCK).expect("no event for a long time: no leader");
            let Some(term) = v.get("term").and_then(|t| t.as_u64()) else { continue };
            if v.get("leader").is_none() || term <= after || self.children[i].is_none() {
                continue;
            }
            let mut c = Client::connect(self.resp_addr(i));
            if let Some(Reply::Array(items)) = c.try_cmd(&["ROLE"]) {
                if items.first() == Some(&bulk("leader")) && items.get(1) == Some(&Reply::Int(term as i64)) {
                    return (i, term);
                }
            }
        }
    }
}

/// A plain RESP client over a TcpStream.
struct Client {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn try_connect(addr: SocketAddr) -> std::io::Result<Client> {
        let s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(STUCK))?;
        Ok(Client { s, buf: Vec::new() })
    }

    fn connect(addr: SocketAddr) -> Client {
        Client::try_connect(addr).unwrap()
    }

    fn send(&mut self, args: &[&str]) {
        let mut out = Vec::new();
        resp::encode_request(args, &mut out);
        self.s.write_all(&out).unwrap();
    }

    /// The next reply; `None` at the end of the stream.
    fn read(&mut self) -> Option<Reply> {
        loop {
            if let Some((r, used)) = resp::parse_reply(&self.buf).expect("a well-formed reply") {
                self.buf.drain(..used);
                return Some(r);
            }
            let mut chunk = [0u8; 65536];
            let n = self.s.read(&mut chunk).ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn try_cmd(&mut self, args: &[&str]) -> Option<Reply> {
        let mut out = Vec::new();
        resp::encode_request(args, &mut out);
        self.s.write_all(&out).ok()?;
        self.read()
    }

    fn cmd(&mut self, args: &[&str]) -> Reply {
        self.send(args);
        self.read().unwrap_or_else(|| panic!("{args:?}: connection closed"))
    }
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(s.as_bytes().to_vec())
}

fn ok() -> Reply {
    Reply::Simple("OK".into())
}

#[test]
fn a_three_replica_cluster_speaks_resp_forwards_survives_sigkill_and_keeps_a_linearizable_history() {
    let dir = scratch("agora-kv");
    let mut c = Cluster::new(&dir, 3);
    // Every replica records the operations of its own connections; merged by time (one
    // host, one clock) they are the cluster's history.
    let histories: Vec<String> =
        (0..3).map(|i| dir.join(format!("history-{i}.jsonl")).to_str().unwrap().to_string()).collect();
    for (i, h) in histories.iter().enumerate() {
        c.start(i, &["--history", h]);
    }
    let (leader, term) = c.leader(0);
    let follower = (leader + 1) % 3;
    let mut l = Client::connect(c.resp_addr(leader));
    let mut f = Client::connect(c.resp_addr(follower));

    // What redis-cli and redis-benchmark send when they connect.
    assert_eq!(l.cmd(&["PING"]), Reply::Simple("PONG".into()));
    assert_eq!(l.cmd(&["ECHO", "hi"]), bulk("hi"));
    assert_eq!(l.cmd(&["SELECT", "0"]), ok());
    assert_eq!(l.cmd(&["CLIENT", "SETNAME", "t"]), ok());
    assert!(matches!(l.cmd(&["COMMAND", "DOCS"]), Reply::Array(_)));
    assert_eq!(
        l.cmd(&["CONFIG", "GET", "save"]),
        Reply::Array(vec![bulk("save"), bulk("")]),
        "redis-benchmark asks for save and appendonly"
    );
    assert_eq!(l.cmd(&["CONFIG", "GET", "appendonly"]), Reply::Array(vec![bulk("appendonly"), bulk("yes")]));
    assert!(
        matches!(l.cmd(&["INFO"]), Reply::Bulk(b) if String::from_utf8_lossy(&b).contains("raft_role:leader"))
    );

    // The string commands, on the leader and through a follower (which forwards).
    for (cl, p) in [(&mut l, "l"), (&mut f, "f")] {
        let k = |s: &str| format!("{p}{s}");
        assert_eq!(cl.cmd(&["SET", &k("a"), "1"]), ok());
        assert_eq!(cl.cmd(&["GET", &k("a")]), bulk("1"));
        assert_eq!(cl.cmd(&["INCR", &k("a")]), Reply::Int(2));
        assert_eq!(cl.cmd(&["INCRBY", &k("a"), "-5"]), Reply::Int(-3));
        assert_eq!(cl.cmd(&["DECR", &k("a")]), Reply::Int(-4));
        assert_eq!(cl.cmd(&["SET", &k("a"), "x", "NX"]), Reply::Nil);
        assert_eq!(cl.cmd(&["SET", &k("b"), "x", "XX"]), Reply::Nil);
        assert_eq!(cl.cmd(&["SET", &k("b"), "x", "NX"]), ok());
        assert_eq!(cl.cmd(&["SET", &k("b"), "y", "XX", "GET"]), bulk("x"));
        assert!(
            matches!(cl.cmd(&["INCR", &k("b")]), Reply::Error(e) if e == "ERR value is not an integer or out of range")
        );
        assert_eq!(cl.cmd(&["APPEND", &k("b"), "zz"]), Reply::Int(3));
        assert_eq!(cl.cmd(&["MSET", &k("c"), "1", &k("d"), "2"]), ok());
        assert_eq!(
            cl.cmd(&["MGET", &k("c"), &k("d"), &k("none")]),
            Reply::Array(vec![bulk("1"), bulk("2"), Reply::Nil])
        );
        assert_eq!(cl.cmd(&["EXISTS", &k("c"), &k("d"), &k("none"), &k("c")]), Reply::Int(3));
        assert_eq!(cl.cmd(&["CAS", &k("c"), "0", "9"]), Reply::Int(0));
        assert_eq!(cl.cmd(&["CAS", &k("c"), "1", "9"]), Reply::Int(1));
        assert_eq!(cl.cmd(&["GET", &k("c")]), bulk("9"));
        assert_eq!(cl.cmd(&["DEL", &k("c"), &k("d"), &k("none")]), Reply::Int(2));
        assert_eq!(cl.cmd(&["GET", &k("c")]), Reply::Nil);
        assert!(
            matches!(cl.cmd(&["GET"]), Reply::Error(e) if e == "ERR wrong number of arguments for 'get' command")
        );
        assert!(
            matches!(cl.cmd(&["NOPE", "x"]), Reply::Error(e) if e.starts_with("ERR unknown command 'NOPE'"))
        );
        assert!(
            matches!(cl.cmd(&["SET", "k", "v", "EX", "10"]), Reply::Error(e) if e.starts_with("ERR expiry"))
        );
    }
    // A follower's stale read (READONLY) answers from its own state.
    assert_eq!(f.cmd(&["READONLY"]), ok());
    let t0 = Instant::now();
    while f.cmd(&["GET", "lb"]) != bulk("yzz") {
        assert!(t0.elapsed() < STUCK);
    }
    assert_eq!(f.cmd(&["READWRITE"]), ok());

    // Pipelining: 2000 commands in one write, answered in order; a read behind a write of the
    // same connection sees it.
    let mut p = Client::connect(c.resp_addr(follower));
    let mut out = Vec::new();
    for i in 0..500 {
        let v = i.to_string();
        resp::encode_request(&["SET", "pk", &v], &mut out);
        resp::encode_request(&["GET", "pk"], &mut out);
        resp::encode_request(&["INCR", "pn"], &mut out);
        resp::encode_request(&["PING"], &mut out);
    }
    p.s.write_all(&out).unwrap();
    for i in 0..500 {
        assert_eq!(p.read(), Some(ok()));
        assert_eq!(p.read(), Some(bulk(&i.to_string())), "the GET behind SET {i}");
        assert_eq!(p.read(), Some(Reply::Int(i + 1)));
        assert_eq!(p.read(), Some(Reply::Simple("PONG".into())));
    }

    // Many connections at once, on every replica: every INCR applied exactly once, and the
    // commands grouped into few log entries (the leader's commit index counts them).
    let commit = |cl: &mut Client| match cl.cmd(&["ROLE"]) {
        Reply::Array(items) => match items[3] {
            Reply::Int(i) => i,
            _ => panic!("ROLE: {items:?}"),
        },
        other => panic!("ROLE: {other:?}"),
    };
    let before = commit(&mut l);
    let addrs: Vec<SocketAddr> = (0..3).map(|i| c.resp_addr(i)).collect();
    let threads: Vec<_> = (0..24)
        .map(|t| {
            let a = addrs[t % 3];
            std::thread::spawn(move || {
                let mut cl = Client::connect(a);
                let mut out = Vec::new();
                for _ in 0..50 {
                    resp::encode_request(&["INCR", "shared"], &mut out);
                }
                cl.s.write_all(&out).unwrap();
                (0..50).map(|_| cl.read().unwrap()).collect::<Vec<_>>()
            })
        })
        .collect();
    // Meanwhile a hostile client: garbage, then an oversized bulk; each closed with an error.
    for garbage in [&b"*abc\r\n"[..], b"*1\r\n$999999999\r\n", b"*1\r\n+PING\r\n"] {
        let mut g = Client::connect(c.resp_addr(leader));
        g.s.write_all(garbage).unwrap();
        match g.read() {
            Some(Reply::Error(e)) => assert!(e.starts_with("ERR Protocol error"), "{e}"),
            other => panic!("{garbage:?}: {other:?}"),
        }
        assert_eq!(g.read(), None, "the connection is closed");
    }
    // An inline command, as typed into nc.
    let mut n = Client::connect(c.resp_addr(leader));
    n.s.write_all(b"SET inline \"a b\"\r\nGET inline\r\n").unwrap();
    assert_eq!(n.read(), Some(ok()));
    assert_eq!(n.read(), Some(bulk("a b")));
    let mut seen: Vec<i64> = Vec::new();
    for t in threads {
        for r in t.join().unwrap() {
            match r {
                Reply::Int(i) => seen.push(i),
                other => panic!("INCR answered {other:?}"),
            }
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=1200).collect::<Vec<_>>(), "each INCR once, each result once");
    let entries = commit(&mut l) - before;
    eprintln!("1200 INCRs from 24 connections: {entries} log entries");
    assert!(entries <= 120, "1200 INCRs (and a few more commands) took {entries} log entries");

    // Acknowledged writes survive SIGKILL of the leader.
    for i in 0..100 {
        assert_eq!(l.cmd(&["SET", &format!("d{i}"), &i.to_string()]), ok());
    }
    c.kill(leader);
    let (next, _) = c.leader(term);
    assert_ne!(next, leader);
    let mut survivor = Client::connect(c.resp_addr(next));
    for i in 0..100 {
        assert_eq!(survivor.cmd(&["GET", &format!("d{i}")]), bulk(&i.to_string()));
    }
    // (INCR is not in the history's models: read it without recording, READONLY.)
    assert_eq!(survivor.cmd(&["READONLY"]), ok());
    let t0 = Instant::now();
    while survivor.cmd(&["GET", "shared"]) != bulk("1200") {
        assert!(t0.elapsed() < STUCK);
    }
    assert_eq!(survivor.cmd(&["READWRITE"]), ok());
    // The old leader restarts from its database and catches up.
    c.start(leader, &[]);
    assert_eq!(survivor.cmd(&["SET", "after", "restart"]), ok());
    let mut back = Client::connect(c.resp_addr(leader));
    assert_eq!(back.cmd(&["READONLY"]), ok());
    let t0 = Instant::now();
    while back.try_cmd(&["GET", "after"]) != Some(bulk("restart")) {
        assert!(t0.elapsed() < STUCK, "the restarted replica does not catch up");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(back.cmd(&["GET", "d99"]), bulk("99"));

    // The replicas stop cleanly on SIGTERM.
    for i in 0..3 {
        let child = c.children[i].take().unwrap();
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        assert!(child.wait_with_output().unwrap().status.success(), "replica {i} ends cleanly on SIGTERM");
    }
    // The history (the killed leader's lines included: each is written as it happens), judged
    // by agora lincheck.
    let mut events: Vec<(u64, String)> = Vec::new();
    for h in &histories {
        for line in std::fs::read_to_string(h).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("whole JSON lines");
            events.push((v["time_ns"].as_u64().unwrap(), line.to_string()));
        }
    }
    events.sort_by_key(|e| e.0);
    assert!(events.len() > 1000, "{} events", events.len());
    let history = dir.join("history.jsonl");
    let merged: String = events.iter().map(|e| format!("{}\n", e.1)).collect();
    std::fs::write(&history, merged).unwrap();
    let out = Command::new(BIN).args(["lincheck"]).arg(&history).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn redis_cli_and_redis_benchmark_work_unmodified() {
    let have = |b: &str| Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success());
    if !have("redis-cli") {
        eprintln!("note: redis-cli is not installed (Debian: apt-get install redis-tools); test skipped");
        return;
    }
    let dir = scratch("agora-kv-cli");
    let mut c = Cluster::new(&dir, 3);
    c.start_all();
    let (leader, _) = c.leader(0);
    let follower = (leader + 1) % 3;
    let port = c.resp_addr(follower).port().to_string();
    let cli = |args: &[&str]| {
        let out = Command::new("redis-cli").args(["-p", &port]).args(args).output().unwrap();
        assert!(out.status.success(), "redis-cli {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    assert_eq!(cli(&["PING"]), "PONG");
    assert_eq!(cli(&["SET", "greeting", "hello world"]), "OK");
    assert_eq!(cli(&["GET", "greeting"]), "hello world");
    assert_eq!(cli(&["INCRBY", "n", "41"]), "41");
    assert_eq!(cli(&["INCR", "n"]), "42");
    assert_eq!(cli(&["MSET", "a", "1", "b", "2"]), "OK");
    assert_eq!(cli(&["MGET", "a", "b", "c"]), "1\n2");
    assert_eq!(cli(&["CAS", "a", "1", "3"]), "1");
    assert!(cli(&["INFO", "replication"]).contains("raft_role:follower"));
    // Commands on stdin, as a script would pipe them.
    let mut child = Command::new("redis-cli")
        .args(["-p", &port])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"SET piped yes\nGET piped\nEXISTS piped a nope\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "OK\nyes\n2\n");
    if have("redis-benchmark") {
        let out = Command::new("redis-benchmark")
            .args(["-p", &port, "-t", "set,get", "-n", "2000", "-c", "10", "-P", "8", "-q"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.matches("requests per second").count() == 2, "{text}");
        assert!(cli(&["DBSIZE"]).parse::<u64>().unwrap() >= 4);
    } else {
        eprintln!("note: redis-benchmark is not installed; its part skipped");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

impl Cluster {
    /// Polls `probe`'s replica until its commit index reaches `index` (a guard gives up after
    /// a long while); the index it saw.
    fn wait_for_commits(&self, probe: &mut Client, index: u64) -> u64 {
        let deadline = Instant::now() + STUCK;
        loop {
            let Reply::Bulk(info) = probe.cmd(&["INFO"]) else { panic!("INFO answers a bulk string") };
            let info = String::from_utf8_lossy(&info).into_owned();
            let commit: u64 = info
                .lines()
                .find_map(|l| l.strip_prefix("raft_commit_index:")?.trim().parse().ok())
                .unwrap_or_else(|| panic!("{info}"));
            if commit >= index {
                return commit;
            }
            assert!(Instant::now() < deadline, "the log stopped at {commit}, short of {index}");
            // Paced polling of a condition, not a guess at how long it takes.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether replica `i` says it leads in `term` (ROLE).
    fn leads(&self, i: usize, term: u64) -> bool {
        let Ok(mut c) = Client::try_connect(self.resp_addr(i)) else { return false };
        matches!(c.try_cmd(&["ROLE"]), Some(Reply::Array(items))
            if items.first() == Some(&bulk("leader")) && items.get(1) == Some(&Reply::Int(term as i64)))
    }

    fn start_all(&mut self) {
        for i in 0..self.children.len() {
            self.start(i, &[]);
        }
    }
}

#[test]
fn the_embedded_cluster_runs_a_workload_whose_client_history_is_linearizable() {
    let dir = scratch("agora-kv-workload");
    let history = dir.join("h.jsonl");
    let out = Command::new(BIN)
        .args(["kv", "--port", "0", "--workload", "1500", "--clients", "6", "--keys", "4", "--history"])
        .arg(&history)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("workload       1500 operations by 6 clients"), "{text}");
    let lines = std::fs::read_to_string(&history).unwrap();
    for f in ["\"get\"", "\"put\"", "\"append\"", "\"cas\""] {
        assert!(lines.contains(f), "the history has {f}");
    }
    let out = Command::new(BIN).args(["lincheck"]).arg(&history).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_cluster_file_for_kv_is_checked() {
    let dir = scratch("agora-kv-file");
    let file = dir.join("c.toml");
    let head = format!("cluster = \"c\"\nprotocol = \"kv\"\nsecret = \"{}\"\n", "5e".repeat(32));
    std::fs::write(&file, format!("{head}[[node]]\nid = 0\naddr = \"127.0.0.1:7\"\n")).unwrap();
    let out = Command::new(BIN).args(["kv", "serve", "--id", "0", "--config"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no `resp` address"));
    std::fs::write(
        &file,
        format!(
            "{head}[params]\nclients = 2\n[[node]]\nid = 0\naddr = \"127.0.0.1:7\"\nresp = \"127.0.0.1:8\"\n"
        ),
    )
    .unwrap();
    let out = Command::new(BIN).args(["kv", "serve", "--id", "0", "--config"]).arg(&file).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("params.clients: not a parameter of kv"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_a_majority_a_write_times_out_as_ambiguous_and_takes_effect_once_one_returns() {
    let dir = scratch("agora-kv-minority");
    let mut c = Cluster::new(&dir, 3);
    let history = dir.join("h.jsonl");
    let h = history.to_str().unwrap().to_string();
    for i in 0..3 {
        c.start(i, &["--timeout-ms", "300", "--history", &h.replace(".jsonl", &format!("-{i}.jsonl"))]);
    }
    let (leader, _) = c.leader(0);
    let mut l = Client::connect(c.resp_addr(leader));
    assert_eq!(l.cmd(&["SET", "k", "before"]), ok());
    let others: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    for &i in &others {
        c.kill(i);
    }
    // No majority: no answer within --timeout-ms, and the client is told so.
    match l.cmd(&["SET", "k", "during"]) {
        Reply::Error(e) => assert!(e.starts_with("TRYAGAIN "), "{e}"),
        other => panic!("a write without a majority answered {other:?}"),
    }
    let lines = std::fs::read_to_string(h.replace(".jsonl", &format!("-{leader}.jsonl"))).unwrap();
    let last: serde_json::Value = serde_json::from_str(lines.lines().last().unwrap()).unwrap();
    assert_eq!((last["type"].as_str(), last["value"].as_str()), (Some("info"), Some("during")), "{lines}");
    // A replica comes back: the write, still retried by the leader's session, takes effect.
    c.start(others[0], &["--timeout-ms", "300"]);
    let t0 = Instant::now();
    loop {
        if let Some(r) =
            Client::try_connect(c.resp_addr(leader)).ok().and_then(|mut x| x.try_cmd(&["GET", "k"]))
        {
            if r == bulk("during") {
                break;
            }
        }
        assert!(t0.elapsed() < STUCK, "the ambiguous write never took effect");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 17's Jepsen-style test: clients no server recorded for (`agora kv workload`, its own
/// process) write a history while the nemesis kills replicas with SIGKILL and restarts them —
/// the leader three times, then a follower — and `agora lincheck` judges what the clients saw.
#[test]
fn a_client_history_across_repeated_kills_and_restarts_is_linearizable() {
    let dir = scratch("agora-kv-nemesis");
    let mut c = Cluster::new(&dir, 3);
    c.start_all();
    let (mut leader, mut term) = c.leader(0);
    let history = dir.join("clients.jsonl");
    let servers: Vec<String> = (0..3).map(|i| c.resp_addr(i).to_string()).collect();
    let mut workload = Command::new(BIN)
        .args(["kv", "workload", "--servers", &servers.join(","), "--ops", "100000000", "--clients", "4"])
        .args(["--keys", "3", "--timeout-ms", "1000", "--seed", "7", "--history"])
        .arg(&history)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut kills = 0;
    let mut since = 0;
    for round in 0..4 {
        // The cluster serves (a write of the nemesis's own key, outside the clients' keys,
        // through the replica after the leader, which forwards), and the clients' writes have
        // moved the log 20 entries on, before each fault.
        let mut probe = Client::connect(c.resp_addr((leader + 1) % 3));
        assert_eq!(probe.cmd(&["SET", "nemesis", &round.to_string()]), ok());
        since = c.wait_for_commits(&mut probe, since + 20);
        // The leader may have changed on its own meanwhile: follow the events until the one
        // known still says so.
        while !c.leads(leader, term) {
            (leader, term) = c.leader(term);
        }
        let victim = if round < 3 { leader } else { (leader + 1) % 3 };
        assert!(workload.try_wait().unwrap().is_none(), "the workload runs through every fault");
        c.kill(victim);
        kills += 1;
        if victim == leader {
            (leader, term) = c.leader(term);
        }
        c.start(victim, &[]);
    }
    // Serving again with every replica back, then the clients are told to stop.
    let mut probe = Client::connect(c.resp_addr((leader + 2) % 3));
    assert_eq!(probe.cmd(&["SET", "nemesis", "done"]), ok());
    // SAFETY: signalling our own child.
    unsafe { libc::kill(workload.id() as i32, libc::SIGTERM) };
    let out = workload.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("{report}");
    assert!(report.contains("stopped        when told to"), "{report}");
    let ok_ops: u64 = report
        .lines()
        .find_map(|l| l.strip_prefix("outcomes")?.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{report}"));
    assert!(ok_ops > 0, "{report}");
    assert_eq!(kills, 4);
    let judged = Command::new(BIN).arg("lincheck").arg(&history).output().unwrap();
    assert!(
        judged.status.success(),
        "the clients' history across {kills} kills is not linearizable:\n{}",
        String::from_utf8_lossy(&judged.stdout)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A replica whose disk was lost rejoins (`--rejoin`) and serves writes again: its new client
/// session must not be taken for its first life's, whose results the replicas remember (a
/// write would be answered from that memory and never applied).
#[test]
fn a_replica_that_lost_its_disk_rejoins_and_its_writes_take_effect() {
    let dir = scratch("agora-kv-rejoin");
    let mut c = Cluster::new(&dir, 3);
    c.start_all();
    let (leader, _) = c.leader(0);
    let wiped = (leader + 1) % 3;
    let mut w = Client::connect(c.resp_addr(wiped));
    for i in 0..5 {
        assert_eq!(w.cmd(&["SET", &format!("k{i}"), "first-life"]), ok());
    }
    drop(w);
    c.kill(wiped);
    std::fs::remove_file(dir.join("data").join(format!("node-{wiped}.redb"))).unwrap();
    c.start(wiped, &["--rejoin"]);
    let mut w = Client::connect(c.resp_addr(wiped));
    for i in 0..5 {
        assert_eq!(w.cmd(&["SET", &format!("k{i}"), "second-life"]), ok());
    }
    let mut l = Client::connect(c.resp_addr(leader));
    for i in 0..5 {
        assert_eq!(l.cmd(&["GET", &format!("k{i}")]), bulk("second-life"), "k{i}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--clock-file`: SIGUSR1 makes a replica read its clock file, and its timers run on the
/// clock it sets. The leader's clock slowed tenfold sends its heartbeats ten times as far
/// apart, past the others' election timeout, so another replica takes over; put back on real
/// time, it says so.
#[test]
fn a_replica_s_clock_is_bent_from_its_clock_file_on_sigusr1() {
    let dir = scratch("agora-kv-clock");
    let mut c = Cluster::new(&dir, 3);
    let files: Vec<PathBuf> = (0..3).map(|i| dir.join(format!("clock-{i}.toml"))).collect();
    for (i, f) in files.iter().enumerate() {
        c.start(i, &["--clock-file", f.to_str().unwrap()]);
    }
    let (leader, term) = c.leader(0);
    let set = |c: &Cluster, i: usize, text: &str| {
        std::fs::write(&files[i], text).unwrap();
        let pid = c.children[i].as_ref().expect("running").id() as i32;
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGUSR1) }, 0);
    };
    set(&c, leader, "skew_ms = 5000\ndrift_ppm = -900000\n");
    // Its report of the new clock, then a leader elsewhere.
    let mut reported = false;
    let deadline = Instant::now() + STUCK;
    let (other, later) = loop {
        let (i, v) = c.rx.recv_timeout(STUCK).expect("no event for a long time");
        if let Some(clock) = v.get("clock") {
            assert_eq!(i, leader, "{v}");
            assert_eq!(
                (clock["skew_ms"].as_f64(), clock["drift_ppm"].as_f64()),
                (Some(5000.0), Some(-900000.0))
            );
            reported = true;
            continue;
        }
        let t = v.get("term").and_then(|t| t.as_u64()).unwrap_or(0);
        if reported && v.get("leader").is_some() && i != leader && t > term {
            break (i, t);
        }
        assert!(Instant::now() < deadline, "no other leader after the clock was slowed");
    };
    assert!(later > term && other != leader);
    // A malformed file is reported, and the process keeps running.
    set(&c, leader, "drift_ppm = \"fast\"\n");
    set(&c, leader, "");
    loop {
        let (i, v) = c.rx.recv_timeout(STUCK).expect("no report of the clock put back");
        if let Some(clock) = v.get("clock") {
            assert_eq!(i, leader);
            assert_eq!((clock["skew_ms"].as_f64(), clock["drift_ppm"].as_f64()), (Some(0.0), Some(0.0)));
            break;
        }
    }
    assert!(c.children[leader].as_mut().unwrap().try_wait().unwrap().is_none(), "it still runs");
}
