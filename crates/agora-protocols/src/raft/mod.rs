//! `raft`: a replicated log (Ongaro & Ousterhout, *In Search of an Understandable Consensus
//! Algorithm*, USENIX ATC 2014; Ongaro, *Consensus: Bridging Theory and Practice*, PhD thesis,
//! Stanford, 2014 — "the thesis" below), as a sans-IO core that other protocols embed.
//!
//! **Parts.**
//! - [`Replica`]: one member of the replicated log. Leader election with randomized timeouts
//!   drawn from the injected random source; log replication with batching (one entry carries
//!   a client's whole request message) and pipelining (up to `max_inflight` appends in flight
//!   per follower once its log is known to match; after a rejection, one probe at a time
//!   until one is accepted, and rejections of appends sent before are ignored, so a follower
//!   far behind is not flooded with resends — the flow control of etcd's raft library);
//!   commitment by majority of entries of the leader's own term (§5.4.2 of the paper); log
//!   compaction into snapshots every `snapshot_every` applied entries (and, with
//!   `snapshot_growth`, once the log is that many times the last snapshot's size), and
//!   snapshots sent in chunks to followers that lag behind the leader's log. A snapshot is
//!   written off the replica's path: the replica copies its state (a [`CowVec`] makes that
//!   copy share its chunks) and hands it to a deferred write, which the driver serializes and
//!   persists while the replica goes on; the log is compacted, in one range removal, once the
//!   snapshot is durable. A crash in between leaves the old snapshot or the new, and a
//!   restart takes the newest and removes the rest.
//!   Term, vote and log entries are persisted through persist effects in the step that
//!   changes them, so they are durable before any answer leaves the node. One exception, §10.2.1
//!   of the thesis: a leader sends its appends while it is still writing the same entries
//!   (they may leave before its own write is durable), and counts itself in the majority
//!   that commits an entry only once its driver has told it that its log is durable up to it. A restarted replica
//!   rebuilds from its snapshot and log and has lost its commit index, role and leader.
//!   Leader stickiness (§4.2.3 of the thesis): a follower that heard from a live leader within
//!   the minimum election timeout ignores vote requests, so a node cut off by a one-way
//!   partition cannot depose a working leader. Pre-vote (§9.6 of the thesis): a follower whose
//!   timer fires first asks whether a majority would vote for it, without changing its term;
//!   only then does it stand. A follower that merely fell behind on its inbox (a loaded
//!   machine) or was cut off therefore no longer raises the term and deposes a live leader.
//!   A host may move the leadership where it wants it: [`Replica::campaign`] makes a replica
//!   that hears no live leader stand at once instead of an election timeout later, and
//!   [`Replica::transfer`] is the leadership transfer of §3.10 of the thesis — the leader
//!   waits for the target's log to match its own, takes no new commands, and tells it to
//!   stand at once (`TimeoutNow`); the target's vote requests say so and are answered despite
//!   leader stickiness. Neither touches safety: a candidate still needs a majority's votes
//!   for an up-to-date log. The trading post uses both to keep its ledger's leader on its
//!   trader.
//! - [`StateMachine`]: the replicated application. It is generic: the key-value store of
//!   [`kv`] is the example and test subject; the federated election and the trading post
//!   plug in their own; [`strings`] is the byte-string store with Redis's string commands and a
//!   compare-and-set behind `agora kv` (docs/kv.md).
//! - Client sessions (§6.3 of the thesis): every command carries its client's session id and
//!   sequence number, and the state machine's session table remembers each session's
//!   results, so a retried command is applied once and answered again with the same result.
//!   Clients pipeline: a request names the lowest sequence number the client has not yet seen
//!   answered, and results below it are forgotten.
//! - [`client::Client`]: the client side — redirection to the leader, retries on a timeout,
//!   a window of commands in flight, batching of what is queued into one request.
//! - [`checker::RaftChecker`]: Raft's safety properties and a client oracle.
//!
//! **Linearizable reads: read index, not leases** (§6.4 of the thesis). A query is answered by
//! the leader once (1) it has committed an entry of its own term (its no-op), (2) it has
//! recorded its commit index as the read's index, (3) a majority has answered a heartbeat
//! sent after the query arrived (it was still the leader then), and (4) it has applied the
//! log up to the read index. One heartbeat round serves every query that arrived before it.
//! Leases would save that round but rest on bounded clock drift; agora's simulator drifts and
//! skews clocks on purpose, and a read-index read stays correct under any clock. The
//! `stale-reads` variant answers from local state at once, and the checker catches it.
//!
//! **Tolerates** the crash and restart of any minority of replicas (3, 5, 7 replicas tolerate
//! 1, 2, 3), message loss, duplication and reordering, symmetric and one-way partitions,
//! pauses, and clock skew and drift: safety never depends on timing. Liveness needs a
//! majority up and connected for a few election timeouts.
//!
//! **Not done:** membership changes (the replica set is fixed) and expiry of
//! client sessions (the table keeps one small record per session ever seen).

pub mod checker;
pub mod client;
mod cow;
pub mod kv;
mod log;
pub mod params;
mod replica;
pub mod strings;

pub use cow::CowVec;
pub use replica::{renamed_hard_state, Config, Replica, Role, HARD_STATE};

use agora_core::{Context, Deferred, NodeId, Protocol, Rng, Time};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt::Debug;
use std::time::Duration;

/// A term number.
pub type Term = u64;
/// A log index; the first entry has index 1, and 0 is "before the log".
pub type Index = u64;

/// Where a command sits in the log: its entry and its place among that entry's commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Pos {
    /// The log entry.
    pub index: Index,
    /// The command's place in that entry's batch, from 0.
    pub offset: u32,
}

/// The replicated application: deterministic, so every replica applying the same commands in
/// the same order reaches the same state and the same outputs.
pub trait StateMachine:
    Default + Clone + Debug + Send + Sync + Serialize + DeserializeOwned + 'static
{
    /// A command: changes the state, goes through the log.
    type Command: Serialize + DeserializeOwned + Clone + Debug + Send + Sync + 'static;
    /// A query: reads the state, answered by the leader through a read index.
    type Query: Serialize + DeserializeOwned + Clone + Debug + Send + Sync + 'static;
    /// The answer to a command or a query.
    type Output: Serialize + DeserializeOwned + Clone + Debug + PartialEq + Send + Sync + 'static;

    /// Applies a committed command at `pos`.
    fn apply(&mut self, pos: Pos, cmd: &Self::Command) -> Self::Output;

    /// Answers a query from the current state.
    fn query(&self, q: &Self::Query) -> Self::Output;
}

/// A client's operation.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub enum Op<SM: StateMachine> {
    /// A command: goes through the log and is applied once, whatever the retries.
    Command(SM::Command),
    /// A query: answered by the leader at a read index, without a log entry.
    Query(SM::Query),
}

/// A log entry.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Entry<SM: StateMachine> {
    /// The term of the leader that created it.
    pub term: Term,
    /// What it carries.
    pub body: Body<SM>,
}

/// What an entry carries.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub enum Body<SM: StateMachine> {
    /// A new leader's first entry: committing it commits everything before it (§5.4.2).
    Noop,
    /// One request message of one client session: its commands, in order.
    Commands {
        /// The client session the commands belong to.
        session: u64,
        /// The client's node, answered by whoever leads when the entry is applied.
        from: NodeId,
        /// Results of this session below this sequence number can be forgotten.
        acked_below: u64,
        /// `(sequence number, command)`, in the session's order.
        cmds: Vec<(u64, SM::Command)>,
    },
}

/// The answer to one operation.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub enum Outcome<SM: StateMachine> {
    /// A command applied (now, or earlier: a retried command gets its first result).
    Applied {
        /// Where the command was applied (its first application, for a retry).
        pos: Pos,
        /// What the state machine returned.
        output: SM::Output,
    },
    /// A query answered at a read index.
    Read {
        /// The read index: the state answered from includes every entry up to it.
        index: Index,
        /// What the state machine returned.
        output: SM::Output,
    },
}

/// Raft's messages, and the client protocol's.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub enum RaftMsg<SM: StateMachine> {
    /// Would you vote for me in `term` (one above the sender's)? Changes no one's state.
    PreVote {
        /// The term the sender would stand in.
        term: Term,
        /// The index of the sender's last entry.
        last_index: Index,
        /// The term of the sender's last entry: with `last_index`, how up to date it is (§5.4.1).
        last_term: Term,
    },
    /// `term` is the one asked about when granted, the answerer's own when refused.
    PreVoteReply {
        /// The term asked about if granted; the answerer's own if refused.
        term: Term,
        /// Whether the answerer would vote.
        granted: bool,
    },
    /// RequestVote (§5.2): vote for me in `term`.
    Vote {
        /// The candidate's term.
        term: Term,
        /// The index of the candidate's last entry.
        last_index: Index,
        /// The term of the candidate's last entry.
        last_term: Term,
        /// The candidate stands because its leader handed it the post ([`RaftMsg::TimeoutNow`]):
        /// voters answer it even while they hear that leader (leader stickiness does not
        /// apply), and the leader steps down for it.
        transfer: bool,
    },
    /// The answer to a [`RaftMsg::Vote`].
    VoteReply {
        /// The answerer's term.
        term: Term,
        /// Whether it voted for the candidate (durably, before answering).
        granted: bool,
    },
    /// AppendEntries (§5.3): entries after `prev_index`, or none (a heartbeat).
    Append {
        /// The leader's term.
        term: Term,
        /// The index of the entry just before `entries`.
        prev_index: Index,
        /// Its term: the follower accepts only if its own entry there has this term.
        prev_term: Term,
        /// The entries, in index order from `prev_index + 1`.
        entries: Vec<Entry<SM>>,
        /// The leader's commit index.
        commit: Index,
        /// The leader's read round, echoed in the reply.
        round: u64,
        /// The end of the leader's log: a replica rejoining after losing its storage votes
        /// again only once its log reaches it (it then holds every entry it may have helped
        /// commit before the loss).
        leader_last: Index,
    },
    /// The answer to an [`RaftMsg::Append`].
    AppendReply {
        /// The follower's term.
        term: Term,
        /// Whether the entries were accepted (the log matched at `prev`).
        ok: bool,
        /// The `prev_index` of the append answered, so the leader can tell a stale rejection.
        prev: Index,
        /// On success the last index known to match the leader's; on failure a hint: the
        /// leader should retry from `last + 1`.
        last: Index,
        /// The leader's read round, echoed.
        round: u64,
        /// The follower's commit index once it handled the append.
        commit: Index,
        /// The follower lost its storage and is rejoining: its log is only what it received
        /// since, so what the leader recorded as matched may be gone.
        lost: bool,
    },
    /// A chunk of the leader's snapshot.
    Snapshot {
        /// The leader's term.
        term: Term,
        /// The last index the snapshot covers.
        index: Index,
        /// The term of the entry at `index`.
        last_term: Term,
        /// The chain hash at `index` (see [`chain`]).
        chain: u64,
        /// Where this chunk starts in the snapshot's bytes.
        offset: u64,
        /// The snapshot's size in bytes.
        total: u64,
        /// The chunk's bytes.
        data: Vec<u8>,
        /// The leader's read round, echoed.
        round: u64,
    },
    /// The answer to a [`RaftMsg::Snapshot`] chunk.
    SnapshotReply {
        /// The follower's term.
        term: Term,
        /// The snapshot's last index, as the chunk gave it.
        index: Index,
        /// The next offset wanted; `total` when the snapshot is installed.
        next: u64,
        /// The leader's read round, echoed.
        round: u64,
    },
    /// Leader → a follower whose log matches its own to the end: stand now (a leadership
    /// transfer, §3.10 of the thesis).
    TimeoutNow {
        /// The leader's term.
        term: Term,
    },
    /// A client's operations, numbered in its session.
    Request {
        /// The client's session.
        session: u64,
        /// The client has every result below this sequence number: the replicas may forget them.
        acked_below: u64,
        /// `(sequence number, operation)`, in order.
        ops: Vec<(u64, Op<SM>)>,
    },
    /// The leader's answers to a session's operations.
    Reply {
        /// The client's session.
        session: u64,
        /// `(sequence number, outcome)`.
        results: Vec<(u64, Outcome<SM>)>,
    },
    /// Not the leader: try `leader` if known.
    Redirect {
        /// The client's session.
        session: u64,
        /// The leader the replica knows of, if any.
        leader: Option<NodeId>,
    },
}

impl<SM: StateMachine> RaftMsg<SM> {
    /// The message with every node id it carries renamed, node `i` becoming `to[i]`, or
    /// `None` if it carries none (only a redirection names a replica: who sent a vote or an
    /// append is the sender, not a field). For the explorer's symmetry reduction.
    pub fn renamed(&self, to: &[NodeId]) -> Option<Self> {
        match self {
            RaftMsg::Redirect { session, leader: Some(l) } => {
                Some(RaftMsg::Redirect { session: *session, leader: Some(to[l.index()]) })
            }
            _ => None,
        }
    }
}

impl RaftObs {
    /// The observation with every node id it carries renamed, node `i` becoming `to[i]`, or
    /// `None` if it carries none (a vote's candidate, a restored vote). For the explorer's
    /// symmetry reduction.
    pub fn renamed(&self, to: &[NodeId]) -> Option<Self> {
        match self {
            RaftObs::Voted { term, candidate } => {
                Some(RaftObs::Voted { term: *term, candidate: to[candidate.index()] })
            }
            RaftObs::Restored { voted_for: Some(v), term, base, log, rejoining } => Some(RaftObs::Restored {
                term: *term,
                voted_for: Some(to[v.index()]),
                base: *base,
                log: log.clone(),
                rejoining: *rejoining,
            }),
            _ => None,
        }
    }
}

impl<SM: StateMachine> agora_core::Message for RaftMsg<SM> {
    fn kind(&self) -> &'static str {
        match self {
            RaftMsg::PreVote { .. } => "PRE-VOTE",
            RaftMsg::PreVoteReply { .. } => "PRE-VOTE-REPLY",
            RaftMsg::Vote { .. } => "VOTE",
            RaftMsg::VoteReply { .. } => "VOTE-REPLY",
            RaftMsg::Append { entries, .. } if entries.is_empty() => "HEARTBEAT",
            RaftMsg::Append { .. } => "APPEND",
            RaftMsg::AppendReply { .. } => "APPEND-REPLY",
            RaftMsg::Snapshot { .. } => "SNAPSHOT",
            RaftMsg::SnapshotReply { .. } => "SNAPSHOT-REPLY",
            RaftMsg::TimeoutNow { .. } => "TIMEOUT-NOW",
            RaftMsg::Request { .. } => "REQUEST",
            RaftMsg::Reply { .. } => "REPLY",
            RaftMsg::Redirect { .. } => "REDIRECT",
        }
    }
}

/// Raft's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RaftTimer {
    /// Follower or candidate: no leader heard from; start an election.
    Election,
    /// Leader: heartbeat, retransmit, start a read round.
    Heartbeat,
    /// Client: no answer; retry with another replica.
    ClientRetry,
    /// Replica: the snapshot it asked to be written is durable.
    SnapshotWritten,
    /// Leader: its log up to `index`, appended while it led in `term`, is durable.
    Synced {
        /// The term it led in when it asked.
        term: Term,
        /// Its last index then.
        index: Index,
    },
}

/// What replicas and clients report, for [`checker::RaftChecker`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RaftObs {
    /// A replica (re)started with this durable state: its snapshot `(index, term, chain)` and
    /// its log after it, `(term, chain)` per entry; `rejoining` if it lost its storage and
    /// must catch up before it votes.
    Restored {
        /// The durable current term.
        term: Term,
        /// The durable vote in that term.
        voted_for: Option<NodeId>,
        /// The snapshot: `(last index, its term, its chain hash)`.
        base: (Index, Term, u64),
        /// `(term, chain hash)` of each entry after the snapshot.
        log: Vec<(Term, u64)>,
        /// It lost its storage and must catch up before it votes.
        rejoining: bool,
    },
    /// Voted for `candidate` in `term`.
    Voted {
        /// The term of the vote.
        term: Term,
        /// The candidate voted for.
        candidate: NodeId,
    },
    /// A replica that lost its storage caught up with the leader of `term` to `index`, the
    /// end of that leader's log when first heard: it votes again, in later terms only.
    Rejoined {
        /// The leader's term.
        term: Term,
        /// The index caught up to.
        index: Index,
    },
    /// Became leader of `term`.
    Leader {
        /// The term it leads.
        term: Term,
    },
    /// Stopped leading.
    SteppedDown {
        /// The term it led.
        term: Term,
    },
    /// Wrote entries `(term, chain)` from index `first`, replacing any there and after.
    Appended {
        /// The index of the first entry written.
        first: Index,
        /// `(term, chain hash)` of each entry written.
        entries: Vec<(Term, u64)>,
    },
    /// Its own snapshot, which ends at `index`, is durable and the log before it compacted.
    Snapshotted {
        /// The snapshot's last index.
        index: Index,
        /// The chain hash at `index`.
        chain: u64,
    },
    /// Installed the leader's snapshot, which ends at `index`.
    Installed {
        /// The snapshot's last index.
        index: Index,
        /// The term of the entry at `index`.
        term: Term,
        /// The chain hash at `index`.
        chain: u64,
    },
    /// The leader of `term` advanced its commit index to `index`.
    Committed {
        /// The leader's term.
        term: Term,
        /// The new commit index.
        index: Index,
        /// The chain hash at `index`: what was committed.
        chain: u64,
    },
    /// Applied entry `index`: the sessions and sequence numbers that took effect (not
    /// duplicates), and a digest of every result.
    Applied {
        /// The entry applied.
        index: Index,
        /// Its chain hash.
        chain: u64,
        /// `(session, sequence number)` of each command applied for the first time.
        fresh: Vec<(u64, u64)>,
        /// A digest of every result the entry produced.
        results: u64,
    },
    /// A client got the result of command `seq`.
    Acked {
        /// The client's session.
        session: u64,
        /// The command's sequence number.
        seq: u64,
        /// Where the command was applied.
        pos: Pos,
    },
    /// A client sent query `seq` for the first time.
    ReadBegin {
        /// The client's session.
        session: u64,
        /// The query's sequence number.
        seq: u64,
    },
    /// A client got the answer to query `seq`, read at `index`.
    ReadDone {
        /// The client's session.
        session: u64,
        /// The query's sequence number.
        seq: u64,
        /// The read index the answer was read at.
        index: Index,
    },
    /// A client has every answer it asked for.
    ClientDone {
        /// The client's session.
        session: u64,
    },
}

/// What the Raft core needs of its host: a clock, randomness, and effects. Any protocol whose
/// message, timer and observation types wrap Raft's gets it for its [`Context`].
pub trait Io<SM: StateMachine> {
    /// The node's clock.
    fn now(&self) -> Time;
    /// The node's seeded random source (election timeouts).
    fn rng(&mut self) -> &mut Rng;
    /// Sends a Raft message to `to`.
    fn send(&mut self, to: NodeId, msg: RaftMsg<SM>);
    /// Sends a Raft message to `to` that may leave before the step's writes are durable.
    fn send_early(&mut self, to: NodeId, msg: RaftMsg<SM>);
    /// Sets (or resets) a Raft timer to fire `after` from now.
    fn set_timer(&mut self, timer: RaftTimer, after: Duration);
    /// Cancels a Raft timer, if pending.
    fn cancel_timer(&mut self, timer: RaftTimer);
    /// Durably writes `value` under `key`, before any message of the step leaves.
    fn persist(&mut self, key: String, value: Vec<u8>);
    /// Durably removes `key`.
    fn unpersist(&mut self, key: String);
    /// Durably removes every key in `from..to` (a compacted log prefix).
    fn unpersist_range(&mut self, from: String, to: String);
    /// A write off the replica's path; `done` fires once it is durable.
    fn persist_later(&mut self, key: String, value: Deferred, done: RaftTimer);
    /// Fires `done` once the writes so far are durable.
    fn when_synced(&mut self, done: RaftTimer);
    /// Reports an observation for the checker.
    fn observe(&mut self, obs: RaftObs);
}

impl<P, SM> Io<SM> for Context<'_, P>
where
    P: Protocol,
    SM: StateMachine,
    P::Msg: From<RaftMsg<SM>>,
    P::Timer: From<RaftTimer>,
    P::Obs: From<RaftObs>,
{
    fn now(&self) -> Time {
        Context::now(self)
    }
    fn rng(&mut self) -> &mut Rng {
        Context::rng(self)
    }
    fn send(&mut self, to: NodeId, msg: RaftMsg<SM>) {
        Context::send(self, to, msg.into())
    }
    fn send_early(&mut self, to: NodeId, msg: RaftMsg<SM>) {
        Context::send_early(self, to, msg.into())
    }
    fn set_timer(&mut self, timer: RaftTimer, after: Duration) {
        Context::set_timer(self, timer.into(), after)
    }
    fn cancel_timer(&mut self, timer: RaftTimer) {
        Context::cancel_timer(self, timer.into())
    }
    fn persist(&mut self, key: String, value: Vec<u8>) {
        self.persist_bytes(key, value)
    }
    fn unpersist(&mut self, key: String) {
        Context::unpersist(self, key)
    }
    fn unpersist_range(&mut self, from: String, to: String) {
        Context::unpersist_range(self, from, to)
    }
    fn persist_later(&mut self, key: String, value: Deferred, done: RaftTimer) {
        Context::persist_later(self, key, value, done.into())
    }
    fn when_synced(&mut self, done: RaftTimer) {
        Context::when_synced(self, done.into())
    }
    fn observe(&mut self, obs: RaftObs) {
        Context::observe(self, obs.into())
    }
}

/// The chain hash of an entry: it covers the entry and, through `prev`, every entry before
/// it, so two logs with the same chain at an index hold the same entries up to it. Replicas
/// report chains; the checker compares them.
pub fn chain(prev: u64, term: Term, encoded_body: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = std::hash::DefaultHasher::new();
    h.write_u64(prev);
    h.write_u64(term);
    h.write(encoded_body);
    h.finish()
}
