//! `templates/`: tera templates rendered into the image. `templates/etc/motd.tera`
//! becomes `/etc/motd`; a path holding `{node}` is rendered once per client node.

use anyhow::anyhow;
use serde_json::{json, Value};

use crate::element::{Element, FileKind};
use crate::io::source::Source;
use crate::path::ImagePath;
use crate::render::{per_item, RenderError, Templates};
use crate::tree::{Entry, Tree};

/// What every template sees, apart from its element's `params` (and `node`).
pub struct Context {
    pub base: serde_json::Map<String, Value>,
    /// Each node's name and its view, for `{node}` templates.
    pub nodes: Vec<(String, Value)>,
}

/// Renders the templates of `element` into the tree; returns how many files it wrote.
pub fn apply(
    tree: &mut Tree,
    element: &Element,
    params: &Value,
    ctx: &Context,
    mtime: i64,
) -> anyhow::Result<usize> {
    let templates: Vec<(&str, u32, &Source)> = element
        .files_under("templates")
        .filter_map(|(rel, f)| match &f.kind {
            FileKind::File(src) if rel.ends_with(".tera") => Some((rel, f.mode, src)),
            _ => None,
        })
        .collect();
    if templates.is_empty() {
        return Ok(0);
    }
    let mut texts = Vec::new();
    for (rel, _, src) in &templates {
        let text = String::from_utf8(src.read_all()?)
            .map_err(|_| anyhow!("element `{}`: template templates/{rel} is not UTF-8", element.name))?;
        texts.push((*rel, text));
    }
    let failed =
        |rel: &str, e: RenderError| anyhow!("element `{}`: template templates/{rel}: {e}", element.name);
    let tera = Templates::new(texts.iter().map(|(rel, text)| (*rel, text.as_str())))
        .map_err(|e| failed(&e.template, e.error))?;
    let mut count = 0;
    for (rel, mode, _) in templates {
        let out = rel.strip_suffix(".tera").unwrap_or(rel);
        let nodes = ctx.nodes.iter().map(|(name, view)| (name.as_str(), (name.as_str(), view)));
        for (dest, node) in per_item(out, "{node}", nodes) {
            let mut map = ctx.base.clone();
            map.insert("params".into(), params.clone());
            if let Some((_, view)) = node {
                map.insert("node".into(), view.clone());
            }
            let text = tera.render(rel, &Value::Object(map)).map_err(|e| failed(rel, e))?;
            let path = ImagePath::new(&dest)
                .map_err(|e| anyhow!("element `{}`: template templates/{rel}: {e}", element.name))?;
            let at = tree
                .insert(&path, Entry::bytes(text.into_bytes(), mode, mtime, &element.name))
                .map_err(|e| anyhow!("element `{}`: template templates/{rel}: {e}", element.name))?;
            if let Some((name, _)) = node {
                tree.mark_node(at, name);
            }
            count += 1;
        }
    }
    Ok(count)
}

/// The `build` part of the context.
pub fn build_info(epoch: i64, elements: &[(String, String, String)]) -> Value {
    json!({
        "date": crate::ui::rfc3339(epoch),
        "epoch": epoch,
        "smelt_version": env!("CARGO_PKG_VERSION"),
        "elements": elements.iter().map(|(n, o, d)| json!({"name": n, "origin": o, "digest": d})).collect::<Vec<_>>(),
    })
}
