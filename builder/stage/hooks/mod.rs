//! Running an image's phase hooks (which ones, in what order, was decided by
//! `element::hooks`): the environment they get ([`env`]), one hook's run on the host or
//! inside the image ([`run`], isolated by `crate::namespace`), and a phase's run, with what
//! each hook changed attributed to its element, what its origin reads back after it
//! (`Harvest`), and DIB's per-phase table printed.

pub mod env;
pub mod run;
pub mod tools;

pub use env::HookEnv;
pub use run::HookFailed;

use crate::element::hooks::{Harvested, PHASES};
use crate::findings::Findings;
use crate::plan::Plan;
use crate::stage::changes;
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
    found: &mut Findings,
) -> anyhow::Result<()> {
    let list = plan.hooks.phase(phase);
    if list.is_empty() {
        return Ok(());
    }
    let side = PHASES.iter().find(|(p, _)| *p == phase).map(|(_, s)| *s).expect("known phase");
    let mut before = changes::scan(&env.target_root)?;
    let mut timings = Vec::new();
    for hook in list {
        ui.detail(&format!("running {phase}/{} ({})", hook.name, hook.element));
        timings.push(run::run(hook, side, env)?);
        let after = changes::scan(&env.target_root)?;
        let mut harvested = Harvested::default();
        if let Some(h) = &hook.harvest {
            h.before(hook, &env.tmp_hooks, tree, &mut harvested)?;
        }
        changes::apply_changes(tree, &env.target_root, &before, &after, &hook.element, &harvested.owners)?;
        tools::take_devices(&env.tmp_hooks, &env.target_root, side, tree, &hook.element, plan.time)?;
        if let Some(h) = &hook.harvest {
            h.after(hook, &env.tmp_hooks, tree, &mut harvested)?;
        }
        tell(harvested, ui, found);
        before = after;
    }
    let mut table = format!("phase {phase}:");
    for t in timings {
        table.push_str(&format!("\n  {:<28} {:<20} {:>7.2} s", t.name, t.element, t.seconds));
    }
    ui.info(&table);
    Ok(())
}

/// What harvesting a hook gave: said to the user, and its trims kept for the report.
fn tell(harvested: Harvested, ui: &Ui, found: &mut Findings) {
    for w in &harvested.warnings {
        ui.warn(w);
    }
    for n in &harvested.notes {
        ui.info(n);
    }
    found.trimmed.extend(harvested.trimmed);
}
