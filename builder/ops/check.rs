//! `smelt check FILE`: validates an image.toml, client.toml or size-budget.toml and
//! reports every problem at once.

use std::path::Path;

use crate::config::{budget, image, source::TomlFile};

pub fn check(path: &Path) -> anyhow::Result<String> {
    let file = TomlFile::read(path)?;
    let text = std::fs::read_to_string(path)?;
    let has_table = |name: &str| text.lines().any(|l| l.trim_start().starts_with(&format!("[{name}")));
    if has_table("image]") {
        let img = image::check(&file)?;
        return Ok(format!(
            "{}: ok (image `{}`, {} elements)\n",
            path.display(),
            img.name,
            img.elements.len()
        ));
    }
    if has_table("client]") || has_table("[nodes]]") {
        return crate::plan::check_client(path)
            .map(|n| format!("{}: ok (client inventory, {n} nodes)\n", path.display()));
    }
    if has_table("output.") || has_table("element.") || has_table("path.") || has_table("output]") {
        let b = budget::check(&file)?;
        return Ok(format!("{}: ok (size budget, {} limits)\n", path.display(), b.limits.len()));
    }
    anyhow::bail!(
        "{}: not an image.toml ([image]), client.toml ([client], [[nodes]]) or size-budget.toml ([output.*], [element.*], [path.*])",
        path.display()
    )
}
