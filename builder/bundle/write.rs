//! Writing a bundle: each input streamed once from where it is on this machine,
//! hashed as it goes (a file or directory that changed since the build is refused,
//! named), compressed into its blob, then the manifest and index that name them.

use std::fs::File;
use std::io::{self, Read as _, Write};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::{json, Map, Value};

use super::sshsig::{self, SigningKey};
use super::{
    digest, key, layer_type, ARTIFACT_TYPE, EMPTY_TYPE, INDEX_TYPE, LOCK_TYPE, MANIFEST_TYPE, SIGNATURE_TYPE,
    SSHSIG_TYPE,
};
use crate::io::atomic::{Pending, Scratch};
use crate::io::count::CountingWriter;
use crate::lock::{Form, Input, Lock};

/// An input of the lock and where it is on this machine now.
pub struct Source {
    pub input: Input,
    pub path: PathBuf,
}

/// What was written: the manifest's digest, and the sizes in and out.
pub struct Written {
    pub manifest: String,
    pub inputs_bytes: u64,
    pub blobs_bytes: u64,
}

/// Writes the bundle of `lock` to `out`: an OCI layout directory, or its tar when `out`
/// ends in `.tar`; nothing is left at `out` unless all of it was written.
pub fn write(
    lock: &Lock,
    sources: &[Source],
    out: &Path,
    created: i64,
    sign: Option<&SigningKey>,
) -> anyhow::Result<Written> {
    let as_tar = out.extension().is_some_and(|e| e == "tar");
    if as_tar {
        let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let scratch = Scratch::new(parent, "smelt-bundle")?;
        let written = layout(lock, sources, scratch.path(), created, sign)?;
        let pending = Pending::new(out);
        let file = pending.create_file()?;
        tar_layout(scratch.path(), io::BufWriter::new(file), created)
            .with_context(|| format!("writing {}", out.display()))?;
        pending.publish()?;
        return Ok(written);
    }
    let pending = Pending::new(out);
    std::fs::create_dir_all(pending.temp_path()).with_context(|| format!("creating {}", out.display()))?;
    let written = layout(lock, sources, pending.temp_path(), created, sign)?;
    pending.publish()?;
    Ok(written)
}

fn layout(
    lock: &Lock,
    sources: &[Source],
    dir: &Path,
    created: i64,
    sign: Option<&SigningKey>,
) -> anyhow::Result<Written> {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).with_context(|| format!("creating {}", blobs.display()))?;
    let mut layers = Vec::with_capacity(sources.len());
    let (mut inputs_bytes, mut blobs_bytes) = (0, 0);
    for s in sources {
        let (layer, size) = put_input(&blobs, s)?;
        inputs_bytes += s.input.size;
        blobs_bytes += size;
        layers.push(layer);
    }
    let config = serde_json::to_vec_pretty(lock)?;
    let config_digest = put_bytes(&blobs, &config)?;
    let secrets: Vec<String> = lock.inputs.iter().filter(|i| i.secret).map(Input::name).collect();
    let mut annotations = Map::new();
    annotations.insert(key::CREATED.into(), rfc3339(created).into());
    annotations.insert(key::VERSION.into(), lock.smelt_version.clone().into());
    annotations.insert(key::IMAGE.into(), lock.name.clone().into());
    if !secrets.is_empty() {
        annotations.insert(key::SECRETS.into(), secrets.join(",").into());
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "artifactType": ARTIFACT_TYPE,
        "config": { "mediaType": LOCK_TYPE, "digest": digest(&config_digest), "size": config.len() },
        "layers": layers,
        "annotations": annotations,
    });
    let manifest = serde_json::to_vec(&manifest)?;
    let manifest_digest = put_bytes(&blobs, &manifest)?;
    let mut manifests = vec![json!({
        "mediaType": MANIFEST_TYPE,
        "artifactType": ARTIFACT_TYPE,
        "digest": digest(&manifest_digest),
        "size": manifest.len(),
        "annotations": { key::REF_NAME: lock.name },
    })];
    if let Some(key) = sign {
        let subject =
            json!({ "mediaType": MANIFEST_TYPE, "digest": digest(&manifest_digest), "size": manifest.len() });
        manifests.push(signature(&blobs, key, &manifest, subject, created)?);
    }
    let index = json!({ "schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": manifests });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index)?)?;
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    blobs_bytes += (config.len() + manifest.len()) as u64;
    Ok(Written { manifest: digest(&manifest_digest), inputs_bytes, blobs_bytes })
}

/// The signature artifact of the manifest `signed` (its descriptor `subject`): the
/// armoured SSH signature as its one layer; its index entry.
fn signature(
    blobs: &Path,
    key: &SigningKey,
    signed: &[u8],
    subject: Value,
    created: i64,
) -> anyhow::Result<Value> {
    let armoured = key.sign(signed, sshsig::NAMESPACE);
    let sig_digest = put_bytes(blobs, armoured.as_bytes())?;
    let empty = put_bytes(blobs, b"{}")?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "artifactType": SIGNATURE_TYPE,
        "config": { "mediaType": EMPTY_TYPE, "digest": digest(&empty), "size": 2 },
        "layers": [{
            "mediaType": SSHSIG_TYPE,
            "digest": digest(&sig_digest),
            "size": armoured.len(),
            "annotations": { key::TITLE: "bundle.sshsig", key::SIGNER: key.public.fingerprint() },
        }],
        "subject": subject,
        "annotations": { key::CREATED: rfc3339(created), key::SIGNER: key.public.fingerprint() },
    });
    let bytes = serde_json::to_vec(&manifest)?;
    let d = put_bytes(blobs, &bytes)?;
    Ok(
        json!({ "mediaType": MANIFEST_TYPE, "artifactType": SIGNATURE_TYPE, "digest": digest(&d), "size": bytes.len() }),
    )
}

/// Streams one input into its blob; returns its layer descriptor and the blob's size.
fn put_input(blobs: &Path, s: &Source) -> anyhow::Result<(Value, u64)> {
    let Source { input, path } = s;
    let changed = |now: &str| {
        anyhow::anyhow!(
            "input {} ({}) changed since the build that wrote the lock (sha256 {} then, {now} now): build again, \
             then bundle",
            input.name(),
            path.display(),
            input.sha256
        )
    };
    let meta = std::fs::metadata(path).map_err(|e| {
        anyhow::anyhow!(
            "input {} ({}) is gone since the build ({e}): build again, then bundle",
            input.name(),
            path.display()
        )
    })?;
    let temp = Pending::new(&blobs.join(format!("incoming-{}", std::process::id())));
    let file = io::BufWriter::with_capacity(1 << 20, temp.create_file()?);
    let zstd = input.form == Form::Dir || !compressed(path)?;
    let blob = CountingWriter::hashing(file);
    let (content_hash, blob_hash, blob_size) = if zstd {
        let mut enc = zstd::Encoder::new(blob, 3)?;
        if input.size > 8 << 20 {
            enc.multithread(std::thread::available_parallelism().map_or(2, |n| n.get() as u32))?;
        }
        let mut content = CountingWriter::hashing(enc);
        content = copy_input(input.form, path, content)?;
        let (enc, _, content_hash) = content.into_parts();
        let (file, size, blob_hash) = enc.finish()?.into_parts();
        file.into_inner().map_err(|e| e.into_error())?;
        (content_hash, blob_hash, size)
    } else {
        let blob = copy_input(input.form, path, blob)?;
        let (file, size, hash) = blob.into_parts();
        file.into_inner().map_err(|e| e.into_error())?;
        (hash.clone(), hash, size)
    };
    let (content_hash, blob_hash) = (content_hash.expect("hashing"), blob_hash.expect("hashing"));
    if content_hash != input.sha256 {
        return Err(changed(&content_hash));
    }
    std::fs::rename(temp.temp_path(), blobs.join(&blob_hash))?;
    drop(temp);
    let mut annotations = Map::new();
    annotations.insert(key::TITLE.into(), input.name().into());
    annotations.insert(key::KIND.into(), input.kind.as_str().into());
    annotations.insert(key::PATH.into(), input.path.clone().into());
    annotations.insert(key::SHA256.into(), input.sha256.clone().into());
    if input.form == Form::File {
        annotations.insert(key::MODE.into(), format!("{:o}", meta.mode() & 0o7777).into());
        annotations.insert(key::MTIME.into(), meta.mtime().to_string().into());
    }
    if input.secret {
        annotations.insert(key::SECRET.into(), "true".into());
    }
    let layer = json!({
        "mediaType": layer_type(input.form, zstd),
        "digest": digest(&blob_hash),
        "size": blob_size,
        "annotations": annotations,
    });
    Ok((layer, blob_size))
}

fn copy_input<W: Write>(form: Form, path: &Path, mut out: W) -> anyhow::Result<W> {
    match form {
        Form::Dir => crate::lock::digest::dir_tar(path, out),
        Form::File => {
            let mut f = File::open(path).with_context(|| format!("reading {}", path.display()))?;
            io::copy(&mut f, &mut out).with_context(|| format!("reading {}", path.display()))?;
            Ok(out)
        }
    }
}

/// Whether a file is compressed already (gzip, xz, zstd, bzip2, zip and wheels, .deb):
/// it goes into the bundle as it is.
fn compressed(path: &Path) -> anyhow::Result<bool> {
    let mut magic = [0u8; 8];
    let mut f = File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let n = f.read(&mut magic)?;
    let m = &magic[..n];
    Ok(m.starts_with(&[0x1f, 0x8b])
        || m.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0])
        || m.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || m.starts_with(b"BZh")
        || m.starts_with(b"PK\x03\x04")
        || m.starts_with(b"!<arch>\n"))
}

/// Writes `bytes` as a blob; its hex digest.
fn put_bytes(blobs: &Path, bytes: &[u8]) -> anyhow::Result<String> {
    let hex = crate::io::count::sha256_hex(bytes);
    std::fs::write(blobs.join(&hex), bytes)?;
    Ok(hex)
}

/// The layout as one tar, entries sorted, dated `created`, owned by root.
fn tar_layout<W: Write>(dir: &Path, out: W, created: i64) -> anyhow::Result<()> {
    let mut tar = tar::Builder::new(out);
    let walk = walkdir::WalkDir::new(dir).min_depth(1).sort_by_file_name();
    for e in walk {
        let e = e?;
        let rel = e.path().strip_prefix(dir).expect("under the layout");
        let mut h = tar::Header::new_ustar();
        h.set_mtime(created.max(0) as u64);
        h.set_uid(0);
        h.set_gid(0);
        if e.file_type().is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            tar.append_data(&mut h, rel, io::empty())?;
        } else {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            h.set_size(e.metadata()?.len());
            tar.append_data(&mut h, rel, File::open(e.path())?)?;
        }
    }
    tar.into_inner()?.flush()?;
    Ok(())
}

fn rfc3339(t: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(t).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let (y, mo, d) = (t.year(), t.month() as u8, t.day());
    format!("{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z", t.hour(), t.minute(), t.second())
}
