//! What the election produced, read off its nodes' observations: ballots cast, answered and
//! counted, the results the replicas published and whether they agree, the bulletin board,
//! the receipts, and when leaders took over.

use agora_core::{NodeId, RunSummary, Time};
use agora_protocols::raft::RaftObs;
use agora_protocols::vote_count::obs::{Answer, Intent, VoteObs};
use agora_protocols::vote_count::states::STATES;
use agora_protocols::vote_count::{self as vc, hex, Hash, Results, Spec};
use serde::Serialize;
use std::collections::BTreeMap;

/// What the election produced, read from its nodes' observations.
#[derive(Serialize)]
pub(super) struct Report {
    pub(super) election: String,
    pub(super) runtime: String,
    pub(super) replicas: usize,
    pub(super) cast: u64,
    pub(super) acknowledged: u64,
    pub(super) rejected: u64,
    pub(super) rejected_by_reason: BTreeMap<String, u64>,
    pub(super) counted: u64,
    /// Per state: option → count.
    pub(super) results: BTreeMap<String, BTreeMap<String, u64>>,
    pub(super) national: BTreeMap<String, u64>,
    pub(super) replicas_agree: bool,
    pub(super) results_digest: Option<String>,
    pub(super) merkle_root: Option<String>,
    pub(super) ballots_per_s: f64,
    pub(super) latency_ms_p50: f64,
    pub(super) latency_ms_p99: f64,
    pub(super) checks_passed: bool,
    pub(super) summary: RunSummary,
    #[serde(skip)]
    pub(super) published: Option<Results>,
    /// The bulletin board: every counted ballot's row, by leaf.
    #[serde(skip)]
    pub(super) board: Vec<Option<vc::Receipt>>,
    /// The receipts the citizens got for their valid ballots.
    #[serde(skip)]
    pub(super) receipts: Vec<vc::Receipt>,
    /// When replicas became leader: (ns, node, term).
    #[serde(skip)]
    pub(super) leaders: Vec<(u64, u32, u64)>,
    /// Every ballot's `(cast ns, final answer ns)`, on the clock of the observations.
    #[serde(skip)]
    pub(super) ops: Vec<(u64, u64)>,
}

/// What the observations said, gathered as they are read.
struct Seen {
    cast: u64,
    acknowledged: u64,
    rejected: u64,
    by_reason: BTreeMap<String, u64>,
    board: Vec<Option<vc::Receipt>>,
    /// Each replica's tally digest.
    digests: BTreeMap<NodeId, Hash>,
    /// The first results published; `agree` turns false if later ones differ.
    published: Option<Results>,
    agree: bool,
    receipts: Vec<vc::Receipt>,
    /// The first ballot cast and the last one acknowledged (ns).
    first: u64,
    last: u64,
    leaders: Vec<(u64, u32, u64)>,
}

impl Seen {
    fn new() -> Self {
        Seen {
            cast: 0,
            acknowledged: 0,
            rejected: 0,
            by_reason: BTreeMap::new(),
            board: Vec::new(),
            digests: BTreeMap::new(),
            published: None,
            agree: true,
            receipts: Vec::new(),
            first: u64::MAX,
            last: 0,
            leaders: Vec::new(),
        }
    }

    /// Reads one observation of `node` at `t` ns.
    fn see(&mut self, t: u64, node: NodeId, o: &VoteObs) {
        match o {
            VoteObs::Cast { .. } => {
                self.cast += 1;
                self.first = self.first.min(t);
            }
            VoteObs::Answered { answer: Answer::Counted(r), intent, .. } => {
                self.acknowledged += 1;
                self.last = self.last.max(t);
                if *intent == Intent::Valid {
                    self.receipts.push(*r);
                }
            }
            VoteObs::Answered { answer: Answer::Rejected(r), .. } => {
                self.rejected += 1;
                *self.by_reason.entry(r.code().to_string()).or_insert(0) += 1;
            }
            VoteObs::Counted { ballots } => {
                for row in ballots {
                    let leaf = row.leaf as usize;
                    if self.board.len() <= leaf {
                        self.board.resize(leaf + 1, None);
                    }
                    self.board[leaf] = Some(*row);
                }
            }
            VoteObs::Tallied { digest, .. } => {
                self.digests.insert(node, *digest);
            }
            VoteObs::Results { results } => match &self.published {
                Some(p) => self.agree &= p == &**results,
                None => self.published = Some((**results).clone()),
            },
            VoteObs::Raft(RaftObs::Leader { term }) => self.leaders.push((t, node.0, *term)),
            VoteObs::Raft(_) => {}
        }
    }

    /// Whether the replicas agree: one tally digest, held by a majority of the `replicas`,
    /// the one of the results published, and no two results published that differ.
    fn agree(&self, replicas: usize) -> bool {
        let mut tally_votes: BTreeMap<Hash, usize> = BTreeMap::new();
        for d in self.digests.values() {
            *tally_votes.entry(*d).or_default() += 1;
        }
        let majority = tally_votes.values().any(|n| *n > replicas / 2);
        self.agree
            && tally_votes.len() == 1
            && majority
            && self.published.as_ref().is_none_or(|p| tally_votes.contains_key(&p.digest))
    }
}

/// Per state (option → count) and national counts of the results published, if any.
type Counts = (BTreeMap<String, BTreeMap<String, u64>>, BTreeMap<String, u64>);

fn counts(published: &Option<Results>) -> Counts {
    let mut results = BTreeMap::new();
    let mut national = BTreeMap::new();
    if let Some(p) = published {
        for (i, s) in STATES.iter().enumerate() {
            let row = p.options.iter().cloned().zip(p.per_state[i].iter().copied()).collect();
            results.insert(s.code.to_string(), row);
        }
        national = p.options.iter().cloned().zip(p.national.iter().copied()).collect();
    }
    (results, national)
}

/// Reads the report off the observations `(time ns, node, observation)`.
pub(super) fn report<'a>(
    spec: &Spec,
    replicas: usize,
    runtime: &str,
    obs: impl Iterator<Item = (u64, NodeId, &'a VoteObs)>,
    summary: RunSummary,
) -> Report {
    let mut seen = Seen::new();
    for (t, node, o) in obs {
        seen.see(t, node, o);
    }
    let agree = seen.agree(replicas);
    let (results, national) = counts(&seen.published);
    let (first, last) = (seen.first, seen.last);
    let span_s = if last > first { (last - first) as f64 / 1e9 } else { 0.0 };
    let published = seen.published;
    Report {
        election: spec.id.clone(),
        runtime: runtime.into(),
        replicas,
        cast: seen.cast,
        acknowledged: seen.acknowledged,
        rejected: seen.rejected,
        rejected_by_reason: seen.by_reason,
        counted: published.as_ref().map_or(0, |p| p.counted),
        results,
        national,
        replicas_agree: agree && published.is_some(),
        results_digest: published.as_ref().map(|p| hex(&p.digest)),
        merkle_root: published.as_ref().map(|p| hex(&p.root)),
        ballots_per_s: if span_s > 0.0 { seen.acknowledged as f64 / span_s } else { 0.0 },
        latency_ms_p50: summary.latency_ms.p50_ms,
        latency_ms_p99: summary.latency_ms.p99_ms,
        checks_passed: summary.violations.is_empty(),
        summary,
        published,
        board: seen.board,
        receipts: seen.receipts,
        leaders: seen.leaders,
        ops: Vec::new(),
    }
}

/// Every ballot answered: `(cast, answered)`, ns.
pub(super) fn ops_of(m: &agora_core::Metrics) -> Vec<(u64, u64)> {
    m.op_events()
        .filter_map(|(_, b, e)| e.filter(|e| *e >= b && b != Time::MAX).map(|e| (b.as_nanos(), e.as_nanos())))
        .collect()
}
