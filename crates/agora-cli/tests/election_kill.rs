//! The election over real processes and redb: the legislature's leader is killed with
//! SIGKILL while ballots flow, then a coordinator and a region gateway; each is restarted.
//! Every acknowledged ballot is counted exactly once and every replica publishes the same
//! results.

mod procs;

use procs::{free_ports, Cluster};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

const REPLICAS: usize = 3;
const NODES: usize = REPLICAS + 12;
const VOTERS: u64 = 60_000;

fn cluster_file(dir: &Path, ports: &[u16]) -> PathBuf {
    let head = format!(
        "cluster = \"kill\"\nprotocol = \"election\"\ndata_dir = \"data\"\nidle_ms = 2000\nmax_time_ms = 30000\n\
         [params]\nclients = 12\nvoters = {VOTERS}\nbad_ballots = 0.001\nwindow = 64\ntimeout_ms = 60\n"
    );
    procs::cluster_file(dir, &head, ports)
}

#[test]
fn every_acknowledged_ballot_is_counted_once_across_sigkills() {
    let dir = procs::scratch("agora-election-kill");
    let ports = free_ports(2 * NODES);
    let mut c = Cluster::new(cluster_file(&dir, &ports[..NODES]), ports[NODES..].to_vec(), REPLICAS);
    for id in 0..NODES {
        c.start_node(id);
    }
    std::thread::sleep(Duration::from_millis(700));
    let leader = c.leader();
    c.kill(leader);
    std::thread::sleep(Duration::from_millis(400));
    c.start_node(leader);
    std::thread::sleep(Duration::from_millis(500));
    // A coordinator (node 3) and a region gateway (node 6), at another moment.
    c.kill(3);
    c.kill(6);
    std::thread::sleep(Duration::from_millis(300));
    c.start_node(3);
    c.start_node(6);
    eprintln!("killed replica {leader}, then coordinator 3 and region 6");

    let mut outputs = Vec::new();
    for (id, child) in c.children.iter_mut().enumerate() {
        let out = child.take().unwrap().wait_with_output().unwrap();
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("node {id}: {e}: {}", String::from_utf8_lossy(&out.stdout)));
        if v["end"] != "idle" {
            // What the node was doing last, to tell why it never went to the background.
            let obs = v["observations"].as_array().unwrap();
            let last: Vec<String> = obs.iter().rev().take(5).map(|o| o.to_string()).collect();
            eprintln!(
                "node {id} ended by {}; by kind {}; last observations {last:#?}",
                v["end"], v["by_kind"]
            );
        }
        assert_eq!(v["end"], "idle", "node {id} ended by {}", v["end"]);
        outputs.push(v);
    }
    // The citizens: their receipts, and the results they received.
    let mut receipts: BTreeMap<u64, u64> = BTreeMap::new();
    let mut results = BTreeSet::new();
    for out in &outputs[REPLICAS + 7..] {
        for o in out["observations"].as_array().unwrap() {
            let o = &o[1];
            if let Some(a) = o.get("Answered") {
                if let Some(r) = a["answer"].get("Counted") {
                    if a["intent"] == "Valid" {
                        let prev = receipts.insert(a["voter"].as_u64().unwrap(), r["leaf"].as_u64().unwrap());
                        assert!(prev.is_none(), "voter {} acknowledged twice", a["voter"]);
                    }
                }
            }
            if let Some(r) = o.get("Results") {
                results.insert(r["results"].to_string());
            }
        }
    }
    assert_eq!(results.len(), 1, "every citizen received the same results");
    let published: Value = serde_json::from_str(results.iter().next().unwrap()).unwrap();
    // Every voter's ballot was acknowledged, at a distinct leaf, and counted exactly once.
    assert_eq!(receipts.len() as u64, VOTERS);
    let leaves: BTreeSet<u64> = receipts.values().copied().collect();
    assert_eq!(leaves.len() as u64, VOTERS, "two receipts name the same leaf");
    assert_eq!(published["counted"].as_u64(), Some(VOTERS));
    let national: u64 = published["national"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).sum();
    assert_eq!(national, VOTERS);
    // Every replica's final instance tallied to the published digest.
    for (r, out) in outputs[..REPLICAS].iter().enumerate() {
        let tallied: Vec<&Value> =
            out["observations"].as_array().unwrap().iter().filter_map(|o| o[1].get("Tallied")).collect();
        assert!(!tallied.is_empty(), "replica {r} never tallied after its last start");
        for t in tallied {
            assert_eq!(t["digest"], published["digest"], "replica {r}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
