//! Every subcommand of `agora`, one module each (`election` and `experiment` folders of their
//! own), and [`shared`]: what several of them use.

pub mod bench;
pub mod check;
pub mod clocks;
pub mod cluster;
pub mod complexity;
pub mod election;
pub mod experiment;
pub mod explore;
pub mod health;
pub mod kv;
pub mod lincheck;
pub mod market;
pub mod multicast;
pub mod node;
pub mod protocols;
pub mod run;
pub mod schedule;
pub mod shared;
pub mod sim;
pub mod up;
pub mod vote;
