//! Reliable FIFO links under any protocol: what TCP gives an algorithm that assumes them,
//! given the same way in the simulator.
//!
//! Classic algorithms such as Lamport's mutual exclusion assume that every message arrives,
//! once, in the order it was sent on its link. Over TCP that holds; in the simulator with
//! `--loss`, `--duplicate` or `--reorder` (or plain latency jitter, which lets messages
//! overtake each other) it does not, and the algorithm breaks for a reason that says nothing
//! about it. [`Reliable`] wraps a protocol's node: each message it sends to a peer gets that
//! link's next sequence number, is kept until the peer acknowledges it cumulatively, and is
//! sent again with exponential back-off until then; the receiver delivers a peer's messages in
//! sequence order, exactly once, holding back the ones that overtook a missing one (the
//! sliding window of TCP and of Tanenbaum and Wetherall, *Computer Networks*, §3.4).
//!
//! With [`Links::Raw`] the wrapper passes messages through untouched, so the algorithm meets
//! the network's faults as they are: that is what `--links raw` shows.
//!
//! **Invariants.** Within a link, the inner protocol receives messages in the order they were
//! sent and each once, whatever the network loses, duplicates or reorders, as long as the link
//! is eventually reachable. A peer's sequence number may run at most [`WINDOW`] ahead of what
//! has been delivered: a frame further ahead (only a hostile peer sends one) is dropped, so
//! the hold-back queue is bounded. The link state is not persisted: like a TCP connection, it
//! does not survive a crash, and the algorithms wrapped here are crash-stop.

use crate::multicast::link::Link;
use agora_core::{Context, Destinations, Effect, EffectOf, FaultModel, Message, NodeId, Protocol};
use serde::{Deserialize, Serialize};
use std::hash::{Hash, Hasher};
use std::time::Duration;

/// The first retransmission timeout; it doubles on every timeout without progress.
pub const RTO_MIN: Duration = Duration::from_millis(20);
/// The largest retransmission timeout.
pub const RTO_MAX: Duration = Duration::from_millis(1_000);
/// How far past the next expected sequence number a received frame may be.
pub const WINDOW: u64 = 4_096;
/// Frames sent again per peer per timeout, at most.
const RESEND_MAX: usize = 256;

/// Whether a protocol's messages travel over reliable FIFO links or raw ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Links {
    /// Sequence numbers, acknowledgements and retransmission: every message arrives once and
    /// in order, as over TCP.
    Reliable,
    /// Messages as the network delivers them: lost, duplicated and reordered if it does so.
    Raw,
}

impl Links {
    /// The `--links` values.
    pub const NAMES: [&'static str; 2] = ["reliable", "raw"];

    /// Parses a `--links` value (`reliable` when absent).
    pub fn parse(s: Option<&str>) -> Option<Links> {
        match s.unwrap_or("reliable") {
            "reliable" => Some(Links::Reliable),
            "raw" => Some(Links::Raw),
            _ => None,
        }
    }

    /// The fault model of a protocol whose own is `model`, run over these links: reliable
    /// links add tolerance of loss, duplication, reordering and partitions that heal.
    pub const fn model(self, model: FaultModel) -> FaultModel {
        match self {
            Links::Raw => model,
            Links::Reliable => {
                FaultModel { loss: true, duplication: true, reordering: true, partitions: true, ..model }
            }
        }
    }
}

/// A frame on a link.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Frame<M> {
    /// A message over a raw link.
    Raw(M),
    /// A message over a reliable link: its sequence number on the link, and the sender's
    /// cumulative acknowledgement of the reverse direction.
    Data {
        /// The message's place on the link, from 0.
        seq: u64,
        /// Every frame of the reverse direction below this has arrived.
        ack: u64,
        /// The message.
        body: M,
    },
    /// A cumulative acknowledgement alone.
    Ack {
        /// Every frame below this has arrived.
        ack: u64,
    },
}

impl<M: Message> Message for Frame<M> {
    fn kind(&self) -> &'static str {
        match self {
            Frame::Raw(m) | Frame::Data { body: m, .. } => m.kind(),
            Frame::Ack { .. } => "LINK-ACK",
        }
    }
}

/// The timers of a wrapped node: the inner protocol's, and the retransmission timer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LinkTimer<T> {
    /// One of the inner protocol's timers.
    Inner(T),
    /// Unacknowledged frames are due again.
    Retransmit,
}

/// A node of protocol `P` whose messages go over [`Links`].
#[derive(Clone)]
pub struct Reliable<P: Protocol> {
    inner: P,
    mode: Links,
    /// One link per node of the cluster (the entry for this node is unused).
    links: Vec<Link<P::Msg>>,
    /// The current retransmission timeout; reset to [`RTO_MIN`] when an acknowledgement
    /// brings progress.
    rto_ms: u64,
    /// Whether the retransmission timer is set.
    armed: bool,
}

impl<P: Protocol + Hash> Hash for Reliable<P>
where
    P::Msg: Hash,
{
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.hash(state);
        self.mode.hash(state);
        self.links.hash(state);
        self.rto_ms.hash(state);
        self.armed.hash(state);
    }
}

impl<P: Protocol> Reliable<P> {
    /// Wraps `inner`, a node of a cluster of `nodes`.
    pub fn new(inner: P, nodes: usize, mode: Links) -> Self {
        let links =
            if mode == Links::Reliable { (0..nodes).map(|_| Link::default()).collect() } else { Vec::new() };
        Reliable { inner, mode, links, rto_ms: RTO_MIN.as_millis() as u64, armed: false }
    }

    /// The wrapped node.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// Runs one handler of the inner protocol and sends its effects on over the links.
    fn step(&mut self, ctx: &mut Context<'_, Self>, f: impl FnOnce(&mut P, &mut Context<'_, P>)) {
        let mut effects: Vec<EffectOf<P>> = Vec::new();
        let (id, nodes, now) = (ctx.id(), ctx.nodes(), ctx.now());
        {
            let mut inner_ctx = Context::new(id, nodes, now, ctx.rng(), &mut effects);
            f(&mut self.inner, &mut inner_ctx);
        }
        for e in effects {
            match e {
                // Sending early is a permission, not a duty: over a link it goes out in order.
                Effect::Send { to, msg } | Effect::SendEarly { to, msg } => self.send(ctx, to, msg),
                Effect::Multicast { to, msg } | Effect::MulticastEarly { to, msg } => {
                    let to: Vec<NodeId> = match to {
                        Destinations::AllOthers => {
                            (0..nodes as u32).map(NodeId).filter(|&n| n != id).collect()
                        }
                        Destinations::Nodes(v) => v,
                    };
                    if self.mode == Links::Raw {
                        ctx.multicast(to, Frame::Raw(msg));
                    } else {
                        for n in to {
                            self.send(ctx, n, msg.clone());
                        }
                    }
                }
                Effect::SetTimer { timer, after } => ctx.set_timer(LinkTimer::Inner(timer), after),
                Effect::CancelTimer { timer } => ctx.cancel_timer(LinkTimer::Inner(timer)),
                Effect::Persist { key, value } => ctx.persist_bytes(key, value),
                Effect::Unpersist { key } => ctx.unpersist(key),
                Effect::UnpersistRange { from, to } => ctx.unpersist_range(from, to),
                Effect::PersistLater { key, value, done } => {
                    ctx.persist_later(key, value, LinkTimer::Inner(done))
                }
                Effect::Synced { done } => ctx.when_synced(LinkTimer::Inner(done)),
                Effect::Observe(o) => ctx.observe(o),
                Effect::OpBegin(op) => ctx.op_begin(op),
                Effect::OpEnd(op) => ctx.op_end(op),
            }
        }
    }

    /// Sends `msg` to `to` over its link. A destination outside the cluster goes out raw, for
    /// the driver to report as the protocol's error.
    fn send(&mut self, ctx: &mut Context<'_, Self>, to: NodeId, msg: P::Msg) {
        let Some(link) = self.links.get_mut(to.index()) else {
            ctx.send(to, Frame::Raw(msg));
            return;
        };
        let seq = link.send(msg.clone(), ctx.now());
        let ack = link.ack();
        ctx.send(to, Frame::Data { seq, ack, body: msg });
        self.arm(ctx);
    }

    fn arm(&mut self, ctx: &mut Context<'_, Self>) {
        if !self.armed {
            self.armed = true;
            ctx.set_timer(LinkTimer::Retransmit, Duration::from_millis(self.rto_ms));
        }
    }

    /// Takes an acknowledgement from `from`: progress resets the back-off.
    fn acked(&mut self, from: usize, ack: u64) {
        let link = &mut self.links[from];
        let before = link.idle();
        link.acked(ack);
        if !before {
            self.rto_ms = RTO_MIN.as_millis() as u64;
        }
    }
}

impl<P: Protocol> Protocol for Reliable<P> {
    type Msg = Frame<P::Msg>;
    type Timer = LinkTimer<P::Timer>;
    type Obs = P::Obs;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        self.step(ctx, |p, c| p.on_start(c));
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, frame: Frame<P::Msg>) {
        match frame {
            Frame::Raw(msg) => self.step(ctx, |p, c| p.on_message(c, from, msg)),
            Frame::Data { .. } | Frame::Ack { .. } if from.index() >= self.links.len() => {
                // A reliable frame on a raw link, or from outside the cluster: not ours.
            }
            Frame::Ack { ack } => self.acked(from.index(), ack),
            Frame::Data { seq, ack, body } => {
                let i = from.index();
                self.acked(i, ack);
                if seq >= self.links[i].ack().saturating_add(WINDOW) {
                    return; // too far ahead: only a hostile peer sends that
                }
                for msg in self.links[i].receive(seq, body) {
                    self.step(ctx, |p, c| p.on_message(c, from, msg));
                }
                // Acknowledge every data frame, duplicates included: the sender may have
                // lost the earlier acknowledgement.
                ctx.send(from, Frame::Ack { ack: self.links[i].ack() });
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, timer: LinkTimer<P::Timer>) {
        match timer {
            LinkTimer::Inner(t) => self.step(ctx, |p, c| p.on_timer(c, t)),
            LinkTimer::Retransmit => {
                self.armed = false;
                let rto = Duration::from_millis(self.rto_ms);
                let now = ctx.now();
                for (i, link) in self.links.iter_mut().enumerate() {
                    let ack = link.ack();
                    for (seq, body) in link.due(now, rto, RESEND_MAX) {
                        ctx.send(NodeId(i as u32), Frame::Data { seq, ack, body });
                    }
                }
                if self.links.iter().any(|l| !l.idle()) {
                    self.rto_ms = (self.rto_ms * 2).min(RTO_MAX.as_millis() as u64);
                    self.arm(ctx);
                }
            }
        }
    }

    fn on_stop(&mut self, ctx: &mut Context<'_, Self>) {
        self.step(ctx, |p, c| p.on_stop(c));
    }

    fn background(&self) -> bool {
        self.inner.background() && self.links.iter().all(|l| l.idle())
    }
}
