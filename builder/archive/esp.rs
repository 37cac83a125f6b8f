//! The EFI system partition of a bootable ISO: a small FAT image made in memory with
//! fatfs, holding the UEFI loader at the removable-media path.

use std::io::{Cursor, Write};

use anyhow::Context as _;

/// fatfs asks for the time of every file it creates; the ESP is dated 1980-01-01 (the
/// FAT epoch) so it is the same bytes on every build.
#[derive(Debug)]
struct FatEpoch;

impl fatfs::TimeProvider for FatEpoch {
    fn get_current_date(&self) -> fatfs::Date {
        fatfs::Date { year: 1980, month: 1, day: 1 }
    }
    fn get_current_date_time(&self) -> fatfs::DateTime {
        fatfs::DateTime {
            date: self.get_current_date(),
            time: fatfs::Time { hour: 0, min: 0, sec: 0, millis: 0 },
        }
    }
}

static FAT_EPOCH: FatEpoch = FatEpoch;

/// A FAT image holding each (path, bytes), sized to fit them with room for the FAT's
/// own structures.
pub fn fat_image(files: &[(&str, &[u8])]) -> anyhow::Result<Vec<u8>> {
    let payload: usize = files.iter().map(|(_, b)| b.len().next_multiple_of(4096)).sum();
    // FAT12/16 overhead for a few files is well under 256 KiB; keep 1 MiB of headroom.
    let size = (payload + (1 << 20)).next_multiple_of(1 << 20);
    let mut disk = Cursor::new(vec![0u8; size]);
    fatfs::format_volume(
        &mut disk,
        fatfs::FormatVolumeOptions::new().volume_label(*b"SMELT EFI  ").volume_id(0x534d_454c),
    )
    .context("formatting the EFI system partition")?;
    {
        let fs = fatfs::FileSystem::new(&mut disk, fatfs::FsOptions::new().time_provider(&FAT_EPOCH))
            .context("opening the EFI system partition")?;
        for (path, bytes) in files {
            let root = fs.root_dir();
            let (dirs, name) = path.rsplit_once('/').unwrap_or(("", path));
            let mut dir = root;
            for d in dirs.split('/').filter(|d| !d.is_empty()) {
                dir = match dir.open_dir(d) {
                    Ok(existing) => existing,
                    Err(_) => dir.create_dir(d).with_context(|| format!("creating {d} in the ESP"))?,
                };
            }
            let mut f = dir.create_file(name).with_context(|| format!("creating {path} in the ESP"))?;
            f.truncate()?;
            f.write_all(bytes).with_context(|| format!("writing {path} in the ESP"))?;
        }
        fs.unmount().context("closing the EFI system partition")?;
    }
    Ok(disk.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn files_read_back_and_the_image_repeats() {
        let a = fat_image(&[("EFI/BOOT/BOOTX64.EFI", b"MZ loader")]).unwrap();
        assert_eq!(a, fat_image(&[("EFI/BOOT/BOOTX64.EFI", b"MZ loader")]).unwrap());
        let fs = fatfs::FileSystem::new(Cursor::new(a), fatfs::FsOptions::new()).unwrap();
        let mut text = String::new();
        fs.root_dir().open_file("EFI/BOOT/BOOTX64.EFI").unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "MZ loader");
    }
}
