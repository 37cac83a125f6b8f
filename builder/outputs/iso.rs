//! The `iso` output: a data ISO of the image's tree (its files, as a BMC's virtual
//! media or a config disk carries them), or with a kernel a bootable one — BIOS, UEFI
//! and USB from one file — carrying the kernel, the initramfs and the loaders
//! ([`super::bootable`]); with the elements' `iso/` files beside them either way.

use std::borrow::Cow;
use std::path::Path;

use super::{Made, Outputs};
use crate::archive::iso;
use crate::budget;
use crate::config::image::OutputKind;
use crate::outputs::variants::Variant;
use crate::path::ImagePath;
use crate::plan::Plan;
use crate::tree::{Entry, Tree};
use crate::ui::Verbosity;

impl Outputs<'_> {
    /// A data ISO of the variant's tree, or with a kernel a bootable one carrying the
    /// initramfs. Laid out and checked against the budget before its data is written.
    pub(super) fn iso(&self, v: &Variant, initramfs: Option<&Path>) -> anyhow::Result<Made> {
        let (plan, ui, work) = (self.plan, self.ui, self.work);
        let epoch = plan.time;
        let extras = self.iso_extras.expect("made for ISOs");
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
                super::dropped_xattrs(&v.layers, "iso", ui);
                let start_up = start_up_elements(plan);
                let data: Vec<Cow<Tree>> = v.layers.iter().map(|l| data_iso_part(l, &start_up)).collect();
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
}

/// The elements whose entries start a ramdisk (`/init` and its device nodes).
fn start_up_elements(plan: &Plan) -> Vec<&str> {
    plan.builtins.iter().filter(|(_, b)| b.starts_ramdisk()).map(|(name, _)| name).collect()
}

/// What a data ISO carries of a tree: all of it but the ramdisk's start-up, which
/// nothing reading the ISO as files can use — what the `start_up` elements put there
/// (`/init`, its device nodes) and the start-up steps in `/etc/smelt/init.d`. Device
/// nodes other elements declare stay. Borrowed when there is nothing to leave out.
fn data_iso_part<'t>(tree: &'t Tree, start_up: &[&str]) -> Cow<'t, Tree> {
    let steps = ImagePath::new(INIT_STEPS).expect("valid");
    let starts = |p: &ImagePath, e: &Entry| start_up.contains(&e.element.as_ref()) || p.starts_with(&steps);
    if !tree.iter().any(|(p, e)| starts(&p, &e)) {
        return Cow::Borrowed(tree);
    }
    let mut data = tree.clone();
    data.retain(|p, e| !starts(p, e));
    Cow::Owned(data)
}

/// Where elements put their start-up steps (see the `init` element).
const INIT_STEPS: &str = "etc/smelt/init.d";

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
