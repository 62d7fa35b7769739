//! A reliable FIFO link, inside a protocol: per-peer sequence numbers, cumulative
//! acknowledgements, retransmission of what is unacknowledged, and a hold-back queue — so that
//! messages over lossy, duplicating, reordering links arrive exactly once and in order.

use agora_core::Time;
use std::collections::{BTreeMap, VecDeque};

/// The sending and receiving state of one peer's link.
#[derive(Clone, Debug, Hash)]
pub struct Link<B> {
    next_seq: u64,
    /// Sent, not yet acknowledged: (seq, body, when first sent, when last sent).
    unacked: VecDeque<(u64, B, Time, Time)>,
    /// The next sequence number to deliver from this peer.
    expected: u64,
    held: BTreeMap<u64, B>,
}

impl<B: Clone> Default for Link<B> {
    fn default() -> Self {
        Link { next_seq: 0, unacked: VecDeque::new(), expected: 0, held: BTreeMap::new() }
    }
}

impl<B: Clone> Link<B> {
    /// Queues `body`, sent now; returns its link sequence number.
    pub fn send(&mut self, body: B, now: Time) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.unacked.push_back((seq, body, now, now));
        seq
    }

    /// The peer has everything below `ack`.
    pub fn acked(&mut self, ack: u64) {
        while self.unacked.front().is_some_and(|(s, _, _, _)| *s < ack) {
            self.unacked.pop_front();
        }
    }

    /// Frames unacknowledged for at least `rto`, marked as sent again now (at most `max`).
    pub fn due(&mut self, now: Time, rto: std::time::Duration, max: usize) -> Vec<(u64, B)> {
        let mut out = Vec::new();
        for (seq, body, _, sent) in self.unacked.iter_mut() {
            if out.len() == max {
                break;
            }
            if now.since(*sent) >= rto {
                *sent = now;
                out.push((*seq, body.clone()));
            }
        }
        out
    }

    /// Whether every frame sent has been acknowledged.
    pub fn idle(&self) -> bool {
        self.unacked.is_empty()
    }

    /// How long the oldest unacknowledged frame has waited (zero when none waits).
    pub fn stalled_for(&self, now: Time) -> std::time::Duration {
        self.unacked.front().map_or(std::time::Duration::ZERO, |(_, _, first, _)| now.since(*first))
    }

    /// Takes a received frame; returns the bodies now deliverable in order.
    pub fn receive(&mut self, seq: u64, body: B) -> Vec<B> {
        if seq < self.expected {
            return Vec::new(); // a duplicate
        }
        self.held.insert(seq, body);
        let mut out = Vec::new();
        while let Some(b) = self.held.remove(&self.expected) {
            out.push(b);
            self.expected += 1;
        }
        out
    }

    /// The cumulative acknowledgement to send back.
    pub fn ack(&self) -> u64 {
        self.expected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivers_in_order_once_and_retransmits_until_acked() {
        let mut a: Link<&str> = Link::default();
        let mut b: Link<&str> = Link::default();
        let t = Time::ZERO;
        let s0 = a.send("x", t);
        let s1 = a.send("y", t);
        let s2 = a.send("z", t);
        assert_eq!(b.receive(s1, "y"), Vec::<&str>::new());
        assert_eq!(b.receive(s0, "x"), ["x", "y"]);
        assert_eq!(b.receive(s0, "x"), Vec::<&str>::new(), "duplicate dropped");
        a.acked(b.ack());
        let rto = std::time::Duration::from_millis(10);
        assert!(a.due(Time::from_millis(5), rto, 8).is_empty(), "not yet due");
        assert_eq!(a.due(Time::from_millis(10), rto, 8), [(2, "z")]);
        assert!(a.due(Time::from_millis(15), rto, 8).is_empty(), "just resent");
        assert_eq!(b.receive(s2, "z"), ["z"]);
        a.acked(b.ack());
        assert!(a.idle());
    }
}
