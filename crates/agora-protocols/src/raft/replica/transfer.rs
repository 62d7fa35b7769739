//! Leadership transfer (§3.10 of the thesis): a leader asked to hand its post to another
//! replica lets that replica's log catch up with its own, then tells it to stand at once
//! ([`RaftMsg::TimeoutNow`]) and takes no new commands until an election timeout has passed
//! (its log must not outgrow the target's while the target stands; clients are redirected to
//! the target). The target stands without pre-vote, and its vote requests say it was handed
//! the post: voters that still hear the leader answer them all the same, and the leader
//! steps down for it.
//!
//! A transfer is a hint and changes nothing about safety: the target wins only as any
//! candidate does, with the votes of a majority whose logs are no more up to date than its
//! own. If it does not win (a message lost, the target crashed or fell behind), the leader
//! takes commands again an election timeout after it was asked, or an election settles who
//! leads.
//!
//! **Invariants**: only a leader transfers, and only to another replica of the log; a
//! `TimeoutNow` goes out only when the target's log matches the leader's to its end; a
//! follower stands on one only if it comes from its leader in its own term.

use super::{Replica, Role, Step};
use crate::raft::{Io, RaftMsg, StateMachine, Term};
use agora_core::{NodeId, Time};

/// A transfer under way.
#[derive(Clone, Copy, Debug, Hash)]
pub(super) struct Transfer {
    /// The replica to hand the post to.
    to: NodeId,
    /// When the leader was asked.
    asked: Time,
    /// `TimeoutNow` sent: the leader takes no new commands.
    sent: bool,
}

impl Transfer {
    /// The transfer with its target renamed (see `Replica::renamed`).
    pub(super) fn renamed(self, to: &[NodeId]) -> Self {
        Transfer { to: to[self.to.index()], ..self }
    }
}

impl<SM: StateMachine> Replica<SM> {
    /// Asked to hand leadership to replica `to`: sends it `TimeoutNow` as soon as its log
    /// matches this one's to the end. Nothing happens unless this replica leads and `to` is
    /// another replica of the log, nor while a transfer to `to` asked less than an election
    /// timeout ago is under way.
    pub fn transfer(&mut self, io: &mut impl Io<SM>, to: NodeId) {
        let before = Step::of(self);
        if self.role == Role::Leader && to != self.me && self.cfg.replicas.contains(&to) {
            let now = io.now();
            let under_way =
                self.transfer.is_some_and(|t| t.to == to && now.since(t.asked) < self.cfg.election_timeout);
            if !under_way {
                self.transfer = Some(Transfer { to, asked: now, sent: false });
                self.transfer_progress(io);
            }
        }
        self.check_step(&before);
    }

    /// Sends the target `TimeoutNow` once its log matches this leader's to the end.
    pub(super) fn transfer_progress(&mut self, io: &mut impl Io<SM>) {
        let Some(t) = &mut self.transfer else { return };
        if t.sent || self.role != Role::Leader {
            return;
        }
        if self.peers.iter().any(|p| p.id == t.to && p.matched == self.log.last()) {
            t.sent = true;
            io.send(t.to, RaftMsg::TimeoutNow { term: self.term });
        }
    }

    /// The replica this leader handed its post to, while it waits for it to win: commands
    /// wait (clients go to the target). Past an election timeout the transfer is dropped.
    pub(super) fn transferring(&mut self, io: &impl Io<SM>) -> Option<NodeId> {
        let t = self.transfer?;
        if io.now().since(t.asked) >= self.cfg.election_timeout {
            self.transfer = None;
            return None;
        }
        t.sent.then_some(t.to)
    }

    /// `TimeoutNow` from `from`: stands at once if `from` is this follower's leader in its
    /// own term (a stale or forged one changes nothing).
    pub(super) fn on_timeout_now(&mut self, io: &mut impl Io<SM>, from: NodeId, term: Term) {
        let follows = self.role == Role::Follower && self.leader == Some(from) && term == self.term;
        if follows && self.rejoining.is_none() {
            self.stand(io, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{config, heartbeat, replica, TestIo, F};
    use super::*;
    use crate::raft::kv::{Kv, KvCmd};
    use crate::raft::{Op, RaftTimer};
    use agora_core::Stable;

    /// Node 0, leader of term 1 of the three replicas (node 1 voted for it), its no-op at 1
    /// not yet acknowledged by anyone.
    fn leader() -> (Replica<Kv>, TestIo) {
        let mut r = replica(config(), NodeId(0), &Stable::new());
        let mut io = TestIo::new();
        r.on_timer(&mut io, RaftTimer::Election);
        r.on_message(&mut io, NodeId(1), RaftMsg::PreVoteReply { term: 1, granted: true });
        r.on_message(&mut io, NodeId(1), RaftMsg::VoteReply { term: 1, granted: true });
        assert_eq!(r.role(), Role::Leader);
        io.sent.clear();
        (r, io)
    }

    /// The `TimeoutNow`s sent: to whom, in which term.
    fn timeout_now(io: &TestIo) -> Vec<(NodeId, Term)> {
        let sent = io.sent.iter();
        sent.filter_map(|(to, m)| match m {
            RaftMsg::TimeoutNow { term } => Some((*to, *term)),
            _ => None,
        })
        .collect()
    }

    fn request(seq: u64) -> RaftMsg<Kv> {
        RaftMsg::Request {
            session: 9,
            acked_below: 0,
            ops: vec![(seq, Op::Command(KvCmd::Put { key: 1, value: seq }))],
        }
    }

    #[test]
    fn the_leader_hands_over_once_the_target_has_its_log_and_takes_no_commands_meanwhile() {
        let (mut l, mut io) = leader();
        l.transfer(&mut io, F);
        assert!(timeout_now(&io).is_empty(), "F lacks the no-op");
        // A command is still taken while F catches up.
        l.on_message(&mut io, NodeId(9), request(0));
        assert_eq!(l.last_index(), 2);
        let reply = |last| RaftMsg::AppendReply {
            term: 1,
            ok: true,
            prev: 0,
            last,
            round: 0,
            commit: 0,
            lost: false,
        };
        l.on_message(&mut io, F, reply(1));
        assert!(timeout_now(&io).is_empty(), "F lacks entry 2");
        l.on_message(&mut io, F, reply(2));
        assert_eq!(timeout_now(&io), vec![(F, 1)]);
        // Now commands wait: the client is sent to F, and the log stays as F has it.
        io.sent.clear();
        l.on_message(&mut io, NodeId(9), request(1));
        assert!(matches!(io.sent.pop(), Some((_, RaftMsg::Redirect { leader: Some(F), .. }))));
        assert_eq!(l.last_index(), 2);
        // F stands, handed the post: the leader steps down and votes for it.
        l.on_message(&mut io, F, RaftMsg::Vote { term: 2, last_index: 2, last_term: 1, transfer: true });
        assert_eq!(l.role(), Role::Follower);
        assert!(matches!(io.sent.pop(), Some((_, RaftMsg::VoteReply { term: 2, granted: true }))));
        // Nothing is transferred by a replica that does not lead.
        io.sent.clear();
        l.transfer(&mut io, NodeId(1));
        assert!(io.sent.is_empty());
    }

    #[test]
    fn a_follower_stands_on_its_leaders_timeout_now_and_is_voted_for_despite_stickiness() {
        let beat = heartbeat(1);
        let mut f = replica(config(), F, &Stable::new());
        let mut io = TestIo::new();
        f.on_message(&mut io, NodeId(0), beat.clone());
        // From a replica that is not its leader, or of another term: nothing.
        f.on_message(&mut io, NodeId(1), RaftMsg::TimeoutNow { term: 1 });
        f.on_message(&mut io, NodeId(0), RaftMsg::TimeoutNow { term: 0 });
        assert_eq!((f.term(), f.role()), (1, Role::Follower));
        // From its leader in its term: it stands at once, no pre-vote, and says why.
        io.sent.clear();
        f.on_message(&mut io, NodeId(0), RaftMsg::TimeoutNow { term: 1 });
        assert_eq!((f.term(), f.role()), (2, Role::Candidate));
        assert_eq!(io.sent.len(), 2);
        assert!(io.sent.iter().all(|(_, m)| matches!(m, RaftMsg::Vote { term: 2, transfer: true, .. })));
        // Another follower that hears the leader ignores an ordinary vote request, and
        // answers the handed-over candidate's.
        let mut g = replica(config(), NodeId(1), &Stable::new());
        let mut io = TestIo::new();
        g.on_message(&mut io, NodeId(0), beat);
        io.sent.clear();
        let vote = |transfer| RaftMsg::Vote { term: 2, last_index: 0, last_term: 0, transfer };
        g.on_message(&mut io, F, vote(false));
        assert!(io.sent.is_empty() && g.term() == 1, "leader stickiness");
        g.on_message(&mut io, F, vote(true));
        assert!(matches!(io.sent.pop(), Some((_, RaftMsg::VoteReply { term: 2, granted: true }))));
    }
}
