//! The staged image as records: a sorted map from image path to what goes there, whose
//! bytes come from, who owns it and which element put it there. Files are staged by
//! reference; nothing is copied until an archive is written.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

pub mod disk;
mod store;
pub mod tarball;

use store::{Peek, Store};

use crate::io::source::Source;
use crate::path::{ImagePath, PathError};

/// Why an entry cannot go where it was put.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("too many levels of symlinks resolving {0}")]
    LinkLoop(ImagePath),
    #[error("{parent} is a {kind}, so {path} cannot be created under it")]
    UnderNonDir { parent: String, kind: &'static str, path: String },
    #[error("the image root must be a directory")]
    RootNotDir,
    #[error("{path} is a directory with contents and cannot be replaced by a {kind}")]
    NotEmpty { path: ImagePath, kind: &'static str },
    #[error("mode {0:o} has more than permission bits")]
    Mode(u32),
    /// One of the packed store's limits (4 billion entries, 65536 owners or elements).
    #[error("an image holds at most {0}")]
    Full(&'static str),
}

/// What a device node or FIFO is, as elements declare it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    Char,
    Block,
    Fifo,
}

#[derive(Debug, Clone)]
pub enum Kind {
    Dir,
    File {
        source: Source,
        /// Apparent bytes.
        size: u64,
        /// Bytes the file occupies on a filesystem (allocated blocks).
        alloc: u64,
        /// Files sharing a key are hard links of one another.
        link: Option<(u64, u64)>,
    },
    Symlink(String),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
}

impl Kind {
    pub fn letter(&self) -> char {
        match self {
            Kind::Dir => 'd',
            Kind::File { .. } => '-',
            Kind::Symlink(_) => 'l',
            Kind::Char(..) => 'c',
            Kind::Block(..) => 'b',
            Kind::Fifo => 'p',
        }
    }

    /// A device node or FIFO as an element declares or holds it.
    pub fn device(kind: DeviceKind, major: u32, minor: u32) -> Kind {
        match kind {
            DeviceKind::Char => Kind::Char(major, minor),
            DeviceKind::Block => Kind::Block(major, minor),
            DeviceKind::Fifo => Kind::Fifo,
        }
    }

    /// A file not yet on disk or linked: its allocation is counted in 4 KiB blocks.
    pub fn file(source: Source, size: u64) -> Kind {
        Kind::File { source, size, alloc: size.next_multiple_of(4096), link: None }
    }

    /// The `S_IFMT` bits of a `st_mode`.
    pub fn type_bits(&self) -> u32 {
        match self {
            Kind::Dir => 0o040000,
            Kind::File { .. } => 0o100000,
            Kind::Symlink(_) => 0o120000,
            Kind::Char(..) => 0o020000,
            Kind::Block(..) => 0o060000,
            Kind::Fifo => 0o010000,
        }
    }
}

/// The name of the element an entry came from: one allocation per element, shared by
/// all of its entries (a tree of a million entries holds a handful of names).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ElementName(Arc<str>);

impl From<&str> for ElementName {
    fn from(name: &str) -> ElementName {
        static NAMES: Mutex<Option<HashSet<Arc<str>>>> = Mutex::new(None);
        let mut names = NAMES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let names = names.get_or_insert_with(HashSet::new);
        if let Some(known) = names.get(name) {
            return ElementName(Arc::clone(known));
        }
        let new: Arc<str> = name.into();
        names.insert(Arc::clone(&new));
        ElementName(new)
    }
}

impl From<&String> for ElementName {
    fn from(name: &String) -> ElementName {
        ElementName::from(name.as_str())
    }
}

impl std::ops::Deref for ElementName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for ElementName {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for ElementName {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl std::fmt::Display for ElementName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for ElementName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

impl serde::Serialize for ElementName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub kind: Kind,
    /// Permission bits only (`0o755`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Seconds since the epoch; clamped to `SOURCE_DATE_EPOCH` when archived.
    pub mtime: i64,
    /// The element that put it there (`smelt` for parents made automatically).
    pub element: ElementName,
}

impl Entry {
    pub fn dir(mode: u32, mtime: i64, element: &str) -> Entry {
        Entry { kind: Kind::Dir, mode, uid: 0, gid: 0, mtime, element: element.into() }
    }

    pub fn symlink(target: &str, mtime: i64, element: &str) -> Entry {
        Entry {
            kind: Kind::Symlink(target.into()),
            mode: 0o777,
            uid: 0,
            gid: 0,
            mtime,
            element: element.into(),
        }
    }

    /// A root-owned file of `size` bytes read from `source`.
    pub fn file(source: Source, size: u64, mode: u32, mtime: i64, element: &str) -> Entry {
        Entry { kind: Kind::file(source, size), mode, uid: 0, gid: 0, mtime, element: element.into() }
    }

    /// A file made by smelt (a rendered template, a generated file).
    pub fn bytes(data: Vec<u8>, mode: u32, mtime: i64, element: &str) -> Entry {
        let size = data.len() as u64;
        Entry::file(Source::Bytes(data.into()), size, mode, mtime, element)
    }

    /// The entry owned by root, as smelt records files it takes from the host.
    pub fn as_root(mut self) -> Entry {
        self.uid = 0;
        self.gid = 0;
        self
    }

    pub fn size(&self) -> u64 {
        match &self.kind {
            Kind::File { size, .. } => *size,
            Kind::Symlink(t) => t.len() as u64,
            _ => 0,
        }
    }

    pub fn alloc(&self) -> u64 {
        match &self.kind {
            Kind::File { alloc, .. } => *alloc,
            _ => 0,
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct Tree {
    entries: Store,
    /// Paths that belong to one node of the client (rendered per node), for per-node
    /// images: `--per-node` stamps them onto the shared part, node by node.
    nodes: BTreeMap<ImagePath, String>,
    /// Extended attributes (`security.capability`, SELinux labels) of the few entries
    /// that have any, as the base recorded them; gone when the entry is replaced.
    xattrs: BTreeMap<ImagePath, Xattrs>,
}

/// An entry's extended attributes: names and values, in name order.
pub type Xattrs = Vec<(String, Vec<u8>)>;

/// How deep symlinks may nest while resolving a path (the kernel's limit is 40).
const MAX_LINK_DEPTH: usize = 40;

impl Tree {
    /// Every entry in path order, unpacked from its record as it is read.
    pub fn iter(&self) -> impl Iterator<Item = (ImagePath, Entry)> + Clone + '_ {
        self.entries.iter()
    }

    /// Calls `change` on every entry in path order; what it says it changed (`true`) is
    /// kept.
    pub fn update(
        &mut self,
        change: impl FnMut(ImagePath, &mut Entry) -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        self.entries.update(change)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.len() == 0
    }

    pub fn get(&self, path: &ImagePath) -> Option<Entry> {
        self.entries.get(path.as_str())
    }

    /// Makes the file at `path` one of a group of hard links.
    pub fn set_link(&mut self, path: &ImagePath, key: (u64, u64)) {
        self.entries.set_link(path.as_str(), key);
    }

    pub fn remove(&mut self, path: &ImagePath) -> Option<Entry> {
        self.xattrs.remove(path);
        self.entries.remove(path.as_str())
    }

    /// Gives the entry at `path` extended attributes (none: it has none).
    pub fn set_xattrs(&mut self, path: ImagePath, mut xattrs: Xattrs) {
        xattrs.sort();
        if xattrs.is_empty() {
            self.xattrs.remove(&path);
        } else {
            self.xattrs.insert(path, xattrs);
        }
    }

    /// The extended attributes of the entry at `path`.
    pub fn xattrs(&self, path: &ImagePath) -> Option<&Xattrs> {
        self.xattrs.get(path)
    }

    /// Every entry that has extended attributes, in path order.
    pub fn with_xattrs(&self) -> impl Iterator<Item = (&ImagePath, &Xattrs)> {
        self.xattrs.iter()
    }

    /// Resolves symlinks among the parents of `path` as the image would, so that
    /// `bin/sh` lands in `usr/bin/sh` when `bin` links to `usr/bin`. The last component
    /// is not followed.
    pub fn resolve_parents(&self, path: &ImagePath) -> Result<ImagePath, TreeError> {
        // Most paths have no symlink among their parents: checked without allocating.
        if self.first_linked_parent(path.as_str())?.is_none() {
            return Ok(*path);
        }
        let mut depth = 0;
        let mut current = ImagePath::root();
        let mut rest: Vec<String> =
            path.as_str().split('/').filter(|s| !s.is_empty()).map(String::from).collect();
        rest.reverse();
        while let Some(part) = rest.pop() {
            let next = current.join(&part)?;
            if rest.is_empty() {
                return Ok(next);
            }
            match self.entries.peek(next.as_str()) {
                Some(Peek::Symlink(target)) => {
                    depth += 1;
                    if depth > MAX_LINK_DEPTH {
                        return Err(TreeError::LinkLoop(*path));
                    }
                    let resolved = next.resolve_link(target);
                    let mut parts: Vec<String> =
                        resolved.as_str().split('/').filter(|s| !s.is_empty()).map(String::from).collect();
                    parts.reverse();
                    rest.extend(parts);
                    current = ImagePath::root();
                }
                Some(Peek::Dir) | None => current = next,
                Some(Peek::Other(letter)) => {
                    return Err(TreeError::UnderNonDir {
                        parent: next.to_string(),
                        kind: describe(letter),
                        path: path.to_string(),
                    })
                }
            }
        }
        Ok(current)
    }

    /// The first parent of `path` that is a symlink, if any; an error when a parent is
    /// a file or a device.
    fn first_linked_parent<'p>(&self, path: &'p str) -> Result<Option<&'p str>, TreeError> {
        for (i, _) in path.match_indices('/') {
            let parent = &path[..i];
            match self.entries.peek(parent) {
                Some(Peek::Symlink(_)) => return Ok(Some(parent)),
                Some(Peek::Dir) | None => {}
                Some(Peek::Other(letter)) => {
                    return Err(TreeError::UnderNonDir {
                        parent: format!("/{parent}"),
                        kind: describe(letter),
                        path: format!("/{path}"),
                    })
                }
            }
        }
        Ok(None)
    }

    /// Puts `entry` at `path` (after resolving symlinked parents), creating missing
    /// parents as root-owned 0755 directories. A later entry replaces an earlier one; a
    /// directory over an existing directory (or a symlink to one) only updates its mode.
    /// Returns where the entry landed.
    pub fn insert(&mut self, path: &ImagePath, entry: Entry) -> Result<ImagePath, TreeError> {
        if path.is_root() {
            if let Kind::Dir = entry.kind {
                return Ok(ImagePath::root());
            }
            return Err(TreeError::RootNotDir);
        }
        let path = self.resolve_parents(path)?;
        self.make_parents(&path, entry.mtime, &entry.element)?;
        match (self.entries.peek(path.as_str()), &entry.kind) {
            (Some(Peek::Dir), Kind::Dir) => {
                self.entries.set_mode(path.as_str(), entry.mode, entry.uid, entry.gid)?
            }
            (Some(Peek::Symlink(_)), Kind::Dir) => {}
            (Some(Peek::Dir), _) if self.has_children(&path) => {
                return Err(TreeError::NotEmpty { path, kind: describe(entry.kind.letter()) });
            }
            _ => {
                self.xattrs.remove(&path);
                self.entries.put(path, &entry)?
            }
        }
        Ok(path)
    }

    /// Creates the missing parents of `path` (resolved already: its parents are
    /// directories or missing), nearest the root first.
    fn make_parents(&mut self, path: &ImagePath, mtime: i64, element: &ElementName) -> Result<(), TreeError> {
        let text = path.as_str();
        // Where the existing ancestors end: every parent below that one is missing.
        let ends: Vec<usize> = text.match_indices('/').map(|(i, _)| i).collect();
        let present = ends.iter().rposition(|&i| self.entries.contains(&text[..i]));
        let first_missing = present.map_or(0, |k| k + 1);
        for &end in &ends[first_missing..] {
            let dir = Entry { kind: Kind::Dir, mode: 0o755, uid: 0, gid: 0, mtime, element: element.clone() };
            self.entries.put(ImagePath::new(&text[..end])?, &dir)?;
        }
        Ok(())
    }

    fn has_children(&self, dir: &ImagePath) -> bool {
        self.below(dir).next().is_some()
    }

    /// The entries below `dir` (not `dir` itself), in path order.
    pub fn below(&self, dir: &ImagePath) -> impl Iterator<Item = (ImagePath, Entry)> + '_ {
        self.entries.below(*dir)
    }

    /// Records that `path` belongs to `node` only.
    pub fn mark_node(&mut self, path: ImagePath, node: &str) {
        self.nodes.insert(path, node.to_string());
    }

    /// Splits the tree for per-node images: the part every node shares, and each node's
    /// own part — what was marked for it and everything under `dir_of(node)` — with the
    /// node part's parent directories copied so their modes and owners stay the same
    /// when the kernel unpacks it over the shared part.
    pub fn split_by_node(
        &self,
        names: &[String],
        dir_of: impl Fn(&str) -> ImagePath,
    ) -> Result<(Tree, BTreeMap<String, Tree>), TreeError> {
        let owner = |path: &ImagePath| -> Option<&str> {
            if let Some(n) = self.nodes.get(path) {
                return Some(n.as_str());
            }
            names.iter().map(String::as_str).find(|n| path.starts_with(&dir_of(n)))
        };
        let mut shared = Tree::default();
        let mut parts: BTreeMap<String, Tree> = names.iter().map(|n| (n.clone(), Tree::default())).collect();
        for (path, entry) in self.iter() {
            match owner(&path).and_then(|n| parts.get_mut(n)) {
                Some(part) => {
                    let mut parent = path.parent();
                    while let Some(p) = parent.filter(|p| !p.is_root()) {
                        if let (Some(e), false) = (self.get(&p), part.entries.contains(p.as_str())) {
                            part.entries.put(p, &e)?;
                            part.copy_xattrs(self, p);
                        }
                        parent = p.parent();
                    }
                    part.entries.put(path, &entry)?;
                    part.copy_xattrs(self, path);
                }
                None => {
                    shared.entries.put(path, &entry)?;
                    shared.copy_xattrs(self, path);
                }
            }
        }
        Ok((shared, parts))
    }

    /// Removes every path `keep` refuses, returning how many.
    pub fn retain(&mut self, keep: impl FnMut(&ImagePath, &Entry) -> bool) -> usize {
        let removed = self.entries.retain(keep);
        if removed > 0 && !self.xattrs.is_empty() {
            let entries = &self.entries;
            self.xattrs.retain(|p, _| entries.contains(p.as_str()));
        }
        removed
    }

    fn copy_xattrs(&mut self, from: &Tree, path: ImagePath) {
        if let Some(x) = from.xattrs.get(&path) {
            self.xattrs.insert(path, x.clone());
        }
    }
}

/// What an entry of [`Kind::letter`] `letter` is called in messages.
fn describe(letter: char) -> &'static str {
    match letter {
        'd' => "directory",
        'l' => "symlink",
        'c' => "character device",
        'b' => "block device",
        'p' => "FIFO",
        _ => "file",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ImagePath {
        ImagePath::new(s).unwrap()
    }

    #[test]
    fn parents_are_made() {
        let mut t = Tree::default();
        t.insert(&p("usr/bin/sh"), Entry::bytes(b"x".to_vec(), 0o755, 0, "e")).unwrap();
        let paths: Vec<_> = t.iter().map(|(p, e)| (p.as_str().to_string(), e.kind.letter())).collect();
        assert_eq!(paths, vec![("usr".into(), 'd'), ("usr/bin".into(), 'd'), ("usr/bin/sh".into(), '-')]);
    }

    #[test]
    fn symlinked_parents_are_followed() {
        let mut t = Tree::default();
        t.insert(&p("bin"), Entry::symlink("usr/bin", 0, "base")).unwrap();
        let at = t.insert(&p("bin/busybox"), Entry::bytes(vec![], 0o755, 0, "bb")).unwrap();
        assert_eq!(at.as_str(), "usr/bin/busybox");
        // A directory over a symlink to a directory keeps the link.
        t.insert(&p("bin"), Entry::dir(0o755, 0, "other")).unwrap();
        assert!(matches!(t.get(&p("bin")).unwrap().kind, Kind::Symlink(_)));
    }

    #[test]
    fn a_file_cannot_hold_children() {
        let mut t = Tree::default();
        t.insert(&p("etc"), Entry::bytes(vec![], 0o644, 0, "a")).unwrap();
        let e = t.insert(&p("etc/motd"), Entry::bytes(vec![], 0o644, 0, "b")).unwrap_err();
        assert_eq!(e.to_string(), "/etc is a file, so /etc/motd cannot be created under it");
    }

    /// Regression: `usr/lib-x` sorts between `usr/lib` and `usr/lib/a`, and hid `usr/lib`'s
    /// children from the check that keeps a file from replacing a directory with contents.
    #[test]
    fn children_are_found_past_siblings_that_sort_between() {
        let mut t = Tree::default();
        t.insert(&p("usr/lib/a"), Entry::bytes(vec![], 0o644, 0, "a")).unwrap();
        t.insert(&p("usr/lib-x"), Entry::bytes(vec![], 0o644, 0, "a")).unwrap();
        let e = t.insert(&p("usr/lib"), Entry::bytes(vec![], 0o644, 0, "b")).unwrap_err();
        assert_eq!(e.to_string(), "/usr/lib is a directory with contents and cannot be replaced by a file");
        let usr = p("usr");
        let below: Vec<&str> = t.below(&usr).map(|(p, _)| p.as_str()).collect();
        assert_eq!(below, ["usr/lib", "usr/lib-x", "usr/lib/a"]);
    }

    #[test]
    fn later_entries_replace_earlier_ones() {
        let mut t = Tree::default();
        t.insert(&p("etc/motd"), Entry::bytes(b"a".to_vec(), 0o644, 0, "a")).unwrap();
        t.insert(&p("etc/motd"), Entry::bytes(b"bb".to_vec(), 0o600, 0, "b")).unwrap();
        let e = t.get(&p("etc/motd")).unwrap();
        assert_eq!((e.size(), e.mode, &*e.element), (2, 0o600, "b"));
    }
}
