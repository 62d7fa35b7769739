//! `total-sequencer`: a sender hands its message to the sequencer (the highest peer not
//! suspected), which numbers it and relays the number to all; every peer delivers in number
//! order. The sequencer heartbeats; when it falls silent the next-highest peer takes over in
//! a new epoch, gathering what the survivors know (see [`super::super`] for the whole story).

use super::Rule;
use crate::multicast::peer::{Core, Peer};
use crate::multicast::wire::{Body, Data, Timer, Wire};
use crate::multicast::MsgId;
use agora_core::{Context, NodeId};
use std::collections::{BTreeMap, HashMap};

/// Collection periods of silence after which a new sequencer stops waiting for a peer.
const SILENT_PERIODS: u32 = 5;

/// The sequencer is suspected after this many timeouts without a word from it (it heartbeats
/// every quarter timeout): the failover's safety rests on not suspecting a live sequencer.
const WATCH_TIMEOUTS: u32 = 3;

/// Epoch numbers are `round * EPOCH_IDS + sequencer id`.
const EPOCH_IDS: u64 = 1 << 16;

/// Known orders: global sequence number → message, or `None` for a gap nobody alive knew.
type Orders = BTreeMap<u64, Option<Data>>;

pub(super) struct Sequencer {
    epoch: u64,
    /// Peers heard from since the last check.
    heard: Vec<bool>,
    orders: Orders,
    /// The number the sequencer gives next.
    next_gseq: u64,
    /// The number delivered next.
    next_deliver: u64,
    /// This peer's messages not yet seen ordered (resent to a new sequencer).
    unordered_own: BTreeMap<u32, Data>,
    /// A takeover under way: its epoch, and the peers whose state is still awaited.
    collecting: Option<(u64, Vec<bool>)>,
    /// Messages to number once a takeover completes.
    to_assign: Vec<Data>,
    /// Consecutive collection periods in which nothing was heard from each peer.
    silent: Vec<u32>,
}

/// The sequencer: the highest peer not suspected of a crash.
fn sequencer(core: &Core) -> NodeId {
    NodeId((0..core.n as u32).rev().find(|p| !core.suspected[*p as usize]).unwrap_or(core.id.0))
}

impl Sequencer {
    pub(super) fn new(n: usize) -> Self {
        Sequencer {
            epoch: 0,
            heard: vec![false; n],
            orders: BTreeMap::new(),
            next_gseq: 0,
            next_deliver: 0,
            unordered_own: BTreeMap::new(),
            collecting: None,
            to_assign: Vec::new(),
            silent: vec![0; n],
        }
    }

    fn is_ordered(&self, id: MsgId) -> bool {
        self.orders.values().flatten().any(|x| x.id == id)
    }

    /// Every known order, to send.
    fn known_orders(&self) -> Vec<(u64, Option<Data>)> {
        self.orders.iter().map(|(g, d)| (*g, d.clone())).collect()
    }

    fn own_unordered(&self) -> Vec<Data> {
        self.unordered_own.values().cloned().collect()
    }

    /// Keeps `d` to number once the takeover completes.
    fn hold(&mut self, d: Data) {
        if !self.to_assign.iter().any(|x| x.id == d.id) {
            self.to_assign.push(d);
        }
    }

    /// `from` leads epoch `epoch` now: everyone above it is gone.
    fn follow(&mut self, core: &mut Core, epoch: u64, from: NodeId) {
        self.epoch = epoch;
        for p in from.index() + 1..core.n {
            core.suspected[p] = true;
        }
    }

    /// Sequencer: number a message and relay it to everyone. While a takeover gathers state,
    /// numbering waits: the new numbers must come after every number the survivors know.
    fn assign(&mut self, core: &mut Core, ctx: &mut Context<'_, Peer>, d: Data) {
        if self.collecting.is_some() {
            self.hold(d);
            return;
        }
        if self.is_ordered(d.id) || core.delivered_ids.contains(&d.id) {
            return; // already ordered (a resend after a change of sequencer)
        }
        let gseq = self.next_gseq;
        self.next_gseq += 1;
        self.orders.insert(gseq, Some(d.clone()));
        core.send_all(ctx, Body::Order { epoch: self.epoch, gseq, data: d });
        self.try_deliver(core, ctx);
    }

    /// Delivers in number order while the next number is known (a gap is skipped).
    fn try_deliver(&mut self, core: &mut Core, ctx: &mut Context<'_, Peer>) {
        while let Some(entry) = self.orders.get(&self.next_deliver).cloned() {
            self.next_deliver += 1;
            if let Some(d) = entry {
                if d.id.origin == core.id.0 {
                    self.unordered_own.remove(&d.id.seq);
                }
                core.deliver(ctx, &d);
            }
        }
    }

    /// This peer becomes the sequencer of a new epoch: gather what the survivors know.
    fn take_over(&mut self, core: &mut Core, ctx: &mut Context<'_, Peer>) {
        // Epochs are unique per sequencer (round, id) and totally ordered, so two peers that
        // take over at once never share one; peers follow only the newest epoch they saw.
        self.epoch = (self.epoch / EPOCH_IDS + 1) * EPOCH_IDS + core.id.0 as u64;
        // Heartbeat from now on, so that nobody suspects us while we gather state.
        ctx.set_timer(Timer::Beat, core.timeout / 4);
        // Ask everyone, the suspected sequencer too: a slow sequencer is not a dead one, and
        // what it ordered must not be skipped. Only silence, for several timeouts, excludes.
        let waiting: Vec<bool> = (0..core.n).map(|p| p != core.id.index()).collect();
        self.collecting = Some((self.epoch, waiting));
        let epoch = self.epoch;
        for p in core.others().collect::<Vec<_>>() {
            core.send(ctx, p, Body::StateReq { epoch });
        }
        self.heard = vec![false; core.n];
        self.silent = vec![0; core.n];
        ctx.set_timer(Timer::Collect, core.timeout);
        self.finish_takeover_if_ready(core, ctx);
    }

    fn finish_takeover_if_ready(&mut self, core: &mut Core, ctx: &mut Context<'_, Peer>) {
        let Some((epoch, waiting)) = &self.collecting else { return };
        if waiting.iter().any(|w| *w) {
            return;
        }
        let epoch = *epoch;
        self.collecting = None;
        let candidates = self.candidates();
        self.to_assign = fill_gaps(&mut self.orders, candidates);
        self.next_gseq = self.orders.keys().next_back().map_or(0, |k| k + 1);
        core.send_all(ctx, Body::NewOrder { epoch, orders: self.known_orders() });
        self.try_deliver(core, ctx);
        // Our own messages that were never ordered, and those that came in meanwhile.
        let mut later = self.own_unordered();
        later.append(&mut self.to_assign);
        for d in later {
            self.assign(core, ctx, d);
        }
        ctx.set_timer(Timer::Beat, core.timeout / 4);
    }

    /// What may go into a gap: this peer's unordered messages, then those held.
    fn candidates(&mut self) -> Vec<Data> {
        let mut candidates = self.own_unordered();
        candidates.append(&mut self.to_assign);
        candidates
    }

    fn merge_orders(&mut self, orders: Vec<(u64, Option<Data>)>) {
        for (g, d) in orders {
            match (self.orders.get(&g), d) {
                (Some(Some(_)), _) => {}
                (_, Some(d)) => {
                    self.orders.insert(g, Some(d));
                }
                (None, None) => {
                    self.orders.insert(g, None);
                }
                (Some(None), None) => {}
            }
        }
    }

    /// A message handed to the sequencer.
    fn on_data(&mut self, core: &mut Core, ctx: &mut Context<'_, Peer>, d: Data) {
        if sequencer(core) == core.id {
            self.assign(core, ctx, d);
        } else {
            // Sent to us as sequencer while we were not: pass it on.
            let s = sequencer(core);
            core.send(ctx, s, Body::Data(d));
        }
    }

    fn on_state_req(&mut self, core: &mut Core, ctx: &mut Context<'_, Peer>, from: NodeId, epoch: u64) {
        if epoch >= self.epoch {
            self.follow(core, epoch, from);
            let (orders, pending) = (self.known_orders(), self.own_unordered());
            core.send(ctx, from, Body::State { epoch, orders, pending });
        }
    }

    /// A survivor's state, for the takeover under way.
    fn on_state(&mut self, core: &mut Core, ctx: &mut Context<'_, Peer>, from: NodeId, state: Body) {
        let Body::State { epoch, orders, pending } = state else { return };
        if self.collecting.as_ref().is_some_and(|(e, _)| *e == epoch) {
            self.merge_orders(orders);
            for d in pending {
                self.hold(d);
            }
            if let Some((_, waiting)) = &mut self.collecting {
                waiting[from.index()] = false;
            }
            self.finish_takeover_if_ready(core, ctx);
        }
    }

    fn on_new_order(
        &mut self,
        core: &mut Core,
        ctx: &mut Context<'_, Peer>,
        from: NodeId,
        epoch: u64,
        orders: Vec<(u64, Option<Data>)>,
    ) {
        if epoch >= self.epoch {
            self.follow(core, epoch, from);
            self.merge_orders(orders);
            self.try_deliver(core, ctx);
            // Resend our never-ordered messages to the new sequencer.
            for d in self.own_unordered() {
                if !self.is_ordered(d.id) {
                    core.send(ctx, from, Body::Data(d));
                }
            }
        }
    }

    fn on_beat(&mut self, core: &mut Core, ctx: &mut Context<'_, Peer>) {
        if sequencer(core) == core.id && !core.done() {
            let epoch = self.epoch;
            for p in core.others().collect::<Vec<_>>() {
                ctx.send(p, Wire::Raw(Body::Heartbeat { epoch }));
            }
            ctx.set_timer(Timer::Beat, core.timeout / 4);
        }
    }

    /// The sequencer's heartbeat is overdue: suspect it, and take over if this peer is next.
    fn on_watch(&mut self, core: &mut Core, ctx: &mut Context<'_, Peer>) {
        if core.done() {
            return;
        }
        let s = sequencer(core);
        if s != core.id && !self.heard[s.index()] {
            core.suspected[s.index()] = true;
            if core.check_barrier(ctx) {
                self.arm(core, ctx);
            }
            if sequencer(core) == core.id {
                self.take_over(core, ctx);
                return;
            }
        }
        self.heard = vec![false; core.n];
        ctx.set_timer(Timer::Watch, core.timeout * WATCH_TIMEOUTS);
    }

    /// A peer that has not answered, and from which nothing at all was heard for a whole
    /// timeout, is gone. One still heard from is alive: its answer is on its way (a lost frame
    /// is retransmitted), and its knowledge must not be skipped.
    fn on_collect(&mut self, core: &mut Core, ctx: &mut Context<'_, Peer>) {
        if let Some((_, waiting)) = &mut self.collecting {
            for (p, w) in waiting.iter_mut().enumerate() {
                if !*w {
                    continue;
                }
                self.silent[p] = if self.heard[p] { 0 } else { self.silent[p] + 1 };
                // Patience: several timeouts of silence, as a lost frame is resent.
                if self.silent[p] >= SILENT_PERIODS {
                    *w = false;
                    core.suspected[p] = true;
                }
            }
        }
        self.heard = vec![false; core.n];
        self.finish_takeover_if_ready(core, ctx);
        if self.collecting.is_some() {
            ctx.set_timer(Timer::Collect, core.timeout);
        }
    }
}

/// Numbers below the highest known one that nobody alive knows: nobody alive delivered them.
/// The old sequencer numbered each sender's messages in order, so a sender's unordered
/// message that has a later message numbered must have sat in one of these gaps: put it back
/// in a gap before that later message (earliest deadline first), to keep each sender's
/// order. The rest of the gaps become no-ops. Returns the candidates left over (to number
/// after the highest known number).
fn fill_gaps(orders: &mut Orders, mut candidates: Vec<Data>) -> Vec<Data> {
    let top = orders.keys().next_back().map_or(0, |k| k + 1);
    let assigned: HashMap<MsgId, u64> =
        orders.iter().filter_map(|(g, d)| d.as_ref().map(|d| (d.id, *g))).collect();
    candidates.retain(|d| !assigned.contains_key(&d.id));
    candidates.sort_by_key(|d| d.id);
    candidates.dedup_by_key(|d| d.id);
    // The position of the next numbered message of the same sender: a deadline.
    let deadline = |d: &Data| {
        assigned.iter().filter(|(id, _)| id.origin == d.id.origin && id.seq > d.id.seq).map(|(_, g)| *g).min()
    };
    for g in 0..top {
        if orders.contains_key(&g) {
            continue;
        }
        // Eligible: no earlier message of its sender still waits.
        let pick = candidates
            .iter()
            .enumerate()
            .filter(|(_, d)| !candidates.iter().any(|e| e.id.origin == d.id.origin && e.id.seq < d.id.seq))
            .filter_map(|(i, d)| deadline(d).filter(|dl| *dl > g).map(|dl| (dl, i)))
            .min();
        match pick {
            Some((_, i)) => {
                let d = candidates.remove(i);
                orders.insert(g, Some(d));
            }
            None => {
                orders.insert(g, None);
            }
        }
    }
    candidates
}

impl Rule for Sequencer {
    fn multicast(&mut self, core: &mut Core, ctx: &mut Context<'_, Peer>, id: MsgId, _past: Vec<u32>) {
        let d = Data::plain(id);
        self.unordered_own.insert(id.seq, d.clone());
        let s = sequencer(core);
        if s == core.id {
            self.assign(core, ctx, d);
        } else {
            core.send(ctx, s, Body::Data(d));
        }
    }

    fn receive(&mut self, core: &mut Core, ctx: &mut Context<'_, Peer>, from: NodeId, body: Body) {
        match body {
            Body::Data(d) => self.on_data(core, ctx, d),
            Body::Order { epoch, gseq, data } => {
                if epoch >= self.epoch {
                    self.epoch = epoch;
                    self.orders.entry(gseq).or_insert(Some(data));
                    self.try_deliver(core, ctx);
                }
            }
            // A heartbeat proves the sender alive (`heard`); epochs change only through the
            // state exchange, so that a heartbeat overtaking a STATE-REQ cannot make it stale.
            Body::Heartbeat { .. } => {}
            Body::StateReq { epoch } => self.on_state_req(core, ctx, from, epoch),
            state @ Body::State { .. } => self.on_state(core, ctx, from, state),
            Body::NewOrder { epoch, orders } => self.on_new_order(core, ctx, from, epoch, orders),
            Body::Ready | Body::TsAck { .. } => {}
        }
    }

    /// The sequencer heartbeats; every other peer watches it. Only with a workload.
    fn arm(&mut self, core: &mut Core, ctx: &mut Context<'_, Peer>) {
        if core.msgs == 0 {
            return;
        }
        if sequencer(core) == core.id {
            ctx.set_timer(Timer::Beat, core.timeout / 4);
        } else {
            self.heard = vec![false; core.n];
            ctx.set_timer(Timer::Watch, core.timeout * WATCH_TIMEOUTS);
        }
    }

    fn heard(&mut self, from: NodeId) {
        self.heard[from.index()] = true;
    }

    fn on_timer(&mut self, core: &mut Core, ctx: &mut Context<'_, Peer>, timer: Timer) {
        match timer {
            Timer::Beat => self.on_beat(core, ctx),
            Timer::Watch => self.on_watch(core, ctx),
            Timer::Collect => self.on_collect(core, ctx),
            Timer::Next | Timer::Retransmit => {}
        }
    }

    /// A takeover keeps asking a suspected peer it awaits.
    fn awaits(&self, p: usize) -> bool {
        self.collecting.as_ref().is_some_and(|(_, w)| w[p])
    }

    /// The sequencer is judged by the heartbeat watch, not by its link.
    fn watches(&self, core: &Core, p: NodeId) -> bool {
        p == sequencer(core)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(origin: u32, seq: u32) -> Data {
        Data::plain(MsgId { origin, seq })
    }

    #[test]
    fn a_senders_unordered_message_fills_the_gap_before_its_successor() {
        // Peer 1's messages 0 and 2 are numbered 0 and 2; its message 1 was lost with number 1.
        let mut orders: Orders = [(0, Some(msg(1, 0))), (2, Some(msg(1, 2)))].into();
        let rest = fill_gaps(&mut orders, vec![msg(1, 1), msg(2, 0)]);
        assert_eq!(orders[&1], Some(msg(1, 1)));
        assert_eq!(orders.len(), 3);
        assert_eq!(rest, vec![msg(2, 0)], "no later message of peer 2 is numbered: it waits");
    }

    #[test]
    fn a_gap_nobody_can_fill_becomes_a_no_op() {
        let mut orders: Orders = [(1, Some(msg(0, 0)))].into();
        let rest = fill_gaps(&mut orders, vec![msg(0, 0)]);
        assert_eq!(orders[&0], None);
        assert!(rest.is_empty(), "an ordered message is not a candidate");
    }
}
