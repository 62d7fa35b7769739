//! Running the election: in the simulator, under the fault flags (`--sim`), or over loopback
//! TCP with every node in this process and its own redb database, a progress bar counting the
//! ballots answered.

use super::live::{keep, Ballots};
use super::report::{ops_of, report, Report};
use crate::cli::ElectionRunArgs;
use crate::commands::shared::tcp::{local_config, temp_dir, Progress};
use crate::commands::shared::ui::sampler::{Linger, Watched};
use crate::commands::shared::{output, progress_bar, repro};
use crate::commands::sim;
use crate::error::UserError;
use crate::faults;
use agora_core::{RunSummary, Setup, Time};
use agora_net::Gathered;
use agora_protocols::vote_count::setup::VoteSetup;
use agora_sim::{Faults, SimConfig, Simulation};
use std::sync::Arc;
use std::time::Duration;

/// The election in the simulator.
pub(super) fn simulate(a: &ElectionRunArgs, setup: VoteSetup, argv: &[String]) -> Result<Report, UserError> {
    let mut cfg = SimConfig::new(a.seed).with_faults(sim_faults(a, &setup)?);
    cfg.max_time = Time::from_millis_f64(a.max_time_ms);
    cfg.keep_observations = true;
    let spec = setup.s.spec.clone();
    let replicas = setup.s.replicas;
    let out = Simulation::new(setup, cfg).run();
    let summary = sim::summary_of(&out, argv);
    let obs = out.observations.iter().map(|(t, n, o)| (t.as_nanos(), *n, o));
    Ok(Report { ops: ops_of(&out.metrics), ..report(&spec, replicas, "sim", obs, summary) })
}

/// The fault flags, with `--crash-replicas K`: K random crashes of replicas, restarted.
fn sim_faults(a: &ElectionRunArgs, setup: &VoteSetup) -> Result<Faults, UserError> {
    let n = setup.nodes();
    let mut f = faults::build(&a.faults, n)?;
    if let Some(k) = a.crash_replicas {
        let replicas = setup.s.replicas as u32;
        f.random_crashes = Some(agora_sim::faults::RandomCrashes {
            count: k,
            nodes: Some(format!("0..{replicas}").parse().map_err(UserError)?),
            from_ms: 0.0,
            to_ms: 2_000.0,
            min_down_ms: 20.0,
            max_down_ms: 500.0,
            restart: true,
            wipe: agora_sim::Wipe::No,
        });
    }
    f.validate(n).map_err(|e| UserError(e.to_string()))?;
    Ok(f)
}

/// The election over loopback TCP, every node in this process, with its live view if `--ui`
/// asks (still to be waited for, with `--ui-linger`, once the report is printed).
pub(super) fn over_tcp(
    a: &ElectionRunArgs,
    setup: VoteSetup,
    argv: &[String],
) -> Result<(Report, Linger), UserError> {
    let spec = setup.s.spec.clone();
    let replicas = setup.s.replicas;
    let citizens: Vec<usize> = (0..spec.regions.len()).map(|r| setup.s.citizen(r).index()).collect();
    let ballots = Ballots::new(&spec, setup.s.roll.as_deref().map(Vec::as_slice));
    let setup = Arc::new(setup);
    let tmp;
    let dir = match &a.data_dir {
        Some(d) => d.clone(),
        None => {
            tmp = temp_dir()?;
            tmp.path().to_path_buf()
        }
    };
    let mut cfg = local_config("election", dir, a.seed);
    cfg.max_batch_bytes = 256 * 1024;
    let mut run = Watched::new(&a.live, setup.nodes(), Box::new(ballots), keep)?;
    let bar = progress_bar(
        spec.voters,
        "voting [{bar:40}] {pos}/{len} ballots answered, {per_sec}, {elapsed}",
        a.json,
    );
    let progress = Progress::start(bar, move |nodes| {
        citizens
            .iter()
            .filter_map(|&i| nodes.get(i))
            .map(|n| n.live.lock().expect("metrics lock").0.ops_ended())
            .sum()
    });
    let max = Duration::from_secs_f64(a.max_time_ms / 1e3);
    let out = run.run(&setup, cfg, max, progress.hook());
    progress.finish();
    let mut g = Gathered::from_run(setup.nodes(), out?);
    g.observations.sort_by_key(|(t, n, _)| (*t, *n));
    // The summary runs the checker; the report reads the same observations first.
    let empty =
        RunSummary::from_metrics("election", "tcp", 0, 0, "", &agora_core::Metrics::new(), &[], 0.0, 0.0, 0);
    let pre = report(&spec, replicas, "tcp", g.observations.iter().map(|(t, n, o)| (*t, *n, o)), empty);
    let ops = ops_of(&g.metrics);
    let reproduce = repro::command(argv, a.seed);
    let mut summary = agora_net::summarize(&*setup, a.seed, g, &reproduce);
    summary.peak_rss_mb = output::peak_rss_mb();
    let linger = run.finish(&summary, &reproduce);
    let report = Report {
        latency_ms_p50: summary.latency_ms.p50_ms,
        latency_ms_p99: summary.latency_ms.p99_ms,
        checks_passed: summary.violations.is_empty(),
        summary,
        ops,
        ..pre
    };
    Ok((report, linger))
}
