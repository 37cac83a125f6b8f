//! What each node is given: the file of OUTDIR it boots from (its own bootable ISO or
//! the shared one, its config drive, or the netboot tree), the URL its BMC fetches it
//! by, and the boot override that takes it there.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::redfish::BootTarget;

/// The kind of media delivered, as `--media` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Media {
    /// The bootable ISO: the node's own (`--per-node`) or the image's
    Iso,
    /// The node's config drive (`config-drive/NODE.iso`), for an image that boots already
    ConfigDrive,
    /// No media: a one-time network boot (PXE, or UEFI HTTP of the tree's NAME.efi)
    Netboot,
}

/// What OUTDIR holds for delivering, read once.
pub struct Outputs {
    /// The image's name (report.json's `image`).
    pub name: String,
    /// The directory served: OUTDIR, or the netboot tree.
    pub root: PathBuf,
    pub media: Media,
}

impl Outputs {
    pub fn read(outdir: &Path, media: Media) -> anyhow::Result<Outputs> {
        let report = outdir.join("report.json");
        let text = std::fs::read_to_string(&report).with_context(|| {
            format!(
                "reading {}: deliver takes the OUTDIR of a `smelt build` (its report.json names the image)",
                report.display()
            )
        })?;
        #[derive(serde::Deserialize)]
        struct Named {
            image: String,
        }
        let name = serde_json::from_str::<Named>(&text)
            .with_context(|| format!("{}: not a smelt report (no `image`)", report.display()))?
            .image;
        let root = match media {
            Media::Netboot => {
                let tree = outdir.join(format!("{name}.netboot"));
                if !tree.is_dir() {
                    anyhow::bail!(
                        "{} has no {name}.netboot/ to boot the nodes from: add \"netboot\" to the image's outputs and build again",
                        outdir.display()
                    );
                }
                tree
            }
            _ => outdir.to_path_buf(),
        };
        Ok(Outputs { name, root, media })
    }

    /// The file `node` fetches through its BMC (relative to the served root), or `None`
    /// for a network boot, which inserts nothing.
    pub fn file_for(&self, node: &str) -> anyhow::Result<Option<String>> {
        let name = &self.name;
        let candidates = match self.media {
            Media::Netboot => return Ok(None),
            Media::Iso => vec![format!("{name}-{node}.iso"), format!("{name}.iso")],
            Media::ConfigDrive => vec![format!("config-drive/{node}.iso")],
        };
        match candidates.iter().find(|c| self.root.join(c).is_file()) {
            Some(found) => Ok(Some(found.clone())),
            None => anyhow::bail!(
                "node {node}: {} has none of {}: {}",
                self.root.display(),
                candidates.join(", "),
                match self.media {
                    Media::Iso => "build the image with outputs = [\"iso\"] and a kernel (and --per-node for one per node)",
                    _ => "build with outputs = [\"config-drive\"] and --client",
                }
            ),
        }
    }

    /// The file a UEFI node boots by HTTP from the netboot tree: its own unified kernel
    /// image, else the shared one, when the tree has one.
    pub fn uefi_http_file(&self, node: &str) -> Option<String> {
        let name = &self.name;
        [format!("nodes/{node}/{name}.efi"), format!("{name}.efi")]
            .into_iter()
            .find(|f| self.root.join(f).is_file())
    }

    /// The one-time boot that takes `node` to what it was given, on a System that boots
    /// UEFI or not.
    pub fn target(&self, node: &str, uefi: bool, base: &str) -> BootTarget {
        match self.media {
            Media::Iso | Media::ConfigDrive => BootTarget::Cd,
            Media::Netboot => match self.uefi_http_file(node).filter(|_| uefi) {
                Some(file) => BootTarget::UefiHttp(url(base, &file)),
                None => BootTarget::Pxe,
            },
        }
    }
}

/// `base` and a path under it, spaces and the like escaped.
pub fn url(base: &str, rel: &str) -> String {
    let mut out = base.trim_end_matches('/').to_string();
    out.push('/');
    for b in rel.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The base URL a BMC fetches files from: `--base-url` when given; else smelt's own
/// server, by the address this host reaches `bmc_url`'s host from when it listens on
/// every address.
pub fn base_for(base_url: Option<&str>, serve: SocketAddr, bmc_url: &str) -> String {
    if let Some(base) = base_url {
        return base.trim_end_matches('/').to_string();
    }
    let ip =
        if serve.ip().is_unspecified() { local_toward(bmc_url).unwrap_or(serve.ip()) } else { serve.ip() };
    match ip {
        IpAddr::V6(v6) => format!("http://[{v6}]:{}", serve.port()),
        IpAddr::V4(v4) => format!("http://{v4}:{}", serve.port()),
    }
}

/// This host's address on the route to the host in `url` (no packet is sent: a UDP
/// socket is connected, which only picks the route).
fn local_toward(url: &str) -> Option<IpAddr> {
    let host = host_of(url)?;
    let target = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), 443)).ok()?.next()?;
    let socket = UdpSocket::bind(if target.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }).ok()?;
    socket.connect(target).ok()?;
    Some(socket.local_addr().ok()?.ip())
}

/// The port of a URL, when it says one.
pub fn host_port(url: &str) -> Option<u16> {
    let authority = url.split_once("://")?.1.split('/').next()?;
    let port = authority.rsplit_once(':')?.1;
    if port.contains(']') {
        return None;
    }
    port.parse().ok()
}

/// The host of a URL (`https://HOST[:PORT]/…`), without brackets.
pub fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().map(str::to_string);
    }
    Some(authority.split(':').next()?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_hosts() {
        assert_eq!(url("http://h:8470/", "config-drive/n 1.iso"), "http://h:8470/config-drive/n%201.iso");
        assert_eq!(host_of("https://10.1.0.21:8443/redfish"), Some("10.1.0.21".into()));
        assert_eq!(host_of("https://[fd00::21]"), Some("fd00::21".into()));
        assert_eq!(host_of("http://bmc-n1.acme.example"), Some("bmc-n1.acme.example".into()));
        assert_eq!(host_port("http://10.0.2.2:8470/check-in"), Some(8470));
        assert_eq!(host_port("http://[fd00::1]/check-in"), None);
        let serve: SocketAddr = "127.0.0.1:8470".parse().unwrap();
        assert_eq!(base_for(None, serve, "https://10.1.0.21"), "http://127.0.0.1:8470");
        assert_eq!(base_for(Some("https://files.example/acme/"), serve, "x"), "https://files.example/acme");
        let any: SocketAddr = "0.0.0.0:8470".parse().unwrap();
        assert_eq!(base_for(None, any, "http://127.0.0.1:8000"), "http://127.0.0.1:8470");
    }
}
