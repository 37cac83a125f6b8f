//! A zip archive of the bundled standard library, as Python imports it (`zipimport`;
//! `PREFIX/lib/pythonXY.zip` is on `sys.path` ahead of the directory, as in CPython's
//! embeddable distribution): bytecode compresses about threefold, and a read-only
//! medium has no use for one file per module. Deflated, entries in name order, every
//! date 1980-01-01: the same files give the same bytes.

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;
use flate2::write::DeflateEncoder;

use crate::io::source::Source;

/// Writes `files` (name in the archive → bytes) to `dest`.
pub fn write(files: &[(String, Source)], dest: &Path) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(dest).with_context(|| format!("creating {}", dest.display()))?,
    );
    let mut central = Vec::new();
    let mut offset: u64 = 0;
    let mut count: u16 = 0;
    for (name, source) in files {
        let data = source.read_all()?;
        let mut crc = flate2::Crc::new();
        crc.update(&data);
        let mut enc = DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&data)?;
        let packed = enc.finish()?;
        let (method, body): (u16, &[u8]) = if packed.len() < data.len() { (8, &packed) } else { (0, &data) };
        let fields =
            Header { crc: crc.sum(), packed: body.len() as u32, size: data.len() as u32, method, name };
        let local = fields.local();
        out.write_all(&local)?;
        out.write_all(body)?;
        central.extend(fields.central(offset as u32));
        offset += (local.len() + body.len()) as u64;
        count = count.checked_add(1).context("more than 65535 files for one zip")?;
        anyhow::ensure!(offset < u32::MAX as u64, "the zip would pass 4 GiB");
    }
    out.write_all(&central)?;
    let mut end = Vec::with_capacity(22);
    end.extend(0x0605_4b50u32.to_le_bytes());
    end.extend([0u8; 4]); // this disk, the disk of the central directory
    end.extend(count.to_le_bytes());
    end.extend(count.to_le_bytes());
    end.extend((central.len() as u32).to_le_bytes());
    end.extend((offset as u32).to_le_bytes());
    end.extend(0u16.to_le_bytes()); // no comment
    out.write_all(&end)?;
    out.into_inner().map_err(|e| e.into_error())?;
    Ok(())
}

struct Header<'a> {
    crc: u32,
    packed: u32,
    size: u32,
    method: u16,
    name: &'a str,
}

/// 1980-01-01 00:00 in DOS form: time 0, date (year 0 since 1980, month 1, day 1).
const DOS_DATE: u16 = (1 << 5) | 1;

impl Header<'_> {
    fn common(&self, v: &mut Vec<u8>) {
        v.extend(20u16.to_le_bytes()); // version needed: 2.0 (deflate)
        v.extend(0u16.to_le_bytes()); // flags
        v.extend(self.method.to_le_bytes());
        v.extend(0u16.to_le_bytes()); // time
        v.extend(DOS_DATE.to_le_bytes());
        v.extend(self.crc.to_le_bytes());
        v.extend(self.packed.to_le_bytes());
        v.extend(self.size.to_le_bytes());
        v.extend((self.name.len() as u16).to_le_bytes());
        v.extend(0u16.to_le_bytes()); // extra field length
    }

    fn local(&self) -> Vec<u8> {
        let mut v = 0x0403_4b50u32.to_le_bytes().to_vec();
        self.common(&mut v);
        v.extend(self.name.as_bytes());
        v
    }

    fn central(&self, offset: u32) -> Vec<u8> {
        let mut v = 0x0201_4b50u32.to_le_bytes().to_vec();
        v.extend(0x0314u16.to_le_bytes()); // made by: Unix, 2.0
        self.common(&mut v);
        v.extend(0u16.to_le_bytes()); // comment length
        v.extend(0u16.to_le_bytes()); // disk
        v.extend(0u16.to_le_bytes()); // internal attributes
        v.extend((0o100644u32 << 16).to_le_bytes()); // Unix mode
        v.extend(offset.to_le_bytes());
        v.extend(self.name.as_bytes());
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// bsdtar (libarchive) reads the archive back, files and bytes.
    #[test]
    fn the_archive_is_a_zip_others_read() {
        let dir = tempfile::tempdir().unwrap();
        let zip = dir.path().join("a.zip");
        let files = vec![
            ("a/b.pyc".to_string(), Source::Bytes(b"x".repeat(1000).into())),
            ("c.txt".to_string(), Source::Bytes(b"hi\n".to_vec().into())),
        ];
        write(&files, &zip).unwrap();
        let out = std::process::Command::new("bsdtar").arg("-xOf").arg(&zip).arg("c.txt").output().unwrap();
        assert_eq!(out.stdout, b"hi\n");
        let bytes = std::fs::read(&zip).unwrap();
        assert_eq!(&bytes[..4], b"PK\x03\x04");
        assert!(bytes.len() < 1000, "deflated: {}", bytes.len());
    }
}
