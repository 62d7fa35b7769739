//! The line-protocol front end of one server (docs/vote-protocol.md): accepts connections,
//! reads bounded UTF-8 lines, runs each command against the cluster through the node's local
//! calls, and writes one reply per command in order, with the board's events pushed between
//! them to the members logged in here.
//!
//! A connection runs one command at a time: a client that pipelines waits in its own socket
//! buffer, and the node batches the commands of all connections into one log entry per round.
//! Passwords are verified here (argon2id is slow on purpose; a state machine must be cheap),
//! on the server's hashing threads ([`Kdf`]), a few at a time, behind a bounded queue.

use super::kdf::{Busy, Kdf};
use super::node::{Answer, Glance, Numbered, VoteNode};
use super::tls::HANDSHAKE_TIMEOUT;
use agora_core::NodeId;
use agora_net::LocalCall;
use agora_protocols::raft::Op;
use agora_protocols::vote_service::board::{token_hash, Closing, Event, NodeInfo, Stats, MAX_NAME};
use agora_protocols::vote_service::{Board, BoardCmd, BoardOut, BoardQuery, Pin, QuestionId, Sid};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, oneshot, watch, Semaphore};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

/// The longest line a client may send, in bytes.
pub const MAX_LINE: usize = 16 * 1024;
/// A connection without a session that sends nothing for this long is closed.
const IDLE: Duration = Duration::from_secs(60);
/// Commands a connection may send at once, and per second after that.
const BURST: f64 = 512.0;
const RATE_PER_S: f64 = 256.0;
/// Refused lines in a row (garbage) before the connection is closed.
const MAX_ERRORS_IN_ROW: u32 = 100;
/// `slow-down` replies before the connection is closed, unless the client was quiet long
/// enough to fill its bucket again meanwhile.
const MAX_SLOW_DOWNS: u32 = 1024;
/// A write to a client that does not read for this long closes its connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Events written to a connection in one go, at most.
const EVENTS_PER_WRITE: usize = 256;
/// How long a closed connection's input is still read and dropped.
const LINGER: Duration = Duration::from_secs(1);
/// The first delay of a failed login, doubled per failure up to [`LOGIN_DELAY_MAX`].
const LOGIN_DELAY: Duration = Duration::from_millis(250);
const LOGIN_DELAY_MAX: Duration = Duration::from_secs(8);
/// A failed login of an account counts against it for this long.
const LOGIN_MEMORY: Duration = Duration::from_secs(15 * 60);
/// Accounts whose failures are remembered, at most.
const FAILURES_KEPT: usize = 100_000;
/// The longest password, in bytes.
const MAX_PASSWORD: usize = 1024;
/// Password hashes waiting for a hashing thread, at most; one more is refused (`ERR busy`).
const KDF_QUEUE: usize = 256;

/// What every connection of one server's front end shares.
pub struct Front {
    /// The server.
    pub me: NodeId,
    /// Its node's local calls.
    pub calls: mpsc::UnboundedSender<LocalCall<VoteNode>>,
    /// Its node's events.
    pub events: broadcast::Sender<Numbered>,
    /// A command not answered within this time gets `ERR unavailable`.
    pub timeout: Duration,
    /// Connections served at once, at most.
    pub max_clients: usize,
    /// The BLAKE3 hash of the administrator token, if administration is on.
    pub admin: Option<blake3::Hash>,
    /// Sessions are touched at most this often per connection.
    pub touch_every: Duration,
    /// The password-hashing threads (as many as the cores) and their queue.
    pub kdf: Kdf,
    /// Recent failed logins per account name: how many, and the latest.
    pub failures: Mutex<HashMap<String, (u32, Instant)>>,
    /// Connections accepted so far (their ids in log lines).
    pub accepted: AtomicU64,
}

impl Front {
    /// A front end for server `me`.
    pub fn new(
        me: NodeId,
        calls: mpsc::UnboundedSender<LocalCall<VoteNode>>,
        events: broadcast::Sender<Numbered>,
        timeout: Duration,
        max_clients: usize,
        admin: Option<&str>,
        session_timeout: Duration,
    ) -> Front {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Front {
            me,
            calls,
            events,
            timeout,
            max_clients,
            admin: admin.map(|t| blake3::hash(t.as_bytes())),
            touch_every: session_timeout / 8,
            kdf: Kdf::new(cores, KDF_QUEUE),
            failures: Mutex::new(HashMap::new()),
            accepted: AtomicU64::new(0),
        }
    }
}

/// The administrator token of a cluster whose secret is `secret_hex`.
pub fn admin_token(secret_hex: &str) -> String {
    hex(&blake3::derive_key("agora vote administrator token v1", secret_hex.as_bytes()))
}

/// Serves the line protocol on `listener` until `stop` is set; inside TLS when `tls` is given.
pub async fn serve(
    listener: TcpListener,
    front: Arc<Front>,
    tls: Option<TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(front.max_clients));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                warn!("vote {}: accept failed: {e}", front.me);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            let mut stream = stream;
            let line = format!("BYE busy this server serves {} connections at most\n", front.max_clients);
            let _ = tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(line.as_bytes())).await;
            continue;
        };
        let front = front.clone();
        let stop = stop.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => connection(stream, peer, front, stop).await,
                Some(tls) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                    Ok(Ok(stream)) => connection(stream, peer, front, stop).await,
                    Ok(Err(e)) => info!("vote {}: TLS handshake with {peer} failed: {e}; closed", front.me),
                    Err(_) => info!("vote {}: TLS handshake with {peer} not done in time; closed", front.me),
                },
            }
            drop(permit);
        });
    }
}

/// Why a line could not be read as a command.
enum LineError {
    TooLong,
    NotUtf8,
}

/// Reads `\n`-terminated lines of at most [`MAX_LINE`] bytes; a longer one is skipped to its
/// end. Cancel-safe: what was read stays in the buffer.
struct Lines<R> {
    rd: R,
    buf: Vec<u8>,
    /// Inside a line that is too long: drop bytes up to its end.
    skipping: bool,
    chunk: Box<[u8]>,
}

impl<R: AsyncRead + Unpin> Lines<R> {
    fn new(rd: R) -> Self {
        Lines { rd, buf: Vec::with_capacity(1024), skipping: false, chunk: vec![0; 8192].into() }
    }

    /// The next line, an error for a bad one, or `None` at the end of the stream.
    async fn next(&mut self) -> Option<Result<String, LineError>> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=i).collect();
                line.pop();
                if std::mem::take(&mut self.skipping) {
                    return Some(Err(LineError::TooLong));
                }
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Some(String::from_utf8(line).map_err(|_| LineError::NotUtf8));
            }
            if self.buf.len() > MAX_LINE {
                self.buf.clear();
                self.skipping = true;
            }
            match self.rd.read(&mut self.chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&self.chunk[..n]),
            }
        }
    }
}

/// What one connection keeps between commands.
struct Conn {
    id: u64,
    peer: SocketAddr,
    /// The session this connection speaks for, with its member's PIN.
    session: Option<(Sid, Pin)>,
    admin: bool,
    /// The latest event number delivered (or known not to be this member's concern).
    cursor: u64,
    events: broadcast::Receiver<Numbered>,
    last_touch: Option<Instant>,
    /// Failed logins on this connection.
    failed_logins: u32,
    /// Token bucket of commands.
    tokens: f64,
    refilled: Instant,
    slow_downs: u32,
    errors_in_row: u32,
}

/// What a command does to the connection after its reply.
enum After {
    Stay,
    Close(&'static str, String),
}

/// A reply's lines: `#` comments, the reply itself, then pushed `EVENT` lines.
struct Reply {
    lines: Vec<String>,
    after: After,
}

impl Reply {
    fn ok(line: impl Into<String>) -> Reply {
        Reply { lines: vec![line.into()], after: After::Stay }
    }
    fn err(reason: &str, text: impl std::fmt::Display) -> Reply {
        Reply::ok(format!("ERR {reason} {text}"))
    }
}

async fn connection<S>(stream: S, peer: SocketAddr, front: Arc<Front>, mut stop: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Send + Unpin,
{
    let id = front.accepted.fetch_add(1, Ordering::Relaxed);
    debug!("vote {}: connection {id} from {peer}", front.me);
    let (rd, wr) = tokio::io::split(stream);
    let mut lines = Lines::new(rd);
    let mut wr = BufWriter::new(wr);
    let mut c = Conn {
        id,
        peer,
        session: None,
        admin: false,
        cursor: 0,
        events: front.events.subscribe(),
        last_touch: None,
        failed_logins: 0,
        tokens: BURST,
        refilled: Instant::now(),
        slow_downs: 0,
        errors_in_row: 0,
    };
    let hello = format!("HELLO agora-vote 1 server={}\n# HELP lists the commands\n", front.me.0);
    if !write(&mut wr, &[hello]).await {
        return;
    }
    let mut idle_until = tokio::time::Instant::now() + IDLE;
    let reason = loop {
        let mut out = Vec::new();
        tokio::select! {
            got = c.events.recv(), if c.session.is_some() => {
                deliver(&front, &mut c, got, &mut out).await;
                // The events already waiting go out in the same write: a crowd of members
                // joining costs each connection one write per burst, not one per event.
                while out.len() < EVENTS_PER_WRITE && c.session.is_some() {
                    match c.events.try_recv() {
                        Ok(e) => deliver(&front, &mut c, Ok(e), &mut out).await,
                        Err(broadcast::error::TryRecvError::Lagged(n)) => {
                            deliver(&front, &mut c, Err(broadcast::error::RecvError::Lagged(n)), &mut out).await
                        }
                        Err(broadcast::error::TryRecvError::Empty) => break,
                        Err(broadcast::error::TryRecvError::Closed) => {
                            deliver(&front, &mut c, Err(broadcast::error::RecvError::Closed), &mut out).await
                        }
                    }
                }
            }
            line = lines.next() => {
                idle_until = tokio::time::Instant::now() + IDLE;
                let Some(line) = line else { break None };
                let reply = command(&front, &mut c, line).await;
                out.extend(reply.lines);
                if let After::Close(reason, text) = reply.after {
                    out.push(format!("BYE {reason} {text}"));
                    let _ = write(&mut wr, &out).await;
                    break Some(reason);
                }
            }
            _ = tokio::time::sleep_until(idle_until), if c.session.is_none() => {
                let _ = write(&mut wr, &["BYE idle no command for 60 s".into()]).await;
                break Some("idle");
            }
            _ = stopped(&mut stop) => {
                let _ = write(&mut wr, &["BYE shutdown the server is stopping".into()]).await;
                break Some("shutdown");
            }
        }
        if !out.is_empty() && !write(&mut wr, &out).await {
            break Some("write failed or timed out");
        }
    };
    let _ = wr.shutdown().await;
    // A lingering close: what the client still sends is read and dropped for a moment, so
    // that closing with unread input does not reset the connection before the client has
    // read the last lines (the `BYE`).
    let _ = tokio::time::timeout(LINGER, async {
        let mut sink = [0u8; 8192];
        while let Ok(n) = lines.rd.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    match reason {
        Some(r @ ("flood" | "errors")) => {
            info!("vote {}: connection {} from {}: closed ({r})", front.me, c.id, c.peer)
        }
        r => debug!("vote {}: connection {} from {} closed ({})", front.me, c.id, c.peer, r.unwrap_or("eof")),
    }
}

/// Resolves once the server is stopping (holding no guard across an await).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Writes lines, each with its newline; false if the client is gone or does not read.
async fn write<W: AsyncWrite + Unpin>(wr: &mut BufWriter<W>, lines: &[String]) -> bool {
    let all = async {
        for l in lines {
            wr.write_all(l.as_bytes()).await?;
            if !l.ends_with('\n') {
                wr.write_all(b"\n").await?;
            }
        }
        wr.flush().await
    };
    matches!(tokio::time::timeout(WRITE_TIMEOUT, all).await, Ok(Ok(())))
}

/// Pushes an event from the channel (or, when this connection fell behind, the events it
/// missed, asked of the cluster).
async fn deliver(
    front: &Front,
    c: &mut Conn,
    got: Result<Numbered, broadcast::error::RecvError>,
    out: &mut Vec<String>,
) {
    match got {
        Ok(e) => {
            if e.0 > c.cursor {
                c.cursor = e.0;
                out.push(event_line(e.0, &e.1));
            }
        }
        Err(broadcast::error::RecvError::Lagged(_)) => {
            c.events = c.events.resubscribe();
            if catch_up(front, c, c.cursor, out).await.is_err() {
                // Not a reply to anything: the member is told what it missed, and asks.
                out.push(format!("GAP after={}", c.cursor));
            }
        }
        Err(broadcast::error::RecvError::Closed) => c.session = None,
    }
}

/// The events after `after`, from the cluster, as lines in `out`; returns how many and
/// whether some were no longer kept.
async fn catch_up(
    front: &Front,
    c: &mut Conn,
    after: u64,
    out: &mut Vec<String>,
) -> Result<(usize, bool), Reply> {
    let q = BoardQuery::Events { after };
    let op = match c.session {
        Some((sid, _)) => as_member(sid, q),
        None => Op::Query(q),
    };
    match ask(front, op).await? {
        (BoardOut::Events { events, gap }, _) => {
            if gap {
                out.push(format!("GAP after={after}"));
            }
            for (n, e) in &events {
                out.push(event_line(*n, e));
                c.cursor = c.cursor.max(*n);
            }
            Ok((events.len(), gap))
        }
        (other, _) => Err(refused(other)),
    }
}

/// An option's letter: A for 0.
fn letter(i: u32) -> String {
    char::from(b'A' + (i as u8 % 26)).to_string()
}

fn event_line(n: u64, e: &Event) -> String {
    match e {
        Event::Join { pin, name } => format!("EVENT {n} JOIN {pin} {name}"),
        Event::Leave { pin } => format!("EVENT {n} LEAVE {pin}"),
        Event::Fail { pin } => format!("EVENT {n} FAIL {pin}"),
        Event::Question { id, by, text, options } => {
            format!("EVENT {n} QUESTION {id} by={by} {}", json!({ "text": text, "options": options }))
        }
        Event::Consensus { id, option, votes, members } => {
            format!("EVENT {n} CONSENSUS {id} option={} votes={votes} members={members}", letter(*option))
        }
        Event::Closed { id } => format!("EVENT {n} CLOSED {id}"),
    }
}

/// A query of a session's: answered only while the session is live.
fn as_member(sid: Sid, query: BoardQuery) -> Op<Board> {
    Op::Query(BoardQuery::As { sid, query: Box::new(query) })
}

/// Runs an operation on the cluster: its answer and the latest event published with it.
async fn ask(front: &Front, op: Op<Board>) -> Result<(BoardOut, u64), Reply> {
    let (tx, rx): (Answer, _) = oneshot::channel();
    let call: LocalCall<VoteNode> = Box::new(move |node, ctx| node.submit(ctx, vec![(op, tx)]));
    if front.calls.send(call).is_err() {
        return Err(Reply::err("unavailable", "the server is stopping"));
    }
    match tokio::time::timeout(front.timeout, rx).await {
        Ok(Ok(got)) => Ok(got),
        Ok(Err(_)) => Err(Reply::err("unavailable", "the server stopped; the command may have taken effect")),
        Err(_) => Err(Reply::err(
            "unavailable",
            format!(
                "no answer from the cluster within {} ms (no leader reachable?); the command may still take effect",
                front.timeout.as_millis()
            ),
        )),
    }
}

/// `BOARD` (administrators): this server's own reading of its board, taken as a step of the
/// server (not through the log, so it may trail the leader's by the entries not yet applied
/// here; `applied` says how far it is): its replica's role, the members online, the
/// accounts, and the latest questions with their votes.
async fn board(front: &Front) -> Reply {
    let (tx, rx) = oneshot::channel();
    let call: LocalCall<VoteNode> = Box::new(move |node: &mut VoteNode, _ctx| {
        let _ = tx.send(node.glance(BOARD_QUESTIONS));
    });
    if front.calls.send(call).is_err() {
        return Reply::err("unavailable", "the server is stopping");
    }
    match tokio::time::timeout(front.timeout, rx).await {
        Ok(Ok(g)) => Reply::ok(format!("OK BOARD {}", glance_json(front.me, &g))),
        _ => Reply::err("unavailable", "the server did not answer in time"),
    }
}

/// The latest questions `BOARD` shows.
pub(super) const BOARD_QUESTIONS: usize = 10;

/// A server's reading of its board, as `BOARD` answers it and the live page shows it.
pub(super) fn glance_json(me: NodeId, g: &Glance) -> serde_json::Value {
    let s = &g.status;
    json!({
        "server": me.0,
        "role": format!("{:?}", s.role).to_lowercase(),
        "term": s.term,
        "leader": s.leader.map(|l| l.0),
        "commit": s.commit,
        "applied": s.applied,
        "members": s.members,
        "last_event": s.last_event,
        "accounts": g.accounts,
        "questions": g.questions,
        "latest": g.latest.iter().map(stats_json).collect::<Vec<_>>(),
    })
}

/// A refusal of the service, or an answer this command does not expect.
fn refused(out: BoardOut) -> Reply {
    match out {
        BoardOut::Err(e) => Reply::err(e.word(), "refused by the service"),
        other => {
            // Only the kind: an answer may hold a password hash, which no log line shows.
            let kind = format!("{other:?}");
            warn!("unexpected answer of kind {}", kind.split(['(', ' ', '{']).next().unwrap_or(""));
            Reply::err("unavailable", "unexpected answer from the service")
        }
    }
}

/// Whether the token bucket lets a command through now.
fn allowed(c: &mut Conn) -> bool {
    let now = Instant::now();
    c.tokens = (c.tokens + now.duration_since(c.refilled).as_secs_f64() * RATE_PER_S).min(BURST);
    c.refilled = now;
    if c.tokens >= BURST {
        // Quiet long enough to fill the bucket: past refusals are forgiven.
        c.slow_downs = 0;
    }
    if c.tokens >= 1.0 {
        c.tokens -= 1.0;
        true
    } else {
        c.slow_downs += 1;
        false
    }
}

async fn command(front: &Front, c: &mut Conn, line: Result<String, LineError>) -> Reply {
    if !allowed(c) {
        if c.slow_downs > MAX_SLOW_DOWNS {
            return Reply {
                lines: vec![],
                after: After::Close("flood", "too many commands too fast".into()),
            };
        }
        return Reply::err("slow-down", "too many commands too fast; this one was not run");
    }
    let reply = match line {
        Err(LineError::TooLong) => Reply::err("too-long", format!("a line is at most {MAX_LINE} bytes")),
        Err(LineError::NotUtf8) => Reply::err("invalid-utf8", "a line must be UTF-8"),
        Ok(line) if line.trim().is_empty() => return Reply { lines: vec![], after: After::Stay },
        Ok(line) => run(front, c, line.trim()).await,
    };
    if c.session.is_some() && reply.lines.iter().any(|l| l.starts_with("ERR no-session")) {
        // Expired, or replaced by another login: this connection speaks for no one now.
        c.session = None;
    }
    let refused = reply.lines.iter().any(|l| {
        ["ERR unknown-command", "ERR usage", "ERR too-long", "ERR invalid-utf8"]
            .iter()
            .any(|p| l.starts_with(p))
    });
    c.errors_in_row = if refused { c.errors_in_row + 1 } else { 0 };
    if c.errors_in_row >= MAX_ERRORS_IN_ROW {
        let mut r = reply;
        r.after = After::Close("errors", format!("{MAX_ERRORS_IN_ROW} refused lines in a row"));
        return r;
    }
    reply
}

/// The menu `HELP` prints.
const MENU: &[&str] = &[
    "# agora vote: one command per line; replies are OK ... or ERR <reason> ...",
    "#   LOGIN <name> <password>         log in (REGISTER <invitation> <name> <password> to create an account)",
    "#   SETUP <services> | <capabilities> | <constraints>   declare your node info (comma-separated lists)",
    "#   DISCOVER                        the members online",
    "#   NEGOTIATE yes|no                let the service store your declared info, or not",
    "#   RECEIVE <pin>|all               stored node info",
    "#   OPEN [votes=<n>] <text> | <option> | <option> ...   open a question",
    "#   VOTE [<question>] <option>      vote (option letter or text)",
    "#   STATS [<question>]              votes and percentages",
    "#   EXIT                            log out and close",
    "#   also: PING, RESUME <token> [<after>], EVENTS <after>, LOGOUT, ADMIN <token>, ACCOUNT, INVITE, BOARD",
];

async fn run(front: &Front, c: &mut Conn, line: &str) -> Reply {
    let (word, rest) = line.split_once(' ').map_or((line, ""), |(w, r)| (w, r.trim()));
    let word = word.to_ascii_uppercase();
    let args: Vec<&str> = rest.split_whitespace().collect();
    let needs_session = !matches!(
        word.as_str(),
        "HELP"
            | "PING"
            | "LOGIN"
            | "REGISTER"
            | "RESUME"
            | "ADMIN"
            | "ACCOUNT"
            | "INVITE"
            | "BOARD"
            | "EXIT"
            | "QUIT"
    );
    let sid = match c.session {
        Some((sid, _)) => {
            touch(front, c, sid);
            sid
        }
        None if needs_session && COMMANDS.contains(&word.as_str()) => {
            return Reply::err("not-logged-in", "LOGIN first");
        }
        None => 0,
    };
    match word.as_str() {
        "HELP" => {
            let mut lines: Vec<String> = MENU.iter().map(|s| s.to_string()).collect();
            lines.push("OK HELP".into());
            Reply { lines, after: After::Stay }
        }
        "PING" => Reply::ok("OK PING"),
        "LOGIN" => match args[..] {
            [name, password] => login(front, c, name, password).await,
            _ => Reply::err("usage", "LOGIN <name> <password>"),
        },
        "REGISTER" => match args[..] {
            [invite, name, password] => {
                let cmd = |phc| BoardCmd::Register { invite: token_hash(invite), name: name.into(), phc };
                create(front, name, password, cmd, "REGISTER").await
            }
            _ => Reply::err("usage", "REGISTER <invitation> <name> <password>"),
        },
        "RESUME" => resume(front, c, &args).await,
        "ADMIN" => match (&args[..], front.admin) {
            (&[token], Some(want)) if blake3::hash(token.as_bytes()) == want => {
                c.admin = true;
                Reply::ok("OK ADMIN")
            }
            (&[_], _) => Reply::err("bad-token", "not the administrator token"),
            _ => Reply::err("usage", "ADMIN <token>"),
        },
        "ACCOUNT" if !c.admin => Reply::err("not-admin", "ADMIN <token> first"),
        "ACCOUNT" => match args[..] {
            [name, password] => {
                let cmd = |phc| BoardCmd::CreateAccount { name: name.into(), phc };
                create(front, name, password, cmd, "ACCOUNT").await
            }
            _ => Reply::err("usage", "ACCOUNT <name> <password>"),
        },
        "INVITE" if !c.admin => Reply::err("not-admin", "ADMIN <token> first"),
        "BOARD" if !c.admin => Reply::err("not-admin", "ADMIN <token> first"),
        "BOARD" => match args[..] {
            [] => board(front).await,
            _ => Reply::err("usage", "BOARD"),
        },
        "INVITE" => {
            let token = random_token();
            match ask(front, Op::Command(BoardCmd::Invite { token: token_hash(&token) })).await {
                Ok((BoardOut::Ok, _)) => Reply::ok(format!("OK INVITE token={token}")),
                Ok((out, _)) => refused(out),
                Err(r) => r,
            }
        }
        "SETUP" => match parse_info(rest) {
            Some(info) => match ask(front, Op::Command(BoardCmd::Setup { sid, info })).await {
                Ok((BoardOut::Ok, _)) => Reply {
                    lines: vec![
                        "# May the service store this node info for the other members? NEGOTIATE yes or NEGOTIATE no".into(),
                        "OK SETUP ask=negotiate".into(),
                    ],
                    after: After::Stay,
                },
                Ok((out, _)) => refused(out),
                Err(r) => r,
            },
            None => Reply::err("usage", "SETUP <services> | <capabilities> | <constraints>"),
        },
        "NEGOTIATE" => {
            let allow = match args[..] {
                [a] if a.eq_ignore_ascii_case("yes") => true,
                [a] if a.eq_ignore_ascii_case("no") => false,
                _ => return Reply::err("usage", "NEGOTIATE yes|no"),
            };
            match ask(front, Op::Command(BoardCmd::Negotiate { sid, allow })).await {
                Ok((BoardOut::Ok, _)) => {
                    Reply::ok(format!("OK NEGOTIATE {}", if allow { "stored" } else { "refused" }))
                }
                Ok((out, _)) => refused(out),
                Err(r) => r,
            }
        }
        "RECEIVE" => {
            let pin = match args[..] {
                [a] if a.eq_ignore_ascii_case("all") => None,
                [p] => match p.parse::<Pin>() {
                    Ok(p) => Some(p),
                    Err(_) => return Reply::err("usage", "RECEIVE <pin>|all"),
                },
                _ => return Reply::err("usage", "RECEIVE <pin>|all"),
            };
            match ask(front, as_member(sid, BoardQuery::Receive { pin })).await {
                Ok((BoardOut::Info(items), _)) => {
                    let v: Vec<_> = items
                        .iter()
                        .map(|(pin, i)| {
                            json!({"pin": pin, "services": i.services, "capabilities": i.capabilities, "constraints": i.constraints})
                        })
                        .collect();
                    Reply::ok(format!("OK RECEIVE {}", serde_json::Value::Array(v)))
                }
                Ok((out, _)) => refused(out),
                Err(r) => r,
            }
        }
        "DISCOVER" => match ask(front, as_member(sid, BoardQuery::Discover)).await {
            Ok((BoardOut::Members(ms), _)) => {
                let mut l = format!("OK DISCOVER count={}", ms.len());
                for m in ms {
                    l.push_str(&format!(" {}:{}", m.pin, m.name));
                }
                Reply::ok(l)
            }
            Ok((out, _)) => refused(out),
            Err(r) => r,
        },
        "OPEN" => match parse_open(rest) {
            Some((text, options, closing)) => {
                match ask(front, Op::Command(BoardCmd::Open { sid, text, options, closing })).await {
                    Ok((BoardOut::Opened { id }, _)) => Reply::ok(format!("OK OPEN question={id}")),
                    Ok((out, _)) => refused(out),
                    Err(r) => r,
                }
            }
            None => Reply::err("usage", "OPEN [votes=<n>] <text> | <option> | <option> ..."),
        },
        "VOTE" => vote(front, sid, rest).await,
        "STATS" => {
            let question = match args[..] {
                [] => None,
                [q] => match q.parse::<QuestionId>() {
                    Ok(q) => Some(q),
                    Err(_) => return Reply::err("usage", "STATS [<question>]"),
                },
                _ => return Reply::err("usage", "STATS [<question>]"),
            };
            match ask(front, as_member(sid, BoardQuery::Stats { question })).await {
                Ok((BoardOut::Stats(s), _)) => Reply::ok(format!("OK STATS {}", stats_json(&s))),
                Ok((out, _)) => refused(out),
                Err(r) => r,
            }
        }
        "EVENTS" => match args[..] {
            [a] => match a.parse::<u64>() {
                Ok(after) => {
                    let mut pushed = Vec::new();
                    match catch_up(front, c, after, &mut pushed).await {
                        Ok((n, gap)) => {
                            let mut lines = vec![format!("OK EVENTS count={n} gap={}", yes(gap))];
                            lines.extend(pushed);
                            Reply { lines, after: After::Stay }
                        }
                        Err(r) => r,
                    }
                }
                Err(_) => Reply::err("usage", "EVENTS <after>"),
            },
            _ => Reply::err("usage", "EVENTS <after>"),
        },
        "LOGOUT" => match logout(front, c, sid).await {
            Ok(()) => Reply::ok("OK LOGOUT"),
            Err(r) => r,
        },
        "EXIT" | "QUIT" => {
            if c.session.is_some() {
                if let Err(r) = logout(front, c, sid).await {
                    return r;
                }
            }
            Reply { lines: vec![format!("OK {word}")], after: After::Close("exit", "goodbye".into()) }
        }
        _ => Reply::err("unknown-command", "HELP lists the commands"),
    }
}

/// Every command word (for `not-logged-in` versus `unknown-command`).
const COMMANDS: &[&str] = &[
    "HELP",
    "PING",
    "LOGIN",
    "REGISTER",
    "RESUME",
    "ADMIN",
    "ACCOUNT",
    "INVITE",
    "BOARD",
    "SETUP",
    "NEGOTIATE",
    "RECEIVE",
    "DISCOVER",
    "OPEN",
    "VOTE",
    "STATS",
    "EVENTS",
    "LOGOUT",
    "EXIT",
    "QUIT",
];

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// Records a sign of life of `sid`, at most every `touch_every` per connection.
fn touch(front: &Front, c: &mut Conn, sid: Sid) {
    let now = Instant::now();
    if c.last_touch.is_some_and(|t| now.duration_since(t) < front.touch_every) {
        return;
    }
    c.last_touch = Some(now);
    let _ = front.calls.send(Box::new(move |node, _ctx| node.touch(&[sid])));
}

async fn logout(front: &Front, c: &mut Conn, sid: Sid) -> Result<(), Reply> {
    match ask(front, Op::Command(BoardCmd::Logout { sid })).await {
        Ok((BoardOut::Ok, _)) => {
            c.session = None;
            Ok(())
        }
        Ok((out, _)) => {
            // Expired or replaced meanwhile: this connection has no session either way.
            c.session = None;
            Err(refused(out))
        }
        Err(r) => Err(r),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh random token: 32 bytes from the OS, in hex.
fn random_token() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the OS gives random bytes");
    hex(&b)
}

/// A fresh random salt of 16 bytes.
fn new_salt() -> Option<SaltString> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).ok()?;
    SaltString::encode_b64(&b).ok()
}

/// Hashes a password with argon2id and a fresh salt, on a hashing thread.
async fn hash_password(front: &Front, password: String) -> Result<Option<String>, Busy> {
    front
        .kdf
        .run(move || {
            let salt = new_salt()?;
            Argon2::default().hash_password(password.as_bytes(), &salt).ok().map(|h| h.to_string())
        })
        .await
}

/// Verifies a password against a PHC string (or against a dummy hash, for an unknown name,
/// so both take the same work), on a hashing thread.
async fn verify_password(front: &Front, password: String, phc: Option<String>) -> Result<bool, Busy> {
    front
        .kdf
        .run(move || {
            let known = phc.is_some();
            let phc = phc.unwrap_or_else(|| dummy_phc().to_string());
            let ok = PasswordHash::new(&phc)
                .map(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
                .unwrap_or(false);
            ok && known
        })
        .await
}

/// The reply to a command refused because the hashing queue is full.
fn kdf_busy() -> Reply {
    Reply::err("busy", format!("{KDF_QUEUE} passwords are waiting to be checked here; try again shortly"))
}

/// A hash no password is checked against successfully (its password is random and dropped).
fn dummy_phc() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let Some(salt) = new_salt() else { return String::new() };
        Argon2::default()
            .hash_password(random_token().as_bytes(), &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

fn password_ok(p: &str) -> bool {
    !p.is_empty() && p.len() <= MAX_PASSWORD
}

/// Creates an account (`ACCOUNT` or `REGISTER`): hashes the password, then runs `cmd`.
async fn create(
    front: &Front,
    name: &str,
    password: &str,
    cmd: impl FnOnce(String) -> BoardCmd,
    word: &str,
) -> Reply {
    if !password_ok(password) {
        return Reply::err("invalid", "a password is 1 to 1024 bytes");
    }
    if name.len() > MAX_NAME {
        return Reply::err("invalid", "a name is 1 to 32 of A-Z a-z 0-9 _ - .");
    }
    let phc = match hash_password(front, password.to_string()).await {
        Ok(Some(phc)) => phc,
        Ok(None) => return Reply::err("unavailable", "cannot hash the password"),
        Err(Busy) => return kdf_busy(),
    };
    match ask(front, Op::Command(cmd(phc))).await {
        Ok((BoardOut::Created { pin }, _)) => Reply::ok(format!("OK {word} pin={pin}")),
        Ok((out, _)) => refused(out),
        Err(r) => r,
    }
}

/// The delay before a login after `n` failures.
fn login_delay(n: u32) -> Duration {
    if n == 0 {
        return Duration::ZERO;
    }
    LOGIN_DELAY.saturating_mul(1 << (n - 1).min(16)).min(LOGIN_DELAY_MAX)
}

fn account_failures(front: &Front, name: &str) -> u32 {
    let map = front.failures.lock().expect("not poisoned");
    map.get(name).filter(|(_, at)| at.elapsed() < LOGIN_MEMORY).map_or(0, |(n, _)| *n)
}

fn record_failure(front: &Front, name: &str, failed: bool) {
    if name.len() > MAX_NAME {
        // No account has such a name: the connection's own count slows it down.
        return;
    }
    let mut map = front.failures.lock().expect("not poisoned");
    if !failed {
        map.remove(name);
        return;
    }
    if map.len() >= FAILURES_KEPT {
        map.retain(|_, (_, at)| at.elapsed() < LOGIN_MEMORY);
        if map.len() >= FAILURES_KEPT {
            map.clear();
        }
    }
    let e = map.entry(name.to_string()).or_insert((0, Instant::now()));
    e.0 = e.0.saturating_add(1);
    e.1 = Instant::now();
}

async fn login(front: &Front, c: &mut Conn, name: &str, password: &str) -> Reply {
    if c.session.is_some() {
        return Reply::err("logged-in", "LOGOUT first");
    }
    let failures = c.failed_logins.max(account_failures(front, name));
    tokio::time::sleep(login_delay(failures)).await;
    let phc = match ask(front, Op::Query(BoardQuery::Account { name: name.into() })).await {
        Ok((BoardOut::Account(a), _)) => Some(a.phc),
        Ok(_) => None,
        Err(r) => return r,
    };
    let verified = password_ok(password) && {
        match verify_password(front, password.to_string(), phc).await {
            Ok(ok) => ok,
            Err(Busy) => return kdf_busy(),
        }
    };
    if !verified {
        c.failed_logins = c.failed_logins.saturating_add(1);
        record_failure(front, name, true);
        info!("vote {}: connection {} from {}: failed login", front.me, c.id, c.peer);
        return Reply::err("bad-login", "wrong name or password");
    }
    record_failure(front, name, false);
    c.failed_logins = 0;
    let token = random_token();
    c.events = front.events.subscribe();
    match ask(front, Op::Command(BoardCmd::Login { name: name.into(), token: token_hash(&token) })).await {
        Ok((BoardOut::Session { sid, pin, .. }, last)) => {
            c.session = Some((sid, pin));
            c.cursor = last;
            c.last_touch = Some(Instant::now());
            Reply::ok(format!("OK LOGIN pin={pin} token={token} events={last}"))
        }
        Ok((out, _)) => refused(out),
        Err(r) => r,
    }
}

async fn resume(front: &Front, c: &mut Conn, args: &[&str]) -> Reply {
    let (token, after) = match args {
        [t] => (*t, None),
        [t, a] => match a.parse::<u64>() {
            Ok(a) => (*t, Some(a)),
            Err(_) => return Reply::err("usage", "RESUME <token> [<after>]"),
        },
        _ => return Reply::err("usage", "RESUME <token> [<after>]"),
    };
    if c.session.is_some() {
        return Reply::err("logged-in", "LOGOUT first");
    }
    c.events = front.events.subscribe();
    let (sid, pin, name, last) =
        match ask(front, Op::Query(BoardQuery::Token { token: token_hash(token) })).await {
            Ok((BoardOut::Session { sid, pin, name }, last)) => (sid, pin, name, last),
            Ok((out, _)) => return refused(out),
            Err(r) => return r,
        };
    c.session = Some((sid, pin));
    c.cursor = last;
    c.last_touch = None;
    touch(front, c, sid);
    let mut lines = vec![format!("OK RESUME pin={pin} name={name} events={last}")];
    if let Some(after) = after {
        let mut pushed = Vec::new();
        c.cursor = after;
        let caught = catch_up(front, c, after, &mut pushed).await;
        c.cursor = c.cursor.max(last);
        if let Err(r) = caught {
            c.session = None;
            return r;
        }
        lines.extend(pushed);
    }
    Reply { lines, after: After::Stay }
}

/// `SETUP a, b | c | d`: three comma-separated lists.
fn parse_info(rest: &str) -> Option<NodeInfo> {
    let parts: Vec<&str> = rest.split('|').collect();
    let [s, c, k] = parts[..] else { return None };
    let list = |p: &str| p.split(',').map(str::trim).filter(|i| !i.is_empty()).map(String::from).collect();
    Some(NodeInfo { services: list(s), capabilities: list(c), constraints: list(k) })
}

/// `OPEN [votes=N] text | a | b ...`.
fn parse_open(rest: &str) -> Option<(String, Vec<String>, Closing)> {
    let (closing, rest) = match rest.strip_prefix("votes=") {
        Some(r) => {
            let (n, r) = r.split_once(' ')?;
            (Closing::Votes(n.parse().ok()?), r)
        }
        None => (Closing::Consensus, rest),
    };
    let mut parts = rest.split('|').map(str::trim);
    let text = parts.next()?.to_string();
    let options: Vec<String> = parts.map(String::from).collect();
    Some((text, options, closing))
}

/// `VOTE [question] option`: resolves the latest question and an option given by its text
/// with a `STATS` query first.
async fn vote(front: &Front, sid: Sid, rest: &str) -> Reply {
    const USAGE: &str = "VOTE [<question>] <option>";
    if rest.is_empty() {
        return Reply::err("usage", USAGE);
    }
    let (question, option) = match rest.split_once(' ') {
        Some((q, o)) if q.parse::<QuestionId>().is_ok() => (q.parse().ok(), o.trim()),
        _ => (None, rest),
    };
    let letter_of = |o: &str| {
        let b = o.as_bytes();
        (b.len() == 1 && b[0].is_ascii_alphabetic()).then(|| u32::from(b[0].to_ascii_uppercase() - b'A'))
    };
    let (question, index) = match (question, letter_of(option)) {
        (Some(q), Some(i)) => (q, i),
        _ => match ask(front, as_member(sid, BoardQuery::Stats { question })).await {
            Ok((BoardOut::Stats(s), _)) => {
                let by_text = s.counts.iter().position(|(t, _)| t == option).map(|i| i as u32);
                match by_text.or_else(|| letter_of(option)) {
                    Some(i) => (s.id, i),
                    None => return Reply::err("no-option", "no such option"),
                }
            }
            Ok((out, _)) => return refused(out),
            Err(r) => return r,
        },
    };
    match ask(front, Op::Command(BoardCmd::Vote { sid, question, option: index })).await {
        Ok((BoardOut::Voted { again, consensus }, _)) => Reply::ok(format!(
            "OK VOTE question={question} option={} again={} consensus={}",
            letter(index),
            yes(again),
            consensus.map_or("-".to_string(), letter)
        )),
        Ok((out, _)) => refused(out),
        Err(r) => r,
    }
}

pub(super) fn stats_json(s: &Stats) -> serde_json::Value {
    let total: u32 = s.counts.iter().map(|(_, n)| n).sum();
    let options: Vec<_> = s
        .counts
        .iter()
        .enumerate()
        .map(|(i, (text, n))| {
            let percent = if total == 0 { 0.0 } else { f64::from(*n) * 100.0 / f64::from(total) };
            json!({"option": letter(i as u32), "text": text, "votes": n, "percent": (percent * 10.0).round() / 10.0})
        })
        .collect();
    json!({
        "question": s.id,
        "text": s.text,
        "options": options,
        "votes": total,
        "members": s.members,
        "consensus": s.consensus.map(letter),
        "closed": s.closed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_and_open_lines_parse() {
        let i = parse_info("print, scan | colour |").unwrap();
        assert_eq!(i.services, vec!["print", "scan"]);
        assert_eq!(i.capabilities, vec!["colour"]);
        assert!(i.constraints.is_empty());
        assert!(parse_info("only one part").is_none());
        let (t, o, c) = parse_open("votes=3 tea or coffee? | tea | coffee").unwrap();
        assert_eq!((t.as_str(), o.len(), c), ("tea or coffee?", 2, Closing::Votes(3)));
        let (_, _, c) = parse_open("x | a | b").unwrap();
        assert_eq!(c, Closing::Consensus);
        assert!(parse_open("votes=x y | a | b").is_none());
    }

    #[test]
    fn login_delays_double_and_are_capped() {
        assert_eq!(login_delay(0), Duration::ZERO);
        assert_eq!(login_delay(1), LOGIN_DELAY);
        assert_eq!(login_delay(3), LOGIN_DELAY * 4);
        assert_eq!(login_delay(40), LOGIN_DELAY_MAX);
    }

    #[tokio::test]
    async fn lines_are_bounded_and_a_long_one_is_skipped_whole() {
        let mut input = b"PING\r\n".to_vec();
        input.extend(vec![b'x'; MAX_LINE * 3]);
        input.extend(b"\nSTATS\n\xff\xfe\n".iter());
        let mut l = Lines::new(&input[..]);
        assert_eq!(l.next().await.unwrap().ok().as_deref(), Some("PING"));
        assert!(matches!(l.next().await, Some(Err(LineError::TooLong))));
        assert_eq!(l.next().await.unwrap().ok().as_deref(), Some("STATS"));
        assert!(matches!(l.next().await, Some(Err(LineError::NotUtf8))));
        assert!(l.next().await.is_none());
    }
}
