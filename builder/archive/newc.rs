//! The newc ("070701") cpio format the kernel unpacks as an initramfs
//! (Documentation/driver-api/early-userspace/buffer-format.rst), written from the tree
//! in path order with renumbered inodes, smelt's owners and clamped mtimes.
//!
//! Reading uses the `cpio` crate. Writing does not, for two measured limits of cpio
//! 0.4.2: its `Writer::finish` flushes the writer under it after every padded entry,
//! which through smelt's compressor ends a zstd block each time (44,018 files of
//! /usr/share: 32,706 flushes, 4.9 s and 253 MB against 2.5 s and 229 MB); and it
//! formats each header with thirteen `format!` calls (1M headers: 1.3–1.7 s, where
//! the hex written here by hand takes 0.08 s, which matters for trees of a million
//! entries). It also returns Ok from `finish` after a short write, which
//! [`NewcWriter::data`] refuses.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use anyhow::{bail, Context as _};

use crate::path::ImagePath;
use crate::tree::{Entry, Kind, Tree};

const MAGIC: &[u8] = b"070701";
const TRAILER: &str = "TRAILER!!!";

/// Writes one newc header and name, padded to four bytes; counts every byte so a short
/// write can never pass unnoticed.
pub struct NewcWriter<W: Write> {
    out: W,
    written: u64,
}

/// A newc entry's header: its name and the numbers the format stores. Written with a
/// borrowed name (`Header<&str>`), read back with an owned one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header<N = String> {
    pub name: N,
    pub ino: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime: u32,
    pub size: u32,
    pub rdev: (u32, u32),
}

impl<W: Write> NewcWriter<W> {
    pub fn new(out: W) -> Self {
        NewcWriter { out, written: 0 }
    }

    pub fn header(&mut self, h: &Header<&str>) -> io::Result<()> {
        let namesize = h.name.len() + 1;
        let fields = [
            h.ino,
            h.mode,
            h.uid,
            h.gid,
            h.nlink,
            h.mtime,
            h.size,
            0,
            0,
            h.rdev.0,
            h.rdev.1,
            namesize as u32,
            0,
        ];
        let mut fixed = [0u8; 110];
        fixed[..6].copy_from_slice(MAGIC);
        for (i, f) in fields.into_iter().enumerate() {
            hex8(&mut fixed[6 + 8 * i..14 + 8 * i], f);
        }
        let mut buf = Vec::with_capacity(112 + namesize + 3);
        buf.extend_from_slice(&fixed);
        buf.extend_from_slice(h.name.as_bytes());
        buf.push(0);
        buf.resize(buf.len().next_multiple_of(4), 0);
        self.put(&buf)
    }

    /// Copies exactly `size` bytes of file data from `src`, then pads.
    pub fn data(&mut self, src: &mut dyn Read, size: u64) -> io::Result<()> {
        let copied = io::copy(&mut src.take(size), &mut Counted(self))?;
        if copied != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("read {copied} of {size} bytes: the file shrank while the archive was written"),
            ));
        }
        self.pad()
    }

    fn pad(&mut self) -> io::Result<()> {
        let pad = (4 - (self.written % 4) as usize) % 4;
        self.put(&[0u8; 3][..pad])
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.header(&Header {
            name: TRAILER,
            ino: 0,
            mode: 0,
            uid: 0,
            gid: 0,
            nlink: 1,
            mtime: 0,
            size: 0,
            rdev: (0, 0),
        })?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Eight upper-case hex digits, as newc writes every number.
fn hex8(out: &mut [u8], v: u32) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    for (i, d) in out.iter_mut().enumerate() {
        *d = DIGITS[((v >> (28 - 4 * i)) & 0xf) as usize];
    }
}

struct Counted<'a, W: Write>(&'a mut NewcWriter<W>);

impl<W: Write> Write for Counted<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.0.out.write(buf)?;
        self.0.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.out.flush()
    }
}

/// Files up to this size are read on other cores ahead of the writer.
pub(super) const SMALL: u64 = 16 << 10;

/// An entry with its bytes when it is a small file, read on a mapper thread.
type ReadAhead = (usize, ImagePath, Entry, Option<io::Result<Vec<u8>>>);

fn read_small((i, (path, entry)): (usize, (ImagePath, Entry))) -> ReadAhead {
    let data = match &entry.kind {
        Kind::File { source, size, .. } if (1..=SMALL).contains(size) => Some(source.read_all()),
        _ => None,
    };
    (i, path, entry, data)
}

/// Writes the whole tree as one archive. `epoch` clamps every mtime (`SOURCE_DATE_EPOCH`);
/// `progress` is told the bytes of each file written.
pub fn write_tree<W: Write>(
    tree: &Tree,
    epoch: Option<i64>,
    out: W,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<W> {
    let inodes = number_inodes(tree);
    let subdirs = count_subdirs(tree);
    let mut w = NewcWriter::new(out);
    let clamp = |t: i64| epoch.map_or(t, |e| t.min(e)).clamp(0, u32::MAX as i64) as u32;
    let root_mtime = tree.iter().map(|(_, e)| e.mtime).max().unwrap_or(0);
    w.header(&Header {
        name: ".",
        ino: 1,
        mode: 0o040755,
        uid: 0,
        gid: 0,
        nlink: 2 + subdirs.get("").copied().unwrap_or(0),
        mtime: clamp(root_mtime),
        size: 0,
        rdev: (0, 0),
    })?;
    let mut data_written: std::collections::BTreeSet<(u64, u64)> = Default::default();
    // Small files are opened and read on every core, in order, ahead of the writer;
    // larger ones stream through it. Few bytes are in flight: at most SMALL per item.
    let mut i_seen = 0;
    crate::io::ahead::map_in_batches(64, tree.iter().enumerate(), read_small, |(i, path, entry, data)| {
        debug_assert_eq!(i, i_seen);
        i_seen += 1;
        let (ino, nlink) = inodes[i];
        let mut size = entry.size();
        let mut rdev = (0, 0);
        match &entry.kind {
            Kind::Char(ma, mi) | Kind::Block(ma, mi) => rdev = (*ma, *mi),
            // The kernel links later entries to the first one with the same inode and
            // takes the data from the first (init/initramfs.c, maybe_link).
            Kind::File { link: Some(key), .. } if nlink > 1 && !data_written.insert(*key) => size = 0,
            _ => {}
        }
        if size > u32::MAX as u64 {
            bail!("{path} is {size} bytes: newc cpio cannot hold files of 4 GiB or more");
        }
        let nlink = match entry.kind {
            Kind::Dir => 2 + subdirs.get(path.as_str()).copied().unwrap_or(0),
            _ => nlink,
        };
        w.header(&Header {
            name: path.as_str(),
            ino,
            mode: entry.kind.type_bits() | entry.mode,
            uid: entry.uid,
            gid: entry.gid,
            nlink,
            mtime: clamp(entry.mtime),
            size: size as u32,
            rdev,
        })
        .context("writing the cpio archive")?;
        match (&entry.kind, data) {
            (Kind::File { source, .. }, Some(read)) if size > 0 => {
                let bytes = read.with_context(|| format!("reading {} for {path}", source.describe()))?;
                w.data(&mut bytes.as_slice(), size)
                    .with_context(|| format!("archiving {} as {path}", source.describe()))?;
                progress(size);
            }
            (Kind::File { source, .. }, _) if size > 0 => {
                let mut src =
                    source.open().with_context(|| format!("opening {} for {path}", source.describe()))?;
                w.data(&mut src, size)
                    .with_context(|| format!("archiving {} as {path}", source.describe()))?;
                progress(size);
            }
            (Kind::Symlink(target), _) => {
                w.data(&mut target.as_bytes(), size).context("writing the cpio archive")?
            }
            _ => {}
        }
        Ok::<(), anyhow::Error>(())
    })?;
    w.finish().context("finishing the cpio archive")
}

/// Inode numbers from 2 (the root is 1) in path order; hard links share the number of
/// their first member and carry the member count as nlink.
fn number_inodes(tree: &Tree) -> Vec<(u32, u32)> {
    let mut members: BTreeMap<(u64, u64), u32> = BTreeMap::new();
    for (_, e) in tree.iter() {
        if let Kind::File { link: Some(key), .. } = e.kind {
            *members.entry(key).or_default() += 1;
        }
    }
    let mut first: BTreeMap<(u64, u64), u32> = BTreeMap::new();
    let mut next = 2u32;
    tree.iter()
        .map(|(_, e)| match e.kind {
            Kind::File { link: Some(key), .. } if members[&key] > 1 => {
                let ino = *first.entry(key).or_insert_with(|| {
                    next += 1;
                    next - 1
                });
                (ino, members[&key])
            }
            _ => {
                next += 1;
                (next - 1, 1)
            }
        })
        .collect()
}

fn count_subdirs(tree: &Tree) -> BTreeMap<String, u32> {
    let mut counts = BTreeMap::new();
    for (path, e) in tree.iter() {
        if let Kind::Dir = e.kind {
            let parent = path.parent().map(|p| p.as_str().to_string()).unwrap_or_default();
            *counts.entry(parent).or_default() += 1;
        }
    }
    counts
}

/// One entry read back from a newc archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadEntry {
    pub header: Header,
    /// A symlink's target (its data); other data is skipped, not kept.
    pub target: Option<String>,
    /// A regular file's SHA-256, hashed as its data streams past.
    pub sha256: Option<String>,
}

/// Reads every entry of the newc archives in `input` (one after another, with zero
/// padding between them, as the kernel accepts), calling `each` per entry.
pub fn read_archives(input: &mut dyn io::BufRead, each: &mut dyn FnMut(ReadEntry)) -> anyhow::Result<()> {
    while skip_padding(input)? {
        read_archive(input, each)?;
    }
    Ok(())
}

/// Skips zero bytes; false at the end of the input.
pub fn skip_padding(input: &mut dyn io::BufRead) -> anyhow::Result<bool> {
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            return Ok(false);
        }
        let zeros = buf.iter().take_while(|b| **b == 0).count();
        if zeros == 0 {
            return Ok(true);
        }
        input.consume(zeros);
    }
}

/// Reads one archive, up to and including its trailer (not reported), calling `each`
/// per entry. File data is skipped in a stream, never held.
pub fn read_archive(mut input: &mut dyn io::BufRead, each: &mut dyn FnMut(ReadEntry)) -> anyhow::Result<()> {
    loop {
        let mut entry = cpio::newc::Reader::new(input).map_err(|e| match e.kind() {
            io::ErrorKind::InvalidData if e.to_string().contains("magic") => {
                anyhow::anyhow!("not a newc cpio header; smelt reads newc (070701) archives")
            }
            _ => anyhow::Error::new(e).context("reading a cpio header"),
        })?;
        let e = entry.entry();
        if e.is_trailer() {
            entry.finish().context("reading the cpio trailer")?;
            return Ok(());
        }
        let header = Header {
            name: e.name().to_string(),
            ino: e.ino(),
            mode: e.mode(),
            uid: e.uid(),
            gid: e.gid(),
            nlink: e.nlink(),
            mtime: e.mtime(),
            size: e.file_size(),
            rdev: (e.rdev_major(), e.rdev_minor()),
        };
        let (mut target, mut sha256) = (None, None);
        match header.mode & 0o170000 {
            0o120000 => {
                let mut t = Vec::new();
                entry.read_to_end(&mut t).context("reading a symlink target")?;
                target = Some(String::from_utf8_lossy(&t).into_owned());
            }
            0o100000 => {
                let mut hash = crate::io::count::CountingWriter::hashing(io::sink());
                io::copy(&mut entry, &mut hash).context("reading a file's data")?;
                sha256 = hash.into_parts().2;
            }
            _ => {}
        }
        input = entry.finish().context("the cpio archive ends in the middle of an entry")?;
        each(ReadEntry { header, target, sha256 });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::ImagePath;
    use crate::tree::Entry;

    #[test]
    fn header_layout_matches_the_kernel_format() {
        let mut w = NewcWriter::new(Vec::new());
        w.header(&Header {
            name: "init",
            ino: 2,
            mode: 0o100755,
            uid: 0,
            gid: 0,
            nlink: 1,
            mtime: 1,
            size: 5,
            rdev: (0, 0),
        })
        .unwrap();
        let out = w.out;
        assert_eq!(out.len(), 116); // 110 + "init\0" = 115, padded to 116
        assert_eq!(&out[..14], b"07070100000002");
        assert_eq!(&out[14..22], b"000081ED");
        assert_eq!(&out[30..38], b"00000000");
        assert_eq!(&out[94..102], b"00000005"); // namesize
    }

    #[test]
    fn roundtrip() {
        let mut tree = Tree::default();
        tree.insert(&ImagePath::new("etc/motd").unwrap(), Entry::bytes(b"hello".to_vec(), 0o644, 9, "e"))
            .unwrap();
        tree.insert(&ImagePath::new("bin/sh").unwrap(), Entry::symlink("busybox", 9, "e")).unwrap();
        let one = write_tree(&tree, None, Vec::new(), |_| {}).unwrap();
        // Two archives back to back with padding, as a kernel would take them.
        let mut both = one.clone();
        both.extend_from_slice(&[0u8; 512]);
        both.extend_from_slice(&one);
        let mut seen = Vec::new();
        read_archives(&mut &both[..], &mut |e| {
            seen.push((e.header.name, e.header.mode, e.header.size, e.target))
        })
        .unwrap();
        let first = [
            (".".to_string(), 0o040755, 0, None),
            ("bin".into(), 0o040755, 0, None),
            ("bin/sh".into(), 0o120777, 7, Some("busybox".into())),
            ("etc".into(), 0o040755, 0, None),
            ("etc/motd".into(), 0o100644, 5, None),
        ];
        assert_eq!(seen[..5], first[..]);
        assert_eq!(seen[5..], first[..]);
    }

    #[test]
    fn archive_is_padded_and_ends_with_trailer() {
        let mut tree = Tree::default();
        tree.insert(&ImagePath::new("a").unwrap(), Entry::bytes(b"xyz".to_vec(), 0o644, 5, "e")).unwrap();
        let out = write_tree(&tree, Some(3), Vec::new(), |_| {}).unwrap();
        assert_eq!(out.len() % 4, 0);
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("TRAILER!!!"));
        // mtime 5 is clamped to the epoch, 3.
        let a = text.find("a\0").unwrap();
        assert_eq!(&text[a - 110 + 46..a - 110 + 54], "00000003");
    }
}
