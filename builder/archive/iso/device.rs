//! The device hadris-iso writes an ISO to: the output file, written on another thread
//! in 1 MiB batches and hashed there as it goes. The thread that lays the ISO out and
//! reads its files never waits on a write, and the checksum costs no second read.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::FileExt as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use hadris_io::{Error, ErrorKind, ErrorType};
use hadris_storage::{BlockIndex, BlockSize};

use crate::io::count::CountingWriter;
use crate::io::prefetch::Prefetch;

/// Bytes gathered before they go to the writer thread.
const BATCH: usize = 1 << 20;
/// Batches in flight: written memory stays at a few MiB whatever the ISO's size.
const IN_FLIGHT: usize = 4;

enum Job {
    Write {
        at: u64,
        data: Vec<u8>,
    },
    /// Answered once every write sent before it is on the file.
    Drain(SyncSender<()>),
}

/// What the writer thread did: the bytes it hashed and their SHA-256 (`None` when the
/// blocks did not come in one ascending run from byte 0), or the first write error.
type Outcome = io::Result<(u64, Option<String>)>;

pub struct Device<'c> {
    file: File,
    /// Bytes up to the end of the furthest block written.
    len: u64,
    batch: Vec<u8>,
    batch_at: u64,
    jobs: Option<SyncSender<Job>>,
    spare: Receiver<Vec<u8>>,
    worker: Option<JoinHandle<Outcome>>,
    /// The writer thread's error once seen, for every call after the one that saw it.
    failure: Option<(io::ErrorKind, String)>,
    /// Set by another thread to stop the write (the layout found it over budget).
    cancel: &'c AtomicBool,
    /// Reading ahead of the write, told how far it has got.
    ahead: Option<&'c Prefetch>,
}

impl<'c> Device<'c> {
    /// A device writing to `file`, which gets room for `most` bytes up front: the
    /// filesystem allocates its extents at once instead of block by block as pages are
    /// written (0.15-0.2 s of a 700 MB ISO). Room is a hint; without it, writes go on.
    pub fn new(
        file: File,
        most: u64,
        cancel: &'c AtomicBool,
        ahead: Option<&'c Prefetch>,
    ) -> io::Result<Device<'c>> {
        // SAFETY: fallocate on a file descriptor this function owns; its result is checked.
        let _room = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, most.min(i64::MAX as u64) as i64) };
        let (jobs, queue) = sync_channel::<Job>(IN_FLIGHT);
        let (give_back, spare) = sync_channel::<Vec<u8>>(IN_FLIGHT + 1);
        let out = file.try_clone()?;
        let worker = std::thread::Builder::new()
            .name("iso-writer".into())
            .spawn(move || write_jobs(out, queue, give_back))?;
        Ok(Device {
            file,
            len: 0,
            batch: Vec::with_capacity(BATCH),
            batch_at: 0,
            jobs: Some(jobs),
            spare,
            worker: Some(worker),
            failure: None,
            cancel,
            ahead,
        })
    }

    /// Waits for every write, cuts the file to the bytes written, and returns their
    /// count and SHA-256 when they were written in one pass.
    pub fn finish(mut self) -> io::Result<(u64, Option<String>)> {
        self.send()?;
        drop(self.jobs.take());
        let (hashed, hash) = self.join()?;
        self.file.set_len(self.len)?;
        Ok((self.len, hash.filter(|_| hashed == self.len)))
    }

    /// The writer thread's outcome; its error, if any, is the real cause of a failed send,
    /// and is given again to every later call.
    fn join(&mut self) -> Outcome {
        if let Some(handle) = self.worker.take() {
            let outcome =
                handle.join().unwrap_or_else(|_| Err(io::Error::other("the ISO writer thread panicked")));
            if let Err(e) = &outcome {
                self.failure = Some((e.kind(), e.to_string()));
            }
            return outcome;
        }
        let (kind, text) =
            self.failure.clone().unwrap_or((io::ErrorKind::Other, "the ISO writer stopped".into()));
        Err(io::Error::new(kind, text))
    }

    /// Hands the gathered batch to the writer thread.
    fn send(&mut self) -> io::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let next = self.spare.try_recv().unwrap_or_else(|_| Vec::with_capacity(BATCH));
        let data = std::mem::replace(&mut self.batch, next);
        let job = Job::Write { at: self.batch_at, data };
        self.batch_at += job_len(&job);
        self.post(job)
    }

    fn post(&mut self, job: Job) -> io::Result<()> {
        let sent = self.jobs.as_ref().map(|jobs| jobs.send(job).is_ok()).unwrap_or(false);
        if sent {
            return Ok(());
        }
        drop(self.jobs.take());
        Err(self.join().err().unwrap_or_else(|| io::Error::other("the ISO writer stopped")))
    }

    /// Every write sent so far is on the file.
    fn drain(&mut self) -> io::Result<()> {
        self.send()?;
        let (done, wait) = sync_channel(1);
        self.post(Job::Drain(done))?;
        match wait.recv() {
            Ok(()) => Ok(()),
            Err(_) => Err(self.join().err().unwrap_or_else(|| io::Error::other("the ISO writer stopped"))),
        }
    }
}

fn job_len(job: &Job) -> u64 {
    match job {
        Job::Write { data, .. } => data.len() as u64,
        Job::Drain(_) => 0,
    }
}

/// The writer thread: writes each batch where it belongs, hashes the ones that follow
/// on from the last, and gives the buffers back for reuse.
fn write_jobs(file: File, queue: Receiver<Job>, give_back: SyncSender<Vec<u8>>) -> Outcome {
    let mut hash = Some(CountingWriter::hashing(io::sink()));
    for job in queue {
        match job {
            Job::Write { at, data } => {
                file.write_all_at(&data, at)?;
                if let Some(h) = &mut hash {
                    if h.bytes() == at {
                        io::Write::write_all(h, &data)?;
                    } else {
                        hash = None;
                    }
                }
                let mut data = data;
                data.clear();
                let _ = give_back.try_send(data);
            }
            Job::Drain(done) => {
                let _ = done.send(());
            }
        }
    }
    Ok(match hash {
        Some(h) => {
            let (_, bytes, hex) = h.into_parts();
            (bytes, hex)
        }
        None => (0, None),
    })
}

fn device_error(err: io::Error, message: &'static str) -> Error<io::Error> {
    Error::device(err, message)
}

impl ErrorType for Device<'_> {
    type Error = io::Error;
}

impl hadris_storage::sync::BlockDevice for Device<'_> {
    fn block_size(&self) -> BlockSize {
        BlockSize::new(2048).expect("a power of two")
    }
    fn block_count(&self) -> u64 {
        self.len / 2048
    }
    /// A file grows as it is written.
    fn max_block_count(&self) -> u64 {
        u64::MAX / 2048
    }
    fn writable(&self) -> bool {
        true
    }
    fn read_blocks(&mut self, first: BlockIndex, buf: &mut [u8]) -> Result<(), Error<io::Error>> {
        self.drain().map_err(|e| device_error(e, "writing the ISO failed"))?;
        self.file
            .read_exact_at(buf, first.get() * 2048)
            .map_err(|e| device_error(e, "reading the ISO back failed"))
    }
    fn write_blocks(&mut self, first: BlockIndex, buf: &[u8]) -> Result<(), Error<io::Error>> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(Error::new(ErrorKind::Busy, "the ISO write was stopped"));
        }
        let at = first.get() * 2048;
        if at != self.batch_at + self.batch.len() as u64 {
            self.send().map_err(|e| device_error(e, "writing the ISO failed"))?;
            self.batch_at = at;
        }
        self.batch.extend_from_slice(buf);
        if self.batch.len() >= BATCH {
            self.send().map_err(|e| device_error(e, "writing the ISO failed"))?;
        }
        self.len = self.len.max(at + buf.len() as u64);
        if let Some(ahead) = self.ahead {
            ahead.advance(buf.len() as u64);
        }
        Ok(())
    }
    /// Outputs are not synced (neither are cpio's, zstd's or xorriso's): they are
    /// complete before they are renamed into place, which is the guarantee smelt gives;
    /// forcing 700 MB to disk first tripled the time of a large ISO.
    fn flush(&mut self) -> Result<(), Error<io::Error>> {
        self.drain().map_err(|e| device_error(e, "writing the ISO failed"))
    }
}

#[cfg(test)]
mod tests {
    use hadris_storage::sync::BlockDevice as _;

    use super::*;

    fn blocks(fill: u8, count: usize) -> Vec<u8> {
        vec![fill; count * 2048]
    }

    #[test]
    fn writes_in_place_reads_back_and_hashes_one_pass() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.iso");
        let cancel = AtomicBool::new(false);
        let mut dev = Device::new(File::create_new(&path).unwrap(), 8 << 20, &cancel, None).unwrap();
        // Enough for several batches, then a read that must see them all.
        for i in 0..1200u64 {
            dev.write_blocks(BlockIndex::new(i), &blocks(i as u8, 1)).unwrap();
        }
        let mut back = blocks(0, 2);
        dev.read_blocks(BlockIndex::new(700), &mut back).unwrap();
        assert_eq!(back, [blocks(700u64 as u8, 1), blocks(701u64 as u8, 1)].concat());
        let (bytes, hash) = dev.finish().unwrap();
        assert_eq!(bytes, 1200 * 2048);
        let on_disk = crate::io::count::sha256_file(&path).unwrap();
        assert_eq!(hash.as_deref(), Some(on_disk.as_str()));
    }

    #[test]
    fn a_gap_gives_up_the_hash_but_not_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.iso");
        let cancel = AtomicBool::new(false);
        let mut dev = Device::new(File::create_new(&path).unwrap(), 8 << 20, &cancel, None).unwrap();
        dev.write_blocks(BlockIndex::new(0), &blocks(1, 1)).unwrap();
        dev.write_blocks(BlockIndex::new(3), &blocks(2, 1)).unwrap();
        let (bytes, hash) = dev.finish().unwrap();
        assert_eq!((bytes, hash), (4 * 2048, None));
        assert_eq!(std::fs::read(&path).unwrap(), [blocks(1, 1), blocks(0, 2), blocks(2, 1)].concat());
    }

    #[test]
    fn the_writers_own_error_is_reported_to_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.iso");
        std::fs::write(&path, b"").unwrap();
        let cancel = AtomicBool::new(false);
        // Read-only: every write fails with the OS's "bad file descriptor".
        let mut dev = Device::new(File::open(&path).unwrap(), 0, &cancel, None).unwrap();
        // A write sees the failure once the writer thread has met it; a flush waits for it.
        let mut failed = None;
        for i in 0..2000u64 {
            if let Err(e) = dev.write_blocks(BlockIndex::new(i), &blocks(0, 1)) {
                failed = Some(e);
                break;
            }
        }
        let failed = failed.unwrap_or_else(|| dev.flush().unwrap_err());
        assert_eq!(failed.device_error().and_then(io::Error::raw_os_error), Some(libc::EBADF));
        let end = dev.finish().unwrap_err();
        assert!(end.to_string().contains("Bad file descriptor"), "{end}");
    }

    #[test]
    fn a_cancelled_write_stops() {
        let dir = tempfile::tempdir().unwrap();
        let cancel = AtomicBool::new(false);
        let mut dev =
            Device::new(File::create_new(dir.path().join("out.iso")).unwrap(), 0, &cancel, None).unwrap();
        dev.write_blocks(BlockIndex::new(0), &blocks(1, 1)).unwrap();
        cancel.store(true, Ordering::Relaxed);
        let e = dev.write_blocks(BlockIndex::new(1), &blocks(1, 1)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Busy);
    }
}
