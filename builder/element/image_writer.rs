//! Hooks that write diskimage-builder's own image from the tree. smelt writes its
//! outputs itself, so such a hook runs with smelt's `cpio` first on its `PATH` in place
//! of the real one: what it does to the tree stands, the paths it hands to `cpio -o` are
//! what the image keeps, and no second archive is made.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use super::hooks::{Harvest, Harvested, Hook};
use crate::path::ImagePath;
use crate::tree::{Kind, Tree};

/// The hooks that write DIB's image (element, phase, name).
const IMAGE_WRITERS: [(&str, &str, &str); 1] = [("ironic-ramdisk-base", "cleanup.d", "99-ramdisk-create")];

/// Where the stand-in `cpio` lives in the hooks directory, apart from `bin/` so no
/// other hook gets it.
pub const BIN: &str = "smelt-image-writer-bin";

/// The stand-in: the paths on stdin of `cpio -o` are appended to [`CHOSEN`].
pub const CPIO: &str = r#"#!/bin/sh
# cpio for a hook that makes diskimage-builder's own image, written by smelt: smelt
# writes the image; the paths on stdin are what the image keeps.
for a in "$@"; do
  case "$a" in
    -o*|--create) cat >> "$(dirname "$0")/../smelt-chosen"; exit 0 ;;
  esac
done
echo "cpio: smelt stands in for cpio in this hook and only takes 'cpio -o' (got: $*)" >&2
exit 1
"#;

/// What the stand-in wrote, in the hooks directory.
const CHOSEN: &str = "smelt-chosen";

/// For the hook `phase/name` of `element`, when it writes DIB's image: what smelt does
/// around it. With `kernel_from_image`, `/boot` stays for smelt to take the kernel from
/// (and then leave out), as the hook itself copies the kernel out of it.
pub fn harvest(element: &str, phase: &str, name: &str, kernel_from_image: bool) -> Option<Arc<dyn Harvest>> {
    IMAGE_WRITERS
        .iter()
        .any(|&(e, p, n)| element == e && phase == p && name == n)
        .then(|| Arc::new(ImageWriter { kernel_from_image }) as Arc<dyn Harvest>)
}

#[derive(Debug)]
struct ImageWriter {
    kernel_from_image: bool,
}

impl Harvest for ImageWriter {
    fn note(&self) -> Option<&'static str> {
        Some("makes DIB's image: run with smelt's cpio, smelt writes the image")
    }

    fn path_first(&self) -> Option<&'static str> {
        Some(BIN)
    }

    /// Keeps in `tree` only the paths the hook handed to `cpio -o` (`./etc/fstab`
    /// lines) and the nodes that were never on disk.
    fn after(&self, hook: &Hook, left: &Path, tree: &mut Tree, out: &mut Harvested) -> anyhow::Result<()> {
        let file = left.join(CHOSEN);
        let Ok(text) = std::fs::read_to_string(&file) else { return Ok(()) };
        std::fs::remove_file(&file)?;
        let chosen: BTreeSet<ImagePath> = text.lines().filter_map(|l| ImagePath::new(l).ok()).collect();
        let mut bytes = 0;
        let removed = tree.retain(|p, e| {
            let never_on_disk = matches!(e.kind, Kind::Char(..) | Kind::Block(..) | Kind::Fifo);
            let boot = self.kernel_from_image && p.as_str().starts_with("boot/");
            let keep = p.is_root() || never_on_disk || boot || chosen.contains(p);
            if !keep {
                bytes += e.size();
            }
            keep
        });
        out.notes.push(format!(
            "{}/{} of element `{}` makes diskimage-builder's image: it ran with smelt's cpio in place of the \
             real one; the image keeps the {} paths it chose ({removed} removed, {}), and smelt writes the outputs",
            hook.phase,
            hook.name,
            hook.element,
            tree.len(),
            crate::config::size::human(bytes)
        ));
        Ok(())
    }
}
