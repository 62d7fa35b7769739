//! `agora vote --ui`: the voting service on the live page. The servers' rows, roles and
//! traffic come from the shared sampler (`shared::ui::sampler`), as for every run of this
//! process; the service's own view — the members online and the latest questions with their
//! votes, percentages and consensus — is read from the servers' boards: every sample, a local
//! call to each running server (a step of the server, like a member's command) takes a glance
//! at its board, and the view shows the board of the server furthest along (the highest
//! applied index: the others hold a prefix of the same log).
//!
//! The page's controls: a crash or a restart of a server is done here, by the command
//! ([`super::servers`]); a pause or a cut through the servers' switches
//! ([`steer::Switches`]). Each that takes effect is told to the view as `run_local_observed`
//! tells it of the faults it injects: the server's state, the timeline.

use super::front::{glance_json, BOARD_QUESTIONS};
use super::node::{Glance, VoteNode, VoteObs};
use super::servers::Servers;
use crate::commands::shared::ui::sampler::{System, SAMPLE};
use crate::commands::shared::ui::steer;
use agora_core::{Lifecycle, NodeId};
use agora_net::{Controls, Fault, Happened, NodeShared, Order};
use agora_protocols::raft::RaftObs;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// A server that does not answer its glance within this time is left out of that sample.
const GLANCE_WAIT: Duration = Duration::from_millis(300);

/// The observations the page needs, chosen on the node: the replicas' roles.
pub(super) fn keep(o: &VoteObs) -> bool {
    matches!(o, VoteObs::Raft(RaftObs::Leader { .. } | RaftObs::SteppedDown { .. } | RaftObs::Voted { .. }))
}

/// The service's view as last read, shared by the task that reads the boards and the sampler.
#[derive(Clone, Default)]
pub(super) struct Boards(Arc<Mutex<Value>>);

impl System<VoteObs> for Boards {
    fn see(&mut self, _: NodeId, _: &VoteObs) {}

    fn view(&self) -> Value {
        self.0.lock().expect("boards lock").clone()
    }
}

/// Reads the boards every [`SAMPLE`] until asked for a last reading (once the members are
/// done, before the servers stop), which it acknowledges.
pub(super) async fn read_boards(
    servers: Arc<Servers>,
    boards: Boards,
    mut last: oneshot::Receiver<oneshot::Sender<()>>,
) {
    let mut tick = tokio::time::interval(SAMPLE);
    loop {
        tokio::select! {
            _ = tick.tick() => refresh(&servers, &boards).await,
            ack = &mut last => {
                refresh(&servers, &boards).await;
                if let Ok(ack) = ack {
                    let _ = ack.send(());
                }
                return;
            }
        }
    }
}

/// One reading: every running server asked at once, the furthest along kept.
async fn refresh(servers: &Servers, boards: &Boards) {
    let asked: Vec<oneshot::Receiver<Glance>> = servers
        .calls()
        .await
        .iter()
        .map(|c| {
            let (tx, rx) = oneshot::channel();
            if let Some(c) = c {
                let _ = c.send(Box::new(move |node: &mut VoteNode, _ctx| {
                    let _ = tx.send(node.glance(BOARD_QUESTIONS));
                }));
            }
            rx
        })
        .collect();
    let deadline = tokio::time::Instant::now() + GLANCE_WAIT;
    let mut best: Option<(usize, Glance)> = None;
    for (i, rx) in asked.into_iter().enumerate() {
        let Ok(Ok(g)) = tokio::time::timeout_at(deadline, rx).await else { continue };
        if best.as_ref().is_none_or(|(_, b)| g.status.applied > b.status.applied) {
            best = Some((i, g));
        }
    }
    if let Some((i, g)) = best {
        *boards.0.lock().expect("boards lock") = render(i, &g);
    }
}

/// Runs the page's actions on the servers until the page's actions end: a crash or a
/// restart here, a pause or a cut through the switches. `shared`: each server's shared state
/// as it started; the view is told of each fault with the servers' latest (a crashed
/// server's, its last incarnation's: its counters stand still).
pub(super) async fn steer(mut controls: Controls, servers: Arc<Servers>, shared: Vec<Arc<NodeShared>>) {
    let mut switches = steer::Switches::new(shared.len());
    let mut latest = shared;
    while let Some(Order { fault, done }) = controls.orders.recv().await {
        let answer = act(fault, &servers, &mut switches, &mut latest).await.map(|(happened, text)| {
            (controls.on_fault)(agora_net::clock::unix_ns(), &happened, &latest);
            text
        });
        let _ = done.send(answer);
    }
}

/// One action of the page: what happened and the answer, or why it cannot be done.
async fn act(
    fault: Fault,
    servers: &Servers,
    switches: &mut steer::Switches,
    latest: &mut [Arc<NodeShared>],
) -> Result<(Happened, String), String> {
    let mut running = servers.running.lock().await;
    let n = latest.len();
    let id = match fault {
        Fault::Crash(id) | Fault::Restart(id) => id,
        other => {
            let nodes: Vec<Option<&NodeShared>> =
                running.iter().map(|r| r.as_ref().map(|r| &*r.shared)).collect();
            if nodes.len() != n {
                return Err("the servers are stopping".into());
            }
            return switches.apply(other, &nodes);
        }
    };
    let i = id.index();
    if running.len() != n {
        return Err("the servers are stopping".into());
    }
    let Some(slot) = running.get_mut(i) else {
        return Err(format!("no server {id}: the servers are 0..{n}"));
    };
    match (fault, slot.take()) {
        (Fault::Crash(_), Some(r)) => {
            r.crash().await;
            switches.crashed(i);
            Ok((Happened::Life(id, Lifecycle::Crashed), format!("server {id} crashed")))
        }
        (Fault::Crash(_), None) => Err(format!("server {id} is already crashed")),
        (_, Some(r)) => {
            *slot = Some(r);
            Err(format!("server {id} is running"))
        }
        (_, None) => match servers.launcher.restart(id).await {
            Ok(r) => {
                switches.restarted(i, &r.shared);
                latest[i] = r.shared.clone();
                *slot = Some(r);
                Ok((
                    Happened::Life(id, Lifecycle::Restarted),
                    format!("server {id} restarted from its database"),
                ))
            }
            Err(e) => Err(format!("server {id} did not restart: {e}")),
        },
    }
}

/// The view of server `i`'s board.
fn render(i: usize, g: &Glance) -> Value {
    board_table(&glance_json(NodeId(i as u32), g))
}

/// The page's table of a server's board as `BOARD` gives it ([`glance_json`]): a row per
/// option of each of the latest questions. The in-process page and the containers' share it.
pub(crate) fn board_table(b: &Value) -> Value {
    let questions = b["latest"].as_array().cloned().unwrap_or_default();
    let mut rows = Vec::new();
    for q in &questions {
        let decided = match q["consensus"].as_str() {
            Some(c) => format!("consensus: {c}"),
            None if q["closed"] == true => "closed, no consensus".to_string(),
            None => "open".to_string(),
        };
        for o in q["options"].as_array().into_iter().flatten() {
            rows.push(json!([
                format!("{}: {}", q["question"], q["text"].as_str().unwrap_or("")),
                format!("{} {}", o["option"].as_str().unwrap_or(""), o["text"].as_str().unwrap_or("")),
                o["votes"],
                o["percent"],
                decided,
            ]));
        }
    }
    let note = format!(
        "{} members online, {} accounts, {} questions (the {} latest shown); server {}'s board, \
         the furthest along (applied index {})",
        b["members"],
        b["accounts"],
        b["questions"],
        questions.len(),
        b["server"],
        b["applied"]
    );
    json!({
        "title": "Members and questions",
        "columns": ["Question", "Option", "Votes", "Percent", "Decided"],
        "rows": rows,
        "note": note,
        "members_online": b["members"],
        "accounts": b["accounts"],
        "questions": questions,
        "server": b["server"],
        "applied": b["applied"],
    })
}
