//! Fuzzes the receipts `agora election verify` is given (CSV lines, JSON lines, a JSON object
//! or array): any bytes parse to receipts in real states, or a one-line error — never a panic.
#![no_main]

use agora_cli::election_formats;
use agora_protocols::vote_count::states::STATES;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    match election_formats::parse_receipts(bytes) {
        Ok(given) => {
            for g in &given {
                assert!((g.receipt.state as usize) < STATES.len());
                let place = g.at.in_file("receipts");
                assert!(!place.contains('\n'));
            }
        }
        Err(e) => {
            let m = e.in_file("receipts.csv");
            assert!(!m.contains('\n') && !m.contains('\r'), "not one line: {m:?}");
        }
    }
});
