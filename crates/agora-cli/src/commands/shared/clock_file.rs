//! `--clock-file FILE` (`agora node`, `agora kv serve`, `agora vote serve`): the node's clock
//! set from a file, at the start and again on each SIGUSR1, which is how `agora cluster
//! nemesis --faults clock` bends the clock of a node in a container (containers share the
//! machine's clock, so it cannot be changed for one of them). The file is TOML:
//!
//! ```toml
//! skew_ms = 2500      # ahead of real time (behind, if negative)
//! drift_ppm = 200000  # 20% fast (slow, if negative)
//! ```
//!
//! Both default to 0: an empty file, or none at all, is real time. The model and its bounds
//! are [`ClockBend`]'s. A file that cannot be read or is malformed is refused with one line at
//! the start; on a signal, it is reported with one line and the clock is left as it was.

use crate::error::UserError;
use agora_net::clock::ClockBend;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The file's settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    skew_ms: f64,
    #[serde(default)]
    drift_ppm: f64,
}

/// Sets `clock` from the file at `path` (none: real time); the settings, `(skew ms, drift ppm)`.
pub fn apply(path: &Path, clock: &ClockBend) -> Result<(f64, f64), UserError> {
    let s = match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str::<Settings>(&text)
            .map_err(|e| UserError(format!("--clock-file {}: {}", path.display(), e.message())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Settings::default(),
        Err(e) => return Err(UserError(format!("--clock-file {}: {e}", path.display()))),
    };
    clock
        .set(s.skew_ms, s.drift_ppm)
        .map_err(|e| UserError(format!("--clock-file {}: {e}", path.display())))?;
    Ok((s.skew_ms, s.drift_ppm))
}

/// Sets `clock` from `path` now and on each SIGUSR1, calling `report` with the settings each
/// time they are taken. Runs inside the async runtime; the handler is installed before this
/// returns, so a signal sent afterwards never takes SIGUSR1's default action (ending the
/// process).
pub fn watch(
    path: PathBuf,
    clock: Arc<ClockBend>,
    report: impl Fn(f64, f64) + Send + 'static,
) -> Result<(), UserError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut usr1 = signal(SignalKind::user_defined1())
        .map_err(|e| UserError(format!("--clock-file: cannot watch SIGUSR1: {e}")))?;
    let (skew, drift) = apply(&path, &clock)?;
    if skew != 0.0 || drift != 0.0 {
        report(skew, drift);
    }
    tokio::spawn(async move {
        while usr1.recv().await.is_some() {
            match apply(&path, &clock) {
                Ok((skew, drift)) => report(skew, drift),
                Err(e) => eprintln!("agora: {}; the clock is left as it was", e.msg),
            }
        }
    });
    Ok(())
}

/// With `--events` (`events`), the line of a clock set: `event
/// {"node":N,"at":NS,"clock":{"skew_ms":..,"drift_ppm":..}}`; without, nothing.
pub fn event(node: u32, events: bool) -> impl Fn(f64, f64) + Send + 'static {
    move |skew_ms, drift_ppm| {
        if !events {
            return;
        }
        super::event(serde_json::json!({
            "node": node,
            "at": agora_net::clock::unix_ns(),
            "clock": { "skew_ms": skew_ms, "drift_ppm": drift_ppm },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_sets_the_clock_and_a_bad_one_is_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clock.toml");
        let clock = ClockBend::default();
        assert_eq!(apply(&path, &clock).unwrap(), (0.0, 0.0), "no file: real time");
        std::fs::write(&path, "skew_ms = 2500\ndrift_ppm = -250000.5\n").unwrap();
        assert_eq!(apply(&path, &clock).unwrap(), (2500.0, -250000.5));
        assert_eq!(clock.settings(), (2500.0, -250000.5));
        for bad in ["skew_ms = \"soon\"", "drift = 5", "drift_ppm = -1000000", "skew_ms = 1e12"] {
            std::fs::write(&path, bad).unwrap();
            let e = apply(&path, &clock).unwrap_err().msg;
            assert!(e.starts_with("--clock-file ") && !e.contains('\n'), "{bad}: {e}");
            assert_eq!(clock.settings(), (2500.0, -250000.5), "{bad}: the clock is left as it was");
        }
        std::fs::write(&path, "").unwrap();
        assert_eq!(apply(&path, &clock).unwrap(), (0.0, 0.0), "empty: real time again");
    }
}
