//! Symmetry reduction: a state and its renamings of interchangeable nodes
//! ([`agora_core::Symmetry`]) counted as one, by fingerprinting each state as its canonical
//! renaming.
//!
//! **Canonical renaming.** Within each class, nodes are ordered by a signature that does not
//! depend on their ids: the node's state as if it held the class's first id, what it
//! persisted, its pending timers, its observations, and the messages to and from it (naming
//! the other end only when it is outside the class). The class's ids are then handed out in
//! that order. Two renamings of one state give the same signatures, so the same canonical
//! state — unless two nodes tie, when the tie is broken by their ids and some renamings of a
//! state keep their own fingerprints: less reduction, never a wrong one, since whatever
//! renaming is chosen, the fingerprint is that of a state the first is a renaming of.
//!
//! **Why it is sound.** The explorer keeps the first state of each canonical class it reaches
//! and explores its steps; the states it skips are renamings of one it kept, with the same
//! futures, renamed, and properties that hold or break alike ([`agora_core::Symmetry`]'s
//! contract). Traces stay real: each step recorded was taken from the state kept, so a
//! schedule replays as found.

use super::{fingerprint::hash_of, World};
use agora_core::{NodeId, Setup, Symmetry};
use std::hash::Hash;

/// A renaming of a state's nodes: node `i` becomes `to[i]`, and place `j` of the renamed state
/// holds node `from[j]`.
pub(super) struct Renaming<'a, P> {
    pub(super) sym: &'a Symmetry<P>,
    pub(super) to: Vec<NodeId>,
    pub(super) from: Vec<usize>,
}

impl<'a, P: agora_core::Protocol> Renaming<'a, P> {
    /// The canonical renaming of `w` (see the module's docs).
    pub(super) fn canonical<S: Setup<Node = P>>(w: &World<S>, sym: &'a Symmetry<P>) -> Self
    where
        P: Clone + Hash,
        <P as agora_core::Protocol>::Timer: Hash,
    {
        let n = w.nodes.len();
        let mut to: Vec<NodeId> = (0..n as u32).map(NodeId).collect();
        for class in &sym.classes {
            let mut ranked: Vec<(u128, NodeId)> =
                class.iter().map(|&i| (signature(w, sym, class, i), i)).collect();
            ranked.sort_unstable();
            let mut ids = class.clone();
            ids.sort_unstable();
            for ((_, old), new) in ranked.into_iter().zip(ids) {
                to[old.index()] = new;
            }
        }
        let mut from = vec![0; n];
        for (i, t) in to.iter().enumerate() {
            from[t.index()] = i;
        }
        Renaming { sym, to, from }
    }
}

/// Node `i`'s signature in `w`, the same for every node of `class` in the same place.
fn signature<S: Setup>(w: &World<S>, sym: &Symmetry<S::Node>, class: &[NodeId], i: NodeId) -> u128
where
    S::Node: Clone + Hash,
    <S::Node as agora_core::Protocol>::Timer: Hash,
{
    let n = i.index();
    // Its state as if it were the class's first node (the two swapped).
    let first = class[0];
    let mut swap: Vec<NodeId> = (0..w.nodes.len() as u32).map(NodeId).collect();
    swap.swap(n, first.index());
    let node = w.nodes[n].as_ref().map(|node| hash_of(&(sym.rename)(node, &swap)));
    // The messages to and from it; another node of the class is "some node of the class".
    let other = |id: NodeId| if class.contains(&id) { None } else { Some(id) };
    let flight = w
        .flight
        .iter()
        .filter_map(|f| match (f.from == i, f.to == i) {
            (true, true) => Some(hash_of(&(0u8, f.body))),
            (true, false) => Some(hash_of(&(1u8, other(f.to), f.body))),
            (false, true) => Some(hash_of(&(2u8, other(f.from), f.body))),
            (false, false) => None,
        })
        .fold(0, u128::wrapping_add);
    hash_of(&(node, w.stable_hash[n], w.timers_hash(n), w.seen[n], w.crashed_ever[n], flight))
}
