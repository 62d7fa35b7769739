//! `agora run`: every node of a protocol's cluster in this process over loopback TCP.

use super::shared::tcp::{local_config, metrics_endpoint, parse_addr};
use super::shared::ui::sampler::{Linger, Plain, Watched};
use super::shared::{exit_code, output, print, repro};
use crate::cli::{LiveArgs, RunArgs};
use crate::error::UserError;
use crate::values;
use agora_core::{Protocol, RunSummary, Setup};
use agora_net::{report, Gathered, NetConfig};
use agora_protocols::registry::cluster_size;
use agora_protocols::Driver;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

type ObsOf<S> = <<S as Setup>::Node as Protocol>::Obs;

struct Local {
    cfg: NetConfig,
    max_time: Duration,
    metrics_addr: Option<SocketAddr>,
    reproduce: String,
    live: LiveArgs,
}

impl Driver for Local {
    type Output = Result<(RunSummary, Linger), UserError>;

    fn run<S: Setup>(self, setup: S) -> Self::Output {
        let setup = Arc::new(setup);
        let seed = self.cfg.seed;
        let n = setup.nodes();
        let mut run = Watched::<ObsOf<S>>::new(&self.live, n, Box::new(Plain), |_| true)?;
        let hook = run.runtime().block_on(metrics_endpoint(self.metrics_addr, (0..n as u32).collect()))?;
        let out = run.run(&setup, self.cfg, self.max_time, hook)?;
        let g = Gathered::from_run(n, out);
        let mut summary = report::summarize(&*setup, seed, g, &self.reproduce);
        summary.peak_rss_mb = output::peak_rss_mb();
        let linger = run.finish(&summary, &self.reproduce);
        Ok((summary, linger))
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
        live: args.live.clone(),
    };
    let (summary, linger) = agora_protocols::dispatch(&args.protocol, &params, driver)??;
    print(&summary, args.json);
    linger.wait();
    Ok(exit_code(&summary))
}
