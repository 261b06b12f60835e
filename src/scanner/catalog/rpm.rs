//! The rpm database in its SQLite form (`rpmdb.sqlite`: RHEL, Rocky and Alma 9, Fedora 33+,
//! Amazon Linux 2023, CBL-Mariner 2 / Azure Linux). Each row of its `Packages` table is an rpm
//! header blob; the header format is rpm's own (`lib/header.c`): two big-endian counts (index
//! entries, data bytes), the index entries (tag, type, offset, count; 16 bytes each), then the
//! data. Only the tags a scanner needs are read.
//!
//! The Berkeley DB form (`Packages`: RHEL and CentOS 5-8, Amazon Linux 2, UBI 8) is read too:
//! a Berkeley DB hash file whose values are the same header blobs. Only its pages are walked (no
//! library): meta page, hash pages of key/value items, and overflow-page chains for the blobs,
//! in either byte order. The NDB form (`Packages.db`, SLES 15) is not read; the scan says so when
//! it meets one.

use super::{Package, Skipped};

/// Where images keep an SQLite rpm database.
pub const SQLITE_PATHS: &[&str] = &[
    "var/lib/rpm/rpmdb.sqlite",
    "usr/lib/sysimage/rpm/rpmdb.sqlite",
    "usr/share/rpm/rpmdb.sqlite",
];

/// Where images keep a Berkeley DB rpm database.
pub const BDB_PATHS: &[&str] = &["var/lib/rpm/Packages", "usr/lib/sysimage/rpm/Packages"];

/// rpm database formats recognised but not read (NDB).
pub const UNREAD_PATHS: &[&str] = &[
    "var/lib/rpm/Packages.db",
    "usr/lib/sysimage/rpm/Packages.db",
];

const TAG_NAME: i32 = 1000;
const TAG_VERSION: i32 = 1001;
const TAG_RELEASE: i32 = 1002;
const TAG_EPOCH: i32 = 1003;
const TAG_LICENSE: i32 = 1014;
const TAG_ARCH: i32 = 1022;
const TAG_SOURCERPM: i32 = 1044;

const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_I18NSTRING: u32 = 9;

/// Largest header accepted (rpm itself caps headers at 256 MiB; real ones are kilobytes).
const MAX_HEADER: usize = 64 * 1024 * 1024;

/// The fields of one header.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub version: String,
    pub release: String,
    pub epoch: Option<i32>,
    pub arch: String,
    pub license: String,
    pub source_rpm: String,
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Reads a header blob (as stored in `rpmdb.sqlite`, without the on-disk magic).
pub fn parse_header(blob: &[u8]) -> Result<Header, String> {
    if blob.len() > MAX_HEADER {
        return Err("an rpm header larger than 64 MiB".into());
    }
    let il = be32(blob, 0).ok_or("an rpm header cut short")? as usize;
    let dl = be32(blob, 4).ok_or("an rpm header cut short")? as usize;
    let data_start = il
        .checked_mul(16)
        .and_then(|n| n.checked_add(8))
        .filter(|s| *s <= blob.len())
        .ok_or("an rpm header with more index entries than bytes")?;
    let data = blob
        .get(data_start..data_start.checked_add(dl).ok_or("bad data length")?)
        .ok_or("an rpm header whose data runs past its end")?;
    let mut h = Header::default();
    for i in 0..il {
        let e = 8 + i * 16;
        let tag = be32(blob, e).unwrap_or(0) as i32;
        let kind = be32(blob, e + 4).unwrap_or(0);
        let offset = be32(blob, e + 8).unwrap_or(u32::MAX) as usize;
        let string = || -> Result<String, String> {
            if kind != TYPE_STRING && kind != TYPE_I18NSTRING {
                return Err(format!("rpm tag {tag} is not a string"));
            }
            let rest = data
                .get(offset..)
                .ok_or_else(|| format!("rpm tag {tag} points outside the header"))?;
            let end = rest
                .iter()
                .position(|b| *b == 0)
                .ok_or_else(|| format!("rpm tag {tag} is not terminated"))?;
            Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
        };
        match tag {
            TAG_NAME => h.name = string()?,
            TAG_VERSION => h.version = string()?,
            TAG_RELEASE => h.release = string()?,
            TAG_ARCH => h.arch = string()?,
            TAG_LICENSE => h.license = string()?,
            TAG_SOURCERPM => h.source_rpm = string()?,
            TAG_EPOCH if kind == TYPE_INT32 => {
                h.epoch = Some(
                    be32(data, offset).ok_or("the rpm epoch points outside the header")? as i32,
                )
            }
            _ => {}
        }
    }
    if h.name.is_empty() || h.version.is_empty() {
        return Err("an rpm header without a name or version".into());
    }
    Ok(h)
}

impl Header {
    /// `[epoch:]version-release`, as rpm prints it and Trivy reports it.
    pub fn evr(&self) -> String {
        let vr = if self.release.is_empty() {
            self.version.clone()
        } else {
            format!("{}-{}", self.version, self.release)
        };
        match self.epoch {
            Some(e) if e > 0 => format!("{e}:{vr}"),
            _ => vr,
        }
    }

    /// The source package's name and `version-release`, from `name-version-release.src.rpm`.
    pub fn source(&self) -> Option<(String, String)> {
        let base = self
            .source_rpm
            .strip_suffix(".src.rpm")
            .or_else(|| self.source_rpm.strip_suffix(".nosrc.rpm"))?;
        let (rest, release) = base.rsplit_once('-')?;
        let (name, version) = rest.rsplit_once('-')?;
        Some((name.to_string(), format!("{version}-{release}")))
    }

    fn into_package(self) -> Package {
        let source = self.source();
        let evr = self.evr();
        Package {
            source_version: source.as_ref().map(|(_, v)| match self.epoch {
                Some(e) if e > 0 => format!("{e}:{v}"),
                _ => v.clone(),
            }),
            source: source.map(|(n, _)| n),
            version: evr,
            licenses: if self.license.is_empty() {
                vec![]
            } else {
                vec![self.license]
            },
            arch: self.arch,
            name: self.name,
        }
    }
}

/// Every package in an `rpmdb.sqlite` file. The file is opened read-only and immutable: nothing
/// is written next to it, not even a journal.
pub fn sqlite_packages(path: &std::path::Path) -> Result<(Vec<Package>, Vec<Skipped>), String> {
    use rusqlite::{Connection, OpenFlags};
    let uri = format!(
        "file:{}?immutable=1",
        path.display()
            .to_string()
            .replace('%', "%25")
            .replace('?', "%3f")
            .replace('#', "%23")
    );
    let conn = Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("not an SQLite rpm database: {e}"))?;
    let mut stmt = conn
        .prepare("SELECT hnum, blob FROM Packages ORDER BY hnum")
        .map_err(|e| format!("not an SQLite rpm database: {e}"))?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
        .map_err(|e| format!("rpm database: {e}"))?;
    let mut out = Collected::default();
    for row in rows {
        let (hnum, blob) = row.map_err(|e| format!("rpm database: {e}"))?;
        out.add(hnum.max(0) as usize, &blob);
    }
    Ok((out.packages, out.skipped))
}

/// Packages and skipped records as a database is read.
#[derive(Default)]
struct Collected {
    packages: Vec<Package>,
    skipped: Vec<Skipped>,
}

impl Collected {
    /// Adds the package in header `blob` (record `key`); GPG public keys, which rpm files as
    /// packages named `gpg-pubkey`, are left out.
    fn add(&mut self, key: usize, blob: &[u8]) {
        match parse_header(blob) {
            Ok(h) if h.name == "gpg-pubkey" => {}
            Ok(h) => self.packages.push(h.into_package()),
            Err(reason) => self.skip(key, reason),
        }
    }

    fn skip(&mut self, key: usize, reason: impl Into<String>) {
        self.skipped.push(Skipped {
            line: key,
            reason: reason.into(),
        });
    }
}

/// The image's rpm database: the SQLite one when present (a converted image can keep its old
/// Berkeley DB file beside it), else the Berkeley DB one. `read` reads a file of the image;
/// the answer names the file read, or is `None` when there is none.
pub fn read_database(
    read: &dyn Fn(&str) -> Option<Vec<u8>>,
) -> Option<(&'static str, PackagesOrError)> {
    for path in SQLITE_PATHS {
        if let Some(bytes) = read(path) {
            return Some((path, sqlite_packages_from_bytes(&bytes)));
        }
    }
    for path in BDB_PATHS {
        if let Some(bytes) = read(path) {
            return Some((path, bdb_packages(&bytes)));
        }
    }
    None
}

/// What reading one rpm database gives.
pub type PackagesOrError = Result<(Vec<Package>, Vec<Skipped>), String>;

/// Every package in a Berkeley DB `Packages` file (held in memory).
pub fn bdb_packages(db: &[u8]) -> Result<(Vec<Package>, Vec<Skipped>), String> {
    const HASH_MAGIC: u32 = 0x0006_1561;
    const P_HASH_UNSORTED: u8 = 2;
    const P_OVERFLOW: u8 = 7;
    const P_HASHMETA: u8 = 8;
    const P_HASH: u8 = 13;
    const H_KEYDATA: u8 = 1;
    const H_OFFPAGE: u8 = 3;
    const PAGE_HEADER: usize = 26;
    if db.len() < 512 {
        return Err("not a Berkeley DB file: too short".into());
    }
    // The file is in its writer's byte order; the magic number says which.
    let little = match (
        u32::from_le_bytes(db[12..16].try_into().unwrap_or_default()),
        u32::from_be_bytes(db[12..16].try_into().unwrap_or_default()),
    ) {
        (HASH_MAGIC, _) => true,
        (_, HASH_MAGIC) => false,
        _ => return Err("not a Berkeley DB hash file (rpm's Packages)".into()),
    };
    let u32_at = |b: &[u8], at: usize| -> Option<u32> {
        let raw: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(if little {
            u32::from_le_bytes(raw)
        } else {
            u32::from_be_bytes(raw)
        })
    };
    let u16_at = |b: &[u8], at: usize| -> Option<u16> {
        let raw: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
        Some(if little {
            u16::from_le_bytes(raw)
        } else {
            u16::from_be_bytes(raw)
        })
    };
    if db[25] != P_HASHMETA {
        return Err("a Berkeley DB file that is not a hash database".into());
    }
    let page_size = u32_at(db, 20).unwrap_or(0) as usize;
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(format!("a Berkeley DB page size of {page_size}"));
    }
    let pages = db.len() / page_size;
    let last = (u32_at(db, 32).unwrap_or(0) as usize).min(pages.saturating_sub(1));
    let page = |n: usize| db.get(n * page_size..(n + 1) * page_size);
    let mut out = Collected::default();
    for n in 1..=last {
        let Some(p) = page(n) else { break };
        if !matches!(p[25], P_HASH | P_HASH_UNSORTED) {
            continue;
        }
        let entries = u16_at(p, 20).unwrap_or(0) as usize;
        let offsets: Vec<usize> = (0..entries)
            .filter_map(|i| u16_at(p, PAGE_HEADER + 2 * i).map(|o| o as usize))
            .collect();
        // Items are key, value, key, value…, stored from the page's end backwards: an item ends
        // where the previous one starts.
        let item = |i: usize| -> Option<&[u8]> {
            let start = *offsets.get(i)?;
            let end = if i == 0 { page_size } else { offsets[i - 1] };
            p.get(start..end)
        };
        for pair in (0..offsets.len()).step_by(2) {
            let (Some(key), Some(value)) = (item(pair), item(pair + 1)) else {
                continue;
            };
            // Key 0 is rpm's own bookkeeping record, not a package.
            if key.first() == Some(&H_KEYDATA) && key[1..].iter().all(|b| *b == 0) {
                continue;
            }
            let key_num = key
                .get(1..5)
                .map(|k| u32::from_le_bytes(k.try_into().unwrap_or_default()) as usize)
                .unwrap_or(0);
            let blob = match value.first() {
                Some(&H_KEYDATA) => value[1..].to_vec(),
                Some(&H_OFFPAGE) => {
                    let (Some(mut next), Some(total)) = (u32_at(value, 4), u32_at(value, 8)) else {
                        continue;
                    };
                    let total = total as usize;
                    if total > MAX_HEADER {
                        out.skip(key_num, "an rpm header larger than 64 MiB");
                        continue;
                    }
                    let mut blob = Vec::with_capacity(total);
                    let mut hops = 0;
                    // The chain ends at page 0; a loop or a wrong page type is corruption.
                    while next != 0 && blob.len() < total && hops <= pages {
                        let Some(o) = page(next as usize).filter(|o| o[25] == P_OVERFLOW) else {
                            break;
                        };
                        let used =
                            (u16_at(o, 22).unwrap_or(0) as usize).min(page_size - PAGE_HEADER);
                        blob.extend_from_slice(&o[PAGE_HEADER..PAGE_HEADER + used]);
                        next = u32_at(o, 16).unwrap_or(0);
                        hops += 1;
                    }
                    if blob.len() < total {
                        out.skip(key_num, "an rpm header whose overflow pages are cut short");
                        continue;
                    }
                    blob.truncate(total);
                    blob
                }
                _ => continue,
            };
            out.add(key_num, &blob);
        }
    }
    Ok((out.packages, out.skipped))
}

/// Like [`sqlite_packages`] for a database held in memory (read out of an image layer): it goes
/// to a private temporary file first, as SQLite reads files.
pub fn sqlite_packages_from_bytes(bytes: &[u8]) -> Result<(Vec<Package>, Vec<Skipped>), String> {
    use std::io::Write;
    let path = std::env::temp_dir().join(format!(
        "bulwark-rpmdb-{}-{}.sqlite",
        std::process::id(),
        rand::random::<u64>()
    ));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .and_then(|mut f| f.write_all(bytes));
    let result = match written {
        Ok(()) => sqlite_packages(&path),
        Err(e) => Err(format!("a temporary copy of the rpm database: {e}")),
    };
    let _ = std::fs::remove_file(&path);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header with the given string tags (and an epoch), laid out as rpm writes it.
    fn header(strings: &[(i32, &str)], epoch: Option<i32>) -> Vec<u8> {
        let mut index = Vec::new();
        let mut data = Vec::new();
        let mut count = 0u32;
        if let Some(e) = epoch {
            index.extend_from_slice(&TAG_EPOCH.to_be_bytes());
            index.extend_from_slice(&TYPE_INT32.to_be_bytes());
            index.extend_from_slice(&(data.len() as u32).to_be_bytes());
            index.extend_from_slice(&1u32.to_be_bytes());
            data.extend_from_slice(&e.to_be_bytes());
            count += 1;
        }
        for (tag, s) in strings {
            index.extend_from_slice(&tag.to_be_bytes());
            index.extend_from_slice(&TYPE_STRING.to_be_bytes());
            index.extend_from_slice(&(data.len() as u32).to_be_bytes());
            index.extend_from_slice(&1u32.to_be_bytes());
            data.extend_from_slice(s.as_bytes());
            data.push(0);
            count += 1;
        }
        let mut out = count.to_be_bytes().to_vec();
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend(index);
        out.extend(data);
        out
    }

    #[test]
    fn reads_a_header_with_epoch_and_source() {
        let blob = header(
            &[
                (TAG_NAME, "bsdutils"),
                (TAG_VERSION, "2.37.4"),
                (TAG_RELEASE, "11.el9"),
                (TAG_ARCH, "x86_64"),
                (TAG_LICENSE, "GPLv2"),
                (TAG_SOURCERPM, "util-linux-2.37.4-11.el9.src.rpm"),
            ],
            Some(2),
        );
        let h = parse_header(&blob).unwrap();
        assert_eq!(h.evr(), "2:2.37.4-11.el9");
        let p = h.into_package();
        assert_eq!(p.source.as_deref(), Some("util-linux"));
        assert_eq!(p.source_version.as_deref(), Some("2:2.37.4-11.el9"));
        assert_eq!(p.licenses, vec!["GPLv2".to_string()]);
    }

    #[test]
    fn hostile_headers_are_errors() {
        let good = header(&[(TAG_NAME, "a"), (TAG_VERSION, "1")], None);
        for cut in [0, 4, 8, 20, good.len() - 1] {
            assert!(parse_header(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut huge_count = good.clone();
        huge_count[0..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse_header(&huge_count).is_err());
        let mut outside = good.clone();
        outside[16..20].copy_from_slice(&9999u32.to_be_bytes());
        assert!(parse_header(&outside).is_err());
        assert!(parse_header(&header(&[(TAG_NAME, "a")], None)).is_err());
    }

    #[test]
    fn reads_a_real_berkeley_db() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/images/rpm/libuuid-bdb-Packages"
        );
        let bytes = std::fs::read(path).unwrap();
        let (pkgs, skipped) = bdb_packages(&bytes).unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!(pkgs.len(), 1, "{pkgs:?}");
        assert_eq!(pkgs[0].name, "libuuid");
        assert!(pkgs[0].version.starts_with("2."), "{:?}", pkgs[0]);
        // Cut anywhere, flipped anywhere: an error or fewer packages, never a panic.
        for cut in [0, 100, 511, 4096, 8192, 12000, bytes.len() - 1] {
            let _ = bdb_packages(&bytes[..cut]);
        }
        for i in (0..bytes.len()).step_by(997) {
            let mut bad = bytes.clone();
            bad[i] ^= 0xff;
            let _ = bdb_packages(&bad);
        }
        assert!(bdb_packages(&[0u8; 4096]).is_err());
    }

    #[test]
    fn reads_a_real_rpmdb_sqlite() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/images/rpm/cbl-mariner-2.0-rpmdb.sqlite"
        );
        let (pkgs, skipped) = sqlite_packages(std::path::Path::new(path)).unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        assert!(pkgs.len() > 100, "{}", pkgs.len());
        assert!(pkgs.iter().all(|p| p.name != "gpg-pubkey"));
        let bash = pkgs.iter().find(|p| p.name == "bash").unwrap();
        assert!(bash.version.contains(".cm2"), "{bash:?}");
        assert_eq!(bash.source.as_deref(), Some("bash"));
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(
            sqlite_packages_from_bytes(&bytes).unwrap().0.len(),
            pkgs.len()
        );
        assert!(sqlite_packages_from_bytes(b"SQLite format 3\0garbage").is_err());
    }
}
