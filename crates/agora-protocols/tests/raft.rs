//! Raft in the simulator: campaigns under every fault the simulator has, the cases the
//! safety argument turns on (a lagging follower gets a snapshot, a majority down blocks and
//! then recovers, seven replicas lose three), and broken variants caught by the checker.

mod common;

use agora_protocols::params::{CLIENTS, INTERVAL_MS, MSGS, READS, SNAPSHOT_EVERY, VARIANT};
use agora_protocols::registry::cluster_size;
use agora_protocols::{dispatch, Params};
use agora_sim::{Faults, SimConfig};
use common::{random_crashes, Run, Sim};

fn raft(replicas: usize, clients: u32, seed: u64) -> Params {
    Params::new(replicas, seed).with(&CLIENTS, clients)
}

/// Runs the key-value store with the faults in `faults` (TOML), to `ms` of virtual time.
fn run(params: &Params, faults: &str, ms: u64) -> Run {
    let faults = Faults::from_toml(faults).unwrap();
    faults.validate(cluster_size("raft", params).unwrap()).unwrap();
    let mut cfg = SimConfig::new(params.seed).with_faults(faults);
    cfg.max_time = agora_core::Time::from_millis(ms);
    cfg.keep_observations = true;
    dispatch("raft", params, Sim(cfg)).unwrap()
}

fn campaign(make: impl Fn(u64) -> Params, seeds: std::ops::Range<u64>, faults: &str) {
    for seed in seeds {
        let p = make(seed);
        let r = run(&p, faults, 30_000);
        assert!(r.violations.is_empty(), "seed {seed} [{faults}]: {:?}", r.violations);
        let done = r.observations.iter().filter(|o| o.2.starts_with("ClientDone")).count();
        assert!(done >= cluster_size("raft", &p).unwrap() - p.nodes, "seed {seed}: {done} clients finished");
    }
}

fn count(r: &Run, prefix: &str) -> usize {
    r.observations.iter().filter(|o| o.2.starts_with(prefix)).count()
}

#[test]
fn three_replicas_under_loss_duplication_reordering_and_crash_restarts() {
    let faults = format!(
        "[network]\nlatency = {{ dist = \"uniform\", min_ms = 1.0, max_ms = 5.0 }}\nloss = 0.3\nduplicate = 0.2\nreorder = 0.3\nreorder_delay_ms = 20\n{}",
        random_crashes(5, 800.0, true)
    );
    campaign(|s| raft(3, 2, s).with(&SNAPSHOT_EVERY, 4u32).with(&MSGS, 40u32), 0..120, &faults);
}

#[test]
fn five_replicas_under_partitions_pauses_and_skewed_clocks() {
    let faults = "[network]\nlatency = { dist = \"exponential\", mean_ms = 2.0 }\nloss = 0.05\n\
        [[partition]]\ngroups = [\"0..2\", \"2..7\"]\nat_ms = 50\nheal_ms = 400\n\
        [[one_way]]\nfrom = \"2..5\"\nto = \"0..2\"\nat_ms = 500\nheal_ms = 900\n\
        [[pause]]\nnodes = \"1\"\nat_ms = 100\nresume_ms = 300\n\
        [[clock]]\nnodes = \"0..2\"\nskew_ms = 7\ndrift_ppm = 300\n\
        [[clock]]\nnodes = \"3\"\nskew_ms = -5\ndrift_ppm = -200\n";
    campaign(
        |s| raft(5, 2, s).with(&SNAPSHOT_EVERY, 8u32).with(&MSGS, 60u32).with(&INTERVAL_MS, 10.0),
        0..80,
        faults,
    );
}

#[test]
fn seven_replicas_keep_serving_with_three_crashed() {
    let faults = "[[crash]]\nnodes = \"4..7\"\nat_ms = 100\n";
    for seed in 0..20 {
        let r = run(&raft(7, 2, seed).with(&INTERVAL_MS, 10.0), faults, 30_000);
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        assert_eq!(count(&r, "ClientDone"), 2, "seed {seed}");
        // The workload runs well past the crashes: acknowledgements kept coming after them.
        assert!(r.observations.iter().any(|o| o.0 > 200.0 && o.2.starts_with("Acked")), "seed {seed}");
    }
}

#[test]
fn a_majority_down_blocks_progress_until_it_returns() {
    // Two of three replicas down from 200 to 1200 ms: nothing is acknowledged meanwhile, nothing
    // is lost, and every client finishes after they return.
    let faults = "[[crash]]\nnodes = \"1..3\"\nat_ms = 200\nrestart_ms = 1200\n";
    for seed in 0..20 {
        let r = run(&raft(3, 2, seed).with(&INTERVAL_MS, 10.0), faults, 30_000);
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        let blocked =
            r.observations.iter().filter(|o| o.0 > 210.0 && o.0 < 1200.0 && o.2.starts_with("Acked"));
        assert_eq!(blocked.count(), 0, "seed {seed}: acknowledged without a majority");
        assert!(r.observations.iter().any(|o| o.0 > 1200.0 && o.2.starts_with("Acked")), "seed {seed}");
        assert_eq!(count(&r, "ClientDone"), 2, "seed {seed}");
    }
}

#[test]
fn a_lagging_follower_is_sent_a_snapshot() {
    let faults = "[[crash]]\nnodes = \"2\"\nat_ms = 20\nrestart_ms = 800\n";
    for seed in 0..10 {
        let r = run(&raft(3, 2, seed).with(&SNAPSHOT_EVERY, 4u32).with(&INTERVAL_MS, 5.0), faults, 30_000);
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        let installed = r.observations.iter().filter(|o| o.1 == 2 && o.2.starts_with("Installed")).count();
        assert!(installed >= 1, "seed {seed}: node 2 never installed a snapshot");
        assert!(r.metrics.by_kind().iter().any(|(k, c)| *k == "SNAPSHOT" && c.delivered > 0));
    }
}

#[test]
fn snapshots_are_written_off_the_path_and_restarts_resume_from_them() {
    // Snapshots every 4 entries, written as deferred writes; crashes land in the middle of
    // some of them (the simulator then lets a random prefix of the pending writes land).
    let faults = random_crashes(6, 800.0, true);
    let (mut snapshots, mut resumed) = (0, 0);
    for seed in 0..30 {
        let r = run(
            &raft(3, 2, seed).with(&SNAPSHOT_EVERY, 4u32).with(&MSGS, 40u32).with(&INTERVAL_MS, 5.0),
            &faults,
            30_000,
        );
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        assert!(count(&r, "ClientDone") >= 2, "seed {seed}");
        snapshots += count(&r, "Snapshotted");
        resumed += r
            .observations
            .iter()
            .filter(|o| o.2.starts_with("Restored") && !o.2.contains("base: (0,"))
            .count();
    }
    assert!(snapshots >= 500, "{snapshots} snapshots in 30 runs");
    assert!(resumed >= 40, "{resumed} restarts from a snapshot in 30 runs");
}

#[test]
fn retried_commands_are_applied_once_and_the_broken_variant_is_caught() {
    let faults = "[network]\nloss = 0.3\nduplicate = 0.2\n";
    let broken = (0..20)
        .filter(|&s| {
            let r = run(&raft(3, 2, s).with(&VARIANT, "no-dedup"), faults, 30_000);
            r.violations.iter().any(|v| v.property == "exactly-once")
        })
        .count();
    assert!(broken >= 10, "no-dedup caught in {broken} of 20 runs");
    campaign(|s| raft(3, 2, s), 0..20, faults);
}

#[test]
fn reads_are_linearizable_and_stale_reads_are_caught() {
    // Replicas 0, 1 and client 5 are cut off from replicas 2..5 and client 6: whoever leads
    // on the minority side must not answer reads from its own state.
    let faults = "[[partition]]\ngroups = [\"0,1,5\", \"2,3,4,6\"]\nat_ms = 100\nheal_ms = 600\n";
    let p = |s| raft(5, 2, s).with(&READS, 0.5).with(&INTERVAL_MS, 2.0).with(&MSGS, 200u32);
    let broken = (0..40)
        .filter(|&s| {
            let r = run(&p(s).with(&VARIANT, "stale-reads"), faults, 30_000);
            r.violations.iter().any(|v| v.property == "linearizable-reads")
        })
        .count();
    assert!(broken >= 5, "stale reads caught in {broken} of 40 runs");
    campaign(p, 0..40, faults);
}

#[test]
fn a_seed_replays_exactly() {
    let faults = format!("[network]\nloss = 0.2\nduplicate = 0.1\n{}", random_crashes(3, 500.0, true));
    let a = run(&raft(3, 2, 7), &faults, 30_000);
    let b = run(&raft(3, 2, 7), &faults, 30_000);
    let c = run(&raft(3, 2, 8), &faults, 30_000);
    assert_eq!(a.digest, b.digest);
    assert_ne!(a.digest, c.digest);
}

#[test]
fn one_replica_is_a_log_of_its_own() {
    let r = run(&raft(1, 2, 1), "", 30_000);
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert_eq!(count(&r, "ClientDone"), 2);
}

/// Node 2 is down while writes are acknowledged by nodes 0 and 1; then node 0 crashes and
/// node 1 loses its disk; nodes 1 and 2 come back, node 0 later. `wipe` says how node 1 comes
/// back.
fn lost_disk_scenario(wipe: &str) -> String {
    format!(
        "[[crash]]\nnodes = \"2\"\nat_ms = 1\nrestart_ms = 700\n\
         [[crash]]\nnodes = \"0\"\nat_ms = 600\nrestart_ms = 2500\n\
         [[crash]]\nnodes = \"1\"\nat_ms = 600\nrestart_ms = 700\nwipe = \"{wipe}\"\n"
    )
}

#[test]
fn a_replica_that_lost_its_disk_rejoins_without_losing_acknowledged_writes() {
    let params = |s| raft(3, 1, s).with(&INTERVAL_MS, 5.0).with(&MSGS, 150u32);
    let mut lost = 0;
    for seed in 0..10 {
        // Back as a brand-new member, node 1 votes with the lagging node 2: writes it had
        // acknowledged are gone from the log they elect.
        let fresh = run(&params(seed), &lost_disk_scenario("fresh"), 30_000);
        let classic = ["leader-completeness", "acked-applied", "state-machine-safety", "log-matching"];
        lost += fresh.violations.iter().filter(|v| classic.contains(&v.property)).count();
        // Rejoining, it waits for a leader that has them (node 0, back at 2.5 s) before it
        // votes again.
        let r = run(&params(seed), &lost_disk_scenario("rejoin"), 30_000);
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        assert_eq!(count(&r, "ClientDone"), 1, "seed {seed}");
        assert_eq!(count(&r, "Rejoined"), 1, "seed {seed}");
    }
    assert!(lost > 0, "a wiped replica back as a new member lost acknowledged writes in no seed");
}

#[test]
fn replicas_losing_their_disks_at_random_under_loss_lose_nothing() {
    // Any two of the five may lose their disks, again and again: a majority always keeps its
    // own (were three rejoining at once, none could vote them back: the log waits for an
    // operator rather than lose what it acknowledged).
    let faults = "[network]\nlatency = { dist = \"uniform\", min_ms = 1.0, max_ms = 5.0 }\nloss = 0.1\n\
        [random_crashes]\ncount = 4\nnodes = \"3..5\"\nfrom_ms = 0\nto_ms = 800\nmin_down_ms = 1\n\
        max_down_ms = 150\nrestart = true\nwipe = \"rejoin\"\n";
    let mut rejoined = 0;
    for seed in 0..60 {
        let p = raft(5, 2, seed).with(&SNAPSHOT_EVERY, 6u32).with(&MSGS, 40u32);
        let r = run(&p, faults, 30_000);
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        assert_eq!(count(&r, "ClientDone"), 2, "seed {seed}");
        rejoined += count(&r, "Rejoined");
    }
    assert!(rejoined >= 60, "only {rejoined} rejoins in 60 runs of 4 wipes each");
}
