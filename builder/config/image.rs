//! `image.toml`: the raw file as written, and the checked [`Image`] the build uses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

pub use super::names::Named;
use super::source::{suggest, Diagnostic, Diagnostics, TomlFile};
use crate::archive::iso::FileCompression;
use crate::io::compress::{BadCompression, Compression};

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawFile {
    image: RawImage,
    #[serde(default)]
    params: BTreeMap<String, BTreeMap<String, Value>>,
    secrets: Option<RawSecrets>,
    secure_boot: Option<RawSigning>,
}

/// `[secure-boot]`: the key and certificate that sign what boots.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawSigning {
    key: Option<String>,
    key_env: Option<String>,
    cert: Option<String>,
    key_password_env: Option<String>,
}

#[derive(Deserialize)]
struct RawSecrets {
    #[serde(default)]
    allow: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawImage {
    name: String,
    elements: Vec<String>,
    outputs: Option<Vec<String>>,
    compression: Option<String>,
    compression_level: Option<i32>,
    kernel: Option<String>,
    cmdline: Option<String>,
    iso_label: Option<String>,
    iso_compression: Option<String>,
    secure_boot: Option<String>,
    uki_stub: Option<String>,
    budget: Option<String>,
    checksums: Option<Vec<String>>,
}

/// A checksum file written beside each output, as diskimage-builder's `DIB_CHECKSUM`
/// writes them and Ironic reads them (`NAME.tar.sha256`: `HEX  NAME.tar`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Checksum {
    Sha256,
    Md5,
}

impl Checksum {
    pub fn name(self) -> &'static str {
        match self {
            Checksum::Sha256 => "sha256",
            Checksum::Md5 => "md5",
        }
    }
}

/// What a build can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputKind {
    Initramfs,
    Iso,
    RamdiskTar,
    ConfigDrive,
    Dir,
    Netboot,
    Uki,
}

impl Named for OutputKind {
    const NAMES: &'static [(&'static str, OutputKind)] = &[
        ("initramfs", OutputKind::Initramfs),
        ("iso", OutputKind::Iso),
        ("ramdisk-tar", OutputKind::RamdiskTar),
        ("config-drive", OutputKind::ConfigDrive),
        ("dir", OutputKind::Dir),
        ("netboot", OutputKind::Netboot),
        ("uki", OutputKind::Uki),
    ];
}

impl Named for FileCompression {
    const NAMES: &'static [(&'static str, FileCompression)] =
        &[("none", FileCompression::None), ("zisofs", FileCompression::Zisofs)];
}

/// How a bootable output's UEFI boot passes Secure Boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecureBoot {
    /// GRUB made by `grub-mkimage` at build time, unsigned: firmware with Secure Boot
    /// on refuses it.
    Off,
    /// The distribution's signed chain: its shim (signed by Microsoft's UEFI CA), its
    /// signed GRUB, and a kernel it signed.
    Distribution,
}

impl Named for SecureBoot {
    const NAMES: &'static [(&'static str, SecureBoot)] =
        &[("off", SecureBoot::Off), ("distribution", SecureBoot::Distribution)];
}

/// Where the signing key is: a path, or an environment variable that names one (so CI
/// can keep it out of the repository).
#[derive(Debug, Clone)]
pub enum KeyAt {
    Path(PathBuf),
    Env(String),
}

/// `[secure-boot]`: the key and certificate that sign the unified kernel image.
#[derive(Debug, Clone)]
pub struct Signing {
    pub key: KeyAt,
    pub cert: PathBuf,
    /// The environment variable holding an encrypted key's password.
    pub password_env: Option<String>,
}

/// Where the kernel of a bootable output comes from.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kernel {
    /// The host's newest `/boot/vmlinuz-*`.
    Auto,
    /// The newest `/boot/vmlinuz-*` the image itself installed (its modules match), as
    /// diskimage-builder takes it; `/boot` is left out of the image.
    Image,
    Path(PathBuf),
}

/// A checked `image.toml`.
#[derive(Debug, Clone)]
pub struct Image {
    pub file: PathBuf,
    pub name: String,
    pub elements: Vec<String>,
    pub outputs: Vec<OutputKind>,
    pub compression: Compression,
    pub kernel: Option<Kernel>,
    pub cmdline: String,
    pub iso_label: String,
    /// How a data ISO stores its files (`iso-compression`).
    pub iso_compression: FileCompression,
    /// How UEFI boot passes Secure Boot (`secure-boot`).
    pub secure_boot: SecureBoot,
    /// `uki-stub`: the EFI stub a UKI is built on, when not systemd-boot-efi's.
    pub uki_stub: Option<PathBuf>,
    /// `[secure-boot]`: who signs the unified kernel image.
    pub signing: Option<Signing>,
    /// The budget file named by the image, resolved against the image's directory.
    pub budget: Option<PathBuf>,
    /// `[params.ELEMENT]` tables, before `--set` and element defaults are applied.
    pub params: BTreeMap<String, BTreeMap<String, Value>>,
    /// `[secrets] allow`: image paths (globs) of keys and hashes kept on purpose.
    pub secrets_allow: globset::GlobSet,
    /// Checksum files to write beside each output.
    pub checksums: Vec<Checksum>,
}

impl Image {
    /// Whether some output starts a machine: an initramfs, a ramdisk tarball, or an ISO
    /// with a kernel.
    pub fn boots(&self) -> bool {
        let has = |k| self.outputs.contains(&k);
        has(OutputKind::Initramfs)
            || has(OutputKind::RamdiskTar)
            || has(OutputKind::Netboot)
            || has(OutputKind::Uki)
            || (has(OutputKind::Iso) && self.kernel.is_some())
    }

    pub fn dir(&self) -> &Path {
        self.file.parent().unwrap_or(Path::new("."))
    }
}

pub fn check(file: &TomlFile) -> Result<Image, Diagnostics> {
    let raw: RawFile = file.parse()?;
    let r = raw.image;
    let mut c = Checker { file, errs: Vec::new() };
    c.name(&r.name);
    let named = r.outputs.clone().unwrap_or_else(|| vec!["initramfs".into()]);
    c.elements(&r.elements, &named);
    let outputs = c.outputs(&named);
    let compression = c.compression(r.compression.as_deref(), r.compression_level);
    let iso_label = c.iso_label(r.iso_label.clone().unwrap_or_else(|| default_label(&r.name)));
    let dir = file.path.parent().unwrap_or(Path::new("."));
    let kernel = r.kernel.map(|k| match k.as_str() {
        "auto" => Kernel::Auto,
        "image" => Kernel::Image,
        p => Kernel::Path(dir.join(p)),
    });
    c.kernel_named(&named, kernel.is_some());
    let iso_compression = c.iso_compression(r.iso_compression.as_deref(), kernel.is_some());
    let secure_boot = c.secure_boot(r.secure_boot.as_deref(), kernel.is_some());
    let secrets_allow = c.secrets_allow(raw.secrets.iter().flat_map(|s| &s.allow));
    let checksums = c.checksums(r.checksums.iter().flatten());
    let signing = raw.secure_boot.as_ref().and_then(|s| c.signing(s, dir, &named));
    if !c.errs.is_empty() {
        return Err(Diagnostics(c.errs));
    }
    Ok(Image {
        file: file.path.clone(),
        iso_label,
        iso_compression,
        secure_boot,
        signing,
        uki_stub: r.uki_stub.map(|p| dir.join(p)),
        name: r.name,
        elements: r.elements,
        outputs,
        compression,
        kernel,
        cmdline: r.cmdline.unwrap_or_else(|| "console=tty0 console=ttyS0,115200".into()),
        budget: r.budget.map(|b| dir.join(b)),
        params: raw.params,
        secrets_allow,
        checksums,
    })
}

/// Checks `image.toml` key by key, collecting every error at its place.
struct Checker<'a> {
    file: &'a TomlFile,
    errs: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn error(&mut self, keys: &[&str], message: impl Into<String>, help: Option<&str>) {
        self.errs.push(self.file.error_at(keys, message, help.map(String::from)));
    }

    fn name(&mut self, name: &str) {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
            let message = format!("image name `{name}` cannot be used as a file name stem");
            self.error(&["image", "name"], message, Some("use letters, digits, `.`, `_` and `-` only"));
        }
    }

    /// Config drives are made from the inventory alone; every other output packs the tree.
    fn elements(&mut self, elements: &[String], outputs: &[String]) {
        if elements.is_empty() && outputs.iter().any(|o| o != "config-drive") {
            let help = Some("only config-drive outputs can be made without elements");
            self.error(&["image", "elements"], "the image lists no elements", help);
        }
    }

    fn outputs(&mut self, named: &[String]) -> Vec<OutputKind> {
        let mut outputs = Vec::new();
        for (i, name) in named.iter().enumerate() {
            let at = ["image", "outputs", &i.to_string()];
            match OutputKind::from_name(name) {
                Some(kind) if !outputs.contains(&kind) => outputs.push(kind),
                Some(_) => self.error(&at, format!("output `{name}` is listed twice"), None),
                None => {
                    let help = format!("outputs are {}", OutputKind::listed());
                    self.error(&at, format!("unknown output `{name}`"), Some(&help));
                }
            }
        }
        outputs
    }

    fn compression(&mut self, kind: Option<&str>, level: Option<i32>) -> Compression {
        Compression::from_config(kind, level).unwrap_or_else(|bad| {
            let key = match bad {
                BadCompression::Level { .. } => "compression-level",
                BadCompression::Unknown(_) => "compression",
            };
            self.error(&["image", key], bad.to_string(), None);
            Compression::default()
        })
    }

    fn iso_label(&mut self, label: String) -> String {
        if label.is_empty()
            || label.len() > 32
            || !label.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            self.error(
                &["image", "iso-label"],
                format!("iso-label `{label}` is not an ISO 9660 volume label"),
                Some("use 1 to 32 upper-case letters, digits and `_`; BIOS and UEFI loaders find the ISO by it"),
            );
        }
        label
    }

    /// Outputs that boot a kernel name one.
    fn kernel_named(&mut self, named: &[String], has_kernel: bool) {
        for (i, name) in named.iter().enumerate() {
            let needs = matches!(
                OutputKind::from_name(name),
                Some(OutputKind::RamdiskTar | OutputKind::Netboot | OutputKind::Uki)
            );
            if needs && !has_kernel {
                self.error(
                    &["image", "outputs", &i.to_string()],
                    format!("output `{name}` boots a kernel, but the image names none"),
                    Some("set kernel = \"auto\" (the host's), \"image\" (the one the image installs) or a vmlinuz path"),
                );
            }
        }
    }

    fn iso_compression(&mut self, text: Option<&str>, has_kernel: bool) -> FileCompression {
        let at = ["image", "iso-compression"];
        let chosen = match text.map(FileCompression::from_name) {
            None => FileCompression::None,
            Some(Some(c)) => c,
            Some(None) => {
                let help = format!("use one of {}", FileCompression::listed());
                self.error(
                    &at,
                    format!("unknown iso-compression `{}`", text.unwrap_or_default()),
                    Some(&help),
                );
                FileCompression::None
            }
        };
        if chosen == FileCompression::Zisofs && has_kernel {
            self.error(
                &at,
                "iso-compression = \"zisofs\" is for data ISOs, but this image has a kernel (a bootable ISO)",
                Some(
                    "boot loaders cannot read zisofs files, and the initramfs is compressed already: \
                     remove iso-compression or kernel",
                ),
            );
        }
        chosen
    }

    /// `secure-boot`: off, or through the distribution's signed chain, which only a
    /// bootable output has.
    fn secure_boot(&mut self, text: Option<&str>, has_kernel: bool) -> SecureBoot {
        let at = ["image", "secure-boot"];
        let chosen = match text.map(SecureBoot::from_name) {
            None => SecureBoot::Off,
            Some(Some(s)) => s,
            Some(None) => {
                let help = format!("use one of {}", SecureBoot::listed());
                self.error(&at, format!("unknown secure-boot `{}`", text.unwrap_or_default()), Some(&help));
                SecureBoot::Off
            }
        };
        if chosen != SecureBoot::Off && !has_kernel {
            self.error(
                &at,
                "secure-boot is for what boots a kernel, but this image names none",
                Some("set kernel = \"auto\", \"image\" or a vmlinuz path (signed by the distribution), or remove secure-boot"),
            );
        }
        chosen
    }

    /// `[secure-boot]`: a key (by path or by a variable naming one) and a certificate,
    /// for an output that is signed.
    fn signing(&mut self, raw: &RawSigning, dir: &Path, outputs: &[String]) -> Option<Signing> {
        let key = match (&raw.key, &raw.key_env) {
            (Some(path), None) => Some(KeyAt::Path(dir.join(path))),
            (None, Some(var)) => Some(KeyAt::Env(var.clone())),
            (Some(_), Some(_)) => {
                self.error(&["secure-boot", "key-env"], "both key and key-env are set", Some("keep one"));
                None
            }
            (None, None) => {
                let help = "key = \"db.key\" (a PEM file, relative to image.toml) or key-env = \"VAR\" (a variable naming one)";
                self.error(&["secure-boot"], "[secure-boot] names no key", Some(help));
                None
            }
        };
        if raw.cert.is_none() {
            self.error(
                &["secure-boot"],
                "[secure-boot] names no certificate",
                Some("cert = \"db.crt\": the PEM certificate enrolled in the firmware's db"),
            );
        }
        if !outputs.iter().any(|o| o == "uki") {
            self.error(
                &["secure-boot"],
                "[secure-boot] signs the `uki` output, and the image has none",
                Some("add \"uki\" to outputs"),
            );
        }
        Some(Signing {
            key: key?,
            cert: dir.join(raw.cert.as_ref()?),
            password_env: raw.key_password_env.clone(),
        })
    }

    fn secrets_allow<'g>(&mut self, globs: impl Iterator<Item = &'g String>) -> globset::GlobSet {
        let mut allow = globset::GlobSetBuilder::new();
        for (i, glob) in globs.enumerate() {
            match globset::Glob::new(glob.trim_start_matches('/')) {
                Ok(g) => {
                    allow.add(g);
                }
                Err(e) => {
                    self.error(&["secrets", "allow", &i.to_string()], format!("bad glob `{glob}`: {e}"), None)
                }
            }
        }
        allow.build().unwrap_or_else(|_| globset::GlobSet::empty())
    }

    fn checksums<'n>(&mut self, names: impl Iterator<Item = &'n String>) -> Vec<Checksum> {
        let mut checksums = Vec::new();
        for (i, name) in names.enumerate() {
            match name.as_str() {
                "sha256" => checksums.push(Checksum::Sha256),
                "md5" => checksums.push(Checksum::Md5),
                other => self.error(
                    &["image", "checksums", &i.to_string()],
                    format!("unknown checksum `{other}`"),
                    Some("use \"sha256\" or \"md5\""),
                ),
            }
        }
        checksums
    }
}

/// The image name as a volume label: upper case, `_` for anything else, 32 at most.
fn default_label(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' })
        .take(32)
        .collect()
}

/// Diagnostics for `[params.X]` tables that name elements not in the build, located in
/// the image file.
pub fn unknown_param_tables(file: &TomlFile, image: &Image, known: &[&str]) -> Vec<Diagnostic> {
    image
        .params
        .keys()
        .filter(|e| !known.contains(&e.as_str()))
        .map(|e| {
            file.error_at(
                &["params", e],
                format!("[params.{e}] names an element that is not in this image"),
                Some(match suggest(e, known.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "add the element to [image] elements, or remove the table".into(),
                }),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `unknown key` errors send users to the reference: it must list exactly these keys.
    #[test]
    fn the_reference_table_lists_every_image_key_and_no_other() {
        use crate::config::doc_keys::{assert_documented, keys, section, IMAGE};
        let text = section(IMAGE, "# image.toml");
        let table: std::collections::BTreeSet<&str> =
            text.lines().filter_map(|l| l.strip_prefix("| `")?.split('`').next()).collect();
        let code: std::collections::BTreeSet<&str> = keys::<RawImage>().iter().copied().collect();
        assert_eq!(table, code);
        assert_documented(
            IMAGE,
            "# image.toml",
            &[keys::<RawFile>(), keys::<RawSecrets>(), keys::<RawSigning>()],
        );
    }

    fn parse(text: &str) -> Result<Image, Diagnostics> {
        check(&TomlFile::from_text(Path::new("/x/image.toml"), text.into()))
    }

    #[test]
    fn defaults() {
        let img = parse("[image]\nname = \"a\"\nelements = [\"init\"]\n").unwrap();
        assert_eq!(img.outputs, vec![OutputKind::Initramfs]);
        assert_eq!(img.compression, Compression::Zstd(3));
        assert_eq!(
            parse("[image]\nname = \"acme-kit.v2\"\nelements = [\"init\"]\n").unwrap().iso_label,
            "ACME_KIT_V2"
        );
    }

    #[test]
    fn iso_labels_are_checked() {
        let e =
            parse("[image]\nname = \"a\"\nelements = [\"init\"]\niso-label = \"acme kit\"\n").unwrap_err();
        assert_eq!(e.0[0].message, "iso-label `acme kit` is not an ISO 9660 volume label");
        assert_eq!(e.0[0].at, Some((4, 13)));
    }

    #[test]
    fn zisofs_is_for_data_isos() {
        let base = "[image]\nname = \"a\"\nelements = [\"init\"]\noutputs = [\"iso\"]\n";
        let img = parse(&format!("{base}iso-compression = \"zisofs\"\n")).unwrap();
        assert_eq!(img.iso_compression, FileCompression::Zisofs);
        let e = parse(&format!("{base}iso-compression = \"zisofs\"\nkernel = \"auto\"\n")).unwrap_err();
        assert_eq!(
            (e.0[0].message.as_str(), e.0[0].at),
            (
                "iso-compression = \"zisofs\" is for data ISOs, but this image has a kernel (a bootable ISO)",
                Some((5, 19))
            )
        );
        let e = parse(&format!("{base}iso-compression = \"zstd\"\n")).unwrap_err();
        assert_eq!(e.0[0].message, "unknown iso-compression `zstd`");
        assert_eq!(e.0[0].help.as_deref(), Some("use one of none, zisofs"));
    }

    #[test]
    fn outputs_that_boot_need_a_kernel() {
        let e =
            parse("[image]\nname = \"a\"\nelements = [\"init\"]\noutputs = [\"initramfs\", \"netboot\"]\n")
                .unwrap_err();
        assert_eq!(
            (e.0[0].message.as_str(), e.0[0].at),
            ("output `netboot` boots a kernel, but the image names none", Some((4, 25)))
        );
        assert!(parse(
            "[image]\nname = \"a\"\nelements = [\"init\"]\noutputs = [\"ramdisk-tar\"]\nkernel = \"auto\"\n"
        )
        .is_ok());
    }

    #[test]
    fn every_error_at_once() {
        let e =
            parse("[image]\nname = \"a b\"\nelements = []\noutputs = [\"isoo\"]\ncompression = \"lz4\"\n")
                .unwrap_err();
        let msgs: Vec<_> = e.0.iter().map(|d| (d.message.as_str(), d.at)).collect();
        assert_eq!(msgs.len(), 4, "{msgs:?}");
        assert_eq!(msgs[2], ("unknown output `isoo`", Some((4, 12))));
    }
}
