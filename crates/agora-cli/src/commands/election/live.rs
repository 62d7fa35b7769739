//! `agora election --ui`: the election's own view on the live page — the ballots counted so
//! far in each state, read from the replicas' `Counted` observations as they make them, as a
//! table and as the tile map: one square per state, filled in as its ballots are counted,
//! coloured by the option leading there and labelled with its name and share.

use crate::commands::shared::ui::sampler::System;
use agora_core::NodeId;
use agora_protocols::raft::RaftObs;
use agora_protocols::vote_count::obs::VoteObs;
use agora_protocols::vote_count::states::{SEATS_TOTAL, STATES};
use agora_protocols::vote_count::Spec;
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

/// Ballots counted per state and option, per replica.
pub(crate) struct Ballots {
    options: Vec<String>,
    /// Voters on the roll in each state, in [`STATES`] order.
    roll: Vec<u64>,
    /// Per replica: per state, per option.
    counted: BTreeMap<NodeId, Vec<Vec<u64>>>,
    tallied: BTreeMap<NodeId, u64>,
}

impl Ballots {
    /// The view of `spec`'s election over `roll` (each voter's state), or over the synthetic
    /// roll of `spec.voters` voters (spread over the states by their seats).
    pub(crate) fn new(spec: &Spec, roll: Option<&[(u8, agora_protocols::vote_count::Hash)]>) -> Ballots {
        let roll = match roll {
            Some(r) => {
                let mut per = vec![0; STATES.len()];
                for (state, _) in r {
                    if let Some(c) = per.get_mut(*state as usize) {
                        *c += 1;
                    }
                }
                per
            }
            None => synthetic_roll(spec.voters),
        };
        Ballots { options: spec.options.clone(), roll, counted: BTreeMap::new(), tallied: BTreeMap::new() }
    }
}

/// Voters per state of the synthetic roll ([`Spec::synthetic_state`]): voter `v` is in the
/// state whose seats cover `v % SEATS_TOTAL`.
fn synthetic_roll(voters: u64) -> Vec<u64> {
    let (rounds, rest) = (voters / SEATS_TOTAL, voters % SEATS_TOTAL);
    let mut first = 0;
    STATES
        .iter()
        .map(|s| {
            let seats = s.seats as u64;
            let in_rest = rest.saturating_sub(first).min(seats);
            first += seats;
            rounds * seats + in_rest
        })
        .collect()
}

/// The option leading a state's count (`None`: nothing counted, or a tie at the top) and its
/// share of the ballots counted there, in percent.
fn leading(row: &[u64]) -> (Option<usize>, f64) {
    let total: u64 = row.iter().sum();
    let Some(top) = row.iter().copied().max().filter(|_| total > 0) else { return (None, 0.0) };
    let share = (1000.0 * top as f64 / total as f64).round() / 10.0;
    let mut at_top = row.iter().enumerate().filter(|(_, c)| **c == top);
    let first = at_top.next().map(|(o, _)| o);
    (if at_top.next().is_some() { None } else { first }, share)
}

impl System<VoteObs> for Ballots {
    fn see(&mut self, node: NodeId, o: &VoteObs) {
        match o {
            VoteObs::Counted { ballots } => {
                let k = self.options.len();
                let per_state = self.counted.entry(node).or_insert_with(|| vec![vec![0; k]; STATES.len()]);
                for b in ballots {
                    if let Some(c) =
                        per_state.get_mut(b.state as usize).and_then(|s| s.get_mut(b.option as usize))
                    {
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

    /// The replicas all count the same log, so the one furthest along has counted every
    /// ballot the others have: its counts are shown.
    fn view(&self) -> Value {
        let total = |c: &Vec<Vec<u64>>| c.iter().flatten().sum::<u64>();
        let furthest = self.counted.values().max_by_key(|c| total(c));
        let none = vec![vec![0; self.options.len()]; STATES.len()];
        let per_state = furthest.unwrap_or(&none);
        let mut rows = Vec::new();
        let mut tiles = Vec::with_capacity(STATES.len());
        for (s, state) in STATES.iter().enumerate() {
            let counted: u64 = per_state[s].iter().sum();
            let (lead, share) = leading(&per_state[s]);
            let name = lead.map(|o| self.options[o].as_str());
            if counted > 0 {
                rows.push(json!([state.code, state.name, counted, name.unwrap_or("tied"), share]));
            }
            tiles.push(json!({
                "code": state.code, "name": state.name, "col": state.col, "row": state.row,
                "counted": counted, "roll": self.roll[s], "leader": lead, "share": share,
            }));
        }
        let all = furthest.map_or(0, total);
        let mut note = format!("{all} ballots counted so far (the replica furthest along)");
        if !self.tallied.is_empty() {
            let t: Vec<String> = self.tallied.iter().map(|(n, c)| format!("node {n}: {c}")).collect();
            note.push_str(&format!("; tallied: {}", t.join(", ")));
        }
        json!({
            "title": "Ballots counted, by state",
            "columns": ["State", "Name", "Counted", "Leading", "Share %"],
            "rows": rows,
            "note": note,
            "options": self.options,
            "tiles": tiles,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_synthetic_roll_is_the_one_voters_are_drawn_from() {
        for voters in [0, 1, 200, 435, 1_000, 20_001] {
            let mut per = vec![0; STATES.len()];
            for v in 0..voters {
                per[Spec::synthetic_state(v) as usize] += 1;
            }
            assert_eq!(synthetic_roll(voters), per, "{voters} voters");
        }
    }

    #[test]
    fn the_leader_is_the_one_option_on_top() {
        assert_eq!(leading(&[3, 1]), (Some(0), 75.0));
        assert_eq!(leading(&[1, 2, 0]), (Some(1), 66.7));
        assert_eq!(leading(&[2, 2]), (None, 50.0));
        assert_eq!(leading(&[0, 0]), (None, 0.0));
    }
}
