//! `base-busybox`: a static busybox at `/bin/busybox` and a link for each applet.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context as _};

use super::base_host::find_program;
use super::{given, BuiltIn, Context};
use crate::path::ImagePath;
use crate::tree::disk::root_entry;
use crate::tree::{Entry, Tree};

#[derive(serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct BaseBusybox {
    busybox: Option<String>,
}

impl BuiltIn for BaseBusybox {
    fn stage(&self, tree: &mut Tree, cx: &mut Context) -> anyhow::Result<usize> {
        let element = cx.element;
        let busybox = match given(&self.busybox) {
            Some(p) => PathBuf::from(p),
            _ => find_program("busybox").context(
                "element `base-busybox`: no busybox on PATH; install busybox-static (Debian/Ubuntu) \
                 or set base-busybox.busybox to a static busybox",
            )?,
        };
        let busybox = crate::lock::read(&busybox);
        let bytes = std::fs::read(&busybox)
            .with_context(|| format!("element `base-busybox`: reading {}", busybox.display()))?;
        let elf = goblin::elf::Elf::parse(&bytes).with_context(|| {
            format!("element `base-busybox`: {} is not an ELF program", busybox.display())
        })?;
        if elf.interpreter.is_some() {
            bail!(
                "element `base-busybox`: {} is dynamically linked, and the image has no libraries for it; \
                 install busybox-static or set base-busybox.busybox to a static busybox",
                busybox.display()
            );
        }
        let out = Command::new(&busybox)
            .arg("--list-full")
            .output()
            .with_context(|| format!("element `base-busybox`: running {} --list-full", busybox.display()))?;
        if !out.status.success() {
            bail!(
                "element `base-busybox`: {} --list-full failed: {}",
                busybox.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let mut entry = root_entry(&busybox, element)?;
        entry.mode = 0o755;
        tree.insert(&ImagePath::new("bin/busybox").expect("valid"), entry)?;
        let mut count = 1;
        let mtime = tree
            .get(&tree.resolve_parents(&ImagePath::new("bin/busybox").expect("valid"))?)
            .map_or(0, |e| e.mtime);
        for applet in String::from_utf8_lossy(&out.stdout).lines() {
            let path = ImagePath::new(applet.trim())?;
            if path.is_root() || path.as_str() == "bin/busybox" || path.as_str() == "linuxrc" {
                continue;
            }
            // An applet never replaces a real program another element put there.
            let at = tree.resolve_parents(&path)?;
            if tree.get(&at).is_some() {
                continue;
            }
            tree.insert(&at, Entry::symlink("/bin/busybox", mtime, element))?;
            count += 1;
        }
        Ok(count)
    }
}
