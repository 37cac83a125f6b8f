//! How an input is fingerprinted: a file by the SHA-256 of its bytes; a directory by the
//! SHA-256 of one canonical tar of it (entries sorted by path; mode, mtime, link targets
//! and contents kept; owners and names of owners left out), which is also how a bundle
//! carries it, so a rebuild unpacks exactly what was hashed.

use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context as _};

use super::{Form, Input, Kind};
use crate::io::count::CountingWriter;

/// Writes the canonical tar of `dir` to `out`.
pub fn dir_tar<W: Write>(dir: &Path, out: W) -> anyhow::Result<W> {
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    let walk = walkdir::WalkDir::new(dir).min_depth(1).follow_links(false).sort_by_file_name();
    for e in walk {
        let e = e.with_context(|| format!("reading {}", dir.display()))?;
        let rel = e.path().strip_prefix(dir).expect("under the walked directory");
        let meta = e.path().symlink_metadata().with_context(|| format!("reading {}", e.path().display()))?;
        let mut h = tar::Header::new_gnu();
        h.set_mode(meta.mode() & 0o7777);
        h.set_mtime(meta.mtime().max(0) as u64);
        h.set_uid(0);
        h.set_gid(0);
        let ft = meta.file_type();
        if ft.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            tar.append_data(&mut h, rel, io::empty())?;
        } else if ft.is_symlink() {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            let target = std::fs::read_link(e.path())?;
            tar.append_link(&mut h, rel, target)?;
        } else if ft.is_file() {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(meta.len());
            let f =
                std::fs::File::open(e.path()).with_context(|| format!("reading {}", e.path().display()))?;
            tar.append_data(&mut h, rel, f)?;
        } else if ft.is_fifo() || ft.is_char_device() || ft.is_block_device() {
            // An element's root/ copied as root holds device nodes and FIFOs.
            h.set_entry_type(match () {
                _ if ft.is_fifo() => tar::EntryType::Fifo,
                _ if ft.is_char_device() => tar::EntryType::Char,
                _ => tar::EntryType::Block,
            });
            h.set_size(0);
            h.set_device_major(libc::major(meta.rdev()))?;
            h.set_device_minor(libc::minor(meta.rdev()))?;
            tar.append_data(&mut h, rel, io::empty())?;
        } else {
            bail!("{} is a socket: it cannot be carried; remove it", e.path().display());
        }
    }
    Ok(tar.into_inner()?)
}

/// The SHA-256 and size of what `path` is as an input (a file's bytes, a directory's
/// canonical tar).
pub fn of(path: &Path) -> anyhow::Result<(Form, String, u64)> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    let mut w = CountingWriter::hashing(io::sink());
    let form = if meta.is_dir() {
        w = dir_tar(path, w)?;
        Form::Dir
    } else {
        io::copy(&mut std::fs::File::open(path)?, &mut w)
            .with_context(|| format!("reading {}", path.display()))?;
        Form::File
    };
    let (_, size, hash) = w.into_parts();
    Ok((form, hash.expect("a hashing writer"), size))
}

/// Fingerprints every `(kind, path, host path, secret)`, on every core.
pub fn all(wanted: &[(Kind, String, PathBuf, bool)]) -> anyhow::Result<Vec<Input>> {
    let next = AtomicUsize::new(0);
    let done = Mutex::new(Vec::with_capacity(wanted.len()));
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).min(8);
    std::thread::scope(|s| -> anyhow::Result<()> {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| -> anyhow::Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((kind, rel, host, secret)) = wanted.get(i) else { return Ok(()) };
                        let (form, sha256, size) = of(host)?;
                        let input =
                            Input { kind: *kind, path: rel.clone(), form, sha256, size, secret: *secret };
                        done.lock().unwrap().push(input);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("a hashing thread panicked")?;
        }
        Ok(())
    })?;
    Ok(done.into_inner().unwrap())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_hashes_the_same_until_a_byte_a_mode_or_a_name_changes() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("a")).unwrap();
        std::fs::write(d.path().join("a/x"), "one").unwrap();
        std::os::unix::fs::symlink("x", d.path().join("a/y")).unwrap();
        let first = of(d.path()).unwrap();
        assert_eq!(first.0, Form::Dir);
        assert_eq!(of(d.path()).unwrap(), first);
        std::fs::write(d.path().join("a/x"), "two").unwrap();
        let changed = of(d.path()).unwrap();
        assert_ne!(changed.1, first.1);
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(d.path().join("a/x"), std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_ne!(of(d.path()).unwrap().1, changed.1);
    }
}
