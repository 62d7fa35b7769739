//! `UserError`: a mistake in the command or its input, reported in one line with exit code 2.

use std::fmt;

#[derive(Debug)]
pub struct UserError(pub String);

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UserError {}

impl From<agora_sim::FaultError> for UserError {
    fn from(e: agora_sim::FaultError) -> Self {
        UserError(e.0)
    }
}

impl From<agora_protocols::ParamError> for UserError {
    fn from(e: agora_protocols::ParamError) -> Self {
        UserError(e.to_string())
    }
}
