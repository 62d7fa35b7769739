//! The ledger: the market's books as a deterministic state machine — deposits, seller
//! income, the trader's commission, the buyers' receipts and the request ids served — and the
//! fencing of traders.
//!
//! With `--ledger replicated` it is the [`StateMachine`] of a Raft log, applied by every
//! replica in log order; with `--ledger local` a trader applies the same commands to a book in
//! its own memory. Either way:
//!
//! - A trade applies only if the good's deposits hold enough units, so no deposit goes below
//!   zero, however many traders submit trades.
//! - **Bad input is refused**, never applied and never a panic: a deposit or inventory above
//!   [`MAX_STOCK`] units, a trade of no units or more than [`MAX_STOCK`], a price outside
//!   `1..=`[`MAX_PRICE_CENTS`] or a commission not below it, anything that would overflow the
//!   books' totals ([`Output::Refused`]). The trader checks buys and deposits against the
//!   catalog before they reach the books; this is the second line of defence.
//! - A request id `(buyer, seq)` takes effect once: its answer (a receipt or "out of stock") is
//!   kept, and the same request submitted again, by a retry or by a new trader, gets it back.
//! - **Fencing.** A trader first commits [`Command::Takeover`]; the book gives it the next
//!   fence (one above the last) and from then on refuses trades carrying an older fence. A fence
//!   has one trader, and only the newest fence's trades apply: at most one trader per term.
//!
//! Each command leaves a [`Note`] for the host to report, which the checker judges.

use super::flaw::Flaw;
use super::goods::{Good, MAX_PRICE_CENTS, MAX_STOCK};
use super::roles::{Buy, BuyResult, Lot};
use crate::raft::{Pos, StateMachine};
use agora_core::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A change to the books.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// `trader` takes the post: it gets the next fence.
    Takeover {
        /// The new trader.
        trader: NodeId,
    },
    /// A seller brings `qty` new units of `good` (its deposit number `id`, applied once).
    Deposit {
        /// The seller.
        seller: NodeId,
        /// The seller's deposit number.
        id: u64,
        /// The good.
        good: Good,
        /// Units brought.
        qty: u64,
    },
    /// A seller declares what it believes it still has on deposit: how a new book of the
    /// local ledger learns the stock (the report's design). Once per seller and book.
    Inventory {
        /// The seller.
        seller: NodeId,
        /// The good.
        good: Good,
        /// Units declared.
        qty: u64,
    },
    /// The trader of fence `fence` sells for `buy`, at its catalog's terms.
    Trade {
        /// The fence the trader got with its takeover.
        fence: u64,
        /// The trader submitting it.
        trader: NodeId,
        /// The buy served.
        buy: Buy,
        /// The price of a unit of the good, in cents.
        price: u64,
        /// The trader's commission on each unit, in cents: below the price.
        commission: u64,
    },
}

/// What the books answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Output {
    /// The takeover's fence.
    Fenced(u64),
    /// The deposit or inventory is in the books (now or before).
    Stocked,
    /// The buy's answer (its first, for a request served before).
    Answer(BuyResult),
    /// The trade's fence is not the newest: nothing applied.
    Stale {
        /// The newest fence.
        fence: u64,
    },
    /// Out of bounds: nothing applied.
    Refused(Flaw),
}

/// What a command did to the books, for the checker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A takeover: `trader` holds `fence`.
    Takeover {
        /// The new trader.
        trader: NodeId,
        /// Its fence.
        fence: u64,
    },
    /// A deposit; `fresh` unless it was applied before.
    Deposit {
        /// The seller.
        seller: NodeId,
        /// Its deposit number.
        id: u64,
        /// The good.
        good: Good,
        /// Units.
        qty: u64,
        /// First time applied.
        fresh: bool,
    },
    /// An inventory declaration; `fresh` unless the seller declared before in this book.
    Inventory {
        /// The seller.
        seller: NodeId,
        /// The good.
        good: Good,
        /// Units.
        qty: u64,
        /// First declaration.
        fresh: bool,
    },
    /// A trade: its answer, `fresh` if it took effect now; a stale trade has no answer.
    Trade {
        /// The trader that submitted it.
        trader: NodeId,
        /// Its fence.
        fence: u64,
        /// The buy.
        buy: Buy,
        /// The answer, or `None` when refused as stale.
        answer: Option<BuyResult>,
        /// It took effect now.
        fresh: bool,
    },
    /// A command refused as out of bounds: nothing changed.
    Refused {
        /// Why.
        why: Flaw,
    },
}

/// Money moved by the books, in cents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    /// Paid by buyers.
    pub paid: u64,
    /// Paid to sellers.
    pub to_sellers: u64,
    /// Kept as the traders' commission.
    pub commission: u64,
}

/// One applied command as the books saw it: where, what, and the books' totals after it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// Its position (a log position, or the command's number in a local book).
    pub pos: Pos,
    /// What it did.
    pub event: Event,
    /// `(seller, good, units on deposit)` after it, for each deposit it touched.
    pub stock: Vec<(NodeId, Good, u64)>,
    /// The money totals after it.
    pub money: Money,
}

/// The market's books.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Ledger {
    /// The newest fence.
    fence: u64,
    /// Units on deposit by `(seller, good)`.
    deposits: BTreeMap<(NodeId, Good), u64>,
    /// Deposit numbers applied, by seller.
    deposited: BTreeSet<(NodeId, u64)>,
    /// Sellers that declared their inventory.
    declared: BTreeSet<NodeId>,
    /// The answer to every request id served.
    served: BTreeMap<(NodeId, u64), BuyResult>,
    /// Income of each seller, in cents.
    income: BTreeMap<NodeId, u64>,
    /// Commission of each trader, in cents.
    commission: BTreeMap<NodeId, u64>,
    money: Money,
    /// What was applied since the host last looked. Not replicated.
    #[serde(skip)]
    pub notes: Vec<Note>,
}

impl Ledger {
    /// Units of `good` in `seller`'s deposit.
    pub fn on_deposit(&self, seller: NodeId, good: Good) -> u64 {
        self.deposits.get(&(seller, good)).copied().unwrap_or(0)
    }

    /// The newest fence (0 before any takeover).
    pub fn fence(&self) -> u64 {
        self.fence
    }

    /// The money totals.
    pub fn money(&self) -> Money {
        self.money
    }

    fn note(&mut self, pos: Pos, event: Event, touched: &[(NodeId, Good)]) {
        let stock = touched.iter().map(|&(s, g)| (s, g, self.on_deposit(s, g))).collect();
        self.notes.push(Note { pos, event, stock, money: self.money });
    }

    /// Refuses the command at `pos` for `why`: nothing changes.
    fn refuse(&mut self, pos: Pos, why: Flaw) -> Output {
        self.note(pos, Event::Refused { why }, &[]);
        Output::Refused(why)
    }

    /// `seller`'s deposit of `good` with `qty` more units, if within bounds.
    fn stocked(&self, seller: NodeId, good: Good, qty: u64) -> Result<u64, Flaw> {
        if qty > MAX_STOCK {
            return Err(Flaw::Quantity);
        }
        self.on_deposit(seller, good).checked_add(qty).ok_or(Flaw::Overflow)
    }

    fn deposit(&mut self, pos: Pos, seller: NodeId, id: u64, good: Good, qty: u64) -> Output {
        let total = match self.stocked(seller, good, qty) {
            Ok(total) => total,
            Err(why) => return self.refuse(pos, why),
        };
        let fresh = self.deposited.insert((seller, id));
        if fresh {
            self.deposits.insert((seller, good), total);
        }
        self.note(pos, Event::Deposit { seller, id, good, qty, fresh }, &[(seller, good)]);
        Output::Stocked
    }

    fn inventory(&mut self, pos: Pos, seller: NodeId, good: Good, qty: u64) -> Output {
        let total = match self.stocked(seller, good, qty) {
            Ok(total) => total,
            Err(why) => return self.refuse(pos, why),
        };
        let fresh = self.declared.insert(seller);
        if fresh {
            self.deposits.insert((seller, good), total);
        }
        self.note(pos, Event::Inventory { seller, good, qty, fresh }, &[(seller, good)]);
        Output::Stocked
    }

    fn trade(&mut self, pos: Pos, fence: u64, trader: NodeId, buy: Buy, terms: Terms) -> Output {
        let key = (buy.buyer, buy.seq);
        if fence != self.fence {
            self.note(pos, Event::Trade { trader, fence, buy, answer: None, fresh: false }, &[]);
            return Output::Stale { fence: self.fence };
        }
        if let Some(answer) = self.served.get(&key).cloned() {
            let event = Event::Trade { trader, fence, buy, answer: Some(answer.clone()), fresh: false };
            self.note(pos, event, &[]);
            return Output::Answer(answer);
        }
        let answer = match self.sell(trader, buy, terms) {
            Ok(answer) => answer,
            Err(why) => return self.refuse(pos, why),
        };
        self.served.insert(key, answer.clone());
        let touched: Vec<(NodeId, Good)> = match &answer {
            BuyResult::Receipt { lots, .. } => lots.iter().map(|l| (l.seller, buy.good)).collect(),
            BuyResult::OutOfStock | BuyResult::Invalid { .. } => Vec::new(),
        };
        let event = Event::Trade { trader, fence, buy, answer: Some(answer.clone()), fresh: true };
        self.note(pos, event, &touched);
        Output::Answer(answer)
    }

    /// Takes `buy.qty` units of the good from the deposits, in seller order, and moves the
    /// money; out of stock, and nothing changes, if the deposits hold fewer. Refused, and
    /// nothing changes, if the quantity or the terms are out of bounds or a total would
    /// overflow.
    fn sell(&mut self, trader: NodeId, buy: Buy, terms: Terms) -> Result<BuyResult, Flaw> {
        if buy.qty == 0 || buy.qty > MAX_STOCK {
            return Err(Flaw::Quantity);
        }
        let Terms { price, commission } = terms;
        if price == 0 || price > MAX_PRICE_CENTS || commission >= price {
            return Err(Flaw::Price);
        }
        let holders: Vec<(NodeId, u64)> = self
            .deposits
            .iter()
            .filter(|((_, g), units)| *g == buy.good && **units > 0)
            .map(|((s, _), units)| (*s, *units))
            .collect();
        if holders.iter().fold(0u64, |sum, (_, u)| sum.saturating_add(*u)) < buy.qty {
            return Ok(BuyResult::OutOfStock);
        }
        // Both factors are bounded, so the products fit; the totals are checked before anything
        // moves, and each seller's income and trader's commission is a part of a total.
        let (paid, to_sellers) = (buy.qty * price, buy.qty * (price - commission));
        let add = |total: u64, more: u64| total.checked_add(more).ok_or(Flaw::Overflow);
        let money = Money {
            paid: add(self.money.paid, paid)?,
            to_sellers: add(self.money.to_sellers, to_sellers)?,
            commission: add(self.money.commission, paid - to_sellers)?,
        };
        let mut want = buy.qty;
        let mut lots = Vec::new();
        for (seller, units) in holders {
            if want == 0 {
                break;
            }
            let take = units.min(want);
            want -= take;
            let left = units - take;
            self.deposits.insert((seller, buy.good), left);
            *self.income.entry(seller).or_insert(0) += take * (price - commission);
            *self.commission.entry(trader).or_insert(0) += take * commission;
            lots.push(Lot { seller, units: take, left });
        }
        self.money = money;
        Ok(BuyResult::Receipt { lots, paid })
    }
}

/// The terms of a trade: the price of a unit and the commission on it, in cents.
#[derive(Clone, Copy, Debug)]
struct Terms {
    price: u64,
    commission: u64,
}

impl StateMachine for Ledger {
    type Command = Command;
    type Query = ();
    type Output = Output;

    fn apply(&mut self, pos: Pos, cmd: &Command) -> Output {
        match *cmd {
            Command::Takeover { trader } => {
                self.fence += 1;
                let fence = self.fence;
                self.note(pos, Event::Takeover { trader, fence }, &[]);
                Output::Fenced(fence)
            }
            Command::Deposit { seller, id, good, qty } => self.deposit(pos, seller, id, good, qty),
            Command::Inventory { seller, good, qty } => self.inventory(pos, seller, good, qty),
            Command::Trade { fence, trader, buy, price, commission } => {
                self.trade(pos, fence, trader, buy, Terms { price, commission })
            }
        }
    }

    fn query(&self, _: &()) -> Output {
        Output::Fenced(self.fence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(i: u64) -> Pos {
        Pos { index: i, offset: 0 }
    }

    const FISH: Good = Good(0);

    fn buy(buyer: u32, seq: u64, qty: u64) -> Buy {
        Buy { buyer: NodeId(buyer), seq, good: FISH, qty, ts: seq + 1 }
    }

    /// Trader 4's trade for `buy` under `fence`, at the report's terms.
    fn trade(fence: u64, buy: Buy) -> Command {
        Command::Trade { fence, trader: NodeId(4), buy, price: 100, commission: 10 }
    }

    #[test]
    fn a_trade_sells_once_never_below_zero_and_only_under_the_newest_fence() {
        let mut l = Ledger::default();
        assert_eq!(l.apply(pos(1), &Command::Takeover { trader: NodeId(4) }), Output::Fenced(1));
        let dep = Command::Deposit { seller: NodeId(1), id: 0, good: FISH, qty: 3 };
        l.apply(pos(2), &dep);
        l.apply(pos(3), &dep);
        assert_eq!(l.on_deposit(NodeId(1), FISH), 3, "a deposit applies once");
        let first = l.apply(pos(4), &trade(1, buy(0, 0, 2)));
        let lots = vec![Lot { seller: NodeId(1), units: 2, left: 1 }];
        assert_eq!(first, Output::Answer(BuyResult::Receipt { lots, paid: 200 }));
        let again = l.apply(pos(5), &trade(1, buy(0, 0, 2)));
        assert_eq!(again, first, "a retried request gets its first answer");
        let short = l.apply(pos(6), &trade(1, buy(2, 0, 2)));
        assert_eq!(short, Output::Answer(BuyResult::OutOfStock));
        assert_eq!(l.apply(pos(7), &Command::Takeover { trader: NodeId(3) }), Output::Fenced(2));
        let stale = l.apply(pos(8), &trade(1, buy(2, 1, 1)));
        assert_eq!(stale, Output::Stale { fence: 2 });
        assert_eq!(l.on_deposit(NodeId(1), FISH), 1);
        let m = l.money();
        assert_eq!((m.paid, m.to_sellers, m.commission), (200, 180, 20));
        assert_eq!(l.notes.len(), 8);
    }

    #[test]
    fn bad_input_is_refused_and_changes_nothing() {
        let mut l = Ledger::default();
        l.apply(pos(1), &Command::Takeover { trader: NodeId(4) });
        l.apply(pos(2), &Command::Deposit { seller: NodeId(1), id: 0, good: FISH, qty: 3 });
        let absurd = Command::Deposit { seller: NodeId(1), id: 1, good: FISH, qty: u64::MAX };
        assert_eq!(l.apply(pos(3), &absurd), Output::Refused(Flaw::Quantity));
        let declared = Command::Inventory { seller: NodeId(2), good: FISH, qty: 1 << 60 };
        assert_eq!(l.apply(pos(4), &declared), Output::Refused(Flaw::Quantity));
        for qty in [0, MAX_STOCK + 1, u64::MAX] {
            assert_eq!(l.apply(pos(5), &trade(1, buy(0, 9, qty))), Output::Refused(Flaw::Quantity));
        }
        for (price, commission) in [(0, 0), (100, 100), (MAX_PRICE_CENTS + 1, 10)] {
            let t = Command::Trade { fence: 1, trader: NodeId(4), buy: buy(0, 7, 1), price, commission };
            assert_eq!(l.apply(pos(6), &t), Output::Refused(Flaw::Price));
        }
        assert_eq!(l.on_deposit(NodeId(1), FISH), 3);
        assert_eq!(l.money(), Money::default());
        assert!(l.served.is_empty() && !l.deposited.contains(&(NodeId(1), 1)));
        // The request refused can still be served at sane terms.
        let ok = l.apply(pos(7), &trade(1, buy(0, 7, 1)));
        assert!(matches!(ok, Output::Answer(BuyResult::Receipt { paid: 100, .. })), "{ok:?}");
    }

    #[test]
    fn totals_that_would_overflow_are_refused() {
        let mut l = Ledger::default();
        l.apply(pos(1), &Command::Takeover { trader: NodeId(4) });
        l.money.paid = u64::MAX - 50;
        l.apply(pos(2), &Command::Deposit { seller: NodeId(1), id: 0, good: FISH, qty: 3 });
        assert_eq!(l.apply(pos(3), &trade(1, buy(0, 0, 1))), Output::Refused(Flaw::Overflow));
        assert_eq!(l.on_deposit(NodeId(1), FISH), 3);
        l.deposits.insert((NodeId(1), FISH), u64::MAX - 1);
        let more = Command::Deposit { seller: NodeId(1), id: 1, good: FISH, qty: 2 };
        assert_eq!(l.apply(pos(4), &more), Output::Refused(Flaw::Overflow));
    }
}
