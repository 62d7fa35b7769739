//! Ordered multicast: five ordering guarantees over one workload, compared side by side.
//!
//! **Workload** (the seed report's experiment). N peers exchange READY (the start barrier);
//! then each multicasts `--msgs` messages at random intervals (exponential, mean
//! `--interval-ms`), and every peer reports each delivery. A multicast is an operation: its
//! latency runs to its last delivery.
//!
//! **Variants** (`--order`):
//! - `unordered`: best effort — each message is sent once to every peer and delivered on
//!   arrival. No reliability, no order: the problem, shown. 1 message per destination.
//! - `fifo`: messages of one sender are delivered in the order it sent them. Every variant
//!   below sends over [`link::Link`]s — per-peer sequence numbers, cumulative ACKs,
//!   retransmission and a hold-back queue — so each message reaches each live peer exactly
//!   once and in the sender's order, on lossy, duplicating, reordering links. N−1 DATA per
//!   multicast, plus link ACKs.
//! - `causal`: a message is delivered only after everything that happened before it (vector
//!   clocks; Birman, Schiper & Stephenson, *Lightweight Causal and Atomic Group Multicast*,
//!   TOCS 1991). N−1 DATA per multicast plus ACKs; each carries an N-entry vector.
//! - `total-lamport`: every peer delivers in the same order of (Lamport timestamp, sender)
//!   (Lamport 1978, §"total ordering"; the ISIS-style acknowledgement scheme): a receiver
//!   broadcasts a timestamped acknowledgement, and a peer delivers the head of its queue once
//!   it has heard from every peer a timestamp at least as large. N−1 DATA + (N−1)² TS-ACK per
//!   multicast: O(N²). Needs every peer alive: a crashed peer stops delivery (safety holds).
//! - `total-sequencer`: the sender hands its message to the sequencer (the highest live id),
//!   which stamps a global sequence number and relays it to all (Kaashoek et al., *An
//!   Efficient Reliable Broadcast Protocol*, 1989; Défago, Schiper & Urbán, *Total Order
//!   Broadcast and Multicast Algorithms: Taxonomy and Survey*, 2004). 1 DATA + N−1 ORDER per
//!   multicast. The sequencer heartbeats; when it falls silent for three timeouts the
//!   next-highest peer takes over in a new epoch (epochs are unique per peer): it asks every
//!   peer — the silent sequencer too, which steps down if it was only slow — for the orders
//!   it knows and its own unordered messages, waits until each has answered or stayed silent
//!   for five timeouts, keeps every known order, puts senders' unordered messages back into
//!   the gaps before their successors, turns the other gaps into no-ops, and continues.
//!   Across sequencer crashes (one, or two in a row, before or after the start barrier, on
//!   lossy links) no message of a live sender is lost, delivered twice, or delivered out of
//!   the agreed order. Safety rests on the failure detector not suspecting a live sequencer
//!   (a synchronous network).
//!
//! Every reliable variant gives up on a peer whose link has acknowledged nothing for ten
//! timeouts (it has crashed) and stops sending to it. `total-lamport` then still waits for that
//! peer's timestamps: it does not tolerate crashes. No variant tolerates crash-*recovery*: a
//! restarted peer has lost its link state (`agora check total-sequencer --random-crashes 2`
//! shows it).
//!
//! **Properties** (checked on every run): *exactly-once* (always: a peer delivers a multicast
//! message at most once, and only a multicast one); the variant's order — *fifo-order*,
//! *causal-order*, *total-order* (the k-th delivery of every peer that is up is the same
//! message; non-uniform: a sequencer delivers its own order at once, so one that crashes may
//! have delivered a message the survivors never will) — always;
//! *all-delivered* (at end, when the run went quiet; without loss for `unordered`): every live
//! peer delivered every message of every peer that never crashed.

pub mod link;
mod order;
pub mod peer;
pub mod wire;

use agora_core::{
    at_end_not_judged, Checker, EndState, Lifecycle, NodeId, NotJudged, Property, PropertyKind, Protocol,
    Time, Violation,
};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// Which ordering guarantee.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Order {
    Unordered,
    Fifo,
    Causal,
    TotalLamport,
    TotalSequencer,
}

impl Order {
    pub const ALL: [Order; 5] =
        [Order::Unordered, Order::Fifo, Order::Causal, Order::TotalLamport, Order::TotalSequencer];

    pub fn name(self) -> &'static str {
        match self {
            Order::Unordered => "unordered",
            Order::Fifo => "fifo",
            Order::Causal => "causal",
            Order::TotalLamport => "total-lamport",
            Order::TotalSequencer => "total-sequencer",
        }
    }

    pub fn parse(s: &str) -> Option<Order> {
        Order::ALL.into_iter().find(|o| o.name() == s)
    }
}

/// A multicast message: its sender and the sender's sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MsgId {
    pub origin: u32,
    pub seq: u32,
}

impl MsgId {
    /// The operation this message is: from its multicast to its last delivery.
    pub fn op(self) -> u64 {
        (self.origin as u64) << 32 | self.seq as u64
    }
}

/// What multicast peers report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum McastObs {
    /// A multicast, with its causal past: how many messages of each sender the sender had
    /// delivered (its own: sent) before this one — ground truth for the causal checks.
    Multicast {
        id: MsgId,
        past: Vec<u32>,
    },
    Delivered {
        id: MsgId,
    },
}

/// Judges multicast runs.
pub struct McastChecker {
    order: Order,
    n: usize,
    /// The causal past of each multicast message.
    past: std::collections::HashMap<MsgId, Vec<u32>>,
    delivered: Vec<HashSet<MsgId>>,
    /// Per peer, per sender: messages delivered (for FIFO and causal checks).
    counts: Vec<Vec<u32>>,
    /// Per peer, its delivery sequence.
    sequences: Vec<Vec<MsgId>>,
    crashed: Vec<bool>,
}

impl McastChecker {
    pub fn new(order: Order, n: usize) -> Self {
        McastChecker {
            order,
            n,
            past: Default::default(),
            delivered: vec![HashSet::new(); n],
            counts: vec![vec![0; n]; n],
            sequences: vec![Vec::new(); n],
            crashed: vec![false; n],
        }
    }
}

impl<P: Protocol<Obs = McastObs> + ?Sized> Checker<P> for McastChecker {
    fn properties(&self) -> Vec<Property> {
        let mut p = vec![Property {
            name: "exactly-once",
            kind: PropertyKind::Always,
            description: "a peer delivers a multicast message at most once, and only multicast ones",
        }];
        match self.order {
            Order::Unordered => {}
            Order::Fifo => p.push(Property {
                name: "fifo-order",
                kind: PropertyKind::Always,
                description: "a sender's messages are delivered in the order sent",
            }),
            Order::Causal => p.push(Property {
                name: "causal-order",
                kind: PropertyKind::Always,
                description: "a message is delivered after everything that happened before it",
            }),
            Order::TotalLamport | Order::TotalSequencer => p.push(Property {
                name: "total-order",
                kind: PropertyKind::Always,
                description: "the k-th delivery of every peer still up is the same message",
            }),
        }
        p.push(Property {
            name: "all-delivered",
            kind: PropertyKind::AtEnd,
            description: "every live peer delivered every message of every never-crashed peer",
        });
        p
    }

    fn observe(&mut self, at: Time, node: NodeId, obs: &McastObs) -> Result<(), Violation> {
        let me = node.index();
        match obs {
            McastObs::Multicast { id, past } => {
                self.past.insert(*id, past.clone());
                Ok(())
            }
            McastObs::Delivered { id } => {
                let v = |p: &'static str, d: String| Err(Violation::new(p, Some(node), at, d));
                let Some(past) = self.past.get(id) else {
                    return v("exactly-once", format!("delivered {id:?}, which nobody multicast"));
                };
                if !self.delivered[me].insert(*id) {
                    return v("exactly-once", format!("delivered {id:?} twice"));
                }
                let o = id.origin as usize;
                match self.order {
                    Order::Fifo if self.counts[me][o] != id.seq => {
                        return v(
                            "fifo-order",
                            format!("delivered {id:?} after {} of its sender's", self.counts[me][o]),
                        );
                    }
                    Order::Causal => {
                        if let Some(q) = (0..self.n).find(|&q| self.counts[me][q] < past[q]) {
                            return v(
                                "causal-order",
                                format!("delivered {id:?} before message {} of node {q}, which happened before it", past[q] - 1),
                            );
                        }
                    }
                    Order::TotalLamport | Order::TotalSequencer => {
                        let k = self.sequences[me].len();
                        let other = (0..self.n).find(|&q| {
                            q != me && !self.crashed[q] && self.sequences[q].get(k).is_some_and(|x| x != id)
                        });
                        if let Some(q) = other {
                            return v(
                                "total-order",
                                format!(
                                    "delivery #{k} is {id:?}, node {q}'s #{k} was {:?}",
                                    self.sequences[q][k]
                                ),
                            );
                        }
                        self.sequences[me].push(*id);
                    }
                    _ => {}
                }
                self.counts[me][o] += 1;
                Ok(())
            }
        }
    }

    fn lifecycle(&mut self, _: Time, node: NodeId, event: Lifecycle) {
        if event == Lifecycle::Crashed {
            self.crashed[node.index()] = true;
        }
    }

    fn not_judged(&self, end: &EndState<'_>) -> Vec<(&'static str, NotJudged)> {
        let why = if !end.quiescent {
            NotJudged::Unended
        } else if self.order == Order::Unordered && !end.network_reliable {
            NotJudged::Unreliable
        } else {
            return Vec::new();
        };
        at_end_not_judged(&Checker::<P>::properties(self), why)
    }

    fn finish(&mut self, end: &EndState<'_>) -> Vec<Violation> {
        if !end.quiescent || (self.order == Order::Unordered && !end.network_reliable) {
            return Vec::new();
        }
        let mut expected: Vec<&MsgId> =
            self.past.keys().filter(|id| !self.crashed[id.origin as usize]).collect();
        expected.sort();
        for p in (0..self.n).filter(|&p| end.live[p] && !self.crashed[p]) {
            if let Some(id) = expected.iter().find(|id| !self.delivered[p].contains(id)) {
                return vec![Violation::new(
                    "all-delivered",
                    Some(NodeId(p as u32)),
                    end.at,
                    format!(
                        "never delivered {id:?} ({} of {} delivered)",
                        self.delivered[p].len(),
                        expected.len()
                    ),
                )];
            }
        }
        Vec::new()
    }
}

/// The seed report's comparison and more, from every peer's delivery sequence.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Analysis {
    /// Positions k at which two peers' k-th deliveries differ.
    pub disagreements: u64,
    /// Deliveries of a sender's message before an earlier one of the same sender.
    pub fifo_violations: u64,
    /// Deliveries before a message that happened before them.
    pub causal_violations: u64,
    /// Send-to-delivery latencies, in ms.
    pub latencies_ms: Vec<f64>,
}

/// Analyses a run's observations: `(time ms, peer, observation)`.
pub fn analyse(n: usize, obs: &[(f64, u32, McastObs)]) -> Analysis {
    let mut sent_at = std::collections::HashMap::new();
    let mut past = std::collections::HashMap::new();
    let mut seqs: Vec<Vec<MsgId>> = vec![Vec::new(); n];
    let mut counts = vec![vec![0u32; n]; n];
    let mut a = Analysis::default();
    for (t, peer, o) in obs {
        match o {
            McastObs::Multicast { id, past: p } => {
                sent_at.insert(*id, *t);
                past.insert(*id, p.clone());
            }
            McastObs::Delivered { id } => {
                let me = *peer as usize;
                if counts[me][id.origin as usize] != id.seq {
                    a.fifo_violations += 1;
                }
                if let Some(p) = past.get(id) {
                    if (0..n).any(|q| counts[me][q] < p[q]) {
                        a.causal_violations += 1;
                    }
                }
                counts[me][id.origin as usize] += 1;
                seqs[me].push(*id);
                if let Some(s) = sent_at.get(id) {
                    a.latencies_ms.push(t - s);
                }
            }
        }
    }
    // Peers that delivered fewer messages (a crashed peer, a lossy run) are compared on the
    // positions they reached; missing deliveries are counted apart.
    let longest = seqs.iter().map(Vec::len).max().unwrap_or(0);
    for k in 0..longest {
        let at_k: HashSet<&MsgId> = seqs.iter().filter_map(|s| s.get(k)).collect();
        if at_k.len() > 1 {
            a.disagreements += 1;
        }
    }
    a
}

/// The q-quantile of `v` (sorted in place), 0 for none.
pub fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}
