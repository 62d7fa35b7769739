//! `agora experiment`: published experiments reproduced in the simulator, one module each —
//! [`raft_downtime`] (Figure 16 of the Raft paper).

pub mod raft_downtime;

use crate::cli::{Experiment, ExperimentArgs};
use crate::error::UserError;

/// Runs the experiment `agora experiment` names; returns the process exit code.
pub fn run(args: &ExperimentArgs) -> Result<i32, UserError> {
    match &args.which {
        Experiment::RaftDowntime(a) => raft_downtime::run(a),
    }
}
