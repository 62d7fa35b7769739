//! The parameters of the multicast protocols: messages per peer, their mean interval and the
//! retransmission timeout; the order is the protocol's name.

use super::peer::MulticastSetup;
use super::Order;
use crate::params::{count, real, ParamError, Resolved, Spec, INTERVAL_MS, MSGS, TIMEOUT_MS};
use crate::registry::FromParams;

/// Most peers of a multicast group.
pub const MAX_PEERS: usize = 256;
/// Most messages per peer.
pub const MAX_MSGS: u32 = 100_000;

impl FromParams for MulticastSetup {
    const SPECS: &'static [Spec] = &[
        Spec::new(&MSGS, count(10)),
        Spec::new(&INTERVAL_MS, real(5.0)),
        Spec::new(&TIMEOUT_MS, real(20.0)),
    ];
    fn from_params(p: &Resolved) -> Result<Self, ParamError> {
        let order = Order::parse(p.protocol).expect("the table names multicast protocols by their order");
        p.at_most_nodes(MAX_PEERS, "multicast peers")?;
        let msgs: u32 = p.count(&MSGS);
        if msgs > MAX_MSGS {
            return Err(ParamError::invalid(
                &MSGS,
                format!("{msgs}: a multicast peer sends at most {MAX_MSGS}"),
            ));
        }
        let interval_ms = p.real(&INTERVAL_MS);
        if interval_ms <= 0.0 {
            return Err(ParamError::invalid(
                &INTERVAL_MS,
                format!("{interval_ms}: must be a positive number"),
            ));
        }
        Ok(MulticastSetup { order, nodes: p.nodes, msgs, interval_ms, timeout: p.millis(&TIMEOUT_MS) })
    }
}
