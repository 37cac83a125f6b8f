//! Which phase hooks an image runs, in what order, as diskimage-builder decides it: per
//! phase, the executable scripts of every element in dib-run-parts' order (`sort -n`),
//! install types chosen, plus the package installs each phase asks for. Deciding only: nothing here runs a script or
//! touches the disk (running them is `stage::hooks`), so `smelt plan` can print it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::bail;

use super::{Element, FileKind};
use crate::findings::Trimmed;
use crate::io::source::Source;
use crate::path::ImagePath;
use crate::tree::Tree;

/// Where hooks inside the image see the hooks directory (DIB's `TMP_HOOKS_PATH`, bound
/// in while they run and never part of the image).
pub const IN_IMAGE: &str = "/tmp/in_target.d";

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
    /// What smelt does around this hook, when smelt made it or knows it.
    #[serde(skip)]
    pub harvest: Option<Arc<dyn Harvest>>,
}

/// What smelt does around a hook it made or knows, carried by the hook so the phase
/// runner needs no list of them: stand-in tools first on its `PATH`, and what it reads
/// back from the hooks directory (`left`) once the hook ran.
pub trait Harvest: Send + Sync + std::fmt::Debug {
    /// What `smelt plan` says of the hook.
    fn note(&self) -> Option<&'static str> {
        None
    }

    /// A folder of the hooks directory put first on the `PATH` of a host hook.
    fn path_first(&self) -> Option<&'static str> {
        None
    }

    /// Before the hook's changes reach `tree`.
    fn before(&self, _hook: &Hook, _left: &Path, _tree: &Tree, _out: &mut Harvested) -> anyhow::Result<()> {
        Ok(())
    }

    /// Once the hook's changes are in `tree`.
    fn after(
        &self,
        _hook: &Hook,
        _left: &Path,
        _tree: &mut Tree,
        _out: &mut Harvested,
    ) -> anyhow::Result<()> {
        Ok(())
    }
}

/// What harvesting one hook gave.
#[derive(Debug, Default)]
pub struct Harvested {
    /// The element each path the hook made is for, where not the hook's own.
    pub owners: BTreeMap<ImagePath, String>,
    /// What it removed, for the report.
    pub trimmed: Vec<Trimmed>,
    /// What to tell the user, and what to warn about.
    pub notes: Vec<String>,
    pub warnings: Vec<String>,
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

/// The DIB core elements whose work smelt does itself: package installs with pkg-map
/// (element/packages.rs), source repositories (stage/sources.rs) and install types
/// (below). A DIB element of one of these names on the path is recognised and its
/// hooks do not run (its `bin/` tools are still there for other hooks); without one,
/// smelt's built-in element of the name satisfies the dependency.
pub const NATIVE: [&str; 4] = ["package-installs", "pkg-map", "source-repositories", "install-types"];

/// Whether `element`'s hooks are smelt's to do (see [`NATIVE`]).
pub fn done_natively(element: &Element) -> bool {
    NATIVE.contains(&element.name.as_str()) && element.manifest.form == super::manifest::Form::Dib
}

/// dib-run-parts runs only files whose names match `^[0-9A-Za-z_-]+$`.
pub fn runnable_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// dib-run-parts' order: `LANG=C sort -n`, the leading number first (none counts as 0),
/// then the whole name byte by byte.
pub fn dib_order(a: &str, b: &str) -> std::cmp::Ordering {
    fn number(s: &str) -> u64 {
        let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().unwrap_or(0)
    }
    number(a).cmp(&number(b)).then_with(|| a.cmp(b))
}

/// The install type chosen for install-type directory `prefix` (`install.d/PREFIX-TYPE-install`):
/// `DIB_INSTALLTYPE_PREFIX` (dashes as underscores), else `DIB_DEFAULT_INSTALLTYPE`,
/// else `source`, as DIB's install-types element chooses.
fn install_type(prefix: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    env(&format!("DIB_INSTALLTYPE_{}", prefix.replace('-', "_")))
        .or_else(|| env("DIB_DEFAULT_INSTALLTYPE"))
        .unwrap_or_else(|| "source".into())
}

/// For a file of an install-type directory (`install.d/PREFIX-TYPE-install/NAME`) of the
/// chosen type, its name: install-types links every such file (scripts, and the unit
/// files and configs they install from `$(dirname $0)`) into `install.d/`.
pub fn chosen_install_file<'a>(rel: &'a str, env: &dyn Fn(&str) -> Option<String>) -> Option<&'a str> {
    let (dir, name) = rel.strip_prefix("install.d/")?.split_once('/')?;
    let (prefix, kind) = dir.strip_suffix("-install")?.rsplit_once('-')?;
    (!name.contains('/') && install_type(prefix, env) == kind).then_some(name)
}

/// Collects hooks across elements, with those smelt `generated` (built-in elements'
/// hooks: package installs, the module trim). As dib-run-parts: only executable files
/// with plain names run, in `sort -n` order; `install.d/PREFIX-TYPE-install/`
/// directories add their scripts for the chosen type (install-types). The same script
/// name in one phase of two elements is an error, since their order would be a coin
/// toss. `env` answers `DIB_INSTALLTYPE_*`; hooks that write DIB's own image get smelt's
/// `cpio` (`super::image_writer`), keeping `/boot` with `kernel_from_image`.
pub fn collect(
    elements: &[Element],
    generated: Vec<Hook>,
    env: &dyn Fn(&str) -> Option<String>,
    kernel_from_image: bool,
) -> anyhow::Result<Hooks> {
    let mut hooks = Hooks::default();
    let mut errors = Vec::new();
    for element in elements {
        if element.files_under("block-device.d").next().is_some() {
            hooks.warnings.push(format!(
                "element `{}`: block-device.d is skipped: a ramdisk or ISO has no block device",
                element.name
            ));
        }
        if done_natively(element) {
            continue;
        }
        for (phase, _) in PHASES {
            for (name, file) in element.files_under(phase) {
                let FileKind::File(source) = &file.kind else {
                    continue;
                };
                // A script of a chosen install type: install.d/PREFIX-TYPE-install/NAME.
                let name = match name.split_once('/') {
                    Some(_) => match chosen_install_file(&file.rel, env) {
                        Some(script) => script,
                        None => continue,
                    },
                    None => name,
                };
                if !runnable_name(name) {
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
                    phase,
                    name: name.into(),
                    element: element.name.clone(),
                    script: source.clone(),
                    harvest: super::image_writer::harvest(&element.name, phase, name, kernel_from_image),
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
        list.sort_by(|a, b| dib_order(&a.name, &b.name));
    }
    Ok(hooks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_is_dib_run_parts_order() {
        let mut names = vec!["50-b", "9-a", "10-c", "01-package-installs", "zz", "50-a", "100-x"];
        names.sort_by(|a, b| dib_order(a, b));
        assert_eq!(names, ["zz", "01-package-installs", "9-a", "10-c", "50-a", "50-b", "100-x"]);
        assert!(
            runnable_name("50-dhcp_all")
                && !runnable_name("dhcp-all-interfaces.sh")
                && !runnable_name("a@.service")
        );
    }
}
