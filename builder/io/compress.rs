//! The compressors an initramfs can be wrapped in, as one streaming writer.

use std::io::{self, Write};

/// A compression and its level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", content = "level", rename_all = "lowercase")]
pub enum Compression {
    Zstd(i32),
    Gzip(u32),
    Xz(u32),
    None,
}

/// A `compression` or `compression-level` that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadCompression {
    #[error("compression level {level} is out of range for {kind}: use {lo} to {hi}")]
    Level { level: i32, kind: String, lo: i32, hi: i32 },
    #[error("unknown compression `{0}`: use zstd, gzip, xz or none")]
    Unknown(String),
}

impl Default for Compression {
    fn default() -> Self {
        Compression::Zstd(3)
    }
}

impl Compression {
    /// From `compression` and `compression-level` as written in `image.toml`.
    pub fn from_config(kind: Option<&str>, level: Option<i32>) -> Result<Compression, BadCompression> {
        let in_range = |lo: i32, hi: i32, default: i32| match level {
            None => Ok(default),
            Some(l) if (lo..=hi).contains(&l) => Ok(l),
            Some(level) => {
                Err(BadCompression::Level { level, kind: kind.unwrap_or("zstd").to_string(), lo, hi })
            }
        };
        match kind.unwrap_or("zstd") {
            "zstd" => Ok(Compression::Zstd(in_range(1, 22, 3)?)),
            "gzip" => Ok(Compression::Gzip(in_range(1, 9, 9)? as u32)),
            "xz" => Ok(Compression::Xz(in_range(0, 9, 6)? as u32)),
            "none" => Ok(Compression::None),
            other => Err(BadCompression::Unknown(other.to_string())),
        }
    }

    /// The file name suffix after `.cpio`.
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::Zstd(_) => ".zst",
            Compression::Gzip(_) => ".gz",
            Compression::Xz(_) => ".xz",
            Compression::None => "",
        }
    }
}

/// zstd's multithreaded job size. Fixed, so the output never depends on defaults.
const ZSTD_JOB_SIZE: u32 = 4 << 20;

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Compression::Zstd(l) => write!(f, "zstd level {l}"),
            Compression::Gzip(l) => write!(f, "gzip level {l}"),
            Compression::Xz(l) => write!(f, "xz level {l}"),
            Compression::None => write!(f, "none"),
        }
    }
}

/// A writer that compresses into `W`; `finish` flushes the trailer and returns `W`.
pub enum Compressor<W: Write> {
    Zstd(zstd::stream::write::Encoder<'static, W>),
    Gzip(super::gzip::ParallelGz<W>),
    Xz(liblzma::write::XzEncoder<W>),
    None(W),
}

impl<W: Write> Compressor<W> {
    /// Uses every core: zstd, gzip and xz compress on worker threads while the caller
    /// reads files. Their output does not depend on the number of workers, so builds on
    /// machines of other sizes give the same bytes.
    pub fn new(inner: W, compression: Compression) -> io::Result<Self> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        Ok(match compression {
            Compression::Zstd(level) => {
                let mut enc = zstd::stream::write::Encoder::new(inner, level)?;
                enc.multithread(threads.max(1))?;
                // Jobs of 4 MiB hold zstd's buffers near 40 MiB on two workers (the
                // default, 4 windows, takes twice that) for 0.3% more output.
                enc.set_parameter(zstd::stream::raw::CParameter::JobSize(ZSTD_JOB_SIZE))?;
                enc.include_checksum(true)?;
                Compressor::Zstd(enc)
            }
            Compression::Gzip(level) => Compressor::Gzip(super::gzip::ParallelGz::new(inner, level)?),
            Compression::Xz(level) => {
                // The kernel's XZ decoder only verifies CRC32 (or no) checks:
                // Documentation/staging/xz.rst, "xz --check=crc32".
                let stream = liblzma::stream::MtStreamBuilder::new()
                    .preset(level)
                    .threads(threads)
                    .check(liblzma::stream::Check::Crc32)
                    .encoder()
                    .map_err(io::Error::other)?;
                Compressor::Xz(liblzma::write::XzEncoder::new_stream(inner, stream))
            }
            Compression::None => Compressor::None(inner),
        })
    }

    pub fn finish(self) -> io::Result<W> {
        match self {
            Compressor::Zstd(e) => e.finish(),
            Compressor::Gzip(e) => e.finish(),
            Compressor::Xz(e) => e.finish(),
            Compressor::None(w) => Ok(w),
        }
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::Zstd(e) => e.write(buf),
            Compressor::Gzip(e) => e.write(buf),
            Compressor::Xz(e) => e.write(buf),
            Compressor::None(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::Zstd(e) => e.flush(),
            Compressor::Gzip(e) => e.flush(),
            Compressor::Xz(e) => e.flush(),
            Compressor::None(w) => w.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn roundtrip(c: Compression) -> Vec<u8> {
        let data: Vec<u8> = (0..300_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let mut w = Compressor::new(Vec::new(), c).unwrap();
        w.write_all(&data).unwrap();
        let packed = w.finish().unwrap();
        let mut out = Vec::new();
        match c {
            Compression::Zstd(_) => {
                zstd::stream::read::Decoder::new(&packed[..]).unwrap().read_to_end(&mut out)
            }
            Compression::Gzip(_) => flate2::read::GzDecoder::new(&packed[..]).read_to_end(&mut out),
            Compression::Xz(_) => liblzma::read::XzDecoder::new(&packed[..]).read_to_end(&mut out),
            Compression::None => (&packed[..]).read_to_end(&mut out),
        }
        .unwrap();
        assert_eq!(out, data);
        packed
    }

    #[test]
    fn every_compression_roundtrips_and_repeats() {
        for c in [Compression::Zstd(3), Compression::Gzip(6), Compression::Xz(1), Compression::None] {
            assert_eq!(roundtrip(c), roundtrip(c), "{c:?} is not deterministic");
        }
    }

    #[test]
    fn levels_are_checked() {
        assert_eq!(Compression::from_config(Some("xz"), None), Ok(Compression::Xz(6)));
        assert!(Compression::from_config(Some("gzip"), Some(12)).unwrap_err().to_string().contains("1 to 9"));
        assert!(Compression::from_config(Some("lz4"), None)
            .unwrap_err()
            .to_string()
            .contains("unknown compression `lz4`"));
    }
}
