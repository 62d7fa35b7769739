//! The voting service as a simulated system: `S` server nodes (ids `0..S`), each embedding a
//! [`Server`], and `M` simulated members (ids `S..S+M`, [`super::member`]) that log in, declare
//! and negotiate their node info, discover each other, vote and watch the events — the report's
//! menu, driven by a script drawn from the seed.
//!
//! **A server node** routes Raft's messages to its [`Server`], serves its connected members'
//! requests by submitting board operations with a tag (the member's session filled in from the
//! connection, never taken from the member), answers them from [`Server::take_done`], pushes
//! [`Server::take_events`] to every member with a session here, and answers heartbeats at once
//! (counted through [`Server::touch`], so they reach the log batched, once per tick).
//!
//! **Passwords.** Checking a password is the front end's work (argon2id over TCP), not the
//! subject of this simulation: here an account's stored hash is a *stand-in*
//! ([`stand_in`], BLAKE3 of the password, cheap on purpose) compared on login. Accounts are
//! created by an administrator's command in the service; here each member issues that command
//! for itself before its first login (a name already taken, after a retry or a restart, is the
//! account it made).
//!
//! **Tolerated** (and exercised by `tests/vote_service.rs`): message loss, duplication and
//! reordering (members retry through another server; the board's session table applies a
//! retried command once); crashes of a minority of servers, the leader included (members
//! resume their session on another server with their token); crashes of members (the cluster
//! fails them after the session timeout); partitions (a member cut off with its server is
//! failed by the majority and logs in again once it can). Not tolerated: a majority of servers
//! down (no operation completes, nothing is lost), clock drift on the leader (the session timeout
//! runs on its clock).

use super::board::{Board, BoardCmd, BoardOut, BoardQuery, Closing, Event, NodeInfo};
use super::checker::VoteServiceChecker;
use super::member::Member;
use super::server::{Server, ServerConfig, ServerObs, ServerTimer};
use super::{Pin, QuestionId, Sid};
use crate::raft::{Op, RaftMsg, RaftObs, RaftTimer};
use agora_core::{Checker, Context, Corrupt, Message, NodeId, Protocol, Setup, Stable, Time};
use rand::{Rng as _, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// The stand-in for an argon2id hash in the simulator: BLAKE3 of the password, as hex.
pub fn stand_in(password: &str) -> String {
    format!("sim-blake3${}", blake3::hash(password.as_bytes()).to_hex())
}

/// A deliberately broken variant, for the checker to catch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// The service as designed.
    Correct,
    /// The leader expires sessions after half the session timeout: `fail-after-timeout`.
    EarlyExpiry,
    /// Members take pushed events as they come, without filling gaps: `members-see-every-event`.
    NoCatchUp,
    /// Servers acknowledge a vote without submitting it: `acked-vote-counted`.
    AckUnapplied,
}

/// What one member does, drawn from the seed.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The server it connects to first.
    pub home: NodeId,
    /// It allows the service to store its node info.
    pub allow: bool,
    /// The option it votes (0 is the favourite).
    pub option: u32,
    /// It repeats its vote (acknowledged again).
    pub repeat: bool,
    /// It tries a second, different vote (refused).
    pub change: bool,
    /// It logs out at the end (the others stay, heartbeating).
    pub logout: bool,
    /// Its declared node info.
    pub info: NodeInfo,
}

/// The settings of a run, shared by every node and the checker.
pub struct Settings {
    /// Servers: nodes `0..servers`.
    pub servers: usize,
    /// Members: nodes `servers..servers + members`.
    pub members: usize,
    /// The servers' settings (the failure detector's timeout is the variant's).
    pub server: Arc<ServerConfig>,
    /// The session timeout members heartbeat against and the checker judges.
    pub session_timeout: Duration,
    /// A member whose server answers no heartbeat for this long reconnects to another.
    pub retry: Duration,
    /// A member whose request is unanswered for this long reconnects to another server (a
    /// server that answers heartbeats may still be cut off from the leader).
    pub patience: Duration,
    /// Each member's script.
    pub plans: Vec<Plan>,
    /// The run's variant.
    pub variant: Variant,
}

impl Settings {
    /// `servers` servers and `members` members; `election` is Raft's shortest election timeout.
    pub fn new(
        servers: usize,
        members: usize,
        election: Duration,
        session_timeout: Duration,
        variant: Variant,
        seed: u64,
    ) -> Self {
        let detector = match variant {
            Variant::EarlyExpiry => session_timeout / 2,
            _ => session_timeout,
        };
        let mut server = ServerConfig::new(servers, election, detector);
        server.notes = true;
        let mut rng = agora_core::Rng::seed_from_u64(seed ^ 0x766f_7465_7376_6300);
        let services = ["print", "store", "relay", "compute"];
        let plans = (0..members)
            .map(|_| Plan {
                home: NodeId(rng.random_range(0..servers as u32)),
                allow: rng.random_bool(0.7),
                option: if rng.random_bool(0.7) { 0 } else { 1 },
                repeat: rng.random_bool(0.3),
                change: rng.random_bool(0.2),
                logout: rng.random_bool(0.4),
                info: NodeInfo {
                    services: vec![services[rng.random_range(0..services.len())].to_string()],
                    capabilities: vec![format!("cores={}", rng.random_range(1..9))],
                    constraints: vec![format!("max-ms={}", rng.random_range(10..100))],
                },
            })
            .collect();
        Settings {
            servers,
            members,
            server: Arc::new(server),
            session_timeout,
            retry: session_timeout / 2,
            patience: session_timeout,
            plans,
            variant,
        }
    }

    /// Whether `id` is a server.
    pub fn is_server(&self, id: NodeId) -> bool {
        id.index() < self.servers
    }

    /// Member `id`'s index among the members.
    pub fn member_index(&self, id: NodeId) -> usize {
        id.index() - self.servers
    }

    /// Member `index`'s account name.
    pub fn name(index: usize) -> String {
        format!("m{index}")
    }

    /// Member `index`'s password.
    pub fn password(index: usize) -> String {
        format!("pw-{index}")
    }

    /// The question the first member opens.
    pub fn question() -> (String, Vec<String>) {
        ("Would you rather have A or B?".into(), vec!["A".into(), "B".into()])
    }
}

/// A command of a member's session: the server fills in the session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cmd {
    /// SETUP.
    Setup(NodeInfo),
    /// NEGOTIATE: allow or refuse.
    Negotiate(bool),
    /// Open a question.
    Open {
        /// Its text.
        text: String,
        /// Its options.
        options: Vec<String>,
    },
    /// VOTE.
    Vote {
        /// The question.
        question: QuestionId,
        /// The option.
        option: u32,
    },
    /// EXIT.
    Logout,
}

impl Cmd {
    fn with(self, sid: Sid) -> BoardCmd {
        match self {
            Cmd::Setup(info) => BoardCmd::Setup { sid, info },
            Cmd::Negotiate(allow) => BoardCmd::Negotiate { sid, allow },
            Cmd::Open { text, options } => BoardCmd::Open { sid, text, options, closing: Closing::Consensus },
            Cmd::Vote { question, option } => BoardCmd::Vote { sid, question, option },
            Cmd::Logout => BoardCmd::Logout { sid },
        }
    }
}

/// A member's request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Req {
    /// Create the member's account (an administrator's command in the service).
    Create {
        /// The name.
        name: String,
        /// The password.
        password: String,
    },
    /// Log in: a new session.
    Login {
        /// The name.
        name: String,
        /// The password.
        password: String,
    },
    /// Resume the session `token` opens, at this server.
    Resume {
        /// The session token.
        token: String,
    },
    /// A command of the member's session.
    Do(Cmd),
    /// A query (DISCOVER, RECEIVE, STATS, the events after a number).
    Ask(BoardQuery),
}

impl Req {
    fn kind(&self) -> &'static str {
        match self {
            Req::Create { .. } => "CREATE",
            Req::Login { .. } => "LOGIN",
            Req::Resume { .. } => "RESUME",
            Req::Do(Cmd::Setup(_)) => "SETUP",
            Req::Do(Cmd::Negotiate(_)) => "NEGOTIATE",
            Req::Do(Cmd::Open { .. }) => "OPEN",
            Req::Do(Cmd::Vote { .. }) => "BALLOT",
            Req::Do(Cmd::Logout) => "LOGOUT",
            Req::Ask(BoardQuery::Discover) => "DISCOVER",
            Req::Ask(BoardQuery::Receive { .. }) => "RECEIVE",
            Req::Ask(BoardQuery::Stats { .. }) => "STATS",
            Req::Ask(BoardQuery::Events { .. }) => "EVENTS",
            Req::Ask(_) => "QUERY",
        }
    }
}

/// What the nodes of the voting service send.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Msg {
    /// Between servers: Raft's (and their sessions').
    Raft(RaftMsg<Board>),
    /// Member → server: a request (one in flight per member).
    Request {
        /// The member's number for it.
        id: u64,
        /// The request.
        req: Req,
    },
    /// Server → member: the answer to request `id`.
    Reply {
        /// The request.
        id: u64,
        /// The answer.
        out: BoardOut,
    },
    /// Server → member: request `id` (a login or a resume) opened session `sid` here.
    Welcome {
        /// The request.
        id: u64,
        /// The session.
        sid: Sid,
        /// The member's identifier.
        pin: Pin,
        /// The session token, to resume it elsewhere.
        token: String,
    },
    /// Member → server: a heartbeat.
    Ping {
        /// The last event the member took (0 if it follows none).
        took: u64,
    },
    /// Server → member: the heartbeat's answer.
    Pong {
        /// The member has a live session through this server (as far as its board knows).
        session: bool,
        /// The number of the latest event in this server's board.
        last_event: u64,
    },
    /// Server → member: events, numbered, in log order.
    Push {
        /// The events.
        events: Vec<(u64, Event)>,
    },
}

impl From<RaftMsg<Board>> for Msg {
    fn from(m: RaftMsg<Board>) -> Self {
        Msg::Raft(m)
    }
}

impl Message for Msg {
    fn kind(&self) -> &'static str {
        match self {
            Msg::Raft(m) => m.kind(),
            Msg::Request { req, .. } => req.kind(),
            Msg::Reply { .. } => "ANSWER",
            Msg::Welcome { .. } => "WELCOME",
            Msg::Ping { .. } => "PING",
            Msg::Pong { .. } => "PONG",
            Msg::Push { .. } => "PUSH",
        }
    }
}

/// The timers of the voting service's nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// A server's replica's or session's.
    Raft(RaftTimer),
    /// A server's tick.
    Server(ServerTimer),
    /// A member's heartbeat (and its check that its server answers).
    Beat,
    /// A member's request went unanswered: reconnect.
    Wait,
}

impl From<RaftTimer> for Timer {
    fn from(t: RaftTimer) -> Self {
        Timer::Raft(t)
    }
}

impl From<ServerTimer> for Timer {
    fn from(t: ServerTimer) -> Self {
        Timer::Server(t)
    }
}

/// What the voting service's nodes report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VsObs {
    /// A server's replica's or session's.
    Raft(RaftObs),
    /// A server's: events, board notes, tallies, expiries.
    Server(ServerObs),
    /// A member has a session: logged in (`fresh`) or resumed.
    Session {
        /// The session.
        sid: Sid,
        /// The member.
        pin: Pin,
        /// A new login, not a resume.
        fresh: bool,
    },
    /// A member starts following the events at its own JOIN, number `from`.
    Stream {
        /// The JOIN's number.
        from: u64,
    },
    /// A member took event `n` (in its stream's order).
    Delivered {
        /// Its number.
        n: u64,
        /// The event.
        event: Event,
    },
    /// A member's session ended as far as it knows (its own LEAVE or FAIL, a refused resume or
    /// command): its stream stops.
    Ended {
        /// The session.
        sid: Sid,
    },
    /// A member's command of session `sid` was answered: done (`ok`) or refused.
    Answered {
        /// The session.
        sid: Sid,
        /// Not refused.
        ok: bool,
    },
    /// A member's vote was acknowledged.
    VoteAcked {
        /// The voter.
        pin: Pin,
        /// The question.
        question: QuestionId,
        /// The option.
        option: u32,
    },
    /// A member's second, different vote was refused.
    VoteRefused {
        /// The question.
        question: QuestionId,
    },
}

impl From<RaftObs> for VsObs {
    fn from(o: RaftObs) -> Self {
        VsObs::Raft(o)
    }
}

impl From<ServerObs> for VsObs {
    fn from(o: ServerObs) -> Self {
        VsObs::Server(o)
    }
}

/// A node of the voting service.
// A member is small; a server holds a replica: boxing it would add a pointer to every step.
#[allow(clippy::large_enum_variant)]
pub enum VoteServiceNode {
    /// A server.
    Server(ServerNode),
    /// A member.
    Member(Member),
}

/// What a server does with the answer to a member's operation.
enum Stage {
    /// Hand it to the member.
    Plain,
    /// The account, for a login: check the password, then log in.
    Password { name: String, password: String },
    /// The login: welcome the member with its token.
    Login { token: String },
    /// A logout: the member's session here ends.
    Logout,
    /// The session a token opens: welcome the member back.
    Resume { token: String },
}

/// A member connected to a server.
#[derive(Default)]
struct Conn {
    /// The session it runs through this server.
    sid: Option<Sid>,
    /// The latest request id taken from it: a member numbers its requests upwards after a
    /// nonce drawn at each start (the high 32 bits), so a duplicate or a late copy of the same
    /// start is dropped, not submitted twice.
    last_id: u64,
    /// The last event it had taken, as its latest heartbeat said.
    took: u64,
    /// When it last sent a heartbeat.
    heard: Time,
}

/// A server node.
pub struct ServerNode {
    s: Arc<Settings>,
    server: Server,
    /// The members connected here.
    conns: BTreeMap<NodeId, Conn>,
    /// Some member with a live session here has not yet taken every event (as its latest
    /// heartbeat said): the run is not over.
    behind: bool,
    /// Operations submitted for members, by tag: whose request, and what to do with the answer.
    pending: HashMap<u64, (NodeId, u64, Stage)>,
    next_tag: u64,
}

impl ServerNode {
    fn submit(
        &mut self,
        ctx: &mut Context<'_, VoteServiceNode>,
        member: NodeId,
        id: u64,
        op: Op<Board>,
        stage: Stage,
    ) {
        self.next_tag += 1;
        self.pending.insert(self.next_tag, (member, id, stage));
        self.server.submit(ctx, op, self.next_tag);
    }

    fn on_request(&mut self, ctx: &mut Context<'_, VoteServiceNode>, from: NodeId, id: u64, req: Req) {
        let conn = self.conns.entry(from).or_default();
        if id >> 32 == conn.last_id >> 32 && id <= conn.last_id {
            return;
        }
        conn.last_id = id;
        let sid = conn.sid;
        match req {
            Req::Create { name, password } => {
                let op = Op::Command(BoardCmd::CreateAccount { name, phc: stand_in(&password) });
                self.submit(ctx, from, id, op, Stage::Plain)
            }
            Req::Login { name, password } => {
                let op = Op::Query(BoardQuery::Account { name: name.clone() });
                self.submit(ctx, from, id, op, Stage::Password { name, password })
            }
            Req::Resume { token } => {
                let op = Op::Query(BoardQuery::Token { token: super::board::token_hash(&token) });
                self.submit(ctx, from, id, op, Stage::Resume { token })
            }
            Req::Do(_) | Req::Ask(_) if sid.is_none() => {
                ctx.send(from, Msg::Reply { id, out: BoardOut::Err(super::VoteError::NoSession) })
            }
            Req::Do(Cmd::Vote { .. }) if self.s.variant == Variant::AckUnapplied => {
                ctx.send(from, Msg::Reply { id, out: BoardOut::Voted { again: false, consensus: None } })
            }
            Req::Do(cmd) => {
                let stage = if cmd == Cmd::Logout { Stage::Logout } else { Stage::Plain };
                let op = Op::Command(cmd.with(sid.expect("checked above")));
                self.submit(ctx, from, id, op, stage)
            }
            Req::Ask(q) => self.submit(ctx, from, id, Op::Query(q), Stage::Plain),
        }
    }

    fn on_done(&mut self, ctx: &mut Context<'_, VoteServiceNode>, tag: u64, out: BoardOut) {
        let Some((member, id, stage)) = self.pending.remove(&tag) else { return };
        match (stage, out) {
            (Stage::Password { name, password }, BoardOut::Account(a)) if a.phc == stand_in(&password) => {
                let token = format!("{:032x}", ctx.rng().random::<u128>());
                let cmd = BoardCmd::Login { name, token: super::board::token_hash(&token) };
                self.submit(ctx, member, id, Op::Command(cmd), Stage::Login { token })
            }
            (Stage::Password { .. }, BoardOut::Account(_)) => {
                ctx.send(member, Msg::Reply { id, out: BoardOut::Err(super::VoteError::NoAccount) })
            }
            (Stage::Login { token } | Stage::Resume { token }, BoardOut::Session { sid, pin, .. }) => {
                let conn = self.conns.entry(member).or_default();
                conn.sid = Some(sid);
                conn.heard = ctx.now();
                ctx.send(member, Msg::Welcome { id, sid, pin, token })
            }
            (stage, out) => {
                let logout = matches!(stage, Stage::Logout) && out == BoardOut::Ok;
                if logout || out == BoardOut::Err(super::VoteError::NoSession) {
                    self.conns.entry(member).or_default().sid = None;
                }
                ctx.send(member, Msg::Reply { id, out })
            }
        }
    }

    /// Hands out what the server finished in this step: answers, and events to every member
    /// with a session here.
    fn drain(&mut self, ctx: &mut Context<'_, VoteServiceNode>) {
        for (tag, out) in self.server.take_done() {
            self.on_done(ctx, tag, out);
        }
        let board = self.server.board();
        let (now, timeout) = (ctx.now(), self.s.session_timeout);
        self.behind = self.conns.values().any(|c| {
            c.sid.is_some_and(|s| board.session(s).is_some())
                && now.since(c.heard) < timeout
                && c.took < board.last_event()
        });
        let events = self.server.take_events();
        if events.is_empty() {
            return;
        }
        let to: Vec<NodeId> = self.conns.iter().filter(|(_, c)| c.sid.is_some()).map(|(m, _)| *m).collect();
        if !to.is_empty() {
            ctx.multicast(to, Msg::Push { events });
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, VoteServiceNode>, from: NodeId, msg: Msg) {
        match msg {
            Msg::Raft(m) if self.s.is_server(from) => self.server.on_message(ctx, from, m),
            Msg::Request { id, req } if !self.s.is_server(from) => self.on_request(ctx, from, id, req),
            Msg::Ping { took } if !self.s.is_server(from) => {
                let board = self.server.board();
                let last_event = board.last_event();
                let conn = self.conns.entry(from).or_default();
                let live = conn.sid.filter(|s| board.session(*s).is_some());
                conn.took = took;
                conn.heard = ctx.now();
                if let Some(sid) = live {
                    self.server.touch(sid);
                }
                ctx.send(from, Msg::Pong { session: live.is_some(), last_event });
            }
            // What only a server sends a member, or a member's message from a server.
            _ => {}
        }
        self.drain(ctx);
    }
}

impl VoteServiceNode {
    /// Node `id` of a run of `setup`, from what it persisted.
    pub fn new(setup: &VoteServiceSetup, id: NodeId, stable: &Stable) -> Result<Self, Corrupt> {
        let s = setup.s.clone();
        if s.is_server(id) {
            let server = Server::new(s.server.clone(), id, stable)?;
            Ok(VoteServiceNode::Server(ServerNode {
                s,
                server,
                conns: BTreeMap::new(),
                behind: false,
                pending: HashMap::new(),
                next_tag: 0,
            }))
        } else {
            Ok(VoteServiceNode::Member(Member::new(s, id, stable)?))
        }
    }
}

impl Protocol for VoteServiceNode {
    type Msg = Msg;
    type Timer = Timer;
    type Obs = VsObs;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        match self {
            VoteServiceNode::Server(n) => {
                n.server.on_start(ctx);
                n.drain(ctx);
            }
            VoteServiceNode::Member(m) => m.on_start(ctx),
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: Msg) {
        match self {
            VoteServiceNode::Server(n) => n.on_message(ctx, from, msg),
            VoteServiceNode::Member(m) => m.on_message(ctx, from, msg),
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, timer: Timer) {
        match self {
            VoteServiceNode::Server(n) => {
                match timer {
                    Timer::Raft(t) => n.server.on_raft_timer(ctx, t),
                    Timer::Server(t) => n.server.on_timer(ctx, t),
                    Timer::Beat | Timer::Wait => {}
                }
                n.drain(ctx);
            }
            VoteServiceNode::Member(m) => m.on_timer(ctx, timer),
        }
    }

    fn background(&self) -> bool {
        match self {
            VoteServiceNode::Server(n) => n.server.background() && n.pending.is_empty() && !n.behind,
            VoteServiceNode::Member(m) => m.background(),
        }
    }
}

/// A run of the voting service.
pub struct VoteServiceSetup {
    /// The settings, shared.
    pub s: Arc<Settings>,
}

impl Setup for VoteServiceSetup {
    type Node = VoteServiceNode;

    fn name(&self) -> &'static str {
        "vote-service"
    }

    fn nodes(&self) -> usize {
        self.s.servers + self.s.members
    }

    /// A server that lost its storage catches up before it votes (Raft's rejoin); a member
    /// that lost its token logs in again.
    fn rejoins(&self, _: NodeId) -> bool {
        true
    }

    fn build(&self, id: NodeId, stable: &Stable) -> Result<VoteServiceNode, Corrupt> {
        VoteServiceNode::new(self, id, stable)
    }

    fn checker(&self) -> Box<dyn Checker<VoteServiceNode>> {
        Box::new(VoteServiceChecker::new(&self.s))
    }

    /// A minority of servers down at once (members may all crash: the cluster fails them);
    /// not clock drift, since the leader times sessions on its own clock.
    fn fault_model(&self) -> agora_core::FaultModel {
        let servers = self.s.servers;
        let any = agora_core::FaultModel::any(Some((servers - 1) / 2)).among_first(servers);
        agora_core::FaultModel { clocks: false, ..any }
    }
}
