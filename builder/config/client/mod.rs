//! `client.toml`: a client's nodes and their static networking (links found by MAC,
//! bonds, VLANs, addresses, gateways, routes), checked into [`Client`] with every
//! problem reported at once, each at its place and naming its node.

mod check;
mod raw;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use ipnet::{IpNet, Ipv4Net};

use super::source::{Diagnostic, TomlFile};
pub use check::check;

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
    /// The provisioning network, for the `netboot` output.
    pub netboot: Netboot,
    /// `[deliver] check-in`: the URL each node's network step POSTs its check-in to
    /// (`smelt deliver` listens for it); the images carry it.
    pub check_in: Option<String>,
    /// What `check` found worth saying that stops nothing.
    #[serde(skip)]
    pub warnings: Vec<Diagnostic>,
}

/// `[netboot]`: where the nodes boot from the network, as the DHCP configs of the
/// `netboot` output say it. Every part is optional.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Netboot {
    /// The boot server's address (TFTP and DHCP's next server).
    pub server: Option<Ipv4Addr>,
    /// The network DHCP serves.
    pub subnet: Option<Ipv4Net>,
    /// Addresses DHCP hands out to machines it does not know (first, last).
    pub range: Option<(Ipv4Addr, Ipv4Addr)>,
    pub router: Option<Ipv4Addr>,
    /// Where the tree is served over HTTP, ending in `/`: loaders fetch the kernel and
    /// initramfs from there instead of by TFTP.
    pub http: Option<String>,
    /// What a machine whose MAC no node has boots: its local disk (`false`), or the
    /// image, to find out what it is (`true`).
    pub unknown_boots_image: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Node {
    pub name: String,
    pub hostname: String,
    pub serial: Option<String>,
    pub ssh_keys: Vec<String>,
    pub dns: Vec<IpAddr>,
    /// What DHCP hands the node's links at network boot: `netboot-address`, else an
    /// address of a link or bond (untagged) on `[netboot] subnet`.
    pub netboot_address: Option<Ipv4Addr>,
    /// Links first, then bonds, then VLANs: the order they are brought up.
    pub interfaces: Vec<Interface>,
    /// Its BMC, for `deliver`; never seen by templates.
    #[serde(skip)]
    pub bmc: Option<Bmc>,
}

/// A node's BMC, reached over Redfish.
#[derive(Debug, Clone)]
pub struct Bmc {
    /// `https://HOST[:PORT]`, no trailing `/`.
    pub url: String,
    pub username: String,
    pub password: Password,
    pub trust: Trust,
    /// The Redfish system id, when the BMC has several.
    pub system: Option<String>,
}

/// Where a BMC's password is read from when it is needed; never held in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Password {
    Env(String),
    File(std::path::PathBuf),
}

/// How a BMC's TLS certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Against the system's CAs.
    System,
    /// Against this CA file.
    Ca(std::path::PathBuf),
    /// Not at all (`insecure = true`).
    Insecure,
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

impl Node {
    /// The MACs of its links, in order.
    pub fn macs(&self) -> impl Iterator<Item = &str> {
        self.interfaces.iter().filter_map(|i| match &i.kind {
            Kind::Link { mac } => Some(mac.as_str()),
            _ => None,
        })
    }
}

impl Kind {
    /// `link`, `bond` or `vlan`, as templates and file names say it.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Link { .. } => "link",
            Kind::Bond { .. } => "bond",
            Kind::Vlan { .. } => "vlan",
        }
    }
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

#[cfg(test)]
mod tests {
    use super::raw::*;

    #[test]
    fn the_reference_documents_every_client_key() {
        use crate::config::doc_keys::{assert_documented, keys, CLIENT};
        assert_documented(
            CLIENT,
            "# client.toml",
            &[
                keys::<RawFile>(),
                keys::<RawClient>(),
                keys::<RawNode>(),
                keys::<RawLink>(),
                keys::<RawBond>(),
                keys::<RawVlan>(),
                keys::<RawRoute>(),
                keys::<RawNetboot>(),
                keys::<RawBmc>(),
                keys::<RawDeliver>(),
            ],
        );
    }
}
