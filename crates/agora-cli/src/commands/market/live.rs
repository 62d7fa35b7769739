//! `agora market --ui`: the market's own view on the live page — the trader, and the trades
//! as the buyers get their answers.

use crate::commands::shared::ui::sampler::System;
use agora_core::NodeId;
use agora_protocols::market::roles::BuyResult;
use agora_protocols::market::setup::Settings;
use agora_protocols::market::MarketObs;
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// Trades the view lists, the latest first.
const SHOWN: usize = 20;

/// The observations the page needs, chosen on the node: all but the books' (every replica
/// reports each command it applies).
pub(super) fn keep(o: &MarketObs) -> bool {
    !matches!(o, MarketObs::Applied { .. })
}

/// The trader and the trades seen so far.
pub(super) struct Trades {
    s: Arc<Settings>,
    /// The buys asked, until answered: (buyer, seq) → (good's name, units).
    asked: BTreeMap<(NodeId, u64), (String, u64)>,
    latest: VecDeque<Value>,
    sold: u64,
    out_of_stock: u64,
    invalid: u64,
    paid_cents: u64,
    trader: Option<NodeId>,
    announced: u64,
}

impl Trades {
    pub(super) fn new(s: Arc<Settings>) -> Self {
        Trades {
            s,
            asked: BTreeMap::new(),
            latest: VecDeque::new(),
            sold: 0,
            out_of_stock: 0,
            invalid: 0,
            paid_cents: 0,
            trader: None,
            announced: 0,
        }
    }

    fn answered(&mut self, buyer: NodeId, seq: u64, result: &BuyResult) {
        let (good, qty) = self.asked.remove(&(buyer, seq)).unwrap_or_else(|| ("?".into(), 0));
        let outcome = match result {
            BuyResult::Receipt { paid, .. } => {
                self.sold += 1;
                self.paid_cents += paid;
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
        let trader = self.trader.map(|t| format!("node {t}"));
        self.latest.push_front(json!([format!("node {buyer}"), seq, good, qty, outcome, trader]));
    }
}

impl System<MarketObs> for Trades {
    fn see(&mut self, node: NodeId, o: &MarketObs) {
        match o {
            MarketObs::Asked { buy } => {
                let name = self.s.catalog.name(buy.good).to_string();
                self.asked.insert((buy.buyer, buy.seq), (name, buy.qty));
            }
            MarketObs::Answered { seq, result } => self.answered(node, *seq, result),
            MarketObs::Announced { .. } => {
                self.trader = Some(node);
                self.announced += 1;
            }
            _ => {}
        }
    }

    fn view(&self) -> Value {
        let trader = self.trader.map_or("none yet".to_string(), |t| format!("node {t}"));
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
        })
    }
}
