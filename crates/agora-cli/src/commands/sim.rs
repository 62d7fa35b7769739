//! `agora sim`: one simulated run, its summary, and on request a diagram and per-node CSV.

use super::shared::{output, print, repro};
use crate::cli::SimArgs;
use crate::error::UserError;
use crate::faults;
use agora_core::{Counters, RunSummary, Setup, Time};
use agora_protocols::registry::cluster_size;
use agora_protocols::Driver;
use agora_sim::diagram::{render_svg, MAX_DIAGRAM_EVENTS, MAX_DIAGRAM_NODES};
use agora_sim::{SimConfig, Simulation};

/// What one simulated run gives the CLI.
pub struct SimResult {
    pub summary: RunSummary,
    /// The diagram, or why it could not be drawn.
    pub diagram: Option<Result<String, String>>,
    pub per_node: Vec<Counters>,
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
        let diagram = out.recording.as_ref().map(|r| {
            if r.complete() {
                Ok(render_svg(&title, out.nodes, r))
            } else {
                Err(format!(
                    "the run had {} events; a diagram shows at most {MAX_DIAGRAM_EVENTS}: use fewer nodes or a smaller --max-time-ms",
                    r.events_seen()
                ))
            }
        });
        SimResult { summary, diagram, per_node: out.per_node }
    }
}

/// Runs `agora sim`; returns the process exit code.
pub fn run(args: &SimArgs, argv: Vec<String>) -> Result<i32, UserError> {
    if let Some(path) = &args.schedule {
        return super::schedule::sim(args, path);
    }
    let p = &args.params;
    let params = p.params(args.seed);
    let faults = faults::build(&args.faults, cluster_size(&args.protocol, &params)?)?;
    if args.diagram.is_some() && p.nodes > MAX_DIAGRAM_NODES {
        return Err(UserError(format!(
            "--diagram draws at most {MAX_DIAGRAM_NODES} nodes; this run has {}",
            p.nodes
        )));
    }
    let mut config = SimConfig::new(args.seed).with_faults(faults);
    config.max_time = Time::from_millis_f64(args.max_time_ms);
    config.max_events = args.max_events.unwrap_or(u64::MAX);
    config.record_events = args.diagram.as_ref().map(|_| MAX_DIAGRAM_EVENTS);
    let result = agora_protocols::dispatch(&args.protocol, &params, SimDriver { config, argv })?;

    print(&result.summary, args.json);
    if let Some(path) = &args.per_node {
        output::write_file(path, &output::per_node_csv(&result.per_node))?;
    }
    if let (Some(path), Some(diagram)) = (&args.diagram, &result.diagram) {
        match diagram {
            Ok(svg) => {
                output::write_file(path, svg)?;
                if !args.json {
                    println!("diagram        {}", path.display());
                }
            }
            Err(why) => return Err(UserError(why.clone())),
        }
    }
    Ok(if result.summary.violations.is_empty() { 0 } else { 1 })
}
