//! `--metrics-addr`: the nodes' counters in Prometheus text format over a minimal HTTP/1.1
//! responder. Every request gets the metrics, but for the paths a [`Page`] serves (a JSON
//! page of the caller's: `agora node`'s `/counts`); a client that sends more than 8 KiB of
//! headers, or nothing within two seconds, is closed.

use crate::clock::cpu_ms;
use crate::node::NodeShared;
use agora_core::Counters;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tracing::warn;

/// The nodes whose counters are served, with their ids.
pub type Registry = Arc<std::sync::Mutex<Vec<(u32, Arc<NodeShared>)>>>;

/// Another page than the metrics: given a request's path and the nodes, its JSON body, if
/// it serves that path.
pub type Page = Arc<dyn Fn(&str, &[(u32, Arc<NodeShared>)]) -> Option<String> + Send + Sync>;

type Series = (&'static str, &'static str, fn(&Counters) -> u64);
type Snapshot = (u32, Counters, Vec<(String, Counters)>);

/// Renders the counters of `(node id, node)` pairs.
pub fn render(nodes: &[(u32, Arc<NodeShared>)]) -> String {
    let mut out = String::new();
    let series: [Series; 6] = [
        ("agora_messages_sent_total", "Messages sent, one per destination.", |c| c.sent),
        ("agora_messages_delivered_total", "Messages handed to the node's protocol.", |c| c.delivered),
        ("agora_messages_dropped_total", "Messages dropped because a send queue was full.", |c| c.dropped),
        ("agora_messages_duplicated_total", "Duplicates (always 0 over TCP).", |c| c.duplicated),
        ("agora_bytes_sent_total", "Wire bytes sent, frame headers included.", |c| c.bytes_sent),
        ("agora_bytes_delivered_total", "Wire bytes delivered.", |c| c.bytes_delivered),
    ];
    let snapshot: Vec<Snapshot> = nodes
        .iter()
        .map(|(id, s)| {
            let live = s.live.lock().expect("metrics lock");
            let kinds = live.0.by_kind().iter().map(|(k, c)| (k.to_string(), *c)).collect();
            (*id, live.1, kinds)
        })
        .collect();
    for (name, help, get) in series {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (id, c, _) in &snapshot {
            let _ = writeln!(out, "{name}{{node=\"{id}\"}} {}", get(c));
        }
    }
    let _ = writeln!(out, "# HELP agora_kind_messages_sent_total Messages sent, by message type and node.");
    let _ = writeln!(out, "# TYPE agora_kind_messages_sent_total counter");
    for (id, _, kinds) in &snapshot {
        for (k, c) in kinds {
            let _ = writeln!(out, "agora_kind_messages_sent_total{{node=\"{id}\",kind=\"{k}\"}} {}", c.sent);
        }
    }
    let _ = writeln!(out, "# HELP agora_process_cpu_seconds_total CPU time of this process.");
    let _ = writeln!(out, "# TYPE agora_process_cpu_seconds_total counter");
    let _ = writeln!(out, "agora_process_cpu_seconds_total {:.3}", cpu_ms() / 1e3);
    out
}

/// Serves the metrics on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, nodes: Registry, page: Option<Page>) {
    loop {
        let Ok((mut stream, addr)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let (nodes, page) = (nodes.clone(), page.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8 * 1024];
            let mut used = 0;
            let read = tokio::time::timeout(Duration::from_secs(2), async {
                loop {
                    let n = stream.read(&mut buf[used..]).await?;
                    used += n;
                    if n == 0 || buf[..used].windows(4).any(|w| w == b"\r\n\r\n") || used == buf.len() {
                        return Ok::<_, std::io::Error>(());
                    }
                }
            })
            .await;
            if !matches!(read, Ok(Ok(()))) || !buf[..used].windows(4).any(|w| w == b"\r\n\r\n") {
                warn!("metrics: closing connection from {addr}: no complete HTTP request");
                return;
            }
            let path = std::str::from_utf8(&buf[..used]).ok().and_then(|r| r.split_whitespace().nth(1));
            let (body, kind) = {
                let nodes = nodes.lock().expect("metrics nodes lock");
                match page.as_ref().zip(path).and_then(|(page, path)| page(path, &nodes)) {
                    Some(json) => (json, "application/json"),
                    None => (render(&nodes), "text/plain; version=0.0.4"),
                }
            };
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(body.as_bytes()).await;
        });
    }
}

/// Binds `addr` and serves the metrics of the nodes put into the returned list, and `page`'s
/// paths.
pub async fn start(addr: SocketAddr, page: Option<Page>) -> std::io::Result<(SocketAddr, Registry)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let nodes = Arc::new(std::sync::Mutex::new(Vec::new()));
    tokio::spawn(serve(listener, nodes.clone(), page));
    Ok((local, nodes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::NodeShared;
    use agora_core::Counters;
    use agora_core::Metrics;
    use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64};
    use std::sync::Mutex;

    fn node(sent: u64) -> Arc<NodeShared> {
        let mut m = Metrics::new();
        let k = m.kind_index("PING");
        m.sent(k, 10 * sent);
        Arc::new(NodeShared {
            in_flight: Arc::new(AtomicI64::new(0)),
            pending: AtomicI64::new(0),
            last_active_ns: AtomicU64::new(0),
            live: Mutex::new((m, Counters { sent, ..Counters::default() })),
            failed: AtomicBool::new(false),
            unsent: Arc::new(AtomicI64::new(0)),
            background_since_ns: AtomicU64::new(0),
            inbound_buffered_bytes: Arc::new(AtomicI64::new(0)),
            leave: tokio::sync::Notify::new(),
            left: AtomicBool::new(false),
            sent_to: Vec::new(),
            received_from: Vec::new(),
            paused: tokio::sync::watch::Sender::new(false),
            cut_to: Vec::new(),
            cut_from: Vec::new(),
            recent: None,
        })
    }

    #[tokio::test]
    async fn serves_counters_in_text_format_and_drops_junk() {
        let page: Page = Arc::new(|path, nodes| (path == "/count").then(|| nodes.len().to_string()));
        let (addr, list) = start("127.0.0.1:0".parse().unwrap(), Some(page)).await.unwrap();
        *list.lock().unwrap() = vec![(0, node(3)), (1, node(4))];
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).await.unwrap();
        assert!(body.starts_with("HTTP/1.1 200 OK"));
        assert!(body.contains("# TYPE agora_messages_sent_total counter"));
        assert!(body.contains("agora_messages_sent_total{node=\"1\"} 4"));
        assert!(body.contains("agora_kind_messages_sent_total{node=\"0\",kind=\"PING\"} 1"));
        // 9 KiB without an end of headers: closed without an answer, and the server goes on.
        let mut junk = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _ = junk.write_all(&[b'x'; 9 * 1024]).await;
        let mut got = Vec::new();
        let _ = junk.read_to_end(&mut got).await;
        assert!(got.is_empty());
        let mut again = tokio::net::TcpStream::connect(addr).await.unwrap();
        again.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
        let mut body = String::new();
        again.read_to_string(&mut body).await.unwrap();
        assert!(body.contains("agora_process_cpu_seconds_total"));
        // The page's own path gets the page, as JSON.
        let mut page = tokio::net::TcpStream::connect(addr).await.unwrap();
        page.write_all(b"GET /count HTTP/1.1\r\n\r\n").await.unwrap();
        let mut body = String::new();
        page.read_to_string(&mut body).await.unwrap();
        assert!(body.contains("Content-Type: application/json") && body.ends_with("\r\n\r\n2"), "{body}");
    }
}
