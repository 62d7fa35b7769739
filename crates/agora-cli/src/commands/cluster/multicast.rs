//! The seed's multicast experiment in containers, as its peers' logs show it: each peer's
//! region, multicasts and deliveries; the delay every delivery took against the region
//! model's latency (the least any path between the two regions allows); and the order's
//! checker on the history so far, or on the whole run once every peer has ended
//! ([`history`](super::history)).

use super::docker::Docker;
use super::history::{self, NodeLog, Run};
use super::status::{self, Container};
use crate::cluster_file::ClusterFile;
use crate::error::UserError;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// Reads the peers' logs until each of the `nodes` says it listens, or `deadline`.
pub fn wait_for_start(
    docker: &Docker,
    name: &str,
    nodes: usize,
    deadline: Instant,
) -> Result<Option<()>, UserError> {
    status::wait_until(docker, name, &status::Where::Compose, deadline, |cs| {
        let logs = history::read(docker, cs).ok()?;
        (cs.len() == nodes && logs.iter().all(|l| !l.runs.is_empty())).then_some(())
    })
}

/// The deliveries from one region to another: what they took against the model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Link {
    /// The senders' region.
    pub from: String,
    /// The receivers' region.
    pub to: String,
    /// The least the model lets a message take from `from` to `to`: its shortest path.
    pub model_ms: f64,
    /// The quickest delivery of a multicast at a peer of `to` after its sender in `from`
    /// multicast it.
    pub min_ms: f64,
    /// The median of those delays.
    pub p50_ms: f64,
    /// Deliveries measured (a sender's own excluded).
    pub deliveries: usize,
}

/// `shortest[a][b]`: the least latency of any path of links from region a to region b.
fn shortest(latency_ms: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let mut d = latency_ms.to_vec();
    let k = d.len();
    for via in 0..k {
        for a in 0..k {
            for b in 0..k {
                d[a][b] = d[a][b].min(d[a][via] + d[via][b]);
            }
        }
    }
    d
}

/// Every delivery at a peer other than the message's sender, by the regions of the two,
/// against the model: a delivery can come no sooner than a message can cross the links.
pub fn links(cf: &ClusterFile, logs: &[NodeLog]) -> Vec<Link> {
    let Some(r) = &cf.regions else { return Vec::new() };
    let region = cf.node_regions();
    let least = shortest(&r.latency_ms);
    let mut sent: HashMap<(u64, u64), u64> = HashMap::new();
    for l in logs {
        for (at, o) in &l.obs {
            if let Some(id) = message(&o["Multicast"]) {
                sent.entry(id).or_insert(*at);
            }
        }
    }
    let mut delays: BTreeMap<(usize, usize), Vec<f64>> = BTreeMap::new();
    for l in logs.iter().filter(|l| l.node < region.len()) {
        for (at, o) in &l.obs {
            let Some((origin, seq)) = message(&o["Delivered"]) else { continue };
            let (Some(t0), Some(&from)) = (sent.get(&(origin, seq)), region.get(origin as usize)) else {
                continue;
            };
            if origin as usize != l.node {
                let ms = at.saturating_sub(*t0) as f64 / 1e6;
                delays.entry((from, region[l.node])).or_default().push(ms);
            }
        }
    }
    delays
        .into_iter()
        .map(|((a, b), mut ms)| {
            ms.sort_by(f64::total_cmp);
            Link {
                from: r.names[a].clone(),
                to: r.names[b].clone(),
                model_ms: least[a][b],
                min_ms: ms[0],
                p50_ms: ms[ms.len() / 2],
                deliveries: ms.len(),
            }
        })
        .collect()
}

/// A multicast message's `(origin, seq)` in an observation's JSON.
fn message(v: &Value) -> Option<(u64, u64)> {
    Some((v["id"]["origin"].as_u64()?, v["id"]["seq"].as_u64()?))
}

/// `agora cluster status` of a multicast: 0 if no property judged is violated, every
/// delivery took at least the model's latency, and no peer ended with an error; 1 otherwise.
pub fn status(
    docker: &Docker,
    name: &str,
    cs: &[Container],
    cf: &ClusterFile,
    json: bool,
) -> Result<i32, UserError> {
    let nodes = cf.nodes.len();
    let logs = history::read(docker, cs)?;
    let ended = cs.len() == nodes && cs.iter().all(|c| c.state == "exited");
    let failed: Vec<usize> =
        cs.iter().filter(|c| c.state == "exited" && c.exit_code != 0).map(|c| c.node).collect();
    let run = if ended && failed.is_empty() { Run::Ended } else { Run::Going };
    let summary = history::judge(cf, &logs, "agora cluster status", run)?;
    let links = links(cf, &logs);
    let slow_enough = links.iter().all(|l| l.min_ms >= l.model_ms);
    let count = |l: &NodeLog, key: &str| l.obs.iter().filter(|(_, o)| o.get(key).is_some()).count();
    let region = |n: usize| cf.nodes.get(n).and_then(|e| e.region.clone()).unwrap_or_default();
    if json {
        let peers: Vec<Value> = logs
            .iter()
            .map(|l| {
                serde_json::json!({
                    "node": l.node, "region": region(l.node), "runs": l.runs.len(),
                    "multicasts": count(l, "Multicast"), "delivered": count(l, "Delivered"),
                })
            })
            .collect();
        let v = serde_json::json!({
            "cluster": name, "system": "multicast", "order": cf.protocol, "nodes": nodes,
            "containers": cs, "peers": peers, "ended": ended, "failed": failed,
            "links": links, "latency_applied": slow_enough, "checks": summary,
        });
        println!("{v}");
    } else {
        println!("cluster {name}: multicast ({}), {nodes} peers, {} container(s)", cf.protocol, cs.len());
        println!(
            "{:<5} {:<22} {:<16} {:<16} {:>5} {:>10} {:>10}",
            "node", "container", "address", "region", "runs", "multicasts", "delivered"
        );
        for (c, l) in cs.iter().zip(&logs) {
            let ip = c.place();
            println!(
                "{:<5} {:<22} {ip:<16} {:<16} {:>5} {:>10} {:>10}",
                c.node,
                status::state(c),
                region(c.node),
                l.runs.len(),
                count(l, "Multicast"),
                count(l, "Delivered")
            );
        }
        println!("latency  each delivery's delay after its multicast, against the model's least (ms):");
        println!(
            "  {:<16} {:<16} {:>8} {:>8} {:>8} {:>10}",
            "from", "to", "model", "min", "p50", "deliveries"
        );
        for l in &links {
            println!(
                "  {:<16} {:<16} {:>8.1} {:>8.1} {:>8.1} {:>10}",
                l.from, l.to, l.model_ms, l.min_ms, l.p50_ms, l.deliveries
            );
        }
        match (links.is_empty(), slow_enough) {
            (true, _) => println!("  latency-applied          not judged: no delivery yet"),
            (false, true) => {
                println!("  latency-applied          ok: no delivery came sooner than the model allows")
            }
            (false, false) => {
                println!("  latency-applied          VIOLATED: a delivery came sooner than the model allows")
            }
        }
        let judged =
            if run == Run::Ended { "the whole run (every peer has ended)" } else { "the history so far" };
        println!("checks  the {} checker on {judged}:", cf.protocol);
        for line in history::verdict_lines(&summary) {
            println!("  {line}");
        }
        if !failed.is_empty() {
            println!("failed  node(s) {failed:?} ended with an error (`docker logs`)");
        }
    }
    Ok(i32::from(!(summary.violations.is_empty() && slow_enough && failed.is_empty())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_latency_between_two_regions_may_go_through_a_third() {
        let d = shortest(&[vec![0.5, 10.0, 50.0], vec![10.0, 0.5, 15.0], vec![50.0, 15.0, 0.5]]);
        assert_eq!(d[0][2], 25.0, "through region 1");
        assert_eq!(d[1][2], 15.0);
        assert_eq!(d[0][0], 0.5);
    }

    #[test]
    fn a_delivery_is_measured_from_its_multicast_by_the_regions_of_sender_and_receiver() {
        let cf = ClusterFile::parse(
            "cluster = \"m\"\nprotocol = \"total-lamport\"\nsecret = \"00\"\n\
             [regions]\nnames = [\"a\", \"b\"]\nlatency_ms = [[0.5, 40.0], [40.0, 0.5]]\n\
             [[node]]\nid = 0\naddr = \"n0:7000\"\nregion = \"a\"\n\
             [[node]]\nid = 1\naddr = \"n1:7000\"\nregion = \"b\"\n",
        )
        .unwrap();
        let log = |node: usize, lines: &[(u64, &str)]| {
            let mut text = format!("event {{\"node\":{node},\"at\":0,\"listening\":\"x\"}}\n");
            for (at, o) in lines {
                text.push_str(&format!("event {{\"node\":{node},\"at\":{at},\"obs\":{o}}}\n"));
            }
            NodeLog::parse(node, &text)
        };
        let m = "{\"Multicast\":{\"id\":{\"origin\":0,\"seq\":0},\"past\":[0,0]}}";
        let d = "{\"Delivered\":{\"id\":{\"origin\":0,\"seq\":0}}}";
        let logs = [log(0, &[(1_000_000, m), (1_100_000, d)]), log(1, &[(43_000_000, d)])];
        let l = links(&cf, &logs);
        assert_eq!(l.len(), 1, "the sender's own delivery is not a link's: {l:?}");
        assert_eq!((l[0].from.as_str(), l[0].to.as_str()), ("a", "b"));
        assert_eq!((l[0].model_ms, l[0].min_ms, l[0].deliveries), (40.0, 42.0, 1));
    }
}
