//! The global event queue: one binary heap of small keys ordered by (virtual time, sequence),
//! with the events themselves in a slab so heap moves stay cheap at millions of entries.
//!
//! Ties in time are broken by insertion order, which makes the run deterministic.

use agora_core::Time;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    at: Time,
    seq: u64,
    slot: u32,
}

pub(crate) struct Queue<E> {
    heap: BinaryHeap<Reverse<Key>>,
    slab: Vec<Option<E>>,
    free: Vec<u32>,
    seq: u64,
}

impl<E> Queue<E> {
    pub(crate) fn new() -> Self {
        Queue { heap: BinaryHeap::new(), slab: Vec::new(), free: Vec::new(), seq: 0 }
    }

    pub(crate) fn push(&mut self, at: Time, event: E) {
        let slot = match self.free.pop() {
            Some(s) => {
                self.slab[s as usize] = Some(event);
                s
            }
            None => {
                self.slab.push(Some(event));
                u32::try_from(self.slab.len() - 1).expect("fewer than 2^32 pending events")
            }
        };
        self.seq += 1;
        self.heap.push(Reverse(Key { at, seq: self.seq, slot }));
    }

    pub(crate) fn pop(&mut self) -> Option<(Time, E)> {
        let Reverse(k) = self.heap.pop()?;
        let e = self.slab[k.slot as usize].take().expect("every key has its event");
        self.free.push(k.slot);
        Some((k.at, e))
    }

    pub(crate) fn peek_time(&self) -> Option<Time> {
        self.heap.peek().map(|Reverse(k)| k.at)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_time_then_insertion_order() {
        let mut q = Queue::new();
        q.push(Time(5), "c");
        q.push(Time(1), "a");
        q.push(Time(5), "d");
        q.push(Time(2), "b");
        let order: Vec<_> = std::iter::from_fn(|| q.pop().map(|(_, e)| e)).collect();
        assert_eq!(order, ["a", "b", "c", "d"]);
        q.push(Time(9), "e");
        assert_eq!(q.peek_time(), Some(Time(9)));
        assert_eq!(q.len(), 1);
    }
}
