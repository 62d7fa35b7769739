//! Bad input never hurts a node: garbage, truncated and oversize frames, wrong handshakes,
//! peers without the cluster secret or replaying a recorded handshake, silent and slow peers,
//! connections holding large unfinished frames, malformed messages and floods of
//! connections, each over a real socket. The node closes the offending connection, keeps
//! serving its cluster, delivers nothing an unauthenticated peer sent, holds a bounded amount
//! of memory, and what it persisted is still there.

use agora_core::{wire, Checker, Context, Corrupt, Message, NoProperties, NodeId, Protocol, Setup, Stable};
use agora_net::handshake::{self, Hello, Proof, Reply, Role, Secret, MAX_HANDSHAKE_FRAME_BYTES};
use agora_net::node::{self, BoundNode, NetConfig, NodeShared};
use agora_net::store::{OpenMode, Store};
use agora_net::{report, run_bound, Gathered, MESSAGE_BUFFER_BYTES};
use agora_protocols::params::TOPOLOGY;
use agora_protocols::{dispatch, Driver, Params};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// The secret of the test clusters.
const SECRET: [u8; 32] = [7; 32];

/// Pings at or above this are marks: sent only by the test, counted under their own kind.
const MARK: u64 = 1 << 40;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Ping(u64);

impl Message for Ping {
    fn kind(&self) -> &'static str {
        if self.0 >= MARK {
            "MARK"
        } else {
            "PING"
        }
    }
}

/// Pings the other nodes every 5 ms, persists how many ticks it has made, and observes every
/// ping it receives.
struct Ticker {
    ticks: u64,
}

impl Protocol for Ticker {
    type Msg = Ping;
    type Timer = ();
    type Obs = u64;
    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        ctx.set_timer((), Duration::from_millis(5));
    }
    fn on_message(&mut self, ctx: &mut Context<'_, Self>, _: NodeId, ping: Ping) {
        ctx.observe(ping.0);
    }
    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, _: ()) {
        self.ticks += 1;
        ctx.persist("ticks", &self.ticks);
        ctx.broadcast(Ping(self.ticks));
        ctx.set_timer((), Duration::from_millis(5));
    }
}

struct TickerSetup;
impl Setup for TickerSetup {
    type Node = Ticker;
    fn name(&self) -> &'static str {
        "ticker"
    }
    fn nodes(&self) -> usize {
        2
    }
    fn build(&self, _: NodeId, stable: &Stable) -> Result<Ticker, Corrupt> {
        Ok(Ticker { ticks: stable.load("ticks")?.unwrap_or(0) })
    }
    fn checker(&self) -> Box<dyn Checker<Ticker>> {
        Box::new(NoProperties)
    }
}

struct Cluster {
    addr0: SocketAddr,
    cfg: Arc<NetConfig>,
    shared: Vec<Arc<NodeShared>>,
    stop: watch::Sender<bool>,
    handles: Vec<tokio::task::JoinHandle<agora_net::NodeReport<u64>>>,
    dir: tempfile::TempDir,
    /// Node 0's observations as they are made: (pings, marks) received.
    seen0: watch::Receiver<(u64, u64)>,
}

/// Nodes 0 and 1 running the ticker, in a cluster of `2 + phantoms` node ids: the phantoms'
/// addresses are closed ports, and the test plays those nodes when it needs peers of its own.
async fn start_cluster(phantoms: usize, tune: impl FnOnce(&mut NetConfig)) -> Cluster {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let b0 = BoundNode::bind(NodeId(0), any).await.unwrap();
    let b1 = BoundNode::bind(NodeId(1), any).await.unwrap();
    let mut addrs = vec![b0.local_addr().unwrap(), b1.local_addr().unwrap()];
    for _ in 0..phantoms {
        addrs.push(std::net::TcpListener::bind(any).unwrap().local_addr().unwrap());
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = NetConfig::new("hostile-test", addrs.clone());
    cfg.secret = Secret::from_bytes(SECRET);
    cfg.data_dir = Some(dir.path().to_path_buf());
    cfg.open = OpenMode::New;
    cfg.handshake_timeout = Duration::from_millis(300);
    cfg.max_handshaking = 16;
    tune(&mut cfg);
    let cfg = Arc::new(cfg);
    let (stop, rx) = watch::channel(false);
    let in_flight = Arc::new(AtomicI64::new(0));
    let setup = Arc::new(TickerSetup);
    let (seen_tx, seen0) = watch::channel((0u64, 0u64));
    let count: agora_net::ObsHook<u64> = Arc::new(move |_, o: &u64| {
        seen_tx.send_modify(|(pings, marks)| if *o == MARK { *marks += 1 } else { *pings += 1 })
    });
    let (s0, h0) =
        node::start(setup.clone(), b0, cfg.clone(), in_flight.clone(), rx.clone(), Some(count)).unwrap();
    let (s1, h1) = node::start(setup, b1, cfg.clone(), in_flight, rx, None).unwrap();
    Cluster { addr0: addrs[0], cfg, shared: vec![s0, s1], stop, handles: vec![h0, h1], dir, seen0 }
}

impl Cluster {
    async fn stop(self) -> (Vec<agora_net::NodeReport<u64>>, tempfile::TempDir) {
        let _ = self.stop.send(true);
        let mut reports = Vec::new();
        for h in self.handles {
            reports.push(h.await.unwrap());
        }
        assert!(reports.iter().all(|r| !r.failed));
        (reports, self.dir)
    }
}

fn buffered(s: &NodeShared) -> usize {
    s.inbound_buffered_bytes.load(Ordering::Acquire) as usize
}

/// Waits until node 0 has observed what `done` asks of (pings, marks); the time limit only
/// keeps a broken node from hanging the test.
async fn until_seen(c: &Cluster, what: &str, done: impl FnMut(&(u64, u64)) -> bool) {
    let mut seen = c.seen0.clone();
    let got = tokio::time::timeout(Duration::from_secs(120), seen.wait_for(done)).await;
    got.unwrap_or_else(|_| panic!("{what}")).expect("node 0 still runs");
}

/// The node keeps receiving its peer's pings: five more arrive.
async fn still_serving(c: &Cluster) {
    let before = c.seen0.borrow().0;
    until_seen(c, "node 0 keeps receiving from node 1", |(pings, _)| *pings >= before + 5).await;
}

/// Reads until the node closes the connection (30 s is a hang guard, not a timing
/// assertion); returns what it sent.
async fn closed_by_node(mut s: TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut got)).await;
    assert!(r.is_ok(), "the node did not close the connection");
    got
}

fn frame<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    wire::write_frame(v, &mut out).unwrap();
    out
}

/// The handshake replies in `bytes`, in order.
fn replies(mut bytes: &[u8]) -> Vec<Reply> {
    let mut out = Vec::new();
    while let Ok(Some((payload, used))) = wire::read_frame(bytes) {
        out.push(wire::decode::<Reply>(payload).unwrap());
        bytes = &bytes[used..];
    }
    out
}

async fn read_reply(s: &mut TcpStream) -> Reply {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.unwrap();
    let len = u32::from_be_bytes(len) as usize;
    assert!(len <= MAX_HANDSHAKE_FRAME_BYTES);
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).await.unwrap();
    wire::decode(&payload).unwrap()
}

/// Plays node `from`'s side of the handshake with `secret`: the stream, the acceptor's last
/// reply, and every byte this side sent.
async fn handshake_as(addr: SocketAddr, from: u32, secret: &Secret) -> (TcpStream, Reply, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let hello = Hello::new("hostile-test", "ticker", from, 0);
    let mut sent = frame(&hello);
    s.write_all(&sent).await.unwrap();
    let Reply::Challenge(challenge) = read_reply(&mut s).await else { panic!("no challenge") };
    let proof = frame(&Proof(handshake::mac(secret, Role::Dialer, &hello, &challenge)));
    s.write_all(&proof).await.unwrap();
    sent.extend_from_slice(&proof);
    let last = read_reply(&mut s).await;
    if let Reply::Accepted { mac, .. } = &last {
        assert!(handshake::verify(secret, Role::Acceptor, &hello, &challenge, mac), "the node proves itself");
    }
    (s, last, sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_peers_are_cut_off_and_the_node_keeps_serving() {
    // Node 2 is the test's, for a peer that authenticates and then misbehaves.
    let c = start_cluster(1, |_| {}).await;
    still_serving(&c).await;

    // Garbage: an HTTP request reads as a 1.2 GB length prefix.
    let mut s = TcpStream::connect(c.addr0).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    assert!(closed_by_node(s).await.is_empty());

    // Random bytes inside a small frame: not a handshake.
    let mut s = TcpStream::connect(c.addr0).await.unwrap();
    s.write_all(&[0, 0, 0, 5, 0xde, 0xad, 0xbe, 0xef, 0x99]).await.unwrap();
    assert!(closed_by_node(s).await.is_empty());

    // A length prefix over the handshake's maximum is refused before anything is allocated.
    for len in [MAX_HANDSHAKE_FRAME_BYTES as u32 + 1, u32::MAX] {
        let mut s = TcpStream::connect(c.addr0).await.unwrap();
        s.write_all(&len.to_be_bytes()).await.unwrap();
        assert!(closed_by_node(s).await.is_empty());
    }

    // A truncated frame: the length promises 100 bytes, 10 arrive, then the peer hangs up.
    let mut s = TcpStream::connect(c.addr0).await.unwrap();
    s.write_all(&[0, 0, 0, 100]).await.unwrap();
    s.write_all(&[7; 10]).await.unwrap();
    s.shutdown().await.unwrap();
    assert!(closed_by_node(s).await.is_empty());

    // A wrong hello is refused with its reason.
    for bad in [
        Hello::new("other-cluster", "ticker", 1, 0),
        Hello::new("hostile-test", "flood", 1, 0),
        Hello::new("hostile-test", "ticker", 9, 0),
        Hello { wire_version: 1, ..Hello::new("hostile-test", "ticker", 1, 0) },
    ] {
        let mut s = TcpStream::connect(c.addr0).await.unwrap();
        s.write_all(&frame(&bad)).await.unwrap();
        let got = replies(&closed_by_node(s).await);
        assert!(matches!(got[..], [Reply::Refused(_)]), "{bad:?}: {got:?}");
    }

    // A peer that connects and never speaks is closed after the handshake timeout.
    let s = TcpStream::connect(c.addr0).await.unwrap();
    assert!(closed_by_node(s).await.is_empty());

    // A good handshake followed by a frame that is not a message.
    let (mut s, last, _) = handshake_as(c.addr0, 2, &Secret::from_bytes(SECRET)).await;
    assert!(matches!(last, Reply::Accepted { .. }));
    s.write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff]).await.unwrap();
    assert!(closed_by_node(s).await.is_empty());

    still_serving(&c).await;

    // A burst of connections, far more than the node's handshake slots: every one is closed
    // (the oldest as newer ones come, the last ones when their handshake times out).
    let mut burst = Vec::new();
    for _ in 0..300 {
        burst.push(TcpStream::connect(c.addr0).await.unwrap());
    }
    for s in burst {
        closed_by_node(s).await;
    }
    still_serving(&c).await;

    // Nothing the node persisted is lost: one tick per ping to each other node.
    let others = c.cfg.addrs.len() as u64 - 1;
    let (reports, dir) = c.stop().await;
    let (_, stable) = Store::open(&dir.path().join("node-0.redb"), OpenMode::Existing).unwrap();
    let ticks: u64 = stable.get("ticks").unwrap().unwrap();
    assert_eq!(ticks * others, reports[0].counters.sent, "one persisted tick per broadcast");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_secret_or_with_a_replayed_handshake_nothing_is_delivered() {
    // Node 2 is the test's: a peer id no running node dials from.
    let c = start_cluster(1, |_| {}).await;
    still_serving(&c).await;
    let forged = frame(&Ping(MARK + 1));

    // The right names, the wrong secret: refused, and what follows is not read.
    let (mut s, last, _) = handshake_as(c.addr0, 2, &Secret::from_bytes([8; 32])).await;
    assert!(matches!(&last, Reply::Refused(why) if why.contains("secret")), "{last:?}");
    let _ = s.write_all(&forged).await;
    closed_by_node(s).await;

    // A handshake with the secret, recorded, then replayed byte for byte with messages after
    // it: the node's fresh challenge makes the recorded proof worthless.
    let (mut s, last, recorded) = handshake_as(c.addr0, 2, &Secret::from_bytes(SECRET)).await;
    assert!(matches!(last, Reply::Accepted { .. }));
    // The authenticated connection delivers: one mark.
    s.write_all(&frame(&Ping(MARK))).await.unwrap();
    until_seen(&c, "the authenticated mark is delivered", |(_, marks)| *marks >= 1).await;
    drop(s);
    let mut s = TcpStream::connect(c.addr0).await.unwrap();
    s.write_all(&recorded).await.unwrap();
    let _ = s.write_all(&forged).await;
    let got = replies(&closed_by_node(s).await);
    assert!(matches!(got[..], [Reply::Challenge(_), Reply::Refused(_)]), "{got:?}");

    // A connection authenticated as node 1 replaces node 1's own; node 1 notices the close,
    // reconnects and replaces it back (the test's connection is closed), and serves on.
    let (s, last, _) = handshake_as(c.addr0, 1, &Secret::from_bytes(SECRET)).await;
    assert!(matches!(last, Reply::Accepted { .. }));
    closed_by_node(s).await;
    still_serving(&c).await;
    let (reports, _dir) = c.stop().await;
    let marks: Vec<u64> = reports[0].observations.iter().map(|(_, o)| *o).filter(|o| *o >= MARK).collect();
    assert_eq!(marks, [MARK], "delivered: the one mark sent with the secret, none without");
    let pings = reports[0].observations.iter().filter(|(_, o)| *o < MARK).count() as u64;
    assert!(pings <= reports[1].counters.sent, "node 0 delivered no ping node 1 did not send");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_large_frames_hold_no_more_than_the_budget() {
    const BUDGET: usize = 4 << 20;
    const FRAME: usize = 3 << 20;
    const PEERS: usize = 6;
    // Long timeouts: here the frames wait for budget until the test lets them go.
    let c = start_cluster(PEERS, |cfg| {
        cfg.frame_budget_bytes = BUDGET;
        cfg.frame_timeout = Duration::from_secs(600);
        cfg.idle_timeout = Duration::from_secs(600);
    })
    .await;
    let nodes = c.cfg.addrs.len();
    // Without the budget each phantom peer would make the node hold a 3 MiB frame.
    let bound = BUDGET + (nodes - 1) * MESSAGE_BUFFER_BYTES + c.cfg.max_handshaking * 1028;
    let mut writers = Vec::new();
    for peer in 2..nodes as u32 {
        let (mut s, last, _) = handshake_as(c.addr0, peer, &Secret::from_bytes(SECRET)).await;
        assert!(matches!(last, Reply::Accepted { .. }));
        writers.push(tokio::spawn(async move {
            let mut partial = (FRAME as u32).to_be_bytes().to_vec();
            partial.resize(4 + FRAME - FRAME / 4, 1);
            let _ = s.write_all(&partial).await;
            s
        }));
    }
    // Once a frame holds budget, the node holds more than 3 MiB and never more than the bound.
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let held = buffered(&c.shared[0]);
            assert!(held <= bound, "{held} bytes buffered, over the bound of {bound}");
            if held >= FRAME {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("a large frame takes budget");
    still_serving(&c).await;
    assert!(buffered(&c.shared[0]) <= bound);
    // The unfinished frames go away with their connections, and so do their bytes.
    for w in writers {
        w.abort();
        let _ = w.await;
    }
    tokio::time::timeout(Duration::from_secs(30), async {
        while buffered(&c.shared[0]) > MESSAGE_BUFFER_BYTES + 1028 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the budget is given back");
    still_serving(&c).await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_slow_authenticated_peers_are_closed_after_their_timeout() {
    let c = start_cluster(2, |cfg| {
        cfg.idle_timeout = Duration::from_secs(1);
        cfg.frame_timeout = Duration::from_millis(400);
    })
    .await;
    let secret = Secret::from_bytes(SECRET);
    // Silent after its handshake: closed after the idle timeout.
    let (silent, last, _) = handshake_as(c.addr0, 2, &secret).await;
    assert!(matches!(last, Reply::Accepted { idle_timeout_ms: 1000, .. }), "{last:?}");
    // Half a frame, then nothing: closed after the frame timeout.
    let (mut slow, _, _) = handshake_as(c.addr0, 3, &secret).await;
    slow.write_all(&[0, 0, 0, 100, 1, 2, 3]).await.unwrap();
    assert!(closed_by_node(silent).await.is_empty());
    assert!(closed_by_node(slow).await.is_empty());
    // Node 1 pings every 5 ms and sends keepalives between: its connection stays and serves.
    still_serving(&c).await;
    let (reports, _dir) = c.stop().await;
    assert_eq!(reports[1].lost, 0);
}

/// Runs a setup over TCP on listeners each held under a flood of silent connections.
struct Flooded {
    per_node: usize,
}

impl Driver for Flooded {
    type Output = agora_core::RunSummary;
    fn run<S: Setup>(self, setup: S) -> agora_core::RunSummary {
        let setup = Arc::new(setup);
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            agora_net::raise_fd_limit().unwrap();
            let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
            let mut bound = Vec::new();
            let mut flood = Vec::new();
            for i in 0..setup.nodes() {
                let b = BoundNode::bind(NodeId(i as u32), any).await.unwrap();
                for _ in 0..self.per_node {
                    flood.push(TcpStream::connect(b.local_addr().unwrap()).await.unwrap());
                }
                bound.push(b);
            }
            let dir = tempfile::tempdir().unwrap();
            let mut cfg = NetConfig::new("flooded", Vec::new());
            cfg.data_dir = Some(dir.path().to_path_buf());
            cfg.max_handshaking = 8;
            // The flood outlasts the run: its connections never time out meanwhile.
            cfg.handshake_timeout = Duration::from_secs(600);
            let out = run_bound(setup.clone(), bound, cfg, Duration::from_secs(120), |_| {}).await.unwrap();
            assert_eq!(out.end, agora_net::End::Quiescent);
            let n = setup.nodes();
            let mut g = Gathered::new(n, out.end.as_str(), 1.0, 0.0, out.started_unix_ns);
            for r in out.reports {
                g.add_report(r);
            }
            drop(flood);
            report::summarize(&*setup, 1, g, "")
        })
    }
}

#[test]
fn a_flood_of_silent_connections_does_not_keep_real_peers_out() {
    let params = Params::new(4, 1).with(&TOPOLOGY, "complete");
    let summary = dispatch("flood", &params, Flooded { per_node: 40 }).unwrap();
    assert!(summary.violations.is_empty(), "{:?}", summary.violations);
    assert!(summary.messages_sent > 0);
    assert_eq!(summary.messages_delivered, summary.messages_sent);
}
