//! What multicast peers send each other (a [`Body`] inside a link frame or raw, as a
//! [`Wire`] message) and their timers.

use super::MsgId;
use agora_core::Message;
use serde::{Deserialize, Serialize};

/// A multicast message as it travels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Data {
    pub id: MsgId,
    /// Lamport timestamp (total-lamport).
    pub ts: u64,
    /// Vector timestamp (causal): messages of each sender delivered before this one.
    pub vc: Vec<u32>,
}

impl Data {
    /// A message with no timestamp of either kind.
    pub fn plain(id: MsgId) -> Data {
        Data { id, ts: 0, vc: Vec::new() }
    }
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
