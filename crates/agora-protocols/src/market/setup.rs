//! A run of the market: its settings (roles drawn from the seed or read from a market file,
//! the goods and prices, the workload, the ledger's mode), building each peer (also after a crash, from what it persisted) and the checker.

use super::checker::MarketChecker;
use super::goods::Catalog;
use super::roles::Role;
use super::MarketNode;
use crate::election::bully::BullySetup;
use crate::raft;
use agora_core::{Checker, Corrupt, NodeId, Setup, Stable};
use std::sync::Arc;
use std::time::Duration;

/// Where the ledger lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LedgerMode {
    /// Every trade is committed to a Raft log before the buyer is answered.
    Replicated,
    /// The trader's own memory: the report's design, which the checker catches.
    Local,
}

/// How the trader orders its pending buys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// By Lamport timestamp, ties by buyer: the fair order.
    Fair,
    /// In the order they reached the trader: the broken variant `arrival-order`.
    Arrival,
}

/// The settings of a run, shared by every peer and the checker.
pub struct Settings {
    /// Each peer's role, by id.
    pub roles: Vec<Role>,
    /// The goods, their prices and the market's terms.
    pub catalog: Catalog,
    /// Peers sick when the market opens (a scenario's): they recover after `recover`.
    pub sick_at_open: Vec<NodeId>,
    /// Buys each buyer makes.
    pub buys: u64,
    /// Chance per transaction that the trader falls sick.
    pub sick: f64,
    /// How long a sick trader stays away.
    pub recover: Duration,
    /// Where the ledger lives.
    pub ledger: LedgerMode,
    /// The trader's order of pending buys.
    pub order: Order,
    /// The election's settings (its failure-detection timeout is the market's timeout).
    pub election: BullySetup,
    /// The replicated ledger's Raft settings: its replicas are the last (highest) peers.
    pub raft: Arc<raft::Config>,
    /// A buyer's or seller's request is sent again after this long unanswered.
    pub retry: Duration,
    /// Mean time a buyer waits between an answer and its next buy.
    pub interval: Duration,
    /// Buys a buyer keeps in flight (1: one at a time, as in the report).
    pub window: usize,
    /// Whom buys go to.
    pub multicast: Multicast,
}

/// Whom a buyer sends its buys to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Multicast {
    /// Every peer, as in the report: N − 1 messages a send, and every peer's Lamport clock
    /// moves past every buy.
    All,
    /// The trader the election names (none while it elects: the buys wait for the next
    /// trader). Its answers carry its clock, so a buyer's next buys still follow, in the
    /// Lamport order, every buy the trader had seen.
    Trader,
}

impl Settings {
    /// The number of peers.
    pub fn nodes(&self) -> usize {
        self.roles.len()
    }

    /// The ledger's replicas for `n` peers: all of them up to 3, then 3 up to 4 peers, and 5
    /// from 5 peers on. An odd number: a fourth or sixth replica tolerates no more failures
    /// and makes every commit wait for one more answer.
    pub fn replica_count(n: usize) -> usize {
        match n {
            0..=3 => n,
            4 => 3,
            _ => 5,
        }
    }

    /// Whether peer `id` hosts a replica of the ledger.
    pub fn is_replica(&self, id: NodeId) -> bool {
        self.ledger == LedgerMode::Replicated && self.raft.replicas.contains(&id)
    }
}

/// A run of the market.
pub struct MarketSetup {
    /// The settings, shared.
    pub s: Arc<Settings>,
}

impl Setup for MarketSetup {
    type Node = MarketNode;

    fn name(&self) -> &'static str {
        "market"
    }

    fn nodes(&self) -> usize {
        self.s.nodes()
    }

    fn build(&self, id: NodeId, stable: &Stable) -> Result<MarketNode, Corrupt> {
        MarketNode::new(self.s.clone(), id, stable)
    }

    fn fault_model(&self) -> agora_core::FaultModel {
        use agora_core::{Crashes, FaultModel};
        match self.s.ledger {
            // The ledger is the Raft log: a minority of its replicas may fail; a wiped peer
            // is refused (it would reuse its request ids).
            LedgerMode::Replicated => {
                let replicas = self.s.raft.replicas.len();
                FaultModel { wipes: false, ..FaultModel::any(Some((replicas - 1) / 2)).among_first(replicas) }
            }
            // The report's design: the trader's memory and a bully election.
            LedgerMode::Local => {
                FaultModel { crashes: Crashes::Recover, synchronous: true, ..FaultModel::NONE }
            }
        }
    }

    fn checker(&self) -> Box<dyn Checker<MarketNode>> {
        Box::new(MarketChecker::new(&self.s))
    }
}
