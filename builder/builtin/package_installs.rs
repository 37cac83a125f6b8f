//! `package-installs`, as diskimage-builder's element of that name does them: every
//! element's `package-installs.yaml` (DIB form, names mapped through `pkg-map`) and
//! `packages` list (native form) become one `01-package-installs` hook per phase,
//! run inside the image with the package manager of its distro family (apt for
//! Debian, zypper for SUSE, dnf for Red Hat, apk for Alpine). What each requested
//! package installs is attributed to the element that asked for it (read back from
//! the hook by [`Owners`]). The same tool, `install-packages`, is on the hooks' `PATH`
//! for DIB hooks that call it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Context as _};
use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

use super::{BuiltIn, Planning};
use crate::element::hooks::{Harvest, Harvested, Hook, IN_IMAGE, PHASES};
use crate::element::{Element, FileKind};
use crate::io::source::Source;
use crate::path::ImagePath;
use crate::tree::Tree;

/// The element's name: its work is done for every image.
pub const NAME: &str = "package-installs";

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageInstalls {}

impl BuiltIn for PackageInstalls {
    /// One install hook (and one removal hook) per phase that has packages.
    fn hooks(&self, cx: &Planning) -> anyhow::Result<Vec<Hook>> {
        let lists = collect(cx.elements, cx.family, cx.env)?;
        let mut hooks = Vec::new();
        for (phase, list) in lists {
            if !list.install.is_empty() {
                hooks.push(install_hook(phase, &list.install));
            }
            if !list.uninstall.is_empty() {
                hooks.push(uninstall_hook(phase, &list.uninstall));
            }
        }
        Ok(hooks)
    }

    fn hook_tools(&self, family: &str) -> Vec<(&'static str, String)> {
        let tool = install_packages_tool(family);
        vec![("smelt-install-packages", tool.clone()), ("install-packages", tool)]
    }
}

/// What to install and remove in one phase, in element order, each package with the
/// element that asked for it.
#[derive(Debug, Default, PartialEq)]
pub struct Phase {
    pub install: Vec<(String, String)>,
    pub uninstall: Vec<(String, String)>,
}

/// Reads every element's package lists. `family` is the image's distro family for
/// `pkg-map` (`debian`, `redhat`, `suse`, `alpine`); `env` answers `when` conditions.
fn collect(
    elements: &[Element],
    family: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<BTreeMap<&'static str, Phase>> {
    let mut phases: BTreeMap<&'static str, Phase> = BTreeMap::new();
    for e in elements {
        for p in &e.manifest.packages {
            phases.entry("install.d").or_default().install.push((e.name.clone(), p.clone()));
        }
        let Some(yaml) = file_text(e, "package-installs.yaml")? else { continue };
        let map = match file_text(e, "pkg-map")? {
            Some(text) => serde_json::from_str::<Value>(&text)
                .map_err(|er| anyhow!("element `{}`: pkg-map is not JSON: {er}", e.name))?,
            None => Value::Null,
        };
        let docs = YamlLoader::load_from_str(&yaml)
            .map_err(|er| anyhow!("element `{}`: package-installs.yaml: {er}", e.name))?;
        let Some(Yaml::Hash(entries)) = docs.into_iter().next() else { continue };
        for (name, spec) in entries {
            let Some(name) = name.as_str() else { continue };
            let Some((phase, how)) = entry(&e.name, name, &spec, env)? else { continue };
            let mapped = mapped(&map, family, name);
            if mapped.trim().is_empty() {
                continue; // pkg-map says this family has no such package
            }
            let list = phases.entry(phase).or_default();
            let asked = (e.name.clone(), mapped);
            match how {
                How::Install => list.install.push(asked),
                How::Uninstall => list.uninstall.push(asked),
                How::BuildOnly => {
                    // Installed for the phase's hooks, removed when they are done.
                    list.install.push(asked.clone());
                    list.uninstall.push(asked);
                }
            }
        }
    }
    // As DIB: a package some element installs to keep is not removed because another
    // asked for it only to build with.
    let kept: std::collections::BTreeSet<String> = phases
        .values()
        .flat_map(|p| p.install.iter().filter(|i| !p.uninstall.contains(i)).map(|(_, n)| n.clone()))
        .collect();
    for p in phases.values_mut() {
        p.uninstall.retain(|(_, n)| !kept.contains(n));
    }
    Ok(phases)
}

/// What an entry of package-installs.yaml asks of its package.
enum How {
    Install,
    Uninstall,
    /// Installed for the phase's hooks, removed when they are done.
    BuildOnly,
}

/// One entry of `element`'s package-installs.yaml: its phase and what it asks, or
/// `None` when it is not for this image (`arch`, `not-arch`, `when`,
/// `dib_python_version`).
fn entry(
    element: &str,
    name: &str,
    spec: &Yaml,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<Option<(&'static str, How)>> {
    let get = |key: &str| match spec {
        Yaml::Hash(h) => h.get(&Yaml::String(key.into())).cloned(),
        _ => None,
    };
    let text = |key: &str| get(key).and_then(|v| v.as_str().map(String::from));
    let phase_name = text("phase").unwrap_or_else(|| "install.d".into());
    let Some(phase) = PHASES.iter().map(|(p, _)| *p).find(|p| *p == phase_name) else {
        anyhow::bail!("element `{element}`: package-installs.yaml: {name}: unknown phase `{phase_name}`");
    };
    let arch = crate::platform::arch();
    if text("arch").is_some_and(|archs| !archs.split(',').map(str::trim).any(|a| a == arch)) {
        return Ok(None);
    }
    if text("not-arch").is_some_and(|archs| archs.split(',').map(str::trim).any(|a| a == arch)) {
        return Ok(None);
    }
    // `when`: one condition or a list of them, all of which must hold.
    let conditions: Vec<String> = match get("when") {
        Some(Yaml::Array(list)) => list.iter().filter_map(|c| c.as_str().map(String::from)).collect(),
        Some(Yaml::String(c)) => vec![c],
        _ => Vec::new(),
    };
    if !conditions.iter().all(|c| holds(c, env)) {
        return Ok(None);
    }
    // `dib_python_version: 2` entries are for images with Python 2.
    let py = get("dib_python_version").map(|v| match v {
        Yaml::Integer(i) => i.to_string(),
        other => other.as_str().unwrap_or_default().to_string(),
    });
    if py.is_some_and(|v| Some(v) != env("DIB_PYTHON_VERSION")) {
        return Ok(None);
    }
    let flag = |key: &str| get(key).and_then(|v| v.as_bool()).unwrap_or(false);
    let how = match (flag("uninstall"), flag("build-only")) {
        (true, _) => How::Uninstall,
        (false, true) => How::BuildOnly,
        (false, false) => How::Install,
    };
    Ok(Some((phase, how)))
}

fn file_text(e: &Element, name: &str) -> anyhow::Result<Option<String>> {
    match e.files.iter().find(|f| f.rel == name).map(|f| &f.kind) {
        Some(FileKind::File(src)) => Ok(Some(
            String::from_utf8(src.read_all()?)
                .with_context(|| format!("element `{}`: {name} is not UTF-8", e.name))?,
        )),
        _ => Ok(None),
    }
}

/// DIB's pkg-map: `{"family": {"debian": {"name": "mapped"}}, "default": {"name": …}}`.
fn mapped(map: &Value, family: &str, name: &str) -> String {
    map["family"][family][name].as_str().or_else(|| map["default"][name].as_str()).unwrap_or(name).to_string()
}

/// `VAR = value` or `VAR != value`, as DIB writes `when`.
fn holds(when: &str, env: &dyn Fn(&str) -> Option<String>) -> bool {
    let (var, want, equal) = match when.split_once("!=") {
        Some((v, w)) => (v.trim(), w.trim(), false),
        None => match when.split_once('=') {
            Some((v, w)) => (v.trim(), w.trim(), true),
            None => return env(when.trim()).is_some_and(|v| !v.is_empty()),
        },
    };
    (env(var).unwrap_or_default() == want) == equal
}

/// The hook name smelt gives its package installs.
const HOOK: &str = "01-package-installs";

/// Where a package hook writes, per line, `ELEMENT PATH` for every file of a package an
/// element asked for (relative to the hooks directory), so the build attributes it.
const OWNERS: &str = "package-owners";

/// The hook name smelt gives its package removals, last in their phase (DIB's
/// `99-package-uninstalls`): build-only packages go once the phase's hooks used them.
const UNINSTALL_HOOK: &str = "99-package-uninstalls";

fn names(list: &[(String, String)]) -> String {
    list.iter().map(|(_, p)| p.as_str()).collect::<Vec<_>>().join(" ")
}

/// The hook that installs one phase's packages with `install-packages`, then records
/// which element each installed file is for.
fn install_hook(phase: &'static str, install: &[(String, String)]) -> Hook {
    let asked: String = install.iter().map(|(e, p)| format!("{e}={p} ")).collect();
    let script = format!(
        "#!/bin/sh\n# Package installs of phase {phase}, written by smelt.\nset -e\n\
         install='{install}'\nasked='{asked}'\n\
         smelt-install-packages -u $install\n\
         owners={IN_IMAGE}/{OWNERS}/{phase}\nmkdir -p \"${{owners%/*}}\"\n\
         for pair in $asked; do\n\
         \x20   smelt-install-packages -l \"${{pair#*=}}\" | sed \"s|^|${{pair%%=*}} |\" >> \"$owners\"\n\
         done\n",
        install = names(install),
    );
    Hook {
        phase,
        name: HOOK.into(),
        element: NAME.into(),
        script: Source::Bytes(script.into_bytes().into()),
        harvest: Some(Arc::new(Owners)),
    }
}

/// Which element asked for the package each file a package hook installed is from
/// (the `ELEMENT PATH` lines it wrote): the first element to ask is the owner.
#[derive(Debug)]
struct Owners;

impl Harvest for Owners {
    fn before(&self, hook: &Hook, left: &Path, tree: &Tree, out: &mut Harvested) -> anyhow::Result<()> {
        let text = std::fs::read_to_string(left.join(OWNERS).join(hook.phase)).unwrap_or_default();
        for line in text.lines() {
            let Some((element, path)) = line.split_once(' ') else { continue };
            // dpkg names /bin/x where merged /usr keeps it at /usr/bin/x.
            if let Ok(p) = ImagePath::new(path).map(|p| tree.resolve_parents(&p).unwrap_or(p)) {
                out.owners.entry(p).or_insert_with(|| element.to_string());
            }
        }
        Ok(())
    }
}

/// The hook that removes one phase's uninstalls and build-only packages.
fn uninstall_hook(phase: &'static str, uninstall: &[(String, String)]) -> Hook {
    let script = format!(
        "#!/bin/sh\n# Package removals of phase {phase}, written by smelt.\nset -e\nsmelt-install-packages -e {}\n",
        names(uninstall)
    );
    Hook {
        phase,
        name: UNINSTALL_HOOK.into(),
        element: NAME.into(),
        script: Source::Bytes(script.into_bytes().into()),
        harvest: None,
    }
}

/// `install-packages [-u] [-e] [-l] PACKAGE...`, as DIB's distro elements give it to
/// hooks: installs (`-u` refreshes the package lists first), removes (`-e`), or lists a
/// package's files (`-l`) with the package manager of `family`, or else any there is.
/// Offline (`SMELT_OFFLINE=1`), apt installs from the cached downloads only. The logs
/// and caches package managers write, which carry times, are removed so the image's
/// bytes do not depend on when it was built.
fn install_packages_tool(family: &str) -> String {
    let preferred = match family {
        "suse" => "zypper",
        "redhat" => "dnf",
        "alpine" => "apk",
        _ => "apt-get",
    };
    format!(
        "#!/bin/sh\n# install-packages, written by smelt: the image's package manager for DIB hooks.\nset -e\n\
         update=; erase=; list=\n\
         while [ $# -gt 0 ]; do case \"$1\" in -u) update=1; shift ;; -e) erase=1; shift ;; -l) list=1; shift ;; \
         -m|-d) shift 2 ;; -*) shift ;; *) break ;; esac; done\n\
         pm={preferred}\n\
         command -v $pm >/dev/null 2>&1 || for pm in apt-get zypper dnf yum apk; do command -v $pm >/dev/null 2>&1 && break; done\n\
         command -v $pm >/dev/null 2>&1 || {{ echo \"install-packages: no package manager (apt-get, zypper, dnf, apk) in the image for: $*\" >&2; exit 1; }}\n\
         [ $# -gt 0 ] || exit 0\n\
         # SQLite's shared-memory index beside the rpm database: made by every reader, never the same twice.\n\
         rpm_tidy() {{ rm -f /usr/lib/sysimage/rpm/rpmdb.sqlite-shm /var/lib/rpm/rpmdb.sqlite-shm \"$HOME/.rpmdb/rpmdb.sqlite-shm\"; }}\n\
         case $pm in\n\
         apt-get)\n\
         \x20   if [ -n \"$list\" ]; then dpkg-query -L \"$@\" | grep -v '^/.$'; exit 0; fi\n\
         \x20   export DEBIAN_FRONTEND=noninteractive\n\
         \x20   offline=\n\
         \x20   if [ \"$SMELT_OFFLINE\" = 1 ]; then\n\
         \x20       offline=--no-download\n\
         \x20       ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1 || {{ echo \"--offline: no cached package lists; build once without --offline to fetch them\" >&2; exit 1; }}\n\
         \x20   elif [ -n \"$update\" ]; then\n\
         \x20       apt-get update -q\n\
         \x20   fi\n\
         \x20   if [ -n \"$erase\" ]; then apt-get remove -y -q --auto-remove \"$@\"; else apt-get install -y -q --no-install-recommends $offline \"$@\"; fi\n\
         \x20   rm -f /var/log/dpkg.log /var/log/alternatives.log /var/log/apt/*.log /var/log/apt/eipp.log.xz \\\n\
         \x20         /var/cache/debconf/*-old /var/lib/dpkg/*-old /var/cache/ldconfig/aux-cache /var/cache/apt/*.bin ;;\n\
         zypper)\n\
         \x20   if [ -n \"$list\" ]; then rc=0; rpm -ql \"$@\" || rc=$?; rpm_tidy; exit $rc; fi\n\
         \x20   if [ -n \"$erase\" ]; then zypper --non-interactive remove \"$@\"; else zypper --non-interactive install --no-recommends \"$@\"; fi\n\
         \x20   rm -rf /var/log/zypper.log /var/log/zypp /var/cache/zypp /var/lib/zypp/AnonymousUniqueId; rpm_tidy ;;\n\
         dnf|yum)\n\
         \x20   if [ -n \"$list\" ]; then rc=0; rpm -ql \"$@\" || rc=$?; rpm_tidy; exit $rc; fi\n\
         \x20   if [ -n \"$erase\" ]; then $pm remove -y \"$@\"; else $pm install -y --setopt=install_weak_deps=False \"$@\"; fi\n\
         \x20   $pm clean all >/dev/null; rm -rf /var/log/dnf*.log /var/log/hawkey.log /var/cache/dnf /var/lib/dnf/history.sqlite*; rpm_tidy ;;\n\
         apk)\n\
         \x20   if [ -n \"$list\" ]; then apk info -L \"$@\" | grep -v ' contains:$' | sed 's|^|/|'; exit 0; fi\n\
         \x20   if [ -n \"$erase\" ]; then apk del \"$@\"; else apk add --no-cache \"$@\"; fi ;;\n\
         esac\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_conditions() {
        let env = |k: &str| (k == "DIB_X").then(|| "y".to_string());
        assert!(holds("DIB_X = y", &env));
        assert!(!holds("DIB_X != y", &env));
        assert!(holds("DIB_Y != y", &env));
        assert!(!holds("DIB_Y", &env));
    }

    #[test]
    fn pkg_map_by_family_then_default() {
        let map: Value = serde_json::from_str(
            r#"{"family": {"debian": {"json-tool": "jq"}}, "default": {"json-tool": "jq1"}}"#,
        )
        .unwrap();
        assert_eq!(mapped(&map, "debian", "json-tool"), "jq");
        assert_eq!(mapped(&map, "redhat", "json-tool"), "jq1");
        assert_eq!(mapped(&map, "debian", "curl"), "curl");
    }
}
