//! The versioned handshake that opens every connection.
//!
//! The dialing node sends a [`Hello`] frame: magic, wire version, cluster name, protocol name,
//! its own id and the id it expects to reach. The accepting node answers with a [`Reply`]:
//! `Accepted`, or `Refused` with the reason, and closes the connection on refusal. A connection
//! carries messages one way only, from the dialer to the acceptor, so two nodes talking both
//! ways hold two connections and no dial race can arise.

use serde::{Deserialize, Serialize};

/// Bytes that open every hello, so that a stray client is recognised at once.
pub const MAGIC: [u8; 4] = *b"AGRA";

/// The version of the frame and handshake format. Bumped on any incompatible change.
pub const WIRE_VERSION: u16 = 1;

/// Longest cluster or protocol name accepted in a hello.
pub const MAX_NAME_BYTES: usize = 128;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub magic: [u8; 4],
    pub wire_version: u16,
    pub cluster: String,
    pub protocol: String,
    pub from: u32,
    pub to: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    Accepted,
    Refused(String),
}

/// What the accepting node expects of a hello.
#[derive(Clone, Debug)]
pub struct Expect {
    pub cluster: String,
    pub protocol: String,
    pub me: u32,
    pub nodes: u32,
}

impl Hello {
    pub fn new(cluster: &str, protocol: &str, from: u32, to: u32) -> Hello {
        Hello {
            magic: MAGIC,
            wire_version: WIRE_VERSION,
            cluster: cluster.into(),
            protocol: protocol.into(),
            from,
            to,
        }
    }

    /// Accepts the hello, or gives the one-line reason for refusing it.
    pub fn check(&self, e: &Expect) -> Result<(), String> {
        if self.magic != MAGIC {
            return Err("not an agora peer (bad magic)".into());
        }
        if self.wire_version != WIRE_VERSION {
            return Err(format!("wire version {} is not ours ({WIRE_VERSION})", self.wire_version));
        }
        if self.cluster.len() > MAX_NAME_BYTES || self.protocol.len() > MAX_NAME_BYTES {
            return Err("cluster or protocol name too long".into());
        }
        if self.cluster != e.cluster {
            return Err(format!("cluster `{}` is not this cluster (`{}`)", self.cluster, e.cluster));
        }
        if self.protocol != e.protocol {
            return Err(format!(
                "protocol `{}` is not this cluster's protocol (`{}`)",
                self.protocol, e.protocol
            ));
        }
        if self.to != e.me {
            return Err(format!("addressed to node {}, but this is node {}", self.to, e.me));
        }
        if self.from >= e.nodes || self.from == e.me {
            return Err(format!("node id {} is not a peer of this cluster of {}", self.from, e.nodes));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expect() -> Expect {
        Expect { cluster: "c".into(), protocol: "flood".into(), me: 1, nodes: 3 }
    }

    #[test]
    fn accepts_a_matching_hello_and_names_each_mismatch() {
        assert_eq!(Hello::new("c", "flood", 0, 1).check(&expect()), Ok(()));
        let bad = |h: Hello, needle: &str| assert!(h.check(&expect()).unwrap_err().contains(needle));
        bad(Hello::new("d", "flood", 0, 1), "cluster `d`");
        bad(Hello::new("c", "ring", 0, 1), "protocol `ring`");
        bad(Hello::new("c", "flood", 0, 2), "addressed to node 2");
        bad(Hello::new("c", "flood", 7, 1), "node id 7");
        bad(Hello::new("c", "flood", 1, 1), "node id 1");
        bad(Hello { wire_version: 9, ..Hello::new("c", "flood", 0, 1) }, "wire version 9");
        bad(Hello { magic: *b"HTTP", ..Hello::new("c", "flood", 0, 1) }, "bad magic");
    }
}
