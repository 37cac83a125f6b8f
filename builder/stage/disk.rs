//! The staging directory on disk, used only when hooks need a real tree: records are
//! written out once, hooks change the directory, and scans before and after each hook
//! tell which paths that hook added, changed or removed.

use std::collections::BTreeMap;
use std::fs::{self, Metadata};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use anyhow::Context as _;

use super::tree::{Entry, Kind, Tree};
use crate::io::source::Source;
use crate::path::ImagePath;

/// An entry for a host file, directory, symlink or device, by reference. Ownership is
/// smelt's record, not the host's: a file owned by the user running smelt becomes
/// root's; other owners (set by a hook running as real root) are kept.
pub fn host_entry(path: &Path, meta: &Metadata, element: &str) -> anyhow::Result<Entry> {
    let ft = meta.file_type();
    let kind = if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        let target = fs::read_link(path).with_context(|| format!("reading link {}", path.display()))?;
        Kind::Symlink(target.to_string_lossy().into_owned())
    } else if ft.is_file() {
        let link = (meta.nlink() > 1).then(|| (meta.dev(), meta.ino()));
        Kind::File { source: Source::Host(path.into()), size: meta.len(), alloc: meta.blocks() * 512, link }
    } else {
        use std::os::unix::fs::FileTypeExt;
        let (major, minor) = (libc::major(meta.rdev()), libc::minor(meta.rdev()));
        if ft.is_char_device() {
            Kind::Char(major, minor)
        } else if ft.is_block_device() {
            Kind::Block(major, minor)
        } else if ft.is_fifo() {
            Kind::Fifo
        } else {
            anyhow::bail!("{} is a socket, which an image cannot hold", path.display());
        }
    };
    let me = unsafe { libc::geteuid() };
    let own = |id: u32| if id == me { 0 } else { id };
    Ok(Entry {
        kind,
        mode: meta.mode() & 0o7777,
        uid: own(meta.uid()),
        gid: if meta.uid() == me { 0 } else { meta.gid() },
        mtime: meta.mtime(),
        element: element.into(),
    })
}

/// What a scan remembers of a path to notice that a hook changed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    ino: u64,
    size: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime_ns: (i64, i64),
    ctime_ns: (i64, i64),
}

pub type Scan = BTreeMap<ImagePath, Stamp>;

/// Every path under `root`, skipping the places smelt mounts for chroot hooks.
pub fn scan(root: &Path) -> anyhow::Result<Scan> {
    let mut out = Scan::new();
    let walk = walkdir::WalkDir::new(root).min_depth(1).follow_links(false);
    for entry in walk.into_iter().filter_entry(|e| !is_mount_point_of_ours(root, e.path())) {
        let entry = entry.with_context(|| format!("scanning {}", root.display()))?;
        let meta = entry.metadata()?;
        let rel = entry.path().strip_prefix(root)?.to_string_lossy().into_owned();
        let path = ImagePath::new(&rel).map_err(anyhow::Error::msg)?;
        out.insert(
            path,
            Stamp {
                ino: meta.ino(),
                size: meta.len(),
                mode: meta.mode(),
                uid: meta.uid(),
                gid: meta.gid(),
                mtime_ns: (meta.mtime(), meta.mtime_nsec()),
                ctime_ns: (meta.ctime(), meta.ctime_nsec()),
            },
        );
    }
    Ok(out)
}

/// `tmp/in_target.d` is where chroot hooks see `TMP_HOOKS_PATH`; it is never part of
/// the image.
fn is_mount_point_of_ours(root: &Path, path: &Path) -> bool {
    path == root.join("tmp/in_target.d")
}

/// Applies what changed between two scans to the tree: new and changed paths are read
/// back from disk and attributed to `element`; vanished paths are removed.
pub fn apply_changes(
    tree: &mut Tree,
    root: &Path,
    before: &Scan,
    after: &Scan,
    element: &str,
) -> anyhow::Result<usize> {
    let mut changed = 0;
    for path in before.keys().filter(|p| !after.contains_key(*p)) {
        tree.remove(path);
        changed += 1;
    }
    for (path, stamp) in after {
        if before.get(path) == Some(stamp) {
            continue;
        }
        let host = root.join(path.as_str());
        let meta = fs::symlink_metadata(&host).with_context(|| format!("reading {}", host.display()))?;
        let mut entry = host_entry(&host, &meta, element)?;
        // A directory a hook only wrote into keeps its author.
        if let (Some(old), Kind::Dir) = (tree.get(path), &entry.kind) {
            if matches!(old.kind, Kind::Dir) {
                entry.element = old.element.clone();
            }
        }
        tree.remove(path);
        tree.insert(path, entry).map_err(anyhow::Error::msg)?;
        changed += 1;
    }
    Ok(changed)
}

/// Writes every record that is not yet in `root` into it, so hooks see the whole image.
/// Host files are copied (the kernel's copy_file_range, reflinks where the filesystem
/// has them), never hard-linked: a hook writing in place must not change the sources.
/// Afterwards each file's record points at its staged copy.
pub fn materialise(tree: &mut Tree, root: &Path) -> anyhow::Result<()> {
    for (path, entry) in tree.iter_mut() {
        let dest = root.join(path.as_str());
        if let Kind::File { source: Source::Host(src), .. } = &entry.kind {
            if src == &dest {
                continue;
            }
        }
        write_entry(entry, &dest)?;
        if let Kind::File { source, link, .. } = &mut entry.kind {
            *source = Source::Host(dest.clone());
            *link = None;
        }
    }
    Ok(())
}

/// Creates one entry on disk (`dir` output, hook staging). Devices cannot be made
/// without privilege; they are skipped and reported by the caller.
pub fn write_entry(entry: &Entry, dest: &Path) -> anyhow::Result<bool> {
    let ctx = || format!("writing {}", dest.display());
    match &entry.kind {
        Kind::Dir => {
            if !dest.is_dir() {
                let _ = fs::remove_file(dest);
                fs::create_dir_all(dest).with_context(ctx)?;
            }
            // Keep the owner's write bit so later steps can fill the directory.
            fs::set_permissions(dest, fs::Permissions::from_mode(entry.mode | 0o700)).with_context(ctx)?;
        }
        Kind::File { source, .. } => {
            remove_existing(dest)?;
            match source {
                Source::Host(src) => {
                    fs::copy(src, dest)
                        .with_context(|| format!("copying {} to {}", src.display(), dest.display()))?;
                }
                other => fs::write(dest, other.read_all()?).with_context(ctx)?,
            }
            fs::set_permissions(dest, fs::Permissions::from_mode(entry.mode)).with_context(ctx)?;
        }
        Kind::Symlink(target) => {
            remove_existing(dest)?;
            std::os::unix::fs::symlink(target, dest).with_context(ctx)?;
        }
        Kind::Char(..) | Kind::Block(..) | Kind::Fifo => return Ok(false),
    }
    Ok(true)
}

fn remove_existing(dest: &Path) -> anyhow::Result<()> {
    match fs::symlink_metadata(dest) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(dest)?,
        Ok(_) => fs::remove_file(dest)?,
        Err(_) => {}
    }
    Ok(())
}
