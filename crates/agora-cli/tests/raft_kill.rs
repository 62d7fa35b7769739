//! The Raft log over real processes and redb: the leader is killed with SIGKILL under load,
//! and later a follower (never a majority at once); each is restarted; afterwards every
//! acknowledged write is found in every replica's durable log.

use agora_core::NodeId;
use agora_protocols::raft::kv::Kv;
use agora_protocols::raft::{Body, Config, Replica};
use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const REPLICAS: usize = 3;
const CLIENTS: usize = 2;

/// Ports free right now, below Linux's ephemeral range.
fn free_ports(n: usize) -> Vec<u16> {
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

struct Cluster {
    config: PathBuf,
    metrics: Vec<u16>,
    children: Vec<Option<Child>>,
}

impl Cluster {
    fn start_node(&mut self, id: usize) {
        let child = Command::new(env!("CARGO_BIN_EXE_agora"))
            .args(["node", "--json", "--id", &id.to_string(), "--config"])
            .arg(&self.config)
            .args(["--metrics-addr", &format!("127.0.0.1:{}", self.metrics[id])])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("agora node starts");
        self.children[id] = Some(child);
    }

    fn kill(&mut self, id: usize) {
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
    fn leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let before: Vec<u64> = (0..REPLICAS).map(|i| self.sent(i, &["APPEND", "HEARTBEAT"])).collect();
            std::thread::sleep(Duration::from_millis(150));
            let after: Vec<u64> = (0..REPLICAS).map(|i| self.sent(i, &["APPEND", "HEARTBEAT"])).collect();
            let active: Vec<usize> = (0..REPLICAS).filter(|&i| after[i] > before[i]).collect();
            if active.len() == 1 {
                return active[0];
            }
        }
        panic!("no single leader found");
    }
}

fn cluster_file(dir: &Path, ports: &[u16]) -> PathBuf {
    // No compaction here, so that each replica's durable log holds every entry to look at;
    // snapshots are exercised by the simulator campaigns.
    let mut text = String::from(
        "cluster = \"kill\"\nprotocol = \"raft\"\ndata_dir = \"data\"\nidle_ms = 1500\nmax_time_ms = 90000\n\
         [params]\nclients = 2\nmsgs = 5000\ninterval_ms = 0.6\nwindow = 16\nreads = 0.1\n\
         timeout_ms = 60\nsnapshot_every = 1000000\n",
    );
    for (i, p) in ports.iter().enumerate() {
        text.push_str(&format!("[[node]]\nid = {i}\naddr = \"127.0.0.1:{p}\"\n"));
    }
    let path = dir.join("cluster.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn acknowledged_writes_survive_sigkill_of_leader_and_follower() {
    let dir = std::env::temp_dir().join(format!("agora-raft-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let n = REPLICAS + CLIENTS;
    let ports = free_ports(2 * n);
    let mut c = Cluster {
        config: cluster_file(&dir, &ports[..n]),
        metrics: ports[n..].to_vec(),
        children: (0..n).map(|_| None).collect(),
    };
    for id in 0..n {
        c.start_node(id);
    }

    // Kill the leader under load, restart it; later kill a follower, restart it.
    std::thread::sleep(Duration::from_millis(500));
    let first = c.leader();
    c.kill(first);
    std::thread::sleep(Duration::from_millis(400));
    c.start_node(first);
    std::thread::sleep(Duration::from_millis(500));
    let leader = c.leader();
    let follower = (0..REPLICAS).find(|&i| i != leader).unwrap();
    c.kill(follower);
    eprintln!("killed leader {first} and, later, follower {follower} (leader {leader})");
    std::thread::sleep(Duration::from_millis(400));
    c.start_node(follower);

    // Every node ends on its own once only heartbeats are left.
    let mut outputs = Vec::new();
    for (id, child) in c.children.iter_mut().enumerate() {
        let out = child.take().unwrap().wait_with_output().unwrap();
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("node {id}: {e}: {}", String::from_utf8_lossy(&out.stdout)));
        assert_eq!(v["end"], "idle", "node {id} ended by {}", v["end"]);
        outputs.push(v);
    }

    // What the clients were told: (session, seq, index, offset) of every acknowledged write.
    let mut acked = Vec::new();
    let mut reads = 0;
    for out in &outputs[REPLICAS..] {
        let obs = out["observations"].as_array().unwrap();
        assert!(obs.iter().any(|o| o[1].get("ClientDone").is_some()), "a client did not finish");
        for o in obs {
            if let Some(a) = o[1].get("Acked") {
                let pos = &a["pos"];
                acked.push((
                    a["session"].as_u64().unwrap(),
                    a["seq"].as_u64().unwrap(),
                    pos["index"].as_u64().unwrap(),
                    pos["offset"].as_u64().unwrap() as usize,
                ));
            }
            reads += o[1].get("ReadDone").is_some() as usize;
        }
    }
    assert!(acked.len() + reads == CLIENTS * 5000, "{} writes and {reads} reads answered", acked.len());
    let top = acked.iter().map(|a| a.2).max().unwrap();

    // Every replica's durable log holds every acknowledged write at its position, and the
    // replicas' logs are the same up to the last of them.
    let cfg = std::sync::Arc::new(Config::new(
        (0..REPLICAS as u32).map(NodeId).collect(),
        Duration::from_millis(60),
    ));
    let mut chains = Vec::new();
    for r in 0..REPLICAS {
        let (_store, stable) =
            agora_net::store::Store::open(&dir.join(format!("data/node-{r}.redb"))).unwrap();
        let replica = Replica::<Kv>::new(cfg.clone(), NodeId(r as u32), &stable);
        assert!(replica.last_index() >= top, "replica {r} ends at {} < {top}", replica.last_index());
        for &(session, seq, index, offset) in &acked {
            let entry = replica.entry(index).unwrap_or_else(|| panic!("replica {r} lacks entry {index}"));
            match &entry.body {
                Body::Commands { session: s, cmds, .. } => {
                    assert_eq!(*s, session, "replica {r}, entry {index}");
                    assert_eq!(cmds[offset].0, seq, "replica {r}, entry {index}");
                }
                Body::Noop => panic!("replica {r}: entry {index} is a no-op, acked as ({session}, {seq})"),
            }
        }
        chains.push(replica.chain_at(top).unwrap());
    }
    assert!(chains.windows(2).all(|w| w[0] == w[1]), "replica logs differ up to {top}");
    std::fs::remove_dir_all(&dir).unwrap();
}
