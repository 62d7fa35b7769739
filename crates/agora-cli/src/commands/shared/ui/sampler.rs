//! `--ui` on the commands that run a whole cluster in this process through
//! `agora_net::run_local_observed` (`agora run`, `agora election`, `agora market`): a sampler
//! that knows nothing of the protocol but its observation type.
//!
//! Every [`SAMPLE`] it reads the message counters each node's driver keeps (`NodeShared`: per
//! kind, and per link in `sent_to`), takes the difference with the previous sample, and
//! publishes one JSON snapshot for the page: the nodes (role, term, health, messages per
//! second, latest observation), messages per second by kind and by link, the timeline of
//! observations, and the system's own view ([`System`]). The nodes hand their observations to
//! the sampler through a bounded queue, as they make them: a node only clones the observation
//! and tries to queue it (a full queue drops it and counts it, and the page says so); the
//! sampler renders and reads them on its own task. At the end of the run the last snapshot
//! carries the checker's verdicts. The page's controls inject faults into the running nodes
//! (`steer`); each sample shows what they did: a node crashed, paused or partitioned, the links
//! cut, each fault on the timeline.

use super::steer::{self, State, Steered};
use super::{bind, serve, url, Accepts};
use crate::cli::LiveArgs;
use crate::commands::shared::tcp::{interrupted, runtime};
use crate::commands::vote::node::VoteObs as ServiceObs;
use crate::error::UserError;
use agora_core::{NodeId, Observation, RunSummary};
use agora_net::recent::Mark;
use agora_net::{NodeShared, ObsHook, ObsHooks};
use agora_protocols::election::ElectionObs;
use agora_protocols::market::MarketObs;
use agora_protocols::raft::RaftObs;
use agora_protocols::vote_count::obs::VoteObs;
use serde_json::{json, Value};
use std::any::Any;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};

/// How often the view samples the cluster.
pub const SAMPLE: Duration = Duration::from_millis(500);
/// Observations waiting for the sampler; one more is dropped (and counted).
const QUEUE: usize = 16_384;
/// Events the timeline keeps.
const TIMELINE: usize = 200;
/// An observation's text is cut at this many bytes.
const TEXT: usize = 240;
/// Links shown, the busiest first; and cut links listed.
const LINKS: usize = 40;
/// Messages each node's driver keeps of the latest it sent and received
/// (`agora_net::NetConfig::recent_messages`), for the space-time diagram.
pub const RECENT: usize = 32;
/// Messages a snapshot carries for the space-time diagram, the latest received.
pub const MESSAGES: usize = 120;

/// What a command adds to the view: the system's own, read from the observations the
/// sampler sees.
pub trait System<O>: Send + 'static {
    /// Reads one observation of `node`.
    fn see(&mut self, node: NodeId, o: &O);
    /// The view as a table: `{ "title", "columns": [..], "rows": [[..]], "note" }`.
    fn view(&self) -> Value;
    /// Node `node` was crashed from the page: what it held, it holds no more (as its role in
    /// the page's lead). The default: nothing.
    fn crashed(&mut self, _node: NodeId) {}
}

/// No view of its own: the protocol's nodes, traffic and observations only.
pub struct Plain;

impl<O> System<O> for Plain {
    fn see(&mut self, _: NodeId, _: &O) {}
    fn view(&self) -> Value {
        Value::Null
    }
}

/// The view's flags: `--ui ADDR`, `--ui-linger` and `--ui-hold`.
pub struct Flags<'a> {
    /// Where to serve the page.
    pub addr: &'a str,
    /// Keep serving after the run, until Ctrl-C.
    pub linger: bool,
    /// Keep the run going once it is quiet, until the page lets it end.
    pub hold: bool,
    /// The page's controls this run takes (of [`steer::VERBS`]).
    pub verbs: &'static [&'static str],
    /// Why the others are unavailable, said on the page (`None`: all are offered).
    pub unavailable: Option<&'static str>,
}

/// A live view of a run in this process: started before the run, finished after it.
pub struct LiveRun<O> {
    linger: bool,
    keep: fn(&O) -> bool,
    obs: mpsc::Sender<(NodeId, O)>,
    dropped: Arc<AtomicU64>,
    nodes: Option<oneshot::Sender<Source>>,
    done: Option<oneshot::Sender<Value>>,
    /// The page's controls, for the run to take.
    controls: Option<agora_net::Controls>,
    /// Ends with the last snapshot published, handing back the channel's sender: the page's
    /// streams stay open as long as it lives.
    sampler: tokio::task::JoinHandle<watch::Sender<String>>,
    /// The checker's verdicts on the run so far, shown until the run's own at its end.
    so_far: SoFar,
}

/// The checker's latest verdicts on a run that goes on (as [`verdicts`] writes them, with
/// `"so_far": true`), for a command that can judge while the nodes run (`agora cluster ui`).
pub type SoFar = Arc<Mutex<Option<Value>>>;

impl<O: Observation> LiveRun<O> {
    /// Binds the page's address (a one-line error when it cannot), prints its URL on stderr
    /// and starts serving and sampling. Only the observations `keep` accepts reach the
    /// sampler (it runs on the node: keep it a `match`). Call inside the run's runtime.
    pub async fn start(
        flags: Flags<'_>,
        nodes: usize,
        system: Box<dyn System<O>>,
        keep: fn(&O) -> bool,
    ) -> Result<LiveRun<O>, UserError> {
        let listener = bind(flags.addr).await?;
        let addr = listener.local_addr().map_err(|e| UserError(format!("--ui: {e}")))?;
        eprintln!("ui: {}", url(addr));
        let (snapshot_tx, snapshot) = watch::channel(String::new());
        let (controls, actions, steered) = steer::controls(nodes, flags.hold);
        tokio::spawn(serve(listener, snapshot, actions, Accepts { nodes, verbs: flags.verbs }));
        let (obs, obs_rx) = mpsc::channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let (nodes_tx, nodes_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        let mut view = View::new(nodes, system, dropped.clone(), snapshot_tx, steered, flags.verbs);
        view.unavailable = flags.unavailable;
        let so_far = SoFar::default();
        view.so_far = so_far.clone();
        let sampler = tokio::spawn(view.run(nodes_rx, obs_rx, done_rx));
        Ok(LiveRun {
            linger: flags.linger,
            keep,
            obs,
            dropped,
            nodes: Some(nodes_tx),
            done: Some(done_tx),
            controls: Some(controls),
            sampler,
            so_far,
        })
    }

    /// Where a command that judges while its nodes run puts the verdicts so far.
    pub fn so_far(&self) -> SoFar {
        self.so_far.clone()
    }

    /// The hook that hands the run's nodes to the sampler when they start.
    pub fn on_start(&mut self) -> impl FnOnce(Vec<Arc<NodeShared>>) {
        let tx = self.nodes.take();
        move |nodes| {
            if let Some(tx) = tx {
                let _ = tx.send(Source::Local(nodes));
            }
        }
    }

    /// For nodes in other processes: the sampler reads their counts from `counts`, which the
    /// command keeps up to date from what the nodes print.
    pub fn remote(&mut self, counts: Arc<Mutex<Vec<Option<Counts>>>>) {
        if let Some(tx) = self.nodes.take() {
            let _ = tx.send(Source::Remote(counts));
        }
    }

    /// For nodes in other processes: what hands the sampler an observation a node printed,
    /// if `keep` accepts it (a full queue drops it and counts it).
    pub fn observer(&self) -> impl Fn(NodeId, O) + Clone + Send + Sync + 'static {
        let (tx, keep, dropped) = (self.obs.clone(), self.keep, self.dropped.clone());
        move |id, o| {
            if keep(&o) && tx.try_send((id, o)).is_err() {
                dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Each node's observation hook: a clone of what `keep` accepts, queued for the sampler.
    pub fn on_obs(&self) -> ObsHooks<O> {
        let (tx, keep, dropped) = (self.obs.clone(), self.keep, self.dropped.clone());
        Box::new(move |id: NodeId| {
            let (tx, dropped) = (tx.clone(), dropped.clone());
            let hook: ObsHook<O> = Arc::new(move |_at: u64, o: &O| {
                if keep(o) && tx.try_send((id, o.clone())).is_err() {
                    dropped.fetch_add(1, Ordering::Relaxed);
                }
            });
            hook
        })
    }

    /// The page's controls, for a run that applies them itself (once; `None` after).
    pub fn take_controls(&mut self) -> Option<agora_net::Controls> {
        self.controls.take()
    }

    /// Whether `--ui-linger` asked to keep serving the page once the run has ended.
    pub fn lingers(&self) -> bool {
        self.linger
    }

    /// Publishes the last snapshot, with the checker's verdicts of `summary`; returns the
    /// snapshots' sender, which keeps the page's streams open.
    async fn finish(self, summary: &RunSummary, reproduce: &str) -> Option<watch::Sender<String>> {
        self.finish_with(verdicts(summary, reproduce)).await
    }

    /// Publishes the last snapshot with `verdicts` (as [`verdicts`] writes them); returns the
    /// snapshots' sender, which keeps the page's streams open.
    pub async fn finish_with(mut self, verdicts: Value) -> Option<watch::Sender<String>> {
        if let Some(done) = self.done.take() {
            let _ = done.send(verdicts);
        }
        (&mut self.sampler).await.ok()
    }
}

/// A run of every node in this process, with its live view if `--ui` asked for one: the
/// runtime the run, the page and the sampler share.
pub struct Watched<O> {
    rt: tokio::runtime::Runtime,
    live: Option<LiveRun<O>>,
}

impl<O: Observation> Watched<O> {
    /// The runtime, and the live view of `args` (a one-line error if its address cannot be
    /// bound) for a run of `nodes` nodes; see [`LiveRun::start`] for `system` and `keep`.
    pub fn new(
        args: &LiveArgs,
        nodes: usize,
        system: Box<dyn System<O>>,
        keep: fn(&O) -> bool,
    ) -> Result<Self, UserError> {
        let rt = runtime()?;
        let live = match &args.ui {
            Some(addr) => {
                let flags = Flags {
                    addr,
                    linger: args.ui_linger,
                    hold: args.ui_hold,
                    verbs: steer::VERBS,
                    unavailable: None,
                };
                Some(rt.block_on(LiveRun::start(flags, nodes, system, keep))?)
            }
            None => None,
        };
        Ok(Watched { rt, live })
    }

    /// The runtime, for what the command runs besides the nodes.
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.rt
    }

    /// Runs every node of `setup` in this process ([`agora_net::run_local_observed`]);
    /// `on_start` gets the nodes when they start, as the view does.
    pub fn run<S>(
        &mut self,
        setup: &Arc<S>,
        cfg: agora_net::NetConfig,
        max_time: Duration,
        on_start: impl FnOnce(Vec<Arc<NodeShared>>),
    ) -> Result<agora_net::RunOutcome<O>, UserError>
    where
        S: agora_core::Setup,
        S::Node: agora_core::Protocol<Obs = O>,
    {
        let mine = self.live.as_mut().map(LiveRun::on_start);
        let on_obs = self.live.as_ref().map(LiveRun::on_obs);
        let controls = self.live.as_mut().and_then(|l| l.controls.take());
        let mut cfg = cfg;
        if self.live.is_some() {
            cfg.recent_messages = RECENT;
        }
        let both = move |nodes: Vec<Arc<NodeShared>>| {
            if let Some(mine) = mine {
                mine(nodes.clone());
            }
            on_start(nodes);
        };
        let run = agora_net::run_local_observed(setup.clone(), cfg, max_time, both, on_obs, controls);
        self.rt.block_on(run).map_err(UserError::from_run)
    }

    /// Shows the checker's verdicts of `summary` on the page; what is left to do is to wait
    /// for Ctrl-C if `--ui-linger` asked for it ([`Linger::wait`]), once the command has
    /// printed its report.
    pub fn finish(self, summary: &RunSummary, reproduce: &str) -> Linger {
        let Watched { rt, live } = self;
        match live {
            Some(live) => {
                let linger = live.linger;
                let snapshots = rt.block_on(live.finish(summary, reproduce));
                Linger(linger.then_some((rt, snapshots)))
            }
            None => Linger(None),
        }
    }
}

/// The page of a run that has ended, still served if `--ui-linger` asked for it.
pub struct Linger(Option<(tokio::runtime::Runtime, Option<watch::Sender<String>>)>);

impl Linger {
    /// The page of a run that has ended, served on `rt` with the last of `snapshots` while
    /// it lives, if `--ui-linger` asked for it (`None`: not asked).
    pub fn new(kept: Option<(tokio::runtime::Runtime, Option<watch::Sender<String>>)>) -> Linger {
        Linger(kept)
    }

    /// Serves the page until Ctrl-C (or SIGTERM), if asked; returns at once otherwise.
    pub fn wait(self) {
        if let Some((rt, _snapshots)) = self.0 {
            eprintln!("ui: the run has ended; the page stays up until Ctrl-C");
            rt.block_on(interrupted());
        }
    }
}

/// The checker's verdicts as the page shows them: every property judged (ok or violated,
/// with the violation's node, time, detail and reproduce command) and every one not judged
/// (with why).
pub fn verdicts(s: &RunSummary, reproduce: &str) -> Value {
    let mut rows = Vec::new();
    let mut named: Vec<&str> = s.properties.iter().map(String::as_str).collect();
    for v in &s.violations {
        if !named.contains(&v.property.as_str()) {
            named.push(&v.property);
        }
    }
    for p in named {
        let broken: Vec<&agora_core::ViolationReport> =
            s.violations.iter().filter(|v| v.property == p).collect();
        rows.push(match broken.first() {
            None => json!({ "property": p, "verdict": "ok" }),
            Some(v) => json!({
                "property": p, "verdict": "violated", "node": v.node, "at_ms": v.at_ms,
                "detail": v.detail, "reproduce": v.reproduce, "count": broken.len(),
            }),
        });
    }
    for n in &s.not_judged {
        rows.push(json!({ "property": n.property, "verdict": "not judged", "detail": n.reason }));
    }
    json!({ "end": s.end, "reproduce": reproduce, "properties": rows })
}

/// Where the sampler reads the nodes' counters.
#[derive(Clone)]
pub enum Source {
    /// The nodes have not started.
    None,
    /// The nodes of this process, in id order (a restarted node's new shared state).
    Local(Vec<Arc<NodeShared>>),
    /// Node processes' latest counts, in id order, as each last printed them (`None`: not
    /// yet).
    Remote(Arc<Mutex<Vec<Option<Counts>>>>),
}

impl Source {
    fn counts(&self) -> Vec<Option<Counts>> {
        match self {
            Source::None => Vec::new(),
            Source::Local(nodes) => nodes.iter().map(|n| Some(Counts::of(n))).collect(),
            Source::Remote(counts) => counts.lock().expect("counts lock").clone(),
        }
    }
}

/// One node as the sampler last saw it.
#[derive(Default)]
struct Seen {
    role: Option<&'static str>,
    term: Option<u64>,
    /// When it took its role (the sampler's count of observations read): the latest trader wins.
    since: u64,
    latest: Option<String>,
    observed: u64,
    counted: (u64, u64),
    kinds: BTreeMap<&'static str, u64>,
    links: LinkCounts,
    /// The incarnation whose counters `counted`, `kinds` and `links` are (its shared state).
    incarnation: u64,
    /// A later incarnation than the first runs: its links' numbering no longer matches its
    /// peers' (`agora_net::recent`), so its messages are left out of the diagram.
    restarted: bool,
}

/// The sampler's state.
struct View<O> {
    started: Instant,
    last: Instant,
    seen: Vec<Seen>,
    read: u64,
    events: VecDeque<Value>,
    system: Box<dyn System<O>>,
    dropped: Arc<AtomicU64>,
    snapshot: watch::Sender<String>,
    steered: Arc<Mutex<Steered>>,
    verbs: &'static [&'static str],
    /// Why the controls the page does not offer are unavailable, if some are not.
    unavailable: Option<&'static str>,
    /// When the view started, Unix ns: the messages' times are counted from it.
    started_ns: u64,
    /// How long the sampler took to build and write the previous snapshot, µs.
    last_build_us: u64,
    /// The verdicts so far, shown while the run goes on.
    so_far: SoFar,
}

impl<O: Observation> View<O> {
    fn new(
        n: usize,
        system: Box<dyn System<O>>,
        dropped: Arc<AtomicU64>,
        snapshot: watch::Sender<String>,
        steered: Arc<Mutex<Steered>>,
        verbs: &'static [&'static str],
    ) -> Self {
        let now = Instant::now();
        let seen = (0..n).map(|_| Seen::default()).collect();
        let events = VecDeque::new();
        let started_ns = agora_net::clock::unix_ns();
        View {
            started: now,
            last: now,
            seen,
            read: 0,
            events,
            system,
            dropped,
            snapshot,
            steered,
            verbs,
            unavailable: None,
            started_ns,
            last_build_us: 0,
            so_far: SoFar::default(),
        }
    }

    /// Adds an event to the timeline, the oldest dropped beyond [`TIMELINE`].
    fn push_event(&mut self, event: Value) {
        if self.events.len() == TIMELINE {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    /// Takes the faults that took effect since the last sample onto the timeline (a crashed
    /// node's role is forgotten: it says again what it is once it runs); returns the nodes'
    /// shared state as it now is, if a fault changed it.
    fn faults(&mut self) -> Option<Vec<Arc<NodeShared>>> {
        let (events, nodes) = {
            let mut s = self.steered.lock().expect("steered lock");
            let nodes = (!s.nodes.is_empty()).then(|| s.nodes.clone());
            (std::mem::take(&mut s.events), nodes)
        };
        for e in events {
            if let (Some(i), "crash") = (e.node, e.kind) {
                if let Some(seen) = self.seen.get_mut(i) {
                    seen.role = None;
                }
                self.system.crashed(NodeId(i as u32));
            }
            let t_ms = e.at.saturating_duration_since(self.started).as_millis() as u64;
            self.push_event(json!({ "t_ms": t_ms, "kind": e.kind, "node": e.node, "text": e.text }));
        }
        nodes
    }

    async fn run(
        mut self,
        nodes: oneshot::Receiver<Source>,
        mut obs: mpsc::Receiver<(NodeId, O)>,
        mut done: oneshot::Receiver<Value>,
    ) -> watch::Sender<String> {
        self.publish(&Source::None, None, None);
        let mut nodes = tokio::select! {
            n = nodes => n.unwrap_or(Source::None),
            v = &mut done => {
                self.publish(&Source::None, None, v.ok());
                return self.snapshot;
            }
        };
        let mut tick = tokio::time::interval(SAMPLE);
        loop {
            let verdicts = tokio::select! {
                _ = tick.tick() => None,
                v = &mut done => Some(v.ok()),
            };
            self.drain(&mut obs);
            if let Some(now) = self.faults() {
                nodes = Source::Local(now);
            }
            match verdicts {
                None => self.publish(&nodes, Some(false), None),
                Some(v) => {
                    self.publish(&nodes, Some(true), v);
                    return self.snapshot;
                }
            }
        }
    }

    /// Reads the observations queued since the last sample: roles, the system's view, and
    /// the timeline (rendered only for the last [`TIMELINE`]).
    fn drain(&mut self, obs: &mut mpsc::Receiver<(NodeId, O)>) {
        let mut batch = Vec::new();
        while let Ok(o) = obs.try_recv() {
            batch.push(o);
        }
        let t_ms = self.started.elapsed().as_millis() as u64;
        let render_from = batch.len().saturating_sub(TIMELINE);
        // Each node's last observation of the batch: its latest, shown on its row.
        let mut last = vec![usize::MAX; self.seen.len()];
        for (k, (id, _)) in batch.iter().enumerate() {
            if let Some(l) = last.get_mut(id.index()) {
                *l = k;
            }
        }
        for (k, (id, o)) in batch.iter().enumerate() {
            self.read += 1;
            self.system.see(*id, o);
            let Some(seen) = self.seen.get_mut(id.index()) else { continue };
            seen.observed += 1;
            let role = role_of(o, *id);
            if let Some((r, term)) = role {
                seen.role = Some(r);
                seen.term = term.or(seen.term);
                seen.since = self.read;
            }
            if k < render_from && last[id.index()] != k {
                continue;
            }
            let text = capped(o);
            seen.latest = Some(text.clone());
            if k >= render_from {
                let kind = if role.is_some() { "role" } else { "obs" };
                let text = format!("node {id}: {text}");
                self.push_event(json!({ "t_ms": t_ms, "kind": kind, "node": id.index(), "text": text }));
            }
        }
    }

    /// Samples the nodes' counters and publishes a snapshot (`ended`: `None` before the nodes
    /// start, then whether the run has ended).
    fn publish(&mut self, nodes: &Source, ended: Option<bool>, verdicts: Option<Value>) {
        let verdicts = verdicts.or_else(|| self.so_far.lock().expect("so far lock").clone());
        let counts = nodes.counts();
        let now = Instant::now();
        let build = now;
        let dt = now.duration_since(self.last).as_secs_f64().max(1e-3);
        self.last = now;
        let rate = |now: u64, then: u64| (now.saturating_sub(then) as f64 / dt).round();
        let mut rows = Vec::new();
        let mut kinds: BTreeMap<&'static str, f64> = BTreeMap::new();
        let (state, cut, held) = {
            let s = self.steered.lock().expect("steered lock");
            let state: Vec<(State, bool)> = (0..counts.len())
                .map(|i| (s.state.get(i).copied().unwrap_or(State::Up), s.partitioned(i)))
                .collect();
            let cut: Vec<Value> = s.cut.iter().take(LINKS).map(|(a, b)| json!([a, b])).collect();
            (state, (cut, s.cut.len()), s.held)
        };
        for (i, (c, seen)) in counts.iter().zip(&mut self.seen).enumerate() {
            if let Some(c) = c.as_ref().filter(|c| c.incarnation != seen.incarnation) {
                // A restarted node's counters start from zero.
                seen.restarted |= seen.incarnation != 0;
                seen.incarnation = c.incarnation;
                seen.counted = (0, 0);
                seen.kinds.clear();
                seen.links.restarted();
            }
            seen.links.read(c.as_ref());
            let (fault, partitioned) = state[i];
            let Some(c) = c else {
                // A node process that has not said its counts yet.
                let health = if fault == State::Crashed { "crashed" } else { "starting" };
                rows.push(json!({ "id": i, "role": health, "health": health, "observed": seen.observed }));
                continue;
            };
            let health = match fault {
                _ if c.failed => "failed",
                State::Crashed => "crashed",
                State::Paused => "paused",
                State::Up if ended == Some(true) => "ended",
                State::Up => "running",
            };
            let role = match fault {
                State::Crashed => "crashed",
                State::Paused => "paused",
                State::Up if partitioned => "partitioned",
                State::Up => seen.role.unwrap_or("none"),
            };
            rows.push(json!({
                "id": i,
                "role": role,
                "said": seen.role,
                "term": seen.term,
                "health": health,
                "sent_per_s": rate(c.sent, seen.counted.0),
                "delivered_per_s": rate(c.delivered, seen.counted.1),
                "observed": seen.observed,
                "latest": seen.latest,
            }));
            seen.counted = (c.sent, c.delivered);
            for &(k, sent) in &c.kinds {
                let before = seen.kinds.insert(k, sent).unwrap_or(0);
                *kinds.entry(k).or_default() += rate(sent, before);
            }
        }
        let all: Vec<&LinkCounts> = self.seen.iter().map(|s| &s.links).collect();
        let (shown_links, links_active) = busiest(links(&all, dt));
        let kinds: Vec<Value> =
            kinds.into_iter().map(|(k, per_s)| json!({ "kind": k, "per_s": per_s })).collect();
        let marks: Vec<(Vec<Mark>, Vec<Mark>)> =
            counts.into_iter().map(|c| c.map(|c| c.marks).unwrap_or_default()).collect();
        let restarted = |i: usize| self.seen.get(i).is_some_and(|s| s.restarted);
        let messages = paired(&marks, restarted, self.started_ns);
        let snapshot = json!({
            "t_ms": self.started.elapsed().as_millis() as u64,
            "sample_ms": SAMPLE.as_millis() as u64,
            "title": "Nodes",
            "noun": "node",
            "controls": true,
            "verbs": self.verbs,
            "unavailable": self.unavailable,
            "cuts": cut.0,
            "cuts_total": cut.1,
            "held": held && ended != Some(true),
            "started": ended.is_some(),
            "ended": ended == Some(true),
            "lead": self.lead(),
            "replicas": rows,
            "kinds": kinds,
            "links": shown_links,
            "links_active": links_active,
            "messages": messages,
            "events": self.events,
            "obs_dropped": self.dropped.load(Ordering::Relaxed),
            "system": self.system.view(),
            "verdicts": verdicts,
            "build_us": self.last_build_us,
        });
        self.snapshot.send_replace(snapshot.to_string());
        self.last_build_us = build.elapsed().as_micros() as u64;
    }

    /// The trader who took the post last, if any; else the leader of the highest term (the
    /// latest to say so, if two do).
    fn lead(&self) -> Value {
        let holding = |role: &str| {
            self.seen
                .iter()
                .enumerate()
                .filter(move |(_, s)| s.role == Some(role))
                .max_by_key(|(_, s)| (s.term.unwrap_or(0), s.since))
        };
        if let Some((i, s)) = holding("trader") {
            return json!({ "label": "Trader", "id": i, "term": s.term });
        }
        match holding("leader") {
            Some((i, s)) => json!({ "label": "Leader", "id": i, "term": s.term }),
            None => json!({ "label": "Leader", "id": null, "term": null }),
        }
    }
}

/// A link with traffic, as one sample saw it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Link {
    pub from: usize,
    pub to: usize,
    /// Messages the sender sent on it per second, in the last sample.
    pub per_s: f64,
    /// Messages it sent on it so far (a cut link's included: they were lost on it).
    pub total: u64,
    /// Messages the receiver handled from it per second, in the last sample.
    pub received_per_s: f64,
    /// Messages it handled from it so far: `total - received` were lost or are on their way.
    pub received: u64,
}

/// One node's counters as a sample reads them: from its driver's shared state in this process
/// ([`Counts::of`]), or from what a node process printed (`agora node --sample-ms`).
#[derive(Clone, Debug, Default)]
pub struct Counts {
    /// Tells the node's incarnations apart (a restarted node counts from zero): its shared
    /// state's address in this process, its process id elsewhere; never 0.
    pub incarnation: u64,
    /// It stopped on a storage failure.
    pub failed: bool,
    /// Messages sent and delivered.
    pub sent: u64,
    pub delivered: u64,
    /// Messages sent, per kind.
    pub kinds: Vec<(&'static str, u64)>,
    /// Messages sent to each node, by id (`NodeShared::sent_to`).
    pub sent_to: Vec<u64>,
    /// Messages handled from each node, by id (`NodeShared::received_from`).
    pub received_from: Vec<u64>,
    /// The latest messages sent and received (`agora_net::recent`), if it keeps them.
    pub marks: (Vec<Mark>, Vec<Mark>),
}

impl Counts {
    /// What the driver of a node of this process counted so far.
    pub fn of(node: &Arc<NodeShared>) -> Counts {
        let (sent, delivered, kinds) = {
            let live = node.live.lock().expect("metrics lock");
            let kinds = live.0.by_kind().iter().map(|(k, c)| (*k, c.sent)).collect();
            (live.1.sent, live.1.delivered, kinds)
        };
        let load = |v: &[std::sync::atomic::AtomicU64]| v.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        Counts {
            incarnation: Arc::as_ptr(node) as u64,
            failed: node.failed.load(Ordering::Relaxed),
            sent,
            delivered,
            kinds,
            sent_to: load(&node.sent_to),
            received_from: load(&node.received_from),
            marks: node.recent.as_ref().map(|r| r.lock().expect("recent lock").marks()).unwrap_or_default(),
        }
    }
}

impl Counts {
    /// The counts as one JSON object (what `agora node --sample-ms` prints); the incarnation
    /// is not in it (the reader knows the process).
    pub fn to_json(&self) -> Value {
        let marks = |m: &[Mark]| -> Vec<Value> {
            m.iter().map(|m| json!([m.peer, m.kind, m.seq, m.at_ns])).collect()
        };
        json!({
            "failed": self.failed,
            "sent": self.sent,
            "delivered": self.delivered,
            "kinds": self.kinds,
            "sent_to": self.sent_to,
            "received_from": self.received_from,
            "marks_sent": marks(&self.marks.0),
            "marks_received": marks(&self.marks.1),
        })
    }

    /// Reads what [`Counts::to_json`] wrote, printed by node process `incarnation` of a
    /// cluster of `nodes` nodes; `None` if it is not that (a line cut short, another
    /// program's): lists longer than the cluster, or than the marks a node keeps, are refused.
    pub fn from_json(v: &Value, incarnation: u64, nodes: usize) -> Option<Counts> {
        let u64s = |v: &Value| -> Option<Vec<u64>> {
            let a = v.as_array().filter(|a| a.len() <= nodes)?;
            a.iter().map(Value::as_u64).collect()
        };
        let marks = |v: &Value| -> Option<Vec<Mark>> {
            let a = v.as_array().filter(|a| a.len() <= RECENT)?;
            a.iter()
                .map(|m| {
                    let peer = m.get(0)?.as_u64().filter(|p| (*p as usize) < nodes)? as u32;
                    let kind = kind_name(m.get(1)?.as_str()?);
                    Some(Mark { peer, kind, seq: m.get(2)?.as_u64()?, at_ns: m.get(3)?.as_u64()? })
                })
                .collect()
        };
        let kinds = v.get("kinds")?.as_array().filter(|a| a.len() <= KINDS)?;
        let kinds = kinds
            .iter()
            .map(|k| Some((kind_name(k.get(0)?.as_str()?), k.get(1)?.as_u64()?)))
            .collect::<Option<Vec<_>>>()?;
        Some(Counts {
            incarnation,
            failed: v.get("failed")?.as_bool()?,
            sent: v.get("sent")?.as_u64()?,
            delivered: v.get("delivered")?.as_u64()?,
            kinds,
            sent_to: u64s(v.get("sent_to")?)?,
            received_from: u64s(v.get("received_from")?)?,
            marks: (marks(v.get("marks_sent")?)?, marks(v.get("marks_received")?)?),
        })
    }
}

/// Message kinds a node process may name; the sampler keys them by `&'static str`.
const KINDS: usize = 64;
/// A kind's name is cut at this many bytes.
const KIND_BYTES: usize = 48;

/// A message kind read from a node process, as the `&'static str` the sampler keys by: each
/// distinct name is kept once for the life of the process, at most [`KINDS`] of them (more are
/// all `other`), each at most [`KIND_BYTES`] long — a bounded cost, whatever the nodes print.
fn kind_name(s: &str) -> &'static str {
    static NAMES: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut end = s.len().min(KIND_BYTES);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let s = &s[..end];
    let mut names = NAMES.lock().expect("kind names lock");
    if let Some(n) = names.iter().find(|n| **n == s) {
        return n;
    }
    if names.len() == KINDS {
        return "other";
    }
    let name: &'static str = Box::leak(s.to_owned().into_boxed_str());
    names.push(name);
    name
}

/// One node's counts per peer: this incarnation's now and at the previous read, and what its
/// earlier incarnations counted (a restarted node counts from zero).
#[derive(Default)]
struct Tally {
    now: Vec<u64>,
    then: Vec<u64>,
    before: Vec<u64>,
}

impl Tally {
    fn read(&mut self, counts: Option<&[u64]>) {
        let n = counts.map_or(self.now.len(), <[u64]>::len).max(self.now.len());
        for v in [&mut self.now, &mut self.then, &mut self.before] {
            v.resize(n, 0);
        }
        self.then.copy_from_slice(&self.now);
        if let Some(c) = counts {
            self.now[..c.len()].copy_from_slice(c);
        }
    }

    fn restarted(&mut self) {
        for (before, now) in self.before.iter_mut().zip(&mut self.now) {
            *before += std::mem::take(now);
        }
        self.then.iter_mut().for_each(|t| *t = 0);
    }

    fn total(&self, peer: usize) -> u64 {
        self.now.get(peer).copied().unwrap_or(0) + self.before.get(peer).copied().unwrap_or(0)
    }

    fn delta(&self, peer: usize) -> u64 {
        self.now.get(peer).copied().unwrap_or(0).saturating_sub(self.then.get(peer).copied().unwrap_or(0))
    }
}

/// What a node has sent to each node and handled from each, as the sampler last read it, with
/// what its earlier incarnations did.
#[derive(Default)]
pub struct LinkCounts {
    sent: Tally,
    received: Tally,
}

impl LinkCounts {
    /// The node runs a new incarnation: its counters start from zero, what the earlier ones
    /// counted stays in the totals.
    pub fn restarted(&mut self) {
        self.sent.restarted();
        self.received.restarted();
    }

    /// Reads the node's counters (`None`: a node not running, whose counts stand still).
    pub fn read(&mut self, counts: Option<&Counts>) {
        self.sent.read(counts.map(|c| &c.sent_to[..]));
        self.received.read(counts.map(|c| &c.received_from[..]));
    }
}

/// Every link with traffic so far between the nodes whose counts are `nodes` (in id order),
/// read `dt` seconds after the previous read: what its sender sent on it and what its
/// receiver handled from it.
pub fn links(nodes: &[&LinkCounts], dt: f64) -> Vec<Link> {
    let rate = |n: u64| (n as f64 / dt).round();
    let mut out = Vec::new();
    for (from, counts) in nodes.iter().enumerate() {
        for to in 0..counts.sent.now.len() {
            let total = counts.sent.total(to);
            if total == 0 {
                continue;
            }
            let (received, got) =
                nodes.get(to).map_or((0, 0), |r| (r.received.total(from), r.received.delta(from)));
            out.push(Link {
                from,
                to,
                per_s: rate(counts.sent.delta(to)),
                total,
                received_per_s: rate(got),
                received,
            });
        }
    }
    out
}

/// The links a snapshot shows, the busiest now first, then the busiest so far: at most
/// [`LINKS`], and how many had traffic.
pub fn busiest(mut links: Vec<Link>) -> (Vec<Value>, usize) {
    links.sort_by(|a, b| {
        b.per_s.total_cmp(&a.per_s).then(b.total.cmp(&a.total)).then((a.from, a.to).cmp(&(b.from, b.to)))
    });
    let shown = links
        .iter()
        .take(LINKS)
        .map(|l| {
            json!({
                "from": l.from, "to": l.to, "per_s": l.per_s, "total": l.total,
                "received_per_s": l.received_per_s, "received": l.received,
            })
        })
        .collect();
    (shown, links.len())
}

/// The latest messages, for the space-time diagram: each node's latest receipts paired with
/// its peers' latest sends by their number on the link (`agora_net::recent`), at most
/// [`MESSAGES`], the latest received last; times in ms since `since_ns` (Unix ns). `nodes` in
/// id order (`None`: a node not running); a pair whose kinds differ, or whose receipt comes
/// before its send, is no message and is left out, as are the links of the nodes `skip`
/// names (restarted: they number their links from 1 again while their peers go on).
pub fn latest_messages<'a>(
    nodes: impl Iterator<Item = Option<&'a NodeShared>>,
    skip: impl Fn(usize) -> bool,
    since_ns: u64,
) -> Vec<Value> {
    let marks: Vec<(Vec<Mark>, Vec<Mark>)> = nodes
        .map(|n| {
            n.and_then(|n| n.recent.as_ref())
                .map(|r| r.lock().expect("recent lock").marks())
                .unwrap_or_default()
        })
        .collect();
    paired(&marks, skip, since_ns)
}

/// [`latest_messages`] from the nodes' marks, (sent, received) in id order.
pub fn paired(marks: &[(Vec<Mark>, Vec<Mark>)], skip: impl Fn(usize) -> bool, since_ns: u64) -> Vec<Value> {
    let mut sends: HashMap<(usize, usize, u64), Mark> = HashMap::new();
    for (from, (sent, _)) in marks.iter().enumerate() {
        for m in sent {
            sends.insert((from, m.peer as usize, m.seq), *m);
        }
    }
    let mut pairs = Vec::new();
    for (to, (_, received)) in marks.iter().enumerate() {
        for r in received {
            let from = r.peer as usize;
            if skip(from) || skip(to) {
                continue;
            }
            let Some(s) = sends.get(&(from, to, r.seq)) else { continue };
            if s.kind == r.kind && s.at_ns <= r.at_ns {
                pairs.push((from, to, s.kind, s.at_ns, r.at_ns));
            }
        }
    }
    pairs.sort_by_key(|p| (p.4, p.3, p.0, p.1));
    let ms = |ns: u64| (ns.saturating_sub(since_ns) as f64 / 1e4).round() / 100.0;
    let latest = &pairs[pairs.len().saturating_sub(MESSAGES)..];
    latest
        .iter()
        .map(|&(from, to, kind, sent, received)| {
            json!({ "from": from, "to": to, "kind": kind, "sent_ms": ms(sent), "received_ms": ms(received) })
        })
        .collect()
}

/// The role an observation gives its node, where the protocol's observations tell one:
/// Raft's and bully's leaders, the market's trader.
fn role_of<O: Any>(o: &O, me: NodeId) -> Option<(&'static str, Option<u64>)> {
    let o = o as &dyn Any;
    if let Some(o) = o.downcast_ref::<RaftObs>() {
        return raft_role(o);
    }
    if let Some(o) = o.downcast_ref::<ElectionObs>() {
        return election_role(o, me);
    }
    if let Some(VoteObs::Raft(o)) = o.downcast_ref::<VoteObs>() {
        return raft_role(o);
    }
    if let Some(ServiceObs::Raft(o)) = o.downcast_ref::<ServiceObs>() {
        return raft_role(o);
    }
    if let Some(o) = o.downcast_ref::<MarketObs>() {
        return match o {
            MarketObs::Announced { .. } => Some(("trader", None)),
            MarketObs::Resigned | MarketObs::Recovered => Some(("follower", None)),
            MarketObs::Sick => Some(("sick", None)),
            MarketObs::Left => Some(("left", None)),
            _ => None,
        };
    }
    None
}

fn raft_role(o: &RaftObs) -> Option<(&'static str, Option<u64>)> {
    match o {
        RaftObs::Leader { term } => Some(("leader", Some(*term))),
        RaftObs::SteppedDown { term } => Some(("follower", Some(*term))),
        RaftObs::Voted { term, .. } => Some(("follower", Some(*term))),
        _ => None,
    }
}

fn election_role(o: &ElectionObs, me: NodeId) -> Option<(&'static str, Option<u64>)> {
    match o {
        ElectionObs::Started { term } => Some(("candidate", Some(*term))),
        ElectionObs::Leader { leader, term } if *leader == me => Some(("leader", Some(*term))),
        ElectionObs::Leader { term, .. } => Some(("follower", Some(*term))),
    }
}

/// An observation's `Debug` text, cut at [`TEXT`] bytes: formatting stops there, so a huge
/// observation costs no more than a small one.
fn capped<O: std::fmt::Debug>(o: &O) -> String {
    struct Cap(String);
    impl std::fmt::Write for Cap {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            let room = TEXT.saturating_sub(self.0.len());
            if s.len() <= room {
                self.0.push_str(s);
                return Ok(());
            }
            let mut end = room;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            self.0.push_str(&s[..end]);
            self.0.push('…');
            Err(std::fmt::Error)
        }
    }
    let mut c = Cap(String::new());
    let _ = write!(c, "{o:?}");
    c.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(incarnation: u64, sent_to: Vec<u64>, received_from: Vec<u64>) -> Counts {
        Counts { incarnation, sent_to, received_from, ..Counts::default() }
    }

    #[test]
    fn links_count_what_was_sent_and_received_across_restarts() {
        let mut nodes = [LinkCounts::default(), LinkCounts::default()];
        nodes[0].read(Some(&counts(1, vec![0, 10], vec![0, 4])));
        nodes[1].read(Some(&counts(2, vec![5, 0], vec![7, 0])));
        let all: Vec<&LinkCounts> = nodes.iter().collect();
        let l = links(&all, 1.0);
        let one = |from: usize| *l.iter().find(|l| l.from == from).expect("a link");
        assert_eq!((one(0).total, one(0).received, one(0).per_s, one(0).received_per_s), (10, 7, 10.0, 7.0));
        assert_eq!((one(1).total, one(1).received), (5, 4));
        // Node 1 restarts: it counts from zero, the totals keep what it counted before; node 0
        // goes on. Of the 6 node 0 sent since, node 1's new incarnation got 2.
        nodes[1].restarted();
        nodes[1].read(Some(&counts(3, vec![1, 0], vec![2, 0])));
        nodes[0].read(Some(&counts(1, vec![0, 16], vec![0, 5])));
        let all: Vec<&LinkCounts> = nodes.iter().collect();
        let l = links(&all, 2.0);
        let one = |from: usize| *l.iter().find(|l| l.from == from).expect("a link");
        assert_eq!((one(0).total, one(0).received, one(0).per_s, one(0).received_per_s), (16, 9, 3.0, 1.0));
        assert_eq!((one(1).total, one(1).received, one(1).per_s), (6, 5, 1.0));
        // A node not read (crashed): its counts stand still, its rates are zero.
        nodes[0].read(None);
        nodes[1].read(Some(&counts(3, vec![1, 0], vec![2, 0])));
        let all: Vec<&LinkCounts> = nodes.iter().collect();
        let l = links(&all, 1.0);
        let one = |from: usize| *l.iter().find(|l| l.from == from).expect("a link");
        assert_eq!((one(0).total, one(0).per_s, one(1).received_per_s), (16, 0.0, 0.0));
    }

    #[test]
    fn counts_printed_by_a_node_are_read_back_and_nonsense_refused() {
        let mut c = counts(9, vec![1, 2, 3], vec![4, 5, 6]);
        c.sent = 6;
        c.delivered = 15;
        c.kinds = vec![("APPEND", 6)];
        c.marks = (vec![Mark { peer: 2, kind: "APPEND", seq: 3, at_ns: 77 }], Vec::new());
        let back = Counts::from_json(&c.to_json(), 9, 3).expect("read back");
        assert_eq!(back.to_json(), c.to_json());
        assert_eq!((back.incarnation, back.marks.0[0]), (9, c.marks.0[0]));
        // A cluster of two cannot have a link to node 2, nor counts for three nodes.
        assert!(Counts::from_json(&c.to_json(), 9, 2).is_none());
        let mut bad = c.to_json();
        bad["sent"] = json!("many");
        assert!(Counts::from_json(&bad, 9, 3).is_none());
        assert!(Counts::from_json(&json!({}), 9, 3).is_none());
    }

    #[test]
    fn long_observations_are_cut() {
        let long = vec![7u64; 10_000];
        let t = capped(&long);
        assert!(t.len() <= TEXT + '…'.len_utf8(), "{}", t.len());
        assert!(t.ends_with('…'));
        assert_eq!(capped(&5u8), "5");
    }

    #[test]
    fn roles_from_raft_bully_and_market() {
        let me = NodeId(2);
        assert_eq!(role_of(&RaftObs::Leader { term: 4 }, me), Some(("leader", Some(4))));
        assert_eq!(
            role_of(&ElectionObs::Leader { leader: NodeId(3), term: 9 }, me),
            Some(("follower", Some(9)))
        );
        assert_eq!(role_of(&ElectionObs::Leader { leader: me, term: 9 }, me), Some(("leader", Some(9))));
        assert_eq!(
            role_of(&VoteObs::Raft(RaftObs::SteppedDown { term: 5 }), me),
            Some(("follower", Some(5)))
        );
        assert_eq!(role_of(&MarketObs::Announced { line: String::new() }, me), Some(("trader", None)));
        assert_eq!(role_of(&7u32, me), None);
    }
}
