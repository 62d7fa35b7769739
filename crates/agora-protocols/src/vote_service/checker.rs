//! The voting service's properties, judged from what servers (their boards' notes, events and
//! tallies) and members (what they were answered and what they took) report; Raft's own
//! properties on top ([`RaftChecker`]).
//!
//! A board note is judged the first time any server reports its position (servers apply the
//! same log; a restarted server applies again what it had applied), at that time: the time
//! the cluster first knew of it.
//!
//! - *event-order* (always): every server numbers the same events the same way.
//! - *consensus-once* (always): a question's consensus is decided once, by the report's rule
//!   (more than half the members online, more than one vote).
//! - *one-vote-per-member* (always): a member's vote on a question is counted at one log
//!   position for one option; a second, different vote is never acknowledged.
//! - *acked-vote-counted* (always): a vote acknowledged to a member is counted in the log.
//! - *votes-on-every-server* (at end): every live server's board counts exactly the votes the
//!   log counted (their number and a digest of them).
//! - *members-see-every-event* (always): a member takes the events from its own JOIN on, one
//!   after the other, each the event the servers gave that number.
//! - *members-caught-up* (at end): every live member with a session took every event.
//! - *fail-after-timeout* (always): a session fails only when its latest sign of life in the
//!   log (its login, a command, a heartbeat) is at least the session timeout old.
//! - *crashed-members-fail* (at end, once the run went on for one and a half session timeouts
//!   after the last fault): a member down at the end no longer has its session.
//! - *no-work-after-end* (always): no command of a session succeeds after its logout or expiry,
//!   and no member is told of more successes of a session than the log applied.
//!
//! The at-end properties are judged when the run ended on its own with no partition in force
//! and a majority of the servers up.

use super::board::{Event, Note};
use super::server::{tally_digest, ServerObs};
use super::sim::{Settings, VsObs};
use super::{Pin, QuestionId, Sid};
use crate::raft::checker::RaftChecker;
use crate::raft::Pos;
use agora_core::{
    Checker, EndState, Lifecycle, NodeId, NotJudged, Property, PropertyKind, Protocol, Time, Violation,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

fn violation(property: &'static str, node: NodeId, at: Time, detail: String) -> Result<(), Violation> {
    Err(Violation::new(property, Some(node), at, detail))
}

/// Judges runs of the voting service.
pub struct VoteServiceChecker {
    raft: RaftChecker,
    servers: usize,
    timeout: Duration,
    /// Notes already judged.
    seen: HashSet<(Pos, Note)>,
    /// Every event, by number, as servers reported it.
    events: BTreeMap<u64, Event>,
    /// Each question's consensus.
    consensus: HashMap<QuestionId, u32>,
    /// Each vote counted: its option and position.
    counted: BTreeMap<(QuestionId, Pin), (u32, Pos)>,
    /// Each session's latest sign of life in the log, and when it was first applied.
    alive: HashMap<Sid, (Pos, Time)>,
    /// Where each session ended.
    ended: HashMap<Sid, Pos>,
    /// Successful commands per session: applied, and told to its member.
    ok_applied: HashMap<Sid, u64>,
    ok_told: HashMap<Sid, u64>,
    /// Per node (members): the last event taken, while following the events.
    stream: Vec<Option<u64>>,
    /// Per node (members): the session it holds.
    session: Vec<Option<Sid>>,
    /// Events members took before any server reported them: `(member, number, event)`.
    unconfirmed: Vec<(NodeId, u64, Event)>,
    /// Per node (servers): the latest tally `(votes, digest)`.
    tally: Vec<(u64, u64)>,
}

impl VoteServiceChecker {
    /// A checker for a run of `s`.
    pub fn new(s: &Settings) -> Self {
        let n = s.servers + s.members;
        let replicas = &s.server.raft.replicas;
        VoteServiceChecker {
            raft: RaftChecker::new(n, replicas, &[], s.server.raft.election_timeout * 250),
            servers: s.servers,
            timeout: s.session_timeout,
            seen: HashSet::new(),
            events: BTreeMap::new(),
            consensus: HashMap::new(),
            counted: BTreeMap::new(),
            alive: HashMap::new(),
            ended: HashMap::new(),
            ok_applied: HashMap::new(),
            ok_told: HashMap::new(),
            stream: vec![None; n],
            session: vec![None; n],
            unconfirmed: Vec::new(),
            tally: vec![(0, 0); n],
        }
    }

    fn event(&mut self, at: Time, node: NodeId, n: u64, e: &Event) -> Result<(), Violation> {
        if let Some(known) = self.events.get(&n) {
            if known != e {
                return violation(
                    "event-order",
                    node,
                    at,
                    format!("event {n} is {e:?} here, {known:?} elsewhere"),
                );
            }
            return Ok(());
        }
        self.events.insert(n, e.clone());
        if let Event::Consensus { id, option, votes, members } = e {
            if let Some(first) = self.consensus.insert(*id, *option) {
                let d = format!("question {id} reached consensus {option} at event {n}, after {first}");
                return violation("consensus-once", node, at, d);
            }
            if *votes < 2 || 2 * votes <= *members {
                let d = format!("question {id}: consensus with {votes} votes of {members} members");
                return violation("consensus-once", node, at, d);
            }
        }
        let confirm = std::mem::take(&mut self.unconfirmed);
        for (m, k, took) in confirm {
            if k == n && &took != e {
                return violation(
                    "members-see-every-event",
                    m,
                    at,
                    format!("took {took:?} as event {n}: it is {e:?}"),
                );
            }
            if k != n {
                self.unconfirmed.push((m, k, took));
            }
        }
        Ok(())
    }

    fn note(&mut self, at: Time, node: NodeId, pos: Pos, note: &Note) -> Result<(), Violation> {
        if !self.seen.insert((pos, note.clone())) {
            return Ok(());
        }
        match *note {
            Note::Alive { sid } => {
                if self.alive.get(&sid).is_none_or(|(p, _)| *p < pos) {
                    self.alive.insert(sid, (pos, at));
                }
            }
            Note::Op { sid, ok: true } => {
                *self.ok_applied.entry(sid).or_default() += 1;
                if let Some(end) = self.ended.get(&sid).filter(|end| pos > **end) {
                    let d =
                        format!("a command of session {sid} succeeded at {pos:?}, after its end at {end:?}");
                    return violation("no-work-after-end", node, at, d);
                }
            }
            Note::Op { .. } => {}
            Note::Ended { sid, failed, .. } => {
                self.ended.insert(sid, pos);
                let last = self.alive.get(&sid).copied();
                if let (true, Some((seen, since))) = (failed, last) {
                    if at.since(since) < self.timeout {
                        let d = format!(
                            "session {sid} failed {} after its last sign of life (at {seen:?}); the timeout is {:?}",
                            Time(at.since(since).as_nanos() as u64),
                            self.timeout
                        );
                        return violation("fail-after-timeout", node, at, d);
                    }
                }
            }
            Note::Counted { question, pin, option } => match self.counted.get(&(question, pin)) {
                Some(&(o, p)) if (o, p) != (option, pos) => {
                    let d =
                        format!("member {pin}'s vote on {question}: {o} at {p:?}, then {option} at {pos:?}");
                    return violation("one-vote-per-member", node, at, d);
                }
                Some(_) => {}
                None => {
                    self.counted.insert((question, pin), (option, pos));
                }
            },
        }
        Ok(())
    }

    fn server(&mut self, at: Time, node: NodeId, obs: &ServerObs) -> Result<(), Violation> {
        match obs {
            ServerObs::Events(events) => {
                for (n, e) in events {
                    self.event(at, node, *n, e)?;
                }
            }
            ServerObs::Applied(notes) => {
                for (pos, note) in notes {
                    self.note(at, node, *pos, note)?;
                }
            }
            ServerObs::Tally { votes, digest } => self.tally[node.index()] = (*votes, *digest),
            ServerObs::Expiring { .. } => {}
        }
        Ok(())
    }

    fn member(&mut self, at: Time, node: NodeId, obs: &VsObs) -> Result<(), Violation> {
        let i = node.index();
        match obs {
            VsObs::Session { sid, .. } => self.session[i] = Some(*sid),
            VsObs::Stream { from } => self.stream[i] = Some(from.saturating_sub(1)),
            VsObs::Delivered { n, event } => {
                let expected = self.stream[i].map(|last| last + 1);
                if expected != Some(*n) {
                    return violation(
                        "members-see-every-event",
                        node,
                        at,
                        format!("took event {n}; the next was {expected:?}"),
                    );
                }
                self.stream[i] = Some(*n);
                match self.events.get(n) {
                    Some(e) if e != event => {
                        let d = format!("took {event:?} as event {n}: it is {e:?}");
                        return violation("members-see-every-event", node, at, d);
                    }
                    Some(_) => {}
                    None => self.unconfirmed.push((node, *n, event.clone())),
                }
            }
            VsObs::Ended { .. } => {
                self.session[i] = None;
                self.stream[i] = None;
            }
            VsObs::Answered { sid, ok: true } => {
                let told = self.ok_told.entry(*sid).or_default();
                *told += 1;
                let applied = self.ok_applied.get(sid).copied().unwrap_or(0);
                if *told > applied {
                    let d = format!("told of {told} successes of session {sid}; the log applied {applied}");
                    return violation("no-work-after-end", node, at, d);
                }
            }
            VsObs::VoteAcked { pin, question, option } => match self.counted.get(&(*question, *pin)) {
                None => {
                    let d = format!("member {pin}'s vote {option} on {question} acknowledged, not counted");
                    return violation("acked-vote-counted", node, at, d);
                }
                Some(&(o, _)) if o != *option => {
                    let d =
                        format!("member {pin}'s vote {option} on {question} acknowledged; {o} was counted");
                    return violation("one-vote-per-member", node, at, d);
                }
                Some(_) => {}
            },
            _ => {}
        }
        Ok(())
    }

    /// Why the at-end properties are not judged at `end`, if they are not.
    fn unjudged(&self, end: &EndState<'_>) -> Option<NotJudged> {
        if !end.quiescent {
            return Some(NotJudged::Unended);
        }
        self.raft.unjudged(end)
    }

    /// A member down at the end whose session is still open, if any: a violation once the run
    /// went on for one and a half session timeouts after the last fault, not judged before.
    fn down_in_session(&self, end: &EndState<'_>) -> Option<(usize, Sid)> {
        (self.servers..end.live.len())
            .filter(|&i| !end.live[i])
            .find_map(|i| self.session[i].filter(|sid| !self.ended.contains_key(sid)).map(|sid| (i, sid)))
    }

    fn settled(&self, end: &EndState<'_>) -> bool {
        end.at.since(end.last_fault) >= self.timeout * 3 / 2
    }

    /// Every at-end violation, each property judged whatever the others found.
    fn judge(&self, end: &EndState<'_>) -> Vec<Violation> {
        let mut out = Vec::new();
        let mut v = |p, i: usize, d: String| out.push(Violation::new(p, Some(NodeId(i as u32)), end.at, d));
        if let Some((m, n, _)) = self.unconfirmed.first() {
            v("members-see-every-event", m.index(), format!("took event {n}, which no server numbered"));
        }
        let want = (
            self.counted.len() as u64,
            tally_digest(self.counted.iter().map(|((q, p), (o, _))| (*q, *p, *o))),
        );
        if let Some(i) = (0..self.servers).filter(|&i| end.live[i]).find(|&i| self.tally[i] != want) {
            let d = format!(
                "counts {} votes (digest {:x}); the log counted {}",
                self.tally[i].0, self.tally[i].1, want.0
            );
            v("votes-on-every-server", i, d);
        }
        let last = self.events.keys().next_back().copied().unwrap_or(0);
        let behind = (self.servers..end.live.len())
            .filter(|&i| end.live[i] && self.session[i].is_some())
            .find(|&i| self.stream[i] != Some(last));
        if let Some(i) = behind {
            v("members-caught-up", i, format!("took events to {:?} of {last}", self.stream[i]));
        }
        if let Some((i, sid)) = self.down_in_session(end).filter(|_| self.settled(end)) {
            v("crashed-members-fail", i, format!("down at the end, its session {sid} still open"));
        }
        out
    }
}

impl<P: Protocol<Obs = VsObs> + ?Sized> Checker<P> for VoteServiceChecker {
    fn properties(&self) -> Vec<Property> {
        let always = |name, description| Property { name, kind: PropertyKind::Always, description };
        let at_end = |name, description| Property { name, kind: PropertyKind::AtEnd, description };
        let mut p = RaftChecker::properties();
        p.extend([
            always("event-order", "every server numbers the same events the same way"),
            always("consensus-once", "a question's consensus is decided once, by the report's rule"),
            always(
                "one-vote-per-member",
                "a member's vote is counted once; a different second vote is never acknowledged",
            ),
            always("acked-vote-counted", "a vote acknowledged to a member is counted in the log"),
            at_end(
                "votes-on-every-server",
                "every live server's board counts exactly the votes the log counted",
            ),
            always(
                "members-see-every-event",
                "members take the events from their JOIN on, in order, without a gap",
            ),
            at_end("members-caught-up", "every live member with a session took every event"),
            always(
                "fail-after-timeout",
                "a session fails only after the session timeout without a sign of life in the log",
            ),
            at_end("crashed-members-fail", "a member down at the end no longer has its session"),
            always("no-work-after-end", "no command of a session succeeds after its logout or expiry"),
        ]);
        p
    }

    fn observe(&mut self, at: Time, node: NodeId, obs: &VsObs) -> Result<(), Violation> {
        match obs {
            VsObs::Raft(o) => self.raft.check(at, node, o),
            VsObs::Server(o) => self.server(at, node, o),
            o => self.member(at, node, o),
        }
    }

    fn lifecycle(&mut self, at: Time, node: NodeId, event: Lifecycle) {
        self.raft.on_lifecycle(at, node, event);
        let i = node.index();
        match event {
            // A restarted server reports its tally again from its restored board.
            Lifecycle::Crashed if i < self.servers => self.tally[i] = (0, 0),
            // A member that lost its storage lost its token and its place in the events.
            Lifecycle::Wiped if i >= self.servers => {
                self.stream[i] = None;
                self.session[i] = None;
            }
            _ => {}
        }
    }

    fn not_judged(&self, end: &EndState<'_>) -> Vec<(&'static str, NotJudged)> {
        let mut out: Vec<_> = self.raft.unjudged(end).map(|why| ("liveness", why)).into_iter().collect();
        if let Some(why) = self.unjudged(end) {
            out.extend(
                ["votes-on-every-server", "members-caught-up", "crashed-members-fail"].map(|p| (p, why)),
            );
        } else if self.down_in_session(end).is_some() && !self.settled(end) {
            out.push(("crashed-members-fail", NotJudged::Unsettled));
        }
        out
    }

    fn finish(&mut self, end: &EndState<'_>) -> Vec<Violation> {
        let mut out = self.raft.judge_end(end);
        if self.unjudged(end).is_none() {
            out.extend(self.judge(end));
        }
        out
    }

    fn reports_lost(&mut self, _at: Time, node: NodeId) {
        self.raft.on_reports_lost(node);
    }

    fn undecided(&self) -> Vec<(&'static str, NotJudged)> {
        self.raft.open_claims()
    }
}

#[cfg(test)]
mod tests {
    //! Each property fed a history that breaks it, next to one that keeps it.

    use super::*;
    use crate::vote_service::sim::{Variant, VoteServiceNode};

    const A: NodeId = NodeId(0);
    const B: NodeId = NodeId(1);
    /// The first member.
    const M: NodeId = NodeId(3);

    fn checker() -> VoteServiceChecker {
        let s =
            Settings::new(3, 2, Duration::from_millis(20), Duration::from_millis(200), Variant::Correct, 0);
        VoteServiceChecker::new(&s)
    }

    fn at(ms: u64) -> Time {
        Time::from_millis(ms)
    }

    fn pos(index: u64) -> Pos {
        Pos { index, offset: 0 }
    }

    fn see(c: &mut VoteServiceChecker, ms: u64, node: NodeId, obs: VsObs) -> Result<(), &'static str> {
        Checker::<VoteServiceNode>::observe(c, at(ms), node, &obs).map_err(|v| v.property)
    }

    fn events(list: &[(u64, Event)]) -> VsObs {
        VsObs::Server(ServerObs::Events(list.to_vec()))
    }

    fn notes(list: &[(u64, Note)]) -> VsObs {
        VsObs::Server(ServerObs::Applied(list.iter().map(|(i, n)| (pos(*i), n.clone())).collect()))
    }

    fn join(pin: Pin) -> Event {
        Event::Join { pin, name: format!("m{pin}") }
    }

    /// The at-end verdict of a quiet run with every node up but those in `down`.
    fn finish(c: &mut VoteServiceChecker, down: &[usize]) -> Vec<&'static str> {
        let live: Vec<bool> = (0..5).map(|i| !down.contains(&i)).collect();
        let crashed = vec![false; 5];
        let end = EndState::quiet(at(1000), &live, &crashed);
        let mut out: Vec<_> =
            Checker::<VoteServiceNode>::finish(c, &end).iter().map(|v| v.property).collect();
        out.retain(|p| *p != "liveness");
        out
    }

    #[test]
    fn event_order() {
        let mut c = checker();
        assert_eq!(see(&mut c, 1, A, events(&[(1, join(1))])), Ok(()));
        assert_eq!(see(&mut c, 2, B, events(&[(1, join(1))])), Ok(()));
        assert_eq!(see(&mut c, 3, B, events(&[(2, join(2))])), Ok(()));
        assert_eq!(see(&mut c, 4, A, events(&[(2, join(3))])), Err("event-order"));
    }

    #[test]
    fn consensus_once() {
        let consensus = |option, votes, members| Event::Consensus { id: 1, option, votes, members };
        let mut c = checker();
        assert_eq!(see(&mut c, 1, A, events(&[(1, consensus(0, 2, 3))])), Ok(()));
        assert_eq!(see(&mut c, 2, A, events(&[(2, consensus(1, 2, 3))])), Err("consensus-once"));
        let mut c = checker();
        assert_eq!(see(&mut c, 1, A, events(&[(1, consensus(0, 2, 4))])), Err("consensus-once"), "2 of 4");
        let mut c = checker();
        assert_eq!(see(&mut c, 1, A, events(&[(1, consensus(0, 1, 1))])), Err("consensus-once"), "one vote");
    }

    #[test]
    fn one_vote_per_member() {
        let counted = |option| Note::Counted { question: 1, pin: 7, option };
        let mut c = checker();
        assert_eq!(see(&mut c, 1, A, notes(&[(5, counted(0))])), Ok(()));
        assert_eq!(see(&mut c, 2, B, notes(&[(5, counted(0))])), Ok(()), "the same count, another server");
        assert_eq!(see(&mut c, 3, M, VsObs::VoteAcked { pin: 7, question: 1, option: 0 }), Ok(()));
        assert_eq!(
            see(&mut c, 4, M, VsObs::VoteAcked { pin: 7, question: 1, option: 1 }),
            Err("one-vote-per-member")
        );
        assert_eq!(see(&mut c, 5, A, notes(&[(6, counted(0))])), Err("one-vote-per-member"), "counted twice");
    }

    #[test]
    fn acked_vote_counted() {
        let mut c = checker();
        let ack = VsObs::VoteAcked { pin: 7, question: 1, option: 0 };
        assert_eq!(see(&mut c, 1, M, ack.clone()), Err("acked-vote-counted"));
        let mut c = checker();
        see(&mut c, 1, A, notes(&[(5, Note::Counted { question: 1, pin: 7, option: 0 })])).unwrap();
        assert_eq!(see(&mut c, 2, M, ack), Ok(()));
    }

    #[test]
    fn votes_on_every_server() {
        let mut c = checker();
        see(&mut c, 1, A, notes(&[(5, Note::Counted { question: 1, pin: 7, option: 0 })])).unwrap();
        let digest = tally_digest([(1, 7, 0)].into_iter());
        for server in [A, B] {
            see(&mut c, 2, server, VsObs::Server(ServerObs::Tally { votes: 1, digest })).unwrap();
        }
        assert_eq!(finish(&mut c, &[2]), Vec::<&str>::new(), "server 2 is down");
        assert_eq!(finish(&mut c, &[]), vec!["votes-on-every-server"], "server 2 counts nothing");
        let mut c = checker();
        see(&mut c, 1, A, notes(&[(5, Note::Counted { question: 1, pin: 7, option: 0 })])).unwrap();
        let wrong = tally_digest([(1, 7, 1)].into_iter());
        see(&mut c, 2, A, VsObs::Server(ServerObs::Tally { votes: 1, digest })).unwrap();
        see(&mut c, 2, B, VsObs::Server(ServerObs::Tally { votes: 1, digest: wrong })).unwrap();
        assert_eq!(finish(&mut c, &[2]), vec!["votes-on-every-server"], "another vote counted");
        assert_eq!(finish(&mut c, &[1, 2]), Vec::<&str>::new(), "no majority up: not judged");
    }

    #[test]
    fn members_see_every_event() {
        let mut c = checker();
        see(&mut c, 1, A, events(&[(1, join(1)), (2, join(2)), (3, join(3))])).unwrap();
        see(&mut c, 2, M, VsObs::Stream { from: 1 }).unwrap();
        assert_eq!(see(&mut c, 3, M, VsObs::Delivered { n: 1, event: join(1) }), Ok(()));
        assert_eq!(
            see(&mut c, 4, M, VsObs::Delivered { n: 3, event: join(3) }),
            Err("members-see-every-event")
        );
        let mut c = checker();
        see(&mut c, 1, A, events(&[(1, join(1))])).unwrap();
        see(&mut c, 2, M, VsObs::Stream { from: 1 }).unwrap();
        assert_eq!(
            see(&mut c, 3, M, VsObs::Delivered { n: 1, event: join(2) }),
            Err("members-see-every-event")
        );
        let mut c = checker();
        see(&mut c, 2, M, VsObs::Stream { from: 1 }).unwrap();
        see(&mut c, 3, M, VsObs::Delivered { n: 1, event: join(2) }).unwrap();
        assert_eq!(see(&mut c, 4, A, events(&[(1, join(1))])), Err("members-see-every-event"), "seen later");
    }

    #[test]
    fn members_caught_up() {
        let mut c = checker();
        see(&mut c, 1, A, events(&[(1, join(1)), (2, join(2))])).unwrap();
        see(&mut c, 2, M, VsObs::Session { sid: 1, pin: 1, fresh: true }).unwrap();
        see(&mut c, 3, M, VsObs::Stream { from: 1 }).unwrap();
        see(&mut c, 4, M, VsObs::Delivered { n: 1, event: join(1) }).unwrap();
        assert_eq!(finish(&mut c, &[]), vec!["members-caught-up"]);
        see(&mut c, 5, M, VsObs::Delivered { n: 2, event: join(2) }).unwrap();
        assert_eq!(finish(&mut c, &[]), Vec::<&str>::new());
    }

    #[test]
    fn fail_after_timeout() {
        let ended = Note::Ended { sid: 1, pin: 1, failed: true };
        let mut c = checker();
        see(&mut c, 10, A, notes(&[(1, Note::Alive { sid: 1 })])).unwrap();
        see(&mut c, 100, A, notes(&[(2, Note::Alive { sid: 1 })])).unwrap();
        assert_eq!(see(&mut c, 250, A, notes(&[(3, ended.clone())])), Err("fail-after-timeout"));
        let mut c = checker();
        see(&mut c, 10, A, notes(&[(1, Note::Alive { sid: 1 })])).unwrap();
        see(&mut c, 100, A, notes(&[(2, Note::Alive { sid: 1 })])).unwrap();
        see(&mut c, 120, B, notes(&[(1, Note::Alive { sid: 1 })])).unwrap();
        assert_eq!(see(&mut c, 300, A, notes(&[(3, ended)])), Ok(()));
    }

    #[test]
    fn every_at_end_violation_is_reported_not_only_the_first() {
        let mut c = checker();
        see(&mut c, 1, A, notes(&[(5, Note::Counted { question: 1, pin: 7, option: 0 })])).unwrap();
        see(&mut c, 1, A, events(&[(1, join(1)), (2, join(2))])).unwrap();
        see(&mut c, 2, M, VsObs::Session { sid: 1, pin: 1, fresh: true }).unwrap();
        see(&mut c, 3, M, VsObs::Stream { from: 1 }).unwrap();
        see(&mut c, 4, M, VsObs::Delivered { n: 1, event: join(1) }).unwrap();
        // No server reported its tally, and the member is one event behind.
        assert_eq!(finish(&mut c, &[]), vec!["votes-on-every-server", "members-caught-up"]);
    }

    #[test]
    fn crashed_members_fail() {
        let mut c = checker();
        see(&mut c, 1, A, notes(&[(1, Note::Alive { sid: 1 })])).unwrap();
        see(&mut c, 2, M, VsObs::Session { sid: 1, pin: 1, fresh: true }).unwrap();
        assert_eq!(finish(&mut c, &[3]), vec!["crashed-members-fail"]);
        see(&mut c, 500, A, notes(&[(2, Note::Ended { sid: 1, pin: 1, failed: true })])).unwrap();
        assert_eq!(finish(&mut c, &[3]), Vec::<&str>::new());
    }

    #[test]
    fn no_work_after_end() {
        let mut c = checker();
        see(&mut c, 1, A, notes(&[(1, Note::Alive { sid: 1 }), (1, Note::Op { sid: 1, ok: true })])).unwrap();
        assert_eq!(see(&mut c, 2, M, VsObs::Answered { sid: 1, ok: true }), Ok(()));
        assert_eq!(see(&mut c, 3, M, VsObs::Answered { sid: 1, ok: true }), Err("no-work-after-end"));
        let mut c = checker();
        see(&mut c, 1, A, notes(&[(2, Note::Ended { sid: 1, pin: 1, failed: false })])).unwrap();
        assert_eq!(see(&mut c, 2, A, notes(&[(3, Note::Op { sid: 1, ok: false })])), Ok(()));
        assert_eq!(see(&mut c, 3, A, notes(&[(4, Note::Op { sid: 1, ok: true })])), Err("no-work-after-end"));
    }
}
