//! `python-trim`: a Python virtualenv in the image, made small and relocatable —
//! pip, setuptools and wheel dropped, tests and caches dropped, dist-info cut to what
//! importlib.metadata reads, modules compiled to bytecode beside their sources (with
//! the venv's own interpreter) and the sources dropped, script shebangs and pyvenv.cfg
//! freed of the build's absolute paths.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};
use globset::{Glob, GlobSet, GlobSetBuilder};
use serde_json::Value;

use crate::io::source::Source;
use crate::path::ImagePath;
use crate::tree::disk::root_entry;
use crate::tree::{Entry, Kind, Tree};

/// Removed unless kept, relative to the venv.
const REMOVE: &[&str] = &[
    "bin/pip",
    "bin/pip[0-9]*",
    "bin/easy_install*",
    "bin/wheel",
    "bin/activate*",
    "bin/Activate.ps1",
    "lib/python*/site-packages/{pip,setuptools,wheel,pkg_resources,_distutils_hack}",
    "lib/python*/site-packages/{pip,setuptools,wheel,pkg_resources,_distutils_hack}/**",
    "lib/python*/site-packages/{pip,setuptools,wheel}-*.dist-info",
    "lib/python*/site-packages/{pip,setuptools,wheel}-*.dist-info/**",
    "lib/python*/site-packages/distutils-precedence.pth",
    "**/__pycache__",
    "**/__pycache__/**",
    "lib/python*/site-packages/**/tests",
    "lib/python*/site-packages/**/tests/**",
    "lib/python*/site-packages/**/test",
    "lib/python*/site-packages/**/test/**",
    "lib/python*/site-packages/*.dist-info/{RECORD,INSTALLER,REQUESTED,direct_url.json,WHEEL,LICENSE*,AUTHORS*}",
    "lib/python*/site-packages/*.dist-info/licenses/**",
];

pub fn apply(
    tree: &mut Tree,
    element: &str,
    params: &Value,
    work: &Path,
    epoch: i64,
) -> anyhow::Result<usize> {
    let venv_text = params.get("venv").and_then(Value::as_str).filter(|s| !s.is_empty());
    let venv = ImagePath::new(venv_text.with_context(|| {
        format!("element `{element}`: param `venv` is empty; give the venv's path in the image")
    })?)
    .map_err(|e| anyhow::anyhow!("element `{element}`: venv {e}"))?;
    let venv = tree
        .resolve_parents(&venv.join("pyvenv.cfg").map_err(anyhow::Error::msg)?)
        .map_err(anyhow::Error::msg)?
        .parent()
        .unwrap_or_else(ImagePath::root);
    if !matches!(
        tree.get(&venv.join("pyvenv.cfg").map_err(anyhow::Error::msg)?).map(|e| &e.kind),
        Some(Kind::File { .. })
    ) {
        bail!("element `{element}`: {venv} has no pyvenv.cfg: is it a virtualenv, and does an earlier element put it there?");
    }
    let (user_remove, keep) = (super::list_param(params, "remove"), super::list_param(params, "keep"));
    let under = |globs: &mut dyn Iterator<Item = &str>| -> anyhow::Result<GlobSet> {
        let mut b = GlobSetBuilder::new();
        for g in globs {
            b.add(Glob::new(&format!("{}/{}", venv.as_str(), g.trim_start_matches('/')))?);
        }
        Ok(b.build()?)
    };
    let remove = under(&mut REMOVE.iter().copied().chain(user_remove.iter().map(String::as_str)))?;
    let keep = under(&mut keep.iter().map(String::as_str))?;
    let before = tree.len();
    tree.retain(|p, _| !(p.starts_with(&venv) && remove.is_match(p.as_str()) && !keep.is_match(p.as_str())));
    let removed = before - tree.len();

    let compiled = compile(tree, element, &venv, &keep, work, epoch)?;
    let relocated = relocate(tree, element, &venv, epoch)?;
    Ok(removed + compiled + relocated)
}

/// Compiles every module to a `.pyc` beside it (`compileall -b`, unchecked-hash, so
/// the bytes do not depend on times) with the venv's interpreter, and drops the source
/// unless `keep` says otherwise. Module paths inside the bytecode are image paths.
fn compile(
    tree: &mut Tree,
    element: &str,
    venv: &ImagePath,
    keep: &GlobSet,
    work: &Path,
    epoch: i64,
) -> anyhow::Result<usize> {
    let python = interpreter(tree, venv)
        .with_context(|| format!("element `{element}`: finding the venv's python in {venv}/bin"))?;
    let scratch = work.join("python-trim").join(venv.as_str().replace('/', "_"));
    let modules: Vec<(ImagePath, Source)> = tree
        .iter()
        .filter(|(p, _)| p.starts_with(venv) && p.as_str().ends_with(".py"))
        .filter_map(|(p, e)| match &e.kind {
            Kind::File { source, .. } => Some((p.clone(), source.clone())),
            _ => None,
        })
        .collect();
    if modules.is_empty() {
        return Ok(0);
    }
    for (path, source) in &modules {
        let dest = scratch.join(path.as_str());
        std::fs::create_dir_all(dest.parent().expect("has a parent"))?;
        std::io::copy(&mut source.open()?, &mut std::fs::File::create(&dest)?)
            .with_context(|| format!("element `{element}`: copying {path} to compile it"))?;
    }
    let out = crate::cleanup::output(
        Command::new(&python)
            .args([
                "-m",
                "compileall",
                "-b",
                "-q",
                "-f",
                "-j",
                "0",
                "--invalidation-mode",
                "unchecked-hash",
                "-s",
            ])
            .arg(&scratch)
            .args(["-p", "/"])
            .arg(scratch.join(venv.as_str()))
            .env("SOURCE_DATE_EPOCH", epoch.to_string()),
    )
    .with_context(|| format!("element `{element}`: running {} -m compileall", python.display()))?;
    // compileall reports modules it cannot compile (Python 2 leftovers in tests, say) but
    // compiles the rest: those keep their sources.
    if !out.status.success() && out.stdout.is_empty() && out.stderr.is_empty() {
        bail!("element `{element}`: {} -m compileall failed ({})", python.display(), out.status);
    }
    let mut count = 0;
    for (path, _) in modules {
        let pyc = scratch.join(format!("{}c", path.as_str()));
        if !pyc.exists() {
            continue;
        }
        let mut entry = root_entry(&pyc, element)?;
        entry.mode = 0o644;
        entry.mtime = epoch;
        let at = ImagePath::new(&format!("{}c", path.as_str())).expect("valid");
        tree.insert(&at, entry).map_err(anyhow::Error::msg)?;
        if !keep.is_match(path.as_str()) {
            tree.remove(&path);
        }
        count += 1;
    }
    Ok(count)
}

/// The host interpreter the venv's `bin/python3` (or `bin/python`) links to.
fn interpreter(tree: &Tree, venv: &ImagePath) -> anyhow::Result<PathBuf> {
    for name in ["bin/python3", "bin/python"] {
        let mut at = venv.join(name).map_err(anyhow::Error::msg)?;
        for _ in 0..8 {
            match tree.get(&at).map(|e| &e.kind) {
                Some(Kind::Symlink(t)) if t.starts_with('/') && Path::new(t).exists() => {
                    return Ok(PathBuf::from(t))
                }
                Some(Kind::Symlink(t)) => at = at.resolve_link(t),
                Some(Kind::File { source: Source::Host(p), .. }) => return Ok(p.clone()),
                _ => break,
            }
        }
    }
    bail!("no bin/python3 linking to an interpreter on this host")
}

/// Frees the venv of the build's absolute paths: `bin/` scripts whose `#!` names the
/// venv's python start it from their own directory instead, and pyvenv.cfg loses the
/// `command` line that records where the venv was made.
fn relocate(tree: &mut Tree, element: &str, venv: &ImagePath, epoch: i64) -> anyhow::Result<usize> {
    // pip's relocatable launcher: valid sh and valid Python at once.
    const LAUNCHER: &str =
        "#!/bin/sh\n'''exec' \"$(dirname -- \"$(realpath -- \"$0\")\")/python3\" \"$0\" \"$@\"\n' '''\n";
    let bin = venv.join("bin").map_err(anyhow::Error::msg)?;
    let scripts: Vec<(ImagePath, Source, u32)> = tree
        .iter()
        .filter(|(p, _)| p.parent().as_ref() == Some(&bin))
        .filter_map(|(p, e)| match &e.kind {
            Kind::File { source, size, .. } if *size < 1 << 20 => Some((p.clone(), source.clone(), e.mode)),
            _ => None,
        })
        .collect();
    let mut count = 0;
    for (path, source, mode) in scripts {
        let text = source.read_all()?;
        let Some(rest) = text.strip_prefix(b"#!/") else { continue };
        let first_end = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
        let shebang = String::from_utf8_lossy(&rest[..first_end]);
        if !shebang.contains("/bin/python") {
            continue;
        }
        let mut new = LAUNCHER.as_bytes().to_vec();
        new.extend_from_slice(&rest[(first_end + 1).min(rest.len())..]);
        tree.insert(&path, Entry::bytes(new, mode, epoch, element)).map_err(anyhow::Error::msg)?;
        count += 1;
    }
    let cfg = venv.join("pyvenv.cfg").map_err(anyhow::Error::msg)?;
    if let Some(Kind::File { source, .. }) = tree.get(&cfg).map(|e| e.kind.clone()) {
        let text = String::from_utf8_lossy(&source.read_all()?).into_owned();
        let kept: String =
            text.lines().filter(|l| !l.starts_with("command")).map(|l| format!("{l}\n")).collect();
        tree.insert(&cfg, Entry::bytes(kept.into_bytes(), 0o644, epoch, element))
            .map_err(anyhow::Error::msg)?;
        count += 1;
    }
    Ok(count)
}
