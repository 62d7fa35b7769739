//! Fuzzes the RESP request parser of `agora kv`: any bytes parse to whole requests, a need for
//! more bytes, or a protocol error — never a panic — within the limits, and fed in two pieces
//! (as a socket may deliver them) they parse to exactly what they parse to whole.
#![no_main]

use agora_cli::resp::{parse, Limits};
use libfuzzer_sys::fuzz_target;

fn all(bytes: &[u8], limits: &Limits) -> (Vec<Vec<Vec<u8>>>, usize, bool) {
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        match parse(&bytes[at..], limits) {
            Ok(Some((args, used))) => {
                assert!(used > 0 && at + used <= bytes.len());
                assert!(args.len() <= limits.max_array);
                assert!(args.iter().all(|a| a.len() <= limits.max_bulk.max(limits.max_inline)));
                out.push(args);
                at += used;
            }
            Ok(None) => return (out, at, false),
            Err(e) => {
                assert!(!e.0.contains('\n'));
                return (out, at, true);
            }
        }
    }
}

fuzz_target!(|bytes: &[u8]| {
    let limits = Limits { max_bulk: 64, max_array: 16, max_inline: 128, max_pending: 256 };
    let whole = all(bytes, &limits);
    if bytes.is_empty() {
        return;
    }
    // The first byte picks where a socket would have split the input.
    let cut = (bytes[0] as usize) % bytes.len();
    let (first, consumed, failed) = all(&bytes[..cut], &limits);
    if failed {
        // An error seen early is the same error later (the parser never needs a lookahead to
        // refuse), so the whole input fails at that request too.
        assert!(whole.2 && whole.0.len() == first.len());
        return;
    }
    let (rest, used, rest_failed) = all(&bytes[consumed..], &limits);
    let mut joined = first;
    joined.extend(rest);
    assert_eq!((joined, consumed + used, rest_failed), whole);
});
