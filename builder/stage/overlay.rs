//! Overlays: each element's `root/` laid over the image, and its `iso/` laid over the
//! ISO-only tree, by reference.

use crate::element::{Element, ElementFile, FileKind};
use crate::io::source::Source;
use crate::path::ImagePath;
use crate::tree::{Entry, Kind, Tree, TreeError};

/// Adds `root/` of `element`; returns how many entries it placed. Each entry is built
/// from what the walk's `stat` saw: no file is opened or copied.
pub fn apply(tree: &mut Tree, element: &Element, mtime: i64) -> anyhow::Result<usize> {
    let mut count = 0;
    element.visit_root(|rel, file| {
        place(tree, element, "root", rel, file, mtime)?;
        count += 1;
        Ok(())
    })?;
    Ok(count)
}

/// Adds `iso/` of `element` to the tree of files that go on an ISO beside the image.
pub fn apply_iso(tree: &mut Tree, element: &Element, mtime: i64) -> anyhow::Result<usize> {
    let mut count = 0;
    for (rel, file) in element.files_under("iso") {
        place(tree, element, "iso", rel, file, mtime)?;
        count += 1;
    }
    Ok(count)
}

fn place(
    tree: &mut Tree,
    element: &Element,
    folder: &str,
    rel: &str,
    file: &ElementFile,
    mtime: i64,
) -> anyhow::Result<()> {
    let fail = |e: TreeError| anyhow::anyhow!("element `{}`: {folder}/{rel}: {e}", element.name);
    let path = match &file.kind {
        // Kept already by the walk that found it.
        FileKind::File(Source::Host(host)) if host.rel() == rel => ImagePath::kept(host.rel()),
        _ => ImagePath::new(rel),
    };
    let path = path.map_err(|e| fail(e.into()))?;
    let kind = match &file.kind {
        FileKind::Dir => Kind::Dir,
        FileKind::Symlink(target) => Kind::Symlink(target.clone()),
        FileKind::Device { kind, major, minor } => Kind::device(*kind, *major, *minor),
        FileKind::File(source) => match file.stat {
            Some(s) => Kind::File { source: source.clone(), size: s.size, alloc: s.alloc, link: s.link },
            None => Kind::file(source.clone(), source.byte_len()?),
        },
    };
    // Ownership is smelt's record: root, whoever owns the element's files.
    let mode = if matches!(kind, Kind::Symlink(_)) { 0o777 } else { file.mode };
    let when = file.stat.map_or(mtime, |s| s.mtime);
    let entry = Entry { kind, mode, uid: 0, gid: 0, mtime: when, element: element.name.as_str().into() };
    tree.insert(&path, entry).map_err(fail)?;
    Ok(())
}
