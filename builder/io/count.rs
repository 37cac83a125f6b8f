//! A writer that counts and hashes what passes through it, so sizes and checksums come
//! from the bytes actually written rather than from a second read.

use std::io::{self, Write};

use sha2::{Digest, Sha256};

pub struct CountingWriter<W> {
    inner: W,
    bytes: u64,
    hash: Option<Sha256>,
}

impl<W: Write> CountingWriter<W> {
    pub fn hashing(inner: W) -> Self {
        CountingWriter { inner, bytes: 0, hash: Some(Sha256::new()) }
    }

    /// Goes on counting and hashing from where another writer stopped (see
    /// [`CountingWriter::into_state`]), as if these bytes followed its own.
    pub fn resuming(inner: W, (bytes, hash): (u64, Sha256)) -> Self {
        CountingWriter { inner, bytes, hash: Some(hash) }
    }

    /// The byte count and the running hash, to resume from.
    pub fn into_state(self) -> (u64, Sha256) {
        (self.bytes, self.hash.unwrap_or_default())
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The inner writer, the byte count and the SHA-256 (hex) if hashing.
    pub fn into_parts(self) -> (W, u64, Option<String>) {
        let hex = self.hash.map(|h| h.finalize().iter().map(|b| format!("{b:02x}")).collect());
        (self.inner, self.bytes, hex)
    }
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        if let Some(h) = &mut self.hash {
            h.update(&buf[..n]);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The SHA-256 of bytes in hand, in hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of a file, read in a stream.
pub fn sha256_file(path: &std::path::Path) -> io::Result<String> {
    let mut w = CountingWriter::hashing(io::sink());
    io::copy(&mut std::fs::File::open(path)?, &mut w)?;
    Ok(w.into_parts().2.expect("a hashing writer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_hashes() {
        let mut w = CountingWriter::hashing(Vec::new());
        w.write_all(b"abc").unwrap();
        let (inner, n, hash) = w.into_parts();
        assert_eq!((inner.len(), n), (3, 3));
        assert_eq!(hash.unwrap(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let mut first = CountingWriter::hashing(io::sink());
        first.write_all(b"a").unwrap();
        let mut rest = CountingWriter::resuming(Vec::new(), first.into_state());
        rest.write_all(b"bc").unwrap();
        let (inner, n, resumed) = rest.into_parts();
        assert_eq!((inner, n), (b"bc".to_vec(), 3));
        assert_eq!(resumed.unwrap(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
