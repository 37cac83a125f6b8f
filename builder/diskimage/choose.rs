//! Which file system of a disk image is its root: the one the user named (`partition`
//! by number or label, `lv`), else the one libguestfs's inspection found an operating
//! system on (its `/etc/os-release`), else the partition typed as a root in the GPT
//! (the Discoverable Partitions Specification), else the largest Linux file system.

use anyhow::bail;

/// A file system the appliance saw.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fs {
    /// `/dev/sda2`, `/dev/vg0/root`, or `btrfsvol:/dev/sda2/@/home` for a subvolume.
    pub device: String,
    /// `ext4`, `xfs`, `btrfs`, `vfat`, `swap`, `crypto_LUKS`, `LVM2_member`, `unknown`.
    pub fstype: String,
    #[serde(default)]
    pub label: String,
    /// Bytes, for devices (not subvolumes).
    #[serde(default)]
    pub size: u64,
    /// Its partition number on the disk, for partitions.
    #[serde(default)]
    pub partition: Option<u32>,
    /// Its GPT partition type GUID, upper case, for partitions of a GPT.
    #[serde(default)]
    pub gpt_type: Option<String>,
}

/// The file system types smelt takes a root from.
pub const READABLE: [&str; 5] = ["ext4", "ext3", "ext2", "xfs", "btrfs"];

/// GPT type GUIDs of root partitions (x86-64, AArch64), from the Discoverable
/// Partitions Specification.
const ROOT_TYPES: [&str; 2] =
    ["4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", "B921B045-1DF0-41C3-AF44-4C6F280D3FAE"];

/// What the user asked for.
#[derive(Debug, Default, Clone)]
pub struct Wanted {
    pub partition: Option<String>,
    pub lv: Option<String>,
}

/// The root among `seen`, given the operating-system roots inspection found.
pub fn root<'a>(
    seen: &'a [Fs],
    inspected: &[String],
    wanted: &Wanted,
    image: &str,
) -> anyhow::Result<&'a Fs> {
    let devices: Vec<&Fs> = seen.iter().filter(|f| !f.device.starts_with("btrfsvol:")).collect();
    let found = if let Some(lv) = &wanted.lv {
        let hit = devices.iter().find(|f| {
            f.device
                .strip_prefix("/dev/")
                .is_some_and(|d| d == lv || d.rsplit('/').next() == Some(lv.as_str()))
                && f.partition.is_none()
        });
        match hit {
            Some(f) => *f,
            None => bail!("{image}: no logical volume `{lv}`; {}", listing(seen)),
        }
    } else if let Some(p) = &wanted.partition {
        let hit = match p.parse::<u32>() {
            Ok(n) => devices.iter().find(|f| f.partition == Some(n)),
            Err(_) => devices.iter().find(|f| f.label == *p),
        };
        match hit {
            Some(f) => *f,
            None => bail!("{image}: no partition `{p}` (a number or a file system label); {}", listing(seen)),
        }
    } else if let Some(f) = inspected_root(&devices, inspected, image)? {
        f
    } else if let [one] = devices
        .iter()
        .filter(|f| f.gpt_type.as_deref().is_some_and(|t| ROOT_TYPES.contains(&t)))
        .collect::<Vec<_>>()[..]
    {
        *one
    } else {
        let linux = devices.iter().filter(|f| READABLE.contains(&f.fstype.as_str()));
        match linux.max_by_key(|f| (f.size, std::cmp::Reverse(f.device.clone()))) {
            Some(f) => *f,
            None => return Err(no_root(seen, image)),
        }
    };
    if found.fstype == "crypto_LUKS" {
        bail!(
            "{image}: {} is an encrypted volume (LUKS); smelt does not unlock encrypted volumes: \
             give an image whose root is not encrypted",
            found.device
        );
    }
    if !READABLE.contains(&found.fstype.as_str()) {
        bail!(
            "{image}: {} holds a file system of type `{}`, which smelt does not take a root from; \
             it reads {}",
            found.device,
            found.fstype,
            READABLE.join(", ")
        );
    }
    Ok(found)
}

/// The one device inspection found an operating system on, if any; several are an
/// error that lists them.
fn inspected_root<'a>(
    devices: &[&'a Fs],
    inspected: &[String],
    image: &str,
) -> anyhow::Result<Option<&'a Fs>> {
    // A btrfs subvolume found as a root is its device's too when that device's default
    // subvolume is the same root: keep the devices.
    let mut roots: Vec<&Fs> = inspected
        .iter()
        .filter_map(|r| devices.iter().find(|f| on_device(r, &f.device).is_some()))
        .copied()
        .collect();
    roots.dedup_by(|a, b| a.device == b.device);
    match roots[..] {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        _ => {
            let names: Vec<&str> = roots.iter().map(|f| f.device.as_str()).collect();
            bail!(
                "{image}: operating systems on several file systems ({}); choose one with param \
                 `partition` (a number or a label) or `lv`",
                names.join(", ")
            )
        }
    }
}

fn no_root(seen: &[Fs], image: &str) -> anyhow::Error {
    if let Some(luks) = seen.iter().find(|f| f.fstype == "crypto_LUKS") {
        return anyhow::anyhow!(
            "{image}: no root file system found; {} is an encrypted volume (LUKS), which smelt does \
             not unlock: give an image whose root is not encrypted",
            luks.device
        );
    }
    anyhow::anyhow!(
        "{image}: no root file system found (none of {}); {}; is this a disk image?",
        READABLE.join(", "),
        listing(seen)
    )
}

/// Where a name libguestfs gives (`/dev/sda2`, or `btrfsvol:/dev/sda2/@/var` for a
/// subvolume) lies on `device`: `Some("")` for the device itself, `Some("@/var")` for one
/// of its subvolumes, `None` elsewhere.
pub fn on_device<'n>(name: &'n str, device: &str) -> Option<&'n str> {
    if name == device {
        return Some("");
    }
    let rest = name.strip_prefix("btrfsvol:")?.strip_prefix(device)?;
    rest.strip_prefix('/')
}

/// What the image holds, for errors: `partitions seen: /dev/sda1 vfat (EFI), …`.
pub fn listing(seen: &[Fs]) -> String {
    if seen.is_empty() {
        return "it holds no partitions or file systems".into();
    }
    let items: Vec<String> = seen
        .iter()
        .map(|f| {
            let mut s = format!("{} {}", f.device, f.fstype);
            if !f.label.is_empty() {
                s.push_str(&format!(" (label {})", f.label));
            }
            if f.size > 0 {
                s.push_str(&format!(" {} MiB", f.size >> 20));
            }
            s
        })
        .collect();
    format!("seen: {}", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs(device: &str, fstype: &str, label: &str, size: u64, partition: Option<u32>) -> Fs {
        Fs {
            device: device.into(),
            fstype: fstype.into(),
            label: label.into(),
            size,
            partition,
            gpt_type: None,
        }
    }

    fn disk() -> Vec<Fs> {
        vec![
            fs("/dev/sda1", "vfat", "EFI", 100 << 20, Some(1)),
            fs("/dev/sda2", "ext4", "data", 900 << 20, Some(2)),
            fs("/dev/sda3", "ext4", "root", 500 << 20, Some(3)),
        ]
    }

    #[test]
    fn inspection_beats_size() {
        let seen = disk();
        let got = root(&seen, &["/dev/sda3".into()], &Wanted::default(), "d.qcow2").unwrap();
        assert_eq!(got.device, "/dev/sda3");
        let got = root(&seen, &[], &Wanted::default(), "d.qcow2").unwrap();
        assert_eq!(got.device, "/dev/sda2", "the largest Linux file system");
    }

    #[test]
    fn the_user_names_a_partition_by_number_or_label() {
        let seen = disk();
        let w = |p: &str| Wanted { partition: Some(p.into()), lv: None };
        assert_eq!(root(&seen, &[], &w("3"), "d").unwrap().device, "/dev/sda3");
        assert_eq!(root(&seen, &[], &w("data"), "d").unwrap().device, "/dev/sda2");
        let e = root(&seen, &[], &w("9"), "d").unwrap_err().to_string();
        assert!(e.starts_with("d: no partition `9` (a number or a file system label); seen: /dev/sda1 vfat (label EFI) 100 MiB"), "{e}");
        let e = root(&seen, &[], &w("1"), "d").unwrap_err().to_string();
        assert!(e.contains("type `vfat`, which smelt does not take a root from; it reads ext4"), "{e}");
    }

    #[test]
    fn a_subvolume_root_is_its_device() {
        let seen = vec![
            fs("/dev/sda", "btrfs", "", 1 << 30, None),
            fs("btrfsvol:/dev/sda/@/.snapshots/1/snapshot", "btrfs", "", 0, None),
        ];
        let roots = ["/dev/sda".to_string(), "btrfsvol:/dev/sda/@/.snapshots/1/snapshot".into()];
        assert_eq!(root(&seen, &roots, &Wanted::default(), "d").unwrap().device, "/dev/sda");
    }

    #[test]
    fn an_encrypted_root_and_no_root_are_named() {
        let seen = vec![
            fs("/dev/sda1", "vfat", "", 1 << 20, Some(1)),
            fs("/dev/sda2", "crypto_LUKS", "", 1 << 30, Some(2)),
        ];
        let e = root(&seen, &[], &Wanted::default(), "d").unwrap_err().to_string();
        assert!(e.contains("/dev/sda2 is an encrypted volume (LUKS)"), "{e}");
        let e = root(&[], &[], &Wanted::default(), "d").unwrap_err().to_string();
        assert!(e.contains("it holds no partitions or file systems; is this a disk image?"), "{e}");
    }

    #[test]
    fn a_gpt_root_type_is_taken_when_nothing_was_inspected() {
        let mut seen = disk();
        seen[2].gpt_type = Some(ROOT_TYPES[0].into());
        assert_eq!(root(&seen, &[], &Wanted::default(), "d").unwrap().device, "/dev/sda3");
    }
}
