//! Elements: the unit of composition. An element is a directory (or one built into
//! smelt) holding a manifest, `root/` overlays, `templates/`, phase hooks and
//! `environment.d/`.

pub mod hooks;
pub mod image_writer;
pub mod library;
pub mod manifest;
pub mod param;
pub mod resolve;

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;

use crate::io::count::CountingWriter;
use crate::io::source::{HostPath, Source};
use crate::path::ImagePath;
pub use manifest::{Form, Manifest};

/// Where an element was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    BuiltIn,
    Dir(PathBuf),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::BuiltIn => write!(f, "built-in"),
            Origin::Dir(d) => write!(f, "{}", d.display()),
        }
    }
}

/// One entry of an element's directory, relative to it (`root/etc/motd`).
#[derive(Debug, Clone)]
pub struct ElementFile {
    pub rel: String,
    pub kind: FileKind,
    /// Permission bits (`0o755`).
    pub mode: u32,
    /// What the walk of an element directory saw, so staging needs no second `stat`;
    /// `None` for built-in elements.
    pub stat: Option<Stat>,
}

#[derive(Debug, Clone, Copy)]
pub struct Stat {
    pub size: u64,
    /// Bytes allocated on disk.
    pub alloc: u64,
    pub mtime: i64,
    /// (device, inode) of a file with more than one link.
    pub link: Option<(u64, u64)>,
}

#[derive(Debug, Clone)]
pub enum FileKind {
    Dir,
    File(Source),
    Symlink(String),
    /// A device node or FIFO in `root/` (a root tree copied as root), its numbers from
    /// `stat`: recorded as `[[devices]]` would, no privilege needed.
    Device {
        kind: manifest::DeviceKind,
        major: u32,
        minor: u32,
    },
}

#[derive(Debug, Clone)]
pub struct Element {
    pub name: String,
    pub origin: Origin,
    pub manifest: Manifest,
    /// Every entry of the element, sorted by relative path, except those under `root/`
    /// of an element directory (see [`Element::visit_root`]).
    pub files: Vec<ElementFile>,
}

impl Element {
    /// Entries under a top-level folder of the element (`root`, `templates`,
    /// `install.d`), with paths relative to that folder.
    pub fn files_under<'a>(
        &'a self,
        folder: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a ElementFile)> + 'a {
        self.files.iter().filter_map(move |f| {
            let rest = f.rel.strip_prefix(folder)?.strip_prefix('/')?;
            Some((rest, f))
        })
    }

    /// Calls `visit` for every entry under `root/` (paths relative to it), in path order.
    /// An element directory's `root/` is walked now, its entries read (`lstat`) on
    /// other threads a few hundred ahead of `visit`, so a large tree is never held as
    /// a listing.
    pub fn visit_root(
        &self,
        mut visit: impl FnMut(&str, &ElementFile) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let Origin::Dir(dir) = &self.origin else {
            return self.files_under("root").try_for_each(|(rel, f)| visit(rel, f));
        };
        let root = dir.join("root");
        if !root.is_dir() {
            return Ok(());
        }
        let walk = walkdir::WalkDir::new(&root).min_depth(1).sort_by_file_name().follow_links(false);
        let kept_root = HostPath::new(&root).root();
        let read = |entry: walkdir::Result<walkdir::DirEntry>| {
            let entry =
                entry.with_context(|| format!("reading element `{}` in {}", self.name, root.display()))?;
            let rel = entry.path().strip_prefix(&root)?.to_string_lossy().into_owned();
            // A file's host path is the root and its image path, kept once for both
            // (`overlay::place` takes the image path from it).
            let host = || match ImagePath::new(&rel) {
                Ok(at) if at.as_str() == rel => HostPath::below(kept_root, at.as_str()),
                _ => HostPath::new(entry.path()),
            };
            library::walked_file(&self.name, rel.clone(), &entry, host)
        };
        crate::io::ahead::map_in_order(walk.into_iter(), read, |file| {
            let file = file?;
            visit(&file.rel, &file)
        })
    }

    /// A digest of everything in the element (names, modes, link targets, contents), so
    /// `buildinfo` can say what was built from what without naming host paths. Streams:
    /// one read of each file, never a whole file in memory.
    pub fn digest(&self) -> anyhow::Result<String> {
        fn add(h: &mut CountingWriter<std::io::Sink>, rel: &str, f: &ElementFile) -> anyhow::Result<()> {
            h.write_all(rel.as_bytes())?;
            h.write_all(&[0])?;
            h.write_all(&f.mode.to_le_bytes())?;
            match &f.kind {
                FileKind::Dir => h.write_all(b"d")?,
                FileKind::Symlink(t) => h.write_all(t.as_bytes())?,
                FileKind::Device { kind, major, minor } => write!(h, "{kind:?} {major}:{minor}")?,
                FileKind::File(src) => {
                    std::io::copy(&mut src.open()?, h)?;
                }
            }
            Ok(())
        }
        let mut h = CountingWriter::hashing(std::io::sink());
        for f in self.files.iter().filter(|f| !f.rel.starts_with("root/")) {
            add(&mut h, &f.rel, f)?;
        }
        self.visit_root(|rel, f| add(&mut h, &format!("root/{rel}"), f))?;
        let (_, _, hex) = h.into_parts();
        Ok(hex.expect("a hashing writer")[..16].to_string())
    }
}
