//! The interchangeable nodes protocols declare to the explorer ([`agora_core::Symmetry`]),
//! checked against the protocol code: from every state reached within small bounds, every
//! renaming of the declared classes runs as the system does, renamed
//! ([`agora_sim::explore::check_symmetry`]). Raft's replicas (renamed inside their state,
//! storage and observations), 2PC's participants, flood's nodes on a complete graph.

use agora_core::NodeId;
use agora_protocols::commit::two_phase_commit::TwoPhaseCommitSetup;
use agora_protocols::flood::{FloodSetup, Variant};
use agora_protocols::raft::kv::{KvSetup, Workload};
use agora_protocols::Graph;
use agora_sim::explore::{check_symmetry, Bounds, Timing};
use std::sync::Arc;
use std::time::Duration;

/// Bounds with every fault once, asynchronous timing, `fires` timer firings, to `depth`.
fn bounds(depth: usize, fires: u32) -> Bounds {
    Bounds {
        depth,
        states: usize::MAX,
        loss: 1,
        duplicate: 1,
        crashes: 1,
        restarts: 1,
        fires: Some(fires),
        timing: Timing::Async,
        fifo: false,
        memory: None,
    }
}

fn raft(replicas: usize) -> KvSetup {
    let work =
        Workload { ops: 0, window: 1, interval: Duration::ZERO, reads: 0.0, retry: Duration::from_secs(1) };
    KvSetup::new(replicas, 0, Duration::from_millis(20), work)
}

#[test]
fn raft_replicas_renamed_run_as_the_replicas_do() {
    // Two elections, a lost, a duplicated message, a crash and a restart: votes, leaders,
    // a leader's view of its peers, the stored vote and the votes observed all name
    // replicas, and each renaming of the three must carry them.
    let compared = check_symmetry(&raft(3), &bounds(9, 2), 4_000).unwrap_or_else(|e| panic!("{e}"));
    assert!(compared > 20_000, "{compared} steps compared");
    // Synchronously, every replica's election timer is due at once: a renaming must not
    // change when a replica's timer fires (each draws what replica 0 draws).
    let sync = Bounds { timing: Timing::Sync, ..bounds(14, 3) };
    let compared = check_symmetry(&raft(3), &sync, 4_000).unwrap_or_else(|e| panic!("{e}"));
    assert!(compared > 5_000, "{compared} steps compared");
}

#[test]
fn participants_and_flood_nodes_renamed_run_as_they_do() {
    let two_pc = TwoPhaseCommitSetup { nodes: 4, no_votes: Vec::new(), timeout: Duration::from_millis(50) };
    let compared = check_symmetry(&two_pc, &bounds(7, 2), 4_000).unwrap_or_else(|e| panic!("{e}"));
    assert!(compared > 10_000, "{compared} steps compared");
    let flood = FloodSetup {
        graph: Arc::new(Graph::Complete { n: 4 }),
        origin: NodeId(0),
        payload: 7,
        variant: Variant::Correct,
    };
    let compared = check_symmetry(&flood, &bounds(6, 0), 4_000).unwrap_or_else(|e| panic!("{e}"));
    assert!(compared > 1_000, "{compared} steps compared");
}

#[test]
fn raft_with_clients_declares_no_interchangeable_replicas() {
    // A client tries the replicas in its own order: no renaming of them is a state it reaches.
    let mut setup = raft(3);
    setup.clients = 1;
    assert!(check_symmetry(&setup, &bounds(3, 1), 10).is_err());
}
