//! Outputs are written under a hidden temporary name and renamed into place only when
//! complete and within budget: nothing half-written ever has an output's final name.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// A file or directory being written; removed on drop unless published.
pub struct Pending {
    temp: PathBuf,
    dest: PathBuf,
    published: bool,
}

impl Pending {
    pub fn new(dest: &Path) -> Pending {
        let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let temp = dest.with_file_name(format!(".{name}.partial-{}", std::process::id()));
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
        Ok(())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.published {
            let _ = fs::remove_file(&self.temp).or_else(|_| fs::remove_dir_all(&self.temp));
        }
    }
}
