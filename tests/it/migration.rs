//! A database written by schema 1 (before users were indexed by email, and before several
//! fields existed) opens with this build: the migration runs, old values decode with defaults,
//! and the old admin can still sign in.
//!
//! The fixture `tests/fixtures/store/schema-1.redb` is committed. It was written by
//! `write_schema1_fixture` below, which writes the schema-1 layout with raw redb calls and
//! hand-written JSON (not with today's types, which would defeat the purpose). Regenerate it
//! only if the file is lost: `BULWARK_WRITE_FIXTURES=1 cargo test migration`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bulwark::auth;

type Raw = redb::TableDefinition<'static, &'static [u8], &'static [u8]>;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store/schema-1.redb")
}

/// Writes a schema-1 database. The password of `Old.Admin@Example.COM` is `old-password-1`.
fn write_schema1_fixture(path: &Path) {
    let _ = std::fs::remove_file(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let db = redb::Database::create(path).unwrap();
    let w = db.begin_write().unwrap();
    {
        let mut meta = w.open_table(Raw::new("meta")).unwrap();
        meta.insert(b"app".as_slice(), b"bulwark".as_slice())
            .unwrap();
        meta.insert(b"schema_version".as_slice(), b"1".as_slice())
            .unwrap();
        meta.insert(
            b"created_at".as_slice(),
            b"2026-01-05T10:00:00+00:00".as_slice(),
        )
        .unwrap();
        let mut seq = w.open_table(Raw::new("sequences")).unwrap();
        for (name, v) in [("users", 1u64), ("clusters", 1), ("audit_log", 1)] {
            seq.insert(name.as_bytes(), v.to_be_bytes().as_slice())
                .unwrap();
        }
        // Schema 1 users: mixed-case email, no created_at/last_login, no email index table.
        let hash = {
            use argon2::password_hash::{PasswordHasher, SaltString};
            let salt = SaltString::encode_b64(b"schema-1-fixture").unwrap();
            argon2::Argon2::default()
                .hash_password(b"old-password-1", &salt)
                .unwrap()
                .to_string()
        };
        let user = format!(
            r#"{{"id":1,"email":"Old.Admin@Example.COM","role":"super-admin","password_hash":"{hash}","disabled":false}}"#
        );
        w.open_table(Raw::new("auth_users"))
            .unwrap()
            .insert(1u64.to_be_bytes().as_slice(), user.as_bytes())
            .unwrap();
        // Schema 1 clusters: only a name and timestamps.
        let cluster = r#"{"id":1,"name":"legacy","created_at":"2026-01-05T10:00:00Z","updated_at":"2026-01-05T10:00:00Z"}"#;
        w.open_table(Raw::new("clusters"))
            .unwrap()
            .insert(1u64.to_be_bytes().as_slice(), cluster.as_bytes())
            .unwrap();
        w.open_table(Raw::new("clusters_by_name"))
            .unwrap()
            .insert(b"legacy".as_slice(), b"1".as_slice())
            .unwrap();
        // Schema 1 audit entries had no detail, source_ip or ok.
        let entry = r#"{"id":1,"at":"2026-01-05T10:00:00Z","actor":"cli","action":"cluster.create","target":"cluster:1"}"#;
        w.open_table(Raw::new("audit_log"))
            .unwrap()
            .insert(1u64.to_be_bytes().as_slice(), entry.as_bytes())
            .unwrap();
    }
    w.commit().unwrap();
}

#[test]
fn schema_1_file_migrates_and_still_works() {
    if std::env::var_os("BULWARK_WRITE_FIXTURES").is_some() {
        write_schema1_fixture(&fixture());
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::copy(fixture(), data.join("bulwark.redb"))
        .expect("fixture tests/fixtures/store/schema-1.redb is missing");
    let store = bulwark::app::open_store(&data).unwrap();
    assert_eq!(store.schema_version().unwrap(), 5);
    let policies = bulwark::compliance::service::list_policies(&store).unwrap();
    assert_eq!(
        policies.len(),
        1,
        "the default policy is seeded by migration 3"
    );
    let scanners: Vec<&str> = policies[0]
        .scanners
        .iter()
        .map(|r| r.scanner.as_str())
        .collect();
    assert_eq!(scanners, vec!["trivy", "bulwark"], "migration 4");
    // Old user: email normalized and indexed, missing fields defaulted, password still valid.
    let u = auth::find_user(&store, "old.admin@example.com")
        .unwrap()
        .expect("migrated user is found by email");
    assert_eq!(u.email, "old.admin@example.com");
    assert!(u.created_at.is_some(), "migration fills created_at");
    let t = auth::Throttle::new(5, Duration::from_secs(60));
    let ok = auth::login(
        &store,
        &t,
        Duration::from_secs(60),
        "OLD.ADMIN@example.com",
        "old-password-1",
        "127.0.0.1",
    );
    assert!(ok.is_ok(), "the schema-1 admin can sign in");
    // Old cluster: fields added later take their defaults.
    let c = bulwark::clusters::by_name(&store, "legacy")
        .unwrap()
        .unwrap();
    assert_eq!(c.description, "");
    assert!(c.tags.is_empty());
    assert!(!c.enforcement);
    assert_eq!(c.failure_mode, bulwark::clusters::FailureMode::FailOpen);
    // Old audit entry decodes; new ids continue after the old ones.
    let log = bulwark::audit::list(&store, &Default::default())
        .unwrap()
        .unwrap();
    let old = log.iter().find(|e| e.id == 1).unwrap();
    assert!(old.ok && old.source_ip.is_empty());
    assert!(log.iter().any(|e| e.action == "login.success" && e.id > 1));
    // Opening again does not migrate twice.
    drop(store);
    let store = bulwark::app::open_store(&data).unwrap();
    assert_eq!(auth::list_users(&store).unwrap().len(), 1);
}
