//! The replicas `agora kv` runs in this process: started together, and with `--ui` crashed
//! and restarted one at a time.
//!
//! **A crash** is as close to `kill -9` as one process allows: the replica's driver task is
//! aborted (it lands between two of the driver's batches, so what the last batch committed
//! is in redb and nothing later is), and the replica's own stop signal closes its listening
//! sockets and every connection it has — to its peers, from its peers, from RESP clients —
//! so frames still queued for its peers are lost. **A restart** binds the same two
//! addresses again and starts the replica from its database, as `agora kv serve` does after a
//! crash: a new client session, the Raft state it persisted.

use super::front::{self, Front};
use super::history::History;
use super::node::{KvNode, KvSetup};
use crate::commands::shared::tcp::{listen_for_clients, rebind, REBIND_TRIES, REBIND_WAIT};
use crate::error::UserError;
use crate::resp::Limits;
use agora_core::NodeId;
use agora_net::node::{start_with, BoundNode};
use agora_net::store::{OpenMode, StoreError};
use agora_net::{LocalCall, NetConfig, NodeReport, NodeShared, ObsHook};
use agora_protocols::raft::RaftObs;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// What starting a replica of this process takes; the same for its restarts.
pub struct Launcher {
    pub setup: Arc<KvSetup>,
    pub cfg: Arc<NetConfig>,
    pub in_flight: Arc<AtomicI64>,
    pub resp_addrs: Vec<SocketAddr>,
    /// Each replica's RESP address as INFO and ROLE tell it.
    pub resp_shown: Vec<String>,
    pub limits: Limits,
    pub timeout: Duration,
    pub max_clients: usize,
    pub history: Option<Arc<History>>,
    /// The command's own observation hook (`agora kv serve --events`).
    pub on_obs: Option<ObsHook<RaftObs>>,
    /// Leader changes for the live view: (replica, observation); dropped when full.
    pub leaders: Option<mpsc::Sender<(NodeId, RaftObs)>>,
}

/// A replica running in this process.
pub struct Running {
    /// Its driver's shared state: metrics, failure.
    pub shared: Arc<NodeShared>,
    /// Its local calls (the front end's, and the live view's status requests).
    pub calls: mpsc::UnboundedSender<LocalCall<KvNode>>,
    handle: JoinHandle<NodeReport<RaftObs>>,
    /// This replica's own stop: its driver, its connections, its front end.
    stop: watch::Sender<bool>,
}

impl Launcher {
    /// Starts replica `id` on its bound sockets.
    pub fn launch(&self, id: NodeId, bound: BoundNode, resp: TcpListener) -> Result<Running, UserError> {
        self.start(id, bound, resp, self.cfg.clone()).map_err(|e| UserError::from_run(e.into()))
    }

    fn start(
        &self,
        id: NodeId,
        bound: BoundNode,
        resp: TcpListener,
        cfg: Arc<NetConfig>,
    ) -> Result<Running, StoreError> {
        let (stop_tx, stop) = watch::channel(false);
        let (calls_tx, calls_rx) = mpsc::unbounded_channel::<LocalCall<KvNode>>();
        let (shared, handle) = start_with(
            self.setup.clone(),
            bound,
            cfg,
            self.in_flight.clone(),
            stop.clone(),
            self.hook(id),
            Some(calls_rx),
        )?;
        let front = Arc::new(Front {
            me: id,
            calls: calls_tx.clone(),
            limits: self.limits,
            timeout: self.timeout,
            max_clients: self.max_clients,
            history: self.history.clone(),
            resp_shown: self.resp_shown.clone(),
            port: resp.local_addr().map_or(0, |a| a.port()),
            accepted: AtomicU64::new(0),
        });
        tokio::spawn(front::serve(resp, front, stop));
        Ok(Running { shared, calls: calls_tx, handle, stop: stop_tx })
    }

    /// The command's hook and the live view's, as one.
    fn hook(&self, id: NodeId) -> Option<ObsHook<RaftObs>> {
        let Some(leaders) = self.leaders.clone() else { return self.on_obs.clone() };
        let own = self.on_obs.clone();
        Some(Arc::new(move |at: u64, o: &RaftObs| {
            if let Some(h) = &own {
                h(at, o);
            }
            if matches!(o, RaftObs::Leader { .. } | RaftObs::SteppedDown { .. }) {
                let _ = leaders.try_send((id, o.clone()));
            }
        }))
    }

    /// Starts replica `id` again from its database, on the addresses it had. The crashed
    /// replica's database may still be held for a moment (a write it deferred finishing off
    /// its driver's task): a start that finds it open tries again, as a bind does.
    pub async fn restart(&self, id: NodeId) -> Result<Running, String> {
        let i = id.index();
        let mut cfg = (*self.cfg).clone();
        cfg.open = OpenMode::Existing;
        let cfg = Arc::new(cfg);
        let mut tries = 0;
        loop {
            let bound = rebind(|| BoundNode::bind(id, self.cfg.addrs[i])).await?;
            let resp = rebind(|| async { listen_for_clients(self.resp_addrs[i]) }).await?;
            match self.start(id, bound, resp, cfg.clone()) {
                Ok(r) => return Ok(r),
                Err(StoreError::Db { .. }) if tries < REBIND_TRIES => {
                    tries += 1;
                    tokio::time::sleep(REBIND_WAIT).await;
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}

impl Running {
    /// Crashes the replica: its driver aborted, its sockets and connections closed. Returns
    /// once the driver is gone (its database closed).
    pub async fn crash(self) {
        self.handle.abort();
        let _ = self.stop.send(true);
        let _ = self.handle.await;
    }

    /// Stops the replica as the command ends.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.handle.await;
    }
}
