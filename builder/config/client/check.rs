//! Checking a `client.toml` into the model, one named check at a time: the client's own
//! keys, then per node its identity (name, host name, serial), its interfaces (MACs,
//! names), bonds, VLANs, and addressing (addresses, MTUs, gateways, routes and their
//! next hops). Names, serials, MACs and addresses are unique across the whole client.
//! Every problem is collected, at its place, naming its node.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

mod bmc;
mod netboot;

use super::raw::{RawClient, RawFile, RawNode, RawRoute};
use super::{Client, Interface, Kind, Node, Route, BOND_MODES, HASH_POLICIES, LACP_RATES};
use crate::config::source::{Diagnostic, Diagnostics, TomlFile};

pub fn check(file: &TomlFile) -> Result<Client, Diagnostics> {
    let raw: RawFile = file.parse()?;
    let mut c = Checker::new(file);
    let dns = c.ips(&raw.client.dns, &keys(&["client", "dns"]), "client");
    c.time_zone(&raw.client);
    if raw.nodes.is_empty() {
        c.err(
            &keys(&["client"]),
            format!("client `{}` lists no nodes", raw.client.name),
            Some("add a [[nodes]] table for each node, with its name and links"),
        );
    }
    let mut nodes: Vec<Node> = raw.nodes.iter().enumerate().map(|(i, n)| c.node(i, n)).collect();
    for (i, (node, raw_node)) in nodes.iter_mut().zip(&raw.nodes).enumerate() {
        node.bmc = c.bmc(i, &format!("node {}", raw_node.name), raw_node.bmc.as_ref(), raw.bmc.as_ref());
    }
    let check_in = raw.deliver.as_ref().and_then(|d| d.check_in.as_deref()).and_then(|url| c.check_in(url));
    let netboot = c.netboot(raw.netboot.as_ref().unwrap_or(&Default::default()), &raw.nodes, &mut nodes);
    // A password written inline is refused, and not shown back in the quoted line.
    for d in c.errs.iter_mut().chain(c.warnings.iter_mut()) {
        d.line_text = bmc::masked(&d.line_text);
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
        netboot,
        check_in,
        warnings: c.warnings,
    })
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

/// A node's interfaces in bring-up order (links, bonds, VLANs), each with its kind.
type Interfaces<'a> = Vec<(Addressing<'a>, Kind)>;

struct Checker<'f> {
    file: &'f TomlFile,
    errs: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    /// Across the client: node names (to their index), serials, MACs and addresses
    /// (to the node and interface that has them).
    names: BTreeMap<String, usize>,
    serials: BTreeMap<String, String>,
    macs: BTreeMap<String, (String, String)>,
    addrs: BTreeMap<IpAddr, (String, String)>,
}

impl<'f> Checker<'f> {
    fn new(file: &'f TomlFile) -> Checker<'f> {
        Checker {
            file,
            errs: Vec::new(),
            warnings: Vec::new(),
            names: BTreeMap::new(),
            serials: BTreeMap::new(),
            macs: BTreeMap::new(),
            addrs: BTreeMap::new(),
        }
    }

    fn err(&mut self, at: &[String], msg: String, help: Option<&str>) {
        let keys: Vec<&str> = at.iter().map(String::as_str).collect();
        self.errs.push(self.file.error_at(&keys, msg, help.map(String::from)));
    }

    fn warn(&mut self, at: &[String], msg: String, help: Option<&str>) {
        let keys: Vec<&str> = at.iter().map(String::as_str).collect();
        self.warnings.push(self.file.warning_at(&keys, msg, help.map(String::from)));
    }

    fn ips(&mut self, texts: &[String], at: &[String], who: &str) -> Vec<IpAddr> {
        let mut out = Vec::new();
        for (i, t) in texts.iter().enumerate() {
            match t.parse() {
                Ok(ip) => out.push(ip),
                Err(_) => {
                    self.err(&with(at, &i.to_string()), format!("{who}: `{t}` is not an IP address"), None)
                }
            }
        }
        out
    }

    fn time_zone(&mut self, client: &RawClient) {
        let Some(tz) = &client.timezone else { return };
        let ok = !tz.is_empty()
            && !tz.contains("..")
            && tz.chars().all(|ch| ch.is_ascii_alphanumeric() || "/_+-".contains(ch));
        if !ok {
            self.err(
                &keys(&["client", "timezone"]),
                format!("client: `{tz}` is not a time zone name such as `Europe/Madrid`"),
                None,
            );
        }
    }

    /// One node, every check in turn.
    fn node(&mut self, i: usize, raw: &RawNode) -> Node {
        let at = keys(&["nodes", &i.to_string()]);
        let who = format!("node {}", raw.name);
        let hostname = self.identity(&at, &who, i, raw);
        let dns = raw.dns.as_ref().map(|d| self.ips(d, &with(&at, "dns"), &who)).unwrap_or_default();
        let all = self.interfaces(&at, &who, raw);
        let seen = self.interface_names(&who, &all);
        let master = self.bonds(&who, &all, &seen);
        self.vlans(&who, &all, &seen);
        let interfaces = self.addressing(&who, raw, &all, &master);
        Node {
            name: raw.name.clone(),
            hostname,
            serial: raw.serial.clone(),
            ssh_keys: raw.ssh_keys.clone(),
            dns,
            // Set by the netboot check, once the subnet is known.
            netboot_address: None,
            interfaces,
            // Set by the BMC check, with the client's defaults.
            bmc: None,
        }
    }

    /// The node's name and host name are host names, the name and serial unique in the
    /// client; returns the host name (the name unless given).
    fn identity(&mut self, at: &[String], who: &str, i: usize, n: &RawNode) -> String {
        if !valid_hostname(&n.name) {
            self.err(
                &with(at, "name"),
                format!("{who}: `{}` is not a valid host name", n.name),
                Some(HOSTNAME_HELP),
            );
        }
        if let Some(first) = self.names.insert(n.name.clone(), i) {
            self.err(
                &with(at, "name"),
                format!("{who}: the name is used by node #{} too", first + 1),
                Some("node names must be unique"),
            );
        }
        if let Some(serial) = &n.serial {
            if let Some(other) = self.serials.insert(serial.clone(), n.name.clone()) {
                self.err(
                    &with(at, "serial"),
                    format!("{who}: serial `{serial}` is node {other}'s too"),
                    None,
                );
            }
        }
        // The host name defaults to the node name, already checked above.
        let hostname = n.hostname.clone().unwrap_or_else(|| n.name.clone());
        if n.hostname.is_some() && !valid_hostname(&hostname) {
            self.err(
                &with(at, "hostname"),
                format!("{who}: `{hostname}` is not a valid host name"),
                Some(HOSTNAME_HELP),
            );
        }
        hostname
    }

    /// Every interface's common keys, in bring-up order, with its kind: links' MACs
    /// (well formed, unique in the client), bonds' options, VLAN ids in 1–4094.
    fn interfaces<'n>(&mut self, at: &[String], who: &str, n: &'n RawNode) -> Interfaces<'n> {
        let mut all: Interfaces = Vec::new();
        for (j, l) in n.links.iter().enumerate() {
            let at = with(&with(at, "links"), &j.to_string());
            let mac = match normalize_mac(&l.mac) {
                Some(mac) => {
                    if let Some((other, iface)) =
                        self.macs.insert(mac.clone(), (n.name.clone(), l.name.clone()))
                    {
                        self.err(
                            &with(&at, "mac"),
                            format!(
                                "{who}: link `{}`: MAC {mac} is also node {other}'s link `{iface}`",
                                l.name
                            ),
                            Some("each node is found at boot by its MACs, so they must be unique"),
                        );
                    }
                    mac
                }
                None => {
                    self.err(
                        &with(&at, "mac"),
                        format!("{who}: link `{}`: `{}` is not a MAC address", l.name, l.mac),
                        Some("write six hex pairs: 52:54:00:00:01:01"),
                    );
                    String::new()
                }
            };
            let a = Addressing {
                at,
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
                at: with(&with(at, "bonds"), &j.to_string()),
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
            let at = with(&with(at, "vlans"), &j.to_string());
            let id = if (1..=4094).contains(&v.id) {
                v.id as u16
            } else {
                self.err(
                    &with(&at, "id"),
                    format!("{who}: VLAN `{}`: id {} is outside 1-4094", v.name, v.id),
                    None,
                );
                0
            };
            let a = Addressing {
                at,
                name: &v.name,
                mtu: v.mtu,
                addresses: &v.addresses,
                gateway: v.gateway.as_ref(),
                gateway6: v.gateway6.as_ref(),
                dhcp: v.dhcp,
                routes: &v.routes,
            };
            all.push((a, Kind::Vlan { parent: v.link.clone(), id }));
        }
        all
    }

    /// Interface names are Linux interface names, each used once in the node; returns
    /// them with their kinds.
    fn interface_names<'a>(&mut self, who: &str, all: &'a Interfaces) -> BTreeMap<&'a str, &'a Kind> {
        let mut seen = BTreeMap::new();
        for (a, kind) in all {
            if a.name.is_empty()
                || a.name.len() > 15
                || a.name.contains(['/', ' ', ':'])
                || a.name == "."
                || a.name == ".."
            {
                self.err(
                    &with(&a.at, "name"),
                    format!("{who}: `{}` is not a Linux interface name", a.name),
                    Some("use at most 15 characters, without `/`, `:` or spaces"),
                );
            }
            if seen.insert(a.name, kind).is_some() {
                self.err(&with(&a.at, "name"), format!("{who}: interface `{}` is named twice", a.name), None);
            }
        }
        seen
    }

    /// Bonds: members are links of the node, each in one bond; the mode is a Linux one
    /// and takes the options given. Returns each member's bond.
    fn bonds(
        &mut self,
        who: &str,
        all: &Interfaces,
        seen: &BTreeMap<&str, &Kind>,
    ) -> BTreeMap<String, String> {
        let mut master: BTreeMap<String, String> = BTreeMap::new();
        for (a, kind) in all {
            let Kind::Bond { members, mode, primary, lacp_rate, xmit_hash_policy, .. } = kind else {
                continue;
            };
            let bond = a.name;
            if members.is_empty() {
                self.err(
                    &with(&a.at, "members"),
                    format!("{who}: bond `{bond}` has no members"),
                    Some("list its links in `members`"),
                );
            }
            for (k, m) in members.iter().enumerate() {
                let at = with(&with(&a.at, "members"), &k.to_string());
                match seen.get(m.as_str()) {
                    None => self.err(
                        &at,
                        format!("{who}: bond `{bond}`: unknown link `{m}`"),
                        Some(&names_help(all, true)),
                    ),
                    Some(Kind::Link { .. }) => {
                        if let Some(other) = master.insert(m.clone(), bond.to_string()) {
                            self.err(
                                &at,
                                format!("{who}: link `{m}` is in two bonds, `{other}` and `{bond}`"),
                                None,
                            );
                        }
                    }
                    Some(_) => {
                        self.err(&at, format!("{who}: bond `{bond}`: member `{m}` is not a link"), None)
                    }
                }
            }
            if !BOND_MODES.contains(&mode.as_str()) {
                self.err(
                    &with(&a.at, "mode"),
                    format!("{who}: bond `{bond}`: unknown mode `{mode}`"),
                    Some(&format!("modes are {}", BOND_MODES.join(", "))),
                );
            }
            // Each option: the modes it applies to, and what is wrong with its value.
            let options: [(&str, &Option<String>, &[&str]); 3] = [
                ("primary", primary, &["active-backup", "balance-tlb", "balance-alb"]),
                ("lacp-rate", lacp_rate, &["802.3ad"]),
                ("xmit-hash-policy", xmit_hash_policy, &["balance-xor", "802.3ad", "balance-tlb"]),
            ];
            for (key, value, modes) in options {
                let Some(value) = value else { continue };
                let (msg, help) = if !modes.contains(&mode.as_str()) {
                    let msg =
                        format!("`{key}` does not apply to mode {mode}; it applies to {}", modes.join(", "));
                    (msg, None)
                } else if key == "primary" && !members.contains(value) {
                    (format!("primary `{value}` is not one of its members"), None)
                } else if key == "lacp-rate" && !LACP_RATES.contains(&value.as_str()) {
                    (format!("lacp-rate `{value}` is not slow or fast"), None)
                } else if key == "xmit-hash-policy" && !HASH_POLICIES.contains(&value.as_str()) {
                    let help = format!("policies are {}", HASH_POLICIES.join(", "));
                    (format!("unknown xmit-hash-policy `{value}`"), Some(help))
                } else {
                    continue;
                };
                self.err(&with(&a.at, key), format!("{who}: bond `{bond}`: {msg}"), help.as_deref());
            }
        }
        master
    }

    /// VLANs sit on a link or bond of the node, with an id used once per parent.
    fn vlans(&mut self, who: &str, all: &Interfaces, seen: &BTreeMap<&str, &Kind>) {
        let mut ids: BTreeSet<(&str, u16)> = BTreeSet::new();
        for (a, kind) in all {
            let Kind::Vlan { parent, id } = kind else { continue };
            match seen.get(parent.as_str()) {
                None => self.err(
                    &with(&a.at, "link"),
                    format!("{who}: VLAN `{}`: unknown link or bond `{parent}`", a.name),
                    Some(&names_help(all, false)),
                ),
                Some(Kind::Vlan { .. }) => self.err(
                    &with(&a.at, "link"),
                    format!("{who}: VLAN `{}` sits on VLAN `{parent}`; put it on a link or bond", a.name),
                    None,
                ),
                Some(_) => {}
            }
            if *id != 0 && !ids.insert((parent, *id)) {
                self.err(
                    &with(&a.at, "id"),
                    format!("{who}: VLAN id {id} is used twice on `{parent}`"),
                    None,
                );
            }
        }
    }

    /// Each interface's addresses, MTU, gateways and routes, checked; then every route's
    /// next hop on a prefix some interface of the node is on.
    fn addressing(
        &mut self,
        who: &str,
        raw: &RawNode,
        all: &Interfaces,
        master: &BTreeMap<String, String>,
    ) -> Vec<Interface> {
        let mut interfaces = Vec::new();
        let mut connected: Vec<IpNet> = Vec::new();
        let mut defaults: BTreeMap<bool, &str> = BTreeMap::new();
        let mut hops = Vec::new();
        for (a, kind) in all {
            let nets = self.addresses(who, &raw.name, a);
            if master.contains_key(a.name)
                && (!nets.is_empty() || a.dhcp || a.gateway.is_some() || a.gateway6.is_some())
            {
                self.err(
                    &a.at,
                    format!(
                        "{who}: link `{}` is a member of bond `{}` and cannot carry addresses, DHCP or a gateway",
                        a.name, master[a.name]
                    ),
                    Some("put them on the bond or on a VLAN over it"),
                );
            }
            if let Some(mtu) = a.mtu.filter(|m| !(68..=65535).contains(m)) {
                self.err(
                    &with(&a.at, "mtu"),
                    format!("{who}: `{}`: MTU {mtu} is outside 68-65535", a.name),
                    None,
                );
            }
            connected.extend(nets.iter().map(|n| n.trunc()));
            let [gateway4, gateway6] = self.gateways(who, a, &nets, &mut defaults);
            let routes = self.routes(who, a);
            if !a.dhcp {
                hops.extend(routes.iter().filter_map(|(at, r)| Some((at.clone(), a.name, r.via?))));
            }
            interfaces.push(Interface {
                name: a.name.to_string(),
                kind: kind.clone(),
                mtu: a.mtu,
                addresses: nets,
                gateway4,
                gateway6,
                dhcp: a.dhcp,
                routes: routes.into_iter().map(|(_, r)| r).collect(),
                master: master.get(a.name).cloned(),
            });
        }
        for (at, iface, via) in hops {
            if !connected.iter().any(|n| n.contains(&via)) {
                let msg =
                    format!("{who}: `{iface}`: route via {via} is not on a connected prefix of the node");
                self.err(&with(&at, "via"), msg, None);
            }
        }
        interfaces
    }

    /// Addresses with their prefix lengths: hosts, not a network or broadcast address,
    /// none another interface in the client has.
    fn addresses(&mut self, who: &str, node: &str, a: &Addressing) -> Vec<IpNet> {
        let mut nets = Vec::new();
        for (k, text) in a.addresses.iter().enumerate() {
            let at = with(&with(&a.at, "addresses"), &k.to_string());
            let Ok(net) = text.parse::<IpNet>() else {
                let msg = format!(
                    "{who}: `{}`: `{text}` is not an address with its prefix length, such as 10.0.0.5/24",
                    a.name
                );
                self.err(&at, msg, None);
                continue;
            };
            if let IpNet::V4(v4) = net {
                if v4.prefix_len() <= 30 && (v4.addr() == v4.network() || v4.addr() == v4.broadcast()) {
                    let which = if v4.addr() == v4.network() { "network" } else { "broadcast" };
                    let msg = format!(
                        "{who}: `{}`: {} is the {which} address of {}, not a host in it",
                        a.name,
                        v4.addr(),
                        v4.trunc()
                    );
                    self.err(&at, msg, None);
                }
            }
            if let Some((other, iface)) =
                self.addrs.insert(net.addr(), (node.to_string(), a.name.to_string()))
            {
                let msg = format!(
                    "{who}: `{}`: address {} is also node {other}'s on `{iface}`",
                    a.name,
                    net.addr()
                );
                self.err(&at, msg, None);
            }
            nets.push(net);
        }
        nets
    }

    /// `gateway` (IPv4, or IPv6 when there is no IPv4 one) and `gateway6`: addresses on
    /// a prefix of the interface (unless it takes DHCP), one default per family in the
    /// node. Returns the IPv4 and IPv6 gateways.
    fn gateways<'a>(
        &mut self,
        who: &str,
        a: &'a Addressing,
        nets: &[IpNet],
        defaults: &mut BTreeMap<bool, &'a str>,
    ) -> [Option<IpAddr>; 2] {
        let mut gateways = [None, None];
        for (key, text) in [("gateway", a.gateway), ("gateway6", a.gateway6)] {
            let Some(text) = text else { continue };
            let Ok(gw) = text.parse::<IpAddr>() else {
                let msg = format!("{who}: `{}`: gateway `{text}` is not an IP address", a.name);
                self.err(&with(&a.at, key), msg, None);
                continue;
            };
            let v6 = gw.is_ipv6();
            if key == "gateway6" && !v6 {
                let msg = format!("{who}: `{}`: gateway6 `{text}` is not an IPv6 address", a.name);
                self.err(&with(&a.at, key), msg, None);
                continue;
            }
            if !a.dhcp && !nets.iter().any(|n| n.contains(&gw)) {
                let on: Vec<String> =
                    nets.iter().filter(|n| n.addr().is_ipv6() == v6).map(|n| n.trunc().to_string()).collect();
                let why = if on.is_empty() {
                    " (the interface has no address of its family)".to_string()
                } else {
                    format!(" ({})", on.join(", "))
                };
                let msg = format!("{who}: `{}`: gateway {gw} is not on a connected prefix{why}", a.name);
                self.err(&with(&a.at, key), msg, None);
            }
            if let Some(other) = defaults.insert(v6, a.name) {
                let family = if v6 { "IPv6" } else { "IPv4" };
                let msg = format!(
                    "{who}: `{}` and `{other}` both have an {family} default gateway; keep one",
                    a.name
                );
                self.err(&with(&a.at, key), msg, Some("use `routes` for other networks"));
            }
            gateways[v6 as usize] = Some(gw);
        }
        gateways
    }

    /// Routes: to a prefix or `default`, via an IP address; each with where it sits.
    fn routes(&mut self, who: &str, a: &Addressing) -> Vec<(Vec<String>, Route)> {
        let mut routes = Vec::new();
        for (k, r) in a.routes.iter().enumerate() {
            let at = with(&with(&a.at, "routes"), &k.to_string());
            let to = match r.to.as_str() {
                "default" => None,
                to => match to.parse::<IpNet>() {
                    Ok(n) => Some(n.trunc()),
                    Err(_) => {
                        let msg = format!(
                            "{who}: `{}`: route to `{to}` is not a prefix such as 10.20.0.0/16 or `default`",
                            a.name
                        );
                        self.err(&with(&at, "to"), msg, None);
                        continue;
                    }
                },
            };
            let via = match r.via.as_deref().map(|v| (v, v.parse::<IpAddr>())) {
                None => None,
                Some((_, Ok(v))) => Some(v),
                Some((text, Err(_))) => {
                    let msg = format!("{who}: `{}`: route via `{text}` is not an IP address", a.name);
                    self.err(&with(&at, "via"), msg, None);
                    continue;
                }
            };
            routes.push((at, Route { to, via, metric: r.metric }));
        }
        routes
    }
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

fn keys(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

fn with(at: &[String], key: &str) -> Vec<String> {
    let mut v = at.to_vec();
    v.push(key.to_string());
    v
}

fn names_help(all: &Interfaces, links_only: bool) -> String {
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
