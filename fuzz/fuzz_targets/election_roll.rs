//! Fuzzes the election roll (`agora election register`'s `voter,state,credential`): any text
//! parses to voters numbered 0, 1, 2... each in a state, or a one-line error — never a panic.
#![no_main]

use agora_cli::election_formats;
use agora_protocols::vote_count::states::STATES;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    match election_formats::parse_roll(text) {
        Ok(roll) => {
            assert!(!roll.is_empty());
            assert!(roll.iter().all(|(state, _)| (*state as usize) < STATES.len()));
        }
        Err(e) => {
            let m = e.in_file("roll r.csv");
            assert!(!m.contains('\n') && !m.contains('\r'), "not one line: {m:?}");
        }
    }
});
