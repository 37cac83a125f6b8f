//! The shared cache in an OCI registry (`SMELT_CACHE=oci://HOST/REPO`): after a build,
//! the cache files it used (the lock's `cache` inputs: the bootstrap tarball, apt's and
//! pip's downloads) go to the registry as blobs named by their SHA-256, and a manifest
//! listing them is tagged with the build's key — the image's name and a digest of what
//! decides what its hooks fetch (image.toml, its element directories, the `--set`s,
//! smelt's version). A later build with the same key, on any runner, fetches those
//! blobs into its own cache first and then builds offline from them: no mirror, and the
//! same bytes even if a mirror changed since.

use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context as _};
use serde_json::{json, Map, Value};

use super::{Reference, Registry};
use crate::bundle::{key, LOCK_TYPE, MANIFEST_TYPE};
use crate::lock::{Kind, Lock};

const CACHE_TYPE: &str = "application/vnd.smelt.cache.v1";
const FILE_TYPE: &str = "application/vnd.smelt.input.file.v1";

pub struct SharedCache {
    registry: Registry,
}

/// What a pull brought.
pub struct Pulled {
    /// Every cache file the registry listed for the build, now in the cache.
    pub paths: Vec<PathBuf>,
    pub files: usize,
    pub fetched: usize,
    pub bytes: u64,
}

impl SharedCache {
    pub fn open(url: &str, ca: Option<&Path>) -> anyhow::Result<SharedCache> {
        let reference = Reference::parse(url).context("SMELT_CACHE / --cache")?;
        if reference.tag.is_some() {
            bail!("the registry cache {url} names a tag; name only the repository (oci://HOST/REPO): smelt tags it");
        }
        Ok(SharedCache { registry: Registry::open(&reference, ca)? })
    }

    pub fn name(&self) -> String {
        self.registry.reference.to_string()
    }

    /// Fetches into `cache_dir` every cache file the build keyed `tag` used, each
    /// checked against its digest; `None` when the registry has no such build.
    pub fn pull(&self, tag: &str, cache_dir: &Path) -> anyhow::Result<Option<Pulled>> {
        let Some(bytes) = self.registry.get_manifest(tag)? else { return Ok(None) };
        let manifest: Value = serde_json::from_slice(&bytes).context("the cache's manifest")?;
        let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
        let mut pulled = Pulled { paths: Vec::new(), files: layers.len(), fetched: 0, bytes: 0 };
        for layer in &layers {
            let ann = &layer["annotations"];
            let rel = ann[key::PATH].as_str().unwrap_or_default();
            let digest = layer["digest"].as_str().unwrap_or_default();
            let dest = inside(cache_dir, rel)?;
            pulled.paths.push(dest.clone());
            if crate::io::count::sha256_file(&dest).is_ok_and(|h| format!("sha256:{h}") == digest) {
                continue;
            }
            std::fs::create_dir_all(dest.parent().expect("inside the cache"))?;
            pulled.bytes += self.registry.get_blob(digest, &dest)?;
            pulled.fetched += 1;
        }
        Ok(Some(pulled))
    }

    /// Pushes the lock's cache files (those the registry lacks) and tags their manifest
    /// `tag`; how many files were sent and their bytes.
    pub fn push(&self, tag: &str, lock: &Lock, cache_dir: &Path) -> anyhow::Result<(usize, u64)> {
        let (mut sent, mut bytes) = (0, 0);
        let mut layers = Vec::new();
        for input in lock.inputs.iter().filter(|i| i.kind == Kind::Cache) {
            let digest = format!("sha256:{}", input.sha256);
            let path = inside(cache_dir, &input.path)?;
            if self.registry.put_blob(&path, &digest)? {
                sent += 1;
                bytes += input.size;
            }
            let mut ann = Map::new();
            ann.insert(key::TITLE.into(), input.name().into());
            ann.insert(key::KIND.into(), "cache".into());
            ann.insert(key::PATH.into(), input.path.clone().into());
            ann.insert(key::SHA256.into(), input.sha256.clone().into());
            layers.push(
                json!({ "mediaType": FILE_TYPE, "digest": digest, "size": input.size, "annotations": ann }),
            );
        }
        let config = serde_json::to_vec_pretty(lock)?;
        let config_digest = self.registry.put_bytes(&config)?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "artifactType": CACHE_TYPE,
            "config": { "mediaType": LOCK_TYPE, "digest": config_digest, "size": config.len() },
            "layers": layers,
            "annotations": { key::IMAGE: lock.name, key::VERSION: lock.smelt_version },
        });
        self.registry.put_manifest(tag, &serde_json::to_vec(&manifest)?, MANIFEST_TYPE)?;
        Ok((sent, bytes))
    }
}

/// The key a build is cached under: `NAME-DIGEST`, the digest of image.toml, each
/// element directory, the `--set`s and smelt's version.
pub fn key(
    name: &str,
    image: &Path,
    elements: &[(String, PathBuf)],
    sets: &[String],
) -> anyhow::Result<String> {
    use sha2::{Digest, Sha256};
    let mut parts = vec![json!({ "smelt": env!("CARGO_PKG_VERSION"), "sets": sets })];
    parts.push(json!({ "image": crate::lock::digest::of(image)?.1 }));
    for (element, dir) in elements {
        parts.push(json!({ "element": element, "sha256": crate::lock::digest::of(dir)?.1 }));
    }
    let digest = Sha256::digest(serde_json::to_vec(&parts)?);
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    let mut tag: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '-' })
        .take(100)
        .collect();
    tag = tag.trim_start_matches(['.', '-']).to_string();
    Ok(format!("{}{}{hex}", tag, if tag.is_empty() { "" } else { "-" }))
}

/// `rel` under `dir`, refused if it would leave it.
fn inside(dir: &Path, rel: &str) -> anyhow::Result<PathBuf> {
    let p = Path::new(rel);
    if rel.is_empty() || !p.components().all(|c| matches!(c, Component::Normal(_))) {
        bail!("the registry cache names a file `{rel}` outside the cache");
    }
    Ok(dir.join(p))
}
