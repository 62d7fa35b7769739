//! Running the market: in the simulator under the fault flags (`--sim`), or over loopback TCP
//! with every peer in this process and its own redb database, a progress bar counting the
//! answers the buyers got.

use super::live::{keep, Trades};
use super::report::{report, Report};
use crate::cli::MarketArgs;
use crate::commands::shared::tcp::{local_config, temp_dir, Progress};
use crate::commands::shared::ui::sampler::{Linger, Watched};
use crate::commands::shared::{output, progress_bar, repro};
use crate::commands::sim;
use crate::error::UserError;
use crate::faults;
use agora_core::{Setup, Time};
use agora_net::{Gathered, NodeShared};
use agora_protocols::market::roles::Role;
use agora_protocols::market::MarketSetup;
use agora_sim::{SimConfig, Simulation};
use std::sync::Arc;
use std::time::Duration;

/// The market in the simulator.
pub(super) fn simulate(
    a: &MarketArgs,
    scenario: &str,
    setup: MarketSetup,
    argv: &[String],
) -> Result<Report, UserError> {
    let faults = faults::build(&a.faults, setup.nodes())?;
    let mut cfg = SimConfig::new(a.seed).with_faults(faults);
    cfg.max_time = Time::from_millis_f64(a.max_time_ms);
    cfg.keep_observations = true;
    let s = setup.s.clone();
    let out = Simulation::new(setup, cfg).run();
    let summary = sim::summary_of(&out, argv);
    let obs = out.observations.iter().map(|(t, n, o)| (t.as_nanos(), *n, o));
    Ok(report(&s, scenario, "sim", obs, summary))
}

/// The market over loopback TCP, every peer in this process, with its live view if `--ui`
/// asks (still to be waited for, with `--ui-linger`, once the report is printed).
pub(super) fn over_tcp(
    a: &MarketArgs,
    scenario: &str,
    setup: MarketSetup,
    argv: &[String],
) -> Result<(Report, Linger), UserError> {
    let s = setup.s.clone();
    let mut run = Watched::new(&a.live, setup.nodes(), Box::new(Trades::new(s.clone())), keep)?;
    let buyers: Vec<usize> =
        s.roles.iter().enumerate().filter(|(_, r)| matches!(r, Role::Buyer { .. })).map(|(i, _)| i).collect();
    let total = buyers.len() as u64 * s.buys;
    let template = "trading [{bar:40}] {pos}/{len} buys answered, {per_sec}, {elapsed}";
    let progress = Progress::start(progress_bar(total, template, a.json), move |nodes| {
        answers(nodes, &buyers).min(total)
    });
    let setup = Arc::new(setup);
    let max = Duration::from_secs_f64(a.max_time_ms / 1e3);
    let dir = temp_dir()?;
    let cfg = local_config("market", dir.path().to_path_buf(), a.seed);
    let out = run.run(&setup, cfg, max, progress.hook());
    progress.finish();
    let g = Gathered::from_run(setup.nodes(), out?);
    let reproduce = repro::command(argv, a.seed);
    // The observations come back sorted by time, then node, as the report reads them.
    let (mut summary, obs) = agora_net::summarize_keeping(&*setup, a.seed, g, &reproduce);
    summary.peak_rss_mb = output::peak_rss_mb();
    let linger = run.finish(&summary, &reproduce);
    Ok((report(&s, scenario, "tcp", obs.iter().map(|(t, n, o)| (*t, *n, o)), summary), linger))
}

/// Answers the buyers took so far: each buy is a metrics operation, from asked to answered.
fn answers(nodes: &[Arc<NodeShared>], buyers: &[usize]) -> u64 {
    let taken = |n: &NodeShared| n.live.lock().expect("metrics lock").0.ops_ended();
    buyers.iter().filter_map(|&i| nodes.get(i)).map(|n| taken(n)).sum()
}
