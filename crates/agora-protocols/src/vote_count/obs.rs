//! What election nodes report (observations), and the citizen's view of a ballot: what it
//! meant the ballot to be and the answer it got. Shared by the nodes and the checker.

use super::{Hash, Reason, Receipt, Results};
use crate::raft::RaftObs;
use serde::{Deserialize, Serialize};

/// What a citizen meant a ballot to be: checked against the answer it gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Intent {
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
    Counted(Receipt),
    Rejected(Reason),
}

/// What election nodes report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum VoteObs {
    Raft(RaftObs),
    /// A replica counted these ballots (their rows of the bulletin board).
    Counted {
        ballots: Vec<Receipt>,
    },
    /// A replica tallied: its digest and how many ballots it counted.
    Tallied {
        digest: Hash,
        counted: u64,
    },
    /// A citizen cast a ballot for the first time.
    Cast {
        voter: u64,
        hash: Hash,
        intent: Intent,
    },
    /// A citizen got its final answer.
    Answered {
        voter: u64,
        hash: Hash,
        intent: Intent,
        answer: Answer,
    },
    /// A region or citizen received the results.
    Results {
        results: Box<Results>,
    },
}

impl From<RaftObs> for VoteObs {
    fn from(o: RaftObs) -> Self {
        VoteObs::Raft(o)
    }
}
