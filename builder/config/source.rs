//! A TOML source file and the diagnostics that point into it (`--> file:line:col`).

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::de::DeserializeOwned;

/// One problem in an input file, located to its line and column.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based line and column; `None` when the problem has no place in the text.
    pub at: Option<(usize, usize)>,
    /// The offending line's text, shown under the location.
    pub line_text: String,
    pub message: String,
    pub help: Option<String>,
    /// A warning: worth saying, but nothing stops on it.
    pub warning: bool,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: {}", if self.warning { "warning" } else { "error" }, self.message)?;
        match self.at {
            Some((line, col)) => {
                writeln!(f, "  --> {}:{line}:{col}", self.file.display())?;
                let gutter = line.to_string().len();
                writeln!(f, "{:gutter$} |", "")?;
                writeln!(f, "{line} | {}", self.line_text)?;
                write!(f, "{:gutter$} | {:>col$}", "", "^")?;
            }
            None => write!(f, "  --> {}", self.file.display())?,
        }
        if let Some(help) = &self.help {
            write!(f, "\n  = help: {help}")?;
        }
        Ok(())
    }
}

impl Diagnostic {
    /// `file:line:col: message`, for a warning on one line.
    pub fn one_line(&self) -> String {
        let at = self.at.map_or(String::new(), |(line, col)| format!(":{line}:{col}"));
        format!("{}{at}: {}", self.file.display(), self.message)
    }
}

/// Every problem found in one or more input files; rendered all at once.
#[derive(Debug)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            writeln!(f, "{d}")?;
        }
        let n = self.0.len();
        write!(f, "{n} error{} in input", if n == 1 { "" } else { "s" })
    }
}

impl std::error::Error for Diagnostics {}

/// A parsed TOML file that keeps its text and spans so later checks can point into it.
pub struct TomlFile {
    pub path: PathBuf,
    text: String,
    doc: Option<toml_edit::Document<String>>,
}

impl TomlFile {
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(Self::from_text(path, text))
    }

    pub fn from_text(path: &Path, text: String) -> Self {
        let doc = toml_edit::Document::parse(text.clone()).ok();
        TomlFile { path: path.to_path_buf(), text, doc }
    }

    /// Deserializes the whole file. Syntax and type errors stop at the first one (TOML
    /// offers no recovery), but every unknown key is reported, each at its own place.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, Diagnostics> {
        let de = toml_edit::de::Deserializer::parse(self.text.as_str())
            .map_err(|e| Diagnostics(vec![self.de_error(&e)]))?;
        let mut unknown = Vec::new();
        let parsed: Result<T, _> = serde_ignored::deserialize(de, |path| unknown.push(path.to_string()));
        let mut diags: Vec<Diagnostic> = unknown.iter().map(|key_path| self.unknown_key(key_path)).collect();
        match parsed {
            Ok(value) if diags.is_empty() => Ok(value),
            Ok(_) => Err(Diagnostics(diags)),
            Err(e) => {
                diags.push(self.de_error(&e));
                Err(Diagnostics(diags))
            }
        }
    }

    fn unknown_key(&self, dotted: &str) -> Diagnostic {
        let keys: Vec<&str> = dotted.split('.').collect();
        let (table, key) = keys.split_at(keys.len() - 1);
        let place = if table.is_empty() {
            "at the top level".to_string()
        } else {
            format!("in [{}]", table.join("."))
        };
        self.diagnostic(
            self.key_span(&keys),
            format!("unknown key `{}` {place}", key[0]),
            Some("remove it or check its spelling; the reference in docs/ lists every key".into()),
        )
    }

    fn de_error(&self, e: &toml_edit::de::Error) -> Diagnostic {
        let message = e.message().trim().replace('\n', " ");
        self.diagnostic(e.span(), message, None)
    }

    /// A diagnostic at the value (or table) named by a key path such as
    /// `["image", "compression"]`; array items are addressed by their index.
    pub fn error_at(&self, keys: &[&str], message: impl Into<String>, help: Option<String>) -> Diagnostic {
        let span = self.value_span(keys).or_else(|| self.key_span(keys));
        self.diagnostic(span, message.into(), help)
    }

    pub fn diagnostic(
        &self,
        span: Option<Range<usize>>,
        message: String,
        help: Option<String>,
    ) -> Diagnostic {
        let at = span.map(|s| line_col(&self.text, s.start));
        let line_text =
            at.map(|(line, _)| self.text.lines().nth(line - 1).unwrap_or("").to_string()).unwrap_or_default();
        Diagnostic { file: self.path.clone(), at, line_text, message, help, warning: false }
    }

    /// A warning at the value (or key) `keys` name.
    pub fn warning_at(&self, keys: &[&str], message: impl Into<String>, help: Option<String>) -> Diagnostic {
        Diagnostic { warning: true, ..self.error_at(keys, message, help) }
    }

    fn key_span(&self, keys: &[&str]) -> Option<Range<usize>> {
        let (last, parents) = keys.split_last()?;
        match self.walk(parents)? {
            Node::Table(t) => t.key(last)?.span(),
            Node::Value(toml_edit::Value::InlineTable(t)) => t.key(last)?.span(),
            Node::Item(toml_edit::Item::Table(t)) => t.key(last)?.span(),
            Node::Item(toml_edit::Item::Value(toml_edit::Value::InlineTable(t))) => t.key(last)?.span(),
            _ => None,
        }
    }

    fn value_span(&self, keys: &[&str]) -> Option<Range<usize>> {
        match self.walk(keys)? {
            Node::Item(i) => i.span(),
            Node::Table(t) => t.span(),
            Node::Value(v) => v.span(),
        }
    }

    fn walk(&self, keys: &[&str]) -> Option<Node<'_>> {
        let mut node = Node::Item(self.doc.as_ref()?.as_item());
        for key in keys {
            node = node.child(key)?;
        }
        Some(node)
    }
}

/// A borrowed place in the document: toml_edit splits tables, array items and inline
/// values into separate types.
#[derive(Clone, Copy)]
enum Node<'a> {
    Item(&'a toml_edit::Item),
    Table(&'a toml_edit::Table),
    Value(&'a toml_edit::Value),
}

impl<'a> Node<'a> {
    fn child(self, key: &str) -> Option<Node<'a>> {
        use toml_edit::{Item, Value};
        let index = key.parse::<usize>().ok();
        match (self, index) {
            (Node::Item(Item::ArrayOfTables(a)), Some(i)) => a.get(i).map(Node::Table),
            (Node::Item(Item::Value(Value::Array(a))), Some(i)) | (Node::Value(Value::Array(a)), Some(i)) => {
                a.get(i).map(Node::Value)
            }
            (Node::Item(item), _) => item.get(key).map(Node::Item),
            (Node::Table(t), _) => t.get(key).map(Node::Item),
            (Node::Value(Value::InlineTable(t)), _) => t.get(key).map(Node::Value),
            (Node::Value(_), _) => None,
        }
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The closest of `candidates` to `name`, if it is close enough to be a likely typo.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(name, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min()
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Doc {
        image: Img,
    }
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Img {
        name: String,
    }

    #[test]
    fn every_unknown_key_is_located() {
        let f =
            TomlFile::from_text(Path::new("x.toml"), "[image]\nname = \"a\"\ncolour = 1\nsize = 2\n".into());
        let errs = f.parse::<Doc>().unwrap_err().0;
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].at, Some((3, 1)));
        assert_eq!(errs[0].message, "unknown key `colour` in [image]");
        assert_eq!(errs[1].at, Some((4, 1)));
    }

    #[test]
    fn type_error_has_a_place() {
        let f = TomlFile::from_text(Path::new("x.toml"), "[image]\nname = 3\n".into());
        let errs = f.parse::<Doc>().unwrap_err().0;
        assert_eq!(errs[0].at, Some((2, 8)));
    }

    #[test]
    fn suggests_close_names() {
        assert_eq!(suggest("netwrok", ["network", "init"]), Some("network"));
        assert_eq!(suggest("zzz", ["network", "init"]), None);
    }
}
