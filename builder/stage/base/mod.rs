//! The built-in bases whose work is done in Rust rather than by hooks: `base-busybox`
//! and `base-host`. They run only for the built-in elements of those names; an element
//! of the same name earlier on the path replaces them entirely.

pub mod busybox;
pub mod host;

use serde_json::Value;

use super::tree::Tree;
use crate::element::{Element, Origin};

/// Runs the base of `element`, if it has one; returns how many entries it added.
pub fn apply(tree: &mut Tree, element: &Element, params: &Value) -> anyhow::Result<Option<usize>> {
    if element.origin != Origin::BuiltIn {
        return Ok(None);
    }
    let count = match element.name.as_str() {
        "base-busybox" => busybox::apply(tree, &element.name, params)?,
        "base-host" => host::apply(tree, &element.name, params)?,
        _ => return Ok(None),
    };
    Ok(Some(count))
}
