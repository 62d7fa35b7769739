//! The election's public file formats, parsed from text or bytes with no file IO and no
//! printing: the roll (`agora election register`), the receipts (`receipts.csv`,
//! `receipts.jsonl`, a JSON object or array) and the bulletin board (`board.csv`), with the
//! writers of their lines. Every input may be hostile: a malformed line is a [`FormatError`],
//! one line of text naming the line or receipt; the binary puts the file's name in front.

use crate::election_file::unhex;
use agora_protocols::raft::Pos;
use agora_protocols::vote_count::states::{self, STATES};
use agora_protocols::vote_count::{hex, Hash, Receipt};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::{BufRead, Read};

/// The columns of `board.csv`: a counted ballot's receipt fields, then its Merkle leaf.
pub const BOARD_HEADER: &str = "leaf,voter,state,option,hash,index,offset,leaf_hash";
/// The columns of `receipts.csv`.
pub const RECEIPTS_HEADER: &str = "election,voter,state,option,hash,leaf,index,offset";
/// The largest election has this many voters, so no board or receipts file has more rows.
pub const ROWS_MAX: u64 = 100_000_000;
/// A row of the board or of a receipts file is about 120 bytes.
pub const LINE_BYTES_MAX: usize = 1024;

/// Where in a file something is: the file as a whole, a line (from 1) or the n-th receipt of
/// a JSON array (from 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// The file as a whole.
    File,
    /// A line, numbered from 1.
    Line(usize),
    /// The n-th receipt of a JSON array, from 1.
    Receipt(usize),
}

impl Place {
    /// `file` followed by this place: `receipts.csv line 3`.
    pub fn in_file(self, file: &str) -> String {
        match self {
            Place::File => file.to_string(),
            Place::Line(n) => format!("{file} line {n}"),
            Place::Receipt(n) => format!("{file} receipt {n}"),
        }
    }
}

/// A malformed file: where, and what is wrong, in one line.
#[derive(Debug)]
pub struct FormatError {
    /// Where the mistake is.
    pub at: Place,
    /// What is wrong.
    pub msg: String,
}

impl FormatError {
    fn new(at: Place, msg: impl fmt::Display) -> FormatError {
        FormatError { at, msg: msg.to_string() }
    }

    /// The whole message with the file's name in front: `roll r.csv line 3: unknown state`.
    pub fn in_file(&self, file: &str) -> String {
        format!("{}: {}", self.at.in_file(file), self.msg)
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Place::File => write!(f, "{}", self.msg),
            Place::Line(n) => write!(f, "line {n}: {}", self.msg),
            Place::Receipt(n) => write!(f, "receipt {n}: {}", self.msg),
        }
    }
}

/// Reading lines failed: the reader's error, or a line that is too long or not UTF-8.
#[derive(Debug)]
pub enum ReadError {
    /// The reader failed.
    Io(std::io::Error),
    /// A line too long or not UTF-8.
    Format(FormatError),
}

impl From<FormatError> for ReadError {
    fn from(e: FormatError) -> ReadError {
        ReadError::Format(e)
    }
}

// ----- the roll -----

/// The roll `agora election register` writes (`voter,state,credential`, header optional):
/// each voter's state and credential, voters numbered 0, 1, 2... in order; at least one.
pub fn parse_roll(text: &str) -> Result<Vec<(u8, Hash)>, FormatError> {
    let mut roll = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let bad = |m: &str| FormatError::new(Place::Line(n + 1), m);
        if n == 0 && line.starts_with("voter") {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 3 {
            return Err(bad("expected voter,state,credential"));
        }
        let voter: u64 = f[0].trim().parse().map_err(|_| bad("voter is not a number"))?;
        if voter != roll.len() as u64 {
            return Err(bad(&format!(
                "voters must be numbered 0, 1, 2... in order (expected {})",
                roll.len()
            )));
        }
        let state = states::by_code(f[1].trim()).ok_or_else(|| bad("unknown state"))?;
        let cred = unhex::<16>(f[2].trim()).ok_or_else(|| bad("credential must be 32 hex digits"))?;
        roll.push((state as u8, cred));
    }
    if roll.is_empty() {
        return Err(FormatError::new(Place::File, "no voters"));
    }
    Ok(roll)
}

// ----- lines -----

/// Lines of at most [`LINE_BYTES_MAX`] bytes, numbered from 1, without their `\n` or `\r\n`.
pub struct Lines<R> {
    reader: R,
    n: usize,
    buf: Vec<u8>,
}

impl<R: BufRead> Lines<R> {
    /// Lines of `reader`, none read yet.
    pub fn new(reader: R) -> Self {
        Lines { reader, n: 0, buf: Vec::new() }
    }

    /// The number of the last line read (0 before the first).
    pub fn number(&self) -> usize {
        self.n
    }

    /// An error at the last line read.
    pub fn error(&self, m: impl fmt::Display) -> FormatError {
        FormatError::new(Place::Line(self.n), m)
    }

    /// The next line without its line end, `None` at the end of the input. A line longer
    /// than [`LINE_BYTES_MAX`] or not UTF-8 is an error.
    pub fn next_line(&mut self) -> Result<Option<&str>, ReadError> {
        self.buf.clear();
        let read = (&mut self.reader)
            .take(LINE_BYTES_MAX as u64 + 2)
            .read_until(b'\n', &mut self.buf)
            .map_err(ReadError::Io)?;
        if read == 0 {
            return Ok(None);
        }
        self.n += 1;
        while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
            self.buf.pop();
        }
        if self.buf.len() > LINE_BYTES_MAX {
            return Err(self.error(format_args!("longer than {LINE_BYTES_MAX} bytes")).into());
        }
        match std::str::from_utf8(&self.buf) {
            Ok(s) => Ok(Some(s)),
            Err(_) => Err(FormatError::new(Place::Line(self.n), "not UTF-8 text").into()),
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

// ----- the board -----

/// A row of the board: the receipt it shows and the leaf hash it states.
pub fn parse_board_row(line: &str) -> Result<(Receipt, Hash), &'static str> {
    let c: Vec<&str> = line.split(',').collect();
    let [leaf, voter, state, option, hash, index, offset, leaf_hash] = c[..] else {
        return Err("expected leaf,voter,state,option,hash,index,offset,leaf_hash");
    };
    let receipt = receipt_of([voter, state, option, hash, leaf, index, offset])?;
    Ok((receipt, unhex::<16>(leaf_hash).ok_or("leaf_hash must be 32 hex digits")?))
}

/// The rows of `board.csv`, read one at a time (a board can be gigabytes): the header
/// [`BOARD_HEADER`] first, then one row per line.
pub struct BoardRows<R> {
    lines: Lines<R>,
}

impl<R: BufRead> BoardRows<R> {
    /// Reads and checks the header.
    pub fn new(reader: R) -> Result<Self, ReadError> {
        let mut lines = Lines::new(reader);
        if lines.next_line()? != Some(BOARD_HEADER) {
            return Err(lines.error(format_args!("expected the header {BOARD_HEADER}")).into());
        }
        Ok(BoardRows { lines })
    }

    /// The next row, or `None` at the end of the board.
    pub fn next_row(&mut self) -> Result<Option<(Receipt, Hash)>, ReadError> {
        let Some(line) = self.lines.next_line()? else { return Ok(None) };
        let row = parse_board_row(line).map_err(|m| self.lines.error(m))?;
        Ok(Some(row))
    }

    /// The number of the last line read (the header is line 1).
    pub fn line(&self) -> usize {
        self.lines.number()
    }

    /// An error at the last line read.
    pub fn error(&self, m: impl fmt::Display) -> FormatError {
        self.lines.error(m)
    }
}

// ----- receipts -----

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

/// A receipt given to `verify`: where it was found, the election it names, what it says.
#[derive(Debug)]
pub struct GivenReceipt {
    /// Where it was found.
    pub at: Place,
    /// The election it names (its id, as published).
    pub election: String,
    /// What it says.
    pub receipt: Receipt,
}

fn from_json(at: Place, j: ReceiptJson) -> Result<GivenReceipt, FormatError> {
    let bad = |m: &str| FormatError::new(at, m);
    Ok(GivenReceipt {
        receipt: Receipt {
            voter: j.voter,
            state: state_of(&j.state).ok_or_else(|| bad("`state` is not a state"))?,
            option: j.option,
            hash: unhex::<16>(&j.hash).ok_or_else(|| bad("`hash` must be 32 hex digits"))?,
            leaf: j.leaf,
            pos: Pos { index: j.index, offset: j.offset },
        },
        election: j.election,
        at,
    })
}

fn from_csv(line: &str) -> Result<(String, Receipt), &'static str> {
    let c: Vec<&str> = line.split(',').map(str::trim).collect();
    let [election, voter, state, option, hash, leaf, index, offset] = c[..] else {
        return Err("expected election,voter,state,option,hash,leaf,index,offset");
    };
    Ok((election.to_string(), receipt_of([voter, state, option, hash, leaf, index, offset])?))
}

/// Every receipt of a file's bytes: CSV lines (`receipts.csv`, header optional), JSON lines
/// (`receipts.jsonl`) or one JSON object, or a JSON array of objects. No receipt at all
/// (blank text) is not an error here.
pub fn parse_receipts(bytes: &[u8]) -> Result<Vec<GivenReceipt>, FormatError> {
    let json = |e: serde_json::Error| FormatError::new(Place::Line(e.line()), json_error(&e));
    Ok(match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None => Vec::new(),
        Some(b'[') => {
            let all: Vec<ReceiptJson> = serde_json::from_slice(bytes).map_err(json)?;
            let mut given = Vec::with_capacity(all.len());
            for (i, j) in all.into_iter().enumerate() {
                given.push(from_json(Place::Receipt(i + 1), j)?);
            }
            given
        }
        Some(b'{') => {
            let mut given = Vec::new();
            let mut stream = serde_json::Deserializer::from_slice(bytes).into_iter::<ReceiptJson>();
            loop {
                let start = stream.byte_offset();
                let Some(next) = stream.next() else { break };
                let skipped = bytes[start..].iter().take_while(|b| b.is_ascii_whitespace()).count();
                let line = 1 + bytes[..start + skipped].iter().filter(|b| **b == b'\n').count();
                given.push(from_json(Place::Line(line), next.map_err(json)?)?);
                if given.len() as u64 > ROWS_MAX {
                    return Err(FormatError::new(Place::File, format_args!("more than {ROWS_MAX} receipts")));
                }
            }
            given
        }
        Some(_) => {
            let mut given = Vec::new();
            let mut lines = Lines::new(bytes);
            let mut first = true;
            loop {
                let line = match lines.next_line() {
                    Ok(Some(line)) => line,
                    Ok(None) => break,
                    Err(ReadError::Format(e)) => return Err(e),
                    // Reading a slice does not fail.
                    Err(ReadError::Io(e)) => {
                        return Err(FormatError::new(Place::File, format_args!("cannot read: {e}")))
                    }
                };
                let header = std::mem::take(&mut first) && line.starts_with("election,");
                if header || line.trim().is_empty() {
                    continue;
                }
                let (election, receipt) = from_csv(line).map_err(|m| lines.error(m))?;
                given.push(GivenReceipt { at: Place::Line(lines.number()), election, receipt });
                if given.len() as u64 > ROWS_MAX {
                    return Err(lines.error(format_args!("more than {ROWS_MAX} receipts")));
                }
            }
            given
        }
    })
}

/// serde_json's message without its own " at line L column C" (the caller names the line),
/// its control characters escaped: a message can quote a key of the input, newlines and all.
pub fn json_error(e: &serde_json::Error) -> String {
    let m = e.to_string();
    let m = match m.rfind(" at line ") {
        Some(i) => &m[..i],
        None => &m,
    };
    agora_sim::faults::escape_controls(m)
}

// ----- writing -----

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

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "00112233445566778899aabbccddeeff";

    #[test]
    fn roll_errors_name_the_line() {
        let roll = parse_roll(&format!("voter,state,credential\n0,CA,{H}\n1,TX,{H}\n")).unwrap();
        assert_eq!(roll.len(), 2);
        assert_eq!(parse_roll(&format!("0,CA,{H}\n2,TX,{H}")).unwrap_err().at, Place::Line(2));
        assert_eq!(parse_roll("").unwrap_err().in_file("roll r.csv"), "roll r.csv: no voters");
    }

    #[test]
    fn a_json_key_with_a_newline_is_a_one_line_error() {
        let raw = serde_json::from_slice::<ReceiptJson>(b"{\"a\\nb\": 1}").err().unwrap().to_string();
        assert!(raw.contains('\n'), "serde_json quotes the key as it is: {raw:?}");
        let e = parse_receipts(b"{\"a\\nb\": 1}").unwrap_err();
        assert!(!e.to_string().contains('\n'), "{e}");
        let e = parse_receipts(b"[{\"a\\nb\": 1}]").unwrap_err();
        assert!(!e.to_string().contains('\n'), "{e}");
    }

    #[test]
    fn receipts_in_every_format() {
        let csv = format!("{RECEIPTS_HEADER}\ndemo,0,CA,1,{H},0,3,0\n");
        let g = parse_receipts(csv.as_bytes()).unwrap();
        assert_eq!((g.len(), g[0].at), (1, Place::Line(2)));
        let j = format!(
            "{{\"election\":\"demo\",\"voter\":0,\"state\":\"CA\",\"option\":1,\"hash\":\"{H}\",\"leaf\":0,\"index\":3,\"offset\":0}}"
        );
        assert_eq!(parse_receipts(format!("\n{j}\n{j}").as_bytes()).unwrap()[1].at, Place::Line(3));
        assert_eq!(parse_receipts(format!("[{j},{j}]").as_bytes()).unwrap()[1].at, Place::Receipt(2));
        assert!(parse_receipts(b" \n").unwrap().is_empty());
    }

    #[test]
    fn board_rows_after_the_header() {
        let text = format!("{BOARD_HEADER}\n0,0,CA,1,{H},3,0,{H}\n");
        let mut rows = BoardRows::new(text.as_bytes()).unwrap();
        assert!(rows.next_row().unwrap().is_some());
        assert!(rows.next_row().unwrap().is_none());
        match BoardRows::new(&b"leaf\n"[..]) {
            Err(ReadError::Format(e)) => assert_eq!(e.at, Place::Line(1)),
            _ => panic!("a wrong header is accepted"),
        }
    }
}
