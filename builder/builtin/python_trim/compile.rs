//! Bytecode for every module of the venv, written by the venv's own interpreter with
//! image paths inside (`co_filename` is where the module will be) and unchecked-hash
//! invalidation (no timestamps: the same sources give the same bytes, and a read-only
//! medium needs no rewrite). A module's source is dropped — its `.pyc` sits where the
//! source was, which Python loads sourcelessly — unless the package reads its sources
//! as files: then the source stays, with its bytecode in `__pycache__` so it starts as
//! fast, or alone where only the source is ever read. A bundled standard library is
//! compiled at optimisation level 2 (no docstrings or asserts), as CPython's own test
//! suite runs it. Bytecode is cached across builds by what it is made from.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};
use globset::GlobSet;
use sha2::{Digest, Sha256};

use super::rules::globs;
use super::Python;
use crate::io::source::Source;
use crate::path::ImagePath;
use crate::tree::disk::root_entry;
use crate::tree::{Kind, Tree};

/// Sources packages read as files, kept beside their bytecode (relative to the venv).
/// Ansible sends module-utility *source* to the target inside each module (AnsiballZ),
/// reads its AnsiballZ wrapper as text, and finds plugins and collections by their
/// `.py` files; the controller imports them too.
const KEEP_SOURCE: &[&str] = &[
    "lib/python*/site-packages/ansible/{module_utils,plugins,_internal}/**",
    "lib/python*/site-packages/ansible/__init__.py",
    "lib/python*/site-packages/ansible_collections/**",
];

/// Sources that are only ever read, never imported where they are: Ansible's modules
/// run on the target from the AnsiballZ zip, so their bytecode here would go unused.
const SOURCE_ONLY: &[&str] = &[
    "lib/python*/site-packages/ansible/modules/**",
    "lib/python*/site-packages/ansible_collections/*/*/plugins/modules/**",
];

/// How one module ships.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ship {
    /// `X.pyc` where `X.py` was, at this optimisation level.
    Bytecode(u8),
    /// `X.py` and `__pycache__/X.TAG.pyc`.
    Both,
    /// `X.py` alone.
    Source,
}

pub fn compile(
    tree: &mut Tree,
    element: &str,
    venv: &ImagePath,
    python: &Python,
    keep: &GlobSet,
    bundled_stdlib: bool,
    work: &Path,
    epoch: i64,
) -> anyhow::Result<()> {
    let keep_source = globs(venv, KEEP_SOURCE.iter().copied())?;
    let source_only = globs(venv, SOURCE_ONLY.iter().copied())?;
    let stdlib = venv.join(&format!("lib/python{}", python.version))?;
    let site = stdlib.join("site-packages")?;
    let modules: Vec<(ImagePath, Source, Ship)> = tree
        .below(venv)
        .filter(|(p, _)| p.as_str().ends_with(".py"))
        .filter_map(|(p, e)| match &e.kind {
            Kind::File { source, .. } => {
                let ship = if source_only.is_match(p.as_str()) {
                    Ship::Source
                } else if keep_source.is_match(p.as_str()) || keep.is_match(p.as_str()) {
                    Ship::Both
                } else if bundled_stdlib && p.starts_with(&stdlib) && !p.starts_with(&site) {
                    Ship::Bytecode(2)
                } else {
                    Ship::Bytecode(0)
                };
                (ship != Ship::Source).then(|| (p, source.clone(), ship))
            }
            _ => None,
        })
        .collect();
    if modules.is_empty() {
        return Ok(());
    }
    let cache = crate::cache::dir().join("pyc").join(&python.cache_tag);
    let scratch = work.join("python-trim").join(venv.as_str().replace('/', "_"));
    let mut jobs = Vec::new();
    for (path, source, ship) in modules {
        let bytes = source.read_all().with_context(|| format!("element `{element}`: reading {path}"))?;
        let key = {
            let mut h = Sha256::new();
            let how = match ship {
                Ship::Bytecode(level) => level,
                _ => 9,
            };
            for part in [python.cache_tag.as_bytes(), &[how], path.as_str().as_bytes(), &bytes] {
                h.update((part.len() as u64).to_le_bytes());
                h.update(part);
            }
            h.finalize().iter().map(|b| format!("{b:02x}")).collect::<String>()
        };
        let cached = cache.join(&key[..2]).join(format!("{key}.pyc"));
        if !cached.exists() {
            let dest = scratch.join(path.as_str());
            std::fs::create_dir_all(dest.parent().expect("has a parent"))?;
            std::fs::write(&dest, &bytes)
                .with_context(|| format!("element `{element}`: copying {path} to compile it"))?;
        }
        jobs.push((path, ship, cached));
    }
    let misses: Vec<&(ImagePath, Ship, PathBuf)> = jobs.iter().filter(|(_, _, c)| !c.exists()).collect();
    for ship in [Ship::Bytecode(0), Ship::Bytecode(2), Ship::Both] {
        let list: Vec<PathBuf> =
            misses.iter().filter(|(_, s, _)| *s == ship).map(|(p, _, _)| scratch.join(p.as_str())).collect();
        if !list.is_empty() {
            compileall(element, python, &scratch, &list, ship, epoch)?;
        }
    }
    for (path, ship, cached) in &jobs {
        let with_source = *ship == Ship::Both;
        let out = if with_source {
            pycache_path(&scratch.join(path.as_str()), &python.cache_tag)
        } else {
            scratch.join(format!("{}c", path.as_str()))
        };
        if !cached.exists() {
            // A module the interpreter cannot compile (Python 2 leftovers in an
            // unused corner, say) keeps its source.
            if !out.exists() {
                continue;
            }
            std::fs::create_dir_all(cached.parent().expect("has a parent"))?;
            let partial = cached.with_extension(format!("partial-{}", std::process::id()));
            std::fs::copy(&out, &partial)?;
            std::fs::rename(&partial, cached)?;
        }
        let at = if with_source {
            let name = path.file_name().trim_end_matches(".py");
            let dir = path.parent().expect("in the venv").join("__pycache__")?;
            dir.join(&format!("{name}.{}.pyc", python.cache_tag))?
        } else {
            ImagePath::new(&format!("{}c", path.as_str())).expect("valid")
        };
        let mut entry = root_entry(cached, element)?;
        entry.mode = 0o644;
        entry.mtime = epoch;
        tree.insert(&at, entry)?;
        if !with_source {
            tree.remove(path);
        }
    }
    Ok(())
}

/// Where compileall writes a source's bytecode in `__pycache__`.
fn pycache_path(source: &Path, tag: &str) -> PathBuf {
    let name = source.file_stem().unwrap_or_default().to_string_lossy();
    source.parent().expect("has a parent").join("__pycache__").join(format!("{name}.{tag}.pyc"))
}

/// Runs compileall over `files` (under `scratch`, which stands for the image root), on
/// every core: `X.pyc` next to `X.py` (the legacy layout, loaded without the source),
/// or in `__pycache__/` for modules that keep their source.
fn compileall(
    element: &str,
    python: &Python,
    scratch: &Path,
    files: &[PathBuf],
    ship: Ship,
    epoch: i64,
) -> anyhow::Result<()> {
    let (in_cache, level) = match ship {
        Ship::Bytecode(level) => (false, level),
        _ => (true, 0),
    };
    let list = scratch.with_extension(format!("{in_cache}-{level}.list"));
    let text: String = files.iter().map(|f| format!("{}\n", f.display())).collect();
    std::fs::write(&list, text)?;
    let mut cmd = Command::new(&python.exe);
    cmd.args(["-I", "-m", "compileall", "-q", "-f", "-j", "0", "--invalidation-mode", "unchecked-hash"]);
    if !in_cache {
        cmd.arg("-b");
    }
    if level > 0 {
        cmd.args(["-o", &level.to_string()]);
    }
    cmd.arg("-s").arg(scratch).args(["-p", "/", "-i"]).arg(&list).env("SOURCE_DATE_EPOCH", epoch.to_string());
    let out = crate::cleanup::output(&mut cmd)
        .with_context(|| format!("element `{element}`: running {} -m compileall", python.exe.display()))?;
    // compileall reports modules it cannot compile but compiles the rest: those keep
    // their sources.
    if !out.status.success() && out.stdout.is_empty() && out.stderr.is_empty() {
        bail!("element `{element}`: {} -m compileall failed ({})", python.exe.display(), out.status);
    }
    Ok(())
}
