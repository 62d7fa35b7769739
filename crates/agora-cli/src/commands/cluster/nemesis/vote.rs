//! The nemesis of the voting service: members on this machine speak the line protocol to the
//! containers' members' ports while the faults fall — each logs in at a server of its own,
//! opens questions in turn and votes on every question it hears of, and when its server
//! stops answering connects to another and resumes its session (`RESUME <token> <last>`),
//! sending again the vote whose answer it did not get (the same vote is acknowledged again,
//! `again=yes`, if it had been counted). Once every fault is healed and the quiet period has
//! passed, the members stop, and what they saw is judged with the properties of `agora
//! vote`'s crowd (docs/vote-protocol.md):
//!
//! - `acked-votes-counted-once`: for every question, `STATS` counts each option's votes no
//!   fewer than were acknowledged, and no more than were acknowledged or left unanswered;
//! - `one-consensus`: at most one `CONSENSUS` per question in every member's view, the same
//!   as `STATS` says;
//! - `same-event-order`: whoever saw event number n saw the same event (`FAIL`s included);
//! - `members-did-their-part`: no member was refused what it may do (a second vote of its
//!   own refused, a lost session).

use super::super::files::VOTE_PORT;
use super::super::{status, Files};
use super::faults::Faults;
use super::logged::{self, Outcome, Property};
use super::report::HistOp;
use super::{unix_ns, ANSWER_WITHIN};
use crate::cli::ClusterNemesisArgs;
use crate::cluster_file::ClusterFile;
use crate::commands::vote::client::{field, json_tail, Client};
use crate::commands::vote::front::admin_token;
use crate::error::UserError;
use agora_lincheck::Kind;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long a member waits for a line before it takes its server for gone.
const PATIENCE: Duration = Duration::from_secs(2);
/// A member's pace: a command, or a `PING`, this often.
const PACE: Duration = Duration::from_millis(150);
/// How often one of the members opens a question.
const OPEN_EVERY: Duration = Duration::from_millis(700);

/// What one member saw and did.
#[derive(Default, Debug)]
struct Seen {
    /// Every event it was told of, by number.
    events: BTreeMap<u64, String>,
    /// Its acknowledged votes: question -> option.
    acked: BTreeMap<u64, String>,
    /// Votes sent whose answer never came, and not acknowledged since: question -> option.
    unanswered: BTreeMap<u64, String>,
    /// Questions its vote on was refused (closed before it came, or already voted).
    refused: BTreeSet<u64>,
    /// Its votes, for the timeline.
    ops: Vec<HistOp>,
    /// Times it resumed its session elsewhere, and logged in again (session failed).
    resumed: usize,
    relogged: usize,
    problems: Vec<String>,
    /// It fell silent on purpose.
    silent: bool,
    /// It heard of the silent member's `FAIL`.
    heard_fail: bool,
}

/// A member's account and where it stands.
struct Member {
    i: usize,
    name: String,
    password: String,
    addrs: Arc<Vec<SocketAddr>>,
    /// The server it speaks to (an index into `addrs`).
    at: usize,
    token: String,
    members: usize,
    seed: u64,
    /// For the member that falls silent: when (it keeps its connection open and says nothing
    /// more, so only the session timeout can tell).
    silent_at: Option<Instant>,
    /// The silent member's PIN, and how many of the others have heard of its `FAIL`.
    silent_pin: u32,
    heard_fail: Arc<std::sync::atomic::AtomicUsize>,
}

/// The option member `i` votes for on question `q`, drawn from the seed.
fn option(seed: u64, i: usize, q: u64) -> &'static str {
    if crate::commands::vote::crowd::mix(seed, (q << 16) ^ i as u64) % 2 == 0 {
        "A"
    } else {
        "B"
    }
}

impl Member {
    /// A connection with a session: its own again (`RESUME`), or a new login when the session
    /// is gone; tries every server in turn until one answers or `stop`.
    async fn session(&mut self, seen: &mut Seen, stop: &watch::Receiver<bool>) -> Option<Client> {
        let mut first = true;
        loop {
            if *stop.borrow() {
                return None;
            }
            if !first {
                self.at = (self.at + 1) % self.addrs.len();
                tokio::time::sleep(PACE).await;
            }
            first = false;
            let Ok(mut c) = Client::connect(self.addrs[self.at], PATIENCE).await else { continue };
            if !self.token.is_empty() {
                let last = seen.events.keys().next_back().copied().unwrap_or(0);
                match c.cmd(&format!("RESUME {} {last}", self.token)).await {
                    Ok(r) if r.starts_with("OK RESUME") => {
                        seen.resumed += 1;
                        return Some(c);
                    }
                    Ok(r) if !r.starts_with("ERR no-session") => continue,
                    Ok(_) => seen.relogged += 1,
                    Err(_) => continue,
                }
            }
            match c.cmd(&format!("LOGIN {} {}", self.name, self.password)).await {
                Ok(r) if r.starts_with("OK LOGIN") => {
                    self.token = field(&r, "token").unwrap_or("").to_string();
                    return Some(c);
                }
                _ => continue,
            }
        }
    }

    /// Votes, opens questions in turn and keeps its session until `stop`.
    async fn run(mut self, stop: watch::Receiver<bool>) -> Seen {
        let mut seen = Seen::default();
        let mut next_open = Instant::now() + OPEN_EVERY * (self.i as u32 + 1);
        let mut opened = 0u64;
        'sessions: while let Some(mut c) = self.session(&mut seen, &stop).await {
            loop {
                keep_events(&mut c, &mut seen);
                let fail = format!("FAIL {}", self.silent_pin);
                if !seen.heard_fail && seen.events.values().any(|e| *e == fail) {
                    seen.heard_fail = true;
                    self.heard_fail.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                if *stop.borrow() {
                    let _ = c.cmd("EXIT").await;
                    break 'sessions;
                }
                if self.silent_at.is_some_and(|t| Instant::now() >= t) {
                    // Silent, its connection open, until the run ends.
                    seen.silent = true;
                    let mut stop = stop.clone();
                    let _ = stop.wait_for(|s| *s).await;
                    break 'sessions;
                }
                // A question heard of and not voted on yet, or voted on with no answer.
                let questions: Vec<u64> = seen
                    .events
                    .values()
                    .filter_map(|e| e.strip_prefix("QUESTION ")?.split_whitespace().next()?.parse().ok())
                    .collect();
                let due =
                    questions.into_iter().find(|q| !seen.acked.contains_key(q) && !seen.refused.contains(q));
                let answer = if let Some(q) = due {
                    let o = option(self.seed, self.i, q);
                    let begin = unix_ns();
                    seen.unanswered.insert(q, o.into());
                    let r = c.cmd(&format!("VOTE {q} {o}")).await;
                    let end = unix_ns();
                    match &r {
                        Ok(r) if r.starts_with("OK VOTE") => {
                            seen.unanswered.remove(&q);
                            seen.acked.insert(q, o.into());
                            seen.ops.push(HistOp { begin, end: Some(end), kind: Kind::Ok });
                        }
                        Ok(r) if r.starts_with("ERR closed") => {
                            seen.unanswered.remove(&q);
                            seen.refused.insert(q);
                        }
                        Ok(r) if r.starts_with("ERR already-voted") => {
                            seen.problems.push(format!("its vote {o} on question {q} refused: {r}"));
                            seen.unanswered.remove(&q);
                            seen.refused.insert(q);
                        }
                        _ => seen.ops.push(HistOp { begin, end: None, kind: Kind::Info }),
                    }
                    r
                } else if Instant::now() >= next_open {
                    next_open = Instant::now() + OPEN_EVERY * self.members as u32;
                    opened += 1;
                    let text =
                        format!("OPEN votes={} member {} asks {opened} | yes | no", self.members, self.i);
                    c.cmd(&text).await
                } else {
                    tokio::time::sleep(PACE).await;
                    c.cmd("PING").await
                };
                match answer {
                    Ok(r) if r.starts_with("ERR no-session") => {
                        self.token.clear();
                        continue 'sessions;
                    }
                    Ok(r) if r.starts_with("ERR unavailable") || r.starts_with("ERR busy") => {
                        tokio::time::sleep(PACE).await;
                    }
                    Ok(_) => {}
                    // No answer within the patience, or the connection broke: elsewhere.
                    Err(_) => continue 'sessions,
                }
            }
        }
        seen
    }
}

/// Moves the events the connection received into what the member saw; one told of two
/// different events under one number is a problem.
fn keep_events(c: &mut Client, seen: &mut Seen) {
    for (n, e) in c.events.drain(..) {
        if let Some(old) = seen.events.insert(n, e.clone()) {
            if old != e {
                seen.problems.push(format!("event {n} was `{old}`, then `{e}`"));
            }
        }
    }
}

/// `agora cluster nemesis` on the voting service.
pub fn run(
    a: &ClusterNemesisArgs,
    docker: &super::super::docker::Docker,
    files: &Files,
    cf: &ClusterFile,
    faults: &Faults,
) -> Result<i32, UserError> {
    let servers = cf.nodes.len();
    let name = &files.name;
    let Some((leader_at, _)) = status::wait_for_vote_leader(
        docker,
        name,
        &status::Where::Compose,
        servers,
        Instant::now() + ANSWER_WITHIN,
    )?
    else {
        return Err(UserError(format!(
            "cluster {name}: no server leads within {} s; the nemesis starts from a healthy cluster",
            ANSWER_WITHIN.as_secs()
        )));
    };
    let addrs: Arc<Vec<SocketAddr>> =
        Arc::new(faults.nodes().iter().map(|n| SocketAddr::new(n.ip, VOTE_PORT)).collect());
    let members = a.clients.max(2);
    let tag = unix_ns() / 1_000_000 % 1_000_000_000;
    let names: Vec<String> = (0..members).map(|i| format!("n{tag}-m{i}")).collect();
    let passwords: Vec<String> = (0..members)
        .map(|i| format!("pw-{:016x}", crate::commands::vote::crowd::mix(a.seed, i as u64)))
        .collect();
    let admin = admin_token(&cf.secret(&files.cluster)?.to_hex());
    let rt = crate::commands::shared::tcp::runtime()?;
    let pins = rt.block_on(accounts(addrs[leader_at], &admin, &names, &passwords))?;
    // The last member falls silent a quarter into the schedule (with 3 members or more).
    let silent = (members >= 3).then_some(members - 1);
    let silent_at = Instant::now() + a.duration / 4;
    let heard_fail = Arc::new(std::sync::atomic::AtomicUsize::new(0));

    let (stop_tx, stop_rx) = watch::channel(false);
    let tasks: Vec<_> = (0..members)
        .map(|i| {
            let m = Member {
                i,
                name: names[i].clone(),
                password: passwords[i].clone(),
                addrs: addrs.clone(),
                at: i % servers,
                token: String::new(),
                members,
                seed: a.seed,
                silent_at: (silent == Some(i)).then_some(silent_at),
                silent_pin: silent.map_or(0, |s| pins[s]),
                heard_fail: heard_fail.clone(),
            };
            rt.spawn(m.run(stop_rx.clone()))
        })
        .collect();
    let leader = || {
        let cs = status::containers(docker, name).ok()?;
        cs.iter()
            .map(|c| (c.node, docker.stderr_log(&c.id).map(|l| status::leading(&l).0).ok().flatten()))
            .filter(|(n, t)| t.is_some() && cs.iter().any(|c| c.node == *n && c.state == "running"))
            .max_by_key(|(_, t)| *t)
            .map(|(n, _)| n)
    };
    let workload = format!("the workload: {members} members on this machine, voting");
    let logged::Broken { _rt, mut clock, stop, mut runs, healed_ns, last_heal } =
        logged::break_and_heal(a, name, servers, &workload, faults, &leader)?;
    let again = status::wait_for_vote_leader(
        docker,
        name,
        &status::Where::Compose,
        servers,
        Instant::now() + ANSWER_WITHIN,
    )?;
    let moved = faults.moved()?;
    clock.until(Duration::from_nanos(healed_ns - clock.start_ns) + a.quiet);
    // The others go on until they have heard of the silent member's failure, for at most the
    // session timeout after it fell silent, and a minute more (a guard, not a measure).
    let timeout = session_timeout(files)?;
    let fail_by = silent_at + timeout + ANSWER_WITHIN;
    let others = members - 1;
    while silent.is_some()
        && heard_fail.load(std::sync::atomic::Ordering::SeqCst) < others
        && Instant::now() < fail_by
        && !clock.interrupted
    {
        clock.until(Duration::from_secs_f64(clock.now_s() + 0.2));
    }
    drop(stop);
    let _ = stop_tx.send(true);
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(rt.block_on(t).map_err(|e| UserError(format!("a member stopped: {e}")))?);
    }
    let stats = rt.block_on(final_stats(&addrs, &names[0], &passwords[0], &seen));

    let ops: Vec<HistOp> = seen.iter().flat_map(|s| s.ops.iter().copied()).collect();
    super::report::count_during(&mut runs, &ops, clock.start_ns);
    let heal_errors = logged::heal_errors(&runs, last_heal, &moved);
    let mut after = judge(&seen, &stats);
    if let Some(m) = silent {
        after.push(silent_failed(&seen, m, pins[m], timeout));
    }
    after.push(Property {
        name: "answering after healing".into(),
        ok: again.is_some(),
        detail: match again {
            Some((n, _)) => format!("every server greets; node {n} leads"),
            None => format!("no server led within {} s of the healing", ANSWER_WITHIN.as_secs()),
        },
    });
    let resumed: usize = seen.iter().map(|s| s.resumed).sum();
    let relogged: usize = seen.iter().map(|s| s.relogged).sum();
    let outcome = Outcome {
        cluster: name.clone(),
        system: "vote",
        seed: a.seed,
        interrupted: clock.interrupted,
        healed_at_s: clock.s_of(healed_ns),
        heal_errors,
        checks: None,
        start_ns: clock.start_ns,
        runs,
        ops,
        what: "votes",
        after,
        extra: vec![(
            "members",
            serde_json::json!({ "members": members, "resumed": resumed, "logged_in_again": relogged,
                "questions": stats.len() }),
        )],
    };
    outcome.print(a.dir.json, a.out.as_deref())
}

/// A question's final `STATS`: each option's votes and the consensus, or why none came.
type QuestionStats = Result<(BTreeMap<String, u64>, Option<String>), String>;
/// Every question's final `STATS`.
type Stats = BTreeMap<u64, QuestionStats>;

/// Creates the members' accounts through the leader: their PINs.
async fn accounts(
    at: SocketAddr,
    admin: &str,
    names: &[String],
    passwords: &[String],
) -> Result<Vec<u32>, UserError> {
    let setup = async {
        let mut c = Client::connect(at, ANSWER_WITHIN).await?;
        c.ok(&format!("ADMIN {admin}")).await?;
        let mut pins = Vec::new();
        for (n, p) in names.iter().zip(passwords) {
            let r = c.ok(&format!("ACCOUNT {n} {p}")).await?;
            let pin = field(&r, "pin").and_then(|p| p.parse().ok());
            pins.push(pin.ok_or_else(|| std::io::Error::other(format!("ACCOUNT: no pin in `{r}`")))?);
        }
        c.ok("EXIT").await?;
        Ok::<_, std::io::Error>(pins)
    };
    setup.await.map_err(|e| UserError(format!("creating the members' accounts: {e}")))
}

/// `STATS` of every question the members heard of, asked as member 0 of any server that
/// answers: question -> (option -> votes, consensus).
async fn final_stats(addrs: &[SocketAddr], name: &str, password: &str, seen: &[Seen]) -> Stats {
    let questions: std::collections::BTreeSet<u64> = seen
        .iter()
        .flat_map(|s| s.events.values())
        .filter_map(|e| e.strip_prefix("QUESTION ")?.split_whitespace().next()?.parse().ok())
        .collect();
    let mut out = BTreeMap::new();
    let deadline = Instant::now() + ANSWER_WITHIN;
    let mut c: Option<Client> = None;
    for q in questions {
        let answer = loop {
            if c.is_none() {
                for at in addrs {
                    let Ok(mut d) = Client::connect(*at, PATIENCE).await else { continue };
                    if d.ok(&format!("LOGIN {name} {password}")).await.is_ok() {
                        c = Some(d);
                        break;
                    }
                }
            }
            let r = match c.as_mut() {
                Some(d) => d.cmd(&format!("STATS {q}")).await.map_err(|e| e.to_string()),
                None => Err("no server answers".into()),
            };
            match r {
                Ok(r) if r.starts_with("OK STATS") => break Ok(r),
                Ok(r) if !r.starts_with("ERR unavailable") => break Err(r),
                Ok(_) => {}
                Err(_) => c = None,
            }
            if Instant::now() >= deadline {
                break Err("no STATS within the deadline".to_string());
            }
            tokio::time::sleep(PACE).await;
        };
        let parsed = answer.and_then(|r| {
            let v = json_tail(&r, 2).ok_or_else(|| format!("STATS {q}: {r}"))?;
            let counts = v["options"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|o| (o["option"].as_str().unwrap_or("").to_string(), o["votes"].as_u64().unwrap_or(0)))
                .collect();
            Ok((counts, v["consensus"].as_str().map(String::from)))
        });
        out.insert(q, parsed);
    }
    out
}

/// The servers' session timeout, from the command line `up` wrote in the Compose file.
fn session_timeout(files: &Files) -> Result<Duration, UserError> {
    let text = std::fs::read_to_string(&files.compose)
        .map_err(|e| UserError(format!("cannot read {}: {e}", files.compose.display())))?;
    let ms = text
        .split("\"--session-timeout-ms\", \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next()?.parse().ok())
        .unwrap_or(super::super::files::SESSION_TIMEOUT_MS);
    Ok(Duration::from_millis(ms))
}

/// `FAIL` of the member that fell silent: every other member heard of it, once.
fn silent_failed(seen: &[Seen], m: usize, pin: u32, timeout: Duration) -> Property {
    let fail = format!("FAIL {pin}");
    let numbers: BTreeSet<u64> =
        seen.iter().flat_map(|s| s.events.iter()).filter(|(_, e)| **e == fail).map(|(n, _)| *n).collect();
    let deaf: Vec<usize> = (0..seen.len()).filter(|&i| i != m && !seen[i].heard_fail).collect();
    let others_failed =
        seen.iter().flat_map(|s| s.events.iter()).filter(|(_, e)| e.starts_with("FAIL ") && **e != fail);
    let others: BTreeSet<&u64> = others_failed.map(|(n, _)| n).collect();
    Property {
        name: "fail-of-the-silent-member".into(),
        ok: seen[m].silent && numbers.len() == 1 && deaf.is_empty(),
        detail: if !seen[m].silent {
            format!("member {m} never fell silent (the run ended first)")
        } else if numbers.len() != 1 || !deaf.is_empty() {
            format!(
                "member {m} (pin {pin}) fell silent: FAIL at event(s) {numbers:?}; members {deaf:?} never heard of \
                 it (session timeout {} ms)",
                timeout.as_millis()
            )
        } else {
            format!(
                "member {m} (pin {pin}) fell silent: FAIL once, event {}, heard by every other member; {} other \
                 FAIL(s)",
                numbers.first().expect("one"),
                others.len()
            )
        },
    }
}

/// The properties, judged on what the members saw and the final statistics.
fn judge(seen: &[Seen], stats: &Stats) -> Vec<Property> {
    let prop = |name: &str, r: Result<String, String>| Property {
        name: name.into(),
        ok: r.is_ok(),
        detail: r.unwrap_or_else(|e| e),
    };
    let problems: Vec<String> = seen
        .iter()
        .enumerate()
        .flat_map(|(i, s)| s.problems.iter().map(move |p| format!("member {i}: {p}")))
        .collect();
    let did = if problems.is_empty() {
        Ok("no member was refused what it may do".into())
    } else {
        Err(problems.join("; "))
    };

    // Every acknowledged vote counted, and nothing counted that no member sent.
    let counted = (|| {
        let acked: usize = seen.iter().map(|s| s.acked.len()).sum();
        for (q, st) in stats {
            let (counts, _) = st.as_ref().map_err(|e| format!("question {q}: {e}"))?;
            for o in ["A", "B"] {
                let sure = seen.iter().filter(|s| s.acked.get(q).is_some_and(|x| x == o)).count() as u64;
                let maybe =
                    seen.iter().filter(|s| s.unanswered.get(q).is_some_and(|x| x == o)).count() as u64;
                let got = counts.get(o).copied().unwrap_or(0);
                if got < sure || got > sure + maybe {
                    return Err(format!(
                        "question {q}, option {o}: STATS counts {got}, {sure} acknowledged and {maybe} unanswered"
                    ));
                }
            }
        }
        if acked == 0 {
            return Err("no vote was acknowledged: nothing to judge".into());
        }
        Ok(format!("{acked} acknowledged votes on {} questions, each counted", stats.len()))
    })();

    let consensus = (|| {
        let mut by_question: BTreeMap<u64, BTreeMap<u64, &str>> = BTreeMap::new();
        for s in seen {
            for (n, e) in s.events.iter().filter(|(_, e)| e.starts_with("CONSENSUS ")) {
                let q: u64 = e.split_whitespace().nth(1).and_then(|q| q.parse().ok()).unwrap_or(0);
                by_question.entry(q).or_default().insert(*n, e);
            }
        }
        for (q, events) in &by_question {
            if events.len() > 1 {
                return Err(format!(
                    "question {q}: {} consensus events: {:?}",
                    events.len(),
                    events.values()
                ));
            }
            let said = events.values().next().and_then(|e| field(e, "option"));
            if let Some(Ok((_, in_stats))) = stats.get(q) {
                if in_stats.as_deref() != said {
                    return Err(format!("question {q}: STATS says {in_stats:?}, the event {said:?}"));
                }
            }
        }
        Ok(format!("{} questions reached a consensus, once each", by_question.len()))
    })();

    let order = (|| {
        let mut by_number: BTreeMap<u64, (&str, usize)> = BTreeMap::new();
        for (i, s) in seen.iter().enumerate() {
            for (n, e) in &s.events {
                match by_number.insert(*n, (e, i)) {
                    Some((other, j)) if other != e => {
                        return Err(format!("event {n}: `{other}` for member {j}, `{e}` for member {i}"))
                    }
                    _ => {}
                }
            }
        }
        let fails = by_number.values().filter(|(e, _)| e.starts_with("FAIL ")).count();
        Ok(format!("{} events, {fails} FAIL, the same for every member who saw them", by_number.len()))
    })();
    vec![
        prop("members-did-their-part", did),
        prop("acked-votes-counted-once", counted),
        prop("one-consensus", consensus),
        prop("same-event-order", order),
    ]
}
