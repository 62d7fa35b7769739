//! Running nodes of a cluster file as real processes, for the tests that kill them.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Ports free right now, below Linux's ephemeral range.
pub fn free_ports(n: usize) -> Vec<u16> {
    let mut ports = Vec::new();
    let mut p = 40_000 + (std::process::id() % 400) as u16 * 50;
    while ports.len() < n {
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            ports.push(p);
        }
        p += 1;
    }
    ports
}

/// Node processes of a cluster file, each with a Prometheus endpoint.
pub struct Cluster {
    pub config: PathBuf,
    pub metrics: Vec<u16>,
    pub children: Vec<Option<Child>>,
    /// Nodes `0..replicas` are the ones whose leader `leader` looks for.
    pub replicas: usize,
    /// Whether each node has been started before (its first start creates its database).
    pub started: Vec<bool>,
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
    pub fn new(config: PathBuf, metrics: Vec<u16>, replicas: usize) -> Self {
        let children = (0..metrics.len()).map(|_| None).collect();
        let started = vec![false; metrics.len()];
        Cluster { config, metrics, children, replicas, started }
    }

    pub fn start_node(&mut self, id: usize) {
        let child = Command::new(env!("CARGO_BIN_EXE_agora"))
            .args(["node", "--json", "--id", &id.to_string(), "--config"])
            .arg(&self.config)
            .args(["--metrics-addr", &format!("127.0.0.1:{}", self.metrics[id])])
            .args(if self.started[id] { &[][..] } else { &["--new"][..] })
            .stdout(Stdio::piped())
            // AGORA_TEST_NODE_LOGS=DIR keeps each node's log (appended across restarts) to debug a run.
            .stderr(match std::env::var("AGORA_TEST_NODE_LOGS") {
                Ok(d) => Stdio::from(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(format!("{d}/node-{id}.log"))
                        .unwrap(),
                ),
                Err(_) => Stdio::null(),
            })
            .spawn()
            .expect("agora node starts");
        self.children[id] = Some(child);
        self.started[id] = true;
    }

    pub fn kill(&mut self, id: usize) {
        let mut c = self.children[id].take().expect("running");
        c.kill().expect("SIGKILL");
        c.wait().unwrap();
    }

    /// Messages of `kind` node `id` has sent (its Prometheus endpoint), 0 if unreachable.
    fn sent(&self, id: usize, kinds: &[&str]) -> u64 {
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.metrics[id])) else { return 0 };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        text.lines()
            .filter(|l| l.starts_with("agora_kind_messages_sent_total"))
            .filter(|l| kinds.iter().any(|k| l.contains(&format!("kind=\"{k}\""))))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    /// The replica that is sending appends or heartbeats now.
    pub fn leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let before: Vec<u64> =
                (0..self.replicas).map(|i| self.sent(i, &["APPEND", "HEARTBEAT"])).collect();
            std::thread::sleep(Duration::from_millis(150));
            let after: Vec<u64> =
                (0..self.replicas).map(|i| self.sent(i, &["APPEND", "HEARTBEAT"])).collect();
            let active: Vec<usize> = (0..self.replicas).filter(|&i| after[i] > before[i]).collect();
            if active.len() == 1 {
                return active[0];
            }
        }
        panic!("no single leader found");
    }
}

/// Writes `dir/cluster.toml`: a secret, `head` (cluster, protocol, params...) and one node
/// per port.
pub fn cluster_file(dir: &Path, head: &str, ports: &[u16]) -> PathBuf {
    let mut text = format!("secret = \"{}\"\n{head}", "5e".repeat(32));
    for (i, p) in ports.iter().enumerate() {
        text.push_str(&format!("[[node]]\nid = {i}\naddr = \"127.0.0.1:{p}\"\n"));
    }
    let path = dir.join("cluster.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A fresh scratch folder for one test process.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
