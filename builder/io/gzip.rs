//! gzip on every core, as pigz does it: the stream is cut into 1 MiB pieces, each
//! deflated on a worker with the 32 KiB before it as its dictionary and ended on a byte
//! boundary (a sync flush), and the pieces are joined in order into one deflate stream
//! in one gzip member. Any gunzip, and the kernel, read it as an ordinary gzip file.
//! The cut points are fixed, so the bytes do not depend on the core count; the price
//! is a few bytes per piece. (A gzip member per piece would be simpler, but the kernel
//! wants each compressed segment of an initramfs to end where a newc archive ends:
//! init/initramfs.c, "junk at the end of compressed archive".)

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// Uncompressed bytes per piece.
const PIECE: usize = 1 << 20;
/// Deflate's window: how far back a piece may refer into the one before.
const WINDOW: usize = 32 << 10;

/// A piece to deflate: the window before it, its bytes, whether it ends the stream,
/// and where its deflate bytes go.
struct Job {
    dictionary: Vec<u8>,
    piece: Vec<u8>,
    last: bool,
    done: SyncSender<io::Result<Vec<u8>>>,
}

pub struct ParallelGz<W: Write> {
    inner: Option<W>,
    piece: Vec<u8>,
    /// The last `WINDOW` bytes handed to a worker.
    window: Vec<u8>,
    crc: Crc,
    jobs: Option<SyncSender<Job>>,
    /// Pieces being deflated, oldest first: written to `inner` in this order.
    pending: VecDeque<Receiver<io::Result<Vec<u8>>>>,
    workers: Vec<JoinHandle<()>>,
}

impl<W: Write> ParallelGz<W> {
    /// A gzip writer deflating on a worker per core.
    pub fn new(inner: W, level: u32) -> io::Result<ParallelGz<W>> {
        Self::with_workers(inner, level, std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    fn with_workers(mut inner: W, level: u32, threads: usize) -> io::Result<ParallelGz<W>> {
        // ID1 ID2, deflate, no flags, mtime 0 (reproducible), no extra flags, OS unknown.
        inner.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff])?;
        let (jobs, queue) = sync_channel::<Job>(threads);
        let queue = Arc::new(Mutex::new(queue));
        let workers = (0..threads)
            .filter_map(|_| {
                let queue = Arc::clone(&queue);
                std::thread::Builder::new()
                    .name("gzip".into())
                    .spawn(move || deflate_jobs(&queue, level))
                    .ok()
            })
            .collect();
        Ok(ParallelGz {
            inner: Some(inner),
            piece: Vec::with_capacity(PIECE),
            window: Vec::new(),
            crc: Crc::new(),
            jobs: Some(jobs),
            pending: VecDeque::new(),
            workers,
        })
    }

    /// Deflates what is left as the end of the stream, writes every piece in order and
    /// the gzip trailer, and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        while !self.pending.is_empty() {
            self.write_oldest()?;
        }
        self.stop();
        let mut inner = self.inner.take().expect("finished once");
        inner.write_all(&self.crc.sum().to_le_bytes())?;
        inner.write_all(&self.crc.amount().to_le_bytes())?;
        inner.flush()?;
        Ok(inner)
    }

    fn submit(&mut self, last: bool) -> io::Result<()> {
        let piece = std::mem::replace(&mut self.piece, Vec::with_capacity(PIECE));
        self.crc.update(&piece);
        // Every piece but the last is PIECE bytes, longer than the window.
        let window = piece[piece.len().saturating_sub(WINDOW)..].to_vec();
        let dictionary = std::mem::replace(&mut self.window, window);
        let (done, deflated) = sync_channel(1);
        let jobs = self.jobs.as_ref().expect("not finished");
        jobs.send(Job { dictionary, piece, last, done })
            .map_err(|_| io::Error::other("the gzip workers stopped"))?;
        self.pending.push_back(deflated);
        // Enough pieces in flight to keep every worker busy, and no more in memory.
        while self.pending.len() > 2 * self.workers.len().max(1) {
            self.write_oldest()?;
        }
        Ok(())
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        let deflated = self.pending.pop_front().expect("a piece in flight");
        let bytes = deflated.recv().map_err(|_| io::Error::other("a gzip worker stopped"))??;
        self.inner.as_mut().expect("not finished").write_all(&bytes)
    }

    fn stop(&mut self) {
        drop(self.jobs.take());
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

impl<W: Write> Drop for ParallelGz<W> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A worker: deflates pieces until the queue closes.
fn deflate_jobs(queue: &Mutex<Receiver<Job>>, level: u32) {
    loop {
        let next = queue.lock().map(|q| q.recv());
        let Ok(Ok(job)) = next else { return };
        let deflated = deflate(&job.dictionary, &job.piece, job.last, level);
        let _ = job.done.send(deflated);
    }
}

/// Raw deflate of `piece` primed with `dictionary`: ended by a sync flush (an empty
/// stored block, so the next piece starts on a byte boundary), or as the final block.
fn deflate(dictionary: &[u8], piece: &[u8], last: bool, level: u32) -> io::Result<Vec<u8>> {
    let mut z = Compress::new(Compression::new(level), false);
    if !dictionary.is_empty() {
        z.set_dictionary(dictionary).map_err(io::Error::other)?;
    }
    let flush = if last { FlushCompress::Finish } else { FlushCompress::Sync };
    let mut out = Vec::with_capacity(piece.len() / 2 + 64);
    loop {
        let consumed = z.total_in() as usize;
        out.reserve(64 << 10);
        let status = z.compress_vec(&piece[consumed..], &mut out, flush).map_err(io::Error::other)?;
        let all_in = z.total_in() as usize == piece.len();
        // Done when the input is in and the flush left room to spare (or the stream ended).
        match status {
            Status::StreamEnd => return Ok(out),
            _ if all_in && !last && out.len() < out.capacity() => return Ok(out),
            _ => {}
        }
    }
}

impl<W: Write> Write for ParallelGz<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let take = (PIECE - self.piece.len()).min(buf.len());
        self.piece.extend_from_slice(&buf[..take]);
        if self.piece.len() == PIECE {
            self.submit(false)?;
        }
        Ok(take)
    }

    /// Pieces are cut by size only, so a flush cannot end one early: the output would
    /// then depend on when the caller flushed.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn gz(data: &[u8]) -> Vec<u8> {
        gz_on(data, 2)
    }

    fn gz_on(data: &[u8], workers: usize) -> Vec<u8> {
        let mut w = ParallelGz::with_workers(Vec::new(), 9, workers).unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }

    fn gunzip(packed: &[u8]) -> Vec<u8> {
        // One member: the single-member decoder reads all of it.
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(packed).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn pieces_join_into_one_member_that_gunzip_reads() {
        // Repeats that reach back across the 1 MiB cuts, so the dictionaries matter.
        let data: Vec<u8> = (0..3_500_000u32).map(|i| ((i / 7) % 251) as u8 ^ (i % 3) as u8).collect();
        let packed = gz(&data);
        assert!(packed == gz_on(&data, 1) && packed == gz_on(&data, 5), "the bytes depend on the workers");
        assert!(gunzip(&packed) == data);
        let mut gzip = std::process::Command::new("gzip")
            .arg("-dc")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("gzip (apt-get install gzip)");
        let mut stdin = gzip.stdin.take().unwrap();
        let feeder = std::thread::spawn(move || stdin.write_all(&packed).unwrap());
        let out = gzip.wait_with_output().unwrap();
        feeder.join().unwrap();
        assert!(out.status.success() && out.stdout == data, "gzip -dc disagrees");
    }

    #[test]
    fn short_and_empty_streams_are_valid_gzip_files() {
        assert!(gunzip(&gz(b"")).is_empty());
        assert_eq!(gunzip(&gz(b"hello")), b"hello");
        let exact: Vec<u8> = (0..PIECE as u32 * 2).map(|i| i as u8).collect();
        assert!(gunzip(&gz(&exact)) == exact);
    }
}
