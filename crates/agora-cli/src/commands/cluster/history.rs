//! A cluster's history read back from its containers' logs, and its checker's verdict on it.
//!
//! A node run with `--events` writes every observation on stderr as it makes it, with its
//! time (`at`, Unix ns, one clock for every container of a machine), and one line each time
//! it starts. Docker keeps a container's log across its runs, so the history of a node that
//! was SIGKILLed holds all it observed before the kill: nothing a node reported is lost with
//! it. The protocol's checker judges the observations in time order, told of each restart
//! (`Crashed` after the earlier run's last line, `Restarted` at the new run's start), as
//! `agora up` judges the reports of local nodes. While the nodes still run, the properties
//! judged at a run's end are not judged: the verdict is on the history so far; once every
//! node has ended on its own (an election), they are.

use super::docker::Docker;
use super::status::Container;
use crate::cluster_file::ClusterFile;
use crate::error::UserError;
use agora_core::{Lifecycle, NodeId, Protocol, RunSummary, Setup};
use agora_net::Gathered;
use serde_json::Value;

/// What one node's log says.
#[derive(Clone, Debug, Default)]
pub struct NodeLog {
    /// The node's id.
    pub node: usize,
    /// When each of its runs began (Unix ns), in order.
    pub runs: Vec<u64>,
    /// `(Unix ns, observation)`, as the protocol serializes it, in log order.
    pub obs: Vec<(u64, Value)>,
    /// The log does not begin with a run's start: its beginning is gone (Docker rotates a
    /// container's log past its size limit), and with it part of the history.
    pub truncated: bool,
    /// While its container ran: the time up to which the log was whole when read ([`cut`]).
    pub whole_until: Option<u64>,
}

impl NodeLog {
    /// The `event {JSON}` lines of node `node`'s log; other lines are the node's own words.
    pub fn parse(node: usize, log: &str) -> NodeLog {
        let mut out = NodeLog { node, ..NodeLog::default() };
        for v in log.lines().filter_map(|l| l.strip_prefix("event ")?.parse::<Value>().ok()) {
            out.push(&v);
        }
        out
    }

    /// Adds the next `event` line of the log, its JSON `v`: a run's start or an observation.
    pub fn push(&mut self, v: &Value) {
        let Some(at) = v["at"].as_u64() else { return };
        if v.get("listening").is_some() {
            self.runs.push(at);
        } else if let Some(o) = v.get("obs") {
            self.truncated |= self.runs.is_empty();
            self.obs.push((at, o.clone()));
        }
    }

    /// The time of its last line, if it has one.
    pub fn last_line(&self) -> Option<u64> {
        self.obs.last().map(|(t, _)| *t).into_iter().chain(self.runs.last().copied()).max()
    }

    /// `(Unix ns, event)`: each run after the first is a crash (after the last line of the
    /// run before it) and a restart.
    fn lifecycle(&self) -> Vec<(u64, Lifecycle)> {
        let mut out = Vec::new();
        for w in self.runs.windows(2) {
            let last = self.obs.iter().map(|(t, _)| *t).filter(|t| (w[0]..w[1]).contains(t)).max();
            out.push((last.unwrap_or(w[0]), Lifecycle::Crashed));
            out.push((w[1], Lifecycle::Restarted));
        }
        out
    }
}

/// Every container's log, by node. `cs` is the containers as Docker saw them before this
/// reads their logs.
pub fn read(docker: &Docker, cs: &[Container]) -> Result<Vec<NodeLog>, UserError> {
    let mut logs = Vec::with_capacity(cs.len());
    for c in cs {
        let before = agora_net::clock::unix_ns();
        let mut log = NodeLog::parse(c.node, &docker.node_stderr(c)?);
        if !matches!(c.state.as_str(), "exited" | "dead" | "created") {
            log.whole_until = Some(log.last_line().unwrap_or(before));
        }
        logs.push(log);
    }
    Ok(logs)
}

/// Where the logs are cut for judging: the latest time up to which every one of them is
/// whole (`None`: every node had stopped, and every log is whole).
///
/// The logs are read one after another while the nodes run, and a node prints a step's
/// observations once the step's writes are durable, after stamping them: a log read at time
/// `r` may lack observations stamped before `r`. So a reply a node's log shows taken could
/// have been sent by a node whose log, read earlier, does not show it yet, and the checker
/// would call an acknowledged command lost. What a log shows is whole up to its last line's
/// time, since a node prints its lines in the order of their times: up to there, nothing of
/// that node is missing. A log still empty when read is whole up to the read's start (its
/// node had not yet said it listens, and stamps everything after that). A container that was
/// not running before its log was read had printed all it ever will up to its last run's
/// end, and holds no one back. The checker judges what every node did up to the cut; what
/// is later waits for the next reading. (Only the judging: what the logs say of trading
/// and leaders is taken whole.)
pub fn cut(logs: &[NodeLog]) -> Option<u64> {
    logs.iter().filter_map(|l| l.whole_until).min()
}

/// Whether the nodes whose logs are judged still run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Run {
    /// They run: the properties judged at a run's end are not judged.
    Going,
    /// Every node ended on its own, idle: the run's end is judged too.
    Ended,
}

/// The checker's verdict on the logs of a cluster of `cf`.
pub fn judge(cf: &ClusterFile, logs: &[NodeLog], reproduce: &str, run: Run) -> Result<RunSummary, UserError> {
    if let Some(l) = logs.iter().find(|l| l.truncated) {
        return Err(UserError(format!(
            "node {}'s log has lost its beginning (Docker rotated it past its size limit): the history \
             is not whole and is not judged",
            l.node
        )));
    }
    let params = cf.params()?;
    let end = match run {
        Run::Going => "running",
        Run::Ended => "idle",
    };
    let judge = Judge { logs, seed: cf.seed, reproduce, protocol: &cf.protocol, end };
    agora_protocols::dispatch(&cf.protocol, &params, judge)?
}

/// The logs, judged by a protocol's checker.
struct Judge<'a> {
    logs: &'a [NodeLog],
    seed: u64,
    reproduce: &'a str,
    protocol: &'a str,
    /// Why the run ended, as a summary spells it.
    end: &'a str,
}

impl agora_protocols::Driver for Judge<'_> {
    type Output = Result<RunSummary, UserError>;

    fn run<S: Setup>(self, setup: S) -> Self::Output {
        let nodes = setup.nodes();
        let until = cut(self.logs).unwrap_or(u64::MAX);
        let judged = |t: &u64| *t <= until;
        let start = self.logs.iter().filter_map(|l| l.runs.first()).min().copied().unwrap_or(0);
        let last = self
            .logs
            .iter()
            .filter_map(|l| l.obs.iter().map(|(t, _)| *t).rfind(judged))
            .max()
            .unwrap_or(start);
        let wall_ms = last.saturating_sub(start) as f64 / 1e6;
        let mut g: Gathered<<S::Node as Protocol>::Obs> = Gathered::new(nodes, self.end, wall_ms, 0.0, start);
        for log in self.logs.iter().filter(|l| l.node < nodes) {
            let id = NodeId(log.node as u32);
            g.reported[log.node] = log.runs.first().is_some_and(judged);
            for (at, v) in log.obs.iter().filter(|(t, _)| judged(t)) {
                let o = serde_json::from_value(v.clone()).map_err(|e| {
                    UserError(format!(
                        "node {}: its log holds what no {} node observes: {e}",
                        log.node, self.protocol
                    ))
                })?;
                g.observations.push((*at, id, o));
            }
            g.lifecycle
                .extend(log.lifecycle().into_iter().filter(|(t, _)| judged(t)).map(|(t, e)| (t, id, e)));
        }
        Ok(agora_net::summarize(&setup, self.seed, g, self.reproduce))
    }
}

/// The verdict in lines: each property judged (`ok`, or its first violation), each one not
/// judged with why.
pub fn verdict_lines(s: &RunSummary) -> Vec<String> {
    let mut out: Vec<String> = s
        .properties
        .iter()
        .map(|p| match s.violations.iter().find(|v| v.property == *p) {
            Some(v) => format!("{p:<24} VIOLATED at {:.0} ms: {}", v.at_ms, v.detail),
            None => format!("{p:<24} ok"),
        })
        .collect();
    out.extend(s.not_judged.iter().map(|n| format!("{:<24} not judged: {}", n.property, n.reason)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_gives_each_run_and_each_observation_with_its_time() {
        let log = "agora: a line of its own\n\
                   event {\"node\":2,\"at\":100,\"listening\":\"0.0.0.0:7000\",\"pid\":1}\n\
                   event {\"node\":2,\"at\":150,\"obs\":\"Left\"}\n\
                   event {\"node\":2,\"at\":170,\"obs\":{\"Sick\":null}}\n\
                   event {\"node\":2,\"obs\":\"no time: skipped\"}\n\
                   event {\"node\":2,\"at\":400,\"listening\":\"0.0.0.0:7000\",\"pid\":1}\n\
                   event {not json}\n\
                   event {\"node\":2,\"at\":450,\"obs\":\"Recovered\"}\n";
        let l = NodeLog::parse(2, log);
        assert_eq!(l.runs, [100, 400]);
        assert_eq!(l.obs.iter().map(|(t, _)| *t).collect::<Vec<_>>(), [150, 170, 450]);
        assert_eq!(l.obs[0].1, "Left");
        assert_eq!(l.lifecycle(), [(170, Lifecycle::Crashed), (400, Lifecycle::Restarted)]);
        assert!(!l.truncated);
        let rotated = NodeLog::parse(2, &log[log.find("event {\"node\":2,\"at\":150").unwrap()..]);
        assert!(rotated.truncated, "an observation before any run: the log lost its beginning");
        let once = NodeLog::parse(0, "event {\"node\":0,\"at\":5,\"listening\":\"x\"}\n");
        assert!(once.lifecycle().is_empty(), "one run: no crash");
    }

    /// Node 0's log, read first while it ran, ends at 300; node 1's, read later, goes on to
    /// 500, and node 2's, stopped, to 900. Whatever happened after 300 may be missing from
    /// node 0's log, so nothing after 300 is judged.
    #[test]
    fn the_logs_are_cut_where_every_running_node_s_log_is_whole() {
        let line = |n: usize, at: u64| format!("event {{\"node\":{n},\"at\":{at},\"obs\":\"Left\"}}\n");
        let start = |n: usize, at: u64| format!("event {{\"node\":{n},\"at\":{at},\"listening\":\"x\"}}\n");
        let mut logs = vec![
            NodeLog::parse(0, &format!("{}{}{}", start(0, 100), line(0, 200), line(0, 300))),
            NodeLog::parse(1, &format!("{}{}{}{}", start(1, 100), line(1, 250), line(1, 450), start(1, 500))),
            NodeLog::parse(2, &format!("{}{}{}", start(2, 100), line(2, 280), line(2, 900))),
        ];
        assert_eq!(cut(&logs), None, "no running node: every log is whole");
        logs[0].whole_until = logs[0].last_line();
        logs[1].whole_until = logs[1].last_line();
        assert_eq!((logs[0].whole_until, logs[1].whole_until), (Some(300), Some(500)));
        assert_eq!(cut(&logs), Some(300));
        // A running node whose log was empty when read: whole up to the read's start.
        let empty = NodeLog { whole_until: Some(150), ..NodeLog::parse(3, "") };
        logs.push(empty);
        assert_eq!(cut(&logs), Some(150));
    }

    /// A cluster file of 3 Raft replicas.
    fn raft_cluster() -> ClusterFile {
        let nodes: String =
            (0..3).map(|i| format!("[[node]]\nid = {i}\naddr = \"127.0.0.1:{}\"\n", i + 1)).collect();
        let secret = "ab".repeat(32);
        ClusterFile::parse(&format!("cluster = \"t\"\nprotocol = \"raft\"\nsecret = \"{secret}\"\n{nodes}"))
            .unwrap()
    }

    /// The race the cut is for: replica 0's log, read first, ends before it applied entry 1;
    /// the client on node 1, read later, took the answer. Judged whole, the answer is of a
    /// command no report shows taking effect: `acked-applied` is undecided (the leader may
    /// have been killed before reporting, and another replica may yet); judged up to the cut,
    /// everything is judged and nothing is wrong.
    #[test]
    fn an_answer_read_before_its_apply_is_not_judged_lost() {
        let cf = raft_cluster();
        let start = |n: usize| format!("event {{\"node\":{n},\"at\":100,\"listening\":\"x\"}}\n");
        let acked = "event {\"node\":1,\"at\":350,\"obs\":{\"Acked\":{\"session\":5,\"seq\":0,\"pos\":{\"index\":1,\"offset\":0}}}}\n";
        let mut logs = vec![
            NodeLog::parse(0, &start(0)),
            NodeLog::parse(1, &format!("{}{acked}", start(1))),
            NodeLog::parse(2, &start(2)),
        ];
        let verdict = |logs: &[NodeLog]| {
            let s = judge(&cf, logs, "r", Run::Going).unwrap();
            let open = s.not_judged.iter().filter(|n| n.property == "acked-applied");
            (s.violations.len(), open.map(|n| n.reason.clone()).collect::<Vec<_>>())
        };
        let undecided = agora_core::NotJudged::Undecided.to_string();
        assert_eq!(verdict(&logs), (0, vec![undecided]), "judged whole");
        logs[0].whole_until = Some(300);
        logs[1].whole_until = Some(350);
        assert_eq!(verdict(&logs), (0, vec![]), "judged up to 300");
    }

    /// A history of nodes that still run has no end: replica 2 has not applied the entry the
    /// leader acknowledged, long after the start, and may yet. Judged as running, liveness is
    /// not judged; judged as ended, it is violated.
    #[test]
    fn what_must_hold_eventually_is_not_judged_while_the_nodes_run() {
        let cf = raft_cluster();
        let line =
            |n: usize, at: u64, obs: &str| format!("event {{\"node\":{n},\"at\":{at},\"obs\":{obs}}}\n");
        let start = |n: usize| format!("event {{\"node\":{n},\"at\":100,\"listening\":\"x\"}}\n");
        let applied = "{\"Applied\":{\"index\":1,\"chain\":7,\"fresh\":[[5,0]],\"results\":0}}";
        let acked = "{\"Acked\":{\"session\":5,\"seq\":0,\"pos\":{\"index\":1,\"offset\":0}}}";
        let ten_minutes = 600_000_000_000;
        let logs = vec![
            NodeLog::parse(
                0,
                &[
                    start(0),
                    line(0, 200, "{\"Leader\":{\"term\":1}}"),
                    line(0, 300, applied),
                    line(0, 350, acked),
                    line(0, ten_minutes, "{\"Leader\":{\"term\":2}}"),
                ]
                .concat(),
            ),
            NodeLog::parse(1, &[start(1), line(1, 400, applied)].concat()),
            NodeLog::parse(2, &start(2)),
        ];
        let going = judge(&cf, &logs, "r", Run::Going).unwrap();
        assert!(going.violations.is_empty(), "{:?}", going.violations);
        let why = going.not_judged.iter().find(|n| n.property == "liveness").map(|n| n.reason.as_str());
        assert_eq!(why, Some("the nodes still run"));
        let ended = judge(&cf, &logs, "r", Run::Ended).unwrap();
        let broken: Vec<&str> = ended.violations.iter().map(|v| v.property.as_str()).collect();
        assert_eq!(broken, ["liveness"], "replica 2 never applied entry 1");
    }
}
