//! The parsing half of the `agora` binary, as a library: the command line ([`cli`]) with its
//! range-checked values ([`values`]), the fault flags and files ([`faults`]), cluster files
//! ([`cluster_file`]), election files ([`election_file`]), the election's roll, receipts and board
//! ([`election_formats`]) and bounded file reading ([`input`]). The binary runs what these parse;
//! the fuzz targets in `fuzz/` call them without running anything.

pub mod cli;
pub mod cluster_file;
pub mod election_file;
pub mod election_formats;
pub mod error;
pub mod faults;
pub mod input;
pub mod resp;
pub mod values;

use clap::Parser;
use std::ffi::OsString;

/// What the command line asks for: a command, a help or version text to print (exit 0), or a
/// user's mistake in one line (exit 2).
#[derive(Debug)]
pub enum Parsed {
    /// A command to run.
    Run(cli::Cli),
    /// Help or version text, for stdout.
    Print(String),
    /// What is wrong with the arguments, in one line.
    Mistake(String),
}

/// Parses `agora`'s arguments (without the program name). Never panics, whatever the bytes.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Parsed {
    let argv = std::iter::once(OsString::from("agora")).chain(args);
    match cli::Cli::try_parse_from(argv) {
        Ok(cli) => Parsed::Run(cli),
        Err(e) => match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                Parsed::Print(e.render().to_string())
            }
            clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                Parsed::Mistake(missing_subcommand(&e))
            }
            _ => Parsed::Mistake(one_line(&e.render().to_string())),
        },
    }
}

/// A subcommand was needed and none was given.
fn missing_subcommand(e: &clap::Error) -> String {
    let usage = e.render().to_string();
    let usage = usage.lines().find_map(|l| l.trim().strip_prefix("Usage: ")).unwrap_or("agora <COMMAND>");
    format!("a subcommand is needed: {usage} (see `agora --help`)")
}

/// clap's message in one line: every line of its text up to the usage, joined, so that a
/// list of missing arguments is not cut off after its first line.
pub fn one_line(rendered: &str) -> String {
    let mut parts = Vec::new();
    for line in rendered.lines().map(str::trim) {
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if !line.is_empty() {
            parts.push(agora_sim::faults::escape_controls(line.trim_start_matches("error: ")));
        }
    }
    let msg = if parts.is_empty() { "invalid arguments".to_string() } else { parts.join(" ") };
    format!("{msg} (see `agora --help`)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mistake(args: &[&str]) -> String {
        match parse(args.iter().map(OsString::from)) {
            Parsed::Mistake(m) => m,
            other => panic!("{args:?} parsed: {other:?}"),
        }
    }

    #[test]
    fn every_mistake_is_one_line_that_names_what_is_wrong() {
        let m = mistake(&["node"]);
        assert!(m.contains("--config") && m.contains("--id"), "{m}");
        assert!(mistake(&[]).contains("subcommand"));
        assert!(mistake(&["sim", "flood", "--max-time-ms", "1e300"]).contains("--max-time-ms"));
        for args in [&["node"][..], &[], &["sim"], &["check", "flood", "--seeds", "0..18446744073709551615"]]
        {
            assert_eq!(mistake(args).lines().count(), 1);
        }
    }

    #[test]
    fn non_utf8_arguments_are_a_mistake_not_a_panic() {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(vec![0xff]);
        let parsed = parse([OsString::from("sim"), bad]);
        assert!(matches!(parsed, Parsed::Mistake(_)), "{parsed:?}");
    }
}
