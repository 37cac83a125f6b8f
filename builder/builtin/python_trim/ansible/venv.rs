//! What an Ansible venv holds, and where a name a playbook uses is in it, as Ansible
//! resolves it: Jinja's own filters and tests; ansible-core's modules, actions,
//! filters, tests, lookups and callbacks, with its routing table
//! (`ansible/config/ansible_builtin_runtime.yml`: a short name moved to a collection,
//! `timezone` → `community.general.timezone`); each collection under
//! `ansible_collections/`, with its `meta/runtime.yml` routing (redirects and
//! tombstones). Short module names search the play's `collections` first, then
//! ansible-core.

use std::collections::{BTreeMap, BTreeSet};

use yaml_rust2::{Yaml, YamlLoader};

use super::playbook::Kind;
use crate::path::ImagePath;
use crate::tree::{Kind as EntryKind, Tree};

/// Where a name led: a plugin of ansible-core (always kept whole but for modules), or
/// files of a collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Jinja's own filter or test: nothing to keep.
    Jinja,
    /// A plugin of ansible-core; for a module, its name (kept with the action plugin's
    /// own calls).
    Core { module: Option<String> },
    /// A plugin of a collection: the collection (`ns.coll`), the plugin as the report
    /// names it (`modules/nmcli`), and its files.
    Collection { collection: String, plugin: String, files: Vec<ImagePath> },
}

/// A routing table: plugin type (`modules`, `filter`, …) → name → where it went.
type Routing = BTreeMap<String, BTreeMap<String, Route>>;

#[derive(Debug, Clone)]
enum Route {
    Redirect(String),
    Tombstone(String),
}

pub struct Venv {
    pub site: ImagePath,
    jinja_filters: BTreeSet<String>,
    jinja_tests: BTreeSet<String>,
    /// ansible-core's plugins by type directory (`modules`, `action`, `filter`, …).
    core: BTreeMap<&'static str, BTreeSet<String>>,
    core_routing: Routing,
    /// `ns.coll` → its directory and routing.
    collections: BTreeMap<String, (ImagePath, Routing)>,
}

/// Plugin type directories of ansible-core read here.
const CORE_TYPES: [&str; 6] = ["modules", "action", "filter", "test", "lookup", "callback"];

impl Venv {
    pub fn read(tree: &Tree, site: &ImagePath) -> anyhow::Result<Venv> {
        let read_rel = |rel: &str| -> Option<String> { text(tree, &site.join(rel).ok()?) };
        let jinja_filters = dict_keys(&read_rel("jinja2/filters.py").unwrap_or_default(), "FILTERS = {");
        let jinja_tests = dict_keys(&read_rel("jinja2/tests.py").unwrap_or_default(), "TESTS = {");
        let ansible = site.join("ansible")?;
        anyhow::ensure!(
            tree.get(&ansible).is_some(),
            "ansible-playbooks is set, but the venv has no ansible package (site-packages/ansible)"
        );
        let mut core = BTreeMap::new();
        for kind in CORE_TYPES {
            let dir = if kind == "modules" {
                ansible.join("modules")?
            } else {
                ansible.join(&format!("plugins/{kind}"))?
            };
            let mut names = BTreeSet::new();
            for (p, _) in tree.below(&dir).filter(|(p, _)| p.parent() == Some(dir)) {
                let file = p.file_name();
                if let Some(n) = file.strip_suffix(".py").or_else(|| file.strip_suffix(".yml")) {
                    if n != "__init__" {
                        names.insert(n.to_string());
                    }
                }
                // Filter and test files define several plugins: their names too.
                if matches!(kind, "filter" | "test") && file.ends_with(".py") {
                    let source = text(tree, &p).unwrap_or_default();
                    names.extend(dict_keys(&source, &format!("def {}s(self):", kind)));
                }
            }
            core.insert(kind, names);
        }
        let core_routing =
            routing(&read_rel("ansible/config/ansible_builtin_runtime.yml").unwrap_or_default());
        let mut collections = BTreeMap::new();
        let root = site.join("ansible_collections")?;
        for (ns_dir, _) in
            tree.below(&root).filter(|(p, e)| p.parent() == Some(root) && matches!(e.kind, EntryKind::Dir))
        {
            for (dir, _) in tree
                .below(&ns_dir)
                .filter(|(p, e)| p.parent() == Some(ns_dir) && matches!(e.kind, EntryKind::Dir))
            {
                let name = format!("{}.{}", ns_dir.file_name(), dir.file_name());
                let runtime =
                    dir.join("meta/runtime.yml").ok().and_then(|p| text(tree, &p)).unwrap_or_default();
                collections.insert(name, (dir, routing(&runtime)));
            }
        }
        Ok(Venv { site: *site, jinja_filters, jinja_tests, core, core_routing, collections })
    }

    /// Where `name` of `kind` is, searching `search` for a short module or role name.
    pub fn find(&self, tree: &Tree, kind: Kind, name: &str, search: &[String]) -> Result<Found, String> {
        self.find_at(tree, kind, name, search, 0)
    }

    fn find_at(
        &self,
        tree: &Tree,
        kind: Kind,
        name: &str,
        search: &[String],
        depth: usize,
    ) -> Result<Found, String> {
        if depth > 10 {
            return Err(format!("{} `{name}` redirects in a loop", kind.name()));
        }
        match fqcn(name) {
            Some(("ansible.builtin" | "ansible.legacy", short)) => self.core(tree, kind, short, depth),
            Some((collection, short)) => self.in_collection(tree, kind, collection, short, depth),
            None => {
                if matches!(kind, Kind::Module) {
                    for c in search {
                        if let Ok(found) = self.in_collection(tree, kind, c, name, depth) {
                            return Ok(found);
                        }
                    }
                }
                if kind == Kind::Role {
                    // A role of the playbook's own directory.
                    return Ok(Found::Core { module: None });
                }
                self.core(tree, kind, name, depth)
            }
        }
    }

    /// A short name of ansible-core, or Jinja's.
    fn core(&self, tree: &Tree, kind: Kind, name: &str, depth: usize) -> Result<Found, String> {
        let has = |t: &str| self.core.get(t).is_some_and(|s| s.contains(name));
        let (types, routed): (&[&str], &str) = match kind {
            Kind::Module => (&["modules", "action"], "modules"),
            Kind::Filter if self.jinja_filters.contains(name) => return Ok(Found::Jinja),
            Kind::Test if self.jinja_tests.contains(name) => return Ok(Found::Jinja),
            Kind::Filter => (&["filter"], "filter"),
            Kind::Test => (&["test"], "test"),
            Kind::Lookup => (&["lookup"], "lookup"),
            Kind::Callback => (&["callback"], "callback"),
            Kind::Role => return Ok(Found::Core { module: None }),
        };
        if types.iter().any(|t| has(t)) {
            let module = (kind == Kind::Module && has("modules")).then(|| name.to_string());
            return Ok(Found::Core { module });
        }
        match self.core_routing.get(routed).and_then(|r| r.get(name)) {
            Some(Route::Redirect(to)) => self.find_at(tree, kind, to, &[], depth + 1),
            Some(Route::Tombstone(why)) => {
                Err(format!("{} `{name}` was removed from Ansible: {why}", kind.name()))
            }
            None => Err(format!(
                "no {} `{name}` in ansible-core, nor routed from it to a collection",
                kind.name()
            )),
        }
    }

    /// `short` of `collection`: its routing, then its plugin file.
    fn in_collection(
        &self,
        tree: &Tree,
        kind: Kind,
        collection: &str,
        short: &str,
        depth: usize,
    ) -> Result<Found, String> {
        let Some((dir, routing)) = self.collections.get(collection) else {
            return Err(format!(
                "collection `{collection}` (of {} `{collection}.{short}`) is not in the venv",
                kind.name()
            ));
        };
        let typ = match kind {
            Kind::Module => "modules",
            Kind::Filter => "filter",
            Kind::Test => "test",
            Kind::Lookup => "lookup",
            Kind::Callback => "callback",
            Kind::Role => {
                let role = dir.join(&format!("roles/{short}")).map_err(|e| e.to_string())?;
                if tree.get(&role).is_none() {
                    return Err(format!("collection `{collection}` has no role `{short}`"));
                }
                let files = tree.below(&role).map(|(p, _)| p).collect();
                return Ok(Found::Collection {
                    collection: collection.into(),
                    plugin: format!("roles/{short}"),
                    files,
                });
            }
        };
        match routing.get(typ).and_then(|r| r.get(short)) {
            Some(Route::Redirect(to)) => return self.find_at(tree, kind, to, &[], depth + 1),
            Some(Route::Tombstone(why)) => {
                return Err(format!("{} `{collection}.{short}` was removed: {why}", kind.name()));
            }
            None => {}
        }
        let plugins = dir.join(&format!("plugins/{typ}")).map_err(|e| e.to_string())?;
        let file = plugins.join(&format!("{}.py", short.replace('.', "/"))).map_err(|e| e.to_string())?;
        let mut files = Vec::new();
        if tree.get(&file).is_some() {
            files.push(file);
        } else if matches!(kind, Kind::Filter | Kind::Test) {
            // A file defining several filters (or tests) under other names.
            let quoted = [format!("'{short}'"), format!("\"{short}\"")];
            files.extend(
                tree.below(&plugins)
                    .filter(|(p, _)| p.as_str().ends_with(".py"))
                    .filter(|(p, _)| {
                        text(tree, p).is_some_and(|t| quoted.iter().any(|q| t.contains(q.as_str())))
                    })
                    .map(|(p, _)| p)
                    .take(1),
            );
        }
        if files.is_empty() {
            return Err(format!("collection `{collection}` has no {} `{short}`", kind.name()));
        }
        // A module may come with an action plugin of its name, run on the controller.
        if kind == Kind::Module {
            let action = dir.join(&format!("plugins/action/{short}.py")).map_err(|e| e.to_string())?;
            if tree.get(&action).is_some() {
                files.push(action);
            }
        }
        Ok(Found::Collection { collection: collection.into(), plugin: format!("{typ}/{short}"), files })
    }

    /// The directory of collection `name` (`ns.coll`).
    pub fn collection(&self, name: &str) -> Option<ImagePath> {
        self.collections.get(name).map(|(dir, _)| *dir)
    }

    /// Every collection and its directory.
    pub fn collections(&self) -> impl Iterator<Item = (&String, &ImagePath)> {
        self.collections.iter().map(|(n, (d, _))| (n, d))
    }

    /// ansible-core's plugins of a type directory (`modules`, `action`, …).
    pub fn core_plugins(&self, typ: &str) -> &BTreeSet<String> {
        static EMPTY: BTreeSet<String> = BTreeSet::new();
        self.core.get(typ).unwrap_or(&EMPTY)
    }
}

/// `ns.coll.rest` → (`ns.coll`, `rest`); `None` for a short name.
pub fn fqcn(name: &str) -> Option<(&str, &str)> {
    let first = name.find('.')?;
    let second = first + 1 + name[first + 1..].find('.')?;
    Some((&name[..second], &name[second + 1..]))
}

/// The text of a file of the tree.
pub fn text(tree: &Tree, path: &ImagePath) -> Option<String> {
    match tree.get(path)?.kind {
        EntryKind::File { source, .. } => {
            source.read_all().ok().map(|b| String::from_utf8_lossy(&b).into_owned())
        }
        _ => None,
    }
}

/// The quoted keys of the Python dict literal that follows `opening` in `source`
/// (`FILTERS = {`, or `def filters(self):` then `return {`).
fn dict_keys(source: &str, opening: &str) -> BTreeSet<String> {
    let Some(at) = source.find(opening) else { return BTreeSet::new() };
    let rest = &source[at + opening.len()..];
    let Some(open) = rest.find('{') else { return BTreeSet::new() };
    let mut depth = 0;
    let mut end = rest.len();
    for (i, c) in rest[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    end = open + i;
                    break;
                }
            }
            _ => {}
        }
    }
    let body = &rest[open + 1..end];
    let mut keys = BTreeSet::new();
    for line in body.lines() {
        let line = line.trim_start();
        for q in ['\'', '"'] {
            if let Some(after) = line.strip_prefix(q) {
                if let Some((key, rest)) = after.split_once(q) {
                    if rest.trim_start().starts_with(':') {
                        keys.insert(key.to_string());
                    }
                }
            }
        }
    }
    keys
}

/// A `runtime.yml`'s `plugin_routing`.
fn routing(text: &str) -> Routing {
    let mut out = Routing::new();
    let Ok(docs) = YamlLoader::load_from_str(text) else { return out };
    let Some(Yaml::Hash(top)) = docs.first() else { return out };
    let Some(Yaml::Hash(routes)) = top.get(&Yaml::String("plugin_routing".into())) else { return out };
    for (typ, names) in routes {
        let (Some(typ), Yaml::Hash(names)) = (typ.as_str(), names) else { continue };
        let table = out.entry(typ.to_string()).or_default();
        for (name, how) in names {
            let (Some(name), Yaml::Hash(how)) = (name.as_str(), how) else { continue };
            let field = |k: &str| how.get(&Yaml::String(k.into()));
            if let Some(to) = field("redirect").and_then(Yaml::as_str) {
                table.insert(name.to_string(), Route::Redirect(to.to_string()));
            } else if let Some(Yaml::Hash(t)) = field("tombstone") {
                let why = t
                    .get(&Yaml::String("warning_text".into()))
                    .and_then(Yaml::as_str)
                    .unwrap_or("no longer there");
                table.insert(name.to_string(), Route::Tombstone(why.to_string()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_and_dicts_read() {
        assert_eq!(fqcn("community.general.nmcli"), Some(("community.general", "nmcli")));
        assert_eq!(fqcn("a.b.c.d"), Some(("a.b", "c.d")));
        assert_eq!(fqcn("nmcli"), None);
        let src = "class FilterModule:\n    def filters(self):\n        return {\n            'a': f,  # x\n            \"b\": g,\n            'nested': {'c': 1},\n        }\n";
        let keys: Vec<String> = dict_keys(src, "def filters(self):").into_iter().collect();
        assert_eq!(keys, ["a", "b", "nested"]);
        let r = routing("plugin_routing:\n  modules:\n    timezone:\n      redirect: community.general.timezone\n    old:\n      tombstone:\n        warning_text: gone\n");
        assert!(matches!(&r["modules"]["timezone"], Route::Redirect(t) if t == "community.general.timezone"));
        assert!(matches!(&r["modules"]["old"], Route::Tombstone(t) if t == "gone"));
    }
}
