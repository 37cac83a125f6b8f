//! The tools smelt puts first on hooks' `PATH`, inside and outside the image: `sudo`
//! and `mknod` for every hook, the built-in elements' tools (`install-packages`), and
//! `cpio` for the hooks that write diskimage-builder's own image; with what `mknod`
//! recorded read back into the tree. They live in the hooks directory's `smelt-bin/`,
//! not in `bin/`, which DIB's `install-bin` copies into the image: smelt's stand-ins
//! never reach it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::element::hooks::Side;
use crate::element::image_writer;
use crate::path::ImagePath;
use crate::tree::{Entry, Kind, Tree};

/// `sudo` for DIB hooks, which call it on the host: a hook already has the rights it
/// gets (root, or root of a user namespace), so the options go and the command runs.
const SUDO: &str = "#!/bin/sh\n# sudo for DIB hooks, written by smelt: hooks already run with the rights they get.\n\
    while [ $# -gt 0 ]; do case \"$1\" in -u|-g|-C|-D|-h|-p|-r|-t|-U) shift 2 ;; --) shift; break ;; -*) shift ;; *) break ;; esac; done\n\
    exec env \"$@\"\n";

/// `mknod`: a device node needs privilege a build may not have, and smelt writes device
/// nodes from its records anyway. The node is recorded (`PATH TYPE MAJOR MINOR MODE`
/// in the hooks directory's `smelt-devices`) and an empty file stands in for it, so
/// `[ -e ]` tests in later hooks see it.
const MKNOD: &str = r#"#!/bin/sh
# mknod for hooks, written by smelt: the node is recorded in smelt's image records and an
# empty file stands in for it here.
mode=-
while [ $# -gt 0 ]; do
  case "$1" in
    -m) mode="$2"; shift 2 ;;
    -m*) mode="${1#-m}"; shift ;;
    --mode=*) mode="${1#--mode=}"; shift ;;
    --) shift; break ;;
    -*) shift ;;
    *) break ;;
  esac
done
if [ -z "$1" ] || [ -z "$2" ]; then echo "mknod: missing operand" >&2; exit 1; fi
if [ -e "$1" ] || [ -L "$1" ]; then echo "mknod: $1: File exists" >&2; exit 1; fi
: > "$1" || exit 1
echo "$(readlink -f "$1") $2 ${3:-0} ${4:-0} $mode" >> "$(dirname "$0")/../smelt-devices"
"#;

const DEVICES: &str = "smelt-devices";

/// The folder of the hooks directory holding smelt's tools, first on every hook's PATH.
pub const BIN: &str = "smelt-bin";

/// Writes the tools into the hooks directory `dir`: `sudo`, `mknod` and the built-ins'
/// `tools` in [`BIN`], and the image writers' `cpio` apart.
pub fn write(dir: &Path, tools: Vec<(&'static str, String)>) -> anyhow::Result<()> {
    let bin = dir.join(BIN);
    let ours = [("sudo", SUDO), ("mknod", MKNOD)].map(|(name, text)| (bin.join(name), text.to_string()));
    let built_ins = tools.into_iter().map(|(name, text)| (bin.join(name), text));
    let writer = (dir.join(image_writer::BIN).join("cpio"), image_writer::CPIO.to_string());
    for (dest, text) in ours.into_iter().chain(built_ins).chain([writer]) {
        fs::create_dir_all(dest.parent().expect("in a folder"))?;
        fs::write(&dest, text)?;
        fs::set_permissions(&dest, fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

/// Turns what `mknod` recorded during a hook into device entries of `element`, in
/// place of the stand-in files; returns how many.
pub fn take_devices(
    tmp_hooks: &Path,
    target_root: &Path,
    side: Side,
    tree: &mut Tree,
    element: &str,
    mtime: i64,
) -> anyhow::Result<usize> {
    let file = tmp_hooks.join(DEVICES);
    let Ok(text) = fs::read_to_string(&file) else { return Ok(0) };
    fs::remove_file(&file)?;
    let mut count = 0;
    for line in text.lines() {
        let bad = || anyhow::anyhow!("element `{element}`: mknod recorded `{line}`, which smelt cannot read");
        let f: Vec<&str> = line.rsplitn(5, ' ').collect();
        let [mode, minor, major, kind, path] = f[..] else { return Err(bad()) };
        // A host hook names host paths; inside the image, paths are the image's.
        let inside = match side {
            Side::Host => match Path::new(path).strip_prefix(target_root) {
                Ok(rel) => format!("/{}", rel.display()),
                Err(_) => continue, // a node outside the image is none of smelt's business
            },
            Side::Chroot => path.to_string(),
        };
        let at = ImagePath::new(&inside).map_err(|_| bad())?;
        let (major, minor): (u32, u32) =
            (major.parse().map_err(|_| bad())?, minor.parse().map_err(|_| bad())?);
        let kind = match kind {
            "c" | "u" => Kind::Char(major, minor),
            "b" => Kind::Block(major, minor),
            "p" => Kind::Fifo,
            _ => return Err(bad()),
        };
        let mode = if mode == "-" { 0o644 } else { u32::from_str_radix(mode, 8).map_err(|_| bad())? };
        let entry = Entry { kind, mode, uid: 0, gid: 0, mtime, element: element.into() };
        tree.remove(&at);
        tree.insert(&at, entry).map_err(|m| anyhow::anyhow!("element `{element}`: mknod {at}: {m}"))?;
        count += 1;
    }
    Ok(count)
}
