//! `inject-files`: files put into the image as given — inline base64 content or a host
//! file — each with an optional mode; a destination that climbs out of the image root
//! is refused.

use std::path::Path;

use anyhow::{anyhow, bail, Context as _};
use serde_json::Value;

use super::image_dest as dest;
use crate::element::manifest::parse_mode;
use crate::tree::disk::host_entry;
use crate::tree::{Entry, Tree};

/// `inject-files`: `files = { "/etc/x" = { content-base64 = "…", mode = "0600" },
/// "/opt/y" = { source = "host path" } }`.
pub fn apply(
    tree: &mut Tree,
    element: &str,
    params: &Value,
    image_dir: &Path,
    mtime: i64,
) -> anyhow::Result<usize> {
    use base64::Engine as _;
    let Some(files) = params.get("files").and_then(Value::as_object) else {
        bail!("element `{element}`: param `files` is empty; give a table of image path = {{ content-base64 = \"…\" }} or {{ source = \"…\" }}");
    };
    let mut count = 0;
    for (path, spec) in files {
        let at = dest(element, "destination", path)?;
        let mode = match spec.get("mode").and_then(Value::as_str) {
            Some(m) => parse_mode(m).map_err(|e| anyhow!("element `{element}`: {path}: {e}"))?,
            None => 0o644,
        };
        let entry = match (
            spec.get("content-base64").and_then(Value::as_str),
            spec.get("source").and_then(Value::as_str),
        ) {
            (Some(b64), None) => {
                let bytes = base64::engine::general_purpose::STANDARD.decode(b64.trim()).map_err(|e| {
                    anyhow!("element `{element}`: {path}: content-base64 is not base64 ({e})")
                })?;
                Entry::bytes(bytes, mode, mtime, element)
            }
            (None, Some(src)) => {
                let host = image_dir.join(src);
                let meta = std::fs::metadata(&host)
                    .with_context(|| format!("element `{element}`: {path}: reading {}", host.display()))?;
                if !meta.is_file() {
                    bail!("element `{element}`: {path}: source {} is not a file", host.display());
                }
                let mut e = host_entry(&host, &meta, element)?;
                e.mode = mode;
                e
            }
            _ => bail!("element `{element}`: {path}: give exactly one of content-base64 or source"),
        };
        tree.insert(&at, entry.as_root()).map_err(|e| anyhow!("element `{element}`: {path}: {e}"))?;
        count += 1;
    }
    Ok(count)
}
