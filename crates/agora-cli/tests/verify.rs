//! `agora election verify` against forgeries: an election writes its board, results and
//! receipts with `--out`, and each test edits them the way a dishonest authority or a forger
//! would. Every genuine receipt verifies; every edit of the board or the results is caught;
//! every receipt of a file is judged; hostile files exit 2 with one line.

use agora_protocols::raft::Pos;
use agora_protocols::vote_count::states::by_code;
use agora_protocols::vote_count::{hex, Audit, Receipt, Results};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// An exit code, stdout and stderr.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn agora(args: &[&str]) -> Run {
    let o = Command::new(env!("CARGO_BIN_EXE_agora")).args(args).output().expect("the agora binary runs");
    Run {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into(),
        stderr: String::from_utf8_lossy(&o.stderr).into(),
    }
}

/// A small simulated election's `--out` folder in `dir`.
fn elect(dir: &Path) -> PathBuf {
    let out = dir.join("out");
    let r = agora(&["election", "--sim", "--voters", "400", "--seed", "5", "--out", out.to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    out
}

fn verify(receipts: &Path, out: &Path) -> Run {
    agora(&[
        "election",
        "verify",
        "--receipt",
        receipts.to_str().unwrap(),
        "--results",
        out.to_str().unwrap(),
    ])
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap()
}

/// The board's rows, each split into its columns.
fn board(out: &Path) -> Vec<Vec<String>> {
    read(&out.join("board.csv")).lines().skip(1).map(|l| l.split(',').map(String::from).collect()).collect()
}

fn write_board(out: &Path, rows: &[Vec<String>]) {
    let mut text = String::from("leaf,voter,state,option,hash,index,offset,leaf_hash\n");
    for r in rows {
        text.push_str(&r.join(","));
        text.push('\n');
    }
    write(&out.join("board.csv"), &text)
}

fn receipt_of(c: &[String]) -> Receipt {
    let hash: Vec<u8> = (0..16).map(|i| u8::from_str_radix(&c[4][2 * i..2 * i + 2], 16).unwrap()).collect();
    Receipt {
        leaf: c[0].parse().unwrap(),
        voter: c[1].parse().unwrap(),
        state: by_code(&c[2]).unwrap() as u8,
        option: c[3].parse().unwrap(),
        hash: hash.try_into().unwrap(),
        pos: Pos { index: c[5].parse().unwrap(), offset: c[6].parse().unwrap() },
    }
}

fn results(out: &Path) -> Value {
    serde_json::from_str(&read(&out.join("results.json"))).unwrap()
}

fn write_results(out: &Path, v: &Value) {
    write(&out.join("results.json"), &serde_json::to_string_pretty(v).unwrap())
}

/// Recomputes every row's leaf_hash column, as a forger who knows the format would, and
/// returns what the forged board adds up to.
fn reseal(out: &Path, rows: &mut [Vec<String>]) -> Results {
    let v = results(out);
    let options: Vec<String> = serde_json::from_value(v["options"].clone()).unwrap();
    let election = v["election"].as_str().unwrap();
    let mut audit = Audit::new(election, &options);
    for r in rows.iter_mut() {
        r[7] = hex(&audit.push(&receipt_of(r)).unwrap());
    }
    write_board(out, rows);
    audit.finish().unwrap()
}

fn not_verified(r: &Run, expected: &str) {
    assert_eq!(r.code, Some(1), "{}{}", r.stdout, r.stderr);
    let first = r.stdout.lines().next().unwrap_or("");
    assert!(first.starts_with("NOT VERIFIED: "), "{}", r.stdout);
    assert!(first.contains(expected), "expected `{expected}` in `{first}`");
    assert!(!r.stdout.contains("INCLUDED "), "no receipt is judged on a forged board: {}", r.stdout);
}

#[test]
fn every_genuine_receipt_verifies_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let out = elect(dir.path());
    let csv = read(&out.join("receipts.csv"));
    let n = csv.lines().count() - 1;
    assert!(n >= 390, "{n} receipts");
    let jsonl = read(&out.join("receipts.jsonl"));
    let array = format!("[{}]", jsonl.lines().collect::<Vec<_>>().join(",\n"));
    write(&dir.path().join("array.json"), &array);
    let one: Value = serde_json::from_str(jsonl.lines().nth(7).unwrap()).unwrap();
    write(&dir.path().join("one.json"), &serde_json::to_string_pretty(&one).unwrap());
    let headless = csv.lines().skip(1).take(5).collect::<Vec<_>>().join("\n");
    write(&dir.path().join("headless.csv"), &headless);
    for (file, count) in [
        (out.join("receipts.csv"), n),
        (out.join("receipts.jsonl"), n),
        (dir.path().join("array.json"), n),
        (dir.path().join("one.json"), 1),
        (dir.path().join("headless.csv"), 5),
    ] {
        let r = verify(&file, &out);
        assert_eq!(r.code, Some(0), "{}: {}{}", file.display(), r.stdout, r.stderr);
        assert_eq!(r.stdout.lines().filter(|l| l.starts_with("INCLUDED ")).count(), count, "{}", r.stdout);
        assert!(r.stdout.ends_with(&format!(
            "{count} of {count} receipts included; the board (400 rows) hashes to the published Merkle root \
             and adds up to the counts and digest of results.json\n"
        )));
    }
}

#[test]
fn an_edited_voter_column_fails_and_names_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let out = elect(dir.path());
    let mut rows = board(&out);
    let real = rows[9].clone();
    // The issue's forgery: row 9 now says voter 999999 (who never voted), with a receipt to match.
    rows[9][1] = "999999".into();
    write_board(&out, &rows);
    let mut forged = real.clone();
    forged[1] = "999999".into();
    let receipts = dir.path().join("forged.csv");
    let line =
        |c: &[String]| format!("agora-demo,{},{},{},{},{},{},{}", c[1], c[2], c[3], c[4], c[0], c[5], c[6]);
    write(&receipts, &format!("{}\n{}\n", line(&forged), line(&real)));
    not_verified(
        &verify(&receipts, &out),
        "board.csv line 11 (leaf 9): its columns do not hash to its leaf_hash",
    );
    // A forger who also recomputes the row's leaf_hash changes the root.
    reseal(&out, &mut rows);
    not_verified(
        &verify(&receipts, &out),
        "the board's leaves do not hash to the Merkle root of results.json",
    );
}

#[test]
fn a_forged_receipt_on_a_genuine_board_is_not_included() {
    let dir = tempfile::tempdir().unwrap();
    let out = elect(dir.path());
    let genuine = read(&out.join("receipts.csv")).lines().nth(4).unwrap().to_string();
    let c: Vec<&str> = genuine.split(',').collect();
    let forgeries = [
        // A voter who never voted claims another's ballot.
        format!("{},999999,{}", c[0], c[2..].join(",")),
        // Another option than the one counted.
        format!("{},{},{},{},{}", c[0], c[1], c[2], (c[3].parse::<u8>().unwrap() + 1) % 3, c[4..].join(",")),
        // A leaf past the end of the board.
        format!("{},400,{}", c[..5].join(","), c[6..].join(",")),
        // Another election.
        format!("elsewhere,{}", c[1..].join(",")),
    ];
    let expected =
        ["voter 999999 (the board: ", "option ", "leaf 400 is not on the board", "election `elsewhere`"];
    for (f, want) in forgeries.iter().zip(expected) {
        let file = dir.path().join("receipt.csv");
        write(&file, &format!("{genuine}\n{f}\n"));
        let r = verify(&file, &out);
        assert_eq!(r.code, Some(1), "{f}: {}{}", r.stdout, r.stderr);
        let lines: Vec<&str> = r.stdout.lines().collect();
        assert!(lines[0].starts_with("INCLUDED      "), "{}", r.stdout);
        assert!(lines[1].starts_with("NOT INCLUDED  ") && lines[1].contains("line 2: "), "{}", r.stdout);
        assert!(lines[1].contains(want), "expected `{want}` in `{}`", lines[1]);
        assert!(lines[2].starts_with("1 of 2 receipts included"), "{}", r.stdout);
    }
}

#[test]
fn moving_votes_between_options_is_caught_at_every_depth_of_forgery() {
    let dir = tempfile::tempdir().unwrap();
    let out = elect(dir.path());
    let receipts = out.join("receipts.csv");
    let mut rows = board(&out);
    let moved: Vec<String> = rows.iter().filter(|r| r[3] != "0").map(|r| r[1].clone()).collect();
    assert!(moved.len() > 100);
    for r in rows.iter_mut() {
        r[3] = "0".into();
    }
    // Only the option column: the first moved row no longer hashes to its leaf.
    write_board(&out, &rows);
    not_verified(&verify(&receipts, &out), "its columns do not hash to its leaf_hash");
    // Leaf hashes recomputed: the root differs from the published one.
    let forged = reseal(&out, &mut rows);
    not_verified(&verify(&receipts, &out), "do not hash to the Merkle root of results.json");
    // The published root replaced too: the published counts differ from the board's.
    let mut v = results(&out);
    v["merkle_root"] = hex(&forged.root).into();
    write_results(&out, &v);
    not_verified(&verify(&receipts, &out), "results.json gives Alder ");
    // The counts replaced too: the published digest differs.
    for (o, name) in ["Alder", "Birch", "Cedar"].iter().enumerate() {
        v["national"][name] = forged.national[o].into();
        for (i, s) in agora_protocols::vote_count::states::STATES.iter().enumerate() {
            v["per_state"][s.code][name] = forged.per_state[i][o].into();
        }
    }
    write_results(&out, &v);
    not_verified(&verify(&receipts, &out), "the board's tally does not hash to the digest of results.json");
    // Everything the authority publishes forged consistently: each voter whose vote moved
    // holds a receipt that the board contradicts.
    v["digest"] = hex(&forged.digest).into();
    write_results(&out, &v);
    let r = verify(&receipts, &out);
    assert_eq!(r.code, Some(1), "{}{}", r.stdout, r.stderr);
    let caught: Vec<&str> = r.stdout.lines().filter(|l| l.starts_with("NOT INCLUDED  ")).collect();
    let held = read(&receipts)
        .lines()
        .skip(1)
        .filter(|l| moved.contains(&l.split(',').nth(1).unwrap().to_string()))
        .count();
    assert_eq!(caught.len(), held, "{}", r.stdout);
    assert!(caught.iter().all(|l| l.contains(" differs: the receipt says option ")), "{caught:?}");
}

#[test]
fn edited_published_results_fail() {
    let dir = tempfile::tempdir().unwrap();
    let out = elect(dir.path());
    let genuine = results(&out);
    let receipts = out.join("receipts.csv");
    type Edit = fn(&mut Value);
    let edits: [(Edit, &str); 6] = [
        (
            |v| {
                let a = v["national"]["Alder"].as_u64().unwrap();
                v["national"]["Alder"] = (a - 1).into();
                v["national"]["Birch"] = (v["national"]["Birch"].as_u64().unwrap() + 1).into();
            },
            "results.json gives Alder ",
        ),
        (|v| v["per_state"]["CA"]["Cedar"] = 0.into(), "results.json gives Cedar 0 votes in CA"),
        (|v| v["counted"] = 401.into(), "results.json says 401 ballots were counted; the board has 400"),
        (|v| v["digest"] = "00000000000000000000000000000000".into(), "does not hash to the digest"),
        (|v| v["per_state"]["CA"]["Zed"] = 0.into(), "results.json counts `Zed` in CA, not an option"),
        (
            // Alder's votes relabelled Birch's and the other way round, consistently.
            |v| {
                v["options"] = serde_json::json!(["Birch", "Alder", "Cedar"]);
                let swap = |m: &mut Value| {
                    let (a, b) = (m["Alder"].clone(), m["Birch"].clone());
                    (m["Alder"], m["Birch"]) = (b, a);
                };
                swap(&mut v["national"]);
                for s in v["per_state"].as_object_mut().unwrap().values_mut() {
                    swap(s);
                }
            },
            "the board's tally does not hash to the digest of results.json",
        ),
    ];
    for (edit, want) in edits {
        let mut v = genuine.clone();
        edit(&mut v);
        write_results(&out, &v);
        not_verified(&verify(&receipts, &out), want);
    }
    write_results(&out, &genuine);
    assert_eq!(verify(&receipts, &out).code, Some(0));
}

#[test]
fn every_line_of_a_receipts_file_is_judged() {
    let dir = tempfile::tempdir().unwrap();
    let out = elect(dir.path());
    let mut lines: Vec<String> = read(&out.join("receipts.csv")).lines().map(String::from).collect();
    let n = lines.len() - 1;
    // Line 3 (the second receipt) gets another ballot's hash.
    let mut c: Vec<String> = lines[2].split(',').map(String::from).collect();
    c[4] = lines[3].split(',').nth(4).unwrap().into();
    lines[2] = c.join(",");
    let file = dir.path().join("receipts.csv");
    write(&file, &lines.join("\n"));
    let r = verify(&file, &out);
    assert_eq!(r.code, Some(1), "{}{}", r.stdout, r.stderr);
    let bad: Vec<&str> = r.stdout.lines().filter(|l| l.starts_with("NOT INCLUDED")).collect();
    assert_eq!(bad.len(), 1, "{}", r.stdout);
    assert!(bad[0].contains("receipts.csv line 3: ") && bad[0].contains("hash "), "{}", bad[0]);
    assert_eq!(r.stdout.lines().filter(|l| l.starts_with("INCLUDED ")).count(), n - 1);
    assert!(r.stdout.contains(&format!("{} of {n} receipts included", n - 1)));
}

#[test]
fn hostile_files_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = elect(dir.path());
    let genuine = read(&out.join("receipts.csv"));
    let one = genuine.lines().nth(1).unwrap();
    let with_column = |line: &str, i: usize, value: &str| {
        let mut c: Vec<&str> = line.split(',').collect();
        c[i] = value;
        c.join(",")
    };
    let p = |name: &str| dir.path().join(name);
    let receipts: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.csv", vec![], "no receipt in it"),
        ("binary.csv", vec![0xff, 0xfe, 0x00, b'\n'], "line 1: not UTF-8"),
        ("short.csv", format!("{}\n{one}\nagora-demo,1,CA\n", genuine.lines().next().unwrap()).into(), "line 3: expected"),
        ("state.csv", with_column(one, 2, "ZZ").into(), "state.csv line 1: not a state"),
        ("long.csv", "a".repeat(5000).into(), "line 1: longer than 1024 bytes"),
        ("number.csv", one.replacen("agora-demo,", "agora-demo,-1", 1).into(), "line 1: voter is not a number"),
        ("wrong.json", br#"{"election": "agora-demo", "voter": "7"}"#.to_vec(), "wrong.json line 1: invalid type"),
        ("extra.json", br#"[{"election":"x","voter":1,"state":"CA","option":0,"hash":"00","leaf":0,"index":1,"offset":0}]"#.to_vec(), "receipt 1: `hash` must be 32 hex digits"),
        ("truncated.json", b"{\"election\": \"agora-demo\",\n\"voter\": 7,".to_vec(), "truncated.json line 2: EOF"),
    ];
    let mut cases: Vec<(Vec<String>, String)> = Vec::new();
    for (name, bytes, want) in receipts {
        std::fs::write(p(name), bytes).unwrap();
        cases.push((vec![p(name).to_str().unwrap().into(), out.to_str().unwrap().into()], want.into()));
    }
    // A file over the cap is refused before it is read (a sparse file: no disk used).
    std::fs::File::create(p("huge.csv")).unwrap().set_len(2 << 30).unwrap();
    cases.push((
        vec![p("huge.csv").to_str().unwrap().into(), out.to_str().unwrap().into()],
        "more than".into(),
    ));
    // Hostile boards and results next to a good receipt.
    let good = p("good.csv");
    write(&good, one);
    let folders: Vec<(&str, &str, Vec<u8>, &str)> = vec![
        ("noheader", "board.csv", b"0,1,CA,0\n".to_vec(), "board.csv line 1: expected the header"),
        (
            "garbage",
            "board.csv",
            b"leaf,voter,state,option,hash,index,offset,leaf_hash\n\x01\x02,\n".to_vec(),
            "board.csv line 2: expected leaf,",
        ),
        ("badjson", "results.json", b"{\"election\": 3}".to_vec(), "results.json line 1: invalid type"),
        ("nojson", "results.json", b"".to_vec(), "results.json line 1: EOF"),
    ];
    for (folder, file, bytes, want) in folders {
        let d = p(folder);
        std::fs::create_dir(&d).unwrap();
        for f in ["board.csv", "results.json"] {
            std::fs::copy(out.join(f), d.join(f)).unwrap();
        }
        std::fs::write(d.join(file), bytes).unwrap();
        cases.push((vec![good.to_str().unwrap().into(), d.to_str().unwrap().into()], want.into()));
    }
    let huge = p("hugeresults");
    std::fs::create_dir(&huge).unwrap();
    std::fs::File::create(huge.join("results.json")).unwrap().set_len(2 << 20).unwrap();
    cases.push((
        vec![good.to_str().unwrap().into(), huge.to_str().unwrap().into()],
        "more than the 1048576".into(),
    ));
    cases.push((vec![good.to_str().unwrap().into(), "/nonexistent".into()], "cannot read results".into()));
    for (args, want) in cases {
        let r = verify(Path::new(&args[0]), Path::new(&args[1]));
        assert_eq!(r.code, Some(2), "{args:?}: {}{}", r.stdout, r.stderr);
        assert_eq!(r.stderr.trim_end().lines().count(), 1, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(&want), "{args:?}: expected `{want}` in `{}`", r.stderr);
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    }
}
