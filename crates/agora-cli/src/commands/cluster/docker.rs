//! Running `docker` and Docker Compose: the one place `agora cluster` starts them, so a
//! missing or silent Docker is one line and exit code 2 wherever it is met.

use crate::error::UserError;
use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Docker, checked to answer, and the Compose command found beside it.
#[derive(Clone)]
pub struct Docker {
    /// `docker-compose` (the 1.x tool), or `docker compose` (the plugin).
    compose: Vec<&'static str>,
}

/// What a command printed, or why it could not run, in one line.
fn output(program: &str, args: &[&OsStr], quiet: bool) -> Result<Output, UserError> {
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null());
    if !quiet {
        cmd.stderr(Stdio::inherit());
    }
    cmd.output().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound if program.starts_with("docker") => UserError(format!(
            "`{program}` is not installed: agora cluster runs every node in a Docker container \
             (https://docs.docker.com/engine/install/)"
        )),
        std::io::ErrorKind::NotFound => UserError(format!("`{program}` is not installed")),
        _ => UserError(format!("cannot run `{program}`: {e}")),
    })
}

/// The last line a failed command wrote on stderr, for a one-line error.
fn last_line(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr);
    err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message").trim().to_string()
}

/// `PROGRAM ARGS` on this machine, its output captured; an error names the program and its
/// first argument, with its last line of stderr.
pub fn host<S: AsRef<OsStr>>(program: &str, args: &[S]) -> Result<Vec<u8>, UserError> {
    let args: Vec<&OsStr> = args.iter().map(AsRef::as_ref).collect();
    let o = output(program, &args, true)?;
    if !o.status.success() {
        let what = args.first().map(|a| a.to_string_lossy()).unwrap_or_default();
        return Err(UserError(format!("{program} {what}: {}", last_line(&o))));
    }
    Ok(o.stdout)
}

impl Docker {
    /// Checks that the Docker daemon answers and finds Compose.
    pub fn find() -> Result<Docker, UserError> {
        let v = output(
            "docker",
            &[OsStr::new("version"), OsStr::new("--format"), OsStr::new("{{.Server.Version}}")],
            true,
        )?;
        if !v.status.success() {
            return Err(UserError(format!("the Docker daemon does not answer: {}", last_line(&v))));
        }
        let answers = |cmd: &[&'static str]| {
            let mut args: Vec<&OsStr> = cmd[1..].iter().map(OsStr::new).collect();
            args.push(OsStr::new("version"));
            output(cmd[0], &args, true).is_ok_and(|o| o.status.success())
        };
        for compose in [vec!["docker-compose"], vec!["docker", "compose"]] {
            if answers(&compose) {
                return Ok(Docker { compose });
            }
        }
        Err(UserError(
            "neither `docker-compose` nor `docker compose` is installed: agora cluster starts its \
             containers with Docker Compose"
                .into(),
        ))
    }

    /// `docker ARGS`, its output captured; an error is its last line of stderr.
    pub fn docker<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<Vec<u8>, UserError> {
        host("docker", args)
    }

    /// `docker inspect` of every id that `docker LIST` prints (containers, tasks), as JSON
    /// objects; none when it prints none.
    pub fn inspect_listed(&self, list: &[&str]) -> Result<Vec<serde_json::Value>, UserError> {
        let ids: Vec<String> =
            String::from_utf8_lossy(&self.docker(list)?).split_whitespace().map(String::from).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut args = vec!["inspect".to_string()];
        args.extend(ids);
        let json: serde_json::Value = serde_json::from_slice(&self.docker(&args)?)
            .map_err(|e| UserError(format!("docker inspect printed no JSON: {e}")))?;
        Ok(json.as_array().cloned().unwrap_or_default())
    }

    /// The last line a container wrote (on stdout or stderr), for a one-line error.
    pub fn last_log_line(&self, id: &str) -> String {
        let args = ["logs", "--tail", "5", id].map(OsStr::new);
        match output("docker", &args, true) {
            Ok(o) => {
                let text = [String::from_utf8_lossy(&o.stderr), String::from_utf8_lossy(&o.stdout)].concat();
                text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("nothing").trim().to_string()
            }
            Err(e) => e.msg,
        }
    }

    /// What a container wrote on stderr, all of its runs (`docker logs` keeps them).
    pub fn stderr_log(&self, id: &str) -> Result<String, UserError> {
        self.stderr_log_of(id, &[])
    }

    /// What a container wrote on stderr since `unix_s` (seconds, with a fraction).
    pub fn stderr_log_since(&self, id: &str, unix_s: f64) -> Result<String, UserError> {
        self.stderr_log_of(id, &["--since", &format!("{unix_s:.6}")])
    }

    /// What a container wrote on stderr, each line after the daemon's stamp of it and a space;
    /// from the line stamped `since` on (that line included), if given.
    pub fn stderr_log_stamped(&self, id: &str, since: Option<&str>) -> Result<String, UserError> {
        match since {
            Some(stamp) => self.stderr_log_of(id, &["--timestamps", "--since", stamp]),
            None => self.stderr_log_of(id, &["--timestamps"]),
        }
    }

    /// The last `lines` lines a container wrote on stderr.
    pub fn stderr_log_tail(&self, id: &str, lines: usize) -> Result<String, UserError> {
        self.stderr_log_of(id, &["--tail", &lines.to_string()])
    }

    fn stderr_log_of(&self, id: &str, options: &[&str]) -> Result<String, UserError> {
        let args: Vec<&OsStr> =
            std::iter::once("logs").chain(options.iter().copied()).chain([id]).map(OsStr::new).collect();
        let o = output("docker", &args, true)?;
        if !o.status.success() {
            return Err(UserError(format!("docker logs {id}: {}", last_line(&o))));
        }
        Ok(String::from_utf8_lossy(&o.stderr).into_owned())
    }

    /// What a node wrote on stderr, all of its runs: its container's log under Compose; on a
    /// Swarm, where each run is a task, every task's log in order (`docker service logs`
    /// reads a task's log on whichever machine it ran).
    pub fn node_stderr(&self, c: &super::status::Container) -> Result<String, UserError> {
        if c.tasks.is_empty() {
            return self.stderr_log(&c.id);
        }
        let mut all = String::new();
        for t in &c.tasks {
            all.push_str(&String::from_utf8_lossy(&self.task_log(t)?.stderr));
        }
        Ok(all)
    }

    /// What a node wrote on stdout, all of its runs, as [`Docker::node_stderr`].
    pub fn node_stdout(&self, c: &super::status::Container) -> Result<Vec<u8>, UserError> {
        if c.tasks.is_empty() {
            return self.docker(&["logs", &c.id]);
        }
        let mut all = Vec::new();
        for t in &c.tasks {
            all.extend(self.task_log(t)?.stdout);
        }
        Ok(all)
    }

    /// What a Swarm's task wrote on stderr.
    pub fn task_stderr(&self, task: &str) -> Result<String, UserError> {
        Ok(String::from_utf8_lossy(&self.task_log(task)?.stderr).into_owned())
    }

    /// `docker service logs --raw TASK`: the task's stdout and stderr apart.
    fn task_log(&self, task: &str) -> Result<Output, UserError> {
        let o = output("docker", &["service", "logs", "--raw", task].map(OsStr::new), true)?;
        if !o.status.success() {
            return Err(UserError(format!("docker service logs {task}: {}", last_line(&o))));
        }
        Ok(o)
    }

    /// Whether `docker ARGS` succeeds (its output dropped).
    pub fn succeeds(&self, args: &[&str]) -> bool {
        let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        output("docker", &args, true).is_ok_and(|o| o.status.success())
    }

    /// Compose on the project `name` of `file`, its progress on our stderr.
    pub fn compose(&self, name: &str, file: &Path, args: &[&str]) -> Result<(), UserError> {
        let mut all: Vec<&OsStr> = self.compose[1..].iter().map(OsStr::new).collect();
        all.extend([OsStr::new("-p"), OsStr::new(name), OsStr::new("-f"), file.as_os_str()]);
        all.extend(args.iter().map(OsStr::new));
        let o = output(self.compose[0], &all, false)?;
        if !o.status.success() {
            return Err(UserError(format!(
                "`{} {}` failed (exit status {}); see the lines above",
                self.compose.join(" "),
                args.join(" "),
                o.status.code().unwrap_or(-1)
            )));
        }
        Ok(())
    }
}
