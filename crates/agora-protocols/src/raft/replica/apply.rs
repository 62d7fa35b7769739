//! Applying committed entries to the state machine, and client sessions (§6.3 of the thesis):
//! every command carries its client's session id and sequence number, and the session table
//! remembers each session's results, so a retried command is applied once and answered again
//! with the same result. A request names the lowest sequence number its client has not yet
//! seen answered, and results below it are forgotten. The leader turns a client's request
//! into one log entry (its commands) and read-index queries (`read_index.rs`).
//!
//! The leader's answers to clients leave early (`Io::send_early`), before the writes of the
//! step that applies them are durable: an entry is applied only once committed, which the
//! leader counts only from writes known durable (its own among them, `replication.rs`), and
//! what its state machine holds is rebuilt from the log. So is a redirect, a hint that
//! claims nothing durable.
//!
//! **Invariants**: entries are applied in order, each once, and only committed ones
//! (`applied <= commit`); with `dedup`, a command of a session takes effect at most once.

use super::{Replica, Role};
use crate::raft::{Body, Index, Io, Op, Outcome, Pos, RaftMsg, RaftObs, StateMachine};
use agora_core::{wire, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A client session's remembered results.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub(super) struct Session<SM: StateMachine> {
    /// Results below this sequence number were seen by the client and are forgotten.
    below: u64,
    /// The result of each command at or above `below`, and where it took effect.
    done: BTreeMap<u64, (Pos, SM::Output)>,
}

impl<SM: StateMachine> Default for Session<SM> {
    fn default() -> Self {
        Session { below: 0, done: BTreeMap::new() }
    }
}

/// Every session's results, by session id; part of a snapshot.
pub(super) type Sessions<SM> = BTreeMap<u64, Session<SM>>;

/// Answers to one client session: sequence number and outcome.
pub(super) type Results<SM> = Vec<(u64, Outcome<SM>)>;

impl<SM: StateMachine> Replica<SM> {
    /// Applies the committed entries not yet applied; the leader answers their clients. Then
    /// answers the reads that waited for them, and takes a snapshot if one is due.
    pub(super) fn apply(&mut self, io: &mut impl Io<SM>) {
        debug_assert!(self.commit <= self.log.last(), "commit {} past the log's end", self.commit);
        while self.applied < self.commit {
            let index = self.applied + 1;
            let (answer, fresh, results) = self.apply_entry(index);
            self.applied = index;
            let chain = self.log.chain_at(index).expect("present");
            let digest = crate::raft::chain(0, 0, &wire::encode(&results));
            io.observe(RaftObs::Applied { index, chain, fresh, results: digest });
            if let (Role::Leader, Some((to, session))) = (self.role, answer) {
                if !results.is_empty() {
                    io.send_early(to, RaftMsg::Reply { session, results });
                }
            }
        }
        self.check_reads(io);
        self.maybe_snapshot(io);
    }

    /// Applies entry `index` through its session: a command already applied is answered with
    /// its first result, one below what the client acknowledged is skipped. Returns the
    /// client to answer, the `(session, seq)` that took effect, and the results.
    #[allow(clippy::type_complexity)]
    fn apply_entry(&mut self, index: Index) -> (Option<(NodeId, u64)>, Vec<(u64, u64)>, Results<SM>) {
        let entry = self.log.get(index).expect("committed entries are in the log");
        let mut fresh = Vec::new();
        let mut results = Vec::new();
        let Body::Commands { session, from, acked_below, cmds } = &entry.body else {
            return (None, fresh, results);
        };
        let s = self.sessions.entry(*session).or_default();
        if *acked_below > s.below {
            s.below = *acked_below;
            s.done = s.done.split_off(acked_below);
        }
        for (k, (seq, cmd)) in cmds.iter().enumerate() {
            let pos = Pos { index, offset: k as u32 };
            if self.cfg.dedup {
                if *seq < s.below {
                    // Answered before, and the client has said it saw the answer.
                    continue;
                }
                if let Some((p, out)) = s.done.get(seq) {
                    results.push((*seq, Outcome::Applied { pos: *p, output: out.clone() }));
                    continue;
                }
            }
            let output = self.sm.apply(pos, cmd);
            s.done.insert(*seq, (pos, output.clone()));
            fresh.push((*session, *seq));
            results.push((*seq, Outcome::Applied { pos, output }));
        }
        (Some((*from, *session)), fresh, results)
    }

    /// A client's request: the leader appends its commands as one entry and queues its
    /// queries for a read round; any other replica redirects the client.
    pub(super) fn on_request(
        &mut self,
        io: &mut impl Io<SM>,
        from: NodeId,
        session: u64,
        acked_below: u64,
        ops: Vec<(u64, Op<SM>)>,
    ) {
        if self.role != Role::Leader {
            io.send_early(from, RaftMsg::Redirect { session, leader: self.leader });
            return;
        }
        if let Some(to) = self.transferring(io) {
            // Its log must not outgrow the target's while the target stands.
            io.send_early(from, RaftMsg::Redirect { session, leader: Some(to) });
            return;
        }
        let mut cmds = Vec::new();
        let mut queries = false;
        for (seq, op) in ops {
            match op {
                Op::Command(c) => cmds.push((seq, c)),
                Op::Query(query) if self.cfg.stale_reads => {
                    let output = self.sm.query(&query);
                    let results = vec![(seq, Outcome::Read { index: self.applied, output })];
                    io.send_early(from, RaftMsg::Reply { session, results });
                }
                Op::Query(query) => {
                    self.queue_read(from, session, seq, query);
                    queries = true;
                }
            }
        }
        if !cmds.is_empty() {
            self.append(io, Body::Commands { session, from, acked_below, cmds });
            for i in 0..self.peers.len() {
                self.replicate(io, i, false);
            }
            self.advance_commit(io);
        }
        if queries && !self.round_open {
            self.start_round(io);
        }
    }
}
