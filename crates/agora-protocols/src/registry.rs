//! The registry: protocol CLI names, their parameters, and dispatch to a driver.
//!
//! A driver (the simulator, later the TCP runtime) implements [`Driver`]; [`dispatch`] builds
//! the named protocol's [`Setup`] from [`Params`] and hands it to the driver, so every driver
//! runs every protocol without a match of its own.

use crate::all_to_all::{self, AllToAllSetup};
use crate::flood::{self, FloodSetup};
use crate::stream::StreamSetup;
use crate::topology::{Graph, TopologyKind};
use agora_core::{NodeId, Setup};
use std::sync::Arc;

/// A protocol's name and a one-line description, for `--help` and error messages.
pub const PROTOCOLS: &[(&str, &str)] = &[
    ("all-to-all", "every node greets every other: N(N-1) messages"),
    ("flood", "flooding broadcast from --origin over --topology"),
    ("stream", "every node streams --msgs messages to every other, --window in flight per link (load)"),
];

/// Parameters shared by the protocols; each protocol uses the ones it needs.
#[derive(Clone, Debug)]
pub struct Params {
    pub nodes: usize,
    /// The run's master seed (random topologies derive from it).
    pub seed: u64,
    pub topology: TopologyKind,
    pub origin: u32,
    /// A deliberately broken variant, for watching checkers at work.
    pub variant: Option<String>,
    /// Messages per stream (`stream`).
    pub msgs: u32,
    /// Messages in flight per link (`stream`).
    pub window: u32,
}

impl Params {
    pub fn new(nodes: usize, seed: u64) -> Self {
        Params {
            nodes,
            seed,
            topology: TopologyKind::Complete,
            origin: 0,
            variant: None,
            msgs: 1000,
            window: 100,
        }
    }
}

/// A user's mistake in the protocol name or parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("unknown protocol `{0}`; known protocols: {known}", known = names())]
    UnknownProtocol(String),
    #[error("{0}")]
    Invalid(String),
}

fn names() -> String {
    PROTOCOLS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

/// Runs a protocol's setup; implemented by each driver.
pub trait Driver {
    type Output;
    fn run<S: Setup>(self, setup: S) -> Self::Output;
}

/// Builds protocol `name` from `params` and runs it with `driver`.
pub fn dispatch<D: Driver>(name: &str, params: &Params, driver: D) -> Result<D::Output, ParamError> {
    if params.nodes == 0 {
        return Err(ParamError::Invalid("--nodes must be at least 1".into()));
    }
    let variant = params.variant.as_deref();
    let bad_variant = |v: &str| ParamError::Invalid(format!("protocol `{name}` has no variant `{v}`"));
    match name {
        "all-to-all" => {
            if params.nodes > all_to_all::MAX_NODES {
                return Err(ParamError::Invalid(format!(
                    "all-to-all sends N(N-1) messages; --nodes {} is above its limit of {}",
                    params.nodes,
                    all_to_all::MAX_NODES
                )));
            }
            if let Some(v) = variant {
                return Err(bad_variant(v));
            }
            Ok(driver.run(AllToAllSetup { nodes: params.nodes }))
        }
        "flood" => {
            if params.origin as usize >= params.nodes {
                return Err(ParamError::Invalid(format!(
                    "--origin {} is not a node (nodes are 0..{})",
                    params.origin, params.nodes
                )));
            }
            let variant = match variant {
                None | Some("correct") => flood::Variant::Correct,
                Some("no-dedup") => flood::Variant::NoDedup,
                Some("no-relay") => flood::Variant::NoRelay,
                Some(v) => return Err(bad_variant(v)),
            };
            if params.topology == TopologyKind::Complete && params.nodes > all_to_all::MAX_NODES {
                return Err(ParamError::Invalid(format!(
                    "flood on a complete graph sends (N-1)^2 messages; use --topology regular:K above {} nodes",
                    all_to_all::MAX_NODES
                )));
            }
            let graph =
                Graph::build(params.topology, params.nodes, params.seed).map_err(ParamError::Invalid)?;
            Ok(driver.run(FloodSetup {
                graph: Arc::new(graph),
                origin: NodeId(params.origin),
                payload: params.seed,
                variant,
            }))
        }
        "stream" => {
            if let Some(v) = variant {
                return Err(bad_variant(v));
            }
            if params.window == 0 {
                return Err(ParamError::Invalid("--window must be at least 1".into()));
            }
            if params.nodes > 1_000 {
                return Err(ParamError::Invalid(format!(
                    "stream: --nodes {} is above its limit of 1000",
                    params.nodes
                )));
            }
            Ok(driver.run(StreamSetup { nodes: params.nodes, msgs: params.msgs, window: params.window }))
        }
        _ => Err(ParamError::UnknownProtocol(name.to_string())),
    }
}
