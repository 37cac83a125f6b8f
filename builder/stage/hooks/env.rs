//! What hooks run with, as diskimage-builder's disk-image-create gives it: the hooks
//! directory laid out as DIB lays it out, the caller's `DIB_*` variables, DIB's own
//! (`TMP_HOOKS_PATH`, `TMP_MOUNT_PATH`, `TARGET_ROOT`, `IMAGE_NAME`, `IMAGE_ELEMENT`,
//! `IMAGE_ELEMENT_YAML`, `get_image_element_array`, `ELEMENTS_PATH`, `DIB_ENV`,
//! `DIB_ARGS`, `_LIB`, `DIB_OFFLINE`, …), every param as `SMELT_PARAM_*`, what the
//! elements' `environment.d` files set, and each element's directory (`ELEMENT_DIR`).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

use crate::element::hooks::IN_IMAGE;
use crate::element::{Element, FileKind, Origin};
use crate::io::source::Source;
use crate::plan::{param_env_name, param_env_value, Plan};
use crate::tree;

/// What a hook runs with.
pub struct HookEnv {
    /// Variables every hook gets (params, `DIB_*`, `environment.d` results, …).
    pub vars: BTreeMap<String, String>,
    /// What hooks inside the image get instead of the host's value (the CA bundle's
    /// place as they see it).
    pub chroot_vars: BTreeMap<String, String>,
    pub target_root: PathBuf,
    /// Host side of what chroot hooks see as `IN_IMAGE` (`/tmp/in_target.d`).
    pub tmp_hooks: PathBuf,
    pub logs: PathBuf,
    pub no_network: bool,
    pub element_dirs: BTreeMap<String, PathBuf>,
    /// Package repositories bound in for the install phases (host directory, where
    /// hooks see it), see `stage::repos`.
    pub repos: Vec<(PathBuf, PathBuf)>,
}

/// The environment of every hook of `plan`, staged in `work` with the image at `root`.
pub fn hook_env(plan: &Plan, work: &Path, root: &Path) -> anyhow::Result<HookEnv> {
    let tmp_hooks = work.join("tmp-hooks");
    fs::create_dir_all(&tmp_hooks)?;
    let element_dirs = element_dirs(&plan.resolved.elements, work)?;
    lay_out(plan, &tmp_hooks)?;
    let lib = dib_lib(&element_dirs);
    if let Some(lib) = &lib {
        fs::copy(lib.join("dib-run-parts"), tmp_hooks.join("dib-run-parts")).ok();
    }
    let mut vars = passed_from_caller();
    vars.extend(dib_vars(plan, work, root, &tmp_hooks)?);
    if let Some(lib) = &lib {
        vars.insert("_LIB".into(), lib.display().to_string());
        vars.insert("DIB_RUN_PARTS".into(), tmp_hooks.join("dib-run-parts").display().to_string());
    }
    vars.extend(element_vars(plan, &element_dirs));
    let env_d = environment_d(&plan.resolved.elements, &vars, work)?;
    vars.extend(env_d);
    let host_path = format!(
        "{}:{}:{}",
        tmp_hooks.join(super::tools::BIN).display(),
        tmp_hooks.join("bin").display(),
        vars.get("PATH").map_or("/usr/bin:/bin", String::as_str)
    );
    vars.insert("PATH".into(), host_path);
    let chroot_vars = trusted_cas(&tmp_hooks)?;
    Ok(HookEnv {
        vars,
        chroot_vars,
        target_root: root.to_path_buf(),
        tmp_hooks,
        logs: work.join("logs"),
        no_network: plan.offline,
        element_dirs,
        repos: Vec::new(),
    })
}

/// What hooks get of the caller's environment: `DIB_*`, the proxies, pip's and the CA
/// bundle's settings, and the basics (`PATH`, `HOME`, …); with `DIB_ENV`, the `DIB_*`
/// ones as `declare -x` lines, as disk-image-create gives it.
fn passed_from_caller() -> BTreeMap<String, String> {
    const BASICS: [&str; 9] =
        ["PATH", "HOME", "USER", "LOGNAME", "TERM", "http_proxy", "https_proxy", "no_proxy", "DISTRO_NAME"];
    let mut vars: BTreeMap<String, String> = std::env::vars()
        .filter(|(k, _)| {
            k.starts_with("DIB_")
                || BASICS.contains(&k.as_str())
                || PIP_PASSED.contains(&k.as_str())
                || CA_VARS.contains(&k.as_str())
        })
        .collect();
    let dib: Vec<String> = vars
        .iter()
        .filter(|(k, _)| k.starts_with("DIB_"))
        .map(|(k, v)| format!("declare -x {k}=\"{v}\""))
        .collect();
    vars.insert("DIB_ENV".into(), dib.join("\n"));
    vars
}

/// DIB's own variables for the image: what disk-image-create was given, where the
/// image, the build and the hooks are, the distro, and the defaults DIB sets (the
/// caller's `DIB_*` win over those).
fn dib_vars(
    plan: &Plan,
    work: &Path,
    root: &Path,
    tmp_hooks: &Path,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut vars = BTreeMap::new();
    let mut set = |k: &str, v: String| vars.insert(k.to_string(), v);
    // What disk-image-create would have been given: the name and the elements (not this
    // build's paths, which would reach images through DIB's manifests element).
    set("DIB_ARGS", format!("-o {} {}", plan.image.name, plan.image.elements.join(" ")));
    set("LC_ALL", "C".into());
    set("TARGET_ROOT", root.display().to_string());
    set("TMP_MOUNT_PATH", root.display().to_string());
    // DIB's build directory, of which the image root is `mnt/` (some hooks write to
    // `$TMP_BUILD_DIR/mnt/...`), and the one for DIB's own image files.
    set("TMP_BUILD_DIR", work.display().to_string());
    fs::create_dir_all(work.join("image"))?;
    set("TMP_IMAGE_DIR", work.join("image").display().to_string());
    set("TMP_HOOKS_PATH", tmp_hooks.display().to_string());
    set("SMELT_IMAGE_NAME", plan.image.name.clone());
    set("IMAGE_NAME", plan.image.name.clone());
    set("ARCH", crate::platform::arch().into());
    set("DISTRO_NAME", plan.distro.clone());
    // What the base says of itself, unless the caller says otherwise.
    for (key, value) in [("DIB_RELEASE", &plan.release), ("DIB_INIT_SYSTEM", &plan.init_system)] {
        if let (Some(v), None) = (value, std::env::var_os(key)) {
            set(key, v.clone());
        }
    }
    if plan.offline {
        set("DIB_OFFLINE", "1".into());
        set("SMELT_OFFLINE", "1".into());
    }
    if let Some(epoch) = plan.epoch {
        set("SOURCE_DATE_EPOCH", epoch.to_string());
    }
    let defaults = [
        ("DIB_DEBUG_TRACE", "0".to_string()),
        ("DIB_DEFAULT_INSTALLTYPE", "source".into()),
        ("DIB_PYTHON_EXEC", "python3".into()),
        ("DIB_IMAGE_CACHE", crate::cache::dir().join(crate::cache::IMAGE_CREATE).display().to_string()),
    ];
    for (k, v) in defaults {
        vars.insert(k.into(), std::env::var(k).unwrap_or(v));
    }
    Ok(vars)
}

/// The elements as DIB's element-info gives them (a list, a YAML map, and the bash
/// function hooks call to get the map as an associative array), `ELEMENTS_PATH`, and
/// every param as `SMELT_PARAM_ELEMENT_PARAM`.
fn element_vars(plan: &Plan, element_dirs: &BTreeMap<String, PathBuf>) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    let names: Vec<&str> = plan.resolved.elements.iter().map(|e| e.name.as_str()).collect();
    vars.insert("IMAGE_ELEMENT".into(), names.join(" "));
    let yaml: String = names.iter().map(|n| format!("{n}: {}\n", element_dirs[*n].display())).collect();
    vars.insert("IMAGE_ELEMENT_YAML".into(), yaml);
    let array: String = names.iter().map(|n| format!("[{n}]={} ", element_dirs[*n].display())).collect();
    vars.insert("BASH_FUNC_get_image_element_array%%".into(), format!("() {{  echo \"{array}\"\n}}"));
    let paths: std::collections::BTreeSet<String> =
        element_dirs.values().filter_map(|d| d.parent()).map(|d| d.display().to_string()).collect();
    vars.insert("ELEMENTS_PATH".into(), paths.into_iter().collect::<Vec<_>>().join(":"));
    for (element, params) in &plan.params {
        for (k, v) in params {
            vars.insert(param_env_name(element, k), param_env_value(v));
        }
    }
    vars
}

/// pip's settings a hook gets from the caller: an index or mirror (DIB's
/// `DIB_PYPI_MIRROR_URL` is passed as a `DIB_*` variable), and how long to wait.
const PIP_PASSED: [&str; 5] = [
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_TRUSTED_HOST",
    "PIP_DEFAULT_TIMEOUT",
    "PIP_DISABLE_PIP_VERSION_CHECK",
];

/// The variables tools read a CA bundle from (pip, requests, OpenSSL, curl, git).
const CA_VARS: [&str; 5] =
    ["PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO"];

/// Where hooks inside the image find the host's CA bundle: in the hooks directory
/// (`IN_IMAGE`), which is bound in while they run and is never part of the image.
const CA_INSIDE: &str = "smelt-ca.pem";

/// Hooks inside the image trust what the build host trusts, so a registry reached
/// through a proxy with its own CA works from them as from the host: the host's CA
/// bundle (the first of [`CA_VARS`] set, else Debian's or Red Hat's system bundle) is
/// copied into the hooks directory and every CA variable points there. Returns those
/// variables, for chroot hooks.
fn trusted_cas(tmp_hooks: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let from_env = CA_VARS.iter().filter_map(|v| std::env::var(v).ok()).map(PathBuf::from);
    let system =
        ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"].map(PathBuf::from);
    let Some(bundle) = from_env.chain(system).find(|p| p.is_file()) else {
        return Ok(BTreeMap::new());
    };
    fs::copy(&bundle, tmp_hooks.join(CA_INSIDE))
        .with_context(|| format!("copying the CA bundle {} for hooks", bundle.display()))?;
    Ok(CA_VARS.iter().map(|v| (v.to_string(), format!("{IN_IMAGE}/{CA_INSIDE}"))).collect())
}

/// The element folders that are smelt's own concepts, not DIB's, and stay out of the
/// hooks directory (a `root/` can be a whole filesystem).
const NOT_HOOKS: [&str; 6] = ["root", "templates", "iso", "config-drive", "tests", "__pycache__"];

/// The hooks directory as DIB's generate_hooks makes it: every element's folders merged
/// into one (so `$(dirname $0)/../static` and `../bin` see all elements'), the first
/// element's file winning; each planned hook at `PHASE/NAME` (the install type chosen,
/// smelt's package installs); and smelt's tools (`super::tools`).
fn lay_out(plan: &Plan, dir: &Path) -> anyhow::Result<()> {
    let phases: Vec<&str> = crate::element::hooks::PHASES.iter().map(|(p, _)| *p).collect();
    let env = |k: &str| std::env::var(k).ok();
    for e in &plan.resolved.elements {
        // The DIB core elements smelt does itself bring their tools, not their hooks.
        let native = crate::element::hooks::done_natively(e);
        for f in &e.files {
            let top = f.rel.split('/').next().unwrap_or_default();
            if NOT_HOOKS.contains(&top) || f.rel.ends_with(".pyc") || (native && phases.contains(&top)) {
                continue;
            }
            let entry = match &f.kind {
                FileKind::Dir => tree::Entry::dir(f.mode, 0, &e.name),
                FileKind::Symlink(t) => tree::Entry::symlink(t, 0, &e.name),
                FileKind::File(src) => tree::Entry::file(src.clone(), 0, f.mode, 0, &e.name),
                FileKind::Device { .. } => continue,
            };
            // A file of a chosen install type's folder is also beside the phase's hooks,
            // as install-types links it, for scripts that install it from `$(dirname $0)`.
            let linked = crate::element::hooks::chosen_install_file(&f.rel, &env)
                .map(|n| dir.join("install.d").join(n));
            for dest in std::iter::once(dir.join(&f.rel)).chain(linked) {
                if fs::symlink_metadata(&dest).is_ok() {
                    continue;
                }
                fs::create_dir_all(dest.parent().unwrap_or(dir))?;
                tree::disk::write_entry(&entry, &dest)
                    .with_context(|| format!("element `{}`: copying {}", e.name, f.rel))?;
            }
        }
    }
    // The planned hooks are what runs, whatever an element left at their names.
    for hook in plan.hooks.by_phase.values().flatten() {
        let dest = dir.join(hook.phase).join(&hook.name);
        fs::create_dir_all(dest.parent().expect("in a phase"))?;
        crate::cleanup::remove(&dest);
        fs::write(&dest, hook.script.read_all()?)?;
        fs::set_permissions(&dest, fs::Permissions::from_mode(0o755))?;
    }
    super::tools::write(dir, plan.builtins.hook_tools(plan.family))?;
    Ok(())
}

/// DIB's `lib/` (common-functions, dib-run-parts), when an element comes from a DIB
/// install (`…/diskimage_builder/elements/NAME` beside `…/diskimage_builder/lib`).
fn dib_lib(element_dirs: &BTreeMap<String, PathBuf>) -> Option<PathBuf> {
    if let Ok(lib) = std::env::var("DIB_LIB") {
        return Some(PathBuf::from(lib));
    }
    element_dirs
        .values()
        .filter_map(|d| Some(d.parent()?.parent()?.join("lib")))
        .find(|lib| lib.join("common-functions").is_file())
}

/// `ELEMENT_DIR` for each element: its directory, or a copy of a built-in one.
fn element_dirs(elements: &[Element], work: &Path) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    let mut dirs = BTreeMap::new();
    for e in elements {
        let dir = match &e.origin {
            // Absolute: hooks run with the work directory as their current directory.
            Origin::Dir(d) => std::path::absolute(d)?,
            Origin::BuiltIn => {
                let dir = work.join("elements").join(&e.name);
                for f in &e.files {
                    let entry = match &f.kind {
                        FileKind::Dir => tree::Entry::dir(f.mode, 0, &e.name),
                        FileKind::Symlink(t) => tree::Entry::symlink(t, 0, &e.name),
                        FileKind::File(src) => tree::Entry::bytes(src.read_all()?, f.mode, 0, &e.name),
                        FileKind::Device { .. } => continue,
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

/// Sources every `environment.d` file (all elements, in file-name order, as DIB does)
/// in one shell and returns the variables they set.
fn environment_d(
    elements: &[Element],
    base: &BTreeMap<String, String>,
    work: &Path,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut files: Vec<(String, String, Source)> = Vec::new();
    for e in elements {
        for (name, f) in e.files_under("environment.d") {
            if let FileKind::File(src) = &f.kind {
                files.push((name.to_string(), e.name.clone(), src.clone()));
            }
        }
    }
    if files.is_empty() {
        return Ok(BTreeMap::new());
    }
    files.sort_by(|a, b| crate::element::hooks::dib_order(&a.0, &b.0));
    let dir = work.join("environment.d");
    fs::create_dir_all(&dir)?;
    let mut script = String::from("set -a\n");
    for (name, element, src) in &files {
        let path = dir.join(format!("{element}--{name}"));
        fs::write(&path, src.read_all()?)?;
        script.push_str(&format!(
            ". '{}' || {{ echo \"element \\`{element}\\`: environment.d/{name} failed\" >&2; exit 1; }}\n",
            path.display()
        ));
    }
    script.push_str("env -0\n");
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env_clear()
        .envs(base)
        .output()
        .context("running bash to source environment.d")?;
    if !out.status.success() {
        // DIB's files say why on stdout as often as on stderr.
        let said =
            format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        bail!("sourcing environment.d: {}", said.trim().replace('\n', "\n  "));
    }
    let mut vars = BTreeMap::new();
    for pair in out.stdout.split(|b| *b == 0).filter(|p| !p.is_empty()) {
        let text = String::from_utf8_lossy(pair);
        if let Some((k, v)) = text.split_once('=') {
            if base.get(k).map(String::as_str) != Some(v) && !matches!(k, "PWD" | "SHLVL" | "_" | "OLDPWD") {
                vars.insert(k.to_string(), v.to_string());
            }
        }
    }
    Ok(vars)
}
