//! `UserError`: a mistake in the command or its input, reported in one line with exit code 2;
//! or a node's storage that cannot be used as it is (missing, corrupt), exit code 3.

use std::fmt;

/// Exit code of a user's mistake.
pub const EXIT_MISTAKE: u8 = 2;
/// Exit code of storage that cannot be used as it is: an operator must look at it.
pub const EXIT_STORAGE: u8 = 3;

/// A mistake the user can fix, or storage an operator must look at: one line and an exit code.
#[derive(Debug)]
pub struct UserError {
    /// What is wrong, in one line.
    pub msg: String,
    /// The process's exit code.
    pub code: u8,
}

/// A user's mistake, in one line.
#[allow(non_snake_case)]
pub fn UserError(msg: String) -> UserError {
    UserError { msg, code: EXIT_MISTAKE }
}

impl UserError {
    /// A run that could not start: a node's storage it refuses is [`EXIT_STORAGE`].
    pub fn from_run(e: agora_net::RunError) -> UserError {
        let code = match &e {
            agora_net::RunError::Store(s) if s.needs_operator() => EXIT_STORAGE,
            _ => EXIT_MISTAKE,
        };
        UserError { msg: e.to_string(), code }
    }
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for UserError {}

impl From<agora_sim::FaultError> for UserError {
    fn from(e: agora_sim::FaultError) -> Self {
        UserError(e.0)
    }
}

/// A parameter's mistake in the command line's words: `--origin`, not `origin`.
impl From<agora_protocols::ParamError> for UserError {
    fn from(e: agora_protocols::ParamError) -> Self {
        use agora_protocols::ParamError::*;
        let flag = |name: &str| format!("--{}", name.replace('_', "-"));
        UserError(match e {
            UnknownProtocol(_) => e.to_string(),
            NotUsed { protocol, param, used } => {
                let used: Vec<String> = used.iter().map(|u| flag(u)).collect();
                let used: Vec<&str> = used.iter().map(String::as_str).collect();
                format!(
                    "{} is not a parameter of {protocol} (its parameters: {})",
                    flag(param),
                    agora_protocols::params::list(&used)
                )
            }
            Invalid { param, why } => format!("{} {why}", flag(param)),
        })
    }
}
