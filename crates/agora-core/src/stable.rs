//! `Stable`: what a node persisted, handed back to it when it is rebuilt after a crash.
//!
//! In the simulator a `Stable` lives beside the node and survives its crash; in the TCP
//! runtime it is loaded from the node's embedded database at start-up. Values are postcard
//! bytes written through [`crate::Context::persist`].

use crate::wire::{self, WireError};
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// The key a driver writes when a node that lost its storage is started again on purpose
/// (`agora node --rejoin`, or a simulated disk wipe): the node must catch up from its peers
/// before it takes part in decisions it may already have taken part in (votes, quorums). A
/// protocol that can rejoin safely removes it once it has caught up; see
/// [`crate::Setup::rejoins`].
pub const REJOINING: &str = "agora/rejoining";

/// A persisted value that does not decode: the node's storage is corrupt. Never read as
/// "nothing persisted": a protocol that meets one refuses to start.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("persisted value {key:?} is corrupt: {reason}")]
pub struct Corrupt {
    /// The key whose value is wrong.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Corrupt {
    /// A corrupt value under `key`, for `reason`.
    pub fn new(key: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Corrupt { key: key.into(), reason: reason.to_string() }
    }
}

/// A node's durable key-value state, as a vector sorted by key: most nodes persist a few keys,
/// and logs append keys in order, so this is smaller and faster than a tree for both.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stable {
    /// Each key and value shared between copies: the explorer and the simulator copy a
    /// node's storage whenever it writes while another state holds it, and a copy then costs
    /// one allocation, not two for every key.
    entries: Vec<(Arc<str>, Arc<[u8]>)>,
}

impl Stable {
    /// Nothing persisted: a node's state on its first start (or after its storage was lost).
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether no key is stored.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The number of keys stored.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        // Appends in key order are the common case: check the end first.
        match self.entries.last() {
            Some((last, _)) if &**last < key => Err(self.entries.len()),
            _ => self.entries.binary_search_by(|(k, _)| (**k).cmp(key)),
        }
    }

    /// Decodes the value stored under `key`, if any.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, WireError> {
        self.get_bytes(key).map(wire::decode).transpose()
    }

    /// Decodes the value stored under `key`, if any; a value that does not decode is
    /// [`Corrupt`], naming the key.
    pub fn load<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Corrupt> {
        self.get(key).map_err(|e| Corrupt::new(key, e))
    }

    /// Whether a driver marked this node as rejoining after losing its storage ([`REJOINING`]).
    pub fn rejoining(&self) -> bool {
        self.get_bytes(REJOINING).is_some()
    }

    /// The raw bytes stored under `key`, if any (for values the protocol encodes itself).
    pub fn get_bytes(&self, key: &str) -> Option<&[u8]> {
        self.find(key).ok().map(|i| &*self.entries[i].1)
    }

    /// Every entry whose key starts with `prefix`, in key order.
    pub fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a [u8])> {
        let start = self.find(prefix).unwrap_or_else(|i| i);
        self.entries[start..]
            .iter()
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (&**k, &**v))
    }

    /// Records a durable write (drivers call this for `Effect::Persist`).
    pub fn put(&mut self, key: String, value: Vec<u8>) {
        match self.find(&key) {
            Ok(i) => self.entries[i].1 = value.into(),
            Err(i) => self.entries.insert(i, (key.into(), value.into())),
        }
    }

    /// Records a durable removal (drivers call this for `Effect::Unpersist`).
    pub fn remove(&mut self, key: &str) {
        if let Ok(i) = self.find(key) {
            self.entries.remove(i);
        }
    }

    /// Records a durable removal of every key in `from..to` (for `Effect::UnpersistRange`).
    pub fn remove_range(&mut self, from: &str, to: &str) {
        if from >= to {
            return;
        }
        let start = self.find(from).unwrap_or_else(|i| i);
        let end = self.find(to).unwrap_or_else(|i| i);
        self.entries.drain(start..end);
    }

    /// Every entry, in key order (byte order of the keys).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().map(|(k, v)| (&**k, &**v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_values_and_prefix_scan() {
        let mut s = Stable::new();
        s.put("log/2".into(), wire::encode(&"b"));
        s.put("log/1".into(), wire::encode(&"a"));
        s.put("term".into(), wire::encode(&3u64));
        assert_eq!(s.get::<u64>("term").unwrap(), Some(3));
        assert_eq!(s.get::<u64>("vote").unwrap(), None);
        let keys: Vec<_> = s.with_prefix("log/").map(|(k, _)| k).collect();
        assert_eq!(keys, ["log/1", "log/2"]);
        s.remove("term");
        assert_eq!(s.len(), 2);
        assert!(s.get::<u64>("log/1").is_err(), "a string is not a u64");
        let e = s.load::<u64>("log/1").unwrap_err();
        assert_eq!(e.key, "log/1", "a corrupt value names its key");
        assert_eq!(s.load::<u64>("nothing"), Ok(None));
    }

    #[test]
    fn a_range_removal_takes_its_keys_only() {
        let mut s = Stable::new();
        for k in ["a", "log/1", "log/2", "log/3", "log/4", "z"] {
            s.put(k.into(), vec![1]);
        }
        s.remove_range("log/2", "log/4");
        let keys: Vec<_> = s.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "log/1", "log/4", "z"], "from included, to excluded");
        s.remove_range("log/", "log0");
        assert_eq!(s.iter().map(|(k, _)| k).collect::<Vec<_>>(), ["a", "z"]);
        s.remove_range("z", "a");
        assert_eq!(s.len(), 2, "an empty range removes nothing");
        s.remove_range("b", "zz");
        assert_eq!(s.iter().map(|(k, _)| k).collect::<Vec<_>>(), ["a"], "past the end");
    }
}
