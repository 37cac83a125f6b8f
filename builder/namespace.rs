//! Running a hook isolated: inside the image root (chroot) with the host's /dev, /proc
//! and /sys bound in, and without a network for `--offline`. As root this needs only a
//! mount namespace; otherwise a user namespace maps the caller to root first.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Clone, Default)]
pub struct Isolation {
    /// Run inside this directory as `/`.
    pub chroot: Option<PathBuf>,
    /// Host directory → directory inside the chroot (which must exist).
    pub binds: Vec<(PathBuf, PathBuf)>,
    /// Directories made read-only for the command (bound onto themselves, then
    /// remounted read-only), so not even root can write there.
    pub read_only: Vec<PathBuf>,
    pub no_network: bool,
}

/// Arranges for `cmd` to start isolated as described. The namespaces are set up in the
/// child between fork and exec, so nothing here affects smelt itself.
pub fn isolate(cmd: &mut Command, iso: &Isolation) -> anyhow::Result<()> {
    let is_root = unsafe { libc::geteuid() } == 0;
    let mut flags = 0;
    if iso.chroot.is_some() || !iso.read_only.is_empty() {
        flags |= libc::CLONE_NEWNS;
    }
    if iso.no_network {
        flags |= libc::CLONE_NEWNET;
    }
    if flags == 0 {
        return Ok(());
    }
    if !is_root {
        flags |= libc::CLONE_NEWUSER;
    }
    let cstr = |p: &Path| CString::new(p.as_os_str().as_bytes()).expect("paths have no NUL");
    let root = iso.chroot.as_deref().map(cstr);
    let binds: Vec<(CString, CString)> = iso
        .binds
        .iter()
        .map(|(host, inside)| {
            let target = iso
                .chroot
                .as_deref()
                .unwrap_or(Path::new("/"))
                .join(inside.strip_prefix("/").unwrap_or(inside));
            (cstr(host), cstr(&target))
        })
        .collect();
    let read_only: Vec<CString> = iso.read_only.iter().map(|p| cstr(p)).collect();
    let uid_map = format!("0 {} 1", unsafe { libc::getuid() });
    let gid_map = format!("0 {} 1", unsafe { libc::getgid() });
    let map_user = !is_root;
    unsafe {
        cmd.pre_exec(move || {
            check(libc::unshare(flags))?;
            if map_user {
                write_proc(c"/proc/self/setgroups", b"deny")?;
                write_proc(c"/proc/self/uid_map", uid_map.as_bytes())?;
                write_proc(c"/proc/self/gid_map", gid_map.as_bytes())?;
            }
            if flags & libc::CLONE_NEWNS != 0 {
                let none = std::ptr::null();
                check(libc::mount(
                    none,
                    c"/".as_ptr(),
                    none,
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ))?;
                for (src, dst) in &binds {
                    check(libc::mount(
                        src.as_ptr(),
                        dst.as_ptr(),
                        none,
                        libc::MS_BIND | libc::MS_REC,
                        std::ptr::null(),
                    ))?;
                }
                for dir in &read_only {
                    check(libc::mount(
                        dir.as_ptr(),
                        dir.as_ptr(),
                        none,
                        libc::MS_BIND | libc::MS_REC,
                        std::ptr::null(),
                    ))?;
                    let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY;
                    check(libc::mount(none, dir.as_ptr(), none, flags, std::ptr::null()))?;
                }
            }
            if let Some(root) = &root {
                check(libc::chroot(root.as_ptr()))?;
                check(libc::chdir(c"/".as_ptr()))?;
            }
            Ok(())
        });
    }
    Ok(())
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Writes a /proc control file with raw calls: this runs between fork and exec.
fn write_proc(path: &std::ffi::CStr, data: &[u8]) -> io::Result<()> {
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        libc::close(fd);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether chroot hooks can be isolated here; checked once before the first one so the
/// error can name the element instead of failing inside a hook.
pub fn available(no_network: bool) -> Result<(), Unavailable> {
    let is_root = unsafe { libc::geteuid() } == 0;
    let mut flags = libc::CLONE_NEWNS;
    if no_network {
        flags |= libc::CLONE_NEWNET;
    }
    if !is_root {
        flags |= libc::CLONE_NEWUSER;
    }
    let mut probe = Command::new("/bin/true");
    unsafe {
        probe.pre_exec(move || check(libc::unshare(flags)));
    }
    let kind = if is_root { "mount" } else { "user" };
    match probe.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(status) => Err(Unavailable::Probe { kind, status }),
        Err(error) => Err(Unavailable::Refused { kind, error }),
    }
}

/// Why hooks cannot be isolated on this host.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    #[error("a probe in a new {kind} namespace exited with {status}")]
    Probe { kind: &'static str, status: std::process::ExitStatus },
    #[error(
        "cannot create a {kind} namespace ({error}): run smelt as root, or allow unprivileged user namespaces \
         (sysctl kernel.unprivileged_userns_clone=1)"
    )]
    Refused { kind: &'static str, error: io::Error },
}
