//! A market peer: [`MarketNode`] holds what every peer has — its election, its ledger replica
//! (if it hosts one), its role's account (buyer or seller), the trader's post while it holds
//! it, its Lamport clock and its health — and dispatches events to them. It refuses what no
//! honest peer sends: a buy from another peer than its buyer, and an answer from another peer
//! than the trader the election named (a forged receipt never reaches the buyer's account).

use super::buyer::Buyer;
use super::election::Election;
use super::flaw::Flaw;
use super::ledger::Ledger;
use super::obs::{announcement, MarketObs};
use super::params::MAX_WINDOW;
use super::roles::{Buy, BuyResult, Role};
use super::seller::Seller;
use super::setup::{LedgerMode, Settings};
use super::trader::{Traded, Trader};
use super::{Msg, Timer};
use crate::election::{bully, ElectionObs};
use crate::raft::{RaftMsg, RaftTimer, Replica, Role as RaftRole};
use agora_core::{Context, Corrupt, NodeId, Protocol, Stable};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Where a peer keeps the number of its stints as trader (its client sessions and books).
const STINTS: &str = "market/stints";
/// Most buys a peer holds for the next trader: a buyer has at most a window of buys in
/// flight, so a real handover is at most that many per peer; a hostile one is cut short.
const MAX_HANDED: usize = super::params::MAX_WINDOW * super::params::MAX_PEERS;

/// A peer's role and its account.
#[derive(Clone)]
pub enum Account {
    /// A buyer.
    Buyer(Buyer),
    /// A seller.
    Seller(Seller),
}

/// A market peer.
#[derive(Clone)]
pub struct MarketNode {
    pub(super) s: Arc<Settings>,
    pub(super) me: NodeId,
    election: Election,
    /// The trader the election names, if any.
    pub(super) leader: Option<NodeId>,
    /// The trader before it: the one peer whose handover this peer takes.
    former: Option<NodeId>,
    replica: Option<Box<Replica<Ledger>>>,
    /// The replica led the ledger after the last step.
    leading: bool,
    /// The ledger leader this peer, trading, last asked for the leadership.
    asked: Option<NodeId>,
    pub(super) account: Account,
    /// The post, while this peer holds it.
    trader: Option<Trader>,
    /// Stints as trader so far (persisted): numbers the trader's client session or book.
    stints: u32,
    /// The Lamport clock: past every buy seen.
    pub(super) clock: u64,
    /// Sick: out of the market until `Timer::Recover`.
    sick: bool,
    /// Buys a sick trader handed on (LEAVE): served if this peer trades next.
    inherited: Vec<Buy>,
    /// This peer's own pending buys when it left the post: for the next trader.
    resigned: Vec<Buy>,
    /// Peers known to have no buys left to make, by id: sellers, and buyers that said they
    /// are done (DONE). Lets a trader that is a buyer step aside for the others.
    finished: Vec<bool>,
}

/// A peer's state for the exhaustive explorer (`agora explore market`): everything that
/// changes (the settings are the setup's); the account by its encoding.
impl Hash for MarketNode {
    fn hash<H: Hasher>(&self, h: &mut H) {
        (self.me, &self.election, self.leader, self.former, &self.replica, self.leading, self.asked).hash(h);
        match &self.account {
            Account::Buyer(b) => (0u8, agora_core::wire::encode(b)).hash(h),
            Account::Seller(s) => (1u8, agora_core::wire::encode(s)).hash(h),
        }
        (&self.trader, self.stints, self.clock, self.sick, &self.inherited, &self.resigned).hash(h);
        self.finished.hash(h);
    }
}

impl MarketNode {
    /// Peer `id` of a run of `s`, from what it persisted.
    pub fn new(s: Arc<Settings>, id: NodeId, stable: &Stable) -> Result<Self, Corrupt> {
        let replica = match s.is_replica(id) {
            true => Some(Box::new(Replica::new(s.raft.clone(), id, stable)?)),
            false => None,
        };
        let account = match s.roles[id.index()] {
            Role::Buyer { .. } => Account::Buyer(Buyer::load(stable)?),
            Role::Seller { good, stock } => Account::Seller(Seller::load(stable, good, stock)?),
        };
        let clock = match &account {
            Account::Buyer(b) => b.clock(),
            Account::Seller(_) => 0,
        };
        let finished = s.roles.iter().map(|r| !matches!(r, Role::Buyer { .. })).collect();
        Ok(MarketNode {
            election: Election::new(&s.election, id, stable)?,
            s,
            me: id,
            leader: None,
            former: None,
            replica,
            leading: false,
            asked: None,
            account,
            trader: None,
            stints: stable.load(STINTS)?.unwrap_or(0),
            clock,
            sick: false,
            inherited: Vec::new(),
            resigned: Vec::new(),
            finished,
        })
    }

    /// Learns from the election who trades.
    fn elected(&mut self, ctx: &mut Context<'_, Self>, seen: Vec<ElectionObs>) {
        for o in seen {
            ctx.observe(MarketObs::Election(o.clone()));
            match o {
                ElectionObs::Started { .. } => {
                    if self.leader.is_some() {
                        self.former = self.leader;
                    }
                    self.leader = None;
                    self.resign(ctx);
                }
                ElectionObs::Leader { leader, .. } => {
                    if self.leader.is_some_and(|l| l != leader) {
                        self.former = self.leader;
                    }
                    self.leader = Some(leader);
                    if leader != self.me {
                        self.resign(ctx);
                        self.inherited.clear();
                        let pending = std::mem::take(&mut self.resigned);
                        if !pending.is_empty() {
                            ctx.observe(MarketObs::HandedOn { to: Some(leader), buys: pending.len() });
                            ctx.send(leader, Msg::Handover { pending });
                        }
                        self.resend(ctx);
                    } else if self.trader.is_none() {
                        self.take_post(ctx);
                    }
                }
            }
        }
    }

    fn take_post(&mut self, ctx: &mut Context<'_, Self>) {
        self.stints += 1;
        ctx.persist(STINTS, &self.stints);
        ctx.observe(MarketObs::Announced { line: announcement(self.me) });
        let mut t = Trader::new(&self.s, self.me, self.stints);
        if let Some(r) = &mut self.replica {
            // The ledger's leadership follows the trader: its replica stands at once when no
            // ledger leader is alive (the market's first election, mostly), rather than an
            // election timeout later. Its commits then skip two hops.
            r.campaign(ctx);
            let leader = match r.role() {
                RaftRole::Follower => r.leader().unwrap_or(self.me),
                RaftRole::Candidate | RaftRole::Leader => self.me,
            };
            t.ledger_leader(ctx, leader);
        }
        self.asked = None;
        t.start(ctx, &self.s);
        self.trader = Some(t);
        let mut handed = std::mem::take(&mut self.inherited);
        handed.append(&mut self.resigned);
        self.take_over(ctx, handed);
        if let (Account::Seller(sl), LedgerMode::Local) = (&self.account, self.s.ledger) {
            let (me, (good, left)) = (self.me, sl.at_market());
            self.with_trader(ctx, |t, ctx, s| t.on_inventory(ctx, s, me, good, left));
        }
        self.serve_own(ctx);
    }

    /// The trader hands its own request in flight, if any, to itself (its multicasts reach
    /// only the others). Done again on every retry: its answer to itself may be lost.
    fn serve_own(&mut self, ctx: &mut Context<'_, Self>) {
        let me = self.me;
        match &self.account {
            Account::Buyer(b) => {
                let buys = b.outstanding().to_vec();
                self.with_trader(ctx, |t, ctx, s| t.on_buys(ctx, s, buys));
            }
            Account::Seller(sl) => {
                if let Some((id, good, qty)) = sl.outstanding() {
                    self.with_trader(ctx, |t, ctx, s| t.on_deposit(ctx, s, me, id, good, qty));
                }
            }
        }
    }

    /// Leaves the post, if held, keeping its pending buys for the next trader.
    fn resign(&mut self, ctx: &mut Context<'_, Self>) {
        if let Some(mut t) = self.trader.take() {
            t.flush(ctx, &self.s, self.clock);
            self.resigned = t.pending();
            ctx.cancel_timer(Timer::Retake);
            ctx.cancel_timer(Timer::Raft(RaftTimer::ClientRetry));
            ctx.observe(MarketObs::Resigned);
            self.resume(ctx);
        }
    }

    /// Runs `f` on the post, if held, and falls sick if the trade said so.
    fn with_trader(
        &mut self,
        ctx: &mut Context<'_, Self>,
        f: impl FnOnce(&mut Trader, &mut Context<'_, Self>, &Settings) -> Traded,
    ) {
        let Some(t) = &mut self.trader else { return };
        let traded = f(t, ctx, &self.s);
        t.flush(ctx, &self.s, self.clock);
        if traded == Traded::Sick {
            self.fall_sick(ctx);
        }
    }

    /// Leaves the post, if held, and the market: tells every peer, handing them its pending
    /// buys for whoever trades next.
    fn leave(&mut self, ctx: &mut Context<'_, Self>) {
        self.resign(ctx);
        let pending = std::mem::take(&mut self.resigned);
        ctx.observe(MarketObs::HandedOn { to: None, buys: pending.len() });
        ctx.broadcast(Msg::Leave { pending });
        self.inherited.clear();
    }

    /// Falls sick: leaves the post and the market until it recovers.
    fn fall_sick(&mut self, ctx: &mut Context<'_, Self>) {
        ctx.observe(MarketObs::Sick);
        self.leave(ctx);
        self.sick = true;
        self.leader = None;
        ctx.set_timer(Timer::Recover, self.s.recover);
    }

    /// Whether this peer is a buyer with buys left to make (asked or not).
    fn buys_left(&self) -> bool {
        matches!(&self.account, Account::Buyer(b) if !b.done(&self.s, false))
    }

    /// After every step: a buyer that has made all its buys says so (DONE) and, if it stood
    /// aside, stands for election again; a trader with buys of its own left, when every other
    /// buyer is done or cannot buy through it (sick, or aside itself) and another peer can
    /// trade, steps aside to make them.
    fn settle_roles(&mut self, ctx: &mut Context<'_, Self>) {
        if self.sick {
            return;
        }
        let me = self.me.index();
        if !self.finished[me] && !self.buys_left() {
            self.finished[me] = true;
            ctx.observe(MarketObs::Finished);
            ctx.broadcast(Msg::Done);
            let seen = self.election.stand_again(ctx);
            self.elected(ctx, seen);
        }
        // Runs after every event: the cheap tests first.
        if self.trader.is_none() || !self.buys_left() || !self.election.others_standing() {
            return;
        }
        let others_done = (0..self.finished.len())
            .all(|i| i == me || self.finished[i] || self.election.gone(NodeId(i as u32)));
        if others_done {
            self.step_aside(ctx);
        }
    }

    /// Leaves the post to make its own buys: hands its pending buys on, as a sick trader
    /// does, and follows the trader the others elect.
    fn step_aside(&mut self, ctx: &mut Context<'_, Self>) {
        self.resign(ctx);
        let pending = std::mem::take(&mut self.resigned);
        ctx.observe(MarketObs::SteppedAside);
        ctx.observe(MarketObs::HandedOn { to: None, buys: pending.len() });
        ctx.broadcast(Msg::Aside { pending });
        self.inherited.clear();
        self.leader = None;
        let seen = self.election.stand_aside(ctx);
        self.elected(ctx, seen);
    }

    fn recover(&mut self, ctx: &mut Context<'_, Self>) -> Result<(), Corrupt> {
        self.sick = false;
        ctx.observe(MarketObs::Recovered);
        ctx.broadcast(Msg::Rejoin);
        let seen = self.election.restart(&self.s.election, ctx)?;
        self.elected(ctx, seen);
        self.resume(ctx);
        Ok(())
    }

    /// Sends the peer's request in flight again (a new trader is known).
    fn resend(&mut self, ctx: &mut Context<'_, Self>) {
        match &mut self.account {
            Account::Buyer(b) => b.resend(ctx, &self.s, self.leader),
            Account::Seller(s) => s.resend(ctx),
        }
    }

    /// Picks the peer's own work up again (after a sickness or a stint as trader).
    fn resume(&mut self, ctx: &mut Context<'_, Self>) {
        if !self.sick {
            ctx.set_timer(Timer::Work, std::time::Duration::ZERO);
        }
    }

    /// Reports what the ledger replica applied since the last step; and when the replica
    /// has just become the ledger's leader, points the trader's client, if this peer
    /// trades, at it.
    fn report(&mut self, ctx: &mut Context<'_, Self>) {
        if let Some(r) = &mut self.replica {
            for note in std::mem::take(&mut r.state_mut().notes) {
                ctx.observe(MarketObs::Applied { book: 0, note: Box::new(note) });
            }
            let leads = r.role() == RaftRole::Leader;
            if leads && !self.leading {
                if let Some(t) = &mut self.trader {
                    t.ledger_leader(ctx, self.me);
                }
            }
            self.leading = leads;
        }
        self.ask_for_ledger(ctx);
        self.settle_roles(ctx);
    }

    /// While this peer trades, the ledger's leadership follows it: its replica, following
    /// another leader, asks that leader once to hand it the post (a trader that is not a
    /// replica, or whose replica stands, asks nothing).
    fn ask_for_ledger(&mut self, ctx: &mut Context<'_, Self>) {
        let (Some(r), Some(_)) = (&self.replica, &self.trader) else { return };
        let Some(leader) = r.leader().filter(|&l| l != self.me) else { return };
        if self.asked != Some(leader) {
            self.asked = Some(leader);
            ctx.send(leader, Msg::LeadLedger);
        }
    }

    fn on_raft(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, m: RaftMsg<Ledger>) {
        match m {
            RaftMsg::Reply { .. } | RaftMsg::Redirect { .. } => {
                self.with_trader(ctx, |t, ctx, s| t.on_raft(ctx, s, from, m))
            }
            m => {
                if let Some(r) = &mut self.replica {
                    r.on_message(ctx, from, m);
                }
            }
        }
    }

    /// Buys handed on by a trader leaving its post: queued if this peer trades, else kept in
    /// case it trades next.
    fn take_over(&mut self, ctx: &mut Context<'_, Self>, pending: Vec<Buy>) {
        let pending: Vec<Buy> = pending.into_iter().take(MAX_HANDED).collect();
        for buy in &pending {
            self.clock = self.clock.max(buy.ts).saturating_add(1);
        }
        if self.trader.is_some() {
            self.with_trader(ctx, |t, ctx, s| t.on_buys(ctx, s, pending));
        } else {
            let room = MAX_HANDED.saturating_sub(self.inherited.len());
            self.inherited.extend(pending.into_iter().take(room));
        }
    }

    /// Answers to this peer's buys: taken only from the trader the election named.
    /// The trader's clock, when the answers carry it, moves this peer's past it.
    fn on_answers(
        &mut self,
        ctx: &mut Context<'_, Self>,
        from: NodeId,
        clock: u64,
        answers: Vec<(u64, BuyResult)>,
    ) {
        let trading = self.trader.is_some();
        if let Account::Buyer(b) = &mut self.account {
            if self.leader == Some(from) {
                if clock > 0 {
                    self.clock = self.clock.max(clock).saturating_add(1);
                }
                b.on_answers(ctx, &self.s, answers, (trading, self.leader), &mut self.clock);
            } else {
                ctx.observe(MarketObs::Refused { from, why: Flaw::NotTrader });
            }
        }
    }

    fn on_market(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: Msg) {
        match msg {
            Msg::Raft(_) | Msg::Bully(_) | Msg::LeadLedger => unreachable!("dispatched before"),
            Msg::Leave { pending } => {
                // Held before the election goes on: this peer may be the next trader at once.
                // Only the trader's own pending buys are taken; anyone may say it leaves.
                if self.leader == Some(from) {
                    self.take_over(ctx, pending);
                }
                let seen = self.election.peer_left(ctx, from);
                self.elected(ctx, seen);
            }
            Msg::Aside { pending } => {
                if self.leader == Some(from) {
                    self.take_over(ctx, pending);
                }
                let seen = self.election.peer_aside(ctx, from);
                self.elected(ctx, seen);
            }
            Msg::Done => {
                if let Some(f) = self.finished.get_mut(from.index()) {
                    *f = true;
                }
                // A buyer that stood aside stands again once done: a candidate again.
                let seen = self.election.peer_back(ctx, from);
                self.elected(ctx, seen);
            }
            Msg::Handover { pending } if self.former == Some(from) => self.take_over(ctx, pending),
            Msg::Handover { .. } => ctx.observe(MarketObs::Refused { from, why: Flaw::NotTrader }),
            Msg::Rejoin => {
                if self.finished[self.me.index()] && matches!(self.account, Account::Buyer(_)) {
                    ctx.send(from, Msg::Done);
                }
                let seen = self.election.peer_back(ctx, from);
                self.elected(ctx, seen);
            }
            Msg::Buy(buy) if buy.buyer != from => {
                ctx.observe(MarketObs::Refused { from, why: Flaw::Impostor });
            }
            Msg::Buy(buy) => {
                self.clock = self.clock.max(buy.ts).saturating_add(1);
                self.with_trader(ctx, |t, ctx, s| t.on_buys(ctx, s, vec![buy]));
            }
            Msg::Buys(buys) if buys.len() > MAX_WINDOW || buys.iter().any(|b| b.buyer != from) => {
                let why = if buys.len() > MAX_WINDOW { Flaw::Quantity } else { Flaw::Impostor };
                ctx.observe(MarketObs::Refused { from, why });
            }
            Msg::Buys(buys) => {
                for buy in &buys {
                    self.clock = self.clock.max(buy.ts).saturating_add(1);
                }
                self.with_trader(ctx, |t, ctx, s| t.on_buys(ctx, s, buys));
            }
            Msg::Deposit { id, good, qty } => {
                self.with_trader(ctx, |t, ctx, s| t.on_deposit(ctx, s, from, id, good, qty))
            }
            Msg::Inventory { good, qty } => {
                self.with_trader(ctx, |t, ctx, s| t.on_inventory(ctx, s, from, good, qty))
            }
            Msg::Answer { seq, result } => self.on_answers(ctx, from, 0, vec![(seq, result)]),
            Msg::Answers { clock, answers } => self.on_answers(ctx, from, clock, answers),
            Msg::DepositAck { id } => {
                if let Account::Seller(s) = &mut self.account {
                    s.on_ack(ctx, id);
                }
            }
            Msg::Sold { good, left, .. } => {
                if let Account::Seller(s) = &mut self.account {
                    s.on_sold(ctx, &self.s, good, left, self.trader.is_some());
                }
            }
            Msg::InventoryRequest => {
                if let Account::Seller(s) = &mut self.account {
                    s.on_inventory_request(ctx, from);
                }
            }
        }
    }
}

impl Protocol for MarketNode {
    type Msg = Msg;
    type Timer = Timer;
    type Obs = MarketObs;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        if let Some(r) = &mut self.replica {
            r.on_start(ctx);
        }
        if self.s.sick_at_open.contains(&self.me) {
            // A scenario's peer sick at the opening (again after a restart): it joins the
            // market, election included, when it recovers.
            ctx.observe(MarketObs::Sick);
            self.sick = true;
            ctx.set_timer(Timer::Recover, self.s.recover);
            return;
        }
        if self.election.restarted() {
            // Back from a restart: the trader's heartbeat comes at once, and the buyers that
            // are done say so.
            ctx.broadcast(Msg::Rejoin);
        }
        let seen = self.election.start(ctx);
        self.elected(ctx, seen);
        self.resume(ctx);
        self.settle_roles(ctx);
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: Msg) {
        match msg {
            // A sick peer's ledger replica keeps serving the log.
            Msg::Raft(m) => self.on_raft(ctx, from, m),
            // Its leadership too: it hands it to the trader that asks (only a leader does, and
            // only to another replica; asked by a peer that is not the trader, it costs an
            // election and no safety).
            Msg::LeadLedger => {
                if let Some(r) = &mut self.replica {
                    r.transfer(ctx, from);
                }
            }
            // A sick peer asked to elect says it is out, so the elector need not wait for it.
            Msg::Bully(bully::Msg::Election { .. }) if self.sick => {
                ctx.send(from, Msg::Leave { pending: Vec::new() })
            }
            // So does a peer standing aside.
            Msg::Bully(bully::Msg::Election { .. }) if self.election.aside() => {
                ctx.send(from, Msg::Aside { pending: Vec::new() })
            }
            _ if self.sick => {}
            Msg::Bully(m) => {
                let seen = self.election.on_message(ctx, from, m);
                self.elected(ctx, seen);
            }
            msg => self.on_market(ctx, from, msg),
        }
        self.report(ctx);
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, timer: Timer) {
        match timer {
            Timer::Raft(RaftTimer::ClientRetry) => self.with_trader(ctx, |t, ctx, _| t.on_retry(ctx)),
            Timer::Raft(t) => {
                if let Some(r) = &mut self.replica {
                    r.on_timer(ctx, t);
                }
            }
            Timer::Recover => {
                // The election's persisted term decoded when the peer was built; it is only
                // rebuilt from the same bytes.
                self.recover(ctx).expect("the term decoded when the peer was built");
            }
            Timer::Planned(below) => {
                // Durable whether or not the peer is sick since.
                if let Account::Buyer(b) = &mut self.account {
                    b.on_planned(below);
                }
            }
            _ if self.sick => {}
            Timer::Bully(t) => {
                let seen = self.election.on_timer(ctx, t);
                self.elected(ctx, seen);
            }
            Timer::Retake => self.with_trader(ctx, |t, ctx, s| t.start(ctx, s)),
            Timer::Work => {
                let trading = self.trader.is_some();
                match &mut self.account {
                    Account::Buyer(b) => b.on_work(ctx, &self.s, (trading, self.leader), &mut self.clock),
                    Account::Seller(s) => s.on_work(ctx, &self.s, trading),
                }
                self.serve_own(ctx);
            }
        }
        self.report(ctx);
    }

    /// Told to stop: leaves the market cleanly, as a sick trader does — its pending buys
    /// handed on, and no election waiting for it. What it persisted is all a restart needs:
    /// a buyer asks again for its buy in flight, a seller for its deposit.
    fn on_stop(&mut self, ctx: &mut Context<'_, Self>) {
        ctx.observe(MarketObs::Left);
        self.leave(ctx);
    }

    /// Nothing in hand: the election names a trader, the ledger replica is settled, the peer's
    /// own request is answered (a buyer that trades makes no new ones), and the trader, if
    /// this peer is it, is fenced with nothing queued or in flight.
    fn background(&self) -> bool {
        let own = match &self.account {
            Account::Buyer(b) => b.done(&self.s, self.trader.is_some()),
            Account::Seller(s) => s.outstanding().is_none(),
        };
        !self.sick
            && self.leader.is_some()
            && own
            && self.replica.as_ref().is_none_or(|r| r.settled())
            && self.trader.as_ref().is_none_or(|t| t.idle())
    }
}
