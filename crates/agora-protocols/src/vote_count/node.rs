//! The nodes of an election: legislature replicas, coordinators, region gateways and
//! citizens (see the module docs of [`super`]).

use super::checker::VoteChecker;
use super::{Ballot, Cmd, Hash, Out, Phase, Query, Reason, Receipt, Results, Spec, Tally};
use crate::raft::client::{op_id, session_id, Client};
use crate::raft::{self, Op, Outcome, RaftMsg, RaftObs, RaftTimer, Replica};
use agora_core::{Checker, Context, Corrupt, Message, NodeId, Protocol, Setup, Stable, Time};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// Coordinators per election.
pub const COORDINATORS: usize = 2;

/// What a citizen meant a ballot to be: checked against the answer it gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Intent {
    Valid,
    /// A made-up credential: must be rejected `bad-credential`.
    Forged,
    /// An option not on the ballot: must be rejected `no-such-option`.
    NoOption,
    /// A second, different ballot of a voter whose first is counted: `already-voted`.
    Second,
}

/// An answer to one ballot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    Counted(Receipt),
    Rejected(Reason),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Msg {
    Raft(RaftMsg<Tally>),
    /// Citizen → region.
    Cast {
        phase: Phase,
        ballots: Vec<Ballot>,
    },
    /// Region → coordinator.
    Forward {
        phase: Phase,
        ballots: Vec<Ballot>,
    },
    /// Coordinator → region, region → citizen: `(voter, ballot hash as cast, answer)`.
    Answers {
        phase: Phase,
        answers: Vec<(u64, Hash, Answer)>,
    },
    /// Citizen → its region: every ballot answered.
    CitizenDone {
        phase: Phase,
    },
    /// Region → coordinators, until results come.
    Status {
        phase: Phase,
        done: bool,
    },
    /// Coordinator → replica, and the answer.
    DigestQuery {
        phase: Phase,
    },
    DigestReply {
        phase: Phase,
        digest: Option<Hash>,
    },
    /// Coordinator → regions and citizens, resent until acknowledged.
    Published {
        phase: Phase,
        results: Box<Results>,
    },
    ResultsAck {
        phase: Phase,
        digest: Hash,
    },
}

impl From<RaftMsg<Tally>> for Msg {
    fn from(m: RaftMsg<Tally>) -> Self {
        Msg::Raft(m)
    }
}

impl Message for Msg {
    fn kind(&self) -> &'static str {
        match self {
            Msg::Raft(m) => m.kind(),
            Msg::Cast { .. } => "CAST",
            Msg::Forward { .. } => "FORWARD",
            Msg::Answers { .. } => "ANSWERS",
            Msg::CitizenDone { .. } => "CITIZEN-DONE",
            Msg::Status { .. } => "STATUS",
            Msg::DigestQuery { .. } => "DIGEST-QUERY",
            Msg::DigestReply { .. } => "DIGEST-REPLY",
            Msg::Published { .. } => "RESULTS",
            Msg::ResultsAck { .. } => "RESULTS-ACK",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    Raft(RaftTimer),
    /// Periodic work of coordinators, regions and citizens.
    Tick,
}

impl From<RaftTimer> for Timer {
    fn from(t: RaftTimer) -> Self {
        Timer::Raft(t)
    }
}

/// What election nodes report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum VoteObs {
    Raft(RaftObs),
    /// A replica counted these ballots (their rows of the bulletin board).
    Counted {
        ballots: Vec<Receipt>,
    },
    /// A replica tallied: its digest and how many ballots it counted.
    Tallied {
        digest: Hash,
        counted: u64,
    },
    /// A citizen cast a ballot for the first time.
    Cast {
        voter: u64,
        hash: Hash,
        intent: Intent,
    },
    /// A citizen got its final answer.
    Answered {
        voter: u64,
        hash: Hash,
        intent: Intent,
        answer: Answer,
    },
    /// A region or citizen received the results.
    Results {
        results: Box<Results>,
    },
}

impl From<RaftObs> for VoteObs {
    fn from(o: RaftObs) -> Self {
        VoteObs::Raft(o)
    }
}

/// Shared settings of one election run.
#[derive(Clone, Debug)]
pub struct Settings {
    pub spec: Arc<Spec>,
    pub replicas: usize,
    pub timeout: Duration,
    /// Ballots a citizen keeps in flight.
    pub window: usize,
    /// Share of bad ballots a citizen casts (forged, no such option, second ballots).
    pub bad: f64,
    /// Coordinators close the election this long after they start if the regions have not all
    /// reported done.
    pub close_after: Duration,
    pub seed: u64,
    /// The voter roll: each voter's state and credential; `None`: a synthetic roll (states in
    /// proportion to House seats, credentials from the key).
    pub roll: Option<Arc<Vec<(u8, Hash)>>>,
}

impl Settings {
    pub fn nodes(&self) -> usize {
        self.replicas + COORDINATORS + 2 * self.spec.regions.len()
    }
    pub fn coordinator(&self, i: usize) -> NodeId {
        NodeId((self.replicas + i) as u32)
    }
    pub fn region(&self, r: usize) -> NodeId {
        NodeId((self.replicas + COORDINATORS + r) as u32)
    }
    pub fn citizen(&self, r: usize) -> NodeId {
        NodeId((self.replicas + COORDINATORS + self.spec.regions.len() + r) as u32)
    }
    fn role_of(&self, id: NodeId) -> (RoleKind, usize) {
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RoleKind {
    Replica,
    Coordinator,
    Region,
    Citizen,
}

pub struct Legislator {
    replica: Replica<Tally>,
    reported_digest: Option<Hash>,
}

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

pub struct Region {
    s: Arc<Settings>,
    index: usize,
    /// Ballots waiting for an answer: (voter, ballot hash) → (ballot, when forwarded). A
    /// voter may have several ballots in flight (a forged one beside the real one).
    pending: BTreeMap<(u64, Hash), (Ballot, Time)>,
    coordinator: usize,
    citizen_done: bool,
    results: bool,
    phase: Phase,
}

pub struct Citizen {
    s: Arc<Settings>,
    index: usize,
    /// Every ballot to cast, in order, with what it is meant to be.
    ballots: Vec<(Ballot, Intent)>,
    next: usize,
    /// Cast and not finally answered: index into `ballots` → when to cast it again.
    in_flight: BTreeMap<usize, Time>,
    by_voter: BTreeMap<u64, Vec<usize>>,
    answered: usize,
    /// Second ballots to cast once the first is counted.
    seconds: Vec<usize>,
    results: bool,
    phase: Phase,
}

pub enum VoteNode {
    Replica(Box<Legislator>),
    Coordinator(Box<Coordinator>),
    Region(Box<Region>),
    Citizen(Box<Citizen>),
}

const INCARNATION: &str = "coordinator/incarnation";

fn tick(s: &Settings) -> Duration {
    s.timeout
}

impl Coordinator {
    fn client(&mut self) -> &mut Client<Tally> {
        self.client.as_mut().expect("started")
    }

    fn admin(&mut self, ctx: &mut Context<'_, VoteNode>, cmd: Cmd) {
        let seq = self.client().enqueue(ctx, Op::Command(cmd));
        self.pending.insert(seq, Purpose::Admin);
    }

    fn start(&mut self, ctx: &mut Context<'_, VoteNode>) {
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

    fn on_forward(&mut self, ctx: &mut Context<'_, VoteNode>, from: NodeId, ballots: Vec<Ballot>) {
        if self.phase < Phase::Open {
            // Until this coordinator has seen the election open, it holds what comes.
            self.held.push((from, ballots));
            return;
        }
        let Some(region) = (0..self.s.spec.regions.len()).find(|&r| self.s.region(r) == from) else { return };
        let (now, phase) = (ctx.now(), self.phase);
        for ballot in ballots {
            let hash = ballot.hash(&self.s.spec.id);
            let seq = self.client().enqueue(ctx, Op::Command(Cmd::Ballot { phase, ballot }));
            self.pending
                .insert(seq, Purpose::Ballot { region, voter: ballot.voter, hash, since: now, told: false });
        }
        self.client().flush(ctx);
    }

    fn on_done(&mut self, ctx: &mut Context<'_, VoteNode>, done: Vec<(u64, Outcome<Tally>)>) {
        if !done.is_empty() {
            self.stalled_since = None;
        }
        let mut answers: BTreeMap<usize, Vec<(u64, Hash, Answer)>> = BTreeMap::new();
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
                (Purpose::Results, Out::Results(r)) => {
                    if let Some(r) = *r {
                        self.results = Some(Box::new(r));
                        self.send_results(ctx);
                    }
                }
                _ => {}
            }
        }
        for (region, answers) in answers {
            ctx.send(self.s.region(region), Msg::Answers { phase: self.phase, answers });
        }
        self.client().flush(ctx);
    }

    fn ask_digests(&mut self, ctx: &mut Context<'_, VoteNode>) {
        for r in 0..self.s.replicas {
            let id = NodeId(r as u32);
            if !self.digests.contains_key(&id) {
                ctx.send(id, Msg::DigestQuery { phase: self.phase });
            }
        }
    }

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
        let regions = self.s.spec.regions.len();
        let deadline = self.started.is_some_and(|t| now.since(t) >= self.s.close_after);
        if self.phase == Phase::Open && (self.regions_done.len() == regions || deadline) {
            self.admin(ctx, Cmd::Advance { to: Phase::Closed, digest: None });
            self.admin(ctx, Cmd::Advance { to: Phase::Tallied, digest: None });
            // Until the answers come back, do not ask again.
            self.phase = Phase::Closed;
        }
        if self.phase == Phase::Tallied && !self.publish_sent {
            self.ask_digests(ctx);
        }
        if self.results.is_some() {
            self.send_results(ctx);
        }
        // The other coordinator may have closed, tallied or published meanwhile (this one may
        // have restarted and missed it): read the phase from the log.
        let asking = self.pending.values().any(|p| matches!(p, Purpose::Phase | Purpose::Results));
        if self.phase < Phase::Published && self.phase >= Phase::Open && !asking {
            let seq = self.client().enqueue(ctx, Op::Query(Query::Phase));
            self.pending.insert(seq, Purpose::Phase);
        }
        // Ballots the log has not answered for a while: tell the region it is unavailable.
        let waiting = self.pending.values().any(|p| matches!(p, Purpose::Ballot { .. }));
        if waiting && self.stalled_since.is_none() {
            self.stalled_since = Some(now);
        }
        let stalled = self.stalled_since.is_some_and(|t| now.since(t) >= self.s.timeout * 10);
        let mut answers: BTreeMap<usize, Vec<(u64, Hash, Answer)>> = BTreeMap::new();
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
        for (region, answers) in answers {
            ctx.send(self.s.region(region), Msg::Answers { phase: self.phase, answers });
        }
        self.client().flush(ctx);
        ctx.set_timer(Timer::Tick, tick(&self.s));
    }
}

impl Region {
    fn forward(&mut self, ctx: &mut Context<'_, VoteNode>, ballots: Vec<Ballot>) {
        if ballots.is_empty() {
            return;
        }
        let to = self.s.coordinator(self.coordinator);
        ctx.send(to, Msg::Forward { phase: self.phase, ballots });
    }

    fn on_tick(&mut self, ctx: &mut Context<'_, VoteNode>) {
        let now = ctx.now();
        let stale: Vec<(u64, Hash)> = self
            .pending
            .iter()
            .filter(|(_, (_, t))| now.since(*t) >= self.s.timeout * 20)
            .map(|(v, _)| *v)
            .collect();
        if !stale.is_empty() {
            // No answer: the coordinator may be down; try the other one.
            self.coordinator = (self.coordinator + 1) % COORDINATORS;
            let mut again = Vec::new();
            for v in stale {
                if let Some((b, t)) = self.pending.get_mut(&v) {
                    *t = now;
                    again.push(*b);
                }
            }
            for chunk in again.chunks(4096) {
                self.forward(ctx, chunk.to_vec());
            }
        }
        if !self.results {
            let done = self.citizen_done && self.pending.is_empty();
            for c in 0..COORDINATORS {
                ctx.send(self.s.coordinator(c), Msg::Status { phase: self.phase, done });
            }
        }
        ctx.set_timer(Timer::Tick, tick(&self.s));
    }
}

impl Citizen {
    fn build(s: &Arc<Settings>, index: usize) -> Citizen {
        use rand::SeedableRng;
        let spec = &s.spec;
        let mut rng = agora_core::Rng::seed_from_u64(s.seed ^ 0x0c17_12e0 ^ ((index as u64) << 40));
        let mut ballots = Vec::new();
        let mut seconds = Vec::new();
        let k = spec.options.len() as u8;
        for voter in 0..spec.voters {
            let (state, credential) = match &s.roll {
                Some(roll) => roll[voter as usize],
                None => {
                    let state = Spec::synthetic_state(voter);
                    (state, spec.credential(voter, state))
                }
            };
            if spec.state_region[state as usize] as usize != index {
                continue;
            }
            // Each state leans to an option of its own (drawn from the seed), a fifth of its
            // voters more: a demo with a map worth looking at.
            let lean = (blake3::hash(&[&s.seed.to_le_bytes()[..], &[state]].concat()).as_bytes()[0]
                % k.max(1)) as u8;
            let option = if rng.random_bool(0.2) { lean } else { rng.random_range(0..k) };
            let good = Ballot { voter, state, option, credential };
            if s.bad > 0.0 && rng.random_bool(s.bad) {
                match rng.random_range(0..3) {
                    0 => {
                        let mut forged = good;
                        forged.credential = rng.random();
                        ballots.push((forged, Intent::Forged));
                    }
                    1 => ballots.push((Ballot { option: k, ..good }, Intent::NoOption)),
                    _ if k > 1 => {
                        ballots.push((good, Intent::Valid));
                        let other = Ballot { option: (option + 1) % k, ..good };
                        seconds.push(ballots.len());
                        ballots.push((other, Intent::Second));
                        continue;
                    }
                    _ => {}
                }
            }
            ballots.push((good, Intent::Valid));
        }
        let mut by_voter: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        for (i, (b, _)) in ballots.iter().enumerate() {
            by_voter.entry(b.voter).or_default().push(i);
        }
        Citizen {
            s: s.clone(),
            index,
            ballots,
            next: 0,
            in_flight: BTreeMap::new(),
            by_voter,
            answered: 0,
            seconds,
            results: false,
            phase: Phase::Setup,
        }
    }

    fn region(&self) -> NodeId {
        self.s.region(self.index)
    }

    /// Casts more ballots while the window has room (second ballots wait for their first).
    /// Until a first ballot is answered (the election is open and has a leader) only one is in
    /// flight, so that no ballot's latency includes the start-up.
    fn fill(&mut self, ctx: &mut Context<'_, VoteNode>) {
        let now = ctx.now().after(self.s.timeout * 25);
        let window = if self.answered > 0 { self.s.window } else { 1 };
        let mut batch = Vec::new();
        while self.in_flight.len() < window && self.next < self.ballots.len() {
            let i = self.next;
            self.next += 1;
            let (b, intent) = self.ballots[i];
            if intent == Intent::Second {
                continue; // cast when the first is counted
            }
            self.in_flight.insert(i, now);
            ctx.observe(VoteObs::Cast { voter: b.voter, hash: b.hash(&self.s.spec.id), intent });
            ctx.op_begin(op_id(session_id(ctx.id(), 0), i as u64));
            batch.push(b);
        }
        if !batch.is_empty() {
            ctx.send(self.region(), Msg::Cast { phase: self.phase, ballots: batch });
        }
    }

    fn cast_one(&mut self, ctx: &mut Context<'_, VoteNode>, i: usize) {
        let (b, intent) = self.ballots[i];
        self.in_flight.insert(i, ctx.now().after(self.s.timeout * 25));
        ctx.observe(VoteObs::Cast { voter: b.voter, hash: b.hash(&self.s.spec.id), intent });
        ctx.op_begin(op_id(session_id(ctx.id(), 0), i as u64));
        ctx.send(self.region(), Msg::Cast { phase: self.phase, ballots: vec![b] });
    }

    fn total(&self) -> usize {
        self.ballots.len()
    }

    fn on_answers(&mut self, ctx: &mut Context<'_, VoteNode>, answers: Vec<(u64, Hash, Answer)>) {
        let id = self.s.spec.id.clone();
        for (voter, hash, answer) in answers {
            let Some(idx) = self.by_voter.get(&voter) else { continue };
            let Some(&i) =
                idx.iter().find(|&&i| self.in_flight.contains_key(&i) && self.ballots[i].0.hash(&id) == hash)
            else {
                continue;
            };
            let final_answer = match answer {
                Answer::Counted(_) => true,
                Answer::Rejected(r) => r.is_final(),
            };
            if !final_answer {
                // Not yet open, or no majority for now: cast again soon.
                self.in_flight.insert(i, ctx.now().after(self.s.timeout * 2));
                continue;
            }
            self.in_flight.remove(&i);
            self.answered += 1;
            let (_, intent) = self.ballots[i];
            ctx.observe(VoteObs::Answered { voter, hash, intent, answer });
            ctx.op_end(op_id(session_id(ctx.id(), 0), i as u64));
            if intent == Intent::Valid {
                // A second ballot is cast once the first is counted; if the first was turned
                // down for good there is nothing to be second to.
                if let Some(&second) = self.by_voter[&voter].iter().find(|&&j| self.seconds.contains(&j)) {
                    self.seconds.retain(|&j| j != second);
                    if matches!(answer, Answer::Counted(_)) {
                        self.cast_one(ctx, second);
                    }
                }
            }
        }
        self.fill(ctx);
        if self.is_done() {
            ctx.send(self.region(), Msg::CitizenDone { phase: self.phase });
        }
    }

    fn is_done(&self) -> bool {
        self.next >= self.total() && self.in_flight.is_empty() && self.seconds.is_empty()
    }

    fn on_tick(&mut self, ctx: &mut Context<'_, VoteNode>) {
        let now = ctx.now();
        let due: Vec<usize> = self.in_flight.iter().filter(|(_, t)| **t <= now).map(|(i, _)| *i).collect();
        for chunk in due.chunks(4096) {
            let ballots = chunk.iter().map(|&i| self.ballots[i].0).collect();
            for &i in chunk {
                self.in_flight.insert(i, now.after(self.s.timeout * 25));
            }
            ctx.send(self.region(), Msg::Cast { phase: self.phase, ballots });
        }
        if self.is_done() && !self.results {
            ctx.send(self.region(), Msg::CitizenDone { phase: self.phase });
            // Asks the coordinators for the results, in case they were sent before a restart.
            for c in 0..COORDINATORS {
                ctx.send(self.s.coordinator(c), Msg::Status { phase: self.phase, done: true });
            }
        }
        ctx.set_timer(Timer::Tick, tick(&self.s));
    }
}

impl Protocol for VoteNode {
    type Msg = Msg;
    type Timer = Timer;
    type Obs = VoteObs;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        match self {
            VoteNode::Replica(l) => l.replica.on_start(ctx),
            VoteNode::Coordinator(c) => c.start(ctx),
            VoteNode::Region(r) => ctx.set_timer(Timer::Tick, tick(&r.s)),
            VoteNode::Citizen(c) => {
                c.fill(ctx);
                ctx.set_timer(Timer::Tick, tick(&c.s));
            }
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: Msg) {
        match self {
            VoteNode::Replica(l) => {
                match msg {
                    Msg::Raft(m) => l.replica.on_message(ctx, from, m),
                    Msg::DigestQuery { .. } => {
                        let st = l.replica.state();
                        ctx.send(from, Msg::DigestReply { phase: st.phase(), digest: st.digest() });
                    }
                    _ => {}
                }
                let st = l.replica.state_mut();
                if !st.notes.is_empty() {
                    let ballots = std::mem::take(&mut st.notes);
                    ctx.observe(VoteObs::Counted { ballots });
                }
                let st = l.replica.state();
                if let Some(d) = st.digest() {
                    if l.reported_digest != Some(d) {
                        l.reported_digest = Some(d);
                        ctx.observe(VoteObs::Tallied { digest: d, counted: st.counted() });
                    }
                }
            }
            VoteNode::Coordinator(c) => match msg {
                Msg::Raft(m) => {
                    let done = c.client().on_message(ctx, from, m);
                    c.on_done(ctx, done);
                }
                Msg::Forward { ballots, .. } => c.on_forward(ctx, from, ballots),
                Msg::Status { done, .. } => {
                    if let Some(r) = (0..c.s.spec.regions.len()).find(|&r| c.s.region(r) == from) {
                        if done {
                            c.regions_done.insert(r);
                        }
                    }
                    // A region or citizen without the results (a restart lost them): again.
                    if let Some(results) = &c.results {
                        c.acked.remove(&from);
                        ctx.send(from, Msg::Published { phase: c.phase, results: results.clone() });
                    }
                }
                Msg::DigestReply { digest, .. } => c.on_digest(ctx, from, digest),
                Msg::ResultsAck { .. } => {
                    c.acked.insert(from);
                }
                _ => {}
            },
            VoteNode::Region(r) => match msg {
                Msg::Cast { ballots, .. } if from == r.s.citizen(r.index) => {
                    let now = ctx.now();
                    for b in &ballots {
                        r.pending.insert((b.voter, b.hash(&r.s.spec.id)), (*b, now));
                    }
                    r.forward(ctx, ballots);
                }
                Msg::Answers { phase, answers } if from.index() >= r.s.replicas => {
                    r.phase = r.phase.max(phase);
                    let answers: Vec<_> = answers
                        .into_iter()
                        .filter(|(v, h, a)| {
                            let known = r.pending.contains_key(&(*v, *h));
                            if known && !matches!(a, Answer::Rejected(Reason::Unavailable)) {
                                r.pending.remove(&(*v, *h));
                            }
                            known
                        })
                        .collect();
                    if !answers.is_empty() {
                        ctx.send(r.s.citizen(r.index), Msg::Answers { phase: r.phase, answers });
                    }
                }
                Msg::CitizenDone { .. } if from == r.s.citizen(r.index) => r.citizen_done = true,
                Msg::Published { results, .. } => {
                    ctx.send(from, Msg::ResultsAck { phase: Phase::Published, digest: results.digest });
                    if !r.results {
                        r.results = true;
                        r.phase = Phase::Published;
                        ctx.observe(VoteObs::Results { results });
                    }
                }
                _ => {}
            },
            VoteNode::Citizen(c) => match msg {
                Msg::Answers { phase, answers } if from == c.region() => {
                    c.phase = c.phase.max(phase);
                    c.on_answers(ctx, answers);
                }
                Msg::Published { results, .. } => {
                    ctx.send(from, Msg::ResultsAck { phase: Phase::Published, digest: results.digest });
                    if !c.results {
                        c.results = true;
                        ctx.observe(VoteObs::Results { results });
                    }
                }
                _ => {}
            },
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, timer: Timer) {
        match (self, timer) {
            (VoteNode::Replica(l), Timer::Raft(t)) => l.replica.on_timer(ctx, t),
            (VoteNode::Coordinator(c), Timer::Raft(RaftTimer::ClientRetry)) => c.client().on_retry(ctx),
            (VoteNode::Coordinator(c), Timer::Tick) => c.on_tick(ctx),
            (VoteNode::Region(r), Timer::Tick) => r.on_tick(ctx),
            (VoteNode::Citizen(c), Timer::Tick) => c.on_tick(ctx),
            _ => {}
        }
    }

    /// Every role is done once the results are out and it has nothing in hand. A replica
    /// whose log is settled before publication is only between ballots: a lost ballot may come
    /// back with a citizen's retry many timeouts later.
    fn background(&self) -> bool {
        match self {
            VoteNode::Replica(l) => l.replica.settled() && l.replica.state().phase() == Phase::Published,
            VoteNode::Coordinator(c) => {
                let everyone = 2 * c.s.spec.regions.len();
                c.results.is_some() && c.acked.len() >= everyone && c.pending.is_empty()
            }
            VoteNode::Region(r) => r.results && r.pending.is_empty(),
            VoteNode::Citizen(c) => c.results && c.is_done(),
        }
    }
}

/// A run of an election.
pub struct VoteSetup {
    pub s: Arc<Settings>,
    pub raft: Arc<raft::Config>,
}

impl VoteSetup {
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

    /// The legislature's replicas rejoin (see [`Replica`]); coordinators' session numbering
    /// would restart.
    fn rejoins(&self, id: NodeId) -> bool {
        matches!(self.s.role_of(id), (RoleKind::Replica, _))
    }

    fn build(&self, id: NodeId, stable: &Stable) -> Result<VoteNode, Corrupt> {
        let s = &self.s;
        Ok(match s.role_of(id) {
            (RoleKind::Replica, _) => VoteNode::Replica(Box::new(Legislator {
                replica: Replica::new(self.raft.clone(), id, stable)?,
                reported_digest: None,
            })),
            (RoleKind::Coordinator, _) => VoteNode::Coordinator(Box::new(Coordinator {
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
            })),
            (RoleKind::Region, r) => VoteNode::Region(Box::new(Region {
                s: s.clone(),
                index: r,
                pending: BTreeMap::new(),
                coordinator: r % COORDINATORS,
                citizen_done: false,
                results: false,
                phase: Phase::Setup,
            })),
            (RoleKind::Citizen, r) => VoteNode::Citizen(Box::new(Citizen::build(s, r))),
        })
    }

    fn checker(&self) -> Box<dyn Checker<VoteNode>> {
        Box::new(VoteChecker::new(&self.s, self.raft.replicas.clone(), self.raft.election_timeout * 250))
    }
}
