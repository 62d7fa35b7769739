//! `agora check`: a campaign — one protocol, one fault configuration, many seeds — that prints
//! every failing seed with the command that replays it. A campaign can be cut into shards
//! (`--shard I/N`) run on many machines, each writing its [`findings`] as JSON lines, which
//! [`merge`] joins into the report one run prints ([`report`]).

pub mod findings;
pub mod merge;
pub mod report;

use super::shared::{progress_bar, repro};
use crate::cli::{CheckAction, CheckArgs};
use crate::error::UserError;
use crate::faults;
use crate::values::Shard;
use agora_core::{Setup, Time, Violation};
use agora_protocols::registry::cluster_size;
use agora_protocols::Driver;
use agora_sim::{SimConfig, Simulation};
use findings::{Campaign, Header, Line, SeedRun, Seeds, Verdict, Violated, Writer};
use indicatif::ProgressBar;
use report::{Report, Scope, Tally};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Runs one seed and tells what came of it.
struct One(SimConfig);

/// What came of one seed's run.
struct Ran {
    /// The first violation.
    violation: Option<Violation>,
    /// Whether the run hit the event limit (or the queue's).
    limited: bool,
    /// The properties it did not judge.
    unjudged: Vec<&'static str>,
    /// Events handled.
    events: u64,
    /// Virtual time at its end.
    virtual_ms: f64,
    /// Its faults outside the protocol's fault model.
    outside_model: Vec<String>,
}

impl Driver for One {
    type Output = Ran;
    fn run<S: Setup>(self, setup: S) -> Ran {
        let o = Simulation::new(setup, self.0).run();
        Ran {
            unjudged: o.not_judged.iter().map(|(p, _)| *p).collect(),
            limited: matches!(o.end, agora_sim::EndReason::EventLimit | agora_sim::EndReason::QueueLimit),
            violation: o.violations.into_iter().next(),
            events: o.events,
            virtual_ms: o.virtual_time.as_millis_f64(),
            outside_model: o.outside_model,
        }
    }
}

/// Runs `agora check` (a campaign, or `merge`); returns the process exit code.
pub fn run(args: &CheckArgs, argv: &[String]) -> Result<i32, UserError> {
    if let Some(CheckAction::Merge(m)) = &args.action {
        return merge::run(m);
    }
    let protocol = args
        .protocol
        .as_deref()
        .ok_or_else(|| UserError("agora check needs a protocol (see `agora protocols`)".into()))?;
    let seeds = args.seeds.clone();
    let shard = args.shard.unwrap_or(Shard::WHOLE);
    // Building the cluster once checks the protocol and its parameters before any run.
    let size = cluster_size(protocol, &args.params.params(seeds.start))?;
    let fault_cfg = faults::build(&args.faults, size)?;
    let argv = replay_argv(args, argv);
    let findings = match &args.findings {
        Some(path) => {
            let writer = Writer::create(path, shard)?;
            writer.write(&Line::Campaign(Header {
                campaign: campaign(args, protocol, &fault_cfg),
                shard,
                reproduce: repro::prefix(&argv),
            }));
            Some(writer)
        }
        None => None,
    };
    let total = shard.seeds_of(seeds.end - seeds.start);
    let threads =
        args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    let bar = progress_bar(total, "{msg} [{bar:40}] {pos}/{len} seeds, {elapsed} (eta {eta})", args.json);
    bar.set_message(format!("checking {protocol}"));
    let campaign = Running {
        args,
        protocol,
        shard,
        faults: fault_cfg,
        argv: &argv,
        bar: &bar,
        next: AtomicU64::new(0),
        tally: Mutex::new(Tally::default()),
        findings: findings.as_ref(),
    };
    let started = std::time::Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| campaign.work());
        }
    });
    bar.finish_and_clear();
    let wall_ms = started.elapsed().as_secs_f64() * 1e3;
    let tally = campaign.tally.into_inner().expect("tally lock");
    if let Some(w) = &findings {
        w.write(&Line::Totals(tally.totals(wall_ms)));
    }
    let scope = if args.shard.is_some() { Scope::Shard(shard) } else { Scope::Whole };
    let report =
        Report { protocol: protocol.to_string(), seeds, max_events: args.max_events, tally, wall_ms, scope };
    let code = report.print(args.json, false);
    findings.map_or(Ok(()), Writer::finish)?;
    Ok(code)
}

/// What makes shards parts of this campaign, for the findings' first line.
fn campaign(args: &CheckArgs, protocol: &str, faults: &agora_sim::Faults) -> Campaign {
    Campaign {
        agora: env!("CARGO_PKG_VERSION").to_string(),
        protocol: protocol.to_string(),
        seeds: Seeds { from: args.seeds.start, to: args.seeds.end },
        nodes: args.params.nodes,
        params: args.params.given.iter().map(|(p, v)| (crate::cli::flag(p), v.to_string())).collect(),
        faults: serde_json::to_value(faults).expect("faults serialize"),
        max_time_ms: args.max_time_ms,
        max_events: args.max_events,
    }
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
struct Running<'a> {
    args: &'a CheckArgs,
    protocol: &'a str,
    /// The seeds this process runs.
    shard: Shard,
    faults: agora_sim::Faults,
    argv: &'a [String],
    bar: &'a ProgressBar,
    /// The index of the next of this shard's seeds to run, not the seed: counting past the
    /// last seed of a range that ends at u64::MAX cannot wrap around.
    next: AtomicU64,
    /// What the seeds run so far came to.
    tally: Mutex<Tally>,
    /// Where each seed's line goes, as it finishes.
    findings: Option<&'a Writer>,
}

impl Running<'_> {
    /// One worker: runs this shard's seeds until none is left.
    fn work(&self) {
        let seeds = &self.args.seeds;
        let total = self.shard.seeds_of(seeds.end - seeds.start);
        loop {
            let k = self.next.fetch_add(1, Ordering::Relaxed);
            if k >= total {
                break;
            }
            // The k-th seed of shard I of N is at index I + k*N: below the range's length.
            let offset = self.shard.index + k * self.shard.count;
            debug_assert!(self.shard.has(offset) && offset < seeds.end - seeds.start);
            if self.seed(seeds.start + offset).is_some() {
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
        let ran = agora_protocols::dispatch(self.protocol, &params, One(cfg)).ok()?;
        let verdict = match (&ran.violation, ran.unjudged.is_empty()) {
            (Some(_), _) => Verdict::Failed,
            (None, true) => Verdict::Held,
            (None, false) => Verdict::PartlyJudged,
        };
        let line = SeedRun {
            seed,
            outside_model: if ran.violation.is_some() { ran.outside_model.clone() } else { Vec::new() },
            verdict,
            reproduce: ran.violation.as_ref().map(|_| repro::command(self.argv, seed)),
            violated: ran.violation.map(|v| Violated {
                property: v.property.to_string(),
                node: v.node.map(|n| n.0),
                at_ms: v.at.as_millis_f64(),
                detail: v.detail,
            }),
            // A failed run stopped before its end: what it did not judge is no news.
            not_judged: if verdict == Verdict::PartlyJudged {
                ran.unjudged.iter().map(|p| p.to_string()).collect()
            } else {
                Vec::new()
            },
            event_limited: ran.limited,
            events: ran.events,
            virtual_ms: ran.virtual_ms,
        };
        if let Some(w) = self.findings {
            w.write(&Line::Seed(line.clone()));
        }
        let mut tally = self.tally.lock().expect("tally lock");
        if let Some(f) = tally.add(&line) {
            if !args.json {
                self.bar.suspend(|| f.print());
            }
        }
        Some(())
    }
}
