//! A buyer: makes its buys, up to `--window` of them in flight (one at a time by default, as
//! in the report), each multicast to every peer with its Lamport timestamp and sent again until
//! the trader answers it. Buys asked in one step leave in one message.
//!
//! A request id must never name two different buys, even across a crash. The buyer draws its
//! buys (good and quantity) [`PLANNED`] at a time (or what the window has room for) ahead of
//! asking them, and persists the plan with its clock and the buys in flight before the first
//! of them leaves. A restarted buyer asks again for every buy of its last plan that it cannot tell was
//! answered — the same buys under the same request ids — and the replicated books answer a
//! request id they already applied with the answer they gave (`trade-exactly-once`). So one
//! write in [`PLANNED`] buys waits on the disk, instead of one per buy; the answers are the
//! ledger's to keep, not the buyer's. A local book (`--ledger local`) is new with each trader
//! and could apply an old buy again: there the buyer writes down the answers it takes as well.
//!
//! With the replicated ledger a buy whose plan is known to be durable leaves early
//! (`Context::send_early`): it rests on no write the buyer may still have in flight (on a
//! peer that is also a ledger replica, its entries' writes), so it does not wait for them.
//! The runtime tells the buyer when a plan is durable (`Timer::Planned`, with the request id
//! the plan ends before); a message with a buy of a plan not yet known durable leaves as any
//! message does, after the plan's write.
//!
//! Its Lamport clock is written with the plan, so a restarted buyer's clock starts again
//! from there and may stamp a buy as it stamped another before the crash: buys are ordered by
//! `(ts, buyer)` and then by request id, so two never share a place in a trader's queue.

use super::obs::MarketObs;
use super::roles::{Buy, BuyResult, Role};
use super::setup::{LedgerMode, Multicast, Settings};
use super::{MarketNode, Msg, Timer};
use agora_core::{Context, Corrupt, NodeId, Stable};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use std::time::Duration;

const KEY: &str = "market/buyer";
/// Buys drawn and persisted in one write, before the first of them is asked.
pub const PLANNED: u64 = 64;

/// A buyer's account.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Buyer {
    /// The request id of the next buy it draws: buys drawn so far.
    next_seq: u64,
    /// Its Lamport clock when it last asked (when it last planned, once restarted).
    clock: u64,
    /// The buys asked and not yet answered, in the order asked.
    outstanding: Vec<Buy>,
    /// Buys drawn and persisted, not yet asked (their timestamps are set when asked).
    planned: std::collections::VecDeque<Buy>,
    /// The work timer is a pause before the next buy, not a retry.
    #[serde(skip)]
    pausing: bool,
    /// Buys with a request id below this are in a plan known to be durable
    /// (`Timer::Planned` tells; a plan read back from the disk is).
    #[serde(skip)]
    durable_below: u64,
}

impl Buyer {
    /// The buyer's account as persisted, or a new one.
    pub fn load(stable: &Stable) -> Result<Self, Corrupt> {
        let mut b: Buyer = stable.load(KEY)?.unwrap_or_default();
        b.durable_below = b.next_seq;
        Ok(b)
    }

    /// Its Lamport clock when it last asked.
    pub fn clock(&self) -> u64 {
        self.clock
    }

    /// The buys in flight, in the order asked.
    pub fn outstanding(&self) -> &[Buy] {
        &self.outstanding
    }

    /// Every buy it will make is answered (a buyer that trades makes no new ones).
    pub fn done(&self, s: &Settings, trading: bool) -> bool {
        self.outstanding.is_empty() && (trading || (self.planned.is_empty() && self.next_seq >= s.buys))
    }

    /// Multicasts the buys in flight again (to the trader `leader` alone with
    /// `--multicast trader`), and waits for their answers.
    pub fn resend(&mut self, ctx: &mut Context<'_, MarketNode>, s: &Settings, leader: Option<NodeId>) {
        multicast(ctx, s, leader, self.outstanding.clone(), self.early(s, &self.outstanding));
    }

    /// Its plans are durable up to request id `below` (`Timer::Planned`): the notices come
    /// in the order of the writes, each covering those before it.
    pub fn on_planned(&mut self, below: u64) {
        self.durable_below = self.durable_below.max(below);
    }

    /// Whether `buys` may leave before the writes in flight: with the replicated ledger, once
    /// the plans that name them are durable.
    fn early(&self, s: &Settings, buys: &[Buy]) -> bool {
        s.ledger == LedgerMode::Replicated && buys.iter().all(|b| b.seq < self.durable_below)
    }

    /// Its timer: after a pause, asks for its next buys; else sends the buys in flight again
    /// (and asks for more if the window has room). `who`: whether this peer trades, and the
    /// trader the election names.
    pub fn on_work(
        &mut self,
        ctx: &mut Context<'_, MarketNode>,
        s: &Settings,
        who: (bool, Option<NodeId>),
        clock: &mut u64,
    ) {
        if !std::mem::take(&mut self.pausing) {
            self.resend(ctx, s, who.1);
        }
        if !self.ask(ctx, s, who, clock) && !self.outstanding.is_empty() {
            ctx.set_timer(Timer::Work, s.retry);
        }
    }

    /// Asks for its next buys while the window has room, if it has buys to make and does not
    /// trade, then multicasts them together. When its plan runs out it draws the next plan
    /// ([`Buyer::plan`]) and persists it before any of its buys leaves. Whether it asked any.
    fn ask(
        &mut self,
        ctx: &mut Context<'_, MarketNode>,
        s: &Settings,
        (trading, leader): (bool, Option<NodeId>),
        clock: &mut u64,
    ) -> bool {
        let mut asked = Vec::new();
        while !trading && self.outstanding.len() < s.window {
            if self.planned.is_empty() && !self.plan(ctx, s, *clock) {
                break;
            }
            let Some(mut buy) = self.planned.pop_front() else { break };
            *clock = clock.saturating_add(1);
            buy.ts = *clock;
            self.clock = *clock;
            self.outstanding.push(buy);
            asked.push(buy);
        }
        if asked.is_empty() {
            return false;
        }
        for &buy in &asked {
            ctx.observe(MarketObs::Asked { buy });
            ctx.op_begin(op_id(ctx.id(), buy.seq));
        }
        let early = self.early(s, &asked);
        multicast(ctx, s, leader, asked, early);
        ctx.set_timer(Timer::Work, s.retry);
        true
    }

    /// Draws its next buys, [`PLANNED`] of them or what the window has room for if more (so
    /// one step writes one plan), up to the buys it makes, and persists them with its clock
    /// and the buys in flight: the write lands before anything this step sends. False if it
    /// has no buys left to make.
    fn plan(&mut self, ctx: &mut Context<'_, MarketNode>, s: &Settings, clock: u64) -> bool {
        let role = s.roles[ctx.id().index()];
        let room = s.window.saturating_sub(self.outstanding.len()) as u64;
        let end = s.buys.min(self.next_seq.saturating_add(PLANNED.max(room)));
        while self.next_seq < end {
            let rng = ctx.rng();
            let good = match role {
                Role::Buyer { wants: Some(good) } => good,
                _ => s.catalog.draw(rng),
            };
            let qty = rng.random_range(1..=s.catalog.max_qty);
            self.planned.push_back(Buy { buyer: ctx.id(), seq: self.next_seq, good, qty, ts: 0 });
            self.next_seq += 1;
        }
        if self.planned.is_empty() {
            return false;
        }
        self.clock = clock;
        ctx.persist(KEY, self);
        if s.ledger == LedgerMode::Replicated {
            ctx.when_synced(Timer::Planned(self.next_seq));
        }
        true
    }

    /// The trader's answers to buys by request id: the first one for a buy in flight is
    /// taken (not written down: a restarted buyer asks again and gets the same). The next
    /// buys follow after a pause drawn around `interval`, or at once when it is zero.
    pub fn on_answers(
        &mut self,
        ctx: &mut Context<'_, MarketNode>,
        s: &Settings,
        answers: Vec<(u64, BuyResult)>,
        who: (bool, Option<NodeId>),
        clock: &mut u64,
    ) {
        let trading = who.0;
        let mut taken = 0;
        for (seq, result) in answers {
            let Some(i) = self.outstanding.iter().position(|b| b.seq == seq) else { continue };
            self.outstanding.remove(i);
            ctx.observe(MarketObs::Answered { seq, result });
            ctx.op_end(op_id(ctx.id(), seq));
            taken += 1;
        }
        if taken == 0 {
            return;
        }
        let asked = s.interval.is_zero() && self.ask(ctx, s, who, clock);
        if s.ledger == LedgerMode::Local {
            // A local book is new with each trader: it cannot answer a buy of an earlier
            // trader's book again, so here the answers taken are written down, as every buy
            // was before the buyer planned ahead.
            ctx.persist(KEY, self);
        }
        if asked {
            return;
        }
        if s.interval.is_zero() || trading || (self.planned.is_empty() && self.next_seq >= s.buys) {
            if self.outstanding.is_empty() {
                ctx.cancel_timer(Timer::Work);
            }
            return;
        }
        let mean = s.interval.as_secs_f64();
        let u: f64 = ctx.rng().random();
        self.pausing = true;
        ctx.set_timer(Timer::Work, Duration::from_secs_f64(-mean * (1.0 - u).ln()));
    }
}

/// The metrics operation id of `buyer`'s buy `seq`: a buy is an operation, from asked to
/// answered.
fn op_id(buyer: NodeId, seq: u64) -> agora_core::OpId {
    (u64::from(buyer.0) << 40) | (seq & ((1 << 40) - 1))
}

/// Multicasts buys to every peer, or sends them to the trader `leader` alone with
/// `--multicast trader` (to no one while the market elects one): one in a [`Msg::Buy`], more
/// in one [`Msg::Buys`]; `early`: before the writes in flight (see the module docs).
fn multicast(
    ctx: &mut Context<'_, MarketNode>,
    s: &Settings,
    leader: Option<NodeId>,
    mut buys: Vec<Buy>,
    early: bool,
) {
    let msg = match buys.len() {
        0 => return,
        1 => Msg::Buy(buys.remove(0)),
        _ => Msg::Buys(buys),
    };
    let me = ctx.id();
    match (s.multicast, leader, early) {
        (Multicast::All, _, false) => ctx.broadcast(msg),
        (Multicast::All, _, true) => ctx.broadcast_early(msg),
        (Multicast::Trader, Some(trader), false) if trader != me => ctx.send(trader, msg),
        (Multicast::Trader, Some(trader), true) if trader != me => ctx.send_early(trader, msg),
        (Multicast::Trader, _, _) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::MarketSetup;
    use crate::registry::FromParams as _;
    use agora_core::{Effect, Rng, Time};
    use rand::SeedableRng as _;

    type Effects = Vec<Effect<Msg, Timer, MarketObs>>;

    /// What a buyer's step sends: (early, normal) messages, and whether it wrote.
    fn sent(effects: &Effects) -> (usize, usize, bool) {
        let early = effects
            .iter()
            .filter(|e| matches!(e, Effect::SendEarly { .. } | Effect::MulticastEarly { .. }))
            .count();
        let normal =
            effects.iter().filter(|e| matches!(e, Effect::Send { .. } | Effect::Multicast { .. })).count();
        (early, normal, effects.iter().any(|e| matches!(e, Effect::Persist { .. })))
    }

    /// A window wider than [`PLANNED`] is filled from one plan: one write, one notice.
    #[test]
    fn a_window_wider_than_a_plan_is_filled_from_one_plan() {
        let p = crate::Params::new(5, 1)
            .with(&crate::params::SCENARIO, "experiment")
            .with(&crate::params::BUYS, 1000u64)
            .with(&crate::params::WINDOW, 150u64);
        let setup = MarketSetup::from_params(&p.resolve("market", MarketSetup::SPECS).unwrap()).unwrap();
        let (mut b, mut clock, mut rng, mut effects) =
            (Buyer::default(), 0, Rng::seed_from_u64(1), Effects::new());
        let mut ctx = Context::new(NodeId(0), 5, Time::ZERO, &mut rng, &mut effects);
        b.on_work(&mut ctx, &setup.s, (false, Some(NodeId(4))), &mut clock);
        let count = |f: fn(&Effect<Msg, Timer, MarketObs>) -> bool| effects.iter().filter(|e| f(e)).count();
        assert_eq!(count(|e| matches!(e, Effect::Persist { .. })), 1);
        assert_eq!(count(|e| matches!(e, Effect::Synced { .. })), 1);
        assert_eq!(b.outstanding().len(), 150);
        assert_eq!((b.planned.len(), b.next_seq), (0, 150));
    }

    /// A buy may leave before the writes in flight only once the plan that names it is
    /// durable: a plan's first buy leaves with the plan's write; a notice of an older plan
    /// does not make a newer one's buys early; with a local book, nothing leaves early.
    #[test]
    fn buys_leave_early_only_once_their_plan_is_durable() {
        for ledger in ["replicated", "local"] {
            let replicated = ledger == "replicated";
            let p = crate::Params::new(5, 1)
                .with(&crate::params::SCENARIO, "experiment")
                .with(&crate::params::LEDGER, ledger)
                .with(&crate::params::BUYS, 1000u64)
                .with(&crate::params::INTERVAL_MS, 0.0);
            let setup = MarketSetup::from_params(&p.resolve("market", MarketSetup::SPECS).unwrap()).unwrap();
            let s = &setup.s;
            let who = (false, Some(NodeId(4)));
            let (mut b, mut clock, mut rng) = (Buyer::default(), 0, Rng::seed_from_u64(1));
            let mut step = |b: &mut Buyer, f: &dyn Fn(&mut Buyer, &mut Context<'_, MarketNode>, &mut u64)| {
                let mut effects = Effects::new();
                let mut ctx = Context::new(NodeId(0), 5, Time::ZERO, &mut rng, &mut effects);
                f(b, &mut ctx, &mut clock);
                effects
            };
            let resend =
                |b: &mut Buyer, ctx: &mut Context<'_, MarketNode>, _: &mut u64| b.resend(ctx, s, who.1);
            let answer = |b: &mut Buyer, ctx: &mut Context<'_, MarketNode>, clock: &mut u64| {
                let seq = b.outstanding()[0].seq;
                b.on_answers(ctx, s, vec![(seq, BuyResult::OutOfStock)], who, clock)
            };
            // One effect each: a multicast to every other peer, early or not.
            let early = if replicated { (1, 0) } else { (0, 1) };
            let first = step(&mut b, &|b, ctx, clock| b.on_work(ctx, s, who, clock));
            assert_eq!(sent(&first), (0, 1, true), "{ledger}: the plan's write, its first buy after it");
            let told = first.iter().any(|e| matches!(e, Effect::Synced { done: Timer::Planned(64) }));
            assert_eq!(told, replicated, "{ledger}");
            // Asked again before the plan is known durable: not early.
            assert_eq!(sent(&step(&mut b, &resend)).0, 0, "{ledger}");
            b.on_planned(64);
            let (e, n, _) = sent(&step(&mut b, &resend));
            assert_eq!((e, n), early, "{ledger}: to every other peer, early once durable");
            for _ in 0..63 {
                let (e, n, _) = sent(&step(&mut b, &answer));
                assert_eq!((e, n), early, "{ledger}: the next buy of a durable plan");
            }
            // The plan runs out: the next one is written, and its first buy leaves after it.
            let (e, n, wrote) = sent(&step(&mut b, &answer));
            assert_eq!((e, n, wrote, b.outstanding()[0].seq), (0, 1, true, 64), "{ledger}");
            // The first plan's notice, late (or again), says nothing of the second.
            b.on_planned(64);
            assert_eq!(sent(&step(&mut b, &resend)), (0, 1, false), "{ledger}");
            b.on_planned(128);
            let (e, n, _) = sent(&step(&mut b, &resend));
            assert_eq!((e, n), early, "{ledger}");
        }
    }
}
