//! The versioned, authenticated handshake that opens every connection.
//!
//! Every node of a cluster holds the same 32-byte [`Secret`]. A connection opens with a
//! challenge-response in which each side proves that it holds the secret without sending it:
//!
//! 1. The dialer sends a [`Hello`]: magic, wire version, cluster name, protocol name, its own
//!    id, the id it expects to reach, and a fresh random nonce.
//! 2. The acceptor checks the names and ids ([`Hello::check`]) and answers
//!    [`Reply::Challenge`] with a fresh nonce of its own (or `Refused` with the reason).
//! 3. The dialer answers a [`Proof`]: the MAC, under the secret, of the hello and the
//!    challenge, labelled with its role ([`mac`]).
//! 4. The acceptor checks the proof and answers [`Reply::Accepted`] with its own MAC (the
//!    other role's label) and its idle timeout, or `Refused`. The dialer checks that MAC in
//!    turn, so neither side talks to a node without the secret.
//!
//! The MAC is blake3's keyed hash (a PRF) over both nonces and every field of the hello, so a
//! recorded handshake cannot be replayed (the acceptor's challenge is new each time), and
//! cannot be moved to another cluster, protocol or pair of nodes. The two role labels keep
//! one side's MAC from serving as the other's. What this does **not** give: secrecy or
//! integrity of the frames after the handshake — an attacker on the path between two nodes
//! can read them and, by taking over the TCP stream, inject frames. Run clusters on a
//! network you trust or under a VPN or TLS tunnel.
//!
//! A connection carries messages one way only, from the dialer to the acceptor, so two nodes
//! talking both ways hold two connections and no dial race can arise.

use agora_core::wire;
use rand::TryRngCore;
use serde::{Deserialize, Serialize};

/// Bytes that open every hello, so that a stray client is recognised at once.
pub const MAGIC: [u8; 4] = *b"AGRA";

/// The version of the frame and handshake format. Bumped on any incompatible change.
/// Version 2: the challenge-response with a cluster secret, and keepalive frames.
pub const WIRE_VERSION: u16 = 2;

/// Longest cluster or protocol name accepted in a hello.
pub const MAX_NAME_BYTES: usize = 128;

/// The largest handshake frame read (a hello with both names at their longest, or a refusal
/// reason): a stranger cannot make a node buffer more than this.
pub const MAX_HANDSHAKE_FRAME_BYTES: usize = 1024;

/// Bytes of a nonce, a secret and a MAC.
pub const KEY_BYTES: usize = 32;

/// The cluster secret: the key of the handshake's MAC. Its `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; KEY_BYTES]);

impl Secret {
    /// A secret with this key.
    pub fn from_bytes(key: [u8; KEY_BYTES]) -> Secret {
        Secret(key)
    }

    /// A fresh secret from the operating system's random source: right for a cluster whose
    /// nodes all run in one process; nodes in several processes must be given the same one.
    pub fn random() -> Secret {
        Secret(os_random())
    }

    /// Parses 64 hexadecimal digits (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Secret, String> {
        let text = text.trim();
        if text.len() != 2 * KEY_BYTES || !text.is_ascii() {
            return Err(format!(
                "a secret is {} hexadecimal digits, not {} characters",
                2 * KEY_BYTES,
                text.len()
            ));
        }
        let mut key = [0u8; KEY_BYTES];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| {
                format!("a secret is hexadecimal digits; `{}` is not", &text[2 * i..2 * i + 2])
            })?;
        }
        Ok(Secret(key))
    }

    /// The key as 64 lowercase hexadecimal digits (what [`Secret::from_hex`] reads).
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// 32 bytes from the operating system's random source.
///
/// # Panics
/// If the operating system cannot give random bytes (then no key or nonce can be trusted).
pub fn os_random() -> [u8; KEY_BYTES] {
    let mut out = [0u8; KEY_BYTES];
    rand::rngs::OsRng.try_fill_bytes(&mut out).expect("the operating system's random source");
    out
}

/// The dialer's first frame: who it is, whom it wants, for which cluster and protocol.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`MAGIC`]: a stray client is refused at once.
    pub magic: [u8; 4],
    /// [`WIRE_VERSION`] of the dialer; another version is refused.
    pub wire_version: u16,
    /// The cluster's name (at most [`MAX_NAME_BYTES`]); a node of another cluster is refused.
    pub cluster: String,
    /// The protocol's CLI name (at most [`MAX_NAME_BYTES`]); it must be the acceptor's.
    pub protocol: String,
    /// The dialer's node id.
    pub from: u32,
    /// The node id the dialer means to reach: a node at a reused address refuses a hello for
    /// another id.
    pub to: u32,
    /// Fresh for each connection: the acceptor's MAC covers it, so the dialer knows the
    /// acceptor's answer is not a recording.
    pub nonce: [u8; KEY_BYTES],
}

/// The acceptor's answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// The hello names this cluster and node; prove you hold the secret for this nonce.
    Challenge([u8; KEY_BYTES]),
    /// The proof holds. `mac` is the acceptor's own proof; `idle_timeout_ms` is how long the
    /// acceptor lets the connection go without a frame (the dialer sends keepalives).
    Accepted {
        /// The acceptor's MAC, [`Role::Acceptor`], over the hello and its challenge.
        mac: [u8; KEY_BYTES],
        /// Milliseconds without a frame after which the acceptor closes the connection.
        idle_timeout_ms: u64,
    },
    /// The hello or the proof is not accepted: the one-line reason. The acceptor closes the
    /// connection after it.
    Refused(String),
}

/// The dialer's answer to a challenge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof(pub [u8; KEY_BYTES]);

/// Which side of the handshake a MAC speaks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Role {
    /// The side that opens the connection and sends the hello.
    Dialer,
    /// The side that accepts it and sends the challenge.
    Acceptor,
}

/// Separates this MAC from any other use of the same key.
const LABEL: &str = "agora handshake v2";

/// The MAC of `role` over the whole hello and the acceptor's challenge.
pub fn mac(secret: &Secret, role: Role, hello: &Hello, challenge: &[u8; KEY_BYTES]) -> [u8; KEY_BYTES] {
    let transcript = wire::encode(&(LABEL, role, hello, challenge));
    *blake3::keyed_hash(&secret.0, &transcript).as_bytes()
}

/// Whether `claimed` is `role`'s MAC over the hello and challenge (compared in constant time).
pub fn verify(
    secret: &Secret,
    role: Role,
    hello: &Hello,
    challenge: &[u8; KEY_BYTES],
    claimed: &[u8; KEY_BYTES],
) -> bool {
    blake3::Hash::from_bytes(mac(secret, role, hello, challenge)) == blake3::Hash::from_bytes(*claimed)
}

/// What the accepting node expects of a hello.
#[derive(Clone, Debug)]
pub struct Expect {
    /// The acceptor's cluster name.
    pub cluster: String,
    /// The acceptor's protocol name.
    pub protocol: String,
    /// The acceptor's own id: a hello must be addressed to it.
    pub me: u32,
    /// The cluster size: a hello must come from another node in `0..nodes`.
    pub nodes: u32,
}

impl Hello {
    /// A hello with a fresh nonce.
    pub fn new(cluster: &str, protocol: &str, from: u32, to: u32) -> Hello {
        Hello {
            magic: MAGIC,
            wire_version: WIRE_VERSION,
            cluster: cluster.into(),
            protocol: protocol.into(),
            from,
            to,
            nonce: os_random(),
        }
    }

    /// Accepts the hello's names and ids, or gives the one-line reason for refusing it. (The
    /// secret is checked after, by the challenge.)
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

    #[test]
    fn a_mac_holds_only_for_its_secret_role_hello_and_challenge() {
        let (secret, hello, challenge) = (Secret::random(), Hello::new("c", "flood", 0, 1), os_random());
        let proof = mac(&secret, Role::Dialer, &hello, &challenge);
        assert!(verify(&secret, Role::Dialer, &hello, &challenge, &proof));
        assert!(!verify(&Secret::random(), Role::Dialer, &hello, &challenge, &proof));
        assert!(!verify(&secret, Role::Acceptor, &hello, &challenge, &proof));
        assert!(!verify(&secret, Role::Dialer, &hello, &os_random(), &proof));
        for other in [
            Hello { from: 2, ..hello.clone() },
            Hello { to: 2, ..hello.clone() },
            Hello { cluster: "d".into(), ..hello.clone() },
            Hello { protocol: "ring".into(), ..hello.clone() },
            Hello { nonce: os_random(), ..hello.clone() },
        ] {
            assert!(!verify(&secret, Role::Dialer, &other, &challenge, &proof), "{other:?}");
        }
    }

    #[test]
    fn a_secret_reads_back_from_its_hex_and_bad_hex_is_named() {
        let s = Secret::random();
        assert_eq!(Secret::from_hex(&format!(" {}\n", s.to_hex())), Ok(s.clone()));
        assert_eq!(format!("{s:?}"), "Secret(..)");
        assert!(Secret::from_hex("abc").unwrap_err().contains("64 hexadecimal digits"));
        assert!(Secret::from_hex(&"zz".repeat(32)).unwrap_err().contains("`zz`"));
        assert!(Secret::from_hex(&"é".repeat(32)).is_err());
    }
}
