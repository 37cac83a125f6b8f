//! Writing the staged tree out: a compressed newc initramfs, or a plain directory. Each
//! output is written under a temporary name; the caller publishes it once it is within
//! budget.

pub mod esp;
pub mod iso;
pub mod newc;
pub mod ramdisk_tar;

use std::io::BufWriter;
use std::path::Path;

use anyhow::Context as _;

use crate::io::atomic::Pending;
use crate::io::compress::{Compression, Compressor};
use crate::io::count::CountingWriter;
use crate::stage::disk::write_entry;
use crate::stage::tree::Tree;

/// A finished output waiting to be published.
pub struct Written {
    pub pending: Pending,
    pub bytes: u64,
    pub sha256: Option<String>,
    /// Entries that could not be represented (devices in a `dir` output).
    pub skipped: usize,
}

/// Streams the tree as newc through the compressor into `dest` (temporarily named).
/// Memory stays flat: one buffer per stage, whatever the tree's size.
pub fn initramfs(
    tree: &Tree,
    epoch: Option<i64>,
    compression: Compression,
    dest: &Path,
    progress: impl FnMut(u64),
) -> anyhow::Result<Written> {
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

/// Writes the tree as a directory. Ownership cannot be set without privilege, and
/// device nodes cannot be made: they are counted in `skipped`.
pub fn dir(tree: &Tree, dest: &Path) -> anyhow::Result<Written> {
    let pending = Pending::new(dest);
    let root = pending.temp_path().to_path_buf();
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let mut skipped = 0;
    let mut bytes = 0;
    for (path, entry) in tree.iter() {
        if !write_entry(entry, &root.join(path.as_str()))? {
            skipped += 1;
        }
        bytes += entry.size();
    }
    Ok(Written { pending, bytes, sha256: None, skipped })
}
