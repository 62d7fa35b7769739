//! Fuzzes the inbound frame decoder: any bytes from a peer become messages or a clean error,
//! never a panic, and never an allocation sized by an unchecked length prefix.
#![no_main]

use agora_net::decode_frames;
use agora_protocols::flood::Rumor;
use agora_protocols::stream::Data;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let mut rumors: Vec<(Rumor, u32)> = Vec::new();
    let d = decode_frames(bytes, &mut rumors);
    assert!(d.consumed <= bytes.len());
    let mut data: Vec<(Data, u32)> = Vec::new();
    let d = decode_frames(bytes, &mut data);
    assert!(d.consumed <= bytes.len());
    let keepalive_bytes = d.keepalives * agora_net::KEEPALIVE.len();
    assert_eq!(data.iter().map(|(_, b)| *b as usize).sum::<usize>() + keepalive_bytes, d.consumed);
});
