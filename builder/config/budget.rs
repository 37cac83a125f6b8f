//! `size-budget.toml`: limits on outputs, elements and paths, checked into [`Budget`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::image::{Named, OutputKind};
use super::size::parse_size;
use super::source::{Diagnostic, Diagnostics, TomlFile};

/// The built-in default budget (the repository's top-level `size-budget.toml`).
pub const BUILT_IN: &str = include_str!("../../size-budget.toml");

#[derive(Deserialize, Default)]
struct RawFile {
    #[serde(default)]
    output: BTreeMap<String, RawOutput>,
    #[serde(default)]
    element: BTreeMap<String, RawMax>,
    #[serde(default)]
    path: BTreeMap<String, RawMax>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawOutput {
    max: Option<RawSize>,
    max_unpacked: Option<RawSize>,
}

#[derive(Deserialize)]
struct RawMax {
    max: RawSize,
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum RawSize {
    Bytes(u64),
    Text(String),
}

/// What a limit applies to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "kebab-case")]
pub enum Subject {
    /// The output's file size (compressed, for an initramfs).
    Output(OutputKind),
    /// The apparent bytes of the tree an output packs.
    Unpacked(OutputKind),
    /// Apparent bytes an element contributed.
    Element(String),
    /// Apparent bytes under a path prefix of the image.
    Path(String),
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::Output(k) => write!(f, "output {}", k.name()),
            Subject::Unpacked(k) => write!(f, "output {} unpacked", k.name()),
            Subject::Element(e) => write!(f, "element {e}"),
            Subject::Path(p) => write!(f, "path /{p}"),
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Limit {
    pub subject: Subject,
    pub max: u64,
}

/// A checked budget and where it came from.
#[derive(Debug, Clone)]
pub struct Budget {
    /// The file, or `None` for the built-in default.
    pub source: Option<PathBuf>,
    pub limits: Vec<Limit>,
}

impl Budget {
    pub fn source_name(&self) -> String {
        self.source.as_ref().map_or("built-in size-budget.toml".into(), |p| p.display().to_string())
    }
}

pub fn load(path: &Path) -> anyhow::Result<Budget> {
    let file = TomlFile::read(path)?;
    let mut budget = check(&file)?;
    budget.source = Some(path.to_path_buf());
    Ok(budget)
}

pub fn built_in() -> Budget {
    let file = TomlFile::from_text(Path::new("size-budget.toml"), BUILT_IN.into());
    let mut budget = check(&file).expect("the built-in size-budget.toml is valid");
    budget.source = None;
    budget
}

pub fn check(file: &TomlFile) -> Result<Budget, Diagnostics> {
    let raw: RawFile = file.parse()?;
    let mut errs: Vec<Diagnostic> = Vec::new();
    let mut limits = Vec::new();
    let size = |keys: &[&str], v: &RawSize, errs: &mut Vec<Diagnostic>| match v {
        RawSize::Bytes(n) => Some(*n),
        RawSize::Text(t) => {
            parse_size(t).map_err(|m| errs.push(file.error_at(keys, m.to_string(), None))).ok()
        }
    };
    for (name, o) in &raw.output {
        let Some(kind) = OutputKind::from_name(name) else {
            errs.push(file.error_at(
                &["output", name],
                format!("unknown output `{name}` in [output.{name}]"),
                Some(format!("outputs are {}", OutputKind::listed())),
            ));
            continue;
        };
        if let Some(max) = o.max.as_ref().and_then(|v| size(&["output", name, "max"], v, &mut errs)) {
            limits.push(Limit { subject: Subject::Output(kind), max });
        }
        if let Some(v) = &o.max_unpacked {
            if let Some(max) = size(&["output", name, "max-unpacked"], v, &mut errs) {
                limits.push(Limit { subject: Subject::Unpacked(kind), max });
            }
        }
    }
    for (name, e) in &raw.element {
        if let Some(max) = size(&["element", name, "max"], &e.max, &mut errs) {
            limits.push(Limit { subject: Subject::Element(name.clone()), max });
        }
    }
    for (prefix, p) in &raw.path {
        let clean = prefix.trim_matches('/').to_string();
        if clean.split('/').any(|c| c == "..") {
            errs.push(file.error_at(
                &["path", prefix],
                format!("path `{prefix}` escapes the image root"),
                None,
            ));
            continue;
        }
        if let Some(max) = size(&["path", prefix, "max"], &p.max, &mut errs) {
            limits.push(Limit { subject: Subject::Path(clean), max });
        }
    }
    if errs.is_empty() {
        Ok(Budget { source: Some(file.path.clone()), limits })
    } else {
        Err(Diagnostics(errs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_documents_every_budget_key() {
        use crate::config::doc_keys::{assert_documented, keys, BUDGET};
        let all = [keys::<RawFile>(), keys::<RawOutput>(), keys::<RawMax>()];
        assert_documented(BUDGET, "# size-budget.toml", &all);
    }

    #[test]
    fn built_in_parses() {
        assert!(!built_in().limits.is_empty());
    }

    #[test]
    fn bad_sizes_are_located() {
        let f = TomlFile::from_text(
            Path::new("b.toml"),
            "[output.initramfs]\nmax = \"48 MB\"\nmax-unpacked = \"big\"\n[output.floppy]\nmax = 1\n".into(),
        );
        let e = check(&f).unwrap_err().0;
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].at, Some((4, 1)));
        assert!(e[1].message.contains("`big`"), "{}", e[1].message);
        assert_eq!(e[1].at, Some((3, 16)));
    }
}
