//! Where smelt keeps what it fetched or unpacked between builds (bootstrap tarballs,
//! unpacked rootfs tarballs, apt's lists and downloads): `SMELT_CACHE_DIR`, else
//! `$XDG_CACHE_HOME/smelt`, else `~/.cache/smelt`. Never part of an image.

use std::path::PathBuf;
use std::sync::OnceLock;

static OVERRIDE: OnceLock<PathBuf> = OnceLock::new();

/// Makes `dir` the cache for the rest of the process: a rebuild from a bundle uses the
/// bundle's cache and no other.
pub fn set_dir(dir: PathBuf) {
    let _ = OVERRIDE.set(dir);
}

pub fn dir() -> PathBuf {
    if let Some(d) = OVERRIDE.get() {
        return d.clone();
    }
    if let Some(d) = std::env::var_os("SMELT_CACHE_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("smelt");
    }
    PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into())).join(".cache/smelt")
}

/// The caches chroot hooks see inside the image while they run (cache folder, image
/// path), bound there then and never part of the image: apt's package lists and
/// downloads (so an `--offline` build installs what an earlier one fetched), pip's
/// cache, and the wheelhouse hooks fill with `pip download` and install from.
pub const IN_HOOKS: [(&str, &str); 4] = [
    ("apt/archives", "var/cache/apt/archives"),
    ("apt/lists", "var/lib/apt/lists"),
    ("pip", PIP),
    ("pip-wheelhouse", WHEELHOUSE),
];

/// Where pip's cache is bound for hooks, with `PIP_CACHE_DIR` pointing there.
pub const PIP: &str = "var/cache/smelt-pip";

/// Where the wheelhouse is bound for hooks, as `SMELT_WHEELHOUSE` (and
/// `PIP_FIND_LINKS`): a hook that runs `pip download -d "$SMELT_WHEELHOUSE" REQS` when
/// online and `pip install --no-index --find-links "$SMELT_WHEELHOUSE" REQS` always
/// installs the same wheels online and `--offline` (where `PIP_NO_INDEX=1`), so an
/// offline rebuild gives the same bytes.
pub const WHEELHOUSE: &str = "var/cache/smelt-wheelhouse";

/// The cache folders hooks use, watched while they run for the lock
/// ([`crate::lock::watch`]): those bound into the image and diskimage-builder's.
pub fn watched() -> Vec<PathBuf> {
    let root = dir();
    let mut dirs: Vec<PathBuf> = IN_HOOKS.iter().map(|(cached, _)| root.join(cached)).collect();
    dirs.push(root.join(IMAGE_CREATE));
    dirs
}

/// diskimage-builder's `DIB_IMAGE_CACHE`, in the cache.
pub const IMAGE_CREATE: &str = "image-create";

/// Whether a cache file a build used is one of its inputs: not pip's download cache
/// (what pip fetched is in the wheelhouse too), apt's partial downloads or a lock file.
pub fn is_input(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    !(rel.starts_with("pip/http")
        || rel.starts_with("pip/selfcheck")
        || rel.contains("/partial/")
        || name == "lock")
}

/// The SHA-256 of a large file a build reads whole (a disk image, a media ISO),
/// remembered in the cache under the file's identity — path, device, inode, size,
/// mtime and ctime, which any change of its bytes moves — so a warm build does not read
/// gigabytes again only to name them.
pub fn file_digest(path: &std::path::Path) -> std::io::Result<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    let id = format!(
        "{}\n{}:{}:{}:{}.{}:{}.{}",
        path.display(),
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec()
    );
    let memo = dir().join("digests").join(&crate::io::count::sha256_hex(id.as_bytes())[..32]);
    if let Ok(known) = std::fs::read_to_string(&memo) {
        if known.len() == 64 && known.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(known);
        }
    }
    let digest = crate::io::count::sha256_file(path)?;
    // Only a shortcut: a memo that cannot be written is read the long way next time.
    if let Some(parent) = memo.parent() {
        if std::fs::create_dir_all(parent).is_ok() {
            let pending = crate::io::atomic::Pending::new(&memo);
            if std::fs::write(pending.temp_path(), &digest).is_ok() {
                let _ = pending.publish();
            }
        }
    }
    Ok(digest)
}
