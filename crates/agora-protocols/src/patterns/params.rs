//! The parameters of the communication patterns: requests of the clients, rounds of the
//! token, fanout of the gossip.

use super::central::CentralSetup;
use super::gossip::GossipSetup;
use super::ring_token::RingTokenSetup;
use crate::params::{
    count, real, ParamError, Resolved, Spec, FANOUT, ORIGIN, REQUESTS, ROUNDS, START, TIMEOUT_MS,
};
use crate::registry::FromParams;
use agora_core::NodeId;

impl FromParams for CentralSetup {
    const SPECS: &'static [Spec] = &[Spec::new(&REQUESTS, count(3)), Spec::new(&TIMEOUT_MS, real(20.0))];
    fn from_params(p: &Resolved) -> Result<Self, ParamError> {
        p.at_least_nodes(2, "needs a server and a client: 2 nodes or more")?;
        Ok(CentralSetup { nodes: p.nodes, requests: p.count(&REQUESTS), timeout: p.millis(&TIMEOUT_MS) })
    }
}

impl FromParams for RingTokenSetup {
    const SPECS: &'static [Spec] = &[Spec::new(&ROUNDS, count(1)), Spec::new(&START, count(0))];
    fn from_params(p: &Resolved) -> Result<Self, ParamError> {
        let start = p.node(&START)?.unwrap_or(NodeId(0));
        Ok(RingTokenSetup { nodes: p.nodes, rounds: p.count(&ROUNDS), start })
    }
}

impl FromParams for GossipSetup {
    /// A round lasts a quarter of the timeout.
    const SPECS: &'static [Spec] =
        &[Spec::new(&ORIGIN, count(0)), Spec::new(&FANOUT, count(3)), Spec::new(&TIMEOUT_MS, real(20.0))];
    fn from_params(p: &Resolved) -> Result<Self, ParamError> {
        Ok(GossipSetup {
            nodes: p.nodes,
            origin: p.node(&ORIGIN)?.unwrap_or(NodeId(0)),
            payload: p.seed,
            fanout: p.count(&FANOUT),
            period: p.millis(&TIMEOUT_MS) / 4,
        })
    }
}
