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
}

/// A live view of a run in this process: started before the run, finished after it.
pub struct LiveRun<O> {
    linger: bool,
    keep: fn(&O) -> bool,
    obs: mpsc::Sender<(NodeId, O)>,
    dropped: Arc<AtomicU64>,
    nodes: Option<oneshot::Sender<Vec<Arc<NodeShared>>>>,
    done: Option<oneshot::Sender<Value>>,
    /// The page's controls, for the run to take.
    controls: Option<agora_net::Controls>,
    /// Ends with the last snapshot published, handing back the channel's sender: the page's
    /// streams stay open as long as it lives.
    sampler: tokio::task::JoinHandle<watch::Sender<String>>,
}

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
        let view = View::new(nodes, system, dropped.clone(), snapshot_tx, steered, flags.verbs);
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
        })
    }

    /// The hook that hands the run's nodes to the sampler when they start.
    pub fn on_start(&mut self) -> impl FnOnce(Vec<Arc<NodeShared>>) {
        let tx = self.nodes.take();
        move |nodes| {
            if let Some(tx) = tx {
                let _ = tx.send(nodes);
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
                let flags = Flags { addr, linger: args.ui_linger, hold: args.ui_hold, verbs: steer::VERBS };
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
    incarnation: usize,
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
    /// When the view started, Unix ns: the messages' times are counted from it.
    started_ns: u64,
    /// How long the sampler took to build and write the previous snapshot, µs.
    last_build_us: u64,
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
            started_ns,
            last_build_us: 0,
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
            }
            let t_ms = e.at.saturating_duration_since(self.started).as_millis() as u64;
            self.push_event(json!({ "t_ms": t_ms, "kind": e.kind, "node": e.node, "text": e.text }));
        }
        nodes
    }

    async fn run(
        mut self,
        nodes: oneshot::Receiver<Vec<Arc<NodeShared>>>,
        mut obs: mpsc::Receiver<(NodeId, O)>,
        mut done: oneshot::Receiver<Value>,
    ) -> watch::Sender<String> {
        self.publish(&[], None, None);
        let nodes = tokio::select! {
            n = nodes => n.unwrap_or_default(),
            v = &mut done => {
                self.publish(&[], None, v.ok());
                return self.snapshot;
            }
        };
        let mut nodes = nodes;
        let mut tick = tokio::time::interval(SAMPLE);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    self.drain(&mut obs);
                    if let Some(now) = self.faults() {
                        nodes = now;
                    }
                    self.publish(&nodes, Some(false), None);
                }
                v = &mut done => {
                    self.drain(&mut obs);
                    if let Some(now) = self.faults() {
                        nodes = now;
                    }
                    self.publish(&nodes, Some(true), v.ok());
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
    fn publish(&mut self, nodes: &[Arc<NodeShared>], ended: Option<bool>, verdicts: Option<Value>) {
        let now = Instant::now();
        let build = now;
        let dt = now.duration_since(self.last).as_secs_f64().max(1e-3);
        self.last = now;
        let rate = |now: u64, then: u64| (now.saturating_sub(then) as f64 / dt).round();
        let mut rows = Vec::new();
        let mut kinds: BTreeMap<&'static str, f64> = BTreeMap::new();
        let mut links = Vec::new();
        let (state, cut, held) = {
            let s = self.steered.lock().expect("steered lock");
            let state: Vec<(State, bool)> = (0..nodes.len())
                .map(|i| (s.state.get(i).copied().unwrap_or(State::Up), s.partitioned(i)))
                .collect();
            let cut: Vec<Value> = s.cut.iter().take(LINKS).map(|(a, b)| json!([a, b])).collect();
            (state, (cut, s.cut.len()), s.held)
        };
        for (i, (node, seen)) in nodes.iter().zip(&mut self.seen).enumerate() {
            let incarnation = Arc::as_ptr(node) as usize;
            if seen.incarnation != incarnation {
                // A restarted node's counters start from zero.
                seen.restarted |= seen.incarnation != 0;
                seen.incarnation = incarnation;
                seen.counted = (0, 0);
                seen.kinds.clear();
                seen.links.restarted();
            }
            let (counted, by_kind) = {
                let live = node.live.lock().expect("metrics lock");
                let by_kind: Vec<(&'static str, u64)> =
                    live.0.by_kind().iter().map(|(k, c)| (*k, c.sent)).collect();
                ((live.1.sent, live.1.delivered), by_kind)
            };
            let (fault, partitioned) = state[i];
            let health = match fault {
                _ if node.failed.load(Ordering::Relaxed) => "failed",
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
                "sent_per_s": rate(counted.0, seen.counted.0),
                "delivered_per_s": rate(counted.1, seen.counted.1),
                "observed": seen.observed,
                "latest": seen.latest,
            }));
            seen.counted = counted;
            for (k, sent) in by_kind {
                let before = seen.kinds.insert(k, sent).unwrap_or(0);
                *kinds.entry(k).or_default() += rate(sent, before);
            }
            seen.links.read(i, node, dt, &mut links);
        }
        let (shown_links, links_active) = busiest(links);
        let kinds: Vec<Value> =
            kinds.into_iter().map(|(k, per_s)| json!({ "kind": k, "per_s": per_s })).collect();
        let messages = self.messages(nodes);
        let snapshot = json!({
            "t_ms": self.started.elapsed().as_millis() as u64,
            "sample_ms": SAMPLE.as_millis() as u64,
            "title": "Nodes",
            "noun": "node",
            "controls": true,
            "verbs": self.verbs,
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

    /// The latest messages, for the space-time diagram ([`latest_messages`]), the links of a
    /// restarted node left out.
    fn messages(&self, nodes: &[Arc<NodeShared>]) -> Vec<Value> {
        let restarted = |i: usize| self.seen.get(i).is_some_and(|s| s.restarted);
        latest_messages(nodes.iter().map(|n| Some(&**n)), restarted, self.started_ns)
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

/// A link with traffic: (messages per second in the last sample, total so far, from, to).
pub type Link = (f64, u64, usize, usize);

/// What a node has queued to each other node (`NodeShared::sent_to`), as the sampler last read
/// it, and what its earlier incarnations sent (a restarted node counts from zero).
#[derive(Default)]
pub struct LinkCounts {
    now: Vec<u64>,
    before: Vec<u64>,
}

impl LinkCounts {
    /// The node runs a new incarnation: its counters start from zero, what the earlier ones
    /// sent stays in the totals.
    pub fn restarted(&mut self) {
        self.before.resize(self.now.len(), 0);
        for (before, now) in self.before.iter_mut().zip(&mut self.now) {
            *before += std::mem::take(now);
        }
    }

    /// Reads the counters of node `from`, `dt` seconds after the last read: each link with
    /// traffic so far goes to `out`.
    pub fn read(&mut self, from: usize, node: &NodeShared, dt: f64, out: &mut Vec<Link>) {
        self.now.resize(node.sent_to.len(), 0);
        self.before.resize(node.sent_to.len(), 0);
        for (to, c) in node.sent_to.iter().enumerate() {
            let sent = c.load(Ordering::Relaxed);
            let per_s = (sent.saturating_sub(self.now[to]) as f64 / dt).round();
            self.now[to] = sent;
            let total = sent + self.before[to];
            if total > 0 {
                out.push((per_s, total, from, to));
            }
        }
    }
}

/// The links a snapshot shows, the busiest now first, then the busiest so far: at most
/// [`LINKS`], and how many had traffic.
pub fn busiest(mut links: Vec<Link>) -> (Vec<Value>, usize) {
    links.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)).then((a.2, a.3).cmp(&(b.2, b.3))));
    let shown = links
        .iter()
        .take(LINKS)
        .map(|(per_s, total, from, to)| json!({ "from": from, "to": to, "per_s": per_s, "total": total }))
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
