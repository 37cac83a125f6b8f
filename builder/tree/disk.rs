//! Entries and the disk: an entry read from a host path (by reference, with smelt's
//! ownership rule), and an entry written out to one (the `dir` output, hook staging).

use std::fs::{self, Metadata};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use anyhow::Context as _;

use super::{Entry, Kind, Tree};
use crate::io::source::{HostPath, Source};
use crate::path::ImagePath;

/// An entry for a host file, directory, symlink or device, by reference. Ownership is
/// smelt's record, not the host's: a file owned by the user running smelt becomes
/// root's; other owners (set by a hook running as real root) are kept.
pub fn host_entry(path: &Path, meta: &Metadata, element: &str) -> anyhow::Result<Entry> {
    host_entry_as(path, HostPath::new(path), meta, element)
}

/// [`host_entry`] for a file whose kept path `host` the caller has already (a walk's
/// root and the tail of its image path).
pub fn host_entry_as(path: &Path, host: HostPath, meta: &Metadata, element: &str) -> anyhow::Result<Entry> {
    let ft = meta.file_type();
    let kind = if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        let target = fs::read_link(path).with_context(|| format!("reading link {}", path.display()))?;
        Kind::Symlink(target.to_string_lossy().into_owned())
    } else if ft.is_file() {
        let link = (meta.nlink() > 1).then(|| (meta.dev(), meta.ino()));
        Kind::File { source: Source::Host(host), size: meta.len(), alloc: meta.blocks() * 512, link }
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

/// A host path taken into the image as root's, whoever owns it on the host (`stat`
/// follows a symlink at `path`).
pub fn root_entry(path: &Path, element: &str) -> anyhow::Result<Entry> {
    let meta = fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(host_entry(path, &meta, element)?.as_root())
}

/// Whose a host directory's entries become in the image.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Owners {
    /// Root's, whoever owns them on the host, `.git` directories left out: a payload
    /// or a source tree.
    Root,
    /// As [`host_entry`] says: a root filesystem, whose owners a hook may have set.
    Kept,
}

/// Adds everything under the host directory `dir` at `under`, by reference; returns how
/// many entries. The walk's entries are read (`lstat`, `readlink`) on every core, a few
/// hundred ahead of their insertion in path order.
pub fn add_dir(
    tree: &mut Tree,
    dir: &Path,
    under: &ImagePath,
    element: &str,
    owners: Owners,
) -> anyhow::Result<usize> {
    let mut count = 0;
    let root = HostPath::new(dir).root();
    let walk = walkdir::WalkDir::new(dir).min_depth(1).sort_by_file_name();
    let walk = walk.into_iter().filter_entry(move |e| owners == Owners::Kept || e.file_name() != ".git");
    let read = |e: walkdir::Result<walkdir::DirEntry>| -> anyhow::Result<(ImagePath, Entry)> {
        let e = e.with_context(|| format!("element `{element}`: reading {}", dir.display()))?;
        let rel = e.path().strip_prefix(dir)?.to_string_lossy();
        let at = if under.is_root() { ImagePath::new(&rel) } else { under.join(&rel) };
        let at = at?;
        // The file's host path is the walk's root and its image path's tail, kept once,
        // unless the name is not UTF-8 and the image path holds it changed.
        let tail = at.as_str().get(at.as_str().len().saturating_sub(rel.len())..);
        let host = match (rel, tail) {
            (std::borrow::Cow::Borrowed(rel), Some(tail)) if tail == rel => HostPath::below(root, tail),
            _ => HostPath::new(e.path()),
        };
        let entry = host_entry_as(e.path(), host, &e.metadata()?, element)?;
        Ok((at, if owners == Owners::Root { entry.as_root() } else { entry }))
    };
    crate::io::ahead::map_in_order(walk, read, |read| {
        let (at, entry) = read?;
        tree.insert(&at, entry).map_err(|m| anyhow::anyhow!("element `{element}`: {at}: {m}"))?;
        count += 1;
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(count)
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
                    fs::copy(src.to_path_buf(), dest)
                        .with_context(|| format!("copying {src} to {}", dest.display()))?;
                }
                other => fs::write(dest, other.read_all()?).with_context(ctx)?,
            }
            fs::set_permissions(dest, fs::Permissions::from_mode(entry.mode)).with_context(ctx)?;
            // The record's time, not the copy's: what hooks run sees the files as the
            // image has them (Python keeps a package's .pyc files, which name their
            // source's mtime, instead of writing new ones stamped with today).
            set_mtime(dest, entry.mtime).with_context(ctx)?;
        }
        Kind::Symlink(target) => {
            remove_existing(dest)?;
            std::os::unix::fs::symlink(target, dest).with_context(ctx)?;
        }
        Kind::Char(..) | Kind::Block(..) | Kind::Fifo => return Ok(false),
    }
    Ok(true)
}

/// Makes a device node or FIFO entry at `dest` (a device node needs privilege).
pub fn make_node(entry: &Entry, dest: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt as _;
    let (kind, dev) = match entry.kind {
        Kind::Char(ma, mi) => (libc::S_IFCHR, libc::makedev(ma, mi)),
        Kind::Block(ma, mi) => (libc::S_IFBLK, libc::makedev(ma, mi)),
        Kind::Fifo => (libc::S_IFIFO, 0),
        _ => return Ok(()),
    };
    let _ = fs::remove_file(dest);
    let c = std::ffi::CString::new(dest.as_os_str().as_bytes())?;
    // SAFETY: a valid C string, for the call's duration.
    if unsafe { libc::mknod(c.as_ptr(), kind | entry.mode, dev) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Sets one extended attribute on a path, not following a symlink there.
pub fn set_xattr(path: &Path, name: &str, value: &[u8]) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt as _;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    let n = std::ffi::CString::new(name)?;
    // SAFETY: valid C strings and a buffer of `value.len()` bytes, for the call's duration.
    let rc = unsafe { libc::lsetxattr(c.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Sets a path's mtime.
pub fn set_mtime(path: &Path, mtime: i64) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt as _;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    let t = libc::timespec { tv_sec: mtime.max(0) as libc::time_t, tv_nsec: 0 };
    let times = [libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_OMIT }, t];
    // SAFETY: a valid C string and two timespecs, for the call's duration.
    if unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn remove_existing(dest: &Path) -> anyhow::Result<()> {
    match fs::symlink_metadata(dest) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(dest)?,
        Ok(_) => fs::remove_file(dest)?,
        Err(_) => {}
    }
    Ok(())
}
