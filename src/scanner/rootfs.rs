//! Reading files of an image's root filesystem on disk (`dir:PATH`) without ever leaving it:
//! every symlink, absolute or relative, is resolved as if the root were `/`, `..` stops at the
//! root, and resolution gives up after 40 links (loops).

use std::path::{Path, PathBuf};

/// Largest file a cataloger reads (status files of huge images stay well below).
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// What a path inside an image is, for [`resolve_with`].
pub enum Node {
    /// A symlink with this target.
    Link(String),
    /// Anything else that exists.
    Present,
    Missing,
}

/// Resolves `rel` inside an image whose entries `lookup` describes (given the resolved
/// components so far), returning the final components. Shared by on-disk roots and flattened
/// layers, so both follow links the same way.
pub fn resolve_with(rel: &str, lookup: impl Fn(&[String]) -> Node) -> Option<Vec<String>> {
    let mut parts: Vec<String> = Vec::new();
    let mut pending: Vec<String> = rel
        .split('/')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .rev()
        .collect();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        match part.as_str() {
            "." => continue,
            ".." => {
                parts.pop();
                continue;
            }
            _ => {}
        }
        parts.push(part);
        match lookup(&parts) {
            Node::Link(target) => {
                parts.pop();
                links += 1;
                if links > 40 {
                    return None;
                }
                if target.starts_with('/') {
                    parts.clear();
                }
                for c in target.split('/').filter(|s| !s.is_empty()).rev() {
                    pending.push(c.to_string());
                }
            }
            Node::Present => {}
            Node::Missing => return None,
        }
    }
    Some(parts)
}

/// Resolves `rel` (a path inside the image, like `etc/os-release`) to a host path inside `root`.
pub fn resolve(root: &Path, rel: &str) -> Option<PathBuf> {
    let host = |parts: &[String]| parts.iter().fold(root.to_path_buf(), |p, s| p.join(s));
    let parts = resolve_with(rel, |parts| match std::fs::symlink_metadata(host(parts)) {
        Ok(m) if m.file_type().is_symlink() => match std::fs::read_link(host(parts)) {
            Ok(t) => Node::Link(t.to_string_lossy().into_owned()),
            Err(_) => Node::Missing,
        },
        Ok(_) => Node::Present,
        Err(_) => Node::Missing,
    })?;
    Some(host(&parts))
}

/// Reads a regular file of the image, up to [`MAX_FILE_BYTES`].
pub fn read(root: &Path, rel: &str) -> Option<Vec<u8>> {
    let p = resolve(root, rel)?;
    let m = std::fs::metadata(&p).ok()?;
    if !m.is_file() || m.len() > MAX_FILE_BYTES {
        return None;
    }
    std::fs::read(p).ok()
}

/// Regular files anywhere under the root that `pred` accepts (image paths, no leading `/`).
/// Symlinks are not followed, `proc`, `sys` and `dev` are skipped, and the walk stops after
/// `max_entries` entries so a hostile tree cannot run it forever.
pub fn find(root: &Path, pred: &dyn Fn(&str) -> bool, max_entries: usize) -> Vec<String> {
    let mut out = Vec::new();
    walk(root, max_entries, &mut |path, _| {
        if pred(path) {
            out.push(path.to_string());
        }
    });
    out.sort();
    out
}

/// Executables under `root` that carry Go build information, with that information.
pub fn go_binaries(root: &Path, max_entries: usize) -> Vec<(String, Vec<u8>)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    walk(root, max_entries, &mut |path, meta| {
        if meta.permissions().mode() & 0o111 == 0 || meta.len() <= 1024 {
            return;
        }
        let Ok(mut f) = std::fs::File::open(root.join(path)) else {
            return;
        };
        if let Ok(Some(info)) = super::catalog::lang::go::find_build_info(&mut f) {
            out.push((path.to_string(), info));
        }
    });
    out.sort();
    out
}

/// Calls `f` with every regular file under `root` (not following symlinks, skipping `proc`,
/// `sys` and `dev`), up to `max_entries` directory entries.
fn walk(root: &Path, max_entries: usize, f: &mut dyn FnMut(&str, &std::fs::Metadata)) {
    let mut stack = vec![String::new()];
    let mut seen = 0;
    while let Some(rel) = stack.pop() {
        let Ok(dir) = std::fs::read_dir(root.join(&rel)) else {
            continue;
        };
        for e in dir.flatten() {
            seen += 1;
            if seen > max_entries {
                return;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            match e.file_type() {
                Ok(t) if t.is_dir() && !matches!(path.as_str(), "proc" | "sys" | "dev") => {
                    stack.push(path)
                }
                Ok(t) if t.is_file() => {
                    if let Ok(meta) = e.metadata() {
                        f(&path, &meta);
                    }
                }
                _ => {}
            }
        }
    }
}

/// Regular files directly in a directory of the image (for `var/lib/dpkg/status.d/`).
pub fn list(root: &Path, rel: &str) -> Vec<String> {
    let Some(dir) = resolve(root, rel) else {
        return vec![];
    };
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file() || t.is_symlink()))
        .map(|e| {
            format!(
                "{}/{}",
                rel.trim_end_matches('/'),
                e.file_name().to_string_lossy()
            )
        })
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::fs::write(root.join("usr/lib/os-release"), b"ID=alpine\n").unwrap();
        std::fs::write(dir.path().join("outside"), b"host secret").unwrap();
        // Absolute link: resolved inside the root.
        std::os::unix::fs::symlink("/usr/lib/os-release", root.join("etc/os-release")).unwrap();
        assert_eq!(read(&root, "etc/os-release").unwrap(), b"ID=alpine\n");
        // Relative escape with .. : clamped at the root.
        std::os::unix::fs::symlink("../../../../outside", root.join("etc/escape")).unwrap();
        assert_eq!(
            read(&root, "etc/escape"),
            None,
            "cannot reach the host file"
        );
        // Absolute link to a host path that does not exist in the image.
        std::os::unix::fs::symlink("/etc/passwd", root.join("etc/passwd-link")).unwrap();
        assert_eq!(read(&root, "etc/passwd-link"), None);
        // Loops give up.
        std::os::unix::fs::symlink("loop-b", root.join("etc/loop-a")).unwrap();
        std::os::unix::fs::symlink("loop-a", root.join("etc/loop-b")).unwrap();
        assert_eq!(read(&root, "etc/loop-a"), None);
        // Directories are not files.
        assert_eq!(read(&root, "etc"), None);
    }
}
