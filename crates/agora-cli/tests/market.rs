//! `agora market` end to end: the report's scenarios in the simulator and over TCP, the local
//! ledger caught under a partition, the files of `--out`, a market file (and `agora sim` and
//! `agora check` with one), and bad flags and bad market files.

mod common;

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

/// The example market file.
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/market.toml");

fn agora(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agora")).args(args).output().expect("the agora binary runs")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// A passing run: checks passed, every buy asked was answered (served or out of stock), and
/// the money adds up: what buyers paid is what sellers got plus the commission.
fn assert_healthy(out: &Output) -> Value {
    let v = json(out);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(v["checks_passed"], true, "{}", v["summary"]["violations"]);
    assert_eq!(v["unanswered"], 0, "{v}");
    let rejected: u64 = v["rejected"].as_object().unwrap().values().map(|n| n.as_u64().unwrap()).sum();
    let buys = v["buys"].as_u64().unwrap();
    assert!(buys > 0 && v["served"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["served"].as_u64().unwrap() + rejected, buys, "{v}");
    let cash: i64 = v["accounts"].as_array().unwrap().iter().map(|a| a["cash_cents"].as_i64().unwrap()).sum();
    assert_eq!(cash + v["commission_cents"].as_i64().unwrap(), 0, "{v}");
    for k in ["elections", "wall_ms", "latency_ms", "buys_per_s"] {
        assert!(v.get(k).is_some(), "no `{k}` in {v}");
    }
    // The market opens (a trader's takeover in the books) within the trading span, and the
    // rate is the answers over that span.
    let (trading, wait) = (v["trading_ms"].as_f64().unwrap(), v["open_wait_ms"].as_f64().unwrap());
    assert!(trading > 0.0 && (0.0..=trading).contains(&wait), "{v}");
    let rate = buys as f64 / (trading / 1e3);
    assert!((v["buys_per_s"].as_f64().unwrap() - rate).abs() <= rate * 1e-9, "{v}");
    v
}

#[test]
fn every_scenario_in_the_simulator_passes_its_checks() {
    for (scenario, peers) in [("test-case-1", 7), ("test-case-2", 5), ("test-case-3", 7), ("normal", 7)] {
        let out = agora(&["market", "--sim", "--scenario", scenario, "--buys", "20", "--json"]);
        let v = assert_healthy(&out);
        assert_eq!(v["peers"], peers, "{scenario}");
        assert_eq!(v["accounts"].as_array().unwrap().len(), peers, "{scenario}");
        assert!(v["elections"].as_u64().unwrap() >= 1, "{scenario}: a trader was announced");
    }
}

#[test]
fn test_case_1_has_five_sellers_and_two_buyers() {
    let v = assert_healthy(&agora(&["market", "--sim", "--json"]));
    let roles: Vec<&str> =
        v["accounts"].as_array().unwrap().iter().map(|a| a["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["buyer", "buyer", "seller", "seller", "seller", "seller", "seller"]);
}

#[test]
fn the_text_shows_trades_announcements_and_the_verdict() {
    let out = agora(&["market", "--sim", "--sick", "0.2"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("Dear buyers and sellers, My ID is 6, and I am the new coordinator"), "{text}");
    assert!(text.contains("buyer 0 bought"), "{text}");
    assert!(text.contains("fell sick"), "{text}");
    assert!(text.contains("checks         ok: "), "{text}");
}

#[test]
fn the_local_ledger_under_a_partition_is_caught() {
    let args = [
        "market",
        "--sim",
        "--ledger",
        "local",
        "--sick",
        "0",
        "--partition",
        "0..5|5..7@10..300",
        "--seed",
        "3",
    ];
    let out = agora(&[&args[..], &["--json"]].concat());
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["checks_passed"], false);
    let named: Vec<&str> = v["summary"]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["property"].as_str().unwrap())
        .collect();
    assert!(
        named.iter().any(|p| ["trade-exactly-once", "no-negative-stock", "one-trader-per-term"].contains(p)),
        "{named:?}"
    );
    // The replicated ledger under the same partition keeps every property.
    assert_healthy(&agora(&[&args[..2], &args[4..], &["--json"]].concat()));
}

#[test]
fn over_tcp_a_small_market_passes_its_checks() {
    let v = assert_healthy(&agora(&["market", "--scenario", "test-case-3", "--buys", "3", "--json"]));
    assert_eq!(v["runtime"], "tcp");
    // Every buy answered was queued by a trader and taken by the books on its way, as the
    // peers' clock (one process's) saw it.
    let answered = v["buys"].as_u64().unwrap() - v["unanswered"].as_u64().unwrap();
    assert_eq!(v["phases_ms"]["count"].as_u64(), Some(answered), "{}", v["phases_ms"]);
}

#[test]
fn out_writes_the_figure_and_the_csv() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = agora(&["market", "--sim", "--json", "--out", d]);
    let v = assert_healthy(&out);
    let csv = std::fs::read_to_string(dir.path().join("market.csv")).unwrap();
    assert_eq!(csv.lines().count() as u64, v["buys"].as_u64().unwrap() + 1);
    assert!(
        csv.starts_with("buy,buyer,seq,good,qty,asked_ms,response_ms,result,new_trader,queued_ms,booked_ms")
    );
    // Every answered buy was queued by a trader and taken by the books on its way: its time
    // is split in three.
    let answered = v["buys"].as_u64().unwrap() - v["unanswered"].as_u64().unwrap();
    assert!(answered > 0);
    assert_eq!(v["phases_ms"]["count"].as_u64(), Some(answered), "{}", v["phases_ms"]);
    let max = v["latency_ms"]["max"].as_f64().unwrap();
    for part in ["to_trader", "in_books", "answer_back"] {
        let m = v["phases_ms"][part]["max"].as_f64().unwrap();
        assert!((0.0..=max).contains(&m), "{part}: {m} ms, the slowest answer {max} ms");
    }
    // In each row, the trader's queue and the books come after the ask and before the answer.
    for row in csv.lines().skip(1).filter(|r| !r.contains(",unanswered,")) {
        let f: Vec<&str> = row.split(',').collect();
        let ms = |i: usize| f[i].parse::<f64>().unwrap_or_else(|e| panic!("{row}: {e}"));
        assert!(0.0 <= ms(9) && ms(9) <= ms(10) && ms(10) <= ms(6), "{row}");
    }
    let svg = std::fs::read_to_string(dir.path().join("market.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("new trader"));
}

#[test]
fn bad_flags_are_one_line_and_exit_2() {
    common::assert_mistake(&["market", "--scenario", "test-case-9"], "--scenario `test-case-9`");
    common::assert_mistake(&["market", "--scenario", "test-case-1", "--peers", "5"], "has 7 peers");
    common::assert_mistake(&["market", "--peers", "1"], "--peers");
    common::assert_mistake(&["market", "--sick", "1.5"], "--sick");
    common::assert_mistake(&["market", "--buys", "-3"], "--buys");
    common::assert_mistake(&["market", "--recover-ms", "0"], "--recover-ms");
    common::assert_mistake(&["market", "--ledger", "shared"], "--ledger `shared`");
    common::assert_mistake(&["market", "--window", "1025"], "at most 1024");
    common::assert_mistake(&["market", "--window", "0"], "--window");
    common::assert_mistake(&["market", "--multicast", "some"], "--multicast `some`");
    common::assert_mistake(&["market", "--loss", "0.1"], "--loss needs --sim");
}

#[test]
fn a_market_file_gives_the_roles_goods_and_prices() {
    let v = assert_healthy(&agora(&["market", "--sim", "--market", EXAMPLE, "--sick", "0.1", "--json"]));
    assert_eq!(v["peers"], 6);
    assert_eq!(v["scenario"], EXAMPLE);
    let roles: Vec<&str> =
        v["accounts"].as_array().unwrap().iter().map(|a| a["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["buyer", "buyer", "seller", "seller", "seller", "seller"]);
    // Buyers pay the file's prices (fish 100, salt 120, boar 250 cents), and some bought salt
    // or boar.
    let price = |good: &str| match good {
        "fish" => 100,
        "salt" => 120,
        "boar" => 250,
        other => panic!("a good not in the file: {other}"),
    };
    let mut not_fish = 0;
    for a in &v["accounts"].as_array().unwrap()[..2] {
        let goods = a["goods"].as_object().unwrap();
        let cost: i64 = goods.iter().map(|(g, n)| price(g) * n.as_i64().unwrap()).sum();
        assert_eq!(a["cash_cents"].as_i64(), Some(-cost), "{a}");
        not_fish += goods.iter().filter(|(g, _)| *g != "fish").map(|(_, n)| n.as_i64().unwrap()).sum::<i64>();
    }
    assert!(not_fish > 0, "nothing but fish sold: {}", v["accounts"]);
    let text = String::from_utf8(agora(&["market", "--sim", "--market", EXAMPLE]).stdout).unwrap();
    assert!(text.contains("bought") && text.contains("checks         ok: "), "{text}");
    // `agora sim` and `agora check` read it as the market's parameter.
    let sim = agora(&["sim", "market", "--nodes", "6", "--market", EXAMPLE, "--json"]);
    assert_eq!(sim.status.code(), Some(0), "{}", String::from_utf8_lossy(&sim.stderr));
    let check = agora(&["check", "market", "--nodes", "6", "--market", EXAMPLE, "--seeds", "0..5"]);
    assert_eq!(check.status.code(), Some(0), "{}", String::from_utf8_lossy(&check.stdout));
}

#[test]
fn bad_market_files_are_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let peers = "[[peer]]\nrole = \"buyer\"\n[[peer]]\nrole = \"seller\"\ngood = \"fish\"\n";
    let cases = [
        ("[market\n".to_string(), "line 1"),
        (format!("[market]\nfee = 1\n{peers}"), "unknown field `fee`"),
        (format!("[goods]\nfish = 0\n{peers}"), "goods.fish: price must be above 0"),
        (
            format!("{peers}[[peer]]\nrole = \"buyer\"\nwants = \"salmon\"\n"),
            "peer[2].wants: no good `salmon`",
        ),
        ("[[peer]]\nrole = \"seller\"\ngood = \"fish\"\n".repeat(2), "no buyer"),
        (format!("[market]\nmax_qty = 0\n{peers}"), "market.max_qty: 0"),
        (
            format!("{peers}[[peer]]\nrole = \"seller\"\ngood = \"salt\"\nstock = 1000000000000000\n"),
            "peer[2].stock",
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("m{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let p = path.to_str().unwrap();
        common::assert_mistake(&["market", "--sim", "--market", p], &format!("market file {p}: "));
        common::assert_mistake(&["market", "--sim", "--market", p], want);
    }
    let missing = dir.path().join("none.toml");
    common::assert_mistake(&["market", "--market", missing.to_str().unwrap()], "cannot read it");
    common::assert_mistake(&["market", "--market", EXAMPLE, "--scenario", "normal"], "not both");
    common::assert_mistake(&["market", "--market", EXAMPLE, "--peers", "7"], "it has 6 peers, not --peers 7");
    common::assert_mistake(&["sim", "market", "--nodes", "7", "--market", EXAMPLE], "has 6 peers, not 7");
    assert!(Path::new(EXAMPLE).is_file());
}
