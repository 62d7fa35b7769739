//! `ring-election`: Chang and Roberts' election on a unidirectional ring (Chang & Roberts,
//! *An Improved Algorithm for Decentralized Extrema-Finding in Circular Configurations of
//! Processes*, CACM 1979), with hop-by-hop acknowledgements so that the ring heals around
//! crashed nodes.
//!
//! **Algorithm.** Nodes form the ring 0 → 1 → … → N−1 → 0. An initiator marks itself a
//! participant and sends ELECTION(its id) to its successor. A node receiving ELECTION(j)
//! forwards it if j is larger than its id; if j is smaller it replaces it with its own id,
//! unless it already participates, in which case it drops it; if j is its own id, it has won:
//! it sends ELECTED(id, term) around the ring, which every node records and forwards until it
//! returns to the winner. ELECTION also carries the highest term of every node it passes, so
//! the winner's term is newer than any in use. Every hop is acknowledged (ACK); a node whose successor does not
//! acknowledge within half a timeout skips it and sends to the next, so crashed nodes drop out
//! of the ring. As in `bully`, the leader heartbeats and followers that miss it start a new
//! election; `--start S` picks the single initiator of the first election (all nodes initiate
//! when it is not given).
//!
//! **Message complexity** (ELECTION and ELECTED; each hop adds one ACK, counted apart by type):
//! with a single initiator s, its id travels up to the highest node (N−1−s hops, replaced at
//! each by a larger id), the highest id makes a full circle (N hops), then ELECTED circles once
//! (N hops): (N−1−s) + 2N. Best case, the highest node initiates: 2N; worst single initiator,
//! node 0: 3N−1. With every node initiating on this ascending ring: N + (N−1) ELECTION and N
//! ELECTED = 3N−1. The O(N²) worst case, N(N+1)/2 ELECTION, needs ids descending along the
//! ring, which this ring order does not produce (Chang & Roberts 1979; Lynch 1996, §3.3).
//!
//! **Tolerates** crash-stop failures (the ring skips silent nodes; heartbeats restart
//! elections) and duplication, on a synchronous network; after restarts, live nodes again
//! converge on the highest. Its terms are not backed by a quorum: if every node that knew the
//! newest term is down while an election runs, the winner can announce a term already used —
//! `agora check ring-election --random-crashes 3` finds such seeds, and the checker reports two
//! leaders in one term (a majority vote, as in Raft, is what closes this gap). Loss can make a
//! node skip a live successor; partitions can elect one leader per side.

use super::{heartbeat, ElectionChecker, ElectionObs, View};
use agora_core::{Context, Corrupt, Message, NodeId, Protocol, Stable};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The protocol's messages.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Msg {
    /// Passed to the successor: started by an initiator with its own id, forwarded while the
    /// candidate is higher than the receiver's id, replaced by a higher receiver's id (or
    /// dropped, if that receiver already participates). A node that gets its own id back has
    /// won. `id` names this ring message (creator, counter) so that network duplicates are
    /// dropped.
    Election {
        /// The highest id the message has met so far: the candidate for leader.
        candidate: u32,
        /// The highest term of every node the message has passed; the winner announces the
        /// next one.
        term: u64,
        /// This message's name: (creating node, its counter).
        id: (u32, u64),
    },
    /// Sent round the ring by the winner: each node follows `leader` and forwards it, until it
    /// is back at the winner (or at a node that already passed it on).
    Elected {
        /// The winner's id.
        leader: u32,
        /// The winner's new term.
        term: u64,
        /// This message's name: (creating node, its counter).
        id: (u32, u64),
    },
    /// Returned to the predecessor for every ELECTION or ELECTED hop; a successor that does not
    /// acknowledge within half a timeout is skipped.
    Ack {
        /// The sequence number of the hop acknowledged (its [`Envelope::seq`]).
        seq: u64,
    },
    /// Broadcast by the leader every quarter timeout (not acknowledged); a follower that misses
    /// them starts an election, and a receiver with a higher id than the leader starts one at
    /// once.
    Heartbeat {
        /// The leader's term.
        term: u64,
    },
}

/// A hop awaiting its ACK.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct Hop {
    seq: u64,
    msg: Msg,
    to: u32,
}

/// A ring message with its hop sequence number, for acknowledgement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The hop's sequence number, acknowledged by the next node.
    pub seq: u64,
    /// The ring message.
    pub msg: Msg,
}

kinds!(Msg { Election => "ELECTION", Elected => "ELECTED", Ack => "ACK", Heartbeat => "HEARTBEAT" });

impl Message for Envelope {
    fn kind(&self) -> &'static str {
        self.msg.kind()
    }
}

/// The protocol's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    /// The successor did not acknowledge hop `seq`.
    HopTimeout(u64),
    /// No heartbeat came from the leader, or the election under way did not finish, in time:
    /// suspect the leader and initiate an election.
    LeaderSilent,
    /// Leader: time to broadcast HEARTBEAT.
    Beat,
}

/// One node of the ring election.
#[derive(Clone, Hash)]
pub struct RingElection {
    id: NodeId,
    n: usize,
    /// The term, the leader and the failure detector (the single initiator, if any, notices
    /// first).
    view: View,
    participant: bool,
    /// Hops sent and not yet acknowledged.
    pending: Vec<Hop>,
    next_seq: u64,
    /// Successors that did not acknowledge: skipped until heard from again.
    suspected: Vec<bool>,
    /// The last announcement this node passed on, so that none circles forever.
    forwarded_elected: Option<(u32, u64)>,
    /// Ring messages recently handled, by id: a duplicate is acknowledged and dropped.
    seen: std::collections::VecDeque<(u32, u64)>,
    /// Counter for the ids of ring messages this node creates.
    created: u64,
}

impl RingElection {
    /// Node `id`, with the term it persisted in an earlier life.
    fn new(setup: &RingElectionSetup, id: NodeId, stable: &Stable) -> Result<Self, Corrupt> {
        let fast = setup.starter.is_none_or(|s| s == id);
        Ok(RingElection {
            id,
            n: setup.nodes,
            view: View::new(setup.timeout, fast, stable)?,
            participant: false,
            pending: Vec::new(),
            next_seq: 0,
            suspected: vec![false; setup.nodes],
            forwarded_elected: None,
            seen: std::collections::VecDeque::new(),
            created: 0,
        })
    }

    fn successor(&self, after: u32) -> Option<u32> {
        (1..self.n as u32)
            .map(|k| (after + k) % self.n as u32)
            .find(|s| !self.suspected[*s as usize] && *s != self.id.0)
    }

    fn forward(&mut self, ctx: &mut Context<'_, Self>, msg: Msg) {
        let Some(to) = self.successor(self.id.0) else {
            // Alone in the ring: the message comes straight back.
            self.handle(ctx, self.id, msg);
            return;
        };
        self.next_seq += 1;
        let seq = self.next_seq;
        self.pending.push(Hop { seq, msg: msg.clone(), to });
        ctx.send(NodeId(to), Envelope { seq, msg });
        ctx.set_timer(Timer::HopTimeout(seq), self.view.timeout() / 2);
    }

    fn new_id(&mut self) -> (u32, u64) {
        self.created += 1;
        (self.id.0, self.created)
    }

    /// How long a participant waits for an election to finish: an election crosses the ring up
    /// to three times, so the wait grows with the ring's size.
    fn election_wait(&self, ctx: &mut Context<'_, Self>) -> Duration {
        self.view.detect_after(ctx.rng()) * 2 + self.view.timeout().mul_f64(self.n as f64 / 8.0)
    }

    fn initiate(&mut self, ctx: &mut Context<'_, Self>) {
        if self.participant {
            return;
        }
        self.participant = true;
        self.view.leader = None;
        ctx.observe(ElectionObs::Started { term: self.view.term });
        ctx.op_begin(self.view.term);
        let (term, id) = (self.view.term, self.new_id());
        self.forward(ctx, Msg::Election { candidate: self.id.0, term, id });
        let t = self.election_wait(ctx);
        ctx.set_timer(Timer::LeaderSilent, t);
    }

    fn handle(&mut self, ctx: &mut Context<'_, Self>, _from: NodeId, msg: Msg) {
        // A candidate or a leader named in a message is alive: stop skipping it.
        if let Msg::Election { candidate: c, .. } | Msg::Elected { leader: c, .. } = msg {
            self.suspected[c as usize] = false;
        }
        match msg {
            Msg::Election { candidate, term, id } => {
                // An election is under way: give it time to finish before suspecting anyone.
                let t = self.election_wait(ctx);
                ctx.set_timer(Timer::LeaderSilent, t);
                // The message gathers the highest term of every node it passes, so the winner
                // announces a term newer than any in use, even after a restart.
                let term = self.view.term.max(term);
                if candidate > self.id.0 {
                    self.participant = true;
                    self.forward(ctx, Msg::Election { candidate, term, id });
                } else if candidate < self.id.0 {
                    if self.view.leader == Some(self.id) {
                        // We lead, yet someone elects: a node that missed our announcement, or
                        // that knows a term as new as ours. Announce again, in a newer term.
                        if term >= self.view.term {
                            self.announce(ctx, term + 1);
                        }
                    } else if !self.participant {
                        self.participant = true;
                        let id = self.new_id();
                        self.forward(ctx, Msg::Election { candidate: self.id.0, term, id });
                    }
                } else if self.view.leader != Some(self.id) {
                    // Our own id came back: we have the highest id in the ring.
                    self.announce(ctx, term + 1);
                }
            }
            Msg::Elected { leader, term, id } => {
                let known = self.forwarded_elected.is_some_and(|(l, t)| l == leader && t >= term);
                if leader == self.id.0 || known || term < self.view.term {
                    // Back at the winner, already forwarded here, or stale: it has gone round.
                    return;
                }
                self.forwarded_elected = Some((leader, term));
                self.accept(ctx, NodeId(leader), term);
                self.forward(ctx, Msg::Elected { leader, term, id });
            }
            Msg::Heartbeat { term } => {
                let from = _from;
                if from.0 < self.id.0 && !self.participant {
                    // A lower node leads: this node's id would win; elect again.
                    self.view.term = self.view.term.max(term);
                    self.initiate(ctx);
                } else if from.0 >= self.id.0 && (term >= self.view.term || self.view.leader == Some(from)) {
                    self.accept(ctx, from, term);
                }
            }
            Msg::Ack { .. } => {}
        }
    }

    /// Leads in `term` and sends ELECTED around the ring.
    fn announce(&mut self, ctx: &mut Context<'_, Self>, term: u64) {
        self.participant = false;
        self.view.lead(ctx, term, &[], term - 1);
        let id = self.new_id();
        self.forward(ctx, Msg::Elected { leader: self.id.0, term, id });
        ctx.cancel_timer(Timer::LeaderSilent);
        ctx.set_timer(Timer::Beat, heartbeat(self.view.timeout()));
    }

    fn accept(&mut self, ctx: &mut Context<'_, Self>, leader: NodeId, term: u64) {
        self.participant = false;
        self.view.follow(ctx, (leader, term), &[Timer::Beat], Timer::LeaderSilent, |t| t - 1);
    }
}

impl Protocol for RingElection {
    type Msg = Envelope;
    type Timer = Timer;
    type Obs = ElectionObs;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        if self.view.starts() {
            self.initiate(ctx);
        } else {
            self.view.listen(ctx, Timer::LeaderSilent);
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, env: Envelope) {
        self.suspected[from.index()] = false;
        if let Msg::Ack { seq } = env.msg {
            if let Some(pos) = self.pending.iter().position(|h| h.seq == seq) {
                self.pending.swap_remove(pos);
                ctx.cancel_timer(Timer::HopTimeout(seq));
            }
            return;
        }
        if !matches!(env.msg, Msg::Heartbeat { .. }) {
            ctx.send(from, Envelope { seq: 0, msg: Msg::Ack { seq: env.seq } });
        }
        if let Msg::Election { id, .. } | Msg::Elected { id, .. } = env.msg {
            if self.seen.contains(&id) {
                return; // a duplicate, or a retransmission of a hop we already handled
            }
            if self.seen.len() == 64 {
                self.seen.pop_front();
            }
            self.seen.push_back(id);
        }
        self.handle(ctx, from, env.msg);
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, timer: Timer) {
        match timer {
            Timer::HopTimeout(seq) => {
                if let Some(pos) = self.pending.iter().position(|h| h.seq == seq) {
                    let hop = self.pending.swap_remove(pos);
                    self.suspected[hop.to as usize] = true;
                    self.forward(ctx, hop.msg);
                }
            }
            Timer::LeaderSilent => {
                self.participant = false;
                if let Some(l) = self.view.leader {
                    if l != self.id {
                        self.suspected[l.index()] = true;
                    }
                }
                self.initiate(ctx);
            }
            Timer::Beat => {
                if self.view.leader == Some(self.id) {
                    ctx.broadcast(Envelope { seq: 0, msg: Msg::Heartbeat { term: self.view.term } });
                    ctx.set_timer(Timer::Beat, heartbeat(self.view.timeout()));
                }
            }
        }
    }
}

/// A ring-election run.
pub struct RingElectionSetup {
    /// The cluster size: ids are `0..nodes`.
    pub nodes: usize,
    /// The single initiator of the first election (every node, if none).
    pub starter: Option<NodeId>,
    /// The protocol's timeout.
    pub timeout: Duration,
}

/// The faults under which the checker's safety properties hold: crash-stop and duplication, on a synchronous network.
pub const MODEL: agora_core::FaultModel = agora_core::FaultModel {
    duplication: true,
    crashes: agora_core::Crashes::Stop,
    synchronous: true,
    ..agora_core::FaultModel::NONE
};

setup!(RingElectionSetup => RingElection, "ring-election", model: MODEL, checker: |s| {
    ElectionChecker::new(s.nodes, s.timeout)
});
