//! A run of an election: builds each node by its role (also after a crash, from what it
//! persisted) and the run's checker. The one module that depends on both the nodes and the
//! checker.

use super::checker::VoteChecker;
use super::node::{Citizen, Coordinator, Legislator, Region, VoteNode};
use super::settings::{RoleKind, Settings};
use crate::raft;
use agora_core::{Checker, Corrupt, NodeId, Setup, Stable};
use std::sync::Arc;

/// A run of an election.
pub struct VoteSetup {
    /// The run's settings, shared with every node and the checker.
    pub s: Arc<Settings>,
    /// The legislature's Raft settings, shared by its replicas.
    pub raft: Arc<raft::Config>,
}

impl VoteSetup {
    /// A run of `s`: the legislature's Raft log is compacted every 8,192 entries, once it has
    /// doubled since the last snapshot.
    pub fn new(s: Settings) -> Self {
        let mut cfg = raft::Config::new((0..s.replicas as u32).map(NodeId).collect(), s.timeout);
        cfg.snapshot_every = 8_192;
        cfg.snapshot_growth = 2;
        VoteSetup { s: Arc::new(s), raft: Arc::new(cfg) }
    }
}

impl Setup for VoteSetup {
    type Node = VoteNode;

    fn name(&self) -> &'static str {
        "election"
    }

    fn nodes(&self) -> usize {
        self.s.nodes()
    }

    /// The legislature's replicas rejoin (see [`raft::Replica`]); coordinators' session numbering
    /// would restart.
    fn rejoins(&self, id: NodeId) -> bool {
        matches!(self.s.role_of(id), (RoleKind::Replica, _))
    }

    fn build(&self, id: NodeId, stable: &Stable) -> Result<VoteNode, Corrupt> {
        let s = &self.s;
        Ok(match s.role_of(id) {
            (RoleKind::Replica, _) => {
                VoteNode::Replica(Box::new(Legislator::new(self.raft.clone(), id, stable)?))
            }
            (RoleKind::Coordinator, _) => VoteNode::Coordinator(Box::new(Coordinator::new(s, stable)?)),
            (RoleKind::Region, r) => VoteNode::Region(Box::new(Region::new(s, r))),
            (RoleKind::Citizen, r) => VoteNode::Citizen(Box::new(Citizen::new(s, r))),
        })
    }

    fn fault_model(&self) -> agora_core::FaultModel {
        let replicas = self.raft.replicas.len();
        agora_core::FaultModel::any(Some((replicas - 1) / 2)).among_first(replicas)
    }

    fn checker(&self) -> Box<dyn Checker<VoteNode>> {
        Box::new(VoteChecker::new(&self.s, self.raft.replicas.clone(), self.raft.election_timeout * 250))
    }
}
