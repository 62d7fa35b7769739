//! `unordered`: best effort. A message is sent once to every peer, outside the links, and
//! delivered on arrival: no reliability, no order.

use super::Rule;
use crate::multicast::peer::{Core, Peer};
use crate::multicast::wire::{Body, Data, Wire};
use crate::multicast::MsgId;
use agora_core::{Context, NodeId};

pub(super) struct Unordered;

impl Rule for Unordered {
    fn multicast(&mut self, core: &mut Core, ctx: &mut Context<'_, Peer>, id: MsgId, _past: Vec<u32>) {
        let d = Data::plain(id);
        ctx.broadcast(Wire::Raw(Body::Data(d.clone())));
        core.deliver(ctx, &d);
    }

    fn receive(&mut self, core: &mut Core, ctx: &mut Context<'_, Peer>, _from: NodeId, body: Body) {
        if let Body::Data(d) = body {
            core.deliver(ctx, &d);
        }
    }

    fn reliable(&self) -> bool {
        false
    }
}
