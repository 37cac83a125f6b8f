//! Bundles in a registry: `smelt bundle --push oci://HOST/REPO:TAG` sends a layout's
//! blobs and manifests (the bundle's tagged; its signatures by digest, found through
//! the OCI 1.1 referrers tag `sha256-HEX` that registries without the referrers API
//! use), and `smelt build --from oci://…` fetches them back into a layout, each blob
//! checked against its digest, for [`super::unpack`] to check again and lay out.

use std::path::Path;

use anyhow::{bail, Context as _};
use serde_json::{json, Value};

use super::{INDEX_TYPE, MANIFEST_TYPE, SIGNATURE_TYPE};
use crate::registry::{Reference, Registry};

/// Pushes the layout at `layout` (a directory) to `to` (`oci://HOST/REPO:TAG`); the
/// bundle manifest's digest.
pub fn push(layout: &Path, to: &Reference, ca: Option<&Path>) -> anyhow::Result<(String, usize)> {
    let tag =
        to.tag.as_deref().with_context(|| format!("{to}: name the tag to push to (oci://HOST/REPO:TAG)"))?;
    let registry = Registry::open(to, ca)?;
    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json"))?)?;
    let blob = |digest: &str| layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
    let (mut bundle, mut signatures, mut sent) = (None, Vec::new(), 0);
    for m in index["manifests"].as_array().cloned().unwrap_or_default() {
        let digest = m["digest"].as_str().unwrap_or_default().to_string();
        let bytes = std::fs::read(blob(&digest)).with_context(|| format!("reading manifest {digest}"))?;
        let manifest: Value = serde_json::from_slice(&bytes)?;
        let mut blobs: Vec<&Value> =
            manifest["layers"].as_array().map(|l| l.iter().collect()).unwrap_or_default();
        blobs.push(&manifest["config"]);
        for b in blobs {
            let d = b["digest"].as_str().unwrap_or_default();
            sent += registry.put_blob(&blob(d), d)? as usize;
        }
        if manifest["artifactType"] == SIGNATURE_TYPE {
            registry.put_manifest(&digest, &bytes, MANIFEST_TYPE)?;
            signatures.push(json!({ "mediaType": MANIFEST_TYPE, "artifactType": SIGNATURE_TYPE, "digest": digest, "size": bytes.len() }));
        } else {
            bundle = Some((digest, bytes));
        }
    }
    let (digest, bytes) = bundle.context("the layout holds no bundle manifest")?;
    registry.put_manifest(tag, &bytes, MANIFEST_TYPE)?;
    if !signatures.is_empty() {
        let referrers = json!({ "schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": signatures });
        registry.put_manifest(&referrers_tag(&digest), &serde_json::to_vec(&referrers)?, INDEX_TYPE)?;
    }
    Ok((digest, sent))
}

/// Fetches the bundle `from` (`oci://HOST/REPO:TAG`) and its signatures into a layout
/// at `layout`.
pub fn pull(from: &Reference, ca: Option<&Path>, layout: &Path) -> anyhow::Result<()> {
    let tag = from
        .tag
        .as_deref()
        .with_context(|| format!("{from}: name the bundle's tag (oci://HOST/REPO:TAG)"))?;
    let registry = Registry::open(from, ca)?;
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    let bytes =
        registry.get_manifest(tag)?.with_context(|| format!("{from}: no such tag in the registry"))?;
    let digest = put_manifest(&blobs, &bytes)?;
    let mut entries = vec![json!({ "mediaType": MANIFEST_TYPE, "digest": digest, "size": bytes.len() })];
    fetch_blobs(&registry, &bytes, &blobs)?;
    if let Some(referrers) = registry.get_manifest(&referrers_tag(&digest))? {
        let referrers: Value = serde_json::from_slice(&referrers).context("the bundle's referrers")?;
        for r in referrers["manifests"].as_array().cloned().unwrap_or_default() {
            let d = r["digest"].as_str().unwrap_or_default();
            let sig = registry
                .get_manifest(d)?
                .with_context(|| format!("{from}: signature {d} is listed but missing"))?;
            if put_manifest(&blobs, &sig)? != d {
                bail!("{from}: signature {d} arrived with other bytes: the registry or the way to it is damaged");
            }
            fetch_blobs(&registry, &sig, &blobs)?;
            entries.push(json!({ "mediaType": MANIFEST_TYPE, "artifactType": SIGNATURE_TYPE, "digest": d, "size": sig.len() }));
        }
    }
    let index = json!({ "schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": entries });
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&index)?)?;
    std::fs::write(layout.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    Ok(())
}

/// The config and layers a manifest names, each fetched and checked.
fn fetch_blobs(registry: &Registry, manifest: &[u8], blobs: &Path) -> anyhow::Result<()> {
    let manifest: Value = serde_json::from_slice(manifest).context("a manifest from the registry")?;
    let mut wanted: Vec<&Value> =
        manifest["layers"].as_array().map(|l| l.iter().collect()).unwrap_or_default();
    wanted.push(&manifest["config"]);
    for b in wanted {
        let d = b["digest"].as_str().unwrap_or_default();
        let hex =
            d.strip_prefix("sha256:").filter(|h| h.len() == 64 && h.bytes().all(|c| c.is_ascii_hexdigit()));
        let hex = hex.with_context(|| format!("`{d}` is not a sha256 digest"))?;
        registry.get_blob(d, &blobs.join(hex))?;
    }
    Ok(())
}

/// Writes a manifest's bytes as a blob; its digest.
fn put_manifest(blobs: &Path, bytes: &[u8]) -> anyhow::Result<String> {
    let hex = crate::io::count::sha256_hex(bytes);
    std::fs::write(blobs.join(&hex), bytes).with_context(|| format!("writing {}", blobs.display()))?;
    Ok(format!("sha256:{hex}"))
}

/// The referrers tag of a manifest (OCI distribution 1.1's fallback): `sha256-HEX`.
fn referrers_tag(digest: &str) -> String {
    digest.replace(':', "-")
}
