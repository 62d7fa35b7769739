//! Faults of a replica's data, applied from this machine to its volume's directory (which
//! needs root and the Docker daemon on this machine), and their undoing.
//!
//! - wipe: the replica SIGKILLed, every file of its volume removed, the container started
//!   again: the replica must refuse to start (its database is missing and it was not told
//!   `--new`), with a line naming the file. Healed the way an operator brings back a replica
//!   that lost its storage (`--rejoin`): its database made again, empty and marked as
//!   rejoining ([`OpenMode::Rejoin`]), so that it catches up from the others before it votes;
//!   then started.
//! - disk: the replica SIGKILLed, its data copied onto a file system of its own, a file on
//!   the host (beside the volume's directory) formatted ext4 with no blocks reserved and
//!   loop-mounted over the volume's directory, a few MiB larger than the data; the container
//!   started, and once it answers, the file system filled to its last block. Healed: the
//!   replica SIGKILLed, the filler removed, its data (what it wrote meanwhile included) copied
//!   back to the volume, the file system unmounted and its file removed, the replica started.
//!
//! A replica must not acknowledge what it could not persist (the clients' history judges
//! that), and must keep running or exit with a line naming the storage error — never
//! corrupt what it had persisted (it would refuse to start again, and the cluster would not
//! answer after healing).

use super::{Faults, Node};
use crate::commands::cluster::files::{DATA, RESP_PORT};
use crate::error::UserError;
use agora_net::store::{node_file, OpenMode, Store};
use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a replica has to stop, to refuse an emptied volume, or to answer on a new file
/// system: a guard on a busy machine, not a measure.
const WITHIN: Duration = Duration::from_secs(30);
/// The room a replica's own file system has over its data before it is filled.
const ROOM_MIB: u64 = 8;
/// The file system's file, beside the volume's directory.
const IMAGE: &str = "agora-nemesis-disk.img";
/// Where the file system is mounted while the data is copied, beside the volume's directory.
const STAGE: &str = "agora-nemesis-stage";
/// The file that fills the file system.
const FILLER: &str = "agora-nemesis-filler";

/// What the nemesis saw a data fault do to the replica, and a breach of the durability
/// standard if it saw one.
#[derive(Debug, Default)]
pub struct Seen {
    pub note: Option<String>,
    pub violation: Option<String>,
}

/// Whether `dir` is a mount point (its device is not its parent's).
fn mounted(dir: &Path) -> bool {
    let dev = |p: &Path| std::fs::metadata(p).map(|m| m.dev()).ok();
    match (dev(dir), dir.parent().and_then(dev)) {
        (Some(a), Some(b)) => a != b,
        _ => false,
    }
}

fn io(what: &Path) -> impl Fn(std::io::Error) -> UserError + '_ {
    move |e| UserError(format!("{}: {e}", what.display()))
}

/// Removes everything in `dir`, keeping `dir`.
fn empty(dir: &Path) -> Result<(), UserError> {
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(&path).map_err(io(&path))?;
        } else {
            std::fs::remove_file(&path).map_err(io(&path))?;
        }
    }
    Ok(())
}

/// The bytes the files under `dir` take on disk.
fn used(dir: &Path) -> Result<u64, UserError> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        let m = std::fs::symlink_metadata(&path).map_err(io(&path))?;
        total += if m.is_dir() { used(&path)? } else { m.blocks() * 512 };
    }
    Ok(total)
}

/// `cp -a FROM/. TO/`: every file with its metadata.
fn copy_all(from: &Path, to: &Path) -> Result<(), UserError> {
    let from = format!("{}/.", from.display());
    let to = format!("{}/", to.display());
    super::host("cp", &["-a", &from, &to]).map(|_| ())
}

/// `mount -o loop IMAGE AT`.
fn loop_mount(image: &Path, at: &Path) -> Result<(), UserError> {
    use std::ffi::OsStr;
    super::host("mount", &[OsStr::new("-o"), OsStr::new("loop"), image.as_os_str(), at.as_os_str()])
        .map(|_| ())
}

/// Writes zeros to `path` until the file system is full; the MiB written.
fn fill(path: &Path) -> Result<u64, UserError> {
    let mut f = std::fs::File::create(path).map_err(io(path))?;
    let block = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => return Err(io(path)(e)),
        }
    }
    // What the page cache holds may still need blocks: the full file system says so here.
    match f.sync_all() {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(28) => {}
        Err(e) => return Err(io(path)(e)),
    }
    Ok(written >> 20)
}

impl Faults<'_> {
    /// The directory of node `n`'s data volume on this machine (asked of Docker once).
    fn volume(&self, n: &Node) -> Result<PathBuf, UserError> {
        if let Some(Some(dir)) = self.volumes.borrow().get(&n.id) {
            return Ok(dir.clone());
        }
        let found = self.ask_volume(n);
        self.volumes.borrow_mut().insert(n.id, found.as_ref().ok().cloned());
        found
    }

    fn ask_volume(&self, n: &Node) -> Result<PathBuf, UserError> {
        let format = format!(
            "{{{{range .Mounts}}}}{{{{if eq .Destination \"{DATA}\"}}}}{{{{.Source}}}}{{{{end}}}}{{{{end}}}}"
        );
        let out = self.docker.docker(&["inspect", "--format", &format, &n.container])?;
        let dir = PathBuf::from(String::from_utf8_lossy(&out).trim());
        if dir.as_os_str().is_empty() {
            return Err(UserError(format!("n{} has no volume at {DATA}", n.id)));
        }
        if !dir.is_dir() {
            return Err(UserError(format!(
                "n{}'s volume {} is not a directory here: wipe and disk need the Docker daemon on this \
                 machine, and root",
                n.id,
                dir.display()
            )));
        }
        Ok(dir)
    }

    /// Checks that every replica's volume is a directory here, and for `disk` that ext4 file
    /// systems can be made: before anything is broken.
    pub fn check_volumes(&self, disk: bool) -> Result<(), UserError> {
        for n in &self.nodes {
            self.volume(n)?;
        }
        if disk {
            super::host("mkfs.ext4", &["-V"]).map_err(|e| {
                UserError(format!("disk faults need mkfs.ext4 and loop devices on this machine: {}", e.msg))
            })?;
        }
        Ok(())
    }

    /// SIGKILLs `n` if it runs, and waits until it has stopped.
    fn kill_and_wait(&self, n: &Node) -> Result<(), UserError> {
        if self.now(n)?.running {
            self.docker.docker(&["kill", "--signal", "KILL", &n.container])?;
        }
        if !self.stopped_within(n)? {
            return Err(UserError(format!("n{} did not stop within {} s", n.id, WITHIN.as_secs())));
        }
        Ok(())
    }

    /// Asks until `n` has stopped, or [`WITHIN`]: whether it has.
    fn stopped_within(&self, n: &Node) -> Result<bool, UserError> {
        let deadline = Instant::now() + WITHIN;
        loop {
            if !self.now(n)?.running {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `wipe`: kills `n`, empties its volume and starts it, which it must refuse.
    pub(super) fn wipe(&self, n: &Node) -> Result<Seen, UserError> {
        let dir = self.volume(n)?;
        self.kill_and_wait(n)?;
        empty(&dir)?;
        self.docker.docker(&["start", &n.container])?;
        if !self.stopped_within(n)? {
            return Ok(Seen {
                note: Some(format!("n{} runs on its emptied volume", n.id)),
                violation: Some(format!(
                    "n{} started on its emptied volume and still ran {} s later: an empty replica",
                    n.id,
                    WITHIN.as_secs()
                )),
            });
        }
        let line = self.docker.last_log_line(&n.container);
        let named = line.contains(&node_file(n.id as u32)) && line.contains("does not exist");
        Ok(Seen {
            violation: (!named).then(|| {
                format!("n{} stopped on its emptied volume without naming its missing database: {line}", n.id)
            }),
            note: Some(format!("n{} refused its emptied volume: {line}", n.id)),
        })
    }

    /// `disk`: kills `n`, moves its data onto a file system of its own, starts it and, once it
    /// answers, fills that file system.
    pub(super) fn disk_full(&self, n: &Node) -> Result<Seen, UserError> {
        let dir = self.volume(n)?;
        let parent = dir.parent().ok_or_else(|| UserError(format!("{} has no parent", dir.display())))?;
        let (image, stage) = (parent.join(IMAGE), parent.join(STAGE));
        self.kill_and_wait(n)?;
        let mib = used(&dir)?.div_ceil(1 << 20) + ROOM_MIB;
        let f = std::fs::File::create(&image).map_err(io(&image))?;
        f.set_len(mib << 20).map_err(io(&image))?;
        drop(f);
        let image_s = image.to_string_lossy().into_owned();
        super::host("mkfs.ext4", &["-q", "-F", "-m", "0", &image_s])?;
        std::fs::create_dir_all(&stage).map_err(io(&stage))?;
        loop_mount(&image, &stage)?;
        let copied = copy_all(&dir, &stage);
        super::host("umount", &[&stage])?;
        copied?;
        loop_mount(&image, &dir)?;
        self.docker.docker(&["start", &n.container])?;
        let answers = || {
            self.now(n).ok().and_then(|now| now.ip).is_some_and(|ip| {
                crate::commands::health::info(std::net::SocketAddr::new(ip, RESP_PORT)).is_ok()
            })
        };
        let deadline = Instant::now() + WITHIN;
        while !answers() && Instant::now() < deadline && self.now(n)?.running {
            std::thread::sleep(Duration::from_millis(100));
        }
        let filler = fill(&dir.join(FILLER))?;
        Ok(Seen {
            note: Some(format!(
                "n{} on a {mib} MiB file system of its own, filled ({filler} MiB of filler)",
                n.id
            )),
            violation: None,
        })
    }

    /// What became of `n` on its full disk, seen before the healing: still running, or stopped
    /// with a line naming the storage error (a breach otherwise).
    pub(super) fn after_disk_full(&self, n: &Node) -> Result<Seen, UserError> {
        if self.now(n)?.running {
            return Ok(Seen {
                note: Some(format!("n{} kept running on its full disk", n.id)),
                violation: None,
            });
        }
        let line = self.docker.last_log_line(&n.container);
        let named = line.contains("storage") || line.contains("No space left");
        Ok(Seen {
            violation: (!named)
                .then(|| format!("n{} stopped on its full disk without saying why: {line}", n.id)),
            note: Some(format!("n{} stopped on its full disk: {line}", n.id)),
        })
    }

    /// Undoes a data fault of `n` (a stopped or running replica), if one is applied: its data
    /// back on its volume from a file system of its own; a database made again, rejoining,
    /// where its volume was emptied. `n` is stopped after this if anything was done.
    pub(super) fn heal_data(&self, n: &Node, running: bool, did: &mut Vec<String>) -> Result<(), UserError> {
        let known = self.volumes.borrow().get(&n.id).cloned();
        let Some(dir) = known.unwrap_or_else(|| self.volume(n).ok()) else { return Ok(()) };
        let parent = dir.parent().map(Path::to_path_buf).unwrap_or_default();
        let (image, stage) = (parent.join(IMAGE), parent.join(STAGE));
        if mounted(&stage) {
            super::host("umount", &[&stage])?;
        }
        if mounted(&dir) {
            self.kill_and_wait(n)?;
            let _ = std::fs::remove_file(dir.join(FILLER));
            std::fs::create_dir_all(&stage).map_err(io(&stage))?;
            // The file system, mounted a second time, at the stage; the volume's own directory
            // underneath, once the first is unmounted.
            loop_mount(&image, &stage)?;
            super::host("umount", &[&dir])?;
            let back = empty(&dir).and_then(|()| copy_all(&stage, &dir));
            super::host("umount", &[&stage])?;
            back?;
            did.push(format!("n{}'s data back on its volume", n.id));
        }
        if image.exists() {
            std::fs::remove_file(&image).map_err(io(&image))?;
        }
        let _ = std::fs::remove_dir(&stage);
        let db = dir.join(node_file(n.id as u32));
        if !running && !db.exists() {
            Store::open(&db, OpenMode::Rejoin).map_err(|e| UserError(e.to_string()))?;
            did.push(format!("n{}'s database made again, rejoining", n.id));
        }
        Ok(())
    }
}
