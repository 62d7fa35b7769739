//! The trace digest: a 64-bit fingerprint folded over every event of a run.
//!
//! Two runs with the same digest handled the same events, at the same virtual times, with the
//! same message contents; it is how a test (or a user) proves a run replays from its seed.

/// An order-sensitive 64-bit running hash (SplitMix64's finalizer over each folded word).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digest(u64);

impl Default for Digest {
    fn default() -> Self {
        Digest(0x6a09_e667_f3bc_c908)
    }
}

impl Digest {
    /// Folds one word into the digest.
    pub fn word(&mut self, w: u64) {
        let mut z = (self.0 ^ w).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        self.0 = z ^ (z >> 31);
    }

    /// Folds a byte string into the digest, its length first, so that `"ab" + "c"` and
    /// `"a" + "bc"` differ.
    pub fn bytes(&mut self, b: &[u8]) {
        self.word(b.len() as u64);
        let mut chunks = b.chunks_exact(8);
        for c in &mut chunks {
            self.word(u64::from_le_bytes(c.try_into().expect("chunks of 8")));
        }
        let mut last = [0u8; 8];
        last[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        self.word(u64::from_le_bytes(last));
    }

    /// The digest so far.
    pub fn value(&self) -> u64 {
        self.0
    }

    /// The digest as 16 hex digits.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_content_matter() {
        let (mut a, mut b, mut c) = (Digest::default(), Digest::default(), Digest::default());
        a.word(1);
        a.word(2);
        b.word(2);
        b.word(1);
        assert_ne!(a, b);
        c.bytes(b"abc");
        let mut d = Digest::default();
        d.bytes(b"abd");
        assert_ne!(c, d);
        let mut e = Digest::default();
        e.bytes(b"abc");
        assert_eq!(c, e);
    }
}
