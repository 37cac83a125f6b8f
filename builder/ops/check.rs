//! `smelt check FILE`: validates an image.toml, client.toml or size-budget.toml, told
//! apart by their top-level tables, and reports every problem at once.

use std::path::Path;

use crate::config::source::{suggest, Diagnostic, Diagnostics, TomlFile};
use crate::config::{budget, image};

/// Each kind of file smelt checks, by the top-level tables that mark it.
const KINDS: [(&str, &[&str]); 3] = [
    ("an image.toml ([image], [params.*])", &["image", "params"]),
    ("a client.toml ([client], [[nodes]])", &["client", "nodes"]),
    ("a size-budget.toml ([output.*], [element.*], [path.*])", &["output", "element", "path"]),
];

pub fn check(path: &Path) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    let tables: Vec<String> = match text.parse::<toml_edit::DocumentMut>() {
        Ok(doc) => doc.iter().map(|(k, _)| k.to_string()).collect(),
        // Not TOML at all: let the image checker report the syntax error with its place.
        Err(_) => vec!["image".into()],
    };
    let has = |name: &str| tables.iter().any(|t| t == name);
    let shown = path.display();
    let file = TomlFile::from_text(path, text);
    if has("image") {
        let img = image::check(&file)?;
        return Ok(format!("{shown}: ok (image `{}`, {} elements)\n", img.name, img.elements.len()));
    }
    if has("client") || has("nodes") {
        let client = crate::config::client::check(&file)?;
        for w in &client.warnings {
            eprintln!("{w}\n");
        }
        let warned = match client.warnings.len() {
            0 => String::new(),
            1 => ", 1 warning".into(),
            n => format!(", {n} warnings"),
        };
        return Ok(format!("{shown}: ok (client inventory, {} nodes{warned})\n", client.nodes.len()));
    }
    if has("output") || has("element") || has("path") {
        let b = budget::check(&file)?;
        return Ok(format!("{shown}: ok (size budget, {} limits)\n", b.limits.len()));
    }
    Err(unknown_tables(&file, &tables).into())
}

/// No table says what the file is: each one is named, with the table it most likely
/// meant and the kind of file that has it.
fn unknown_tables(file: &TomlFile, tables: &[String]) -> Diagnostics {
    let kinds = KINDS.map(|(kind, _)| kind).join(", ");
    let known = || KINDS.iter().flat_map(|(_, names)| names.iter().copied());
    let diags: Vec<Diagnostic> = tables
        .iter()
        .map(|t| {
            let help = match suggest(t, known()) {
                Some(s) => {
                    let (kind, _) = KINDS.iter().find(|(_, names)| names.contains(&s)).expect("known");
                    format!("did you mean [{s}], as in {kind}?")
                }
                None => format!("smelt checks {kinds}"),
            };
            file.error_at(&[t], format!("unknown table [{t}]"), Some(help))
        })
        .collect();
    if diags.is_empty() {
        return Diagnostics(vec![file.diagnostic(
            None,
            "the file is empty: there is nothing to check".into(),
            Some(format!("smelt checks {kinds}")),
        )]);
    }
    Diagnostics(diags)
}
