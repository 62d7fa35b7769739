//! Atomic commit: two-phase commit ([`two_phase_commit`]) and three-phase commit
//! ([`three_phase_commit`]), and the checker they share.
//!
//! Node 0 coordinates one transaction; nodes 1..N are participants, each voting yes unless it
//! is listed in `--no-votes`. Every node reports its vote and its decision.
//!
//! **Properties** (Bernstein, Hadzilacos & Goodman, *Concurrency Control and Recovery in
//! Database Systems*, 1987, §7.2, AC1–AC5):
//! - *atomicity* (always): no node commits while another aborts (AC1);
//! - *validity* (always): a node commits only if every participant voted yes (AC3);
//! - *non-triviality* (at end, no crashes and no loss, timers that fire only after their
//!   delays — not when the explorer lets any timer fire at any step, where the coordinator's
//!   vote timeout may beat a vote: [`agora_core::EndState::timely`]): if every participant
//!   voted yes, the decision is commit (AC4);
//! - *termination* (at end, no loss, long enough after the last fault): every live node has
//!   decided — for 2PC only when the coordinator is up at the end, since 2PC blocks while it is
//!   down; 3PC's termination protocol decides without it.

mod params;
pub mod three_phase_commit;
pub mod two_phase_commit;

use agora_core::{
    Checker, Context, Corrupt, EndState, NodeId, NotJudged, Property, PropertyKind, Protocol, Stable, Time,
    Violation,
};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The coordinator.
pub const COORDINATOR: NodeId = NodeId(0);

/// 2PC's interchangeable nodes: the participants voting yes, and those voting no. A
/// participant's behaviour depends on its vote and never on its id; messages, timers, storage
/// and observations name no participant, and atomicity and validity single none out. (3PC's
/// participants are not interchangeable: the lowest live id takes over as coordinator.)
pub(super) fn participant_classes(nodes: usize, no_votes: &[u32]) -> Vec<Vec<NodeId>> {
    let (no, yes): (Vec<NodeId>, Vec<NodeId>) =
        (1..nodes as u32).map(NodeId).partition(|p| no_votes.contains(&p.0));
    [yes, no].into_iter().filter(|class| class.len() > 1).collect()
}

const BEGUN: &str = "begun";
const VOTE: &str = "vote";
const DECISION: &str = "decision";

/// What a node of either commit protocol is, whatever its role: its place, its input, what it
/// persisted (each written before it is acted on) and the coordinator's tallies.
#[derive(Clone, Hash)]
pub(super) struct Core {
    /// This node.
    pub(super) id: NodeId,
    /// The cluster size: the coordinator and N−1 participants.
    pub(super) n: usize,
    /// The protocol's timeout (votes, acknowledgements, resending, blocking).
    pub(super) timeout: Duration,
    /// This participant's vote (its input).
    pub(super) wants_yes: bool,
    /// Persisted: the coordinator began the transaction.
    pub(super) begun: bool,
    /// Persisted: this participant's vote.
    pub(super) vote: Option<bool>,
    /// Persisted: the decision.
    pub(super) decision: Option<bool>,
    /// Volatile, coordinator only: the participants' votes.
    pub(super) votes: Vec<Option<bool>>,
    /// Volatile, coordinator only: who acknowledged.
    pub(super) acked: Vec<bool>,
    /// Whether this node reported being blocked since it last learnt something.
    blocked: bool,
    /// Whether this node was rebuilt from what it persisted.
    restarted: bool,
}

impl Core {
    /// Node `id` of `nodes`, voting no if listed in `no_votes`, with what it persisted.
    pub(super) fn new(
        id: NodeId,
        nodes: usize,
        no_votes: &[u32],
        timeout: Duration,
        stable: &Stable,
    ) -> Result<Self, Corrupt> {
        let get = |k| stable.load::<bool>(k);
        Ok(Core {
            id,
            n: nodes,
            timeout,
            wants_yes: !no_votes.contains(&id.0),
            begun: get(BEGUN)?.unwrap_or(false),
            vote: get(VOTE)?,
            decision: get(DECISION)?,
            votes: vec![None; nodes],
            acked: vec![false; nodes],
            blocked: false,
            restarted: !stable.is_empty(),
        })
    }

    /// This node's state with node `i` renamed `to[i]`: its id, and the coordinator's tallies
    /// (see [`participant_classes`]).
    pub(super) fn renamed(&self, to: &[NodeId]) -> Core {
        let mut c = self.clone();
        c.id = to[self.id.index()];
        for (i, (vote, acked)) in self.votes.iter().zip(&self.acked).enumerate() {
            c.votes[to[i].index()] = *vote;
            c.acked[to[i].index()] = *acked;
        }
        c
    }

    /// Every node but the coordinator.
    pub(super) fn participants(&self) -> impl Iterator<Item = NodeId> {
        (1..self.n as u32).map(NodeId)
    }

    /// At start: reports the decision persisted in an earlier life, if any.
    pub(super) fn restored<P: Protocol<Obs = CommitObs> + ?Sized>(&self, ctx: &mut Context<'_, P>) {
        if let (true, Some(commit)) = (self.restarted, self.decision) {
            ctx.observe(CommitObs::Restored { commit });
        }
    }

    /// The coordinator begins the transaction (persisted): its operation begins.
    pub(super) fn begin<P: Protocol + ?Sized>(&mut self, ctx: &mut Context<'_, P>) {
        self.begun = true;
        ctx.persist(BEGUN, &true);
        ctx.op_begin(0);
    }

    /// Persists this participant's vote.
    pub(super) fn record_vote<P: Protocol + ?Sized>(&mut self, ctx: &mut Context<'_, P>, yes: bool) {
        self.vote = Some(yes);
        ctx.persist(VOTE, &yes);
    }

    /// Votes: persisted, then reported.
    pub(super) fn cast<P: Protocol<Obs = CommitObs> + ?Sized>(
        &mut self,
        ctx: &mut Context<'_, P>,
        yes: bool,
    ) {
        self.record_vote(ctx, yes);
        ctx.observe(CommitObs::Voted { yes });
    }

    /// Decides, unless already decided: persisted, then reported. Whether it decided now.
    pub(super) fn decide<P: Protocol<Obs = CommitObs> + ?Sized>(
        &mut self,
        ctx: &mut Context<'_, P>,
        commit: bool,
    ) -> bool {
        if self.decision.is_some() {
            return false;
        }
        self.decision = Some(commit);
        ctx.persist(DECISION, &commit);
        ctx.observe(CommitObs::Decided { commit });
        true
    }

    /// Reports, once until the node learns something, that it waits without a decision.
    pub(super) fn block<P: Protocol<Obs = CommitObs> + ?Sized>(&mut self, ctx: &mut Context<'_, P>) {
        if !self.blocked {
            self.blocked = true;
            ctx.observe(CommitObs::Blocked);
        }
    }

    /// A (recovery) coordinator sends the decision, `msg(commit)`, to the nodes in `to` that
    /// have not confirmed it and resends it on `resend`; once none is left, the transaction's
    /// operation ends.
    pub(super) fn send_decision<P: Protocol + ?Sized>(
        &self,
        ctx: &mut Context<'_, P>,
        to: Vec<NodeId>,
        msg: impl FnOnce(bool) -> P::Msg,
        resend: P::Timer,
    ) {
        let Some(commit) = self.decision else { return };
        if to.is_empty() {
            ctx.cancel_timer(resend);
            ctx.op_end(0);
            return;
        }
        ctx.multicast(to, msg(commit));
        ctx.set_timer(resend, self.timeout);
    }
}

/// How long after the last fault every live node must have decided: a few timeouts.
fn settle(timeout: Duration) -> Time {
    Time(timeout.as_nanos() as u64 * 10)
}

/// What commit nodes report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommitObs {
    /// A participant voted (persisted before the vote was sent).
    Voted {
        /// Whether the vote was yes.
        yes: bool,
    },
    /// A node decided (persisted before it was acted on).
    Decided {
        /// Whether the decision is commit (`false`: abort).
        commit: bool,
    },
    /// A participant that voted yes waited past its timeout without learning the decision.
    Blocked,
    /// At start after a crash: the decision a node had persisted in an earlier life.
    Restored {
        /// Whether the persisted decision is commit (`false`: abort).
        commit: bool,
    },
}

/// Judges 2PC and 3PC runs.
pub struct CommitChecker {
    n: usize,
    /// Whether the coordinator must be up at the end for termination to be required (2PC).
    needs_coordinator: bool,
    /// How long after the last fault a live node must have decided.
    settle: Time,
    votes: Vec<Option<bool>>,
    decisions: Vec<Option<bool>>,
    first_decision: Option<(NodeId, bool)>,
    crash_free: bool,
}

impl Clone for CommitChecker {
    fn clone(&self) -> Self {
        CommitChecker {
            n: self.n,
            needs_coordinator: self.needs_coordinator,
            settle: self.settle,
            votes: self.votes.clone(),
            decisions: self.decisions.clone(),
            first_decision: self.first_decision,
            crash_free: self.crash_free,
        }
    }

    /// Reuses the votes' and decisions' room (the explorer copies a checker per successor).
    fn clone_from(&mut self, src: &Self) {
        // Every field named, none left out: a field added must be copied here.
        let CommitChecker { n, needs_coordinator, settle, votes, decisions, first_decision, crash_free } =
            src;
        (self.n, self.needs_coordinator, self.settle) = (*n, *needs_coordinator, *settle);
        self.votes.clone_from(votes);
        self.decisions.clone_from(decisions);
        (self.first_decision, self.crash_free) = (*first_decision, *crash_free);
    }
}

impl CommitChecker {
    /// A checker of `n` nodes; termination is required only `settle` after the last fault (and, for 2PC, only with the coordinator up).
    pub fn new(n: usize, needs_coordinator: bool, settle: Time) -> Self {
        CommitChecker {
            n,
            needs_coordinator,
            settle,
            votes: vec![None; n],
            decisions: vec![None; n],
            first_decision: None,
            crash_free: true,
        }
    }

    fn decided(&mut self, at: Time, node: NodeId, commit: bool) -> Result<(), Violation> {
        if let Some((first, c)) = self.first_decision {
            if c != commit {
                let what = |c| if c { "commit" } else { "abort" };
                return Err(Violation::new(
                    "atomicity",
                    Some(node),
                    at,
                    format!("decided {} but node {first} decided {}", what(commit), what(c)),
                ));
            }
        } else {
            self.first_decision = Some((node, commit));
        }
        if commit {
            if let Some(p) = (1..self.n).find(|&p| self.votes[p] != Some(true)) {
                return Err(Violation::new(
                    "validity",
                    Some(node),
                    at,
                    format!("decided commit but participant {p} has not voted yes ({:?})", self.votes[p]),
                ));
            }
        }
        self.decisions[node.index()] = Some(commit);
        Ok(())
    }
}

impl<P: Protocol<Obs = CommitObs> + ?Sized> Checker<P> for CommitChecker {
    fn fork(&self) -> Option<Box<dyn Checker<P>>> {
        Some(Box::new(self.clone()))
    }
    fn fork_into(&self, into: &mut Box<dyn Checker<P>>) -> bool {
        agora_core::check::fork_into(self, into)
    }
    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        Some(self)
    }
    fn properties(&self) -> Vec<Property> {
        vec![
            Property {
                name: "atomicity",
                kind: PropertyKind::Always,
                description: "no node commits while another aborts",
            },
            Property {
                name: "validity",
                kind: PropertyKind::Always,
                description: "commit only if every participant voted yes",
            },
            Property {
                name: "non-triviality",
                kind: PropertyKind::AtEnd,
                description: "without crashes or loss, all-yes votes lead to commit",
            },
            Property {
                name: "termination",
                kind: PropertyKind::AtEnd,
                description: "without loss, every live node decides (2PC: while the coordinator is up)",
            },
        ]
    }

    fn observe(&mut self, at: Time, node: NodeId, obs: &CommitObs) -> Result<(), Violation> {
        match *obs {
            CommitObs::Voted { yes } => {
                self.votes[node.index()] = Some(yes);
                Ok(())
            }
            CommitObs::Decided { commit } | CommitObs::Restored { commit } => self.decided(at, node, commit),
            CommitObs::Blocked => Ok(()),
        }
    }

    fn lifecycle(&mut self, _: Time, _: NodeId, event: agora_core::Lifecycle) {
        if event == agora_core::Lifecycle::Crashed {
            self.crash_free = false;
        }
    }

    fn not_judged(&self, end: &EndState<'_>) -> Vec<(&'static str, NotJudged)> {
        if !end.network_reliable {
            return vec![("non-triviality", NotJudged::Unreliable), ("termination", NotJudged::Unreliable)];
        }
        let mut out = Vec::new();
        if !end.timely {
            // The coordinator's vote timeout may have fired before every vote could arrive.
            out.push(("non-triviality", NotJudged::Untimely));
        }
        let settled = end.at.0.saturating_sub(end.last_fault.0) >= self.settle.0;
        if !settled {
            out.push(("termination", NotJudged::Unsettled));
            return out;
        }
        if !end.live[COORDINATOR.index()] && self.needs_coordinator {
            out.push(("termination", NotJudged::Crashed));
        }
        out
    }

    fn finish(&mut self, end: &EndState<'_>) -> Vec<Violation> {
        if !end.network_reliable {
            return Vec::new();
        }
        if self.crash_free
            && end.timely
            && (1..self.n).all(|p| self.votes[p] == Some(true))
            && self.first_decision.map(|d| d.1) == Some(false)
        {
            return vec![Violation::new(
                "non-triviality",
                None,
                end.at,
                "every participant voted yes, yet the decision was abort",
            )];
        }
        let settled = end.at.0.saturating_sub(end.last_fault.0) >= self.settle.0;
        let coordinator_up = end.live[COORDINATOR.index()];
        if settled && (coordinator_up || !self.needs_coordinator) {
            if let Some(n) = (0..self.n).find(|&i| end.live[i] && self.decisions[i].is_none()) {
                return vec![Violation::new(
                    "termination",
                    Some(NodeId(n as u32)),
                    end.at,
                    "live, yet undecided at the end of the run",
                )];
            }
        }
        Vec::new()
    }
}
