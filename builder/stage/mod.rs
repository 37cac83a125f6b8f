//! Staging: from resolved elements to the image tree, in diskimage-builder's order.
//!
//! 1. `root.d` hooks (host) build a base root, if any element has them;
//! 2. built-in bases, `root/` overlays, DIB source repositories and `templates/`,
//!    element by element, by reference;
//! 3. the remaining phases, on a materialised copy, only if any hook needs it, with
//!    each hook's additions, changes and removals attributed to its element;
//! 4. `[prune]`, `[[permissions]]`, `[[devices]]`;
//! 5. for `kernel = "image"`, the kernel taken out of the image; for an ISO, the files
//!    elements put beside the image (`iso/`).

pub mod changes;
pub mod hooks;
pub mod overlay;
pub mod prune;
pub mod repos;
pub mod sources;
pub mod template;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::{json, Value};

use crate::builtin;
use crate::config::image::{OutputKind, SecureBoot};
use crate::config::names::Named;
use crate::element::hooks::{Side, PHASES};
use crate::element::Origin;
use crate::findings::Findings;
use crate::kernel;
use crate::namespace;
use crate::plan::Plan;
use crate::tree::Tree;
use crate::ui::Ui;
use hooks::run_phase;

/// What staging made: the tree, what built-in elements found (trims, kits), the kernel the
/// outputs boot, and for an image with an ISO the files elements put beside it.
pub struct Staged {
    pub tree: Tree,
    pub found: Findings,
    /// The kernel file: the planned one on the host, or the one the image installed,
    /// taken out of it (`kernel = "image"`).
    pub kernel: Option<PathBuf>,
    /// The files elements put under `iso/`: on an ISO beside the image, never in it.
    pub iso_extras: Option<Tree>,
}

/// Stages the image described by `plan` in `work` (a scratch directory).
pub fn stage(plan: &Plan, work: &Path, ui: &Ui) -> anyhow::Result<Staged> {
    let mut found = Findings::default();
    // `mnt` as in DIB, where TMP_MOUNT_PATH is `$TMP_BUILD_DIR/mnt` and hooks name it so.
    let root = work.join("mnt");
    fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    for w in &plan.hooks.warnings {
        ui.warn(w);
    }
    check_isolation(plan)?;
    // The hook environment (built-in elements written out, environment.d sourced) is
    // only made for images that have hooks.
    let mut env =
        if plan.hooks.by_phase.is_empty() { None } else { Some(hooks::env::hook_env(plan, work, &root)?) };

    let mut tree = Tree::default();
    if let Some(env) = &env {
        run_phase(plan, &mut tree, "root.d", env, ui, &mut found)?;
    }
    elements(plan, &mut tree, work, ui, &mut found)?;
    let installs = repos::PHASES.iter().any(|p| !plan.hooks.phase(p).is_empty());
    let mut repos = if installs { repos::Repos::prepare(plan, ui)? } else { repos::Repos::default() };
    if !installs && !plan.builtins.repositories().is_empty() {
        ui.warn("repositories are given but no element has install-phase hooks: no package manager runs to use them");
    }
    if let Some(env) = env.as_mut().filter(|_| plan.hooks.any_after("root.d")) {
        env.repos = std::mem::take(&mut repos.binds);
        changes::materialise(&mut tree, &root)?;
        for (phase, _) in &PHASES[1..] {
            if *phase == repos::PHASES[0] {
                repos.enter(&root)?;
            }
            run_phase(plan, &mut tree, phase, env, ui, &mut found)?;
            if *phase == repos::PHASES[2] {
                repos.leave(&root, &mut tree)?;
            }
        }
    }
    finish(plan, &mut tree, ui)?;
    let kernel = match &plan.kernel {
        Some(kernel::Planned::Host { path, .. }) => Some(path.clone()),
        Some(kernel::Planned::Image) => {
            let k = kernel::take_from_image(&mut tree, work)?;
            ui.info(&format!(
                "kernel: the image's own, /boot/vmlinuz-{}; what /boot held is left out of the image ({})",
                k.release,
                crate::config::size::human(k.removed_bytes)
            ));
            Some(k.path)
        }
        None => None,
    };
    if let (Some(path), SecureBoot::Distribution) = (&kernel, plan.image.secure_boot) {
        if !crate::efi::pe::is_signed(path)? {
            anyhow::bail!(
                "secure-boot = \"distribution\" (in {}) boots through the distribution's signed GRUB, which \
                 starts only a kernel the distribution signed, and {} carries no signature: use the distribution's \
                 kernel (Debian: linux-image-amd64 or linux-image-cloud-amd64), or remove secure-boot",
                plan.image.file.display(),
                path.display()
            );
        }
    }
    let iso_extras =
        if plan.image.outputs.contains(&OutputKind::Iso) { Some(iso_extras(plan)?) } else { None };
    Ok(Staged { tree, found, kernel, iso_extras })
}

/// Chroot hooks need a mount namespace (and a user namespace without root): checked
/// once before the first, so the error names the element instead of failing in a hook.
fn check_isolation(plan: &Plan) -> anyhow::Result<()> {
    if !plan.hooks.any_chroot() {
        return Ok(());
    }
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
    })
}

/// Each element in order: its built-in work, `root/` overlay, source repositories and
/// templates, all by reference.
fn elements(plan: &Plan, tree: &mut Tree, work: &Path, ui: &Ui, found: &mut Findings) -> anyhow::Result<()> {
    let context = template_context(plan)?;
    for element in &plan.resolved.elements {
        let params = Value::Object(plan.params[&element.name].clone().into_iter().collect());
        let based = match plan.builtins.get(element) {
            Some(work_of) => {
                let mut cx = builtin::Context {
                    element: &element.name,
                    image: &plan.image,
                    elements: &plan.resolved,
                    client: plan.client.as_ref(),
                    kernel: plan.kernel.as_ref(),
                    params: &params,
                    work,
                    mtime: plan.time,
                    offline: plan.offline,
                    found: &mut *found,
                };
                Some(work_of.stage(tree, &mut cx)?)
            }
            None => None,
        };
        let overlaid = overlay::apply(tree, element, plan.time)? + sources::apply(tree, element, work)?;
        let rendered = template::apply(tree, element, &params, &context, plan.time)?;
        ui.detail(&format!(
            "element {}: {}{overlaid} overlay entries, {rendered} templates",
            element.name,
            based.map_or(String::new(), |n| format!("{n} base entries, "))
        ));
    }
    Ok(())
}

/// What the elements' manifests ask for once everything is staged: `[prune]`,
/// `[[permissions]]`, links checked, `[[devices]]`.
fn finish(plan: &Plan, tree: &mut Tree, ui: &Ui) -> anyhow::Result<()> {
    let (pruned, bytes) = prune::prune(tree, &plan.resolved.elements)?;
    if pruned > 0 {
        ui.detail(&format!("prune: removed {pruned} paths, {}", crate::config::size::human(bytes)));
    }
    prune::permissions(tree, &plan.resolved.elements)?;
    prune::check_links(tree)?;
    prune::devices(tree, &plan.resolved.elements, plan.time)
}

/// The files elements put under `iso/`.
fn iso_extras(plan: &Plan) -> anyhow::Result<Tree> {
    let mut tree = Tree::default();
    for element in &plan.resolved.elements {
        overlay::apply_iso(&mut tree, element, plan.time)?;
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
    let (client, nodes) = plan.client.as_ref().map(crate::network::view).unwrap_or_default();
    base.insert("client".into(), client);
    base.insert("nodes".into(), Value::Array(nodes.clone()));
    base.insert("build".into(), template::build_info(plan.time, &elements));
    let names = plan.nodes().iter().map(|n| n.name.clone());
    Ok(template::Context { base, nodes: names.zip(nodes).collect() })
}

/// Whether a template file's text names `digest` (unreadable: taken as yes).
fn names_digest(file: &crate::element::ElementFile) -> std::io::Result<bool> {
    let crate::element::FileKind::File(source) = &file.kind else { return Ok(false) };
    let mut text = String::new();
    std::io::Read::read_to_string(&mut source.open()?, &mut text)?;
    Ok(text.contains("digest"))
}
