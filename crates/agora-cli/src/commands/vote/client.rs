//! A client of the line protocol (docs/vote-protocol.md), as the crowd of `agora vote` and
//! `agora vote conformance` use it: one command at a time, its reply, and the `EVENT` lines
//! pushed in between kept in order. A reader task turns the socket into lines, so waiting for
//! a reply or an event can be given up without losing half a line.
//!
//! A client given the cluster's servers ([`Client::roam_among`]) moves when its server goes
//! away (it said `BYE` or closed the connection): it connects to the next server that
//! answers, resumes its session there with `RESUME <token> <last event>` (the events it
//! missed are replayed), and sends the command it was waiting on again.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// The longest line the client accepts from a server.
const MAX_LINE: u64 = 1 << 20;
/// How long a moving client waits for a server's `HELLO` before it tries the next.
const MOVE_HELLO: Duration = Duration::from_secs(10);

/// A connection to a server.
pub struct Client {
    wr: OwnedWriteHalf,
    lines: mpsc::Receiver<String>,
    /// Every `EVENT` line received, as (number, the rest of the line), in order.
    pub events: Vec<(u64, String)>,
    /// `GAP` lines received.
    pub gaps: usize,
    /// The `BYE` line, once the server said it.
    pub bye: Option<String>,
    /// The `HELLO` line.
    pub hello: String,
    /// How long to wait for a line before giving up.
    pub patience: Duration,
    /// `PING`s sent while waiting for an event whose replies have not come yet.
    pings_owed: u32,
    /// A write to the server failed.
    write_failed: bool,
    /// Where to go when the server goes away; none: nowhere.
    roam: Option<Roam>,
}

/// The servers a client may move to, and the session it takes with it.
struct Roam {
    addrs: Vec<SocketAddr>,
    /// The server it is connected to, in `addrs`.
    at: usize,
    /// Its session's token and the event number its login gave, once logged in.
    session: Option<(String, u64)>,
    /// Times it moved.
    moves: usize,
}

/// What a move left of the session.
enum Moved {
    /// Resumed on another server.
    Resumed,
    /// Connected to another server, with no session to resume (none was open).
    Connected,
    /// The session is gone (ended by the command that was cut off, or expired).
    SessionGone(String),
}

fn broken(what: impl Into<String>) -> io::Error {
    io::Error::other(what.into())
}

impl Client {
    /// Connects and reads the `HELLO` line.
    pub async fn connect(addr: SocketAddr, patience: Duration) -> io::Result<Client> {
        let stream = TcpStream::connect(addr).await?;
        let _ = stream.set_nodelay(true);
        let (rd, wr) = stream.into_split();
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(async move {
            let mut rd = BufReader::new(rd);
            loop {
                let mut buf = Vec::new();
                match (&mut rd).take(MAX_LINE).read_until(b'\n', &mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if buf.last() == Some(&b'\n') {
                            buf.pop();
                        }
                        if buf.last() == Some(&b'\r') {
                            buf.pop();
                        }
                        if tx.send(String::from_utf8_lossy(&buf).into_owned()).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let mut c = Client {
            wr,
            lines: rx,
            events: Vec::new(),
            gaps: 0,
            bye: None,
            hello: String::new(),
            patience,
            pings_owed: 0,
            write_failed: false,
            roam: None,
        };
        c.hello = c.raw_line().await?;
        if !c.hello.starts_with("HELLO ") {
            return Err(broken(format!("the first line is not HELLO: {:?}", c.hello)));
        }
        Ok(c)
    }

    /// Sends raw bytes (the line protocol's hostile cases).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.wr.write_all(bytes).await
    }

    /// Sends one command line.
    pub async fn send(&mut self, line: &str) -> io::Result<()> {
        let sent = self.wr.write_all(format!("{line}\n").as_bytes()).await;
        self.write_failed |= sent.is_err();
        sent
    }

    /// From now on, moves among `addrs` (this client is connected to `addrs[at]`) when its
    /// server goes away. A session it logs in to (`LOGIN`) or resumes (`RESUME`) goes with it.
    pub fn roam_among(&mut self, addrs: Vec<SocketAddr>, at: usize) {
        self.roam = Some(Roam { addrs, at, session: None, moves: 0 });
    }

    /// Hands this client's servers and session on to `other`, connected to `addrs[at]`.
    pub fn hand_roam_to(&mut self, other: &mut Client, at: usize) {
        other.roam = self.roam.take().map(|r| Roam { at, ..r });
    }

    /// Every event from the first (`EVENTS 0`), asked again on the next server if this one
    /// goes away meanwhile.
    pub async fn all_events(&mut self) -> io::Result<Vec<(u64, String)>> {
        loop {
            let all = self.ok("EVENTS 0").await?;
            let count: usize = field(&all, "count").and_then(|n| n.parse().ok()).unwrap_or(0);
            match self.read_events(count).await {
                Err(_) if self.roam.is_some() && self.gone() => {
                    if let Moved::SessionGone(r) = self.move_on().await? {
                        return Err(broken(format!("the session ended during EVENTS: {r}")));
                    }
                }
                r => return r,
            }
        }
    }

    /// The server a roaming client is connected to, in the addresses it was given.
    pub fn server(&self) -> Option<usize> {
        self.roam.as_ref().map(|r| r.at)
    }

    /// Times this client moved to another server.
    pub fn moves(&self) -> usize {
        self.roam.as_ref().map_or(0, |r| r.moves)
    }

    /// Its server went away: it said `BYE`, closed the connection, or a write to it failed.
    fn gone(&self) -> bool {
        self.bye.is_some() || self.write_failed || self.lines.is_closed()
    }

    /// Notes the session a reply opened, resumed or ended, for the moves to come.
    fn note_session(&mut self, line: &str, reply: &str) {
        let Some(roam) = self.roam.as_mut() else { return };
        let word = line.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
        let ok = reply.starts_with(&format!("OK {word}"));
        match word.as_str() {
            "LOGIN" if ok => {
                let from = field(reply, "events").and_then(|n| n.parse().ok()).unwrap_or(0);
                roam.session = field(reply, "token").map(|t| (t.to_string(), from));
            }
            "RESUME" if ok => {
                let mut words = line.split_whitespace().skip(1);
                let token = words.next().unwrap_or("").to_string();
                roam.session = Some((token, words.next().and_then(|n| n.parse().ok()).unwrap_or(0)));
            }
            "LOGOUT" | "EXIT" | "QUIT" if ok => roam.session = None,
            _ => {}
        }
    }

    /// Moves to the next server that answers, within the client's patience, and resumes its
    /// session there; events still unread from the old server are kept first.
    async fn move_on(&mut self) -> io::Result<Moved> {
        while let Ok(l) = self.lines.try_recv() {
            let _ = self.take(l);
        }
        let Some(roam) = self.roam.as_ref() else { return Err(broken("nowhere to move")) };
        let (addrs, mut at, session) = (roam.addrs.clone(), roam.at, roam.session.clone());
        let last = self.events.last().map(|(n, _)| *n);
        let deadline = tokio::time::Instant::now() + self.patience;
        let mut pause = Duration::from_millis(50);
        let mut why = String::new();
        while tokio::time::Instant::now() < deadline {
            for _ in 0..addrs.len() {
                at = (at + 1) % addrs.len();
                // A server that accepts and says nothing (paused) is passed over soon.
                let mut d = match Client::connect(addrs[at], self.patience.min(MOVE_HELLO)).await {
                    Ok(mut d) => {
                        d.patience = self.patience;
                        d
                    }
                    Err(e) => {
                        why = format!("{}: {e}", addrs[at]);
                        continue;
                    }
                };
                let moved = match &session {
                    None => Moved::Connected,
                    Some((token, from)) => {
                        let resume = format!("RESUME {token} {}", last.unwrap_or(*from));
                        let sent = match d.send(&resume).await {
                            Ok(()) => d.reply().await,
                            Err(e) => Err(e),
                        };
                        let r = match sent {
                            Ok(r) => r,
                            Err(e) => {
                                why = format!("RESUME at {}: {e}", addrs[at]);
                                continue;
                            }
                        };
                        if r.starts_with("ERR no-session") {
                            Moved::SessionGone(r)
                        } else if r.starts_with("OK RESUME") {
                            Moved::Resumed
                        } else {
                            why = format!("RESUME at {}: {r}", addrs[at]);
                            continue;
                        }
                    }
                };
                self.wr = d.wr;
                self.lines = d.lines;
                self.events.append(&mut d.events);
                self.gaps += d.gaps;
                self.bye = None;
                self.hello = d.hello;
                self.pings_owed = 0;
                self.write_failed = false;
                let roam = self.roam.as_mut().expect("checked above");
                roam.at = at;
                roam.moves += 1;
                if matches!(moved, Moved::SessionGone(_)) {
                    roam.session = None;
                }
                return Ok(moved);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
        Err(broken(format!("no server took the session within {:?}: {why}", self.patience)))
    }

    /// The next line of any kind.
    async fn raw_line(&mut self) -> io::Result<String> {
        match tokio::time::timeout(self.patience, self.lines.recv()).await {
            Ok(Some(l)) => Ok(l),
            Ok(None) => Err(broken("the server closed the connection")),
            Err(_) => Err(broken(format!("no line from the server within {:?}", self.patience))),
        }
    }

    /// Takes a pushed line (event, gap, bye, comment); returns the line if it is a reply.
    fn take(&mut self, line: String) -> Option<String> {
        if let Some(rest) = line.strip_prefix("EVENT ") {
            let (n, e) = rest.split_once(' ').unwrap_or((rest, ""));
            self.events.push((n.parse().unwrap_or(0), e.to_string()));
            None
        } else if line.starts_with("GAP") {
            self.gaps += 1;
            None
        } else if line == "OK PING" && self.pings_owed > 0 {
            self.pings_owed -= 1;
            None
        } else if line.starts_with('#') || line.starts_with("HELLO") {
            None
        } else if line.starts_with("BYE") {
            self.bye = Some(line);
            None
        } else {
            Some(line)
        }
    }

    /// The next reply (`OK ...` or `ERR ...`), keeping the events before it.
    pub async fn reply(&mut self) -> io::Result<String> {
        loop {
            if self.bye.is_some() {
                return Err(broken(format!("closed: {}", self.bye.clone().unwrap_or_default())));
            }
            let line = self.raw_line().await?;
            if let Some(r) = self.take(line) {
                return Ok(r);
            }
        }
    }

    /// Sends a command and returns its reply. A roaming client whose server goes away
    /// before the reply moves and sends it again, at most once per move: a command that ends
    /// the session (`LOGOUT`, `EXIT`, `QUIT`) and finds it gone had taken effect, and is
    /// answered `OK <WORD>` as it would have been.
    pub async fn cmd(&mut self, line: &str) -> io::Result<String> {
        loop {
            let r = match self.send(line).await {
                Ok(()) => self.reply().await,
                Err(e) => Err(e),
            };
            match r {
                Err(e) if self.roam.is_some() && self.gone() => {
                    let word = line.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
                    match self.move_on().await? {
                        Moved::SessionGone(_) if matches!(word.as_str(), "LOGOUT" | "EXIT" | "QUIT") => {
                            return Ok(format!("OK {word}"));
                        }
                        Moved::SessionGone(r) => return Err(broken(format!("{e}; then {r}"))),
                        Moved::Resumed | Moved::Connected => {}
                    }
                }
                Ok(reply) => {
                    self.note_session(line, &reply);
                    return Ok(reply);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends a command once: a roaming client whose server goes away before the reply moves
    /// and resumes, but does not send it again (it may have taken effect: `OPEN` would open a
    /// second question), and says so with `Ok(None)`.
    pub async fn cmd_once(&mut self, line: &str) -> io::Result<Option<String>> {
        let r = match self.send(line).await {
            Ok(()) => self.reply().await,
            Err(e) => Err(e),
        };
        match r {
            Err(_) if self.roam.is_some() && self.gone() => match self.move_on().await? {
                Moved::SessionGone(r) => Err(broken(format!("the session ended: {r}"))),
                Moved::Resumed | Moved::Connected => Ok(None),
            },
            Ok(reply) => {
                self.note_session(line, &reply);
                Ok(Some(reply))
            }
            Err(e) => Err(e),
        }
    }

    /// Sends a command and returns its reply, which must start with `OK <word>`.
    pub async fn ok(&mut self, line: &str) -> io::Result<String> {
        let r = self.cmd(line).await?;
        let word = line.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
        if r.starts_with(&format!("OK {word}")) {
            Ok(r)
        } else {
            Err(broken(format!("{word}: {r}")))
        }
    }

    /// Waits until an event matches `want` (an event already received counts), sending `PING`
    /// every `ping` meanwhile so the session stays alive; the pings' replies are dropped.
    pub async fn wait_event(&mut self, ping: Duration, want: impl Fn(&str) -> bool) -> io::Result<u64> {
        self.wait_event_from(0, ping, want).await
    }

    /// As [`Client::wait_event`], among the events from index `from` of [`Client::events`] on.
    pub async fn wait_event_from(
        &mut self,
        from: usize,
        ping: Duration,
        want: impl Fn(&str) -> bool,
    ) -> io::Result<u64> {
        let mut seen = from.min(self.events.len());
        let deadline = tokio::time::Instant::now() + self.patience;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + ping, ping);
        loop {
            if let Some((n, _)) = self.events[seen..].iter().find(|(_, e)| want(e)) {
                return Ok(*n);
            }
            seen = self.events.len();
            if self.roam.is_some() && self.gone() {
                if let Moved::SessionGone(r) = self.move_on().await? {
                    return Err(broken(format!("the session ended while waiting for an event: {r}")));
                }
                continue;
            }
            if self.bye.is_some() {
                return Err(broken(format!("closed: {}", self.bye.clone().unwrap_or_default())));
            }
            tokio::select! {
                l = self.lines.recv() => match l {
                    Some(l) => {
                        if let Some(r) = self.take(l) {
                            return Err(broken(format!("an unexpected reply: {r}")));
                        }
                    }
                    None if self.roam.is_some() => {}
                    None => return Err(broken("the server closed the connection")),
                },
                _ = tick.tick() => {
                    if self.send("PING").await.is_ok() {
                        self.pings_owed += 1;
                    } else if self.roam.is_none() {
                        return Err(broken("the server closed the connection"));
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(broken(format!("the awaited event did not come within {:?}", self.patience)));
                }
            }
        }
    }

    /// Reads pushed lines until an event matches `want` (an event already received counts),
    /// keeping only the latest event in [`Client::events`]: for a member that hears of many
    /// others and must neither hold them all nor stop reading (a server does not wait for
    /// ever on a member that does not read).
    pub async fn skip_to_event(&mut self, want: impl Fn(&str) -> bool) -> io::Result<u64> {
        loop {
            let found = self.events.iter().find(|(_, e)| want(e)).map(|(n, _)| *n);
            if let Some(last) = self.events.pop() {
                self.events.clear();
                self.events.push(last);
            }
            if let Some(n) = found {
                return Ok(n);
            }
            if self.bye.is_some() {
                return Err(broken(format!("closed: {}", self.bye.clone().unwrap_or_default())));
            }
            let line = self.raw_line().await?;
            if let Some(r) = self.take(line) {
                return Err(broken(format!("an unexpected reply: {r}")));
            }
        }
    }

    /// Reads the next `k` events (the replay after `OK EVENTS`) and hands them out rather
    /// than keeping them.
    pub async fn read_events(&mut self, k: usize) -> io::Result<Vec<(u64, String)>> {
        let mark = self.events.len();
        while self.events.len() < mark + k {
            let line = self.raw_line().await?;
            if let Some(r) = self.take(line) {
                return Err(broken(format!("a reply among the events: {r}")));
            }
        }
        Ok(self.events.split_off(mark))
    }

    /// Reads what is left up to the server's close (after `EXIT`), keeping events.
    pub async fn drain(&mut self) {
        while let Ok(l) = self.raw_line().await {
            let _ = self.take(l);
        }
    }
}

/// The value of `key=` in a reply's fields.
pub fn field<'a>(reply: &'a str, key: &str) -> Option<&'a str> {
    reply.split_whitespace().find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// The JSON value that ends a reply (`OK STATS {...}`), after `skip` words.
pub fn json_tail(reply: &str, skip: usize) -> Option<serde_json::Value> {
    let mut rest = reply;
    for _ in 0..skip {
        rest = rest.split_once(' ')?.1;
    }
    serde_json::from_str(rest).ok()
}
