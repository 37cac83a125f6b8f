//! `kernel-modules`: the requested modules of one kernel release with their whole
//! dependency closure (`modules.dep` and softdeps), trimmed `modules.dep`,
//! `modules.alias` and `modules.softdep`, and `/etc/modules-load.d/smelt.conf` so the
//! image's init loads them. Dracut-style groups (`=drivers/net`) bring every module
//! under a directory of the release, loaded by `module-autoload` for the hardware
//! found. A driver whose bus needs a transport that is a module left out (virtio
//! without `virtio_pci`, USB without a host controller) is warned about: its devices
//! would never appear.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use super::{given, BuiltIn, Context, Planning};
use crate::config::source::suggest;
use crate::element::hooks::Hook;
use crate::io::source::Source;
use crate::kernel;
use crate::path::ImagePath;
use crate::tree::{Entry, Tree};

mod trim;

#[derive(serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct KernelModules {
    modules: Vec<String>,
    kernel_release: Option<String>,
    firmware: Vec<String>,
}

impl BuiltIn for KernelModules {
    /// The listed modules of the host's kernel; with the image's own kernel, its
    /// modules are trimmed by a hook instead ([`trim`]).
    fn stage(&self, tree: &mut Tree, cx: &mut Context) -> anyhow::Result<usize> {
        let release = match cx.kernel {
            Some(kernel::Planned::Image) => return Ok(0),
            Some(kernel::Planned::Host { release, .. }) => release.clone(),
            None => None,
        };
        let autoload = cx.elements.get("module-autoload").is_some();
        self.copy(tree, cx.element, release, autoload, cx.mtime)
    }

    fn hooks(&self, cx: &Planning) -> anyhow::Result<Vec<Hook>> {
        match cx.kernel {
            Some(kernel::Planned::Image) => Ok(vec![trim::hook(&self.modules, given(&self.kernel_release))?]),
            _ => Ok(Vec::new()),
        }
    }
}

impl KernelModules {
    /// Adds the listed modules of one release (`image_release`, the image's kernel's, when
    /// it has one) with their closure, trimmed module tables, and firmware.
    fn copy(
        &self,
        tree: &mut Tree,
        element: &str,
        image_release: Option<String>,
        autoload: bool,
        mtime: i64,
    ) -> anyhow::Result<usize> {
        if self.modules.is_empty() {
            bail!("element `{element}`: param `modules` is empty; list the modules to load, e.g. modules = [\"virtio_net\"]");
        }
        let release = match given(&self.kernel_release) {
            Some(r) => r.to_string(),
            None => image_release.map_or_else(newest_release, Ok)?,
        };
        let modules = Release::read(element, &release)?;
        let (groups, names): (Vec<&String>, Vec<&String>) =
            self.modules.iter().partition(|w| w.starts_with('='));
        if !groups.is_empty() && !autoload {
            crate::ui::warning(&format!(
                "element `{element}`: the modules of {} are loaded by nothing at boot: add the module-autoload \
                 element (it loads what the hardware asks for), or name the modules to load",
                groups.iter().map(|g| g.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
        let chosen = modules.closure(element, &groups, &names)?;
        let mut put = Put { tree, element, mtime, count: 0 };
        let renamed = modules.copy(&mut put, &chosen)?;
        modules.tables(&mut put, &chosen, &renamed)?;
        put.count += firmware(put.tree, element, &self.firmware, Path::new("/lib/firmware"))?;
        let load: String = names.iter().map(|w| format!("{w}\n")).collect();
        put.text("etc/modules-load.d/smelt.conf", format!("# written by smelt's {element} element\n{load}"))?;
        Ok(put.count)
    }
}

/// Entries going into the tree for the element, counted.
struct Put<'t> {
    tree: &'t mut Tree,
    element: &'t str,
    mtime: i64,
    count: usize,
}

impl Put<'_> {
    fn text(&mut self, rel: &str, text: String) -> anyhow::Result<()> {
        let at = ImagePath::new(rel)?;
        self.tree.insert(&at, Entry::bytes(text.into_bytes(), 0o644, self.mtime, self.element))?;
        self.count += 1;
        Ok(())
    }
}

/// One kernel release's modules on the host, as `modules.dep` and `modules.softdep`
/// describe them.
struct Release {
    release: String,
    root: PathBuf,
    /// Module path (relative to `root`) → the paths it needs.
    deps: BTreeMap<String, Vec<String>>,
    /// Module name → the names loaded with it.
    softdeps: BTreeMap<String, Vec<String>>,
}

impl Release {
    /// A file of the release on the host, read through the lock (the bundle's copy
    /// when rebuilding from one).
    fn host(&self, rel: &str) -> PathBuf {
        crate::lock::read(&self.root.join(rel))
    }

    fn read(element: &str, release: &str) -> anyhow::Result<Release> {
        let root = Path::new("/lib/modules").join(release);
        let host = |name: &str| crate::lock::read(&root.join(name));
        let dep_text = std::fs::read_to_string(host("modules.dep")).with_context(|| {
            format!(
                "element `{element}`: reading {}/modules.dep; is the kernel package for {release} installed?",
                root.display()
            )
        })?;
        let softdeps =
            std::fs::read_to_string(host("modules.softdep")).map(|t| parse_softdep(&t)).unwrap_or_default();
        Ok(Release { release: release.to_string(), deps: parse_dep(&dep_text), softdeps, root })
    }

    /// The paths of the modules `names` and `groups` (`=drivers/net`: every module
    /// below) ask for, with their hard dependencies and the softdeps this release has.
    fn closure(
        &self,
        element: &str,
        groups: &[&String],
        names: &[&String],
    ) -> anyhow::Result<BTreeSet<&String>> {
        let by_name: BTreeMap<String, &String> = self.deps.keys().map(|p| (module_name(p), p)).collect();
        let mut queue: Vec<String> = Vec::new();
        for group in groups {
            let dir = format!(
                "kernel/{}/",
                group.trim_start_matches('=').trim_matches('/').trim_start_matches("kernel/")
            );
            let before = queue.len();
            queue.extend(self.deps.keys().filter(|p| p.starts_with(&dir)).map(|p| module_name(p)));
            if queue.len() == before {
                bail!(
                    "element `{element}`: module group `{group}` holds no modules: there is no {}/{dir} with modules in it",
                    self.root.display()
                );
            }
        }
        for w in names {
            let name = w.replace('-', "_");
            if !by_name.contains_key(&name) {
                let hint = suggest(&name, by_name.keys().map(String::as_str))
                    .map_or(String::new(), |s| format!("; did you mean `{s}`?"));
                bail!(
                    "element `{element}`: module `{w}` is not in {}/modules.dep (built into the kernel, or misspelt){hint}",
                    self.root.display()
                );
            }
            queue.push(name);
        }
        let mut chosen = BTreeSet::new();
        while let Some(name) = queue.pop() {
            let Some(path) = by_name.get(&name) else { continue };
            if !chosen.insert(*path) {
                continue;
            }
            queue.extend(self.deps[*path].iter().map(|d| module_name(d)));
            queue.extend(self.softdeps.get(&name).into_iter().flatten().cloned());
        }
        Ok(chosen)
    }

    /// Copies each chosen module, decompressing zstd (busybox insmod reads .ko, .ko.gz
    /// and .ko.xz, not .ko.zst); returns each one's path in the image.
    fn copy<'m>(
        &self,
        put: &mut Put,
        chosen: &BTreeSet<&'m String>,
    ) -> anyhow::Result<BTreeMap<&'m String, String>> {
        let mut renamed = BTreeMap::new();
        for path in chosen {
            let host = self.host(path);
            let (image_rel, source) = match path.strip_suffix(".zst") {
                Some(plain) => (plain.to_string(), Source::Bytes(unzstd(&host)?.into())),
                None => (path.to_string(), Source::host(&host)),
            };
            let size = source.byte_len().with_context(|| format!("reading {}", host.display()))?;
            let at = ImagePath::new(&format!("lib/modules/{}/{image_rel}", self.release))?;
            put.tree.insert(&at, Entry::file(source, size, 0o644, put.mtime, put.element))?;
            renamed.insert(*path, image_rel);
            put.count += 1;
        }
        Ok(renamed)
    }

    /// `modules.dep`, `modules.alias`, `modules.softdep` (and `modules.builtin`) of
    /// what the image holds; warns of a bus whose transport is left out.
    fn tables(
        &self,
        put: &mut Put,
        chosen: &BTreeSet<&String>,
        renamed: &BTreeMap<&String, String>,
    ) -> anyhow::Result<()> {
        let mut dep_out = String::new();
        for path in chosen {
            let ds: Vec<&str> =
                self.deps[*path].iter().filter_map(|d| renamed.get(d).map(String::as_str)).collect();
            dep_out.push_str(&format!(
                "{}:{}{}\n",
                renamed[path],
                if ds.is_empty() { "" } else { " " },
                ds.join(" ")
            ));
        }
        let names: BTreeSet<String> = chosen.iter().map(|p| module_name(p)).collect();
        let aliases = std::fs::read_to_string(self.host("modules.alias")).unwrap_or_default();
        let builtin = std::fs::read_to_string(self.host("modules.builtin")).unwrap_or_default();
        let builtin_names: BTreeSet<String> = builtin.lines().map(module_name).collect();
        for missing in missing_transports(&names, &aliases, &builtin_names) {
            crate::ui::warning(&format!("element `{}`: {missing}", put.element));
        }
        let of_names = |text: &str, field: usize| -> String {
            text.lines()
                .filter(|l| {
                    l.split_whitespace().nth(field).is_some_and(|m| names.contains(&m.replace('-', "_")))
                })
                .map(|l| format!("{l}\n"))
                .collect()
        };
        let softdeps = std::fs::read_to_string(self.host("modules.softdep")).unwrap_or_default();
        let dir = format!("lib/modules/{}", self.release);
        put.text(&format!("{dir}/modules.dep"), dep_out)?;
        put.text(&format!("{dir}/modules.alias"), of_names(&aliases, 2))?;
        put.text(&format!("{dir}/modules.softdep"), of_names(&softdeps, 1))?;
        if !builtin.is_empty() {
            put.text(&format!("{dir}/modules.builtin"), builtin)?;
        }
        Ok(())
    }
}

/// The buses whose devices appear only through a transport or host controller, and the
/// modules that provide one.
const TRANSPORTS: [(&str, &str, &[&str]); 2] = [
    ("virtio", "its transport", &["virtio_pci", "virtio_mmio"]),
    (
        "usb",
        "a USB host controller driver",
        &["xhci_pci", "ehci_pci", "ohci_pci", "uhci_hcd", "xhci_plat_hcd"],
    ),
];

/// For each bus some chosen module drives (its `modules.alias` patterns start `bus:`)
/// whose transport is neither among `chosen` nor built into the kernel: what to add.
fn missing_transports(chosen: &BTreeSet<String>, aliases: &str, builtin: &BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    for (bus, what, providers) in TRANSPORTS {
        if providers.iter().any(|p| chosen.contains(*p) || builtin.contains(*p)) {
            continue;
        }
        let prefix = format!("{bus}:");
        let drivers: BTreeSet<&str> = aliases
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace().skip(1);
                let (pattern, module) = (f.next()?, f.next()?);
                let module = chosen.get(&module.replace('-', "_"))?;
                pattern.starts_with(&prefix).then_some(module.as_str())
            })
            .collect();
        if drivers.is_empty() {
            continue;
        }
        let list: Vec<&str> = drivers.into_iter().collect();
        out.push(format!(
            "{} drive{} devices on the {bus} bus, but {what} is not in the image: add \"{}\" to modules, \
             or those devices will never appear",
            list.join(", "),
            if list.len() == 1 { "s" } else { "" },
            providers[0]
        ));
    }
    out
}

/// Firmware only from the allow-list `patterns` (the `firmware` param): paths or globs
/// under the host's firmware directory, copied by reference to `lib/firmware/` (its
/// bytes are this element's in the report; `[path."lib/firmware"]` budgets them).
fn firmware(tree: &mut Tree, element: &str, patterns: &[String], host_dir: &Path) -> anyhow::Result<usize> {
    let mut count = 0;
    let listed = crate::lock::listing(host_dir);
    for pattern in patterns {
        let rel = pattern.trim_start_matches('/').trim_start_matches("lib/firmware/").to_string();
        let matcher = globset::Glob::new(&rel)
            .map_err(|e| anyhow::anyhow!("element `{element}`: firmware `{pattern}`: {e}"))?
            .compile_matcher();
        let mut found = 0;
        for e in walkdir::WalkDir::new(&listed).min_depth(1).sort_by_file_name().into_iter().flatten() {
            let Ok(r) = e.path().strip_prefix(&listed) else { continue };
            let r = r.to_string_lossy();
            if e.file_type().is_dir() || !matcher.is_match(r.as_ref()) {
                continue;
            }
            let at = ImagePath::new(&format!("lib/firmware/{r}"))?;
            let path = crate::lock::read(&host_dir.join(r.as_ref()));
            let entry = crate::tree::disk::host_entry(&path, &path.symlink_metadata()?, element)?.as_root();
            tree.insert(&at, entry)?;
            found += 1;
        }
        if found == 0 {
            bail!(
                "element `{element}`: firmware `{pattern}` matches nothing under {}; install the firmware package or fix the path",
                host_dir.display()
            );
        }
        count += found;
    }
    Ok(count)
}

fn newest_release() -> anyhow::Result<String> {
    let mut releases: Vec<(Vec<u64>, String)> =
        std::fs::read_dir(crate::lock::listing(Path::new("/lib/modules")))
            .context("no /lib/modules on this host; set kernel-modules.kernel-release or the image's kernel")?
            .flatten()
            .filter(|e| e.path().join("modules.dep").exists())
            .map(|e| {
                let r = e.file_name().to_string_lossy().into_owned();
                (r.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect(), r)
            })
            .collect();
    releases.sort();
    releases
        .pop()
        .map(|(_, r)| r)
        .context("no kernel release with a modules.dep under /lib/modules; install a kernel package")
}

/// `modules.dep`: `path: dep dep …`, paths relative to the release's directory.
fn parse_dep(text: &str) -> BTreeMap<String, Vec<String>> {
    text.lines()
        .filter_map(|l| {
            let (module, deps) = l.split_once(':')?;
            Some((module.trim().to_string(), deps.split_whitespace().map(String::from).collect()))
        })
        .collect()
}

/// `modules.softdep`: `softdep NAME pre: A B post: C`; both lists are loaded with it.
fn parse_softdep(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("softdep ")) {
        let mut words = line.split_whitespace().skip(1);
        let Some(name) = words.next() else { continue };
        let list = out.entry(name.replace('-', "_")).or_default();
        list.extend(words.filter(|w| !w.ends_with(':')).map(|w| w.replace('-', "_")));
    }
    out
}

/// `kernel/drivers/net/virtio_net.ko.zst` → `virtio_net` (modprobe treats - and _ alike).
fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.split(".ko").next().unwrap_or(file).replace('-', "_")
}

fn unzstd(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    zstd::stream::read::Decoder::new(std::fs::File::open(path)?)?
        .read_to_end(&mut out)
        .with_context(|| format!("decompressing {}", path.display()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firmware_comes_only_from_the_allow_list() {
        let host = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(host.path().join("bnx2x")).unwrap();
        std::fs::write(host.path().join("bnx2x/a.fw"), b"aaaa").unwrap();
        std::fs::write(host.path().join("bnx2x/b.fw"), b"bb").unwrap();
        std::fs::write(host.path().join("other.bin"), b"x").unwrap();
        let mut tree = Tree::default();
        let patterns = ["bnx2x/*.fw".to_string()];
        assert_eq!(firmware(&mut tree, "kernel-modules", &patterns, host.path()).unwrap(), 2);
        let paths: Vec<&str> = tree.iter().filter(|(_, e)| e.size() > 0).map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["lib/firmware/bnx2x/a.fw", "lib/firmware/bnx2x/b.fw"]);
        let missing = ["nope/*".to_string()];
        let e = firmware(&mut tree, "kernel-modules", &missing, host.path()).unwrap_err().to_string();
        assert!(e.starts_with("element `kernel-modules`: firmware `nope/*` matches nothing under "), "{e}");
    }

    #[test]
    fn a_bus_without_its_transport_is_named() {
        let aliases = "alias virtio:d00000001v* virtio_net\nalias pci:v00001AF4d* virtio_pci\n\
                       alias usb:v0B95p1790d* ax88179_178a\nalias pci:v*d*sv*sd*bc0Csc03i30* xhci_pci\n";
        let set = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
        let none = set(&[]);
        assert_eq!(
            missing_transports(&set(&["virtio_net", "net_failover"]), aliases, &none),
            ["virtio_net drives devices on the virtio bus, but its transport is not in the image: \
              add \"virtio_pci\" to modules, or those devices will never appear"]
        );
        assert!(missing_transports(&set(&["virtio_net", "virtio_pci"]), aliases, &none).is_empty());
        assert!(missing_transports(&set(&["virtio_net"]), aliases, &set(&["virtio_pci"])).is_empty());
        let usb = missing_transports(&set(&["ax88179_178a"]), aliases, &none);
        assert!(
            usb[0].starts_with(
                "ax88179_178a drives devices on the usb bus, but a USB host controller driver is"
            ),
            "{usb:?}"
        );
    }

    #[test]
    fn names_and_softdeps() {
        assert_eq!(module_name("kernel/drivers/net/virtio_net.ko.zst"), "virtio_net");
        assert_eq!(module_name("kernel/fs/nls/nls-cp437.ko"), "nls_cp437");
        let s = parse_softdep("# c\nsoftdep nfsd pre: crypto-md5 post: x\n");
        assert_eq!(s["nfsd"], vec!["crypto_md5", "x"]);
    }
}
