//! The election's public files and their check: the bulletin board (`board.csv`) and the
//! receipts (`receipts.csv`, `receipts.jsonl`) that `agora election --out` writes, and
//! `agora election verify`, which recomputes every leaf, the Merkle root, the counts and the
//! digest from the board, compares them with `results.json`, and judges every receipt given.
//!
//! Every file read here may be hostile: sizes and line lengths are capped before reading, and
//! a malformed line is a one-line error naming the file and the line (exit code 2). A check
//! that fails is a verdict on stdout (exit code 1).

use crate::cli::VerifyArgs;
use crate::election_file::unhex;
use crate::error::UserError;
use agora_protocols::raft::Pos;
use agora_protocols::vote_count::states::{self, STATES};
use agora_protocols::vote_count::{hex, Audit, Hash, Receipt, Results};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, Read};
use std::path::Path;

/// The columns of `board.csv`: a counted ballot's receipt fields, then its Merkle leaf.
pub const BOARD_HEADER: &str = "leaf,voter,state,option,hash,index,offset,leaf_hash";
/// The columns of `receipts.csv`.
pub const RECEIPTS_HEADER: &str = "election,voter,state,option,hash,leaf,index,offset";

/// `results.json` is small (50 states × 16 options at most).
const RESULTS_BYTES_MAX: u64 = 1 << 20;
/// A receipts file is read whole: about ten million receipts.
const RECEIPTS_BYTES_MAX: u64 = 1 << 30;
/// The board of a 100-million-voter election is about 10 GB.
const BOARD_BYTES_MAX: u64 = 32 << 30;
/// The largest election has this many voters, so no board or receipts file has more rows.
const ROWS_MAX: u64 = 100_000_000;
/// A row of the board or of a receipts file is about 120 bytes.
const LINE_BYTES_MAX: usize = 1024;

/// A receipt as JSON, one object per receipt (a line of `receipts.jsonl`).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReceiptJson {
    election: String,
    voter: u64,
    state: String,
    option: u8,
    hash: String,
    leaf: u64,
    index: u64,
    offset: u32,
}

/// A line of `board.csv` (without its newline).
pub fn board_line(election: &str, r: &Receipt) -> String {
    let state = STATES[r.state as usize].code;
    format!(
        "{},{},{state},{},{},{},{},{}",
        r.leaf,
        r.voter,
        r.option,
        hex(&r.hash),
        r.pos.index,
        r.pos.offset,
        hex(&r.leaf_hash(election))
    )
}

/// A line of `receipts.csv` (without its newline).
pub fn receipt_csv(election: &str, r: &Receipt) -> String {
    let state = STATES[r.state as usize].code;
    format!(
        "{election},{},{state},{},{},{},{},{}",
        r.voter,
        r.option,
        hex(&r.hash),
        r.leaf,
        r.pos.index,
        r.pos.offset
    )
}

/// A line of `receipts.jsonl` (without its newline).
pub fn receipt_json(election: &str, r: &Receipt) -> String {
    let j = ReceiptJson {
        election: election.to_string(),
        voter: r.voter,
        state: STATES[r.state as usize].code.to_string(),
        option: r.option,
        hash: hex(&r.hash),
        leaf: r.leaf,
        index: r.pos.index,
        offset: r.pos.offset,
    };
    serde_json::to_string(&j).expect("receipts serialize")
}

// ----- reading hostile files -----

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

/// Lines of at most [`LINE_BYTES_MAX`] bytes, numbered from 1, without their `\n` or `\r\n`.
struct Lines<'a, R> {
    reader: R,
    path: &'a Path,
    n: usize,
    buf: Vec<u8>,
}

impl<'a, R: BufRead> Lines<'a, R> {
    fn new(reader: R, path: &'a Path) -> Self {
        Lines { reader, path, n: 0, buf: Vec::new() }
    }

    fn error(&self, m: impl std::fmt::Display) -> UserError {
        UserError(format!("{} line {}: {m}", self.path.display(), self.n))
    }

    fn next_line(&mut self) -> Result<Option<&str>, UserError> {
        self.buf.clear();
        let read = (&mut self.reader)
            .take(LINE_BYTES_MAX as u64 + 2)
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| UserError(format!("cannot read {}: {e}", self.path.display())))?;
        if read == 0 {
            return Ok(None);
        }
        self.n += 1;
        while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
            self.buf.pop();
        }
        if self.buf.len() > LINE_BYTES_MAX {
            return Err(self.error(format_args!("longer than {LINE_BYTES_MAX} bytes")));
        }
        match std::str::from_utf8(&self.buf) {
            Ok(s) => Ok(Some(s)),
            Err(_) => Err(UserError(format!("{} line {}: not UTF-8 text", self.path.display(), self.n))),
        }
    }
}

fn state_of(code: &str) -> Option<u8> {
    states::by_code(code).map(|i| i as u8)
}

/// A receipt from its columns: `[voter, state, option, hash, leaf, index, offset]`.
fn receipt_of([voter, state, option, hash, leaf, index, offset]: [&str; 7]) -> Result<Receipt, &'static str> {
    Ok(Receipt {
        voter: voter.parse().map_err(|_| "voter is not a number")?,
        state: state_of(state).ok_or("not a state")?,
        option: option.parse().map_err(|_| "option is not a number from 0 to 255")?,
        hash: unhex::<16>(hash).ok_or("hash must be 32 hex digits")?,
        leaf: leaf.parse().map_err(|_| "leaf is not a number")?,
        pos: Pos {
            index: index.parse().map_err(|_| "index is not a number")?,
            offset: offset.parse().map_err(|_| "offset is not a number")?,
        },
    })
}

/// A row of the board: the receipt it shows and the leaf hash it states.
fn parse_board_row(line: &str) -> Result<(Receipt, Hash), &'static str> {
    let c: Vec<&str> = line.split(',').collect();
    let [leaf, voter, state, option, hash, index, offset, leaf_hash] = c[..] else {
        return Err("expected leaf,voter,state,option,hash,index,offset,leaf_hash");
    };
    let receipt = receipt_of([voter, state, option, hash, leaf, index, offset])?;
    Ok((receipt, unhex::<16>(leaf_hash).ok_or("leaf_hash must be 32 hex digits")?))
}

/// A receipt given to `verify`: where it was found, the election it names, what it says.
struct Given {
    place: String,
    election: String,
    receipt: Receipt,
}

fn from_json(place: String, j: ReceiptJson) -> Result<Given, String> {
    let bad = |m: &str| format!("{place}: {m}");
    Ok(Given {
        receipt: Receipt {
            voter: j.voter,
            state: state_of(&j.state).ok_or_else(|| bad("`state` is not a state"))?,
            option: j.option,
            hash: unhex::<16>(&j.hash).ok_or_else(|| bad("`hash` must be 32 hex digits"))?,
            leaf: j.leaf,
            pos: Pos { index: j.index, offset: j.offset },
        },
        election: j.election,
        place,
    })
}

fn from_csv(line: &str) -> Result<(String, Receipt), &'static str> {
    let c: Vec<&str> = line.split(',').map(str::trim).collect();
    let [election, voter, state, option, hash, leaf, index, offset] = c[..] else {
        return Err("expected election,voter,state,option,hash,leaf,index,offset");
    };
    Ok((election.to_string(), receipt_of([voter, state, option, hash, leaf, index, offset])?))
}

/// Every receipt of a file: CSV lines (`receipts.csv`, header optional), JSON lines
/// (`receipts.jsonl`) or one JSON object, or a JSON array of objects.
fn read_receipts(path: &Path) -> Result<Vec<Given>, UserError> {
    let bytes = read_capped(path, "receipts", RECEIPTS_BYTES_MAX)?;
    let at = |line: usize| format!("{} line {line}", path.display());
    let given = match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None => Vec::new(),
        Some(b'[') => {
            let all: Vec<ReceiptJson> = serde_json::from_slice(&bytes)
                .map_err(|e| UserError(format!("{}: {}", at(e.line()), json_error(&e))))?;
            let mut given = Vec::with_capacity(all.len());
            for (i, j) in all.into_iter().enumerate() {
                given.push(from_json(format!("{} receipt {}", path.display(), i + 1), j).map_err(UserError)?);
            }
            given
        }
        Some(b'{') => {
            let mut given = Vec::new();
            let mut stream = serde_json::Deserializer::from_slice(&bytes).into_iter::<ReceiptJson>();
            loop {
                let start = stream.byte_offset();
                let Some(next) = stream.next() else { break };
                let skipped = bytes[start..].iter().take_while(|b| b.is_ascii_whitespace()).count();
                let line = 1 + bytes[..start + skipped].iter().filter(|b| **b == b'\n').count();
                let j = next.map_err(|e| UserError(format!("{}: {}", at(e.line()), json_error(&e))))?;
                given.push(from_json(at(line), j).map_err(UserError)?);
                if given.len() as u64 > ROWS_MAX {
                    return Err(UserError(format!("{}: more than {ROWS_MAX} receipts", path.display())));
                }
            }
            given
        }
        Some(_) => {
            let mut given = Vec::new();
            let mut lines = Lines::new(bytes.as_slice(), path);
            let mut first = true;
            while let Some(line) = lines.next_line()? {
                let header = std::mem::take(&mut first) && line.starts_with("election,");
                if header || line.trim().is_empty() {
                    continue;
                }
                let (election, receipt) = from_csv(line).map_err(|m| lines.error(m))?;
                given.push(Given { place: at(lines.n), election, receipt });
                if given.len() as u64 > ROWS_MAX {
                    return Err(lines.error(format_args!("more than {ROWS_MAX} receipts")));
                }
            }
            given
        }
    };
    if given.is_empty() {
        return Err(UserError(format!("receipts {}: no receipt in it", path.display())));
    }
    Ok(given)
}

/// serde_json's message without its own " at line L column C" (the caller names the line).
fn json_error(e: &serde_json::Error) -> String {
    let m = e.to_string();
    match m.rfind(" at line ") {
        Some(i) => m[..i].to_string(),
        None => m,
    }
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
    let mut lines = Lines::new(std::io::BufReader::with_capacity(1 << 16, f), path);
    if lines.next_line()? != Some(BOARD_HEADER) {
        return Err(lines.error(format_args!("expected the header {BOARD_HEADER}")));
    }
    let mut audit = Audit::new(&p.election, &p.options);
    let mut rows = HashMap::new();
    while let Some(line) = lines.next_line()? {
        let (row, stated) = parse_board_row(line).map_err(|m| lines.error(m))?;
        let at = format!("board.csv line {} (leaf {})", lines.n, row.leaf);
        if audit.rows() >= ROWS_MAX {
            return Err(lines.error(format_args!("more than {ROWS_MAX} rows")));
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
            g.election, p.election
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
