//! `total-lamport`: every peer delivers in the same order of (Lamport timestamp, sender,
//! sequence number). A receiver broadcasts a timestamped acknowledgement; a peer delivers the
//! head of its queue once every other peer has shown it a timestamp at least as large
//! (Lamport 1978). Needs every peer alive.

use super::Rule;
use crate::multicast::peer::{Core, Peer};
use crate::multicast::wire::{Body, Data};
use crate::multicast::MsgId;
use agora_core::{Context, NodeId};
use std::collections::BTreeMap;

pub(super) struct TotalLamport {
    /// The Lamport clock.
    clock: u64,
    /// Messages not yet delivered, by (timestamp, sender, sequence number).
    queue: BTreeMap<(u64, u32, u32), Data>,
    /// The largest timestamp seen from each peer.
    latest: Vec<u64>,
}

impl TotalLamport {
    pub(super) fn new(n: usize) -> Self {
        TotalLamport { clock: 0, queue: BTreeMap::new(), latest: vec![0; n] }
    }

    /// A timestamp `ts` from `from`: advances the clock and what `from` is known to have seen.
    fn witness(&mut self, from: NodeId, ts: u64) {
        self.clock = self.clock.max(ts) + 1;
        self.latest[from.index()] = self.latest[from.index()].max(ts);
    }

    /// Delivers the head of the queue while every other peer has shown a timestamp at least
    /// as large as its own.
    fn try_deliver(&mut self, core: &mut Core, ctx: &mut Context<'_, Peer>) {
        while let Some((&(ts, _, _), _)) = self.queue.first_key_value() {
            if !(0..core.n).all(|p| p == core.id.index() || self.latest[p] >= ts) {
                return;
            }
            let (_, d) = self.queue.pop_first().expect("peeked");
            core.deliver(ctx, &d);
        }
    }
}

impl Rule for TotalLamport {
    fn multicast(&mut self, core: &mut Core, ctx: &mut Context<'_, Peer>, id: MsgId, _past: Vec<u32>) {
        self.clock += 1;
        let d = Data { id, ts: self.clock, vc: Vec::new() };
        self.queue.insert((d.ts, id.origin, id.seq), d.clone());
        core.send_all(ctx, Body::Data(d));
        self.try_deliver(core, ctx);
    }

    fn receive(&mut self, core: &mut Core, ctx: &mut Context<'_, Peer>, from: NodeId, body: Body) {
        match body {
            Body::Data(d) => {
                self.witness(from, d.ts);
                self.queue.insert((d.ts, d.id.origin, d.id.seq), d);
                let ts = self.clock;
                core.send_all(ctx, Body::TsAck { ts });
                self.try_deliver(core, ctx);
            }
            Body::TsAck { ts } => {
                self.witness(from, ts);
                self.try_deliver(core, ctx);
            }
            _ => {}
        }
    }
}
