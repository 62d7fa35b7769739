//! agora-net: the TCP runtime. It drives the very same sans-IO protocols as the simulator
//! over real sockets: length-prefixed postcard frames, a versioned handshake authenticated with
//! a cluster secret, bounded connection slots, memory and timeouts per peer, persistent
//! connections with reconnect and backoff, bounded send queues, batched writes, timers on
//! tokio's clock, and redb for what nodes persist.
//!
//! **Invariant:** nothing in this crate is needed by a protocol; protocols never depend on it.

pub mod clock;
pub mod cluster;
mod conn;
pub mod faults;
pub mod handshake;
pub mod limits;
pub mod node;
pub mod prometheus;
pub mod recent;
pub mod report;
pub mod store;
mod wal;

pub use cluster::{
    run_bound, run_bound_observed, run_local, run_local_observed, run_node, End, Lone, ObsHooks, RunError,
    RunOutcome, Supervised,
};
pub use conn::{decode_frames, Decoded, FrameError, KEEPALIVE, MESSAGE_BUFFER_BYTES};
pub use faults::{Controls, Fault, FaultState, Happened, Order};
pub use handshake::Secret;
pub use limits::raise_fd_limit;
pub use node::{
    hand_down_listener, BoundNode, LocalCall, NetConfig, NodeReport, NodeShared, ObsHook, LISTEN_FD,
};
pub use report::{summarize, summarize_alone, summarize_keeping, Gathered, NodeOutput, Observations};
