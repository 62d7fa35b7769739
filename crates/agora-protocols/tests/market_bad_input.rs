//! Bad input to the trading post, in the simulator: a hostile buyer sends the trader buys of a
//! good the catalog does not list, of no units, of `u64::MAX` units and of one unit too many, a
//! buy in another buyer's name, deposits of an absurd quantity and of an unknown good, buys in
//! the other buyer's name handed on as if it were a trader leaving its post; and it
//! answers the other buyer's buys itself with forged receipts. Every one is refused and
//! observed, the books never hold any of it, and the run passes every check. A forged receipt
//! that reaches the buyer under the trader's name (a spoofed sender, which the buyer's guard
//! cannot see) is caught by the checker.

use agora_core::{Checker, Context, Corrupt, Destinations, Effect, NodeId, Protocol, Setup, Stable, Time};
use agora_protocols::market::flaw::Flaw;
use agora_protocols::market::goods::{Good, MAX_STOCK};
use agora_protocols::market::ledger::Event;
use agora_protocols::market::roles::{Buy, BuyResult, Lot};
use agora_protocols::market::{MarketChecker, MarketNode, MarketObs, MarketSetup, Msg, Timer};
use agora_protocols::params::{BUYS, SCENARIO, SICK};
use agora_protocols::registry::FromParams;
use agora_protocols::Params;
use agora_sim::{Outcome, SimConfig, Simulation};
use std::collections::BTreeSet;

/// In test case 1 peers 0 and 1 buy, and peer 6, the highest, trades (no one falls sick).
const FORGER: NodeId = NodeId(0);
const VICTIM: NodeId = NodeId(1);
const TRADER: NodeId = NodeId(6);
/// The forger's bad buys use request ids from here on, far from its own.
const BAD_SEQ: u64 = 1_000_000;

/// A market peer, honest but for its part in the test.
struct Hostile {
    node: MarketNode,
    part: Part,
}

enum Part {
    Honest,
    /// Forges a receipt for every buy it sees from another buyer, and sends the trader its bad
    /// input once the trader has answered it.
    Forger {
        sent: bool,
    },
    /// Takes the forger's answers as if the trader had sent them: the guard bypassed.
    Spoofed,
}

/// The bad input the forger sends the trader.
fn bad_input() -> Vec<Msg> {
    let buy = |seq: u64, good: u8, qty: u64, ts: u64| {
        Msg::Buy(Buy { buyer: FORGER, seq, good: Good(good), qty, ts })
    };
    vec![
        buy(BAD_SEQ, 99, 1, 1),
        buy(BAD_SEQ + 1, 0, 0, 1),
        buy(BAD_SEQ + 2, 0, u64::MAX, u64::MAX),
        buy(BAD_SEQ + 3, 0, 4, 1),
        Msg::Buy(Buy { buyer: VICTIM, seq: 0, good: Good(0), qty: 1, ts: 1 }),
        Msg::Deposit { id: BAD_SEQ, good: Good(0), qty: 1 << 60 },
        Msg::Deposit { id: BAD_SEQ + 1, good: Good(7), qty: 1 },
        // Buys in the victim's name, handed on as if by a trader leaving its post.
        Msg::Handover { pending: vec![Buy { buyer: VICTIM, seq: BAD_SEQ, good: Good(0), qty: 3, ts: 1 }] },
        Msg::Leave { pending: vec![Buy { buyer: VICTIM, seq: BAD_SEQ + 1, good: Good(0), qty: 3, ts: 1 }] },
    ]
}

/// A receipt the books never gave: `buy`'s units from peer 2, at the catalog's price.
fn forged(buy: &Buy) -> Msg {
    let lots = vec![Lot { seller: NodeId(2), units: buy.qty, left: 0 }];
    Msg::Answer { seq: buy.seq, result: BuyResult::Receipt { lots, paid: buy.qty * 100 } }
}

/// Runs `f` on the wrapped peer with a context of its own and hands its effects on to `ctx`.
fn inner(ctx: &mut Context<'_, Hostile>, f: impl FnOnce(&mut Context<'_, MarketNode>)) {
    let mut effects = Vec::new();
    let (id, nodes, now) = (ctx.id(), ctx.nodes(), ctx.now());
    f(&mut Context::new(id, nodes, now, ctx.rng(), &mut effects));
    for e in effects {
        match e {
            Effect::Send { to, msg } => ctx.send(to, msg),
            Effect::SendEarly { to, msg } => ctx.send_early(to, msg),
            Effect::Multicast { to: Destinations::AllOthers, msg } => ctx.broadcast(msg),
            Effect::Multicast { to: Destinations::Nodes(to), msg } => ctx.multicast(to, msg),
            Effect::MulticastEarly { to: Destinations::AllOthers, msg } => ctx.broadcast_early(msg),
            Effect::MulticastEarly { to: Destinations::Nodes(to), msg } => ctx.multicast_early(to, msg),
            Effect::SetTimer { timer, after } => ctx.set_timer(timer, after),
            Effect::CancelTimer { timer } => ctx.cancel_timer(timer),
            Effect::Persist { key, value } => ctx.persist_bytes(key, value),
            Effect::Unpersist { key } => ctx.unpersist(key),
            Effect::UnpersistRange { from, to } => ctx.unpersist_range(from, to),
            Effect::PersistLater { key, value, done } => ctx.persist_later(key, value, done),
            Effect::Synced { done } => ctx.when_synced(done),
            Effect::Observe(o) => ctx.observe(o),
            Effect::OpBegin(op) => ctx.op_begin(op),
            Effect::OpEnd(op) => ctx.op_end(op),
        }
    }
}

impl Protocol for Hostile {
    type Msg = Msg;
    type Timer = Timer;
    type Obs = MarketObs;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        inner(ctx, |c| self.node.on_start(c));
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: Msg) {
        let from = match (&mut self.part, &msg) {
            (Part::Forger { .. }, Msg::Buy(buy)) if buy.buyer == from => {
                ctx.send(from, forged(buy));
                from
            }
            (Part::Forger { sent }, Msg::Answer { .. }) if !*sent => {
                *sent = true;
                for m in bad_input() {
                    ctx.send(from, m);
                }
                from
            }
            (Part::Spoofed, Msg::Answer { .. }) if from == FORGER => TRADER,
            _ => from,
        };
        inner(ctx, |c| self.node.on_message(c, from, msg));
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, timer: Timer) {
        inner(ctx, |c| self.node.on_timer(c, timer));
    }

    fn background(&self) -> bool {
        self.node.background()
    }
}

/// Test case 1 with a forger, and its victim's guard bypassed if `spoofed`.
struct HostileSetup {
    market: MarketSetup,
    spoofed: bool,
}

impl Setup for HostileSetup {
    type Node = Hostile;

    fn name(&self) -> &'static str {
        "market"
    }

    fn nodes(&self) -> usize {
        self.market.nodes()
    }

    fn build(&self, id: NodeId, stable: &Stable) -> Result<Hostile, Corrupt> {
        let part = match id {
            FORGER => Part::Forger { sent: false },
            VICTIM if self.spoofed => Part::Spoofed,
            _ => Part::Honest,
        };
        Ok(Hostile { node: self.market.build(id, stable)?, part })
    }

    fn checker(&self) -> Box<dyn Checker<Hostile>> {
        Box::new(MarketChecker::new(&self.market.s))
    }
}

fn run(seed: u64, spoofed: bool) -> Outcome<MarketObs> {
    let p = Params::new(7, seed).with(&SCENARIO, "test-case-1").with(&BUYS, 8u32).with(&SICK, 0.0);
    let market = MarketSetup::from_params(&p.resolve("market", MarketSetup::SPECS).unwrap()).unwrap();
    let mut cfg = SimConfig::new(seed);
    cfg.max_time = Time::from_millis(60_000);
    cfg.keep_observations = true;
    Simulation::new(HostileSetup { market, spoofed }, cfg).run()
}

#[test]
fn bad_input_is_refused_and_the_books_never_hold_it() {
    for seed in 0..8 {
        let o = run(seed, false);
        assert!(o.violations.is_empty(), "seed {seed}: {:?}", o.violations);
        let refused: BTreeSet<(u32, u32, Flaw)> = o
            .observations
            .iter()
            .filter_map(|(_, n, ob)| match ob {
                MarketObs::Refused { from, why } => Some((n.0, from.0, *why)),
                _ => None,
            })
            .collect();
        for want in [
            (TRADER.0, FORGER.0, Flaw::UnknownGood),
            (TRADER.0, FORGER.0, Flaw::Quantity),
            (TRADER.0, FORGER.0, Flaw::Impostor),
            (VICTIM.0, FORGER.0, Flaw::NotTrader),
        ] {
            assert!(refused.contains(&want), "seed {seed}: {want:?} not in {refused:?}");
        }
        let asked: BTreeSet<(NodeId, u64)> = o
            .observations
            .iter()
            .filter_map(|(_, n, ob)| match ob {
                MarketObs::Asked { buy } => Some((*n, buy.seq)),
                _ => None,
            })
            .collect();
        let mut paid = 0;
        let mut answered = 0;
        for (_, n, ob) in &o.observations {
            if let MarketObs::Answered { seq, result } = ob {
                assert!(asked.contains(&(*n, *seq)), "seed {seed}: buyer {n} answered for buy {seq}");
                answered += 1;
                if let BuyResult::Receipt { paid: p, .. } = result {
                    paid += p;
                }
            }
        }
        assert_eq!(answered, asked.len(), "seed {seed}: every buy answered once");
        let mut books = o.observations.iter().filter_map(|(_, _, ob)| match ob {
            MarketObs::Applied { book: 0, note } => Some(note),
            _ => None,
        });
        let last = books.clone().max_by_key(|n| n.pos.index).expect("the books applied something");
        assert_eq!(last.money.paid, paid, "seed {seed}: the books hold the buyers' receipts, no more");
        assert!(
            books.all(|note| match &note.event {
                Event::Trade { buy, .. } => asked.contains(&(buy.buyer, buy.seq)),
                Event::Deposit { seller, qty, .. } => *seller != FORGER && *qty <= MAX_STOCK,
                Event::Refused { .. } => false,
                _ => true,
            }),
            "seed {seed}: bad input reached the books"
        );
    }
}

#[test]
fn a_forged_receipt_taken_under_the_traders_name_is_caught() {
    for seed in 0..8 {
        let o = run(seed, true);
        let caught: Vec<&str> = o.violations.iter().map(|v| v.property).collect();
        assert_eq!(caught, ["trade-exactly-once"], "seed {seed}");
        assert_eq!(o.violations[0].node, Some(VICTIM), "seed {seed}");
    }
}
