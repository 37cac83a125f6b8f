//! `agent`: a payload (a binary or a directory such as a virtualenv) at `dest`, its
//! config rendered from a template to `dest/agent.conf` (0600), and a start-up step
//! that starts it in its own session after the network.

use std::path::Path;

use anyhow::{anyhow, Context as _};
use serde_json::Value;

use super::image_dest as dest;
use crate::path::ImagePath;
use crate::tree::disk::{add_dir, root_entry, Owners};
use crate::tree::{Entry, Tree};

/// `agent`: the payload (a file or a directory tree) at `dest`, its config rendered
/// from a template to `dest/agent.conf`, and a start-up step that starts it after the
/// network and says so on the console.
pub fn apply(
    tree: &mut Tree,
    element: &str,
    params: &Value,
    image_dir: &Path,
    context: &Value,
    boots: bool,
    mtime: i64,
) -> anyhow::Result<usize> {
    let s = |k: &str| params.get(k).and_then(Value::as_str).filter(|v| !v.is_empty());
    let payload =
        image_dir.join(s("payload").ok_or_else(|| anyhow!("element `{element}`: param `payload` is empty"))?);
    let dest_path = s("dest").unwrap_or("/opt/agent");
    let dest_at = dest(element, "dest", dest_path)?;
    let meta = std::fs::symlink_metadata(&payload)
        .with_context(|| format!("element `{element}`: payload {}", payload.display()))?;
    let mut count = 0;
    if meta.is_dir() {
        count += add_dir(tree, &payload, &dest_at, element, Owners::Root)?;
    } else {
        let mut entry = root_entry(&payload, element)?;
        entry.mode |= 0o755;
        tree.insert(&dest_at, entry).map_err(|er| anyhow!("element `{element}`: {dest_at}: {er}"))?;
        count += 1;
    }
    let dir = if meta.is_dir() { dest_at } else { dest_at.parent().unwrap_or_else(ImagePath::root) };
    if let Some(config) = s("config") {
        let path = image_dir.join(config);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("element `{element}`: config {}", path.display()))?;
        let rendered = crate::render::render_str(&text, context)
            .map_err(|e| anyhow!("element `{element}`: template {}: {e}", path.display()))?;
        let at = dir.join("agent.conf")?;
        tree.insert(&at, Entry::bytes(rendered.into_bytes(), 0o600, mtime, element))?;
        count += 1;
    }
    // Only an image that boots starts anything; a data ISO carries the payload alone.
    if let Some(start) = s("start").filter(|_| boots) {
        // Runs after the network (40-network) and before anything later; the agent keeps
        // running in its own session with its output on the console.
        let script = format!(
            "#!/bin/sh\n# Starts the agent; written by smelt's {element} element.\ncd {dir} || exit 1\n\
             setsid sh -c {quoted} </dev/null >/dev/console 2>&1 &\necho \"smelt-agent: started {quoted} (pid $!)\"\n",
            dir = shell_quote(&format!("/{}", dir.as_str())),
            quoted = shell_quote(start),
        );
        let at = ImagePath::new("etc/smelt/init.d/60-agent").expect("valid");
        tree.insert(&at, Entry::bytes(script.into_bytes(), 0o755, mtime, element))?;
        count += 1;
    }
    Ok(count)
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}
