//! `2pc`: two-phase commit (Gray, *Notes on Data Base Operating Systems*, 1978).
//!
//! **Algorithm.** The coordinator (node 0) persists that the transaction began and sends
//! VOTE-REQ to every participant. A participant persists its vote, then answers YES or NO (a NO
//! voter aborts at once). With every vote YES the coordinator persists COMMIT, otherwise (a NO,
//! or the vote timeout) ABORT, and sends the decision; participants persist it and ACK. The
//! coordinator resends the decision to participants that have not acknowledged it, every
//! timeout, until all have.
//!
//! **Blocking.** A participant that voted YES cannot decide alone: it is *uncertain* until it
//! learns the decision. Past its timeout it reports `Blocked` and asks every node for the
//! decision (DECISION-REQ; the cooperative termination protocol): anyone who knows answers.
//! If the coordinator crashed before anyone learnt the decision, every participant stays
//! blocked until the coordinator recovers — 2PC's blocking window. A recovering coordinator
//! with no persisted decision aborts (presumed abort).
//!
//! **Message complexity.** Failure-free: (N−1) VOTE-REQ + (N−1) votes + (N−1) decisions +
//! (N−1) ACKs = 4(N−1) — 12 for 4 nodes (Bernstein, Hadzilacos & Goodman 1987, §7.3).
//!
//! **Tolerates** crashes and restarts of any node (state is persisted before it is acted on),
//! loss, duplication and reordering (every step is retried or idempotent). It does **not**
//! terminate while the coordinator is down after participants voted YES.

use super::{participant_classes, settle, CommitChecker, CommitObs, Core, COORDINATOR};
use agora_core::{Context, Corrupt, Message, NodeId, Protocol, Stable};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The protocol's messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// Coordinator to every participant, at the start: asks for its vote. Answered again if
    /// it is retransmitted.
    VoteReq,
    /// Participant to coordinator, in answer to VOTE-REQ: its vote (YES or NO), persisted
    /// before it is sent.
    Vote {
        /// Whether the participant votes to commit.
        yes: bool,
    },
    /// The decision (COMMIT or ABORT): sent by the coordinator to every participant that has
    /// not acknowledged it, resent every timeout; also sent by any node that knows it in
    /// answer to DECISION-REQ.
    Decision {
        /// Whether the transaction commits (`false`: it aborts).
        commit: bool,
    },
    /// Participant to coordinator: the decision it received is persisted; the coordinator
    /// stops resending it there.
    Ack,
    /// Broadcast by an uncertain participant (past its timeout, or on restart after voting
    /// YES) asking anyone who knows the decision to send it: the cooperative termination
    /// protocol.
    DecisionReq,
}

impl Message for Msg {
    fn kind(&self) -> &'static str {
        match self {
            Msg::VoteReq => "VOTE-REQ",
            Msg::Vote { yes: true } => "YES",
            Msg::Vote { yes: false } => "NO",
            Msg::Decision { commit: true } => "COMMIT",
            Msg::Decision { commit: false } => "ABORT",
            Msg::Ack => "ACK",
            Msg::DecisionReq => "DECISION-REQ",
        }
    }
}

/// The protocol's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Coordinator: votes are overdue.
    Votes,
    /// Coordinator: resend the decision to participants that have not acknowledged it.
    Resend,
    /// Participant: the decision is overdue.
    Uncertain,
}

/// The coordinator (node 0) or a participant of 2PC.
#[derive(Clone, Hash)]
pub struct TwoPhaseCommit {
    /// Everything a 2PC node has: 3PC's nodes have it too.
    core: Core,
}

impl TwoPhaseCommit {
    /// Node `id`, with what it persisted in an earlier life.
    fn new(setup: &TwoPhaseCommitSetup, id: NodeId, stable: &Stable) -> Result<Self, Corrupt> {
        Ok(TwoPhaseCommit { core: Core::new(id, setup.nodes, &setup.no_votes, setup.timeout, stable)? })
    }

    fn decide(&mut self, ctx: &mut Context<'_, Self>, commit: bool) {
        if !self.core.decide(ctx, commit) {
            return;
        }
        if self.core.id == COORDINATOR {
            ctx.cancel_timer(Timer::Votes);
            self.send_decision(ctx);
        } else {
            ctx.cancel_timer(Timer::Uncertain);
        }
    }

    /// Coordinator: the decision to every participant that has not acknowledged it.
    fn send_decision(&mut self, ctx: &mut Context<'_, Self>) {
        let to: Vec<NodeId> = self.core.participants().filter(|p| !self.core.acked[p.index()]).collect();
        self.core.send_decision(ctx, to, |commit| Msg::Decision { commit }, Timer::Resend);
    }
}

impl Protocol for TwoPhaseCommit {
    type Msg = Msg;
    type Timer = Timer;
    type Obs = CommitObs;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        self.core.restored(ctx);
        if self.core.id == COORDINATOR {
            match (self.core.begun, self.core.decision) {
                (false, _) => {
                    self.core.begin(ctx);
                    ctx.multicast(self.core.participants().collect(), Msg::VoteReq);
                    ctx.set_timer(Timer::Votes, self.core.timeout);
                }
                // Recovered with a decision: finish telling everyone.
                (true, Some(_)) => self.send_decision(ctx),
                // Recovered without one: presumed abort.
                (true, None) => self.decide(ctx, false),
            }
        } else if self.core.vote == Some(true) && self.core.decision.is_none() {
            // Recovered uncertain: ask at once.
            ctx.broadcast(Msg::DecisionReq);
            ctx.set_timer(Timer::Uncertain, self.core.timeout);
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: Msg) {
        match msg {
            Msg::VoteReq if self.core.id != COORDINATOR => match (self.core.vote, self.core.decision) {
                // Already told the outcome (the request was overtaken): vote to match it.
                (None, Some(commit)) => {
                    self.core.record_vote(ctx, commit);
                    ctx.send(from, Msg::Vote { yes: commit });
                }
                (None, None) => {
                    let yes = self.core.wants_yes;
                    self.core.cast(ctx, yes);
                    if yes {
                        ctx.set_timer(Timer::Uncertain, self.core.timeout);
                    } else {
                        self.decide(ctx, false);
                    }
                    ctx.send(from, Msg::Vote { yes });
                }
                // A retransmitted request: repeat the vote.
                (Some(yes), _) => ctx.send(from, Msg::Vote { yes }),
            },
            Msg::Vote { yes } if self.core.id == COORDINATOR => {
                if self.core.decision.is_some() {
                    // A late vote: the participant still needs the decision.
                    self.send_decision(ctx);
                    return;
                }
                self.core.votes[from.index()] = Some(yes);
                if !yes {
                    self.decide(ctx, false);
                } else if self.core.participants().all(|p| self.core.votes[p.index()] == Some(true)) {
                    self.decide(ctx, true);
                }
            }
            Msg::Decision { commit } if self.core.id != COORDINATOR => {
                self.decide(ctx, commit);
                if from == COORDINATOR {
                    ctx.send(from, Msg::Ack);
                }
            }
            Msg::Ack if self.core.id == COORDINATOR => {
                self.core.acked[from.index()] = true;
                if self.core.participants().all(|p| self.core.acked[p.index()]) {
                    ctx.cancel_timer(Timer::Resend);
                    ctx.op_end(0);
                }
            }
            Msg::DecisionReq => {
                if let Some(commit) = self.core.decision {
                    ctx.send(from, Msg::Decision { commit });
                }
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, timer: Timer) {
        match timer {
            Timer::Votes => {
                if self.core.decision.is_none() {
                    self.decide(ctx, false);
                }
            }
            Timer::Resend => self.send_decision(ctx),
            Timer::Uncertain => {
                if self.core.decision.is_none() {
                    self.core.block(ctx);
                    ctx.broadcast(Msg::DecisionReq);
                    ctx.set_timer(Timer::Uncertain, self.core.timeout);
                }
            }
        }
    }
}

/// A 2PC run.
pub struct TwoPhaseCommitSetup {
    /// The cluster size: ids are `0..nodes`.
    pub nodes: usize,
    /// Participants that vote no.
    pub no_votes: Vec<u32>,
    /// The protocol's timeout.
    pub timeout: Duration,
}

/// The faults under which the checker's safety properties hold: every step is persisted, retried or idempotent; it blocks, it never disagrees.
pub const MODEL: agora_core::FaultModel = agora_core::FaultModel::asynchronous(agora_core::Crashes::Recover);

setup!(TwoPhaseCommitSetup => TwoPhaseCommit, "2pc", model: MODEL, checker: |s| {
    CommitChecker::new(s.nodes, true, settle(s.timeout))
}, symmetry: |s| Some(agora_core::Symmetry {
    classes: participant_classes(s.nodes, &s.no_votes),
    rename: |node: &TwoPhaseCommit, to| TwoPhaseCommit { core: node.core.renamed(to) },
    names: None,
}));
