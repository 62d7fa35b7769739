//! The Raft log over real processes and redb: the leader is killed with SIGKILL under load,
//! and later a follower (never a majority at once); each is restarted; afterwards every
//! acknowledged write is found in every replica's durable log.

use agora_core::NodeId;
use agora_net::store::OpenMode;
use agora_protocols::raft::kv::Kv;
use agora_protocols::raft::{Body, Config, Replica};
mod procs;

use procs::{obs, Cluster};
use serde_json::Value;
use std::time::Duration;

const REPLICAS: usize = 3;
const CLIENTS: usize = 2;

// No compaction here, so that each replica's durable log holds every entry to look at;
// snapshots are exercised by the simulator campaigns. Nodes run until the test stops them.
const HEAD: &str =
    "cluster = \"kill\"\nprotocol = \"raft\"\ndata_dir = \"data\"\nidle_ms = 600000\nmax_time_ms = 3600000\n\
    [params]\nclients = 2\nmsgs = 5000\ninterval_ms = 0.6\nwindow = 16\nreads = 0.1\n\
    timeout_ms = 60\nsnapshot_every = 1000000\n";

/// What the test has read of the run so far.
#[derive(Default)]
struct Progress {
    /// Writes acknowledged to clients, and the highest log index among them.
    acked: usize,
    top: u64,
    /// The replica that most recently became leader, and its term.
    leader: (u64, usize),
    clients_done: usize,
    /// The highest index each replica has applied.
    applied: [u64; REPLICAS],
}

impl Progress {
    fn note(&mut self, node: usize, event: &Value) {
        let Some(o) = obs(event) else { return };
        if let Some(a) = o.get("Acked") {
            self.acked += 1;
            self.top = self.top.max(a["pos"]["index"].as_u64().unwrap());
        } else if let Some(l) = o.get("Leader") {
            self.leader = self.leader.max((l["term"].as_u64().unwrap(), node));
        } else if o.get("ClientDone").is_some() {
            self.clients_done += 1;
        } else if let Some(a) = o.get("Applied") {
            self.applied[node] = self.applied[node].max(a["index"].as_u64().unwrap());
        }
    }
}

/// Reads events until `k` writes in all have been acknowledged.
fn after_acks(c: &Cluster, p: &mut Progress, k: usize) {
    c.until(|node, e| {
        p.note(node, e);
        p.acked >= k
    })
}

#[test]
fn acknowledged_writes_survive_sigkill_of_leader_and_follower() {
    let dir = procs::scratch("agora-raft-kill");
    let mut c = Cluster::new(&dir, HEAD, REPLICAS + CLIENTS);
    c.start_all();
    let mut p = Progress::default();

    // Kill the leader under load; restart it once the others have gone on without it. Later
    // kill a follower of the new leader, and restart it once the others have gone on.
    after_acks(&c, &mut p, 1000);
    let first = p.leader.1;
    c.kill(first);
    after_acks(&c, &mut p, 2000);
    c.start_node(first);
    after_acks(&c, &mut p, 3500);
    let leader = p.leader.1;
    let follower = (0..REPLICAS).find(|&i| i != leader).unwrap();
    c.kill(follower);
    eprintln!("killed leader {first} and, later, follower {follower} (leader {leader})");
    after_acks(&c, &mut p, 4500);
    c.start_node(follower);

    // Every client has its answers and every replica has applied every acknowledged write.
    c.until(|node, e| {
        p.note(node, e);
        p.clients_done == CLIENTS && p.applied.iter().all(|&a| a >= p.top)
    });
    let outputs = c.stop_all();

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
