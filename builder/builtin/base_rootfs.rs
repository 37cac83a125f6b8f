//! `base-rootfs`: a whole root filesystem as the base, from a tarball (plain, gz, xz or
//! zst) or a directory. A tarball's members are staged by reference — each record points at its bytes inside the
//! uncompressed tar — with the owners, modes and devices its headers give, so staging
//! from it needs neither root nor a copy.

use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::path::Path;

use super::{given, BuiltIn, Context, Identity};
use anyhow::{bail, Context as _};

use crate::io::source::{HostPath, Source};
use crate::path::ImagePath;
use crate::tree::disk::{add_dir, Owners};
use crate::tree::{Entry, Kind, Tree};

/// Adds every member of an uncompressed tarball to the tree, by reference.
pub fn add_tar(tree: &mut Tree, tar_path: &Path, element: &str) -> anyhow::Result<usize> {
    let file = HostPath::new(tar_path);
    let reader = std::fs::File::open(tar_path)
        .with_context(|| format!("element `{element}`: opening {}", tar_path.display()))?;
    let mut archive = tar::Archive::new(BufReader::with_capacity(1 << 20, reader));
    let mut links: HashMap<ImagePath, (u64, u64)> = HashMap::new();
    let mut count = 0;
    let fail =
        |e: &dyn std::fmt::Display| anyhow::anyhow!("element `{element}`: {}: {e}", tar_path.display());
    for (index, member) in archive.entries().map_err(|e| fail(&e))?.enumerate() {
        let member = member.map_err(|e| fail(&e))?;
        let h = member.header();
        let name = member.path().map_err(|e| fail(&e))?.to_string_lossy().into_owned();
        let path = ImagePath::new(&name).map_err(|e| fail(&e))?;
        if path.is_root() {
            continue;
        }
        let size = h.size().map_err(|e| fail(&e))?;
        let device = || -> anyhow::Result<(u32, u32)> {
            Ok((
                h.device_major().map_err(|e| fail(&e))?.unwrap_or(0),
                h.device_minor().map_err(|e| fail(&e))?.unwrap_or(0),
            ))
        };
        let link_target = || -> anyhow::Result<String> {
            Ok(member
                .link_name()
                .map_err(|e| fail(&e))?
                .map(|l| l.to_string_lossy().into_owned())
                .unwrap_or_default())
        };
        use tar::EntryType as T;
        let kind = match h.entry_type() {
            T::Regular | T::Continuous => {
                Kind::file(Source::Range { file, offset: member.raw_file_position(), len: size }, size)
            }
            T::Directory => Kind::Dir,
            T::Symlink => Kind::Symlink(link_target()?),
            T::Link => {
                // A hard link names an earlier member: share its data and link key.
                let target = ImagePath::new(&link_target()?).map_err(|e| fail(&e))?;
                let key = *links.entry(target).or_insert((u64::MAX, index as u64));
                let Some(Kind::File { source, size, alloc, .. }) = tree.get(&target).map(|e| e.kind) else {
                    bail!("element `{element}`: {}: {name} is a hard link to {target}, which is not a file before it", tar_path.display());
                };
                tree.set_link(&target, key);
                Kind::File { source, size, alloc, link: Some(key) }
            }
            T::Char => {
                let (ma, mi) = device()?;
                Kind::Char(ma, mi)
            }
            T::Block => {
                let (ma, mi) = device()?;
                Kind::Block(ma, mi)
            }
            T::Fifo => Kind::Fifo,
            _ => continue,
        };
        let entry = Entry {
            kind,
            mode: h.mode().map_err(|e| fail(&e))? & 0o7777,
            uid: h.uid().map_err(|e| fail(&e))? as u32,
            gid: h.gid().map_err(|e| fail(&e))? as u32,
            mtime: h.mtime().map_err(|e| fail(&e))? as i64,
            element: element.into(),
        };
        tree.insert(&path, entry).map_err(|e| fail(&e))?;
        count += 1;
    }
    Ok(count)
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct BaseRootfs {
    source: Option<String>,
    distro: Option<String>,
    release: Option<String>,
    init_system: Option<String>,
}

impl BuiltIn for BaseRootfs {
    /// `source` is a tarball (plain, or gz/xz/zst, unpacked once into the cache) or a
    /// directory, relative to image.toml.
    fn stage(&self, tree: &mut Tree, cx: &mut Context) -> anyhow::Result<usize> {
        let element = cx.element;
        let source = given(&self.source);
        let source = crate::lock::read(&cx.image.dir().join(source.with_context(|| {
            format!("element `{element}`: param `source` is empty; name a rootfs tarball or directory")
        })?));
        let meta = std::fs::metadata(&source)
            .with_context(|| format!("element `{element}`: source {}", source.display()))?;
        if meta.is_dir() {
            // Files owned by the user running smelt become root's, other owners are kept.
            return add_dir(tree, &source, &ImagePath::root(), element, Owners::Kept);
        }
        let mut magic = [0u8; 6];
        let n = std::fs::File::open(&source)?.read(&mut magic)?;
        let compressed = match &magic[..n.min(6)] {
            [0x1f, 0x8b, ..] => Some("gz"),
            [0xfd, b'7', b'z', b'X', b'Z', 0] => Some("xz"),
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Some("zst"),
            _ => None,
        };
        let Some(kind) = compressed else { return add_tar(tree, &source, element) };
        // Members are staged by reference into an uncompressed copy, made once per content.
        let digest = crate::io::count::sha256_file(&source)?;
        let plain = crate::cache::dir().join("rootfs").join(format!("{}.tar", &digest[..32]));
        if !plain.exists() {
            let dir = plain.parent().expect("has a parent");
            std::fs::create_dir_all(dir)?;
            crate::io::atomic::sweep(dir);
            let pending = crate::io::atomic::Pending::new(&plain);
            let input = BufReader::new(std::fs::File::open(&source)?);
            let mut reader: Box<dyn Read> = match kind {
                "gz" => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
                "xz" => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(input)),
                _ => Box::new(zstd::stream::read::Decoder::with_buffer(input)?),
            };
            let mut out = pending.create_file()?;
            std::io::copy(&mut reader, &mut out)
                .with_context(|| format!("element `{element}`: unpacking {}", source.display()))?;
            pending.publish()?;
        }
        add_tar(tree, &plain, element)
    }

    fn identity(&self) -> Identity {
        let given = |v| given(v).map(String::from);
        Identity {
            distro: given(&self.distro),
            release: given(&self.release),
            init_system: given(&self.init_system),
        }
    }
}
