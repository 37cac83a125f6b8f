//! The headers of a PE/COFF image — an EFI application, a kernel's EFI stub — as the
//! PE/COFF specification lays them out: the DOS stub's pointer to the `PE\0\0`
//! signature, the COFF header, the optional header with its data directories, and the
//! section table. Only the headers are read; section data stays on disk.

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

/// A file that is not a PE image smelt can read.
#[derive(Debug, thiserror::Error)]
#[error("{}: not a PE/COFF image: {why}", path.display())]
pub struct NotPe {
    pub path: PathBuf,
    pub why: String,
}

/// One entry of the section table.
#[derive(Debug, Clone)]
pub struct Section {
    pub name: String,
    pub virtual_size: u32,
    pub virtual_address: u32,
    pub raw_size: u32,
    pub raw_offset: u32,
    pub characteristics: u32,
}

impl Section {
    /// Section data is initialized data, readable (as ukify marks added sections).
    pub const DATA: u32 = 0x0000_0040 | 0x4000_0000;
    /// Section data is code, readable (`.linux`, which old kernels run in place).
    pub const CODE: u32 = 0x0000_0020 | 0x4000_0000;
    pub const SIZE: usize = 40;

    /// The 40-byte section table entry.
    pub fn encode(&self) -> [u8; 40] {
        let mut b = [0u8; 40];
        let name = self.name.as_bytes();
        b[..name.len().min(8)].copy_from_slice(&name[..name.len().min(8)]);
        b[8..12].copy_from_slice(&self.virtual_size.to_le_bytes());
        b[12..16].copy_from_slice(&self.virtual_address.to_le_bytes());
        b[16..20].copy_from_slice(&self.raw_size.to_le_bytes());
        b[20..24].copy_from_slice(&self.raw_offset.to_le_bytes());
        b[36..40].copy_from_slice(&self.characteristics.to_le_bytes());
        b
    }
}

/// The data directory that holds Authenticode signatures.
pub const CERTIFICATE_TABLE: usize = 4;

/// A PE image's headers.
#[derive(Debug, Clone)]
pub struct Pe {
    pub path: PathBuf,
    /// The first `SizeOfHeaders` bytes of the file.
    pub headers: Vec<u8>,
    /// Where the COFF header starts (just after `PE\0\0`).
    pub coff: usize,
    /// Where the optional header starts.
    pub optional: usize,
    pe32plus: bool,
    pub sections: Vec<Section>,
    pub file_len: u64,
    /// The image itself, when it was read from memory rather than from `path`.
    bytes: Option<std::sync::Arc<[u8]>>,
}

/// What an image's bytes are read through.
pub trait ReadSeek: Read + std::io::Seek {}
impl<T: Read + std::io::Seek> ReadSeek for T {}

impl Pe {
    pub fn read(path: &Path) -> Result<Pe, anyhow::Error> {
        let mut file =
            std::fs::File::open(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        let file_len = file.metadata()?.len();
        Pe::parse(&mut file, path, file_len, None)
    }

    /// An image held in memory (a loader made during the build), named `name`.
    pub fn from_bytes(name: &str, bytes: std::sync::Arc<[u8]>) -> Result<Pe, anyhow::Error> {
        let len = bytes.len() as u64;
        Pe::parse(&mut std::io::Cursor::new(bytes.clone()), Path::new(name), len, Some(bytes))
    }

    /// The image's bytes, from the start.
    pub fn open(&self) -> std::io::Result<Box<dyn ReadSeek + '_>> {
        Ok(match &self.bytes {
            Some(b) => Box::new(std::io::Cursor::new(&b[..])),
            None => Box::new(std::fs::File::open(&self.path)?),
        })
    }

    fn parse(
        file: &mut impl Read,
        path: &Path,
        file_len: u64,
        bytes: Option<std::sync::Arc<[u8]>>,
    ) -> Result<Pe, anyhow::Error> {
        let not = |why: &str| NotPe { path: path.to_path_buf(), why: why.to_string() };
        let mut head = vec![0u8; 4096.min(file_len as usize)];
        file.read_exact(&mut head)?;
        let u16_at = |b: &[u8], at: usize| b.get(at..at + 2).map(|x| u16::from_le_bytes([x[0], x[1]]));
        let u32_at =
            |b: &[u8], at: usize| b.get(at..at + 4).map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]));
        if head.get(..2) != Some(b"MZ") {
            return Err(not("no MZ header").into());
        }
        let sig = u32_at(&head, 0x3c).ok_or_else(|| not("truncated DOS header"))? as usize;
        if head.get(sig..sig + 4) != Some(b"PE\0\0") {
            return Err(not("no PE signature").into());
        }
        let coff = sig + 4;
        let optional = coff + 20;
        let pe32plus = match u16_at(&head, optional) {
            Some(0x20b) => true,
            Some(0x10b) => false,
            _ => return Err(not("unknown optional header").into()),
        };
        let size_of_headers =
            u32_at(&head, optional + 60).ok_or_else(|| not("truncated optional header"))? as usize;
        if size_of_headers > head.len() {
            let mut more = vec![0u8; size_of_headers - head.len()];
            file.read_exact(&mut more).map_err(|_| not("headers run past the end"))?;
            head.extend(more);
        }
        head.truncate(size_of_headers);
        let count = u16_at(&head, coff + 2).unwrap_or(0) as usize;
        let table = optional + u16_at(&head, coff + 16).unwrap_or(0) as usize;
        let mut sections = Vec::with_capacity(count);
        for i in 0..count {
            let at = table + i * Section::SIZE;
            let entry =
                head.get(at..at + Section::SIZE).ok_or_else(|| not("section table runs past the headers"))?;
            let name = String::from_utf8_lossy(&entry[..8]).trim_end_matches('\0').to_string();
            let u = |o: usize| u32::from_le_bytes([entry[o], entry[o + 1], entry[o + 2], entry[o + 3]]);
            sections.push(Section {
                name,
                virtual_size: u(8),
                virtual_address: u(12),
                raw_size: u(16),
                raw_offset: u(20),
                characteristics: u(36),
            });
        }
        Ok(Pe {
            path: path.to_path_buf(),
            headers: head,
            coff,
            optional,
            pe32plus,
            sections,
            file_len,
            bytes,
        })
    }

    pub fn u32_at(&self, at: usize) -> u32 {
        u32::from_le_bytes(self.headers[at..at + 4].try_into().unwrap())
    }

    pub fn set_u32(&mut self, at: usize, v: u32) {
        self.headers[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    pub fn set_u16(&mut self, at: usize, v: u16) {
        self.headers[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }

    /// Where the optional header's CheckSum is.
    pub fn checksum_at(&self) -> usize {
        self.optional + 64
    }

    /// Where data directory `i` (an address and a size) is, if the image has it.
    pub fn directory_at(&self, i: usize) -> Option<usize> {
        let (count_at, first) = if self.pe32plus {
            (self.optional + 108, self.optional + 112)
        } else {
            (self.optional + 92, self.optional + 96)
        };
        (i < self.u32_at(count_at) as usize).then_some(first + 8 * i)
    }

    /// The certificate table (file offset, size), when the image is signed.
    pub fn certificate_table(&self) -> Option<(u32, u32)> {
        let at = self.directory_at(CERTIFICATE_TABLE)?;
        let (offset, size) = (self.u32_at(at), self.u32_at(at + 4));
        (size > 0).then_some((offset, size))
    }

    pub fn section_alignment(&self) -> u32 {
        self.u32_at(self.optional + 32)
    }

    pub fn file_alignment(&self) -> u32 {
        self.u32_at(self.optional + 36)
    }

    pub fn size_of_image(&self) -> u32 {
        self.u32_at(self.optional + 56)
    }

    /// Where the next section table entry would go.
    pub fn section_table_end(&self) -> usize {
        let table = self.optional
            + u16::from_le_bytes([self.headers[self.coff + 16], self.headers[self.coff + 17]]) as usize;
        table + self.sections.len() * Section::SIZE
    }

    /// The bytes of section `s` (its virtual size, at most its raw size), read as they
    /// are wanted.
    pub fn section_reader(&self, s: &Section) -> anyhow::Result<impl Read + '_> {
        let mut file = self.open()?;
        file.seek(std::io::SeekFrom::Start(s.raw_offset.into()))?;
        Ok(file.take(s.virtual_size.min(s.raw_size).into()))
    }
}

/// Whether the file at `path` is a PE image with an Authenticode signature: a
/// certificate table among its data directories.
pub fn is_signed(path: &Path) -> anyhow::Result<bool> {
    match Pe::read(path) {
        Ok(pe) => Ok(pe.certificate_table().is_some()),
        Err(e) if e.is::<NotPe>() => Ok(false),
        Err(e) => Err(e),
    }
}

pub fn round_up(v: u64, to: u64) -> u64 {
    v.div_ceil(to) * to
}
