//! `agora sim`: one simulated run, its summary, and on request a diagram, a replay page and
//! per-node CSV.

use super::shared::{output, print, replay, repro};
use crate::cli::SimArgs;
use crate::error::UserError;
use crate::faults;
use agora_core::{Counters, RunSummary, Setup, Time};
use agora_protocols::registry::cluster_size;
use agora_protocols::Driver;
use agora_sim::diagram::{render_svg, Recorder, MAX_DIAGRAM_EVENTS, MAX_DIAGRAM_NODES};
use agora_sim::{SimConfig, Simulation};

/// What one simulated run gives the CLI.
pub struct SimResult {
    pub summary: RunSummary,
    /// The run's events, when the configuration asked to record them.
    pub recording: Option<Recording>,
    pub per_node: Vec<Counters>,
}

/// A run's recorded events, with what a diagram of them needs besides.
pub struct Recording {
    /// The diagram's title: protocol, cluster size, seed.
    pub title: String,
    pub nodes: usize,
    pub events: Recorder,
}

/// Runs any protocol's setup in the simulator.
pub struct SimDriver {
    pub config: SimConfig,
    /// `agora` arguments, to build reproduce commands.
    pub argv: Vec<String>,
}

/// The summary of a simulated run, with reproduce commands built from `argv`.
pub fn summary_of<O>(out: &agora_sim::Outcome<O>, argv: &[String]) -> RunSummary {
    let mut summary = out.summary(&repro::command(argv, out.seed));
    summary.peak_rss_mb = output::peak_rss_mb();
    summary
}

impl Driver for SimDriver {
    type Output = SimResult;

    fn run<S: Setup>(self, setup: S) -> SimResult {
        let title = format!("{} — {} nodes, seed {}", setup.name(), setup.nodes(), self.config.seed);
        let out = Simulation::new(setup, self.config).run();
        let summary = summary_of(&out, &self.argv);
        let nodes = out.nodes;
        let recording = out.recording.map(|events| Recording { title, nodes, events });
        SimResult { summary, recording, per_node: out.per_node }
    }
}

/// Runs `agora sim`; returns the process exit code.
pub fn run(args: &SimArgs, argv: Vec<String>) -> Result<i32, UserError> {
    if let Some(path) = &args.schedule {
        return super::schedule::sim(args, path);
    }
    let p = &args.params;
    let params = p.params(args.seed);
    let n = cluster_size(&args.protocol, &params)?;
    let faults = faults::build(&args.faults, n)?;
    for (flag, given) in [("--diagram", args.diagram.is_some()), ("--html", args.html.is_some())] {
        if given && n > MAX_DIAGRAM_NODES {
            return Err(UserError(format!(
                "{flag} draws at most {MAX_DIAGRAM_NODES} nodes; this run has {n}"
            )));
        }
    }
    let mut config = SimConfig::new(args.seed).with_faults(faults);
    config.max_time = Time::from_millis_f64(args.max_time_ms);
    config.max_events = args.max_events.unwrap_or(u64::MAX);
    config.record_events = (args.diagram.is_some() || args.html.is_some()).then_some(MAX_DIAGRAM_EVENTS);
    let reproduce = repro::command(&argv, args.seed);
    let result = agora_protocols::dispatch(&args.protocol, &params, SimDriver { config, argv })?;

    print(&result.summary, args.json);
    if let Some(path) = &args.per_node {
        output::write_file(path, &output::per_node_csv(&result.per_node))?;
    }
    if let Some(rec) = &result.recording {
        if !rec.events.complete() {
            return Err(UserError(format!(
                "the run had {} events; a diagram shows at most {MAX_DIAGRAM_EVENTS}: use fewer nodes or a smaller --max-time-ms",
                rec.events.events_seen()
            )));
        }
        if let Some(path) = &args.diagram {
            output::write_file(path, &render_svg(&rec.title, rec.nodes, &rec.events))?;
            if !args.json {
                println!("diagram        {}", path.display());
            }
        }
        if let Some(path) = &args.html {
            let page = replay::render(&rec.title, rec.nodes, &rec.events, &result.summary, &reproduce);
            output::write_file(path, &page)?;
            if !args.json {
                println!("replay page    {}", path.display());
            }
        }
    }
    Ok(if result.summary.violations.is_empty() { 0 } else { 1 })
}
