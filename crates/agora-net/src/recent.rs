//! A node's latest messages, for a live view's space-time diagram: a bounded sample the
//! driver keeps when [`crate::NetConfig::recent_messages`] asks for one (none by default).
//!
//! Each end of a link numbers the messages on it: the sender each one it queues to the peer
//! (1, 2, ...), the receiver each one that reaches it from the peer (before a cut drops it).
//! TCP keeps a link in order, so the k-th message one end sent is the k-th the other end
//! received, and a view pairs the two marks by `(from, to, k)` to draw one arrow from its
//! send to its receipt. The numbering holds while both ends keep their incarnation and the
//! link loses nothing it queued: a restarted node numbers again from 1 while its peers go on,
//! and frames lost with a broken connection shift the receiver's count (see the live view's
//! documentation for what it leaves out).
//!
//! The cost is kept off the messages: the driver numbers its links and stages each batch's
//! marks in a [`Stage`] of its own (no lock, no clock read per message), and hands them to the
//! shared [`Recent`] the sampler reads once per batch, under one lock, with two clock reads
//! (one before the batch's first send, one for all its receipts once it is handled).

use std::collections::VecDeque;
use std::sync::Mutex;

/// One message, as one end of its link saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    /// The other end: the receiver of a message sent, the sender of one received.
    pub peer: u32,
    /// The message's kind.
    pub kind: &'static str,
    /// Its number on the link (from 1).
    pub seq: u64,
    /// When it was queued (sent) or reached the node (received), Unix ns: for a send, a time
    /// read before it was queued; for a receipt, one read after it was handled. So a pair's
    /// send is never later than its receipt.
    pub at_ns: u64,
}

/// The latest messages a node sent and received, at most `cap` of each: what the sampler
/// reads, filled by the node's [`Stage`] once per batch.
#[derive(Debug)]
pub struct Recent {
    cap: usize,
    sent: VecDeque<Mark>,
    received: VecDeque<Mark>,
}

fn push(list: &mut VecDeque<Mark>, cap: usize, m: Mark) {
    if list.len() == cap {
        list.pop_front();
    }
    list.push_back(m);
}

impl Recent {
    /// A sample of at most `cap` sent and `cap` received messages.
    pub fn new(cap: usize) -> Recent {
        Recent { cap, sent: VecDeque::with_capacity(cap), received: VecDeque::with_capacity(cap) }
    }

    /// The marks kept: (sent, received), oldest first.
    pub fn marks(&self) -> (Vec<Mark>, Vec<Mark>) {
        (self.sent.iter().copied().collect(), self.received.iter().copied().collect())
    }
}

/// The marks of one batch, the latest `cap` of them: a ring written in place (one store and
/// one add per message), read out in order when published.
#[derive(Debug)]
struct Ring {
    slots: Vec<Mark>,
    /// The slot the next mark goes to.
    next: usize,
    /// Marks written since the last drain (the ring holds the latest `slots.len()`).
    written: usize,
}

impl Ring {
    fn new(cap: usize) -> Ring {
        let blank = Mark { peer: 0, kind: "", seq: 0, at_ns: 0 };
        Ring { slots: vec![blank; cap.max(1)], next: 0, written: 0 }
    }

    fn put(&mut self, m: Mark) {
        self.slots[self.next] = m;
        self.next += 1;
        if self.next == self.slots.len() {
            self.next = 0;
        }
        self.written += 1;
    }

    /// The marks written since the last drain, oldest first; the ring is empty after.
    fn drain(&mut self) -> impl Iterator<Item = Mark> + '_ {
        let cap = self.slots.len();
        let kept = self.written.min(cap);
        let first = (self.next + cap - kept) % cap;
        self.written = 0;
        (0..kept).map(move |k| self.slots[(first + k) % cap])
    }
}

/// The driver's side of the sample: each link's numbering, and the marks of the batch being
/// handled (at most `cap` of each, the latest), until [`Stage::publish`].
#[derive(Debug)]
pub struct Stage {
    sent_seq: Vec<u64>,
    received_seq: Vec<u64>,
    /// Sends of this batch, stamped with `sent_at_ns`.
    sent: Ring,
    /// Read before the batch's first send (`None`: nothing sent yet in this batch).
    sent_at_ns: Option<u64>,
    /// Receipts of this batch, stamped when published.
    received: Ring,
}

impl Stage {
    /// The stage of a sample of `cap` messages each way, on links to `nodes` nodes.
    pub fn new(cap: usize, nodes: usize) -> Stage {
        Stage {
            sent_seq: vec![0; nodes],
            received_seq: vec![0; nodes],
            sent: Ring::new(cap),
            sent_at_ns: None,
            received: Ring::new(cap),
        }
    }

    /// A message of `kind` queued to `to`; `now` (Unix ns) is read once per batch, at its
    /// first send.
    pub fn sent(&mut self, to: u32, kind: &'static str, now: impl FnOnce() -> u64) {
        let Some(seq) = self.sent_seq.get_mut(to as usize) else { return };
        *seq += 1;
        let at_ns = *self.sent_at_ns.get_or_insert_with(now);
        self.sent.put(Mark { peer: to, kind, seq: *seq, at_ns });
    }

    /// A message of `kind` from `from` reached the node (stamped when published).
    pub fn received(&mut self, from: u32, kind: &'static str) {
        let Some(seq) = self.received_seq.get_mut(from as usize) else { return };
        *seq += 1;
        self.received.put(Mark { peer: from, kind, seq: *seq, at_ns: 0 });
    }

    /// Nothing staged since the last publish.
    pub fn is_empty(&self) -> bool {
        self.sent.written == 0 && self.received.written == 0
    }

    /// Hands the batch's marks to `to`, its receipts stamped `now_ns` (read once the batch is
    /// handled); the next batch starts empty.
    pub fn publish(&mut self, to: &Mutex<Recent>, now_ns: u64) {
        let mut r = to.lock().expect("recent lock");
        let r = &mut *r;
        for m in self.sent.drain() {
            push(&mut r.sent, r.cap, m);
        }
        for m in self.received.drain() {
            push(&mut r.received, r.cap, Mark { at_ns: now_ns, ..m });
        }
        self.sent_at_ns = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_each_link_and_keeps_the_latest() {
        let shared = Mutex::new(Recent::new(3));
        let mut stage = Stage::new(3, 3);
        stage.sent(1, "A", || 10);
        stage.sent(2, "B", || 11);
        stage.received(2, "E");
        stage.received(9, "bad peer");
        stage.publish(&shared, 14);
        assert!(stage.is_empty());
        stage.sent(1, "C", || 12);
        stage.sent(1, "D", || 13);
        stage.publish(&shared, 15);
        let (sent, received) = shared.lock().expect("lock").marks();
        let seqs: Vec<(u32, &str, u64, u64)> =
            sent.iter().map(|m| (m.peer, m.kind, m.seq, m.at_ns)).collect();
        // One clock read per batch: the first batch's sends at 10, the second's at 12.
        assert_eq!(seqs, [(2, "B", 1, 10), (1, "C", 2, 12), (1, "D", 3, 12)]);
        assert_eq!(received, [Mark { peer: 2, kind: "E", seq: 1, at_ns: 14 }]);
        // A batch of more than `cap` receipts: the latest three, in order.
        for _ in 0..5 {
            stage.received(0, "F");
        }
        stage.publish(&shared, 16);
        let (_, received) = shared.lock().expect("lock").marks();
        let seqs: Vec<(u32, u64, u64)> = received.iter().map(|m| (m.peer, m.seq, m.at_ns)).collect();
        assert_eq!(seqs, [(0, 3, 16), (0, 4, 16), (0, 5, 16)]);
    }
}
