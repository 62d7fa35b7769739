//! The election's public files and their check: the bulletin board (`board.csv`) and the
//! receipts (`receipts.csv`, `receipts.jsonl`) that `agora election --out` writes (their
//! formats are parsed and written by `agora_cli::election_formats`, which the fuzz targets
//! call), and `agora election verify`, which recomputes every leaf, the Merkle root, the counts and the
//! digest from the board, compares them with `results.json`, and judges every receipt given.
//!
//! Every file read here may be hostile: sizes and line lengths are capped before reading, and
//! a malformed line is a one-line error naming the file and the line (exit code 2). A check
//! that fails is a verdict on stdout (exit code 1).

use crate::cli::VerifyArgs;
use crate::error::UserError;
use agora_cli::election_file::unhex;
use agora_cli::election_formats::{
    json_error, parse_receipts, BoardRows, FormatError, GivenReceipt, ReadError, ROWS_MAX,
};
use agora_protocols::vote_count::states::STATES;
use agora_protocols::vote_count::{hex, Audit, Hash, Receipt, Results};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::path::Path;

/// `results.json` is small (50 states × 16 options at most).
const RESULTS_BYTES_MAX: u64 = 1 << 20;
/// A receipts file is read whole: about ten million receipts.
const RECEIPTS_BYTES_MAX: u64 = 1 << 30;
/// The board of a 100-million-voter election is about 10 GB.
const BOARD_BYTES_MAX: u64 = 32 << 30;

// ----- reading hostile files (parsed by `agora_cli::election_formats`) -----

fn open_capped(path: &Path, what: &str, max: u64) -> Result<std::fs::File, UserError> {
    let f = std::fs::File::open(path)
        .map_err(|e| UserError(format!("cannot read {what} {}: {e}", path.display())))?;
    let len =
        f.metadata().map_err(|e| UserError(format!("cannot read {what} {}: {e}", path.display())))?.len();
    if len > max {
        return Err(UserError(format!(
            "{what} {}: {len} bytes, more than the {max} allowed",
            path.display()
        )));
    }
    Ok(f)
}

fn read_capped(path: &Path, what: &str, max: u64) -> Result<Vec<u8>, UserError> {
    let mut bytes = Vec::new();
    open_capped(path, what, max)?
        .take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| UserError(format!("cannot read {what} {}: {e}", path.display())))?;
    if bytes.len() as u64 > max {
        return Err(UserError(format!("{what} {}: more than the {max} bytes allowed", path.display())));
    }
    Ok(bytes)
}

/// A malformed file, with its name.
fn format_error(path: &Path, e: &FormatError) -> UserError {
    UserError(e.in_file(&path.display().to_string()))
}

/// A failed read or a malformed line of a file read line by line.
fn read_error(path: &Path, e: ReadError) -> UserError {
    match e {
        ReadError::Io(e) => UserError(format!("cannot read {}: {e}", path.display())),
        ReadError::Format(e) => format_error(path, &e),
    }
}

/// A receipt given to `verify`: where it was found, the election it names, what it says.
struct Given {
    place: String,
    election: String,
    receipt: Receipt,
}

/// Every receipt of a file: CSV lines (`receipts.csv`, header optional), JSON lines
/// (`receipts.jsonl`) or one JSON object, or a JSON array of objects.
fn read_receipts(path: &Path) -> Result<Vec<Given>, UserError> {
    let bytes = read_capped(path, "receipts", RECEIPTS_BYTES_MAX)?;
    let file = path.display().to_string();
    let given: Vec<Given> = parse_receipts(&bytes)
        .map_err(|e| format_error(path, &e))?
        .into_iter()
        .map(|GivenReceipt { at, election, receipt }| Given { place: at.in_file(&file), election, receipt })
        .collect();
    if given.is_empty() {
        return Err(UserError(format!("receipts {}: no receipt in it", path.display())));
    }
    Ok(given)
}

// ----- the published results -----

/// `results.json` as `agora election --out` writes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Published {
    election: String,
    options: Vec<String>,
    counted: u64,
    digest: String,
    merkle_root: String,
    national: BTreeMap<String, u64>,
    /// State code → option → count.
    per_state: BTreeMap<String, BTreeMap<String, u64>>,
}

fn read_published(path: &Path) -> Result<(Published, Hash, Hash), UserError> {
    let bytes = read_capped(path, "results", RESULTS_BYTES_MAX)?;
    let p: Published = serde_json::from_slice(&bytes)
        .map_err(|e| UserError(format!("{} line {}: {}", path.display(), e.line(), json_error(&e))))?;
    let bad = |m: &str| UserError(format!("{}: {m}", path.display()));
    if p.options.is_empty() || p.options.len() > 16 {
        return Err(bad("`options` must name 1 to 16 options"));
    }
    if p.options.iter().collect::<BTreeSet<_>>().len() != p.options.len() {
        return Err(bad("`options` names an option twice"));
    }
    let root = unhex::<16>(&p.merkle_root).ok_or_else(|| bad("`merkle_root` must be 32 hex digits"))?;
    let digest = unhex::<16>(&p.digest).ok_or_else(|| bad("`digest` must be 32 hex digits"))?;
    Ok((p, root, digest))
}

/// The first way the published counts differ from the board's, if any.
fn compare_counts(p: &Published, board: &Results) -> Option<String> {
    let differ = |name: &str, place: &str, published: Option<&u64>, counted: u64| match published {
        Some(c) if *c == counted => None,
        Some(c) => Some(format!("results.json gives {name} {c} votes {place}; the board counts {counted}")),
        None => Some(format!("results.json has no count of {name} {place}; the board counts {counted}")),
    };
    let unknown = |m: &BTreeMap<String, u64>, place: &str| {
        m.keys()
            .find(|k| !p.options.contains(k))
            .map(|k| format!("results.json counts `{k}` {place}, not an option"))
    };
    if p.counted != board.counted {
        return Some(format!(
            "results.json says {} ballots were counted; the board has {}",
            p.counted, board.counted
        ));
    }
    for (o, name) in p.options.iter().enumerate() {
        if let Some(m) = differ(name, "nationally", p.national.get(name), board.national[o]) {
            return Some(m);
        }
    }
    if let Some(m) = unknown(&p.national, "nationally") {
        return Some(m);
    }
    if let Some(k) = p.per_state.keys().find(|k| STATES.iter().all(|s| s.code != k.as_str())) {
        return Some(format!("results.json has results for `{k}`, not a state"));
    }
    for (i, s) in STATES.iter().enumerate() {
        let place = format!("in {}", s.code);
        let Some(row) = p.per_state.get(s.code) else {
            return Some(format!("results.json has no results {place}"));
        };
        for (o, name) in p.options.iter().enumerate() {
            if let Some(m) = differ(name, &place, row.get(name), board.per_state[i][o]) {
                return Some(m);
            }
        }
        if let Some(m) = unknown(row, &place) {
            return Some(m);
        }
    }
    None
}

// ----- verify -----

/// What the board adds up to, and the rows the receipts name.
struct Board {
    results: Results,
    rows: HashMap<u64, Receipt>,
}

/// Reads the board row by row: each row's leaf hash from its columns, the tally, the root.
/// `Err` is a user's mistake (a malformed file), `Ok(Err)` a check that failed.
fn read_board(
    path: &Path,
    p: &Published,
    wanted: &BTreeSet<u64>,
) -> Result<Result<Board, String>, UserError> {
    let f = open_capped(path, "board", BOARD_BYTES_MAX)?;
    let mut board =
        BoardRows::new(std::io::BufReader::with_capacity(1 << 16, f)).map_err(|e| read_error(path, e))?;
    let mut audit = Audit::new(&p.election, &p.options);
    let mut rows = HashMap::new();
    while let Some((row, stated)) = board.next_row().map_err(|e| read_error(path, e))? {
        let at = format!("board.csv line {} (leaf {})", board.line(), row.leaf);
        if audit.rows() >= ROWS_MAX {
            return Err(format_error(path, &board.error(format_args!("more than {ROWS_MAX} rows"))));
        }
        match audit.push(&row) {
            Ok(leaf) if leaf == stated => {}
            Ok(_) => return Ok(Err(format!("{at}: its columns do not hash to its leaf_hash"))),
            Err(e) => return Ok(Err(format!("{at}: {e}"))),
        }
        if wanted.contains(&row.leaf) {
            rows.insert(row.leaf, row);
        }
    }
    Ok(audit.finish().map(|results| Board { results, rows }).map_err(|e| format!("board.csv: {e}")))
}

/// Checks the board against the published results; the error says the first thing wrong.
fn check_board(board: &Board, p: &Published, root: Hash, digest: Hash) -> Result<(), String> {
    if board.results.root != root {
        return Err("the board's leaves do not hash to the Merkle root of results.json".into());
    }
    if let Some(m) = compare_counts(p, &board.results) {
        return Err(m);
    }
    if board.results.digest != digest {
        return Err("the board's tally does not hash to the digest of results.json".into());
    }
    Ok(())
}

/// What a receipt and the board's row at its leaf disagree on, field by field.
fn differences(receipt: &Receipt, row: &Receipt) -> String {
    let mut d = Vec::new();
    let mut field = |name: &str, r: String, b: String| {
        if r != b {
            d.push(format!("{name} {r} (the board: {b})"));
        }
    };
    field("voter", receipt.voter.to_string(), row.voter.to_string());
    field("state", STATES[receipt.state as usize].code.into(), STATES[row.state as usize].code.into());
    field("option", receipt.option.to_string(), row.option.to_string());
    field("hash", hex(&receipt.hash), hex(&row.hash));
    field("log index", receipt.pos.index.to_string(), row.pos.index.to_string());
    field("log offset", receipt.pos.offset.to_string(), row.pos.offset.to_string());
    d.join(", ")
}

/// The verdict on one receipt: included or why not.
fn judge(g: &Given, p: &Published, board: &Board) -> Result<String, String> {
    let r = &g.receipt;
    if g.election != p.election {
        return Err(format!(
            "the receipt is for election `{}`, the results for `{}`",
            agora_sim::faults::escape_controls(&g.election),
            p.election
        ));
    }
    let Some(row) = board.rows.get(&r.leaf) else {
        return Err(format!("leaf {} is not on the board ({} rows)", r.leaf, board.results.counted));
    };
    if row != r {
        return Err(format!("leaf {} differs: the receipt says {}", r.leaf, differences(r, row)));
    }
    let option = p.options.get(r.option as usize).map_or("?", String::as_str);
    Ok(format!(
        "voter {}'s ballot {} ({}, {option}) is leaf {} of {}, log position {}.{}",
        r.voter,
        hex(&r.hash),
        STATES[r.state as usize].code,
        r.leaf,
        board.results.counted,
        r.pos.index,
        r.pos.offset
    ))
}

pub fn verify(a: &VerifyArgs) -> Result<i32, UserError> {
    let given = read_receipts(&a.receipt)?;
    let (published, root, digest) = read_published(&a.results.join("results.json"))?;
    let wanted: BTreeSet<u64> = given.iter().map(|g| g.receipt.leaf).collect();
    let checked = read_board(&a.results.join("board.csv"), &published, &wanted)?
        .and_then(|board| check_board(&board, &published, root, digest).map(|()| board));
    let board = match checked {
        Ok(board) => board,
        Err(m) => {
            println!("NOT VERIFIED: {m}");
            println!("{} receipts not judged: the board is not the published one", given.len());
            return Ok(1);
        }
    };
    let mut missing = 0;
    for g in &given {
        match judge(g, &published, &board) {
            Ok(m) => println!("INCLUDED      {}: {m}", g.place),
            Err(m) => {
                missing += 1;
                println!("NOT INCLUDED  {}: {m}", g.place);
            }
        }
    }
    println!(
        "{} of {} receipts included; the board ({} rows) hashes to the published Merkle root and \
         adds up to the counts and digest of results.json",
        given.len() - missing,
        given.len(),
        board.results.counted
    );
    Ok(if missing == 0 { 0 } else { 1 })
}
