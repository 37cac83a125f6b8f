//! Reading ahead for a cold page cache. An archive writer reads its host files one at a
//! time; from a cold cache each read waits on the disk. Here the files it is about to
//! read are asked of the disk several at a time (`posix_fadvise(WILLNEED)`, which
//! queues the reads and returns), up to a window ahead of the writer, so a cold build
//! waits on the disk's parallel throughput instead. When a sample of the files is in
//! the cache already, nothing is started and nothing is listed: a warm build pays a few
//! reads of one byte.

use std::fs::File;
use std::os::fd::AsRawFd as _;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::source::{HostPath, Source};

/// Threads asking for files: enough requests in flight for a virtio disk or an SSD.
const READERS: usize = 8;
/// How far ahead of the writer reading goes: what the cache is asked to hold for it.
const WINDOW: u64 = 128 << 20;
/// Files checked to tell a warm cache from a cold one.
const SAMPLE: usize = 32;

/// Bytes a writer will read: `len` bytes at `offset` of a host file.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub path: HostPath,
    pub offset: u64,
    pub len: u64,
}

impl Span {
    /// The host bytes behind `source` of `size` bytes, if it has any.
    pub fn of(source: &Source, size: u64) -> Option<Span> {
        let (path, offset, len) = host_bytes(source, size)?;
        Some(Span { path, offset, len })
    }
}

/// Where the bytes of `source` (`size` of them) are on the host: path, offset, length.
fn host_bytes(source: &Source, size: u64) -> Option<(HostPath, u64, u64)> {
    match source {
        Source::Host(p) => Some((*p, 0, size)),
        Source::Range { file, offset, len } => Some((*file, *offset, *len)),
        Source::Static(_) | Source::Bytes(_) => None,
    }
}

/// Reading ahead of a writer; stops when dropped.
pub struct Prefetch {
    shared: Arc<Shared>,
    readers: Vec<JoinHandle<()>>,
}

struct Shared {
    spans: Vec<Span>,
    /// Bytes of the spans before each one.
    starts: Vec<u64>,
    next: AtomicUsize,
    /// Bytes the writer has read so far.
    read: AtomicU64,
    stop: AtomicBool,
}

impl Prefetch {
    /// Reads ahead what the writer will read — `files`' host bytes, in the order
    /// `order` lists them — unless a sample of `files` is cached; only then are they
    /// listed (`order`), 32 bytes a file.
    pub fn start(
        files: impl Iterator<Item = Span> + Clone,
        order: impl FnOnce() -> Vec<Span>,
    ) -> Option<Prefetch> {
        if looks_cached(files) {
            return None;
        }
        let spans = order();
        if spans.is_empty() {
            return None;
        }
        let mut starts = Vec::with_capacity(spans.len());
        let mut at = 0;
        for span in &spans {
            starts.push(at);
            at += span.len;
        }
        let shared = Arc::new(Shared {
            spans,
            starts,
            next: AtomicUsize::new(0),
            read: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let readers = (0..READERS)
            .filter_map(|_| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new().name("prefetch".into()).spawn(move || ask(&shared)).ok()
            })
            .collect();
        Some(Prefetch { shared, readers })
    }

    /// The writer has read `bytes` more.
    pub fn advance(&self, bytes: u64) {
        self.shared.read.fetch_add(bytes, Ordering::Relaxed);
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

/// One reader: takes the next span, waits until it is within the window of the writer,
/// and asks the kernel to read it. Errors are the writer's to find and report.
fn ask(s: &Shared) {
    loop {
        let i = s.next.fetch_add(1, Ordering::Relaxed);
        let Some(span) = s.spans.get(i) else { return };
        while s.starts[i] > s.read.load(Ordering::Relaxed) + WINDOW {
            if s.stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if s.stop.load(Ordering::Relaxed) {
            return;
        }
        // A file whose first page is cached is taken as cached: asking again for pages
        // the cache holds costs more (~50 us a file) than this look.
        if span.len == 0 {
            continue;
        }
        let Ok(file) = File::open(span.path.to_path_buf()) else { continue };
        if !in_cache(&file, span.offset) {
            let (offset, len) = (span.offset as i64, span.len as i64);
            // SAFETY: advice on a descriptor this function holds open; the result is a hint.
            unsafe { libc::posix_fadvise(file.as_raw_fd(), offset, len, libc::POSIX_FADV_WILLNEED) };
        }
    }
}

/// Whether files spread over `files` are in the page cache (yes when there are none).
fn looks_cached(files: impl Iterator<Item = Span> + Clone) -> bool {
    let host = files.filter(|span| span.len > 0);
    let step = (host.clone().count() / SAMPLE).max(1);
    host.step_by(step)
        .take(SAMPLE)
        .all(|span| File::open(span.path.to_path_buf()).is_ok_and(|file| in_cache(&file, span.offset)))
}

/// Whether the byte at `offset` of `file` is in the page cache: a one-byte read that
/// must not wait on the disk (`RWF_NOWAIT`) succeeds.
fn in_cache(file: &File, offset: u64) -> bool {
    let mut byte = 0u8;
    let iov = libc::iovec { iov_base: (&mut byte as *mut u8).cast(), iov_len: 1 };
    // SAFETY: one iovec over a live local byte, on a descriptor the caller holds open.
    let n = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, offset as i64, libc::RWF_NOWAIT) };
    n == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_file_starts_nothing_and_stopping_joins_the_readers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![7u8; 100_000]).unwrap();
        // Just written: in the cache.
        let cached = [Source::host(&path)];
        let files = || cached.iter().filter_map(|s| Span::of(s, 100_000));
        assert!(looks_cached(files()));
        assert!(Prefetch::start(files(), || panic!("a cached file is not listed")).is_none());

        // Files that cannot be read count as not cached; the readers pass them by.
        let missing: Vec<Source> =
            (0..100).map(|i| Source::host(&dir.path().join(format!("gone{i}")))).collect();
        let files = || missing.iter().filter_map(|s| Span::of(s, 10));
        let spans = || files().collect();
        let p = Prefetch::start(files(), spans).expect("nothing cached, so readers start");
        p.advance(1000);
        drop(p);
    }
}
