//! What a build must undo if it is stopped: every temporary path it is writing and every
//! child process it runs are registered here, and Ctrl-C or SIGTERM stops the children,
//! removes the paths and exits 130 or 143, so nothing half-written is left behind.
//! (SIGKILL cannot be caught: the next build sweeps what a dead one left, see
//! [`crate::io::atomic::sweep`].)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Default)]
struct Registry {
    paths: BTreeSet<PathBuf>,
    /// Process groups of running children (each child leads its own).
    groups: BTreeSet<i32>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry { paths: BTreeSet::new(), groups: BTreeSet::new() });

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Starts the thread that waits for SIGINT and SIGTERM; call once, early in `main`.
pub fn on_signals() -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        if let Some(signal) = signals.forever().next() {
            // Held until exit: nothing new is registered (so created) meanwhile.
            let reg = registry();
            stop(&reg.groups);
            for path in reg.paths.iter().rev() {
                remove(path);
            }
            let name = if signal == SIGINT { "interrupted" } else { "terminated" };
            eprintln!("\nsmelt: {name}; removed what this build had written");
            std::process::exit(128 + signal);
        }
    })?;
    Ok(())
}

/// SIGTERM to every child's group, then SIGKILL to what is still there after a second.
fn stop(groups: &BTreeSet<i32>) {
    let alive = |g: i32| unsafe { libc::kill(-g, 0) } == 0;
    for &g in groups {
        unsafe { libc::kill(-g, libc::SIGTERM) };
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    while groups.iter().any(|&g| alive(g)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for &g in groups.iter().filter(|&&g| alive(g)) {
        unsafe { libc::kill(-g, libc::SIGKILL) };
    }
}

pub fn remove(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            let _ = std::fs::remove_dir_all(path);
        }
        Ok(_) => {
            let _ = std::fs::remove_file(path);
        }
        Err(_) => {}
    }
}

/// Registers `path` for removal if the build is stopped; before the path is created.
pub fn track(path: &Path) {
    registry().paths.insert(path.to_path_buf());
}

/// The path was published, removed or kept on purpose.
pub fn untrack(path: &Path) {
    registry().paths.remove(path);
}

/// Runs `cmd` to its end in a process group of its own, stopped with the build.
pub fn status(cmd: &mut Command) -> std::io::Result<ExitStatus> {
    let mut child = spawn(cmd)?;
    let status = child.wait();
    finished(&child);
    status
}

/// As [`status`], collecting stdout and stderr.
pub fn output(cmd: &mut Command) -> std::io::Result<Output> {
    use std::process::Stdio;
    let child = spawn(cmd.stdout(Stdio::piped()).stderr(Stdio::piped()))?;
    let pid = child.id() as i32;
    let out = child.wait_with_output();
    registry().groups.remove(&pid);
    out
}

/// Children never read smelt's stdin: in a process group of their own, reading the
/// terminal would stop them.
fn spawn(cmd: &mut Command) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    // Registered under the lock, so a signal arriving now stops it too.
    let mut reg = registry();
    let child = cmd.process_group(0).stdin(std::process::Stdio::null()).spawn()?;
    reg.groups.insert(child.id() as i32);
    Ok(child)
}

/// Starts `cmd` in a process group of its own, stopped with the build, its stdin as the
/// caller set it (a session driven through a pipe); call [`finished`] once it exited.
pub fn start(cmd: &mut Command) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    let mut reg = registry();
    let child = cmd.process_group(0).spawn()?;
    reg.groups.insert(child.id() as i32);
    Ok(child)
}

/// Stops what is left of a child started with [`start`] (its whole group) and forgets it.
pub fn kill(child: &mut Child) {
    let group = child.id() as i32;
    stop(&BTreeSet::from([group]));
    let _ = child.wait();
    finished(child);
}

pub fn finished(child: &Child) {
    registry().groups.remove(&(child.id() as i32));
}
