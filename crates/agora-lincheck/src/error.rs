//! `Error`: why a history cannot be checked — a file that does not parse, or events that do not
//! make a history — in one line that names where.

/// A history that cannot be read or checked, in one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The text does not parse: the line (1-based) and what is wrong there.
    #[error("line {line}: {msg}")]
    Parse {
        /// The line, counted from 1.
        line: usize,
        /// What is wrong, in a few words.
        msg: String,
    },
    /// The events parse but do not make a history the model can check.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// A parse error at `line`.
    pub fn parse(line: usize, msg: impl Into<String>) -> Error {
        Error::Parse { line, msg: msg.into() }
    }
}
