//! `Strings`: the state machine behind `agora kv` — a byte-string key-value store with the
//! string commands of Redis (SET with NX/XX, DEL, INCRBY, APPEND, MSET, ...) and a
//! compare-and-set, replicated by the Raft log (see docs/kv.md).
//!
//! Everything is deterministic: no clocks (no expiry), no randomness; integer rules are
//! Redis's (a value is an integer when it is the canonical decimal form of an `i64`; an
//! overflow is an error and changes nothing). A command that fails answers
//! [`StrOut::Err`] with Redis's message and changes nothing; a multi-key command (`MSET`,
//! `DEL`) is one command, so it is atomic.
//!
//! Reads exist twice: as [`StrQuery`], answered by the leader at a read index without a log
//! entry, and as [`StrCmd::Read`], a read that travels through the log (the front end uses it
//! for a read pipelined behind a write of the same connection, so it sees that write).

use super::{Pos, StateMachine};
use serde::{Deserialize, Serialize, Serializer};
use smallvec::SmallVec;
use std::collections::HashMap;

/// A key as the store keeps it: up to 24 bytes inside the map's slot, so that finding a key
/// reads no memory of its own (the map of a busy store is larger than the caches, and each
/// miss costs more than the comparison).
type Key = SmallVec<[u8; 24]>;
/// A value as the store keeps it: up to 16 bytes in the slot, so that overwriting a short
/// value allocates and frees nothing.
type Value = SmallVec<[u8; 16]>;

/// The store: keys to values, both byte strings. A hash map (with the standard library's
/// keyed hash, so that clients cannot choose keys that collide): every command of a replica
/// finds its key in it, where an ordered map compared the key with a score or more of
/// others. Nothing depends on its iteration order: its encoding and its `Debug` sort it.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Strings {
    #[serde(serialize_with = "in_key_order")]
    map: HashMap<Key, Value>,
}

/// The entries of `map` in key order.
fn sorted(map: &HashMap<Key, Value>) -> Vec<(&[u8], &[u8])> {
    let mut entries: Vec<_> = map.iter().map(|(k, v)| (&k[..], &v[..])).collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    entries
}

impl std::fmt::Debug for Strings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Strings").field("map", &DebugMap(&sorted(&self.map))).finish()
    }
}

/// Sorted entries shown as a map.
struct DebugMap<'a>(&'a [(&'a [u8], &'a [u8])]);

impl std::fmt::Debug for DebugMap<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.0.iter().copied()).finish()
    }
}

/// The map encoded in key order: the same state is the same bytes on every replica and in
/// every run (the encoding of the ordered map this store once was, so older snapshots read).
fn in_key_order<S: Serializer>(map: &HashMap<Key, Value>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(sorted(map))
}

/// When a `SET` takes effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetIf {
    /// Always.
    Always,
    /// Only if the key does not exist (`NX`).
    Absent,
    /// Only if the key exists (`XX`).
    Present,
}

/// A command: goes through the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StrCmd {
    /// `SET key value [NX|XX] [GET]`: `+OK` (or the old value with `get`), nil if the
    /// condition does not hold.
    Set {
        /// The key.
        key: Vec<u8>,
        /// The new value.
        value: Vec<u8>,
        /// Its condition.
        cond: SetIf,
        /// Answer the old value instead of `OK`.
        get: bool,
    },
    /// `DEL key...`: the number of keys removed.
    Del {
        /// The keys.
        keys: Vec<Vec<u8>>,
    },
    /// `INCRBY key delta` (and INCR, DECR, DECRBY): the new value.
    IncrBy {
        /// The key.
        key: Vec<u8>,
        /// What to add.
        delta: i64,
    },
    /// `APPEND key value`: the new length.
    Append {
        /// The key.
        key: Vec<u8>,
        /// What to append.
        value: Vec<u8>,
    },
    /// `MSET key value ...`: `+OK`, all at once.
    MSet {
        /// `(key, value)` pairs, set in order (a later pair wins).
        pairs: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// `CAS key expected new`: 1 if the value was `expected` and is now `new`, else 0 (a
    /// missing key matches no `expected`).
    Cas {
        /// The key.
        key: Vec<u8>,
        /// The value it must have.
        expected: Vec<u8>,
        /// Its new value.
        new: Vec<u8>,
    },
    /// A read through the log.
    Read(StrQuery),
}

/// A query: a read at a read index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StrQuery {
    /// `GET key`.
    Get {
        /// The key.
        key: Vec<u8>,
    },
    /// `MGET key...`.
    MGet {
        /// The keys.
        keys: Vec<Vec<u8>>,
    },
    /// `EXISTS key...`: how many of them exist (a key named twice counts twice).
    Exists {
        /// The keys.
        keys: Vec<Vec<u8>>,
    },
    /// `STRLEN key`.
    StrLen {
        /// The key.
        key: Vec<u8>,
    },
    /// `DBSIZE`: the number of keys.
    DbSize,
}

/// An answer, shaped as a RESP reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StrOut {
    /// `+OK`.
    Ok,
    /// A nil bulk string.
    Nil,
    /// An integer.
    Int(i64),
    /// A bulk string.
    Bulk(Vec<u8>),
    /// An array of bulk strings or nils.
    Multi(Vec<Option<Vec<u8>>>),
    /// An error, with its Redis prefix (`ERR ...`).
    Err(String),
}

/// Redis's message for a value that is not an integer.
pub const NOT_AN_INTEGER: &str = "ERR value is not an integer or out of range";
/// Redis's message for an increment that overflows.
pub const OVERFLOW: &str = "ERR increment or decrement would overflow";

/// The `i64` a byte string is, by Redis's rule: its canonical decimal form (no sign on 0, no
/// leading zeros or `+`, no spaces), at most 20 characters.
pub fn parse_int(b: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(b).ok()?;
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let v: i64 = s.parse().ok()?;
    (v.to_string() == s).then_some(v)
}

impl Strings {
    /// The value of `key`.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.map.get(key).map(|v| &v[..])
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// No key at all.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl StateMachine for Strings {
    type Command = StrCmd;
    type Query = StrQuery;
    type Output = StrOut;

    fn apply(&mut self, _: Pos, cmd: &StrCmd) -> StrOut {
        match cmd {
            // One search of the map for a key that exists (the common case under load), two
            // for a new one; the key is copied only when it is inserted.
            StrCmd::Set { key, value, cond, get } => match self.map.get_mut(&key[..]) {
                Some(old) => match cond {
                    SetIf::Absent if *get => StrOut::Bulk(old.to_vec()),
                    SetIf::Absent => StrOut::Nil,
                    SetIf::Always | SetIf::Present => {
                        let old = std::mem::replace(old, Value::from_slice(value));
                        if *get {
                            StrOut::Bulk(old.into_vec())
                        } else {
                            StrOut::Ok
                        }
                    }
                },
                None => match cond {
                    SetIf::Present => StrOut::Nil,
                    SetIf::Always | SetIf::Absent => {
                        self.map.insert(Key::from_slice(key), Value::from_slice(value));
                        if *get {
                            StrOut::Nil
                        } else {
                            StrOut::Ok
                        }
                    }
                },
            },
            StrCmd::Del { keys } => {
                let n = keys.iter().filter(|k| self.map.remove(&k[..]).is_some()).count();
                StrOut::Int(n as i64)
            }
            StrCmd::IncrBy { key, delta } => {
                let old = match self.map.get(&key[..]) {
                    None => 0,
                    Some(v) => match parse_int(v) {
                        Some(i) => i,
                        None => return StrOut::Err(NOT_AN_INTEGER.into()),
                    },
                };
                match old.checked_add(*delta) {
                    Some(new) => {
                        self.map.insert(Key::from_slice(key), Value::from_slice(new.to_string().as_bytes()));
                        StrOut::Int(new)
                    }
                    None => StrOut::Err(OVERFLOW.into()),
                }
            }
            StrCmd::Append { key, value } => {
                let v = self.map.entry(Key::from_slice(key)).or_default();
                v.extend_from_slice(value);
                StrOut::Int(v.len() as i64)
            }
            StrCmd::MSet { pairs } => {
                for (k, v) in pairs {
                    self.map.insert(Key::from_slice(k), Value::from_slice(v));
                }
                StrOut::Ok
            }
            StrCmd::Cas { key, expected, new } => match self.map.get_mut(&key[..]) {
                Some(v) if v[..] == expected[..] => {
                    *v = Value::from_slice(new);
                    StrOut::Int(1)
                }
                _ => StrOut::Int(0),
            },
            StrCmd::Read(q) => self.query(q),
        }
    }

    fn query(&self, q: &StrQuery) -> StrOut {
        match q {
            StrQuery::Get { key } => self.map.get(&key[..]).map_or(StrOut::Nil, |v| StrOut::Bulk(v.to_vec())),
            StrQuery::MGet { keys } => {
                StrOut::Multi(keys.iter().map(|k| self.map.get(&k[..]).map(|v| v.to_vec())).collect())
            }
            StrQuery::Exists { keys } => {
                StrOut::Int(keys.iter().filter(|k| self.map.contains_key(&k[..])).count() as i64)
            }
            StrQuery::StrLen { key } => StrOut::Int(self.map.get(&key[..]).map_or(0, |v| v.len() as i64)),
            StrQuery::DbSize => StrOut::Int(self.map.len() as i64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    fn run(sm: &mut Strings, cmd: StrCmd) -> StrOut {
        sm.apply(Pos { index: 1, offset: 0 }, &cmd)
    }

    #[test]
    fn the_store_encodes_in_key_order_whatever_the_order_of_its_writes() {
        // Keys and values short enough to be kept in the map's slots, and longer ones.
        let mut keys: Vec<String> = (0..200).map(|i| format!("key:{:06}", (i * 7919) % 1000)).collect();
        keys.extend((0..20).map(|i| format!("a key longer than twenty-four bytes, {i}")));
        let value = |k: &str| if k.len() % 3 == 0 { k.repeat(4) } else { k.to_string() };
        let (mut forward, mut backward) = (Strings::default(), Strings::default());
        for k in &keys {
            run(&mut forward, set(k, &value(k), SetIf::Always));
        }
        for k in keys.iter().rev() {
            run(&mut backward, set(k, &value(k), SetIf::Always));
        }
        let ordered: std::collections::BTreeMap<Vec<u8>, Vec<u8>> =
            keys.iter().map(|k| (b(k), b(&value(k)))).collect();
        #[derive(Serialize)]
        struct Ordered {
            map: std::collections::BTreeMap<Vec<u8>, Vec<u8>>,
        }
        let bytes = agora_core::wire::encode(&forward);
        assert_eq!(bytes, agora_core::wire::encode(&backward), "one state, one encoding");
        assert_eq!(bytes, agora_core::wire::encode(&Ordered { map: ordered }), "the ordered map's bytes");
        assert_eq!(format!("{forward:?}"), format!("{backward:?}"), "one state, one description");
        let back: Strings = agora_core::wire::decode(&bytes).expect("it decodes");
        assert_eq!(back.len(), 220);
        for k in &keys {
            assert_eq!(back.get(k.as_bytes()), Some(value(k).as_bytes()), "{k}");
        }
    }

    fn set(k: &str, v: &str, cond: SetIf) -> StrCmd {
        StrCmd::Set { key: b(k), value: b(v), cond, get: false }
    }

    #[test]
    fn set_honours_nx_xx_and_get() {
        let mut sm = Strings::default();
        assert_eq!(run(&mut sm, set("k", "1", SetIf::Present)), StrOut::Nil);
        assert_eq!(run(&mut sm, set("k", "1", SetIf::Absent)), StrOut::Ok);
        assert_eq!(run(&mut sm, set("k", "2", SetIf::Absent)), StrOut::Nil);
        assert_eq!(run(&mut sm, set("k", "3", SetIf::Present)), StrOut::Ok);
        let get = StrCmd::Set { key: b("k"), value: b("4"), cond: SetIf::Always, get: true };
        assert_eq!(run(&mut sm, get), StrOut::Bulk(b("3")));
        assert_eq!(sm.query(&StrQuery::Get { key: b("k") }), StrOut::Bulk(b("4")));
        // With GET: NX on a key that exists answers its value and changes nothing; XX on a
        // missing key answers nil and creates nothing; a plain SET of a new key answers nil.
        let nx = StrCmd::Set { key: b("k"), value: b("5"), cond: SetIf::Absent, get: true };
        assert_eq!(run(&mut sm, nx), StrOut::Bulk(b("4")));
        assert_eq!(sm.query(&StrQuery::Get { key: b("k") }), StrOut::Bulk(b("4")));
        let xx = StrCmd::Set { key: b("m"), value: b("1"), cond: SetIf::Present, get: true };
        assert_eq!(run(&mut sm, xx), StrOut::Nil);
        assert_eq!(sm.query(&StrQuery::Get { key: b("m") }), StrOut::Nil);
        let new = StrCmd::Set { key: b("n"), value: b("1"), cond: SetIf::Always, get: true };
        assert_eq!(run(&mut sm, new), StrOut::Nil);
        assert_eq!(sm.query(&StrQuery::Get { key: b("n") }), StrOut::Bulk(b("1")));
    }

    #[test]
    fn integers_follow_redis_rules() {
        let mut sm = Strings::default();
        let incr = |d| StrCmd::IncrBy { key: b("n"), delta: d };
        assert_eq!(run(&mut sm, incr(1)), StrOut::Int(1));
        assert_eq!(run(&mut sm, incr(-11)), StrOut::Int(-10));
        for bad in [" 1", "01", "+1", "-0", "1.0", "", "abc", "99999999999999999999"] {
            run(&mut sm, set("x", bad, SetIf::Always));
            assert_eq!(
                run(&mut sm, StrCmd::IncrBy { key: b("x"), delta: 1 }),
                StrOut::Err(NOT_AN_INTEGER.into()),
                "{bad:?}"
            );
            assert_eq!(sm.get(b"x"), Some(bad.as_bytes()), "a failed INCR changes nothing");
        }
        run(&mut sm, set("x", &i64::MAX.to_string(), SetIf::Always));
        assert_eq!(run(&mut sm, StrCmd::IncrBy { key: b("x"), delta: 1 }), StrOut::Err(OVERFLOW.into()));
        assert_eq!(parse_int(b"-9223372036854775808"), Some(i64::MIN));
    }

    #[test]
    fn multi_key_commands_append_and_cas() {
        let mut sm = Strings::default();
        let pairs = vec![(b("a"), b("1")), (b("b"), b("2")), (b("a"), b("3"))];
        assert_eq!(run(&mut sm, StrCmd::MSet { pairs }), StrOut::Ok);
        let keys = vec![b("a"), b("b"), b("c")];
        assert_eq!(
            sm.query(&StrQuery::MGet { keys: keys.clone() }),
            StrOut::Multi(vec![Some(b("3")), Some(b("2")), None])
        );
        assert_eq!(sm.query(&StrQuery::Exists { keys: vec![b("a"), b("a"), b("c")] }), StrOut::Int(2));
        assert_eq!(run(&mut sm, StrCmd::Append { key: b("c"), value: b("xy") }), StrOut::Int(2));
        assert_eq!(run(&mut sm, StrCmd::Append { key: b("c"), value: b("z") }), StrOut::Int(3));
        let cas = |e: &str, n: &str| StrCmd::Cas { key: b("c"), expected: b(e), new: b(n) };
        assert_eq!(run(&mut sm, cas("xy", "q")), StrOut::Int(0));
        assert_eq!(run(&mut sm, cas("xyz", "q")), StrOut::Int(1));
        assert_eq!(
            run(&mut sm, StrCmd::Cas { key: b("none"), expected: b(""), new: b("q") }),
            StrOut::Int(0)
        );
        assert_eq!(run(&mut sm, StrCmd::Del { keys }), StrOut::Int(3));
        assert!(sm.is_empty());
    }
}
