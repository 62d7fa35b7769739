//! What election nodes report (observations), and the citizen's view of a ballot: what it
//! meant the ballot to be and the answer it got. Shared by the nodes and the checker.

use super::{Hash, Reason, Receipt, Results};
use crate::raft::RaftObs;
use serde::{Deserialize, Serialize};

/// What a citizen meant a ballot to be: checked against the answer it gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Intent {
    /// A ballot of a voter on the roll, with its credential and an option on the ballot: must be
    /// counted.
    Valid,
    /// A made-up credential: must be rejected `bad-credential`.
    Forged,
    /// An option not on the ballot: must be rejected `no-such-option`.
    NoOption,
    /// A second, different ballot of a voter whose first is counted: `already-voted`.
    Second,
}

/// An answer to one ballot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    /// Counted: the receipt.
    Counted(Receipt),
    /// Not counted: why.
    Rejected(Reason),
}

/// What election nodes report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum VoteObs {
    /// What a legislator's embedded Raft replica, or a coordinator's client, reports.
    Raft(RaftObs),
    /// A replica counted these ballots (their rows of the bulletin board).
    Counted {
        /// The receipts of the ballots, in log order.
        ballots: Vec<Receipt>,
    },
    /// A replica tallied: its digest and how many ballots it counted.
    Tallied {
        /// The replica's tally digest.
        digest: Hash,
        /// How many ballots it counted.
        counted: u64,
    },
    /// A citizen cast a ballot for the first time.
    Cast {
        /// The voter.
        voter: u64,
        /// The ballot's hash ([`super::Ballot::hash`]).
        hash: Hash,
        /// What the citizen meant it to be.
        intent: Intent,
    },
    /// A citizen got its final answer.
    Answered {
        /// The voter.
        voter: u64,
        /// The ballot's hash.
        hash: Hash,
        /// What the citizen meant it to be.
        intent: Intent,
        /// The final answer.
        answer: Answer,
    },
    /// A region or citizen received the results.
    Results {
        /// The published results.
        results: Box<Results>,
    },
}

impl From<RaftObs> for VoteObs {
    fn from(o: RaftObs) -> Self {
        VoteObs::Raft(o)
    }
}
