//! A seller: hands its stock to the trader when the market opens (a deposit, multicast and
//! sent again until acknowledged), keeps its account — what it believes it has on deposit,
//! from the trader's sale notices — and restocks a good drawn from the seed when told it sold
//! out. A new trader of the local ledger asks it what it has left.

use super::goods::Good;
use super::obs::MarketObs;
use super::setup::Settings;
use super::{MarketNode, Msg, Timer};
use agora_core::{Context, Corrupt, NodeId, Stable};
use serde::{Deserialize, Serialize};

const KEY: &str = "market/seller";

/// A seller's account.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Seller {
    /// The good it sells now.
    good: Good,
    /// The number of its next deposit.
    next_id: u64,
    /// The deposit `(id, good, units)` sent and not yet acknowledged.
    outstanding: Option<(u64, Good, u64)>,
    /// Units of `good` it believes are on deposit with the trader.
    at_market: u64,
}

impl Seller {
    /// The seller's account as persisted, or a new one about to hand `stock` units of `good`
    /// to the market.
    pub fn load(stable: &Stable, good: Good, stock: u64) -> Result<Self, Corrupt> {
        let fresh = Seller { good, next_id: 1, outstanding: Some((0, good, stock)), at_market: 0 };
        Ok(stable.load(KEY)?.unwrap_or(fresh))
    }

    /// The deposit in flight.
    pub fn outstanding(&self) -> Option<(u64, Good, u64)> {
        self.outstanding
    }

    /// What it believes it has on deposit: `(good, units)`.
    pub fn at_market(&self) -> (Good, u64) {
        (self.good, self.at_market)
    }

    /// Multicasts the deposit in flight again.
    pub fn resend(&mut self, ctx: &mut Context<'_, MarketNode>) {
        if let Some((id, good, qty)) = self.outstanding {
            ctx.broadcast(Msg::Deposit { id, good, qty });
        }
    }

    /// Its timer: sends the deposit in flight again, or restocks if it sold out.
    pub fn on_work(&mut self, ctx: &mut Context<'_, MarketNode>, s: &Settings, trading: bool) {
        if self.outstanding.is_none() && self.at_market == 0 && !trading {
            self.restock(ctx, s);
        }
        if self.outstanding.is_some() {
            self.resend(ctx);
            ctx.set_timer(Timer::Work, s.retry);
        }
    }

    fn restock(&mut self, ctx: &mut Context<'_, MarketNode>, s: &Settings) {
        self.good = s.catalog.draw(ctx.rng());
        self.outstanding = Some((self.next_id, self.good, s.catalog.restock));
        self.next_id += 1;
        ctx.persist(KEY, self);
    }

    /// Deposit `id` is in the books.
    pub fn on_ack(&mut self, ctx: &mut Context<'_, MarketNode>, id: u64) {
        let Some((want, good, qty)) = self.outstanding else { return };
        if want != id {
            return;
        }
        self.outstanding = None;
        self.at_market += qty;
        ctx.persist(KEY, self);
        ctx.cancel_timer(Timer::Work);
        ctx.observe(MarketObs::Handed { id, good, qty });
    }

    /// Units of its `good` sold, `left` on deposit; sold out, it restocks (unless it trades).
    pub fn on_sold(
        &mut self,
        ctx: &mut Context<'_, MarketNode>,
        s: &Settings,
        good: Good,
        left: u64,
        trading: bool,
    ) {
        if good != self.good || self.outstanding.is_some() {
            return;
        }
        self.at_market = left;
        ctx.persist(KEY, self);
        if left == 0 {
            self.on_work(ctx, s, trading);
        }
    }

    /// A new trader of the local ledger asks what it has: it answers, and sends it the
    /// deposit in flight.
    pub fn on_inventory_request(&mut self, ctx: &mut Context<'_, MarketNode>, trader: NodeId) {
        ctx.send(trader, Msg::Inventory { good: self.good, qty: self.at_market });
        if let Some((id, good, qty)) = self.outstanding {
            ctx.send(trader, Msg::Deposit { id, good, qty });
        }
    }
}
