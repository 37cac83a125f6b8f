//! A base's `repositories`: package repositories the image's package manager sees
//! while the install phases run (pre-install.d, install.d, post-install.d) and that are
//! gone from the image afterwards — a distribution's media ISO (`iso:PATH`, unpacked
//! once into the cache by [`crate::media`], never mounted), a directory, or a URL.
//!
//! Local ones are bound into the hooks' mount namespace under `/var/cache/smelt-repos`;
//! each gets a file in the package manager's own place (zypper's `repos.d`, dnf's
//! `.repo`, apt's `sources.list.d`), written before the first install phase and removed
//! after the last, with what the package manager cached of it.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use crate::path::ImagePath;
use crate::plan::Plan;
use crate::tree::Tree;
use crate::ui::Ui;

/// Where local repositories are bound for hooks.
pub const IN_IMAGE: &str = "var/cache/smelt-repos";

/// The phases that see the repositories.
pub const PHASES: [&str; 3] = ["pre-install.d", "install.d", "post-install.d"];

/// One repository as the image's package manager is told of it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Repo {
    alias: String,
    /// What the package manager reads: `file:///var/cache/smelt-repos/0/Module-Basesystem`
    /// or the given URL.
    url: String,
    /// For apt: `SUITE COMPONENTS…`, or `./` for a flat repository.
    apt: String,
}

/// The image's repositories, ready to be shown to its package manager.
#[derive(Default)]
pub struct Repos {
    repos: Vec<Repo>,
    /// Host directory, and where hooks see it.
    pub binds: Vec<(PathBuf, PathBuf)>,
    family: &'static str,
    /// Config files and directories written by [`Repos::enter`].
    written: Vec<PathBuf>,
}

impl Repos {
    /// Every base's `repositories`, checked and unpacked; URLs are left out `--offline`.
    pub fn prepare(plan: &Plan, ui: &Ui) -> anyhow::Result<Repos> {
        let mut found = Repos { family: plan.family, ..Repos::default() };
        if let Some((element, _)) = plan.builtins.repositories().first() {
            if !["suse", "redhat", "debian"].contains(&plan.family) {
                bail!("element `{element}`: param `repositories`: smelt drives no package manager for the `{}` family ({})", plan.family, plan.distro);
            }
        }
        for (i, (element, given)) in plan.builtins.repositories().into_iter().enumerate() {
            let at =
                |e: &dyn std::fmt::Display| anyhow::anyhow!("element `{element}`: repository `{given}`: {e}");
            if given.split_once("://").is_some_and(|(s, _)| ["http", "https", "ftp"].contains(&s)) {
                if plan.offline {
                    ui.info(&format!("element `{element}`: repository {given} is left out: --offline uses local media only"));
                    continue;
                }
                let (url, apt) = given.split_once(' ').unwrap_or((given, "./"));
                found.repos.push(Repo {
                    alias: format!("smelt-{i}"),
                    url: url.into(),
                    apt: apt.trim().into(),
                });
                continue;
            }
            let (path, iso) = match given.strip_prefix("iso:") {
                Some(p) => (p, true),
                None => (given, false),
            };
            let path = crate::lock::read(&crate::lock::absolute(&plan.image.dir().join(path)));
            let meta = fs::metadata(&path).map_err(|e| at(&format!("{}: {e}", path.display())))?;
            let host = match (iso, meta.is_dir()) {
                (true, false) => crate::media::unpack(&path).map_err(|e| at(&e))?,
                (false, true) => path.clone(),
                (true, true) => {
                    return Err(at(&format!(
                        "{} is a directory; iso: names a media ISO file",
                        path.display()
                    )))
                }
                (false, false) => {
                    return Err(at(&format!(
                        "{} is a file; name a media ISO as iso:PATH, or a directory",
                        path.display()
                    )))
                }
            };
            let inside = format!("{IN_IMAGE}/{i}");
            let subs = metadata_in(&host, plan.family);
            if subs.is_empty() {
                let what = if iso { "the ISO" } else { "the directory" };
                return Err(at(&format!(
                    "{what} holds no repository metadata for {} ({}); is it the distribution's package media?",
                    manager(plan.family),
                    wanted(plan.family)
                )));
            }
            for (j, (sub, apt)) in subs.iter().enumerate() {
                let alias = if subs.len() == 1 { format!("smelt-{i}") } else { format!("smelt-{i}-{j}") };
                let url = format!("file:///{inside}{}{sub}", if sub.is_empty() { "" } else { "/" });
                found.repos.push(Repo { alias, url, apt: apt.clone() });
            }
            found.binds.push((host, PathBuf::from(inside)));
        }
        Ok(found)
    }

    /// Tells the package manager in the image at `root` of the repositories.
    pub fn enter(&mut self, root: &Path) -> anyhow::Result<()> {
        for r in &self.repos {
            let (file, text) = config(self.family, r);
            let at = root.join(&file);
            let mut parent = at.parent().map(Path::to_path_buf);
            let mut made = Vec::new();
            while let Some(p) = parent.filter(|p| !p.exists()) {
                made.push(p.clone());
                parent = p.parent().map(Path::to_path_buf);
            }
            for dir in made.iter().rev() {
                fs::create_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
                self.written.push(dir.clone());
            }
            fs::write(&at, text).with_context(|| format!("writing {}", at.display()))?;
            self.written.push(at);
        }
        Ok(())
    }

    /// Takes the repositories away again: their files, and what the package manager
    /// cached of them, from the image on disk and from the tree.
    pub fn leave(&mut self, root: &Path, tree: &mut Tree) -> anyhow::Result<()> {
        for p in self.written.drain(..).rev() {
            if p.is_dir() {
                let _ = fs::remove_dir(&p);
            } else {
                fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
            }
        }
        let mut gone: Vec<String> = Vec::new();
        for r in &self.repos {
            for dir in cached(self.family) {
                let Ok(list) = fs::read_dir(root.join(dir)) else { continue };
                for e in list.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if name == r.alias
                        || name.starts_with(&format!("{}-", r.alias))
                        || name.starts_with(&format!("{}.", r.alias))
                    {
                        crate::cleanup::remove(&e.path());
                        gone.push(format!("{dir}/{name}"));
                    }
                }
            }
        }
        // apt's lists live in smelt's cache (bound over /var/lib/apt/lists).
        if let Ok(list) = fs::read_dir(crate::cache::dir().join("apt/lists")) {
            let marker = format!("_{}_", IN_IMAGE.replace('/', "_"));
            for e in list.flatten().filter(|e| e.file_name().to_string_lossy().contains(&marker)) {
                let _ = fs::remove_file(e.path());
            }
        }
        let gone: Vec<ImagePath> = gone.iter().filter_map(|g| ImagePath::new(g).ok()).collect();
        tree.retain(|p, _| !gone.iter().any(|g| p == g || p.starts_with(g)));
        Ok(())
    }
}

/// The package manager of a family, for messages.
fn manager(family: &str) -> &'static str {
    match family {
        "suse" => "zypper",
        "redhat" => "dnf",
        _ => "apt",
    }
}

/// What metadata a family's package manager reads, for messages.
fn wanted(family: &str) -> &'static str {
    match family {
        "suse" | "redhat" => "repodata/repomd.xml",
        _ => "dists/SUITE/Release, or Packages for a flat repository",
    }
}

/// Where in `dir` (itself, or directories one or two levels down: a SLES media ISO's
/// modules) repositories for `family` are, each with apt's suite and components.
fn metadata_in(dir: &Path, family: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut candidates = vec![String::new()];
    for depth in 0..2 {
        let mut next = Vec::new();
        for rel in &candidates {
            let here = dir.join(rel);
            match family {
                "suse" | "redhat" => {
                    if here.join("repodata/repomd.xml").is_file() {
                        found.push((rel.clone(), String::new()));
                        continue;
                    }
                }
                _ => {
                    let mut suites: Vec<(String, String)> = fs::read_dir(here.join("dists"))
                        .into_iter()
                        .flatten()
                        .flatten()
                        .filter_map(|e| {
                            let release = fs::read_to_string(e.path().join("Release")).ok()?;
                            let comps = release
                                .lines()
                                .find_map(|l| l.strip_prefix("Components:"))?
                                .trim()
                                .to_string();
                            Some((rel.clone(), format!("{} {comps}", e.file_name().to_string_lossy())))
                        })
                        .collect();
                    suites.sort();
                    if !suites.is_empty() {
                        found.extend(suites);
                        continue;
                    }
                    if ["Packages", "Packages.gz", "Packages.xz"].iter().any(|p| here.join(p).is_file()) {
                        found.push((rel.clone(), "./".into()));
                        continue;
                    }
                }
            }
            if depth == 0 || rel.matches('/').count() == 0 {
                let mut subs: Vec<String> = fs::read_dir(&here)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        if rel.is_empty() {
                            name
                        } else {
                            format!("{rel}/{name}")
                        }
                    })
                    .collect();
                subs.sort();
                next.extend(subs);
            }
        }
        candidates = next;
    }
    found.sort();
    found
}

/// A repository's config file in the image (relative to its root) and its text.
fn config(family: &str, r: &Repo) -> (String, String) {
    match family {
        "suse" => (
            format!("etc/zypp/repos.d/{}.repo", r.alias),
            format!(
                "[{0}]\nname={0} (smelt, install phases only)\nbaseurl={1}\nenabled=1\nautorefresh=0\ngpgcheck=0\ntype=rpm-md\nkeeppackages=0\n",
                r.alias, r.url
            ),
        ),
        "redhat" => (
            format!("etc/yum.repos.d/{}.repo", r.alias),
            format!("[{0}]\nname={0} (smelt, install phases only)\nbaseurl={1}\nenabled=1\ngpgcheck=0\n", r.alias, r.url),
        ),
        _ => (
            format!("etc/apt/sources.list.d/{}.list", r.alias),
            format!("deb [trusted=yes] {} {}\n", r.url.replacen("file:///", "file:/", 1), r.apt),
        ),
    }
}

/// Where a family's package manager caches a repository, by its alias.
fn cached(family: &str) -> &'static [&'static str] {
    match family {
        "suse" => &["var/cache/zypp/raw", "var/cache/zypp/solv", "var/cache/zypp/packages"],
        "redhat" => &["var/cache/dnf", "var/cache/yum", "var/cache/libdnf5"],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_modules_and_apt_suites_are_found() {
        let d = tempfile::tempdir().unwrap();
        for m in ["Module-Basesystem", "Product-SLES"] {
            fs::create_dir_all(d.path().join(m).join("repodata")).unwrap();
            fs::write(d.path().join(m).join("repodata/repomd.xml"), "<repomd/>").unwrap();
        }
        fs::create_dir_all(d.path().join("docu")).unwrap();
        let found = metadata_in(d.path(), "suse");
        assert_eq!(
            found,
            [("Module-Basesystem".into(), String::new()), ("Product-SLES".into(), String::new())]
        );
        assert!(metadata_in(d.path(), "debian").is_empty());
        fs::create_dir_all(d.path().join("dists/bookworm")).unwrap();
        fs::write(d.path().join("dists/bookworm/Release"), "Suite: stable\nComponents: main contrib\n")
            .unwrap();
        assert_eq!(metadata_in(d.path(), "debian"), [(String::new(), "bookworm main contrib".to_string())]);
        let r = Repo {
            alias: "smelt-0".into(),
            url: "file:///var/cache/smelt-repos/0".into(),
            apt: "bookworm main".into(),
        };
        assert_eq!(config("debian", &r).1, "deb [trusted=yes] file:/var/cache/smelt-repos/0 bookworm main\n");
        assert!(config("suse", &r).1.contains("baseurl=file:///var/cache/smelt-repos/0\n"));
    }
}
