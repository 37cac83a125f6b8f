//! `root/` overlays: each element's tree is laid over the image by reference.

use std::fs;

use anyhow::Context as _;

use super::disk::host_entry;
use super::tree::{Entry, Kind, Tree};
use crate::element::{Element, FileKind};
use crate::io::source::Source;
use crate::path::ImagePath;

/// Adds `root/` of `element`; returns how many entries it placed.
pub fn apply(tree: &mut Tree, element: &Element, mtime: i64) -> anyhow::Result<usize> {
    let mut count = 0;
    for (rel, file) in element.files_under("root") {
        let path = ImagePath::new(rel)
            .map_err(|e| anyhow::anyhow!("element `{}`: root/{rel}: {e}", element.name))?;
        let mut entry = match &file.kind {
            FileKind::Dir => Entry::dir(file.mode, mtime, &element.name),
            FileKind::Symlink(target) => Entry::symlink(target, mtime, &element.name),
            FileKind::File(Source::Host(p)) => {
                let meta = fs::symlink_metadata(p).with_context(|| format!("reading {}", p.display()))?;
                host_entry(p, &meta, &element.name)?
            }
            FileKind::File(src) => {
                let size = src.read_all()?.len() as u64;
                Entry {
                    kind: Kind::File {
                        source: src.clone(),
                        size,
                        alloc: size.div_ceil(4096) * 4096,
                        link: None,
                    },
                    ..Entry::dir(file.mode, mtime, &element.name)
                }
            }
        };
        // Ownership is smelt's record: root, whoever owns the element's files.
        entry.uid = 0;
        entry.gid = 0;
        tree.insert(&path, entry)
            .map_err(|e| anyhow::anyhow!("element `{}`: root/{rel}: {e}", element.name))?;
        count += 1;
    }
    Ok(count)
}
