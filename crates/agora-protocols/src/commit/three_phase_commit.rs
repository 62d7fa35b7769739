//! `3pc`: three-phase commit with its termination protocol (Skeen, *Nonblocking Commit
//! Protocols*, SIGMOD 1981; Skeen & Stonebraker, *A Formal Model of Crash Recovery in a
//! Distributed System*, 1983).
//!
//! **Algorithm.** Phase 1: the coordinator (node 0) sends VOTE-REQ; participants persist and
//! send their vote. Phase 2: with every vote YES the coordinator persists *pre-commit* and sends
//! PRE-COMMIT; participants persist it and ACK (a NO or a vote timeout aborts instead). Phase 3:
//! once every participant acknowledged, or the acknowledgement timeout passed (a silent
//! participant has crashed), the coordinator persists COMMIT and sends it; participants persist
//! it and answer HAVE-COMMITTED.
//!
//! **Termination protocol.** A participant that voted YES and hears nothing for its timeout
//! (longer for higher ids, so the lowest live id acts first) becomes the recovery coordinator:
//! it asks every node for its state (STATE-REQ) and, after a round trip, decides by Skeen's
//! rules — anyone committed: COMMIT; anyone aborted: ABORT; anyone pre-committed: send
//! PRE-COMMIT to the uncertain, wait for their ACKs, then COMMIT; all uncertain: ABORT. Nobody
//! commits before every live participant is pre-committed, so the next recovery coordinator,
//! should this one crash too, reaches the same decision. Nodes that hear a STATE-REQ defer
//! their own takeover. A node that recovers from a crash undecided asks for the decision and
//! takes part in the termination protocol, but never decides alone once it voted YES.
//!
//! **Message complexity.** Failure-free: VOTE-REQ, vote, PRE-COMMIT, ACK, COMMIT and
//! HAVE-COMMITTED to or from each of N−1 participants: 6(N−1) — 18 for 4 nodes.
//!
//! **Tolerates** crashes and restarts of any nodes, the coordinator included, without blocking
//! the survivors — provided messages arrive within the timeouts (a synchronous network).
//! It does **not** tolerate partitions or lost messages mistaken for crashes: each side of a
//! partition may then decide differently, the known limit of 3PC.

use super::{settle, CommitChecker, CommitObs, Core, COORDINATOR};
use agora_core::{Context, Corrupt, Message, NodeId, Protocol, Stable};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A participant's state, as reported in the termination protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum State {
    /// Has not voted YES (it may still abort on its own).
    Initial,
    /// Voted YES, not pre-committed.
    Uncertain,
    /// Persisted a PRE-COMMIT (so every participant voted YES), not yet decided.
    PreCommitted,
    /// Decided commit.
    Committed,
    /// Decided abort.
    Aborted,
}

/// The protocol's messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// Coordinator to every participant, phase 1: asks for its vote. Answered again if it
    /// is retransmitted.
    VoteReq,
    /// Participant to coordinator, in answer to VOTE-REQ: its vote (YES or NO), persisted
    /// before it is sent.
    Vote {
        /// Whether the participant votes to commit.
        yes: bool,
    },
    /// Phase 2: the coordinator, once every vote is YES, or a recovery coordinator that found
    /// a pre-committed node, tells participants to pre-commit; they persist it and ACK.
    PreCommit,
    /// Participant to the (recovery) coordinator: it has persisted PRE-COMMIT.
    Ack,
    /// The decision (COMMIT or ABORT): phase 3 from the (recovery) coordinator, resent until
    /// every node confirms it; also the answer of an already decided node to VOTE,
    /// PRE-COMMIT or STATE-REQ.
    Decision {
        /// Whether the transaction commits (`false`: it aborts).
        commit: bool,
    },
    /// To the sender of a decision: it is persisted here (whether commit or abort), so the
    /// sender stops resending it.
    HaveCommitted,
    /// Sent by a participant taking over as recovery coordinator, and by a node that restarts
    /// undecided after voting YES: asks every other node for its [`State`]. It also makes
    /// the receivers defer their own takeover.
    StateReq,
    /// An undecided node's answer to STATE-REQ: its current state (a decided node sends its
    /// decision instead).
    StateIs(State),
}

impl Message for Msg {
    fn kind(&self) -> &'static str {
        match self {
            Msg::VoteReq => "VOTE-REQ",
            Msg::Vote { yes: true } => "YES",
            Msg::Vote { yes: false } => "NO",
            Msg::PreCommit => "PRE-COMMIT",
            Msg::Ack => "ACK",
            Msg::Decision { commit: true } => "COMMIT",
            Msg::Decision { commit: false } => "ABORT",
            Msg::HaveCommitted => "HAVE-COMMITTED",
            Msg::StateReq => "STATE-REQ",
            Msg::StateIs(_) => "STATE",
        }
    }
}

/// The protocol's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Coordinator: votes are overdue.
    Votes,
    /// Coordinator or recovery coordinator: pre-commit acknowledgements are overdue.
    Acks,
    /// Coordinator: resend the decision to nodes that have not confirmed it.
    Resend,
    /// Participant: the next message of the protocol is overdue; take over.
    Takeover,
    /// Recovery coordinator: the state replies are in.
    States,
}

const PRECOMMIT: &str = "precommit";

/// What a recovery (or the original) coordinator is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Leading {
    No,
    Voting,
    PreCommitting,
    CollectingStates,
    Decided,
}

/// The coordinator (node 0) or a participant of 3PC.
#[derive(Clone, Hash)]
pub struct ThreePhaseCommit {
    /// What 2PC's nodes have too.
    core: Core,
    /// Persisted: this node pre-committed.
    precommitted: bool,
    leading: Leading,
    /// Recovery coordinator: the states collected.
    states: Vec<Option<State>>,
    /// (Recovery) coordinator: who confirmed the decision.
    confirmed: Vec<bool>,
}

impl ThreePhaseCommit {
    /// Node `id`, with what it persisted in an earlier life.
    fn new(setup: &ThreePhaseCommitSetup, id: NodeId, stable: &Stable) -> Result<Self, Corrupt> {
        Ok(ThreePhaseCommit {
            core: Core::new(id, setup.nodes, &setup.no_votes, setup.timeout, stable)?,
            precommitted: stable.load(PRECOMMIT)?.unwrap_or(false),
            leading: Leading::No,
            states: vec![None; setup.nodes],
            confirmed: vec![false; setup.nodes],
        })
    }

    fn others(&self) -> Vec<NodeId> {
        (0..self.core.n as u32).map(NodeId).filter(|p| *p != self.core.id).collect()
    }

    fn state(&self) -> State {
        match (self.core.decision, self.precommitted, self.core.vote) {
            (Some(true), _, _) => State::Committed,
            (Some(false), _, _) => State::Aborted,
            (None, true, _) => State::PreCommitted,
            (None, false, Some(true)) => State::Uncertain,
            (None, false, _) => State::Initial,
        }
    }

    /// The wait before a participant takes over: lower ids first.
    fn takeover_delay(&self) -> Duration {
        self.core.timeout + self.core.timeout.mul_f64(0.5 * self.core.id.0 as f64)
    }

    fn decide(&mut self, ctx: &mut Context<'_, Self>, commit: bool) {
        if !self.core.decide(ctx, commit) {
            return;
        }
        ctx.cancel_timer(Timer::Takeover);
        ctx.cancel_timer(Timer::Votes);
        ctx.cancel_timer(Timer::Acks);
        ctx.cancel_timer(Timer::States);
        if self.leading != Leading::No {
            self.leading = Leading::Decided;
            self.send_decision(ctx);
        }
    }

    /// A (recovery) coordinator tells every node that has not confirmed the decision.
    fn send_decision(&mut self, ctx: &mut Context<'_, Self>) {
        let to: Vec<NodeId> = self.others().into_iter().filter(|p| !self.confirmed[p.index()]).collect();
        self.core.send_decision(ctx, to, |commit| Msg::Decision { commit }, Timer::Resend);
    }

    fn precommit(&mut self, ctx: &mut Context<'_, Self>) {
        if !self.precommitted {
            self.precommitted = true;
            ctx.persist(PRECOMMIT, &true);
        }
    }

    /// Sends PRE-COMMIT to `to` and waits for their ACKs.
    fn start_precommit(&mut self, ctx: &mut Context<'_, Self>, to: Vec<NodeId>) {
        self.precommit(ctx);
        self.leading = Leading::PreCommitting;
        self.core.acked = vec![false; self.core.n];
        for p in (0..self.core.n).filter(|p| !to.contains(&NodeId(*p as u32))) {
            self.core.acked[p] = true;
        }
        if to.is_empty() {
            self.decide(ctx, true);
            return;
        }
        ctx.multicast(to, Msg::PreCommit);
        ctx.set_timer(Timer::Acks, self.core.timeout);
    }

    /// Skeen's termination rules over the states collected.
    fn terminate(&mut self, ctx: &mut Context<'_, Self>) {
        self.states[self.core.id.index()] = Some(self.state());
        let seen: Vec<(NodeId, State)> =
            (0..self.core.n).filter_map(|i| self.states[i].map(|s| (NodeId(i as u32), s))).collect();
        if seen.iter().any(|(_, s)| *s == State::Committed) {
            self.decide(ctx, true);
        } else if seen.iter().any(|(_, s)| matches!(s, State::Aborted | State::Initial)) {
            // Someone aborted, or someone never voted YES: nobody can have committed.
            self.decide(ctx, false);
        } else if seen.iter().any(|(_, s)| *s == State::PreCommitted) {
            let uncertain: Vec<NodeId> = seen
                .iter()
                .filter(|(p, s)| *s == State::Uncertain && *p != self.core.id)
                .map(|(p, _)| *p)
                .collect();
            self.start_precommit(ctx, uncertain);
        } else {
            self.decide(ctx, false);
        }
    }
}

impl Protocol for ThreePhaseCommit {
    type Msg = Msg;
    type Timer = Timer;
    type Obs = CommitObs;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        self.core.restored(ctx);
        if self.core.decision.is_some() {
            if self.core.id == COORDINATOR {
                self.leading = Leading::Decided;
                self.send_decision(ctx);
            }
            return;
        }
        if self.core.id == COORDINATOR && !self.core.begun {
            self.core.begin(ctx);
            self.leading = Leading::Voting;
            ctx.multicast(self.others(), Msg::VoteReq);
            ctx.set_timer(Timer::Votes, self.core.timeout);
        } else if self.core.id == COORDINATOR && !self.precommitted {
            // Recovered before any PRE-COMMIT left: nobody can be pre-committed, so nobody
            // can commit. Abort.
            self.leading = Leading::Decided;
            self.decide(ctx, false);
        } else if self.core.vote == Some(true) || self.precommitted {
            // Recovered undecided after voting YES (or pre-committing): ask, never decide alone.
            ctx.broadcast(Msg::StateReq);
            ctx.set_timer(Timer::Takeover, self.takeover_delay());
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: Msg) {
        match msg {
            Msg::VoteReq if self.core.id != COORDINATOR => {
                if self.core.vote.is_none() {
                    let yes = self.core.wants_yes && self.core.decision.is_none();
                    self.core.cast(ctx, yes);
                    if yes {
                        ctx.set_timer(Timer::Takeover, self.takeover_delay());
                    } else {
                        self.decide(ctx, false);
                    }
                }
                ctx.send(from, Msg::Vote { yes: self.core.vote == Some(true) });
            }
            Msg::Vote { yes } if self.core.id == COORDINATOR => {
                if self.leading != Leading::Voting {
                    if let Some(commit) = self.core.decision {
                        ctx.send(from, Msg::Decision { commit });
                    }
                    return;
                }
                self.core.votes[from.index()] = Some(yes);
                if !yes {
                    self.decide(ctx, false);
                } else if (1..self.core.n).all(|p| self.core.votes[p] == Some(true)) {
                    ctx.cancel_timer(Timer::Votes);
                    let all: Vec<NodeId> = self.others();
                    self.start_precommit(ctx, all);
                }
            }
            Msg::PreCommit => {
                if self.core.decision.is_none() {
                    self.precommit(ctx);
                    ctx.set_timer(Timer::Takeover, self.takeover_delay());
                    ctx.send(from, Msg::Ack);
                } else if let Some(commit) = self.core.decision {
                    ctx.send(from, Msg::Decision { commit });
                }
            }
            Msg::Ack if self.leading == Leading::PreCommitting => {
                self.core.acked[from.index()] = true;
                if self.core.acked.iter().enumerate().all(|(i, a)| *a || i == self.core.id.index()) {
                    self.decide(ctx, true);
                }
            }
            Msg::Decision { commit } => {
                self.decide(ctx, commit);
                if self.core.decision == Some(commit) {
                    ctx.send(from, Msg::HaveCommitted);
                }
            }
            Msg::HaveCommitted => {
                self.confirmed[from.index()] = true;
                if self.leading == Leading::Decided && self.others().iter().all(|p| self.confirmed[p.index()])
                {
                    ctx.cancel_timer(Timer::Resend);
                    ctx.op_end(0);
                }
            }
            Msg::StateReq => {
                if let Some(commit) = self.core.decision {
                    ctx.send(from, Msg::Decision { commit });
                    return;
                }
                ctx.send(from, Msg::StateIs(self.state()));
                // Someone else is terminating: defer our own takeover, unless we outrank them.
                if from.0 < self.core.id.0 || self.leading == Leading::No {
                    if self.leading == Leading::CollectingStates && from.0 < self.core.id.0 {
                        self.leading = Leading::No;
                        ctx.cancel_timer(Timer::States);
                    }
                    if self.core.vote == Some(true) || self.precommitted {
                        ctx.set_timer(Timer::Takeover, self.takeover_delay() * 2);
                    }
                }
            }
            Msg::StateIs(state) if self.leading == Leading::CollectingStates => {
                self.states[from.index()] = Some(state);
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, timer: Timer) {
        match timer {
            Timer::Votes => {
                if self.leading == Leading::Voting {
                    self.decide(ctx, false);
                }
            }
            Timer::Acks => {
                // Silent participants crashed (synchronous network): commit, they learn later.
                if self.leading == Leading::PreCommitting {
                    self.decide(ctx, true);
                }
            }
            Timer::Resend => self.send_decision(ctx),
            Timer::Takeover => {
                if self.core.decision.is_some() {
                    return;
                }
                self.core.block(ctx);
                self.leading = Leading::CollectingStates;
                self.states = vec![None; self.core.n];
                ctx.multicast(self.others(), Msg::StateReq);
                ctx.set_timer(Timer::States, self.core.timeout / 2);
            }
            Timer::States => {
                if self.leading == Leading::CollectingStates {
                    self.terminate(ctx);
                }
            }
        }
    }
}

/// A 3PC run.
pub struct ThreePhaseCommitSetup {
    /// The cluster size: ids are `0..nodes`.
    pub nodes: usize,
    /// Participants that vote no.
    pub no_votes: Vec<u32>,
    /// The protocol's timeout.
    pub timeout: Duration,
}

/// The faults under which the checker's safety properties hold: crash-recovery on a synchronous network; a partition or a lost message mistaken for a crash splits the decision.
pub const MODEL: agora_core::FaultModel = agora_core::FaultModel {
    crashes: agora_core::Crashes::Recover,
    synchronous: true,
    ..agora_core::FaultModel::NONE
};

setup!(ThreePhaseCommitSetup => ThreePhaseCommit, "3pc", model: MODEL, checker: |s| {
    CommitChecker::new(s.nodes, false, settle(s.timeout))
});
