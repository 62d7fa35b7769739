//! What is traded and at what price: a [`Good`] is an index into the run's [`Catalog`], which
//! names every good and its price, the trader's commission, the restock amount and the most
//! units one buy may ask for. Money is in integer cents, so that conservation is exact: what
//! buyers pay is what sellers get plus the commission, to the cent. The default catalog is the
//! report's: fish, salt and boar at one dollar a unit, ten cents of it the commission.

use super::flaw::Flaw;
use agora_core::Rng;
use rand::Rng as _;
use serde::{Deserialize, Serialize};

/// Most goods in a catalog.
pub const MAX_GOODS: usize = 64;
/// The highest price of a unit, in cents (ten thousand dollars).
pub const MAX_PRICE_CENTS: u64 = 1_000_000;
/// Most units a seller brings at once (its opening stock, a restock) and most a buy may ask.
pub const MAX_STOCK: u64 = 1_000_000;

/// A good: its index in the run's [`Catalog`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Good(pub u8);

/// A good the catalog lists: its name and price.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ware {
    /// Its name, as the trade log prints it (`fish`).
    pub name: String,
    /// The price of one unit, in cents.
    pub price_cents: u64,
}

/// The goods of a market and its terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Catalog {
    /// The goods, by index: [`Good`]`(i)` is `wares[i]`.
    pub wares: Vec<Ware>,
    /// The trader's commission on each unit sold, in cents: below every price.
    pub commission_cents: u64,
    /// Units a seller brings when it restocks after selling out.
    pub restock: u64,
    /// Most units in one buy.
    pub max_qty: u64,
}

impl Default for Catalog {
    /// The report's market: fish, salt and boar at 100 cents, 10 of them the commission; a
    /// seller restocks 5 units; a buy asks for 1 to 3.
    fn default() -> Self {
        let ware = |name: &str| Ware { name: name.to_string(), price_cents: 100 };
        Catalog {
            wares: ["fish", "salt", "boar"].map(ware).to_vec(),
            commission_cents: 10,
            restock: 5,
            max_qty: 3,
        }
    }
}

impl Catalog {
    /// The good named `name`.
    pub fn good(&self, name: &str) -> Option<Good> {
        self.wares.iter().position(|w| w.name == name).map(|i| Good(i as u8))
    }

    /// The name of `good`; `unknown` for an index outside the catalog.
    pub fn name(&self, good: Good) -> &str {
        self.wares.get(usize::from(good.0)).map_or("unknown", |w| &w.name)
    }

    /// The price of a unit of `good` in cents, if the catalog lists it.
    pub fn price(&self, good: Good) -> Option<u64> {
        self.wares.get(usize::from(good.0)).map(|w| w.price_cents)
    }

    /// A seller's share of a unit of `good` sold: its price less the commission.
    pub fn to_seller(&self, good: Good) -> Option<u64> {
        self.price(good).and_then(|p| p.checked_sub(self.commission_cents))
    }

    /// A good drawn from `rng`, each with even odds.
    pub fn draw(&self, rng: &mut Rng) -> Good {
        Good(rng.random_range(0..self.wares.len()) as u8)
    }

    /// Whether a buy of `qty` units of `good` can be served: the good is listed and the
    /// quantity is `1..=max_qty`.
    pub fn check_buy(&self, good: Good, qty: u64) -> Result<(), Flaw> {
        self.listed(good)?;
        if qty == 0 || qty > self.max_qty {
            return Err(Flaw::Quantity);
        }
        Ok(())
    }

    /// Whether a seller may hand `qty` units of `good` to the market (a deposit, or an
    /// inventory when `at_least` is 0): the good is listed and `at_least..=MAX_STOCK` units.
    pub fn check_stock(&self, good: Good, qty: u64, at_least: u64) -> Result<(), Flaw> {
        self.listed(good)?;
        if qty < at_least || qty > MAX_STOCK {
            return Err(Flaw::Quantity);
        }
        Ok(())
    }

    fn listed(&self, good: Good) -> Result<(), Flaw> {
        match self.price(good) {
            Some(_) => Ok(()),
            None => Err(Flaw::UnknownGood),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_catalog_is_the_reports() {
        let c = Catalog::default();
        let names: Vec<&str> = (0..3).map(|i| c.name(Good(i))).collect();
        assert_eq!(names, ["fish", "salt", "boar"]);
        assert_eq!((c.price(Good(1)), c.to_seller(Good(2)), c.price(Good(3))), (Some(100), Some(90), None));
        assert_eq!(c.good("boar"), Some(Good(2)));
        assert_eq!(c.name(Good(200)), "unknown");
        assert_eq!(c.check_buy(Good(3), 1), Err(Flaw::UnknownGood));
        assert_eq!(c.check_buy(Good(0), 0), Err(Flaw::Quantity));
        assert_eq!(c.check_buy(Good(0), 4), Err(Flaw::Quantity));
        assert_eq!(c.check_buy(Good(0), 3), Ok(()));
        assert_eq!(c.check_stock(Good(0), MAX_STOCK + 1, 1), Err(Flaw::Quantity));
        assert_eq!(c.check_stock(Good(0), 0, 0), Ok(()));
    }
}
