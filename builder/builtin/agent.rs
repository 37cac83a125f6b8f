//! `agent`: a payload (a binary or a directory such as a virtualenv) at `dest`, its
//! config rendered from a template to `dest/agent.conf` (0600), and a start-up step
//! that starts it in its own session after the network.

use anyhow::{anyhow, Context as _};
use serde_json::json;

use super::{given, image_dest as dest, BuiltIn, Context};
use crate::path::ImagePath;
use crate::tree::disk::{add_dir, root_entry, Owners};
use crate::tree::{Entry, Tree};

#[derive(serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Agent {
    payload: Option<String>,
    dest: String,
    start: Option<String>,
    config: Option<String>,
}

impl BuiltIn for Agent {
    /// The payload (a file or a directory tree) at `dest`, its config rendered from a
    /// template to `dest/agent.conf`, and a start-up step that starts it after the
    /// network and says so on the console.
    fn stage(&self, tree: &mut Tree, cx: &mut Context) -> anyhow::Result<usize> {
        let (element, image_dir, mtime) = (cx.element, cx.image.dir(), cx.mtime);
        let payload =
            given(&self.payload).ok_or_else(|| anyhow!("element `{element}`: param `payload` is empty"))?;
        let payload = crate::lock::read(&image_dir.join(payload));
        let dest_at = dest(element, "dest", &self.dest)?;
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
        if let Some(config) = given(&self.config) {
            let path = image_dir.join(config);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("element `{element}`: config {}", path.display()))?;
            let rendered = crate::render::render_str(&text, &template_context(cx))
                .map_err(|e| anyhow!("element `{element}`: template {}: {e}", path.display()))?;
            let at = dir.join("agent.conf")?;
            tree.insert(&at, Entry::bytes(rendered.into_bytes(), 0o600, mtime, element))?;
            count += 1;
        }
        // Only an image that boots starts anything; a data ISO carries the payload alone.
        if let Some(start) = given(&self.start).filter(|_| cx.image.boots()) {
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
}

/// What the config template sees: the image's name, the params, the client and its
/// nodes.
fn template_context(cx: &Context) -> serde_json::Value {
    let (client, nodes) = cx.client.map(crate::network::view).unzip();
    json!({ "image": { "name": cx.image.name }, "params": cx.params, "client": client, "nodes": nodes.unwrap_or_default() })
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}
