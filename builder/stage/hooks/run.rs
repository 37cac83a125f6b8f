//! Running one hook as diskimage-builder does: host phases as a plain process with
//! `TARGET_ROOT` pointing at the image, chroot phases inside the image root in a mount
//! namespace (and a user namespace when not root), with /dev, /proc, /sys and the hooks
//! directory bound in; without a network for `--offline`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::Context as _;

use super::env::HookEnv;
use crate::element::hooks::{Hook, Side};
use crate::namespace::{isolate, Isolation};

/// Where pip's cache (`SMELT_CACHE_DIR/pip`) is bound inside the image while a hook
/// runs, with `PIP_CACHE_DIR` pointing there: later builds download nothing twice, and
/// the cache never becomes part of the image.
const PIP_CACHE: &str = "var/cache/smelt-pip";

/// A wheelhouse kept in `SMELT_CACHE_DIR/pip-wheelhouse`, bound here for hooks inside
/// the image as `SMELT_WHEELHOUSE` (and `PIP_FIND_LINKS`): a hook that runs `pip
/// download -d "$SMELT_WHEELHOUSE" REQS` when online and `pip install --no-index
/// --find-links "$SMELT_WHEELHOUSE" REQS` always installs the same wheels online and
/// `--offline` (where `PIP_NO_INDEX=1`), so an offline rebuild gives the same bytes.
const WHEELHOUSE: &str = "var/cache/smelt-wheelhouse";

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
    // Laid out with every other hook in the hooks directory (see `env::lay_out`).
    let script = env.tmp_hooks.join(hook.phase).join(&hook.name);
    fs::create_dir_all(&env.logs)?;
    let log_path = env.logs.join(format!("{}-{}.log", hook.phase, hook.name));
    let log = fs::File::create(&log_path)?;

    let mut cmd;
    let mut made = Vec::new();
    match side {
        Side::Host => {
            cmd = Command::new(&script);
            // Whatever a host hook writes beside itself (DIB's manifests element writes
            // IMAGE_NAME.d/) goes to the work directory, never the caller's.
            cmd.current_dir(env.tmp_hooks.parent().unwrap_or(&env.tmp_hooks));
            if env.no_network {
                isolate(
                    &mut cmd,
                    &Isolation { chroot: None, binds: vec![], no_network: true, read_only: vec![] },
                )?;
            }
        }
        Side::Chroot => {
            cmd = Command::new(Path::new("/tmp/in_target.d").join(hook.phase).join(&hook.name));
            let mut binds = Vec::new();
            for (host, inside) in [("/dev", "dev"), ("/proc", "proc"), ("/sys", "sys")] {
                binds.push((PathBuf::from(host), PathBuf::from(inside)));
            }
            binds.push((env.tmp_hooks.clone(), PathBuf::from("tmp/in_target.d")));
            let apt = crate::cache::dir().join("apt");
            for (cached, inside) in crate::element::packages::APT_CACHE {
                let host = apt.join(cached);
                fs::create_dir_all(host.join("partial"))
                    .with_context(|| format!("creating {}", host.display()))?;
                binds.push((host, PathBuf::from(inside)));
            }
            for (cached, inside) in [("pip", PIP_CACHE), ("pip-wheelhouse", WHEELHOUSE)] {
                let host = crate::cache::dir().join(cached);
                fs::create_dir_all(&host).with_context(|| format!("creating {}", host.display()))?;
                binds.push((host, PathBuf::from(inside)));
            }
            for (_, inside) in &binds {
                made.extend(make_mount_point(&env.target_root, inside)?);
            }
            isolate(
                &mut cmd,
                &Isolation {
                    chroot: Some(env.target_root.clone()),
                    binds,
                    no_network: env.no_network,
                    read_only: vec![],
                },
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
    if crate::element::hooks::writes_dib_image(hook) && side == Side::Host {
        let path = env.vars.get("PATH").map_or("/usr/bin:/bin", String::as_str);
        cmd.env("PATH", format!("{}:{path}", super::tools::image_writer_path(&env.tmp_hooks).display()));
    }
    if side == Side::Chroot {
        // As DIB's run_in_target: the hooks' tools first, root's home.
        let wheelhouse = Path::new("/").join(WHEELHOUSE);
        cmd.envs(&env.chroot_vars)
            .env("PIP_CACHE_DIR", Path::new("/").join(PIP_CACHE))
            .env("SMELT_WHEELHOUSE", &wheelhouse)
            .env("PIP_FIND_LINKS", &wheelhouse);
        if env.no_network {
            cmd.env("PIP_NO_INDEX", "1");
        }
        cmd
            .env("TARGET_ROOT", "/")
            .env("HOME", "/root")
            .env(
                "PATH",
                format!(
                    "/tmp/in_target.d/{}:/tmp/in_target.d/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    super::tools::BIN
                ),
            );
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
