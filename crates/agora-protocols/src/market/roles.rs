//! Who is who in the market: the roles peers are drawn into (buyer or seller), a buy and its
//! answer. The trader is not a role of its own: it is whichever peer the election picks
//! ([`super::election`]). What is traded, and at what price, is the run's [`Catalog`].

use super::flaw::Flaw;
use super::goods::{Catalog, Good};
use agora_core::{NodeId, Rng};
use rand::{Rng as _, SeedableRng};
use serde::{Deserialize, Serialize};

/// A peer's role, drawn from the run's seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Buys goods, one at a time.
    Buyer {
        /// The good it always asks for (a scenario's), or `None`: each buy's good is drawn.
        wants: Option<Good>,
    },
    /// Sells one good at a time; `stock` units when the market opens.
    Seller {
        /// The good it sells first.
        good: Good,
        /// What it brings to the market when it opens.
        stock: u64,
    },
}

/// A buyer of goods drawn from the seed.
const BUYER: Role = Role::Buyer { wants: None };

/// The roles of `n` peers (`n >= 2`) drawn from `seed`, selling goods of `catalog`: each peer is a buyer or a seller with
/// even odds, but at least one of each (peer 0 is turned into a buyer, or peer 1 into a
/// seller, when the draw made none).
pub fn draw_roles(n: usize, seed: u64, catalog: &Catalog) -> Vec<Role> {
    assert!(n >= 2, "a market needs a buyer and a seller");
    let mut rng = Rng::seed_from_u64(seed ^ 0x6d61_726b_6574);
    let seller = |rng: &mut Rng| Role::Seller { good: catalog.draw(rng), stock: rng.random_range(3..=8) };
    let mut roles: Vec<Role> =
        (0..n).map(|_| if rng.random_bool(0.5) { BUYER } else { seller(&mut rng) }).collect();
    if !roles.contains(&BUYER) {
        roles[0] = BUYER;
    }
    if roles.iter().all(|r| *r == BUYER) {
        roles[1] = seller(&mut rng);
    }
    roles
}

/// A buy: the buyer's request id (`seq`, numbered from 0 per buyer) and its Lamport
/// timestamp, which orders it against every other buy: `(ts, buyer)`, then the request id
/// (a restarted buyer's clock starts again from its last plan's, so it may stamp two of its
/// buys alike).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Buy {
    /// The buyer.
    pub buyer: NodeId,
    /// The buyer's request id: every request id takes effect once.
    pub seq: u64,
    /// What it wants.
    pub good: Good,
    /// How many units, `1..=`[`Catalog::max_qty`].
    pub qty: u64,
    /// The buyer's Lamport clock when it asked.
    pub ts: u64,
}

impl Buy {
    /// The fair order of buys: by timestamp, ties broken by buyer, then by request id.
    pub fn order(&self) -> (u64, u32, u64) {
        (self.ts, self.buyer.0, self.seq)
    }
}

/// Units of one seller's deposit sold in a trade, and what that deposit holds after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lot {
    /// The seller.
    pub seller: NodeId,
    /// Units taken from its deposit.
    pub units: u64,
    /// Units of that good left in its deposit.
    pub left: u64,
}

/// The answer to a buy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BuyResult {
    /// Sold: the lots taken and what the buyer paid, in cents.
    Receipt {
        /// The deposits the units came from, in seller order.
        lots: Vec<Lot>,
        /// Cents paid: units × the good's price.
        paid: u64,
    },
    /// Not enough units of the good on deposit: nothing sold.
    OutOfStock,
    /// Refused as bad input (a good the catalog does not list, an absurd quantity): nothing
    /// sold, nothing in the books.
    Invalid {
        /// What is wrong with the buy.
        why: Flaw,
    },
}
