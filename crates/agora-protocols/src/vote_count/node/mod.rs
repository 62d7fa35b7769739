//! The nodes of an election: the [`VoteNode`] of each role, the messages they exchange, their
//! timers and what they share (see the module docs of [`super`]). Each role lives in its own
//! file: [`legislator`], [`coordinator`], [`region`], [`citizen`].

pub mod citizen;
pub mod coordinator;
pub mod legislator;
pub mod region;

pub use citizen::Citizen;
pub use coordinator::Coordinator;
pub use legislator::Legislator;
pub use region::Region;

use super::obs::{Answer, VoteObs};
use super::settings::Settings;
use super::{Ballot, Hash, Phase, Results, Tally};
use crate::raft::{RaftMsg, RaftTimer};
use agora_core::{Context, NodeId, Protocol};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What the nodes of an election send each other. Every message but Raft's carries the
/// sender's view of the phase (the latest it has heard of), so views only move forward.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Msg {
    /// Raft's own messages: between legislators, and between a coordinator's client and them.
    Raft(RaftMsg<Tally>),
    /// Citizen → region.
    Cast {
        /// The sender's view of the phase.
        phase: Phase,
        /// The ballots cast (or cast again).
        ballots: Vec<Ballot>,
    },
    /// Region → coordinator.
    Forward {
        /// The sender's view of the phase.
        phase: Phase,
        /// The ballots forwarded.
        ballots: Vec<Ballot>,
    },
    /// Coordinator → region, region → citizen: `(voter, ballot hash as cast, answer)`.
    Answers {
        /// The sender's view of the phase.
        phase: Phase,
        /// One per ballot answered.
        answers: Vec<(u64, Hash, Answer)>,
    },
    /// Citizen → its region: every ballot answered.
    CitizenDone {
        /// The sender's view of the phase.
        phase: Phase,
    },
    /// Region → coordinators, until results come.
    Status {
        /// The sender's view of the phase.
        phase: Phase,
        /// Whether the region's citizen has every ballot answered.
        done: bool,
    },
    /// Coordinator → replica, and the answer.
    DigestQuery {
        /// The sender's view of the phase.
        phase: Phase,
    },
    /// A replica's answer to a [`Msg::DigestQuery`].
    DigestReply {
        /// The sender's view of the phase.
        phase: Phase,
        /// The replica's tally digest, once it has tallied.
        digest: Option<Hash>,
    },
    /// Coordinator → regions and citizens, resent until acknowledged.
    Published {
        /// The sender's view of the phase.
        phase: Phase,
        /// The published results.
        results: Box<Results>,
    },
    /// Region or citizen → coordinator: the results arrived.
    ResultsAck {
        /// The sender's view of the phase.
        phase: Phase,
        /// The digest of the results received.
        digest: Hash,
    },
}

impl From<RaftMsg<Tally>> for Msg {
    fn from(m: RaftMsg<Tally>) -> Self {
        Msg::Raft(m)
    }
}

kinds!(Msg {
    Raft(m) => m.kind(),
    Cast => "CAST",
    Forward => "FORWARD",
    Answers => "ANSWERS",
    CitizenDone => "CITIZEN-DONE",
    Status => "STATUS",
    DigestQuery => "DIGEST-QUERY",
    DigestReply => "DIGEST-REPLY",
    Published => "RESULTS",
    ResultsAck => "RESULTS-ACK",
});

/// The timers of an election's nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// A legislator's replica's, or a coordinator's client's.
    Raft(RaftTimer),
    /// Periodic work of coordinators, regions and citizens.
    Tick,
}

impl From<RaftTimer> for Timer {
    fn from(t: RaftTimer) -> Self {
        Timer::Raft(t)
    }
}

/// A node of an election, by role.
pub enum VoteNode {
    /// A member of the legislature: a Raft replica of the tally.
    Replica(Box<Legislator>),
    /// A stateless coordinator: drives the phases, forwards ballots, publishes.
    Coordinator(Box<Coordinator>),
    /// A region's gateway between its citizens and the coordinators.
    Region(Box<Region>),
    /// A region's citizens: a load generator casting their ballots.
    Citizen(Box<Citizen>),
}

/// The period of the coordinators', regions' and citizens' `Tick`.
fn tick(s: &Settings) -> Duration {
    s.timeout
}

/// A region or citizen received the results from `from`: acknowledges them every time, and
/// reports them the first time (`have` says whether it has them). Returns whether this was
/// the first time.
fn receive_results(
    ctx: &mut Context<'_, VoteNode>,
    from: NodeId,
    results: Box<Results>,
    have: &mut bool,
) -> bool {
    ctx.send(from, Msg::ResultsAck { phase: Phase::Published, digest: results.digest });
    if *have {
        return false;
    }
    *have = true;
    ctx.observe(VoteObs::Results { results });
    true
}

impl Protocol for VoteNode {
    type Msg = Msg;
    type Timer = Timer;
    type Obs = VoteObs;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        match self {
            VoteNode::Replica(l) => l.on_start(ctx),
            VoteNode::Coordinator(c) => c.start(ctx),
            VoteNode::Region(r) => r.on_start(ctx),
            VoteNode::Citizen(c) => c.on_start(ctx),
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: Msg) {
        match self {
            VoteNode::Replica(l) => l.on_message(ctx, from, msg),
            VoteNode::Coordinator(c) => c.on_message(ctx, from, msg),
            VoteNode::Region(r) => r.on_message(ctx, from, msg),
            VoteNode::Citizen(c) => c.on_message(ctx, from, msg),
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, timer: Timer) {
        match self {
            VoteNode::Replica(l) => l.on_timer(ctx, timer),
            VoteNode::Coordinator(c) => c.on_timer(ctx, timer),
            VoteNode::Region(r) => r.on_timer(ctx, timer),
            VoteNode::Citizen(c) => c.on_timer(ctx, timer),
        }
    }

    /// Every role is done once the results are out and it has nothing in hand (see each
    /// role's `background`).
    fn background(&self) -> bool {
        match self {
            VoteNode::Replica(l) => l.background(),
            VoteNode::Coordinator(c) => c.background(),
            VoteNode::Region(r) => r.background(),
            VoteNode::Citizen(c) => c.background(),
        }
    }
}
