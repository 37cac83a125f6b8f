//! base-debian: bootstrapped once (root and the Debian mirror needed), then rebuilt
//! with --offline inside a network namespace that has no network: the same bytes.

use crate::util::{member, sh, Dir, Image};

#[test]
fn an_offline_rebuild_without_network_gives_the_same_bytes() {
    assert_eq!(unsafe { libc::geteuid() }, 0, "the first bootstrap needs root: run tests/run.sh as root");
    let dir = Dir::heavy();
    dir.image(
        &Image::new("deb", &["base-debian", "init"]).params("base-debian", "packages = [\"iproute2\"]"),
    );
    dir.write("size-budget.toml", "[output.initramfs]\nmax = \"200MiB\"\nmax-unpacked = \"1GiB\"\n");
    let cache = dir.path("cache");
    let env = [("SMELT_CACHE_DIR", cache.to_str().unwrap()), ("SOURCE_DATE_EPOCH", "1700000000")];

    // Offline with nothing cached: refused, saying what to do.
    let r = dir.smelt_env(&["build", "image.toml", "-o", "cold", "--offline"], &env).fails(1);
    assert!(
        r.stderr.starts_with(
            "smelt: element `base-debian`: no cached bootstrap of bookworm (minbase + iproute2) at "
        ),
        "{}",
        r.stderr
    );
    assert!(r.stderr.ends_with("; build once without --offline to fetch it\n"), "{}", r.stderr);

    dir.smelt_env(&["build", "image.toml", "-o", "online", "-q"], &env).ok();
    let archive = dir.path("online/deb.cpio.zst");
    assert!(member(&archive, "etc/debian_version").starts_with("12."));
    assert!(member(&archive, "var/lib/dpkg/status").contains("Package: iproute2\n"));
    // The security suite is among the image's sources, through the mirror param's sibling.
    let sources = member(&archive, "etc/apt/sources.list");
    assert!(sources.contains("http://deb.debian.org/debian-security bookworm-security main"), "{sources}");
    // The report says which package each byte came from, the table the largest.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("online/report.json")).unwrap()).unwrap();
    let packages = report["packages"].as_array().expect("a packages table");
    let share =
        |name: &str| packages.iter().find(|p| p["name"] == name).map(|p| p["bytes"].as_u64().unwrap());
    let ip = sh(&format!("bsdtar -xOf {} usr/bin/ip | wc -c", archive.display()));
    assert!(share("iproute2").unwrap() >= ip.trim().parse::<u64>().unwrap(), "{packages:?}");
    assert!(share("libc6").unwrap() > 10 << 20, "{packages:?}");
    let files: u64 = packages.iter().map(|p| p["files"].as_u64().unwrap()).sum();
    assert_eq!(files, report["tree"]["files"].as_u64().unwrap(), "every file counted once: {packages:?}");

    // The rebuild runs where there is no network at all.
    dir.build_offline(&[], &env);
    assert!(
        std::fs::read(&archive).unwrap() == std::fs::read(dir.path("offline/deb.cpio.zst")).unwrap(),
        "the offline rebuild differs"
    );
}

/// A rootfs tarball keeps its owners, devices and hard links, staged without root.
#[test]
fn base_rootfs_keeps_what_the_tarball_records() {
    let dir = Dir::new();
    let file = std::fs::File::create(dir.path("rootfs.tar")).unwrap();
    let mut tar = tar::Builder::new(file);
    let mut add = |path: &str,
                   kind: tar::EntryType,
                   uid: u64,
                   mode: u32,
                   data: &[u8],
                   link: Option<&str>,
                   dev: Option<(u32, u32)>| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_uid(uid);
        h.set_gid(uid);
        h.set_mode(mode);
        h.set_mtime(1_600_000_000);
        if let Some(l) = link {
            h.set_link_name(l).unwrap();
        }
        if let Some((ma, mi)) = dev {
            h.set_device_major(ma).unwrap();
            h.set_device_minor(mi).unwrap();
        }
        tar.append_data(&mut h, path, data).unwrap();
    };
    add("./etc/", tar::EntryType::Directory, 0, 0o755, b"", None, None);
    add("./etc/os-release", tar::EntryType::Regular, 0, 0o644, b"ID=test\n", None, None);
    add("./home/app/", tar::EntryType::Directory, 1000, 0o750, b"", None, None);
    add("./home/app/data", tar::EntryType::Regular, 1000, 0o640, b"app data\n", None, None);
    add("./home/app/same", tar::EntryType::Link, 1000, 0o640, b"", Some("home/app/data"), None);
    add("./dev/", tar::EntryType::Directory, 0, 0o755, b"", None, None);
    add("./dev/null", tar::EntryType::Char, 0, 0o666, b"", None, Some((1, 3)));
    tar.into_inner().unwrap();
    crate::util::sh(&format!("gzip -9n {}", dir.path("rootfs.tar").display()));
    dir.image(
        &Image::new("rfs", &["base-rootfs"])
            .outputs(&["initramfs", "iso"])
            .params("base-rootfs", "source = \"rootfs.tar.gz\""),
    );
    dir.smelt_env(
        &["build", "image.toml", "-o", "out"],
        &[("SMELT_CACHE_DIR", dir.path("cache").to_str().unwrap())],
    )
    .ok();
    let archive = dir.path("out/rfs.cpio.zst");
    assert_eq!(member(&archive, "home/app/data"), "app data\n");
    let listing =
        crate::util::sh(&format!("zstd -dc {} | cpio -tv --quiet --numeric-uid-gid", archive.display()));
    let line = |name: &str| listing.lines().find(|l| l.ends_with(&format!(" {name}"))).unwrap().to_string();
    // The hard link pair: two names, one inode (nlink 2); the data is with the first.
    assert!(line("home/app/data").starts_with("-rw-r-----   2 1000     1000"), "{listing}");
    assert!(line("home/app/same").starts_with("-rw-r-----   2 1000     1000"), "{listing}");
    assert!(line("home/app").starts_with("drwxr-x---"), "{listing}");
    assert!(line("dev/null").starts_with("crw-rw-rw-   1 0        0          1,   3"), "{listing}");
    // The data ISO reads the members out of the tarball too, the link as a link.
    let iso = dir.path("out/rfs.iso");
    for name in ["data", "same"] {
        let to = dir.path(&format!("from-iso-{name}"));
        crate::util::sh(&format!(
            "xorriso -indev {} -osirrox on -extract /home/app/{name} {} 2>/dev/null",
            iso.display(),
            to.display()
        ));
        assert_eq!(std::fs::read_to_string(&to).unwrap(), "app data\n");
    }
    let listing = crate::util::sh(&format!("bsdtar -tvf {}", iso.display()));
    assert!(listing.contains(" link to ./home/app/"), "{listing}");
}

/// diskimage-builder elements, unchanged: deps, provides, environment.d, install.d and
/// package-installs.yaml (through pkg-map, with a `when` that is false).
#[test]
fn dib_elements_run_unchanged() {
    assert_eq!(unsafe { libc::geteuid() }, 0, "the first bootstrap needs root: run tests/run.sh as root");
    let dir = Dir::heavy();
    dir.write("elements/dib-app/element-deps", "base-debian\n");
    dir.write("elements/dib-app/element-provides", "app-runtime\n");
    dir.write("elements/dib-app/environment.d/10-app.bash", "export APP_GREETING='hello from dib-app'\n");
    dir.write("elements/dib-app/package-installs.yaml", "json-tool:\ncurl:\n  when: DIB_WITH_CURL = yes\n");
    dir.write("elements/dib-app/pkg-map", r#"{"family": {"debian": {"json-tool": "jq"}}}"#);
    dir.write(
        "elements/dib-app/install.d/50-app",
        "#!/bin/sh\nset -e\necho \"$APP_GREETING; $(jq --version)\" > /etc/app.conf\n",
    );
    dir.write("elements/dib-consumer/element-deps", "app-runtime\n");
    dir.write(
        "elements/dib-consumer/install.d/60-consumer",
        "#!/bin/bash\nset -eu\necho \"consumer ran after ${APP_GREETING}\" > /etc/consumer.txt\n",
    );
    dir.image(&Image::new("dib", &["dib-app", "dib-consumer"]));
    dir.write("size-budget.toml", "[output.initramfs]\nmax = \"200MiB\"\nmax-unpacked = \"1GiB\"\n");
    let cache = dir.path("cache");
    let env = [("SMELT_CACHE_DIR", cache.to_str().unwrap()), ("SOURCE_DATE_EPOCH", "1700000000")];
    let r = dir.build_into("out", &[], &env).ok();
    assert!(
        r.stderr.contains("01-package-installs")
            && r.stderr.contains("50-app")
            && r.stderr.contains("60-consumer"),
        "{}",
        r.stderr
    );
    let archive = dir.path("out/dib.cpio.zst");
    assert!(
        member(&archive, "etc/app.conf").starts_with("hello from dib-app; jq-1."),
        "{}",
        member(&archive, "etc/app.conf")
    );
    assert_eq!(member(&archive, "etc/consumer.txt"), "consumer ran after hello from dib-app\n");
    let status = member(&archive, "var/lib/dpkg/status");
    assert!(status.contains("Package: jq\n"), "jq is not installed");
    assert!(!status.contains("Package: curl\n"), "curl's `when` was false");
    let manifest = crate::util::manifest(&dir.path("out"));
    let jq = manifest.as_array().unwrap().iter().find(|e| e["path"] == "/usr/bin/jq").expect("/usr/bin/jq");
    // Attributed to the element that asked for the package.
    assert_eq!(jq["element"], "dib-app");

    // Offline, with no network at all: the packages come from the cache, and the image
    // is the same bytes.
    dir.build_offline(&["--elements-path", "elements"], &env);
    assert!(
        std::fs::read(&archive).unwrap() == std::fs::read(dir.path("offline/dib.cpio.zst")).unwrap(),
        "the offline rebuild with package installs differs"
    );
}
