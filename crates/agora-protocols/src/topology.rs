//! Topologies for protocols that talk only to neighbours: complete, ring, grid and random
//! K-regular graphs, stored compactly (CSR) so a million-node graph costs tens of megabytes.
//!
//! A graph is a pure function of (kind, nodes, seed), so every process of a TCP cluster builds
//! the same one.

use agora_core::{NodeId, Rng};
use rand::seq::SliceRandom;
use rand::{Rng as _, SeedableRng};
use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

/// Which graph to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopologyKind {
    /// Every node is a neighbour of every other.
    Complete,
    /// A bidirectional ring: i is linked to i-1 and i+1.
    Ring,
    /// A square-ish grid, row-major, width ceil(sqrt(N)); 4-neighbourhood, no wrap-around.
    Grid,
    /// A uniformly random simple K-regular graph.
    Regular(u32),
}

impl FromStr for TopologyKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "complete" => Ok(TopologyKind::Complete),
            "ring" => Ok(TopologyKind::Ring),
            "grid" => Ok(TopologyKind::Grid),
            _ => match s.strip_prefix("regular:").map(str::parse::<u32>) {
                Some(Ok(k)) if k > 0 => Ok(TopologyKind::Regular(k)),
                _ => Err(format!(
                    "unknown topology `{s}`: expected complete, ring, grid or regular:K (K >= 1)"
                )),
            },
        }
    }
}

impl fmt::Display for TopologyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopologyKind::Complete => f.write_str("complete"),
            TopologyKind::Ring => f.write_str("ring"),
            TopologyKind::Grid => f.write_str("grid"),
            TopologyKind::Regular(k) => write!(f, "regular:{k}"),
        }
    }
}

/// An undirected graph over nodes `0..n`.
#[derive(Clone, Debug)]
pub enum Graph {
    /// Implicit: no adjacency is stored.
    Complete {
        /// The number of nodes.
        n: u32,
    },
    /// Compressed sparse rows: the neighbours of i are `adj[offsets[i]..offsets[i + 1]]`.
    Csr {
        /// `n + 1` offsets into `adj`, from 0 to `adj.len()`.
        offsets: Vec<u32>,
        /// Every node's neighbours, one node after another, each list in increasing order.
        adj: Vec<u32>,
    },
}

impl Graph {
    /// Builds the graph; fails with a one-line reason when it cannot exist.
    pub fn build(kind: TopologyKind, n: usize, seed: u64) -> Result<Graph, String> {
        if n == 0 {
            return Err("a topology needs at least one node".into());
        }
        let n32 = u32::try_from(n).map_err(|_| format!("{n} nodes is more than a topology supports"))?;
        let edges: Vec<(u32, u32)> = match kind {
            TopologyKind::Complete => return Ok(Graph::Complete { n: n32 }),
            TopologyKind::Ring => match n32 {
                1 => Vec::new(),
                2 => vec![(0, 1)],
                _ => (0..n32).map(|i| (i, (i + 1) % n32)).collect(),
            },
            TopologyKind::Grid => {
                let w = (n as f64).sqrt().ceil() as u32;
                let mut e = Vec::new();
                for i in 0..n32 {
                    if (i + 1) % w != 0 && i + 1 < n32 {
                        e.push((i, i + 1));
                    }
                    if i + w < n32 {
                        e.push((i, i + w));
                    }
                }
                e
            }
            TopologyKind::Regular(k) => random_regular(n32, k, seed)?,
        };
        Ok(Graph::from_edges(n32, &edges))
    }

    fn from_edges(n: u32, edges: &[(u32, u32)]) -> Graph {
        let mut degree = vec![0u32; n as usize + 1];
        for &(a, b) in edges {
            degree[a as usize] += 1;
            degree[b as usize] += 1;
        }
        let mut offsets = vec![0u32; n as usize + 1];
        for i in 0..n as usize {
            offsets[i + 1] = offsets[i] + degree[i];
        }
        let mut fill = offsets.clone();
        let mut adj = vec![0u32; offsets[n as usize] as usize];
        for &(a, b) in edges {
            adj[fill[a as usize] as usize] = b;
            fill[a as usize] += 1;
            adj[fill[b as usize] as usize] = a;
            fill[b as usize] += 1;
        }
        for i in 0..n as usize {
            adj[offsets[i] as usize..offsets[i + 1] as usize].sort_unstable();
        }
        Graph::Csr { offsets, adj }
    }

    /// The number of nodes.
    pub fn nodes(&self) -> usize {
        match self {
            Graph::Complete { n } => *n as usize,
            Graph::Csr { offsets, .. } => offsets.len() - 1,
        }
    }

    /// The number of neighbours of node `i`, which must be a node of the graph.
    pub fn degree(&self, i: NodeId) -> usize {
        match self {
            Graph::Complete { n } => *n as usize - 1,
            Graph::Csr { offsets, .. } => (offsets[i.index() + 1] - offsets[i.index()]) as usize,
        }
    }

    /// The neighbours of `i`, in increasing order.
    pub fn neighbours(&self, i: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        let (range, list): (std::ops::Range<u32>, &[u32]) = match self {
            Graph::Complete { n } => (0..*n, &[]),
            Graph::Csr { offsets, adj } => {
                (0..0, &adj[offsets[i.index()] as usize..offsets[i.index() + 1] as usize])
            }
        };
        range.filter(move |j| *j != i.0).chain(list.iter().copied()).map(NodeId)
    }

    /// Nodes reachable from `from` through nodes for which `usable` holds (`from` included if
    /// usable).
    pub fn reachable(&self, from: NodeId, usable: impl Fn(NodeId) -> bool) -> Vec<bool> {
        let mut seen = vec![false; self.nodes()];
        if !usable(from) {
            return seen;
        }
        let mut stack = vec![from];
        seen[from.index()] = true;
        while let Some(v) = stack.pop() {
            for w in self.neighbours(v) {
                if !seen[w.index()] && usable(w) {
                    seen[w.index()] = true;
                    stack.push(w);
                }
            }
        }
        seen
    }
}

/// A random simple K-regular graph: the configuration model (random pairing of N·K stubs),
/// then degree-preserving edge switches that remove every self-loop and parallel edge.
fn random_regular(n: u32, k: u32, seed: u64) -> Result<Vec<(u32, u32)>, String> {
    if k >= n {
        return Err(format!("regular:{k} needs more than {k} nodes (have {n})"));
    }
    if (n as u64 * k as u64) % 2 != 0 {
        return Err(format!("regular:{k} on {n} nodes is impossible: N*K must be even"));
    }
    if k > (n - 1) / 2 {
        // Dense: the complement of a sparse random regular graph is random regular too, and
        // edge switching works best on sparse graphs.
        let sparse = random_regular_sparse(n, n - 1 - k, seed)?;
        let present: HashSet<(u32, u32)> = sparse.into_iter().collect();
        let mut edges = Vec::with_capacity((n as usize * k as usize) / 2);
        for a in 0..n {
            for b in a + 1..n {
                if !present.contains(&(a, b)) {
                    edges.push((a, b));
                }
            }
        }
        return Ok(edges);
    }
    random_regular_sparse(n, k, seed)
}

fn random_regular_sparse(n: u32, k: u32, seed: u64) -> Result<Vec<(u32, u32)>, String> {
    if k == 0 {
        return Ok(Vec::new());
    }
    let mut rng = Rng::seed_from_u64(seed ^ 0x7265_6775_6c61_7200);
    let mut stubs: Vec<u32> = (0..n).flat_map(|i| std::iter::repeat_n(i, k as usize)).collect();
    stubs.shuffle(&mut rng);
    let mut edges: Vec<(u32, u32)> =
        stubs.chunks_exact(2).map(|p| (p[0].min(p[1]), p[0].max(p[1]))).collect();
    drop(stubs);
    let key = |(a, b): (u32, u32)| (a as u64) << 32 | b as u64;
    let mut present: HashSet<u64> = HashSet::with_capacity(edges.len());
    let mut bad: Vec<usize> = Vec::new();
    for (i, &e) in edges.iter().enumerate() {
        if e.0 == e.1 || !present.insert(key(e)) {
            bad.push(i);
        }
    }
    // Each switch picks a random partner edge and rewires (a,b),(c,d) into (a,c),(b,d) or
    // (a,d),(b,c), keeping every degree. Bounded: give up after many fruitless tries.
    let mut tries = 0u64;
    while let Some(&i) = bad.last() {
        tries += 1;
        if tries > 1_000_000 + 1_000 * edges.len() as u64 {
            return Err(format!("could not build a simple regular:{k} graph on {n} nodes"));
        }
        let j = rng.random_range(0..edges.len());
        if j == i || bad.contains(&j) {
            continue;
        }
        let ((a, b), (c, d)) = (edges[i], edges[j]);
        let (e1, e2) = if rng.random_bool(0.5) { ((a, c), (b, d)) } else { ((a, d), (b, c)) };
        let norm = |(x, y): (u32, u32)| (x.min(y), x.max(y));
        let (e1, e2) = (norm(e1), norm(e2));
        if e1.0 == e1.1
            || e2.0 == e2.1
            || e1 == e2
            || present.contains(&key(e1))
            || present.contains(&key(e2))
        {
            continue;
        }
        // Edge i was a duplicate of a present edge or a loop: it is not itself in `present`
        // unless it is the first copy, which never lands in `bad`.
        present.remove(&key(edges[j]));
        present.insert(key(e1));
        present.insert(key(e2));
        edges[i] = e1;
        edges[j] = e2;
        bad.pop();
    }
    Ok(edges)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn simple_and_regular(g: &Graph, k: usize) {
        for i in 0..g.nodes() as u32 {
            let nb: Vec<_> = g.neighbours(NodeId(i)).collect();
            assert_eq!(nb.len(), k, "degree of {i}");
            assert!(!nb.contains(&NodeId(i)), "self-loop at {i}");
            assert!(nb.windows(2).all(|w| w[0] < w[1]), "parallel edge at {i}");
            for j in nb {
                assert!(g.neighbours(j).any(|x| x == NodeId(i)), "asymmetric edge {i}-{j}");
            }
        }
    }

    #[test]
    fn random_regular_graphs_are_simple_and_regular() {
        for (n, k) in [(10, 3), (100, 8), (1000, 8), (9, 8), (50, 1)] {
            let g = Graph::build(TopologyKind::Regular(k), n, 42).unwrap();
            simple_and_regular(&g, k as usize);
        }
    }

    #[test]
    fn regular_graphs_depend_on_the_seed_only() {
        let a = Graph::build(TopologyKind::Regular(4), 200, 1).unwrap();
        let b = Graph::build(TopologyKind::Regular(4), 200, 1).unwrap();
        let c = Graph::build(TopologyKind::Regular(4), 200, 2).unwrap();
        let nb = |g: &Graph| g.neighbours(NodeId(0)).collect::<Vec<_>>();
        assert_eq!(nb(&a), nb(&b));
        assert!((0..200).any(|i| a.neighbours(NodeId(i)).ne(c.neighbours(NodeId(i)))));
    }

    #[test]
    fn impossible_graphs_are_refused() {
        assert!(Graph::build(TopologyKind::Regular(3), 5, 0).is_err());
        assert!(Graph::build(TopologyKind::Regular(5), 5, 0).is_err());
        assert!(Graph::build(TopologyKind::Ring, 0, 0).is_err());
        assert!("regular:0".parse::<TopologyKind>().is_err());
        assert!("star".parse::<TopologyKind>().is_err());
    }

    #[test]
    fn ring_grid_and_complete_shapes() {
        simple_and_regular(&Graph::build(TopologyKind::Ring, 7, 0).unwrap(), 2);
        simple_and_regular(&Graph::build(TopologyKind::Complete, 5, 0).unwrap(), 4);
        let g = Graph::build(TopologyKind::Grid, 9, 0).unwrap();
        assert_eq!(g.degree(NodeId(4)), 4);
        assert_eq!(g.degree(NodeId(0)), 2);
        let g = Graph::build(TopologyKind::Grid, 7, 0).unwrap();
        assert!(g.reachable(NodeId(0), |_| true).iter().all(|r| *r));
        let r = Graph::build(TopologyKind::Ring, 6, 0).unwrap();
        let reach = r.reachable(NodeId(0), |n| n != NodeId(2) && n != NodeId(4));
        assert_eq!(reach, [true, true, false, false, false, true]);
    }
}
