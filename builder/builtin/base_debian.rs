//! `base-debian`: a Debian minbase root made by debootstrap once (as root, with the
//! network), kept as a tarball in the cache, and staged from that tarball by every
//! build, so `--offline` rebuilds give the same bytes and need neither.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context as _};
use serde_json::{json, Value};

use crate::tree::Tree;

/// `base-debian`: debootstrap minbase of `suite` from `mirror` with `packages`, run
/// once and kept as a tarball in the cache; every build, the first included, stages
/// from that tarball, so a rebuild with `--offline` gives the same bytes.
pub fn apply(tree: &mut Tree, element: &str, params: &Value, offline: bool) -> anyhow::Result<usize> {
    let suite = params.get("suite").and_then(Value::as_str).unwrap_or("bookworm").to_string();
    let mirror =
        params.get("mirror").and_then(Value::as_str).unwrap_or("http://deb.debian.org/debian").to_string();
    let mut packages: Vec<String> = super::list_param(params, "packages");
    packages.sort();
    packages.dedup();
    let arch = crate::platform::arch();
    let wanted =
        json!({ "suite": suite, "mirror": mirror, "packages": packages, "arch": arch, "variant": "minbase" });
    let key = {
        use sha2::{Digest, Sha256};
        let h = Sha256::digest(wanted.to_string().as_bytes());
        h.iter().take(8).map(|b| format!("{b:02x}")).collect::<String>()
    };
    let cached = crate::cache::dir().join("base-debian").join(format!("{suite}-{arch}-{key}.tar"));
    if !cached.exists() {
        if offline {
            bail!(
                "element `{element}`: no cached bootstrap of {suite} ({}) at {}; build once without --offline to fetch it",
                if packages.is_empty() { "minbase".to_string() } else { format!("minbase + {}", packages.join(", ")) },
                cached.display()
            );
        }
        bootstrap(element, &suite, &mirror, &packages, &cached)?;
    }
    super::base_rootfs::add_tar(tree, &cached, element)
}

fn bootstrap(
    element: &str,
    suite: &str,
    mirror: &str,
    packages: &[String],
    cached: &Path,
) -> anyhow::Result<()> {
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "element `{element}`: the first bootstrap of {suite} needs root (debootstrap makes device nodes and \
             chowns files): run this build once as root; later builds use the cached tarball and need neither root nor network"
        );
    }
    let dir = cached.parent().expect("has a parent");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    crate::io::atomic::sweep(dir);
    let scratch = crate::io::atomic::Scratch::new(dir, "bootstrap")?;
    let root = scratch.path();
    let log = dir.join(format!("{suite}.debootstrap.log"));
    let mut cmd = Command::new("debootstrap");
    cmd.arg("--variant=minbase");
    if !packages.is_empty() {
        cmd.arg(format!("--include={}", packages.join(",")));
    }
    cmd.arg(suite)
        .arg(root)
        .arg(mirror)
        .stdout(std::fs::File::create(&log)?)
        .stderr(std::fs::File::create(&log)?.try_clone()?);
    crate::ui::warning(&format!(
        "element `{element}`: bootstrapping {suite} from {mirror} (once; kept in {})",
        cached.display()
    ));
    let status = crate::cleanup::status(&mut cmd).with_context(|| {
        format!("element `{element}`: running debootstrap; install it (Debian/Ubuntu: debootstrap)")
    })?;
    if !status.success() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(10).collect::<Vec<_>>().into_iter().rev().collect();
        bail!(
            "element `{element}`: debootstrap of {suite} failed ({status}):\n    {}\n  full log: {}",
            tail.join("\n    "),
            log.display()
        );
    }
    // What the bootstrap downloaded is not part of the system.
    for junk in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        if let Ok(rd) = std::fs::read_dir(root.join(junk)) {
            for e in rd.flatten().filter(|e| e.path().is_file()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let pending = crate::io::atomic::Pending::new(cached);
    let mut builder = tar::Builder::new(std::io::BufWriter::new(pending.create_file()?));
    builder.follow_symlinks(false);
    builder
        .append_dir_all(".", root)
        .with_context(|| format!("element `{element}`: packing {}", root.display()))?;
    builder.into_inner()?.into_inner().map_err(|e| e.into_error())?;
    pending.publish()
}
