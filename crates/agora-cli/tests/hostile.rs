//! Hostile command lines against the binary: every one is a user's mistake, answered with one
//! line on stderr and exit code 2 — no panic, no hang, no runaway allocation — across every
//! subcommand. The good path is checked alongside, so the ranges do not refuse sane runs.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long one command may take before the test calls it a hang.
const HANG: Duration = Duration::from_secs(60);

/// Runs agora with `args`, killing it and failing if it has not ended within [`HANG`].
fn agora(args: &[OsString]) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the agora binary runs");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(HANG) {
        Ok(out) => out.expect("agora ran"),
        Err(_) => {
            // SAFETY: kill with the pid of our own child and a valid signal.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("{args:?} did not end within {HANG:?}");
        }
    }
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

fn assert_mistake(args: &[OsString]) {
    let out = agora(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?} printed more than one line: {stderr}");
    assert!(stderr.starts_with("agora: "), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"), "{args:?}: {stderr}");
}

/// Command lines that must be refused as a user's mistake: their arguments, separated by single
/// spaces (an argument may hold any other character, a line break or an escape).
const MISTAKES: &[&str] = &[
    // No subcommand, unknown ones, missing required arguments.
    "nope",
    "node",
    "node --config x.toml",
    "up",
    "sim",
    "check",
    "clocks",
    "election verify",
    "election register",
    // Durations: zero, negative, huge, not finite, not numbers.
    "sim flood --max-time-ms 1e300",
    "sim flood --max-time-ms 0",
    "sim flood --max-time-ms inf",
    "sim flood --max-time-ms NaN",
    "sim flood --max-time-ms 0x10",
    "run flood --max-time-ms 1e300",
    "check flood --max-time-ms -5",
    "sim raft --timeout-ms 0.000001 --max-time-ms 50",
    "sim raft --timeout-ms 0",
    "sim raft --timeout-ms 1e20",
    "sim raft --interval-ms -1",
    "sim flood --reorder-delay-ms 1e300",
    "election --sim --close-after-ms 1e300",
    "election --sim --timeout-ms 0",
    "multicast --interval-ms 1e300",
    "multicast --timeout-ms -1",
    // Counts: zero where one is needed, past their bounds, past the integer type.
    "sim flood --nodes 0",
    "sim flood --nodes 4294967296",
    "sim flood --nodes 18446744073709551616",
    "sim all-to-all --nodes 1000000",
    "sim stream --window 0",
    "sim stream --msgs 4294967295",
    "sim lamport-mutex --requests 4294967295",
    "sim ring-token --rounds 4294967295",
    "sim gossip --fanout 0",
    "sim raft --clients 4294967295",
    "sim raft --snapshot-every 0",
    "sim election --voters 18446744073709551615",
    "sim flood --max-events 0",
    "check flood --threads 0",
    "check flood --threads 100000",
    "check raft --seeds 0..4 --random-crashes 4294967295",
    "election --voters 0",
    "election --voters 18446744073709551615",
    "election --replicas 0",
    "election --replicas 1000000",
    "election --window 0",
    "election register --voters 18446744073709551615 --out /dev/null",
    "multicast --reps 18446744073709551615",
    "multicast --peers 0",
    "multicast --peers 100000",
    "multicast --msgs 4294967295",
    "complexity --nodes 0",
    "complexity --nodes 1000000000",
    "clocks lamport --scenario random --nodes 1000000",
    "clocks vector --events 4294967295",
    "bench --nodes 0",
    "bench --nodes 4294967295",
    "bench --runtime tcp --nodes 100000",
    "bench --protocol nope",
    "bench --runtime nope",
    "bench --msgs 0",
    "run flood --nodes 100000",
    // Ids: a node outside the cluster, or past u32.
    "sim flood --origin 4294967295",
    "sim flood --origin 5",
    "sim bully --start 99",
    "sim 2pc --no-votes 0",
    "sim 2pc --no-votes 4294967295",
    "node --config x.toml --id 4294967296",
    // Probabilities.
    "sim flood --loss 2",
    "sim flood --loss -0.1",
    "sim flood --duplicate NaN",
    "sim flood --reorder inf",
    "sim raft --reads 1.5",
    "election --bad-ballots 7",
    "complexity --carbon-intensity -1",
    "complexity --watts-per-core 1e300",
    // Seed ranges: empty, reversed, wrapping, unbounded, malformed.
    "check flood --seeds 0..18446744073709551615",
    "check flood --seeds 5..5",
    "check flood --seeds 9..1",
    "check flood --seeds 0..18446744073709551616",
    "check flood --seeds x",
    // Fault strings: huge values, nodes outside the cluster, overflowing ids, nonsense.
    "sim flood --latency uniform:0,1e308",
    "sim flood --latency constant:1e300",
    "sim flood --latency exp:inf",
    "sim flood --latency lognormal:1,1e300",
    "sim flood --latency lognormal:0,1",
    "sim flood --latency uniform:5,1",
    "sim flood --skew 0..4294967295=5 --drift 1=100",
    "sim flood --skew 0=1e300",
    "sim flood --drift 0=-1000000",
    "sim flood --drift 0=1e300",
    "sim flood --crash 4294967295@1",
    "sim flood --crash 0..4294967295@1",
    "sim flood --crash 0@1e300",
    "sim flood --crash 0@5..1",
    "sim flood --pause 0@NaN..5",
    "sim flood --partition 0..2|2..5@1e300",
    "sim flood --partition @1",
    "sim flood --one-way 0>9@1",
    "sim flood --one-way 0..1@1",
    "sim flood --regions mars",
    "sim flood --random-crashes 10001",
    "multicast --crash 99@1",
    "election --sim --crash 4294967295@1",
    // Files: devices, directories, missing, too big, binary, out-of-range contents.
    "sim flood --faults /dev/zero",
    "sim flood --faults /nonexistent/f.toml",
    "check flood --faults /dev/zero",
    "up --config /dev/zero",
    "node --config /dev/zero --id 0",
    "election --election /dev/zero",
    // Names and flags that must be text.
    "run flood --cluster ",
    "run flood --metrics-addr nowhere",
    "sim flood --topology regular:4294967295",
    "sim flood --topology regular:0",
    "clocks lamport --scenario MS9",
    "clocks sundial",
    "sim flood --frobnicate",
    // Values with line breaks and terminal escapes, echoed in the message: still one line.
    "sim flood --latency a\nb",
    "sim flood --crash 1\r\n2@3",
    "sim flood --faults no\nsuch\nfile",
    "sim no\nsuch",
    "sim flood --topology x\ny",
    "run flood --cluster a\nb",
];

#[test]
fn hostile_command_lines_are_one_line_mistakes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let write = |name: &str, text: &[u8]| {
        let p = d.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let big = write("big.toml", &vec![b'#'; 2 << 20]);
    let binary = write("binary.toml", &[0xff, 0xfe, 0x00, 0x80]);
    let huge_crash = write("crash.toml", b"[[crash]]\nnodes = \"0..4294967295\"\nat_ms = 1\n");
    let many_random = write("random.toml", b"[random_crashes]\ncount = 4294967295\n");
    let far_skew = write("skew.toml", b"[[clock]]\nnodes = \"0..2\"\nskew_ms = 1e300\n");
    let nan_loss = write("nan.toml", b"[network]\nloss = nan\n");
    let inf_latency = write("inf.toml", b"[network]\nlatency = { dist = \"constant\", ms = inf }\n");
    let big_region = write("region.toml", b"[network.regions]\nnames = [\"a\"]\nlatency_ms = [[1e308]]\n");
    let long_name = format!(
        "cluster = \"{}\"\nprotocol = \"flood\"\n[[node]]\nid = 0\naddr = \"127.0.0.1:0\"\n",
        "x".repeat(200)
    );
    let long_name = write("long.toml", long_name.as_bytes());
    let bad_chars = write(
        "chars.toml",
        b"cluster = \"a b\"\nprotocol = \"flood\"\n[[node]]\nid = 0\naddr = \"127.0.0.1:0\"\n",
    );
    let zero_idle = write(
        "idle.toml",
        b"cluster = \"c\"\nprotocol = \"flood\"\nidle_ms = 0\n[[node]]\nid = 0\naddr = \"127.0.0.1:0\"\n",
    );
    let bad_params = write(
        "params.toml",
        b"cluster = \"c\"\nprotocol = \"raft\"\n[params]\ntimeout_ms = 1e-9\n[[node]]\nid = 0\naddr = \"127.0.0.1:0\"\n",
    );
    let same_port = write(
        "same.toml",
        b"cluster = \"c\"\nprotocol = \"flood\"\n[[node]]\nid = 0\naddr = \"127.0.0.1:9\"\n[[node]]\nid = 1\naddr = \"127.0.0.1:9\"\n",
    );
    let election_bad =
        write("election.toml", b"id = \"e\"\noptions = []\n[[region]]\nname = \"r\"\nstates = []\n");
    let dirname = d.to_str().unwrap().to_string();
    let long_cluster = "x".repeat(129);
    // The same for lines naming files made above, and arguments with a space or none at all.
    let lines: Vec<Vec<&str>> = vec![
        vec![],
        vec!["sim", "flood", "--faults", &dirname],
        vec!["sim", "flood", "--faults", &big],
        vec!["sim", "flood", "--faults", &binary],
        vec!["sim", "flood", "--faults", &huge_crash],
        vec!["sim", "flood", "--faults", &many_random],
        vec!["sim", "flood", "--faults", &far_skew],
        vec!["sim", "flood", "--faults", &nan_loss],
        vec!["sim", "flood", "--faults", &inf_latency],
        vec!["sim", "flood", "--faults", &big_region],
        vec!["up", "--config", &dirname],
        vec!["up", "--config", &big],
        vec!["up", "--config", &long_name],
        vec!["up", "--config", &bad_chars],
        vec!["up", "--config", &zero_idle],
        vec!["up", "--config", &bad_params],
        vec!["up", "--config", &same_port],
        vec!["node", "--config", &long_name, "--id", "0"],
        vec!["election", "--election", &big],
        vec!["election", "--election", &election_bad],
        vec!["run", "flood", "--cluster", "has space"],
        vec!["run", "flood", "--cluster", &long_cluster],
    ];
    for line in MISTAKES {
        assert_mistake(&os(&line.split(' ').collect::<Vec<_>>()));
    }
    for line in &lines {
        assert_mistake(&os(line));
    }
    // Arguments that are not UTF-8, wherever they stand.
    let invalid = OsString::from_vec(vec![0xff, 0xfe]);
    assert_mistake(std::slice::from_ref(&invalid));
    assert_mistake(&[OsString::from("sim"), invalid.clone()]);
    assert_mistake(&[OsString::from("sim"), OsString::from("flood"), OsString::from("--faults"), invalid]);
}

#[test]
fn the_good_path_still_runs() {
    for line in [
        vec!["sim", "flood", "--nodes", "20", "--latency", "uniform:0,3600000", "--max-time-ms", "1e9"],
        vec!["sim", "flood", "--skew", "0..3=5", "--drift", "1=100", "--crash", "4@1..2"],
        vec!["check", "flood", "--seeds", "18446744073709551613..18446744073709551615"],
        vec!["check", "raft", "--seeds", "0..2", "--random-crashes", "3"],
        vec!["clocks", "vector", "--scenario", "random", "--nodes", "200", "--events", "3"],
    ] {
        let out = agora(&os(&line));
        assert_eq!(out.status.code(), Some(0), "{line:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    // The shortest timer is accepted and runs to its verdict: no Raft leader can be elected
    // with 1 µs election timeouts over 1 ms links.
    let out = agora(&os(&["sim", "raft", "--timeout-ms", "0.001", "--max-time-ms", "5"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("VIOLATION      `liveness`"));
}
