//! Forward-only schema migrations.
//!
//! A new file starts at [`SCHEMA_BASE`]; each [`Migration`] moves it to `to` inside one write
//! transaction that also records the new version, so a crash mid-migration leaves the old version
//! intact and the migration runs again on the next start. Domains supply their migrations (store
//! knows none of them); `app::migrations()` lists them all in order.

use super::{Store, StoreError, WriteTx};

/// The schema version a freshly created file starts at, before any migration.
pub const SCHEMA_BASE: u32 = 1;

/// One step forward.
pub struct Migration {
    /// The schema version after this step.
    pub to: u32,
    /// What it does, for logs and errors.
    pub name: &'static str,
    /// The step itself; runs inside the transaction that bumps the version.
    pub run: fn(&WriteTx) -> Result<(), StoreError>,
}

/// The newest version the given migrations lead to.
pub fn latest(migrations: &[Migration]) -> u32 {
    migrations
        .iter()
        .map(|m| m.to)
        .max()
        .unwrap_or(SCHEMA_BASE)
        .max(SCHEMA_BASE)
}

pub(super) fn run(store: &Store, migrations: &[Migration]) -> Result<(), StoreError> {
    let known = latest(migrations);
    let current = store.schema_version()?;
    if current > known {
        return Err(StoreError::TooNew {
            path: store.path().to_path_buf(),
            found: current,
            known,
        });
    }
    let mut pending: Vec<&Migration> = migrations.iter().filter(|m| m.to > current).collect();
    pending.sort_by_key(|m| m.to);
    for m in pending {
        store.write(|w| {
            // Re-check inside the transaction: the version is the source of truth.
            let now: u32 = w
                .meta("schema_version")?
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if now >= m.to {
                return Ok(());
            }
            (m.run)(w).map_err(|e| StoreError::Migration {
                to: m.to,
                name: m.name,
                reason: e.to_string(),
            })?;
            w.put_meta("schema_version", &m.to.to_string())
        })?;
        tracing::info!(to = m.to, name = m.name, "store migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Table;
    use super::*;

    const T: Table<String, u64> = Table::new("migrate_test");

    fn bump(w: &WriteTx) -> Result<(), StoreError> {
        let n = w.get(&T, &"runs".to_string())?.unwrap_or(0);
        w.put(&T, &"runs".to_string(), &(n + 1))
    }

    #[test]
    fn runs_each_step_once_and_refuses_newer_files() {
        let dir = tempfile::tempdir().unwrap();
        let steps = [
            Migration {
                to: 2,
                name: "a",
                run: bump,
            },
            Migration {
                to: 3,
                name: "b",
                run: bump,
            },
        ];
        let s = Store::open(dir.path(), &steps).unwrap();
        assert_eq!(s.schema_version().unwrap(), 3);
        drop(s);
        let s = Store::open(dir.path(), &steps).unwrap();
        assert_eq!(s.read(|r| r.get(&T, &"runs".to_string())).unwrap(), Some(2));
        drop(s);
        let e = Store::open(dir.path(), &steps[..1])
            .err()
            .expect("older build must refuse");
        assert!(
            matches!(
                e,
                StoreError::TooNew {
                    found: 3,
                    known: 2,
                    ..
                }
            ),
            "{e}"
        );
    }
}
