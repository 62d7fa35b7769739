//! A cluster deployed on a Docker Swarm with `docker stack deploy` (docs/cluster.md), as
//! `status` and `down` see it from a manager: each node is a service of the stack, and each
//! of its runs a task, placed on whichever machine the Swarm chose. What Docker knows of the
//! tasks and their logs, a manager can ask wherever they ran (`docker service ps`, `docker
//! service logs`); what the nodes say of themselves (a replica's role, a server's greeting)
//! is asked through the relay ([`super::relay`]), a container of this machine on the stack's
//! overlay network, since that network is not routed from any host.

use super::docker::Docker;
use super::files::{service, METRICS_PORT, RESP_PORT, VOTE_PORT};
use super::relay::FIRST_PORT;
use super::status::{wait_until, Container, Where};
use crate::error::UserError;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the relay may take to listen once started: a guard, not a measure.
const RELAY_LISTENS_WITHIN: Duration = Duration::from_secs(30);

/// The stack's label on its services, networks, volumes and tasks' containers.
fn namespace(name: &str) -> String {
    format!("label=com.docker.stack.namespace={name}")
}

/// Whether this machine manages a Swarm with a stack `name` deployed (a worker, or a machine
/// in no swarm, sees none).
pub fn deployed(docker: &Docker, name: &str) -> bool {
    docker
        .docker(&["service", "ls", "-q", "--filter", &namespace(name)])
        .is_ok_and(|o| !String::from_utf8_lossy(&o).trim().is_empty())
}

/// An error for `what` (`nemesis`) on a cluster deployed on a Swarm: it stops, pauses and
/// cuts containers through this machine's Docker, which can reach only the tasks placed on
/// this machine.
pub fn refuse(docker: &Docker, name: &str, what: &str) -> Result<(), UserError> {
    if deployed(docker, name) {
        return Err(UserError(format!(
            "cluster {name} is deployed on a Swarm: `agora cluster {what}` drives the containers of \
             one machine (Compose); on a Swarm, `agora cluster status`, `ui` (no controls) and `down` (docs/cluster.md)"
        )));
    }
    Ok(())
}

/// The ports of a node that `status` asks, by the cluster file's protocol.
pub fn ports(protocol: &str) -> Vec<u16> {
    match protocol {
        "kv" => vec![RESP_PORT, METRICS_PORT],
        "vote" => vec![VOTE_PORT, METRICS_PORT],
        _ => vec![METRICS_PORT],
    }
}

/// A task's creation time as a sortable key: Docker prints `2026-12-06T23:05:34.164958785Z`
/// with the fraction's trailing zeros dropped, so the fraction is padded.
fn created_key(at: &str) -> (String, String) {
    let at = at.trim_end_matches('Z');
    let (secs, frac) = at.split_once('.').unwrap_or((at, ""));
    (secs.to_string(), format!("{frac:0<9}"))
}

/// A task's state in the words `status` uses for containers: `running`; `exited` for one
/// that ended (`complete`, `failed`, `shutdown`, `rejected`, ...); Swarm's own word for one
/// on its way (`pending`, `preparing`, `starting`, ...).
fn state_of(task_state: &str) -> String {
    match task_state {
        "complete" | "failed" | "shutdown" | "rejected" | "orphaned" | "remove" => "exited".into(),
        s => s.to_string(),
    }
}

/// The relay's ports as last found, and when: asked again after [`RELAY_KEPT`].
pub type RelayCache = Arc<Mutex<Option<(Instant, BTreeMap<(usize, u16), SocketAddr>)>>>;

/// How long the relay's ports are taken as found without looking again.
const RELAY_KEPT: Duration = Duration::from_secs(5);

/// Every node of stack `name` with a task, by node id: its latest task as its container,
/// every task for its log, and its `ports` reached through the relay (started if needed;
/// its ports kept in `cache` for a few seconds).
pub fn containers(
    docker: &Docker,
    name: &str,
    nodes: usize,
    ports: &[u16],
    cache: &RelayCache,
) -> Result<Vec<Container>, UserError> {
    let kept = cache.lock().expect("relay cache lock").clone().filter(|(at, _)| at.elapsed() < RELAY_KEPT);
    let relayed = match kept {
        Some((_, relayed)) => relayed,
        None => {
            let relayed = relay(docker, name, nodes, ports)?;
            *cache.lock().expect("relay cache lock") = Some((Instant::now(), relayed.clone()));
            relayed
        }
    };
    let hosts: BTreeMap<String, String> =
        String::from_utf8_lossy(&docker.docker(&["node", "ls", "--format", "{{.ID}} {{.Hostname}}"])?)
            .lines()
            .filter_map(|l| l.split_once(' ').map(|(id, h)| (id.to_string(), h.to_string())))
            .collect();
    let by_node = inspected(docker, name, nodes)?;
    let mut out = Vec::new();
    for (node, tasks) in by_node.iter().enumerate() {
        let Some(last) = tasks.last() else { continue };
        let status = &last["Status"];
        out.push(Container {
            node,
            id: last["ID"].as_str().unwrap_or_default().chars().take(12).collect(),
            state: state_of(status["State"].as_str().unwrap_or("unknown")),
            exit_code: status["ContainerStatus"]["ExitCode"].as_i64().unwrap_or(0),
            health: None,
            ip: None,
            tasks: tasks.iter().filter_map(|t| t["ID"].as_str().map(String::from)).collect(),
            host: last["NodeID"].as_str().map(|id| hosts.get(id).cloned().unwrap_or_else(|| id.to_string())),
            relayed: ports.iter().filter_map(|p| Some((*p, *relayed.get(&(node, *p))?))).collect(),
        });
    }
    Ok(out)
}

/// Says on stderr which of `cs` have as many tasks as the Swarm keeps: the logs of their
/// earliest runs may be gone, and their history is judged without them.
pub fn warn_pruned(docker: &Docker, cs: &[Container]) {
    let limit = docker
        .docker(&["info", "--format", "{{.Swarm.Cluster.Spec.Orchestration.TaskHistoryRetentionLimit}}"])
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o).trim().parse::<usize>().ok());
    for c in cs.iter().filter(|c| limit.is_some_and(|l| !c.tasks.is_empty() && c.tasks.len() >= l)) {
        eprintln!(
            "agora: node {} has {} tasks, the Swarm's task history limit: the logs of its earliest \
             runs may be gone, and its history is judged without them",
            c.node,
            c.tasks.len()
        );
    }
}

/// An error unless this machine manages a Swarm.
pub fn manages(docker: &Docker) -> Result<(), UserError> {
    let manages =
        String::from_utf8_lossy(&docker.docker(&["info", "--format", "{{.Swarm.ControlAvailable}}"])?)
            .trim()
            .to_string();
    if manages != "true" {
        return Err(UserError(
            "--swarm: this machine manages no Swarm (`docker swarm init`, or run it on a manager)".into(),
        ));
    }
    Ok(())
}

/// `agora cluster up --swarm`: deploys `files`' Compose file as stack `name` on the Swarm
/// this machine manages, waits until every node has made its database (a replica or a
/// server answers, a market peer says it listens), then deploys the steady file, which
/// makes no database and keeps each node on the machine that holds its volume, and waits
/// until the Swarm has replaced every task with one of it. Where the nodes then run.
pub fn start(
    docker: &Docker,
    files: &super::Files,
    plan: &super::files::Plan,
    protocol: &str,
    deadline: Instant,
) -> Result<Where, UserError> {
    let name = files.name.as_str();
    manages(docker)?;
    let deploy = |file: &std::path::Path| -> Result<(), UserError> {
        docker.docker(&[
            "stack".as_ref(),
            "deploy".as_ref(),
            "-c".as_ref(),
            file.as_os_str(),
            name.as_ref(),
        ])?;
        Ok(())
    };
    deploy(&files.compose)?;
    let place = Where::Swarm { nodes: plan.nodes, ports: ports(protocol), relay: RelayCache::default() };
    let made = wait_until(docker, name, &place, deadline, |cs| {
        let all = cs.len() == plan.nodes && cs.iter().all(|c| c.state == "running");
        let answered = match protocol {
            "kv" => super::status::replicas(cs).iter().all(Option::is_some),
            "vote" => super::status::ask_running(cs, VOTE_PORT, |at| super::super::health::hello(at).ok())
                .iter()
                .all(Option::is_some),
            _ => super::history::read(docker, cs).is_ok_and(|logs| logs.iter().all(|l| !l.runs.is_empty())),
        };
        (all && answered).then(|| cs.to_vec())
    })?;
    if made.is_none() {
        return Err(UserError(format!(
            "stack {name}: not every node made its database within the deadline; see `docker stack ps \
             --no-trunc {name}`, then `agora cluster down --dir ...`"
        )));
    }
    // Each node kept on the machine its task ran on, where its volume is.
    let pinned: BTreeMap<usize, String> = inspected(docker, name, plan.nodes)?
        .iter()
        .enumerate()
        .filter_map(|(n, tasks)| Some((n, tasks.last()?["NodeID"].as_str()?.to_string())))
        .collect();
    let steady = files.compose.with_extension("steady.yml");
    std::fs::write(&steady, plan.swarm_steady_file(&pinned))
        .map_err(|e| UserError(format!("cannot write {}: {e}", steady.display())))?;
    deploy(&steady)?;
    // Every service's command changed: the Swarm replaces its task, one at a time.
    let services: Vec<String> = (0..plan.nodes).map(|n| format!("{name}_{}", service(n))).collect();
    let mut args =
        vec!["service", "inspect", "--format", "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}"];
    args.extend(services.iter().map(String::as_str));
    loop {
        let states = String::from_utf8_lossy(&docker.docker(&args)?).into_owned();
        if let Some(bad) = states.lines().find(|s| s.starts_with("rollback") || *s == "paused") {
            return Err(UserError(format!(
                "stack {name}: the Swarm's update to {} ended {bad}; see `docker stack ps {name}`",
                steady.display()
            )));
        }
        if states.lines().filter(|s| *s == "completed").count() == services.len() {
            return Ok(place);
        }
        if Instant::now() >= deadline {
            return Err(UserError(format!(
                "stack {name}: the Swarm had not moved every node to {} by the deadline; see `docker stack ps {name}`",
                steady.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The tasks of `services` as `docker inspect` gives them, oldest first.
fn listed_tasks(docker: &Docker, services: &[String]) -> Result<Vec<serde_json::Value>, UserError> {
    let mut list = vec!["service", "ps", "-q", "--no-trunc"];
    list.extend(services.iter().map(String::as_str));
    let mut tasks = docker.inspect_listed(&list)?;
    tasks.sort_by_key(|t| created_key(t["CreatedAt"].as_str().unwrap_or_default()));
    Ok(tasks)
}

/// The tasks of each of the `nodes` services of stack `name`, oldest first, by node (each
/// task's container carries its node's `agora.node` label).
fn inspected(docker: &Docker, name: &str, nodes: usize) -> Result<Vec<Vec<serde_json::Value>>, UserError> {
    let services: Vec<String> = (0..nodes).map(|n| format!("{name}_{}", service(n))).collect();
    let mut by_node = vec![Vec::new(); nodes];
    for t in listed_tasks(docker, &services)? {
        let node =
            t["Spec"]["ContainerSpec"]["Labels"]["agora.node"].as_str().and_then(|n| n.parse::<usize>().ok());
        if let Some(tasks) = node.and_then(|n| by_node.get_mut(n)) {
            tasks.push(t);
        }
    }
    Ok(by_node)
}

/// The tasks of node `node` of stack `name`, oldest first: each one's id and whether it
/// has ended.
pub fn tasks(docker: &Docker, name: &str, node: usize) -> Result<Vec<(String, bool)>, UserError> {
    Ok(listed_tasks(docker, &[format!("{name}_{}", service(node))])?
        .iter()
        .filter_map(|t| {
            Some((t["ID"].as_str()?.to_string(), state_of(t["Status"]["State"].as_str()?) == "exited"))
        })
        .collect())
}

/// The relay's container for stack `name`.
pub fn relay_name(name: &str) -> String {
    format!("{name}-relay")
}

/// Starts the relay of stack `name` unless one for the same targets runs, waits until it
/// listens, and gives where this machine reaches each node's port through it.
fn relay(
    docker: &Docker,
    name: &str,
    nodes: usize,
    ports: &[u16],
) -> Result<BTreeMap<(usize, u16), SocketAddr>, UserError> {
    let targets: Vec<(usize, u16)> = (0..nodes).flat_map(|n| ports.iter().map(move |&p| (n, p))).collect();
    let to: Vec<String> = targets.iter().map(|(n, p)| format!("{}:{p}", service(*n))).collect();
    let want = to.join(",");
    let container = relay_name(name);
    let now = docker
        .docker(&[
            "inspect",
            "--format",
            "{{.State.Running}} {{index .Config.Labels \"agora.relay.to\"}}",
            &container,
        ])
        .map(|o| String::from_utf8_lossy(&o).trim().to_string());
    if now.as_deref().ok() != Some(format!("true {want}").as_str()) {
        if now.is_ok() {
            docker.docker(&["rm", "-f", &container])?;
        }
        let image = String::from_utf8_lossy(&docker.docker(&[
            "service",
            "inspect",
            "--format",
            "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
            &format!("{name}_{}", service(0)),
        ])?)
        .trim()
        .to_string();
        let mut args: Vec<String> = [
            "run",
            "--detach",
            "--name",
            &container,
            "--label",
            &format!("agora.relay={name}"),
            "--label",
            &format!("agora.relay.to={want}"),
            "--network",
            &format!("{name}_agora"),
        ]
        .map(String::from)
        .into();
        for k in 0..targets.len() {
            args.extend(["--publish".into(), format!("127.0.0.1::{}", FIRST_PORT as usize + k)]);
        }
        args.extend([image, "cluster".into(), "relay".into()]);
        for t in &to {
            args.extend(["--to".into(), t.clone()]);
        }
        docker.docker(&args).map_err(|e| {
            UserError(format!(
                "cannot start the relay to the nodes of stack {name} on this machine: {}",
                e.msg
            ))
        })?;
    }
    // It says each port it listens on; wait for all of them.
    let deadline = Instant::now() + RELAY_LISTENS_WITHIN;
    loop {
        let said = docker.stderr_log(&container).unwrap_or_default();
        if said.lines().filter(|l| l.starts_with("relay  port ")).count() >= targets.len() {
            break;
        }
        let running = docker.docker(&["inspect", "--format", "{{.State.Running}}", &container]);
        if running.is_ok_and(|r| String::from_utf8_lossy(&r).trim() != "true") {
            return Err(UserError(format!(
                "the relay {container} stopped: {}",
                docker.last_log_line(&container)
            )));
        }
        if Instant::now() >= deadline {
            return Err(UserError(format!(
                "the relay {container} did not listen within {} s: {}",
                RELAY_LISTENS_WITHIN.as_secs(),
                docker.last_log_line(&container)
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Where each of its ports is published on this machine, from one `docker inspect`.
    let ports: serde_json::Value = serde_json::from_slice(&docker.docker(&[
        "inspect",
        "--format",
        "{{json .NetworkSettings.Ports}}",
        &container,
    ])?)
    .map_err(|e| UserError(format!("docker inspect {container}: no ports: {e}")))?;
    let mut at = BTreeMap::new();
    for (k, target) in targets.iter().enumerate() {
        let port = format!("{}/tcp", FIRST_PORT as usize + k);
        let published = &ports[&port][0];
        let addr = published["HostIp"]
            .as_str()
            .zip(published["HostPort"].as_str())
            .and_then(|(ip, p)| format!("{ip}:{p}").parse::<SocketAddr>().ok())
            .ok_or_else(|| UserError(format!("the relay {container} publishes no address for {port}")))?;
        at.insert(*target, addr);
    }
    Ok(at)
}

/// Removes the relay of stack `name` from this machine, if it has one.
pub fn remove_relay(docker: &Docker, name: &str) -> Result<(), UserError> {
    let relay = relay_name(name);
    if docker.succeeds(&["inspect", "--type", "container", &relay]) {
        docker.docker(&["rm", "-f", &relay])?;
    }
    Ok(())
}

/// `agora cluster down` on a Swarm, once the relay is gone ([`remove_relay`]): the stack (its services, tasks and
/// network), then the stack's volumes on this machine. A volume lives on the machine whose
/// task made it: those of other machines are named, to remove there.
pub fn down(docker: &Docker, name: &str) -> Result<Vec<(String, Vec<String>)>, UserError> {
    // Which machines ran a task of the stack, before the tasks go.
    let mut elsewhere: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let tasks = docker.docker(&["stack", "ps", "--no-trunc", "--format", "{{.Node}} {{.Name}}", name])?;
    let here =
        String::from_utf8_lossy(&docker.docker(&["info", "--format", "{{.Name}}"])?).trim().to_string();
    for line in String::from_utf8_lossy(&tasks).lines() {
        if let Some((host, task)) = line.split_once(' ') {
            if host != here && !host.is_empty() {
                let volume = task.split('.').next().unwrap_or(task).to_string() + "-data";
                let vs = elsewhere.entry(host.to_string()).or_default();
                if !vs.contains(&volume) {
                    vs.push(volume);
                }
            }
        }
    }
    docker.docker(&["stack", "rm", name])?;
    // The stack's containers and network go after `stack rm` returns; its volumes can be
    // removed once no container uses them.
    let ns = namespace(name);
    let listed = |args: &[&str]| -> Result<Vec<String>, UserError> {
        Ok(String::from_utf8_lossy(&docker.docker(args)?).split_whitespace().map(String::from).collect())
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while !(listed(&["ps", "-aq", "--filter", &ns])?.is_empty()
        && listed(&["network", "ls", "-q", "--filter", &ns])?.is_empty())
    {
        if Instant::now() >= deadline {
            return Err(UserError(format!(
                "stack {name}: its containers or network were still there 120 s after `docker stack rm`"
            )));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    for v in listed(&["volume", "ls", "-q", "--filter", &ns])? {
        docker.docker(&["volume", "rm", &v])?;
    }
    Ok(elsewhere.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_sort_by_their_creation_whatever_the_fraction_s_length() {
        let mut at = ["2026-12-06T23:05:34.9Z", "2026-12-06T23:05:34.164958785Z", "2026-12-06T23:05:35Z"];
        at.sort_by_key(|a| created_key(a));
        assert_eq!(at, ["2026-12-06T23:05:34.164958785Z", "2026-12-06T23:05:34.9Z", "2026-12-06T23:05:35Z"]);
    }

    #[test]
    fn a_task_that_ended_is_exited_and_one_on_its_way_keeps_swarm_s_word() {
        assert_eq!(state_of("running"), "running");
        for s in ["complete", "failed", "shutdown", "rejected"] {
            assert_eq!(state_of(s), "exited");
        }
        assert_eq!(state_of("preparing"), "preparing");
    }
}
