//! The nemesis of the federated election (`agora cluster up --system election`): its
//! workload is its citizens, inside the containers, and its history is what every node logged
//! (`--events`, [`history`]), a killed run's included. A fault "on the leader" hits the
//! legislature's Raft leader. The faults are drawn over every node — legislators,
//! coordinators, regions and citizens — and healed while the count goes on; then the election
//! runs to its end (it closes when every citizen is done, or 60 s after the coordinators
//! start), every node ends on its own, and the election's checker judges the whole history,
//! its end included (`results-everywhere`). Beside the checker's verdict, every ballot a
//! citizen was given a receipt for must be in the tally the legislature reached, at its leaf.

use super::super::docker::Docker;
use super::super::history::{self, NodeLog, Run};
use super::super::status::{self, Container};
use super::super::Files;
use super::faults::Faults;
use super::logged::{self, Outcome, Property};
use super::report::{count_during, HistOp};
use super::{unix_ns, Clock, ANSWER_WITHIN};
use crate::cli::ClusterNemesisArgs;
use crate::cluster_file::ClusterFile;
use crate::error::UserError;
use serde::Serialize;
use serde_json::Value;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// How long the nemesis waits for the election to end once every fault is healed: a guard
/// against hanging, not a measure.
const END_WITHIN: Duration = Duration::from_secs(300);

/// `agora cluster nemesis` on an election.
pub fn run(
    a: &ClusterNemesisArgs,
    docker: &Docker,
    files: &Files,
    cf: &ClusterFile,
    faults: &Faults,
) -> Result<i32, UserError> {
    let nodes = cf.nodes.len();
    let replicas = cf.params()?.nodes;
    let name = &files.name;
    let read = RefCell::new(HashMap::new());
    let leader = || legislature_leader(docker, &status::containers(docker, name).ok()?, replicas, &read);
    let deadline = Instant::now() + ANSWER_WITHIN;
    while leader().is_none() {
        if Instant::now() >= deadline {
            return Err(UserError(format!(
                "cluster {name}: no legislator leads within {} s; the nemesis starts from an election that counts",
                ANSWER_WITHIN.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let workload = "the workload: the election's own citizens";
    let logged::Broken { _rt, mut clock, stop, mut runs, healed_ns, last_heal } =
        logged::break_and_heal(a, name, nodes, workload, faults, &leader)?;
    let moved = faults.moved()?;
    // From here the nodes end on their own: a container that has exited is done, not to be
    // started again.
    faults.disarm();
    let ended = wait_for_end(docker, name, nodes, healed_ns, &mut clock)?;
    drop(stop);

    let logs = history::read(docker, &status::containers(docker, name)?)?;
    let reproduce = format!("agora cluster nemesis --dir {} --seed {}", a.dir.dir.display(), a.seed);
    let run = if ended.all() { Run::Ended } else { Run::Going };
    let checks = history::judge(cf, &logs, &reproduce, run)?;
    let ops = ballots(&logs);
    count_during(&mut runs, &ops, clock.start_ns);
    let counted = Counted::of(&logs);
    let outcome = Outcome {
        cluster: name.clone(),
        system: "election",
        seed: a.seed,
        interrupted: clock.interrupted,
        healed_at_s: clock.s_of(healed_ns),
        heal_errors: logged::heal_errors(&runs, last_heal, &moved),
        checks: Some(checks),
        start_ns: clock.start_ns,
        runs,
        ops,
        what: "ballots",
        after: vec![ended.property(), counted.property()],
        extra: vec![
            ("ended", serde_json::to_value(&ended).expect("serializes")),
            ("receipts", serde_json::to_value(&counted).expect("serializes")),
        ],
    };
    outcome.print(a.dir.json, a.out.as_deref())
}

/// What the nemesis has read of one legislator's log: the daemon's stamp of its last line read,
/// and the term it led then (see [`leads`]). Each lookup reads only the lines after it: the
/// whole log, every ballot counted, is tens of megabytes by the end of a count, and reading it
/// for every fault on a busy machine let the count end before the faults did.
#[derive(Default)]
struct Read {
    stamp: Option<String>,
    leads: Option<u64>,
}

/// The legislator that leads now: of the replicas' containers that run, the one whose log says
/// it leads the highest term in its current run.
fn legislature_leader(
    docker: &Docker,
    cs: &[Container],
    replicas: usize,
    read: &RefCell<HashMap<String, Read>>,
) -> Option<usize> {
    let mut read = read.borrow_mut();
    cs.iter()
        .filter(|c| c.node < replicas && c.state == "running")
        .filter_map(|c| {
            let r = read.entry(c.id.clone()).or_default();
            // From the last line read on, that line again included: reading it twice changes
            // nothing (`leads_after` of the same line is the same).
            let log = docker.stderr_log_stamped(&c.id, r.stamp.as_deref()).ok()?;
            for line in log.lines() {
                let Some((stamp, text)) = line.split_once(' ') else { continue };
                r.leads = leads_after(r.leads, text);
                r.stamp = Some(stamp.to_string());
            }
            Some((r.leads?, c.node))
        })
        .max()
        .map(|(_, n)| n)
}

/// The term a legislator's log says it leads now: the last it became leader of in its current
/// run (after its last `listening` line) and has not stepped down from.
#[cfg(test)]
fn leads(log: &str) -> Option<u64> {
    log.lines().fold(None, leads_after)
}

/// The term a legislator leads after `line` of its log, given `now`, the term it led before.
/// Only the lines that can say so are parsed: a legislator's log holds every ballot it counted.
fn leads_after(now: Option<u64>, line: &str) -> Option<u64> {
    let Some(json) = line.strip_prefix("event ") else { return now };
    if json.contains("\"listening\"") {
        return None;
    }
    if !(json.contains("\"Leader\"") || json.contains("\"SteppedDown\"")) {
        return now;
    }
    let Ok(v) = json.parse::<Value>() else { return now };
    let raft = &v["obs"]["Raft"];
    if let Some(t) = raft["Leader"]["term"].as_u64() {
        Some(t)
    } else if raft["SteppedDown"]["term"].as_u64().is_some_and(|t| now == Some(t)) {
        None
    } else {
        now
    }
}

/// How the election ended after the healing.
#[derive(Debug, Serialize)]
struct Ended {
    /// Nodes whose container exited, and those of them with exit code 0.
    exited: usize,
    clean: usize,
    nodes: usize,
    /// Seconds from the healing to the last exit (or to giving up).
    after_s: f64,
    /// The nodes that had not ended when the nemesis gave up, each with the last lines of its
    /// log: what it was doing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    running: Vec<StillRunning>,
}

/// A node that had not ended, and the end of its log.
#[derive(Debug, Serialize)]
struct StillRunning {
    node: usize,
    state: String,
    log_tail: Vec<String>,
}

impl Ended {
    fn all(&self) -> bool {
        self.exited == self.nodes
    }

    fn property(&self) -> Property {
        Property {
            name: "election ended".into(),
            ok: self.all() && self.clean == self.nodes,
            detail: if self.all() {
                format!(
                    "every one of the {} nodes ended on its own, {:.1} s after the healing; {} with exit code 0",
                    self.nodes, self.after_s, self.clean
                )
            } else {
                let running: Vec<String> = self.running.iter().map(|r| format!("n{}", r.node)).collect();
                format!(
                    "{} of the {} nodes ended within {:.0} s of the healing; not {}",
                    self.exited,
                    self.nodes,
                    self.after_s,
                    running.join(", ")
                )
            },
        }
    }
}

/// Looks at the containers until every node has ended, [`END_WITHIN`] has passed or the run is
/// interrupted.
fn wait_for_end(
    docker: &Docker,
    name: &str,
    nodes: usize,
    healed_ns: u64,
    clock: &mut Clock,
) -> Result<Ended, UserError> {
    let deadline = Instant::now() + END_WITHIN;
    loop {
        let cs = status::containers(docker, name)?;
        let exited: Vec<&Container> = cs.iter().filter(|c| c.state == "exited").collect();
        let mut ended = Ended {
            exited: exited.len(),
            clean: exited.iter().filter(|c| c.exit_code == 0).count(),
            nodes,
            after_s: unix_ns().saturating_sub(healed_ns) as f64 / 1e9,
            running: Vec::new(),
        };
        let wait =
            Duration::from_nanos(unix_ns().saturating_sub(clock.start_ns)) + Duration::from_millis(250);
        if ended.all() || Instant::now() >= deadline || !clock.until(wait) {
            ended.running = cs
                .iter()
                .filter(|c| c.state != "exited")
                .map(|c| StillRunning {
                    node: c.node,
                    state: c.state.clone(),
                    log_tail: docker
                        .stderr_log_tail(&c.id, 20)
                        .unwrap_or_else(|e| e.msg)
                        .lines()
                        .map(|l| l.chars().take(400).collect())
                        .collect(),
                })
                .collect();
            return Ok(ended);
        }
    }
}

/// Every ballot of the logs as an operation: from its citizen's first cast to the final
/// answer it took (none: `info`). A citizen restarted casts its ballots again: new operations.
fn ballots(logs: &[NodeLog]) -> Vec<HistOp> {
    logged::operations(logs, |o| o["Cast"]["voter"].as_u64(), |o| o["Answered"]["voter"].as_u64())
}

/// The receipts citizens were given, against the tally the legislature reached.
#[derive(Debug, Default, Serialize)]
struct Counted {
    /// Voters given a receipt (a restarted citizen may be given the same one twice).
    voters: usize,
    /// Ballots the legislature tallied (`None`: no replica tallied).
    tallied: Option<u64>,
    /// Receipts whose ballot is not in the tally at their leaf.
    missing: usize,
    /// The first of them, in words.
    example: Option<String>,
}

impl Counted {
    /// Every row the replicas reported counting (the first report of each leaf), every
    /// `Tallied`, and every receipt of the logs.
    fn of(logs: &[NodeLog]) -> Counted {
        let mut rows: HashMap<u64, &Value> = HashMap::new();
        let mut tallied = None;
        let all = || logs.iter().flat_map(|l| &l.obs).map(|(_, o)| o);
        for o in all() {
            for row in o["Counted"]["ballots"].as_array().into_iter().flatten() {
                if let Some(leaf) = row["leaf"].as_u64() {
                    rows.entry(leaf).or_insert(row);
                }
            }
            if let Some(n) = o["Tallied"]["counted"].as_u64() {
                tallied = tallied.max(Some(n));
            }
        }
        let mut c = Counted { tallied, ..Counted::default() };
        let mut voters = HashSet::new();
        for receipt in all().map(|o| &o["Answered"]["answer"]["Counted"]).filter(|r| r.is_object()) {
            voters.insert(receipt["voter"].as_u64());
            let leaf = receipt["leaf"].as_u64().unwrap_or(u64::MAX);
            let there = tallied.is_some_and(|n| leaf < n) && rows.get(&leaf) == Some(&receipt);
            if !there {
                c.missing += 1;
                c.example.get_or_insert_with(|| {
                    format!(
                        "voter {} at leaf {leaf}: {:?}",
                        receipt["voter"],
                        rows.get(&leaf).map(|r| r.to_string())
                    )
                });
            }
        }
        c.voters = voters.len();
        c
    }

    fn property(&self) -> Property {
        let (ok, detail) = match (self.tallied, &self.example) {
            (None, _) => {
                (false, format!("{} voters were given a receipt, and no replica tallied", self.voters))
            }
            (Some(n), None) => (
                self.voters > 0,
                format!(
                    "every one of the {} receipts is a ballot at its leaf among the {n} tallied",
                    self.voters
                ),
            ),
            (Some(n), Some(e)) => {
                (false, format!("{} receipts are not among the {n} ballots tallied, e.g. {e}", self.missing))
            }
        };
        Property { name: "acknowledged ballots counted".into(), ok, detail }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_lincheck::Kind;

    fn log(node: usize, lines: &[(u64, &str)]) -> NodeLog {
        let text: String = lines
            .iter()
            .map(|(at, o)| format!("event {{\"node\":{node},\"at\":{at},\"obs\":{o}}}\n"))
            .collect();
        NodeLog::parse(node, &text)
    }

    const ROW0: &str =
        r#"{"voter":7,"state":1,"option":0,"hash":"aa","leaf":0,"pos":{"index":3,"offset":0}}"#;
    const ROW1: &str =
        r#"{"voter":9,"state":2,"option":1,"hash":"bb","leaf":1,"pos":{"index":3,"offset":1}}"#;

    fn receipt(voter: u64, row: &str) -> String {
        format!(
            r#"{{"Answered":{{"voter":{voter},"hash":"x","intent":"Valid","answer":{{"Counted":{row}}}}}}}"#
        )
    }

    #[test]
    fn every_receipt_must_be_a_tallied_row_at_its_leaf() {
        let counted = format!(r#"{{"Counted":{{"ballots":[{ROW0},{ROW1}]}}}}"#);
        let replica = log(0, &[(10, &counted), (50, r#"{"Tallied":{"digest":"d","counted":2}}"#)]);
        let citizen = log(12, &[(20, &receipt(7, ROW0)), (21, &receipt(9, ROW1)), (22, &receipt(7, ROW0))]);
        let c = Counted::of(&[replica, citizen]);
        assert_eq!((c.voters, c.tallied, c.missing), (2, Some(2), 0));
        assert!(c.property().ok, "{c:?}");

        // A tally of one ballot leaves the second receipt out.
        let short = format!(r#"{{"Counted":{{"ballots":[{ROW0}]}}}}"#);
        let replica = log(0, &[(10, &short), (50, r#"{"Tallied":{"digest":"d","counted":1}}"#)]);
        let citizen = log(12, &[(20, &receipt(7, ROW0)), (21, &receipt(9, ROW1))]);
        let c = Counted::of(&[replica, citizen]);
        assert_eq!(c.missing, 1);
        assert!(!c.property().ok && c.property().detail.contains("voter 9 at leaf 1"), "{c:?}");

        // Another ballot at the receipt's leaf is not the receipt's.
        let other = ROW1.replace("\"voter\":9", "\"voter\":8");
        let counted = format!(r#"{{"Counted":{{"ballots":[{ROW0},{other}]}}}}"#);
        let replica = log(0, &[(10, &counted), (50, r#"{"Tallied":{"digest":"d","counted":2}}"#)]);
        let citizen = log(12, &[(21, &receipt(9, ROW1))]);
        assert_eq!(Counted::of(&[replica, citizen]).missing, 1);

        // No tally: not judged ok.
        let c = Counted::of(&[log(12, &[(21, &receipt(9, ROW1))])]);
        assert!(!c.property().ok);
    }

    #[test]
    fn a_legislator_leads_until_it_steps_down_or_restarts() {
        let leader =
            |t| format!("event {{\"node\":0,\"at\":1,\"obs\":{{\"Raft\":{{\"Leader\":{{\"term\":{t}}}}}}}}}");
        let down = |t| {
            format!("event {{\"node\":0,\"at\":2,\"obs\":{{\"Raft\":{{\"SteppedDown\":{{\"term\":{t}}}}}}}}}")
        };
        let listening = "event {\"node\":0,\"at\":0,\"listening\":\"0.0.0.0:7000\",\"pid\":1}";
        assert_eq!(leads(&[listening, &leader(2)].join("\n")), Some(2));
        assert_eq!(leads(&[listening, &leader(2), &down(2)].join("\n")), None);
        assert_eq!(leads(&[listening, &leader(2), &down(1)].join("\n")), Some(2), "an older term");
        assert_eq!(leads(&[&leader(2), listening].join("\n")), None, "a new run leads nothing yet");
        assert_eq!(leads(&[&leader(2), listening, &leader(4)].join("\n")), Some(4));
        // Read a part at a time, each part from the last line of the one before (as `docker
        // logs --since` gives them): whatever the cut, the same answer as one read.
        let (two, three, down2) = (leader(2), leader(3), down(2));
        let lines = [listening, &two, &down2, listening, &three, "event {\"node\":0,\"obs\":{}}"];
        for cut in 1..lines.len() {
            let first = lines[..cut].iter().fold(None, |now, l| leads_after(now, l));
            let then = lines[cut - 1..].iter().fold(first, |now, l| leads_after(now, l));
            assert_eq!(then, Some(3), "cut after line {cut}");
        }
    }

    #[test]
    fn a_ballot_runs_from_its_cast_to_its_answer_at_its_citizen() {
        let cast = |v| format!(r#"{{"Cast":{{"voter":{v},"hash":"x","intent":"Valid"}}}}"#);
        let citizen = log(12, &[(10, &cast(7)), (15, &cast(9)), (30, &receipt(7, ROW0))]);
        let ops = ballots(&[citizen]);
        assert_eq!(ops.len(), 2);
        assert_eq!((ops[0].begin, ops[0].end, ops[0].kind), (10, Some(30), Kind::Ok));
        assert_eq!((ops[1].begin, ops[1].end, ops[1].kind), (15, None, Kind::Info));
    }
}
