//! Outputs are written under a hidden temporary name and renamed into place only when
//! complete and within budget: nothing half-written ever has an output's final name.
//! Every temporary path is named `.NAME.partial-PID`: removed when dropped, on Ctrl-C
//! or SIGTERM ([`crate::cleanup`]), and by the next build once its PID is gone
//! ([`sweep`]), so not even a SIGKILL leaves litter for long.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::cleanup;

/// `.NAME.partial-PID` beside `dest`.
fn partial_name(dest: &Path) -> PathBuf {
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    dest.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}

/// The PID in a temporary path's name, if it is one.
fn owner(name: &str) -> Option<i32> {
    let (head, pid) = name.rsplit_once(".partial-")?;
    (name.starts_with('.') && head.len() > 1).then_some(())?;
    pid.parse().ok()
}

/// A file or directory being written; removed on drop unless published.
pub struct Pending {
    temp: PathBuf,
    dest: PathBuf,
    published: bool,
}

impl Pending {
    pub fn new(dest: &Path) -> Pending {
        let temp = partial_name(dest);
        cleanup::track(&temp);
        Pending { temp, dest: dest.to_path_buf(), published: false }
    }

    pub fn create_file(&self) -> anyhow::Result<File> {
        File::create(&self.temp).with_context(|| format!("creating {}", self.temp.display()))
    }

    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Moves the finished output to its final name, replacing an older one.
    pub fn publish(mut self) -> anyhow::Result<()> {
        if self.dest.is_dir() && !self.dest.is_symlink() {
            fs::remove_dir_all(&self.dest)
                .with_context(|| format!("removing the previous {}", self.dest.display()))?;
        }
        fs::rename(&self.temp, &self.dest)
            .with_context(|| format!("moving {} into place", self.dest.display()))?;
        self.published = true;
        cleanup::untrack(&self.temp);
        Ok(())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.published {
            cleanup::remove(&self.temp);
            cleanup::untrack(&self.temp);
        }
    }
}

/// A scratch directory (`.NAME.partial-PID` in `parent`), removed on drop unless kept.
pub struct Scratch {
    path: PathBuf,
    kept: bool,
}

impl Scratch {
    /// The path is absolute, so that messages naming what is in it can be followed.
    pub fn new(parent: &Path, name: &str) -> anyhow::Result<Scratch> {
        let path = partial_name(&std::path::absolute(parent.join(name))?);
        cleanup::track(&path);
        cleanup::remove(&path);
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Scratch { path, kept: false })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the directory for the user to look into, moved to `to`.
    pub fn keep(mut self, to: &Path) -> anyhow::Result<PathBuf> {
        let to = &std::path::absolute(to)?;
        cleanup::remove(to);
        fs::rename(&self.path, to)
            .with_context(|| format!("moving {} to {}", self.path.display(), to.display()))?;
        self.kept = true;
        cleanup::untrack(&self.path);
        Ok(to.to_path_buf())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.kept {
            cleanup::remove(&self.path);
            cleanup::untrack(&self.path);
        }
    }
}

/// Removes the temporary paths in `dir` left by builds whose process is gone (killed,
/// or the machine went down); returns what was removed. Paths of live processes stay.
pub fn sweep(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut removed = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = owner(&name) else { continue };
        // ESRCH: no such process. EPERM means it exists (under another user).
        let gone = pid > 0
            && unsafe { libc::kill(pid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            cleanup::remove(&e.path());
            removed.push(e.path());
        }
    }
    removed.sort();
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_carry_their_pid() {
        assert_eq!(owner(".x.cpio.zst.partial-123"), Some(123));
        assert_eq!(owner(".smelt-work.partial-9"), Some(9));
        assert_eq!(owner("x.partial-123"), None);
        assert_eq!(owner(".partial-123"), None);
        assert_eq!(owner(".x.partial-abc"), None);
        let me = std::process::id();
        assert_eq!(partial_name(Path::new("/o/x.iso")), PathBuf::from(format!("/o/.x.iso.partial-{me}")));
    }

    #[test]
    fn sweep_removes_only_what_dead_processes_left() {
        let tmp = tempfile::tempdir().unwrap();
        let dead = {
            let mut child = std::process::Command::new("true").spawn().unwrap();
            child.wait().unwrap();
            child.id()
        };
        let live = std::process::id();
        for name in [format!(".a.iso.partial-{dead}"), format!(".b.iso.partial-{live}"), "c.iso".into()] {
            fs::write(tmp.path().join(name), "x").unwrap();
        }
        fs::create_dir(tmp.path().join(format!(".smelt-work.partial-{dead}"))).unwrap();
        fs::write(tmp.path().join(format!(".smelt-work.partial-{dead}/f")), "x").unwrap();
        let removed = sweep(tmp.path());
        assert_eq!(removed.len(), 2, "{removed:?}");
        let mut left: Vec<String> = fs::read_dir(tmp.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into())
            .collect();
        left.sort();
        assert_eq!(left, [format!(".b.iso.partial-{live}"), "c.iso".to_string()]);
    }
}
