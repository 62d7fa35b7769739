//! `agora check`: a campaign — one protocol, one fault configuration, many seeds — that prints
//! every failing seed with the command that replays it.

use super::shared::{progress_bar, repro};
use crate::cli::CheckArgs;
use crate::error::UserError;
use crate::faults;
use agora_core::{Setup, Time, Violation};
use agora_protocols::registry::cluster_size;
use agora_protocols::Driver;
use agora_sim::{SimConfig, Simulation};
use indicatif::ProgressBar;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Serialize)]
struct Failure {
    seed: u64,
    property: String,
    node: Option<u32>,
    at_ms: f64,
    detail: String,
    reproduce: String,
}

/// Runs one seed and returns its first violation, if any.
struct One(SimConfig);

impl Driver for One {
    /// The first violation, whether the run hit the event limit, and the properties it
    /// did not judge.
    type Output = (Option<Violation>, bool, Vec<&'static str>);
    fn run<S: Setup>(self, setup: S) -> Self::Output {
        let o = Simulation::new(setup, self.0).run();
        let unjudged = o.not_judged.iter().map(|(p, _)| *p).collect();
        (
            o.violations.into_iter().next(),
            matches!(o.end, agora_sim::EndReason::EventLimit | agora_sim::EndReason::QueueLimit),
            unjudged,
        )
    }
}

/// Runs `agora check`; returns the process exit code.
pub fn run(args: &CheckArgs, argv: &[String]) -> Result<i32, UserError> {
    let seeds = args.seeds.clone();
    // Building the cluster once checks the protocol and its parameters before any run.
    let size = cluster_size(&args.protocol, &args.params.params(seeds.start))?;
    let fault_cfg = faults::build(&args.faults, size)?;
    let argv = replay_argv(args, argv);
    let total = seeds.end - seeds.start;
    let threads =
        args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    let bar = progress_bar(total, "{msg} [{bar:40}] {pos}/{len} seeds, {elapsed} (eta {eta})", args.json);
    bar.set_message(format!("checking {}", args.protocol));
    let campaign = Campaign {
        args,
        faults: fault_cfg,
        argv: &argv,
        bar: &bar,
        next: AtomicU64::new(0),
        failures: Mutex::new(Vec::new()),
        limited: AtomicU64::new(0),
        not_judged: Mutex::new((0, Vec::new())),
    };
    let started = std::time::Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| campaign.work());
        }
    });
    bar.finish_and_clear();
    Ok(campaign.report(started.elapsed().as_secs_f64() * 1e3))
}

/// The arguments of this campaign as a reproduce command takes them: a campaign's limits
/// differ from `agora sim`'s defaults, so its reproduce commands name them.
fn replay_argv(args: &CheckArgs, argv: &[String]) -> Vec<String> {
    let mut argv = argv.to_vec();
    for (flag, value) in
        [("--max-time-ms", args.max_time_ms.to_string()), ("--max-events", args.max_events.to_string())]
    {
        if !argv.iter().any(|a| a == flag || a.starts_with(&format!("{flag}="))) {
            argv.extend([flag.to_string(), value]);
        }
    }
    argv
}

/// A campaign under way: what its worker threads share.
struct Campaign<'a> {
    args: &'a CheckArgs,
    faults: agora_sim::Faults,
    argv: &'a [String],
    bar: &'a ProgressBar,
    /// The index of the next seed to run, not the seed: counting past the last seed of a
    /// range that ends at u64::MAX cannot wrap around.
    next: AtomicU64,
    failures: Mutex<Vec<Failure>>,
    /// Runs stopped by the event limit or with too many events waiting.
    limited: AtomicU64,
    /// Runs without violations whose at-end properties were (partly) not judged, and which.
    not_judged: Mutex<(u64, Vec<&'static str>)>,
}

impl Campaign<'_> {
    /// One worker: runs seeds until none is left.
    fn work(&self) {
        let seeds = &self.args.seeds;
        let total = seeds.end - seeds.start;
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= total {
                break;
            }
            if self.seed(seeds.start + i).is_some() {
                self.bar.inc(1);
            }
        }
    }

    /// Runs one seed and records what it found; `None` if the run could not be set up.
    fn seed(&self, seed: u64) -> Option<()> {
        let args = self.args;
        let params = args.params.params(seed);
        let mut cfg = SimConfig::new(seed).with_faults(self.faults.clone());
        cfg.max_time = Time::from_millis_f64(args.max_time_ms);
        cfg.max_events = args.max_events;
        let (violation, hit_limit, unjudged) =
            agora_protocols::dispatch(&args.protocol, &params, One(cfg)).ok()?;
        if hit_limit {
            self.limited.fetch_add(1, Ordering::Relaxed);
        }
        if violation.is_none() && !unjudged.is_empty() {
            let mut n = self.not_judged.lock().expect("not-judged lock");
            n.0 += 1;
            for p in unjudged {
                if !n.1.contains(&p) {
                    n.1.push(p);
                }
            }
        }
        if let Some(v) = violation {
            let f = Failure {
                seed,
                property: v.property.to_string(),
                node: v.node.map(|n| n.0),
                at_ms: v.at.as_millis_f64(),
                detail: v.detail,
                reproduce: repro::command(self.argv, seed),
            };
            if !args.json {
                self.bar.suspend(|| {
                    let node = f.node.map_or(String::new(), |n| format!(" at node {n}"));
                    println!("seed {}: `{}`{node} at {:.3} ms: {}", f.seed, f.property, f.at_ms, f.detail);
                    println!("    reproduce: {}", f.reproduce);
                });
            }
            self.failures.lock().expect("failures lock").push(f);
        }
        Some(())
    }

    /// Prints the campaign's result; returns the exit code.
    fn report(self, wall_ms: f64) -> i32 {
        let args = self.args;
        let seeds = &args.seeds;
        let total = seeds.end - seeds.start;
        let mut failures = self.failures.into_inner().expect("failures lock");
        failures.sort_by_key(|f| f.seed);
        let limited = self.limited.into_inner();
        let (unjudged_runs, unjudged) = self.not_judged.into_inner().expect("not-judged lock");
        if args.json {
            let out = serde_json::json!({
                "protocol": args.protocol,
                "seeds": { "from": seeds.start, "to": seeds.end },
                "runs": total,
                "failed": failures.len(),
                "failures": failures,
                "event_limited": limited,
                "not_judged": { "runs": unjudged_runs, "properties": unjudged },
                "wall_ms": wall_ms,
            });
            println!("{out}");
        } else {
            println!(
                "checked {total} seeds of {} in {:.1} s: {} failed",
                args.protocol,
                wall_ms / 1e3,
                failures.len()
            );
            if limited > 0 {
                println!(
                    "{limited} run(s) stopped at --max-events {} or with too many events waiting, before their end",
                    args.max_events
                );
            }
            if unjudged_runs > 0 {
                println!(
                    "not judged in {unjudged_runs} run(s) (a limit, loss, a crash or a partition): {}",
                    unjudged.join(", ")
                );
            }
        }
        if failures.is_empty() {
            0
        } else {
            1
        }
    }
}
