//! The multicast peer: the machinery every order shares — the start barrier, the workload,
//! the reliable links (retransmission, giving up on a silent peer) and delivery — around the
//! delivery rule of its [`Order`] (one file each under `order/`).

use super::link::Link;
use super::order::{self, Rule};
use super::wire::{Body, Data, Timer, Wire};
use super::{McastChecker, McastObs, MsgId, Order};
use agora_core::{Checker, Context, Corrupt, NodeId, Protocol, Setup, Stable};
use rand::Rng as _;
use std::collections::HashSet;
use std::time::Duration;

/// A link whose oldest frame stays unacknowledged this many timeouts marks its peer crashed.
const GIVE_UP_TIMEOUTS: u32 = 10;

/// A multicast peer: the shared machinery and its order's rule.
pub struct Peer {
    core: Core,
    rule: Box<dyn Rule>,
}

/// What every order shares: the barrier, the workload, the links and the deliveries.
pub(super) struct Core {
    pub(super) id: NodeId,
    pub(super) n: usize,
    pub(super) msgs: u32,
    interval_ms: f64,
    pub(super) timeout: Duration,
    /// Peers whose READY came.
    ready: Vec<bool>,
    started: bool,
    /// Messages multicast so far.
    sent: u32,
    links: Vec<Link<Body>>,
    /// Whether the retransmission timer is armed.
    retransmitting: bool,
    /// Messages of each sender delivered here.
    pub(super) delivered: Vec<u32>,
    pub(super) delivered_ids: HashSet<MsgId>,
    total_delivered: usize,
    /// Peers believed crashed: nothing more is sent to them, nor awaited from them.
    pub(super) suspected: Vec<bool>,
}

impl Core {
    pub(super) fn others(&self) -> impl Iterator<Item = NodeId> + '_ {
        (0..self.n as u32).map(NodeId).filter(move |p| *p != self.id)
    }

    /// Everything sent, and every message of every peer not suspected of a crash delivered.
    pub(super) fn done(&self) -> bool {
        self.sent == self.msgs && (0..self.n).all(|o| self.suspected[o] || self.delivered[o] == self.msgs)
    }

    /// Sends `body` to `to` over the reliable link.
    pub(super) fn send(&mut self, ctx: &mut Context<'_, Peer>, to: NodeId, body: Body) {
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

    /// Sends `body` to every other peer not suspected of a crash, over the reliable links.
    pub(super) fn send_all(&mut self, ctx: &mut Context<'_, Peer>, body: Body) {
        let to: Vec<NodeId> = self.others().filter(|p| !self.suspected[p.index()]).collect();
        for p in to {
            self.send(ctx, p, body.clone());
        }
    }

    /// Delivers `d` unless it was delivered already.
    pub(super) fn deliver(&mut self, ctx: &mut Context<'_, Peer>, d: &Data) {
        if !self.delivered_ids.insert(d.id) {
            return;
        }
        self.delivered[d.id.origin as usize] += 1;
        self.total_delivered += 1;
        ctx.observe(McastObs::Delivered { id: d.id });
        ctx.op_end(d.id.op());
        if self.done() {
            ctx.cancel_timer(Timer::Watch);
            ctx.cancel_timer(Timer::Beat);
        }
    }

    /// Starts the workload: the first multicast after a random gap.
    fn start(&mut self, ctx: &mut Context<'_, Peer>) {
        self.started = true;
        if self.msgs > 0 {
            let d = self.gap(ctx);
            ctx.set_timer(Timer::Next, d);
        }
    }

    /// Starts the workload once every peer not suspected of a crash is ready; says whether it
    /// started now.
    pub(super) fn check_barrier(&mut self, ctx: &mut Context<'_, Peer>) -> bool {
        let me = self.id.index();
        if !self.started && (0..self.n).all(|p| p == me || self.ready[p] || self.suspected[p]) {
            self.start(ctx);
            return true;
        }
        false
    }

    /// The time to the next multicast: exponentially distributed with mean `interval_ms`.
    fn gap(&self, ctx: &mut Context<'_, Peer>) -> Duration {
        let u: f64 = ctx.rng().random_range(f64::EPSILON..1.0);
        Duration::from_secs_f64(-u.ln() * self.interval_ms / 1e3)
    }

    /// The next message's id and its causal past (what this peer delivered, and of its own
    /// messages, those sent before); reports the multicast.
    fn next_message(&mut self, ctx: &mut Context<'_, Peer>) -> (MsgId, Vec<u32>) {
        let id = MsgId { origin: self.id.0, seq: self.sent };
        self.sent += 1;
        let mut past = self.delivered.clone();
        past[self.id.index()] = id.seq;
        ctx.observe(McastObs::Multicast { id, past: past.clone() });
        ctx.op_begin(id.op());
        (id, past)
    }

    /// Resends what each link has not had acknowledged, and gives up on a peer whose link has
    /// acknowledged nothing for [`GIVE_UP_TIMEOUTS`] (unless `rule` judges that peer itself).
    fn retransmit(&mut self, ctx: &mut Context<'_, Peer>, rule: &dyn Rule) {
        let mut any = false;
        for p in 0..self.n {
            if (self.suspected[p] && !rule.awaits(p)) || p == self.id.index() {
                continue;
            }
            let ack = self.links[p].ack();
            let now = ctx.now();
            // A peer that has acknowledged nothing for many timeouts has crashed: stop
            // sending to it.
            if !rule.watches(self, NodeId(p as u32))
                && self.links[p].stalled_for(now) >= self.timeout * GIVE_UP_TIMEOUTS
            {
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
}

impl Peer {
    /// The barrier: once it is passed, the workload starts and the rule arms its timers.
    fn check_barrier(&mut self, ctx: &mut Context<'_, Self>) {
        if self.core.check_barrier(ctx) {
            self.rule.arm(&mut self.core, ctx);
        }
    }

    fn multicast(&mut self, ctx: &mut Context<'_, Self>) {
        let (id, past) = self.core.next_message(ctx);
        self.rule.multicast(&mut self.core, ctx, id, past);
        if self.core.sent < self.core.msgs {
            let g = self.core.gap(ctx);
            ctx.set_timer(Timer::Next, g);
        }
    }

    fn body(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, body: Body) {
        match body {
            Body::Ready => {
                self.core.ready[from.index()] = true;
                self.check_barrier(ctx);
            }
            body => self.rule.receive(&mut self.core, ctx, from, body),
        }
    }
}

impl Protocol for Peer {
    type Msg = Wire;
    type Timer = Timer;
    type Obs = McastObs;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        if self.core.n == 1 {
            self.core.start(ctx);
            self.rule.arm(&mut self.core, ctx);
            return;
        }
        for p in self.core.others().collect::<Vec<_>>() {
            if self.rule.reliable() {
                self.core.send(ctx, p, Body::Ready);
            } else {
                ctx.send(p, Wire::Raw(Body::Ready));
            }
        }
        // Arm the rule's timers from the start (a sequencer that dies before the barrier
        // completes must not hold everyone at the barrier).
        self.rule.arm(&mut self.core, ctx);
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, w: Wire) {
        self.rule.heard(from);
        match w {
            Wire::Raw(body) => self.body(ctx, from, body),
            Wire::Ack { ack } => self.core.links[from.index()].acked(ack),
            Wire::Link { seq, ack, body } => {
                let link = &mut self.core.links[from.index()];
                link.acked(ack);
                let ready = link.receive(seq, body);
                let ack = link.ack();
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
            Timer::Retransmit => self.core.retransmit(ctx, &*self.rule),
            Timer::Beat | Timer::Watch | Timer::Collect => self.rule.on_timer(&mut self.core, ctx, timer),
        }
    }
}

/// A run of ordered multicast: which order, how many peers, and each peer's workload.
pub struct MulticastSetup {
    /// The ordering guarantee (and so the delivery rule) every peer runs.
    pub order: Order,
    /// The number of peers.
    pub nodes: usize,
    /// Messages each peer multicasts.
    pub msgs: u32,
    /// Mean time between a peer's multicasts, in milliseconds (exponentially distributed).
    pub interval_ms: f64,
    /// The link timeout: retransmission after half of it, giving up on a silent peer after ten.
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
        let core = Core {
            id,
            n,
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
            suspected: vec![false; n],
        };
        Ok(Peer { core, rule: order::rule(self.order, n) })
    }

    fn fault_model(&self) -> agora_core::FaultModel {
        use agora_core::{Crashes, FaultModel};
        // Every variant runs over the reliable link layer (or, unordered, promises nothing
        // under loss); no variant survives a restart, which loses the link state.
        let crashes = match self.order {
            Order::TotalLamport => Crashes::None,
            _ => Crashes::Stop,
        };
        let links = FaultModel {
            loss: true,
            duplication: true,
            reordering: true,
            pauses: true,
            clocks: true,
            crashes,
            ..FaultModel::NONE
        };
        match self.order {
            // Failover rests on the detector never suspecting a live sequencer.
            Order::TotalSequencer => FaultModel { synchronous: true, pauses: false, ..links },
            _ => FaultModel { partitions: true, ..links },
        }
    }

    fn checker(&self) -> Box<dyn Checker<Peer>> {
        Box::new(McastChecker::new(self.order, self.nodes))
    }
}
