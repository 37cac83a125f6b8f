//! Which cache files the hooks use: apt, pip and diskimage-builder open and write them
//! inside the image's namespace, out of smelt's sight, so the cache folders bound into
//! hooks are watched (inotify, every subfolder too) while the hooks run. Files opened,
//! written or moved in are the build's; the rest of a shared cache is other builds'.
//! Should the kernel drop events (its queue overflowed), every file is taken.

use std::collections::{BTreeSet, HashMap};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const MASK: u32 =
    libc::IN_OPEN | libc::IN_CLOSE_WRITE | libc::IN_MOVED_TO | libc::IN_CREATE | libc::IN_ONLYDIR;

pub struct Watch {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<BTreeSet<PathBuf>>>,
}

struct Watcher {
    fd: i32,
    dirs: HashMap<i32, PathBuf>,
    roots: Vec<PathBuf>,
    used: BTreeSet<PathBuf>,
    overflowed: bool,
}

impl Watch {
    /// Watches `roots` (made if missing) and everything under them.
    pub fn start(roots: &[PathBuf]) -> anyhow::Result<Watch> {
        // SAFETY: a plain system call; the descriptor is closed by the watching thread.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        anyhow::ensure!(fd >= 0, "inotify: {}", std::io::Error::last_os_error());
        let mut w = Watcher {
            fd,
            dirs: HashMap::new(),
            roots: roots.to_vec(),
            used: BTreeSet::new(),
            overflowed: false,
        };
        for r in roots {
            std::fs::create_dir_all(r)?;
            w.add_tree(r, false);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new().name("cache-watch".into()).spawn(move || w.run(&flag))?;
        Ok(Watch { stop, thread: Some(thread) })
    }

    /// Stops watching: the files used, that still exist.
    pub fn stop(mut self) -> Vec<PathBuf> {
        self.stop.store(true, Ordering::Relaxed);
        let used = self.thread.take().map(|t| t.join().unwrap_or_default()).unwrap_or_default();
        used.into_iter().filter(|p| p.is_file()).collect()
    }
}

/// Every file under `roots`: what a cache made for one build holds.
pub fn files(roots: &[PathBuf]) -> Vec<PathBuf> {
    let all = roots.iter().flat_map(|r| walkdir::WalkDir::new(r).into_iter().flatten());
    all.filter(|e| e.file_type().is_file()).map(|e| e.into_path()).collect()
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Watcher {
    /// Watches `dir` and its subfolders; for a folder made while watching (`new`), what
    /// is in it already was written before its watch began, and is taken as used.
    fn add_tree(&mut self, dir: &Path, new: bool) {
        for e in walkdir::WalkDir::new(dir).into_iter().flatten() {
            if !e.file_type().is_dir() {
                if new {
                    self.used.insert(e.path().to_path_buf());
                }
                continue;
            }
            let Ok(c) = CString::new(e.path().as_os_str().as_bytes()) else { continue };
            // SAFETY: `c` is a valid C string for the call's duration.
            let wd = unsafe { libc::inotify_add_watch(self.fd, c.as_ptr(), MASK) };
            if wd >= 0 {
                self.dirs.insert(wd, e.path().to_path_buf());
            }
        }
    }

    fn run(mut self, stop: &AtomicBool) -> BTreeSet<PathBuf> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let stopping = stop.load(Ordering::Relaxed);
            let mut pfd = libc::pollfd { fd: self.fd, events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut pfd, 1, if stopping { 0 } else { 100 }) };
            // SAFETY: `buf` is writable for its length.
            let n = unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n > 0 {
                self.events(&buf[..n as usize]);
                continue;
            }
            if stopping {
                break;
            }
        }
        // SAFETY: closing the descriptor this thread owns.
        unsafe { libc::close(self.fd) };
        if self.overflowed {
            for r in &self.roots {
                for e in walkdir::WalkDir::new(r).into_iter().flatten().filter(|e| e.file_type().is_file()) {
                    self.used.insert(e.path().to_path_buf());
                }
            }
        }
        self.used
    }

    fn events(&mut self, mut bytes: &[u8]) {
        let head = std::mem::size_of::<libc::inotify_event>();
        while bytes.len() >= head {
            // SAFETY: the kernel writes whole events; read unaligned from the buffer.
            let ev: libc::inotify_event = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
            let len = ev.len as usize;
            let name = &bytes[head..head + len];
            let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(len)];
            bytes = &bytes[head + len..];
            if ev.mask & libc::IN_Q_OVERFLOW != 0 {
                self.overflowed = true;
                continue;
            }
            let Some(dir) = self.dirs.get(&ev.wd) else { continue };
            if name.is_empty() {
                continue;
            }
            let path = dir.join(std::ffi::OsStr::from_bytes(name));
            if ev.mask & libc::IN_ISDIR != 0 {
                if ev.mask & (libc::IN_CREATE | libc::IN_MOVED_TO) != 0 {
                    self.add_tree(&path, true);
                }
            } else if ev.mask & (libc::IN_OPEN | libc::IN_CLOSE_WRITE | libc::IN_MOVED_TO) != 0 {
                self.used.insert(path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_the_files_opened_and_written_under_new_folders_and_not_the_others() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("cache");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("untouched"), "x").unwrap();
        std::fs::write(root.join("read"), "x").unwrap();
        let w = Watch::start(std::slice::from_ref(&root)).unwrap();
        std::fs::read(root.join("read")).unwrap();
        std::fs::create_dir_all(root.join("new/deeper")).unwrap();
        // Written at once: before or after the watcher adds the new folders.
        std::fs::write(root.join("new/deeper/written"), "y").unwrap();
        let used = w.stop();
        assert_eq!(used, vec![root.join("new/deeper/written"), root.join("read")]);
    }
}
