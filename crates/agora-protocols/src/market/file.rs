//! The market file (TOML, see `examples/market.toml`): the goods and their prices, the
//! trader's commission, the restock amount, the most units per buy, and every peer's role —
//! parsed into a checked [`Market`] or a one-line reason naming the field.
//!
//! ```toml
//! [market]                  # optional; these are the defaults
//! commission_cents = 10     # on each unit sold, below every price
//! restock = 5               # units a seller brings when it sold out
//! max_qty = 3               # most units in one buy
//!
//! [goods]                   # optional: fish, salt and boar at 100 cents
//! fish = 100                # price of a unit in cents, in catalog order
//! salt = 120
//!
//! [[peer]]                  # peer 0
//! role = "buyer"
//! wants = "fish"            # optional: else each buy's good is drawn
//!
//! [[peer]]                  # peer 1
//! role = "seller"
//! good = "salt"
//! stock = 5                 # optional: the restock amount
//! sick_at_open = true       # optional: sick when the market opens
//! ```

use super::goods::{Catalog, Ware, MAX_GOODS, MAX_PRICE_CENTS, MAX_STOCK};
use super::params::MAX_PEERS;
use super::roles::Role;
use super::scenario::Scenario;
use agora_core::NodeId;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;
use std::io::Read;
use std::path::Path;

/// The largest market file read: 1 MiB.
pub const MAX_BYTES: u64 = 1 << 20;
/// Longest name of a good, in bytes.
pub const MAX_NAME_BYTES: usize = 32;

/// A market as its file describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Market {
    /// The goods, prices and terms.
    pub catalog: Catalog,
    /// Who is who: each peer's role, and the peers sick when the market opens.
    pub scenario: Scenario,
}

impl Market {
    /// The number of peers.
    pub fn peers(&self) -> usize {
        self.scenario.roles.len()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    market: Terms,
    goods: Option<Prices>,
    #[serde(rename = "peer", default)]
    peers: Vec<PeerEntry>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Terms {
    commission_cents: Option<u64>,
    restock: Option<u64>,
    max_qty: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerEntry {
    role: RoleName,
    wants: Option<String>,
    good: Option<String>,
    stock: Option<u64>,
    #[serde(default)]
    sick_at_open: bool,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RoleName {
    Buyer,
    Seller,
}

/// The `[goods]` table in the file's order: the order is the catalog's.
struct Prices(Vec<(String, u64)>);

impl<'de> Deserialize<'de> for Prices {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct InOrder;
        impl<'de> Visitor<'de> for InOrder {
            type Value = Prices;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of goods and their prices in cents")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Prices, A::Error> {
                let mut goods = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    goods.push(entry);
                }
                Ok(Prices(goods))
            }
        }
        d.deserialize_map(InOrder)
    }
}

/// Reads and checks the market file at `path`: a regular file of at most [`MAX_BYTES`].
pub fn load(path: &Path) -> Result<Market, String> {
    let fail = |e: String| format!("cannot read it: {e}");
    let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
    if !file.metadata().map_err(|e| fail(e.to_string()))?.is_file() {
        return Err(fail("not a regular file".into()));
    }
    let mut bytes = Vec::new();
    file.take(MAX_BYTES + 1).read_to_end(&mut bytes).map_err(|e| fail(e.to_string()))?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(fail(format!("larger than {MAX_BYTES} bytes")));
    }
    parse(&String::from_utf8(bytes).map_err(|_| fail("not UTF-8 text".into()))?)
}

/// Parses and checks a market file's `text`.
pub fn parse(text: &str) -> Result<Market, String> {
    let f: File = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| 1 + text.as_bytes()[..s.start.min(text.len())].iter().filter(|b| **b == b'\n').count());
        let msg = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
        line.map_or(msg.clone(), |l| format!("line {l}: {msg}"))
    })?;
    let catalog = catalog(&f)?;
    let scenario = peers(&f.peers, &catalog)?;
    Ok(Market { catalog, scenario })
}

/// The goods and terms, checked.
fn catalog(f: &File) -> Result<Catalog, String> {
    let mut c = Catalog::default();
    if let Some(Prices(goods)) = &f.goods {
        if goods.is_empty() || goods.len() > MAX_GOODS {
            return Err(format!("goods: {} goods; 1 to {MAX_GOODS} are allowed", goods.len()));
        }
        c.wares.clear();
        for (name, price) in goods {
            let ok = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
            if name.is_empty() || name.len() > MAX_NAME_BYTES || !name.chars().all(ok) {
                return Err(format!(
                    "goods.{name:?}: a name is 1 to {MAX_NAME_BYTES} letters, digits, `-` or `_`"
                ));
            }
            if *price == 0 {
                return Err(format!("goods.{name}: price must be above 0"));
            }
            if *price > MAX_PRICE_CENTS {
                return Err(format!(
                    "goods.{name}: price must be at most {MAX_PRICE_CENTS} cents, not {price}"
                ));
            }
            c.wares.push(Ware { name: name.clone(), price_cents: *price });
        }
    }
    let t = &f.market;
    c.commission_cents = t.commission_cents.unwrap_or(c.commission_cents);
    if let Some(w) = c.wares.iter().find(|w| c.commission_cents >= w.price_cents) {
        return Err(format!(
            "market.commission_cents: {} is not below the price of {} ({} cents)",
            c.commission_cents, w.name, w.price_cents
        ));
    }
    for (field, given, value) in
        [("restock", t.restock, &mut c.restock), ("max_qty", t.max_qty, &mut c.max_qty)]
    {
        *value = given.unwrap_or(*value);
        if *value == 0 || *value > MAX_STOCK {
            return Err(format!("market.{field}: {value} is not in 1..={MAX_STOCK}"));
        }
    }
    Ok(c)
}

/// Every peer's role, checked against the catalog.
fn peers(entries: &[PeerEntry], c: &Catalog) -> Result<Scenario, String> {
    if entries.len() < 2 || entries.len() > MAX_PEERS {
        return Err(format!("{} [[peer]] entries; 2 to {MAX_PEERS} are allowed", entries.len()));
    }
    let good = |i: usize, field: &str, name: &str| {
        c.good(name).ok_or_else(|| {
            let names: Vec<&str> = c.wares.iter().map(|w| w.name.as_str()).collect();
            format!("peer[{i}].{field}: no good `{name}` in the market (goods: {})", names.join(", "))
        })
    };
    let mut roles = Vec::new();
    let mut sick_at_open = Vec::new();
    for (i, p) in entries.iter().enumerate() {
        let role = match p.role {
            RoleName::Buyer => {
                if let Some(field) = [("good", p.good.is_some()), ("stock", p.stock.is_some())]
                    .into_iter()
                    .find_map(|(f, given)| given.then_some(f))
                {
                    return Err(format!(
                        "peer[{i}].{field}: a buyer has no `{field}` (`wants` names its good)"
                    ));
                }
                Role::Buyer { wants: p.wants.as_deref().map(|w| good(i, "wants", w)).transpose()? }
            }
            RoleName::Seller => {
                if p.wants.is_some() {
                    return Err(format!("peer[{i}].wants: a seller wants nothing (`good` is what it sells)"));
                }
                let name =
                    p.good.as_deref().ok_or_else(|| format!("peer[{i}].good: a seller needs a good"))?;
                let stock = p.stock.unwrap_or(c.restock);
                if stock == 0 || stock > MAX_STOCK {
                    return Err(format!("peer[{i}].stock: {stock} is not in 1..={MAX_STOCK}"));
                }
                Role::Seller { good: good(i, "good", name)?, stock }
            }
        };
        roles.push(role);
        if p.sick_at_open {
            sick_at_open.push(NodeId(i as u32));
        }
    }
    if !roles.iter().any(|r| matches!(r, Role::Buyer { .. })) {
        return Err("no buyer: a market needs a peer with role = \"buyer\"".into());
    }
    if !roles.iter().any(|r| matches!(r, Role::Seller { .. })) {
        return Err("no seller: a market needs a peer with role = \"seller\"".into());
    }
    Ok(Scenario { roles, sick_at_open, starter: None })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::goods::Good;

    const TWO: &str = "[[peer]]\nrole = \"buyer\"\n[[peer]]\nrole = \"seller\"\ngood = \"fish\"\n";

    #[test]
    fn a_file_of_peers_alone_is_the_reports_market() {
        let m = parse(TWO).unwrap();
        assert_eq!(m.catalog, Catalog::default());
        assert_eq!(m.scenario.roles, [Role::Buyer { wants: None }, Role::Seller { good: Good(0), stock: 5 }]);
        assert_eq!(m.peers(), 2);
    }

    #[test]
    fn goods_keep_the_files_order_and_prices() {
        let text = format!(
            "[market]\ncommission_cents = 5\nrestock = 2\nmax_qty = 4\n[goods]\nwine = 300\namber = 50\n\
             {}wants = \"amber\"\nsick_at_open = true\n[[peer]]\nrole = \"seller\"\ngood = \"wine\"\nstock = 9\n",
            "[[peer]]\nrole = \"buyer\"\n"
        );
        let m = parse(&text).unwrap();
        let names: Vec<&str> = m.catalog.wares.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, ["wine", "amber"]);
        assert_eq!((m.catalog.commission_cents, m.catalog.restock, m.catalog.max_qty), (5, 2, 4));
        assert_eq!(m.scenario.roles[0], Role::Buyer { wants: Some(Good(1)) });
        assert_eq!(m.scenario.roles[1], Role::Seller { good: Good(0), stock: 9 });
        assert_eq!(m.scenario.sick_at_open, [NodeId(0)]);
    }

    #[test]
    fn mistakes_are_one_line_naming_the_field() {
        let cases = [
            ("[market\n", "line 1"),
            ("[market]\nfee = 3\n", "unknown field `fee`"),
            ("[goods]\nfish = 0\n", "goods.fish: price must be above 0"),
            ("[goods]\nfish = 1000000000\n", "goods.fish: price must be at most"),
            ("[goods]\nfish = -5\n", "line 2"),
            ("[goods]\nfish = 5\n", "market.commission_cents: 10 is not below the price of fish"),
            ("[market]\nmax_qty = 0\n", "market.max_qty: 0"),
            ("[market]\nrestock = 1000000000000000\n", "market.restock"),
            ("[[peer]]\nrole = \"buyer\"\n[[peer]]\nrole = \"buyer\"\n", "no seller"),
            ("[[peer]]\nrole = \"seller\"\ngood = \"fish\"\n[[peer]]\nrole = \"seller\"\ngood = \"fish\"\n", "no buyer"),
            ("[[peer]]\nrole = \"trader\"\n", "unknown variant `trader`"),
            ("[[peer]]\nrole = \"buyer\"\nwants = \"salmon\"\n", "peer[0].wants: no good `salmon`"),
            ("[[peer]]\nrole = \"buyer\"\nstock = 3\n", "peer[0].stock"),
            ("[[peer]]\nrole = \"seller\"\n", "peer[0].good: a seller needs a good"),
            ("[[peer]]\nrole = \"seller\"\ngood = \"fish\"\nstock = 1000000000000000\n", "peer[0].stock"),
            ("[goods]\n\"two words\" = 100\n", "a name is"),
            ("", "0 [[peer]] entries"),
        ];
        for (text, want) in cases {
            let text = if want.starts_with("peer[0]") || want.contains("variant") {
                format!("{text}[[peer]]\nrole = \"seller\"\ngood = \"fish\"\n")
            } else if want.starts_with("goods") || want.starts_with("market") || want == "a name is" {
                format!("{text}{TWO}")
            } else {
                text.to_string()
            };
            let e = parse(&text).expect_err(&text);
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
        let many = "[[peer]]\nrole = \"buyer\"\n".repeat(MAX_PEERS + 1);
        assert!(parse(&many).unwrap_err().contains("2 to 256"));
    }

    #[test]
    fn load_refuses_what_is_not_a_small_regular_file() {
        assert!(load(Path::new("/nonexistent/market.toml")).unwrap_err().starts_with("cannot read it"));
        assert!(load(Path::new("/")).unwrap_err().contains("not a regular file"));
    }
}
