//! Leader election (§5.2 of the paper) with the thesis's refinements: randomized timeouts
//! drawn from the injected random source (uniformly between `Config::election_timeout` and
//! `Config::election_timeout_max`), pre-vote (§9.6: a follower whose timer fires asks first
//! whether a majority would vote for it, without changing its term; `Config::pre_vote`
//! turns it off, as in the paper), leader stickiness
//! (§4.2.3: a follower that heard a live leader within the minimum election timeout ignores
//! vote requests), stepping down, becoming leader, following a leader — and the rejoin gate:
//! a replica that lost its storage votes again only once its log has caught up with a
//! leader's log as it was when first heard.
//!
//! **Invariants**: the term never decreases and a vote once cast in a term stands (checked
//! after every step, `mod.rs`); a candidate counts itself first; a leader voted for itself;
//! a rejoining replica neither grants votes nor stands.

use super::progress::Peer;
use super::{Replica, Role, HARD_STATE};
use crate::raft::{Body, Index, Io, RaftMsg, RaftObs, RaftTimer, StateMachine, Term};
use agora_core::{wire, NodeId, REJOINING};
use rand::Rng as _;

impl<SM: StateMachine> Replica<SM> {
    pub(super) fn reset_election_timer(&mut self, io: &mut impl Io<SM>) {
        let (min, max) = (self.cfg.election_timeout, self.cfg.election_timeout_max);
        debug_assert!(min <= max, "election timeouts from {min:?} to {max:?}");
        let after = min + max.saturating_sub(min).mul_f64(io.rng().random::<f64>());
        io.set_timer(RaftTimer::Election, after);
    }

    pub(super) fn persist_hard_state(&self, io: &mut impl Io<SM>) {
        io.persist(HARD_STATE.into(), wire::encode(&(self.term, self.voted_for)));
    }

    /// The timer fired on a follower: ask whether a majority would vote for it in the next term.
    pub(super) fn start_prevote(&mut self, io: &mut impl Io<SM>) {
        debug_assert!(self.rejoining.is_none(), "a rejoining replica pre-votes");
        self.prevotes = vec![self.me];
        self.reset_election_timer(io);
        if self.prevotes.len() >= self.cfg.majority() {
            self.start_election(io);
            return;
        }
        let msg = RaftMsg::PreVote {
            term: self.term + 1,
            last_index: self.log.last(),
            last_term: self.log.last_term(),
        };
        for p in &self.peers {
            io.send(p.id, msg.clone());
        }
    }

    /// Whether a log ending at `(last_term, last_index)` is at least as up to date as ours.
    fn at_least_as_current(&self, (last_term, last_index): (Term, Index)) -> bool {
        !self.cfg.log_check || (last_term, last_index) >= (self.log.last_term(), self.log.last())
    }

    /// Whether a leader was heard from within the shortest election timeout.
    pub(super) fn leader_alive(&self, io: &impl Io<SM>) -> bool {
        let recently = self.heard_at.is_some_and(|t| io.now().since(t) < self.cfg.election_timeout);
        self.role == Role::Leader || (self.leader.is_some() && recently)
    }

    /// Granted when this replica would vote in `term`: it is newer, no leader is alive, and the
    /// candidate's log is at least as up to date. Nothing here changes.
    pub(super) fn on_prevote(
        &mut self,
        io: &mut impl Io<SM>,
        from: NodeId,
        term: Term,
        candidate_log: (Term, Index),
    ) {
        let granted = term > self.term
            && self.at_least_as_current(candidate_log)
            && !self.leader_alive(io)
            && self.rejoining.is_none();
        let term = if granted { term } else { self.term };
        io.send(from, RaftMsg::PreVoteReply { term, granted });
    }

    pub(super) fn on_prevote_reply(&mut self, io: &mut impl Io<SM>, from: NodeId, term: Term, granted: bool) {
        if !granted {
            if term > self.term {
                self.step_down(io, term);
            }
            return;
        }
        // An empty tally: not pre-voting (a leader was heard from since).
        let counting = self.role == Role::Follower && !self.prevotes.is_empty();
        if !counting || term != self.term + 1 || self.prevotes.contains(&from) {
            return;
        }
        self.prevotes.push(from);
        if self.prevotes.len() >= self.cfg.majority() {
            self.start_election(io);
        }
    }

    /// Stands in the next term, voting for itself.
    pub(super) fn start_election(&mut self, io: &mut impl Io<SM>) {
        self.stand(io, false);
    }

    /// Stands in the next term, voting for itself; `transfer` when its leader handed it the
    /// post, which its vote requests say.
    pub(super) fn stand(&mut self, io: &mut impl Io<SM>, transfer: bool) {
        debug_assert!(self.rejoining.is_none(), "a rejoining replica stands");
        self.prevotes.clear();
        self.term += 1;
        self.role = Role::Candidate;
        self.leader = None;
        self.voted_for = Some(self.me);
        self.votes = vec![self.me];
        self.persist_hard_state(io);
        io.observe(RaftObs::Voted { term: self.term, candidate: self.me });
        self.reset_election_timer(io);
        if self.votes.len() >= self.cfg.majority() {
            self.become_leader(io);
            return;
        }
        let msg = RaftMsg::Vote {
            term: self.term,
            last_index: self.log.last(),
            last_term: self.log.last_term(),
            transfer,
        };
        for p in &self.peers {
            io.send(p.id, msg.clone());
        }
    }

    /// Moves to `term` (if higher) as a follower.
    pub(super) fn step_down(&mut self, io: &mut impl Io<SM>, term: Term) {
        debug_assert!(term >= self.term, "stepping down to an older term {term} from {}", self.term);
        if term > self.term {
            self.term = term;
            self.voted_for = None;
            self.persist_hard_state(io);
            // A snapshot being received came from an older leader: the new one starts over.
            self.incoming = None;
        }
        self.transfer = None;
        if self.role == Role::Leader {
            io.observe(RaftObs::SteppedDown { term: self.term });
            io.cancel_timer(RaftTimer::Heartbeat);
            for r in std::mem::take(&mut self.reads) {
                io.send_early(r.from, RaftMsg::Redirect { session: r.session, leader: None });
            }
            self.round_open = false;
        }
        if self.role != Role::Follower {
            self.role = Role::Follower;
            self.reset_election_timer(io);
        }
        self.votes.clear();
    }

    pub(super) fn on_vote(
        &mut self,
        io: &mut impl Io<SM>,
        from: NodeId,
        term: Term,
        (last_index, last_term): (Index, Term),
        transfer: bool,
    ) {
        if term > self.term {
            // Leader stickiness: a follower that hears a live leader ignores disruptions —
            // except the candidate that leader handed the post to.
            if self.leader_alive(io) && !transfer {
                return;
            }
            self.step_down(io, term);
            self.leader = None;
        }
        let up_to_date = self.at_least_as_current((last_term, last_index));
        let granted = term == self.term
            && self.voted_for.is_none_or(|v| v == from)
            && up_to_date
            && self.rejoining.is_none();
        if granted && self.voted_for.is_none() {
            self.voted_for = Some(from);
            self.persist_hard_state(io);
            io.observe(RaftObs::Voted { term, candidate: from });
        }
        if granted {
            self.reset_election_timer(io);
        }
        io.send(from, RaftMsg::VoteReply { term: self.term, granted });
    }

    pub(super) fn on_vote_reply(&mut self, io: &mut impl Io<SM>, from: NodeId, term: Term, granted: bool) {
        if term > self.term {
            self.step_down(io, term);
            return;
        }
        if self.role != Role::Candidate || term != self.term || !granted || self.votes.contains(&from) {
            return;
        }
        self.votes.push(from);
        if self.votes.len() >= self.cfg.majority() {
            self.become_leader(io);
        }
    }

    /// Won the election: every follower is probed from the end of this log, and the term's
    /// no-op is appended (committing it commits everything before it, §5.4.2).
    fn become_leader(&mut self, io: &mut impl Io<SM>) {
        debug_assert_eq!(self.role, Role::Candidate, "only a candidate is elected");
        debug_assert!(self.votes.len() >= self.cfg.majority(), "elected by a minority");
        self.role = Role::Leader;
        self.leader = Some(self.me);
        io.cancel_timer(RaftTimer::Election);
        io.observe(RaftObs::Leader { term: self.term });
        let next = self.log.last() + 1;
        for p in &mut self.peers {
            *p = Peer::new(p.id, next);
        }
        self.round = 0;
        self.round_open = false;
        self.transfer = None;
        // Nothing of this term is durable yet: the no-op's write will say so.
        self.durable = 0;
        self.term_start = self.append(io, Body::Noop);
        for i in 0..self.peers.len() {
            self.replicate(io, i, true);
        }
        io.set_timer(RaftTimer::Heartbeat, self.cfg.heartbeat);
        self.advance_commit(io);
    }

    /// A message of the current (or a newer) leader: follow it.
    pub(super) fn follow(&mut self, io: &mut impl Io<SM>, from: NodeId, term: Term) {
        if term > self.term || self.role != Role::Follower {
            self.step_down(io, term);
        }
        self.leader = Some(from);
        self.heard_at = Some(io.now());
        self.prevotes.clear();
        self.reset_election_timer(io);
    }

    /// A rejoining replica heard the leader `from`, whose log ends at `leader_last`: the first
    /// such end in a term is the target; once this replica's log matches the leader's up to it,
    /// it holds every entry it may have acknowledged before it lost its storage (any entry
    /// committed, or acknowledged and still to be counted, is in every later leader's log, and
    /// was in this one's when it was first heard). It then votes again — never in this term,
    /// where it may have voted before the loss, hence the vote recorded for the leader.
    pub(super) fn rejoin_progress(
        &mut self,
        io: &mut impl Io<SM>,
        from: NodeId,
        term: Term,
        leader_last: Index,
    ) {
        let Some(target) = &mut self.rejoining else { return };
        if term != self.term || self.leader != Some(from) {
            return;
        }
        let (term, index) = *target.get_or_insert((self.term, leader_last));
        if term != self.term {
            // A new leader: its log is the one to reach.
            *target = Some((self.term, leader_last));
            return;
        }
        if self.matched.is_some_and(|(t, m)| t == term && m >= index) {
            debug_assert!(self.voted_for.is_none(), "a rejoining replica voted in term {term}");
            self.rejoining = None;
            self.voted_for = Some(from);
            self.persist_hard_state(io);
            io.unpersist(REJOINING.to_string());
            io.observe(RaftObs::Rejoined { term, index });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{config, heartbeat, replica, TestIo, F};
    use super::*;
    use crate::raft::Entry;
    use agora_core::Stable;
    use std::time::Duration;

    #[test]
    fn a_follower_that_hears_its_leader_refuses_pre_votes_and_keeps_its_term() {
        let mut f = replica(config(), F, &Stable::new());
        let mut io = TestIo::new();
        let prevote = RaftMsg::PreVote { term: 1, last_index: 0, last_term: 0 };
        // No leader heard from yet: granted, and nothing changes here.
        f.on_message(&mut io, NodeId(1), prevote.clone());
        assert!(matches!(io.sent.pop(), Some((_, RaftMsg::PreVoteReply { term: 1, granted: true }))));
        assert_eq!(f.term(), 0);
        // Once the leader of term 1 is heard from, a pre-vote for term 2 is refused.
        let beat = heartbeat(1);
        f.on_message(&mut io, NodeId(0), beat);
        io.sent.clear();
        f.on_message(&mut io, NodeId(1), RaftMsg::PreVote { term: 2, last_index: 0, last_term: 0 });
        assert!(matches!(io.sent.pop(), Some((_, RaftMsg::PreVoteReply { term: 1, granted: false }))));
        assert_eq!(f.term(), 1);
        assert!(!f.seeking_leader(), "it hears its leader");
        // Its own timer firing raises no term either: it only asks.
        f.on_timer(&mut io, RaftTimer::Election);
        assert!(f.seeking_leader(), "pre-voting");
        assert_eq!(f.term(), 1);
        assert!(io.sent.iter().all(|(_, m)| matches!(m, RaftMsg::PreVote { term: 2, .. })));
    }

    #[test]
    fn a_rejoining_replica_votes_only_after_reaching_the_leaders_log() {
        let mut stable = Stable::new();
        stable.put(REJOINING.into(), Vec::new());
        let mut f = replica(config(), F, &stable);
        assert!(f.rejoining());
        let mut io = TestIo::new();
        let refused =
            |io: &mut TestIo| matches!(io.sent.pop(), Some((_, RaftMsg::VoteReply { granted: false, .. })));
        // An empty log is as up to date as any: a replica that forgot would grant this.
        let vote = RaftMsg::Vote { term: 3, last_index: 0, last_term: 0, transfer: false };
        f.on_message(&mut io, NodeId(1), vote);
        assert!(refused(&mut io), "no vote while rejoining");
        assert_eq!(f.term(), 3, "it still learns the term");
        f.on_timer(&mut io, RaftTimer::Election);
        assert!(io.sent.is_empty(), "no pre-vote or candidacy while rejoining");
        // The leader of term 3 has a log up to 2; its first append carries entry 1 only.
        let entry = |_: Index| Entry::<crate::raft::kv::Kv> { term: 3, body: Body::Noop };
        let append = |prev: Index, n: usize| RaftMsg::Append {
            term: 3,
            prev_index: prev,
            prev_term: if prev == 0 { 0 } else { 3 },
            entries: (0..n).map(|k| entry(prev + 1 + k as u64)).collect(),
            commit: 0,
            round: 0,
            leader_last: 2,
        };
        f.on_message(&mut io, NodeId(0), append(0, 1));
        assert!(f.rejoining(), "entry 2 is not here yet");
        f.on_message(&mut io, NodeId(0), append(1, 1));
        assert!(!f.rejoining());
        assert!(io.observed.iter().any(|o| matches!(o, RaftObs::Rejoined { term: 3, index: 2 })));
        // It may have voted in term 3 before its loss: never again in it...
        f.on_message(
            &mut io,
            NodeId(1),
            RaftMsg::Vote { term: 3, last_index: 9, last_term: 3, transfer: false },
        );
        assert!(refused(&mut io));
        // ...but in later terms, as any replica.
        io.sent.clear();
        f.heard_at = None;
        f.on_message(
            &mut io,
            NodeId(1),
            RaftMsg::Vote { term: 4, last_index: 9, last_term: 3, transfer: false },
        );
        assert!(matches!(io.sent.pop(), Some((_, RaftMsg::VoteReply { granted: true, .. }))));
    }

    #[test]
    fn a_campaign_asks_at_once_unless_a_leader_is_alive() {
        let mut f = replica(config(), F, &Stable::new());
        let mut io = TestIo::new();
        f.campaign(&mut io);
        assert_eq!(f.term(), 0, "a pre-vote first, as the timer would");
        assert_eq!(io.sent.len(), 2);
        assert!(io.sent.iter().all(|(_, m)| matches!(m, RaftMsg::PreVote { term: 1, .. })));
        // A follower that hears its leader stays put.
        let beat = heartbeat(1);
        let mut g = replica(config(), F, &Stable::new());
        let mut io = TestIo::new();
        g.on_message(&mut io, NodeId(0), beat);
        io.sent.clear();
        g.campaign(&mut io);
        assert!(io.sent.is_empty());
        assert_eq!((g.term(), g.role(), g.leader()), (1, Role::Follower, Some(NodeId(0))));
    }

    #[test]
    fn election_timers_are_drawn_from_the_configured_range() {
        let ms = Duration::from_millis;
        let drawn = |min: u64, max: u64| {
            let mut cfg = config();
            (cfg.election_timeout, cfg.election_timeout_max) = (ms(min), ms(max));
            let mut f = replica(cfg, F, &Stable::new());
            let mut io = TestIo::new();
            for _ in 0..200 {
                f.on_timer(&mut io, RaftTimer::Election);
            }
            let d: Vec<Duration> =
                io.timers.iter().filter(|(t, _)| *t == RaftTimer::Election).map(|t| t.1).collect();
            assert_eq!(d.len(), 200);
            (d.iter().copied().min().unwrap(), d.iter().copied().max().unwrap())
        };
        // The default: [t, 2t), spread over most of it.
        let (lo, hi) = drawn(100, 200);
        assert!(lo >= ms(100) && lo < ms(110) && hi > ms(190) && hi < ms(200), "{lo:?}..{hi:?}");
        let (lo, hi) = drawn(150, 155);
        assert!(lo >= ms(150) && hi < ms(155) && hi > ms(154), "{lo:?}..{hi:?}");
        assert_eq!(drawn(150, 150), (ms(150), ms(150)));
    }

    #[test]
    fn without_pre_vote_a_follower_stands_when_its_timer_fires() {
        let mut cfg = config();
        cfg.pre_vote = false;
        let mut f = replica(cfg, F, &Stable::new());
        let mut io = TestIo::new();
        assert!(!f.seeking_leader(), "its timer has not fired");
        f.on_timer(&mut io, RaftTimer::Election);
        assert_eq!(f.term(), 1, "a new term at once");
        assert!(f.seeking_leader(), "a candidate");
        assert_eq!(io.sent.len(), 2);
        assert!(io.sent.iter().all(|(_, m)| matches!(m, RaftMsg::Vote { term: 1, .. })));
        // With pre-vote (the default), the same timer only asks.
        let mut f = replica(config(), F, &Stable::new());
        let mut io = TestIo::new();
        f.on_timer(&mut io, RaftTimer::Election);
        assert_eq!(f.term(), 0);
        assert!(io.sent.iter().all(|(_, m)| matches!(m, RaftMsg::PreVote { term: 1, .. })));
    }

    /// A replica looking for a leader is settled but for it only once nothing it knows of is
    /// left to commit or apply: its leader may have ended, settled, but not before telling it.
    #[test]
    fn a_replica_seeking_a_leader_is_settled_but_for_it_only_with_its_log_committed() {
        let mut f = replica(config(), F, &Stable::new());
        let mut io = TestIo::new();
        let append = |prev_index, entries, commit| RaftMsg::Append {
            term: 1,
            prev_index,
            prev_term: prev_index,
            entries,
            commit,
            round: 0,
            leader_last: 1,
        };
        // The leader of term 1 sends its no-op, not committed yet; then falls silent.
        f.on_message(&mut io, NodeId(0), append(0, vec![Entry { term: 1, body: Body::Noop }], 0));
        f.on_timer(&mut io, RaftTimer::Election);
        assert!(f.seeking_leader(), "pre-voting");
        assert!(!f.settled_but_leaderless(), "the no-op is not known to be committed");
        // Heard again: the no-op is committed; then silent again.
        f.on_message(&mut io, NodeId(0), append(1, vec![], 1));
        assert!(!f.seeking_leader() && !f.settled_but_leaderless(), "it hears its leader");
        f.on_timer(&mut io, RaftTimer::Election);
        assert!(f.settled_but_leaderless());
    }
}
