//! `NodeSet`: a set of node ids written as ranges, e.g. `0..3,5,7..9` (ends exclusive).

use agora_core::NodeId;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A set of nodes as a list of half-open ranges.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct NodeSet {
    ranges: Vec<(u32, u32)>,
}

impl NodeSet {
    /// Whether node `n` is in the set.
    pub fn contains(&self, n: NodeId) -> bool {
        self.ranges.iter().any(|&(a, b)| a <= n.0 && n.0 < b)
    }

    /// The largest id in the set plus one (0 for an empty set).
    pub fn end(&self) -> u32 {
        self.ranges.iter().map(|r| r.1).max().unwrap_or(0)
    }

    /// Whether the set holds no node.
    pub fn is_empty(&self) -> bool {
        self.ranges.iter().all(|(a, b)| a >= b)
    }

    /// Every node of the set, range by range in the order written (a node in two ranges comes
    /// twice).
    pub fn iter(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.ranges.iter().flat_map(|&(a, b)| (a..b).map(NodeId))
    }

    /// The set holding node `n` alone. Panics if `n` is `u32::MAX`.
    pub fn single(n: u32) -> Self {
        NodeSet { ranges: vec![(n, n + 1)] }
    }
}

impl FromStr for NodeSet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut ranges = Vec::new();
        for part in s.split(',').map(str::trim) {
            let num = |t: &str| {
                t.trim().parse::<u32>().map_err(|_| format!("`{t}` is not a node id in node set `{s}`"))
            };
            if let Some((a, b)) = part.split_once("..") {
                let (a, b) = (num(a)?, num(b)?);
                if a >= b {
                    return Err(format!("empty range `{part}` in node set `{s}` (ends are exclusive)"));
                }
                ranges.push((a, b));
            } else {
                let n = num(part)?;
                let end =
                    n.checked_add(1).ok_or_else(|| format!("node id {n} in node set `{s}` is too large"))?;
                ranges.push((n, end));
            }
        }
        Ok(NodeSet { ranges })
    }
}

impl fmt::Display for NodeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(a, b)) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if b == a + 1 {
                write!(f, "{a}")?;
            } else {
                write!(f, "{a}..{b}")?;
            }
        }
        Ok(())
    }
}

impl Serialize for NodeSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for NodeSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            One(u32),
            List(Vec<u32>),
        }
        match Raw::deserialize(d)? {
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
            Raw::One(n) => Ok(NodeSet::single(n)),
            Raw::List(v) => Ok(NodeSet { ranges: v.into_iter().map(|n| (n, n + 1)).collect() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges_and_singles() {
        let s: NodeSet = "0..3, 5,7..9".parse().unwrap();
        let ids: Vec<u32> = s.iter().map(|n| n.0).collect();
        assert_eq!(ids, [0, 1, 2, 5, 7, 8]);
        assert!(s.contains(NodeId(5)) && !s.contains(NodeId(4)));
        assert_eq!(s.end(), 9);
        assert_eq!(s.to_string(), "0..3,5,7..9");
    }

    #[test]
    fn rejects_nonsense() {
        assert!("3..3".parse::<NodeSet>().is_err());
        assert!("a".parse::<NodeSet>().is_err());
        assert!("1..".parse::<NodeSet>().is_err());
        assert!("-1".parse::<NodeSet>().is_err());
    }
}
