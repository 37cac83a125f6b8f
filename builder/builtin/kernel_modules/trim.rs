//! `kernel-modules` on an image that boots its own kernel (`kernel =
//! "image"`): the image installed the kernel with all its modules, so instead of copying
//! modules from the host the element keeps only the listed ones (names and dracut-style
//! `=dir` groups, with everything they need) and drops the rest. That is one
//! `finalise.d/99-kernel-modules` hook, run inside the image with its own `modprobe` and
//! `depmod`, which lists what it dropped for the report.

use std::path::Path;
use std::sync::Arc;

use crate::element::hooks::{Harvest, Harvested, Hook, IN_IMAGE};
use crate::findings::Trimmed;
use crate::io::source::Source;
use crate::path::ImagePath;
use crate::tree::Tree;

/// The hook's name, and where it lists the modules it dropped (in the hooks directory,
/// never in the image): one image path a line.
const HOOK: &str = "99-kernel-modules";
const DROPPED: &str = "smelt-modules-dropped";
/// Where it lists the groups this kernel has no directory for (a cloud kernel has no
/// `drivers/usb`): a warning, so one list serves several kernels.
const MISSING: &str = "smelt-modules-missing";

/// The trim hook keeping `wanted` (the `modules` param) of the kernel `release` (the
/// newest the image has when not given).
pub fn hook(wanted: &[String], release: Option<&str>) -> anyhow::Result<Hook> {
    if wanted.is_empty() {
        anyhow::bail!(
            "element `kernel-modules`: param `modules` is empty; with kernel = \"image\" it lists what to keep of \
             the image's modules (names, or groups such as \"=drivers/net\")"
        );
    }
    let safe = |w: &String| w.chars().all(|c| c.is_ascii_alphanumeric() || "_-/=.".contains(c));
    if let Some(bad) = wanted.iter().find(|w| !safe(w)) {
        anyhow::bail!("element `kernel-modules`: `{bad}` is not a module name or a =directory group");
    }
    let (groups, names): (Vec<&String>, Vec<&String>) = wanted.iter().partition(|w| w.starts_with('='));
    let groups: Vec<String> =
        groups.iter().map(|g| g.trim_start_matches('=').trim_matches('/').to_string()).collect();
    let names: Vec<&str> = names.iter().map(|n| n.as_str()).collect();
    let release = release.unwrap_or("");
    let script = format!(
        r#"#!/bin/sh
# Keeps of the image's kernel modules only those listed (with what they need) and drops
# the rest; written by smelt's kernel-modules element (kernel = "image").
set -eu
work={IN_IMAGE}
rm -f "$work/{MISSING}"
rel='{release}'
names='{names}'
groups='{groups}'
[ -n "$rel" ] || rel=$(ls -1 /lib/modules | sort -V | tail -n 1)
dir=/lib/modules/$rel
if [ ! -f "$dir/modules.dep" ]; then
    echo "kernel-modules: no $dir/modules.dep: the image installs no kernel (kernel = \"image\")" >&2
    exit 1
fi
: > "$work/smelt-modules-keep"
keep() {{ modprobe -S "$rel" --show-depends "$1" 2>/dev/null | awk '$1 == "insmod" {{ print $2 }}' >> "$work/smelt-modules-keep"; }}
for m in $names; do
    if ! modprobe -S "$rel" --show-depends "$m" >/dev/null 2>&1; then
        echo "kernel-modules: module $m is not in $dir (built into the kernel, or misspelt)" >&2
        exit 1
    fi
    keep "$m"
done
for g in $groups; do
    g=${{g#kernel/}}
    if [ ! -d "$dir/kernel/$g" ]; then
        echo "=$g" >> "$work/{MISSING}"   # this kernel has none: said as a warning
        continue
    fi
    for f in $(find "$dir/kernel/$g" -name '*.ko*'); do
        m=${{f##*/}}
        keep "${{m%%.ko*}}"
    done
done
sort -u "$work/smelt-modules-keep" -o "$work/smelt-modules-keep"
find "$dir/kernel" -name '*.ko*' | sort > "$work/smelt-modules-all"
comm -23 "$work/smelt-modules-all" "$work/smelt-modules-keep" > "$work/{DROPPED}"
xargs -r rm -f < "$work/{DROPPED}"
find "$dir/kernel" -depth -type d -empty -delete
depmod -a "$rel"
mkdir -p /etc/modules-load.d
printf '# written by smelt'"'"'s kernel-modules element\n' > /etc/modules-load.d/smelt.conf
for m in $names; do echo "$m" >> /etc/modules-load.d/smelt.conf; done
"#,
        names = names.join(" "),
        groups = groups.join(" "),
    );
    Ok(Hook {
        phase: "finalise.d",
        name: HOOK.into(),
        element: "kernel-modules".into(),
        script: Source::Bytes(script.into_bytes().into()),
        harvest: Some(Arc::new(Dropped)),
    })
}

/// What the trim dropped, read back for the report, with the bytes the tree holds of
/// them before the removal is applied.
#[derive(Debug)]
struct Dropped;

impl Harvest for Dropped {
    fn before(&self, hook: &Hook, left: &Path, tree: &Tree, out: &mut Harvested) -> anyhow::Result<()> {
        if let Ok(missing) = std::fs::read_to_string(left.join(MISSING)) {
            let groups: Vec<&str> = missing.lines().collect();
            out.warnings.push(format!(
                "element `{}`: this kernel has no modules under {}; nothing kept for them",
                hook.element,
                groups.join(", ")
            ));
        }
        let Ok(text) = std::fs::read_to_string(left.join(DROPPED)) else { return Ok(()) };
        let paths: Vec<String> = text.lines().map(String::from).collect();
        let bytes = paths
            .iter()
            .filter_map(|p| ImagePath::new(p).ok().and_then(|p| tree.resolve_parents(&p).ok()))
            .filter_map(|p| tree.get(&p).map(|e| e.size()))
            .sum();
        out.notes.push(format!(
            "{}: dropped {} of the image's modules not listed ({}); report.json names them",
            hook.element,
            paths.len(),
            crate::config::size::human(bytes)
        ));
        out.trimmed.push(Trimmed {
            element: hook.element.clone(),
            rule: "modules of the image's kernel not listed in `modules`".into(),
            files: paths.len(),
            bytes,
            paths,
            kept: Vec::new(),
        });
        Ok(())
    }
}
