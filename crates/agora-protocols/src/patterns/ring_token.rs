//! `ring-token`: a token circulates a unidirectional ring 0 → 1 → … → N−1 → 0 for `--rounds`
//! rounds, starting at `--start` (the seed report's ring: N messages per round).
//!
//! **Properties.** *single-token* (always): the token's hop count only grows — no copy of it
//! is ever held twice. *all-rounds* (at end, no loss and no crash): every node held it once
//! per round.
//!
//! **Message complexity.** Exactly N per round: N·R in all.
//!
//! **Tolerates** duplication (a node ignores a token not newer than the last it held, which it
//! persists, so restarts neither recreate the token nor revive a stale copy). A lost token or
//! a crash of its holder ends the circulation (no regeneration).

use agora_core::{
    at_end_not_judged, Checker, Context, Corrupt, EndState, Message, NodeId, NotJudged, Property,
    PropertyKind, Protocol, Stable, Time, Violation,
};
use serde::{Deserialize, Serialize};

/// The token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// Passes so far.
    pub hop: u64,
}

impl Message for Token {
    fn kind(&self) -> &'static str {
        "TOKEN"
    }
}

/// "I hold the token at hop `hop`."
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// Passes so far.
    pub hop: u64,
}

/// The last hop this node held, persisted so that a restart neither recreates the token nor
/// accepts a stale copy.
const LAST: &str = "last";

/// One node of the ring.
pub struct RingToken {
    id: NodeId,
    n: usize,
    start: NodeId,
    hops: u64,
    last: Option<u64>,
}

impl RingToken {
    /// Node `id`, with the last hop it held in an earlier life, if any.
    fn new(setup: &RingTokenSetup, id: NodeId, stable: &Stable) -> Result<Self, Corrupt> {
        Ok(RingToken {
            id,
            n: setup.nodes,
            start: setup.start,
            hops: setup.nodes as u64 * setup.rounds as u64,
            last: stable.load(LAST)?,
        })
    }

    fn hold(&mut self, ctx: &mut Context<'_, Self>, hop: u64) {
        self.last = Some(hop);
        ctx.persist(LAST, &hop);
        ctx.observe(Held { hop });
        if hop == self.hops {
            ctx.op_end(0);
            return;
        }
        ctx.send(NodeId((self.id.0 + 1) % self.n as u32), Token { hop: hop + 1 });
    }
}

impl Protocol for RingToken {
    type Msg = Token;
    type Timer = ();
    type Obs = Held;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        if self.id == self.start && self.last.is_none() {
            ctx.op_begin(0);
            self.hold(ctx, 0);
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, _: NodeId, t: Token) {
        if self.last.is_none_or(|l| t.hop > l) {
            self.hold(ctx, t.hop);
        }
    }

    fn on_timer(&mut self, _: &mut Context<'_, Self>, _: ()) {}
}

/// A ring-token run.
pub struct RingTokenSetup {
    /// The cluster size: ids are `0..nodes`.
    pub nodes: usize,
    /// Times the token goes round.
    pub rounds: u32,
    /// The node that holds the token first.
    pub start: NodeId,
}

/// The faults under which the checker's safety properties hold: duplicates and stale tokens are ignored by the persisted hop counter; loss ends the circulation.
pub const MODEL: agora_core::FaultModel = agora_core::FaultModel::asynchronous(agora_core::Crashes::Recover);

setup!(RingTokenSetup => RingToken, "ring-token", model: MODEL, checker: |s| RingTokenChecker {
    rounds: s.rounds,
    last: None,
    held: vec![0; s.nodes],
    crashed: false,
});

/// Judges ring-token runs.
pub struct RingTokenChecker {
    rounds: u32,
    last: Option<u64>,
    held: Vec<u32>,
    crashed: bool,
}

impl Checker<RingToken> for RingTokenChecker {
    fn properties(&self) -> Vec<Property> {
        vec![
            Property {
                name: "single-token",
                kind: PropertyKind::Always,
                description: "the token's hop count only grows",
            },
            Property {
                name: "all-rounds",
                kind: PropertyKind::AtEnd,
                description: "with no loss and no crash, every node held the token once per round",
            },
        ]
    }

    fn observe(&mut self, at: Time, node: NodeId, obs: &Held) -> Result<(), Violation> {
        if self.last.is_some_and(|l| obs.hop <= l) {
            return Err(Violation::new(
                "single-token",
                Some(node),
                at,
                format!("holds the token at hop {} after hop {:?} was held", obs.hop, self.last),
            ));
        }
        self.last = Some(obs.hop);
        // Hop 0 and hop N·R are both at the start node: the circle closes there.
        if obs.hop > 0 {
            self.held[node.index()] += 1;
        }
        Ok(())
    }

    fn lifecycle(&mut self, _: Time, _: NodeId, event: agora_core::Lifecycle) {
        if event == agora_core::Lifecycle::Crashed {
            self.crashed = true;
        }
    }

    fn not_judged(&self, end: &EndState<'_>) -> Vec<(&'static str, NotJudged)> {
        at_end_not_judged(&self.properties(), end.unjudged(true, self.crashed))
    }

    fn finish(&mut self, end: &EndState<'_>) -> Vec<Violation> {
        if !end.network_reliable || self.crashed || !end.quiescent {
            return Vec::new();
        }
        match (0..self.held.len()).find(|&i| self.held[i] != self.rounds) {
            None => Vec::new(),
            Some(i) => vec![Violation::new(
                "all-rounds",
                Some(NodeId(i as u32)),
                end.at,
                format!("held the token {} times in {} rounds", self.held[i], self.rounds),
            )],
        }
    }
}
