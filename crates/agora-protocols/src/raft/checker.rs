//! Raft's safety properties (Figure 3 of the paper) and a client oracle, judged from what
//! replicas and clients report.
//!
//! The checker keeps a mirror of every replica's log as `(term, chain)` per index; a chain
//! hash covers an entry and every entry before it, so comparing chains compares whole
//! prefixes.
//!
//! - *election-safety*: at most one leader per term.
//! - *one-vote-per-term*: a replica never votes for two candidates in one term, across
//!   restarts (its vote is durable).
//! - *leader-append-only*: a leader never overwrites or removes entries of its log.
//! - *log-matching*: two logs with an entry of the same index and term hold the same entries
//!   up to it.
//! - *leader-completeness*: a new leader's log holds every entry committed in an earlier term.
//! - *state-machine-safety*: no two replicas apply (or commit) different entries at one index,
//!   and they obtain the same results from them.
//! - *durable-log*: a restarted replica's log is what it had written (unless its storage was
//!   wiped: it then restarts empty).
//! - *rejoin-before-vote*: a replica that lost its storage votes only once it has rejoined
//!   (caught up with a leader's log, see [`super::replica`]).
//! - *exactly-once*: no command of a client session takes effect twice.
//! - *acked-applied*: an acknowledged command took effect at the log position it was told.
//!   A leader answers before its own report of the apply is made (it sends replies early:
//!   the entry is committed), so a client's acknowledgement may come first, and with the
//!   leader killed, before any replica's; it is then judged when the first replica reports
//!   applying that index, and stays undecided ([`Checker::undecided`]) until one does.
//! - *linearizable-reads*: a query is answered at a log index no older than any command or
//!   query completed before it was sent (no stale reads).
//! - *liveness* (at end, when a majority of replicas is up, no partition is in force, and the
//!   run either went on for `settle` after the last fault or ended because every node had
//!   only heartbeats left): a leader was in office in the final stretch, every live replica
//!   applied every acknowledged command, and every live client got every answer it asked
//!   for.

use super::{Index, RaftObs, Term};
use agora_core::{
    Checker, EndState, Lifecycle, NodeId, NotJudged, Property, PropertyKind, Protocol, Time, Violation,
};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

#[derive(Clone, Debug, Default)]
struct Mirror {
    base: (Index, Term, u64),
    log: Vec<(Term, u64)>,
}

impl Mirror {
    fn last(&self) -> Index {
        self.base.0 + self.log.len() as u64
    }

    fn at(&self, i: Index) -> Option<(Term, u64)> {
        if i == self.base.0 {
            return Some((self.base.1, self.base.2));
        }
        if i < self.base.0 {
            return None;
        }
        self.log.get((i - self.base.0 - 1) as usize).copied()
    }
}

/// Judges runs of any protocol whose observations include Raft's.
#[derive(Clone)]
pub struct RaftChecker {
    replica: Vec<bool>,
    client: Vec<bool>,
    settle: Time,
    leaders: HashMap<Term, NodeId>,
    votes: HashMap<(NodeId, Term), NodeId>,
    leading: Vec<Option<Term>>,
    /// The last time some replica was leader.
    leader_seen: Time,
    mirrors: Vec<Mirror>,
    chains: HashMap<(Index, Term), u64>,
    committed: HashMap<Index, u64>,
    /// Per term, the highest index its leader committed, with its chain.
    committed_in: BTreeMap<Term, (Index, u64)>,
    applied: HashMap<Index, (u64, u64, u64)>,
    applied_upto: Vec<Index>,
    fresh_at: HashMap<(u64, u64), Index>,
    /// Acknowledgements of commands at an index no replica has reported applying yet, by index.
    acked_ahead: BTreeMap<Index, Vec<(u64, u64)>>,
    max_acked: Index,
    /// The highest log index of an operation completed so far.
    completed: Index,
    read_floor: HashMap<(u64, u64), Index>,
    client_done: Vec<bool>,
    /// Replicas that restarted rejoining (after losing their storage) and have not caught up.
    wiped: Vec<bool>,
    /// Per node: its reports before its latest crash may be missing ([`Checker::reports_lost`]).
    lagging: Vec<bool>,
    /// Some replica's reports may be missing: an acknowledgement no apply report decides is
    /// then undecided at the end, not a violation.
    lost_any: bool,
}

impl RaftChecker {
    /// `nodes`: the cluster size; `replicas` and `clients` among them; liveness is judged
    /// `settle` after the last fault.
    pub fn new(nodes: usize, replicas: &[NodeId], clients: &[NodeId], settle: Duration) -> Self {
        let mut replica = vec![false; nodes];
        for r in replicas {
            replica[r.index()] = true;
        }
        let mut client = vec![false; nodes];
        for c in clients {
            client[c.index()] = true;
        }
        RaftChecker {
            replica,
            client,
            settle: Time(settle.as_nanos() as u64),
            leaders: HashMap::new(),
            votes: HashMap::new(),
            leading: vec![None; nodes],
            leader_seen: Time::ZERO,
            mirrors: vec![Mirror::default(); nodes],
            chains: HashMap::new(),
            committed: HashMap::new(),
            committed_in: BTreeMap::new(),
            applied: HashMap::new(),
            applied_upto: vec![0; nodes],
            fresh_at: HashMap::new(),
            acked_ahead: BTreeMap::new(),
            max_acked: 0,
            completed: 0,
            read_floor: HashMap::new(),
            client_done: vec![false; nodes],
            wiped: vec![false; nodes],
            lagging: vec![false; nodes],
            lost_any: false,
        }
    }

    /// Raft's properties: the safety properties judged at every observation, and `liveness` at
    /// the end.
    pub fn properties() -> Vec<Property> {
        let always = |name, description| Property { name, kind: PropertyKind::Always, description };
        vec![
            always("election-safety", "at most one leader per term"),
            always(
                "one-vote-per-term",
                "a replica votes for at most one candidate per term, across restarts",
            ),
            always("leader-append-only", "a leader never overwrites or deletes its log entries"),
            always("log-matching", "logs with an entry of the same index and term are identical up to it"),
            always("leader-completeness", "a new leader's log holds every entry committed in earlier terms"),
            always(
                "state-machine-safety",
                "replicas apply the same entry at each index, with the same results",
            ),
            always("durable-log", "a restarted replica's log is what it had written"),
            always("rejoin-before-vote", "a replica that lost its storage votes only once it has caught up"),
            always("exactly-once", "no command of a client session takes effect twice"),
            always("acked-applied", "an acknowledged command took effect at the position it was told"),
            always(
                "linearizable-reads",
                "a query never reads older state than an operation completed before it",
            ),
            Property {
                name: "liveness",
                kind: PropertyKind::AtEnd,
                description: "after the faults: a leader, every acknowledged command applied on every live \
                              replica, every live client answered",
            },
        ]
    }

    /// Judges one observation of `node` at `at`.
    pub fn check(&mut self, at: Time, node: NodeId, obs: &RaftObs) -> Result<(), Violation> {
        let n = node.index();
        let v = |p: &'static str, d: String| Err(Violation::new(p, Some(node), at, d));
        match obs {
            RaftObs::Restored { base, log, rejoining, .. } => {
                self.wiped[n] = *rejoining;
                let lagging = std::mem::take(&mut self.lagging[n]);
                let m = &self.mirrors[n];
                if m.last() > 0 || !log.is_empty() || base.0 > 0 {
                    let want_last = base.0 + log.len() as u64;
                    // Entries written and never reported are no violation; entries reported
                    // and not restored are.
                    let lost_tail = lagging && want_last > m.last();
                    if want_last != m.last() && !lost_tail {
                        return v(
                            "durable-log",
                            format!(
                                "restarted with a log ending at {want_last}, but it had written up to {}",
                                m.last()
                            ),
                        );
                    }
                    for (k, e) in log.iter().enumerate() {
                        let i = base.0 + 1 + k as u64;
                        if m.at(i).is_some_and(|x| x != *e) {
                            return v(
                                "durable-log",
                                format!("restarted with a different entry at index {i}"),
                            );
                        }
                    }
                }
                self.mirrors[n] = Mirror { base: *base, log: log.clone() };
                self.applied_upto[n] = base.0;
                self.leading[n] = None;
            }
            RaftObs::Voted { term, .. } if self.wiped[n] => {
                return v("rejoin-before-vote", format!("voted in term {term} before it rejoined"));
            }
            RaftObs::Rejoined { .. } => self.wiped[n] = false,
            RaftObs::Voted { term, candidate } => match self.votes.get(&(node, *term)) {
                Some(c) if c != candidate => {
                    return v(
                        "one-vote-per-term",
                        format!("voted for {candidate} in term {term}, after voting for {c}"),
                    )
                }
                _ => {
                    self.votes.insert((node, *term), *candidate);
                }
            },
            RaftObs::Leader { term } => {
                if let Some(l) = self.leaders.get(term) {
                    if *l != node {
                        return v(
                            "election-safety",
                            format!("became leader of term {term}, which node {l} leads"),
                        );
                    }
                }
                self.leaders.insert(*term, node);
                self.leading[n] = Some(*term);
                self.leader_seen = at;
                // Entries committed in earlier terms (§5.4 of the paper: a leader of a later
                // term must hold them; one committed in a later term binds later leaders only).
                let earlier = self.committed_in.range(..*term).map(|(_, c)| *c).max_by_key(|(i, _)| *i);
                if let Some((c, chain)) = earlier {
                    let m = &self.mirrors[n];
                    let has = c <= m.base.0 || m.at(c).is_some_and(|(_, ch)| ch == chain);
                    if !has {
                        return v(
                            "leader-completeness",
                            format!(
                                "leader of term {term} lacks committed entry {c} (its log ends at {})",
                                m.last()
                            ),
                        );
                    }
                }
            }
            RaftObs::SteppedDown { .. } => {
                self.leading[n] = None;
                self.leader_seen = at;
            }
            RaftObs::Appended { first, entries } => {
                let m = &mut self.mirrors[n];
                if *first <= m.base.0 || *first > m.last() + 1 {
                    return v(
                        "log-matching",
                        format!(
                            "wrote entries from {first}, outside its log ({}..={})",
                            m.base.0 + 1,
                            m.last() + 1
                        ),
                    );
                }
                if let Some(t) = self.leading[n] {
                    if *first <= m.last() {
                        return v(
                            "leader-append-only",
                            format!(
                                "leader of term {t} rewrote its log from index {first} (it ended at {})",
                                m.last()
                            ),
                        );
                    }
                }
                m.log.truncate((*first - m.base.0 - 1) as usize);
                for (k, (term, chain)) in entries.iter().enumerate() {
                    let i = first + k as u64;
                    match self.chains.get(&(i, *term)) {
                        Some(c) if c != chain => {
                            return v(
                                "log-matching",
                                format!(
                                "entry {i} of term {term} follows a different log than on another replica"
                            ),
                            )
                        }
                        Some(_) => {}
                        None => {
                            self.chains.insert((i, *term), *chain);
                        }
                    }
                    m.log.push((*term, *chain));
                }
            }
            RaftObs::Snapshotted { index, chain } => {
                if self.applied_upto[n] < *index {
                    return v(
                        "state-machine-safety",
                        format!(
                            "took a snapshot at {index}, but had applied only up to {}",
                            self.applied_upto[n]
                        ),
                    );
                }
                if let Some(c) = self.committed.get(index).or(self.applied.get(index).map(|a| &a.0)) {
                    if c != chain {
                        return v(
                            "state-machine-safety",
                            format!("took a snapshot at {index} of another log"),
                        );
                    }
                }
            }
            RaftObs::Installed { index, term, chain } => {
                if let Some(c) = self.committed.get(index).or(self.applied.get(index).map(|a| &a.0)) {
                    if c != chain {
                        return v(
                            "state-machine-safety",
                            format!("installed a snapshot at {index} of another log"),
                        );
                    }
                }
                let m = &mut self.mirrors[n];
                if m.at(*index) == Some((*term, *chain)) {
                    let keep = (*index - m.base.0) as usize;
                    m.log.drain(..keep.min(m.log.len()));
                } else {
                    m.log.clear();
                }
                m.base = (*index, *term, *chain);
                self.applied_upto[n] = self.applied_upto[n].max(*index);
            }
            RaftObs::Committed { term, index, chain } => {
                match self.committed.get(index) {
                    Some(c) if c != chain => {
                        return v(
                            "state-machine-safety",
                            format!("committed a different entry at index {index}"),
                        )
                    }
                    _ => {
                        self.committed.insert(*index, *chain);
                    }
                }
                let top = self.committed_in.entry(*term).or_insert((*index, *chain));
                if *index > top.0 {
                    *top = (*index, *chain);
                }
            }
            RaftObs::Applied { index, chain, fresh, results } => {
                if *index != self.applied_upto[n] + 1 {
                    return v(
                        "state-machine-safety",
                        format!("applied entry {index} after entry {}", self.applied_upto[n]),
                    );
                }
                self.applied_upto[n] = *index;
                let fresh_digest = super::chain(0, 0, &agora_core::wire::encode(fresh));
                match self.applied.get(index) {
                    Some(&(c, r, f)) => {
                        if c != *chain {
                            return v(
                                "state-machine-safety",
                                format!("applied a different entry at index {index}"),
                            );
                        }
                        if r != *results || f != fresh_digest {
                            return v(
                                "state-machine-safety",
                                format!("entry {index} gave different results than on another replica"),
                            );
                        }
                    }
                    None => {
                        if self.committed.get(index).is_some_and(|c| c != chain) {
                            return v(
                                "state-machine-safety",
                                format!("applied an uncommitted entry at {index}"),
                            );
                        }
                        self.applied.insert(*index, (*chain, *results, fresh_digest));
                        for f in fresh {
                            if let Some(i) = self.fresh_at.insert(*f, *index) {
                                return v(
                                    "exactly-once",
                                    format!(
                                        "command {} of session {:#x} took effect at {i} and again at {index}",
                                        f.1, f.0
                                    ),
                                );
                            }
                        }
                        for (session, seq) in self.acked_ahead.remove(index).unwrap_or_default() {
                            let took = self.fresh_at.get(&(session, seq));
                            if took != Some(index) {
                                return v(
                                    "acked-applied",
                                    format!(
                                        "command {seq} of session {session:#x} was acknowledged at index {index}, \
                                         which applied without it (it took effect at {took:?})"
                                    ),
                                );
                            }
                        }
                    }
                }
            }
            RaftObs::Acked { session, seq, pos } => {
                let took = self.fresh_at.get(&(*session, *seq));
                if took.is_none() && !self.applied.contains_key(&pos.index) {
                    // No replica reported applying that index yet: judged when one does.
                    self.acked_ahead.entry(pos.index).or_default().push((*session, *seq));
                } else if took != Some(&pos.index) {
                    return v(
                        "acked-applied",
                        format!(
                            "command {seq} of session {session:#x} acknowledged at index {} but took effect at {:?}",
                            pos.index,
                            self.fresh_at.get(&(*session, *seq))
                        ),
                    );
                }
                self.max_acked = self.max_acked.max(pos.index);
                self.completed = self.completed.max(pos.index);
            }
            RaftObs::ReadBegin { session, seq } => {
                self.read_floor.insert((*session, *seq), self.completed);
            }
            RaftObs::ReadDone { session, seq, index } => {
                let floor = self.read_floor.remove(&(*session, *seq)).unwrap_or(0);
                if *index < floor {
                    return v(
                        "linearizable-reads",
                        format!(
                            "query {seq} of session {session:#x} read at index {index}, but an operation at index \
                             {floor} had completed before it was sent"
                        ),
                    );
                }
                self.completed = self.completed.max(*index);
            }
            RaftObs::ClientDone { .. } => self.client_done[n] = true,
        }
        Ok(())
    }

    /// Whether `node` is one of the replicas.
    pub fn is_replica(&self, node: NodeId) -> bool {
        self.replica.get(node.index()).copied().unwrap_or(false)
    }

    /// See [`Checker::undecided`]: `acked-applied`, while an acknowledged index is one no
    /// replica has reported applying.
    pub fn open_claims(&self) -> Vec<(&'static str, NotJudged)> {
        match self.acked_ahead.is_empty() {
            true => Vec::new(),
            false => vec![("acked-applied", NotJudged::Undecided)],
        }
    }

    /// See [`Checker::reports_lost`]: the node's next restart may extend the log it reported.
    pub fn on_reports_lost(&mut self, node: NodeId) {
        self.lagging[node.index()] = true;
        // Only a replica reports applying; a client's lost reports leave nothing undecided.
        self.lost_any |= self.replica[node.index()];
    }

    /// Takes a crash, restart or storage loss into account: a crashed leader no longer leads, a
    /// restarted client must finish again, a wiped replica's mirrored log is forgotten.
    pub fn on_lifecycle(&mut self, at: Time, node: NodeId, event: Lifecycle) {
        match event {
            Lifecycle::Crashed => {
                if self.leading[node.index()].take().is_some() {
                    self.leader_seen = at;
                }
                self.client_done[node.index()] = false;
            }
            Lifecycle::Restarted => self.client_done[node.index()] = false,
            Lifecycle::Wiped => {
                self.mirrors[node.index()] = Mirror::default();
                self.applied_upto[node.index()] = 0;
            }
            _ => {}
        }
    }

    /// Why `judge_end` would not judge liveness at `end` (the same conditions).
    pub fn unjudged(&self, end: &EndState<'_>) -> Option<NotJudged> {
        let live = |i: usize| end.live.get(i).copied().unwrap_or(false);
        let replicas = self.replica.iter().filter(|r| **r).count();
        let up = (0..self.replica.len()).filter(|&i| self.replica[i] && live(i)).count();
        let settled = end.at.0.saturating_sub(end.last_fault.0) >= self.settle.0;
        if !(settled || end.quiescent) {
            Some(if end.last_fault == Time::ZERO { NotJudged::Unended } else { NotJudged::Unsettled })
        } else if end.partitioned {
            Some(NotJudged::Partitioned)
        } else if up < replicas / 2 + 1 {
            Some(NotJudged::NoMajority)
        } else {
            None
        }
    }

    /// The `liveness` violations at `end` (none when [`Self::unjudged`] gives a reason): a leader
    /// recently, every live replica applied every acknowledged command, every live client done.
    /// Before them, unless some node's reports were lost, an `acked-applied` violation for an
    /// acknowledgement that no report of an apply decided.
    pub fn judge_end(&mut self, end: &EndState<'_>) -> Vec<Violation> {
        let mut out = Vec::new();
        // Every replica's reports were made (none lost with a killed replica): an
        // acknowledgement that no report of an apply decided is of a command never applied.
        if !self.lost_any {
            let first = self.acked_ahead.iter().next().map(|(i, k)| (*i, k[0]));
            if let Some((index, (session, seq))) = first {
                self.acked_ahead.clear();
                let d = format!(
                    "command {seq} of session {session:#x} was acknowledged at index {index}, which no replica applied"
                );
                out.push(Violation::new("acked-applied", None, end.at, d));
            }
        }
        out.extend(self.liveness(end));
        out
    }

    /// The `liveness` violation at `end`, if any (none when [`Self::unjudged`] gives a reason).
    fn liveness(&self, end: &EndState<'_>) -> Vec<Violation> {
        let live = |i: usize| end.live.get(i).copied().unwrap_or(false);
        let replicas: Vec<usize> = (0..self.replica.len()).filter(|&i| self.replica[i]).collect();
        let up = replicas.iter().filter(|&&i| live(i)).count();
        let settled = end.at.0.saturating_sub(end.last_fault.0) >= self.settle.0;
        if !(settled || end.quiescent) || end.partitioned || up < replicas.len() / 2 + 1 {
            return Vec::new();
        }
        let v = |node: Option<usize>, d: String| {
            vec![Violation::new("liveness", node.map(|i| NodeId(i as u32)), end.at, d)]
        };
        let leader_now = replicas.iter().any(|&i| live(i) && self.leading[i].is_some());
        if !leader_now && end.at.0.saturating_sub(self.leader_seen.0) > self.settle.0 / 2 {
            return v(None, format!("no leader in the last {} after the faults", Time(self.settle.0 / 2)));
        }
        if let Some(&i) = replicas.iter().find(|&&i| live(i) && self.applied_upto[i] < self.max_acked) {
            return v(
                Some(i),
                format!(
                    "applied up to {} only; command at {} was acknowledged",
                    self.applied_upto[i], self.max_acked
                ),
            );
        }
        if let Some(i) = (0..self.client.len()).find(|&i| self.client[i] && live(i) && !self.client_done[i]) {
            return v(Some(i), "client still waits for answers".into());
        }
        Vec::new()
    }
}

/// The checker of a protocol whose observations are Raft's own.
impl<P: Protocol<Obs = RaftObs> + ?Sized> Checker<P> for RaftChecker {
    fn fork(&self) -> Option<Box<dyn Checker<P>>> {
        Some(Box::new(self.clone()))
    }
    fn fork_into(&self, into: &mut Box<dyn Checker<P>>) -> bool {
        agora_core::check::fork_into(self, into)
    }
    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        Some(self)
    }

    fn properties(&self) -> Vec<Property> {
        RaftChecker::properties()
    }

    fn observe(&mut self, at: Time, node: NodeId, obs: &RaftObs) -> Result<(), Violation> {
        self.check(at, node, obs)
    }

    fn lifecycle(&mut self, at: Time, node: NodeId, event: Lifecycle) {
        self.on_lifecycle(at, node, event)
    }

    fn reports_lost(&mut self, _at: Time, node: NodeId) {
        self.on_reports_lost(node)
    }

    fn finish(&mut self, end: &EndState<'_>) -> Vec<Violation> {
        self.judge_end(end)
    }

    fn not_judged(&self, end: &EndState<'_>) -> Vec<(&'static str, NotJudged)> {
        self.unjudged(end).map_or(Vec::new(), |why| vec![("liveness", why)])
    }

    fn undecided(&self) -> Vec<(&'static str, NotJudged)> {
        self.open_claims()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restored(log: Vec<(Term, u64)>) -> RaftObs {
        RaftObs::Restored { term: 1, voted_for: None, base: (0, 0, 0), log, rejoining: false }
    }

    /// A replica that reported writing entry 1, restarted with `log`; `lost`: told first that
    /// its last reports may be missing.
    fn restart(log: Vec<(Term, u64)>, lost: bool) -> Result<(), Violation> {
        let n = NodeId(0);
        let mut c = RaftChecker::new(3, &[NodeId(0), NodeId(1), NodeId(2)], &[], Duration::from_secs(1));
        c.check(Time(1), n, &restored(Vec::new()))?;
        c.check(Time(2), n, &RaftObs::Appended { first: 1, entries: vec![(1, 7)] })?;
        if lost {
            c.on_reports_lost(n);
        }
        c.on_lifecycle(Time(3), n, Lifecycle::Crashed);
        c.on_lifecycle(Time(4), n, Lifecycle::Restarted);
        c.check(Time(5), n, &restored(log))
    }

    #[test]
    fn a_restart_extends_what_a_replica_reported_writing_only_if_its_last_reports_were_lost() {
        assert!(restart(vec![(1, 7)], false).is_ok());
        let longer = || vec![(1, 7), (1, 8)];
        assert_eq!(restart(longer(), false).unwrap_err().property, "durable-log");
        assert!(restart(longer(), true).is_ok(), "written, killed before reporting it");
        // What it reported writing is durable: losing it, or changing it, is a violation still.
        assert_eq!(restart(Vec::new(), true).unwrap_err().property, "durable-log");
        assert_eq!(restart(vec![(1, 9), (1, 8)], true).unwrap_err().property, "durable-log");
    }

    /// Replicas 0 to 2, client 3; the client reports acknowledging command 0 of session 5 at
    /// index 1 before any replica reports applying index 1 (the leader answers early).
    fn acked_first() -> RaftChecker {
        let mut c =
            RaftChecker::new(4, &[NodeId(0), NodeId(1), NodeId(2)], &[NodeId(3)], Duration::from_secs(1));
        let pos = crate::raft::Pos { index: 1, offset: 0 };
        c.check(Time(1), NodeId(3), &RaftObs::Acked { session: 5, seq: 0, pos }).unwrap();
        assert_eq!(c.open_claims(), [("acked-applied", NotJudged::Undecided)]);
        c
    }

    fn applied_1(fresh: Vec<(u64, u64)>) -> RaftObs {
        RaftObs::Applied { index: 1, chain: 7, fresh, results: 0 }
    }

    #[test]
    fn an_acknowledgement_reported_before_its_apply_is_judged_by_the_first_report_of_the_apply() {
        let mut c = acked_first();
        assert!(c.check(Time(2), NodeId(1), &applied_1(vec![(5, 0)])).is_ok());
        assert!(c.open_claims().is_empty(), "decided");
        let mut c = acked_first();
        let v = c.check(Time(2), NodeId(1), &applied_1(vec![(6, 0)])).unwrap_err();
        assert_eq!(v.property, "acked-applied", "index 1 applied another command");
        // Once an index is reported applied, an acknowledgement at it is judged at once.
        let mut c =
            RaftChecker::new(4, &[NodeId(0), NodeId(1), NodeId(2)], &[NodeId(3)], Duration::from_secs(1));
        c.check(Time(1), NodeId(0), &applied_1(vec![(6, 0)])).unwrap();
        let pos = crate::raft::Pos { index: 1, offset: 0 };
        let v = c.check(Time(2), NodeId(3), &RaftObs::Acked { session: 5, seq: 0, pos }).unwrap_err();
        assert_eq!(v.property, "acked-applied");
    }

    #[test]
    fn an_acknowledgement_no_apply_ever_decided_is_a_violation_unless_reports_were_lost() {
        let live = [true; 4];
        let end = EndState::quiet(Time(10), &live, &[false; 4]);
        let judged = |c: &mut RaftChecker| c.judge_end(&end).iter().map(|v| v.property).collect::<Vec<_>>();
        // No replica applied index 1: liveness is judged too (and broken: no leader ever).
        let mut c = acked_first();
        assert_eq!(judged(&mut c), ["acked-applied", "liveness"]);
        assert!(c.open_claims().is_empty(), "judged: no longer open");
        // A client's lost reports decide nothing; a replica's may have held the apply.
        let mut c = acked_first();
        c.on_reports_lost(NodeId(3));
        assert_eq!(judged(&mut c), ["acked-applied", "liveness"]);
        let mut c = acked_first();
        c.on_reports_lost(NodeId(0));
        assert_eq!(judged(&mut c), ["liveness"]);
        assert_eq!(c.open_claims(), [("acked-applied", NotJudged::Undecided)], "undecided, not ok");
    }
}
