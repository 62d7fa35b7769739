//! `agora check merge FILE...`: joins the findings files of a campaign's shards into the report
//! one run over every seed prints. Files of another campaign, a shard given twice, a seed that
//! is not its shard's or appears twice, a damaged line or a shard that did not finish are
//! refused in one line naming the file (and line), exit code 2; `--partial` reports what
//! unfinished or missing shards leave, saying how many seeds were not run.

use super::findings::{Campaign, Line, Reader, Totals};
use super::report::{gaps, Report, Scope, Tally};
use crate::cli::MergeArgs;
use crate::error::UserError;
use crate::values::Shard;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The most bytes of failed seeds' lines a merge keeps for its report: a file's size bounds
/// nothing held in memory.
const MAX_KEPT_BYTES: u64 = 256 << 20;
/// The most names of properties not judged a report lists (a protocol has a few).
const MAX_PROPERTIES: usize = 1_000;

/// The shards merged so far.
struct Merged {
    /// The campaign, from the first file.
    campaign: Campaign,
    /// The first file, named when another file is of another campaign.
    first: String,
    /// The campaign's number of shards.
    count: u64,
    /// Each shard merged, by index: its file and whether it finished.
    files: BTreeMap<u64, (String, bool)>,
    /// Which seeds of the range have a line, one bit per seed.
    seen: Vec<u64>,
    /// What the seeds came to.
    tally: Tally,
    /// The longest shard's wall time.
    wall_ms: f64,
    /// Bytes of the failed seeds' lines read, kept in the report.
    kept_bytes: u64,
}

/// Runs `agora check merge`; returns the exit code (1 if a seed failed, else 0).
pub fn run(args: &MergeArgs) -> Result<i32, UserError> {
    let mut merged: Option<Merged> = None;
    for path in files(&args.files)? {
        read(&path, &mut merged, args.partial)?;
    }
    let m = merged.ok_or_else(|| UserError("agora check merge needs findings files".into()))?;
    let range = m.campaign.seeds;
    let run_seeds: u64 = m.seen.iter().map(|w| u64::from(w.count_ones())).sum();
    let not_run = range.len() - run_seeds;
    let files: Vec<(Shard, String, bool)> = m
        .files
        .iter()
        .map(|(&index, (path, done))| (Shard { index, count: m.count }, path.clone(), *done))
        .collect();
    if not_run > 0 && !args.partial {
        return Err(UserError(format!(
            "{not_run} of the {} seeds of {}..{} were not run: {} (--partial reports what the files hold)",
            range.len(),
            range.from,
            range.to,
            gaps(m.count, &files)
        )));
    }
    let report = Report {
        protocol: m.campaign.protocol,
        seeds: range.from..range.to,
        max_events: m.campaign.max_events,
        tally: m.tally,
        wall_ms: m.wall_ms,
        scope: Scope::Merged { count: m.count, files, not_run },
    };
    Ok(report.print(args.json, true))
}

/// The files named, a directory standing for the `*.jsonl` files in it (in name order).
fn files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, UserError> {
    let mut files = Vec::new();
    for path in paths {
        if !path.is_dir() {
            files.push(path.clone());
            continue;
        }
        let fail = |e: std::io::Error| UserError(format!("cannot list {}: {e}", path.display()));
        let mut inside = Vec::new();
        for entry in std::fs::read_dir(path).map_err(fail)? {
            let p = entry.map_err(fail)?.path();
            if p.extension().is_some_and(|e| e == "jsonl") && !p.is_dir() {
                inside.push(p);
            }
        }
        if inside.is_empty() {
            return Err(UserError(format!("{} holds no findings files (*.jsonl)", path.display())));
        }
        inside.sort();
        files.extend(inside);
    }
    Ok(files)
}

/// Reads one findings file into `merged` (the first file starts it).
fn read(path: &Path, merged: &mut Option<Merged>, partial: bool) -> Result<(), UserError> {
    let mut r = Reader::open(path)?;
    let name = path.display().to_string();
    let header = match r.next_line()? {
        Some(Line::Campaign(h)) => h,
        _ if r.cut => return Err(r.mistake("cut short before the campaign line")),
        _ => return Err(r.mistake("not a findings file: the first line is not the campaign line")),
    };
    let m = merged.get_or_insert_with(|| Merged {
        campaign: header.campaign.clone(),
        first: name.clone(),
        count: header.shard.count,
        files: BTreeMap::new(),
        seen: vec![0; header.campaign.seeds.len().div_ceil(64) as usize],
        tally: Tally::default(),
        wall_ms: 0.0,
        kept_bytes: 0,
    });
    if let Some(field) = m.campaign.differs(&header.campaign) {
        return Err(UserError(format!(
            "{name} is of another campaign than {}: they differ in {field}",
            m.first
        )));
    }
    let shard = header.shard;
    if shard.count != m.count {
        return Err(UserError(format!(
            "{name} holds shard {shard}, but {} is one of {} shards",
            m.first, m.count
        )));
    }
    if let Some((other, _)) = m.files.get(&shard.index) {
        return Err(UserError(format!("shard {shard} is in both {other} and {name}")));
    }
    let mut tally = Tally::default();
    let totals = seeds(&mut r, m, shard, &mut tally)?;
    match &totals {
        Some((t, line)) => check_totals(t, &tally)
            .map_err(|why| UserError(format!("{name} line {line}: {why}")))?,
        None if partial => {}
        None if r.cut => {
            return Err(r.mistake("cut short (the shard was stopped while writing; --partial merges the rest)"))
        }
        None => {
            return Err(UserError(format!(
                "{name} ends after line {} without its totals line: shard {shard} did not finish (--partial merges what it found)",
                r.line - 1
            )))
        }
    }
    m.wall_ms = m.wall_ms.max(totals.as_ref().map_or(0.0, |(t, _)| t.wall_ms));
    m.files.insert(shard.index, (name, totals.is_some()));
    m.tally.absorb(tally);
    Ok(())
}

/// Reads the seed lines of shard `shard` up to its totals line (with its line number), or to
/// the end of the file (`None`).
fn seeds(
    r: &mut Reader,
    m: &mut Merged,
    shard: Shard,
    tally: &mut Tally,
) -> Result<Option<(Totals, u64)>, UserError> {
    let range = m.campaign.seeds;
    while let Some(line) = r.next_line()? {
        match line {
            Line::Campaign(_) => return Err(r.mistake("a second campaign line")),
            Line::Totals(t) => {
                let at = r.line;
                if r.next_line()?.is_some() || r.cut {
                    return Err(r.mistake("a line after the totals line"));
                }
                return Ok(Some((t, at)));
            }
            Line::Seed(run) => {
                if !(range.from..range.to).contains(&run.seed) || !shard.has(run.seed - range.from) {
                    return Err(r.mistake(format!(
                        "seed {} is not one of shard {shard} of {}..{}",
                        run.seed, range.from, range.to
                    )));
                }
                let bit = run.seed - range.from;
                let (word, mask) = ((bit / 64) as usize, 1u64 << (bit % 64));
                if m.seen[word] & mask != 0 {
                    return Err(r.mistake(format!("seed {} a second time", run.seed)));
                }
                m.seen[word] |= mask;
                if tally.add(&run).is_some() {
                    m.kept_bytes += r.line_bytes;
                }
                let properties = m.tally.unjudged.len() + tally.unjudged.len();
                if m.kept_bytes > MAX_KEPT_BYTES || properties > MAX_PROPERTIES {
                    return Err(r.mistake(format!(
                        "more failures than a report holds (at most {MAX_KEPT_BYTES} bytes of failed seeds' lines and {MAX_PROPERTIES} property names)"
                    )));
                }
            }
        }
    }
    Ok(None)
}

/// A finished shard's totals agree with its seed lines.
fn check_totals(t: &Totals, tally: &Tally) -> Result<(), String> {
    let counted = tally.totals(t.wall_ms);
    if *t == counted {
        return Ok(());
    }
    let counts = |t: &Totals| {
        format!(
            "{} runs, {} failed, {} event-limited, {} not judged",
            t.runs, t.failed, t.event_limited, t.not_judged_runs
        )
    };
    Err(format!("the totals ({}) disagree with the seed lines ({})", counts(t), counts(&counted)))
}
