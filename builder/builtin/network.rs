//! `network`: every node's network configs, in each renderer the `renderers` param
//! names (the rendering itself is `crate::network`), and with `init` in the image the
//! boot-time applier, `ramdisk`.

use serde_json::Value;

use super::list_param;
use crate::plan::Plan;
use crate::tree::Tree;

/// Renders every requested renderer for every node; with `init` in the image the
/// boot-time applier (`ramdisk`) is always among them.
pub fn apply(
    tree: &mut Tree,
    element: &str,
    params: &Value,
    plan: &Plan,
    mtime: i64,
) -> anyhow::Result<usize> {
    let Some(client) = &plan.inventory else {
        crate::ui::warning(
            "element `network` without --client CLIENT.toml: there are no nodes, so every boot falls back to DHCP",
        );
        return Ok(0);
    };
    // The element's `choices` hold every renderer (a test keeps them equal).
    let mut renderers: Vec<String> = list_param(params, "renderers");
    if plan.resolved.get("init").is_some() && !renderers.iter().any(|r| r == "ramdisk") {
        renderers.push("ramdisk".into());
    }
    let user_dir = params.get("templates").and_then(Value::as_str).map(|d| plan.image.dir().join(d));
    if let Some(d) = &user_dir {
        if !d.is_dir() {
            anyhow::bail!(
                "element `network`: param `templates` names {}, which is not a directory",
                d.display()
            );
        }
    }
    let views = (&plan.client, plan.nodes.as_slice());
    crate::network::render(tree, element, client, views, &renderers, user_dir.as_deref(), mtime)
}
