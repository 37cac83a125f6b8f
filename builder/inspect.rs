//! Reading outputs back: an initramfs (newc, in any of smelt's compressions, or several
//! archives back to back as the kernel takes them), an ISO (through Rock Ridge), or a
//! build's manifest (`--manifest`), as one listing that `inspect` prints and `diff`
//! compares.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::{bail, Context as _};
use serde::Serialize;

use crate::archive::newc;

/// One path of an archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Item {
    pub path: String,
    /// `ls -l`'s type letter.
    pub kind: char,
    pub mode: String,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// A device's (major, minor).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rdev: Option<(u32, u32)>,
    /// A file's SHA-256, where the format gives its data (an initramfs), for `diff`.
    #[serde(skip, default)]
    pub sha256: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Listing {
    /// `initramfs`, `iso` or `manifest`.
    pub format: &'static str,
    /// For an initramfs, the compression of each archive in it, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub compressions: Vec<&'static str>,
    /// By path; a path in several archives keeps the last, as the kernel does.
    pub items: BTreeMap<String, Item>,
}

impl Listing {
    pub fn total_bytes(&self) -> u64 {
        self.items.values().map(|i| i.size).sum()
    }

    /// Bytes of regular files under each directory (every ancestor counts them).
    pub fn dir_totals(&self) -> BTreeMap<String, u64> {
        let mut totals = BTreeMap::new();
        for item in self.items.values().filter(|i| i.kind == '-') {
            let mut path = item.path.as_str();
            while let Some((parent, _)) = path.rsplit_once('/') {
                let key = if parent.is_empty() { "/" } else { parent };
                *totals.entry(key.to_string()).or_insert(0) += item.size;
                path = parent;
            }
        }
        totals
    }
}

pub fn read(path: &Path) -> anyhow::Result<Listing> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut probe = [0u8; 32774];
    let n = read_up_to(&mut file, &mut probe)?;
    if n >= 32774 && &probe[32769..32774] == b"CD001" {
        return read_iso(path);
    }
    if is_manifest(&probe[..n]) {
        return read_manifest(path);
    }
    let mut input = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut listing = Listing { format: "initramfs", compressions: Vec::new(), items: BTreeMap::new() };
    read_members(&mut input, &mut listing).with_context(|| format!("reading {}", path.display()))?;
    if listing.compressions.is_empty() {
        bail!("{} is empty", path.display());
    }
    Ok(listing)
}

/// Whether a file starting with `head` is a manifest: JSON lines, plain or zstd.
fn is_manifest(head: &[u8]) -> bool {
    let plain = match head {
        [0x28, 0xb5, 0x2f, 0xfd, ..] => zstd::stream::read::Decoder::new(head)
            .ok()
            .and_then(|mut d| {
                let mut first = [0u8; 9];
                d.read_exact(&mut first).ok().map(|()| first.to_vec())
            })
            .unwrap_or_default(),
        _ => head.to_vec(),
    };
    plain.starts_with(b"{\"path\":")
}

/// A manifest as a listing: one JSON object a line, as `smelt build --manifest` writes.
fn read_manifest(path: &Path) -> anyhow::Result<Listing> {
    let mut file = BufReader::new(File::open(path).with_context(|| format!("opening {}", path.display()))?);
    let lines: Box<dyn BufRead> = if file.fill_buf()?.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(BufReader::new(zstd::stream::read::Decoder::with_buffer(file)?))
    } else {
        Box::new(file)
    };
    let mut items = BTreeMap::new();
    for (i, line) in lines.lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        let mut item: Item = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not a manifest entry", path.display(), i + 1))?;
        // Sizes of files only, as the archives' listings give them (a link's is its
        // target's length in the manifest).
        if item.kind != '-' {
            item.size = 0;
        }
        items.insert(item.path.clone(), item);
    }
    Ok(Listing { format: "manifest", compressions: Vec::new(), items })
}

/// Reads archive after archive, each plain or compressed, until the input ends.
fn read_members(input: &mut dyn BufRead, listing: &mut Listing) -> anyhow::Result<()> {
    while newc::skip_padding(input)? {
        let magic: Vec<u8> = input.fill_buf()?.iter().take(6).copied().collect();
        let items = &mut listing.items;
        let mut add = |e: newc::ReadEntry| {
            let item = item_from_newc(e);
            items.insert(item.path.clone(), item);
        };
        let compression = match magic.as_slice() {
            [0x28, 0xb5, 0x2f, 0xfd, ..] => {
                let mut d = zstd::stream::read::Decoder::with_buffer(&mut *input)?.single_frame();
                newc::read_archives(&mut BufReader::new(&mut d), &mut add)?;
                "zstd"
            }
            [0x1f, 0x8b, ..] => {
                let mut d = flate2::bufread::GzDecoder::new(&mut *input);
                newc::read_archives(&mut BufReader::new(&mut d), &mut add)?;
                "gzip"
            }
            [0xfd, b'7', b'z', b'X', b'Z', 0] => {
                let mut d = liblzma::bufread::XzDecoder::new(&mut *input);
                newc::read_archives(&mut BufReader::new(&mut d), &mut add)?;
                "xz"
            }
            // A plain archive ends at its trailer; anything may follow (a compressed
            // archive after early microcode, say).
            [b'0', b'7', b'0', b'7', b'0', b'1'] => {
                newc::read_archive(input, &mut add)?;
                "none"
            }
            _ => {
                bail!("not an ISO or a newc initramfs (plain, zstd, gzip or xz); it starts with {magic:02x?}")
            }
        };
        listing.compressions.push(compression);
    }
    Ok(())
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn item_from_newc(entry: newc::ReadEntry) -> Item {
    let e = &entry.header;
    let kind = match e.mode & 0o170000 {
        0o040000 => 'd',
        0o120000 => 'l',
        0o020000 => 'c',
        0o060000 => 'b',
        0o010000 => 'p',
        0o140000 => 's',
        _ => '-',
    };
    let path = if e.name == "." { "/".to_string() } else { format!("/{}", e.name.trim_start_matches("./")) };
    Item {
        path,
        kind,
        mode: format!("{:04o}", e.mode & 0o7777),
        uid: e.uid,
        gid: e.gid,
        size: if kind == '-' { e.size as u64 } else { 0 },
        rdev: matches!(kind, 'c' | 'b').then_some(e.rdev),
        target: entry.target,
        sha256: entry.sha256,
    }
}

fn read_iso(path: &Path) -> anyhow::Result<Listing> {
    use hadris_fs::FileType;
    let device = hadris_storage::host::FileDevice::open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let fs = hadris_iso::sync::IsoFs::mount(device, hadris_fs::MountOptions::new())
        .map_err(|e| anyhow::anyhow!("reading {} as ISO 9660: {e}", path.display()))?;
    let volume = hadris_fs::sync::Volume::new(fs);
    // Files stored compressed (zisofs) are listed with their plain sizes.
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let plain = crate::archive::iso::zisofs::compressed(&file)
        .with_context(|| format!("reading {}'s Rock Ridge entries", path.display()))?;
    let tree = hadris_fs::sync::read_tree(&volume, "/")
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    let mut items = BTreeMap::new();
    let mut stack = vec![(String::new(), tree.root())];
    while let Some((prefix, dir)) = stack.pop() {
        for (name, child) in dir.children() {
            let path = format!("{prefix}/{}", String::from_utf8_lossy(name.as_ref()));
            let node = child.node();
            let kind = match node.file_type() {
                FileType::Dir => 'd',
                FileType::Symlink => 'l',
                FileType::CharDevice => 'c',
                FileType::BlockDevice => 'b',
                FileType::Fifo => 'p',
                FileType::Socket => 's',
                _ => '-',
            };
            let attrs = node.attrs();
            let owner = attrs.owner();
            items.insert(
                path.clone(),
                Item {
                    path: path.clone(),
                    kind,
                    mode: format!("{:04o}", attrs.permissions().map_or(0, |p| p.bits())),
                    uid: owner.map_or(0, |o| o.uid()),
                    gid: owner.map_or(0, |o| o.gid()),
                    size: plain
                        .get(&path[1..])
                        .copied()
                        .unwrap_or_else(|| node.content().map_or(0, |c| c.len())),
                    target: node.target().map(|t| String::from_utf8_lossy(t).into_owned()),
                    rdev: node
                        .device()
                        .map(|d| crate::archive::iso::from_rock_ridge_device(d.major(), d.minor())),
                    sha256: None,
                },
            );
            if kind == 'd' {
                stack.push((path, child));
            }
        }
    }
    let compressions = if plain.is_empty() { Vec::new() } else { vec!["zisofs"] };
    Ok(Listing { format: "iso", compressions, items })
}
