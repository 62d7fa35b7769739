//! Fuzzes the election file: any text parses to an election spec (every state in exactly one
//! region, 1 to 16 options) or a one-line error — never a panic.
#![no_main]

use agora_cli::election_file;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    match election_file::parse(text, 1_000) {
        Ok(spec) => {
            assert!((1..=16).contains(&spec.options.len()));
            assert!(spec.state_region.iter().all(|r| (*r as usize) < spec.regions.len()));
        }
        Err(e) => assert!(!e.contains('\n'), "not one line: {e:?}"),
    }
});
