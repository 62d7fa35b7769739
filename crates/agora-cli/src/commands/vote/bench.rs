//! `agora vote bench`: the voting service under load (issue 16, "Speed"). Many members connect
//! at once, each logged in, each voting; the bench measures what the goals speak of — logins
//! per second (argon2id's deliberate work, apart), acknowledged votes per second and their
//! latency, how long one `JOIN` takes to reach every member (and the questions' `QUESTION`
//! events, which every member reads before the votes' clock starts), and, with `--kill-leader`, how
//! long after SIGKILL of the leader every member of the dead server is back in its session,
//! with no acknowledged vote lost — and the memory a member costs.
//!
//! By default the bench starts its own cluster: `agora vote serve` processes (so that the
//! members' sockets and the servers' sockets are in different processes, each within its
//! open-file limit), each handed its two sockets bound here. With `--servers` it loads a
//! running cluster instead (no kill, no server memory). It is a benchmark, not a test: it
//! prints figures; the only verdicts are the consistency checks (`consistent`).

use super::client::{field, json_tail, Client};
use super::crowd::{mix, percentile_ms};
use super::front::admin_token;
use crate::cli::VoteBenchArgs;
use crate::commands::shared::progress_bar;
use crate::commands::shared::tcp::{listen_for_clients, runtime};
use crate::error::UserError;
use agora_net::handshake::Secret;
use serde_json::json;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;
use tokio::task::JoinSet;

/// How long a member waits for a line: a guard against a stuck cluster, long enough for every
/// login of a large run to queue behind argon2id.
const PATIENCE: Duration = Duration::from_secs(1800);
/// Connections that create the accounts at once.
const ADMINS: usize = 8;
/// Logins in flight at once: argon2id's work queues at the servers.
const LOGINS_IN_FLIGHT: usize = 64;
/// Tries of one `LOGIN` answered `ERR unavailable` or `ERR busy`, at most.
const LOGIN_TRIES: u32 = 8;
/// The pause before the second try of a `LOGIN`; twice as long before the third, and so on.
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// A member back from a dead server that has no `HELLO` within this time connects again,
/// to the next live server. On a loaded loopback a burst of connections can overflow a
/// server's accept queue; with SYN cookies the client may then believe itself connected to a
/// server that has no trace of it, and would wait for its `HELLO` forever.
const HELLO_WITHIN: Duration = Duration::from_secs(3);
/// Connections a member back from a dead server tries, at most.
const RECONNECT_TRIES: u32 = 10;
/// The options of every question: members spread their votes over them evenly, so that no
/// consensus closes a question before everyone voted.
const OPTIONS: [&str; 3] = ["A", "B", "C"];

/// `agora vote bench`.
pub fn run(a: &VoteBenchArgs) -> Result<i32, UserError> {
    // Raised to the hard limit, as every command that holds many sockets does.
    let fd_limit = agora_net::limits::fd_limit();
    let need = a.clients as u64 + 64;
    if fd_limit < need {
        eprintln!(
            "agora vote bench: the open-file limit is {fd_limit}, {need} wanted for {} members: \
             some connections will fail (raise `ulimit -Hn`)",
            a.clients
        );
    }
    runtime()?.block_on(async move {
        let mut cluster = match &a.servers {
            Some(list) => Cluster::remote(list, a.admin_token.clone())?,
            None => Cluster::spawn(a.cluster_size).await?,
        };
        if a.kill_leader && cluster.children.is_empty() {
            return Err(UserError("--kill-leader: only with the cluster the bench starts itself".into()));
        }
        let r = bench(a, &mut cluster).await;
        cluster.stop();
        let mut report = r?;
        report["fd_limit"] = json!(fd_limit);
        print(&report, a.json);
        Ok(i32::from(report["consistent"] != json!(true)))
    })
}

/// The servers under load.
struct Cluster {
    addrs: Vec<SocketAddr>,
    admin: String,
    /// The processes the bench started (none with `--servers`), by server id.
    children: Vec<Option<tokio::process::Child>>,
    /// Who leads, from the servers' `--events`.
    leader: Arc<Mutex<Leaders>>,
    /// The data directory of the servers the bench started.
    _dir: Option<tempfile::TempDir>,
}

impl Cluster {
    fn remote(list: &str, admin: Option<String>) -> Result<Cluster, UserError> {
        let admin = admin.ok_or_else(|| UserError("--servers needs --admin-token".into()))?;
        let addrs = list
            .split(',')
            .map(|s| {
                std::net::ToSocketAddrs::to_socket_addrs(s.trim())
                    .ok()
                    .and_then(|mut i| i.next())
                    .ok_or_else(|| UserError(format!("--servers: cannot resolve `{s}`")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Cluster { addrs, admin, children: Vec::new(), leader: Arc::default(), _dir: None })
    }

    /// Starts `n` `agora vote serve` processes of a new cluster file, each handed its cluster
    /// and members' sockets (bound here on port 0) as descriptors 3 and 4.
    async fn spawn(n: usize) -> Result<Cluster, UserError> {
        let io = |e: std::io::Error| UserError(format!("starting the servers: {e}"));
        let dir = tempfile::Builder::new().prefix("agora-vote-bench-").tempdir().map_err(io)?;
        let bind = || std::net::TcpListener::bind("127.0.0.1:0");
        let peers = (0..n).map(|_| bind()).collect::<Result<Vec<_>, _>>().map_err(io)?;
        // The members' sockets with a long accept queue: the dead leader's members all come
        // back at once.
        let any: SocketAddr = "127.0.0.1:0".parse().expect("literal address");
        let members = (0..n)
            .map(|_| listen_for_clients(any).and_then(|l| l.into_std()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(io)?;
        let secret = Secret::random().to_hex();
        let mut text = format!(
            "cluster = \"vote-bench\"\nprotocol = \"vote\"\nsecret = \"{secret}\"\ndata_dir = \"data\"\n"
        );
        let mut addrs = Vec::new();
        for i in 0..n {
            let (p, m) = (peers[i].local_addr().map_err(io)?, members[i].local_addr().map_err(io)?);
            text.push_str(&format!("[[node]]\nid = {i}\naddr = \"{p}\"\nvote = \"{m}\"\n"));
            addrs.push(m);
        }
        let config = dir.path().join("cluster.toml");
        std::fs::write(&config, text).map_err(io)?;
        let exe = std::env::current_exe().map_err(io)?;
        let leader: Arc<Mutex<Leaders>> = Arc::default();
        let mut children = Vec::new();
        for i in 0..n {
            let mut cmd = tokio::process::Command::new(&exe);
            cmd.args(["vote", "serve", "--new", "--events", "--listen-fd", "3", "--vote-fd", "4"])
                .args(["--id", &i.to_string(), "--session-timeout-ms", "3600000", "--config"])
                .arg(&config)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .env("RUST_LOG", "warn,agora_net::node=info")
                .kill_on_drop(true);
            let (a, b) = (peers[i].as_raw_fd(), members[i].as_raw_fd());
            // SAFETY: prctl, fcntl and dup2 are async-signal-safe; the descriptors are ours.
            unsafe {
                cmd.pre_exec(move || {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    let (a2, b2) = (libc::fcntl(a, libc::F_DUPFD, 100), libc::fcntl(b, libc::F_DUPFD, 100));
                    if a2 < 0 || b2 < 0 || libc::dup2(a2, 3) < 0 || libc::dup2(b2, 4) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    libc::close(a2);
                    libc::close(b2);
                    Ok(())
                });
            }
            let mut child = cmd.spawn().map_err(io)?;
            let stderr = child.stderr.take().ok_or_else(|| UserError("no stderr".into()))?;
            tokio::spawn(follow(i, stderr, leader.clone()));
            children.push(Some(child));
        }
        // The servers hold their sockets now. The bench lets go of its own: a server that dies
        // must refuse connections, not leave them queued on a socket no one accepts on.
        drop((peers, members));
        Ok(Cluster { addrs, admin: admin_token(&secret), children, leader, _dir: Some(dir) })
    }

    /// An error naming every server the bench started that has exited, and how, if any has.
    fn all_running(&mut self, phase: &str) -> Result<(), UserError> {
        let mut gone = Vec::new();
        for (i, c) in self.children.iter_mut().enumerate() {
            if let Some(Ok(Some(status))) = c.as_mut().map(|c| c.try_wait()) {
                gone.push(format!("server {i} ({status})"));
            }
        }
        if gone.is_empty() {
            return Ok(());
        }
        Err(UserError(format!("{} exited {phase}; its log lines are above", gone.join(", "))))
    }

    /// How many times a server said it became leader so far (none with `--servers`).
    fn elected(&self) -> u64 {
        self.leader.lock().expect("not poisoned").elected
    }

    /// The servers' driver steps of 20 ms or more (which held their driver up), and their
    /// commits of 20 ms or more (on the committer thread, which held up only the messages of
    /// their batch): how many of each, and the longest (ms).
    fn slow(&self) -> (serde_json::Value, serde_json::Value) {
        let l = self.leader.lock().expect("not poisoned");
        let [steps, commits] =
            l.slow.map(|(count, longest_ms)| json!({"count": count, "longest_ms": longest_ms}));
        (steps, commits)
    }

    /// The slow steps and commits (as [`Cluster::slow`]) that began between `from` and
    /// `from + span` (when the bench read the line, less how long the step took), each with
    /// when it began (s after `from`), the server, what the step handled (`commit` for a
    /// commit) and how long it took (ms): what held the servers up while the members voted.
    fn slow_between(&self, from: Instant, span: Duration) -> serde_json::Value {
        let l = self.leader.lock().expect("not poisoned");
        let rows: Vec<serde_json::Value> = l
            .slow_log
            .iter()
            .map(|(at, server, commit, ms, what)| {
                let read = at.checked_duration_since(from).map(|d| d.as_secs_f64());
                (read.map(|r| r - ms / 1e3), server, commit, ms, what)
            })
            .filter(|(began, ..)| began.is_some_and(|b| b >= 0.0 && b <= span.as_secs_f64()))
            .map(|(began, server, commit, ms, what)| {
                let what = if *commit { "commit" } else { what.as_str() };
                json!({"at_s": began, "server": server, "what": what, "ms": ms})
            })
            .collect();
        json!(rows)
    }

    /// The process ids of the servers still running.
    fn pids(&self) -> Vec<u32> {
        self.children.iter().flatten().filter_map(|c| c.id()).collect()
    }

    /// The sum of `key` (`VmRSS`, `VmHWM`) over the running servers, in bytes.
    fn memory(&self, key: &str) -> Option<u64> {
        let pids = self.pids();
        (!pids.is_empty())
            .then(|| pids.iter().filter_map(|p| status_bytes(&format!("/proc/{p}/status"), key)).sum())
    }

    fn stop(&mut self) {
        self.leader.lock().expect("not poisoned").killed.extend(0..self.children.len());
        for c in self.children.iter_mut().flatten() {
            let _ = c.start_kill();
        }
    }
}

/// The leaders the servers reported.
#[derive(Default)]
struct Leaders {
    /// The latest (term, server) that said it leads.
    latest: Option<(u64, usize)>,
    /// How many times a server said it became leader (the first election included).
    elected: u64,
    /// Steps, then commits, of the servers' nodes that took 20 ms or more: how many, and the
    /// longest (ms).
    slow: [(u64, f64); 2],
    /// Each of those (up to [`SLOW_KEPT`]): when its line was read, the server, whether it was
    /// a commit, how long (ms), and what the step handled (a message kind, a timer, a local
    /// call from the server's front end).
    slow_log: Vec<(Instant, usize, bool, f64, String)>,
    /// The servers the bench itself stopped or killed.
    killed: Vec<usize>,
}

/// How long a member waits for the questions' events before the voting starts without it.
const QUESTIONS_PATIENCE: Duration = Duration::from_secs(60);
/// Most slow steps and commits the bench keeps the details of.
const SLOW_KEPT: usize = 100_000;

/// Reads a server's `event {JSON}` lines: keeps the latest leader and counts elections.
async fn follow(i: usize, stderr: tokio::process::ChildStderr, leader: Arc<Mutex<Leaders>>) {
    let mut rd = tokio::io::BufReader::new(stderr);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match rd.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end();
        if let Some(at) = line.find("slow ") {
            // The node's own log line (`RUST_LOG` below): a step that held its driver up, or a
            // commit that held up its batch's messages, with how long.
            let ms = line[at..]
                .split_whitespace()
                .find_map(|w| w.strip_prefix("ms=").and_then(|x| x.parse::<f64>().ok()))
                .unwrap_or(0.0);
            let commit = line[at..].starts_with("slow commit");
            let what = line[at..].split_once("what=").map_or("", |(_, w)| w.trim_matches('"'));
            let mut l = leader.lock().expect("not poisoned");
            let (count, longest) = &mut l.slow[usize::from(commit)];
            *count += 1;
            *longest = longest.max(ms);
            if l.slow_log.len() < SLOW_KEPT {
                l.slow_log.push((Instant::now(), i, commit, ms, what.to_string()));
            }
            continue;
        }
        let Some(v) =
            line.strip_prefix("event ").and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok())
        else {
            // What a server says beyond its routine (`INFO` at most) is the bench's to show: a
            // warning, an error, a panic. A run that stalls says why.
            if ![" INFO ", " DEBUG ", " TRACE "].iter().any(|l| line.contains(l)) {
                eprintln!("server {i}: {line}");
            }
            continue;
        };
        if let (Some(t), Some(_)) = (v["term"].as_u64(), v.get("leader")) {
            let mut l = leader.lock().expect("not poisoned");
            l.elected += 1;
            if l.latest.is_none_or(|(lt, _)| t > lt) {
                l.latest = Some((t, i));
            }
        }
    }
    if !leader.lock().expect("not poisoned").killed.contains(&i) {
        eprintln!("server {i}: exited (its standard error closed) though the bench did not stop it");
    }
}

/// A `kB` line of a `/proc/.../status` file, in bytes.
fn status_bytes(path: &str, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

fn io_err(what: &'static str) -> impl Fn(std::io::Error) -> UserError {
    move |e| UserError(format!("{what}: {e}"))
}

/// One member of the bench: its connection and which server it is on.
struct Member {
    c: Client,
    server: usize,
    token: String,
}

fn name(i: usize) -> String {
    format!("bench{i:05}")
}

fn password(i: usize) -> String {
    format!("pw-{:016x}", mix(0xbe4c, i as u64))
}

/// Runs the phases in order and gathers the figures.
async fn bench(a: &VoteBenchArgs, cluster: &mut Cluster) -> Result<serde_json::Value, UserError> {
    let n = a.clients;
    // Account n is the probe: its login is the JOIN everyone waits for; it opens the questions.
    let t = Instant::now();
    create_accounts(cluster, n + 1, a.json).await?;
    let accounts_s = t.elapsed().as_secs_f64();
    let idle = cluster.memory("VmRSS");
    let bench_idle = status_bytes("/proc/self/status", "VmRSS");
    let retries = Arc::new(AtomicU64::new(0));
    let elected_before_logins = cluster.elected();
    let t = Instant::now();
    cluster.all_running("while the accounts were created")?;
    let waiting = login_all(cluster, n, &retries, a.json).await?;
    cluster.all_running("during the logins")?;
    let logins_s = t.elapsed().as_secs_f64();
    let elected_in_logins = cluster.elected() - elected_before_logins;
    let connected = cluster.memory("VmRSS");
    let bench_connected = status_bytes("/proc/self/status", "VmRSS");
    let (join_ms, join_seen, members, mut probe) = join_to_all(cluster, waiting, n, &retries).await?;
    let mut questions = Vec::new();
    for q in 0..a.questions {
        let r = probe
            .c
            .ok(&format!("OPEN Bench question {q}? | one | two | three"))
            .await
            .map_err(io_err("OPEN"))?;
        questions.push(field(&r, "question").ok_or_else(|| UserError(format!("OPEN: {r}")))?.to_string());
    }
    let (questions_ms, questions_seen, members) = questions_to_all(members, questions.last()).await?;
    let t = Instant::now();
    let (members, timed, acked, cast) = vote_all(members, &questions, a.rate, a.json).await;
    let over_time = latency_over_time(&timed);
    let latencies: Vec<Duration> = timed.iter().map(|(_, l)| *l).collect();
    cluster.all_running("before the leader's SIGKILL")?;
    let votes_s = t.elapsed().as_secs_f64();
    let slow_while_voting = cluster.slow_between(t, t.elapsed());
    let mut latencies = latencies;
    let elected_before_kill = cluster.elected();
    let kill = if a.kill_leader { Some(kill_leader(cluster, members).await?) } else { None };
    let counted = count_votes(cluster, &questions).await?;
    let argon = argon2::Params::default();
    let per_member =
        |hi: Option<u64>, lo: Option<u64>| hi.zip(lo).map(|(h, l)| (h.saturating_sub(l)) as f64 / n as f64);
    let lost = acked.saturating_sub(counted);
    let resumed_all = kill.as_ref().is_none_or(|k| k["resumed"] == k["to_resume"]);
    let consistent = acked == cast && counted == acked && join_seen == n && resumed_all;
    let (slow_steps, slow_commits) = cluster.slow();
    Ok(json!({
        "clients": n,
        "servers": cluster.addrs.len(),
        "questions": questions.len(),
        "argon2id": {"m_kib": argon.m_cost(), "t": argon.t_cost(), "p": argon.p_cost()},
        "accounts_per_s": (n + 1) as f64 / accounts_s,
        "logins_per_s": n as f64 / logins_s,
        "login_retries": retries.load(Ordering::Relaxed),
        "leaders_elected": {
            "before_logins": elected_before_logins,
            "during_logins": elected_in_logins,
            "before_kill": elected_before_kill,
            "total": cluster.elected(),
        },
        "slow_driver_steps": slow_steps,
        "slow_commits": slow_commits,
        "slow_while_voting": slow_while_voting,
        "votes_cast": cast,
        "votes_acknowledged": acked,
        "votes_counted": counted,
        "votes_lost": lost,
        "votes_per_s": acked as f64 / votes_s,
        "paced_votes_per_s": a.rate,
        "vote_latency_ms": {"p50": percentile_ms(&mut latencies, 0.5), "p99": percentile_ms(&mut latencies, 0.99)},
        "vote_latency_over_time": over_time,
        "join_to_all_ms": join_ms,
        "questions_to_all_ms": questions_ms,
        "questions_seen_by": questions_seen,
        "join_seen_by": join_seen,
        "kill_leader": kill,
        "servers_peak_mib": cluster.memory("VmHWM").map(|b| b as f64 / (1 << 20) as f64),
        "bench_peak_mib": status_bytes("/proc/self/status", "VmHWM").map(|b| b as f64 / (1 << 20) as f64),
        "server_bytes_per_member": per_member(connected, idle),
        "bench_bytes_per_member": per_member(bench_connected, bench_idle),
        "consistent": consistent,
    }))
}

/// Creates accounts 0..count over [`ADMINS`] administrator connections.
async fn create_accounts(cluster: &Cluster, count: usize, quiet: bool) -> Result<(), UserError> {
    let bar = progress_bar(count as u64, "{bar:30} {pos}/{len} accounts {per_sec}", quiet);
    let mut set = JoinSet::new();
    for k in 0..ADMINS.min(count) {
        let (addr, token, bar) = (cluster.addrs[k % cluster.addrs.len()], cluster.admin.clone(), bar.clone());
        set.spawn(async move {
            let mut c = Client::connect(addr, PATIENCE).await?;
            c.ok(&format!("ADMIN {token}")).await?;
            for i in (k..count).step_by(ADMINS) {
                c.ok(&format!("ACCOUNT {} {}", name(i), password(i))).await?;
                bar.inc(1);
            }
            c.ok("EXIT").await.map(|_| ())
        });
    }
    while let Some(r) = set.join_next().await {
        r.map_err(|e| UserError(format!("an account task failed: {e}")))?
            .map_err(io_err("creating the accounts"))?;
    }
    bar.finish_and_clear();
    Ok(())
}

/// The members after the login phase, each still reading its events until the probe's `JOIN`.
type Waiting = JoinSet<std::io::Result<(usize, Member, Option<Instant>)>>;

/// Connects and logs in `n` members, spread over the servers, at most [`LOGINS_IN_FLIGHT`]
/// logins at a time; all stay connected at once. Returns once every member is logged in: each
/// keeps reading the events pushed to it (the `JOIN`s of those after it) until the probe's
/// `JOIN`, whose arrival it notes.
async fn login_all(
    cluster: &Cluster,
    n: usize,
    retries: &Arc<AtomicU64>,
    quiet: bool,
) -> Result<Waiting, UserError> {
    let bar = progress_bar(n as u64, "{bar:30} {pos}/{len} logged in {per_sec}", quiet);
    let mut set = JoinSet::new();
    let logins = Arc::new(tokio::sync::Semaphore::new(LOGINS_IN_FLIGHT));
    let (done_tx, mut done) = tokio::sync::mpsc::unbounded_channel::<Result<(), String>>();
    let joined = format!(" {}", name(n));
    for i in 0..n {
        let server = i % cluster.addrs.len();
        let (addr, logins, retries, done_tx) =
            (cluster.addrs[server], logins.clone(), retries.clone(), done_tx.clone());
        let joined = joined.clone();
        set.spawn(async move {
            let logged_in = async {
                // Connected only when its login may go: a connection without a session is
                // closed after 60 s idle.
                let _permit = logins.acquire().await.map_err(std::io::Error::other)?;
                let mut c = Client::connect(addr, PATIENCE).await?;
                let r = login(&mut c, i, &retries).await?;
                let token = field(&r, "token").unwrap_or_default().to_string();
                Ok::<_, std::io::Error>(Member { c, server, token })
            };
            let mut m = match logged_in.await {
                Ok(m) => m,
                Err(e) => {
                    let _ = done_tx.send(Err(e.to_string()));
                    return Err(e);
                }
            };
            let _ = done_tx.send(Ok(()));
            let seen = m.c.skip_to_event(|e| e.starts_with("JOIN ") && e.ends_with(&joined)).await;
            Ok((i, m, seen.ok().map(|_| Instant::now())))
        });
    }
    drop(done_tx);
    for _ in 0..n {
        match done.recv().await {
            Some(Ok(())) => bar.inc(1),
            Some(Err(e)) => return Err(UserError(format!("logging in: {e}"))),
            None => return Err(UserError("logging in: the members' tasks stopped".into())),
        }
    }
    bar.finish_and_clear();
    Ok(set)
}

/// Logs member `i` in; a `LOGIN` answered `ERR unavailable` (it may have taken effect, and a
/// second one replaces its session) or `ERR busy` is sent again after a pause, up to
/// [`LOGIN_TRIES`] times in all. Each retry is counted in `retries`.
async fn login(c: &mut Client, i: usize, retries: &AtomicU64) -> std::io::Result<String> {
    let line = format!("LOGIN {} {}", name(i), password(i));
    let mut tries = 1;
    loop {
        let r = c.cmd(&line).await?;
        if r.starts_with("OK LOGIN") {
            return Ok(r);
        }
        let again = r.starts_with("ERR unavailable") || r.starts_with("ERR busy");
        if !again || tries >= LOGIN_TRIES {
            return Err(std::io::Error::other(format!("LOGIN of {}: {r} (try {tries})", name(i))));
        }
        retries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(RETRY_PAUSE * tries).await;
        tries += 1;
    }
}

/// The probe logs in on server 0; every member, reading its events since its own login, notes
/// the probe's `JOIN`. Returns the time from the probe's login reply to the last member's
/// `EVENT` line, how many members saw it, the members and the probe.
async fn join_to_all(
    cluster: &Cluster,
    mut waiting: Waiting,
    n: usize,
    retries: &AtomicU64,
) -> Result<(f64, usize, Vec<Member>, Member), UserError> {
    let mut c = Client::connect(cluster.addrs[0], PATIENCE).await.map_err(io_err("the probe"))?;
    let r = login(&mut c, n, retries).await;
    let replied = Instant::now();
    let r = r.map_err(io_err("the probe's LOGIN"))?;
    let token = field(&r, "token").unwrap_or_default().to_string();
    let mut back: Vec<Option<Member>> = (0..n).map(|_| None).collect();
    let (mut last, mut seen) = (replied, 0);
    while let Some(r) = waiting.join_next().await {
        let (i, m, at) =
            r.map_err(|e| UserError(format!("a member task failed: {e}")))?.map_err(io_err("a member"))?;
        if let Some(at) = at {
            seen += 1;
            last = last.max(at);
        }
        back[i] = Some(m);
    }
    let ms = last.saturating_duration_since(replied).as_secs_f64() * 1e3;
    Ok((ms, seen, back.into_iter().flatten().collect(), Member { c, server: 0, token }))
}

/// Every member reads its events up to the last question's `QUESTION`, as a member learns of
/// a question before it votes on it (the events come in one order, so it has seen the others
/// too), for at most [`QUESTIONS_PATIENCE`]. Returns the time from now (the last `OPEN`
/// answered) to the last member's `EVENT` line, how many members saw it, and the members in
/// their order (one that did not see it votes all the same). The votes' clock starts after
/// it: what it costs to tell 10,000 members of the questions is this figure, not the first
/// votes' latency.
async fn questions_to_all(
    members: Vec<Member>,
    last: Option<&String>,
) -> Result<(f64, usize, Vec<Member>), UserError> {
    let Some(last) = last else { return Ok((0.0, 0, members)) };
    let opened = Instant::now();
    let want = format!("QUESTION {last} ");
    let mut set = JoinSet::new();
    for (i, mut m) in members.into_iter().enumerate() {
        let want = want.clone();
        set.spawn(async move {
            let seen =
                tokio::time::timeout(QUESTIONS_PATIENCE, m.c.skip_to_event(|e| e.starts_with(&want))).await;
            (i, m, matches!(seen, Ok(Ok(_))).then(Instant::now))
        });
    }
    let (mut back, mut latest, mut seen) = (Vec::new(), opened, 0);
    while let Some(r) = set.join_next().await {
        let (i, m, at) = r.map_err(|e| UserError(format!("a member task failed: {e}")))?;
        if let Some(at) = at {
            latest = latest.max(at);
            seen += 1;
        }
        back.push((i, m));
    }
    back.sort_unstable_by_key(|(i, _)| *i);
    let ms = latest.saturating_duration_since(opened).as_secs_f64() * 1e3;
    Ok((ms, seen, back.into_iter().map(|(_, m)| m).collect()))
}

/// The acknowledged votes' latencies by when each was due, in windows of [`WINDOW`]: where in
/// the voting its slowest votes fall. Per window: its start (s after the first vote was due),
/// votes, p50, p99 and the longest (ms), and how many of the run's slowest 1% it holds.
fn latency_over_time(timed: &[(Duration, Duration)]) -> serde_json::Value {
    const WINDOW: Duration = Duration::from_millis(250);
    let mut all: Vec<Duration> = timed.iter().map(|(_, l)| *l).collect();
    all.sort_unstable();
    let slow_from = all.get(all.len() - all.len() / 100).copied().unwrap_or(Duration::MAX);
    let mut windows: std::collections::BTreeMap<u128, Vec<Duration>> = Default::default();
    for (at, l) in timed {
        windows.entry(at.as_millis() / WINDOW.as_millis()).or_default().push(*l);
    }
    let rows: Vec<serde_json::Value> = windows
        .into_iter()
        .map(|(w, mut l)| {
            let slow = l.iter().filter(|d| **d >= slow_from).count();
            let longest = l.iter().max().map(|d| d.as_secs_f64() * 1e3);
            json!({
                "from_s": (w * WINDOW.as_millis()) as f64 / 1e3,
                "votes": l.len(),
                "p50_ms": percentile_ms(&mut l, 0.5),
                "p99_ms": percentile_ms(&mut l, 0.99),
                "max_ms": longest,
                "of_slowest_1pct": slow,
            })
        })
        .collect();
    json!(rows)
}

/// Every member votes on every question; returns the members, each acknowledged vote's time
/// (when it was due after the first vote was, and its latency), how many were acknowledged
/// and how many cast.
///
/// Without `rate`, every member sends its first vote at once and the next as soon as the
/// previous one is answered (a closed loop). With `rate`, vote `k` of member `i` is due at
/// `(k × members + i) / rate` seconds from the start, so the votes arrive at that rate
/// whatever the answers' latency, and a vote's latency counts from when it was due, not from
/// when a member that was still waiting could send it.
async fn vote_all(
    members: Vec<Member>,
    questions: &[String],
    rate: Option<u64>,
    quiet: bool,
) -> (Vec<Member>, Vec<(Duration, Duration)>, usize, usize) {
    let n = members.len();
    let total = (n * questions.len()) as u64;
    let bar = progress_bar(total, "{bar:30} {pos}/{len} votes {per_sec}", quiet);
    let questions: Arc<[String]> = questions.into();
    let start = tokio::time::Instant::now();
    let mut set = JoinSet::new();
    for (i, mut m) in members.into_iter().enumerate() {
        let (questions, bar) = (questions.clone(), bar.clone());
        set.spawn(async move {
            let (mut lat, mut cast) = (Vec::new(), 0);
            for (k, q) in questions.iter().enumerate() {
                let vote = format!("VOTE {q} {}", OPTIONS[i % OPTIONS.len()]);
                let sent = match rate {
                    Some(r) => {
                        let due = start + Duration::from_secs_f64((k * n + i) as f64 / r as f64);
                        tokio::time::sleep_until(due).await;
                        due.into_std()
                    }
                    None => Instant::now(),
                };
                cast += 1;
                if m.c.ok(&vote).await.is_ok() {
                    lat.push((sent.saturating_duration_since(start.into_std()), sent.elapsed()));
                }
                bar.inc(1);
            }
            (m, lat, cast)
        });
    }
    let (mut back, mut lat, mut cast) = (Vec::new(), Vec::new(), 0);
    while let Some(Ok((m, l, c))) = set.join_next().await {
        back.push(m);
        lat.extend(l);
        cast += c;
    }
    bar.finish_and_clear();
    let acked = lat.len();
    (back, lat, acked, cast)
}

/// SIGKILLs the leader; every member of its server reconnects to the next live server (the
/// one after it when no `HELLO` comes in time) and resumes its session. Returns the figures: the time from the kill to the last `RESUME` reply.
async fn kill_leader(cluster: &mut Cluster, members: Vec<Member>) -> Result<serde_json::Value, UserError> {
    let leader = cluster.leader.lock().expect("not poisoned").latest.map(|(_, s)| s);
    let leader = leader.ok_or_else(|| UserError("no server said it leads".into()))?;
    let addrs = cluster.addrs.clone();
    // The live servers, the next one after the leader first: a member tries them in turn.
    let live: Arc<[SocketAddr]> = (1..addrs.len()).map(|k| addrs[(leader + k) % addrs.len()]).collect();
    let mut child =
        cluster.children[leader].take().ok_or_else(|| UserError("the leader is not running".into()))?;
    let to_resume = members.iter().filter(|m| m.server == leader).count();
    cluster.leader.lock().expect("not poisoned").killed.push(leader);
    let killed = Instant::now();
    child.start_kill().map_err(io_err("SIGKILL"))?;
    let _ = child.wait().await;
    let mut set = JoinSet::new();
    let reconnects = Arc::new(AtomicU64::new(0));
    for m in members.into_iter().filter(|m| m.server == leader) {
        let (live, reconnects) = (live.clone(), reconnects.clone());
        set.spawn(async move {
            let mut m = m;
            m.c.drain().await;
            let last = m.c.events.last().map_or(0, |(n, _)| *n);
            for t in 0..RECONNECT_TRIES {
                let server = live[t as usize % live.len()];
                let Ok(Ok(mut d)) =
                    tokio::time::timeout(HELLO_WITHIN, Client::connect(server, PATIENCE)).await
                else {
                    reconnects.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let r = d.ok(&format!("RESUME {} {last}", m.token)).await.ok()?;
                field(&r, "pin")?;
                return Some(Instant::now());
            }
            None
        });
    }
    let (mut resumed, mut last) = (0, killed);
    while let Some(r) = set.join_next().await {
        if let Ok(Some(at)) = r {
            resumed += 1;
            last = last.max(at);
        }
    }
    Ok(json!({
        "leader": leader,
        "to_resume": to_resume,
        "resumed": resumed,
        "all_back_ms": last.duration_since(killed).as_secs_f64() * 1e3,
        "connects_retried": reconnects.load(Ordering::Relaxed),
    }))
}

/// The votes `STATS` counts over `questions`, asked of a live server by the probe's account.
async fn count_votes(cluster: &Cluster, questions: &[String]) -> Result<usize, UserError> {
    let live = (0..cluster.addrs.len())
        .find(|i| cluster.children.is_empty() || cluster.children[*i].is_some())
        .unwrap_or(0);
    let mut c = Client::connect(cluster.addrs[live], PATIENCE).await.map_err(io_err("STATS"))?;
    let mut counted = 0;
    // A fresh account for the count: STATS needs a session.
    c.ok(&format!("ADMIN {}", cluster.admin)).await.map_err(io_err("ADMIN"))?;
    c.ok("ACCOUNT bench-counter pw-counter").await.map_err(io_err("ACCOUNT"))?;
    c.ok("LOGIN bench-counter pw-counter").await.map_err(io_err("LOGIN"))?;
    for q in questions {
        let r = c.ok(&format!("STATS {q}")).await.map_err(io_err("STATS"))?;
        let v = json_tail(&r, 2).ok_or_else(|| UserError(format!("STATS: {r}")))?;
        counted += v["votes"].as_u64().unwrap_or(0) as usize;
    }
    Ok(counted)
}

fn print(r: &serde_json::Value, json: bool) {
    if json {
        println!("{r}");
        return;
    }
    let f = |v: &serde_json::Value| v.as_f64().map_or("-".to_string(), |x| format!("{x:.1}"));
    let a = &r["argon2id"];
    println!(
        "members                 {} on {} servers, {} question(s)",
        r["clients"], r["servers"], r["questions"]
    );
    println!("argon2id                m={} KiB t={} p={}", a["m_kib"], a["t"], a["p"]);
    println!("accounts created        {}/s", f(&r["accounts_per_s"]));
    println!("logins                  {}/s ({} retried)", f(&r["logins_per_s"]), r["login_retries"]);
    let e = &r["leaders_elected"];
    println!(
        "leaders elected         {} before the logins, {} during them, {} in all",
        e["before_logins"], e["during_logins"], e["total"]
    );
    let d = &r["slow_driver_steps"];
    println!("driver steps >= 20 ms   {}, the longest {} ms", d["count"], f(&d["longest_ms"]));
    let d = &r["slow_commits"];
    println!("commits >= 20 ms        {}, the longest {} ms", d["count"], f(&d["longest_ms"]));
    let mut during: Vec<&serde_json::Value> =
        r["slow_while_voting"].as_array().into_iter().flatten().collect();
    during.sort_by(|a, b| b["ms"].as_f64().unwrap_or(0.0).total_cmp(&a["ms"].as_f64().unwrap_or(0.0)));
    let longest: Vec<String> = during
        .iter()
        .take(3)
        .map(|d| format!("{} {} ms at {} s", d["what"].as_str().unwrap_or("?"), f(&d["ms"]), f(&d["at_s"])))
        .collect();
    println!("  of them while voting  {}: {}", during.len(), longest.join(", "));
    println!(
        "votes                   cast {}, acknowledged {}, counted {}, lost {}",
        r["votes_cast"], r["votes_acknowledged"], r["votes_counted"], r["votes_lost"]
    );
    match r["paced_votes_per_s"].as_u64() {
        Some(p) => println!("acknowledged votes      {}/s (paced at {p}/s)", f(&r["votes_per_s"])),
        None => println!("acknowledged votes      {}/s (every member at once)", f(&r["votes_per_s"])),
    }
    let l = &r["vote_latency_ms"];
    println!("vote latency            p50 {} ms, p99 {} ms", f(&l["p50"]), f(&l["p99"]));
    println!("JOIN to every member    {} ms (seen by {})", f(&r["join_to_all_ms"]), r["join_seen_by"]);
    println!(
        "questions to every one  {} ms (seen by {})",
        f(&r["questions_to_all_ms"]),
        r["questions_seen_by"]
    );
    if let Some(k) = r["kill_leader"].as_object() {
        println!(
            "SIGKILL of leader {}     {}/{} resumed, the last after {} ms ({} connections tried again)",
            k["leader"],
            k["resumed"],
            k["to_resume"],
            f(&k["all_back_ms"]),
            k["connects_retried"]
        );
    }
    println!(
        "peak memory             servers {} MiB, bench {} MiB",
        f(&r["servers_peak_mib"]),
        f(&r["bench_peak_mib"])
    );
    println!(
        "bytes per member        servers {}, bench {}",
        f(&r["server_bytes_per_member"]),
        f(&r["bench_bytes_per_member"])
    );
    println!("open-file limit         {}", r["fd_limit"]);
    println!("consistent              {}", r["consistent"]);
}
