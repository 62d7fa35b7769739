//! `Board`: the replicated state of the voting service — accounts, sessions, the members
//! online, their declared and stored node info, questions and votes, and the numbered events
//! every member is told of. It is the [`StateMachine`] of agora's Raft log, so every server
//! holds the same board and every decision (a session's failure, a consensus) is taken once,
//! at one place in the log.
//!
//! **What it does not hold:** secrets. Passwords arrive as argon2id PHC strings, hashed by the
//! front end with a random salt before they reach the log; session and invitation tokens
//! arrive as their BLAKE3 hashes ([`token_hash`]), so a log, a snapshot or a stolen disk
//! gives no one a way in. Checking a password against its hash is the front end's work too
//! (argon2id is slow on purpose, and a state machine must be cheap and deterministic): it reads
//! the account's hash with a linearizable query, verifies, and only then submits
//! [`BoardCmd::Login`].
//!
//! **Sessions and failure** (the ZooKeeper way: an ephemeral member is failed once, by the
//! cluster, through the log). Every command of a session, and [`BoardCmd::Touch`] (the
//! servers' batched heartbeats of their clients), records the log position of the session's
//! latest sign of life. The server that leads the log keeps, for each session, when it last
//! saw that position move, on its own clock; after the session timeout without a move it
//! submits [`BoardCmd::Expire`] with the position it saw. The board fails the session only if
//! it has not moved since, so a heartbeat that overtook the decision wins, and a session
//! fails once.
//!
//! **Events** are numbered from 1 in log order; the board keeps the latest
//! [`EVENTS_KEPT`] so a member that reconnects can catch up from the number it saw last.
//!
//! **Consensus**, the report's rule: an option is the consensus when it has more votes than
//! half the members online, more than one vote was cast, and no other option has as many. It
//! is decided once, by the vote that reaches it, and never changes.

use super::{Pin, QuestionId, Sid, TokenHash};
use crate::raft::{Pos, StateMachine};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// How many of the latest events the board keeps for members catching up.
pub const EVENTS_KEPT: usize = 4096;
/// The longest account name, in bytes.
pub const MAX_NAME: usize = 32;
/// The longest text of a question, an option or a piece of node info, in bytes.
pub const MAX_TEXT: usize = 256;
/// The most options of a question, and the most entries in one part of a node's info.
pub const MAX_ITEMS: usize = 16;

/// BLAKE3 of a token: what the board stores in place of the token.
pub fn token_hash(token: &str) -> TokenHash {
    *blake3::hash(token.as_bytes()).as_bytes()
}

/// An account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The argon2id hash of its password, as a PHC string.
    pub phc: String,
    /// Its identifier shown to others: unique, never reused.
    pub pin: Pin,
}

/// A session: a logged-in member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The member.
    pub pin: Pin,
    /// The hash of its token.
    pub token: TokenHash,
    /// The log position of its latest sign of life.
    pub touched: Pos,
}

/// What a node declares of itself (the report's "node info").
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The services it offers.
    pub services: Vec<String>,
    /// Its capabilities.
    pub capabilities: Vec<String>,
    /// Its constraints.
    pub constraints: Vec<String>,
}

impl NodeInfo {
    fn valid(&self) -> bool {
        [&self.services, &self.capabilities, &self.constraints]
            .iter()
            .all(|part| part.len() <= MAX_ITEMS && part.iter().all(|s| text_ok(s)))
    }
}

/// When a question stops taking votes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Closing {
    /// When a consensus is reached (the report's rule).
    Consensus,
    /// After this many votes, consensus or not.
    Votes(u32),
}

/// A question and its votes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    /// Who opened it.
    pub by: Pin,
    /// Its text.
    pub text: String,
    /// Its options.
    pub options: Vec<String>,
    /// When it closes.
    pub closing: Closing,
    /// Each voter's option.
    pub votes: BTreeMap<Pin, u32>,
    /// The votes of each option (as many as `options`), kept as votes are counted: the
    /// consensus rule looks at them after every vote, and counting `votes` again each time
    /// would make a question of n voters cost O(n²) to the replicas that apply it.
    pub counts: Vec<u32>,
    /// The consensus, once reached: the option.
    pub consensus: Option<u32>,
    /// No more votes are taken.
    pub closed: bool,
}

/// An event every member is told of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A member logged in.
    Join {
        /// Its identifier.
        pin: Pin,
        /// Its account name.
        name: String,
    },
    /// A member logged out.
    Leave {
        /// Its identifier.
        pin: Pin,
    },
    /// A member's session expired: no sign of life within the timeout.
    Fail {
        /// Its identifier.
        pin: Pin,
    },
    /// A question was opened.
    Question {
        /// Its number.
        id: QuestionId,
        /// Who opened it.
        by: Pin,
        /// Its text.
        text: String,
        /// Its options.
        options: Vec<String>,
    },
    /// A question reached its consensus.
    Consensus {
        /// The question.
        id: QuestionId,
        /// The option agreed on.
        option: u32,
        /// The votes for it.
        votes: u32,
        /// The members online when it was reached.
        members: u32,
    },
    /// A question stopped taking votes.
    Closed {
        /// The question.
        id: QuestionId,
    },
}

/// A command: goes through the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BoardCmd {
    /// An administrator creates an account.
    CreateAccount {
        /// Its name.
        name: String,
        /// Its password's argon2id hash.
        phc: String,
    },
    /// An administrator (or any member) issues an invitation.
    Invite {
        /// The invitation token's hash.
        token: TokenHash,
    },
    /// Someone holding an invitation creates an account with it; the invitation is spent.
    Register {
        /// The invitation token's hash.
        invite: TokenHash,
        /// The account's name.
        name: String,
        /// Its password's argon2id hash.
        phc: String,
    },
    /// A member whose password the front end verified logs in with a new token. An earlier
    /// session of the same account ends (its token no longer works); the member stays online.
    Login {
        /// The account.
        name: String,
        /// The new session token's hash.
        token: TokenHash,
    },
    /// A session ends cleanly.
    Logout {
        /// The session.
        sid: Sid,
    },
    /// Sessions showed a sign of life at a server.
    Touch {
        /// The sessions.
        sids: Vec<Sid>,
    },
    /// The leading server saw no sign of life of `sid` since `seen` for the whole timeout.
    Expire {
        /// The session.
        sid: Sid,
        /// Its latest sign of life the server knew of.
        seen: Pos,
    },
    /// A member declares its node info (not stored for others until it agrees).
    Setup {
        /// The session.
        sid: Sid,
        /// The info.
        info: NodeInfo,
    },
    /// A member answers the server's request to store its declared info.
    Negotiate {
        /// The session.
        sid: Sid,
        /// Whether it agrees.
        allow: bool,
    },
    /// A member opens a question.
    Open {
        /// The session.
        sid: Sid,
        /// Its text.
        text: String,
        /// Its options (2 to [`MAX_ITEMS`]).
        options: Vec<String>,
        /// When it closes.
        closing: Closing,
    },
    /// A member votes.
    Vote {
        /// The session.
        sid: Sid,
        /// The question.
        question: QuestionId,
        /// The option, from 0.
        option: u32,
    },
}

/// A query: answered at a read index, no log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BoardQuery {
    /// An account's password hash and identifier, for a login.
    Account {
        /// Its name.
        name: String,
    },
    /// The session a token opens, for resuming it.
    Token {
        /// The token's hash.
        token: TokenHash,
    },
    /// The members online.
    Discover,
    /// The stored info of one member, or of every member with stored info.
    Receive {
        /// The member, or every one.
        pin: Option<Pin>,
    },
    /// A question's votes, or the latest question's.
    Stats {
        /// The question, or the latest.
        question: Option<QuestionId>,
    },
    /// The events after a number (those still kept).
    Events {
        /// The last event already seen.
        after: u64,
    },
    /// A query asked for a session: answered only while the session is live, so that no
    /// session reads anything after its logout or expiry (`no-session` otherwise).
    As {
        /// The session.
        sid: Sid,
        /// The query.
        query: Box<BoardQuery>,
    },
}

/// Why a command or query was refused: a stable word a program can match
/// ([`VoteError::word`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VoteError {
    /// The account name is taken.
    NameTaken,
    /// No such account.
    NoAccount,
    /// The invitation is unknown or spent.
    BadInvite,
    /// The session is unknown, logged out or expired.
    NoSession,
    /// No such question.
    NoQuestion,
    /// No such option.
    NoOption,
    /// This member already voted another option on this question.
    AlreadyVoted,
    /// The question takes no more votes.
    Closed,
    /// No such member (or it stored no info).
    NoMember,
    /// Nothing was declared to negotiate.
    NothingDeclared,
    /// A name, text or list is empty, too long, or has control characters.
    Invalid,
}

impl VoteError {
    /// The stable reason word of the line protocol.
    pub fn word(self) -> &'static str {
        match self {
            VoteError::NameTaken => "name-taken",
            VoteError::NoAccount => "no-account",
            VoteError::BadInvite => "bad-invite",
            VoteError::NoSession => "no-session",
            VoteError::NoQuestion => "no-question",
            VoteError::NoOption => "no-option",
            VoteError::AlreadyVoted => "already-voted",
            VoteError::Closed => "closed",
            VoteError::NoMember => "no-member",
            VoteError::NothingDeclared => "nothing-declared",
            VoteError::Invalid => "invalid",
        }
    }
}

/// A member online.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Its identifier.
    pub pin: Pin,
    /// Its account name.
    pub name: String,
}

/// A question's statistics.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// The question.
    pub id: QuestionId,
    /// Its text.
    pub text: String,
    /// Its options, each with its votes.
    pub counts: Vec<(String, u32)>,
    /// The members online now.
    pub members: u32,
    /// The consensus, if reached.
    pub consensus: Option<u32>,
    /// Whether it takes no more votes.
    pub closed: bool,
}

/// The answer to a command or a query.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BoardOut {
    /// Done.
    Ok,
    /// An account was created.
    Created {
        /// Its identifier.
        pin: Pin,
    },
    /// A session was opened (or is the one a token opens).
    Session {
        /// The session.
        sid: Sid,
        /// The member.
        pin: Pin,
        /// Its account name.
        name: String,
    },
    /// An account, for a login.
    Account(Account),
    /// How many sessions a touch reached.
    Touched(u32),
    /// A question was opened.
    Opened {
        /// Its number.
        id: QuestionId,
    },
    /// A vote was counted (or was already, the same).
    Voted {
        /// The same vote was already counted: nothing changed.
        again: bool,
        /// The question's consensus, if reached (by this vote or before).
        consensus: Option<u32>,
    },
    /// The members online.
    Members(Vec<Member>),
    /// Stored node info, by member.
    Info(Vec<(Pin, NodeInfo)>),
    /// A question's statistics.
    Stats(Stats),
    /// Events with their numbers, and whether some after `after` are no longer kept.
    Events {
        /// The events.
        events: Vec<(u64, Event)>,
        /// Events between `after` and the first of these were dropped.
        gap: bool,
    },
    /// Refused.
    Err(VoteError),
}

/// What the board did at one log position, for checkers: every replica notes what it applies,
/// and a server hands its notes out (or drops them) after each step.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Note {
    /// Session `sid` showed a sign of life: its login, a command of it, or a touch.
    Alive {
        /// The session.
        sid: Sid,
    },
    /// A command of session `sid` (setup, negotiate, open, vote, logout) was applied.
    Op {
        /// The session.
        sid: Sid,
        /// It succeeded (not refused).
        ok: bool,
    },
    /// Session `sid` of member `pin` ended: logged out, expired (`failed`), or replaced by a
    /// new login of the same account.
    Ended {
        /// The session.
        sid: Sid,
        /// The member.
        pin: Pin,
        /// It expired: a FAIL.
        failed: bool,
    },
    /// A vote was counted for the first time.
    Counted {
        /// The question.
        question: QuestionId,
        /// The voter.
        pin: Pin,
        /// The option.
        option: u32,
    },
}

/// The voting service's replicated state.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Board {
    accounts: BTreeMap<String, Account>,
    names: BTreeMap<Pin, String>,
    next_pin: Pin,
    invites: BTreeSet<TokenHash>,
    sessions: BTreeMap<Sid, Session>,
    tokens: BTreeMap<TokenHash, Sid>,
    next_sid: Sid,
    online: BTreeMap<Pin, Sid>,
    declared: BTreeMap<Pin, NodeInfo>,
    stored: BTreeMap<Pin, NodeInfo>,
    questions: BTreeMap<QuestionId, Question>,
    next_question: QuestionId,
    events: VecDeque<(u64, Event)>,
    last_event: u64,
    /// What was applied since the last [`Board::take_notes`]: not state (not in snapshots).
    #[serde(skip)]
    notes: Vec<(Pos, Note)>,
}

fn text_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_TEXT && !s.chars().any(char::is_control)
}

fn name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

impl Board {
    /// The session `sid`, if it is live.
    pub fn session(&self, sid: Sid) -> Option<&Session> {
        self.sessions.get(&sid)
    }

    /// Every live session.
    pub fn sessions(&self) -> impl Iterator<Item = (Sid, &Session)> {
        self.sessions.iter().map(|(s, x)| (*s, x))
    }

    /// The number of the latest event (0 before the first).
    pub fn last_event(&self) -> u64 {
        self.last_event
    }

    /// The events after `after` that are kept, in order.
    pub fn events_after(&self, after: u64) -> impl Iterator<Item = &(u64, Event)> {
        let skip = match self.events.front() {
            Some((first, _)) if after >= *first => (after - first + 1) as usize,
            _ => 0,
        };
        self.events.iter().skip(skip)
    }

    /// The members online.
    pub fn members(&self) -> usize {
        self.online.len()
    }

    /// The questions.
    pub fn questions(&self) -> &BTreeMap<QuestionId, Question> {
        &self.questions
    }

    /// The account names.
    pub fn accounts(&self) -> usize {
        self.accounts.len()
    }

    /// What the board applied since the last call, by position, in order.
    pub fn take_notes(&mut self) -> Vec<(Pos, Note)> {
        std::mem::take(&mut self.notes)
    }

    /// Every counted vote, as `(question, voter, option)`, in order.
    pub fn votes(&self) -> impl Iterator<Item = (QuestionId, Pin, u32)> + '_ {
        self.questions.iter().flat_map(|(q, x)| x.votes.iter().map(move |(p, o)| (*q, *p, *o)))
    }

    fn emit(&mut self, event: Event) {
        self.last_event += 1;
        self.events.push_back((self.last_event, event));
        if self.events.len() > EVENTS_KEPT {
            self.events.pop_front();
        }
    }

    fn create(&mut self, name: &str, phc: &str) -> BoardOut {
        if !name_ok(name) || phc.is_empty() || phc.len() > 512 {
            return BoardOut::Err(VoteError::Invalid);
        }
        if self.accounts.contains_key(name) {
            return BoardOut::Err(VoteError::NameTaken);
        }
        self.next_pin += 1;
        let pin = self.next_pin;
        self.accounts.insert(name.to_string(), Account { phc: phc.to_string(), pin });
        self.names.insert(pin, name.to_string());
        BoardOut::Created { pin }
    }

    /// The live session `sid`, touched at `pos`.
    fn live(&mut self, sid: Sid, pos: Pos) -> Result<Pin, VoteError> {
        let s = self.sessions.get_mut(&sid).ok_or(VoteError::NoSession)?;
        s.touched = pos;
        let pin = s.pin;
        self.notes.push((pos, Note::Alive { sid }));
        Ok(pin)
    }

    fn end(&mut self, sid: Sid, pos: Pos, failed: bool) -> Option<Pin> {
        let s = self.sessions.remove(&sid)?;
        self.tokens.remove(&s.token);
        self.online.remove(&s.pin);
        self.notes.push((pos, Note::Ended { sid, pin: s.pin, failed }));
        Some(s.pin)
    }

    fn vote(&mut self, pos: Pos, voter: Pin, qid: QuestionId, option: u32) -> BoardOut {
        let members = self.online.len() as u32;
        let Some(q) = self.questions.get_mut(&qid) else {
            return BoardOut::Err(VoteError::NoQuestion);
        };
        if option as usize >= q.options.len() {
            return BoardOut::Err(VoteError::NoOption);
        }
        match q.votes.get(&voter) {
            Some(&o) if o == option => return BoardOut::Voted { again: true, consensus: q.consensus },
            Some(_) => return BoardOut::Err(VoteError::AlreadyVoted),
            None if q.closed => return BoardOut::Err(VoteError::Closed),
            None => {}
        }
        q.votes.insert(voter, option);
        q.counts[option as usize] += 1;
        self.notes.push((pos, Note::Counted { question: qid, pin: voter, option }));
        let mut events = Vec::new();
        if q.consensus.is_none() {
            if let Some(winner) = consensus(&q.counts, members) {
                q.consensus = Some(winner);
                events.push(Event::Consensus {
                    id: qid,
                    option: winner,
                    votes: q.counts[winner as usize],
                    members,
                });
                if q.closing == Closing::Consensus {
                    q.closed = true;
                    events.push(Event::Closed { id: qid });
                }
            }
        }
        if let Closing::Votes(n) = q.closing {
            if !q.closed && q.votes.len() as u32 >= n {
                q.closed = true;
                events.push(Event::Closed { id: qid });
            }
        }
        let out = BoardOut::Voted { again: false, consensus: q.consensus };
        for e in events {
            self.emit(e);
        }
        out
    }

    fn stats(&self, question: Option<QuestionId>) -> BoardOut {
        let found = match question {
            Some(id) => self.questions.get_key_value(&id),
            None => self.questions.iter().next_back(),
        };
        let Some((&id, q)) = found else { return BoardOut::Err(VoteError::NoQuestion) };
        let counts: Vec<(String, u32)> = q.options.iter().cloned().zip(q.counts.iter().copied()).collect();
        BoardOut::Stats(Stats {
            id,
            text: q.text.clone(),
            counts,
            members: self.online.len() as u32,
            consensus: q.consensus,
            closed: q.closed,
        })
    }
}

/// The report's consensus rule on a question's `counts` with `members` online: the option
/// with more than half the members' votes, if more than one vote was cast and no other option
/// ties with it.
pub fn consensus(counts: &[u32], members: u32) -> Option<u32> {
    let total: u32 = counts.iter().sum();
    let (best, &top) = counts.iter().enumerate().max_by_key(|(i, c)| (**c, std::cmp::Reverse(*i)))?;
    let tie = counts.iter().filter(|&&c| c == top).count() > 1;
    (total > 1 && !tie && 2 * top > members).then_some(best as u32)
}

impl StateMachine for Board {
    type Command = BoardCmd;
    type Query = BoardQuery;
    type Output = BoardOut;

    fn apply(&mut self, pos: Pos, cmd: &BoardCmd) -> BoardOut {
        let out = self.command(pos, cmd);
        let sid = match cmd {
            BoardCmd::Logout { sid }
            | BoardCmd::Setup { sid, .. }
            | BoardCmd::Negotiate { sid, .. }
            | BoardCmd::Open { sid, .. }
            | BoardCmd::Vote { sid, .. } => Some(*sid),
            _ => None,
        };
        if let Some(sid) = sid {
            self.notes.push((pos, Note::Op { sid, ok: !matches!(out, BoardOut::Err(_)) }));
        }
        out
    }

    fn query(&self, q: &BoardQuery) -> BoardOut {
        self.answer(q)
    }
}

impl Board {
    /// Applies `cmd` at `pos`.
    fn command(&mut self, pos: Pos, cmd: &BoardCmd) -> BoardOut {
        let err = BoardOut::Err;
        match cmd {
            BoardCmd::CreateAccount { name, phc } => self.create(name, phc),
            BoardCmd::Invite { token } => {
                self.invites.insert(*token);
                BoardOut::Ok
            }
            BoardCmd::Register { invite, name, phc } => {
                if !self.invites.contains(invite) {
                    return err(VoteError::BadInvite);
                }
                let out = self.create(name, phc);
                if matches!(out, BoardOut::Created { .. }) {
                    self.invites.remove(invite);
                }
                out
            }
            BoardCmd::Login { name, token } => {
                let Some(pin) = self.accounts.get(name).map(|a| a.pin) else {
                    return err(VoteError::NoAccount);
                };
                if self.tokens.contains_key(token) {
                    return err(VoteError::Invalid);
                }
                let rejoined = match self.online.get(&pin).copied() {
                    Some(old) => {
                        self.end(old, pos, false);
                        true
                    }
                    None => false,
                };
                self.next_sid += 1;
                let sid = self.next_sid;
                self.sessions.insert(sid, Session { pin, token: *token, touched: pos });
                self.notes.push((pos, Note::Alive { sid }));
                self.tokens.insert(*token, sid);
                self.online.insert(pin, sid);
                if !rejoined {
                    self.emit(Event::Join { pin, name: name.clone() });
                }
                BoardOut::Session { sid, pin, name: name.clone() }
            }
            BoardCmd::Logout { sid } => match self.end(*sid, pos, false) {
                Some(pin) => {
                    self.emit(Event::Leave { pin });
                    BoardOut::Ok
                }
                None => err(VoteError::NoSession),
            },
            BoardCmd::Touch { sids } => {
                let n = sids.iter().filter(|&&sid| self.live(sid, pos).is_ok()).count();
                BoardOut::Touched(n as u32)
            }
            BoardCmd::Expire { sid, seen } => match self.sessions.get(sid) {
                Some(s) if s.touched <= *seen => {
                    if let Some(pin) = self.end(*sid, pos, true) {
                        self.emit(Event::Fail { pin });
                    }
                    BoardOut::Ok
                }
                Some(_) => BoardOut::Touched(1),
                None => err(VoteError::NoSession),
            },
            BoardCmd::Setup { sid, info } => {
                let pin = match self.live(*sid, pos) {
                    Ok(p) => p,
                    Err(e) => return err(e),
                };
                if !info.valid() {
                    return err(VoteError::Invalid);
                }
                self.declared.insert(pin, info.clone());
                BoardOut::Ok
            }
            BoardCmd::Negotiate { sid, allow } => {
                let pin = match self.live(*sid, pos) {
                    Ok(p) => p,
                    Err(e) => return err(e),
                };
                let Some(info) = self.declared.remove(&pin) else {
                    return err(VoteError::NothingDeclared);
                };
                if *allow {
                    self.stored.insert(pin, info);
                }
                BoardOut::Ok
            }
            BoardCmd::Open { sid, text, options, closing } => {
                let pin = match self.live(*sid, pos) {
                    Ok(p) => p,
                    Err(e) => return err(e),
                };
                let distinct = options.iter().collect::<BTreeSet<_>>().len() == options.len();
                if !text_ok(text)
                    || !(2..=MAX_ITEMS).contains(&options.len())
                    || !options.iter().all(|o| text_ok(o))
                    || !distinct
                    || *closing == Closing::Votes(0)
                {
                    return err(VoteError::Invalid);
                }
                self.next_question += 1;
                let id = self.next_question;
                self.questions.insert(
                    id,
                    Question {
                        by: pin,
                        text: text.clone(),
                        options: options.clone(),
                        closing: *closing,
                        votes: BTreeMap::new(),
                        counts: vec![0; options.len()],
                        consensus: None,
                        closed: false,
                    },
                );
                self.emit(Event::Question { id, by: pin, text: text.clone(), options: options.clone() });
                BoardOut::Opened { id }
            }
            BoardCmd::Vote { sid, question, option } => match self.live(*sid, pos) {
                Ok(pin) => self.vote(pos, pin, *question, *option),
                Err(e) => err(e),
            },
        }
    }

    /// Answers `q`.
    fn answer(&self, q: &BoardQuery) -> BoardOut {
        match q {
            BoardQuery::Account { name } => match self.accounts.get(name) {
                Some(a) => BoardOut::Account(a.clone()),
                None => BoardOut::Err(VoteError::NoAccount),
            },
            BoardQuery::Token { token } => {
                let found = self.tokens.get(token).and_then(|sid| Some((*sid, self.sessions.get(sid)?)));
                match found {
                    Some((sid, s)) => BoardOut::Session { sid, pin: s.pin, name: self.names[&s.pin].clone() },
                    None => BoardOut::Err(VoteError::NoSession),
                }
            }
            BoardQuery::Discover => BoardOut::Members(
                self.online.keys().map(|&pin| Member { pin, name: self.names[&pin].clone() }).collect(),
            ),
            BoardQuery::Receive { pin: Some(pin) } => match self.stored.get(pin) {
                Some(info) => BoardOut::Info(vec![(*pin, info.clone())]),
                None => BoardOut::Err(VoteError::NoMember),
            },
            BoardQuery::Receive { pin: None } => {
                BoardOut::Info(self.stored.iter().map(|(p, i)| (*p, i.clone())).collect())
            }
            BoardQuery::Stats { question } => self.stats(*question),
            BoardQuery::As { sid, query } => match self.sessions.get(sid) {
                Some(_) => self.query(query),
                None => BoardOut::Err(VoteError::NoSession),
            },
            BoardQuery::Events { after } => {
                let events: Vec<_> = self.events_after(*after).cloned().collect();
                let first = events.first().map_or(self.last_event + 1, |(n, _)| *n);
                BoardOut::Events { gap: first > after + 1, events }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct T {
        board: Board,
        index: u64,
    }

    impl T {
        fn new() -> T {
            T { board: Board::default(), index: 0 }
        }
        fn run(&mut self, cmd: BoardCmd) -> BoardOut {
            self.index += 1;
            self.board.apply(Pos { index: self.index, offset: 0 }, &cmd)
        }
        fn account(&mut self, name: &str) -> Pin {
            match self.run(BoardCmd::CreateAccount { name: name.into(), phc: "$argon2id$x".into() }) {
                BoardOut::Created { pin } => pin,
                other => panic!("{other:?}"),
            }
        }
        fn login(&mut self, name: &str) -> Sid {
            match self.run(BoardCmd::Login { name: name.into(), token: token_hash(name) }) {
                BoardOut::Session { sid, .. } => sid,
                other => panic!("{other:?}"),
            }
        }
        fn events(&self) -> Vec<Event> {
            self.board.events_after(0).map(|(_, e)| e.clone()).collect()
        }
    }

    fn open(sid: Sid, closing: Closing) -> BoardCmd {
        BoardCmd::Open { sid, text: "tea or coffee".into(), options: vec!["A".into(), "B".into()], closing }
    }

    fn vote(sid: Sid, option: u32) -> BoardCmd {
        BoardCmd::Vote { sid, question: 1, option }
    }

    #[test]
    fn pins_are_unique_and_names_are_taken_once() {
        let mut t = T::new();
        let a = t.account("ann");
        let b = t.account("bob");
        assert_ne!(a, b);
        let again = BoardCmd::CreateAccount { name: "ann".into(), phc: "$argon2id$y".into() };
        assert_eq!(t.run(again), BoardOut::Err(VoteError::NameTaken));
        for bad in ["", "a b", "ann\n", &"x".repeat(MAX_NAME + 1)] {
            let cmd = BoardCmd::CreateAccount { name: bad.into(), phc: "h".into() };
            assert_eq!(t.run(cmd), BoardOut::Err(VoteError::Invalid), "{bad:?}");
        }
        assert_eq!(t.board.accounts(), 2);
    }

    #[test]
    fn an_invitation_is_spent_once() {
        let mut t = T::new();
        let inv = token_hash("invite-1");
        t.run(BoardCmd::Invite { token: inv });
        let reg = |name: &str| BoardCmd::Register { invite: inv, name: name.into(), phc: "h".into() };
        assert!(matches!(t.run(reg("cat")), BoardOut::Created { .. }));
        assert_eq!(t.run(reg("dan")), BoardOut::Err(VoteError::BadInvite));
    }

    #[test]
    fn sessions_join_leave_and_fail_once() {
        let mut t = T::new();
        let ann = t.account("ann");
        let bob = t.account("bob");
        let sa = t.login("ann");
        let sb = t.login("bob");
        assert_eq!(t.board.members(), 2);
        let BoardOut::Session { sid, .. } = t.board.query(&BoardQuery::Token { token: token_hash("ann") })
        else {
            panic!()
        };
        assert_eq!(sid, sa);
        assert_eq!(t.run(BoardCmd::Logout { sid: sa }), BoardOut::Ok);
        assert_eq!(t.run(BoardCmd::Logout { sid: sa }), BoardOut::Err(VoteError::NoSession));
        assert_eq!(
            t.run(vote(sa, 0)),
            BoardOut::Err(VoteError::NoSession),
            "no session works after its logout"
        );
        let read = |sid| BoardQuery::As { sid, query: Box::new(BoardQuery::Discover) };
        assert_eq!(t.board.query(&read(sa)), BoardOut::Err(VoteError::NoSession), "nor reads");
        assert!(matches!(t.board.query(&read(sb)), BoardOut::Members(_)));
        // A touch after the leader's look wins over its expiry.
        let seen = t.board.session(sb).unwrap().touched;
        t.run(BoardCmd::Touch { sids: vec![sb] });
        assert_eq!(t.run(BoardCmd::Expire { sid: sb, seen }), BoardOut::Touched(1));
        let seen = t.board.session(sb).unwrap().touched;
        assert_eq!(t.run(BoardCmd::Expire { sid: sb, seen }), BoardOut::Ok);
        assert_eq!(t.run(BoardCmd::Expire { sid: sb, seen }), BoardOut::Err(VoteError::NoSession));
        assert_eq!(
            t.events(),
            vec![
                Event::Join { pin: ann, name: "ann".into() },
                Event::Join { pin: bob, name: "bob".into() },
                Event::Leave { pin: ann },
                Event::Fail { pin: bob },
            ]
        );
        assert_eq!(t.board.members(), 0);
    }

    #[test]
    fn a_second_login_replaces_the_session_without_a_second_join() {
        let mut t = T::new();
        t.account("ann");
        let first = t.login("ann");
        let second = match t.run(BoardCmd::Login { name: "ann".into(), token: token_hash("other") }) {
            BoardOut::Session { sid, .. } => sid,
            o => panic!("{o:?}"),
        };
        assert_ne!(first, second);
        assert!(t.board.session(first).is_none());
        assert_eq!(t.events().len(), 1);
        assert_eq!(
            t.board.query(&BoardQuery::Token { token: token_hash("ann") }),
            BoardOut::Err(VoteError::NoSession)
        );
    }

    #[test]
    fn one_vote_per_member_and_the_reports_consensus_rule() {
        let mut t = T::new();
        let sids: Vec<Sid> = ["a", "b", "c", "d"]
            .iter()
            .map(|n| {
                t.account(n);
                t.login(n)
            })
            .collect();
        assert_eq!(t.run(open(sids[0], Closing::Consensus)), BoardOut::Opened { id: 1 });
        assert_eq!(t.run(vote(sids[0], 0)), BoardOut::Voted { again: false, consensus: None });
        assert_eq!(t.run(vote(sids[0], 0)), BoardOut::Voted { again: true, consensus: None });
        assert_eq!(t.run(vote(sids[0], 1)), BoardOut::Err(VoteError::AlreadyVoted));
        assert_eq!(t.run(vote(sids[1], 2)), BoardOut::Err(VoteError::NoOption));
        // 2 of 4 is not more than half.
        assert_eq!(t.run(vote(sids[1], 0)), BoardOut::Voted { again: false, consensus: None });
        assert_eq!(t.run(vote(sids[2], 0)), BoardOut::Voted { again: false, consensus: Some(0) });
        assert_eq!(t.run(vote(sids[3], 1)), BoardOut::Err(VoteError::Closed));
        let consensus_events =
            t.events().iter().filter(|e| matches!(e, Event::Consensus { id: 1, option: 0, .. })).count();
        assert_eq!(consensus_events, 1);
        let BoardOut::Stats(s) = t.board.query(&BoardQuery::Stats { question: None }) else { panic!() };
        assert_eq!(s.counts, vec![("A".to_string(), 3), ("B".to_string(), 0)]);
        assert!(s.closed);
    }

    #[test]
    fn the_tally_kept_is_the_count_of_the_votes() {
        let mut t = T::new();
        let sids: Vec<Sid> = (0..30)
            .map(|i| {
                let n = format!("m{i}");
                t.account(&n);
                t.login(&n)
            })
            .collect();
        let three = BoardCmd::Open {
            sid: sids[0],
            text: "which".into(),
            options: vec!["A".into(), "B".into(), "C".into()],
            closing: Closing::Votes(100),
        };
        assert_eq!(t.run(three), BoardOut::Opened { id: 1 });
        for (i, &sid) in sids.iter().enumerate() {
            // 10 voters each (no consensus: 10 of 30 is not more than half), each vote twice:
            // the repeated one is acknowledged again and not counted again.
            let option = (i % 3) as u32;
            assert_eq!(t.run(vote(sid, option)), BoardOut::Voted { again: false, consensus: None });
            assert_eq!(t.run(vote(sid, option)), BoardOut::Voted { again: true, consensus: None });
            assert_eq!(t.run(vote(sid, (option + 1) % 3)), BoardOut::Err(VoteError::AlreadyVoted));
        }
        let q = &t.board.questions()[&1];
        let mut recount = vec![0u32; 3];
        for &o in q.votes.values() {
            recount[o as usize] += 1;
        }
        assert_eq!(q.counts, recount);
        assert_eq!(q.counts, vec![10, 10, 10]);
        let BoardOut::Stats(s) = t.board.query(&BoardQuery::Stats { question: Some(1) }) else { panic!() };
        assert_eq!(s.counts.iter().map(|(_, n)| *n).collect::<Vec<_>>(), vec![10, 10, 10]);
    }

    #[test]
    fn consensus_needs_a_majority_more_than_one_vote_and_no_tie() {
        assert_eq!(consensus(&[1, 0], 1), None, "one vote is not a consensus");
        assert_eq!(consensus(&[2, 0], 3), Some(0));
        assert_eq!(consensus(&[2, 2], 3), None, "a tie");
        assert_eq!(consensus(&[2, 1], 4), None, "not more than half of 4");
        assert_eq!(consensus(&[0, 3, 1], 5), Some(1));
    }

    #[test]
    fn info_is_stored_only_when_its_owner_agrees() {
        let mut t = T::new();
        let ann = t.account("ann");
        let sa = t.login("ann");
        let info = NodeInfo { services: vec!["print".into()], ..NodeInfo::default() };
        assert_eq!(
            t.run(BoardCmd::Negotiate { sid: sa, allow: true }),
            BoardOut::Err(VoteError::NothingDeclared)
        );
        t.run(BoardCmd::Setup { sid: sa, info: info.clone() });
        t.run(BoardCmd::Negotiate { sid: sa, allow: false });
        assert_eq!(
            t.board.query(&BoardQuery::Receive { pin: Some(ann) }),
            BoardOut::Err(VoteError::NoMember)
        );
        t.run(BoardCmd::Setup { sid: sa, info: info.clone() });
        t.run(BoardCmd::Negotiate { sid: sa, allow: true });
        assert_eq!(t.board.query(&BoardQuery::Receive { pin: None }), BoardOut::Info(vec![(ann, info)]));
        let bad = NodeInfo { services: vec!["a\u{7}".into()], ..NodeInfo::default() };
        assert_eq!(t.run(BoardCmd::Setup { sid: sa, info: bad }), BoardOut::Err(VoteError::Invalid));
    }

    #[test]
    fn events_are_kept_in_a_window_and_a_gap_is_reported() {
        let mut t = T::new();
        t.account("ann");
        for i in 0..EVENTS_KEPT + 10 {
            let sid = t.login("ann");
            if i % 2 == 0 {
                t.run(BoardCmd::Logout { sid });
            } else {
                t.board.end(sid, Pos { index: 0, offset: 0 }, false);
            }
        }
        let BoardOut::Events { events, gap } = t.board.query(&BoardQuery::Events { after: 3 }) else {
            panic!()
        };
        assert!(gap);
        assert_eq!(events.len(), EVENTS_KEPT);
        let last = t.board.last_event();
        let BoardOut::Events { events, gap } = t.board.query(&BoardQuery::Events { after: last - 2 }) else {
            panic!()
        };
        assert!(!gap);
        assert_eq!(events.iter().map(|e| e.0).collect::<Vec<_>>(), vec![last - 1, last]);
    }
}
