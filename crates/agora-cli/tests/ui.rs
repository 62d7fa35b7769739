//! `agora kv --ui` in a real browser: chromium, driven through chromedriver's WebDriver HTTP
//! API (plain JSON over a socket), reads the leader from the page, checks it against the
//! replicas' own word (RESP `ROLE`), clicks "Crash" on it, waits for the page to show another
//! leader, restarts the crashed replica with the keyboard (Enter on the focused control), and
//! saves a screenshot. The page `agora sim --html` writes is opened from its file and moved to
//! the end of the run with the keyboard, where it must show the leader the run elected.
//! `agora market --ui` is watched to its end, where the page must name the trader the run's
//! report names and show the checker's verdicts. `agora election --ui` and `agora run --ui`
//! are read as plain HTTP, no browser: the page, and the stream of snapshots with the nodes,
//! the system's own view and, once the run has ended, the checker's verdicts.
//! Without chromium and chromedriver (`.ci/run` installs Debian's `chromium` and
//! `chromium-driver`) the tests print a note and pass.
//!
//! Every wait polls the page's DOM, or the replicas, until its condition holds or a generous
//! deadline passes; none is a sleep standing in for an event.

mod common;

use agora_cli::resp::{self, Reply};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Long enough for a loaded two-core machine; the conditions usually hold within a second.
const DEADLINE: Duration = Duration::from_secs(90);
/// Between two looks at the page.
const POLL: Duration = Duration::from_millis(100);

/// A child process killed when the test ends, whatever the outcome.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).flat_map(|d| names.iter().map(move |n| d.join(n))).find(|p| p.is_file())
}

/// Lines of a child's stdout, each through `on_line` until it returns a value.
fn read_until<T>(out: &mut impl BufRead, what: &str, mut on_line: impl FnMut(&str) -> Option<T>) -> T {
    let mut line = String::new();
    loop {
        line.clear();
        let n = out.read_line(&mut line).unwrap_or(0);
        assert!(n > 0, "the output ended before {what}");
        if let Some(t) = on_line(line.trim_end()) {
            return t;
        }
    }
}

/// The embedded cluster with its live view: (process, page URL, RESP addresses).
fn start_cluster() -> (Killed, String, Vec<SocketAddr>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(["kv", "--port", "0", "--ui", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("agora runs");
    let mut out = BufReader::new(child.stdout.take().expect("piped"));
    let mut resp_addrs = Vec::new();
    let url = read_until(&mut out, "the ui line", |l| {
        let words: Vec<&str> = l.split_whitespace().collect();
        match words.as_slice() {
            ["replica", _, "resp", addr, ..] => {
                resp_addrs.push(addr.parse().expect("an address"));
                None
            }
            ["ui", url] => Some(url.to_string()),
            _ => None,
        }
    });
    // The rest of its output is not read: keep the pipe open and drained.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    (Killed(child), url, resp_addrs)
}

/// chromedriver on a port it picks itself (`--port=0`; it prints the port). It once ended
/// before saying it had started, in a full run of the suite while other tests' servers were
/// starting (a port it picked may have been taken before it bound it on every address):
/// such a start is tried again, up to five times in all.
fn start_driver(chromedriver: &Path) -> (Killed, SocketAddr) {
    let mut said = Vec::new();
    for _ in 0..5 {
        let mut child = Command::new(chromedriver)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs");
        let mut out = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        let port = loop {
            line.clear();
            if out.read_line(&mut line).unwrap_or(0) == 0 {
                break None;
            }
            said.push(line.trim_end().to_string());
            if let Some(p) = line.trim_end().split("started successfully on port ").nth(1) {
                break Some(p.trim_end_matches('.').parse::<u16>().expect("a port"));
            }
        };
        let child = Killed(child);
        if let Some(port) = port {
            std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
            return (child, SocketAddr::from(([127, 0, 0, 1], port)));
        }
    }
    panic!("chromedriver ended five times before saying its port: {said:?}");
}

/// One WebDriver request: JSON in, the response's `value` out (or the error's message).
fn webdriver(driver: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut s = TcpStream::connect(driver).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(DEADLINE)).map_err(|e| e.to_string())?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {driver}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).and_then(|_| s.write_all(body.as_bytes())).map_err(|e| e.to_string())?;
    // chromedriver keeps the connection open after its answer: read its Content-Length.
    let mut r = BufReader::new(s);
    let mut length = 0;
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line).map_err(|e| e.to_string())?;
        let l = line.trim_end().to_ascii_lowercase();
        if l.is_empty() {
            break;
        }
        if let Some(n) = l.strip_prefix("content-length:") {
            length = n.trim().parse().map_err(|_| format!("bad length: {l}"))?;
        }
    }
    let mut raw = vec![0; length];
    r.read_exact(&mut raw).map_err(|e| e.to_string())?;
    let json = String::from_utf8_lossy(&raw);
    let v: Value = serde_json::from_str(&json).map_err(|e| format!("{e}: {json}"))?;
    let value = v.get("value").cloned().unwrap_or(Value::Null);
    match value.get("error") {
        Some(e) => Err(format!("{e}: {}", value.get("message").unwrap_or(&Value::Null))),
        None => Ok(value),
    }
}

/// A browser session of chromedriver's.
struct Session {
    driver: SocketAddr,
    id: String,
}

impl Session {
    fn new(driver: SocketAddr, chromium: &Path, profile: &Path) -> Session {
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,900", format!("--user-data-dir={}", profile.display())],
            },
        }}});
        let v = webdriver(driver, "POST", "/session", Some(&caps)).expect("a browser session");
        Session { driver, id: v["sessionId"].as_str().expect("a session id").to_string() }
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        webdriver(self.driver, method, &format!("/session/{}{path}", self.id), body)
    }

    /// Runs `script` in the page and returns its value.
    fn eval(&self, script: &str) -> Value {
        self.call("POST", "/execute/sync", Some(&json!({ "script": script, "args": [] })))
            .expect("the script runs")
    }

    /// Polls `script` until `done` accepts its value; panics with `what` at the deadline.
    fn wait_for<T>(&self, what: &str, script: &str, mut done: impl FnMut(&Value) -> Option<T>) -> T {
        let until = Instant::now() + DEADLINE;
        loop {
            let v = self.eval(script);
            if let Some(t) = done(&v) {
                return t;
            }
            assert!(Instant::now() < until, "the page never showed {what}; last: {v}");
            std::thread::sleep(POLL);
        }
    }

    /// Clicks the element `css` selects. The page redraws its rows from each snapshot, so an
    /// element found may be replaced before the click lands: then it is found again.
    fn click(&self, css: &str) {
        let until = Instant::now() + DEADLINE;
        loop {
            let found =
                self.call("POST", "/element", Some(&json!({ "using": "css selector", "value": css })));
            let clicked = found.and_then(|e| {
                let id = e.as_object().and_then(|o| o.values().next()).and_then(Value::as_str).unwrap_or("");
                self.call("POST", &format!("/element/{id}/click"), Some(&json!({})))
            });
            match clicked {
                Ok(_) => return,
                Err(e) => assert!(Instant::now() < until, "cannot click {css}: {e}"),
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Session {
    /// Presses Enter on the element that has the focus, as a keyboard user would. A redraw
    /// between finding it and pressing makes the reference stale: then it is found again.
    fn press_enter(&self) {
        let until = Instant::now() + DEADLINE;
        loop {
            let pressed = self.call("GET", "/element/active", None).and_then(|e| {
                let id = e.as_object().and_then(|o| o.values().next()).and_then(Value::as_str).unwrap_or("");
                self.call("POST", &format!("/element/{id}/value"), Some(&json!({ "text": "\u{E007}" })))
            });
            match pressed {
                Ok(_) => return,
                Err(e) => assert!(Instant::now() < until, "cannot press Enter: {e}"),
            }
            std::thread::sleep(POLL);
        }
    }

    /// Presses `key` (a WebDriver key code) as a keyboard would, wherever the focus is (on
    /// the page itself when no element has it).
    fn key(&self, key: &str) {
        let keys = json!({ "actions": [{ "type": "key", "id": "keyboard", "actions": [
            { "type": "keyDown", "value": key }, { "type": "keyUp", "value": key }] }] });
        self.call("POST", "/actions", Some(&keys)).expect("the key is pressed");
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = webdriver(self.driver, "DELETE", &format!("/session/{}", self.id), None);
    }
}

/// What a replica says of itself (RESP `ROLE`): (role, term); `None` if it does not answer.
fn role(addr: SocketAddr) -> Option<(String, i64)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut out = Vec::new();
    resp::encode_request(&["ROLE"], &mut out);
    s.write_all(&out).ok()?;
    let mut buf = Vec::new();
    loop {
        if let Some((reply, _)) = resp::parse_reply(&buf).ok()? {
            let Reply::Array(items) = reply else { return None };
            return match (items.first(), items.get(1)) {
                (Some(Reply::Bulk(r)), Some(Reply::Int(t))) => Some((String::from_utf8_lossy(r).into(), *t)),
                _ => None,
            };
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The leader by the replicas' own word: the one that says it leads, in the highest term.
fn real_leader(resp_addrs: &[SocketAddr]) -> Option<(usize, i64)> {
    leader_among(resp_addrs, None)
}

/// The leader by the word of every replica but `not` (paused: it would answer only once
/// resumed).
fn leader_among(resp_addrs: &[SocketAddr], not: Option<usize>) -> Option<(usize, i64)> {
    resp_addrs
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != not)
        .filter_map(|(i, a)| role(*a).filter(|(r, _)| r == "leader").map(|(_, t)| (i, t)))
        .max_by_key(|(_, t)| *t)
}

/// The leader the page shows, polled until the replicas (all but `not`) name the same one in
/// the same term, and it is not `not`.
fn kv_leader_agreed(page: &Session, resp_addrs: &[SocketAddr], not: Option<usize>) -> (usize, i64) {
    let until = Instant::now() + DEADLINE;
    loop {
        let shown = page_leader(&page.eval(PAGE_LEADER));
        let real = leader_among(resp_addrs, not);
        match (shown, real) {
            (Some(shown), Some(real)) if shown == real && Some(shown.0) != not => return shown,
            _ => assert!(Instant::now() < until, "the page shows {shown:?}, the replicas say {real:?}"),
        }
        std::thread::sleep(POLL);
    }
}

/// The page's leader and term, once it shows one: from `#leader`'s `data-id` and text.
const PAGE_LEADER: &str = "const l = document.querySelector('#leader'); \
     return l ? [l.dataset.id, l.textContent] : null;";

fn page_leader(v: &Value) -> Option<(usize, i64)> {
    let id = v.get(0)?.as_str()?.parse().ok()?;
    let text = v.get(1)?.as_str()?;
    let term = text.split("term ").nth(1)?.trim_end_matches(')').parse().ok()?;
    Some((id, term))
}

/// Standard base64 (WebDriver's screenshots), padding ignored.
fn base64_decode(s: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=').map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut acc = 0u32;
        for (i, d) in chunk.iter().enumerate() {
            acc |= (*d as u32) << (18 - 6 * i);
        }
        out.extend_from_slice(&acc.to_be_bytes()[1..chunk.len()]);
    }
    out
}

/// chromium and chromedriver, if both are on the PATH; else a note that `test` did not run.
fn browser(test: &str) -> Option<(PathBuf, PathBuf)> {
    let found = (find(&["chromium", "chromium-browser", "google-chrome"]), find(&["chromedriver"]));
    let (Some(chromium), Some(chromedriver)) = found else {
        eprintln!("note: chromium and chromedriver not found; the browser test {test} did not run");
        return None;
    };
    Some((chromium, chromedriver))
}

/// Saves a WebDriver screenshot as `name` in `dir`, and where `keep_var` names, if set.
fn save_screenshot(page: &Session, dir: &Path, name: &str, keep_var: &str) {
    let shot = page.call("GET", "/screenshot", None).expect("a screenshot");
    let png = base64_decode(shot.as_str().expect("base64"));
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let path = dir.join(name);
    std::fs::write(&path, &png).unwrap();
    if let Some(keep) = std::env::var_os(keep_var) {
        std::fs::copy(&path, keep).unwrap();
    }
    eprintln!("screenshot: {} ({} bytes)", path.display(), png.len());
}

#[test]
fn the_page_shows_the_real_leader_and_a_new_one_after_crash_is_clicked() {
    let Some((chromium, chromedriver)) = browser("of agora kv --ui") else { return };
    let dir = tempfile::Builder::new().prefix("agora-ui-test-").tempdir().unwrap();
    let (_agora, url, resp_addrs) = start_cluster();
    assert_eq!(resp_addrs.len(), 3);
    let (_driver, driver) = start_driver(&chromedriver);
    let page = Session::new(driver, &chromium, &dir.path().join("profile"));
    page.call("POST", "/url", Some(&json!({ "url": url }))).expect("the page loads");
    let title = page.eval("return document.title;");
    assert_eq!(title, "agora: live view");

    // The page's leader is the real one: polled until the page and the replicas agree (an
    // election may be under way when either is asked).
    let until = Instant::now() + DEADLINE;
    let leader = loop {
        let shown = page.wait_for("a leader", PAGE_LEADER, page_leader);
        if real_leader(&resp_addrs) == Some(shown) {
            break shown.0;
        }
        assert!(
            Instant::now() < until,
            "the page shows {shown:?}, the replicas say {:?}",
            real_leader(&resp_addrs)
        );
        std::thread::sleep(POLL);
    };

    page.click(&format!("button[data-crash=\"{leader}\"]"));
    let row = format!("return document.querySelector('tr[data-replica=\"{leader}\"]').dataset.role;");
    page.wait_for("the crashed replica", &row, |v| (v == "crashed").then_some(()));
    assert!(role(resp_addrs[leader]).is_none(), "the crashed replica still answers RESP");
    let (new_leader, term) =
        page.wait_for("a new leader", PAGE_LEADER, |v| page_leader(v).filter(|(l, _)| *l != leader));
    // The replicas agree, once they have settled (a newer election may follow).
    let until = Instant::now() + DEADLINE;
    loop {
        match (real_leader(&resp_addrs), page_leader(&page.eval(PAGE_LEADER))) {
            (Some(real), Some(shown)) if real == shown && real.0 != leader => break,
            (real, shown) => assert!(
                Instant::now() < until,
                "after the crash the page shows {shown:?} (first {new_leader} in term {term}), the replicas say {real:?}"
            ),
        }
        std::thread::sleep(POLL);
    }
    let timeline = page.eval("return document.querySelector('#timeline').textContent;");
    assert!(timeline.as_str().unwrap_or("").contains(&format!("replica {leader} crashed")), "{timeline}");

    // The clicked control keeps the focus across redraws, now as "Restart": Enter on it
    // restarts the replica, which the replicas confirm (it answers RESP again).
    let focused = "const a = document.activeElement; return a ? a.getAttribute('data-restart') : null;";
    page.wait_for("the focus on the crashed replica's Restart", focused, |v| {
        (v.as_str() == Some(leader.to_string().as_str())).then_some(())
    });
    page.press_enter();
    page.wait_for("the replica restarted", &row, |v| {
        (v.as_str().is_some_and(|r| r != "crashed")).then_some(())
    });
    assert!(role(resp_addrs[leader]).is_some(), "the restarted replica does not answer RESP");
    let timeline = page.eval("return document.querySelector('#timeline').textContent;");
    assert!(timeline.as_str().unwrap_or("").contains(&format!("replica {leader} restarted")), "{timeline}");

    save_screenshot(&page, dir.path(), "live-view.png", "AGORA_UI_SCREENSHOT");
}

/// The arrows of the page's space-time diagram, `[from, to, kind]` each, with the time of the
/// snapshot it drew them from (`data-t`).
const PAGE_ARROWS: &str = "const p = document.querySelector('#spacetime'); \
     return [p.getAttribute('data-t'), [...p.querySelectorAll('line.st-msg')]\
     .map(l => [Number(l.dataset.from), Number(l.dataset.to), l.dataset.kind])];";

/// The page's timeline as text.
fn timeline_text(page: &Session) -> String {
    page.eval("return document.querySelector('#timeline').textContent;").as_str().unwrap_or("").to_string()
}

#[test]
fn the_kv_page_pauses_cuts_partitions_and_draws_the_latest_messages() {
    let Some((chromium, chromedriver)) = browser("of agora kv --ui's controls") else { return };
    let dir = tempfile::Builder::new().prefix("agora-kv-controls-test-").tempdir().unwrap();
    let (_agora, url, resp_addrs) = start_cluster();
    let addr = url.trim_start_matches("http://").trim_end_matches('/').to_string();
    let (_driver, driver) = start_driver(&chromedriver);
    let page = Session::new(driver, &chromium, &dir.path().join("profile"));
    page.call("POST", "/url", Some(&json!({ "url": url }))).expect("the page loads");
    let (leader, term) = kv_leader_agreed(&page, &resp_addrs, None);

    // Pause the leader: its row says so, the two others elect another leader in a higher
    // term (the page's and the running replicas' word agree), the timeline has the pause.
    page.click(&format!("button[data-pause=\"{leader}\"]"));
    let state = format!(
        "const r = document.querySelector('tr[data-replica=\"{leader}\"]'); return [r.dataset.role, r.dataset.health];"
    );
    page.wait_for("the leader paused", &state, |v| (v == &json!(["paused", "paused"])).then_some(()));
    let (new_leader, new_term) = kv_leader_agreed(&page, &resp_addrs, Some(leader));
    assert!(new_term > term, "the new leader's term {new_term} after {term}");
    assert!(timeline_text(&page).contains(&format!("replica {leader} paused")));

    // Resume, with the keyboard: the clicked control kept the focus, now "Resume".
    let focused = "const a = document.activeElement; return a ? a.getAttribute('data-resume') : null;";
    page.wait_for("the focus on Resume", focused, |v| {
        (v.as_str() == Some(leader.to_string().as_str())).then_some(())
    });
    page.press_enter();
    page.wait_for("the replica resumed", &state, |v| (v[0] != "paused" && v[1] == "ok").then_some(()));
    assert!(role(resp_addrs[leader]).is_some(), "the resumed replica answers RESP");
    assert!(timeline_text(&page).contains(&format!("replica {leader} resumed")));

    // Cut one link with the form: listed, both its ends shown partitioned, on the timeline.
    let (from, to) = (new_leader, (new_leader + 1) % 3);
    page.eval(&format!(
        "document.querySelector('#cut-from').value = '{from}'; document.querySelector('#cut-to').value = '{to}'; return null;"
    ));
    page.click("#cut-form button[type=submit]");
    let cuts = "return document.querySelector('#cuts').textContent;";
    page.wait_for("the cut listed", cuts, |v| (v == &json!(format!("Cut: {from} → {to}."))).then_some(()));
    let roles = "return [...document.querySelectorAll('#nodes tbody tr')].map(r => r.dataset.role);";
    page.wait_for("its ends partitioned", roles, |v| {
        (v[from] == "partitioned" && v[to] == "partitioned").then_some(())
    });
    assert!(timeline_text(&page).contains(&format!("link {from} → {to} cut")));

    // Partition the first leader from the others: every link between them cut, both ways.
    page.eval(&format!("document.querySelector('#partition-side').value = '{leader}'; return null;"));
    page.click("#partition-form button[type=submit]");
    let others: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    page.wait_for("the partition listed", cuts, |v| {
        let text = v.as_str().unwrap_or("");
        others
            .iter()
            .all(|&o| text.contains(&format!("{leader} → {o}")) && text.contains(&format!("{o} → {leader}")))
            .then_some(())
    });
    let split = format!(
        "partition {leader} | {}",
        others.iter().map(|o| o.to_string()).collect::<Vec<_>>().join(",")
    );
    assert!(timeline_text(&page).contains(&split), "{}", timeline_text(&page));
    // The two others keep (or elect) a leader: the page names it, partitioned as it is (a
    // link of its is cut), as the replicas do.
    let (shown, _) = kv_leader_agreed(&page, &resp_addrs, Some(leader));
    let role = format!("return document.querySelector('tr[data-replica=\"{shown}\"]').dataset.role;");
    assert_eq!(page.eval(&role), "partitioned");

    // The diagram draws the messages of the snapshot the page last got, in its order: the
    // page's snapshot time read with its arrows, polled until the stream's latest is the same.
    let until = Instant::now() + DEADLINE;
    let drawn = loop {
        let v = page.eval(PAGE_ARROWS);
        let s = latest(&addr);
        if v[0].as_str().and_then(|t| t.parse::<u64>().ok()) == s["t_ms"].as_u64() {
            let messages = s["messages"].as_array().expect("messages");
            if !messages.is_empty() {
                let expected: Vec<Value> =
                    messages.iter().map(|m| json!([m["from"], m["to"], m["kind"]])).collect();
                assert_eq!(v[1], json!(expected), "the page's arrows against the snapshot {s}");
                let kinds: Vec<&Value> = s["kinds"].as_array().unwrap().iter().map(|k| &k["kind"]).collect();
                for m in messages {
                    assert_ne!(m["from"], m["to"], "{m}");
                    assert!(kinds.contains(&&m["kind"]), "{m} of a kind the replicas counted: {kinds:?}");
                    assert!(m["sent_ms"].as_f64().unwrap() <= m["received_ms"].as_f64().unwrap(), "{m}");
                }
                break messages.len();
            }
        }
        assert!(Instant::now() < until, "the page's diagram {v} never matched the latest snapshot");
        std::thread::sleep(POLL);
    };
    eprintln!("{drawn} arrows drawn, as the snapshot has them");
    page.eval("document.querySelector('#spacetime').scrollIntoView(); return null;");
    save_screenshot(&page, dir.path(), "kv-controls.png", "AGORA_KV_CONTROLS_SCREENSHOT");

    // Heal: no link cut, nobody partitioned.
    page.click("#heal");
    page.wait_for("every link mended", cuts, |v| (v == "No link is cut.").then_some(()));
    page.wait_for("nobody partitioned", roles, |v| {
        v.as_array().is_some_and(|r| r.iter().all(|r| r != "partitioned")).then_some(())
    });
    assert!(timeline_text(&page).contains("every link mended"));
}

#[test]
fn the_kv_page_refuses_what_its_cluster_cannot_do_and_a_crash_ends_a_pause() {
    let (_agora, url, _resp_addrs) = start_cluster();
    let addr = url.trim_start_matches("http://").trim_end_matches('/').to_string();
    snapshot_until(&addr, "the replicas", |s| s["replicas"].as_array().is_some_and(|r| r.len() == 3));

    // No action of this cluster: 400 with why; not from the page: 403.
    for (path, why) in [
        ("pause/3", "no node 3: the nodes are 0 to 2"),
        ("release", "this run takes crash, restart, pause, resume, cut, partition, heal"),
        ("cut/1/1", "to itself"),
        ("partition/0,1,2", "both sides"),
    ] {
        let (status, body) = post(&addr, path, true);
        assert_eq!(status, "HTTP/1.1 400 Bad Request", "{path}: {body}");
        assert!(body.contains(why), "{path}: {body}");
    }
    assert_eq!(post(&addr, "pause/0", false).0, "HTTP/1.1 403 Forbidden");
    // Not allowed in the cluster's state: 409 with why.
    let refused = |path: &str, why: &str| {
        let (status, body) = post(&addr, path, true);
        assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 409 Conflict", why), "{path}");
    };
    refused("resume/0", "node 0 is not paused");
    refused("heal", "no link is cut");
    act(&addr, "crash/1");
    refused("pause/1", "node 1 is not running: only a running node pauses");
    act(&addr, "restart/1");

    // A paused replica crashed restarts running, not paused.
    assert_eq!(act(&addr, "pause/2"), "node 2 paused");
    snapshot_until(&addr, "replica 2 paused", |s| row(s, 2)["health"] == "paused");
    refused("pause/2", "node 2 is already paused");
    act(&addr, "crash/2");
    act(&addr, "restart/2");
    snapshot_until(&addr, "replica 2 running again", |s| {
        row(s, 2)["health"] == "ok" && row(s, 2)["role"] != "paused"
    });
    refused("resume/2", "node 2 is not paused");

    // Messages by link: the link from the leader to a follower cut, what its receiver got
    // stands still over four samples while what the leader sent on it goes on growing (the
    // difference: lost on the cut link), and the leader's link to the other follower goes on
    // delivering.
    let s = snapshot_until(&addr, "a leader", |s| s["lead"]["id"].is_u64());
    let leader = s["lead"]["id"].as_u64().unwrap() as usize;
    let (cut_to, other) = ((leader + 1) % 3, (leader + 2) % 3);
    act(&addr, &format!("cut/{leader}/{cut_to}"));
    let link = |s: &Value, to: usize| {
        let links = s["links"].as_array().expect("links");
        links
            .iter()
            .find(|l| l["from"] == leader && l["to"] == to)
            .map_or((0, 0), |l| (l["total"].as_u64().unwrap(), l["received"].as_u64().unwrap()))
    };
    let (mut samples, mut first) = (0, None);
    snapshot_until(&addr, "the cut link delivering nothing", |s| {
        if s["cuts"] != json!([[leader, cut_to]]) {
            return false;
        }
        let ((sent, got), (_, other_got)) = (link(s, cut_to), link(s, other));
        let (sent0, got0, other0) = *first.get_or_insert((sent, got, other_got));
        assert_eq!(got, got0, "received on the cut link {leader} → {cut_to}: {}", s["links"]);
        samples += 1;
        samples >= 4 && sent > sent0 && other_got > other0
    });
    act(&addr, "heal");

    let healed = |s: &Value| s["events"].as_array().is_some_and(|e| e.iter().any(|e| e["kind"] == "heal"));
    let last = snapshot_until(&addr, "the heal on the timeline", healed);
    let kinds: Vec<&str> =
        last["events"].as_array().unwrap().iter().filter_map(|e| e["kind"].as_str()).collect();
    for kind in ["crash", "restart", "pause", "cut", "heal"] {
        assert!(kinds.contains(&kind), "{kind} on the timeline: {kinds:?}");
    }
}

#[test]
fn an_address_the_view_cannot_listen_on_is_a_mistake() {
    common::assert_mistake(&["kv", "--port", "0", "--ui", "nonsense"], "--ui nonsense");
    common::assert_mistake(&["kv", "--port", "0", "--ui", "203.0.113.7:0"], "--ui 203.0.113.7:0");
}

/// Each node's row on the replay page: `[state, text of its latest Leader observation]`.
const REPLAY_ROWS: &str = "return [...document.querySelectorAll('#nodes tr[data-node]')].map(r => \
     [r.dataset.state, (r.querySelector('li[data-kind=\"Leader\"]') || {}).textContent || null]);";

#[test]
fn the_replay_page_shows_at_the_end_the_leader_the_run_elected() {
    let Some((chromium, chromedriver)) = browser("of agora sim --html") else { return };
    let dir = tempfile::Builder::new().prefix("agora-replay-test-").tempdir().unwrap();
    let file = dir.path().join("bully.html");
    // Node 4, the highest, wins the first election and crashes at 40 ms: the four others
    // elect node 3, the highest still up, and follow it to the end.
    let out = Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(["sim", "bully", "--nodes", "5", "--crash", "4@40", "--max-time-ms", "300", "--json", "--html"])
        .arg(&file)
        .output()
        .expect("agora runs");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).expect("a JSON summary");

    let (_driver, driver) = start_driver(&chromedriver);
    let page = Session::new(driver, &chromium, &dir.path().join("profile"));
    page.call("POST", "/url", Some(&json!({ "url": format!("file://{}", file.display()) })))
        .expect("the page loads from its file");
    let title = page.eval("return document.title;");
    assert_eq!(title, "agora: bully — 5 nodes, seed 1");

    // At the start: no event yet, every node up, nothing observed.
    assert_eq!(page.eval("return document.querySelector('#slider').value;"), "0");
    let up = json!(["up", null]);
    assert_eq!(page.eval(REPLAY_ROWS), json!([up, up, up, up, up]));

    // End, pressed on the focused slider, moves to the run's last event.
    page.eval("document.querySelector('#slider').focus(); return null;");
    page.key("\u{E010}");
    let last = "const s = document.querySelector('#slider'); return [s.value, s.max];";
    let end =
        page.wait_for("the slider at the end", last, |v| (v[0] == v[1] && v[0] != "0").then(|| v[0].clone()));
    let rows = page.eval(REPLAY_ROWS);
    let rows = rows.as_array().expect("rows");
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[4][0], "crashed", "{rows:?}");
    for (i, row) in rows[..4].iter().enumerate() {
        assert_eq!(row[0], "up", "node {i}: {rows:?}");
        let leader = row[1].as_str().unwrap_or("");
        assert!(leader.contains("Leader { leader: n3,"), "node {i} follows node 3 at the end: {rows:?}");
    }
    // Every property the run judged is shown as holding.
    let verdicts = "return [...document.querySelectorAll('#verdicts li[data-verdict=\"holds\"]')]\
         .map(l => l.dataset.property);";
    assert_eq!(page.eval(verdicts), summary["properties"]);
    assert!(!summary["properties"].as_array().unwrap().is_empty());

    // The left arrow, anywhere on the page, moves one event back.
    page.eval("document.activeElement.blur(); return null;");
    page.key("\u{E012}");
    let value = "return document.querySelector('#slider').value;";
    let back = (end.as_str().unwrap().parse::<u64>().unwrap() - 1).to_string();
    page.wait_for("one event back", value, |v| (v.as_str() == Some(back.as_str())).then_some(()));
    save_screenshot(&page, dir.path(), "replay.png", "AGORA_REPLAY_SCREENSHOT");
}

/// `agora ARGS` with its live view, which prints the page's address on stderr (`ui: URL`):
/// (process, page URL, its stdout).
fn start_run(args: &[&str]) -> (Killed, String, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("agora runs");
    let mut err = BufReader::new(child.stderr.take().expect("piped"));
    let url = read_until(&mut err, "the ui line", |l| l.strip_prefix("ui: ").map(str::to_string));
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    let out = BufReader::new(child.stdout.take().expect("piped"));
    (Killed(child), url, out)
}

/// `GET path` on the view: (status line, body).
fn get(addr: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).expect("the view accepts");
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response");
    (head.lines().next().unwrap_or("").to_string(), body.to_string())
}

/// Reads the stream of snapshots until `done` accepts one; returns it.
fn snapshot_until(addr: &str, what: &str, mut done: impl FnMut(&Value) -> bool) -> Value {
    let mut s = TcpStream::connect(addr).expect("the view accepts");
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.write_all(format!("GET /events HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    let mut last = Value::Null;
    let until = Instant::now() + DEADLINE;
    loop {
        line.clear();
        let n = r.read_line(&mut line).unwrap_or(0);
        assert!(n > 0, "the stream ended before {what}; last snapshot: {last}");
        assert!(Instant::now() < until, "no snapshot showed {what} in time; last: {last}");
        if let Some(data) = line.trim_end().strip_prefix("data: ") {
            last = serde_json::from_str(data).expect("a JSON snapshot");
            if done(&last) {
                return last;
            }
        }
    }
}

/// A page opened once the run has ended (and the view lingers) gets the last snapshot, and
/// its stream then stays open, waiting for more, instead of ending (the page would show
/// itself disconnected and retry without end).
fn assert_stream_stays_open(addr: &str) {
    let mut s = TcpStream::connect(addr).expect("the view accepts");
    s.write_all(format!("GET /events HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut r = BufReader::new(s);
    read_until(&mut r, "the last snapshot", |l| {
        let v: Value = serde_json::from_str(l.strip_prefix("data: ")?).ok()?;
        (!v["verdicts"].is_null()).then_some(())
    });
    // Nothing more comes (but the blank line that ends the event): a read waits, and times
    // out, rather than finding the stream ended.
    r.get_ref().set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut rest = [0u8; 64];
    loop {
        match r.read(&mut rest) {
            Ok(0) => panic!("the stream ended after the last snapshot"),
            Ok(n) if rest[..n].iter().all(u8::is_ascii_whitespace) => continue,
            Ok(n) => panic!("more after the last snapshot: {:?}", String::from_utf8_lossy(&rest[..n])),
            Err(e) => {
                let waited =
                    matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut);
                assert!(waited, "{e}");
                return;
            }
        }
    }
}

/// The JSON report a run prints on stdout when it ends (the page stays up: --ui-linger).
/// The page's last verdicts name, as judged, exactly the properties the run's summary judged.
fn assert_shows_the_judged_properties(last: &Value, summary: &Value) {
    let shown: Vec<&Value> = last["verdicts"]["properties"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["verdict"] != "not judged")
        .map(|v| &v["property"])
        .collect();
    let judged: Vec<&Value> = summary["properties"].as_array().unwrap().iter().collect();
    assert_eq!(shown, judged);
}

fn report(out: &mut impl BufRead) -> Value {
    read_until(out, "the report", |l| serde_json::from_str(l).ok())
}

#[test]
fn the_election_serves_its_page_and_snapshots_with_the_nodes_and_the_verdicts() {
    let (_agora, url, mut out) =
        start_run(&["election", "--voters", "200", "--ui", "127.0.0.1:0", "--ui-linger", "--json"]);
    let addr = url.trim_start_matches("http://").trim_end_matches('/').to_string();
    let (status, page) = get(&addr, "/");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(page.contains("<title>agora: live view</title>"), "{page}");
    let (status, script) = get(&addr, "/app.js");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(script.contains("drawVerdicts"), "the script draws the verdicts");

    // While the run goes, or once it has ended: a snapshot with every node.
    let first = snapshot_until(&addr, "the nodes", |s| s["started"] == true);
    let rows = first["replicas"].as_array().expect("rows");
    assert!(rows.len() > 3, "{first}");
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r["id"], i);
        assert!(["running", "ended"].contains(&r["health"].as_str().unwrap()), "{r}");
    }

    // The run ends: its report on stdout, then the last snapshot with the checker's verdicts.
    let report = report(&mut out);
    let last = snapshot_until(&addr, "the verdicts", |s| !s["verdicts"].is_null());
    let summary = &report["summary"];
    assert_stream_stays_open(&addr);
    assert_eq!(last["replicas"].as_array().unwrap().len() as u64, summary["nodes"].as_u64().unwrap());
    assert!(last["replicas"].as_array().unwrap().iter().all(|r| r["health"] == "ended"), "{last}");
    let verdicts = last["verdicts"]["properties"].as_array().expect("verdicts");
    let ok: Vec<&Value> = verdicts.iter().filter(|v| v["verdict"] == "ok").map(|v| &v["property"]).collect();
    let judged: Vec<&Value> = summary["properties"].as_array().unwrap().iter().collect();
    assert!(!judged.is_empty());
    assert_eq!(ok, judged, "every property judged, none violated: {last}");
    let not_judged = verdicts.iter().filter(|v| v["verdict"] == "not judged").count();
    assert_eq!(not_judged, summary["not_judged"].as_array().unwrap().len());
    assert!(last["verdicts"]["reproduce"].as_str().unwrap().starts_with("agora election --voters 200"));

    // One replica leads, as the replicas observed; the ballots the view counted per state
    // are the ones the report counted.
    let leaders = last["replicas"].as_array().unwrap().iter().filter(|r| r["role"] == "leader").count();
    assert!(leaders >= 1, "{last}");
    assert_eq!(last["lead"]["label"], "Leader");
    assert!(last["lead"]["id"].is_u64(), "{last}");
    assert_eq!(last["obs_dropped"], 0);
    let counted: u64 = last["system"]["rows"]
        .as_array()
        .expect("the ballots per state")
        .iter()
        .map(|r| r[2].as_u64().unwrap())
        .sum();
    assert_eq!(counted, report["counted"].as_u64().unwrap(), "{}", last["system"]);
    assert!(counted > 0);
    assert!(last["kinds"].is_array() && last["links"].is_array());
}

#[test]
fn run_serves_the_links_between_its_nodes_and_the_verdicts() {
    let (_agora, url, mut out) =
        start_run(&["run", "flood", "--nodes", "4", "--ui", "127.0.0.1:0", "--ui-linger", "--json"]);
    let addr = url.trim_start_matches("http://").trim_end_matches('/').to_string();
    let summary = report(&mut out);
    let last = snapshot_until(&addr, "the verdicts", |s| !s["verdicts"].is_null());
    assert_eq!(last["replicas"].as_array().unwrap().len(), 4);
    // Every message went over one of the links (at most 16 of them: all shown), none lost.
    assert_eq!(summary["messages_dropped"], 0);
    let links = last["links"].as_array().expect("links");
    assert!(!links.is_empty() && links.len() <= 16, "{links:?}");
    let total: u64 = links.iter().map(|l| l["total"].as_u64().unwrap()).sum();
    assert_eq!(total, summary["messages_sent"].as_u64().unwrap(), "{links:?}");
    // The space-time diagram's sample: flood's few messages all fit in it, so it pairs every
    // one, each sent before it is received, on the links as their totals count them.
    let messages = last["messages"].as_array().expect("messages");
    assert_eq!(messages.len() as u64, total, "{messages:?}");
    for l in links {
        let on_link = messages.iter().filter(|m| m["from"] == l["from"] && m["to"] == l["to"]).count();
        assert_eq!(on_link as u64, l["total"].as_u64().unwrap(), "{l} {messages:?}");
        // Nothing cut, the run over: every message sent on a link was received.
        assert_eq!(l["received"], l["total"], "{l}");
    }
    let kinds: Vec<&str> =
        summary["by_kind"].as_array().expect("kinds").iter().map(|k| k["kind"].as_str().unwrap()).collect();
    for m in messages {
        assert!(kinds.contains(&m["kind"].as_str().unwrap()), "{m} {kinds:?}");
        assert!(m["sent_ms"].as_f64().unwrap() <= m["received_ms"].as_f64().unwrap(), "{m}");
    }
    assert_eq!(last["verdicts"]["end"], summary["end"]);
    assert_shows_the_judged_properties(&last, &summary);
}

#[test]
fn the_view_is_refused_where_it_cannot_watch() {
    common::assert_mistake(&["election", "--sim", "--voters", "10", "--ui", "127.0.0.1:0"], "--ui");
    common::assert_mistake(&["market", "--sim", "--ui", "127.0.0.1:0"], "--ui");
    common::assert_mistake(&["vote", "--sim", "--ui", "127.0.0.1:0"], "--ui");
    common::assert_mistake(&["vote", "--clients", "3", "--ui", "nonsense"], "--ui nonsense");
    common::assert_mistake(&["election", "--voters", "10", "--ui", "nonsense"], "--ui nonsense");
    common::assert_mistake(&["run", "flood", "--nodes", "3", "--ui", "nonsense"], "--ui nonsense");
}

/// The column headers of the nodes' table.
const NODE_COLUMNS: &str =
    "return [...document.querySelectorAll('#nodes thead th')].map(t => t.textContent);";

#[test]
fn the_market_page_names_the_trader_the_run_reports_and_the_verdicts() {
    let Some((chromium, chromedriver)) = browser("of agora market --ui") else { return };
    let dir = tempfile::Builder::new().prefix("agora-market-ui-test-").tempdir().unwrap();
    let (_agora, url, mut out) =
        start_run(&["market", "--buys", "5", "--ui", "127.0.0.1:0", "--ui-linger", "--json"]);
    let (_driver, driver) = start_driver(&chromedriver);
    let page = Session::new(driver, &chromium, &dir.path().join("profile"));
    page.call("POST", "/url", Some(&json!({ "url": url }))).expect("the page loads");
    assert_eq!(page.eval("return document.title;"), "agora: live view");

    let report = report(&mut out);
    let traders = report["traders"].as_array().expect("the traders announced");
    let trader = traders.last().expect("a trader was announced")[1].as_u64().expect("a node id");

    let status = "return document.querySelector('#checker-status').textContent;";
    page.wait_for("the end of the run", status, |v| {
        v.as_str().filter(|t| t.starts_with("Run ended")).map(|_| ())
    });
    assert_eq!(page.eval("return document.querySelector('#lead-label').textContent;"), "Trader");
    let shown = page.eval("return document.querySelector('#leader').dataset.id;");
    assert_eq!(shown, trader.to_string(), "the page's trader against the report's {traders:?}");
    let row = format!("return document.querySelector('tr[data-replica=\"{trader}\"]').dataset.role;");
    assert_eq!(page.eval(&row), "trader");

    // Every property the run judged holds, on the page as in the report.
    let ok = "return [...document.querySelectorAll('#verdicts li[data-verdict=\"ok\"]')].map(l => l.dataset.property);";
    assert_eq!(page.eval(ok), report["summary"]["properties"]);
    assert!(report["summary"]["violations"].as_array().unwrap().is_empty());
    let violated = "return document.querySelectorAll('#verdicts li[data-verdict=\"violated\"]').length;";
    assert_eq!(page.eval(violated), 0);

    // Only the columns a run of any protocol has: the key-value store's, and the controls
    // once the run has ended, are hidden. Each section is named by its heading; the trades are a table with headers.
    let columns = page.eval(NODE_COLUMNS);
    assert_eq!(columns[0], "Node", "{columns}");
    for kv_only in ["Commit", "Applied", "Keys", "RESP", "Control"] {
        assert!(!columns.as_array().unwrap().iter().any(|c| c == kv_only), "{columns}");
    }
    let unnamed = "return [...document.querySelectorAll('section:not([hidden])')]\
         .filter(s => !document.getElementById(s.getAttribute('aria-labelledby'))).length;";
    assert_eq!(page.eval(unnamed), 0);
    let trades = "return document.querySelectorAll('#system thead th[scope=col]').length;";
    assert_eq!(page.eval(trades), 6);
    // The space-time diagram draws an arrow for each message of the last snapshot, each of a
    // kind the run counted, and says in its caption what it draws.
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let last = snapshot_until(addr, "the verdicts", |s| !s["verdicts"].is_null());
    let messages = last["messages"].as_array().expect("messages");
    assert!(!messages.is_empty(), "{last}");
    let arrows = "return [...document.querySelectorAll('#spacetime line.st-msg')].map(l => l.dataset.kind);";
    let drawn = page.eval(arrows);
    let kinds: Vec<&Value> = messages.iter().map(|m| &m["kind"]).collect();
    assert_eq!(drawn.as_array().unwrap().iter().collect::<Vec<_>>(), kinds);
    let counted: Vec<&str> = report["summary"]["by_kind"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.iter().all(|k| counted.contains(&k.as_str().unwrap())), "{kinds:?} {counted:?}");
    let caption = page.eval("return document.querySelector('#messages-summary').textContent;");
    assert!(
        caption.as_str().unwrap().starts_with(&format!("The {} latest messages", messages.len())),
        "{caption}"
    );
    // Once the run has ended the controls are gone: the keyboard reaches nothing that acts.
    let shown = "return [...document.querySelectorAll('button, input, select')]\
         .filter(b => b.offsetParent !== null).length;";
    assert_eq!(page.eval(shown), 0);
    // The accounts the page keeps from the peers' observations are the report's, to the
    // cent; its table says so peer by peer; the goods sold are the units the buyers bought.
    assert_eq!(last["system"]["accounts"], report["accounts"], "{}", last["system"]);
    let accounts = report["accounts"].as_array().expect("accounts");
    if report["served"].as_u64().unwrap() > 0 {
        assert!(accounts.iter().any(|a| a["cash_cents"] != 0), "something was sold: {accounts:?}");
    }
    let table = |id: &str| {
        page.eval(&format!(
            "return [...document.querySelectorAll('#system-more table[data-table=\"{id}\"] tbody tr')]\
             .map(r => [...r.cells].map(c => c.textContent));"
        ))
    };
    let shown = table("accounts");
    assert_eq!(shown.as_array().unwrap().len(), accounts.len(), "{shown}");
    for (a, row) in accounts.iter().zip(shown.as_array().unwrap()) {
        let cents = a["cash_cents"].as_i64().unwrap();
        let cash =
            format!("{}{}.{:02}", if cents < 0 { "-" } else { "" }, cents.abs() / 100, cents.abs() % 100);
        assert_eq!(row[0], format!("node {}", a["peer"]), "{row}");
        assert_eq!(row[1], a["role"], "{row}");
        assert_eq!(row[2], a["trader"].to_string(), "{row}");
        assert_eq!(row[3], cash, "{row} against {a}");
        for (good, units) in a["goods"].as_object().unwrap() {
            assert!(row[4].as_str().unwrap().contains(&format!("{good} {units}")), "{row} against {a}");
        }
    }
    let prices = table("prices");
    for row in prices.as_array().unwrap() {
        let good = row[0].as_str().unwrap();
        let bought: u64 =
            accounts.iter().filter(|a| a["role"] == "buyer").filter_map(|a| a["goods"][good].as_u64()).sum();
        assert_eq!(row[4], bought.to_string(), "units of {good} sold: {prices}");
    }
    page.eval("document.querySelector('#system-section').scrollIntoView(); return null;");
    save_screenshot(&page, dir.path(), "market-live-view.png", "AGORA_MARKET_UI_SCREENSHOT");
}

/// The tiles of the election's map: `[state, leading option, ballots counted, text, the
/// fill's height, the accessible name, its last line: counted/on the roll]` each.
const PAGE_TILES: &str = "return [...document.querySelectorAll('#tiles li.tile')].map(t => \
     [t.dataset.state, t.dataset.leader, Number(t.dataset.counted), t.textContent, \
      t.querySelector('.fill').style.height, t.getAttribute('aria-label'), t.lastElementChild.textContent]);";

#[test]
fn the_election_page_draws_the_tile_map_of_the_final_tally() {
    let Some((chromium, chromedriver)) = browser("of agora election --ui's tile map") else { return };
    let dir = tempfile::Builder::new().prefix("agora-election-ui-test-").tempdir().unwrap();
    let (_agora, url, mut out) =
        start_run(&["election", "--voters", "300", "--ui", "127.0.0.1:0", "--ui-linger", "--json"]);
    let (_driver, driver) = start_driver(&chromedriver);
    let page = Session::new(driver, &chromium, &dir.path().join("profile"));
    page.call("POST", "/url", Some(&json!({ "url": url }))).expect("the page loads");
    let report = report(&mut out);
    let status = "return document.querySelector('#checker-status').textContent;";
    page.wait_for("the end of the run", status, |v| {
        v.as_str().filter(|t| t.starts_with("Run ended")).map(|_| ())
    });

    // One tile per state, each as the published results have it: the ballots counted there,
    // the option leading (or "tied"), its share written out.
    let results = report["results"].as_object().expect("the results per state");
    assert!(!results.is_empty(), "the election published its results: {report}");
    let tiles = page.eval(PAGE_TILES);
    let tiles = tiles.as_array().expect("tiles");
    assert_eq!(tiles.len(), results.len(), "{tiles:?}");
    let mut leads: std::collections::BTreeMap<String, usize> = Default::default();
    let mut counted = 0;
    for tile in tiles {
        let code = tile[0].as_str().unwrap();
        let row = results[code].as_object().unwrap_or_else(|| panic!("{code} in the results"));
        let total: u64 = row.values().map(|c| c.as_u64().unwrap()).sum();
        let top = row.values().map(|c| c.as_u64().unwrap()).max().unwrap_or(0);
        let at_top: Vec<&String> =
            row.iter().filter(|(_, c)| c.as_u64() == Some(top)).map(|(o, _)| o).collect();
        let leader = match (total, at_top.as_slice()) {
            (0, _) => "".to_string(),
            (_, [one]) => one.to_string(),
            _ => "tied".to_string(),
        };
        assert_eq!(tile[2], total, "{code}: {tile}");
        assert_eq!(tile[1], leader.as_str(), "{code}: {tile} against {row:?}");
        let text = tile[3].as_str().unwrap();
        assert!(text.starts_with(code), "{text}");
        if total > 0 {
            let share = (1000.0 * top as f64 / total as f64).round() / 10.0;
            assert!(text.contains(&format!("{share}%")), "{code}: {text} ({share}%)");
            let name = tile[5].as_str().unwrap();
            assert!(name.contains(&format!("{share}% of {total} ballots counted")), "{code}: {name}");
            assert!(name.contains(if leader == "tied" { "tied" } else { &leader }), "{code}: {name}");
        }
        // Filled as far as its ballots are counted, of its voters on the roll (written last).
        let (c, roll) = tile[6].as_str().unwrap().split_once('/').expect("counted/roll");
        let (c, roll): (f64, f64) = (c.parse().unwrap(), roll.parse().unwrap());
        assert_eq!(c, total as f64, "{code}: {text}");
        let height: f64 = tile[4].as_str().unwrap().trim_end_matches('%').parse().unwrap();
        let filled = if roll > 0.0 { (100.0 * c / roll).min(100.0) } else { 0.0 };
        assert!((height - filled).abs() < 1e-6, "{code}: filled {height}% for {c} of {roll}");
        *leads.entry(leader).or_default() += 1;
        counted += total;
    }
    assert_eq!(counted, report["counted"].as_u64().unwrap());
    assert!(counted > 0);
    // The legend counts the states each option leads, as the tiles show them.
    let legend = page.eval("return [...document.querySelectorAll('#legend li')].map(l => l.textContent);");
    for item in legend.as_array().unwrap() {
        let (name, rest) = item.as_str().unwrap().split_once(": leads in ").expect("a legend line");
        let n: usize = rest.split(' ').next().unwrap().parse().unwrap();
        assert_eq!(n, leads.get(name).copied().unwrap_or(0), "{item} {leads:?}");
    }
    page.eval("document.querySelector('#system-section').scrollIntoView(); return null;");
    save_screenshot(&page, dir.path(), "election-tiles.png", "AGORA_ELECTION_UI_SCREENSHOT");
}

/// `POST /action/PATH` on the view, from the page (with its header) or not: (status, body).
fn post(addr: &str, path: &str, from_page: bool) -> (String, String) {
    let mut s = TcpStream::connect(addr).expect("the view accepts");
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let header = if from_page { "X-Agora-Action: 1\r\n" } else { "" };
    let request =
        format!("POST /action/{path} HTTP/1.1\r\nHost: {addr}\r\n{header}Content-Length: 0\r\n\r\n");
    s.write_all(request.as_bytes()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response");
    (head.lines().next().unwrap_or("").to_string(), body.trim_end().to_string())
}

/// Posts an action the run must take: its answer.
fn act(addr: &str, path: &str) -> String {
    let (status, body) = post(addr, path, true);
    assert_eq!(status, "HTTP/1.1 200 OK", "{path}: {body}");
    body
}

/// Node `i`'s row of a snapshot.
fn row(s: &Value, i: usize) -> &Value {
    &s["replicas"][i]
}

/// The leader by the nodes' own word in a snapshot: the running node that last observed
/// itself leading, in the highest term.
fn said_leader(s: &Value) -> Option<(usize, i64)> {
    s["replicas"]
        .as_array()?
        .iter()
        .filter(|r| r["said"] == "leader" && r["health"] == "running")
        .filter_map(|r| Some((r["id"].as_u64()? as usize, r["term"].as_i64()?)))
        .max_by_key(|(_, t)| *t)
}

/// The leader by the traffic the node drivers counted in the last sample (not by what any
/// node observed): the one running replica of `replicas` that sends to every other replica,
/// crashed ones included — a Raft leader's appends and heartbeats go to every peer, while a
/// follower only answers the leader.
fn traffic_leader(s: &Value, replicas: usize) -> Option<usize> {
    let sends = |from: usize, to: usize| {
        s["links"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|l| l["from"] == from && l["to"] == to && l["per_s"].as_f64().is_some_and(|r| r > 0.0))
    };
    let mut leaders = (0..replicas)
        .filter(|&a| row(s, a)["health"] == "running")
        .filter(|&a| (0..replicas).all(|b| a == b || sends(a, b)));
    let first = leaders.next();
    if leaders.next().is_some() {
        return None; // an election under way: candidates ask everyone
    }
    first
}

/// The first snapshot of a new stream: the latest the run has published.
fn latest(addr: &str) -> Value {
    snapshot_until(addr, "a snapshot", |_| true)
}

/// `agora run raft` with 3 replicas and a client, held (`--ui-hold`) once quiet until the page
/// lets it end, and `more` flags: (process, the view's address, its stdout).
fn held_raft(more: &[&str]) -> (Killed, String, BufReader<std::process::ChildStdout>) {
    let mut args = vec!["run", "raft", "--nodes", "3", "--clients", "1", "--msgs", "10"];
    args.extend(["--ui", "127.0.0.1:0", "--ui-hold"]);
    args.extend(more);
    let (agora, url, out) = start_run(&args);
    (agora, url.trim_start_matches("http://").trim_end_matches('/').to_string(), out)
}

#[test]
fn the_controls_break_a_raft_run_and_the_checker_is_told_of_the_faults() {
    let (_agora, addr, mut out) = held_raft(&["--ui-linger", "--json"]);
    snapshot_until(&addr, "a leader", |s| said_leader(s).is_some());

    // Bad input: 400 with the reason; not from the page: 403. Nothing reaches the run.
    for (path, why) in [
        ("crash/7", "no node 7: the nodes are 0 to 3"),
        ("explode/1", "unknown action \"explode\""),
        ("cut/1/1", "to itself"),
        ("cut/1", "cut needs two nodes"),
        ("partition/0,1,2,3", "both sides"),
        ("pause/-1", "not a node number"),
    ] {
        let (status, body) = post(&addr, path, true);
        assert_eq!(status, "HTTP/1.1 400 Bad Request", "{path}: {body}");
        assert!(body.contains(why), "{path}: {body}");
    }
    assert_eq!(post(&addr, "crash/0", false).0, "HTTP/1.1 403 Forbidden");

    // Pause and resume: the row says so, and a whole sample goes by in which the paused
    // replica handled and sent nothing (a running one gets or sends heartbeats); a second
    // resume is refused (409, why).
    assert_eq!(act(&addr, "pause/0"), "node 0 paused");
    snapshot_until(&addr, "node 0 paused and idle", |s| {
        let r = row(s, 0);
        r["role"] == "paused"
            && r["health"] == "paused"
            && r["sent_per_s"] == 0.0
            && r["delivered_per_s"] == 0.0
    });
    act(&addr, "resume/0");
    let (status, body) = post(&addr, "resume/0", true);
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 409 Conflict", "node 0 is not paused"));

    // A link cut one way, from the leader to a follower: its sender shown partitioned, the
    // link listed, and nothing more received on it (what the follower got stands still over
    // four samples) while what the leader sends on it goes on growing (it heartbeats many
    // times a second): the difference is what the cut dropped. Heal mends it.
    let s = snapshot_until(&addr, "a leader", |s| said_leader(s).is_some());
    let (leader, _) = said_leader(&s).unwrap();
    let follower = (leader + 1) % 3;
    act(&addr, &format!("cut/{leader}/{follower}"));
    let link = |s: &Value| {
        let links = s["links"].as_array().unwrap();
        let link = links.iter().find(|l| l["from"] == leader && l["to"] == follower);
        link.map_or((0, 0), |l| (l["total"].as_u64().unwrap(), l["received"].as_u64().unwrap()))
    };
    let (mut samples, mut at_cut) = (0, None);
    snapshot_until(&addr, "the cut link", |s| {
        if s["cuts"] != json!([[leader, follower]]) || row(s, leader)["role"] != "partitioned" {
            return false;
        }
        samples += 1;
        let (sent, got) = link(s);
        let (sent0, got0) = *at_cut.get_or_insert((sent, got));
        assert_eq!(got, got0, "received on the cut link {leader} → {follower}: {}", s["links"]);
        samples >= 4 && sent > sent0
    });
    act(&addr, "heal");
    snapshot_until(&addr, "the link mended", |s| {
        s["cuts_total"] == 0 && row(s, leader)["role"] != "partitioned"
    });

    // Two replicas of three crashed at once (outside Raft's model: it tolerates one), then
    // restarted from their databases.
    act(&addr, "crash/1");
    act(&addr, "crash/2");
    let (status, body) = post(&addr, "crash/1", true);
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 409 Conflict", "node 1 has already crashed"));
    snapshot_until(&addr, "two crashed", |s| (1..3).all(|i| row(s, i)["role"] == "crashed"));
    assert_eq!(act(&addr, "restart/1"), "node 1 restarted from its database");
    act(&addr, "restart/2");
    snapshot_until(&addr, "a leader after the restarts", |s| {
        said_leader(s).is_some() && (1..3).all(|i| row(s, i)["health"] == "running")
    });

    // The client cut off from the replicas, and left so: the run ends (it is quiet) with a
    // partition in force.
    assert_eq!(act(&addr, "partition/3"), "partitioned: 3 | 0,1,2");
    snapshot_until(&addr, "the partition", |s| s["cuts_total"] == 6 && row(s, 3)["role"] == "partitioned");
    act(&addr, "release");
    let report = report(&mut out);
    let last = snapshot_until(&addr, "the verdicts", |s| !s["verdicts"].is_null());

    // The checker was told: the faults outside the model are named, liveness is not judged
    // (a partition was still in force), and no safety property was broken.
    let summary = &report;
    let outside = summary["outside_model"].as_array().expect("outside_model");
    assert!(outside.iter().any(|o| o == "2 nodes down at once (it tolerates 1)"), "{summary}");
    let not_judged = summary["not_judged"].as_array().unwrap();
    assert!(
        not_judged
            .iter()
            .any(|n| n["property"] == "liveness" && n["reason"] == "a partition was still in force"),
        "{summary}"
    );
    assert!(!summary["properties"].as_array().unwrap().iter().any(|p| p == "liveness"), "{summary}");
    assert_eq!(summary["violations"], json!([]), "{summary}");
    let verdicts = last["verdicts"]["properties"].as_array().unwrap();
    let liveness = verdicts.iter().find(|v| v["property"] == "liveness").expect("liveness listed");
    assert_eq!(liveness["verdict"], "not judged", "{liveness}");

    // Each fault is on the timeline.
    let kinds: Vec<&str> =
        last["events"].as_array().unwrap().iter().filter_map(|e| e["kind"].as_str()).collect();
    for kind in ["pause", "resume", "cut", "heal", "crash", "restart", "partition", "release"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
}

#[test]
fn the_raft_page_shows_the_real_leader_and_a_new_one_after_crash_is_clicked() {
    let Some((chromium, chromedriver)) = browser("of agora run raft --ui") else { return };
    let dir = tempfile::Builder::new().prefix("agora-raft-ui-test-").tempdir().unwrap();
    let (_agora, addr, _out) = held_raft(&[]);
    let url = format!("http://{addr}/");
    let (_driver, driver) = start_driver(&chromedriver);
    let page = Session::new(driver, &chromium, &dir.path().join("profile"));
    page.call("POST", "/url", Some(&json!({ "url": url }))).expect("the page loads");
    assert_eq!(page.eval("return document.title;"), "agora: live view");

    // The page's leader is the real one (see `raft_leader_agreed`).
    let (leader, term) = raft_leader_agreed(&page, &addr, None);

    page.click(&format!("button[data-crash=\"{leader}\"]"));
    let role = format!("return document.querySelector('tr[data-replica=\"{leader}\"]').dataset.role;");
    page.wait_for("the crashed leader", &role, |v| (v == "crashed").then_some(()));
    let (new_leader, new_term) = raft_leader_agreed(&page, &addr, Some(leader));
    assert_ne!(new_leader, leader);
    assert!(new_term > term, "the new leader's term {new_term} after {term}");
    let timeline = page.eval("return document.querySelector('#timeline').textContent;");
    assert!(timeline.as_str().unwrap_or("").contains(&format!("node {leader} crashed")), "{timeline}");
    save_screenshot(&page, dir.path(), "raft-live-view.png", "AGORA_RAFT_UI_SCREENSHOT");

    // The clicked control keeps the focus, now as "Restart": Enter restarts the node.
    let focused = "const a = document.activeElement; return a ? a.getAttribute('data-restart') : null;";
    page.wait_for("the focus on Restart", focused, |v| {
        (v.as_str() == Some(leader.to_string().as_str())).then_some(())
    });
    page.press_enter();
    let health = format!("return document.querySelector('tr[data-replica=\"{leader}\"]').dataset.health;");
    page.wait_for("the node restarted", &health, |v| (v == "running").then_some(()));
}

/// Asks `agora` (child `pid`) to stop as Ctrl-C would (SIGTERM, which it takes the same way).
/// The leader the page of a 3-replica Raft run at `addr` shows, once it is the real one (the
/// replica whose driver sends to every other replica, and which says it leads, in the term
/// the page shows) and not `not`. Polled until the page and the run agree (an election may
/// be under way when either is asked).
fn raft_leader_agreed(page: &Session, addr: &str, not: Option<usize>) -> (usize, i64) {
    let until = Instant::now() + DEADLINE;
    loop {
        let shown = page_leader(&page.eval(PAGE_LEADER));
        let s = latest(addr);
        let (said, traffic) = (said_leader(&s), traffic_leader(&s, 3));
        match (shown, said, traffic) {
            (Some(shown), Some(said), Some(t)) if shown == said && t == said.0 && Some(t) != not => {
                return shown;
            }
            _ => assert!(
                Instant::now() < until,
                "the page shows {shown:?}, the nodes say {said:?}, the traffic says {traffic:?}"
            ),
        }
        std::thread::sleep(POLL);
    }
}

fn terminate(pid: u32) {
    let ok = Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill runs").success();
    assert!(ok, "kill -TERM {pid}");
}

#[test]
fn the_vote_page_shows_the_servers_the_members_and_the_votes_the_run_reports() {
    // `--stay`: once the members are done the servers keep serving (the page's controls with
    // them) until SIGTERM; `--ui-linger`: then the page stays up with the verdicts.
    let (agora, url, mut out) =
        start_run(&["vote", "--clients", "8", "--stay", "--json", "--ui", "127.0.0.1:0", "--ui-linger"]);
    let addr = url.trim_start_matches("http://").trim_end_matches('/').to_string();
    read_until(&mut out, "the servers staying up", |l| (l == "serving until Ctrl-C").then_some(()));

    // The servers, with Raft's roles: one leads.
    let s = snapshot_until(&addr, "a leader", |s| s["lead"]["id"].is_u64());
    assert_eq!(s["replicas"].as_array().unwrap().len(), 3, "{s}");
    assert!(s["replicas"].as_array().unwrap().iter().all(|r| r["health"] == "running"), "{s}");
    assert!(s["kinds"].as_array().is_some_and(|k| !k.is_empty()), "{s}");

    // The controls this run takes (crash and restart: see the test below); no release.
    let (status, why) = post(&addr, "release", true);
    assert_eq!(status, "HTTP/1.1 400 Bad Request", "{why}");
    assert!(why.contains("this run takes crash, restart, pause, resume, cut, partition, heal"), "{why}");
    act(&addr, "pause/1");
    snapshot_until(&addr, "server 1 paused", |s| row(s, 1)["health"] == "paused");
    let (status, why) = post(&addr, "pause/1", true);
    assert_eq!(status, "HTTP/1.1 409 Conflict", "{why}");
    act(&addr, "resume/1");
    act(&addr, "cut/2/0");
    snapshot_until(&addr, "the cut listed", |s| {
        s["cuts"] == json!([[2, 0]]) && row(s, 2)["role"] == "partitioned"
    });
    act(&addr, "heal");
    snapshot_until(&addr, "every link mended", |s| {
        s["cuts"] == json!([]) && row(s, 1)["health"] == "running"
    });

    terminate(agora.0.id());
    let report = report(&mut out);
    let last = snapshot_until(&addr, "the verdicts", |s| !s["verdicts"].is_null());

    // The service's own view: the members' accounts, and the question the members voted on
    // with the votes and consensus the members' final STATS reported.
    let view = &last["system"];
    assert_eq!(view["accounts"], report["members"], "{view}");
    let question = view["questions"]
        .as_array()
        .expect("questions")
        .iter()
        .find(|q| q["question"] == report["stats"]["question"])
        .unwrap_or_else(|| panic!("the report's question on the page: {view}"));
    let votes = |q: &Value| -> Vec<(String, u64, f64)> {
        q["options"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o["option"].as_str().unwrap().to_string(),
                    o["votes"].as_u64().unwrap(),
                    o["percent"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(votes(question), votes(&report["stats"]), "{view}");
    let cast: u64 = votes(question).iter().map(|v| v.1).sum();
    assert_eq!(cast, report["votes_cast"].as_u64().unwrap(), "{view}");
    assert_eq!(question["consensus"], report["consensus"], "{view}");
    // The table the page draws: a row per option, with its votes and what was decided.
    let rows = view["rows"].as_array().unwrap();
    let decided = match report["consensus"].as_str() {
        Some(c) => format!("consensus: {c}"),
        None => "closed, no consensus".to_string(),
    };
    let table: Vec<u64> = rows.iter().map(|r| r[2].as_u64().unwrap()).collect();
    assert_eq!(table, votes(&report["stats"]).iter().map(|v| v.1).collect::<Vec<_>>(), "{view}");
    assert!(rows.iter().all(|r| r[4] == decided.as_str()), "{view}");

    // The checks the members' run judged, each as the page's verdict.
    let checks = report["checks"].as_object().expect("checks");
    let verdicts = last["verdicts"]["properties"].as_array().expect("verdicts");
    assert_eq!(verdicts.len(), checks.len(), "{last}");
    for v in verdicts {
        let check = &checks[v["property"].as_str().unwrap()];
        assert_eq!(v["verdict"], if check == "ok" { "ok" } else { "violated" }, "{v} {check}");
    }
    assert!(last["verdicts"]["reproduce"].as_str().unwrap().starts_with("agora vote --clients 8 --stay"));
    let timeline: Vec<&str> =
        last["events"].as_array().unwrap().iter().filter_map(|e| e["kind"].as_str()).collect();
    for kind in ["pause", "resume", "cut", "heal"] {
        assert!(timeline.contains(&kind), "{kind} on the timeline: {timeline:?}");
    }
}

/// A member of `agora vote`'s line protocol, blocking: one command, its reply (the `EVENT`,
/// `GAP` and comment lines pushed in between skipped).
struct Member(BufReader<TcpStream>);

impl Member {
    /// Connects and reads the `HELLO` line.
    fn connect(addr: SocketAddr) -> Member {
        let s = TcpStream::connect(addr).expect("the server accepts members");
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut m = Member(BufReader::new(s));
        let hello = m.line().expect("a HELLO");
        assert!(hello.starts_with("HELLO"), "{hello}");
        m
    }

    /// The next line, `None` once the server closed the connection.
    fn line(&mut self) -> Option<String> {
        let mut l = String::new();
        match self.0.read_line(&mut l) {
            Ok(0) => None,
            Ok(_) => Some(l.trim_end().to_string()),
            Err(e) => panic!("reading from the server: {e}"),
        }
    }

    /// Sends `command`: its reply.
    fn cmd(&mut self, command: &str) -> String {
        self.0.get_mut().write_all(format!("{command}\n").as_bytes()).unwrap();
        loop {
            let l = self.line().unwrap_or_else(|| panic!("{command}: the server closed the connection"));
            if !l.starts_with("EVENT") && !l.starts_with("GAP") && !l.starts_with('#') {
                return l;
            }
        }
    }
}

/// A field of a reply (`name=value`).
fn field<'a>(reply: &'a str, name: &str) -> Option<&'a str> {
    reply.split(' ').find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
}

#[test]
fn the_vote_page_crashes_and_restarts_a_server_and_its_members_resume_elsewhere() {
    let (agora, url, mut out) = start_run(&[
        "vote",
        "--clients",
        "4",
        // No member vanishes: the crowd would wait out the long session timeout for its FAIL.
        "--vanish",
        "0",
        "--stay",
        "--json",
        // The member below has all the time it needs to resume after the crash.
        "--session-timeout-ms",
        "60000",
        "--ui",
        "127.0.0.1:0",
        "--ui-linger",
    ]);
    let addr = url.trim_start_matches("http://").trim_end_matches('/').to_string();
    // What `--stay` prints: `server I ADDR ...` per server, then the administrator's token.
    let mut members: Vec<SocketAddr> = Vec::new();
    let admin = read_until(&mut out, "the servers staying up", |l| {
        if let Some(rest) = l.strip_prefix("server ") {
            members.push(rest.split_whitespace().nth(1)?.parse().ok()?);
        }
        l.strip_prefix("admin token ").map(str::to_string)
    });
    assert_eq!(members.len(), 3, "{members:?}");

    // The leader, by its word; a member logged in on it.
    let s = snapshot_until(&addr, "a leader", |s| said_leader(s).is_some());
    let (leader, term) = said_leader(&s).unwrap();
    let mut a = Member::connect(members[leader]);
    let admitted = a.cmd(&format!("ADMIN {admin}"));
    assert!(admitted.starts_with("OK ADMIN"), "{admitted}");
    let made = a.cmd("ACCOUNT watcher pw-of-the-watcher");
    assert!(made.starts_with("OK ACCOUNT"), "{made}");
    a.cmd("EXIT");
    let mut m = Member::connect(members[leader]);
    let login = m.cmd("LOGIN watcher pw-of-the-watcher");
    assert!(login.starts_with("OK LOGIN"), "{login}");
    let (pin, token) =
        (field(&login, "pin").unwrap().to_string(), field(&login, "token").unwrap().to_string());
    let events = field(&login, "events").unwrap().to_string();

    // Crash the leader: its row says crashed, another server leads in a higher term, and the
    // member's connection to it is closed.
    assert_eq!(act(&addr, &format!("crash/{leader}")), format!("server {leader} crashed"));
    let s = snapshot_until(&addr, "the leader crashed and another leading", |s| {
        row(s, leader)["health"] == "crashed" && said_leader(s).is_some_and(|(l, t)| l != leader && t > term)
    });
    assert_eq!(row(&s, leader)["role"], "crashed", "{s}");
    while let Some(l) = m.line() {
        assert!(l.starts_with("EVENT") || l.starts_with("BYE") || l.starts_with('#'), "{l}");
    }
    // The member resumes its session on another server, with its PIN.
    let other = (leader + 1) % 3;
    let mut m = Member::connect(members[other]);
    let resumed = m.cmd(&format!("RESUME {token} {events}"));
    assert!(resumed.starts_with("OK RESUME"), "{resumed}");
    assert_eq!(field(&resumed, "pin"), Some(pin.as_str()), "{resumed}");

    // What a crashed server does not take, and a running one.
    let (status, why) = post(&addr, &format!("crash/{leader}"), true);
    assert_eq!(status, "HTTP/1.1 409 Conflict", "{why}");
    let (status, why) = post(&addr, &format!("pause/{leader}"), true);
    assert_eq!(status, "HTTP/1.1 409 Conflict", "{why}");
    let (status, why) = post(&addr, &format!("restart/{other}"), true);
    assert_eq!(status, "HTTP/1.1 409 Conflict", "{why}");

    // Restarted from its database: it runs, handles its peers' messages again, and its
    // members' address serves the sessions the log holds.
    assert_eq!(
        act(&addr, &format!("restart/{leader}")),
        format!("server {leader} restarted from its database")
    );
    snapshot_until(&addr, "the server running and handling messages", |s| {
        row(s, leader)["health"] == "running"
            && row(s, leader)["delivered_per_s"].as_f64().is_some_and(|r| r > 0.0)
    });
    // Its connection dropped (not `EXIT`, which would end the session), the member comes back
    // to the restarted server.
    drop(m);
    let mut m = Member::connect(members[leader]);
    let resumed = m.cmd(&format!("RESUME {token} {events}"));
    assert!(resumed.starts_with("OK RESUME"), "{resumed}");
    assert_eq!(field(&resumed, "pin"), Some(pin.as_str()), "{resumed}");
    let (status, why) = post(&addr, &format!("restart/{leader}"), true);
    assert_eq!(status, "HTTP/1.1 409 Conflict", "{why}");

    let s = snapshot_until(&addr, "the crash and the restart on the timeline", |s| {
        let kinds: Vec<&str> =
            s["events"].as_array().unwrap().iter().filter_map(|e| e["kind"].as_str()).collect();
        kinds.contains(&"crash") && kinds.contains(&"restart")
    });
    let texts: Vec<&str> =
        s["events"].as_array().unwrap().iter().filter_map(|e| e["text"].as_str()).collect();
    assert!(texts.iter().any(|t| t.contains(&format!("node {leader} crashed"))), "{texts:?}");
    terminate(agora.0.id());
    let report = report(&mut out);
    assert_eq!(report["checks_passed"], true, "{report}");
}

#[test]
fn the_vote_crowd_moves_to_another_server_when_its_own_is_crashed_mid_run() {
    // One member vanishes: the others wait for its FAIL, a session timeout (10 s) after the
    // question opened, which leaves the crash below time to land while they are connected.
    let (agora, url, mut out) = start_run(&[
        "vote",
        "--clients",
        "24",
        "--vanish",
        "1",
        "--session-timeout-ms",
        "10000",
        "--json",
        "--ui",
        "127.0.0.1:0",
    ]);
    let addr = url.trim_start_matches("http://").trim_end_matches('/').to_string();
    let s = snapshot_until(&addr, "a leader and the question open", |s| {
        said_leader(s).is_some() && s["system"]["questions"].as_array().is_some_and(|q| !q.is_empty())
    });
    let (leader, _) = said_leader(&s).unwrap();
    assert_eq!(act(&addr, &format!("crash/{leader}")), format!("server {leader} crashed"));

    // The crowd ends by itself, every check holding: its members on the crashed server moved
    // to another and resumed their sessions, missing no event and no vote.
    let report = report(&mut out);
    assert_eq!(report["checks_passed"], true, "{report}");
    let moved = report["members_moved"].as_u64().unwrap();
    assert!(moved > 0, "no member moved: the crash came after the crowd? {report}");
    assert!(moved < 24, "only the crashed server's members move: {report}");
    assert_eq!(report["votes_acknowledged"], report["votes_cast"], "{report}");
    assert_eq!(report["votes_cast"], 23, "{report}");
    let mut agora = agora;
    let mut exit = None;
    poll_until("the run's end", || {
        exit = agora.0.try_wait().unwrap();
        exit.is_some()
    });
    assert_eq!(exit.and_then(|e| e.code()), Some(0), "{report}");
}

/// What a snapshot may weigh at 100 nodes: the sum of what the sampler caps — a row per node
/// (its latest observation cut at 240 bytes), the 200 events of the timeline, the 40 busiest
/// links, the 120 latest messages, the system's table — with room to spare. Whatever the
/// message rate, the page gets at most this every half second.
const SNAPSHOT_BYTES_AT_100_NODES: usize = 128 * 1024;

#[test]
fn at_100_nodes_every_snapshot_stays_under_its_bound() {
    // Flood over a random 8-regular graph: 100 nodes, about 800 messages, every node's
    // sends and receipts within its driver's sample (32 of each), so the diagram's pairs
    // outnumber what a snapshot may carry.
    let (_agora, url, mut out) = start_run(&[
        "run",
        "flood",
        "--nodes",
        "100",
        "--topology",
        "regular:8",
        "--ui",
        "127.0.0.1:0",
        "--ui-linger",
        "--json",
    ]);
    let addr = url.trim_start_matches("http://").trim_end_matches('/').to_string();
    let summary = report(&mut out);
    let kinds: Vec<&str> =
        summary["by_kind"].as_array().expect("kinds").iter().map(|k| k["kind"].as_str().unwrap()).collect();
    let mut s = TcpStream::connect(&addr).expect("the view accepts");
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.write_all(format!("GET /events HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    let data = read_until(&mut r, "the last snapshot", |l| l.strip_prefix("data: ").map(str::to_string));
    eprintln!("the last snapshot at 100 nodes: {} bytes", data.len());
    assert!(data.len() <= SNAPSHOT_BYTES_AT_100_NODES, "a snapshot of {} bytes", data.len());
    let v: Value = serde_json::from_str(&data).expect("a JSON snapshot");
    assert!(!v["verdicts"].is_null(), "the run has ended: {v}");
    assert_eq!(v["replicas"].as_array().unwrap().len(), 100);
    assert_eq!(v["links"].as_array().unwrap().len(), 40, "the 40 busiest of {} links", v["links_active"]);
    assert!(v["links_active"].as_u64().unwrap() > 40);
    assert!(v["events"].as_array().unwrap().len() <= 200);
    let messages = v["messages"].as_array().unwrap();
    assert!(summary["messages_sent"].as_u64().unwrap() > 120, "{summary}");
    assert_eq!(messages.len(), 120, "the latest 120 of the messages paired");
    for m in messages {
        assert!(kinds.contains(&m["kind"].as_str().unwrap()), "{m} {kinds:?}");
        assert_ne!(m["from"], m["to"], "{m}");
        assert!(m["sent_ms"].as_f64().unwrap() <= m["received_ms"].as_f64().unwrap(), "{m}");
    }
    // The latest: sorted by receipt.
    let received: Vec<f64> = messages.iter().map(|m| m["received_ms"].as_f64().unwrap()).collect();
    assert!(received.windows(2).all(|w| w[0] <= w[1]), "{received:?}");
}

/// `agora up` of three Raft replicas and a client, each node a process of its own keeping a
/// database, with its live view held (`--ui-hold`) until the page lets the run end, and
/// served on after the end if `linger`: (process, the view's address, its stdout, the folder
/// that holds the cluster file).
fn up_with_view(linger: bool) -> (Killed, String, BufReader<std::process::ChildStdout>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut text = format!(
        "cluster = \"ui-up\"\nsecret = \"{}\"\nprotocol = \"raft\"\ndata_dir = \"data\"\nidle_ms = 1000\n\
         max_time_ms = 300000\n[params]\nclients = 1\nmsgs = 20\n",
        "7a".repeat(32)
    );
    for i in 0..4 {
        text.push_str(&format!("[[node]]\nid = {i}\naddr = \"127.0.0.1:0\"\n"));
    }
    let file = dir.path().join("up.toml");
    std::fs::write(&file, text).unwrap();
    let mut args =
        vec!["up", "--config", file.to_str().unwrap(), "--ui", "127.0.0.1:0", "--ui-hold", "--json"];
    if linger {
        args.push("--ui-linger");
    }
    let (agora, url, out) = start_run(&args);
    (agora, url.trim_start_matches("http://").trim_end_matches('/').to_string(), out, dir)
}

/// The state letter of process `pid` (`/proc/PID/stat`): `T` stopped, `S` or `R` running;
/// `None` once it is gone (or only a zombie not yet reaped).
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat.rsplit_once(") ")?.1.chars().next()?;
    (state != 'Z').then_some(state)
}

/// Polls until `f` holds, or fails after the deadline, saying `what`.
fn poll_until(what: &str, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + DEADLINE;
    while !f() {
        assert!(Instant::now() < until, "{what}: not within {DEADLINE:?}");
        std::thread::sleep(POLL);
    }
}

/// The process id an answer of `agora up`'s page names (`... process PID)`).
fn pid_in(answer: &str) -> u32 {
    let (_, tail) = answer.rsplit_once("process ").expect("a process id");
    tail.trim_end_matches(')').parse().expect("a process id")
}

#[test]
fn up_serves_the_nodes_processes_and_its_controls_kill_stop_and_restart_them() {
    let (_agora, addr, mut out, _dir) = up_with_view(true);
    // The leader the nodes say is the one the traffic shows: the replica that sends to the
    // two others, counted by the node processes' own drivers and read from what they print.
    let s = snapshot_until(&addr, "the leader the traffic shows", |s| {
        said_leader(s).is_some_and(|(l, _)| traffic_leader(s, 3) == Some(l))
    });
    let (leader, term) = said_leader(&s).unwrap();
    assert_eq!(s["verbs"], json!(["crash", "restart", "pause", "resume", "release"]));
    assert!(s["unavailable"].as_str().unwrap().contains("process of its own"), "{}", s["unavailable"]);
    // The links: what the sender counted sent and what the receiver counted handled, each
    // read from its own process (at its own time: they need not match while the run goes).
    let links = s["links"].as_array().unwrap();
    let from_leader = |to: usize| links.iter().find(|l| l["from"] == leader && l["to"] == to);
    for to in (0..3).filter(|&to| to != leader) {
        let l = from_leader(to).unwrap_or_else(|| panic!("{leader} → {to} in {links:?}"));
        assert!(l["total"].as_u64().unwrap() > 0 && l["received"].as_u64().unwrap() > 0, "{l}");
    }
    assert!(!s["messages"].as_array().unwrap().is_empty(), "the latest messages, from the processes");

    // The links cannot be cut: refused, with why.
    let (status, body) = post(&addr, &format!("cut/{leader}/{}", (leader + 1) % 3), true);
    assert_eq!(status, "HTTP/1.1 400 Bad Request", "{body}");
    assert!(body.contains("this run takes crash, restart, pause, resume, release"), "{body}");

    // Crash: the leader's process is killed (gone from /proc), its row says so, and another
    // replica leads in a higher term.
    let killed = pid_in(&act(&addr, &format!("crash/{leader}")));
    poll_until("the crashed leader's process gone", || process_state(killed).is_none());
    let s = snapshot_until(&addr, "a new leader", |s| {
        row(s, leader)["health"] == "crashed"
            && said_leader(s).is_some_and(|(l, t)| l != leader && t > term && traffic_leader(s, 3) == Some(l))
    });
    let (second, _) = said_leader(&s).unwrap();

    // Restart: a new process from the node's database; it runs and counts from zero again.
    let restarted = pid_in(&act(&addr, &format!("restart/{leader}")));
    assert_ne!(restarted, killed);
    assert!(process_state(restarted).is_some(), "the restarted node runs");
    snapshot_until(&addr, "the restarted node running", |s| {
        row(s, leader)["health"] == "running" && row(s, leader)["delivered_per_s"].as_f64() > Some(0.0)
    });
    let (status, body) = post(&addr, &format!("restart/{leader}"), true);
    assert_eq!(status, "HTTP/1.1 409 Conflict", "{body}");
    assert!(body.contains("is running"), "{body}");

    // Pause: the new leader's process is stopped (state T) until resumed.
    let paused = pid_in(&act(&addr, &format!("pause/{second}")));
    poll_until("the paused process stopped", || process_state(paused) == Some('T'));
    snapshot_until(&addr, "the paused row", |s| row(s, second)["health"] == "paused");
    let resumed = pid_in(&act(&addr, &format!("resume/{second}")));
    assert_eq!(resumed, paused);
    poll_until("the resumed process running", || process_state(paused).is_some_and(|c| c != 'T'));

    // Each action is on the timeline; then the page lets the run end, and the report and
    // the checker's verdicts follow.
    let s = snapshot_until(&addr, "the actions on the timeline", |s| {
        let kinds: Vec<&str> =
            s["events"].as_array().unwrap().iter().filter_map(|e| e["kind"].as_str()).collect();
        ["crash", "restart", "pause", "resume"].iter().all(|k| kinds.contains(k))
    });
    assert_eq!(s["held"], true);
    act(&addr, "release");
    let summary = report(&mut out);
    let last = snapshot_until(&addr, "the verdicts", |s| !s["verdicts"].is_null());
    assert_eq!(last["verdicts"]["end"], summary["end"]);
    assert_shows_the_judged_properties(&last, &summary);
}

/// A node crashed from the page and never restarted ends the run as a node crashed for real
/// would: the others' idleness decides (Raft's new leader does not wait for a replica silent
/// for longer than an election timeout), the run ends by itself — idle, long before the
/// cluster file's time limit — and the missing report of the crashed node is expected
/// (exit code 0), with liveness judged over the replicas still up.
#[test]
fn up_ends_by_itself_with_a_node_left_crashed_from_the_page() {
    let (mut agora, addr, mut out, _dir) = up_with_view(false);
    let s = snapshot_until(&addr, "the leader the traffic shows", |s| {
        said_leader(s).is_some_and(|(l, _)| traffic_leader(s, 3) == Some(l))
    });
    let (leader, term) = said_leader(&s).unwrap();
    let killed = pid_in(&act(&addr, &format!("crash/{leader}")));
    poll_until("the crashed leader's process gone", || process_state(killed).is_none());
    snapshot_until(&addr, "a new leader", |s| {
        said_leader(s).is_some_and(|(l, t)| l != leader && t > term && traffic_leader(s, 3) == Some(l))
    });
    act(&addr, "release");
    let summary = report(&mut out);
    assert_eq!(summary["end"], "idle", "{summary}");
    // The killed leader's observations, read from what it printed before the kill, are
    // judged with the others' (without them, a write it applied and acknowledged would seem
    // to have taken effect nowhere).
    assert_eq!(summary["violations"], json!([]), "{summary}");
    assert!(summary["properties"].as_array().unwrap().contains(&json!("liveness")), "{summary}");
    assert_eq!(agora.0.wait().unwrap().code(), Some(0), "{summary}");
}

#[test]
fn the_up_page_offers_only_what_processes_take_and_its_crash_kills_the_leader() {
    let Some((chromium, chromedriver)) = browser("of agora up --ui") else { return };
    let (_agora, addr, mut out, dir) = up_with_view(true);
    let (_driver, driver) = start_driver(&chromedriver);
    let page = Session::new(driver, &chromium, &dir.path().join("profile"));
    page.call("POST", "/url", Some(&json!({ "url": format!("http://{addr}/") }))).expect("the page loads");

    // The page's leader is the one the nodes say and the traffic shows.
    let (leader, term) = raft_leader_agreed(&page, &addr, None);

    // What processes cannot take is not shown, and the page says why; what they take is.
    let shown = |css: &str| {
        page.eval(&format!(
            "const e = document.querySelector('{css}'); return !!e && !e.closest('[hidden]');"
        ))
    };
    assert_eq!(shown("#faults-section"), true);
    for css in ["#cut-form", "#partition-form", "#heal"] {
        assert_eq!(shown(css), false, "{css} shown");
    }
    assert_eq!(shown("#release"), true, "a held run can be let end");
    let why = page.eval("return document.querySelector('#unavailable').textContent;");
    assert!(why.as_str().unwrap().contains("process of its own"), "{why}");
    for verb in ["crash", "pause"] {
        assert_eq!(shown(&format!("button[data-{verb}=\"{leader}\"]")), true, "{verb} on {leader}");
    }
    // Each link says what was sent and what was received on it.
    let links = page.wait_for("the links", "return document.querySelector('#links').textContent;", |v| {
        v.as_str().filter(|t| t.contains("received")).map(str::to_string)
    });
    assert!(links.contains(&format!("{leader} → ")), "{links}");

    // Crash, clicked: the answer names the process, which is gone; another leader follows.
    page.click(&format!("button[data-crash=\"{leader}\"]"));
    let answer = page.wait_for(
        "the crash's answer",
        "return document.querySelector('#action-result').textContent;",
        |v| v.as_str().filter(|t| t.contains("SIGKILL")).map(str::to_string),
    );
    let killed = pid_in(&answer);
    poll_until("the killed process gone", || process_state(killed).is_none());
    let role = format!("return document.querySelector('tr[data-replica=\"{leader}\"]').dataset.role;");
    page.wait_for("the crashed leader", &role, |v| (v == "crashed").then_some(()));
    let (second, second_term) = raft_leader_agreed(&page, &addr, Some(leader));
    assert!(second != leader && second_term > term, "{second} in {second_term} after {leader} in {term}");
    save_screenshot(&page, dir.path(), "up-live-view.png", "AGORA_UP_UI_SCREENSHOT");

    // The row's control is now "Restart": clicked, the node runs again (a node left crashed
    // would keep the others from ever being idle, and the run would last to its time limit).
    page.click(&format!("button[data-restart=\"{leader}\"]"));
    let health = format!("return document.querySelector('tr[data-replica=\"{leader}\"]').dataset.health;");
    page.wait_for("the restarted node running", &health, |v| (v == "running").then_some(()));

    // "Let the run end": the run ends and the page shows the checker's verdicts.
    page.click("#release");
    let summary = report(&mut out);
    assert!(summary["properties"].is_array(), "{summary}");
    page.wait_for("the verdicts", "return document.querySelector('#checker-status').textContent;", |v| {
        v.as_str().filter(|t| t.starts_with("Run ended")).map(str::to_string)
    });
}
