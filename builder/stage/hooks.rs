//! Phase hooks, as diskimage-builder runs them: per phase, the scripts of every element
//! in one order by file name; host phases see the image as `TARGET_ROOT`, chroot phases
//! run inside it.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context as _};

use super::namespace::{isolate, Isolation};
use crate::element::{Element, FileKind};
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

/// Collects hooks across elements. Like dib-run-parts, only executable files run; the
/// same script name in one phase of two elements is an error, since their order would
/// be a coin toss.
pub fn collect(elements: &[Element]) -> anyhow::Result<Hooks> {
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
    // Package lists become one hook per phase, as DIB's package-installs element runs.
    let family = super::packages::family(elements);
    let lists = super::packages::collect(elements, family, &|k| std::env::var(k).ok())?;
    let apt_cache = crate::stage::base::rootfs::cache_dir().join("apt");
    for (phase, list) in lists {
        if list.install.is_empty() && list.uninstall.is_empty() {
            continue;
        }
        let hook = super::packages::hook(phase, &list, &apt_cache)?;
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

/// How long one script took, for the phase table.
pub struct Timing {
    pub name: String,
    pub element: String,
    pub seconds: f64,
}

/// A hook exited with an error; the build keeps its work directory for inspection.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HookFailed(pub String);

/// Runs one hook; on failure the error names the element, phase, script, exit status
/// and the tail of what it printed.
pub fn run(hook: &Hook, side: Side, env: &HookEnv) -> anyhow::Result<Timing> {
    let dir = env.tmp_hooks.join("hooks").join(hook.phase);
    fs::create_dir_all(&dir)?;
    let script = dir.join(&hook.name);
    fs::write(&script, hook.script.read_all()?).with_context(|| format!("writing {}", script.display()))?;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755))?;
    fs::create_dir_all(&env.logs)?;
    let log_path = env.logs.join(format!("{}-{}.log", hook.phase, hook.name));
    let log = fs::File::create(&log_path)?;

    let mut cmd;
    let mut made = Vec::new();
    match side {
        Side::Host => {
            cmd = Command::new(&script);
            if env.no_network {
                isolate(&mut cmd, &Isolation { chroot: None, binds: vec![], no_network: true })?;
            }
        }
        Side::Chroot => {
            cmd = Command::new(Path::new("/tmp/in_target.d/hooks").join(hook.phase).join(&hook.name));
            let mut binds = Vec::new();
            for (host, inside) in [("/dev", "dev"), ("/proc", "proc"), ("/sys", "sys")] {
                binds.push((PathBuf::from(host), PathBuf::from(inside)));
            }
            binds.push((env.tmp_hooks.clone(), PathBuf::from("tmp/in_target.d")));
            binds.extend(hook.binds.iter().cloned());
            for (_, inside) in &binds {
                made.extend(make_mount_point(&env.target_root, inside)?);
            }
            isolate(
                &mut cmd,
                &Isolation { chroot: Some(env.target_root.clone()), binds, no_network: env.no_network },
            )?;
        }
    }
    cmd.env_clear()
        .envs(&env.vars)
        .env("SMELT_PHASE", hook.phase)
        .env("ELEMENT_DIR", env.element_dirs.get(&hook.element).map(|p| p.as_os_str()).unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    if side == Side::Chroot {
        cmd.env("TARGET_ROOT", "/")
            .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    }
    let started = Instant::now();
    let status = crate::cleanup::status(&mut cmd);
    for dir in made.iter().rev() {
        let _ = fs::remove_dir(dir);
    }
    let place = format!("element `{}`, phase {}, script {}", hook.element, hook.phase, hook.name);
    let status = status.with_context(|| {
        format!(
            "{place}: could not start it (is its #! interpreter in the {}?)",
            match side {
                Side::Host => "host",
                Side::Chroot => "image",
            }
        )
    })?;
    if !status.success() {
        let text = fs::read_to_string(&log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n    ");
        let how = match status.code() {
            Some(c) => format!("exited with status {c}"),
            None => format!("was killed ({status})"),
        };
        return Err(HookFailed(format!(
            "hook failed: {place} {how}\n  last lines of its output:\n    {tail}\n  full log: {}",
            log_path.display()
        ))
        .into());
    }
    Ok(Timing {
        name: hook.name.clone(),
        element: hook.element.clone(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Creates a mount point inside the image if missing; returns what it created so it can
/// be removed again and never reach the image.
fn make_mount_point(root: &Path, inside: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut made = Vec::new();
    let mut p = root.to_path_buf();
    for part in inside.components() {
        p.push(part);
        if !p.exists() {
            fs::create_dir(&p).with_context(|| format!("creating mount point {}", p.display()))?;
            made.push(p.clone());
        }
    }
    Ok(made)
}

/// Sources every `environment.d` file (all elements, in file-name order, as DIB does)
/// in one shell and returns the variables they set.
pub fn environment_d(
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
