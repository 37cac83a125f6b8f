//! The built-in elements whose work is done in Rust rather than by hooks: the bases
//! `base-busybox` and `base-host`, `kernel-modules`, and the `network` element's
//! per-node rendering. They
//! run only for the built-in elements of those names; an element of the same name
//! earlier on the path replaces them entirely.

pub mod busybox;
pub mod files;
pub mod host;
pub mod modules;
pub mod python;
pub mod rootfs;
pub mod tls;

use serde_json::Value;

use crate::element::{Element, Origin};
use crate::plan::Plan;
use crate::tree::Tree;

/// Runs the built-in work of `element`, if it has any; returns how many entries it added.
pub fn apply(
    tree: &mut Tree,
    element: &Element,
    params: &Value,
    plan: &Plan,
    work: &std::path::Path,
    mtime: i64,
) -> anyhow::Result<Option<usize>> {
    if element.origin != Origin::BuiltIn {
        return Ok(None);
    }
    let count = match element.name.as_str() {
        "base-busybox" => busybox::apply(tree, &element.name, params)?,
        "base-host" => host::apply(tree, &element.name, params)?,
        "network" => network(tree, &element.name, params, plan, mtime)?,
        "python-trim" => python::trim(tree, &element.name, params, work, mtime)?,
        "base-rootfs" => rootfs::rootfs(tree, &element.name, params, plan.image.dir())?,
        "base-debian" => rootfs::debian(tree, &element.name, params, plan.offline)?,
        "inject-files" => files::inject(tree, &element.name, params, plan.image.dir(), mtime)?,
        "dev-user" => files::dev_user(tree, &element.name, params, mtime)?,
        "timezone" => {
            let zone = plan.inventory.as_ref().and_then(|c| c.timezone.as_deref());
            files::timezone(tree, &element.name, params, zone, mtime)?
        }
        "agent" => {
            let context = serde_json::json!({ "image": { "name": plan.image.name }, "params": params, "client": plan.client, "nodes": plan.nodes });
            files::agent(tree, &element.name, params, plan.image.dir(), &context, mtime)?
        }
        "tls" => tls::apply(tree, &element.name, params, plan.image.dir(), &plan.image.name, mtime)?,
        "kernel-modules" => {
            let release = match &plan.image.kernel {
                Some(k) => crate::boot::kernel_path(k).ok().and_then(|p| modules::kernel_release(&p)),
                None => None,
            };
            let autoload = plan.resolved.get("module-autoload").is_some();
            modules::apply(tree, &element.name, params, release, autoload, mtime)?
        }
        _ => return Ok(None),
    };
    Ok(Some(count))
}

/// A param that is a list of names: a TOML array of strings, or one string of names
/// separated by spaces or commas (as `--set element.param=a,b` gives it).
pub fn list_param(params: &Value, key: &str) -> Vec<String> {
    match params.get(key) {
        Some(Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(String::from)).collect(),
        Some(Value::String(s)) => s.split([' ', ',']).filter(|p| !p.is_empty()).map(String::from).collect(),
        _ => Vec::new(),
    }
}

/// Renders every requested renderer for every node; with `init` in the image the
/// boot-time applier (`ramdisk`) is always among them.
fn network(tree: &mut Tree, element: &str, params: &Value, plan: &Plan, mtime: i64) -> anyhow::Result<usize> {
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
