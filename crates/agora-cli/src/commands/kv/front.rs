//! The RESP front end of one replica: accepts connections, parses pipelined commands, hands
//! what needs the cluster to the node as one local call per read from the socket, and writes
//! the replies back in each connection's order.

use super::history::{text, History, Open};
use super::node::{Answer, KvNode, Status};
use crate::resp::{self, Limits, Reply};
use agora_core::NodeId;
use agora_lincheck::history::Kind;
use agora_net::LocalCall;
use agora_protocols::raft::strings::{parse_int, SetIf, StrCmd, StrOut, StrQuery, NOT_AN_INTEGER};
use agora_protocols::raft::{Op, Role};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tracing::{debug, warn};

/// Replies waiting per connection, written or not: past it the connection is not read.
const MAX_QUEUED_REPLIES: usize = 1024;
/// Bytes of replies gathered into one write.
const WRITE_BATCH: usize = 64 * 1024;

/// What every connection of one replica's front end shares.
pub struct Front {
    /// The replica.
    pub me: NodeId,
    /// Its node's local calls.
    pub calls: mpsc::UnboundedSender<LocalCall<KvNode>>,
    /// The parser's limits.
    pub limits: Limits,
    /// A command not answered within this time is answered with an error (it may still take
    /// effect: `info` in the history).
    pub timeout: Duration,
    /// Connections served at once, at most.
    pub max_clients: usize,
    /// Where the history goes, if anywhere.
    pub history: Option<Arc<History>>,
    /// The RESP address of every replica, as the cluster file gives it (for INFO and ROLE).
    pub resp_shown: Vec<String>,
    /// The port this replica serves RESP on (INFO's `tcp_port`).
    pub port: u16,
    /// Connections accepted so far (their ids).
    pub accepted: AtomicU64,
}

/// Serves RESP on `listener` until `stop` is set, which also closes every connection.
pub async fn serve(listener: TcpListener, front: Arc<Front>, mut stop: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(front.max_clients));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                warn!("kv {}: accept failed: {e}", front.me);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            let mut stream = stream;
            let _ = stream.write_all(b"-ERR max number of clients reached\r\n").await;
            continue;
        };
        let front = front.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            connection(stream, peer, front, stop).await;
            drop(permit);
        });
    }
}

/// How an answer becomes a reply.
#[derive(Clone, Copy, Debug)]
enum Shape {
    /// As the store said.
    Plain,
    /// `SETNX`: `OK` is 1, nil is 0.
    Flag,
}

/// What the history records of a completed command.
#[derive(Debug)]
enum Recorded {
    /// A read of one key: its value is the read's.
    Get(Open),
    /// Reads of several keys, in order (MGET).
    Gets(Vec<Open>),
    /// Writes that take effect unless the answer is an error (SET, DEL, APPEND, MSET).
    Writes(Vec<Open>),
    /// A conditional write: `ok` if it took effect (OK, 1), `fail` if not (nil, 0).
    Conditional(Open),
}

/// A reply in a connection's queue.
enum Pending {
    /// Known already.
    Now(Reply),
    /// The store's answer, to come.
    Store {
        rx: oneshot::Receiver<StrOut>,
        shape: Shape,
        deadline: Instant,
        write: bool,
        hist: Option<Recorded>,
    },
    /// The replica's status, to come (INFO, ROLE).
    Status { rx: oneshot::Receiver<Status>, info: bool, section: Option<String> },
    /// Reply, then close the connection (QUIT, a protocol error).
    Close(Reply),
}

/// Work for the node from one read of a connection.
enum Job {
    Submit(Op<agora_protocols::raft::strings::Strings>, usize, Answer),
    Local(StrQuery, Answer),
    Status(oneshot::Sender<Status>),
}

/// What one connection keeps between commands.
struct Conn {
    id: u64,
    peer: SocketAddr,
    /// READONLY: reads answered from this replica's state at once.
    stale: bool,
    name: Option<Vec<u8>>,
    /// Writes of this connection not yet answered: a read behind one goes through the log.
    writes_open: Arc<AtomicUsize>,
}

async fn connection(stream: TcpStream, peer: SocketAddr, front: Arc<Front>, mut stop: watch::Receiver<bool>) {
    let id = front.accepted.fetch_add(1, Ordering::Relaxed);
    debug!("kv {}: connection {id} from {peer}", front.me);
    let (mut rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::channel::<Pending>(MAX_QUEUED_REPLIES);
    let mut c = Conn { id, peer, stale: false, name: None, writes_open: Arc::new(AtomicUsize::new(0)) };
    let writer = tokio::spawn(write_replies(wr, rx, front.clone(), c.writes_open.clone()));
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut start = 0;
    'conn: loop {
        if buf.len() - start > front.limits.max_pending {
            warn!(
                "kv {}: connection {id} from {peer}: more than {} bytes pending; closed",
                front.me, front.limits.max_pending
            );
            let e = resp::ProtocolError("too much pending data".into());
            let _ = tx.send(Pending::Close(Reply::err(e))).await;
            break;
        }
        if start > 0 && (start == buf.len() || start > buf.capacity() / 2) {
            buf.drain(..start);
            start = 0;
        }
        // At most a chunk per read: what is buffered stays within the limit plus one chunk.
        let read = tokio::select! {
            r = rd.read(&mut chunk) => r,
            _ = stop.wait_for(|s| *s) => break,
        };
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        let mut jobs = Vec::new();
        let mut replies = Vec::new();
        loop {
            match resp::parse(&buf[start..], &front.limits) {
                Ok(Some((args, used))) => {
                    start += used;
                    if args.is_empty() {
                        continue;
                    }
                    let p = command(&front, &mut c, args, &mut jobs);
                    let close = matches!(p, Pending::Close(_));
                    replies.push(p);
                    if close {
                        submit(&front, id, jobs, !replies.is_empty());
                        for p in replies {
                            let _ = tx.send(p).await;
                        }
                        break 'conn;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    warn!("kv {}: connection {id} from {peer}: {e}; closed", front.me);
                    submit(&front, id, jobs, !replies.is_empty());
                    for p in replies {
                        let _ = tx.send(p).await;
                    }
                    let _ = tx.send(Pending::Close(Reply::err(e))).await;
                    break 'conn;
                }
            }
        }
        submit(&front, id, jobs, !replies.is_empty());
        for p in replies {
            if tx.send(p).await.is_err() {
                break 'conn;
            }
        }
    }
    drop(tx);
    // No batch of the node waits for this connection any more.
    let _ = front.calls.send(Box::new(move |node, ctx| node.closed(ctx, id)));
    let _ = writer.await;
    debug!("kv {}: connection {id} from {} closed", front.me, c.peer);
}

/// Hands one read's jobs to the node as one local call. With no job for the node, it is
/// still told that the connection is back if it sent a command (`back`): a batch may wait
/// for it (`KvNode::submit`).
fn submit(front: &Front, conn: u64, jobs: Vec<Job>, back: bool) {
    if jobs.is_empty() && !back {
        return;
    }
    let me = front.me;
    let call: LocalCall<KvNode> = Box::new(move |node, ctx| {
        let mut ops = Vec::new();
        for j in jobs {
            match j {
                Job::Submit(op, size, answer) => ops.push((op, size, answer)),
                Job::Local(q, answer) => {
                    let _ = answer.send(node.read_local(&q));
                }
                Job::Status(answer) => {
                    let _ = answer.send(node.status(me));
                }
            }
        }
        node.submit(ctx, conn, ops);
    });
    // Fails only once the node has stopped: the answers' senders are dropped with the call,
    // and every waiting reply says so.
    let _ = front.calls.send(call);
}

/// Writes each reply in the connection's order, waiting for the store's; records completions.
async fn write_replies(
    mut wr: tokio::net::tcp::OwnedWriteHalf,
    mut rx: mpsc::Receiver<Pending>,
    front: Arc<Front>,
    writes_open: Arc<AtomicUsize>,
) {
    let mut out = Vec::with_capacity(WRITE_BATCH);
    // Once the client is gone, the replies are still awaited: for the history.
    let mut broken = false;
    while let Some(p) = rx.recv().await {
        let mut close = false;
        let reply = match p {
            Pending::Now(r) => r,
            Pending::Close(r) => {
                close = true;
                r
            }
            Pending::Store { rx: answer, shape, deadline, write, hist } => {
                let got = tokio::time::timeout_at(deadline.into(), answer).await;
                if write {
                    writes_open.fetch_sub(1, Ordering::AcqRel);
                }
                match got {
                    Ok(Ok(out)) => {
                        if let (Some(h), Some(r)) = (&front.history, &hist) {
                            record(h, r, Some(&out));
                        }
                        shaped(out, shape)
                    }
                    Ok(Err(_)) => {
                        if let (Some(h), Some(r)) = (&front.history, &hist) {
                            record(h, r, None);
                        }
                        Reply::err(
                            "the replica stopped before the command completed; it may have taken effect",
                        )
                    }
                    Err(_) => {
                        if let (Some(h), Some(r)) = (&front.history, &hist) {
                            record(h, r, None);
                        }
                        Reply::Error(format!(
                            "TRYAGAIN no answer from the cluster within {} ms (no leader reachable?); \
                             the command may still take effect",
                            front.timeout.as_millis()
                        ))
                    }
                }
            }
            Pending::Status { rx, info, section } => match rx.await {
                Ok(s) if info => info_reply(&front, &s, section.as_deref()),
                Ok(s) => role_reply(&front, &s),
                Err(_) => Reply::err("the replica stopped"),
            },
        };
        if broken {
            continue;
        }
        reply.encode(&mut out);
        if close || out.len() >= WRITE_BATCH || rx.is_empty() {
            if wr.write_all(&out).await.is_err() {
                broken = true;
            }
            out.clear();
        }
        if close {
            let _ = wr.shutdown().await;
            broken = true;
        }
    }
    if !broken && !out.is_empty() {
        let _ = wr.write_all(&out).await;
    }
}

fn shaped(out: StrOut, shape: Shape) -> Reply {
    match (out, shape) {
        (StrOut::Ok, Shape::Flag) => Reply::Int(1),
        (StrOut::Nil, Shape::Flag) => Reply::Int(0),
        (StrOut::Ok, _) => Reply::ok(),
        (StrOut::Nil, _) => Reply::Nil,
        (StrOut::Int(n), _) => Reply::Int(n),
        (StrOut::Bulk(b), _) => Reply::Bulk(b),
        (StrOut::Multi(items), _) => {
            Reply::Array(items.into_iter().map(|i| i.map_or(Reply::Nil, Reply::Bulk)).collect())
        }
        (StrOut::Err(e), _) => Reply::Error(e),
    }
}

fn json_bytes(b: &Option<Vec<u8>>) -> Value {
    b.as_ref().map_or(Value::Null, |b| Value::String(text(b)))
}

/// Records the completion of `r`; `out` is `None` when the outcome is unknown.
fn record(h: &History, r: &Recorded, out: Option<&StrOut>) {
    let Some(out) = out else {
        for o in opens(r) {
            h.complete(o, Kind::Info, None);
        }
        return;
    };
    if let StrOut::Err(_) = out {
        for o in opens(r) {
            h.complete(o, Kind::Fail, None);
        }
        return;
    }
    match (r, out) {
        (Recorded::Get(o), StrOut::Bulk(b)) => h.complete(o, Kind::Ok, Some(json_bytes(&Some(b.clone())))),
        (Recorded::Get(o), _) => h.complete(o, Kind::Ok, Some(Value::Null)),
        (Recorded::Gets(os), StrOut::Multi(vals)) => {
            for (o, v) in os.iter().zip(vals) {
                h.complete(o, Kind::Ok, Some(json_bytes(v)));
            }
        }
        (Recorded::Gets(os), _) => os.iter().for_each(|o| h.complete(o, Kind::Info, None)),
        (Recorded::Writes(os), _) => os.iter().for_each(|o| h.complete(o, Kind::Ok, None)),
        (Recorded::Conditional(o), StrOut::Ok | StrOut::Int(1)) => h.complete(o, Kind::Ok, None),
        (Recorded::Conditional(o), _) => h.complete(o, Kind::Fail, None),
    }
}

fn opens(r: &Recorded) -> Vec<&Open> {
    match r {
        Recorded::Get(o) | Recorded::Conditional(o) => vec![o],
        Recorded::Gets(os) | Recorded::Writes(os) => os.iter().collect(),
    }
}

fn upper(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_ascii_uppercase()
}

fn wrong_args(name: &str) -> Reply {
    Reply::err(format!("wrong number of arguments for '{}' command", name.to_ascii_lowercase()))
}

/// Redis's answer to a command it does not know.
fn unknown(args: &[Vec<u8>]) -> Reply {
    let mut msg = format!("unknown command '{}', with args beginning with: ", text(&args[0]));
    for a in args.iter().skip(1).take(8) {
        msg.push_str(&format!("'{}' ", text(a)));
    }
    Reply::err(msg)
}

/// The range of arities a command accepts (the name counted), and whether it reads/writes
/// the store.
fn arity_ok(n: usize, min: usize, max: Option<usize>) -> bool {
    n >= min && max.is_none_or(|m| n <= m)
}

/// One command: its reply now, or the store's answer to come (with `jobs` to send).
fn command(front: &Front, c: &mut Conn, args: Vec<Vec<u8>>, jobs: &mut Vec<Job>) -> Pending {
    let name = upper(&args[0]);
    let n = args.len();
    let now = |r: Reply| Pending::Now(r);
    let hist = front.history.as_deref();
    macro_rules! arity {
        ($min:expr, $max:expr) => {
            if !arity_ok(n, $min, $max) {
                return now(wrong_args(&name));
            }
        };
    }
    match name.as_str() {
        // ----- connection -----
        "PING" => {
            arity!(1, Some(2));
            now(if n == 2 { Reply::Bulk(args[1].clone()) } else { Reply::Simple("PONG".into()) })
        }
        "ECHO" => {
            arity!(2, Some(2));
            now(Reply::Bulk(args[1].clone()))
        }
        "QUIT" => Pending::Close(Reply::ok()),
        "SELECT" => {
            arity!(2, Some(2));
            now(match parse_int(&args[1]) {
                Some(0) => Reply::ok(),
                Some(_) => Reply::err("DB index is out of range"),
                None => Reply::err(NOT_AN_INTEGER.trim_start_matches("ERR ")),
            })
        }
        "HELLO" => {
            if n >= 2 {
                match parse_int(&args[1]) {
                    Some(2) => {}
                    Some(3) => return now(Reply::Error("NOPROTO sorry, this protocol version is not supported".into())),
                    _ => return now(Reply::Error("NOPROTO unsupported protocol version".into())),
                }
            }
            let mut i = 2;
            while i < n {
                match upper(&args[i]).as_str() {
                    "SETNAME" if i + 1 < n => {
                        c.name = Some(args[i + 1].clone());
                        i += 2;
                    }
                    "AUTH" if i + 2 < n => i += 3,
                    _ => return now(Reply::err("syntax error")),
                }
            }
            now(Reply::Array(vec![
                Reply::text("server"),
                Reply::text("redis"),
                Reply::text("version"),
                Reply::text(REDIS_VERSION),
                Reply::text("proto"),
                Reply::Int(2),
                Reply::text("id"),
                Reply::Int(c.id as i64),
                Reply::text("mode"),
                Reply::text("standalone"),
                Reply::text("role"),
                Reply::text("master"),
                Reply::text("modules"),
                Reply::Array(vec![]),
            ]))
        }
        "AUTH" => now(Reply::err("AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")),
        "CLIENT" => {
            arity!(2, None);
            now(match upper(&args[1]).as_str() {
                "SETNAME" if n == 3 => {
                    c.name = Some(args[2].clone());
                    Reply::ok()
                }
                "GETNAME" => c.name.clone().map_or(Reply::Nil, Reply::Bulk),
                "ID" => Reply::Int(c.id as i64),
                "SETINFO" | "NO-EVICT" | "NO-TOUCH" | "REPLY" => Reply::ok(),
                "INFO" => Reply::text(format!(
                    "id={} addr={} name={}\n",
                    c.id,
                    c.peer,
                    c.name.as_deref().map(text).unwrap_or_default()
                )),
                _ => Reply::err(format!("unknown subcommand '{}'. Try CLIENT HELP.", text(&args[1]))),
            })
        }
        "COMMAND" => now(match args.get(1).map(|a| upper(a)).as_deref() {
            None | Some("DOCS") | Some("INFO") => Reply::Array(vec![]),
            Some("COUNT") => Reply::Int(COMMANDS.len() as i64),
            Some(_) => Reply::err(format!("unknown subcommand '{}'. Try COMMAND HELP.", text(&args[1]))),
        }),
        "CONFIG" => {
            arity!(2, None);
            now(match upper(&args[1]).as_str() {
                "GET" if n >= 3 => {
                    let mut items = Vec::new();
                    for pat in &args[2..] {
                        for (k, v) in CONFIG {
                            if glob(&pat.to_ascii_lowercase(), k.as_bytes()) {
                                items.push(Reply::text(*k));
                                items.push(Reply::text(*v));
                            }
                        }
                    }
                    Reply::Array(items)
                }
                "SET" | "RESETSTAT" | "REWRITE" => Reply::err("CONFIG SET is not supported by agora kv"),
                _ => Reply::err(format!("unknown subcommand '{}'. Try CONFIG HELP.", text(&args[1]))),
            })
        }
        "READONLY" => {
            c.stale = true;
            now(Reply::ok())
        }
        "READWRITE" => {
            c.stale = false;
            now(Reply::ok())
        }
        "INFO" | "ROLE" => {
            let (tx, rx) = oneshot::channel();
            jobs.push(Job::Status(tx));
            let section = args.get(1).map(|s| text(s).to_ascii_lowercase());
            Pending::Status { rx, info: name == "INFO", section }
        }
        // ----- reads -----
        "GET" => {
            arity!(2, Some(2));
            let h = hist.filter(|_| !c.stale).map(|h| Recorded::Get(h.invoke("get", &args[1], Value::Null)));
            read(front, c, jobs, StrQuery::Get { key: args[1].clone() }, h)
        }
        "STRLEN" => {
            arity!(2, Some(2));
            read(front, c, jobs, StrQuery::StrLen { key: args[1].clone() }, None)
        }
        "MGET" => {
            arity!(2, None);
            let keys: Vec<Vec<u8>> = args[1..].to_vec();
            let h = hist.filter(|_| !c.stale).map(|h| Recorded::Gets(keys.iter().map(|k| h.invoke("get", k, Value::Null)).collect()));
            read(front, c, jobs, StrQuery::MGet { keys }, h)
        }
        "EXISTS" => {
            arity!(2, None);
            read(front, c, jobs, StrQuery::Exists { keys: args[1..].to_vec() }, None)
        }
        "DBSIZE" => {
            arity!(1, Some(1));
            read(front, c, jobs, StrQuery::DbSize, None)
        }
        // ----- writes -----
        "SET" => {
            arity!(3, None);
            let (mut cond, mut get) = (SetIf::Always, false);
            for opt in &args[3..] {
                match upper(opt).as_str() {
                    "NX" if cond == SetIf::Always => cond = SetIf::Absent,
                    "XX" if cond == SetIf::Always => cond = SetIf::Present,
                    "GET" => get = true,
                    "KEEPTTL" => {}
                    "EX" | "PX" | "EXAT" | "PXAT" => {
                        return now(Reply::err("expiry (EX, PX, EXAT, PXAT) is not supported by agora kv"))
                    }
                    _ => return now(Reply::err("syntax error")),
                }
            }
            let (key, value) = (args[1].clone(), args[2].clone());
            let h = hist.filter(|_| !get || cond == SetIf::Always).map(|h| {
                let o = h.invoke("put", &key, Value::String(text(&value)));
                if cond == SetIf::Always {
                    Recorded::Writes(vec![o])
                } else {
                    Recorded::Conditional(o)
                }
            });
            write(front, c, jobs, StrCmd::Set { key, value, cond, get }, Shape::Plain, h)
        }
        "SETNX" => {
            arity!(3, Some(3));
            let (key, value) = (args[1].clone(), args[2].clone());
            let h = hist.map(|h| Recorded::Conditional(h.invoke("put", &key, Value::String(text(&value)))));
            let cmd = StrCmd::Set { key, value, cond: SetIf::Absent, get: false };
            write(front, c, jobs, cmd, Shape::Flag, h)
        }
        "GETSET" => {
            arity!(3, Some(3));
            let cmd = StrCmd::Set { key: args[1].clone(), value: args[2].clone(), cond: SetIf::Always, get: true };
            write(front, c, jobs, cmd, Shape::Plain, None)
        }
        "DEL" | "UNLINK" => {
            arity!(2, None);
            let keys: Vec<Vec<u8>> = args[1..].to_vec();
            let h = hist.map(|h| Recorded::Writes(keys.iter().map(|k| h.invoke("put", k, Value::Null)).collect()));
            write(front, c, jobs, StrCmd::Del { keys }, Shape::Plain, h)
        }
        "INCR" | "DECR" => {
            arity!(2, Some(2));
            let delta = if name == "INCR" { 1 } else { -1 };
            write(front, c, jobs, StrCmd::IncrBy { key: args[1].clone(), delta }, Shape::Plain, None)
        }
        "INCRBY" | "DECRBY" => {
            arity!(3, Some(3));
            let delta = match (parse_int(&args[2]), name.as_str()) {
                (Some(d), "INCRBY") => d,
                (Some(d), _) if d != i64::MIN => -d,
                (Some(_), _) => return now(Reply::err("decrement would overflow")),
                (None, _) => return now(Reply::Error(NOT_AN_INTEGER.into())),
            };
            write(front, c, jobs, StrCmd::IncrBy { key: args[1].clone(), delta }, Shape::Plain, None)
        }
        "APPEND" => {
            arity!(3, Some(3));
            let (key, value) = (args[1].clone(), args[2].clone());
            let h = hist.map(|h| Recorded::Writes(vec![h.invoke("append", &key, Value::String(text(&value)))]));
            write(front, c, jobs, StrCmd::Append { key, value }, Shape::Plain, h)
        }
        "MSET" => {
            if n < 3 || n % 2 == 0 {
                return now(wrong_args(&name));
            }
            let pairs: Vec<(Vec<u8>, Vec<u8>)> = args[1..].chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect();
            let h = hist.map(|h| {
                Recorded::Writes(pairs.iter().map(|(k, v)| h.invoke("put", k, Value::String(text(v)))).collect())
            });
            write(front, c, jobs, StrCmd::MSet { pairs }, Shape::Plain, h)
        }
        "CAS" => {
            arity!(4, Some(4));
            let (key, expected, new) = (args[1].clone(), args[2].clone(), args[3].clone());
            let h = hist.map(|h| {
                let v = Value::Array(vec![Value::String(text(&expected)), Value::String(text(&new))]);
                Recorded::Conditional(h.invoke("cas", &key, v))
            });
            write(front, c, jobs, StrCmd::Cas { key, expected, new }, Shape::Plain, h)
        }
        _ => now(unknown(&args)),
    }
}

fn size_of(q: &StrQuery) -> usize {
    match q {
        StrQuery::Get { key } | StrQuery::StrLen { key } => key.len() + 16,
        StrQuery::MGet { keys } | StrQuery::Exists { keys } => {
            keys.iter().map(|k| k.len() + 8).sum::<usize>() + 16
        }
        StrQuery::DbSize => 16,
    }
}

fn size_of_cmd(c: &StrCmd) -> usize {
    16 + match c {
        StrCmd::Set { key, value, .. } | StrCmd::Append { key, value } => key.len() + value.len(),
        StrCmd::Del { keys } => keys.iter().map(|k| k.len() + 8).sum(),
        StrCmd::IncrBy { key, .. } => key.len(),
        StrCmd::MSet { pairs } => pairs.iter().map(|(k, v)| k.len() + v.len() + 8).sum(),
        StrCmd::Cas { key, expected, new } => key.len() + expected.len() + new.len(),
        StrCmd::Read(q) => size_of(q),
    }
}

/// A read: from this replica's state (READONLY), through the log (behind a write of this
/// connection not yet answered, so it sees it), or at a read index.
fn read(front: &Front, c: &Conn, jobs: &mut Vec<Job>, q: StrQuery, hist: Option<Recorded>) -> Pending {
    let (tx, rx) = oneshot::channel();
    if c.stale {
        jobs.push(Job::Local(q, tx));
    } else if c.writes_open.load(Ordering::Acquire) > 0 {
        let cmd = StrCmd::Read(q);
        let size = size_of_cmd(&cmd);
        jobs.push(Job::Submit(Op::Command(cmd), size, tx));
    } else {
        let size = size_of(&q);
        jobs.push(Job::Submit(Op::Query(q), size, tx));
    }
    Pending::Store { rx, shape: Shape::Plain, deadline: Instant::now() + front.timeout, write: false, hist }
}

fn write(
    front: &Front,
    c: &Conn,
    jobs: &mut Vec<Job>,
    cmd: StrCmd,
    shape: Shape,
    hist: Option<Recorded>,
) -> Pending {
    let (tx, rx) = oneshot::channel();
    c.writes_open.fetch_add(1, Ordering::AcqRel);
    let size = size_of_cmd(&cmd);
    jobs.push(Job::Submit(Op::Command(cmd), size, tx));
    Pending::Store { rx, shape, deadline: Instant::now() + front.timeout, write: true, hist }
}

/// The Redis version `INFO` and `HELLO` report: clients pick features by it.
const REDIS_VERSION: &str = "7.0.0";

/// The commands `agora kv` serves (COMMAND COUNT).
pub const COMMANDS: &[&str] = &[
    "APPEND",
    "AUTH",
    "CAS",
    "CLIENT",
    "COMMAND",
    "CONFIG",
    "DBSIZE",
    "DECR",
    "DECRBY",
    "DEL",
    "ECHO",
    "EXISTS",
    "GET",
    "GETSET",
    "HELLO",
    "INCR",
    "INCRBY",
    "INFO",
    "MGET",
    "MSET",
    "PING",
    "QUIT",
    "READONLY",
    "READWRITE",
    "ROLE",
    "SELECT",
    "SET",
    "SETNX",
    "STRLEN",
    "UNLINK",
];

/// What `CONFIG GET` answers: every acknowledged write is fsynced on a majority, which is
/// what `appendonly yes` with `appendfsync always` means to a Redis user.
const CONFIG: &[(&str, &str)] =
    &[("save", ""), ("appendonly", "yes"), ("appendfsync", "always"), ("databases", "1"), ("maxmemory", "0")];

/// Redis's glob, as far as CONFIG GET needs it: `*`, `?` and literal bytes.
fn glob(pat: &[u8], s: &[u8]) -> bool {
    match (pat.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&pat[1..], s) || (!s.is_empty() && glob(pat, &s[1..])),
        (Some(b'?'), Some(_)) => glob(&pat[1..], &s[1..]),
        (Some(p), Some(c)) if p == c => glob(&pat[1..], &s[1..]),
        _ => false,
    }
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::Candidate => "candidate",
    }
}

fn info_reply(front: &Front, s: &Status, section: Option<&str>) -> Reply {
    let leader = s.leader.map(|l| front.resp_shown[l.index()].clone()).unwrap_or_default();
    let mut t = String::new();
    let all = section.is_none_or(|x| x == "all" || x == "everything" || x == "default");
    if all || section == Some("server") {
        t.push_str(&format!(
            "# Server\r\nredis_version:{REDIS_VERSION}\r\nredis_mode:standalone\r\nagora_kv:1\r\nprocess_id:{}\r\ntcp_port:{}\r\n\r\n",
            std::process::id(),
            front.port
        ));
    }
    if all || section == Some("replication") {
        t.push_str(&format!(
            "# Replication\r\nrole:{}\r\nraft_role:{}\r\nraft_node:{}\r\nraft_term:{}\r\nraft_leader:{}\r\nraft_leader_addr:{}\r\nraft_commit_index:{}\r\nraft_applied_index:{}\r\n\r\n",
            if s.role == Role::Leader { "master" } else { "slave" },
            role_name(s.role),
            s.me.0,
            s.term,
            s.leader.map_or(String::new(), |l| l.0.to_string()),
            leader,
            s.commit,
            s.applied
        ));
    }
    if all || section == Some("persistence") {
        t.push_str("# Persistence\r\nloading:0\r\naof_enabled:1\r\n\r\n");
    }
    if all || section == Some("keyspace") {
        t.push_str("# Keyspace\r\n");
        if s.keys > 0 {
            t.push_str(&format!("db0:keys={},expires=0,avg_ttl=0\r\n", s.keys));
        }
    }
    Reply::text(t)
}

fn role_reply(front: &Front, s: &Status) -> Reply {
    let leader = s.leader.map(|l| &front.resp_shown[l.index()]);
    Reply::Array(vec![
        Reply::text(role_name(s.role)),
        Reply::Int(s.term as i64),
        leader.map_or(Reply::Nil, |a| Reply::text(a.clone())),
        Reply::Int(s.commit as i64),
    ])
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn config_patterns_glob() {
        assert!(glob(b"save", b"save"));
        assert!(glob(b"*", b"appendonly"));
        assert!(glob(b"append*", b"appendfsync"));
        assert!(glob(b"s?ve", b"save"));
        assert!(!glob(b"save", b"saved"));
    }
}
