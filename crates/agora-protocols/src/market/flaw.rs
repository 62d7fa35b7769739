//! Bad input: what is wrong with a message a peer refuses — a buy of a good the catalog does
//! not list or of an absurd quantity, a deposit out of bounds, a buy sent by someone other than
//! its buyer, an answer from a peer that is not the trader — or with a change the books refuse.
//! A refusal changes nothing: no stock, no money, no request id served.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a message or a change to the books was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Flaw {
    /// A good the catalog does not list.
    UnknownGood,
    /// No units, or more than a buy or a deposit may hold.
    Quantity,
    /// A price or commission out of bounds (the books' check of a trade's terms).
    Price,
    /// The books' totals would overflow.
    Overflow,
    /// A buy sent by a peer other than the buyer it names.
    Impostor,
    /// An answer from a peer that is not the trader the buyer knows.
    NotTrader,
}

impl fmt::Display for Flaw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Flaw::UnknownGood => "a good the catalog does not list",
            Flaw::Quantity => "a quantity out of bounds",
            Flaw::Price => "a price or commission out of bounds",
            Flaw::Overflow => "the books' totals would overflow",
            Flaw::Impostor => "a buy sent by another peer than its buyer",
            Flaw::NotTrader => "an answer from a peer that is not the trader",
        })
    }
}
