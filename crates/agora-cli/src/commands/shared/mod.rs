//! What several commands share.

pub mod output;
pub mod repro;
