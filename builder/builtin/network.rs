//! `network`: every node's network configs, in each renderer the `renderers` param
//! names (the rendering itself is `crate::network`), and with `init` in the image the
//! boot-time applier, `ramdisk`.

use super::{given, BuiltIn, Context};
use crate::tree::Tree;

#[derive(serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Network {
    renderers: Vec<String>,
    templates: Option<String>,
}

impl BuiltIn for Network {
    /// Renders every requested renderer for every node; with `init` in the image the
    /// boot-time applier (`ramdisk`) is always among them.
    fn stage(&self, tree: &mut Tree, cx: &mut Context) -> anyhow::Result<usize> {
        let Some(client) = cx.client else {
            crate::ui::warning(&format!(
                "element `{}` without --client CLIENT.toml: there are no nodes, so every boot falls back to DHCP",
                cx.element
            ));
            return Ok(0);
        };
        // The element's `choices` hold every renderer (a test keeps them equal).
        let mut renderers = self.renderers.clone();
        if cx.elements.get("init").is_some() && !renderers.iter().any(|r| r == "ramdisk") {
            renderers.push("ramdisk".into());
        }
        let user_dir = given(&self.templates).map(|d| crate::lock::read(&cx.image.dir().join(d)));
        if let Some(d) = &user_dir {
            if !d.is_dir() {
                anyhow::bail!(
                    "element `{}`: param `templates` names {}, which is not a directory",
                    cx.element,
                    d.display()
                );
            }
        }
        crate::network::render(tree, cx.element, client, &renderers, user_dir.as_deref(), cx.mtime)
    }
}
