//! The parameters of the leader elections: who starts, and the failure-detection timeout.

use super::bully::BullySetup;
use super::ring_election::RingElectionSetup;
use crate::params::{count, real, ParamError, Resolved, Spec, START, TIMEOUT_MS, VARIANT};
use crate::registry::FromParams;
use agora_core::NodeId;

impl FromParams for BullySetup {
    const SPECS: &'static [Spec] =
        &[Spec::new(&START, count(0)), Spec::new(&TIMEOUT_MS, real(20.0)), Spec::optional(&VARIANT)];
    fn from_params(p: &Resolved) -> Result<Self, ParamError> {
        let starter = p.node(&START)?.unwrap_or(NodeId(0));
        let no_bully = p.variant(&["correct", "no-bully"])? == "no-bully";
        Ok(BullySetup { nodes: p.nodes, starter, timeout: p.millis(&TIMEOUT_MS), no_bully })
    }
}

impl FromParams for RingElectionSetup {
    /// Without `start`, every node starts an election.
    const SPECS: &'static [Spec] = &[Spec::optional(&START), Spec::new(&TIMEOUT_MS, real(20.0))];
    fn from_params(p: &Resolved) -> Result<Self, ParamError> {
        Ok(RingElectionSetup { nodes: p.nodes, starter: p.node(&START)?, timeout: p.millis(&TIMEOUT_MS) })
    }
}
