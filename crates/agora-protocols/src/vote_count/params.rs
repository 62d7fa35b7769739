//! The parameters of the federated election count run as a protocol (`agora sim election`,
//! cluster files): the legislature's replicas are the nodes; the roll is synthetic.

use super::settings::Settings;
use super::setup::VoteSetup;
use crate::params::{count, real, ParamError, Resolved, Spec, BAD_BALLOTS, TIMEOUT_MS, VOTERS, WINDOW};
use crate::registry::FromParams;
use std::sync::Arc;
use std::time::Duration;

impl FromParams for VoteSetup {
    const SPECS: &'static [Spec] = &[
        Spec::new(&VOTERS, count(2_000)),
        Spec::new(&WINDOW, count(100)),
        Spec::new(&BAD_BALLOTS, real(0.01)),
        Spec::new(&TIMEOUT_MS, real(20.0)),
    ];
    fn from_params(p: &Resolved) -> Result<Self, ParamError> {
        let bad = p.real(&BAD_BALLOTS);
        if bad > 0.5 {
            return Err(ParamError::invalid(&BAD_BALLOTS, format!("{bad}: a share between 0 and 0.5")));
        }
        let s = Settings {
            spec: Arc::new(super::default_spec(p.count(&VOTERS), p.seed)),
            replicas: p.nodes,
            timeout: p.millis(&TIMEOUT_MS),
            window: p.count(&WINDOW),
            bad,
            close_after: Duration::from_secs(60),
            seed: p.seed,
            roll: None,
        };
        super::validate(&s).map_err(ParamError::nodes)?;
        Ok(VoteSetup::new(s))
    }
}
