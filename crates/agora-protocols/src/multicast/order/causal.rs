//! `causal`: a message is delivered only after everything that happened before it. Each
//! carries its sender's vector of deliveries; it waits until this peer has delivered as much
//! of every sender (Birman, Schiper & Stephenson 1991).

use super::Rule;
use crate::multicast::peer::{Core, Peer};
use crate::multicast::wire::{Body, Data};
use crate::multicast::MsgId;
use agora_core::{Context, NodeId};

#[derive(Default)]
pub(super) struct Causal {
    /// Messages received and not yet deliverable.
    waiting: Vec<Data>,
}

/// Whether `d` may be delivered by a peer that delivered `delivered` of each sender: it is
/// its sender's next message, and everything of the others that it depends on is delivered.
fn deliverable(d: &Data, delivered: &[u32]) -> bool {
    let o = d.id.origin as usize;
    d.id.seq == delivered[o] && (0..delivered.len()).all(|q| q == o || d.vc[q] <= delivered[q])
}

impl Causal {
    /// Delivers waiting messages while one is deliverable.
    fn try_deliver(&mut self, core: &mut Core, ctx: &mut Context<'_, Peer>) {
        while let Some(pos) = self.waiting.iter().position(|d| deliverable(d, &core.delivered)) {
            let d = self.waiting.swap_remove(pos);
            core.deliver(ctx, &d);
        }
    }
}

impl Rule for Causal {
    fn multicast(&mut self, core: &mut Core, ctx: &mut Context<'_, Peer>, id: MsgId, past: Vec<u32>) {
        let d = Data { id, ts: 0, vc: past };
        core.send_all(ctx, Body::Data(d.clone()));
        core.deliver(ctx, &d);
    }

    fn receive(&mut self, core: &mut Core, ctx: &mut Context<'_, Peer>, _from: NodeId, body: Body) {
        if let Body::Data(d) = body {
            if !core.delivered_ids.contains(&d.id) {
                self.waiting.push(d);
                self.try_deliver(core, ctx);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(origin: u32, seq: u32, vc: Vec<u32>) -> Data {
        Data { id: MsgId { origin, seq }, ts: 0, vc }
    }

    #[test]
    fn a_message_waits_for_its_senders_earlier_ones() {
        assert!(deliverable(&data(1, 0, vec![0, 0, 0]), &[0, 0, 0]));
        assert!(!deliverable(&data(1, 1, vec![0, 1, 0]), &[0, 0, 0]));
        assert!(!deliverable(&data(1, 0, vec![0, 0, 0]), &[0, 1, 0]), "already delivered");
    }

    #[test]
    fn a_message_waits_for_what_its_sender_had_delivered() {
        let d = data(1, 0, vec![2, 0, 1]);
        assert!(!deliverable(&d, &[1, 0, 1]));
        assert!(!deliverable(&d, &[2, 0, 0]));
        assert!(deliverable(&d, &[2, 0, 1]));
        assert!(deliverable(&d, &[3, 0, 4]));
    }
}
