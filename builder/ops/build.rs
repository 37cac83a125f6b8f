//! `smelt build`: plan, stage, measure, check the budget, write every output under a
//! temporary name, and publish them only when all are within budget.

use std::path::PathBuf;

use std::io::Write;

use anyhow::{bail, Context as _};

use crate::archive::{self, Written};
use crate::budget::{self, OverBudget};
use crate::config::image::OutputKind;
use crate::io::atomic::Pending;
use crate::plan::{self, Inputs, Plan};
use crate::report::{self, BudgetReport, Largest, OutputReport, Report};
use crate::stage::{self, hooks::HookFailed, tree::Tree};
use crate::ui::Ui;

pub struct BuildOptions {
    pub inputs: Inputs,
    pub outdir: PathBuf,
    pub per_node: bool,
}

pub fn build(opts: &BuildOptions, ui: &Ui) -> anyhow::Result<Report> {
    let plan = ui.step("plan", || plan::make(&opts.inputs))?;
    refuse_unbuilt(&plan, opts)?;
    std::fs::create_dir_all(&opts.outdir).with_context(|| format!("creating {}", opts.outdir.display()))?;
    let work = tempfile::Builder::new()
        .prefix(".smelt-work-")
        .tempdir_in(&opts.outdir)
        .with_context(|| format!("creating a work directory in {}", opts.outdir.display()))?;

    let tree = match ui.step("stage", || stage::stage(&plan, work.path(), ui)) {
        Ok(tree) => tree,
        Err(e) if e.downcast_ref::<HookFailed>().is_some() => {
            let kept = work.keep();
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
    };
    // Tree limits fail fast: no output is written when the tree alone is over.
    if checks.iter().any(|c| !c.ok) {
        return over_budget(report, checks, &plan);
    }

    let mut written: Vec<(OutputKind, Written)> = Vec::new();
    for kind in &plan.image.outputs {
        let out = ui.step(kind.name(), || write_output(*kind, &plan, &tree, opts, ui))?;
        if out.skipped > 0 {
            ui.warn(&format!(
                "{}: {} device nodes cannot be created without privilege and were left out",
                kind.name(),
                out.skipped
            ));
        }
        let check = budget::check_output(&plan.budget, *kind, out.bytes);
        report.outputs.push(OutputReport {
            kind: kind.name(),
            path: out.pending.dest().display().to_string(),
            bytes: out.bytes,
            sha256: out.sha256.clone(),
            budget: match &check {
                Some(c) if c.ok => "ok",
                Some(_) => "over",
                None => "unchecked",
            },
        });
        checks.extend(check);
        written.push((*kind, out));
    }
    if checks.iter().any(|c| !c.ok) {
        return over_budget(report, checks, &plan);
    }
    report.budget.checks = checks;
    for (_, out) in written {
        out.pending.publish()?;
    }
    write_report(&report, &tree, opts)?;
    ui.info(&format!("\n{}", report.table()));
    Ok(report)
}

fn write_output(
    kind: OutputKind,
    plan: &Plan,
    tree: &Tree,
    opts: &BuildOptions,
    ui: &Ui,
) -> anyhow::Result<Written> {
    let name = &plan.image.name;
    match kind {
        OutputKind::Initramfs => {
            let compression = plan.image.compression;
            let dest = opts.outdir.join(format!("{name}.cpio{}", compression.suffix()));
            let bar = ui.bytes_bar(tree.iter().map(|(_, e)| e.size()).sum(), "initramfs");
            let out = archive::initramfs(tree, plan.epoch, compression, &dest, |n| bar.inc(n));
            bar.finish_and_clear();
            out
        }
        OutputKind::Dir => archive::dir(tree, &opts.outdir.join(format!("{name}.dir"))),
        other => bail!("output `{}` is not built by this version of smelt yet", other.name()),
    }
}

/// Outputs and modes this version cannot make are refused before any work is done.
fn refuse_unbuilt(plan: &Plan, opts: &BuildOptions) -> anyhow::Result<()> {
    if opts.per_node {
        if plan.nodes.is_empty() {
            bail!("--per-node needs a client inventory with nodes: add --client CLIENT.toml");
        }
        bail!("--per-node images are not built by this version of smelt yet; build one image for the whole client");
    }
    for kind in &plan.image.outputs {
        if !matches!(kind, OutputKind::Initramfs | OutputKind::Dir) {
            bail!(
                "output `{}` (in {}) is not built by this version of smelt yet; remove it from [image] outputs",
                kind.name(),
                plan.image.file.display()
            );
        }
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
