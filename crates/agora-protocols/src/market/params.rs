//! The parameters of the market: who is who (a scenario, or a market file with the goods and
//! prices too), buys per buyer, the trader's sickness and recovery, where the ledger lives, the
//! timeout, the buyers' pace, and the broken variant its checker must catch.

use super::goods::Catalog;
use super::setup::{LedgerMode, MarketSetup, Multicast, Order, Settings};
use super::{file, scenario};
use crate::election::bully::BullySetup;
use crate::params::{
    count, real, text, ParamError, Resolved, Spec, BUYS, INTERVAL_MS, LEDGER, MARKET, MULTICAST, RECOVER_MS,
    SCENARIO, SICK, TIMEOUT_MS, VARIANT, WINDOW,
};
use crate::raft;
use crate::registry::FromParams;
use agora_core::NodeId;
use std::path::Path;
use std::sync::Arc;

/// Most peers of one market: the bully election sends O(N²) messages.
pub const MAX_PEERS: usize = 256;
/// Most buys a buyer keeps in flight.
pub const MAX_WINDOW: usize = 1024;

impl FromParams for MarketSetup {
    const SPECS: &'static [Spec] = &[
        Spec::new(&BUYS, count(10)),
        Spec::new(&SICK, real(0.02)),
        Spec::new(&LEDGER, text("replicated")),
        Spec::new(&RECOVER_MS, real(200.0)),
        Spec::new(&TIMEOUT_MS, real(20.0)),
        Spec::new(&INTERVAL_MS, real(2.0)),
        Spec::new(&WINDOW, count(1)),
        Spec::new(&MULTICAST, text("all")),
        Spec::optional(&VARIANT),
        Spec::optional(&SCENARIO),
        Spec::optional(&MARKET),
    ];
    /// Every node is a peer, its role the scenario's (`normal` unless given) or the market
    /// file's, which gives the goods and prices too; the first election is started by the
    /// scenario's starter or a peer drawn from the seed.
    fn from_params(p: &Resolved) -> Result<Self, ParamError> {
        let variant = p.variant(&["correct", "arrival-order"])?;
        p.at_least_nodes(2, "needs a buyer and a seller")?;
        p.at_most_nodes(MAX_PEERS, "market peers")?;
        let ledger = match p.text(&LEDGER) {
            Some("replicated") | None => LedgerMode::Replicated,
            Some("local") => LedgerMode::Local,
            Some(other) => {
                return Err(ParamError::invalid(&LEDGER, format!("`{other}`: it is `replicated` or `local`")))
            }
        };
        let multicast = match p.text(&MULTICAST) {
            Some("all") | None => Multicast::All,
            Some("trader") => Multicast::Trader,
            Some(other) => {
                return Err(ParamError::invalid(&MULTICAST, format!("`{other}`: it is `all` or `trader`")))
            }
        };
        let timeout = p.millis(&TIMEOUT_MS);
        let window: u64 = p.count(&WINDOW);
        if window > MAX_WINDOW as u64 {
            return Err(ParamError::invalid(
                &WINDOW,
                format!("{window} buys in flight: at most {MAX_WINDOW}"),
            ));
        }
        let n = p.nodes;
        // The highest peers: the ones the bully election makes trader while they live, so a
        // trader mostly hosts a replica and its replica can lead the ledger from the opening.
        let replicas = ((n - Settings::replica_count(n)) as u32..n as u32).map(NodeId).collect();
        let (sc, catalog) = match (p.text(&MARKET), p.text(&SCENARIO)) {
            (Some(_), Some(_)) => {
                return Err(ParamError::invalid(&MARKET, "and a scenario both give the roles: give one"))
            }
            (Some(path), None) => {
                let m = file::load(Path::new(path))
                    .map_err(|e| ParamError::invalid(&MARKET, format!("{path}: {e}")))?;
                if m.peers() != n {
                    return Err(ParamError::invalid(
                        &MARKET,
                        format!("{path} has {} peers, not {n}", m.peers()),
                    ));
                }
                (m.scenario, m.catalog)
            }
            (None, name) => {
                let sc = scenario::build(name.unwrap_or("normal"), n, p.seed)
                    .map_err(|e| ParamError::invalid(&SCENARIO, e))?;
                (sc, Catalog::default())
            }
        };
        let drawn = NodeId((p.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 33) as u32 % n as u32);
        let starter = sc.starter.unwrap_or(drawn);
        let s = Settings {
            roles: sc.roles,
            catalog,
            sick_at_open: sc.sick_at_open,
            buys: p.count(&BUYS),
            sick: p.real(&SICK),
            recover: p.millis(&RECOVER_MS),
            ledger,
            order: if variant == "arrival-order" { Order::Arrival } else { Order::Fair },
            election: BullySetup { nodes: n, starter, timeout, no_bully: false },
            raft: Arc::new(ledger_raft(replicas, timeout)),
            retry: timeout * 5,
            interval: p.millis(&INTERVAL_MS),
            window: window as usize,
            multicast,
        };
        Ok(MarketSetup { s: Arc::new(s) })
    }
}

/// The ledger's Raft settings: Raft's defaults, and a snapshot only once the log has grown
/// to twice the last snapshot's bytes (§5.1.3 of the Raft thesis). The books keep the answer
/// to every request id served, so they grow with the log: with a snapshot every 1,000
/// entries, each copied, encoded and wrote the whole books again, at a cost that grew with the
/// market's age (at a million buys, the largest part of the profile; docs/benchmarks.md).
/// With the growth rule they are written a logarithmic number of times.
fn ledger_raft(replicas: Vec<NodeId>, timeout: std::time::Duration) -> raft::Config {
    let mut cfg = raft::Config::new(replicas, timeout);
    cfg.snapshot_growth = 2;
    cfg
}
