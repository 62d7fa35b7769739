//! A recording [`Io`] for the unit tests of the replica's files: it keeps what was sent and
//! observed and the timers set, and drops writes.

use super::{Config, Replica};
use crate::raft::kv::Kv;
use crate::raft::{Index, Io, RaftMsg, RaftObs, RaftTimer};
use agora_core::{Deferred, NodeId, Stable, Time};
use rand::SeedableRng;
use std::sync::Arc;
use std::time::Duration;

pub(crate) struct TestIo {
    pub rng: agora_core::Rng,
    pub sent: Vec<(NodeId, RaftMsg<Kv>)>,
    /// How many of them were sent early (before the step's writes are durable).
    pub early: usize,
    pub observed: Vec<RaftObs>,
    pub timers: Vec<(RaftTimer, Duration)>,
    /// What the replica asked to hear of once durable, in order, not yet told.
    pub synced: Vec<RaftTimer>,
}

impl Io<Kv> for TestIo {
    fn now(&self) -> Time {
        Time::from_millis(0)
    }
    fn rng(&mut self) -> &mut agora_core::Rng {
        &mut self.rng
    }
    fn send(&mut self, to: NodeId, msg: RaftMsg<Kv>) {
        self.sent.push((to, msg));
    }
    fn send_early(&mut self, to: NodeId, msg: RaftMsg<Kv>) {
        self.early += 1;
        self.sent.push((to, msg));
    }
    fn set_timer(&mut self, timer: RaftTimer, after: Duration) {
        self.timers.push((timer, after));
    }
    fn cancel_timer(&mut self, _: RaftTimer) {}
    fn persist(&mut self, _: String, _: Vec<u8>) {}
    fn unpersist(&mut self, _: String) {}
    fn unpersist_range(&mut self, _: String, _: String) {}
    fn persist_later(&mut self, _: String, _: Deferred, _: RaftTimer) {}
    fn when_synced(&mut self, done: RaftTimer) {
        self.synced.push(done);
    }
    fn observe(&mut self, o: RaftObs) {
        self.observed.push(o);
    }
}

impl TestIo {
    pub fn new() -> Self {
        TestIo {
            rng: agora_core::Rng::seed_from_u64(7),
            sent: Vec::new(),
            early: 0,
            observed: Vec::new(),
            timers: Vec::new(),
            synced: Vec::new(),
        }
    }

    /// The appends sent to `to` since the last call: (prev_index, entries), heartbeats too.
    pub fn appends_to(&mut self, to: NodeId) -> Vec<(Index, usize)> {
        let sent = std::mem::take(&mut self.sent);
        sent.into_iter()
            .filter_map(|(t, m)| match m {
                RaftMsg::Append { prev_index, entries, .. } if t == to => Some((prev_index, entries.len())),
                _ => None,
            })
            .collect()
    }
}

/// The follower the tests watch.
pub(super) const F: NodeId = NodeId(2);

/// The configuration of the tests' three replicas, 0, 1 and `F`.
pub(super) fn config() -> Config {
    Config::new(vec![NodeId(0), NodeId(1), F], Duration::from_millis(100))
}

/// An empty append of the leader of `term`, whose log is empty too: a heartbeat.
pub(super) fn heartbeat(term: crate::raft::Term) -> RaftMsg<Kv> {
    RaftMsg::Append {
        term,
        prev_index: 0,
        prev_term: 0,
        entries: vec![],
        commit: 0,
        round: 0,
        leader_last: 0,
    }
}

/// Replica `me` of [`config`], started from `stable`.
pub(super) fn replica(cfg: Config, me: NodeId, stable: &Stable) -> Replica<Kv> {
    Replica::new(Arc::new(cfg), me, stable).unwrap()
}
