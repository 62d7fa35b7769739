//! The sequential specifications a history is checked against: a key-value store (`kv`: get,
//! put, append, cas) and a compare-and-set register (`cas-register`: read, write, cas). Both
//! hold one value per key, nil at first; a history of many keys is checked one key at a time.

use crate::value::Value;
use std::fmt;

/// Which sequential object the history is of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// A key-value store: get, put, append (concatenates strings, extends lists), cas.
    Kv,
    /// A compare-and-set register: read, write, cas `[old new]`.
    CasRegister,
}

impl ModelKind {
    /// Parses `kv` or `cas-register`.
    pub fn parse(s: &str) -> Option<ModelKind> {
        match s {
            "kv" => Some(ModelKind::Kv),
            "cas-register" | "register" => Some(ModelKind::CasRegister),
            _ => None,
        }
    }

    /// The function an `:f` names in this model, or why not.
    pub fn func(self, f: &str) -> Result<Func, String> {
        let func = Func::parse(f).ok_or_else(|| format!("unknown operation `{f}` for the {self} model"))?;
        if self == ModelKind::CasRegister && func == Func::Append {
            return Err("`append` is not an operation of the cas-register model (use --model kv)".into());
        }
        Ok(func)
    }

    /// The model whose operations these `:f` names are: kv if one is get, put or append.
    pub fn guess<'a>(names: impl IntoIterator<Item = &'a str>) -> ModelKind {
        let kv = names.into_iter().any(|f| matches!(f, "get" | "put" | "append"));
        if kv {
            ModelKind::Kv
        } else {
            ModelKind::CasRegister
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ModelKind::Kv => "kv",
            ModelKind::CasRegister => "cas-register",
        })
    }
}

/// An operation's function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Func {
    /// Read the value (`read`, `get`, `r`): returns it, nil if none.
    Read,
    /// Replace the value (`write`, `put`, `w`).
    Write,
    /// Compare-and-set (`cas`): `[old new]`, takes effect only if the value is `old`.
    Cas,
    /// Append (`append`): a string is concatenated, a list extended by one element.
    Append,
}

impl Func {
    /// The function an `:f` names (its aliases included), if any.
    pub fn parse(f: &str) -> Option<Func> {
        Some(match f {
            "read" | "get" | "r" => Func::Read,
            "write" | "put" | "w" => Func::Write,
            "cas" | "compare-and-set" => Func::Cas,
            "append" => Func::Append,
            _ => return None,
        })
    }

    /// A short label for timelines: `r`, `w`, `cas`, `app`.
    pub fn short(self) -> &'static str {
        match self {
            Func::Read => "r",
            Func::Write => "w",
            Func::Cas => "cas",
            Func::Append => "app",
        }
    }
}

/// What applying an operation to a state gives.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// The operation is legal here and leaves the state as it is (a read).
    Same,
    /// The operation is legal here and the state becomes this.
    New(Value),
    /// The operation cannot happen in this state (a read of another value, a CAS that fails).
    Illegal,
}

/// Applies `func` with argument `arg` (the written or appended value, a CAS's `[old new]`) and
/// result `out` (a read's value) to `state`.
pub fn step(state: &Value, func: Func, arg: &Value, out: &Value) -> Step {
    match func {
        Func::Read if out == state => Step::Same,
        Func::Read => Step::Illegal,
        Func::Write => Step::New(arg.clone()),
        Func::Cas => match arg.pair() {
            Some((old, new)) if old == state => Step::New(new.clone()),
            _ => Step::Illegal,
        },
        Func::Append => match (state, arg) {
            (Value::Nil, a) => Step::New(a.clone()),
            (Value::Str(s), Value::Str(a)) => Step::New(Value::Str(format!("{s}{a}"))),
            (Value::List(l), a) => {
                let mut l = l.clone();
                l.push(a.clone());
                Step::New(Value::List(l))
            }
            _ => Step::Illegal,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::Str(x.into())
    }

    #[test]
    fn register_steps() {
        let one = Value::Int(1);
        let two = Value::Int(2);
        assert_eq!(step(&Value::Nil, Func::Read, &Value::Nil, &Value::Nil), Step::Same);
        assert_eq!(step(&one, Func::Read, &Value::Nil, &two), Step::Illegal);
        assert_eq!(step(&one, Func::Write, &two, &Value::Nil), Step::New(two.clone()));
        let cas = Value::List(vec![one.clone(), two.clone()]);
        assert_eq!(step(&one, Func::Cas, &cas, &Value::Nil), Step::New(two.clone()));
        assert_eq!(step(&two, Func::Cas, &cas, &Value::Nil), Step::Illegal);
    }

    #[test]
    fn append_concatenates_strings_and_extends_lists() {
        assert_eq!(step(&Value::Nil, Func::Append, &s("ab"), &Value::Nil), Step::New(s("ab")));
        assert_eq!(step(&s("ab"), Func::Append, &s("c"), &Value::Nil), Step::New(s("abc")));
        let l = Value::List(vec![Value::Int(1)]);
        assert_eq!(
            step(&l, Func::Append, &Value::Int(2), &Value::Nil),
            Step::New(Value::List(vec![Value::Int(1), Value::Int(2)]))
        );
        assert_eq!(step(&Value::Int(1), Func::Append, &s("c"), &Value::Nil), Step::Illegal);
    }

    #[test]
    fn models_name_their_functions() {
        assert_eq!(ModelKind::guess(["read", "cas"]), ModelKind::CasRegister);
        assert_eq!(ModelKind::guess(["get", "put"]), ModelKind::Kv);
        assert!(ModelKind::CasRegister.func("append").is_err());
        assert_eq!(ModelKind::Kv.func("append"), Ok(Func::Append));
        assert!(ModelKind::Kv.func("lock").unwrap_err().contains("unknown operation `lock`"));
    }
}
