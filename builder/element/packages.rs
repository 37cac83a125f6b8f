//! Package installs, as diskimage-builder's package-installs element does them: every
//! element's `package-installs.yaml` (DIB form, names mapped through `pkg-map`) and
//! `packages` list (native form) become one `01-package-installs` hook per phase,
//! run inside the image with its own package manager (apt, apk, dnf or zypper).

use std::collections::BTreeMap;

use anyhow::{anyhow, Context as _};
use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

use super::hooks::{Hook, PHASES};
use crate::element::{Element, FileKind};
use crate::io::source::Source;

/// What to install and remove in one phase, in element order.
#[derive(Debug, Default, PartialEq)]
pub struct Phase {
    pub install: Vec<String>,
    pub uninstall: Vec<String>,
}

/// The image's distro family for pkg-map: Debian for base-debian, else what DIB's
/// `DISTRO_NAME` says, else Debian.
pub fn family(elements: &[Element]) -> &'static str {
    if elements.iter().any(|e| e.name == "base-debian") {
        return "debian";
    }
    match std::env::var("DISTRO_NAME").unwrap_or_default().as_str() {
        "fedora" | "centos" | "rhel" | "rocky" | "almalinux" => "redhat",
        "opensuse" | "sles" => "suse",
        "alpine" => "alpine",
        _ => "debian",
    }
}

/// Reads every element's package lists. `family` is the image's distro family for
/// `pkg-map` (`debian`, `redhat`, `suse`, `alpine`); `env` answers `when` conditions.
pub fn collect(
    elements: &[Element],
    family: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<BTreeMap<&'static str, Phase>> {
    let mut phases: BTreeMap<&'static str, Phase> = BTreeMap::new();
    let arch = crate::platform::arch();
    for e in elements {
        for p in &e.manifest.packages {
            phases.entry("install.d").or_default().install.push(p.clone());
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
            let get = |key: &str| match &spec {
                Yaml::Hash(h) => h.get(&Yaml::String(key.into())).cloned(),
                _ => None,
            };
            let phase_name =
                get("phase").and_then(|v| v.as_str().map(String::from)).unwrap_or_else(|| "install.d".into());
            let Some(phase) = PHASES.iter().map(|(p, _)| *p).find(|p| *p == phase_name) else {
                anyhow::bail!(
                    "element `{}`: package-installs.yaml: {name}: unknown phase `{phase_name}`",
                    e.name
                );
            };
            if let Some(archs) = get("arch").and_then(|v| v.as_str().map(String::from)) {
                let wanted: Vec<&str> = archs.split(',').map(str::trim).collect();
                if !wanted.contains(&arch) {
                    continue;
                }
            }
            if let Some(archs) = get("not-arch").and_then(|v| v.as_str().map(String::from)) {
                if archs.split(',').map(str::trim).any(|a| a == arch) {
                    continue;
                }
            }
            if let Some(when) = get("when").and_then(|v| v.as_str().map(String::from)) {
                if !holds(&when, env) {
                    continue;
                }
            }
            let mapped = mapped(&map, family, name);
            let uninstall = get("uninstall").and_then(|v| v.as_bool()).unwrap_or(false);
            let list = phases.entry(phase).or_default();
            if uninstall {
                list.uninstall.push(mapped);
            } else {
                list.install.push(mapped);
            }
        }
    }
    Ok(phases)
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

/// The package installs of `elements`, one hook per phase that has any, as DIB's
/// package-installs element runs them.
pub fn hooks(elements: &[Element]) -> anyhow::Result<Vec<Hook>> {
    let lists = collect(elements, family(elements), &|k| std::env::var(k).ok())?;
    let apt_cache = crate::cache::dir().join("apt");
    Ok(lists
        .into_iter()
        .filter(|(_, list)| !list.install.is_empty() || !list.uninstall.is_empty())
        .map(|(phase, list)| hook(phase, &list, &apt_cache))
        .collect())
}

/// The hook that installs one phase's packages with whichever package manager the
/// image has. apt's package lists and downloads live in `apt_cache` on the host, bound
/// into the image while the hook runs (made then, never while planning), so an `--offline` build (SMELT_OFFLINE=1)
/// installs from what an earlier build fetched; the logs dpkg and apt write, which
/// carry times, are removed so the image's bytes do not depend on when it was built.
fn hook(phase: &'static str, p: &Phase, apt_cache: &std::path::Path) -> Hook {
    let (archives, lists) = (apt_cache.join("archives"), apt_cache.join("lists"));
    let install = p.install.join(" ");
    let uninstall = p.uninstall.join(" ");
    let script = format!(
        "#!/bin/sh\n# Package installs of phase {phase}, written by smelt.\nset -e\n\
         install='{install}'\nuninstall='{uninstall}'\n\
         if command -v apt-get >/dev/null 2>&1; then\n\
         \x20   export DEBIAN_FRONTEND=noninteractive\n\
         \x20   offline=\n\
         \x20   if [ \"$SMELT_OFFLINE\" = 1 ]; then\n\
         \x20       offline=--no-download\n\
         \x20       ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1 || {{ echo \"--offline: no cached package lists; build once without --offline to fetch them\" >&2; exit 1; }}\n\
         \x20   else\n\
         \x20       apt-get update -q\n\
         \x20   fi\n\
         \x20   [ -z \"$install\" ] || apt-get install -y -q --no-install-recommends $offline $install\n\
         \x20   [ -z \"$uninstall\" ] || apt-get remove -y -q $uninstall\n\
         \x20   rm -f /var/log/dpkg.log /var/log/alternatives.log /var/log/apt/*.log /var/log/apt/eipp.log.xz \\\n\
         \x20         /var/cache/debconf/*-old /var/lib/dpkg/*-old /var/cache/ldconfig/aux-cache /var/cache/apt/*.bin\n\
         elif command -v apk >/dev/null 2>&1; then\n\
         \x20   [ -z \"$install\" ] || apk add --no-cache $install\n\
         \x20   [ -z \"$uninstall\" ] || apk del $uninstall\n\
         elif command -v dnf >/dev/null 2>&1; then\n\
         \x20   [ -z \"$install\" ] || dnf install -y $install\n\
         \x20   [ -z \"$uninstall\" ] || dnf remove -y $uninstall\n\
         \x20   dnf clean all\n\
         elif command -v zypper >/dev/null 2>&1; then\n\
         \x20   [ -z \"$install\" ] || zypper --non-interactive install $install\n\
         \x20   [ -z \"$uninstall\" ] || zypper --non-interactive remove $uninstall\n\
         else\n\
         \x20   echo \"no package manager (apt-get, apk, dnf, zypper) in the image to install: $install\" >&2\n\
         \x20   exit 1\n\
         fi\n"
    );
    Hook {
        phase,
        name: "01-package-installs".into(),
        element: "package-installs".into(),
        script: Source::Bytes(script.into_bytes().into()),
        binds: vec![(archives, "var/cache/apt/archives".into()), (lists, "var/lib/apt/lists".into())],
    }
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
