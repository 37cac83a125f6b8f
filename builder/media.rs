//! A distribution's media ISO, unpacked once into the cache by its digest with smelt's
//! own ISO 9660 / Rock Ridge reader (never mounted): directories, files and symlinks,
//! streamed a megabyte at a time, so a package repository on it can be read as files.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _};

/// The unpacked copy of the ISO at `iso`, made now unless the cache has it.
pub fn unpack(iso: &Path) -> anyhow::Result<PathBuf> {
    let digest = crate::cache::file_digest(iso).with_context(|| format!("reading {}", iso.display()))?;
    let dir = crate::cache::dir().join("media");
    let dest = dir.join(&digest[..32]);
    if dest.is_dir() {
        return Ok(dest);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    crate::io::atomic::sweep(&dir);
    let pending = crate::io::atomic::Pending::new(&dest);
    extract(iso, pending.temp_path())?;
    pending.publish()?;
    Ok(dest)
}

/// Writes every directory, file and symlink of the ISO under `to`.
fn extract(iso: &Path, to: &Path) -> anyhow::Result<()> {
    use hadris_fs::FileType;
    let what = || format!("reading {} as ISO 9660", iso.display());
    let device = hadris_storage::host::FileDevice::open(iso).with_context(what)?;
    let fs = hadris_iso::sync::IsoFs::mount(device, hadris_fs::MountOptions::new())
        .map_err(|e| anyhow!("{}: {e}", what()))?;
    let volume = hadris_fs::sync::Volume::new(fs);
    let tree = hadris_fs::sync::read_tree(&volume, "/").map_err(|e| anyhow!("{}: {e}", what()))?;
    std::fs::create_dir_all(to)?;
    let mut stack = vec![(to.to_path_buf(), tree.root())];
    let mut buf = vec![0u8; 1 << 20];
    while let Some((dir, node)) = stack.pop() {
        for (name, child) in node.children() {
            let name = String::from_utf8_lossy(name.as_ref()).into_owned();
            if name.contains('/') || name == ".." || name == "." {
                continue;
            }
            let at = dir.join(&name);
            let n = child.node();
            match n.file_type() {
                FileType::Dir => {
                    std::fs::create_dir_all(&at)?;
                    stack.push((at, child));
                }
                FileType::Symlink => {
                    let target = String::from_utf8_lossy(n.target().unwrap_or_default()).into_owned();
                    std::os::unix::fs::symlink(target, &at)?;
                }
                FileType::File => {
                    let content = n.content().ok_or_else(|| anyhow!("{}: {name} has no content", what()))?;
                    let mut reader = hadris_fs::sync::ContentReader::open(content)
                        .map_err(|e| anyhow!("{}: {e}", what()))?;
                    let mut out = std::io::BufWriter::new(
                        std::fs::File::create(&at).with_context(|| format!("writing {}", at.display()))?,
                    );
                    let mut offset = 0u64;
                    loop {
                        let got = reader
                            .read_at(offset, &mut buf)
                            .map_err(|e| anyhow!("{}: {name}: {e}", what()))?;
                        if got == 0 {
                            break;
                        }
                        out.write_all(&buf[..got])?;
                        offset += got as u64;
                    }
                    out.flush()?;
                }
                // Devices and FIFOs are no part of a package repository.
                _ => {}
            }
        }
    }
    Ok(())
}
