//! The election over real processes and redb: the legislature's leader is killed with
//! SIGKILL while ballots flow, then a coordinator and a region gateway; each is restarted.
//! Every acknowledged ballot is counted exactly once and every replica publishes the same
//! results.

mod procs;

use procs::{obs, Cluster};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

const REPLICAS: usize = 3;
const NODES: usize = REPLICAS + 12;
const CITIZENS: usize = 5;
const VOTERS: u64 = 60_000;

/// What the test has read of the run so far.
#[derive(Default)]
struct Progress {
    /// Ballots answered to citizens.
    answered: u64,
    /// The replica that most recently became leader, and its term.
    leader: (u64, usize),
    /// Nodes that received the results.
    results: BTreeSet<usize>,
    /// Replicas that tallied since they last started.
    tallied: BTreeSet<usize>,
    /// Nodes that said where they listen: a node says it before it observes anything (what
    /// `agora cluster` relies on to tell a whole log from a rotated one).
    listening: BTreeSet<usize>,
}

impl Progress {
    fn note(&mut self, node: usize, event: &Value) {
        if event.get("listening").is_some() {
            self.tallied.remove(&node);
            self.listening.insert(node);
        }
        let Some(o) = obs(event) else { return };
        assert!(
            self.listening.contains(&node),
            "node {node} observed before it said where it listens: {event}"
        );
        if o.get("Answered").is_some() {
            self.answered += 1;
        } else if let Some(l) = o.get("Raft").and_then(|r| r.get("Leader")) {
            self.leader = self.leader.max((l["term"].as_u64().unwrap(), node));
        } else if o.get("Results").is_some() {
            self.results.insert(node);
        } else if o.get("Tallied").is_some() {
            self.tallied.insert(node);
        }
    }
}

/// Reads events until `k` ballots in all have been answered.
fn after_answers(c: &Cluster, p: &mut Progress, k: u64) {
    c.until(|node, e| {
        p.note(node, e);
        p.answered >= k
    })
}

#[test]
fn every_acknowledged_ballot_is_counted_once_across_sigkills() {
    let dir = procs::scratch("agora-election-kill");
    let head = format!(
        "cluster = \"kill\"\nprotocol = \"election\"\ndata_dir = \"data\"\nidle_ms = 600000\nmax_time_ms = 3600000\n\
         [params]\nclients = 12\nvoters = {VOTERS}\nbad_ballots = 0.001\nwindow = 64\ntimeout_ms = 60\n"
    );
    let mut c = Cluster::new(&dir, &head, NODES);
    c.start_all();
    let mut p = Progress::default();
    // The legislature's leader while ballots flow; restarted once the others have gone on
    // without it. Then a coordinator (node 3) and a region gateway (node 6), likewise.
    after_answers(&c, &mut p, 5_000);
    let leader = p.leader.1;
    c.kill(leader);
    after_answers(&c, &mut p, 10_000);
    c.start_node(leader);
    after_answers(&c, &mut p, 15_000);
    c.kill(3);
    c.kill(6);
    after_answers(&c, &mut p, 20_000);
    c.start_node(3);
    c.start_node(6);
    eprintln!("killed replica {leader}, then coordinator 3 and region 6");
    // Every citizen has the results and every replica tallied since its last start.
    c.until(|node, e| {
        p.note(node, e);
        (NODES - CITIZENS..NODES).all(|n| p.results.contains(&n)) && p.tallied.len() == REPLICAS
    });
    let outputs = c.stop_all();

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
