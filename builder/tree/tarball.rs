//! A tar file's members staged into the tree by reference — each record points at its
//! bytes inside the uncompressed tar — with the owners, modes, devices, hard links and
//! extended attributes (pax `SCHILY.xattr.*` records, as GNU tar and mmdebstrap write
//! them) its headers give, so staging from it needs neither root nor a copy.

use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::path::Path;

use anyhow::{bail, Context as _};

use super::{Entry, Kind, Tree, Xattrs};
use crate::io::source::{HostPath, Source};
use crate::path::ImagePath;

/// Whether SELinux labels (`security.selinux`) come across: an image that is not run
/// under the same policy is better without them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Labels {
    Kept,
    Dropped,
}

/// Adds every member of an uncompressed tarball to the tree, by reference.
pub fn add_tar(tree: &mut Tree, tar_path: &Path, element: &str, labels: Labels) -> anyhow::Result<usize> {
    let file = HostPath::new(tar_path);
    let reader = std::fs::File::open(tar_path)
        .with_context(|| format!("element `{element}`: opening {}", tar_path.display()))?;
    let mut archive = tar::Archive::new(BufReader::with_capacity(1 << 20, reader));
    let mut links: HashMap<ImagePath, (u64, u64)> = HashMap::new();
    let mut count = 0;
    let fail =
        |e: &dyn std::fmt::Display| anyhow::anyhow!("element `{element}`: {}: {e}", tar_path.display());
    for (index, member) in archive.entries().map_err(|e| fail(&e))?.enumerate() {
        let mut member = member.map_err(|e| fail(&e))?;
        let xattrs = xattrs(&mut member, labels).map_err(|e| fail(&e))?;
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
        let at = tree.insert(&path, entry).map_err(|e| fail(&e))?;
        if !xattrs.is_empty() {
            tree.set_xattrs(at, xattrs);
        }
        count += 1;
    }
    Ok(count)
}

/// The extended attributes a member's pax records carry.
fn xattrs<R: Read>(member: &mut tar::Entry<R>, labels: Labels) -> std::io::Result<Xattrs> {
    let mut found = Xattrs::new();
    let Some(records) = member.pax_extensions()? else { return Ok(found) };
    for record in records {
        let record = record?;
        let Ok(key) = record.key() else { continue };
        let Some(name) = key.strip_prefix("SCHILY.xattr.") else { continue };
        if name == "security.selinux" && labels == Labels::Dropped {
            continue;
        }
        found.push((name.to_string(), record.value_bytes().to_vec()));
    }
    Ok(found)
}
