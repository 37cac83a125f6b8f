//! base-image: disk images the tests make themselves from a Debian root mmdebstrap
//! built — ext4 in a GPT of several partitions (`mke2fs -d`), btrfs laid out as SLES
//! lays it out (the root a snapshot subvolume set as the default), xfs — each converted
//! to qcow2 and read by smelt through libguestfs, rootless and without mounting (the
//! test loop-mounts as root only to *make* the btrfs and xfs ones). The staged tree
//! equals the source root path for path; a SLES-like image installs an rpm from a
//! repository packed into an ISO with zypper and boots; failures leave nothing behind.

use std::path::{Path, PathBuf};

use crate::util::{assert_same_bytes, cached, member, sh, Dir, Image};

/// What the source root says it is: SLES, so that zypper (Debian's, standing in for
/// SUSE's) installs, as the SLES ramdisk's does.
const OS_RELEASE: &str =
    "NAME=\"SLES\"\nVERSION=\"15-SP5\"\nVERSION_ID=\"15.5\"\nPRETTY_NAME=\"SUSE Linux Enterprise Server 15 SP5 (smelt test)\"\nID=\"sles\"\nID_LIKE=\"suse\"\n";

/// A bookworm minbase root with zypper, systemd and a kernel (the image's own, as a SLES
/// image has it), made by mmdebstrap once, with what a tree must
/// carry across: a file capability, a hard link pair, another owner's files, set-id
/// bits, a FIFO, and the os-release above. As a directory (`root/`) in the test cache.
fn source_root() -> PathBuf {
    assert_eq!(unsafe { libc::geteuid() }, 0, "mmdebstrap and setcap need root: run tests/run.sh as root");
    let dir = cached("base-image-root-bookworm-3", |dir| {
        std::fs::create_dir_all(dir).unwrap();
        sh(&format!(
            "mmdebstrap --quiet --mode=root --variant=minbase --include=zypper,libcap2-bin,systemd,linux-image-cloud-amd64 \
             --aptopt='APT::Install-Recommends \"false\"' bookworm {}/root http://deb.debian.org/debian",
            dir.display()
        ));
        sh(&format!(
            "set -e; cd {}/root; rm -f etc/os-release; printf '{}' > etc/os-release; \
             cp usr/bin/true usr/local/bin/smelt-ping; setcap cap_net_raw+ep usr/local/bin/smelt-ping; \
             mkdir -p srv/app; echo 'app data' > srv/app/data; ln srv/app/data srv/app/same; \
             chown -R 1000:1000 srv/app; chmod 0750 srv/app; chmod 0640 srv/app/data; \
             mkfifo srv/app/pipe; chmod 2755 usr/local/bin",
            dir.display(),
            OS_RELEASE.replace('"', "\\\"")
        ));
    });
    dir.join("root")
}

/// The disk images, made once from [`source_root`]: `ext4-gpt.qcow2` (an EFI partition,
/// a larger empty `data` file system, the root last), `btrfs.qcow2` (SLES's layout: `@`,
/// `@/.snapshots`, the root in `@/.snapshots/1/snapshot` set as the default subvolume,
/// and a decoy at the top level; a home subvolume), `xfs.qcow2`; and `tiny.qcow2`, a
/// root of busybox alone, quick to read.
fn disks() -> PathBuf {
    let root = source_root();
    cached("base-image-disks-4", |dir| {
        std::fs::create_dir_all(dir).unwrap();
        let d = dir.display();
        let r = root.display();
        // ext4 by mke2fs -d (rootless), placed into partition 3 of a GPT.
        sh(&format!(
            "set -e; cd {d}; mkfs.vfat -C -n ESP esp.img 16384 >/dev/null; \
             mke2fs -q -t ext4 -L data data.img 900M; mke2fs -q -t ext4 -L root -d {r} root.img 700M; \
             truncate -s 1700M disk.raw; \
             printf 'label: gpt\\nstart=1MiB, size=16MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\\n\
             size=900MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\\n\
             size=700MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\\n' | sfdisk -q disk.raw; \
             dd if=esp.img of=disk.raw bs=1M seek=1 conv=notrunc,sparse status=none; \
             dd if=data.img of=disk.raw bs=1M seek=17 conv=notrunc,sparse status=none; \
             dd if=root.img of=disk.raw bs=1M seek=917 conv=notrunc,sparse status=none; \
             qemu-img convert -O qcow2 disk.raw ext4-gpt.qcow2; rm esp.img data.img root.img disk.raw"
        ));
        // btrfs and xfs: loop-mounted to be made (as root), never to be read.
        sh(&format!(
            "set -e; cd {d}; mkdir m; trap 'umount m 2>/dev/null || true' EXIT; \
             truncate -s 1200M btrfs.raw; mkfs.btrfs -q btrfs.raw; mount -o loop btrfs.raw m; \
             echo 'the top level, not the root' > m/NOT-THE-ROOT; \
             btrfs -q subvolume create m/@; btrfs -q subvolume create m/@/.snapshots; mkdir m/@/.snapshots/1; \
             btrfs -q subvolume create m/@/.snapshots/1/snapshot; btrfs -q subvolume create m/@/home; \
             mkdir m/@/home/field; echo 'a home of its own' > m/@/home/field/notes; \
             tar -C {r} --xattrs --xattrs-include='*' -cf - . | tar -C m/@/.snapshots/1/snapshot --xattrs --xattrs-include='*' -xpf -; \
             id=$(btrfs subvolume list m | awk '$NF == \"@/.snapshots/1/snapshot\" {{print $2}}'); \
             btrfs subvolume set-default $id m; umount m; \
             qemu-img convert -O qcow2 btrfs.raw btrfs.qcow2; rm btrfs.raw; \
             truncate -s 1000M xfs.raw; mkfs.xfs -q xfs.raw; mount -o loop xfs.raw m; \
             tar -C {r} --xattrs --xattrs-include='*' -cf - . | tar -C m --xattrs --xattrs-include='*' -xpf -; umount m; \
             qemu-img convert -O qcow2 xfs.raw xfs.qcow2; rm xfs.raw; rmdir m; \
             mkdir -p tiny/bin; cp /bin/busybox tiny/bin/busybox; ln -s busybox tiny/bin/sh; \
             mke2fs -q -t ext4 -d tiny tiny.raw 16M; qemu-img convert -O qcow2 tiny.raw tiny.qcow2; rm -r tiny tiny.raw"
        ));
    })
}

/// A smelt cache the tests that take the same images share: each image and choice is
/// read through libguestfs once per suite run, not once per test (the failure tests
/// take theirs into caches of their own).
fn shared_cache() -> String {
    cached("base-image-smelt-cache", |dir| std::fs::create_dir_all(dir).unwrap()).display().to_string()
}

/// A listing of a root for comparing two: every path with its type, mode, owner, size
/// (files), target (symlinks) and device number; the hard link groups; the SHA-256 of
/// every file; and the file capabilities (`getcap`). `lost+found` is the file
/// system's, not the root's.
fn describe(root: &Path) -> String {
    sh(&format!(
        "set -e; cd {0}; \
         find . -path ./lost+found -prune -o -printf '%P %y %m %U:%G %l\\n' | sort; \
         find . -path ./lost+found -prune -o -type f -printf '%s %P\\n' | sort -k2; \
         find . \\( -type b -o -type c \\) -exec stat -c '%n %t:%T' {{}} + | sort; \
         find . -path ./lost+found -prune -o -type f -links +1 -printf '%i %P\\n' | sort -n | \
           awk '{{g[$1] = g[$1] \" \" $2}} END {{for (i in g) print g[i]}}' | sort; \
         find . -path ./lost+found -prune -o -type f -print0 | sort -z | xargs -0 sha256sum; \
         getcap -r . | sort",
        root.display()
    ))
}

/// Builds `image` (base-image alone, a `dir` output) in `dir` and returns the staged root.
fn stage(dir: &Dir, source: &Path, params: &str) -> PathBuf {
    dir.image(
        &Image::new("root", &["base-image"])
            .outputs(&["dir"])
            .params("base-image", &format!("source = {:?}\n{params}", source.display().to_string())),
    );
    let r = dir
        .smelt_env(&["build", "image.toml", "-o", "out"], &[("SMELT_CACHE_DIR", shared_cache().as_str())])
        .ok();
    assert!(!r.stderr.contains("could not be set"), "{}", r.stderr);
    dir.path("out/root.dir")
}

/// What smelt found in `disk` and took (the cache's record of the default choice).
fn taken(disk: &Path) -> serde_json::Value {
    let digest = sh(&format!("sha256sum {}", disk.display()));
    let digest = digest.split_whitespace().next().unwrap();
    let cache = PathBuf::from(shared_cache()).join("disk-images");
    for e in std::fs::read_dir(&cache).unwrap().flatten() {
        let path = e.path();
        if path.extension().is_some_and(|x| x == "json") {
            let meta: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            if meta["image_sha256"] == digest && meta["wanted"] == "default" {
                return meta;
            }
        }
    }
    panic!("no record of {} in {}", disk.display(), cache.display());
}

#[test]
fn each_file_system_stages_the_source_root_path_for_path() {
    let disks = disks();
    let want = describe(&source_root());
    assert!(want.contains("usr/local/bin/smelt-ping cap_net_raw=ep"), "{want}");
    assert!(want.contains(" srv/app/data srv/app/same"), "{want}");
    for disk in ["ext4-gpt.qcow2", "btrfs.qcow2", "xfs.qcow2"] {
        let dir = Dir::heavy();
        let staged = stage(&dir, &disks.join(disk), "");
        let got = describe(&staged);
        if got != want {
            let a = dir.path("want.txt");
            let b = dir.path("got.txt");
            std::fs::write(&a, &want).unwrap();
            std::fs::write(&b, &got).unwrap();
            panic!(
                "{disk}: the staged root differs from the source:\n{}",
                sh(&format!("diff {} {} | head -40 || true", a.display(), b.display()))
            );
        }
        // What was taken, from where: the root partition (not the larger `data` one),
        // the default subvolume (not the top level).
        let meta = taken(&disks.join(disk));
        match disk {
            "ext4-gpt.qcow2" => assert_eq!(meta["root"], "/dev/sda3", "{meta}"),
            "btrfs.qcow2" => {
                assert_eq!(meta["root"], "/dev/sda", "{meta}");
                assert!(meta["subvolume"].as_str().unwrap().starts_with("default (id "), "{meta}");
                assert!(!staged.join("NOT-THE-ROOT").exists());
            }
            _ => assert_eq!(meta["fstype"], "xfs", "{meta}"),
        }
    }
}

#[test]
fn a_partition_and_a_subvolume_can_be_named() {
    let disks = disks();
    // The empty `data` file system, by label: only what mke2fs put there.
    let dir = Dir::heavy();
    let staged = stage(&dir, &disks.join("ext4-gpt.qcow2"), "partition = \"data\"");
    let names: Vec<String> = std::fs::read_dir(&staged)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["lost+found"]);
    // Another subvolume of the btrfs file system, by path.
    let dir = Dir::heavy();
    let staged = stage(&dir, &disks.join("btrfs.qcow2"), "subvolume = \"@/home\"");
    assert_eq!(std::fs::read_to_string(staged.join("field/notes")).unwrap(), "a home of its own\n");
    assert!(!staged.join("etc").exists() && !staged.join("NOT-THE-ROOT").exists());
}

/// An rpm built here (rpmbuild), in a repository (createrepo_c) packed into an ISO
/// (xorriso): the SLES media case. Returns the ISO.
fn media_iso(dir: &Dir) -> PathBuf {
    let top = dir.path("rpmbuild");
    dir.write(
        "smelt-hello.spec",
        "Name: smelt-hello\nVersion: 1.0\nRelease: 1\nSummary: a test package\nLicense: MIT\nBuildArch: noarch\n\
         %description\nA test package for smelt.\n%install\nmkdir -p %{buildroot}/usr/share/smelt-hello\n\
         echo 'hello from the media' > %{buildroot}/usr/share/smelt-hello/greeting\n%files\n/usr/share/smelt-hello/greeting\n",
    );
    sh(&format!(
        "set -e; rpmbuild -bb --quiet --define '_topdir {0}' {1} >/dev/null 2>&1; mkdir -p {2}/Module-Test; \
         cp {0}/RPMS/noarch/*.rpm {2}/Module-Test/; createrepo_c -q {2}/Module-Test; \
         echo 'media' > {2}/README; xorriso -as mkisofs -quiet -R -V SMELT_MEDIA -o {3} {2}",
        top.display(),
        dir.path("smelt-hello.spec").display(),
        dir.path("media").display(),
        dir.path("media.iso").display()
    ));
    dir.path("media.iso")
}

/// The DIB-elements image on the SLES-like btrfs qcow2: `DISTRO_NAME` from its
/// os-release picks zypper, which installs from the repository on the media ISO through
/// DIB's own package-installs and pkg-map (from the diskimage-builder wheel, with its
/// manifests and dib-init-system); the ramdisk boots; an offline rebuild in a
/// namespace without network gives the same bytes; the repository is not in the image.
#[test]
fn a_sles_like_image_installs_from_its_media_iso_and_boots() {
    let disks = disks();
    let dir = Dir::heavy();
    let iso = media_iso(&dir);
    dir.write("elements/our-rpms/element-deps", "package-installs\n");
    dir.write("elements/our-rpms/package-installs.yaml", "greeting:\n");
    dir.write("elements/our-rpms/pkg-map", r#"{"family": {"suse": {"greeting": "smelt-hello"}}}"#);
    dir.write(
        "elements/greet/root/etc/smelt/init.d/50-greet",
        "#!/bin/sh\necho \"greeting: $(cat /usr/share/smelt-hello/greeting)\"\n. /etc/os-release; echo \"distro: $ID $VERSION_ID\"\n",
    );
    dir.write("elements/greet/element.toml", "description = \"says what the ramdisk holds\"\n");
    dir.image(
        &Image::new(
            "sles",
            &["base-image", "init", "kernel-modules", "manifests", "dib-init-system", "our-rpms", "greet"],
        )
        .outputs(&["initramfs", "dir", "ramdisk-tar"])
        .set("kernel", "\"image\"")
        .params(
            "base-image",
            &format!(
                "source = {:?}\nrepositories = [\"iso:{}\"]",
                disks.join("btrfs.qcow2").display().to_string(),
                iso.display()
            ),
        )
        .params("init", "then = \"poweroff\"")
        .params("kernel-modules", "modules = [\"isofs\"]"),
    );
    dir.write("size-budget.toml", "[output.initramfs]\nmax = \"400MiB\"\nmax-unpacked = \"2GiB\"\n");
    let cache = shared_cache();
    let env = [("SOURCE_DATE_EPOCH", "1700000000"), ("SMELT_CACHE_DIR", cache.as_str())];
    let dib = crate::dib::dib_elements();
    let args = ["--elements-path", "elements", "--elements-path", dib.as_str()];
    let plan = dir.smelt_env(&[&["plan", "image.toml", "--json"], &args[..]].concat(), &env).ok();
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(plan["distro"], "sles", "DISTRO_NAME from the image's os-release");
    let r = dir.smelt_env(&[&["build", "image.toml", "-o", "out"], &args[..]].concat(), &env).ok();
    assert!(r.stderr.contains("01-package-installs          package-installs"), "{}", r.stderr);
    assert!(r.stderr.contains("left out: /usr/local/bin/smelt-ping (security.capability)"), "{}", r.stderr);
    let archive = dir.path("out/sles.cpio.zst");
    assert_eq!(member(&archive, "usr/share/smelt-hello/greeting"), "hello from the media\n");
    assert!(member(&archive, "etc/dib-manifests/dib_arguments").contains("our-rpms"), "DIB's manifests ran");
    // The rpm database in the image lists it: zypper installed it.
    let x = dir.path("out/sles.dir");
    let db = ["usr/lib/sysimage/rpm", "var/lib/rpm", "root/.rpmdb"]
        .into_iter()
        .find(|d| std::fs::read_dir(x.join(d)).is_ok_and(|mut r| r.next().is_some()))
        .expect("an rpm database in the image");
    let installed = sh(&format!("rpm --dbpath {}/{db} -qa --qf '%{{NAME}}\\n' | sort", x.display()));
    assert_eq!(installed, "smelt-hello\n");
    // Nothing of the repository stayed: not its files, not its config, not zypper's cache.
    let listing = sh(&format!("zstd -dc {} | cpio -t --quiet", archive.display()));
    for gone in [
        "var/cache/smelt-repos",
        "etc/zypp/repos.d/smelt-",
        "var/cache/zypp/raw/smelt-",
        "var/cache/zypp/solv/smelt-",
        "Module-Test",
    ] {
        assert!(
            !listing.contains(gone),
            "{gone} is in the image:\n{}",
            listing.lines().filter(|l| l.contains(gone)).collect::<Vec<_>>().join("\n")
        );
    }
    // The dir output keeps the file capability the disk image carried.
    assert_eq!(
        sh(&format!("getcap {}/usr/local/bin/smelt-ping", x.display())).trim(),
        format!("{}/usr/local/bin/smelt-ping cap_net_raw=ep", x.display())
    );

    // The kernel is the disk image's own, out of its /boot; its modules trimmed to what
    // was asked for.
    assert!(r.stderr.contains("kernel: the image's own, /boot/vmlinuz-"), "{}", r.stderr);
    assert!(!listing.contains("boot/vmlinuz"), "the kernel stayed in the image");
    assert!(listing.lines().any(|l| l.ends_with("kernel/fs/isofs/isofs.ko")), "isofs was asked for");
    assert!(!listing.contains("kernel/drivers/net/"), "modules nobody asked for stayed");
    sh(&format!(
        "bsdtar -xf {} -C {} sles.kernel",
        dir.path("out/sles.tar").display(),
        dir.path("").display()
    ));
    let source = source_root();
    let theirs = sh(&format!("ls {}/boot/vmlinuz-*", source.display()));
    assert_eq!(std::fs::read(dir.path("sles.kernel")).unwrap(), std::fs::read(theirs.trim()).unwrap());
    // A Debian root unpacks to a few hundred MiB: more RAM than the usual guest.
    let kernel = dir.path("sles.kernel").display().to_string();
    let initrd = archive.display().to_string();
    let console = crate::util::qemu_sized(
        1536,
        900,
        &["-kernel", &kernel, "-initrd", &initrd, "-append", "console=ttyS0 panic=-1 smelt.then=poweroff"],
    );
    assert!(console.contains("greeting: hello from the media"), "{console}");
    assert!(console.contains("distro: sles 15.5"), "{console}");
    assert!(console.contains("smelt-init: step 50-greet: ok"), "{console}");

    dir.build_offline(&args, &env);
    assert_same_bytes(&archive, &dir.path("offline/sles.cpio.zst"), "the offline rebuild");
}

/// The processes whose command line names `needle` (QEMU names its disk, guestfish its
/// image).
fn processes_naming(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else { continue };
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if text.contains(needle) && !text.contains("cargo") {
            found.push(format!("{}: {text}", e.file_name().to_string_lossy()));
        }
    }
    found
}

/// The children of process `pid`.
fn children_of(pid: i32) -> Vec<i32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        // pid (comm) state ppid …: comm may hold spaces, so after the last ')'.
        let ppid =
            stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok());
        if ppid == Some(pid) {
            found.extend(e.file_name().to_string_lossy().parse::<i32>().ok());
        }
    }
    found
}

fn command_of(pid: i32) -> String {
    String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default())
        .replace('\0', " ")
}

/// Whether `pid` runs (a zombie has stopped running).
fn is_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')))
}

/// What could be left behind on the host: mounts, loop and nbd devices in use.
fn host_state() -> String {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    let loops = sh("losetup -a -n -O BACK-FILE 2>/dev/null | sort || true");
    let nbd = sh("for d in /sys/block/nbd*; do if [ -e \"$d/pid\" ]; then echo \"$d\"; fi; done");
    format!("{mounts}\n{loops}\n{nbd}")
}

#[test]
fn a_failed_or_stopped_build_leaves_no_mount_device_or_process() {
    let disks = disks();
    // A copy of its own: its path names only this test's processes.
    let dir = Dir::heavy();
    std::fs::copy(disks.join("tiny.qcow2"), dir.path("tiny.qcow2")).unwrap();
    std::fs::copy(disks.join("ext4-gpt.qcow2"), dir.path("mine.qcow2")).unwrap();
    let before = host_state();
    dir.write("elements/fails/install.d/50-fail", "#!/bin/sh\necho 'failing on purpose'\nexit 1\n");
    let image_of = |source: &str| {
        dir.image(
            &Image::new("f", &["base-image", "fails"])
                .outputs(&["dir"])
                .params("base-image", &format!("source = {source:?}")),
        )
    };
    // A hook fails after the image was read.
    image_of("tiny.qcow2");
    let cache = dir.path("cache");
    let env = [("SMELT_CACHE_DIR", cache.to_str().unwrap())];
    let r =
        dir.smelt_env(&["build", "image.toml", "--elements-path", "elements", "-o", "out"], &env).fails(1);
    assert!(
        r.stderr
            .contains("hook failed: element `fails`, phase install.d, script 50-fail exited with status 1"),
        "{}",
        r.stderr
    );
    assert_eq!(host_state(), before, "mounts, loop or nbd devices changed");
    assert_eq!(processes_naming(&dir.path("tiny.qcow2").display().to_string()), Vec::<String>::new());
    assert!(!dir.path("out/f.dir").exists(), "an output was published");
    let image = dir.path("mine.qcow2").display().to_string();
    image_of("mine.qcow2");

    // Stopped while the appliance reads the image (another cache: it reads it again).
    let other = dir.path("cache2");
    let _cores = crate::util::Slot::heavy();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_smelt"))
        .args(["build", "image.toml", "--elements-path", "elements", "-o", "out2"])
        .current_dir(dir.path(""))
        .env("SMELT_CACHE_DIR", &other)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // guestfish names the image; its QEMU names only an overlay of it: found as its child.
    let started = std::time::Instant::now();
    let session = loop {
        let fish: Vec<i32> =
            processes_naming(&image).iter().filter_map(|p| p.split(':').next()?.parse().ok()).collect();
        let qemu: Vec<i32> = fish
            .iter()
            .flat_map(|&f| children_of(f))
            .filter(|&c| command_of(c).contains("qemu-system"))
            .collect();
        if !qemu.is_empty() {
            break [fish, qemu].concat();
        }
        assert!(started.elapsed().as_secs() < 120, "the appliance never started");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    std::thread::sleep(std::time::Duration::from_secs(3));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let alive = || session.iter().copied().filter(|&p| is_alive(p)).collect::<Vec<i32>>();
    let started = std::time::Instant::now();
    while !alive().is_empty() && started.elapsed().as_secs() < 20 {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(alive(), Vec::<i32>::new(), "guestfish or its QEMU outlived the build");
    assert_eq!(processes_naming(&image), Vec::<String>::new());
    assert_eq!(host_state(), before);
    let litter = sh(&format!("find {} -name '*partial*' 2>/dev/null; true", other.display()));
    assert_eq!(litter, "", "half-written files in the cache");
}

#[test]
fn unreadable_images_are_refused_by_name() {
    let dir = Dir::heavy();
    let cache = dir.path("cache");
    let env = [("SMELT_CACHE_DIR", cache.to_str().unwrap())];
    let build = |source: &str, extra: &str| {
        dir.image(
            &Image::new("e", &["base-image"])
                .outputs(&["dir"])
                .params("base-image", &format!("source = {source:?}\n{extra}")),
        );
        dir.smelt_env(&["build", "image.toml", "-o", "out"], &env).fails(1).stderr
    };
    sh(&format!("qemu-img create -q -f qed {} 16M", dir.path("old.qed").display()));
    let e = build("old.qed", "");
    assert!(
        e.contains(
            "old.qed: disk image format `qed` is not one smelt reads; it reads qcow2, raw, vmdk, vhdx, vpc"
        ),
        "{e}"
    );
    // LUKS, made by cryptsetup on plain files: a whole image, and a volume in a GPT.
    sh(&format!(
        "set -e; cd {}; truncate -s 32M locked.img; \
         echo -n pw | cryptsetup luksFormat -q --type luks1 --pbkdf-force-iterations 1000 locked.img -; \
         truncate -s 40M volume.raw; printf 'label: gpt\\nstart=1MiB, size=4MiB\\nsize=32MiB\\n' | sfdisk -q volume.raw; \
         dd if=locked.img of=volume.raw bs=1M seek=5 conv=notrunc status=none",
        dir.path("").display()
    ));
    let e = build("locked.img", "");
    assert!(
        e.contains("locked.img: the disk image is encrypted (luks); smelt does not unlock encrypted images"),
        "{e}"
    );
    let e = build("volume.raw", "");
    assert!(e.contains("volume.raw: no root file system found; /dev/sda2 is an encrypted volume (LUKS), which smelt does not unlock"), "{e}");
    sh(&format!("qemu-img create -q -f qcow2 {} 16M", dir.path("blank.qcow2").display()));
    let e = build("blank.qcow2", "sha256 = \"0000\"");
    assert!(e.contains("blank.qcow2 has SHA-256 "), "{e}");
    assert!(e.contains("not the 0000 param `sha256` pins"), "{e}");
    let e = build("blank.qcow2", "");
    assert!(e.contains("blank.qcow2: no root file system found (none of ext4, ext3, ext2, xfs, btrfs); seen: /dev/sda unknown 16 MiB; is this a disk image?"), "{e}");
    let e = build("missing.qcow2", "");
    assert!(e.contains("element `base-image`: source "), "{e}");
    assert!(e.contains("missing.qcow2 is not a file"), "{e}");
    // A partition that is not there: the error lists what is.
    let disks = disks();
    let e = build(&disks.join("ext4-gpt.qcow2").display().to_string(), "partition = \"9\"");
    assert!(e.contains("no partition `9` (a number or a file system label); seen: /dev/sda1 vfat (label ESP) 16 MiB, /dev/sda2 ext4 (label data) 900 MiB, /dev/sda3 ext4 (label root) 700 MiB"), "{e}");
}

/// A repository ISO with no repository metadata in it is refused, naming what zypper
/// reads.
#[test]
fn a_media_iso_without_a_repository_is_refused() {
    let disks = disks();
    let dir = Dir::heavy();
    dir.write("media/README", "no repository here\n");
    sh(&format!(
        "xorriso -as mkisofs -quiet -R -o {} {}",
        dir.path("empty.iso").display(),
        dir.path("media").display()
    ));
    dir.write("elements/wants/element-deps", "package-installs\n");
    dir.write("elements/wants/package-installs.yaml", "smelt-hello:\n");
    dir.image(&Image::new("r", &["base-image", "wants"]).outputs(&["dir"]).params(
        "base-image",
        &format!(
            "source = {:?}\nrepositories = [\"iso:empty.iso\"]",
            disks.join("btrfs.qcow2").display().to_string()
        ),
    ));
    let e = dir
        .smelt_env(
            &["build", "image.toml", "--elements-path", "elements", "-o", "out"],
            &[("SMELT_CACHE_DIR", shared_cache().as_str())],
        )
        .fails(1)
        .stderr;
    assert!(
        e.contains("element `base-image`: repository `iso:empty.iso`: the ISO holds no repository metadata for zypper (repodata/repomd.xml); is it the distribution's package media?"),
        "{e}"
    );
}

/// A disk image named by URL: fetched once into the cache and pinned by `sha256` (a
/// download that differs is refused and nothing is kept); `--offline` uses the cached
/// copy, and without one says what to do.
#[test]
fn a_disk_image_from_a_url_is_fetched_once_and_pinned() {
    let disks = disks();
    let dir = Dir::heavy();
    std::fs::create_dir(dir.path("www")).unwrap();
    std::fs::copy(disks.join("tiny.qcow2"), dir.path("www/tiny.qcow2")).unwrap();
    let port = sh("/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1])'");
    let port = port.trim();
    let mut server = std::process::Command::new("/usr/bin/python3")
        .args(["-m", "http.server", "--bind", "127.0.0.1", port, "--directory"])
        .arg(dir.path("www"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/tiny.qcow2");
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_err() {
        assert!(started.elapsed().as_secs() < 20, "the HTTP server did not start");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let digest = sh(&format!("sha256sum {}", dir.path("www/tiny.qcow2").display()));
    let digest = digest.split_whitespace().next().unwrap().to_string();
    let cache = dir.path("cache");
    let env = [("SMELT_CACHE_DIR", cache.to_str().unwrap())];
    let image = |pin: &str| {
        dir.image(
            &Image::new("u", &["base-image"])
                .outputs(&["dir"])
                .params("base-image", &format!("source = {url:?}\nsha256 = {pin:?}")),
        )
    };
    image(&"0".repeat(64));
    let e = dir.smelt_env(&["build", "image.toml", "-o", "out"], &env).fails(1).stderr;
    assert!(
        e.contains(&format!(
            "{url} has SHA-256 {digest}, not the {} param `sha256` pins; nothing was kept",
            "0".repeat(64)
        )),
        "{e}"
    );
    assert_eq!(sh(&format!("find {} -type f -name '*qcow2*' 2>/dev/null; true", cache.display())), "");
    image(&digest);
    let e = dir.smelt_env(&["build", "image.toml", "-o", "out", "--offline"], &env).fails(1).stderr;
    assert!(e.contains(&format!("{url} is not in the cache")), "{e}");
    assert!(e.contains("build once without --offline to fetch it"), "{e}");
    dir.smelt_env(&["build", "image.toml", "-o", "out"], &env).ok();
    assert!(dir.path("out/u.dir/bin/busybox").is_file());
    let _ = server.kill();
    let _ = server.wait();
    // The server is gone: the cached copy serves, offline.
    dir.smelt_env(&["build", "image.toml", "-o", "again", "--offline"], &env).ok();
    assert!(dir.path("again/u.dir/bin/busybox").is_file());
}
