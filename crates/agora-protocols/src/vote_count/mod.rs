//! `election`: the federated election count — citizens vote through regional gateways, a
//! coordinator stamps phases and forwards ballots to a legislature of Raft replicas that
//! verify them, drop duplicates and log them; results are published once a majority of
//! replicas agrees on the tally.
//!
//! **Roles** (node ids in this order):
//! - *legislature* `0..R` (`--nodes R`, 3 by default, any odd number): [`Replica`]s of the
//!   Raft log whose state machine is the [`Tally`]. Every replica verifies every ballot and
//!   computes the tally from the committed log, so the count survives any minority of them.
//! - *coordinators* (2): **stateless and restartable, and two of them**: each is a Raft
//!   client with a session of its own (a restarted one opens a new session), stamps its view
//!   of the phase on what it forwards, batches ballots into requests, answers the regions,
//!   drives the phases and publishes. Whatever a coordinator knew is either in the log or
//!   re-sent by the regions, so either coordinator (or both, or one after a restart) can do
//!   the work: phase changes and publication are idempotent commands.
//! - *regions* (5, one per group of states): gateways with no durable state. A region
//!   forwards its citizens' ballots to its coordinator, fails over to the other when no answer
//!   comes, and relays answers back.
//! - *citizens* (one load generator per region, casting for that region's voters): cast each
//!   ballot, retry the same ballot until it gets a final answer, and check their receipts.
//!
//! **The election** follows the phases setup → open → closed → tallied → published, each a
//! command in the log; a ballot is counted only while `open`. A ballot carries the voter's id,
//! state, option and credential; the credential is a keyed BLAKE3 hash of (election, voter,
//! state) under the election authority's key, so a replica verifies it without a copy of the
//! roll, and a credential is valid for one voter in one state. One ballot per voter: the same
//! ballot again gets the same receipt; a different one is rejected (`already-voted`). Every
//! rejection carries a [`Reason`]. A [`Receipt`] (voter, state, option, ballot hash, leaf
//! number, log position) is sent only once the ballot is committed and applied; it is also
//! the ballot's row on the public bulletin board, and the Merkle leaf is the hash of every one
//! of its fields ([`Receipt::leaf_hash`]), so no column of the board can change without
//! changing the root. The tally digest ([`tally_digest`]) covers the options, the per-state
//! counts, the number counted and the Merkle root over every counted ballot in log order;
//! anyone can recompute all of it from the board ([`Audit`]). Publication needs a
//! majority of replicas to report the same digest, and the `published` command is refused by
//! any replica whose own digest differs. Results reach every region and every citizen from
//! the coordinators, resent until acknowledged.
//!
//! While a majority of the legislature is down, a coordinator answers ballots it could not
//! commit for a while with `unavailable`: not counted yet, retry. The citizen retries; the
//! ballot is never lost, and if it did get in, the retry returns its receipt.

pub mod checker;
pub mod node;
pub mod obs;
mod params;
pub mod settings;
pub mod setup;
pub mod states;

use crate::raft::{CowVec, Pos, StateMachine};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The default election: three options, the 50 states in their default regions, `voters`
/// voters, and a key derived from `seed` (a demo; a real authority draws its key at random
/// and keeps it from everyone but the replicas).
pub fn default_spec(voters: u64, seed: u64) -> Spec {
    let mut key = [0u8; 32];
    key.copy_from_slice(
        blake3::hash(&[b"agora election demo key".as_slice(), &seed.to_le_bytes()].concat()).as_bytes(),
    );
    Spec {
        id: "agora-demo".into(),
        options: vec!["Alder".into(), "Birch".into(), "Cedar".into()],
        regions: states::DEFAULT_REGIONS.iter().map(|r| r.to_string()).collect(),
        state_region: states::STATES.iter().map(|s| s.region).collect(),
        voters,
        key,
    }
}

/// Checks an election's settings; the error is one line for the user.
pub fn validate(s: &settings::Settings) -> Result<(), String> {
    let spec = &s.spec;
    if s.replicas == 0 || s.replicas > 15 {
        return Err(format!("election: {} legislature replicas; 1 to 15", s.replicas));
    }
    if spec.voters == 0 || spec.voters > 100_000_000 {
        return Err(format!("election: {} voters; 1 to 100000000", spec.voters));
    }
    if spec.options.is_empty() || spec.options.len() > 16 {
        return Err(format!("election: {} options on the ballot; 1 to 16", spec.options.len()));
    }
    if spec.regions.is_empty() || spec.regions.len() > 50 {
        return Err(format!("election: {} regions; 1 to 50", spec.regions.len()));
    }
    if spec.state_region.len() != states::STATES.len()
        || spec.state_region.iter().any(|r| *r as usize >= spec.regions.len())
    {
        return Err("election: every state needs one of the regions".into());
    }
    if !(0.0..=0.5).contains(&s.bad) {
        return Err(format!("a share of bad ballots of {}: between 0 and 0.5", s.bad));
    }
    if let Some(roll) = &s.roll {
        if roll.len() as u64 != spec.voters {
            return Err(format!("the roll has {} voters, the election {}", roll.len(), spec.voters));
        }
    }
    if s.window == 0 {
        return Err("a window of 0 ballots: at least 1".into());
    }
    Ok(())
}

/// A 128-bit hash (BLAKE3, truncated).
pub type Hash = [u8; 16];

/// `h` as lowercase hexadecimal digits, two per byte.
pub fn hex(h: &[u8]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

fn h16(bytes: &[u8]) -> Hash {
    let mut out = [0u8; 16];
    out.copy_from_slice(&blake3::hash(bytes).as_bytes()[..16]);
    out
}

/// The phases of an election, in order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Phase {
    /// The election is being installed; no ballot is counted yet.
    #[default]
    Setup,
    /// Ballots are counted.
    Open,
    /// No more ballots are counted: the count is final.
    Closed,
    /// The tally's Merkle root and digest are computed.
    Tallied,
    /// A majority of replicas agreed on the digest and the results are public.
    Published,
}

impl Phase {
    /// The phase after this one; `None` after `Published`.
    pub fn next(self) -> Option<Phase> {
        match self {
            Phase::Setup => Some(Phase::Open),
            Phase::Open => Some(Phase::Closed),
            Phase::Closed => Some(Phase::Tallied),
            Phase::Tallied => Some(Phase::Published),
            Phase::Published => None,
        }
    }

    /// The phase's name, as observations and tables print it.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Setup => "setup",
            Phase::Open => "open",
            Phase::Closed => "closed",
            Phase::Tallied => "tallied",
            Phase::Published => "published",
        }
    }
}

/// What an election is: its id, the options on the ballot, the regions and which states each
/// covers, the size of the roll, and the authority's key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    /// The election's id, covered by every credential, ballot hash and leaf.
    pub id: String,
    /// The options on the ballot, numbered from 0.
    pub options: Vec<String>,
    /// The regions' names, numbered from 0.
    pub regions: Vec<String>,
    /// The region of each state, in [`states::STATES`] order.
    pub state_region: Vec<u8>,
    /// Voters are numbered `0..voters`.
    pub voters: u64,
    /// The election authority's key: it makes the credentials, so only the replicas may hold it.
    pub key: [u8; 32],
}

impl Spec {
    /// The credential of `voter` in `state`.
    pub fn credential(&self, voter: u64, state: u8) -> Hash {
        let mut msg = Vec::with_capacity(self.id.len() + 16);
        msg.extend_from_slice(b"credential\0");
        msg.extend_from_slice(self.id.as_bytes());
        msg.extend_from_slice(&voter.to_le_bytes());
        msg.push(state);
        let mut out = [0u8; 16];
        out.copy_from_slice(&blake3::keyed_hash(&self.key, &msg).as_bytes()[..16]);
        out
    }

    /// The state of voter `v` in a synthetic roll: voters spread over the states in
    /// proportion to their House seats.
    pub fn synthetic_state(v: u64) -> u8 {
        let k = v % states::SEATS_TOTAL;
        let mut acc = 0;
        for (i, s) in states::STATES.iter().enumerate() {
            acc += s.seats as u64;
            if k < acc {
                return i as u8;
            }
        }
        unreachable!("seats sum to SEATS_TOTAL")
    }

    /// A digest of the spec, for the nodes of one run to agree on.
    pub fn digest(&self) -> Hash {
        h16(&agora_core::wire::encode(self))
    }
}

/// A ballot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ballot {
    /// The voter's number on the roll, in `0..voters`.
    pub voter: u64,
    /// The voter's state, in [`states::STATES`] order.
    pub state: u8,
    /// The option chosen, numbered from 0.
    pub option: u8,
    /// The voter's credential ([`Spec::credential`]).
    pub credential: Hash,
}

impl Ballot {
    /// The ballot's hash in election `election`: it covers every field, the credential included.
    pub fn hash(&self, election: &str) -> Hash {
        let mut msg = Vec::with_capacity(64);
        msg.extend_from_slice(b"ballot\0");
        msg.extend_from_slice(election.as_bytes());
        msg.extend_from_slice(&self.voter.to_le_bytes());
        msg.push(self.state);
        msg.push(self.option);
        msg.extend_from_slice(&self.credential);
        h16(&msg)
    }
}

/// Why a ballot was not counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Reason {
    /// Outside the `open` phase (the phase it is in).
    NotOpen(Phase),
    /// Not a voter of the roll.
    UnknownVoter,
    /// The credential is not this voter's in this state.
    BadCredential,
    /// The option is not on the ballot.
    NoSuchOption,
    /// This voter's ballot, a different one, is already counted.
    AlreadyVoted,
    /// The legislature could not commit it for now (no majority): not counted yet, retry.
    Unavailable,
}

impl Reason {
    /// A final answer: retrying the same ballot cannot change it.
    pub fn is_final(self) -> bool {
        !matches!(self, Reason::Unavailable | Reason::NotOpen(Phase::Setup))
    }

    /// The reason's code, as receipts, tables and JSON spell it (kebab case).
    pub fn code(self) -> &'static str {
        match self {
            Reason::NotOpen(Phase::Setup) => "not-open-yet",
            Reason::NotOpen(_) => "closed",
            Reason::UnknownVoter => "unknown-voter",
            Reason::BadCredential => "bad-credential",
            Reason::NoSuchOption => "no-such-option",
            Reason::AlreadyVoted => "already-voted",
            Reason::Unavailable => "unavailable",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A counted ballot, as its voter holds it and as the bulletin board shows it: the voter, the
/// state and option in the clear, the ballot's hash (which commits to the voter's secret
/// credential), its place among the counted ballots (the leaf of the Merkle tree) and its
/// place in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The voter's number on the roll.
    pub voter: u64,
    /// In [`states::STATES`] order.
    pub state: u8,
    /// Its number among the election's options, from 0.
    pub option: u8,
    /// The ballot's hash ([`Ballot::hash`]), committing to the voter's credential.
    pub hash: Hash,
    /// Its place among the counted ballots: the leaf number, from 0, in log order.
    pub leaf: u64,
    /// Where its command sits in the log.
    pub pos: Pos,
}

impl Receipt {
    /// The Merkle leaf of this counted ballot: a hash of every field and of the election, so
    /// the root binds each column of the board. Prefixed so it cannot pass for an inner node.
    pub fn leaf_hash(&self, election: &str) -> Hash {
        let mut msg = Vec::with_capacity(64 + election.len());
        msg.extend_from_slice(b"leaf\0");
        msg.extend_from_slice(&(election.len() as u64).to_le_bytes());
        msg.extend_from_slice(election.as_bytes());
        msg.extend_from_slice(&self.leaf.to_le_bytes());
        msg.extend_from_slice(&self.voter.to_le_bytes());
        msg.push(self.state);
        msg.push(self.option);
        msg.extend_from_slice(&self.hash);
        msg.extend_from_slice(&self.pos.index.to_le_bytes());
        msg.extend_from_slice(&self.pos.offset.to_le_bytes());
        h16(&msg)
    }
}

/// The digest of a tally: the election, its options (so counts cannot be relabelled), the
/// count of each option in each state (state-major), how many ballots were counted, and the
/// Merkle root over their leaves.
pub fn tally_digest(election: &str, options: &[String], counts: &[u64], counted: u64, root: &Hash) -> Hash {
    let mut msg = agora_core::wire::encode(&(election, options, counts, counted));
    msg.extend_from_slice(root);
    h16(&msg)
}

/// The published results.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Results {
    /// The election's id.
    pub election: String,
    /// The options, in ballot order.
    pub options: Vec<String>,
    /// Per state (in [`states::STATES`] order), per option.
    pub per_state: Vec<Vec<u64>>,
    /// Per option, over every state.
    pub national: Vec<u64>,
    /// Ballots counted.
    pub counted: u64,
    /// The Merkle root over the counted ballots' leaves, in log order.
    pub root: Hash,
    /// The tally digest ([`tally_digest`]).
    pub digest: Hash,
}

/// Commands of the tally.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Cmd {
    /// Installs the election (in the `setup` phase; the same spec again is accepted).
    Setup(Box<Spec>),
    /// Moves to phase `to` if it is the next one (or the current one: idempotent). `published`
    /// names the digest the publisher saw a majority agree on.
    Advance {
        /// The phase to move to.
        to: Phase,
        /// For `published`: the digest a majority reported.
        digest: Option<Hash>,
    },
    /// A ballot, stamped with the phase the coordinator saw.
    Ballot {
        /// The phase the coordinator saw when it forwarded the ballot.
        phase: Phase,
        /// The ballot.
        ballot: Ballot,
    },
}

/// Queries of the tally, answered at a read index.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Query {
    /// The results, once published (`None` before).
    Results,
    /// The phase (and the digest once tallied).
    Phase,
}

/// Answers of the tally.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Out {
    /// A counted ballot's receipt (the same again for the same ballot).
    Receipt(Receipt),
    /// A ballot not counted, and why.
    Rejected(Reason),
    /// The phase after an `Advance` or `Setup`, with the digest once tallied.
    Phase {
        /// The tally's phase.
        phase: Phase,
        /// The tally digest, once tallied.
        digest: Option<Hash>,
    },
    /// A phase change or set-up that does not apply.
    Refused(String),
    /// The answer to [`Query::Results`].
    Results(Box<Option<Results>>),
}

/// The replicated tally: the state machine of the legislature.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Tally {
    spec: Option<Spec>,
    phase: Phase,
    /// Per voter: 1 + the leaf of its counted ballot, or 0.
    voted: CowVec<u32>,
    /// Counted ballots in log order: Merkle leaf ([`Receipt::leaf_hash`]) and log position.
    leaves: CowVec<(Hash, Pos)>,
    /// Per state and option.
    counts: Vec<u64>,
    root: Option<Hash>,
    digest: Option<Hash>,
    /// Ballots counted since the host last looked (their rows of the board). Not replicated.
    #[serde(skip)]
    pub notes: Vec<Receipt>,
}

impl Tally {
    /// The phase the tally is in.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The tally digest, once tallied.
    pub fn digest(&self) -> Option<Hash> {
        self.digest
    }

    /// How many ballots are counted.
    pub fn counted(&self) -> u64 {
        self.leaves.len() as u64
    }

    fn results(&self) -> Option<Results> {
        let spec = self.spec.as_ref()?;
        Some(results_of(&spec.id, &spec.options, &self.counts, self.counted(), self.root?, self.digest?))
    }

    fn ballot(&mut self, pos: Pos, stamped: Phase, b: &Ballot) -> Out {
        if self.phase != Phase::Open || stamped != Phase::Open {
            // The log's phase rules; a coordinator that has not yet seen `open` gets "not yet".
            let phase = if self.phase == Phase::Open { stamped } else { self.phase };
            return Out::Rejected(Reason::NotOpen(phase));
        }
        let spec = self.spec.as_ref().expect("open implies set up");
        if b.voter >= spec.voters {
            return Out::Rejected(Reason::UnknownVoter);
        }
        if b.state as usize >= states::STATES.len() || spec.credential(b.voter, b.state) != b.credential {
            return Out::Rejected(Reason::BadCredential);
        }
        if b.option as usize >= spec.options.len() {
            return Out::Rejected(Reason::NoSuchOption);
        }
        let hash = b.hash(&spec.id);
        let slot = *self.voted.get(b.voter as usize).expect("voters are checked above");
        if slot != 0 {
            // The same ballot again has the same leaf at the same place; any other differs.
            let leaf = slot as u64 - 1;
            let (h, pos) = *self.leaves.get(leaf as usize).expect("a voter's leaf exists");
            let r = Receipt { voter: b.voter, state: b.state, option: b.option, hash, leaf, pos };
            return if r.leaf_hash(&spec.id) == h {
                Out::Receipt(r)
            } else {
                Out::Rejected(Reason::AlreadyVoted)
            };
        }
        let leaf = self.leaves.len() as u64;
        let r = Receipt { voter: b.voter, state: b.state, option: b.option, hash, leaf, pos };
        *self.voted.get_mut(b.voter as usize).expect("checked above") = leaf as u32 + 1;
        self.leaves.push((r.leaf_hash(&spec.id), pos));
        self.counts[b.state as usize * spec.options.len() + b.option as usize] += 1;
        self.notes.push(r);
        Out::Receipt(r)
    }

    fn advance(&mut self, to: Phase, digest: Option<Hash>) -> Out {
        let now = Out::Phase { phase: self.phase, digest: self.digest };
        if to <= self.phase {
            return now;
        }
        if Some(to) != self.phase.next() {
            return Out::Refused(format!("cannot go from {} to {}", self.phase.name(), to.name()));
        }
        match to {
            Phase::Open if self.spec.is_none() => return Out::Refused("no election is set up".into()),
            Phase::Tallied => {
                let spec = self.spec.as_ref().expect("set up");
                let root = merkle_root(self.leaves.iter().map(|(h, _)| *h).collect());
                self.digest =
                    Some(tally_digest(&spec.id, &spec.options, &self.counts, self.counted(), &root));
                self.root = Some(root);
            }
            Phase::Published if digest != self.digest => {
                return Out::Refused("the digest to publish is not this replica's".into())
            }
            _ => {}
        }
        self.phase = to;
        Out::Phase { phase: self.phase, digest: self.digest }
    }
}

impl StateMachine for Tally {
    type Command = Cmd;
    type Query = Query;
    type Output = Out;

    fn apply(&mut self, pos: Pos, cmd: &Cmd) -> Out {
        match cmd {
            Cmd::Setup(spec) => match &self.spec {
                Some(s) if *s == **spec => Out::Phase { phase: self.phase, digest: self.digest },
                Some(_) => Out::Refused("another election is set up".into()),
                None if self.phase == Phase::Setup => {
                    if spec.voters > u32::MAX as u64 - 1
                        || spec.options.is_empty()
                        || spec.options.len() > 255
                    {
                        return Out::Refused("roll or options out of range".into());
                    }
                    self.voted = CowVec::from_elem(0, spec.voters as usize);
                    self.counts = vec![0; states::STATES.len() * spec.options.len()];
                    self.spec = Some((**spec).clone());
                    Out::Phase { phase: self.phase, digest: None }
                }
                None => Out::Refused("set-up is over".into()),
            },
            Cmd::Advance { to, digest } => self.advance(*to, *digest),
            Cmd::Ballot { phase, ballot } => self.ballot(pos, *phase, ballot),
        }
    }

    fn query(&self, q: &Query) -> Out {
        match q {
            Query::Results => {
                Out::Results(Box::new(if self.phase == Phase::Published { self.results() } else { None }))
            }
            Query::Phase => Out::Phase { phase: self.phase, digest: self.digest },
        }
    }
}

/// The Merkle root over `leaves` (BLAKE3 of each pair; an odd node is carried up). The root
/// of no leaves is the hash of nothing.
pub fn merkle_root(mut level: Vec<Hash>) -> Hash {
    if level.is_empty() {
        return h16(b"");
    }
    while level.len() > 1 {
        level = up(&level);
    }
    level[0]
}

/// The hash of an inner node of the Merkle tree (prefixed, so it cannot pass for a leaf).
fn parent(a: &Hash, b: &Hash) -> Hash {
    let mut m = [0u8; 33];
    m[0] = 1;
    m[1..17].copy_from_slice(a);
    m[17..].copy_from_slice(b);
    h16(&m)
}

/// The level above `level` (an odd node is carried up).
fn up(level: &[Hash]) -> Vec<Hash> {
    level.chunks(2).map(|p| if let [a, b] = p { parent(a, b) } else { p[0] }).collect()
}

/// The sibling path of leaf `i`: what a receipt holder needs, with the root, to check that
/// the leaf is included.
pub fn merkle_path(leaves: &[Hash], mut i: usize) -> Vec<(bool, Hash)> {
    let mut level = leaves.to_vec();
    let mut path = Vec::new();
    while level.len() > 1 {
        let sib = i ^ 1;
        if sib < level.len() {
            path.push((sib < i, level[sib]));
        }
        level = up(&level);
        i /= 2;
    }
    path
}

/// Checks a leaf against a root through its path.
pub fn merkle_verify(leaf: Hash, path: &[(bool, Hash)], root: Hash) -> bool {
    let mut h = leaf;
    for (left, sib) in path {
        h = if *left { parent(sib, &h) } else { parent(&h, sib) };
    }
    h == root
}

/// The results of `counts` (state-major, one per option in each state).
fn results_of(
    election: &str,
    options: &[String],
    counts: &[u64],
    counted: u64,
    root: Hash,
    digest: Hash,
) -> Results {
    let k = options.len();
    let per_state: Vec<Vec<u64>> = counts.chunks(k).map(|c| c.to_vec()).collect();
    let national = (0..k).map(|o| per_state.iter().map(|s| s[o]).sum()).collect();
    Results {
        election: election.to_string(),
        options: options.to_vec(),
        per_state,
        national,
        counted,
        root,
        digest,
    }
}

/// Why a bulletin board cannot be the record of a tally.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BoardError {
    /// A row's leaf number is not its place on the board.
    #[error("row {row} says leaf {leaf}; the rows must be leaves 0, 1, 2... in order")]
    OutOfOrder {
        /// The row's place on the board, from 0.
        row: u64,
        /// The leaf number the row gives.
        leaf: u64,
    },
    /// A row names a state that does not exist.
    #[error("leaf {leaf}: state {state} is not one of the {} states", states::STATES.len())]
    NoSuchState {
        /// The row's leaf number.
        leaf: u64,
        /// The state number it gives.
        state: u8,
    },
    /// A row names an option that is not on the ballot.
    #[error("leaf {leaf}: option {option} is not on the ballot ({options} options)")]
    NoSuchOption {
        /// The row's leaf number.
        leaf: u64,
        /// The option number it gives.
        option: u8,
        /// How many options the ballot has.
        options: usize,
    },
    /// Two rows count the same voter.
    #[error("voter {voter} is counted twice, at leaves {first} and {second}")]
    CountedTwice {
        /// The voter.
        voter: u64,
        /// The leaf of the first row.
        first: u64,
        /// The leaf of the second.
        second: u64,
    },
}

/// The tally recomputed from the bulletin board, row by row: what anyone can check without
/// the authority's key. Fed every row in order, it gives the [`Results`] the replicas
/// publish — counts, Merkle root and digest — or says why the rows cannot be a tally.
pub struct Audit {
    election: String,
    options: Vec<String>,
    /// Per state and option, as in the [`Tally`].
    counts: Vec<u64>,
    leaves: Vec<Hash>,
    /// `(voter, leaf)` of every row, to find a voter counted twice.
    voters: Vec<(u64, u64)>,
}

impl Audit {
    /// An audit of election `election` with these options, before any row.
    pub fn new(election: &str, options: &[String]) -> Audit {
        Audit {
            election: election.to_string(),
            options: options.to_vec(),
            counts: vec![0; states::STATES.len() * options.len()],
            leaves: Vec::new(),
            voters: Vec::new(),
        }
    }

    /// Adds the next row of the board and returns its Merkle leaf.
    pub fn push(&mut self, row: &Receipt) -> Result<Hash, BoardError> {
        let next = self.leaves.len() as u64;
        if row.leaf != next {
            return Err(BoardError::OutOfOrder { row: next, leaf: row.leaf });
        }
        if row.state as usize >= states::STATES.len() {
            return Err(BoardError::NoSuchState { leaf: row.leaf, state: row.state });
        }
        if row.option as usize >= self.options.len() {
            let options = self.options.len();
            return Err(BoardError::NoSuchOption { leaf: row.leaf, option: row.option, options });
        }
        self.counts[row.state as usize * self.options.len() + row.option as usize] += 1;
        let h = row.leaf_hash(&self.election);
        self.leaves.push(h);
        self.voters.push((row.voter, row.leaf));
        Ok(h)
    }

    /// How many rows so far.
    pub fn rows(&self) -> u64 {
        self.leaves.len() as u64
    }

    /// The results the board adds up to.
    pub fn finish(mut self) -> Result<Results, BoardError> {
        self.voters.sort_unstable();
        if let Some(w) = self.voters.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(BoardError::CountedTwice { voter: w[0].0, first: w[0].1, second: w[1].1 });
        }
        let counted = self.rows();
        let root = merkle_root(self.leaves);
        let digest = tally_digest(&self.election, &self.options, &self.counts, counted, &root);
        Ok(results_of(&self.election, &self.options, &self.counts, counted, root, digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merkle_paths_verify_every_leaf_and_only_it() {
        for n in [1usize, 2, 3, 5, 8, 13] {
            let leaves: Vec<Hash> = (0..n as u8).map(|i| h16(&[i])).collect();
            let root = merkle_root(leaves.clone());
            for i in 0..n {
                let path = merkle_path(&leaves, i);
                assert!(merkle_verify(leaves[i], &path, root), "n={n} i={i}");
                assert!(!merkle_verify(h16(b"x"), &path, root));
            }
        }
    }

    /// A tallied election of `n` voters, and the rows it counted.
    fn tallied(n: u64) -> (Tally, Vec<Receipt>) {
        let spec = default_spec(n, 3);
        let mut t = Tally::default();
        let mut at = 0;
        let mut apply = |t: &mut Tally, cmd: Cmd| {
            at += 1;
            t.apply(Pos { index: at / 4 + 1, offset: (at % 4) as u32 }, &cmd)
        };
        apply(&mut t, Cmd::Setup(Box::new(spec.clone())));
        apply(&mut t, Cmd::Advance { to: Phase::Open, digest: None });
        for voter in (0..n).rev() {
            let state = Spec::synthetic_state(voter);
            let ballot =
                Ballot { voter, state, option: (voter % 3) as u8, credential: spec.credential(voter, state) };
            let out = apply(&mut t, Cmd::Ballot { phase: Phase::Open, ballot });
            assert!(matches!(out, Out::Receipt(_)), "{out:?}");
            // The same ballot again: the same receipt.
            assert_eq!(apply(&mut t, Cmd::Ballot { phase: Phase::Open, ballot }), out);
            let other = Ballot { option: (ballot.option + 1) % 3, ..ballot };
            let again = apply(&mut t, Cmd::Ballot { phase: Phase::Open, ballot: other });
            assert_eq!(again, Out::Rejected(Reason::AlreadyVoted));
        }
        apply(&mut t, Cmd::Advance { to: Phase::Closed, digest: None });
        apply(&mut t, Cmd::Advance { to: Phase::Tallied, digest: None });
        let rows = std::mem::take(&mut t.notes);
        (t, rows)
    }

    fn audit(rows: &[Receipt]) -> Result<Results, BoardError> {
        let spec = default_spec(1, 3);
        let mut a = Audit::new(&spec.id, &spec.options);
        for r in rows {
            a.push(r)?;
        }
        a.finish()
    }

    #[test]
    fn the_board_adds_up_to_the_tallys_results() {
        let (t, rows) = tallied(40);
        assert_eq!(rows.len(), 40);
        assert_eq!(audit(&rows), Ok(t.results().expect("tallied")));
    }

    #[test]
    fn every_field_of_a_row_is_bound_to_the_root_and_the_digest() {
        let (t, rows) = tallied(12);
        let results = t.results().expect("tallied");
        let tampered: [fn(&mut Receipt); 6] = [
            |r| r.voter = 999,
            |r| r.state = (r.state + 1) % 50,
            |r| r.option = (r.option + 1) % 3,
            |r| r.hash[0] ^= 1,
            |r| r.pos.index += 1,
            |r| r.pos.offset += 1,
        ];
        for (i, edit) in tampered.iter().enumerate() {
            let mut rows = rows.clone();
            let before = rows[5].leaf_hash("agora-demo");
            edit(&mut rows[5]);
            assert_ne!(rows[5].leaf_hash("agora-demo"), before, "edit {i}");
            let forged = audit(&rows).expect("still a well-formed board");
            assert_ne!(forged.root, results.root, "edit {i}");
            assert_ne!(forged.digest, results.digest, "edit {i}");
        }
        // The leaf is bound to its election, and the digest to the options' names.
        assert_ne!(rows[5].leaf_hash("agora-demo"), rows[5].leaf_hash("agora-demo2"));
        let mut swapped = results.options.clone();
        swapped.swap(0, 1);
        let counts: Vec<u64> = results.per_state.concat();
        let digest = |o: &[String]| tally_digest("agora-demo", o, &counts, 12, &results.root);
        assert_eq!(digest(&results.options), results.digest);
        assert_ne!(digest(&swapped), results.digest);
    }

    #[test]
    fn a_board_that_cannot_be_a_tally_is_refused() {
        let (_, rows) = tallied(6);
        let mut twice = rows.clone();
        twice[4].voter = twice[1].voter;
        assert_eq!(
            audit(&twice),
            Err(BoardError::CountedTwice { voter: rows[1].voter, first: 1, second: 4 })
        );
        let mut skipped = rows.clone();
        skipped.remove(2);
        assert_eq!(audit(&skipped), Err(BoardError::OutOfOrder { row: 2, leaf: 3 }));
        let mut off = rows.clone();
        off[3].option = 3;
        assert_eq!(audit(&off), Err(BoardError::NoSuchOption { leaf: 3, option: 3, options: 3 }));
        let mut nowhere = rows;
        nowhere[0].state = 50;
        assert_eq!(audit(&nowhere), Err(BoardError::NoSuchState { leaf: 0, state: 50 }));
    }

    #[test]
    fn synthetic_states_follow_the_seats() {
        let mut per = [0u64; 50];
        for v in 0..states::SEATS_TOTAL * 10 {
            per[Spec::synthetic_state(v) as usize] += 1;
        }
        for (i, s) in states::STATES.iter().enumerate() {
            assert_eq!(per[i], s.seats as u64 * 10, "{}", s.code);
        }
    }
}
