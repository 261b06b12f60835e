//! Encryption of stored secrets (registry passwords, and later LDAP bind passwords, database
//! credentials): AES-256-GCM with a key kept beside the database in `DATA_DIR/secret.key`
//! (32 random bytes, mode 0600, created on first start).
//!
//! The key is deliberately not in the database file: a copied `bulwark.redb` (or a backup of it)
//! leaks no secret on its own. The price is that a restore onto another machine needs the key
//! too; `bulwark backup` writes it next to the backup for that reason.
//!
//! A sealed value is `v1:` + base64(nonce ‖ ciphertext ‖ tag). The caller passes a context
//! (e.g. `registry:7`) that is authenticated with it, so a sealed value copied into another
//! record does not open there.

use std::io::Write;
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;

/// The key file's name inside the data directory.
pub const KEY_FILE: &str = "secret.key";

/// Why a secret could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: the key file must hold exactly 32 bytes")]
    BadKey(PathBuf),
    #[error("a stored secret does not open with this appliance's key (was secret.key replaced?)")]
    Open,
    #[error("encryption failed")]
    Seal,
}

/// Seals and opens secrets with the appliance's key.
pub struct Sealer {
    key: LessSafeKey,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// Loads `DATA_DIR/secret.key`, creating it (0600) when missing.
    pub fn open(data_dir: &Path) -> Result<Sealer, SecretError> {
        let path = data_dir.join(KEY_FILE);
        let io = |source| SecretError::Io {
            path: path.clone(),
            source,
        };
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                SystemRandom::new()
                    .fill(&mut key)
                    .map_err(|_| SecretError::Seal)?;
                use std::os::unix::fs::OpenOptionsExt;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(io)?;
                f.write_all(&key).map_err(io)?;
                f.sync_all().map_err(io)?;
                key.to_vec()
            }
            Err(e) => return Err(io(e)),
        };
        Self::from_key(&bytes).ok_or(SecretError::BadKey(path))
    }

    /// A sealer over a 32-byte key.
    pub fn from_key(key: &[u8]) -> Option<Sealer> {
        if key.len() != 32 {
            return None;
        }
        let unbound = UnboundKey::new(&AES_256_GCM, key).ok()?;
        Some(Sealer {
            key: LessSafeKey::new(unbound),
        })
    }

    /// Encrypts `plain`, bound to `context`.
    pub fn seal(&self, context: &str, plain: &str) -> Result<String, SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| SecretError::Seal)?;
        let mut buf = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut buf,
            )
            .map_err(|_| SecretError::Seal)?;
        let mut out = nonce.to_vec();
        out.extend(buf);
        Ok(format!(
            "v1:{}",
            base64::engine::general_purpose::STANDARD.encode(out)
        ))
    }

    /// Decrypts what [`Sealer::seal`] made for the same `context`.
    pub fn open_sealed(&self, context: &str, sealed: &str) -> Result<String, SecretError> {
        let raw = sealed
            .strip_prefix("v1:")
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .filter(|r| r.len() >= NONCE_LEN + 16)
            .ok_or(SecretError::Open)?;
        let (nonce, rest) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SecretError::Open)?;
        let mut buf = rest.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| SecretError::Open)?;
        String::from_utf8(plain.to_vec()).map_err(|_| SecretError::Open)
    }
}

/// Where a backup at `backup` keeps the appliance key: `FILE.secret.key`.
pub fn key_beside(backup: &Path) -> PathBuf {
    let mut name = backup.as_os_str().to_owned();
    name.push(".secret.key");
    PathBuf::from(name)
}

/// Copies the data dir's key next to a backup (0600); `None` when there is no key yet.
pub fn backup_key(data_dir: &Path, backup: &Path) -> Result<Option<PathBuf>, SecretError> {
    let src = data_dir.join(KEY_FILE);
    let key = match std::fs::read(&src) {
        Ok(k) => k,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(SecretError::Io { path: src, source }),
    };
    let dest = key_beside(backup);
    write_private(&dest, &key)?;
    Ok(Some(dest))
}

/// Installs the key saved beside `backup` into the data dir, keeping a different existing key
/// as `secret.key.pre-restore-<time>`; `None` when the backup has no key beside it.
pub fn restore_key(backup: &Path, data_dir: &Path) -> Result<Option<PathBuf>, SecretError> {
    let src = key_beside(backup);
    let key = match std::fs::read(&src) {
        Ok(k) => k,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(SecretError::Io { path: src, source }),
    };
    if key.len() != 32 {
        return Err(SecretError::BadKey(src));
    }
    let dest = data_dir.join(KEY_FILE);
    if let Ok(existing) = std::fs::read(&dest) {
        if existing == key {
            return Ok(Some(dest));
        }
        let kept = data_dir.join(format!(
            "{KEY_FILE}.pre-restore-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S")
        ));
        std::fs::rename(&dest, &kept).map_err(|source| SecretError::Io {
            path: dest.clone(),
            source,
        })?;
    }
    write_private(&dest, &key)?;
    Ok(Some(dest))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), SecretError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| SecretError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_opens_and_binds_the_context() {
        let dir = tempfile::tempdir().unwrap();
        let s = Sealer::open(dir.path()).unwrap();
        let sealed = s.seal("registry:1", "hunter2").unwrap();
        assert!(!sealed.contains("hunter2"));
        assert_ne!(
            sealed,
            s.seal("registry:1", "hunter2").unwrap(),
            "fresh nonce"
        );
        assert_eq!(s.open_sealed("registry:1", &sealed).unwrap(), "hunter2");
        assert!(s.open_sealed("registry:2", &sealed).is_err(), "context");
        // The key persists, with owner-only permissions.
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(dir.path().join(KEY_FILE)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let again = Sealer::open(dir.path()).unwrap();
        assert_eq!(again.open_sealed("registry:1", &sealed).unwrap(), "hunter2");
        // Another key, tampering and garbage fail cleanly.
        let other = Sealer::from_key(&[7u8; 32]).unwrap();
        assert!(other.open_sealed("registry:1", &sealed).is_err());
        let mut bytes = sealed.into_bytes();
        let last = bytes.len() - 3;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        assert!(s
            .open_sealed("registry:1", &String::from_utf8(bytes).unwrap())
            .is_err());
        for junk in ["", "v1:", "v1:!!!", "v2:AAAA", "plain"] {
            assert!(s.open_sealed("registry:1", junk).is_err(), "{junk}");
        }
        // Backup and restore carry the key beside the database copy.
        let backup = dir.path().join("b.redb");
        let saved = backup_key(dir.path(), &backup).unwrap().unwrap();
        assert_eq!(saved, dir.path().join("b.redb.secret.key"));
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::write(elsewhere.path().join(KEY_FILE), [1u8; 32]).unwrap();
        restore_key(&backup, elsewhere.path()).unwrap().unwrap();
        let restored = Sealer::open(elsewhere.path()).unwrap();
        assert_eq!(
            restored
                .open_sealed("registry:1", &s.seal("registry:1", "x").unwrap())
                .unwrap(),
            "x"
        );
        assert_eq!(
            std::fs::read_dir(elsewhere.path())
                .unwrap()
                .filter(|e| e
                    .as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("secret.key.pre-restore-"))
                .count(),
            1,
            "the replaced key is kept"
        );
        assert_eq!(
            restore_key(&dir.path().join("none.redb"), elsewhere.path()).unwrap(),
            None
        );
        std::fs::write(dir.path().join(KEY_FILE), b"short").unwrap();
        assert!(matches!(
            Sealer::open(dir.path()),
            Err(SecretError::BadKey(_))
        ));
    }
}
