//! agora-core: the sans-IO protocol API of agora.
//!
//! A protocol is one state machine per node ([`Protocol`]). A driver — the simulator in
//! `agora-sim`, later the TCP runtime — feeds it events and applies the [`Effect`]s it returns
//! as data. A [`Setup`] builds the nodes of a run and its [`Checker`].
//!
//! The driving loop, in miniature (a real driver adds a network, faults and metrics):
//!
//! ```
//! use agora_core::*;
//! use rand::SeedableRng;
//! use std::time::Duration;
//!
//! /// Pings its right-hand neighbour once.
//! struct Ping;
//! #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
//! struct Hello;
//! impl Message for Hello {
//!     fn kind(&self) -> &'static str { "HELLO" }
//! }
//! impl Protocol for Ping {
//!     type Msg = Hello;
//!     type Timer = ();
//!     type Obs = NodeId;
//!     fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
//!         let next = NodeId((ctx.id().0 + 1) % ctx.nodes() as u32);
//!         ctx.send(next, Hello);
//!         ctx.set_timer((), Duration::from_millis(5));
//!     }
//!     fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, _: Hello) {
//!         ctx.observe(from);
//!     }
//!     fn on_timer(&mut self, _: &mut Context<'_, Self>, _: ()) {}
//! }
//!
//! let mut rng = Rng::seed_from_u64(7);
//! let mut effects = Vec::new();
//! let mut node = Ping;
//! node.on_start(&mut Context::new(NodeId(0), 3, Time::ZERO, &mut rng, &mut effects));
//! assert!(matches!(effects[0], Effect::Send { to: NodeId(1), .. }));
//! assert!(matches!(effects[1], Effect::SetTimer { .. }));
//! ```

pub mod check;
pub mod id;
pub mod interp;
pub mod metrics;
pub mod model;
pub mod protocol;
pub mod stable;
pub mod summary;
pub mod wire;

pub use check::{
    at_end_not_judged, Checker, EndState, Lifecycle, NoProperties, NotJudged, Property, PropertyKind,
    Violation,
};
pub use id::{NodeId, OpId, Time};
pub use interp::{Frame, Host, Interp, Targets, Timers, Write};
pub use metrics::{Counters, Metrics, OpStats, Quantiles};
pub use model::{Crashes, FaultModel, RunFaults};
pub use protocol::{
    Chooser, Context, Deferred, Destinations, Effect, EffectOf, Message, Names, Observation, Protocol, Rng,
    Setup, Symmetry, TimerName,
};
pub use stable::{Corrupt, Stable, REJOINING};
pub use summary::{KindRow, NotJudgedReport, RunSummary, ViolationReport};
