//! Durable storage of what a node persists: one redb database per node.
//!
//! On start the whole table is loaded into a [`Stable`] for the protocol's `Setup::build`.
//! Each step's persist effects are written in one transaction, committed (fsync) before any of
//! that step's messages are handed to the network.

use agora_core::Stable;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::{Path, PathBuf};

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
}

pub struct Store {
    db: Database,
    path: PathBuf,
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
        Ok((Store { db, path: path.to_path_buf() }, stable))
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
                }
            }
        }
        txn.commit().map_err(|e| err(e.into()))
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
}
