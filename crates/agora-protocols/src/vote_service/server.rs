//! One server of the voting service, as a sans-IO part that a node embeds: a Raft replica of
//! the [`Board`], the client session its front end submits through (what waits leaves in one
//! request, one log entry, at most every [`BATCH_GAP`]; see [`Server::submit`]), its clients' heartbeats
//! batched into one [`BoardCmd::Touch`] per tick, and — while its replica leads — the failure
//! detector that expires silent sessions through the log.
//!
//! The simulator's node (simulated members as peers) and the TCP service's node (members on
//! line-protocol connections) both embed it, so the two cannot disagree about what the service
//! does. The embedding node routes Raft's messages and timers here and, after each event,
//! drains [`Server::take_done`] (answers to what it submitted) and [`Server::take_events`]
//! (events the board emitted, in log order, to push to its members).
//!
//! **The failure detector** (see [`board`](super::board)): every [`ServerTimer::Tick`]
//! (a quarter of the session timeout) the leader compares each session's latest sign of life
//! in the log with what it saw before; a session whose sign has not moved for the whole timeout
//! on the leader's clock is expired with [`BoardCmd::Expire`]. A new leader starts every clock
//! afresh, so a leader change never fails a member early; a heartbeat committed before the
//! expiry keeps the member alive, whatever the leader saw.

use super::board::{Board, BoardCmd, BoardOut, Event, Note};
use super::Sid;
use crate::raft::client::{next_incarnation, session_id, Client};
use crate::raft::{Config, Io, Op, Outcome, Pos, RaftMsg, RaftObs, RaftTimer, Replica, Role, Term};
use agora_core::{Context, Corrupt, NodeId, Protocol, Stable, Time};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// Operations per batch (one log entry), at most.
pub const BATCH_OPS: usize = 2048;
/// A batch leaves at once when none is in flight, else this long after the previous one at
/// the earliest. Waiting for the answer to the previous batch instead (one request in flight)
/// holds an operation back for a whole round — the leader's write, a follower's, their
/// answers — before its own round begins; a few batches per round keep the entries (and the
/// leader's work per entry) few while an operation waits a couple of milliseconds at most.
pub const BATCH_GAP: Duration = Duration::from_millis(2);
/// Operations the session may have in flight, at most (its batches together).
const WINDOW_OPS: usize = BATCH_OPS * 4;

const INCARNATION: &str = "vote/incarnation";

/// The settings every server of a cluster shares.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The replicas' Raft settings.
    pub raft: Arc<Config>,
    /// The front end's session retries with another replica after this long without progress.
    pub retry: Duration,
    /// A member with no sign of life for this long fails.
    pub session_timeout: Duration,
    /// Report what the board applies ([`ServerObs::Applied`], [`ServerObs::Tally`]): for the
    /// simulator's checker; off by default (a note per command and heartbeat).
    pub notes: bool,
}

impl ServerConfig {
    /// `n` servers with `election` as the shortest election timeout and `session` as the
    /// session timeout.
    pub fn new(n: usize, election: Duration, session: Duration) -> Self {
        let ids = (0..n as u32).map(NodeId).collect();
        ServerConfig {
            raft: Arc::new(Config::new(ids, election)),
            retry: election * 4,
            session_timeout: session,
            notes: false,
        }
    }

    /// How often a server flushes heartbeats and its leader looks for silent sessions.
    pub fn tick(&self) -> Duration {
        self.session_timeout / 4
    }
}

/// The server's own timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServerTimer {
    /// Flush heartbeats; on the leader, look for silent sessions.
    Tick,
    /// Send the operations waiting since the last batch left ([`BATCH_GAP`]).
    Batch,
}

/// What a server reports of the service, for checkers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerObs {
    /// The board emitted these events (numbered, in log order) on this server.
    Events(Vec<(u64, Event)>),
    /// The leader submits the expiry of `sid`: silent since `seen` for `silent_ms` on its
    /// clock.
    Expiring {
        /// The session.
        sid: Sid,
        /// Its latest sign of life the leader knew of.
        seen: Pos,
        /// How long the leader has seen no other.
        silent_ms: u64,
    },
    /// What this server's board applied, by position (only with [`ServerConfig::notes`]).
    Applied(Vec<(Pos, Note)>),
    /// This server's board now counts `votes` votes; `digest` is [`tally_digest`] of them
    /// (only with [`ServerConfig::notes`]).
    Tally {
        /// The votes counted.
        votes: u64,
        /// Their digest.
        digest: u64,
    },
}

/// A digest of a set of counted votes `(question, voter, option)`, whatever their order: two
/// boards with the same digest count the same votes (but for a 64-bit collision).
pub fn tally_digest(votes: impl Iterator<Item = (u32, u32, u32)>) -> u64 {
    votes.fold(0u64, |sum, (q, p, o)| {
        let h = blake3::hash(&[q.to_le_bytes(), p.to_le_bytes(), o.to_le_bytes()].concat());
        let word = u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"));
        sum.wrapping_add(word)
    })
}

/// What a server needs of its host: Raft's [`Io`], its timer and its observations.
pub trait ServerIo: Io<Board> {
    /// Sets the server's timer.
    fn set_server_timer(&mut self, timer: ServerTimer, after: Duration);
    /// Reports an observation.
    fn observe_server(&mut self, obs: ServerObs);
}

impl<P> ServerIo for Context<'_, P>
where
    P: Protocol,
    P::Msg: From<RaftMsg<Board>>,
    P::Timer: From<RaftTimer> + From<ServerTimer>,
    P::Obs: From<RaftObs> + From<ServerObs>,
{
    fn set_server_timer(&mut self, timer: ServerTimer, after: Duration) {
        Context::set_timer(self, timer.into(), after)
    }
    fn observe_server(&mut self, obs: ServerObs) {
        Context::observe(self, obs.into())
    }
}

/// Whose operation it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// The front end's, with its tag.
    Front(u64),
    /// A heartbeat batch.
    Touch,
    /// An expiry.
    Expire(Sid),
}

/// What the front end can learn of its server at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The replica's role.
    pub role: Role,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// Its term.
    pub term: Term,
    /// Its commit index.
    pub commit: u64,
    /// Its applied index.
    pub applied: u64,
    /// The members online in its board.
    pub members: usize,
    /// The latest event number in its board.
    pub last_event: u64,
}

/// One server.
pub struct Server {
    cfg: Arc<ServerConfig>,
    replica: Replica<Board>,
    client: Option<Client<Board>>,
    incarnation: u32,
    /// Submitted, not yet handed to the session: the next batch.
    queue: VecDeque<(Op<Board>, Origin)>,
    /// When the latest batch left, and whether [`ServerTimer::Batch`] is set.
    batch_sent: Option<Time>,
    batch_timer: bool,
    /// Handed to the session: its sequence number to whose it is.
    waiting: HashMap<u64, Origin>,
    /// Answers to the front end not yet taken.
    done: Vec<(u64, BoardOut)>,
    /// Sessions that showed a sign of life since the last tick.
    touched: BTreeSet<Sid>,
    /// The last event handed out.
    cursor: u64,
    /// Events emitted and not yet taken.
    events: Vec<(u64, Event)>,
    /// On the leader: each session's latest sign of life and when the leader first saw it.
    watch: BTreeMap<Sid, (Pos, Time)>,
    /// The term `watch` belongs to.
    watch_term: Option<Term>,
    /// Expiries submitted and not yet answered.
    expiring: BTreeSet<Sid>,
    /// On the leader: some session has been silent for half the timeout or more (the run is
    /// not over until it shows a sign of life or fails).
    suspects: bool,
    /// The votes the board counted when last reported ([`ServerConfig::notes`]).
    tallied: usize,
}

impl Server {
    /// Server `id`, rebuilt from what it persisted.
    pub fn new(cfg: Arc<ServerConfig>, id: NodeId, stable: &Stable) -> Result<Self, Corrupt> {
        let replica: Replica<Board> = Replica::new(cfg.raft.clone(), id, stable)?;
        let cursor = replica.state().last_event();
        Ok(Server {
            replica,
            client: None,
            incarnation: stable.load(INCARNATION)?.unwrap_or(0),
            cfg,
            queue: VecDeque::new(),
            batch_sent: None,
            batch_timer: false,
            waiting: HashMap::new(),
            done: Vec::new(),
            touched: BTreeSet::new(),
            cursor,
            events: Vec::new(),
            watch: BTreeMap::new(),
            watch_term: None,
            expiring: BTreeSet::new(),
            suspects: false,
            tallied: 0,
        })
    }

    /// The replica's board (this server's copy: it may lag the leader's).
    pub fn board(&self) -> &Board {
        self.replica.state()
    }

    /// The replica's role, leader and progress.
    pub fn status(&self) -> Status {
        Status {
            role: self.replica.role(),
            leader: self.replica.leader(),
            term: self.replica.term(),
            commit: self.replica.commit_index(),
            applied: self.replica.applied_index(),
            members: self.board().members(),
            last_event: self.board().last_event(),
        }
    }

    /// Nothing waits: the replica has settled and no operation is pending.
    pub fn settled(&self) -> bool {
        self.replica.settled() && self.waiting.is_empty() && self.queue.is_empty() && self.touched.is_empty()
    }

    /// Only background work is left (heartbeats): the replica has settled, nothing submitted
    /// waits, and, on the leader, no session is silent long enough to be suspected.
    pub fn background(&self) -> bool {
        self.replica.settled() && self.waiting.is_empty() && self.queue.is_empty() && !self.suspects
    }

    /// Starts (or restarts) the server: a new client session, since the old one's sequence
    /// numbers are spent.
    pub fn on_start(&mut self, io: &mut impl ServerIo) {
        self.replica.on_start(io);
        // A new session per start (see `next_incarnation`): the old one's numbers are spent.
        self.incarnation = next_incarnation(self.incarnation, self.replica.rejoining(), io.rng());
        io.persist(INCARNATION.into(), agora_core::wire::encode(&self.incarnation));
        let me = self.replica.me();
        let replicas = self.cfg.raft.replicas.clone();
        let mut client = Client::new(session_id(me, self.incarnation), replicas, WINDOW_OPS, self.cfg.retry);
        client.prefer(me);
        self.client = Some(client);
        io.set_server_timer(ServerTimer::Tick, self.cfg.tick());
        self.collect(io);
    }

    /// Submits an operation of the front end, tagged `tag`; its answer comes out of
    /// [`Server::take_done`] with that tag. The session counts as alive. It leaves with the
    /// next batch: at once if no batch is in flight, else [`BATCH_GAP`] after the previous
    /// one at the earliest, with what else was submitted meanwhile. Batches in flight together
    /// are concurrent operations, so any order the log gives them is one the session allows;
    /// a retried one is applied once (the replicas' session table).
    pub fn submit(&mut self, io: &mut impl ServerIo, op: Op<Board>, tag: u64) {
        self.queue.push_back((op, Origin::Front(tag)));
        self.send_batch(io);
    }

    /// Records a sign of life of `sid` (a heartbeat), sent to the log with the next tick.
    pub fn touch(&mut self, sid: Sid) {
        self.touched.insert(sid);
    }

    /// Answers to the front end's operations, with their tags.
    pub fn take_done(&mut self) -> Vec<(u64, BoardOut)> {
        std::mem::take(&mut self.done)
    }

    /// The events the board emitted since the last call, numbered, in log order.
    pub fn take_events(&mut self) -> Vec<(u64, Event)> {
        std::mem::take(&mut self.events)
    }

    /// A Raft message for this server (the replica's, or its session's answers).
    pub fn on_message(&mut self, io: &mut impl ServerIo, from: NodeId, msg: RaftMsg<Board>) {
        match msg {
            RaftMsg::Reply { .. } | RaftMsg::Redirect { .. } => {
                let Some(client) = &mut self.client else { return };
                for (seq, outcome) in client.on_message(io, from, msg) {
                    let output = match outcome {
                        Outcome::Applied { output, .. } | Outcome::Read { output, .. } => output,
                    };
                    match self.waiting.remove(&seq) {
                        Some(Origin::Front(tag)) => self.done.push((tag, output)),
                        Some(Origin::Expire(sid)) => {
                            self.expiring.remove(&sid);
                        }
                        Some(Origin::Touch) | None => {}
                    }
                }
                self.send_batch(io);
            }
            msg => self.replica.on_message(io, from, msg),
        }
        self.collect(io);
    }

    /// One of Raft's timers.
    pub fn on_raft_timer(&mut self, io: &mut impl ServerIo, timer: RaftTimer) {
        match timer {
            RaftTimer::ClientRetry => {
                if let Some(client) = &mut self.client {
                    client.on_retry(io);
                }
            }
            t => self.replica.on_timer(io, t),
        }
        self.collect(io);
    }

    /// The server's own timer.
    pub fn on_timer(&mut self, io: &mut impl ServerIo, timer: ServerTimer) {
        match timer {
            ServerTimer::Tick => {
                if !self.touched.is_empty() {
                    let sids = std::mem::take(&mut self.touched).into_iter().collect();
                    self.queue.push_back((Op::Command(BoardCmd::Touch { sids }), Origin::Touch));
                }
                self.look_for_silence(io);
                self.send_batch(io);
                io.set_server_timer(ServerTimer::Tick, self.cfg.tick());
            }
            ServerTimer::Batch => {
                self.batch_timer = false;
                self.send_batch(io);
            }
        }
        self.collect(io);
    }

    /// On the leader: expire the sessions silent for the whole timeout.
    fn look_for_silence(&mut self, io: &mut impl ServerIo) {
        let term = self.replica.term();
        self.suspects = false;
        if self.replica.role() != Role::Leader {
            self.watch.clear();
            self.watch_term = None;
            return;
        }
        if self.watch_term != Some(term) {
            self.watch.clear();
            self.watch_term = Some(term);
        }
        let now = io.now();
        let board = self.replica.state();
        self.watch.retain(|sid, _| board.session(*sid).is_some());
        for (sid, s) in board.sessions() {
            match self.watch.get_mut(&sid) {
                Some((pos, _)) if *pos == s.touched => {}
                Some(seen) => *seen = (s.touched, now),
                None => {
                    self.watch.insert(sid, (s.touched, now));
                }
            }
        }
        let timeout = self.cfg.session_timeout;
        for (&sid, &(seen, since)) in &self.watch {
            let silent = now.since(since);
            self.suspects |= silent >= timeout / 2;
            if silent >= timeout && self.expiring.insert(sid) {
                io.observe_server(ServerObs::Expiring { sid, seen, silent_ms: silent.as_millis() as u64 });
                self.queue.push_back((Op::Command(BoardCmd::Expire { sid, seen }), Origin::Expire(sid)));
            }
        }
    }

    /// Hands the next batch to the session if it may leave now (see [`Server::submit`]);
    /// otherwise sets [`ServerTimer::Batch`] for when it may, or waits for an answer to make
    /// room in the session's window.
    fn send_batch(&mut self, io: &mut impl ServerIo) {
        let Some(client) = &mut self.client else { return };
        if self.queue.is_empty() {
            return;
        }
        let room = WINDOW_OPS.saturating_sub(client.pending());
        if room == 0 {
            // An answer makes room, and sends what waits.
            return;
        }
        if client.pending() > 0 {
            let since = self.batch_sent.map_or(BATCH_GAP, |t| io.now().since(t));
            if since < BATCH_GAP {
                if !self.batch_timer {
                    self.batch_timer = true;
                    io.set_server_timer(ServerTimer::Batch, BATCH_GAP - since);
                }
                return;
            }
        }
        let n = self.queue.len().min(BATCH_OPS).min(room);
        for (op, origin) in self.queue.drain(..n) {
            let seq = client.enqueue(io, op);
            self.waiting.insert(seq, origin);
        }
        client.flush(io);
        self.batch_sent = Some(io.now());
    }

    /// Hands out the events the board emitted since the last look.
    fn collect(&mut self, io: &mut impl ServerIo) {
        let notes = self.replica.state_mut().take_notes();
        if self.cfg.notes {
            if !notes.is_empty() {
                io.observe_server(ServerObs::Applied(notes));
            }
            let board = self.replica.state();
            let votes: usize = board.questions().values().map(|q| q.votes.len()).sum();
            if votes != self.tallied {
                self.tallied = votes;
                let digest = tally_digest(board.votes());
                io.observe_server(ServerObs::Tally { votes: votes as u64, digest });
            }
        }
        let board = self.replica.state();
        if board.last_event() <= self.cursor {
            return;
        }
        let fresh: Vec<(u64, Event)> = board.events_after(self.cursor).cloned().collect();
        self.cursor = board.last_event();
        io.observe_server(ServerObs::Events(fresh.clone()));
        self.events.extend(fresh);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vote_service::board::BoardQuery;
    use crate::vote_service::sim::{Msg, Timer, VoteServiceNode};
    use agora_core::{Effect, Rng};
    use rand::SeedableRng;

    type Effects = Vec<agora_core::EffectOf<VoteServiceNode>>;

    /// Runs `f` on `server` at `ms` on its clock; returns the effects.
    fn at(
        server: &mut Server,
        ms: f64,
        f: impl FnOnce(&mut Server, &mut Context<'_, VoteServiceNode>),
    ) -> Effects {
        let mut rng = Rng::seed_from_u64(1);
        let mut effects = Vec::new();
        let mut ctx = Context::new(NodeId(0), 3, Time::from_millis_f64(ms), &mut rng, &mut effects);
        f(server, &mut ctx);
        effects
    }

    /// The number of operations of each request sent.
    fn requests(effects: &Effects) -> Vec<usize> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Send { msg: Msg::Raft(RaftMsg::Request { ops, .. }), .. } => Some(ops.len()),
                _ => None,
            })
            .collect()
    }

    fn batch_timers(effects: &Effects) -> Vec<Duration> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::SetTimer { timer: Timer::Server(ServerTimer::Batch), after } => Some(*after),
                _ => None,
            })
            .collect()
    }

    fn stats() -> Op<Board> {
        Op::Query(BoardQuery::Stats { question: None })
    }

    #[test]
    fn a_batch_leaves_while_another_is_in_flight_but_not_within_the_gap() {
        let cfg = Arc::new(ServerConfig::new(3, Duration::from_millis(150), Duration::from_secs(2)));
        let mut s = Server::new(cfg, NodeId(0), &Stable::new()).unwrap();
        at(&mut s, 0.0, |s, io| s.on_start(io));
        // Nothing in flight: the first operation leaves at once.
        let e = at(&mut s, 10.0, |s, io| s.submit(io, stats(), 1));
        assert_eq!(requests(&e), vec![1]);
        // In flight, and the gap not over: the next ones wait for one timer, set once.
        let e = at(&mut s, 10.5, |s, io| s.submit(io, stats(), 2));
        assert_eq!((requests(&e), batch_timers(&e)), (vec![], vec![BATCH_GAP - Duration::from_micros(500)]));
        let e = at(&mut s, 11.0, |s, io| s.submit(io, stats(), 3));
        assert_eq!((requests(&e), batch_timers(&e)), (vec![], vec![]));
        // The timer: both leave in one request, though the first is still unanswered.
        let e = at(&mut s, 12.0, |s, io| s.on_timer(io, ServerTimer::Batch));
        assert_eq!(requests(&e), vec![2]);
        // Past the gap, the next leaves at once.
        let e = at(&mut s, 20.0, |s, io| s.submit(io, stats(), 4));
        assert_eq!(requests(&e), vec![1]);
    }
}
