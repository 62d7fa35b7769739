//! `--history FILE`: every client operation's invocation and completion, as agora's JSON
//! lines (`agora lincheck` reads them; see docs/lincheck.md). Lines are written in the order
//! events happen (one lock), which is the order the checker goes by.
//!
//! Each line is one `write(2)` as it happens (no user-space buffer), so a process killed with
//! SIGKILL leaves every line it wrote whole and in the file.
//!
//! Each operation gets a process number of its own: a pipelining connection has many
//! operations open at once, and a process of a history has at most one.

use agora_lincheck::agora_json::AgoraEvent;
use agora_lincheck::history::Kind;
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A history being written.
pub struct History {
    out: Mutex<std::fs::File>,
    next: AtomicU64,
}

/// An operation invoked and not yet completed.
#[derive(Clone, Debug)]
pub struct Open {
    process: u64,
    f: &'static str,
    key: String,
    value: Value,
}

fn now_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// Text for a key or value: UTF-8 as is, other bytes escaped.
pub fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap_or_else(|_| b.escape_ascii().to_string())
}

impl History {
    /// Creates (or truncates) `path`; process numbers start at `first` (give each writer of
    /// one cluster a range of its own).
    pub fn create(path: &Path, first: u64) -> std::io::Result<History> {
        let f = std::fs::File::create(path)?;
        Ok(History { out: Mutex::new(f), next: AtomicU64::new(first) })
    }

    fn write(&self, process: u64, kind: Kind, f: &str, key: &str, value: Value) {
        let e = AgoraEvent {
            process,
            kind,
            f: f.to_string(),
            key: Some(key.to_string()),
            value,
            time_ns: Some(now_ns()),
        };
        let mut line = e.to_line();
        line.push('\n');
        let _ = self.out.lock().expect("history lock").write_all(line.as_bytes());
    }

    /// Records an invocation of `f` (get, put, append, cas) on `key`.
    pub fn invoke(&self, f: &'static str, key: &[u8], value: Value) -> Open {
        let process = self.next.fetch_add(1, Ordering::Relaxed);
        let key = text(key);
        self.write(process, Kind::Invoke, f, &key, value.clone());
        Open { process, f, key, value }
    }

    /// Records the completion of `op`: `ok` (with the value a get read), `fail` (it did not
    /// take effect) or `info` (it may have).
    pub fn complete(&self, op: &Open, kind: Kind, read: Option<Value>) {
        let value = read.unwrap_or_else(|| op.value.clone());
        self.write(op.process, kind, op.f, &op.key, value);
    }

    /// Makes sure everything written is in the file (it is: lines are not buffered).
    pub fn flush(&self) {
        let _ = self.out.lock().expect("history lock").flush();
    }
}
