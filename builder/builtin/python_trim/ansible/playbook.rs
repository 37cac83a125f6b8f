//! What playbooks use, read from the staged tree as Ansible reads them: plays (and
//! `import_playbook`), their task lists (blocks, handlers, `include_tasks` and
//! `import_tasks` files), roles (the play's `roles`, `include_role`/`import_role`, a
//! role's `meta/main.yml` dependencies; roles of the playbook's directory or of a
//! collection), the `collections` keyword of plays and roles, every module or action a
//! task names, the lookups of `with_*` loops, and the filters, tests and lookups of
//! every Jinja expression — in the playbooks, their `vars`, conditionals and the
//! templates beside them (`templates/`). `ansible.cfg` beside a playbook adds the
//! callbacks it enables.

use std::collections::BTreeSet;

use yaml_rust2::{Yaml, YamlLoader};

use super::jinja;
use crate::path::ImagePath;
use crate::tree::{Kind as EntryKind, Tree};

/// The kinds of plugin a playbook names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A module or action plugin (a task's action).
    Module,
    Filter,
    Test,
    Lookup,
    Callback,
    Role,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Module => "module",
            Kind::Filter => "filter",
            Kind::Test => "test",
            Kind::Lookup => "lookup",
            Kind::Callback => "callback",
            Kind::Role => "role",
        }
    }
}

/// One name a playbook uses: what kind of plugin, the name as written, the
/// collections searched for a short name (the `collections` keyword, and a
/// collection's own role's collection first), and the file that names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Use {
    pub kind: Kind,
    pub name: String,
    pub search: Vec<String>,
    pub file: ImagePath,
}

/// Task keywords: every other key of a task is its action.
const TASK_KEYWORDS: &[&str] = &[
    "name",
    "action",
    "args",
    "async",
    "changed_when",
    "delay",
    "delegate_facts",
    "delegate_to",
    "failed_when",
    "local_action",
    "loop",
    "loop_control",
    "notify",
    "poll",
    "register",
    "retries",
    "until",
    "when",
    "become",
    "become_exe",
    "become_flags",
    "become_method",
    "become_user",
    "check_mode",
    "collections",
    "connection",
    "debugger",
    "diff",
    "environment",
    "ignore_errors",
    "ignore_unreachable",
    "module_defaults",
    "no_log",
    "port",
    "remote_user",
    "run_once",
    "tags",
    "throttle",
    "timeout",
    "vars",
    "any_errors_fatal",
    "listen",
];

/// Keys whose value is a bare Jinja expression (no braces).
const CONDITIONALS: &[&str] = &["when", "changed_when", "failed_when", "until"];

/// The task-list keys of a play.
const PLAY_TASKS: &[&str] = &["pre_tasks", "tasks", "post_tasks", "handlers"];

/// Actions that include task files or roles, by their short names.
const INCLUDE_TASKS: &[&str] = &["include_tasks", "import_tasks", "include"];
const INCLUDE_ROLE: &[&str] = &["include_role", "import_role"];

/// Where the playbooks' names are collected, with the problems found on the way.
pub struct Reader<'t> {
    tree: &'t Tree,
    /// The venv's site-packages, where collection roles are.
    site: ImagePath,
    pub uses: BTreeSet<Use>,
    pub errors: Vec<String>,
    read: BTreeSet<ImagePath>,
}

/// Where a task list is: its file, the directory its includes are relative to, and
/// the collections its short names search.
#[derive(Clone)]
struct Place {
    file: ImagePath,
    dir: ImagePath,
    search: Vec<String>,
}

impl<'t> Reader<'t> {
    pub fn new(tree: &'t Tree, site: ImagePath) -> Reader<'t> {
        Reader { tree, site, uses: BTreeSet::new(), errors: Vec::new(), read: BTreeSet::new() }
    }

    /// Reads the playbook at `path` and what it includes.
    pub fn playbook(&mut self, path: &ImagePath) {
        let Some(docs) = self.load(path) else { return };
        let dir = path.parent().unwrap_or_else(ImagePath::root);
        self.config(&dir);
        self.templates(&dir, &[]);
        for doc in docs {
            let Yaml::Array(plays) = doc else {
                self.errors.push(format!("{path}: a playbook is a list of plays"));
                continue;
            };
            for play in plays {
                let Yaml::Hash(map) = &play else { continue };
                if let Some(imported) = value_of(map, &["import_playbook", "ansible.builtin.import_playbook"])
                {
                    match imported.as_str().and_then(|f| dir.join(f).ok()) {
                        Some(file) => self.playbook(&file),
                        None => self.errors.push(format!("{path}: import_playbook names no file")),
                    }
                    continue;
                }
                self.play(map, path, &dir);
            }
        }
    }

    fn play(&mut self, map: &yaml_rust2::yaml::Hash, file: &ImagePath, dir: &ImagePath) {
        let search = strings(get(map, "collections"));
        let place = Place { file: *file, dir: *dir, search };
        // Facts are gathered unless the play says not to: the setup module does it.
        if get(map, "gather_facts").and_then(Yaml::as_bool) != Some(false) {
            self.add(Kind::Module, "ansible.builtin.gather_facts", &place);
            self.add(Kind::Module, "ansible.builtin.setup", &place);
        }
        for key in PLAY_TASKS {
            if let Some(Yaml::Array(tasks)) = get(map, key) {
                self.tasks(tasks, &place);
            }
        }
        for role in get(map, "roles").and_then(Yaml::as_vec).into_iter().flatten() {
            if let Some(name) = role_name(role) {
                self.role(&name, &place);
            }
        }
        for key in ["vars", "environment"] {
            if let Some(v) = get(map, key) {
                self.expressions(v, &place);
            }
        }
    }

    fn tasks(&mut self, tasks: &[Yaml], place: &Place) {
        for task in tasks {
            let Yaml::Hash(map) = task else { continue };
            let mut blocks = false;
            for key in ["block", "rescue", "always"] {
                if let Some(Yaml::Array(inner)) = get(map, key) {
                    self.tasks(inner, place);
                    blocks = true;
                }
            }
            for (k, v) in map {
                let Some(key) = k.as_str() else { continue };
                if let Some(lookup) = key.strip_prefix("with_") {
                    self.add(Kind::Lookup, lookup, place);
                }
                if CONDITIONALS.contains(&key) {
                    for expr in strings_in(v) {
                        self.scan(&format!("{{{{ {expr} }}}}"), place);
                    }
                }
            }
            self.expressions(task, place);
            if blocks {
                continue;
            }
            let Some((action, args)) = action_of(map) else {
                let name = get(map, "name").and_then(Yaml::as_str).unwrap_or("(unnamed)");
                self.errors.push(format!("{}: task `{name}` names no module or action", place.file));
                continue;
            };
            let short = action.rsplit('.').next().unwrap_or(&action);
            let core = !action.contains('.')
                || action.starts_with("ansible.builtin.")
                || action.starts_with("ansible.legacy.");
            if core && INCLUDE_TASKS.contains(&short) {
                self.include_tasks(args, place);
            } else if core && INCLUDE_ROLE.contains(&short) {
                let name = match args {
                    Some(Yaml::Hash(a)) => get(a, "name").and_then(Yaml::as_str).map(String::from),
                    Some(Yaml::String(s)) => key_value(s, "name"),
                    _ => None,
                };
                match name {
                    Some(n) if !n.contains("{{") => self.role(&n, place),
                    _ => self.errors.push(format!("{}: {action} names no role", place.file)),
                }
            }
            self.add(Kind::Module, &action, place);
        }
    }

    /// `include_tasks: FILE` or `{ file: FILE }`, relative to the including file's
    /// directory.
    fn include_tasks(&mut self, args: Option<&Yaml>, place: &Place) {
        let file = match args {
            Some(Yaml::String(s)) => Some(s.split_whitespace().next().unwrap_or("").to_string()),
            Some(Yaml::Hash(a)) => get(a, "file").and_then(Yaml::as_str).map(String::from),
            _ => None,
        };
        let Some(file) = file.filter(|f| !f.is_empty() && !f.contains("{{")) else {
            crate::ui::warning(&format!(
                "{}: a task file included by a template or by nothing: python-trim cannot see what it uses",
                place.file
            ));
            return;
        };
        let Ok(path) = place.dir.join(&file) else { return };
        let Some(docs) = self.load(&path) else { return };
        let inner = Place { file: path, ..place.clone() };
        for doc in docs {
            if let Yaml::Array(tasks) = doc {
                self.tasks(&tasks, &inner);
            }
        }
    }

    /// A role: the playbook's (`roles/NAME` beside it) or a collection's
    /// (`NS.COLL.NAME`), its tasks, handlers, dependencies and templates.
    fn role(&mut self, name: &str, place: &Place) {
        self.add(Kind::Role, name, place);
        let (dir, mut search) = match name.split('.').collect::<Vec<_>>()[..] {
            [ns, coll, role] => {
                let collection = format!("{ns}.{coll}");
                let Ok(dir) = self.site.join(&format!("ansible_collections/{ns}/{coll}/roles/{role}")) else {
                    return;
                };
                (dir, vec![collection])
            }
            _ => {
                let Ok(dir) = place.dir.join(&format!("roles/{name}")) else { return };
                (dir, Vec::new())
            }
        };
        if !self.read.insert(dir) {
            return;
        }
        if self.tree.below(&dir).next().is_none() {
            self.errors.push(format!("{}: role `{name}` is not in the image (at {dir})", place.file));
            return;
        }
        let meta = self.role_file(&dir, "meta");
        if let Some(Yaml::Hash(m)) = meta.as_ref().and_then(|(_, d)| d.first()) {
            search.extend(strings(get(m, "collections")));
        }
        search.extend(place.search.iter().cloned());
        let inner =
            |file: ImagePath| Place { file, dir: file.parent().unwrap_or(dir), search: search.clone() };
        for sub in ["tasks", "handlers"] {
            if let Some((file, docs)) = self.role_file(&dir, sub) {
                for doc in docs {
                    if let Yaml::Array(tasks) = doc {
                        self.tasks(&tasks, &inner(file));
                    }
                }
            }
        }
        if let Some((file, docs)) = meta {
            if let Some(Yaml::Hash(m)) = docs.first() {
                for dep in get(m, "dependencies").and_then(Yaml::as_vec).into_iter().flatten() {
                    if let Some(dep) = role_name(dep) {
                        self.role(&dep, &Place { file, dir: place.dir, search: search.clone() });
                    }
                }
            }
        }
        for sub in ["defaults", "vars"] {
            if let Some((file, docs)) = self.role_file(&dir, sub) {
                for doc in &docs {
                    self.expressions(doc, &inner(file));
                }
            }
        }
        self.templates(&dir, &search);
    }

    /// A role's `SUB/main.yml` (or `.yaml`, or no suffix), read.
    fn role_file(&mut self, dir: &ImagePath, sub: &str) -> Option<(ImagePath, Vec<Yaml>)> {
        for name in ["main.yml", "main.yaml", "main"] {
            let path = dir.join(&format!("{sub}/{name}")).ok()?;
            if self.exists(&path) {
                return self.load(&path).map(|docs| (path, docs));
            }
        }
        None
    }

    /// Every `templates/` file below `dir`: its filters, tests and lookups.
    fn templates(&mut self, dir: &ImagePath, search: &[String]) {
        let Ok(templates) = dir.join("templates") else { return };
        let files: Vec<ImagePath> = self
            .tree
            .below(&templates)
            .filter(|(_, e)| matches!(e.kind, EntryKind::File { .. }))
            .map(|(p, _)| p)
            .collect();
        for file in files {
            if let Some(text) = self.text(&file) {
                let place = Place { file, dir: *dir, search: search.to_vec() };
                self.scan(&text, &place);
            }
        }
    }

    /// `ansible.cfg` beside a playbook: the callbacks it enables.
    fn config(&mut self, dir: &ImagePath) {
        let Ok(path) = dir.join("ansible.cfg") else { return };
        let Some(text) = self.text(&path) else { return };
        let place = Place { file: path, dir: *dir, search: Vec::new() };
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else { continue };
            if matches!(key.trim(), "stdout_callback" | "callbacks_enabled" | "callback_whitelist") {
                for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    self.add(Kind::Callback, name, &place);
                }
            }
        }
    }

    /// The filters, tests and lookups of every string below `value`.
    fn expressions(&mut self, value: &Yaml, place: &Place) {
        for text in strings_in(value) {
            if text.contains("{{") || text.contains("{%") {
                self.scan(&text, place);
            }
        }
    }

    fn scan(&mut self, template: &str, place: &Place) {
        let found = jinja::names(template);
        for (kind, names) in
            [(Kind::Filter, found.filters), (Kind::Test, found.tests), (Kind::Lookup, found.lookups)]
        {
            for name in names {
                self.add(kind, &name, place);
            }
        }
    }

    fn add(&mut self, kind: Kind, name: &str, place: &Place) {
        self.uses.insert(Use {
            kind,
            name: name.to_string(),
            search: place.search.clone(),
            file: place.file,
        });
    }

    fn exists(&self, path: &ImagePath) -> bool {
        self.tree.resolve_parents(path).ok().and_then(|p| self.tree.get(&p)).is_some()
    }

    fn text(&self, path: &ImagePath) -> Option<String> {
        let at = self.tree.resolve_parents(path).ok()?;
        match self.tree.get(&at)?.kind {
            EntryKind::File { source, .. } => {
                source.read_all().ok().map(|b| String::from_utf8_lossy(&b).into_owned())
            }
            _ => None,
        }
    }

    /// The YAML documents of `path`; a missing or broken file is an error.
    fn load(&mut self, path: &ImagePath) -> Option<Vec<Yaml>> {
        let Some(text) = self.text(path) else {
            self.errors.push(format!("{path}: not in the image"));
            return None;
        };
        match YamlLoader::load_from_str(&text) {
            Ok(docs) => Some(docs),
            Err(e) => {
                self.errors.push(format!("{path}: {e}"));
                None
            }
        }
    }
}

/// The value of the first of `keys` the mapping has.
fn value_of<'y>(map: &'y yaml_rust2::yaml::Hash, keys: &[&str]) -> Option<&'y Yaml> {
    keys.iter().find_map(|k| get(map, k))
}

fn get<'y>(map: &'y yaml_rust2::yaml::Hash, key: &str) -> Option<&'y Yaml> {
    map.get(&Yaml::String(key.to_string()))
}

/// A list of strings, or one string.
fn strings(value: Option<&Yaml>) -> Vec<String> {
    match value {
        Some(Yaml::Array(list)) => list.iter().filter_map(|v| v.as_str().map(String::from)).collect(),
        Some(Yaml::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// Every string below `value`: mapping keys and values, list items.
fn strings_in(value: &Yaml) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Yaml::String(s) => out.push(s.clone()),
            Yaml::Array(list) => stack.extend(list),
            Yaml::Hash(map) => {
                for (k, v) in map {
                    stack.push(k);
                    stack.push(v);
                }
            }
            _ => {}
        }
    }
    out
}

/// A role as a play or a role's dependencies name it: a string, or a mapping with
/// `role` or `name`.
fn role_name(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Hash(m) => value_of(m, &["role", "name"]).and_then(Yaml::as_str).map(String::from),
        _ => None,
    }
}

/// A task's action and its arguments: `action:`/`local_action:` (`module args`), or the
/// one key that is no task keyword.
fn action_of(map: &yaml_rust2::yaml::Hash) -> Option<(String, Option<&Yaml>)> {
    if let Some(v) = value_of(map, &["action", "local_action"]) {
        return match v {
            Yaml::String(s) => {
                let module = s.split_whitespace().next()?.to_string();
                Some((module, Some(v)))
            }
            Yaml::Hash(m) => get(m, "module").and_then(Yaml::as_str).map(|m| (m.to_string(), Some(v))),
            _ => None,
        };
    }
    map.iter().find_map(|(k, v)| {
        let key = k.as_str()?;
        (!TASK_KEYWORDS.contains(&key)
            && !key.starts_with("with_")
            && !["block", "rescue", "always"].contains(&key))
        .then(|| (key.to_string(), Some(v)))
    })
}

/// `name=VALUE` in a `key=value` argument string.
fn key_value(args: &str, key: &str) -> Option<String> {
    args.split_whitespace().find_map(|w| w.strip_prefix(&format!("{key}=")).map(String::from))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::Entry;

    fn tree(files: &[(&str, &str)]) -> Tree {
        let mut t = Tree::default();
        for (p, text) in files {
            t.insert(&ImagePath::new(p).unwrap(), Entry::bytes(text.as_bytes().to_vec(), 0o644, 0, "e"))
                .unwrap();
        }
        t
    }

    fn names(reader: &Reader, kind: Kind) -> Vec<String> {
        reader.uses.iter().filter(|u| u.kind == kind).map(|u| u.name.clone()).collect()
    }

    #[test]
    fn plays_tasks_includes_roles_and_expressions() {
        let t = tree(&[
            (
                "site.yml",
                "- hosts: all\n  gather_facts: false\n  collections: [community.general]\n  roles: [web]\n  tasks:\n\
                 \x20   - name: a\n      nmcli: { conn_name: x }\n      when: x is ansible.builtin.truthy\n\
                 \x20   - block:\n        - ansible.posix.sysctl: name=a value=1\n\
                 \x20     rescue:\n        - debug: msg=\"{{ y | community.general.json_query('a') }}\"\n\
                 \x20   - include_tasks: more.yml\n\
                 \x20   - debug: msg=x\n      with_items: [1]\n- import_playbook: other.yml\n",
            ),
            ("more.yml", "- command: ls\n  register: r\n- include_role:\n    name: ns.coll.role\n"),
            ("other.yml", "- hosts: all\n  tasks:\n    - action: timezone name=UTC\n"),
            ("roles/web/tasks/main.yml", "- template: src=a.j2 dest=/b\n"),
            ("roles/web/templates/a.j2", "{{ lookup('ansible.builtin.env', 'HOME') | lower }}"),
        ]);
        let mut r = Reader::new(&t, ImagePath::new("v/lib/python3.11/site-packages").unwrap());
        r.playbook(&ImagePath::new("site.yml").unwrap());
        assert_eq!(
            names(&r, Kind::Module),
            [
                "ansible.builtin.gather_facts",
                "ansible.builtin.setup",
                "ansible.posix.sysctl",
                "command",
                "debug",
                "include_role",
                "include_tasks",
                "nmcli",
                "template",
                "timezone"
            ]
        );
        assert_eq!(names(&r, Kind::Role), ["ns.coll.role", "web"]);
        assert_eq!(names(&r, Kind::Filter), ["community.general.json_query", "lower"]);
        assert_eq!(names(&r, Kind::Test), ["ansible.builtin.truthy"]);
        assert_eq!(names(&r, Kind::Lookup), ["ansible.builtin.env", "items"]);
        let nmcli = r.uses.iter().find(|u| u.name == "nmcli").unwrap();
        assert_eq!(nmcli.search, ["community.general"]);
        // The collection role is not in this tree: an error naming it.
        assert!(r.errors.iter().any(|e| e.contains("ns/coll/roles/role")), "{:?}", r.errors);
    }
}
