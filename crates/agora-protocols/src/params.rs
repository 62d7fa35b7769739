//! One parameter schema for every protocol.
//!
//! A parameter is declared once, here, as a [`Param`]: its name, its help text and the values
//! it takes. A protocol lists the parameters it reads, each with its own default, as a slice of
//! [`Spec`]s, and builds its setup from a [`Resolved`] set of values (see
//! [`crate::registry::FromParams`]). Everything else derives from that: the command line's
//! flags (a parameter `timeout_ms` is the flag `--timeout-ms`), the `[params]` table of a
//! cluster file, the sweeps of `agora complexity` and `agora multicast`, the help of
//! `agora protocols`. A value is checked against its kind when it is given, whoever gives
//! it; what depends on other values (a node id below the number of nodes) is checked by the
//! protocol when it resolves them.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Most nodes of a simulated cluster.
pub const MAX_NODES: u64 = 1_000_000;
/// Most voters of a synthetic roll: twice the 1M-ballot benchmark, whose replicas peak near
/// 1.9 GiB (docs/benchmarks.md); memory grows with the roll.
pub const MAX_VOTERS: u64 = 2_000_000;
/// Shortest protocol timer: 1 µs. Longest: one hour.
pub const MIN_TIMER_MS: f64 = 0.001;
/// Longest protocol timer, and longest mean interval between a workload's operations.
pub const MAX_TIMER_MS: f64 = 3.6e6;

/// The values a parameter takes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// A whole number in `min..=max`.
    Count {
        /// The smallest value.
        min: u64,
        /// The largest value.
        max: u64,
    },
    /// A finite number in `min..=max`.
    Real {
        /// The smallest value (excluded when `min_open`).
        min: f64,
        /// The largest value.
        max: f64,
        /// Whether `min` itself is excluded.
        min_open: bool,
        /// What follows the number in messages (` ms`).
        unit: &'static str,
    },
    /// Text the protocol reads itself (a topology, a scenario, a variant).
    Text,
    /// Node ids, comma-separated.
    Nodes,
}

/// A parameter's value.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Value {
    /// Of a [`Kind::Count`].
    Count(u64),
    /// Of a [`Kind::Real`].
    Real(f64),
    /// Of a [`Kind::Text`].
    Text(Cow<'static, str>),
    /// Of a [`Kind::Nodes`].
    Nodes(Cow<'static, [u32]>),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Count(v) => write!(f, "{v}"),
            Value::Real(v) => write!(f, "{v}"),
            Value::Text(v) => f.write_str(v),
            Value::Nodes(v) => {
                let ids: Vec<String> = v.iter().map(u32::to_string).collect();
                f.write_str(&ids.join(","))
            }
        }
    }
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Count(v)
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Count(v.into())
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Real(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(Cow::Owned(v.to_string()))
    }
}
impl From<Vec<u32>> for Value {
    fn from(v: Vec<u32>) -> Self {
        Value::Nodes(Cow::Owned(v))
    }
}

/// A parameter: declared once, read by the protocols that list it.
#[derive(Debug, PartialEq)]
pub struct Param {
    /// Its name in snake case: `timeout_ms` (the flag `--timeout-ms`, the key `timeout_ms`).
    pub name: &'static str,
    /// One or two sentences for help texts.
    pub help: &'static str,
    /// The values it takes.
    pub kind: Kind,
}

impl Param {
    /// `text` (a flag's argument, a file's value written out) as a value of this parameter.
    pub fn parse(&self, text: &str) -> Result<Value, String> {
        let t = text.trim();
        let value = match self.kind {
            Kind::Count { .. } => {
                Value::Count(t.parse().map_err(|_| format!("`{t}` is not a whole number"))?)
            }
            Kind::Real { .. } => {
                let v: f64 = t.parse().map_err(|_| format!("`{t}` is not a number"))?;
                Value::Real(v)
            }
            Kind::Text => Value::Text(Cow::Owned(text.to_string())),
            Kind::Nodes => Value::Nodes(Cow::Owned(
                t.split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| s.trim().parse().map_err(|_| format!("`{}` is not a node id", s.trim())))
                    .collect::<Result<_, _>>()?,
            )),
        };
        self.check(&value)?;
        Ok(value)
    }

    /// Whether `value` is of this parameter's kind and range; the error names the range.
    pub fn check(&self, value: &Value) -> Result<(), String> {
        match (self.kind, value) {
            (Kind::Count { min, max }, Value::Count(v)) if !(min..=max).contains(v) => {
                Err(format!("{v} is not in {min}..={max}"))
            }
            (Kind::Real { min, max, min_open, unit }, Value::Real(v)) => {
                let above = if min_open { *v > min } else { *v >= min };
                if v.is_finite() && above && *v <= max {
                    Ok(())
                } else {
                    let open = if min_open { "(" } else { "[" };
                    Err(format!("{v} is not in {open}{min}, {max}]{unit}"))
                }
            }
            (Kind::Nodes, Value::Nodes(ids)) => match ids.iter().find(|id| u64::from(**id) >= MAX_NODES) {
                Some(id) => Err(format!("{id} is not a node id")),
                None => Ok(()),
            },
            (Kind::Count { .. }, Value::Count(_)) | (Kind::Text, Value::Text(_)) => Ok(()),
            (kind, value) => Err(format!("`{value}` is not a value of a {kind:?} parameter")),
        }
    }

    /// The kind and range, as help texts quote it: `[1..=1000000]`.
    pub fn range(&self) -> String {
        match self.kind {
            Kind::Count { min, max } => format!("[{min}..={max}]"),
            Kind::Real { min, max, min_open: true, .. } => format!("({min}..={max}]"),
            Kind::Real { min, max, .. } => format!("[{min}..={max}]"),
            Kind::Text | Kind::Nodes => String::new(),
        }
    }
}

/// A parameter as one protocol reads it: with that protocol's default, or none (the protocol
/// decides what its absence means).
#[derive(Debug)]
pub struct Spec {
    /// The parameter.
    pub param: &'static Param,
    /// Its value when none is given.
    pub default: Option<Value>,
}

impl Spec {
    /// A parameter with a default.
    pub const fn new(param: &'static Param, default: Value) -> Spec {
        Spec { param, default: Some(default) }
    }
    /// A parameter whose absence the protocol reads as "not set".
    pub const fn optional(param: &'static Param) -> Spec {
        Spec { param, default: None }
    }
}

/// A whole-number default.
pub const fn count(v: u64) -> Value {
    Value::Count(v)
}
/// A real-number default.
pub const fn real(v: f64) -> Value {
    Value::Real(v)
}
/// A text default.
pub const fn text(v: &'static str) -> Value {
    Value::Text(Cow::Borrowed(v))
}
/// An empty list of node ids.
pub const fn no_nodes() -> Value {
    Value::Nodes(Cow::Borrowed(&[]))
}

const fn count_kind(min: u64, max: u64) -> Kind {
    Kind::Count { min, max }
}

/// A protocol timer in milliseconds.
const TIMER: Kind = Kind::Real { min: MIN_TIMER_MS, max: MAX_TIMER_MS, min_open: false, unit: " ms" };
/// A probability.
const PROBABILITY: Kind = Kind::Real { min: 0.0, max: 1.0, min_open: false, unit: " (a probability)" };

/// The topology of neighbour-to-neighbour protocols.
pub static TOPOLOGY: Param = Param {
    name: "topology",
    help: "Topology of neighbour-to-neighbour protocols: complete, ring, grid or regular:K.",
    kind: Kind::Text,
};
/// The node that starts a broadcast.
pub static ORIGIN: Param = Param {
    name: "origin",
    help: "The node that starts a broadcast (a node id, below the number of nodes).",
    kind: count_kind(0, MAX_NODES - 1),
};
/// A deliberately broken variant.
pub static VARIANT: Param = Param {
    name: "variant",
    help: "A deliberately broken variant (e.g. flood's `no-dedup`) to watch the checker catch it.",
    kind: Kind::Text,
};
/// The links under an algorithm that assumes reliable FIFO ones.
pub static LINKS: Param = Param {
    name: "links",
    help: "Links under an algorithm that assumes reliable FIFO ones (lamport-mutex): reliable (the default: \
           sequence numbers, acknowledgements and retransmission, as over TCP) or raw (the network's faults \
           reach the algorithm).",
    kind: Kind::Text,
};
/// Messages per sender, or events per process.
pub static MSGS: Param = Param {
    name: "msgs",
    help:
        "Messages per stream or per multicast peer, operations per Raft client, or events per process of a \
           random clock scenario.",
    kind: count_kind(0, 10_000_000),
};
/// Messages in flight.
pub static WINDOW: Param = Param {
    name: "window",
    help: "Messages in flight per link (stream), operations in flight per client (raft), ballots in flight \
           per citizen (election), buys in flight per buyer (market, at most 1024).",
    kind: count_kind(1, 1_000_000),
};
/// Participants that vote no.
pub static NO_VOTES: Param = Param {
    name: "no_votes",
    help: "Participants that vote no, comma-separated node ids.",
    kind: Kind::Nodes,
};
/// The protocol's timeout.
pub static TIMEOUT_MS: Param = Param {
    name: "timeout_ms",
    help: "Protocol timeout in milliseconds: votes, retransmissions, failure detection.",
    kind: TIMER,
};
/// Critical-section entries or requests per node.
pub static REQUESTS: Param = Param {
    name: "requests",
    help: "Critical-section entries per node (mutual exclusion), requests per client (central).",
    kind: count_kind(0, 1_000_000),
};
/// Gossip fanout.
pub static FANOUT: Param =
    Param { name: "fanout", help: "Gossip fanout: peers told per round.", kind: count_kind(1, 1_000_000) };
/// The node that starts an election or holds the first token.
pub static START: Param = Param {
    name: "start",
    help: "The node that starts an election or holds the first token.",
    kind: count_kind(0, MAX_NODES - 1),
};
/// Rounds of the ring token.
pub static ROUNDS: Param =
    Param { name: "rounds", help: "Rounds of the ring token.", kind: count_kind(0, 1_000_000) };
/// A logical-clock scenario.
pub static SCENARIO: Param = Param {
    name: "scenario",
    help: "Logical clocks: `seed` (the seed report's example), `random` (drawn from the seed, `msgs` events per \
           process) or a scenario such as 'PI MS0 MR1; MR0 MS1'. Market: test-case-1, test-case-2, \
           test-case-3 (the report's roles), experiment (the report's measurement: 3 buyers, 1 seller, peer 4 \
           trades) or normal (roles drawn from the seed; the default unless a `market` file gives the roles).",
    kind: Kind::Text,
};
/// Mean time between a workload's operations.
pub static INTERVAL_MS: Param = Param {
    name: "interval_ms",
    help: "Mean time in milliseconds between a multicast peer's messages, a Raft client's operations or a buyer's buys, \
           exponentially distributed (0: a client submits all at once).",
    kind: Kind::Real { min: 0.0, max: MAX_TIMER_MS, min_open: false, unit: " ms" },
};
/// Raft clients.
pub static CLIENTS: Param =
    Param { name: "clients", help: "Client nodes, after the replicas.", kind: count_kind(0, 1_000) };
/// Share of reads.
pub static READS: Param =
    Param { name: "reads", help: "Probability that a client operation is a read.", kind: PROBABILITY };
/// Snapshot period.
pub static SNAPSHOT_EVERY: Param = Param {
    name: "snapshot_every",
    help: "Compact the log into a snapshot after this many applied entries.",
    kind: count_kind(1, 1_000_000_000),
};
/// Voters on the roll.
pub static VOTERS: Param =
    Param { name: "voters", help: "Voters on the synthetic roll.", kind: count_kind(1, MAX_VOTERS) };
/// Share of bad ballots.
pub static BAD_BALLOTS: Param = Param {
    name: "bad_ballots",
    help: "Share of bad ballots the citizens cast: forged, off the ballot, second votes.",
    kind: PROBABILITY,
};
/// Buys per buyer of the trading post.
pub static BUYS: Param = Param {
    name: "buys",
    help: "Buys each buyer of the market makes, one at a time unless --window says more.",
    kind: count_kind(0, 1_000_000),
};
/// The trader's chance of falling sick.
pub static SICK: Param = Param {
    name: "sick",
    help:
        "Chance per transaction that the market's trader falls sick (it leaves the post and recovers later).",
    kind: PROBABILITY,
};
/// Where the market keeps its ledger.
pub static LEDGER: Param = Param {
    name: "ledger",
    help:
        "Where the market keeps its ledger: `replicated` (a Raft log, the default) or `local` (the trader's \
           memory, the original design).",
    kind: Kind::Text,
};
/// Whom a market buyer's buys go to.
pub static MULTICAST: Param = Param {
    name: "multicast",
    help:
        "Whom a market buyer sends its buys to: `all` (every peer, with its Lamport timestamp, the report's \
           design and the default) or `trader` (the trader alone; its answers carry its Lamport clock).",
    kind: Kind::Text,
};
/// How long a sick trader stays away.
pub static RECOVER_MS: Param = Param {
    name: "recover_ms",
    help: "Milliseconds a sick trader stays away before it rejoins the market.",
    kind: TIMER,
};
/// A market file.
pub static MARKET: Param = Param {
    name: "market",
    help: "A market file (TOML, see examples/market.toml): goods, prices, the commission, the restock \
           amount and every peer's role, in place of a scenario; the nodes are its peers. In a cluster \
           file's [params], a relative path is relative to the cluster file.",
    kind: Kind::Text,
};

/// Members of the voting service.
pub static MEMBERS: Param = Param {
    name: "members",
    help: "Members of the voting service: simulated clients after the servers.",
    kind: count_kind(1, 1_000),
};
/// The voting service's session timeout.
pub static SESSION_MS: Param = Param {
    name: "session_ms",
    help: "Milliseconds without a sign of life after which the voting service fails a member's session.",
    kind: TIMER,
};

/// Every parameter, in the order help texts list them.
pub static ALL: &[&Param] = &[
    &TOPOLOGY,
    &ORIGIN,
    &VARIANT,
    &LINKS,
    &MSGS,
    &WINDOW,
    &NO_VOTES,
    &TIMEOUT_MS,
    &REQUESTS,
    &FANOUT,
    &START,
    &ROUNDS,
    &SCENARIO,
    &INTERVAL_MS,
    &CLIENTS,
    &READS,
    &SNAPSHOT_EVERY,
    &VOTERS,
    &BAD_BALLOTS,
    &BUYS,
    &SICK,
    &LEDGER,
    &MULTICAST,
    &RECOVER_MS,
    &MARKET,
    &MEMBERS,
    &SESSION_MS,
];

/// The parameter named `name`.
pub fn named(name: &str) -> Option<&'static Param> {
    ALL.iter().copied().find(|p| p.name == name)
}

/// A mistake in a protocol's name or parameters; the caller says it in its own words (a
/// flag `--origin` on the command line, a key `params.origin` in a file).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    /// No protocol has this name.
    #[error("unknown protocol `{0}`; known protocols: {known}", known = crate::registry::names())]
    UnknownProtocol(String),
    /// The protocol does not read this parameter.
    #[error("{param} is not a parameter of {protocol} (its parameters: {})", list(used))]
    NotUsed {
        /// The protocol.
        protocol: &'static str,
        /// The parameter given.
        param: &'static str,
        /// The parameters it reads.
        used: Vec<&'static str>,
    },
    /// A value the protocol cannot take. `param` is `nodes` for the number of nodes.
    #[error("{param}: {why}")]
    Invalid {
        /// The parameter at fault.
        param: &'static str,
        /// What is wrong, starting with the value where there is one.
        why: String,
    },
}

/// Names, comma-separated, or `none`.
pub fn list(names: &[&str]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

impl ParamError {
    /// An invalid value of `param`.
    pub fn invalid(param: &Param, why: impl Into<String>) -> ParamError {
        ParamError::Invalid { param: param.name, why: why.into() }
    }
    /// An invalid number of nodes.
    pub fn nodes(why: impl Into<String>) -> ParamError {
        ParamError::Invalid { param: "nodes", why: why.into() }
    }
}

/// The parameters given for a run: the number of nodes, the seed, and the values given
/// (the others take the protocol's defaults).
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// Nodes of the cluster (a Raft cluster's replicas; its clients come after them).
    pub nodes: usize,
    /// The run's master seed (random topologies and scenarios derive from it).
    pub seed: u64,
    given: BTreeMap<&'static str, Value>,
}

impl Params {
    /// `nodes` nodes, seed `seed`, no value given.
    pub fn new(nodes: usize, seed: u64) -> Params {
        Params { nodes, seed, given: BTreeMap::new() }
    }

    /// Gives `param` the value `value`, checked against its kind.
    pub fn set(&mut self, param: &'static Param, value: impl Into<Value>) -> Result<(), ParamError> {
        let value = value.into();
        param.check(&value).map_err(|why| ParamError::invalid(param, why))?;
        self.given.insert(param.name, value);
        Ok(())
    }

    /// With `param` set to `value`. For values written in code: a value out of its range is a
    /// bug in the caller, and panics.
    pub fn with(mut self, param: &'static Param, value: impl Into<Value>) -> Params {
        if let Err(e) = self.set(param, value) {
            panic!("{e}");
        }
        self
    }

    /// The values given, by parameter name.
    pub fn given(&self) -> impl Iterator<Item = (&'static str, &Value)> {
        self.given.iter().map(|(k, v)| (*k, v))
    }

    /// The values of `protocol`'s parameters: those given, and its defaults. A value given for a
    /// parameter the protocol does not read is an error.
    pub fn resolve(&self, protocol: &'static str, specs: &'static [Spec]) -> Result<Resolved, ParamError> {
        if let Some(param) = self.given.keys().find(|k| !specs.iter().any(|s| s.param.name == **k)) {
            let used = specs.iter().map(|s| s.param.name).collect();
            return Err(ParamError::NotUsed { protocol, param, used });
        }
        if self.nodes == 0 {
            return Err(ParamError::nodes("0: a cluster has at least one node"));
        }
        let mut values = BTreeMap::new();
        for s in specs {
            if let Some(v) = self.given.get(s.param.name).or(s.default.as_ref()) {
                values.insert(s.param.name, v.clone());
            }
        }
        Ok(Resolved { protocol, nodes: self.nodes, seed: self.seed, values })
    }

    /// These parameters with only the values `protocol` reads: for sweeps that set a value
    /// for whichever protocols use it.
    pub fn only_used_by(&self, specs: &[Spec]) -> Params {
        let mut p = Params::new(self.nodes, self.seed);
        for (k, v) in &self.given {
            if specs.iter().any(|s| s.param.name == *k) {
                p.given.insert(k, v.clone());
            }
        }
        p
    }
}

/// A protocol's parameters, every one with its value (given or default), for the protocol to
/// build its setup from. Reading a parameter the protocol did not declare is a bug in the
/// protocol, and panics (the registry's tests build every protocol).
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The protocol's name (some protocols share their setup: the order of a multicast).
    pub protocol: &'static str,
    /// Nodes of the cluster.
    pub nodes: usize,
    /// The run's master seed.
    pub seed: u64,
    values: BTreeMap<&'static str, Value>,
}

impl Resolved {
    fn value(&self, p: &Param) -> Option<&Value> {
        self.values.get(p.name)
    }

    fn required(&self, p: &Param) -> &Value {
        self.value(p).unwrap_or_else(|| panic!("{} reads `{}` with no default", self.protocol, p.name))
    }

    /// A whole number.
    pub fn count<T: TryFrom<u64>>(&self, p: &Param) -> T {
        match self.required(p) {
            Value::Count(v) => {
                T::try_from(*v).unwrap_or_else(|_| panic!("`{}`'s range fits its type", p.name))
            }
            v => panic!("`{}` = {v:?} is not a count", p.name),
        }
    }

    /// A whole number, if given or defaulted.
    pub fn optional_count(&self, p: &Param) -> Option<u64> {
        self.value(p).map(|_| self.count(p))
    }

    /// A real number.
    pub fn real(&self, p: &Param) -> f64 {
        match self.required(p) {
            Value::Real(v) => *v,
            v => panic!("`{}` = {v:?} is not a number", p.name),
        }
    }

    /// A number of milliseconds, as a duration.
    pub fn millis(&self, p: &Param) -> Duration {
        Duration::from_secs_f64(self.real(p) / 1e3)
    }

    /// Text, if given or defaulted.
    pub fn text(&self, p: &Param) -> Option<&str> {
        match self.value(p)? {
            Value::Text(v) => Some(v),
            v => panic!("`{}` = {v:?} is not text", p.name),
        }
    }

    /// A node id, below the number of nodes, if given or defaulted.
    pub fn node(&self, p: &Param) -> Result<Option<agora_core::NodeId>, ParamError> {
        match self.optional_count(p) {
            Some(id) if id >= self.nodes as u64 => {
                Err(ParamError::invalid(p, format!("{id} is not a node (nodes are 0..{})", self.nodes)))
            }
            id => Ok(id.map(|id| agora_core::NodeId(id as u32))),
        }
    }

    /// Node ids.
    pub fn node_list(&self, p: &Param) -> &[u32] {
        match self.required(p) {
            Value::Nodes(v) => v,
            v => panic!("`{}` = {v:?} is not a list of nodes", p.name),
        }
    }

    /// An error unless the protocol has at most `max` nodes; `what` names them in the message
    /// ("Raft replicas").
    pub fn at_most_nodes(&self, max: usize, what: &str) -> Result<(), ParamError> {
        if self.nodes > max {
            return Err(ParamError::nodes(format!(
                "{} is above its limit: at most {max} {what}",
                self.nodes
            )));
        }
        Ok(())
    }

    /// An error unless the protocol has at least `min` nodes.
    pub fn at_least_nodes(&self, min: usize, why: &str) -> Result<(), ParamError> {
        if self.nodes < min {
            return Err(ParamError::nodes(format!("{}: {} {why}", self.nodes, self.protocol)));
        }
        Ok(())
    }

    /// The variant named by [`VARIANT`], one of `known` (whose first is the correct protocol).
    pub fn variant(&self, known: &[&'static str]) -> Result<&'static str, ParamError> {
        match self.text(&VARIANT) {
            None => Ok(known[0]),
            Some(v) => known.iter().copied().find(|k| *k == v).ok_or_else(|| {
                ParamError::invalid(
                    &VARIANT,
                    format!("{} has no variant `{v}` (it has: {})", self.protocol, known.join(", ")),
                )
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_against_their_kind_and_range() {
        assert_eq!(WINDOW.parse("7"), Ok(Value::Count(7)));
        assert!(WINDOW.parse("0").unwrap_err().contains("1..=1000000"));
        assert!(WINDOW.parse("-1").unwrap_err().contains("whole number"));
        assert!(TIMEOUT_MS.parse("0").unwrap_err().contains("[0.001, 3600000] ms"));
        for bad in ["NaN", "inf", "1e300"] {
            assert!(TIMEOUT_MS.parse(bad).is_err(), "{bad}");
        }
        assert!(READS.parse("1.5").is_err());
        assert_eq!(NO_VOTES.parse("1, 3"), Ok(Value::Nodes(vec![1, 3].into())));
        assert!(NO_VOTES.parse("1,x").is_err());
        assert!(Params::new(3, 1).set(&WINDOW, 0.5).is_err(), "a real is not a count");
    }

    #[test]
    fn every_parameter_has_a_distinct_name() {
        for (i, p) in ALL.iter().enumerate() {
            assert!(ALL[..i].iter().all(|q| q.name != p.name), "{}", p.name);
            assert_eq!(named(p.name), Some(*p));
        }
    }

    static SPECS: &[Spec] = &[Spec::new(&WINDOW, count(4)), Spec::optional(&START)];

    #[test]
    fn resolving_takes_defaults_and_refuses_what_the_protocol_does_not_read() {
        let r = Params::new(3, 1).resolve("p", SPECS).unwrap();
        assert_eq!(r.count::<u32>(&WINDOW), 4);
        assert_eq!(r.node(&START), Ok(None));
        let r = Params::new(3, 1).with(&START, 2u32).with(&WINDOW, 9u32).resolve("p", SPECS).unwrap();
        assert_eq!((r.count::<u32>(&WINDOW), r.node(&START)), (9, Ok(Some(agora_core::NodeId(2)))));
        let r = Params::new(3, 1).with(&START, 3u32).resolve("p", SPECS).unwrap();
        assert!(r.node(&START).is_err());
        let e = Params::new(3, 1).with(&FANOUT, 2u32).resolve("p", SPECS).unwrap_err();
        assert_eq!(e.to_string(), "fanout is not a parameter of p (its parameters: window, start)");
        assert!(Params::new(0, 1).resolve("p", SPECS).is_err());
    }
}
