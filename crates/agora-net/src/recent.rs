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

use std::collections::VecDeque;

/// One message, as one end of its link saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    /// The other end: the receiver of a message sent, the sender of one received.
    pub peer: u32,
    /// The message's kind.
    pub kind: &'static str,
    /// Its number on the link (from 1).
    pub seq: u64,
    /// When it was queued (sent) or reached the node (received), Unix ns.
    pub at_ns: u64,
}

/// The latest messages a node sent and received, at most `cap` of each.
#[derive(Debug)]
pub struct Recent {
    cap: usize,
    sent_seq: Vec<u64>,
    received_seq: Vec<u64>,
    sent: VecDeque<Mark>,
    received: VecDeque<Mark>,
}

impl Recent {
    /// A sample of at most `cap` sent and `cap` received messages, on links to `nodes` nodes.
    pub fn new(cap: usize, nodes: usize) -> Recent {
        Recent {
            cap,
            sent_seq: vec![0; nodes],
            received_seq: vec![0; nodes],
            sent: VecDeque::with_capacity(cap),
            received: VecDeque::with_capacity(cap),
        }
    }

    fn push(list: &mut VecDeque<Mark>, cap: usize, m: Mark) {
        if list.len() == cap {
            list.pop_front();
        }
        list.push_back(m);
    }

    /// A message of `kind` queued to `to` at `at_ns`.
    pub fn sent(&mut self, to: u32, kind: &'static str, at_ns: u64) {
        let Some(seq) = self.sent_seq.get_mut(to as usize) else { return };
        *seq += 1;
        let m = Mark { peer: to, kind, seq: *seq, at_ns };
        Self::push(&mut self.sent, self.cap, m);
    }

    /// A message of `kind` from `from` reached the node at `at_ns`.
    pub fn received(&mut self, from: u32, kind: &'static str, at_ns: u64) {
        let Some(seq) = self.received_seq.get_mut(from as usize) else { return };
        *seq += 1;
        let m = Mark { peer: from, kind, seq: *seq, at_ns };
        Self::push(&mut self.received, self.cap, m);
    }

    /// The marks kept: (sent, received), oldest first.
    pub fn marks(&self) -> (Vec<Mark>, Vec<Mark>) {
        (self.sent.iter().copied().collect(), self.received.iter().copied().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_each_link_and_keeps_the_latest() {
        let mut r = Recent::new(3, 3);
        r.sent(1, "A", 10);
        r.sent(2, "B", 11);
        r.sent(1, "C", 12);
        r.sent(1, "D", 13);
        r.received(2, "E", 14);
        r.received(9, "bad peer", 15);
        let (sent, received) = r.marks();
        let seqs: Vec<(u32, &str, u64)> = sent.iter().map(|m| (m.peer, m.kind, m.seq)).collect();
        assert_eq!(seqs, [(2, "B", 1), (1, "C", 2), (1, "D", 3)]);
        assert_eq!(received, [Mark { peer: 2, kind: "E", seq: 1, at_ns: 14 }]);
    }
}
