//! The `config-drive` output: for every node an ISO labelled `config-2` with the
//! OpenStack metadata cloud-init reads — `openstack/latest/meta_data.json` (a stable
//! UUID, host name, public keys), `network_data.json`, and whatever elements put under
//! `config-drive/` (`.tera` files rendered for the node, such as `user_data`).

use std::path::Path;

use anyhow::{anyhow, Context as _};
use serde_json::{json, Value};

use super::Outputs;
use crate::archive::iso;
use crate::archive::Written;
use crate::config::client::{Client, Node};
use crate::config::image::OutputKind;
use crate::element::{Element, FileKind};
use crate::path::ImagePath;
use crate::tree::{Entry, Tree};

impl Outputs<'_> {
    /// `config-drive/NODE.iso` for every node of the client.
    pub(super) fn config_drives(&mut self) -> anyhow::Result<()> {
        let plan = self.plan;
        let client = plan.client.as_ref().expect("checked before building");
        let dir = self.outdir.join("config-drive");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let spill = self.work.join("iso-spill");
        let (client_view, node_views) = crate::network::view(client);
        for (node, node_view) in client.nodes.iter().zip(&node_views) {
            let tree = tree(client, node, (&client_view, node_view), &plan.resolved.elements, plan.time)?;
            let dest = dir.join(format!("{}.iso", node.name));
            let out = self.ui.step("config-drive", || write(&tree, plan.time, &dest, &spill))?;
            self.record(OutputKind::ConfigDrive, out);
        }
        Ok(())
    }
}

/// The tree of one node's config drive; `client_view` and `node_view` are what its
/// templates see.
fn tree(
    client: &Client,
    node: &Node,
    (client_view, node_view): (&Value, &Value),
    elements: &[Element],
    mtime: i64,
) -> anyhow::Result<Tree> {
    let name = &node.name;
    let keys: serde_json::Map<String, Value> = client
        .ssh_keys
        .iter()
        .chain(&node.ssh_keys)
        .enumerate()
        .map(|(i, k)| (format!("key-{i}"), Value::from(k.as_str())))
        .collect();
    let meta = json!({
        "uuid": crate::network::uuid(name, "instance"),
        "name": name,
        "hostname": crate::network::fqdn(node, client),
        "launch_index": 0,
        "availability_zone": "nova",
        "public_keys": keys,
        "meta": { "smelt_client": client.name },
    });
    let mut tree = Tree::default();
    let put = |tree: &mut Tree, path: &str, text: String, element: &str| -> anyhow::Result<()> {
        let at = ImagePath::new(path)?;
        tree.insert(&at, Entry::bytes(text.into_bytes(), 0o644, mtime, element))
            .map_err(|e| anyhow!("config drive {path}: {e}"))?;
        Ok(())
    };
    put(&mut tree, "openstack/latest/meta_data.json", pretty(&meta), "config-drive")?;
    let network_data = crate::network::network_data_json(node, client) + "\n";
    put(&mut tree, "openstack/latest/network_data.json", network_data, "config-drive")?;
    for e in elements {
        for (rel, f) in e.files_under("config-drive") {
            let FileKind::File(src) = &f.kind else { continue };
            let bytes = src.read_all()?;
            let (path, text) = match rel.strip_suffix(".tera") {
                Some(out) => {
                    let text = String::from_utf8(bytes)
                        .map_err(|_| anyhow!("element `{}`: config-drive/{rel} is not UTF-8", e.name))?;
                    let ctx = json!({ "client": client_view, "node": node_view });
                    let rendered = crate::render::render_str(&text, &ctx).map_err(|er| {
                        anyhow!("element `{}`: template config-drive/{rel} for node {name}: {er}", e.name)
                    })?;
                    (out.to_string(), rendered)
                }
                None => (rel.to_string(), String::from_utf8_lossy(&bytes).into_owned()),
            };
            put(&mut tree, &path, text, &e.name)?;
        }
    }
    Ok(tree)
}

/// Writes one node's config drive to `dest` (published by the caller); `scratch` as for
/// any ISO.
fn write(tree: &Tree, epoch: i64, dest: &Path, scratch: &Path) -> anyhow::Result<Written> {
    // cloud-init finds the drive by this label (DataSourceConfigDrive).
    let image = iso::prepare(&[tree], "config-2", epoch, None, iso::FileCompression::None, scratch)?;
    let (_, written) = image.write(dest, None)?;
    Ok(written.expect("accepted"))
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).expect("JSON") + "\n"
}
