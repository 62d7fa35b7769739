//! Log compaction (§7 of the paper; §5 of the thesis): taking a snapshot of the applied state,
//! writing it off the replica's path, compacting the log once it is durable, sending it in
//! chunks to a follower that lags behind the log's base, and installing a leader's snapshot.
//!
//! A snapshot is written off the replica's path: the replica copies its state (a
//! [`crate::raft::CowVec`] makes that copy share its chunks) and hands it to a deferred write,
//! which the driver serializes and persists while the replica goes on; the log is compacted,
//! in one range removal, once the snapshot is durable. A crash in between leaves the old
//! snapshot or the new, and a restart takes the newest and removes the rest.
//!
//! **Invariants**: a snapshot's index is at most `applied` (it is of applied state only); the
//! log's base never passes `applied`; an installed snapshot leaves `base == applied ==
//! commit`; one snapshot is written at a time.

use super::apply::Sessions;
use super::{log_key, snap_key, Replica};
use crate::raft::{Index, Io, RaftMsg, RaftObs, RaftTimer, StateMachine, Term};
use agora_core::{wire, Deferred, NodeId};
use std::sync::Arc;

/// The serialized state machine and sessions, filled in by the writer of a deferred snapshot.
type Cell = Arc<std::sync::OnceLock<Arc<Vec<u8>>>>;

/// A snapshot being written: its index, and its bytes once computed.
#[derive(Clone)]
pub(super) struct Writing {
    pub(super) index: Index,
    data: Cell,
}

impl<SM: StateMachine> Replica<SM> {
    /// After applying: a snapshot is due once `snapshot_every` entries were applied past the
    /// base and (with `snapshot_growth`) the log outgrew the last snapshot enough.
    pub(super) fn maybe_snapshot(&mut self, io: &mut impl Io<SM>) {
        let last_snapshot = self.snapshot.as_ref().map_or(0, |s| s.len() as u64);
        if self.writing.is_none()
            && self.applied - self.log.base().0 >= self.cfg.snapshot_every
            && self.log.bytes() >= self.cfg.snapshot_growth.saturating_mul(last_snapshot)
        {
            self.take_snapshot(io);
        }
    }

    /// Starts a snapshot of the applied state. Serializing and writing it, both O(state), run
    /// off the replica's path ([`Io::persist_later`]): here the state is only copied. The log
    /// is compacted once the snapshot is durable ([`Replica::snapshot_written`]).
    fn take_snapshot(&mut self, io: &mut impl Io<SM>) {
        debug_assert!(self.writing.is_none(), "a second snapshot written at once");
        let index = self.applied;
        let term = self.log.term_at(index).expect("applied entries are in the log");
        let chain = self.log.chain_at(index).expect("applied entries are in the log");
        let state = Arc::new((self.sm.clone(), self.sessions.clone()));
        let data: Cell = Arc::default();
        let cell = data.clone();
        let value = Deferred::new(move || {
            let bytes = cell.get_or_init(|| Arc::new(wire::encode(&(&state.0, &state.1))));
            wire::encode(&(index, term, chain, &**bytes))
        });
        io.persist_later(snap_key(index), value, RaftTimer::SnapshotWritten);
        self.writing = Some(Writing { index, data });
    }

    /// The snapshot started by [`Replica::take_snapshot`] is durable: the log up to it goes,
    /// and so does the snapshot before it — unless a snapshot from the leader overtook it.
    pub(super) fn snapshot_written(&mut self, io: &mut impl Io<SM>) {
        let Some(w) = self.writing.take() else { return };
        let (base, ..) = self.log.base();
        if w.index <= base {
            io.unpersist(snap_key(w.index));
            return;
        }
        debug_assert!(w.index <= self.applied, "snapshot {} of unapplied state ({})", w.index, self.applied);
        let data = w.data.get().expect("computed before it was written").clone();
        io.unpersist_range(log_key(base + 1), log_key(w.index + 1));
        if let Some(old) = self.snapshot_key.replace(snap_key(w.index)) {
            io.unpersist(old);
        }
        let chain = self.log.chain_at(w.index).expect("applied entries are in the log");
        self.log.compact(w.index);
        self.snapshot = Some(data);
        io.observe(RaftObs::Snapshotted { index: w.index, chain });
    }

    /// The leader sends follower `i`, which lags behind the log's base, one chunk of the
    /// snapshot at a time; a heartbeat (`beat`) resends the chunk in flight.
    pub(super) fn send_snapshot_chunk(&mut self, io: &mut impl Io<SM>, i: usize, beat: bool) {
        let (base, base_term, base_chain) = self.log.base();
        let p = &mut self.peers[i];
        debug_assert!(p.next <= base, "a snapshot for a follower the log can serve");
        if p.snap.is_some_and(|(idx, _)| idx == base) && !beat {
            return;
        }
        let Some(data) = &self.snapshot else { return };
        let offset = match p.snap {
            Some((idx, off)) if idx == base => off,
            _ => 0,
        };
        debug_assert!(offset as usize <= data.len(), "a chunk at {offset} past the snapshot's end");
        let end = (offset as usize + self.cfg.snapshot_chunk).min(data.len());
        let chunk = data[offset as usize..end].to_vec();
        p.snap = Some((base, offset));
        io.send(
            p.id,
            RaftMsg::Snapshot {
                term: self.term,
                index: base,
                last_term: base_term,
                chain: base_chain,
                offset,
                total: data.len() as u64,
                data: chunk,
                round: self.round,
            },
        );
    }

    /// A chunk of the leader's snapshot ending at `index`; the last one installs it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_snapshot(
        &mut self,
        io: &mut impl Io<SM>,
        from: NodeId,
        term: Term,
        (index, last_term, chain): (Index, Term, u64),
        offset: u64,
        total: u64,
        data: Vec<u8>,
        round: u64,
    ) {
        if term < self.term {
            io.send(from, RaftMsg::SnapshotReply { term: self.term, index, next: 0, round });
            return;
        }
        self.follow(io, from, term);
        if index <= self.commit {
            io.send(from, RaftMsg::SnapshotReply { term: self.term, index, next: total, round });
            return;
        }
        let next = self.receive_chunk(index, offset, data);
        if next < total {
            io.send(from, RaftMsg::SnapshotReply { term: self.term, index, next, round });
            return;
        }
        let (_, buf) = self.incoming.take().expect("matched above");
        let Ok((sm, sessions)) = wire::decode::<(SM, Sessions<SM>)>(&buf) else {
            // Not a snapshot of ours: start over.
            io.send(from, RaftMsg::SnapshotReply { term: self.term, index, next: 0, round });
            return;
        };
        self.install(io, (index, last_term, chain), buf, sm, sessions);
        io.send(from, RaftMsg::SnapshotReply { term: self.term, index, next: total, round });
    }

    /// Adds the chunk at `offset` of the snapshot ending at `index` to what was received;
    /// returns the offset wanted next (0 when the chunk belongs to no snapshot under way).
    fn receive_chunk(&mut self, index: Index, offset: u64, data: Vec<u8>) -> u64 {
        if offset == 0 {
            self.incoming = Some((index, Vec::new()));
        }
        match &mut self.incoming {
            Some((idx, buf)) if *idx == index && buf.len() as u64 == offset => {
                buf.extend_from_slice(&data);
                buf.len() as u64
            }
            Some((idx, buf)) if *idx == index => buf.len() as u64,
            _ => 0,
        }
    }

    /// Installs the leader's snapshot ending at `index` (past this replica's commit index),
    /// in this step's one transaction: the snapshot, and the log it replaces gone.
    fn install(
        &mut self,
        io: &mut impl Io<SM>,
        (index, last_term, chain): (Index, Term, u64),
        buf: Vec<u8>,
        sm: SM,
        sessions: Sessions<SM>,
    ) {
        debug_assert!(index > self.commit, "installing snapshot {index} at or below commit {}", self.commit);
        let (base, ..) = self.log.base();
        io.persist(snap_key(index), wire::encode(&(index, last_term, chain, &buf)));
        if let Some(old) = self.snapshot_key.replace(snap_key(index)) {
            io.unpersist(old);
        }
        if self.log.term_at(index) == Some(last_term) && self.log.chain_at(index) == Some(chain) {
            // The snapshot covers a prefix of our log: keep what follows.
            io.unpersist_range(log_key(base + 1), log_key(index + 1));
            self.log.compact(index);
        } else {
            io.unpersist_range(log_key(base + 1), log_key(self.log.last() + 1));
            self.log.reset(index, last_term, chain);
        }
        self.sm = sm;
        self.sessions = sessions;
        self.commit = self.commit.max(index);
        self.applied = index;
        self.snapshot = Some(Arc::new(buf));
        debug_assert!(self.log.base().0 == index && self.commit == index, "installed at {index}");
        io.observe(RaftObs::Installed { index, term: last_term, chain });
    }

    /// A follower answered a chunk of the snapshot ending at `index`, wanting `next`.
    pub(super) fn on_snapshot_reply(
        &mut self,
        io: &mut impl Io<SM>,
        from: NodeId,
        term: Term,
        index: Index,
        next: u64,
        round: u64,
    ) {
        let Some(i) = self.answered_by(io, from, term, round) else { return };
        let total = self.snapshot.as_ref().map_or(0, |s| s.len() as u64);
        let (base, ..) = self.log.base();
        let p = &mut self.peers[i];
        if let Some((_, offset)) = p.snap.filter(|(idx, _)| *idx == index) {
            if next == offset && next < total && index == base {
                // An answer to a chunk sent before (a heartbeat resends the one in flight): the
                // chunk at `offset` is on its way. Acting on it would start a second stream.
                return;
            }
            if index != base || next >= total {
                // Installed (or already had it).
                p.installed(index);
            } else {
                p.snap = Some((index, next));
            }
            self.replicate(io, i, true);
        }
        self.advance_commit(io);
        self.check_reads(io);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{config, replica, TestIo, F};
    use super::*;
    use crate::raft::{Body, Entry};
    use agora_core::Stable;

    #[test]
    fn a_follower_drops_a_snapshot_the_leader_gave_up() {
        let mut f = replica(config(), F, &Stable::new());
        let mut io = TestIo::new();
        let leader = NodeId(0);
        let chunk = RaftMsg::Snapshot {
            term: 1,
            index: 5,
            last_term: 1,
            chain: 0,
            offset: 0,
            total: 100,
            data: vec![0; 10],
            round: 0,
        };
        f.on_message(&mut io, leader, chunk);
        assert!(!f.settled(), "a snapshot is half received");
        // The leader learnt that F's log reaches far enough and sends entries instead.
        let entries = (0..6).map(|_| Entry { term: 1, body: Body::Noop }).collect();
        let append = RaftMsg::Append {
            term: 1,
            prev_index: 0,
            prev_term: 0,
            entries,
            commit: 6,
            round: 0,
            leader_last: 6,
        };
        f.on_message(&mut io, leader, append);
        assert_eq!(f.commit_index(), 6);
        assert!(f.settled(), "the abandoned snapshot no longer holds the follower busy");
    }
}
