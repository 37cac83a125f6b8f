//! The built-in elements whose work is done in Rust rather than by hooks, one file each,
//! named as the element (`dev_user.rs` for `elements/dev-user`); the element's directory
//! under `elements/` holds its manifest, params and any files. The work runs only for
//! the built-in element of that name: an element of the same name earlier on the path
//! replaces it, work included.

mod agent;
mod base_busybox;
pub mod base_debian;
pub mod base_host;
pub mod base_rootfs;
mod dev_user;
mod inject_files;
pub mod kernel_modules;
mod network;
mod python_trim;
mod timezone;
pub mod tls;

use anyhow::bail;
use serde_json::Value;

use crate::element::{Element, Origin};
use crate::path::ImagePath;
use crate::plan::Plan;
use crate::tree::Tree;

/// What built-in elements report beyond the tree: what each trim rule removed.
#[derive(Default)]
pub struct Findings {
    pub trimmed: Vec<Trimmed>,
}

/// One rule of a trim and what it took out of the image.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Trimmed {
    pub element: String,
    pub rule: String,
    pub files: usize,
    /// Bytes the image is smaller by (for `strip`, what stripping saved).
    pub bytes: u64,
    /// What it removed, where a user wants the names (the kernel modules dropped).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
}

/// Runs the built-in work of `element`, if it has any; returns how many entries it added.
pub fn apply(
    tree: &mut Tree,
    element: &Element,
    params: &Value,
    plan: &Plan,
    work: &std::path::Path,
    mtime: i64,
    found: &mut Findings,
) -> anyhow::Result<Option<usize>> {
    if element.origin != Origin::BuiltIn {
        return Ok(None);
    }
    let name = element.name.as_str();
    let image_dir = plan.image.dir();
    let count = match name {
        "agent" => {
            let context = serde_json::json!({ "image": { "name": plan.image.name }, "params": params, "client": plan.client, "nodes": plan.nodes });
            agent::apply(tree, name, params, image_dir, &context, plan.image.boots(), mtime)?
        }
        "base-busybox" => base_busybox::apply(tree, name, params)?,
        "base-debian" => {
            // diskimage-builder's scripts pick the kernel by its /boot/initrd* beside it.
            let dib = plan.resolved.elements.iter().any(|e| e.manifest.form == crate::element::Form::Dib);
            base_debian::apply(tree, name, params, plan.offline, dib)?
        }
        "base-host" => base_host::apply(tree, name, params)?,
        "base-rootfs" => base_rootfs::apply(tree, name, params, image_dir)?,
        "dev-user" => dev_user::apply(tree, name, params, mtime)?,
        "inject-files" => inject_files::apply(tree, name, params, image_dir, mtime)?,
        "kernel-modules" => {
            let release = match &plan.image.kernel {
                // The image's own modules, trimmed by a finalise.d hook (element::module_trim).
                Some(crate::config::image::Kernel::Image) => return Ok(Some(0)),
                Some(k) => crate::boot::kernel_path(k).ok().and_then(|p| kernel_modules::kernel_release(&p)),
                None => None,
            };
            let autoload = plan.resolved.get("module-autoload").is_some();
            kernel_modules::apply(tree, name, params, release, autoload, mtime)?
        }
        "network" => network::apply(tree, name, params, plan, mtime)?,
        "python-trim" => python_trim::apply(tree, name, params, work, mtime, found)?,
        "timezone" => {
            let zone = plan.inventory.as_ref().and_then(|c| c.timezone.as_deref());
            timezone::apply(tree, name, params, zone, mtime)?
        }
        "tls" => tls::apply(tree, name, params, image_dir, &plan.image.name, mtime)?,
        _ => return Ok(None),
    };
    Ok(Some(count))
}

/// A param that is a list of names: a TOML array of strings, or one string of names
/// separated by spaces or commas (as `--set element.param=a,b` gives it).
pub fn list_param(params: &Value, key: &str) -> Vec<String> {
    crate::element::param::names(params.get(key))
}

/// A destination param (`dest`, a file's path): an image path that is not the root.
fn image_dest(element: &str, what: &str, path: &str) -> anyhow::Result<ImagePath> {
    match ImagePath::new(path) {
        Ok(p) if !p.is_root() => Ok(p),
        Ok(_) => bail!("element `{element}`: {what} `{path}` is the image root; name a file"),
        Err(e) => bail!("element `{element}`: {what} {e}; destinations are paths inside the image"),
    }
}
