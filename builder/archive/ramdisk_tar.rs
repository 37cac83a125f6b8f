//! The `ramdisk-tar` output: the kernel and the initramfs side by side in one tarball,
//! as Ironic and Metal3 pipelines take a deploy ramdisk.

use std::path::Path;

use anyhow::Context as _;

use super::Written;
use crate::io::atomic::Pending;
use crate::io::count::CountingWriter;

/// Writes `NAME.kernel` and `NAME.initramfs` into a ustar archive at `dest`, owned by
/// root, mode 0644, dated `epoch`.
pub fn write(
    name: &str,
    kernel: &Path,
    initramfs: &Path,
    epoch: i64,
    dest: &Path,
) -> anyhow::Result<Written> {
    let pending = Pending::new(dest);
    let counted = CountingWriter::hashing(std::io::BufWriter::new(pending.create_file()?));
    let mut tar = tar::Builder::new(counted);
    for (member, source) in [(format!("{name}.kernel"), kernel), (format!("{name}.initramfs"), initramfs)] {
        let mut file =
            std::fs::File::open(source).with_context(|| format!("opening {}", source.display()))?;
        let mut header = tar::Header::new_ustar();
        header.set_size(file.metadata()?.len());
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_username("root")?;
        header.set_groupname("root")?;
        header.set_mtime(epoch.max(0) as u64);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, &member, &mut file)
            .with_context(|| format!("adding {member} to the tarball"))?;
    }
    let counted = tar.into_inner().context("finishing the tarball")?;
    let (buffered, bytes, sha256) = counted.into_parts();
    buffered.into_inner().map_err(|e| e.into_error()).context("writing the tarball")?;
    Ok(Written { pending, bytes, sha256, skipped: 0 })
}
