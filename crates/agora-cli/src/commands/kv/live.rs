//! `agora kv --ui`: what the live view shows of the replicas of this process, sampled.
//!
//! Every [`SAMPLE`] the command asks each running replica for its status (a local call, run
//! as a step of the replica like a RESP client's command), reads the message counters its
//! driver keeps, and publishes one JSON snapshot: the replicas (role, term, leader, commit
//! and applied index, keys, health, messages per second sent and delivered), messages per
//! second by kind, the latest messages (paired from each replica's sample of what it sent and
//! received, as for the runs of `shared::ui::sampler`), the links cut, and the latest events
//! of the timeline. The page gets at most one snapshot per sample, however busy the cluster.

use super::embedded::Running;
use super::node::Status;
use crate::commands::shared::ui::sampler::{busiest, latest_messages, links, Counts, LinkCounts};
use crate::commands::shared::ui::steer::{describe, Switches};
use agora_core::NodeId;
use agora_net::Happened;
use agora_protocols::raft::{RaftObs, Role};
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

/// How often the view samples the cluster.
pub const SAMPLE: Duration = Duration::from_millis(500);
/// A replica that does not answer its status within this time is shown as not answering.
const STATUS_WAIT: Duration = Duration::from_millis(300);
/// Events the timeline keeps.
const TIMELINE: usize = 200;
/// The page's controls of `agora kv`: replicas crashed and restarted by the command
/// (`embedded.rs`), paused and cut off by their drivers' switches (`steer::Switches`).
pub const VERBS: &[&str] = &["crash", "restart", "pause", "resume", "cut", "partition", "heal"];
/// Cut links listed, at most.
const CUTS: usize = 40;

/// One replica's row, as the view last saw it.
#[derive(Default)]
struct Seen {
    /// Message counters at the last sample: (sent, delivered), and sent per kind.
    counted: (u64, u64),
    kinds: BTreeMap<&'static str, u64>,
    /// Messages sent and handled on each link, this incarnation's and the earlier ones'.
    links: LinkCounts,
}

/// The sampler: counters seen last, the timeline, the channel the page reads.
pub struct Live {
    started: Instant,
    last: Instant,
    seen: Vec<Seen>,
    resp_addrs: Vec<SocketAddr>,
    events: VecDeque<Value>,
    snapshot: watch::Sender<String>,
    /// When the view started, Unix ns: the messages' times are counted from it.
    started_ns: u64,
    /// Replicas restarted once at least: their links' numbering no longer matches their
    /// peers' (`agora_net::recent`), so their messages are left out of the diagram.
    restarted: Vec<bool>,
}

impl Live {
    /// A view of the replicas at `resp_addrs`, published on `snapshot`.
    pub fn new(resp_addrs: Vec<SocketAddr>, snapshot: watch::Sender<String>) -> Live {
        let now = Instant::now();
        let seen = resp_addrs.iter().map(|_| Seen::default()).collect();
        let restarted = vec![false; resp_addrs.len()];
        let started_ns = agora_net::clock::unix_ns();
        Live {
            started: now,
            last: now,
            seen,
            resp_addrs,
            events: VecDeque::new(),
            snapshot,
            started_ns,
            restarted,
        }
    }

    /// Adds an event to the timeline (`kind`: leader, crash, restart, failure, action).
    pub fn event(&mut self, kind: &str, node: Option<usize>, text: String) {
        if self.events.len() == TIMELINE {
            self.events.pop_front();
        }
        let t_ms = self.started.elapsed().as_millis() as u64;
        self.events.push_back(json!({ "t_ms": t_ms, "kind": kind, "node": node, "text": text }));
    }

    /// An observation a replica made that the timeline shows.
    pub fn observed(&mut self, id: NodeId, o: &RaftObs) {
        match o {
            RaftObs::Leader { term } => {
                self.event("leader", Some(id.index()), format!("replica {id} became leader in term {term}"))
            }
            RaftObs::SteppedDown { term } => {
                self.event("leader", Some(id.index()), format!("replica {id} stepped down in term {term}"))
            }
            _ => {}
        }
    }

    /// A fault the page asked for that took effect, on the timeline.
    pub fn happened(&mut self, h: &Happened) {
        let (kind, node, text) = describe(h, self.resp_addrs.len(), "replica");
        self.event(kind, node, text);
    }

    /// The counters of a replica restarted start again from zero.
    pub fn restarted(&mut self, i: usize) {
        let mut links = std::mem::take(&mut self.seen[i].links);
        links.restarted();
        self.seen[i] = Seen { links, ..Seen::default() };
        self.restarted[i] = true;
    }

    /// Samples every replica (`None`: crashed; a paused one is not asked) and publishes a
    /// snapshot, with the pauses and cuts of `switches`.
    pub async fn sample(&mut self, replicas: &[Option<Running>], switches: &Switches) {
        let asked: Vec<Option<oneshot::Receiver<Status>>> = replicas
            .iter()
            .enumerate()
            .map(|(i, r)| r.as_ref().filter(|_| !switches.paused(i)).map(|r| ask(r, NodeId(i as u32))))
            .collect();
        let deadline = tokio::time::Instant::now() + STATUS_WAIT;
        let now = Instant::now();
        let dt = now.duration_since(self.last).as_secs_f64().max(1e-3);
        self.last = now;
        let mut rows = Vec::new();
        // The replica that says it leads, in the highest term: shown as the leader even while
        // its row says it is partitioned.
        let mut lead: Option<(usize, u64)> = None;
        let mut kinds: BTreeMap<&'static str, f64> = BTreeMap::new();
        for (i, (r, rx)) in replicas.iter().zip(asked).enumerate() {
            let status = match rx {
                Some(rx) => tokio::time::timeout_at(deadline, rx).await.ok().and_then(Result::ok),
                None => None,
            };
            let mut row = json!({ "id": i, "resp": self.resp_addrs[i].to_string() });
            let counts = r.as_ref().map(|r| Counts::of(&r.shared));
            self.seen[i].links.read(counts.as_ref());
            let (Some(_), Some(counts)) = (r, counts) else {
                row["role"] = "crashed".into();
                row["health"] = "crashed".into();
                rows.push(row);
                continue;
            };
            let Counts { failed, sent, delivered, kinds: by_kind, .. } = counts;
            let counted = (sent, delivered);
            let seen = &mut self.seen[i];
            let rate = |now: u64, then: u64| now.saturating_sub(then) as f64 / dt;
            row["sent_per_s"] = rate(counted.0, seen.counted.0).round().into();
            row["delivered_per_s"] = rate(counted.1, seen.counted.1).round().into();
            seen.counted = counted;
            for (k, sent) in by_kind {
                let before = seen.kinds.insert(k, sent).unwrap_or(0);
                *kinds.entry(k).or_default() += rate(sent, before);
            }
            let paused = switches.paused(i);
            row["health"] = match (&status, failed) {
                (_, true) => "storage failed",
                _ if paused => "paused",
                (Some(_), false) => "ok",
                (None, false) => "not answering",
            }
            .into();
            match status {
                Some(s) => {
                    row["role"] = role(s.role).into();
                    if s.role == Role::Leader && lead.is_none_or(|(_, t)| s.term > t) {
                        lead = Some((i, s.term));
                    }
                    row["term"] = s.term.into();
                    row["leader"] = s.leader.map(|l| l.index()).into();
                    row["commit"] = s.commit.into();
                    row["applied"] = s.applied.into();
                    row["keys"] = s.keys.into();
                }
                None => row["role"] = "unknown".into(),
            }
            if paused {
                row["role"] = "paused".into();
            } else if switches.partitioned(i) {
                row["role"] = "partitioned".into();
            }
            rows.push(row);
        }
        let kinds: Vec<Value> =
            kinds.into_iter().map(|(k, per_s)| json!({ "kind": k, "per_s": per_s.round() })).collect();
        let all: Vec<&LinkCounts> = self.seen.iter().map(|s| &s.links).collect();
        let (links, links_active) = busiest(links(&all, dt));
        let restarted = &self.restarted;
        let running = replicas.iter().map(|r| r.as_ref().map(|r| &*r.shared));
        let messages = latest_messages(running, |i| restarted[i], self.started_ns);
        let cuts: Vec<Value> = switches.cut().iter().take(CUTS).map(|(a, b)| json!([a, b])).collect();
        let snapshot = json!({
            "t_ms": self.started.elapsed().as_millis() as u64,
            "sample_ms": SAMPLE.as_millis() as u64,
            "noun": "replica",
            "lead": json!({ "label": "Leader", "id": lead.map(|l| l.0), "term": lead.map(|l| l.1) }),
            "verbs": VERBS,
            "cuts": cuts,
            "cuts_total": switches.cut().len(),
            "replicas": rows,
            "kinds": kinds,
            "links": links,
            "links_active": links_active,
            "messages": messages,
            "events": self.events,
        });
        self.snapshot.send_replace(snapshot.to_string());
    }
}

/// Asks a replica for its status, as a step of the replica.
fn ask(r: &Running, me: NodeId) -> oneshot::Receiver<Status> {
    let (tx, rx) = oneshot::channel();
    let _ = r.calls.send(Box::new(move |node: &mut super::node::KvNode, _ctx| {
        let _ = tx.send(node.status(me));
    }));
    rx
}

fn role(r: Role) -> &'static str {
    match r {
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::Candidate => "candidate",
    }
}
