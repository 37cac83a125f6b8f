//! diskimage-builder's own elements, unchanged, from the `diskimage-builder` wheel on
//! PyPI (pinned, kept in the test cache) on the element path, on base-debian: each
//! element's effect checked in the image, and an `--offline` rebuild in a namespace
//! without network giving the same bytes.

use std::path::PathBuf;

use crate::util::{assert_same_bytes, cached, member, sh, Dir, Image};

/// diskimage-builder 3.43.0 from PyPI, installed with its scripts' modes (`--target`).
pub fn dib() -> PathBuf {
    cached("diskimage-builder-3.43.0", |dir| {
        sh(&format!(
            "python3 -m pip install -q --disable-pip-version-check --no-cache-dir --no-deps --target {} \
             diskimage-builder==3.43.0",
            dir.display()
        ));
    })
}

/// ironic-python-agent-builder 7.4.0 from PyPI, its elements where the wheel's data
/// files go (`share/ironic-python-agent-builder/dib`).
pub fn ipa_builder_elements() -> String {
    let dir = cached("ironic-python-agent-builder-7.4.0", |dir| {
        sh(&format!(
            "python3 -m pip install -q --disable-pip-version-check --no-cache-dir --no-deps --target {} \
             ironic-python-agent-builder==7.4.0",
            dir.display()
        ));
    });
    dir.join("share/ironic-python-agent-builder/dib").display().to_string()
}

/// The path of DIB's elements in the wheel.
pub fn dib_elements() -> String {
    dib().join("diskimage_builder/elements").display().to_string()
}

/// Our elements written against DIB: one mapping and installing packages through
/// package-installs + pkg-map (and calling install-packages itself), one with source
/// repositories of each type, one with install types, one fetching with cache-url.
fn elements_of_ours(dir: &Dir) {
    dir.write("elements/our-packages/element-deps", "package-installs\npkg-map\n");
    dir.write("elements/our-packages/package-installs.yaml", "json-tool:\n");
    dir.write(
        "elements/our-packages/pkg-map",
        r#"{"family": {"debian": {"json-tool": "jq"}, "suse": {"json-tool": "jq"}}}"#,
    );
    dir.write(
        "elements/our-packages/install.d/70-more-packages",
        "#!/bin/bash\nset -eu\ninstall-packages tree\ntree --version > /etc/our-tree-version\n",
    );

    // A git repository, a tarball and a file, all local.
    sh(&format!(
        "set -e; d={0}; mkdir -p $d/repo $d/tarball/app-1.0; cd $d/repo; git init -q -b main; \
         echo 'from git' > README; git add README; \
         git -c user.email=t@t -c user.name=t commit -q -m one; git tag v1; \
         echo 'after the tag' > README; git -c user.email=t@t -c user.name=t commit -q -am two; \
         echo 'from a tarball' > $d/tarball/app-1.0/NOTES; tar -C $d/tarball -czf $d/app.tar.gz app-1.0; \
         echo 'a plain file' > $d/plain.txt",
        dir.path("src").display()
    ));
    dir.write("elements/our-sources/element-deps", "source-repositories\n");
    dir.write(
        "elements/our-sources/source-repository-our",
        &format!(
            "our-git git /opt/our/git {0}/repo v1\nour-tar tar /opt/our/tar {0}/app.tar.gz *\n\
             our-file file /opt/our/plain.txt {0}/plain.txt\n",
            dir.path("src").display()
        ),
    );

    dir.write("elements/our-types/element-deps", "install-types\n");
    dir.write(
        "elements/our-types/install.d/our-types-source-install/50-our-types",
        "#!/bin/sh\necho source > /etc/our-install-type\n",
    );
    dir.write(
        "elements/our-types/install.d/our-types-package-install/50-our-types",
        "#!/bin/sh\necho package > /etc/our-install-type\n",
    );

    dir.write("fetch-me.txt", "fetched through cache-url\n");
    dir.write("elements/our-cache/element-deps", "cache-url\n");
    dir.write(
        "elements/our-cache/extra-data.d/20-fetch",
        "#!/bin/bash\nset -eu\ncache-url \"file://$DIB_TEST_FETCH\" \"$TMP_HOOKS_PATH/fetched.txt\"\n",
    );
    dir.write(
        "elements/our-cache/install.d/20-place",
        "#!/bin/sh\ncp /tmp/in_target.d/fetched.txt /etc/fetched.txt\n",
    );
}

#[test]
fn dib_elements_from_the_wheel_run_unchanged_on_base_debian() {
    assert_eq!(unsafe { libc::geteuid() }, 0, "the first bootstrap needs root: run tests/run.sh as root");
    let dir = Dir::heavy();
    elements_of_ours(&dir);
    dir.image(
        &Image::new(
            "dib",
            &[
                "base-debian",
                "devuser",
                "install-static",
                "runtime-ssh-host-keys",
                "dhcp-all-interfaces",
                "dib-init-system",
                "our-packages",
                "our-sources",
                "our-types",
                "our-cache",
            ],
        )
        .params("base-debian", "packages = [\"systemd\"]"),
    );
    dir.write("size-budget.toml", "[output.initramfs]\nmax = \"400MiB\"\nmax-unpacked = \"2GiB\"\n");
    dir.write(
        "keys.pub",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0wmN/Cr3JXqmLW7u+g9pTh+wyqDHpSQEIQczXkVx9q field@example\n",
    );
    let cache = dir.path("cache");
    let keys = dir.path("keys.pub").display().to_string();
    let fetch = dir.path("fetch-me.txt").display().to_string();
    let env = [
        ("SOURCE_DATE_EPOCH", "1700000000"),
        ("SMELT_CACHE_DIR", cache.to_str().unwrap()),
        ("DIB_DEV_USER_USERNAME", "field"),
        ("DIB_DEV_USER_PWDLESS_SUDO", "yes"),
        ("DIB_DEV_USER_AUTHORIZED_KEYS", keys.as_str()),
        ("DIB_INSTALLTYPE_our_types", "package"),
        ("DIB_TEST_FETCH", fetch.as_str()),
    ];
    let dib = dib_elements();
    let args = ["--elements-path", "elements", "--elements-path", dib.as_str()];
    let r = dir
        .smelt_env(&[&["build", "image.toml", "-o", "out", "-v", "--manifest"], &args[..]].concat(), &env)
        .ok();
    // DIB's per-phase table: script, element, seconds.
    assert!(r.stderr.contains("phase install.d:\n  01-package-installs"), "{}", r.stderr);
    assert!(r.stderr.contains("50-devuser                   devuser"), "{}", r.stderr);

    let archive = dir.path("out/dib.cpio.zst");
    let m = |p: &str| member(&archive, p);
    // devuser: the user, passwordless sudo, the authorized key.
    assert!(m("etc/passwd").contains("\nfield:x:1000:1000::/home/field:"), "{}", m("etc/passwd"));
    assert_eq!(m("etc/sudoers.d/field"), "field ALL=(ALL) NOPASSWD:ALL\n");
    assert!(m("home/field/.ssh/authorized_keys").contains("field@example"));
    // install-static (runtime-ssh-host-keys' static tree) and dib-init-system (its
    // systemd unit installed, then enabled).
    assert!(m("usr/local/sbin/runtime-ssh-host-keys.sh").starts_with("#!/bin/bash"));
    assert!(m("usr/lib/systemd/system/ssh-keygen.service")
        .contains("ExecStart=/usr/local/sbin/runtime-ssh-host-keys.sh"));
    let listing = sh(&format!("zstd -dc {} | cpio -t --quiet", archive.display()));
    assert!(
        listing.contains("etc/systemd/system/multi-user.target.wants/ssh-keygen.service"),
        "ssh-keygen not enabled"
    );
    // dhcp-all-interfaces: its script, unit and udev rule, and its dhcp client.
    assert!(m("usr/local/sbin/dhcp-all-interfaces.sh").contains("dhcp"));
    assert!(listing.contains("usr/lib/systemd/system/dhcp-interface@.service"));
    assert!(listing.contains("etc/udev/rules.d/99-dhcp-all-interfaces.rules"));
    let status = m("var/lib/dpkg/status");
    for pkg in ["jq", "tree", "isc-dhcp-client", "sudo", "rsync", "openssh-client", "curl"] {
        assert!(status.contains(&format!("Package: {pkg}\n")), "{pkg} is not installed");
    }
    assert!(m("etc/our-tree-version").starts_with("tree v"));
    // smelt's stand-ins for hooks (sudo, mknod, install-packages) never reach the image,
    // though DIB's install-bin copies the hooks' bin/ into it.
    for tool in ["sudo", "mknod", "install-packages", "smelt-install-packages"] {
        assert!(!listing.contains(&format!("usr/local/bin/{tool}\n")), "{tool} rode into the image");
    }
    // Source repositories: git at the tag, a tarball's contents, a file.
    assert_eq!(m("opt/our/git/README"), "from git\n");
    assert_eq!(m("opt/our/tar/NOTES"), "from a tarball\n");
    assert_eq!(m("opt/our/plain.txt"), "a plain file\n");
    // install-types: the package type, as DIB_INSTALLTYPE_our_types says.
    assert_eq!(m("etc/our-install-type"), "package\n");
    // cache-url, from a file:// URL.
    assert_eq!(m("etc/fetched.txt"), "fetched through cache-url\n");

    // What each requested package installed is the asking element's.
    let manifest = crate::util::manifest(&dir.path("out"));
    let owner = |path: &str| {
        let e = manifest.as_array().unwrap().iter().find(|e| e["path"] == path);
        e.map(|e| e["element"].as_str().unwrap().to_string())
    };
    assert_eq!(owner("/usr/bin/jq").as_deref(), Some("our-packages"));
    assert_eq!(owner("/usr/sbin/dhclient").as_deref(), Some("dhcp-all-interfaces"));

    // Offline, in a namespace with no network: the same bytes.
    dir.build_offline(&args, &env);
    assert_same_bytes(&archive, &dir.path("offline/dib.cpio.zst"), "the offline rebuild");
}

/// smelt plan shows the hooks as dib-run-parts would run them (`sort -n`), the install
/// type chosen, and which DIB core elements smelt does itself.
#[test]
fn plan_shows_dib_run_parts_order() {
    let dir = Dir::new();
    dir.write("elements/a/element-deps", "package-installs\n");
    dir.write("elements/a/install.d/9-early", "#!/bin/sh\n");
    dir.write("elements/a/install.d/10-late", "#!/bin/sh\n");
    dir.write("elements/a/install.d/README.md", "not a hook\n");
    dir.write("elements/a/install.d/helper.sh", "#!/bin/sh\n");
    dir.write("elements/a/install.d/a-source-install/50-a", "#!/bin/sh\n");
    dir.write("elements/a/package-installs.yaml", "jq:\n");
    dir.image(&Image::new("p", &["base-busybox", "a"]));
    let dib = dib_elements();
    let r = dir.smelt(&["plan", "image.toml", "--elements-path", "elements", "--elements-path", &dib]).ok();
    let hooks: Vec<&str> = r
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("hooks, in run order:"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .map(|l| Box::leak(l.into_boxed_str()) as &str)
        .collect();
    assert_eq!(
        hooks,
        [
            "pre-install.d 01-install-bin install-bin",
            "install.d 01-package-installs package-installs",
            "install.d 9-early a",
            "install.d 10-late a",
            "install.d 50-a a",
        ]
    );
    assert!(r.stdout.contains("package-installs"), "{}", r.stdout);
}

/// `smelt elements list` with DIB's collection on the path: each DIB element with its
/// form, the summary from its README, where it comes from and the phases it hooks;
/// the wheel's `__pycache__` is not an element.
#[test]
fn elements_list_shows_dib_elements_with_their_phases() {
    let dir = Dir::new();
    let dib = dib_elements();
    let r = dir.smelt(&["elements", "list", "--elements-path", &dib]).ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    let at = lines.iter().position(|l| l.starts_with("devuser ")).expect(&r.stdout);
    let row: Vec<&str> = lines[at].split_whitespace().collect();
    assert_eq!(row[1], "dib", "{}", lines[at]);
    assert!(lines[at].contains("Creates a user"), "{}", lines[at]);
    assert_eq!(lines[at + 1].trim(), format!("{dib}/devuser; phases: extra-data.d install.d"));
    let at = lines.iter().position(|l| l.starts_with("package-installs ")).expect(&r.stdout);
    assert!(lines[at].contains(" dib ") && lines[at].contains("done natively by smelt"), "{}", lines[at]);
    assert!(!r.stdout.contains("__pycache__"), "{}", r.stdout);
    let json: serde_json::Value = serde_json::from_str(
        &dir.smelt(&["elements", "list", "--json", "--elements-path", &dib]).ok().stdout,
    )
    .unwrap();
    let cache_url = json.as_array().unwrap().iter().find(|e| e["name"] == "cache-url").unwrap();
    assert_eq!(cache_url["form"], "dib");
    assert_eq!(cache_url["origin"], format!("{dib}/cache-url"));
}

/// Package installs through zypper and dnf, for real: two rpms built here (rpmbuild), a
/// local repository of them (createrepo_c), and an image of the SUSE family
/// (`DISTRO_NAME = opensuse`, as SLES ramdisk builders set it) or the Red Hat one
/// (`fedora`) — a base-debian root with Debian's own zypper or dnf stands in for the
/// distro — that installs them through package-installs.yaml and pkg-map, offline: the
/// rpm database in the image lists them, and an offline rebuild gives the same bytes.
fn rpms_install_from_a_local_repository(distro: &str, manager: &str, repos: &str) {
    assert_eq!(unsafe { libc::geteuid() }, 0, "the first bootstrap needs root: run tests/run.sh as root");
    let dir = Dir::heavy();
    let top = dir.path("rpmbuild");
    for (name, text) in [("smelt-hello", "hello"), ("smelt-world", "world")] {
        dir.write(
            &format!("{name}.spec"),
            &format!(
                "Name: {name}\nVersion: 1.0\nRelease: 1\nSummary: a test package\nLicense: MIT\nBuildArch: noarch\n\
                 %description\nA test package for smelt.\n%install\nmkdir -p %{{buildroot}}/usr/share/{name}\n\
                 echo {text} > %{{buildroot}}/usr/share/{name}/greeting\n%files\n/usr/share/{name}/greeting\n"
            ),
        );
        sh(&format!(
            "rpmbuild -bb --quiet --define '_topdir {}' {} >/dev/null 2>&1",
            top.display(),
            dir.path(&format!("{name}.spec")).display()
        ));
    }
    let repo = dir.path("elements/local-rpms/root/srv/smelt-rpms");
    std::fs::create_dir_all(&repo).unwrap();
    sh(&format!("cp {}/RPMS/noarch/*.rpm {1} && createrepo_c -q {1}", top.display(), repo.display()));
    dir.write(
        "elements/local-rpms/element.toml",
        &format!(
            "description = \"a local rpm repository, gone from the image at the end\"\n\
             [prune]\nremove = [\"srv/smelt-rpms\", \"srv/smelt-rpms/**\", \"{repos}/smelt.repo\"]\n"
        ),
    );
    dir.write(
        &format!("elements/local-rpms/root/{repos}/smelt.repo"),
        "[smelt]\nname=smelt\nbaseurl=file:///srv/smelt-rpms\nenabled=1\ngpgcheck=0\nautorefresh=0\n",
    );
    dir.write("elements/our-rpms/element-deps", "package-installs\n");
    dir.write("elements/our-rpms/package-installs.yaml", "greeting:\nsmelt-world:\n");
    dir.write(
        "elements/our-rpms/pkg-map",
        r#"{"family": {"suse": {"greeting": "smelt-hello"}, "redhat": {"greeting": "smelt-hello"}}}"#,
    );
    dir.image(
        &Image::new("rpms", &["base-debian", "local-rpms", "our-rpms"])
            .params("base-debian", &format!("packages = [\"{manager}\"]")),
    );
    dir.write("size-budget.toml", "[output.initramfs]\nmax = \"400MiB\"\nmax-unpacked = \"2GiB\"\n");
    let cache = dir.path("cache");
    let env = [
        ("SOURCE_DATE_EPOCH", "1700000000"),
        ("SMELT_CACHE_DIR", cache.to_str().unwrap()),
        ("DISTRO_NAME", distro),
    ];
    let dib = dib_elements();
    let args = ["--elements-path", "elements", "--elements-path", dib.as_str()];
    let r = dir.smelt_env(&[&["build", "image.toml", "-o", "out"], &args[..]].concat(), &env).ok();
    assert!(r.stderr.contains("01-package-installs          package-installs"), "{}", r.stderr);
    let archive = dir.path("out/rpms.cpio.zst");
    assert_eq!(member(&archive, "usr/share/smelt-hello/greeting"), "hello\n");
    assert_eq!(member(&archive, "usr/share/smelt-world/greeting"), "world\n");
    let listing = sh(&format!("zstd -dc {} | cpio -t --quiet", archive.display()));
    assert!(!listing.contains("srv/smelt-rpms"), "the repository stayed in the image");
    // The rpm database in the image lists both.
    let x = dir.path("x");
    std::fs::create_dir(&x).unwrap();
    sh(&format!(
        "cd {} && zstd -dc {} | cpio -id --quiet 2>/dev/null || true",
        x.display(),
        archive.display()
    ));
    // Where the distro keeps it; Debian's rpm, standing in, keeps dnf's in ~/.rpmdb.
    let db = ["usr/lib/sysimage/rpm", "var/lib/rpm", "root/.rpmdb"]
        .into_iter()
        .find(|d| std::fs::read_dir(x.join(d)).is_ok_and(|mut r| r.next().is_some()))
        .expect("an rpm database in the image");
    let installed = sh(&format!("rpm --dbpath {}/{db} -qa --qf '%{{NAME}}\\n' | sort", x.display()));
    assert_eq!(installed, "smelt-hello\nsmelt-world\n");

    dir.build_offline(&args, &env);
    assert_same_bytes(&archive, &dir.path("offline/rpms.cpio.zst"), "the offline rebuild");
}

#[test]
fn zypper_installs_rpms_for_the_suse_family() {
    rpms_install_from_a_local_repository("opensuse", "zypper", "etc/zypp/repos.d");
}

#[test]
fn dnf_installs_rpms_for_the_red_hat_family() {
    rpms_install_from_a_local_repository("fedora", "dnf", "etc/yum.repos.d");
}

/// ironic-python-agent-builder's `ironic-ramdisk-base` makes DIB's ramdisk itself in
/// `cleanup.d/99-ramdisk-create` (find | cpio | gzip, a kernel copied out). It runs
/// unchanged with smelt's cpio in place of the real one: what it does to the tree stands
/// (fstab, `/init`, `/dev/random` and `/dev/urandom` made with mknod, unprivileged),
/// the image keeps what its `find` chose (its prune list: docs, locales, `/boot`), and
/// smelt writes the only initramfs. `DIB_IPA_MINIMAL_PRUNE` is the hook's to honour.
#[test]
fn a_hook_that_makes_dibs_own_ramdisk_runs_with_smelts_cpio() {
    assert_eq!(unsafe { libc::geteuid() }, 0, "the first bootstrap needs root: run tests/run.sh as root");
    let dir = Dir::heavy();
    // What a Debian kernel package leaves in /boot, for DIB's select_boot_kernel_initrd.
    dir.write("elements/our-kernel/element-deps", "");
    dir.write("elements/our-kernel/root/boot/vmlinuz-6.1.0-99-amd64", "a kernel\n");
    dir.write("elements/our-kernel/root/boot/initrd.img-6.1.0-99-amd64", "an initrd\n");
    dir.write("elements/our-kernel/root/usr/share/locale/xx/LC_MESSAGES/our.mo", "mo\n");
    dir.image(
        &Image::new("ipa", &["base-debian", "our-kernel", "ironic-ramdisk-base"])
            .params("base-debian", "packages = [\"systemd\"]"),
    );
    dir.write("size-budget.toml", "[output.initramfs]\nmax = \"400MiB\"\nmax-unpacked = \"2GiB\"\n");
    let cache = dir.path("cache");
    let dib = dib_elements();
    let ipa = ipa_builder_elements();
    let args =
        ["--elements-path", "elements", "--elements-path", ipa.as_str(), "--elements-path", dib.as_str()];
    let plan = dir.smelt_env(&[&["plan", "image.toml"], &args[..]].concat(), &[]).ok();
    let line = plan.stdout.lines().find(|l| l.contains(" 99-ramdisk-create ")).expect(&plan.stdout);
    assert!(
        line.ends_with("Host  (makes DIB's image: run with smelt's cpio, smelt writes the image)"),
        "{line}"
    );
    for (out, minimal) in [("out", "0"), ("minimal", "1")] {
        let env = [
            ("SOURCE_DATE_EPOCH", "1700000000"),
            ("SMELT_CACHE_DIR", cache.to_str().unwrap()),
            ("DIB_IPA_MINIMAL_PRUNE", minimal),
        ];
        let r = dir.smelt_env(&[&["build", "image.toml", "-o", out], &args[..]].concat(), &env).ok();
        assert!(
            r.stderr.contains(
                "cleanup.d/99-ramdisk-create of element `ironic-ramdisk-base` makes diskimage-builder's image: \
                 it ran with smelt's cpio in place of the real one"
            ),
            "{}",
            r.stderr
        );
        let archive = dir.path(&format!("{out}/ipa.cpio.zst"));
        let listing = sh(&format!("zstd -dc {} | cpio -tv --quiet --numeric-uid-gid", archive.display()));
        let line =
            |path: &str| listing.lines().find(|l| l.ends_with(&format!(" {path}"))).map(str::to_string);
        assert_eq!(member(&archive, "etc/fstab"), "#disabled\n");
        assert!(line("init -> ./sbin/init").is_some(), "no /init link:\n{listing}");
        let random = line("dev/random").expect("dev/random");
        assert!(random.starts_with("crw-r--r--") && random.contains(" 1,   8 "), "{random}");
        assert!(line("dev/urandom").expect("dev/urandom").contains(" 1,   9 "));
        assert!(
            line("boot").is_some() && line("boot/vmlinuz-6.1.0-99-amd64").is_none(),
            "/boot's files stay out"
        );
        assert!(
            line("usr/bin/bash").is_some() || line("bin/bash").is_some(),
            "the rest of the root is there"
        );
        // The full prune removes locales and docs; the minimal one keeps them.
        let locale = line("usr/share/locale/xx/LC_MESSAGES/our.mo");
        let docs = listing.lines().filter(|l| l.contains(" usr/share/doc/")).count();
        if minimal == "0" {
            assert!(locale.is_none() && docs == 0, "pruned: locale {locale:?}, {docs} docs");
        } else {
            assert!(locale.is_some() && docs > 10, "minimal prune: locale {locale:?}, {docs} docs");
        }
        // No second archive: nothing of DIB's ramdisk beside smelt's outputs.
        let names: Vec<String> = std::fs::read_dir(dir.path(out))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| n.ends_with(".initramfs") || n.ends_with(".kernel")), "{names:?}");
    }
}
