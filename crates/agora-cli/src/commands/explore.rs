//! `agora explore`: every state of a small cluster within bounds, the protocol's safety
//! properties judged in each and its at-end properties in each dead end and each cycle (see
//! `agora_sim::explore` for the model), and the shortest trace to the first violation.

use super::schedule::{replay_command, Schedule};
use super::shared::{output, progress_bar};
use crate::cli::ExploreArgs;
use crate::error::UserError;
use agora_core::{PropertyKind, Protocol, Setup};
use agora_protocols::registry::{dispatch_explore, ExploreDriver, EXPLORABLE};
use agora_sim::diagram::{render_svg, MAX_DIAGRAM_NODES};
use agora_sim::explore::{explore, walk, Bounds, ExploreError, Report, Search, Timing, Walks};
use serde_json::json;
use std::hash::Hash;

/// Explores a setup; what it found, with the properties judged and not judged.
struct Explorer {
    bounds: Bounds,
    search: Search,
    /// Random walks instead of the breadth-first search.
    walks: Option<Walks>,
    json: bool,
}

/// An exploration's result.
struct Explored {
    report: Report,
    judged: Vec<&'static str>,
    at_end: Vec<&'static str>,
}

impl ExploreDriver for Explorer {
    type Output = Result<Explored, ExploreError>;

    fn run<S: Setup>(self, setup: S) -> Self::Output
    where
        S::Node: Clone + Hash + Sync,
        <S::Node as Protocol>::Timer: Hash,
    {
        let props = setup.checker().properties();
        let judged = props.iter().filter(|p| p.kind == PropertyKind::Always).map(|p| p.name).collect();
        let at_end = props.iter().filter(|p| p.kind == PropertyKind::AtEnd).map(|p| p.name).collect();
        let bar = progress_bar(0, "{spinner} {msg}", self.json);
        let report = match self.walks {
            None => explore(&setup, &self.bounds, self.search, |p| {
                let rate = p.states as f64 / p.elapsed.as_secs_f64().max(1e-9);
                bar.set_message(format!(
                    "states {} · unique {} · depth {} · {:.0} states/s",
                    p.states, p.unique, p.depth, rate
                ));
                bar.tick();
            }),
            Some(w) => walk(&setup, &self.bounds, w, |p| {
                let rate = p.states as f64 / p.elapsed.as_secs_f64().max(1e-9);
                bar.set_message(format!("steps {} · deepest {} · {:.0} steps/s", p.states, p.depth, rate));
                bar.tick();
            }),
        };
        bar.finish_and_clear();
        Ok(Explored { report: report?, judged, at_end })
    }
}

/// The seed an explored setup is built with (what a protocol draws from it, such as a
/// market's roles and goods): a schedule replays on the same setup.
pub const SEED: u64 = 0;

/// Half of this machine's memory (Linux's `MemTotal`), in MiB: `--max-memory-mb`'s default.
fn half_of_memory_mb() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 =
        info.lines().find(|l| l.starts_with("MemTotal:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024 / 2)
}

/// Runs `agora explore`; returns the process exit code.
pub fn run(args: &ExploreArgs, argv: &[String]) -> Result<i32, UserError> {
    if !EXPLORABLE.contains(&args.protocol.as_str()) {
        // An unknown name gets the registry's own message, with every protocol's name.
        agora_protocols::registry::entry(&args.protocol)?;
        return Err(UserError(format!(
            "{} cannot be explored yet; explorable protocols: {}",
            args.protocol,
            EXPLORABLE.join(", ")
        )));
    }
    if args.diagram.is_some() && args.params.nodes > MAX_DIAGRAM_NODES {
        return Err(UserError(format!("--diagram draws at most {MAX_DIAGRAM_NODES} nodes")));
    }
    let bounds = Bounds {
        depth: args.depth,
        states: args.max_states,
        loss: args.loss,
        duplicate: args.duplicate,
        crashes: args.crashes,
        restarts: args.restarts,
        fires: args.fires,
        timing: if args.timing == "sync" { Timing::Sync } else { Timing::Async },
        fifo: args.fifo,
        memory: args.max_memory_mb.or_else(half_of_memory_mb).map(|mb| mb << 20),
    };
    let params = args.params.params(SEED);
    // One a core by default, at most 256 (the flag's bound, and what the search uses).
    let threads =
        args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()).min(256));
    let search = Search { threads, symmetry: !args.no_symmetry };
    let walks = args.walks.map(|walks| Walks { walks, seed: args.seed });
    let driver = Explorer { bounds: bounds.clone(), search, walks, json: args.json };
    let Some(explored) = dispatch_explore(&args.protocol, &params, driver)? else {
        unreachable!("checked explorable above")
    };
    let Explored { report, judged, at_end } = explored.map_err(|e| UserError(e.to_string()))?;
    // At-end properties are judged in dead ends and cycles, as far as the checker's conditions
    // allow.
    let not_judged: Vec<&str> = at_end
        .iter()
        .copied()
        .filter(|p| !report.judged_at_end.contains(p) && !report.judged_in_cycles.contains(p))
        .collect();
    let command =
        std::iter::once("agora").chain(argv.iter().map(String::as_str)).collect::<Vec<_>>().join(" ");
    let p = &report.progress;
    let rate = p.states as f64 / p.elapsed.as_secs_f64().max(1e-9);
    let schedule = match (&args.schedule, &report.found) {
        (Some(path), Some(f)) => {
            let s = Schedule {
                protocol: args.protocol.clone(),
                timing: args.timing.clone(),
                fifo: args.fifo,
                loss: args.loss,
                duplicate: args.duplicate,
                crashes: args.crashes,
                restarts: args.restarts,
                fires: args.fires,
                violated: Some(f.violation.property.to_string()),
                steps: f.steps.clone(),
                choices: f.choices.clone(),
                cycle: f.cycle,
            };
            s.write(path)?;
            Some(replay_command(argv, path))
        }
        _ => None,
    };
    let diagram = match (&args.diagram, &report.found) {
        (Some(path), Some(f)) => {
            let title = match f.cycle {
                None => format!(
                    "{}: the shortest trace to `{}` (step i at i ms)",
                    args.protocol, f.violation.property
                ),
                Some(c) => format!(
                    "{}: the shortest trace to a cycle without `{}`, then the cycle from step {} (step i at i ms)",
                    args.protocol,
                    f.violation.property,
                    c + 1
                ),
            };
            output::write_file(path, &render_svg(&title, args.params.nodes, &f.diagram))?;
            Some(path.display().to_string())
        }
        _ => None,
    };
    if args.json {
        let violation = report.found.as_ref().map(|f| {
            json!({
                "property": f.violation.property,
                "dead_end": f.dead_end,
                "cycle": f.cycle.map(|c| c + 1),
                "node": f.violation.node.map(|n| n.0),
                "step": f.violation.at.as_millis_f64() as u64,
                "detail": f.violation.detail,
                "trace": f.trace,
                "diagram": diagram,
                "replay": schedule,
                "reproduce": command,
            })
        });
        let out = json!({
            "protocol": args.protocol,
            "nodes": args.params.nodes,
            "search": if walks.is_some() { "walks" } else { "breadth-first" },
            "walks": walks.map(|w| w.walks),
            "seed": walks.map(|w| w.seed),
            "threads": threads,
            "symmetry": report.symmetry,
            "bounds": {
                "depth": bounds.depth, "max_states": bounds.states, "loss": bounds.loss,
                "duplicate": bounds.duplicate, "crashes": bounds.crashes, "restarts": bounds.restarts,
                "fires": bounds.fires,
                "timing": args.timing, "fifo": args.fifo,
            },
            "states": p.states,
            "unique": p.unique,
            "depth": p.depth,
            "depth_complete": report.depth_done,
            "complete": report.complete,
            "memory_limited": report.memory_limited,
            "seconds": p.elapsed.as_secs_f64(),
            "states_per_second": rate,
            "judged": judged,
            "at_end": at_end,
            "dead_ends": report.dead_ends,
            "judged_at_dead_ends": report.judged_at_end,
            "cycles": report.cycles,
            "unfair_cycles": report.unfair_cycles,
            "judged_in_cycles": report.judged_in_cycles,
            "not_judged": not_judged,
            "violation": violation,
        });
        println!("{out}");
    } else {
        let fires = bounds.fires.map_or(String::new(), |f| format!(", {f} timer firings"));
        println!(
            "explore {} — timing {}, {} links, at most {} lost, {} duplicated, {} crashes, {} restarts{fires}, depth {}",
            args.protocol,
            args.timing,
            if args.fifo { "FIFO" } else { "reordering" },
            bounds.loss,
            bounds.duplicate,
            bounds.crashes,
            bounds.restarts,
            bounds.depth
        );
        let symmetry = if report.symmetry { ", renamings of interchangeable nodes counted once" } else { "" };
        match walks {
            None => println!(
                "states {} · unique {} · depth {} · {:.2} s ({:.0} states/s, {threads} threads{symmetry})",
                p.states,
                p.unique,
                p.depth,
                p.elapsed.as_secs_f64(),
                rate
            ),
            Some(w) => println!(
                "random walks: {} of at most {} steps, seed {} · {} steps taken · deepest {} · {:.2} s ({:.0} steps/s)",
                w.walks,
                bounds.depth,
                w.seed,
                p.states,
                p.depth,
                p.elapsed.as_secs_f64(),
                rate
            ),
        }
        match &report.found {
            Some(f) => {
                if f.dead_end {
                    println!("a dead end: nothing left to deliver or fire, and");
                }
                if let Some(c) = f.cycle {
                    println!(
                        "a cycle: steps {} to {} lead back to the state before step {}, fairly (every message \
                         delivered, every timer fired or set again), and a run may go round them for ever; there",
                        c + 1,
                        f.trace.len(),
                        c + 1
                    );
                }
                println!("{}", f.violation);
                let which = match (walks, f.cycle) {
                    (Some(_), _) => "the trace of the walk that found it",
                    (None, Some(_)) => "shortest trace to the cycle, then the cycle",
                    (None, None) => "shortest trace",
                };
                println!("{which} ({} steps):", f.trace.len());
                for (i, s) in f.trace.iter().enumerate() {
                    println!("  {:>3}. {s}", i + 1);
                }
                if let Some(path) = &diagram {
                    println!("diagram: {path}");
                }
                if let Some(cmd) = &schedule {
                    println!("replay: {cmd}");
                }
                println!("reproduce: {command}");
            }
            None if walks.is_some() => println!(
                "no violation of {} in {} random walks: a sample of the states within the bounds, \
                 not all of them",
                judged.join(", "),
                walks.map_or(0, |w| w.walks)
            ),
            None if report.complete => {
                println!("every state within the bounds explored: no violation of {}", judged.join(", "))
            }
            None if report.memory_limited => println!(
                "no violation of {} in the states explored; the memory bound ({} MiB) cut the search off \
                 (every state explored to depth {}): raise --max-memory-mb, or lower --depth or \
                 --max-states",
                judged.join(", "),
                bounds.memory.unwrap_or(0) >> 20,
                report.depth_done
            ),
            None => println!(
                "no violation of {} in the states explored; the bounds cut the search off (every state \
                 explored to depth {}): raise --depth or --max-states to go further",
                judged.join(", "),
                report.depth_done
            ),
        }
        if !report.judged_at_end.is_empty() {
            println!(
                "{} dead end(s) (nothing left to deliver or fire) reached; judged in them as at a run's \
                 quiet end: {}",
                report.dead_ends,
                report.judged_at_end.join(", ")
            );
        }
        if report.cycles > 0 && walks.is_none() {
            let unfair = match report.unfair_cycles {
                0 => String::new(),
                n => format!(" ({n} where one does not hold, but no fair run stays: not violations)"),
            };
            let judged = match report.judged_in_cycles.as_slice() {
                [] => "none judged".to_string(),
                j => format!("judged in them as at the end of a run that stays for ever: {}", j.join(", ")),
            };
            println!("{} cycle(s) of deliveries and timer firings found{unfair}; {judged}", report.cycles);
        }
        if !not_judged.is_empty() {
            println!(
                "not judged (properties of a run's end; {} dead end(s) and {} cycle(s) reached, the checker \
                 judged them in none): {}",
                report.dead_ends,
                report.cycles,
                not_judged.join(", ")
            );
        }
    }
    Ok(if report.found.is_some() { 1 } else { 0 })
}
