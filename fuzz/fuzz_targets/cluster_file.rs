//! Fuzzes the cluster file: any text parses to a checked cluster file whose parameters build,
//! or to a one-line error — never a panic. Addresses are not resolved (no DNS in a fuzzer).
#![no_main]

use agora_cli::cluster_file::ClusterFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    match ClusterFile::parse(text) {
        Ok(f) => {
            assert!(!f.nodes.is_empty());
            if let Err(e) = f.params() {
                assert!(!e.msg.contains('\n'));
            }
        }
        Err(e) => assert!(!e.msg.contains('\n'), "not one line: {:?}", e.msg),
    }
});
