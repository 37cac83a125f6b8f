//! The field kit, for real: ansible-core from PyPI in a venv, trimmed by python-trim
//! into examples/fieldkit's data ISO, then run as the operator would — on a node
//! with no Python (a busybox ramdisk in QEMU, the ISO read-only at a path the build
//! never saw), and with the system interpreter from a copy on the build host.

use std::path::{Path, PathBuf};

use crate::util::{cached, kernel, qemu_sized, sh, Dir, Image};

/// ansible-core and everything it depends on, pinned.
const ANSIBLE: &str =
    "ansible-core==2.19.14 cffi==2.1.1 cryptography==50.0.2 Jinja2==3.1.6 MarkupSafe==3.0.4 \
                       packaging==26.4 pycparser==3.12 PyYAML==6.0.4 resolvelib==1.2.1";

/// A venv with ansible-core, made once (from PyPI) and kept in the test cache.
pub fn ansible_venv() -> PathBuf {
    cached("ansible-core-2.19.14-venv", |dir| {
        sh(&format!(
            "python3 -m venv {d} && {d}/bin/pip install -q --disable-pip-version-check --no-cache-dir {ANSIBLE}",
            d = dir.display()
        ));
    })
}

/// examples/fieldkit in `dir`, its venv the cached one; `interpreter` as given.
fn field_kit(dir: &Dir, interpreter: &str) -> crate::util::Run {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/fieldkit");
    sh(&format!("cp -r {}/. {}", example.display(), dir.path("").display()));
    let venv = ansible_venv();
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

#[test]
fn the_bundled_kit_runs_its_playbook_from_a_read_only_cd_on_a_node_without_python() {
    let dir = Dir::heavy();
    field_kit(&dir, "bundled").ok();
    let iso = dir.path("out/fieldkit.iso");
    // The example stores its files compressed (zisofs), which the guest's kernel reads
    // as plain files; the target for the bundled kit is 35 MiB.
    let listed = dir.smelt(&["inspect", iso.to_str().unwrap()]).ok().stdout;
    assert!(listed.contains(": ISO 9660 (zisofs files), "), "{}", &listed[..200.min(listed.len())]);
    let size = std::fs::metadata(&iso).unwrap().len();
    assert!(size <= 35 << 20, "the bundled kit is {size} bytes, over 35 MiB");
    let initrd = runner(&dir);
    let append = "console=ttyS0 panic=-1";
    let k = kernel();
    let args = [
        "-kernel",
        k.to_str().unwrap(),
        "-initrd",
        initrd.to_str().unwrap(),
        "-append",
        append,
        "-cdrom",
        iso.to_str().unwrap(),
    ];
    let console = qemu_sized(1024, 2400, &args);
    let release = k.file_name().unwrap().to_string_lossy().trim_start_matches("vmlinuz-").to_string();
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
        assert!(console.contains(&want), "no `{want}` on the console:\n{console}");
    }
}

#[test]
fn the_system_kit_runs_from_a_copy_on_the_build_host() {
    assert!(Path::new("/usr/bin/python3").exists(), "needs Debian's python3: run tests/run.sh as root");
    let dir = Dir::heavy();
    field_kit(&dir, "system").ok();
    let copy = dir.path("elsewhere/kit");
    let dest = dir.path("settings");
    std::fs::create_dir_all(&copy).unwrap();
    sh(&format!("cd {} && bsdtar -xf {}", copy.display(), dir.path("out/fieldkit.iso").display()));
    assert_eq!(std::fs::read_link(copy.join("ansible/bin/python3")).unwrap(), Path::new("/usr/bin/python3"));
    let out = sh(&format!(
        "cd {} && env -i PATH=/usr/bin:/bin HOME={} LC_ALL=C.UTF-8 ./ansible/bin/ansible-playbook -i inventory.ini \
         site.yml -e dest={} 2>&1",
        copy.display(),
        dir.path("").display(),
        dest.display()
    ));
    assert!(out.contains("failed=0"), "{out}");
    assert_eq!(std::fs::read_to_string(dest.join("settings.conf")).unwrap(), "ntp = 10.10.0.123\n");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("out/report.json")).unwrap()).unwrap();
    let rules: Vec<&str> =
        report["trim"].as_array().unwrap().iter().map(|t| t["rule"].as_str().unwrap()).collect();
    assert!(rules.contains(&"remove: lib/python*/site-packages/ansible_test"), "{rules:?}");
    assert!(rules.iter().any(|r| r.starts_with("strip --strip-unneeded")), "{rules:?}");
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
            &format!("agent.payload={}", ansible_venv().display()),
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
