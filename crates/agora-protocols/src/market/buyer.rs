//! A buyer: makes its buys one at a time, each multicast to every peer with its Lamport
//! timestamp and sent again until the trader answers it. Its account — the next request id,
//! its clock, the buy in flight — is persisted before the buy leaves, so a restarted buyer
//! asks again for the same buy, never a different one under the same request id.

use super::obs::MarketObs;
use super::roles::{Buy, BuyResult, Role};
use super::setup::Settings;
use super::{MarketNode, Msg, Timer};
use agora_core::{Context, Corrupt, Stable};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use std::time::Duration;

const KEY: &str = "market/buyer";

/// A buyer's account.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Buyer {
    /// The request id of its next buy: buys asked so far.
    next_seq: u64,
    /// Its Lamport clock when it last asked.
    clock: u64,
    /// The buy asked and not yet answered.
    outstanding: Option<Buy>,
}

impl Buyer {
    /// The buyer's account as persisted, or a new one.
    pub fn load(stable: &Stable) -> Result<Self, Corrupt> {
        Ok(stable.load(KEY)?.unwrap_or_default())
    }

    /// Its Lamport clock when it last asked.
    pub fn clock(&self) -> u64 {
        self.clock
    }

    /// The buy in flight.
    pub fn outstanding(&self) -> Option<Buy> {
        self.outstanding
    }

    /// Every buy it will make is answered (a buyer that trades makes no new ones).
    pub fn done(&self, s: &Settings, trading: bool) -> bool {
        self.outstanding.is_none() && (trading || self.next_seq >= s.buys)
    }

    /// Multicasts the buy in flight again, and waits for its answer.
    pub fn resend(&mut self, ctx: &mut Context<'_, MarketNode>) {
        if let Some(buy) = self.outstanding {
            ctx.broadcast(Msg::Buy(buy));
        }
    }

    /// Its timer: sends the buy in flight again, or asks for the next one.
    pub fn on_work(
        &mut self,
        ctx: &mut Context<'_, MarketNode>,
        s: &Settings,
        trading: bool,
        clock: &mut u64,
    ) {
        if self.outstanding.is_some() {
            self.resend(ctx);
            ctx.set_timer(Timer::Work, s.retry);
        } else {
            self.ask(ctx, s, trading, clock);
        }
    }

    /// Asks for its next buy, if it has one to make and does not trade: persisted before it
    /// leaves, then multicast.
    fn ask(&mut self, ctx: &mut Context<'_, MarketNode>, s: &Settings, trading: bool, clock: &mut u64) {
        if trading || self.next_seq >= s.buys {
            return;
        }
        *clock = clock.saturating_add(1);
        let role = s.roles[ctx.id().index()];
        let rng = ctx.rng();
        let good = match role {
            Role::Buyer { wants: Some(good) } => good,
            _ => s.catalog.draw(rng),
        };
        let qty = rng.random_range(1..=s.catalog.max_qty);
        let buy = Buy { buyer: ctx.id(), seq: self.next_seq, good, qty, ts: *clock };
        self.next_seq += 1;
        self.clock = *clock;
        self.outstanding = Some(buy);
        ctx.persist(KEY, self);
        ctx.observe(MarketObs::Asked { buy });
        ctx.broadcast(Msg::Buy(buy));
        ctx.set_timer(Timer::Work, s.retry);
    }

    /// The trader's answer to buy `seq`: the first one for the buy in flight is taken. The
    /// next buy follows after a pause drawn around `interval`, or at once (one write to disk
    /// for both) when it is zero.
    pub fn on_answer(
        &mut self,
        ctx: &mut Context<'_, MarketNode>,
        s: &Settings,
        (seq, result): (u64, BuyResult),
        trading: bool,
        clock: &mut u64,
    ) {
        if self.outstanding.is_none_or(|b| b.seq != seq) {
            return;
        }
        self.outstanding = None;
        ctx.observe(MarketObs::Answered { seq, result });
        if s.interval.is_zero() && !trading && self.next_seq < s.buys {
            self.ask(ctx, s, trading, clock);
            return;
        }
        ctx.persist(KEY, self);
        let mean = s.interval.as_secs_f64();
        let u: f64 = ctx.rng().random();
        ctx.set_timer(Timer::Work, Duration::from_secs_f64(-mean * (1.0 - u).ln()));
    }
}
