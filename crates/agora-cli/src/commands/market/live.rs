//! `agora market --ui`: the market's own view on the live page — the trader, the trades as
//! the buyers get their answers, each good's price and stock, and each peer's account (cash
//! and goods, as the report reads them: `report::settle`), all from the peers' observations.

use super::report::{accounts, settle, Account};
use crate::commands::shared::ui::sampler::System;
use agora_core::NodeId;
use agora_protocols::market::roles::{Buy, BuyResult};
use agora_protocols::market::setup::Settings;
use agora_protocols::market::MarketObs;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// Trades the view lists, the latest first.
const SHOWN: usize = 20;
/// Accounts the view lists, by peer; and goods.
const ACCOUNTS: usize = 100;
const GOODS: usize = 40;

/// The observations the page needs, chosen on the node: all but the books' (every replica
/// reports each command it applies).
pub(super) fn keep(o: &MarketObs) -> bool {
    !matches!(o, MarketObs::Applied { .. })
}

/// The trader and the trades seen so far.
pub(crate) struct Trades {
    s: Arc<Settings>,
    /// The buys asked, until answered, by (buyer, seq).
    asked: BTreeMap<(NodeId, u64), Buy>,
    /// The request ids answered, by buyer: a restarted buyer asks again, and is answered
    /// again, for the buys of its last plan.
    answered: Vec<Answered>,
    latest: VecDeque<Value>,
    sold: u64,
    out_of_stock: u64,
    invalid: u64,
    paid_cents: u64,
    /// Per peer, while it holds the post: the number of its announcement (1 for the first
    /// seen). The trader is the holder announced last, as the page's lead says: a peer's
    /// log may be read after a later trader's, so the last announcement read can be of a
    /// peer that has since resigned.
    holding: Vec<Option<u64>>,
    announced: u64,
    accounts: Vec<Account>,
    /// Per good, in catalog order: units deposited, units sold, and the last sale's (cents
    /// paid, units).
    goods: Vec<Stock>,
}

/// One buyer's request ids answered: every one below `below`, and those in `above`.
#[derive(Default)]
struct Answered {
    below: u64,
    above: BTreeSet<u64>,
}

impl Answered {
    /// Marks `seq` answered; false if it already was.
    fn insert(&mut self, seq: u64) -> bool {
        if self.contains(seq) {
            return false;
        }
        self.above.insert(seq);
        while self.above.remove(&self.below) {
            self.below += 1;
        }
        true
    }

    fn contains(&self, seq: u64) -> bool {
        seq < self.below || self.above.contains(&seq)
    }
}

/// What the observations say of a good so far.
#[derive(Clone, Default)]
struct Stock {
    deposited: u64,
    sold: u64,
    last: Option<(u64, u64)>,
}

impl Trades {
    pub(crate) fn new(s: Arc<Settings>) -> Self {
        Trades {
            asked: BTreeMap::new(),
            answered: (0..s.roles.len()).map(|_| Answered::default()).collect(),
            latest: VecDeque::new(),
            sold: 0,
            out_of_stock: 0,
            invalid: 0,
            paid_cents: 0,
            holding: vec![None; s.roles.len()],
            announced: 0,
            accounts: accounts(&s),
            goods: vec![Stock::default(); s.catalog.wares.len()],
            s,
        }
    }

    /// The peer that holds the post and announced last, if any.
    fn trader(&self) -> Option<NodeId> {
        let held = self.holding.iter().enumerate().filter_map(|(i, h)| Some((h.as_ref()?, i)));
        held.max().map(|(_, i)| NodeId(i as u32))
    }

    /// Buys sold so far, and the cents buyers paid for them.
    #[cfg(test)]
    pub(crate) fn sold_and_paid(&self) -> (u64, u64) {
        (self.sold, self.paid_cents)
    }

    fn answered(&mut self, buyer: NodeId, seq: u64, result: &BuyResult) {
        if !self.answered.get_mut(buyer.index()).is_some_and(|a| a.insert(seq)) {
            return;
        }
        let buy = self.asked.remove(&(buyer, seq));
        let (good, qty) =
            buy.map_or_else(|| ("?".into(), 0), |b| (self.s.catalog.name(b.good).to_string(), b.qty));
        if let Some(b) = &buy {
            settle(&mut self.accounts, &self.s.catalog, buyer, b, result);
        }
        let outcome = match result {
            BuyResult::Receipt { paid, lots } => {
                self.sold += 1;
                self.paid_cents += paid;
                let units: u64 = lots.iter().map(|l| l.units).sum();
                if let Some(g) = buy.and_then(|b| self.goods.get_mut(b.good.0 as usize)) {
                    g.sold += units;
                    g.last = Some((*paid, units));
                }
                format!("sold for {}.{:02}", paid / 100, paid % 100)
            }
            BuyResult::OutOfStock => {
                self.out_of_stock += 1;
                "out of stock".to_string()
            }
            BuyResult::Invalid { .. } => {
                self.invalid += 1;
                "invalid".to_string()
            }
        };
        if self.latest.len() == SHOWN {
            self.latest.pop_back();
        }
        let trader = self.trader().map(|t| format!("node {t}"));
        self.latest.push_front(json!([format!("node {buyer}"), seq, good, qty, outcome, trader]));
    }
}

impl System<MarketObs> for Trades {
    fn see(&mut self, node: NodeId, o: &MarketObs) {
        match o {
            MarketObs::Asked { buy }
                if self.answered.get(buy.buyer.index()).is_some_and(|a| !a.contains(buy.seq)) =>
            {
                self.asked.insert((buy.buyer, buy.seq), *buy);
            }
            MarketObs::Answered { seq, result } => self.answered(node, *seq, result),
            MarketObs::Announced { .. } => {
                self.announced += 1;
                if let Some(h) = self.holding.get_mut(node.index()) {
                    *h = Some(self.announced);
                }
                if let Some(a) = self.accounts.get_mut(node.index()) {
                    a.trader += 1;
                }
            }
            MarketObs::Resigned | MarketObs::Sick | MarketObs::Left => {
                if let Some(h) = self.holding.get_mut(node.index()) {
                    *h = None;
                }
            }
            MarketObs::Handed { good, qty, .. } => {
                if let Some(g) = self.goods.get_mut(good.0 as usize) {
                    g.deposited += qty;
                }
            }
            _ => {}
        }
    }

    fn crashed(&mut self, node: NodeId) {
        if let Some(h) = self.holding.get_mut(node.index()) {
            *h = None;
        }
    }

    fn view(&self) -> Value {
        let trader = self.trader().map_or("none yet".to_string(), |t| format!("node {t}"));
        let paid = self.paid_cents;
        let note = format!(
            "trader: {trader} ({} announced); {} sold for {}.{:02} in all, {} out of stock, {} invalid",
            self.announced,
            self.sold,
            paid / 100,
            paid % 100,
            self.out_of_stock,
            self.invalid
        );
        json!({
            "title": "Trades, the latest first",
            "columns": ["Buyer", "Request", "Good", "Units", "Outcome", "Trader"],
            "rows": self.latest,
            "note": note,
            "more": [self.prices(), self.accounts_table()],
            "accounts": self.accounts.iter().take(ACCOUNTS).collect::<Vec<_>>(),
        })
    }
}

/// Cents as `12.34` (`-12.34` for a debit).
fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", cents.unsigned_abs() / 100, cents.unsigned_abs() % 100)
}

impl Trades {
    /// Each good: its price in the catalog, what the last sale paid per unit, the units
    /// deposited and sold so far, and what is left of them.
    fn prices(&self) -> Value {
        let rows: Vec<Value> = self
            .s
            .catalog
            .wares
            .iter()
            .zip(&self.goods)
            .take(GOODS)
            .map(|(w, g)| {
                let last = g.last.filter(|(_, u)| *u > 0).map(|(paid, units)| money((paid / units) as i64));
                json!([
                    w.name,
                    money(w.price_cents as i64),
                    last,
                    g.deposited,
                    g.sold,
                    g.deposited.saturating_sub(g.sold)
                ])
            })
            .collect();
        json!({
            "id": "prices",
            "title": "Goods and prices",
            "columns": ["Good", "Price", "Last paid per unit", "Deposited", "Sold", "Left"],
            "rows": rows,
            "note": "Deposits as the sellers observe them in the books, sales as the buyers' receipts say.",
        })
    }

    /// Each peer's account, as the answers tell it (the report's accounts, so far).
    fn accounts_table(&self) -> Value {
        let rows: Vec<Value> = self
            .accounts
            .iter()
            .take(ACCOUNTS)
            .map(|a| {
                let goods: Vec<String> = a.goods.iter().map(|(g, n)| format!("{g} {n}")).collect();
                json!([format!("node {}", a.peer), a.role, a.trader, money(a.cash_cents), goods.join(", ")])
            })
            .collect();
        let more = self.accounts.len().saturating_sub(ACCOUNTS);
        let note = if more > 0 {
            format!("the first {ACCOUNTS} peers of {}", self.accounts.len())
        } else {
            String::new()
        };
        json!({
            "id": "accounts",
            "title": "Accounts",
            "columns": ["Peer", "Role", "Trader (times)", "Cash", "Goods (bought or sold)"],
            "rows": rows,
            "note": note,
        })
    }
}
