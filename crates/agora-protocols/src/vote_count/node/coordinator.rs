//! A coordinator: a stateless Raft client of the legislature that stamps phases on ballots,
//! forwards them in batches, answers the regions, drives the phases, gathers the replicas'
//! digests and publishes the results until every region and citizen has acknowledged them.

use super::{tick, Msg, Timer, VoteNode};
use crate::raft::client::{session_id, Client};
use crate::raft::{Op, Outcome, RaftTimer};
use crate::vote_count::obs::Answer;
use crate::vote_count::settings::Settings;
use crate::vote_count::{Ballot, Cmd, Hash, Out, Phase, Query, Reason, Results, Tally};
use agora_core::{Context, Corrupt, NodeId, Stable, Time};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Where a coordinator keeps its incarnation number, the only thing it persists.
const INCARNATION: &str = "coordinator/incarnation";

/// Answers to send, by region: `(voter, ballot hash, answer)`.
type Answers = BTreeMap<usize, Vec<(u64, Hash, Answer)>>;

/// A coordinator: a Raft client of the legislature with a session of its own. It forwards
/// ballots in batches, answers the regions, drives the phases and publishes the results;
/// everything it knows is in the log or re-sent by the regions, so it may restart at any time.
pub struct Coordinator {
    s: Arc<Settings>,
    client: Option<Client<Tally>>,
    incarnation: u32,
    /// What each command in flight is for.
    pending: BTreeMap<u64, Purpose>,
    phase: Phase,
    regions_done: BTreeSet<usize>,
    digests: BTreeMap<NodeId, Option<Hash>>,
    publish_sent: bool,
    results: Option<Box<Results>>,
    acked: BTreeSet<NodeId>,
    started: Option<Time>,
    /// Since when the log has not answered anything while commands wait.
    stalled_since: Option<Time>,
    /// Ballots that came before this coordinator saw the election open.
    held: Vec<(NodeId, Vec<Ballot>)>,
}

#[derive(Clone, Copy, Debug)]
enum Purpose {
    Admin,
    /// A read of the phase: another coordinator may have moved it on.
    Phase,
    Ballot {
        region: usize,
        voter: u64,
        hash: Hash,
        since: Time,
        told: bool,
    },
    Results,
}

impl Coordinator {
    /// A coordinator, with the incarnation number it persisted.
    pub(crate) fn new(s: &Arc<Settings>, stable: &Stable) -> Result<Self, Corrupt> {
        Ok(Coordinator {
            s: s.clone(),
            client: None,
            incarnation: stable.load(INCARNATION)?.unwrap_or(0),
            pending: BTreeMap::new(),
            phase: Phase::Setup,
            regions_done: BTreeSet::new(),
            digests: BTreeMap::new(),
            publish_sent: false,
            results: None,
            acked: BTreeSet::new(),
            started: None,
            stalled_since: None,
            held: Vec::new(),
        })
    }

    fn client(&mut self) -> &mut Client<Tally> {
        self.client.as_mut().expect("started")
    }

    fn admin(&mut self, ctx: &mut Context<'_, VoteNode>, cmd: Cmd) {
        let seq = self.client().enqueue(ctx, Op::Command(cmd));
        self.pending.insert(seq, Purpose::Admin);
    }

    /// A new incarnation opens a new session, then sets the election up and opens it.
    pub(super) fn start(&mut self, ctx: &mut Context<'_, VoteNode>) {
        self.incarnation += 1;
        ctx.persist(INCARNATION, &self.incarnation);
        let session = session_id(ctx.id(), self.incarnation);
        let replicas = (0..self.s.replicas as u32).map(NodeId).collect();
        self.client = Some(Client::new(session, replicas, 16_384, self.s.timeout * 5));
        self.started = Some(ctx.now());
        self.admin(ctx, Cmd::Setup(Box::new((*self.s.spec).clone())));
        self.admin(ctx, Cmd::Advance { to: Phase::Open, digest: None });
        self.client().flush(ctx);
        ctx.set_timer(Timer::Tick, tick(&self.s));
    }

    pub(super) fn on_message(&mut self, ctx: &mut Context<'_, VoteNode>, from: NodeId, msg: Msg) {
        match msg {
            Msg::Raft(m) => {
                let done = self.client().on_message(ctx, from, m);
                self.on_done(ctx, done);
            }
            Msg::Forward { ballots, .. } => self.on_forward(ctx, from, ballots),
            Msg::Status { done, .. } => self.on_status(ctx, from, done),
            Msg::DigestReply { digest, .. } => self.on_digest(ctx, from, digest),
            Msg::ResultsAck { .. } => {
                self.acked.insert(from);
            }
            _ => {}
        }
    }

    pub(super) fn on_timer(&mut self, ctx: &mut Context<'_, VoteNode>, timer: Timer) {
        match timer {
            Timer::Raft(RaftTimer::ClientRetry) => self.client().on_retry(ctx),
            Timer::Tick => self.on_tick(ctx),
            Timer::Raft(_) => {}
        }
    }

    /// Done once every region and citizen acknowledged the results and nothing is in flight.
    pub(super) fn background(&self) -> bool {
        let everyone = 2 * self.s.spec.regions.len();
        self.results.is_some() && self.acked.len() >= everyone && self.pending.is_empty()
    }

    fn on_forward(&mut self, ctx: &mut Context<'_, VoteNode>, from: NodeId, ballots: Vec<Ballot>) {
        if self.phase < Phase::Open {
            // Until this coordinator has seen the election open, it holds what comes.
            self.held.push((from, ballots));
            return;
        }
        let Some(region) = self.s.region_of(from) else { return };
        let (now, phase) = (ctx.now(), self.phase);
        for ballot in ballots {
            let hash = ballot.hash(&self.s.spec.id);
            let seq = self.client().enqueue(ctx, Op::Command(Cmd::Ballot { phase, ballot }));
            self.pending
                .insert(seq, Purpose::Ballot { region, voter: ballot.voter, hash, since: now, told: false });
        }
        self.client().flush(ctx);
    }

    /// A region's (or citizen's) status: whether its citizens are done.
    fn on_status(&mut self, ctx: &mut Context<'_, VoteNode>, from: NodeId, done: bool) {
        if let Some(r) = self.s.region_of(from) {
            if done {
                self.regions_done.insert(r);
            }
        }
        // A region or citizen without the results (a restart lost them): again.
        if let Some(results) = &self.results {
            self.acked.remove(&from);
            ctx.send(from, Msg::Published { phase: self.phase, results: results.clone() });
        }
    }

    fn on_done(&mut self, ctx: &mut Context<'_, VoteNode>, done: Vec<(u64, Outcome<Tally>)>) {
        if !done.is_empty() {
            self.stalled_since = None;
        }
        let mut answers = Answers::new();
        for (seq, outcome) in done {
            let Some(purpose) = self.pending.remove(&seq) else { continue };
            let out = match outcome {
                Outcome::Applied { output, .. } | Outcome::Read { output, .. } => output,
            };
            match (purpose, out) {
                (Purpose::Ballot { region, voter, hash, .. }, Out::Receipt(r)) => {
                    answers.entry(region).or_default().push((voter, hash, Answer::Counted(r)))
                }
                (Purpose::Ballot { region, voter, hash, .. }, Out::Rejected(reason)) => {
                    answers.entry(region).or_default().push((voter, hash, Answer::Rejected(reason)))
                }
                (Purpose::Admin | Purpose::Phase, Out::Phase { phase, digest }) => {
                    self.on_phase(ctx, phase, digest)
                }
                (Purpose::Results, Out::Results(r)) => {
                    if let Some(r) = *r {
                        self.results = Some(Box::new(r));
                        self.send_results(ctx);
                    }
                }
                _ => {}
            }
        }
        self.send_answers(ctx, answers);
        self.client().flush(ctx);
    }

    /// The log answered with its phase: catch up with it.
    fn on_phase(&mut self, ctx: &mut Context<'_, VoteNode>, phase: Phase, digest: Option<Hash>) {
        self.phase = self.phase.max(phase);
        if self.phase >= Phase::Open {
            for (from, ballots) in std::mem::take(&mut self.held) {
                self.on_forward(ctx, from, ballots);
            }
        }
        if phase == Phase::Tallied && digest.is_some() && !self.publish_sent {
            self.ask_digests(ctx);
        }
        if phase == Phase::Published && self.results.is_none() {
            let seq = self.client().enqueue(ctx, Op::Query(Query::Results));
            self.pending.insert(seq, Purpose::Results);
        }
    }

    fn send_answers(&self, ctx: &mut Context<'_, VoteNode>, answers: Answers) {
        for (region, answers) in answers {
            ctx.send(self.s.region(region), Msg::Answers { phase: self.phase, answers });
        }
    }

    fn ask_digests(&mut self, ctx: &mut Context<'_, VoteNode>) {
        for r in 0..self.s.replicas {
            let id = NodeId(r as u32);
            if !self.digests.contains_key(&id) {
                ctx.send(id, Msg::DigestQuery { phase: self.phase });
            }
        }
    }

    /// A replica's digest: once a majority reports the same one, propose publication.
    fn on_digest(&mut self, ctx: &mut Context<'_, VoteNode>, from: NodeId, digest: Option<Hash>) {
        if from.index() >= self.s.replicas || self.publish_sent {
            return;
        }
        if digest.is_none() {
            return; // not tallied there yet: asked again on the next tick
        }
        self.digests.insert(from, digest);
        let mut votes: BTreeMap<Hash, usize> = BTreeMap::new();
        for d in self.digests.values().flatten() {
            *votes.entry(*d).or_default() += 1;
        }
        if let Some((d, _)) = votes.into_iter().find(|(_, n)| *n > self.s.replicas / 2) {
            self.publish_sent = true;
            self.admin(ctx, Cmd::Advance { to: Phase::Published, digest: Some(d) });
            self.client().flush(ctx);
        }
    }

    fn send_results(&mut self, ctx: &mut Context<'_, VoteNode>) {
        let Some(results) = &self.results else { return };
        for r in 0..self.s.spec.regions.len() {
            for id in [self.s.region(r), self.s.citizen(r)] {
                if !self.acked.contains(&id) {
                    ctx.send(id, Msg::Published { phase: self.phase, results: results.clone() });
                }
            }
        }
    }

    fn on_tick(&mut self, ctx: &mut Context<'_, VoteNode>) {
        let now = ctx.now();
        self.close_if_due(ctx, now);
        if self.phase == Phase::Tallied && !self.publish_sent {
            self.ask_digests(ctx);
        }
        if self.results.is_some() {
            self.send_results(ctx);
        }
        self.read_phase(ctx);
        self.tell_unavailable(ctx, now);
        self.client().flush(ctx);
        ctx.set_timer(Timer::Tick, tick(&self.s));
    }

    /// Closes and tallies the election once every region is done or the deadline passed.
    fn close_if_due(&mut self, ctx: &mut Context<'_, VoteNode>, now: Time) {
        let regions = self.s.spec.regions.len();
        let deadline = self.started.is_some_and(|t| now.since(t) >= self.s.close_after);
        if self.phase == Phase::Open && (self.regions_done.len() == regions || deadline) {
            self.admin(ctx, Cmd::Advance { to: Phase::Closed, digest: None });
            self.admin(ctx, Cmd::Advance { to: Phase::Tallied, digest: None });
            // Until the answers come back, do not ask again.
            self.phase = Phase::Closed;
        }
    }

    /// The other coordinator may have closed, tallied or published meanwhile (this one may
    /// have restarted and missed it): read the phase from the log.
    fn read_phase(&mut self, ctx: &mut Context<'_, VoteNode>) {
        let asking = self.pending.values().any(|p| matches!(p, Purpose::Phase | Purpose::Results));
        if self.phase < Phase::Published && self.phase >= Phase::Open && !asking {
            let seq = self.client().enqueue(ctx, Op::Query(Query::Phase));
            self.pending.insert(seq, Purpose::Phase);
        }
    }

    /// Ballots the log has not answered for a while: tell the region it is unavailable.
    fn tell_unavailable(&mut self, ctx: &mut Context<'_, VoteNode>, now: Time) {
        let waiting = self.pending.values().any(|p| matches!(p, Purpose::Ballot { .. }));
        if waiting && self.stalled_since.is_none() {
            self.stalled_since = Some(now);
        }
        let stalled = self.stalled_since.is_some_and(|t| now.since(t) >= self.s.timeout * 10);
        let mut answers = Answers::new();
        for p in self.pending.values_mut() {
            if let Purpose::Ballot { region, voter, hash, since, told } = p {
                if stalled && !*told && now.since(*since) >= self.s.timeout * 10 {
                    *told = true;
                    answers.entry(*region).or_default().push((
                        *voter,
                        *hash,
                        Answer::Rejected(Reason::Unavailable),
                    ));
                }
            }
        }
        self.send_answers(ctx, answers);
    }
}
