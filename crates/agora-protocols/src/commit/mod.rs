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
//! - *non-triviality* (at end, no crashes and no loss): if every participant voted yes, the
//!   decision is commit (AC4);
//! - *termination* (at end, no loss, long enough after the last fault): every live node has
//!   decided — for 2PC only when the coordinator is up at the end, since 2PC blocks while it is
//!   down; 3PC's termination protocol decides without it.

mod params;
pub mod three_phase_commit;
pub mod two_phase_commit;

use agora_core::{Checker, EndState, NodeId, NotJudged, Property, PropertyKind, Protocol, Time, Violation};
use serde::{Deserialize, Serialize};

/// The coordinator.
pub const COORDINATOR: NodeId = NodeId(0);

/// What commit nodes report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommitObs {
    /// A participant voted (persisted before the vote was sent).
    Voted { yes: bool },
    /// A node decided (persisted before it was acted on).
    Decided { commit: bool },
    /// A participant that voted yes waited past its timeout without learning the decision.
    Blocked,
    /// At start after a crash: the decision a node had persisted in an earlier life.
    Restored { commit: bool },
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

impl CommitChecker {
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
        let settled = end.at.0.saturating_sub(end.last_fault.0) >= self.settle.0;
        if !settled {
            return vec![("termination", NotJudged::Unsettled)];
        }
        if !end.live[COORDINATOR.index()] && self.needs_coordinator {
            return vec![("termination", NotJudged::Crashed)];
        }
        Vec::new()
    }

    fn finish(&mut self, end: &EndState<'_>) -> Vec<Violation> {
        if !end.network_reliable {
            return Vec::new();
        }
        if self.crash_free
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
