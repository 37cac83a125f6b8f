//! Per-node networking: the client inventory as templates see it, the map the ramdisk
//! uses to find its node at boot, and the `network` element's rendering of every
//! renderer's templates for every node into `/etc/smelt/network/NODE/RENDERER/`.

use std::net::IpAddr;
use std::path::Path;

use anyhow::{anyhow, Context as _};
use include_dir::{include_dir, Dir};
use ipnet::IpNet;
use serde_json::{json, Value};

use crate::config::client::{Client, Interface, Kind, Node};
use crate::path::ImagePath;
use crate::render::{per_item, Templates};
use crate::tree::{Entry, Tree};

/// The renderers' templates: `templates/network/RENDERER/FILE.tera`.
static TEMPLATES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/templates/network");

/// Every renderer the `network` element knows.
pub const RENDERERS: [&str; 8] = [
    "networkd",
    "nm-keyfile",
    "ifupdown",
    "ifcfg-rh",
    "ifcfg-suse",
    "netplan",
    "network-data-json",
    "ramdisk",
];

/// Where each node's rendered configs go in the image.
pub const NETWORK_DIR: &str = "etc/smelt/network";

/// The client and its nodes as templates see them (`client`, `nodes`, `node`): every
/// address also split into ip, prefix and netmask, interfaces also grouped by kind. The
/// nodes are in the client's order. Only templates read this view; Rust code reads the
/// checked [`Client`].
pub fn view(client: &Client) -> (Value, Vec<Value>) {
    let c = json!({
        "name": client.name,
        "domain": client.domain,
        "timezone": client.timezone,
        "dns": client.dns,
        "search": client.search,
        "ntp": client.ntp,
        "check_in": client.check_in,
    });
    let nodes = client.nodes.iter().map(|n| node_view(n, client)).collect();
    (c, nodes)
}

fn node_view(n: &Node, client: &Client) -> Value {
    let interfaces: Vec<Value> = n.interfaces.iter().map(|i| iface_view(i, &n.name)).collect();
    let of =
        |kind: &str| -> Vec<Value> { interfaces.iter().filter(|i| i["kind"] == kind).cloned().collect() };
    let dns = dns(n, client);
    let fqdn = fqdn(n, client);
    json!({
        "name": n.name,
        "hostname": n.hostname,
        "fqdn": fqdn,
        "serial": n.serial,
        "domain": client.domain,
        "timezone": client.timezone,
        "dns": dns,
        "dns4": dns.iter().filter(|d| d.is_ipv4()).collect::<Vec<_>>(),
        "dns6": dns.iter().filter(|d| d.is_ipv6()).collect::<Vec<_>>(),
        "search": if client.search.is_empty() { client.domain.iter().cloned().collect() } else { client.search.clone() },
        "ntp": client.ntp,
        "ssh_keys": client.ssh_keys.iter().chain(&n.ssh_keys).collect::<Vec<_>>(),
        "netboot_address": n.netboot_address,
        "macs": n.macs().collect::<Vec<_>>(),
        "links": of("link"),
        "bonds": of("bond"),
        "vlans": of("vlan"),
        "network_data_json": network_data_json(n, client),
        "interfaces": interfaces,
    })
}

/// The node's DNS servers: its own, else the client's.
pub fn dns<'a>(n: &'a Node, client: &'a Client) -> &'a [IpAddr] {
    if n.dns.is_empty() {
        &client.dns
    } else {
        &n.dns
    }
}

/// The node's fully qualified name: its host name in the client's domain.
pub fn fqdn(n: &Node, client: &Client) -> String {
    match &client.domain {
        Some(d) => format!("{}.{d}", n.hostname),
        None => n.hostname.clone(),
    }
}

/// A stable UUID for a node's interface (NetworkManager needs one per connection): the
/// same inventory gives the same UUIDs on every build.
pub fn uuid(node: &str, iface: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(format!("smelt:{node}:{iface}").as_bytes());
    let mut b: [u8; 16] = h[..16].try_into().expect("16 bytes");
    b[6] = (b[6] & 0x0f) | 0x50; // version 5 style: name-based
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

fn iface_view(i: &Interface, node: &str) -> Value {
    let addr = |n: &IpNet| {
        json!({
            "cidr": n.to_string(),
            "ip": n.addr().to_string(),
            "prefix": n.prefix_len(),
            "netmask": n.netmask().to_string(),
            "network": n.trunc().to_string(),
            "family": if n.addr().is_ipv4() { 4 } else { 6 },
        })
    };
    let addresses: Vec<Value> = i.addresses.iter().map(addr).collect();
    let routes: Vec<Value> = i
        .routes
        .iter()
        .map(|r| {
            let family = match (r.to, r.via) {
                (Some(n), _) => {
                    if n.addr().is_ipv4() {
                        4
                    } else {
                        6
                    }
                }
                (None, Some(v)) => {
                    if v.is_ipv4() {
                        4
                    } else {
                        6
                    }
                }
                (None, None) => 4,
            };
            json!({
                "to": r.to.map_or("default".to_string(), |n| n.to_string()),
                "to_ip": r.to.map(|n| n.addr().to_string()),
                "to_netmask": r.to.map(|n| n.netmask().to_string()),
                "to_prefix": r.to.map(|n| n.prefix_len()),
                "via": r.via,
                "metric": r.metric,
                "family": family,
            })
        })
        .collect();
    let mut v = json!({
        "name": i.name,
        "uuid": uuid(node, &i.name),
        "mtu": i.mtu,
        "master": i.master,
        "addresses": addresses,
        "addresses4": addresses.iter().filter(|a| a["family"] == 4).cloned().collect::<Vec<_>>(),
        "addresses6": addresses.iter().filter(|a| a["family"] == 6).cloned().collect::<Vec<_>>(),
        "gateway4": i.gateway4,
        "gateway6": i.gateway6,
        "dhcp": i.dhcp,
        "routes4": routes.iter().filter(|r| r["family"] == 4).cloned().collect::<Vec<_>>(),
        "routes6": routes.iter().filter(|r| r["family"] == 6).cloned().collect::<Vec<_>>(),
        "routes": routes,
        "configured": i.dhcp || !i.addresses.is_empty(),
    });
    let extra = match &i.kind {
        Kind::Link { mac } => json!({ "kind": "link", "mac": mac }),
        Kind::Bond { members, mode, miimon, updelay, downdelay, primary, lacp_rate, xmit_hash_policy } => {
            json!({
                "kind": "bond", "members": members, "mode": mode, "miimon": miimon, "updelay": updelay,
                "downdelay": downdelay, "primary": primary, "lacp_rate": lacp_rate, "xmit_hash_policy": xmit_hash_policy,
            })
        }
        Kind::Vlan { parent, id } => json!({ "kind": "vlan", "parent": parent, "id": id }),
    };
    v.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
    v
}

/// OpenStack's `network_data.json` for one node, as config drives carry it and
/// templates see it (`node.network_data_json`).
pub fn network_data_json(n: &Node, client: &Client) -> String {
    serde_json::to_string_pretty(&network_data(n, dns(n, client))).expect("JSON")
}

/// OpenStack's `network_data.json` for one node (links, networks, services), as
/// cloud-init and Ironic read it.
fn network_data(n: &Node, dns: &[IpAddr]) -> Value {
    let mut links = Vec::new();
    let mut networks = Vec::new();
    for i in &n.interfaces {
        let mut link = match &i.kind {
            Kind::Link { mac } => json!({ "id": i.name, "type": "phy", "ethernet_mac_address": mac }),
            Kind::Bond { members, mode, miimon, xmit_hash_policy, .. } => {
                let mac = first_member_mac(n, members);
                json!({
                    "id": i.name, "type": "bond", "bond_links": members, "bond_mode": mode,
                    "bond_miimon": miimon, "bond_xmit_hash_policy": xmit_hash_policy, "ethernet_mac_address": mac,
                })
            }
            Kind::Vlan { parent, id } => {
                let mac = n.interfaces.iter().find(|p| &p.name == parent).and_then(|p| match &p.kind {
                    Kind::Link { mac } => Some(mac.clone()),
                    Kind::Bond { members, .. } => first_member_mac(n, members),
                    _ => None,
                });
                json!({ "id": i.name, "type": "vlan", "vlan_link": parent, "vlan_id": id, "vlan_mac_address": mac })
            }
        };
        if let Some(mtu) = i.mtu {
            link["mtu"] = json!(mtu);
        }
        links.push(link);
        for (k, a) in i.addresses.iter().enumerate() {
            let v6 = a.addr().is_ipv6();
            let gateway = if v6 { i.gateway6 } else { i.gateway4 };
            let mut routes: Vec<Value> = i
                .routes
                .iter()
                .filter(|r| r.via.is_some_and(|v| v.is_ipv6() == v6))
                .map(|r| {
                    let (network, netmask) = match r.to {
                        Some(to) => (to.addr().to_string(), to.netmask().to_string()),
                        None => (
                            if v6 { "::" } else { "0.0.0.0" }.to_string(),
                            if v6 { "::" } else { "0.0.0.0" }.to_string(),
                        ),
                    };
                    json!({ "network": network, "netmask": netmask, "gateway": r.via })
                })
                .collect();
            if let Some(g) = gateway {
                let any = if v6 { "::" } else { "0.0.0.0" };
                routes.insert(0, json!({ "network": any, "netmask": any, "gateway": g }));
            }
            networks.push(json!({
                "id": format!("{}-{k}", i.name),
                "type": if v6 { "ipv6" } else { "ipv4" },
                "link": i.name,
                "ip_address": a.addr().to_string(),
                "netmask": a.netmask().to_string(),
                "routes": routes,
            }));
        }
        if i.dhcp {
            networks.push(json!({ "id": format!("{}-dhcp", i.name), "type": "ipv4_dhcp", "link": i.name }));
        }
    }
    let services: Vec<Value> = dns.iter().map(|d| json!({ "type": "dns", "address": d })).collect();
    json!({ "links": links, "networks": networks, "services": services })
}

fn first_member_mac(n: &Node, members: &[String]) -> Option<String> {
    members.first().and_then(|m| n.interfaces.iter().find(|i| &i.name == m)).and_then(|i| match &i.kind {
        Kind::Link { mac } => Some(mac.clone()),
        _ => None,
    })
}

/// `/etc/smelt/network/nodes`: how the ramdisk finds its node, a line each:
/// `mac MAC NODE` and `serial SERIAL NODE`.
pub fn node_map(client: &Client) -> String {
    let mut out = String::from("# kind key node: written by smelt's network element\n");
    for n in &client.nodes {
        for mac in n.macs() {
            out.push_str(&format!("mac {mac} {}\n", n.name));
        }
        if let Some(s) = &n.serial {
            out.push_str(&format!("serial {s} {}\n", n.name));
        }
    }
    out
}

/// One renderer template: its path under the renderer folder and its text.
struct Template {
    path: String,
    text: String,
}

/// The renderer's templates: the built-in ones, each replaced by a file of the same
/// path under `user_dir/RENDERER/` when there is one (and the user's extra files added).
fn templates(renderer: &str, user_dir: Option<&Path>) -> anyhow::Result<Vec<Template>> {
    let mut out: Vec<Template> = Vec::new();
    if let Some(dir) = TEMPLATES.get_dir(renderer) {
        for f in dir.files() {
            let path = f.path().strip_prefix(renderer).unwrap_or(f.path()).to_string_lossy().into_owned();
            out.push(Template {
                path,
                text: f.contents_utf8().context("built-in template is UTF-8")?.to_string(),
            });
        }
    }
    if let Some(user) = user_dir.map(|d| d.join(renderer)).filter(|d| d.is_dir()) {
        for entry in walkdir::WalkDir::new(&user).min_depth(1).sort_by_file_name() {
            let entry = entry?;
            if !entry.file_type().is_file() {
                continue;
            }
            let path = entry.path().strip_prefix(&user)?.to_string_lossy().into_owned();
            let text = std::fs::read_to_string(entry.path())
                .with_context(|| format!("reading {}", entry.path().display()))?;
            out.retain(|t| t.path != path);
            out.push(Template { path, text });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Renders `renderers` for every node of `client` into the tree; returns the number of
/// files written. A file name's `{iface}`, `{link}`, `{bond}` or `{vlan}` renders it
/// once per such interface (with `iface` in the context); a file that renders to
/// nothing but white space is left out; `_name.tera` files are only included.
pub fn render(
    tree: &mut Tree,
    element: &str,
    client: &Client,
    renderers: &[String],
    user_dir: Option<&Path>,
    mtime: i64,
) -> anyhow::Result<usize> {
    let mut count = 0;
    let mut put = |tree: &mut Tree, path: String, text: String, mode: u32| -> anyhow::Result<()> {
        let at = ImagePath::new(&path).map_err(|e| anyhow!("element `{element}`: {e}"))?;
        tree.insert(&at, Entry::bytes(text.into_bytes(), mode, mtime, element))
            .map_err(|e| anyhow!("element `{element}`: {e}"))?;
        count += 1;
        Ok(())
    };
    put(tree, format!("{NETWORK_DIR}/nodes"), node_map(client), 0o644)?;
    let (client_view, nodes) = view(client);
    for renderer in renderers {
        let list = templates(renderer, user_dir)?;
        if list.is_empty() {
            anyhow::bail!(
                "element `{element}`: no templates for renderer `{renderer}`; renderers are {}",
                RENDERERS.join(", ")
            );
        }
        let tera = Templates::new(list.iter().map(|t| (t.path.as_str(), t.text.as_str())))
            .map_err(|e| anyhow!("element `{element}`: template network/{renderer}/{e}"))?;
        for (node, node_view) in client.nodes.iter().zip(&nodes) {
            // `_name.tera` files are partials for `{% include %}`, not outputs.
            for t in list.iter().filter(|t| !t.path.rsplit('/').next().unwrap_or("").starts_with('_')) {
                let out_name = t.path.strip_suffix(".tera").unwrap_or(&t.path);
                let ctx = json!({ "client": client_view, "node": node_view, "nodes": nodes });
                for (name, text) in
                    render_per_interface(&tera, &t.path, out_name, node, &ctx).map_err(|e| {
                        anyhow!(
                            "element `{element}`: template network/{renderer}/{} for node {:?}: {e}",
                            t.path,
                            node.name
                        )
                    })?
                {
                    if text.trim().is_empty() {
                        continue;
                    }
                    let mode = if text.starts_with("#!") { 0o755 } else { 0o644 };
                    put(tree, format!("{NETWORK_DIR}/{}/{renderer}/{name}", node.name), text, mode)?;
                }
            }
        }
    }
    Ok(count)
}

/// One template for one node: once, or once per interface its file name names
/// (`{iface}` every one; `{link}`, `{bond}`, `{vlan}` those of a kind) with `iface` in
/// the context. Returns (file name, text) pairs.
fn render_per_interface(
    tera: &Templates,
    template: &str,
    out_name: &str,
    node: &Node,
    ctx: &Value,
) -> Result<Vec<(String, String)>, crate::render::RenderError> {
    let placeholder = ["{iface}", "{link}", "{bond}", "{vlan}"]
        .into_iter()
        .find(|p| out_name.contains(p))
        .unwrap_or("{iface}");
    let kind = &placeholder[1..placeholder.len() - 1];
    let views = ctx["node"]["interfaces"].as_array().expect("interfaces");
    let ifaces = node
        .interfaces
        .iter()
        .zip(views)
        .filter(|(i, _)| kind == "iface" || i.kind.name() == kind)
        .map(|(i, view)| (i.name.as_str(), view));
    let mut out = Vec::new();
    for (name, iface) in per_item(out_name, placeholder, ifaces) {
        let mut ctx = ctx.clone();
        if let Some(i) = iface {
            ctx["iface"] = i.clone();
        }
        out.push((name, tera.render(template, &ctx)?));
    }
    Ok(out)
}
