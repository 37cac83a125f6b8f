//! `base-image`: a distribution's or a client's disk image (qcow2, raw, vmdk, vhdx) as
//! the base — its root file system taken once through libguestfs ([`crate::diskimage`])
//! into a tar in the cache, then staged from that tar by reference like any rootfs
//! tarball. Its `/etc/os-release` says what the base is (`DISTRO_NAME`, `DIB_RELEASE`,
//! `DIB_INIT_SYSTEM`) unless params say otherwise.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{bail, Context as _};

use super::{given, BuiltIn, Context, Identity};
use crate::config::image::Image;
use crate::diskimage::{self, choose::Wanted, Options, Taken};
use crate::tree::tarball::{add_tar, Labels};
use crate::tree::Tree;

#[derive(serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct BaseImage {
    source: Option<String>,
    sha256: Option<String>,
    partition: Option<String>,
    subvolume: Option<String>,
    lv: Option<String>,
    selinux: String,
    distro: Option<String>,
    release: Option<String>,
    init_system: Option<String>,
    #[serde(default)]
    repositories: Vec<String>,
    /// Taken once per build: the plan reads its os-release, staging its tree.
    #[serde(skip)]
    taken: OnceLock<Taken>,
}

impl BuiltIn for BaseImage {
    fn stage(&self, tree: &mut Tree, cx: &mut Context) -> anyhow::Result<usize> {
        let taken = self.take(cx.image, cx.offline, cx.element)?;
        let labels = if self.selinux == "keep" { Labels::Kept } else { Labels::Dropped };
        add_tar(tree, &taken.tar, cx.element, labels)
    }

    fn identity(&self, image: &Image, offline: bool) -> anyhow::Result<Identity> {
        let taken = self.take(image, offline, "base-image")?;
        let found = crate::distro::OsRelease::parse(&taken.meta.os_release);
        let given = |v| given(v).map(String::from);
        Ok(Identity {
            distro: given(&self.distro).or(found.distro),
            release: given(&self.release).or(found.release),
            init_system: given(&self.init_system).or_else(|| taken.meta.systemd.then(|| "systemd".into())),
        })
    }

    fn repositories(&self) -> &[String] {
        &self.repositories
    }
}

impl BaseImage {
    /// The image's root, taken once per build (from the cache when taken before).
    fn take(&self, image: &Image, offline: bool, element: &str) -> anyhow::Result<&Taken> {
        if let Some(t) = self.taken.get() {
            return Ok(t);
        }
        let source = self.source_file(image, offline, element)?;
        let digest = crate::cache::file_digest(&source)
            .with_context(|| format!("element `{element}`: reading {}", source.display()))?;
        if let Some(want) = given(&self.sha256) {
            if !want.eq_ignore_ascii_case(&digest) {
                bail!(
                    "element `{element}`: {} has SHA-256 {digest}, not the {want} param `sha256` pins; \
                     fetch the image again or correct the pin",
                    source.display()
                );
            }
        }
        let options = Options {
            wanted: Wanted {
                partition: given(&self.partition).map(String::from),
                lv: given(&self.lv).map(String::from),
            },
            subvolume: given(&self.subvolume).map(String::from),
            selinux: self.selinux == "keep",
        };
        let taken = diskimage::take(&source, &digest, &options)
            .map_err(|e| anyhow::anyhow!("element `{element}`: {e:#}"))?;
        Ok(self.taken.get_or_init(|| taken))
    }

    /// The disk image file: `source` (or diskimage-builder's `DIB_LOCAL_IMAGE`), a path
    /// relative to image.toml or a URL fetched once into the cache.
    fn source_file(&self, image: &Image, offline: bool, element: &str) -> anyhow::Result<PathBuf> {
        let from_env = std::env::var("DIB_LOCAL_IMAGE").ok().filter(|v| !v.is_empty());
        let Some(source) = given(&self.source).map(String::from).or(from_env) else {
            bail!("element `{element}`: param `source` is empty; name a disk image (a path relative to image.toml, or a URL), or set DIB_LOCAL_IMAGE");
        };
        if source.starts_with("http://") || source.starts_with("https://") {
            return self.fetched(&source, offline, element);
        }
        let path = crate::lock::read(&crate::lock::absolute(&image.dir().join(&source)));
        if !path.is_file() {
            bail!(
                "element `{element}`: source {} is not a file; name a disk image (qcow2, raw, vmdk, vhdx)",
                path.display()
            );
        }
        Ok(path)
    }

    /// A URL's image, fetched once into the cache: by its pinned digest, else by its URL.
    fn fetched(&self, url: &str, offline: bool, element: &str) -> anyhow::Result<PathBuf> {
        let key = match given(&self.sha256) {
            Some(d) => d.to_ascii_lowercase(),
            None => crate::io::count::sha256_hex(url.as_bytes()),
        };
        let name = url.rsplit('/').next().filter(|n| !n.is_empty()).unwrap_or("image");
        let dir = crate::cache::dir().join("disk-images/sources");
        let file = dir.join(format!("{}-{name}", &key[..16.min(key.len())]));
        if file.exists() {
            return Ok(crate::lock::read(&file));
        }
        if offline {
            bail!("element `{element}`: {url} is not in the cache ({}); build once without --offline to fetch it", file.display());
        }
        std::fs::create_dir_all(&dir)?;
        crate::io::atomic::sweep(&dir);
        let pending = crate::io::atomic::Pending::new(&file);
        download(url, pending.temp_path())
            .map_err(|e| anyhow::anyhow!("element `{element}`: fetching {url}: {e}"))?;
        if let Some(want) = given(&self.sha256) {
            let got = crate::io::count::sha256_file(pending.temp_path())?;
            if !want.eq_ignore_ascii_case(&got) {
                bail!("element `{element}`: {url} has SHA-256 {got}, not the {want} param `sha256` pins; nothing was kept");
            }
        }
        pending.publish()?;
        Ok(crate::lock::read(&file))
    }
}

/// Streams `url` into `dest`.
fn download(url: &str, dest: &Path) -> anyhow::Result<()> {
    let response = ureq::get(url).call().map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut body = response.into_body().into_reader();
    let mut out = std::io::BufWriter::new(std::fs::File::create(dest)?);
    std::io::copy(&mut body, &mut out)?;
    std::io::Write::flush(&mut out)?;
    Ok(())
}
