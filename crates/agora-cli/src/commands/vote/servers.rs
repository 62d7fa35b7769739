//! The servers `agora vote` runs in this process: started together, and with `--ui` crashed
//! and restarted one at a time, as `agora kv`'s `embedded.rs` does for its replicas.
//!
//! **A crash** stops a server's driver and its members' front end together: the driver task
//! is aborted (between two of its batches: what the last one committed is in redb, nothing
//! later is), and the server's own stop signal closes its cluster socket, its connections to
//! and from its peers, and its members' listener and connections (each member is told `BYE
//! shutdown` as its connection closes). **A restart** binds the same two addresses again and
//! starts the driver from its database (the Raft log holds the board and the members'
//! sessions) with a new front end: a member that reconnects there, or to any other server,
//! resumes its session with its token (`RESUME`).

use super::front::{self, Front};
use super::node::{VoteNode, VoteObs, VoteSetup};
use super::{FrontSettings, NodeThread};
use crate::commands::shared::tcp::{listen_for_clients, rebind, REBIND_TRIES, REBIND_WAIT};
use crate::error::UserError;
use agora_core::NodeId;
use agora_net::node::{start_with, BoundNode};
use agora_net::store::{OpenMode, StoreError};
use agora_net::{LocalCall, NetConfig, NodeReport, NodeShared, ObsHooks};
use std::net::SocketAddr;
use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// What starting a server of this process takes; the same for its restarts.
pub(super) struct Launcher {
    pub setup: Arc<VoteSetup>,
    pub cfg: Arc<NetConfig>,
    pub in_flight: Arc<AtomicI64>,
    pub common: FrontSettings,
    /// Each server's observation hook.
    pub on_obs: Option<ObsHooks<VoteObs>>,
    /// Where each server serves its members (bound again on a restart).
    pub member_addrs: Vec<SocketAddr>,
    /// The servers' drivers run here, apart from the members' connections.
    pub nodes: NodeThread,
}

/// A server running in this process.
pub(super) struct Running {
    /// Its driver's shared state: counters, switches, failure.
    pub shared: Arc<NodeShared>,
    /// Its local calls (its front end's, and the live view's glances at its board).
    pub calls: mpsc::UnboundedSender<LocalCall<VoteNode>>,
    handle: JoinHandle<NodeReport<VoteObs>>,
    /// This server's own stop: its driver, its connections, its front end.
    stop: watch::Sender<bool>,
}

impl Launcher {
    /// Starts server `id` on its bound sockets (`cluster` listening, not yet registered with
    /// any runtime's reactor: it is, on the node thread).
    pub fn launch(
        &self,
        id: NodeId,
        cluster: std::net::TcpListener,
        members: TcpListener,
    ) -> Result<Running, UserError> {
        self.start(id, cluster, members, self.cfg.clone()).map_err(|e| match e {
            Started::Socket(e) => UserError(format!("server {id}: its cluster socket: {e}")),
            Started::Store(e) => UserError::from_run(e.into()),
        })
    }

    fn start(
        &self,
        id: NodeId,
        cluster: std::net::TcpListener,
        members: TcpListener,
        cfg: Arc<NetConfig>,
    ) -> Result<Running, Started> {
        let (stop_tx, stop) = watch::channel(false);
        let (calls_tx, calls_rx) = mpsc::unbounded_channel::<LocalCall<VoteNode>>();
        let events = self.setup.events[id.index()].clone();
        let (shared, handle) = {
            let _on_node_thread = self.nodes.enter();
            let bound = BoundNode::from_std(id, cluster).map_err(Started::Socket)?;
            start_with(
                self.setup.clone(),
                bound,
                cfg,
                self.in_flight.clone(),
                stop.clone(),
                self.on_obs.as_ref().map(|hook| hook(id)),
                Some(calls_rx),
            )
            .map_err(Started::Store)?
        };
        let c = &self.common;
        let front = Arc::new(Front::new(
            id,
            calls_tx.clone(),
            events,
            c.timeout,
            c.max_clients,
            c.admin.as_deref(),
            c.session_timeout,
        ));
        tokio::spawn(front::serve(members, front, c.tls.clone(), stop));
        Ok(Running { shared, calls: calls_tx, handle, stop: stop_tx })
    }

    /// Starts server `id` again from its database, on the addresses it had. The crashed
    /// server's database may still be held for a moment (a write it deferred finishing off its
    /// driver's task): a start that finds it open tries again, as a bind does.
    pub async fn restart(&self, id: NodeId) -> Result<Running, String> {
        let i = id.index();
        let mut cfg = (*self.cfg).clone();
        cfg.open = OpenMode::Existing;
        let cfg = Arc::new(cfg);
        let mut tries = 0;
        loop {
            // Bound here (tokio's bind reuses the address of the crashed server's sockets),
            // registered on the node thread by `start`.
            let cluster = rebind(|| TcpListener::bind(self.cfg.addrs[i])).await?;
            let cluster = cluster.into_std().map_err(|e| format!("its cluster socket: {e}"))?;
            let members = rebind(|| async { listen_for_clients(self.member_addrs[i]) }).await?;
            match self.start(id, cluster, members, cfg.clone()) {
                Ok(r) => return Ok(r),
                Err(Started::Store(StoreError::Db { .. })) if tries < REBIND_TRIES => {
                    tries += 1;
                    tokio::time::sleep(REBIND_WAIT).await;
                }
                Err(Started::Store(e)) => return Err(e.to_string()),
                Err(Started::Socket(e)) => return Err(format!("its cluster socket: {e}")),
            }
        }
    }
}

/// Why a server did not start.
enum Started {
    Socket(std::io::Error),
    Store(StoreError),
}

impl Running {
    /// Crashes the server: its driver aborted, its sockets and connections closed, its front
    /// end stopped. Returns once the driver is gone (its database closed).
    pub async fn crash(self) {
        self.handle.abort();
        let _ = self.stop.send(true);
        let _ = self.handle.await;
    }

    /// Stops the server as the command ends.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.handle.await;
    }
}

/// The servers of this process, as the page's controls leave them: `None` for one crashed
/// and not restarted. Shared by the command (which stops them at the end), the page's
/// controls and the view's glances at the boards.
pub(super) struct Servers {
    pub launcher: Launcher,
    pub running: tokio::sync::Mutex<Vec<Option<Running>>>,
}

impl Servers {
    /// Each running server's local calls, in id order (`None`: crashed).
    pub async fn calls(&self) -> Vec<Option<mpsc::UnboundedSender<LocalCall<VoteNode>>>> {
        self.running.lock().await.iter().map(|r| r.as_ref().map(|r| r.calls.clone())).collect()
    }
}
