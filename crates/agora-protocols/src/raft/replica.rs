//! One replica of the Raft log: election, replication, commitment, application, snapshots,
//! client sessions and read-index queries. See the module docs of [`super`].

use super::log::Log;
use super::{Body, Entry, Index, Io, Op, Outcome, Pos, RaftMsg, RaftObs, RaftTimer, StateMachine, Term};
use agora_core::{wire, Corrupt, Deferred, NodeId, Stable, Time, REJOINING};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

const HARD_STATE: &str = "raft/hs";
/// Snapshots, one key per index: the one at the log's base is current. A snapshot is written
/// off the replica's path, so for a while there may be two (the older is removed once the
/// newer is durable), and a crash may leave either as the newest.
const SNAP_PREFIX: &str = "raft/snap/";
/// Where builds before deferred snapshot writes kept their one snapshot.
const LEGACY_SNAPSHOT: &str = "raft/snap";
const LOG_PREFIX: &str = "raft/log/";

fn log_key(i: Index) -> String {
    format!("{LOG_PREFIX}{i:016x}")
}

fn snap_key(i: Index) -> String {
    format!("{SNAP_PREFIX}{i:016x}")
}

/// The serialized state machine and sessions, filled in by the writer of a deferred snapshot.
type Cell = Arc<std::sync::OnceLock<Arc<Vec<u8>>>>;

/// A snapshot being written: its index, and its bytes once computed.
struct Writing {
    index: Index,
    data: Cell,
}

/// Settings shared by the replicas of one log.
#[derive(Clone, Debug)]
pub struct Config {
    /// Every replica of the log, in a fixed order.
    pub replicas: Vec<NodeId>,
    /// The shortest election timeout; each is drawn uniformly from `[t, 2t)`.
    pub election_timeout: Duration,
    /// The leader's heartbeat period.
    pub heartbeat: Duration,
    /// Compact the log into a snapshot after this many applied entries…
    pub snapshot_every: u64,
    /// …and, when not 0, only once the log's bytes reach this many times the last snapshot's
    /// (§5.1.3 of the thesis): a state that grows with the log (a tally of every ballot) is
    /// then written a logarithmic number of times, not once per `snapshot_every` entries.
    pub snapshot_growth: u64,
    /// Appends in flight per follower.
    pub max_inflight: usize,
    /// Bytes and entries per append.
    pub max_append_bytes: usize,
    pub max_append_entries: usize,
    /// Bytes per snapshot chunk.
    pub snapshot_chunk: usize,
    /// Broken variant: the leader answers queries from its own state at once.
    pub stale_reads: bool,
    /// Broken variant when false: retried commands are applied again.
    pub dedup: bool,
}

impl Config {
    pub fn new(replicas: Vec<NodeId>, election_timeout: Duration) -> Self {
        Config {
            replicas,
            election_timeout,
            heartbeat: election_timeout / 4,
            snapshot_every: 1_000,
            snapshot_growth: 0,
            max_inflight: 8,
            max_append_bytes: 256 * 1024,
            max_append_entries: 512,
            snapshot_chunk: 64 * 1024,
            stale_reads: false,
            dedup: true,
        }
    }

    pub fn majority(&self) -> usize {
        self.replicas.len() / 2 + 1
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Role {
    Follower,
    Candidate,
    Leader,
}

/// A client session's remembered results.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound = "")]
struct Session<SM: StateMachine> {
    /// Results below this sequence number were seen by the client and are forgotten.
    below: u64,
    done: BTreeMap<u64, (Pos, SM::Output)>,
}

impl<SM: StateMachine> Default for Session<SM> {
    fn default() -> Self {
        Session { below: 0, done: BTreeMap::new() }
    }
}

type Sessions<SM> = BTreeMap<u64, Session<SM>>;

/// Answers to one client session: sequence number and outcome.
type Results<SM> = Vec<(u64, Outcome<SM>)>;

/// How the leader sends entries to a follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    /// Where the follower's log matches is not known: one append at a time, at `next - 1`,
    /// until one is accepted. `sent` says a probe carrying entries is out; until it is
    /// answered, heartbeats probe with empty appends.
    Probe { sent: bool },
    /// The follower matched at `next - 1` when last heard: appends are pipelined.
    Pipeline,
}

/// What the leader knows of a follower.
#[derive(Clone, Debug)]
struct Peer {
    id: NodeId,
    next: Index,
    matched: Index,
    flow: Flow,
    /// In the pipeline: the last index of each append in flight, oldest first.
    inflight: VecDeque<Index>,
    /// The highest read round it answered in this term.
    round: u64,
    /// A snapshot being sent: its index and the offset of the chunk in flight.
    snap: Option<(Index, u64)>,
}

impl Peer {
    fn new(id: NodeId, next: Index) -> Self {
        Peer {
            id,
            next,
            matched: 0,
            flow: Flow::Probe { sent: false },
            inflight: VecDeque::new(),
            round: 0,
            snap: None,
        }
    }

    /// Back to probing, from `next`.
    fn probe(&mut self, next: Index) {
        self.next = next;
        self.flow = Flow::Probe { sent: false };
        self.inflight.clear();
    }
}

struct PendingRead<SM: StateMachine> {
    round: u64,
    /// The commit index when the query arrived (`None` until the leader's no-op commits).
    index: Option<Index>,
    from: NodeId,
    session: u64,
    seq: u64,
    query: SM::Query,
}

/// One replica of the log.
pub struct Replica<SM: StateMachine> {
    cfg: Arc<Config>,
    me: NodeId,
    term: Term,
    voted_for: Option<NodeId>,
    role: Role,
    leader: Option<NodeId>,
    votes: Vec<NodeId>,
    /// Pre-votes for the next term while pre-voting (empty otherwise).
    prevotes: Vec<NodeId>,
    log: Log<SM>,
    commit: Index,
    applied: Index,
    sm: SM,
    sessions: Sessions<SM>,
    peers: Vec<Peer>,
    /// The index of this leader's no-op.
    term_start: Index,
    /// Read rounds: the last started, and whether it awaits its majority.
    round: u64,
    round_open: bool,
    reads: Vec<PendingRead<SM>>,
    /// The encoded state at the log's base, kept to send to lagging followers, and the key it
    /// is stored under.
    snapshot: Option<Arc<Vec<u8>>>,
    snapshot_key: Option<String>,
    /// A snapshot being written (one at a time).
    writing: Option<Writing>,
    /// What a restart found left over, removed on start: older snapshots' keys, and whether
    /// log entries at or below the base remain.
    leftover: (Vec<String>, bool),
    /// A snapshot being received: its index and the bytes so far.
    incoming: Option<(Index, Vec<u8>)>,
    /// When the current leader was last heard from.
    heard_at: Option<Time>,
    /// Set while this replica rejoins after losing its storage: it neither votes nor stands
    /// for election until its log reaches the end of a leader's log as first heard (the
    /// leader's term and last index, once heard).
    rejoining: Option<Option<(Term, Index)>>,
    /// The term of the last append accepted, and the index up to which this log then matched
    /// the leader's.
    matched: Option<(Term, Index)>,
}

impl<SM: StateMachine> Replica<SM> {
    /// A replica in its initial state, or rebuilt from what it persisted; a persisted value
    /// that does not decode is [`Corrupt`].
    pub fn new(cfg: Arc<Config>, me: NodeId, stable: &Stable) -> Result<Self, Corrupt> {
        let (term, voted_for): (Term, Option<NodeId>) = stable.load(HARD_STATE)?.unwrap_or((0, None));
        let mut sm = SM::default();
        let mut sessions = Sessions::new();
        let mut log = Log::new(0, 0, 0);
        let mut snapshot = None;
        let mut snapshot_key = None;
        // The newest snapshot wins: each is of a committed prefix, so a newer one extends an
        // older one.
        let mut keys: Vec<String> = stable.with_prefix(SNAP_PREFIX).map(|(k, _)| k.to_string()).collect();
        if stable.get_bytes(LEGACY_SNAPSHOT).is_some() {
            keys.insert(0, LEGACY_SNAPSHOT.to_string());
        }
        let mut stale = Vec::new();
        if let Some(newest) = keys.pop() {
            let bytes = stable.get_bytes(&newest).expect("listed");
            let (index, sterm, chain, data): (Index, Term, u64, Vec<u8>) =
                wire::decode(bytes).map_err(|e| Corrupt::new(&newest, e))?;
            (sm, sessions) = wire::decode(&data).map_err(|e| Corrupt::new(&newest, e))?;
            log = Log::new(index, sterm, chain);
            snapshot = Some(Arc::new(data));
            snapshot_key = Some(newest);
            stale = keys;
        }
        let mut garbage = false;
        for (key, bytes) in stable.with_prefix(LOG_PREFIX) {
            let i = Index::from_str_radix(&key[LOG_PREFIX.len()..], 16).map_err(|e| Corrupt::new(key, e))?;
            if i <= log.last() {
                // Below the snapshot: its removal did not land before a crash.
                garbage = true;
                continue;
            }
            if i != log.last() + 1 {
                return Err(Corrupt::new(key, format!("log entry {i} follows entry {}", log.last())));
            }
            let entry: Entry<SM> = wire::decode(bytes).map_err(|e| Corrupt::new(key, e))?;
            log.append(entry, bytes);
        }
        let base = log.base().0;
        let peers = cfg.replicas.iter().filter(|r| **r != me).map(|&id| Peer::new(id, 1)).collect();
        Ok(Replica {
            cfg,
            me,
            term,
            voted_for,
            role: Role::Follower,
            leader: None,
            votes: Vec::new(),
            prevotes: Vec::new(),
            log,
            commit: base,
            applied: base,
            sm,
            sessions,
            peers,
            term_start: 0,
            round: 0,
            round_open: false,
            reads: Vec::new(),
            snapshot,
            snapshot_key,
            writing: None,
            leftover: (stale, garbage),
            incoming: None,
            heard_at: None,
            rejoining: stable.rejoining().then_some(None),
            matched: None,
        })
    }

    /// Whether this replica is rejoining after losing its storage (it does not vote yet).
    pub fn rejoining(&self) -> bool {
        self.rejoining.is_some()
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn term(&self) -> Term {
        self.term
    }

    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    pub fn commit_index(&self) -> Index {
        self.commit
    }

    pub fn applied_index(&self) -> Index {
        self.applied
    }

    /// The last index of the log.
    pub fn last_index(&self) -> Index {
        self.log.last()
    }

    /// Entry `i`, unless compacted into the snapshot or beyond the end.
    pub fn entry(&self, i: Index) -> Option<&Entry<SM>> {
        self.log.get(i)
    }

    /// The chain hash at `i` (see [`super::chain`]).
    pub fn chain_at(&self, i: Index) -> Option<u64> {
        self.log.chain_at(i)
    }

    /// The replicated state, for a host to take what its state machine noted for it (never to
    /// change what is replicated).
    pub fn state_mut(&mut self) -> &mut SM {
        &mut self.sm
    }

    /// The replicated state as applied here.
    pub fn state(&self) -> &SM {
        &self.sm
    }

    /// Nothing in hand: the log is committed and applied to its end, and, for a leader, every
    /// follower has all of it and no query waits; no snapshot is being written. What remains is
    /// heartbeats.
    pub fn settled(&self) -> bool {
        let caught_up =
            self.applied == self.commit && self.commit == self.log.last() && self.writing.is_none();
        match self.role {
            Role::Candidate => false,
            // A rejoining replica has work to do until it has caught up; its leader may not
            // know yet that its log is gone.
            Role::Follower if self.rejoining.is_some() => false,
            Role::Follower => caught_up && self.leader.is_some() && self.incoming.is_none(),
            Role::Leader => {
                caught_up && self.reads.is_empty() && self.peers.iter().all(|p| p.matched == self.log.last())
            }
        }
    }

    pub fn on_start(&mut self, io: &mut impl Io<SM>) {
        let (b, t, c) = self.log.base();
        io.observe(RaftObs::Restored {
            term: self.term,
            voted_for: self.voted_for,
            base: (b, t, c),
            log: self.log.summary(),
            rejoining: self.rejoining.is_some(),
        });
        let (stale, garbage) = std::mem::take(&mut self.leftover);
        for key in stale {
            io.unpersist(key);
        }
        if garbage {
            io.unpersist_range(log_key(0), log_key(b + 1));
        }
        self.reset_election_timer(io);
    }

    pub fn on_timer(&mut self, io: &mut impl Io<SM>, timer: RaftTimer) {
        match timer {
            RaftTimer::Election if self.rejoining.is_some() => self.reset_election_timer(io),
            RaftTimer::Election => match self.role {
                Role::Follower => self.start_prevote(io),
                Role::Candidate => self.start_election(io),
                Role::Leader => {}
            },
            RaftTimer::Heartbeat => {
                if self.role == Role::Leader {
                    self.heartbeat(io);
                }
            }
            RaftTimer::SnapshotWritten => self.snapshot_written(io),
            RaftTimer::ClientRetry => {}
        }
    }

    pub fn on_message(&mut self, io: &mut impl Io<SM>, from: NodeId, msg: RaftMsg<SM>) {
        let from_replica = self.cfg.replicas.contains(&from) && from != self.me;
        match msg {
            RaftMsg::PreVote { term, last_index, last_term } if from_replica => {
                self.on_prevote(io, from, term, (last_term, last_index))
            }
            RaftMsg::PreVoteReply { term, granted } if from_replica => {
                self.on_prevote_reply(io, from, term, granted)
            }
            RaftMsg::Vote { term, last_index, last_term } if from_replica => {
                self.on_vote(io, from, term, last_index, last_term)
            }
            RaftMsg::VoteReply { term, granted } if from_replica => {
                self.on_vote_reply(io, from, term, granted)
            }
            RaftMsg::Append { term, prev_index, prev_term, entries, commit, round, leader_last }
                if from_replica =>
            {
                self.on_append(io, from, term, (prev_index, prev_term), entries, commit, round);
                self.rejoin_progress(io, from, term, leader_last);
            }
            RaftMsg::AppendReply { term, ok, prev, last, round, lost } if from_replica => {
                self.on_append_reply(io, from, term, ok, (prev, last, lost), round)
            }
            RaftMsg::Snapshot { term, index, last_term, chain, offset, total, data, round }
                if from_replica =>
            {
                self.on_snapshot(io, from, term, (index, last_term, chain), offset, total, data, round)
            }
            RaftMsg::SnapshotReply { term, index, next, round } if from_replica => {
                self.on_snapshot_reply(io, from, term, index, next, round)
            }
            RaftMsg::Request { session, acked_below, ops } => {
                self.on_request(io, from, session, acked_below, ops)
            }
            // Replies are for clients; anything else from a non-replica is ignored.
            _ => {}
        }
    }

    // ----- elections -----

    fn reset_election_timer(&mut self, io: &mut impl Io<SM>) {
        let t = self.cfg.election_timeout;
        let after = t + t.mul_f64(io.rng().random::<f64>());
        io.set_timer(RaftTimer::Election, after);
    }

    fn persist_hard_state(&self, io: &mut impl Io<SM>) {
        io.persist(HARD_STATE.into(), wire::encode(&(self.term, self.voted_for)));
    }

    /// The timer fired on a follower: ask whether a majority would vote for it in the next term.
    fn start_prevote(&mut self, io: &mut impl Io<SM>) {
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
        (last_term, last_index) >= (self.log.last_term(), self.log.last())
    }

    /// Whether a leader was heard from within the shortest election timeout.
    fn leader_alive(&self, io: &impl Io<SM>) -> bool {
        let recently = self.heard_at.is_some_and(|t| io.now().since(t) < self.cfg.election_timeout);
        self.role == Role::Leader || (self.leader.is_some() && recently)
    }

    /// Granted when this replica would vote in `term`: it is newer, no leader is alive, and the
    /// candidate's log is at least as up to date. Nothing here changes.
    fn on_prevote(&mut self, io: &mut impl Io<SM>, from: NodeId, term: Term, candidate_log: (Term, Index)) {
        let granted = term > self.term
            && self.at_least_as_current(candidate_log)
            && !self.leader_alive(io)
            && self.rejoining.is_none();
        let term = if granted { term } else { self.term };
        io.send(from, RaftMsg::PreVoteReply { term, granted });
    }

    fn on_prevote_reply(&mut self, io: &mut impl Io<SM>, from: NodeId, term: Term, granted: bool) {
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

    fn start_election(&mut self, io: &mut impl Io<SM>) {
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
        let msg =
            RaftMsg::Vote { term: self.term, last_index: self.log.last(), last_term: self.log.last_term() };
        for p in &self.peers {
            io.send(p.id, msg.clone());
        }
    }

    /// Moves to `term` (if higher) as a follower.
    fn step_down(&mut self, io: &mut impl Io<SM>, term: Term) {
        if term > self.term {
            self.term = term;
            self.voted_for = None;
            self.persist_hard_state(io);
            // A snapshot being received came from an older leader: the new one starts over.
            self.incoming = None;
        }
        if self.role == Role::Leader {
            io.observe(RaftObs::SteppedDown { term: self.term });
            io.cancel_timer(RaftTimer::Heartbeat);
            for r in std::mem::take(&mut self.reads) {
                io.send(r.from, RaftMsg::Redirect { session: r.session, leader: None });
            }
            self.round_open = false;
        }
        if self.role != Role::Follower {
            self.role = Role::Follower;
            self.reset_election_timer(io);
        }
        self.votes.clear();
    }

    fn on_vote(
        &mut self,
        io: &mut impl Io<SM>,
        from: NodeId,
        term: Term,
        last_index: Index,
        last_term: Term,
    ) {
        if term > self.term {
            // Leader stickiness: a follower that hears a live leader ignores disruptions.
            if self.leader_alive(io) {
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

    fn on_vote_reply(&mut self, io: &mut impl Io<SM>, from: NodeId, term: Term, granted: bool) {
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

    fn become_leader(&mut self, io: &mut impl Io<SM>) {
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
        self.term_start = self.append(io, Body::Noop);
        for i in 0..self.peers.len() {
            self.replicate(io, i, true);
        }
        io.set_timer(RaftTimer::Heartbeat, self.cfg.heartbeat);
        self.advance_commit(io);
    }

    // ----- replication (leader) -----

    /// Appends to the leader's own log, durably; returns the entry's index.
    fn append(&mut self, io: &mut impl Io<SM>, body: Body<SM>) -> Index {
        let entry = Entry { term: self.term, body };
        let bytes = wire::encode(&entry);
        let index = self.log.last() + 1;
        let chain = self.log.append(entry, &bytes);
        io.persist(log_key(index), bytes);
        io.observe(RaftObs::Appended { first: index, entries: vec![(self.term, chain)] });
        index
    }

    /// Sends follower `i` what it needs: log entries while the pipeline has room, a snapshot
    /// chunk when it lags behind the log, or (with `beat`) at least a heartbeat.
    fn replicate(&mut self, io: &mut impl Io<SM>, i: usize, beat: bool) {
        let (base, base_term, base_chain) = self.log.base();
        let p = &mut self.peers[i];
        if p.next <= base {
            // Behind the log: one snapshot chunk at a time, resent on heartbeats.
            if p.snap.is_some_and(|(idx, _)| idx == base) && !beat {
                return;
            }
            let Some(data) = &self.snapshot else { return };
            let offset = match p.snap {
                Some((idx, off)) if idx == base => off,
                _ => 0,
            };
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
            return;
        }
        // Past the base (a late answer to an append may have moved it): no snapshot is due.
        p.snap = None;
        let last = self.log.last();
        let log = &self.log;
        let append = |next: Index, entries: Vec<Entry<SM>>| RaftMsg::Append {
            term: self.term,
            prev_index: next - 1,
            prev_term: log.term_at(next - 1).expect("next is past the base"),
            entries,
            commit: self.commit,
            round: self.round,
            leader_last: last,
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
                io.send(p.id, append(p.next, entries));
            }
            Flow::Pipeline => {
                let mut sent = false;
                while p.inflight.len() < self.cfg.max_inflight && p.next <= last {
                    let entries = log.batch(p.next, self.cfg.max_append_bytes, self.cfg.max_append_entries);
                    let n = entries.len() as u64;
                    io.send(p.id, append(p.next, entries));
                    p.next += n;
                    p.inflight.push_back(p.next - 1);
                    sent = true;
                }
                if beat && !sent {
                    // At `next - 1`, behind what is in flight: if an append was lost, the
                    // follower rejects this and the leader goes back to probing.
                    io.send(p.id, append(p.next, Vec::new()));
                }
            }
        }
    }

    fn heartbeat(&mut self, io: &mut impl Io<SM>) {
        for i in 0..self.peers.len() {
            self.replicate(io, i, true);
        }
        if !self.round_open && self.reads.iter().any(|r| r.round > self.round) {
            self.start_round(io);
        }
        io.set_timer(RaftTimer::Heartbeat, self.cfg.heartbeat);
    }

    /// A follower answered: steps down on a newer term; otherwise, if this is still its leader
    /// in that term, notes that it is alive and the read round it saw, and returns its place.
    fn answered_by(&mut self, io: &mut impl Io<SM>, from: NodeId, term: Term, round: u64) -> Option<usize> {
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
        Some(i)
    }

    /// A follower answered an append at `prev`. A success is a fact whenever it was sent: the
    /// follower's log matches up to `last`. A rejection is acted on only if it answers what
    /// the leader would send now — the probe at `next - 1`, or anything past `matched` in the
    /// pipeline; a stale one (the pipeline had many appends in flight) is ignored, so that it
    /// does not trigger resends of its own.
    #[allow(clippy::too_many_arguments)]
    fn on_append_reply(
        &mut self,
        io: &mut impl Io<SM>,
        from: NodeId,
        term: Term,
        ok: bool,
        (prev, last, lost): (Index, Index, bool),
        round: u64,
    ) {
        let Some(i) = self.answered_by(io, from, term, round) else { return };
        let log_last = self.log.last();
        let p = &mut self.peers[i];
        if ok {
            p.matched = p.matched.max(last.min(log_last));
            while p.inflight.front().is_some_and(|&x| x <= p.matched) {
                p.inflight.pop_front();
            }
            match p.flow {
                Flow::Probe { .. } if p.matched + 1 >= p.next => {
                    p.flow = Flow::Pipeline;
                    p.next = p.matched + 1;
                }
                _ => p.next = p.next.max(p.matched + 1),
            }
        } else {
            if lost && last < p.matched {
                // The follower lost what it had matched (it rejoins): start over from its log.
                p.matched = last;
                p.inflight.clear();
            }
            let current = match p.flow {
                Flow::Probe { .. } => prev + 1 == p.next,
                Flow::Pipeline => prev > p.matched,
            };
            if current {
                // `last` is the follower's hint, below `prev`: retry from the lower of the two.
                let next = (last + 1).min(prev).max(p.matched + 1);
                p.probe(next);
            }
        }
        self.advance_commit(io);
        self.check_reads(io);
        if self.role == Role::Leader {
            self.replicate(io, i, false);
        }
    }

    fn advance_commit(&mut self, io: &mut impl Io<SM>) {
        if self.role != Role::Leader {
            return;
        }
        let mut matched: Vec<Index> = self.peers.iter().map(|p| p.matched).collect();
        matched.push(self.log.last());
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let m = matched[self.cfg.majority() - 1];
        // Only an entry of the leader's own term is committed by counting (§5.4.2).
        if m > self.commit && self.log.term_at(m) == Some(self.term) {
            self.commit = m;
            let chain = self.log.chain_at(m).expect("present");
            io.observe(RaftObs::Committed { term: self.term, index: m, chain });
            self.apply(io);
        }
    }

    // ----- replication (follower) -----

    /// A message of the current (or a newer) leader: follow it.
    fn follow(&mut self, io: &mut impl Io<SM>, from: NodeId, term: Term) {
        if term > self.term || self.role != Role::Follower {
            self.step_down(io, term);
        }
        self.leader = Some(from);
        self.heard_at = Some(io.now());
        self.prevotes.clear();
        self.reset_election_timer(io);
    }

    #[allow(clippy::too_many_arguments)]
    fn on_append(
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
            let reply = RaftMsg::AppendReply {
                term: self.term,
                ok: false,
                prev: prev_index,
                last: 0,
                round,
                lost: self.rejoining.is_some(),
            };
            io.send(from, reply);
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
                io.send(
                    from,
                    RaftMsg::AppendReply {
                        term: self.term,
                        ok: true,
                        prev: sent_prev,
                        last,
                        round,
                        lost: self.rejoining.is_some(),
                    },
                );
                return;
            }
            entries.drain(..skip as usize);
            (prev_index, prev_term) = (base, base_term);
        }
        if prev_index > self.log.last() {
            let last = self.log.last();
            io.send(
                from,
                RaftMsg::AppendReply {
                    term: self.term,
                    ok: false,
                    prev: sent_prev,
                    last,
                    round,
                    lost: self.rejoining.is_some(),
                },
            );
            return;
        }
        if self.log.term_at(prev_index) != Some(prev_term) {
            let hint =
                self.log.first_of_term(prev_index).saturating_sub(1).max(self.commit.min(prev_index - 1));
            let reply = RaftMsg::AppendReply {
                term: self.term,
                ok: false,
                prev: sent_prev,
                last: hint,
                round,
                lost: self.rejoining.is_some(),
            };
            io.send(from, reply);
            return;
        }
        let last_new = prev_index + entries.len() as u64;
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
        let new_commit = commit.min(last_new);
        if new_commit > self.commit {
            self.commit = new_commit;
            self.apply(io);
        }
        if self.incoming.as_ref().is_some_and(|(idx, _)| *idx <= self.commit) {
            // The leader gave up the snapshot: the log reached past it.
            self.incoming = None;
        }
        self.matched = Some((self.term, last_new));
        let reply = RaftMsg::AppendReply {
            term: self.term,
            ok: true,
            prev: sent_prev,
            last: last_new,
            round,
            lost: self.rejoining.is_some(),
        };
        io.send(from, reply);
    }

    /// A rejoining replica heard the leader `from`, whose log ends at `leader_last`: the first
    /// such end in a term is the target; once this replica's log matches the leader's up to it,
    /// it holds every entry it may have acknowledged before it lost its storage (any entry
    /// committed, or acknowledged and still to be counted, is in every later leader's log, and
    /// was in this one's when it was first heard). It then votes again — never in this term,
    /// where it may have voted before the loss, hence the vote recorded for the leader.
    fn rejoin_progress(&mut self, io: &mut impl Io<SM>, from: NodeId, term: Term, leader_last: Index) {
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
            self.rejoining = None;
            self.voted_for = Some(from);
            self.persist_hard_state(io);
            io.unpersist(REJOINING.to_string());
            io.observe(RaftObs::Rejoined { term, index });
        }
    }

    // ----- snapshots -----

    /// Starts a snapshot of the applied state. Serializing and writing it, both O(state), run
    /// off the replica's path ([`Io::persist_later`]): here the state is only copied. The log
    /// is compacted once the snapshot is durable ([`Replica::snapshot_written`]).
    fn take_snapshot(&mut self, io: &mut impl Io<SM>) {
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
    fn snapshot_written(&mut self, io: &mut impl Io<SM>) {
        let Some(w) = self.writing.take() else { return };
        let (base, ..) = self.log.base();
        if w.index <= base {
            io.unpersist(snap_key(w.index));
            return;
        }
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

    #[allow(clippy::too_many_arguments)]
    fn on_snapshot(
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
        if offset == 0 {
            self.incoming = Some((index, Vec::new()));
        }
        let next = match &mut self.incoming {
            Some((idx, buf)) if *idx == index && buf.len() as u64 == offset => {
                buf.extend_from_slice(&data);
                buf.len() as u64
            }
            Some((idx, buf)) if *idx == index => buf.len() as u64,
            _ => 0,
        };
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
        let (base, ..) = self.log.base();
        // In this step's one transaction: the snapshot, and the log it replaces gone.
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
        io.observe(RaftObs::Installed { index, term: last_term, chain });
        io.send(from, RaftMsg::SnapshotReply { term: self.term, index, next: total, round });
    }

    fn on_snapshot_reply(
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
                p.matched = p.matched.max(index);
                p.next = p.next.max(index + 1);
                p.snap = None;
                p.flow = Flow::Pipeline;
                p.inflight.clear();
            } else {
                p.snap = Some((index, next));
            }
            self.replicate(io, i, true);
        }
        self.advance_commit(io);
        self.check_reads(io);
    }

    // ----- applying and answering -----

    fn apply(&mut self, io: &mut impl Io<SM>) {
        while self.applied < self.commit {
            let index = self.applied + 1;
            let entry = self.log.get(index).expect("committed entries are in the log");
            let chain = self.log.chain_at(index).expect("present");
            let mut fresh = Vec::new();
            let mut results = Vec::new();
            let mut answer = None;
            if let Body::Commands { session, from, acked_below, cmds } = &entry.body {
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
                answer = Some((*from, *session));
            }
            self.applied = index;
            let digest = super::chain(0, 0, &wire::encode(&results));
            io.observe(RaftObs::Applied { index, chain, fresh, results: digest });
            if let (Role::Leader, Some((to, session))) = (self.role, answer) {
                if !results.is_empty() {
                    io.send(to, RaftMsg::Reply { session, results });
                }
            }
        }
        self.check_reads(io);
        let last_snapshot = self.snapshot.as_ref().map_or(0, |s| s.len() as u64);
        if self.writing.is_none()
            && self.applied - self.log.base().0 >= self.cfg.snapshot_every
            && self.log.bytes() >= self.cfg.snapshot_growth.saturating_mul(last_snapshot)
        {
            self.take_snapshot(io);
        }
    }

    fn on_request(
        &mut self,
        io: &mut impl Io<SM>,
        from: NodeId,
        session: u64,
        acked_below: u64,
        ops: Vec<(u64, Op<SM>)>,
    ) {
        if self.role != Role::Leader {
            io.send(from, RaftMsg::Redirect { session, leader: self.leader });
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
                    io.send(from, RaftMsg::Reply { session, results });
                }
                Op::Query(query) => {
                    let index = (self.commit >= self.term_start).then_some(self.commit);
                    self.reads.push(PendingRead { round: self.round + 1, index, from, session, seq, query });
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

    /// Starts a read round: a heartbeat to every follower, answered with the round number.
    fn start_round(&mut self, io: &mut impl Io<SM>) {
        self.round += 1;
        self.round_open = true;
        for i in 0..self.peers.len() {
            self.replicate(io, i, true);
        }
        self.check_reads(io);
    }

    /// Answers the queries whose round a majority confirmed and whose read index is applied.
    fn check_reads(&mut self, io: &mut impl Io<SM>) {
        if self.role != Role::Leader || self.reads.is_empty() && !self.round_open {
            return;
        }
        let mut rounds: Vec<u64> = self.peers.iter().map(|p| p.round).collect();
        rounds.push(self.round);
        rounds.sort_unstable_by(|a, b| b.cmp(a));
        let confirmed = rounds[self.cfg.majority() - 1];
        if confirmed >= self.round {
            self.round_open = false;
        }
        if self.commit >= self.term_start {
            for r in &mut self.reads {
                r.index.get_or_insert(self.commit);
            }
        }
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
        for (to, session, results) in answers {
            io.send(to, RaftMsg::Reply { session, results });
        }
        if !self.round_open && self.reads.iter().any(|r| r.round > self.round) {
            self.start_round(io);
        }
    }
}

#[cfg(test)]
mod tests {
    //! The leader's flow control, step by step: what it sends a follower after rejections.

    use super::*;
    use crate::raft::kv::Kv;
    use rand::SeedableRng;

    struct TestIo {
        rng: agora_core::Rng,
        sent: Vec<(NodeId, RaftMsg<Kv>)>,
        observed: Vec<RaftObs>,
    }

    impl Io<Kv> for TestIo {
        fn now(&self) -> Time {
            Time::from_millis(0)
        }
        fn rng(&mut self) -> &mut agora_core::Rng {
            &mut self.rng
        }
        fn send(&mut self, to: NodeId, msg: RaftMsg<Kv>) {
            self.sent.push((to, msg));
        }
        fn set_timer(&mut self, _: RaftTimer, _: Duration) {}
        fn cancel_timer(&mut self, _: RaftTimer) {}
        fn persist(&mut self, _: String, _: Vec<u8>) {}
        fn unpersist(&mut self, _: String) {}
        fn unpersist_range(&mut self, _: String, _: String) {}
        fn persist_later(&mut self, _: String, _: Deferred, _: RaftTimer) {}
        fn observe(&mut self, o: RaftObs) {
            self.observed.push(o);
        }
    }

    impl TestIo {
        /// The appends sent to `to` since the last call: (prev_index, entries), heartbeats too.
        fn appends_to(&mut self, to: NodeId) -> Vec<(Index, usize)> {
            let sent = std::mem::take(&mut self.sent);
            sent.into_iter()
                .filter_map(|(t, m)| match m {
                    RaftMsg::Append { prev_index, entries, .. } if t == to => {
                        Some((prev_index, entries.len()))
                    }
                    _ => None,
                })
                .collect()
        }
    }

    const F: NodeId = NodeId(2);

    /// Node 0 leads 3 replicas (node 1 voted for it) with `n` one-entry appends after its no-op;
    /// follower `F` has matched the no-op and is in the pipeline.
    fn leader(n: usize) -> (Replica<Kv>, TestIo) {
        let mut cfg = Config::new(vec![NodeId(0), NodeId(1), F], Duration::from_millis(100));
        cfg.max_append_entries = 1;
        let mut r = Replica::new(Arc::new(cfg), NodeId(0), &Stable::new()).unwrap();
        let mut io =
            TestIo { rng: agora_core::Rng::seed_from_u64(7), sent: Vec::new(), observed: Vec::new() };
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
            RaftMsg::AppendReply { term, ok: true, prev: 0, last: 1, round: 0, lost: false },
        );
        io.sent.clear();
        for _ in 0..n {
            r.append(&mut io, Body::Noop);
        }
        (r, io)
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
            RaftMsg::AppendReply { term, ok: true, prev: 2, last: 3, round: 0, lost: false },
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
            RaftMsg::AppendReply { term, ok: false, prev: 2, last: 1, round: 0, lost: false },
        );
        assert_eq!(io.appends_to(F), vec![(1, 1)], "one probe, from F's end");
        for prev in 3..9 {
            r.on_message(
                &mut io,
                F,
                RaftMsg::AppendReply { term, ok: false, prev, last: 1, round: 0, lost: false },
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
            RaftMsg::AppendReply { term, ok: true, prev: 1, last: 2, round: 0, lost: false },
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
            RaftMsg::AppendReply { term, ok: false, prev: 5, last: 0, round: 0, lost: false },
        );
        // Never below what F has matched (1).
        assert_eq!(io.appends_to(F), vec![(1, 1)]);
        // Another rejection of an append sent before the probe changes nothing.
        r.on_message(
            &mut io,
            F,
            RaftMsg::AppendReply { term, ok: false, prev: 7, last: 0, round: 0, lost: false },
        );
        assert_eq!(io.appends_to(F), vec![]);
    }

    #[test]
    fn a_follower_drops_a_snapshot_the_leader_gave_up() {
        let cfg = Config::new(vec![NodeId(0), NodeId(1), F], Duration::from_millis(100));
        let mut f = Replica::<Kv>::new(Arc::new(cfg), F, &Stable::new()).unwrap();
        let mut io =
            TestIo { rng: agora_core::Rng::seed_from_u64(7), sent: Vec::new(), observed: Vec::new() };
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

    #[test]
    fn a_follower_that_hears_its_leader_refuses_pre_votes_and_keeps_its_term() {
        let cfg = Config::new(vec![NodeId(0), NodeId(1), F], Duration::from_millis(100));
        let mut f = Replica::<Kv>::new(Arc::new(cfg), F, &Stable::new()).unwrap();
        let mut io =
            TestIo { rng: agora_core::Rng::seed_from_u64(7), sent: Vec::new(), observed: Vec::new() };
        let prevote = RaftMsg::PreVote { term: 1, last_index: 0, last_term: 0 };
        // No leader heard from yet: granted, and nothing changes here.
        f.on_message(&mut io, NodeId(1), prevote.clone());
        assert!(matches!(io.sent.pop(), Some((_, RaftMsg::PreVoteReply { term: 1, granted: true }))));
        assert_eq!(f.term(), 0);
        // Once the leader of term 1 is heard from, a pre-vote for term 2 is refused.
        let beat = RaftMsg::Append {
            term: 1,
            prev_index: 0,
            prev_term: 0,
            entries: vec![],
            commit: 0,
            round: 0,
            leader_last: 0,
        };
        f.on_message(&mut io, NodeId(0), beat);
        io.sent.clear();
        f.on_message(&mut io, NodeId(1), RaftMsg::PreVote { term: 2, last_index: 0, last_term: 0 });
        assert!(matches!(io.sent.pop(), Some((_, RaftMsg::PreVoteReply { term: 1, granted: false }))));
        assert_eq!(f.term(), 1);
        // Its own timer firing raises no term either: it only asks.
        f.on_timer(&mut io, RaftTimer::Election);
        assert_eq!(f.term(), 1);
        assert!(io.sent.iter().all(|(_, m)| matches!(m, RaftMsg::PreVote { term: 2, .. })));
    }

    #[test]
    fn a_rejoining_replica_votes_only_after_reaching_the_leaders_log() {
        let cfg = Arc::new(Config::new(vec![NodeId(0), NodeId(1), F], Duration::from_millis(100)));
        let mut stable = Stable::new();
        stable.put(REJOINING.into(), Vec::new());
        let mut f = Replica::<Kv>::new(cfg, F, &stable).unwrap();
        assert!(f.rejoining());
        let mut io =
            TestIo { rng: agora_core::Rng::seed_from_u64(7), sent: Vec::new(), observed: Vec::new() };
        let refused =
            |io: &mut TestIo| matches!(io.sent.pop(), Some((_, RaftMsg::VoteReply { granted: false, .. })));
        // An empty log is as up to date as any: a replica that forgot would grant this.
        f.on_message(&mut io, NodeId(1), RaftMsg::Vote { term: 3, last_index: 0, last_term: 0 });
        assert!(refused(&mut io), "no vote while rejoining");
        assert_eq!(f.term(), 3, "it still learns the term");
        f.on_timer(&mut io, RaftTimer::Election);
        assert!(io.sent.is_empty(), "no pre-vote or candidacy while rejoining");
        // The leader of term 3 has a log up to 2; its first append carries entry 1 only.
        let entry = |_: Index| Entry::<Kv> { term: 3, body: Body::Noop };
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
        f.on_message(&mut io, NodeId(1), RaftMsg::Vote { term: 3, last_index: 9, last_term: 3 });
        assert!(refused(&mut io));
        // ...but in later terms, as any replica.
        io.sent.clear();
        f.heard_at = None;
        f.on_message(&mut io, NodeId(1), RaftMsg::Vote { term: 4, last_index: 9, last_term: 3 });
        assert!(matches!(io.sent.pop(), Some((_, RaftMsg::VoteReply { granted: true, .. }))));
    }
}
