//! Staging: from resolved elements to the image tree, in diskimage-builder's order.
//!
//! 1. `root.d` hooks (host) build a base root, if any element has them;
//! 2. built-in bases, `root/` overlays, DIB source repositories and `templates/`,
//!    element by element, by reference;
//! 3. the remaining phases, on a materialised copy, only if any hook needs it, with
//!    each hook's additions, changes and removals attributed to its element;
//! 4. `[prune]`, `[[permissions]]`, `[[devices]]`.

pub mod base;
pub mod changes;
pub mod hooks;
pub mod namespace;
pub mod overlay;
pub mod packages;
pub mod prune;
pub mod sources;
pub mod template;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::{json, Value};

use crate::element::{Element, Origin};
use crate::plan::{param_env_name, param_env_value, Plan};
use crate::ui::Ui;
use hooks::{HookEnv, Side, PHASES};
use crate::tree::{self, Tree};

/// Stages the image described by `plan` in `work` (a scratch directory).
pub fn stage(plan: &Plan, work: &Path, ui: &Ui) -> anyhow::Result<Tree> {
    let mtime = plan.time;
    let root = work.join("root");
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
    let env = if plan.hooks.by_phase.is_empty() { None } else { Some(hook_env(plan, work, &root)?) };

    let mut tree = Tree::default();
    if let Some(env) = &env {
        run_phase(plan, &mut tree, "root.d", env, ui)?;
    }

    let context = template_context(plan)?;
    for element in &plan.resolved.elements {
        let params = Value::Object(plan.params[&element.name].clone().into_iter().collect());
        let based = base::apply(&mut tree, element, &params, plan, work, mtime)?;
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
            run_phase(plan, &mut tree, phase, env, ui)?;
        }
    }

    let (pruned, bytes) = prune::prune(&mut tree, &plan.resolved.elements)?;
    if pruned > 0 {
        ui.detail(&format!("prune: removed {pruned} paths, {}", crate::config::size::human(bytes)));
    }
    prune::permissions(&mut tree, &plan.resolved.elements)?;
    prune::check_links(&tree)?;
    prune::devices(&mut tree, &plan.resolved.elements, mtime)?;
    Ok(tree)
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

/// Runs one phase's hooks, attributing what each changed on disk to its element, and
/// prints the phase table (script, element, seconds) as DIB does.
fn run_phase(plan: &Plan, tree: &mut Tree, phase: &str, env: &HookEnv, ui: &Ui) -> anyhow::Result<()> {
    let list = plan.hooks.phase(phase);
    if list.is_empty() {
        return Ok(());
    }
    let side = PHASES.iter().find(|(p, _)| *p == phase).map(|(_, s)| *s).expect("known phase");
    let mut before = changes::scan(&env.target_root)?;
    let mut timings = Vec::new();
    for hook in list {
        ui.detail(&format!("running {phase}/{} ({})", hook.name, hook.element));
        timings.push(hooks::run(hook, side, env)?);
        let after = changes::scan(&env.target_root)?;
        changes::apply_changes(tree, &env.target_root, &before, &after, &hook.element)?;
        before = after;
    }
    let mut table = format!("phase {phase}:");
    for t in timings {
        table.push_str(&format!("\n  {:<28} {:<20} {:>7.2} s", t.name, t.element, t.seconds));
    }
    ui.info(&table);
    Ok(())
}

fn hook_env(plan: &Plan, work: &Path, root: &Path) -> anyhow::Result<HookEnv> {
    let tmp_hooks = work.join("tmp-hooks");
    fs::create_dir_all(&tmp_hooks)?;
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in std::env::vars() {
        if k.starts_with("DIB_")
            || matches!(
                k.as_str(),
                "PATH" | "HOME" | "USER" | "LOGNAME" | "TERM" | "http_proxy" | "https_proxy" | "no_proxy"
            )
        {
            vars.insert(k, v);
        }
    }
    vars.insert("LC_ALL".into(), "C".into());
    vars.insert("TARGET_ROOT".into(), root.display().to_string());
    vars.insert("TMP_HOOKS_PATH".into(), tmp_hooks.display().to_string());
    vars.insert("SMELT_IMAGE_NAME".into(), plan.image.name.clone());
    vars.insert("ARCH".into(), arch().into());
    if let Some(epoch) = plan.epoch {
        vars.insert("SOURCE_DATE_EPOCH".into(), epoch.to_string());
    }
    for (element, params) in &plan.params {
        for (k, v) in params {
            vars.insert(param_env_name(element, k), param_env_value(v));
        }
    }
    let env_d = hooks::environment_d(&plan.resolved.elements, &vars, work)?;
    vars.extend(env_d);
    let element_dirs = element_dirs(&plan.resolved.elements, work)?;
    Ok(HookEnv {
        vars,
        target_root: root.to_path_buf(),
        tmp_hooks,
        logs: work.join("logs"),
        no_network: plan.offline,
        element_dirs,
    })
}

/// `ELEMENT_DIR` for each element: its directory, or a copy of a built-in one.
fn element_dirs(elements: &[Element], work: &Path) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    let mut dirs = BTreeMap::new();
    for e in elements {
        let dir = match &e.origin {
            Origin::Dir(d) => d.clone(),
            Origin::BuiltIn => {
                let dir = work.join("elements").join(&e.name);
                for f in &e.files {
                    let entry = match &f.kind {
                        crate::element::FileKind::Dir => tree::Entry::dir(f.mode, 0, &e.name),
                        crate::element::FileKind::Symlink(t) => tree::Entry::symlink(t, 0, &e.name),
                        crate::element::FileKind::File(src) => {
                            tree::Entry::bytes(src.read_all()?, f.mode, 0, &e.name)
                        }
                        crate::element::FileKind::Device { .. } => continue,
                    };
                    fs::create_dir_all(dir.join(&f.rel).parent().unwrap_or(&dir))?;
                    tree::disk::write_entry(&entry, &dir.join(&f.rel))?;
                }
                dir
            }
        };
        dirs.insert(e.name.clone(), dir);
    }
    Ok(dirs)
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

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
