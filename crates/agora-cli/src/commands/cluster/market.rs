//! The trading post in containers, as its peers' logs show it: who trades (the leader of the
//! newest term of the bully election), how many buys were answered, and the market checker's
//! verdict on the history so far ([`history`](super::history)).

use super::docker::Docker;
use super::history::{self, NodeLog};
use super::status::{self, Container};
use crate::cluster_file::ClusterFile;
use crate::error::UserError;
use serde_json::Value;
use std::time::Instant;

/// What the logs say of the market.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Trading {
    /// The trader (the leader of the newest term any peer reported) and that term.
    pub trader: Option<(usize, u64)>,
    /// Buys answered to their buyers, over every run of every peer.
    pub answered: u64,
}

impl Trading {
    /// Reads the observations of every log.
    pub fn of(logs: &[NodeLog]) -> Trading {
        let mut t = Trading::default();
        for (_, o) in logs.iter().flat_map(|l| &l.obs) {
            if o.get("Answered").is_some() {
                t.answered += 1;
            }
            let elected = &o["Election"]["Leader"];
            if let (Some(term), Some(leader)) = (elected["term"].as_u64(), elected["leader"].as_u64()) {
                if t.trader.is_none_or(|(_, newest)| term > newest) {
                    t.trader = Some((leader as usize, term));
                }
            }
        }
        t
    }
}

/// Reads the peers' logs until a trader is elected and a buyer has an answer, or `deadline`.
pub fn wait_for_trading(
    docker: &Docker,
    name: &str,
    place: &status::Where,
    deadline: Instant,
) -> Result<Option<Trading>, UserError> {
    status::wait_until(docker, name, place, deadline, |cs| {
        let t = Trading::of(&history::read(docker, cs).ok()?);
        (t.trader.is_some() && t.answered > 0).then_some(t)
    })
}

/// `agora cluster status` of a market: 0 if every peer runs, one trades and no property
/// judged so far is violated; 1 otherwise.
pub fn status(
    docker: &Docker,
    name: &str,
    cs: &[Container],
    cf: &ClusterFile,
    json: bool,
) -> Result<i32, UserError> {
    let nodes = cf.nodes.len();
    let logs = history::read(docker, cs)?;
    let t = Trading::of(&logs);
    let summary = history::judge(cf, &logs, "agora cluster status", history::Run::Going)?;
    let running = cs.iter().filter(|c| c.state == "running").count();
    if json {
        let runs: Vec<Value> =
            logs.iter().map(|l| serde_json::json!({ "node": l.node, "runs": l.runs.len() })).collect();
        let v = serde_json::json!({
            "cluster": name, "system": "market", "nodes": nodes, "containers": cs, "runs": runs,
            "trader": t.trader.map(|(n, term)| serde_json::json!({ "node": n, "term": term })),
            "answered": t.answered, "checks": summary,
        });
        println!("{v}");
    } else {
        println!("cluster {name}: market, {nodes} peers, {} container(s)", cs.len());
        println!("{:<5} {:<22} {:<16} {:>5}", "node", "container", "address", "runs");
        for (c, l) in cs.iter().zip(&logs) {
            let ip = c.place();
            println!("{:<5} {:<22} {ip:<16} {:>5}", c.node, status::state(c), l.runs.len());
        }
        match t.trader {
            Some((n, term)) => println!("trader  node {n} (term {term})"),
            None => println!("trader  none elected yet"),
        }
        println!("answered  {} buys", t.answered);
        println!("checks  the market's checker on the peers' history so far:");
        for line in history::verdict_lines(&summary) {
            println!("  {line}");
        }
    }
    Ok(i32::from(!(running == nodes && t.trader.is_some() && summary.violations.is_empty())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trader_is_the_leader_of_the_newest_term() {
        let log = |node, lines: &[&str]| {
            let text: String =
                lines.iter().map(|o| format!("event {{\"node\":{node},\"at\":1,\"obs\":{o}}}\n")).collect();
            NodeLog::parse(node, &text)
        };
        let leader = |l, t| format!("{{\"Election\":{{\"Leader\":{{\"leader\":{l},\"term\":{t}}}}}}}");
        let answered = "{\"Answered\":{\"seq\":0,\"result\":\"OutOfStock\"}}";
        // Node 1 hears of term 3 first; node 0 of term 2 later: term 3 stands.
        let logs = [log(0, &[&leader(4, 2), answered, answered]), log(1, &[&leader(3, 3), "\"Left\""])];
        assert_eq!(Trading::of(&logs), Trading { trader: Some((3, 3)), answered: 2 });
        assert_eq!(Trading::of(&[]), Trading::default());
    }
}
