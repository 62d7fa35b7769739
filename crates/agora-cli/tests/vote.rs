//! `agora vote`: clusters of `agora vote serve` processes talked to over the line protocol
//! (docs/vote-protocol.md) — members vote while the leader is SIGKILLed, the members of the
//! dead server resume their sessions on the others with their tokens, no acknowledged vote is
//! lost and every member sees the same events in the same order; the conformance run and a
//! Python client against a real server; hostile input; the embedded cluster's own checks.
//!
//! Ports: the test binds every server's cluster and member sockets on port 0 and hands them
//! down (`--listen-fd 3 --vote-fd 4`), as tests/kv.rs does.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_agora");

/// A guard against hanging forever, not a measure of speed.
const STUCK: Duration = Duration::from_secs(120);

struct Cluster {
    dir: PathBuf,
    config: PathBuf,
    peers: Vec<TcpListener>,
    members: Vec<TcpListener>,
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
        let members: Vec<TcpListener> = (0..n).map(|_| bind()).collect();
        let mut text = format!(
            "cluster = \"votetest\"\nprotocol = \"vote\"\nsecret = \"{}\"\ndata_dir = \"data\"\n[params]\ntimeout_ms = 100\n",
            "7a".repeat(32)
        );
        for i in 0..n {
            text.push_str(&format!(
                "[[node]]\nid = {i}\naddr = \"{}\"\nvote = \"{}\"\n",
                peers[i].local_addr().unwrap(),
                members[i].local_addr().unwrap()
            ));
        }
        let config = dir.join("cluster.toml");
        std::fs::write(&config, text).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        Cluster {
            dir: dir.to_path_buf(),
            config,
            peers,
            members,
            children: (0..n).map(|_| None).collect(),
            tx,
            rx,
        }
    }

    fn addr(&self, i: usize) -> SocketAddr {
        self.members[i].local_addr().unwrap()
    }

    fn start(&mut self, i: usize, extra: &[&str]) {
        let mut cmd = Command::new(BIN);
        cmd.args(["vote", "serve", "--id", &i.to_string(), "--listen-fd", "3", "--vote-fd", "4", "--events"])
            .arg("--config")
            .arg(&self.config)
            .args(extra);
        if !self.dir.join("data").join(format!("node-{i}.redb")).exists() {
            cmd.arg("--new");
        }
        let (a, b) = (self.peers[i].as_raw_fd(), self.members[i].as_raw_fd());
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
            cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("agora vote serve starts");
        let stderr = child.stderr.take().unwrap();
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
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

    /// The server that announced itself leader in the highest term so far (after waiting
    /// for at least one).
    fn leader(&self) -> usize {
        let mut best: Option<(u64, usize)> = None;
        loop {
            let got = if best.is_none() { self.rx.recv_timeout(STUCK).ok() } else { self.rx.try_recv().ok() };
            let Some((i, v)) = got else { break };
            if let (Some(t), Some(_)) = (v.get("term").and_then(|t| t.as_u64()), v.get("leader")) {
                if best.is_none_or(|(bt, _)| t > bt) {
                    best = Some((t, i));
                }
            }
        }
        best.expect("a leader").1
    }

    fn admin_token(&self) -> String {
        let out =
            Command::new(BIN).args(["vote", "admin-token", "--config"]).arg(&self.config).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

/// A line-protocol client: replies in order, pushed events kept.
struct Member {
    rd: BufReader<TcpStream>,
    wr: TcpStream,
    events: Vec<(u64, String)>,
    bye: Option<String>,
}

impl Member {
    fn connect(addr: SocketAddr) -> Member {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(STUCK)).unwrap();
        let mut m =
            Member { rd: BufReader::new(s.try_clone().unwrap()), wr: s, events: Vec::new(), bye: None };
        let hello = m.line().expect("HELLO");
        assert!(hello.starts_with("HELLO agora-vote 1 "), "{hello}");
        m
    }

    fn line(&mut self) -> Option<String> {
        let mut l = String::new();
        match self.rd.read_line(&mut l) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(l.trim_end_matches(['\r', '\n']).to_string()),
        }
    }

    /// The next reply; events before it are kept. `None` once closed.
    fn reply(&mut self) -> Option<String> {
        loop {
            let l = self.line()?;
            if let Some(rest) = l.strip_prefix("EVENT ") {
                let (n, e) = rest.split_once(' ').unwrap();
                self.events.push((n.parse().unwrap(), e.to_string()));
            } else if l.starts_with("BYE") {
                self.bye = Some(l);
            } else if !l.starts_with('#') {
                return Some(l);
            }
        }
    }

    fn try_cmd(&mut self, line: &str) -> Option<String> {
        self.wr.write_all(format!("{line}\n").as_bytes()).ok()?;
        self.reply()
    }

    fn cmd(&mut self, line: &str) -> String {
        self.try_cmd(line).unwrap_or_else(|| panic!("{line}: connection closed ({:?})", self.bye))
    }

    /// Reads until an event satisfies `want`.
    fn wait_event(&mut self, want: impl Fn(&str) -> bool) {
        while !self.events.iter().any(|(_, e)| want(e)) {
            let l = self.line().expect("connection open while waiting for an event");
            if let Some(rest) = l.strip_prefix("EVENT ") {
                let (n, e) = rest.split_once(' ').unwrap();
                self.events.push((n.parse().unwrap(), e.to_string()));
            }
        }
    }
}

fn field<'a>(reply: &'a str, key: &str) -> &'a str {
    reply
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key}= in {reply}"))
}

fn accounts(addr: SocketAddr, token: &str, names: &[String]) {
    let mut a = Member::connect(addr);
    assert_eq!(a.cmd(&format!("ADMIN {token}")), "OK ADMIN");
    for n in names {
        assert!(a.cmd(&format!("ACCOUNT {n} pw-{n}")).starts_with("OK ACCOUNT pin="));
    }
}

#[test]
fn votes_survive_sigkill_of_the_leader_and_members_resume_their_sessions_elsewhere() {
    let dir = scratch("agora-vote");
    let mut c = Cluster::new(&dir, 3);
    for i in 0..3 {
        c.start(i, &[]);
    }
    let token = c.admin_token();
    let names: Vec<String> = (0..6).map(|i| format!("m{i}")).collect();
    accounts(c.addr(0), &token, &names);
    let leader = c.leader();

    // Two members on each server.
    let mut ms: Vec<Member> = (0..6).map(|i| Member::connect(c.addr(i % 3))).collect();
    let mut tokens = Vec::new();
    let mut pins = Vec::new();
    for (i, m) in ms.iter_mut().enumerate() {
        let r = m.cmd(&format!("LOGIN {0} pw-{0}", names[i]));
        assert!(r.starts_with("OK LOGIN "), "{r}");
        tokens.push(field(&r, "token").to_string());
        pins.push(field(&r, "pin").to_string());
    }
    let r = ms[0].cmd("OPEN votes=6 Kill the leader? | yes | no");
    let q = field(&r, "question").to_string();
    for m in ms.iter_mut() {
        m.wait_event(|e| e.starts_with(&format!("QUESTION {q} ")));
    }
    let mut acked: BTreeMap<String, &str> = BTreeMap::new();
    for (i, m) in ms.iter_mut().enumerate().take(3) {
        let r = m.cmd(&format!("VOTE {q} A"));
        assert!(r.starts_with(&format!("OK VOTE question={q} option=A again=no")), "{r}");
        acked.insert(pins[i].clone(), "A");
    }

    c.kill(leader);

    // The members of the dead server resume on the next one with their tokens; the others
    // go on where they are.
    for i in 0..6 {
        if i % 3 != leader {
            continue;
        }
        let last = ms[i].events.last().map_or(0, |e| e.0);
        let mut m = Member::connect(c.addr((leader + 1) % 3));
        let r = m.cmd(&format!("RESUME {} {last}", tokens[i]));
        assert!(r.starts_with(&format!("OK RESUME pin={} ", pins[i])), "{r}");
        m.events = std::mem::take(&mut ms[i].events);
        // What RESUME replayed arrives before the next reply.
        ms[i] = m;
    }
    for (i, m) in ms.iter_mut().enumerate() {
        let r = m.cmd(&format!("VOTE {q} {}", if i < 3 { "A" } else { "B" }));
        assert!(r.starts_with("OK VOTE "), "member {i} after the kill: {r}");
        if i >= 3 {
            assert!(r.contains("again=no"), "{r}");
            acked.insert(pins[i].clone(), "B");
        } else {
            assert!(r.contains("again=yes"), "a vote acknowledged before the kill is still counted: {r}");
        }
    }
    for m in ms.iter_mut() {
        m.wait_event(|e| e == format!("CLOSED {q}"));
    }
    // Every acknowledged vote counted once.
    let stats = ms[1].cmd(&format!("STATS {q}"));
    let v: serde_json::Value =
        serde_json::from_str(stats.split_once(' ').unwrap().1.split_once(' ').unwrap().1).unwrap();
    let a = acked.values().filter(|o| **o == "A").count() as u64;
    let b = acked.values().filter(|o| **o == "B").count() as u64;
    assert_eq!(v["options"][0]["votes"].as_u64(), Some(a), "{stats}");
    assert_eq!(v["options"][1]["votes"].as_u64(), Some(b), "{stats}");
    assert_eq!(v["votes"].as_u64(), Some(6));

    // An administrator's reading of a server's board (`BOARD`): refused without `ADMIN`;
    // every surviving server pushed the question's close to its members, so each has applied
    // the six votes and its board counts them as `STATS` does.
    for at in (0..3).filter(|&s| s != leader) {
        let mut a = Member::connect(c.addr(at));
        assert!(a.cmd("BOARD").starts_with("ERR not-admin"));
        assert_eq!(a.cmd(&format!("ADMIN {token}")), "OK ADMIN");
        let r = a.cmd("BOARD");
        let b: serde_json::Value =
            serde_json::from_str(r.strip_prefix("OK BOARD ").unwrap_or_else(|| panic!("{r}"))).unwrap();
        assert_eq!(b["server"].as_u64(), Some(at as u64), "{r}");
        assert!(matches!(b["role"].as_str(), Some("leader" | "follower")), "{r}");
        assert_eq!((&b["members"], b["questions"].as_u64()), (&v["members"], Some(1)), "{r}");
        let latest = &b["latest"][0];
        assert_eq!(latest["question"].to_string(), q, "{r}");
        assert_eq!((&latest["options"], &latest["closed"]), (&v["options"], &v["closed"]), "{r}");
    }

    // The same events, in the same order, for everyone: numbers without holes from each
    // member's first, the same event under the same number.
    let mut by_number: BTreeMap<u64, String> = BTreeMap::new();
    for (i, m) in ms.iter().enumerate() {
        for w in m.events.windows(2) {
            assert_eq!(w[1].0, w[0].0 + 1, "member {i}: events {:?}", m.events);
        }
        for (n, e) in &m.events {
            let prev = by_number.entry(*n).or_insert_with(|| e.clone());
            assert_eq!(prev, e, "event {n}");
        }
    }
    assert!(by_number.values().any(|e| e.starts_with(&format!("CLOSED {q}"))));

    // A session after LOGOUT does not work, on any server.
    assert_eq!(ms[4].cmd("LOGOUT"), "OK LOGOUT");
    for s in 0..3 {
        if s == leader {
            continue;
        }
        let mut m = Member::connect(c.addr(s));
        assert!(m.cmd(&format!("RESUME {}", tokens[4])).starts_with("ERR no-session"));
    }
    assert!(ms[4].cmd("STATS").starts_with("ERR not-logged-in"));
    ms[0].wait_event(|e| e == format!("LEAVE {}", pins[4]));
}

#[test]
fn the_conformance_run_and_a_python_client_pass_against_a_cluster() {
    let dir = scratch("agora-vote-conf");
    let mut c = Cluster::new(&dir, 3);
    for i in 0..3 {
        c.start(i, &[]);
    }
    let token = c.admin_token();
    for s in [0, 2] {
        let out = Command::new(BIN)
            .args(["vote", "conformance", "--json", "--server", &c.addr(s).to_string()])
            .env("AGORA_VOTE_ADMIN_TOKEN", &token)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|_| panic!("{text}"));
        assert_eq!(v["passed"], true, "{v}");
        assert_eq!(v["cases"].as_object().unwrap().len(), 9, "{v}");
        assert!(out.status.success());
    }
    // With a wrong administrator token the run fails, and says where.
    let out = Command::new(BIN)
        .args(["vote", "conformance", "--json", "--server", &c.addr(1).to_string(), "--admin-token", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_ne!(v["cases"]["accounts"], "ok");

    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("note: python3 is not installed; the Python client was not run");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/vote_client.py");
    accounts(c.addr(0), &token, &["py".to_string()]);
    let out = Command::new("python3")
        .arg(&script)
        .args(["--server", &c.addr(1).to_string(), "--name", "py", "--password", "pw-py", "--demo"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(v["stats"]["votes"], 1, "{v}");
    assert_eq!(v["stats"]["options"][0]["votes"], 1, "{v}");
    let events: Vec<&str> = v["events"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
    assert!(events.iter().any(|e| e.starts_with("QUESTION ")), "{events:?}");
    assert!(events.iter().any(|e| e.starts_with("CLOSED ")), "{events:?}");
}

#[test]
fn hostile_input_gets_errors_floods_and_garbage_are_closed_and_others_go_on() {
    let dir = scratch("agora-vote-hostile");
    let mut c = Cluster::new(&dir, 1);
    c.start(0, &["--max-clients", "5"]);
    let token = c.admin_token();
    accounts(c.addr(0), &token, &["ok".to_string()]);
    let mut good = Member::connect(c.addr(0));
    assert!(good.cmd("LOGIN ok pw-ok").starts_with("OK LOGIN"));

    // Bad lines get an error and the connection goes on.
    let mut m = Member::connect(c.addr(0));
    m.wr.write_all(b"\xc3\x28 garbage\n").unwrap();
    assert!(m.reply().unwrap().starts_with("ERR invalid-utf8"));
    let mut big = vec![b'A'; 1 << 20];
    big.push(b'\n');
    m.wr.write_all(&big).unwrap();
    assert!(m.reply().unwrap().starts_with("ERR too-long"));
    assert!(m.cmd("DROP TABLE votes").starts_with("ERR unknown-command"));
    assert!(m.cmd("LOGIN ok wrong").starts_with("ERR bad-login"));
    assert!(m.cmd("RESUME forged-token").starts_with("ERR no-session"));
    assert!(m.cmd("VOTE 1 A").starts_with("ERR not-logged-in"));
    assert_eq!(m.cmd("PING"), "OK PING");

    // Garbage and nothing else: closed with a reason after 100 refused lines.
    let mut g = Member::connect(c.addr(0));
    g.wr.write_all("%%%\n".repeat(100).as_bytes()).unwrap();
    let lines = everything(&mut g);
    assert_eq!(lines.iter().filter(|l| l.starts_with("ERR unknown-command")).count(), 100);
    assert!(lines.last().is_some_and(|l| l.starts_with("BYE errors")), "{:?}", lines.last());

    // A flood: refused with slow-down, then closed.
    let mut f = Member::connect(c.addr(0));
    let mut w = f.wr.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let flood = "PING\n".repeat(20_000);
        let _ = w.write_all(flood.as_bytes());
    });
    let lines = everything(&mut f);
    writer.join().unwrap();
    assert!(lines.iter().any(|l| l.starts_with("ERR slow-down")));
    assert!(lines.iter().any(|l| l.starts_with("BYE flood")), "{:?}", lines.last());

    // A connection limit: past it, connections are told and closed.
    let mut held = Vec::new();
    let mut busy = 0;
    for _ in 0..10 {
        let s = TcpStream::connect(c.addr(0)).unwrap();
        s.set_read_timeout(Some(STUCK)).unwrap();
        let mut first = String::new();
        BufReader::new(s.try_clone().unwrap()).read_line(&mut first).unwrap();
        if first.starts_with("BYE busy") {
            busy += 1;
        } else {
            assert!(first.starts_with("HELLO"), "{first}");
            held.push(s);
        }
    }
    assert!(busy >= 5, "{busy} refused");
    assert!(held.len() + 2 <= 5, "{} served at once beside 2", held.len());

    // The logged-in member never noticed.
    assert_eq!(good.cmd("PING"), "OK PING");
    assert!(good.cmd("DISCOVER").starts_with("OK DISCOVER count=1 "));
}

/// Every line until the server closes the connection.
fn everything(m: &mut Member) -> Vec<String> {
    let mut lines = Vec::new();
    while let Some(l) = m.line() {
        lines.push(l);
    }
    lines
}

#[test]
fn the_embedded_cluster_runs_its_crowd_and_passes_its_checks() {
    let out = Command::new(BIN)
        .args([
            "vote",
            "--json",
            "--clients",
            "9",
            "--vanish",
            "2",
            "--seed",
            "5",
            "--session-timeout-ms",
            "3000",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|_| panic!("{text}"));
    assert_eq!(v["checks_passed"], true, "{v}");
    assert_eq!(v["members"], 9);
    assert_eq!(v["votes_acknowledged"], 7, "two members vanished before voting");
    let history: Vec<&str> = v["history"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
    assert_eq!(history.iter().filter(|e| e.split(' ').nth(1) == Some("JOIN")).count(), 9);
    assert_eq!(history.iter().filter(|e| e.split(' ').nth(1) == Some("FAIL")).count(), 2);
    assert!(out.status.success());
    // A mistake is one line and exit code 2.
    let out = Command::new(BIN).args(["vote", "--clients", "4", "--vanish", "2"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim().lines().count(), 1);
}

#[test]
fn tls_serves_the_line_protocol_to_openssl_s_client() {
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("note: openssl is not installed; TLS was not tested");
        return;
    }
    let dir = scratch("agora-vote-tls");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
        .args(["-days", "2", "-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let mut c = Cluster::new(&dir, 1);
    c.start(0, &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]);

    let mut s = Command::new("openssl")
        .args(["s_client", "-quiet", "-connect", &c.addr(0).to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    s.stdin.take().unwrap().write_all(b"PING\nEXIT\n").unwrap();
    let out = s.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.first().is_some_and(|l| l.starts_with("HELLO agora-vote 1 ")), "{text}");
    assert!(lines.contains(&"OK PING"), "{text}");
    assert!(lines.last().is_some_and(|l| l.starts_with("BYE exit")), "{text}");

    // Plain text on the TLS port is not the protocol: no HELLO, and the connection closes.
    let mut plain = TcpStream::connect(c.addr(0)).unwrap();
    plain.set_read_timeout(Some(STUCK)).unwrap();
    plain.write_all(b"PING\n").unwrap();
    let mut got = Vec::new();
    let _ = std::io::Read::read_to_end(&mut plain, &mut got);
    assert!(!String::from_utf8_lossy(&got).contains("HELLO"));
}

#[test]
fn vote_mistakes_exit_2_with_one_line() {
    let dir = scratch("agora-vote-mistakes");
    let c = Cluster::new(&dir, 1);
    let config = c.config.to_str().unwrap().to_string();
    let kv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/kv-cluster.toml");
    let no_vote_addr = dir.join("novote.toml");
    std::fs::write(&no_vote_addr, std::fs::read_to_string(&c.config).unwrap().replace("vote = ", "resp = "))
        .unwrap();
    let not_pem = dir.join("not.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let np = not_pem.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["vote", "serve", "--config", kv.to_str().unwrap(), "--id", "0"], "runs `protocol = \"vote\"`"),
        (vec!["vote", "serve", "--config", no_vote_addr.to_str().unwrap(), "--id", "0"], "no `vote` address"),
        (vec!["vote", "serve", "--config", &config, "--id", "3"], "--id 3"),
        (vec!["vote", "serve", "--config", &config, "--id", "0", "--tls-cert", np], "--tls-key"),
        (
            vec!["vote", "serve", "--config", &config, "--id", "0", "--tls-cert", np, "--tls-key", np],
            "--tls-cert",
        ),
        (vec!["vote", "--clients", "2"], "--clients"),
        (vec!["vote", "--clients", "6", "--vanish", "3"], "--vanish 3"),
        (vec!["vote", "conformance", "--server", "no-such-host.invalid:1", "--admin-token", "x"], "--server"),
        (vec!["vote", "admin-token", "--config", "/nonexistent.toml"], "/nonexistent.toml"),
    ];
    for (args, expected) in cases {
        common::assert_mistake(&args, expected);
    }
}

#[test]
fn the_bench_at_a_small_size_reports_consistent_figures() {
    let out = Command::new(BIN)
        .args(["vote", "bench", "--json", "--clients", "30", "--questions", "2", "--kill-leader"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|_| panic!("{text}{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(v["consistent"], true, "{v}");
    assert_eq!(v["clients"], 30);
    assert_eq!(v["votes_cast"], 60, "{v}");
    assert_eq!(v["votes_acknowledged"], 60, "every vote cast is acknowledged: {v}");
    assert_eq!(v["votes_counted"], 60, "STATS after the kill counts every acknowledged vote: {v}");
    assert_eq!(v["votes_lost"], 0, "{v}");
    assert_eq!(v["join_seen_by"], 30, "every member saw the probe's JOIN: {v}");
    let k = &v["kill_leader"];
    assert_eq!(k["to_resume"], 10, "a third of the members were on the leader: {v}");
    assert_eq!(k["resumed"], k["to_resume"], "{v}");
    assert_eq!(v["argon2id"]["m_kib"], 19456, "{v}");
    assert!(v["slow_while_voting"].is_array(), "{v}");
    assert_eq!(v["questions_seen_by"], 30, "every member saw the questions before voting: {v}");
    for key in [
        "votes_per_s",
        "logins_per_s",
        "join_to_all_ms",
        "questions_to_all_ms",
        "servers_peak_mib",
        "server_bytes_per_member",
    ] {
        assert!(v[key].as_f64().is_some_and(|x| x >= 0.0), "{key}: {v}");
    }
    assert!(out.status.success());
    // A mistake is one line and exit code 2.
    let out = Command::new(BIN).args(["vote", "bench", "--clients", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(BIN)
        .args(["vote", "bench", "--servers", "127.0.0.1:1", "--kill-leader"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
