//! The market's properties, judged from what peers and books report; with the replicated
//! ledger, Raft's own properties on top ([`RaftChecker`]).
//!
//! - *goods-conserved* (always): in every book, per seller and good, what was deposited
//!   (deposits and declared inventory) = what was sold + what the book says is on deposit.
//! - *money-conserved* (always): in every book, what buyers paid = what sellers got + the
//!   commission, to the cent, and the book's totals are the sum of its receipts.
//! - *trade-exactly-once* (always): no request id `(buyer, seq)` takes effect twice, in any
//!   book; every answer a buyer gets is the one the books applied for its request (or a
//!   refusal as bad input, for a request the books never applied): a forged receipt a buyer
//!   took is caught here. With the replicated ledger, answers leave before the books' reports
//!   of the trade are made, so a buyer may report an answer first (and, the trader and the
//!   ledger's leader killed, before any book does): it is judged when a book reports the
//!   trade, and is undecided ([`Checker::undecided`]) until then.
//! - *no-negative-stock* (always): across every book, the units of a seller's good sold never
//!   exceed the new goods it brought (deposits, each counted once): nothing is sold twice.
//! - *fair-last-unit* (always): a buy served while an earlier one (by timestamp, then buyer)
//!   of the same good waited at the same trader does not get goods that the earlier one is then
//!   refused as out of stock.
//! - *one-trader-per-term* (always, replicated ledger): each takeover gets the next fence,
//!   a fence has one trader, and a trade applies only under the newest fence, from its trader.
//! - *all-answered* (at end, once the run ended on its own with no partition in force and, with
//!   the replicated ledger, a majority of its replicas up): every live buyer has an answer to
//!   every buy it asked, and every live peer that fell sick came back.

use super::goods::{Catalog, Good};
use super::ledger::{Event, Money, Note};
use super::obs::MarketObs;
use super::roles::{Buy, BuyResult};
use super::setup::{LedgerMode, Settings};
use crate::raft::checker::RaftChecker;
use agora_core::{
    Checker, EndState, Lifecycle, NodeId, NotJudged, Property, PropertyKind, Protocol, Time, Violation,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// A request id.
type Req = (NodeId, u64);

/// What the checker recomputes of one book.
#[derive(Clone, Default)]
struct Book {
    /// Deposited and declared, less sold, by `(seller, good)`.
    held: HashMap<(NodeId, Good), u64>,
    money: Money,
}

/// Judges market runs.
#[derive(Clone)]
pub struct MarketChecker {
    raft: Option<RaftChecker>,
    catalog: Catalog,
    replicas: Vec<NodeId>,
    /// Positions already judged, by book.
    seen: HashSet<(u64, u64, u32)>,
    books: HashMap<u64, Book>,
    /// New goods brought, by `(seller, good)`, and the deposits counted.
    brought: HashMap<(NodeId, Good), u64>,
    deposits: HashSet<(NodeId, u64)>,
    /// Sold across every book, by `(seller, good)`.
    sold: HashMap<(NodeId, Good), u64>,
    /// The answer each request id took effect with.
    applied: HashMap<Req, BuyResult>,
    /// The fences of the replicated ledger, and the newest.
    fences: BTreeMap<u64, NodeId>,
    fence: u64,
    /// Per trader: buys queued and not served in its stint.
    pending: Vec<BTreeMap<(u64, u32, u64), Buy>>,
    /// Served ahead of an earlier waiting buy of the same good: earlier → later, later → earlier.
    overtook: HashMap<Req, Vec<Req>>,
    overtaken: HashMap<Req, Vec<Req>>,
    asked: Vec<BTreeSet<u64>>,
    answered: Vec<BTreeSet<u64>>,
    /// Answers taken for requests no book has reported applying yet.
    answered_ahead: HashMap<Req, BuyResult>,
    /// Fences a trader was told it holds before any book reported the takeover, by fence.
    fenced_ahead: BTreeMap<u64, NodeId>,
    /// Some book holder's reports may be missing ([`Checker::reports_lost`]).
    lost_any: bool,
    sick: Vec<bool>,
}

fn violation(property: &'static str, node: NodeId, at: Time, detail: String) -> Result<(), Violation> {
    Err(Violation::new(property, Some(node), at, detail))
}

impl MarketChecker {
    /// A checker for a run of `s`.
    pub fn new(s: &Settings) -> Self {
        let n = s.nodes();
        let replicated = s.ledger == LedgerMode::Replicated;
        let settle = s.raft.election_timeout * 250;
        MarketChecker {
            raft: replicated.then(|| RaftChecker::new(n, &s.raft.replicas, &[], settle)),
            catalog: s.catalog.clone(),
            replicas: if replicated { s.raft.replicas.clone() } else { Vec::new() },
            seen: HashSet::new(),
            books: HashMap::new(),
            brought: HashMap::new(),
            deposits: HashSet::new(),
            sold: HashMap::new(),
            applied: HashMap::new(),
            fences: BTreeMap::new(),
            fence: 0,
            pending: vec![BTreeMap::new(); n],
            overtook: HashMap::new(),
            overtaken: HashMap::new(),
            asked: vec![BTreeSet::new(); n],
            answered: vec![BTreeSet::new(); n],
            answered_ahead: HashMap::new(),
            fenced_ahead: BTreeMap::new(),
            lost_any: false,
            sick: vec![false; n],
        }
    }

    /// A note of `book`, judged the first time its position is reported.
    fn applied(&mut self, at: Time, node: NodeId, book: u64, note: &Note) -> Result<(), Violation> {
        if !self.seen.insert((book, note.pos.index, note.pos.offset)) {
            return Ok(());
        }
        match &note.event {
            Event::Takeover { trader, fence } if book == 0 => self.takeover(at, node, *trader, *fence)?,
            Event::Takeover { .. } => {}
            Event::Deposit { seller, id, good, qty, fresh: true } => {
                *self.books.entry(book).or_default().held.entry((*seller, *good)).or_default() += qty;
                if self.deposits.insert((*seller, *id)) {
                    *self.brought.entry((*seller, *good)).or_default() += qty;
                }
            }
            Event::Inventory { seller, good, qty, fresh: true } => {
                *self.books.entry(book).or_default().held.entry((*seller, *good)).or_default() += qty;
            }
            Event::Trade { trader, fence, buy, answer: Some(answer), fresh: true } => {
                if book == 0 && (*fence != self.fence || self.fences.get(fence) != Some(trader)) {
                    let d =
                        format!("trader {trader} traded under fence {fence}; the newest is {}", self.fence);
                    return violation("one-trader-per-term", node, at, d);
                }
                self.trade(at, node, book, *buy, answer)?;
            }
            _ => {}
        }
        self.conserved(at, node, book, note)
    }

    fn takeover(&mut self, at: Time, node: NodeId, trader: NodeId, fence: u64) -> Result<(), Violation> {
        if fence != self.fence + 1 || self.fences.insert(fence, trader).is_some() {
            let d = format!("takeover by {trader} got fence {fence} after fence {}", self.fence);
            return violation("one-trader-per-term", node, at, d);
        }
        self.fence = fence;
        match self.fenced_ahead.remove(&fence) {
            Some(told) if told != trader => {
                let d = format!("trader {told} traded under fence {fence}, which the books gave {trader}");
                violation("one-trader-per-term", told, at, d)
            }
            _ => Ok(()),
        }
    }

    /// A trade that took effect: once per request id, never selling what was not brought.
    fn trade(
        &mut self,
        at: Time,
        node: NodeId,
        book: u64,
        buy: Buy,
        answer: &BuyResult,
    ) -> Result<(), Violation> {
        let req = (buy.buyer, buy.seq);
        if let Some(first) = self.applied.insert(req, answer.clone()) {
            let d = format!("buy {} of buyer {} took effect again (first: {first:?})", buy.seq, buy.buyer);
            return violation("trade-exactly-once", node, at, d);
        }
        if let Some(got) = self.answered_ahead.remove(&req).filter(|got| got != answer) {
            let d = format!(
                "buyer {} was answered {got:?} for buy {}; the books applied {answer:?}",
                buy.buyer, buy.seq
            );
            return violation("trade-exactly-once", buy.buyer, at, d);
        }
        let b = self.books.entry(book).or_default();
        if let BuyResult::Receipt { lots, paid } = answer {
            let units = lots.iter().fold(0u64, |sum, l| sum.saturating_add(l.units));
            let (price, share) = match (self.catalog.price(buy.good), self.catalog.to_seller(buy.good)) {
                (Some(price), Some(share)) => (price, share),
                _ => return violation("money-conserved", node, at, format!("a receipt for {:?}", buy.good)),
            };
            if units != buy.qty || *paid != units.saturating_mul(price) {
                let d = format!("a receipt of {units} units for {paid} cents answers a buy of {}", buy.qty);
                return violation("money-conserved", node, at, d);
            }
            b.money.paid += paid;
            for l in lots {
                b.money.to_sellers += l.units * share;
                b.money.commission += l.units * (price - share);
                let held = b.held.entry((l.seller, buy.good)).or_default();
                *held = held.saturating_sub(l.units);
                let sold = self.sold.entry((l.seller, buy.good)).or_default();
                *sold += l.units;
                let brought = self.brought.get(&(l.seller, buy.good)).copied().unwrap_or(0);
                if *sold > brought {
                    let good = self.catalog.name(buy.good);
                    let d = format!("{sold} {good} of seller {} sold, {brought} brought", l.seller);
                    return violation("no-negative-stock", node, at, d);
                }
            }
        }
        self.fair(at, node, req, answer)
    }

    /// The book's reported stock and money against what the checker recomputed.
    fn conserved(&mut self, at: Time, node: NodeId, book: u64, note: &Note) -> Result<(), Violation> {
        let b = self.books.entry(book).or_default();
        for &(seller, good, units) in &note.stock {
            let want = b.held.get(&(seller, good)).copied().unwrap_or(0);
            if units != want {
                let good = self.catalog.name(good);
                let d = format!(
                    "book {book}: {units} {good} of seller {seller} on deposit, {want} deposited less sold"
                );
                return violation("goods-conserved", node, at, d);
            }
        }
        let m = note.money;
        if m != b.money || m.paid != m.to_sellers + m.commission {
            let d = format!("book {book}: totals {m:?}, receipts add up to {:?}", b.money);
            return violation("money-conserved", node, at, d);
        }
        Ok(())
    }

    /// Judges a request's answer against the requests it overtook or was overtaken by.
    fn fair(&mut self, at: Time, node: NodeId, req: Req, answer: &BuyResult) -> Result<(), Violation> {
        let got =
            |r: &Req, applied: &HashMap<Req, BuyResult>| applied.get(r).map(|a| *a != BuyResult::OutOfStock);
        let unfair = match answer {
            BuyResult::Invalid { .. } => None,
            BuyResult::OutOfStock => {
                self.overtook.get(&req).into_iter().flatten().find(|l| got(l, &self.applied) == Some(true))
            }
            BuyResult::Receipt { .. } => {
                self.overtaken.get(&req).into_iter().flatten().find(|e| got(e, &self.applied) == Some(false))
            }
        };
        match unfair {
            None => Ok(()),
            Some(other) => {
                let d = format!(
                    "of buys {req:?} and {other:?} of the same good, the later one got the last units"
                );
                violation("fair-last-unit", node, at, d)
            }
        }
    }

    /// The trader at `node` submits `buy`: the earlier buys of the same good still waiting
    /// there are overtaken.
    fn serving(&mut self, node: NodeId, buy: Buy) {
        let q = &mut self.pending[node.index()];
        q.remove(&buy.order());
        let later = (buy.buyer, buy.seq);
        for e in q.range(..buy.order()).map(|(_, b)| b).filter(|b| b.good == buy.good) {
            let earlier = (e.buyer, e.seq);
            self.overtook.entry(earlier).or_default().push(later);
            self.overtaken.entry(later).or_default().push(earlier);
        }
    }

    fn answered(&mut self, at: Time, node: NodeId, seq: u64, result: &BuyResult) -> Result<(), Violation> {
        self.answered[node.index()].insert(seq);
        match (self.applied.get(&(node, seq)), result) {
            (Some(r), _) if r == result => Ok(()),
            (None, _) => match self.answered_ahead.insert((node, seq), result.clone()) {
                // Judged when a book reports the trade; a refusal as bad input never was one.
                Some(earlier) if earlier != *result => {
                    let d = format!("buyer {node} was answered {earlier:?}, then {result:?}, for buy {seq}");
                    violation("trade-exactly-once", node, at, d)
                }
                _ => Ok(()),
            },
            (other, _) => {
                let d = format!(
                    "buyer {node} was answered {result:?} for buy {seq}; the books applied {other:?}"
                );
                violation("trade-exactly-once", node, at, d)
            }
        }
    }

    /// The first `all-answered` violation at `end`: a live buyer not answered, or a live peer
    /// still sick.
    fn all_answered(&self, end: &EndState<'_>) -> Option<Violation> {
        for i in (0..self.asked.len()).filter(|&i| end.live[i]) {
            let node = Some(NodeId(i as u32));
            let missing = self.asked[i].difference(&self.answered[i]).count();
            if missing > 0 {
                let d = format!("{missing} of its {} buys never answered", self.asked[i].len());
                return Some(Violation::new("all-answered", node, end.at, d));
            }
            if self.sick[i] {
                return Some(Violation::new("all-answered", node, end.at, "fell sick and never came back"));
            }
        }
        None
    }

    /// Why `all-answered` is not judged at `end`, if it is not.
    fn unjudged(&self, end: &EndState<'_>) -> Option<NotJudged> {
        let up = self.replicas.iter().filter(|r| end.live[r.index()]).count();
        if !end.quiescent {
            Some(NotJudged::Unended)
        } else if end.partitioned {
            Some(NotJudged::Partitioned)
        } else if up < self.replicas.len() / 2 + 1 && !self.replicas.is_empty() {
            Some(NotJudged::NoMajority)
        } else {
            None
        }
    }
}

impl<P: Protocol<Obs = MarketObs> + ?Sized> Checker<P> for MarketChecker {
    fn fork(&self) -> Option<Box<dyn Checker<P>>> {
        Some(Box::new(self.clone()))
    }
    fn fork_into(&self, into: &mut Box<dyn Checker<P>>) -> bool {
        agora_core::check::fork_into(self, into)
    }
    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        Some(self)
    }

    fn properties(&self) -> Vec<Property> {
        let always = |name, description| Property { name, kind: PropertyKind::Always, description };
        let mut p = if self.raft.is_some() { RaftChecker::properties() } else { Vec::new() };
        p.extend([
            always("goods-conserved", "in every book, deposited = sold + on deposit, per seller and good"),
            always("money-conserved", "in every book, paid by buyers = paid to sellers + commission"),
            always("trade-exactly-once", "a request id takes effect once; every answer is the one applied"),
            always("no-negative-stock", "no seller's good is sold beyond what it brought, across books"),
            always("fair-last-unit", "a later buy never takes the last units from an earlier waiting one"),
        ]);
        if self.raft.is_some() {
            p.push(always(
                "one-trader-per-term",
                "a fence has one trader; only the newest fence's trades apply",
            ));
        }
        p.push(Property {
            name: "all-answered",
            kind: PropertyKind::AtEnd,
            description: "once faults stop, every live buyer is answered and every sick peer is back",
        });
        p
    }

    fn observe(&mut self, at: Time, node: NodeId, obs: &MarketObs) -> Result<(), Violation> {
        let i = node.index();
        match obs {
            MarketObs::Raft(o) => {
                if let Some(r) = &mut self.raft {
                    r.check(at, node, o)?;
                }
            }
            MarketObs::Applied { book, note } => self.applied(at, node, *book, note)?,
            // Told by a reply that may come before any book's report of the takeover: judged
            // when one reports it.
            MarketObs::Fenced { fence } if self.raft.is_some() && !self.fences.contains_key(fence) => {
                if let Some(other) = self.fenced_ahead.insert(*fence, node).filter(|o| *o != node) {
                    let d = format!("traders {other} and {node} were both told they hold fence {fence}");
                    return violation("one-trader-per-term", node, at, d);
                }
            }
            MarketObs::Fenced { fence } if self.raft.is_some() && self.fences.get(fence) != Some(&node) => {
                let d =
                    format!("trades under fence {fence}, which the books gave {:?}", self.fences.get(fence));
                return violation("one-trader-per-term", node, at, d);
            }
            MarketObs::Queued { buy } => {
                self.pending[i].insert(buy.order(), *buy);
            }
            MarketObs::Serving { buy } => self.serving(node, *buy),
            MarketObs::Resigned => self.pending[i].clear(),
            MarketObs::Asked { buy } => {
                self.asked[i].insert(buy.seq);
            }
            MarketObs::Answered { seq, result } => self.answered(at, node, *seq, result)?,
            MarketObs::Sick => self.sick[i] = true,
            MarketObs::Recovered => self.sick[i] = false,
            _ => {}
        }
        Ok(())
    }

    fn lifecycle(&mut self, at: Time, node: NodeId, event: Lifecycle) {
        if let Some(r) = &mut self.raft {
            r.on_lifecycle(at, node, event);
        }
        if event == Lifecycle::Crashed {
            self.pending[node.index()].clear();
            self.sick[node.index()] = false;
        }
    }

    fn reports_lost(&mut self, _at: Time, node: NodeId) {
        // The books are the ledger's replicas' (any peer may hold a local book).
        self.lost_any |= self.replicas.is_empty() || self.replicas.contains(&node);
        if let Some(r) = &mut self.raft {
            r.on_reports_lost(node);
        }
    }

    fn undecided(&self) -> Vec<(&'static str, NotJudged)> {
        let mut out = self.raft.as_ref().map(|r| r.open_claims()).unwrap_or_default();
        if self.answered_ahead.values().any(|a| !matches!(a, BuyResult::Invalid { .. })) {
            out.push(("trade-exactly-once", NotJudged::Undecided));
        }
        if !self.fenced_ahead.is_empty() {
            out.push(("one-trader-per-term", NotJudged::Undecided));
        }
        out
    }

    fn not_judged(&self, end: &EndState<'_>) -> Vec<(&'static str, NotJudged)> {
        let raft = self.raft.as_ref().and_then(|r| r.unjudged(end));
        let mut out: Vec<_> = raft.map(|why| ("liveness", why)).into_iter().collect();
        out.extend(self.unjudged(end).map(|why| ("all-answered", why)));
        out
    }

    fn finish(&mut self, end: &EndState<'_>) -> Vec<Violation> {
        let mut out = self.raft.as_mut().map(|r| r.judge_end(end)).unwrap_or_default();
        // Every report was made: an answer no book's report decided is one for a trade that
        // never took effect (a refusal as bad input never was one), a fence no takeover
        // gave was never the trader's.
        if !self.lost_any {
            let taken = std::mem::take(&mut self.answered_ahead);
            let never = taken.iter().filter(|(_, a)| !matches!(a, BuyResult::Invalid { .. }));
            if let Some(((buyer, seq), got)) = never.min_by_key(|(r, _)| **r) {
                let d = format!("buyer {buyer} was answered {got:?} for buy {seq}, which no book applied");
                out.push(Violation::new("trade-exactly-once", Some(*buyer), end.at, d));
            }
            if let Some((fence, trader)) = std::mem::take(&mut self.fenced_ahead).into_iter().next() {
                let d = format!("trader {trader} traded under fence {fence}, which no takeover gave");
                out.push(Violation::new("one-trader-per-term", Some(trader), end.at, d));
            }
        }
        if self.unjudged(end).is_none() {
            out.extend(self.all_answered(end));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::MarketSetup;
    use crate::raft::Pos;
    use crate::registry::FromParams as _;

    const BUYER: NodeId = NodeId(0);
    const TRADER: NodeId = NodeId(4);

    fn checker(ledger: &str) -> MarketChecker {
        let p = crate::Params::new(5, 1)
            .with(&crate::params::SCENARIO, "experiment")
            .with(&crate::params::LEDGER, ledger);
        let setup = MarketSetup::from_params(&p.resolve("market", MarketSetup::SPECS).unwrap()).unwrap();
        MarketChecker::new(&setup.s)
    }

    /// A checker of the report's market with a local book (no Raft on top), and the answer
    /// `got` taken by buyer 0 for its buy 3 before any book reported the trade.
    fn answered_first(got: BuyResult) -> (MarketChecker, Buy) {
        let mut c = checker("local");
        let answered = MarketObs::Answered { seq: 3, result: got };
        Checker::<crate::market::peer::MarketNode>::observe(&mut c, Time(1), BUYER, &answered).unwrap();
        (c, Buy { buyer: BUYER, seq: 3, good: Good(0), qty: 1, ts: 1 })
    }

    fn trade(c: &mut MarketChecker, buy: Buy, answer: BuyResult) -> Result<(), Violation> {
        let event = Event::Trade { trader: TRADER, fence: 1, buy, answer: Some(answer), fresh: true };
        let note =
            Note { pos: Pos { index: 1, offset: 0 }, event, stock: Vec::new(), money: Money::default() };
        Checker::<crate::market::peer::MarketNode>::observe(
            c,
            Time(2),
            TRADER,
            &MarketObs::Applied { book: 1, note: Box::new(note) },
        )
    }

    fn undecided(c: &MarketChecker) -> Vec<(&'static str, NotJudged)> {
        Checker::<crate::market::peer::MarketNode>::undecided(c)
    }

    #[test]
    fn an_answer_taken_before_its_trade_is_reported_is_judged_by_the_trade() {
        let (mut c, buy) = answered_first(BuyResult::OutOfStock);
        assert_eq!(undecided(&c), [("trade-exactly-once", NotJudged::Undecided)]);
        assert!(trade(&mut c, buy, BuyResult::OutOfStock).is_ok());
        assert!(undecided(&c).is_empty());
        let (mut c, buy) = answered_first(BuyResult::Receipt { lots: Vec::new(), paid: 0 });
        let v = trade(&mut c, buy, BuyResult::OutOfStock).unwrap_err();
        assert_eq!(
            (v.property, v.node),
            ("trade-exactly-once", Some(BUYER)),
            "a receipt the books never gave"
        );
    }

    #[test]
    fn two_different_answers_to_one_request_are_a_violation_before_any_book_reports_it() {
        let (mut c, _) = answered_first(BuyResult::Receipt { lots: Vec::new(), paid: 0 });
        let again = MarketObs::Answered { seq: 3, result: BuyResult::OutOfStock };
        let v =
            Checker::<crate::market::peer::MarketNode>::observe(&mut c, Time(2), BUYER, &again).unwrap_err();
        assert_eq!(v.property, "trade-exactly-once");
    }

    /// A trader told by the ledger's reply that it holds fence 1, before any book reported
    /// the takeover that gave it: judged by that report.
    #[test]
    fn a_fence_told_before_its_takeover_is_reported_is_judged_by_the_takeover() {
        let see = |c: &mut MarketChecker, node: NodeId, obs: MarketObs| {
            Checker::<crate::market::peer::MarketNode>::observe(c, Time(1), node, &obs)
        };
        let takeover = |trader| {
            let event = Event::Takeover { trader, fence: 1 };
            let note =
                Note { pos: Pos { index: 1, offset: 0 }, event, stock: Vec::new(), money: Money::default() };
            MarketObs::Applied { book: 0, note: Box::new(note) }
        };
        let mut c = checker("replicated");
        see(&mut c, TRADER, MarketObs::Fenced { fence: 1 }).unwrap();
        let v = see(&mut c, NodeId(3), MarketObs::Fenced { fence: 1 }).unwrap_err();
        assert_eq!(v.property, "one-trader-per-term", "two traders told one fence");
        for (books_gave, ok) in [(TRADER, true), (NodeId(3), false)] {
            let mut c = checker("replicated");
            see(&mut c, TRADER, MarketObs::Fenced { fence: 1 }).unwrap();
            assert_eq!(undecided(&c), [("one-trader-per-term", NotJudged::Undecided)]);
            let judged = see(&mut c, NodeId(1), takeover(books_gave)).map_err(|v| v.property);
            assert_eq!(judged, if ok { Ok(()) } else { Err("one-trader-per-term") });
            assert!(undecided(&c).is_empty());
        }
    }

    #[test]
    fn an_answer_no_book_ever_reported_is_a_violation_at_the_end_unless_reports_were_lost() {
        let live = [true; 5];
        let end = EndState::quiet(Time(10), &live, &[false; 5]);
        let finish = |c: &mut MarketChecker| Checker::<crate::market::peer::MarketNode>::finish(c, &end);
        let (mut c, _) = answered_first(BuyResult::OutOfStock);
        let v = finish(&mut c);
        assert_eq!(
            v.iter().map(|v| (v.property, v.node)).collect::<Vec<_>>(),
            [("trade-exactly-once", Some(BUYER))]
        );
        let (mut c, _) = answered_first(BuyResult::OutOfStock);
        Checker::<crate::market::peer::MarketNode>::reports_lost(&mut c, Time(3), TRADER);
        assert!(!finish(&mut c).iter().any(|v| v.property == "trade-exactly-once"));
        assert_eq!(undecided(&c), [("trade-exactly-once", NotJudged::Undecided)]);
        // A refusal as bad input is never in the books.
        let (mut c, _) = answered_first(BuyResult::Invalid { why: crate::market::flaw::Flaw::Quantity });
        assert!(!finish(&mut c).iter().any(|v| v.property == "trade-exactly-once"));
        assert!(undecided(&c).is_empty());
    }
}
