//! Every subcommand of `agora`, one module each, and what several of them share.

pub mod bench;
pub mod check;
pub mod clocks;
pub mod complexity;
pub mod election;
pub mod multicast;
pub mod shared;
pub mod sim;
pub mod up;
