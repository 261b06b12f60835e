//! Consistent online backup and offline restore.
//!
//! The appliance opens its file in redb's single-writer mode, so `bulwark backup` can open the
//! same file read-only from another process while the appliance keeps writing. A backup copies
//! every table of one read snapshot into a new file, written beside the target and renamed into
//! place, so a half-written backup never looks like a good one.

use std::path::{Path, PathBuf};

use redb::{ReadableDatabase, ReadableTable, TableHandle};

use super::{Migration, Store, StoreError, APP_MARKER, DB_FILE, META};

/// What a backup or restore did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackupReport {
    /// The file written.
    pub path: PathBuf,
    /// Tables copied.
    pub tables: usize,
    /// Entries copied over all tables.
    pub entries: u64,
    /// Schema version of the copy.
    pub schema_version: u32,
}

/// Copies the database of `data_dir` (running appliance or not) into `dest`.
pub fn backup_to_file(data_dir: &Path, dest: &Path) -> Result<BackupReport, StoreError> {
    let src = data_dir.join(DB_FILE);
    if !src.is_file() {
        return Err(StoreError::Foreign {
            path: src,
            reason: "no database file there".into(),
        });
    }
    let db = redb::Builder::new()
        .set_concurrency_mode(redb::ConcurrencyMode::SingleWriter)
        .open_read_only(&src)
        .map_err(|e| super::classify_open_error(&src, e))?;
    copy_snapshot(&db, dest)
}

impl Store {
    /// Copies this open database into `dest` (used by the HTTP backup endpoint).
    pub fn backup_to(&self, dest: &Path) -> Result<BackupReport, StoreError> {
        match self.db.as_ref() {
            super::Db::Rw(db) => copy_snapshot(db, dest),
            super::Db::Ro(db) => copy_snapshot(db, dest),
        }
    }
}

/// Entries and bytes copied per transaction: a backup of any size is written in pieces, so it
/// never holds more than one piece in memory.
const BATCH_ENTRIES: usize = 20_000;
const BATCH_BYTES: usize = 16 << 20;

fn copy_snapshot(db: &impl ReadableDatabase, dest: &Path) -> Result<BackupReport, StoreError> {
    let io = |source| StoreError::Io {
        path: dest.to_path_buf(),
        source,
    };
    let tmp = tmp_path(dest);
    let _ = std::fs::remove_file(&tmp);
    let snapshot = db.begin_read()?;
    // A small cache: the copy is written once and read by nobody.
    let out = redb::Builder::new().set_cache_size(16 << 20).create(&tmp)?;
    let mut tables = 0;
    let mut entries = 0u64;
    let mut schema_version = 0;
    let mut batch: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut batch_bytes = 0;
    for handle in snapshot.list_tables()? {
        let name = handle.name().to_string();
        let def: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new(&name);
        let from = snapshot.open_table(def)?;
        // Every table exists in the copy, even an empty one.
        write_batch(&out, def, &mut batch)?;
        for e in from.iter()? {
            let (k, v) = e?;
            if name == "meta" && k.value() == b"schema_version" {
                schema_version = String::from_utf8_lossy(v.value()).parse().unwrap_or(0);
            }
            batch_bytes += k.value().len() + v.value().len();
            batch.push((k.value().to_vec(), v.value().to_vec()));
            entries += 1;
            if batch.len() >= BATCH_ENTRIES || batch_bytes >= BATCH_BYTES {
                write_batch(&out, def, &mut batch)?;
                batch_bytes = 0;
            }
        }
        write_batch(&out, def, &mut batch)?;
        batch_bytes = 0;
        tables += 1;
    }
    // The last commit makes every earlier one durable.
    let w = out.begin_write()?;
    w.commit()?;
    drop(out);
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    std::fs::rename(&tmp, dest).map_err(io)?;
    Ok(BackupReport {
        path: dest.to_path_buf(),
        tables,
        entries,
        schema_version,
    })
}

/// Writes `batch` into table `def` of `out` in one transaction (not yet durable: the copy's
/// last commit is) and empties it.
fn write_batch(
    out: &redb::Database,
    def: redb::TableDefinition<&[u8], &[u8]>,
    batch: &mut Vec<(Vec<u8>, Vec<u8>)>,
) -> Result<(), StoreError> {
    let mut w = out.begin_write()?;
    // Only fails for a transaction that already wrote; this one has not.
    let _ = w.set_durability(redb::Durability::None);
    {
        let mut to = w.open_table(def)?;
        for (k, v) in batch.drain(..) {
            to.insert(k.as_slice(), v.as_slice())?;
        }
    }
    w.commit()?;
    Ok(())
}

/// Replaces the database of a stopped appliance with `backup`. The current file is kept beside
/// it as `bulwark.redb.pre-restore-TIMESTAMP`. Refuses if the appliance is running, if `backup` is
/// not a Bulwark database, or if it comes from a newer Bulwark.
pub fn restore_from_file(
    backup: &Path,
    data_dir: &Path,
    migrations: &[Migration],
) -> Result<BackupReport, StoreError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Io { path, source }
    };
    // Validate the backup fully before touching the data dir.
    let (tables, entries, schema_version) = {
        let db = redb::Builder::new()
            .open_read_only(backup)
            .map_err(|e| super::classify_open_error(backup, e))?;
        let r = db.begin_read()?;
        let meta = r.open_table(META).map_err(|_| StoreError::Foreign {
            path: backup.to_path_buf(),
            reason: "it has no meta table".into(),
        })?;
        let marker = meta.get(b"app".as_slice())?.map(|v| v.value().to_vec());
        if marker.as_deref() != Some(APP_MARKER.as_bytes()) {
            return Err(StoreError::Foreign {
                path: backup.to_path_buf(),
                reason: "it is a redb file without Bulwark's marker".into(),
            });
        }
        let version: u32 = meta
            .get(b"schema_version".as_slice())?
            .and_then(|v| String::from_utf8_lossy(v.value()).parse().ok())
            .unwrap_or(0);
        let known = super::migrate::latest(migrations);
        if version > known {
            return Err(StoreError::TooNew {
                path: backup.to_path_buf(),
                found: version,
                known,
            });
        }
        let mut tables = 0;
        let mut entries = 0;
        for h in r.list_tables()? {
            let name = h.name().to_string();
            let t = r.open_table(redb::TableDefinition::<&[u8], &[u8]>::new(&name))?;
            entries += redb::ReadableTableMetadata::len(&t)?;
            tables += 1;
        }
        (tables, entries, version)
    };
    std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
    let live = data_dir.join(DB_FILE);
    if live.exists() {
        // Fails with Locked while the appliance runs.
        let db = super::open_db(&live, false)?;
        drop(db);
    }
    let tmp = tmp_path(&live);
    std::fs::copy(backup, &tmp).map_err(io(&tmp))?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io(&tmp))?;
    if live.exists() {
        let keep = data_dir.join(format!(
            "{DB_FILE}.pre-restore-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
        ));
        std::fs::rename(&live, &keep).map_err(io(&live))?;
    }
    std::fs::rename(&tmp, &live).map_err(io(&live))?;
    super::set_private(&live, 0o600);
    Ok(BackupReport {
        path: live,
        tables,
        entries,
        schema_version,
    })
}

fn tmp_path(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::super::Table;
    use super::*;

    const T: Table<u64, String> = Table::new("backup_test");

    #[test]
    fn backup_while_open_then_restore() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let store = Store::open(&data, &[]).unwrap();
        store.write(|w| w.put(&T, &1, &"one".to_string())).unwrap();
        // The store is still open: this is the online path.
        let file = dir.path().join("b.redb");
        let rep = backup_to_file(&data, &file).unwrap();
        assert!(rep.entries >= 1);
        store.write(|w| w.put(&T, &2, &"two".to_string())).unwrap();
        // Restore refuses while the appliance holds the file.
        assert!(matches!(
            restore_from_file(&file, &data, &[]),
            Err(StoreError::Locked { .. })
        ));
        drop(store);
        restore_from_file(&file, &data, &[]).unwrap();
        let store = Store::open(&data, &[]).unwrap();
        assert_eq!(
            store.read(|r| r.get(&T, &1)).unwrap().as_deref(),
            Some("one")
        );
        assert_eq!(
            store.read(|r| r.get(&T, &2)).unwrap(),
            None,
            "restore returns to the backup's state"
        );
        // A non-Bulwark file is refused and changes nothing.
        let junk = dir.path().join("junk");
        std::fs::write(&junk, b"not a database").unwrap();
        drop(store);
        assert!(restore_from_file(&junk, &data, &[]).is_err());
        let store = Store::open(&data, &[]).unwrap();
        assert_eq!(
            store.read(|r| r.get(&T, &1)).unwrap().as_deref(),
            Some("one")
        );
    }
}
