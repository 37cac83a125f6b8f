//! `inject-files`: files put into the image as given — inline base64 content or a host
//! file — each with an optional mode; a destination that climbs out of the image root
//! is refused.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context as _};

use super::{image_dest as dest, BuiltIn, Context};
use crate::element::manifest::parse_mode;
use crate::tree::disk::host_entry;
use crate::tree::{Entry, Tree};

/// `files = { "/etc/x" = { content-base64 = "…", mode = "0600" }, "/opt/y" = { source =
/// "host path" } }`.
#[derive(serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct InjectFiles {
    files: Option<BTreeMap<String, File>>,
}

/// One file to put in: its bytes inline or from the host, and its mode.
#[derive(serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct File {
    content_base64: Option<String>,
    source: Option<String>,
    mode: Option<String>,
}

impl BuiltIn for InjectFiles {
    fn stage(&self, tree: &mut Tree, cx: &mut Context) -> anyhow::Result<usize> {
        let element = cx.element;
        let Some(files) = self.files.as_ref().filter(|f| !f.is_empty()) else {
            bail!("element `{element}`: param `files` is empty; give a table of image path = {{ content-base64 = \"…\" }} or {{ source = \"…\" }}");
        };
        let mut count = 0;
        for (path, spec) in files {
            let at = dest(element, "destination", path)?;
            let entry = spec.entry(element, path, cx.image.dir(), cx.mtime)?;
            tree.insert(&at, entry.as_root()).map_err(|e| anyhow!("element `{element}`: {path}: {e}"))?;
            count += 1;
        }
        Ok(count)
    }
}

impl File {
    /// The entry for the file at `path`: inline bytes, or a host file relative to
    /// `image_dir`, with its mode.
    fn entry(&self, element: &str, path: &str, image_dir: &Path, mtime: i64) -> anyhow::Result<Entry> {
        use base64::Engine as _;
        let mode = match &self.mode {
            Some(m) => parse_mode(m).map_err(|e| anyhow!("element `{element}`: {path}: {e}"))?,
            None => 0o644,
        };
        match (&self.content_base64, &self.source) {
            (Some(b64), None) => {
                let bytes = base64::engine::general_purpose::STANDARD.decode(b64.trim()).map_err(|e| {
                    anyhow!("element `{element}`: {path}: content-base64 is not base64 ({e})")
                })?;
                Ok(Entry::bytes(bytes, mode, mtime, element))
            }
            (None, Some(src)) => {
                let host = crate::lock::read(&image_dir.join(src));
                let meta = std::fs::metadata(&host)
                    .with_context(|| format!("element `{element}`: {path}: reading {}", host.display()))?;
                if !meta.is_file() {
                    bail!("element `{element}`: {path}: source {} is not a file", host.display());
                }
                let mut e = host_entry(&host, &meta, element)?;
                e.mode = mode;
                Ok(e)
            }
            _ => bail!("element `{element}`: {path}: give exactly one of content-base64 or source"),
        }
    }
}
