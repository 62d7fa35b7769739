//! A citizen: the load generator of one region. It casts its region's voters' ballots
//! (with `--bad-ballots`, some forged, off the ballot or second ones) through its region
//! gateway, keeps a window in flight, casts each ballot again until it gets a final answer,
//! and reports every cast and answer.

use super::{receive_results, tick, Msg, Timer, VoteNode};
use crate::raft::client::{op_id, session_id};
use crate::vote_count::obs::{Answer, Intent, VoteObs};
use crate::vote_count::settings::Settings;
use crate::vote_count::{Ballot, Hash, Phase, Spec};
use agora_core::{Context, NodeId, Time};
use rand::Rng as _;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The citizens of one region: casts their ballots (and some bad ones), retries each until
/// it has a final answer, checks every receipt, and waits for the results.
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

/// The ballots of region `index`'s voters, drawn from the seed, and the indices of the
/// second ballots among them.
fn draw_ballots(s: &Settings, index: usize) -> (Vec<(Ballot, Intent)>, Vec<usize>) {
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
        let lean =
            (blake3::hash(&[&s.seed.to_le_bytes()[..], &[state]].concat()).as_bytes()[0] % k.max(1)) as u8;
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
    (ballots, seconds)
}

/// The operation id of a citizen's ballot `i`.
fn op(ctx: &Context<'_, VoteNode>, i: usize) -> u64 {
    op_id(session_id(ctx.id(), 0), i as u64)
}

impl Citizen {
    /// The citizen of region `index`, with its ballots drawn from the seed.
    pub(crate) fn new(s: &Arc<Settings>, index: usize) -> Citizen {
        let (ballots, seconds) = draw_ballots(s, index);
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

    /// When a ballot cast now is cast again if no answer comes.
    fn resend_at(&self, ctx: &Context<'_, VoteNode>) -> Time {
        ctx.now().after(self.s.timeout * 25)
    }

    pub(super) fn on_start(&mut self, ctx: &mut Context<'_, VoteNode>) {
        self.fill(ctx);
        ctx.set_timer(Timer::Tick, tick(&self.s));
    }

    pub(super) fn on_message(&mut self, ctx: &mut Context<'_, VoteNode>, from: NodeId, msg: Msg) {
        match msg {
            Msg::Answers { phase, answers } if from == self.region() => {
                self.phase = self.phase.max(phase);
                self.on_answers(ctx, answers);
            }
            Msg::Published { results, .. } => {
                receive_results(ctx, from, results, &mut self.results);
            }
            _ => {}
        }
    }

    pub(super) fn on_timer(&mut self, ctx: &mut Context<'_, VoteNode>, timer: Timer) {
        if timer == Timer::Tick {
            self.on_tick(ctx);
        }
    }

    /// Done once it has the results and every ballot is answered.
    pub(super) fn background(&self) -> bool {
        self.results && self.is_done()
    }

    /// Ballot `i` goes out for the first time: in flight until `resend_at`, reported, and
    /// its operation begun. The caller sends it.
    fn begin(&mut self, ctx: &mut Context<'_, VoteNode>, i: usize, resend_at: Time) -> Ballot {
        let (b, intent) = self.ballots[i];
        self.in_flight.insert(i, resend_at);
        ctx.observe(VoteObs::Cast { voter: b.voter, hash: b.hash(&self.s.spec.id), intent });
        ctx.op_begin(op(ctx, i));
        b
    }

    /// Casts more ballots while the window has room (second ballots wait for their first).
    /// Until a first ballot is answered (the election is open and has a leader) only one is in
    /// flight, so that no ballot's latency includes the start-up.
    fn fill(&mut self, ctx: &mut Context<'_, VoteNode>) {
        let resend_at = self.resend_at(ctx);
        let window = if self.answered > 0 { self.s.window } else { 1 };
        let mut batch = Vec::new();
        while self.in_flight.len() < window && self.next < self.ballots.len() {
            let i = self.next;
            self.next += 1;
            if self.ballots[i].1 == Intent::Second {
                continue; // cast when the first is counted
            }
            batch.push(self.begin(ctx, i, resend_at));
        }
        if !batch.is_empty() {
            ctx.send(self.region(), Msg::Cast { phase: self.phase, ballots: batch });
        }
    }

    fn cast_one(&mut self, ctx: &mut Context<'_, VoteNode>, i: usize) {
        let resend_at = self.resend_at(ctx);
        let b = self.begin(ctx, i, resend_at);
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
            ctx.op_end(op(ctx, i));
            if intent == Intent::Valid {
                self.after_first(ctx, voter, answer);
            }
        }
        self.fill(ctx);
        if self.is_done() {
            ctx.send(self.region(), Msg::CitizenDone { phase: self.phase });
        }
    }

    /// A voter's valid ballot has its final answer. A second ballot is cast once the first is
    /// counted; if the first was turned down for good there is nothing to be second to.
    fn after_first(&mut self, ctx: &mut Context<'_, VoteNode>, voter: u64, answer: Answer) {
        if let Some(&second) = self.by_voter[&voter].iter().find(|&&j| self.seconds.contains(&j)) {
            self.seconds.retain(|&j| j != second);
            if matches!(answer, Answer::Counted(_)) {
                self.cast_one(ctx, second);
            }
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
            for c in self.s.coordinators() {
                ctx.send(c, Msg::Status { phase: self.phase, done: true });
            }
        }
        ctx.set_timer(Timer::Tick, tick(&self.s));
    }
}
