//! RESP2, the Redis serialization protocol, as `agora kv` speaks it: requests are arrays of
//! bulk strings (what every client library and `redis-cli` send) or inline commands (a line
//! of words, what people type into `nc` or `telnet`); replies are simple strings, errors,
//! integers, bulk strings and arrays.
//!
//! The parser is incremental and bounded: it never holds more than [`Limits`] allow, and a
//! request that breaks a limit or the grammar is a [`ProtocolError`], which the server
//! answers with `-ERR Protocol error: ...` before closing the connection (as Redis does).

use std::fmt;

/// What one connection may send.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The longest bulk string (Redis: 512 MiB; here less, since a batch of commands must fit
    /// one Raft entry).
    pub max_bulk: usize,
    /// The most elements of one request array.
    pub max_array: usize,
    /// The longest inline command line, and the longest `*N`/`$N` header line.
    pub max_inline: usize,
    /// Bytes received and not yet parsed into whole commands.
    pub max_pending: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_bulk: 1 << 20, max_array: 1 << 16, max_inline: 64 * 1024, max_pending: 4 << 20 }
    }
}

/// A request that breaks the protocol or a limit: the connection is answered and closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Protocol error: {}", self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, ProtocolError> {
    Err(ProtocolError(msg.into()))
}

/// A parsed request (its arguments) and the bytes it took; `None`: more bytes are needed.
pub type Parsed = Option<(Vec<Vec<u8>>, usize)>;

/// Parses the first whole request in `buf`: `Ok(Some((args, used)))` with the bytes it took,
/// `Ok(None)` if more bytes are needed (and allowed), or the protocol error. An empty inline
/// line is a request of no arguments (Redis ignores it; so does the server).
pub fn parse(buf: &[u8], limits: &Limits) -> Result<Parsed, ProtocolError> {
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] != b'*' {
        return parse_inline(buf, limits);
    }
    let Some((n, mut at)) = header(buf, 0, limits)? else { return Ok(None) };
    if n > limits.max_array as i64 {
        return err("invalid multibulk length");
    }
    if n <= 0 {
        // `*0` and `*-1`: nothing to run.
        return Ok(Some((Vec::new(), at)));
    }
    let mut args = Vec::with_capacity((n as usize).min(1024));
    for _ in 0..n {
        if at >= buf.len() {
            return Ok(None);
        }
        if buf[at] != b'$' {
            return err(format!("expected '$', got '{}'", printable(buf[at])));
        }
        let Some((len, start)) = header(buf, at, limits)? else { return Ok(None) };
        if len < 0 || len > limits.max_bulk as i64 {
            return err("invalid bulk length");
        }
        let end = start + len as usize;
        if buf.len() < end + 2 {
            return Ok(None);
        }
        if &buf[end..end + 2] != b"\r\n" {
            return err("bulk string not followed by CRLF");
        }
        args.push(buf[start..end].to_vec());
        at = end + 2;
    }
    Ok(Some((args, at)))
}

/// `*N\r\n` or `$N\r\n` at `at`: the number and where the line ends.
fn header(buf: &[u8], at: usize, limits: &Limits) -> Result<Option<(i64, usize)>, ProtocolError> {
    // A count has at most 20 digits and a sign; a longer line is refused whether or not its
    // end has arrived (so how a socket splits the bytes never changes the verdict).
    let longest = limits.max_inline.min(32);
    let rest = &buf[at + 1..];
    let Some(nl) = rest.iter().take(longest + 1).position(|&b| b == b'\n') else {
        if rest.len() > longest {
            return err(if buf[at] == b'*' {
                "too big mbulk count string"
            } else {
                "too big bulk count string"
            });
        }
        return Ok(None);
    };
    let line = &rest[..nl];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let what = if buf[at] == b'*' { "invalid multibulk length" } else { "invalid bulk length" };
    let n: i64 = match std::str::from_utf8(line).ok().and_then(|s| s.parse().ok()) {
        Some(n) => n,
        None => return err(what),
    };
    Ok(Some((n, at + 1 + nl + 1)))
}

/// An inline command: words separated by spaces, with Redis's quoting ("..." with escapes,
/// '...'), up to a newline.
fn parse_inline(buf: &[u8], limits: &Limits) -> Result<Parsed, ProtocolError> {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > limits.max_inline {
            return err("too big inline request");
        }
        return Ok(None);
    };
    if nl > limits.max_inline {
        return err("too big inline request");
    }
    let line = &buf[..nl];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let args = split_words(line).ok_or_else(|| ProtocolError("unbalanced quotes in request".into()))?;
    if args.len() > limits.max_array {
        return err("invalid multibulk length");
    }
    Ok(Some((args, nl + 1)))
}

/// Splits a line into words as redis-cli and Redis's inline parser do; `None` for an
/// unbalanced quote.
pub fn split_words(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut words = Vec::new();
    let mut i = 0;
    while i < line.len() {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == line.len() {
            break;
        }
        let mut w = Vec::new();
        match line[i] {
            b'"' => {
                i += 1;
                loop {
                    let &c = line.get(i)?;
                    i += 1;
                    match c {
                        b'"' => break,
                        b'\\' => {
                            let &e = line.get(i)?;
                            i += 1;
                            match e {
                                b'n' => w.push(b'\n'),
                                b'r' => w.push(b'\r'),
                                b't' => w.push(b'\t'),
                                b'b' => w.push(8),
                                b'a' => w.push(7),
                                b'x' if i + 1 < line.len()
                                    && line[i].is_ascii_hexdigit()
                                    && line[i + 1].is_ascii_hexdigit() =>
                                {
                                    let hex = std::str::from_utf8(&line[i..i + 2]).ok()?;
                                    w.push(u8::from_str_radix(hex, 16).ok()?);
                                    i += 2;
                                }
                                other => w.push(other),
                            }
                        }
                        c => w.push(c),
                    }
                }
                if line.get(i).is_some_and(|c| !c.is_ascii_whitespace()) {
                    return None;
                }
            }
            b'\'' => {
                i += 1;
                loop {
                    let &c = line.get(i)?;
                    i += 1;
                    match c {
                        b'\'' => break,
                        b'\\' if line.get(i) == Some(&b'\'') => {
                            w.push(b'\'');
                            i += 1;
                        }
                        c => w.push(c),
                    }
                }
                if line.get(i).is_some_and(|c| !c.is_ascii_whitespace()) {
                    return None;
                }
            }
            _ => {
                while i < line.len() && !line[i].is_ascii_whitespace() {
                    w.push(line[i]);
                    i += 1;
                }
            }
        }
        words.push(w);
    }
    Some(words)
}

fn printable(b: u8) -> String {
    if b.is_ascii_graphic() {
        (b as char).to_string()
    } else {
        format!("\\x{b:02x}")
    }
}

/// A reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `+text`.
    Simple(String),
    /// `-text`: the text starts with its code (`ERR`, `WRONGTYPE`, ...).
    Error(String),
    /// `:n`.
    Int(i64),
    /// `$n` and the bytes.
    Bulk(Vec<u8>),
    /// `$-1`.
    Nil,
    /// `*n` and the elements.
    Array(Vec<Reply>),
}

impl Reply {
    /// `+OK`.
    pub fn ok() -> Reply {
        Reply::Simple("OK".into())
    }

    /// `-ERR msg`.
    pub fn err(msg: impl fmt::Display) -> Reply {
        Reply::Error(format!("ERR {msg}"))
    }

    /// A bulk string of text.
    pub fn text(s: impl Into<String>) -> Reply {
        Reply::Bulk(s.into().into_bytes())
    }

    /// Appends the reply's encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Reply::Simple(s) => line(out, b'+', s.as_bytes()),
            Reply::Error(s) => line(out, b'-', s.as_bytes()),
            Reply::Int(n) => line(out, b':', n.to_string().as_bytes()),
            Reply::Nil => out.extend_from_slice(b"$-1\r\n"),
            Reply::Bulk(b) => {
                line(out, b'$', b.len().to_string().as_bytes());
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Reply::Array(items) => {
                line(out, b'*', items.len().to_string().as_bytes());
                for i in items {
                    i.encode(out);
                }
            }
        }
    }
}

/// A line `tag text\r\n`; CR and LF in `text` (they would end the line) become spaces.
fn line(out: &mut Vec<u8>, tag: u8, text: &[u8]) {
    out.push(tag);
    out.extend(text.iter().map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
    out.extend_from_slice(b"\r\n");
}

/// A request encoded as an array of bulk strings (what a client sends).
pub fn encode_request<A: AsRef<[u8]>>(args: &[A], out: &mut Vec<u8>) {
    Reply::Array(args.iter().map(|a| Reply::Bulk(a.as_ref().to_vec())).collect()).encode(out);
}

/// Parses the first whole reply in `buf` (for clients and tests): the reply and the bytes it
/// took, `None` if incomplete.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, ProtocolError> {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else { return Ok(None) };
    if nl == 0 || buf[nl - 1] != b'\r' {
        return err("reply line without CRLF");
    }
    let text = &buf[1..nl - 1];
    let s = || String::from_utf8_lossy(text).into_owned();
    let num = || s().parse::<i64>().map_err(|_| ProtocolError(format!("bad number {:?}", s())));
    let at = nl + 1;
    match buf[0] {
        b'+' => Ok(Some((Reply::Simple(s()), at))),
        b'-' => Ok(Some((Reply::Error(s()), at))),
        b':' => Ok(Some((Reply::Int(num()?), at))),
        b'$' => {
            let n = num()?;
            if n < 0 {
                return Ok(Some((Reply::Nil, at)));
            }
            let end = at + n as usize;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            Ok(Some((Reply::Bulk(buf[at..end].to_vec()), end + 2)))
        }
        b'*' => {
            let n = num()?;
            if n < 0 {
                return Ok(Some((Reply::Nil, at)));
            }
            let mut items = Vec::new();
            let mut pos = at;
            for _ in 0..n {
                match parse_reply(&buf[pos..])? {
                    Some((r, used)) => {
                        items.push(r);
                        pos += used;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((Reply::Array(items), pos)))
        }
        other => err(format!("unknown reply type '{}'", printable(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &[&str]) -> Vec<Vec<u8>> {
        s.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn arrays_of_bulk_strings_parse_whole_or_wait() {
        let l = Limits::default();
        let mut req = Vec::new();
        encode_request(&["SET", "k", "a\r\nb"], &mut req);
        req.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
        let (args, used) = parse(&req, &l).unwrap().unwrap();
        assert_eq!(args, words(&["SET", "k", "a\r\nb"]));
        assert_eq!(parse(&req[used..], &l).unwrap().unwrap().0, words(&["PING"]));
        for cut in 0..used {
            assert_eq!(parse(&req[..cut], &l).unwrap(), None, "cut at {cut}");
        }
    }

    #[test]
    fn inline_commands_split_like_redis() {
        let l = Limits::default();
        let (args, used) = parse(b"set k \"a b\\n\" 'c'\r\nGET k\n", &l).unwrap().unwrap();
        assert_eq!(args, words(&["set", "k", "a b\n", "c"]));
        assert_eq!(used, 19);
        assert_eq!(parse(b"  \r\n", &l).unwrap().unwrap().0, Vec::<Vec<u8>>::new());
        assert_eq!(parse(b"GET k", &l).unwrap(), None);
        assert!(parse(b"GET \"k\n", &l).unwrap_err().0.contains("unbalanced"));
    }

    #[test]
    fn malformed_and_oversized_requests_are_protocol_errors() {
        let l = Limits { max_bulk: 10, max_array: 4, max_inline: 40, max_pending: 100 };
        let bad: &[(&[u8], &str)] = &[
            (b"*x\r\n", "invalid multibulk length"),
            (b"*5\r\n", "invalid multibulk length"),
            (b"*1\r\n+PING\r\n", "expected '$', got '+'"),
            (b"*1\r\n$-3\r\n", "invalid bulk length"),
            (b"*1\r\n$11\r\n", "invalid bulk length"),
            (b"*1\r\n$abc\r\n", "invalid bulk length"),
            (b"*1\r\n$2\r\nabc\r\n", "bulk string not followed by CRLF"),
            (b"*1111111111111111111111111111111111111", "too big mbulk count string"),
            (&[b'x'; 50], "too big inline request"),
        ];
        for (input, want) in bad {
            let e = parse(input, &l).unwrap_err();
            assert!(e.0.contains(want), "{:?}: {e}", String::from_utf8_lossy(input));
        }
        assert_eq!(parse(b"*0\r\n", &l).unwrap(), Some((vec![], 4)));
    }

    /// Every request stream parses the same whole as split in two at any point (as a socket
    /// may deliver it): the same requests, the same error.
    #[test]
    fn split_input_parses_as_whole() {
        let l = Limits { max_bulk: 8, max_array: 4, max_inline: 24, max_pending: 64 };
        let all = |bytes: &[u8]| {
            let (mut out, mut at) = (Vec::new(), 0);
            loop {
                match parse(&bytes[at..], &l) {
                    Ok(Some((args, used))) => {
                        assert!(used > 0);
                        out.push(args);
                        at += used;
                    }
                    Ok(None) => return (out, at, false),
                    Err(_) => return (out, at, true),
                }
            }
        };
        let pieces: &[&[u8]] = &[
            b"*",
            b"$",
            b"1",
            b"2",
            b"3",
            b"-",
            b"0",
            b"\r\n",
            b"\n",
            b"a",
            b" ",
            b"\"",
            b"'",
            b"\\",
            b"x",
            b"9",
            b"*2\r\n",
            b"$3\r\nGET\r\n",
            b"$1\r\nk\r\n",
            b"PING\r\n",
            b"0000000000000000000000000000005",
        ];
        let mut x: u64 = 7;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) as usize
        };
        for _ in 0..20_000 {
            let mut input = Vec::new();
            for _ in 0..next() % 12 {
                input.extend_from_slice(pieces[next() % pieces.len()]);
            }
            let whole = all(&input);
            let cut = if input.is_empty() { 0 } else { next() % input.len() };
            let (first, consumed, failed) = all(&input[..cut]);
            let shown = String::from_utf8_lossy(&input).into_owned();
            if failed {
                assert!(whole.2 && whole.0.len() == first.len(), "{shown:?} cut at {cut}");
                continue;
            }
            let (rest, used, rest_failed) = all(&input[consumed..]);
            let mut joined = first;
            joined.extend(rest);
            assert_eq!((joined, consumed + used, rest_failed), whole, "{shown:?} cut at {cut}");
        }
    }

    #[test]
    fn replies_round_trip() {
        let r = Reply::Array(vec![
            Reply::ok(),
            Reply::err("no\r\nway"),
            Reply::Int(-3),
            Reply::Bulk(b"x\r\ny".to_vec()),
            Reply::Nil,
            Reply::Array(vec![]),
        ]);
        let mut out = Vec::new();
        r.encode(&mut out);
        assert!(out.starts_with(b"*6\r\n+OK\r\n-ERR no  way\r\n:-3\r\n$4\r\nx\r\ny\r\n$-1\r\n*0\r\n"));
        let (back, used) = parse_reply(&out).unwrap().unwrap();
        assert_eq!(used, out.len());
        assert_eq!(
            back,
            Reply::Array(vec![
                Reply::ok(),
                Reply::Error("ERR no  way".into()),
                Reply::Int(-3),
                Reply::Bulk(b"x\r\ny".to_vec()),
                Reply::Nil,
                Reply::Array(vec![]),
            ])
        );
    }
}
