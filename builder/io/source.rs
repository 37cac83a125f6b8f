//! Where a file's bytes come from: a host file (staged by reference, never copied until
//! written into an archive) or bytes smelt made or ships.

use std::ffi::OsStr;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::arena::keep_bytes;

/// A host file's path, kept for the life of the process ([`crate::arena`]): a root and
/// the path below it. A walk of a host directory gives each file the walk's root and the
/// tail of its image path, so a walked tree's host paths take no bytes of their own.
#[derive(Clone, Copy)]
pub struct HostPath {
    root: &'static Path,
    rel: &'static str,
}

impl HostPath {
    /// `path` itself, kept.
    pub fn new(path: &Path) -> HostPath {
        HostPath { root: Path::new(OsStr::from_bytes(keep_bytes(path.as_os_str().as_bytes()))), rel: "" }
    }

    /// `rel` below `root`, both kept already (a walk's root and an image path's tail).
    pub fn below(root: &'static Path, rel: &'static str) -> HostPath {
        HostPath { root, rel }
    }

    pub fn root(&self) -> &'static Path {
        self.root
    }

    /// The path below `root`; empty when the path is `root` itself.
    pub fn rel(&self) -> &'static str {
        self.rel
    }

    pub fn to_path_buf(self) -> PathBuf {
        if self.rel.is_empty() {
            self.root.to_path_buf()
        } else {
            self.root.join(self.rel)
        }
    }
}

/// The same file whichever way its path is split (`/a` + `b/c` is `/a/b` + `c`).
impl PartialEq for HostPath {
    fn eq(&self, other: &HostPath) -> bool {
        (self.root == other.root && self.rel == other.rel) || self.to_path_buf() == other.to_path_buf()
    }
}

impl Eq for HostPath {}

impl fmt::Display for HostPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_path_buf().display().fmt(f)
    }
}

impl fmt::Debug for HostPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_path_buf())
    }
}

#[derive(Debug, Clone)]
pub enum Source {
    /// A file on the host, read when the archive is written.
    Host(HostPath),
    /// Bytes embedded in the smelt binary (built-in elements).
    Static(&'static [u8]),
    /// Bytes made during the build (rendered templates, generated files).
    Bytes(Arc<[u8]>),
    /// `len` bytes at `offset` of a host file: a member of an uncompressed tarball,
    /// staged by reference like any host file.
    Range { file: HostPath, offset: u64, len: u64 },
}

impl Source {
    /// The host file at `path`.
    pub fn host(path: &Path) -> Source {
        Source::Host(HostPath::new(path))
    }

    pub fn open(&self) -> io::Result<Box<dyn Read + '_>> {
        Ok(match self {
            Source::Host(p) => Box::new(File::open(p.to_path_buf())?),
            Source::Static(b) => Box::new(*b),
            Source::Bytes(b) => Box::new(&b[..]),
            Source::Range { file, offset, len } => {
                let mut f = File::open(file.to_path_buf())?;
                f.seek(SeekFrom::Start(*offset))?;
                Box::new(f.take(*len))
            }
        })
    }

    /// The number of bytes `open` gives.
    pub fn byte_len(&self) -> io::Result<u64> {
        Ok(match self {
            Source::Host(p) => std::fs::metadata(p.to_path_buf())?.len(),
            Source::Static(b) => b.len() as u64,
            Source::Bytes(b) => b.len() as u64,
            Source::Range { len, .. } => *len,
        })
    }

    pub fn read_all(&self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.open()?.read_to_end(&mut out)?;
        Ok(out)
    }

    /// A short description for error messages.
    pub fn describe(&self) -> String {
        match self {
            Source::Host(p) => p.to_string(),
            Source::Static(_) => "(built into smelt)".into(),
            Source::Bytes(_) => "(generated)".into(),
            Source::Range { file, offset, .. } => format!("{file} (at byte {offset})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file is the same file however its path was split: staging compares a hook's
    /// copy (kept whole) with where the staged tree puts it (root + image path).
    #[test]
    fn host_paths_are_equal_by_the_file_they_name() {
        let root = HostPath::new(Path::new("/srv/stage")).root();
        let split = HostPath::below(root, "etc/motd");
        assert_eq!(split, HostPath::new(Path::new("/srv/stage/etc/motd")));
        assert_ne!(split, HostPath::below(root, "etc/issue"));
        assert_eq!(split.to_string(), "/srv/stage/etc/motd");
    }
}
