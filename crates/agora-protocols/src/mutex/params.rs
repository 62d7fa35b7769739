//! The parameters of the mutual-exclusion algorithms: entries per node, and where the token
//! starts.

use super::central_mutex::CentralMutexSetup;
use super::lamport_mutex::LamportMutexSetup;
use super::ricart_agrawala::RicartAgrawalaSetup;
use super::token_ring_mutex::TokenRingMutexSetup;
use crate::params::{count, text, ParamError, Resolved, Spec, LINKS, REQUESTS, START, VARIANT};
use crate::registry::FromParams;
use crate::reliable::Links;
use agora_core::NodeId;

static SPECS: &[Spec] = &[Spec::new(&REQUESTS, count(3))];

impl FromParams for CentralMutexSetup {
    const SPECS: &'static [Spec] = SPECS;
    fn from_params(p: &Resolved) -> Result<Self, ParamError> {
        p.at_least_nodes(2, "needs a coordinator and a client: 2 nodes or more")?;
        Ok(CentralMutexSetup { nodes: p.nodes, requests: p.count(&REQUESTS) })
    }
}

impl FromParams for LamportMutexSetup {
    const SPECS: &'static [Spec] = &[Spec::new(&REQUESTS, count(3)), Spec::new(&LINKS, text("reliable"))];
    fn from_params(p: &Resolved) -> Result<Self, ParamError> {
        let links = Links::parse(p.text(&LINKS)).ok_or_else(|| {
            ParamError::invalid(&LINKS, format!("expected one of {}", Links::NAMES.join(", ")))
        })?;
        Ok(LamportMutexSetup { nodes: p.nodes, requests: p.count(&REQUESTS), links })
    }
}

impl FromParams for RicartAgrawalaSetup {
    const SPECS: &'static [Spec] = &[Spec::new(&REQUESTS, count(3)), Spec::optional(&VARIANT)];
    fn from_params(p: &Resolved) -> Result<Self, ParamError> {
        let no_priority = p.variant(&["correct", "no-priority"])? == "no-priority";
        Ok(RicartAgrawalaSetup { nodes: p.nodes, requests: p.count(&REQUESTS), no_priority })
    }
}

impl FromParams for TokenRingMutexSetup {
    const SPECS: &'static [Spec] = &[Spec::new(&REQUESTS, count(3)), Spec::new(&START, count(0))];
    fn from_params(p: &Resolved) -> Result<Self, ParamError> {
        let start = p.node(&START)?.unwrap_or(NodeId(0));
        Ok(TokenRingMutexSetup { nodes: p.nodes, requests: p.count(&REQUESTS), start })
    }
}
