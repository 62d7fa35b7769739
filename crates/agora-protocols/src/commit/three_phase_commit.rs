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

use super::two_phase_commit::settle;
use super::{CommitChecker, CommitObs, COORDINATOR};
use agora_core::{Checker, Context, Corrupt, Message, NodeId, Protocol, Setup, Stable};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A participant's state, as reported in the termination protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    /// Has not voted YES (it may still abort on its own).
    Initial,
    /// Voted YES, not pre-committed.
    Uncertain,
    PreCommitted,
    Committed,
    Aborted,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    VoteReq,
    Vote { yes: bool },
    PreCommit,
    Ack,
    Decision { commit: bool },
    HaveCommitted,
    StateReq,
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

const BEGUN: &str = "begun";
const VOTE: &str = "vote";
const PRECOMMIT: &str = "precommit";
const DECISION: &str = "decision";

/// What a recovery (or the original) coordinator is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Leading {
    No,
    Voting,
    PreCommitting,
    CollectingStates,
    Decided,
}

pub struct ThreePhaseCommit {
    id: NodeId,
    n: usize,
    timeout: Duration,
    wants_yes: bool,
    begun: bool,
    vote: Option<bool>,
    precommitted: bool,
    decision: Option<bool>,
    leading: Leading,
    votes: Vec<Option<bool>>,
    acked: Vec<bool>,
    states: Vec<Option<State>>,
    confirmed: Vec<bool>,
    blocked: bool,
    restarted: bool,
}

impl ThreePhaseCommit {
    fn others(&self) -> Vec<NodeId> {
        (0..self.n as u32).map(NodeId).filter(|p| *p != self.id).collect()
    }

    fn state(&self) -> State {
        match (self.decision, self.precommitted, self.vote) {
            (Some(true), _, _) => State::Committed,
            (Some(false), _, _) => State::Aborted,
            (None, true, _) => State::PreCommitted,
            (None, false, Some(true)) => State::Uncertain,
            (None, false, _) => State::Initial,
        }
    }

    /// The wait before a participant takes over: lower ids first.
    fn takeover_delay(&self) -> Duration {
        self.timeout + self.timeout.mul_f64(0.5 * self.id.0 as f64)
    }

    fn decide(&mut self, ctx: &mut Context<'_, Self>, commit: bool) {
        if self.decision.is_some() {
            return;
        }
        self.decision = Some(commit);
        ctx.persist(DECISION, &commit);
        ctx.observe(CommitObs::Decided { commit });
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
        let Some(commit) = self.decision else { return };
        let to: Vec<NodeId> = self.others().into_iter().filter(|p| !self.confirmed[p.index()]).collect();
        if to.is_empty() {
            ctx.cancel_timer(Timer::Resend);
            ctx.op_end(0);
            return;
        }
        ctx.multicast(to, Msg::Decision { commit });
        ctx.set_timer(Timer::Resend, self.timeout);
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
        self.acked = vec![false; self.n];
        for p in (0..self.n).filter(|p| !to.contains(&NodeId(*p as u32))) {
            self.acked[p] = true;
        }
        if to.is_empty() {
            self.decide(ctx, true);
            return;
        }
        ctx.multicast(to, Msg::PreCommit);
        ctx.set_timer(Timer::Acks, self.timeout);
    }

    /// Skeen's termination rules over the states collected.
    fn terminate(&mut self, ctx: &mut Context<'_, Self>) {
        self.states[self.id.index()] = Some(self.state());
        let seen: Vec<(NodeId, State)> =
            (0..self.n).filter_map(|i| self.states[i].map(|s| (NodeId(i as u32), s))).collect();
        if seen.iter().any(|(_, s)| *s == State::Committed) {
            self.decide(ctx, true);
        } else if seen.iter().any(|(_, s)| matches!(s, State::Aborted | State::Initial)) {
            // Someone aborted, or someone never voted YES: nobody can have committed.
            self.decide(ctx, false);
        } else if seen.iter().any(|(_, s)| *s == State::PreCommitted) {
            let uncertain: Vec<NodeId> = seen
                .iter()
                .filter(|(p, s)| *s == State::Uncertain && *p != self.id)
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
        if let (true, Some(commit)) = (self.restarted, self.decision) {
            ctx.observe(CommitObs::Restored { commit });
        }
        if self.decision.is_some() {
            if self.id == COORDINATOR {
                self.leading = Leading::Decided;
                self.send_decision(ctx);
            }
            return;
        }
        if self.id == COORDINATOR && !self.begun {
            self.begun = true;
            ctx.persist(BEGUN, &true);
            ctx.op_begin(0);
            self.leading = Leading::Voting;
            ctx.multicast(self.others(), Msg::VoteReq);
            ctx.set_timer(Timer::Votes, self.timeout);
        } else if self.id == COORDINATOR && !self.precommitted {
            // Recovered before any PRE-COMMIT left: nobody can be pre-committed, so nobody
            // can commit. Abort.
            self.leading = Leading::Decided;
            self.decide(ctx, false);
        } else if self.vote == Some(true) || self.precommitted {
            // Recovered undecided after voting YES (or pre-committing): ask, never decide alone.
            ctx.broadcast(Msg::StateReq);
            ctx.set_timer(Timer::Takeover, self.takeover_delay());
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: Msg) {
        match msg {
            Msg::VoteReq if self.id != COORDINATOR => {
                if self.vote.is_none() {
                    let yes = self.wants_yes && self.decision.is_none();
                    self.vote = Some(yes);
                    ctx.persist(VOTE, &yes);
                    ctx.observe(CommitObs::Voted { yes });
                    if yes {
                        ctx.set_timer(Timer::Takeover, self.takeover_delay());
                    } else {
                        self.decide(ctx, false);
                    }
                }
                ctx.send(from, Msg::Vote { yes: self.vote == Some(true) });
            }
            Msg::Vote { yes } if self.id == COORDINATOR => {
                if self.leading != Leading::Voting {
                    if let Some(commit) = self.decision {
                        ctx.send(from, Msg::Decision { commit });
                    }
                    return;
                }
                self.votes[from.index()] = Some(yes);
                if !yes {
                    self.decide(ctx, false);
                } else if (1..self.n).all(|p| self.votes[p] == Some(true)) {
                    ctx.cancel_timer(Timer::Votes);
                    let all: Vec<NodeId> = self.others();
                    self.start_precommit(ctx, all);
                }
            }
            Msg::PreCommit => {
                if self.decision.is_none() {
                    self.precommit(ctx);
                    ctx.set_timer(Timer::Takeover, self.takeover_delay());
                    ctx.send(from, Msg::Ack);
                } else if let Some(commit) = self.decision {
                    ctx.send(from, Msg::Decision { commit });
                }
            }
            Msg::Ack if self.leading == Leading::PreCommitting => {
                self.acked[from.index()] = true;
                if self.acked.iter().enumerate().all(|(i, a)| *a || i == self.id.index()) {
                    self.decide(ctx, true);
                }
            }
            Msg::Decision { commit } => {
                self.decide(ctx, commit);
                if self.decision == Some(commit) {
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
                if let Some(commit) = self.decision {
                    ctx.send(from, Msg::Decision { commit });
                    return;
                }
                ctx.send(from, Msg::StateIs(self.state()));
                // Someone else is terminating: defer our own takeover, unless we outrank them.
                if from.0 < self.id.0 || self.leading == Leading::No {
                    if self.leading == Leading::CollectingStates && from.0 < self.id.0 {
                        self.leading = Leading::No;
                        ctx.cancel_timer(Timer::States);
                    }
                    if self.vote == Some(true) || self.precommitted {
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
                if self.decision.is_some() {
                    return;
                }
                if !self.blocked {
                    self.blocked = true;
                    ctx.observe(CommitObs::Blocked);
                }
                self.leading = Leading::CollectingStates;
                self.states = vec![None; self.n];
                ctx.multicast(self.others(), Msg::StateReq);
                ctx.set_timer(Timer::States, self.timeout / 2);
            }
            Timer::States => {
                if self.leading == Leading::CollectingStates {
                    self.terminate(ctx);
                }
            }
        }
    }
}

pub struct ThreePhaseCommitSetup {
    pub nodes: usize,
    pub no_votes: Vec<u32>,
    pub timeout: Duration,
}

impl Setup for ThreePhaseCommitSetup {
    type Node = ThreePhaseCommit;

    fn name(&self) -> &'static str {
        "3pc"
    }

    fn nodes(&self) -> usize {
        self.nodes
    }

    fn build(&self, id: NodeId, stable: &Stable) -> Result<ThreePhaseCommit, Corrupt> {
        let get = |k| stable.load::<bool>(k);
        Ok(ThreePhaseCommit {
            id,
            n: self.nodes,
            timeout: self.timeout,
            wants_yes: !self.no_votes.contains(&id.0),
            begun: get(BEGUN)?.unwrap_or(false),
            vote: get(VOTE)?,
            precommitted: get(PRECOMMIT)?.unwrap_or(false),
            decision: get(DECISION)?,
            leading: Leading::No,
            votes: vec![None; self.nodes],
            acked: vec![false; self.nodes],
            states: vec![None; self.nodes],
            confirmed: vec![false; self.nodes],
            blocked: false,
            restarted: !stable.is_empty(),
        })
    }

    fn checker(&self) -> Box<dyn Checker<ThreePhaseCommit>> {
        Box::new(CommitChecker::new(self.nodes, false, settle(self.timeout)))
    }
}
