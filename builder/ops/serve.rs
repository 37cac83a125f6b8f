//! `smelt serve DIR`: a directory — a `NAME.netboot` tree — over HTTP, and with `--tftp`
//! over TFTP too, for a lab test without setting up servers ([`crate::server`]). DHCP
//! stays with dnsmasq (see the tree's `dnsmasq.conf`).

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;

use crate::server::Server;

pub struct ServeOptions {
    pub dir: PathBuf,
    pub listen: SocketAddr,
    /// Where to serve TFTP too.
    pub tftp: Option<SocketAddr>,
}

/// Serves until stopped (Ctrl-C).
pub fn serve(opts: &ServeOptions) -> anyhow::Result<String> {
    let server = Server::new(&opts.dir, "smelt serve", None)?;
    let listener = TcpListener::bind(opts.listen).with_context(|| {
        format!("listening on {}: is another server there? choose another with --listen", opts.listen)
    })?;
    eprintln!(
        "smelt: serving {} on http://{}/ (Ctrl-C stops)",
        server.root().display(),
        listener.local_addr().unwrap_or(opts.listen)
    );
    if let Some(addr) = opts.tftp {
        let socket = UdpSocket::bind(addr).with_context(|| {
            format!(
                "TFTP on {addr}: is another server there? (port 69 needs root) choose another with --tftp"
            )
        })?;
        eprintln!("smelt: serving {} by TFTP on {addr}", server.root().display());
        server.tftp(socket);
    }
    Arc::new(server).run(listener);
    Ok(String::new())
}
