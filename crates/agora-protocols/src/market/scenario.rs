//! The report's scenarios (its section 1): who buys, who sells what, and who is sick when the
//! market opens. `test-case-1` is 7 peers, 5 sellers and 2 buyers after two different goods;
//! `test-case-2` is 5 peers, 4 sellers and one buyer of goods drawn from the seed (so that
//! every good sells out and restocks, and a long run keeps trading), peer 4 sick at the start
//! so that peer 3 is the first trader; `test-case-3` is test case 1 with both buyers after the same good, so
//! their buys compete and the Lamport order settles who gets the last unit; `experiment` is
//! the report's measurement (its table): 5 peers, 3 buyers of goods drawn from the seed, one
//! seller, and peer 4, the first trader (it sells too whenever another peer trades);
//! `normal` draws the roles of any number of peers from the seed ([`draw_roles`]).

use super::goods::{Catalog, Good};
use super::roles::{draw_roles, Role};
use agora_core::NodeId;

/// The scenarios, by name.
pub const NAMES: [&str; 5] = ["test-case-1", "test-case-2", "test-case-3", "experiment", "normal"];

/// Units each seller of a test case brings when the market opens.
const STOCK: u64 = 5;
/// The goods of the default catalog ([`Catalog::default`]), which the scenarios trade.
const FISH: Good = Good(0);
const SALT: Good = Good(1);
const BOAR: Good = Good(2);

/// Who is who in a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// Each peer's role, by id.
    pub roles: Vec<Role>,
    /// Peers sick when the market opens (they recover as a sick trader does).
    pub sick_at_open: Vec<NodeId>,
    /// The peer that starts the first election, if the scenario fixes it.
    pub starter: Option<NodeId>,
}

/// The number of peers scenario `name` has, or `None` for `normal` (any number).
pub fn peers(name: &str) -> Option<usize> {
    match name {
        "test-case-1" | "test-case-3" => Some(7),
        "test-case-2" | "experiment" => Some(5),
        _ => None,
    }
}

/// Scenario `name` for `n` peers and `seed`; a test case has its own number of peers.
pub fn build(name: &str, n: usize, seed: u64) -> Result<Scenario, String> {
    let seller = |good| Role::Seller { good, stock: STOCK };
    let buyer = |good| Role::Buyer { wants: Some(good) };
    let sellers = [FISH, SALT, BOAR, FISH, SALT].map(seller);
    let (buyers, sellers, sick) = match name {
        "normal" => {
            return Ok(Scenario {
                roles: draw_roles(n, seed, &Catalog::default()),
                sick_at_open: Vec::new(),
                starter: None,
            })
        }
        "test-case-1" => (vec![buyer(FISH), buyer(SALT)], sellers.to_vec(), vec![]),
        "test-case-3" => (vec![buyer(FISH), buyer(FISH)], sellers.to_vec(), vec![]),
        "test-case-2" => (vec![Role::Buyer { wants: None }], sellers[..4].to_vec(), vec![NodeId(4)]),
        "experiment" => (vec![Role::Buyer { wants: None }; 3], sellers[..2].to_vec(), vec![]),
        other => return Err(format!("`{other}`: one of {}", NAMES.join(", "))),
    };
    let roles: Vec<Role> = buyers.into_iter().chain(sellers).collect();
    if roles.len() != n {
        return Err(format!("`{name}` has {} peers, not {n}", roles.len()));
    }
    Ok(Scenario { roles, sick_at_open: sick, starter: Some(NodeId(0)) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_cases_have_the_reports_roles() {
        for name in NAMES {
            let n = peers(name).unwrap_or(9);
            let s = build(name, n, 3).unwrap();
            assert_eq!(s.roles.len(), n);
            let buyers = s.roles.iter().filter(|r| matches!(r, Role::Buyer { .. })).count();
            match name {
                "test-case-1" | "test-case-3" => assert_eq!(buyers, 2),
                "test-case-2" => assert_eq!((buyers, s.sick_at_open.clone()), (1, vec![NodeId(4)])),
                "experiment" => assert_eq!((buyers, s.sick_at_open.len()), (3, 0)),
                _ => assert!(buyers >= 1 && buyers < n),
            }
        }
        assert!(build("test-case-1", 5, 1).is_err());
        assert!(build("nonsense", 5, 1).is_err());
    }
}
