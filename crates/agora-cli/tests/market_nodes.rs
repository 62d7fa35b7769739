//! The trading post as five `agora node` processes with redb: the trader is told to stop
//! (SIGTERM) while buyers trade. It leaves cleanly — it says so and hands its pending buys
//! on — so the next trader is elected and trading goes on; restarted, it takes its post back.
//! No buy is answered twice, and every buyer's answers come in its own order.

mod procs;

use procs::{obs, Cluster};
use serde_json::Value;
use std::collections::BTreeMap;

const PEERS: usize = 5;

/// The name of an observation (`"Left"`, or the one key of `{"Announced": {...}}`).
fn name(o: &Value) -> Option<&str> {
    o.as_str().or_else(|| o.as_object().and_then(|m| m.keys().next()).map(String::as_str))
}

/// What the test follows: the answers buyers got, and the trader — the leader of the newest
/// term any peer reported. Events of different peers reach the test in no set order, so the
/// newest term, not the latest event, says who trades: under load a lower peer may time out,
/// announce itself and be bullied out by a higher one that the test hears from first.
#[derive(Default)]
struct Watch {
    answers: u64,
    newest: Option<(u64, u64)>,
}

impl Watch {
    fn see(&mut self, e: &Value) {
        let Some(o) = obs(e) else { return };
        if name(o) == Some("Answered") {
            self.answers += 1;
        }
        let elected = &o["Election"]["Leader"];
        if let (Some(term), Some(leader)) = (elected["term"].as_u64(), elected["leader"].as_u64()) {
            if self.newest.is_none_or(|(t, _)| term > t) {
                self.newest = Some((term, leader));
            }
        }
    }

    fn trader(&self) -> Option<u64> {
        self.newest.map(|(_, leader)| leader)
    }
}

#[test]
fn a_trader_told_to_stop_leaves_cleanly_and_takes_its_post_back_after_a_restart() {
    let dir = procs::scratch("agora-market-nodes");
    let head = "cluster = \"market\"\nprotocol = \"market\"\ndata_dir = \"data\"\nidle_ms = 600000\n\
        max_time_ms = 3600000\n[params]\nscenario = \"experiment\"\nbuys = 100000\ntimeout_ms = 200\nsick = 0.0\n";
    let mut c = Cluster::new(&dir, head, PEERS);
    c.start_all();
    // The highest peer trades and buyers get answers.
    let mut w = Watch::default();
    c.until(|_, e| {
        w.see(e);
        w.trader() == Some(4) && w.answers >= 20
    });

    // SIGTERM to the trader: it leaves cleanly.
    let out = c.terminate(4);
    let seen: Vec<&str> =
        out["observations"].as_array().unwrap().iter().filter_map(|o| name(&o[1])).collect();
    assert!(seen.contains(&"Left"), "the trader did not leave cleanly: {seen:?}");
    let handed = out["observations"].as_array().unwrap().iter().any(|o| o[1]["HandedOn"]["to"].is_null());
    assert!(handed, "the trader did not hand its pending buys on");
    // Having left, it takes part in nothing more: after its goodbye's own step (it leaves
    // the post and hands its buys on) it observes nothing, however many messages still reach it.
    let after: Vec<&str> = seen.iter().skip_while(|o| **o != "Left").skip(1).copied().collect();
    assert!(
        after.iter().all(|o| ["Resigned", "HandedOn"].contains(o)),
        "the trader went on after it left: {after:?}"
    );

    // Peer 3 takes the post and trading goes on.
    let before = w.answers;
    c.until(|_, e| {
        w.see(e);
        w.trader() == Some(3) && w.answers >= before + 20
    });

    // Restarted, peer 4 bullies its way back to the post, and trading goes on again.
    c.start_node(4);
    let before = w.answers;
    c.until(|_, e| {
        w.see(e);
        w.trader() == Some(4) && w.answers >= before + 20
    });

    // No buy answered twice; each buyer's answers in the order it asked.
    let outputs = c.stop_all();
    for (peer, out) in outputs.iter().enumerate().take(3) {
        let mut got: BTreeMap<u64, usize> = BTreeMap::new();
        let mut last = None;
        for o in out["observations"].as_array().unwrap() {
            if let Some(a) = o[1].get("Answered") {
                let seq = a["seq"].as_u64().unwrap();
                *got.entry(seq).or_default() += 1;
                assert!(last.is_none_or(|l| seq > l), "buyer {peer}: answer {seq} after {last:?}");
                last = Some(seq);
            }
        }
        assert!(!got.is_empty(), "buyer {peer} got no answer");
        assert!(got.values().all(|n| *n == 1), "buyer {peer}: a buy answered twice");
    }
}
