//! A simulated member of the voting service: the report's client, following the menu by
//! itself — create its account (the administrator's command, see [`super::sim`]), log in,
//! SETUP, NEGOTIATE (allow or refuse, from the seed), DISCOVER, RECEIVE all, STATS, the first
//! member OPENs the question if none is open, VOTE (some repeat their vote, which is
//! acknowledged again; a few try a different one, which must be refused), STATS, and some
//! EXIT — and meanwhile it heartbeats and follows the events.
//!
//! **One request at a time**, as a person at a terminal. A request unanswered for
//! [`Settings::patience`], or a server silent to heartbeats for [`Settings::retry`], makes the
//! member reconnect to the next server and RESUME its session with its token; what it was doing is asked again
//! there (the script only moves on an answer), so a command may be applied twice: a repeated
//! vote is acknowledged again, a repeated question opening opens a second question.
//!
//! **Events.** Servers push every event they apply to the members with a session there. A
//! member follows them from its own JOIN (the last JOIN of its identifier in the board when it
//! logged in, asked with [`BoardQuery::Events`]) and takes them strictly in number order: an
//! event after a hole waits while the member asks its server for what it missed (holes show
//! as a later number pushed, or in a heartbeat's answer). Its own LEAVE or FAIL ends the
//! stream; after a FAIL (or a command refused for want of a session) it logs in again.
//!
//! **Restarts.** It persists its token and the number of the last event it took, so a
//! restarted member resumes its session and its stream where they were.

use super::board::{BoardOut, BoardQuery, Event, VoteError};
use super::sim::{Cmd, Msg, Plan, Req, Settings, Timer, Variant, VoteServiceNode, VsObs};
use super::{Pin, QuestionId, Sid};
use agora_core::{Context, Corrupt, NodeId, Stable, Time};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

const SAVED: &str = "member/saved";
/// Most events a member holds after a hole.
const MAX_INBOX: usize = 4096;

type Ctx<'a> = Context<'a, VoteServiceNode>;

/// What a member persists.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Saved {
    /// Its session's token, while it has one.
    token: Option<String>,
    /// The last event taken, while it follows the events.
    stream: Option<u64>,
}

/// A vote to cast, and which.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ballot {
    /// Its vote.
    First,
    /// The same again: acknowledged again.
    Again,
    /// Another option: must be refused.
    Other,
}

/// The script's steps, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Setup,
    Negotiate,
    Discover,
    Receive,
    Stats,
    Open,
    Await,
    FinalStats,
    Logout,
}

const SCRIPT: [Step; 9] = [
    Step::Setup,
    Step::Negotiate,
    Step::Discover,
    Step::Receive,
    Step::Stats,
    Step::Open,
    Step::Await,
    Step::FinalStats,
    Step::Logout,
];

/// A simulated member.
pub struct Member {
    s: Arc<Settings>,
    index: usize,
    plan: Plan,
    saved: Saved,
    /// The server it talks to.
    server: NodeId,
    /// Its account exists.
    created: bool,
    /// Its session and identifier, once welcomed.
    sid: Option<Sid>,
    pin: Option<Pin>,
    /// It must resume its session (with its token) at `server` before anything else.
    resume: bool,
    /// It logged out: done.
    logged_out: bool,
    /// The next step of the script.
    step: usize,
    /// Questions known, with their number of options.
    questions: BTreeMap<QuestionId, u32>,
    /// Votes to cast, in order.
    ballots: VecDeque<(QuestionId, u32, Ballot)>,
    /// Events received after a hole, waiting for it to fill.
    inbox: BTreeMap<u64, Event>,
    /// It must find its JOIN to start following the events.
    need_start: bool,
    /// It must ask for events it missed.
    catch_up: bool,
    /// The latest event number its server told of.
    known_last: u64,
    /// The request in flight: its id and what it is.
    outstanding: Option<(u64, Req)>,
    /// Request ids are `(nonce << 32) | n`: the nonce is drawn at every start, so the ids of
    /// a restarted member (even one that lost its storage) are not its earlier ones.
    nonce: u32,
    next_id: u64,
    /// When its server last answered anything.
    heard: Time,
}

impl Member {
    /// Member `id` of a run of `s`, from what it persisted.
    pub fn new(s: Arc<Settings>, id: NodeId, stable: &Stable) -> Result<Self, Corrupt> {
        let index = s.member_index(id);
        let plan = s.plans[index].clone();
        let saved: Saved = stable.load(SAVED)?.unwrap_or_default();
        Ok(Member {
            server: plan.home,
            s,
            index,
            plan,
            resume: saved.token.is_some(),
            saved,
            created: false,
            sid: None,
            pin: None,
            logged_out: false,
            step: 0,
            questions: BTreeMap::new(),
            ballots: VecDeque::new(),
            inbox: BTreeMap::new(),
            need_start: false,
            catch_up: false,
            known_last: 0,
            outstanding: None,
            nonce: 0,
            next_id: 0,
            heard: Time::ZERO,
        })
    }

    fn beat(&self) -> std::time::Duration {
        self.s.session_timeout / 4
    }

    pub(super) fn on_start(&mut self, ctx: &mut Ctx<'_>) {
        self.nonce = ctx.rng().random();
        self.heard = ctx.now();
        let offset = ctx.rng().random_range(0..=self.beat().as_micros() as u64);
        ctx.set_timer(Timer::Beat, std::time::Duration::from_micros(offset));
        self.kick(ctx);
    }

    pub(super) fn on_message(&mut self, ctx: &mut Ctx<'_>, from: NodeId, msg: Msg) {
        if from != self.server {
            return;
        }
        match msg {
            Msg::Reply { id, out } if self.answered(ctx, id) => {
                let req = self.outstanding.take().expect("answered").1;
                self.on_reply(ctx, req, out);
            }
            Msg::Welcome { id, sid, pin, token } if self.answered(ctx, id) => {
                let req = self.outstanding.take().expect("answered").1;
                self.on_welcome(ctx, req, sid, pin, token);
            }
            Msg::Pong { session, last_event } => {
                self.heard = ctx.now();
                self.known_last = self.known_last.max(last_event);
                if !session && self.sid.is_some() && self.outstanding.is_none() {
                    self.resume = true;
                }
                if self.saved.stream.is_some_and(|last| last_event > last) {
                    self.catch_up = true;
                }
            }
            Msg::Push { events } => {
                self.heard = ctx.now();
                self.on_push(ctx, events);
            }
            _ => {}
        }
        self.kick(ctx);
    }

    pub(super) fn on_timer(&mut self, ctx: &mut Ctx<'_>, timer: Timer) {
        match timer {
            Timer::Beat => {
                if self.logged_out {
                    return;
                }
                if self.sid.is_some() && !self.resume {
                    ctx.send(self.server, Msg::Ping { took: self.saved.stream.unwrap_or(0) });
                }
                let waiting = self.outstanding.is_some() || self.sid.is_some();
                if waiting && ctx.now().since(self.heard) > self.s.retry {
                    self.reconnect(ctx);
                }
                ctx.set_timer(Timer::Beat, self.beat());
            }
            Timer::Wait => {
                if self.outstanding.is_some() {
                    self.reconnect(ctx);
                }
            }
            Timer::Raft(_) | Timer::Server(_) => {}
        }
        self.kick(ctx);
    }

    /// Only heartbeats are left: logged out, or done with the script (or waiting for a
    /// question) with every event taken and nothing in flight.
    pub(super) fn background(&self) -> bool {
        if self.outstanding.is_some() {
            return false;
        }
        if self.logged_out {
            return true;
        }
        let script_done = match SCRIPT.get(self.step) {
            None => true,
            Some(Step::Await) => self.questions.is_empty(),
            Some(_) => false,
        };
        self.sid.is_some()
            && !self.resume
            && !self.need_start
            && !self.catch_up
            && self.inbox.is_empty()
            && self.saved.stream.is_some_and(|last| last >= self.known_last)
            && self.ballots.is_empty()
            && script_done
    }

    /// Whether `id` answers the request in flight (a late answer to an earlier one does not).
    fn answered(&mut self, ctx: &mut Ctx<'_>, id: u64) -> bool {
        if self.outstanding.as_ref().is_none_or(|(o, _)| *o != id) {
            return false;
        }
        ctx.cancel_timer(Timer::Wait);
        self.heard = ctx.now();
        true
    }

    fn reconnect(&mut self, ctx: &mut Ctx<'_>) {
        self.server = NodeId((self.server.0 + 1) % self.s.servers as u32);
        self.outstanding = None;
        ctx.cancel_timer(Timer::Wait);
        self.resume = self.saved.token.is_some();
        self.heard = ctx.now();
    }

    /// Sends the next request, if none is in flight and there is one.
    fn kick(&mut self, ctx: &mut Ctx<'_>) {
        if self.outstanding.is_some() {
            return;
        }
        let Some(req) = self.next() else { return };
        self.next_id += 1;
        let id = (u64::from(self.nonce) << 32) | self.next_id;
        self.outstanding = Some((id, req.clone()));
        ctx.send(self.server, Msg::Request { id, req });
        ctx.set_timer(Timer::Wait, self.s.patience);
    }

    /// What to ask next.
    fn next(&mut self) -> Option<Req> {
        if self.logged_out {
            return None;
        }
        if self.resume {
            if let Some(token) = &self.saved.token {
                return Some(Req::Resume { token: token.clone() });
            }
            self.resume = false;
        }
        if self.sid.is_none() {
            let (name, password) = (Settings::name(self.index), Settings::password(self.index));
            return Some(match self.created {
                false => Req::Create { name, password },
                true => Req::Login { name, password },
            });
        }
        if self.need_start {
            return Some(Req::Ask(BoardQuery::Events { after: 0 }));
        }
        if let (true, Some(after)) = (self.catch_up, self.saved.stream) {
            return Some(Req::Ask(BoardQuery::Events { after }));
        }
        if let Some(&(question, option, _)) = self.ballots.front() {
            return Some(Req::Do(Cmd::Vote { question, option }));
        }
        loop {
            let step = *SCRIPT.get(self.step)?;
            let req = match step {
                Step::Setup => Req::Do(Cmd::Setup(self.plan.info.clone())),
                Step::Negotiate => Req::Do(Cmd::Negotiate(self.plan.allow)),
                Step::Discover => Req::Ask(BoardQuery::Discover),
                Step::Receive => Req::Ask(BoardQuery::Receive { pin: None }),
                Step::Stats | Step::FinalStats => Req::Ask(BoardQuery::Stats { question: None }),
                Step::Open if self.index == 0 && self.questions.is_empty() => {
                    let (text, options) = Settings::question();
                    Req::Do(Cmd::Open { text, options })
                }
                Step::Await if self.questions.is_empty() => return None,
                Step::Logout if self.plan.logout => Req::Do(Cmd::Logout),
                Step::Open | Step::Await | Step::Logout => {
                    self.step += 1;
                    continue;
                }
            };
            return Some(req);
        }
    }

    fn on_welcome(&mut self, ctx: &mut Ctx<'_>, req: Req, sid: Sid, pin: Pin, token: String) {
        let fresh = matches!(req, Req::Login { .. });
        if !fresh && !matches!(req, Req::Resume { .. }) {
            return;
        }
        ctx.observe(VsObs::Session { sid, pin, fresh });
        self.sid = Some(sid);
        self.pin = Some(pin);
        self.resume = false;
        self.saved.token = Some(token);
        if fresh || self.saved.stream.is_none() {
            self.saved.stream = None;
            self.need_start = true;
            self.inbox.clear();
        } else {
            self.catch_up = true;
        }
        ctx.persist(SAVED, &self.saved);
    }

    /// The session is over, as far as this member knows.
    fn session_ended(&mut self, ctx: &mut Ctx<'_>) {
        if let Some(sid) = self.sid.take() {
            ctx.observe(VsObs::Ended { sid });
        }
        self.saved.token = None;
        self.saved.stream = None;
        self.resume = false;
        self.need_start = false;
        self.catch_up = false;
        self.inbox.clear();
        ctx.persist(SAVED, &self.saved);
    }

    fn on_reply(&mut self, ctx: &mut Ctx<'_>, req: Req, out: BoardOut) {
        let no_session = out == BoardOut::Err(VoteError::NoSession);
        match req {
            Req::Create { .. } => {
                self.created = matches!(out, BoardOut::Created { .. } | BoardOut::Err(VoteError::NameTaken))
            }
            Req::Login { .. } => self.created = false,
            Req::Resume { .. } => self.session_ended(ctx),
            Req::Do(cmd) => {
                if let (Cmd::Vote { question, option }, BoardOut::Voted { .. }) = (&cmd, &out) {
                    let pin = self.pin.expect("welcomed before voting");
                    ctx.observe(VsObs::VoteAcked { pin, question: *question, option: *option });
                }
                if let Some(sid) = self.sid {
                    ctx.observe(VsObs::Answered { sid, ok: !matches!(out, BoardOut::Err(_)) });
                }
                if no_session || (cmd == Cmd::Logout && out == BoardOut::Ok) {
                    self.session_ended(ctx);
                    self.logged_out = cmd == Cmd::Logout;
                    return;
                }
                match cmd {
                    Cmd::Vote { question, .. } => self.on_vote(ctx, question, out),
                    _ => self.step += 1,
                }
            }
            Req::Ask(_) if no_session => self.session_ended(ctx),
            Req::Ask(BoardQuery::Events { .. }) => {
                if let BoardOut::Events { events, .. } = out {
                    self.on_events(ctx, events);
                }
            }
            Req::Ask(BoardQuery::Stats { .. }) => {
                if let BoardOut::Stats(st) = out {
                    self.learn(st.id, st.counts.len() as u32);
                }
                self.step += 1;
            }
            Req::Ask(_) => self.step += 1,
        }
    }

    fn on_vote(&mut self, ctx: &mut Ctx<'_>, question: QuestionId, out: BoardOut) {
        let Some((_, _, ballot)) = self.ballots.pop_front() else { return };
        if out == BoardOut::Err(VoteError::AlreadyVoted) && ballot == Ballot::Other {
            ctx.observe(VsObs::VoteRefused { question });
        }
    }

    /// A question became known: its votes are queued.
    fn learn(&mut self, id: QuestionId, options: u32) {
        if options == 0 || self.questions.insert(id, options).is_some() {
            return;
        }
        let mine = self.plan.option.min(options - 1);
        self.ballots.push_back((id, mine, Ballot::First));
        if self.plan.repeat {
            self.ballots.push_back((id, mine, Ballot::Again));
        }
        if self.plan.change {
            self.ballots.push_back((id, (mine + 1) % options, Ballot::Other));
        }
    }

    /// The answer to an events query: the start of the stream (its own JOIN), or what it missed.
    fn on_events(&mut self, ctx: &mut Ctx<'_>, events: Vec<(u64, Event)>) {
        if self.need_start {
            let pin = self.pin;
            let join =
                events.iter().rev().find(|(_, e)| matches!(e, Event::Join { pin: p, .. } if Some(*p) == pin));
            let Some(&(from, _)) = join else { return };
            self.need_start = false;
            self.saved.stream = Some(from - 1);
            ctx.observe(VsObs::Stream { from });
        }
        self.catch_up = false;
        self.on_push(ctx, events);
    }

    fn on_push(&mut self, ctx: &mut Ctx<'_>, events: Vec<(u64, Event)>) {
        let Some(last) = self.saved.stream.or(self.need_start.then_some(0)) else { return };
        for (n, e) in events {
            if n > last && self.inbox.len() < MAX_INBOX {
                self.inbox.insert(n, e);
            }
        }
        if self.s.variant == Variant::NoCatchUp {
            // The broken variant: take events as they come, holes and all.
            while let (Some(_), Some((n, e))) = (self.saved.stream, self.inbox.pop_first()) {
                self.deliver(ctx, n, e);
            }
        }
        self.take_in_order(ctx);
    }

    /// Takes the events that follow the last one taken, in order.
    fn take_in_order(&mut self, ctx: &mut Ctx<'_>) {
        while let Some(last) = self.saved.stream {
            let Some(e) = self.inbox.remove(&(last + 1)) else { break };
            self.deliver(ctx, last + 1, e);
        }
        match self.saved.stream {
            Some(last) => {
                self.inbox = self.inbox.split_off(&(last + 1));
                if !self.inbox.is_empty() {
                    self.catch_up = true;
                }
                ctx.persist(SAVED, &self.saved);
            }
            None if !self.need_start => self.inbox.clear(),
            None => {}
        }
    }

    fn deliver(&mut self, ctx: &mut Ctx<'_>, n: u64, event: Event) {
        self.saved.stream = Some(n);
        ctx.observe(VsObs::Delivered { n, event: event.clone() });
        match event {
            Event::Question { id, options, .. } => self.learn(id, options.len() as u32),
            Event::Fail { pin } if Some(pin) == self.pin => self.session_ended(ctx),
            Event::Leave { pin } if Some(pin) == self.pin => {
                // Only its own logout makes it leave: the logout was applied.
                self.session_ended(ctx);
                self.logged_out = true;
            }
            _ => {}
        }
    }
}
