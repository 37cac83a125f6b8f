//! `[prune]`, `[[permissions]]` and `[[devices]]`: the last word on what the image
//! holds, applied to the records after every hook has run.

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::element::Element;
use crate::path::ImagePath;
use crate::tree::{Entry, Kind, Tree};

fn globs<'a>(patterns: impl Iterator<Item = &'a String>) -> anyhow::Result<GlobSet> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(Glob::new(p.trim_start_matches('/'))?);
    }
    Ok(b.build()?)
}

/// Removes paths matching any element's `remove` globs unless they match a `keep` glob.
/// Directories that still hold kept paths stay. Returns (paths, bytes) removed.
pub fn prune(tree: &mut Tree, elements: &[Element]) -> anyhow::Result<(usize, u64)> {
    let remove = globs(elements.iter().flat_map(|e| &e.manifest.prune.remove))?;
    if remove.is_empty() {
        return Ok((0, 0));
    }
    let keep = globs(elements.iter().flat_map(|e| &e.manifest.prune.keep))?;
    let doomed = |p: &ImagePath| remove.is_match(p.as_str()) && !keep.is_match(p.as_str());
    let mut needed = std::collections::BTreeSet::new();
    for (path, _) in tree.iter().filter(|(p, _)| !doomed(p)) {
        let mut parent = path.parent();
        while let Some(p) = parent.filter(|p| !p.is_root()) {
            if !needed.insert(p) {
                break;
            }
            parent = p.parent();
        }
    }
    let mut bytes = 0;
    let count = tree.retain(|p, e| {
        let gone = doomed(p) && !needed.contains(p);
        if gone {
            bytes += e.size();
        }
        !gone
    });
    Ok((count, bytes))
}

/// Applies every element's `[[permissions]]`, in element order.
pub fn permissions(tree: &mut Tree, elements: &[Element]) -> anyhow::Result<()> {
    for e in elements {
        for perm in &e.manifest.permissions {
            let glob = Glob::new(&perm.glob)?.compile_matcher();
            tree.update(|path, entry| {
                if !glob.is_match(path.as_str()) {
                    return Ok(false);
                }
                entry.mode = perm.mode.unwrap_or(entry.mode);
                entry.uid = perm.uid.unwrap_or(entry.uid);
                entry.gid = perm.gid.unwrap_or(entry.gid);
                Ok(true)
            })?;
        }
    }
    Ok(())
}

/// Refuses symlinks whose relative target climbs above the image root: inside the
/// ramdisk they would stop at `/`, but in a `dir` output or an ISO extracted on a host
/// they point outside the image. Absolute targets are resolved inside the image.
pub fn check_links(tree: &Tree) -> anyhow::Result<()> {
    let mut bad = Vec::new();
    for (path, e) in tree.iter() {
        let Kind::Symlink(target) = &e.kind else { continue };
        if target.starts_with('/') {
            continue;
        }
        let mut depth = path.as_str().matches('/').count() as i64;
        for part in target.split('/') {
            match part {
                ".." => depth -= 1,
                "" | "." => {}
                _ => depth += 1,
            }
            if depth < 0 {
                bad.push(format!(
                    "element `{}`: symlink {path} -> {target} points outside the image root; \
                     make it absolute (resolved inside the image) or point it within",
                    e.element
                ));
                break;
            }
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{}", bad.join("\n"))
    }
}

/// Adds every element's `[[devices]]`: no root is needed, as they only exist as records.
pub fn devices(tree: &mut Tree, elements: &[Element], mtime: i64) -> anyhow::Result<()> {
    for e in elements {
        for d in &e.manifest.devices {
            let kind = Kind::device(d.kind, d.major, d.minor);
            let entry =
                Entry { kind, mode: d.mode, uid: d.uid, gid: d.gid, mtime, element: e.name.as_str().into() };
            tree.insert(&d.path, entry)
                .map_err(|m| anyhow::anyhow!("element `{}`: device {}: {m}", e.name, d.path))?;
        }
    }
    Ok(())
}
