//! A reader for the part of EDN (Clojure's data notation) that Jepsen histories use, and the
//! history events such a file holds.
//!
//! Reads nil, booleans, integers (`12`, `12N`), floats (kept as text), strings, characters,
//! keywords, symbols, lists, vectors, maps, sets, comments (`;`), discards (`#_`) and tagged
//! values (`#inst "..."`, and records such as `#jepsen.history.Op{...}`, read as their map).
//! A history file is either one vector (or list) of operation maps, or operation maps one after
//! another (one per line, as Jepsen's `history.edn`).

use crate::error::Error;
use crate::history::{Event, Kind};
use crate::value::Value;

/// How deep values may nest: deeper is refused rather than risking the stack.
const MAX_DEPTH: usize = 256;

/// One EDN value.
#[derive(Clone, Debug, PartialEq)]
pub enum Edn {
    /// `nil`.
    Nil,
    /// `true`, `false`.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// Any other number (a float, a big integer, a ratio), as written.
    Number(String),
    /// A string.
    Str(String),
    /// A character (`\a`, `\newline`).
    Char(char),
    /// A keyword, without its colon.
    Keyword(String),
    /// A symbol.
    Symbol(String),
    /// `(...)` or `[...]`.
    Seq(Vec<Edn>),
    /// `{...}`, its pairs in order.
    Map(Vec<(Edn, Edn)>),
    /// `#{...}`.
    Set(Vec<Edn>),
}

impl Edn {
    /// The value of `:key` in a map.
    pub fn get(&self, key: &str) -> Option<&Edn> {
        match self {
            Edn::Map(pairs) => {
                pairs.iter().find(|(k, _)| matches!(k, Edn::Keyword(x) if x == key)).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    /// As a history value: a map becomes a list of `[k v]` pairs, a set a sorted list.
    pub fn to_value(&self) -> Value {
        match self {
            Edn::Nil => Value::Nil,
            Edn::Bool(b) => Value::Bool(*b),
            Edn::Int(i) => Value::Int(*i),
            Edn::Number(s) | Edn::Str(s) | Edn::Symbol(s) => Value::Str(s.clone()),
            Edn::Char(c) => Value::Str(c.to_string()),
            Edn::Keyword(k) => Value::Keyword(k.clone()),
            Edn::Seq(items) => Value::List(items.iter().map(Edn::to_value).collect()),
            Edn::Map(pairs) => Value::List(
                pairs.iter().map(|(k, v)| Value::List(vec![k.to_value(), v.to_value()])).collect(),
            ),
            Edn::Set(items) => {
                let mut v: Vec<Value> = items.iter().map(Edn::to_value).collect();
                v.sort();
                Value::List(v)
            }
        }
    }
}

/// Reads every top-level value of `text`, each with the line it starts on.
pub fn read_all(text: &str) -> Result<Vec<(usize, Edn)>, Error> {
    let mut r = Reader { src: text.as_bytes(), text, pos: 0, line: 1 };
    let mut out = Vec::new();
    loop {
        r.skip_space()?;
        if r.pos >= r.src.len() {
            return Ok(out);
        }
        let line = r.line;
        out.push((line, r.value(0)?));
    }
}

/// The history events of an EDN history file. Events of processes that are not integers (the
/// nemesis) are left out.
pub fn parse_events(text: &str) -> Result<Vec<Event>, Error> {
    let mut r = Reader { src: text.as_bytes(), text, pos: 0, line: 1 };
    let mut forms = Vec::new();
    r.skip_space()?;
    if let Some(open @ (b'[' | b'(')) = r.peek() {
        // One vector of operations: read it item by item, each with its own line.
        let close = if open == b'[' { b']' } else { b')' };
        r.pos += 1;
        loop {
            r.skip_space()?;
            match r.peek() {
                None => return Err(r.err(format!("unclosed `{}`", open as char))),
                Some(b) if b == close => break,
                Some(_) => {
                    let line = r.line;
                    forms.push((line, r.value(1)?));
                }
            }
        }
        r.pos += 1;
        r.skip_space()?;
        if r.pos < r.src.len() {
            return Err(r.err("more text after the history's vector"));
        }
    } else {
        forms = read_all(text)?;
    }
    let mut events = Vec::new();
    for (line, form) in &forms {
        if let Some(e) = event(*line, form)? {
            events.push(e);
        }
    }
    Ok(events)
}

/// A history event from a Jepsen operation map; `None` for a nemesis's or another non-client's.
pub fn event(line: usize, form: &Edn) -> Result<Option<Event>, Error> {
    if !matches!(form, Edn::Map(_)) {
        return Err(Error::parse(line, "expected an operation map {:process .. :type .. :f .. :value ..}"));
    }
    let process = match form.get("process") {
        Some(Edn::Int(p)) => *p,
        Some(_) => return Ok(None),
        None => return Err(Error::parse(line, "an operation without :process")),
    };
    let kind = match form.get("type") {
        Some(Edn::Keyword(k)) | Some(Edn::Str(k)) => Kind::parse(k).ok_or_else(|| {
            Error::parse(line, format!(":type :{k}: expected :invoke, :ok, :fail or :info"))
        })?,
        _ => return Err(Error::parse(line, "an operation without :type")),
    };
    let f = match form.get("f") {
        Some(Edn::Keyword(k)) | Some(Edn::Str(k)) | Some(Edn::Symbol(k)) => k.clone(),
        _ => return Err(Error::parse(line, "an operation without :f")),
    };
    let value = form.get("value").map_or(Value::Nil, Edn::to_value);
    let key = form.get("key").map(Edn::to_value);
    let time = match form.get("time") {
        Some(Edn::Int(t)) => Some(*t),
        _ => None,
    };
    Ok(Some(Event { process, kind, f, key, value, time, line }))
}

struct Reader<'a> {
    src: &'a [u8],
    text: &'a str,
    pos: usize,
    line: usize,
}

fn is_delimiter(b: u8) -> bool {
    b.is_ascii_whitespace() || matches!(b, b',' | b'(' | b')' | b'[' | b']' | b'{' | b'}' | b'"' | b';')
}

impl Reader<'_> {
    fn err(&self, msg: impl Into<String>) -> Error {
        Error::parse(self.line, msg)
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    /// Skips whitespace, commas and comments.
    fn skip_space(&mut self) -> Result<(), Error> {
        while let Some(b) = self.peek() {
            match b {
                b'\n' => {
                    self.line += 1;
                    self.pos += 1;
                }
                b';' => {
                    while self.peek().is_some_and(|b| b != b'\n') {
                        self.pos += 1;
                    }
                }
                b if b.is_ascii_whitespace() || b == b',' => self.pos += 1,
                _ => break,
            }
        }
        Ok(())
    }

    /// A token: the bytes up to the next delimiter.
    fn token(&mut self) -> &str {
        let start = self.pos;
        while self.peek().is_some_and(|b| !is_delimiter(b)) {
            self.pos += 1;
        }
        // Delimiters are ASCII, so these are character boundaries.
        &self.text[start..self.pos]
    }

    fn value(&mut self, depth: usize) -> Result<Edn, Error> {
        if depth > MAX_DEPTH {
            return Err(self.err(format!("values nested more than {MAX_DEPTH} deep")));
        }
        self.skip_space()?;
        let Some(b) = self.peek() else { return Err(self.err("unexpected end of file")) };
        match b {
            b'(' | b'[' => {
                self.pos += 1;
                Ok(Edn::Seq(self.items(if b == b'(' { b')' } else { b']' }, depth)?))
            }
            b'{' => {
                self.pos += 1;
                self.map(depth)
            }
            b')' | b']' | b'}' => Err(self.err(format!("unexpected `{}`", b as char))),
            b'"' => self.string(),
            b'\\' => {
                self.pos += 1;
                let t = self.token().to_string();
                if t.is_empty() {
                    // `\(` and the like: the character itself.
                    let c = self.text[self.pos..].chars().next().ok_or_else(|| self.err("a lone `\\`"))?;
                    self.pos += c.len_utf8();
                    return Ok(Edn::Char(c));
                }
                Ok(Edn::Char(match t.as_str() {
                    "newline" => '\n',
                    "space" => ' ',
                    "tab" => '\t',
                    "return" => '\r',
                    _ => t.chars().next().expect("a non-empty token"),
                }))
            }
            b'#' => self.dispatch(depth),
            b':' => {
                self.pos += 1;
                let t = self.token();
                if t.is_empty() {
                    return Err(self.err("a `:` without a keyword"));
                }
                Ok(Edn::Keyword(t.to_string()))
            }
            _ => {
                let t = self.token().to_string();
                if t.is_empty() {
                    return Err(self.err(format!("unexpected `{}`", b as char)));
                }
                Ok(atom(&t))
            }
        }
    }

    fn items(&mut self, close: u8, depth: usize) -> Result<Vec<Edn>, Error> {
        let mut items = Vec::new();
        loop {
            self.skip_space()?;
            match self.peek() {
                None => return Err(self.err(format!("unclosed `{}`", opener(close)))),
                Some(b) if b == close => {
                    self.pos += 1;
                    return Ok(items);
                }
                Some(b'#') if self.src.get(self.pos + 1) == Some(&b'_') => {
                    self.pos += 2;
                    self.value(depth + 1)?;
                }
                Some(_) => items.push(self.value(depth + 1)?),
            }
        }
    }

    fn map(&mut self, depth: usize) -> Result<Edn, Error> {
        let items = self.items(b'}', depth)?;
        if items.len() % 2 != 0 {
            return Err(self.err("a map with a key and no value"));
        }
        let mut it = items.into_iter();
        let mut pairs = Vec::new();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            pairs.push((k, v));
        }
        Ok(Edn::Map(pairs))
    }

    fn dispatch(&mut self, depth: usize) -> Result<Edn, Error> {
        self.pos += 1;
        match self.peek() {
            Some(b'{') => {
                self.pos += 1;
                Ok(Edn::Set(self.items(b'}', depth)?))
            }
            Some(b'_') => {
                self.pos += 1;
                self.value(depth + 1)?;
                self.skip_space()?;
                self.value(depth)
            }
            Some(b'"') => self.string(),
            Some(b'#') => {
                self.pos += 1;
                Ok(Edn::Number(self.token().to_string()))
            }
            _ => {
                // A tag (`#inst "..."`) or a record (`#jepsen.history.Op{...}`): its value.
                if self.token().is_empty() {
                    return Err(self.err("a `#` without a tag"));
                }
                self.value(depth + 1)
            }
        }
    }

    fn string(&mut self) -> Result<Edn, Error> {
        let start_line = self.line;
        self.pos += 1;
        let mut s = String::new();
        loop {
            let rest = &self.text[self.pos..];
            let Some(i) = rest.find(['"', '\\']) else {
                return Err(Error::parse(start_line, "unterminated string"));
            };
            let chunk = &rest[..i];
            self.line += chunk.matches('\n').count();
            s.push_str(chunk);
            self.pos += i;
            if self.src[self.pos] == b'"' {
                self.pos += 1;
                return Ok(Edn::Str(s));
            }
            self.pos += 1;
            let c = self.text[self.pos..].chars().next().ok_or_else(|| self.err("unterminated string"))?;
            self.pos += c.len_utf8();
            match c {
                'n' => s.push('\n'),
                't' => s.push('\t'),
                'r' => s.push('\r'),
                'b' => s.push('\u{8}'),
                'f' => s.push('\u{c}'),
                'u' => {
                    let hex = self
                        .text
                        .get(self.pos..self.pos + 4)
                        .ok_or_else(|| self.err("a short \\u escape"))?;
                    let code = u32::from_str_radix(hex, 16).map_err(|_| self.err("a bad \\u escape"))?;
                    s.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                    self.pos += 4;
                }
                other => s.push(other),
            }
        }
    }
}

fn opener(close: u8) -> char {
    match close {
        b')' => '(',
        b']' => '[',
        _ => '{',
    }
}

/// A token that is not a string, keyword or collection: nil, a boolean, a number or a symbol.
fn atom(t: &str) -> Edn {
    match t {
        "nil" => return Edn::Nil,
        "true" => return Edn::Bool(true),
        "false" => return Edn::Bool(false),
        _ => {}
    }
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    if !digits.starts_with(|c: char| c.is_ascii_digit()) {
        return Edn::Symbol(t.to_string());
    }
    let int = t.strip_suffix('N').unwrap_or(t);
    match int.parse::<i64>() {
        Ok(i) => Edn::Int(i),
        Err(_) => Edn::Number(t.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Edn {
        let mut v = read_all(text).unwrap();
        assert_eq!(v.len(), 1, "{text}");
        v.remove(0).1
    }

    #[test]
    fn reads_scalars_and_collections() {
        assert_eq!(one("nil"), Edn::Nil);
        assert_eq!(one("-12"), Edn::Int(-12));
        assert_eq!(one("12N"), Edn::Int(12));
        assert_eq!(one("1.5"), Edn::Number("1.5".into()));
        assert_eq!(one("99999999999999999999"), Edn::Number("99999999999999999999".into()));
        assert_eq!(one(r#""a\"b\n\u0041""#), Edn::Str("a\"b\nA".into()));
        assert_eq!(one(":ok"), Edn::Keyword("ok".into()));
        assert_eq!(
            one("[1 (2) #{3}]"),
            Edn::Seq(vec![Edn::Int(1), Edn::Seq(vec![Edn::Int(2)]), Edn::Set(vec![Edn::Int(3)])])
        );
        assert_eq!(one("{:a 1, :b [nil]}").get("b"), Some(&Edn::Seq(vec![Edn::Nil])));
        assert_eq!(one("#inst \"2020\""), Edn::Str("2020".into()));
        assert_eq!(one("#jepsen.history.Op{:process 1}").get("process"), Some(&Edn::Int(1)));
        assert_eq!(one("[1 #_ 2 3] ; comment"), Edn::Seq(vec![Edn::Int(1), Edn::Int(3)]));
        assert_eq!(one("\\a"), Edn::Char('a'));
        assert_eq!(one("foo/bar"), Edn::Symbol("foo/bar".into()));
    }

    #[test]
    fn refuses_malformed_text_with_its_line() {
        for (text, line, what) in [
            ("[1 2", 1, "unclosed `[`"),
            ("{:a 1\n :b}", 2, "a key and no value"),
            ("\n\n\"abc", 3, "unterminated string"),
            ("]", 1, "unexpected `]`"),
            ("#", 1, "without a tag"),
        ] {
            let e = read_all(text).unwrap_err();
            assert!(
                matches!(&e, Error::Parse { line: l, msg } if *l == line && msg.contains(what)),
                "{text}: {e}"
            );
        }
        let deep = "[".repeat(10_000);
        assert!(read_all(&deep).unwrap_err().to_string().contains("nested"));
    }

    #[test]
    fn reads_histories_in_both_layouts() {
        let lines = "{:process 0, :type :invoke, :f :read, :value nil}\n\
                     {:process :nemesis, :type :info, :f :start, :value nil}\n\
                     {:process 0, :type :ok, :f :read, :value 3, :time 12}\n";
        let events = parse_events(lines).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(
            (events[1].kind, events[1].value.clone(), events[1].time, events[1].line),
            (Kind::Ok, Value::Int(3), Some(12), 3)
        );
        let vector = "[{:process 0, :type :invoke, :f :cas, :value [1 2]}\n {:process 0 :type :fail :f :cas :value [1 2]}]";
        let events = parse_events(vector).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].value, Value::List(vec![Value::Int(1), Value::Int(2)]));
        assert!(parse_events("[{:process 0 :f :read}]").unwrap_err().to_string().contains("without :type"));
        assert!(parse_events("{:process 0 :type :maybe :f :read}")
            .unwrap_err()
            .to_string()
            .contains(":maybe"));
        assert!(parse_events("3").unwrap_err().to_string().contains("operation map"));
    }
}
