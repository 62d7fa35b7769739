//! The network model of a run: latency sampling, loss, duplication, reordering, FIFO links and
//! partitions, all drawing from the simulator's seeded random source.
//!
//! There is no object per link: latency comes from the default distribution, a region matrix or
//! a short list of overrides; FIFO keeps a map entry only for links that carried a message.

use crate::faults::{Faults, Latency, OneWaySpec, PartitionSpec};
use crate::nodeset::NodeSet;
use agora_core::{NodeId, Rng, Time};
use rand::Rng as _;
use rand_distr::{Distribution, Exp, LogNormal};
use std::collections::HashMap;

/// A latency distribution ready to sample, in nanoseconds.
#[derive(Clone, Debug)]
enum Sampler {
    Constant(u64),
    Uniform(f64, f64),
    Exp(Exp<f64>),
    LogNormal(LogNormal<f64>),
}

impl Sampler {
    fn new(l: &Latency) -> Sampler {
        match *l {
            Latency::Constant { ms } => Sampler::Constant((ms * 1e6).round() as u64),
            Latency::Uniform { min_ms, max_ms } => Sampler::Uniform(min_ms * 1e6, max_ms * 1e6),
            Latency::Exponential { mean_ms } if mean_ms > 0.0 => {
                Sampler::Exp(Exp::new(1.0 / (mean_ms * 1e6)).expect("validated rate"))
            }
            Latency::Exponential { .. } => Sampler::Constant(0),
            Latency::LogNormal { median_ms, sigma } => Sampler::LogNormal(
                LogNormal::new((median_ms * 1e6).ln(), sigma).expect("validated lognormal"),
            ),
        }
    }

    fn sample(&self, rng: &mut Rng) -> u64 {
        let ns = match self {
            Sampler::Constant(ns) => return *ns,
            Sampler::Uniform(a, b) if a >= b => *a,
            Sampler::Uniform(a, b) => rng.random_range(*a..*b),
            Sampler::Exp(d) => d.sample(rng),
            Sampler::LogNormal(d) => d.sample(rng),
        };
        // Cap a single sample at one hour so a heavy tail cannot overflow virtual time.
        ns.clamp(0.0, 3.6e12) as u64
    }
}

struct RegionModel {
    count: usize,
    /// Region of each node when assigned explicitly; otherwise `i % count`.
    of_node: Option<Vec<u16>>,
    base_ns: Vec<Vec<u64>>,
    jitter: Sampler,
}

impl RegionModel {
    fn region(&self, n: NodeId) -> usize {
        match &self.of_node {
            Some(v) => v[n.index()] as usize,
            None => n.index() % self.count,
        }
    }
}

/// A partition in force.
enum Cut {
    Symmetric(Vec<NodeSet>),
    OneWay(NodeSet, NodeSet),
}

impl Cut {
    fn blocks(&self, from: NodeId, to: NodeId) -> bool {
        match self {
            Cut::Symmetric(groups) => {
                let g = |n| groups.iter().position(|s| s.contains(n)).unwrap_or(groups.len());
                g(from) != g(to)
            }
            Cut::OneWay(a, b) => a.contains(from) && b.contains(to),
        }
    }
}

/// What the network does with one message.
pub(crate) enum Fate {
    /// Lost to a partition.
    Partitioned,
    /// Lost to random loss.
    Lost,
    /// Delivered at this time, and a duplicate at the second time if any.
    Deliver(Time, Option<Time>),
}

pub(crate) struct Net {
    default: Sampler,
    links: Vec<(NodeSet, NodeSet, Sampler)>,
    regions: Option<RegionModel>,
    loss: f64,
    duplicate: f64,
    reorder: f64,
    reorder_delay_ns: f64,
    /// Last delivery time per link, only when FIFO links are asked for.
    fifo: Option<HashMap<(u32, u32), Time>>,
    /// Partitions in force, by their index in the fault configuration.
    cuts: Vec<(usize, Cut)>,
}

impl Net {
    pub(crate) fn new(faults: &Faults, nodes: usize) -> Net {
        let n = &faults.network;
        let regions = n.regions.as_ref().map(|r| RegionModel {
            count: r.names.len(),
            of_node: r.nodes.as_ref().map(|sets| {
                let mut v = vec![0u16; nodes];
                for (i, s) in sets.iter().enumerate() {
                    for id in s.iter() {
                        v[id.index()] = i as u16;
                    }
                }
                v
            }),
            base_ns: r
                .latency_ms
                .iter()
                .map(|row| row.iter().map(|ms| (ms * 1e6).round() as u64).collect())
                .collect(),
            jitter: Sampler::new(&r.jitter),
        });
        Net {
            default: Sampler::new(&n.latency),
            links: n.links.iter().map(|l| (l.from.clone(), l.to.clone(), Sampler::new(&l.latency))).collect(),
            regions,
            loss: n.loss,
            duplicate: n.duplicate,
            reorder: n.reorder,
            reorder_delay_ns: n.reorder_delay_ms * 1e6,
            fifo: n.fifo.then(HashMap::new),
            cuts: Vec::new(),
        }
    }

    pub(crate) fn start_partition(&mut self, index: usize, p: &PartitionSpec) {
        self.cuts.push((index, Cut::Symmetric(p.groups.clone())));
    }

    pub(crate) fn start_one_way(&mut self, index: usize, p: &OneWaySpec) {
        self.cuts.push((index, Cut::OneWay(p.from.clone(), p.to.clone())));
    }

    /// Whether some partition is in force now.
    pub(crate) fn any_cut(&self) -> bool {
        !self.cuts.is_empty()
    }

    pub(crate) fn heal(&mut self, index: usize) {
        self.cuts.retain(|(i, _)| *i != index);
    }

    fn latency(&self, from: NodeId, to: NodeId, rng: &mut Rng) -> u64 {
        if let Some((_, _, s)) = self.links.iter().find(|(a, b, _)| a.contains(from) && b.contains(to)) {
            return s.sample(rng);
        }
        if let Some(r) = &self.regions {
            return r.base_ns[r.region(from)][r.region(to)] + r.jitter.sample(rng);
        }
        self.default.sample(rng)
    }

    fn arrival(&mut self, from: NodeId, to: NodeId, now: Time, rng: &mut Rng) -> Time {
        let mut ns = self.latency(from, to, rng);
        if self.reorder > 0.0 && rng.random_bool(self.reorder) {
            ns += rng.random_range(0.0..=self.reorder_delay_ns) as u64;
        }
        let mut at = Time(now.0.saturating_add(ns));
        if let Some(last) = &mut self.fifo {
            let l = last.entry((from.0, to.0)).or_insert(Time::ZERO);
            at = at.max(*l);
            *l = at;
        }
        at
    }

    /// Decides the fate of a message sent now from `from` to `to`.
    pub(crate) fn route(&mut self, from: NodeId, to: NodeId, now: Time, rng: &mut Rng) -> Fate {
        if self.cuts.iter().any(|(_, c)| c.blocks(from, to)) {
            return Fate::Partitioned;
        }
        if self.loss > 0.0 && rng.random_bool(self.loss) {
            return Fate::Lost;
        }
        let at = self.arrival(from, to, now, rng);
        let dup = (self.duplicate > 0.0 && rng.random_bool(self.duplicate))
            .then(|| self.arrival(from, to, now, rng));
        Fate::Deliver(at, dup)
    }

    /// Whether a message from `from` to `to` would cross a partition now.
    pub(crate) fn partitioned(&self, from: NodeId, to: NodeId) -> bool {
        self.cuts.iter().any(|(_, c)| c.blocks(from, to))
    }
}
