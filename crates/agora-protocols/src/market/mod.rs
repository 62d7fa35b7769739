//! `market`: the trading post of the Asterix lab (`../shared/seeds/004_*`), as a sans-IO
//! protocol: buyers and sellers of fish, salt and boar (or the goods of a market file) trade
//! through a trader whom the bully election picks; the trader falls sick at random and the
//! market elects another; no trade is lost or made twice.
//!
//! **Peers.** Every node is a peer, a buyer or a seller: drawn from the seed (at least one of
//! each, [`roles::draw_roles`]) in the `normal` scenario, fixed by the report's test cases in
//! the others ([`scenario`]), or listed in a market file ([`file`](mod@file), the `market` parameter). A
//! seller hands its stock to the trader when the market opens (a deposit) and, told it sold
//! out, restocks [`Catalog::restock`](goods::Catalog::restock) units of a good drawn from the
//! seed. A buyer makes `--buys` buys, one at a time (up to `--window` at once): a buy is
//! `(buyer, request id, good, quantity, Lamport timestamp)`, multicast to every peer as in the
//! report (every peer's Lamport clock moves past it), and sent again on a timeout or when a
//! new trader is announced.
//!
//! **Goods and prices** are data ([`goods`]): a good is an index into the run's catalog, which
//! names each good and its price, the trader's commission per unit, the restock amount and the
//! most units per buy. The default catalog is the report's — fish, salt and boar at one dollar
//! a unit, ten cents of it the commission; a market file gives its own. Money is in integer
//! cents, so it is exact: what buyers pay is what sellers get plus the commission.
//!
//! **Bad input** ([`flaw`]) is refused, observed ([`MarketObs::Refused`]) and never reaches
//! the books: the trader answers a buy of a good the catalog does not list or of a quantity
//! outside `1..=max_qty` with [`BuyResult::Invalid`] before queuing
//! it, and drops a deposit out of bounds; a peer drops a buy sent by another peer than its
//! buyer; a buyer takes an answer only from the peer the election named trader, so a forged
//! receipt never reaches its account (an answer from a trader just deposed is refused too: the
//! buyer sends its buy again and the replicated books give the next trader the same answer). The ledger
//! refuses out-of-bounds commands itself, with checked arithmetic, as a second line of
//! defence. Garbage bytes never reach a peer: the runtime drops an undecodable frame and its
//! connection.
//!
//! **The trader** is elected by agora's bully algorithm ([`election`]), extended with one
//! message: a peer that leaves says so, and elections stop waiting for it. The winner
//! announces itself with the report's line ([`obs::announcement`]) and stops buying and
//! selling while it trades. It queues the buys it receives and serves them in order, the
//! earliest by `(timestamp, buyer)` first (up to 1,024 in flight at once, applied in that order), so when one unit is left the earliest pending buy
//! gets it. With probability `--sick` per trade it falls sick: it tells every peer it leaves
//! and hands on its pending buys (LEAVE), so the others elect at once, without waiting for its
//! silence, and the next trader serves them first. It comes back `--recover-ms` later as a
//! restarted bully node, and a higher id bullies its way back to the post — safe at any
//! moment, because its takeover fences the trader it replaces, which hands its own pending
//! buys on to it (HANDOVER). Buyers also send their buy in flight again to every new trader:
//! a lost handover loses nothing.
//!
//! A buyer that trades makes no buys (the report's rule), so a buyer made trader while it
//! has buys left would hold them back until a higher peer recovers, or for ever if none
//! does. Buyers say when they have made all their buys (DONE); a trader with buys of its own
//! left, once every other buyer is done or out (sick, or aside), **steps aside** (ASIDE): it
//! hands on its pending buys as a sick trader does, the others elect among themselves at
//! once, and it makes its buys through their trader. It stands for election again when its
//! buys are answered (its DONE makes it a candidate again), and bullies its way back to the
//! post.
//!
//! **The ledger** ([`ledger::Ledger`]) holds deposits, seller income, commission, receipts
//! and the request ids served; a trade applies only if stock suffices, and a request id
//! takes effect once. Two modes (`--ledger`):
//! - `replicated` (the default): the ledger is the state machine of agora's Raft log, hosted
//!   by the last (highest) 3 or 5 peers ([`setup::Settings::replica_count`]), those the
//!   bully election makes trader while they live; the trader submits
//!   through a Raft client session and answers a buyer only once the trade is committed. A
//!   new trader first commits a takeover, which gives it the next *fence*; the ledger refuses
//!   trades with an older fence. Bully alone cannot stop two peers from both thinking they
//!   trade (loss, a partition): the fence makes that harmless — only the newest trader's
//!   trades apply, and no deposit is sold twice. The market survives any minority of ledger
//!   replicas failing at any moment, the trader included.
//! - `local`: the report's design. The trader keeps the books in its own memory; a new trader
//!   starts a book and asks the sellers what they have left. Under loss or a partition two
//!   traders sell the same stock, and a request served by one is served again by the next:
//!   the checker catches both (`no-negative-stock`, `trade-exactly-once`).
//!
//! **The ledger's leadership follows the trader** (replicated mode): a trader's commits
//! go through its own replica when it leads the log, two hops fewer per buy. A new trader's
//! replica stands at once when no ledger leader is alive
//! ([`Replica::campaign`](crate::raft::Replica::campaign): the opening waits no election
//! timeout), and otherwise the trader asks the live leader for the post
//! ([`Msg::LeadLedger`]), which hands it over by Raft's leadership transfer
//! ([`Replica::transfer`](crate::raft::Replica::transfer)). Both are hints to Raft, never a
//! safety matter: the trader's replica wins only with a majority's votes.
//!
//! A sick trader's ledger replica keeps serving the log — the report's sickness is the
//! trader's, not a crash; crashes are the simulator's faults, which do stop the replica.
//!
//! **Checked** by [`checker::MarketChecker`] on every run, with Raft's own properties in the
//! replicated mode.
//!
//! **Message complexity** per buy: N−1 for the multicast, then with the replicated ledger a
//! Raft commit (one request, 2(R−1) appends and replies for R replicas, one reply), one
//! answer and a sale notice per seller whose deposit it touched: about N + 2R messages.
//! With `--window` and batching (a buyer's step is one message, the trader's answers and
//! sale notices one per buyer and per seller and good, a Raft request many trades) the
//! messages are per step, not per buy; `--multicast trader` sends a buyer's step to the
//! trader alone instead of N − 1 peers.

pub mod buyer;
pub mod checker;
pub mod election;
pub mod file;
pub mod flaw;
pub mod goods;
pub mod ledger;
pub mod obs;
mod params;
pub mod peer;
pub mod roles;
pub mod scenario;
pub mod seller;
pub mod setup;
pub mod trader;

pub use checker::MarketChecker;
pub use ledger::Ledger;
pub use obs::MarketObs;
pub use peer::MarketNode;
pub use setup::{MarketSetup, Settings};

use crate::election::bully;
use crate::raft::{RaftMsg, RaftTimer};
use agora_core::Message;
use goods::Good;
use roles::{Buy, BuyResult};
use serde::{Deserialize, Serialize};

/// What market peers send each other.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Msg {
    /// The ledger's Raft messages: between replicas, and a trader's client's.
    Raft(RaftMsg<Ledger>),
    /// The election's.
    Bully(bully::Msg),
    /// Buyer → every peer: a buy (and its retries).
    Buy(Buy),
    /// Buyer → every peer: the buys it asked in one step (and their retries), up to its
    /// window, in the order asked.
    Buys(Vec<Buy>),
    /// Trader → buyer: the answer to buy `seq`.
    Answer {
        /// The request id.
        seq: u64,
        /// The answer.
        result: BuyResult,
    },
    /// Trader → buyer: the answers of one step, by request id, and the trader's Lamport clock.
    Answers {
        /// The trader's Lamport clock: past every buy it has seen.
        clock: u64,
        /// The answers, by request id.
        answers: Vec<(u64, BuyResult)>,
    },
    /// Seller → every peer: new goods for the trader (and its retries).
    Deposit {
        /// The seller's deposit number.
        id: u64,
        /// The good.
        good: Good,
        /// Units.
        qty: u64,
    },
    /// Trader → seller: deposit `id` is in the books.
    DepositAck {
        /// The deposit number.
        id: u64,
    },
    /// Trader → seller: units of its deposit were sold; `left` remain.
    Sold {
        /// The good.
        good: Good,
        /// Units sold.
        units: u64,
        /// Units left in its deposit.
        left: u64,
    },
    /// A trader falling sick → every peer: it leaves the market (the election goes on
    /// without waiting for it) and hands on its pending buys, for whoever trades next.
    Leave {
        /// The buys it had queued or in flight.
        pending: Vec<Buy>,
    },
    /// A sick peer that recovered, or a peer that restarted → every peer: it is back in the
    /// market (elections wait for it again; a buyer that has made all its buys answers DONE).
    Rejoin,
    /// A trader stepping aside to make its own buys → every peer: elect another, without
    /// this peer, and tell it who trades; its pending buys, for whoever trades next. Also a
    /// peer standing aside asked to elect: it is no candidate.
    Aside {
        /// The buys it had queued or in flight.
        pending: Vec<Buy>,
    },
    /// A buyer → every peer: it has made every buy it was to make, and has every answer.
    Done,
    /// A trader that another peer took the post from → the new trader: its pending buys.
    Handover {
        /// The buys it had queued or in flight.
        pending: Vec<Buy>,
    },
    /// A trader → the ledger's Raft leader: hand this peer's replica the leadership (its
    /// commits then skip two hops). A hint: the leader transfers only to a replica whose log
    /// has caught up, and the transfer is Raft's own.
    LeadLedger,
    /// A new trader of the local ledger → sellers: what do you have on deposit?
    InventoryRequest,
    /// Seller → trader: what it believes it has on deposit.
    Inventory {
        /// The good.
        good: Good,
        /// Units.
        qty: u64,
    },
}

impl From<RaftMsg<Ledger>> for Msg {
    fn from(m: RaftMsg<Ledger>) -> Self {
        Msg::Raft(m)
    }
}

impl Message for Msg {
    fn kind(&self) -> &'static str {
        match self {
            Msg::Raft(m) => m.kind(),
            Msg::Bully(m) => m.kind(),
            Msg::Buy(_) => "BUY",
            Msg::Buys(_) => "BUYS",
            Msg::Answer { .. } => "ANSWER",
            Msg::Answers { .. } => "ANSWERS",
            Msg::Deposit { .. } => "DEPOSIT",
            Msg::DepositAck { .. } => "DEPOSIT-ACK",
            Msg::Sold { .. } => "SOLD",
            Msg::Leave { .. } => "LEAVE",
            Msg::Handover { .. } => "HANDOVER",
            Msg::Rejoin => "REJOIN",
            Msg::Aside { .. } => "ASIDE",
            Msg::Done => "DONE",
            Msg::LeadLedger => "LEAD-LEDGER",
            Msg::InventoryRequest => "INVENTORY-REQUEST",
            Msg::Inventory { .. } => "INVENTORY",
        }
    }
}

/// The timers of a market peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    /// The ledger replica's, or the trader's ledger client's.
    Raft(RaftTimer),
    /// The election's.
    Bully(bully::Timer),
    /// A buyer's next buy or retry; a seller's deposit retry.
    Work,
    /// A sick peer recovers.
    Recover,
    /// A trader refused as stale takes the post over again.
    Retake,
    /// A buyer's plans of buys are durable up to this request id (excluded).
    Planned(u64),
}

impl From<RaftTimer> for Timer {
    fn from(t: RaftTimer) -> Self {
        Timer::Raft(t)
    }
}
