//! Every output kind, assembled here from the archive writers (`crate::archive`): one
//! method per kind over one [`Outputs`] context — the initramfs, the ramdisk tarball
//! and the `dir` below, the ISO in [`iso`] (booting through [`bootable`]), the
//! network-boot tree in [`netboot`], config drives in [`config_drive`]; the host's boot
//! loaders in [`loaders`]. Every output of every variant (see [`variants`]) goes under a
//! temporary name, with its report line and budget check, for the build to publish only
//! when all are within budget. Per node, variants are written on every core, and
//! recorded in their order. The initramfs comes first, since a bootable ISO, the
//! ramdisk tarball and the network-boot tree carry it; the network-boot tree (all
//! variants' initramfs) and config drives, one per node, come last.

mod bootable;
mod checksums;
mod config_drive;
mod iso;
mod loaders;
pub mod netboot;
mod uki;
pub mod variants;

use std::path::{Path, PathBuf};

use anyhow::bail;

use crate::archive::{self, ramdisk_tar, Written};
use crate::budget;
use crate::config::image::OutputKind;
use crate::config::names::Named;
use crate::efi::pe::Pe;
use crate::plan::Plan;
use crate::report::{EfiBinary, OutputReport};
use crate::tree::Tree;
use crate::ui::Ui;
use variants::Variant;

/// What writing the outputs produced: files waiting to be published, their report
/// lines, and their budget checks.
#[derive(Default)]
pub struct Produced {
    pub written: Vec<Written>,
    /// Checksum files of the written outputs, published with them.
    pub checksum_files: Vec<crate::io::atomic::Pending>,
    pub reports: Vec<OutputReport>,
    pub checks: Vec<budget::Check>,
    /// The EFI binaries the outputs boot through.
    pub efi: Vec<EfiBinary>,
}

/// What every output of a build shares, and what is made once for all variants.
struct Outputs<'a> {
    plan: &'a Plan,
    outdir: &'a Path,
    work: &'a Path,
    ui: &'a Ui,
    kernel: Option<PathBuf>,
    /// The files elements put under `iso/`, made when the image has an ISO.
    iso_extras: Option<&'a Tree>,
    /// Boot loaders of bootable ISOs: made for the first, shared by the rest.
    loaders: Option<bootable::Loaders>,
    /// Per node: the shared part's archive, compressed once, that each node's own
    /// small archive is appended to.
    shared: Option<(Written, archive::SharedPart)>,
    produced: Produced,
}

/// Writes every output of every variant of `plan` under a temporary name: `kernel` is
/// the one staging settled on, `iso_extras` what elements put beside the image on an
/// ISO (made when the image has one).
pub fn write(
    plan: &Plan,
    kernel: Option<&Path>,
    iso_extras: Option<&Tree>,
    variants: &[Variant],
    outdir: &Path,
    work: &Path,
    ui: &Ui,
) -> anyhow::Result<Produced> {
    let wants = |kind| plan.image.outputs.contains(&kind);
    let needs_initramfs = wants(OutputKind::Initramfs)
        || wants(OutputKind::RamdiskTar)
        || wants(OutputKind::Netboot)
        || wants(OutputKind::Uki)
        || (wants(OutputKind::Iso) && kernel.is_some());
    // What every variant shares, made once before any is written.
    let loaders = match (kernel, wants(OutputKind::Iso)) {
        (Some(_), true) => Some(bootable::Loaders::prepare(&plan.image, work)?),
        _ => None,
    };
    let shared = match variants.first().map(|v| v.layers.as_slice()) {
        Some([shared, _]) if needs_initramfs => Some(shared_part(plan, shared, work, ui)?),
        _ => None,
    };
    let mut out = Outputs {
        plan,
        outdir,
        work,
        ui,
        kernel: kernel.map(Path::to_path_buf),
        iso_extras,
        loaders,
        shared,
        produced: Produced::default(),
    };
    let made = out.variants(variants, needs_initramfs)?;
    let (for_netboot, carried) = out.record_variants(made);
    if wants(OutputKind::Netboot) {
        out.netboot(&for_netboot)?;
    }
    // What only the network-boot tree carried is removed now.
    drop(carried);
    if wants(OutputKind::ConfigDrive) {
        out.config_drives()?;
    }
    let efi = out.efi_binaries()?;
    let mut produced = out.produced;
    produced.efi = efi;
    produced.checksum_files = checksums::sidecars(&produced.written, &plan.image.checksums)?;
    // Report outputs in the order the image lists them, whatever order they were made in.
    produced.reports.sort_by_key(|r| plan.image.outputs.iter().position(|k| k.name() == r.kind));
    Ok(produced)
}

/// Per node: the part every node shares, as an archive compressed once, which each
/// node's own small archive is appended to.
fn shared_part(
    plan: &Plan,
    shared: &Tree,
    work: &Path,
    ui: &Ui,
) -> anyhow::Result<(Written, archive::SharedPart)> {
    let compression = plan.image.compression;
    let at = work.join(format!("shared.cpio{}", compression.suffix()));
    let written = ui.step("shared", || archive::initramfs(shared, plan.epoch, compression, &at, |_| {}))?;
    let part = archive::SharedPart::new(written.pending.temp_path())?;
    Ok((written, part))
}

/// What writing one variant made: its initramfs (an output, or carried by others), and
/// its other outputs.
struct VariantMade {
    initramfs: Option<Written>,
    outputs: Vec<Made>,
}

/// One output of a variant: written under a temporary name, or refused for its budget
/// before it was written.
enum Made {
    Written(OutputKind, Written),
    Refused { kind: OutputKind, dest: PathBuf, bytes: u64, check: budget::Check },
}

impl<'a> Outputs<'a> {
    fn wants(&self, kind: OutputKind) -> bool {
        self.plan.image.outputs.contains(&kind)
    }

    /// Every variant's outputs, not yet recorded. One variant a job: two nodes' images
    /// are written at once on two cores (hashing each output is most of the work), in
    /// the inventory's order; the first failure stops the rest.
    fn variants<'v>(
        &self,
        variants: &'v [Variant<'v>],
        needs_initramfs: bool,
    ) -> anyhow::Result<Vec<(&'v Variant<'v>, VariantMade)>> {
        let mut made_all = Vec::new();
        crate::io::ahead::map_in_batches(
            1,
            variants.iter(),
            |v| self.variant(v, needs_initramfs).map(|made| (v, made)),
            |made| {
                made_all.push(made?);
                Ok::<(), anyhow::Error>(())
            },
        )?;
        Ok(made_all)
    }

    /// Records what the variants made, in order. Returns what each variant boots for
    /// the network-boot tree (its node, initramfs and UKI), and those of them that are not an output
    /// themselves, removed once dropped.
    fn record_variants<'v>(
        &mut self,
        made: Vec<(&'v Variant<'v>, VariantMade)>,
    ) -> (Vec<netboot::Boots<'v>>, Vec<Written>) {
        let (mut for_netboot, mut carried) = (Vec::new(), Vec::new());
        for (v, made) in made {
            let VariantMade { initramfs, outputs } = made;
            let mut uki = None;
            for m in outputs {
                match m {
                    Made::Written(kind, written) => {
                        if kind == OutputKind::Uki {
                            uki = Some(written.pending.temp_path().to_path_buf());
                        }
                        self.record(kind, written)
                    }
                    Made::Refused { kind, dest, bytes, check } => self.refuse(kind, &dest, bytes, check),
                }
            }
            let Some(initramfs) = initramfs else { continue };
            if self.wants(OutputKind::Netboot) {
                let path = initramfs.pending.temp_path().to_path_buf();
                for_netboot.push(netboot::Boots { node: v.node, initramfs: path, uki });
            }
            if self.wants(OutputKind::Initramfs) {
                self.record(OutputKind::Initramfs, initramfs);
            } else if self.wants(OutputKind::Netboot) {
                carried.push(initramfs);
            }
        }
        (for_netboot, carried)
    }

    /// Every output of one variant, under temporary names, not yet recorded.
    fn variant(&self, v: &Variant, needs_initramfs: bool) -> anyhow::Result<VariantMade> {
        let initramfs = if needs_initramfs { Some(self.initramfs(v)?) } else { None };
        let packed = initramfs.as_ref().map(|w| w.pending.temp_path());
        let mut outputs = Vec::new();
        for kind in &self.plan.image.outputs {
            match kind {
                OutputKind::Iso => outputs.push(self.iso(v, packed)?),
                OutputKind::RamdiskTar => outputs.push(self.ramdisk_tar(v, packed)?),
                OutputKind::Dir => outputs.push(self.dir(v)?),
                OutputKind::Uki => outputs.push(self.uki(v, packed)?),
                // Written above; the network-boot tree and config drives are for every
                // node, after the images.
                OutputKind::Initramfs | OutputKind::ConfigDrive | OutputKind::Netboot => {}
            }
        }
        Ok(VariantMade { initramfs, outputs })
    }

    /// The variant as a compressed newc archive: in the output directory when it is an
    /// output, else in the work directory for the ISO or tarball that carries it. Per
    /// node, the shared part is compressed once and each node's archive appended to it.
    fn initramfs(&self, v: &Variant) -> anyhow::Result<Written> {
        let (plan, ui) = (self.plan, self.ui);
        let compression = plan.image.compression;
        let file = format!("{}.cpio{}", v.stem, compression.suffix());
        let dest =
            if self.wants(OutputKind::Initramfs) { self.outdir.join(&file) } else { self.work.join(&file) };
        dropped_xattrs(&v.layers, "initramfs", ui);
        match v.layers.as_slice() {
            [whole] => {
                let bar = ui.bytes_bar(whole.iter().map(|(_, e)| e.size()).sum(), "initramfs");
                let out = ui.step("initramfs", || {
                    archive::initramfs(whole, plan.epoch, compression, &dest, |n| bar.inc(n))
                })?;
                bar.finish_and_clear();
                Ok(out)
            }
            [_, own] => {
                let own_at = self.work.join(format!("{}.own.cpio{}", v.stem, compression.suffix()));
                let own = archive::initramfs(own, plan.epoch, compression, &own_at, |_| {})?;
                let (_, shared) = self.shared.as_ref().expect("made before the variants");
                ui.step(&v.stem, || shared.then(own.pending.temp_path(), &dest))
            }
            _ => unreachable!("a variant has one or two layers"),
        }
    }

    /// The kernel and the initramfs in a tarball, as Ironic and Metal3 take them.
    fn ramdisk_tar(&self, v: &Variant, initramfs: Option<&Path>) -> anyhow::Result<Made> {
        let (Some(kernel), Some(initramfs)) = (&self.kernel, initramfs) else {
            bail!("output `ramdisk-tar` needs a kernel: set kernel = \"auto\" or a vmlinuz path in [image]");
        };
        let dest = self.outdir.join(format!("{}.tar", v.stem));
        let epoch = self.plan.time;
        let out =
            self.ui.step("ramdisk-tar", || ramdisk_tar::write(&v.stem, kernel, initramfs, epoch, &dest))?;
        Ok(Made::Written(OutputKind::RamdiskTar, out))
    }

    /// The tree as a directory; device nodes need privilege and are left out.
    fn dir(&self, v: &Variant) -> anyhow::Result<Made> {
        let dest = self.outdir.join(format!("{}.dir", v.stem));
        let (out, refused) = self.ui.step("dir", || archive::dir(&v.layers, &dest))?;
        if let [first, ..] = refused.as_slice() {
            self.ui.warn(&format!(
                "dir: {} extended attributes could not be set (run smelt as root to keep file capabilities), first {first}",
                refused.len()
            ));
        }
        if out.skipped > 0 {
            self.ui.warn(&format!(
                "dir: {} device nodes cannot be made without privilege and were left out",
                out.skipped
            ));
        }
        Ok(Made::Written(OutputKind::Dir, out))
    }

    /// The EFI binaries of what was written: UKIs, the loaders on bootable ISOs' ESPs and
    /// at the top of the netboot tree.
    fn efi_binaries(&self) -> anyhow::Result<Vec<EfiBinary>> {
        let mut found = Vec::new();
        for w in &self.produced.written {
            let (temp, dest) = (w.pending.temp_path(), w.pending.dest().display().to_string());
            if dest.ends_with(".efi") {
                found.push(EfiBinary { file: dest, identity: crate::efi::identify(&Pe::read(temp)?)? });
            } else if dest.ends_with(".iso") {
                for (path, identity) in self.loaders.iter().flat_map(|l| l.efi()) {
                    found.push(EfiBinary { file: format!("{dest}:/{path}"), identity: identity.clone() });
                }
            } else if dest.ends_with(".netboot") {
                let mut loaders: Vec<_> = std::fs::read_dir(temp)?
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "efi"))
                    .collect();
                loaders.sort();
                for p in loaders {
                    let file = format!("{dest}/{}", p.file_name().unwrap_or_default().to_string_lossy());
                    found.push(EfiBinary { file, identity: crate::efi::identify(&Pe::read(&p)?)? });
                }
            }
        }
        Ok(found)
    }

    fn record(&mut self, kind: OutputKind, out: Written) {
        let check = budget::check_output(&self.plan.budget, kind, out.bytes);
        self.produced.reports.push(OutputReport {
            kind: kind.name(),
            path: out.pending.dest().display().to_string(),
            bytes: out.bytes,
            sha256: out.sha256.clone(),
            budget: verdict(check.as_ref()),
        });
        self.produced.checks.extend(check);
        self.produced.written.push(out);
    }

    /// An output that was not written because its planned size is over budget.
    fn refuse(&mut self, kind: OutputKind, dest: &Path, bytes: u64, check: budget::Check) {
        self.produced.reports.push(OutputReport {
            kind: kind.name(),
            path: dest.display().to_string(),
            bytes,
            sha256: None,
            budget: verdict(Some(&check)),
        });
        self.produced.checks.push(check);
    }
}

fn verdict(check: Option<&budget::Check>) -> &'static str {
    match check {
        Some(c) if c.ok => "ok",
        Some(_) => "over",
        None => "unchecked",
    }
}

/// Says which extended attributes an archive that cannot carry them (newc, ISO 9660)
/// leaves out: a ramdisk runs as root, where a file capability is not needed.
pub fn dropped_xattrs(layers: &[&Tree], what: &str, ui: &Ui) {
    let all: Vec<String> = layers
        .iter()
        .flat_map(|t| t.with_xattrs())
        .map(|(path, x)| {
            let names: Vec<&str> = x.iter().map(|(n, _)| n.as_str()).collect();
            format!("{path} ({})", names.join(", "))
        })
        .collect();
    if all.is_empty() {
        return;
    }
    let more = if all.len() > 4 { format!(" and {} more", all.len() - 4) } else { String::new() };
    ui.info(&format!(
        "{what}: extended attributes cannot ride in it and are left out: {}{more} (the dir output keeps them)",
        all[..all.len().min(4)].join(", ")
    ));
}
