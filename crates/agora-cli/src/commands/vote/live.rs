//! `agora vote --ui`: the voting service on the live page. The servers' rows, roles and
//! traffic come from the shared sampler (`shared::ui::sampler`), as for every run of this
//! process; the service's own view — the members online and the latest questions with their
//! votes, percentages and consensus — is read from the servers' boards: every sample, a local
//! call to each running server (a step of the server, like a member's command) takes a glance
//! at its board, and the view shows the board of the server furthest along (the highest
//! applied index: the others hold a prefix of the same log).

use super::front::stats_json;
use super::node::{Glance, VoteNode, VoteObs};
use crate::commands::shared::ui::sampler::{System, SAMPLE};
use agora_core::NodeId;
use agora_net::LocalCall;
use agora_protocols::raft::RaftObs;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Questions the view shows, the newest first.
const QUESTIONS: usize = 10;
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

/// Each running server's local calls, in id order.
pub(super) type Calls = Vec<mpsc::UnboundedSender<LocalCall<VoteNode>>>;

/// Reads the boards every [`SAMPLE`] until asked for a last reading (once the members are
/// done, before the servers stop), which it acknowledges.
pub(super) async fn read_boards(
    calls: Calls,
    boards: Boards,
    mut last: oneshot::Receiver<oneshot::Sender<()>>,
) {
    let mut tick = tokio::time::interval(SAMPLE);
    loop {
        tokio::select! {
            _ = tick.tick() => refresh(&calls, &boards).await,
            ack = &mut last => {
                refresh(&calls, &boards).await;
                if let Ok(ack) = ack {
                    let _ = ack.send(());
                }
                return;
            }
        }
    }
}

/// One reading: every server asked at once, the furthest along kept.
async fn refresh(calls: &Calls, boards: &Boards) {
    let asked: Vec<oneshot::Receiver<Glance>> = calls
        .iter()
        .map(|c| {
            let (tx, rx) = oneshot::channel();
            let _ = c.send(Box::new(move |node: &mut VoteNode, _ctx| {
                let _ = tx.send(node.glance(QUESTIONS));
            }));
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

/// The view of server `i`'s board: a row per option of each of the latest questions.
fn render(i: usize, g: &Glance) -> Value {
    let questions: Vec<Value> = g.latest.iter().map(stats_json).collect();
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
    let s = &g.status;
    let note = format!(
        "{} members online, {} accounts, {} questions (the {} latest shown); server {i}'s board, \
         the furthest along (applied index {})",
        s.members,
        g.accounts,
        g.questions,
        g.latest.len(),
        s.applied
    );
    json!({
        "title": "Members and questions",
        "columns": ["Question", "Option", "Votes", "Percent", "Decided"],
        "rows": rows,
        "note": note,
        "members_online": s.members,
        "accounts": g.accounts,
        "questions": questions,
        "server": i,
        "applied": s.applied,
    })
}
