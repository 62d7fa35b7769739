//! `agora check`: a campaign — one protocol, one fault configuration, many seeds — that prints
//! every failing seed with the command that replays it.

use crate::cli::CheckArgs;
use crate::error::UserError;
use crate::{faults, repro, sim_cmd};
use agora_core::{Setup, Time, Violation};
use agora_protocols::Driver;
use agora_sim::{SimConfig, Simulation};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::io::IsTerminal;
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
    /// The first violation, and whether the run hit the event limit.
    type Output = (Option<Violation>, bool);
    fn run<S: Setup>(self, setup: S) -> Self::Output {
        let o = Simulation::new(setup, self.0).run();
        (o.violations.into_iter().next(), o.end == agora_sim::EndReason::EventLimit)
    }
}

/// Parses `A..B`.
pub fn parse_seeds(s: &str) -> Result<std::ops::Range<u64>, UserError> {
    let bad = || UserError(format!("--seeds `{s}`: expected A..B with A < B, e.g. 0..1000"));
    let (a, b) = s.split_once("..").ok_or_else(bad)?;
    let (a, b) = (a.trim().parse::<u64>().map_err(|_| bad())?, b.trim().parse::<u64>().map_err(|_| bad())?);
    if a >= b {
        return Err(bad());
    }
    Ok(a..b)
}

pub fn run(args: &CheckArgs, argv: &[String]) -> Result<i32, UserError> {
    let seeds = parse_seeds(&args.seeds)?;
    let size =
        sim_cmd::params(&args.params, seeds.start).and_then(|p| sim_cmd::cluster_size(&args.protocol, &p))?;
    let fault_cfg = faults::build(&args.faults, size)?;
    if !(args.max_time_ms.is_finite() && args.max_time_ms > 0.0) {
        return Err(UserError(format!("--max-time-ms {}: must be a positive number", args.max_time_ms)));
    }
    // Validate the protocol and its parameters once, before spending time.
    sim_cmd::params(&args.params, seeds.start)
        .and_then(|p| agora_protocols::dispatch(&args.protocol, &p, Validate).map_err(UserError::from))?;
    // A campaign's limits differ from `agora sim`'s defaults: its reproduce commands name them.
    let mut argv = argv.to_vec();
    for (flag, value) in
        [("--max-time-ms", args.max_time_ms.to_string()), ("--max-events", args.max_events.to_string())]
    {
        if !argv.iter().any(|a| a == flag || a.starts_with(&format!("{flag}="))) {
            argv.extend([flag.to_string(), value]);
        }
    }
    let argv = &argv[..];
    let total = seeds.end - seeds.start;
    let threads =
        args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    let bar = if !args.json && std::io::stderr().is_terminal() {
        let b = ProgressBar::new(total);
        b.set_style(
            ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} seeds, {elapsed} (eta {eta})")
                .expect("static template")
                .progress_chars("=> "),
        );
        b.set_message(format!("checking {}", args.protocol));
        b
    } else {
        ProgressBar::hidden()
    };
    let next = AtomicU64::new(seeds.start);
    let failures: Mutex<Vec<Failure>> = Mutex::new(Vec::new());
    let limited = AtomicU64::new(0);
    let started = std::time::Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= seeds.end {
                    break;
                }
                let params = sim_cmd::params(&args.params, seed).expect("validated above");
                let mut cfg = SimConfig::new(seed).with_faults(fault_cfg.clone());
                cfg.max_time = Time::from_millis_f64(args.max_time_ms);
                cfg.max_events = args.max_events;
                let Ok((violation, hit_limit)) = agora_protocols::dispatch(&args.protocol, &params, One(cfg))
                else {
                    continue;
                };
                if hit_limit {
                    limited.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(v) = violation {
                    let f = Failure {
                        seed,
                        property: v.property.to_string(),
                        node: v.node.map(|n| n.0),
                        at_ms: v.at.as_millis_f64(),
                        detail: v.detail,
                        reproduce: repro::command(argv, seed),
                    };
                    if !args.json {
                        bar.suspend(|| {
                            let node = f.node.map_or(String::new(), |n| format!(" at node {n}"));
                            println!(
                                "seed {}: `{}`{node} at {:.3} ms: {}",
                                f.seed, f.property, f.at_ms, f.detail
                            );
                            println!("    reproduce: {}", f.reproduce);
                        });
                    }
                    failures.lock().expect("failures lock").push(f);
                }
                bar.inc(1);
            });
        }
    });
    bar.finish_and_clear();
    let mut failures = failures.into_inner().expect("failures lock");
    failures.sort_by_key(|f| f.seed);
    let wall_ms = started.elapsed().as_secs_f64() * 1e3;
    if args.json {
        let out = serde_json::json!({
            "protocol": args.protocol,
            "seeds": { "from": seeds.start, "to": seeds.end },
            "runs": total,
            "failed": failures.len(),
            "failures": failures,
            "event_limited": limited.load(Ordering::Relaxed),
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
        let l = limited.load(Ordering::Relaxed);
        if l > 0 {
            println!("{l} run(s) stopped at --max-events {} before their end", args.max_events);
        }
    }
    Ok(if failures.is_empty() { 0 } else { 1 })
}

/// Builds the setup only, to report parameter mistakes before the campaign starts.
struct Validate;
impl Driver for Validate {
    type Output = ();
    fn run<S: Setup>(self, _: S) {}
}
