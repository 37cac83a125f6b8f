//! `python-trim`: a Python virtualenv in the image made small, relocatable and still
//! working. In order:
//!
//! 1. [`rules`] remove what nothing runs — pip, setuptools, wheel, caches, activate
//!    scripts, dist-info files importlib.metadata does not read, test directories no
//!    code imports, the user's `remove` globs — except what `keep` names; every removal
//!    is recorded with its rule;
//! 2. with `interpreter = "bundled"`, [`bundle`] adds the venv's interpreter, the
//!    standard-library modules the kit's code imports and the shared libraries of all of
//!    it (loader and libc included), with a launcher that runs from wherever it is;
//! 3. [`compile`] writes bytecode with the venv's interpreter (cached across builds),
//!    dropping sources except those packages read as files (Ansible's modules, module
//!    utilities and plugins); a bundled standard library is then packed in a [`zip`];
//! 4. [`strip`] strips ELF objects of symbols nothing needs at run time;
//! 5. scripts and `pyvenv.cfg` are freed of the build's paths;
//! 6. [`verify`] runs the `verify` commands in a relocated, read-only copy of the image,
//!    and a failure names the rule that removed what was missing.

mod ansible;
mod bundle;
mod compile;
mod rules;
mod strip;
mod verify;
mod zip;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

use super::{given, BuiltIn, Context};
use crate::findings::{PythonKit, Trimmed};
use crate::io::source::Source;
use crate::path::ImagePath;
use crate::tree::{Entry, Kind, Tree};

#[derive(serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PythonTrim {
    venv: Option<String>,
    remove: Vec<String>,
    keep: Vec<String>,
    verify: Vec<String>,
    interpreter: Interpreter,
    python: String,
    python_version: Option<String>,
    keep_stdlib: Vec<String>,
    strip: bool,
    ansible_playbooks: Vec<String>,
}

/// Which interpreter runs the kit: the target's own, or one bundled with it.
#[derive(serde::Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Interpreter {
    System,
    Bundled,
}

/// The host interpreter the venv was made with, as it describes itself.
pub struct Python {
    /// The interpreter's real file on the host.
    pub exe: PathBuf,
    /// `3.11`
    pub version: String,
    /// `cpython-311`, the tag of `__pycache__` files.
    pub cache_tag: String,
    /// The standard library's directory, and the extension modules' (`lib-dynload`).
    pub stdlib: PathBuf,
    pub dynload: PathBuf,
    /// Top-level modules the interpreter imports at start-up (`site` included).
    pub startup: Vec<String>,
    /// Where its `site` looks for packages outside a virtualenv.
    pub site: SiteFlavour,
    /// `3.11.2`
    pub release: String,
}

/// Where an interpreter's `site` looks for packages outside a virtualenv: upstream
/// CPython (pyenv, python.org, uv's) in `lib/pythonX.Y/site-packages`; Debian's and
/// Ubuntu's, patched, in `dist-packages`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SiteFlavour {
    Upstream,
    Debian,
}

/// What the rules removed, rule by rule, and which rule removed each path, so a
/// `verify` failure can say which rule to undo.
#[derive(Default)]
pub struct Removals {
    rules: Vec<(String, usize, u64)>,
    by_path: std::collections::BTreeMap<ImagePath, usize>,
    /// Per rule: what it removed, by name (collections), and what it kept (plugins).
    named: std::collections::BTreeMap<usize, Vec<String>>,
    kept: std::collections::BTreeMap<usize, Vec<String>>,
}

impl Removals {
    /// The index of `rule`, recorded on first use.
    fn rule(&mut self, rule: &str) -> usize {
        match self.rules.iter().position(|(r, _, _)| r == rule) {
            Some(i) => i,
            None => {
                self.rules.push((rule.to_string(), 0, 0));
                self.rules.len() - 1
            }
        }
    }

    /// Records that `rule` took `path` (of `bytes`) out.
    fn removed(&mut self, rule: usize, path: &ImagePath, bytes: u64, file: bool) {
        let r = &mut self.rules[rule];
        r.1 += usize::from(file);
        r.2 += bytes;
        self.by_path.insert(*path, rule);
    }

    /// Names what `rule` removed, for the report (the collections it took out).
    fn named(&mut self, rule: usize, names: Vec<String>) {
        self.named.insert(rule, names);
    }

    /// Names what a rule's trim kept, for the report (a collection's plugins).
    fn kept(&mut self, rule: usize, names: Vec<String>) {
        self.kept.insert(rule, names);
    }

    /// Records bytes a rule saved without removing a path (stripping).
    fn saved(&mut self, rule: &str, bytes: u64) {
        let i = self.rule(rule);
        self.rules[i].1 += 1;
        self.rules[i].2 += bytes;
    }

    /// The rule that removed `path` or the closest directory above it.
    fn why(&self, path: &ImagePath) -> Option<(&str, &ImagePath)> {
        let mut p = Some(*path);
        while let Some(at) = p {
            if let Some((found, i)) = self.by_path.get_key_value(&at) {
                return Some((&self.rules[*i].0, found));
            }
            p = at.parent();
        }
        None
    }

    /// The paths a rule removed under `dir`, with the rule (for missing packages).
    fn under(&self, dir: &ImagePath) -> Option<(&str, &ImagePath)> {
        self.by_path
            .range(*dir..)
            .next()
            .filter(|(p, _)| p.starts_with(dir))
            .map(|(p, i)| (self.rules[*i].0.as_str(), p))
    }

    fn report(&self, element: &str) -> Vec<Trimmed> {
        self.rules
            .iter()
            .enumerate()
            .filter(|(_, (_, files, _))| *files > 0)
            .map(|(i, (rule, files, bytes))| Trimmed {
                element: element.into(),
                rule: rule.clone(),
                files: *files,
                bytes: *bytes,
                paths: self.named.get(&i).cloned().unwrap_or_default(),
                kept: self.kept.get(&i).cloned().unwrap_or_default(),
            })
            .collect()
    }
}

impl BuiltIn for PythonTrim {
    fn stage(&self, tree: &mut Tree, cx: &mut Context) -> anyhow::Result<usize> {
        let (element, work, epoch) = (cx.element, cx.work, cx.mtime);
        let bundled = self.interpreter == Interpreter::Bundled;
        let venv = locate(tree, element, given(&self.venv))?;
        let host = interpreter(tree, &venv)
            .with_context(|| format!("element `{element}`: finding the venv's python in {venv}/bin"))?;
        let python = describe(&host)
            .with_context(|| format!("element `{element}`: asking {} about itself", host.display()))?;
        if let Some(want) = self.python_version.as_deref().filter(|_| !bundled) {
            if want != python.version {
                bail!(
                    "element `{element}`: the venv's python is {} but python-version says the target's is {want}: \
                     bytecode of one does not load in the other; make the venv with python{want}, or use \
                     interpreter = \"bundled\"",
                    python.version
                );
            }
        }
        let site = venv.join(&format!("lib/python{}/site-packages", python.version))?;
        let before = tree.len();
        let mut log = Removals::default();
        let keep = rules::globs(&venv, self.keep.iter().map(String::as_str))?;
        rules::remove(tree, &venv, &site, &self.remove, &keep, &mut log)?;
        if !self.ansible_playbooks.is_empty() {
            ansible::trim(tree, element, &site, &self.ansible_playbooks, &keep, &mut log)?;
        }
        if bundled {
            bundle::add(tree, element, &venv, &site, &python, &self.keep_stdlib, epoch, &mut log)?;
        }
        compile::compile(tree, element, &venv, &python, &keep, bundled, work, epoch)?;
        if bundled {
            bundle::pack_stdlib(tree, element, &venv, &python, work, epoch)?;
        }
        if self.strip {
            strip::strip(tree, element, &venv, &mut log)?;
        }
        self.relocate(tree, element, &venv, &python, epoch)?;
        if !self.verify.is_empty() {
            verify::run(tree, element, &venv, &site, &python, &self.verify, &log, work)?;
        }
        cx.found.trimmed.extend(log.report(element));
        cx.found.python_kits.push(PythonKit {
            element: element.into(),
            path: venv.to_string(),
            interpreter: if bundled { "bundled" } else { "system" },
            python: python.exe.display().to_string(),
            version: python.release.clone(),
            site: match python.site {
                SiteFlavour::Upstream => "upstream",
                SiteFlavour::Debian => "debian",
            },
        });
        Ok(tree.len().abs_diff(before))
    }
}

/// The venv's directory in the image: `venv`, with symlinks among its parents resolved,
/// holding a pyvenv.cfg.
fn locate(tree: &Tree, element: &str, text: Option<&str>) -> anyhow::Result<ImagePath> {
    let venv = ImagePath::new(text.with_context(|| {
        format!("element `{element}`: param `venv` is empty; give the venv's path in the image")
    })?)
    .map_err(|e| anyhow::anyhow!("element `{element}`: venv {e}"))?;
    let cfg = tree.resolve_parents(&venv.join("pyvenv.cfg")?)?;
    if !matches!(tree.get(&cfg).map(|e| e.kind), Some(Kind::File { .. })) {
        bail!("element `{element}`: {venv} has no pyvenv.cfg: is it a virtualenv, and does an earlier element put it there?");
    }
    Ok(cfg.parent().unwrap_or_else(ImagePath::root))
}

/// The host interpreter the venv's `bin/python3` (or `bin/python`) links to.
fn interpreter(tree: &Tree, venv: &ImagePath) -> anyhow::Result<PathBuf> {
    for name in ["bin/python3", "bin/python"] {
        let mut at = venv.join(name)?;
        for _ in 0..8 {
            match tree.get(&at).map(|e| e.kind) {
                Some(Kind::Symlink(t)) if t.starts_with('/') && Path::new(&t).exists() => {
                    return Ok(std::fs::canonicalize(t)?)
                }
                Some(Kind::Symlink(t)) => at = at.resolve_link(&t),
                Some(Kind::File { source: Source::Host(p), .. }) => return Ok(p.to_path_buf()),
                _ => break,
            }
        }
    }
    bail!("no bin/python3 linking to an interpreter on this host")
}

/// Asks the interpreter (isolated from the venv and the caller's environment) for its
/// version, cache tag, library directories, built-in modules and start-up modules.
fn describe(exe: &Path) -> anyhow::Result<Python> {
    const ASK: &str = "import sys, sysconfig\n\
        print(f'{sys.version_info[0]}.{sys.version_info[1]}')\n\
        print(sys.implementation.cache_tag)\n\
        print(sysconfig.get_path('stdlib'))\n\
        print(sysconfig.get_config_var('DESTSHARED'))\n\
        print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n\
        import site\n\
        print(' '.join(site.getsitepackages(['/prefix'])))\n\
        print(sys.version.split()[0])\n";
    let out = crate::cleanup::output(Command::new(exe).args(["-I", "-c", ASK]).env_clear())?;
    if !out.status.success() {
        bail!("{} failed ({}): {}", exe.display(), out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    let [version, tag, stdlib, dynload, startup, packages, release] = lines[..] else {
        bail!("{} answered with {} lines, not 7", exe.display(), lines.len());
    };
    let site = if packages.contains("dist-packages") { SiteFlavour::Debian } else { SiteFlavour::Upstream };
    let words = |s: &str| s.split_whitespace().map(String::from).collect();
    Ok(Python {
        exe: exe.to_path_buf(),
        version: version.into(),
        cache_tag: tag.into(),
        stdlib: stdlib.into(),
        dynload: dynload.into(),
        startup: words(startup),
        site,
        release: release.into(),
    })
}

/// Frees the venv of the build's absolute paths. Scripts whose `#!` names the venv's
/// python start `python3` from their own directory instead (valid sh and Python at
/// once, as pip's relocatable launcher is). With the system interpreter, `bin/python*`
/// link to the target's python and pyvenv.cfg names its directory; bundled, they are
/// the launcher [`bundle`] wrote, and there is no pyvenv.cfg (the kit is a prefix).
impl PythonTrim {
    fn relocate(
        &self,
        tree: &mut Tree,
        element: &str,
        venv: &ImagePath,
        python: &Python,
        epoch: i64,
    ) -> anyhow::Result<()> {
        const LAUNCHER: &str =
            "#!/bin/sh\n'''exec' \"$(dirname \"$(realpath \"$0\")\")/python3\" \"$0\" \"$@\"\n' '''\n";
        let at = |rel: &str| venv.join(rel);
        let bin = at("bin")?;
        let scripts: Vec<(ImagePath, Source, u32)> = tree
            .iter()
            .filter(|(path, _)| path.parent().as_ref() == Some(&bin))
            .filter_map(|(path, e)| match &e.kind {
                Kind::File { source, size, .. } if *size < 1 << 20 => Some((path, source.clone(), e.mode)),
                _ => None,
            })
            .collect();
        for (path, source, mode) in scripts {
            let text = source.read_all()?;
            let Some(rest) = text.strip_prefix(b"#!/") else { continue };
            let first_end = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
            if !String::from_utf8_lossy(&rest[..first_end]).contains("/bin/python") {
                continue;
            }
            let mut new = LAUNCHER.as_bytes().to_vec();
            new.extend_from_slice(&rest[(first_end + 1).min(rest.len())..]);
            tree.insert(&path, Entry::bytes(new, mode, epoch, element))?;
        }
        let cfg = at("pyvenv.cfg")?;
        if self.interpreter == Interpreter::Bundled {
            tree.remove(&cfg);
            return Ok(());
        }
        let version = self.python_version.as_deref().unwrap_or(&python.version);
        for name in ["python", "python3", &format!("python{version}")] {
            let link = if name == "python" { "python3".to_string() } else { self.python.clone() };
            tree.insert(&at(&format!("bin/{name}"))?, Entry::symlink(&link, epoch, element))?;
        }
        let home = Path::new(&self.python).parent().unwrap_or(Path::new("/usr/bin")).display().to_string();
        let text = format!("home = {home}\ninclude-system-site-packages = false\nversion = {version}\n");
        tree.insert(&cfg, Entry::bytes(text.into_bytes(), 0o644, epoch, element))?;
        Ok(())
    }
}
