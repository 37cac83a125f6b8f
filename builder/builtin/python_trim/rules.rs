//! What python-trim removes from a venv: named rules of globs (relative to the venv),
//! test directories that no code imports, and the user's `remove` globs; `keep` globs
//! override them all. A removed directory takes everything under it, by the same rule.

use std::collections::BTreeSet;

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::Removals;
use crate::path::ImagePath;
use crate::tree::{Kind, Tree};

/// What nothing the venv runs needs, rule by rule.
const BUILT_IN: &[(&str, &[&str])] = &[
    (
        "pip, setuptools and wheel (installers)",
        &[
            "bin/pip",
            "bin/pip[0-9]*",
            "bin/easy_install*",
            "bin/wheel",
            "lib/python*/site-packages/{pip,setuptools,wheel,pkg_resources,_distutils_hack}",
            "lib/python*/site-packages/{pip,setuptools,wheel}-*.dist-info",
            "lib/python*/site-packages/distutils-precedence.pth",
        ],
    ),
    ("activate scripts", &["bin/activate*", "bin/Activate.ps1"]),
    (
        "C sources, headers and type stubs (for building and type checkers, not for running)",
        &["include", "lib/python*/site-packages/**/*.{c,h,pyx,pxd,pyi}", "lib/python*/site-packages/**/py.typed"],
    ),
    ("bytecode caches (written again for the image)", &["**/__pycache__", "**/*.pyc"]),
    (
        "dist-info files importlib.metadata does not read",
        &[
            "lib/python*/site-packages/*.dist-info/{RECORD,INSTALLER,REQUESTED,direct_url.json,WHEEL,LICENSE*,AUTHORS*}",
            "lib/python*/site-packages/*.dist-info/licenses",
        ],
    ),
];

pub const TEST_DIRS: &str = "test directories no code imports (site-packages/**/{test,tests})";

/// Globs relative to `venv`, as one set.
pub fn globs<'a>(venv: &ImagePath, globs: impl Iterator<Item = &'a str>) -> anyhow::Result<GlobSet> {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        let g = g.trim_start_matches('/');
        let full = if venv.is_root() { g.to_string() } else { format!("{}/{g}", venv.as_str()) };
        b.add(Glob::new(&full).map_err(|e| anyhow::anyhow!("glob `{g}`: {e}"))?);
    }
    Ok(b.build()?)
}

/// Applies every rule to the venv's entries, recording what each removed.
pub fn remove(
    tree: &mut Tree,
    venv: &ImagePath,
    site: &ImagePath,
    user: &[String],
    keep: &GlobSet,
    log: &mut Removals,
) -> anyhow::Result<()> {
    let mut rules: Vec<(String, GlobSet)> = Vec::new();
    for (name, list) in BUILT_IN {
        rules.push((name.to_string(), globs(venv, list.iter().copied())?));
    }
    for g in user {
        rules.push((format!("remove: {g}"), globs(venv, std::iter::once(g.as_str()))?));
    }
    // First the directories and files a rule names, then what lies under them.
    let mut doomed: Vec<(ImagePath, usize)> = Vec::new();
    for (path, _) in tree.iter().filter(|(p, _)| p.starts_with(venv) && p != venv) {
        if keep.is_match(path.as_str()) {
            continue;
        }
        if let Some(i) = rules.iter().position(|(_, set)| set.is_match(path.as_str())) {
            doomed.push((path, i));
        }
    }
    for dir in unimported_test_dirs(tree, site, keep) {
        doomed.push((dir, usize::MAX));
    }
    let ids: Vec<usize> = rules.iter().map(|(name, _)| log.rule(name)).collect();
    let test_rule = log.rule(TEST_DIRS);
    for (root, i) in doomed {
        let rule = if i == usize::MAX { test_rule } else { ids[i] };
        let under: Vec<ImagePath> = std::iter::once(root).chain(tree.below(&root).map(|(p, _)| p)).collect();
        for path in under {
            // What `keep` names stays, and so do the directories above it.
            if keep.is_match(path.as_str()) || tree.below(&path).any(|(p, _)| keep.is_match(p.as_str())) {
                continue;
            }
            if let Some(e) = tree.remove(&path) {
                log.removed(rule, &path, e.size(), matches!(e.kind, Kind::File { .. }));
            }
        }
    }
    Ok(())
}

/// Directories named `test` or `tests` in site-packages that no module outside them
/// imports: neither by dotted name (`ansible.plugins.test`, which Ansible's plugin
/// loader names as a string) nor relatively from their parent package (`from . import
/// tests`, `from .tests import x`).
fn unimported_test_dirs(tree: &Tree, site: &ImagePath, keep: &GlobSet) -> Vec<ImagePath> {
    let candidates: Vec<ImagePath> = tree
        .iter()
        .filter(|(p, e)| {
            matches!(e.kind, Kind::Dir)
                && p.starts_with(site)
                && matches!(p.as_str().rsplit('/').next(), Some("test" | "tests"))
                && !keep.is_match(p.as_str())
        })
        .map(|(p, _)| p)
        .collect();
    // Nested candidates go with the outer one.
    let candidates: Vec<ImagePath> = candidates
        .iter()
        .filter(|c| !candidates.iter().any(|o| o != *c && c.starts_with(o)))
        .cloned()
        .collect();
    if candidates.is_empty() {
        return Vec::new();
    }
    let sources: Vec<(ImagePath, String)> = tree
        .iter()
        .filter(|(p, _)| p.starts_with(site) && p.as_str().ends_with(".py"))
        .filter_map(|(p, e)| match &e.kind {
            Kind::File { source, size, .. } if *size < 4 << 20 => {
                Some((p, String::from_utf8_lossy(&source.read_all().ok()?).into_owned()))
            }
            _ => None,
        })
        .collect();
    let mut imported: BTreeSet<&ImagePath> = BTreeSet::new();
    for dir in &candidates {
        let rel = dir.as_str()[site.as_str().len()..].trim_start_matches('/');
        let dotted = rel.replace('/', ".");
        let name = rel.rsplit('/').next().unwrap_or(rel);
        let parent = dir.parent();
        let relative = [format!("from .{name} "), format!("from .{name}."), format!("from . import {name}")];
        let used = sources.iter().any(|(path, text)| {
            !path.starts_with(dir)
                && (text.contains(&dotted)
                    || (path.parent() == parent && relative.iter().any(|r| text.contains(r.as_str()))))
        });
        if used {
            imported.insert(dir);
        }
    }
    candidates.iter().filter(|c| !imported.contains(c)).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::Entry;

    fn tree(files: &[(&str, &str)]) -> Tree {
        let mut t = Tree::default();
        for (p, text) in files {
            t.insert(&ImagePath::new(p).unwrap(), Entry::bytes(text.as_bytes().to_vec(), 0o644, 0, "v"))
                .unwrap();
        }
        t
    }

    /// Regression: the rule dropping every test/tests directory removed
    /// `ansible.plugins.test`, a real package the plugin loader names as a string, and
    /// ansible-playbook could not start.
    #[test]
    fn test_directories_code_imports_are_kept() {
        let site = "v/lib/python3.11/site-packages";
        let mut t = tree(&[
            (
                &format!("{site}/ansible/plugins/loader.py"),
                "test_loader = PluginLoader('TestModule', 'ansible.plugins.test')",
            ),
            (&format!("{site}/ansible/plugins/test/core.py"), "x = 1"),
            (&format!("{site}/jinja2/tests.py"), "x = 1"),
            (&format!("{site}/yaml/tests/test_a.py"), "import yaml"),
            (&format!("{site}/pkg/__init__.py"), "from . import tests"),
            (&format!("{site}/pkg/tests/__init__.py"), ""),
            (&format!("{site}/cryptography/tests/x.py"), ""),
        ]);
        let venv = ImagePath::new("v").unwrap();
        let site = ImagePath::new(site).unwrap();
        let mut log = Removals::default();
        remove(&mut t, &venv, &site, &[], &GlobSet::empty(), &mut log).unwrap();
        let left: Vec<&str> = t.iter().map(|(p, _)| p.as_str()).collect();
        assert!(left.iter().any(|p| p.ends_with("ansible/plugins/test/core.py")), "{left:?}");
        assert!(left.iter().any(|p| p.ends_with("pkg/tests/__init__.py")), "{left:?}");
        assert!(
            left.iter().any(|p| p.ends_with("jinja2/tests.py")),
            "a module named tests is not a directory"
        );
        assert!(!left.iter().any(|p| p.contains("yaml/tests")), "{left:?}");
        assert!(!left.iter().any(|p| p.contains("cryptography/tests")), "{left:?}");
        let why = log.why(&ImagePath::new("v/lib/python3.11/site-packages/yaml/tests/test_a.py").unwrap());
        assert_eq!(why.map(|(rule, _)| rule), Some(TEST_DIRS));
    }
}
