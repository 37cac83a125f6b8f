//! The kernel an image boots, chosen once: when the build is planned for a vmlinuz path
//! or the host's newest `/boot/vmlinuz-*` (`auto`), or, for `kernel = "image"`, taken
//! out of the staged tree, where the image installed it. Staging and the outputs read
//! the choice from there.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use crate::config::image::Kernel;
use crate::io::source::Source;
use crate::path::ImagePath;
use crate::tree::{Kind, Tree};

/// The kernel of a build, as planned.
#[derive(Debug, Clone)]
pub enum Planned {
    /// A kernel file on the host, with the release its modules are under.
    Host { path: PathBuf, release: Option<String> },
    /// The one the image installs, known once it is staged ([`take_from_image`]).
    Image,
}

/// What `kernel` in image.toml names, found now: an error names what to install or set.
pub fn plan(kernel: &Kernel) -> anyhow::Result<Planned> {
    let path = match kernel {
        Kernel::Image => return Ok(Planned::Image),
        Kernel::Path(p) if crate::lock::read(p).is_file() => crate::lock::read(p),
        Kernel::Path(p) => {
            bail!("kernel {} does not exist; set `kernel` in image.toml to a vmlinuz file", p.display())
        }
        Kernel::Auto => {
            // Rebuilding from a bundle, the kernel it carries, wherever this host's are.
            let found = std::fs::read_dir(crate::lock::listing(Path::new("/boot")))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned());
            let newest = newest_vmlinuz(found.map(|n| (n.clone(), n))).map(|(_, n)| n);
            newest.map(|n| crate::lock::read(&Path::new("/boot").join(n))).context(
                "kernel = \"auto\" found no /boot/vmlinuz-*; install a kernel (Debian: linux-image-cloud-amd64) \
                 or set `kernel` in image.toml to a vmlinuz file",
            )?
        }
    };
    let release = release_of(&path);
    Ok(Planned::Host { path, release })
}

/// The release of a kernel image: its file name's `vmlinuz-RELEASE`, else the version
/// string a bzImage carries (boot protocol: offset 0x20e).
pub fn release_of(kernel: &Path) -> Option<String> {
    if let Some(r) = kernel.file_name()?.to_str()?.strip_prefix("vmlinuz-") {
        return Some(r.to_string());
    }
    let bytes = std::fs::read(kernel).ok()?;
    let at = u16::from_le_bytes(bytes.get(0x20e..0x210)?.try_into().ok()?) as usize + 0x200;
    let text = bytes.get(at..at + 128)?;
    let end = text.iter().position(|b| *b == b' ' || *b == 0)?;
    Some(String::from_utf8_lossy(&text[..end]).into_owned())
}

/// The `vmlinuz-RELEASE` with the highest release (compared number by number) among
/// (file name, thing) pairs, with its release.
fn newest_vmlinuz<T>(names: impl Iterator<Item = (String, T)>) -> Option<(String, T)> {
    let mut found: Vec<(Vec<u64>, String, T)> = names
        .filter_map(|(name, t)| {
            let release = name.strip_prefix("vmlinuz-")?.to_string();
            let key = release.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect();
            Some((key, release, t))
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    found.pop().map(|(_, release, t)| (release, t))
}

/// The kernel the image installed, for `kernel = "image"`.
pub struct ImageKernel {
    /// The kernel file on the host (in the staging tree, or written to the work
    /// directory), for the outputs that carry it.
    pub path: PathBuf,
    pub release: String,
    /// What leaving `/boot` out removed from the image.
    pub removed_bytes: u64,
}

/// Takes the newest `/boot/vmlinuz-*` out of the staged `tree` (copied to `work`), and
/// leaves what `/boot` holds and the root's links into it (`/vmlinuz`, `/initrd.img`) out
/// of the image: the kernel rides beside the initramfs, never in it.
pub fn take_from_image(tree: &mut Tree, work: &Path) -> anyhow::Result<ImageKernel> {
    let boot = ImagePath::new("boot").expect("a path");
    let candidates = tree
        .below(&boot)
        .filter(|(p, e)| p.parent().as_ref() == Some(&boot) && matches!(e.kind, Kind::File { .. }))
        .map(|(p, e)| (p.file_name().to_string(), e.clone()));
    let Some((release, entry)) = newest_vmlinuz(candidates) else {
        bail!(
            "kernel = \"image\" but the image has no /boot/vmlinuz-*: install a kernel package in it (Debian: \
             linux-image-amd64 or linux-image-cloud-amd64 in base-debian's `packages`), or set `kernel` to \
             `auto` or a vmlinuz file"
        );
    };
    let Kind::File { source, .. } = &entry.kind else { unreachable!("filtered to files") };
    // A hook's kernel is already a file of the staging tree, there until the build ends;
    // one from bytes or a tarball member is written out once.
    let path = match source {
        Source::Host(p) => p.to_path_buf(),
        other => {
            let path = work.join(format!("vmlinuz-{release}"));
            std::io::copy(&mut other.open()?, &mut std::fs::File::create(&path)?)
                .with_context(|| format!("copying the image's kernel /boot/vmlinuz-{release}"))?;
            path
        }
    };
    let mut removed_bytes = 0;
    tree.retain(|p, e| {
        let into_boot = match &e.kind {
            Kind::Symlink(t) => {
                p.parent().is_some_and(|d| d.is_root()) && t.trim_start_matches('/').starts_with("boot/")
            }
            _ => false,
        };
        let gone = (p.starts_with(&boot) && *p != boot) || into_boot;
        if gone {
            removed_bytes += e.size();
        }
        !gone
    });
    Ok(ImageKernel { path, release, removed_bytes })
}
