//! Fuzzes the whole command line: any arguments (split at NUL bytes, not necessarily UTF-8)
//! parse to a command, a help text, or a one-line mistake — never a panic. A parsed `sim` or
//! `check` also has its fault flags validated, as the binary does before running.
#![no_main]

use agora_cli::cli::Command;
use agora_cli::{faults, parse, Parsed};
use libfuzzer_sys::fuzz_target;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

fuzz_target!(|bytes: &[u8]| {
    let args: Vec<OsString> = bytes.split(|b| *b == 0).map(|a| OsString::from_vec(a.to_vec())).collect();
    match parse(args) {
        Parsed::Mistake(m) => assert!(!m.is_empty() && !m.contains('\n'), "not one line: {m:?}"),
        Parsed::Print(_) => {}
        Parsed::Run(cli) => {
            // Validated against a small cluster: the flags' node sets, times and probabilities.
            let fault_args = match &cli.command {
                Command::Sim(a) => Some((&a.faults, a.params.nodes)),
                Command::Check(a) => Some((&a.faults, a.params.nodes)),
                Command::Multicast(a) => Some((&a.faults, 8)),
                _ => None,
            };
            if let Some((f, nodes)) = fault_args {
                if let Err(e) = faults::build(f, nodes.min(64)) {
                    assert!(!e.msg.contains('\n'), "not one line: {:?}", e.msg);
                }
            }
        }
    }
});
