//! Bad input never hurts a node: garbage, truncated and oversize frames, wrong handshakes,
//! silent peers, malformed messages and a burst of connections, each over a real socket. The
//! node closes the offending connection and keeps serving its cluster, and what it persisted
//! is still there.

use agora_core::{wire, Checker, Context, Message, NoProperties, NodeId, Protocol, Setup, Stable};
use agora_net::handshake::{Hello, Reply};
use agora_net::node::{self, BoundNode, NetConfig};
use agora_net::store::Store;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Ping(u64);

impl Message for Ping {
    fn kind(&self) -> &'static str {
        "PING"
    }
}

/// Pings the other node every 5 ms and persists how many ticks it has made.
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
    fn on_message(&mut self, ctx: &mut Context<'_, Self>, _: NodeId, p: Ping) {
        ctx.observe(p.0);
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
    fn build(&self, _: NodeId, stable: &Stable) -> Ticker {
        Ticker { ticks: stable.get("ticks").unwrap().unwrap_or(0) }
    }
    fn checker(&self) -> Box<dyn Checker<Ticker>> {
        Box::new(NoProperties)
    }
}

struct Cluster {
    addr0: SocketAddr,
    stop: watch::Sender<bool>,
    handles: Vec<tokio::task::JoinHandle<agora_net::NodeReport<u64>>>,
    dir: tempfile::TempDir,
    /// Pings node 0 has received, as it observes them.
    pings0: watch::Receiver<u64>,
}

async fn start_cluster() -> Cluster {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let b0 = BoundNode::bind(NodeId(0), any).await.unwrap();
    let b1 = BoundNode::bind(NodeId(1), any).await.unwrap();
    let addrs = vec![b0.local_addr().unwrap(), b1.local_addr().unwrap()];
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = NetConfig::new("hostile-test", addrs.clone());
    cfg.data_dir = Some(dir.path().to_path_buf());
    cfg.handshake_timeout = Duration::from_millis(300);
    cfg.max_connections = 64;
    let cfg = Arc::new(cfg);
    let (stop, rx) = watch::channel(false);
    let in_flight = Arc::new(AtomicI64::new(0));
    let setup = Arc::new(TickerSetup);
    let (pings_tx, pings0) = watch::channel(0u64);
    let counted: agora_net::ObsHook<u64> = Arc::new(move |_, _| pings_tx.send_modify(|n| *n += 1));
    let (_, h0) =
        node::start(setup.clone(), b0, cfg.clone(), in_flight.clone(), rx.clone(), Some(counted)).unwrap();
    let (_, h1) = node::start(setup, b1, cfg, in_flight, rx, None).unwrap();
    Cluster { addr0: addrs[0], stop, handles: vec![h0, h1], dir, pings0 }
}

/// The node keeps receiving its peer's pings: five more arrive.
async fn still_serving(c: &Cluster) {
    let mut pings = c.pings0.clone();
    let before = *pings.borrow_and_update();
    // The time limit only keeps a broken node from hanging the test; a loaded machine is
    // nowhere near it.
    let five_more = pings.wait_for(|&n| n >= before + 5);
    let got = tokio::time::timeout(Duration::from_secs(120), five_more).await;
    got.expect("node 0 stopped receiving from node 1").expect("node 0 still runs");
}

/// Reads until the node closes the connection; returns what it sent first.
async fn closed_by_node(mut s: TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got)).await;
    assert!(r.is_ok(), "the node did not close the connection");
    got
}

fn frame<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    wire::write_frame(v, &mut out).unwrap();
    out
}

async fn hello_ok(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&frame(&Hello::new("hostile-test", "ticker", 1, 0))).await.unwrap();
    let mut reply = vec![0u8; 64];
    let n = s.read(&mut reply).await.unwrap();
    let (payload, _) = wire::read_frame(&reply[..n]).unwrap().unwrap();
    assert_eq!(wire::decode::<Reply>(payload).unwrap(), Reply::Accepted);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_peers_are_cut_off_and_the_node_keeps_serving() {
    let c = start_cluster().await;
    still_serving(&c).await;

    // Garbage: an HTTP request reads as a 1.2 GB length prefix.
    let mut s = TcpStream::connect(c.addr0).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    assert!(closed_by_node(s).await.is_empty());

    // Random bytes inside a small frame: not a handshake.
    let mut s = TcpStream::connect(c.addr0).await.unwrap();
    s.write_all(&[0, 0, 0, 5, 0xde, 0xad, 0xbe, 0xef, 0x99]).await.unwrap();
    assert!(closed_by_node(s).await.is_empty());

    // An oversize length prefix is refused before anything is allocated.
    let mut s = TcpStream::connect(c.addr0).await.unwrap();
    s.write_all(&[0xff, 0xff, 0xff, 0xff]).await.unwrap();
    assert!(closed_by_node(s).await.is_empty());

    // A truncated frame: the length promises 100 bytes, 10 arrive, then the peer hangs up.
    let mut s = TcpStream::connect(c.addr0).await.unwrap();
    s.write_all(&[0, 0, 0, 100]).await.unwrap();
    s.write_all(&[7; 10]).await.unwrap();
    s.shutdown().await.unwrap();
    assert!(closed_by_node(s).await.is_empty());

    // A wrong handshake is refused with its reason.
    for bad in [
        Hello::new("other-cluster", "ticker", 1, 0),
        Hello::new("hostile-test", "flood", 1, 0),
        Hello::new("hostile-test", "ticker", 9, 0),
        Hello { wire_version: 99, ..Hello::new("hostile-test", "ticker", 1, 0) },
    ] {
        let mut s = TcpStream::connect(c.addr0).await.unwrap();
        s.write_all(&frame(&bad)).await.unwrap();
        let got = closed_by_node(s).await;
        let (payload, _) = wire::read_frame(&got).unwrap().expect("a refusal frame");
        assert!(matches!(wire::decode::<Reply>(payload).unwrap(), Reply::Refused(_)), "{bad:?}");
    }

    // A peer that connects and never speaks is closed after the handshake timeout.
    let s = TcpStream::connect(c.addr0).await.unwrap();
    assert!(closed_by_node(s).await.is_empty());

    // A good handshake followed by a frame that is not a message.
    let mut s = hello_ok(c.addr0).await;
    s.write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff]).await.unwrap();
    assert!(closed_by_node(s).await.is_empty());

    still_serving(&c).await;

    // A burst of connections, far more than the node serves at once: every one is closed
    // (the extra ones at once, the others when their handshake times out).
    let mut burst = Vec::new();
    for _ in 0..300 {
        burst.push(TcpStream::connect(c.addr0).await.unwrap());
    }
    for s in burst {
        closed_by_node(s).await;
    }
    still_serving(&c).await;

    // Nothing the node persisted is lost.
    let ticks_before_stop = {
        let _ = c.stop.send(true);
        let mut reports = Vec::new();
        for h in c.handles {
            reports.push(h.await.unwrap());
        }
        assert!(reports.iter().all(|r| !r.failed));
        reports[0].counters.sent
    };
    let (_, stable) = Store::open(&c.dir.path().join("node-0.redb")).unwrap();
    let ticks: u64 = stable.get("ticks").unwrap().unwrap();
    assert_eq!(ticks, ticks_before_stop, "one persisted tick per ping sent");
}
