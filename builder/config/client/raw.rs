//! `client.toml` as written: the serde types, every key named as in the file. Checked
//! into the model by [`super::check`].

use serde::Deserialize;

#[derive(Deserialize)]
pub(super) struct RawFile {
    pub(super) client: RawClient,
    #[serde(default)]
    pub(super) nodes: Vec<RawNode>,
    pub(super) netboot: Option<RawNetboot>,
    /// `[bmc]`: what every node's BMC shares (user, password source, CA).
    pub(super) bmc: Option<RawBmc>,
    /// `[deliver]`: where nodes report once their network is up.
    pub(super) deliver: Option<RawDeliver>,
}

/// `[deliver]`: what `smelt deliver` and the images share.
#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub(super) struct RawDeliver {
    pub(super) check_in: Option<String>,
}

/// A node's BMC (`bmc = { … }`), or the client-wide defaults (`[bmc]`).
#[derive(Deserialize, Default, Clone)]
#[serde(rename_all = "kebab-case")]
pub(super) struct RawBmc {
    pub(super) url: Option<String>,
    pub(super) username: Option<String>,
    pub(super) password_env: Option<String>,
    pub(super) password_file: Option<String>,
    /// Read only to refuse it: a password does not belong in client.toml.
    pub(super) password: Option<serde_json::Value>,
    pub(super) ca: Option<String>,
    pub(super) insecure: Option<bool>,
    pub(super) system: Option<String>,
}

/// `[netboot]`: the provisioning network the `netboot` output's DHCP configs serve.
#[derive(Deserialize, Default)]
pub(super) struct RawNetboot {
    pub(super) server: Option<String>,
    pub(super) subnet: Option<String>,
    pub(super) range: Option<Vec<String>>,
    pub(super) router: Option<String>,
    pub(super) http: Option<String>,
    pub(super) unknown: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct RawClient {
    pub(super) name: String,
    pub(super) domain: Option<String>,
    pub(super) timezone: Option<String>,
    #[serde(default)]
    pub(super) dns: Vec<String>,
    #[serde(default)]
    pub(super) search: Vec<String>,
    #[serde(default)]
    pub(super) ntp: Vec<String>,
    #[serde(default, rename = "ssh-keys")]
    pub(super) ssh_keys: Vec<String>,
}

#[derive(Deserialize)]
pub(super) struct RawNode {
    pub(super) name: String,
    #[serde(default, rename = "ssh-keys")]
    pub(super) ssh_keys: Vec<String>,
    pub(super) hostname: Option<String>,
    pub(super) serial: Option<String>,
    pub(super) dns: Option<Vec<String>>,
    #[serde(rename = "netboot-address")]
    pub(super) netboot_address: Option<String>,
    #[serde(default)]
    pub(super) links: Vec<RawLink>,
    #[serde(default)]
    pub(super) bonds: Vec<RawBond>,
    #[serde(default)]
    pub(super) vlans: Vec<RawVlan>,
    pub(super) bmc: Option<RawBmc>,
}

/// An interface kind's raw type: its own keys, then the addressing keys every kind
/// takes. A macro rather than `#[serde(flatten)]`, which would hide unknown keys from
/// the unknown-key check.
macro_rules! interface {
    ($(#[$doc:meta])* $name:ident { $($(#[$attr:meta])* $field:ident: $ty:ty,)* }) => {
        $(#[$doc])*
        #[derive(Deserialize)]
        #[serde(rename_all = "kebab-case")]
        pub(super) struct $name {
            pub(super) name: String,
            $($(#[$attr])* pub(super) $field: $ty,)*
            pub(super) mtu: Option<u32>,
            #[serde(default)]
            pub(super) addresses: Vec<String>,
            pub(super) gateway: Option<String>,
            pub(super) gateway6: Option<String>,
            #[serde(default)]
            pub(super) dhcp: bool,
            #[serde(default)]
            pub(super) routes: Vec<RawRoute>,
        }
    };
}

interface!(
    /// A physical NIC, found by its MAC.
    RawLink { mac: String, }
);

interface!(
    /// A bond of links.
    RawBond {
        #[serde(default)]
        members: Vec<String>,
        mode: String,
        miimon: Option<u32>,
        updelay: Option<u32>,
        downdelay: Option<u32>,
        primary: Option<String>,
        lacp_rate: Option<String>,
        xmit_hash_policy: Option<String>,
    }
);

interface!(
    /// A VLAN on a link or bond.
    RawVlan { link: String, id: i64, }
);

#[derive(Deserialize)]
pub(super) struct RawRoute {
    pub(super) to: String,
    pub(super) via: Option<String>,
    pub(super) metric: Option<u32>,
}
