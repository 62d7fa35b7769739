//! The parameters of the Raft-replicated key-value store: its replicas and clients, the
//! clients' workload, snapshots, and the broken variants its checker must catch.

use super::kv::{KvSetup, Workload};
use crate::params::{
    count, real, ParamError, Resolved, Spec, CLIENTS, INTERVAL_MS, MSGS, READS, SNAPSHOT_EVERY, TIMEOUT_MS,
    VARIANT, WINDOW,
};
use crate::registry::FromParams;
use std::sync::Arc;

/// Most replicas of one cluster.
pub const MAX_REPLICAS: usize = 15;

impl FromParams for KvSetup {
    const SPECS: &'static [Spec] = &[
        Spec::new(&CLIENTS, count(2)),
        Spec::new(&MSGS, count(50)),
        Spec::new(&WINDOW, count(100)),
        Spec::new(&INTERVAL_MS, real(5.0)),
        Spec::new(&READS, real(0.25)),
        Spec::new(&SNAPSHOT_EVERY, count(64)),
        Spec::new(&TIMEOUT_MS, real(20.0)),
        Spec::optional(&VARIANT),
    ];
    /// `nodes` are the replicas; the clients come after them.
    fn from_params(p: &Resolved) -> Result<Self, ParamError> {
        let variant = p.variant(&["correct", "stale-reads", "no-dedup", "no-log-check"])?;
        p.at_most_nodes(MAX_REPLICAS, "Raft replicas")?;
        let timeout = p.millis(&TIMEOUT_MS);
        let work = Workload {
            ops: p.count(&MSGS),
            window: p.count(&WINDOW),
            interval: p.millis(&INTERVAL_MS),
            reads: p.real(&READS),
            retry: timeout * 5,
        };
        let mut setup = KvSetup::new(p.nodes, p.count(&CLIENTS), timeout, work);
        let cfg = Arc::get_mut(&mut setup.raft).expect("just built");
        cfg.snapshot_every = p.count(&SNAPSHOT_EVERY);
        cfg.stale_reads = variant == "stale-reads";
        cfg.dedup = variant != "no-dedup";
        cfg.log_check = variant != "no-log-check";
        Ok(setup)
    }
}
