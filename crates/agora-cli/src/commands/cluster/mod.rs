//! `agora cluster up|status|down|nemesis` (docs/cluster.md): a cluster of containers, one
//! node per container, on a private network, each with its own address and volume; started
//! with Docker Compose from files written here, which also deploy on a Swarm; broken on
//! purpose and judged by `nemesis`.

mod docker;
mod files;
mod history;
mod image;
mod market;
mod multicast;
mod nemesis;
mod relay;
mod status;
mod swarm;
mod view;

use crate::cli::{ClusterAction, ClusterArgs, ClusterDirArgs, ClusterUpArgs, System};
use crate::cluster_file::ClusterFile;
use crate::error::UserError;
use docker::Docker;
use files::Plan;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long `up` waits for a key-value cluster to answer: a guard, not a measure.
const ANSWER_WITHIN: Duration = Duration::from_secs(300);

/// `agora cluster`.
pub fn run(args: &ClusterArgs) -> Result<i32, UserError> {
    match &args.action {
        ClusterAction::Up(a) => up(a),
        ClusterAction::Status(a) => status::run(&Docker::find()?, &Files::of(a)?, a.json),
        ClusterAction::Down(a) => down(a),
        ClusterAction::Nemesis(a) => nemesis::run(a),
        ClusterAction::Ui(a) => view::run(&a.dir, &a.ui),
        ClusterAction::Relay(a) => relay::run(&a.to),
    }
}

/// The files of a cluster's folder.
pub struct Files {
    /// The cluster's name (the folder's).
    pub name: String,
    /// `cluster.toml`.
    pub cluster: PathBuf,
    /// `docker-compose.yml`.
    pub compose: PathBuf,
}

impl Files {
    fn of(a: &ClusterDirArgs) -> Result<Files, UserError> {
        let name = cluster_name(&a.dir)?;
        Ok(Files { name, cluster: a.dir.join("cluster.toml"), compose: a.dir.join("docker-compose.yml") })
    }

    /// The cluster file `up` wrote, or a line saying there is none.
    fn load(&self) -> Result<ClusterFile, UserError> {
        if !self.cluster.exists() {
            return Err(UserError(format!(
                "{} does not exist: no cluster was started there (`agora cluster up --dir ...`)",
                self.cluster.display()
            )));
        }
        ClusterFile::load(&self.cluster)
    }
}

/// The cluster's name, from its folder's: what Compose keeps of a project name (lower-case
/// letters, digits, `-` and `_`, a letter or digit first), so that its labels are ours.
pub fn cluster_name(dir: &Path) -> Result<String, UserError> {
    let name = std::path::absolute(dir)
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let ok = name.len() <= 48
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        return Err(UserError(format!(
            "--dir {}: the folder's name names the cluster: 1 to 48 lower-case letters, digits, `-` \
             and `_`, starting with a letter or digit",
            dir.display()
        )));
    }
    Ok(name)
}

/// `agora cluster up`.
fn up(a: &ClusterUpArgs) -> Result<i32, UserError> {
    let t0 = Instant::now();
    let files = Files::of(&a.dir)?;
    let binary = match &a.binary {
        Some(b) => b.clone(),
        None => {
            std::env::current_exe().map_err(|e| UserError(format!("cannot find the agora binary: {e}")))?
        }
    };
    if a.session_timeout_ms.is_some() && a.system != System::Vote {
        return Err(UserError("--session-timeout-ms: only with --system vote".into()));
    }
    if a.swarm && matches!(a.system, System::Election | System::Multicast) {
        return Err(UserError(
            "--swarm: the election and the multicast end by themselves, and `up --swarm` would \
             restart every node mid-run to deploy its steady file; deploy DIR/docker-compose.yml \
             of `up --no-start` with `docker stack deploy` (docs/cluster.md)"
                .into(),
        ));
    }
    if a.voters.is_some() && a.system != System::Election {
        return Err(UserError("--voters: only with --system election".into()));
    }
    if (a.order.is_some() || a.msgs.is_some()) && a.system != System::Multicast {
        return Err(UserError("--order and --msgs: only with --system multicast".into()));
    }
    if let Some(o) = a.order.as_deref().filter(|o| agora_protocols::multicast::Order::parse(o).is_none()) {
        return Err(UserError(format!(
            "--order `{o}`: expected unordered, fifo, causal, total-lamport or total-sequencer"
        )));
    }
    let docker = Docker::find()?;
    if swarm::deployed(&docker, &files.name) {
        return Err(UserError(format!(
            "cluster {} is deployed on this Swarm as stack {0}: `agora cluster status --dir {d}` or \
             `agora cluster down --dir {d}`",
            files.name,
            d = a.dir.dir.display()
        )));
    }
    if !status::containers(&docker, &files.name)?.is_empty() {
        return Err(UserError(format!(
            "cluster {} has containers already: `agora cluster status --dir {d}` or `agora cluster down --dir {d}`",
            files.name,
            d = a.dir.dir.display()
        )));
    }
    if a.swarm {
        swarm::manages(&docker)?;
    }
    let (tag, is_static) = image::ensure(&docker, &binary)?;
    let mut plan = Plan::new(&files.name, a.system, a.nodes, &tag);
    if let Some(ms) = a.session_timeout_ms {
        plan.session_timeout_ms = ms;
    }
    if let Some(v) = a.voters {
        plan.voters = v;
    }
    if let Some(o) = &a.order {
        plan.order = o.clone();
    }
    if let Some(m) = a.msgs {
        plan.msgs = m;
    }
    std::fs::create_dir_all(&a.dir.dir)
        .map_err(|e| UserError(format!("--dir {}: {e}", a.dir.dir.display())))?;
    let secret = agora_net::Secret::random().to_hex();
    let write = |path: &Path, text: &str| {
        std::fs::write(path, text).map_err(|e| UserError(format!("cannot write {}: {e}", path.display())))
    };
    write(&files.cluster, &plan.cluster_file(&secret))?;
    write(&files.compose, &plan.compose_file(true))?;
    if a.system == System::Market {
        write(&a.dir.dir.join(files::MARKET_FILE), &plan.market_file())?;
    }
    let steady = files.compose.with_extension("steady.yml");
    write(&a.dir.dir.join("Dockerfile"), image::DOCKERFILE)?;
    let linked = if is_static { "static binary" } else { "dynamically linked binary and its libraries" };
    println!("cluster  {} ({} nodes, {:?}) from image {tag} ({linked})", files.name, plan.nodes, a.system);
    println!("files    {}, {}", files.cluster.display(), files.compose.display());
    if a.no_start {
        write(&steady, &plan.compose_file(false))?;
        println!("next     docker stack deploy -c {} {}", files.compose.display(), files.name);
        if matches!(a.system, System::Election | System::Multicast) {
            // A steady file deployed over it would restart every node mid-run.
            println!("then     nothing: it ends by itself");
        } else {
            println!(
                "then     docker stack deploy -c {} {}   (once every node has its database)",
                steady.display(),
                files.name
            );
        }
        return Ok(0);
    }
    let place = if a.swarm {
        let protocol = ClusterFile::load(&files.cluster)?.protocol;
        swarm::start(&docker, &files, &plan, &protocol, t0 + ANSWER_WITHIN)?
    } else {
        compose_start(&docker, &files, &plan, a.system, t0)?;
        status::Where::Compose
    };
    let waited = match a.system {
        System::Raft => {
            status::wait_for_leader(&docker, &files.name, &place, plan.nodes, t0 + ANSWER_WITHIN)?
        }
        System::Vote => {
            status::wait_for_vote_leader(&docker, &files.name, &place, plan.nodes, t0 + ANSWER_WITHIN)?
        }
        System::Election => None,
        System::Multicast => {
            let logs = multicast::wait_for_start(&docker, &files.name, plan.nodes, t0 + ANSWER_WITHIN)?;
            if logs.is_none() {
                eprintln!(
                    "agora: not every peer listening within {} s; see `agora cluster status`",
                    ANSWER_WITHIN.as_secs()
                );
                return Ok(1);
            }
            println!(
                "started  {:.1} s after `up` began: {} peers in regions, multicasting ({}); it ends by itself",
                t0.elapsed().as_secs_f64(),
                plan.nodes,
                plan.order
            );
            None
        }
        System::Market => {
            let Some(t) = market::wait_for_trading(&docker, &files.name, &place, t0 + ANSWER_WITHIN)? else {
                eprintln!(
                    "agora: no buy answered within {} s; see `agora cluster status`",
                    ANSWER_WITHIN.as_secs()
                );
                return Ok(1);
            };
            let (trader, term) = t.trader.expect("trading has a trader");
            println!(
                "answering {:.1} s after `up` began: node {trader} trades (term {term}), {} buy(s) answered",
                t0.elapsed().as_secs_f64(),
                t.answered
            );
            None
        }
    };
    if !matches!(a.system, System::Election | System::Market | System::Multicast) {
        let Some((leader, addr)) = waited else {
            eprintln!("agora: no leader within {} s; see `agora cluster status`", ANSWER_WITHIN.as_secs());
            return Ok(1);
        };
        let (ip, port) = (addr.ip(), addr.port());
        let mut connect = match a.system {
            System::Vote => format!("nc {ip} {port}"),
            _ => format!("redis-cli -h {ip} -p {port}"),
        };
        if a.swarm {
            connect.push_str(" (through the relay on this machine)");
        }
        println!(
            "answering {:.1} s after `up` began: node {leader} leads; {connect}",
            t0.elapsed().as_secs_f64()
        );
        if a.system == System::Vote {
            println!("admin    agora vote admin-token --config {}", files.cluster.display());
        }
    }
    let d = a.dir.dir.display();
    println!("next     agora cluster status --dir {d}    agora cluster down --dir {d}");
    match &a.ui {
        Some(addr) => view::run(&a.dir, addr),
        None => Ok(0),
    }
}

/// Starts the containers with Compose on this machine, each node making its database, then
/// makes them again so that none would make one again.
fn compose_start(
    docker: &Docker,
    files: &Files,
    plan: &Plan,
    system: System,
    t0: Instant,
) -> Result<(), UserError> {
    docker.compose(&files.name, &files.compose, &["up", "-d"])?;
    // From now on a node recreated from the file must find its database, not make an empty one.
    std::fs::write(&files.compose, plan.compose_file(false))
        .map_err(|e| UserError(format!("cannot write {}: {e}", files.compose.display())))?;
    if matches!(system, System::Raft | System::Vote) {
        // A container keeps the command it was created with: one created with `--new` would
        // make an empty database again, and vote, if its volume were emptied. Once every node
        // has its database, the containers are made again from the file without `--new`, all
        // stopped first so that none resolves a peer's name before that peer's new container
        // has its address.
        wait_for_databases(docker, &files.name, plan.nodes, t0 + ANSWER_WITHIN)?;
        docker.compose(&files.name, &files.compose, &["stop", "--timeout", "10"])?;
        docker.compose(&files.name, &files.compose, &["up", "-d"])?;
    }
    Ok(())
}

/// Waits until the database of every one of the `nodes` nodes of cluster `name` exists in its
/// container's volume (`docker cp` of it succeeds), or `deadline`, which is an error; so is a
/// node that stopped.
fn wait_for_databases(docker: &Docker, name: &str, nodes: usize, deadline: Instant) -> Result<(), UserError> {
    let made = status::wait_until(docker, name, &status::Where::Compose, deadline, |cs| {
        let all = (0..nodes).all(|id| {
            cs.iter().find(|c| c.node == id).is_some_and(|c| {
                let db = format!("{}:{}/{}", c.id, files::DATA, agora_net::store::node_file(id as u32));
                docker.succeeds(&["cp", &db, "-"])
            })
        });
        all.then_some(())
    })?;
    made.ok_or_else(|| {
        UserError(format!(
            "cluster {name}: not every node made its database within {} s; see `agora cluster status`",
            ANSWER_WITHIN.as_secs()
        ))
    })
}

/// `agora cluster down`: Compose removes the containers, the network and the volumes.
fn down(a: &ClusterDirArgs) -> Result<i32, UserError> {
    let files = Files::of(a)?;
    files.load()?;
    let docker = Docker::find()?;
    // A relay `status` started on this machine holds the stack's network: it goes first,
    // even when the stack was removed by hand.
    swarm::remove_relay(&docker, &files.name)?;
    if swarm::deployed(&docker, &files.name) {
        let elsewhere = swarm::down(&docker, &files.name)?;
        println!(
            "cluster {} is down: its stack, its relay and this machine's volumes of it are removed",
            files.name
        );
        for (host, volumes) in elsewhere {
            println!("volumes  on {host} (remove them there): docker volume rm {}", volumes.join(" "));
        }
        return Ok(0);
    }
    docker.compose(
        &files.name,
        &files.compose,
        &["down", "--volumes", "--remove-orphans", "--timeout", "5"],
    )?;
    println!("cluster {} is down: its containers, network and volumes are removed", files.name);
    Ok(0)
}
