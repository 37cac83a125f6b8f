//! `base-host`: host programs with the closure of shared libraries they need, read from
//! their ELF headers (interpreter, `DT_NEEDED`, `RUNPATH`/`RPATH`), never by running
//! ldd. Paths keep the host's layout, symlinks included (`/bin` → `usr/bin`).

use std::collections::{BTreeSet, VecDeque};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context as _};

use super::{BuiltIn, Context};
use crate::path::ImagePath;
use crate::tree::disk::root_entry;
use crate::tree::{Entry, Tree};

/// Top-level links of merged-/usr hosts, mirrored so `#!/bin/sh` works in the image.
const TOP_LINKS: [&str; 6] = ["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

#[derive(serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct BaseHost {
    binaries: Vec<String>,
}

impl BuiltIn for BaseHost {
    fn stage(&self, tree: &mut Tree, cx: &mut Context) -> anyhow::Result<usize> {
        self.add(tree, cx.element)
    }
}

impl BaseHost {
    /// The programs with their libraries, and the host's top-level links.
    fn add(&self, tree: &mut Tree, element: &str) -> anyhow::Result<usize> {
        let names = &self.binaries;
        if names.is_empty() {
            bail!("element `base-host`: param `binaries` is empty; list the programs to copy, e.g. binaries = [\"sh\", \"mount\"]");
        }
        let before = tree.len();
        for top in TOP_LINKS {
            let host = Path::new("/").join(top);
            if let Ok(target) = fs::read_link(&host) {
                let path = ImagePath::new(top).expect("valid");
                if tree.get(&path).is_none() {
                    let mtime = fs::symlink_metadata(&host).map_or(0, |m| m.mtime());
                    tree.insert(&path, Entry::symlink(&target.to_string_lossy(), mtime, element))?;
                }
            }
        }
        let search = LibrarySearch::from_host();
        let mut queue: VecDeque<(PathBuf, String)> = VecDeque::new();
        for name in names {
            let path = if name.contains('/') {
                PathBuf::from(name)
            } else {
                find_program(name).with_context(|| {
                    format!("element `base-host`: program `{name}` not found on PATH or in /usr/sbin, /sbin; install it or give its path")
                })?
            };
            queue.push_back((path, "the binaries param".into()));
        }
        let mut seen = BTreeSet::new();
        while let Some((path, wanted_by)) = queue.pop_front() {
            if !seen.insert(path.clone()) {
                continue;
            }
            let real = add_host_path(tree, &path, element).with_context(|| {
                format!("element `base-host`: adding {} (needed by {wanted_by})", path.display())
            })?;
            for dep in dependencies(&real, &search)? {
                queue.push_back((dep, real.display().to_string()));
            }
        }
        Ok(tree.len() - before)
    }
}

/// A program's path on the host: `PATH`, then the sbin directories.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found
}

/// Adds a host path at the same place in the image, recreating every symlink met on
/// the way (in the directories and at the end), and returns the real file's host path.
pub fn add_host_path(tree: &mut Tree, host: &Path, element: &str) -> anyhow::Result<PathBuf> {
    let mut pending: Vec<PathBuf> = vec![host.to_path_buf()];
    let mut hops = 0;
    while let Some(path) = pending.pop() {
        hops += 1;
        if hops > 40 {
            bail!("too many symlinks resolving {}", host.display());
        }
        let mut so_far = PathBuf::from("/");
        let comps: Vec<Component> = path.components().filter(|c| matches!(c, Component::Normal(_))).collect();
        let mut redirected = false;
        for (i, comp) in comps.iter().enumerate() {
            so_far.push(comp);
            let meta =
                fs::symlink_metadata(&so_far).with_context(|| format!("reading {}", so_far.display()))?;
            let image_path = ImagePath::new(&so_far.to_string_lossy())?;
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&so_far)?;
                let mtime = meta.mtime();
                if tree.get(&image_path).is_none() {
                    tree.insert(&image_path, Entry::symlink(&target.to_string_lossy(), mtime, element))?;
                }
                let mut next = so_far.parent().unwrap_or(Path::new("/")).join(&target);
                for rest in &comps[i + 1..] {
                    next.push(rest);
                }
                pending.push(normalise(&next));
                redirected = true;
                break;
            }
            if i + 1 == comps.len() {
                if !meta.is_file() {
                    bail!("{} is not a regular file", so_far.display());
                }
                // Recorded for the lock; a rebuild takes this host's programs, as the element says.
                crate::lock::read(&so_far);
                tree.insert(&image_path, root_entry(&so_far, element)?)?;
                return Ok(so_far);
            }
        }
        if !redirected {
            bail!("{} is not a file", path.display());
        }
    }
    bail!("could not resolve {}", host.display())
}

/// Removes `.` and `..` lexically (symlinks are resolved by the caller, one at a time).
fn normalise(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

/// Where the dynamic linker looks: ld.so.conf (with its includes), then the defaults.
pub struct LibrarySearch {
    dirs: Vec<PathBuf>,
}

impl LibrarySearch {
    pub fn from_host() -> LibrarySearch {
        let mut dirs = Vec::new();
        read_ld_conf(Path::new("/etc/ld.so.conf"), &mut dirs, 0);
        for d in ["/lib64", "/usr/lib64", "/lib", "/usr/lib"] {
            dirs.push(PathBuf::from(d));
        }
        LibrarySearch { dirs }
    }

    fn find(&self, name: &str, first: &[PathBuf], like: &goblin::elf::Elf) -> Option<PathBuf> {
        first.iter().chain(&self.dirs).map(|d| d.join(name)).find(|p| same_abi(p, like))
    }
}

fn read_ld_conf(path: &Path, dirs: &mut Vec<PathBuf>, depth: usize) {
    let Ok(text) = fs::read_to_string(path) else {
        return;
    };
    for line in text.lines().map(|l| l.split('#').next().unwrap_or("").trim()).filter(|l| !l.is_empty()) {
        if let Some(pattern) = line.strip_prefix("include").map(str::trim) {
            if depth > 4 {
                continue;
            }
            let pattern = if pattern.starts_with('/') {
                PathBuf::from(pattern)
            } else {
                path.parent().unwrap_or(Path::new("/")).join(pattern)
            };
            let (dir, glob) = (
                pattern.parent().unwrap_or(Path::new("/")),
                pattern.file_name().unwrap_or_default().to_string_lossy(),
            );
            let matcher = globset::Glob::new(&glob).map(|g| g.compile_matcher()).ok();
            let mut files: Vec<PathBuf> = fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| matcher.as_ref().is_some_and(|m| m.is_match(p.file_name().unwrap_or_default())))
                .collect();
            files.sort();
            for f in files {
                read_ld_conf(&f, dirs, depth + 1);
            }
        } else {
            dirs.push(PathBuf::from(line));
        }
    }
}

/// A library candidate must match the program's class and machine (no 32-bit libc for
/// a 64-bit program).
fn same_abi(path: &Path, like: &goblin::elf::Elf) -> bool {
    let Ok(mut f) = fs::File::open(path) else {
        return false;
    };
    let mut head = [0u8; 64];
    use std::io::Read;
    if f.read_exact(&mut head).is_err() {
        return false;
    }
    match goblin::elf::Elf::parse_header(&head) {
        Ok(h) => {
            h.e_machine == like.header.e_machine
                && (h.e_ident[goblin::elf::header::EI_CLASS] == goblin::elf::header::ELFCLASS64) == like.is_64
        }
        Err(_) => false,
    }
}

/// The files a host file needs to run: for ELF, its interpreter and libraries; for a
/// script, its `#!` interpreter.
pub fn dependencies(path: &Path, search: &LibrarySearch) -> anyhow::Result<Vec<PathBuf>> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if let Some(rest) = bytes.strip_prefix(b"#!") {
        let line =
            String::from_utf8_lossy(rest.split(|b| *b == b'\n').next().unwrap_or_default()).into_owned();
        return Ok(line.split_whitespace().next().map(PathBuf::from).into_iter().collect());
    }
    let Ok(elf) = goblin::elf::Elf::parse(&bytes) else {
        return Ok(Vec::new());
    };
    let mut deps = Vec::new();
    if let Some(interp) = elf.interpreter {
        deps.push(PathBuf::from(interp));
    }
    let origin = path.parent().unwrap_or(Path::new("/")).to_string_lossy().into_owned();
    let first: Vec<PathBuf> = elf
        .runpaths
        .iter()
        .chain(&elf.rpaths)
        .flat_map(|r| r.split(':'))
        .map(|d| PathBuf::from(d.replace("$ORIGIN", &origin).replace("${ORIGIN}", &origin)))
        .collect();
    for lib in &elf.libraries {
        match search.find(lib, &first, &elf) {
            Some(p) => deps.push(p),
            None => bail!(
                "{lib}, needed by {}, is not in any library directory ({}); install it, or list its path in base-host.binaries",
                path.display(),
                first.iter().chain(&search.dirs).map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
            ),
        }
    }
    Ok(deps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_shell_brings_its_libraries() {
        let mut tree = Tree::default();
        let host = BaseHost { binaries: vec!["sh".into(), "ls".into()] };
        let n = host.add(&mut tree, "base-host").unwrap();
        assert!(n > 3);
        let paths: Vec<&str> = tree.iter().map(|(p, _)| p.as_str()).collect();
        assert!(paths.iter().any(|p| p.contains("libc.so")), "{paths:?}");
        assert!(paths.iter().any(|p| p.contains("ld-linux")), "{paths:?}");
    }
}
