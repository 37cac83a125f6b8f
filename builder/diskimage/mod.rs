//! A disk image's root file system as a tar file, made once per image and choice and
//! kept in the cache: qcow2, raw, vmdk, vhdx or vpc (as `qemu-img` names them), a
//! partition table or none, ext4, xfs or btrfs (a subvolume: the default one, or
//! named), on a partition or an LVM logical volume.
//!
//! Read through libguestfs ([`guestfish`]): its appliance mounts the file systems inside
//! a small VM and GNU tar there writes them out with owners, modes, hard links, device
//! nodes and extended attributes. Rootless, with no mount, loop or nbd device on the
//! host — nothing to leave behind after a failure. Pure-Rust readers exist for ext4
//! only (xfs, btrfs subvolumes, LVM and qcow2 would each be ours to write and keep
//! right), so one maintained tool reads them all.

pub mod choose;
mod guestfish;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

use choose::{Fs, Wanted};
use guestfish::{quote, Session};

/// Changes whenever what [`take`] writes changes: part of the cache key.
const VERSION: u32 = 2;

/// The disk image formats smelt reads (`qemu-img info`'s names).
pub const FORMATS: [&str; 5] = ["qcow2", "raw", "vmdk", "vhdx", "vpc"];

/// What to take from the image.
#[derive(Debug, Default, Clone)]
pub struct Options {
    pub wanted: Wanted,
    /// A btrfs subvolume's path, instead of the file system's default subvolume.
    pub subvolume: Option<String>,
    /// Keep `security.selinux` labels.
    pub selinux: bool,
}

impl Options {
    /// What was asked, for the record: `default`, or `partition=3 subvolume=@`.
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (k, v) in
            [("partition", &self.wanted.partition), ("lv", &self.wanted.lv), ("subvolume", &self.subvolume)]
        {
            if let Some(v) = v {
                parts.push(format!("{k}={v}"));
            }
        }
        if self.selinux {
            parts.push("selinux=keep".into());
        }
        if parts.is_empty() {
            "default".into()
        } else {
            parts.join(" ")
        }
    }
}

/// What was found in the image and taken from it, kept beside the tar.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    /// The image's SHA-256, and what was asked of it (`default`, `partition=3`, …).
    #[serde(default)]
    pub image_sha256: String,
    #[serde(default)]
    pub wanted: String,
    pub format: String,
    /// The root file system's device and type.
    pub root: String,
    pub fstype: String,
    /// The btrfs subvolume taken: `default (id N)` or its path.
    #[serde(default)]
    pub subvolume: Option<String>,
    /// What was mounted where (`/`, and `/boot`, `/var` … from the image's fstab).
    pub mounted: Vec<(String, String)>,
    /// Every file system seen.
    pub seen: Vec<Fs>,
    /// The image's `/etc/os-release`.
    pub os_release: String,
    pub systemd: bool,
}

/// A disk image's root, taken.
pub struct Taken {
    /// The tar of its root (uncompressed; the tree stages from it by reference).
    pub tar: PathBuf,
    pub meta: Meta,
}

/// The root of `image` (whose SHA-256 is `digest`) as `options` choose it: from the
/// cache, else read out of the image now.
pub fn take(image: &Path, digest: &str, options: &Options) -> anyhow::Result<Taken> {
    let name = image.display().to_string();
    let format = format_of(image)?;
    let key = crate::io::count::sha256_hex(
        format!(
            "{VERSION}\n{digest}\n{format}\n{:?}\n{:?}\n{:?}\n{}",
            options.wanted.partition, options.wanted.lv, options.subvolume, options.selinux
        )
        .as_bytes(),
    );
    let dir = crate::cache::dir().join("disk-images");
    let tar = dir.join(format!("{}.tar", &key[..32]));
    let meta_path = dir.join(format!("{}.json", &key[..32]));
    if let (true, Ok(text)) = (tar.exists(), std::fs::read(&meta_path)) {
        if let Ok(meta) = serde_json::from_slice(&text) {
            return Ok(Taken { tar, meta });
        }
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    crate::io::atomic::sweep(&dir);
    let pending_tar = crate::io::atomic::Pending::new(&tar);
    let mut session = Session::open(image, &format)?;
    let seen = list(&mut session)?;
    let inspected = session.try_call("inspect-os");
    let root = choose::root(&seen, &inspected, &options.wanted, &name)?.clone();
    let subvolume = mount_root(&mut session, &root, options.subvolume.as_deref(), &name)?;
    // The rest of the image's own layout (fstab's /boot, /var …), as inspection read it.
    if let Some(as_inspected) = inspected.iter().find(|r| choose::on_device(r, &root.device).is_some()) {
        mount_the_rest(&mut session, as_inspected, &seen);
    }
    let mounted = session
        .call("mountpoints")?
        .iter()
        .filter_map(|l| l.split_once(": ").map(|(d, m)| (m.to_string(), d.to_string())))
        .collect();
    let mut os_release = session.try_call("cat /etc/os-release");
    if os_release.is_empty() {
        os_release = session.try_call("cat /usr/lib/os-release");
    }
    let systemd = ["/usr/lib/systemd/systemd", "/lib/systemd/systemd"]
        .iter()
        .any(|p| session.try_call(&format!("exists {p}")) == ["true"]);
    session.tar_out("/", pending_tar.temp_path(), options.selinux)?;
    session.close()?;
    let meta = Meta {
        image_sha256: digest.to_string(),
        wanted: options.describe(),
        format,
        root: root.device.clone(),
        fstype: root.fstype.clone(),
        subvolume,
        mounted,
        seen,
        os_release: os_release.join("\n"),
        systemd,
    };
    pending_tar.publish()?;
    let pending_meta = crate::io::atomic::Pending::new(&meta_path);
    std::fs::write(pending_meta.temp_path(), serde_json::to_vec_pretty(&meta)?)?;
    pending_meta.publish()?;
    Ok(Taken { tar, meta })
}

/// The image's format as `qemu-img info` reads it; one smelt does not read, or an
/// encrypted one, is an error.
fn format_of(image: &Path) -> anyhow::Result<String> {
    let out =
        std::process::Command::new("qemu-img").args(["info", "--output=json"]).arg(image).output().map_err(
            |e| match e.kind() {
                std::io::ErrorKind::NotFound => anyhow::anyhow!(
                    "qemu-img is not installed: smelt reads disk images' formats with it \
                 (Debian/Ubuntu: apt install qemu-utils; Fedora: dnf install qemu-img)"
                ),
                _ => anyhow::anyhow!("running qemu-img: {e}"),
            },
        )?;
    if !out.status.success() {
        bail!(
            "{}: qemu-img cannot read it: {}",
            image.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).context("reading qemu-img's answer")?;
    let format = info["format"].as_str().unwrap_or("unknown").to_string();
    if format == "luks" || info["encrypted"] == true {
        bail!(
            "{}: the disk image is encrypted ({format}); smelt does not unlock encrypted images: \
             give an unencrypted copy",
            image.display()
        );
    }
    if !FORMATS.contains(&format.as_str()) {
        bail!(
            "{}: disk image format `{format}` is not one smelt reads; it reads {} (convert with qemu-img convert -O qcow2)",
            image.display(),
            FORMATS.join(", ")
        );
    }
    Ok(format)
}

/// Every file system the appliance sees, with labels, sizes, partition numbers and GPT
/// types.
fn list(session: &mut Session) -> anyhow::Result<Vec<Fs>> {
    let mut seen = Vec::new();
    let mut listed: Vec<(String, String)> = session
        .call("list-filesystems")?
        .iter()
        .filter_map(|l| l.rsplit_once(": ").map(|(d, t)| (d.to_string(), t.to_string())))
        .collect();
    // Partitions holding no file system it knows (LVM members, BIOS boot) are listed too.
    for p in session.call("list-partitions")? {
        if !listed.iter().any(|(d, _)| *d == p) {
            // What blkid says it is (crypto_LUKS, LVM2_member), else unknown.
            let kind = session.try_call(&format!("vfs-type {}", quote(&p))).join("");
            listed.push((p, if kind.is_empty() { "unknown".into() } else { kind }));
        }
    }
    let gpt = session.try_call("part-get-parttype /dev/sda") == ["gpt"];
    for (device, fstype) in listed {
        let is_device = device.starts_with("/dev/");
        let label = if is_device && fstype != "unknown" {
            session.try_call(&format!("vfs-label {}", quote(&device))).join("")
        } else {
            String::new()
        };
        let size = if is_device {
            session.try_call(&format!("blockdev-getsize64 {}", quote(&device))).join("").parse().unwrap_or(0)
        } else {
            0
        };
        let partition = partition_number(&device);
        let gpt_type = match (gpt, partition) {
            (true, Some(n)) => session.try_call(&format!("part-get-gpt-type /dev/sda {n}")).pop(),
            _ => None,
        };
        seen.push(Fs { device, fstype, label, size, partition, gpt_type });
    }
    seen.sort_by(|a, b| a.device.cmp(&b.device));
    Ok(seen)
}

/// `/dev/sda3` → 3; a whole disk or a logical volume has none.
fn partition_number(device: &str) -> Option<u32> {
    let name = device.strip_prefix("/dev/sd")?;
    let digits = name.trim_start_matches(|c: char| c.is_ascii_lowercase());
    digits.parse().ok()
}

/// Mounts the root read-only at `/`: for btrfs the named subvolume or the default one
/// (what SLES and openSUSE boot: a snapshot set as default). Returns the subvolume taken.
fn mount_root(
    session: &mut Session,
    root: &Fs,
    subvolume: Option<&str>,
    image: &str,
) -> anyhow::Result<Option<String>> {
    let dev = quote(&root.device);
    if root.fstype != "btrfs" {
        session.call(&format!("mount-ro {dev} /"))?;
        return Ok(None);
    }
    match subvolume {
        Some(sub) => {
            let opts = quote(&format!("ro,subvol={sub}"));
            session.call(&format!("mount-options {opts} {dev} /")).map_err(|e| {
                anyhow::anyhow!("{image}: btrfs subvolume `{sub}` on {} cannot be taken ({e}); param `subvolume` names a subvolume's path, as `btrfs subvolume list` shows it", root.device)
            })?;
            Ok(Some(sub.to_string()))
        }
        None => {
            session.call(&format!("mount-ro {dev} /"))?;
            let id = session.try_call("btrfs-subvolume-get-default /").join("");
            Ok(Some(format!("default (id {id})")))
        }
    }
}

/// Mounts what the image's fstab mounts below `/` (as inspection read it), read-only,
/// where the file system is one smelt reads; `/.snapshots` (btrfs snapshots of the root)
/// stays out.
fn mount_the_rest(session: &mut Session, root: &str, seen: &[Fs]) {
    let mut points: Vec<(String, String)> = session
        .try_call(&format!("inspect-get-mountpoints {}", quote(root)))
        .iter()
        .filter_map(|l| l.split_once(": ").map(|(m, d)| (m.to_string(), d.to_string())))
        .filter(|(m, _)| m != "/" && m.starts_with('/') && m != "/.snapshots")
        .collect();
    points.sort_by_key(|(m, _)| m.matches('/').count());
    for (point, device) in points {
        // The file system it is on (a subvolume's device), and how to mount it.
        let Some((f, sub)) = seen.iter().find_map(|f| Some((f, choose::on_device(&device, &f.device)?)))
        else {
            continue;
        };
        let (dev, opts) = match sub {
            "" if choose::READABLE.contains(&f.fstype.as_str()) => (f.device.clone(), "ro".to_string()),
            "" => continue,
            sub => (f.device.clone(), format!("ro,subvol={sub}")),
        };
        session.try_call(&format!("mount-options {} {} {}", quote(&opts), quote(&dev), quote(&point)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_and_devices() {
        assert_eq!(partition_number("/dev/sda3"), Some(3));
        assert_eq!(partition_number("/dev/sda"), None);
        assert_eq!(partition_number("/dev/vg0/root"), None);
        assert_eq!(choose::on_device("btrfsvol:/dev/sda2/@/home", "/dev/sda2"), Some("@/home"));
        assert_eq!(choose::on_device("/dev/sda2", "/dev/sda2"), Some(""));
        assert_eq!(choose::on_device("btrfsvol:/dev/sda22/@", "/dev/sda2"), None);
    }
}
