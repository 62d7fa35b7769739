//! The nemesis of a market: its workload is its buyers, inside the peers, and its history is
//! what the peers logged ([`history`]), a killed run's included. A fault "on the leader" hits
//! the trader. Once every fault is healed the market must trade again (every peer running, a
//! buy answered after the healing), and its checker judges the whole history: every answer a
//! buyer took is a trade the books applied, once, and the books balance.

use super::super::docker::Docker;
use super::super::history::{self, NodeLog};
use super::super::market::Trading;
use super::super::{status, Files};
use super::faults::Faults;
use super::logged::{self, Outcome, Property};
use super::report::{count_during, HistOp};
use super::{unix_ns, ANSWER_WITHIN};
use crate::cli::ClusterNemesisArgs;
use crate::cluster_file::ClusterFile;
use crate::error::UserError;
use serde::Serialize;
use std::time::{Duration, Instant};

/// `agora cluster nemesis` on a market.
pub fn run(
    a: &ClusterNemesisArgs,
    docker: &Docker,
    files: &Files,
    cf: &ClusterFile,
    faults: &Faults,
) -> Result<i32, UserError> {
    let peers = cf.nodes.len();
    let name = &files.name;
    if super::super::market::wait_for_trading(
        docker,
        name,
        &status::Where::Compose,
        Instant::now() + ANSWER_WITHIN,
    )?
    .is_none()
    {
        return Err(UserError(format!(
            "cluster {name}: no buy answered within {} s; the nemesis starts from a market that trades",
            ANSWER_WITHIN.as_secs()
        )));
    }
    let trader = || {
        let cs = status::containers(docker, name).ok()?;
        Trading::of(&history::read(docker, &cs).ok()?).trader.map(|(n, _)| n)
    };
    let workload = "the workload: the market's own buyers";
    let logged::Broken { _rt, mut clock, stop, mut runs, healed_ns, last_heal } =
        logged::break_and_heal(a, name, peers, workload, faults, &trader)?;
    let again = trading_again(docker, name, peers, healed_ns)?;
    let moved = faults.moved()?;
    clock.until(Duration::from_nanos(healed_ns - clock.start_ns) + a.quiet);
    drop(stop);

    let logs = history::read(docker, &status::containers(docker, name)?)?;
    let reproduce = format!("agora cluster nemesis --dir {} --seed {}", a.dir.dir.display(), a.seed);
    let checks = history::judge(cf, &logs, &reproduce, history::Run::Going)?;
    let ops = buys(&logs);
    count_during(&mut runs, &ops, clock.start_ns);
    let heal_errors = logged::heal_errors(&runs, last_heal, &moved);
    let trading = Property {
        name: "trading after healing".into(),
        ok: again.running == again.peers && again.answered > 0,
        detail: format!(
            "{} of {} peers run; {} buys answered after the healing, the first {:.2} s after it",
            again.running, again.peers, again.answered, again.after_s
        ),
    };
    let outcome = Outcome {
        cluster: name.clone(),
        system: "market",
        seed: a.seed,
        interrupted: clock.interrupted,
        healed_at_s: clock.s_of(healed_ns),
        heal_errors,
        checks: Some(checks),
        start_ns: clock.start_ns,
        runs,
        ops,
        what: "buys",
        after: vec![trading],
        extra: vec![("trading_after_healing", serde_json::to_value(&again).expect("serializes"))],
    };
    outcome.print(a.dir.json, a.out.as_deref())
}

/// Whether the market trades again after the healing.
#[derive(Debug, Serialize)]
struct Again {
    /// Peers whose container runs.
    running: usize,
    peers: usize,
    /// Buys answered after the healing.
    answered: u64,
    /// Seconds from the healing to the first answer after it (or to giving up).
    after_s: f64,
}

/// Reads the logs until every peer runs and a buy is answered after `healed_ns`, or
/// [`ANSWER_WITHIN`] has passed.
fn trading_again(docker: &Docker, name: &str, peers: usize, healed_ns: u64) -> Result<Again, UserError> {
    let deadline = Instant::now() + ANSWER_WITHIN;
    loop {
        let cs = status::containers(docker, name)?;
        let running = cs.iter().filter(|c| c.state == "running").count();
        let logs = history::read(docker, &cs)?;
        let answers: Vec<u64> = logs
            .iter()
            .flat_map(|l| &l.obs)
            .filter(|(t, o)| *t >= healed_ns && o.get("Answered").is_some())
            .map(|(t, _)| *t)
            .collect();
        let first = answers.iter().min().copied();
        if (running == peers && first.is_some()) || Instant::now() >= deadline {
            let until = first.unwrap_or_else(unix_ns);
            return Ok(Again {
                running,
                peers,
                answered: answers.len() as u64,
                after_s: until.saturating_sub(healed_ns) as f64 / 1e9,
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every buy of the logs as an operation: from its buyer's first ask to the answer it took
/// (unanswered: `info`).
fn buys(logs: &[NodeLog]) -> Vec<HistOp> {
    logged::operations(logs, |o| o["Asked"]["buy"]["seq"].as_u64(), |o| o["Answered"]["seq"].as_u64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_lincheck::Kind;

    #[test]
    fn a_buy_runs_from_its_ask_to_its_answer_at_its_buyer() {
        let line = |at: u64, o: &str| format!("event {{\"node\":0,\"at\":{at},\"obs\":{o}}}\n");
        let asked = |seq| format!("{{\"Asked\":{{\"buy\":{{\"seq\":{seq}}}}}}}");
        let answered = |seq| format!("{{\"Answered\":{{\"seq\":{seq},\"result\":\"OutOfStock\"}}}}");
        let buyer =
            NodeLog::parse(0, &[line(10, &asked(0)), line(30, &answered(0)), line(40, &asked(1))].concat());
        // Another peer's answer to the same seq is not this buyer's.
        let other = NodeLog::parse(1, &line(50, &answered(1)).replace("\"node\":0", "\"node\":1"));
        let ops = buys(&[buyer, other]);
        assert_eq!(ops.len(), 2);
        assert_eq!((ops[0].begin, ops[0].end, ops[0].kind), (10, Some(30), Kind::Ok));
        assert_eq!((ops[1].begin, ops[1].end, ops[1].kind), (40, None, Kind::Info));
    }
}
