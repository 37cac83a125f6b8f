//! ISO 9660 images (Rock Ridge + Joliet, level 3) written by hadris-iso from the staged
//! tree, optionally bootable: El Torito for BIOS (isolinux) and UEFI (an EFI system
//! partition), with an MBR + GPT so the same file boots from a USB stick.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, Context as _};
use hadris_fs::{Content, DateTime, DeviceNumber, FileType, Node, Owner, Permissions, SetAttr};
use hadris_iso::{
    AppendedPartition, BootEntry, BootInfo, ElTorito, Hybrid, IsoId, IsoLevel, IsoOptions, NameCase,
    Relocation,
};

use super::Written;
use crate::io::atomic::Pending;
use crate::io::source::Source;
use crate::stage::tree::{Kind, Tree};

/// What makes an ISO bootable; every path is inside the ISO.
pub struct Boot {
    /// The isolinux boot image (`isolinux/isolinux.bin`), patched with a boot info table.
    pub bios_image: String,
    pub catalog: String,
    /// isohybrid MBR boot code (syslinux `isohdpfx.bin`).
    pub mbr_code: Vec<u8>,
    /// The EFI system partition, a FAT image.
    pub esp: Vec<u8>,
}

/// An ISO laid out but not written: its size is known, so budgets are checked before
/// a byte is written.
pub struct Layout {
    tree: hadris_fs::Tree,
    options: IsoOptions,
    pub size: u64,
    /// What the format could not store as asked (hadris's report), for the user.
    pub warnings: Vec<Warning>,
}

/// Something an ISO stores differently from the tree: what, and where.
pub struct Warning {
    pub what: String,
    pub path: Option<String>,
}

/// Lays out `layers` (later ones over earlier ones) as an ISO labelled `label`, dated
/// `epoch` (every timestamp is clamped to it), bootable when `boot` is given.
/// Files that live inside a tarball (`Source::Range`) are copied out to `scratch`
/// first: hadris reads whole host files.
pub fn lay_out(
    layers: &[&Tree],
    label: &str,
    epoch: i64,
    boot: Option<&Boot>,
    scratch: &Path,
) -> anyhow::Result<Layout> {
    let time = DateTime::from_unix_seconds(epoch).map_err(|e| anyhow!("date {epoch}: {e:?}"))?;
    let mut htree = hadris_fs::Tree::new();
    let mut spilled = 0usize;
    for layer in layers {
        add_layer(&mut htree, layer, epoch, scratch, &mut spilled)?;
    }
    let mut options = IsoOptions::new()
        .with_id(IsoId::Volume, label)
        .with_id(IsoId::Application, "SMELT")
        .with_level(IsoLevel::L3)
        .with_name_case(NameCase::Preserve)
        .with_joliet()
        .with_rock_ridge()
        // Directories deeper than ISO 9660's 8 levels move to a hidden `.rr_moved` (Rock
        // Ridge relocation; Linux and libarchive follow it back to where they belong).
        .with_relocation(Relocation::DotRrMoved)
        .with_time(time);
    if let Some(b) = boot {
        let bios = BootEntry::bios(&b.bios_image).with_load_size(4).with_boot_info(BootInfo::Table);
        options = options
            .with_el_torito(
                ElTorito::new()
                    .with_entry(bios)
                    .with_entry(BootEntry::uefi_appended(0))
                    .with_catalog_path(&b.catalog),
            )
            .with_hybrid(
                Hybrid::gpt_hybrid_mbr()
                    .with_bootstrap(&b.mbr_code)
                    .with_appended(AppendedPartition::esp(Content::bytes(b.esp.clone()))),
            );
    }
    let report = hadris_iso::plan(&htree, &options).map_err(|e| anyhow!("laying out the ISO: {e}"))?;
    let devices = layers
        .iter()
        .flat_map(|l| l.iter())
        .filter(|(_, e)| matches!(e.kind, Kind::Char(..) | Kind::Block(..)))
        .count();
    let mut warnings: Vec<Warning> = report
        .warnings()
        .iter()
        .map(|w| {
            let path = w.path().map(|p| format!("/{}", String::from_utf8_lossy(p)));
            let stored = w.stored_as().map(|s| format!(" (stored as {})", String::from_utf8_lossy(s)));
            Warning { what: w.message().to_string(), path: path.map(|p| p + &stored.unwrap_or_default()) }
        })
        .collect();
    if devices > 0 {
        warnings.push(Warning {
            what: format!(
                "{devices} device nodes: Linux reads their numbers right; xorriso and bsdtar show other numbers \
                 (hadris-iso writes Rock Ridge device numbers as major/minor halves)"
            ),
            path: None,
        });
    }
    Ok(Layout { size: report.size(), tree: htree, options, warnings })
}

/// Writes a laid-out ISO under a temporary name next to `dest`, streaming file data
/// from its sources, and checks the size matches the layout.
pub fn write(layout: &Layout, dest: &Path) -> anyhow::Result<Written> {
    let pending = Pending::new(dest);
    let file = pending.create_file()?;
    let device = hadris_storage::host::FileDevice::new(file).context("opening the ISO for writing")?;
    let mut device = HashingDevice::new(device);
    let report = hadris_iso::sync::write(&mut device, &layout.tree, &layout.options)
        .map_err(|e| anyhow!("writing {}: {e}", dest.display()))?;
    let bytes = std::fs::metadata(pending.temp_path())?.len();
    if bytes != report.size() || bytes != layout.size {
        anyhow::bail!("writing {}: {bytes} bytes written, {} laid out", dest.display(), layout.size);
    }
    let sha256 = match device.finish(bytes) {
        Some(hash) => hash,
        None => crate::io::count::sha256_file(pending.temp_path())?,
    };
    Ok(Written { pending, bytes, sha256: Some(sha256), skipped: 0 })
}

/// A block device that hashes what is written to it on another thread, so the ISO's
/// checksum costs no second read. hadris-iso writes each block once, in ascending
/// order; should a write ever skip or go back, the hash is given up (`finish` returns
/// `None`) and the caller reads the file instead.
struct HashingDevice<D> {
    inner: D,
    next: u64,
    in_order: bool,
    batch: Vec<u8>,
    chunks: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    hasher: Option<std::thread::JoinHandle<(u64, String)>>,
}

impl<D: hadris_storage::sync::BlockDevice> HashingDevice<D> {
    fn new(inner: D) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
        let hasher = std::thread::spawn(move || {
            let mut w = crate::io::count::CountingWriter::hashing(std::io::sink());
            for chunk in rx {
                let _ = std::io::Write::write_all(&mut w, &chunk);
            }
            let (_, n, hex) = w.into_parts();
            (n, hex.expect("a hashing writer"))
        });
        HashingDevice {
            inner,
            next: 0,
            in_order: true,
            batch: Vec::with_capacity(2 << 20),
            chunks: Some(tx),
            hasher: Some(hasher),
        }
    }

    fn send_batch(&mut self) {
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(2 << 20));
        if let Some(tx) = &self.chunks {
            let _ = tx.send(batch);
        }
    }

    /// The SHA-256 of the `len` bytes written, if they were written in one pass.
    fn finish(&mut self, len: u64) -> Option<String> {
        self.send_batch();
        drop(self.chunks.take());
        let (hashed, hex) = self.hasher.take()?.join().ok()?;
        (self.in_order && hashed == len).then_some(hex)
    }
}

impl<D: hadris_io::ErrorType> hadris_io::ErrorType for HashingDevice<D> {
    type Error = D::Error;
}

impl<D: hadris_storage::sync::BlockDevice> hadris_storage::sync::BlockDevice for HashingDevice<D> {
    fn block_size(&self) -> hadris_storage::BlockSize {
        self.inner.block_size()
    }
    fn physical_block_size(&self) -> hadris_storage::BlockSize {
        self.inner.physical_block_size()
    }
    fn block_count(&self) -> u64 {
        self.inner.block_count()
    }
    fn max_block_count(&self) -> u64 {
        self.inner.max_block_count()
    }
    fn disk_offset(&self) -> u64 {
        self.inner.disk_offset()
    }
    fn writable(&self) -> bool {
        self.inner.writable()
    }
    fn read_blocks(
        &mut self,
        first: hadris_storage::BlockIndex,
        buf: &mut [u8],
    ) -> Result<(), hadris_io::Error<Self::Error>> {
        self.inner.read_blocks(first, buf)
    }
    fn write_blocks(
        &mut self,
        first: hadris_storage::BlockIndex,
        buf: &[u8],
    ) -> Result<(), hadris_io::Error<Self::Error>> {
        self.inner.write_blocks(first, buf)?;
        let block = self.inner.block_size().get() as u64;
        if first.get() * block != self.next {
            self.in_order = false;
        }
        self.next = first.get() * block + buf.len() as u64;
        if self.in_order {
            // hadris writes a block or a few at a time: hand the hasher 1 MiB batches.
            self.batch.extend_from_slice(buf);
            if self.batch.len() >= 1 << 20 {
                self.send_batch();
            }
        }
        Ok(())
    }
    /// The host file device's flush is an fsync. Outputs are not synced (neither
    /// are cpio's, zstd's or xorriso's): they are complete before they are renamed into
    /// place, which is the guarantee smelt gives; forcing 700 MB to disk first tripled
    /// the time of a large ISO.
    fn flush(&mut self) -> Result<(), hadris_io::Error<Self::Error>> {
        Ok(())
    }
}

/// Adds staged records to hadris's input tree: smelt's modes, owners and clamped mtimes
/// on every node, hard links as links, devices with their numbers. An entry already
/// there is replaced, except a directory by a directory.
fn add_layer(
    out: &mut hadris_fs::Tree,
    tree: &Tree,
    epoch: i64,
    scratch: &Path,
    spilled: &mut usize,
) -> anyhow::Result<()> {
    let mut first_link: BTreeMap<(u64, u64), String> = BTreeMap::new();
    for (path, e) in tree.iter() {
        let name = path.as_str();
        let fail = |err: hadris_fs::PathError| anyhow!("ISO entry {path}: {err}");
        if let Kind::File { link: Some(key), .. } = &e.kind {
            if let Some(existing) = first_link.get(key) {
                out.link(existing.as_str(), name).map_err(fail)?;
                continue;
            }
            first_link.insert(*key, name.to_string());
        }
        let node = match &e.kind {
            Kind::Dir => Node::dir(),
            Kind::File { source, size, .. } => Node::file(content(source, *size, scratch, spilled)?),
            Kind::Symlink(t) => Node::symlink(t.as_bytes()),
            Kind::Char(ma, mi) => Node::special(FileType::CharDevice, Some(DeviceNumber::new(*ma, *mi))),
            Kind::Block(ma, mi) => Node::special(FileType::BlockDevice, Some(DeviceNumber::new(*ma, *mi))),
            Kind::Fifo => Node::special(FileType::Fifo, None),
        };
        let mtime =
            DateTime::from_unix_seconds(e.mtime.min(epoch).max(0)).map_err(|er| anyhow!("{path}: {er:?}"))?;
        let attrs = SetAttr::new()
            .with_modified(mtime)
            .with_accessed(mtime)
            .with_created(mtime)
            .with_permissions(Permissions::new(e.mode))
            .with_owner(Owner::new(e.uid, e.gid));
        match out.get(name) {
            Some(existing) if existing.file_type() == FileType::Dir && node.file_type() == FileType::Dir => {}
            Some(_) => out.replace(name, node.with_attrs(attrs)).map_err(fail)?,
            None => out.insert(name, node.with_attrs(attrs)).map_err(fail)?,
        }
    }
    Ok(())
}

fn content(source: &Source, size: u64, scratch: &Path, spilled: &mut usize) -> anyhow::Result<Content> {
    Ok(match source {
        Source::Host(p) => {
            let c = hadris_fs::host::file(p).map_err(|e| anyhow!("{}: {e}", p.display()))?;
            if c.len() != size {
                anyhow::bail!("{} changed size while the image was built", p.display());
            }
            c
        }
        Source::Static(b) => Content::bytes(b.to_vec()),
        Source::Bytes(b) => Content::bytes(b.to_vec()),
        Source::Range { .. } => {
            std::fs::create_dir_all(scratch)?;
            *spilled += 1;
            let path = scratch.join(format!("iso-{spilled}"));
            let mut out =
                std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
            std::io::copy(&mut source.open()?, &mut out)
                .with_context(|| format!("copying {}", source.describe()))?;
            hadris_fs::host::file(&path).map_err(|e| anyhow!("{}: {e}", path.display()))?
        }
    })
}
