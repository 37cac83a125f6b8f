//! The bundled interpreter: the venv becomes a Python prefix that runs on a node with no
//! Python, or another one — the venv's interpreter, the standard-library modules the kit
//! can import, their extension modules, and the shared libraries of all of that (the
//! dynamic loader and libc included), with a launcher that starts the interpreter
//! through the kit's own loader from wherever the kit is mounted.
//!
//! Which standard-library modules: the closure of every name an `import` or `from …
//! import` statement of the kit names — at any indentation, so imports inside
//! functions, `try` blocks and rarely-taken branches count — through the standard
//! library's own sources, plus what the interpreter loads at start-up, `encodings`
//! whole (codecs are looked up by name), `_sysconfigdata*` and the `keep-stdlib` param.
//! That is safe for code paths no test exercised: what the kit cannot import is
//! exactly what no statement names. Only a module imported by a computed name
//! (`importlib.import_module(f"…{x}")`) can be missed; `keep-stdlib` is for those, and
//! `verify` names such a module when it fails.
//!
//! Layout: `lib/pythonXY.zip` is the standard library's bytecode (see [`pack_stdlib`]),
//! `lib/pythonX.Y/` holds the venv's `site-packages` and, in `lib-dynload/`, the
//! standard library's extension modules, `lib/smelt-python/` the
//! interpreter, its loader and libraries; `bin/python3` the launcher.
//!
//! Where the kit's packages are found does not rest on the interpreter's own `site`:
//! Debian's and Ubuntu's patch it to look in `dist-packages` outside a virtualenv,
//! upstream builds (pyenv, python.org) in `site-packages`. The kit is a prefix (the
//! launcher's `PYTHONHOME`), not a virtualenv, so the kit's `sitecustomize` adds its
//! `site-packages`, `.pth` files and all, whichever `site` runs ([`SITECUSTOMIZE`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::{Python, Removals};
use crate::builtin::base_host::{dependencies, LibrarySearch};
use crate::path::ImagePath;
use crate::tree::disk::root_entry;
use crate::tree::{Entry, Kind, Tree, TreeError};

/// Parts of the standard library that no kit runs: test suites, GUIs, installers, the
/// build configuration (with its static libpython), the host's own site-packages.
const NEVER: &[&str] = &[
    "test",
    "idlelib",
    "tkinter",
    "turtledemo",
    "turtle",
    "ensurepip",
    "lib2to3",
    "pydoc_data",
    "site-packages",
    "__phello__",
    "__hello__",
    "antigravity",
    "this",
];

pub const RULE: &str = "standard library the kit does not import (left out of the bundled interpreter)";

/// Where the interpreter and its libraries go, relative to the kit.
const RUNTIME: &str = "lib/smelt-python";

#[allow(clippy::too_many_arguments)]
pub fn add(
    tree: &mut Tree,
    element: &str,
    venv: &ImagePath,
    site: &ImagePath,
    python: &Python,
    keep_stdlib: &[String],
    epoch: i64,
    log: &mut Removals,
) -> anyhow::Result<()> {
    let fail = |e: TreeError| anyhow::anyhow!("element `{element}`: bundling the interpreter: {e}");
    let stdlib = Stdlib::read(python)?;
    // What the kit names, then the closure through the standard library's sources.
    let mut wanted: BTreeSet<String> = BTreeSet::new();
    for (_, e) in tree
        .below(venv)
        .filter(|(p, _)| p.as_str().ends_with(".py") || p.starts_with(&venv.join("bin").expect("valid")))
    {
        if let Kind::File { source, size, .. } = &e.kind {
            if *size < 4 << 20 {
                wanted.extend(imported(&String::from_utf8_lossy(&source.read_all()?)));
            }
        }
    }
    wanted.extend(python.startup.iter().cloned());
    wanted.extend(keep_stdlib.iter().cloned());
    wanted.extend(["encodings".to_string(), "site".into(), "sysconfig".into()]);
    wanted.extend(stdlib.modules.keys().filter(|m| m.starts_with("_sysconfigdata")).cloned());
    let mut kept: BTreeSet<String> = BTreeSet::new();
    let mut queue: Vec<String> = wanted.into_iter().collect();
    while let Some(name) = queue.pop() {
        if !stdlib.modules.contains_key(&name) || !kept.insert(name.clone()) {
            continue;
        }
        for file in &stdlib.modules[&name] {
            if file.extension().is_some_and(|e| e == "py") {
                let text = std::fs::read_to_string(file).unwrap_or_default();
                queue.extend(imported(&text).into_iter().filter(|n| !kept.contains(n)));
            }
        }
    }

    let lib = venv.join(&format!("lib/python{}", python.version)).map_err(|e| fail(e.into()))?;
    let dynload = lib.join("lib-dynload").map_err(|e| fail(e.into()))?;
    let rule = log.rule(RULE);
    let mut objects: Vec<PathBuf> = vec![python.exe.clone()];
    for (name, files) in &stdlib.modules {
        for file in files {
            let at = if file.starts_with(&python.dynload) {
                dynload
                    .join(&file.strip_prefix(&python.dynload)?.to_string_lossy())
                    .map_err(|e| fail(e.into()))?
            } else {
                lib.join(&file.strip_prefix(&python.stdlib)?.to_string_lossy()).map_err(|e| fail(e.into()))?
            };
            let entry = root_entry(file, element)?;
            if !kept.contains(name) {
                log.removed(rule, &at, entry.size(), true);
                continue;
            }
            if is_shared_object(file) {
                objects.push(file.clone());
            }
            tree.insert(&at, entry).map_err(fail)?;
        }
    }
    // Extension modules of site-packages need their libraries too.
    for (_, e) in tree.below(site) {
        if let Kind::File { source: crate::io::source::Source::Host(p), .. } = &e.kind {
            let p = p.to_path_buf();
            if is_shared_object(&p) {
                objects.push(p);
            }
        }
    }
    let runtime = venv.join(RUNTIME).map_err(|e| fail(e.into()))?;
    let loader = libraries(tree, element, &runtime, &objects)?;
    let exe = runtime.join(&format!("python{}", python.version)).map_err(|e| fail(e.into()))?;
    let mut entry = root_entry(&python.exe, element)?;
    entry.mode = 0o755;
    tree.insert(&exe, entry).map_err(fail)?;
    let locale = Path::new(LOCALE);
    if locale.is_dir() {
        crate::tree::disk::add_dir(
            tree,
            locale,
            &runtime.join("locale/C.utf8").map_err(|e| fail(e.into()))?,
            element,
            crate::tree::disk::Owners::Root,
        )?;
    } else {
        crate::ui::warning(&format!(
            "element `{element}`: this host has no {LOCALE}: the bundled interpreter gets no UTF-8 locale, which \
             Ansible needs; install libc-bin"
        ));
    }
    // The kit's own path set-up, in place of any the interpreter's distribution ships
    // (Debian's hooks apport, which the kit does not carry).
    let custom = lib.join("sitecustomize.py").map_err(|e| fail(e.into()))?;
    tree.remove(&custom);
    tree.insert(&custom, Entry::bytes(SITECUSTOMIZE.as_bytes().to_vec(), 0o644, epoch, element))
        .map_err(fail)?;
    let script = launcher(&python.version, &loader);
    for name in ["python", "python3", &format!("python{}", python.version)] {
        let at = venv.join(&format!("bin/{name}")).map_err(|e| fail(e.into()))?;
        tree.remove(&at);
        tree.insert(&at, Entry::bytes(script.clone().into_bytes(), 0o755, epoch, element)).map_err(fail)?;
    }
    Ok(())
}

/// Packs the bundled standard library's bytecode (everything under `lib/pythonX.Y` but
/// `site-packages` and `lib-dynload`) into `lib/pythonXY.zip`, where Python finds it
/// first. Run after compiling.
pub fn pack_stdlib(
    tree: &mut Tree,
    element: &str,
    venv: &ImagePath,
    python: &Python,
    work: &Path,
    epoch: i64,
) -> anyhow::Result<()> {
    let lib = venv.join(&format!("lib/python{}", python.version))?;
    let (site, dynload) =
        (lib.join("site-packages").expect("valid"), lib.join("lib-dynload").expect("valid"));
    let packed: Vec<(ImagePath, Option<crate::io::source::Source>)> = tree
        .below(&lib)
        .filter(|(p, _)| !p.starts_with(&site) && !p.starts_with(&dynload))
        .map(|(p, e)| {
            (
                p,
                match &e.kind {
                    Kind::File { source, .. } => Some(source.clone()),
                    _ => None,
                },
            )
        })
        .collect();
    let files: Vec<(String, crate::io::source::Source)> = packed
        .iter()
        .filter_map(|(p, s)| Some((p.as_str()[lib.as_str().len() + 1..].to_string(), s.clone()?)))
        .collect();
    let name = format!("python{}.zip", python.version.replace('.', ""));
    let dest = work.join("python-trim").join(&name);
    std::fs::create_dir_all(dest.parent().expect("has a parent"))?;
    super::zip::write(&files, &dest)
        .with_context(|| format!("element `{element}`: packing the standard library"))?;
    for (p, _) in &packed {
        tree.remove(p);
    }
    let mut entry = root_entry(&dest, element)?;
    entry.mode = 0o644;
    entry.mtime = epoch;
    tree.insert(&venv.join(&format!("lib/{name}"))?, entry)?;
    Ok(())
}

/// The launcher: the kit's loader runs the kit's interpreter with the kit's libraries,
/// the kit as `PYTHONHOME`, and `sys.executable` naming the launcher itself, so the
/// interpreter's children (Ansible's modules) start the same way. It runs in the
/// C.UTF-8 locale the kit carries (Ansible refuses any other encoding, and a bare node
/// may have no locales at all). Nothing of the node is used but `/bin/sh`, `realpath`
/// and `dirname` (busybox's will do: no `--`).
fn launcher(version: &str, loader: &str) -> String {
    format!(
        "#!/bin/sh\n# The kit's own Python {version}, written by smelt's python-trim (interpreter = bundled).\n\
         kit=$(dirname \"$(dirname \"$(realpath \"$0\")\")\")\n\
         rt=\"$kit/{RUNTIME}\"\n\
         export PYTHONHOME=\"$kit\" PYTHONNOUSERSITE=1 LOCPATH=\"$rt/locale\" LC_ALL=C.UTF-8\n\
         exec \"$rt/{loader}\" --library-path \"$rt\" --argv0 \"$kit/bin/python3\" \"$rt/python{version}\" \"$@\"\n"
    )
}

/// The kit's `sitecustomize`, which `site` imports at start-up whatever its flavour:
/// the kit's `site-packages` on `sys.path`, with its `.pth` files, unless `site` put it
/// there already (upstream's does; Debian's looks in `dist-packages` instead).
pub const SITECUSTOMIZE: &str = "\
# The kit's path set-up, written by smelt's python-trim (interpreter = bundled): the
# kit's site-packages, whichever site.py this interpreter came with.
import os
import site
import sys

_packages = os.path.join(sys.prefix, 'lib', 'python%d.%d' % sys.version_info[:2], 'site-packages')
if _packages not in sys.path:
    site.addsitedir(_packages)
del _packages
";

/// glibc's C.UTF-8 locale, for the launcher's `LOCPATH`.
const LOCALE: &str = "/usr/lib/locale/C.utf8";

/// The shared libraries `objects` need, transitively, each under `runtime` by its file
/// name (symlinks followed), and glibc's `files` and `dns` name-service modules (loaded
/// at run time for user and host lookups). Returns the dynamic loader's name.
fn libraries(
    tree: &mut Tree,
    element: &str,
    runtime: &ImagePath,
    objects: &[PathBuf],
) -> anyhow::Result<String> {
    let search = LibrarySearch::from_host();
    let mut loader = None;
    let mut seen: BTreeSet<PathBuf> = BTreeSet::new();
    let mut queue: Vec<PathBuf> = Vec::new();
    for o in objects {
        for dep in dependencies(o, &search)
            .with_context(|| format!("element `{element}`: reading {}", o.display()))?
        {
            if loader.is_none() && dep.file_name().is_some_and(|n| n.to_string_lossy().starts_with("ld-")) {
                loader = Some(dep.file_name().unwrap_or_default().to_string_lossy().into_owned());
            }
            queue.push(dep);
        }
    }
    let libc_dir = queue
        .iter()
        .find(|p| p.file_name().is_some_and(|n| n == "libc.so.6"))
        .and_then(|p| p.parent())
        .map(Path::to_path_buf);
    if let Some(dir) = libc_dir {
        queue.extend(
            ["libnss_files.so.2", "libnss_dns.so.2"].iter().map(|n| dir.join(n)).filter(|p| p.exists()),
        );
    }
    while let Some(lib) = queue.pop() {
        if !seen.insert(lib.clone()) {
            continue;
        }
        let name = lib.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let real = std::fs::canonicalize(&lib)
            .with_context(|| format!("element `{element}`: reading {}", lib.display()))?;
        let at = runtime.join(&name)?;
        let mut entry = root_entry(&real, element)?;
        entry.mode = 0o755;
        tree.insert(&at, entry)?;
        queue.extend(dependencies(&real, &search)?);
    }
    loader.ok_or_else(|| {
        anyhow::anyhow!("element `{element}`: the interpreter names no dynamic loader (a static build?)")
    })
}

/// The standard library on the host: each top-level module with its files (a package's
/// whole directory but its test suites and caches; extension modules from lib-dynload).
struct Stdlib {
    modules: BTreeMap<String, Vec<PathBuf>>,
}

impl Stdlib {
    fn read(python: &Python) -> anyhow::Result<Stdlib> {
        let mut modules: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
        let top = std::fs::read_dir(&python.stdlib)
            .with_context(|| format!("reading {}", python.stdlib.display()))?;
        for e in top.flatten() {
            let file = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            let name = file.strip_suffix(".py").unwrap_or(&file).to_string();
            if NEVER.contains(&name.as_str()) || name.starts_with("config-") {
                continue;
            }
            if path.is_dir() && path.join("__init__.py").exists() {
                let walk = walkdir::WalkDir::new(&path).sort_by_file_name().into_iter().filter_entry(|d| {
                    !matches!(d.file_name().to_str(), Some("__pycache__" | "test" | "tests" | "idle_test"))
                });
                let files =
                    walk.flatten().filter(|d| d.file_type().is_file()).map(|d| d.into_path()).collect();
                modules.insert(name, files);
            } else if file.ends_with(".py") {
                modules.insert(name, vec![path]);
            }
        }
        if let Ok(dir) = std::fs::read_dir(&python.dynload) {
            for e in dir.flatten() {
                let file = e.file_name().to_string_lossy().into_owned();
                if let Some((name, _)) = file.split_once('.').filter(|_| file.ends_with(".so")) {
                    modules.entry(name.to_string()).or_default().push(e.path());
                }
            }
        }
        Ok(Stdlib { modules })
    }
}

fn is_shared_object(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic)).is_ok()
        && &magic == b"\x7fELF"
}

/// The top-level names a Python source imports absolutely: `import a.b, c as d` gives
/// `a` and `c`; `from a.b import x` gives `a`; relative imports give nothing.
fn imported(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let ident = |s: &str| s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !s.is_empty();
    for line in text.lines() {
        let line = line.trim_start();
        if let Some(rest) = line.strip_prefix("import ") {
            for part in rest.split('#').next().unwrap_or("").split(',') {
                let first = part.trim().split(['.', ' ']).next().unwrap_or("");
                if ident(first) {
                    names.insert(first.to_string());
                }
            }
        } else if let Some(rest) = line.strip_prefix("from ") {
            let module = rest.split_whitespace().next().unwrap_or("");
            let first = module.split('.').next().unwrap_or("");
            if ident(first) {
                names.insert(first.to_string());
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    #[test]
    fn imports_are_read_at_any_depth() {
        let text = "import os, sys as s\nfrom email.mime import text\nfrom . import x\nfrom .y import z\n\
                    def f():\n    try:\n        import ssl  # lazily\n    except ImportError:\n        pass\n";
        let names: Vec<String> = super::imported(text).into_iter().collect();
        assert_eq!(names, ["email", "os", "ssl", "sys"]);
    }
}
