//! Log replication (§5.3 of the paper) and commitment (§5.4.2). The leader appends to its own
//! log, sends each follower what it lacks — entries while its flow (`progress.rs`)
//! has room, a snapshot chunk (`snapshot.rs`) once it lags behind the log's base, and at
//! least a heartbeat every period — and commits an entry of its own term once a majority
//! holds it. The leader's appends leave while its own write of the same entries is under way
//! (§10.2.1 of the thesis: `Io::send_early`); it counts itself among the holders of an entry
//! only once its driver says its log is durable up to it (`RaftTimer::Synced`). A follower
//! checks that its log matches the leader's before the new entries, drops a conflicting
//! suffix, appends and advances its commit index; its answer leaves once its write is durable.
//!
//! **Invariants**: a leader never truncates its log, and commits only entries of its own term
//! that a majority holds durably, itself included only up to what it knows durable; after a change, `applied <= commit <= log.last()`; an append goes
//! out only at `next - 1` past the base.

use super::log_key;
use super::progress::Flow;
use super::{Replica, Role};
use crate::raft::{Body, Entry, Index, Io, RaftMsg, RaftObs, RaftTimer, StateMachine, Term};
use agora_core::{wire, NodeId};

impl<SM: StateMachine> Replica<SM> {
    // ----- the leader -----

    /// Appends to the leader's own log and writes the entry; returns its index. The leader
    /// hears when the write is durable ([`Replica::on_synced`]).
    pub(super) fn append(&mut self, io: &mut impl Io<SM>, body: Body<SM>) -> Index {
        debug_assert_eq!(self.role, Role::Leader, "only the leader appends on its own");
        let entry = Entry { term: self.term, body };
        let bytes = wire::encode(&entry);
        let index = self.log.last() + 1;
        let chain = self.log.append(entry, &bytes);
        io.persist(log_key(index), bytes);
        io.when_synced(RaftTimer::Synced { term: self.term, index });
        io.observe(RaftObs::Appended { first: index, entries: vec![(self.term, chain)] });
        index
    }

    /// Sends follower `i` what it needs: log entries while the pipeline has room, a snapshot
    /// chunk when it lags behind the log, or (with `beat`) at least a heartbeat.
    pub(super) fn replicate(&mut self, io: &mut impl Io<SM>, i: usize, beat: bool) {
        let (base, ..) = self.log.base();
        if self.peers[i].next <= base {
            self.send_snapshot_chunk(io, i, beat);
            return;
        }
        let p = &mut self.peers[i];
        // Past the base (a late answer to an append may have moved it): no snapshot is due.
        p.snap = None;
        let last = self.log.last();
        let log = &self.log;
        let append = |next: Index, entries: Vec<Entry<SM>>| {
            debug_assert!(next > base && next <= last + 1, "an append at {next} outside ({base}, {last}]");
            RaftMsg::Append {
                term: self.term,
                prev_index: next - 1,
                prev_term: log.term_at(next - 1).expect("next is past the base"),
                entries,
                commit: self.commit,
                round: self.round,
                leader_last: last,
            }
        };
        match p.flow {
            Flow::Probe { sent } => {
                // One probe with entries at a time; a heartbeat while it is out probes empty.
                if sent && !beat {
                    return;
                }
                let entries = if sent || p.next > last {
                    Vec::new()
                } else {
                    log.batch(p.next, self.cfg.max_append_bytes, self.cfg.max_append_entries)
                };
                if !entries.is_empty() {
                    p.flow = Flow::Probe { sent: true };
                }
                io.send_early(p.id, append(p.next, entries));
            }
            Flow::Pipeline => {
                let mut sent = false;
                while p.inflight.len() < self.cfg.max_inflight && p.next <= last {
                    let entries = log.batch(p.next, self.cfg.max_append_bytes, self.cfg.max_append_entries);
                    let n = entries.len() as u64;
                    io.send_early(p.id, append(p.next, entries));
                    p.sent(n);
                    sent = true;
                }
                if beat && !sent {
                    // At `next - 1`, behind what is in flight: if an append was lost, the
                    // follower rejects this and the leader goes back to probing.
                    io.send_early(p.id, append(p.next, Vec::new()));
                }
            }
        }
    }

    /// The heartbeat timer: every follower hears from the leader, and a read round starts if
    /// queries wait for one.
    pub(super) fn heartbeat(&mut self, io: &mut impl Io<SM>) {
        for i in 0..self.peers.len() {
            let p = &mut self.peers[i];
            p.silent = (p.silent + 1).min(super::progress::Peer::SILENT_CAP);
            self.replicate(io, i, true);
        }
        if !self.round_open && self.reads.iter().any(|r| r.round > self.round) {
            self.start_round(io);
        }
        io.set_timer(RaftTimer::Heartbeat, self.cfg.heartbeat);
    }

    /// A follower answered: steps down on a newer term; otherwise, if this is still its leader
    /// in that term, notes that it is alive and the read round it saw, and returns its place.
    pub(super) fn answered_by(
        &mut self,
        io: &mut impl Io<SM>,
        from: NodeId,
        term: Term,
        round: u64,
    ) -> Option<usize> {
        if term > self.term {
            self.step_down(io, term);
            return None;
        }
        if self.role != Role::Leader || term != self.term {
            return None;
        }
        let i = self.peers.iter().position(|p| p.id == from)?;
        let p = &mut self.peers[i];
        p.round = p.round.max(round);
        p.silent = 0;
        Some(i)
    }

    /// A follower answered an append at `prev` (see [`super::progress::Peer::accepted`] and
    /// [`super::progress::Peer::rejected`] for what the leader learns from it).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_append_reply(
        &mut self,
        io: &mut impl Io<SM>,
        from: NodeId,
        term: Term,
        ok: bool,
        (prev, last, lost): (Index, Index, bool),
        round: u64,
        commit: Index,
    ) {
        let Some(i) = self.answered_by(io, from, term, round) else { return };
        let log_last = self.log.last();
        let p = &mut self.peers[i];
        // Its latest word, not the highest: a follower that restarted knows less again.
        p.commit = commit;
        if ok {
            p.accepted(last, log_last);
        } else {
            p.rejected(prev, last, lost);
        }
        self.advance_commit(io);
        self.check_reads(io);
        if self.role == Role::Leader {
            self.replicate(io, i, false);
            self.transfer_progress(io);
        }
    }

    /// The driver says this leader's log is durable up to `index`, as it was when the leader
    /// asked in `term`; within a term a leader's log only grows, so those are the same entries.
    pub(super) fn on_synced(&mut self, io: &mut impl Io<SM>, term: Term, index: Index) {
        if self.role != Role::Leader || term != self.term {
            return;
        }
        debug_assert!(index <= self.log.last(), "synced past the log's end");
        self.durable = self.durable.max(index);
        self.advance_commit(io);
        self.check_reads(io);
    }

    /// Commits the highest index a majority holds durably, if it is of this leader's term.
    pub(super) fn advance_commit(&mut self, io: &mut impl Io<SM>) {
        if self.role != Role::Leader {
            return;
        }
        let mut matched: Vec<Index> = self.peers.iter().map(|p| p.matched).collect();
        // Itself: only as far as its own writes are durable.
        matched.push(self.durable);
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let m = matched[self.cfg.majority() - 1];
        // Only an entry of the leader's own term is committed by counting (§5.4.2).
        if m > self.commit && self.log.term_at(m) == Some(self.term) {
            self.commit = m;
            debug_assert!(self.commit <= self.log.last(), "committed past the log's end");
            let chain = self.log.chain_at(m).expect("present");
            io.observe(RaftObs::Committed { term: self.term, index: m, chain });
            self.apply(io);
        }
    }

    // ----- the follower -----

    /// An answer to the append after `prev` of the leader of `round`.
    fn append_reply(&self, ok: bool, prev: Index, last: Index, round: u64) -> RaftMsg<SM> {
        let lost = self.rejoining.is_some();
        RaftMsg::AppendReply { term: self.term, ok, prev, last, round, commit: self.commit, lost }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_append(
        &mut self,
        io: &mut impl Io<SM>,
        from: NodeId,
        term: Term,
        (prev_index, prev_term): (Index, Term),
        mut entries: Vec<Entry<SM>>,
        commit: Index,
        round: u64,
    ) {
        if term < self.term {
            io.send(from, self.append_reply(false, prev_index, 0, round));
            return;
        }
        self.follow(io, from, term);
        let (base, base_term, _) = self.log.base();
        let sent_prev = prev_index;
        let (mut prev_index, mut prev_term) = (prev_index, prev_term);
        if prev_index < base {
            // Entries up to the base are committed and in the snapshot: skip them.
            let skip = base - prev_index;
            if skip >= entries.len() as u64 {
                let last = prev_index + entries.len() as u64;
                io.send(from, self.append_reply(true, sent_prev, last, round));
                return;
            }
            entries.drain(..skip as usize);
            (prev_index, prev_term) = (base, base_term);
        }
        if prev_index > self.log.last() {
            io.send(from, self.append_reply(false, sent_prev, self.log.last(), round));
            return;
        }
        if self.log.term_at(prev_index) != Some(prev_term) {
            let hint =
                self.log.first_of_term(prev_index).saturating_sub(1).max(self.commit.min(prev_index - 1));
            io.send(from, self.append_reply(false, sent_prev, hint, round));
            return;
        }
        let last_new = prev_index + entries.len() as u64;
        self.write_entries(io, prev_index, entries);
        let new_commit = commit.min(last_new);
        if new_commit > self.commit {
            self.commit = new_commit;
            debug_assert!(self.commit <= self.log.last(), "committed past the log's end");
            self.apply(io);
        }
        if self.incoming.as_ref().is_some_and(|(idx, _)| *idx <= self.commit) {
            // The leader gave up the snapshot: the log reached past it.
            self.incoming = None;
        }
        self.matched = Some((self.term, last_new));
        io.send(from, self.append_reply(true, sent_prev, last_new, round));
    }

    /// Writes the leader's `entries` after `prev_index`, where the logs match: entries already
    /// here with the same term stay; from the first that differs (or the end), this log's
    /// suffix is dropped and the rest written.
    fn write_entries(&mut self, io: &mut impl Io<SM>, prev_index: Index, entries: Vec<Entry<SM>>) {
        debug_assert_eq!(self.role, Role::Follower, "a leader never truncates its own log");
        let mut first_written = None;
        let mut written = Vec::new();
        for (k, e) in entries.into_iter().enumerate() {
            let idx = prev_index + 1 + k as u64;
            if first_written.is_none() {
                if self.log.term_at(idx) == Some(e.term) {
                    continue;
                }
                // A conflict (or the end): drop this entry and all after it.
                for j in idx..=self.log.last() {
                    io.unpersist(log_key(j));
                }
                self.log.truncate_from(idx);
                first_written = Some(idx);
            }
            let bytes = wire::encode(&e);
            let t = e.term;
            let chain = self.log.append(e, &bytes);
            io.persist(log_key(idx), bytes);
            written.push((t, chain));
        }
        if let Some(first) = first_written {
            io.observe(RaftObs::Appended { first, entries: written });
        }
    }
}

#[cfg(test)]
mod tests {
    //! The leader's flow control, step by step: what it sends a follower after rejections.

    use super::super::testing::{config, replica, TestIo, F};
    use super::*;
    use crate::raft::kv::Kv;
    use agora_core::Stable;

    /// Node 0 leads 3 replicas (node 1 voted for it) with `n` one-entry appends after its no-op;
    /// follower `F` has matched the no-op and is in the pipeline.
    fn leader(n: usize) -> (Replica<Kv>, TestIo) {
        let mut cfg = config();
        cfg.max_append_entries = 1;
        let mut r = replica(cfg, NodeId(0), &Stable::new());
        let mut io = TestIo::new();
        r.on_timer(&mut io, RaftTimer::Election);
        assert_eq!(r.term(), 0, "a pre-vote first, in the same term");
        r.on_message(&mut io, NodeId(1), RaftMsg::PreVoteReply { term: 1, granted: true });
        assert_eq!(r.term(), 1);
        r.on_message(&mut io, NodeId(1), RaftMsg::VoteReply { term: r.term(), granted: true });
        assert_eq!(r.role(), Role::Leader);
        let term = r.term();
        // The first probe is at the no-op's predecessor; F accepts it and enters the pipeline.
        r.on_message(
            &mut io,
            F,
            RaftMsg::AppendReply { term, ok: true, prev: 0, last: 1, round: 0, commit: 0, lost: false },
        );
        io.sent.clear();
        for _ in 0..n {
            r.append(&mut io, Body::Noop);
        }
        (r, io)
    }

    #[test]
    fn the_leader_counts_itself_only_once_its_own_write_is_durable() {
        let (mut r, mut io) = leader(1);
        let term = r.term();
        let early = io.early;
        r.replicate(&mut io, 1, false);
        assert_eq!(io.appends_to(F), vec![(1, 1)], "entry 2 goes out");
        assert_eq!(io.early, early + 1, "before the leader's own write is durable");
        // F holds the no-op and entry 2, the leader has written both but heard of neither's
        // durability: a majority of 3 does not hold them yet.
        r.on_message(
            &mut io,
            F,
            RaftMsg::AppendReply { term, ok: true, prev: 1, last: 2, round: 0, commit: 0, lost: false },
        );
        assert_eq!(r.commit_index(), 0, "committed on F's write alone");
        let synced = std::mem::take(&mut io.synced);
        assert_eq!(
            synced,
            vec![RaftTimer::Synced { term, index: 1 }, RaftTimer::Synced { term, index: 2 }],
            "one request per entry appended, in order"
        );
        r.on_timer(&mut io, synced[0]);
        assert_eq!(r.commit_index(), 1, "the no-op is durable here and on F");
        r.on_timer(&mut io, synced[1]);
        assert_eq!(r.commit_index(), 2);
    }

    /// A client's command is answered as soon as it commits, early: the leader's step that
    /// applies it may have writes of its own in flight, which the answer does not wait for.
    #[test]
    fn the_leader_answers_a_committed_command_early() {
        use crate::raft::kv::KvCmd;
        use crate::raft::{Op, Outcome};
        let (mut r, mut io) = leader(0);
        let term = r.term();
        let client = NodeId(9);
        let put = Op::Command(KvCmd::Put { key: 1, value: 2 });
        r.on_message(&mut io, client, RaftMsg::Request { session: 5, acked_below: 0, ops: vec![(0, put)] });
        assert_eq!(r.last_index(), 2, "the no-op, then the command");
        r.on_message(
            &mut io,
            F,
            RaftMsg::AppendReply { term, ok: true, prev: 1, last: 2, round: 0, commit: 0, lost: false },
        );
        for t in std::mem::take(&mut io.synced) {
            r.on_timer(&mut io, t);
        }
        assert_eq!(r.commit_index(), 2);
        let early = io.early;
        io.sent.clear();
        // A second command: entry 3, answered in the step that hears its write is durable.
        let put = Op::Command(KvCmd::Put { key: 1, value: 3 });
        r.on_message(&mut io, client, RaftMsg::Request { session: 5, acked_below: 1, ops: vec![(1, put)] });
        r.on_message(
            &mut io,
            F,
            RaftMsg::AppendReply { term, ok: true, prev: 2, last: 3, round: 0, commit: 0, lost: false },
        );
        for t in std::mem::take(&mut io.synced) {
            r.on_timer(&mut io, t);
        }
        let replies: Vec<_> = io
            .sent
            .iter()
            .filter_map(|(to, m)| match m {
                RaftMsg::Reply { session: 5, results } if *to == client => Some(results.clone()),
                _ => None,
            })
            .collect();
        assert!(
            matches!(replies[..], [ref a] if matches!(a[..], [(1, Outcome::Applied { .. })])),
            "{replies:?}"
        );
        let appends = io.sent.iter().filter(|(_, m)| matches!(m, RaftMsg::Append { .. })).count();
        assert_eq!(io.early - early, appends + replies.len(), "every append and the reply left early");
    }

    #[test]
    fn a_synced_timer_of_an_earlier_leadership_counts_for_nothing() {
        let (mut r, mut io) = leader(2);
        let old = r.term();
        // Its log is 1..=3 of its term; the request for 3 is still to be told.
        let stale = RaftTimer::Synced { term: old, index: 3 };
        // Node 1 leads the next term and replaces entries 2 and 3 with one of its own.
        let replaced = Entry::<Kv> { term: old + 1, body: Body::Noop };
        r.on_message(
            &mut io,
            NodeId(1),
            RaftMsg::Append {
                term: old + 1,
                prev_index: 1,
                prev_term: old,
                entries: vec![replaced],
                commit: 0,
                round: 0,
                leader_last: 2,
            },
        );
        assert_eq!((r.role(), r.last_index()), (Role::Follower, 2));
        // Elected again: its new no-op is entry 3, not the entry 3 the request was about.
        r.on_timer(&mut io, RaftTimer::Election);
        let t = r.term() + 1;
        r.on_message(&mut io, NodeId(1), RaftMsg::PreVoteReply { term: t, granted: true });
        r.on_message(&mut io, NodeId(1), RaftMsg::VoteReply { term: t, granted: true });
        assert_eq!((r.role(), r.term(), r.last_index()), (Role::Leader, t, 3));
        r.on_message(
            &mut io,
            NodeId(1),
            RaftMsg::AppendReply { term: t, ok: true, prev: 2, last: 3, round: 0, commit: 0, lost: false },
        );
        r.on_timer(&mut io, stale);
        assert_eq!(r.commit_index(), 0, "an earlier leadership's durability taken for this one's");
        r.on_timer(&mut io, RaftTimer::Synced { term: t, index: 3 });
        assert_eq!(r.commit_index(), 3);
    }

    #[test]
    fn the_pipeline_sends_at_most_a_window() {
        let (mut r, mut io) = leader(40);
        r.replicate(&mut io, 1, false);
        let sent = io.appends_to(F);
        assert_eq!(sent, (1..9).map(|p| (p, 1)).collect::<Vec<_>>(), "8 appends, one entry each");
        let term = r.term();
        // Accepting the first two opens room for two more, no others.
        r.on_message(
            &mut io,
            F,
            RaftMsg::AppendReply { term, ok: true, prev: 2, last: 3, round: 0, commit: 0, lost: false },
        );
        assert_eq!(io.appends_to(F), vec![(9, 1), (10, 1)]);
    }

    #[test]
    fn stale_rejections_cause_one_probe_not_a_window_each() {
        let (mut r, mut io) = leader(40);
        r.replicate(&mut io, 1, false);
        io.appends_to(F);
        let term = r.term();
        // The append after index 1 was lost: F rejects the seven behind it (its log ends at 1).
        r.on_message(
            &mut io,
            F,
            RaftMsg::AppendReply { term, ok: false, prev: 2, last: 1, round: 0, commit: 0, lost: false },
        );
        assert_eq!(io.appends_to(F), vec![(1, 1)], "one probe, from F's end");
        for prev in 3..9 {
            r.on_message(
                &mut io,
                F,
                RaftMsg::AppendReply { term, ok: false, prev, last: 1, round: 0, commit: 0, lost: false },
            );
        }
        assert_eq!(io.appends_to(F), vec![], "the stale rejections send nothing");
        // A heartbeat while the probe is out probes with an empty append.
        r.heartbeat(&mut io);
        assert_eq!(io.appends_to(F), vec![(1, 0)]);
        // The probe is accepted: back to the pipeline, a window from there.
        r.on_message(
            &mut io,
            F,
            RaftMsg::AppendReply { term, ok: true, prev: 1, last: 2, round: 0, commit: 0, lost: false },
        );
        assert_eq!(io.appends_to(F), (2..10).map(|p| (p, 1)).collect::<Vec<_>>());
    }

    #[test]
    fn a_rejected_probe_moves_back_to_the_followers_hint() {
        let (mut r, mut io) = leader(40);
        let term = r.term();
        // F's log turns out to diverge after index 0: it rejects the append after 5 with hint 0.
        r.replicate(&mut io, 1, false);
        io.appends_to(F);
        r.on_message(
            &mut io,
            F,
            RaftMsg::AppendReply { term, ok: false, prev: 5, last: 0, round: 0, commit: 0, lost: false },
        );
        // Never below what F has matched (1).
        assert_eq!(io.appends_to(F), vec![(1, 1)]);
        // Another rejection of an append sent before the probe changes nothing.
        r.on_message(
            &mut io,
            F,
            RaftMsg::AppendReply { term, ok: false, prev: 7, last: 0, round: 0, commit: 0, lost: false },
        );
        assert_eq!(io.appends_to(F), vec![]);
    }

    /// A follower that answers nothing for several of the longest election timeouts is taken
    /// for down: the leader, its log committed by the others, no longer waits for it to be
    /// settled; one answer and it waits again.
    #[test]
    fn a_leader_settles_without_a_follower_silent_for_several_election_timeouts() {
        let (mut r, mut io) = leader(0);
        for t in std::mem::take(&mut io.synced) {
            r.on_timer(&mut io, t);
        }
        assert_eq!((r.commit, r.applied), (1, 1), "the no-op, held by the leader and F");
        let term = r.term();
        // F answers the next heartbeat, which told it the no-op is committed.
        r.on_message(
            &mut io,
            F,
            RaftMsg::AppendReply { term, ok: true, prev: 1, last: 1, round: 0, commit: 1, lost: false },
        );
        assert!(!r.settled(), "node 1 lacks the no-op");
        let beats = (r.cfg.election_timeout_max.as_nanos() * u128::from(super::super::SILENT_TIMEOUTS)
            / r.cfg.heartbeat.as_nanos()) as usize;
        for _ in 0..beats {
            r.on_timer(&mut io, RaftTimer::Heartbeat);
        }
        assert!(!r.settled(), "silent for only SILENT_TIMEOUTS election timeouts");
        r.on_timer(&mut io, RaftTimer::Heartbeat);
        assert!(r.settled(), "silent for longer");
        r.on_message(
            &mut io,
            NodeId(1),
            RaftMsg::AppendReply { term, ok: false, prev: 1, last: 0, round: 0, commit: 0, lost: false },
        );
        assert!(!r.settled(), "node 1 answered: it is waited for again");
    }

    /// A follower that holds the whole log but has not said it knows the last entry committed
    /// keeps its leader busy: were the leader to end then, the follower would never learn it,
    /// never be settled, and stand for election for ever after the others ended.
    #[test]
    fn a_leader_is_settled_only_once_every_follower_knows_its_log_committed() {
        let (mut r, mut io) = leader(0);
        for t in std::mem::take(&mut io.synced) {
            r.on_timer(&mut io, t);
        }
        let term = r.term();
        let reply = |from_commit| RaftMsg::AppendReply {
            term,
            ok: true,
            prev: 1,
            last: 1,
            round: 0,
            commit: from_commit,
            lost: false,
        };
        r.on_message(&mut io, NodeId(1), reply(0));
        assert_eq!((r.commit, r.applied), (1, 1), "the no-op, held by all three");
        assert!(!r.settled(), "neither follower knows the no-op committed");
        r.on_message(&mut io, F, reply(1));
        assert!(!r.settled(), "node 1 does not know it yet");
        r.on_timer(&mut io, RaftTimer::Heartbeat);
        r.on_message(&mut io, NodeId(1), reply(1));
        assert!(r.settled(), "both know");
    }
}
