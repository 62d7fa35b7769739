//! The parameters of the voting service in the simulator: its servers (`nodes`, an odd
//! number), its members, the session timeout, Raft's election timeout, and the broken variants
//! its checker must catch.

use super::sim::{Settings, Variant, VoteServiceSetup};
use crate::params::{count, real, ParamError, Resolved, Spec, MEMBERS, SESSION_MS, TIMEOUT_MS, VARIANT};
use crate::registry::FromParams;
use std::sync::Arc;

/// Most servers of one cluster.
pub const MAX_SERVERS: usize = 15;

impl FromParams for VoteServiceSetup {
    const SPECS: &'static [Spec] = &[
        Spec::new(&MEMBERS, count(6)),
        Spec::new(&SESSION_MS, real(200.0)),
        Spec::new(&TIMEOUT_MS, real(20.0)),
        Spec::optional(&VARIANT),
    ];
    /// `nodes` are the servers; the members come after them.
    fn from_params(p: &Resolved) -> Result<Self, ParamError> {
        let variant = match p.variant(&["correct", "early-expiry", "no-catch-up", "ack-unapplied"])? {
            "early-expiry" => Variant::EarlyExpiry,
            "no-catch-up" => Variant::NoCatchUp,
            "ack-unapplied" => Variant::AckUnapplied,
            _ => Variant::Correct,
        };
        p.at_most_nodes(MAX_SERVERS, "voting servers")?;
        if p.nodes % 2 == 0 {
            return Err(ParamError::nodes(format!(
                "{}: the voting service runs an odd number of servers (a majority of an even number tolerates no more failures)",
                p.nodes
            )));
        }
        let election = p.millis(&TIMEOUT_MS);
        let session = p.millis(&SESSION_MS);
        if session < election * 4 {
            return Err(ParamError::invalid(
                &SESSION_MS,
                format!(
                    "{session:?}: at least 4 election timeouts ({:?}), or members fail while a leader is elected",
                    election * 4
                ),
            ));
        }
        let s = Settings::new(p.nodes, p.count(&MEMBERS), election, session, variant, p.seed);
        Ok(VoteServiceSetup { s: Arc::new(s) })
    }
}
