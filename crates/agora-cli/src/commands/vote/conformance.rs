//! `agora vote conformance --server HOST:PORT`: checks a server of any implementation against
//! docs/vote-protocol.md, one named case at a time, with two members of its own (accounts
//! created with the administrator token, names drawn at random so that runs do not collide).
//! Exits 1 when a case fails. It judges replies and pushed events, never timing.

use super::client::{field, json_tail, Client};
use crate::cli::VoteConformanceArgs;
use crate::commands::shared::tcp::runtime;
use crate::error::UserError;
use serde_json::json;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// How long a case waits for a line before it fails.
const PATIENCE: Duration = Duration::from_secs(30);

type Case = Result<(), String>;

fn expect(got: &str, prefix: &str) -> Case {
    if got.starts_with(prefix) {
        Ok(())
    } else {
        Err(format!("expected `{prefix}...`, got `{got}`"))
    }
}

fn io(e: std::io::Error) -> String {
    e.to_string()
}

/// What the cases share: the server and the two members.
struct Run {
    addr: SocketAddr,
    admin: String,
    names: [String; 2],
    password: String,
    a: Option<Client>,
    b: Option<Client>,
    pins: [u32; 2],
    tokens: [String; 2],
    question: String,
}

impl Run {
    async fn connect(&self) -> Result<Client, String> {
        Client::connect(self.addr, PATIENCE).await.map_err(io)
    }

    fn a(&mut self) -> Result<&mut Client, String> {
        self.a.as_mut().ok_or_else(|| "member A did not log in".to_string())
    }

    fn b(&mut self) -> Result<&mut Client, String> {
        self.b.as_mut().ok_or_else(|| "member B did not log in".to_string())
    }

    async fn hello_and_help(&mut self) -> Case {
        let mut c = self.connect().await?;
        expect(&c.hello, "HELLO ")?;
        c.send("HELP").await.map_err(io)?;
        expect(&c.reply().await.map_err(io)?, "OK HELP")
    }

    async fn bad_input_keeps_the_connection(&mut self) -> Case {
        let mut c = self.connect().await?;
        expect(&c.cmd("FROBNICATE now").await.map_err(io)?, "ERR unknown-command")?;
        expect(&c.cmd("STATS").await.map_err(io)?, "ERR not-logged-in")?;
        c.send_raw(b"VOTE \xff\xfe\n").await.map_err(io)?;
        expect(&c.reply().await.map_err(io)?, "ERR invalid-utf8")?;
        let mut long = vec![b'x'; 1 << 20];
        long.push(b'\n');
        c.send_raw(&long).await.map_err(io)?;
        expect(&c.reply().await.map_err(io)?, "ERR too-long")?;
        expect(&c.cmd("LOGIN only-a-name").await.map_err(io)?, "ERR usage")?;
        expect(&c.cmd("ping").await.map_err(io)?, "OK PING")
    }

    async fn accounts(&mut self) -> Case {
        let mut c = self.connect().await?;
        expect(
            &c.cmd(&format!("ACCOUNT {} {}", self.names[0], self.password)).await.map_err(io)?,
            "ERR not-admin",
        )?;
        expect(&c.cmd("ADMIN not-the-token").await.map_err(io)?, "ERR bad-token")?;
        expect(&c.cmd(&format!("ADMIN {}", self.admin)).await.map_err(io)?, "OK ADMIN")?;
        for name in &self.names {
            expect(
                &c.cmd(&format!("ACCOUNT {name} {}", self.password)).await.map_err(io)?,
                "OK ACCOUNT pin=",
            )?;
        }
        let again = c.cmd(&format!("ACCOUNT {} other", self.names[0])).await.map_err(io)?;
        expect(&again, "ERR name-taken")?;
        expect(&c.cmd("ACCOUNT bad name! pw").await.map_err(io)?, "ERR")?;
        expect(&c.cmd("EXIT").await.map_err(io)?, "OK EXIT")
    }

    async fn login(&mut self) -> Case {
        let mut a = self.connect().await?;
        expect(
            &a.cmd(&format!("LOGIN {} wrong-password", self.names[0])).await.map_err(io)?,
            "ERR bad-login",
        )?;
        expect(&a.cmd(&format!("LOGIN nobody-{} x", self.names[0])).await.map_err(io)?, "ERR bad-login")?;
        let mut b = self.connect().await?;
        for (i, c) in [&mut a, &mut b].into_iter().enumerate() {
            let r = c.cmd(&format!("LOGIN {} {}", self.names[i], self.password)).await.map_err(io)?;
            expect(&r, "OK LOGIN ")?;
            self.pins[i] =
                field(&r, "pin").and_then(|p| p.parse().ok()).ok_or(format!("no pin= in `{r}`"))?;
            self.tokens[i] = field(&r, "token").ok_or(format!("no token= in `{r}`"))?.to_string();
            field(&r, "events").and_then(|n| n.parse::<u64>().ok()).ok_or(format!("no events= in `{r}`"))?;
        }
        if self.pins[0] == self.pins[1] {
            return Err(format!("two members with PIN {}", self.pins[0]));
        }
        // A learns of B's arrival without asking.
        let join = format!("JOIN {} {}", self.pins[1], self.names[1]);
        a.wait_event(PATIENCE, |e| e == join).await.map_err(|e| format!("{join}: {e}"))?;
        self.a = Some(a);
        self.b = Some(b);
        Ok(())
    }

    async fn setup_negotiate_receive_discover(&mut self) -> Case {
        let (pa, pb) = (self.pins[0], self.pins[1]);
        let a = self.a()?;
        expect(&a.cmd("NEGOTIATE yes").await.map_err(io)?, "ERR nothing-declared")?;
        expect(&a.cmd("SETUP print, scan | colour | a4 only").await.map_err(io)?, "OK SETUP ask=negotiate")?;
        expect(&a.cmd("NEGOTIATE yes").await.map_err(io)?, "OK NEGOTIATE stored")?;
        let r = a.cmd(&format!("RECEIVE {pa}")).await.map_err(io)?;
        expect(&r, "OK RECEIVE ")?;
        let want = json!([{"pin": pa, "services": ["print", "scan"], "capabilities": ["colour"], "constraints": ["a4 only"]}]);
        if json_tail(&r, 2) != Some(want.clone()) {
            return Err(format!("RECEIVE {pa}: `{r}`, expected {want}"));
        }
        let d = a.cmd("DISCOVER").await.map_err(io)?;
        expect(&d, "OK DISCOVER count=")?;
        for p in [pa, pb] {
            if !d.split_whitespace().any(|w| w.starts_with(&format!("{p}:"))) {
                return Err(format!("DISCOVER does not list {p}: `{d}`"));
            }
        }
        let b = self.b()?;
        expect(&b.cmd("SETUP x | | ").await.map_err(io)?, "OK SETUP")?;
        expect(&b.cmd("NEGOTIATE no").await.map_err(io)?, "OK NEGOTIATE refused")?;
        expect(&b.cmd(&format!("RECEIVE {pb}")).await.map_err(io)?, "ERR no-member")?;
        expect(&b.cmd("NEGOTIATE maybe").await.map_err(io)?, "ERR usage")
    }

    async fn questions_and_votes(&mut self) -> Case {
        let a = self.a()?;
        let r = a.cmd("OPEN conformance: tea or coffee? | tea | coffee").await.map_err(io)?;
        expect(&r, "OK OPEN question=")?;
        let q = field(&r, "question").unwrap_or("").to_string();
        self.question = q.clone();
        let opened = format!("QUESTION {q} ");
        for c in [&mut self.a, &mut self.b].into_iter().flatten() {
            c.wait_event(PATIENCE, |e| e.starts_with(&opened)).await.map_err(|e| format!("{opened}: {e}"))?;
        }
        let a = self.a()?;
        let first = a.cmd(&format!("VOTE {q} A")).await.map_err(io)?;
        expect(&first, &format!("OK VOTE question={q} option=A again=no"))?;
        expect(
            &a.cmd(&format!("VOTE {q} tea")).await.map_err(io)?,
            &format!("OK VOTE question={q} option=A again=yes"),
        )?;
        expect(&a.cmd(&format!("VOTE {q} B")).await.map_err(io)?, "ERR already-voted")?;
        expect(&a.cmd(&format!("VOTE {q} Z")).await.map_err(io)?, "ERR no-option")?;
        let b = self.b()?;
        let second = b.cmd(&format!("VOTE {q} A")).await.map_err(io)?;
        expect(&second, "OK VOTE ")?;
        let s = b.cmd(&format!("STATS {q}")).await.map_err(io)?;
        expect(&s, "OK STATS ")?;
        let v = json_tail(&s, 2).ok_or(format!("STATS: no JSON in `{s}`"))?;
        if v["options"][0]["votes"] != json!(2) || v["options"][1]["votes"] != json!(0) {
            return Err(format!("STATS after two votes for A: {v}"));
        }
        if field(&second, "consensus") == Some("A") {
            let want = format!("CONSENSUS {q} option=A");
            for c in [&mut self.a, &mut self.b].into_iter().flatten() {
                c.wait_event(PATIENCE, |e| e.starts_with(&want)).await.map_err(|e| format!("{want}: {e}"))?;
            }
            let b = self.b()?;
            expect(&b.cmd(&format!("VOTE {q} B")).await.map_err(io)?, "ERR already-voted")?;
        }
        Ok(())
    }

    async fn same_events_for_both(&mut self) -> Case {
        let a = self.a.as_ref().ok_or("no member A")?;
        let b = self.b.as_ref().ok_or("no member B")?;
        for (n, e) in &b.events {
            if let Some((_, other)) = a.events.iter().find(|(m, _)| m == n) {
                if other != e {
                    return Err(format!("event {n}: `{other}` for A, `{e}` for B"));
                }
            }
        }
        Ok(())
    }

    async fn resume_and_logout(&mut self) -> Case {
        let (pb, token) = (self.pins[1], self.tokens[1].clone());
        let mut c = self.connect().await?;
        expect(&c.cmd(&format!("RESUME {} 0", "0".repeat(64))).await.map_err(io)?, "ERR no-session")?;
        let r = c.cmd(&format!("RESUME {token}")).await.map_err(io)?;
        expect(&r, &format!("OK RESUME pin={pb} "))?;
        expect(&c.cmd("LOGOUT").await.map_err(io)?, "OK LOGOUT")?;
        let leave = format!("LEAVE {pb}");
        self.a()?.wait_event(PATIENCE, |e| e == leave).await.map_err(|e| format!("{leave}: {e}"))?;
        expect(&c.cmd(&format!("RESUME {token}")).await.map_err(io)?, "ERR no-session")?;
        expect(&c.cmd("STATS").await.map_err(io)?, "ERR not-logged-in")?;
        let b = self.b()?;
        expect(&b.cmd("STATS").await.map_err(io)?, "ERR no-session")
    }

    async fn exit(&mut self) -> Case {
        let a = self.a()?;
        expect(&a.cmd("EVENTS 0").await.map_err(io)?, "OK EVENTS count=")?;
        a.send("EXIT").await.map_err(io)?;
        expect(&a.reply().await.map_err(io)?, "OK EXIT")?;
        a.drain().await;
        match &a.bye {
            Some(b) if b.starts_with("BYE exit") => Ok(()),
            other => Err(format!("after EXIT: {other:?}, expected BYE exit")),
        }
    }
}

/// `agora vote conformance`.
pub fn run(args: &VoteConformanceArgs) -> Result<i32, UserError> {
    let addr = args
        .server
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| UserError(format!("--server {}: cannot resolve it", args.server)))?;
    let tag = blake3::hash(format!("{:?}{}", std::time::SystemTime::now(), std::process::id()).as_bytes())
        .to_hex()[..8]
        .to_string();
    let mut r = Run {
        addr,
        admin: args.admin_token.clone(),
        names: [format!("conf-{tag}-a"), format!("conf-{tag}-b")],
        password: format!("pw-{tag}"),
        a: None,
        b: None,
        pins: [0; 2],
        tokens: [String::new(), String::new()],
        question: String::new(),
    };
    let rt = runtime()?;
    let results = rt.block_on(async {
        let mut results: Vec<(&str, Case)> = Vec::new();
        results.push(("hello-and-help", r.hello_and_help().await));
        results.push(("bad-input-keeps-the-connection", r.bad_input_keeps_the_connection().await));
        results.push(("accounts", r.accounts().await));
        results.push(("login-and-join-event", r.login().await));
        results.push(("setup-negotiate-receive-discover", r.setup_negotiate_receive_discover().await));
        results.push(("questions-and-votes", r.questions_and_votes().await));
        results.push(("same-events-for-both", r.same_events_for_both().await));
        results.push(("resume-and-logout", r.resume_and_logout().await));
        results.push(("exit", r.exit().await));
        results
    });
    let passed = results.iter().all(|(_, c)| c.is_ok());
    if args.json {
        let cases: serde_json::Map<String, serde_json::Value> = results
            .iter()
            .map(|(k, c)| (k.to_string(), c.as_ref().err().map_or(json!("ok"), |e| json!(e))))
            .collect();
        println!("{}", json!({"server": args.server, "cases": cases, "passed": passed}));
    } else {
        for (name, c) in &results {
            match c {
                Ok(()) => println!("ok      {name}"),
                Err(e) => println!("FAILED  {name}: {e}"),
            }
        }
        println!("{}", if passed { "conformant" } else { "not conformant" });
    }
    Ok(i32::from(!passed))
}
