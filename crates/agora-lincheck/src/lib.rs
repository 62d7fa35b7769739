//! agora's linearizability checker: is there one order of a history's operations, each placed
//! between its invocation and its completion, that a sequential key-value store or
//! compare-and-set register allows?
//!
//! - [`history`]: events and the operations they pair into (ok, failed, ambiguous);
//! - [`model`]: the sequential specifications, `kv` and `cas-register`;
//! - [`search`]: Wing and Gong's search with Lowe's memoization, for one key;
//! - [`verdict`]: every key checked, the verdict and where a failing key's search stuck;
//! - [`svg`]: the timeline of a violation;
//! - readers of [`edn`] (Jepsen's `history.edn`), [`jepsen_log`] (Jepsen's log lines) and
//!   [`agora_json`] (agora's own JSON lines).
//!
//! docs/lincheck.md describes the formats, the algorithm and its sources.

pub mod agora_json;
pub mod edn;
pub mod error;
mod fxhash;
pub mod history;
pub mod jepsen_log;
pub mod model;
pub mod search;
pub mod svg;
pub mod value;
pub mod verdict;

pub use error::Error;
pub use history::{Event, History, Kind, Op, Outcome};
pub use model::{Func, ModelKind};
pub use value::Value;
pub use verdict::{check, Failure, Options, Report, Verdict};

/// A history file's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Jepsen's EDN: operation maps one after another, or one vector of them.
    Edn,
    /// Jepsen's log lines (or `history.txt`): process, type, function and value, tab separated.
    JepsenLog,
    /// agora's JSON lines.
    Agora,
}

impl Format {
    /// Parses `edn`, `jepsen-log` or `agora`.
    pub fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "edn" => Format::Edn,
            "jepsen-log" => Format::JepsenLog,
            "agora" | "json" => Format::Agora,
            _ => return None,
        })
    }

    /// The format `text` is in, from its first characters: a JSON object is agora's, other
    /// EDN is Jepsen's history, tab-separated `:invoke` lines a Jepsen log.
    pub fn detect(text: &str) -> Result<Format, Error> {
        let start = text.trim_start();
        if let Some(rest) = start.strip_prefix('{') {
            return Ok(if rest.trim_start().starts_with('"') { Format::Agora } else { Format::Edn });
        }
        if start.starts_with(['[', '(', '#', ';']) {
            return Ok(Format::Edn);
        }
        if text.lines().take(10_000).any(jepsen_log::is_event_line) {
            return Ok(Format::JepsenLog);
        }
        if start.is_empty() {
            return Err(Error::Invalid("the history is empty".into()));
        }
        Err(Error::Invalid(
            "cannot tell the history's format (not EDN, a Jepsen log or agora's JSON lines); name it with --format"
                .into(),
        ))
    }

    /// The events of `text` in this format.
    pub fn parse_events(self, text: &str) -> Result<Vec<Event>, Error> {
        match self {
            Format::Edn => edn::parse_events(text),
            Format::JepsenLog => jepsen_log::parse_events(text),
            Format::Agora => agora_json::parse_events(text),
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Edn => "edn",
            Format::JepsenLog => "jepsen-log",
            Format::Agora => "agora",
        })
    }
}

/// Reads a history: its format (`None`: detected), its model (`None`: kv if an operation is a
/// get, put or append, else cas-register), its events and operations.
pub fn read(
    text: &str,
    format: Option<Format>,
    model: Option<ModelKind>,
) -> Result<(Format, ModelKind, History), Error> {
    let format = match format {
        Some(f) => f,
        None => Format::detect(text)?,
    };
    let events = format.parse_events(text)?;
    let model = model.unwrap_or_else(|| ModelKind::guess(events.iter().map(|e| e.f.as_str())));
    let history = History::build(&events, model)?;
    Ok((format, model, history))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_formats() {
        assert_eq!(Format::detect("  {\"process\":1}").unwrap(), Format::Agora);
        assert_eq!(Format::detect("{:process 1}").unwrap(), Format::Edn);
        assert_eq!(Format::detect("[{:process 1}]").unwrap(), Format::Edn);
        assert_eq!(
            Format::detect("x\nINFO jepsen.util - 1\t:invoke\t:read\tnil\n").unwrap(),
            Format::JepsenLog
        );
        assert!(Format::detect("\n \n").unwrap_err().to_string().contains("empty"));
        assert!(Format::detect("hello").unwrap_err().to_string().contains("--format"));
    }
}
