//! agora-protocols: distributed algorithms written against agora's sans-IO API, each with its
//! checker, and the [`registry`] that maps CLI names to them.
//!
//! **Invariant:** this crate depends on `agora-core` only — never on a driver (simulator or
//! runtime) — except in its tests.

#[macro_use]
mod kinds;
#[macro_use]
mod setup;

pub mod all_to_all;
pub mod commit;
pub mod election;
pub mod flood;
pub mod logical_clocks;
pub mod market;
pub mod multicast;

pub mod mutex;
pub mod params;
pub mod patterns;
pub mod raft;
pub mod registry;
pub mod reliable;
pub mod stream;
pub mod topology;
pub mod vote_count;
pub mod vote_service;

pub use params::{ParamError, Params};
pub use registry::{dispatch, Driver, FromParams, PROTOCOLS};
pub use topology::{Graph, TopologyKind};
