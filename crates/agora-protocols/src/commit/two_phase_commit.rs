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

use super::{CommitChecker, CommitObs, COORDINATOR};
use agora_core::{Checker, Context, Corrupt, Message, NodeId, Protocol, Setup, Stable, Time};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    VoteReq,
    Vote { yes: bool },
    Decision { commit: bool },
    Ack,
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// Coordinator: votes are overdue.
    Votes,
    /// Coordinator: resend the decision to participants that have not acknowledged it.
    Resend,
    /// Participant: the decision is overdue.
    Uncertain,
}

const BEGUN: &str = "begun";
const VOTE: &str = "vote";
const DECISION: &str = "decision";

pub struct TwoPhaseCommit {
    id: NodeId,
    n: usize,
    timeout: Duration,
    /// This participant's vote (its input).
    wants_yes: bool,
    /// Persisted state.
    begun: bool,
    vote: Option<bool>,
    decision: Option<bool>,
    /// Volatile, coordinator only.
    votes: Vec<Option<bool>>,
    acked: Vec<bool>,
    /// Whether this node reported being blocked since it last learnt something.
    blocked: bool,
    restarted: bool,
}

impl TwoPhaseCommit {
    fn participants(&self) -> impl Iterator<Item = NodeId> {
        (1..self.n as u32).map(NodeId)
    }

    fn decide(&mut self, ctx: &mut Context<'_, Self>, commit: bool) {
        if self.decision.is_some() {
            return;
        }
        self.decision = Some(commit);
        ctx.persist(DECISION, &commit);
        ctx.observe(CommitObs::Decided { commit });
        if self.id == COORDINATOR {
            ctx.cancel_timer(Timer::Votes);
            self.send_decision(ctx);
        } else {
            ctx.cancel_timer(Timer::Uncertain);
        }
    }

    /// Coordinator: the decision to every participant that has not acknowledged it.
    fn send_decision(&mut self, ctx: &mut Context<'_, Self>) {
        let Some(commit) = self.decision else { return };
        let to: Vec<NodeId> = self.participants().filter(|p| !self.acked[p.index()]).collect();
        if to.is_empty() {
            ctx.cancel_timer(Timer::Resend);
            ctx.op_end(0);
            return;
        }
        ctx.multicast(to, Msg::Decision { commit });
        ctx.set_timer(Timer::Resend, self.timeout);
    }
}

impl Protocol for TwoPhaseCommit {
    type Msg = Msg;
    type Timer = Timer;
    type Obs = CommitObs;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        if let (true, Some(commit)) = (self.restarted, self.decision) {
            ctx.observe(CommitObs::Restored { commit });
        }
        if self.id == COORDINATOR {
            match (self.begun, self.decision) {
                (false, _) => {
                    self.begun = true;
                    ctx.persist(BEGUN, &true);
                    ctx.op_begin(0);
                    ctx.multicast(self.participants().collect(), Msg::VoteReq);
                    ctx.set_timer(Timer::Votes, self.timeout);
                }
                // Recovered with a decision: finish telling everyone.
                (true, Some(_)) => self.send_decision(ctx),
                // Recovered without one: presumed abort.
                (true, None) => self.decide(ctx, false),
            }
        } else if self.vote == Some(true) && self.decision.is_none() {
            // Recovered uncertain: ask at once.
            ctx.broadcast(Msg::DecisionReq);
            ctx.set_timer(Timer::Uncertain, self.timeout);
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: Msg) {
        match msg {
            Msg::VoteReq if self.id != COORDINATOR => match (self.vote, self.decision) {
                // Already told the outcome (the request was overtaken): vote to match it.
                (None, Some(commit)) => {
                    self.vote = Some(commit);
                    ctx.persist(VOTE, &commit);
                    ctx.send(from, Msg::Vote { yes: commit });
                }
                (None, None) => {
                    let yes = self.wants_yes;
                    self.vote = Some(yes);
                    ctx.persist(VOTE, &yes);
                    ctx.observe(CommitObs::Voted { yes });
                    if yes {
                        ctx.set_timer(Timer::Uncertain, self.timeout);
                    } else {
                        self.decide(ctx, false);
                    }
                    ctx.send(from, Msg::Vote { yes });
                }
                // A retransmitted request: repeat the vote.
                (Some(yes), _) => ctx.send(from, Msg::Vote { yes }),
            },
            Msg::Vote { yes } if self.id == COORDINATOR => {
                if self.decision.is_some() {
                    // A late vote: the participant still needs the decision.
                    self.send_decision(ctx);
                    return;
                }
                self.votes[from.index()] = Some(yes);
                if !yes {
                    self.decide(ctx, false);
                } else if self.participants().all(|p| self.votes[p.index()] == Some(true)) {
                    self.decide(ctx, true);
                }
            }
            Msg::Decision { commit } if self.id != COORDINATOR => {
                self.decide(ctx, commit);
                if from == COORDINATOR {
                    ctx.send(from, Msg::Ack);
                }
            }
            Msg::Ack if self.id == COORDINATOR => {
                self.acked[from.index()] = true;
                if self.participants().all(|p| self.acked[p.index()]) {
                    ctx.cancel_timer(Timer::Resend);
                    ctx.op_end(0);
                }
            }
            Msg::DecisionReq => {
                if let Some(commit) = self.decision {
                    ctx.send(from, Msg::Decision { commit });
                }
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, timer: Timer) {
        match timer {
            Timer::Votes => {
                if self.decision.is_none() {
                    self.decide(ctx, false);
                }
            }
            Timer::Resend => self.send_decision(ctx),
            Timer::Uncertain => {
                if self.decision.is_none() {
                    if !self.blocked {
                        self.blocked = true;
                        ctx.observe(CommitObs::Blocked);
                    }
                    ctx.broadcast(Msg::DecisionReq);
                    ctx.set_timer(Timer::Uncertain, self.timeout);
                }
            }
        }
    }
}

pub struct TwoPhaseCommitSetup {
    pub nodes: usize,
    pub no_votes: Vec<u32>,
    pub timeout: Duration,
}

impl Setup for TwoPhaseCommitSetup {
    type Node = TwoPhaseCommit;

    fn name(&self) -> &'static str {
        "2pc"
    }

    fn nodes(&self) -> usize {
        self.nodes
    }

    fn build(&self, id: NodeId, stable: &Stable) -> Result<TwoPhaseCommit, Corrupt> {
        let get = |k| stable.load::<bool>(k);
        Ok(TwoPhaseCommit {
            id,
            n: self.nodes,
            timeout: self.timeout,
            wants_yes: !self.no_votes.contains(&id.0),
            begun: get(BEGUN)?.unwrap_or(false),
            vote: get(VOTE)?,
            decision: get(DECISION)?,
            votes: vec![None; self.nodes],
            acked: vec![false; self.nodes],
            blocked: false,
            restarted: !stable.is_empty(),
        })
    }

    fn checker(&self) -> Box<dyn Checker<TwoPhaseCommit>> {
        Box::new(CommitChecker::new(self.nodes, true, settle(self.timeout)))
    }
}

/// How long after the last fault every live node must have decided: a few timeouts.
pub(super) fn settle(timeout: Duration) -> Time {
    Time(timeout.as_nanos() as u64 * 10)
}
