//! The explorer's hash: 128 bits, fast on the many small writes a derived `Hash` makes.
//!
//! A state is known by its fingerprint alone, so a collision hides a state; with 128 bits
//! the chance is about n²/2¹²⁹ for n states, nothing at any size the explorer reaches. The
//! standard library's SipHash (64 bits) cost a quarter of the explorer's time, most of it in
//! the per-write overhead of hashing a node's fields one by one.
//!
//! **Construction.** Two 64-bit lanes, each absorbing every word written by a multiply that
//! keeps both halves of the 128-bit product (folded with xor), with its own constant and its
//! own tweak of the word, then a final round of the same. A multiply-fold spreads each input
//! bit over the whole lane; the lanes differ in constants so that they do not collide
//! together. The hash is not keyed and not meant to resist chosen inputs, only to tell states
//! apart; the constants are fractional digits of the square roots of 2, 3, 5 and 7.

use std::hash::{Hash, Hasher};

const K: [u64; 4] =
    [0x6a09_e667_f3bc_c908, 0xbb67_ae85_84ca_a73b, 0x3c6e_f372_fe94_f82b, 0xa54f_f53a_5f1d_36f1];

/// Both halves of `a · b`, folded.
#[inline(always)]
fn fold(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// A 128-bit hasher ([`Fingerprinter::finish128`]); [`Hasher::finish`] gives 64 of its bits.
#[derive(Clone, Copy)]
pub(super) struct Fingerprinter {
    a: u64,
    b: u64,
}

impl Fingerprinter {
    pub(super) fn new() -> Self {
        Fingerprinter { a: K[0], b: K[1] }
    }

    /// The 128-bit hash of what was written.
    #[inline]
    pub(super) fn finish128(&self) -> u128 {
        let a = fold(self.a ^ K[2], K[3]);
        let b = fold(self.b ^ K[3], K[2]);
        (u128::from(a) << 64) | u128::from(fold(b ^ a, K[0]))
    }
}

impl Hasher for Fingerprinter {
    #[inline]
    fn finish(&self) -> u64 {
        self.finish128() as u64
    }

    #[inline]
    fn write_u64(&mut self, x: u64) {
        self.a = fold(self.a ^ x, K[2]);
        self.b = fold(self.b ^ x.rotate_left(32) ^ K[0], K[3]);
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.write_u64(u64::from_le_bytes(c.try_into().expect("eight bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            // The length tells "ab" from "ab\0".
            self.write_u64(u64::from_le_bytes(last) ^ ((rest.len() as u64) << 60));
        }
    }

    #[inline]
    fn write_u8(&mut self, x: u8) {
        self.write_u64(u64::from(x));
    }

    #[inline]
    fn write_u16(&mut self, x: u16) {
        self.write_u64(u64::from(x));
    }

    #[inline]
    fn write_u32(&mut self, x: u32) {
        self.write_u64(u64::from(x));
    }

    #[inline]
    fn write_usize(&mut self, x: usize) {
        self.write_u64(x as u64);
    }

    #[inline]
    fn write_u128(&mut self, x: u128) {
        self.write_u64(x as u64);
        self.write_u64((x >> 64) as u64);
    }
}

/// A 128-bit hash stored as two words, so that what holds one is aligned to 8 bytes, not
/// the 16 of a `u128`: the allocator serves an allocation aligned to 16 by a slower path
/// whenever its free block of that size is not (over-allocating, and copying to grow), and
/// a state's slots and messages in flight are allocated millions of times. Orders, compares
/// and hashes as the `u128` it holds.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub(super) struct H128 {
    hi: u64,
    lo: u64,
}

impl H128 {
    /// The hash.
    pub(super) fn get(self) -> u128 {
        (u128::from(self.hi) << 64) | u128::from(self.lo)
    }
}

impl From<u128> for H128 {
    fn from(h: u128) -> Self {
        H128 { hi: (h >> 64) as u64, lo: h as u64 }
    }
}

impl Ord for H128 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.hi, self.lo).cmp(&(other.hi, other.lo))
    }
}

impl PartialOrd for H128 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Hash for H128 {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.get().hash(state);
    }
}

/// The 128-bit hash of `v`.
pub(super) fn hash_of(v: &impl Hash) -> u128 {
    let mut h = Fingerprinter::new();
    v.hash(&mut h);
    h.finish128()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn small_structured_inputs_never_collide_in_either_half() {
        // Tuples of small numbers and short strings: what states are made of.
        let mut full = HashSet::new();
        let mut low = HashSet::new();
        let mut high = HashSet::new();
        let mut count = 0;
        for a in 0u64..40 {
            for b in 0u32..40 {
                for c in ["", "a", "ab", "ab\0", "vote", "decision"] {
                    let h = hash_of(&(a, b, c));
                    full.insert(h);
                    low.insert(h as u64);
                    high.insert((h >> 64) as u64);
                    count += 1;
                }
            }
        }
        assert_eq!(full.len(), count);
        assert_eq!(low.len(), count);
        assert_eq!(high.len(), count);
    }

    #[test]
    fn a_hash_in_two_words_orders_and_hashes_as_the_u128_it_holds() {
        let hashes = [0u128, 1, u64::MAX as u128, 1 << 64, (1 << 64) + 1, u128::MAX, hash_of(&"x")];
        for a in hashes {
            assert_eq!(H128::from(a).get(), a);
            assert_eq!(hash_of(&H128::from(a)), hash_of(&a));
            for b in hashes {
                assert_eq!(H128::from(a).cmp(&H128::from(b)), a.cmp(&b), "{a} against {b}");
            }
        }
        assert_eq!(std::mem::align_of::<H128>(), 8);
    }

    #[test]
    fn order_and_every_byte_count() {
        assert_ne!(hash_of(&(1u64, 2u64)), hash_of(&(2u64, 1u64)));
        assert_ne!(hash_of(&vec![0u8; 9]), hash_of(&vec![0u8; 10]));
        let base = [7u8; 24];
        for i in 0..24 {
            let mut v = base;
            v[i] ^= 1;
            assert_ne!(hash_of(&v), hash_of(&base), "byte {i}");
        }
        assert_eq!(hash_of(&"same"), hash_of(&"same"));
    }
}
