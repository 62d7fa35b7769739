//! The process's file descriptors: the soft limit raised to the hard one when the first node
//! starts, and a cap on the sockets the runtime holds, computed from that limit, so that a
//! flood of connections can never take the descriptors storage needs.
//!
//! Every socket a node holds (inbound and outbound) counts against [`socket_cap`]: an eighth
//! of the descriptor limit (at least [`RESERVE_MIN`]) stays free for databases, snapshot files,
//! listeners and the runtime itself. An inbound connection over the cap is closed on accept;
//! an outbound one (the node's own peers) is counted but never refused.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use tracing::warn;

/// The soft limit asked for when the hard limit is unlimited (Linux's default `nr_open`).
pub const UNLIMITED_CAP: u64 = 1 << 20;

/// Descriptors kept out of the sockets' reach, at the least.
pub const RESERVE_MIN: u64 = 256;

static LIMIT: OnceLock<u64> = OnceLock::new();
static OPEN: AtomicUsize = AtomicUsize::new(0);

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (or [`UNLIMITED_CAP`] if that is
/// unlimited) and returns the soft limit now in force.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into a struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let want = if r.rlim_max == libc::RLIM_INFINITY { UNLIMITED_CAP } else { r.rlim_max };
    if r.rlim_cur != libc::RLIM_INFINITY && r.rlim_cur < want {
        let raised = libc::rlimit { rlim_cur: want, rlim_max: r.rlim_max };
        // SAFETY: setrlimit reads a struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        r.rlim_cur = want;
    }
    Ok(r.rlim_cur)
}

/// The descriptor limit of this process, raised on first use.
pub fn fd_limit() -> u64 {
    *LIMIT.get_or_init(|| match raise_fd_limit() {
        Ok(limit) => limit,
        Err(e) => {
            warn!("cannot raise the open-file limit: {e}; assuming 1024");
            1024
        }
    })
}

/// The most sockets the runtime holds at once in this process.
pub fn socket_cap() -> usize {
    let limit = fd_limit();
    limit.saturating_sub((limit / 8).max(RESERVE_MIN)).max(16) as usize
}

/// Sockets the runtime holds now, in this process.
pub fn open_sockets() -> usize {
    OPEN.load(Ordering::Acquire)
}

/// One socket counted against [`socket_cap`] while it lives.
pub(crate) struct Socket(());

impl Socket {
    /// Counts an inbound socket, or `None` if the cap is reached (close it).
    pub fn inbound() -> Option<Socket> {
        let cap = socket_cap();
        OPEN.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < cap).then_some(n + 1))
            .ok()
            .map(|_| Socket(()))
    }

    /// Counts an outbound socket: a node's own peers are never refused.
    pub fn outbound() -> Socket {
        OPEN.fetch_add(1, Ordering::AcqRel);
        Socket(())
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Ordering::AcqRel);
    }
}

/// At most one log line a second for an event a flood repeats (each refused or evicted
/// connection), carrying how many happened since the last line.
pub(crate) struct Throttle {
    state: Mutex<(Option<Instant>, u64)>,
}

impl Throttle {
    pub fn new() -> Throttle {
        Throttle { state: Mutex::new((None, 0)) }
    }

    /// Counts one event; `Some(count)` when a line is due.
    pub fn hit(&self) -> Option<u64> {
        self.hit_at(Instant::now())
    }

    fn hit_at(&self, now: Instant) -> Option<u64> {
        let mut s = self.state.lock().expect("throttle lock");
        s.1 += 1;
        if s.0.is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(1)) {
            return None;
        }
        s.0 = Some(now);
        Some(std::mem::take(&mut s.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soft_and_hard() -> (u64, u64) {
        let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit writes into a struct we own.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) }, 0);
        (r.rlim_cur, r.rlim_max)
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_limit() {
        let mut low = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: as above; lowering the soft limit below the hard one is always allowed.
        unsafe {
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut low);
            low.rlim_cur = low.rlim_max.min(512);
            libc::setrlimit(libc::RLIMIT_NOFILE, &low);
        }
        let raised = raise_fd_limit().unwrap();
        let (soft, hard) = soft_and_hard();
        assert_eq!(soft, raised);
        assert_eq!(soft, if hard == libc::RLIM_INFINITY { UNLIMITED_CAP } else { hard });
        assert!(socket_cap() as u64 + RESERVE_MIN <= fd_limit());
    }

    #[test]
    fn a_throttle_speaks_once_then_counts() {
        let (t, t0) = (Throttle::new(), Instant::now());
        assert_eq!(t.hit_at(t0), Some(1));
        let soon = t0 + Duration::from_millis(999);
        assert_eq!((t.hit_at(soon), t.hit_at(soon)), (None, None));
        assert_eq!(t.hit_at(t0 + Duration::from_secs(1)), Some(3));
    }
}
