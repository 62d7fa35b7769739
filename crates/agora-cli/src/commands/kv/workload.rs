//! `agora kv --workload OPS` and `agora kv workload --servers ...`: clients over RESP, one
//! connection and one operation at a time each, spread over the replicas; with `--history`, the clients record what they invoked and
//! what they saw (the honest place for a history: a client knows what it was told).
//!
//! An operation is GET, SET, APPEND, CAS (expecting the value the client last saw there),
//! MSET or MGET of two keys. An error reply that may hide an effect (`-TRYAGAIN`, a replica
//! that stopped), a lost connection or a timeout is `info`; the client then reconnects to the
//! next replica.

use super::history::History;
use crate::error::UserError;
use crate::resp::{self, Reply};
use agora_lincheck::history::Kind;
use serde_json::Value;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What to run.
pub struct Spec {
    /// Operations in all (`u64::MAX`: until told to stop).
    pub ops: u64,
    pub clients: usize,
    pub keys: usize,
    pub seed: u64,
    pub timeout: Duration,
    pub history: Option<PathBuf>,
    /// Each connection sends READONLY first: a follower answers its reads from its own
    /// state (stale reads, to watch a checker catch them).
    pub stale_reads: bool,
    /// Put before every key's name (`k0`, `k1`, ...): a run of its own on a store that
    /// already holds another run's keys.
    pub key_prefix: String,
}

#[derive(Default)]
struct Tally {
    ok: u64,
    fail: u64,
    info: u64,
    latencies_us: Vec<u64>,
}

/// splitmix64: the workload's choices, reproducible from `--seed`.
pub struct Mix(pub u64);

impl Mix {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Runs the workload against `addrs` until its operations are done or `stop` resolves (each
/// client then finishes its operation in flight); the report to print.
pub async fn run(
    spec: Spec,
    addrs: Vec<SocketAddr>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<String, UserError> {
    let history = match &spec.history {
        Some(p) => Some(Arc::new(
            History::create(p, 0).map_err(|e| UserError(format!("--history {}: {e}", p.display())))?,
        )),
        None => None,
    };
    let left = Arc::new(AtomicU64::new(spec.ops));
    let stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopper = {
        let (left, stopped) = (left.clone(), stopped.clone());
        tokio::spawn(async move {
            stop.await;
            stopped.store(true, Ordering::Release);
            left.store(0, Ordering::Release);
        })
    };
    let tally = Arc::new(Mutex::new(Tally::default()));
    let began = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..spec.clients {
        let client = Client {
            id: c,
            addrs: addrs.clone(),
            target: c % addrs.len(),
            conn: None,
            buf: Vec::new(),
            rng: Mix(spec.seed.wrapping_mul(1_000_003).wrapping_add(c as u64)),
            keys: spec.keys,
            timeout: spec.timeout,
            seen: HashMap::new(),
            history: history.clone(),
            stale_reads: spec.stale_reads,
            key_prefix: spec.key_prefix.clone(),
        };
        tasks.push(tokio::spawn(client.run(left.clone(), tally.clone())));
    }
    for t in tasks {
        let _ = t.await;
    }
    stopper.abort();
    let wall = began.elapsed();
    if let Some(h) = &history {
        h.flush();
    }
    let mut t = std::mem::take(&mut *tally.lock().expect("tally"));
    t.latencies_us.sort_unstable();
    let pct = |p: f64| {
        if t.latencies_us.is_empty() {
            0.0
        } else {
            t.latencies_us[((t.latencies_us.len() - 1) as f64 * p) as usize] as f64 / 1e3
        }
    };
    let mut out = String::new();
    let total = t.ok + t.fail + t.info;
    let _ = writeln!(
        out,
        "workload       {total} operations by {} clients on {} keys in {:.2} s: {:.0} ops/s",
        spec.clients,
        spec.keys,
        wall.as_secs_f64(),
        total as f64 / wall.as_secs_f64().max(1e-9)
    );
    let _ = writeln!(
        out,
        "outcomes       {} ok, {} fail (did not take effect), {} info (unknown)",
        t.ok, t.fail, t.info
    );
    if stopped.load(Ordering::Acquire) && spec.ops == u64::MAX {
        let _ = writeln!(out, "stopped        when told to");
    } else if stopped.load(Ordering::Acquire) {
        let _ = writeln!(out, "stopped        when told to, after {total} of {} operations", spec.ops);
    }
    let _ = writeln!(out, "latency ms     p50 {:.2}  p99 {:.2}  max {:.2}", pct(0.5), pct(0.99), pct(1.0));
    if let Some(p) = &spec.history {
        let _ = writeln!(out, "history        {}   (judge it: agora lincheck {})", p.display(), p.display());
    }
    Ok(out)
}

struct Client {
    id: usize,
    addrs: Vec<SocketAddr>,
    target: usize,
    conn: Option<TcpStream>,
    buf: Vec<u8>,
    rng: Mix,
    keys: usize,
    timeout: Duration,
    /// The value this client last saw at each key (what its CAS expects).
    seen: HashMap<String, Option<String>>,
    history: Option<Arc<History>>,
    stale_reads: bool,
    key_prefix: String,
}

/// What one operation's history looks like.
enum Rec {
    Get(Vec<super::history::Open>),
    Write(Vec<super::history::Open>),
    Cond(super::history::Open),
}

impl Client {
    async fn run(mut self, left: Arc<AtomicU64>, tally: Arc<Mutex<Tally>>) {
        let mut seq = 0u64;
        let mut mine = Tally::default();
        while left.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1)).is_ok() {
            seq += 1;
            let began = Instant::now();
            let kind = self.one(seq).await;
            mine.latencies_us.push(began.elapsed().as_micros() as u64);
            match kind {
                Kind::Ok => mine.ok += 1,
                Kind::Fail => mine.fail += 1,
                _ => mine.info += 1,
            }
        }
        let mut t = tally.lock().expect("tally");
        t.ok += mine.ok;
        t.fail += mine.fail;
        t.info += mine.info;
        t.latencies_us.extend(mine.latencies_us);
    }

    fn key(&mut self) -> String {
        format!("{}k{}", self.key_prefix, self.rng.below(self.keys as u64))
    }

    /// One operation, recorded; its outcome.
    async fn one(&mut self, seq: u64) -> Kind {
        let value = format!("{}.{}", self.id, seq);
        let roll = self.rng.below(100);
        let h = self.history.clone();
        let (args, rec): (Vec<String>, Option<Rec>) = if roll < 40 {
            let k = self.key();
            let r = h.as_ref().map(|h| Rec::Get(vec![h.invoke("get", k.as_bytes(), Value::Null)]));
            (vec!["GET".into(), k], r)
        } else if roll < 65 {
            let k = self.key();
            let r = h
                .as_ref()
                .map(|h| Rec::Write(vec![h.invoke("put", k.as_bytes(), Value::String(value.clone()))]));
            (vec!["SET".into(), k, value], r)
        } else if roll < 75 {
            let k = self.key();
            let v = format!("+{seq}");
            let r = h
                .as_ref()
                .map(|h| Rec::Write(vec![h.invoke("append", k.as_bytes(), Value::String(v.clone()))]));
            (vec!["APPEND".into(), k, v], r)
        } else if roll < 90 {
            let k = self.key();
            let expected = self.seen.get(&k).cloned().flatten().unwrap_or_default();
            let r = h.as_ref().map(|h| {
                Rec::Cond(h.invoke(
                    "cas",
                    k.as_bytes(),
                    Value::Array(vec![Value::String(expected.clone()), Value::String(value.clone())]),
                ))
            });
            (vec!["CAS".into(), k, expected, value], r)
        } else if roll < 95 {
            let (a, b) = (self.key(), self.key());
            let (va, vb) = (format!("{value}a"), format!("{value}b"));
            let r = h.as_ref().map(|h| {
                Rec::Write(vec![
                    h.invoke("put", a.as_bytes(), Value::String(va.clone())),
                    h.invoke("put", b.as_bytes(), Value::String(vb.clone())),
                ])
            });
            (vec!["MSET".into(), a, va, b, vb], r)
        } else {
            let (a, b) = (self.key(), self.key());
            let r = h.as_ref().map(|h| {
                Rec::Get(vec![
                    h.invoke("get", a.as_bytes(), Value::Null),
                    h.invoke("get", b.as_bytes(), Value::Null),
                ])
            });
            (vec!["MGET".into(), a, b], r)
        };
        let reply = if self.connected().await { self.call(&args).await } else { None };
        let kind = match &reply {
            // The replica could not be reached: the command never left, so it did not happen.
            None if self.conn.is_none() => {
                self.reconnect();
                Kind::Fail
            }
            None | Some(Reply::Error(_)) => {
                // An error that may hide an effect (TRYAGAIN, a replica that stopped) or a
                // lost connection: unknown. Try the next replica.
                if let Some(Reply::Error(e)) = &reply {
                    if e.starts_with("ERR wrong") || e.starts_with("ERR syntax") {
                        Kind::Fail
                    } else {
                        self.reconnect();
                        Kind::Info
                    }
                } else {
                    self.reconnect();
                    Kind::Info
                }
            }
            Some(Reply::Int(0)) if args[0] == "CAS" => Kind::Fail,
            Some(_) => Kind::Ok,
        };
        // What the client now knows of the keys.
        match (&reply, args[0].as_str()) {
            (Some(Reply::Bulk(b)), "GET") => {
                self.seen.insert(args[1].clone(), Some(String::from_utf8_lossy(b).into_owned()));
            }
            (Some(Reply::Nil), "GET") => {
                self.seen.insert(args[1].clone(), None);
            }
            (Some(Reply::Simple(_)), "SET") => {
                self.seen.insert(args[1].clone(), Some(args[2].clone()));
            }
            (Some(Reply::Int(1)), "CAS") => {
                self.seen.insert(args[1].clone(), Some(args[3].clone()));
            }
            _ => {}
        }
        if let (Some(h), Some(rec)) = (&h, rec) {
            match rec {
                Rec::Get(opens) => {
                    let values: Vec<Value> = match &reply {
                        Some(Reply::Bulk(b)) => vec![Value::String(String::from_utf8_lossy(b).into_owned())],
                        Some(Reply::Nil) => vec![Value::Null],
                        Some(Reply::Array(items)) => items
                            .iter()
                            .map(|i| match i {
                                Reply::Bulk(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
                                _ => Value::Null,
                            })
                            .collect(),
                        _ => vec![],
                    };
                    for (i, o) in opens.iter().enumerate() {
                        match (kind, values.get(i)) {
                            (Kind::Ok, Some(v)) => h.complete(o, Kind::Ok, Some(v.clone())),
                            (Kind::Fail, _) => h.complete(o, Kind::Fail, None),
                            _ => h.complete(o, Kind::Info, None),
                        }
                    }
                }
                Rec::Write(opens) => opens.iter().for_each(|o| h.complete(o, kind, None)),
                Rec::Cond(o) => h.complete(&o, kind, None),
            }
        }
        kind
    }

    fn reconnect(&mut self) {
        self.conn = None;
        self.buf.clear();
        self.target = (self.target + 1) % self.addrs.len();
    }

    /// Connects to the current replica if not connected; false if it cannot be reached (then
    /// nothing was sent).
    async fn connected(&mut self) -> bool {
        if self.conn.is_some() {
            return true;
        }
        let timeout = self.timeout + Duration::from_secs(1);
        match tokio::time::timeout(timeout, TcpStream::connect(self.addrs[self.target])).await {
            Ok(Ok(c)) => {
                let _ = c.set_nodelay(true);
                self.conn = Some(c);
                if self.stale_reads && self.call(&["READONLY".to_string()]).await != Some(Reply::ok()) {
                    self.conn = None;
                    self.buf.clear();
                    return false;
                }
                true
            }
            _ => false,
        }
    }

    /// Sends one command and reads its reply; `None` if the connection failed or timed out
    /// after the command may have left.
    async fn call(&mut self, args: &[String]) -> Option<Reply> {
        let timeout = self.timeout + Duration::from_secs(1);
        let mut req = Vec::new();
        resp::encode_request(args, &mut req);
        let conn = self.conn.as_mut()?;
        let exchange = async {
            conn.write_all(&req).await.ok()?;
            loop {
                if let Ok(Some((r, used))) = resp::parse_reply(&self.buf) {
                    self.buf.drain(..used);
                    return Some(r);
                }
                let mut chunk = [0u8; 16 * 1024];
                let n = conn.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                self.buf.extend_from_slice(&chunk[..n]);
            }
        };
        tokio::time::timeout(timeout, exchange).await.ok().flatten()
    }
}
