//! What `agora cluster nemesis` prints: the schedule first, a line as each fault begins and
//! ends, then every fault with its times and what the clients saw during it, and the verdict
//! of every property (text, or one JSON object); with `--out`, the timeline as SVG and CSV.

use super::schedule::{fault_name, names, Planned};
use crate::cli::{ClusterNemesisArgs, NemesisFault};
use crate::commands::election::timeline::{self, Band};
use crate::commands::lincheck::Judged;
use crate::commands::shared::output::write_file;
use crate::error::UserError;
use crate::input::read_text;
use agora_lincheck::Kind;
use serde::Serialize;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The schedule, printed before anything is broken.
pub fn schedule_text(cluster: &str, a: &ClusterNemesisArgs, workload: &str, plan: &[Planned]) -> String {
    let kinds: Vec<&str> = a.faults.iter().map(|f| fault_name(*f)).collect();
    let mut t = format!(
        "nemesis  cluster {cluster}: faults {} for {:.1} s, seed {}, about {} ms each; {workload}\n",
        kinds.join(","),
        a.duration.as_secs_f64(),
        a.seed,
        a.interval_ms,
    );
    if a.stale_reads {
        t.push_str(
            "clients  send READONLY: followers answer their reads from their own state (stale reads)\n",
        );
    }
    let _ = writeln!(t, "schedule {} fault(s), times from the start of the run:", plan.len());
    for p in plan {
        let _ = writeln!(
            t,
            "  {:>7.2} s .. {:>7.2} s  {:<10} {}",
            p.at.as_secs_f64(),
            p.until.as_secs_f64(),
            fault_name(p.kind),
            p.side
        );
    }
    t
}

/// One fault as it was applied.
#[derive(Debug, Serialize)]
pub struct FaultRun {
    pub kind: NemesisFault,
    /// What the schedule named (`the leader`, `n1`, ...).
    pub planned: String,
    /// The replicas hit.
    pub nodes: Vec<usize>,
    /// For a fault on the leader: whether one was found (else the schedule's fallback replica).
    pub leader_found: Option<bool>,
    /// When it was applied and healed, in s from the start of the run.
    pub start_s: f64,
    pub end_s: f64,
    /// Why it could not be applied.
    pub error: Option<String>,
    /// What healing it did, and why it could not.
    pub healed: Vec<String>,
    pub heal_error: Option<String>,
    /// For a partition or a cut: the replica leading just before the healing.
    pub leader_at_end: Option<usize>,
    /// What a data fault was seen to do (its replica refused an emptied volume, stopped on a
    /// full disk, ...), and a breach of the durability standard seen.
    pub seen: Vec<String>,
    pub violation: Option<String>,
    /// The history's operations invoked while it lasted, by outcome.
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
}

impl FaultRun {
    pub fn new(
        p: &Planned,
        nodes: Vec<usize>,
        leader_found: Option<bool>,
        start_s: f64,
        error: Option<String>,
    ) -> Self {
        FaultRun {
            kind: p.kind,
            planned: p.side.to_string(),
            nodes,
            leader_found,
            start_s,
            end_s: start_s,
            error,
            healed: Vec::new(),
            heal_error: None,
            leader_at_end: None,
            seen: Vec::new(),
            violation: None,
            ok: 0,
            fail: 0,
            info: 0,
        }
    }

    /// Keeps what a data fault was seen to do (the first breach seen stays).
    pub fn saw(&mut self, seen: super::faults::Seen) {
        self.seen.extend(seen.note);
        if self.violation.is_none() {
            self.violation = seen.violation;
        }
    }

    /// The replicas hit, in words: `n1 (the leader)`, `n0 | n1 n2` for a partition.
    fn whom(&self) -> String {
        let said = match self.leader_found {
            Some(true) => " (the leader)",
            Some(false) => " (no leader found)",
            None => "",
        };
        let rest = if self.kind == NemesisFault::Partition { " | the rest" } else { "" };
        format!("{}{said}{rest}", names(&self.nodes))
    }

    pub fn began_line(&self) -> String {
        match &self.error {
            None => format!("{:>9.2} s  {:<10} {}", self.start_s, fault_name(self.kind), self.whom()),
            Some(e) => {
                format!(
                    "{:>9.2} s  {:<10} {}: NOT APPLIED: {e}",
                    self.start_s,
                    fault_name(self.kind),
                    self.whom()
                )
            }
        }
    }

    /// Its row in the final list: times, fault, whom, what the operations begun meanwhile got.
    pub fn row(&self) -> String {
        format!(
            "{:>7.2} .. {:>7.2}  {:<10} {:<32} {:>6} ok {:>4} fail {:>4} info{}",
            self.start_s,
            self.end_s,
            fault_name(self.kind),
            self.whom(),
            self.ok,
            self.fail,
            self.info,
            self.error.as_ref().map_or(String::new(), |e| format!("  NOT APPLIED: {e}"))
        )
    }

    pub fn ended_line(&self) -> String {
        let mut did =
            if self.healed.is_empty() { "nothing left to undo".to_string() } else { self.healed.join(", ") };
        if let Some(l) = self.leader_at_end {
            did = format!("{did} (n{l} led before)");
        }
        if !self.seen.is_empty() {
            did = format!("{did} [{}]", self.seen.join("; "));
        }
        match &self.heal_error {
            None => format!("{:>9.2} s  healed     {did}", self.end_s),
            Some(e) => format!("{:>9.2} s  healed     {did}; NOT HEALED: {e}", self.end_s),
        }
    }
}

/// Whether the cluster answers after the last healing.
#[derive(Debug, Serialize)]
pub struct Answered {
    pub replicas: usize,
    pub answering: usize,
    pub leader: Option<usize>,
    pub following: usize,
    /// Seconds from the healing to the answer (or to giving up).
    pub after_s: f64,
    /// Every replica answers and follows the leader.
    pub all: bool,
}

/// One operation of the history: invoked and completed (Unix ns), and how it ended.
#[derive(Clone, Copy, Debug)]
pub struct HistOp {
    pub begin: u64,
    pub end: Option<u64>,
    pub kind: Kind,
}

/// The operations of the history at `path` (agora's JSON lines), paired by process.
pub fn operations(path: &Path) -> Result<Vec<HistOp>, UserError> {
    let text = read_text(path, "history", crate::commands::lincheck::MAX_HISTORY_BYTES)?;
    let events = agora_lincheck::agora_json::parse_events(&text)
        .map_err(|e| UserError(format!("{}: {e}", path.display())))?;
    let mut open: HashMap<i64, usize> = HashMap::new();
    let mut ops = Vec::new();
    for e in events {
        let t = e.time.unwrap_or(0).max(0) as u64;
        match e.kind {
            Kind::Invoke => {
                open.insert(e.process, ops.len());
                ops.push(HistOp { begin: t, end: None, kind: Kind::Info });
            }
            k => {
                if let Some(i) = open.remove(&e.process) {
                    ops[i].end = Some(t);
                    ops[i].kind = k;
                }
            }
        }
    }
    Ok(ops)
}

/// Counts, for each fault, the operations invoked while it lasted.
pub fn count_during(runs: &mut [FaultRun], ops: &[HistOp], start_ns: u64) {
    for r in runs {
        let (from, to) = (start_ns + (r.start_s * 1e9) as u64, start_ns + (r.end_s * 1e9) as u64);
        for o in ops.iter().filter(|o| o.begin >= from && o.begin < to) {
            match o.kind {
                Kind::Ok => r.ok += 1,
                Kind::Fail => r.fail += 1,
                _ => r.info += 1,
            }
        }
    }
}

/// With data faults (`wipe`, `disk`): `storage faults taken safely`, whether every one was
/// applied and its replica kept to the durability standard — refused an emptied volume, kept
/// running on a full disk or stopped saying why.
fn storage_property(runs: &[FaultRun]) -> Option<Property> {
    let data: Vec<&FaultRun> =
        runs.iter().filter(|r| matches!(r.kind, NemesisFault::Wipe | NemesisFault::Disk)).collect();
    if data.is_empty() {
        return None;
    }
    let breaches: Vec<String> = data
        .iter()
        .filter_map(|r| r.violation.clone().or_else(|| r.error.as_ref().map(|e| format!("not applied: {e}"))))
        .collect();
    let ok = breaches.is_empty();
    let detail = if ok {
        data.iter().flat_map(|r| r.seen.iter().cloned()).collect::<Vec<_>>().join("; ")
    } else {
        breaches.join("; ")
    };
    Some(Property { name: "storage faults taken safely", ok: Some(ok), detail })
}

/// A property and its verdict.
#[derive(Debug, Serialize)]
pub struct Property {
    pub name: &'static str,
    /// `None`: undecided (the checker gave up).
    pub ok: Option<bool>,
    pub detail: String,
}

/// Everything the run found.
pub struct Outcome {
    pub cluster: String,
    pub seed: u64,
    pub interrupted: bool,
    pub runs: Vec<FaultRun>,
    pub healed_at_s: f64,
    /// Why the last healing failed.
    pub last_heal: Option<String>,
    pub answered: Answered,
    /// Replicas whose address changed.
    pub moved: Vec<(usize, Option<IpAddr>)>,
    pub judged: Judged,
    pub history: PathBuf,
    pub ops: Vec<HistOp>,
    pub start_ns: u64,
    /// The clients' own report.
    pub workload: String,
}

impl Outcome {
    fn properties(&self) -> Vec<Property> {
        let r = &self.judged.report;
        let applied = self.runs.iter().filter(|r| r.error.is_none()).count();
        let heal_errors: Vec<String> = self
            .runs
            .iter()
            .filter_map(|r| r.heal_error.clone())
            .chain(self.last_heal.clone())
            .chain(self.moved.iter().map(|(n, ip)| match ip {
                Some(ip) => format!("n{n} came back at another address, {ip}: its peers do not follow"),
                None => format!("n{n} has no address on the cluster's network"),
            }))
            .collect();
        let after = self.start_ns + (self.healed_at_s * 1e9) as u64;
        let acked_after = self.ops.iter().filter(|o| o.kind == Kind::Ok && o.begin >= after).count();
        let a = &self.answered;
        let linear = match self.judged.linearizable() {
            Some(true) => {
                format!("{} operations on {} keys ({} unknown: info)", r.operations, r.keys, r.ambiguous)
            }
            Some(false) => {
                let f = &r.failures[0];
                let key = f.key.as_ref().map_or("the register".to_string(), |k| format!("key {k}"));
                format!(
                    "{key}: {} of its {} operations linearize, then no order places process {} {} (history lines {}..{}); {} key(s) fail",
                    f.linearized,
                    f.operations,
                    f.culprit.process,
                    f.culprit.label(),
                    f.culprit.call_line,
                    f.culprit.ret_line.map_or("the end".to_string(), |l| l.to_string()),
                    r.failures.len()
                )
            }
            None => format!("the search gave up on {} key(s)", r.unknown.len()),
        };
        let mut props = vec![
            Property {
                name: "faults applied",
                ok: Some(applied == self.runs.len() && !self.runs.is_empty()),
                detail: format!("{applied} of {} applied", self.runs.len()),
            },
            Property {
                name: "healed",
                ok: Some(heal_errors.is_empty()),
                detail: if heal_errors.is_empty() {
                    format!("every fault undone at {:.2} s", self.healed_at_s)
                } else {
                    heal_errors.join("; ")
                },
            },
            Property { name: "linearizable", ok: self.judged.linearizable(), detail: linear },
            Property {
                name: "answering after healing",
                ok: Some(a.all && acked_after > 0),
                detail: format!(
                    "{} of {} replicas answer, {} follow {}, {:.2} s after the healing; {acked_after} operations acknowledged after it",
                    a.answering,
                    a.replicas,
                    a.following,
                    a.leader.map_or("no leader".to_string(), |l| format!("n{l}")),
                    a.after_s
                ),
            },
        ];
        props.extend(storage_property(&self.runs));
        props
    }

    /// Prints the outcome (and writes `out`'s files); the exit code.
    pub fn print(&self, json: bool, out: Option<&Path>) -> Result<i32, UserError> {
        let props = self.properties();
        let code = if props.iter().any(|p| p.ok == Some(false)) {
            1
        } else if props.iter().any(|p| p.ok.is_none()) {
            crate::commands::lincheck::EXIT_UNKNOWN
        } else {
            0
        };
        let (ok, fail, info) = self.ops.iter().fold((0, 0, 0), |(o, f, i), op| match op.kind {
            Kind::Ok => (o + 1, f, i),
            Kind::Fail => (o, f + 1, i),
            _ => (o, f, i + 1),
        });
        let lincheck: serde_json::Value =
            serde_json::from_str(&self.judged.json).expect("the checker's verdict is JSON");
        let v = serde_json::json!({
            "cluster": self.cluster,
            "seed": self.seed,
            "interrupted": self.interrupted,
            "faults": self.runs,
            "healed_at_s": self.healed_at_s,
            "operations": { "ok": ok, "fail": fail, "info": info },
            "answered": self.answered,
            "properties": props,
            "linearizable": self.judged.linearizable(),
            "lincheck": lincheck,
            "history": self.history,
            "ok": code == 0,
        });
        let drawn = timeline(&self.ops, &self.runs, self.start_ns);
        let Some(mut t) = emit(&v, json, out, self.interrupted, &drawn, "operations")? else {
            return Ok(code);
        };
        t.push_str(&self.workload);
        let _ =
            writeln!(t, "faults   (times in s from the start; the history's operations invoked meanwhile)");
        for r in &self.runs {
            let _ = writeln!(t, "  {}", r.row());
        }
        if !self.judged.report.failures.is_empty() {
            t.push_str(&self.judged.text);
        }
        t.push_str("properties\n");
        for p in &props {
            let verdict = match p.ok {
                Some(true) => "ok",
                Some(false) => "VIOLATED",
                None => "unknown",
            };
            let _ = writeln!(t, "  {:<24} {verdict:<8} {}", p.name, p.detail);
        }
        match out {
            Some(dir) => {
                let _ = writeln!(
                    t,
                    "out      {}: history.jsonl, timeline.svg, timeline.csv, nemesis.json, lincheck.json{}",
                    dir.display(),
                    if self.judged.report.failures.is_empty() { "" } else { ", lincheck.svg" }
                );
            }
            None => t.push_str("out      --out DIR keeps the history and draws the timeline\n"),
        }
        print!("{t}");
        Ok(code)
    }
}

/// Writes `nemesis.json` and the timeline (`what` per second) into `out` if given, and prints
/// `v` with `--json`; otherwise the start of the text to print (whether it was interrupted).
pub fn emit(
    v: &serde_json::Value,
    json: bool,
    out: Option<&Path>,
    interrupted: bool,
    drawn: &timeline::Timeline,
    what: &str,
) -> Result<Option<String>, UserError> {
    if let Some(dir) = out {
        write_file(&dir.join("nemesis.json"), &format!("{v}\n"))?;
        drawn.write(dir, what, None)?;
    }
    if json {
        println!("{v}");
        return Ok(None);
    }
    let mut t = String::new();
    if interrupted {
        t.push_str("interrupted: the schedule stopped there; every fault is healed\n");
    }
    Ok(Some(t))
}

/// Operations answered (ok or fail) per second and their latency, with the faults as bands
/// (`start_ns`: the run's start, the clock of the faults' times).
pub fn timeline(ops: &[HistOp], runs: &[FaultRun], start_ns: u64) -> timeline::Timeline {
    let answered: Vec<(u64, u64)> = ops
        .iter()
        .filter(|o| matches!(o.kind, Kind::Ok | Kind::Fail))
        .filter_map(|o| Some((o.begin, o.end?)))
        .collect();
    let mut t = timeline::build(&answered, &[]);
    let ms = |s: f64| ((start_ns as f64 + s * 1e9) - t.origin_ns as f64) / 1e6;
    t.bands = runs
        .iter()
        .filter(|r| r.error.is_none())
        .map(|r| Band {
            from_ms: ms(r.start_s),
            to_ms: ms(r.end_s),
            label: format!("{} {}", fault_name(r.kind), names(&r.nodes)),
        })
        .collect();
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::NemesisFault::{Kill, Partition};
    use crate::commands::cluster::nemesis::schedule::Side;
    use std::time::Duration;

    const S: u64 = 1_000_000_000;

    fn line(process: u64, kind: &str, time_s: f64) -> String {
        format!(
            "{{\"process\":{process},\"type\":\"{kind}\",\"f\":\"put\",\"key\":\"k\",\"value\":\"v\",\"time_ns\":{}}}\n",
            (100.0 + time_s) as u64 * S + ((time_s.fract() * 1e9) as u64)
        )
    }

    #[test]
    fn operations_pair_by_process_and_count_in_the_fault_they_began_in() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        let text = [
            line(0, "invoke", 0.5),
            line(1, "invoke", 1.5),
            line(0, "ok", 1.6),
            line(2, "invoke", 1.7),
            line(1, "info", 3.0),
            line(2, "fail", 1.8),
            line(3, "invoke", 4.0),
        ]
        .concat();
        std::fs::write(&path, text).unwrap();
        let ops = operations(&path).unwrap();
        let kinds: Vec<Kind> = ops.iter().map(|o| o.kind).collect();
        assert_eq!(kinds, [Kind::Ok, Kind::Info, Kind::Fail, Kind::Info], "one never completed: info");
        assert_eq!(ops[1].end, Some(103 * S));
        assert_eq!(ops[3].end, None);
        let plan = |kind| Planned {
            kind,
            at: Duration::ZERO,
            until: Duration::ZERO,
            side: Side::Leader,
            fallback: 0,
            bend: None,
        };
        let mut runs = vec![
            FaultRun::new(&plan(Kill), vec![1], Some(true), 1.0, None),
            FaultRun::new(&plan(Partition), vec![0], None, 3.5, None),
        ];
        runs[0].end_s = 2.0;
        runs[1].end_s = 5.0;
        count_during(&mut runs, &ops, 100 * S);
        assert_eq!((runs[0].ok, runs[0].fail, runs[0].info), (0, 1, 1), "invoked at 1.5 s and 1.7 s");
        assert_eq!((runs[1].ok, runs[1].fail, runs[1].info), (0, 0, 1));
        assert_eq!(runs[0].whom(), "n1 (the leader)");
        assert_eq!(runs[1].whom(), "n0 | the rest");
    }
}
