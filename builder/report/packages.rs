//! Which distribution package each byte of the image came from, read from the package
//! database the image itself carries (dpkg's `/var/lib/dpkg/info/PKG.list`): the report
//! says what made an image big by package — a compiler, firmware, ICU's data — where
//! the element table can only say "base-debian".

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::path::ImagePath;
use crate::tree::{Kind, Tree};

/// Where dpkg lists each installed package's files, one absolute path a line.
const DPKG_INFO: &str = "var/lib/dpkg/info";

/// The row of the regular files no package installed.
pub const NO_PACKAGE: &str = "(no package)";

#[derive(Serialize, Debug, PartialEq)]
pub struct PackageShare {
    pub name: String,
    /// Apparent bytes of the package's regular files still in the image.
    pub bytes: u64,
    pub files: u64,
}

/// The packages by the bytes of their files in `tree`, largest first, the regular
/// files no package lists (a virtualenv, what hooks wrote) among them as a row named
/// `(no package)`; empty when the image has no dpkg database. A file listed
/// by two packages (a diversion) counts for the first, by name; hard links' bytes
/// count once.
pub fn by_package(tree: &Tree) -> Vec<PackageShare> {
    let Ok(info) = ImagePath::new(DPKG_INFO) else { return Vec::new() };
    let mut owner: HashMap<ImagePath, usize> = HashMap::new();
    let mut shares: Vec<PackageShare> = Vec::new();
    for (path, entry) in tree.below(&info) {
        let Some(name) = path.as_str().strip_suffix(".list").and_then(|p| p.rsplit('/').next()) else {
            continue;
        };
        let Kind::File { source, .. } = &entry.kind else { continue };
        let Ok(text) = source.read_all() else { continue };
        let index = shares.len();
        // Multi-arch packages' lists are PKG:ARCH.list: the package is what users name.
        let name = name.split(':').next().unwrap_or(name);
        shares.push(PackageShare { name: name.to_string(), bytes: 0, files: 0 });
        for line in String::from_utf8_lossy(&text).lines() {
            let Ok(listed) = ImagePath::new(line) else { continue };
            // Lists name paths as dpkg unpacked them: /bin/sh is /usr/bin/sh when /bin
            // links to /usr/bin.
            let Ok(at) = tree.resolve_parents(&listed) else { continue };
            if matches!(tree.get(&at).map(|e| e.kind), Some(Kind::File { .. })) {
                owner.entry(at).or_insert(index);
            }
        }
    }
    if shares.is_empty() {
        return shares;
    }
    let mut loose = PackageShare { name: NO_PACKAGE.into(), bytes: 0, files: 0 };
    let mut linked = HashSet::new();
    for (path, entry) in tree.iter() {
        if let Kind::File { size, link, .. } = entry.kind {
            let share = owner.get(&path).map_or(&mut loose, |&i| &mut shares[i]);
            share.files += 1;
            // Hard links take their bytes once, as the budget counts them.
            if link.is_none_or(|key| linked.insert(key)) {
                share.bytes += size;
            }
        }
    }
    shares.push(loose);
    shares.retain(|s| s.files > 0);
    shares.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
    shares
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::Entry;

    fn file(tree: &mut Tree, path: &str, bytes: usize) {
        tree.insert(&ImagePath::new(path).unwrap(), Entry::bytes(vec![b'x'; bytes], 0o644, 0, "t")).unwrap();
    }

    #[test]
    fn files_count_for_the_package_that_lists_them_through_symlinked_dirs() {
        let mut tree = Tree::default();
        tree.insert(&ImagePath::new("bin").unwrap(), Entry::symlink("usr/bin", 0, "t")).unwrap();
        file(&mut tree, "usr/bin/bash", 1000);
        file(&mut tree, "usr/bin/gcc-12", 5000);
        file(&mut tree, "opt/venv/lib/thing.so", 300);
        let list = |tree: &mut Tree, name: &str, text: &str| {
            let path = format!("var/lib/dpkg/info/{name}.list");
            tree.insert(
                &ImagePath::new(&path).unwrap(),
                Entry::bytes(text.as_bytes().to_vec(), 0o644, 0, "t"),
            )
            .unwrap();
        };
        // bash lists /bin/bash (merged /usr), and a file since removed.
        list(&mut tree, "bash", "/.\n/bin\n/bin/bash\n/usr/share/doc/bash/gone\n");
        list(&mut tree, "gcc-12:amd64", "/usr/bin/gcc-12\n");
        list(&mut tree, "removed", "/usr/bin/nothing-left\n");
        let shares = by_package(&tree);
        let row = |name: &str, bytes: u64, files: u64| PackageShare { name: name.into(), bytes, files };
        // The list files themselves belong to no package.
        let lists = ("/.\n/bin\n/bin/bash\n/usr/share/doc/bash/gone\n".len() + 16 + 22) as u64;
        assert_eq!(
            shares,
            vec![row("gcc-12", 5000, 1), row("bash", 1000, 1), row("(no package)", 300 + lists, 4)],
            "largest first, what no package installed among them"
        );
    }

    #[test]
    fn an_image_without_dpkg_has_no_package_table() {
        let mut tree = Tree::default();
        file(&mut tree, "bin/busybox", 1000);
        assert!(by_package(&tree).is_empty());
    }
}
