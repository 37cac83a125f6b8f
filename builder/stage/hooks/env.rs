//! What hooks run with, as diskimage-builder gives it: the caller's `DIB_*` variables,
//! `TARGET_ROOT`, `TMP_HOOKS_PATH`, every param as `SMELT_PARAM_*`, what the elements'
//! `environment.d` files set, and each element's directory (`ELEMENT_DIR`).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

use crate::element::{Element, FileKind, Origin};
use crate::io::source::Source;
use crate::plan::{param_env_name, param_env_value, Plan};
use crate::tree;

/// What a hook runs with.
pub struct HookEnv {
    /// Variables every hook gets (params, `DIB_*`, `environment.d` results, …).
    pub vars: BTreeMap<String, String>,
    pub target_root: PathBuf,
    /// Host side of what chroot hooks see as `/tmp/in_target.d`.
    pub tmp_hooks: PathBuf,
    pub logs: PathBuf,
    pub no_network: bool,
    pub element_dirs: BTreeMap<String, PathBuf>,
}

/// The environment of every hook of `plan`, staged in `work` with the image at `root`.
pub fn hook_env(plan: &Plan, work: &Path, root: &Path) -> anyhow::Result<HookEnv> {
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
    vars.insert("ARCH".into(), crate::platform::arch().into());
    if let Some(epoch) = plan.epoch {
        vars.insert("SOURCE_DATE_EPOCH".into(), epoch.to_string());
    }
    for (element, params) in &plan.params {
        for (k, v) in params {
            vars.insert(param_env_name(element, k), param_env_value(v));
        }
    }
    let env_d = environment_d(&plan.resolved.elements, &vars, work)?;
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
    files.sort_by(|a, b| a.0.cmp(&b.0));
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
        bail!("sourcing environment.d: {}", String::from_utf8_lossy(&out.stderr).trim());
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
