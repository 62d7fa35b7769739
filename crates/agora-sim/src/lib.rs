//! agora-sim: a deterministic discrete-event simulator for agora protocols.
//!
//! [`Simulation`] runs every node of a [`agora_core::Setup`] in one process under virtual
//! time. One `u64` seed determines the whole run; [`Faults`] names everything that can go
//! wrong; the [`Outcome`] carries metrics, checker verdicts, the trace digest and, on request,
//! a recording for a space-time diagram ([`diagram::render_svg`]).

pub mod diagram;
pub mod digest;
pub mod explore;
pub mod faults;
mod net;
pub mod nodeset;
mod queue;
pub mod sim;

pub use digest::Digest;
pub use faults::{
    ClockSpec, CrashSpec, FaultError, Faults, Latency, LinkSpec, Network, OneWaySpec, PartitionSpec,
    PauseSpec, Regions, Wipe,
};
pub use nodeset::NodeSet;
pub use sim::{EndReason, Outcome, SimConfig, Simulation, MAX_PENDING_EVENTS};
