//! The `config-drive` output: for every node an ISO labelled `config-2` with the
//! OpenStack metadata cloud-init reads — `openstack/latest/meta_data.json` (a stable
//! UUID, host name, public keys), `network_data.json`, and whatever elements put under
//! `config-drive/` (`.tera` files rendered for the node, such as `user_data`).

use std::path::Path;

use anyhow::anyhow;
use serde_json::{json, Value};

use crate::archive::iso;
use crate::archive::Written;
use crate::config::client::Client;
use crate::element::{Element, FileKind};
use crate::path::ImagePath;
use crate::tree::{Entry, Tree};

/// The tree of one node's config drive.
pub fn tree(
    client: &Client,
    client_view: &Value,
    node: &Value,
    elements: &[Element],
    mtime: i64,
) -> anyhow::Result<Tree> {
    let name = node["name"].as_str().unwrap_or("");
    let fqdn = node["fqdn"].as_str().unwrap_or(name);
    let keys: serde_json::Map<String, Value> = node["ssh_keys"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, k)| (format!("key-{i}"), k.clone()))
        .collect();
    let meta = json!({
        "uuid": crate::network::uuid(name, "instance"),
        "name": name,
        "hostname": fqdn,
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
    let network_data = node["network_data_json"].as_str().unwrap_or("{}").to_string() + "\n";
    put(&mut tree, "openstack/latest/network_data.json", network_data, "config-drive")?;
    for e in elements {
        for (rel, f) in e.files_under("config-drive") {
            let FileKind::File(src) = &f.kind else { continue };
            let bytes = src.read_all()?;
            let (path, text) = match rel.strip_suffix(".tera") {
                Some(out) => {
                    let text = String::from_utf8(bytes)
                        .map_err(|_| anyhow!("element `{}`: config-drive/{rel} is not UTF-8", e.name))?;
                    let ctx = json!({ "client": client_view, "node": node });
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
pub fn write(tree: &Tree, epoch: i64, dest: &Path, scratch: &Path) -> anyhow::Result<Written> {
    // cloud-init finds the drive by this label (DataSourceConfigDrive).
    let image = iso::prepare(&[tree], "config-2", epoch, None, iso::FileCompression::None, scratch)?;
    let (_, written) = image.write(dest, None)?;
    Ok(written.expect("accepted"))
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).expect("JSON") + "\n"
}
