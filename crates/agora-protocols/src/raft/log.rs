//! The in-memory log of a replica: a snapshot base followed by entries, each with its chain
//! hash and encoded size.

use super::{chain, Entry, Index, StateMachine, Term};

#[derive(Clone)]
struct Slot<SM: StateMachine> {
    entry: Entry<SM>,
    chain: u64,
    size: usize,
}

#[derive(Clone)]
pub(crate) struct Log<SM: StateMachine> {
    /// The last index covered by the snapshot (0: none).
    base: Index,
    base_term: Term,
    base_chain: u64,
    /// Entry `base + 1 + i` is `slots[i]`.
    slots: Vec<Slot<SM>>,
    /// The encoded size of the entries in `slots`.
    bytes: u64,
}

impl<SM: StateMachine> Log<SM> {
    pub fn new(base: Index, base_term: Term, base_chain: u64) -> Self {
        Log { base, base_term, base_chain, slots: Vec::new(), bytes: 0 }
    }

    /// The encoded size of the entries after the base.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn base(&self) -> (Index, Term, u64) {
        (self.base, self.base_term, self.base_chain)
    }

    pub fn last(&self) -> Index {
        self.base + self.slots.len() as u64
    }

    pub fn last_term(&self) -> Term {
        self.slots.last().map_or(self.base_term, |s| s.entry.term)
    }

    fn slot(&self, i: Index) -> Option<&Slot<SM>> {
        if i <= self.base {
            return None;
        }
        self.slots.get((i - self.base - 1) as usize)
    }

    /// The term of entry `i`; the snapshot's last term at its base; `None` if compacted away
    /// or beyond the end.
    pub fn term_at(&self, i: Index) -> Option<Term> {
        if i == self.base {
            return Some(self.base_term);
        }
        self.slot(i).map(|s| s.entry.term)
    }

    pub fn chain_at(&self, i: Index) -> Option<u64> {
        if i == self.base {
            return Some(self.base_chain);
        }
        self.slot(i).map(|s| s.chain)
    }

    pub fn get(&self, i: Index) -> Option<&Entry<SM>> {
        self.slot(i).map(|s| &s.entry)
    }

    /// Appends an entry given with its encoding; returns its chain hash.
    pub fn append(&mut self, entry: Entry<SM>, encoded: &[u8]) -> u64 {
        let prev = self.slots.last().map_or(self.base_chain, |s| s.chain);
        let c = chain(prev, entry.term, encoded);
        self.slots.push(Slot { entry, chain: c, size: encoded.len() });
        self.bytes += encoded.len() as u64;
        c
    }

    /// Removes entries `i..`.
    pub fn truncate_from(&mut self, i: Index) {
        if i > self.base {
            for s in self.slots.drain(((i - self.base - 1) as usize).min(self.slots.len())..) {
                self.bytes -= s.size as u64;
            }
        }
    }

    /// Forgets entries up to `i`, which a snapshot now covers.
    pub fn compact(&mut self, i: Index) {
        if i <= self.base {
            return;
        }
        let (term, chain) = (self.term_at(i).expect("compacting a present entry"), self.chain_at(i).unwrap());
        let n = ((i - self.base) as usize).min(self.slots.len());
        for s in self.slots.drain(..n) {
            self.bytes -= s.size as u64;
        }
        (self.base, self.base_term, self.base_chain) = (i, term, chain);
    }

    /// Replaces everything with a snapshot base.
    pub fn reset(&mut self, base: Index, term: Term, chain: u64) {
        self.slots.clear();
        self.bytes = 0;
        (self.base, self.base_term, self.base_chain) = (base, term, chain);
    }

    /// Entries from `from`, at least one if any, up to about `max_bytes` and `max_entries`.
    pub fn batch(&self, from: Index, max_bytes: usize, max_entries: usize) -> Vec<Entry<SM>> {
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut i = from;
        while let Some(s) = self.slot(i) {
            if !out.is_empty() && (bytes + s.size > max_bytes || out.len() >= max_entries) {
                break;
            }
            bytes += s.size;
            out.push(s.entry.clone());
            i += 1;
        }
        out
    }

    /// Feeds the log's identity to `h`: the base and each entry's chain hash, which covers the
    /// entry and every one before it.
    pub fn hash_into<H: std::hash::Hasher>(&self, h: &mut H) {
        use std::hash::Hash;
        (self.base, self.base_term, self.base_chain).hash(h);
        self.slots.len().hash(h);
        for s in &self.slots {
            s.chain.hash(h);
        }
    }

    /// `(term, chain)` of every entry after the base, for the checker.
    pub fn summary(&self) -> Vec<(Term, u64)> {
        self.slots.iter().map(|s| (s.entry.term, s.chain)).collect()
    }

    /// The first index of the term of entry `i` (for a faster back-up of the leader's next
    /// index, §5.3 of the paper), never below the base.
    pub fn first_of_term(&self, i: Index) -> Index {
        let Some(t) = self.term_at(i) else { return self.base };
        let mut j = i;
        while j > self.base + 1 && self.term_at(j - 1) == Some(t) {
            j -= 1;
        }
        j
    }
}
