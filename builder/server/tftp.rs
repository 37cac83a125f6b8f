//! TFTP for `smelt serve --tftp`: read requests of the served directory's files
//! (async-tftp, with block size, transfer size and window size options), each shown
//! as HTTP ones are, with the node it is for. Writes are refused.

use std::fs::File;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use async_tftp::packet;
use blocking::Unblock;
use futures_lite::AsyncRead;

use super::{open_inside, relative, Opened, Seen, ANNOUNCE};
use crate::config::size::human;

/// Serves `root` by TFTP on `socket` until the process stops.
pub fn serve(root: PathBuf, seen: Arc<Seen>, socket: UdpSocket) -> anyhow::Result<()> {
    let addr = socket.local_addr()?;
    futures_lite::future::block_on(async {
        let fail = |e: async_tftp::Error| anyhow::anyhow!("TFTP on {addr}: {e}");
        let builder = async_tftp::server::TftpServerBuilder::with_handler(Files { root, seen })
            .std_socket(socket)
            .map_err(fail)?;
        let server = builder.build().await.map_err(fail)?;
        server.serve().await.map_err(|e| anyhow::anyhow!("TFTP on {addr}: {e}"))
    })
}

struct Files {
    root: PathBuf,
    seen: Arc<Seen>,
}

impl async_tftp::server::Handler for Files {
    type Reader = Counted;
    type Writer = futures_lite::io::Sink;

    async fn read_req_open(
        &mut self,
        client: &SocketAddr,
        path: &Path,
    ) -> Result<(Counted, Option<u64>), packet::Error> {
        let peer = client.ip().to_string();
        let Some(rel) = path.to_str().and_then(relative) else {
            return Err(packet::Error::PermissionDenied);
        };
        let who = self.seen.which(&rel, &peer).map_or(String::new(), |n| format!(" {n}"));
        let (file, size) = match open_inside(&self.root, &rel) {
            Opened::File(file, size) => (file, size),
            Opened::Outside => {
                eprintln!(
                    "smelt serve: {peer}{who} TFTP /{rel} refused (a link out of the served directory)"
                );
                return Err(packet::Error::PermissionDenied);
            }
            Opened::Missing | Opened::Directory => {
                eprintln!("smelt serve: {peer}{who} TFTP /{rel} not found");
                return Err(packet::Error::FileNotFound);
            }
        };
        if size >= ANNOUNCE {
            eprintln!("smelt serve: {peer}{who} TFTP /{rel}: sending {}", human(size));
        }
        let label = format!("{peer}{who} TFTP /{rel}");
        let counted = Counted { inner: Unblock::new(file), sent: 0, size, label, started: Instant::now() };
        Ok((counted, Some(size)))
    }

    async fn write_req_open(
        &mut self,
        _client: &SocketAddr,
        _path: &Path,
        _size: Option<u64>,
    ) -> Result<futures_lite::io::Sink, packet::Error> {
        Err(packet::Error::IllegalOperation)
    }
}

/// A file being sent, counted, and shown when the transfer ends (the reader is dropped).
pub struct Counted {
    inner: Unblock<File>,
    sent: u64,
    size: u64,
    label: String,
    started: Instant,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            self.sent += n as u64;
        }
        polled
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let seconds = self.started.elapsed().as_secs_f64();
        if self.sent >= self.size {
            eprintln!("smelt serve: {} {} in {seconds:.1} s", self.label, human(self.sent));
        } else {
            eprintln!(
                "smelt serve: {}: stopped after {} of {}",
                self.label,
                human(self.sent),
                human(self.size)
            );
        }
    }
}
