//! Fuzzes the bulletin board (`board.csv`) as `agora election verify` reads it: the header,
//! then rows, each a receipt and its leaf hash, or a one-line error — never a panic. The rows
//! read are also pushed into an `Audit` (the verifier's tally), which may refuse them but must
//! not panic.
#![no_main]

use agora_cli::election_formats::{BoardRows, ReadError};
use agora_protocols::vote_count::states::STATES;
use agora_protocols::vote_count::Audit;
use libfuzzer_sys::fuzz_target;

fn one_line(e: ReadError) {
    match e {
        ReadError::Io(e) => panic!("reading a slice failed: {e}"),
        ReadError::Format(e) => {
            let m = e.in_file("board.csv");
            assert!(!m.contains('\n') && !m.contains('\r'), "not one line: {m:?}");
        }
    }
}

fuzz_target!(|bytes: &[u8]| {
    let mut board = match BoardRows::new(bytes) {
        Ok(board) => board,
        Err(e) => return one_line(e),
    };
    let options: Vec<String> = ["yes", "no", "blank"].map(String::from).to_vec();
    let mut audit = Audit::new("fuzz", &options);
    let mut pushing = true;
    loop {
        match board.next_row() {
            Ok(Some((row, _stated))) => {
                assert!((row.state as usize) < STATES.len());
                assert!(board.line() >= 2);
                if pushing {
                    pushing = audit.push(&row).is_ok();
                }
            }
            Ok(None) => break,
            Err(e) => return one_line(e),
        }
    }
    if pushing {
        let _ = audit.finish();
    }
});
