//! The file server `smelt serve` and `smelt deliver` share: a directory over HTTP — GET
//! and HEAD of its files (byte ranges too), nothing outside it (no `..`, no link that
//! leads out), each request on its own thread — and with [`tftp`] over TFTP too. Every
//! transfer is logged on stderr as it finishes, with the node it is for (known from a
//! netboot tree's `netboot.json`, or from what [`Watcher::node_of`] says), and large ones
//! as they start, so a slow node can be told from a stuck one. A [`Watcher`] hears of
//! each transfer and answers POSTs (deliver's check-ins); without one a POST is refused.

mod tftp;

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _, Seek as _, SeekFrom, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context as _;

use crate::config::size::human;
use crate::outputs::netboot::Nodes;

/// Transfers at least this large are announced when they start.
const ANNOUNCE: u64 = 4 << 20;

/// The most of a POST body read.
const MAX_POST: usize = 64 << 10;

/// A file sent (or not) to a client.
pub struct Transfer<'a> {
    pub peer: &'a str,
    pub node: Option<&'a str>,
    /// The path inside the served directory.
    pub path: &'a str,
    /// The HTTP status (or 200 for a TFTP transfer that completed).
    pub status: u16,
    pub bytes: u64,
}

/// What a user of the server (deliver) hears and answers.
pub trait Watcher: Send + Sync {
    /// The node a path is for, when the netboot tree does not say.
    fn node_of(&self, _path: &str) -> Option<String> {
        None
    }
    /// A transfer ended.
    fn sent(&self, _transfer: &Transfer) {}
    /// A POST to `path`: the reply's status line and body, or `None` to refuse it (405).
    fn posted(&self, _peer: &str, _path: &str, _body: &str) -> Option<(&'static str, String)> {
        None
    }
}

/// A served directory, its nodes, and who watches.
pub struct Server {
    root: PathBuf,
    seen: Arc<Seen>,
    watcher: Option<Arc<dyn Watcher>>,
    /// Begins each log line: `smelt serve`, `smelt deliver`.
    label: &'static str,
}

impl Server {
    pub fn new(dir: &Path, label: &'static str, watcher: Option<Arc<dyn Watcher>>) -> anyhow::Result<Server> {
        let root = std::fs::canonicalize(dir)
            .with_context(|| format!("serving {}: no such directory", dir.display()))?;
        if !root.is_dir() {
            anyhow::bail!("serving {}: not a directory", root.display());
        }
        let seen = Arc::new(Seen { nodes: Nodes::read(&root), last: Mutex::new(HashMap::new()) });
        Ok(Server { root, seen, watcher, label })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Serves TFTP on `socket` from a thread of its own; the process ends if it fails.
    pub fn tftp(&self, socket: std::net::UdpSocket) {
        let (root, seen, label) = (self.root.clone(), Arc::clone(&self.seen), self.label);
        std::thread::spawn(move || {
            if let Err(e) = tftp::serve(root, seen, socket) {
                eprintln!("{label}: {e:#}");
                std::process::exit(1);
            }
        });
    }

    /// Answers every connection `listener` accepts, each on a thread, until the process ends.
    pub fn run(self: Arc<Self>, listener: TcpListener) {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let server = Arc::clone(&self);
            std::thread::spawn(move || {
                let peer = stream.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default();
                if let Err(e) = server.answer(stream, &peer) {
                    eprintln!("{}: {peer}: {e:#}", server.label);
                }
            });
        }
    }

    fn node(&self, path: &str, peer: &str) -> Option<String> {
        self.seen.which(path, peer).or_else(|| self.watcher.as_ref().and_then(|w| w.node_of(path)))
    }

    fn tell(&self, transfer: &Transfer) {
        if let Some(w) = &self.watcher {
            w.sent(transfer);
        }
    }
}

/// The tree's nodes, and the node each client address last asked for a file of: a
/// node's kernel and shared initramfs come after its own config, from its address.
struct Seen {
    nodes: Nodes,
    last: Mutex<HashMap<String, String>>,
}

impl Seen {
    fn which(&self, path: &str, peer: &str) -> Option<String> {
        let mut last = self.last.lock().expect("a request thread panicked");
        match self.nodes.which(path, peer) {
            Some(node) => {
                last.insert(peer.to_string(), node.to_string());
                Some(node.to_string())
            }
            None => last.get(peer).cloned(),
        }
    }
}

impl Server {
    /// Reads one request and answers it; the connection is closed after it.
    fn answer(&self, stream: TcpStream, peer: &str) -> anyhow::Result<()> {
        let label = self.label;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let (mut range, mut length) = (None, 0usize);
        let mut header = String::new();
        // Headers up to the blank line, of which only Range and Content-Length matter;
        // a bound on their number.
        for _ in 0..100 {
            header.clear();
            if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.trim().eq_ignore_ascii_case("range") {
                    range = Some(value.trim().to_string());
                } else if name.trim().eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut out = stream;
        let mut parts = line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        if method == "POST" {
            let mut body = vec![0; length.min(MAX_POST)];
            reader.read_exact(&mut body)?;
            let body = String::from_utf8_lossy(&body);
            let path = relative(target).unwrap_or_default();
            return match self.watcher.as_ref().and_then(|w| w.posted(peer, &path, &body)) {
                Some((code, reply)) => status(&mut out, code, &reply),
                None => status(&mut out, "405 Method Not Allowed", "only GET and HEAD are served\n"),
            };
        }
        if method != "GET" && method != "HEAD" {
            return status(&mut out, "405 Method Not Allowed", "only GET and HEAD are served\n");
        }
        let Some(rel) = relative(target) else {
            return status(&mut out, "400 Bad Request", "paths stay inside the served directory\n");
        };
        let node = self.node(&rel, peer);
        let who = node.as_deref().map_or(String::new(), |n| format!(" {n}"));
        let refused =
            |code: u16| Transfer { peer, node: node.as_deref(), path: &rel, status: code, bytes: 0 };
        let mut file = match open_inside(&self.root, &rel) {
            Opened::File(file, size) => (file, size),
            Opened::Missing => {
                eprintln!("{label}: {peer}{who} {method} /{rel} 404");
                self.tell(&refused(404));
                return status(&mut out, "404 Not Found", "not in the served directory\n");
            }
            Opened::Directory => {
                eprintln!("{label}: {peer}{who} {method} /{rel} 404 (a directory)");
                self.tell(&refused(404));
                return status(&mut out, "404 Not Found", "a directory\n");
            }
            Opened::Outside => {
                eprintln!("{label}: {peer}{who} {method} /{rel} 403 (a link out of the served directory)");
                self.tell(&refused(403));
                return status(&mut out, "403 Forbidden", "a link out of the served directory\n");
            }
        };
        let size = file.1;
        let (code, from, len) = match range.as_deref().and_then(|r| byte_range(r, size)) {
            Some((from, to)) => ("206 Partial Content", from, to - from + 1),
            None => ("200 OK", 0, size),
        };
        let mut head = format!(
            "HTTP/1.1 {code}\r\nContent-Length: {len}\r\nContent-Type: application/octet-stream\r\n\
             Accept-Ranges: bytes\r\nConnection: close\r\n"
        );
        if from > 0 || len != size {
            head.push_str(&format!("Content-Range: bytes {from}-{}/{size}\r\n", from + len - 1));
        }
        out.write_all(format!("{head}\r\n").as_bytes())?;
        if method == "HEAD" {
            return Ok(());
        }
        if len >= ANNOUNCE {
            eprintln!("{label}: {peer}{who} GET /{rel}: sending {}", human(len));
        }
        let started = Instant::now();
        file.0.seek(SeekFrom::Start(from))?;
        // std copies file to socket in the kernel (sendfile).
        let sent = std::io::copy(&mut file.0.take(len), &mut out);
        let seconds = started.elapsed().as_secs_f64();
        match sent {
            Ok(n) => {
                eprintln!("{label}: {peer}{who} GET /{rel} {} {} in {seconds:.1} s", &code[..3], human(n));
                let status = if code.starts_with("206") { 206 } else { 200 };
                self.tell(&Transfer { peer, node: node.as_deref(), path: &rel, status, bytes: n });
            }
            Err(e) => eprintln!("{label}: {peer}{who} GET /{rel}: stopped after {seconds:.1} s: {e}"),
        }
        Ok(())
    }
}

/// What a path of the served directory is, once its links are followed.
pub(super) enum Opened {
    /// A regular file, open, and its size.
    File(std::fs::File, u64),
    Missing,
    Directory,
    /// A symbolic link (or a path through one) that leads out of the directory.
    Outside,
}

/// Opens `rel` (already free of `..`) under `root` (canonical) — only when what it
/// resolves to, links followed, is still under `root`.
pub(super) fn open_inside(root: &Path, rel: &str) -> Opened {
    let Ok(real) = std::fs::canonicalize(root.join(rel)) else { return Opened::Missing };
    if !real.starts_with(root) {
        return Opened::Outside;
    }
    match std::fs::File::open(&real).and_then(|f| f.metadata().map(|m| (f, m))) {
        Ok((file, meta)) if meta.is_file() => Opened::File(file, meta.len()),
        Ok(_) => Opened::Directory,
        Err(_) => Opened::Missing,
    }
}

/// The request target as a path inside the served directory: query dropped, `%XX`
/// decoded, and refused when any part climbs out (`..`) or is not UTF-8.
fn relative(target: &str) -> Option<String> {
    let path = target.split(['?', '#']).next()?;
    let path = path.strip_prefix("http://").map_or(path, |rest| rest.find('/').map_or("/", |i| &rest[i..]));
    let mut bytes = Vec::new();
    let raw = path.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' && i + 2 < raw.len() {
            let hex = std::str::from_utf8(&raw[i + 1..i + 3]).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            bytes.push(raw[i]);
            i += 1;
        }
    }
    let text = String::from_utf8(bytes).ok()?;
    let parts: Vec<&str> = text.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    if parts.contains(&"..") {
        return None;
    }
    Some(parts.join("/"))
}

/// One `bytes=FROM-TO` (or `FROM-`, or `-LAST`) range within `size`, as (first, last).
fn byte_range(header: &str, size: u64) -> Option<(u64, u64)> {
    let spec = header.strip_prefix("bytes=")?;
    if spec.contains(',') || size == 0 {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (from, to) = match (a.trim(), b.trim()) {
        ("", last) => (size.saturating_sub(last.parse().ok()?), size - 1),
        (from, "") => (from.parse().ok()?, size - 1),
        (from, to) => (from.parse().ok()?, to.parse::<u64>().ok()?.min(size - 1)),
    };
    (from <= to && from < size).then_some((from, to))
}

fn status(out: &mut TcpStream, code: &str, body: &str) -> anyhow::Result<()> {
    let text = format!(
        "HTTP/1.1 {code}\r\nContent-Length: {}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    out.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_and_are_decoded() {
        assert_eq!(relative("/ipxe/52-54.ipxe?x=1").as_deref(), Some("ipxe/52-54.ipxe"));
        assert_eq!(relative("/nodes/n%201/ks.cfg").as_deref(), Some("nodes/n 1/ks.cfg"));
        assert_eq!(relative("http://10.0.2.2:8080/boot.ipxe").as_deref(), Some("boot.ipxe"));
        assert_eq!(relative("/a/../../etc/passwd"), None);
        assert_eq!(relative("/%2e%2e/etc/passwd"), None);
        assert_eq!(relative("/").as_deref(), Some(""));
    }

    #[test]
    fn byte_ranges() {
        assert_eq!(byte_range("bytes=0-99", 1000), Some((0, 99)));
        assert_eq!(byte_range("bytes=900-", 1000), Some((900, 999)));
        assert_eq!(byte_range("bytes=-100", 1000), Some((900, 999)));
        assert_eq!(byte_range("bytes=0-5000", 1000), Some((0, 999)));
        assert_eq!(byte_range("bytes=1000-", 1000), None);
        assert_eq!(byte_range("bytes=0-1,5-6", 1000), None);
    }
}
