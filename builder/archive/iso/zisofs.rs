//! zisofs: files stored compressed on an ISO and read back as plain files, as mkzftree
//! and xorriso write them and Linux (`CONFIG_ZISOFS`), libarchive and xorriso read them.
//!
//! A compressed file's data is a 16-byte header (magic, size, header size in 4-byte
//! units, log2 of the block size), a table of `blocks + 1` little-endian offsets from the
//! start of the file, and each 32 KiB block deflated on its own as a zlib stream. Its
//! Rock Ridge record carries a `ZF` entry with the real size (fs/isofs/rock.c, `ZF`;
//! fs/isofs/compress.c reads the table). Readers without Rock Ridge (Joliet, Windows)
//! see the compressed bytes: zisofs is for Linux nodes.
//!
//! hadris-iso writes no `ZF` entry and takes no extra system-use entry for a node (the
//! call missing is one like `Node::with_system_use(b"ZF", body)`), so [`mark`] adds them
//! once the ISO is written: in each compressed file's record it replaces the 26-byte
//! `TF` entry (creation, modification and access times) with `ZF` and a `PD` padding
//! entry of 10 bytes, leaving every record its length. The modification time is then
//! the record's own date, which holds the same clamped time.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt as _;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use flate2::{Compress, Compression, FlushCompress};

use crate::io::count::CountingWriter;
use crate::io::source::Source;

/// Blocks of 32 KiB: the size mkisofs and xorriso use, which every reader takes.
pub const BLOCK_LOG2: u8 = 15;
const BLOCK: usize = 1 << BLOCK_LOG2;
const MAGIC: [u8; 8] = [0x37, 0xE4, 0x53, 0x96, 0xC9, 0xDB, 0xD6, 0x07];
const HEADER: usize = 16;
/// zlib's default level: within 3% of level 9's size here, at under half its time.
const LEVEL: u32 = 6;
const SECTOR: u64 = 2048;

/// Writes `len` bytes of `input` to `out` as a zisofs file and returns its length.
/// Files of 4 GiB or more cannot be compressed (the format's sizes are 32-bit).
pub fn encode(input: &mut impl Read, len: u64, out: &mut (impl Write + Seek)) -> io::Result<u64> {
    if len >= 1 << 32 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "zisofs holds files under 4 GiB"));
    }
    let blocks = (len as usize).div_ceil(BLOCK);
    let mut header = [0u8; HEADER];
    header[..8].copy_from_slice(&MAGIC);
    header[8..12].copy_from_slice(&(len as u32).to_le_bytes());
    header[12] = (HEADER / 4) as u8;
    header[13] = BLOCK_LOG2;
    let start = out.stream_position()?;
    out.write_all(&header)?;
    // The table is filled in once the blocks' sizes are known.
    out.write_all(&vec![0u8; 4 * (blocks + 1)])?;
    let mut table = Vec::with_capacity(4 * (blocks + 1));
    let mut at = (HEADER + 4 * (blocks + 1)) as u64;
    table.extend_from_slice(&(at as u32).to_le_bytes());
    let mut plain = vec![0u8; BLOCK];
    let mut packed = Vec::with_capacity(BLOCK + BLOCK / 8 + 64);
    let mut zlib = Compress::new(Compression::new(LEVEL), true);
    let mut left = len;
    while left > 0 {
        let n = left.min(BLOCK as u64) as usize;
        input.read_exact(&mut plain[..n])?;
        left -= n as u64;
        zlib.reset();
        packed.clear();
        let status = zlib
            .compress_vec(&plain[..n], &mut packed, FlushCompress::Finish)
            .map_err(|e| io::Error::other(format!("deflate: {e}")))?;
        if status != flate2::Status::StreamEnd {
            return Err(io::Error::other("deflate: a block did not fit its buffer"));
        }
        out.write_all(&packed)?;
        at += packed.len() as u64;
        if at >= 1 << 32 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "zisofs holds files under 4 GiB"));
        }
        table.extend_from_slice(&(at as u32).to_le_bytes());
    }
    let end = out.stream_position()?;
    out.seek(SeekFrom::Start(start + HEADER as u64))?;
    out.write_all(&table)?;
    out.seek(SeekFrom::Start(end))?;
    Ok(at)
}

/// The zisofs form of `source` (`size` bytes) as a file in smelt's cache, or `None`
/// when it would not take a sector less than the plain file (stored plain). Cached by
/// content: a rebuild reads each file once, to hash it, and compresses nothing again.
pub fn cached(source: &Source, size: u64) -> anyhow::Result<Option<PathBuf>> {
    cached_in(&crate::cache::dir(), source, size)
}

fn cached_in(cache: &std::path::Path, source: &Source, size: u64) -> anyhow::Result<Option<PathBuf>> {
    if !worth_trying(size) {
        return Ok(None);
    }
    let mut hash = CountingWriter::hashing(io::sink());
    io::copy(&mut source.open()?, &mut hash).with_context(|| format!("reading {}", source.describe()))?;
    let (_, read, digest) = hash.into_parts();
    if read != size {
        bail!("{} changed size while the image was built", source.describe());
    }
    let digest = digest.expect("a hashing writer");
    let dir = cache.join(format!("zisofs/{BLOCK_LOG2}-{LEVEL}")).join(&digest[..2]);
    let (packed, plain) = (dir.join(&digest), dir.join(format!("{digest}.plain")));
    if packed.exists() {
        return Ok(Some(packed));
    }
    if plain.exists() {
        return Ok(None);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // Unique per call: two threads may compress the same content (duplicate files).
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let partial = dir.join(format!("{digest}.partial-{}-{call}", std::process::id()));
    crate::cleanup::track(&partial);
    let written = (|| -> io::Result<u64> {
        let mut out = io::BufWriter::new(File::create(&partial)?);
        let n = encode(&mut source.open()?, size, &mut out)?;
        out.into_inner().map_err(|e| e.into_error())?;
        Ok(n)
    })();
    let kept = match written {
        Ok(n) if saves(size, n) => std::fs::rename(&partial, &packed).map(|()| Some(packed)),
        Ok(_) => std::fs::remove_file(&partial).and_then(|()| File::create(&plain)).map(|_| None),
        Err(e) => Err(e),
    };
    if kept.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    crate::cleanup::untrack(&partial);
    kept.with_context(|| format!("compressing {} into {}", source.describe(), dir.display()))
}

/// Whether storing `compressed` bytes instead of `plain` saves a sector on the ISO.
pub fn saves(plain: u64, compressed: u64) -> bool {
    compressed.div_ceil(SECTOR) < plain.div_ceil(SECTOR)
}

/// Files that cannot take a sector less however well they compress.
pub fn worth_trying(plain: u64) -> bool {
    plain > SECTOR && plain < 1 << 32
}

/// The plain bytes of a zisofs file, to check [`encode`] against.
#[cfg(test)]
pub fn decode(data: &[u8]) -> anyhow::Result<Vec<u8>> {
    if data.len() < HEADER || data[..8] != MAGIC {
        bail!("not a zisofs file");
    }
    let len = u32::from_le_bytes(data[8..12].try_into().expect("4 bytes")) as usize;
    let (header, block) = (usize::from(data[12]) * 4, 1usize << data[13]);
    let word = |i: usize| -> anyhow::Result<usize> {
        let at = header + 4 * i;
        let b = data.get(at..at + 4).context("the block table is cut short")?;
        Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
    };
    let mut out = Vec::with_capacity(len);
    for i in 0..len.div_ceil(block) {
        let (from, to) = (word(i)?, word(i + 1)?);
        let want = block.min(len - out.len());
        if from == to {
            out.resize(out.len() + want, 0);
            continue;
        }
        let mut z = flate2::read::ZlibDecoder::new(data.get(from..to).context("a block is cut short")?);
        let before = out.len();
        z.read_to_end(&mut out)?;
        if out.len() - before != want {
            bail!("block {i} holds {} bytes, not {want}", out.len() - before);
        }
    }
    Ok(out)
}

/// A `ZF` entry for a file of `len` plain bytes.
fn zf_entry(len: u64) -> [u8; 16] {
    let mut e = [0u8; 16];
    e[..4].copy_from_slice(&[b'Z', b'F', 16, 1]);
    e[4..6].copy_from_slice(b"pz");
    e[6] = (HEADER / 4) as u8;
    e[7] = BLOCK_LOG2;
    e[8..12].copy_from_slice(&(len as u32).to_le_bytes());
    e[12..16].copy_from_slice(&(len as u32).to_be_bytes());
    e
}

/// The `TF` entry smelt's records carry (creation, modification, access): what `ZF`
/// and a `PD` replace.
const TF_LEN: usize = 26;

/// Gives the records of `files` (ISO paths without the leading `/`, with their plain
/// sizes) in the written ISO their `ZF` entries (see the module's notes).
pub fn mark(iso: &File, files: &BTreeMap<String, u64>) -> anyhow::Result<()> {
    let mut patches: Vec<(u64, [u8; TF_LEN])> = Vec::with_capacity(files.len());
    walk(iso, |path, entries| {
        let Some(&len) = files.get(path) else { return Ok(()) };
        let Some(tf) = entries.iter().find(|e| &e.bytes[..2] == b"TF") else {
            bail!("the record of /{path} has no TF entry to make room for its ZF");
        };
        if tf.bytes.len() != TF_LEN {
            bail!(
                "the record of /{path} has a TF of {} bytes, not {TF_LEN}: no room for its ZF",
                tf.bytes.len()
            );
        }
        let mut patch = [0u8; TF_LEN];
        patch[..16].copy_from_slice(&zf_entry(len));
        patch[16..20].copy_from_slice(&[b'P', b'D', (TF_LEN - 16) as u8, 1]);
        patches.push((tf.at, patch));
        Ok(())
    })?;
    if patches.len() != files.len() {
        bail!(
            "{} compressed files were written but {} of their records were found",
            files.len(),
            patches.len()
        );
    }
    for (at, bytes) in patches {
        iso.write_all_at(&bytes, at).context("adding ZF entries")?;
    }
    Ok(())
}

/// The compressed files of an ISO with their plain sizes, from their `ZF` entries.
pub fn compressed(iso: &File) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut found = BTreeMap::new();
    walk(iso, |path, entries| {
        if let Some(zf) = entries.iter().find(|e| &e.bytes[..2] == b"ZF" && e.bytes.len() >= 16) {
            if &zf.bytes[4..6] == b"pz" {
                found.insert(path.to_string(), u64::from(u32::from_le_bytes(zf.bytes[8..12].try_into()?)));
            }
        }
        Ok(())
    })?;
    Ok(found)
}

/// A system-use entry and where its bytes are in the ISO.
struct Su {
    at: u64,
    bytes: Vec<u8>,
}

/// Calls `visit` with the path and the system-use entries (continuation areas
/// followed) of every file and directory in the Rock Ridge tree, relocated
/// directories at the place they belong.
fn walk(iso: &File, mut visit: impl FnMut(&str, &[Su]) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let read = |at: u64, len: usize| -> anyhow::Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        iso.read_exact_at(&mut buf, at).with_context(|| format!("reading the ISO at byte {at}"))?;
        Ok(buf)
    };
    let pvd = read(16 * SECTOR, SECTOR as usize)?;
    if pvd[0] != 1 || &pvd[1..6] != b"CD001" {
        bail!("no primary volume descriptor at sector 16");
    }
    let root = &pvd[156..190];
    let mut dirs = vec![(String::new(), le32(&root[2..]), le32(&root[10..]))];
    while let Some((dir, extent, size)) = dirs.pop() {
        let data = read(u64::from(extent) * SECTOR, size as usize)?;
        let mut off = 0usize;
        while off < data.len() {
            let len = usize::from(data[off]);
            if len == 0 {
                off = (off / SECTOR as usize + 1) * SECTOR as usize;
                continue;
            }
            let rec = data.get(off..off + len).context("a directory record runs past its extent")?;
            let rec_at = u64::from(extent) * SECTOR + off as u64;
            off += len;
            let name_len = usize::from(rec[32]);
            // `.` and `..` (identifiers 0 and 1) come first in every directory.
            if name_len == 1 && rec[33] <= 1 {
                continue;
            }
            let su_start = 33 + name_len + usize::from(name_len % 2 == 0);
            let entries = system_use(iso, rec_at + su_start as u64, rec.get(su_start..).unwrap_or(&[]))?;
            let mut name = Vec::new();
            let mut child = None;
            let mut relocated = false;
            for e in &entries {
                match &e.bytes[..2] {
                    b"NM" if e.bytes.len() > 5 => name.extend_from_slice(&e.bytes[5..]),
                    b"CL" if e.bytes.len() >= 8 => child = Some(le32(&e.bytes[4..])),
                    b"RE" => relocated = true,
                    _ => {}
                }
            }
            if relocated {
                continue;
            }
            let path = format!("{dir}{}", String::from_utf8_lossy(&name));
            visit(&path, &entries)?;
            let is_dir = rec[25] & 2 != 0;
            if let Some(block) = child {
                // A relocated directory: its size is in its own `.` record.
                let dot = read(u64::from(block) * SECTOR, 34)?;
                dirs.push((format!("{path}/"), block, le32(&dot[10..])));
            } else if is_dir {
                dirs.push((format!("{path}/"), le32(&rec[2..]), le32(&rec[10..])));
            }
        }
    }
    Ok(())
}

/// The entries of a record's system-use area at `at`, with its continuation areas.
fn system_use(iso: &File, mut at: u64, inline: &[u8]) -> anyhow::Result<Vec<Su>> {
    let mut entries = Vec::new();
    let mut area = inline.to_vec();
    for _ in 0..64 {
        let mut next = None;
        let mut i = 0;
        while i + 4 <= area.len() {
            let len = usize::from(area[i + 2]);
            if len < 4 || i + len > area.len() {
                break;
            }
            let bytes = area[i..i + len].to_vec();
            if &bytes[..2] == b"CE" && len >= 28 {
                next = Some((
                    u64::from(le32(&bytes[4..])) * SECTOR + u64::from(le32(&bytes[12..])),
                    le32(&bytes[20..]) as usize,
                ));
            } else if &bytes[..2] == b"ST" {
                break;
            }
            entries.push(Su { at: at + i as u64, bytes });
            i += len;
        }
        let Some((ce_at, ce_len)) = next else { return Ok(entries) };
        area = vec![0u8; ce_len];
        iso.read_exact_at(&mut area, ce_at).context("reading a continuation area")?;
        at = ce_at;
    }
    bail!("a record's continuation areas go on past 64")
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().expect("4 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(data: &[u8]) -> u64 {
        let mut out = io::Cursor::new(Vec::new());
        let n = encode(&mut &data[..], data.len() as u64, &mut out).unwrap();
        let out = out.into_inner();
        assert_eq!(n as usize, out.len());
        assert_eq!(decode(&out).unwrap(), data);
        n
    }

    #[test]
    fn files_round_trip_at_every_block_boundary() {
        for len in [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK, 5 * BLOCK + 77] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8 ^ (i / 4096) as u8).collect();
            roundtrip(&data);
        }
    }

    #[test]
    fn text_shrinks_and_random_bytes_do_not_save_a_sector() {
        let text = b"import os\nimport sys\n".repeat(10_000);
        assert!(saves(text.len() as u64, roundtrip(&text)));
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let noise: Vec<u8> = (0..100_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert!(!saves(noise.len() as u64, roundtrip(&noise)));
    }

    /// Regression: two threads compressing the same content (duplicate files in a
    /// tree) shared one temporary name, and one of them failed.
    #[test]
    fn the_same_content_compressed_at_once_on_many_threads() {
        let cache = tempfile::tempdir().unwrap();
        let text: std::sync::Arc<[u8]> = b"the same line again\n".repeat(5000).into();
        let results: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let (source, len) = (Source::Bytes(text.clone()), text.len() as u64);
                    let cache = cache.path();
                    s.spawn(move || cached_in(cache, &source, len))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for r in results {
            let packed = r.unwrap().expect("text shrinks");
            assert_eq!(decode(&std::fs::read(packed).unwrap()).unwrap(), &text[..]);
        }
    }

    #[test]
    fn the_zf_entry_is_as_linux_reads_it() {
        let e = zf_entry(0x0102_0304);
        assert_eq!(&e[..8], &[b'Z', b'F', 16, 1, b'p', b'z', 4, 15]);
        assert_eq!(&e[8..], &[4, 3, 2, 1, 1, 2, 3, 4]);
    }
}
