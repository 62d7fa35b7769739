//! A client of the line protocol (docs/vote-protocol.md), as the crowd of `agora vote` and
//! `agora vote conformance` use it: one command at a time, its reply, and the `EVENT` lines
//! pushed in between kept in order. A reader task turns the socket into lines, so waiting for
//! a reply or an event can be given up without losing half a line.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// The longest line the client accepts from a server.
const MAX_LINE: u64 = 1 << 20;

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
        self.wr.write_all(format!("{line}\n").as_bytes()).await
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

    /// Sends a command and returns its reply.
    pub async fn cmd(&mut self, line: &str) -> io::Result<String> {
        self.send(line).await?;
        self.reply().await
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
                    None => return Err(broken("the server closed the connection")),
                },
                _ = tick.tick() => {
                    self.send("PING").await?;
                    self.pings_owed += 1;
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
