//! The trading post in the simulator: the replicated ledger holds every property under loss,
//! duplication, reordering, crashes of a minority and a partition; the local ledger (the
//! report's design) is caught by the checker under a partition; sick traders come back and
//! every buy is answered; runs replay from their seed; the example market file's goods and
//! prices trade with every property held.

mod common;

use agora_protocols::params::{BUYS, LEDGER, MARKET, MULTICAST, RECOVER_MS, SCENARIO, SICK, VARIANT, WINDOW};
use agora_protocols::Params;
use common::{check, check_until, random_crashes, Run};
use std::collections::{BTreeMap, BTreeSet};

fn market(nodes: usize, seed: u64) -> Params {
    Params::new(nodes, seed).with(&BUYS, 8u32)
}

fn count(r: &Run, prefix: &str) -> usize {
    r.observations.iter().filter(|o| o.2.starts_with(prefix)).count()
}

/// The value of `name` in an observation's text: `seq` in `... seq: 3, ...`.
fn field<'a>(text: &'a str, name: &str) -> &'a str {
    let from = text.find(&format!("{name}: ")).map_or("", |i| &text[i + name.len() + 2..]);
    from.split([',', ' ', '}']).next().unwrap_or("")
}

/// The highest Raft index each node applied, and how many snapshots it took.
fn ledger_progress(r: &Run) -> BTreeMap<u32, (u64, usize)> {
    let mut per_node: BTreeMap<u32, (u64, usize)> = BTreeMap::new();
    for (_, node, o) in &r.observations {
        if o.contains("Snapshotted") {
            per_node.entry(*node).or_default().1 += 1;
        } else if let Some(i) = o.find("Raft(Applied {") {
            let e = per_node.entry(*node).or_default();
            e.0 = e.0.max(field(&o[i..], "index").parse().unwrap());
        }
    }
    per_node
}

/// Request ids asked and answered in a run: a restarted buyer asks again, and is answered
/// again, for the buys of its last plan, so each request id counts once.
fn buys(r: &Run) -> (usize, usize) {
    let ids = |prefix: &str| {
        let seen = r.observations.iter().filter(|o| o.2.starts_with(prefix));
        seen.map(|o| (o.1, field(&o.2, "seq").to_string())).collect::<BTreeSet<_>>().len()
    };
    (ids("Asked"), ids("Answered"))
}

const LOSSY: &str = "[network]\nlatency = { dist = \"uniform\", min_ms = 1.0, max_ms = 4.0 }\nloss = 0.1\n\
    duplicate = 0.1\nreorder = 0.2\nreorder_delay_ms = 10\n";

const PARTITION: &str = "[network]\nlatency = { dist = \"uniform\", min_ms = 1.0, max_ms = 3.0 }\n\
    [[partition]]\ngroups = [\"0..2\", \"2..6\"]\nat_ms = 30\nheal_ms = 600\n";

#[test]
fn replicated_ledger_holds_every_property_under_loss_duplication_and_reordering() {
    for seed in 0..30 {
        let r = check("market", &market(5, seed), LOSSY);
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        let (asked, answered) = buys(&r);
        assert!(asked > 0 && answered == asked, "seed {seed}: {answered} of {asked} answered");
    }
}

#[test]
fn replicated_ledger_survives_crashes_of_a_minority_and_a_partition() {
    let crashes = format!("{LOSSY}{}", random_crashes(2, 400.0, true));
    for seed in 0..20 {
        let r = check("market", &market(5, seed), &crashes);
        assert!(r.violations.is_empty(), "seed {seed} crashes: {:?}", r.violations);
        let r = check("market", &market(6, seed), PARTITION);
        assert!(r.violations.is_empty(), "seed {seed} partition: {:?}", r.violations);
        let (asked, answered) = buys(&r);
        assert_eq!(asked, answered, "seed {seed}: every buy answered after the partition heals");
    }
}

/// A buyer crashed mid-run and restarted asks again for the buys of its last plan that it
/// cannot tell were answered: under each request id the same good and quantity as before,
/// never another buy. The books answer each request id once, with the same answer, and every
/// property holds. Its clock starts again from its last plan's, so it may stamp a buy as it
/// stamped another: both still get a place in the trader's queue, one buy or eight in flight.
#[test]
fn a_restarted_buyer_asks_again_for_the_same_buys_under_the_same_request_ids() {
    let mut again = 0;
    for (seed, window) in (0..24).map(|s| (s, [1u32, 8][s as usize % 2])) {
        let p = Params::new(5, seed).with(&SCENARIO, "experiment").with(&BUYS, 100u32).with(&SICK, 0.0);
        let p = p.with(&WINDOW, window);
        let r = check("market", &p, "[[crash]]\nnodes = 0\nat_ms = 150\nrestart_ms = 200");
        assert!(r.violations.is_empty(), "seed {seed}, window {window}: {:?}", r.violations);
        let (asked, answered) = buys(&r);
        assert!(
            asked >= 300 && answered == asked,
            "seed {seed}, window {window}: {answered} of {asked} answered"
        );
        let mut first = BTreeMap::new();
        for o in r.observations.iter().filter(|o| o.1 == 0 && o.2.starts_with("Asked")) {
            let (seq, buy) = (field(&o.2, "seq"), (field(&o.2, "good"), field(&o.2, "qty")));
            assert!(!buy.0.is_empty() && !buy.1.is_empty(), "seed {seed}: {}", o.2);
            if let Some(before) = first.insert(seq, buy) {
                assert_eq!(before, buy, "seed {seed}: buy {seq} asked as another buy after the restart");
                again += 1;
            }
        }
    }
    assert!(again > 0, "no restarted buyer asked a buy again");
}

/// Buyers with several buys in flight, multicast to every peer or sent to the trader alone:
/// under loss, duplication, reordering, crashes of a minority and sick traders every property
/// holds and every buy is answered once; a window of 8 keeps more than one buy in flight.
#[test]
fn buyers_with_a_window_of_buys_in_flight_lose_nothing_under_faults() {
    let crashes = format!("{LOSSY}{}", random_crashes(2, 400.0, true));
    let mut overlapped = 0;
    for seed in 0..16 {
        for to in ["all", "trader"] {
            let p =
                market(5, seed).with(&BUYS, 24u32).with(&WINDOW, 8u32).with(&MULTICAST, to).with(&SICK, 0.05);
            let r = check("market", &p, &crashes);
            assert!(r.violations.is_empty(), "seed {seed}, multicast {to}: {:?}", r.violations);
            let (asked, answered) = buys(&r);
            assert!(asked > 0 && answered == asked, "seed {seed}, {to}: {answered} of {asked} answered");
            // More than one buy of a buyer in flight at once: asked before the one before it was answered.
            let mut open = std::collections::HashMap::new();
            for o in &r.observations {
                let e = open.entry(o.1).or_insert(0i32);
                if o.2.starts_with("Asked") {
                    *e += 1;
                    overlapped += usize::from(*e > 1);
                } else if o.2.starts_with("Answered") {
                    *e -= 1;
                }
            }
        }
    }
    assert!(overlapped > 0, "no buyer ever had two buys in flight");
}

/// The local ledger sells twice: under the partition two traders sell the same stock, and even
/// before it a new trader's inventory can predate the old one's last sale notice (seed 4 is
/// caught that way at 22 ms). The replicated ledger passes the same runs (above).
#[test]
fn the_local_ledger_is_caught_selling_twice_under_a_partition() {
    let mut caught = Vec::new();
    for seed in 0..40 {
        let r = check("market", &market(6, seed).with(&LEDGER, "local").with(&SICK, 0.0), PARTITION);
        if let Some(v) = r.violations.first() {
            caught.push((seed, v.property));
        }
    }
    assert!(
        caught.iter().any(|(_, p)| ["no-negative-stock", "trade-exactly-once"].contains(p)),
        "the checker never caught the local ledger: {caught:?}"
    );
}

#[test]
fn sick_traders_come_back_and_every_buy_is_answered() {
    let (mut sick, mut elected) = (0, 0);
    for seed in 0..20 {
        let r = check("market", &market(5, seed).with(&SICK, 0.15), "");
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        let (asked, answered) = buys(&r);
        assert_eq!(asked, answered, "seed {seed}");
        assert_eq!(count(&r, "Sick"), count(&r, "Recovered"), "seed {seed}: every sick trader is back");
        sick += count(&r, "Sick");
        elected += count(&r, "Announced");
    }
    assert!(sick >= 10, "traders fell sick {sick} times");
    assert!(elected > sick, "{elected} traders announced for {sick} sicknesses");
}

#[test]
fn the_trader_announces_itself_as_the_report_does() {
    let r = check("market", &market(5, 3), "");
    let line = "Dear buyers and sellers, My ID is 4, and I am the new coordinator";
    assert!(
        r.observations.iter().any(|o| o.1 == 4 && o.2.contains(line)),
        "no announcement by the highest peer"
    );
}

#[test]
fn the_arrival_order_variant_breaks_fairness_for_the_last_unit() {
    let mut caught = Vec::new();
    for seed in 0..40 {
        let p = Params::new(8, seed).with(&BUYS, 20u32).with(&VARIANT, "arrival-order").with(&SICK, 0.0);
        let r = check("market", &p, LOSSY);
        caught.extend(r.violations.iter().map(|v| (seed, v.property)));
    }
    assert!(caught.iter().any(|(_, p)| *p == "fair-last-unit"), "{caught:?}");
}

#[test]
fn a_run_replays_from_its_seed() {
    let a = check("market", &market(5, 11).with(&SICK, 0.1), LOSSY);
    let b = check("market", &market(5, 11).with(&SICK, 0.1), LOSSY);
    assert_eq!(a.digest, b.digest);
    assert!(a.violations.is_empty(), "{:?}", a.violations);
    let c = check("market", &market(5, 12).with(&SICK, 0.1), LOSSY);
    assert_ne!(a.digest, c.digest);
}

/// A sick trader says it leaves and hands its pending buys on: the next trader is elected at
/// once (within a few message delays of virtual time, where the bully election would otherwise
/// wait a 20 ms timeout for the leaver's silence), unless every peer is sick.
#[test]
fn a_sick_trader_hands_on_and_its_successor_is_elected_without_waiting_for_a_timeout() {
    let mut fast = 0;
    for seed in 0..20 {
        let r = check("market", &market(5, seed).with(&SICK, 0.15), "");
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        assert_eq!(
            count(&r, "Sick") + count(&r, "SteppedAside"),
            count(&r, "HandedOn { to: None"),
            "seed {seed}: every sick trader, and every trader stepping aside, hands on"
        );
        let mut sick = [false; 5];
        let mut waiting: Option<f64> = None;
        for (ms, node, o) in &r.observations {
            if o.starts_with("Sick") {
                sick[*node as usize] = true;
                if sick.iter().any(|s| !s) {
                    waiting = Some(*ms);
                }
            } else if o.starts_with("Recovered") {
                sick[*node as usize] = false;
            } else if o.starts_with("Announced") {
                if let Some(at) = waiting.take() {
                    assert!(
                        ms - at <= 5.0,
                        "seed {seed}: the trader that fell sick at {at} ms was replaced at {ms} ms"
                    );
                    fast += 1;
                }
            }
        }
    }
    assert!(fast >= 10, "only {fast} sicknesses were followed by an election");
}

/// A recovered peer with a higher id than the trader's stands for the post a round trip after
/// it says it is back: the trader answers its REJOIN with a heartbeat at once, rather than
/// leaving it to listen for up to a heartbeat period (5 ms of the simulator's 20 ms timeout)
/// before the bully rule applies. It is the next trader announced, at most two round trips
/// after it is back (two when a higher peer is sick and must say so).
#[test]
fn a_recovered_higher_peer_stands_for_the_post_a_round_trip_after_it_rejoins() {
    let (mut stood, mut won) = (0, 0);
    for seed in 0..20 {
        let r = check("market", &market(5, seed).with(&SICK, 0.15), "");
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        let mut trader: Option<u32> = None;
        // The highest peer back above the trader: (id, when it recovered, whether it stood).
        let mut back: Option<(u32, f64, bool)> = None;
        for (ms, node, o) in &r.observations {
            if o.starts_with("Election(Started") {
                if let Some((who, at, started)) = &mut back {
                    if *who == *node && !*started {
                        assert!(
                            ms - *at <= 2.5,
                            "seed {seed}: peer {who} recovered at {at} ms and stood for the post at {ms} ms"
                        );
                        *started = true;
                        stood += 1;
                    }
                }
            } else if o.starts_with("Announced") {
                if let Some((who, at, started)) = back.take() {
                    assert!(
                        started && *node == who && ms - at <= 4.5,
                        "seed {seed}: peer {who} recovered at {at} ms (stood: {started}); peer {node} took the post at {ms} ms"
                    );
                    won += 1;
                }
                trader = Some(*node);
            } else if o.starts_with("Sick") {
                if trader == Some(*node) || back.is_some_and(|(who, ..)| who == *node) {
                    // Another election comes between: whoever wins, it is not a takeover.
                    trader = trader.filter(|t| t != node);
                    back = None;
                }
            } else if o.starts_with("Recovered")
                && trader.is_some_and(|t| t < *node)
                && back.is_none_or(|(who, ..)| who < *node)
            {
                back = Some((*node, *ms, false));
            }
        }
    }
    assert!(stood >= 10 && won == stood, "{stood} recovered peers stood for the post, {won} took it");
}

/// A buyer made trader makes no buys while it trades. When it still has buys to make and every
/// other buyer is done (or sick), it steps aside: the others elect a trader among themselves
/// and it makes its buys through them, rather than wait for a higher peer to recover (here a
/// minute later). Once its buys are answered it stands again and takes the post back from a
/// lower trader at once (not at the lower trader's next heartbeat). In the
/// report's experiment with the trader falling sick often, every buyer that never fell sick
/// has all its buys answered before any sick peer recovers, unless all peers but one were
/// sick at once (then one of them must come back to trade).
#[test]
fn a_trader_with_buys_left_steps_aside_when_the_other_buyers_are_done() {
    let (mut aside, mut lower, mut judged) = (0, 0, 0);
    for seed in 0..16 {
        let p = Params::new(5, seed)
            .with(&SCENARIO, "experiment")
            .with(&BUYS, 30u32)
            .with(&SICK, 0.06)
            .with(&RECOVER_MS, 60_000.0);
        let r = check_until("market", &p, "", 600_000);
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        let (asked, answered) = buys(&r);
        assert_eq!((asked, answered), (90, 90), "seed {seed}: every buy asked and answered");
        let (mut sick, mut most_sick, mut ever_sick) = (0, 0, [false; 5]);
        let (mut last_answer, mut first_recovery) = ([0.0; 3], f64::INFINITY);
        for (ms, node, o) in &r.observations {
            if o.starts_with("Sick") {
                sick += 1;
                most_sick = most_sick.max(sick);
                ever_sick[*node as usize] = true;
            } else if o.starts_with("Recovered") {
                sick -= 1;
                first_recovery = f64::min(first_recovery, *ms);
            } else if o.starts_with("Answered") {
                last_answer[*node as usize] = *ms;
            }
        }
        for buyer in (0..3).filter(|&b| !ever_sick[b] && most_sick < 4) {
            judged += 1;
            let last = last_answer[buyer];
            assert!(
                last < first_recovery,
                "seed {seed}: buyer {buyer}'s last buy was answered at {last} ms, after a recovery at {first_recovery} ms"
            );
        }
        // Each peer that stepped aside finished its buys, and took the post back if a lower
        // peer was trading then.
        let announced: Vec<(f64, u32)> =
            r.observations.iter().filter(|o| o.2.starts_with("Announced")).map(|o| (o.0, o.1)).collect();
        for (ms, node, _) in r.observations.iter().filter(|o| o.2.starts_with("SteppedAside")) {
            aside += 1;
            let finished = r.observations.iter().find(|o| o.1 == *node && o.0 >= *ms && o.2 == "Finished");
            let finished =
                finished.unwrap_or_else(|| panic!("seed {seed}: peer {node} never finished its buys")).0;
            let trader = announced.iter().rev().find(|a| a.0 < finished).map(|a| a.1);
            if trader.is_some_and(|t| t < *node) {
                lower += 1;
                let retook = announced.iter().find(|a| a.1 == *node && a.0 >= finished).map(|a| a.0);
                assert!(
                    retook.is_some_and(|at| at - finished <= 2.5),
                    "seed {seed}: peer {node} finished at {finished} ms, trader {trader:?}; it took the post back at {retook:?}"
                );
            }
        }
    }
    assert!(judged >= 16, "only {judged} buyers judged");
    assert!(aside >= 4, "traders stepped aside {aside} times");
    assert!(lower >= 4, "only {lower} peers finished their buys while a lower peer traded");
}

/// The books grow with every buy (the answer to each request id is kept), so the ledger's
/// snapshots are taken as the log outgrows the last one, not every 1,000 entries: a
/// logarithmic number of them, each of the whole books.
#[test]
fn the_ledger_is_snapshotted_as_its_log_outgrows_the_last_snapshot() {
    let r = check_until("market", &market(5, 1).with(&BUYS, 10_000u32).with(&SICK, 0.0), "", 600_000);
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    let (asked, answered) = buys(&r);
    assert_eq!(asked, answered);
    let per_replica = ledger_progress(&r);
    let last = per_replica.values().map(|&(i, _)| i).max().unwrap_or(0);
    assert!(last >= 10_000, "only {last} entries applied: too few for the test to tell");
    // Every 1,000 entries would be `last / 1_000` snapshots; as the log outgrows the books,
    // at most half that (8 up to index 22,000 here).
    for (node, &(applied, snapshots)) in &per_replica {
        assert!(
            snapshots >= 1 && snapshots as u64 <= last / 2_000,
            "replica {node}: {snapshots} snapshots of the books up to index {applied}"
        );
    }
}

/// A ledger replica down while the others take their snapshots comes back and catches up
/// (from the log or from the leader's snapshot), with every buy answered once.
#[test]
fn a_ledger_replica_down_for_a_while_catches_up_with_the_books() {
    let crash = "[[crash]]\nnodes = \"3\"\nat_ms = 500\nrestart_ms = 20000\nwipe = \"no\"\n";
    let r = check_until("market", &market(5, 1).with(&BUYS, 10_000u32).with(&SICK, 0.0), crash, 600_000);
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    let (asked, answered) = buys(&r);
    assert_eq!(asked, answered);
    let progress = ledger_progress(&r);
    let applied = |node: u32| progress.get(&node).map_or(0, |p| p.0);
    let down = |o: &&(f64, u32, String)| (500.0..20_000.0).contains(&o.0);
    let snapshots = r.observations.iter().filter(down).filter(|o| o.2.contains("Snapshotted")).count();
    assert!(snapshots > 0, "no snapshot while replica 3 was down");
    assert!(
        applied(3) >= applied(4),
        "replica 3 applied up to {}, replica 4 up to {}",
        applied(3),
        applied(4)
    );
}

#[test]
fn the_example_market_file_trades_its_goods_at_its_prices() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/market.toml");
    let mut priced = 0;
    for seed in 0..10 {
        let p = market(6, seed).with(&MARKET, path).with(&SICK, 0.1);
        let r = check("market", &p, LOSSY);
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        let (asked, answered) = buys(&r);
        assert!(asked > 0 && answered == asked, "seed {seed}: {answered} of {asked} answered");
        // Salt at 120 cents a unit, boar at 250: 1 to 3 units of either.
        let paid = ["120", "240", "360", "250", "500", "750"].map(|c| format!("paid: {c} "));
        priced += r
            .observations
            .iter()
            .filter(|o| o.2.starts_with("Answered") && paid.iter().any(|p| o.2.contains(p)))
            .count();
    }
    assert!(priced > 0, "no salt or boar sold at its price");
}

/// The ledger's leadership follows the trader. When the market opens, the first trader's
/// replica stands at once: the ledger's first leader is that trader, elected before the
/// shortest election timeout (20 ms in the simulator) could fire anywhere.
#[test]
fn the_first_trader_leads_the_ledger_from_the_opening() {
    for seed in 0..20 {
        let r = check("market", &market(5, seed).with(&SICK, 0.0), "");
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        let first = |kind: &str| r.observations.iter().find(|o| o.2.starts_with(kind)).cloned();
        let trader = first("Announced").expect("a trader").1;
        let (ms, leader, _) = first("Raft(Leader").expect("a ledger leader");
        assert_eq!(leader, trader, "seed {seed}: the ledger's first leader is not the trader");
        assert!(ms < 20.0, "seed {seed}: the ledger's first leader was elected at {ms} ms");
    }
}

/// ...and after a change of trader the new one asks the ledger's leader for the post, which
/// hands it over (Raft's leadership transfer): a trader whose stint lasts leads the ledger
/// before it ends.
#[test]
fn the_ledger_leadership_follows_each_new_trader() {
    let (mut stints, mut led) = (0, 0);
    for seed in 0..20 {
        let r = check("market", &market(5, seed).with(&BUYS, 30u32).with(&SICK, 0.05), "");
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        // The ledger's leader as last elected, and each trader's stint: (trader, served, led).
        let mut leader = None;
        let mut stint: Option<(u32, usize, bool)> = None;
        let mut done = Vec::new();
        for (_, node, o) in &r.observations {
            if o.starts_with("Raft(Leader") {
                leader = Some(*node);
            } else if o.starts_with("Raft(SteppedDown") && leader == Some(*node) {
                leader = None;
            } else if o.starts_with("Announced") {
                done.extend(stint.replace((*node, 0, false)));
            } else if (o.starts_with("Resigned") || o.starts_with("Sick"))
                && stint.is_some_and(|s| s.0 == *node)
            {
                done.extend(stint.take());
            } else if o.starts_with("Serving") {
                if let Some(s) = stint.as_mut().filter(|s| s.0 == *node) {
                    s.1 += 1;
                }
            }
            if let Some(s) = stint.as_mut() {
                s.2 |= leader == Some(s.0);
            }
        }
        done.extend(stint);
        for (_, served, has_led) in done {
            if served >= 10 {
                stints += 1;
                led += usize::from(has_led);
            }
        }
    }
    assert!(stints >= 20, "only {stints} stints of 10 buys or more");
    assert_eq!(led, stints, "{led} of {stints} traders led the ledger");
}
