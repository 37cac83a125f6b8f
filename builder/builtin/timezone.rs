//! `timezone`: the image's time zone, `/etc/localtime` from the host's zoneinfo and
//! `/etc/timezone`; the client inventory's zone unless the param names one.

use std::path::Path;

use anyhow::{bail, Context as _};

use super::{given, BuiltIn, Context};
use crate::path::ImagePath;
use crate::tree::disk::root_entry;
use crate::tree::{Entry, Tree};

#[derive(serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Timezone {
    zone: Option<String>,
}

impl BuiltIn for Timezone {
    /// `/etc/localtime` from the host's zoneinfo and `/etc/timezone`.
    fn stage(&self, tree: &mut Tree, cx: &mut Context) -> anyhow::Result<usize> {
        let (element, mtime) = (cx.element, cx.mtime);
        let client_zone = cx.client.and_then(|c| c.timezone.as_deref());
        let zone = given(&self.zone).or(client_zone).unwrap_or("UTC");
        if zone.contains("..") || zone.starts_with('/') {
            bail!("element `{element}`: `{zone}` is not a time zone name such as Europe/Madrid");
        }
        let host = Path::new("/usr/share/zoneinfo").join(zone);
        let mut entry = root_entry(&host, element).with_context(|| {
            format!("element `{element}`: is `{zone}` a time zone, and is tzdata installed on this host?")
        })?;
        entry.mode = 0o644;
        tree.insert(&ImagePath::new("etc/localtime").expect("valid"), entry)?;
        let text = format!("{zone}\n").into_bytes();
        tree.insert(
            &ImagePath::new("etc/timezone").expect("valid"),
            Entry::bytes(text, 0o644, mtime, element),
        )?;
        Ok(2)
    }
}
