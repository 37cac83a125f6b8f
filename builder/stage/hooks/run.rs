//! Running one hook as diskimage-builder does: host phases as a plain process with
//! `TARGET_ROOT` pointing at the image, chroot phases inside the image root in a mount
//! namespace (and a user namespace when not root), with /dev, /proc, /sys, the hooks
//! directory and smelt's caches bound in; without a network for `--offline`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Instant;

use anyhow::Context as _;

use super::env::HookEnv;
use crate::element::hooks::{Hook, Side, IN_IMAGE};
use crate::namespace::{isolate, Isolation};

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
    fs::create_dir_all(&env.logs)?;
    let log_path = env.logs.join(format!("{}-{}.log", hook.phase, hook.name));
    let log = fs::File::create(&log_path)?;
    let (mut cmd, made) = match side {
        Side::Host => (host_command(hook, env)?, Vec::new()),
        Side::Chroot => chroot_command(hook, env)?,
    };
    cmd.env_clear()
        .envs(&env.vars)
        .env("SMELT_PHASE", hook.phase)
        .env("ELEMENT_DIR", env.element_dirs.get(&hook.element).map(|p| p.as_os_str()).unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    match side {
        Side::Host => host_env(&mut cmd, hook, env),
        Side::Chroot => chroot_env(&mut cmd, env),
    }
    let started = Instant::now();
    let status = crate::cleanup::status(&mut cmd);
    for dir in made.iter().rev() {
        let _ = fs::remove_dir(dir);
    }
    let place = format!("element `{}`, phase {}, script {}", hook.element, hook.phase, hook.name);
    let status = status.with_context(|| {
        let inside = if side == Side::Host { "host" } else { "image" };
        format!("{place}: could not start it (is its #! interpreter in the {inside}?)")
    })?;
    if !status.success() {
        return Err(failed(&place, status, &log_path).into());
    }
    Ok(Timing {
        name: hook.name.clone(),
        element: hook.element.clone(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// A host hook, laid out with every other hook in the hooks directory (see
/// `env::lay_out`), run from the work directory: whatever it writes beside itself
/// (DIB's manifests element writes IMAGE_NAME.d/) goes there, never the caller's.
fn host_command(hook: &Hook, env: &HookEnv) -> anyhow::Result<Command> {
    let mut cmd = Command::new(env.tmp_hooks.join(hook.phase).join(&hook.name));
    cmd.current_dir(env.tmp_hooks.parent().unwrap_or(&env.tmp_hooks));
    if env.no_network {
        isolate(&mut cmd, &Isolation { chroot: None, binds: vec![], no_network: true, read_only: vec![] })?;
    }
    Ok(cmd)
}

/// A hook inside the image, with what it sees bound in; returns the command and the
/// mount points it made in the image, to be removed once it ran.
fn chroot_command(hook: &Hook, env: &HookEnv) -> anyhow::Result<(Command, Vec<PathBuf>)> {
    let mut cmd = Command::new(Path::new(IN_IMAGE).join(hook.phase).join(&hook.name));
    let mut binds = Vec::new();
    for (host, inside) in [("/dev", "dev"), ("/proc", "proc"), ("/sys", "sys")] {
        binds.push((PathBuf::from(host), PathBuf::from(inside)));
    }
    binds.push((env.tmp_hooks.clone(), PathBuf::from(IN_IMAGE.trim_start_matches('/'))));
    for (cached, inside) in crate::cache::IN_HOOKS {
        let host = crate::cache::dir().join(cached);
        // apt wants its `partial/` download folder there already.
        let made = if cached.starts_with("apt/") { host.join("partial") } else { host.clone() };
        fs::create_dir_all(&made).with_context(|| format!("creating {}", made.display()))?;
        binds.push((host, PathBuf::from(inside)));
    }
    if crate::stage::repos::PHASES.contains(&hook.phase) {
        binds.extend(env.repos.iter().cloned());
    }
    let mut made = Vec::new();
    for (_, inside) in &binds {
        made.extend(make_mount_point(&env.target_root, inside)?);
    }
    let isolation = Isolation {
        chroot: Some(env.target_root.clone()),
        binds,
        no_network: env.no_network,
        read_only: vec![],
    };
    isolate(&mut cmd, &isolation)?;
    Ok((cmd, made))
}

/// A host hook's `PATH`: the stand-ins its origin asks for first (DIB's image writers
/// get smelt's `cpio`).
fn host_env(cmd: &mut Command, hook: &Hook, env: &HookEnv) {
    if let Some(first) = hook.harvest.as_ref().and_then(|h| h.path_first()) {
        let path = env.vars.get("PATH").map_or("/usr/bin:/bin", String::as_str);
        cmd.env("PATH", format!("{}:{path}", env.tmp_hooks.join(first).display()));
    }
}

/// What a hook inside the image runs with, as DIB's run_in_target gives it: the hooks'
/// tools first on `PATH`, root's home, the host's CA bundle, and pip pointed at the
/// bound caches (and at nothing else `--offline`).
fn chroot_env(cmd: &mut Command, env: &HookEnv) {
    let wheelhouse = Path::new("/").join(crate::cache::WHEELHOUSE);
    cmd.envs(&env.chroot_vars)
        .env("PIP_CACHE_DIR", Path::new("/").join(crate::cache::PIP))
        .env("SMELT_WHEELHOUSE", &wheelhouse)
        .env("PIP_FIND_LINKS", &wheelhouse);
    if env.no_network {
        cmd.env("PIP_NO_INDEX", "1");
    }
    let path = format!(
        "{IN_IMAGE}/{}:{IN_IMAGE}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        super::tools::BIN
    );
    cmd.env("TARGET_ROOT", "/").env("HOME", "/root").env("PATH", path);
}

/// The error for a hook that failed: how, and the last lines of its log.
fn failed(place: &str, status: ExitStatus, log_path: &Path) -> HookFailed {
    let text = fs::read_to_string(log_path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(20)..].join("\n    ");
    let how = match status.code() {
        Some(c) => format!("exited with status {c}"),
        None => format!("was killed ({status})"),
    };
    HookFailed(format!(
        "hook failed: {place} {how}\n  last lines of its output:\n    {tail}\n  full log: {}",
        log_path.display()
    ))
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
