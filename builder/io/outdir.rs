//! An output directory is written by one build at a time: a build holds an exclusive
//! `flock` on the directory itself (released by the kernel however the build ends, so
//! nothing stale remains), and a second build into it stops at once, naming the holder.
//! Holding it, a build first sweeps what builds that died there left behind.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

/// A claimed output directory; the claim ends when this is dropped.
pub struct OutDir {
    _lock: File,
    /// Temporary paths of dead builds that were removed, for the user.
    pub swept: Vec<PathBuf>,
}

impl OutDir {
    /// Creates `dir` if needed, claims it, and sweeps it and `subdirs` of it.
    pub fn claim(dir: &Path, subdirs: &[&str]) -> anyhow::Result<OutDir> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let lock = File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let who = holder(&lock).map_or("another build".to_string(), |(pid, cmd)| {
                    format!("another build (pid {pid}: {cmd})")
                });
                bail!(
                    "{} is being written by {who}; wait for it to finish, or build into another directory with -o",
                    dir.display()
                );
            }
            // A filesystem without flock (some network mounts): build unguarded.
            crate::ui::warning(&format!(
                "cannot lock {} ({err}); make sure no other build writes there",
                dir.display()
            ));
        }
        let mut swept = crate::io::atomic::sweep(dir);
        for sub in subdirs {
            swept.extend(crate::io::atomic::sweep(&dir.join(sub)));
        }
        Ok(OutDir { _lock: lock, swept })
    }
}

/// The process holding the flock on `file`'s inode, from /proc/locks, with its command.
fn holder(file: &File) -> Option<(u32, String)> {
    let meta = file.metadata().ok()?;
    let (major, minor) = (libc::major(meta.dev()), libc::minor(meta.dev()));
    let want = format!("{major:02x}:{minor:02x}:{}", meta.ino());
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    // `1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF`
    let pid: u32 = locks.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(1) == Some(&"FLOCK") && f.get(5) == Some(&want.as_str())).then(|| f.get(4)?.parse().ok())?
    })?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmd: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into())
        .collect();
    Some((pid, if cmd.is_empty() { "?".into() } else { cmd.join(" ") }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_names_the_holder() {
        let tmp = tempfile::tempdir().unwrap();
        let first = OutDir::claim(tmp.path(), &[]).unwrap();
        // flock locks belong to the open file: a second open in this process conflicts too.
        let e = OutDir::claim(tmp.path(), &[]).err().unwrap().to_string();
        let me = std::process::id();
        assert!(e.contains(&format!("is being written by another build (pid {me}: ")), "{e}");
        drop(first);
        OutDir::claim(tmp.path(), &[]).unwrap();
    }
}
