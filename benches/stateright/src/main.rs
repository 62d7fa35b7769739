//! Two-phase commit as a Stateright model, for the benchmark beside `agora explore`
//! (scripts/bench-explore.sh). Written from the protocol's specification, *TwoPhase* in Gray
//! and Lamport, "Consensus on Transaction Commit" (2004), §3 and appendix A.1: a transaction
//! manager and `rms` resource managers; messages are a set that only grows (a message sent
//! once can be received any number of times, none is lost). The property: no resource manager
//! commits while another aborts.
//!
//! Usage: `stateright-2pc RMS THREADS [bfs|dfs]`; prints one JSON line: states generated,
//! unique states, seconds, and the process's peak resident memory.

use stateright::{Checker, Model, Property};
use std::time::Instant;

/// A resource manager's state (`rmState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Rm {
    Working,
    Prepared,
    Committed,
    Aborted,
}

/// The transaction manager's state (`tmState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Tm {
    Init,
    Committed,
    Aborted,
}

/// The whole system: the spec's four variables.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct State {
    rm: Vec<Rm>,
    tm: Tm,
    /// `tmPrepared`: the managers the transaction manager heard "Prepared" from.
    tm_prepared: Vec<bool>,
    /// `msgs`: the "Prepared" messages sent, by manager, and whether "Commit" or "Abort" was.
    sent_prepared: Vec<bool>,
    sent_commit: bool,
    sent_abort: bool,
}

/// The spec's actions; `usize` names a resource manager.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Action {
    TmRcvPrepared(usize),
    TmCommit,
    TmAbort,
    RmPrepare(usize),
    RmChooseToAbort(usize),
    RmRcvCommitMsg(usize),
    RmRcvAbortMsg(usize),
}

struct TwoPhase {
    rms: usize,
}

impl Model for TwoPhase {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let n = self.rms;
        vec![State {
            rm: vec![Rm::Working; n],
            tm: Tm::Init,
            tm_prepared: vec![false; n],
            sent_prepared: vec![false; n],
            sent_commit: false,
            sent_abort: false,
        }]
    }

    fn actions(&self, s: &State, out: &mut Vec<Action>) {
        if s.tm == Tm::Init {
            if s.tm_prepared.iter().all(|p| *p) {
                out.push(Action::TmCommit);
            }
            out.push(Action::TmAbort);
        }
        for r in 0..self.rms {
            if s.tm == Tm::Init && s.sent_prepared[r] {
                out.push(Action::TmRcvPrepared(r));
            }
            if s.rm[r] == Rm::Working {
                out.push(Action::RmPrepare(r));
                out.push(Action::RmChooseToAbort(r));
            }
            if s.sent_commit {
                out.push(Action::RmRcvCommitMsg(r));
            }
            if s.sent_abort {
                out.push(Action::RmRcvAbortMsg(r));
            }
        }
    }

    fn next_state(&self, s: &State, a: Action) -> Option<State> {
        let mut s = s.clone();
        match a {
            Action::TmRcvPrepared(r) => s.tm_prepared[r] = true,
            Action::TmCommit => {
                s.tm = Tm::Committed;
                s.sent_commit = true;
            }
            Action::TmAbort => {
                s.tm = Tm::Aborted;
                s.sent_abort = true;
            }
            Action::RmPrepare(r) => {
                s.rm[r] = Rm::Prepared;
                s.sent_prepared[r] = true;
            }
            Action::RmChooseToAbort(r) | Action::RmRcvAbortMsg(r) => s.rm[r] = Rm::Aborted,
            Action::RmRcvCommitMsg(r) => s.rm[r] = Rm::Committed,
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![Property::always("consistent", |_, s: &State| {
            !(s.rm.contains(&Rm::Committed) && s.rm.contains(&Rm::Aborted))
        })]
    }
}

/// The process's peak resident set, in KiB (`VmHWM`).
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: stateright-2pc RMS THREADS [bfs|dfs]";
    let rms: usize = args.first().and_then(|a| a.parse().ok()).expect(usage);
    let threads: usize = args.get(1).and_then(|a| a.parse().ok()).expect(usage);
    let search = args.get(2).map_or("bfs", String::as_str);
    let began = Instant::now();
    let builder = TwoPhase { rms }.checker().threads(threads);
    let (states, unique) = match search {
        "bfs" => counts(builder.spawn_bfs().join()),
        "dfs" => counts(builder.spawn_dfs().join()),
        _ => panic!("{usage}"),
    };
    let seconds = began.elapsed().as_secs_f64();
    println!(
        "{{\"rms\":{rms},\"threads\":{threads},\"search\":\"{search}\",\"states\":{states},\"unique\":{unique},\"seconds\":{seconds},\"peak_rss_kib\":{}}}",
        peak_rss_kib()
    );
}

/// States generated and unique states of a finished search, whose property held.
fn counts(checker: impl Checker<TwoPhase>) -> (usize, usize) {
    checker.assert_properties();
    (checker.state_count(), checker.unique_state_count())
}
