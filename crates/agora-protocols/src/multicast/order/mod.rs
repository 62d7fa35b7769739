//! The delivery rule of each [`Order`], one file each: what a peer sends when it multicasts,
//! and what it does with what comes (the peer's shared machinery is in [`super::peer`]).

mod causal;
mod fifo;
mod sequencer;
mod total_lamport;
mod unordered;

use super::peer::{Core, Peer};
use super::wire::{Body, Timer};
use super::{MsgId, Order};
use agora_core::{Context, NodeId};

/// An order's delivery rule. The peer calls it with its shared [`Core`]; `Send` as every
/// protocol is (the TCP runtime runs a node on its own task).
pub(super) trait Rule: Send {
    /// Sends this peer's new message `id` (`past`: its causal past) and delivers what it can.
    fn multicast(&mut self, core: &mut Core, ctx: &mut Context<'_, Peer>, id: MsgId, past: Vec<u32>);

    /// A body from `from` (through its link, if the order is reliable); never `Ready`.
    fn receive(&mut self, core: &mut Core, ctx: &mut Context<'_, Peer>, from: NodeId, body: Body);

    /// Whether READY and the messages go over the reliable links (all but `unordered`).
    fn reliable(&self) -> bool {
        true
    }

    /// Arms the rule's own timers: at the start, and again when the workload starts.
    fn arm(&mut self, _core: &mut Core, _ctx: &mut Context<'_, Peer>) {}

    /// Something came from `from`: a sign of life.
    fn heard(&mut self, _from: NodeId) {}

    /// One of the rule's own timers (`Beat`, `Watch`, `Collect`).
    fn on_timer(&mut self, _core: &mut Core, _ctx: &mut Context<'_, Peer>, _timer: Timer) {}

    /// Whether the rule still waits for an answer from peer `p`, suspected or not: its link
    /// keeps resending.
    fn awaits(&self, _p: usize) -> bool {
        false
    }

    /// Whether the rule judges peer `p`'s liveness itself: its link never gives up on it.
    fn watches(&self, _core: &Core, _p: NodeId) -> bool {
        false
    }
}

/// The rule of `order` for a peer among `n`.
pub(super) fn rule(order: Order, n: usize) -> Box<dyn Rule> {
    match order {
        Order::Unordered => Box::new(unordered::Unordered),
        Order::Fifo => Box::new(fifo::Fifo),
        Order::Causal => Box::new(causal::Causal::default()),
        Order::TotalLamport => Box::new(total_lamport::TotalLamport::new(n)),
        Order::TotalSequencer => Box::new(sequencer::Sequencer::new(n)),
    }
}
