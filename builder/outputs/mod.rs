//! Writing a build's outputs, one function per kind over one [`Outputs`] context: every
//! output of every variant (see [`variants`]) goes under a temporary name, with its
//! report line and budget check, for the build to publish only when all are within
//! budget. Per node, variants are written on every core, and recorded in their order. The initramfs comes first, since a bootable ISO, the ramdisk tarball and the
//! network-boot tree carry it; the network-boot tree (all variants' initramfs) and
//! config drives, one per node, come last.

mod checksums;
pub mod variants;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use crate::archive::{self, iso, ramdisk_tar, Written};
use crate::boot;
use crate::budget;
use crate::config::image::OutputKind;
use crate::config::names::Named;
use crate::config_drive;
use crate::netboot;
use crate::plan::Plan;
use crate::report::OutputReport;
use crate::tree::Tree;
use crate::ui::{Ui, Verbosity};
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
}

/// What every output of a build shares, and what is made once for all variants.
struct Outputs<'a> {
    plan: &'a Plan,
    outdir: &'a Path,
    work: &'a Path,
    ui: &'a Ui,
    kernel: Option<PathBuf>,
    /// The files elements put under `iso/`, made when the image has an ISO.
    iso_extras: Option<Tree>,
    /// Boot loaders of bootable ISOs: made for the first, shared by the rest.
    loaders: Option<boot::Loaders>,
    /// Per node: the shared part's archive, compressed once, that each node's own
    /// small archive is appended to.
    shared: Option<(Written, archive::SharedPart)>,
    produced: Produced,
}

/// Writes every output of every variant of `plan` under a temporary name.
pub fn write(
    plan: &Plan,
    image_kernel: Option<&Path>,
    variants: &[Variant],
    outdir: &Path,
    work: &Path,
    ui: &Ui,
) -> anyhow::Result<Produced> {
    let wants = |kind| plan.image.outputs.contains(&kind);
    let kernel = match image_kernel {
        Some(k) => Some(k.to_path_buf()),
        None => plan.image.kernel.as_ref().map(boot::kernel_path).transpose()?,
    };
    let needs_initramfs = wants(OutputKind::Initramfs)
        || wants(OutputKind::RamdiskTar)
        || wants(OutputKind::Netboot)
        || (wants(OutputKind::Iso) && kernel.is_some());
    // What every variant shares, made once before any is written.
    let loaders = match (&kernel, wants(OutputKind::Iso)) {
        (Some(_), true) => Some(boot::Loaders::prepare(&plan.image, work)?),
        _ => None,
    };
    let shared = match variants.first().map(|v| v.layers.as_slice()) {
        Some([shared, _]) if needs_initramfs => {
            let compression = plan.image.compression;
            let at = work.join(format!("shared.cpio{}", compression.suffix()));
            let written =
                ui.step("shared", || archive::initramfs(shared, plan.epoch, compression, &at, |_| {}))?;
            let part = archive::SharedPart::new(written.pending.temp_path())?;
            Some((written, part))
        }
        _ => None,
    };
    let mut out = Outputs {
        plan,
        outdir,
        work,
        ui,
        kernel,
        iso_extras: if wants(OutputKind::Iso) { Some(crate::stage::iso_extras(plan)?) } else { None },
        loaders,
        shared,
        produced: Produced::default(),
    };
    // Every variant's initramfs, for the network-boot tree; those that are not an output
    // themselves are kept (and removed when dropped) until it is written.
    let mut for_netboot: Vec<(Option<&str>, PathBuf)> = Vec::new();
    let mut carried: Vec<Written> = Vec::new();
    let mut made_all: Vec<(&Variant, VariantMade)> = Vec::new();
    // One variant a job: two nodes' images are written at once on two cores (hashing
    // each output is most of the work), and recorded in the inventory's order; the
    // first failure stops the rest.
    crate::io::ahead::map_in_batches(
        1,
        variants.iter(),
        |v| out.variant(v, needs_initramfs).map(|made| (v, made)),
        |made| {
            made_all.push(made?);
            Ok::<(), anyhow::Error>(())
        },
    )?;
    for (v, made) in made_all {
        let VariantMade { initramfs, outputs } = made;
        for m in outputs {
            match m {
                Made::Written(kind, written) => out.record(kind, written),
                Made::Refused { kind, dest, bytes, check } => out.refuse(kind, &dest, bytes, check),
            }
        }
        let Some(initramfs) = initramfs else { continue };
        if wants(OutputKind::Netboot) {
            for_netboot.push((v.node, initramfs.pending.temp_path().to_path_buf()));
        }
        // Recorded as an output, or dropped (and so removed) once nothing carries it.
        if wants(OutputKind::Initramfs) {
            out.record(OutputKind::Initramfs, initramfs);
        } else if wants(OutputKind::Netboot) {
            carried.push(initramfs);
        }
    }
    if wants(OutputKind::Netboot) {
        out.netboot(&for_netboot)?;
    }
    drop(carried);
    if wants(OutputKind::ConfigDrive) {
        out.config_drives()?;
    }
    let mut produced = out.produced;
    produced.checksum_files = checksums::sidecars(&produced.written, &plan.image.checksums)?;
    // Report outputs in the order the image lists them, whatever order they were made in.
    produced.reports.sort_by_key(|r| plan.image.outputs.iter().position(|k| k.name() == r.kind));
    Ok(produced)
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

impl Outputs<'_> {
    fn wants(&self, kind: OutputKind) -> bool {
        self.plan.image.outputs.contains(&kind)
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

    /// A data ISO of the variant's tree, or with a kernel a bootable one carrying the
    /// initramfs. Laid out and checked against the budget before its data is written.
    fn iso(&self, v: &Variant, initramfs: Option<&Path>) -> anyhow::Result<Made> {
        let (plan, ui, work) = (self.plan, self.ui, self.work);
        let epoch = plan.time;
        let extras = self.iso_extras.as_ref().expect("made for ISOs");
        // Its own: two variants' ISOs may be prepared at once.
        let spill = work.join(format!("iso-spill-{}", v.stem));
        let image = match (&self.kernel, initramfs) {
            (Some(kernel), Some(initramfs)) => {
                let loaders = self.loaders.as_ref().expect("prepared for a bootable ISO");
                ui.step("iso tree", || {
                    let iso_tree = loaders.iso_tree(kernel, initramfs, extras, epoch)?;
                    iso::prepare(
                        &[&iso_tree],
                        &plan.image.iso_label,
                        epoch,
                        Some(loaders.boot()),
                        iso::FileCompression::None,
                        &spill,
                    )
                })?
            }
            _ => ui.step("iso tree", || {
                let data: Vec<std::borrow::Cow<Tree>> = v.layers.iter().map(|l| data_iso_part(l)).collect();
                let mut layers: Vec<&Tree> = data.iter().map(|c| c.as_ref()).collect();
                layers.push(extras);
                iso::prepare(&layers, &plan.image.iso_label, epoch, None, plan.image.iso_compression, &spill)
            })?,
        };
        let dest = self.outdir.join(format!("{}.iso", v.stem));
        let check = |size| budget::check_output(&plan.budget, OutputKind::Iso, size);
        let limit = check(0).map(|c| c.limit);
        let (layout, out) = ui.step("iso", || image.write(&dest, limit))?;
        for line in summarize(&layout.warnings, ui.verbosity == Verbosity::Verbose) {
            ui.warn(&format!("iso: {line}"));
        }
        Ok(match out {
            Some(out) => Made::Written(OutputKind::Iso, out),
            // Failed fast: the layout gave the size, and the write stopped.
            None => {
                let check = check(layout.size).expect("refused for its budget");
                Made::Refused { kind: OutputKind::Iso, dest, bytes: layout.size, check }
            }
        })
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
        let out = self.ui.step("dir", || archive::dir(&v.layers, &dest))?;
        if out.skipped > 0 {
            self.ui.warn(&format!(
                "dir: {} device nodes cannot be made without privilege and were left out",
                out.skipped
            ));
        }
        Ok(Made::Written(OutputKind::Dir, out))
    }

    /// `NAME.netboot/`: the loaders, the kernel, every variant's initramfs and the
    /// per-MAC configs that boot each node with its own (see [`netboot`]).
    fn netboot(&mut self, initramfs: &[(Option<&str>, PathBuf)]) -> anyhow::Result<()> {
        let Some(kernel) = &self.kernel else {
            bail!(
                "output `netboot` needs a kernel: set kernel = \"auto\", \"image\" or a vmlinuz path in [image]"
            );
        };
        let (plan, work) = (self.plan, self.work);
        let parts: Vec<netboot::Initramfs> =
            initramfs.iter().map(|(node, path)| netboot::Initramfs { node: *node, path }).collect();
        let tree = self.ui.step("netboot tree", || {
            let loaders = netboot::Loaders::find(work)?;
            netboot::tree(plan, &loaders, kernel, &parts, plan.time)
        })?;
        let dest = self.outdir.join(format!("{}.netboot", plan.image.name));
        let out = self.ui.step("netboot", || archive::dir(&[&tree], &dest))?;
        self.record(OutputKind::Netboot, out);
        Ok(())
    }

    /// `config-drive/NODE.iso` for every node of the client.
    fn config_drives(&mut self) -> anyhow::Result<()> {
        let plan = self.plan;
        let client = plan.inventory.as_ref().expect("checked before building");
        let dir = self.outdir.join("config-drive");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let spill = self.work.join("iso-spill");
        for node in &plan.nodes {
            let name = node["name"].as_str().unwrap_or_default();
            let tree = config_drive::tree(client, &plan.client, node, &plan.resolved.elements, plan.time)?;
            let dest = dir.join(format!("{name}.iso"));
            let out =
                self.ui.step("config-drive", || config_drive::write(&tree, plan.time, &dest, &spill))?;
            self.record(OutputKind::ConfigDrive, out);
        }
        Ok(())
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

/// What a data ISO carries of a tree: all of it but the ramdisk's start-up, which
/// nothing reading the ISO as files can use — what the `init` element put there
/// (`/init`, its device nodes) and the start-up steps in `/etc/smelt/init.d`. Device
/// nodes other elements declare stay. Borrowed when there is nothing to leave out.
fn data_iso_part(tree: &Tree) -> std::borrow::Cow<'_, Tree> {
    let steps = crate::path::ImagePath::new(INIT_STEPS).expect("valid");
    let start_up =
        |p: &crate::path::ImagePath, e: &crate::tree::Entry| e.element == "init" || p.starts_with(&steps);
    if !tree.iter().any(|(p, e)| start_up(&p, &e)) {
        return std::borrow::Cow::Borrowed(tree);
    }
    let mut data = tree.clone();
    data.retain(|p, e| !start_up(p, e));
    std::borrow::Cow::Owned(data)
}

/// Where elements put their start-up steps (see the `init` element).
const INIT_STEPS: &str = "etc/smelt/init.d";

fn verdict(check: Option<&budget::Check>) -> &'static str {
    match check {
        Some(c) if c.ok => "ok",
        Some(_) => "over",
        None => "unchecked",
    }
}

/// ISO warnings grouped by kind, in the order first seen: a real tree can raise
/// thousands (every long Joliet name), so each kind prints its count and a few paths,
/// or every path with `-v`.
fn summarize(warnings: &[iso::Warning], every_path: bool) -> Vec<String> {
    let mut kinds: Vec<(&str, Vec<&str>)> = Vec::new();
    for w in warnings {
        let at = match kinds.iter().position(|(what, _)| *what == w.what) {
            Some(i) => i,
            None => {
                kinds.push((&w.what, Vec::new()));
                kinds.len() - 1
            }
        };
        kinds[at].1.extend(w.path.as_deref());
    }
    let shown = if every_path { usize::MAX } else { 3 };
    kinds
        .into_iter()
        .map(|(what, paths)| match paths.len() {
            0 => what.to_string(),
            n => {
                let listed = paths.iter().take(shown).copied().collect::<Vec<_>>().join(", ");
                let more = if n > shown {
                    format!(", and {} more (-v lists them)", n - shown)
                } else {
                    String::new()
                };
                format!("{what}: {n} path{}: {listed}{more}", if n == 1 { "" } else { "s" })
            }
        })
        .collect()
}
