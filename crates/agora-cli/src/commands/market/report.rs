//! What a market run says, read from the peers' observations in time order: the trade log,
//! every buy with its response time and where that time went, the announcements, the
//! accounts, and the checker's verdict from the run's summary.

use agora_core::{NodeId, RunSummary};
use agora_protocols::market::goods::Catalog;
use agora_protocols::market::ledger::Event;
use agora_protocols::market::roles::{Buy, BuyResult, Role};
use agora_protocols::market::setup::LedgerMode;
use agora_protocols::market::{MarketObs, Settings};
use agora_protocols::raft::Pos;
use serde::Serialize;
use std::collections::BTreeMap;

/// A market run, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: String,
    /// `tcp` or `sim`.
    pub runtime: &'static str,
    pub peers: usize,
    /// `replicated` or `local`.
    pub ledger: &'static str,
    pub seed: u64,
    /// Buys asked.
    pub buys: u64,
    /// Buys answered with a receipt.
    pub served: u64,
    /// Buys answered without a sale, by reason.
    pub rejected: BTreeMap<&'static str, u64>,
    /// Buys asked and never answered.
    pub unanswered: u64,
    /// Traders announced (the first election included).
    pub elections: u64,
    /// Times a peer fell sick, and times one recovered.
    pub sick: u64,
    pub recovered: u64,
    /// The trader's commission on the units sold, in cents.
    pub commission_cents: u64,
    pub accounts: Vec<Account>,
    /// No property violated.
    pub checks_passed: bool,
    pub wall_ms: f64,
    /// Response times of the answered buys (virtual time in the simulator).
    pub latency_ms: Latency,
    /// Where the response times went, over the answered buys whose every step was seen.
    pub phases_ms: Phases,
    /// Buys answered per second, from the first buy asked to the last answered, in the run's
    /// time (virtual in the simulator).
    pub buys_per_s: f64,
    /// From the first buy asked to the last answered, in the run's time.
    pub trading_ms: f64,
    /// Of `trading_ms`, the wait from the first buy asked until the first trader's takeover
    /// was in the books (the market open: an election, and with the replicated ledger the
    /// ledger's first Raft election).
    pub open_wait_ms: f64,
    pub summary: RunSummary,
    /// The names of the goods, in catalog order.
    #[serde(skip)]
    pub goods: Vec<String>,
    /// The trade log, in time order.
    #[serde(skip)]
    pub log: Vec<String>,
    /// Every buy in the order asked.
    #[serde(skip)]
    pub points: Vec<Point>,
    /// The traders announced, in order, each with the number of buys asked before it.
    pub traders: Vec<(u64, NodeId)>,
}

/// A peer's account as the answers tell it: a buyer's cash paid (negative) and goods bought; a
/// seller's cash earned (price less commission) and goods sold.
#[derive(Debug, Serialize)]
pub struct Account {
    pub peer: u32,
    /// `buyer` or `seller`.
    pub role: &'static str,
    pub cash_cents: i64,
    /// Units by good: bought (a buyer) or sold (a seller).
    pub goods: BTreeMap<String, u64>,
    /// Times it was announced trader.
    pub trader: u64,
}

/// Response-time quantiles, in ms.
#[derive(Debug, Default, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// A buy's response time in three parts: asked by the buyer, first queued by a trader, taken
/// by the books, answered. Taken by the books is the first report of the booking whose answer
/// the buyer took: the first replica of the replicated ledger to apply that position (the
/// ledger's leader as it commits, which is the trader's replica once its takeover is in the
/// books), or the trader's own book. A buy booked, then handed on (its trader fell sick before
/// answering) and booked again at a later position or in a new trader's book, counts from the
/// later booking: the handover falls in `in_books`.
#[derive(Debug, Default, Serialize)]
pub struct Phases {
    /// Buys timed (answered, and seen queued and taken by the books).
    pub count: u64,
    /// From asked to queued: the buy's way to a trader, and any wait for one to be elected.
    pub to_trader: Latency,
    /// From queued to taken by the books: the trader's queue and the ledger (replication, the
    /// replicas' writes to disk, the commit), and any handover to a new trader.
    pub in_books: Latency,
    /// From taken by the books to answered: the answer's way back to the buyer.
    pub answer_back: Latency,
}

/// One buy: when asked (ms since the first observation) and its answer.
#[derive(Debug, Clone)]
pub struct Point {
    pub buy: Buy,
    pub asked_ms: f64,
    /// When a trader first queued it (ms since the first observation).
    pub queued_ms: Option<f64>,
    /// When the books took it (ms since the first observation; see [`Phases`]).
    pub booked_ms: Option<f64>,
    /// The booking `booked_ms` is of: the book, and the position in it.
    booking: Option<(u64, Pos)>,
    /// Response time; `None` if never answered.
    pub response_ms: Option<f64>,
    /// `receipt`, `out-of-stock`, `invalid` (refused as bad input) or `unanswered`.
    pub result: &'static str,
}

/// What the observations say so far.
struct Reader<'s> {
    catalog: &'s Catalog,
    start: u64,
    log: Vec<String>,
    points: Vec<Point>,
    /// Index in `points` of each buy by (buyer, request id).
    by_id: BTreeMap<(NodeId, u64), usize>,
    traders: Vec<(u64, NodeId)>,
    accounts: Vec<Account>,
    counts: (u64, u64),
    /// When the first trader's takeover was in the books.
    opened_ms: Option<f64>,
}

/// The report of a run of `s` from its observations (time in ns, in order) and its summary.
pub fn report<'a>(
    s: &Settings,
    scenario: &str,
    runtime: &'static str,
    obs: impl Iterator<Item = (u64, NodeId, &'a MarketObs)>,
    summary: RunSummary,
) -> Report {
    let mut r = Reader::new(s);
    for (t, node, o) in obs {
        r.read(t, node, o);
    }
    let answered: Vec<f64> = r.points.iter().filter_map(|p| p.response_ms).collect();
    let phases = phases(&r.points);
    let count = |what: &str| r.points.iter().filter(|p| p.result == what).count() as u64;
    let served = count("receipt");
    let first_ms = r.points.first().map_or(0.0, |p| p.asked_ms);
    let span_ms =
        r.points.iter().filter_map(|p| p.response_ms.map(|d| p.asked_ms + d)).fold(0.0, f64::max) - first_ms;
    let open_wait_ms = r.opened_ms.map_or(0.0, |o| (o - first_ms).clamp(0.0, span_ms.max(0.0)));
    let sold: u64 = r.accounts.iter().filter(|a| a.role == "seller").flat_map(|a| a.goods.values()).sum();
    Report {
        scenario: scenario.to_string(),
        runtime,
        peers: s.nodes(),
        ledger: if s.ledger == LedgerMode::Replicated { "replicated" } else { "local" },
        seed: summary.seed,
        buys: r.points.len() as u64,
        served,
        rejected: [("out_of_stock", count("out-of-stock")), ("invalid", count("invalid"))]
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect(),
        unanswered: count("unanswered"),
        elections: r.traders.len() as u64,
        sick: r.counts.0,
        recovered: r.counts.1,
        commission_cents: sold * s.catalog.commission_cents,
        accounts: r.accounts,
        checks_passed: summary.violations.is_empty(),
        wall_ms: summary.wall_ms,
        latency_ms: latency(answered.clone()),
        phases_ms: phases,
        buys_per_s: if span_ms > 0.0 { answered.len() as f64 / (span_ms / 1e3) } else { 0.0 },
        trading_ms: span_ms.max(0.0),
        open_wait_ms,
        summary,
        goods: s.catalog.wares.iter().map(|w| w.name.clone()).collect(),
        log: r.log,
        points: r.points,
        traders: r.traders,
    }
}

impl<'s> Reader<'s> {
    fn new(s: &'s Settings) -> Self {
        let accounts = accounts(s);
        Reader {
            catalog: &s.catalog,
            start: u64::MAX,
            log: Vec::new(),
            points: Vec::new(),
            by_id: BTreeMap::new(),
            traders: Vec::new(),
            accounts,
            counts: (0, 0),
            opened_ms: None,
        }
    }

    fn read(&mut self, t: u64, node: NodeId, o: &MarketObs) {
        self.start = self.start.min(t);
        let ms = (t - self.start) as f64 / 1e6;
        match o {
            // A restarted buyer asks again for the buys of its last plan, answered or not.
            MarketObs::Asked { buy } if self.by_id.contains_key(&(node, buy.seq)) => {}
            MarketObs::Asked { buy } => {
                self.by_id.insert((node, buy.seq), self.points.len());
                self.points.push(Point {
                    buy: *buy,
                    asked_ms: ms,
                    queued_ms: None,
                    booked_ms: None,
                    booking: None,
                    response_ms: None,
                    result: "unanswered",
                });
            }
            MarketObs::Answered { seq, result } => self.answered(ms, node, *seq, result),
            MarketObs::Queued { buy } => {
                if let Some(p) = self.by_id.get(&(buy.buyer, buy.seq)).map(|&i| &mut self.points[i]) {
                    p.queued_ms.get_or_insert(ms);
                }
            }
            // A stale trade (no answer) was not taken.
            MarketObs::Applied { book, note } => {
                if let Event::Trade { buy, answer: Some(_), .. } = &note.event {
                    if let Some(p) = self.by_id.get(&(buy.buyer, buy.seq)).map(|&i| &mut self.points[i]) {
                        // A later booking of a buy not yet answered: the one before was
                        // handed on unanswered. Another replica's report of the same
                        // position, or a lagging replica's of an earlier one, is not.
                        let later = match p.booking {
                            None => true,
                            Some((b, pos)) => *book != b || (*book == 0 && note.pos > pos),
                        };
                        if later && p.response_ms.is_none() {
                            p.booked_ms = Some(ms);
                            p.booking = Some((*book, note.pos));
                        }
                    }
                }
            }
            MarketObs::Fenced { .. } if self.opened_ms.is_none() => self.opened_ms = Some(ms),
            MarketObs::Announced { line } => {
                self.traders.push((self.points.len() as u64, node));
                self.accounts[node.index()].trader += 1;
                self.line(ms, line.clone());
            }
            MarketObs::Sick => {
                self.counts.0 += 1;
                self.line(ms, format!("peer {node} fell sick and leaves the market"));
            }
            MarketObs::HandedOn { to, buys } if *buys > 0 => {
                let whom = to.map_or("the next trader".to_string(), |t| format!("peer {t}"));
                let s = if *buys == 1 { "" } else { "s" };
                self.line(ms, format!("peer {node} hands {buys} pending buy{s} on to {whom}"));
            }
            MarketObs::Left => self.line(ms, format!("peer {node} was told to stop and left the market")),
            MarketObs::Refused { from, why } => {
                self.line(ms, format!("peer {node} refused a message from peer {from}: {why}"));
            }
            MarketObs::Recovered => {
                self.counts.1 += 1;
                self.line(ms, format!("peer {node} recovered and rejoins the market"));
            }
            _ => {}
        }
    }

    fn line(&mut self, ms: f64, text: String) {
        self.log.push(format!("{ms:>10.3} ms  {text}"));
    }

    /// A buyer's answer: the trade log's lines and both sides' accounts.
    fn answered(&mut self, ms: f64, buyer: NodeId, seq: u64, result: &BuyResult) {
        let Some(&i) = self.by_id.get(&(buyer, seq)) else { return };
        if self.points[i].response_ms.is_some() {
            return; // answered again, after the buyer restarted
        }
        let buy = self.points[i].buy;
        let good = self.catalog.name(buy.good).to_string();
        self.points[i].response_ms = Some(ms - self.points[i].asked_ms);
        settle(&mut self.accounts, self.catalog, buyer, &buy, result);
        match result {
            BuyResult::Receipt { lots, .. } => {
                self.points[i].result = "receipt";
                for lot in lots {
                    let text = format!("buyer {buyer} bought {} {good} from peer {}", lot.units, lot.seller);
                    self.line(ms, text);
                }
            }
            BuyResult::OutOfStock => {
                self.points[i].result = "out-of-stock";
                self.line(ms, format!("buyer {buyer} found too little {good} ({} asked)", buy.qty));
            }
            BuyResult::Invalid { why } => {
                self.points[i].result = "invalid";
                self.line(ms, format!("buyer {buyer}'s buy of {} {good} was refused: {why}", buy.qty));
            }
        }
    }
}

/// Every peer's account as the market opens: nothing paid or earned yet.
pub(super) fn accounts(s: &Settings) -> Vec<Account> {
    s.roles
        .iter()
        .enumerate()
        .map(|(i, role)| Account {
            peer: i as u32,
            role: if matches!(role, Role::Buyer { .. }) { "buyer" } else { "seller" },
            cash_cents: 0,
            goods: BTreeMap::new(),
            trader: 0,
        })
        .collect()
}

/// A buyer's answer in the accounts: with a receipt, the buyer pays and gets the units, and
/// each lot's seller earns its share of the price and gives the units; otherwise nothing.
pub(super) fn settle(
    accounts: &mut [Account],
    catalog: &Catalog,
    buyer: NodeId,
    buy: &Buy,
    result: &BuyResult,
) {
    let BuyResult::Receipt { lots, paid } = result else { return };
    let good = catalog.name(buy.good).to_string();
    if let Some(a) = accounts.get_mut(buyer.index()) {
        a.cash_cents -= *paid as i64;
    }
    let share = catalog.to_seller(buy.good).unwrap_or(0);
    for lot in lots {
        if let Some(a) = accounts.get_mut(buyer.index()) {
            *a.goods.entry(good.clone()).or_default() += lot.units;
        }
        if let Some(seller) = accounts.get_mut(lot.seller.index()) {
            seller.cash_cents += (lot.units * share) as i64;
            *seller.goods.entry(good.clone()).or_default() += lot.units;
        }
    }
}

/// The three parts of the response time of each answered buy seen queued and taken by the
/// books (a buy the trader refused before queueing it, as invalid, is not).
fn phases(points: &[Point]) -> Phases {
    let timed: Vec<[f64; 3]> = points
        .iter()
        .filter_map(|p| {
            let (queued, booked, response) =
                (p.queued_ms? - p.asked_ms, p.booked_ms? - p.asked_ms, p.response_ms?);
            // In causal order, as one clock (one process's, or the simulator's) saw them; a
            // part below zero would be two clocks disagreeing, not a time.
            (0.0 <= queued && queued <= booked && booked <= response).then_some([
                queued,
                booked - queued,
                response - booked,
            ])
        })
        .collect();
    let part = |k: usize| latency(timed.iter().map(|t| t[k]).collect());
    Phases { count: timed.len() as u64, to_trader: part(0), in_books: part(1), answer_back: part(2) }
}

/// p50, p99 and max of `ms` (nearest rank).
fn latency(mut ms: Vec<f64>) -> Latency {
    if ms.is_empty() {
        return Latency::default();
    }
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
    Latency { p50: at(0.5), p99: at(0.99), max: ms[ms.len() - 1] }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A restarted buyer asks again, and is answered again, for the buys of its last plan:
    /// the report and the live page count each buy, and settle its account, once.
    #[test]
    fn a_buy_asked_and_answered_again_after_a_restart_counts_once() {
        use super::super::live::Trades;
        use crate::commands::shared::ui::sampler::System as _;
        use agora_protocols::market::roles::{Buy, Lot};
        use agora_protocols::market::MarketSetup;
        use agora_protocols::FromParams as _;
        use agora_protocols::Params;
        let params = Params::new(5, 1).with(&agora_protocols::params::SCENARIO, "experiment");
        let setup = MarketSetup::from_params(&params.resolve("market", MarketSetup::SPECS).unwrap()).unwrap();
        let s = &setup.s;
        let buy =
            Buy { buyer: NodeId(0), seq: 0, good: agora_protocols::market::goods::Good(0), qty: 2, ts: 1 };
        let paid = 2 * s.catalog.price(buy.good).unwrap();
        let result = BuyResult::Receipt { lots: vec![Lot { seller: NodeId(3), units: 2, left: 3 }], paid };
        let asked = MarketObs::Asked { buy };
        let answered = MarketObs::Answered { seq: 0, result };
        let again = MarketObs::Asked { buy: Buy { ts: 9, ..buy } };
        let seen = [(1, &asked), (2, &answered), (3, &again), (4, &answered)];
        let mut r = Reader::new(s);
        let mut live = Trades::new(s.clone());
        for (t, o) in seen {
            r.read(t, NodeId(0), o);
            live.see(NodeId(0), o);
        }
        assert_eq!(r.points.len(), 1, "one buy");
        assert_eq!(r.points[0].response_ms, Some(1e-6), "answered when first answered");
        let bought: u64 = r.accounts[0].goods.values().sum();
        assert_eq!((r.accounts[0].cash_cents, bought), (-(paid as i64), 2), "settled once");
        assert_eq!(live.sold_and_paid(), (1, paid), "the live page counts it once");
    }

    /// Logs read one after another: node 2 announced, then node 1's earlier announcement and
    /// its resignation are read. The page's trader is node 2, as its lead says.
    #[test]
    fn the_page_names_the_trader_that_holds_the_post_not_the_last_announcement_read() {
        use super::super::live::Trades;
        use crate::commands::shared::ui::sampler::System as _;
        use agora_protocols::market::MarketSetup;
        use agora_protocols::FromParams as _;
        use agora_protocols::Params;
        let params = Params::new(5, 1).with(&agora_protocols::params::SCENARIO, "experiment");
        let setup = MarketSetup::from_params(&params.resolve("market", MarketSetup::SPECS).unwrap()).unwrap();
        let mut live = Trades::new(setup.s.clone());
        let announced = MarketObs::Announced { line: String::new() };
        let note = |live: &Trades| live.view()["note"].as_str().unwrap_or_default().to_string();
        live.see(NodeId(2), &announced);
        live.see(NodeId(1), &announced);
        assert!(note(&live).starts_with("trader: node 1 (2 announced)"), "{}", note(&live));
        live.see(NodeId(1), &MarketObs::Resigned);
        assert!(note(&live).starts_with("trader: node 2 (2 announced)"), "{}", note(&live));
        live.see(NodeId(2), &MarketObs::Sick);
        assert!(note(&live).starts_with("trader: none yet"), "{}", note(&live));
        live.see(NodeId(3), &announced);
        live.crashed(NodeId(3));
        assert!(note(&live).starts_with("trader: none yet"), "crashed from the page: {}", note(&live));
    }

    /// A buy's response time in its three parts, each from the first report of its kind: a
    /// second replica's apply and a second trader's queue change nothing; a buy whose trade
    /// the books refused as stale, and never answered, is not timed.
    #[test]
    fn a_buys_time_is_split_at_its_first_queue_and_the_booking_it_was_answered_from() {
        use agora_protocols::market::goods::Good;
        use agora_protocols::market::ledger::{Money, Note};
        use agora_protocols::market::MarketSetup;
        use agora_protocols::raft::Pos;
        use agora_protocols::FromParams as _;
        use agora_protocols::Params;
        let params = Params::new(5, 1).with(&agora_protocols::params::SCENARIO, "experiment");
        let setup = MarketSetup::from_params(&params.resolve("market", MarketSetup::SPECS).unwrap()).unwrap();
        let buy = |seq| Buy { buyer: NodeId(0), seq, good: Good(0), qty: 1, ts: seq + 1 };
        let booked = |seq, answer: Option<BuyResult>| MarketObs::Applied {
            book: 0,
            note: Box::new(Note {
                pos: Pos { index: seq + 1, offset: 0 },
                event: Event::Trade { trader: NodeId(4), fence: 1, buy: buy(seq), answer, fresh: true },
                stock: Vec::new(),
                money: Money::default(),
            }),
        };
        let ms = 1_000_000;
        let seen = [
            (ms, NodeId(0), MarketObs::Asked { buy: buy(0) }),
            (ms, NodeId(0), MarketObs::Asked { buy: buy(1) }),
            (3 * ms, NodeId(4), MarketObs::Queued { buy: buy(0) }),
            (4 * ms, NodeId(3), MarketObs::Queued { buy: buy(0) }),
            (4 * ms, NodeId(4), MarketObs::Queued { buy: buy(1) }),
            (5 * ms, NodeId(3), booked(1, None)),
            (7 * ms, NodeId(4), booked(0, Some(BuyResult::OutOfStock))),
            (8 * ms, NodeId(3), booked(0, Some(BuyResult::OutOfStock))),
            (10 * ms, NodeId(0), MarketObs::Answered { seq: 0, result: BuyResult::OutOfStock }),
        ];
        let mut r = Reader::new(&setup.s);
        for (t, node, o) in &seen {
            r.read(*t, *node, o);
        }
        assert_eq!((r.points[0].queued_ms, r.points[0].booked_ms), (Some(2.0), Some(6.0)), "first reports");
        assert_eq!(r.points[1].booked_ms, None, "a stale trade is not taken");
        let f = phases(&r.points);
        assert_eq!(f.count, 1, "only the answered buy is timed");
        assert_eq!((f.to_trader.p50, f.in_books.p50, f.answer_back.p50), (2.0, 4.0, 3.0));

        // Buy 1 booked at position 3, its trader sick before answering, booked again by the
        // next trader at position 9 (the stored answer), then answered: from the later
        // booking; a lagging replica's report of position 3 after it changes nothing.
        let at = |seq, index| MarketObs::Applied {
            book: 0,
            note: Box::new(Note {
                pos: Pos { index, offset: 0 },
                event: Event::Trade {
                    trader: NodeId(4),
                    fence: 1,
                    buy: buy(seq),
                    answer: Some(BuyResult::OutOfStock),
                    fresh: false,
                },
                stock: Vec::new(),
                money: Money::default(),
            }),
        };
        for (t, node, o) in [
            (11 * ms, NodeId(4), at(1, 3)),
            (20 * ms, NodeId(3), at(1, 9)),
            (21 * ms, NodeId(2), at(1, 3)),
            (22 * ms, NodeId(2), at(1, 9)),
            (25 * ms, NodeId(0), MarketObs::Answered { seq: 1, result: BuyResult::OutOfStock }),
        ] {
            r.read(t, node, &o);
        }
        assert_eq!(r.points[1].booked_ms, Some(19.0), "the later booking's first report");
        let f = phases(&r.points);
        assert_eq!(f.count, 2);
        assert_eq!((f.in_books.max, f.answer_back.max), (16.0, 5.0), "the handover in the books' part");
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let l = latency((1..=100).map(f64::from).collect());
        assert_eq!((l.p50, l.p99, l.max), (50.0, 99.0, 100.0));
        assert_eq!(latency(vec![]).max, 0.0);
    }
}
