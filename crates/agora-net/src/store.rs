//! Durable storage of what a node persists: one redb database per node.
//!
//! On start the whole table is loaded into a [`Stable`] for the protocol's `Setup::build`.
//! Each step's persist effects are written in one transaction, committed (fsync) before any of
//! that step's messages are handed to the network.

use agora_core::Stable;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("stable");

#[derive(Debug, thiserror::Error)]
#[error("storage {path}: {source}")]
pub struct StoreError {
    path: PathBuf,
    #[source]
    source: redb::Error,
}

/// One durable write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    Put(String, Vec<u8>),
    Remove(String),
    /// Every key from the first (included) to the second (excluded).
    RemoveRange(String, String),
}

impl Write {
    /// Bytes of key and value.
    pub fn bytes(&self) -> usize {
        match self {
            Write::Put(k, v) => k.len() + v.len(),
            Write::Remove(k) => k.len(),
            Write::RemoveRange(a, b) => a.len() + b.len(),
        }
    }
}

pub struct Store {
    db: Database,
    path: PathBuf,
    /// Where deferred writes go (`Effect::PersistLater`): one file per key, so that a large
    /// snapshot is written beside the database, not inside one of its transactions (redb has
    /// one writer at a time, and the node's own commits would wait for it).
    blob_dir: PathBuf,
    /// The keys that have a file in `blob_dir`.
    blobs: Mutex<BTreeSet<String>>,
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

impl Store {
    /// Opens (or creates) the database at `path` and loads what it holds.
    pub fn open(path: &Path) -> Result<(Store, Stable), StoreError> {
        let err = |e: redb::Error| StoreError { path: path.to_path_buf(), source: e };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| err(redb::Error::Io(e)))?;
        }
        let db = Database::create(path).map_err(|e| err(e.into()))?;
        let mut stable = Stable::new();
        {
            let txn = db.begin_write().map_err(|e| err(e.into()))?;
            txn.open_table(TABLE).map_err(|e| err(e.into()))?;
            txn.commit().map_err(|e| err(e.into()))?;
        }
        let read = db.begin_read().map_err(|e| err(e.into()))?;
        let table = read.open_table(TABLE).map_err(|e| err(e.into()))?;
        for entry in table.iter().map_err(|e| err(e.into()))? {
            let (k, v) = entry.map_err(|e| err(e.into()))?;
            stable.put(k.value().to_string(), v.value().to_vec());
        }
        let blob_dir = path.with_extension("later");
        std::fs::create_dir_all(&blob_dir).map_err(|e| err(redb::Error::Io(e)))?;
        let mut blobs = BTreeSet::new();
        for f in std::fs::read_dir(&blob_dir).map_err(|e| err(redb::Error::Io(e)))? {
            let f = f.map_err(|e| err(redb::Error::Io(e)))?;
            let name = f.file_name().to_string_lossy().into_owned();
            match unhex_key(&name) {
                Some(key) => {
                    let value = std::fs::read(f.path()).map_err(|e| err(redb::Error::Io(e)))?;
                    stable.put(key.clone(), value);
                    blobs.insert(key);
                }
                // A write cut off by a crash (`.tmp`), or not ours.
                None => {
                    let _ = std::fs::remove_file(f.path());
                }
            }
        }
        Ok((Store { db, path: path.to_path_buf(), blob_dir, blobs: Mutex::new(blobs) }, stable))
    }

    /// Writes `value` under `key` durably, in a file of its own: to a temporary file, synced,
    /// renamed over the old one, and the directory synced. A crash leaves the old value or the
    /// new, never a mix. Safe to call from another thread than [`Store::apply`].
    pub fn put_later(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let err = |e: std::io::Error| StoreError { path: self.blob_dir.clone(), source: redb::Error::Io(e) };
        let name = hex_key(key);
        let tmp = self.blob_dir.join(format!("{name}.tmp"));
        let mut f = std::fs::File::create(&tmp).map_err(err)?;
        f.write_all(value).map_err(err)?;
        f.sync_all().map_err(err)?;
        std::fs::rename(&tmp, self.blob_dir.join(&name)).map_err(err)?;
        std::fs::File::open(&self.blob_dir).and_then(|d| d.sync_all()).map_err(err)?;
        self.blobs.lock().expect("blob keys lock").insert(key.to_string());
        Ok(())
    }

    /// Removes the files of the blob keys in `from..to` (or the key `from` when `to` is
    /// `None`); synced with the directory.
    fn remove_blobs(&self, from: &str, to: Option<&str>) -> Result<(), StoreError> {
        let err = |e: std::io::Error| StoreError { path: self.blob_dir.clone(), source: redb::Error::Io(e) };
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
            std::fs::File::open(&self.blob_dir).and_then(|d| d.sync_all()).map_err(err)?;
        }
        Ok(())
    }

    /// Applies `writes` in one durable transaction.
    pub fn apply(&self, writes: &[Write]) -> Result<(), StoreError> {
        let err = |e: redb::Error| StoreError { path: self.path.clone(), source: e };
        let txn = self.db.begin_write().map_err(|e| err(e.into()))?;
        {
            let mut table = txn.open_table(TABLE).map_err(|e| err(e.into()))?;
            for w in writes {
                match w {
                    Write::Put(k, v) => {
                        table.insert(k.as_str(), v.as_slice()).map_err(|e| err(e.into()))?;
                    }
                    Write::Remove(k) => {
                        table.remove(k.as_str()).map_err(|e| err(e.into()))?;
                    }
                    Write::RemoveRange(a, b) if a < b => {
                        table.retain_in(a.as_str()..b.as_str(), |_, _| false).map_err(|e| err(e.into()))?;
                    }
                    Write::RemoveRange(..) => {}
                }
            }
        }
        txn.commit().map_err(|e| err(e.into()))?;
        for w in writes {
            match w {
                Write::Remove(k) => self.remove_blobs(k, None)?,
                Write::RemoveRange(a, b) => self.remove_blobs(a, Some(b))?,
                Write::Put(..) => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_survive_reopening() {
        let dir = std::env::temp_dir().join(format!("agora-store-test-{}", std::process::id()));
        let path = dir.join("node-0.redb");
        {
            let (store, stable) = Store::open(&path).unwrap();
            assert!(stable.is_empty());
            store.apply(&[Write::Put("a".into(), vec![1]), Write::Put("b".into(), vec![2])]).unwrap();
            store.apply(&[Write::Remove("a".into())]).unwrap();
        }
        let (_, stable) = Store::open(&path).unwrap();
        assert_eq!(stable.get_bytes("b"), Some(&[2u8][..]));
        assert_eq!(stable.get_bytes("a"), None);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn deferred_writes_and_range_removals_survive_reopening() {
        let dir = std::env::temp_dir().join(format!("agora-store-later-{}", std::process::id()));
        let path = dir.join("node-0.redb");
        {
            let (store, _) = Store::open(&path).unwrap();
            let puts: Vec<Write> = (0..10).map(|i| Write::Put(format!("log/{i}"), vec![i])).collect();
            store.apply(&puts).unwrap();
            store.put_later("snap/1", &[7; 1000]).unwrap();
            store.put_later("snap/2", &[8; 10]).unwrap();
            store.put_later("snap/2", &[9; 10]).unwrap();
            store
                .apply(&[Write::RemoveRange("log/2".into(), "log/5".into()), Write::Remove("snap/1".into())])
                .unwrap();
        }
        // A write cut off by a crash leaves a temporary file: ignored and removed.
        std::fs::write(dir.join("node-0.later").join(format!("{}.tmp", hex_key("snap/3"))), [1, 2]).unwrap();
        let (store, stable) = Store::open(&path).unwrap();
        let keys: Vec<&str> = stable.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["log/0", "log/1", "log/5", "log/6", "log/7", "log/8", "log/9", "snap/2"]);
        assert_eq!(stable.get_bytes("snap/2"), Some(&[9u8; 10][..]), "the last write of a key wins");
        store.apply(&[Write::RemoveRange("snap/".into(), "snap0".into())]).unwrap();
        drop(store);
        let (_, stable) = Store::open(&path).unwrap();
        assert_eq!(stable.len(), 7, "range removals take deferred keys too");
        assert_eq!(std::fs::read_dir(dir.join("node-0.later")).unwrap().count(), 0);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn blob_names_round_trip() {
        for k in ["raft/snap/00000000000000ff", "", "é/x"] {
            assert_eq!(unhex_key(&hex_key(k)).as_deref(), Some(k));
        }
        assert_eq!(unhex_key("6a.tmp"), None);
        assert_eq!(unhex_key("zz"), None);
    }
}
