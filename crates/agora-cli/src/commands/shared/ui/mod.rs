//! `--ui ADDR`: the live view of a running cluster in the browser (docs/live-view.md). A
//! minimal HTTP/1.1 responder serves one page (HTML, script and style embedded in the binary:
//! no CDN, works offline), a stream of the cluster's state as Server-Sent Events, and the
//! page's controls as `POST /action/VERB[/ARGS]` ([`Command`]; a request the command cannot
//! take is answered 400 with why).
//!
//! The command that runs the cluster samples it and publishes one JSON snapshot at a time in a
//! `watch` channel: a slow page only ever gets the latest, never a backlog, and the cluster
//! never waits for a page. Actions go to that command through a bounded channel and are
//! answered with one line of text.

pub mod sampler;
pub mod steer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tracing::{debug, warn};

const PAGE: &str = include_str!("index.html");
const SCRIPT: &str = include_str!("app.js");
const STYLE: &str = include_str!("app.css");

/// Request headers longer than this close the connection.
const MAX_HEADER_BYTES: usize = 8 * 1024;
/// A request must arrive whole within this time.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Pages following the stream at once; one more is answered 503.
const MAX_STREAMS: usize = 16;
/// Connections served at once, streams included.
const MAX_CONNECTIONS: usize = 64;

/// A control of the page, checked against the cluster's size before it reaches the command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `crash/N`
    Crash(usize),
    /// `restart/N`
    Restart(usize),
    /// `pause/N`
    Pause(usize),
    /// `resume/N`
    Resume(usize),
    /// `cut/FROM/TO`: the link from one node to another, one way.
    Cut(usize, usize),
    /// `partition/A,B,..`: these nodes on one side, the others on the other.
    Partition(Vec<usize>),
    /// `heal`: every link mended.
    Heal,
    /// `release`: a held run may end once it goes quiet.
    Release,
}

impl Command {
    /// The verb of the path.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Crash(_) => "crash",
            Command::Restart(_) => "restart",
            Command::Pause(_) => "pause",
            Command::Resume(_) => "resume",
            Command::Cut(..) => "cut",
            Command::Partition(_) => "partition",
            Command::Heal => "heal",
            Command::Release => "release",
        }
    }

    /// Reads `VERB[/ARGS]` for a cluster of `nodes` nodes whose command takes `verbs`; the
    /// reason, in one line, when it cannot.
    pub fn parse(what: &str, nodes: usize, verbs: &[&str]) -> Result<Command, String> {
        let (verb, args) = what.split_once('/').unwrap_or((what, ""));
        if !verbs.contains(&verb) {
            return Err(format!("unknown action {verb:?}: this run takes {}", verbs.join(", ")));
        }
        let node = |s: &str| match s.parse::<usize>() {
            Ok(i) if i < nodes => Ok(i),
            Ok(i) => Err(format!("no node {i}: the nodes are 0 to {}", nodes.saturating_sub(1))),
            Err(_) => Err(format!("not a node number: {s:?}")),
        };
        let one = |args: &str| {
            if args.is_empty() {
                Err(format!("{verb} needs a node: /action/{verb}/N"))
            } else {
                node(args)
            }
        };
        let none =
            |c: Command| if args.is_empty() { Ok(c) } else { Err(format!("{verb} takes nothing after it")) };
        match verb {
            "crash" => one(args).map(Command::Crash),
            "restart" => one(args).map(Command::Restart),
            "pause" => one(args).map(Command::Pause),
            "resume" => one(args).map(Command::Resume),
            "cut" => {
                let Some((from, to)) = args.split_once('/') else {
                    return Err("cut needs two nodes: /action/cut/FROM/TO".into());
                };
                let (from, to) = (node(from)?, node(to)?);
                if from == to {
                    return Err(format!("node {from} to itself is no link"));
                }
                Ok(Command::Cut(from, to))
            }
            "partition" => {
                let mut side = args.split(',').map(node).collect::<Result<Vec<_>, _>>()?;
                side.sort_unstable();
                side.dedup();
                if side.len() >= nodes {
                    return Err("a partition needs nodes on both sides: list one side only".into());
                }
                Ok(Command::Partition(side))
            }
            "heal" => none(Command::Heal),
            "release" => none(Command::Release),
            _ => Err(format!("unknown action {verb:?}")),
        }
    }
}

/// An action asked for by the page, already checked ([`Command::parse`]).
#[derive(Debug)]
pub struct Action {
    /// What to do.
    pub command: Command,
    /// The outcome in one line: `Ok` done, `Err` refused (why: the cluster is not in a state
    /// that allows it).
    pub done: oneshot::Sender<Result<String, String>>,
}

/// What the view's controls may ask: the cluster's size and the verbs its command takes.
#[derive(Clone, Copy, Debug)]
pub struct Accepts {
    /// Nodes in the cluster, numbered from 0.
    pub nodes: usize,
    /// The verbs of [`Command`] the command takes.
    pub verbs: &'static [&'static str],
}

/// What every connection of the view shares.
struct View {
    snapshot: watch::Receiver<String>,
    actions: mpsc::Sender<Action>,
    accepts: Accepts,
    streams: Arc<Semaphore>,
}

/// Binds the view's address: a one-line error for the user when it cannot.
pub async fn bind(addr: &str) -> Result<TcpListener, crate::error::UserError> {
    TcpListener::bind(addr).await.map_err(|e| crate::error::UserError(format!("--ui {addr}: {e}")))
}

/// The page's address for the user: `http://ADDR/`.
pub fn url(addr: SocketAddr) -> String {
    format!("http://{addr}/")
}

/// Serves the view on `listener` until the task is dropped; the page's controls, as
/// `accepts` allows them, are handed over on `actions`.
pub async fn serve(
    listener: TcpListener,
    snapshot: watch::Receiver<String>,
    actions: mpsc::Sender<Action>,
    accepts: Accepts,
) {
    let view = Arc::new(View { snapshot, actions, accepts, streams: Arc::new(Semaphore::new(MAX_STREAMS)) });
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                warn!("ui: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            debug!("ui: connection from {peer} closed: {MAX_CONNECTIONS} already served");
            continue;
        };
        let view = view.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, &view).await {
                debug!("ui: connection from {peer}: {e}");
            }
            drop(permit);
        });
    }
}

/// A request line's method and path, once the headers have arrived.
struct Request {
    method: String,
    path: String,
    /// The page's controls send `X-Agora-Action`: a header a cross-site form cannot set.
    from_page: bool,
}

async fn read_request(stream: &mut TcpStream) -> std::io::Result<Option<Request>> {
    let mut buf = vec![0u8; MAX_HEADER_BYTES];
    let mut used = 0;
    let end = loop {
        let n = stream.read(&mut buf[used..]).await?;
        if n == 0 {
            return Ok(None);
        }
        used += n;
        if let Some(i) = buf[..used].windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if used == buf.len() {
            return Ok(None);
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_string();
    let path = first.next().unwrap_or("").to_string();
    let from_page = lines.any(|l| l.to_ascii_lowercase().starts_with("x-agora-action:"));
    Ok(Some(Request { method, path, from_page }))
}

async fn respond(stream: &mut TcpStream, status: &str, kind: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

async fn connection(mut stream: TcpStream, view: &View) -> std::io::Result<()> {
    let Ok(request) = tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut stream)).await else {
        return Ok(());
    };
    let Some(r) = request? else { return Ok(()) };
    const TEXT: &str = "text/plain; charset=utf-8";
    match (r.method.as_str(), r.path.as_str()) {
        ("GET", "/") => respond(&mut stream, "200 OK", "text/html; charset=utf-8", PAGE).await,
        ("GET", "/app.js") => respond(&mut stream, "200 OK", "text/javascript; charset=utf-8", SCRIPT).await,
        ("GET", "/app.css") => respond(&mut stream, "200 OK", "text/css; charset=utf-8", STYLE).await,
        ("GET", "/events") => events(stream, view).await,
        ("POST", path) if path.starts_with("/action/") => {
            if !r.from_page {
                return respond(&mut stream, "403 Forbidden", TEXT, "actions come from the page\n").await;
            }
            let (status, text) = act(view, &path["/action/".len()..]).await;
            respond(&mut stream, status, TEXT, &text).await
        }
        _ => respond(&mut stream, "404 Not Found", TEXT, "not found\n").await,
    }
}

/// Runs `VERB[/ARGS]` through the command that owns the cluster.
async fn act(view: &View, what: &str) -> (&'static str, String) {
    let command = match Command::parse(what, view.accepts.nodes, view.accepts.verbs) {
        Ok(c) => c,
        Err(why) => return ("400 Bad Request", why + "\n"),
    };
    let (done, answer) = oneshot::channel();
    let action = Action { command, done };
    if view.actions.send(action).await.is_err() {
        return ("503 Service Unavailable", "the cluster has stopped\n".into());
    }
    match answer.await {
        Ok(Ok(text)) => ("200 OK", text + "\n"),
        Ok(Err(text)) => ("409 Conflict", text + "\n"),
        Err(_) => ("503 Service Unavailable", "the cluster has stopped\n".into()),
    }
}

/// The stream of snapshots: the latest at once, then each new one, as Server-Sent Events.
async fn events(mut stream: TcpStream, view: &View) -> std::io::Result<()> {
    let Ok(_permit) = view.streams.clone().try_acquire_owned() else {
        return respond(&mut stream, "503 Service Unavailable", "text/plain", "too many pages open\n").await;
    };
    stream
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n\r\n")
        .await?;
    let mut snapshot = view.snapshot.clone();
    loop {
        let data = snapshot.borrow_and_update().clone();
        if !data.is_empty() {
            stream.write_all(format!("data: {data}\n\n").as_bytes()).await?;
        }
        if snapshot.changed().await.is_err() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[&str] = &["crash", "restart", "pause", "resume", "cut", "partition", "heal", "release"];

    #[test]
    fn commands_are_read_and_bad_ones_refused_with_why() {
        let parse = |s: &str| Command::parse(s, 5, ALL);
        assert_eq!(parse("crash/4"), Ok(Command::Crash(4)));
        assert_eq!(parse("resume/0"), Ok(Command::Resume(0)));
        assert_eq!(parse("cut/1/3"), Ok(Command::Cut(1, 3)));
        assert_eq!(parse("partition/3,0,3"), Ok(Command::Partition(vec![0, 3])));
        assert_eq!(parse("heal"), Ok(Command::Heal));
        for (bad, why) in [
            ("crash/5", "no node 5: the nodes are 0 to 4"),
            ("crash/x", "not a node number"),
            ("crash", "crash needs a node"),
            ("cut/1", "cut needs two nodes"),
            ("cut/2/2", "to itself"),
            ("partition/0,1,2,3,4", "both sides"),
            ("partition/", "not a node number"),
            ("heal/3", "takes nothing"),
            ("explode/1", "unknown action \"explode\""),
        ] {
            let e = parse(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
        let kv = Command::parse("pause/1", 3, &["crash", "restart"]).expect_err("kv does not pause");
        assert!(kv.contains("this run takes crash, restart"), "{kv}");
    }
}
