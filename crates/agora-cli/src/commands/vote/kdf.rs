//! The password-hashing threads of one server's front end: argon2id is slow on purpose, so it
//! runs on a few threads of its own (as many as the cores), at a lower scheduling priority than
//! the rest of the server, behind a bounded queue. A login waits its turn in the queue; when
//! the queue is full it is refused at once (`ERR busy`) rather than held for ever, and however
//! many logins arrive, the hashing takes no more threads, no more memory (19 MiB per hash in
//! progress) and no more of the CPU's attention than that: the node's heartbeats and the
//! members' replies go first.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;
use tracing::warn;

/// How much less the hashing threads count for the scheduler than the rest of the process (a
/// `nice` increment: at 10, a hashing thread gets about a tenth of a core another thread wants).
pub const NICENESS: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

/// The hashing threads and their queue.
pub struct Kdf {
    jobs: SyncSender<Job>,
}

/// The queue is full: the work was not taken.
#[derive(Debug, PartialEq, Eq)]
pub struct Busy;

impl Kdf {
    /// `threads` hashing threads (at least one) and room for `queued` jobs waiting for them.
    pub fn new(threads: usize, queued: usize) -> Kdf {
        let (jobs, rx) = sync_channel::<Job>(queued);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let spawned =
                std::thread::Builder::new().name(format!("agora-vote-kdf-{i}")).spawn(move || work(&rx));
            if let Err(e) = spawned {
                warn!("cannot start password-hashing thread {i}: {e}");
            }
        }
        Kdf { jobs }
    }

    /// Queues `f` for a hashing thread at once; the future gives its result, or [`Busy`] if
    /// the queue was full (or no thread is left to run it).
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> impl std::future::Future<Output = Result<T, Busy>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        let queued = match self.jobs.try_send(job) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        };
        async move {
            if !queued {
                return Err(Busy);
            }
            rx.await.map_err(|_| Busy)
        }
    }
}

/// A hashing thread: lowers its own priority, then runs jobs until the front end is gone.
fn work(rx: &Mutex<Receiver<Job>>) {
    lower_priority();
    loop {
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

/// Raises the calling thread's nice value by [`NICENESS`] (on Linux the nice value is a
/// thread's own; elsewhere this does nothing).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: nice(2) changes only the calling thread's nice value on Linux.
    unsafe {
        libc::nice(NICENESS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_the_work_taken_is_done() {
        // One thread, room for one job: while the thread is held, one more job waits and the
        // next is refused.
        let kdf = Kdf::new(1, 1);
        let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, started_rx) = oneshot::channel();
        let first = kdf.run(move || {
            let _ = started_tx.send(());
            hold_rx.recv().is_ok()
        });
        started_rx.await.expect("the first job runs");
        let second = kdf.run(|| 2);
        // Refused at once: its future is ready on the first poll (a queued one would wait for
        // the held thread, and the test would fail here rather than hang).
        let third = kdf.run(|| 3);
        tokio::pin!(third);
        let at_once = tokio::select! {
            biased;
            r = &mut third => Some(r),
            _ = std::future::ready(()) => None,
        };
        assert_eq!(at_once, Some(Err(Busy)), "a job beyond the queue is refused at once");
        hold_tx.send(()).expect("the first job waits");
        assert_eq!(first.await, Ok(true));
        assert_eq!(second.await, Ok(2), "the queued job is done");
        assert_eq!(kdf.run(|| 4).await, Ok(4), "room again once the queue drained");
    }

    #[test]
    fn hashing_threads_run_at_a_lower_priority() {
        let kdf = Kdf::new(1, 1);
        // SAFETY: getpriority of the calling thread.
        let mine = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let theirs =
            rt.block_on(kdf.run(|| unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) })).expect("ran");
        assert_eq!(theirs, (mine + NICENESS).min(19), "the hashing thread's nice value");
    }
}
