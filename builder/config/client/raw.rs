//! `client.toml` as written: the serde types, every key named as in the file. Checked
//! into the model by [`super::check`].

use serde::Deserialize;

#[derive(Deserialize)]
pub(super) struct RawFile {
    pub(super) client: RawClient,
    #[serde(default)]
    pub(super) nodes: Vec<RawNode>,
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
    #[serde(default)]
    pub(super) links: Vec<RawLink>,
    #[serde(default)]
    pub(super) bonds: Vec<RawBond>,
    #[serde(default)]
    pub(super) vlans: Vec<RawVlan>,
}

// The addressing keys repeat in each interface kind (serde's flatten would hide unknown
// keys from the unknown-key check).
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) struct RawLink {
    pub(super) name: String,
    pub(super) mac: String,
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

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) struct RawBond {
    pub(super) name: String,
    #[serde(default)]
    pub(super) members: Vec<String>,
    pub(super) mode: String,
    pub(super) miimon: Option<u32>,
    pub(super) updelay: Option<u32>,
    pub(super) downdelay: Option<u32>,
    pub(super) primary: Option<String>,
    pub(super) lacp_rate: Option<String>,
    pub(super) xmit_hash_policy: Option<String>,
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

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) struct RawVlan {
    pub(super) name: String,
    pub(super) link: String,
    pub(super) id: i64,
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

#[derive(Deserialize)]
pub(super) struct RawRoute {
    pub(super) to: String,
    pub(super) via: Option<String>,
    pub(super) metric: Option<u32>,
}
