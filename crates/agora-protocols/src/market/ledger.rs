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
//! - A request id `(buyer, seq)` takes effect once: its answer (a receipt or "out of stock") is
//!   kept, and the same request submitted again, by a retry or by a new trader, gets it back.
//! - **Fencing.** A trader first commits [`Command::Takeover`]; the book gives it the next
//!   fence (one above the last) and from then on refuses trades carrying an older fence. A fence
//!   has one trader, and only the newest fence's trades apply: at most one trader per term.
//!
//! Each command leaves a [`Note`] for the host to report, which the checker judges.

use super::roles::{Buy, BuyResult, Good, Lot, COMMISSION_CENTS, PRICE_CENTS};
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
    /// The trader of fence `fence` sells for `buy`.
    Trade {
        /// The fence the trader got with its takeover.
        fence: u64,
        /// The trader submitting it.
        trader: NodeId,
        /// The buy served.
        buy: Buy,
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

    fn deposit(&mut self, pos: Pos, seller: NodeId, id: u64, good: Good, qty: u64) -> Output {
        let fresh = self.deposited.insert((seller, id));
        if fresh {
            *self.deposits.entry((seller, good)).or_insert(0) += qty;
        }
        self.note(pos, Event::Deposit { seller, id, good, qty, fresh }, &[(seller, good)]);
        Output::Stocked
    }

    fn inventory(&mut self, pos: Pos, seller: NodeId, good: Good, qty: u64) -> Output {
        let fresh = self.declared.insert(seller);
        if fresh {
            *self.deposits.entry((seller, good)).or_insert(0) += qty;
        }
        self.note(pos, Event::Inventory { seller, good, qty, fresh }, &[(seller, good)]);
        Output::Stocked
    }

    fn trade(&mut self, pos: Pos, fence: u64, trader: NodeId, buy: Buy) -> Output {
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
        let answer = self.sell(trader, buy);
        self.served.insert(key, answer.clone());
        let touched: Vec<(NodeId, Good)> = match &answer {
            BuyResult::Receipt { lots, .. } => lots.iter().map(|l| (l.seller, buy.good)).collect(),
            BuyResult::OutOfStock => Vec::new(),
        };
        let event = Event::Trade { trader, fence, buy, answer: Some(answer.clone()), fresh: true };
        self.note(pos, event, &touched);
        Output::Answer(answer)
    }

    /// Takes `buy.qty` units of the good from the deposits, in seller order, and moves the
    /// money; out of stock, and nothing changes, if the deposits hold fewer.
    fn sell(&mut self, trader: NodeId, buy: Buy) -> BuyResult {
        let holders: Vec<(NodeId, u64)> = self
            .deposits
            .iter()
            .filter(|((_, g), units)| *g == buy.good && **units > 0)
            .map(|((s, _), units)| (*s, *units))
            .collect();
        if holders.iter().map(|(_, u)| u).sum::<u64>() < buy.qty {
            return BuyResult::OutOfStock;
        }
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
            *self.income.entry(seller).or_insert(0) += take * (PRICE_CENTS - COMMISSION_CENTS);
            *self.commission.entry(trader).or_insert(0) += take * COMMISSION_CENTS;
            lots.push(Lot { seller, units: take, left });
        }
        let paid = buy.qty * PRICE_CENTS;
        self.money.paid += paid;
        self.money.to_sellers += buy.qty * (PRICE_CENTS - COMMISSION_CENTS);
        self.money.commission += buy.qty * COMMISSION_CENTS;
        BuyResult::Receipt { lots, paid }
    }
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
            Command::Trade { fence, trader, buy } => self.trade(pos, fence, trader, buy),
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

    fn buy(buyer: u32, seq: u64, qty: u64) -> Buy {
        Buy { buyer: NodeId(buyer), seq, good: Good::Fish, qty, ts: seq + 1 }
    }

    #[test]
    fn a_trade_sells_once_never_below_zero_and_only_under_the_newest_fence() {
        let mut l = Ledger::default();
        assert_eq!(l.apply(pos(1), &Command::Takeover { trader: NodeId(4) }), Output::Fenced(1));
        let dep = Command::Deposit { seller: NodeId(1), id: 0, good: Good::Fish, qty: 3 };
        l.apply(pos(2), &dep);
        l.apply(pos(3), &dep);
        assert_eq!(l.on_deposit(NodeId(1), Good::Fish), 3, "a deposit applies once");
        let first = l.apply(pos(4), &Command::Trade { fence: 1, trader: NodeId(4), buy: buy(0, 0, 2) });
        let lots = vec![Lot { seller: NodeId(1), units: 2, left: 1 }];
        assert_eq!(first, Output::Answer(BuyResult::Receipt { lots, paid: 200 }));
        let again = l.apply(pos(5), &Command::Trade { fence: 1, trader: NodeId(4), buy: buy(0, 0, 2) });
        assert_eq!(again, first, "a retried request gets its first answer");
        let short = l.apply(pos(6), &Command::Trade { fence: 1, trader: NodeId(4), buy: buy(2, 0, 2) });
        assert_eq!(short, Output::Answer(BuyResult::OutOfStock));
        assert_eq!(l.apply(pos(7), &Command::Takeover { trader: NodeId(3) }), Output::Fenced(2));
        let stale = l.apply(pos(8), &Command::Trade { fence: 1, trader: NodeId(4), buy: buy(2, 1, 1) });
        assert_eq!(stale, Output::Stale { fence: 2 });
        assert_eq!(l.on_deposit(NodeId(1), Good::Fish), 1);
        let m = l.money();
        assert_eq!((m.paid, m.to_sellers, m.commission), (200, 180, 20));
        assert_eq!(l.notes.len(), 8);
    }
}
