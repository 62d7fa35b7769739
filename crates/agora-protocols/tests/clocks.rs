//! Logical clocks: the seed report's example reproduced exactly; Lamport's clock condition and
//! the vector-clock characterization of happened-before across random scenarios, under
//! reordering and duplication; and a wrong clock caught by the checker.

mod common;

use agora_core::{EndState, NodeId, Setup, Time};
use agora_protocols::logical_clocks::{
    ClockKind, Executed, LogicalClockSetup, Scenario, Stamp, SEED_SCENARIO,
};
use agora_protocols::params::{MSGS, SCENARIO};
use agora_protocols::Params;
use common::check;

fn clocks(n: usize, scenario: &str, seed: u64) -> Params {
    Params::new(n, seed).with(&SCENARIO, scenario).with(&MSGS, 8u32)
}

#[test]
fn the_seed_reports_example_gets_the_seed_reports_timestamps() {
    let r = check("lamport-clock", &clocks(3, "seed", 1), "");
    assert!(r.violations.is_empty());
    let s = Scenario::parse(SEED_SCENARIO).unwrap();
    let mut lines = vec![Vec::new(); 3];
    let mut by_node: Vec<Vec<(u32, String)>> = vec![Vec::new(); 3];
    for (_, node, obs) in &r.observations {
        // "Executed { i: 0, stamp: Lamport(1) }"
        let i: u32 = obs.split("i: ").nth(1).unwrap().split(',').next().unwrap().parse().unwrap();
        let c = obs.split("Lamport(").nth(1).unwrap().split(')').next().unwrap().to_string();
        by_node[*node as usize].push((i, c));
    }
    for (p, evs) in by_node.iter().enumerate() {
        for (i, c) in evs {
            lines[p].push(format!("{}({c})", s.name(p, *i as usize)));
        }
    }
    assert_eq!(lines[0].join(" "), "PI_0_0(1) MS_0(2) PI_0_2(3) MR_1(5) MS_2(6)");
    assert_eq!(lines[1].join(" "), "MR_3(2) MR_0(3) MS_1(4)");
    assert_eq!(lines[2].join(" "), "MS_3(1) PI_2_9(2) MR_2(7)");
    assert_eq!(r.totals.sent, 4, "the seed report's message count");
}

#[test]
fn clocks_respect_causality_in_random_scenarios() {
    let faults =
        "[network]\nlatency = { dist = \"exponential\", mean_ms = 3 }\nduplicate = 0.2\nreorder = 0.3";
    for seed in 0..200 {
        for (kind, n) in [("lamport-clock", 2 + seed as usize % 6), ("vector-clock", 2 + seed as usize % 6)] {
            let r = check(kind, &clocks(n, "random", seed), faults);
            assert!(r.violations.is_empty(), "{kind} seed {seed}: {:?}", r.violations);
            let executed = r.observations.len();
            let planned: usize = Scenario::random(n, 8, seed).processes.iter().map(Vec::len).sum();
            assert_eq!(executed, planned, "every event ran");
        }
    }
}

#[test]
fn bad_scenarios_are_refused() {
    for (text, why) in [
        ("PI MS0; PI", "never received"),
        ("MR0; MR1", "never sent"),
        ("MS0 MR0", "to itself"),
        ("MR0 MS1; MR1 MS0", "deadlock"),
        ("PI XX", "not PI"),
        ("MS0 MS0; MR0", "twice"),
    ] {
        assert!(Scenario::parse(text).unwrap_err().contains(why), "{text}");
    }
}

#[test]
fn a_wrong_clock_is_caught() {
    // Lamport stamps that ignore the receipt rule: MR_1 at (4) instead of (5) is still fine,
    // but MR_2 at (3) comes before its send MS_2 at (6).
    let setup =
        LogicalClockSetup { kind: ClockKind::Lamport, scenario: Scenario::parse(SEED_SCENARIO).unwrap() };
    let mut c = setup.checker();
    let feed = [(0, 0, 1), (0, 1, 2), (0, 2, 3), (0, 3, 4), (0, 4, 6), (2, 0, 1), (2, 1, 2), (2, 2, 3)];
    for (p, i, stamp) in feed {
        c.observe(Time::ZERO, NodeId(p), &Executed { i, stamp: Stamp::Lamport(stamp) }).unwrap();
    }
    let live = [true; 3];
    let v = c.finish(&EndState::quiet(Time::ZERO, &live, &[false; 3]));
    assert_eq!(v[0].property, "clock-condition");
    // Vector stamps that make two ordered events look concurrent are caught too.
    let setup = LogicalClockSetup { kind: ClockKind::Vector, scenario: Scenario::parse("MS0; MR0").unwrap() };
    let mut c = setup.checker();
    c.observe(Time::ZERO, NodeId(0), &Executed { i: 0, stamp: Stamp::Vector(vec![1, 0]) }).unwrap();
    c.observe(Time::ZERO, NodeId(1), &Executed { i: 0, stamp: Stamp::Vector(vec![0, 1]) }).unwrap();
    let v = c.finish(&EndState::quiet(Time::ZERO, &[true; 2], &[false; 2]));
    assert_eq!(v[0].property, "characterizes-causality");
}
