//! The staging directory on disk, used only when hooks need a real tree: records are
//! written out once, hooks change the directory, and scans before and after each hook
//! tell which paths that hook added, changed or removed.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::Context as _;

use crate::element::hooks::IN_IMAGE;
use crate::io::source::{HostPath, Source};
use crate::path::ImagePath;
use crate::tree::disk::{host_entry_as, write_entry};
use crate::tree::{Kind, Tree};

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
        let path = ImagePath::new(&rel)?;
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

/// [`IN_IMAGE`] is where chroot hooks see `TMP_HOOKS_PATH`; it is never part of the
/// image.
fn is_mount_point_of_ours(root: &Path, path: &Path) -> bool {
    path == root.join(IN_IMAGE.trim_start_matches('/'))
}

/// Applies what changed between two scans to the tree: new and changed paths are read
/// back from disk and attributed to `element`, or to the element `owners` names for
/// them (the element that asked for the package a file is from); vanished paths are
/// removed.
pub fn apply_changes(
    tree: &mut Tree,
    root: &Path,
    before: &Scan,
    after: &Scan,
    element: &str,
    owners: &BTreeMap<ImagePath, String>,
) -> anyhow::Result<usize> {
    let mut changed = 0;
    let kept_root = HostPath::new(root).root();
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
        let owner = owners.get(path).map_or(element, String::as_str);
        let mut entry = host_entry_as(&host, HostPath::below(kept_root, path.as_str()), &meta, owner)?;
        // A directory a hook only wrote into keeps its author.
        if let (Some(old), Kind::Dir) = (tree.get(path), &entry.kind) {
            if matches!(old.kind, Kind::Dir) {
                entry.element = old.element.clone();
            }
        }
        tree.remove(path);
        tree.insert(path, entry)?;
        changed += 1;
    }
    Ok(changed)
}

/// Writes every record that is not yet in `root` into it, so hooks see the whole image.
/// Host files are copied (the kernel's copy_file_range, reflinks where the filesystem
/// has them), never hard-linked: a hook writing in place must not change the sources.
/// Afterwards each file's record points at its staged copy.
pub fn materialise(tree: &mut Tree, root: &Path) -> anyhow::Result<()> {
    let staged = HostPath::new(root);
    tree.update(|path, entry| {
        let here = HostPath::below(staged.root(), path.as_str());
        if let Kind::File { source: Source::Host(src), .. } = &entry.kind {
            if *src == here {
                return Ok(false);
            }
        }
        write_entry(entry, &root.join(path.as_str()))?;
        if let Kind::File { source, link, .. } = &mut entry.kind {
            *source = Source::Host(here);
            *link = None;
        }
        Ok(true)
    })
}
