//! Fuzzes fault configuration: any text as a TOML fault file, and as each of the CLI's fault
//! strings (latency, partition, one-way, crash, pause, NODES=VALUE), then validation against a
//! cluster — a `Faults` or a one-line error, never a panic or an allocation sized by the input.
#![no_main]

use agora_sim::faults::{parse_node_value, CrashSpec, Latency, OneWaySpec, PartitionSpec, PauseSpec};
use agora_sim::Faults;
use libfuzzer_sys::fuzz_target;

fn one_line(e: &agora_sim::FaultError) {
    assert!(!e.0.contains('\n'), "not one line: {:?}", e.0);
}

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    match Faults::from_toml(text) {
        Ok(f) => {
            for nodes in [1, 5, 1_000] {
                if let Err(e) = f.validate(nodes) {
                    one_line(&e);
                }
            }
        }
        Err(e) => one_line(&e),
    }
    let mut f = Faults::default();
    match text.parse::<Latency>() {
        Ok(l) => f.network.latency = l,
        Err(e) => one_line(&e),
    }
    match text.parse::<PartitionSpec>() {
        Ok(p) => f.partitions.push(p),
        Err(e) => one_line(&e),
    }
    match text.parse::<OneWaySpec>() {
        Ok(p) => f.one_way.push(p),
        Err(e) => one_line(&e),
    }
    match text.parse::<CrashSpec>() {
        Ok(c) => f.crashes.push(c),
        Err(e) => one_line(&e),
    }
    match text.parse::<PauseSpec>() {
        Ok(p) => f.pauses.push(p),
        Err(e) => one_line(&e),
    }
    if let Err(e) = parse_node_value(text, "--skew") {
        one_line(&e);
    }
    if let Err(e) = f.validate(5) {
        one_line(&e);
    }
});
