//! `smelt bundle`: every input a build's `smelt.lock` names, with the project's files,
//! into one OCI layout (directory or tar) that `smelt build --from` rebuilds from on
//! any machine, with no network.

use std::path::{Path, PathBuf};

use anyhow::bail;

use crate::bundle::{self, Source};
use crate::element::library::Library;
use crate::element::Origin;
use crate::lock::{self, Kind, Lock};
use crate::ui::Ui;

pub struct BundleOptions {
    pub image: PathBuf,
    /// The client inventory the build had, when it had one (checked against the lock).
    pub client: Option<PathBuf>,
    pub elements_path: Vec<PathBuf>,
    /// The build's `smelt.lock`.
    pub lock: PathBuf,
    /// A directory, or a `.tar` (none when only pushed).
    pub out: Option<PathBuf>,
    /// Push it to `oci://HOST/REPO:TAG` too.
    pub push: Option<String>,
    pub registry_ca: Option<PathBuf>,
    pub source_date_epoch: Option<i64>,
    /// Sign it with this Ed25519 key (an OpenSSH private key file).
    pub sign: Option<PathBuf>,
}

pub fn bundle(opts: &BundleOptions, ui: &Ui) -> anyhow::Result<String> {
    let lock = Lock::read(&opts.lock)?;
    let project = opts.image.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let project = lock::absolute(project);
    let image_name = opts.image.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if image_name != lock.image {
        bail!(
            "{} was written by a build of {}, not {}: bundle that image, or build this one first",
            opts.lock.display(),
            lock.image,
            opts.image.display()
        );
    }
    if let Some(client) = &opts.client {
        let given = lock::absolute(client);
        let same = lock.client.as_deref().and_then(|name| lock.find(name)).is_some_and(|i| match i.kind {
            Kind::Project => project.join(&i.path) == given,
            _ => Path::new(&i.path) == given,
        });
        if !same {
            bail!(
                "{} was written by a build with {}: build with --client {} first, then bundle",
                opts.lock.display(),
                lock.client.as_deref().map_or("no client inventory".to_string(), |c| format!("client {c}")),
                client.display()
            );
        }
    }
    let unexpected: Vec<&str> =
        lock.secrets.iter().filter(|s| !s.expected).map(|s| s.path.as_str()).collect();
    if !unexpected.is_empty() {
        bail!(
            "the image holds secrets nobody asked for ({}; report.json names where each came from): a bundle \
             would carry them to wherever it goes. Remove them from the image, or list them in [secrets] allow in \
             {} and build again",
            unexpected.join(", "),
            opts.image.display()
        );
    }
    let library = Library::from_env(&opts.elements_path);
    let cache = crate::cache::dir();
    let mut sources = Vec::with_capacity(lock.inputs.len());
    for input in &lock.inputs {
        let path = match input.kind {
            Kind::Project => project.join(&input.path),
            Kind::Cache => cache.join(&input.path),
            Kind::Host => PathBuf::from(&input.path),
            Kind::Element => match library.locate(&input.path) {
                Some(Origin::Dir(dir)) => dir,
                _ => bail!(
                    "element `{}` of the lock is not in a directory on the element path: pass the --elements-path \
                     the build had",
                    input.path
                ),
            },
        };
        sources.push(Source { input: input.clone(), path });
    }
    let key = opts.sign.as_deref().map(bundle::sshsig::SigningKey::read).transpose()?;
    let created = opts.source_date_epoch.or(lock.source_date_epoch).unwrap_or_else(crate::ui::now);
    let push = opts.push.as_deref().map(crate::registry::Reference::parse).transpose()?;
    if push.as_ref().is_some_and(|p| p.tag.is_none()) {
        bail!("--push names no tag: write oci://HOST/REPO:TAG");
    }
    // Only pushed: the layout is made in a scratch directory, then sent.
    let scratch = match &opts.out {
        Some(_) => None,
        None => Some(crate::io::atomic::Scratch::new(Path::new("."), "smelt-bundle-push")?),
    };
    let out = match (&opts.out, &scratch) {
        (Some(o), _) => o.clone(),
        (None, Some(s)) => s.path().join("layout"),
        (None, None) => bail!("give -o DIR|FILE.tar, --push oci://HOST/REPO:TAG, or both"),
    };
    let out = &out;
    let written = ui.step("bundle", || bundle::write(&lock, &sources, out, created, key.as_ref()))?;
    if let Some(to) = &push {
        let sent = ui.step("push", || push_layout(out, to, opts.registry_ca.as_deref()))?;
        ui.info(&format!("smelt: pushed the bundle to {to} ({sent} new blobs)"));
    }
    let shown = match (&opts.out, &opts.push) {
        (None, Some(to)) => to.clone(),
        _ => out.display().to_string(),
    };
    let carried: Vec<String> = lock.inputs.iter().filter(|i| i.secret).map(|i| i.name()).collect();
    let in_image: Vec<String> = lock.secrets.iter().map(|s| s.path.clone()).collect();
    if !carried.is_empty() || !in_image.is_empty() {
        ui.warn(&format!(
            "{shown} carries secrets the image is meant to hold ({}{}{}): keep the bundle as you keep them",
            in_image.join(", "),
            if carried.is_empty() || in_image.is_empty() { "" } else { "; from " },
            carried.join(", ")
        ));
    }
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    ui.info(&format!(
        "smelt: bundled {} inputs of {} ({:.1} MiB; {:.1} MiB as blobs) into {}\n  manifest {}{}",
        lock.inputs.len(),
        lock.name,
        mib(written.inputs_bytes),
        mib(written.blobs_bytes),
        shown,
        written.manifest,
        key.map_or(String::new(), |k| format!("\n  signed by {}", k.public.fingerprint()))
    ));
    Ok(String::new())
}

/// Pushes the bundle written at `out` (a layout directory, or its tar unpacked first);
/// how many blobs the registry did not have.
fn push_layout(out: &Path, to: &crate::registry::Reference, ca: Option<&Path>) -> anyhow::Result<usize> {
    if out.is_dir() {
        return Ok(bundle::remote::push(out, to, ca)?.1);
    }
    let scratch =
        crate::io::atomic::Scratch::new(out.parent().unwrap_or(Path::new(".")), "smelt-bundle-push")?;
    let layout = scratch.path().join("layout");
    bundle::untar(out, &layout)?;
    Ok(bundle::remote::push(&layout, to, ca)?.1)
}
