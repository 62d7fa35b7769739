//! `agora cluster relay`: what lets `agora cluster status` reach the nodes of a cluster on a
//! Swarm. An overlay network is not routed from the host, and a task may run on another
//! machine, so `status` starts this relay in a container of its own, attached to the
//! cluster's (attachable) overlay network on the machine it runs on, with its ports published
//! on that machine's loopback. Its `k`-th port forwards each connection to the `k`-th target,
//! a service name that Swarm's DNS resolves to its task's address wherever that task runs;
//! the name is resolved again for every connection, so a task rescheduled elsewhere is found.

use crate::error::UserError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// The relay's first port: the `k`-th target is reached at `FIRST_PORT + k`.
pub const FIRST_PORT: u16 = 20000;

/// At most this many connections are relayed at once; one more is closed at once, with a
/// line on stderr, at most one a second (a flood of connections costs no memory beyond it).
const MAX_CONNECTIONS: usize = 256;

/// Runs the relay until it is stopped. `targets` are `host:port`.
pub fn run(targets: &[String]) -> Result<i32, UserError> {
    if targets.is_empty() {
        return Err(UserError("agora cluster relay: give at least one --to HOST:PORT".into()));
    }
    if targets.len() > usize::from(u16::MAX - FIRST_PORT) {
        return Err(UserError(format!("agora cluster relay: {} targets, too many", targets.len())));
    }
    for t in targets {
        let ok =
            t.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
        if !ok {
            return Err(UserError(format!("--to {t:?}: expected HOST:PORT")));
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| UserError(format!("cannot start the relay: {e}")))?;
    rt.block_on(async {
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut tasks = tokio::task::JoinSet::new();
        for (k, target) in targets.iter().enumerate() {
            let port = FIRST_PORT + k as u16;
            let listener = TcpListener::bind(("0.0.0.0", port))
                .await
                .map_err(|e| UserError(format!("cannot listen on port {port}: {e}")))?;
            eprintln!("relay  port {port} -> {target}");
            tasks.spawn(serve(listener, target.clone(), permits.clone()));
        }
        while tasks.join_next().await.is_some() {}
        Ok(0)
    })
}

/// How long a node may take to accept a relayed connection.
const CONNECT_WITHIN: Duration = Duration::from_secs(5);

/// Once one side of a relayed connection has closed, how long the other may go on.
const CLOSE_WITHIN: Duration = Duration::from_secs(5);

/// Says `what` on stderr, at most once a second (a flood of refused connections writes no
/// more), with how many were not said since.
fn say(what: String) {
    static LAST_S: AtomicU64 = AtomicU64::new(0);
    static UNSAID: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if LAST_S.swap(now, Ordering::Relaxed) == now {
        UNSAID.fetch_add(1, Ordering::Relaxed);
        return;
    }
    match UNSAID.swap(0, Ordering::Relaxed) {
        0 => eprintln!("relay  {what}"),
        n => eprintln!("relay  {what} (and {n} more not said)"),
    }
}

/// Accepts on `listener` for ever and forwards each connection to `target`.
async fn serve(listener: TcpListener, target: String, permits: Arc<Semaphore>) {
    loop {
        let (inbound, from) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors, say: the next accept may succeed.
                say(format!("accept for {target}: {e}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            say(format!("{from} -> {target}: closed, {MAX_CONNECTIONS} connections are relayed already"));
            continue;
        };
        let target = target.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(CONNECT_WITHIN, TcpStream::connect(target.as_str())).await {
                Ok(Ok(outbound)) => splice(inbound, outbound).await,
                Ok(Err(e)) => say(format!("{from} -> {target}: {e}")),
                Err(_) => say(format!("{from} -> {target}: no answer within {} s", CONNECT_WITHIN.as_secs())),
            }
        });
    }
}

/// Copies each way until one side closes or fails; the other then has [`CLOSE_WITHIN`] to
/// finish (a node that never closes, a paused one, holds no permit for longer).
async fn splice(inbound: TcpStream, outbound: TcpStream) {
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (mut in_read, mut in_write) = inbound.into_split();
    let (mut out_read, mut out_write) = outbound.into_split();
    let up = async {
        let _ = tokio::io::copy(&mut in_read, &mut out_write).await;
        let _ = out_write.shutdown().await;
    };
    let down = async {
        let _ = tokio::io::copy(&mut out_read, &mut in_write).await;
        let _ = in_write.shutdown().await;
    };
    tokio::pin!(up, down);
    tokio::select! {
        () = &mut up => { let _ = tokio::time::timeout(CLOSE_WITHIN, down).await; }
        () = &mut down => { let _ = tokio::time::timeout(CLOSE_WITHIN, up).await; }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A guard against a hang: far longer than anything here takes.
    const GUARD: Duration = Duration::from_secs(60);

    /// A relay of at most `permits` connections to `target`, on a port the kernel picks.
    async fn relay_to(target: String, permits: usize) -> std::net::SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = l.local_addr().unwrap();
        tokio::spawn(serve(l, target, Arc::new(Semaphore::new(permits))));
        at
    }

    /// A node that answers `pong` to each `ping` and never closes a connection itself.
    async fn node() -> std::net::SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut b = [0u8; 4];
                    while s.read_exact(&mut b).await.is_ok() {
                        let _ = s.write_all(b"pong").await;
                    }
                    // Its client's side ended; it keeps its own open for ever.
                    std::future::pending::<()>().await;
                    drop(s);
                });
            }
        });
        at
    }

    async fn ping(c: &mut TcpStream) -> [u8; 4] {
        c.write_all(b"ping").await.unwrap();
        let mut b = [0u8; 4];
        tokio::time::timeout(GUARD, c.read_exact(&mut b)).await.expect("an answer").expect("read");
        b
    }

    #[tokio::test]
    async fn bytes_go_both_ways_and_a_node_that_never_closes_is_cut_off_once_its_client_has() {
        let relay = relay_to(node().await.to_string(), 4).await;
        let mut c = TcpStream::connect(relay).await.unwrap();
        assert_eq!(&ping(&mut c).await, b"pong");
        // The client is done sending: the node never closes, so the relay must end it.
        c.shutdown().await.unwrap();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(GUARD, c.read_to_end(&mut rest)).await;
        assert!(matches!(read, Ok(Ok(0))), "the relayed connection was not ended: {read:?}");
    }

    #[tokio::test]
    async fn a_connection_over_the_limit_is_closed_and_the_others_go_on() {
        let relay = relay_to(node().await.to_string(), 1).await;
        let mut first = TcpStream::connect(relay).await.unwrap();
        assert_eq!(&ping(&mut first).await, b"pong");
        let mut second = TcpStream::connect(relay).await.unwrap();
        let mut got = Vec::new();
        let read = tokio::time::timeout(GUARD, second.read_to_end(&mut got)).await;
        assert!(matches!(read, Ok(Ok(0))), "the connection over the limit was not closed: {read:?}");
        assert_eq!(&ping(&mut first).await, b"pong");
    }

    #[tokio::test]
    async fn a_target_not_found_closes_the_relayed_connection() {
        // A name that resolves nowhere (a Swarm's task not in its DNS yet, say).
        let relay = relay_to("no-such-node.invalid:7000".into(), 4).await;
        let mut c = TcpStream::connect(relay).await.unwrap();
        let mut got = Vec::new();
        let read = tokio::time::timeout(GUARD, c.read_to_end(&mut got)).await;
        assert!(matches!(read, Ok(Ok(0))), "{read:?}");
    }
}
