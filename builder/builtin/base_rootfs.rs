//! `base-rootfs`: a whole root filesystem as the base, from a tarball (plain, gz, xz or
//! zst) or a directory. A tarball's members are staged by reference — each record points at its bytes inside the
//! uncompressed tar — with the owners, modes and devices its headers give, so staging
//! from it needs neither root nor a copy.

use std::io::{BufReader, Read};

use super::{given, BuiltIn, Context, Identity};
use anyhow::Context as _;

use crate::path::ImagePath;
use crate::tree::disk::{add_dir, Owners};
use crate::tree::tarball::{add_tar, Labels};
use crate::tree::Tree;

#[derive(serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct BaseRootfs {
    source: Option<String>,
    distro: Option<String>,
    release: Option<String>,
    init_system: Option<String>,
    #[serde(default)]
    repositories: Vec<String>,
}

impl BuiltIn for BaseRootfs {
    /// `source` is a tarball (plain, or gz/xz/zst, unpacked once into the cache) or a
    /// directory, relative to image.toml.
    fn stage(&self, tree: &mut Tree, cx: &mut Context) -> anyhow::Result<usize> {
        let element = cx.element;
        let source = given(&self.source);
        let source = crate::lock::read(&cx.image.dir().join(source.with_context(|| {
            format!("element `{element}`: param `source` is empty; name a rootfs tarball or directory")
        })?));
        let meta = std::fs::metadata(&source)
            .with_context(|| format!("element `{element}`: source {}", source.display()))?;
        if meta.is_dir() {
            // Files owned by the user running smelt become root's, other owners are kept.
            return add_dir(tree, &source, &ImagePath::root(), element, Owners::Kept);
        }
        let mut magic = [0u8; 6];
        let n = std::fs::File::open(&source)?.read(&mut magic)?;
        let compressed = match &magic[..n.min(6)] {
            [0x1f, 0x8b, ..] => Some("gz"),
            [0xfd, b'7', b'z', b'X', b'Z', 0] => Some("xz"),
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Some("zst"),
            _ => None,
        };
        let Some(kind) = compressed else { return add_tar(tree, &source, element, Labels::Dropped) };
        // Members are staged by reference into an uncompressed copy, made once per content.
        let digest = crate::io::count::sha256_file(&source)?;
        let plain = crate::cache::dir().join("rootfs").join(format!("{}.tar", &digest[..32]));
        if !plain.exists() {
            let dir = plain.parent().expect("has a parent");
            std::fs::create_dir_all(dir)?;
            crate::io::atomic::sweep(dir);
            let pending = crate::io::atomic::Pending::new(&plain);
            let input = BufReader::new(std::fs::File::open(&source)?);
            let mut reader: Box<dyn Read> = match kind {
                "gz" => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
                "xz" => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(input)),
                _ => Box::new(zstd::stream::read::Decoder::with_buffer(input)?),
            };
            let mut out = pending.create_file()?;
            std::io::copy(&mut reader, &mut out)
                .with_context(|| format!("element `{element}`: unpacking {}", source.display()))?;
            pending.publish()?;
        }
        add_tar(tree, &plain, element, Labels::Dropped)
    }

    fn identity(&self, _: &crate::config::image::Image, _: bool) -> anyhow::Result<Identity> {
        let given = |v| given(v).map(String::from);
        Ok(Identity {
            distro: given(&self.distro),
            release: given(&self.release),
            init_system: given(&self.init_system),
        })
    }

    fn repositories(&self) -> &[String] {
        &self.repositories
    }
}
