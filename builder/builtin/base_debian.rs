//! `base-debian`: a Debian minbase root made by mmdebstrap once (with the network; as
//! root, or in a user namespace), kept as a tarball in the cache, and staged from that
//! tarball by every build, so `--offline` rebuilds give the same bytes and need neither.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};
use serde_json::json;

use super::{BuiltIn, Context, Identity};
use crate::element::Form;
use crate::tree::tarball::Labels;
use crate::tree::Tree;

/// What a bootstrap is made of; its cached tarball is named by a hash of it.
#[derive(serde::Serialize)]
struct Bootstrap {
    suite: String,
    mirror: String,
    /// Where `SUITE-security` comes from, when the updates are wanted (`None`: not).
    security: Option<String>,
    components: Vec<String>,
    packages: Vec<String>,
    /// Whether a kernel the bootstrap installs gets its initramfs in /boot, as
    /// diskimage-builder's elements expect; smelt's own leave /boot out, so none is
    /// made for them (it costs a bootstrap tens of seconds).
    initrd: bool,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct BaseDebian {
    suite: String,
    mirror: String,
    packages: Vec<String>,
    components: Vec<String>,
    updates: bool,
    security_mirror: String,
}

impl BuiltIn for BaseDebian {
    /// mmdebstrap minbase of `suite` from `mirror` with `packages`, run once and kept as
    /// a tarball in the cache; every build, the first included, stages from that
    /// tarball, so a rebuild with `--offline` gives the same bytes.
    fn stage(&self, tree: &mut Tree, cx: &mut Context) -> anyhow::Result<usize> {
        // diskimage-builder's scripts pick the kernel by its /boot/initrd* beside it.
        let initrd = cx.elements.elements.iter().any(|e| e.manifest.form == Form::Dib);
        let want = self.bootstrap(initrd);
        let cached = cached_tarball(&want);
        if !cached.exists() {
            if cx.offline {
                let what = match want.packages.is_empty() {
                    true => "minbase".to_string(),
                    false => format!("minbase + {}", want.packages.join(", ")),
                };
                bail!(
                    "element `{}`: no cached bootstrap of {} ({what}) at {}; build once without --offline to fetch it",
                    cx.element,
                    want.suite,
                    cached.display()
                );
            }
            bootstrap(cx.element, &want, &cached)?;
        }
        crate::tree::tarball::add_tar(tree, &crate::lock::read(&cached), cx.element, Labels::Dropped)
    }

    fn identity(&self, _: &crate::config::image::Image, _: bool) -> anyhow::Result<Identity> {
        Ok(Identity { distro: Some("debian".into()), release: Some(self.suite.clone()), init_system: None })
    }
}

impl BaseDebian {
    /// What to bootstrap: the lists sorted, so their order names no other tarball.
    fn bootstrap(&self, initrd: bool) -> Bootstrap {
        let sorted = |list: &[String]| {
            let mut list = list.to_vec();
            list.sort();
            list.dedup();
            list
        };
        let mut components = sorted(&self.components);
        if components.is_empty() {
            components.push("main".into());
        }
        Bootstrap {
            suite: self.suite.clone(),
            mirror: self.mirror.clone(),
            security: self.updates.then(|| self.security_mirror.clone()),
            components,
            packages: sorted(&self.packages),
            initrd,
        }
    }
}

/// Where the tarball of `want` is kept: named by a hash of what it is made of and how.
fn cached_tarball(want: &Bootstrap) -> PathBuf {
    let arch = crate::platform::arch();
    // `how` the tarball was made is in its key: one made another way is not reused.
    let how =
        json!({ "tool": "mmdebstrap", "variant": "minbase", "recommends": false, "merged-usr": "hook" });
    let wanted = json!({ "want": want, "arch": arch, "how": how });
    let key = {
        use sha2::{Digest, Sha256};
        let h = Sha256::digest(wanted.to_string().as_bytes());
        h.iter().take(8).map(|b| format!("{b:02x}")).collect::<String>()
    };
    crate::cache::dir().join("base-debian").join(format!("{}-{arch}-{key}.tar", want.suite))
}

fn bootstrap(element: &str, want: &Bootstrap, cached: &Path) -> anyhow::Result<()> {
    let Bootstrap { suite, mirror, packages, initrd, .. } = want;
    let dir = cached.parent().expect("has a parent");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    crate::io::atomic::sweep(dir);
    let log = dir.join(format!("{suite}.mmdebstrap.log"));
    let pending = crate::io::atomic::Pending::new(cached);
    let mut cmd = Command::new("mmdebstrap");
    // Only what was asked for and what it depends on, as debootstrap installs; the
    // setting is not left in the image, so hooks' apt-get keeps apt's defaults.
    cmd.arg("--variant=minbase")
        .arg("--format=tar")
        .arg("--aptopt=APT::Install-Recommends \"false\"")
        .arg("--customize-hook=rm -f \"$1/etc/apt/apt.conf.d/99mmdebstrap\"")
        // /usr merged by symlinks made up front, as debootstrap does: without it
        // bookworm's init-system-helpers pulls in the usrmerge package, and with it
        // perl (55 MiB).
        .arg("--hook-dir=/usr/share/mmdebstrap/hooks/maybe-merged-usr");
    if !packages.is_empty() {
        cmd.arg(format!("--include={}", packages.join(",")));
    }
    if !initrd {
        // The image is the initramfs: one made inside it by initramfs-tools (or dracut)
        // for a kernel it installs would be left out with /boot, so none is made.
        cmd.env("INITRD", "No");
    }
    let log_file = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    cmd.arg(suite)
        .arg(pending.temp_path())
        .args(sources(want))
        .stdout(log_file.try_clone()?)
        .stderr(log_file);
    crate::ui::warning(&format!(
        "element `{element}`: bootstrapping {suite} from {mirror} (once; kept in {})",
        cached.display()
    ));
    let status = crate::cleanup::status(&mut cmd).with_context(|| {
        format!("element `{element}`: running mmdebstrap; install it (Debian/Ubuntu: mmdebstrap)")
    })?;
    if !status.success() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(10).collect::<Vec<_>>().into_iter().rev().collect();
        let hint = if unsafe { libc::geteuid() } != 0 {
            "\n  without root, mmdebstrap works in a user namespace, which needs ranges for you in /etc/subuid \
             and /etc/subgid; or run this first build as root (later ones use the cached tarball)"
        } else {
            ""
        };
        bail!(
            "element `{element}`: mmdebstrap of {suite} failed ({status}):\n    {}\n  full log: {}{hint}",
            tail.join("\n    "),
            log.display()
        );
    }
    pending.publish()
}

/// The archive's lines for apt (`deb URI SUITE COMPONENTS`), as mmdebstrap takes them:
/// the suite, and with the updates its `-updates` and `-security` suites, which a
/// development suite (sid, unstable, experimental) has neither of.
fn sources(want: &Bootstrap) -> Vec<String> {
    let Bootstrap { suite, mirror, security, components, .. } = want;
    let components = components.join(" ");
    let mut lines = vec![format!("deb {mirror} {suite} {components}")];
    let development = ["sid", "unstable", "experimental"].contains(&suite.as_str());
    if let (Some(security), false) = (security, development) {
        lines.push(format!("deb {mirror} {suite}-updates {components}"));
        lines.push(format!("deb {security} {suite}-security {components}"));
    }
    lines
}
