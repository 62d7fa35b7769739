//! `Value`: what an operation writes, reads or compares — the common ground of every history
//! format (EDN, Jepsen log lines, agora's JSON lines).

use serde::ser::{Serialize, SerializeSeq, Serializer};
use std::fmt;

/// A value of a history: nil, a boolean, an integer, a string, a keyword or a list.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Value {
    /// No value: an absent key, a register never written, a read's invocation.
    Nil,
    /// `true` or `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A string (EDN and JSON strings; also a float or a big number, kept as its text).
    Str(String),
    /// An EDN keyword, without its colon.
    Keyword(String),
    /// A vector or a list (EDN) or an array (JSON); a map becomes a list of `[k v]` pairs.
    List(Vec<Value>),
}

impl Value {
    /// The two elements of a two-element list (a CAS's `[old new]`, an independent `[k v]`).
    pub fn pair(&self) -> Option<(&Value, &Value)> {
        match self {
            Value::List(v) if v.len() == 2 => Some((&v[0], &v[1])),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    /// EDN's notation: `nil`, `3`, `"x"`, `:k`, `[1 2]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => f.write_str("nil"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Keyword(k) => write!(f, ":{k}"),
            Value::List(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
        }
    }
}

impl Serialize for Value {
    /// JSON's notation: `null`, `3`, `"x"`, `":k"`, `[1, 2]`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Nil => s.serialize_none(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Str(x) => s.serialize_str(x),
            Value::Keyword(k) => s.serialize_str(&format!(":{k}")),
            Value::List(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for v in items {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_as_edn_and_serializes_as_json() {
        let v =
            Value::List(vec![Value::Int(1), Value::Nil, Value::Str("a".into()), Value::Keyword("k".into())]);
        assert_eq!(v.to_string(), r#"[1 nil "a" :k]"#);
        assert_eq!(serde_json::to_string(&v).unwrap(), r#"[1,null,"a",":k"]"#);
        assert_eq!(v.pair(), None);
        assert!(Value::List(vec![Value::Int(1), Value::Int(2)]).pair().is_some());
    }
}
