//! What multicast peers send each other (a [`Body`] inside a link frame or raw, as a
//! [`Wire`] message) and their timers.

use super::MsgId;
use agora_core::Message;
use serde::{Deserialize, Serialize};

/// A multicast message as it travels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Data {
    /// Which message: sender and sequence number.
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

/// What peers tell each other, inside a link frame or raw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// The start barrier: this peer is up. Multicasts begin once every peer said so.
    Ready,
    /// A multicast message (to the sequencer only, in total-sequencer).
    Data(Data),
    /// total-lamport: "my clock is now `ts`".
    TsAck {
        /// The sender's Lamport clock.
        ts: u64,
    },
    /// total-sequencer: message `data` is number `gseq` of epoch `epoch`.
    Order {
        /// The sequencer's epoch.
        epoch: u64,
        /// The global sequence number: the place of `data` in the one order.
        gseq: u64,
        /// The message ordered.
        data: Data,
    },
    /// total-sequencer: the sequencer of `epoch` is alive.
    Heartbeat {
        /// The sequencer's epoch.
        epoch: u64,
    },
    /// A new sequencer asks what the survivors know.
    StateReq {
        /// The new sequencer's epoch.
        epoch: u64,
    },
    /// A survivor's orders, and its own messages it never saw ordered.
    State {
        /// The epoch asked about.
        epoch: u64,
        /// `(global sequence number, message)` of every order it knows (`None`: a no-op).
        orders: Vec<(u64, Option<Data>)>,
        /// Its own messages sent to a sequencer and not seen ordered.
        pending: Vec<Data>,
    },
    /// The new sequencer's merged order: `None` entries are gaps nobody alive knew.
    NewOrder {
        /// The new sequencer's epoch.
        epoch: u64,
        /// `(global sequence number, message or no-op)`, the order from now on.
        orders: Vec<(u64, Option<Data>)>,
    },
}

/// A multicast peer's message on the network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Wire {
    /// A frame of the reliable link, with the cumulative ACK of the other direction.
    Link {
        /// The frame's sequence number on this link, from 0.
        seq: u64,
        /// The sender has every frame of the other direction below this number.
        ack: u64,
        /// What the frame carries.
        body: Body,
    },
    /// A bare cumulative acknowledgement, when there is no frame to carry it.
    Ack {
        /// The sender has every frame of the other direction below this number.
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

/// A multicast peer's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// Multicast the next message.
    Next,
    /// Resend what the links have not had acknowledged.
    Retransmit,
    /// Sequencer: heartbeat. Others: check the sequencer's heartbeat.
    Beat,
    /// Not the sequencer: if the sequencer was not heard since the last check, suspect it, and
    /// take over if next in line.
    Watch,
    /// New sequencer: the survivors' states are in (or overdue).
    Collect,
}
