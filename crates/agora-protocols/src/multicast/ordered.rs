//! The multicast peer: the start barrier, the workload, the reliable links, and the delivery
//! rule of each [`Order`] (see the module above for the algorithms and their costs).

use super::link::Link;
use super::{McastChecker, McastObs, MsgId, Order};
use agora_core::{Checker, Context, Corrupt, Message, NodeId, Protocol, Setup, Stable};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// A multicast message as it travels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Data {
    pub id: MsgId,
    /// Lamport timestamp (total-lamport).
    pub ts: u64,
    /// Vector timestamp (causal): messages of each sender delivered before this one.
    pub vc: Vec<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    Ready,
    Data(Data),
    /// total-lamport: "my clock is now `ts`".
    TsAck {
        ts: u64,
    },
    /// total-sequencer: message `data` is number `gseq` of epoch `epoch`.
    Order {
        epoch: u64,
        gseq: u64,
        data: Data,
    },
    Heartbeat {
        epoch: u64,
    },
    /// A new sequencer asks what the survivors know.
    StateReq {
        epoch: u64,
    },
    /// A survivor's orders, and its own messages it never saw ordered.
    State {
        epoch: u64,
        orders: Vec<(u64, Option<Data>)>,
        pending: Vec<Data>,
    },
    /// The new sequencer's merged order: `None` entries are gaps nobody alive knew.
    NewOrder {
        epoch: u64,
        orders: Vec<(u64, Option<Data>)>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Wire {
    /// A frame of the reliable link, with the cumulative ACK of the other direction.
    Link {
        seq: u64,
        ack: u64,
        body: Body,
    },
    Ack {
        ack: u64,
    },
    /// Best effort, outside the links (`unordered`, heartbeats).
    Raw(Body),
}

impl Message for Wire {
    fn kind(&self) -> &'static str {
        let body = match self {
            Wire::Ack { .. } => return "LINK-ACK",
            Wire::Link { body, .. } | Wire::Raw(body) => body,
        };
        match body {
            Body::Ready => "READY",
            Body::Data(_) => "DATA",
            Body::TsAck { .. } => "TS-ACK",
            Body::Order { .. } => "ORDER",
            Body::Heartbeat { .. } => "HEARTBEAT",
            Body::StateReq { .. } => "STATE-REQ",
            Body::State { .. } => "STATE",
            Body::NewOrder { .. } => "NEW-ORDER",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// Multicast the next message.
    Next,
    /// Resend what the links have not had acknowledged.
    Retransmit,
    /// Sequencer: heartbeat. Others: check the sequencer's heartbeat.
    Beat,
    Watch,
    /// New sequencer: the survivors' states are in (or overdue).
    Collect,
}

pub struct Peer {
    id: NodeId,
    n: usize,
    order: Order,
    msgs: u32,
    interval_ms: f64,
    timeout: Duration,
    ready: Vec<bool>,
    started: bool,
    sent: u32,
    links: Vec<Link<Body>>,
    retransmitting: bool,
    /// Messages of each sender delivered here.
    delivered: Vec<u32>,
    delivered_ids: std::collections::HashSet<MsgId>,
    total_delivered: usize,
    // causal
    waiting: Vec<Data>,
    // total-lamport
    clock: u64,
    queue: BTreeMap<(u64, u32, u32), Data>,
    latest: Vec<u64>,
    // total-sequencer
    epoch: u64,
    suspected: Vec<bool>,
    heard: Vec<bool>,
    orders: BTreeMap<u64, Option<Data>>,
    next_gseq: u64,
    next_deliver: u64,
    /// This peer's messages not yet seen ordered (resent to a new sequencer).
    unordered_own: BTreeMap<u32, Data>,
    collecting: Option<(u64, Vec<bool>)>,
    /// Messages to number once a takeover completes.
    to_assign: Vec<Data>,
    /// Consecutive collection periods in which nothing was heard from each peer.
    silent: Vec<u32>,
}

/// Collection periods of silence after which a new sequencer stops waiting for a peer.
const SILENT_PERIODS: u32 = 5;

/// The sequencer is suspected after this many timeouts without a word from it (it heartbeats
/// every quarter timeout): the failover's safety rests on not suspecting a live sequencer.
const WATCH_TIMEOUTS: u32 = 3;

/// A link whose oldest frame stays unacknowledged this many timeouts marks its peer crashed.
const GIVE_UP_TIMEOUTS: u32 = 10;

/// Epoch numbers are `round * EPOCH_IDS + sequencer id`.
const EPOCH_IDS: u64 = 1 << 16;

impl Peer {
    fn others(&self) -> impl Iterator<Item = NodeId> + '_ {
        (0..self.n as u32).map(NodeId).filter(move |p| *p != self.id)
    }

    fn sequencer(&self) -> NodeId {
        NodeId((0..self.n as u32).rev().find(|p| !self.suspected[*p as usize]).unwrap_or(self.id.0))
    }

    /// Everything sent, and every message of every peer not suspected of a crash delivered.
    fn done(&self) -> bool {
        self.sent == self.msgs && (0..self.n).all(|o| self.suspected[o] || self.delivered[o] == self.msgs)
    }

    fn send(&mut self, ctx: &mut Context<'_, Self>, to: NodeId, body: Body) {
        let now = ctx.now();
        let link = &mut self.links[to.index()];
        let seq = link.send(body.clone(), now);
        let ack = link.ack();
        ctx.send(to, Wire::Link { seq, ack, body });
        if !self.retransmitting {
            self.retransmitting = true;
            ctx.set_timer(Timer::Retransmit, self.timeout / 2);
        }
    }

    fn send_all(&mut self, ctx: &mut Context<'_, Self>, body: Body) {
        let to: Vec<NodeId> = self.others().filter(|p| !self.suspected[p.index()]).collect();
        for p in to {
            self.send(ctx, p, body.clone());
        }
    }

    fn deliver(&mut self, ctx: &mut Context<'_, Self>, d: &Data) {
        if !self.delivered_ids.insert(d.id) {
            return;
        }
        self.delivered[d.id.origin as usize] += 1;
        self.total_delivered += 1;
        ctx.observe(McastObs::Delivered { id: d.id });
        ctx.op_end((d.id.origin as u64) << 32 | d.id.seq as u64);
        if self.done() {
            ctx.cancel_timer(Timer::Watch);
            ctx.cancel_timer(Timer::Beat);
        }
    }

    fn start(&mut self, ctx: &mut Context<'_, Self>) {
        self.started = true;
        if self.msgs > 0 {
            let d = self.gap(ctx);
            ctx.set_timer(Timer::Next, d);
        }
        if self.order == Order::TotalSequencer && self.msgs > 0 {
            self.arm_sequencer_timers(ctx);
        }
    }

    /// Starts the workload once every peer not suspected of a crash is ready.
    fn check_barrier(&mut self, ctx: &mut Context<'_, Self>) {
        let me = self.id.index();
        if !self.started && (0..self.n).all(|p| p == me || self.ready[p] || self.suspected[p]) {
            self.start(ctx);
        }
    }

    fn gap(&self, ctx: &mut Context<'_, Self>) -> Duration {
        let u: f64 = ctx.rng().random_range(f64::EPSILON..1.0);
        Duration::from_secs_f64(-u.ln() * self.interval_ms / 1e3)
    }

    fn arm_sequencer_timers(&mut self, ctx: &mut Context<'_, Self>) {
        if self.sequencer() == self.id {
            ctx.set_timer(Timer::Beat, self.timeout / 4);
        } else {
            self.heard = vec![false; self.n];
            ctx.set_timer(Timer::Watch, self.timeout * WATCH_TIMEOUTS);
        }
    }

    fn multicast(&mut self, ctx: &mut Context<'_, Self>) {
        let id = MsgId { origin: self.id.0, seq: self.sent };
        self.sent += 1;
        let mut past = self.delivered.clone();
        past[self.id.index()] = id.seq;
        ctx.observe(McastObs::Multicast { id, past: past.clone() });
        ctx.op_begin((id.origin as u64) << 32 | id.seq as u64);
        match self.order {
            Order::Unordered => {
                let d = Data { id, ts: 0, vc: Vec::new() };
                ctx.broadcast(Wire::Raw(Body::Data(d.clone())));
                self.deliver(ctx, &d);
            }
            Order::Fifo => {
                let d = Data { id, ts: 0, vc: Vec::new() };
                self.send_all(ctx, Body::Data(d.clone()));
                self.deliver(ctx, &d);
            }
            Order::Causal => {
                let d = Data { id, ts: 0, vc: past };
                self.send_all(ctx, Body::Data(d.clone()));
                self.deliver(ctx, &d);
            }
            Order::TotalLamport => {
                self.clock += 1;
                let d = Data { id, ts: self.clock, vc: Vec::new() };
                self.queue.insert((d.ts, id.origin, id.seq), d.clone());
                self.send_all(ctx, Body::Data(d));
                self.try_total_lamport(ctx);
            }
            Order::TotalSequencer => {
                let d = Data { id, ts: 0, vc: Vec::new() };
                self.unordered_own.insert(id.seq, d.clone());
                let s = self.sequencer();
                if s == self.id {
                    self.assign(ctx, d);
                } else {
                    self.send(ctx, s, Body::Data(d));
                }
            }
        }
        if self.sent < self.msgs {
            let g = self.gap(ctx);
            ctx.set_timer(Timer::Next, g);
        }
    }

    fn try_causal(&mut self, ctx: &mut Context<'_, Self>) {
        loop {
            let me = &self.delivered;
            let Some(pos) = self.waiting.iter().position(|d| {
                let o = d.id.origin as usize;
                d.id.seq == me[o] && (0..self.n).all(|q| q == o || d.vc[q] <= me[q])
            }) else {
                return;
            };
            let d = self.waiting.swap_remove(pos);
            self.deliver(ctx, &d);
        }
    }

    fn try_total_lamport(&mut self, ctx: &mut Context<'_, Self>) {
        while let Some((&(ts, _, _), _)) = self.queue.first_key_value() {
            if !(0..self.n).all(|p| p == self.id.index() || self.latest[p] >= ts) {
                return;
            }
            let (_, d) = self.queue.pop_first().expect("peeked");
            self.deliver(ctx, &d);
        }
    }

    /// Sequencer: number a message and relay it to everyone. While a takeover gathers state,
    /// numbering waits: the new numbers must come after every number the survivors know.
    fn assign(&mut self, ctx: &mut Context<'_, Self>, d: Data) {
        if self.collecting.is_some() {
            if !self.to_assign.iter().any(|x| x.id == d.id) {
                self.to_assign.push(d);
            }
            return;
        }
        if self.orders.values().flatten().any(|x| x.id == d.id) || self.delivered_ids.contains(&d.id) {
            return; // already ordered (a resend after a change of sequencer)
        }
        let gseq = self.next_gseq;
        self.next_gseq += 1;
        self.orders.insert(gseq, Some(d.clone()));
        self.send_all(ctx, Body::Order { epoch: self.epoch, gseq, data: d });
        self.try_sequenced(ctx);
    }

    fn try_sequenced(&mut self, ctx: &mut Context<'_, Self>) {
        while let Some(entry) = self.orders.get(&self.next_deliver).cloned() {
            self.next_deliver += 1;
            if let Some(d) = entry {
                if d.id.origin == self.id.0 {
                    self.unordered_own.remove(&d.id.seq);
                }
                self.deliver(ctx, &d);
            }
        }
    }

    /// This peer becomes the sequencer of a new epoch: gather what the survivors know.
    fn take_over(&mut self, ctx: &mut Context<'_, Self>) {
        // Epochs are unique per sequencer (round, id) and totally ordered, so two peers that
        // take over at once never share one; peers follow only the newest epoch they saw.
        self.epoch = (self.epoch / EPOCH_IDS + 1) * EPOCH_IDS + self.id.0 as u64;
        // Heartbeat from now on, so that nobody suspects us while we gather state.
        ctx.set_timer(Timer::Beat, self.timeout / 4);
        // Ask everyone, the suspected sequencer too: a slow sequencer is not a dead one, and
        // what it ordered must not be skipped. Only silence, for several timeouts, excludes.
        let waiting: Vec<bool> = (0..self.n).map(|p| p != self.id.index()).collect();
        self.collecting = Some((self.epoch, waiting));
        let epoch = self.epoch;
        for p in self.others().collect::<Vec<_>>() {
            self.send(ctx, p, Body::StateReq { epoch });
        }
        self.heard = vec![false; self.n];
        self.silent = vec![0; self.n];
        ctx.set_timer(Timer::Collect, self.timeout);
        self.finish_takeover_if_ready(ctx);
    }

    fn finish_takeover_if_ready(&mut self, ctx: &mut Context<'_, Self>) {
        let Some((epoch, waiting)) = &self.collecting else { return };
        if waiting.iter().any(|w| *w) {
            return;
        }
        let epoch = *epoch;
        self.collecting = None;
        self.fill_gaps();
        let orders: Vec<(u64, Option<Data>)> = self.orders.iter().map(|(g, d)| (*g, d.clone())).collect();
        self.send_all(ctx, Body::NewOrder { epoch, orders });
        self.try_sequenced(ctx);
        // Our own messages that were never ordered, and those that came in meanwhile.
        let mut later: Vec<Data> = self.unordered_own.values().cloned().collect();
        later.append(&mut self.to_assign);
        for d in later {
            self.assign(ctx, d);
        }
        ctx.set_timer(Timer::Beat, self.timeout / 4);
    }

    /// Numbers below the highest known one that nobody alive knows: nobody alive delivered
    /// them. The old sequencer numbered each sender's messages in order, so a sender's
    /// unordered message that has a later message numbered must have sat in one of these gaps:
    /// put it back in a gap before that later message (earliest deadline first), to keep each
    /// sender's order. The rest of the gaps become no-ops.
    fn fill_gaps(&mut self) {
        let top = self.orders.keys().next_back().map_or(0, |k| k + 1);
        let mut candidates: Vec<Data> = self.unordered_own.values().cloned().collect();
        candidates.append(&mut self.to_assign);
        let assigned: std::collections::HashMap<MsgId, u64> =
            self.orders.iter().filter_map(|(g, d)| d.as_ref().map(|d| (d.id, *g))).collect();
        candidates.retain(|d| !assigned.contains_key(&d.id));
        candidates.sort_by_key(|d| d.id);
        candidates.dedup_by_key(|d| d.id);
        // The position of the next numbered message of the same sender: a deadline.
        let deadline = |d: &Data| {
            assigned
                .iter()
                .filter(|(id, _)| id.origin == d.id.origin && id.seq > d.id.seq)
                .map(|(_, g)| *g)
                .min()
        };
        for g in 0..top {
            if self.orders.contains_key(&g) {
                continue;
            }
            // Eligible: no earlier message of its sender still waits.
            let pick = candidates
                .iter()
                .enumerate()
                .filter(|(_, d)| {
                    !candidates.iter().any(|e| e.id.origin == d.id.origin && e.id.seq < d.id.seq)
                })
                .filter_map(|(i, d)| deadline(d).filter(|dl| *dl > g).map(|dl| (dl, i)))
                .min();
            match pick {
                Some((_, i)) => {
                    let d = candidates.remove(i);
                    self.orders.insert(g, Some(d));
                }
                None => {
                    self.orders.insert(g, None);
                }
            }
        }
        self.next_gseq = top;
        self.to_assign = candidates;
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

    fn body(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, body: Body) {
        match body {
            Body::Ready => {
                self.ready[from.index()] = true;
                self.check_barrier(ctx);
            }
            Body::Data(d) => match self.order {
                Order::Unordered | Order::Fifo => self.deliver(ctx, &d),
                Order::Causal => {
                    if !self.delivered_ids.contains(&d.id) {
                        self.waiting.push(d);
                        self.try_causal(ctx);
                    }
                }
                Order::TotalLamport => {
                    self.clock = self.clock.max(d.ts) + 1;
                    self.latest[from.index()] = self.latest[from.index()].max(d.ts);
                    self.queue.insert((d.ts, d.id.origin, d.id.seq), d);
                    let ts = self.clock;
                    self.send_all(ctx, Body::TsAck { ts });
                    self.try_total_lamport(ctx);
                }
                Order::TotalSequencer => {
                    if self.sequencer() == self.id {
                        self.assign(ctx, d);
                    } else {
                        // Sent to us as sequencer while we were not: pass it on.
                        let s = self.sequencer();
                        self.send(ctx, s, Body::Data(d));
                    }
                }
            },
            Body::TsAck { ts } => {
                self.clock = self.clock.max(ts) + 1;
                self.latest[from.index()] = self.latest[from.index()].max(ts);
                self.try_total_lamport(ctx);
            }
            Body::Order { epoch, gseq, data } => {
                if epoch >= self.epoch {
                    self.epoch = epoch;
                    self.orders.entry(gseq).or_insert(Some(data));
                    self.try_sequenced(ctx);
                }
            }
            // A heartbeat proves the sender alive (`heard`); epochs change only through the
            // state exchange, so that a heartbeat overtaking a STATE-REQ cannot make it stale.
            Body::Heartbeat { .. } => {}
            Body::StateReq { epoch } => {
                if epoch >= self.epoch {
                    self.epoch = epoch;
                    // The requester leads now: everyone above it is gone.
                    for p in from.index() + 1..self.n {
                        self.suspected[p] = true;
                    }
                    let orders = self.orders.iter().map(|(g, d)| (*g, d.clone())).collect();
                    let pending = self.unordered_own.values().cloned().collect();
                    self.send(ctx, from, Body::State { epoch, orders, pending });
                }
            }
            Body::State { epoch, orders, pending } => {
                if self.collecting.as_ref().is_some_and(|(e, _)| *e == epoch) {
                    self.merge_orders(orders);
                    for d in pending {
                        if !self.to_assign.iter().any(|x| x.id == d.id) {
                            self.to_assign.push(d);
                        }
                    }
                    if let Some((_, waiting)) = &mut self.collecting {
                        waiting[from.index()] = false;
                    }
                    self.finish_takeover_if_ready(ctx);
                }
            }
            Body::NewOrder { epoch, orders } => {
                if epoch >= self.epoch {
                    self.epoch = epoch;
                    for p in from.index() + 1..self.n {
                        self.suspected[p] = true;
                    }
                    self.merge_orders(orders);
                    self.try_sequenced(ctx);
                    // Resend our never-ordered messages to the new sequencer.
                    let own: Vec<Data> = self.unordered_own.values().cloned().collect();
                    for d in own {
                        if !self.orders.values().flatten().any(|x| x.id == d.id) {
                            self.send(ctx, from, Body::Data(d));
                        }
                    }
                }
            }
        }
    }
}

impl Protocol for Peer {
    type Msg = Wire;
    type Timer = Timer;
    type Obs = McastObs;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        if self.n == 1 {
            self.start(ctx);
            return;
        }
        for p in self.others().collect::<Vec<_>>() {
            if self.order == Order::Unordered {
                ctx.send(p, Wire::Raw(Body::Ready));
            } else {
                self.send(ctx, p, Body::Ready);
            }
        }
        // Watch the sequencer from the start: one that dies before the barrier completes
        // must not hold everyone at the barrier.
        if self.order == Order::TotalSequencer && self.msgs > 0 {
            self.arm_sequencer_timers(ctx);
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, w: Wire) {
        self.heard[from.index()] = true;
        match w {
            Wire::Raw(body) => self.body(ctx, from, body),
            Wire::Ack { ack } => self.links[from.index()].acked(ack),
            Wire::Link { seq, ack, body } => {
                self.links[from.index()].acked(ack);
                let ready = self.links[from.index()].receive(seq, body);
                let ack = self.links[from.index()].ack();
                ctx.send(from, Wire::Ack { ack });
                for b in ready {
                    self.body(ctx, from, b);
                }
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, timer: Timer) {
        match timer {
            Timer::Next => self.multicast(ctx),
            Timer::Retransmit => {
                let mut any = false;
                for p in 0..self.n {
                    let asked = self.collecting.as_ref().is_some_and(|(_, w)| w[p]);
                    if (self.suspected[p] && !asked) || p == self.id.index() {
                        continue;
                    }
                    let ack = self.links[p].ack();
                    let now = ctx.now();
                    // A peer that has acknowledged nothing for many timeouts has crashed: stop
                    // sending to it (the sequencer itself is judged by the heartbeat watch).
                    let sequencer =
                        self.order == Order::TotalSequencer && NodeId(p as u32) == self.sequencer();
                    if !sequencer && self.links[p].stalled_for(now) >= self.timeout * GIVE_UP_TIMEOUTS {
                        self.suspected[p] = true;
                        continue;
                    }
                    for (seq, body) in self.links[p].due(now, self.timeout, 64) {
                        ctx.send(NodeId(p as u32), Wire::Link { seq, ack, body });
                    }
                    any |= !self.links[p].idle();
                }
                self.retransmitting = any;
                if any {
                    ctx.set_timer(Timer::Retransmit, self.timeout / 2);
                }
            }
            Timer::Beat => {
                if self.sequencer() == self.id && !self.done() {
                    let epoch = self.epoch;
                    for p in self.others().collect::<Vec<_>>() {
                        ctx.send(p, Wire::Raw(Body::Heartbeat { epoch }));
                    }
                    ctx.set_timer(Timer::Beat, self.timeout / 4);
                }
            }
            Timer::Watch => {
                if self.done() {
                    return;
                }
                let s = self.sequencer();
                if s != self.id && !self.heard[s.index()] {
                    self.suspected[s.index()] = true;
                    self.check_barrier(ctx);
                    if self.sequencer() == self.id {
                        self.take_over(ctx);
                        return;
                    }
                }
                self.heard = vec![false; self.n];
                ctx.set_timer(Timer::Watch, self.timeout * WATCH_TIMEOUTS);
            }
            Timer::Collect => {
                // A peer that has not answered, and from which nothing at all was heard for a
                // whole timeout, is gone. One still heard from is alive: its answer is on its
                // way (a lost frame is retransmitted), and its knowledge must not be skipped.
                if let Some((_, waiting)) = &mut self.collecting {
                    for (p, w) in waiting.iter_mut().enumerate() {
                        if !*w {
                            continue;
                        }
                        self.silent[p] = if self.heard[p] { 0 } else { self.silent[p] + 1 };
                        // Patience: several timeouts of silence, as a lost frame is resent.
                        if self.silent[p] >= SILENT_PERIODS {
                            *w = false;
                            self.suspected[p] = true;
                        }
                    }
                }
                self.heard = vec![false; self.n];
                self.finish_takeover_if_ready(ctx);
                if self.collecting.is_some() {
                    ctx.set_timer(Timer::Collect, self.timeout);
                }
            }
        }
    }
}

pub struct MulticastSetup {
    pub order: Order,
    pub nodes: usize,
    pub msgs: u32,
    pub interval_ms: f64,
    pub timeout: Duration,
}

impl Setup for MulticastSetup {
    type Node = Peer;

    fn name(&self) -> &'static str {
        self.order.name()
    }

    fn nodes(&self) -> usize {
        self.nodes
    }

    fn build(&self, id: NodeId, _: &Stable) -> Result<Peer, Corrupt> {
        let n = self.nodes;
        Ok(Peer {
            id,
            n,
            order: self.order,
            msgs: self.msgs,
            interval_ms: self.interval_ms,
            timeout: self.timeout,
            ready: vec![false; n],
            started: false,
            sent: 0,
            links: (0..n).map(|_| Link::default()).collect(),
            retransmitting: false,
            delivered: vec![0; n],
            delivered_ids: Default::default(),
            total_delivered: 0,
            waiting: Vec::new(),
            clock: 0,
            queue: BTreeMap::new(),
            latest: vec![0; n],
            epoch: 0,
            suspected: vec![false; n],
            heard: vec![false; n],
            orders: BTreeMap::new(),
            next_gseq: 0,
            next_deliver: 0,
            unordered_own: BTreeMap::new(),
            collecting: None,
            to_assign: Vec::new(),
            silent: vec![0; n],
        })
    }

    fn checker(&self) -> Box<dyn Checker<Peer>> {
        Box::new(McastChecker::new(self.order, self.nodes))
    }
}
