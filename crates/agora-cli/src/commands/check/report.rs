//! The report of a campaign: what its seeds came to ([`Tally`]) and how it is printed, as text
//! or one JSON object. A campaign and `agora check merge` tally the same seed lines and print
//! the same report, so the shards of a campaign, merged, say what one run over every seed says.

use super::findings::{SeedRun, Totals, Verdict};
use crate::values::Shard;
use serde::Serialize;
use std::collections::BTreeSet;

/// A failed seed, as the report lists it.
#[derive(Serialize, Debug, Clone)]
pub struct Failure {
    /// The run's seed.
    pub seed: u64,
    /// The violated property.
    pub property: String,
    /// The node where the checker saw it, if at one node.
    pub node: Option<u32>,
    /// Virtual time of the violation.
    pub at_ms: f64,
    /// What happened, in words.
    pub detail: String,
    /// The command that replays the run.
    pub reproduce: String,
    /// The run's faults outside the protocol's fault model: the violation is what the
    /// algorithm's assumption buys, expected there.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub outside_model: Vec<String>,
}

impl Failure {
    /// Prints the failure as two lines of text.
    pub fn print(&self) {
        let node = self.node.map_or(String::new(), |n| format!(" at node {n}"));
        println!("seed {}: `{}`{node} at {:.3} ms: {}", self.seed, self.property, self.at_ms, self.detail);
        if !self.outside_model.is_empty() {
            println!("    expected: outside the fault model ({})", self.outside_model.join(", "));
        }
        println!("    reproduce: {}", self.reproduce);
    }
}

/// What the seeds run so far came to.
#[derive(Default, Debug)]
pub struct Tally {
    /// Seeds run.
    pub runs: u64,
    /// The failed seeds, in the order they were added.
    pub failures: Vec<Failure>,
    /// Runs stopped by the event limit, or with too many events waiting.
    pub event_limited: u64,
    /// Runs without violations whose at-end properties were (partly) not judged.
    pub unjudged_runs: u64,
    /// The properties those runs did not judge.
    pub unjudged: BTreeSet<String>,
}

impl Tally {
    /// Counts one seed's run; returns its failure, if it failed.
    pub fn add(&mut self, run: &SeedRun) -> Option<&Failure> {
        self.runs += 1;
        self.event_limited += u64::from(run.event_limited);
        if run.verdict == Verdict::PartlyJudged {
            self.unjudged_runs += 1;
            self.unjudged.extend(run.not_judged.iter().cloned());
        }
        let (v, reproduce) = (run.violated.as_ref()?, run.reproduce.as_ref()?);
        self.failures.push(Failure {
            seed: run.seed,
            property: v.property.clone(),
            node: v.node,
            at_ms: v.at_ms,
            detail: v.detail.clone(),
            reproduce: reproduce.clone(),
            outside_model: run.outside_model.clone(),
        });
        self.failures.last()
    }

    /// The failed seeds whose faults were outside the protocol's fault model.
    pub fn expected(&self) -> usize {
        self.failures.iter().filter(|f| !f.outside_model.is_empty()).count()
    }

    /// Adds another tally's seeds.
    pub fn absorb(&mut self, other: Tally) {
        self.runs += other.runs;
        self.failures.extend(other.failures);
        self.event_limited += other.event_limited;
        self.unjudged_runs += other.unjudged_runs;
        self.unjudged.extend(other.unjudged);
    }

    /// The totals line of a findings file.
    pub fn totals(&self, wall_ms: f64) -> Totals {
        Totals {
            runs: self.runs,
            failed: self.failures.len() as u64,
            event_limited: self.event_limited,
            not_judged_runs: self.unjudged_runs,
            wall_ms,
        }
    }
}

/// Which seeds of the campaign a report covers.
pub enum Scope {
    /// Every seed of the range, in this process.
    Whole,
    /// One shard, in this process.
    Shard(Shard),
    /// Shards merged from findings files.
    Merged {
        /// The campaign's number of shards.
        count: u64,
        /// The shards whose files were merged, and whether each finished.
        files: Vec<(Shard, String, bool)>,
        /// Seeds of the range no file has a line for.
        not_run: u64,
    },
}

/// A campaign's report.
pub struct Report {
    /// The protocol checked.
    pub protocol: String,
    /// The campaign's seed range.
    pub seeds: std::ops::Range<u64>,
    /// Each run's event limit.
    pub max_events: u64,
    /// What the seeds came to.
    pub tally: Tally,
    /// Wall time: the campaign's, or the longest shard's.
    pub wall_ms: f64,
    /// Which seeds it covers.
    pub scope: Scope,
}

impl Report {
    /// Prints the report (text: the failures too if `failures`, else only the totals, the
    /// failures having been printed as they were found); returns the exit code: 1 if a seed
    /// failed, else 0.
    pub fn print(mut self, json: bool, failures: bool) -> i32 {
        self.tally.failures.sort_by_key(|f| f.seed);
        let t = &self.tally;
        if json {
            let mut out = serde_json::json!({
                "protocol": self.protocol,
                "seeds": { "from": self.seeds.start, "to": self.seeds.end },
                "runs": t.runs,
                "failed": t.failures.len(),
                "failed_outside_model": t.expected(),
                "failures": t.failures,
                "event_limited": t.event_limited,
                "not_judged": { "runs": t.unjudged_runs, "properties": t.unjudged },
                "wall_ms": self.wall_ms,
            });
            match &self.scope {
                Scope::Whole => {}
                Scope::Shard(s) => out["shard"] = serde_json::json!(s),
                Scope::Merged { count, files, not_run } => {
                    let files: Vec<_> = files
                        .iter()
                        .map(
                            |(s, path, done)| serde_json::json!({"shard": s, "file": path, "finished": done}),
                        )
                        .collect();
                    out["shards"] =
                        serde_json::json!({ "count": count, "files": files, "seeds_not_run": not_run });
                }
            }
            println!("{out}");
        } else {
            if failures {
                t.failures.iter().for_each(Failure::print);
            }
            self.print_totals();
        }
        i32::from(!t.failures.is_empty())
    }

    fn print_totals(&self) {
        let t = &self.tally;
        let (seeds, protocol, secs) = (&self.seeds, &self.protocol, self.wall_ms / 1e3);
        let failed = t.failures.len();
        match &self.scope {
            Scope::Whole => {
                println!("checked {} seeds of {protocol} in {secs:.1} s: {failed} failed", t.runs)
            }
            Scope::Shard(s) => println!(
                "checked {} seeds of {protocol}, shard {s} of {}..{}, in {secs:.1} s: {failed} failed",
                t.runs, seeds.start, seeds.end
            ),
            Scope::Merged { count, files, not_run } => {
                println!(
                    "checked {} seeds of {protocol} in {} of {count} shard(s) (the longest {secs:.1} s): {failed} failed",
                    t.runs,
                    files.len()
                );
                if *not_run > 0 {
                    println!(
                        "{not_run} seed(s) of {}..{} not run: {}",
                        seeds.start,
                        seeds.end,
                        gaps(*count, files)
                    );
                }
            }
        }
        let expected = t.expected();
        if expected > 0 {
            let why: BTreeSet<&str> =
                t.failures.iter().flat_map(|f| f.outside_model.iter().map(String::as_str)).collect();
            let why: Vec<&str> = why.into_iter().collect();
            println!(
                "{expected} of the {failed} failed outside {protocol}'s fault model ({}): expected there, not bugs; \
                 `agora protocols` shows what it tolerates",
                why.join(", ")
            );
        }
        if t.event_limited > 0 {
            println!(
                "{} run(s) stopped at --max-events {} or with too many events waiting, before their end",
                t.event_limited, self.max_events
            );
        }
        if t.unjudged_runs > 0 {
            let names: Vec<&str> = t.unjudged.iter().map(String::as_str).collect();
            println!(
                "not judged in {} run(s) (a limit, loss, a crash or a partition): {}",
                t.unjudged_runs,
                names.join(", ")
            );
        }
    }
}

/// The shards missing or unfinished, in words (at most ten named).
pub fn gaps(count: u64, files: &[(Shard, String, bool)]) -> String {
    let unfinished: Vec<String> = files.iter().filter(|f| !f.2).map(|f| f.0.to_string()).collect();
    let have: BTreeSet<u64> = files.iter().map(|f| f.0.index).collect();
    let missing_count = count - have.len() as u64;
    let missing: Vec<String> =
        (0..count).filter(|i| !have.contains(i)).take(10).map(|i| format!("{i}/{count}")).collect();
    let mut parts = Vec::new();
    if missing_count > 0 {
        let more =
            if missing_count > 10 { format!(" and {} more", missing_count - 10) } else { String::new() };
        parts.push(format!("{missing_count} shard(s) missing ({}{more})", missing.join(", ")));
    }
    if !unfinished.is_empty() {
        parts.push(format!("shard(s) {} unfinished", unfinished.join(", ")));
    }
    if parts.is_empty() {
        // Every shard finished, yet seeds have no line: their runs could not be set up.
        parts.push("every shard finished without them".to_string());
    }
    parts.join("; ")
}
