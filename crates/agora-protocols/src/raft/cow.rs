//! `CowVec`: a vector whose copies share their elements.
//!
//! A replica snapshots its state machine by copying it in one step and serializing the copy
//! off its path (see the module docs of [`super`]). For a state of a million elements the copy
//! alone stalled a replica for up to 140 ms. A `CowVec` keeps its elements in chunks behind
//! reference counts: a copy copies only the chunk pointers, and the first write to a shared
//! chunk copies that chunk alone. Between two snapshots a replica pays for the chunks it wrote,
//! not for the whole state.
//!
//! It serializes exactly as a `Vec<T>` does, so a state machine can switch without changing its
//! snapshot format.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::sync::Arc;

/// Elements per chunk.
const CHUNK: usize = 1 << 14;

/// A vector in shared chunks (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CowVec<T> {
    chunks: Vec<Arc<Vec<T>>>,
    len: usize,
}

impl<T> Default for CowVec<T> {
    fn default() -> Self {
        CowVec { chunks: Vec::new(), len: 0 }
    }
}

impl<T: Clone> CowVec<T> {
    /// An empty vector.
    pub fn new() -> Self {
        CowVec { chunks: Vec::new(), len: 0 }
    }

    /// `n` copies of `value`.
    pub fn from_elem(value: T, n: usize) -> Self {
        let chunks = (0..n.div_ceil(CHUNK))
            .map(|c| {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.resize(CHUNK.min(n - c * CHUNK), value.clone());
                Arc::new(chunk)
            })
            .collect();
        CowVec { chunks, len: n }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The element at `i`, if `i < len`.
    pub fn get(&self, i: usize) -> Option<&T> {
        (i < self.len).then(|| &self.chunks[i / CHUNK][i % CHUNK])
    }

    /// The element at `i`, for writing: its chunk is copied first if a copy of this vector
    /// shares it.
    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        (i < self.len).then(|| &mut Arc::make_mut(&mut self.chunks[i / CHUNK])[i % CHUNK])
    }

    /// Appends `value`, copying the last chunk first if a copy of this vector shares it.
    pub fn push(&mut self, value: T) {
        if self.len % CHUNK == 0 {
            self.chunks.push(Arc::new(Vec::with_capacity(CHUNK)));
        }
        Arc::make_mut(self.chunks.last_mut().expect("a chunk with room")).push(value);
        self.len += 1;
    }

    /// Every element, in order.
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.chunks.iter().flat_map(|c| c.iter())
    }
}

impl<T: Clone> Extend<T> for CowVec<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        for v in iter {
            self.push(v);
        }
    }
}

impl<T: Clone> FromIterator<T> for CowVec<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut v = CowVec::new();
        v.extend(iter);
        v
    }
}

impl<T: Clone + Serialize> Serialize for CowVec<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.len))?;
        for v in self.iter() {
            seq.serialize_element(v)?;
        }
        seq.end()
    }
}

impl<'de, T: Clone + Deserialize<'de>> Deserialize<'de> for CowVec<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Vec::<T>::deserialize(d)?.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_shares_its_chunks_until_one_side_writes() {
        let mut a: CowVec<u32> = (0..3 * CHUNK as u32 + 5).collect();
        assert_eq!(
            (a.len(), a.get(CHUNK + 1), a.get(a.len())),
            (3 * CHUNK + 5, Some(&(CHUNK as u32 + 1)), None)
        );
        let b = a.clone();
        assert!(a.chunks.iter().zip(&b.chunks).all(|(x, y)| Arc::ptr_eq(x, y)), "a copy copies no element");
        *a.get_mut(CHUNK + 1).unwrap() = 7;
        a.push(9);
        assert_eq!(b.get(CHUNK + 1), Some(&(CHUNK as u32 + 1)), "the copy keeps what it had");
        assert_eq!((a.get(CHUNK + 1), b.len(), a.len()), (Some(&7), 3 * CHUNK + 5, 3 * CHUNK + 6));
        let shared = a.chunks.iter().zip(&b.chunks).filter(|(x, y)| Arc::ptr_eq(x, y)).count();
        assert_eq!(shared, 2, "only the written chunk and the one pushed to were copied");
    }

    #[test]
    fn serializes_as_a_vec_does() {
        let v: Vec<u64> = (0..CHUNK as u64 + 3).map(|i| i * 1000).collect();
        let c: CowVec<u64> = v.iter().copied().collect();
        let bytes = agora_core::wire::encode(&c);
        assert_eq!(bytes, agora_core::wire::encode(&v));
        let back: CowVec<u64> = agora_core::wire::decode(&bytes).unwrap();
        assert_eq!(back, c);
        for n in [0, 5, CHUNK, CHUNK + 1] {
            let mut v = CowVec::from_elem(3u8, n);
            assert_eq!(v.iter().copied().collect::<Vec<_>>(), vec![3; n]);
            v.push(4);
            assert_eq!((v.len(), v.get(n)), (n + 1, Some(&4)), "pushes after from_elem({n})");
        }
    }
}
