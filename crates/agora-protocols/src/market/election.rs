//! The election of the trader: agora's [`bully`](crate::election::bully) algorithm, embedded
//! as it is (its two extensions, a peer that says it leaves and a peer that stands aside,
//! are bully's own). The market peer hands it a context of its own, then lifts the effects it made
//! into the market's: its messages and timers wrapped, its storage keys prefixed, its
//! observations returned to the peer (which learns from them who trades) and reported.
//!
//! A sick peer stops the election's clock (its timers and messages are dropped) and, when it
//! recovers, rebuilds it from its persisted term as after a restart: it listens for the
//! trader's heartbeat first, and bullies a lower one out of the post. Its REJOIN brings that
//! heartbeat at once ([`Bully::peer_back`]), so the wait is a round trip, not up to a
//! heartbeat period. A trader falling sick
//! says it leaves ([`Election::peer_left`]): the others elect its successor at once.

use super::{MarketNode, Msg, Timer};
use crate::election::bully::{self, Bully, BullySetup};
use crate::election::ElectionObs;
use agora_core::{Context, Corrupt, Destinations, Effect, NodeId, Setup, Stable};

/// Where the election's storage keys go.
const PREFIX: &str = "bully/";
/// The one key bully persists: its term.
const TERM: &str = "term";

/// A peer's election: the bully node and its persisted term.
#[derive(Clone, Hash)]
pub struct Election {
    bully: Bully,
    /// The term's bytes as last persisted, to rebuild the node after a sickness.
    term: Option<Vec<u8>>,
}

impl Election {
    /// The election of peer `id`, from what the peer persisted.
    pub fn new(setup: &BullySetup, id: NodeId, stable: &Stable) -> Result<Self, Corrupt> {
        let term = stable.get_bytes(&format!("{PREFIX}{TERM}")).map(<[u8]>::to_vec);
        let bully = setup.build(id, &Self::own(&term))?;
        Ok(Election { bully, term })
    }

    /// The bully node's own storage: its term, if it persisted one.
    fn own(term: &Option<Vec<u8>>) -> Stable {
        let mut s = Stable::new();
        if let Some(t) = term {
            s.put(TERM.into(), t.clone());
        }
        s
    }

    /// Rebuilds the node from its persisted term, as after a restart, and starts it.
    pub fn restart(
        &mut self,
        setup: &BullySetup,
        ctx: &mut Context<'_, MarketNode>,
    ) -> Result<Vec<ElectionObs>, Corrupt> {
        self.bully = setup.build(ctx.id(), &Self::own(&self.term))?;
        Ok(self.start(ctx))
    }

    /// Starts the node.
    pub fn start(&mut self, ctx: &mut Context<'_, MarketNode>) -> Vec<ElectionObs> {
        self.step(ctx, agora_core::Protocol::on_start)
    }

    /// Hands the node a message.
    pub fn on_message(
        &mut self,
        ctx: &mut Context<'_, MarketNode>,
        from: NodeId,
        msg: bully::Msg,
    ) -> Vec<ElectionObs> {
        self.step(ctx, |b, c| agora_core::Protocol::on_message(b, c, from, msg))
    }

    /// Peer `who` said it leaves the market (a sick trader's handover): see
    /// [`Bully::peer_left`].
    pub fn peer_left(&mut self, ctx: &mut Context<'_, MarketNode>, who: NodeId) -> Vec<ElectionObs> {
        self.step(ctx, |b, c| b.peer_left(c, who))
    }

    /// Peer `who` stood aside: see [`Bully::peer_aside`].
    pub fn peer_aside(&mut self, ctx: &mut Context<'_, MarketNode>, who: NodeId) -> Vec<ElectionObs> {
        self.step(ctx, |b, c| b.peer_aside(c, who))
    }

    /// This peer stands aside: see [`Bully::stand_aside`].
    pub fn stand_aside(&mut self, ctx: &mut Context<'_, MarketNode>) -> Vec<ElectionObs> {
        self.step(ctx, |b, c| b.stand_aside(c))
    }

    /// This peer stands again: see [`Bully::stand_again`].
    pub fn stand_again(&mut self, ctx: &mut Context<'_, MarketNode>) -> Vec<ElectionObs> {
        self.step(ctx, |b, c| b.stand_again(c))
    }

    /// Whether this peer stands aside.
    pub fn aside(&self) -> bool {
        self.bully.aside()
    }

    /// Whether peer `who` is out of the market (sick) or stands aside: see [`Bully::gone`].
    pub fn gone(&self, who: NodeId) -> bool {
        self.bully.gone(who)
    }

    /// Whether another peer may be elected: see [`Bully::others_standing`].
    pub fn others_standing(&self) -> bool {
        self.bully.others_standing()
    }

    /// Whether the peer persisted a term in an earlier life (it restarted).
    pub fn restarted(&self) -> bool {
        self.term.is_some()
    }

    /// Peer `who` recovered and rejoins: see [`Bully::peer_back`].
    pub fn peer_back(&mut self, ctx: &mut Context<'_, MarketNode>, who: NodeId) -> Vec<ElectionObs> {
        self.step(ctx, |b, c| b.peer_back(c, who))
    }

    /// Hands the node one of its timers.
    pub fn on_timer(&mut self, ctx: &mut Context<'_, MarketNode>, timer: bully::Timer) -> Vec<ElectionObs> {
        self.step(ctx, |b, c| agora_core::Protocol::on_timer(b, c, timer))
    }

    /// Runs one step of the bully node and lifts its effects into the peer's context.
    fn step(
        &mut self,
        ctx: &mut Context<'_, MarketNode>,
        f: impl FnOnce(&mut Bully, &mut Context<'_, Bully>),
    ) -> Vec<ElectionObs> {
        let (id, nodes, now) = (ctx.id(), ctx.nodes(), ctx.now());
        let mut effects = Vec::new();
        f(&mut self.bully, &mut Context::new(id, nodes, now, ctx.rng(), &mut effects));
        let mut seen = Vec::new();
        for e in effects {
            match e {
                Effect::Send { to, msg } => ctx.send(to, Msg::Bully(msg)),
                Effect::SendEarly { to, msg } => ctx.send_early(to, Msg::Bully(msg)),
                Effect::Multicast { to: Destinations::AllOthers, msg } => ctx.broadcast(Msg::Bully(msg)),
                Effect::Multicast { to: Destinations::Nodes(to), msg } => ctx.multicast(to, Msg::Bully(msg)),
                Effect::MulticastEarly { to: Destinations::AllOthers, msg } => {
                    ctx.broadcast_early(Msg::Bully(msg))
                }
                Effect::MulticastEarly { to: Destinations::Nodes(to), msg } => {
                    ctx.multicast_early(to, Msg::Bully(msg))
                }
                Effect::SetTimer { timer, after } => ctx.set_timer(Timer::Bully(timer), after),
                Effect::CancelTimer { timer } => ctx.cancel_timer(Timer::Bully(timer)),
                Effect::Persist { key, value } => {
                    if key == TERM {
                        self.term = Some(value.clone());
                    }
                    ctx.persist_bytes(format!("{PREFIX}{key}"), value);
                }
                Effect::Unpersist { key } => ctx.unpersist(format!("{PREFIX}{key}")),
                Effect::UnpersistRange { from, to } => {
                    ctx.unpersist_range(format!("{PREFIX}{from}"), format!("{PREFIX}{to}"))
                }
                Effect::PersistLater { .. } => unreachable!("bully writes nothing off its path"),
                Effect::Synced { done } => ctx.when_synced(Timer::Bully(done)),
                Effect::Observe(o) => seen.push(o),
                // An election is not a market operation: the market counts buys only.
                Effect::OpBegin(_) | Effect::OpEnd(_) => {}
            }
        }
        seen
    }
}
