//! The settings of one election run and the layout of its node ids: replicas, then
//! coordinators, then region gateways, then citizens. Shared by the nodes and the checker.

use super::{Hash, Spec};
use agora_core::NodeId;
use std::sync::Arc;
use std::time::Duration;

/// Coordinators per election.
pub const COORDINATORS: usize = 2;

/// Shared settings of one election run.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The election: options, regions, roll size, authority key.
    pub spec: Arc<Spec>,
    /// Legislators (Raft replicas), node ids `0..replicas`.
    pub replicas: usize,
    /// The base timeout: the replicas' election timeout, and the unit of every retry and failover
    /// of coordinators, regions and citizens.
    pub timeout: Duration,
    /// Ballots a citizen keeps in flight.
    pub window: usize,
    /// Share of bad ballots a citizen casts (forged, no such option, second ballots).
    pub bad: f64,
    /// Coordinators close the election this long after they start if the regions have not all
    /// reported done.
    pub close_after: Duration,
    /// The run's seed: the citizens' ballots and choices are drawn from it.
    pub seed: u64,
    /// The voter roll: each voter's state and credential; `None`: a synthetic roll (states in
    /// proportion to House seats, credentials from the key).
    pub roll: Option<Arc<Vec<(u8, Hash)>>>,
}

/// The role a node id has in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RoleKind {
    Replica,
    Coordinator,
    Region,
    Citizen,
}

impl Settings {
    /// The number of nodes: replicas, coordinators, and per region one gateway and one citizen.
    pub fn nodes(&self) -> usize {
        self.replicas + COORDINATORS + 2 * self.spec.regions.len()
    }
    /// The id of coordinator `i` (`i < COORDINATORS`).
    pub fn coordinator(&self, i: usize) -> NodeId {
        NodeId((self.replicas + i) as u32)
    }
    /// The id of region `r`'s gateway.
    pub fn region(&self, r: usize) -> NodeId {
        NodeId((self.replicas + COORDINATORS + r) as u32)
    }
    /// The id of region `r`'s citizen (its load generator).
    pub fn citizen(&self, r: usize) -> NodeId {
        NodeId((self.replicas + COORDINATORS + self.spec.regions.len() + r) as u32)
    }

    /// Every coordinator's id.
    pub fn coordinators(&self) -> impl Iterator<Item = NodeId> + '_ {
        (0..COORDINATORS).map(|c| self.coordinator(c))
    }

    /// The region whose gateway `id` is, if it is one.
    pub fn region_of(&self, id: NodeId) -> Option<usize> {
        (0..self.spec.regions.len()).find(|&r| self.region(r) == id)
    }

    /// A node's role and its number among the nodes of that role.
    pub(crate) fn role_of(&self, id: NodeId) -> (RoleKind, usize) {
        let i = id.index();
        let regions = self.spec.regions.len();
        if i < self.replicas {
            (RoleKind::Replica, i)
        } else if i < self.replicas + COORDINATORS {
            (RoleKind::Coordinator, i - self.replicas)
        } else if i < self.replicas + COORDINATORS + regions {
            (RoleKind::Region, i - self.replicas - COORDINATORS)
        } else {
            (RoleKind::Citizen, i - self.replicas - COORDINATORS - regions)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_id_has_the_role_whose_constructor_gives_it() {
        let s = Settings {
            spec: Arc::new(crate::vote_count::default_spec(10, 1)),
            replicas: 3,
            timeout: Duration::from_millis(20),
            window: 1,
            bad: 0.0,
            close_after: Duration::from_secs(1),
            seed: 1,
            roll: None,
        };
        let regions = s.spec.regions.len();
        assert_eq!(s.nodes(), 3 + COORDINATORS + 2 * regions);
        for i in 0..3 {
            assert_eq!(s.role_of(NodeId(i as u32)), (RoleKind::Replica, i));
        }
        for (c, id) in s.coordinators().enumerate() {
            assert_eq!(s.role_of(id), (RoleKind::Coordinator, c));
        }
        for r in 0..regions {
            assert_eq!(s.role_of(s.region(r)), (RoleKind::Region, r));
            assert_eq!(s.region_of(s.region(r)), Some(r));
            assert_eq!(s.role_of(s.citizen(r)), (RoleKind::Citizen, r));
            assert_eq!(s.region_of(s.citizen(r)), None);
        }
    }
}
