//! One replica of the Raft log: the [`Replica`] struct, its [`Config`], its restart from what
//! it persisted, its public accessors, and the dispatch of its events (start, timers,
//! messages) to the files that implement each part of the algorithm, one concept per file:
//!
//! | file | what | where in the literature |
//! | --- | --- | --- |
//! | `election.rs` | timers, pre-vote, vote, step down, become leader, rejoin after a disk loss | §5.2 of the paper; §4.2.3, §9.6 of the thesis |
//! | `transfer.rs` | leadership transfer: `TimeoutNow` to a caught-up follower | §3.10 of the thesis |
//! | `replication.rs` | the leader's appends and heartbeats, the follower's `on_append`, commitment | §5.3, §5.4.2 of the paper |
//! | `progress.rs` | the leader's view of each follower: `Peer` and its probe/pipeline `Flow` | etcd/raft-rs `tracker/progress.rs` |
//! | `snapshot.rs` | taking, writing, sending and installing snapshots | §7 of the paper; §5 of the thesis |
//! | `read_index.rs` | read rounds and pending queries | §6.4 of the thesis |
//! | `apply.rs` | applying committed entries, client sessions, requests | §6.3 of the thesis |
//!
//! See the module docs of [`super`] for the algorithm as a whole.
//!
//! **Invariants**, checked after every step in debug builds ([`Replica::check_step`]): the term
//! never decreases and a vote once cast in a term stands; `base <= applied <= commit`; a
//! leader's log only grows in its term and is known durable no further than its end; a leader
//! voted for itself, and only a leader has
//! pending reads or an open read round; a rejoining replica is a follower; for every
//! follower, what the leader knows obeys [`progress::Peer::check`].

mod apply;
mod election;
mod progress;
mod read_index;
mod replication;
mod snapshot;
#[cfg(test)]
pub(crate) mod testing;
mod transfer;

use self::apply::Sessions;
use self::progress::Peer;
use self::read_index::PendingRead;
use self::snapshot::Writing;
use self::transfer::Transfer;
use super::log::Log;
use super::{Entry, Index, Io, RaftMsg, RaftObs, RaftTimer, StateMachine, Term};
use agora_core::{wire, Corrupt, NodeId, Stable, Time};
use serde::Serialize;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

// ----- what a replica persists, and where -----

/// The term and the vote in it, `(Term, Option<NodeId>)`: the one value a replica stores
/// that names a node.
pub const HARD_STATE: &str = "raft/hs";

/// The value stored under [`HARD_STATE`] with its vote renamed, node `i` becoming `to[i]`
/// (a value that does not decode is returned as it is). For the explorer's symmetry reduction.
pub fn renamed_hard_state(value: &[u8], to: &[NodeId]) -> Vec<u8> {
    match wire::decode::<(Term, Option<NodeId>)>(value) {
        Ok((term, vote)) => wire::encode(&(term, vote.map(|v| to[v.index()]))),
        Err(_) => value.to_vec(),
    }
}
/// Snapshots, one key per index: the one at the log's base is current. A snapshot is written
/// off the replica's path, so for a while there may be two (the older is removed once the
/// newer is durable), and a crash may leave either as the newest.
const SNAP_PREFIX: &str = "raft/snap/";
/// Where builds before deferred snapshot writes kept their one snapshot.
const LEGACY_SNAPSHOT: &str = "raft/snap";
/// Log entries after the snapshot, one key per index.
const LOG_PREFIX: &str = "raft/log/";

/// How many of the longest election timeouts a follower must answer nothing for before its
/// leader takes it for down (see `Replica::settled`): 250 of the shortest, as long as the
/// key-value store's checker lets a run settle after its last fault. A follower that comes
/// back sooner (a pause, a partition, a restart) is waited for as before; one that comes back
/// later says for itself that it lags (`leader_last`).
const SILENT_TIMEOUTS: u32 = 125;

fn log_key(i: Index) -> String {
    format!("{LOG_PREFIX}{i:016x}")
}

fn snap_key(i: Index) -> String {
    format!("{SNAP_PREFIX}{i:016x}")
}

/// Settings shared by the replicas of one log.
#[derive(Clone, Debug)]
pub struct Config {
    /// Every replica of the log, in a fixed order.
    pub replicas: Vec<NodeId>,
    /// The shortest election timeout; each is drawn uniformly from
    /// `[election_timeout, election_timeout_max)`.
    pub election_timeout: Duration,
    /// The longest election timeout, at least `election_timeout` (equal: every timer is the
    /// same length, the setting Figure 16 of the paper shows to split votes again and again).
    pub election_timeout_max: Duration,
    /// Whether a follower whose timer fires asks for pre-votes first (§9.6 of the thesis), or
    /// stands at once, as in the paper.
    pub pre_vote: bool,
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
    /// Entries per append, at most.
    pub max_append_entries: usize,
    /// Bytes per snapshot chunk.
    pub snapshot_chunk: usize,
    /// Broken variant: the leader answers queries from its own state at once.
    pub stale_reads: bool,
    /// Broken variant when false: retried commands are applied again.
    pub dedup: bool,
    /// Broken variant when false: a voter grants its vote (and pre-vote) without comparing
    /// the candidate's log with its own (the restriction of §5.4.1 taken out), so a leader
    /// may lack a committed entry.
    pub log_check: bool,
}

impl Config {
    /// The defaults for a log replicated on `replicas`: election timeouts drawn from
    /// `[election_timeout, 2 * election_timeout)`, pre-vote, heartbeats every quarter of
    /// `election_timeout`, a snapshot every 1,000 entries, 8 appends in flight, appends of at most
    /// 256 KiB and 512 entries, 64 KiB snapshot chunks, and the correct (not broken) behaviour.
    pub fn new(replicas: Vec<NodeId>, election_timeout: Duration) -> Self {
        Config {
            replicas,
            election_timeout,
            election_timeout_max: election_timeout * 2,
            pre_vote: true,
            heartbeat: election_timeout / 4,
            snapshot_every: 1_000,
            snapshot_growth: 0,
            max_inflight: 8,
            max_append_bytes: 256 * 1024,
            max_append_entries: 512,
            snapshot_chunk: 64 * 1024,
            stale_reads: false,
            dedup: true,
            log_check: true,
        }
    }

    /// How many replicas make a majority: more than half of them.
    pub fn majority(&self) -> usize {
        self.replicas.len() / 2 + 1
    }
}

/// A replica's role in its current term (§5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Role {
    /// Follows the leader it hears from, if any; starts a (pre-)election when none is heard.
    Follower,
    /// Asks for votes in its term.
    Candidate,
    /// Won its term's election: replicates, commits and answers clients.
    Leader,
}

/// One replica of the log.
#[derive(Clone)]
pub struct Replica<SM: StateMachine> {
    cfg: Arc<Config>,
    me: NodeId,
    // --- election (`election.rs`) ---
    /// The current term, persisted with `voted_for`; it never decreases.
    term: Term,
    /// The candidate voted for in `term`, if any; once set in a term it stands.
    voted_for: Option<NodeId>,
    role: Role,
    leader: Option<NodeId>,
    /// Votes received as a candidate in `term`, this replica's own first.
    votes: Vec<NodeId>,
    /// Pre-votes for the next term while pre-voting (empty otherwise).
    prevotes: Vec<NodeId>,
    /// When the current leader was last heard from.
    heard_at: Option<Time>,
    /// Set while this replica rejoins after losing its storage: it neither votes nor stands
    /// for election until its log reaches the end of a leader's log as first heard (the
    /// leader's term and last index, once heard).
    rejoining: Option<Option<(Term, Index)>>,
    /// The term of the last append accepted, and the index up to which this log then matched
    /// the leader's.
    matched: Option<(Term, Index)>,
    // --- the log and its application (`replication.rs`, `apply.rs`) ---
    log: Log<SM>,
    /// The highest index known committed: `applied <= commit`.
    commit: Index,
    /// The highest index applied to `sm`: `log.base() <= applied`.
    applied: Index,
    sm: SM,
    sessions: Sessions<SM>,
    // --- leading (`progress.rs`, `read_index.rs`) ---
    /// The leader's view of every other replica, in the order of `cfg.replicas`.
    peers: Vec<Peer>,
    /// The index of this leader's no-op.
    term_start: Index,
    /// How far this leader's own log is known durable (its driver said so): it counts itself
    /// in a commit majority up to here only, since its appends leave before its own write is
    /// durable (§10.2.1 of the thesis). Below `term_start` until its no-op is durable.
    durable: Index,
    /// A leadership transfer this leader was asked for (`transfer.rs`).
    transfer: Option<Transfer>,
    /// Read rounds: the last started, and whether it awaits its majority.
    round: u64,
    round_open: bool,
    reads: Vec<PendingRead<SM>>,
    // --- snapshots (`snapshot.rs`) ---
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
    /// A follower: the term of the latest append it heard and the furthest end of its
    /// leader's log those appends gave. Until it has heard an append in its term and its own
    /// log reaches that end, the follower is not settled, whatever it knows to be committed:
    /// a leader does not wait for a follower it takes for down, so one that comes back must
    /// say for itself that it lags.
    leader_last: (Term, Index),
}

/// A replica's state for the exhaustive explorer: everything that changes (the settings and
/// the replica's id are the setup's). The log is compared by its chain hashes, the state
/// machine and the session table by their encoding; the snapshot's bytes follow from its
/// base, which the log's identity includes.
impl<SM: StateMachine> Hash for Replica<SM> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        (self.term, self.voted_for, self.role, self.leader, &self.votes, &self.prevotes).hash(h);
        (self.heard_at, self.rejoining, self.matched, self.commit, self.applied).hash(h);
        self.log.hash_into(h);
        wire::encode(&(&self.sm, &self.sessions)).hash(h);
        (&self.peers, self.term_start, self.transfer, self.round, self.round_open, &self.reads).hash(h);
        (&self.snapshot_key, self.writing.as_ref().map(|w| w.index), &self.leftover, &self.incoming).hash(h);
        self.leader_last.hash(h);
    }
}

impl<SM: StateMachine> Replica<SM> {
    /// This replica with every node id renamed, node `i` becoming `to[i]`: its own, its vote,
    /// its leader, the votes and pre-votes it holds, its view of each peer (kept in the order
    /// of the settings' replicas) and a transfer's target. What it keeps of clients (a read's
    /// client, a log entry's) is renamed only where `to` moves clients, which the explorer's
    /// symmetry never does (a client is in no class). The explorer's symmetry reduction takes
    /// a state and this renaming of it for one another ([`agora_core::Symmetry`]).
    pub fn renamed(&self, to: &[NodeId]) -> Self {
        let mut r = self.clone();
        let name = |id: NodeId| to[id.index()];
        r.me = name(self.me);
        r.voted_for = self.voted_for.map(name);
        r.leader = self.leader.map(name);
        r.votes = self.votes.iter().map(|&v| name(v)).collect();
        r.prevotes = self.prevotes.iter().map(|&v| name(v)).collect();
        for p in &mut r.peers {
            p.id = name(p.id);
        }
        let place = |id: NodeId| self.cfg.replicas.iter().position(|&r| r == id);
        r.peers.sort_by_key(|p| place(p.id));
        r.transfer = self.transfer.map(|t| t.renamed(to));
        for read in &mut r.reads {
            read.from = name(read.from);
        }
        debug_assert!(
            (self.log.base().0 + 1..=self.log.last())
                .filter_map(|i| self.log.get(i))
                .all(|e| !matches!(&e.body, super::Body::Commands { from, .. } if name(*from) != *from)),
            "a client renamed"
        );
        r
    }
}

/// What a restart found in stable storage: the newest snapshot, if any, with the keys of
/// older ones left over.
struct Restored<SM: StateMachine> {
    sm: SM,
    sessions: Sessions<SM>,
    log: Log<SM>,
    snapshot: Option<Arc<Vec<u8>>>,
    snapshot_key: Option<String>,
    stale: Vec<String>,
}

impl<SM: StateMachine> Replica<SM> {
    /// A replica in its initial state, or rebuilt from what it persisted; a persisted value
    /// that does not decode is [`Corrupt`].
    pub fn new(cfg: Arc<Config>, me: NodeId, stable: &Stable) -> Result<Self, Corrupt> {
        let (term, voted_for): (Term, Option<NodeId>) = stable.load(HARD_STATE)?.unwrap_or((0, None));
        let Restored { sm, sessions, mut log, snapshot, snapshot_key, stale } =
            Self::restore_snapshot(stable)?;
        let garbage = Self::restore_log(stable, &mut log)?;
        let base = log.base().0;
        let peers = cfg.replicas.iter().filter(|r| **r != me).map(|&id| Peer::new(id, 1)).collect();
        let replica = Replica {
            cfg,
            me,
            term,
            voted_for,
            role: Role::Follower,
            leader: None,
            votes: Vec::new(),
            prevotes: Vec::new(),
            heard_at: None,
            rejoining: stable.rejoining().then_some(None),
            matched: None,
            log,
            commit: base,
            applied: base,
            sm,
            sessions,
            peers,
            term_start: 0,
            durable: 0,
            transfer: None,
            round: 0,
            round_open: false,
            reads: Vec::new(),
            snapshot,
            snapshot_key,
            writing: None,
            leftover: (stale, garbage),
            incoming: None,
            leader_last: (0, 0),
        };
        replica.check_invariants();
        Ok(replica)
    }

    /// The newest snapshot wins: each is of a committed prefix, so a newer one extends an
    /// older one.
    fn restore_snapshot(stable: &Stable) -> Result<Restored<SM>, Corrupt> {
        let mut keys: Vec<String> = stable.with_prefix(SNAP_PREFIX).map(|(k, _)| k.to_string()).collect();
        if stable.get_bytes(LEGACY_SNAPSHOT).is_some() {
            keys.insert(0, LEGACY_SNAPSHOT.to_string());
        }
        let Some(newest) = keys.pop() else {
            let (sm, sessions, log) = (SM::default(), Sessions::new(), Log::new(0, 0, 0));
            return Ok(Restored { sm, sessions, log, snapshot: None, snapshot_key: None, stale: Vec::new() });
        };
        let bytes = stable.get_bytes(&newest).expect("listed");
        let (index, sterm, chain, data): (Index, Term, u64, Vec<u8>) =
            wire::decode(bytes).map_err(|e| Corrupt::new(&newest, e))?;
        let (sm, sessions) = wire::decode(&data).map_err(|e| Corrupt::new(&newest, e))?;
        Ok(Restored {
            sm,
            sessions,
            log: Log::new(index, sterm, chain),
            snapshot: Some(Arc::new(data)),
            snapshot_key: Some(newest),
            stale: keys,
        })
    }

    /// Appends the persisted entries after the snapshot to `log`; returns whether entries at or
    /// below its base remain (their removal did not land before a crash).
    fn restore_log(stable: &Stable, log: &mut Log<SM>) -> Result<bool, Corrupt> {
        let mut garbage = false;
        for (key, bytes) in stable.with_prefix(LOG_PREFIX) {
            let i = Index::from_str_radix(&key[LOG_PREFIX.len()..], 16).map_err(|e| Corrupt::new(key, e))?;
            if i <= log.last() {
                garbage = true;
                continue;
            }
            if i != log.last() + 1 {
                return Err(Corrupt::new(key, format!("log entry {i} follows entry {}", log.last())));
            }
            let entry: Entry<SM> = wire::decode(bytes).map_err(|e| Corrupt::new(key, e))?;
            log.append(entry, bytes);
        }
        Ok(garbage)
    }

    /// Whether this replica is rejoining after losing its storage (it does not vote yet).
    pub fn rejoining(&self) -> bool {
        self.rejoining.is_some()
    }

    /// This replica's id.
    pub fn me(&self) -> NodeId {
        self.me
    }

    /// The replica's role now.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The replica's current term.
    pub fn term(&self) -> Term {
        self.term
    }

    /// The leader of the current term, if this replica knows it.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// Whether it is looking for a leader: a candidate, or a follower that has not heard its
    /// leader for an election timeout and is asking whether it may stand (pre-voting).
    pub fn seeking_leader(&self) -> bool {
        self.role == Role::Candidate || (self.role == Role::Follower && !self.prevotes.is_empty())
    }

    /// Settled but for its leader: looking for one ([`Replica::seeking_leader`]), its leader
    /// gone or late, with everything it holds committed and applied, and all of its leader's
    /// log that it heard of committed; not rejoining, no snapshot coming in or being written.
    /// A host whose work is done may take it for settled: its leader may have ended.
    pub fn settled_but_leaderless(&self) -> bool {
        self.seeking_leader()
            && self.caught_up()
            && self.leader_last.1 <= self.commit
            && self.rejoining.is_none()
            && self.incoming.is_none()
    }

    /// Its own log committed and applied to its end, and no snapshot being written.
    fn caught_up(&self) -> bool {
        self.applied == self.commit && self.commit == self.log.last() && self.writing.is_none()
    }

    /// The highest index known to be committed.
    pub fn commit_index(&self) -> Index {
        self.commit
    }

    /// The highest index applied to the state machine (`commit_index` at most).
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
    /// follower has all of it and knows it committed — but one that has answered nothing for
    /// several election timeouts, taken for down (a crashed replica that never comes back
    /// would otherwise keep its leader busy for ever; the log is committed, so a majority has
    /// it) — and no query waits; no snapshot is being written. What remains is heartbeats.
    pub fn settled(&self) -> bool {
        let caught_up = self.caught_up();
        match self.role {
            Role::Candidate => false,
            // A rejoining replica has work to do until it has caught up; its leader may not
            // know yet that its log is gone.
            Role::Follower if self.rejoining.is_some() => false,
            Role::Follower => {
                let behind = self.leader_last.0 != self.term || self.log.last() < self.leader_last.1;
                // Pre-voting: it has not heard its leader for an election timeout.
                let lost = !self.prevotes.is_empty();
                caught_up && self.leader.is_some() && self.incoming.is_none() && !behind && !lost
            }
            Role::Leader => {
                caught_up
                    && self.reads.is_empty()
                    && self.peers.iter().all(|p| {
                        let done = p.matched == self.log.last() && p.commit >= self.log.last();
                        done || self.silent(p)
                    })
            }
        }
    }

    /// Whether follower `p` has answered nothing for longer than [`SILENT_TIMEOUTS`] of the
    /// longest election timeout (heartbeats go out every `heartbeat`): far longer than a live
    /// follower that heard nothing either would wait before standing for election, than a lost
    /// answer or two, and than the faults a run usually injects.
    fn silent(&self, p: &Peer) -> bool {
        self.cfg.heartbeat * p.silent > self.cfg.election_timeout_max * SILENT_TIMEOUTS
    }

    // ----- events -----

    /// Starts (or restarts) the replica: reports what it restored, clears storage left over from an
    /// interrupted compaction, and sets its election timer.
    pub fn on_start(&mut self, io: &mut impl Io<SM>) {
        let before = Step::of(self);
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
        self.check_step(&before);
    }

    /// Handles one of Raft's timers (a `ClientRetry` is a client's and is ignored).
    pub fn on_timer(&mut self, io: &mut impl Io<SM>, timer: RaftTimer) {
        let before = Step::of(self);
        match timer {
            RaftTimer::Election if self.rejoining.is_some() => self.reset_election_timer(io),
            RaftTimer::Election => match self.role {
                Role::Follower if self.cfg.pre_vote => self.start_prevote(io),
                Role::Follower => self.start_election(io),
                Role::Candidate => self.start_election(io),
                Role::Leader => {}
            },
            RaftTimer::Heartbeat => {
                if self.role == Role::Leader {
                    self.heartbeat(io);
                }
            }
            RaftTimer::SnapshotWritten => self.snapshot_written(io),
            RaftTimer::Synced { term, index } => self.on_synced(io, term, index),
            RaftTimer::ClientRetry => {}
        }
        self.check_step(&before);
    }

    /// Stands now rather than when its election timer fires, because its host has a reason
    /// to want this replica to lead (the market's trader is its host): a follower that hears
    /// no live leader does what its timer would do — asks for pre-votes first when configured,
    /// else stands. Anything else (a leader, a candidate, a follower of a live leader, a
    /// rejoining replica) does nothing. As safe as the timer firing early: Raft's safety
    /// never depends on when a replica stands, and with pre-vote a live leader is not
    /// disturbed.
    pub fn campaign(&mut self, io: &mut impl Io<SM>) {
        let before = Step::of(self);
        if self.role == Role::Follower && self.rejoining.is_none() && !self.leader_alive(io) {
            match self.cfg.pre_vote {
                true => self.start_prevote(io),
                false => self.start_election(io),
            }
        }
        self.check_step(&before);
    }

    /// Handles a message from node `from`; Raft messages from a node outside the replicas (or
    /// from itself) are ignored, and client requests are answered.
    pub fn on_message(&mut self, io: &mut impl Io<SM>, from: NodeId, msg: RaftMsg<SM>) {
        let before = Step::of(self);
        self.dispatch(io, from, msg);
        self.check_step(&before);
    }

    fn dispatch(&mut self, io: &mut impl Io<SM>, from: NodeId, msg: RaftMsg<SM>) {
        let from_replica = self.cfg.replicas.contains(&from) && from != self.me;
        match msg {
            RaftMsg::PreVote { term, last_index, last_term } if from_replica => {
                self.on_prevote(io, from, term, (last_term, last_index))
            }
            RaftMsg::PreVoteReply { term, granted } if from_replica => {
                self.on_prevote_reply(io, from, term, granted)
            }
            RaftMsg::Vote { term, last_index, last_term, transfer } if from_replica => {
                self.on_vote(io, from, term, (last_index, last_term), transfer)
            }
            RaftMsg::VoteReply { term, granted } if from_replica => {
                self.on_vote_reply(io, from, term, granted)
            }
            RaftMsg::Append { term, prev_index, prev_term, entries, commit, round, leader_last }
                if from_replica =>
            {
                self.on_append(io, from, term, (prev_index, prev_term), entries, commit, round);
                if term == self.term && self.role == Role::Follower {
                    let known = if self.leader_last.0 == term { self.leader_last.1 } else { 0 };
                    self.leader_last = (term, known.max(leader_last));
                }
                self.rejoin_progress(io, from, term, leader_last);
            }
            RaftMsg::AppendReply { term, ok, prev, last, round, commit, lost } if from_replica => {
                self.on_append_reply(io, from, term, ok, (prev, last, lost), round, commit)
            }
            RaftMsg::Snapshot { term, index, last_term, chain, offset, total, data, round }
                if from_replica =>
            {
                self.on_snapshot(io, from, term, (index, last_term, chain), offset, total, data, round)
            }
            RaftMsg::SnapshotReply { term, index, next, round } if from_replica => {
                self.on_snapshot_reply(io, from, term, index, next, round)
            }
            RaftMsg::TimeoutNow { term } if from_replica => self.on_timeout_now(io, from, term),
            RaftMsg::Request { session, acked_below, ops } => {
                self.on_request(io, from, session, acked_below, ops)
            }
            // Replies are for clients; anything else from a non-replica is ignored.
            _ => {}
        }
    }

    // ----- invariants -----

    /// What holds between any two steps. Only facts this replica keeps by itself: nothing that
    /// a peer's message (or a broken variant's forgetful peer) could make false.
    fn check_invariants(&self) {
        let (base, ..) = self.log.base();
        debug_assert!(base <= self.applied, "applied {} below the snapshot base {base}", self.applied);
        debug_assert!(self.applied <= self.commit, "applied {} past commit {}", self.applied, self.commit);
        debug_assert!(
            self.writing.as_ref().is_none_or(|w| w.index <= self.applied),
            "a snapshot of unapplied state"
        );
        debug_assert!(self.rejoining.is_none() || self.role == Role::Follower, "a rejoining replica stands");
        debug_assert!(
            self.role == Role::Leader || (self.reads.is_empty() && !self.round_open),
            "reads pending on a {:?}",
            self.role
        );
        if self.role == Role::Leader {
            debug_assert_eq!(self.leader, Some(self.me), "a leader that does not know it leads");
            debug_assert_eq!(self.voted_for, Some(self.me), "a leader that did not vote for itself");
            debug_assert!(self.durable <= self.log.last(), "durable past the log's end");
            for p in &self.peers {
                p.check(self.log.last(), self.cfg.max_inflight);
            }
        }
    }

    /// Checks what a step may change against what it was before it, then the invariants.
    fn check_step(&self, before: &Step) {
        debug_assert!(self.term >= before.term, "term {} went back to {}", before.term, self.term);
        if self.term == before.term && before.voted_for.is_some() {
            debug_assert_eq!(self.voted_for, before.voted_for, "a second vote in term {}", self.term);
        }
        if before.role == Role::Leader && self.role == Role::Leader {
            debug_assert_eq!(self.term, before.term, "a leader's term changed while it led");
            debug_assert!(self.log.last() >= before.last, "a leader's log shrank");
        }
        debug_assert!(self.commit >= before.commit, "commit {} went back to {}", before.commit, self.commit);
        debug_assert!(
            self.applied >= before.applied,
            "applied {} went back to {}",
            before.applied,
            self.applied
        );
        self.check_invariants();
    }
}

/// What [`Replica::check_step`] compares a step's outcome with.
struct Step {
    term: Term,
    voted_for: Option<NodeId>,
    role: Role,
    last: Index,
    commit: Index,
    applied: Index,
}

impl Step {
    fn of<SM: StateMachine>(r: &Replica<SM>) -> Self {
        Step {
            term: r.term,
            voted_for: r.voted_for,
            role: r.role,
            last: r.log.last(),
            commit: r.commit,
            applied: r.applied,
        }
    }
}
