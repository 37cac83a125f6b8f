//! `smelt build`: plan, stage, measure, check the budget, write every output under a
//! temporary name, and publish them only when all are within budget.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use crate::archive::{self, iso, ramdisk_tar, Written};
use crate::boot;
use crate::budget::{self, OverBudget};
use crate::config::budget::Budget;
use crate::config::image::OutputKind;
use crate::config_drive;
use crate::io::atomic::{Pending, Scratch};
use crate::io::outdir::OutDir;
use crate::path::ImagePath;
use crate::plan::{self, Inputs, Plan};
use crate::report::{self, BudgetReport, Largest, OutputReport, Report};
use crate::stage::{self, hooks::HookFailed};
use crate::tree::{Entry, Tree};
use crate::ui::{Ui, Verbosity};

pub struct BuildOptions {
    pub inputs: Inputs,
    pub outdir: PathBuf,
    pub per_node: bool,
}

pub fn build(opts: &BuildOptions, ui: &Ui) -> anyhow::Result<Report> {
    let started = std::time::Instant::now();
    let plan = ui.step("plan", || plan::make(&opts.inputs))?;
    refuse_unbuilt(&plan, opts)?;
    let outdir = OutDir::claim(&opts.outdir, &["config-drive"])?;
    if !outdir.swept.is_empty() {
        let names: Vec<String> = outdir.swept.iter().map(|p| p.display().to_string()).collect();
        ui.info(&format!("smelt: removed what stopped builds left: {}", names.join(", ")));
    }
    let work = Scratch::new(&opts.outdir, "smelt-work")?;

    let tree = match ui.step("stage", || stage::stage(&plan, work.path(), ui)) {
        Ok(tree) => tree,
        Err(e) if e.downcast_ref::<HookFailed>().is_some() => {
            // The hook's log moves with the tree it is in.
            let at = work.path().display().to_string();
            let kept = work.keep(&opts.outdir.join("smelt-failed"))?;
            let e = e.to_string().replace(&at, &kept.display().to_string());
            bail!("{e}\n  the staging tree and logs are kept in {} (remove it when done)", kept.display());
        }
        Err(e) => return Err(e),
    };
    let measure = ui.step("measure", || Ok(budget::measure(&tree)))?;
    let mut checks = budget::check_tree(&plan.budget, &tree, &measure, &plan.image.outputs);
    let mut report = Report {
        image: plan.image.name.clone(),
        smelt_version: env!("CARGO_PKG_VERSION"),
        source_date_epoch: plan.epoch,
        outputs: Vec::new(),
        largest: budget::largest(&tree, 20)
            .into_iter()
            .map(|(path, bytes, element)| Largest { path, bytes, element })
            .collect(),
        tree: measure,
        budget: BudgetReport { source: plan.budget.source_name(), checks: Vec::new() },
        certificates: report::certificates(&tree),
        secrets: secrets(&plan, &tree, ui),
    };
    // Tree limits fail fast: no output is written when the tree alone is over.
    if checks.iter().any(|c| !c.ok) {
        return over_budget(report, checks, &plan);
    }

    let mut parts = None;
    let variants = variants(&plan, &tree, opts.per_node, &mut parts);
    let produced = write_outputs(&plan, &variants, opts, work.path(), ui)?;
    report.outputs = produced.reports;
    checks.extend(produced.checks);
    if checks.iter().any(|c| !c.ok) {
        return over_budget(report, checks, &plan);
    }
    report.budget.checks = checks;
    for out in produced.written {
        out.pending.publish()?;
    }
    write_report(&report, &tree, opts)?;
    let outputs = report.outputs.len();
    ui.info(&format!(
        "smelt: built {} ({} output{}) in {:.1} s\n\n{}",
        plan.image.name,
        outputs,
        if outputs == 1 { "" } else { "s" },
        started.elapsed().as_secs_f64(),
        report.table()
    ));
    Ok(report)
}

/// What writing the outputs produced: files waiting to be published, their report
/// lines, and their budget checks.
#[derive(Default)]
struct Produced {
    written: Vec<Written>,
    reports: Vec<OutputReport>,
    checks: Vec<budget::Check>,
}

impl Produced {
    fn record(&mut self, kind: OutputKind, out: Written, budget: &Budget) {
        let check = budget::check_output(budget, kind, out.bytes);
        self.reports.push(OutputReport {
            kind: kind.name(),
            path: out.pending.dest().display().to_string(),
            bytes: out.bytes,
            sha256: out.sha256.clone(),
            budget: verdict(check.as_ref()),
        });
        self.checks.extend(check);
        self.written.push(out);
    }

    /// An output that was not written because its planned size is over budget.
    fn refuse(&mut self, kind: OutputKind, dest: &Path, bytes: u64, check: budget::Check) {
        self.reports.push(OutputReport {
            kind: kind.name(),
            path: dest.display().to_string(),
            bytes,
            sha256: None,
            budget: verdict(Some(&check)),
        });
        self.checks.push(check);
    }
}

fn verdict(check: Option<&budget::Check>) -> &'static str {
    match check {
        Some(c) if c.ok => "ok",
        Some(_) => "over",
        None => "unchecked",
    }
}

/// One image to write: the stem of its file names and the trees it is made of — the
/// whole image, or (per node) the part every node shares and then the node's own.
struct Variant<'t> {
    stem: String,
    layers: Vec<&'t Tree>,
}

/// The variants a build writes: one image, or one per node of the client, each made of
/// the shared part and the node's part (with `/etc/smelt/node` naming the node).
fn variants<'t>(
    plan: &Plan,
    tree: &'t Tree,
    per_node: bool,
    parts: &'t mut Option<(Tree, BTreeMap<String, Tree>)>,
) -> Vec<Variant<'t>> {
    if !per_node {
        return vec![Variant { stem: plan.image.name.clone(), layers: vec![tree] }];
    }
    let names: Vec<String> =
        plan.inventory.iter().flat_map(|c| c.nodes.iter().map(|n| n.name.clone())).collect();
    let epoch = plan.time;
    let (shared, mut by_node) = tree.split_by_node(&names, |n| {
        ImagePath::new(&format!("{}/{n}", crate::network::NETWORK_DIR)).expect("valid")
    });
    for (name, part) in by_node.iter_mut() {
        let stamp = ImagePath::new("etc/smelt/node").expect("valid");
        for dir in ["etc", "etc/smelt"] {
            let at = ImagePath::new(dir).expect("valid");
            if let Some(e) = tree.get(&at) {
                part.insert(&at, e.clone()).expect("a directory");
            }
        }
        part.insert(&stamp, Entry::bytes(format!("{name}\n").into_bytes(), 0o644, epoch, "smelt"))
            .expect("a file");
    }
    *parts = Some((shared, by_node));
    let (shared, by_node) = parts.as_ref().expect("just set");
    names
        .iter()
        .map(|n| Variant { stem: format!("{}-{n}", plan.image.name), layers: vec![shared, &by_node[n]] })
        .collect()
}

/// Writes every output of every variant under a temporary name, in dependency order:
/// the initramfs first (a bootable ISO and the ramdisk tarball carry it), then the
/// rest. Per node, the shared part is compressed once and each node's small archive is
/// appended to it, as the kernel unpacks archives back to back. An ISO is laid out on
/// one thread while it is written on another; one over budget stops as its write starts.
fn write_outputs(
    plan: &Plan,
    variants: &[Variant],
    opts: &BuildOptions,
    work: &Path,
    ui: &Ui,
) -> anyhow::Result<Produced> {
    let wants = |kind| plan.image.outputs.contains(&kind);
    let kernel = plan.image.kernel.as_ref().map(boot::kernel_path).transpose()?;
    let epoch = plan.time;
    let compression = plan.image.compression;
    let extras = if wants(OutputKind::Iso) { Some(stage::iso_extras(plan)?) } else { None };
    let mut produced = Produced::default();
    let needs_initramfs = wants(OutputKind::Initramfs)
        || wants(OutputKind::RamdiskTar)
        || (wants(OutputKind::Iso) && kernel.is_some());
    let mut shared_archive: Option<(Written, archive::SharedPart)> = None;
    // Every bootable ISO of the build shares its loaders: made for the first one.
    let mut loaders: Option<boot::Loaders> = None;

    for v in variants {
        let stem = &v.stem;
        let mut scratch = None;
        let mut initramfs: Option<PathBuf> = None;
        if needs_initramfs {
            let file = format!("{stem}.cpio{}", compression.suffix());
            let dest = if wants(OutputKind::Initramfs) { opts.outdir.join(&file) } else { work.join(&file) };
            let out = match v.layers.as_slice() {
                [whole] => {
                    let bar = ui.bytes_bar(whole.iter().map(|(_, e)| e.size()).sum(), "initramfs");
                    let out = ui.step("initramfs", || {
                        archive::initramfs(whole, plan.epoch, compression, &dest, |n| bar.inc(n))
                    })?;
                    bar.finish_and_clear();
                    out
                }
                [shared, own] => {
                    if shared_archive.is_none() {
                        let at = work.join(format!("shared.cpio{}", compression.suffix()));
                        let written = ui.step("shared", || {
                            archive::initramfs(shared, plan.epoch, compression, &at, |_| {})
                        })?;
                        let part = archive::SharedPart::new(written.pending.temp_path())?;
                        shared_archive = Some((written, part));
                    }
                    let own_at = work.join(format!("{stem}.own.cpio{}", compression.suffix()));
                    let own = archive::initramfs(own, plan.epoch, compression, &own_at, |_| {})?;
                    let (_, shared) = shared_archive.as_ref().expect("made above");
                    ui.step(stem, || shared.then(own.pending.temp_path(), &dest))?
                }
                _ => unreachable!("a variant has one or two layers"),
            };
            initramfs = Some(out.pending.temp_path().to_path_buf());
            if wants(OutputKind::Initramfs) {
                produced.record(OutputKind::Initramfs, out, &plan.budget);
            } else {
                scratch = Some(out);
            }
        }

        for kind in &plan.image.outputs {
            match kind {
                OutputKind::Initramfs => {}
                OutputKind::Iso => {
                    let extras = extras.as_ref().expect("made for ISOs");
                    let image = ui.step("iso tree", || match (&kernel, &initramfs) {
                        (Some(kernel), Some(initramfs)) => {
                            if loaders.is_none() {
                                loaders = Some(boot::Loaders::prepare(&plan.image, work)?);
                            }
                            let loaders = loaders.as_ref().expect("prepared above");
                            let iso_tree = loaders.iso_tree(kernel, initramfs, extras, epoch)?;
                            iso::prepare(
                                &[&iso_tree],
                                &plan.image.iso_label,
                                epoch,
                                Some(loaders.boot()),
                                &work.join("iso-spill"),
                            )
                        }
                        _ => {
                            let mut layers = v.layers.clone();
                            layers.push(extras);
                            iso::prepare(&layers, &plan.image.iso_label, epoch, None, &work.join("iso-spill"))
                        }
                    })?;
                    let dest = opts.outdir.join(format!("{stem}.iso"));
                    let check = |size| budget::check_output(&plan.budget, OutputKind::Iso, size);
                    let limit = check(0).map(|c| c.limit);
                    let (layout, out) = ui.step("iso", || image.write(&dest, limit))?;
                    for line in summarize(&layout.warnings, ui.verbosity == Verbosity::Verbose) {
                        ui.warn(&format!("iso: {line}"));
                    }
                    match out {
                        Some(out) => produced.record(OutputKind::Iso, out, &plan.budget),
                        // Failed fast: the layout gave the size, and the write stopped.
                        None => produced.refuse(
                            OutputKind::Iso,
                            &dest,
                            layout.size,
                            check(layout.size).expect("refused for its budget"),
                        ),
                    }
                }
                OutputKind::RamdiskTar => {
                    let (Some(kernel), Some(initramfs)) = (&kernel, &initramfs) else {
                        bail!("output `ramdisk-tar` needs a kernel: set kernel = \"auto\" or a vmlinuz path in [image]");
                    };
                    let dest = opts.outdir.join(format!("{stem}.tar"));
                    let out =
                        ui.step("ramdisk-tar", || ramdisk_tar::write(stem, kernel, initramfs, epoch, &dest))?;
                    produced.record(OutputKind::RamdiskTar, out, &plan.budget);
                }
                OutputKind::Dir => {
                    let out =
                        ui.step("dir", || archive::dir(&v.layers, &opts.outdir.join(format!("{stem}.dir"))))?;
                    if out.skipped > 0 {
                        ui.warn(&format!(
                            "dir: {} device nodes cannot be made without privilege and were left out",
                            out.skipped
                        ));
                    }
                    produced.record(OutputKind::Dir, out, &plan.budget);
                }
                // One per node, after the images.
                OutputKind::ConfigDrive => {}
            }
        }
        drop(scratch);
    }
    if wants(OutputKind::ConfigDrive) {
        let client = plan.inventory.as_ref().expect("checked before building");
        let dir = opts.outdir.join("config-drive");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for node in &plan.nodes {
            let name = node["name"].as_str().unwrap_or("");
            let tree = config_drive::tree(client, &plan.client, node, &plan.resolved.elements, epoch)?;
            let out = ui.step("config-drive", || {
                config_drive::write(&tree, epoch, &dir.join(format!("{name}.iso")), &work.join("iso-spill"))
            })?;
            produced.record(OutputKind::ConfigDrive, out, &plan.budget);
        }
    }
    // Report outputs in the order the image lists them, whatever order they were made in.
    produced.reports.sort_by_key(|r| plan.image.outputs.iter().position(|k| k.name() == r.kind));
    Ok(produced)
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

/// The secrets of the tree, each unexpected one warned about (path, kind, element).
fn secrets(plan: &Plan, tree: &Tree, ui: &Ui) -> Vec<crate::secrets::Secret> {
    let dev_user = plan.resolved.get("dev-user").and_then(|_| plan.params["dev-user"].get("name")?.as_str());
    let expected = crate::secrets::Expected { dev_user, allow: &plan.image.secrets_allow };
    let found = crate::secrets::find(tree, &expected);
    for s in found.iter().filter(|s| !s.expected) {
        let what = match s.kind {
            crate::secrets::SecretKind::PrivateKey => "a private key",
            crate::secrets::SecretKind::SshHostKey => "an SSH host key",
            crate::secrets::SecretKind::PasswordHash => "password hashes",
        };
        ui.warn(&format!(
            "{} holds {what} (mode {}, from element `{}`){}; remove it, or list it in [secrets] allow in {} if it \
             is meant to be there",
            s.path,
            s.mode,
            s.element,
            s.note.as_ref().map_or(String::new(), |n| format!(": {n}")),
            plan.image.file.display()
        ));
    }
    found
}

/// Outputs that need a client inventory are refused without one, before any work.
fn refuse_unbuilt(plan: &Plan, opts: &BuildOptions) -> anyhow::Result<()> {
    if opts.per_node && plan.nodes.is_empty() {
        bail!("--per-node needs a client inventory with nodes: add --client CLIENT.toml");
    }
    if plan.image.outputs.contains(&OutputKind::ConfigDrive) && plan.nodes.is_empty() {
        bail!(
            "output `config-drive` (in {}) makes one drive per node: add --client CLIENT.toml with its nodes",
            plan.image.file.display()
        );
    }
    Ok(())
}

fn over_budget(mut report: Report, checks: Vec<budget::Check>, plan: &Plan) -> anyhow::Result<Report> {
    let violations: Vec<_> = checks.iter().filter(|c| !c.ok).cloned().collect();
    report.budget.checks = checks;
    eprintln!("{}", report.table());
    Err(OverBudget { violations, budget_file: plan.budget.source_name() }.into())
}

fn write_report(report: &Report, tree: &Tree, opts: &BuildOptions) -> anyhow::Result<()> {
    let pending = Pending::new(&opts.outdir.join("report.json"));
    let mut out = std::io::BufWriter::new(pending.create_file()?);
    let doc = report::Document { report, entries: report::Listing(tree) };
    serde_json::to_writer_pretty(&mut out, &doc).context("writing report.json")?;
    out.write_all(b"\n")?;
    out.into_inner().map_err(|e| e.into_error()).context("writing report.json")?;
    pending.publish()
}
