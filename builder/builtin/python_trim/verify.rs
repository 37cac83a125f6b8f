//! `verify`: the user's commands, run at build time against the trimmed result as it
//! will be used — a copy of the image tree at a path the build never used (so nothing
//! can lean on the build's paths), mounted read-only (as an ISO is; root cannot write
//! there either), with a writable home and temporary directory apart. A command that
//! fails fails the build; when it could not import a module, the error names the rule
//! that removed it and the `keep` line (or `keep-stdlib` name) that restores it.

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
    for command in commands {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", command])
            .current_dir(&root)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()))
            .env("HOME", &home)
            .env("TMPDIR", &tmp)
            .env("LC_ALL", "C.UTF-8");
        isolate(&mut cmd, &Isolation { read_only: vec![root.clone()], ..Isolation::default() })?;
        let out = crate::cleanup::output(&mut cmd)
            .with_context(|| format!("element `{element}`: running verify `{command}`"))?;
        if out.status.success() {
            continue;
        }
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(12)..].join("\n    ");
        let why = missing_module(&text).map(|m| explain(&m, venv, site, python, log)).unwrap_or_default();
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

/// Which rule removed `module` (`a.b.c`: the directory or file it would load from), and
/// how to get it back.
fn explain(module: &str, venv: &ImagePath, site: &ImagePath, python: &Python, log: &Removals) -> String {
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
            return format!(
                "\n  `{module}` is missing because rule `{rule}` removed {shown}; {fix} to [params.python-trim] to restore it"
            );
        }
    }
    String::new()
}
