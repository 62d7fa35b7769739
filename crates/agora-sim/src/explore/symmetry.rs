//! Symmetry reduction: a state and its renamings of interchangeable nodes
//! ([`agora_core::Symmetry`]) counted as one, by fingerprinting each state as its canonical
//! renaming.
//!
//! **Canonical renaming.** Within each class, nodes are ordered by a signature that does not
//! depend on their ids: the node's state as if it held the class's first id, what it
//! persisted, its pending timers, its observations, and the messages to and from it (naming
//! the other end only when it is outside the class). The class's ids are then handed out in
//! that order. Two renamings of one state give the same signatures, so the same canonical
//! state. Nodes whose signatures tie may still differ (in how the rest of the state refers to
//! each: a coordinator's record of which participant voted), so where they tie, the ids are
//! handed out in every order of the tied nodes and the least identity taken: the same for
//! every renaming of the state, up to 720 orders (k nodes alike cost k! hashes a state; past
//! 720, ties are broken by ids). Without that, two renamings of one state could keep
//! fingerprints of their own — less reduction — and a step the search recorded from the
//! state it kept would not lead to the same fingerprint from a renaming of it, which the
//! search of cycles relies on (`agora explore 2pc --nodes 4` stopped on that).
//!
//! **Ids inside the state.** Where a protocol's nodes, messages, storage or observations
//! name nodes of a class ([`agora_core::Names`]: a Raft replica's vote, its leader, a
//! leader's view of each peer, the stored vote, a vote observed), a signature that does not
//! depend on ids is hard to come by: the state is instead hashed as each of its renamings
//! ([`Renaming::all`]: 6 for three Raft replicas, at most 720) and the least hash taken, the
//! same for every renaming of the state — exact, at that many hashes a state. A renaming
//! then renames every id inside: each node's state (the protocol's `rename`), each message
//! that names nodes, the values of the storage keys that may name nodes (hashed apart from
//! the rest), and each observation that names nodes (kept whole for this, with the node that
//! made it; the node's hash chain of observations records only its place among that node's).
//! Timers must name none.
//!
//! **What a renaming must not change: what a node draws.** Every handler's random source is
//! seeded with its node's id; within a class, with the class's first id instead, so that
//! renamed nodes draw alike (a Raft replica's election timeout is then one length for all).
//! This is so with or without symmetry in the search, so that both search the same system.
//!
//! **Checked, not only vouched for.** [`check_symmetry`] takes every state within small
//! bounds and every renaming, and checks that each step leads from the renamed state to the
//! renaming of where it leads from the state (a renaming that forgets a field the protocol
//! acts on fails it), and that the renamed state has the state's fingerprint (a canonical
//! renaming that depends on the ids it starts from fails it).
//!
//! **Why it is sound.** The explorer keeps the first state of each canonical class it reaches
//! and explores its steps; the states it skips are renamings of one it kept, with the same
//! futures, renamed, and properties that hold or break alike ([`agora_core::Symmetry`]'s
//! contract). Traces stay real: each step recorded was taken from the state kept, so a
//! schedule replays as found.

use super::{
    choice::Choices,
    fingerprint::{hash_of, H128},
    Bounds, Driver, Step, World,
};
use agora_core::{NodeId, Setup, Symmetry};
use std::hash::Hash;
use std::sync::Arc;

/// A renaming of a state's nodes: node `i` becomes `to[i]`, and place `j` of the renamed state
/// holds node `from[j]`.
pub(super) struct Renaming<'a, P: agora_core::Protocol> {
    pub(super) sym: &'a Symmetry<P>,
    pub(super) to: Vec<NodeId>,
    pub(super) from: Vec<usize>,
}

impl<'a, P: agora_core::Protocol> Renaming<'a, P> {
    /// The canonical renamings of `w` (see the module's docs): each class's ids handed out in
    /// the order of its nodes' signatures and, where signatures tie, in every order of the
    /// nodes that tie (at most [`ALL_AT_MOST`] renamings in all; a tie past that is broken by
    /// the nodes' ids). The least identity of the states they rename `w` to is the same for
    /// every renaming of `w`.
    pub(super) fn canonical<S: Setup<Node = P>>(w: &World<S>, sym: &'a Symmetry<P>) -> Vec<Self>
    where
        P: Clone + Hash + Sync,
        <P as agora_core::Protocol>::Timer: Hash,
    {
        let n = w.slots.len();
        let mut tos: Vec<Vec<NodeId>> = vec![(0..n as u32).map(NodeId).collect()];
        for class in &sym.classes {
            let mut ranked: Vec<(u128, NodeId)> =
                class.iter().map(|&i| (signature(w, sym, class, i), i)).collect();
            ranked.sort_unstable();
            let mut ids = class.clone();
            ids.sort_unstable();
            // Each run of equal signatures: its nodes share its places among the class's ids.
            let mut start = 0;
            while start < ranked.len() {
                let end = start + ranked[start..].iter().take_while(|r| r.0 == ranked[start].0).count();
                if end == start + 1 {
                    // No tie: one place for it in every renaming.
                    for to in &mut tos {
                        to[ranked[start].1.index()] = ids[start];
                    }
                    start = end;
                    continue;
                }
                let tied: Vec<NodeId> = ranked[start..end].iter().map(|r| r.1).collect();
                let places = &ids[start..end];
                let within = (1..=tied.len())
                    .try_fold(tos.len(), |c, k| c.checked_mul(k))
                    .is_some_and(|c| c <= ALL_AT_MOST);
                let orders = if within { permutations(&tied) } else { vec![tied] };
                let pairs: Vec<Vec<(NodeId, NodeId)>> =
                    orders.iter().map(|o| o.iter().copied().zip(places.iter().copied()).collect()).collect();
                tos = branch(&tos, &pairs);
                start = end;
            }
        }
        renamings(sym, tos)
    }
}

/// Renamings [`Renaming::all`] and [`Renaming::canonical`] try at most: 6! (a class of six
/// nodes).
const ALL_AT_MOST: usize = 720;

impl<'a, P: agora_core::Protocol> Renaming<'a, P> {
    /// Every renaming of `n` nodes that permutes each class of `sym` (the identity first), or
    /// `None` if there are more than [`ALL_AT_MOST`].
    pub(super) fn all(n: usize, sym: &'a Symmetry<P>) -> Option<Vec<Self>> {
        let count = sym.classes.iter().try_fold(1usize, |c, class| {
            (1..=class.len()).try_fold(c, |c, k| c.checked_mul(k)).filter(|c| *c <= ALL_AT_MOST)
        })?;
        let mut tos: Vec<Vec<NodeId>> = vec![(0..n as u32).map(NodeId).collect()];
        for class in &sym.classes {
            let pairs: Vec<Vec<(NodeId, NodeId)>> = permutations(class)
                .iter()
                .map(|p| class.iter().copied().zip(p.iter().copied()).collect())
                .collect();
            tos = branch(&tos, &pairs);
        }
        debug_assert_eq!(tos.len(), count);
        Some(renamings(sym, tos))
    }
}

/// Each of `tos` (where each node goes) once for each of `choices`, each a list of nodes and
/// where they go instead.
fn branch(tos: &[Vec<NodeId>], choices: &[Vec<(NodeId, NodeId)>]) -> Vec<Vec<NodeId>> {
    tos.iter()
        .flat_map(|to| {
            choices.iter().map(move |choice| {
                let mut to = to.clone();
                for &(old, new) in choice {
                    to[old.index()] = new;
                }
                to
            })
        })
        .collect()
}

/// The renamings that send node `i` to `to[i]`, for each `to` of `tos`.
fn renamings<P: agora_core::Protocol>(sym: &Symmetry<P>, tos: Vec<Vec<NodeId>>) -> Vec<Renaming<'_, P>> {
    tos.into_iter()
        .map(|to| {
            let mut from = vec![0; to.len()];
            for (i, t) in to.iter().enumerate() {
                from[t.index()] = i;
            }
            Renaming { sym, to, from }
        })
        .collect()
}

/// Every order of `ids`, `ids` itself first.
fn permutations(ids: &[NodeId]) -> Vec<Vec<NodeId>> {
    if ids.len() <= 1 {
        return vec![ids.to_vec()];
    }
    let mut out = Vec::new();
    for i in 0..ids.len() {
        let mut rest = ids.to_vec();
        let head = rest.remove(i);
        for mut tail in permutations(&rest) {
            tail.insert(0, head);
            out.push(tail);
        }
    }
    out
}

/// Node `i`'s signature in `w`, the same for every node of `class` in the same place.
fn signature<S: Setup>(w: &World<S>, sym: &Symmetry<S::Node>, class: &[NodeId], i: NodeId) -> u128
where
    S::Node: Clone + Hash + Sync,
    <S::Node as agora_core::Protocol>::Timer: Hash,
{
    let n = i.index();
    // Its state as if it were the class's first node (the two swapped).
    let first = class[0];
    let mut swap: Vec<NodeId> = (0..w.slots.len() as u32).map(NodeId).collect();
    swap.swap(n, first.index());
    let slot = &w.slots[n];
    let node = slot.node.as_ref().map(|node| hash_of(&(sym.rename)(node, &swap)));
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
    hash_of(&(node, slot.stable_hash, w.timers_hash(n), slot.seen, slot.crashed_ever, flight))
}

impl<S: Setup> World<S>
where
    S::Node: Clone + Hash + Sync,
    <S::Node as agora_core::Protocol>::Timer: Hash,
{
    /// The state `r` renames this one to, whole: each node's state, storage, timers and
    /// observations moved to its new place and renamed, and each message in flight renamed
    /// with its ends. The checker is this state's, not renamed (it is opaque): its verdicts
    /// in the renamed state are not to be trusted, only the state's identity.
    fn renamed(&self, r: &Renaming<'_, S::Node>) -> Self {
        let mut w = self.fork();
        let keys = self.names.map_or(&[][..], |m| m.stored_keys);
        for (i, &t) in r.to.iter().enumerate() {
            let j = t.index();
            let (from, to) = (&self.slots[i], &mut w.slots[j]);
            to.node = from.node.as_ref().map(|node| Arc::new((r.sym.rename)(node, &r.to)));
            to.hash = hash_of(&to.node).into();
            let mut st = (*from.stable).clone();
            for (key, m) in keys.iter().zip(std::iter::repeat(self.names)) {
                if let (Some(v), Some(m)) = (st.get_bytes(key), m) {
                    let renamed = (m.stored)(key, v, &r.to);
                    st.put(key.to_string(), renamed);
                }
            }
            to.stable_hash = super::storage_hash(&st, keys).into();
            to.stable = Arc::new(st);
            to.timers = from.timers.clone();
            to.seen = from.seen;
            to.crashed_ever = from.crashed_ever;
        }
        w.named = self
            .named
            .iter()
            .map(|(k, o)| {
                let o = match self.names {
                    Some(m) => (m.obs)(o, &r.to).expect("named"),
                    None => o.clone(),
                };
                (r.to[*k as usize].0, o)
            })
            .collect();
        for f in &mut w.flight {
            let (from, to) = (r.to[f.from.index()], r.to[f.to.index()]);
            if let Some(m) = self.names.and_then(|m| (m.msg)(&f.msg, &r.to)) {
                f.body = hash_of(&agora_core::wire::encode(&m)).into();
                f.msg = m;
            }
            (f.from, f.to) = (from, to);
            f.hash = hash_of(&(from, to, f.body)).into();
        }
        w.flight.sort_by_key(|f| f.hash);
        w
    }

    /// Step `s` of this state as the state `r` renames it to takes it (`renamed`: that state).
    fn renamed_step(&self, renamed: &Self, r: &Renaming<'_, S::Node>, s: Step) -> Step {
        let msg = |i: usize| {
            let f = &self.flight[i];
            let body = match self.names.and_then(|m| (m.msg)(&f.msg, &r.to)) {
                Some(m) => hash_of(&agora_core::wire::encode(&m)),
                None => f.body.get(),
            };
            let hash = H128::from(hash_of(&(r.to[f.from.index()], r.to[f.to.index()], body)));
            // The first of equal messages: on FIFO links, the one as far along its link.
            let ahead = if self.fifo { self.ahead(f) } else { 0 };
            renamed
                .flight
                .iter()
                .position(|g| g.hash == hash && (!self.fifo || renamed.ahead(g) == ahead))
                .expect("the renamed message is in flight")
        };
        let node = |n: usize| r.to[n].index();
        match s {
            Step::Deliver(i) => Step::Deliver(msg(i)),
            Step::Duplicate(i) => Step::Duplicate(msg(i)),
            Step::Drop(i) => Step::Drop(msg(i)),
            Step::Fire(n, t) => Step::Fire(node(n), t),
            Step::Crash(n) => Step::Crash(node(n)),
            Step::Restart(n) => Step::Restart(node(n)),
        }
    }
}

/// Checks a setup's declaration of interchangeable nodes ([`Setup::symmetry`]) where the
/// search is to rely on it: for every state reached breadth first within `bounds` (up to
/// `max_states` of them, renamings not merged) and every renaming of its classes, the renamed
/// state has the identity the search gives that renaming, and every step (each alternative
/// its handlers may choose) leads from the renamed state to the renaming of where it leads
/// from the state — the renamed system runs as the system does, renamed. A renaming that
/// misses a field the protocol acts on, or a node that draws differently for its id, fails
/// it. Returns the pairs of steps compared, or the first that differ, in words. Steps that
/// break a property are not compared (the checker is not renamed).
pub fn check_symmetry<S: Setup>(setup: &S, bounds: &Bounds, max_states: usize) -> Result<u64, String>
where
    S::Node: Clone + Hash + Sync,
    <S::Node as agora_core::Protocol>::Timer: Hash,
{
    let sym = setup.symmetry().ok_or("the protocol declares no interchangeable nodes")?;
    let n = setup.nodes();
    let renamings = Renaming::all(n, &sym).ok_or("too many renamings to check")?;
    let mut d = Driver::new(setup);
    let mut level: Vec<World<S>> = World::initials(setup, bounds, &mut d)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|(_, _, broke)| broke.is_none())
        .map(|(w, _, _)| w)
        .collect();
    let mut seen = std::collections::HashSet::new();
    let mut compared = 0;
    // The identity (the first renaming): a state's identity as a renaming hashes it.
    let same = &renamings[0];
    for depth in 1..=bounds.depth {
        let mut next_level = Vec::new();
        for w in &level {
            let fingerprint = w.fingerprint(Some(&sym));
            for r in &renamings {
                let renamed = w.renamed(r);
                if renamed.identity(Some(same)) != w.identity(Some(r)) {
                    return Err(format!("renaming {:?}: the renamed state's identity differs", r.to));
                }
                // The search knows a state by its canonical renaming's fingerprint: the same
                // for every renaming of it, or a step recorded from the state kept would not
                // lead to the same fingerprint from a renaming of it.
                if renamed.fingerprint(Some(&sym)) != fingerprint {
                    return Err(format!("renaming {:?}: the renamed state's fingerprint differs", r.to));
                }
                for step in w.steps(bounds) {
                    d.choices = Choices::search();
                    loop {
                        let mut a = w.fork();
                        let broke = a.apply(&mut d, setup, step, depth).is_err();
                        let code = d.choices.code().ok_or("too many choices")?;
                        let rstep = w.renamed_step(&renamed, r, step);
                        let mut b = renamed.fork();
                        let mut e = Driver::new(setup);
                        e.choices = Choices::named(code);
                        let broke = broke | b.apply(&mut e, setup, rstep, depth).is_err();
                        if !broke && a.identity(Some(r)) != b.identity(Some(same)) {
                            return Err(format!(
                                "renaming {:?}: \"{}\" leads elsewhere than \"{}\" from the renamed state",
                                r.to,
                                w.describe(step),
                                renamed.describe(rstep)
                            ));
                        }
                        compared += u64::from(!broke);
                        if !broke && seen.len() < max_states && seen.insert(a.identity(None)) {
                            next_level.push(a);
                        }
                        if !d.choices.advance() {
                            break;
                        }
                    }
                }
            }
        }
        level = next_level;
    }
    Ok(compared)
}
