//! Bootable media: the kernel, the boot loaders found on the host (isolinux for BIOS,
//! GRUB for UEFI) and the configs, rendered from `templates/boot/`, that tie them to
//! the image's initramfs.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};
use serde_json::json;

use crate::archive::{esp, iso::Boot};
use crate::config::image::{Image, Kernel};
use crate::io::source::Source;
use crate::path::ImagePath;
use crate::tree::{Entry, Tree};

const ISOLINUX_CFG: &str = include_str!("../templates/boot/isolinux.cfg.tera");
const GRUB_CFG: &str = include_str!("../templates/boot/grub.cfg.tera");
const GRUB_EARLY_CFG: &str = include_str!("../templates/boot/grub-early.cfg.tera");

/// Where things go on a bootable ISO.
const KERNEL: &str = "/boot/vmlinuz";
const INITRD: &str = "/boot/initrd.img";

/// GRUB modules the UEFI loader carries: enough to find the ISO by label (on a CD or
/// on a USB stick's partitions), read its config and boot Linux with a serial console.
const GRUB_MODULES: &[&str] = &[
    "normal",
    "configfile",
    "linux",
    "search",
    "search_label",
    "iso9660",
    "part_gpt",
    "part_msdos",
    "fat",
    "serial",
    "terminal",
    "echo",
    "test",
    "gzio",
    "efi_gop",
    "all_video",
];

/// Where syslinux's `ldlinux.c32` (BIOS) is, which isolinux and PXELINUX load.
pub const LDLINUX: &[&str] = &["/usr/lib/syslinux/modules/bios/ldlinux.c32", "/usr/lib/syslinux/ldlinux.c32"];

/// The kernel an image names: a path, or the host's newest `/boot/vmlinuz-*`. A
/// kernel the image installs (`kernel = "image"`) is known only after staging: see
/// [`take_image_kernel`].
pub fn kernel_path(kernel: &Kernel) -> anyhow::Result<PathBuf> {
    match kernel {
        Kernel::Path(p) if p.is_file() => Ok(p.clone()),
        Kernel::Path(p) => {
            bail!("kernel {} does not exist; set `kernel` in image.toml to a vmlinuz file", p.display())
        }
        Kernel::Auto => {
            let found = std::fs::read_dir("/boot")
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()));
            newest_vmlinuz(found).map(|(_, p)| p).context(
                "kernel = \"auto\" found no /boot/vmlinuz-*; install a kernel (Debian: linux-image-cloud-amd64) \
                 or set `kernel` in image.toml to a vmlinuz file",
            )
        }
        Kernel::Image => {
            bail!("kernel = \"image\" is the image's own kernel, known once the image is staged")
        }
    }
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
/// leaves what `/boot` holds and the root's links into it (`/vmlinuz`, `/initrd.img`) out of the
/// image: the kernel rides beside the initramfs, never in it.
pub fn take_image_kernel(tree: &mut Tree, work: &Path) -> anyhow::Result<ImageKernel> {
    let boot = ImagePath::new("boot").expect("a path");
    let candidates = tree
        .below(&boot)
        .filter(|(p, e)| {
            p.parent().as_ref() == Some(&boot) && matches!(e.kind, crate::tree::Kind::File { .. })
        })
        .map(|(p, e)| (p.file_name().to_string(), e.clone()));
    let Some((release, entry)) = newest_vmlinuz(candidates) else {
        bail!(
            "kernel = \"image\" but the image has no /boot/vmlinuz-*: install a kernel package in it (Debian: \
             linux-image-amd64 or linux-image-cloud-amd64 in base-debian's `packages`), or set `kernel` to \
             `auto` or a vmlinuz file"
        );
    };
    let crate::tree::Kind::File { source, .. } = &entry.kind else { unreachable!("filtered to files") };
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
            crate::tree::Kind::Symlink(t) => {
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

/// The first of `candidates` on the host, which `what` needs; else an error naming the
/// Debian/Ubuntu package to install.
pub fn host_file(candidates: &[&str], package: &str, what: &str) -> anyhow::Result<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.is_file()).with_context(|| {
        format!("{what} needs {} from the host; install {package} (Debian/Ubuntu)", candidates[0])
    })
}

/// A GRUB UEFI loader made by the host's grub-mkimage with `modules`, reading its config
/// from `prefix`, with an early config when given. Its output is the same bytes for
/// the same inputs.
pub fn grub_efi(
    prefix: &str,
    modules: &[&str],
    early_cfg: Option<&str>,
    work: &Path,
    what: &str,
) -> anyhow::Result<Vec<u8>> {
    let out = work.join(format!("grub-{}.efi", prefix.replace('/', "_")));
    let mut cmd = Command::new("grub-mkimage");
    cmd.args(["-O", "x86_64-efi", "-p", prefix]);
    if let Some(text) = early_cfg {
        let cfg = work.join("grub-early.cfg");
        std::fs::write(&cfg, text)?;
        cmd.arg("-c").arg(&cfg);
    }
    let status = cmd.arg("-o").arg(&out).args(modules).output().with_context(|| {
        format!("{what} needs grub-mkimage; install grub-efi-amd64-bin and grub-common (Debian/Ubuntu)")
    })?;
    if !status.status.success() {
        bail!(
            "grub-mkimage failed: {} ({what} needs grub-efi-amd64-bin's modules for x86_64-efi)",
            String::from_utf8_lossy(&status.stderr).trim()
        );
    }
    std::fs::read(&out).context("reading the GRUB image")
}

fn render(template: &str, name: &str, image: &Image) -> anyhow::Result<Vec<u8>> {
    let ctx = json!({
        "image": { "name": image.name, "cmdline": image.cmdline, "iso_label": image.iso_label },
        "kernel": KERNEL,
        "initrd": INITRD,
    });
    let text = crate::render::render_str(template, &ctx)
        .map_err(|e| anyhow::anyhow!("rendering templates/boot/{name}: {e}"))?;
    Ok(text.into_bytes())
}

/// What every bootable ISO of a build shares: the host's loaders, the GRUB UEFI image
/// in its FAT ESP, and the rendered configs. Made once, whatever the number of nodes.
pub struct Loaders {
    isolinux: PathBuf,
    ldlinux: PathBuf,
    isolinux_cfg: Vec<u8>,
    grub_cfg: Vec<u8>,
    boot: Boot,
}

impl Loaders {
    pub fn prepare(image: &Image, work: &Path) -> anyhow::Result<Loaders> {
        const WHAT: &str = "a bootable ISO";
        let isolinux = host_file(
            &["/usr/lib/ISOLINUX/isolinux.bin", "/usr/lib/syslinux/isolinux.bin"],
            "isolinux",
            WHAT,
        )?;
        let ldlinux = host_file(LDLINUX, "syslinux-common", WHAT)?;
        let isohdpfx = host_file(
            &["/usr/lib/ISOLINUX/isohdpfx.bin", "/usr/lib/syslinux/isohdpfx.bin"],
            "isolinux",
            WHAT,
        )?;
        let early = String::from_utf8(render(GRUB_EARLY_CFG, "grub-early.cfg.tera", image)?)?;
        let grub = grub_efi("/boot/grub", GRUB_MODULES, Some(&early), work, WHAT)?;
        Ok(Loaders {
            isolinux,
            ldlinux,
            isolinux_cfg: render(ISOLINUX_CFG, "isolinux.cfg.tera", image)?,
            grub_cfg: render(GRUB_CFG, "grub.cfg.tera", image)?,
            boot: Boot {
                bios_image: "isolinux/isolinux.bin".into(),
                catalog: "isolinux/boot.cat".into(),
                mbr_code: std::fs::read(&isohdpfx)?,
                esp: esp::fat_image(&[("EFI/BOOT/BOOTX64.EFI", &grub)])?,
            },
        })
    }

    /// What El Torito and the hybrid tables need.
    pub fn boot(&self) -> &Boot {
        &self.boot
    }

    /// The tree of one bootable ISO — kernel, initramfs, loaders and configs — over the
    /// elements' `iso/` files.
    pub fn iso_tree(
        &self,
        kernel: &Path,
        initramfs: &Path,
        extras: &Tree,
        mtime: i64,
    ) -> anyhow::Result<Tree> {
        let mut tree = extras.clone();
        let mut put = |path: &str, source: Source| -> anyhow::Result<()> {
            let size = source.byte_len().with_context(|| format!("reading {}", source.describe()))?;
            let at = ImagePath::new(path)?;
            tree.insert(&at, Entry::file(source, size, 0o644, mtime, "smelt"))
                .map_err(|e| anyhow::anyhow!("ISO path {path}: {e}"))?;
            Ok(())
        };
        put(KERNEL, Source::host(kernel))?;
        put(INITRD, Source::host(initramfs))?;
        put("isolinux/isolinux.bin", Source::host(&self.isolinux))?;
        put("isolinux/ldlinux.c32", Source::host(&self.ldlinux))?;
        put("isolinux/isolinux.cfg", Source::Bytes(self.isolinux_cfg.clone().into()))?;
        put("boot/grub/grub.cfg", Source::Bytes(self.grub_cfg.clone().into()))?;
        Ok(tree)
    }
}
