//! What a leader knows of each follower (§5.3 of the paper: `nextIndex`, `matchIndex`), and
//! how it sends it entries: the probe/pipeline flow control of etcd's raft library, as
//! tikv/raft-rs keeps it in `tracker/progress.rs`. Until the leader knows where the follower's
//! log matches its own it probes, one append at a time; then it pipelines up to
//! `max_inflight` appends. This file holds the bookkeeping only; `replication.rs` sends.
//!
//! **Invariants** ([`Peer::check`]): `matched < next`; `matched` is at most the leader's last
//! index; the appends in flight end strictly above `matched`, below `next`, in order, and
//! number at most `max_inflight`; a probing follower has none in flight.

use crate::raft::Index;
use agora_core::NodeId;
use std::collections::VecDeque;

/// How the leader sends entries to a follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Flow {
    /// Where the follower's log matches is not known: one append at a time, at `next - 1`,
    /// until one is accepted. `sent` says a probe carrying entries is out; until it is
    /// answered, heartbeats probe with empty appends.
    Probe { sent: bool },
    /// The follower matched at `next - 1` when last heard: appends are pipelined.
    Pipeline,
}

/// What the leader knows of a follower.
#[derive(Clone, Debug, Hash)]
pub(super) struct Peer {
    pub(super) id: NodeId,
    /// The next index to send it.
    pub(super) next: Index,
    /// The highest index known to match the leader's log.
    pub(super) matched: Index,
    /// The commit index it said it knows in its latest answer to an append: the leader is
    /// settled only once every live follower knows the last entry committed, or a follower
    /// left without it could not end either (`Replica::settled`).
    pub(super) commit: Index,
    pub(super) flow: Flow,
    /// In the pipeline: the last index of each append in flight, oldest first.
    pub(super) inflight: VecDeque<Index>,
    /// The highest read round it answered in this term.
    pub(super) round: u64,
    /// A snapshot being sent: its index and the offset of the chunk in flight.
    pub(super) snap: Option<(Index, u64)>,
    /// Heartbeats sent since it last answered anything, counted up to
    /// [`Peer::SILENT_CAP`]: a follower silent for several election timeouts is taken for
    /// down, and the leader does not wait for it to be settled (`Replica::settled`).
    pub(super) silent: u32,
}

impl Peer {
    pub(super) fn new(id: NodeId, next: Index) -> Self {
        Peer {
            id,
            next,
            matched: 0,
            commit: 0,
            flow: Flow::Probe { sent: false },
            inflight: VecDeque::new(),
            round: 0,
            snap: None,
            silent: 0,
        }
    }

    /// The count of heartbeats without an answer stops here: the state stays bounded for the
    /// explorer, and no silence that counts is this many heartbeats long (see `Replica::silent`).
    pub(super) const SILENT_CAP: u32 = 4096;

    /// Back to probing, from `next`.
    pub(super) fn probe(&mut self, next: Index) {
        self.next = next;
        self.flow = Flow::Probe { sent: false };
        self.inflight.clear();
    }

    /// An append of `n` entries from `next` went into the pipeline.
    pub(super) fn sent(&mut self, n: u64) {
        debug_assert!(self.flow == Flow::Pipeline && n > 0, "an empty append in the pipeline");
        self.next += n;
        self.inflight.push_back(self.next - 1);
    }

    /// The follower accepted an append: its log matches the leader's up to `last` (no further
    /// than the leader's own log, which ends at `log_last`). A success is a fact whenever the
    /// append was sent. An accepted probe opens the pipeline.
    pub(super) fn accepted(&mut self, last: Index, log_last: Index) {
        self.matched = self.matched.max(last.min(log_last));
        while self.inflight.front().is_some_and(|&x| x <= self.matched) {
            self.inflight.pop_front();
        }
        match self.flow {
            Flow::Probe { .. } if self.matched + 1 >= self.next => {
                self.flow = Flow::Pipeline;
                self.next = self.matched + 1;
            }
            _ => self.next = self.next.max(self.matched + 1),
        }
    }

    /// The follower rejected the append after `prev`, hinting that its log ends at or matches
    /// up to `last`; `lost` if it lost its storage. A rejection is acted on only if it answers
    /// what the leader would send now — the probe at `next - 1`, or anything past `matched` in
    /// the pipeline; a stale one (the pipeline had many appends in flight) is ignored, so that
    /// it does not trigger resends of its own.
    pub(super) fn rejected(&mut self, prev: Index, last: Index, lost: bool) {
        if lost && last < self.matched {
            // The follower lost what it had matched (it rejoins): start over from its log.
            self.matched = last;
            self.inflight.clear();
        }
        let current = match self.flow {
            Flow::Probe { .. } => prev + 1 == self.next,
            Flow::Pipeline => prev > self.matched,
        };
        if current {
            // `last` is the follower's hint, below `prev`: retry from the lower of the two.
            let next = (last + 1).min(prev).max(self.matched + 1);
            self.probe(next);
        }
    }

    /// The follower installed (or already had) the snapshot ending at `index`: entries follow
    /// it, pipelined.
    pub(super) fn installed(&mut self, index: Index) {
        self.matched = self.matched.max(index);
        self.next = self.next.max(index + 1);
        self.snap = None;
        self.flow = Flow::Pipeline;
        self.inflight.clear();
    }

    /// Asserts the invariants of the module docs, for a leader whose log ends at `log_last`.
    pub(super) fn check(&self, log_last: Index, max_inflight: usize) {
        debug_assert!(
            self.matched < self.next,
            "{}: matched {} >= next {}",
            self.id,
            self.matched,
            self.next
        );
        debug_assert!(
            self.matched <= log_last,
            "{}: matched {} past the log's end {log_last}",
            self.id,
            self.matched
        );
        debug_assert!(
            self.inflight.len() <= max_inflight,
            "{}: {} appends in flight",
            self.id,
            self.inflight.len()
        );
        debug_assert!(
            matches!(self.flow, Flow::Pipeline) || self.inflight.is_empty(),
            "{}: a probe with a pipeline in flight",
            self.id
        );
        let mut above = self.matched;
        for &end in &self.inflight {
            debug_assert!(above < end && end < self.next, "{}: in flight {:?}", self.id, self.inflight);
            above = end;
        }
    }
}

#[cfg(test)]
mod tests {
    //! The bookkeeping alone; `replication.rs` tests what the leader sends.

    use super::*;

    fn pipelined(matched: Index, inflight: &[Index]) -> Peer {
        let mut p = Peer::new(NodeId(1), 1);
        p.accepted(matched, 100);
        for &end in inflight {
            p.sent(end - p.next + 1);
        }
        p.check(100, 8);
        p
    }

    #[test]
    fn an_accepted_probe_opens_the_pipeline_after_what_matched() {
        let mut p = Peer::new(NodeId(1), 5);
        p.accepted(4, 10);
        assert_eq!((p.flow, p.matched, p.next), (Flow::Pipeline, 4, 5));
        p.check(10, 8);
    }

    #[test]
    fn a_success_never_matches_past_the_leaders_log() {
        let mut p = Peer::new(NodeId(1), 5);
        p.accepted(40, 10);
        assert_eq!((p.matched, p.next), (10, 11));
        p.check(10, 8);
    }

    #[test]
    fn a_success_clears_what_it_covers_from_the_pipeline() {
        let mut p = pipelined(2, &[4, 6, 8]);
        p.accepted(6, 100);
        assert_eq!(p.inflight, [8]);
        assert_eq!((p.matched, p.next), (6, 9));
        p.check(100, 8);
    }

    #[test]
    fn a_stale_rejection_in_the_pipeline_changes_nothing() {
        let mut p = pipelined(6, &[8]);
        p.rejected(4, 3, false);
        assert_eq!((p.flow, p.matched, p.next), (Flow::Pipeline, 6, 9));
        p.rejected(7, 6, false);
        assert_eq!((p.flow, p.next), (Flow::Probe { sent: false }, 7));
        p.check(100, 8);
    }

    #[test]
    fn a_follower_that_lost_its_log_is_probed_from_its_end() {
        let mut p = pipelined(6, &[8]);
        p.rejected(8, 0, true);
        assert_eq!((p.matched, p.next, p.flow), (0, 1, Flow::Probe { sent: false }));
        p.check(100, 8);
    }
}
