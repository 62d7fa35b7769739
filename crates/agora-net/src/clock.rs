//! Process clocks for the runtime: wall time in Unix nanoseconds (comparable across processes
//! on one machine, for operation latency) and the process's CPU time (for the energy report).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The largest skew [`ClockBend::set`] takes, either way: 10^9 ms, the simulator's bound.
pub const MAX_SKEW_MS: f64 = 1e9;
/// Drift lies in `(-10^6, 10^6]` ppm, as in the simulator: a clock at -10^6 would stand still.
pub const MAX_DRIFT_PPM: f64 = 1e6;

/// How far the clock of a runtime node departs from real time, set while it runs: the clock
/// fault of `agora cluster nemesis --faults clock`.
///
/// A node's protocol reads its time (`Context::now`) as the real time since the node started
/// plus this bend's offset, and its timers run on that clock. The model is the simulator's
/// (`agora_sim::faults::Clock`: `local = global × (1 + drift) + skew`), except that here it
/// changes during the run: [`ClockBend::set`] jumps the clock to `skew` ahead of real time
/// (behind, if negative) and makes it run `drift` parts per million fast (slow, if negative)
/// from then on. `set(0, 0)` puts it back on real time. A timer of `d` fires after `d / (1 +
/// drift)` of real time, with the drift when it is set; as in the simulator, a jump moves
/// what the node reads, not when its pending timers fire. A clock set behind reads earlier
/// times than it did; protocols measure with [`agora_core::Time::since`], which saturates.
///
/// Observation times (`at`, [`unix_ns`]) and operation latencies stay real time: a history is
/// judged in real time, whatever the nodes' clocks said.
#[derive(Debug, Default)]
pub struct ClockBend {
    /// Whether a bend is in force: read on every step of every node sharing the clock, so
    /// that a clock on real time never takes the lock.
    bent: AtomicBool,
    state: Mutex<Option<Bent>>,
}

/// A bend in force: since when, and how.
#[derive(Clone, Copy, Debug)]
struct Bent {
    since: Instant,
    skew_ms: f64,
    drift_ppm: f64,
}

impl ClockBend {
    /// Checks a skew and a drift against the bounds the simulator also takes.
    pub fn check(skew_ms: f64, drift_ppm: f64) -> Result<(), String> {
        let skew_ok = (-MAX_SKEW_MS..=MAX_SKEW_MS).contains(&skew_ms);
        let drift_ok = drift_ppm > -MAX_DRIFT_PPM && drift_ppm <= MAX_DRIFT_PPM;
        if skew_ok && drift_ok {
            Ok(())
        } else {
            Err(format!(
                "clock: skew {skew_ms} ms, drift {drift_ppm} ppm: the skew must be within ±{MAX_SKEW_MS} \
                 ms and the drift in (-{MAX_DRIFT_PPM}, {MAX_DRIFT_PPM}] ppm"
            ))
        }
    }

    /// From now on the clock reads `skew_ms` ahead of real time and drifts `drift_ppm`.
    pub fn set(&self, skew_ms: f64, drift_ppm: f64) -> Result<(), String> {
        Self::check(skew_ms, drift_ppm)?;
        let bent =
            (skew_ms != 0.0 || drift_ppm != 0.0).then(|| Bent { since: Instant::now(), skew_ms, drift_ppm });
        let mut state = self.state.lock().expect("clock lock");
        self.bent.store(bent.is_some(), Ordering::Release);
        *state = bent;
        Ok(())
    }

    /// `(skew ms, drift ppm)` as last set; `(0, 0)` on real time.
    pub fn settings(&self) -> (f64, f64) {
        self.bent().map_or((0.0, 0.0), |b| (b.skew_ms, b.drift_ppm))
    }

    fn bent(&self) -> Option<Bent> {
        if !self.bent.load(Ordering::Acquire) {
            return None;
        }
        *self.state.lock().expect("clock lock")
    }

    /// The local time, in ns, of a node that started at `started`: real time since then, bent.
    pub fn local_ns(&self, started: Instant) -> u64 {
        let now = Instant::now();
        let real = now.saturating_duration_since(started).as_nanos() as f64;
        let local = match self.bent() {
            None => real,
            Some(b) => {
                let drifted = now.saturating_duration_since(b.since).as_nanos() as f64 * b.drift_ppm * 1e-6;
                real + b.skew_ms * 1e6 + drifted
            }
        };
        local.max(0.0) as u64
    }

    /// The real time a duration of the local clock takes at its present drift.
    pub fn to_real(&self, local: Duration) -> Duration {
        match self.bent() {
            Some(b) if b.drift_ppm != 0.0 => local.div_f64(1.0 + b.drift_ppm * 1e-6),
            _ => local,
        }
    }
}

/// Nanoseconds since the Unix epoch.
pub fn unix_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// User plus system CPU time of this process, in milliseconds (getrusage).
pub fn cpu_ms() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we own; RUSAGE_SELF is always valid.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut u) != 0 {
            return 0.0;
        }
        u
    };
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
    ms(usage.ru_utime) + ms(usage.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bent_clock_jumps_by_its_skew_and_runs_at_its_drift() {
        let started = Instant::now() - Duration::from_secs(10);
        let clock = ClockBend::default();
        let real = clock.local_ns(started);
        assert!(real >= 10_000_000_000, "{real}");
        clock.set(5_000.0, 0.0).unwrap();
        let ahead = clock.local_ns(started);
        assert!(ahead >= real + 5_000_000_000, "{ahead} vs {real}");
        assert_eq!(clock.to_real(Duration::from_secs(1)), Duration::from_secs(1));
        clock.set(-60_000.0, 0.0).unwrap();
        assert_eq!(clock.local_ns(started), 0, "behind its start: it reads 0");
        clock.set(0.0, 1_000_000.0).unwrap();
        assert_eq!(clock.to_real(Duration::from_secs(2)), Duration::from_secs(1), "twice as fast");
        clock.set(0.0, -500_000.0).unwrap();
        assert_eq!(clock.to_real(Duration::from_secs(1)), Duration::from_secs(2), "half as fast");
        assert_eq!(clock.settings(), (0.0, -500_000.0));
        clock.set(0.0, 0.0).unwrap();
        assert_eq!(clock.settings(), (0.0, 0.0));
        assert!(clock.local_ns(started) >= real, "back on real time");
        assert!(clock.set(0.0, -1_000_000.0).is_err(), "a clock that stands still");
        assert!(clock.set(2e9, 0.0).is_err());
        assert!(clock.set(f64::NAN, 0.0).is_err());
    }

    #[test]
    fn cpu_time_grows_with_work() {
        let before = super::cpu_ms();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(super::cpu_ms() > before);
    }
}
