//! Staging: from resolved elements to the image tree, in diskimage-builder's order.
//!
//! 1. `root.d` hooks (host) build a base root, if any element has them;
//! 2. built-in bases, `root/` overlays, DIB source repositories and `templates/`,
//!    element by element, by reference;
//! 3. the remaining phases, on a materialised copy, only if any hook needs it, with
//!    each hook's additions, changes and removals attributed to its element;
//! 4. `[prune]`, `[[permissions]]`, `[[devices]]`.

pub mod changes;
pub mod hooks;
pub mod overlay;
pub mod prune;
pub mod sources;
pub mod template;

use std::fs;
use std::path::Path;

use anyhow::Context as _;
use serde_json::{json, Value};

use crate::builtin::Findings;
use crate::config::names::Named;
use crate::element::hooks::{Side, PHASES};
use crate::element::Origin;
use crate::namespace;
use crate::plan::Plan;
use crate::tree::Tree;
use crate::ui::Ui;
use hooks::run_phase;

/// Stages the image described by `plan` in `work` (a scratch directory).
/// What staging made: the tree, and what built-in elements found on the way.
pub struct Staged {
    pub tree: Tree,
    pub findings: Findings,
    /// The kernel the image installed, taken out of it (`kernel = "image"`).
    pub kernel: Option<crate::boot::ImageKernel>,
}

pub fn stage(plan: &Plan, work: &Path, ui: &Ui) -> anyhow::Result<Staged> {
    let mut findings = Findings::default();
    let mtime = plan.time;
    // `mnt` as in DIB, where TMP_MOUNT_PATH is `$TMP_BUILD_DIR/mnt` and hooks name it so.
    let root = work.join("mnt");
    fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    for w in &plan.hooks.warnings {
        ui.warn(w);
    }
    if plan.hooks.any_chroot() {
        let first = PHASES
            .iter()
            .filter(|(_, s)| *s == Side::Chroot)
            .find_map(|(p, _)| plan.hooks.phase(p).first())
            .expect("a chroot hook exists");
        namespace::available(plan.offline).map_err(|e| {
            anyhow::anyhow!(
                "element `{}` has {} hooks, which run inside the image: {e}",
                first.element,
                first.phase
            )
        })?;
    }
    // The hook environment (built-in elements written out, environment.d sourced) is
    // only made for images that have hooks.
    let env =
        if plan.hooks.by_phase.is_empty() { None } else { Some(hooks::env::hook_env(plan, work, &root)?) };

    let mut tree = Tree::default();
    if let Some(env) = &env {
        run_phase(plan, &mut tree, "root.d", env, ui, &mut findings)?;
    }

    let context = template_context(plan)?;
    for element in &plan.resolved.elements {
        let params = Value::Object(plan.params[&element.name].clone().into_iter().collect());
        let based = crate::builtin::apply(&mut tree, element, &params, plan, work, mtime, &mut findings)?;
        let overlaid = overlay::apply(&mut tree, element, mtime)? + sources::apply(&mut tree, element, work)?;
        let rendered = template::apply(&mut tree, element, &params, &context, mtime)?;
        ui.detail(&format!(
            "element {}: {}{overlaid} overlay entries, {rendered} templates",
            element.name,
            based.map_or(String::new(), |n| format!("{n} base entries, "))
        ));
    }

    if let Some(env) = env.as_ref().filter(|_| plan.hooks.any_after("root.d")) {
        changes::materialise(&mut tree, &root)?;
        for (phase, _) in &PHASES[1..] {
            run_phase(plan, &mut tree, phase, env, ui, &mut findings)?;
        }
    }

    let (pruned, bytes) = prune::prune(&mut tree, &plan.resolved.elements)?;
    if pruned > 0 {
        ui.detail(&format!("prune: removed {pruned} paths, {}", crate::config::size::human(bytes)));
    }
    prune::permissions(&mut tree, &plan.resolved.elements)?;
    prune::check_links(&tree)?;
    prune::devices(&mut tree, &plan.resolved.elements, mtime)?;
    let kernel = match plan.image.kernel {
        Some(crate::config::image::Kernel::Image) => {
            let k = crate::boot::take_image_kernel(&mut tree, work)?;
            ui.info(&format!(
                "kernel: the image's own, /boot/vmlinuz-{}; what /boot held is left out of the image ({})",
                k.release,
                crate::config::size::human(k.removed_bytes)
            ));
            Some(k)
        }
        _ => None,
    };
    Ok(Staged { tree, findings, kernel })
}

/// The files elements put under `iso/`: on an ISO beside the image, never in it.
pub fn iso_extras(plan: &Plan) -> anyhow::Result<Tree> {
    let mtime = plan.time;
    let mut tree = Tree::default();
    for element in &plan.resolved.elements {
        overlay::apply_iso(&mut tree, element, mtime)?;
    }
    Ok(tree)
}

fn template_context(plan: &Plan) -> anyhow::Result<template::Context> {
    let img = &plan.image;
    // Digesting reads every file of every element, as much again as the archive does: it
    // is done only when a template names `digest` (buildinfo's does; init's, in nearly
    // every image, does not).
    let wants_digests = plan
        .resolved
        .elements
        .iter()
        .flat_map(|e| e.files_under("templates"))
        .any(|(_, f)| names_digest(f).unwrap_or(true));
    let mut elements = Vec::new();
    for e in &plan.resolved.elements {
        let origin = if e.origin == Origin::BuiltIn { "built-in" } else { "path" };
        let digest = if wants_digests { e.digest()? } else { String::new() };
        elements.push((e.name.clone(), origin.to_string(), digest));
    }
    let mut base = serde_json::Map::new();
    base.insert(
        "image".into(),
        json!({
            "name": img.name,
            "elements": plan.resolved.names(),
            "outputs": img.outputs.iter().map(|o| o.name()).collect::<Vec<_>>(),
            "compression": img.compression,
            "cmdline": img.cmdline,
            "iso_label": img.iso_label,
        }),
    );
    base.insert("client".into(), plan.client.clone());
    base.insert("nodes".into(), Value::Array(plan.nodes.clone()));
    base.insert("build".into(), template::build_info(plan.time, &elements));
    Ok(template::Context { base, nodes: plan.nodes.clone() })
}

/// Whether a template file's text names `digest` (unreadable: taken as yes).
fn names_digest(file: &crate::element::ElementFile) -> std::io::Result<bool> {
    let crate::element::FileKind::File(source) = &file.kind else { return Ok(false) };
    let mut text = String::new();
    std::io::Read::read_to_string(&mut source.open()?, &mut text)?;
    Ok(text.contains("digest"))
}
