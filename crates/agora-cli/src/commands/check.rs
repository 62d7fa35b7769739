//! `agora check`: a campaign — one protocol, one fault configuration, many seeds — that prints
//! every failing seed with the command that replays it.

use crate::cli::CheckArgs;
use crate::commands::shared::repro;
use crate::commands::sim as sim_cmd;
use crate::error::UserError;
use crate::faults;
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

pub fn run(args: &CheckArgs, argv: &[String]) -> Result<i32, UserError> {
    let seeds = args.seeds.clone();
    let size =
        sim_cmd::params(&args.params, seeds.start).and_then(|p| sim_cmd::cluster_size(&args.protocol, &p))?;
    let fault_cfg = faults::build(&args.faults, size)?;
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
    // Workers take the index of the next seed, not the seed: counting past the last seed of a
    // range that ends at u64::MAX cannot wrap around.
    let next = AtomicU64::new(0);
    let failures: Mutex<Vec<Failure>> = Mutex::new(Vec::new());
    let limited = AtomicU64::new(0);
    // Runs without violations whose at-end properties were (partly) not judged, and which.
    let not_judged: Mutex<(u64, Vec<&'static str>)> = Mutex::new((0, Vec::new()));
    let started = std::time::Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let seed = seeds.start + i;
                let params = sim_cmd::params(&args.params, seed).expect("validated above");
                let mut cfg = SimConfig::new(seed).with_faults(fault_cfg.clone());
                cfg.max_time = Time::from_millis_f64(args.max_time_ms);
                cfg.max_events = args.max_events;
                let Ok((violation, hit_limit, unjudged)) =
                    agora_protocols::dispatch(&args.protocol, &params, One(cfg))
                else {
                    continue;
                };
                if hit_limit {
                    limited.fetch_add(1, Ordering::Relaxed);
                }
                if violation.is_none() && !unjudged.is_empty() {
                    let mut n = not_judged.lock().expect("not-judged lock");
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
    let (unjudged_runs, unjudged) = not_judged.into_inner().expect("not-judged lock");
    if args.json {
        let out = serde_json::json!({
            "protocol": args.protocol,
            "seeds": { "from": seeds.start, "to": seeds.end },
            "runs": total,
            "failed": failures.len(),
            "failures": failures,
            "event_limited": limited.load(Ordering::Relaxed),
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
        let l = limited.load(Ordering::Relaxed);
        if l > 0 {
            println!(
                "{l} run(s) stopped at --max-events {} or with too many events waiting, before their end",
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
    Ok(if failures.is_empty() { 0 } else { 1 })
}

/// Builds the setup only, to report parameter mistakes before the campaign starts.
pub(crate) struct Validate;
impl Driver for Validate {
    type Output = ();
    fn run<S: Setup>(self, _: S) {}
}
