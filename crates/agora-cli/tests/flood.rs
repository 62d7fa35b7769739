//! A flood of silent connections against every replica of a Raft cluster whose processes may
//! hold no more than the usual 1,024 descriptors: the replicas keep their storage and their
//! peers, and the client finishes every operation.

mod procs;

use procs::{obs, Cluster};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const HEAD: &str = "cluster = \"flood\"\nprotocol = \"raft\"\ndata_dir = \"data\"\nidle_ms = 600000\n\
                    max_time_ms = 3600000\n[params]\nclients = 1\nmsgs = 300\nwindow = 8\nsnapshot_every = 40\n";
const REPLICAS: usize = 3;
const PER_REPLICA: usize = 2_000;

/// Lets this test hold the flood's sockets: its soft open-file limit up to its hard limit.
fn raise_own_limit() -> u64 {
    let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit on our own process with a valid struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut l);
        l.rlim_cur = l.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &l);
    }
    l.rlim_cur
}

#[test]
fn a_connection_flood_at_the_usual_descriptor_limit_does_not_stop_the_cluster() {
    let own = raise_own_limit();
    assert!(
        own as usize > REPLICAS * PER_REPLICA + 256,
        "this test needs {} descriptors",
        REPLICAS * PER_REPLICA
    );
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cluster::new(dir.path(), HEAD, REPLICAS + 1);
    c.fd_limit = Some(1_024);
    for id in 0..REPLICAS {
        c.start_node(id);
    }
    let mut addrs: Vec<SocketAddr> = Vec::new();
    c.until(|_, e| {
        if let Some(a) = e.get("listening") {
            addrs.push(a.as_str().unwrap().parse().unwrap());
        }
        addrs.len() == REPLICAS
    });
    // Silent connections, more than each replica may hold descriptors: kept open by this test.
    let mut flood = Vec::new();
    for a in &addrs {
        for _ in 0..PER_REPLICA {
            if let Ok(s) = TcpStream::connect_timeout(a, Duration::from_secs(5)) {
                flood.push(s);
            }
        }
    }
    assert!(flood.len() > REPLICAS * 1_024, "only {} connections were made", flood.len());
    // The client starts in the middle of the flood and gets every answer.
    c.start_node(REPLICAS);
    c.until(|_, e| obs(e).is_some_and(|o| o.get("ClientDone").is_some()));
    drop(flood);
    // Every node was still running when stopped (a storage failure, such as no descriptor
    // left to open a file with, ends a node on its own: `stop_all` checks each ended as
    // `interrupted`), and each replica committed to its database.
    let outputs = c.stop_all();
    for (id, out) in outputs.iter().take(REPLICAS).enumerate() {
        assert!(out["commits"].as_u64().unwrap() > 0, "replica {id}: {out}");
    }
}
