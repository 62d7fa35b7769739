//! `fifo`: a sender's messages are delivered in the order it sent them. The reliable FIFO
//! links do the ordering, so a message is delivered as it comes off its link.

use super::Rule;
use crate::multicast::peer::{Core, Peer};
use crate::multicast::wire::{Body, Data};
use crate::multicast::MsgId;
use agora_core::{Context, NodeId};

pub(super) struct Fifo;

impl Rule for Fifo {
    fn multicast(&mut self, core: &mut Core, ctx: &mut Context<'_, Peer>, id: MsgId, _past: Vec<u32>) {
        let d = Data::plain(id);
        core.send_all(ctx, Body::Data(d.clone()));
        core.deliver(ctx, &d);
    }

    fn receive(&mut self, core: &mut Core, ctx: &mut Context<'_, Peer>, _from: NodeId, body: Body) {
        if let Body::Data(d) = body {
            core.deliver(ctx, &d);
        }
    }
}
