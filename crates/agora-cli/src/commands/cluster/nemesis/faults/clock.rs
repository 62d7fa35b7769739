//! The clock fault: a replica's clock bent while it runs. The containers of a machine share
//! its clock, so the fault goes through the node itself: every container runs with
//! `--clock-file` [`CLOCK_FILE`] (`agora cluster up`), the nemesis copies a file there (`docker
//! cp`, which needs nothing inside a `FROM scratch` image) and sends SIGUSR1, and the node
//! takes the new skew and drift (commands/shared/clock_file.rs), saying so in its log. The
//! fault counts as applied once that line is seen. Healed by the same path with both at 0,
//! the file rewritten even in a stopped container, so that it starts on real time.

use super::{Faults, Node, Seen};
use crate::commands::cluster::files::CLOCK_FILE;
use crate::error::UserError;
use std::time::{Duration, Instant};

/// How long a node has to report its new clock: a guard on a busy machine, not a measure.
const WITHIN: Duration = Duration::from_secs(30);

/// The clock settings a node's log reports, in order: `(skew ms, drift ppm)`.
fn reported(log: &str) -> Vec<(f64, f64)> {
    log.lines()
        .filter_map(|l| l.strip_prefix("event ")?.parse::<serde_json::Value>().ok())
        .filter_map(|v| {
            let c = v.get("clock")?;
            Some((c["skew_ms"].as_f64()?, c["drift_ppm"].as_f64()?))
        })
        .collect()
}

/// The clock fault's words for a bend: `2500 ms ahead, 30% slow`.
pub fn bend_words(skew_ms: i64, drift_ppm: i64) -> String {
    let way = if skew_ms >= 0 { "ahead" } else { "behind" };
    let pace = if drift_ppm >= 0 { "fast" } else { "slow" };
    format!("{} ms {way}, {}% {pace}", skew_ms.abs(), drift_ppm.abs() as f64 / 1e4)
}

impl Faults<'_> {
    /// Checks that every replica was started with `--clock-file` [`CLOCK_FILE`]: a node
    /// without it would be ended by SIGUSR1 (a cluster made before clock faults existed).
    pub fn check_clocks(&self) -> Result<(), UserError> {
        for n in &self.nodes {
            let out = self.docker.docker(&["inspect", "--format", "{{json .Args}}", &n.container])?;
            let args: Vec<String> = serde_json::from_slice(&out).unwrap_or_default();
            if !args.windows(2).any(|w| w[0] == "--clock-file" && w[1] == CLOCK_FILE) {
                return Err(UserError(format!(
                    "--faults clock: n{} was not started with --clock-file {CLOCK_FILE} (a cluster made by an \
                     earlier `agora cluster up`): make the cluster again",
                    n.id
                )));
            }
        }
        Ok(())
    }

    /// Writes `n`'s clock file and, if `signal`, tells the running node to read it.
    fn write_clock(&self, n: &Node, skew_ms: i64, drift_ppm: i64, signal: bool) -> Result<(), UserError> {
        let local =
            std::env::temp_dir().join(format!("agora-nemesis-clock-{}-{}.toml", std::process::id(), n.id));
        std::fs::write(&local, format!("skew_ms = {skew_ms}\ndrift_ppm = {drift_ppm}\n"))
            .map_err(|e| UserError(format!("{}: {e}", local.display())))?;
        let dest = format!("{}:{CLOCK_FILE}", n.container);
        let copied = self.docker.docker(&["cp", &local.to_string_lossy(), &dest]);
        let _ = std::fs::remove_file(&local);
        copied?;
        if signal {
            if let Err(e) = self.docker.docker(&["kill", "--signal", "USR1", &n.container]) {
                // A node that stopped meanwhile reads the file when it starts: written, done.
                if self.now(n)?.running {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// `clock`: bends `n`'s clock by `(skew ms, drift ppm)`, and waits until it says so.
    pub(super) fn bend_clock(&self, n: &Node, (skew_ms, drift_ppm): (i64, i64)) -> Result<Seen, UserError> {
        // Only what the node writes from now on is read (a long run's log is large); the
        // host's clock is the containers'.
        let since = agora_net::clock::unix_ns() as f64 / 1e9;
        self.bent.borrow_mut().insert(n.id);
        self.write_clock(n, skew_ms, drift_ppm, true)?;
        let want = (skew_ms as f64, drift_ppm as f64);
        let deadline = Instant::now() + WITHIN;
        loop {
            let seen = reported(&self.docker.stderr_log_since(&n.container, since)?);
            if seen.last() == Some(&want) {
                break;
            }
            if Instant::now() >= deadline {
                return Err(UserError(format!(
                    "n{} did not report its clock set within {} s",
                    n.id,
                    WITHIN.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Seen {
            note: Some(format!("n{}'s clock {}", n.id, bend_words(skew_ms, drift_ppm))),
            violation: None,
        })
    }

    /// Puts `n`'s clock back on real time if the nemesis bent it: its file rewritten, the node
    /// told if it runs (a stopped one reads the file when it starts).
    pub(super) fn heal_clock(&self, n: &Node, running: bool, did: &mut Vec<String>) -> Result<(), UserError> {
        if !self.bent.borrow().contains(&n.id) {
            return Ok(());
        }
        self.write_clock(n, 0, 0, running)?;
        self.bent.borrow_mut().remove(&n.id);
        did.push(format!("n{}'s clock on real time", n.id));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_s_clock_lines_and_a_bend_in_words() {
        let log = "event {\"node\":1,\"at\":5,\"listening\":\"x\"}\n\
                   event {\"node\":1,\"at\":6,\"clock\":{\"drift_ppm\":-300000.0,\"skew_ms\":2500.0}}\n\
                   agora: a line of its own\n\
                   event {\"node\":1,\"at\":7,\"clock\":{\"drift_ppm\":0.0,\"skew_ms\":0.0}}\n";
        assert_eq!(reported(log), [(2500.0, -300000.0), (0.0, 0.0)]);
        assert_eq!(bend_words(2500, -300_000), "2500 ms ahead, 30% slow");
        assert_eq!(bend_words(-1000, 125_000), "1000 ms behind, 12.5% fast");
    }
}
