//! Durable storage of what a node persists: one redb database per node, and in front of it a
//! write-ahead log (`crate::wal`).
//!
//! On start the whole table is loaded into a [`Stable`] for the protocol's `Setup::build`,
//! with the log's batches applied over it. Each batch of steps' persist effects is appended
//! to the log as one record and synced before any of those steps' messages are handed to the
//! network; once the log is large, its batches go into the database in one transaction and the
//! log starts again (a checkpoint). One log record is one or two pages; one redb commit, about
//! seven scattered ones.

use crate::wal::{self, Wal, WalError, CHECKPOINT_BYTES};
use agora_core::{Stable, REJOINING};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("stable");
/// The deferred writes that are durable, and the hash of each: a snapshot file that the
/// database says exists must be there, whole.
const BLOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("blobs");
/// The store's own records: under [`WAL_KEY`], the generation of the write-ahead log that
/// goes with the database.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const WAL_KEY: &str = "wal";
/// redb's page cache, per database.
const CACHE_BYTES: usize = 16 << 20;

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

    /// A write-ahead log's error, naming the log.
    fn log(path: &Path, e: WalError) -> StoreError {
        match e {
            WalError::Io(e) => StoreError::io(path)(e),
            WalError::Corrupt(why) => StoreError::corrupt(path, why),
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

/// One node's durable storage: its redb database and, beside it, its write-ahead log and the
/// files of its deferred writes. The writes of a batch of steps are appended to the log as one
/// synced record; checkpoints move the log's records into the database.
pub struct Store {
    db: Arc<Database>,
    path: PathBuf,
    /// The write-ahead log (`node-N.wal` beside `node-N.redb`); written by one thread at a
    /// time, the node's committer.
    wal: Mutex<Wal>,
    /// The checkpoint under way, if one is: a thread putting the log before the current one
    /// (`node-N.wal-prev`) in the database.
    checkpoint: Mutex<Option<std::thread::JoinHandle<Result<(), StoreError>>>>,
    /// Where deferred writes go (`Effect::PersistLater`): one file per key, so that a large
    /// snapshot is written beside the database, not inside one of its transactions (redb has
    /// one writer at a time, and the node's own commits would wait for it). Each file holds a
    /// hash of its value, checked when it is read; the database lists the files that landed.
    blob_dir: PathBuf,
    /// The keys that have a file in `blob_dir`.
    blobs: Arc<Mutex<BTreeSet<String>>>,
}

/// Deferred writes the database records as landed, with the hash of each value.
type Landed = std::collections::BTreeMap<String, [u8; 32]>;

/// The database file of node `id` in its data directory.
pub fn node_file(id: u32) -> String {
    format!("node-{id}.redb")
}

/// The write-ahead log of the database at `path`.
fn wal_file(path: &Path) -> PathBuf {
    path.with_extension("wal")
}

/// The log before the current one, while a checkpoint puts it in the database at `path`.
fn prev_wal_file(path: &Path) -> PathBuf {
    path.with_extension("wal-prev")
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
        if mode == OpenMode::Rejoin {
            // What is left of the storage lost beside a database gone (its logs, its deferred
            // writes) holds writes of its former life: never read into the new one.
            Self::set_aside(&wal_file(path))?;
            Self::set_aside(&prev_wal_file(path))?;
            Self::set_aside(&blob_dir)?;
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
        let opened = catch_quietly(|| {
            let (db, mut stable, mut landed, generation) = Self::load_db(path)?;
            let wal = Self::load_wal(&db, path, generation, &mut stable, &mut landed)?;
            Ok((db, stable, landed, wal))
        });
        let (db, mut stable, landed, wal) =
            opened.unwrap_or_else(|| Err(StoreError::corrupt(path, "the database cannot be read")))?;
        let db = Arc::new(db);
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
                wal: Mutex::new(wal),
                checkpoint: Mutex::new(None),
                blob_dir: blob_dir.to_path_buf(),
                blobs: Arc::new(Mutex::new(blobs)),
            },
            stable,
        ))
    }

    /// Opens (creating if missing) the database: what it holds, the deferred writes it
    /// records as landed with their hashes, and the generation of its write-ahead log (none
    /// for a new database, or one written before there were logs).
    fn load_db(path: &Path) -> Result<(Database, Stable, Landed, Option<u64>), StoreError> {
        // The database is read once, on opening, and written by checkpoints: a small cache
        // (redb's default is a gigabyte a database) keeps a checkpoint's pages from staying in
        // memory after it.
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| StoreError::db(path, e))?;
        let txn = db.begin_write().map_err(|e| StoreError::db(path, e))?;
        txn.open_table(TABLE).map_err(|e| StoreError::db(path, e))?;
        txn.open_table(BLOBS).map_err(|e| StoreError::db(path, e))?;
        txn.open_table(META).map_err(|e| StoreError::db(path, e))?;
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
        let generation = read
            .open_table(META)
            .and_then(|t| Ok(t.get(WAL_KEY)?.map(|g| g.value())))
            .map_err(|e| StoreError::db(path, e))?;
        drop(read);
        Ok((db, stable, landed, generation))
    }

    /// Opens the write-ahead log that goes with the database (creating the first one) and
    /// applies its batches to `stable` and `landed`, after those of a log a checkpoint left
    /// unfinished (see `crate::wal`).
    fn load_wal(
        db: &Database,
        path: &Path,
        generation: Option<u64>,
        stable: &mut Stable,
        landed: &mut Landed,
    ) -> Result<Wal, StoreError> {
        let file = wal_file(path);
        let prev = prev_wal_file(path);
        // A log whose making a crash cut off never had its name: nothing in it counts.
        let unmade = wal::new_file(&file);
        if unmade.try_exists().map_err(StoreError::io(&unmade))? {
            std::fs::remove_file(&unmade).map_err(StoreError::io(&unmade))?;
        }
        let exists = file.try_exists().map_err(StoreError::io(&file))?;
        let prev_exists = prev.try_exists().map_err(StoreError::io(&prev))?;
        let open = |f: &Path| Wal::open(f).map_err(|e| StoreError::log(f, e));
        let Some(g) = generation else {
            // A new database (or one from before the logs): its first log. An empty log there
            // already is one made before a crash cut off the store's first opening (the
            // database is told its generation after the log is made); a log with writes, or an
            // old log, belongs to another database.
            if prev_exists {
                return Err(StoreError::corrupt(&prev, "the database beside it names no write-ahead log"));
            }
            let wal = match exists {
                false => Wal::create(&file, 1).map_err(StoreError::io(&file))?,
                true => match open(&file)? {
                    (wal, batches) if batches.is_empty() => wal,
                    _ => {
                        return Err(StoreError::corrupt(
                            &file,
                            "it holds writes, and the database beside it names no write-ahead log",
                        ))
                    }
                },
            };
            commit_to_db(db, path, &Mutex::new(BTreeSet::new()), &[], wal.generation())?;
            return Ok(wal);
        };
        // A checkpoint cut off: the old log is the database's generation (not yet in it) or
        // the one before (in it; only the file's removal was left to do).
        let old = match prev_exists {
            false => None,
            true => {
                let (old, batches) = open(&prev)?;
                if old.generation() != g && old.generation() + 1 != g {
                    return Err(StoreError::corrupt(
                        &prev,
                        format!("generation {}, where the database names {g}", old.generation()),
                    ));
                }
                Some((old.generation() == g, batches))
            }
        };
        let unconsumed = matches!(old, Some((true, _)));
        let current = if unconsumed { g + 1 } else { g };
        // The current log, checked before anything is written.
        let (wal, batches) = match exists {
            true => open(&file)?,
            // The crash came between the old log's rename and the new one's making.
            false if unconsumed => (Wal::create(&file, current).map_err(StoreError::io(&file))?, Vec::new()),
            false => {
                return Err(StoreError::corrupt(
                    &file,
                    format!("the database names its write-ahead log (generation {g}), which is missing"),
                ))
            }
        };
        if wal.generation() != current {
            return Err(StoreError::corrupt(
                &file,
                format!("generation {}, where the database names {g}", wal.generation()),
            ));
        }
        if let Some((unconsumed, old_batches)) = old {
            if unconsumed {
                let writes: Vec<Write> = old_batches.into_iter().flatten().collect();
                replay(&writes, stable, landed);
                // The landings among them name files still wanted (`load` checks the files).
                let wanted = Mutex::new(landed.keys().cloned().collect());
                commit_to_db(db, path, &wanted, &writes, current)?;
            }
            std::fs::remove_file(&prev).map_err(StoreError::io(&prev))?;
            wal::sync_dir(&prev).map_err(StoreError::io(&prev))?;
        }
        replay(batches.iter().flatten(), stable, landed);
        Ok(wal)
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
        // A deferred write's landing is recorded only if its file is still wanted: a removal
        // may have overtaken it (and taken the file), and a log replayed must not name a file
        // that is gone.
        let unwanted = |i: usize, k: &str| {
            !self.blobs.lock().expect("blob keys lock").contains(k)
                || writes[..i].iter().any(|w| match w {
                    Write::Remove(r) => r == k,
                    Write::RemoveRange(a, b) => a.as_str() <= k && k < b.as_str(),
                    _ => false,
                })
        };
        let landed_unwanted = |(i, w): (usize, &Write)| matches!(w, Write::Landed(k, _) if unwanted(i, k));
        let kept: Vec<Write>;
        let writes = if writes.iter().enumerate().any(landed_unwanted) {
            kept = writes
                .iter()
                .enumerate()
                .filter(|&iw| !landed_unwanted(iw))
                .map(|(_, w)| w.clone())
                .collect();
            &kept[..]
        } else {
            writes
        };
        let mut wal = self.wal.lock().expect("log lock");
        wal.append(writes).map_err(StoreError::io(wal.path()))?;
        if wal.len() >= CHECKPOINT_BYTES {
            self.rotate(&mut wal)?;
        } else if self.checkpoint.lock().expect("checkpoint lock").as_ref().is_some_and(|t| t.is_finished()) {
            // A checkpoint that failed stops the node now, not a log later.
            self.checkpointed()?;
        }
        drop(wal);
        self.remove_files(writes)
    }

    /// Waits for the checkpoint under way, if one is, and returns its outcome.
    fn checkpointed(&self) -> Result<(), StoreError> {
        match self.checkpoint.lock().expect("checkpoint lock").take().map(|t| t.join()) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(_)) => Err(StoreError::Io {
                path: self.path.clone(),
                source: std::io::Error::other("a checkpoint into it panicked"),
            }),
        }
    }

    /// Starts a checkpoint: the current log becomes the one before (`node-N.wal-prev`), a new
    /// log of the next generation takes its place, and a thread of its own puts the old log's
    /// batches in the database, in one transaction that names the new log's generation, then
    /// removes the old log. The node goes on writing to the new log meanwhile; it waits only
    /// if the checkpoint before this one is still under way.
    fn rotate(&self, wal: &mut Wal) -> Result<(), StoreError> {
        self.checkpointed()?;
        let (file, prev) = (wal_file(&self.path), prev_wal_file(&self.path));
        if prev.try_exists().map_err(StoreError::io(&prev))? {
            // Its batches are not all in the database: it must not be replaced.
            return Err(StoreError::corrupt(&prev, "a checkpoint before this one did not finish"));
        }
        std::fs::rename(&file, &prev).map_err(StoreError::io(&file))?;
        let next = Wal::create(&file, wal.generation() + 1).map_err(StoreError::io(&file))?;
        let old = std::mem::replace(wal, next);
        let (db, path, blobs) = (self.db.clone(), self.path.clone(), self.blobs.clone());
        let thread = std::thread::Builder::new().name("checkpoint".into()).spawn(move || {
            let batches = old.batches().map_err(|e| StoreError::log(&prev, e))?;
            let writes: Vec<Write> = batches.into_iter().flatten().collect();
            commit_to_db(&db, &path, &blobs, &writes, old.generation() + 1)?;
            drop(old);
            std::fs::remove_file(&prev).map_err(StoreError::io(&prev))
        });
        let thread = thread.map_err(StoreError::io(&self.path))?;
        *self.checkpoint.lock().expect("checkpoint lock") = Some(thread);
        Ok(())
    }

    /// Waits for the checkpoint under way, if one is, and says how it ended: the node's
    /// last call, so that the database is no longer held once the node has stopped.
    pub fn close(&self) -> Result<(), StoreError> {
        self.checkpointed()
    }

    /// For tests: checkpoints the log now, whatever its size, and waits for it.
    #[cfg(test)]
    pub(crate) fn checkpoint_now(&self) -> Result<(), StoreError> {
        self.rotate(&mut self.wal.lock().expect("log lock"))?;
        self.checkpointed()
    }

    /// Removes the deferred-write files of the keys `writes` removed, once those removals
    /// are durable.
    fn remove_files(&self, writes: &[Write]) -> Result<(), StoreError> {
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

impl Drop for Store {
    /// The checkpoint under way finishes (or fails: its log stays, and is replayed on the next
    /// open), so that the database is no longer held when the node opens it again.
    fn drop(&mut self) {
        if let Err(e) = self.checkpointed() {
            tracing::error!("{e}");
        }
    }
}

/// Applies the batches of a log to what the database held: the key-value pairs and the
/// deferred writes it records as landed.
fn replay<'a>(writes: impl IntoIterator<Item = &'a Write>, stable: &mut Stable, landed: &mut Landed) {
    for w in writes {
        match w {
            Write::Put(k, v) => stable.put(k.clone(), v.clone()),
            Write::Remove(k) => {
                stable.remove(k);
                landed.remove(k);
            }
            Write::RemoveRange(a, b) => {
                stable.remove_range(a, b);
                if a < b {
                    landed.retain(|k, _| k < a || k >= b);
                }
            }
            Write::Landed(k, h) => {
                landed.insert(k.clone(), *h);
            }
        }
    }
}

/// Writes `writes` in the database at `path`, with the log's next `generation`, in one durable
/// transaction. A deferred write's landing is recorded only if its file is still among
/// `blobs`: a removal may have overtaken it.
fn commit_to_db(
    db: &Database,
    path: &Path,
    blobs: &Mutex<BTreeSet<String>>,
    writes: &[Write],
    generation: u64,
) -> Result<(), StoreError> {
    let err = |e: redb::Error| StoreError::db(path, e);
    let txn = db.begin_write().map_err(|e| err(e.into()))?;
    {
        let mut meta = txn.open_table(META).map_err(|e| err(e.into()))?;
        meta.insert(WAL_KEY, generation).map_err(|e| err(e.into()))?;
    }
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
                    if blobs.lock().expect("blob keys lock").contains(k) {
                        landed.insert(k.as_str(), &hash[..]).map_err(|e| err(e.into()))?;
                    }
                }
            }
        }
    }
    txn.commit().map_err(|e| err(e.into()))
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

    /// Writes go to the log, a checkpoint moves them into the database, and a reopened store
    /// reads the database with the log's later batches over it.
    #[test]
    fn writes_survive_a_checkpoint_and_the_log_after_it() {
        let (_dir, path) = temp();
        {
            let (store, _) = Store::open(&path, OpenMode::New).unwrap();
            store.apply(&[Write::Put("a".into(), vec![1]), Write::Put("b".into(), vec![2])]).unwrap();
            store.checkpoint_now().unwrap();
            assert_eq!(store.wal.lock().unwrap().generation(), 2);
            store.apply(&[Write::Remove("a".into()), Write::Put("c".into(), vec![3])]).unwrap();
        }
        let (_, stable) = Store::open(&path, OpenMode::Existing).unwrap();
        let all: Vec<(&str, &[u8])> = stable.iter().collect();
        assert_eq!(all, [("b", &[2u8][..]), ("c", &[3u8][..])]);
    }

    /// Logs that outgrow the checkpoint size are rotated and checkpointed while writes go on;
    /// closing waits for the checkpoint, and a reopened store holds every write once.
    #[test]
    fn checkpoints_under_way_lose_nothing_and_end_with_the_store() {
        let (_dir, path) = temp();
        let value = |i: u32| vec![(i % 251) as u8; 64 * 1024];
        {
            let (store, _) = Store::open(&path, OpenMode::New).unwrap();
            for i in 0..400u32 {
                let mut batch = vec![Write::Put(format!("k/{i:04}"), value(i))];
                if i % 3 == 0 {
                    batch.push(Write::Remove(format!("k/{:04}", i / 2)));
                }
                store.apply(&batch).unwrap();
            }
            assert!(store.wal.lock().unwrap().generation() >= 3, "at least two checkpoints");
            store.close().unwrap();
            assert!(!prev_wal_file(&path).exists(), "the last checkpoint ended with the store");
        }
        let (_, stable) = Store::open(&path, OpenMode::Existing).unwrap();
        let mut expected: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
        for i in 0..400u32 {
            expected.insert(format!("k/{i:04}"), value(i));
            if i % 3 == 0 {
                expected.remove(&format!("k/{:04}", i / 2));
            }
        }
        let got: std::collections::BTreeMap<String, Vec<u8>> =
            stable.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect();
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "every write, once, in order");
    }

    /// A crash in each step of a checkpoint: after the log was renamed (no new log yet),
    /// after the new log was made (the old one not yet in the database), and after the
    /// database took the old log (its file not yet removed). Each reopens to every write,
    /// the old log in the database once, never replayed over a later removal.
    #[test]
    fn a_checkpoint_cut_off_at_any_step_loses_nothing() {
        for step in 0..3 {
            let (_dir, path) = temp();
            {
                let (store, _) = Store::open(&path, OpenMode::New).unwrap();
                store.apply(&[Write::Put("a".into(), vec![1]), Write::Put("b".into(), vec![2])]).unwrap();
                std::fs::rename(wal_file(&path), prev_wal_file(&path)).unwrap();
                if step >= 1 {
                    let mut next = Wal::create(&wal_file(&path), 2).unwrap();
                    next.append(&[Write::Remove("a".into())]).unwrap();
                }
                if step == 2 {
                    let writes = [Write::Put("a".into(), vec![1]), Write::Put("b".into(), vec![2])];
                    commit_to_db(&store.db, &path, &store.blobs, &writes, 2).unwrap();
                }
                // What the store would do next is cut off (no checkpoint thread was started:
                // dropping it does nothing more).
                drop(store);
            }
            let (store, stable) = Store::open(&path, OpenMode::Existing).unwrap();
            let keys: Vec<&str> = stable.iter().map(|(k, _)| k).collect();
            let expected: &[&str] = if step == 0 { &["a", "b"] } else { &["b"] };
            assert_eq!(keys, expected, "step {step}");
            assert!(!prev_wal_file(&path).exists(), "step {step}: the old log is gone");
            assert_eq!(store.wal.lock().unwrap().generation(), 2, "step {step}");
            drop(store);
            let (_, again) = Store::open(&path, OpenMode::Existing).unwrap();
            assert_eq!(again.iter().map(|(k, _)| k).collect::<Vec<_>>(), expected, "step {step}, reopened");
        }
    }

    /// The log is part of the storage: missing, of another generation, or with writes beside a
    /// database that names none, it is corruption, never a store silently missing writes.
    #[test]
    fn a_missing_or_foreign_log_is_corruption() {
        let (dir, path) = temp();
        {
            let (store, _) = Store::open(&path, OpenMode::New).unwrap();
            store.apply(&[Write::Put("a".into(), vec![1])]).unwrap();
        }
        let log = std::fs::read(wal_file(&path)).unwrap();
        std::fs::remove_file(wal_file(&path)).unwrap();
        assert!(corrupt_reason(Store::open(&path, OpenMode::Existing)).contains("missing"));
        let mut other = log.clone();
        other[4] = 9;
        std::fs::write(wal_file(&path), &other).unwrap();
        assert!(corrupt_reason(Store::open(&path, OpenMode::Existing)).contains("generation 9"));
        // A new database beside an old log with writes in it.
        let fresh = dir.path().join("node-1.redb");
        std::fs::write(wal_file(&fresh), &log).unwrap();
        assert!(corrupt_reason(Store::open(&fresh, OpenMode::New)).contains("holds writes"));
        // An empty log left by a crash while the store was first created is taken up.
        std::fs::remove_file(&fresh).unwrap();
        std::fs::write(wal_file(&fresh), &log[..12]).unwrap();
        Store::open(&fresh, OpenMode::New).unwrap();
        std::fs::write(wal_file(&path), &log).unwrap();
        let (_, stable) = Store::open(&path, OpenMode::Existing).unwrap();
        assert_eq!(stable.get_bytes("a"), Some(&[1u8][..]));
    }

    /// A node told it lost its storage keeps nothing of its former life: its log and its
    /// deferred writes are set aside, even with its database gone.
    #[test]
    fn rejoining_sets_the_log_aside() {
        let (dir, path) = temp();
        {
            let (store, _) = Store::open(&path, OpenMode::New).unwrap();
            store.apply(&[Write::Put("raft/hs".into(), vec![1])]).unwrap();
        }
        {
            let (store, _) = Store::open(&path, OpenMode::Existing).unwrap();
            let h = store.put_later("raft/snap/1", &[7; 100]).unwrap();
            store.apply(&[Write::Landed("raft/snap/1".into(), h)]).unwrap();
        }
        std::fs::remove_file(&path).unwrap();
        let (_, stable) = Store::open(&path, OpenMode::Rejoin).unwrap();
        assert_eq!(stable.len(), 1, "nothing but the mark");
        assert!(dir.path().join("node-0.wal.corrupt").exists(), "the old log is kept beside");
        assert!(dir.path().join("node-0.later.corrupt").exists(), "and the old snapshots");
    }

    /// A deferred write's landing reported after the protocol removed its key is not logged:
    /// the log would name a file that is gone, and the store would not open again.
    #[test]
    fn a_landing_overtaken_by_its_removal_is_not_recorded() {
        let (_dir, path) = temp();
        {
            let (store, _) = Store::open(&path, OpenMode::New).unwrap();
            let h = store.put_later("snap/1", &[7; 100]).unwrap();
            store.apply(&[Write::Remove("snap/1".into())]).unwrap();
            store.apply(&[Write::Landed("snap/1".into(), h), Write::Put("a".into(), vec![1])]).unwrap();
            // In one batch: removed, then its landing reported.
            let h = store.put_later("snap/2", &[8; 100]).unwrap();
            store
                .apply(&[
                    Write::RemoveRange("snap/".into(), "snap0".into()),
                    Write::Landed("snap/2".into(), h),
                ])
                .unwrap();
        }
        let (_, stable) = Store::open(&path, OpenMode::Existing).unwrap();
        assert_eq!((stable.get_bytes("snap/1"), stable.get_bytes("a")), (None, Some(&[1u8][..])));
        assert_eq!(stable.get_bytes("snap/2"), None);
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
            store.checkpoint_now().unwrap();
        }
        let bytes = std::fs::read(&good).unwrap();
        let log = std::fs::read(wal_file(&good)).unwrap();
        for at in (0..bytes.len().min(4096)).step_by(7) {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x40;
            std::fs::write(&path, &damaged).unwrap();
            std::fs::write(wal_file(&path), &log).unwrap();
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
