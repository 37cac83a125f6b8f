//! `[netboot]` and each node's `netboot-address`: IPv4 addresses, the dynamic range and
//! the router inside the subnet, an `http://` URL, each node's boot address its own in
//! the client; warnings where DHCP would hand an address that may be another machine's,
//! or none to a node.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::{keys, with, Checker};
use crate::config::client::raw::{RawNetboot, RawNode};
use crate::config::client::{Kind, Netboot, Node};

impl Checker<'_> {
    /// The client's `[netboot]`, and every node's boot address (given, or an untagged
    /// address of a link or bond on the subnet), set on `nodes`.
    pub(super) fn netboot(&mut self, raw: &RawNetboot, raw_nodes: &[RawNode], nodes: &mut [Node]) -> Netboot {
        let at = keys(&["netboot"]);
        let server = self.ipv4(&with(&at, "server"), raw.server.as_deref(), "[netboot] server");
        let subnet = raw.subnet.as_deref().and_then(|text| match text.parse::<Ipv4Net>() {
            Ok(net) if net.trunc() == net => Some(net),
            Ok(net) => {
                let msg =
                    format!("[netboot] subnet `{text}` has host bits set: the network is {}", net.trunc());
                self.err(&with(&at, "subnet"), msg, None);
                None
            }
            Err(_) => {
                let msg = format!("[netboot] subnet `{text}` is not an IPv4 network such as 10.0.0.0/24");
                self.err(&with(&at, "subnet"), msg, None);
                None
            }
        });
        let router = self.ipv4(&with(&at, "router"), raw.router.as_deref(), "[netboot] router");
        self.on_subnet(&with(&at, "router"), router, subnet, "[netboot] router");
        let range = raw.range.as_ref().and_then(|r| {
            let at = with(&at, "range");
            let [first, last] = r.as_slice() else {
                self.err(&at, "[netboot] range takes two addresses, the first and the last".into(), None);
                return None;
            };
            let first = self.ipv4(&with(&at, "0"), Some(first), "[netboot] range")?;
            let last = self.ipv4(&with(&at, "1"), Some(last), "[netboot] range")?;
            self.on_subnet(&with(&at, "0"), Some(first), subnet, "[netboot] range");
            self.on_subnet(&with(&at, "1"), Some(last), subnet, "[netboot] range");
            if first > last {
                self.err(&at, format!("[netboot] range: {first} comes after {last}"), None);
            }
            Some((first, last))
        });
        let http = raw.http.as_ref().map(|url| {
            if !url.starts_with("http://") || url.len() <= "http://".len() {
                let msg = format!("[netboot] http `{url}` is not an http:// URL");
                let help = "PXELINUX and GRUB fetch over plain HTTP: give e.g. http://10.0.0.1:8080/";
                self.err(&with(&at, "http"), msg, Some(help));
            }
            if url.ends_with('/') {
                url.clone()
            } else {
                format!("{url}/")
            }
        });

        let unknown_boots_image = match raw.unknown.as_deref() {
            None | Some("local") => false,
            Some("image") => true,
            Some(other) => {
                let msg = format!(
                    "[netboot] unknown = `{other}`: machines not in the inventory boot `local` or `image`"
                );
                let help =
                    "local: their own disk; image: the image, which finds no node and says what it sees";
                self.err(&with(&at, "unknown"), msg, Some(help));
                false
            }
        };
        let mut taken: BTreeMap<Ipv4Addr, String> = BTreeMap::new();
        for (i, (raw, node)) in raw_nodes.iter().zip(nodes.iter_mut()).enumerate() {
            let at = keys(&["nodes", &i.to_string(), "netboot-address"]);
            let who = format!("node {}", node.name);
            let address = match raw.netboot_address.as_deref() {
                Some(text) => {
                    let ip = self.ipv4(&at, Some(text), &format!("{who}: netboot-address"));
                    self.on_subnet(&at, ip, subnet, &format!("{who}: netboot-address"));
                    if let Some((other, iface)) =
                        ip.and_then(|ip| self.addrs.get(&ip.into())).filter(|(other, _)| *other != node.name)
                    {
                        let msg = format!("{who}: netboot-address {} is node {other}'s on `{iface}`", text);
                        self.err(&at, msg, None);
                    }
                    ip
                }
                None => untagged_address(node, subnet),
            };
            let Some(ip) = address else {
                if subnet.is_some() && range.is_none() {
                    let msg = format!(
                        "{who}: DHCP has no address for it at network boot, so it will not be answered"
                    );
                    let help = "give it netboot-address, an address on a link or bond in [netboot] subnet, \
                                or set [netboot] range";
                    self.warn(&keys(&["nodes", &i.to_string(), "name"]), msg, Some(help));
                }
                continue;
            };
            if let Some(other) = taken.insert(ip, node.name.clone()) {
                self.err(&at, format!("{who}: boots with {ip}, as node {other} does"), None);
            }
            if let Some((first, last)) = range.filter(|(f, l)| (*f..=*l).contains(&ip)) {
                let msg = format!(
                    "{who}: boots with {ip}, inside [netboot] range {first}-{last}: DHCP may hand it to \
                     another machine first"
                );
                let at = if raw.netboot_address.is_some() { at } else { keys(&["netboot", "range"]) };
                self.warn(&at, msg, Some("keep the range clear of the nodes' addresses"));
            }
            node.netboot_address = Some(ip);
        }
        Netboot { server, subnet, range, router, http, unknown_boots_image }
    }

    /// `text` as an IPv4 address; an error at `at` naming `what` when it is not one.
    fn ipv4(&mut self, at: &[String], text: Option<&str>, what: &str) -> Option<Ipv4Addr> {
        let text = text?;
        match text.parse::<Ipv4Addr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                self.err(at, format!("{what}: `{text}` is not an IPv4 address"), None);
                None
            }
        }
    }

    fn on_subnet(&mut self, at: &[String], ip: Option<Ipv4Addr>, subnet: Option<Ipv4Net>, what: &str) {
        if let (Some(ip), Some(net)) = (ip, subnet) {
            if !net.contains(&ip) {
                self.err(at, format!("{what}: {ip} is not in [netboot] subnet {net}"), None);
            }
        }
    }
}

/// The first IPv4 address of an untagged interface of the node (a link outside any bond,
/// or a bond) on `subnet`, or on any network without one: what the NIC that boots from
/// the network has on its native VLAN.
fn untagged_address(node: &Node, subnet: Option<Ipv4Net>) -> Option<Ipv4Addr> {
    node.interfaces
        .iter()
        .filter(|i| match i.kind {
            Kind::Link { .. } => i.master.is_none(),
            Kind::Bond { .. } => true,
            Kind::Vlan { .. } => false,
        })
        .flat_map(|i| &i.addresses)
        .filter_map(|a| match a.addr() {
            std::net::IpAddr::V4(v4) => Some(v4),
            std::net::IpAddr::V6(_) => None,
        })
        .find(|ip| subnet.is_none_or(|net| net.contains(ip)))
}
