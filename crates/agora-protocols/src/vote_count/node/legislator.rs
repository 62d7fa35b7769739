//! A legislature replica: `raft::Replica<Tally>`, which answers the coordinators' digest
//! queries and reports what it counted and the digest it tallied.

use super::{Msg, Timer, VoteNode};
use crate::raft::{self, Replica};
use crate::vote_count::obs::VoteObs;
use crate::vote_count::{Hash, Phase, Tally};
use agora_core::{Context, Corrupt, NodeId, Stable};
use std::sync::Arc;

/// A member of the legislature: a Raft replica whose state machine is the [`Tally`].
pub struct Legislator {
    replica: Replica<Tally>,
    /// The digest last reported, so that each is reported once.
    reported_digest: Option<Hash>,
}

impl Legislator {
    /// The replica `id`, from what it persisted.
    pub(crate) fn new(raft: Arc<raft::Config>, id: NodeId, stable: &Stable) -> Result<Self, Corrupt> {
        Ok(Legislator { replica: Replica::new(raft, id, stable)?, reported_digest: None })
    }

    pub(super) fn on_start(&mut self, ctx: &mut Context<'_, VoteNode>) {
        self.replica.on_start(ctx);
    }

    pub(super) fn on_message(&mut self, ctx: &mut Context<'_, VoteNode>, from: NodeId, msg: Msg) {
        match msg {
            Msg::Raft(m) => self.replica.on_message(ctx, from, m),
            Msg::DigestQuery { .. } => {
                let st = self.replica.state();
                ctx.send(from, Msg::DigestReply { phase: st.phase(), digest: st.digest() });
            }
            _ => {}
        }
        self.report(ctx);
    }

    /// Reports the ballots counted since the last report, and a new digest.
    fn report(&mut self, ctx: &mut Context<'_, VoteNode>) {
        let st = self.replica.state_mut();
        if !st.notes.is_empty() {
            let ballots = std::mem::take(&mut st.notes);
            ctx.observe(VoteObs::Counted { ballots });
        }
        let st = self.replica.state();
        if let Some(d) = st.digest() {
            if self.reported_digest != Some(d) {
                self.reported_digest = Some(d);
                ctx.observe(VoteObs::Tallied { digest: d, counted: st.counted() });
            }
        }
    }

    pub(super) fn on_timer(&mut self, ctx: &mut Context<'_, VoteNode>, timer: Timer) {
        if let Timer::Raft(t) = timer {
            self.replica.on_timer(ctx, t);
        }
        // A timer may apply entries too (the leader's own log made durable, `Synced`, can
        // commit them), and their receipts leave in this step: what it counted is reported
        // in it, not at the next message.
        self.report(ctx);
    }

    /// Done once the results are published and the log is settled. A replica whose log is
    /// settled before publication is only between ballots: a lost ballot may come back with a
    /// citizen's retry many timeouts later.
    ///
    /// A replica that has applied the publication and is looking for a leader, with nothing
    /// it knows of left to commit or apply, is done too ([`Replica::settled_but_leaderless`]):
    /// its leader, settled, may have ended (each node ends on its own once it has been done
    /// for a while), or a heartbeat came late on a busy machine; were it not done then, it
    /// would stand for election for ever once the others ended, or start its wait again at
    /// every late heartbeat.
    pub(super) fn background(&self) -> bool {
        let r = &self.replica;
        r.state().phase() == Phase::Published && (r.settled() || r.settled_but_leaderless())
    }
}
