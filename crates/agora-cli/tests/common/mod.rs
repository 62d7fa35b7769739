//! What the command-line tests share: how a user's mistake must be refused.

use std::process::Command;

/// Runs `agora` with `args` and asserts it refuses them as a user's mistake: exit code 2, one
/// line on stderr that contains `expected`, and no panic.
pub fn assert_mistake(args: &[&str], expected: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_agora")).args(args).output().expect("the agora binary runs");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?} printed more than one line: {stderr}");
    assert!(stderr.contains(expected), "{args:?}: expected `{expected}` in `{stderr}`");
    assert!(!stderr.contains("panicked"), "{args:?}");
}
