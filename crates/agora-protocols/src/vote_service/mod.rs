//! `vote_service`: the voting service of `../shared/seeds/003_*` — members log in, declare
//! their node info, discover each other, negotiate what the service stores, open questions
//! and vote; a consensus, and every member joining, leaving or failing, is pushed to every
//! member. The report's one server is a cluster here: the service's state is a [`Board`]
//! replicated by agora's Raft log, so killing any minority of servers, the leader included,
//! loses no acknowledged operation.
//!
//! - [`board`]: the replicated state and its commands (docs/vote-protocol.md maps the line
//!   protocol onto them).
//! - [`server`]: one server — a Raft replica of the board, the session its front end submits
//!   through, the batched heartbeats of its clients and, on the leader, the failure detector
//!   that expires silent sessions through the log.
//! - [`sim`]: the service as a simulated system (`agora sim|check vote-service`): server nodes
//!   embedding [`server::Server`] and [`member`]s, simulated clients that follow the report's
//!   menu; [`checker`] judges every run. docs/vote-service.md tells the design.

pub mod board;
pub mod checker;
pub mod member;
mod params;
pub mod server;
pub mod sim;

pub use board::{Board, BoardCmd, BoardOut, BoardQuery, Event, VoteError};
pub use sim::VoteServiceSetup;

/// A member's identifier, shown to others (the report's "PIN"): unique, never reused.
pub type Pin = u32;
/// A session's number.
pub type Sid = u64;
/// A question's number.
pub type QuestionId = u32;
/// The BLAKE3 hash of a token.
pub type TokenHash = [u8; 32];
