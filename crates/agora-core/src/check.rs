//! Checkers: named properties judged over the stream of a run's observations.
//!
//! A checker sees every [`crate::Effect::Observe`] as it happens (`always` properties, checked
//! at every observation) and the end state of the run (`at-end` properties, such as "every live
//! node delivered"). The first violation stops a simulated run.

use crate::id::{NodeId, Time};
use crate::protocol::Protocol;
use serde::Serialize;
use std::fmt;

/// When a property is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PropertyKind {
    /// At every observation: a safety property.
    Always,
    /// When the run ends: typically liveness under the run's fault model.
    AtEnd,
}

/// A named property, as a checker declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Property {
    pub name: &'static str,
    pub kind: PropertyKind,
    pub description: &'static str,
}

/// A broken property: which, where, when, and what was seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub property: &'static str,
    pub node: Option<NodeId>,
    /// Global (simulator or wall) time since the run began.
    pub at: Time,
    pub detail: String,
}

impl Violation {
    pub fn new(property: &'static str, node: Option<NodeId>, at: Time, detail: impl Into<String>) -> Self {
        Violation { property, node, at, detail: detail.into() }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "property `{}` violated", self.property)?;
        if let Some(n) = self.node {
            write!(f, " at node {n}")?;
        }
        write!(f, " at t={}: {}", self.at, self.detail)
    }
}

/// A change in a node's life that checkers may need to know about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    Crashed,
    Restarted,
    Paused,
    Resumed,
    /// The crashed node's storage was lost too: it restarts empty (and, if its protocol
    /// [`crate::Setup::rejoins`], marked as rejoining).
    Wiped,
}

/// What a checker knows when the run ends.
pub struct EndState<'a> {
    pub at: Time,
    /// `live[i]`: node i is up (not crashed, not paused) at the end.
    pub live: &'a [bool],
    /// `crashed_ever[i]`: node i crashed at least once during the run.
    pub crashed_ever: &'a [bool],
    /// No message between two nodes that stayed up could have been lost (no loss, no
    /// partition; crashes may have happened). Liveness properties of protocols that do not
    /// retransmit are judged only then, among never-crashed nodes.
    pub network_reliable: bool,
    /// The run ended because nothing was left to do (not because of a time or event limit).
    pub quiescent: bool,
    /// When the last fault (crash, restart, pause, partition change) took effect; protocols
    /// that never go quiet (heartbeats) judge liveness only if the run went on long enough
    /// after it to stabilize.
    pub last_fault: Time,
    /// A partition is still in force at the end (it never healed).
    pub partitioned: bool,
}

impl EndState<'_> {
    /// Nodes that were up for the whole run.
    pub fn never_crashed(&self, n: NodeId) -> bool {
        !self.crashed_ever[n.index()] && self.live[n.index()]
    }
}

/// Judges one protocol's runs.
pub trait Checker<P: Protocol + ?Sized> {
    /// The properties this checker judges.
    fn properties(&self) -> Vec<Property>;

    /// Judges `always` properties after `node` observed `obs` at global time `at`.
    fn observe(&mut self, at: Time, node: NodeId, obs: &P::Obs) -> Result<(), Violation>;

    /// Learns of crashes, restarts and pauses. The default ignores them.
    fn lifecycle(&mut self, _at: Time, _node: NodeId, _event: Lifecycle) {}

    /// Judges `at-end` properties.
    fn finish(&mut self, end: &EndState<'_>) -> Vec<Violation>;
}

/// A checker that judges nothing: for workloads and test harness protocols whose runs are
/// judged by the test itself.
pub struct NoProperties;

impl<P: Protocol + ?Sized> Checker<P> for NoProperties {
    fn properties(&self) -> Vec<Property> {
        Vec::new()
    }

    fn observe(&mut self, _: Time, _: NodeId, _: &P::Obs) -> Result<(), Violation> {
        Ok(())
    }

    fn finish(&mut self, _: &EndState<'_>) -> Vec<Violation> {
        Vec::new()
    }
}
