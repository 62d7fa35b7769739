//! Linearizable reads by read index (§6.4 of the thesis). A query is answered by the leader
//! once (1) it has committed an entry of its own term (its no-op), (2) it has recorded its
//! commit index as the read's index, (3) a majority has answered a heartbeat sent after the
//! query arrived — a read round — so it was still the leader then, and (4) it has applied the
//! log up to the read index. One round serves every query that arrived before it.
//!
//! **Invariants**: only a leader has pending reads or an open round (checked after every step,
//! `mod.rs`); a query is answered at an index it has applied, at or past its read index, and
//! in a round a majority confirmed.

use super::apply::Results;
use super::{Replica, Role};
use crate::raft::{Index, Io, Outcome, RaftMsg, StateMachine};
use agora_core::NodeId;
use std::hash::{Hash, Hasher};

/// A query waiting for its round and its read index.
#[derive(Clone)]
pub(super) struct PendingRead<SM: StateMachine> {
    /// The round that must confirm this leader: the first started after the query arrived.
    pub(super) round: u64,
    /// The commit index when the query arrived (`None` until the leader's no-op commits).
    index: Option<Index>,
    pub(super) from: NodeId,
    pub(super) session: u64,
    seq: u64,
    query: SM::Query,
}

impl<SM: StateMachine> Hash for PendingRead<SM> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        (self.round, self.index, self.from, self.session, self.seq).hash(h);
        agora_core::wire::encode(&self.query).hash(h);
    }
}

impl<SM: StateMachine> Replica<SM> {
    /// Queues query `seq` of `session` from client `from`; the caller starts a round.
    pub(super) fn queue_read(&mut self, from: NodeId, session: u64, seq: u64, query: SM::Query) {
        debug_assert_eq!(self.role, Role::Leader, "a read queued on a {:?}", self.role);
        let index = (self.commit >= self.term_start).then_some(self.commit);
        self.reads.push(PendingRead { round: self.round + 1, index, from, session, seq, query });
    }

    /// Starts a read round: a heartbeat to every follower, answered with the round number.
    pub(super) fn start_round(&mut self, io: &mut impl Io<SM>) {
        debug_assert!(self.role == Role::Leader && !self.round_open, "a second round at once");
        self.round += 1;
        self.round_open = true;
        for i in 0..self.peers.len() {
            self.replicate(io, i, true);
        }
        self.check_reads(io);
    }

    /// The highest round a majority (this leader included) has answered.
    fn confirmed_round(&self) -> u64 {
        let mut rounds: Vec<u64> = self.peers.iter().map(|p| p.round).collect();
        rounds.push(self.round);
        rounds.sort_unstable_by(|a, b| b.cmp(a));
        rounds[self.cfg.majority() - 1]
    }

    /// Answers the queries whose round a majority confirmed and whose read index is applied.
    pub(super) fn check_reads(&mut self, io: &mut impl Io<SM>) {
        if self.role != Role::Leader || self.reads.is_empty() && !self.round_open {
            return;
        }
        let confirmed = self.confirmed_round();
        if confirmed >= self.round {
            self.round_open = false;
        }
        if self.commit >= self.term_start {
            for r in &mut self.reads {
                r.index.get_or_insert(self.commit);
            }
        }
        for (to, session, results) in self.ready_reads(confirmed) {
            io.send_early(to, RaftMsg::Reply { session, results });
        }
        if !self.round_open && self.reads.iter().any(|r| r.round > self.round) {
            self.start_round(io);
        }
    }

    /// Takes the queries answerable now — confirmed by round `confirmed`, read index applied —
    /// and answers them, grouped per client session in the order they arrived.
    fn ready_reads(&mut self, confirmed: u64) -> Vec<(NodeId, u64, Results<SM>)> {
        let applied = self.applied;
        let mut answers: Vec<(NodeId, u64, Results<SM>)> = Vec::new();
        let sm = &self.sm;
        self.reads.retain(|r| {
            if r.round > confirmed || r.index.is_none_or(|i| i > applied) {
                return true;
            }
            let out = (r.seq, Outcome::Read { index: applied, output: sm.query(&r.query) });
            match answers.iter_mut().find(|(to, s, _)| *to == r.from && *s == r.session) {
                Some(a) => a.2.push(out),
                None => answers.push((r.from, r.session, vec![out])),
            }
            false
        });
        answers
    }
}
