//! A region gateway: forwards its citizen's ballots to a coordinator, fails over to the other
//! when no answer comes, relays the answers back and reports its status until the results
//! arrive. It keeps no durable state.

use super::{receive_results, tick, Msg, Timer, VoteNode};
use crate::vote_count::obs::Answer;
use crate::vote_count::settings::{Settings, COORDINATORS};
use crate::vote_count::{Ballot, Hash, Phase, Reason, Results};
use agora_core::{Context, NodeId, Time};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A region's gateway: forwards its citizen's ballots to a coordinator (failing over to the
/// other when none answers), relays the answers back, and reports when its citizen is done.
pub struct Region {
    s: Arc<Settings>,
    index: usize,
    /// Ballots waiting for an answer: (voter, ballot hash) → (ballot, when forwarded). A
    /// voter may have several ballots in flight (a forged one beside the real one).
    pending: BTreeMap<(u64, Hash), (Ballot, Time)>,
    /// The coordinator ballots go to (an index among the coordinators).
    coordinator: usize,
    citizen_done: bool,
    results: bool,
    phase: Phase,
}

impl Region {
    /// The gateway of region `index`; it starts with coordinator `index % COORDINATORS`.
    pub(crate) fn new(s: &Arc<Settings>, index: usize) -> Self {
        Region {
            s: s.clone(),
            index,
            pending: BTreeMap::new(),
            coordinator: index % COORDINATORS,
            citizen_done: false,
            results: false,
            phase: Phase::Setup,
        }
    }

    fn citizen(&self) -> NodeId {
        self.s.citizen(self.index)
    }

    pub(super) fn on_start(&mut self, ctx: &mut Context<'_, VoteNode>) {
        ctx.set_timer(Timer::Tick, tick(&self.s));
    }

    pub(super) fn on_message(&mut self, ctx: &mut Context<'_, VoteNode>, from: NodeId, msg: Msg) {
        match msg {
            Msg::Cast { ballots, .. } if from == self.citizen() => {
                let now = ctx.now();
                for b in &ballots {
                    self.pending.insert((b.voter, b.hash(&self.s.spec.id)), (*b, now));
                }
                self.forward(ctx, ballots);
            }
            Msg::Answers { phase, answers } if from.index() >= self.s.replicas => {
                self.on_answers(ctx, phase, answers)
            }
            Msg::CitizenDone { .. } if from == self.citizen() => self.citizen_done = true,
            Msg::Published { results, .. } => self.on_results(ctx, from, results),
            _ => {}
        }
    }

    fn on_results(&mut self, ctx: &mut Context<'_, VoteNode>, from: NodeId, results: Box<Results>) {
        if receive_results(ctx, from, results, &mut self.results) {
            self.phase = Phase::Published;
        }
    }

    /// A coordinator's answers: relays those to ballots waiting here to the citizen. An
    /// `unavailable` ballot stays waiting: the citizen casts it again.
    fn on_answers(
        &mut self,
        ctx: &mut Context<'_, VoteNode>,
        phase: Phase,
        answers: Vec<(u64, Hash, Answer)>,
    ) {
        self.phase = self.phase.max(phase);
        let answers: Vec<_> = answers
            .into_iter()
            .filter(|(v, h, a)| {
                let known = self.pending.contains_key(&(*v, *h));
                if known && !matches!(a, Answer::Rejected(Reason::Unavailable)) {
                    self.pending.remove(&(*v, *h));
                }
                known
            })
            .collect();
        if !answers.is_empty() {
            ctx.send(self.citizen(), Msg::Answers { phase: self.phase, answers });
        }
    }

    pub(super) fn on_timer(&mut self, ctx: &mut Context<'_, VoteNode>, timer: Timer) {
        if timer == Timer::Tick {
            self.on_tick(ctx);
        }
    }

    /// Done once it has the results and nothing waits.
    pub(super) fn background(&self) -> bool {
        self.results && self.pending.is_empty()
    }

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
            for c in self.s.coordinators() {
                ctx.send(c, Msg::Status { phase: self.phase, done });
            }
        }
        ctx.set_timer(Timer::Tick, tick(&self.s));
    }
}
