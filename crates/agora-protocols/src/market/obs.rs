//! What market peers report (observations), shared by the nodes and the checker: node code
//! never imports the checker.

use super::flaw::Flaw;
use super::goods::Good;
use super::ledger::Note;
use super::roles::{Buy, BuyResult};
use crate::election::ElectionObs;
use crate::raft::RaftObs;
use agora_core::NodeId;
use serde::{Deserialize, Serialize};

/// The announcement of a new trader, as the report prints it.
pub fn announcement(id: NodeId) -> String {
    format!("Dear buyers and sellers, My ID is {id}, and I am the new coordinator")
}

/// What market peers report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum MarketObs {
    /// The embedded ledger replica's, or a trader's ledger client's (replicated ledger).
    Raft(RaftObs),
    /// The embedded bully election's.
    Election(ElectionObs),
    /// This peer became the trader: [`announcement`].
    Announced {
        /// The announcement line.
        line: String,
    },
    /// A book applied a command. `book` is 0 for the replicated ledger (every replica reports
    /// every position); a local book is numbered by its trader and stint.
    Applied {
        /// The book.
        book: u64,
        /// What it applied (boxed: the largest observation by far, and every ledger replica
        /// reports one per command, so the others stay small in a long run's memory).
        note: Box<Note>,
    },
    /// The trader's takeover is in the books: it trades under `fence`.
    Fenced {
        /// The fence.
        fence: u64,
    },
    /// The trader queued a buy it had not seen in this stint.
    Queued {
        /// The buy.
        buy: Buy,
    },
    /// The trader submits a buy to the books (the earliest pending, in the fair order).
    Serving {
        /// The buy.
        buy: Buy,
    },
    /// This peer is no longer the trader: its queue is gone.
    Resigned,
    /// A buyer asked for a buy (the first time).
    Asked {
        /// The buy.
        buy: Buy,
    },
    /// A buyer got the answer to its buy `seq`.
    Answered {
        /// The request id.
        seq: u64,
        /// The answer.
        result: BuyResult,
    },
    /// A seller's deposit `id` is in the books.
    Handed {
        /// Its deposit number.
        id: u64,
        /// The good.
        good: Good,
        /// Units.
        qty: u64,
    },
    /// A trader leaving its post handed its pending buys on: to every peer when it fell
    /// sick (`to` is `None`), or to the peer that took the post from it.
    HandedOn {
        /// The new trader, if known.
        to: Option<NodeId>,
        /// How many buys.
        buys: usize,
    },
    /// This peer refused a message from `from` as bad input ([`Flaw`]): a buy or deposit the
    /// trader did not queue (a buy's buyer is answered [`BuyResult::Invalid`]), or an answer
    /// a buyer did not take. Nothing of it reached the books or the peer's account.
    Refused {
        /// The sender.
        from: NodeId,
        /// What is wrong with it.
        why: Flaw,
    },
    /// The trader fell sick: it leaves the market.
    Sick,
    /// This peer was told to stop and left the market cleanly: it said so to every peer and,
    /// if it traded, handed its pending buys on.
    Left,
    /// A sick peer recovered and rejoins the market.
    Recovered,
    /// A trader with buys of its own left, when no other buyer has any, left the post to
    /// make them, handing its pending buys on (ASIDE): it stands for election again once its
    /// buys are answered.
    SteppedAside,
    /// A buyer has made every buy it was to make and has every answer (DONE).
    Finished,
}

impl From<RaftObs> for MarketObs {
    fn from(o: RaftObs) -> Self {
        MarketObs::Raft(o)
    }
}
