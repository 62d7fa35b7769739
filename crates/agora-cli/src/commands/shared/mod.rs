//! What several commands share: the progress bar, printing a run's summary and its exit code,
//! the sweep of runs behind `complexity` and `multicast`, and small checks of their flags.
//! [`output`] renders tables and files, [`replay`] the page that replays a simulated run,
//! [`repro`] builds reproduce commands, [`tcp`] runs nodes over loopback TCP in this process.

pub mod clock_file;
pub mod output;
pub mod replay;
pub mod repro;
pub mod tcp;
pub mod ui;

use crate::error::UserError;
use agora_core::{RunSummary, Setup};
use agora_protocols::Driver;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::Path;

/// A progress bar of `len` steps drawn with `template` on stderr; hidden with `--json` or when
/// stderr is not a terminal, so that output meant for programs stays clean.
pub fn progress_bar(len: u64, template: &str, json: bool) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(ProgressStyle::with_template(template).expect("static template").progress_chars("=> "));
    bar
}

/// Prints a run's summary: one line of JSON, or the table.
pub fn print(summary: &RunSummary, json: bool) {
    if json {
        println!("{}", serde_json::to_string(summary).expect("summaries serialize"));
    } else {
        print!("{}", output::table(summary));
    }
}

/// 1 when a property was violated, or when the run reached its time limit with operations
/// unfinished (over TCP the limit is a safety net: a healthy run ends on its own); else 0.
pub fn exit_code(s: &RunSummary) -> i32 {
    if s.violations.is_empty() && s.ops_unfinished == 0 {
        0
    } else {
        1
    }
}

/// Whether `--runtime` asks for TCP (`tcp`) rather than the simulator (`sim`).
pub fn tcp_runtime(runtime: &str) -> Result<bool, UserError> {
    match runtime {
        "sim" => Ok(false),
        "tcp" => Ok(true),
        r => Err(UserError(format!("--runtime `{r}`: expected sim or tcp"))),
    }
}

/// Runs `one` for every point of a sweep, in order, naming each on a progress bar drawn with
/// `template` (`{msg}` is the point's `label`); stops at the first mistake.
pub fn sweep<P, R>(
    points: &[P],
    template: &str,
    json: bool,
    label: impl Fn(&P) -> String,
    mut one: impl FnMut(&P) -> Result<R, UserError>,
) -> Result<Vec<R>, UserError> {
    let bar = progress_bar(points.len() as u64, template, json);
    let mut rows = Vec::with_capacity(points.len());
    for p in points {
        bar.set_message(label(p));
        rows.push(one(p)?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(rows)
}

/// Refuses the fault flags `given` to a run that is not simulated: `why` says what to do instead.
pub fn sim_only(given: &[&str], why: &str) -> Result<(), UserError> {
    if given.is_empty() {
        return Ok(());
    }
    let verb = if given.len() == 1 { "needs" } else { "need" };
    Err(UserError(format!("{} {verb} --sim: {why}", given.join(", "))))
}

/// Creates the directory `--out` names, with its parents.
pub fn create_dir(dir: &Path) -> Result<(), UserError> {
    std::fs::create_dir_all(dir).map_err(|e| UserError(format!("cannot create {}: {e}", dir.display())))
}

/// Builds the setup only, to report parameter mistakes before a campaign or benchmark starts.
pub struct Validate;

impl Driver for Validate {
    type Output = ();
    fn run<S: Setup>(self, _: S) {}
}

/// The database a node opens: `--rejoin` (it lost its storage), `--new` (its first start), or
/// the one it has.
pub fn open_mode(new: bool, rejoin: bool) -> agora_net::store::OpenMode {
    match (new, rejoin) {
        (_, true) => agora_net::store::OpenMode::Rejoin,
        (true, _) => agora_net::store::OpenMode::New,
        _ => agora_net::store::OpenMode::Existing,
    }
}

/// The listening socket handed down as file descriptor `fd` (the value of `flag`), checked to
/// listen at `addr` (port 0 in the cluster file: any port on its address).
pub fn inherited_listener(
    fd: i32,
    addr: std::net::SocketAddr,
    flag: &str,
) -> Result<std::net::TcpListener, UserError> {
    use std::os::fd::FromRawFd;
    // SAFETY: fcntl only queries whether `fd` is open.
    if fd < 3 || unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(UserError(format!("{flag} {fd}: not an open file descriptor above stderr")));
    }
    // SAFETY: `fd` is open, was handed to this process for this purpose and nothing else here
    // owns it; if it is not a socket, local_addr fails below and it is closed.
    let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    match listener.local_addr() {
        Ok(a) if a == addr || (addr.port() == 0 && a.ip() == addr.ip()) => Ok(listener),
        Ok(a) => Err(UserError(format!("{flag} {fd}: listens at {a}, the cluster file says {addr}"))),
        Err(e) => Err(UserError(format!("{flag} {fd}: not a listening socket: {e}"))),
    }
}

/// One `--events` line on stderr (`agora kv serve`, `agora vote serve`): `event {JSON}`,
/// written whole.
pub fn event(v: serde_json::Value) {
    use std::io::Write;
    let line = format!("event {v}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}
