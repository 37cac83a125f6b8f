//! `verify`: the user's commands, run at build time against the trimmed result as it
//! will be used — a copy of the image tree at a path the build never used (so nothing
//! can lean on the build's paths), mounted read-only (as an ISO is; root cannot write
//! there either), with a writable home and temporary directory apart. A command that
//! fails fails the build; when it could not import a module, the error says why: the
//! module is in the kit but not on the kit's `sys.path` (which it shows), or a rule
//! removed it (named, with the `keep` line or `keep-stdlib` name that restores it), or
//! the venv never had it.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context as _};

use super::{bundle, Python, Removals};
use crate::namespace::{isolate, Isolation};
use crate::path::ImagePath;
use crate::tree::Tree;

#[allow(clippy::too_many_arguments)]
pub fn run(
    tree: &Tree,
    element: &str,
    venv: &ImagePath,
    site: &ImagePath,
    python: &Python,
    commands: &[String],
    log: &Removals,
    work: &Path,
) -> anyhow::Result<()> {
    // A name the build never used: the copy's path says nothing of where the venv was.
    let stamp =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let base = work.join(format!("verify-{:08x}", stamp ^ std::process::id()));
    let root = base.join(format!("m{:x}", stamp.rotate_left(7)));
    let (home, tmp) = (base.join("home"), base.join("tmp"));
    for d in [&root, &home, &tmp] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    for (path, entry) in tree.iter() {
        crate::tree::disk::write_entry(&entry, &root.join(path.as_str()))
            .with_context(|| format!("element `{element}`: copying {path} for verify"))?;
    }
    let copy = Copy { root: root.clone(), home, tmp };
    for command in commands {
        let out =
            copy.run(command).with_context(|| format!("element `{element}`: running verify `{command}`"))?;
        if out.status.success() {
            continue;
        }
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(12)..].join("\n    ");
        let kit = Kit { tree, venv, site, python, log, copy: &copy };
        let why = missing_module(&text).map(|m| kit.explain(&m)).unwrap_or_default();
        bail!(
            "element `{element}`: verify `{command}` failed ({}) in a read-only copy of the image at {}:\n    {tail}{why}",
            out.status,
            root.display()
        );
    }
    Ok(())
}

/// The module a Python error says it could not import.
fn missing_module(text: &str) -> Option<String> {
    let at = text.rfind("No module named '")?;
    let rest = &text[at + "No module named '".len()..];
    Some(rest.split('\'').next()?.to_string())
}

/// The read-only copy of the image verify runs in.
struct Copy {
    root: std::path::PathBuf,
    home: std::path::PathBuf,
    tmp: std::path::PathBuf,
}

impl Copy {
    /// Runs `command` with `sh` in the copy, isolated as it is read-only.
    fn run(&self, command: &str) -> anyhow::Result<std::process::Output> {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", command])
            .current_dir(&self.root)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()))
            .env("HOME", &self.home)
            .env("TMPDIR", &self.tmp)
            .env("LC_ALL", "C.UTF-8");
        isolate(&mut cmd, &Isolation { read_only: vec![self.root.clone()], ..Isolation::default() })?;
        Ok(crate::cleanup::output(&mut cmd)?)
    }
}

/// The kit, as verify finds out why a module is missing from it.
struct Kit<'a> {
    tree: &'a Tree,
    venv: &'a ImagePath,
    site: &'a ImagePath,
    python: &'a Python,
    log: &'a Removals,
    copy: &'a Copy,
}

impl Kit<'_> {
    /// Why `module` (`a.b.c`) could not be imported, and what to do.
    fn explain(&self, module: &str) -> String {
        if let Some(at) = self.present(module) {
            let shown =
                at.as_str().strip_prefix(self.venv.as_str()).unwrap_or(at.as_str()).trim_start_matches('/');
            return format!(
                "\n  `{module}` is in the kit ({shown}), but the kit's Python does not look there: its sys.path is {}",
                self.sys_path()
            );
        }
        if let Some(why) = removed(module, self.venv, self.site, self.python, self.log) {
            return why;
        }
        format!(
            "\n  `{module}` is not in the kit, and no rule removed it: install it into the venv (its pip), or if it is \
             part of the standard library, add `keep-stdlib = [\"{}\"]` to [params.python-trim]",
            module.split('.').next().unwrap_or(module)
        )
    }

    /// Where the module's files are in the kit (a package's directory, a module, or an
    /// extension module), if they are.
    fn present(&self, module: &str) -> Option<ImagePath> {
        let rel = module.replace('.', "/");
        let (dir, file) = rel.rsplit_once('/').map_or(("", rel.as_str()), |(d, f)| (d, f));
        let parent = self.site.join(dir).ok()?;
        let package = parent.join(file).ok()?;
        if self.tree.get(&package).is_some() {
            return Some(package);
        }
        // `name.py`, `name.pyc`, `name.cpython-311-x86_64-linux-gnu.so`.
        self.tree
            .below(&parent)
            .map(|(p, _)| p)
            .find(|p| p.parent().as_ref() == Some(&parent) && p.file_name().split('.').next() == Some(file))
    }

    /// The kit's `sys.path`, as its own Python reports it in the copy.
    fn sys_path(&self) -> String {
        let python = format!("./{}/bin/python3", self.venv.as_str());
        let out = self.copy.run(&format!("{python} -c 'import sys; print(sys.path)'"));
        match out {
            // Paths as the image has them, not the copy's.
            Ok(o) if o.status.success() => {
                String::from_utf8_lossy(&o.stdout).trim().replace(&self.copy.root.display().to_string(), "")
            }
            _ => "(its Python did not start)".into(),
        }
    }
}

/// Which rule removed `module` (`a.b.c`: the directory or file it would load from), and
/// how to get it back.
fn removed(
    module: &str,
    venv: &ImagePath,
    site: &ImagePath,
    python: &Python,
    log: &Removals,
) -> Option<String> {
    let rel = module.replace('.', "/");
    let lib = format!("lib/python{}", python.version);
    for base in
        [site.as_str().to_string(), venv.join(&lib).map(|p| p.as_str().to_string()).unwrap_or_default()]
    {
        for candidate in [rel.clone(), format!("{rel}.py"), format!("{rel}.pyc")] {
            let Ok(at) = ImagePath::new(&format!("{base}/{candidate}")) else { continue };
            let found = log.why(&at).or_else(|| log.under(&at));
            let Some((rule, path)) = found else { continue };
            let shown =
                path.as_str().strip_prefix(venv.as_str()).unwrap_or(path.as_str()).trim_start_matches('/');
            let relative = base.strip_prefix(venv.as_str()).unwrap_or(&base).trim_start_matches('/');
            let glob = if candidate == rel {
                format!("{relative}/{rel}/**")
            } else {
                format!("{relative}/{rel}.py")
            };
            let fix = if rule == bundle::RULE {
                format!("add `keep-stdlib = [\"{}\"]`", module.split('.').next().unwrap_or(module))
            } else {
                format!("add `keep = [\"{glob}\"]`")
            };
            return Some(format!(
                "\n  `{module}` is missing because rule `{rule}` removed {shown}; {fix} to [params.python-trim] to restore it"
            ));
        }
    }
    None
}
