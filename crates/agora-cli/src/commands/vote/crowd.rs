//! The crowd of `agora vote`: simulated members, each a tokio task on its own connection
//! speaking the line protocol to one of the servers, who do what the report's members do —
//! log in, set up and negotiate their node info, discover, receive, vote, look at the
//! statistics, leave — while watching the events. Then the run is judged from what they saw:
//!
//! - `same-event-order`: every member saw every event after its login, numbered without a
//!   hole, and whoever saw an event number saw the same event;
//! - `acked-votes-counted-once`: the final `STATS` counts exactly the acknowledged votes;
//! - `one-vote-per-member`: a different second vote is refused, the same one acknowledged again;
//! - `one-consensus`: at most one `CONSENSUS` per question, the same for everyone and in `STATS`;
//! - `membership`: one `JOIN` per member, a `LEAVE` for each that left and a `FAIL` for each
//!   that vanished, no other;
//! - `resume-elsewhere`: a member that drops its connection resumes its session on another
//!   server with its token;
//! - `logout-ends-session`: a token does not work after its `LOGOUT`.
//!
//! A member whose server goes away mid-run (crashed from the live view) moves to the next
//! server and resumes its session there (`Client::roam_among`): the checks above hold
//! through it, and the report counts the members that moved.

use super::client::{field, json_tail, Client};
use crate::commands::shared::progress_bar;
use crate::error::UserError;
use serde_json::json;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Barrier;

/// What the crowd does.
pub struct Spec {
    /// Members.
    pub clients: usize,
    /// Members that go silent without logging out (the last ones).
    pub vanish: usize,
    /// Seeds the members' choices.
    pub seed: u64,
    /// The servers' session timeout (members ping every quarter of it).
    pub session_timeout: Duration,
    /// The administrator token, to create the accounts.
    pub admin: String,
    /// Output is JSON (no progress bar).
    pub json: bool,
}

/// What one member saw and did.
#[derive(Default)]
struct Seen {
    pin: u32,
    token: String,
    /// The event number its login (or resume) reply gave: events after it are its concern.
    from: u64,
    events: Vec<(u64, String)>,
    gaps: usize,
    /// Times its server went away and it moved to another.
    moves: usize,
    /// Its acknowledged first vote, as an option letter.
    voted: Option<String>,
    vote_latency: Option<Duration>,
    vanished: bool,
    left: bool,
    /// It sent a first vote (acknowledged or not).
    cast: bool,
    /// The checks this member ran itself (one vote per member, resume, logout).
    own: Vec<(&'static str, Result<(), String>)>,
    /// Problems it met: a failed check of its own.
    problems: Vec<String>,
}

/// The crowd's result.
pub struct Report {
    members: usize,
    seen: Vec<Seen>,
    stats: serde_json::Value,
    history: Vec<(u64, String)>,
    checks: Vec<(&'static str, Result<(), String>)>,
    votes_cast: usize,
}

/// A small seeded generator (splitmix64): the members' choices.
pub(crate) fn mix(seed: u64, i: u64) -> u64 {
    let mut z = seed.wrapping_add(i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn e(what: &str) -> impl Fn(std::io::Error) -> String + '_ {
    move |err| format!("{what}: {err}")
}

/// What member 0 asks last: the final `STATS` and every event from the first.
type Final = (serde_json::Value, Vec<(u64, String)>);

/// What every member task shares.
struct Shared {
    spec: Spec,
    addrs: Vec<SocketAddr>,
    /// All logged in and set up / all voted / all but member 0 done.
    logged_in: Barrier,
    voted: Barrier,
    done: Barrier,
    /// The members' passwords (made up by the run).
    passwords: Vec<String>,
    names: Vec<String>,
    /// Members who said yes to storing their info.
    stored: usize,
    /// Final results from member 0.
    final_stats: Mutex<Option<Final>>,
    bar: indicatif::ProgressBar,
}

impl Shared {
    /// Member `i` is one of the last, who vanish.
    fn vanishes(&self, i: usize) -> bool {
        i >= self.spec.clients - self.spec.vanish
    }

    /// How often a waiting member pings: four times per session timeout.
    fn ping(&self) -> Duration {
        self.spec.session_timeout / 4
    }
}

/// Creates the accounts (one by invitation), runs the members, and judges what they saw.
pub async fn run(spec: Spec, addrs: Vec<SocketAddr>) -> Result<Report, UserError> {
    let n = spec.clients;
    let patience = spec.session_timeout * 10 + Duration::from_secs(60);
    let names: Vec<String> = (0..n).map(|i| format!("member{i:04}")).collect();
    let passwords: Vec<String> = (0..n).map(|i| format!("pw-{:016x}", mix(spec.seed, i as u64))).collect();
    let mut admin =
        Client::connect(addrs[0], patience).await.map_err(|e| UserError(format!("server 0: {e}")))?;
    let setup = async {
        admin.ok(&format!("ADMIN {}", spec.admin)).await?;
        for i in 0..n - 1 {
            admin.ok(&format!("ACCOUNT {} {}", names[i], passwords[i])).await?;
        }
        let invite = admin.ok("INVITE").await?;
        let token = field(&invite, "token").unwrap_or("").to_string();
        let mut newcomer = Client::connect(addrs[(n - 1) % addrs.len()], patience).await?;
        newcomer.ok(&format!("REGISTER {token} {} {}", names[n - 1], passwords[n - 1])).await?;
        let again = newcomer.cmd(&format!("REGISTER {token} someone-else {}", passwords[0])).await?;
        if !again.starts_with("ERR bad-invite") {
            return Err(std::io::Error::other(format!("a spent invitation was taken again: {again}")));
        }
        newcomer.ok("EXIT").await?;
        admin.ok("EXIT").await.map(|_| ())
    };
    setup.await.map_err(|e| UserError(format!("creating the accounts: {e}")))?;
    let stored = (0..n).filter(|i| i % 3 != 2).count();
    let bar = progress_bar(n as u64, "{bar:30} {pos}/{len} members done {msg}", spec.json);
    let shared = Arc::new(Shared {
        logged_in: Barrier::new(n),
        voted: Barrier::new(n),
        done: Barrier::new(n),
        passwords,
        names,
        stored,
        final_stats: Mutex::new(None),
        addrs,
        bar,
        spec,
    });
    let mut tasks = Vec::new();
    for i in 0..n {
        let s = shared.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = Seen::default();
            if let Err(p) = member(&s, i, &mut seen, patience).await {
                seen.problems.push(p);
            }
            s.bar.inc(1);
            seen
        }));
    }
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.map_err(|e| UserError(format!("a member task failed: {e}")))?);
    }
    shared.bar.finish_and_clear();
    let (stats, history) = shared.final_stats.lock().expect("not poisoned").take().unwrap_or_default();
    let votes_cast = seen.iter().filter(|s| s.cast).count();
    let mut report = Report { members: n, seen, stats, history, checks: Vec::new(), votes_cast };
    report.judge();
    Ok(report)
}

/// Passes barrier `b` while pinging, so that the session stays alive during the wait; a
/// failed `PING` ends the pings, not the wait (the others wait at `b` too).
async fn wait_at(b: &Barrier, c: &mut Client, ping: Duration) -> Result<(), String> {
    let wait = b.wait();
    tokio::pin!(wait);
    loop {
        tokio::select! {
            _ = &mut wait => return Ok(()),
            _ = tokio::time::sleep(ping) => {
                if let Err(err) = c.ok("PING").await {
                    wait.await;
                    return Err(format!("PING: {err}"));
                }
            }
        }
    }
}

/// One member's life. Barriers are passed whatever happens (an error is kept for after),
/// so that one member's trouble does not hang the others.
async fn member(s: &Shared, i: usize, seen: &mut Seen, patience: Duration) -> Result<(), String> {
    let addr = s.addrs[i % s.addrs.len()];
    let mut c = match Client::connect(addr, patience).await {
        Ok(c) => c,
        Err(err) => {
            s.logged_in.wait().await;
            s.voted.wait().await;
            s.done.wait().await;
            return Err(format!("connect {addr}: {err}"));
        }
    };
    // A member that vanishes moves too, up to the moment it goes silent.
    c.roam_among(s.addrs.clone(), i % s.addrs.len());
    let outcome = life(s, i, &mut c, seen).await;
    seen.moves = c.moves();
    outcome
}

/// [`member`] once connected.
async fn life(s: &Shared, i: usize, c: &mut Client, seen: &mut Seen) -> Result<(), String> {
    let (vanishing, ping) = (s.vanishes(i), s.ping());
    let first = first_part(s, i, c, seen).await;
    if first.is_err() {
        s.logged_in.wait().await;
        s.voted.wait().await;
        s.done.wait().await;
        return first;
    }
    if let Err(e) = wait_at(&s.logged_in, c, ping).await {
        s.voted.wait().await;
        s.done.wait().await;
        return Err(e);
    }
    let second = second_part(s, i, c, seen).await;
    if vanishing {
        s.voted.wait().await;
        s.done.wait().await;
        seen.events = std::mem::take(&mut c.events);
        return second;
    }
    if second.is_err() {
        s.voted.wait().await;
        s.done.wait().await;
        return second;
    }
    if let Err(e) = wait_at(&s.voted, c, ping).await {
        s.done.wait().await;
        return Err(e);
    }
    let third = third_part(s, i, c, seen).await;
    seen.events.extend(std::mem::take(&mut c.events));
    seen.gaps += c.gaps;
    third
}

/// Log in, set up, negotiate (every third member refuses).
async fn first_part(s: &Shared, i: usize, c: &mut Client, seen: &mut Seen) -> Result<(), String> {
    let r = c.ok(&format!("LOGIN {} {}", s.names[i], s.passwords[i])).await.map_err(e("LOGIN"))?;
    seen.pin = field(&r, "pin").and_then(|p| p.parse().ok()).ok_or("LOGIN: no pin")?;
    seen.from = field(&r, "events").and_then(|p| p.parse().ok()).ok_or("LOGIN: no events")?;
    seen.token = field(&r, "token").ok_or("LOGIN: no token")?.to_string();
    let bad = c.cmd(&format!("LOGIN {} wrong", s.names[i])).await.map_err(e("LOGIN"))?;
    if !bad.starts_with("ERR logged-in") {
        return Err(format!("a second LOGIN on a logged-in connection: {bad}"));
    }
    let setup = format!("SETUP vote-{i}, relay | tcp, utf8 | max {} clients", 10 + i);
    c.ok(&setup).await.map_err(e("SETUP"))?;
    c.ok(&format!("NEGOTIATE {}", if i % 3 == 2 { "no" } else { "yes" })).await.map_err(e("NEGOTIATE"))?;
    Ok(())
}

/// Member 0 opens the question; everyone discovers, receives, votes.
async fn second_part(s: &Shared, i: usize, c: &mut Client, seen: &mut Seen) -> Result<(), String> {
    let (vanishing, ping) = (s.vanishes(i), s.ping());
    let n = s.spec.clients;
    let d = c.ok("DISCOVER").await.map_err(e("DISCOVER"))?;
    if field(&d, "count") != Some(&n.to_string()) {
        return Err(format!("DISCOVER after every login: {d}"));
    }
    let r = c.ok("RECEIVE all").await.map_err(e("RECEIVE"))?;
    let stored = json_tail(&r, 2).and_then(|v| v.as_array().map(|a| a.len()));
    if stored != Some(s.stored) {
        return Err(format!("RECEIVE all: {stored:?} stored, {} agreed", s.stored));
    }
    if i == 0 {
        let voters = n - s.spec.vanish;
        let open = format!("OPEN votes={voters} Would you rather fly or be invisible? | fly | be invisible");
        // Sent again only if its server went away before it was answered and, the session
        // resumed elsewhere (which replays the events missed), no question was opened: an
        // `OPEN` cut off after it reached the log would otherwise open a second question.
        // (One still in a crashed leader's log, committed later by the next, would too.)
        loop {
            match c.cmd_once(&open).await.map_err(e("OPEN"))? {
                Some(r) if r.starts_with("OK OPEN") => {
                    field(&r, "question").ok_or("OPEN: no question")?;
                    break;
                }
                Some(r) => return Err(format!("OPEN: {r}")),
                None if c.events.iter().any(|(_, e)| e.starts_with("QUESTION ")) => break,
                None => {}
            }
        }
    }
    c.wait_event(ping, |e| e.starts_with("QUESTION ")).await.map_err(e("waiting for QUESTION"))?;
    let question = c.events.iter().rev().find_map(|(_, e)| {
        e.strip_prefix("QUESTION ").and_then(|r| r.split_whitespace().next()).map(String::from)
    });
    let question = question.ok_or("no question")?;
    if vanishing {
        // Gone without a word: the cluster fails it after the session timeout.
        seen.vanished = true;
        return Ok(());
    }
    let option = if mix(s.spec.seed ^ 0xabcd, i as u64) % 10 < 7 { "A" } else { "B" };
    let sent = Instant::now();
    seen.cast = true;
    let moves = c.moves();
    let r = c.ok(&format!("VOTE {question} {option}")).await.map_err(e("VOTE"))?;
    seen.vote_latency = Some(sent.elapsed());
    // Sent again after a move, a vote that had reached the log is acknowledged `again=yes`.
    let again_ok = if c.moves() > moves { ["no", "yes"].as_slice() } else { ["no"].as_slice() };
    if !field(&r, "again").is_some_and(|a| again_ok.contains(&a)) {
        return Err(format!("a first vote: {r}"));
    }
    seen.voted = Some(option.to_string());
    if i == 1 {
        let again = c.ok(&format!("VOTE {question} {option}")).await.map_err(e("VOTE"))?;
        let other = if option == "A" { "B" } else { "A" };
        let refused = c.cmd(&format!("VOTE {question} {other}")).await.map_err(e("VOTE"))?;
        let ok = field(&again, "again") == Some("yes") && refused.starts_with("ERR already-voted");
        let verdict =
            if ok { Ok(()) } else { Err(format!("the same vote: `{again}`; another: `{refused}`")) };
        seen.own.push(("one-vote-per-member", verdict));
    }
    if i == 1 && s.addrs.len() > 1 {
        let verdict = roam(s, i, c, seen).await;
        seen.own.push(("resume-elsewhere", verdict));
    }
    Ok(())
}

/// Drops the connection and resumes the session on the next server with its token.
async fn roam(s: &Shared, i: usize, c: &mut Client, seen: &mut Seen) -> Result<(), String> {
    let last = c.events.last().map_or(seen.from, |(n, _)| *n);
    // The next server after its own that takes a connection (one may be crashed).
    let at = c.server().unwrap_or(i % s.addrs.len());
    let mut refused = Vec::new();
    let mut next = None;
    for k in 1..s.addrs.len() {
        let j = (at + k) % s.addrs.len();
        match Client::connect(s.addrs[j], c.patience).await {
            Ok(d) => {
                next = Some((j, d));
                break;
            }
            Err(err) => refused.push(format!("{}: {err}", s.addrs[j])),
        }
    }
    let Some((j, mut d)) = next else { return Err(format!("connect: {}", refused.join("; "))) };
    c.hand_roam_to(&mut d, j);
    let r = d.ok(&format!("RESUME {} {last}", seen.token)).await.map_err(e("RESUME"))?;
    if field(&r, "pin") != Some(&seen.pin.to_string()) {
        return Err(format!("RESUME on another server: {r}"));
    }
    let mut events = std::mem::take(&mut c.events);
    events.append(&mut d.events);
    d.events = events;
    // The old connection closes here; its session lives on at `next`.
    std::mem::swap(c, &mut d);
    Ok(())
}

/// After every vote: wait for the close (and the failures), look at the statistics, leave.
async fn third_part(s: &Shared, i: usize, c: &mut Client, seen: &mut Seen) -> Result<(), String> {
    let ping = s.ping();
    // Whatever fails, `done` is passed: member 0 waits there for all the others.
    let closing = close_and_fail(s, c, ping).await;
    if i == 0 {
        let waited = wait_at(&s.done, c, ping).await;
        closing.and(waited)?;
        let stats = c.ok("STATS").await.map_err(e("STATS"))?;
        let history = c.all_events().await.map_err(e("EVENTS"))?;
        *s.final_stats.lock().expect("not poisoned") =
            Some((json_tail(&stats, 2).unwrap_or_default(), history));
        c.ok("EXIT").await.map_err(e("EXIT"))?;
    } else {
        let leaving = match closing {
            Ok(()) => leave(i, c, seen).await,
            Err(err) => Err(err),
        };
        s.done.wait().await;
        leaving?;
    }
    seen.left = true;
    Ok(())
}

/// Waits for the question's close and the vanished members' failures; then `STATS`.
async fn close_and_fail(s: &Shared, c: &mut Client, ping: Duration) -> Result<(), String> {
    c.wait_event(ping, |e| e.starts_with("CLOSED ")).await.map_err(e("waiting for CLOSED"))?;
    let fails = |c: &Client| c.events.iter().filter(|(_, e)| e.starts_with("FAIL ")).count();
    while fails(c) < s.spec.vanish {
        let from = c.events.len();
        c.wait_event_from(from, ping, |e| e.starts_with("FAIL ")).await.map_err(e("waiting for FAIL"))?;
    }
    c.ok("STATS").await.map_err(e("STATS")).map(|_| ())
}

/// A member other than 0 leaves: member 2 logs out first and checks its token is dead.
async fn leave(i: usize, c: &mut Client, seen: &mut Seen) -> Result<(), String> {
    if i == 2 {
        // After LOGOUT, the token works nowhere.
        c.ok("LOGOUT").await.map_err(e("LOGOUT"))?;
        let resumed = c.cmd(&format!("RESUME {} 0", seen.token)).await.map_err(e("RESUME"))?;
        let stats = c.cmd("STATS").await.map_err(e("STATS"))?;
        let ok = resumed.starts_with("ERR no-session") && stats.starts_with("ERR not-logged-in");
        let verdict =
            if ok { Ok(()) } else { Err(format!("after LOGOUT, RESUME: `{resumed}`, STATS: `{stats}`")) };
        seen.own.push(("logout-ends-session", verdict));
    }
    c.ok("EXIT").await.map_err(e("EXIT"))?;
    c.drain().await;
    Ok(())
}

/// The `q` quantile (0..=1) of `l` in ms, sorting it; none when it is empty.
pub(super) fn percentile_ms(l: &mut [Duration], q: f64) -> Option<f64> {
    l.sort_unstable();
    if l.is_empty() {
        return None;
    }
    let i = ((l.len() as f64 * q).ceil() as usize).clamp(1, l.len()) - 1;
    Some(l[i].as_secs_f64() * 1e3)
}

impl Report {
    fn judge(&mut self) {
        let problems: Vec<String> = self
            .seen
            .iter()
            .enumerate()
            .flat_map(|(i, s)| s.problems.iter().map(move |p| format!("member {i}: {p}")))
            .collect();
        self.checks.push((
            "members-did-their-part",
            if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) },
        ));
        for name in ["one-vote-per-member", "resume-elsewhere", "logout-ends-session"] {
            let verdicts: Vec<&Result<(), String>> =
                self.seen.iter().flat_map(|s| &s.own).filter(|(n, _)| *n == name).map(|(_, v)| v).collect();
            let verdict = match verdicts.iter().find(|v| v.is_err()) {
                Some(Err(e)) => Err(e.clone()),
                _ if verdicts.is_empty() => continue,
                _ => Ok(()),
            };
            self.checks.push((name, verdict));
        }
        self.checks.push(("same-event-order", self.same_order()));
        self.checks.push(("acked-votes-counted-once", self.counted_once()));
        self.checks.push(("one-consensus", self.one_consensus()));
        self.checks.push(("membership", self.membership()));
    }

    fn same_order(&self) -> Result<(), String> {
        let mut by_number: BTreeMap<u64, &str> = BTreeMap::new();
        for (i, s) in self.seen.iter().enumerate() {
            if s.gaps > 0 {
                return Err(format!("member {i} was told it missed events"));
            }
            let mut expect = s.from + 1;
            for (n, e) in &s.events {
                if *n != expect && !s.vanished {
                    return Err(format!("member {i} saw event {n} after {}", expect - 1));
                }
                expect = n + 1;
                match by_number.insert(*n, e) {
                    Some(other) if other != e => {
                        return Err(format!("event {n}: `{other}` for one member, `{e}` for member {i}"))
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    fn counted_once(&self) -> Result<(), String> {
        let counts: BTreeMap<String, u64> = self.stats["options"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|o| {
                        (o["option"].as_str().unwrap_or("").to_string(), o["votes"].as_u64().unwrap_or(0))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut acked: BTreeMap<String, u64> = BTreeMap::new();
        for s in &self.seen {
            if let Some(o) = &s.voted {
                *acked.entry(o.clone()).or_default() += 1;
            }
        }
        let counted: BTreeMap<String, u64> = counts.into_iter().filter(|(_, v)| *v > 0).collect();
        if counted == acked {
            Ok(())
        } else {
            Err(format!("STATS counts {counted:?}, the members were acknowledged {acked:?}"))
        }
    }

    fn one_consensus(&self) -> Result<(), String> {
        let mut seen: BTreeMap<u64, &str> = BTreeMap::new();
        for s in &self.seen {
            for (n, e) in s.events.iter().chain(&self.history) {
                if e.starts_with("CONSENSUS ") {
                    seen.insert(*n, e);
                }
            }
        }
        if seen.len() > 1 {
            return Err(format!("{} consensus events: {:?}", seen.len(), seen.values().collect::<Vec<_>>()));
        }
        let in_stats = self.stats["consensus"].as_str();
        let in_event = seen.values().next().and_then(|e| field(e, "option"));
        if in_stats == in_event {
            Ok(())
        } else {
            Err(format!("STATS says {in_stats:?}, the event {in_event:?}"))
        }
    }

    fn membership(&self) -> Result<(), String> {
        let count = |kind: &str, pin: u32| {
            self.history
                .iter()
                .filter(|(_, e)| e.split_whitespace().take(2).eq([kind, &pin.to_string()]))
                .count()
        };
        for (i, s) in self.seen.iter().enumerate() {
            let want = (1, usize::from(s.left && i != 0), usize::from(s.vanished));
            let got = (count("JOIN", s.pin), count("LEAVE", s.pin), count("FAIL", s.pin));
            // Member 0 asked for the history before it left; member 1 logged out once to roam.
            let leave_ok = got.1 == want.1 || (i == 1 && got.1 == 1 && !s.left);
            if got.0 != want.0 || got.2 != want.2 || !leave_ok {
                return Err(format!(
                    "member {i} (pin {}): JOIN/LEAVE/FAIL {got:?}, expected {want:?}",
                    s.pin
                ));
            }
        }
        Ok(())
    }

    fn latency_ms(&self, q: f64) -> Option<f64> {
        let mut l: Vec<Duration> = self.seen.iter().filter_map(|s| s.vote_latency).collect();
        percentile_ms(&mut l, q)
    }

    /// The checks as the live page shows a checker's verdicts: each `ok`, or `violated` with
    /// why (the members' checks carry no node or time), and the command that runs it again.
    pub fn verdicts(&self, reproduce: &str) -> serde_json::Value {
        let rows: Vec<serde_json::Value> = self
            .checks
            .iter()
            .map(|(name, r)| match r {
                Ok(()) => json!({ "property": name, "verdict": "ok" }),
                Err(why) => json!({
                    "property": name, "verdict": "violated", "node": null, "detail": why,
                    "reproduce": reproduce, "count": 1,
                }),
            })
            .collect();
        json!({ "end": "the members are done", "reproduce": reproduce, "properties": rows })
    }

    /// Prints the report; returns the exit code (1 when a check failed).
    pub fn print(&self, json: bool) -> i32 {
        let passed = self.checks.iter().all(|(_, r)| r.is_ok());
        let delivered: usize = self.seen.iter().map(|s| s.events.len()).sum();
        let acked = self.seen.iter().filter(|s| s.voted.is_some()).count();
        let consensus = self.stats["consensus"].as_str().map(String::from);
        let moved = self.seen.iter().filter(|s| s.moves > 0).count();
        let moves: usize = self.seen.iter().map(|s| s.moves).sum();
        if json {
            let checks: serde_json::Map<String, serde_json::Value> = self
                .checks
                .iter()
                .map(|(k, r)| (k.to_string(), r.as_ref().err().map_or(json!("ok"), |e| json!(e))))
                .collect();
            let v = json!({
                "members": self.members,
                "votes_cast": self.votes_cast,
                "votes_acknowledged": acked,
                "events_delivered": delivered,
                "members_moved": moved,
                "moves": moves,
                "consensus": consensus,
                "stats": self.stats,
                "history": self.history.iter().map(|(n, e)| format!("{n} {e}")).collect::<Vec<_>>(),
                "vote_latency_ms": {"p50": self.latency_ms(0.5), "p99": self.latency_ms(0.99)},
                "checks": checks,
                "checks_passed": passed,
            });
            println!("{v}");
        } else {
            println!("question   {}", self.stats["text"].as_str().unwrap_or("?"));
            for o in self.stats["options"].as_array().into_iter().flatten() {
                println!(
                    "  {} {:<20} {:>5} votes {:>6}%",
                    o["option"].as_str().unwrap_or(""),
                    o["text"].as_str().unwrap_or(""),
                    o["votes"],
                    o["percent"]
                );
            }
            println!("consensus  {}", consensus.as_deref().unwrap_or("none"));
            println!(
                "members {}, votes cast {}, acknowledged {acked}, events delivered {delivered}",
                self.members, self.votes_cast
            );
            if let (Some(p50), Some(p99)) = (self.latency_ms(0.5), self.latency_ms(0.99)) {
                println!("vote latency  p50 {p50:.1} ms  p99 {p99:.1} ms");
            }
            if moves > 0 {
                println!("members whose server went away and who moved to another: {moved} ({moves} moves)");
            }
            println!("membership history");
            for (n, e) in &self.history {
                println!("  {n:>4} {e}");
            }
            println!("checks");
            for (name, r) in &self.checks {
                match r {
                    Ok(()) => println!("  ok      {name}"),
                    Err(e) => println!("  FAILED  {name}: {e}"),
                }
            }
        }
        i32::from(!passed)
    }
}
