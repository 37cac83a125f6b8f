//! The field kit, for real: ansible-core from PyPI in a venv, trimmed by python-trim
//! into examples/fieldkit's data ISO, then run as the operator would — on a node
//! with no Python (a busybox ramdisk in QEMU, the ISO read-only at a path the build
//! never saw), and with the system interpreter from a copy on the build host. The
//! venvs are made as users make them: with the distribution's `/usr/bin/python3`
//! (Debian's, whose `site` looks in dist-packages), with an upstream CPython build
//! (pyenv's, python.org's), and by `uv venv`.

use std::path::{Path, PathBuf};

use crate::util::{cached, kernel, qemu_sized, sh, Dir, Image};

/// ansible-core and everything it depends on, pinned.
const ANSIBLE: &str =
    "ansible-core==2.19.14 cffi==2.1.1 cryptography==50.0.2 Jinja2==3.1.6 MarkupSafe==3.0.4 \
                       packaging==26.4 pycparser==3.12 PyYAML==6.0.4 resolvelib==1.2.1";

/// What made a kit's venv.
#[derive(Clone, Copy, Debug)]
pub enum Maker {
    /// Debian's `/usr/bin/python3 -m venv`.
    Debian,
    /// An upstream CPython 3.11 build's `-m venv` (see [`upstream_python`]).
    Upstream,
    /// `uv venv` (uv from PyPI) with Debian's interpreter.
    Uv,
}

/// uv, pinned, from PyPI.
const UV: &str = "uv==0.13.9";

/// A venv with ansible-core made by `maker`, once (from PyPI), kept in the test cache.
pub fn ansible_venv(maker: Maker) -> PathBuf {
    let name = format!("ansible-core-2.19.14-venv-{maker:?}").to_lowercase();
    cached(&name, |dir| {
        let d = dir.display();
        let pip = "-q --disable-pip-version-check --no-cache-dir";
        sh(&match maker {
            Maker::Debian => format!("/usr/bin/python3 -m venv {d} && {d}/bin/pip install {pip} {ANSIBLE}"),
            Maker::Upstream => {
                format!("{} -m venv {d} && {d}/bin/pip install {pip} {ANSIBLE}", upstream_python().display())
            }
            Maker::Uv => {
                let uv = uv().display().to_string();
                format!("{uv} venv -q --python /usr/bin/python3 {d} && {uv} pip install -q --python {d}/bin/python {ANSIBLE}")
            }
        });
    })
}

/// An upstream CPython 3.11 build, as pyenv or python.org install it (its `site` looks
/// in `site-packages`): `SMELT_TEST_UPSTREAM_PYTHON`, else one on `PATH` or under
/// `~/.pyenv/versions`.
pub fn upstream_python() -> PathBuf {
    if let Ok(p) = std::env::var("SMELT_TEST_UPSTREAM_PYTHON") {
        return PathBuf::from(p);
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let found = sh(&format!(
        "for p in $(which -a python3.11 2>/dev/null) {home}/.pyenv/versions/3.11*/bin/python3.11; do \
         [ -x \"$p\" ] && \"$p\" -c 'import site, sys; sys.exit(\"dist-packages\" in str(site.getsitepackages([\"/p\"])))' \
         2>/dev/null && {{ readlink -f \"$p\"; break; }}; done; true"
    ));
    let found = found.trim();
    assert!(
        !found.is_empty(),
        "no upstream CPython 3.11 (a pyenv or python.org build) on this machine: install one, or name it in \
         SMELT_TEST_UPSTREAM_PYTHON"
    );
    PathBuf::from(found)
}

/// `uv`, installed once from PyPI into a venv of its own.
fn uv() -> PathBuf {
    cached(&format!("uv-{}", UV.trim_start_matches("uv==")), |dir| {
        sh(&format!(
            "/usr/bin/python3 -m venv {d} && {d}/bin/pip install -q --disable-pip-version-check {UV}",
            d = dir.display()
        ));
    })
    .join("bin/uv")
}

/// examples/fieldkit in `dir`, its venv the cached one `maker` made; `interpreter` as
/// given.
fn field_kit(dir: &Dir, maker: Maker, interpreter: &str) -> crate::util::Run {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/fieldkit");
    sh(&format!("cp -r {}/. {}", example.display(), dir.path("").display()));
    let venv = ansible_venv(maker);
    dir.build(&[
        "--set",
        &format!("agent.payload={}", venv.display()),
        "--set",
        &format!("python-trim.interpreter={interpreter}"),
        "--source-date-epoch",
        "1700000000",
    ])
}

/// A busybox ramdisk with the CD-ROM's modules whose start-up step mounts the ISO
/// read-only at a random path and runs the playbook from it, then prints the files.
fn runner(dir: &Dir) -> PathBuf {
    dir.image_at(
        "runner.toml",
        &Image::new("runner", &["base-busybox", "init", "kernel-modules", "runner"])
            .params("init", "then = \"poweroff\"")
            .params("kernel-modules", "modules = [\"ata_piix\", \"sr_mod\", \"isofs\"]"),
    );
    dir.write("elements/runner/element.toml", "description = \"runs the field kit from the CD\"\n");
    dir.write(
        "elements/runner/root/etc/smelt/init.d/50-fieldkit",
        "#!/bin/sh\ni=0; while [ ! -b /dev/sr0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done\n\
         at=/media/kit-$(cut -c1-8 /proc/sys/kernel/random/uuid)\n\
         mkdir -p \"$at\" /tmp/home && mount -t iso9660 -o ro /dev/sr0 \"$at\" || exit 1\n\
         echo \"fieldkit: mounted read-only at $at\"\n\
         command -v python3 || [ -e /usr/bin/python3 ] || echo 'fieldkit: this node has no python'\n\
         cd \"$at\" && HOME=/tmp/home ./ansible/bin/ansible-playbook -i inventory.ini site.yml --connection local\n\
         echo \"fieldkit: ansible-playbook exited $?\"\n\
         for f in kernel motd settings.conf machine; do echo \"fieldkit: $f = $(cat /etc/fieldkit/$f)\"; done\n\
         echo \"fieldkit: state mode $(stat -c %a /etc/fieldkit/state)\"\n",
    );
    dir.smelt(&["build", "runner.toml", "--elements-path", "elements", "-o", "runner", "-q"]).ok();
    dir.path("runner/runner.cpio.zst")
}

/// The kit's report entry: which interpreter it carries or expects, and whose `site`.
fn kit_report(dir: &Dir) -> serde_json::Value {
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("out/report.json")).unwrap()).unwrap();
    report["python"][0].clone()
}

/// The bundled kits of venvs made by Debian's Python and by an upstream build each run
/// the playbook on a node with no Python, from the read-only CD (the two guests at once).
#[test]
fn the_bundled_kit_runs_its_playbook_from_a_read_only_cd_on_a_node_without_python() {
    let kits: Vec<(Maker, Dir)> =
        [Maker::Debian, Maker::Upstream].into_iter().map(|m| (m, Dir::heavy())).collect();
    for (maker, dir) in &kits {
        field_kit(dir, *maker, "bundled").ok();
        let iso = dir.path("out/fieldkit.iso");
        // The example stores its files compressed (zisofs), which the guest's kernel
        // reads as plain files; the target for the bundled kit is 35 MiB.
        let listed = dir.smelt(&["inspect", iso.to_str().unwrap()]).ok().stdout;
        assert!(listed.contains(": ISO 9660 (zisofs files), "), "{}", &listed[..200.min(listed.len())]);
        let size = std::fs::metadata(&iso).unwrap().len();
        assert!(size <= 35 << 20, "{maker:?}: the bundled kit is {size} bytes, over 35 MiB");
        let kit = kit_report(dir);
        let site = match maker {
            Maker::Upstream => "upstream",
            _ => "debian",
        };
        assert_eq!(
            (kit["interpreter"].as_str(), kit["site"].as_str()),
            (Some("bundled"), Some(site)),
            "{kit}"
        );
    }
    let k = kernel();
    // Both ramdisks first: building holds both cores, which a guest would be holding.
    let runners: Vec<PathBuf> = kits.iter().map(|(_, dir)| runner(dir)).collect();
    let consoles: Vec<String> = std::thread::scope(|s| {
        let boots: Vec<_> = kits
            .iter()
            .zip(&runners)
            .map(|((_, dir), initrd)| {
                let iso = dir.path("out/fieldkit.iso");
                let k = &k;
                s.spawn(move || {
                    let args = [
                        "-kernel",
                        k.to_str().unwrap(),
                        "-initrd",
                        initrd.to_str().unwrap(),
                        "-append",
                        "console=ttyS0 panic=-1",
                        "-cdrom",
                        iso.to_str().unwrap(),
                    ];
                    qemu_sized(1024, 2400, &args)
                })
            })
            .collect();
        boots.into_iter().map(|b| b.join().unwrap()).collect()
    });
    let release = k.file_name().unwrap().to_string_lossy().trim_start_matches("vmlinuz-").to_string();
    for ((maker, _), console) in kits.iter().zip(&consoles) {
        for want in [
            "fieldkit: mounted read-only at /media/kit-".to_string(),
            "fieldkit: this node has no python".into(),
            "localhost                  : ok=7    changed=5    unreachable=0    failed=0".into(),
            "fieldkit: ansible-playbook exited 0".into(),
            format!("fieldkit: kernel = {release}"),
            "fieldkit: motd = Configured by the field kit for localhost (x86_64)".into(),
            "fieldkit: settings.conf = ntp = 10.10.0.123".into(),
            "fieldkit: machine = x86_64".into(),
            "fieldkit: state mode 750".into(),
        ] {
            assert!(console.contains(&want), "{maker:?}: no `{want}` on the console:\n{console}");
        }
    }
}

/// A venv made by `uv venv` (with Debian's interpreter, no pip in it) makes a bundled
/// kit whose verify commands run (`ansible --version`, the playbook's syntax check).
#[test]
fn a_uv_venv_makes_a_bundled_kit() {
    let dir = Dir::heavy();
    field_kit(&dir, Maker::Uv, "bundled").ok();
    let kit = kit_report(&dir);
    assert_eq!(
        (kit["interpreter"].as_str(), kit["site"].as_str()),
        (Some("bundled"), Some("debian")),
        "{kit}"
    );
    assert!(kit["version"].as_str().unwrap().starts_with("3.11."), "{kit}");
}

/// The system kit, from venvs of Debian's Python and of an upstream build, runs the
/// playbook with the host's `/usr/bin/python3` from a copy elsewhere.
#[test]
fn the_system_kit_runs_from_a_copy_on_the_build_host() {
    assert!(Path::new("/usr/bin/python3").exists(), "needs Debian's python3: run tests/run.sh as root");
    for maker in [Maker::Debian, Maker::Upstream] {
        let dir = Dir::heavy();
        field_kit(&dir, maker, "system").ok();
        let copy = dir.path("elsewhere/kit");
        let dest = dir.path("settings");
        std::fs::create_dir_all(&copy).unwrap();
        sh(&format!("cd {} && bsdtar -xf {}", copy.display(), dir.path("out/fieldkit.iso").display()));
        assert_eq!(
            std::fs::read_link(copy.join("ansible/bin/python3")).unwrap(),
            Path::new("/usr/bin/python3")
        );
        let out = sh(&format!(
            "cd {} && env -i PATH=/usr/bin:/bin HOME={} LC_ALL=C.UTF-8 ./ansible/bin/ansible-playbook -i inventory.ini \
             site.yml -e dest={} 2>&1",
            copy.display(),
            dir.path("").display(),
            dest.display()
        ));
        assert!(out.contains("failed=0"), "{maker:?}: {out}");
        assert_eq!(std::fs::read_to_string(dest.join("settings.conf")).unwrap(), "ntp = 10.10.0.123\n");
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path("out/report.json")).unwrap()).unwrap();
        let rules: Vec<&str> =
            report["trim"].as_array().unwrap().iter().map(|t| t["rule"].as_str().unwrap()).collect();
        assert!(rules.contains(&"remove: lib/python*/site-packages/ansible_test"), "{rules:?}");
        assert!(rules.iter().any(|r| r.starts_with("strip --strip-unneeded")), "{rules:?}");
        // examples/fieldkit names its playbook: ansible-core's modules it does not use go.
        assert!(rules.contains(&"ansible-core modules no playbook uses"), "{rules:?}");
        assert_eq!(report["python"][0]["interpreter"], "system", "{}", report["python"]);
    }
}

/// A user's `remove` glob that drops a package Ansible needs fails the build, naming the
/// rule and the `keep` line that would bring the package back.
#[test]
fn a_trim_that_breaks_the_kit_fails_naming_the_rule_and_the_keep_line() {
    let dir = Dir::heavy();
    sh(&format!("cp -r {}/examples/fieldkit/. {}", env!("CARGO_MANIFEST_DIR"), dir.path("").display()));
    let image = std::fs::read_to_string(dir.path("image.toml")).unwrap().replace(
        "remove = [\"lib/python*/site-packages/ansible_test\", \"bin/ansible-test\"]",
        "remove = [\"lib/python*/site-packages/ansible_test\", \"bin/ansible-test\", \"lib/python*/site-packages/jinja2\"]",
    );
    dir.write("image.toml", &image);
    let r = dir
        .build(&[
            "--set",
            &format!("agent.payload={}", ansible_venv(Maker::Debian).display()),
            "--set",
            "python-trim.interpreter=system",
        ])
        .fails(1);
    assert!(
        r.stderr.starts_with("smelt: element `python-trim`: verify `ansible/bin/ansible --version` failed"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(
            "`jinja2` is missing because rule `remove: lib/python*/site-packages/jinja2` removed \
             lib/python3.11/site-packages/jinja2; add `keep = [\"lib/python3.11/site-packages/jinja2/**\"]` to \
             [params.python-trim] to restore it"
        ),
        "{}",
        r.stderr
    );
}

/// When verify cannot import a module, the error names the real cause: a module in
/// the kit that the kit's Python does not look for (shown with its `sys.path`), and one
/// no rule removed and the venv never had.
#[test]
fn a_missing_module_is_explained_by_where_it_is() {
    let dir = Dir::heavy();
    sh(&format!("cp -r {}/examples/fieldkit/. {}", env!("CARGO_MANIFEST_DIR"), dir.path("").display()));
    let venv = format!("agent.payload={}", ansible_venv(Maker::Debian).display());
    let verify = |command: &str| {
        let set = format!("python-trim.verify=[{command:?}]");
        dir.build(&["--set", &venv, "--set", "python-trim.interpreter=system", "--set", &set]).fails(1).stderr
    };
    // Without `site`, the venv's packages are not on the path.
    let hidden = verify("cd ansible/bin && ./python3 -S -c 'import ansible'");
    assert!(
        hidden.contains(
            "`ansible` is in the kit (lib/python3.11/site-packages/ansible), but the kit's Python does not look \
             there: its sys.path is ['', "
        ),
        "{hidden}"
    );
    let never = verify("ansible/bin/python3 -c 'import smelt_no_such_module'");
    assert!(
        never.contains(
            "`smelt_no_such_module` is not in the kit, and no rule removed it: install it into the venv"
        ),
        "{never}"
    );
}
