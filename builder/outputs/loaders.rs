//! Boot loaders from the host, shared by the bootable ISO and the network-boot tree:
//! files of the host's packages (an error names the package when one is missing) and
//! GRUB UEFI images made by the host's `grub-mkimage`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

/// Where syslinux's `ldlinux.c32` (BIOS) is, which isolinux and PXELINUX load.
pub const LDLINUX: &[&str] = &["/usr/lib/syslinux/modules/bios/ldlinux.c32", "/usr/lib/syslinux/ldlinux.c32"];

/// The first of `candidates` on the host, which `what` needs; else an error naming the
/// Debian/Ubuntu package to install.
pub fn host_file(candidates: &[&str], package: &str, what: &str) -> anyhow::Result<PathBuf> {
    let mut found = candidates.iter().map(|p| crate::lock::read(Path::new(p)));
    found.find(|p| p.is_file()).with_context(|| {
        format!("{what} needs {} from the host; install {package} (Debian/Ubuntu)", candidates[0])
    })
}

/// The distribution's signed loaders (Debian's paths; the package that has them).
pub const SHIM: (&str, &str) = ("/usr/lib/shim/shimx64.efi.signed", "shim-signed");
pub const MOK_MANAGER: (&str, &str) = ("/usr/lib/shim/mmx64.efi.signed", "shim-signed");

/// A loader of the distribution's signed chain, `(path, package)`: on the host, and
/// carrying an Authenticode signature that verifies (a file that lost or never had its
/// signature would be refused by every node's firmware, far from here).
pub fn signed_loader((path, package): (&str, &str), what: &str) -> anyhow::Result<PathBuf> {
    let found = host_file(&[path], package, what)?;
    let pe = crate::efi::pe::Pe::read(&found)?;
    let digest = crate::efi::authenticode::digest(&pe)?;
    let signatures = crate::efi::authenticode::signatures(&pe, &digest)?;
    anyhow::ensure!(
        signatures.iter().any(|s| s.verifies),
        "{what}: {path} carries no signature that verifies; reinstall {package} (Debian/Ubuntu: apt-get install --reinstall {package})"
    );
    Ok(found)
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
