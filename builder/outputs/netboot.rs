//! The `netboot` output: `NAME.netboot/`, the tree a TFTP or HTTP server hands to the
//! client's nodes booting from the network, each found by its MAC as Cobbler finds its
//! systems. It holds the kernel and the initramfs once (with `--per-node`, each node's
//! own), the loaders users have — PXELINUX for BIOS, GRUB for UEFI, iPXE scripts, and
//! iPXE itself to chain-load from plain PXE firmware — with per-MAC configs, rendered
//! from `templates/netboot/`, that boot each node with `smelt.node=NAME` on its command
//! line and tell any other machine it is unknown (then booting its own disk, or the
//! image to find out what it is); the elements' `netboot/` files, their templates
//! rendered per node under `nodes/NODE/` (a kickstart, a preseed, an autoinstall
//! user-data); DHCP configs for dnsmasq and ISC dhcpd; and `netboot.json`, the index
//! `smelt serve` reads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};
use serde_json::{json, Value};

use super::loaders::{grub_efi, host_file, signed_loader, LDLINUX, MOK_MANAGER, SHIM};
use super::Outputs;
use crate::archive;
use crate::config::client::Client;
use crate::config::image::OutputKind;
use crate::config::image::SecureBoot;
use crate::element::FileKind;
use crate::io::source::Source;
use crate::path::ImagePath;
use crate::plan::Plan;
use crate::render::Templates;
use crate::tree::{Entry, Tree};

/// The tree's configs, each rendered once or per MAC.
const TEMPLATES: [(&str, &str); 7] = [
    ("pxelinux-default", include_str!("../../templates/netboot/pxelinux-default.tera")),
    ("pxelinux-node", include_str!("../../templates/netboot/pxelinux-node.tera")),
    ("grub.cfg", include_str!("../../templates/netboot/grub.cfg.tera")),
    ("boot.ipxe", include_str!("../../templates/netboot/boot.ipxe.tera")),
    ("node.ipxe", include_str!("../../templates/netboot/node.ipxe.tera")),
    ("dnsmasq.conf", include_str!("../../templates/netboot/dnsmasq.conf.tera")),
    ("dhcpd.conf", include_str!("../../templates/netboot/dhcpd.conf.tera")),
];

/// The kernel's name in the tree; initramfs files are `initrd.img`, or per node
/// `initrd-NODE.img`.
const KERNEL: &str = "vmlinuz";

/// What `netboot` needs for the build: `what` the errors name.
const WHAT: &str = "the netboot output";

/// GRUB modules the UEFI network loader carries: the network stack and its protocols,
/// Linux, and what its config uses.
const GRUB_MODULES: &[&str] = &[
    "normal",
    "configfile",
    "linux",
    "echo",
    "test",
    "sleep",
    "serial",
    "terminal",
    "efinet",
    "net",
    "tftp",
    "http",
    "gzio",
    "efi_gop",
    "all_video",
];

/// The distribution's signed GRUB for the network, which reads `grub/grub.cfg` from the
/// server it came from.
const SIGNED_GRUB_NET: (&str, &str) =
    ("/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed", "grub-efi-amd64-signed");

/// The loaders, found on the host (and GRUB's made by grub-mkimage) once per build.
pub struct Loaders {
    /// lpxelinux.0, which fetches by TFTP or HTTP, served as `pxelinux.0`.
    pxelinux: PathBuf,
    ldlinux: PathBuf,
    undionly: PathBuf,
    ipxe_efi: PathBuf,
    /// GRUB for UEFI, reading `grub/grub.cfg` from the server it was fetched from.
    grub: Source,
    /// With `secure-boot = "distribution"`: the UEFI firmware's loader is shim, which
    /// starts the signed GRUB as `grubx64.efi` (and MokManager as `mmx64.efi`).
    shim: Option<(PathBuf, PathBuf)>,
}

impl Loaders {
    pub fn find(work: &Path, secure_boot: SecureBoot) -> anyhow::Result<Loaders> {
        let signed = |loader| signed_loader(loader, WHAT);
        let (grub, shim) = match secure_boot {
            SecureBoot::Off => {
                (Source::Bytes(grub_efi("/grub", GRUB_MODULES, None, work, WHAT)?.into()), None)
            }
            SecureBoot::Distribution => {
                (Source::host(&signed(SIGNED_GRUB_NET)?), Some((signed(SHIM)?, signed(MOK_MANAGER)?)))
            }
        };
        Ok(Loaders {
            pxelinux: host_file(&["/usr/lib/PXELINUX/lpxelinux.0"], "pxelinux", WHAT)?,
            ldlinux: host_file(LDLINUX, "syslinux-common", WHAT)?,
            undionly: host_file(&["/usr/lib/ipxe/undionly.kpxe"], "ipxe", WHAT)?,
            ipxe_efi: host_file(&["/usr/lib/ipxe/ipxe.efi"], "ipxe", WHAT)?,
            grub,
            shim,
        })
    }
}

/// What a variant boots: one for all nodes (`node` is `None`) or one per node; its
/// initramfs, and its unified kernel image when the image has a `uki` output (served
/// as `NAME.efi`, or `nodes/NODE/NAME.efi`, to UEFI HTTP boot).
pub struct Boots<'a> {
    pub node: Option<&'a str>,
    pub initramfs: PathBuf,
    pub uki: Option<PathBuf>,
}

/// The netboot tree of a build, as records (written out by the `dir` writer).
pub fn tree(
    plan: &Plan,
    loaders: &Loaders,
    kernel: &Path,
    boots: &[Boots],
    mtime: i64,
) -> anyhow::Result<Tree> {
    let client = plan.client.as_ref().context("the netboot output needs --client CLIENT.toml")?;
    let mut tree = Files { tree: Tree::default(), mtime };
    let shared = tree.images(loaders, kernel, boots, &plan.image.name)?;
    let uki =
        boots.iter().find(|b| b.node.is_none() && b.uki.is_some()).map(|_| uki_name(&plan.image.name, None));
    let (base, node_views) = base_view(plan, client);
    let nodes = booted_nodes(plan, client, &node_views, &base, shared)?;
    let unknown = if client.netboot.unknown_boots_image {
        // Refused before the build when there is none (--per-node): see ops::build.
        anyhow::ensure!(shared, "[netboot] unknown = \"image\" needs the shared initramfs");
        unknown_boot(plan, &node_views, &base, "machines no node has ([netboot] unknown = \"image\")")?
    } else {
        Value::Null
    };
    let ctx = with(
        &base,
        &[
            ("unknown", unknown),
            ("nodes", Value::Array(nodes.clone())),
            ("kernel", json!(KERNEL)),
            ("fetch", fetch_prefixes(client.netboot.http.as_deref())),
            ("uki", json!(uki)),
        ],
    );
    tree.configs(client, &nodes, &ctx)?;
    tree.element_files(plan, client, &nodes, &ctx)?;
    let index = Index {
        client: client.name.clone(),
        image: plan.image.name.clone(),
        kernel: KERNEL.into(),
        nodes: client
            .nodes
            .iter()
            .map(|n| IndexNode {
                address: n.netboot_address,
                initrd: initrd_of(&n.name, shared),
                macs: n.macs().map(String::from).collect(),
                name: n.name.clone(),
            })
            .collect(),
    };
    let index = serde_json::to_string_pretty(&index).expect("JSON") + "\n";
    tree.put(INDEX, Source::Bytes(index.into_bytes().into()), "smelt")?;
    Ok(tree.tree)
}

/// What every template of the tree sees (`image`, `client`, `netboot`), and each node's
/// view.
fn base_view(plan: &Plan, client: &Client) -> (Value, Vec<Value>) {
    let (client_view, node_views) = crate::network::view(client);
    let base = json!({
        "image": { "name": plan.image.name, "cmdline": plan.image.cmdline },
        "client": client_view,
        "netboot": netboot_view(&client.netboot),
    });
    (base, node_views)
}

/// The command line a variant's unified kernel image carries (a signed UKI's cannot be
/// changed at boot): without a client, `cmdline` as it is; with one, rendered as the
/// netboot tree renders it — for a node's own image, for that node with
/// `smelt.node=NAME`; for the shared image, as machines no node has boot it, the
/// ramdisk finding its node by MAC.
pub fn uki_cmdline(plan: &Plan, node: Option<&str>) -> anyhow::Result<String> {
    let Some(client) = &plan.client else { return Ok(plan.image.cmdline.clone()) };
    let (base, node_views) = base_view(plan, client);
    let booted = match node {
        Some(name) => booted_nodes(plan, client, &node_views, &base, false)?
            .into_iter()
            .find(|n| n["name"] == name)
            .context("a per-node image for a node the client does not have")?,
        None => {
            unknown_boot(plan, &node_views, &base, "the shared unified kernel image (every node boots it)")?
        }
    };
    Ok(booted["cmdline"].as_str().unwrap_or_default().to_string())
}

/// Each node as the tree's templates see it: its view, with the command line it boots
/// with (`smelt.node=NAME` added), the initramfs it fetches and its DHCP address.
fn booted_nodes(
    plan: &Plan,
    client: &Client,
    node_views: &[Value],
    base: &Value,
    shared: bool,
) -> anyhow::Result<Vec<Value>> {
    let mut nodes = Vec::new();
    for (node, view) in client.nodes.iter().zip(node_views) {
        let name = &node.name;
        let ctx = with(base, &[("node", view.clone()), ("nodes", Value::Array(node_views.to_vec()))]);
        let cmdline = crate::render::render_str(&plan.image.cmdline, &ctx)
            .map_err(|e| anyhow!("{}: cmdline, rendered for node {name}: {e}", plan.image.file.display()))?;
        let initrd = initrd_of(name, shared);
        let mut view = view.clone();
        let extra = json!({
            "cmdline": format!("{} smelt.node={name}", cmdline.trim()).trim().to_string(),
            "initrd": initrd,
            "address": node.netboot_address,
        });
        view.as_object_mut().expect("a node is an object").extend(extra.as_object().expect("object").clone());
        nodes.push(view);
    }
    Ok(nodes)
}

/// Where a variant's unified kernel image is in the tree.
fn uki_name(image: &str, node: Option<&str>) -> String {
    match node {
        None => format!("{image}.efi"),
        Some(node) => format!("nodes/{node}/{image}.efi"),
    }
}

/// The initramfs file `node` boots: the shared one, or its own.
fn initrd_of(node: &str, shared: bool) -> String {
    if shared {
        "initrd.img".to_string()
    } else {
        format!("initrd-{node}.img")
    }
}

/// What a machine no node has boots with `[netboot] unknown = "image"`: the shared
/// initramfs, and the image's command line rendered with the client alone.
fn unknown_boot(plan: &Plan, node_views: &[Value], base: &Value, for_what: &str) -> anyhow::Result<Value> {
    let ctx = with(base, &[("nodes", Value::Array(node_views.to_vec()))]);
    let cmdline = crate::render::render_str(&plan.image.cmdline, &ctx).map_err(|e| {
        anyhow!(
            "{}: cmdline, rendered for {for_what}: {e}\n  \
             help: wrap what names a node in {{% if node %}}…{{% endif %}}",
            plan.image.file.display()
        )
    })?;
    Ok(json!({ "cmdline": cmdline.trim(), "initrd": "initrd.img" }))
}

/// The tree being made: each file once, dated `mtime`.
struct Files {
    tree: Tree,
    mtime: i64,
}

impl Files {
    fn put(&mut self, path: &str, source: Source, element: &str) -> anyhow::Result<()> {
        let size = source.byte_len().with_context(|| format!("reading {}", source.describe()))?;
        let at = ImagePath::new(path)?;
        if self.tree.get(&at).is_some() {
            anyhow::bail!("netboot: {path} is made twice (element `{element}`'s netboot/ holds it too)");
        }
        self.tree
            .insert(&at, Entry::file(source, size, 0o644, self.mtime, element))
            .map_err(|e| anyhow!("netboot {path}: {e}"))?;
        Ok(())
    }

    /// The loaders, the kernel and the initramfs files; returns whether there is a
    /// shared one (`initrd.img`) rather than only each node's.
    fn images(
        &mut self,
        loaders: &Loaders,
        kernel: &Path,
        boots: &[Boots],
        name: &str,
    ) -> anyhow::Result<bool> {
        self.put("pxelinux.0", Source::host(&loaders.pxelinux), "smelt")?;
        self.put("ldlinux.c32", Source::host(&loaders.ldlinux), "smelt")?;
        self.put("undionly.kpxe", Source::host(&loaders.undionly), "smelt")?;
        self.put("ipxe.efi", Source::host(&loaders.ipxe_efi), "smelt")?;
        match &loaders.shim {
            None => self.put("bootx64.efi", loaders.grub.clone(), "smelt")?,
            Some((shim, mok)) => {
                self.put("bootx64.efi", Source::host(shim), "smelt")?;
                self.put("grubx64.efi", loaders.grub.clone(), "smelt")?;
                self.put("mmx64.efi", Source::host(mok), "smelt")?;
            }
        }
        self.put(KERNEL, Source::host(kernel), "smelt")?;
        let shared = boots.iter().find(|b| b.node.is_none());
        if let Some(b) = shared {
            self.put("initrd.img", Source::host(&b.initramfs), "smelt")?;
        }
        for b in boots {
            if let Some(node) = b.node {
                self.put(&format!("initrd-{node}.img"), Source::host(&b.initramfs), "smelt")?;
            }
            if let Some(uki) = &b.uki {
                self.put(&uki_name(name, b.node), Source::host(uki), "smelt")?;
            }
        }
        Ok(shared.is_some())
    }

    /// The loaders' configs and the DHCP servers', once, and each node's per MAC.
    fn configs(&mut self, client: &Client, nodes: &[Value], ctx: &Value) -> anyhow::Result<()> {
        let templates = Templates::new(TEMPLATES).map_err(|e| anyhow!("templates/netboot/{e}"))?;
        let render = |name: &str, ctx: &Value| -> anyhow::Result<Source> {
            let text = templates.render(name, ctx).map_err(|e| anyhow!("templates/netboot/{name}: {e}"))?;
            Ok(Source::Bytes(text.into_bytes().into()))
        };
        self.put("pxelinux.cfg/default", render("pxelinux-default", ctx)?, "smelt")?;
        self.put("grub/grub.cfg", render("grub.cfg", ctx)?, "smelt")?;
        self.put("boot.ipxe", render("boot.ipxe", ctx)?, "smelt")?;
        self.put("dnsmasq.conf", render("dnsmasq.conf", ctx)?, "smelt")?;
        self.put("dhcpd.conf", render("dhcpd.conf", ctx)?, "smelt")?;
        for (node, view) in client.nodes.iter().zip(nodes) {
            let ctx = with(ctx, &[("node", view.clone())]);
            for mac in node.macs() {
                let hyphens = mac.replace(':', "-");
                self.put(&format!("pxelinux.cfg/01-{hyphens}"), render("pxelinux-node", &ctx)?, "smelt")?;
                self.put(&format!("ipxe/{hyphens}.ipxe"), render("node.ipxe", &ctx)?, "smelt")?;
            }
        }
        Ok(())
    }

    /// The elements' `netboot/` files: templates rendered per node under
    /// `nodes/NODE/`, the rest once.
    fn element_files(
        &mut self,
        plan: &Plan,
        client: &Client,
        nodes: &[Value],
        ctx: &Value,
    ) -> anyhow::Result<()> {
        for e in &plan.resolved.elements {
            for (rel, f) in e.files_under("netboot") {
                let FileKind::File(src) = &f.kind else { continue };
                let Some(out) = rel.strip_suffix(".tera") else {
                    self.put(rel, src.clone(), &e.name)?;
                    continue;
                };
                let text = String::from_utf8(src.read_all()?)
                    .map_err(|_| anyhow!("element `{}`: netboot/{rel} is not UTF-8", e.name))?;
                for (node, view) in client.nodes.iter().zip(nodes) {
                    let name = &node.name;
                    let ctx = with(ctx, &[("node", view.clone())]);
                    let rendered = crate::render::render_str(&text, &ctx).map_err(|er| {
                        anyhow!("element `{}`: template netboot/{rel} for node {name}: {er}", e.name)
                    })?;
                    let source = Source::Bytes(rendered.into_bytes().into());
                    self.put(&format!("nodes/{name}/{out}"), source, &e.name)?;
                }
            }
        }
        Ok(())
    }
}

impl Outputs<'_> {
    /// `NAME.netboot/`: the loaders, the kernel, every variant's initramfs and the
    /// per-MAC configs that boot each node with its own.
    pub(super) fn netboot(&mut self, boots: &[Boots]) -> anyhow::Result<()> {
        let Some(kernel) = &self.kernel else {
            bail!(
                "output `netboot` needs a kernel: set kernel = \"auto\", \"image\" or a vmlinuz path in [image]"
            );
        };
        let (plan, work) = (self.plan, self.work);
        let tree = self.ui.step("netboot tree", || {
            let loaders = Loaders::find(work, plan.image.secure_boot)?;
            tree(plan, &loaders, kernel, boots, plan.time)
        })?;
        let dest = self.outdir.join(format!("{}.netboot", plan.image.name));
        let (out, _) = self.ui.step("netboot", || archive::dir(&[&tree], &dest))?;
        self.record(OutputKind::Netboot, out);
        Ok(())
    }
}

/// The tree's index: its image, client, and each node's MACs, address and initramfs.
pub const INDEX: &str = "netboot.json";

/// `[netboot]` as templates see it: its parts as text, the subnet also as network and
/// netmask, and `url`, where a node fetches files of the tree from (the HTTP URL, else
/// TFTP from the server, else nothing known).
fn netboot_view(n: &crate::config::client::Netboot) -> Value {
    let url = match (&n.http, n.server) {
        (Some(http), _) => http.clone(),
        (None, Some(server)) => format!("tftp://{server}/"),
        (None, None) => String::new(),
    };
    json!({
        "server": n.server,
        "subnet": n.subnet.map(|s| s.to_string()),
        "network": n.subnet.map(|s| s.network().to_string()),
        "netmask": n.subnet.map(|s| s.netmask().to_string()),
        "range": n.range.map(|(a, b)| [a, b]),
        "router": n.router,
        "http": n.http,
        "url": url,
    })
}

/// What each loader puts before a file of the tree to fetch it: over HTTP when the tree
/// is served there, else from where the loader itself came (TFTP, or HTTP for an iPXE
/// that fetched its script so), relative to its config.
fn fetch_prefixes(http: Option<&str>) -> Value {
    match http {
        Some(url) => {
            // GRUB names an HTTP server as a device: (http,HOST:PORT)/PATH.
            let rest = url.trim_start_matches("http://");
            let (host, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
            json!({ "pxelinux": url, "ipxe": url, "ipxe_root": url, "grub": format!("(http,{host})/{path}") })
        }
        // iPXE's node scripts sit in ipxe/, boot.ipxe at the root.
        None => json!({ "pxelinux": "", "ipxe": "../", "ipxe_root": "", "grub": "/" }),
    }
}

/// `base` (an object) with `pairs` added or replaced.
fn with(base: &Value, pairs: &[(&str, Value)]) -> Value {
    let mut v = base.clone();
    let map = v.as_object_mut().expect("an object");
    for (k, val) in pairs {
        map.insert(k.to_string(), val.clone());
    }
    v
}

/// `netboot.json`, the tree's index (keys in the order they have always been written).
#[derive(serde::Serialize, serde::Deserialize)]
struct Index {
    client: String,
    image: String,
    kernel: String,
    nodes: Vec<IndexNode>,
}

/// A node as the index lists it: its DHCP address, initramfs, MACs and name.
#[derive(serde::Serialize, serde::Deserialize)]
struct IndexNode {
    address: Option<std::net::Ipv4Addr>,
    initrd: String,
    macs: Vec<String>,
    name: String,
}

/// Which node a request of the tree is for, by the path asked for (its initramfs,
/// its configs, its `nodes/NODE/` files) or the client's address: for `smelt serve`.
pub struct Nodes {
    by_path: BTreeMap<String, String>,
    by_address: BTreeMap<String, String>,
}

impl Nodes {
    /// Read from the tree's index; empty when there is none.
    pub fn read(root: &Path) -> Nodes {
        let mut nodes = Nodes { by_path: BTreeMap::new(), by_address: BTreeMap::new() };
        let Ok(text) = std::fs::read_to_string(root.join(INDEX)) else { return nodes };
        let Ok(index) = serde_json::from_str::<Index>(&text) else { return nodes };
        for n in index.nodes {
            let name = n.name;
            if let Some(addr) = n.address {
                nodes.by_address.insert(addr.to_string(), name.clone());
            }
            if n.initrd != "initrd.img" {
                nodes.by_path.insert(n.initrd, name.clone());
            }
            for mac in n.macs {
                let h = mac.replace(':', "-");
                nodes.by_path.insert(format!("pxelinux.cfg/01-{h}"), name.clone());
                nodes.by_path.insert(format!("ipxe/{h}.ipxe"), name.clone());
            }
            nodes.by_path.insert(format!("nodes/{name}/"), name);
        }
        nodes
    }

    /// The node a request from `address` for `path` (relative to the tree) is for.
    pub fn which(&self, path: &str, address: &str) -> Option<&str> {
        let under = path.split_once('/').map(|(d, rest)| (d, rest.split('/').next().unwrap_or("")));
        let dir_key = under.filter(|(d, _)| *d == "nodes").map(|(_, n)| format!("nodes/{n}/"));
        self.by_path
            .get(path)
            .or_else(|| dir_key.and_then(|k| self.by_path.get(&k)))
            .or_else(|| self.by_address.get(address))
            .map(String::as_str)
    }
}
