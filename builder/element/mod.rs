//! Elements: the unit of composition. An element is a directory (or one built into
//! smelt) holding a manifest, `root/` overlays, `templates/`, phase hooks and
//! `environment.d/`.

pub mod library;
pub mod manifest;
pub mod resolve;

use std::io::Write;
use std::path::PathBuf;

use crate::io::source::Source;
pub use manifest::Manifest;

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
}

#[derive(Debug, Clone)]
pub struct Element {
    pub name: String,
    pub origin: Origin,
    pub manifest: Manifest,
    /// Every entry of the element, sorted by relative path.
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

    /// A digest of everything in the element, so `buildinfo` can say what was built from
    /// what without naming host paths.
    /// Streams: one read of each file, never a whole file in memory.
    pub fn digest(&self) -> anyhow::Result<String> {
        let mut h = crate::io::count::CountingWriter::hashing(std::io::sink());
        for f in &self.files {
            h.write_all(f.rel.as_bytes())?;
            h.write_all(&[0])?;
            h.write_all(&f.mode.to_le_bytes())?;
            match &f.kind {
                FileKind::Dir => h.write_all(b"d")?,
                FileKind::Symlink(t) => h.write_all(t.as_bytes())?,
                FileKind::File(src) => {
                    std::io::copy(&mut src.open()?, &mut h)?;
                }
            }
        }
        let (_, _, hex) = h.into_parts();
        Ok(hex.expect("a hashing writer")[..16].to_string())
    }
}
