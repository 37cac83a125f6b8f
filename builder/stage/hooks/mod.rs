//! Running an image's phase hooks (which ones, in what order, was decided by
//! `element::hooks`): the environment they get ([`env`]), one hook's run on the host or
//! inside the image ([`run`], isolated by `crate::namespace`), and a phase's run, with what
//! each hook changed attributed to its element and DIB's per-phase table printed.

pub mod env;
pub mod run;
pub mod tools;

pub use env::HookEnv;
pub use run::HookFailed;

use crate::element::hooks::PHASES;
use crate::plan::Plan;
use crate::stage::changes;
use std::collections::BTreeMap;

use crate::path::ImagePath;
use crate::tree::Tree;
use crate::ui::Ui;

/// Runs one phase's hooks, attributing what each changed on disk to its element, and
/// prints the phase table (script, element, seconds) as DIB does.
pub fn run_phase(
    plan: &Plan,
    tree: &mut Tree,
    phase: &str,
    env: &HookEnv,
    ui: &Ui,
    findings: &mut crate::builtin::Findings,
) -> anyhow::Result<()> {
    let list = plan.hooks.phase(phase);
    if list.is_empty() {
        return Ok(());
    }
    let side = PHASES.iter().find(|(p, _)| *p == phase).map(|(_, s)| *s).expect("known phase");
    let kernel_from_image = matches!(plan.image.kernel, Some(crate::config::image::Kernel::Image));
    let mut before = changes::scan(&env.target_root)?;
    let mut timings = Vec::new();
    for hook in list {
        ui.detail(&format!("running {phase}/{} ({})", hook.name, hook.element));
        timings.push(run::run(hook, side, env)?);
        let after = changes::scan(&env.target_root)?;
        let owners = package_owners(env, hook, tree);
        if let Some(dropped) = dropped_modules(env, hook, tree) {
            ui.info(&format!(
                "kernel-modules: dropped {} of the image's modules not listed ({}); report.json names them",
                dropped.files,
                crate::config::size::human(dropped.bytes)
            ));
            findings.trimmed.push(dropped);
        }
        changes::apply_changes(tree, &env.target_root, &before, &after, &hook.element, &owners)?;
        tools::take_devices(&env.tmp_hooks, &env.target_root, side, tree, &hook.element, plan.time)?;
        if let Some((kept, removed, bytes)) = tools::take_chosen(&env.tmp_hooks, tree, kernel_from_image)? {
            ui.info(&format!(
                "{phase}/{} of element `{}` makes diskimage-builder's image: it ran with smelt's cpio \
                 in place of the real one; the image keeps the {kept} paths it chose ({removed} \
                 removed, {}), and smelt writes the outputs",
                hook.name,
                hook.element,
                crate::config::size::human(bytes)
            ));
        }
        before = after;
    }
    let mut table = format!("phase {phase}:");
    for t in timings {
        table.push_str(&format!("\n  {:<28} {:<20} {:>7.2} s", t.name, t.element, t.seconds));
    }
    ui.info(&table);
    Ok(())
}

/// For the kernel-modules trim hook (`element::module_trim`): the modules it dropped,
/// with their bytes as the tree holds them before the removal is applied.
fn dropped_modules(
    env: &HookEnv,
    hook: &crate::element::hooks::Hook,
    tree: &Tree,
) -> Option<crate::builtin::Trimmed> {
    use crate::element::module_trim::{DROPPED, HOOK, MISSING};
    if hook.name != HOOK || hook.element != "kernel-modules" {
        return None;
    }
    if let Ok(missing) = std::fs::read_to_string(env.tmp_hooks.join(MISSING)) {
        let groups: Vec<&str> = missing.lines().collect();
        crate::ui::warning(&format!(
            "element `kernel-modules`: this kernel has no modules under {}; nothing kept for them",
            groups.join(", ")
        ));
    }
    let text = std::fs::read_to_string(env.tmp_hooks.join(DROPPED)).ok()?;
    let paths: Vec<String> = text.lines().map(String::from).collect();
    let bytes = paths
        .iter()
        .filter_map(|p| ImagePath::new(p).ok().and_then(|p| tree.resolve_parents(&p).ok()))
        .filter_map(|p| tree.get(&p).map(|e| e.size()))
        .sum();
    Some(crate::builtin::Trimmed {
        element: hook.element.clone(),
        rule: "modules of the image's kernel not listed in `modules`".into(),
        files: paths.len(),
        bytes,
        paths,
    })
}

/// For smelt's package-installs hook: which element asked for the package each file
/// is from (`ELEMENT PATH` lines the hook wrote); empty for any other hook.
fn package_owners(
    env: &HookEnv,
    hook: &crate::element::hooks::Hook,
    tree: &Tree,
) -> BTreeMap<ImagePath, String> {
    use crate::element::packages::{HOOK, OWNERS};
    if hook.name != HOOK || hook.element != "package-installs" {
        return BTreeMap::new();
    }
    let text = std::fs::read_to_string(env.tmp_hooks.join(OWNERS).join(hook.phase)).unwrap_or_default();
    let mut owners = BTreeMap::new();
    for line in text.lines() {
        let Some((element, path)) = line.split_once(' ') else { continue };
        // dpkg names /bin/x where merged /usr keeps it at /usr/bin/x.
        if let Ok(p) = ImagePath::new(path).map(|p| tree.resolve_parents(&p).unwrap_or(p)) {
            // The first element to ask for a package is its owner.
            owners.entry(p).or_insert_with(|| element.to_string());
        }
    }
    owners
}
