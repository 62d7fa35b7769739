//! Durable storage of what a node persists: one redb database per node.
//!
//! On start the whole table is loaded into a [`Stable`] for the protocol's `Setup::build`.
//! Each step's persist effects are written in one transaction, committed (fsync) before any of
//! that step's messages are handed to the network.

use agora_core::{Stable, REJOINING};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("stable");
/// The deferred writes that are durable, and the hash of each: a snapshot file that the
/// database says exists must be there, whole.
const BLOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("blobs");

/// What a deferred-write file starts with, before the hash of the value and the value.
const BLOB_MAGIC: &[u8; 4] = b"AGB1";
const BLOB_HEADER: usize = 4 + 32;

/// Input files (and databases) this big are refused before being read whole.
const MAX_BLOB_BYTES: u64 = 1 << 34;

/// How a node may open its database.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OpenMode {
    /// It must exist and hold what the node persisted: a node that has been part of a cluster
    /// never comes back empty without being told to.
    #[default]
    Existing,
    /// It is created if missing: the first start of a new cluster (`agora node --new`).
    New,
    /// The node lost its storage (`agora node --rejoin`): the database is created empty and
    /// marked as rejoining ([`agora_core::REJOINING`]), and the protocol catches up from its
    /// peers before it votes. A database that still holds data is refused; a corrupt one is
    /// kept beside, renamed `*.corrupt`.
    Rejoin,
}

/// Why a node's storage cannot be used. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The system failed a file operation (permissions, a full disk, no descriptors left).
    #[error("storage {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// redb failed for a reason other than corruption (the database already open elsewhere,
    /// the system's IO).
    #[error("storage {path}: {source}")]
    Db {
        /// The database file.
        path: PathBuf,
        /// redb's error.
        source: redb::Error,
    },
    /// The database or a deferred-write file does not hold what was written: never read as
    /// empty.
    #[error("storage {path} is corrupt: {reason}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The database is missing and the node was not told to create one ([`OpenMode::Existing`]).
    #[error(
        "storage {path} does not exist: start a new cluster's node with --new, or a node that lost its \
         data with --rejoin (it catches up from the others before it votes)"
    )]
    Missing {
        /// The database file expected.
        path: PathBuf,
    },
    /// [`OpenMode::Rejoin`] was asked of a database that still holds data.
    #[error("storage {path} holds data: --rejoin is only for a node that lost its storage")]
    NotLost {
        /// The database file.
        path: PathBuf,
    },
    /// [`OpenMode::Rejoin`] was asked for a node whose protocol cannot catch up safely
    /// ([`agora_core::Setup::rejoins`] says no).
    #[error("node {id}: its protocol cannot rejoin safely after losing its storage")]
    CannotRejoin {
        /// The node's id.
        id: u32,
    },
}

impl StoreError {
    fn io(path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
        move |source| StoreError::Io { path: path.to_path_buf(), source }
    }

    /// A database error: corruption when redb says so or the file's contents are not what
    /// they should be; otherwise the system's (permissions, no descriptors left, a full disk).
    fn db(path: &Path, e: impl Into<redb::Error>) -> StoreError {
        use std::io::ErrorKind::{InvalidData, UnexpectedEof};
        match e.into() {
            redb::Error::Corrupted(why) => StoreError::corrupt(path, why),
            redb::Error::Io(io) if matches!(io.kind(), InvalidData | UnexpectedEof) => {
                StoreError::corrupt(path, io)
            }
            source => StoreError::Db { path: path.to_path_buf(), source },
        }
    }

    fn corrupt(path: &Path, reason: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt { path: path.to_path_buf(), reason: reason.to_string() }
    }

    /// A refusal to use storage as it is (missing, corrupt, or not lost): the operator must
    /// look at it. Other errors are the system's (IO).
    pub fn needs_operator(&self) -> bool {
        !matches!(self, StoreError::Io { .. } | StoreError::Db { .. })
    }
}

/// One durable write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// Store the value under the key, replacing what was there.
    Put(String, Vec<u8>),
    /// Remove the key, if present.
    Remove(String),
    /// Every key from the first (included) to the second (excluded).
    RemoveRange(String, String),
    /// A deferred write is durable in its file, whose value has this hash.
    Landed(String, [u8; 32]),
}

impl Write {
    /// Bytes of key and value.
    pub fn bytes(&self) -> usize {
        match self {
            Write::Put(k, v) => k.len() + v.len(),
            Write::Remove(k) => k.len(),
            Write::RemoveRange(a, b) => a.len() + b.len(),
            Write::Landed(k, h) => k.len() + h.len(),
        }
    }
}

/// One node's durable storage: its redb database and, beside it, the files of its deferred
/// writes. Writes of a batch of steps are committed in one fsynced transaction.
pub struct Store {
    db: Database,
    path: PathBuf,
    /// Where deferred writes go (`Effect::PersistLater`): one file per key, so that a large
    /// snapshot is written beside the database, not inside one of its transactions (redb has
    /// one writer at a time, and the node's own commits would wait for it). Each file holds a
    /// hash of its value, checked when it is read; the database lists the files that landed.
    blob_dir: PathBuf,
    /// The keys that have a file in `blob_dir`.
    blobs: Mutex<BTreeSet<String>>,
}

/// Deferred writes the database records as landed, with the hash of each value.
type Landed = std::collections::BTreeMap<String, [u8; 32]>;

/// The database file of node `id` in its data directory.
pub fn node_file(id: u32) -> String {
    format!("node-{id}.redb")
}

fn hex_key(key: &str) -> String {
    key.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex_key(name: &str) -> Option<String> {
    if name.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> =
        (0..name.len()).step_by(2).map(|i| u8::from_str_radix(name.get(i..i + 2)?, 16).ok()).collect();
    String::from_utf8(bytes?).ok()
}

thread_local! {
    /// Set while this thread opens a database: a panic inside redb on a damaged file is
    /// caught and reported as corruption, and must not print a backtrace.
    static QUIET_PANICS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, turning a panic (redb's, on a damaged file) into `None`, silently.
fn catch_quietly<T>(f: impl FnOnce() -> T) -> Option<T> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET_PANICS.with(|q| q.get()) {
                previous(info);
            }
        }));
    });
    QUIET_PANICS.with(|q| q.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok();
    QUIET_PANICS.with(|q| q.set(false));
    result
}

/// A deferred-write file's contents: header, hash, value.
fn seal(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(BLOB_HEADER + value.len());
    out.extend_from_slice(BLOB_MAGIC);
    out.extend_from_slice(blake3::hash(value).as_bytes());
    out.extend_from_slice(value);
    out
}

/// The value of a deferred-write file, and its hash, if it is whole.
fn unseal(bytes: &[u8]) -> Result<([u8; 32], &[u8]), &'static str> {
    if bytes.len() < BLOB_HEADER || &bytes[..4] != BLOB_MAGIC {
        return Err("not a deferred-write file (bad header)");
    }
    let value = &bytes[BLOB_HEADER..];
    let hash = *blake3::hash(value).as_bytes();
    if bytes[4..BLOB_HEADER] != hash {
        return Err("its checksum does not match its contents");
    }
    Ok((hash, value))
}

impl Store {
    /// Opens the database at `path` as `mode` allows and loads what it holds. A damaged
    /// database or deferred-write file is [`StoreError::Corrupt`], never a panic and never
    /// silently replaced by an empty one.
    pub fn open(path: &Path, mode: OpenMode) -> Result<(Store, Stable), StoreError> {
        let exists = match std::fs::metadata(path) {
            Ok(m) if !m.is_file() => return Err(StoreError::corrupt(path, "not a regular file")),
            Ok(m) if m.len() == 0 => Some(false),
            Ok(_) => Some(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(StoreError::io(path)(e)),
        };
        let blob_dir = path.with_extension("later");
        match (mode, exists) {
            (_, Some(false)) if mode != OpenMode::Rejoin => {
                return Err(StoreError::corrupt(path, "it is empty (0 bytes); a node's database never is"))
            }
            (OpenMode::Existing, None) => return Err(StoreError::Missing { path: path.to_path_buf() }),
            (OpenMode::Rejoin, Some(_)) => {
                // Keep a damaged database for inspection; refuse one that opens and holds data.
                if exists == Some(true) && Self::load(path, &blob_dir).is_ok_and(|(_, st)| !st.is_empty()) {
                    return Err(StoreError::NotLost { path: path.to_path_buf() });
                }
                Self::set_aside(path)?;
                Self::set_aside(&blob_dir)?;
            }
            _ => {}
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(StoreError::io(dir))?;
        }
        let fresh = !path.exists();
        let (store, mut stable) = Self::load(path, &blob_dir)?;
        if fresh && mode == OpenMode::Rejoin {
            store.apply(&[Write::Put(REJOINING.to_string(), Vec::new())])?;
            stable.put(REJOINING.to_string(), Vec::new());
        }
        Ok((store, stable))
    }

    /// How a whole cluster run from one place (`agora run`, `agora election`, `agora up`)
    /// opens the databases of nodes `0..n` in `dir`: all missing is a new cluster; all there
    /// is a restart; some missing is a node that lost its storage, which is named and refused
    /// (it must be started on its own with `--rejoin`).
    pub fn cluster_mode(dir: &Path, n: usize) -> Result<OpenMode, StoreError> {
        let paths: Vec<PathBuf> = (0..n).map(|i| dir.join(node_file(i as u32))).collect();
        let missing: Vec<&PathBuf> = paths.iter().filter(|p| !p.exists()).collect();
        match missing.first() {
            None => Ok(OpenMode::Existing),
            Some(_) if missing.len() == n => Ok(OpenMode::New),
            Some(p) => Err(StoreError::Missing { path: p.to_path_buf() }),
        }
    }

    /// Renames `path` to `path.corrupt` (replacing an older one), if it exists.
    fn set_aside(path: &Path) -> Result<(), StoreError> {
        if !path.exists() {
            return Ok(());
        }
        let mut aside = path.as_os_str().to_owned();
        aside.push(".corrupt");
        let aside = PathBuf::from(aside);
        if aside.is_dir() {
            std::fs::remove_dir_all(&aside).map_err(StoreError::io(&aside))?;
        }
        std::fs::rename(path, &aside).map_err(StoreError::io(path))
    }

    /// Opens (creating if missing) the database and the deferred-write files and loads them.
    fn load(path: &Path, blob_dir: &Path) -> Result<(Store, Stable), StoreError> {
        let opened = catch_quietly(|| Self::load_db(path));
        let (db, mut stable, landed) =
            opened.unwrap_or_else(|| Err(StoreError::corrupt(path, "the database cannot be read")))?;
        std::fs::create_dir_all(blob_dir).map_err(StoreError::io(blob_dir))?;
        let mut blobs = BTreeSet::new();
        for f in std::fs::read_dir(blob_dir).map_err(StoreError::io(blob_dir))? {
            let f = f.map_err(StoreError::io(blob_dir))?;
            let name = f.file_name().to_string_lossy().into_owned();
            let file = f.path();
            let Some(key) = unhex_key(&name) else {
                // A write cut off by a crash (`.tmp`), or not ours.
                let _ = std::fs::remove_file(&file);
                continue;
            };
            let len = f.metadata().map_err(StoreError::io(&file))?.len();
            if len > MAX_BLOB_BYTES {
                return Err(StoreError::corrupt(&file, format!("{len} bytes, more than any snapshot")));
            }
            let bytes = std::fs::read(&file).map_err(StoreError::io(&file))?;
            let (hash, value) = unseal(&bytes).map_err(|e| StoreError::corrupt(&file, e))?;
            if landed.get(&key).is_some_and(|h| *h != hash) {
                return Err(StoreError::corrupt(&file, "it is not the value the database recorded"));
            }
            stable.put(key.clone(), value.to_vec());
            blobs.insert(key);
        }
        if let Some(key) = landed.keys().find(|k| !blobs.contains(*k)) {
            let file = blob_dir.join(hex_key(key));
            return Err(StoreError::corrupt(
                &file,
                format!("the database records {key:?} here, but it is missing"),
            ));
        }
        Ok((
            Store {
                db,
                path: path.to_path_buf(),
                blob_dir: blob_dir.to_path_buf(),
                blobs: Mutex::new(blobs),
            },
            stable,
        ))
    }

    /// Opens (creating if missing) the database: what it holds, and the deferred writes it
    /// records as landed with their hashes.
    fn load_db(path: &Path) -> Result<(Database, Stable, Landed), StoreError> {
        let db = Database::create(path).map_err(|e| StoreError::db(path, e))?;
        let txn = db.begin_write().map_err(|e| StoreError::db(path, e))?;
        txn.open_table(TABLE).map_err(|e| StoreError::db(path, e))?;
        txn.open_table(BLOBS).map_err(|e| StoreError::db(path, e))?;
        txn.commit().map_err(|e| StoreError::db(path, e))?;
        let mut stable = Stable::new();
        let mut landed = std::collections::BTreeMap::new();
        let read = db.begin_read().map_err(|e| StoreError::db(path, e))?;
        let table = read.open_table(TABLE).map_err(|e| StoreError::db(path, e))?;
        for entry in table.iter().map_err(|e| StoreError::db(path, e))? {
            let (k, v) = entry.map_err(|e| StoreError::db(path, e))?;
            stable.put(k.value().to_string(), v.value().to_vec());
        }
        let table = read.open_table(BLOBS).map_err(|e| StoreError::db(path, e))?;
        for entry in table.iter().map_err(|e| StoreError::db(path, e))? {
            let (k, v) = entry.map_err(|e| StoreError::db(path, e))?;
            let hash: [u8; 32] =
                v.value().try_into().map_err(|_| StoreError::corrupt(path, "a deferred write's hash"))?;
            landed.insert(k.value().to_string(), hash);
        }
        drop(table);
        drop(read);
        Ok((db, stable, landed))
    }

    /// Writes `value` under `key` durably, in a file of its own: to a temporary file, synced,
    /// renamed over the old one, and the directory synced. A crash leaves the old value or the
    /// new, never a mix. Safe to call from another thread than [`Store::apply`].
    /// Returns the value's hash, for the database to record once the node learns the write
    /// landed ([`Write::Landed`]).
    pub fn put_later(&self, key: &str, value: &[u8]) -> Result<[u8; 32], StoreError> {
        let err = StoreError::io(&self.blob_dir);
        let name = hex_key(key);
        let tmp = self.blob_dir.join(format!("{name}.tmp"));
        let sealed = seal(value);
        let mut f = std::fs::File::create(&tmp).map_err(&err)?;
        f.write_all(&sealed).map_err(&err)?;
        f.sync_all().map_err(&err)?;
        std::fs::rename(&tmp, self.blob_dir.join(&name)).map_err(&err)?;
        std::fs::File::open(&self.blob_dir).and_then(|d| d.sync_all()).map_err(&err)?;
        self.blobs.lock().expect("blob keys lock").insert(key.to_string());
        Ok(sealed[4..BLOB_HEADER].try_into().expect("32 bytes"))
    }

    /// Removes the files of the blob keys in `from..to` (or the key `from` when `to` is
    /// `None`); synced with the directory.
    fn remove_blobs(&self, from: &str, to: Option<&str>) -> Result<(), StoreError> {
        let err = StoreError::io(&self.blob_dir);
        let mut blobs = self.blobs.lock().expect("blob keys lock");
        let gone: Vec<String> = match to {
            None => blobs.get(from).cloned().into_iter().collect(),
            Some(to) if from < to => blobs.range(from.to_string()..to.to_string()).cloned().collect(),
            Some(_) => Vec::new(),
        };
        for k in &gone {
            blobs.remove(k);
            match std::fs::remove_file(self.blob_dir.join(hex_key(k))) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(err(e)),
                _ => {}
            }
        }
        if !gone.is_empty() {
            std::fs::File::open(&self.blob_dir).and_then(|d| d.sync_all()).map_err(&err)?;
        }
        Ok(())
    }

    /// Applies `writes` in one durable transaction.
    pub fn apply(&self, writes: &[Write]) -> Result<(), StoreError> {
        #[cfg(test)]
        std::thread::sleep(disk_probe::delay(&self.path));
        let applied = self.apply_now(writes);
        #[cfg(test)]
        if applied.is_ok() {
            disk_probe::landed(&self.path, writes);
        }
        applied
    }

    fn apply_now(&self, writes: &[Write]) -> Result<(), StoreError> {
        let err = |e: redb::Error| StoreError::db(&self.path, e);
        let txn = self.db.begin_write().map_err(|e| err(e.into()))?;
        {
            let mut table = txn.open_table(TABLE).map_err(|e| err(e.into()))?;
            let mut landed = txn.open_table(BLOBS).map_err(|e| err(e.into()))?;
            for w in writes {
                match w {
                    Write::Put(k, v) => {
                        table.insert(k.as_str(), v.as_slice()).map_err(|e| err(e.into()))?;
                    }
                    Write::Remove(k) => {
                        table.remove(k.as_str()).map_err(|e| err(e.into()))?;
                        landed.remove(k.as_str()).map_err(|e| err(e.into()))?;
                    }
                    Write::RemoveRange(a, b) if a < b => {
                        table.retain_in(a.as_str()..b.as_str(), |_, _| false).map_err(|e| err(e.into()))?;
                        landed.retain_in(a.as_str()..b.as_str(), |_, _| false).map_err(|e| err(e.into()))?;
                    }
                    Write::RemoveRange(..) => {}
                    Write::Landed(k, hash) => {
                        // Only if the file is still wanted: a removal may have overtaken it.
                        if self.blobs.lock().expect("blob keys lock").contains(k) {
                            landed.insert(k.as_str(), &hash[..]).map_err(|e| err(e.into()))?;
                        }
                    }
                }
            }
        }
        txn.commit().map_err(|e| err(e.into()))?;
        for w in writes {
            match w {
                Write::Remove(k) => self.remove_blobs(k, None)?,
                Write::RemoveRange(a, b) => self.remove_blobs(a, Some(b))?,
                Write::Put(..) | Write::Landed(..) => {}
            }
        }
        Ok(())
    }
}

/// For the driver's tests: a database made slow on purpose, and the keys its transactions
/// have made durable, so a test can tell whether a message left before the write it depends on.
#[cfg(test)]
pub(crate) mod disk_probe {
    use super::Write;
    use std::collections::{BTreeSet, HashMap};
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;
    use std::time::Duration;

    /// Per database: the wait before each commit, and the keys put by the commits so far.
    type Probes = HashMap<PathBuf, (Duration, BTreeSet<String>)>;
    static PROBED: Mutex<Option<Probes>> = Mutex::new(None);

    /// Makes every commit to the database at `path` wait `delay` first, and records its keys.
    pub(crate) fn watch(path: &Path, delay: Duration) {
        PROBED
            .lock()
            .unwrap()
            .get_or_insert_with(HashMap::new)
            .insert(path.to_path_buf(), (delay, BTreeSet::new()));
    }

    pub(super) fn delay(path: &Path) -> Duration {
        PROBED.lock().unwrap().as_ref().and_then(|m| m.get(path)).map_or(Duration::ZERO, |(d, _)| *d)
    }

    pub(super) fn landed(path: &Path, writes: &[Write]) {
        if let Some((_, keys)) = PROBED.lock().unwrap().as_mut().and_then(|m| m.get_mut(path)) {
            keys.extend(writes.iter().filter_map(|w| match w {
                Write::Put(k, _) => Some(k.clone()),
                _ => None,
            }));
        }
    }

    /// Whether a commit to the watched database at `path` has made `key` durable.
    pub(crate) fn durable(path: &Path, key: &str) -> bool {
        PROBED.lock().unwrap().as_ref().and_then(|m| m.get(path)).is_some_and(|(_, keys)| keys.contains(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node-0.redb");
        (dir, path)
    }

    fn corrupt_reason(r: Result<(Store, Stable), StoreError>) -> String {
        match r {
            Err(StoreError::Corrupt { reason, .. }) => reason,
            Err(e) => panic!("expected corruption, got {e}"),
            Ok(_) => panic!("expected corruption, the store opened"),
        }
    }

    #[test]
    fn writes_survive_reopening() {
        let (_dir, path) = temp();
        {
            let (store, stable) = Store::open(&path, OpenMode::New).unwrap();
            assert!(stable.is_empty());
            store.apply(&[Write::Put("a".into(), vec![1]), Write::Put("b".into(), vec![2])]).unwrap();
            store.apply(&[Write::Remove("a".into())]).unwrap();
        }
        let (_, stable) = Store::open(&path, OpenMode::Existing).unwrap();
        assert_eq!(stable.get_bytes("b"), Some(&[2u8][..]));
        assert_eq!(stable.get_bytes("a"), None);
    }

    #[test]
    fn deferred_writes_and_range_removals_survive_reopening() {
        let (dir, path) = temp();
        {
            let (store, _) = Store::open(&path, OpenMode::New).unwrap();
            let puts: Vec<Write> = (0..10).map(|i| Write::Put(format!("log/{i}"), vec![i])).collect();
            store.apply(&puts).unwrap();
            store.put_later("snap/1", &[7; 1000]).unwrap();
            store.put_later("snap/2", &[8; 10]).unwrap();
            let h = store.put_later("snap/2", &[9; 10]).unwrap();
            store.apply(&[Write::Landed("snap/2".into(), h)]).unwrap();
            store
                .apply(&[Write::RemoveRange("log/2".into(), "log/5".into()), Write::Remove("snap/1".into())])
                .unwrap();
        }
        // A write cut off by a crash leaves a temporary file: ignored and removed.
        std::fs::write(dir.path().join("node-0.later").join(format!("{}.tmp", hex_key("snap/3"))), [1, 2])
            .unwrap();
        let (store, stable) = Store::open(&path, OpenMode::Existing).unwrap();
        let keys: Vec<&str> = stable.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["log/0", "log/1", "log/5", "log/6", "log/7", "log/8", "log/9", "snap/2"]);
        assert_eq!(stable.get_bytes("snap/2"), Some(&[9u8; 10][..]), "the last write of a key wins");
        store.apply(&[Write::RemoveRange("snap/".into(), "snap0".into())]).unwrap();
        drop(store);
        let (_, stable) = Store::open(&path, OpenMode::Existing).unwrap();
        assert_eq!(stable.len(), 7, "range removals take deferred keys too");
        assert_eq!(std::fs::read_dir(dir.path().join("node-0.later")).unwrap().count(), 0);
    }

    #[test]
    fn blob_names_round_trip() {
        for k in ["raft/snap/00000000000000ff", "", "é/x"] {
            assert_eq!(unhex_key(&hex_key(k)).as_deref(), Some(k));
        }
        assert_eq!(unhex_key("6a.tmp"), None);
        assert_eq!(unhex_key("zz"), None);
    }

    #[test]
    fn a_missing_database_is_created_only_when_asked() {
        let (_dir, path) = temp();
        assert!(matches!(Store::open(&path, OpenMode::Existing), Err(StoreError::Missing { .. })));
        assert!(!path.exists(), "refusing creates nothing");
        let (_, stable) = Store::open(&path, OpenMode::New).unwrap();
        assert!(stable.is_empty());
    }

    #[test]
    fn an_empty_file_is_corrupt_not_new() {
        let (_dir, path) = temp();
        std::fs::write(&path, b"").unwrap();
        for mode in [OpenMode::Existing, OpenMode::New] {
            assert!(corrupt_reason(Store::open(&path, mode)).contains("0 bytes"));
        }
    }

    #[test]
    fn garbage_and_flipped_bits_are_corruption_not_panics() {
        let (_dir, path) = temp();
        std::fs::write(&path, vec![0xA5; 64 * 1024]).unwrap();
        corrupt_reason(Store::open(&path, OpenMode::Existing));
        // A real database with every byte of its header region flipped, one at a time: each
        // opens to the same data or is refused; none panics.
        let (_dir2, good) = temp();
        {
            let (store, _) = Store::open(&good, OpenMode::New).unwrap();
            store.apply(&[Write::Put("k".into(), vec![42; 100])]).unwrap();
        }
        let bytes = std::fs::read(&good).unwrap();
        for at in (0..bytes.len().min(4096)).step_by(7) {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x40;
            std::fs::write(&path, &damaged).unwrap();
            let _ = std::fs::remove_dir_all(path.with_extension("later"));
            match Store::open(&path, OpenMode::Existing) {
                Ok((_, stable)) => assert!(stable.get_bytes("k").is_none_or(|v| v.len() == 100)),
                Err(e) => assert!(e.needs_operator() || matches!(e, StoreError::Db { .. }), "{e}"),
            }
        }
    }

    #[test]
    fn a_damaged_or_missing_snapshot_file_is_corruption() {
        let (dir, path) = temp();
        {
            let (store, _) = Store::open(&path, OpenMode::New).unwrap();
            let h = store.put_later("snap/1", &[7; 1000]).unwrap();
            store.apply(&[Write::Landed("snap/1".into(), h)]).unwrap();
        }
        let file = dir.path().join("node-0.later").join(hex_key("snap/1"));
        let mut bytes = std::fs::read(&file).unwrap();
        bytes[500] ^= 1;
        std::fs::write(&file, &bytes).unwrap();
        assert!(corrupt_reason(Store::open(&path, OpenMode::Existing)).contains("checksum"));
        std::fs::remove_file(&file).unwrap();
        assert!(corrupt_reason(Store::open(&path, OpenMode::Existing)).contains("missing"));
    }

    #[test]
    fn rejoining_starts_empty_and_marked_and_refuses_a_store_with_data() {
        let (dir, path) = temp();
        {
            let (store, _) = Store::open(&path, OpenMode::New).unwrap();
            store.apply(&[Write::Put("a".into(), vec![1])]).unwrap();
        }
        assert!(matches!(Store::open(&path, OpenMode::Rejoin), Err(StoreError::NotLost { .. })));
        std::fs::write(&path, b"").unwrap();
        let (_, stable) = Store::open(&path, OpenMode::Rejoin).unwrap();
        assert!(stable.rejoining());
        assert_eq!(stable.len(), 1, "nothing but the mark");
        assert!(dir.path().join("node-0.redb.corrupt").exists(), "the damaged file is kept beside");
        let (_, stable) = Store::open(&path, OpenMode::Existing).unwrap();
        assert!(stable.rejoining(), "the mark is durable until the protocol removes it");
    }

    #[test]
    fn a_cluster_is_all_new_all_there_or_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Store::cluster_mode(dir.path(), 3).unwrap(), OpenMode::New);
        for i in 0..3 {
            Store::open(&dir.path().join(node_file(i)), OpenMode::New).unwrap();
        }
        assert_eq!(Store::cluster_mode(dir.path(), 3).unwrap(), OpenMode::Existing);
        std::fs::remove_file(dir.path().join(node_file(1))).unwrap();
        match Store::cluster_mode(dir.path(), 3) {
            Err(StoreError::Missing { path }) => assert!(path.ends_with("node-1.redb")),
            other => panic!("expected node 1 missing, got {other:?}"),
        }
    }
}
