//! `bully`: the bully algorithm (Garcia-Molina, *Elections in a Distributed Computing
//! System*, IEEE Transactions on Computers, 1982).
//!
//! **Algorithm.** A node that starts an election sends ELECTION to every node with a higher
//! id. A node receiving ELECTION from a lower id answers OK and starts its own election (once).
//! A node that gets no OK within the timeout has the highest live id: it announces itself with
//! COORDINATOR to all. A node that got an OK waits for the COORDINATOR and starts over if none
//! comes. The leader sends HEARTBEAT every quarter timeout; a follower that misses them for a
//! timeout starts an election, and so does a node that hears a leader with a lower id than its
//! own (a restarted node listens for a heartbeat first, so that it learns the
//! term in force). Terms grow with every announcement and are persisted. A term is
//! `round · N + id` of the node that announces it, the round one above the highest it knows:
//! two nodes never announce the same term, even when one of them restarted and missed the
//! other's announcement (a restarted node that announced `last + 1` would collide with a
//! leader elected, and crashed, while it was down).
//!
//! A node that says it leaves ([`Bully::peer_left`], used by the market's sick trader) is
//! not waited for: if it led, the others elect at once rather than a timeout later, and the
//! highest of them wins without waiting for the leaver's silence. It is back when it says
//! so ([`Bully::peer_back`]) or at its first message.
//!
//! A node may **stand aside** ([`Bully::stand_aside`], used by a market trader that has buys
//! of its own to make while no one else has): the others, told with [`Bully::peer_aside`],
//! elect among themselves at once, and the node follows whoever they elect, lower or not,
//! without answering their elections. It stands again ([`Bully::stand_again`]) when it is
//! done, and bullies a lower leader out as a restarted node does; and it stands again as
//! well if no leader is heard from for four timeouts (longer than an election of the others
//! takes, even one that waits for a silent higher node), so that a node aside never leaves the
//! cluster without one.
//!
//! **Variant** `no-bully` (a deliberate bug): a node that hears a COORDINATOR or a HEARTBEAT
//! from a lower node follows it instead of starting an election. A restarted highest node
//! then follows the lower leader elected while it was down, and the heartbeats go round for
//! ever without it taking over: `agora explore bully --timing sync --crashes 1 --restarts 1
//! --variant no-bully` finds the cycle (`docs/explore.md`). The algorithm above is its fix.
//!
//! `--start S` picks the node that starts the first election and whose failure detector is the
//! fastest (the others wait twice as long), to select the best or the worst case.
//!
//! **Message complexity** of an election started by node s in a cluster 0..N (ELECTION, OK
//! and COORDINATOR messages; heartbeats are counted apart by type): every node h ≥ s sends
//! ELECTION to the N−1−h nodes above it and each answers OK, then the winner sends N−1
//! COORDINATOR: 2·Σ_{h=s}^{N−1}(N−1−h) + (N−1) = (N−s)(N−s−1) + (N−1). Best case, the
//! highest node starts (s = N−1): N−1 messages. Worst case, the lowest starts (s = 0):
//! N(N−1) + (N−1) = N²−1, i.e. O(N²) (Garcia-Molina 1982; Coulouris et al., *Distributed
//! Systems*, 5th ed., 2012, §15.3). After the leader N−1 crashes, in the best case node N−2
//! notices first: 1 ELECTION (unanswered) + N−2 COORDINATOR = N−1 (it does not tell the leader
//! it suspects). In the worst case node 0 notices: N(N−1)/2 ELECTION + (N−1)(N−2)/2 OK + N−1
//! COORDINATOR (one of them to the crashed leader, lost) = N(N−1).
//!
//! **Tolerates** crashes and restarts of any nodes, assuming the timeout exceeds a round trip
//! (a synchronous network). Bully is not consensus: under loss or partitions a node can
//! wrongly conclude it is the highest, and two nodes can lead at once (each in its own term),
//! which the checker's agreement judges once faults stop. Once faults stop, heartbeats bring
//! every live node to the highest.

use super::{heartbeat, ElectionChecker, ElectionObs, View};
use agora_core::{Context, Corrupt, NodeId, Protocol, Stable};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The protocol's messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// Sent by a node starting an election to every node with a higher id; an answer (OK)
    /// means a higher node is alive and takes over.
    Election {
        /// The highest term the elector knows.
        term: u64,
    },
    /// Answer of a higher node to ELECTION: the elector waits for a COORDINATOR instead of
    /// announcing itself. The answering node starts its own election.
    Ok {
        /// The highest term the answering node knows, so that the elector's next term is newer.
        term: u64,
    },
    /// Sent by a node that got no OK to every node (except the leader whose silence started
    /// the election): it is the new leader. A receiver with a higher id bullies it with an
    /// election of its own.
    Coordinator {
        /// The new leader's term: `round · N + id`, the round one above the highest known.
        term: u64,
    },
    /// Broadcast by the leader every quarter timeout; followers that miss them for a timeout
    /// start an election, and a receiver with a higher id than the leader starts one at once.
    Heartbeat {
        /// The leader's term.
        term: u64,
    },
}

kinds!(Msg {
    Election => "ELECTION",
    Ok => "OK",
    Coordinator => "COORDINATOR",
    Heartbeat => "HEARTBEAT",
});

/// The protocol's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    /// No OK came: we are the highest.
    NoAnswer,
    /// An OK came but no COORDINATOR followed.
    NoCoordinator,
    /// The leader's heartbeats stopped.
    LeaderSilent,
    /// Leader: time to heartbeat.
    Beat,
}

/// One node of the bully algorithm.
#[derive(Clone, Hash)]
pub struct Bully {
    id: NodeId,
    n: usize,
    /// The term, the leader and the failure detector (the starter notices first).
    view: View,
    /// The leader whose silence started the current election (not told of the result).
    failed: Option<NodeId>,
    electing: bool,
    /// In the current election, a higher node answered OK.
    answered: bool,
    /// Nodes that said they left ([`Bully::peer_left`]), by id: an election does not wait
    /// for their answer until they are heard from again.
    gone: Vec<bool>,
    /// The `no-bully` variant: follow a lower leader rather than bully it.
    no_bully: bool,
    /// Standing aside ([`Bully::stand_aside`]): not a candidate, following any leader.
    aside: bool,
    /// It stood aside and no other node took the lead: it counts no other node as one that
    /// may be elected ([`Bully::others_standing`]) until it hears another leader.
    alone: bool,
}

impl Bully {
    /// Node `id`, with the term it persisted in an earlier life.
    fn new(setup: &BullySetup, id: NodeId, stable: &Stable) -> Result<Self, Corrupt> {
        let view = View::new(setup.timeout, id == setup.starter, stable)?;
        Ok(Bully {
            id,
            n: setup.nodes,
            view,
            failed: None,
            electing: false,
            answered: false,
            gone: vec![false; setup.nodes],
            no_bully: setup.no_bully,
            aside: false,
            alone: false,
        })
    }

    /// Whether this node stands aside ([`Bully::stand_aside`]).
    pub fn aside(&self) -> bool {
        self.aside
    }

    /// Whether node `who` said it left or stands aside, and has not been heard from since.
    pub fn gone(&self, who: NodeId) -> bool {
        self.gone.get(who.index()).is_some_and(|g| *g)
    }

    /// Whether some other node may be elected: one not known to have left or stood aside
    /// (and none, after this node stood aside and no other took the lead).
    pub fn others_standing(&self) -> bool {
        !self.alone && self.gone.iter().enumerate().any(|(i, g)| !g && i != self.id.index())
    }

    /// While aside, how long it waits for a leader before it stands again.
    fn aside_wait(&self) -> Duration {
        self.view.timeout() * 4
    }

    /// Stops being a candidate: leaves the lead if it holds it (the caller tells the others,
    /// who call [`Bully::peer_aside`]), answers no election, and follows the leader the others
    /// elect, whatever its id. If none is heard from for a timeout, it stands again.
    pub fn stand_aside(&mut self, ctx: &mut Context<'_, Self>) {
        if self.aside {
            return;
        }
        self.aside = true;
        self.electing = false;
        for t in [Timer::NoAnswer, Timer::NoCoordinator, Timer::Beat] {
            ctx.cancel_timer(t);
        }
        if self.view.leader == Some(self.id) {
            self.view.leader = None;
        }
        ctx.set_timer(Timer::LeaderSilent, self.aside_wait());
    }

    /// Stands for election again after [`Bully::stand_aside`]: a lower leader, or none, is
    /// bullied out by an election of its own.
    pub fn stand_again(&mut self, ctx: &mut Context<'_, Self>) {
        if !std::mem::take(&mut self.aside) {
            return;
        }
        self.failed = None;
        if self.view.leader.is_none_or(|l| l.0 < self.id.0) {
            self.start_election(ctx);
        }
    }

    /// Node `who` said it is back: elections wait for its answer again, and a leader sends
    /// it a heartbeat at once. A node back from a restart listens for a heartbeat before it
    /// stands (to learn the term in force); this one spares it the wait of up to a heartbeat
    /// period, so a higher node bullies its way back a round trip after it says so.
    pub fn peer_back(&mut self, ctx: &mut Context<'_, Self>, who: NodeId) {
        let Some(gone) = self.gone.get_mut(who.index()) else { return };
        *gone = false;
        if self.view.leader == Some(self.id) && who != self.id {
            ctx.send(who, Msg::Heartbeat { term: self.view.term });
        }
    }

    /// Node `who` said it leaves (a clean exit, or a market trader falling sick): elections
    /// no longer wait for its answer, and if it led, an election starts now instead of after
    /// its heartbeats have been missed for a timeout. Any message from it later brings it back.
    pub fn peer_left(&mut self, ctx: &mut Context<'_, Self>, who: NodeId) {
        self.left(ctx, who, true)
    }

    /// Node `who` stood aside ([`Bully::stand_aside`]): as [`Bully::peer_left`], but it is
    /// told who leads next, since it follows.
    pub fn peer_aside(&mut self, ctx: &mut Context<'_, Self>, who: NodeId) {
        self.left(ctx, who, false)
    }

    /// Node `who` is no candidate until heard from; `silent`: it is not told who leads next.
    fn left(&mut self, ctx: &mut Context<'_, Self>, who: NodeId, silent: bool) {
        let Some(gone) = self.gone.get_mut(who.index()) else { return };
        *gone = true;
        if self.view.leader == Some(who) && self.aside && self.others_standing() {
            // Not a candidate: the others elect, and their leader's announcement comes here.
            self.view.leader = None;
            ctx.set_timer(Timer::LeaderSilent, self.aside_wait());
        } else if self.view.leader == Some(who) {
            // Aside with no one else to elect, it stands again.
            self.aside = false;
            self.failed = silent.then_some(who);
            self.electing = false;
            self.start_election(ctx);
        } else if self.electing && !self.answered && self.gone[self.id.index() + 1..].iter().all(|g| *g) {
            // Every node it asked has left: none will answer.
            ctx.cancel_timer(Timer::NoAnswer);
            self.become_leader(ctx);
        }
    }

    fn start_election(&mut self, ctx: &mut Context<'_, Self>) {
        if self.electing {
            return;
        }
        self.electing = true;
        self.answered = false;
        self.view.leader = None;
        ctx.cancel_timer(Timer::LeaderSilent);
        ctx.observe(ElectionObs::Started { term: self.view.term });
        ctx.op_begin(self.round());
        let higher: Vec<NodeId> =
            (self.id.0 + 1..self.n as u32).map(NodeId).filter(|h| !self.gone[h.index()]).collect();
        if higher.is_empty() {
            self.become_leader(ctx);
        } else {
            ctx.multicast(higher, Msg::Election { term: self.view.term });
            ctx.set_timer(Timer::NoAnswer, self.view.timeout());
        }
    }

    /// The round of the current term: elections started in it are one operation.
    fn round(&self) -> u64 {
        self.view.term / self.n as u64
    }

    fn become_leader(&mut self, ctx: &mut Context<'_, Self>) {
        let round = self.round();
        let term = (round + 1) * self.n as u64 + self.id.0 as u64;
        self.electing = false;
        self.view.lead(ctx, term, &[Timer::NoAnswer, Timer::NoCoordinator], round);
        // Everyone but the leader whose silence started this election.
        let to: Vec<NodeId> =
            (0..self.n as u32).map(NodeId).filter(|p| *p != self.id && Some(*p) != self.failed).collect();
        ctx.multicast(to, Msg::Coordinator { term: self.view.term });
        ctx.set_timer(Timer::Beat, heartbeat(self.view.timeout()));
    }

    fn follow(&mut self, ctx: &mut Context<'_, Self>, leader: NodeId, term: u64) {
        self.electing = false;
        let n = self.n as u64;
        let cancel = [Timer::NoAnswer, Timer::NoCoordinator, Timer::Beat];
        self.view.follow(ctx, (leader, term), &cancel, Timer::LeaderSilent, |t| (t / n).saturating_sub(1));
        if leader != self.id {
            self.alone = false;
        }
        if self.aside {
            ctx.set_timer(Timer::LeaderSilent, self.aside_wait());
        }
    }
}

impl Protocol for Bully {
    type Msg = Msg;
    type Timer = Timer;
    type Obs = ElectionObs;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        if self.view.starts() {
            self.start_election(ctx);
        } else {
            // A restarted node first listens for a heartbeat period: the current leader's
            // heartbeat tells it the term in force, and if that leader's id is lower, the
            // bully rule starts an election with a newer term.
            self.view.listen(ctx, Timer::LeaderSilent);
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: Msg) {
        if let Some(gone) = self.gone.get_mut(from.index()) {
            *gone = false;
        }
        match msg {
            // Aside, a node answers no election and follows any leader.
            Msg::Election { term } | Msg::Ok { term } if self.aside => {
                self.view.term = self.view.term.max(term);
            }
            Msg::Coordinator { term } | Msg::Heartbeat { term } if self.aside => {
                if term >= self.view.term || self.view.leader == Some(from) {
                    self.follow(ctx, from, term);
                }
            }
            Msg::Election { term } => {
                if from.0 < self.id.0 {
                    let newer = term >= self.view.term;
                    self.view.term = self.view.term.max(term);
                    ctx.send(from, Msg::Ok { term: self.view.term });
                    if self.view.leader != Some(self.id) {
                        self.start_election(ctx);
                    } else if newer {
                        // We lead, but the elector knows a term as new as ours (it missed our
                        // announcement, or followed a leader we never heard of): announce again.
                        self.become_leader(ctx);
                    }
                }
            }
            Msg::Ok { term } => {
                self.view.term = self.view.term.max(term);
                if self.electing {
                    self.answered = true;
                    ctx.cancel_timer(Timer::NoAnswer);
                    ctx.set_timer(Timer::NoCoordinator, self.view.timeout() * 2);
                }
            }
            Msg::Coordinator { term } | Msg::Heartbeat { term } => {
                if from.0 < self.id.0 && !self.no_bully {
                    // A lower node leads: bully it.
                    self.view.term = self.view.term.max(term);
                    self.view.leader = None;
                    self.start_election(ctx);
                } else if term >= self.view.term || self.view.leader == Some(from) {
                    self.follow(ctx, from, term);
                }
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, timer: Timer) {
        match timer {
            Timer::NoAnswer => {
                if self.electing {
                    self.become_leader(ctx);
                }
            }
            Timer::NoCoordinator | Timer::LeaderSilent => {
                if timer == Timer::LeaderSilent {
                    self.failed = self.view.leader;
                    // Aside, no leader heard from: it stands again rather than leave the
                    // cluster without one, and stands aside no more before another node leads.
                    self.alone |= std::mem::take(&mut self.aside);
                }
                self.electing = false;
                self.start_election(ctx);
            }
            Timer::Beat => {
                if self.view.leader == Some(self.id) {
                    ctx.broadcast(Msg::Heartbeat { term: self.view.term });
                    ctx.set_timer(Timer::Beat, heartbeat(self.view.timeout()));
                }
            }
        }
    }
}

/// A bully run.
pub struct BullySetup {
    /// The cluster size: ids are `0..nodes`.
    pub nodes: usize,
    /// The node that starts the first election and notices a silent leader first.
    pub starter: NodeId,
    /// The protocol's timeout.
    pub timeout: Duration,
    /// The `no-bully` variant (see the module's docs): a restarted highest node follows a
    /// lower leader for ever.
    pub no_bully: bool,
}

/// The faults under which the checker's safety properties hold: crash-recovery, on a synchronous network: loss or a partition can make two leaders.
pub const MODEL: agora_core::FaultModel = agora_core::FaultModel {
    crashes: agora_core::Crashes::Recover,
    synchronous: true,
    ..agora_core::FaultModel::NONE
};

setup!(BullySetup => Bully, "bully", model: MODEL, checker: |s| ElectionChecker::new(s.nodes, s.timeout));
