//! Checkers: named properties judged over the stream of a run's observations.
//!
//! A checker sees every [`crate::Effect::Observe`] as it happens (`always` properties, checked
//! at every observation) and the end state of the run (`at-end` properties, such as "every live
//! node delivered"). The first violation stops a simulated run.
//!
//! An at-end property is judged only when the run gives it a fair chance (it ended on its own,
//! no message was lost, ...). A checker says which properties it did not judge and why
//! ([`Checker::not_judged`]), so that no summary calls an unjudged property "ok".

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
    /// The property's name, as summaries and violations print it (kebab case, "no-duplication").
    pub name: &'static str,
    /// When it is judged: at every observation, or once at the end.
    pub kind: PropertyKind,
    /// One line saying what the property asserts, for `agora protocols` and reports.
    pub description: &'static str,
}

/// A broken property: which, where, when, and what was seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The name of the broken property (a [`Property::name`], or one of the interpreter's own).
    pub property: &'static str,
    /// The node where it was seen broken; `None` for a property of the whole run.
    pub node: Option<NodeId>,
    /// Global (simulator or wall) time since the run began.
    pub at: Time,
    /// What was seen, in words, for the person reading the report.
    pub detail: String,
}

impl Violation {
    /// A violation of `property` seen at `node` at time `at`.
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
    /// The node stopped, losing everything it did not persist.
    Crashed,
    /// The node was rebuilt from what it persisted and started again.
    Restarted,
    /// The node stopped handling events; its messages and timers wait until it resumes.
    Paused,
    /// A paused node handles again, in arrival order, what waited for it.
    Resumed,
    /// The crashed node's storage was lost too: it restarts empty (and, if its protocol
    /// [`crate::Setup::rejoins`], marked as rejoining).
    Wiped,
}

/// What a checker knows when the run ends.
pub struct EndState<'a> {
    /// When the run ended.
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
    /// Nothing more will ever be observed in this run: it is quiet for ever (`quiescent`),
    /// or — the explorer's cycles — it goes round a fair cycle for ever (every message in
    /// flight delivered and every timer pending fired in each round) without observing
    /// anything, after its last fault. A property that says something will be observed (a
    /// request served, a message delivered) can be judged then, quiet or not: what was not
    /// observed by now never will be. Drivers that cannot tell set it as `quiescent`.
    pub observed_all: bool,
    /// When the last fault (crash, restart, pause, partition change) took effect; protocols
    /// that never go quiet (heartbeats) judge liveness only if the run went on long enough
    /// after it to stabilize.
    pub last_fault: Time,
    /// A partition is still in force at the end (it never healed).
    pub partitioned: bool,
    /// Timers fired after their delays, with messages taking their time: a timeout means what
    /// its protocol takes it to mean, as far as the network's delays allow (the simulator,
    /// the runtime, the explorer with synchronous timing). `false` when the driver let any
    /// timer fire at any moment (the explorer's asynchronous timing): a timeout then proves
    /// nothing, and a property that rests on timeouts firing only after the messages they
    /// wait for (2PC's non-triviality) cannot be judged.
    pub timely: bool,
}

impl<'a> EndState<'a> {
    /// A run that ended on its own at `at`, every observation made, with no message lost, no
    /// fault and no partition: the end a test of a checker's at-end judging most often needs.
    pub fn quiet(at: Time, live: &'a [bool], crashed_ever: &'a [bool]) -> Self {
        EndState {
            at,
            live,
            crashed_ever,
            network_reliable: true,
            quiescent: true,
            observed_all: true,
            last_fault: Time::ZERO,
            partitioned: false,
            timely: true,
        }
    }

    /// Why a property judged only at a quiet end without lost messages (and, when
    /// `crash_free` is asked, without a crash: `crashed` says whether one happened) is not
    /// judged; `None` when it is.
    pub fn unjudged(&self, crash_free: bool, crashed: bool) -> Option<NotJudged> {
        if !self.quiescent {
            Some(NotJudged::Unended)
        } else if !self.network_reliable {
            Some(NotJudged::Unreliable)
        } else if crash_free && crashed {
            Some(NotJudged::Crashed)
        } else {
            None
        }
    }

    /// As [`EndState::unjudged`], for a property that says something will be observed: it
    /// needs no quiet end, only that nothing more will be observed
    /// ([`EndState::observed_all`]).
    pub fn unjudged_once_observed(&self, crash_free: bool, crashed: bool) -> Option<NotJudged> {
        if !self.observed_all {
            Some(NotJudged::Unended)
        } else {
            EndState { quiescent: true, ..*self }.unjudged(crash_free, crashed)
        }
    }

    /// Nodes that were up for the whole run.
    pub fn never_crashed(&self, n: NodeId) -> bool {
        !self.crashed_ever[n.index()] && self.live[n.index()]
    }
}

/// Why an at-end property was not judged at the end of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotJudged {
    /// The run did not end on its own: a time or event limit, an interrupt, or a violation
    /// stopped it (the driver names which).
    Unended,
    /// An `always` property was violated first, which ends the judging.
    AfterViolation,
    /// Messages between live nodes may have been lost (loss, partitions, broken connections).
    Unreliable,
    /// A node crashed: the property holds only among nodes that never did.
    Crashed,
    /// The run did not go on long enough after the last fault for the protocol to settle.
    Unsettled,
    /// A partition was still in force at the end.
    Partitioned,
    /// Fewer than a majority of the replicas were up at the end.
    NoMajority,
    /// Only one node's observations were seen (`agora node`): cluster-wide properties need
    /// every node's.
    OneNode,
    /// Timers could fire before the messages they wait for arrived ([`EndState::timely`]).
    Untimely,
    /// An `always` property's claim still waits for the report that decides it: an answer
    /// taken before any report of the write it answers for (that report lost with a killed
    /// node, or not yet made). See [`Checker::undecided`].
    Undecided,
}

impl fmt::Display for NotJudged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NotJudged::Unended => "the run did not end on its own",
            NotJudged::AfterViolation => "a violation was found first",
            NotJudged::Unreliable => "messages may have been lost",
            NotJudged::Crashed => "a node crashed",
            NotJudged::Unsettled => "the run ended too soon after the last fault",
            NotJudged::Partitioned => "a partition was still in force",
            NotJudged::NoMajority => "no majority of replicas was up",
            NotJudged::OneNode => "this node's observations alone cannot judge it",
            NotJudged::Untimely => "timers could fire before the messages they wait for arrived",
            NotJudged::Undecided => "an answer was taken that no report of what it answers for decides yet",
        })
    }
}

/// Every at-end property of `properties`, not judged for `why` (none when `why` is `None`).
pub fn at_end_not_judged(
    properties: &[Property],
    why: impl Into<Option<NotJudged>>,
) -> Vec<(&'static str, NotJudged)> {
    let Some(why) = why.into() else { return Vec::new() };
    properties.iter().filter(|p| p.kind == PropertyKind::AtEnd).map(|p| (p.name, why)).collect()
}

/// Judges one protocol's runs. `Send`, so that the explorer's threads can take a branched
/// run's copy ([`Checker::fork`]) from one another.
pub trait Checker<P: Protocol + ?Sized>: Send {
    /// The properties this checker judges.
    fn properties(&self) -> Vec<Property>;

    /// Judges `always` properties after `node` observed `obs` at global time `at`.
    fn observe(&mut self, at: Time, node: NodeId, obs: &P::Obs) -> Result<(), Violation>;

    /// Learns of crashes, restarts and pauses. The default ignores them.
    fn lifecycle(&mut self, _at: Time, _node: NodeId, _event: Lifecycle) {}

    /// Learns that `node`'s latest observations may be missing: its process was killed from
    /// outside (SIGKILL) between making a write durable and reporting it, as a node of a
    /// history read back from logs can be (a node reports a step's observations after its
    /// writes are committed). Told before that node's `Crashed`. The default ignores it; a
    /// checker that compares what a node restarts with against what it reported writing
    /// must then accept a restart that extends it.
    fn reports_lost(&mut self, _at: Time, _node: NodeId) {}

    /// Judges `at-end` properties.
    fn finish(&mut self, end: &EndState<'_>) -> Vec<Violation>;

    /// The `always` properties not judged whole, at any point of a run: each has a claim
    /// that waits for observations that would decide it. A node may send what it answers
    /// before the step's reports are made (`Effect::SendEarly`), so a client can report an
    /// acknowledgement before any replica reports applying it, and a node killed then never
    /// does; the checker holds such a claim open and judges it when a report decides it.
    /// A driver adds these to the properties it reports not judged. The default: none.
    fn undecided(&self) -> Vec<(&'static str, NotJudged)> {
        Vec::new()
    }

    /// A copy of this checker as it stands, for a driver that branches a run into many (the
    /// exhaustive explorer): `None` if it cannot be copied, and then its protocol cannot be
    /// explored. The default: `None`.
    fn fork(&self) -> Option<Box<dyn Checker<P>>> {
        None
    }

    /// Makes `into` a copy of this checker as it stands, as [`Checker::fork`] would, reusing
    /// its room where it can (the explorer copies a state into a spare one for every successor
    /// it tries, most of them dropped again): `false` if this checker cannot be copied. The
    /// default: `into` replaced by a fork. [`fork_into`] reuses `into` when it is a checker
    /// of the same type.
    fn fork_into(&self, into: &mut Box<dyn Checker<P>>) -> bool {
        self.fork().map(|c| *into = c).is_some()
    }

    /// This checker as [`Any`](std::any::Any), so that [`fork_into`] can tell its type: `None`
    /// (the default) if it does not say.
    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        None
    }

    /// The at-end properties `finish` does not judge at `end`, and why. It must name every
    /// property that `finish` skips: a summary reports the others as judged. The default:
    /// all of them when the run did not end on its own.
    fn not_judged(&self, end: &EndState<'_>) -> Vec<(&'static str, NotJudged)> {
        at_end_not_judged(&self.properties(), (!end.quiescent).then_some(NotJudged::Unended))
    }
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

/// [`Checker::fork_into`] for a checker that can be cloned (and says it is itself through
/// [`Checker::as_any_mut`]): `into` made a copy of `me` by [`Clone::clone_from`] when it is a
/// checker of `me`'s type, its room reused, else replaced by a new copy.
pub fn fork_into<P, C>(me: &C, into: &mut Box<dyn Checker<P>>) -> bool
where
    P: Protocol + ?Sized,
    C: Checker<P> + Clone + 'static,
{
    match into.as_any_mut().and_then(|a| a.downcast_mut::<C>()) {
        Some(same) => same.clone_from(me),
        None => *into = Box::new(me.clone()),
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Context, Message};
    use serde::Deserialize;

    #[derive(Clone, Debug, Serialize, Deserialize)]
    struct Nothing;

    impl Message for Nothing {
        fn kind(&self) -> &'static str {
            "NOTHING"
        }
    }

    struct P;

    impl Protocol for P {
        type Msg = Nothing;
        type Timer = u8;
        type Obs = u32;
        fn on_start(&mut self, _: &mut Context<'_, Self>) {}
        fn on_message(&mut self, _: &mut Context<'_, Self>, _: NodeId, _: Nothing) {}
        fn on_timer(&mut self, _: &mut Context<'_, Self>, _: u8) {}
    }

    /// Remembers what it observed.
    #[derive(Clone)]
    struct Seen(Vec<u32>);

    impl Checker<P> for Seen {
        fn properties(&self) -> Vec<Property> {
            Vec::new()
        }
        fn observe(&mut self, _: Time, _: NodeId, obs: &u32) -> Result<(), Violation> {
            self.0.push(*obs);
            Ok(())
        }
        fn finish(&mut self, _: &EndState<'_>) -> Vec<Violation> {
            Vec::new()
        }
        fn fork(&self) -> Option<Box<dyn Checker<P>>> {
            Some(Box::new(self.clone()))
        }
        fn fork_into(&self, into: &mut Box<dyn Checker<P>>) -> bool {
            fork_into(self, into)
        }
        fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
            Some(self)
        }
    }

    fn observed(c: &mut Box<dyn Checker<P>>) -> Vec<u32> {
        c.as_any_mut().and_then(|a| a.downcast_mut::<Seen>()).map(|s| s.0.clone()).expect("a Seen")
    }

    #[test]
    fn a_checker_forked_into_another_of_its_type_reuses_its_box_and_into_another_type_replaces_it() {
        let src = Seen(vec![1, 2, 3]);
        let mut same: Box<dyn Checker<P>> = Box::new(Seen(vec![9; 100]));
        let before = &*same as *const dyn Checker<P> as *const u8;
        assert!(src.fork_into(&mut same));
        assert_eq!(observed(&mut same), [1, 2, 3]);
        assert_eq!(&*same as *const dyn Checker<P> as *const u8, before, "the same box, reused");
        // The copy is the source as it stood, not a view of it.
        same.observe(Time::ZERO, NodeId(0), &4).expect("no property");
        assert_eq!(src.0, [1, 2, 3]);
        assert_eq!(observed(&mut same), [1, 2, 3, 4]);

        let mut other: Box<dyn Checker<P>> = Box::new(NoProperties);
        assert!(src.fork_into(&mut other));
        assert_eq!(observed(&mut other), [1, 2, 3]);
        // A checker that cannot be copied says so, and leaves `into` alone.
        let mut kept: Box<dyn Checker<P>> = Box::new(Seen(vec![7]));
        assert!(!NoProperties.fork_into(&mut kept));
        assert_eq!(observed(&mut kept), [7]);
    }
}
