//! The one redb database, `bulwark.redb`, that is the source of truth.
//!
//! This module is the only one that names redb types. Domains declare [`Table`]s (a name, a key
//! type and a serde value type) and read and write them inside [`Store::read`] and [`Store::write`]
//! closures. Every table has the same physical shape (byte keys, JSON values), which is what lets
//! [`backup`] copy a database without knowing the domains and keeps values self-describing: a
//! field added later decodes from an old file through `#[serde(default)]`.
//!
//! redb is synchronous; async code calls [`Store::run`], which moves the work to the blocking pool.

mod backup;
mod codec;
mod migrate;

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

pub use backup::{backup_to_file, restore_from_file};
pub use codec::StoreKey;
pub use migrate::{Migration, SCHEMA_BASE};

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "bulwark.redb";

/// The physical shape of every table.
type Raw = redb::TableDefinition<'static, &'static [u8], &'static [u8]>;

/// One entry as a range iterator yields it.
type RawEntry<'a> = Result<
    (
        redb::AccessGuard<'a, &'static [u8]>,
        redb::AccessGuard<'a, &'static [u8]>,
    ),
    redb::StorageError,
>;

const META: Raw = redb::TableDefinition::new("meta");
const SEQUENCES: Raw = redb::TableDefinition::new("sequences");
const APP_MARKER: &str = "bulwark";

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path} is in use by a running Bulwark (stop it first, or use the HTTP API)")]
    Locked { path: PathBuf },
    #[error("{path} is not a Bulwark database: {reason}")]
    Foreign { path: PathBuf, reason: String },
    #[error("{path} was written by a newer Bulwark (schema {found}, this build knows {known}); upgrade Bulwark")]
    TooNew {
        path: PathBuf,
        found: u32,
        known: u32,
    },
    #[error("stored value in table '{table}' could not be decoded: {source}")]
    Decode {
        table: &'static str,
        source: serde_json::Error,
    },
    #[error("value for table '{table}' could not be encoded: {source}")]
    Encode {
        table: &'static str,
        source: serde_json::Error,
    },
    #[error("migration to schema {to} ({name}) failed: {reason}")]
    Migration {
        to: u32,
        name: &'static str,
        reason: String,
    },
    #[error("database error: {0}")]
    Db(#[from] redb::Error),
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("background task failed: {0}")]
    Join(String),
    #[error("the database is open read-only")]
    ReadOnly,
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Db(e.into()) }
        }
    )*};
}
from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::DatabaseError
);

/// A typed table: `K` is encoded order-preserving into bytes, `V` as JSON.
pub struct Table<K, V> {
    name: &'static str,
    _marker: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for Table<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K, V> Copy for Table<K, V> {}

impl<K: StoreKey, V: serde::Serialize + serde::de::DeserializeOwned> Table<K, V> {
    /// Declares a table. Names are global across domains: prefix them with the domain.
    pub const fn new(name: &'static str) -> Self {
        Table {
            name,
            _marker: PhantomData,
        }
    }

    /// The table's name in the file.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    fn raw(&self) -> Raw {
        redb::TableDefinition::new(self.name)
    }

    fn decode(&self, bytes: &[u8]) -> Result<V, StoreError> {
        serde_json::from_slice(bytes).map_err(|source| StoreError::Decode {
            table: self.name,
            source,
        })
    }

    fn encode(&self, v: &V) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(v).map_err(|source| StoreError::Encode {
            table: self.name,
            source,
        })
    }
}

/// Handle to the open database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Arc<Db>,
    path: Arc<PathBuf>,
    /// Per-table write counters, bumped after every committed transaction that wrote the table.
    /// In-memory caches of derived data (rendered lists, decision snapshots) key on them, so a
    /// cache can never miss a change made through the store.
    versions: Arc<std::sync::Mutex<std::collections::HashMap<&'static str, u64>>>,
}

impl Store {
    /// Opens (creating if needed) `DATA_DIR/bulwark.redb` and brings it to the newest schema.
    ///
    /// Refuses, without touching anything, a data dir that is a file, a non-empty directory
    /// without a database, a file that is not a redb database, a redb database of another
    /// application, and a database from a newer Bulwark.
    pub fn open(data_dir: &Path, migrations: &[Migration]) -> Result<Store, StoreError> {
        let io = |source| StoreError::Io {
            path: data_dir.to_path_buf(),
            source,
        };
        if data_dir.exists() && !data_dir.is_dir() {
            return Err(StoreError::Foreign {
                path: data_dir.to_path_buf(),
                reason: "the data dir is a file, not a directory".into(),
            });
        }
        let path = data_dir.join(DB_FILE);
        let fresh = !path.exists();
        if fresh && data_dir.is_dir() {
            let foreign: Vec<String> = std::fs::read_dir(data_dir)
                .map_err(io)?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| {
                    !n.starts_with('.') && !matches!(n.as_str(), "tls" | "search" | "secret.key")
                })
                .collect();
            if !foreign.is_empty() {
                return Err(StoreError::Foreign {
                    path: data_dir.to_path_buf(),
                    reason: format!(
                        "the directory is not empty ({}) and holds no {DB_FILE}; refusing to initialize it",
                        foreign.join(", ")
                    ),
                });
            }
        }
        std::fs::create_dir_all(data_dir).map_err(io)?;
        set_private(data_dir, 0o700);
        Self::open_file(&path, migrations)
    }

    /// Opens (creating if needed) the database file at `path` itself: for databases that live
    /// outside a data dir, such as a standalone vulnerability DB. The same marker, schema and
    /// migration rules apply.
    pub fn open_file(path: &Path, migrations: &[Migration]) -> Result<Store, StoreError> {
        let fresh = !path.exists();
        if fresh {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|source| StoreError::Io {
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
        }
        let db = open_db(path, fresh)?;
        let store = Store {
            db: Arc::new(Db::Rw(db)),
            path: Arc::new(path.to_path_buf()),
            versions: Arc::default(),
        };
        if fresh {
            store.write(|w| {
                w.put_meta("app", APP_MARKER)?;
                w.put_meta("schema_version", &SCHEMA_BASE.to_string())?;
                w.put_meta("created_at", &chrono::Utc::now().to_rfc3339())
            })?;
        } else {
            store.check_marker()?;
        }
        migrate::run(&store, migrations)?;
        Ok(store)
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check_marker(&self) -> Result<(), StoreError> {
        let marker = self.read(|r| r.meta("app"))?;
        if marker.as_deref() != Some(APP_MARKER) {
            return Err(StoreError::Foreign {
                path: self.path.to_path_buf(),
                reason: "it is a redb file without Bulwark's marker".into(),
            });
        }
        Ok(())
    }

    /// Runs `f` in one read transaction (a consistent snapshot).
    pub fn read<T>(
        &self,
        f: impl FnOnce(&ReadTx) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let tx = ReadTx {
            tx: self.db.begin_read()?,
        };
        f(&tx)
    }

    /// Runs `f` in one write transaction and commits it durably (fsync) if `f` succeeds; when this
    /// returns `Ok` the write survives a crash.
    pub fn write<T, E>(&self, f: impl FnOnce(&WriteTx) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let tx = WriteTx {
            tx: match self.db.as_ref() {
                Db::Rw(db) => db.begin_write().map_err(StoreError::from)?,
                Db::Ro(_) => return Err(StoreError::ReadOnly.into()),
            },
            touched: Default::default(),
        };
        let out = f(&tx)?;
        let touched = tx.touched.take();
        tx.tx.commit().map_err(StoreError::from)?;
        if let Ok(mut v) = self.versions.lock() {
            for t in touched {
                *v.entry(t).or_default() += 1;
            }
        }
        Ok(out)
    }

    /// [`Store::version`] of several tables by name, read together.
    pub fn versions(&self, tables: &[&str]) -> Vec<u64> {
        match self.versions.lock() {
            Ok(v) => tables
                .iter()
                .map(|t| v.get(t).copied().unwrap_or(0))
                .collect(),
            Err(_) => vec![u64::MAX; tables.len()],
        }
    }

    /// How many committed transactions have written `table` since this process opened the
    /// store. Equal numbers mean the table has not changed in between.
    pub fn version<K, V>(&self, table: &Table<K, V>) -> u64 {
        self.versions
            .lock()
            .map(|v| v.get(table.name).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Runs blocking store work off the async reactor.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Store) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| E::from(StoreError::Join(e.to_string())))?
    }

    /// The schema version recorded in the file.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        Ok(self
            .read(|r| r.meta("schema_version"))?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }
}

/// The database, writable or (for tools beside a running appliance) read-only.
pub(crate) enum Db {
    Rw(redb::Database),
    Ro(redb::ReadOnlyDatabase),
}

impl Db {
    fn begin_read(&self) -> Result<redb::ReadTransaction, redb::TransactionError> {
        match self {
            Db::Rw(d) => d.begin_read(),
            Db::Ro(d) => d.begin_read(),
        }
    }
}

impl Store {
    /// Opens `DATA_DIR/bulwark.redb` read-only; works while the appliance runs (it shares the
    /// file in single-writer mode). Writes fail with [`StoreError::ReadOnly`]; no migration runs,
    /// so a file at an older schema is refused.
    pub fn open_read_only(data_dir: &Path, migrations: &[Migration]) -> Result<Store, StoreError> {
        Self::open_file_read_only(&data_dir.join(DB_FILE), migrations)
    }

    /// Like [`Store::open_read_only`] for a database file anywhere (a standalone vulnerability
    /// database that several scans read at once).
    pub fn open_file_read_only(path: &Path, migrations: &[Migration]) -> Result<Store, StoreError> {
        let path = path.to_path_buf();
        if !path.is_file() {
            return Err(StoreError::Foreign {
                path,
                reason: "no database file there".into(),
            });
        }
        let db = redb::Builder::new()
            .set_concurrency_mode(redb::ConcurrencyMode::SingleWriter)
            .open_read_only(&path)
            .map_err(|e| classify_open_error(&path, e))?;
        let store = Store {
            db: Arc::new(Db::Ro(db)),
            path: Arc::new(path),
            versions: Arc::default(),
        };
        store.check_marker()?;
        let (found, known) = (store.schema_version()?, migrate::latest(migrations));
        if found != known {
            return Err(StoreError::Foreign {
                path: store.path().to_path_buf(),
                reason: format!("schema {found}, this build needs {known}: start the appliance once to migrate it"),
            });
        }
        Ok(store)
    }
}

fn open_db(path: &Path, fresh: bool) -> Result<redb::Database, StoreError> {
    let mut b = redb::Builder::new();
    // A bounded cache keeps idle RSS small; redb's default is 1 GiB. SingleWriter lets
    // `bulwark backup` open the file read-only while the appliance is running.
    b.set_cache_size(64 * 1024 * 1024)
        .set_concurrency_mode(redb::ConcurrencyMode::SingleWriter);
    let res = if fresh { b.create(path) } else { b.open(path) };
    let db = res.map_err(|e| classify_open_error(path, e))?;
    set_private(path, 0o600);
    Ok(db)
}

fn classify_open_error(path: &Path, e: redb::DatabaseError) -> StoreError {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen | redb::DatabaseError::LockProtocolMismatch => {
            StoreError::Locked {
                path: path.to_path_buf(),
            }
        }
        // redb reports "not a redb file" (bad magic) as InvalidData.
        redb::DatabaseError::Storage(redb::StorageError::Io(io))
            if io.kind() != std::io::ErrorKind::InvalidData =>
        {
            StoreError::Io {
                path: path.to_path_buf(),
                source: io,
            }
        }
        other => StoreError::Foreign {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    }
}

fn set_private(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    // Best effort: on filesystems without Unix modes this fails harmlessly.
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}

/// A read transaction: a consistent snapshot of every table.
pub struct ReadTx {
    tx: redb::ReadTransaction,
}

/// A write transaction; see [`Store::write`].
pub struct WriteTx {
    tx: redb::WriteTransaction,
    touched: std::cell::RefCell<std::collections::BTreeSet<&'static str>>,
}

/// Direction and bounds of a scan.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scan<'a> {
    /// Smallest key (inclusive), encoded.
    pub from: Option<&'a [u8]>,
    /// Largest key (exclusive), encoded.
    pub to: Option<&'a [u8]>,
    /// Newest (largest key) first.
    pub reverse: bool,
}

impl ReadTx {
    /// One value by key.
    pub fn get<K: StoreKey, V: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        table: &Table<K, V>,
        key: &K,
    ) -> Result<Option<V>, StoreError> {
        let t = match self.tx.open_table(table.raw()) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        match t.get(key.encode().as_slice())? {
            Some(v) => Ok(Some(table.decode(v.value())?)),
            None => Ok(None),
        }
    }

    /// Visits entries in key order (or reverse) until `f` returns `false`.
    pub fn scan<K: StoreKey, V: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        table: &Table<K, V>,
        scan: Scan<'_>,
        mut f: impl FnMut(K, V) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let t = match self.tx.open_table(table.raw()) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let range = match (scan.from, scan.to) {
            (Some(a), Some(b)) => t.range::<&[u8]>(a..b)?,
            (Some(a), None) => t.range::<&[u8]>(a..)?,
            (None, Some(b)) => t.range::<&[u8]>(..b)?,
            (None, None) => t.range::<&[u8]>(..)?,
        };
        let mut visit = |entry: RawEntry<'_>| {
            let (k, v) = entry?;
            let Some(key) = K::decode(k.value()) else {
                // A key this build cannot parse is skipped rather than aborting the whole scan.
                tracing::warn!(table = table.name, "skipping entry with an undecodable key");
                return Ok(true);
            };
            f(key, table.decode(v.value())?)
        };
        if scan.reverse {
            for e in range.rev() {
                if !visit(e)? {
                    break;
                }
            }
        } else {
            for e in range {
                if !visit(e)? {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Every entry, in key order.
    pub fn all<K: StoreKey, V: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        table: &Table<K, V>,
    ) -> Result<Vec<(K, V)>, StoreError> {
        let mut out = Vec::new();
        self.scan(table, Scan::default(), |k, v| {
            out.push((k, v));
            Ok(true)
        })?;
        Ok(out)
    }

    /// Number of entries.
    pub fn len<K: StoreKey, V: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        table: &Table<K, V>,
    ) -> Result<u64, StoreError> {
        match self.tx.open_table(table.raw()) {
            Ok(t) => Ok(t.len()?),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let t = match self.tx.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(t.get(key.as_bytes())?
            .map(|v| String::from_utf8_lossy(v.value()).into_owned()))
    }
}

impl WriteTx {
    /// One value by key, as this transaction sees it.
    pub fn get<K: StoreKey, V: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        table: &Table<K, V>,
        key: &K,
    ) -> Result<Option<V>, StoreError> {
        let t = self.tx.open_table(table.raw())?;
        let out = match t.get(key.encode().as_slice())? {
            Some(v) => Some(table.decode(v.value())?),
            None => None,
        };
        Ok(out)
    }

    /// Inserts or replaces a value.
    pub fn put<K: StoreKey, V: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        table: &Table<K, V>,
        key: &K,
        value: &V,
    ) -> Result<(), StoreError> {
        let bytes = table.encode(value)?;
        self.touched.borrow_mut().insert(table.name);
        let mut t = self.tx.open_table(table.raw())?;
        t.insert(key.encode().as_slice(), bytes.as_slice())?;
        Ok(())
    }

    /// Removes a key; returns whether it was present.
    pub fn delete<K: StoreKey, V: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        table: &Table<K, V>,
        key: &K,
    ) -> Result<bool, StoreError> {
        self.touched.borrow_mut().insert(table.name);
        let mut t = self.tx.open_table(table.raw())?;
        let existed = t.remove(key.encode().as_slice())?.is_some();
        Ok(existed)
    }

    /// Deletes every entry for which `keep` returns `false`; returns how many went.
    pub fn retain<K: StoreKey, V: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        table: &Table<K, V>,
        mut keep: impl FnMut(&K, &V) -> bool,
    ) -> Result<u64, StoreError> {
        let mut doomed = Vec::new();
        {
            let t = self.tx.open_table(table.raw())?;
            for e in t.iter()? {
                let (k, v) = e?;
                let (Some(key), Ok(val)) = (K::decode(k.value()), table.decode(v.value())) else {
                    continue;
                };
                if !keep(&key, &val) {
                    doomed.push(k.value().to_vec());
                }
            }
        }
        if !doomed.is_empty() {
            self.touched.borrow_mut().insert(table.name);
        }
        let mut t = self.tx.open_table(table.raw())?;
        for k in &doomed {
            t.remove(k.as_slice())?;
        }
        Ok(doomed.len() as u64)
    }

    /// Every entry, in key order, as this transaction sees it.
    pub fn all<K: StoreKey, V: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        table: &Table<K, V>,
    ) -> Result<Vec<(K, V)>, StoreError> {
        let t = self.tx.open_table(table.raw())?;
        let mut out = Vec::new();
        for e in t.iter()? {
            let (k, v) = e?;
            if let Some(key) = K::decode(k.value()) {
                out.push((key, table.decode(v.value())?));
            }
        }
        Ok(out)
    }

    /// The first `n` keys in key order (the oldest, for tables keyed by increasing ids).
    pub fn first_keys<K: StoreKey, V: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        table: &Table<K, V>,
        n: usize,
    ) -> Result<Vec<K>, StoreError> {
        let t = self.tx.open_table(table.raw())?;
        let mut out = Vec::new();
        for e in t.iter()? {
            if out.len() >= n {
                break;
            }
            let (k, _) = e?;
            if let Some(key) = K::decode(k.value()) {
                out.push(key);
            }
        }
        Ok(out)
    }

    /// Number of entries, as this transaction sees them.
    pub fn len<K: StoreKey, V: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        table: &Table<K, V>,
    ) -> Result<u64, StoreError> {
        Ok(self.tx.open_table(table.raw())?.len()?)
    }

    /// Allocates the next id of the named sequence (1, 2, 3, ...). Ids are never reused.
    pub fn next_id(&self, sequence: &str) -> Result<u64, StoreError> {
        let mut t = self.tx.open_table(SEQUENCES)?;
        let current = t
            .get(sequence.as_bytes())?
            .and_then(|v| <[u8; 8]>::try_from(v.value()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0);
        let next = current + 1;
        t.insert(sequence.as_bytes(), next.to_be_bytes().as_slice())?;
        Ok(next)
    }

    fn put_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let mut t = self.tx.open_table(META)?;
        t.insert(key.as_bytes(), value.as_bytes())?;
        Ok(())
    }

    fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let t = self.tx.open_table(META)?;
        let v = t
            .get(key.as_bytes())?
            .map(|v| String::from_utf8_lossy(v.value()).into_owned());
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Table<u64, serde_json::Value> = Table::new("test_values");

    #[test]
    fn round_trip_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &[]).unwrap();
        store
            .write(|w| {
                let id = w.next_id("t")?;
                w.put(&T, &id, &serde_json::json!({"a": id}))
            })
            .unwrap();
        drop(store);
        let store = Store::open(dir.path(), &[]).unwrap();
        let v = store.read(|r| r.get(&T, &1)).unwrap().unwrap();
        assert_eq!(v["a"], 1);
        assert_eq!(store.read(|r| r.len(&T)).unwrap(), 1);
        // Versions count committed writes per table; failed transactions do not count.
        let before = store.version(&T);
        store
            .write(|w| w.put(&T, &2, &serde_json::json!(2)))
            .unwrap();
        assert_eq!(store.version(&T), before + 1);
        let failed: Result<(), StoreError> = store.write(|w| {
            w.put(&T, &3, &serde_json::json!(3))?;
            Err(StoreError::Join("rolled back".into()))
        });
        assert!(failed.is_err());
        assert_eq!(store.version(&T), before + 1);
        assert_eq!(store.read(|r| r.get(&T, &3)).unwrap(), None);
        store.read(|_| Ok(())).unwrap();
        assert_eq!(store.version(&T), before + 1, "reads do not count");
    }

    #[test]
    fn refuses_foreign_things() {
        let dir = tempfile::tempdir().unwrap();
        // A file given as the data dir.
        let f = dir.path().join("file");
        std::fs::write(&f, b"x").unwrap();
        assert!(matches!(
            Store::open(&f, &[]),
            Err(StoreError::Foreign { .. })
        ));
        // A non-empty directory without a database.
        let d = dir.path().join("etc");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("passwd"), b"root:x:0:0").unwrap();
        assert!(matches!(
            Store::open(&d, &[]),
            Err(StoreError::Foreign { .. })
        ));
        assert_eq!(std::fs::read(d.join("passwd")).unwrap(), b"root:x:0:0");
        // Garbage where the database should be: refused and left alone.
        let g = dir.path().join("garbage");
        std::fs::create_dir(&g).unwrap();
        std::fs::write(g.join(DB_FILE), vec![0x5a; 10_000]).unwrap();
        let e = Store::open(&g, &[]).err().expect("garbage must be refused");
        assert!(matches!(e, StoreError::Foreign { .. }), "{e}");
        assert_eq!(std::fs::read(g.join(DB_FILE)).unwrap(), vec![0x5a; 10_000]);
        // A redb file of another application.
        let o = dir.path().join("other");
        std::fs::create_dir(&o).unwrap();
        {
            let db = redb::Database::create(o.join(DB_FILE)).unwrap();
            let w = db.begin_write().unwrap();
            w.open_table(Raw::new("theirs"))
                .unwrap()
                .insert(b"k".as_slice(), b"v".as_slice())
                .unwrap();
            w.commit().unwrap();
        }
        let e = Store::open(&o, &[])
            .err()
            .expect("foreign redb must be refused");
        assert!(e.to_string().contains("marker"), "{e}");
    }

    #[test]
    fn read_only_beside_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let w = Store::open(dir.path(), &[]).unwrap();
        w.write(|tx| tx.put(&T, &7, &serde_json::json!("seven")))
            .unwrap();
        let r = Store::open_read_only(dir.path(), &[]).unwrap();
        assert_eq!(
            r.read(|tx| tx.get(&T, &7)).unwrap(),
            Some(serde_json::json!("seven"))
        );
        let denied: Result<(), StoreError> = r.write(|tx| tx.put(&T, &8, &serde_json::json!(8)));
        assert!(matches!(denied, Err(StoreError::ReadOnly)));
        w.write(|tx| tx.put(&T, &9, &serde_json::json!("nine")))
            .unwrap();
        assert_eq!(
            r.read(|tx| tx.get(&T, &9)).unwrap(),
            Some(serde_json::json!("nine")),
            "follows the writer's commits"
        );
    }

    #[test]
    fn second_writer_is_told_it_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        let _a = Store::open(dir.path(), &[]).unwrap();
        let e = Store::open(dir.path(), &[])
            .err()
            .expect("second open must fail");
        assert!(matches!(e, StoreError::Locked { .. }), "{e}");
    }
}
