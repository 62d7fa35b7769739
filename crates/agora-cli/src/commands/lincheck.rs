//! `agora lincheck HISTORY`: reads a history (Jepsen's EDN or log lines, or agora's JSON
//! lines), checks it for linearizability key by key with `agora_lincheck`, prints the verdict
//! (text, or one JSON object) and, with `--out`, draws the first failing key's timeline.

use crate::cli::LincheckArgs;
use crate::commands::shared::{create_dir, output::write_file};
use crate::error::UserError;
use crate::input::read_text;
use agora_lincheck::{Failure, Format, ModelKind, Op, Options, Report, Verdict};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The largest history read: 4 GiB.
pub const MAX_HISTORY_BYTES: u64 = 4 << 30;

/// The exit code of a search that gave up.
pub const EXIT_UNKNOWN: i32 = 4;

/// What `--json` prints.
#[derive(Serialize)]
struct JsonOut<'a> {
    file: String,
    format: Format,
    linearizable: Option<bool>,
    #[serde(flatten)]
    report: &'a Report,
    svg: Option<PathBuf>,
    wall_ms: f64,
}

/// Runs `agora lincheck`; returns the process exit code.
pub fn run(args: &LincheckArgs) -> Result<i32, UserError> {
    let format = match args.format.as_str() {
        "auto" => None,
        f => Some(Format::parse(f).expect("clap checked the format")),
    };
    let model = match args.model.as_str() {
        "auto" => None,
        m => Some(ModelKind::parse(m).expect("clap checked the model")),
    };
    let opts = Options { max_steps: args.max_steps, all_keys: args.all_keys, ..Options::default() };
    let judged = judge(&args.history, format, model, &opts, args.out.as_deref())?;
    if args.json {
        println!("{}", judged.json);
    } else {
        print!("{}", judged.text);
    }
    Ok(judged.exit_code())
}

/// A history judged: the checker's report and what `agora lincheck` prints of it.
pub struct Judged {
    pub report: Report,
    /// The verdict for a reader.
    pub text: String,
    /// The verdict as one JSON object (what `--json` prints).
    pub json: String,
}

impl Judged {
    /// `Some(true)` linearizable, `Some(false)` not, `None` unknown (the search gave up).
    pub fn linearizable(&self) -> Option<bool> {
        decided(self.report.verdict)
    }

    /// 0 linearizable, 1 not, [`EXIT_UNKNOWN`] unknown.
    pub fn exit_code(&self) -> i32 {
        match self.linearizable() {
            Some(true) => 0,
            Some(false) => 1,
            None => EXIT_UNKNOWN,
        }
    }
}

fn decided(v: Verdict) -> Option<bool> {
    match v {
        Verdict::Linearizable => Some(true),
        Verdict::NotLinearizable => Some(false),
        Verdict::Unknown => None,
    }
}

/// Reads the history at `path` and checks it; with `out`, writes lincheck.json there and, if
/// a key fails, the timeline of the first (lincheck.svg).
pub fn judge(
    path: &Path,
    format: Option<Format>,
    model: Option<ModelKind>,
    opts: &Options,
    out: Option<&Path>,
) -> Result<Judged, UserError> {
    let started = std::time::Instant::now();
    let text = read_text(path, "history", MAX_HISTORY_BYTES)?;
    let shown = path.display();
    let (format, model, history) =
        agora_lincheck::read(&text, format, model).map_err(|e| UserError(format!("{shown}: {e}")))?;
    drop(text);
    let report = agora_lincheck::check(&history, model, opts);

    let mut svg = None;
    if let Some(dir) = out {
        create_dir(dir)?;
        if let Some(first) = report.failures.first() {
            let file = dir.join("lincheck.svg");
            write_file(&file, &agora_lincheck::svg::timeline(&history, first))?;
            svg = Some(file);
        }
    }
    let out_json = JsonOut {
        file: shown.to_string(),
        format,
        linearizable: decided(report.verdict),
        report: &report,
        svg,
        wall_ms: started.elapsed().as_secs_f64() * 1e3,
    };
    let json = serde_json::to_string(&out_json).expect("the verdict serializes");
    if let Some(dir) = out {
        write_file(&dir.join("lincheck.json"), &format!("{json}\n"))?;
    }
    let text = text_report(&out_json);
    Ok(Judged { report, text, json })
}

/// The verdict for a reader.
fn text_report(out: &JsonOut) -> String {
    let r = out.report;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "agora lincheck {} — {} history, {} model; {} operations on {} key{} ({} ambiguous), {} failed and {} ambiguous reads dropped",
        out.file,
        out.format,
        r.model,
        r.operations,
        r.keys,
        if r.keys == 1 { "" } else { "s" },
        r.ambiguous,
        r.failed,
        r.ambiguous_reads
    );
    for f in &r.failures {
        failure_text(&mut t, f);
    }
    let left = r.unknown.iter().filter(|u| u.cancelled).count();
    for u in r.unknown.iter().filter(|u| !u.cancelled) {
        let _ = writeln!(
            t,
            "{}: unknown — the search gave up after {} steps ({} operations)",
            key_name(&u.key),
            u.steps,
            u.operations
        );
    }
    if left > 0 {
        let _ =
            writeln!(t, "{left} key(s) left unchecked once a violation was found (--all-keys checks them)");
    }
    let _ = match r.verdict {
        Verdict::Linearizable => writeln!(t, "verdict        linearizable"),
        Verdict::NotLinearizable => writeln!(
            t,
            "verdict        NOT linearizable: {} of {} keys checked; the first is {}",
            r.failures.len(),
            r.keys - left,
            key_name(&r.failures[0].key)
        ),
        Verdict::Unknown => {
            writeln!(t, "verdict        unknown: {} keys not decided within --max-steps", r.unknown.len())
        }
    };
    if let Some(svg) = &out.svg {
        let _ = writeln!(t, "timeline       {}", svg.display());
    } else if !r.failures.is_empty() {
        let _ = writeln!(t, "timeline       --out DIR draws the first failing key's");
    }
    let _ = writeln!(t, "checked in     {:.1} ms, {} search steps in failing keys", out.wall_ms, r.steps);
    t
}

fn failure_text(t: &mut String, f: &Failure) {
    let _ = writeln!(
        t,
        "{}: NOT linearizable — {} of its {} operations linearize, then its value is {}; no order places",
        key_name(&f.key),
        f.linearized,
        f.operations,
        f.state
    );
    let _ = writeln!(t, "  {}   ← the first to complete", op_text(&f.culprit));
    for o in &f.concurrent {
        let _ = writeln!(t, "  {}", op_text(o));
    }
    if f.concurrent_count > f.concurrent.len() {
        let _ = writeln!(t, "  ... and {} more concurrent", f.concurrent_count - f.concurrent.len());
    }
    if !f.prefix_tail.is_empty() {
        let tail: Vec<String> =
            f.prefix_tail.iter().map(|o| format!("p{} {}", o.process, o.label())).collect();
        let _ = writeln!(t, "  after the prefix ending: {}", tail.join(", "));
    }
}

fn op_text(o: &Op) -> String {
    let ret = match (o.outcome, o.ret_line) {
        (agora_lincheck::Outcome::Info, Some(l)) => format!("{l} (info: open to the end)"),
        (agora_lincheck::Outcome::Info, None) => "(never completed: open to the end)".to_string(),
        (_, l) => l.map_or(String::new(), |l| l.to_string()),
    };
    format!("process {:<4} {:<20} lines {}..{}", o.process, o.label(), o.call_line, ret)
}

fn key_name(k: &Option<agora_lincheck::Value>) -> String {
    k.as_ref().map_or("the register".to_string(), |k| format!("key {k}"))
}
