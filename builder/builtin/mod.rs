//! The built-in elements whose work is done in Rust rather than by hooks, one file each,
//! named as the element (`dev_user.rs` for `elements/dev-user`); the element's directory
//! under `elements/` holds its manifest, params and any files.
//!
//! Each is a [`BuiltIn`]: a struct of its params, read once from the merged and checked
//! params (defaults live only in its manifest), with its staging work, the hooks it
//! generates (each carrying what reads back after it ran, `element::hooks::Harvest`),
//! what it tells the plan about the base and the secrets it puts in on purpose. The
//! generic code asks these questions of every built-in and names none of them.
//!
//! The work runs only for the built-in element of that name: an element of the same
//! name earlier on the path replaces it, work included.

mod agent;
mod base_busybox;
mod base_debian;
pub mod base_host;
mod base_image;
mod base_rootfs;
mod dev_user;
mod init;
mod inject_files;
mod kernel_modules;
mod network;
mod package_installs;
mod python_trim;
mod timezone;
pub mod tls;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::client::Client;
use crate::config::image::Image;
use crate::element::hooks::Hook;
use crate::element::param::Params;
use crate::element::resolve::Resolved;
use crate::element::{Element, Origin};
use crate::findings::Findings;
use crate::kernel;
use crate::path::ImagePath;
use crate::secrets;
use crate::tree::Tree;

/// A built-in element: its params, typed, and what it does with them. Every method has
/// a default that does nothing, so each element says only what it does.
pub trait BuiltIn: Send + Sync {
    /// Adds what the element makes to the tree; returns how many entries.
    fn stage(&self, _tree: &mut Tree, _cx: &mut Context) -> anyhow::Result<usize> {
        Ok(0)
    }

    /// Hooks it generates, run with the elements' own in their phases.
    fn hooks(&self, _cx: &Planning) -> anyhow::Result<Vec<Hook>> {
        Ok(Vec::new())
    }

    /// What it says of the image's distribution (a base element); a base that reads it
    /// from what it stages (a disk image's os-release) may take that now.
    fn identity(&self, _image: &Image, _offline: bool) -> anyhow::Result<Identity> {
        Ok(Identity::default())
    }

    /// Package repositories the image's package manager sees while the install phases
    /// run (a base's `repositories` param), as given.
    fn repositories(&self) -> &[String] {
        &[]
    }

    /// The secrets it puts into images on purpose, which are not warned about.
    fn secrets(&self, _element: &str) -> Vec<secrets::Made> {
        Vec::new()
    }

    /// Whether what it puts in the image starts a ramdisk (`/init`), which a data ISO,
    /// read as files, leaves out.
    fn starts_ramdisk(&self) -> bool {
        false
    }

    /// Tools it puts first on every hook's `PATH` (file name, script), for an image
    /// of the distro `family`.
    fn hook_tools(&self, _family: &str) -> Vec<(&'static str, String)> {
        Vec::new()
    }
}

/// What a base says of the distribution it is, as DIB's `DISTRO_NAME`, `DIB_RELEASE`
/// and `DIB_INIT_SYSTEM` say it.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub distro: Option<String>,
    pub release: Option<String>,
    pub init_system: Option<String>,
}

/// What a built-in's staging work may read and where it reports.
pub struct Context<'a> {
    /// The element's name: what it adds is attributed to it.
    pub element: &'a str,
    pub image: &'a Image,
    /// Every element of the image, in build order.
    pub elements: &'a Resolved,
    pub client: Option<&'a Client>,
    pub kernel: Option<&'a kernel::Planned>,
    /// The element's params as templates see them.
    pub params: &'a Value,
    /// The build's scratch directory.
    pub work: &'a Path,
    /// The build's one time, for everything it makes.
    pub mtime: i64,
    pub offline: bool,
    /// What it found for the report: what its trims removed, the kits it made.
    pub found: &'a mut Findings,
}

/// What a built-in's hooks are planned with.
pub struct Planning<'a> {
    pub image: &'a Image,
    pub elements: &'a [Element],
    pub kernel: Option<&'a kernel::Planned>,
    /// The image's distro family (pkg-map, package manager).
    pub family: &'static str,
    /// What `when` conditions of package-installs.yaml read.
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

/// The built-ins of one image, in build order.
pub struct BuiltIns(Vec<(String, Box<dyn BuiltIn>)>);

impl BuiltIns {
    /// The built-in work of `element`, when it is the built-in element of that name.
    pub fn get(&self, element: &Element) -> Option<&dyn BuiltIn> {
        if element.origin != Origin::BuiltIn {
            return None;
        }
        self.0.iter().find(|(n, _)| *n == element.name).map(|(_, b)| b.as_ref())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &dyn BuiltIn)> {
        self.0.iter().map(|(n, b)| (n.as_str(), b.as_ref()))
    }

    /// The first base's identity.
    pub fn identity(&self, image: &Image, offline: bool) -> anyhow::Result<Identity> {
        let mut found = Identity::default();
        for (_, b) in &self.0 {
            let i = b.identity(image, offline)?;
            found = Identity {
                distro: found.distro.or(i.distro),
                release: found.release.or(i.release),
                init_system: found.init_system.or(i.init_system),
            };
        }
        Ok(found)
    }

    /// Every base's package repositories (element, as given), in build order.
    pub fn repositories(&self) -> Vec<(&str, &str)> {
        self.0
            .iter()
            .flat_map(|(n, b)| b.repositories().iter().map(move |r| (n.as_str(), r.as_str())))
            .collect()
    }

    /// Every hook the built-ins generate.
    pub fn hooks(&self, cx: &Planning) -> anyhow::Result<Vec<Hook>> {
        let mut all = Vec::new();
        for (_, b) in &self.0 {
            all.extend(b.hooks(cx)?);
        }
        Ok(all)
    }

    /// Every secret the built-ins put in on purpose.
    pub fn secrets(&self) -> Vec<secrets::Made> {
        self.0.iter().flat_map(|(n, b)| b.secrets(n)).collect()
    }

    /// Every tool the built-ins put on hooks' `PATH`.
    pub fn hook_tools(&self, family: &str) -> Vec<(&'static str, String)> {
        self.0.iter().flat_map(|(_, b)| b.hook_tools(family)).collect()
    }
}

/// Reads a built-in's params into its struct.
type Load = fn(&Params) -> Result<Box<dyn BuiltIn>, serde_json::Error>;

/// Every built-in element with Rust work, by name.
const REGISTRY: [(&str, Load); 15] = [
    ("agent", typed::<agent::Agent>),
    ("base-busybox", typed::<base_busybox::BaseBusybox>),
    ("base-debian", typed::<base_debian::BaseDebian>),
    ("base-host", typed::<base_host::BaseHost>),
    ("base-image", typed::<base_image::BaseImage>),
    ("base-rootfs", typed::<base_rootfs::BaseRootfs>),
    ("dev-user", typed::<dev_user::DevUser>),
    ("init", typed::<init::Init>),
    ("inject-files", typed::<inject_files::InjectFiles>),
    ("kernel-modules", typed::<kernel_modules::KernelModules>),
    ("network", typed::<network::Network>),
    (package_installs::NAME, typed::<package_installs::PackageInstalls>),
    ("python-trim", typed::<python_trim::PythonTrim>),
    ("timezone", typed::<timezone::Timezone>),
    ("tls", typed::<tls::Tls>),
];

fn typed<T: BuiltIn + DeserializeOwned + 'static>(
    params: &Params,
) -> Result<Box<dyn BuiltIn>, serde_json::Error> {
    let value = Value::Object(params.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
    Ok(Box::new(serde_json::from_value::<T>(value)?))
}

/// The built-ins of an image whose elements are `elements` with `params` (merged and
/// checked). Package installs are done for every image, whether it names
/// package-installs or not: an element's `packages` list promises them.
pub fn load(elements: &[Element], params: &BTreeMap<String, Params>) -> anyhow::Result<BuiltIns> {
    let mut loaded: Vec<(String, Box<dyn BuiltIn>)> = Vec::new();
    for e in elements.iter().filter(|e| e.origin == Origin::BuiltIn) {
        let Some((_, make)) = REGISTRY.iter().find(|(n, _)| *n == e.name) else { continue };
        let built = make(&params[&e.name]).map_err(|er| anyhow!("element `{}`: params: {er}", e.name))?;
        loaded.push((e.name.clone(), built));
    }
    if !loaded.iter().any(|(n, _)| n == package_installs::NAME) {
        loaded.push((package_installs::NAME.into(), Box::new(package_installs::PackageInstalls {})));
    }
    Ok(BuiltIns(loaded))
}

/// A string param given and not empty.
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

/// A destination param (`dest`, a file's path): an image path that is not the root.
fn image_dest(element: &str, what: &str, path: &str) -> anyhow::Result<ImagePath> {
    match ImagePath::new(path) {
        Ok(p) if !p.is_root() => Ok(p),
        Ok(_) => bail!("element `{element}`: {what} `{path}` is the image root; name a file"),
        Err(e) => bail!("element `{element}`: {what} {e}; destinations are paths inside the image"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::element::library::Library;
    use crate::element::param::ParamType;

    /// A value of each declared type, as a user might give it.
    fn sample(kind: ParamType) -> Value {
        match kind {
            ParamType::String | ParamType::Path => Value::from("x"),
            ParamType::Int => Value::from(1),
            ParamType::Bool => Value::from(true),
            ParamType::List => Value::Array(vec![]),
            ParamType::Table => Value::Object(Default::default()),
        }
    }

    /// The structs and the manifests agree: every built-in loads from its manifest's
    /// defaults alone, and with every param it declares given, none unknown to it.
    #[test]
    fn every_built_in_reads_its_manifest_params() {
        let lib = Library::new(&[], None);
        for (name, make) in REGISTRY {
            let manifest = lib.load(name).unwrap().unwrap().manifest;
            let defaults: Params =
                manifest.params.iter().filter_map(|(k, p)| Some((k.clone(), p.default.clone()?))).collect();
            if let Err(e) = make(&defaults) {
                panic!("built-in `{name}` does not load from its defaults: {e}");
            }
            let all: Params = manifest
                .params
                .iter()
                .map(|(k, p)| {
                    let value = match p.choices.first() {
                        Some(c) if p.kind == Some(ParamType::List) => Value::Array(vec![c.clone()]),
                        Some(c) => c.clone(),
                        None => sample(p.kind.expect("typed")),
                    };
                    (k.clone(), value)
                })
                .collect();
            if let Err(e) = make(&all) {
                panic!("built-in `{name}` does not take every param its manifest declares: {e}");
            }
        }
    }
}
