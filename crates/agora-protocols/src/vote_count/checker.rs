//! The election's properties, on top of the legislature's Raft properties.
//!
//! - *counted-once* (always): no voter is counted twice, and every replica counts the same
//!   ballot at each leaf (the same row: voter, state, option, hash and log position).
//! - *receipt-counted* (always): a receipt is a counted ballot's row: the voter's, with its
//!   hash, at its leaf, field for field. Every acknowledged ballot is thus counted, exactly
//!   once. A receipt can be reported before any replica reports counting its leaf (Raft's
//!   leader answers early, and a leader killed then never reports): it is judged when the
//!   leaf is, and at the end is a violation if no node's reports were lost, undecided if
//!   some were ([`Checker::undecided`]).
//! - *verification* (always): a valid ballot is never rejected as forged, off the ballot or
//!   a second vote; a forged ballot, an option not on the ballot and a voter's second,
//!   different ballot are rejected with that reason and never get a receipt.
//! - *replicas-agree* (always): every replica that tallies reaches the same digest, over as
//!   many ballots as were counted; results received anywhere carry that digest and count.
//! - *results-everywhere* (at end, as Raft's liveness): every live region and citizen has the
//!   results and every live citizen an answer to each of its ballots.

use super::obs::{Answer, Intent, VoteObs};
use super::settings::Settings;
use super::{Hash, Reason, Receipt};
use crate::raft::checker::RaftChecker;
use agora_core::{
    Checker, EndState, Lifecycle, NodeId, NotJudged, Property, PropertyKind, Protocol, Time, Violation,
};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// The election's checker: Raft's properties on the legislature, and the election's own on
/// ballots, receipts, the board and the results.
pub struct VoteChecker {
    raft: RaftChecker,
    /// The row of each leaf, as the first replica to count it reported it.
    leaves: Vec<Option<Receipt>>,
    voter_leaf: HashMap<u64, u64>,
    digest: Option<(Hash, u64)>,
    /// Regions and citizens (by node index) that must end with results.
    audience: Vec<bool>,
    citizens: Vec<bool>,
    has_results: Vec<bool>,
    cast: Vec<u64>,
    answered: Vec<u64>,
    settle: Time,
    /// Receipts taken for leaves no replica has reported counting yet, by leaf.
    receipts_ahead: BTreeMap<u64, Vec<(NodeId, Receipt)>>,
    /// Some legislator's reports may be missing ([`Checker::reports_lost`]).
    lost_any: bool,
}

impl VoteChecker {
    /// A checker for a run of `s` whose legislature is `replicas`; liveness is judged only once
    /// the run went on for `settle` after its last fault.
    pub fn new(s: &Settings, replicas: Vec<NodeId>, settle: Duration) -> Self {
        let n = s.nodes();
        let regions = s.spec.regions.len();
        let mut audience = vec![false; n];
        let mut citizens = vec![false; n];
        for r in 0..regions {
            audience[s.region(r).index()] = true;
            audience[s.citizen(r).index()] = true;
            citizens[s.citizen(r).index()] = true;
        }
        // The Raft checker judges the legislature; its "clients" (the coordinators) are
        // judged here through the regions and citizens instead.
        VoteChecker {
            raft: RaftChecker::new(n, &replicas, &[], settle),
            leaves: Vec::new(),
            voter_leaf: HashMap::new(),
            digest: None,
            audience,
            citizens,
            has_results: vec![false; n],
            cast: vec![0; n],
            answered: vec![0; n],
            settle: Time(settle.as_nanos() as u64),
            receipts_ahead: BTreeMap::new(),
            lost_any: false,
        }
    }
}

impl<P: Protocol<Obs = VoteObs> + ?Sized> Checker<P> for VoteChecker {
    fn properties(&self) -> Vec<Property> {
        let always = |name, description| Property { name, kind: PropertyKind::Always, description };
        let mut p = RaftChecker::properties();
        p.extend([
            always("counted-once", "no voter is counted twice; replicas count the same ballot at each leaf"),
            always("receipt-counted", "a receipt names the voter's counted ballot at its leaf"),
            always(
                "verification",
                "valid ballots are accepted; forged, off-ballot and second ballots rejected",
            ),
            always("replicas-agree", "every replica tallies the same digest; results carry it"),
            Property {
                name: "results-everywhere",
                kind: PropertyKind::AtEnd,
                description:
                    "after the faults, every live region and citizen has the results and every answer",
            },
        ]);
        p
    }

    fn observe(&mut self, at: Time, node: NodeId, obs: &VoteObs) -> Result<(), Violation> {
        let v = |p: &'static str, d: String| Err(Violation::new(p, Some(node), at, d));
        match obs {
            VoteObs::Raft(o) => return self.raft.check(at, node, o),
            VoteObs::Counted { ballots } => {
                for row in ballots {
                    let (voter, leaf) = (row.voter, row.leaf);
                    let i = leaf as usize;
                    if i >= self.leaves.len() {
                        self.leaves.resize(i + 1, None);
                    }
                    match self.leaves[i] {
                        Some(x) if x != *row => {
                            return v(
                                "counted-once",
                                format!("replicas count different ballots at leaf {leaf}"),
                            )
                        }
                        Some(_) => {}
                        None => {
                            if let Some(l) = self.voter_leaf.insert(voter, leaf) {
                                return v(
                                    "counted-once",
                                    format!("voter {voter} counted at leaf {l} and {leaf}"),
                                );
                            }
                            self.leaves[i] = Some(*row);
                            for (citizen, r) in self.receipts_ahead.remove(&leaf).unwrap_or_default() {
                                if r != *row {
                                    let d = format!(
                                        "voter {}'s receipt names leaf {leaf}, which holds {row:?}",
                                        r.voter
                                    );
                                    return Err(Violation::new("receipt-counted", Some(citizen), at, d));
                                }
                            }
                        }
                    }
                }
            }
            VoteObs::Tallied { digest, counted } => match self.digest {
                Some((d, c)) if d != *digest || c != *counted => {
                    return v("replicas-agree", format!("tallied {counted} ballots to a different digest"))
                }
                Some(_) => {}
                None => {
                    let known = self.leaves.iter().filter(|l| l.is_some()).count() as u64;
                    if known != *counted {
                        return v(
                            "replicas-agree",
                            format!("tallied {counted} ballots, but {known} were reported counted"),
                        );
                    }
                    self.digest = Some((*digest, *counted));
                }
            },
            VoteObs::Cast { .. } => self.cast[node.index()] += 1,
            VoteObs::Answered { voter, hash, intent, answer } => {
                self.answered[node.index()] += 1;
                match (intent, answer) {
                    (Intent::Valid, Answer::Counted(r)) => {
                        if r.voter != *voter || r.hash != *hash {
                            return v(
                                "receipt-counted",
                                format!("voter {voter} got a receipt for another ballot"),
                            );
                        }
                        match self.leaves.get(r.leaf as usize).copied().flatten() {
                            Some(row) if row == *r => {}
                            // Judged when a replica reports counting that leaf.
                            None => self.receipts_ahead.entry(r.leaf).or_default().push((node, *r)),
                            other => {
                                return v(
                                    "receipt-counted",
                                    format!(
                                        "voter {voter}'s receipt names leaf {}, which holds {other:?}",
                                        r.leaf
                                    ),
                                )
                            }
                        }
                    }
                    (Intent::Valid, Answer::Rejected(r))
                        if matches!(
                            r,
                            Reason::BadCredential | Reason::NoSuchOption | Reason::UnknownVoter
                        ) =>
                    {
                        return v("verification", format!("voter {voter}'s valid ballot was rejected: {r}"))
                    }
                    (Intent::Valid, Answer::Rejected(_)) => {}
                    (bad, Answer::Counted(_)) => {
                        return v("verification", format!("voter {voter}'s {bad:?} ballot got a receipt"))
                    }
                    (bad, Answer::Rejected(r)) => {
                        let want = match bad {
                            Intent::Forged => Reason::BadCredential,
                            Intent::NoOption => Reason::NoSuchOption,
                            _ => Reason::AlreadyVoted,
                        };
                        if *r != want && !matches!(r, Reason::NotOpen(_)) {
                            return v(
                                "verification",
                                format!("voter {voter}'s {bad:?} ballot was rejected as {r}, not {want}"),
                            );
                        }
                    }
                }
            }
            VoteObs::Results { results } => {
                self.has_results[node.index()] = true;
                if let Some((d, c)) = self.digest {
                    if d != results.digest || c != results.counted {
                        return v(
                            "replicas-agree",
                            "received results that differ from the replicas' tally".into(),
                        );
                    }
                }
                let total: u64 = results.national.iter().sum();
                if total != results.counted {
                    return v(
                        "replicas-agree",
                        format!("results add up to {total}, not {}", results.counted),
                    );
                }
            }
        }
        Ok(())
    }

    fn lifecycle(&mut self, at: Time, node: NodeId, event: Lifecycle) {
        self.raft.on_lifecycle(at, node, event);
        if event == Lifecycle::Crashed {
            self.has_results[node.index()] = false;
            self.cast[node.index()] = 0;
            self.answered[node.index()] = 0;
        }
    }

    fn undecided(&self) -> Vec<(&'static str, NotJudged)> {
        let mut out = self.raft.open_claims();
        if !self.receipts_ahead.is_empty() {
            out.push(("receipt-counted", NotJudged::Undecided));
        }
        out
    }

    fn reports_lost(&mut self, _at: Time, node: NodeId) {
        // Only a legislator reports counting.
        self.lost_any |= self.raft.is_replica(node);
        // A legislator killed between making its writes durable and reporting them restarts
        // with a log longer than it reported: Raft's `durable-log` must accept that.
        self.raft.on_reports_lost(node);
    }

    fn not_judged(&self, end: &EndState<'_>) -> Vec<(&'static str, NotJudged)> {
        let settled = end.at.0.saturating_sub(end.last_fault.0) >= self.settle.0;
        let own = if !(settled || end.quiescent) {
            Some(if end.last_fault == Time::ZERO { NotJudged::Unended } else { NotJudged::Unsettled })
        } else if end.partitioned {
            Some(NotJudged::Partitioned)
        } else {
            None
        };
        let mut out: Vec<_> = self.raft.unjudged(end).map(|why| ("liveness", why)).into_iter().collect();
        out.extend(own.map(|why| ("results-everywhere", why)));
        out
    }

    fn finish(&mut self, end: &EndState<'_>) -> Vec<Violation> {
        let mut out = self.raft.judge_end(end);
        // Every report was made: a receipt for a leaf no replica reported counting names a
        // ballot that was never counted.
        if !self.lost_any {
            if let Some((leaf, taken)) = std::mem::take(&mut self.receipts_ahead).into_iter().next() {
                let (citizen, r) = taken[0];
                let d = format!("voter {}'s receipt names leaf {leaf}, which no replica counted", r.voter);
                out.push(Violation::new("receipt-counted", Some(citizen), end.at, d));
            }
        }
        let settled = end.at.0.saturating_sub(end.last_fault.0) >= self.settle.0;
        if (settled || end.quiescent) && !end.partitioned {
            out.extend(self.results_everywhere(end));
        }
        out
    }
}

impl VoteChecker {
    /// The first `results-everywhere` violation at `end`: a live region or citizen without
    /// the results, or a live citizen without an answer to each of its ballots.
    fn results_everywhere(&self, end: &EndState<'_>) -> Option<Violation> {
        let live = |i: usize| end.live.get(i).copied().unwrap_or(false);
        for i in 0..self.audience.len() {
            if self.audience[i] && live(i) && !self.has_results[i] {
                return Some(Violation::new(
                    "results-everywhere",
                    Some(NodeId(i as u32)),
                    end.at,
                    "never received the results",
                ));
            }
            if self.citizens[i] && live(i) && self.answered[i] < self.cast[i] {
                return Some(Violation::new(
                    "results-everywhere",
                    Some(NodeId(i as u32)),
                    end.at,
                    format!(
                        "{} of its {} ballots never got a final answer",
                        self.cast[i] - self.answered[i],
                        self.cast[i]
                    ),
                ));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::node::VoteNode;
    use super::super::setup::VoteSetup;
    use super::*;
    use crate::raft::RaftObs;
    use crate::registry::FromParams;
    use agora_core::Setup;

    /// Legislator 0 reports writing entry 1, is killed (`lost`: told its last reports may be
    /// missing, as a node killed outside the run is) and restarts with entries 1 and 2.
    fn restart(lost: bool) -> Result<(), Violation> {
        let p = crate::Params::new(3, 1).resolve("election", VoteSetup::SPECS).unwrap();
        let mut c: Box<dyn Checker<VoteNode>> = VoteSetup::from_params(&p).unwrap().checker();
        let n = NodeId(0);
        let restored = |log: Vec<(u64, u64)>| {
            VoteObs::Raft(RaftObs::Restored {
                term: 1,
                voted_for: None,
                base: (0, 0, 0),
                log,
                rejoining: false,
            })
        };
        c.observe(Time(1), n, &restored(Vec::new()))?;
        c.observe(Time(2), n, &VoteObs::Raft(RaftObs::Appended { first: 1, entries: vec![(1, 7)] }))?;
        if lost {
            c.reports_lost(Time(3), n);
        }
        c.lifecycle(Time(3), n, Lifecycle::Crashed);
        c.lifecycle(Time(4), n, Lifecycle::Restarted);
        c.observe(Time(5), n, &restored(vec![(1, 7), (1, 8)]))
    }

    /// A citizen takes a receipt for leaf 0 before any replica reports counting it (the
    /// legislature's leader answers early): judged when a replica reports the leaf.
    #[test]
    fn a_receipt_taken_before_its_leaf_is_reported_is_judged_by_the_report() {
        let p = crate::Params::new(3, 1).resolve("election", VoteSetup::SPECS).unwrap();
        let receipt = Receipt {
            voter: 7,
            state: 0,
            option: 1,
            hash: [3; 16],
            leaf: 0,
            pos: crate::raft::Pos { index: 2, offset: 0 },
        };
        let answered = VoteObs::Answered {
            voter: 7,
            hash: [3; 16],
            intent: Intent::Valid,
            answer: Answer::Counted(receipt),
        };
        for (counted, ok) in [(receipt, true), (Receipt { option: 0, ..receipt }, false)] {
            let mut c: Box<dyn Checker<VoteNode>> = VoteSetup::from_params(&p).unwrap().checker();
            c.observe(Time(1), NodeId(9), &answered).unwrap();
            assert_eq!(c.undecided(), [("receipt-counted", NotJudged::Undecided)]);
            let judged = c.observe(Time(2), NodeId(0), &VoteObs::Counted { ballots: vec![counted] });
            assert_eq!(judged.map_err(|v| v.property), if ok { Ok(()) } else { Err("receipt-counted") });
            assert!(c.undecided().is_empty());
        }
    }

    #[test]
    fn a_legislator_killed_before_reporting_its_last_write_restarts_with_it() {
        assert!(restart(true).is_ok(), "written, killed before reporting it");
        assert_eq!(restart(false).unwrap_err().property, "durable-log", "reported all, restarted with more");
    }
}
