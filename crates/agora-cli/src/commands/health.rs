//! `agora health`: whether a node answers, for the containers' health check (the image has no
//! shell, no curl and no redis-cli: the binary checks itself). Also the one RESP `INFO`
//! client and the one voting-service greeting reader `agora cluster status` uses.

use crate::cli::HealthArgs;
use crate::error::UserError;
use crate::resp::{self, Reply};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long one check may take: connecting, then every read and write.
const TIMEOUT: Duration = Duration::from_secs(2);
/// The most a reply may hold.
const MAX_REPLY_BYTES: usize = 64 * 1024;

/// One kind of check: what it found, or why the node is not healthy.
type Check = fn(SocketAddr) -> Result<String, String>;

/// `agora health`: 0 healthy, 1 not (one line), 2 a bad address.
pub fn run(args: &HealthArgs) -> Result<i32, UserError> {
    let (given, check): (&str, Check) = match (&args.resp, &args.metrics) {
        (Some(a), _) => (a, |addr| info(addr).map(|i| format!("raft_role:{}", i["raft_role"]))),
        (None, Some(a)) => (a, metrics),
        (None, None) => match &args.vote {
            Some(a) => (a, hello),
            None => unreachable!("clap requires one of --resp, --metrics and --vote"),
        },
    };
    let addr = given
        .to_socket_addrs()
        .map_err(|e| UserError(format!("{given}: {e}")))?
        .next()
        .ok_or_else(|| UserError(format!("{given}: the name has no address")))?;
    match check(addr) {
        Ok(what) => {
            println!("healthy {addr} {what}");
            Ok(0)
        }
        Err(why) => {
            eprintln!("agora: unhealthy {addr}: {why}");
            Ok(1)
        }
    }
}

/// An I/O error in words: a timeout says so (a socket's timeout is `WouldBlock` on Linux).
fn io(e: std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            format!("no answer within {} s", TIMEOUT.as_secs())
        }
        _ => e.to_string(),
    }
}

fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let s = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(io)?;
    s.set_read_timeout(Some(TIMEOUT)).and_then(|_| s.set_write_timeout(Some(TIMEOUT))).map_err(io)?;
    Ok(s)
}

/// A key-value replica's `INFO replication` as its `key:value` lines; an error unless it
/// names the replica's Raft role.
pub fn info(addr: SocketAddr) -> Result<BTreeMap<String, String>, String> {
    let mut s = connect(addr)?;
    let mut req = Vec::new();
    resp::encode_request(&["INFO", "replication"], &mut req);
    s.write_all(&req).map_err(io)?;
    let mut buf = Vec::new();
    let reply = loop {
        if let Some((r, _)) = resp::parse_reply(&buf).map_err(|e| e.0)? {
            break r;
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).map_err(io)?;
        if n == 0 {
            return Err("closed the connection".into());
        }
        if buf.len() + n > MAX_REPLY_BYTES {
            return Err(format!("a reply over {MAX_REPLY_BYTES} bytes"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let text = match reply {
        Reply::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
        Reply::Error(e) => return Err(e),
        other => return Err(format!("an unexpected reply to INFO: {other:?}")),
    };
    let fields: BTreeMap<String, String> = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    if !fields.contains_key("raft_role") {
        return Err("INFO replication names no raft_role".into());
    }
    Ok(fields)
}

/// A voting-service server's members' port: its greeting (`HELLO agora-vote 1 server=ID`), or
/// why there is none.
pub fn hello(addr: SocketAddr) -> Result<String, String> {
    let mut s = connect(addr)?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.len() < 256 && byte[0] != b'\n' {
        match s.read(&mut byte).map_err(io)? {
            0 => break,
            _ => line.push(byte[0]),
        }
    }
    let line = String::from_utf8_lossy(&line).trim_end().to_string();
    if line.starts_with("HELLO agora-vote ") {
        Ok(line)
    } else {
        Err(format!("greeted with {line:?}, not HELLO agora-vote"))
    }
}

/// A voting-service server's own reading of its board (`ADMIN <token>`, then `BOARD`), as
/// the JSON of its `OK BOARD` reply. Lines are read up to 1 MiB each: a server that sends
/// more is not one.
pub fn board(addr: SocketAddr, admin: &str) -> Result<serde_json::Value, String> {
    use std::io::BufRead;
    let mut s = connect(addr)?;
    s.write_all(format!("ADMIN {admin}\r\nBOARD\r\n").as_bytes()).map_err(io)?;
    let mut lines = std::io::BufReader::new(s.take(4 << 20));
    let mut line = String::new();
    for _ in 0..64 {
        line.clear();
        let n = (&mut lines).take(1 << 20).read_line(&mut line).map_err(io)?;
        if n == 0 {
            return Err("closed before answering BOARD".into());
        }
        let l = line.trim_end();
        if let Some(json) = l.strip_prefix("OK BOARD ") {
            return serde_json::from_str(json).map_err(|e| format!("a BOARD reply that is not JSON: {e}"));
        }
        if l.starts_with("ERR ") {
            return Err(format!("answered {l:?}"));
        }
    }
    Err("no BOARD reply among its first 64 lines".into())
}

/// A node's metrics endpoint: healthy if it answers `200`.
fn metrics(addr: SocketAddr) -> Result<String, String> {
    let mut s = connect(addr)?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: agora\r\nConnection: close\r\n\r\n").map_err(io)?;
    let mut head = [0u8; 64];
    let mut got = 0;
    while got < 12 {
        match s.read(&mut head[got..]).map_err(io)? {
            0 => break,
            n => got += n,
        }
    }
    let line = String::from_utf8_lossy(&head[..got]);
    if line.starts_with("HTTP/1.1 200") {
        Ok("metrics served".into())
    } else {
        Err(format!("answered {:?}", line.lines().next().unwrap_or("nothing")))
    }
}
