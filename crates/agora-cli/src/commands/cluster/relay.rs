//! `agora cluster relay`: what lets `agora cluster status` reach the nodes of a cluster on a
//! Swarm. An overlay network is not routed from the host, and a task may run on another
//! machine, so `status` starts this relay in a container of its own, attached to the
//! cluster's (attachable) overlay network on the machine it runs on, with its ports published
//! on that machine's loopback. Its `k`-th port forwards each connection to the `k`-th target,
//! a service name that Swarm's DNS resolves to its task's address wherever that task runs;
//! the name is resolved again for every connection, so a task rescheduled elsewhere is found.

use crate::error::UserError;
use std::sync::Arc;
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// The relay's first port: the `k`-th target is reached at `FIRST_PORT + k`.
pub const FIRST_PORT: u16 = 20000;

/// At most this many connections are relayed at once; one more is closed at once, with a
/// line on stderr (a flood of connections costs no memory beyond it).
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

/// Accepts on `listener` for ever and forwards each connection to `target`.
async fn serve(listener: TcpListener, target: String, permits: Arc<Semaphore>) {
    loop {
        let (inbound, from) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors, say: the next accept may succeed.
                eprintln!("relay  accept for {target}: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            eprintln!("relay  {from} -> {target}: closed, {MAX_CONNECTIONS} connections are relayed already");
            continue;
        };
        let target = target.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut inbound = inbound;
            match TcpStream::connect(target.as_str()).await {
                Ok(mut outbound) => {
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    // Either side closing or failing ends the relayed connection.
                    let _ = copy_bidirectional(&mut inbound, &mut outbound).await;
                }
                Err(e) => eprintln!("relay  {from} -> {target}: {e}"),
            }
        });
    }
}
