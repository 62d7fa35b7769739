//! Fuzzes the handshake: any first frame decodes to a hello that is accepted or refused with a
//! reason, or fails to decode — never a panic.
#![no_main]

use agora_core::wire;
use agora_net::handshake::{Expect, Hello, Reply};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let expect = Expect { cluster: "fuzz".into(), protocol: "flood".into(), me: 1, nodes: 4 };
    if let Ok(Some((payload, _))) = wire::read_frame(bytes) {
        if let Ok(hello) = wire::decode::<Hello>(payload) {
            let _ = hello.check(&expect);
        }
        let _ = wire::decode::<Reply>(payload);
    }
    if let Ok(hello) = wire::decode::<Hello>(bytes) {
        if let Err(reason) = hello.check(&expect) {
            assert!(!reason.is_empty());
        }
    }
});
