//! Communication patterns from the seed report: `central` (client–server), `ring-token` and
//! `gossip`. (`all-to-all` and `flood` live in their own modules.)

pub mod central;
pub mod gossip;
mod params;
pub mod ring_token;
