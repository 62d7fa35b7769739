//! A campaign's findings as JSON lines (`agora check --findings FILE`): first the campaign
//! (what makes shards parts of one campaign, the shard, the reproduce command), then one line
//! per seed run, then the totals. Lines are written as seeds finish, so a shard that is
//! stopped leaves what it found; `agora check merge` reads them back ([`Reader`]).
//!
//! This is not a log: a line is whole or the file is damaged, and the totals line is how a
//! reader knows that the shard finished.

use crate::error::UserError;
use crate::values::{Shard, MAX_SEEDS};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The longest line a reader takes: a violation's detail is a sentence, not a megabyte.
pub const MAX_LINE_BYTES: u64 = 1 << 20;

/// What makes two shards parts of one campaign: the same agora, protocol, seed range,
/// parameters, faults (as resolved, fault file included) and limits.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Campaign {
    /// The version of agora that ran it: another version may run a seed differently.
    pub agora: String,
    /// The protocol checked.
    pub protocol: String,
    /// The whole campaign's seed range, every shard's.
    pub seeds: Seeds,
    /// The cluster size.
    pub nodes: usize,
    /// The protocol parameters given, by flag, as given values print.
    pub params: BTreeMap<String, String>,
    /// The fault configuration every run had, flags and fault file resolved.
    pub faults: serde_json::Value,
    /// Each run's virtual time limit.
    pub max_time_ms: f64,
    /// Each run's event limit.
    pub max_events: u64,
}

/// A seed range, `from..to` (`to` excluded).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seeds {
    /// The first seed.
    pub from: u64,
    /// One past the last seed.
    pub to: u64,
}

impl Seeds {
    /// How many seeds the range holds.
    pub fn len(self) -> u64 {
        self.to - self.from
    }
}

impl Campaign {
    /// The first field, by name, in which `other` is another campaign.
    pub fn differs(&self, other: &Campaign) -> Option<&'static str> {
        let fields = [
            ("agora version", self.agora == other.agora),
            ("protocol", self.protocol == other.protocol),
            ("seed range", self.seeds == other.seeds),
            ("--nodes", self.nodes == other.nodes),
            ("protocol parameters", self.params == other.params),
            ("faults", self.faults == other.faults),
            ("--max-time-ms", self.max_time_ms == other.max_time_ms),
            ("--max-events", self.max_events == other.max_events),
        ];
        fields.into_iter().find(|(_, same)| !same).map(|(name, _)| name)
    }
}

/// One line of a findings file.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "line", rename_all = "kebab-case")]
pub enum Line {
    /// The first line: which campaign, which shard.
    Campaign(Header),
    /// A seed's run.
    Seed(SeedRun),
    /// The last line, once every seed of the shard has run.
    Totals(Totals),
}

/// The first line of a findings file.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Header {
    /// The campaign the shard is part of.
    #[serde(flatten)]
    pub campaign: Campaign,
    /// Which shard of it this file holds (`0/1`: the whole campaign).
    pub shard: Shard,
    /// The command that replays a seed, less its `--seed SEED`.
    pub reproduce: String,
}

/// What one seed's run came to.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// A property was violated.
    Failed,
    /// Every property was judged, and held.
    Held,
    /// No property was violated, but some were not judged (`not_judged` names them).
    PartlyJudged,
}

/// A seed's run.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct SeedRun {
    /// The run's seed.
    pub seed: u64,
    /// What the checker found.
    pub verdict: Verdict,
    /// The violation that stopped a failed run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub violated: Option<Violated>,
    /// The command that replays a failed run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reproduce: Option<String>,
    /// At-end properties the checker did not judge, and so did not call held.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_judged: Vec<String>,
    /// Whether the run stopped at the event limit, or with too many events waiting.
    pub event_limited: bool,
    /// Events the run handled.
    pub events: u64,
    /// Virtual time when the run ended.
    pub virtual_ms: f64,
    /// A failed run's faults outside the protocol's fault model: its violation is expected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outside_model: Vec<String>,
}

impl SeedRun {
    /// Whether the line says one thing: a failed run names its violation and its
    /// reproduce command, and only a failed run does; `partly-judged` names what was not.
    pub fn consistent(&self) -> Result<(), &'static str> {
        let failed = self.verdict == Verdict::Failed;
        if failed != self.violated.is_some() || failed != self.reproduce.is_some() {
            return Err("a failed seed, and only a failed seed, has `violated` and `reproduce`");
        }
        if !failed && (self.verdict == Verdict::PartlyJudged) == self.not_judged.is_empty() {
            return Err("`partly-judged` goes with the properties `not_judged`, `held` with none");
        }
        Ok(())
    }
}

/// The violation that stopped a run.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Violated {
    /// The property's name.
    pub property: String,
    /// The node where the checker saw it, if at one node.
    pub node: Option<u32>,
    /// Virtual time of the violation.
    pub at_ms: f64,
    /// What happened, in words.
    pub detail: String,
}

/// The last line of a findings file: what its seeds came to.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Totals {
    /// Seeds run.
    pub runs: u64,
    /// Seeds that failed.
    pub failed: u64,
    /// Runs stopped by the event limit, or with too many events waiting.
    pub event_limited: u64,
    /// Runs without violations that left properties not judged.
    pub not_judged_runs: u64,
    /// The shard's wall time.
    pub wall_ms: f64,
}

/// A findings file being written, shared by a campaign's worker threads.
pub struct Writer {
    /// Where the lines go.
    pub path: PathBuf,
    /// The file, and the first write error (after which nothing more is written).
    out: Mutex<(File, Option<std::io::Error>)>,
}

impl Writer {
    /// Creates (or truncates) the findings file at `path`; a directory (one that exists, or
    /// a path ending in `/`, created) gets a file named after the shard.
    pub fn create(path: &Path, shard: Shard) -> Result<Writer, UserError> {
        let fail = |path: &Path, e: std::io::Error| {
            UserError(format!("cannot write findings file {}: {e}", path.display()))
        };
        let path = if path.is_dir() || path.as_os_str().as_encoded_bytes().ends_with(b"/") {
            std::fs::create_dir_all(path).map_err(|e| fail(path, e))?;
            path.join(format!("shard-{}-of-{}.jsonl", shard.index, shard.count))
        } else {
            path.to_path_buf()
        };
        let file = File::create(&path).map_err(|e| fail(&path, e))?;
        Ok(Writer { path, out: Mutex::new((file, None)) })
    }

    /// Writes one line, whole, in one write; a failure is kept for [`Writer::finish`].
    pub fn write(&self, line: &Line) {
        let mut text = serde_json::to_string(line).expect("findings serialize");
        text.push('\n');
        let mut out = self.out.lock().expect("findings lock");
        if out.1.is_none() {
            if let Err(e) = out.0.write_all(text.as_bytes()) {
                out.1 = Some(e);
            }
        }
    }

    /// The first write error, in one line.
    pub fn finish(self) -> Result<(), UserError> {
        let (file, error) = self.out.into_inner().expect("findings lock");
        match error.map_or_else(|| file.sync_data().err(), Some) {
            None => Ok(()),
            Some(e) => Err(UserError(format!("writing findings file {}: {e}", self.path.display()))),
        }
    }
}

/// A findings file being read, line by line, each line within [`MAX_LINE_BYTES`].
pub struct Reader {
    /// The file, for messages.
    pub path: PathBuf,
    lines: BufReader<File>,
    /// The number of the last line read, from 1.
    pub line: u64,
    /// Whether the file ended inside a line (a writer stopped mid-line): that line is not read.
    pub cut: bool,
    /// The length of the last line read, in bytes.
    pub line_bytes: u64,
}

impl Reader {
    /// Opens `path`.
    pub fn open(path: &Path) -> Result<Reader, UserError> {
        let file = File::open(path)
            .map_err(|e| UserError(format!("cannot read findings file {}: {e}", path.display())))?;
        Ok(Reader {
            path: path.to_path_buf(),
            lines: BufReader::new(file),
            line: 0,
            cut: false,
            line_bytes: 0,
        })
    }

    /// A mistake at the current line, in one line.
    pub fn mistake(&self, why: impl std::fmt::Display) -> UserError {
        UserError(format!("{} line {}: {why}", self.path.display(), self.line))
    }

    /// The next line; `None` at the end of the file (or where it was cut, see `cut`).
    pub fn next_line(&mut self) -> Result<Option<Line>, UserError> {
        let mut bytes = Vec::new();
        let read = (&mut self.lines).take(MAX_LINE_BYTES + 1).read_until(b'\n', &mut bytes);
        self.line += 1;
        self.line_bytes = bytes.len() as u64;
        read.map_err(|e| self.mistake(e))?;
        if bytes.is_empty() {
            return Ok(None);
        }
        if bytes.last() != Some(&b'\n') {
            if bytes.len() as u64 > MAX_LINE_BYTES {
                return Err(self.mistake(format!("longer than {MAX_LINE_BYTES} bytes")));
            }
            self.cut = true;
            return Ok(None);
        }
        let line: Line = serde_json::from_slice(&bytes[..bytes.len() - 1])
            .map_err(|e| self.mistake(format!("not a findings line: {e}")))?;
        match &line {
            Line::Campaign(h) => {
                let s = h.campaign.seeds;
                if s.from >= s.to || s.len() > MAX_SEEDS {
                    return Err(self.mistake(format!("seed range {}..{} is empty or too long", s.from, s.to)));
                }
                if h.shard.count == 0 || h.shard.count > MAX_SEEDS || h.shard.index >= h.shard.count {
                    return Err(self.mistake(format!("no shard {}", h.shard)));
                }
            }
            Line::Seed(run) => run.consistent().map_err(|e| self.mistake(e))?,
            Line::Totals(_) => {}
        }
        Ok(Some(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(verdict: Verdict) -> SeedRun {
        SeedRun {
            seed: 7,
            verdict,
            violated: None,
            reproduce: None,
            not_judged: vec![],
            event_limited: false,
            events: 10,
            virtual_ms: 1.5,
            outside_model: vec![],
        }
    }

    #[test]
    fn a_seed_line_says_one_thing() {
        assert!(run(Verdict::Held).consistent().is_ok());
        assert!(run(Verdict::Failed).consistent().is_err());
        assert!(run(Verdict::PartlyJudged).consistent().is_err());
        let mut partly = run(Verdict::PartlyJudged);
        partly.not_judged = vec!["termination".into()];
        assert!(partly.consistent().is_ok());
        let mut failed = run(Verdict::Failed);
        failed.violated =
            Some(Violated { property: "atomicity".into(), node: Some(2), at_ms: 1.0, detail: "d".into() });
        assert!(failed.consistent().is_err(), "no reproduce command");
        failed.reproduce = Some("agora sim 3pc --seed 7".into());
        assert!(failed.consistent().is_ok());
        let text = serde_json::to_string(&Line::Seed(failed.clone())).unwrap();
        assert!(text.starts_with(r#"{"line":"seed","seed":7,"verdict":"failed""#), "{text}");
        assert_eq!(serde_json::from_str::<Line>(&text).unwrap(), Line::Seed(failed));
    }
}
