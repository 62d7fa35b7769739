//! The parameters of two- and three-phase commit: who votes no, and the protocol timeout.

use super::three_phase_commit::ThreePhaseCommitSetup;
use super::two_phase_commit::TwoPhaseCommitSetup;
use crate::params::{no_nodes, real, ParamError, Resolved, Spec, NO_VOTES, TIMEOUT_MS};
use crate::registry::FromParams;
use std::time::Duration;

static SPECS: &[Spec] = &[Spec::new(&NO_VOTES, no_nodes()), Spec::new(&TIMEOUT_MS, real(20.0))];

/// The nodes, the participants voting no and the timeout, checked: node 0 coordinates, so a
/// commit needs at least one participant, and only participants vote.
fn read(p: &Resolved) -> Result<(usize, Vec<u32>, Duration), ParamError> {
    p.at_least_nodes(2, "needs a coordinator and a participant: 2 nodes or more")?;
    let no_votes = p.node_list(&NO_VOTES).to_vec();
    if let Some(v) = no_votes.iter().find(|v| **v == 0 || **v as usize >= p.nodes) {
        return Err(ParamError::invalid(&NO_VOTES, format!("{v}: participants are nodes 1..{}", p.nodes)));
    }
    Ok((p.nodes, no_votes, p.millis(&TIMEOUT_MS)))
}

impl FromParams for TwoPhaseCommitSetup {
    const SPECS: &'static [Spec] = SPECS;
    fn from_params(p: &Resolved) -> Result<Self, ParamError> {
        let (nodes, no_votes, timeout) = read(p)?;
        Ok(TwoPhaseCommitSetup { nodes, no_votes, timeout })
    }
}

impl FromParams for ThreePhaseCommitSetup {
    const SPECS: &'static [Spec] = SPECS;
    fn from_params(p: &Resolved) -> Result<Self, ParamError> {
        let (nodes, no_votes, timeout) = read(p)?;
        Ok(ThreePhaseCommitSetup { nodes, no_votes, timeout })
    }
}
