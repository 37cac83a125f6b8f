//! ISO 9660 images (Rock Ridge + Joliet, level 3) written by hadris-iso from the staged
//! tree, optionally bootable: El Torito for BIOS (isolinux) and UEFI (an EFI system
//! partition), with an MBR + GPT so the same file boots from a USB stick.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{anyhow, Context as _};
use hadris_fs::{Content, DateTime, DeviceNumber, FileType, Node, Owner, Permissions, SetAttr};
use hadris_iso::{
    AppendedPartition, BootEntry, BootInfo, ElTorito, Hybrid, IsoId, IsoLevel, IsoOptions, NameCase,
    Relocation,
};

use self::device::Device;
use super::Written;
use crate::io::atomic::Pending;
use crate::io::source::Source;
use crate::stage::tree::{Kind, Tree};

mod device;

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

/// An ISO's input, ready to be laid out and written.
pub struct Image {
    tree: hadris_fs::Tree,
    options: IsoOptions,
    /// Device nodes in the tree, whose numbers other readers misread (a warning).
    devices: usize,
}

/// An ISO laid out: its size is known before a byte is written, so budgets are
/// checked from it.
pub struct Layout {
    pub size: u64,
    /// What the format could not store as asked (hadris's report), for the user.
    pub warnings: Vec<Warning>,
}

/// Something an ISO stores differently from the tree: what, and where.
pub struct Warning {
    pub what: String,
    pub path: Option<String>,
}

/// Prepares `layers` (later ones over earlier ones) as an ISO labelled `label`, dated
/// `epoch` (every timestamp is clamped to it), bootable when `boot` is given.
/// Files that live inside a tarball (`Source::Range`) are copied out to `scratch`
/// first: hadris reads whole host files.
pub fn prepare(
    layers: &[&Tree],
    label: &str,
    epoch: i64,
    boot: Option<&Boot>,
    scratch: &Path,
) -> anyhow::Result<Image> {
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
    let devices = layers
        .iter()
        .flat_map(|l| l.iter())
        .filter(|(_, e)| matches!(e.kind, Kind::Char(..) | Kind::Block(..)))
        .count();
    Ok(Image { tree: htree, options, devices })
}

impl Image {
    /// Lays the ISO out without writing it: its size and warnings.
    pub fn lay_out(&self) -> anyhow::Result<Layout> {
        let report =
            hadris_iso::plan(&self.tree, &self.options).map_err(|e| anyhow!("laying out the ISO: {e}"))?;
        let mut warnings: Vec<Warning> = report
            .warnings()
            .iter()
            .map(|w| {
                let path = w.path().map(|p| format!("/{}", String::from_utf8_lossy(p)));
                let stored = w.stored_as().map(|s| format!(" (stored as {})", String::from_utf8_lossy(s)));
                Warning { what: w.message().to_string(), path: path.map(|p| p + &stored.unwrap_or_default()) }
            })
            .collect();
        if self.devices > 0 {
            warnings.push(Warning {
                what: format!(
                    "{} device nodes: Linux reads their numbers right; xorriso and bsdtar show other numbers \
                     (hadris-iso writes Rock Ridge device numbers as major/minor halves)",
                    self.devices
                ),
                path: None,
            });
        }
        Ok(Layout { size: report.size(), warnings })
    }

    /// Writes the ISO under a temporary name next to `dest`, streaming file data from
    /// its sources, while another thread lays it out and hands the layout to `accept`.
    /// A layout `accept` refuses (over budget) stops the write as it starts — hadris
    /// lays the image out itself before its first byte — and leaves nothing behind.
    /// Returns the layout, and the ISO unless it was refused.
    pub fn write(
        &self,
        dest: &Path,
        accept: impl FnOnce(&Layout) -> bool + Send,
    ) -> anyhow::Result<(Layout, Option<Written>)> {
        let cancel = AtomicBool::new(false);
        let (layout, written) = std::thread::scope(|s| {
            let planner = s.spawn(|| {
                let layout = self.lay_out();
                if !layout.as_ref().is_ok_and(accept) {
                    cancel.store(true, Ordering::Relaxed);
                }
                layout
            });
            let written = self.write_file(dest, &cancel);
            (planner.join().expect("the ISO layout thread panicked"), written)
        });
        let layout = layout?;
        if cancel.load(Ordering::Relaxed) {
            return Ok((layout, None));
        }
        let written = written?;
        if written.bytes != layout.size {
            anyhow::bail!(
                "writing {}: {} bytes written, {} laid out",
                dest.display(),
                written.bytes,
                layout.size
            );
        }
        Ok((layout, Some(written)))
    }

    fn write_file(&self, dest: &Path, cancel: &AtomicBool) -> anyhow::Result<Written> {
        let pending = Pending::new(dest);
        let file = pending.create_file()?;
        let mut device = Device::new(file, cancel).context("starting the ISO writer")?;
        let written = hadris_iso::sync::write(&mut device, &self.tree, &self.options);
        let finished = device.finish();
        // The writer thread's error (a full disk) explains a failed write best.
        let (bytes, sha256) = finished.with_context(|| format!("writing {}", dest.display()))?;
        let report = written.map_err(|e| anyhow!("writing {}: {e}", dest.display()))?;
        if bytes != report.size() {
            anyhow::bail!("writing {}: {bytes} bytes written, {} laid out", dest.display(), report.size());
        }
        let sha256 = match sha256 {
            Some(hash) => hash,
            None => crate::io::count::sha256_file(pending.temp_path())?,
        };
        Ok(Written { pending, bytes, sha256: Some(sha256), skipped: 0 })
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
