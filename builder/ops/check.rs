//! `smelt check FILE`: validates an image.toml, client.toml or size-budget.toml, told
//! apart by their top-level tables, and reports every problem at once.

use std::path::Path;

use crate::config::{budget, image, source::TomlFile};

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
    if has("image") {
        let img = image::check(&TomlFile::from_text(path, text))?;
        return Ok(format!("{shown}: ok (image `{}`, {} elements)\n", img.name, img.elements.len()));
    }
    if has("client") || has("nodes") {
        let nodes = crate::plan::check_client(path)?;
        return Ok(format!("{shown}: ok (client inventory, {nodes} nodes)\n"));
    }
    if has("output") || has("element") || has("path") {
        let b = budget::check(&TomlFile::from_text(path, text))?;
        return Ok(format!("{shown}: ok (size budget, {} limits)\n", b.limits.len()));
    }
    anyhow::bail!(
        "{shown}: not an image.toml ([image]), a client.toml ([client], [[nodes]]) or a size-budget.toml \
         ([output.*], [element.*], [path.*])"
    )
}
