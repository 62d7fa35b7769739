//! `agora cluster nemesis` (docs/cluster.md): breaks a running cluster on purpose — kills,
//! pauses, partitions, one-way cuts, clean restarts, disconnections, and for a Raft store
//! wiped volumes and full disks — on a schedule drawn from a seed, then heals every fault,
//! lets the system go on for a quiet period, and judges: were the faults applied and healed,
//! does the cluster answer again, and what does the system's checker say of the history. A
//! key-value store's history is recorded by clients on this machine, run against the
//! containers' addresses, and judged linearizable or not; a market's workload runs inside
//! its peers (the buyers), whose logs hold the history its checker judges ([`market`]), and
//! so does an election's ([`election`]); the voting service's members run on this machine,
//! and what they saw is judged ([`vote`]).

mod election;
pub(super) mod faults;
mod logged;
mod market;
mod report;
mod schedule;
mod vote;

use super::docker::Docker;
use super::files::RESP_PORT;
use super::{status, Files};
use crate::cli::{ClusterNemesisArgs, NemesisFault};
use crate::commands::kv::workload;
use crate::commands::lincheck;
use crate::commands::shared::create_dir;
use crate::commands::shared::tcp::{interrupted, runtime};
use crate::error::UserError;
use faults::{Faults, Node};
use report::{FaultRun, Outcome};
use schedule::{Planned, Side};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long the nemesis waits for the cluster to answer, before and after: a guard against
/// hanging, not a measure.
const ANSWER_WITHIN: Duration = Duration::from_secs(60);

/// Wall time in Unix nanoseconds, the clock of the history's events.
fn unix_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// The schedule's clock: the run's start, and a way to wait until a moment of it unless
/// interrupted.
struct Clock {
    start: Instant,
    start_ns: u64,
    stop: mpsc::Receiver<()>,
    interrupted: bool,
}

impl Clock {
    /// The clock of a run starting now, stopped by Ctrl-C (or by a message on the sender
    /// returned, whose drop does not stop it).
    fn start(rt: &tokio::runtime::Runtime) -> (Clock, mpsc::Sender<()>) {
        let (stop_tx, stop_rx) = mpsc::channel();
        let ctrl_c = stop_tx.clone();
        rt.spawn(async move {
            interrupted().await;
            let _ = ctrl_c.send(());
        });
        (Clock { start: Instant::now(), start_ns: unix_ns(), stop: stop_rx, interrupted: false }, stop_tx)
    }

    /// Waits until `at` after the start; false (at once, and from then on) once interrupted.
    fn until(&mut self, at: Duration) -> bool {
        if self.interrupted {
            return false;
        }
        let left = (self.start + at).saturating_duration_since(Instant::now());
        match self.stop.recv_timeout(left) {
            Err(mpsc::RecvTimeoutError::Timeout) => true,
            _ => {
                self.interrupted = true;
                false
            }
        }
    }

    /// Seconds since the start.
    fn now_s(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    fn s_of(&self, ns: u64) -> f64 {
        ns.saturating_sub(self.start_ns) as f64 / 1e9
    }
}

/// `agora cluster nemesis`: 0 if every property held, 1 if one did not, 4 if the checker gave
/// up on the history.
pub fn run(a: &ClusterNemesisArgs) -> Result<i32, UserError> {
    let files = Files::of(&a.dir)?;
    let cf = files.load()?;
    if !matches!(cf.protocol.as_str(), "kv" | "market" | "election" | "vote") {
        return Err(UserError(format!(
            "cluster {} runs {:?}: the nemesis breaks key-value stores, markets, elections and \
             voting services (`agora cluster up --system raft|market|election|vote`)",
            files.name, cf.protocol
        )));
    }
    let data = a.faults.iter().any(|f| matches!(f, NemesisFault::Wipe | NemesisFault::Disk));
    if data && cf.protocol != "kv" {
        return Err(UserError(format!(
            "--faults wipe and disk: only on a Raft key-value store (`agora cluster up --system raft`);              cluster {} runs {:?}",
            files.name, cf.protocol
        )));
    }
    let docker = Docker::find()?;
    super::swarm::refuse(&docker, &files.name, "nemesis")?;
    // An election's nodes end on their own once the count is over; the others run until stopped.
    let faults = prepare(&docker, &files, cf.nodes.len(), cf.protocol == "election", a)?;
    match cf.protocol.as_str() {
        "market" => return market::run(a, &docker, &files, &cf, &faults),
        "election" => return election::run(a, &docker, &files, &cf, &faults),
        "vote" => return vote::run(a, &docker, &files, &cf, &faults),
        _ => {}
    }
    key_value(a, &docker, &files, cf.nodes.len(), &faults)
}

/// The faults of a healthy cluster's `nodes` containers, every leftover of an interrupted run
/// healed, packet filters checked to work if partitions or cuts are asked for.
fn prepare<'a>(
    docker: &'a Docker,
    files: &Files,
    replicas: usize,
    ends: bool,
    a: &ClusterNemesisArgs,
) -> Result<Faults<'a>, UserError> {
    let cs = status::containers(docker, &files.name)?;
    let mut nodes = Vec::new();
    for id in 0..replicas {
        let c = cs.iter().find(|c| c.node == id && c.state == "running").ok_or_else(|| {
            UserError(format!(
                "node {id} of cluster {} is not running: the nemesis starts from a healthy cluster \
                 (`agora cluster status --dir {}`)",
                files.name,
                a.dir.dir.display()
            ))
        })?;
        let ip = c.ip.ok_or_else(|| UserError(format!("node {id}'s container has no address")))?;
        nodes.push(Node { id, container: c.id.clone(), ip });
    }
    let faults = Faults::new(docker, nodes, ends)?;
    if a.faults.iter().any(|f| matches!(f, NemesisFault::Partition | NemesisFault::Cut)) {
        faults.check_filters()?;
    }
    if a.faults.iter().any(|f| matches!(f, NemesisFault::Wipe | NemesisFault::Disk)) {
        faults.check_volumes(a.faults.contains(&NemesisFault::Disk))?;
    }
    if a.faults.contains(&NemesisFault::Clock) {
        faults.check_clocks()?;
    }
    // Leftovers of an interrupted run (a paused container, filters) go before anything starts.
    faults.heal()?;
    Ok(faults)
}

/// The nemesis of a key-value store, its clients on this machine.
fn key_value(
    a: &ClusterNemesisArgs,
    docker: &Docker,
    files: &Files,
    replicas: usize,
    faults: &Faults,
) -> Result<i32, UserError> {
    if status::wait_for_leader(
        docker,
        &files.name,
        &status::Where::Compose,
        replicas,
        Instant::now() + ANSWER_WITHIN,
    )?
    .is_none()
    {
        return Err(UserError(format!(
            "cluster {}: no leader followed by a majority within {} s; the nemesis starts from a healthy cluster",
            files.name,
            ANSWER_WITHIN.as_secs()
        )));
    }

    let plan = schedule::draw(&a.faults, replicas, a.duration, Duration::from_millis(a.interval_ms), a.seed);
    if !a.dir.json {
        let clients = format!("{} client(s) on {} key(s)", a.clients, a.keys);
        print!("{}", report::schedule_text(&files.name, a, &clients, &plan));
    }
    if let Some(out) = &a.out {
        create_dir(out)?;
    }
    let scratch = crate::commands::shared::tcp::temp_dir()?;
    let history = a.out.as_deref().unwrap_or(scratch.path()).join("history.jsonl");
    let addrs: Vec<SocketAddr> = faults.nodes().iter().map(|n| SocketAddr::new(n.ip, RESP_PORT)).collect();
    let spec = workload::Spec {
        ops: u64::MAX,
        clients: a.clients,
        keys: a.keys,
        seed: a.seed,
        timeout: Duration::from_millis(a.timeout_ms),
        history: Some(history.clone()),
        stale_reads: a.stale_reads,
        // The store keeps earlier runs' keys, which this history knows nothing of.
        key_prefix: format!("n{}-", unix_ns() / 1_000_000),
    };

    let rt = runtime()?;
    let (mut clock, stop_tx) = Clock::start(&rt);
    let (end_tx, end_rx) = tokio::sync::oneshot::channel::<()>();
    let clients = rt.spawn(workload::run(spec, addrs, async move {
        let _ = end_rx.await;
    }));

    let leader = || leader(docker, &files.name, replicas);
    let mut runs = apply_all(faults, &plan, &mut clock, a.dir.json, &leader);
    let healed_ns = unix_ns();
    let last_heal = faults.heal();
    let answered = answering(docker, &files.name, replicas, healed_ns);
    let moved = faults.moved()?;
    clock.until(Duration::from_nanos(healed_ns - clock.start_ns) + a.quiet);
    let _ = end_tx.send(());
    let workload_text =
        rt.block_on(clients).map_err(|e| UserError(format!("the clients stopped: {e}")))??;
    drop(stop_tx);

    let opts = agora_lincheck::Options::default();
    let judged =
        lincheck::judge(&history, Some(agora_lincheck::Format::Agora), None, &opts, a.out.as_deref())?;
    let ops = report::operations(&history)?;
    report::count_during(&mut runs, &ops, clock.start_ns);
    let outcome = Outcome {
        cluster: files.name.clone(),
        seed: a.seed,
        interrupted: clock.interrupted,
        runs,
        healed_at_s: clock.s_of(healed_ns),
        last_heal: last_heal.err().map(|e| e.msg),
        answered,
        moved,
        judged,
        history: history.clone(),
        ops,
        start_ns: clock.start_ns,
        workload: workload_text,
    };
    outcome.print(a.dir.json, a.out.as_deref())
}

/// Applies the schedule's faults, each healed when it ends, until its end or an interrupt;
/// `leader` finds the replica leading now (the one a fault on the leader hits).
fn apply_all(
    faults: &Faults,
    plan: &[Planned],
    clock: &mut Clock,
    quiet: bool,
    leader: &dyn Fn() -> Option<usize>,
) -> Vec<FaultRun> {
    let mut runs = Vec::new();
    for p in plan {
        if !clock.until(p.at) {
            break;
        }
        let run = apply(faults, p, clock, quiet, leader);
        let lasted = clock.until(p.until);
        runs.push(heal(faults, run, clock, quiet, leader));
        if !lasted {
            break;
        }
    }
    runs
}

/// Applies one fault of the schedule, resolving "the leader" first; what became of it.
fn apply(
    faults: &Faults,
    p: &Planned,
    clock: &Clock,
    quiet: bool,
    leader: &dyn Fn() -> Option<usize>,
) -> FaultRun {
    let (nodes, leader) = match &p.side {
        Side::Nodes(ns) => (ns.clone(), None),
        Side::Leader => {
            let found = leader();
            (vec![found.unwrap_or(p.fallback)], Some(found.is_some()))
        }
    };
    let start_s = clock.now_s();
    let (error, seen) = match faults.apply(p.kind, &nodes, p.bend) {
        Ok(seen) => (None, seen),
        Err(e) => (Some(e.msg), faults::Seen::default()),
    };
    let mut run = FaultRun::new(p, nodes, leader, start_s, error);
    run.saw(seen);
    if !quiet {
        println!("{}", run.began_line());
    }
    run
}

/// Heals after `run` (after asking who leads, for a partition or a cut); its end.
fn heal(
    faults: &Faults,
    mut run: FaultRun,
    clock: &Clock,
    quiet: bool,
    leader: &dyn Fn() -> Option<usize>,
) -> FaultRun {
    if run.error.is_none() && matches!(run.kind, NemesisFault::Partition | NemesisFault::Cut) {
        run.leader_at_end = leader();
    }
    if run.error.is_none() {
        match faults.seen_before_healing(run.kind, &run.nodes) {
            Ok(seen) => run.saw(seen),
            Err(e) => run.heal_error = Some(e.msg),
        }
    }
    match faults.heal() {
        Ok(did) => run.healed = did,
        Err(e) => run.heal_error = Some(e.msg),
    }
    run.end_s = clock.now_s();
    if !quiet {
        println!("{}", run.ended_line());
    }
    run
}

/// The replica a majority follows, or else the one that says it leads in the highest term.
fn leader(docker: &Docker, name: &str, replicas: usize) -> Option<usize> {
    let cs = status::containers(docker, name).ok()?;
    let rs = status::replicas(&cs);
    if let Some((n, _)) = status::agreed_leader(&cs, &rs, replicas) {
        return Some(n);
    }
    cs.iter()
        .zip(&rs)
        .filter_map(|(c, r)| r.as_ref().filter(|r| r.role == "leader").map(|r| (r.term, c.node)))
        .max()
        .map(|(_, n)| n)
}

/// Whether every replica answers and follows one leader after the healing at `healed_ns`,
/// asked until they do or [`ANSWER_WITHIN`] has passed.
fn answering(docker: &Docker, name: &str, replicas: usize, healed_ns: u64) -> report::Answered {
    let deadline = Instant::now() + ANSWER_WITHIN;
    loop {
        let cs = status::containers(docker, name).unwrap_or_default();
        let rs = status::replicas(&cs);
        let leader = status::agreed_leader(&cs, &rs, replicas).map(|(n, _)| n);
        let answering = rs.iter().flatten().count();
        let following = rs
            .iter()
            .zip(&cs)
            .filter(|(r, c)| {
                r.as_ref().is_some_and(|r| leader.is_some_and(|l| r.leader == Some(l) || c.node == l))
            })
            .count();
        let all = leader.is_some() && following == replicas;
        if all || Instant::now() >= deadline {
            return report::Answered {
                replicas,
                answering,
                leader,
                following,
                after_s: unix_ns().saturating_sub(healed_ns) as f64 / 1e9,
                all,
            };
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
