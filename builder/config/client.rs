//! `client.toml`: a client's nodes and their static networking (links found by MAC,
//! bonds, VLANs, addresses, gateways, routes), checked into [`Client`] with every
//! problem reported at once, each at its place and naming its node.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;
use serde::Deserialize;

use super::source::{Diagnostic, Diagnostics, TomlFile};

#[derive(Deserialize)]
struct RawFile {
    client: RawClient,
    #[serde(default)]
    nodes: Vec<RawNode>,
}

#[derive(Deserialize)]
struct RawClient {
    name: String,
    domain: Option<String>,
    timezone: Option<String>,
    #[serde(default)]
    dns: Vec<String>,
    #[serde(default)]
    search: Vec<String>,
    #[serde(default)]
    ntp: Vec<String>,
    #[serde(default, rename = "ssh-keys")]
    ssh_keys: Vec<String>,
}

#[derive(Deserialize)]
struct RawNode {
    name: String,
    #[serde(default, rename = "ssh-keys")]
    ssh_keys: Vec<String>,
    hostname: Option<String>,
    serial: Option<String>,
    dns: Option<Vec<String>>,
    #[serde(default)]
    links: Vec<RawLink>,
    #[serde(default)]
    bonds: Vec<RawBond>,
    #[serde(default)]
    vlans: Vec<RawVlan>,
}

// The addressing keys repeat in each interface kind (serde's flatten would hide unknown
// keys from the unknown-key check).
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawLink {
    name: String,
    mac: String,
    mtu: Option<u32>,
    #[serde(default)]
    addresses: Vec<String>,
    gateway: Option<String>,
    gateway6: Option<String>,
    #[serde(default)]
    dhcp: bool,
    #[serde(default)]
    routes: Vec<RawRoute>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawBond {
    name: String,
    #[serde(default)]
    members: Vec<String>,
    mode: String,
    miimon: Option<u32>,
    updelay: Option<u32>,
    downdelay: Option<u32>,
    primary: Option<String>,
    lacp_rate: Option<String>,
    xmit_hash_policy: Option<String>,
    mtu: Option<u32>,
    #[serde(default)]
    addresses: Vec<String>,
    gateway: Option<String>,
    gateway6: Option<String>,
    #[serde(default)]
    dhcp: bool,
    #[serde(default)]
    routes: Vec<RawRoute>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawVlan {
    name: String,
    link: String,
    id: i64,
    mtu: Option<u32>,
    #[serde(default)]
    addresses: Vec<String>,
    gateway: Option<String>,
    gateway6: Option<String>,
    #[serde(default)]
    dhcp: bool,
    #[serde(default)]
    routes: Vec<RawRoute>,
}

#[derive(Deserialize)]
struct RawRoute {
    to: String,
    via: Option<String>,
    metric: Option<u32>,
}

/// The Linux bonding modes.
pub const BOND_MODES: [&str; 7] =
    ["balance-rr", "active-backup", "balance-xor", "broadcast", "802.3ad", "balance-tlb", "balance-alb"];
const LACP_RATES: [&str; 2] = ["slow", "fast"];
const HASH_POLICIES: [&str; 6] = ["layer2", "layer2+3", "layer3+4", "encap2+3", "encap3+4", "vlan+srcmac"];

#[derive(Debug, Clone, serde::Serialize)]
pub struct Client {
    pub name: String,
    pub domain: Option<String>,
    pub timezone: Option<String>,
    pub dns: Vec<IpAddr>,
    pub search: Vec<String>,
    pub ntp: Vec<String>,
    /// SSH public keys every node's config drive offers.
    pub ssh_keys: Vec<String>,
    pub nodes: Vec<Node>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Node {
    pub name: String,
    pub hostname: String,
    pub serial: Option<String>,
    pub ssh_keys: Vec<String>,
    pub dns: Vec<IpAddr>,
    /// Links first, then bonds, then VLANs: the order they are brought up.
    pub interfaces: Vec<Interface>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Interface {
    pub name: String,
    #[serde(flatten)]
    pub kind: Kind,
    pub mtu: Option<u32>,
    pub addresses: Vec<IpNet>,
    pub gateway4: Option<IpAddr>,
    pub gateway6: Option<IpAddr>,
    pub dhcp: bool,
    pub routes: Vec<Route>,
    /// The bond this link is a member of.
    pub master: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Kind {
    Link {
        /// Lower case, colon separated.
        mac: String,
    },
    Bond {
        members: Vec<String>,
        mode: String,
        miimon: Option<u32>,
        updelay: Option<u32>,
        downdelay: Option<u32>,
        primary: Option<String>,
        lacp_rate: Option<String>,
        xmit_hash_policy: Option<String>,
    },
    Vlan {
        parent: String,
        id: u16,
    },
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Route {
    /// `None` for the default route.
    pub to: Option<IpNet>,
    pub via: Option<IpAddr>,
    pub metric: Option<u32>,
}

pub fn load(path: &Path) -> anyhow::Result<Client> {
    Ok(check(&TomlFile::read(path)?)?)
}

/// One interface as read, before kind-specific checks: its keys and where it sits.
struct Addressing<'a> {
    at: Vec<String>,
    name: &'a str,
    mtu: Option<u32>,
    addresses: &'a [String],
    gateway: Option<&'a String>,
    gateway6: Option<&'a String>,
    dhcp: bool,
    routes: &'a [RawRoute],
}

pub fn check(file: &TomlFile) -> Result<Client, Diagnostics> {
    let raw: RawFile = file.parse()?;
    let mut c = Checker { file, errs: Vec::new() };
    let dns = c.ips(&raw.client.dns, &["client", "dns"], "client");
    if let Some(tz) = &raw.client.timezone {
        let ok = !tz.is_empty()
            && !tz.contains("..")
            && tz.chars().all(|ch| ch.is_ascii_alphanumeric() || "/_+-".contains(ch));
        if !ok {
            c.err(
                &["client", "timezone"],
                format!("client: `{tz}` is not a time zone name such as `Europe/Madrid`"),
                None,
            );
        }
    }
    if raw.nodes.is_empty() {
        c.err(
            &["client"],
            format!("client `{}` lists no nodes", raw.client.name),
            Some("add a [[nodes]] table for each node, with its name and links"),
        );
    }
    let mut nodes = Vec::new();
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut serials: BTreeMap<&str, &str> = BTreeMap::new();
    let mut macs: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut addrs: BTreeMap<IpAddr, (String, String)> = BTreeMap::new();
    for (i, n) in raw.nodes.iter().enumerate() {
        let at = |rest: &[&str]| -> Vec<String> {
            let mut v = vec!["nodes".to_string(), i.to_string()];
            v.extend(rest.iter().map(|s| s.to_string()));
            v
        };
        let who = format!("node {}", n.name);
        if !valid_hostname(&n.name) {
            c.err_at(
                &at(&["name"]),
                format!("{who}: `{}` is not a valid host name", n.name),
                Some(HOSTNAME_HELP),
            );
        }
        if let Some(first) = names.insert(&n.name, i) {
            c.err_at(
                &at(&["name"]),
                format!("{who}: the name is used by node #{} too", first + 1),
                Some("node names must be unique"),
            );
        }
        if let Some(serial) = &n.serial {
            if let Some(other) = serials.insert(serial, &n.name) {
                c.err_at(&at(&["serial"]), format!("{who}: serial `{serial}` is node {other}'s too"), None);
            }
        }
        // The host name defaults to the node name, already checked above.
        let hostname = n.hostname.clone().unwrap_or_else(|| n.name.clone());
        if n.hostname.is_some() && !valid_hostname(&hostname) {
            c.err_at(
                &at(&["hostname"]),
                format!("{who}: `{hostname}` is not a valid host name"),
                Some(HOSTNAME_HELP),
            );
        }
        let node_dns = n
            .dns
            .as_ref()
            .map(|d| c.ips(d, &at(&["dns"]).iter().map(String::as_str).collect::<Vec<_>>(), &who));

        // Every interface's common keys, in bring-up order.
        let mut all: Vec<(Addressing, Kind)> = Vec::new();
        for (j, l) in n.links.iter().enumerate() {
            let mac = match normalize_mac(&l.mac) {
                Some(m) => m,
                None => {
                    c.err_at(
                        &at(&["links", &j.to_string(), "mac"]),
                        format!("{who}: link `{}`: `{}` is not a MAC address", l.name, l.mac),
                        Some("write six hex pairs: 52:54:00:00:01:01"),
                    );
                    String::new()
                }
            };
            if !mac.is_empty() {
                if let Some((other, iface)) = macs.insert(mac.clone(), (n.name.clone(), l.name.clone())) {
                    c.err_at(
                        &at(&["links", &j.to_string(), "mac"]),
                        format!("{who}: link `{}`: MAC {mac} is also node {other}'s link `{iface}`", l.name),
                        Some("each node is found at boot by its MACs, so they must be unique"),
                    );
                }
            }
            let a = Addressing {
                at: at(&["links", &j.to_string()]),
                name: &l.name,
                mtu: l.mtu,
                addresses: &l.addresses,
                gateway: l.gateway.as_ref(),
                gateway6: l.gateway6.as_ref(),
                dhcp: l.dhcp,
                routes: &l.routes,
            };
            all.push((a, Kind::Link { mac }));
        }
        for (j, b) in n.bonds.iter().enumerate() {
            let a = Addressing {
                at: at(&["bonds", &j.to_string()]),
                name: &b.name,
                mtu: b.mtu,
                addresses: &b.addresses,
                gateway: b.gateway.as_ref(),
                gateway6: b.gateway6.as_ref(),
                dhcp: b.dhcp,
                routes: &b.routes,
            };
            let kind = Kind::Bond {
                members: b.members.clone(),
                mode: b.mode.clone(),
                miimon: b.miimon,
                updelay: b.updelay,
                downdelay: b.downdelay,
                primary: b.primary.clone(),
                lacp_rate: b.lacp_rate.clone(),
                xmit_hash_policy: b.xmit_hash_policy.clone(),
            };
            all.push((a, kind));
        }
        for (j, v) in n.vlans.iter().enumerate() {
            let a = Addressing {
                at: at(&["vlans", &j.to_string()]),
                name: &v.name,
                mtu: v.mtu,
                addresses: &v.addresses,
                gateway: v.gateway.as_ref(),
                gateway6: v.gateway6.as_ref(),
                dhcp: v.dhcp,
                routes: &v.routes,
            };
            let id = if (1..=4094).contains(&v.id) {
                v.id as u16
            } else {
                c.err_at(
                    &at(&["vlans", &j.to_string(), "id"]),
                    format!("{who}: VLAN `{}`: id {} is outside 1-4094", v.name, v.id),
                    None,
                );
                0
            };
            all.push((a, Kind::Vlan { parent: v.link.clone(), id }));
        }
        nodes.push(c.node(&who, n, hostname, node_dns.unwrap_or_default(), all, &mut addrs));
    }
    if !c.errs.is_empty() {
        return Err(Diagnostics(c.errs));
    }
    let client = raw.client;
    Ok(Client {
        name: client.name,
        domain: client.domain,
        timezone: client.timezone,
        dns,
        search: client.search,
        ntp: client.ntp,
        ssh_keys: client.ssh_keys,
        nodes,
    })
}

const HOSTNAME_HELP: &str =
    "use letters, digits and `-`, at most 63 characters, not starting or ending with `-`";

fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// `52:54:00:AB:01:02` or `52-54-00-ab-01-02` → `52:54:00:ab:01:02`.
fn normalize_mac(text: &str) -> Option<String> {
    let parts: Vec<&str> = text.split([':', '-']).collect();
    if parts.len() != 6 || !parts.iter().all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit())) {
        return None;
    }
    Some(parts.join(":").to_ascii_lowercase())
}

struct Checker<'f> {
    file: &'f TomlFile,
    errs: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn err(&mut self, at: &[&str], msg: String, help: Option<&str>) {
        self.errs.push(self.file.error_at(at, msg, help.map(String::from)));
    }

    fn err_at(&mut self, at: &[String], msg: String, help: Option<&str>) {
        let keys: Vec<&str> = at.iter().map(String::as_str).collect();
        self.err(&keys, msg, help);
    }

    fn ips(&mut self, texts: &[String], at: &[&str], who: &str) -> Vec<IpAddr> {
        let mut out = Vec::new();
        for (i, t) in texts.iter().enumerate() {
            match t.parse() {
                Ok(ip) => out.push(ip),
                Err(_) => {
                    let mut keys = at.to_vec();
                    let idx = i.to_string();
                    keys.push(&idx);
                    self.err(&keys, format!("{who}: `{t}` is not an IP address"), None);
                }
            }
        }
        out
    }

    /// Checks one node's interfaces as a whole: names, references between them, bond
    /// options, addresses and gateways; `addrs` spans the whole client.
    fn node(
        &mut self,
        who: &str,
        raw: &RawNode,
        hostname: String,
        dns: Vec<IpAddr>,
        all: Vec<(Addressing, Kind)>,
        addrs: &mut BTreeMap<IpAddr, (String, String)>,
    ) -> Node {
        let mut seen: BTreeMap<&str, &Kind> = BTreeMap::new();
        for (a, kind) in &all {
            if a.name.is_empty()
                || a.name.len() > 15
                || a.name.contains(['/', ' ', ':'])
                || a.name == "."
                || a.name == ".."
            {
                self.err_at(
                    &with(&a.at, "name"),
                    format!("{who}: `{}` is not a Linux interface name", a.name),
                    Some("use at most 15 characters, without `/`, `:` or spaces"),
                );
            }
            if seen.insert(a.name, kind).is_some() {
                self.err_at(
                    &with(&a.at, "name"),
                    format!("{who}: interface `{}` is named twice", a.name),
                    None,
                );
            }
        }
        // Bond members: existing links, in one bond only, carrying no addresses.
        let mut master: BTreeMap<String, String> = BTreeMap::new();
        for (a, kind) in &all {
            let Kind::Bond { members, mode, primary, lacp_rate, xmit_hash_policy, .. } = kind else {
                continue;
            };
            let bond = a.name;
            if members.is_empty() {
                self.err_at(
                    &with(&a.at, "members"),
                    format!("{who}: bond `{bond}` has no members"),
                    Some("list its links in `members`"),
                );
            }
            for (k, m) in members.iter().enumerate() {
                let at = with(&with(&a.at, "members"), &k.to_string());
                match seen.get(m.as_str()) {
                    None => self.err_at(
                        &at,
                        format!("{who}: bond `{bond}`: unknown link `{m}`"),
                        Some(&names_help(&all, true)),
                    ),
                    Some(Kind::Link { .. }) => {
                        if let Some(other) = master.insert(m.clone(), bond.to_string()) {
                            self.err_at(
                                &at,
                                format!("{who}: link `{m}` is in two bonds, `{other}` and `{bond}`"),
                                None,
                            );
                        }
                    }
                    Some(_) => {
                        self.err_at(&at, format!("{who}: bond `{bond}`: member `{m}` is not a link"), None)
                    }
                }
            }
            if !BOND_MODES.contains(&mode.as_str()) {
                self.err_at(
                    &with(&a.at, "mode"),
                    format!("{who}: bond `{bond}`: unknown mode `{mode}`"),
                    Some(&format!("modes are {}", BOND_MODES.join(", "))),
                );
            }
            let rule = |key: &str, allowed: &[&str]| -> Option<String> {
                (!allowed.contains(&mode.as_str())).then(|| {
                    format!(
                        "{who}: bond `{bond}`: `{key}` does not apply to mode {mode}; it applies to {}",
                        allowed.join(", ")
                    )
                })
            };
            if let Some(p) = primary {
                if let Some(msg) = rule("primary", &["active-backup", "balance-tlb", "balance-alb"]) {
                    self.err_at(&with(&a.at, "primary"), msg, None);
                } else if !members.contains(p) {
                    self.err_at(
                        &with(&a.at, "primary"),
                        format!("{who}: bond `{bond}`: primary `{p}` is not one of its members"),
                        None,
                    );
                }
            }
            if let Some(rate) = lacp_rate {
                if let Some(msg) = rule("lacp-rate", &["802.3ad"]) {
                    self.err_at(&with(&a.at, "lacp-rate"), msg, None);
                } else if !LACP_RATES.contains(&rate.as_str()) {
                    self.err_at(
                        &with(&a.at, "lacp-rate"),
                        format!("{who}: bond `{bond}`: lacp-rate `{rate}` is not slow or fast"),
                        None,
                    );
                }
            }
            if let Some(policy) = xmit_hash_policy {
                if let Some(msg) = rule("xmit-hash-policy", &["balance-xor", "802.3ad", "balance-tlb"]) {
                    self.err_at(&with(&a.at, "xmit-hash-policy"), msg, None);
                } else if !HASH_POLICIES.contains(&policy.as_str()) {
                    self.err_at(
                        &with(&a.at, "xmit-hash-policy"),
                        format!("{who}: bond `{bond}`: unknown xmit-hash-policy `{policy}`"),
                        Some(&format!("policies are {}", HASH_POLICIES.join(", "))),
                    );
                }
            }
        }
        let mut vlan_ids: BTreeSet<(&str, u16)> = BTreeSet::new();
        for (a, kind) in &all {
            let Kind::Vlan { parent, id } = kind else { continue };
            match seen.get(parent.as_str()) {
                None => self.err_at(
                    &with(&a.at, "link"),
                    format!("{who}: VLAN `{}`: unknown link or bond `{parent}`", a.name),
                    Some(&names_help(&all, false)),
                ),
                Some(Kind::Vlan { .. }) => self.err_at(
                    &with(&a.at, "link"),
                    format!("{who}: VLAN `{}` sits on VLAN `{parent}`; put it on a link or bond", a.name),
                    None,
                ),
                Some(_) => {}
            }
            if *id != 0 && !vlan_ids.insert((parent, *id)) {
                self.err_at(
                    &with(&a.at, "id"),
                    format!("{who}: VLAN id {id} is used twice on `{parent}`"),
                    None,
                );
            }
        }

        // Addresses, gateways and routes.
        let mut interfaces = Vec::new();
        let mut connected: Vec<IpNet> = Vec::new();
        let mut defaults: BTreeMap<bool, &str> = BTreeMap::new();
        for (a, kind) in all.iter() {
            let mut nets = Vec::new();
            for (k, text) in a.addresses.iter().enumerate() {
                let at = with(&with(&a.at, "addresses"), &k.to_string());
                let net: IpNet = match text.parse() {
                    Ok(n) => n,
                    Err(_) => {
                        self.err_at(&at, format!("{who}: `{}`: `{text}` is not an address with its prefix length, such as 10.0.0.5/24", a.name), None);
                        continue;
                    }
                };
                if let IpNet::V4(v4) = net {
                    if v4.prefix_len() <= 30 && (v4.addr() == v4.network() || v4.addr() == v4.broadcast()) {
                        let which = if v4.addr() == v4.network() { "network" } else { "broadcast" };
                        self.err_at(
                            &at,
                            format!(
                                "{who}: `{}`: {} is the {which} address of {}, not a host in it",
                                a.name,
                                v4.addr(),
                                v4.trunc()
                            ),
                            None,
                        );
                    }
                }
                if let Some((node, iface)) = addrs.insert(net.addr(), (raw.name.clone(), a.name.to_string()))
                {
                    self.err_at(
                        &at,
                        format!(
                            "{who}: `{}`: address {} is also node {node}'s on `{iface}`",
                            a.name,
                            net.addr()
                        ),
                        None,
                    );
                }
                nets.push(net);
            }
            if master.contains_key(a.name)
                && (!nets.is_empty() || a.dhcp || a.gateway.is_some() || a.gateway6.is_some())
            {
                self.err_at(
                    &a.at,
                    format!("{who}: link `{}` is a member of bond `{}` and cannot carry addresses, DHCP or a gateway", a.name, master[a.name]),
                    Some("put them on the bond or on a VLAN over it"),
                );
            }
            if let Some(mtu) = a.mtu {
                if !(68..=65535).contains(&mtu) {
                    self.err_at(
                        &with(&a.at, "mtu"),
                        format!("{who}: `{}`: MTU {mtu} is outside 68-65535", a.name),
                        None,
                    );
                }
            }
            connected.extend(nets.iter().map(|n| n.trunc()));
            let mut gateways = [None, None];
            for (key, text) in [("gateway", a.gateway), ("gateway6", a.gateway6)] {
                let Some(text) = text else { continue };
                let gw: IpAddr = match text.parse() {
                    Ok(g) => g,
                    Err(_) => {
                        self.err_at(
                            &with(&a.at, key),
                            format!("{who}: `{}`: gateway `{text}` is not an IP address", a.name),
                            None,
                        );
                        continue;
                    }
                };
                // `gateway` may hold an IPv6 gateway too, when there is no IPv4 one.
                let v6 = gw.is_ipv6();
                if key == "gateway6" && !v6 {
                    self.err_at(
                        &with(&a.at, key),
                        format!("{who}: `{}`: gateway6 `{text}` is not an IPv6 address", a.name),
                        None,
                    );
                    continue;
                }
                if !a.dhcp && !nets.iter().any(|n| n.contains(&gw)) {
                    let on: Vec<String> = nets
                        .iter()
                        .filter(|n| n.addr().is_ipv6() == v6)
                        .map(|n| n.trunc().to_string())
                        .collect();
                    self.err_at(
                        &with(&a.at, key),
                        format!(
                            "{who}: `{}`: gateway {gw} is not on a connected prefix{}",
                            a.name,
                            if on.is_empty() {
                                " (the interface has no address of its family)".to_string()
                            } else {
                                format!(" ({})", on.join(", "))
                            }
                        ),
                        None,
                    );
                }
                if let Some(other) = defaults.insert(v6, a.name) {
                    self.err_at(
                        &with(&a.at, key),
                        format!(
                            "{who}: `{}` and `{other}` both have an {} default gateway; keep one",
                            a.name,
                            if v6 { "IPv6" } else { "IPv4" }
                        ),
                        Some("use `routes` for other networks"),
                    );
                }
                gateways[v6 as usize] = Some(gw);
            }
            let mut routes = Vec::new();
            for (k, r) in a.routes.iter().enumerate() {
                let at = with(&with(&a.at, "routes"), &k.to_string());
                let to = if r.to == "default" {
                    None
                } else {
                    match r.to.parse::<IpNet>() {
                        Ok(n) => Some(n.trunc()),
                        Err(_) => {
                            self.err_at(&with(&at, "to"), format!("{who}: `{}`: route to `{}` is not a prefix such as 10.20.0.0/16 or `default`", a.name, r.to), None);
                            continue;
                        }
                    }
                };
                let via = match r.via.as_deref().map(str::parse::<IpAddr>) {
                    None => None,
                    Some(Ok(v)) => Some(v),
                    Some(Err(_)) => {
                        self.err_at(
                            &with(&at, "via"),
                            format!(
                                "{who}: `{}`: route via `{}` is not an IP address",
                                a.name,
                                r.via.as_deref().unwrap_or("")
                            ),
                            None,
                        );
                        continue;
                    }
                };
                routes.push((at, Route { to, via, metric: r.metric }));
            }
            interfaces.push((
                routes,
                Interface {
                    name: a.name.to_string(),
                    kind: kind.clone(),
                    mtu: a.mtu,
                    addresses: nets,
                    gateway4: gateways[0],
                    gateway6: gateways[1],
                    dhcp: a.dhcp,
                    routes: Vec::new(),
                    master: master.get(a.name).cloned(),
                },
            ));
        }
        // A route's next hop must be on a prefix some interface of the node is on.
        let mut out = Vec::new();
        for (routes, mut iface) in interfaces {
            for (at, r) in routes {
                if let Some(via) = r.via {
                    if !iface.dhcp && !connected.iter().any(|n| n.contains(&via)) {
                        self.err_at(
                            &with(&at, "via"),
                            format!(
                                "{who}: `{}`: route via {via} is not on a connected prefix of the node",
                                iface.name
                            ),
                            None,
                        );
                    }
                }
                iface.routes.push(r);
            }
            out.push(iface);
        }
        Node {
            name: raw.name.clone(),
            hostname,
            serial: raw.serial.clone(),
            ssh_keys: raw.ssh_keys.clone(),
            dns,
            interfaces: out,
        }
    }
}

fn with(at: &[String], key: &str) -> Vec<String> {
    let mut v = at.to_vec();
    v.push(key.to_string());
    v
}

fn names_help(all: &[(Addressing, Kind)], links_only: bool) -> String {
    let names: Vec<&str> = all
        .iter()
        .filter(|(_, k)| match k {
            Kind::Link { .. } => true,
            Kind::Bond { .. } => !links_only,
            Kind::Vlan { .. } => false,
        })
        .map(|(a, _)| a.name)
        .collect();
    if names.is_empty() {
        "the node has no links".into()
    } else {
        format!(
            "the node's {} are {}",
            if links_only { "links" } else { "links and bonds" },
            names.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_documents_every_client_key() {
        use crate::config::doc_keys::{documents, keys, section};
        let text = section("## Client inventories and per-node networking");
        let all = [
            keys::<RawFile>(),
            keys::<RawClient>(),
            keys::<RawNode>(),
            keys::<RawLink>(),
            keys::<RawBond>(),
            keys::<RawVlan>(),
            keys::<RawRoute>(),
        ];
        for key in all.concat() {
            assert!(documents(text, key), "`{key}` is not in the README's client section");
        }
    }
}
