//! A node's storage as an operator may find it: missing, emptied, overwritten with garbage, a
//! snapshot file damaged. Each is refused with one line naming the file and exit code 3,
//! never started as a brand-new member; a replica told it lost its data (`--rejoin`) catches
//! up from the others and then holds every write acknowledged before the loss.

mod procs;

use agora_core::NodeId;
use agora_net::store::{OpenMode, Store};
use agora_protocols::raft::kv::Kv;
use agora_protocols::raft::{Config, Replica};
use procs::Cluster;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const REPLICAS: usize = 3;

fn agora(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agora")).args(args).stdin(Stdio::null()).output().unwrap()
}

/// A Raft cluster of three replicas and one client, snapshots every 50 entries.
const HEAD: &str = "cluster = \"disk\"\nprotocol = \"raft\"\ndata_dir = \"data\"\nidle_ms = 1500\n\
                    max_time_ms = 120000\n[params]\nclients = 1\nmsgs = 400\nwindow = 8\nsnapshot_every = 50\n";

/// The same cluster for `agora up`, on port 0 (up binds each node's socket).
fn up_file(dir: &Path) -> PathBuf {
    let mut text = format!("secret = \"{}\"\n{HEAD}", "5e".repeat(32));
    for i in 0..=REPLICAS {
        text.push_str(&format!("[[node]]\nid = {i}\naddr = \"127.0.0.1:0\"\n"));
    }
    let path = dir.join("up.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The replica's log, rebuilt from its database: (last index, whether it is rejoining).
fn replica_log(db: &Path) -> (u64, bool) {
    let (_store, stable) = Store::open(db, OpenMode::Existing).unwrap();
    let cfg = Config::new((0..REPLICAS as u32).map(NodeId).collect(), Duration::from_millis(100));
    let replica = Replica::<Kv>::new(std::sync::Arc::new(cfg), NodeId(1), &stable).unwrap();
    (replica.last_index(), replica.rejoining())
}

/// One line on stderr, exit code 3, naming `file`, saying `what`; no panic.
fn refused(out: &Output, file: &str, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains(file) && err.contains(what), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn damaged_storage_is_refused_and_a_wiped_replica_rejoins() {
    let dir = tempfile::tempdir().unwrap();
    let file = up_file(dir.path());
    let f = file.to_str().unwrap();
    let data = dir.path().join("data");
    // A whole new cluster: `up` creates every database.
    let first = agora(&["up", "--config", f, "--json"]);
    let v: Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(first.status.code(), Some(0), "{v}");
    let (top, _) = replica_log(&data.join("node-1.redb"));
    assert!(top >= 400 / 8, "replica 1 ends at {top}");

    // The same nodes one by one, each on a socket this test holds.
    let c = Cluster::new(dir.path(), HEAD, REPLICAS + 1);
    let node = |id: usize| c.command_as_is(id).output().unwrap();
    // Emptied, deleted, overwritten: each refused, in one line naming the file.
    std::fs::write(data.join("node-1.redb"), b"").unwrap();
    refused(&node(1), "node-1.redb", "0 bytes");
    let saved = std::fs::read(data.join("node-2.redb")).unwrap();
    std::fs::remove_file(data.join("node-2.redb")).unwrap();
    refused(&node(2), "node-2.redb", "--rejoin");
    let mut garbage = saved.clone();
    garbage[..4096.min(saved.len())].iter_mut().for_each(|b| *b = 0x5A);
    std::fs::write(data.join("node-2.redb"), &garbage).unwrap();
    refused(&node(2), "node-2.redb", "corrupt");
    std::fs::write(data.join("node-2.redb"), &saved).unwrap();
    // `up` will not start a cluster one of whose members lost its database.
    let dead = data.join("node-0.redb");
    let kept = std::fs::read(&dead).unwrap();
    std::fs::remove_file(&dead).unwrap();
    refused(&agora(&["up", "--config", f]), "node-0.redb", "--rejoin");
    std::fs::write(&dead, &kept).unwrap();
    // A snapshot file with one bit flipped.
    let snaps = data.join("node-0.later");
    let snap = std::fs::read_dir(&snaps).unwrap().next().expect("a snapshot was written").unwrap().path();
    let mut bytes = std::fs::read(&snap).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&snap, &bytes).unwrap();
    refused(&node(0), "node-0.later", "checksum");
    bytes[last] ^= 1;
    std::fs::write(&snap, &bytes).unwrap();

    // Replica 1 is told it lost its data: it starts empty (its damaged file kept beside) and
    // catches up from replicas 0 and 2; all three end together once every one of them is idle
    // (only heartbeats left), as under `agora up`. Ending each on its own idleness would race:
    // a follower that learns of the last commit a heartbeat after its leader is idle can see
    // the leader end first, and then campaign for ever.
    let mut nodes: Vec<_> = (0..REPLICAS)
        .map(|id| {
            let mut cmd = c.command_as_is(id);
            cmd.args(["--json", "--supervised"]);
            if id == 1 {
                cmd.arg("--rejoin");
            }
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
        })
        .collect();
    let (tx, idleness) = std::sync::mpsc::channel::<(usize, bool)>();
    for (id, n) in nodes.iter_mut().enumerate() {
        let (err, tx) = (n.stderr.take().unwrap(), tx.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let v = line.strip_prefix("event ").and_then(|j| serde_json::from_str::<Value>(j).ok());
                if let Some(idle) = v.and_then(|v| v["idle"].as_bool()) {
                    let _ = tx.send((id, idle));
                }
            }
        });
    }
    drop(tx);
    let mut idle = [false; REPLICAS];
    while !idle.iter().all(|i| *i) {
        let (id, now) = idleness.recv().expect("every node ended before all were idle at once");
        idle[id] = now;
    }
    // A closed stdin is a supervised node's cue to end.
    nodes.iter_mut().for_each(|n| drop(n.stdin.take()));
    for (id, n) in nodes.into_iter().enumerate() {
        let out = n.wait_with_output().unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("node {id}: {e}"));
        assert_eq!(v["end"], "idle", "node {id}: {v}");
    }
    assert!(data.join("node-1.redb.corrupt").exists(), "the emptied file is kept for inspection");
    let (now, rejoining) = replica_log(&data.join("node-1.redb"));
    assert!(!rejoining, "replica 1 caught up and votes again");
    assert!(now >= top, "replica 1 ends at {now}, below the {top} it had before");

    // A value that does not decode (a sound database, a wrong value): refused, naming the key.
    {
        let (store, _) = Store::open(&data.join("node-2.redb"), OpenMode::Existing).unwrap();
        store.apply(&[agora_net::store::Write::Put("raft/hs".into(), vec![0xFF; 3])]).unwrap();
    }
    refused(&node(2), "node-2.redb", "raft/hs");
}
