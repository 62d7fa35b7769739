//! `agora election`: the federated election count, end to end — over loopback TCP with redb
//! (the default) or in the simulator (`--sim`) — and `register` and `verify`.

use crate::cli::{ElectionAction, ElectionArgs, ElectionRunArgs, FaultArgs, RegisterArgs};
use crate::election_file;
mod timeline;
mod verify;

use crate::commands::shared::{output, repro};
use crate::commands::sim as sim_cmd;
use crate::error::UserError;
use crate::faults;
use agora_cli::election_formats::{
    self, board_line, receipt_csv, receipt_json, BOARD_HEADER, RECEIPTS_HEADER,
};
use agora_core::{NodeId, RunSummary, Setup, Time};
use agora_net::{run_local, Gathered, NetConfig, NodeShared};
use agora_protocols::raft::RaftObs;
use agora_protocols::vote_count::obs::{Answer, Intent, VoteObs};
use agora_protocols::vote_count::settings::Settings;
use agora_protocols::vote_count::setup::VoteSetup;
use agora_protocols::vote_count::states::STATES;
use agora_protocols::vote_count::{self as vc, hex, Hash, Results, Spec};
use agora_sim::{SimConfig, Simulation};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub fn run(args: &ElectionArgs, argv: &[String]) -> Result<i32, UserError> {
    match &args.action {
        Some(ElectionAction::Register(a)) => register(a),
        Some(ElectionAction::Verify(a)) => verify::verify(a),
        None => election(&args.run, argv),
    }
}

// ----- the election file and the roll -----

/// The election of `path`, or the demo election, with `voters` voters.
fn load_spec(path: &Option<PathBuf>, voters: u64, seed: u64) -> Result<Spec, UserError> {
    let Some(path) = path else { return Ok(vc::default_spec(voters, seed)) };
    let text = crate::input::read_text(path, "election file", crate::input::MAX_CONFIG_BYTES)?;
    election_file::parse(&text, voters)
        .map_err(|m| UserError(format!("election file {}: {m}", path.display())))
}

/// A roll bigger than this is refused before it is read (about 3.5 million voters).
const MAX_ROLL_BYTES: u64 = 256 << 20;

fn load_roll(path: &Path) -> Result<Vec<(u8, Hash)>, UserError> {
    let text = crate::input::read_text(path, "roll", MAX_ROLL_BYTES)?;
    election_formats::parse_roll(&text).map_err(|e| UserError(e.in_file(&format!("roll {}", path.display()))))
}

fn register(a: &RegisterArgs) -> Result<i32, UserError> {
    let spec = load_spec(&a.election, a.voters, a.seed)?;
    if a.voters == 0 || a.voters > 100_000_000 {
        return Err(UserError(format!("--voters {}: 1 to 100000000", a.voters)));
    }
    let mut out = String::from("voter,state,credential\n");
    for v in 0..a.voters {
        let s = Spec::synthetic_state(v);
        out.push_str(&format!("{v},{},{}\n", STATES[s as usize].code, hex(&spec.credential(v, s))));
    }
    output::write_file(&a.out, &out)?;
    eprintln!("wrote {} voters of election `{}` to {}", a.voters, spec.id, a.out.display());
    Ok(0)
}

// ----- running it -----

/// What the election produced, read from its nodes' observations.
#[derive(Serialize)]
struct Report {
    election: String,
    runtime: String,
    replicas: usize,
    cast: u64,
    acknowledged: u64,
    rejected: u64,
    rejected_by_reason: BTreeMap<String, u64>,
    counted: u64,
    /// Per state: option → count.
    results: BTreeMap<String, BTreeMap<String, u64>>,
    national: BTreeMap<String, u64>,
    replicas_agree: bool,
    results_digest: Option<String>,
    merkle_root: Option<String>,
    ballots_per_s: f64,
    latency_ms_p50: f64,
    latency_ms_p99: f64,
    checks_passed: bool,
    summary: RunSummary,
    #[serde(skip)]
    published: Option<Results>,
    /// The bulletin board: every counted ballot's row, by leaf.
    #[serde(skip)]
    board: Vec<Option<vc::Receipt>>,
    /// The receipts the citizens got for their valid ballots.
    #[serde(skip)]
    receipts: Vec<vc::Receipt>,
    /// When replicas became leader: (ns, node, term).
    #[serde(skip)]
    leaders: Vec<(u64, u32, u64)>,
    /// Every ballot's `(cast ns, final answer ns)`, on the clock of the observations.
    #[serde(skip)]
    ops: Vec<(u64, u64)>,
}

/// Reads the report off the observations `(time ns, node, observation)`.
fn report<'a>(
    spec: &Spec,
    replicas: usize,
    runtime: &str,
    obs: impl Iterator<Item = (u64, NodeId, &'a VoteObs)>,
    summary: RunSummary,
) -> Report {
    let (mut cast, mut acknowledged, mut rejected) = (0, 0, 0);
    let mut by_reason = BTreeMap::new();
    let mut board: Vec<Option<vc::Receipt>> = Vec::new();
    let mut digests: BTreeMap<NodeId, Hash> = BTreeMap::new();
    let mut published: Option<Results> = None;
    let mut agree = true;
    let mut receipts = Vec::new();
    let (mut first, mut last) = (u64::MAX, 0u64);
    let mut leaders = Vec::new();
    for (t, node, o) in obs {
        match o {
            VoteObs::Cast { .. } => {
                cast += 1;
                first = first.min(t);
            }
            VoteObs::Answered { answer: Answer::Counted(r), intent, .. } => {
                acknowledged += 1;
                last = last.max(t);
                if *intent == Intent::Valid {
                    receipts.push(*r);
                }
            }
            VoteObs::Answered { answer: Answer::Rejected(r), .. } => {
                rejected += 1;
                *by_reason.entry(r.code().to_string()).or_insert(0) += 1;
            }
            VoteObs::Counted { ballots } => {
                for row in ballots {
                    let leaf = row.leaf as usize;
                    if board.len() <= leaf {
                        board.resize(leaf + 1, None);
                    }
                    board[leaf] = Some(*row);
                }
            }
            VoteObs::Tallied { digest, .. } => {
                digests.insert(node, *digest);
            }
            VoteObs::Results { results } => match &published {
                Some(p) => agree &= p == &**results,
                None => published = Some((**results).clone()),
            },
            VoteObs::Raft(RaftObs::Leader { term }) => leaders.push((t, node.0, *term)),
            VoteObs::Raft(_) => {}
        }
    }
    let mut tally_votes: BTreeMap<Hash, usize> = BTreeMap::new();
    for d in digests.values() {
        *tally_votes.entry(*d).or_default() += 1;
    }
    let majority = tally_votes.values().any(|n| *n > replicas / 2);
    agree &= tally_votes.len() == 1
        && majority
        && published.as_ref().is_none_or(|p| tally_votes.contains_key(&p.digest));
    let mut results = BTreeMap::new();
    let mut national = BTreeMap::new();
    if let Some(p) = &published {
        for (i, s) in STATES.iter().enumerate() {
            let row = p.options.iter().cloned().zip(p.per_state[i].iter().copied()).collect();
            results.insert(s.code.to_string(), row);
        }
        national = p.options.iter().cloned().zip(p.national.iter().copied()).collect();
    }
    let span_s = if last > first { (last - first) as f64 / 1e9 } else { 0.0 };
    Report {
        election: spec.id.clone(),
        runtime: runtime.into(),
        replicas,
        cast,
        acknowledged,
        rejected,
        rejected_by_reason: by_reason,
        counted: published.as_ref().map_or(0, |p| p.counted),
        results,
        national,
        replicas_agree: agree && published.is_some(),
        results_digest: published.as_ref().map(|p| hex(&p.digest)),
        merkle_root: published.as_ref().map(|p| hex(&p.root)),
        ballots_per_s: if span_s > 0.0 { acknowledged as f64 / span_s } else { 0.0 },
        latency_ms_p50: summary.latency_ms.p50_ms,
        latency_ms_p99: summary.latency_ms.p99_ms,
        checks_passed: summary.violations.is_empty(),
        summary,
        published,
        board,
        receipts,
        leaders,
        ops: Vec::new(),
    }
}

/// Every ballot answered: `(cast, answered)`, ns.
fn ops_of(m: &agora_core::Metrics) -> Vec<(u64, u64)> {
    m.op_events()
        .filter_map(|(_, b, e)| e.filter(|e| *e >= b && b != Time::MAX).map(|e| (b.as_nanos(), e.as_nanos())))
        .collect()
}

fn settings(a: &ElectionRunArgs) -> Result<Settings, UserError> {
    let roll = a.roll.as_deref().map(load_roll).transpose()?;
    let voters = roll.as_ref().map_or(a.voters, |r| r.len() as u64);
    let spec = load_spec(&a.election, voters, a.seed)?;
    // Over TCP, 15 nodes share this machine's cores and a replica's snapshot stalls it for a
    // few hundred milliseconds: a shorter timeout elects leaders that are only busy.
    let t = a.timeout_ms.unwrap_or(if a.sim { 20.0 } else { 300.0 });
    if !(t.is_finite() && t > 0.0 && t < 3.6e6) {
        return Err(UserError(format!("--timeout-ms {t}: a positive number of milliseconds")));
    }
    if !(a.close_after_ms.is_finite() && a.close_after_ms > 0.0) {
        return Err(UserError(format!("--close-after-ms {}: a positive number", a.close_after_ms)));
    }
    if !(a.max_time_ms.is_finite() && a.max_time_ms > 0.0) {
        return Err(UserError(format!("--max-time-ms {}: a positive number", a.max_time_ms)));
    }
    let s = Settings {
        spec: Arc::new(spec),
        replicas: a.replicas,
        timeout: Duration::from_secs_f64(t / 1e3),
        window: a.window as usize,
        bad: a.bad_ballots,
        close_after: Duration::from_secs_f64(a.close_after_ms / 1e3),
        seed: a.seed,
        roll: roll.map(Arc::new),
    };
    vc::validate(&s).map_err(UserError)?;
    Ok(s)
}

/// The fault flags set in `a`: over TCP the election injects none of them.
fn fault_flags(a: &ElectionRunArgs) -> Vec<&'static str> {
    let f: &FaultArgs = &a.faults;
    let set = [
        ("--faults", f.faults.is_some()),
        ("--latency", f.latency.is_some()),
        ("--loss", f.loss.is_some()),
        ("--duplicate", f.duplicate.is_some()),
        ("--reorder", f.reorder.is_some()),
        ("--reorder-delay-ms", f.reorder_delay_ms.is_some()),
        ("--fifo", f.fifo),
        ("--partition", !f.partition.is_empty()),
        ("--one-way", !f.one_way.is_empty()),
        ("--crash", !f.crash.is_empty()),
        ("--pause", !f.pause.is_empty()),
        ("--skew", !f.skew.is_empty()),
        ("--drift", !f.drift.is_empty()),
        ("--regions", f.regions.is_some()),
        ("--random-crashes", f.random_crashes.is_some()),
        ("--crash-replicas", a.crash_replicas.is_some()),
    ];
    set.into_iter().filter(|(_, on)| *on).map(|(flag, _)| flag).collect()
}

fn election(a: &ElectionRunArgs, argv: &[String]) -> Result<i32, UserError> {
    let refused = fault_flags(a);
    if !a.sim && !refused.is_empty() {
        return Err(UserError(format!(
            "{} {} --sim: the election over TCP injects no faults (kill its processes instead; see docs/election.md)",
            refused.join(", "),
            if refused.len() == 1 { "needs" } else { "need" }
        )));
    }
    let s = settings(a)?;
    let spec = s.spec.clone();
    let setup = VoteSetup::new(s);
    let report = if a.sim { simulate(a, setup, argv)? } else { over_tcp(a, setup, argv)? };
    if let Some(dir) = &a.out {
        write_out(dir, &spec, &report)?;
    }
    if a.json {
        println!("{}", serde_json::to_string(&report).expect("reports serialize"));
    } else {
        print!("{}", text(&spec, &report));
    }
    Ok(if report.checks_passed && report.replicas_agree { 0 } else { 1 })
}

fn simulate(a: &ElectionRunArgs, setup: VoteSetup, argv: &[String]) -> Result<Report, UserError> {
    let n = setup.nodes();
    let mut f = faults::build(&a.faults, n)?;
    if let Some(k) = a.crash_replicas {
        let replicas = setup.s.replicas as u32;
        f.random_crashes = Some(agora_sim::faults::RandomCrashes {
            count: k,
            nodes: Some(format!("0..{replicas}").parse().map_err(UserError)?),
            from_ms: 0.0,
            to_ms: 2_000.0,
            min_down_ms: 20.0,
            max_down_ms: 500.0,
            restart: true,
            wipe: agora_sim::Wipe::No,
        });
    }
    f.validate(n).map_err(|e| UserError(e.to_string()))?;
    let mut cfg = SimConfig::new(a.seed).with_faults(f);
    cfg.max_time = Time::from_millis_f64(a.max_time_ms);
    cfg.keep_observations = true;
    let spec = setup.s.spec.clone();
    let replicas = setup.s.replicas;
    let out = Simulation::new(setup, cfg).run();
    let summary = sim_cmd::summary_of(&out, argv);
    let obs = out.observations.iter().map(|(t, n, o)| (t.as_nanos(), *n, o));
    Ok(Report { ops: ops_of(&out.metrics), ..report(&spec, replicas, "sim", obs, summary) })
}

fn over_tcp(a: &ElectionRunArgs, setup: VoteSetup, argv: &[String]) -> Result<Report, UserError> {
    let spec = setup.s.spec.clone();
    let replicas = setup.s.replicas;
    let citizens: Vec<usize> = (0..spec.regions.len()).map(|r| setup.s.citizen(r).index()).collect();
    let setup = Arc::new(setup);
    let tmp;
    let dir = match &a.data_dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir()
                .map_err(|e| UserError(format!("cannot create a temporary directory: {e}")))?;
            tmp.path().to_path_buf()
        }
    };
    // Every node runs in this process: `NetConfig::new` draws the run's secret.
    let mut cfg = NetConfig::new("election", Vec::new());
    cfg.data_dir = Some(dir);
    cfg.seed = a.seed;
    cfg.max_batch_bytes = 256 * 1024;
    // The progress bar: ballots answered, polled from the citizens' live metrics.
    let bar = if !a.json && std::io::stderr().is_terminal() {
        let b = ProgressBar::new(spec.voters);
        b.set_style(
            ProgressStyle::with_template(
                "voting [{bar:40}] {pos}/{len} ballots answered, {per_sec}, {elapsed}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let nodes: Arc<Mutex<Vec<Arc<NodeShared>>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let (nodes, stop, bar) = (nodes.clone(), stop.clone(), bar.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(250));
                let done: u64 = {
                    let nodes = nodes.lock().expect("nodes lock");
                    citizens
                        .iter()
                        .filter_map(|&i| nodes.get(i))
                        .map(|n| n.live.lock().expect("metrics lock").0.ops_ended())
                        .sum()
                };
                bar.set_position(done);
            }
        })
    };
    let hook = {
        let nodes = nodes.clone();
        move |shared: Vec<Arc<NodeShared>>| *nodes.lock().expect("nodes lock") = shared
    };
    let max = Duration::from_secs_f64(a.max_time_ms / 1e3);
    let out = crate::commands::shared::tcp::runtime()?
        .block_on(run_local(setup.clone(), cfg, max, hook))
        .map_err(UserError::from_run);
    stop.store(true, Ordering::Relaxed);
    let _ = poller.join();
    bar.finish_and_clear();
    let out = out?;
    let mut g = Gathered::from_run(setup.nodes(), out);
    g.observations.sort_by_key(|(t, n, _)| (*t, *n));
    // The summary runs the checker; the report reads the same observations first.
    let empty =
        RunSummary::from_metrics("election", "tcp", 0, 0, "", &agora_core::Metrics::new(), &[], 0.0, 0.0, 0);
    let pre = report(&spec, replicas, "tcp", g.observations.iter().map(|(t, n, o)| (*t, *n, o)), empty);
    let ops = ops_of(&g.metrics);
    let mut summary = agora_net::summarize(&*setup, a.seed, g, &repro::command(argv, a.seed));
    summary.peak_rss_mb = output::peak_rss_mb();
    Ok(Report {
        latency_ms_p50: summary.latency_ms.p50_ms,
        latency_ms_p99: summary.latency_ms.p99_ms,
        checks_passed: summary.violations.is_empty(),
        summary,
        ops,
        ..pre
    })
}

// ----- output -----

fn leader(p: &Results, state: usize) -> (usize, f64) {
    let row = &p.per_state[state];
    let total: u64 = row.iter().sum();
    let mut order: Vec<usize> = (0..row.len()).collect();
    order.sort_by_key(|&o| std::cmp::Reverse(row[o]));
    let margin = if total == 0 {
        0.0
    } else {
        (row[order[0]] - row.get(order.get(1).copied().unwrap_or(0)).copied().unwrap_or(0).min(row[order[0]]))
            as f64
            / total as f64
    };
    (order[0], if row.len() < 2 { 1.0 } else { margin })
}

fn text(spec: &Spec, r: &Report) -> String {
    use std::fmt::Write;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "agora election `{}` — {} replicas, {} voters, {}",
        r.election, r.replicas, spec.voters, r.runtime
    );
    match &r.published {
        Some(p) => {
            let _ = write!(t, "{:<16} {:<15}", "state", "region");
            for o in &p.options {
                let _ = write!(t, " {o:>10}");
            }
            let _ = writeln!(t, "  leading (margin)");
            for (i, s) in STATES.iter().enumerate() {
                let _ = write!(t, "{:<16} {:<15}", s.name, spec.regions[spec.state_region[i] as usize]);
                for c in &p.per_state[i] {
                    let _ = write!(t, " {c:>10}");
                }
                let (l, m) = leader(p, i);
                let _ = writeln!(t, "  {} ({:.1}%)", p.options[l], m * 100.0);
            }
            let _ = write!(t, "{:<32}", "NATIONAL");
            for c in &p.national {
                let _ = write!(t, " {c:>10}");
            }
            let (mut best, mut top) = (0, 0);
            for (o, c) in p.national.iter().enumerate() {
                if *c > top {
                    (best, top) = (o, *c);
                }
            }
            let _ = writeln!(t, "  {} wins", p.options[best]);
        }
        None => {
            let _ = writeln!(t, "NO RESULTS were published");
        }
    }
    let _ = writeln!(
        t,
        "ballots        cast {}  acknowledged {}  rejected {}  counted {}",
        r.cast, r.acknowledged, r.rejected, r.counted
    );
    if !r.rejected_by_reason.is_empty() {
        let reasons: Vec<String> = r.rejected_by_reason.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(t, "rejected       {}", reasons.join(", "));
    }
    let clock = if r.runtime == "sim" { " (virtual time)" } else { "" };
    let _ = writeln!(
        t,
        "speed          {:.0} acknowledged ballots/s, latency p50 {:.1} ms, p99 {:.1} ms{clock}",
        r.ballots_per_s, r.latency_ms_p50, r.latency_ms_p99
    );
    let _ = writeln!(
        t,
        "agreement      replicas agree: {}; digest {}; Merkle root {}",
        r.replicas_agree,
        r.results_digest.as_deref().unwrap_or("-"),
        r.merkle_root.as_deref().unwrap_or("-")
    );
    if let Some(m) = r.summary.peak_rss_mb {
        let fsyncs = r.summary.fsyncs.map_or(String::new(), |f| format!("; {f} fsyncs"));
        let _ = writeln!(t, "memory         peak {m:.0} MiB{fsyncs}");
    }
    if r.summary.violations.is_empty() {
        t.push_str(&crate::commands::shared::output::checks(&r.summary));
    }
    for v in &r.summary.violations {
        let _ = writeln!(t, "VIOLATION      `{}`: {}\nreproduce      {}", v.property, v.detail, v.reproduce);
    }
    t
}

const PALETTE: [(u8, u8, u8); 8] = [
    (31, 119, 180),
    (214, 39, 40),
    (44, 160, 44),
    (148, 103, 189),
    (255, 127, 14),
    (140, 86, 75),
    (227, 119, 194),
    (23, 190, 207),
];

/// The tile map: each state a square near its usual place, coloured by its leading option,
/// paler the closer the race.
fn map_svg(spec: &Spec, p: &Results) -> String {
    use std::fmt::Write;
    let (tile, gap, left, top) = (56.0, 4.0, 20.0, 60.0);
    let width = left * 2.0 + 12.0 * (tile + gap);
    let height = top + 8.0 * (tile + gap) + 40.0 + 22.0 * p.options.len() as f64;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="32" font-size="20">{} — {} ballots counted</text>"#,
        xml(&spec.id),
        p.counted
    );
    for (i, st) in STATES.iter().enumerate() {
        let (l, margin) = leader(p, i);
        let (r, g, b) = PALETTE[l % PALETTE.len()];
        // Margin 0 → 25% strength, a landslide (≥ 50 points) → full colour.
        let k = 0.25 + 0.75 * (margin * 2.0).min(1.0);
        let mix = |c: u8| (255.0 - (255.0 - c as f64) * k).round() as u8;
        let total: u64 = p.per_state[i].iter().sum();
        let (x, y) = (left + st.col as f64 * (tile + gap), top + st.row as f64 * (tile + gap));
        let fill = if total == 0 {
            "#eeeeee".to_string()
        } else {
            format!("#{:02x}{:02x}{:02x}", mix(r), mix(g), mix(b))
        };
        let _ = writeln!(
            s,
            r#"<g><title>{}: {} leads by {:.1} points ({} ballots)</title><rect x="{x}" y="{y}" width="{tile}" height="{tile}" rx="4" fill="{fill}"/><text x="{}" y="{}" font-size="15" text-anchor="middle">{}</text><text x="{}" y="{}" font-size="10" text-anchor="middle">+{:.0}</text></g>"#,
            st.name,
            xml(&p.options[l]),
            margin * 100.0,
            total,
            x + tile / 2.0,
            y + tile / 2.0,
            st.code,
            x + tile / 2.0,
            y + tile / 2.0 + 15.0,
            margin * 100.0
        );
    }
    let mut y = top + 8.0 * (tile + gap) + 20.0;
    for (o, name) in p.options.iter().enumerate() {
        let (r, g, b) = PALETTE[o % PALETTE.len()];
        let states = (0..STATES.len())
            .filter(|&i| leader(p, i).0 == o && p.per_state[i].iter().sum::<u64>() > 0)
            .count();
        let _ = writeln!(
            s,
            r#"<rect x="{left}" y="{}" width="16" height="16" fill="rgb({r},{g},{b})"/><text x="{}" y="{}" font-size="14">{}: {} ballots, leads in {states} states</text>"#,
            y - 13.0,
            left + 24.0,
            y,
            xml(name),
            p.national[o]
        );
        y += 22.0;
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" font-size="11" fill="gray">Paler: a closer race. Digest {}, Merkle root {}.</text>"#,
        left,
        y + 4.0,
        hex(&p.digest),
        hex(&p.root)
    );
    s.push_str("</svg>\n");
    s
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn write_out(dir: &Path, spec: &Spec, r: &Report) -> Result<(), UserError> {
    std::fs::create_dir_all(dir).map_err(|e| UserError(format!("cannot create {}: {e}", dir.display())))?;
    let Some(p) = &r.published else {
        return Err(UserError("no results were published: nothing to write to --out".into()));
    };
    let json = serde_json::json!({
        "election": p.election, "options": p.options, "counted": p.counted,
        "digest": hex(&p.digest), "merkle_root": hex(&p.root),
        "national": r.national, "per_state": r.results,
    });
    output::write_file(&dir.join("results.json"), &serde_json::to_string_pretty(&json).expect("json"))?;
    let mut csv = format!("state,name,region,{},leading,margin\n", p.options.join(","));
    for (i, s) in STATES.iter().enumerate() {
        let counts: Vec<String> = p.per_state[i].iter().map(u64::to_string).collect();
        let (l, m) = leader(p, i);
        csv.push_str(&format!(
            "{},{},{},{},{},{:.4}\n",
            s.code,
            s.name,
            spec.regions[spec.state_region[i] as usize],
            counts.join(","),
            p.options[l],
            m
        ));
    }
    output::write_file(&dir.join("results.csv"), &csv)?;
    output::write_file(&dir.join("map.svg"), &map_svg(spec, p))?;
    if r.board.len() as u64 != p.counted {
        return Err(UserError(format!("{} ballots were counted, {} reported", p.counted, r.board.len())));
    }
    let mut board = format!("{BOARD_HEADER}\n");
    for (leaf, row) in r.board.iter().enumerate() {
        let row =
            row.ok_or_else(|| UserError(format!("the counted ballot at leaf {leaf} was never reported")))?;
        board.push_str(&board_line(&spec.id, &row));
        board.push('\n');
    }
    output::write_file(&dir.join("board.csv"), &board)?;
    timeline::build(&r.ops, &r.leaders).write(dir, "ballots", Some(50.0))?;
    let (mut csv, mut jsonl) = (format!("{RECEIPTS_HEADER}\n"), String::new());
    for rc in &r.receipts {
        csv.push_str(&receipt_csv(&spec.id, rc));
        csv.push('\n');
        jsonl.push_str(&receipt_json(&spec.id, rc));
        jsonl.push('\n');
    }
    output::write_file(&dir.join("receipts.csv"), &csv)?;
    output::write_file(&dir.join("receipts.jsonl"), &jsonl)?;
    Ok(())
}
