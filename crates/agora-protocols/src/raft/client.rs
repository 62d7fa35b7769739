//! The client side of a Raft log: a session that numbers its operations, keeps a window of
//! them in flight, batches what waits into one request, follows redirections to the leader,
//! and retries with the next replica when no answer comes.
//!
//! A session id is the client's node id and an incarnation number its host persists, so a
//! restarted client never reuses a (session, sequence number) pair.

use super::{Io, Op, Outcome, RaftMsg, RaftObs, RaftTimer, StateMachine};
use agora_core::{NodeId, OpId, Time};
use std::collections::{BTreeMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::time::Duration;

/// The incarnation of a client that starts again after `previous` (0 if it never started):
/// the next one, or, when its node lost its storage and with it the count (`rejoining`), one
/// drawn from `rng` with the top bit set, where the count never goes. A session id must never
/// be used twice: the replicas' session table would answer a reused id's sequence numbers with
/// the results of the old session's commands, never applying the new ones.
pub fn next_incarnation(previous: u32, rejoining: bool, rng: &mut agora_core::Rng) -> u32 {
    if rejoining {
        rand::Rng::random::<u32>(rng) | 1 << 31
    } else {
        previous + 1
    }
}

/// The session id of incarnation `incarnation` of the client on `node`.
pub fn session_id(node: NodeId, incarnation: u32) -> u64 {
    (u64::from(node.0) << 32) | u64::from(incarnation)
}

/// The metrics operation id of `seq` in `session` (unique across sessions of up to 4096
/// incarnations and 2^32 operations).
pub fn op_id(session: u64, seq: u64) -> OpId {
    ((session >> 32) << 44) | ((session & 0xfff) << 32) | (seq & 0xffff_ffff)
}

/// A client session.
#[derive(Clone)]
pub struct Client<SM: StateMachine> {
    session: u64,
    replicas: Vec<NodeId>,
    /// The replica requests go to (an index into `replicas`).
    target: usize,
    window: usize,
    timeout: Duration,
    next_seq: u64,
    queued: VecDeque<(u64, Op<SM>)>,
    /// Sent and not answered: the operation and when it was last sent.
    outstanding: BTreeMap<u64, (Op<SM>, Time)>,
    /// Some operation was answered since the retry timer last fired.
    progress: bool,
    /// A redirection was followed since the last retry or progress.
    redirected: bool,
    /// Requests leave early ([`Client::send_early`]).
    early: bool,
}

/// A client's state for the exhaustive explorer: its settings are the setup's; its
/// replicas' order is its own (a renaming of the replicas permutes it, see
/// [`Client::renamed`]); its operations are compared by their encoding.
impl<SM: StateMachine> Hash for Client<SM> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        (
            self.session,
            &self.replicas,
            self.target,
            self.next_seq,
            self.progress,
            self.redirected,
            self.early,
        )
            .hash(h);
        agora_core::wire::encode(&(&self.queued, &self.outstanding)).hash(h);
    }
}

impl<SM: StateMachine> Client<SM> {
    /// A client of session `session` to the replicas `replicas` (not empty), with at most `window`
    /// operations in flight (at least 1), retrying after `timeout` without progress. It starts with
    /// the replica at `session % replicas.len()`.
    pub fn new(session: u64, replicas: Vec<NodeId>, window: usize, timeout: Duration) -> Self {
        assert!(!replicas.is_empty(), "a client needs replicas");
        Client {
            session,
            target: (session as usize) % replicas.len(),
            replicas,
            window: window.max(1),
            timeout,
            next_seq: 0,
            queued: VecDeque::new(),
            outstanding: BTreeMap::new(),
            progress: false,
            redirected: false,
            early: false,
        }
    }

    /// From now on (`true`) every request leaves early ([`Io::send_early`]), first sends and
    /// retries alike, so that none overtakes an earlier one: for a host whose session id is
    /// durable and whose operations rest on no write of its own that may still be in flight.
    pub fn send_early(&mut self, early: bool) {
        self.early = early;
    }

    /// Sends `request` to the current target, early if the client is told to.
    fn send(&self, io: &mut impl Io<SM>, request: RaftMsg<SM>) {
        match self.early {
            true => io.send_early(self.replicas[self.target], request),
            false => io.send(self.replicas[self.target], request),
        }
    }

    /// This client with its replicas renamed, replica `r` becoming `to[r]`, each in its
    /// place in the client's order: it tries, and retries with, the renamed replicas in the
    /// renamed order, as the explorer's symmetry reduction needs ([`agora_core::Symmetry`]).
    pub fn renamed(&self, to: &[NodeId]) -> Self {
        Client { replicas: self.replicas.iter().map(|r| to[r.index()]).collect(), ..self.clone() }
    }

    /// The client's session number, unique among the clients of a log.
    pub fn session(&self) -> u64 {
        self.session
    }

    /// Sends to `replica` from now on (if it is one of the client's replicas): a client next
    /// to a replica tries it first.
    pub fn prefer(&mut self, replica: NodeId) {
        if let Some(t) = self.replicas.iter().position(|r| *r == replica) {
            self.target = t;
        }
    }

    /// Operations sent and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.outstanding.len()
    }

    /// No operation waits or is in flight.
    pub fn is_idle(&self) -> bool {
        self.queued.is_empty() && self.outstanding.is_empty()
    }

    /// Operations submitted and not yet answered.
    pub fn pending(&self) -> usize {
        self.queued.len() + self.outstanding.len()
    }

    /// Submits an operation and sends what the window allows; returns its sequence number.
    pub fn submit(&mut self, io: &mut impl Io<SM>, op: Op<SM>) -> u64 {
        let seq = self.enqueue(io, op);
        self.flush(io);
        seq
    }

    /// Queues an operation without sending it yet (see [`Client::flush`]): operations queued
    /// together leave in one request.
    pub fn enqueue(&mut self, io: &mut impl Io<SM>, op: Op<SM>) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        if matches!(op, Op::Query(_)) {
            io.observe(RaftObs::ReadBegin { session: self.session, seq });
        }
        self.queued.push_back((seq, op));
        seq
    }

    fn acked_below(&self) -> u64 {
        let a = self.outstanding.keys().next().copied();
        let b = self.queued.front().map(|(s, _)| *s);
        a.into_iter().chain(b).min().unwrap_or(self.next_seq)
    }

    /// Sends what waits, as far as the window allows, in one request.
    pub fn flush(&mut self, io: &mut impl Io<SM>) {
        let room = self.window.saturating_sub(self.outstanding.len());
        if room == 0 || self.queued.is_empty() {
            return;
        }
        let was_idle = self.outstanding.is_empty();
        let n = room.min(self.queued.len());
        let ops: Vec<(u64, Op<SM>)> = self.queued.drain(..n).collect();
        let now = io.now();
        for (seq, op) in &ops {
            self.outstanding.insert(*seq, (op.clone(), now));
        }
        let acked_below = self.acked_below();
        self.send(io, RaftMsg::Request { session: self.session, acked_below, ops });
        if was_idle {
            io.set_timer(RaftTimer::ClientRetry, self.timeout);
        }
    }

    /// Sends again, to the current target, what has been in flight for at least `age`.
    fn resend(&mut self, io: &mut impl Io<SM>, age: Duration) {
        let now = io.now();
        let mut ops = Vec::new();
        for (seq, (op, sent)) in self.outstanding.iter_mut() {
            if now.since(*sent) >= age {
                *sent = now;
                ops.push((*seq, op.clone()));
            }
        }
        if !ops.is_empty() {
            let acked_below = self.acked_below();
            self.send(io, RaftMsg::Request { session: self.session, acked_below, ops });
        }
        io.set_timer(RaftTimer::ClientRetry, self.timeout);
    }

    /// Handles a message for this client; returns the operations it completed.
    pub fn on_message(
        &mut self,
        io: &mut impl Io<SM>,
        from: NodeId,
        msg: RaftMsg<SM>,
    ) -> Vec<(u64, Outcome<SM>)> {
        let mut done = Vec::new();
        match msg {
            RaftMsg::Reply { session, results } if session == self.session => {
                for (seq, outcome) in results {
                    if self.outstanding.remove(&seq).is_none() {
                        continue;
                    }
                    match &outcome {
                        Outcome::Applied { pos, .. } => {
                            io.observe(RaftObs::Acked { session: self.session, seq, pos: *pos })
                        }
                        Outcome::Read { index, .. } => {
                            io.observe(RaftObs::ReadDone { session: self.session, seq, index: *index })
                        }
                    }
                    done.push((seq, outcome));
                }
                let moved = self.replicas.iter().position(|r| *r == from).filter(|&t| t != self.target);
                if let Some(t) = moved {
                    self.target = t;
                }
                if !done.is_empty() {
                    // The retry timer keeps running: an operation lost while others are
                    // answered is sent again when it is a timeout old.
                    self.redirected = false;
                    self.progress = true;
                    if self.outstanding.is_empty() {
                        io.cancel_timer(RaftTimer::ClientRetry);
                    } else if moved.is_some() {
                        // Another replica answers: the leader changed, and what the old one
                        // had not replicated is lost. Sent again now, not a timeout later
                        // (the session drops what the new leader already has).
                        self.resend(io, Duration::ZERO);
                    }
                    self.flush(io);
                }
            }
            RaftMsg::Redirect { session, leader } if session == self.session => {
                let hint = leader.and_then(|l| self.replicas.iter().position(|r| *r == l));
                if hint.is_none() && !self.redirected {
                    // No leader known there (an election): try another replica soon.
                    self.redirected = true;
                    io.set_timer(RaftTimer::ClientRetry, self.timeout / 4);
                }
                if let Some(t) = hint {
                    if t != self.target && !self.redirected {
                        self.target = t;
                        self.redirected = true;
                        self.resend(io, Duration::ZERO);
                    } else {
                        self.target = t;
                    }
                }
            }
            _ => {}
        }
        done
    }

    /// The host learned that `replica` leads (a replica of its own just won an election):
    /// from now on requests go there, and what waits for an answer is sent there at once
    /// rather than a retry period later — unless it went there already and was not turned
    /// away. A duplicate is harmless: the session applies a command once.
    pub fn leader_is(&mut self, io: &mut impl Io<SM>, replica: NodeId) {
        let Some(t) = self.replicas.iter().position(|r| *r == replica) else { return };
        if t == self.target && !self.redirected {
            return;
        }
        self.target = t;
        self.redirected = false;
        if !self.outstanding.is_empty() {
            self.resend(io, Duration::ZERO);
        }
    }

    /// The retry timer fired: send again what has waited a timeout, to the next replica
    /// unless this one is answering.
    pub fn on_retry(&mut self, io: &mut impl Io<SM>) {
        if self.outstanding.is_empty() {
            return;
        }
        self.redirected = false;
        if std::mem::take(&mut self.progress) {
            self.resend(io, self.timeout);
        } else {
            // Nothing answered for a whole period: everything goes to the next replica.
            self.target = (self.target + 1) % self.replicas.len();
            self.resend(io, Duration::ZERO);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::kv::{Kv, KvCmd};
    use crate::raft::replica::testing::TestIo;

    /// Told to, a client sends every request early, first sends and retries alike, so that
    /// none overtakes one sent before it; by default it sends none early.
    #[test]
    fn a_client_told_to_send_early_sends_every_request_early() {
        for early in [false, true] {
            let mut io = TestIo::new();
            let replicas = vec![NodeId(0), NodeId(1), NodeId(2)];
            let mut c: Client<Kv> = Client::new(1, replicas, 1, Duration::from_millis(10));
            c.send_early(early);
            c.submit(&mut io, Op::Command(KvCmd::Put { key: 1, value: 1 }));
            c.submit(&mut io, Op::Command(KvCmd::Put { key: 2, value: 2 }));
            c.on_retry(&mut io);
            let results = vec![(
                0,
                Outcome::Applied {
                    pos: crate::raft::Pos { index: 1, offset: 0 },
                    output: crate::raft::kv::KvOut::Done,
                },
            )];
            c.on_message(&mut io, NodeId(2), RaftMsg::Reply { session: 1, results });
            // The first, its retry, and the second once the first is answered.
            assert_eq!(io.sent.len(), 3, "{:?}", io.sent);
            assert_eq!(io.early, if early { 3 } else { 0 });
        }
    }
}
