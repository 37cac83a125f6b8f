//! Resolution: from the names an image asks for to every element it needs, in one
//! deterministic order (each element after what it depends on; otherwise in the order
//! the image and the manifests list them).

use std::collections::{BTreeMap, VecDeque};

use anyhow::bail;

use super::library::Library;
use super::Element;
use crate::config::source::suggest;

/// Who asked for an element: the image itself, or another element's `depends`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "by", content = "name")]
pub enum Wanter {
    Image,
    Element(String),
}

impl std::fmt::Display for Wanter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Wanter::Image => write!(f, "the image"),
            Wanter::Element(e) => write!(f, "element `{e}`"),
        }
    }
}

#[derive(Debug)]
pub struct Resolved {
    /// In build order.
    pub elements: Vec<Element>,
    /// For each element (same index), who pulled it in, and under which name.
    pub wanted_by: Vec<Vec<(Wanter, String)>>,
}

impl Resolved {
    pub fn names(&self) -> Vec<&str> {
        self.elements.iter().map(|e| e.name.as_str()).collect()
    }

    pub fn get(&self, name: &str) -> Option<&Element> {
        self.elements.iter().find(|e| e.name == name)
    }
}

pub fn resolve(lib: &Library, requested: &[String]) -> anyhow::Result<Resolved> {
    let mut loaded: BTreeMap<String, Element> = BTreeMap::new();
    let mut discovery: Vec<String> = Vec::new();
    let mut wanted: BTreeMap<String, Vec<(Wanter, String)>> = BTreeMap::new();
    let mut pending: VecDeque<(String, Wanter)> =
        requested.iter().map(|n| (n.clone(), Wanter::Image)).collect();
    let mut missing: Vec<(String, Wanter)> = Vec::new();

    while let Some((name, by)) = pending.pop_front() {
        if let Some(provider) = provider_of(&loaded, &name) {
            wanted.entry(provider).or_default().push((by, name));
            continue;
        }
        match lib.load(&name)? {
            Some(element) => {
                for dep in &element.manifest.depends {
                    pending.push_back((dep.clone(), Wanter::Element(name.clone())));
                }
                wanted.entry(name.clone()).or_default().push((by, name.clone()));
                discovery.push(name.clone());
                loaded.insert(name, element);
            }
            None => missing.push((name, by)),
        }
    }

    let mut errors = Vec::new();
    for (name, by) in missing {
        if let Some(provider) = provider_of(&loaded, &name) {
            wanted.entry(provider).or_default().push((by, name));
            continue;
        }
        let known = lib.names();
        let hint = match suggest(&name, known.iter().map(|(n, _)| n.as_str())) {
            Some(s) => format!("did you mean `{s}`? "),
            None => String::new(),
        };
        errors.push(format!(
            "element `{name}` not found (wanted by {by}); {hint}searched: {}; \
             `smelt elements list` shows what is there",
            lib.describe()
        ));
    }
    errors.extend(check_provides_and_conflicts(&loaded, &discovery, &wanted));
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }

    let order = topological(&loaded, &discovery)?;
    let wanted_by = order.iter().map(|n| wanted.remove(n).unwrap_or_default()).collect();
    let elements = order.into_iter().map(|n| loaded.remove(&n).expect("loaded")).collect();
    Ok(Resolved { elements, wanted_by })
}

/// The loaded element that is, or provides, `name`.
fn provider_of(loaded: &BTreeMap<String, Element>, name: &str) -> Option<String> {
    if loaded.contains_key(name) {
        return Some(name.to_string());
    }
    loaded.values().find(|e| e.manifest.provides.iter().any(|p| p == name)).map(|e| e.name.clone())
}

fn check_provides_and_conflicts(
    loaded: &BTreeMap<String, Element>,
    discovery: &[String],
    wanted: &BTreeMap<String, Vec<(Wanter, String)>>,
) -> Vec<String> {
    let mut errors = Vec::new();
    let mut providers: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for name in discovery {
        for p in &loaded[name].manifest.provides {
            providers.entry(p).or_default().push(name);
        }
    }
    for (virt, by) in &providers {
        if by.len() > 1 {
            errors.push(format!(
                "`{virt}` is provided by both `{}` and `{}`: keep only one of them in the image",
                by[0], by[1]
            ));
        }
    }
    let why = |n: &str| {
        wanted.get(n).and_then(|w| w.first()).map_or(String::new(), |(by, _)| format!(" (wanted by {by})"))
    };
    for name in discovery {
        for c in &loaded[name].manifest.conflicts {
            if let Some(other) = provider_of(loaded, c).filter(|o| o != name) {
                errors.push(format!(
                    "element `{name}`{} conflicts with `{other}`{}: remove one of them from the image",
                    why(name),
                    why(&other)
                ));
            }
        }
    }
    errors
}

/// Depth-first, in discovery order: each element after its dependencies. A cycle is
/// reported as its chain, `a => b => a`.
fn topological(loaded: &BTreeMap<String, Element>, discovery: &[String]) -> anyhow::Result<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Visiting,
        Done,
    }
    fn visit(
        name: &str,
        loaded: &BTreeMap<String, Element>,
        marks: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
        out: &mut Vec<String>,
    ) -> anyhow::Result<()> {
        match marks[name] {
            Mark::Done => return Ok(()),
            Mark::Visiting => {
                let start = stack.iter().position(|s| s == name).unwrap_or(0);
                let mut chain: Vec<&str> = stack[start..].iter().map(String::as_str).collect();
                chain.push(name);
                bail!(
                    "dependency cycle: {}; break it by removing one of these `depends`",
                    chain.join(" => ")
                );
            }
            Mark::New => {}
        }
        marks.insert(name.into(), Mark::Visiting);
        stack.push(name.into());
        for dep in &loaded[name].manifest.depends {
            let target = provider_of(loaded, dep).expect("resolved above");
            visit(&target, loaded, marks, stack, out)?;
        }
        stack.pop();
        marks.insert(name.into(), Mark::Done);
        out.push(name.into());
        Ok(())
    }
    let mut marks: BTreeMap<String, Mark> = loaded.keys().map(|k| (k.clone(), Mark::New)).collect();
    let mut out = Vec::new();
    for name in discovery {
        visit(name, loaded, &mut marks, &mut Vec::new(), &mut out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn lib_with(elements: &[(&str, &str)]) -> (tempfile::TempDir, Library) {
        let tmp = tempfile::tempdir().unwrap();
        for (name, toml) in elements {
            fs::create_dir(tmp.path().join(name)).unwrap();
            fs::write(tmp.path().join(name).join("element.toml"), toml).unwrap();
        }
        let lib = Library::new(&[tmp.path().to_path_buf()], None);
        (tmp, lib)
    }

    #[test]
    fn dependencies_come_first() {
        let (_t, lib) = lib_with(&[("a", "depends = [\"b\", \"c\"]"), ("b", "depends = [\"c\"]"), ("c", "")]);
        let r = resolve(&lib, &["a".into()]).unwrap();
        assert_eq!(r.names(), vec!["c", "b", "a"]);
        assert_eq!(r.wanted_by[0][0], (Wanter::Element("a".into()), "c".into()));
    }

    #[test]
    fn provides_satisfy_depends() {
        let (_t, lib) = lib_with(&[("app", "depends = [\"base\"]"), ("mybase", "provides = [\"base\"]")]);
        let r = resolve(&lib, &["mybase".into(), "app".into()]).unwrap();
        assert_eq!(r.names(), vec!["mybase", "app"]);
    }

    #[test]
    fn cycle_prints_its_chain() {
        let (_t, lib) = lib_with(&[("a", "depends = [\"b\"]"), ("b", "depends = [\"a\"]")]);
        let e = resolve(&lib, &["a".into()]).unwrap_err().to_string();
        assert!(e.starts_with("dependency cycle: a => b => a"), "{e}");
    }

    #[test]
    fn conflicts_name_both() {
        let (_t, lib) = lib_with(&[("a", "conflicts = [\"b\"]"), ("b", "")]);
        let e = resolve(&lib, &["a".into(), "b".into()]).unwrap_err().to_string();
        assert!(e.contains("element `a` (wanted by the image) conflicts with `b`"), "{e}");
    }
}
