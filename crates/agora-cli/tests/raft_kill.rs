//! The Raft log over real processes and redb: the leader is killed with SIGKILL under load,
//! and later a follower (never a majority at once); each is restarted; afterwards every
//! acknowledged write is found in every replica's durable log.

use agora_core::NodeId;
use agora_net::store::OpenMode;
use agora_protocols::raft::kv::Kv;
use agora_protocols::raft::{Body, Config, Replica};
mod procs;

use procs::{free_ports, Cluster};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

const REPLICAS: usize = 3;
const CLIENTS: usize = 2;

fn cluster_file(dir: &Path, ports: &[u16]) -> PathBuf {
    // No compaction here, so that each replica's durable log holds every entry to look at;
    // snapshots are exercised by the simulator campaigns.
    let head = String::from(
        "cluster = \"kill\"\nprotocol = \"raft\"\ndata_dir = \"data\"\nidle_ms = 1500\nmax_time_ms = 90000\n\
         [params]\nclients = 2\nmsgs = 5000\ninterval_ms = 0.6\nwindow = 16\nreads = 0.1\n\
         timeout_ms = 60\nsnapshot_every = 1000000\n",
    );
    procs::cluster_file(dir, &head, ports)
}

#[test]
fn acknowledged_writes_survive_sigkill_of_leader_and_follower() {
    let dir = procs::scratch("agora-raft-kill");
    let n = REPLICAS + CLIENTS;
    let ports = free_ports(2 * n);
    let mut c = Cluster::new(cluster_file(&dir, &ports[..n]), ports[n..].to_vec(), REPLICAS);
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
            agora_net::store::Store::open(&dir.join(format!("data/node-{r}.redb")), OpenMode::Existing)
                .unwrap();
        let replica = Replica::<Kv>::new(cfg.clone(), NodeId(r as u32), &stable).unwrap();
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
