//! How the tree keeps its entries compactly: one 48-byte record per entry, kept in the
//! order entries came; an index from path to record; and the records in path order,
//! sorted only when first read after entries came out of order. A million entries take
//! about 70 MiB with their paths. What only some entries have (a source other than a
//! walked host file, a symlink's target, a hard-link key) lives in side tables.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::path::Path;
use std::sync::OnceLock;

use hashbrown::{DefaultHashBuilder, HashTable};

use super::{ElementName, Entry, Kind, TreeError};
use crate::arena::keep_str;
use crate::io::source::{HostPath, Source};
use crate::path::ImagePath;

/// What a record holds, and so where the rest of it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Dir,
    /// A host file whose path is a walk's root and the tail of its image path.
    Walked,
    /// A file whose source is in `sources`.
    File,
    Symlink,
    Char,
    Block,
    Fifo,
    /// Removed: skipped by every reader, never indexed.
    Gone,
}

#[derive(Debug, Clone)]
struct Record {
    path: ImagePath,
    /// A file's or a symlink target's length; a device's `major << 32 | minor`.
    size: u64,
    mtime: i64,
    /// A file's allocated bytes, in 512-byte blocks.
    blocks: u32,
    /// `Walked`: the walk in `walks`; `File`: the source in `sources`; `Symlink`: the
    /// target in `targets`.
    data: u32,
    mode: u16,
    owner: u16,
    element: u16,
    shape: Shape,
    /// Whether `links` holds the file's hard-link key.
    linked: bool,
}

/// A light look at an entry, for resolving paths without unpacking it.
pub enum Peek {
    Dir,
    Symlink(&'static str),
    /// Anything else, by its [`Kind::letter`].
    Other(char),
}

#[derive(Debug, Clone, Default)]
pub struct Store {
    records: Vec<Record>,
    live: usize,
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
    /// Indices into `records` in path order (removed ones included, skipped on reading).
    order: Vec<u32>,
    /// Records added out of path order since `order` was last sorted.
    unsorted: Vec<u32>,
    /// `order` and `unsorted` merged, made by the first reader that needs it.
    merged: OnceLock<Vec<u32>>,
    /// Walks of host directories: the root, and how long the image path's part before the
    /// root's tail is.
    walks: Vec<(&'static Path, u32)>,
    sources: Vec<Source>,
    targets: Vec<&'static str>,
    owners: Vec<(u32, u32)>,
    elements: Vec<ElementName>,
    links: HashMap<u32, (u64, u64)>,
}

impl Store {
    pub fn len(&self) -> usize {
        self.live
    }

    fn find(&self, path: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(path);
        self.index.find(hash, |&i| self.records[i as usize].path.as_str() == path).copied()
    }

    pub fn contains(&self, path: &str) -> bool {
        self.find(path).is_some()
    }

    pub fn peek(&self, path: &str) -> Option<Peek> {
        let r = &self.records[self.find(path)? as usize];
        Some(match r.shape {
            Shape::Dir => Peek::Dir,
            Shape::Symlink => Peek::Symlink(self.targets[r.data as usize]),
            Shape::Walked | Shape::File => Peek::Other('-'),
            Shape::Char => Peek::Other('c'),
            Shape::Block => Peek::Other('b'),
            Shape::Fifo => Peek::Other('p'),
            Shape::Gone => unreachable!("removed records are not indexed"),
        })
    }

    pub fn get(&self, path: &str) -> Option<Entry> {
        self.find(path).map(|i| self.unpack(i))
    }

    /// Puts `entry` at `path`, replacing what was there.
    pub fn put(&mut self, path: ImagePath, entry: &Entry) -> Result<(), TreeError> {
        let existing = self.find(path.as_str());
        let mut record = self.pack(
            path,
            entry,
            existing.map(|i| (self.records[i as usize].shape, self.records[i as usize].data)),
        )?;
        let link = match entry.kind {
            Kind::File { link, .. } => link,
            _ => None,
        };
        record.linked = link.is_some();
        let i = match existing {
            Some(i) => {
                self.records[i as usize] = record;
                i
            }
            None => self.add(record)?,
        };
        match link {
            Some(key) => self.links.insert(i, key),
            None => self.links.remove(&i),
        };
        Ok(())
    }

    /// Records a new path: indexed, and placed in path order or left for sorting.
    fn add(&mut self, record: Record) -> Result<u32, TreeError> {
        let i = u32::try_from(self.records.len()).map_err(|_| TreeError::Full("4 billion entries"))?;
        if let Some(merged) = self.merged.take() {
            self.order = merged;
            self.unsorted.clear();
        }
        let in_order = self.unsorted.is_empty()
            && self.order.last().is_none_or(|&last| self.records[last as usize].path < record.path);
        if in_order { &mut self.order } else { &mut self.unsorted }.push(i);
        let Store { index, records, hasher, .. } = self;
        index.insert_unique(hasher.hash_one(record.path.as_str()), i, |&j| {
            hasher.hash_one(records[j as usize].path.as_str())
        });
        self.records.push(record);
        self.live += 1;
        Ok(i)
    }

    pub fn remove(&mut self, path: &str) -> Option<Entry> {
        let i = self.find(path)?;
        let entry = self.unpack(i);
        self.forget(i);
        Some(entry)
    }

    fn forget(&mut self, i: u32) {
        let hash = self.hasher.hash_one(self.records[i as usize].path.as_str());
        if let Ok(found) = self.index.find_entry(hash, |&j| j == i) {
            found.remove();
        }
        self.records[i as usize].shape = Shape::Gone;
        self.links.remove(&i);
        self.live -= 1;
    }

    /// Sets the permissions and owner of the entry at `path`.
    pub fn set_mode(&mut self, path: &str, mode: u32, uid: u32, gid: u32) -> Result<(), TreeError> {
        let Some(i) = self.find(path) else { return Ok(()) };
        let mode = pack_mode(mode)?;
        let owner = self.owner(uid, gid)?;
        let r = &mut self.records[i as usize];
        (r.mode, r.owner) = (mode, owner);
        Ok(())
    }

    /// Makes the file at `path` one of a group of hard links.
    pub fn set_link(&mut self, path: &str, key: (u64, u64)) {
        if let Some(i) = self.find(path) {
            let r = &mut self.records[i as usize];
            if matches!(r.shape, Shape::Walked | Shape::File) {
                r.linked = true;
                self.links.insert(i, key);
            }
        }
    }

    /// Every record in path order, removed ones included.
    fn order(&self) -> &[u32] {
        if self.unsorted.is_empty() {
            return &self.order;
        }
        self.merged.get_or_init(|| {
            let mut fresh = self.unsorted.clone();
            fresh.sort_by_key(|&i| self.records[i as usize].path);
            merge(&self.order, &fresh, |&i| self.records[i as usize].path)
        })
    }

    /// The live records in path order.
    fn ordered(&self) -> impl Iterator<Item = u32> + Clone + '_ {
        self.order().iter().copied().filter(|&i| self.records[i as usize].shape != Shape::Gone)
    }

    pub fn iter(&self) -> impl Iterator<Item = (ImagePath, Entry)> + Clone + '_ {
        self.ordered().map(|i| (self.records[i as usize].path, self.unpack(i)))
    }

    /// The entries below `dir` (not `dir` itself), in path order.
    pub fn below(&self, dir: ImagePath) -> impl Iterator<Item = (ImagePath, Entry)> + '_ {
        let order = self.order();
        let start = if dir.is_root() {
            0
        } else {
            // `a/b-x` sorts between `a/b` and `a/b/c`: what lies below `a/b` starts at `a/b/`.
            let lowest = format!("{}/", dir.as_str());
            order.partition_point(|&i| self.records[i as usize].path.as_str() < lowest.as_str())
        };
        order[start..]
            .iter()
            .map(|&i| (i, &self.records[i as usize]))
            .take_while(move |(_, r)| r.path.starts_with(&dir))
            .filter(|(_, r)| r.shape != Shape::Gone)
            .map(|(i, r)| (r.path, self.unpack(i)))
    }

    /// Removes every entry `keep` refuses; returns how many.
    pub fn retain(&mut self, mut keep: impl FnMut(&ImagePath, &Entry) -> bool) -> usize {
        let doomed: Vec<u32> =
            self.ordered().filter(|&i| !keep(&self.records[i as usize].path, &self.unpack(i))).collect();
        for &i in &doomed {
            self.forget(i);
        }
        doomed.len()
    }

    /// Calls `change` on every entry in path order; what it says it changed (`true`) is
    /// kept.
    pub fn update(
        &mut self,
        mut change: impl FnMut(ImagePath, &mut Entry) -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        let order: Vec<u32> = self.ordered().collect();
        for i in order {
            let path = self.records[i as usize].path;
            let mut entry = self.unpack(i);
            if change(path, &mut entry)? {
                self.put(path, &entry).map_err(|m| anyhow::anyhow!("{path}: {m}"))?;
            }
        }
        Ok(())
    }

    fn unpack(&self, i: u32) -> Entry {
        let r = &self.records[i as usize];
        let link = if r.linked { self.links.get(&i).copied() } else { None };
        let alloc = u64::from(r.blocks) * 512;
        let kind = match r.shape {
            Shape::Dir => Kind::Dir,
            Shape::Walked => {
                let (root, before) = self.walks[r.data as usize];
                let rel = &r.path.as_str()[before as usize..];
                Kind::File { source: Source::Host(HostPath::below(root, rel)), size: r.size, alloc, link }
            }
            Shape::File => {
                Kind::File { source: self.sources[r.data as usize].clone(), size: r.size, alloc, link }
            }
            Shape::Symlink => Kind::Symlink(self.targets[r.data as usize].to_string()),
            Shape::Char => Kind::Char((r.size >> 32) as u32, r.size as u32),
            Shape::Block => Kind::Block((r.size >> 32) as u32, r.size as u32),
            Shape::Fifo => Kind::Fifo,
            Shape::Gone => unreachable!("removed records are never unpacked"),
        };
        let (uid, gid) = self.owners[r.owner as usize];
        Entry {
            kind,
            mode: r.mode.into(),
            uid,
            gid,
            mtime: r.mtime,
            element: self.elements[r.element as usize].clone(),
        }
    }

    /// The record for `entry` at `path`. `replacing` is the shape and data of the record
    /// it replaces: its slot in a side table is used again, so changing entries in place
    /// (`update`) does not grow the tables.
    fn pack(
        &mut self,
        path: ImagePath,
        entry: &Entry,
        replacing: Option<(Shape, u32)>,
    ) -> Result<Record, TreeError> {
        let device = |major: u32, minor: u32| u64::from(major) << 32 | u64::from(minor);
        let (shape, size, blocks, data) = match &entry.kind {
            Kind::Dir => (Shape::Dir, 0, 0, 0),
            Kind::File { source, size, alloc, .. } => {
                let blocks = u32::try_from(alloc.div_ceil(512)).unwrap_or(u32::MAX);
                match (self.walked(path, source), replacing) {
                    (Some(walk), _) => (Shape::Walked, *size, blocks, walk),
                    (None, Some((Shape::File, slot))) => {
                        self.sources[slot as usize] = source.clone();
                        (Shape::File, *size, blocks, slot)
                    }
                    (None, _) => (Shape::File, *size, blocks, push(&mut self.sources, source.clone())?),
                }
            }
            Kind::Symlink(target) => {
                let slot = match replacing {
                    Some((Shape::Symlink, slot)) if self.targets[slot as usize] == target => slot,
                    _ => push(&mut self.targets, keep_str(target))?,
                };
                (Shape::Symlink, target.len() as u64, 0, slot)
            }
            Kind::Char(major, minor) => (Shape::Char, device(*major, *minor), 0, 0),
            Kind::Block(major, minor) => (Shape::Block, device(*major, *minor), 0, 0),
            Kind::Fifo => (Shape::Fifo, 0, 0, 0),
        };
        Ok(Record {
            path,
            size,
            mtime: entry.mtime,
            blocks,
            data,
            mode: pack_mode(entry.mode)?,
            owner: self.owner(entry.uid, entry.gid)?,
            element: self.element(&entry.element)?,
            shape,
            linked: false,
        })
    }

    /// The walk a host file at `path` came from, when its host path ends in its image
    /// path's tail (as it does unless the file landed elsewhere through a symlink).
    fn walked(&mut self, path: ImagePath, source: &Source) -> Option<u32> {
        let Source::Host(host) = source else { return None };
        let (path, rel) = (path.as_str(), host.rel());
        if rel.is_empty() || !path.ends_with(rel) {
            return None;
        }
        let before = path.len() - rel.len();
        if before > 0 && path.as_bytes()[before - 1] != b'/' {
            return None;
        }
        let walk = (host.root(), u32::try_from(before).ok()?);
        find_or_push(&mut self.walks, |w| std::ptr::eq(w.0, walk.0) && w.1 == walk.1, walk).ok()
    }

    fn owner(&mut self, uid: u32, gid: u32) -> Result<u16, TreeError> {
        find_or_push(&mut self.owners, |&o| o == (uid, gid), (uid, gid))
            .and_then(|i| u16::try_from(i).map_err(|_| TreeError::Full("65536 owner pairs")))
    }

    fn element(&mut self, name: &ElementName) -> Result<u16, TreeError> {
        find_or_push(&mut self.elements, |e| e == name, name.clone())
            .and_then(|i| u16::try_from(i).map_err(|_| TreeError::Full("65536 elements")))
    }
}

fn pack_mode(mode: u32) -> Result<u16, TreeError> {
    u16::try_from(mode).ok().filter(|m| m & !0o7777 == 0).ok_or(TreeError::Mode(mode))
}

fn push<T>(table: &mut Vec<T>, item: T) -> Result<u32, TreeError> {
    table.push(item);
    u32::try_from(table.len() - 1).map_err(|_| TreeError::Full("4 billion entries of a side table"))
}

/// The index of the item `same` matches, looking at the last one first (entries come in
/// runs from one element, one walk, one owner); `item` is added when none matches.
fn find_or_push<T>(table: &mut Vec<T>, same: impl Fn(&T) -> bool, item: T) -> Result<u32, TreeError> {
    let found = match table.last() {
        Some(last) if same(last) => Some(table.len() - 1),
        _ => table.iter().position(same),
    };
    match found {
        Some(i) => Ok(i as u32),
        None => push(table, item),
    }
}

/// Two index lists sorted by `key`, merged into one sorted list.
fn merge<K: Ord>(a: &[u32], b: &[u32], key: impl Fn(&u32) -> K) -> Vec<u32> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.iter().peekable(), b.iter().peekable());
    while let (Some(x), Some(y)) = (a.peek(), b.peek()) {
        if key(y) < key(x) {
            out.push(*b.next().unwrap());
        } else {
            out.push(*a.next().unwrap());
        }
    }
    out.extend(a.chain(b));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ImagePath {
        ImagePath::new(s).unwrap()
    }

    fn file(source: Source) -> Entry {
        Entry::file(source, 3, 0o644, 7, "e")
    }

    fn paths(store: &Store) -> Vec<&'static str> {
        store.iter().map(|(p, _)| p.as_str()).collect()
    }

    /// What keeps a million entries near 70 MiB: a record stays 48 bytes.
    #[test]
    fn a_record_is_48_bytes() {
        assert_eq!(std::mem::size_of::<Record>(), 48);
    }

    #[test]
    fn entries_read_in_path_order_whatever_order_they_came_in() {
        let mut s = Store::default();
        for path in ["usr/lib/a", "usr/lib", "usr/lib-x", "etc", "usr"] {
            s.put(p(path), &Entry::dir(0o755, 0, "e")).unwrap();
        }
        assert_eq!(paths(&s), ["etc", "usr", "usr/lib", "usr/lib-x", "usr/lib/a"]);
        let below: Vec<_> = s.below(p("usr/lib")).map(|(p, _)| p.as_str()).collect();
        assert_eq!(below, ["usr/lib/a"], "usr/lib-x sorts between usr/lib and usr/lib/a but is not below it");
        // More out of order after a read: merged again.
        s.put(p("a"), &Entry::dir(0o755, 0, "e")).unwrap();
        assert_eq!(paths(&s)[..2], ["a", "etc"]);
    }

    #[test]
    fn removed_entries_are_gone_and_may_come_back() {
        let mut s = Store::default();
        s.put(p("a"), &Entry::dir(0o755, 0, "e")).unwrap();
        s.put(p("a/b"), &Entry::symlink("x", 0, "e")).unwrap();
        s.put(p("a/c"), &Entry::dir(0o700, 0, "e")).unwrap();
        assert!(matches!(s.remove("a/b").unwrap().kind, Kind::Symlink(t) if t == "x"));
        assert_eq!((s.len(), paths(&s)), (2, vec!["a", "a/c"]));
        assert!(s.get("a/b").is_none());
        s.put(p("a/b"), &Entry::dir(0o750, 0, "f")).unwrap();
        assert_eq!(paths(&s), ["a", "a/b", "a/c"]);
        assert_eq!(s.retain(|p, _| p.as_str() != "a/c"), 1);
        assert_eq!(paths(&s), ["a", "a/b"]);
        let e = s.get("a/b").unwrap();
        assert_eq!((e.mode, &*e.element), (0o750, "f"));
    }

    /// A walked file's host path is its walk's root and its image path's tail; one that
    /// landed elsewhere keeps its own.
    #[test]
    fn host_paths_come_back_whole() {
        let mut s = Store::default();
        let root = HostPath::new(Path::new("/srv/tree")).root();
        s.put(p("opt/x/etc/motd"), &file(Source::Host(HostPath::below(root, "etc/motd")))).unwrap();
        s.put(p("usr/bin/sh"), &file(Source::Host(HostPath::below(root, "bin/sh")))).unwrap();
        s.put(p("init"), &file(Source::Host(HostPath::below(root, "sbin/init")))).unwrap();
        let host = |path: &str| match s.get(path).unwrap().kind {
            Kind::File { source: Source::Host(h), .. } => h.to_path_buf(),
            other => panic!("{other:?}"),
        };
        assert_eq!(host("opt/x/etc/motd"), Path::new("/srv/tree/etc/motd"));
        assert_eq!(host("usr/bin/sh"), Path::new("/srv/tree/bin/sh"));
        assert_eq!(host("init"), Path::new("/srv/tree/sbin/init"));
        let shapes: Vec<_> = s.records.iter().map(|r| r.shape).collect();
        assert_eq!(shapes, [Shape::Walked, Shape::Walked, Shape::File]);
    }

    #[test]
    fn changing_entries_in_place_reuses_their_side_slots() {
        let mut s = Store::default();
        s.put(p("a"), &Entry::bytes(b"x".to_vec(), 0o644, 0, "e")).unwrap();
        s.put(p("l"), &Entry::symlink("t", 0, "e")).unwrap();
        for mode in [0o600, 0o640, 0o644] {
            s.update(|_, e| {
                e.mode = mode;
                Ok(true)
            })
            .unwrap();
        }
        assert_eq!((s.sources.len(), s.targets.len()), (1, 1));
        assert!(s.iter().all(|(_, e)| e.mode == 0o644));
    }

    #[test]
    fn every_kind_packs_and_unpacks() {
        let mut s = Store::default();
        let mut dev = Entry::dir(0o600, -5, "d");
        (dev.kind, dev.uid, dev.gid) = (Kind::Block(259, 1 << 20), 1000, 100);
        let entries = [
            ("a", dev),
            ("b", Entry::bytes(b"hi".to_vec(), 0o4755, 1, "b")),
            ("c", Entry { kind: Kind::Fifo, ..Entry::dir(0o644, 2, "c") }),
            ("d", Entry::symlink("../x", 3, "d")),
        ];
        for (path, e) in &entries {
            s.put(p(path), e).unwrap();
        }
        s.set_link("b", (8, 9));
        for ((path, want), (got_path, got)) in entries.iter().zip(s.iter()) {
            assert_eq!(*path, got_path.as_str());
            assert_eq!(
                (got.mode, got.uid, got.gid, got.mtime, &got.element),
                (want.mode, want.uid, want.gid, want.mtime, &want.element)
            );
            assert_eq!(got.kind.letter(), want.kind.letter());
        }
        assert!(matches!(s.get("a").unwrap().kind, Kind::Block(259, 1048576)));
        assert!(matches!(
            s.get("b").unwrap().kind,
            Kind::File { size: 2, alloc: 4096, link: Some((8, 9)), .. }
        ));
        let mode = Entry { mode: 0o10644, ..Entry::dir(0, 0, "e") };
        assert_eq!(s.put(p("e"), &mode).unwrap_err().to_string(), "mode 10644 has more than permission bits");
    }
}
