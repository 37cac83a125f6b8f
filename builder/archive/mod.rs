//! Writing the staged tree out: a compressed newc initramfs, or a plain directory. Each
//! output is written under a temporary name; the caller publishes it once it is within
//! budget.

pub mod esp;
pub mod iso;
pub mod newc;
pub mod ramdisk_tar;

use std::io::BufWriter;
use std::path::{Path, PathBuf};

use sha2::Sha256;

use anyhow::Context as _;

use crate::io::atomic::Pending;
use crate::io::compress::{Compression, Compressor};
use crate::io::count::CountingWriter;
use crate::io::prefetch::{Prefetch, Span};
use crate::tree::disk::write_entry;
use crate::tree::Tree;
use crate::tree::{Entry, Kind};

/// A finished output waiting to be published.
pub struct Written {
    pub pending: Pending,
    pub bytes: u64,
    pub sha256: Option<String>,
    /// Entries that could not be represented (devices in a `dir` output).
    pub skipped: usize,
}

/// Streams the tree as newc through the compressor into `dest` (temporarily named).
/// Memory stays flat: one buffer per stage, whatever the tree's size. From a cold
/// cache, the files are read ahead of the writer (see [`Prefetch`]).
pub fn initramfs(
    tree: &Tree,
    epoch: Option<i64>,
    compression: Compression,
    dest: &Path,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<Written> {
    // Files up to newc::SMALL are read on every core by the writer itself: reading ahead
    // is for the larger ones (and lists none of a million small files).
    let large = || host_spans(tree.iter().map(|(_, e)| e)).filter(|s| s.len > newc::SMALL);
    let ahead = Prefetch::start(large(), || large().collect());
    let progress = |n| {
        progress(n);
        if let (Some(p), true) = (&ahead, n > newc::SMALL) {
            p.advance(n);
        }
    };
    let pending = Pending::new(dest);
    let file = pending.create_file()?;
    let counted = CountingWriter::hashing(BufWriter::with_capacity(1 << 20, file));
    let compressor = Compressor::new(counted, compression).context("starting the compressor")?;
    let buffered = BufWriter::with_capacity(1 << 18, compressor);
    let buffered = newc::write_tree(tree, epoch, buffered, progress)?;
    let compressor = buffered.into_inner().map_err(|e| e.into_error()).context("writing the initramfs")?;
    let counted = compressor.finish().context("finishing compression")?;
    let (file, bytes, sha256) = counted.into_parts();
    file.into_inner().map_err(|e| e.into_error()).context("writing the initramfs")?;
    Ok(Written { pending, bytes, sha256, skipped: 0 })
}

/// The host bytes of `entries`' files, in their order.
fn host_spans(entries: impl Iterator<Item = Entry> + Clone) -> impl Iterator<Item = Span> + Clone {
    entries.filter_map(|e| match &e.kind {
        Kind::File { source, size, .. } => Span::of(source, *size),
        _ => None,
    })
}

/// Writes the trees, one over the other, as a directory: hard links as links, extended
/// attributes set (a file capability needs root, or the owner in a user namespace), and
/// owners and device nodes too when smelt runs as root (without, device nodes are
/// counted in `skipped`); the attributes the host refused are returned
/// (`security.capability` of /usr/bin/ping: Operation not permitted).
pub fn dir(layers: &[&Tree], dest: &Path) -> anyhow::Result<(Written, Vec<String>)> {
    let entries = || layers.iter().flat_map(|t| t.iter().map(|(_, e)| e));
    let ahead = Prefetch::start(host_spans(entries()), || host_spans(entries()).collect());
    let pending = Pending::new(dest);
    let root = pending.temp_path().to_path_buf();
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let as_root = unsafe { libc::geteuid() } == 0;
    let mut linked: std::collections::HashMap<(u64, u64), PathBuf> = std::collections::HashMap::new();
    let mut skipped = 0;
    let mut bytes = 0;
    let mut refused = Vec::new();
    // Directories whose mode lacks the owner's bits get it once they are filled.
    let mut closed = Vec::new();
    for tree in layers {
        for (path, entry) in tree.iter() {
            let at = root.join(path.as_str());
            if let Kind::File { link: Some(key), .. } = &entry.kind {
                if let Some(first) = linked.get(key) {
                    let _ = std::fs::remove_file(&at);
                    std::fs::hard_link(first, &at).with_context(|| format!("linking {}", at.display()))?;
                    continue;
                }
                linked.insert(*key, at.clone());
            }
            if !write_entry(&entry, &at)? {
                if !as_root {
                    skipped += 1;
                    continue;
                }
                crate::tree::disk::make_node(&entry, &at)
                    .with_context(|| format!("making {}", at.display()))?;
            }
            if as_root {
                std::os::unix::fs::lchown(&at, Some(entry.uid), Some(entry.gid))
                    .with_context(|| format!("setting the owner of {}", at.display()))?;
                if !matches!(entry.kind, Kind::Symlink(_)) {
                    // chown clears set-id bits: the record's mode again.
                    let mode = if matches!(entry.kind, Kind::Dir) { entry.mode | 0o700 } else { entry.mode };
                    std::fs::set_permissions(&at, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
                }
            }
            if matches!(entry.kind, Kind::Dir) && entry.mode & 0o700 != 0o700 {
                closed.push((at.clone(), entry.mode));
            }
            for (name, value) in tree.xattrs(&path).into_iter().flatten() {
                if let Err(e) = crate::tree::disk::set_xattr(&at, name, value) {
                    refused.push(format!("{name} of {path}: {e}"));
                }
            }
            bytes += entry.size();
            if let (Some(ahead), Kind::File { size, .. }) = (&ahead, &entry.kind) {
                ahead.advance(*size);
            }
        }
    }
    for (at, mode) in closed.iter().rev() {
        std::fs::set_permissions(at, std::os::unix::fs::PermissionsExt::from_mode(*mode))
            .with_context(|| format!("setting the mode of {}", at.display()))?;
    }
    Ok((Written { pending, bytes, sha256: None, skipped }, refused))
}

/// An archive every per-node image starts with, hashed once: each node's image copies
/// it (in the kernel) and hashes only its own part after it.
pub struct SharedPart {
    path: PathBuf,
    /// Its length and the hash of its bytes, to go on from.
    state: (u64, Sha256),
}

impl SharedPart {
    pub fn new(path: &Path) -> anyhow::Result<SharedPart> {
        let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut w = CountingWriter::hashing(std::io::sink());
        std::io::copy(&mut f, &mut w).with_context(|| format!("reading {}", path.display()))?;
        Ok(SharedPart { path: path.to_path_buf(), state: w.into_state() })
    }

    /// `dest` = the shared part, then `own`, as the kernel unpacks archives placed back
    /// to back. The shared bytes are copied by the kernel (copy_file_range, or a reflink
    /// where the filesystem has them).
    pub fn then(&self, own: &Path, dest: &Path) -> anyhow::Result<Written> {
        let pending = Pending::new(dest);
        std::fs::copy(&self.path, pending.temp_path())
            .with_context(|| format!("writing {}", dest.display()))?;
        let out = std::fs::OpenOptions::new().append(true).open(pending.temp_path())?;
        let mut w = CountingWriter::resuming(out, self.state.clone());
        let mut f = std::fs::File::open(own).with_context(|| format!("opening {}", own.display()))?;
        std::io::copy(&mut f, &mut w).with_context(|| format!("writing {}", dest.display()))?;
        let (_, bytes, sha256) = w.into_parts();
        Ok(Written { pending, bytes, sha256, skipped: 0 })
    }
}
