//! Reading a bundle back: the layout (or its tar, unpacked first), the manifest and the
//! lock it carries, then every input checked twice as it is laid out — the blob against
//! its digest, the input against the lock's — into `project/`, `elements/NAME/`,
//! `cache/` and `host/PATH` of a scratch directory. Any mismatch or missing blob is an
//! error naming the input and the blob.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use serde_json::Value;

use super::sshsig::{self, PublicKey};
use super::{key, LOCK_TYPE, SIGNATURE_TYPE};
use crate::io::count::CountingWriter;
use crate::lock::{Form, Input, Kind, Lock};

/// A bundle laid out for a rebuild.
pub struct Unpacked {
    pub lock: Lock,
    pub root: PathBuf,
    /// The manifest's digest (`sha256:…`).
    pub manifest: String,
    /// The fingerprint of the key whose signature was verified, with `--verify`.
    pub verified_by: Option<String>,
}

impl Unpacked {
    pub fn project(&self) -> PathBuf {
        self.root.join("project")
    }
    pub fn elements(&self) -> PathBuf {
        self.root.join("elements")
    }
    pub fn cache(&self) -> PathBuf {
        self.root.join("cache")
    }
    pub fn host_root(&self) -> PathBuf {
        self.root.join("host")
    }

    /// Where an input named `kind/path` was laid out.
    pub fn path_of(&self, input: &Input) -> PathBuf {
        let rel = Path::new(input.path.trim_start_matches('/'));
        match input.kind {
            Kind::Project => self.project().join(rel),
            Kind::Element => self.elements().join(rel),
            Kind::Cache => self.cache().join(rel),
            Kind::Host => self.host_root().join(rel),
        }
    }
}

/// Checks and lays out the bundle at `bundle` (a layout directory or its tar; `name` in
/// messages) in `work`; with `verify`, only when a signature by that key verifies over
/// its manifest.
pub fn unpack(
    bundle: &Path,
    name: &str,
    work: &Path,
    verify: Option<&PublicKey>,
) -> anyhow::Result<Unpacked> {
    let meta =
        std::fs::metadata(bundle).with_context(|| format!("reading the bundle {}", bundle.display()))?;
    let layout = if meta.is_dir() {
        bundle.to_path_buf()
    } else {
        let at = work.join("layout");
        untar_layout(bundle, &at)?;
        at
    };
    let bad = |what: String| anyhow::anyhow!("bundle {name}: {what}");
    let index: Value = serde_json::from_slice(
        &std::fs::read(layout.join("index.json"))
            .map_err(|e| bad(format!("no index.json ({e}): not a smelt bundle")))?,
    )
    .map_err(|e| bad(format!("index.json: {e}")))?;
    // Every manifest the index lists, read and checked: the bundle's (its config is a
    // lock) and the signatures whose subject it is.
    let mut read = Vec::new();
    for m in index["manifests"].as_array().cloned().unwrap_or_default() {
        let digest = m["digest"].as_str().unwrap_or_default().to_string();
        let bytes = read_blob(&layout, &digest, "a manifest", name)?;
        let manifest: Value =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("manifest {digest}: {e}")))?;
        read.push((digest, bytes, manifest));
    }
    let mut bundles = read.iter().filter(|(_, _, m)| m["config"]["mediaType"] == LOCK_TYPE);
    let (manifest_digest, manifest_bytes, manifest) = match (bundles.next(), bundles.next()) {
        (Some(one), None) => one.clone(),
        (None, _) => {
            bail!("bundle {name}: no manifest in index.json carries a smelt lock: not a smelt bundle")
        }
        (Some(_), Some(_)) => {
            bail!("bundle {name}: index.json lists several bundles; copy the one to build into a layout of its own")
        }
    };
    let all_signatures = read.iter().filter(|(_, _, m)| m["artifactType"] == SIGNATURE_TYPE);
    let (signatures, of_others): (Vec<_>, Vec<_>) =
        all_signatures.map(|(_, _, m)| m).partition(|m| m["subject"]["digest"] == manifest_digest.as_str());
    if let Some(key) = verify {
        if signatures.is_empty() && !of_others.is_empty() {
            bail!(
                "bundle {name}: its signatures are of another manifest ({}), not of {manifest_digest}: the bundle \
                 was altered after it was signed",
                of_others[0]["subject"]["digest"].as_str().unwrap_or_default()
            );
        }
        verify_signed(&layout, &signatures, &manifest_bytes, key, name)?;
    }
    let config = &manifest["config"];
    let lock_bytes = read_blob(&layout, config["digest"].as_str().unwrap_or_default(), "the lock", name)?;
    let lock: Lock = serde_json::from_slice(&lock_bytes).map_err(|e| bad(format!("the lock: {e}")))?;
    let root = work.join("inputs");
    let verified_by = verify.map(PublicKey::fingerprint);
    let out = Unpacked { lock, root, manifest: manifest_digest, verified_by };
    let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
    for input in &out.lock.inputs {
        let title = input.name();
        let layer =
            layers.iter().find(|l| l["annotations"][key::TITLE] == title.as_str()).ok_or_else(|| {
                bad(format!("input {title} is in the lock but has no layer: the bundle is incomplete"))
            })?;
        lay_out(&layout, layer, input, &out.path_of(input), name)?;
    }
    Ok(out)
}

/// Refuses the bundle unless one of its signatures is `key`'s and verifies over the
/// manifest's bytes (which name every other blob by digest).
fn verify_signed(
    layout: &Path,
    signatures: &[&Value],
    manifest: &[u8],
    key: &PublicKey,
    bundle: &str,
) -> anyhow::Result<()> {
    if signatures.is_empty() {
        bail!(
            "bundle {bundle} is not signed, and --verify wants a signature by {}: ask for a bundle made with \
             smelt bundle --sign",
            key.fingerprint()
        );
    }
    let mut signers = Vec::new();
    for sig in signatures {
        let Some(layer) = sig["layers"].as_array().and_then(|l| l.first()) else { continue };
        let digest = layer["digest"].as_str().unwrap_or_default();
        let armoured = read_blob(layout, digest, "a signature", bundle)?;
        let (signer, ok) = sshsig::check(&String::from_utf8_lossy(&armoured), manifest, sshsig::NAMESPACE)
            .with_context(|| format!("bundle {bundle}: signature {digest}"))?;
        if signer == *key {
            if ok {
                return Ok(());
            }
            bail!(
                "bundle {bundle}: the signature by {} does not verify: the bundle was altered after it was signed",
                key.fingerprint()
            );
        }
        signers.push(signer.fingerprint());
    }
    bail!(
        "bundle {bundle} is signed by {}, not by {}: the key given to --verify",
        signers.join(", "),
        key.fingerprint()
    )
}

/// One input: its blob read through the check of the blob's digest, decompressed when
/// smelt compressed it, checked against the lock's digest, and written at `to`.
fn lay_out(layout: &Path, layer: &Value, input: &Input, to: &Path, bundle: &str) -> anyhow::Result<()> {
    let blob = layer["digest"].as_str().unwrap_or_default();
    let media = layer["mediaType"].as_str().unwrap_or_default();
    let path = blob_path(layout, blob).with_context(|| format!("bundle {bundle}: input {}", input.name()))?;
    let file = File::open(&path).map_err(|e| {
        anyhow::anyhow!(
            "bundle {bundle}: input {}: blob {blob} is missing ({e}): the bundle is incomplete",
            input.name()
        )
    })?;
    let mut blob_reader = HashingReader::new(io::BufReader::with_capacity(1 << 20, file));
    let reader: Box<dyn Read + '_> = match media.strip_suffix("+zstd") {
        Some(_) => Box::new(zstd::Decoder::new(&mut blob_reader)?),
        None => Box::new(&mut blob_reader),
    };
    let mut content = HashingReader::new(reader);
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let written = match input.form {
        Form::File => {
            let mut out = File::create(to).with_context(|| format!("writing {}", to.display()))?;
            io::copy(&mut content, &mut out).map(|_| ())
        }
        Form::Dir => {
            std::fs::create_dir_all(to)?;
            untar_dir(&mut content, to).and_then(|_| io::copy(&mut content, &mut io::sink()).map(|_| ()))
        }
    };
    let (content_hash, _) = content.finish();
    drop(content);
    // The rest of the blob (a zstd frame's end) counts for its digest too.
    io::copy(&mut blob_reader, &mut io::sink())?;
    let (blob_hash, _) = blob_reader.finish();
    let damaged = |what: String| {
        anyhow::anyhow!(
            "bundle {bundle}: input {} (blob {blob}): {what}; the bundle is damaged or was altered, fetch it again",
            input.name()
        )
    };
    if format!("sha256:{blob_hash}") != blob {
        return Err(damaged(format!("the blob's bytes hash to sha256:{blob_hash}")));
    }
    if let Err(e) = written {
        return Err(damaged(format!("cannot be read back ({e})")));
    }
    if content_hash != input.sha256 {
        return Err(damaged(format!("its content hashes to {content_hash}, the lock says {}", input.sha256)));
    }
    if input.form == Form::File {
        use std::os::unix::fs::PermissionsExt as _;
        let ann = &layer["annotations"];
        if let Some(mode) = ann[key::MODE].as_str().and_then(|m| u32::from_str_radix(m, 8).ok()) {
            std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode))?;
        }
        if let Some(mtime) = ann[key::MTIME].as_str().and_then(|m| m.parse::<i64>().ok()) {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime.max(0) as u64);
            File::options().write(true).open(to)?.set_modified(t)?;
        }
    }
    Ok(())
}

/// Unpacks a directory's canonical tar into `to`, modes and mtimes kept, directories'
/// too (set last, deepest first, once nothing more is written in them).
fn untar_dir(reader: impl Read, to: &Path) -> io::Result<()> {
    let mut tar = tar::Archive::new(reader);
    tar.set_preserve_mtime(true);
    tar.set_preserve_permissions(true);
    tar.set_overwrite(true);
    let mut dirs = Vec::new();
    for entry in tar.entries()? {
        let mut entry = entry?;
        let kind = entry.header().entry_type();
        if kind == tar::EntryType::Directory {
            dirs.push((entry.path()?.into_owned(), entry.header().mtime()?));
        }
        if matches!(kind, tar::EntryType::Fifo | tar::EntryType::Char | tar::EntryType::Block) {
            special(&entry, to)?;
            continue;
        }
        if !entry.unpack_in(to)? {
            return Err(io::Error::other(format!("{} leaves the directory", entry.path()?.display())));
        }
    }
    for (dir, mtime) in dirs.iter().rev() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(*mtime);
        File::open(to.join(dir))?.set_modified(t)?;
    }
    Ok(())
}

/// A FIFO or device node of a directory's tar, made as it was (a device node needs root,
/// as it did where the directory was).
fn special<R: Read>(entry: &tar::Entry<R>, to: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt as _;
    let h = entry.header();
    let rel = entry.path()?;
    if rel.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
        return Err(io::Error::other(format!("{} leaves the directory", rel.display())));
    }
    let path = to.join(&rel);
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    let mode = h.mode()? & 0o7777;
    let number = || -> io::Result<libc::dev_t> {
        Ok(libc::makedev(h.device_major()?.unwrap_or(0), h.device_minor()?.unwrap_or(0)))
    };
    let (kind, dev) = match h.entry_type() {
        tar::EntryType::Char => (libc::S_IFCHR, number()?),
        tar::EntryType::Block => (libc::S_IFBLK, number()?),
        _ => (libc::S_IFIFO, 0),
    };
    // SAFETY: a valid C string for the call's duration.
    if unsafe { libc::mknod(c.as_ptr(), kind | mode, dev) } != 0 {
        let e = io::Error::last_os_error();
        let hint =
            if kind == libc::S_IFIFO { "" } else { " (a device node: rebuild from this bundle as root)" };
        return Err(io::Error::other(format!("making {}: {e}{hint}", rel.display())));
    }
    // Its mode as recorded, not as the umask left it.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
    crate::tree::disk::set_mtime(&path, h.mtime()? as i64)
}

/// A blob's path in the layout from its `sha256:HEX` digest (nothing else is accepted).
fn blob_path(layout: &Path, digest: &str) -> anyhow::Result<PathBuf> {
    let hex = digest.strip_prefix("sha256:").unwrap_or_default();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
        bail!("`{digest}` is not a sha256 digest");
    }
    Ok(layout.join("blobs/sha256").join(hex))
}

/// A small blob (manifest, lock), read whole and checked against its digest.
fn read_blob(layout: &Path, digest: &str, what: &str, bundle: &str) -> anyhow::Result<Vec<u8>> {
    let path = blob_path(layout, digest).with_context(|| format!("bundle {bundle}: {what}"))?;
    let bytes = std::fs::read(&path)
        .map_err(|e| anyhow::anyhow!("bundle {bundle}: {what}: blob {digest} is missing ({e})"))?;
    let hex = crate::io::count::sha256_hex(&bytes);
    if format!("sha256:{hex}") != digest {
        bail!("bundle {bundle}: {what} (blob {digest}) hashes to sha256:{hex}; the bundle is damaged or was altered");
    }
    Ok(bytes)
}

/// Unpacks a bundle's tar: only `oci-layout`, `index.json` and `blobs/sha256/*`.
pub fn untar_layout(tar_path: &Path, to: &Path) -> anyhow::Result<()> {
    let file = File::open(tar_path).with_context(|| format!("reading the bundle {}", tar_path.display()))?;
    let mut tar = tar::Archive::new(io::BufReader::with_capacity(1 << 20, file));
    std::fs::create_dir_all(to.join("blobs/sha256"))?;
    for entry in tar.entries().with_context(|| format!("{}: not a tar", tar_path.display()))? {
        let mut entry = entry.with_context(|| format!("reading {}", tar_path.display()))?;
        let rel = entry.path()?.into_owned();
        let rel_str = rel.to_string_lossy().trim_start_matches("./").to_string();
        let allowed = rel_str == "oci-layout"
            || rel_str == "index.json"
            || rel_str.strip_prefix("blobs/sha256/").is_some_and(|h| !h.is_empty() && !h.contains('/'));
        match entry.header().entry_type() {
            tar::EntryType::Directory => continue,
            tar::EntryType::Regular if allowed => {
                let mut out = File::create(to.join(&rel_str))?;
                io::copy(&mut entry, &mut out)?;
            }
            _ => bail!("bundle {}: {rel_str} does not belong in an OCI layout", tar_path.display()),
        }
    }
    Ok(())
}

/// A reader that hashes what passes through it.
struct HashingReader<R> {
    inner: R,
    hash: CountingWriter<io::Sink>,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        HashingReader { inner, hash: CountingWriter::hashing(io::sink()) }
    }

    /// The hex digest and byte count so far.
    fn finish(&mut self) -> (String, u64) {
        let done = std::mem::replace(&mut self.hash, CountingWriter::hashing(io::sink()));
        let (_, n, hex) = done.into_parts();
        (hex.expect("hashing"), n)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::io::Write as _;
        let n = self.inner.read(buf)?;
        self.hash.write_all(&buf[..n])?;
        Ok(n)
    }
}
