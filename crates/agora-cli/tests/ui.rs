//! `agora kv --ui` in a real browser: chromium, driven through chromedriver's WebDriver HTTP
//! API (plain JSON over a socket), reads the leader from the page, checks it against the
//! replicas' own word (RESP `ROLE`), clicks "Crash" on it, waits for the page to show another
//! leader, restarts the crashed replica with the keyboard (Enter on the focused control), and
//! saves a screenshot. The page `agora sim --html` writes is opened from its file and moved to
//! the end of the run with the keyboard, where it must show the leader the run elected.
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

/// chromedriver on a port it picks itself (`--port=0`; it prints the port).
fn start_driver(chromedriver: &Path) -> (Killed, SocketAddr) {
    let mut child = Command::new(chromedriver)
        .arg("--port=0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver runs");
    let mut out = BufReader::new(child.stdout.take().expect("piped"));
    let port: u16 = read_until(&mut out, "chromedriver's port", |l| {
        l.split("started successfully on port ")
            .nth(1)
            .map(|p| p.trim_end_matches('.').parse().expect("a port"))
    });
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    (Killed(child), SocketAddr::from(([127, 0, 0, 1], port)))
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
    resp_addrs
        .iter()
        .enumerate()
        .filter_map(|(i, a)| role(*a).filter(|(r, _)| r == "leader").map(|(_, t)| (i, t)))
        .max_by_key(|(_, t)| *t)
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
