//! Liveness in cycles: a protocol that never goes quiet (heartbeats, resends) has no dead end
//! to judge its at-end properties in, but its state graph has cycles — states a run reaches
//! again and may go round for ever. This module finds them and judges the at-end properties
//! at the end of a run that never leaves one.
//!
//! **Which cycles.** The graph kept is that of the *fair* steps ([`Step::fair`]): deliveries,
//! and timer firings when firings are not counted (`--fires`). Faults (loss, duplication,
//! crashes, restarts) are counted in the state, and so are firings under a bound: a step that
//! takes one never leads back, so no cycle takes a fault, and none is left to blame inside
//! one. Faults taken on the way to it are the checker's to weigh, as in a dead end (a lost
//! message: `network_reliable` false; a crashed node: `live`). The cycles are the strongly
//! connected components of that graph with a step inside (Tarjan's algorithm, without
//! recursion, over the states the search numbered, after the search).
//!
//! **What is judged.** A state's fingerprint includes each node's observations as a hash
//! chain, which only grows: no step inside a component observes anything, and none crashes
//! or restarts a node. The checker, which sees only observations and lifecycle events, is
//! therefore in the same state all round a component, and judging the at-end properties in
//! its first state (the one the search reached first: the shortest trace) judges them at the
//! end of every run that stays in it for ever: [`agora_core::EndState`] with the end far past
//! the last fault, `quiescent` false (the run never goes quiet: a checker that claims a
//! property only of quiet ends declines it, and the report says it was not judged) and
//! `observed_all` true — nothing more will be observed, so a property that says something
//! will be (the mutual-exclusion algorithms' `every-request-served`, flood's
//! `reachable-delivered`) is judged as at a quiet end. Not after a message was lost on the
//! way (`observed_all` false then): a protocol that resends by the clock without saying it
//! reads it (Lamport's algorithm over the link layer) sees time stand still in the explorer
//! and never resends, so its timer going round for ever after a loss is a cycle the real
//! protocol leaves.
//!
//! **Fairness.** A run that goes round a cycle for ever is a run of the protocol only if it is
//! fair: no message waits in flight for ever, no timer stays pending for ever without firing
//! (a timer set again is a new one: a follower whose election timer every heartbeat resets is
//! fair). A cycle is taken concretely from its first state and checked: every message in flight
//! and every timer pending at its start must be gone (delivered, fired, set again or
//! cancelled) when it is back; what was sent or set on the way is then in the same place
//! for the next round, which goes the same way. Synchronously this also excludes a cycle that
//! delivers messages for ever while a timer waits, time never passing. A component whose
//! properties do not hold is tried twice: its shortest cycle through its first state, and, if
//! that one is unfair, a walk through every step inside it (the fairest run that stays
//! there: whatever a run inside the component can deliver or fire, it does; tried up to
//! [`WALK_MAX`] steps). If both are unfair (or the walk would be longer), the component is
//! counted as unfair ([`super::Report::unfair_cycles`]) and not reported.
//!
//! **What it costs.** The search keeps the graph's fair steps as successor lists: 8 bytes a
//! state (where its list begins) and 4 bytes a fair step between two states numbered (its
//! target), besides the 40 bytes a state the search keeps anyway. The components take 9 bytes
//! a state more while they are computed, after the search.
//!
//! With symmetry, the graph is that of canonical renamings: a cycle may lead back to a
//! renaming of its first state; it is then gone round again until it leads back to the very
//! state, up to [`ROUNDS`] times.

use super::choice::Choices;
use super::{
    at_end, path, replay, Bounds, Driver, ExploreError, Found, Fp, Link, Replayed, Seen, Step, TimerOf, World,
};
use agora_core::{Setup, Symmetry, Time};
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// The most times a cycle of canonical states is gone round to lead back to its very first
/// state (a renaming of a few interchangeable nodes repeats within this many).
const ROUNDS: usize = 24;

/// The longest walk through every step of a component that is tried.
const WALK_MAX: usize = 100_000;

/// The fair steps between the states the search numbered, as successor lists (compressed
/// rows: the search expands states in their numbers' order).
#[derive(Default)]
pub(super) struct Graph {
    /// Where each state's successors begin in `to`.
    first: Vec<u64>,
    /// The successors, state after state.
    to: Vec<u32>,
}

impl Graph {
    /// A fair step from state `from` to state `to`; `from` is the state being expanded or a
    /// later one.
    pub(super) fn add(&mut self, from: u32, to: u32) {
        assert!(self.first.len() <= from as usize + 1, "states are expanded in their numbers' order");
        while self.first.len() <= from as usize {
            self.first.push(self.to.len() as u64);
        }
        self.to.push(to);
    }

    /// The states state `n` leads to in one fair step.
    fn successors(&self, n: u32) -> &[u32] {
        let n = n as usize;
        let Some(&begin) = self.first.get(n) else { return &[] };
        let end = self.first.get(n + 1).map_or(self.to.len(), |&e| e as usize);
        &self.to[begin as usize..end]
    }

    /// The strongly connected components of the first `states` states with a step inside
    /// (several states, or one that leads to itself), each sorted, in the order of their
    /// first states: Tarjan's algorithm with an explicit stack.
    pub(super) fn components(&self, states: usize) -> Vec<Vec<u32>> {
        const UNSEEN: u32 = u32::MAX;
        let mut index = vec![UNSEEN; states];
        let mut low = vec![0u32; states];
        let mut on_stack = vec![false; states];
        let mut stack: Vec<u32> = Vec::new();
        let mut calls: Vec<(u32, usize)> = Vec::new();
        let mut next = 0u32;
        let mut out = Vec::new();
        for root in 0..states as u32 {
            if index[root as usize] != UNSEEN {
                continue;
            }
            // The state to visit next, if any.
            let mut enter = Some(root);
            loop {
                if let Some(v) = enter.take() {
                    index[v as usize] = next;
                    low[v as usize] = next;
                    next += 1;
                    stack.push(v);
                    on_stack[v as usize] = true;
                    calls.push((v, 0));
                }
                let Some(&(v, i)) = calls.last() else { break };
                let succ = self.successors(v);
                if let Some(&w) = succ.get(i) {
                    calls.last_mut().expect("a call is on the stack").1 += 1;
                    if w as usize >= states {
                        continue;
                    }
                    if index[w as usize] == UNSEEN {
                        enter = Some(w);
                    } else if on_stack[w as usize] {
                        low[v as usize] = low[v as usize].min(index[w as usize]);
                    }
                    continue;
                }
                calls.pop();
                if let Some(&(u, _)) = calls.last() {
                    low[u as usize] = low[u as usize].min(low[v as usize]);
                }
                if low[v as usize] == index[v as usize] {
                    let mut comp = Vec::new();
                    loop {
                        let w = stack.pop().expect("the component's states are on the stack");
                        on_stack[w as usize] = false;
                        comp.push(w);
                        if w == v {
                            break;
                        }
                    }
                    if comp.len() > 1 || succ.contains(&v) {
                        comp.sort_unstable();
                        out.push(comp);
                    }
                }
            }
        }
        out.sort_unstable_by_key(|c| c[0]);
        out
    }

    /// The shortest path from `from` to a state of `comp` that `goal` accepts (at least one
    /// step), through `comp`'s states: the states after `from`, the goal last.
    fn path_in(&self, comp: &[u32], from: u32, goal: impl Fn(u32) -> bool) -> Option<Vec<u32>> {
        let inside = |v: u32| comp.binary_search(&v).is_ok();
        let mut prev: HashMap<u32, u32> = HashMap::new();
        let mut queue = VecDeque::from([from]);
        while let Some(u) = queue.pop_front() {
            for &v in self.successors(u).iter().filter(|&&v| inside(v)) {
                if goal(v) {
                    let mut back = vec![v];
                    let mut x = u;
                    while x != from {
                        back.push(x);
                        x = prev[&x];
                    }
                    back.reverse();
                    return Some(back);
                }
                if v != from && !prev.contains_key(&v) {
                    prev.insert(v, u);
                    queue.push_back(v);
                }
            }
        }
        None
    }

    /// A walk from `entry` back to it that takes every step inside `comp` at least once (each
    /// untaken step in turn, the nearest first), if one of at most [`WALK_MAX`] steps does.
    fn walk_all(&self, comp: &[u32], entry: u32) -> Option<Vec<u32>> {
        let inside = |v: u32| comp.binary_search(&v).is_ok();
        let place = |v: u32| comp.binary_search(&v).expect("a state of the component");
        // The next untaken step of each state of the component.
        let mut taken = vec![0usize; comp.len()];
        let untaken = |taken: &[usize], v: u32| {
            let succ = self.successors(v);
            succ[taken[place(v)].min(succ.len())..].iter().any(|&w| inside(w))
        };
        let mut walk = Vec::new();
        let mut at = entry;
        loop {
            if walk.len() > WALK_MAX {
                return None;
            }
            let succ = self.successors(at);
            let i = &mut taken[place(at)];
            while *i < succ.len() && !inside(succ[*i]) {
                *i += 1;
            }
            if *i < succ.len() {
                at = succ[*i];
                *i += 1;
                walk.push(at);
                continue;
            }
            match self.path_in(comp, at, |v| untaken(&taken, v)) {
                Some(to) => {
                    at = *to.last().expect("a path has a step");
                    walk.extend(to);
                }
                None => break,
            }
        }
        if at != entry {
            walk.extend(self.path_in(comp, at, |v| v == entry)?);
        }
        Some(walk)
    }
}

/// What waits in a state: the messages in flight (by when they were sent) and the timers
/// pending (by node and generation). A cycle is fair when none of what waits at its start
/// still waits when it is back.
pub(super) struct Pending {
    messages: Vec<u64>,
    timers: Vec<(usize, u64)>,
}

impl Pending {
    /// What waits in `w`.
    pub(super) fn of<S: Setup>(w: &World<S>) -> Self {
        Pending {
            messages: w.flight.iter().map(|f| f.sent).collect(),
            timers: w
                .slots
                .iter()
                .enumerate()
                .flat_map(|(n, s)| s.timers.iter().map(move |(_, gen, _)| (n, gen)))
                .collect(),
        }
    }

    /// Nothing that waited here still waits in `later`.
    pub(super) fn all_gone(&self, later: &Pending) -> bool {
        !self.messages.iter().any(|m| later.messages.contains(m))
            && !self.timers.iter().any(|t| later.timers.contains(t))
    }
}

/// What the cycles gave.
pub(super) struct Judged {
    /// Components with a step inside.
    pub(super) cycles: u64,
    /// Components where an at-end property fails but no run that stays is fair.
    pub(super) unfair: u64,
    /// The at-end properties judged in at least one (bit `i`: the checker's `i`th).
    pub(super) judged: u64,
    /// The first violation: the shortest trace to a component and a fair cycle in it.
    pub(super) found: Option<Found>,
}

/// Judges the at-end properties in each cycle of `graph` (the graph the search built, its
/// states numbered as in `seen` and `tree`), in the order of their first states, and stops at
/// the first that breaks one in a fair cycle.
pub(super) fn judge<S: Setup>(
    setup: &S,
    bounds: &Bounds,
    sym: Option<&Symmetry<S::Node>>,
    d: &mut Driver,
    seen: &Seen,
    tree: &[Link],
    graph: &Graph,
) -> Result<Judged, ExploreError>
where
    S::Node: Clone + Hash + Sync,
    TimerOf<S>: Hash,
{
    let components = graph.components(tree.len());
    let mut out = Judged { cycles: components.len() as u64, unfair: 0, judged: 0, found: None };
    let bit =
        |property: &str| at_end(setup.checker().as_ref()).position(|p| p == property).map_or(0, |i| 1 << i);
    for comp in &components {
        let entry = comp[0];
        let (mut steps, mut choices) = path(tree, entry);
        let w = rebuild(setup, bounds, d, &steps, &choices)?;
        let mut violation = match w.judge_cycle(steps.len()) {
            Ok(mask) => {
                out.judged |= mask;
                continue;
            }
            Err(v) => v,
        };
        out.judged |= bit(violation.property);
        let round = |cycle: Option<Vec<u32>>, d: &mut Driver| match cycle {
            Some(c) => go_round(setup, bounds, sym, d, seen, &w, steps.len(), &c),
            None => Ok(None),
        };
        let lasso = match round(graph.path_in(comp, entry, |v| v == entry), d)? {
            Some(l) => Some(l),
            None => round(graph.walk_all(comp, entry), d)?,
        };
        let Some((more, codes)) = lasso else {
            out.unfair += 1;
            continue;
        };
        let prefix = steps.len();
        steps.extend(more);
        choices.extend(codes);
        violation.at = Time::from_millis_f64(steps.len() as f64);
        let Replayed { trace, diagram, cycle, .. } = replay(setup, bounds, &steps, &choices, Some(prefix))?;
        debug_assert!(cycle, "the lasso replays to the same cycle");
        out.found =
            Some(Found { violation, trace, diagram, steps, choices, dead_end: false, cycle: Some(prefix) });
        return Ok(out);
    }
    Ok(out)
}

/// The state `steps` lead to from the start, the handlers taking `choices` (a trace the
/// search took, so it breaks nothing).
fn rebuild<S: Setup>(
    setup: &S,
    bounds: &Bounds,
    d: &mut Driver,
    steps: &[Step],
    choices: &[u64],
) -> Result<World<S>, ExploreError>
where
    S::Node: Clone + Hash + Sync,
    TimerOf<S>: Hash,
{
    d.choices = Choices::named(choices[0]);
    let (mut w, _) = World::initial(setup, bounds, d)?;
    for (i, s) in steps.iter().enumerate() {
        d.choices = Choices::named(choices[i + 1]);
        let applied = w.apply(d, setup, *s, i + 1);
        debug_assert!(applied.is_ok(), "a trace the search took breaks nothing");
    }
    Ok(w)
}

/// The steps round a cycle, and their handlers' choices.
type Lasso = (Vec<Step>, Vec<u64>);

/// Goes round `cycle` (the states after `w`'s, `w`'s last) from `w`, reached in `depth`
/// steps, until it is back at the very state `w` (at most [`ROUNDS`] times): the steps and
/// their choices, if it gets back and the cycle is fair (see [`Pending`]). An error if a step
/// cannot be followed (see [`step_to`]): the cycle can then be judged neither way.
#[allow(clippy::too_many_arguments)]
fn go_round<S: Setup>(
    setup: &S,
    bounds: &Bounds,
    sym: Option<&Symmetry<S::Node>>,
    d: &mut Driver,
    seen: &Seen,
    w: &World<S>,
    depth: usize,
    cycle: &[u32],
) -> Result<Option<Lasso>, ExploreError>
where
    S::Node: Clone + Hash + Sync,
    TimerOf<S>: Hash,
{
    let start = w.identity(None);
    let waiting = Pending::of(w);
    let (mut steps, mut choices) = (Vec::new(), Vec::new());
    let mut at = w.fork();
    for _ in 0..ROUNDS {
        for &to in cycle {
            let Some((step, code, next)) =
                step_to(setup, bounds, sym, d, seen, &at, to, depth + steps.len() + 1)
            else {
                return Err(ExploreError::Unfollowed);
            };
            steps.push(step);
            choices.push(code);
            at = next;
        }
        if at.identity(None) == start {
            return Ok(waiting.all_gone(&Pending::of(&at)).then_some((steps, choices)));
        }
    }
    Ok(None)
}

/// The fair step (and its handlers' choices) that leads from `w` to state number `to`, taken:
/// one of `w`'s steps does whenever `w` is the state the search kept as `to`'s predecessor or
/// a renaming of it (every renaming of a state has its fingerprint) — unless the canonical
/// renaming gave up on its ties (past 720 orders of them) or, with ids inside the state, on
/// trying every renaming: then none may.
#[allow(clippy::too_many_arguments)]
fn step_to<S: Setup>(
    setup: &S,
    bounds: &Bounds,
    sym: Option<&Symmetry<S::Node>>,
    d: &mut Driver,
    seen: &Seen,
    w: &World<S>,
    to: u32,
    depth: usize,
) -> Option<(Step, u64, World<S>)>
where
    S::Node: Clone + Hash + Sync,
    TimerOf<S>: Hash,
{
    for step in w.steps(bounds).into_iter().filter(|s| s.fair(bounds)) {
        d.choices = Choices::search();
        loop {
            let mut next = w.fork();
            let applied = next.apply(d, setup, step, depth);
            if let (Ok(()), Some(code)) = (applied, d.choices.code()) {
                if seen.get(&Fp::of(next.fingerprint(sym))) == Some(&to) {
                    return Some((step, code, next));
                }
            }
            if !d.choices.advance() {
                break;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{Graph, Pending};

    fn graph(edges: &[(u32, u32)]) -> Graph {
        let mut g = Graph::default();
        for &(a, b) in edges {
            g.add(a, b);
        }
        g
    }

    #[test]
    fn components_are_the_cycles_and_only_them() {
        // 0 → 1 → 2 → 1 (a cycle), 2 → 3 → 3 (a state that leads to itself), 3 → 4 (none).
        let g = graph(&[(0, 1), (1, 2), (2, 1), (2, 3), (3, 3), (3, 4)]);
        assert_eq!(g.components(5), vec![vec![1, 2], vec![3]]);
        assert_eq!(graph(&[(0, 1), (1, 2)]).components(3), Vec::<Vec<u32>>::new());
    }

    #[test]
    fn the_shortest_cycle_and_a_walk_through_every_step() {
        // Two cycles through 0: 0 → 1 → 0 and 0 → 2 → 3 → 0.
        let g = graph(&[(0, 1), (0, 2), (1, 0), (2, 3), (3, 0)]);
        let comp = g.components(4).remove(0);
        assert_eq!(g.path_in(&comp, 0, |v| v == 0), Some(vec![1, 0]));
        assert_eq!(g.walk_all(&comp, 0), Some(vec![1, 0, 2, 3, 0]));
    }

    #[test]
    fn a_cycle_is_fair_when_nothing_waiting_at_its_start_still_waits_at_its_end() {
        let start = Pending { messages: vec![3, 4], timers: vec![(0, 7)] };
        assert!(start.all_gone(&Pending { messages: vec![5], timers: vec![(0, 8)] }));
        assert!(!start.all_gone(&Pending { messages: vec![4, 5], timers: vec![(0, 8)] }), "message 4 waits");
        assert!(!start.all_gone(&Pending { messages: vec![5], timers: vec![(0, 7)] }), "the timer waits");
    }
}
