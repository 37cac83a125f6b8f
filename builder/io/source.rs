//! Where a file's bytes come from: a host file (staged by reference, never copied until
//! written into an archive) or bytes smelt made or ships.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub enum Source {
    /// A file on the host, read when the archive is written.
    Host(PathBuf),
    /// Bytes embedded in the smelt binary (built-in elements).
    Static(&'static [u8]),
    /// Bytes made during the build (rendered templates, generated files).
    Bytes(Arc<[u8]>),
    /// `len` bytes at `offset` of a host file: a member of an uncompressed tarball,
    /// staged by reference like any host file.
    Range { file: Arc<Path>, offset: u64, len: u64 },
}

impl Source {
    pub fn open(&self) -> io::Result<Box<dyn Read + '_>> {
        Ok(match self {
            Source::Host(p) => Box::new(File::open(p)?),
            Source::Static(b) => Box::new(*b),
            Source::Bytes(b) => Box::new(&b[..]),
            Source::Range { file, offset, len } => {
                let mut f = File::open(file)?;
                f.seek(SeekFrom::Start(*offset))?;
                Box::new(f.take(*len))
            }
        })
    }

    /// The number of bytes `open` gives.
    pub fn byte_len(&self) -> io::Result<u64> {
        Ok(match self {
            Source::Host(p) => std::fs::metadata(p)?.len(),
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
            Source::Host(p) => p.display().to_string(),
            Source::Static(_) => "(built into smelt)".into(),
            Source::Bytes(_) => "(generated)".into(),
            Source::Range { file, offset, .. } => format!("{} (at byte {offset})", file.display()),
        }
    }
}
