//! Nodes of a cluster file as real processes, for the tests that start, kill and stop them —
//! the one helper of every process test.
//!
//! **Ports.** The helper binds every node's socket on port 0 (the kernel picks a free port),
//! writes the cluster file with the ports it got, and hands each node its socket as
//! `agora node --listen-fd 3`. It keeps the sockets for the whole test: no other process can
//! take a port between a check and a bind, a restarted node listens where its peers expect
//! it, and a peer dialling a node that is not running yet waits in the socket's backlog.
//!
//! **Synchronisation.** Nodes run with `--events`: one `event {JSON}` line on stderr when
//! they listen and one per observation. Tests wait for what they need to have happened (so
//! many writes acknowledged, a leader elected, every client done) and act on it; nothing
//! waits for a time to pass. At the end a test stops the nodes itself (SIGTERM: each prints
//! its results and ends as `interrupted`) once it has read what it needs.

#![allow(dead_code)]

use agora_net::LISTEN_FD;
use serde_json::Value;
use std::io::BufRead;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a test waits for the next event before it calls the cluster stuck: a guard
/// against hanging forever, not a measure of speed.
const STUCK: Duration = Duration::from_secs(300);
/// How long a test waits, at most, for what it waits for while events keep coming: a guard
/// against a cluster that is busy going nowhere, not a measure of speed.
const GIVE_UP: Duration = Duration::from_secs(900);
/// The latest events a test that gives up prints, to show what the nodes were doing.
const LAST_EVENTS: usize = 40;

/// Node processes of one cluster file.
pub struct Cluster {
    pub dir: PathBuf,
    pub config: PathBuf,
    listeners: Vec<TcpListener>,
    children: Vec<Option<Child>>,
    tx: mpsc::Sender<(usize, Value)>,
    rx: mpsc::Receiver<(usize, Value)>,
    /// The open-file limit (soft and hard) of the node processes, if not the test's own.
    pub fd_limit: Option<u64>,
}

/// A failed test must not leave its nodes running.
impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Cluster {
    /// `n` nodes of a cluster file `dir/cluster.toml` that starts with `head` (cluster,
    /// protocol, params...), each on a port of its own.
    pub fn new(dir: &Path, head: &str, n: usize) -> Self {
        let listeners: Vec<TcpListener> =
            (0..n).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind port 0")).collect();
        // Every cluster file holds the cluster's secret.
        let mut text = format!("secret = \"{}\"\n{head}", "5e".repeat(32));
        for (i, l) in listeners.iter().enumerate() {
            text.push_str(&format!("[[node]]\nid = {i}\naddr = \"{}\"\n", l.local_addr().unwrap()));
        }
        let config = dir.join("cluster.toml");
        std::fs::write(&config, text).unwrap();
        let (tx, rx) = mpsc::channel();
        Cluster {
            dir: dir.to_path_buf(),
            config,
            listeners,
            children: (0..n).map(|_| None).collect(),
            tx,
            rx,
            fd_limit: None,
        }
    }

    /// `agora node --id id` of this cluster, with its socket at `--listen-fd 3`; `--new` on
    /// the node's first start (its database in `data/` does not exist yet: a restart must find
    /// it).
    pub fn command(&self, id: usize) -> Command {
        let mut cmd = self.command_as_is(id);
        if !self.dir.join("data").join(format!("node-{id}.redb")).exists() {
            cmd.arg("--new");
        }
        cmd
    }

    /// `agora node --id id` of this cluster, with its socket at `--listen-fd 3`, and nothing
    /// said about its database: it must be there.
    pub fn command_as_is(&self, id: usize) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_agora"));
        cmd.args(["node", "--id", &id.to_string(), "--listen-fd", &LISTEN_FD.to_string(), "--config"])
            .arg(&self.config);
        let fd = self.listeners[id].as_raw_fd();
        // SAFETY: hand_down_listener is async-signal-safe.
        unsafe { cmd.pre_exec(move || agora_net::hand_down_listener(fd)) };
        if let Some(n) = self.fd_limit {
            let limit = libc::rlimit { rlim_cur: n as libc::rlim_t, rlim_max: n as libc::rlim_t };
            // SAFETY: setrlimit is async-signal-safe; the limit is the child's own.
            unsafe {
                cmd.pre_exec(move || match libc::setrlimit(libc::RLIMIT_NOFILE, &limit) {
                    0 => Ok(()),
                    _ => Err(std::io::Error::last_os_error()),
                })
            };
        }
        cmd
    }

    /// Starts node `id` (again, after a kill), printing its results as JSON at the end and
    /// its events as it goes.
    pub fn start_node(&mut self, id: usize) {
        let mut child = self
            .command(id)
            .args(["--json", "--events"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("agora node starts");
        let stderr = child.stderr.take().unwrap();
        let tx = self.tx.clone();
        // AGORA_TEST_NODE_LOGS=DIR keeps each node's stderr lines, events included (appended
        // across restarts; set RUST_LOG for log lines) to debug a run.
        let mut log = std::env::var("AGORA_TEST_NODE_LOGS").ok().map(|d| {
            std::fs::OpenOptions::new().create(true).append(true).open(format!("{d}/node-{id}.log")).unwrap()
        });
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(f) = &mut log {
                    let _ = std::io::Write::write_all(f, format!("{line}\n").as_bytes());
                }
                if let Some(json) = line.strip_prefix("event ") {
                    let v: Value = serde_json::from_str(json).expect("an event is JSON");
                    let _ = tx.send((id, v));
                }
            }
        });
        self.children[id] = Some(child);
    }

    pub fn start_all(&mut self) {
        for id in 0..self.children.len() {
            self.start_node(id);
        }
    }

    /// SIGKILL: the node gets no chance to do anything more.
    pub fn kill(&mut self, id: usize) {
        let mut c = self.children[id].take().expect("running");
        c.kill().expect("SIGKILL");
        c.wait().unwrap();
    }

    /// SIGTERM to node `id` alone: it leaves cleanly. Its results (it ends as `interrupted`).
    pub fn terminate(&mut self, id: usize) -> Value {
        let c = self.children[id].take().expect("running");
        // SAFETY: a signal to our own child process.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let out = c.wait_with_output().unwrap();
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("node {id}: {e}: {}", String::from_utf8_lossy(&out.stdout)));
        assert_eq!(v["end"], "interrupted", "node {id} ended by {} before it was stopped", v["end"]);
        v
    }

    /// Hands every event, in arrival order, to `f` (node, event) until it returns true.
    /// Panics, printing the latest events, if the nodes go quiet for `STUCK` or `f` is not
    /// satisfied within `GIVE_UP`.
    pub fn until(&self, mut f: impl FnMut(usize, &Value) -> bool) {
        let since = std::time::Instant::now();
        let mut last = std::collections::VecDeque::with_capacity(LAST_EVENTS);
        loop {
            let got = self.rx.recv_timeout(STUCK);
            let waited = since.elapsed();
            let Ok((id, v)) = got else {
                panic!("no event from any node for {STUCK:?}; the latest:\n{}", lines(&last));
            };
            if f(id, &v) {
                return;
            }
            if last.len() == LAST_EVENTS {
                last.pop_front();
            }
            last.push_back((id, v));
            if waited > GIVE_UP {
                panic!("still waiting after {GIVE_UP:?} of events; the latest:\n{}", lines(&last));
            }
        }
    }

    /// SIGTERM to every running node; their results (each ends as `interrupted`).
    pub fn stop_all(&mut self) -> Vec<Value> {
        for c in self.children.iter().flatten() {
            // SAFETY: a signal to our own child process.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        }
        let mut outputs = Vec::new();
        for (id, child) in self.children.iter_mut().enumerate() {
            let out = child.take().expect("running").wait_with_output().unwrap();
            let v: Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("node {id}: {e}: {}", String::from_utf8_lossy(&out.stdout)));
            assert_eq!(v["end"], "interrupted", "node {id} ended by {} before it was stopped", v["end"]);
            outputs.push(v);
        }
        outputs
    }
}

/// Events, one `node: JSON` line each.
fn lines(events: &std::collections::VecDeque<(usize, Value)>) -> String {
    events.iter().map(|(id, v)| format!("  {id}: {v}\n")).collect()
}

/// The observation an event carries, if it is one.
pub fn obs(event: &Value) -> Option<&Value> {
    event.get("obs")
}

/// A fresh scratch folder for one test process.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
