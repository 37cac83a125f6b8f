//! ISO 9660 images (Rock Ridge + Joliet, level 3) written by hadris-iso from the staged
//! tree, optionally bootable: El Torito for BIOS (isolinux) and UEFI (an EFI system
//! partition), with an MBR + GPT so the same file boots from a USB stick. A data ISO's
//! files may be stored compressed ([`zisofs`]), read back by Linux as plain files.

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
use crate::io::prefetch::{Prefetch, Span};
use crate::io::source::Source;
use crate::tree::{Kind, Tree};

mod device;
pub mod zisofs;

/// How an ISO stores its files' bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FileCompression {
    /// As they are.
    #[default]
    None,
    /// Compressed where that saves a sector, with Rock Ridge `ZF` entries ([`zisofs`]).
    Zisofs,
}

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
    /// No layout of the tree takes more bytes (see [`most_bytes`]).
    most_bytes: u64,
    /// Reading the host files ahead of hadris, from a cold cache.
    ahead: Option<Prefetch>,
    /// The files stored compressed, with their plain sizes, for their `ZF` entries.
    zisofs: BTreeMap<String, u64>,
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
/// `epoch` (every timestamp is clamped to it), bootable when `boot` is given, its
/// files stored as `compression` says. Files that live inside a tarball
/// (`Source::Range`) are copied out to `scratch` first: hadris reads whole host files.
pub fn prepare(
    layers: &[&Tree],
    label: &str,
    epoch: i64,
    boot: Option<&Boot>,
    compression: FileCompression,
    scratch: &Path,
) -> anyhow::Result<Image> {
    let time = DateTime::from_unix_seconds(epoch).map_err(|e| anyhow!("date {epoch}: {e:?}"))?;
    // From a cold cache, the disk starts on the files while the tree is made and laid
    // out. Compressed files are read while the tree is made, on every core.
    let ahead = match compression {
        FileCompression::None => {
            let files = layers.iter().flat_map(|l| l.iter()).filter_map(|(_, e)| match &e.kind {
                Kind::File { source, size, .. } => Span::of(source, *size),
                _ => None,
            });
            Prefetch::start(files, || reads(layers))
        }
        FileCompression::Zisofs => None,
    };
    let mut htree = hadris_fs::Tree::new();
    let mut spilled = 0usize;
    let mut zisofs = BTreeMap::new();
    for layer in layers {
        let sink = (compression == FileCompression::Zisofs).then_some(&mut zisofs);
        add_layer(&mut htree, layer, epoch, scratch, &mut spilled, sink)?;
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
    Ok(Image { tree: htree, options, most_bytes: most_bytes(layers, boot), ahead, zisofs })
}

impl Image {
    /// Lays the ISO out without writing it: its size and warnings.
    fn lay_out(&self) -> anyhow::Result<Layout> {
        let report =
            hadris_iso::plan(&self.tree, &self.options).map_err(|e| anyhow!("laying out the ISO: {e}"))?;
        Ok(self.layout(&report))
    }

    /// What hadris's report says of the ISO, and what smelt knows it cannot say.
    fn layout(&self, report: &hadris_fs::Report) -> Layout {
        let warnings: Vec<Warning> = report
            .warnings()
            .iter()
            .map(|w| {
                let path = w.path().map(|p| format!("/{}", String::from_utf8_lossy(p)));
                let stored = w.stored_as().map(|s| format!(" (stored as {})", String::from_utf8_lossy(s)));
                Warning { what: w.message().to_string(), path: path.map(|p| p + &stored.unwrap_or_default()) }
            })
            .collect();
        Layout { size: report.size(), warnings }
    }

    /// Writes the ISO under a temporary name next to `dest`, streaming file data from
    /// its sources, unless its layout is over `limit` bytes. Returns the layout, and the
    /// ISO unless it was refused; nothing is left behind when it was.
    ///
    /// hadris lays the image out itself before its first byte. When even the largest
    /// ISO the tree could make fits `limit`, that layout is the only one. Otherwise
    /// another thread lays it out alongside and stops the write as it starts if it
    /// is over.
    pub fn write(&self, dest: &Path, limit: Option<u64>) -> anyhow::Result<(Layout, Option<Written>)> {
        let Some(limit) = limit.filter(|&max| self.most_bytes > max) else {
            let (layout, written) = self.write_file(dest, &AtomicBool::new(false))?;
            return Ok((layout, Some(written)));
        };
        let cancel = AtomicBool::new(false);
        let (layout, written) = std::thread::scope(|s| {
            let planner = s.spawn(|| {
                let layout = self.lay_out();
                if !layout.as_ref().is_ok_and(|l| l.size <= limit) {
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
        let (_, written) = written?;
        Ok((layout, Some(written)))
    }

    fn write_file(&self, dest: &Path, cancel: &AtomicBool) -> anyhow::Result<(Layout, Written)> {
        let pending = Pending::new(dest);
        let file = pending.create_file()?;
        let mut device = Device::new(file, self.most_bytes, cancel, self.ahead.as_ref())
            .context("starting the ISO writer")?;
        let written = hadris_iso::sync::write(&mut device, &self.tree, &self.options);
        let finished = device.finish();
        // The writer thread's error (a full disk) explains a failed write best.
        let (bytes, sha256) = finished.with_context(|| format!("writing {}", dest.display()))?;
        let report = written.map_err(|e| anyhow!("writing {}: {e}", dest.display()))?;
        if bytes != report.size() {
            anyhow::bail!("writing {}: {bytes} bytes written, {} laid out", dest.display(), report.size());
        }
        let sha256 = match sha256 {
            Some(hash) if self.zisofs.is_empty() => hash,
            // The ZF entries change records already hashed: hashed again, from the cache.
            _ => {
                if !self.zisofs.is_empty() {
                    let file =
                        std::fs::OpenOptions::new().read(true).write(true).open(pending.temp_path())?;
                    zisofs::mark(&file, &self.zisofs)
                        .with_context(|| format!("writing {}", dest.display()))?;
                }
                crate::io::count::sha256_file(pending.temp_path())?
            }
        };
        Ok((self.layout(&report), Written { pending, bytes, sha256: Some(sha256), skipped: 0 }))
    }
}

/// The host files of `layers` in the order hadris writes them: directories in preorder,
/// each one's files before its subdirectories'. A tarball member is not among them: it
/// is copied out, and so cached, before the write.
fn reads(layers: &[&Tree]) -> Vec<Span> {
    let mut files: Vec<(&str, Span)> = layers
        .iter()
        .flat_map(|l| l.iter())
        .filter_map(|(path, e)| match &e.kind {
            Kind::File { source: source @ Source::Host(_), size, .. } => {
                Some((path.as_str(), Span::of(source, *size)?))
            }
            _ => None,
        })
        .collect();
    // By directory, component by component, then by name.
    fn split(p: &str) -> (&str, &str) {
        p.rsplit_once('/').unwrap_or(("", p))
    }
    files.sort_by(|(a, _), (b, _)| {
        let ((a_dir, a_name), (b_dir, b_name)) = (split(a), split(b));
        a_dir.split('/').cmp(b_dir.split('/')).then(a_name.cmp(b_name))
    });
    files.into_iter().map(|(_, span)| span).collect()
}

/// The most bytes an ISO of `layers` can take, known without laying it out: every
/// file's data in whole sectors; for every entry a sector of records and Rock Ridge
/// fields in the two name trees, with room for its name and link target in both;
/// for every directory the sectors its extents, continuation area, path table entries
/// and a possible relocation round up to; and 1 MiB for the system area, descriptors,
/// boot catalog, partition tables and the 150 sectors of padding, beside the EFI
/// partition. Generous by design: it decides only whether a layout must come first.
fn most_bytes(layers: &[&Tree], boot: Option<&Boot>) -> u64 {
    const SECTOR: u64 = 2048;
    let mut bytes = (1 << 20) + boot.map_or(0, |b| (b.esp.len() as u64).next_multiple_of(SECTOR));
    for (path, e) in layers.iter().flat_map(|l| l.iter()) {
        let name = path.as_str().rsplit('/').next().unwrap_or_default().len() as u64;
        bytes += 2 * SECTOR + 2 * name;
        bytes += match &e.kind {
            Kind::Dir => 6 * SECTOR + 4 * (name + 10),
            Kind::File { size, .. } => size.next_multiple_of(SECTOR),
            Kind::Symlink(target) => 4 * target.len() as u64,
            Kind::Char(..) | Kind::Block(..) | Kind::Fifo => 0,
        };
    }
    bytes
}

/// Adds staged records to hadris's input tree: smelt's modes, owners and clamped mtimes
/// on every node, hard links as links, devices with their numbers. An entry already
/// there is replaced, except a directory by a directory. Nodes are made (an `open` and
/// `stat` per file, in hadris) on another thread, ahead of their insertion.
fn add_layer(
    out: &mut hadris_fs::Tree,
    tree: &Tree,
    epoch: i64,
    scratch: &Path,
    spilled: &mut usize,
    mut zisofs: Option<&mut BTreeMap<String, u64>>,
) -> anyhow::Result<()> {
    let compress = zisofs.is_some();
    // In tree order, what each entry becomes: a link to the first path of its inode, or
    // its own node, made (and for a tarball member, copied out) by the mappers.
    let mut first_link: BTreeMap<(u64, u64), String> = BTreeMap::new();
    let jobs = tree.iter().map(|(path, entry)| {
        let name = path.as_str().to_string();
        if let Kind::File { link: Some(key), .. } = entry.kind {
            match first_link.get(&key) {
                Some(to) => return Job { name, entry, link_to: Some(to.clone()), spill: None },
                None => first_link.insert(key, name.clone()),
            };
        }
        let spill = matches!(&entry.kind, Kind::File { source: Source::Range { .. }, .. }).then(|| {
            *spilled += 1;
            scratch.join(format!("iso-{spilled}"))
        });
        Job { name, entry, link_to: None, spill }
    });
    let make = |job: Job| -> anyhow::Result<Item> {
        let Job { name, entry: e, link_to, spill } = job;
        if let Some(to) = link_to {
            return Ok(Item::Link { to, name });
        }
        let mut plain_size = None;
        let node = match &e.kind {
            Kind::Dir => Node::dir(),
            Kind::File { source, size, .. } => {
                let packed = if compress { zisofs::cached(source, *size)? } else { None };
                match packed {
                    Some(path) => {
                        plain_size = Some(*size);
                        Node::file(
                            hadris_fs::host::file(&path).map_err(|er| anyhow!("{}: {er}", path.display()))?,
                        )
                    }
                    None => Node::file(content(source, *size, spill.as_deref())?),
                }
            }
            Kind::Symlink(t) => Node::symlink(t.as_bytes()),
            Kind::Char(ma, mi) => Node::special(FileType::CharDevice, Some(rock_ridge_device(*ma, *mi))),
            Kind::Block(ma, mi) => Node::special(FileType::BlockDevice, Some(rock_ridge_device(*ma, *mi))),
            Kind::Fifo => Node::special(FileType::Fifo, None),
        };
        let mtime =
            DateTime::from_unix_seconds(e.mtime.min(epoch).max(0)).map_err(|er| anyhow!("{name}: {er:?}"))?;
        let attrs = SetAttr::new()
            .with_modified(mtime)
            .with_accessed(mtime)
            .with_created(mtime)
            .with_permissions(Permissions::new(e.mode))
            .with_owner(Owner::new(e.uid, e.gid));
        Ok(Item::Node(name, node.with_attrs(attrs), plain_size))
    };
    crate::io::ahead::map_in_order(jobs, make, |item| {
        let (name, done) = match item? {
            Item::Link { to, name } => {
                let done = out.link(to.as_str(), name.as_str());
                if let Some(packed) = zisofs.as_deref_mut() {
                    match packed.get(&to).copied() {
                        Some(size) => packed.insert(name.clone(), size),
                        None => packed.remove(&name),
                    };
                }
                (name, done)
            }
            Item::Node(name, node, plain_size) => {
                if let Some(packed) = zisofs.as_deref_mut() {
                    match plain_size {
                        Some(size) => packed.insert(name.clone(), size),
                        None => packed.remove(&name),
                    };
                }
                let done = match out.get(name.as_str()) {
                    Some(old) if old.file_type() == FileType::Dir && node.file_type() == FileType::Dir => {
                        Ok(())
                    }
                    Some(_) => out.replace(name.as_str(), node),
                    None => out.insert(name.as_str(), node),
                };
                (name, done)
            }
        };
        done.map_err(|err| anyhow!("ISO entry {name}: {err}"))
    })
}

/// A staged entry on its way into hadris's tree.
struct Job {
    name: String,
    entry: crate::tree::Entry,
    /// The path that already holds its inode (a hard link).
    link_to: Option<String>,
    /// Where its bytes are copied out to, for a file inside a tarball.
    spill: Option<std::path::PathBuf>,
}

/// A staged record as hadris takes it: a node (with the plain size of a file stored
/// compressed), or a hard link to an earlier path.
enum Item {
    Node(String, Node, Option<u64>),
    Link { to: String, name: String },
}

/// A device number as Rock Ridge's `PN` entry holds it, the way mkisofs writes it: the
/// Linux `dev_t` split into its high and low 32 bits (high 0 for every number that fits).
/// hadris writes a [`DeviceNumber`]'s major and minor as those two halves, so the
/// encoded `dev_t` goes in as they. Linux (fs/isofs/rock.c: a high of 0 with a low above
/// 0xff is `MKDEV(low >> 8, low & 0xff)`), libarchive, xorriso and isoinfo all read this.
pub fn rock_ridge_device(major: u32, minor: u32) -> DeviceNumber {
    let dev = libc::makedev(major, minor);
    DeviceNumber::new((dev >> 32) as u32, dev as u32)
}

/// The (major, minor) of a `PN` entry's two halves, as [`rock_ridge_device`] wrote them.
pub fn from_rock_ridge_device(high: u32, low: u32) -> (u32, u32) {
    let dev = (u64::from(high) << 32) | u64::from(low);
    (libc::major(dev), libc::minor(dev))
}

/// A file's bytes as hadris reads them; a tarball member is copied out to `spill` first.
fn content(source: &Source, size: u64, spill: Option<&Path>) -> anyhow::Result<Content> {
    Ok(match source {
        Source::Host(p) => {
            let c = hadris_fs::host::file(p.to_path_buf()).map_err(|e| anyhow!("{p}: {e}"))?;
            if c.len() != size {
                anyhow::bail!("{p} changed size while the image was built");
            }
            c
        }
        Source::Static(b) => Content::bytes(b.to_vec()),
        Source::Bytes(b) => Content::bytes(b.to_vec()),
        Source::Range { .. } => {
            let path = spill.expect("a spill path for every tarball member");
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut out =
                std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
            std::io::copy(&mut source.open()?, &mut out)
                .with_context(|| format!("copying {}", source.describe()))?;
            hadris_fs::host::file(path).map_err(|e| anyhow!("{}: {e}", path.display()))?
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::ImagePath;
    use crate::tree::Entry;

    fn put(tree: &mut Tree, path: &str, entry: Entry) {
        tree.insert(&ImagePath::new(path).unwrap(), entry).unwrap();
    }

    /// Entries whose records get as large as they can: names of up to 255 bytes (cut for
    /// Joliet), link targets of many short components, directories deep enough to be
    /// relocated, devices, empty and odd-sized files.
    #[test]
    fn device_numbers_are_encoded_as_mkisofs_does() {
        let pn = |ma, mi| {
            let d = rock_ridge_device(ma, mi);
            (d.major(), d.minor())
        };
        assert_eq!(pn(1, 3), (0, 0x103));
        assert_eq!(pn(5, 1), (0, 0x501));
        assert_eq!(pn(8, 0), (0, 0x800));
        for (ma, mi) in [(1, 3), (5, 1), (259, 70000), (4095, 1 << 19)] {
            let d = rock_ridge_device(ma, mi);
            assert_eq!(from_rock_ridge_device(d.major(), d.minor()), (ma, mi));
        }
    }

    #[test]
    fn no_layout_takes_more_than_most_bytes() {
        let mut tree = Tree::default();
        let mut deep = String::new();
        for level in 0..12 {
            deep += &format!("{}{level}/", "d".repeat(20 * level));
            put(&mut tree, deep.trim_end_matches('/'), Entry::dir(0o755, 0, "t"));
        }
        // Thousands of entries with little data: the records are most of the image.
        for i in 0..3000usize {
            let name = format!("{i}-{}", "x".repeat(i % 250));
            let dir = if i % 3 == 0 { deep.clone() } else { format!("top{}/", i % 7) };
            put(&mut tree, &format!("{dir}{name}"), Entry::bytes(vec![b'y'; (i * 37) % 300], 0o644, 0, "t"));
            put(&mut tree, &format!("{dir}L{name}"), Entry::symlink(&"a/".repeat(i % 300), 0, "t"));
        }
        let dev = Entry { kind: Kind::Char(1, 3), ..Entry::dir(0o666, 0, "t") };
        put(&mut tree, "dev/null", dev);
        let image =
            prepare(&[&tree], "BOUND", 0, None, FileCompression::None, Path::new("/nonexistent")).unwrap();
        let layout = image.lay_out().unwrap();
        assert!(
            layout.size <= image.most_bytes,
            "laid out {} bytes, most_bytes says at most {}",
            layout.size,
            image.most_bytes
        );
    }
}
