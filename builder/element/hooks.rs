//! Which phase hooks an image runs, in what order, as diskimage-builder decides it: per
//! phase, the executable scripts of every element in one order by file name, plus the
//! package installs each phase asks for. Deciding only: nothing here runs a script or
//! touches the disk (running them is `stage::hooks`), so `smelt plan` can print it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::bail;

use super::{Element, FileKind};
use crate::io::source::Source;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// On the host, with `TARGET_ROOT` pointing at the image.
    Host,
    /// Inside the image root.
    Chroot,
}

/// diskimage-builder's phases, in its order.
pub const PHASES: [(&str, Side); 9] = [
    ("root.d", Side::Host),
    ("extra-data.d", Side::Host),
    ("pre-install.d", Side::Chroot),
    ("install.d", Side::Chroot),
    ("post-install.d", Side::Chroot),
    ("post-root.d", Side::Host),
    ("pre-finalise.d", Side::Host),
    ("finalise.d", Side::Chroot),
    ("cleanup.d", Side::Host),
];

#[derive(Debug, Clone, serde::Serialize)]
pub struct Hook {
    pub phase: &'static str,
    pub name: String,
    pub element: String,
    #[serde(skip)]
    pub script: Source,
    /// More host directories bound into the image for this hook (chroot phases): the
    /// package installs' download cache.
    #[serde(skip)]
    pub binds: Vec<(PathBuf, PathBuf)>,
}

/// Every hook of the image, per phase in run order, plus warnings about files that will
/// not run.
#[derive(Debug, Default)]
pub struct Hooks {
    pub by_phase: BTreeMap<&'static str, Vec<Hook>>,
    pub warnings: Vec<String>,
}

impl Hooks {
    pub fn phase(&self, phase: &str) -> &[Hook] {
        self.by_phase.get(phase).map_or(&[], Vec::as_slice)
    }

    pub fn any_after(&self, phase: &str) -> bool {
        PHASES.iter().skip_while(|(p, _)| *p != phase).skip(1).any(|(p, _)| !self.phase(p).is_empty())
    }

    pub fn any_chroot(&self) -> bool {
        PHASES.iter().any(|(p, side)| *side == Side::Chroot && !self.phase(p).is_empty())
    }
}

/// Collects hooks across elements, with those smelt `generated` (the package installs).
/// Like dib-run-parts, only executable files run; the same script name in one phase of
/// two elements is an error, since their order would be a coin toss.
pub fn collect(elements: &[Element], generated: Vec<Hook>) -> anyhow::Result<Hooks> {
    let mut hooks = Hooks::default();
    let mut errors = Vec::new();
    for element in elements {
        if element.files_under("block-device.d").next().is_some() {
            hooks.warnings.push(format!(
                "element `{}`: block-device.d is skipped: a ramdisk or ISO has no block device",
                element.name
            ));
        }
        for (phase, _) in PHASES {
            for (name, file) in element.files_under(phase) {
                let FileKind::File(source) = &file.kind else {
                    continue;
                };
                if name.contains('/') {
                    continue;
                }
                if file.mode & 0o111 == 0 {
                    hooks.warnings.push(format!(
                        "element `{}`: {phase}/{name} is not executable and will not run (chmod +x it)",
                        element.name
                    ));
                    continue;
                }
                let list = hooks.by_phase.entry(phase).or_default();
                if let Some(other) = list.iter().find(|h| h.name == name) {
                    errors.push(format!(
                        "hook {phase}/{name} is in both element `{}` and element `{}`: hooks of a phase \
                         run in one order by file name, so rename one of them",
                        other.element, element.name
                    ));
                    continue;
                }
                list.push(Hook {
                    binds: Vec::new(),
                    phase,
                    name: name.into(),
                    element: element.name.clone(),
                    script: source.clone(),
                });
            }
        }
    }
    for hook in generated {
        let phase = hook.phase;
        let phase_hooks = hooks.by_phase.entry(phase).or_default();
        if let Some(other) = phase_hooks.iter().find(|h| h.name == hook.name) {
            errors.push(format!(
                "hook {phase}/{} of element `{}` has the name smelt gives its package installs; rename it",
                hook.name, other.element
            ));
            continue;
        }
        phase_hooks.push(hook);
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    for list in hooks.by_phase.values_mut() {
        list.sort_by(|a, b| a.name.cmp(&b.name));
    }
    Ok(hooks)
}
