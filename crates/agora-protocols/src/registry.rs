//! The registry: every protocol's name, description and parameters as one table, and dispatch
//! to a driver.
//!
//! A driver (the simulator, the TCP runtime, a validator) implements [`Driver`]; [`dispatch`]
//! resolves the named protocol's parameters ([`crate::params`]), builds its [`Setup`] and
//! hands it to the driver, so every driver runs every protocol without a match of its own.

use crate::all_to_all::AllToAllSetup;
use crate::commit::three_phase_commit::ThreePhaseCommitSetup;
use crate::commit::two_phase_commit::TwoPhaseCommitSetup;
use crate::election::bully::BullySetup;
use crate::election::ring_election::RingElectionSetup;
use crate::flood::FloodSetup;
use crate::logical_clocks::LogicalClockSetup;
use crate::market::MarketSetup;
use crate::multicast::peer::MulticastSetup;
use crate::mutex::central_mutex::CentralMutexSetup;
use crate::mutex::lamport_mutex::LamportMutexSetup;
use crate::mutex::ricart_agrawala::RicartAgrawalaSetup;
use crate::mutex::token_ring_mutex::TokenRingMutexSetup;
use crate::params::{ParamError, Params, Resolved, Spec};
use crate::patterns::central::CentralSetup;
use crate::patterns::gossip::GossipSetup;
use crate::patterns::ring_token::RingTokenSetup;
use crate::raft::kv::KvSetup;
use crate::stream::StreamSetup;
use crate::vote_count::setup::VoteSetup;
use crate::vote_service::VoteServiceSetup;
use agora_core::Setup;

/// A setup built from parameters: what every protocol of the table implements.
pub trait FromParams: Sized {
    /// The parameters it reads, with its defaults.
    const SPECS: &'static [Spec];
    /// Builds the setup, checking what depends on several values.
    fn from_params(p: &Resolved) -> Result<Self, ParamError>;
}

/// Runs a protocol's setup; implemented by each driver.
pub trait Driver {
    /// What a run gives.
    type Output;
    /// Runs `setup`.
    fn run<S: Setup>(self, setup: S) -> Self::Output;
}

/// A protocol of the table.
#[derive(Debug)]
pub struct Entry {
    /// Its name on the command line and in cluster files.
    pub name: &'static str,
    /// One line for `--help` and `agora protocols`.
    pub about: &'static str,
    /// The parameters it reads, with its defaults.
    pub specs: &'static [Spec],
}

macro_rules! table {
    ($($name:literal => $setup:ty, $about:literal;)*) => {
        /// Every protocol, in the order `agora protocols` lists them.
        pub static PROTOCOLS: &[Entry] = &[
            $(Entry { name: $name, about: $about, specs: <$setup as FromParams>::SPECS },)*
        ];

        /// Builds protocol `name` from `params` and runs it with `driver`.
        pub fn dispatch<D: Driver>(name: &str, params: &Params, driver: D) -> Result<D::Output, ParamError> {
            let entry = entry(name)?;
            let resolved = params.resolve(entry.name, entry.specs)?;
            match entry.name {
                $($name => Ok(driver.run(<$setup as FromParams>::from_params(&resolved)?)),)*
                _ => unreachable!("every entry has an arm"),
            }
        }
    };
}

table! {
    "all-to-all" => AllToAllSetup, "every node greets every other: N(N-1) messages";
    "flood" => FloodSetup, "flooding broadcast from the origin over a topology";
    "stream" => StreamSetup, "every node streams messages to every other, a window in flight per link (load)";
    "2pc" => TwoPhaseCommitSetup, "two-phase commit: node 0 coordinates, the participants in no_votes vote no";
    "3pc" => ThreePhaseCommitSetup, "three-phase commit with Skeen's termination protocol";
    "central-mutex" => CentralMutexSetup, "mutual exclusion granted by coordinator node 0: 3 messages per entry";
    "lamport-mutex" => LamportMutexSetup, "Lamport's mutual exclusion: 3(N-1) messages per entry";
    "ricart-agrawala" => RicartAgrawalaSetup, "Ricart-Agrawala mutual exclusion: 2(N-1) messages per entry";
    "token-ring-mutex" => TokenRingMutexSetup, "mutual exclusion by a token circulating a ring from its start";
    "central" => CentralSetup, "clients JOIN server node 0, then make request/reply exchanges";
    "ring-token" => RingTokenSetup, "a token circulates the ring for some rounds from its start";
    "gossip" => GossipSetup, "push gossip of a rumour from the origin to fanout random peers per round";
    "lamport-clock" => LogicalClockSetup, "Lamport clocks over a scenario (seed, random or one written out)";
    "vector-clock" => LogicalClockSetup, "vector clocks over a scenario (seed, random or one written out)";
    "unordered" => MulticastSetup, "multicast, best effort: messages from every peer at random intervals";
    "fifo" => MulticastSetup, "reliable multicast delivered in each sender's order";
    "causal" => MulticastSetup, "reliable causal multicast (vector clocks)";
    "total-lamport" => MulticastSetup, "reliable total-order multicast by Lamport timestamps and acknowledgements";
    "total-sequencer" => MulticastSetup, "reliable total-order multicast by a sequencer, with failover";
    "bully" => BullySetup, "bully leader election with heartbeats; start picks who starts (best/worst case)";
    "ring-election" => RingElectionSetup, "Chang-Roberts election on a ring with heartbeats; start: a single initiator";
    "raft" => KvSetup, "a Raft-replicated key-value store: the nodes are replicas, clients come after them";
    "market" => MarketSetup, "the trading post: buyers and sellers trade through a bully-elected trader, the ledger replicated or local";
    "election" => VoteSetup, "the federated election count: the nodes are legislature replicas; voters vote through 5 regions";
    "vote-service" => VoteServiceSetup, "the voting service: members log in, negotiate, vote and follow JOIN/LEAVE/FAIL/CONSENSUS events; the nodes are Raft servers, members come after them";
}

/// The table's entry for `name`.
pub fn entry(name: &str) -> Result<&'static Entry, ParamError> {
    PROTOCOLS.iter().find(|e| e.name == name).ok_or_else(|| ParamError::UnknownProtocol(name.to_string()))
}

/// The number of nodes of protocol `name`'s cluster with `params`: `params.nodes`, or more
/// where a protocol adds nodes of its own (a Raft cluster's clients, an election's regions
/// and citizens).
pub fn cluster_size(name: &str, params: &Params) -> Result<usize, ParamError> {
    struct Size;
    impl Driver for Size {
        type Output = usize;
        fn run<S: Setup>(self, setup: S) -> usize {
            setup.nodes()
        }
    }
    dispatch(name, params, Size)
}

/// Every protocol's name, comma-separated.
pub fn names() -> String {
    PROTOCOLS.iter().map(|e| e.name).collect::<Vec<_>>().join(", ")
}

/// Runs a setup whose nodes can be copied and hashed state by state (exhaustive exploration);
/// implemented by the explorer's driver.
pub trait ExploreDriver {
    /// What an exploration gives.
    type Output;
    /// Explores `setup`.
    fn run<S: Setup>(self, setup: S) -> Self::Output
    where
        S::Node: Clone + std::hash::Hash + Sync,
        <S::Node as agora_core::Protocol>::Timer: std::hash::Hash;
}

/// The protocols `agora explore` explores: those whose node states and checkers can be copied.
pub const EXPLORABLE: &[&str] = &[
    "flood",
    "2pc",
    "3pc",
    "bully",
    "ring-election",
    "central-mutex",
    "lamport-mutex",
    "ricart-agrawala",
    "token-ring-mutex",
    "raft",
    "market",
];

/// Builds explorable protocol `name` from `params` and explores it with `driver`; `None` if
/// the protocol is not one of [`EXPLORABLE`].
pub fn dispatch_explore<D: ExploreDriver>(
    name: &str,
    params: &Params,
    driver: D,
) -> Result<Option<D::Output>, ParamError> {
    let entry = entry(name)?;
    let resolved = params.resolve(entry.name, entry.specs)?;
    Ok(Some(match entry.name {
        "flood" => driver.run(FloodSetup::from_params(&resolved)?),
        "2pc" => driver.run(TwoPhaseCommitSetup::from_params(&resolved)?),
        "3pc" => driver.run(ThreePhaseCommitSetup::from_params(&resolved)?),
        "bully" => driver.run(BullySetup::from_params(&resolved)?),
        "ring-election" => driver.run(RingElectionSetup::from_params(&resolved)?),
        "central-mutex" => driver.run(CentralMutexSetup::from_params(&resolved)?),
        "lamport-mutex" => driver.run(LamportMutexSetup::from_params(&resolved)?),
        "ricart-agrawala" => driver.run(RicartAgrawalaSetup::from_params(&resolved)?),
        "token-ring-mutex" => driver.run(TokenRingMutexSetup::from_params(&resolved)?),
        "raft" => driver.run(KvSetup::from_params(&resolved)?),
        "market" => driver.run(crate::market::MarketSetup::from_params(&resolved)?),
        _ => return Ok(None),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nodes;
    impl Driver for Nodes {
        type Output = usize;
        fn run<S: Setup>(self, setup: S) -> usize {
            setup.nodes()
        }
    }

    #[test]
    fn every_protocol_builds_from_its_defaults_and_reads_only_what_it_declares() {
        for e in PROTOCOLS {
            // Reading an undeclared parameter panics, so building each one checks its specs.
            // Five: the voting service runs an odd number of servers.
            let n =
                dispatch(e.name, &Params::new(5, 1), Nodes).unwrap_or_else(|err| panic!("{}: {err}", e.name));
            assert!(n >= 5, "{}", e.name);
            for s in e.specs {
                assert!(crate::params::named(s.param.name).is_some(), "{}: {}", e.name, s.param.name);
                if let Some(d) = &s.default {
                    assert_eq!(s.param.check(d), Ok(()), "{}: default of {}", e.name, s.param.name);
                }
            }
        }
    }
}
