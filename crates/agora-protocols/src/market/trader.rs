//! The trader's post: fencing itself in the books, queuing the buys it receives, serving them
//! in the fair order (several in flight, applied in that order), answering buyers and telling
//! sellers what sold, and falling sick at random. A buy or deposit the catalog does not allow
//! (an unknown good, an absurd quantity) is refused before it is queued: the buyer is answered
//! [`BuyResult::Invalid`] and the books never see it.
//!
//! With the replicated ledger every change goes through a Raft client session of the trader's
//! (a new session per stint); with the local ledger the trader applies it to a book of its own.
//! Either way nothing is served before the trader's takeover is in the books, and a trade
//! refused as stale (a newer trader took over) goes back to the queue while the trader takes
//! the post over again a retry period later — if the election still names it.

use super::goods::Good;
use super::ledger::{Command, Ledger, Output};
use super::obs::MarketObs;
use super::roles::{Buy, BuyResult};
use super::setup::{LedgerMode, Multicast, Order, Settings};
use super::{MarketNode, Msg, Timer};
use crate::raft::client::{session_id, Client};
use crate::raft::{Op, Outcome, Pos, RaftMsg, StateMachine};
use agora_core::{Context, NodeId};
use rand::Rng as _;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};

/// Changes a trader's client keeps in flight, and buys it serves at once: they apply in the
/// order it submits them, the fair order of its queue, so serving several at a time changes
/// no outcome and spares each buy a commit's wait behind the one before. Buys queued in one
/// step leave in one request, and are committed together.
const WINDOW: usize = 1024;

/// What a step of the trader leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Traded {
    /// It goes on trading.
    Ok,
    /// It fell sick: it leaves the post.
    Sick,
}

/// What a change submitted to the books was for.
#[derive(Clone, Copy, Debug, Hash)]
enum Purpose {
    Takeover,
    Deposit { seller: NodeId, id: u64 },
    Inventory,
    Trade(Buy),
}

/// Where the trader's changes go.
#[derive(Clone)]
enum Books {
    /// Through a Raft client session: `pending` by sequence number.
    Replicated { client: Box<Client<Ledger>>, pending: BTreeMap<u64, Purpose> },
    /// Into a book of its own: `id` names it, `n` numbers its changes.
    Local { id: u64, ledger: Box<Ledger>, n: u64 },
}

/// The trader's post.
#[derive(Clone)]
pub struct Trader {
    me: NodeId,
    books: Books,
    /// The fence of its takeover, once in the books.
    fence: Option<u64>,
    /// Buys waiting, by the order they are served in.
    queue: BTreeMap<(u64, u32, u64), Buy>,
    /// Request ids queued or being served.
    ids: BTreeSet<(NodeId, u64)>,
    /// Buys received in this stint (the `arrival-order` variant's key).
    arrivals: u64,
    /// The buys submitted and not yet answered, by request id: the order submitted and the buy.
    serving: BTreeMap<(NodeId, u64), (u64, Buy)>,
    /// Buys submitted in this stint: numbers the order of `serving`.
    submitted: u64,
    /// Answers of this step not yet sent, by buyer ([`Trader::flush`]).
    answers: BTreeMap<NodeId, Vec<(u64, BuyResult)>>,
    /// Sale notices of this step not yet sent: units sold and units left, by seller and good.
    sales: BTreeMap<(NodeId, Good), (u64, u64)>,
    /// Deposits and inventories received before the takeover was in the books.
    waiting: Vec<Command>,
}

/// The post's state for the exhaustive explorer (`agora explore market`): the books through
/// the client session's state or the local book's encoding, and everything queued.
impl Hash for Trader {
    fn hash<H: Hasher>(&self, h: &mut H) {
        match &self.books {
            Books::Replicated { client, pending } => (client, pending).hash(h),
            Books::Local { id, ledger, n } => (id, agora_core::wire::encode(ledger), n).hash(h),
        }
        (self.me, self.fence, &self.queue, &self.ids, self.arrivals, &self.serving, self.submitted).hash(h);
        agora_core::wire::encode(&(&self.answers, &self.sales, &self.waiting)).hash(h);
    }
}

impl Trader {
    /// The post of peer `me` in its stint number `stint`.
    pub fn new(s: &Settings, me: NodeId, stint: u32) -> Self {
        let books = match s.ledger {
            LedgerMode::Replicated => Books::Replicated {
                client: Box::new(Client::new(
                    session_id(me, stint),
                    s.raft.replicas.clone(),
                    WINDOW,
                    s.retry,
                )),
                pending: BTreeMap::new(),
            },
            LedgerMode::Local => {
                Books::Local { id: (u64::from(me.0) << 32) | u64::from(stint), ledger: Box::default(), n: 0 }
            }
        };
        Trader {
            me,
            books,
            fence: None,
            queue: BTreeMap::new(),
            ids: BTreeSet::new(),
            arrivals: 0,
            serving: BTreeMap::new(),
            submitted: 0,
            answers: BTreeMap::new(),
            sales: BTreeMap::new(),
            waiting: Vec::new(),
        }
    }

    /// Nothing in hand: fenced, nothing queued, waiting or in flight.
    pub fn idle(&self) -> bool {
        let books = match &self.books {
            Books::Replicated { client, .. } => client.is_idle(),
            Books::Local { .. } => true,
        };
        self.fence.is_some()
            && self.queue.is_empty()
            && self.serving.is_empty()
            && self.waiting.is_empty()
            && books
    }

    /// The buys it holds and has not answered: in flight first, then the queue in its order.
    /// A trader leaving its post hands them on.
    pub fn pending(&self) -> Vec<Buy> {
        let mut serving: Vec<(u64, Buy)> = self.serving.values().copied().collect();
        serving.sort_unstable_by_key(|(n, _)| *n);
        serving.into_iter().map(|(_, b)| b).chain(self.queue.values().copied()).collect()
    }

    /// Sends the answers and sale notices of this step: one message per buyer and one per
    /// seller and good. The peer calls it at the end of every step that reaches the post.
    /// A buyer that sends its buys to the trader alone gets its clock with every answer.
    /// With the replicated books, once fenced, the answers leave early: each is a committed
    /// change (or a refusal that changed nothing), so none rests on a write of this peer's
    /// in flight.
    pub fn flush(&mut self, ctx: &mut Context<'_, MarketNode>, s: &Settings, clock: u64) {
        let early = matches!(self.books, Books::Replicated { .. }) && self.fence.is_some();
        for (buyer, mut answers) in std::mem::take(&mut self.answers) {
            let msg = match answers.len() {
                1 if s.multicast == Multicast::All => {
                    let (seq, result) = answers.remove(0);
                    Msg::Answer { seq, result }
                }
                _ => Msg::Answers { clock, answers },
            };
            match early {
                true => ctx.send_early(buyer, msg),
                false => ctx.send(buyer, msg),
            }
        }
        for ((seller, good), (units, left)) in std::mem::take(&mut self.sales) {
            ctx.send(seller, Msg::Sold { good, units, left });
        }
    }

    /// Takes the post: commits its takeover (and, with a local book, asks the sellers what
    /// they have).
    pub fn start(&mut self, ctx: &mut Context<'_, MarketNode>, s: &Settings) -> Traded {
        self.set_fence(None);
        if matches!(self.books, Books::Local { .. }) {
            ctx.broadcast(Msg::InventoryRequest);
        }
        self.submit(ctx, s, Command::Takeover { trader: self.me }, Purpose::Takeover)
    }

    fn submit(
        &mut self,
        ctx: &mut Context<'_, MarketNode>,
        s: &Settings,
        cmd: Command,
        p: Purpose,
    ) -> Traded {
        match &mut self.books {
            Books::Replicated { client, pending } => {
                let seq = client.enqueue(ctx, Op::Command(cmd));
                pending.insert(seq, p);
                if !matches!(p, Purpose::Trade(_)) {
                    client.flush(ctx);
                }
                Traded::Ok
            }
            Books::Local { id, ledger, n } => {
                *n += 1;
                let out = ledger.apply(Pos { index: *n, offset: 0 }, &cmd);
                let book = *id;
                for note in std::mem::take(&mut ledger.notes) {
                    ctx.observe(MarketObs::Applied { book, note: Box::new(note) });
                }
                self.outcome(ctx, s, p, out)
            }
        }
    }

    /// What the books answered to a change.
    fn outcome(
        &mut self,
        ctx: &mut Context<'_, MarketNode>,
        s: &Settings,
        p: Purpose,
        out: Output,
    ) -> Traded {
        match (p, out) {
            (Purpose::Takeover, Output::Fenced(fence)) => {
                self.set_fence(Some(fence));
                ctx.observe(MarketObs::Fenced { fence });
                for cmd in std::mem::take(&mut self.waiting) {
                    let p = purpose(&cmd);
                    self.submit(ctx, s, cmd, p);
                }
                return self.serve_next(ctx, s);
            }
            (Purpose::Deposit { seller, id }, Output::Stocked) => ctx.send(seller, Msg::DepositAck { id }),
            (Purpose::Trade(buy), Output::Answer(result)) => return self.answer(ctx, s, buy, result),
            (Purpose::Trade(buy), Output::Refused(why)) => {
                return self.answer(ctx, s, buy, BuyResult::Invalid { why })
            }
            (Purpose::Trade(buy), Output::Stale { .. }) => {
                // A newer trader took over: the buy waits for this one's next takeover.
                self.served(buy);
                self.set_fence(None);
                let key = self.key(s, buy);
                self.queue.insert(key, buy);
                ctx.set_timer(Timer::Retake, s.retry);
            }
            _ => {}
        }
        Traded::Ok
    }

    fn answer(
        &mut self,
        ctx: &mut Context<'_, MarketNode>,
        s: &Settings,
        buy: Buy,
        result: BuyResult,
    ) -> Traded {
        self.served(buy);
        self.ids.remove(&(buy.buyer, buy.seq));
        if let BuyResult::Receipt { lots, .. } = &result {
            for l in lots {
                let sale = self.sales.entry((l.seller, buy.good)).or_default();
                *sale = (sale.0.saturating_add(l.units), l.left);
            }
        }
        self.answers.entry(buy.buyer).or_default().push((buy.seq, result));
        if s.sick > 0.0 && ctx.rng().random_bool(s.sick) {
            return Traded::Sick;
        }
        Traded::Ok
    }

    /// `buy` is no longer in flight.
    fn served(&mut self, buy: Buy) {
        self.serving.remove(&(buy.buyer, buy.seq));
    }

    /// Submits the first buys of the queue, in order, while fenced and the window has room.
    /// The buys submitted together leave in one request.
    fn serve_next(&mut self, ctx: &mut Context<'_, MarketNode>, s: &Settings) -> Traded {
        let mut traded = Traded::Ok;
        while let Some(fence) = self.fence {
            if self.serving.len() >= WINDOW {
                break;
            }
            let Some((_, buy)) = self.queue.pop_first() else { break };
            self.submitted += 1;
            self.serving.insert((buy.buyer, buy.seq), (self.submitted, buy));
            ctx.observe(MarketObs::Serving { buy });
            // Checked against the catalog when queued; a price of 0 would be refused by the books.
            let price = s.catalog.price(buy.good).unwrap_or(0);
            let commission = s.catalog.commission_cents;
            let cmd = Command::Trade { fence, trader: self.me, buy, price, commission };
            if self.submit(ctx, s, cmd, Purpose::Trade(buy)) == Traded::Sick {
                traded = Traded::Sick;
                break;
            }
        }
        if let Books::Replicated { client, .. } = &mut self.books {
            client.flush(ctx);
        }
        traded
    }

    /// Sets the fence of its takeover, `None` until it is in the books. The client's
    /// requests leave early only while fenced: the session's first request, the takeover, is
    /// then in the books, so the stint that names the session is durable, and each later
    /// change rests on the books, not on this peer's writes.
    fn set_fence(&mut self, fence: Option<u64>) {
        self.fence = fence;
        if let Books::Replicated { client, .. } = &mut self.books {
            client.send_early(fence.is_some());
        }
    }

    /// Where `buy` goes in the queue: its fair order, or (variant) its arrival.
    fn key(&mut self, s: &Settings, buy: Buy) -> (u64, u32, u64) {
        self.arrivals += 1;
        match s.order {
            Order::Fair => buy.order(),
            Order::Arrival => (self.arrivals, buy.buyer.0, buy.seq),
        }
    }

    /// A buy reached the trader: queued unless already queued or in flight; answered
    /// [`BuyResult::Invalid`] if the catalog does not allow it.
    pub fn on_buys(&mut self, ctx: &mut Context<'_, MarketNode>, s: &Settings, buys: Vec<Buy>) -> Traded {
        for buy in buys {
            if let Err(why) = s.catalog.check_buy(buy.good, buy.qty) {
                ctx.observe(MarketObs::Refused { from: buy.buyer, why });
                self.answers.entry(buy.buyer).or_default().push((buy.seq, BuyResult::Invalid { why }));
                continue;
            }
            if !self.ids.insert((buy.buyer, buy.seq)) {
                continue;
            }
            let key = self.key(s, buy);
            self.queue.insert(key, buy);
            ctx.observe(MarketObs::Queued { buy });
        }
        self.serve_next(ctx, s)
    }

    /// New goods from `seller`, unless the catalog does not allow them.
    pub fn on_deposit(
        &mut self,
        ctx: &mut Context<'_, MarketNode>,
        s: &Settings,
        seller: NodeId,
        id: u64,
        good: Good,
        qty: u64,
    ) -> Traded {
        if let Err(why) = s.catalog.check_stock(good, qty, 1) {
            ctx.observe(MarketObs::Refused { from: seller, why });
            return Traded::Ok;
        }
        self.change(ctx, s, Command::Deposit { seller, id, good, qty })
    }

    /// A seller's inventory (local ledger), unless the catalog does not allow it.
    pub fn on_inventory(
        &mut self,
        ctx: &mut Context<'_, MarketNode>,
        s: &Settings,
        seller: NodeId,
        good: Good,
        qty: u64,
    ) -> Traded {
        if let Err(why) = s.catalog.check_stock(good, qty, 0) {
            ctx.observe(MarketObs::Refused { from: seller, why });
            return Traded::Ok;
        }
        self.change(ctx, s, Command::Inventory { seller, good, qty })
    }

    /// Submits a deposit or inventory now if fenced, else once fenced.
    fn change(&mut self, ctx: &mut Context<'_, MarketNode>, s: &Settings, cmd: Command) -> Traded {
        if self.fence.is_none() {
            self.waiting.push(cmd);
            return Traded::Ok;
        }
        let p = purpose(&cmd);
        self.submit(ctx, s, cmd, p)
    }

    /// Answers from the ledger's replicas to the trader's client.
    pub fn on_raft(
        &mut self,
        ctx: &mut Context<'_, MarketNode>,
        s: &Settings,
        from: NodeId,
        m: RaftMsg<Ledger>,
    ) -> Traded {
        let Books::Replicated { client, .. } = &mut self.books else { return Traded::Ok };
        for (seq, outcome) in client.on_message(ctx, from, m) {
            let Books::Replicated { pending, .. } = &mut self.books else { unreachable!() };
            let (Some(p), Outcome::Applied { output, .. }) = (pending.remove(&seq), outcome) else {
                continue;
            };
            if self.outcome(ctx, s, p, output) == Traded::Sick {
                return Traded::Sick;
            }
        }
        self.serve_next(ctx, s)
    }

    /// The ledger's Raft leader is `replica` (known, or about to be: this peer's own replica
    /// stands): the client's requests go there, and what waits for an answer is sent there
    /// at once.
    pub fn ledger_leader(&mut self, ctx: &mut Context<'_, MarketNode>, replica: NodeId) {
        if let Books::Replicated { client, .. } = &mut self.books {
            client.leader_is(ctx, replica);
        }
    }

    /// The client's retry timer.
    pub fn on_retry(&mut self, ctx: &mut Context<'_, MarketNode>) -> Traded {
        if let Books::Replicated { client, .. } = &mut self.books {
            client.on_retry(ctx);
        }
        Traded::Ok
    }
}

/// What a deposit or inventory change is for.
fn purpose(cmd: &Command) -> Purpose {
    match *cmd {
        Command::Deposit { seller, id, .. } => Purpose::Deposit { seller, id },
        Command::Inventory { .. } => Purpose::Inventory,
        Command::Takeover { .. } => Purpose::Takeover,
        Command::Trade { buy, .. } => Purpose::Trade(buy),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::goods::Good;
    use crate::market::MarketSetup;
    use crate::registry::FromParams as _;
    use agora_core::{Rng, Time};
    use rand::SeedableRng as _;

    /// A restarted buyer's clock starts again from its last plan's, so two of its buys can
    /// carry one timestamp: both wait in the queue, in request-id order, rather than the
    /// second taking the first one's place (which left the first queued under its id, every
    /// copy of it then dropped as already queued).
    #[test]
    fn two_buys_of_one_buyer_stamped_alike_both_wait_in_the_queue() {
        let p = crate::Params::new(5, 1).with(&crate::params::SCENARIO, "experiment");
        let setup = MarketSetup::from_params(&p.resolve("market", MarketSetup::SPECS).unwrap()).unwrap();
        let s = &setup.s;
        // Not fenced yet (its takeover is not in the books): what it receives waits in the queue.
        let mut t = Trader::new(s, NodeId(4), 1);
        let (mut rng, mut effects) = (Rng::seed_from_u64(1), Vec::new());
        let mut ctx = Context::new(NodeId(4), 5, Time::ZERO, &mut rng, &mut effects);
        let first = Buy { buyer: NodeId(0), seq: 9, good: Good(0), qty: 1, ts: 7 };
        let second = Buy { seq: 3, ..first };
        t.on_buys(&mut ctx, s, vec![first]);
        t.on_buys(&mut ctx, s, vec![second]);
        assert_eq!(t.pending(), vec![second, first]);
    }
}
