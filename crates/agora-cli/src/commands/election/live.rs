//! `agora election --ui`: the election's own view on the live page — the ballots counted so
//! far in each state, read from the replicas' `Counted` observations as they make them.

use crate::commands::shared::ui::sampler::System;
use agora_core::NodeId;
use agora_protocols::raft::RaftObs;
use agora_protocols::vote_count::obs::VoteObs;
use agora_protocols::vote_count::states::STATES;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The observations the page needs, chosen on the node: the replicas' roles and what they
/// counted. Each ballot's cast and answer (one each per ballot, the bulk of the
/// observations) stay on the node.
pub(super) fn keep(o: &VoteObs) -> bool {
    matches!(
        o,
        VoteObs::Raft(RaftObs::Leader { .. } | RaftObs::SteppedDown { .. } | RaftObs::Voted { .. })
            | VoteObs::Counted { .. }
            | VoteObs::Tallied { .. }
    )
}

/// Ballots counted per state, per replica.
#[derive(Default)]
pub(super) struct Ballots {
    counted: BTreeMap<NodeId, Vec<u64>>,
    tallied: BTreeMap<NodeId, u64>,
}

impl System<VoteObs> for Ballots {
    fn see(&mut self, node: NodeId, o: &VoteObs) {
        match o {
            VoteObs::Counted { ballots } => {
                let per_state = self.counted.entry(node).or_insert_with(|| vec![0; STATES.len()]);
                for b in ballots {
                    if let Some(c) = per_state.get_mut(b.state as usize) {
                        *c += 1;
                    }
                }
            }
            VoteObs::Tallied { counted, .. } => {
                self.tallied.insert(node, *counted);
            }
            _ => {}
        }
    }

    /// The replicas all count the same log, so in each state the one furthest along has
    /// counted every ballot the others have.
    fn view(&self) -> Value {
        let rows: Vec<Value> = STATES
            .iter()
            .enumerate()
            .filter_map(|(s, state)| {
                let most = self.counted.values().map(|c| c[s]).max().unwrap_or(0);
                (most > 0).then(|| json!([state.code, state.name, most]))
            })
            .collect();
        let total: u64 = self.counted.values().map(|c| c.iter().sum::<u64>()).max().unwrap_or(0);
        let mut note = format!("{total} ballots counted so far (the replica furthest along)");
        if !self.tallied.is_empty() {
            let t: Vec<String> = self.tallied.iter().map(|(n, c)| format!("node {n}: {c}")).collect();
            note.push_str(&format!("; tallied: {}", t.join(", ")));
        }
        json!({
            "title": "Ballots counted, by state",
            "columns": ["State", "Name", "Counted"],
            "rows": rows,
            "note": note,
        })
    }
}
