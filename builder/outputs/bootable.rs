//! The bootable ISO's boot: the loaders found on the host (isolinux for BIOS, GRUB for
//! UEFI, in a FAT ESP) and the configs, rendered from `templates/boot/`, that tie them
//! to the kernel and the image's initramfs. With `secure-boot = "distribution"` the ESP
//! holds the distribution's signed chain instead of a GRUB made here: shim (signed by
//! Microsoft's UEFI CA) as `BOOTX64.EFI`, beside it the signed GRUB for media (which
//! finds the ISO by its `/.disk/info` and reads `/boot/grub/grub.cfg`) and MokManager.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::json;

use super::loaders::{grub_efi, host_file, signed_loader, LDLINUX, MOK_MANAGER, SHIM};
use crate::archive::{esp, iso::Boot};
use crate::config::image::{Image, SecureBoot};
use crate::efi::{pe::Pe, Identity};
use crate::io::source::Source;
use crate::path::ImagePath;
use crate::tree::{Entry, Tree};

const ISOLINUX_CFG: &str = include_str!("../../templates/boot/isolinux.cfg.tera");
const GRUB_CFG: &str = include_str!("../../templates/boot/grub.cfg.tera");
const GRUB_EARLY_CFG: &str = include_str!("../../templates/boot/grub-early.cfg.tera");

/// The distribution's signed GRUB for media.
const SIGNED_GRUB_CD: (&str, &str) =
    ("/usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed", "grub-efi-amd64-signed");

/// The file the signed GRUB for media looks for to find the medium it belongs to.
const DISK_INFO: &str = ".disk/info";

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
    /// `/.disk/info`, by which the distribution's signed GRUB finds the ISO.
    disk_info: Option<Vec<u8>>,
    /// The EFI binaries on the ESP, by their paths there.
    efi: Vec<(String, Identity)>,
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
        let files: Vec<(&str, Vec<u8>)> = match image.secure_boot {
            SecureBoot::Off => {
                let early = String::from_utf8(render(GRUB_EARLY_CFG, "grub-early.cfg.tera", image)?)?;
                let grub = grub_efi("/boot/grub", GRUB_MODULES, Some(&early), work, WHAT)?;
                vec![("EFI/BOOT/BOOTX64.EFI", grub)]
            }
            SecureBoot::Distribution => {
                let read =
                    |loader| -> anyhow::Result<Vec<u8>> { Ok(std::fs::read(signed_loader(loader, WHAT)?)?) };
                let (shim, grub, mok) = (read(SHIM)?, read(SIGNED_GRUB_CD)?, read(MOK_MANAGER)?);
                // shim starts `grubx64.efi` (and `mmx64.efi` to enrol keys) beside itself.
                vec![
                    ("EFI/BOOT/BOOTX64.EFI", shim),
                    ("EFI/BOOT/grubx64.efi", grub),
                    ("EFI/BOOT/mmx64.efi", mok),
                ]
            }
        };
        let mut efi = Vec::new();
        for (name, bytes) in &files {
            efi.push((
                name.to_string(),
                crate::efi::identify(&Pe::from_bytes(name, bytes.as_slice().into())?)?,
            ));
        }
        let esp = esp::fat_image(&files.iter().map(|(n, b)| (*n, b.as_slice())).collect::<Vec<_>>())?;
        Ok(Loaders {
            isolinux,
            ldlinux,
            isolinux_cfg: render(ISOLINUX_CFG, "isolinux.cfg.tera", image)?,
            grub_cfg: render(GRUB_CFG, "grub.cfg.tera", image)?,
            boot: Boot {
                bios_image: "isolinux/isolinux.bin".into(),
                catalog: "isolinux/boot.cat".into(),
                mbr_code: std::fs::read(&isohdpfx)?,
                esp,
            },
            disk_info: (image.secure_boot == SecureBoot::Distribution)
                .then(|| format!("{} (smelt {})\n", image.name, env!("CARGO_PKG_VERSION")).into_bytes()),
            efi,
        })
    }

    /// What El Torito and the hybrid tables need.
    pub fn boot(&self) -> &Boot {
        &self.boot
    }

    /// The tree of one bootable ISO — kernel, initramfs, loaders and configs — over the
    /// elements' `iso/` files.
    /// The EFI binaries the ISO's ESP holds, by their paths there.
    pub fn efi(&self) -> &[(String, Identity)] {
        &self.efi
    }

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
        if let Some(info) = &self.disk_info {
            put(DISK_INFO, Source::Bytes(info.clone().into()))?;
        }
        Ok(tree)
    }
}
