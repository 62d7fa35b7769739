//! Fuzzes the handshake: any first frame decodes to a hello that is accepted or refused with a
//! reason, or fails to decode; any proof or reply decodes or fails, and a proof made of the
//! input bytes never passes for one made with the secret — never a panic.
#![no_main]

use agora_core::wire;
use agora_net::handshake::{self, Expect, Hello, Proof, Reply, Role, Secret};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let expect = Expect { cluster: "fuzz".into(), protocol: "flood".into(), me: 1, nodes: 4 };
    let secret = Secret::from_bytes([42; 32]);
    if let Ok(Some((payload, _))) = wire::read_frame(bytes) {
        if let Ok(hello) = wire::decode::<Hello>(payload) {
            let _ = hello.check(&expect);
        }
        let _ = wire::decode::<Reply>(payload);
        let _ = wire::decode::<Proof>(payload);
    }
    if let Ok(hello) = wire::decode::<Hello>(bytes) {
        if let Err(reason) = hello.check(&expect) {
            assert!(!reason.is_empty());
        }
        let challenge = [7; 32];
        let real = handshake::mac(&secret, Role::Dialer, &hello, &challenge);
        let mut claimed = [0u8; 32];
        let n = bytes.len().min(32);
        claimed[..n].copy_from_slice(&bytes[..n]);
        assert_eq!(handshake::verify(&secret, Role::Dialer, &hello, &challenge, &claimed), claimed == real);
    }
});
