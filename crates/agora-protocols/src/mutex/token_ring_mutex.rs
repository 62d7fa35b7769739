//! `token-ring-mutex`: a token circulates around a logical ring; only its holder may enter
//! (Le Lann, *Distributed Systems — Towards a Formal Approach*, IFIP 1977).
//!
//! **Algorithm.** Node `--start` (0 by default) creates the token. The holder enters the
//! critical section if it has a pending request, then passes the token to its successor
//! (i+1 mod N). The token counts the entries still to come, so circulation stops once every
//! request has been served.
//!
//! **Message complexity.** One token pass per entry when every node always wants to enter
//! (the best case); otherwise the token also circulates while nodes think, so passes per entry
//! grow with think time over link latency — unbounded in time for a token that circulated with
//! no requests at all, which the entry count prevents here (Singhal & Shivaratri 1994, §6.9).
//!
//! **Tolerates** duplication: a second copy of the token would make two holders, so the token
//! carries a hop counter and a node ignores a token not newer than the last it saw. Loss of
//! the token, or a crash of its holder, stops the ring (token regeneration is not
//! implemented); safety holds under both.

pub use super::Timer;
use super::{MutexChecker, MutexObs, Workload};
use agora_core::{Context, Corrupt, Message, NodeId, Protocol, Stable};
use serde::{Deserialize, Serialize};

/// The token.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Token {
    /// Passes so far: strictly increasing, so stale copies are recognised.
    pub hop: u64,
    /// Entries still to be served, cluster-wide.
    pub remaining: u64,
}

impl Message for Token {
    fn kind(&self) -> &'static str {
        "TOKEN"
    }
}

const CREATED: &str = "created";

/// One node of the token ring.
#[derive(Clone, Hash)]
pub struct TokenRingMutex {
    id: NodeId,
    n: usize,
    start: NodeId,
    total: u64,
    work: Workload,
    wants: bool,
    token: Option<Token>,
    last_hop: Option<u64>,
    created: bool,
}

impl TokenRingMutex {
    /// Node `id`, knowing whether it created the token in an earlier life.
    fn new(setup: &TokenRingMutexSetup, id: NodeId, stable: &Stable) -> Result<Self, Corrupt> {
        Ok(TokenRingMutex {
            id,
            n: setup.nodes,
            start: setup.start,
            total: setup.nodes as u64 * setup.requests as u64,
            work: Workload::new(setup.requests),
            wants: false,
            token: None,
            last_hop: None,
            created: stable.load(CREATED)?.unwrap_or(false),
        })
    }

    fn use_token(&mut self, ctx: &mut Context<'_, Self>) {
        let Some(t) = &self.token else { return };
        if self.work.inside() {
            return;
        }
        if self.wants {
            self.wants = false;
            self.work.enter(ctx);
        } else if t.remaining > 0 && self.n > 1 {
            let mut t = self.token.take().expect("checked");
            t.hop += 1;
            ctx.send(NodeId((self.id.0 + 1) % self.n as u32), t);
        }
    }
}

impl Protocol for TokenRingMutex {
    type Msg = Token;
    type Timer = Timer;
    type Obs = MutexObs;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        self.work.think(ctx);
        if self.id == self.start && !self.created {
            self.created = true;
            ctx.persist(CREATED, &true);
            self.token = Some(Token { hop: 0, remaining: self.total });
            self.use_token(ctx);
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, _: NodeId, t: Token) {
        if self.last_hop.is_some_and(|h| t.hop <= h) || self.token.is_some() {
            return; // a stale duplicate
        }
        self.last_hop = Some(t.hop);
        self.token = Some(t);
        self.use_token(ctx);
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, timer: Timer) {
        match timer {
            Timer::Think => {
                self.wants = true;
                self.work.request(ctx);
                self.use_token(ctx);
            }
            Timer::Hold => {
                self.work.exit(ctx);
                if let Some(t) = &mut self.token {
                    t.remaining = t.remaining.saturating_sub(1);
                }
                self.work.next(ctx);
                self.use_token(ctx);
            }
        }
    }
}

/// A token-ring-mutex run.
pub struct TokenRingMutexSetup {
    /// The cluster size: ids are `0..nodes`.
    pub nodes: usize,
    /// Critical-section entries (or requests) per node.
    pub requests: u32,
    /// The node that holds the token first.
    pub start: NodeId,
}

/// The faults under which the checker's safety properties hold: a token copy is ignored by its hop counter; loss or a crashed holder stops the ring, safely.
pub const MODEL: agora_core::FaultModel = agora_core::FaultModel::asynchronous(agora_core::Crashes::Stop);

setup!(TokenRingMutexSetup => TokenRingMutex, "token-ring-mutex", model: MODEL, checker: |s| MutexChecker::each(s.nodes, s.requests));
