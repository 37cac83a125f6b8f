//! The `uki` output: a unified kernel image per variant (`NAME.efi`), signed with
//! `[secure-boot]`'s key when the image has one.

use std::path::Path;

use anyhow::Context as _;

use super::loaders::host_file;
use super::{Made, Outputs};
use crate::archive::Written;
use crate::config::image::OutputKind;
use crate::efi::{authenticode, pe::Pe, uki};
use crate::io::atomic::Pending;
use crate::outputs::variants::Variant;
use crate::path::ImagePath;
use crate::tree::Kind;

impl Outputs<'_> {
    pub(super) fn uki(&self, v: &Variant, initramfs: Option<&Path>) -> anyhow::Result<Made> {
        let (Some(kernel), Some(initramfs)) = (&self.kernel, initramfs) else {
            anyhow::bail!("output `uki` needs a kernel: set kernel = \"auto\" or a vmlinuz path in [image]");
        };
        let stub = match &self.plan.image.uki_stub {
            Some(stub) => stub.clone(),
            None => host_file(&[uki::STUB.0], uki::STUB.1, "the uki output")?,
        };
        let parts = uki::Parts {
            os_release: os_release(v, &self.plan.image.name),
            cmdline: super::netboot::uki_cmdline(self.plan, v.node)?,
            uname: uki::kernel_release(kernel)?,
            initrd: initramfs,
            linux: kernel,
        };
        let dest = self.outdir.join(format!("{}.efi", v.stem));
        let pending = Pending::new(&dest);
        self.ui.step("uki", || {
            let mut file = pending.create_file()?;
            uki::write(&stub, &parts, &mut file)?;
            drop(file);
            if let Some(signer) = &self.plan.signer {
                authenticode::sign(&Pe::read(pending.temp_path())?, signer)
                    .with_context(|| format!("signing {}", dest.display()))?;
            }
            Ok(())
        })?;
        let bytes = std::fs::metadata(pending.temp_path())?.len();
        let sha256 = crate::io::count::sha256_file(pending.temp_path())?;
        Ok(Made::Written(OutputKind::Uki, Written { pending, bytes, sha256: Some(sha256), skipped: 0 }))
    }
}

/// The image's os-release (`/usr/lib/os-release`, else `/etc/os-release`), else one
/// naming the image.
fn os_release(v: &Variant, name: &str) -> Vec<u8> {
    for path in ["usr/lib/os-release", "etc/os-release"] {
        let Ok(path) = ImagePath::new(path) else { continue };
        let found = v.layers.iter().rev().find_map(|layer| layer.get(&path));
        if let Some(Kind::File { source, .. }) = found.map(|e| e.kind) {
            if let Ok(bytes) = source.read_all() {
                return bytes;
            }
        }
    }
    format!(
        "NAME=\"{name}\"\nID=smelt\nIMAGE_ID={name}\nPRETTY_NAME=\"{name} (smelt {})\"\n",
        env!("CARGO_PKG_VERSION")
    )
    .into_bytes()
}
