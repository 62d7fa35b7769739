//! `agora run`: every node of a protocol's cluster in this process over loopback TCP.

use super::shared::tcp::{local_config, metrics_endpoint, parse_addr, runtime};
use super::shared::{exit_code, output, print, repro};
use crate::cli::RunArgs;
use crate::error::UserError;
use crate::values;
use agora_core::{RunSummary, Setup};
use agora_net::{report, run_local, Gathered, NetConfig};
use agora_protocols::registry::cluster_size;
use agora_protocols::Driver;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

struct Local {
    cfg: NetConfig,
    max_time: Duration,
    metrics_addr: Option<SocketAddr>,
    reproduce: String,
}

impl Driver for Local {
    type Output = Result<RunSummary, UserError>;

    fn run<S: Setup>(self, setup: S) -> Self::Output {
        let setup = Arc::new(setup);
        let seed = self.cfg.seed;
        let n = setup.nodes();
        runtime()?.block_on(async move {
            let hook = metrics_endpoint(self.metrics_addr, (0..n as u32).collect()).await?;
            let out =
                run_local(setup.clone(), self.cfg, self.max_time, hook).await.map_err(UserError::from_run)?;
            let g = Gathered::from_run(n, out);
            let mut summary = report::summarize(&*setup, seed, g, &self.reproduce);
            summary.peak_rss_mb = output::peak_rss_mb();
            Ok(summary)
        })
    }
}

/// `agora run`: every node in this process over loopback TCP.
pub fn run(args: &RunArgs, argv: &[String]) -> Result<i32, UserError> {
    let params = args.params.params(args.seed);
    let nodes = cluster_size(&args.protocol, &params)?;
    if nodes > values::MAX_TCP_NODES {
        return Err(UserError(format!(
            "{nodes} nodes over TCP; at most {} (one socket and a database each)",
            values::MAX_TCP_NODES
        )));
    }
    let temp;
    let data_dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::Builder::new()
                .prefix("agora-run-")
                .tempdir()
                .map_err(|e| UserError(format!("cannot create a temporary data directory: {e}")))?;
            temp.path().to_path_buf()
        }
    };
    let driver = Local {
        cfg: local_config(&args.cluster, data_dir, args.seed),
        max_time: Duration::from_secs_f64(args.max_time_ms / 1e3),
        metrics_addr: parse_addr(&args.metrics_addr)?,
        reproduce: repro::command(argv, args.seed),
    };
    let summary = agora_protocols::dispatch(&args.protocol, &params, driver)??;
    print(&summary, args.json);
    Ok(exit_code(&summary))
}
