//! Ansible trimmed to what the playbooks use (`ansible-playbooks`): the `ansible`
//! package brings about a hundred collections (several hundred MiB) of which a
//! playbook uses a handful of plugins. The playbooks are read ([`playbook`]: plays,
//! tasks, roles, includes, Jinja expressions), every name they use is found in the venv
//! as Ansible would find it ([`venv`]: short names, the `collections` keyword, routing
//! to collections), and what is kept is those plugins, what they import
//! (`module_utils`, `plugin_utils`), the doc fragments they extend, each used
//! collection's `meta/runtime.yml` and `MANIFEST.json`, and of ansible-core's modules
//! those the playbooks name, fact gathering's `setup`, the ones the kept action plugins
//! (and their base class) run, and `async_wrapper`/`async_status`. The rest of `ansible_collections/` and of
//! `ansible/modules/` goes, each removal recorded by rule, with what each collection
//! kept. A name that cannot be found is a build error at its playbook's file and line.

mod jinja;
mod playbook;
mod venv;

use std::collections::{BTreeMap, BTreeSet};

use anyhow::bail;
use globset::GlobSet;

use super::Removals;
use crate::path::ImagePath;
use crate::tree::{Kind as EntryKind, Tree};
use playbook::{Kind, Reader, Use};
use venv::{text, Found, Venv};

/// Modules of ansible-core kept whatever the playbooks say: `async` tasks run through
/// them.
const ALWAYS: [&str; 2] = ["async_wrapper", "async_status"];

pub const UNUSED_COLLECTIONS: &str = "ansible collections no playbook uses";
pub const UNUSED_CORE_MODULES: &str = "ansible-core modules no playbook uses";

/// Trims the venv's Ansible to what `playbooks` (image paths) use; what `keep` names
/// stays.
pub fn trim(
    tree: &mut Tree,
    element: &str,
    site: &ImagePath,
    playbooks: &[String],
    keep: &GlobSet,
    log: &mut Removals,
) -> anyhow::Result<()> {
    let mut reader = Reader::new(tree, *site);
    for p in playbooks {
        let path =
            ImagePath::new(p).map_err(|e| anyhow::anyhow!("element `{element}`: ansible-playbooks: {e}"))?;
        reader.playbook(&path);
    }
    let (uses, mut errors) = (reader.uses, reader.errors);
    let venv = Venv::read(tree, site).map_err(|e| anyhow::anyhow!("element `{element}`: {e}"))?;
    let mut wanted = Wanted::default();
    for u in &uses {
        match venv.find(tree, u.kind, &u.name, &u.search) {
            Ok(found) => wanted.add(found),
            Err(_) if local(tree, u) => {}
            Err(why) => errors.push(format!("{}: {why}", at_line(tree, u))),
        }
    }
    if !errors.is_empty() {
        bail!(
            "element `{element}`: the playbooks use what the venv's Ansible does not have:\n  {}\n  install the \
             collection into the venv, fix the name, or put the plugin beside the playbook (library/, filter_plugins/, …)",
            errors.join("\n  ")
        );
    }
    wanted.core_modules.extend(ALWAYS.iter().map(|m| m.to_string()));
    wanted.close_core(tree, &venv);
    wanted.close_collections(tree, &venv);
    remove(tree, &venv, &wanted, keep, log);
    Ok(())
}

/// What the playbooks need of the venv.
#[derive(Default)]
struct Wanted {
    core_modules: BTreeSet<String>,
    /// Per collection: its plugins (as the report names them) and the files kept.
    collections: BTreeMap<String, (BTreeSet<String>, BTreeSet<ImagePath>)>,
}

impl Wanted {
    fn add(&mut self, found: Found) {
        match found {
            Found::Jinja | Found::Core { module: None } => {}
            Found::Core { module: Some(m) } => {
                self.core_modules.insert(m);
            }
            Found::Collection { collection, plugin, files } => {
                let (plugins, kept) = self.collections.entry(collection).or_default();
                plugins.insert(plugin);
                kept.extend(files);
            }
        }
    }

    /// The modules ansible-core's kept action plugins run (`ansible.legacy.copy`,
    /// `ansible.builtin.file`, …), and theirs in turn; with those every action runs
    /// through the base class (`stat` for checksums, `file` and `slurp` for diffs).
    fn close_core(&mut self, tree: &Tree, venv: &Venv) {
        let modules = venv.core_plugins("modules");
        let mut queue: Vec<String> = self.core_modules.iter().cloned().collect();
        queue.push("__init__".into());
        let mut seen = BTreeSet::new();
        while let Some(m) = queue.pop() {
            if !seen.insert(m.clone()) {
                continue;
            }
            let Ok(action) = venv.site.join(&format!("ansible/plugins/action/{m}.py")) else { continue };
            let Some(source) = text(tree, &action) else { continue };
            for called in quoted_names(&source) {
                let short = called
                    .strip_prefix("ansible.legacy.")
                    .or_else(|| called.strip_prefix("ansible.builtin."));
                if let Some(short) = short.filter(|s| modules.contains(*s)) {
                    self.core_modules.insert(short.to_string());
                    queue.push(short.to_string());
                }
            }
        }
    }

    /// What the kept files of collections import (`module_utils`, `plugin_utils`, of
    /// any collection), the doc fragments they extend, and the modules their action
    /// plugins run.
    fn close_collections(&mut self, tree: &Tree, venv: &Venv) {
        let mut queue: Vec<ImagePath> =
            self.collections.values().flat_map(|(_, f)| f.iter().copied()).collect();
        let mut seen: BTreeSet<ImagePath> = BTreeSet::new();
        while let Some(file) = queue.pop() {
            if !seen.insert(file) || !file.as_str().ends_with(".py") {
                continue;
            }
            let Some(source) = text(tree, &file) else { continue };
            for (collection, path) in references(&source, &file, venv) {
                if tree.get(&path).is_some() {
                    let (_, kept) = self.collections.entry(collection).or_default();
                    if kept.insert(path) {
                        queue.push(path);
                    }
                }
            }
        }
    }
}

/// What a collection's Python file refers to that must stay: modules it imports
/// (`ansible_collections.NS.COLL.plugins.TYPE.NAME`, or relatively `from ..module_utils.x
/// import y`), doc fragments it extends (`NS.COLL.NAME`), as (collection, file) pairs.
fn references(source: &str, file: &ImagePath, venv: &Venv) -> Vec<(String, ImagePath)> {
    let mut out = Vec::new();
    let mut module = |dotted: &str| {
        let parts: Vec<&str> = dotted.split('.').collect();
        if parts.len() < 5 || parts[0] != "ansible_collections" || parts[3] != "plugins" {
            return;
        }
        let collection = format!("{}.{}", parts[1], parts[2]);
        let Some(dir) = venv.collection(&collection) else { return };
        // The longest prefix that is a module or a package, and every package on the way.
        for n in (4..=parts.len()).rev() {
            let rel = parts[3..n].join("/");
            for candidate in [format!("{rel}.py"), format!("{rel}/__init__.py")] {
                if let Ok(p) = dir.join(&candidate) {
                    out.push((collection.clone(), p));
                }
            }
        }
    };
    // The package this file is in, for relative imports.
    let rel_package: Vec<String> = file
        .as_str()
        .strip_prefix(venv.site.as_str())
        .unwrap_or("")
        .trim_start_matches('/')
        .trim_end_matches(".py")
        .split('/')
        .map(String::from)
        .collect();
    for line in source.lines() {
        let line = line.trim_start();
        let target = if let Some(rest) = line.strip_prefix("from ") {
            rest.split_whitespace().next().unwrap_or("").to_string()
        } else if let Some(rest) = line.strip_prefix("import ") {
            rest.split([',', ' ']).next().unwrap_or("").to_string()
        } else {
            continue;
        };
        if let Some(relative) = target.strip_prefix('.') {
            // `.x` is in this file's package, `..x` one above.
            let ups = relative.chars().take_while(|c| *c == '.').count() + 1;
            let base: Vec<&str> = rel_package.iter().map(String::as_str).collect();
            if base.len() > ups {
                let mut parts: Vec<&str> = base[..base.len() - ups].to_vec();
                let rest = relative.trim_start_matches('.');
                parts.extend(rest.split('.').filter(|s| !s.is_empty()));
                module(&parts.join("."));
                // `from . import name` names a module of the package.
                if let Some(names) = line.split(" import ").nth(1) {
                    for name in names.split(',').map(|n| n.split_whitespace().next().unwrap_or("")) {
                        let mut with = parts.clone();
                        with.push(name);
                        module(&with.join("."));
                    }
                }
            }
        } else {
            module(&target);
            if let Some(names) = line.split(" import ").nth(1).filter(|_| line.starts_with("from ")) {
                for name in names.split(',').map(|n| n.split_whitespace().next().unwrap_or("")) {
                    module(&format!("{target}.{name}"));
                }
            }
        }
    }
    // Doc fragments: `extends_documentation_fragment:` items in DOCUMENTATION.
    let mut in_list = false;
    for line in source.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("extends_documentation_fragment:") {
            in_list = true;
            if let Some(one) = trimmed.split_once(':').map(|(_, v)| v.trim()).filter(|v| !v.is_empty()) {
                fragment(one, venv, &mut out);
            }
            continue;
        }
        if in_list {
            match trimmed.strip_prefix("- ") {
                Some(name) => fragment(name.trim(), venv, &mut out),
                None => in_list = false,
            }
        }
    }
    out
}

/// A doc fragment `NS.COLL.NAME[.SECTION]`: `plugins/doc_fragments/NAME.py`.
fn fragment(name: &str, venv: &Venv, out: &mut Vec<(String, ImagePath)>) {
    let Some((collection, rest)) = venv::fqcn(name) else { return };
    let Some(dir) = venv.collection(collection) else { return };
    let file = rest.split('.').next().unwrap_or(rest);
    if let Ok(p) = dir.join(&format!("plugins/doc_fragments/{file}.py")) {
        out.push((collection.to_string(), p));
    }
}

/// The modules `source` names as `ansible.legacy.NAME` or `ansible.builtin.NAME`.
fn quoted_names(source: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for prefix in ["ansible.legacy.", "ansible.builtin."] {
        for (at, _) in source.match_indices(prefix) {
            let name: String = source[at + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(format!("{prefix}{name}"));
            }
        }
    }
    out
}

/// Whether `u` names a plugin beside its playbook or role (`library/`,
/// `filter_plugins/`, …), which the kit carries outside the venv.
fn local(tree: &Tree, u: &Use) -> bool {
    let (dir, file_named) = match u.kind {
        Kind::Module => ("library", true),
        Kind::Filter => ("filter_plugins", false),
        Kind::Test => ("test_plugins", false),
        Kind::Lookup => ("lookup_plugins", true),
        Kind::Callback => ("callback_plugins", true),
        Kind::Role => return false,
    };
    let mut at = u.file.parent();
    while let Some(d) = at {
        if let Ok(plugins) = d.join(dir) {
            let found = tree.below(&plugins).any(|(p, _)| {
                let stem = p.file_name().trim_end_matches(".py");
                if file_named {
                    stem == u.name
                } else {
                    text(tree, &p).is_some_and(|t| {
                        t.contains(&format!("'{}'", u.name)) || t.contains(&format!("\"{}\"", u.name))
                    })
                }
            });
            if found {
                return true;
            }
        }
        at = d.parent();
    }
    false
}

/// `FILE:LINE` of the first line of the use's file that names it.
fn at_line(tree: &Tree, u: &Use) -> String {
    let line = text(tree, &u.file)
        .and_then(|t| t.lines().position(|l| l.contains(&u.name)).map(|n| n + 1))
        .map_or(String::new(), |n| format!(":{n}"));
    format!("{}{line}: {} `{}`", u.file, u.kind.name(), u.name)
}

/// Takes out what the playbooks do not need, rule by rule.
fn remove(tree: &mut Tree, venv: &Venv, wanted: &Wanted, keep: &GlobSet, log: &mut Removals) {
    let unused = log.rule(UNUSED_COLLECTIONS);
    let mut gone_names = Vec::new();
    for (name, dir) in venv.collections() {
        match wanted.collections.get(name) {
            None => {
                if take(tree, dir, &|_| false, keep, log, unused) {
                    gone_names.push(name.clone());
                }
            }
            Some((plugins, kept)) => {
                let rule = log.rule(&format!("ansible collection {name}: what no playbook uses"));
                let stays = |p: &ImagePath| {
                    let rel = p.as_str()[dir.as_str().len()..].trim_start_matches('/');
                    kept.contains(p)
                        || matches!(rel, "meta" | "meta/runtime.yml" | "MANIFEST.json")
                        || kept.iter().any(|k| k.starts_with(p))
                        || (p.file_name() == "__init__.py"
                            && kept.iter().any(|k| p.parent().is_some_and(|d| k.starts_with(&d))))
                };
                take(tree, dir, &stays, keep, log, rule);
                log.kept(rule, plugins.iter().cloned().collect());
            }
        }
    }
    log.named(unused, gone_names);
    // Namespace directories left empty.
    if let Ok(root) = venv.site.join("ansible_collections") {
        let empty: Vec<ImagePath> = tree
            .below(&root)
            .filter(|(p, e)| p.parent() == Some(root) && matches!(e.kind, EntryKind::Dir))
            .map(|(p, _)| p)
            .filter(|p| tree.below(p).next().is_none())
            .collect();
        for dir in empty {
            tree.remove(&dir);
        }
    }
    let core = log.rule(UNUSED_CORE_MODULES);
    if let Ok(modules) = venv.site.join("ansible/modules") {
        let stays = |p: &ImagePath| {
            let stem = p.file_name().trim_end_matches(".py");
            p == &modules
                || stem == "__init__"
                || wanted.core_modules.contains(stem)
                || p.file_name() == "__pycache__"
        };
        take(tree, &modules, &stays, keep, log, core);
    }
}

/// Removes what is below `dir` (and `dir` itself, when nothing stays) but for what
/// `stays` or `keep` names, under `rule`; returns whether all of it went.
fn take(
    tree: &mut Tree,
    dir: &ImagePath,
    stays: &dyn Fn(&ImagePath) -> bool,
    keep: &GlobSet,
    log: &mut Removals,
    rule: usize,
) -> bool {
    let below: Vec<ImagePath> = tree.below(dir).map(|(p, _)| p).collect();
    let mut all = true;
    // Deepest first, so a directory goes once it is empty.
    for path in below.iter().rev() {
        if stays(path) || keep.is_match(path.as_str()) {
            all = false;
            continue;
        }
        let is_dir = matches!(tree.get(path).map(|e| e.kind), Some(EntryKind::Dir));
        if is_dir && tree.below(path).next().is_some() {
            all = false;
            continue;
        }
        if let Some(e) = tree.remove(path) {
            log.removed(rule, path, e.size(), matches!(e.kind, EntryKind::File { .. }));
        }
    }
    if all {
        if let Some(e) = tree.remove(dir) {
            log.removed(rule, dir, e.size(), false);
        }
    }
    all
}
