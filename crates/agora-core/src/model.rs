//! Fault models: the faults under which a protocol's safety properties are claimed to hold.
//!
//! A violation in a run within its protocol's model is a bug. A violation in a run outside it
//! shows what the algorithm's assumption buys — bully's two leaders under loss, Lamport's
//! mutual exclusion broken by a reordered request — and is labelled *expected* by `agora sim`
//! and `agora check`, so that a correct algorithm does not look broken and a broken one cannot
//! hide behind faults it was never meant to survive.
//!
//! A model speaks of safety. Liveness under faults is the at-end properties' business: they
//! are judged only in runs whose faults allow it (see [`crate::NotJudged`]).

use serde::Serialize;

/// What crashes a protocol's safety survives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Crashes {
    /// None.
    None,
    /// Crash-stop: a crashed node never comes back.
    Stop,
    /// Crash-recovery: a crashed node restarts from what it persisted.
    Recover,
}

/// The faults under which a protocol claims its safety properties.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct FaultModel {
    /// Whether the protocol declared its model at all.
    pub declared: bool,
    /// Lost messages.
    pub loss: bool,
    /// Messages delivered twice.
    pub duplication: bool,
    /// Messages on one link overtaking each other.
    pub reordering: bool,
    /// Symmetric and one-way partitions.
    pub partitions: bool,
    /// Crashes, and whether nodes come back.
    pub crashes: Crashes,
    /// At most this many of the nodes `0..critical` down at once (`None`: any number).
    pub max_down: Option<usize>,
    /// The nodes `max_down` counts: `0..critical` (the replicas of a log whose other nodes
    /// are its clients).
    pub critical: usize,
    /// A crash that loses the node's storage, the node rejoining empty.
    pub wipes: bool,
    /// Nodes that stop handling anything for a while and resume.
    pub pauses: bool,
    /// Clocks that are skewed or drift.
    pub clocks: bool,
    /// Safety rests on messages arriving within the protocol's timeouts (a synchronous
    /// network): loss, partitions and pauses break that assumption.
    pub synchronous: bool,
}

impl FaultModel {
    /// A protocol that declared nothing: every fault is outside what it claims.
    pub const UNDECLARED: FaultModel = FaultModel { declared: false, ..FaultModel::NONE };

    /// Reliable, in-order links and no failure of any kind.
    pub const NONE: FaultModel = FaultModel {
        declared: true,
        loss: false,
        duplication: false,
        reordering: false,
        partitions: false,
        crashes: Crashes::None,
        max_down: None,
        critical: usize::MAX,
        wipes: false,
        pauses: false,
        clocks: false,
        synchronous: false,
    };

    /// Safety that rests on neither the network nor timing: loss, duplication, reordering,
    /// partitions, pauses and clocks at will, with `crashes` (no lost disks).
    pub const fn asynchronous(crashes: Crashes) -> FaultModel {
        FaultModel { crashes, max_down: None, wipes: false, ..FaultModel::any(None) }
    }

    /// Every fault agora can inject, with `max_down` nodes down at once at most.
    pub const fn any(max_down: Option<usize>) -> FaultModel {
        FaultModel {
            declared: true,
            loss: true,
            duplication: true,
            reordering: true,
            partitions: true,
            crashes: Crashes::Recover,
            max_down,
            critical: usize::MAX,
            wipes: true,
            pauses: true,
            clocks: true,
            synchronous: false,
        }
    }

    /// The same model, with `max_down` counting only the nodes `0..n`.
    pub const fn among_first(mut self, n: usize) -> FaultModel {
        self.critical = n;
        self
    }

    /// The model in words, for `agora protocols`.
    pub fn describe(&self) -> String {
        if !self.declared {
            return "not declared".into();
        }
        let mut parts = Vec::new();
        let crashes = match (self.crashes, self.max_down) {
            (Crashes::None, _) => None,
            (Crashes::Stop, None) => Some("crash-stop".to_string()),
            (Crashes::Recover, None) => Some("crash-recovery".to_string()),
            (Crashes::Stop, Some(k)) => Some(format!("crash-stop of at most {k}")),
            (Crashes::Recover, Some(k)) => Some(format!("crash-recovery of at most {k} at once")),
        };
        parts.extend(crashes);
        for (on, what) in [
            (self.wipes, "lost disks"),
            (self.loss, "loss"),
            (self.duplication, "duplication"),
            (self.reordering, "reordering"),
            (self.partitions, "partitions"),
            (self.pauses, "pauses"),
            (self.clocks, "clock skew and drift"),
        ] {
            if on {
                parts.push(what.to_string());
            }
        }
        let mut text = if parts.is_empty() { "no faults".to_string() } else { parts.join(", ") };
        if self.synchronous {
            text.push_str("; needs a synchronous network");
        }
        text
    }
}

/// The faults a run had, as a driver knows them, to compare with a [`FaultModel`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunFaults {
    /// Messages could be lost.
    pub loss: bool,
    /// Messages could be duplicated.
    pub duplication: bool,
    /// Messages on a link could overtake each other.
    pub reordering: bool,
    /// A partition (symmetric or one-way) was scheduled.
    pub partitions: bool,
    /// Nodes crashed.
    pub crashes: bool,
    /// Crashed nodes restarted.
    pub restarts: bool,
    /// Each crash: when, when the node restarted (never: `None`), and the node.
    pub downs: Vec<(f64, Option<f64>, u32)>,
    /// A crash lost a node's storage.
    pub wipes: bool,
    /// Nodes paused.
    pub pauses: bool,
    /// Clocks were skewed or drifted.
    pub clocks: bool,
}

impl RunFaults {
    /// What in this run lies outside `model`, in words (empty: the run is within it).
    pub fn outside(&self, model: &FaultModel) -> Vec<String> {
        let mut out = Vec::new();
        if !model.declared {
            if *self != RunFaults::default() {
                out.push("the protocol declares no fault model".to_string());
            }
            return out;
        }
        let sync = |what: &str| format!("{what} (it needs a synchronous network)");
        let mut flag = |had: bool, tolerated: bool, what: &str, synchrony: bool| {
            if had && !tolerated {
                out.push(if synchrony && model.synchronous { sync(what) } else { what.to_string() });
            }
        };
        flag(self.loss, model.loss, "message loss", true);
        flag(self.duplication, model.duplication, "duplication", false);
        flag(self.reordering, model.reordering, "reordering (it needs FIFO links)", false);
        flag(self.partitions, model.partitions, "partitions", true);
        flag(self.pauses, model.pauses, "pauses", true);
        flag(self.clocks, model.clocks, "clock skew or drift", false);
        flag(self.wipes, model.wipes, "lost disks", false);
        match model.crashes {
            Crashes::None if self.crashes => out.push("crashes".into()),
            Crashes::Stop if self.restarts => {
                out.push("restarts after a crash (it assumes crash-stop)".into())
            }
            _ => {}
        }
        if let Some(k) = model.max_down {
            let down = self.max_down(model.critical);
            if down > k && model.crashes != Crashes::None {
                out.push(format!("{down} nodes down at once (it tolerates {k})"));
            }
        }
        out
    }

    /// The most of the nodes `0..critical` down at once.
    pub fn max_down(&self, critical: usize) -> usize {
        // A sweep over crash and restart times, a restart before a crash at the same instant.
        let mut steps: Vec<(f64, i64)> = Vec::new();
        for &(at, restart, _) in self.downs.iter().filter(|d| (d.2 as usize) < critical) {
            steps.push((at, 1));
            if let Some(r) = restart {
                steps.push((r, -1));
            }
        }
        steps.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let (mut down, mut most) = (0i64, 0i64);
        for (_, d) in steps {
            down += d;
            most = most.max(down);
        }
        most as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_within_the_model_is_not_outside_it() {
        let raft = FaultModel::any(Some(1));
        let one = vec![(10.0, Some(20.0), 0), (20.0, Some(30.0), 1)];
        let run = RunFaults { loss: true, crashes: true, restarts: true, downs: one, ..RunFaults::default() };
        assert!(run.outside(&raft).is_empty());
        let two = vec![(10.0, Some(20.0), 0), (15.0, None, 1)];
        let two_down = RunFaults { downs: two, ..run.clone() };
        assert_eq!(two_down.outside(&raft), vec!["2 nodes down at once (it tolerates 1)".to_string()]);
        assert!(two_down.outside(&raft.among_first(1)).is_empty(), "node 1 is not a replica");
    }

    #[test]
    fn each_fault_outside_the_model_is_named() {
        let bully = FaultModel { crashes: Crashes::Recover, synchronous: true, ..FaultModel::NONE };
        let run = RunFaults { loss: true, reordering: true, ..RunFaults::default() };
        assert_eq!(
            run.outside(&bully),
            vec![
                "message loss (it needs a synchronous network)".to_string(),
                "reordering (it needs FIFO links)".to_string()
            ]
        );
        let stop = FaultModel { crashes: Crashes::Stop, ..FaultModel::NONE };
        let restarts = RunFaults {
            crashes: true,
            restarts: true,
            downs: vec![(1.0, Some(2.0), 0)],
            ..RunFaults::default()
        };
        assert_eq!(restarts.outside(&stop).len(), 1);
        assert_eq!(restarts.outside(&FaultModel::NONE), vec!["crashes".to_string()]);
        assert!(RunFaults::default().outside(&FaultModel::UNDECLARED).is_empty());
        assert_eq!(restarts.outside(&FaultModel::UNDECLARED).len(), 1);
    }

    #[test]
    fn the_description_names_what_is_tolerated() {
        assert_eq!(FaultModel::NONE.describe(), "no faults");
        let m =
            FaultModel { crashes: Crashes::Stop, duplication: true, synchronous: true, ..FaultModel::NONE };
        assert_eq!(m.describe(), "crash-stop, duplication; needs a synchronous network");
        assert!(FaultModel::any(Some(2))
            .describe()
            .starts_with("crash-recovery of at most 2 at once, lost disks"));
    }
}
