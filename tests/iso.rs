//! ISO and ramdisk-tar outputs: booted three ways, read by xorriso, isoinfo and bsdtar,
//! mounted by a guest kernel, and reproducible.

use std::collections::BTreeMap;

use crate::util::{boot, boot_with, kernel, qemu, sh, Dir, Image};

/// A bootable image whose start-up step prints a marker, plus a file under `iso/`.
fn bootable(dir: &Dir) {
    dir.image(
        &Image::new("boot", &["base-busybox", "init", "marker"])
            .outputs(&["iso", "ramdisk-tar"])
            .set("kernel", "\"auto\"")
            .set("iso-label", "\"SMELTBOOT\"")
            .set("cmdline", "\"console=ttyS0,115200 panic=-1 smelt.then=poweroff\""),
    );
    dir.write("elements/marker/element.toml", "description = \"marker\"\n");
    dir.write(
        "elements/marker/root/etc/smelt/init.d/50-marker",
        "#!/bin/sh\necho \"ISO boot marker: $(uname -r)\"\n",
    );
    dir.write("elements/marker/iso/README.txt", "beside the image\n");
}

#[test]
fn a_bootable_iso_boots_from_bios_cd_usb_disk_and_uefi_cd() {
    let dir = Dir::new();
    bootable(&dir);
    dir.build(&[]).ok();
    let iso = dir.path("out/boot.iso");
    let iso = iso.to_str().unwrap();
    let vars = dir.path("OVMF_VARS.fd");
    std::fs::copy("/usr/share/OVMF/OVMF_VARS_4M.fd", &vars).expect("ovmf is installed");
    let ways: [(&str, Vec<String>); 3] = [
        ("BIOS CD", vec!["-boot".into(), "d".into(), "-cdrom".into(), iso.into()]),
        ("isohybrid disk", vec!["-drive".into(), format!("file={iso},format=raw,if=ide,snapshot=on")]),
        (
            "UEFI CD",
            vec![
                "-drive".into(),
                "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd".into(),
                "-drive".into(),
                format!("if=pflash,format=raw,file={}", vars.display()),
                "-cdrom".into(),
                iso.into(),
            ],
        ),
    ];
    let release = kernel().file_name().unwrap().to_string_lossy().trim_start_matches("vmlinuz-").to_string();
    let consoles: Vec<(&str, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = ways.iter().map(|(how, args)| (*how, s.spawn(|| qemu(args)))).collect();
        handles.into_iter().map(|(how, h)| (how, h.join().unwrap())).collect()
    });
    for (how, console) in consoles {
        assert!(
            console.contains(&format!("ISO boot marker: {release}")),
            "{how}: no marker on serial:\n{console}"
        );
        assert!(console.contains("smelt-init: then: poweroff"), "{how}:\n{console}");
    }
}

#[test]
fn the_ramdisk_tarball_holds_the_kernel_and_a_bootable_initramfs() {
    let dir = Dir::new();
    bootable(&dir);
    dir.build(&[]).ok();
    let tar = dir.path("out/boot.tar");
    let listing = sh(&format!("bsdtar -tvf {} --numeric-owner", tar.display()));
    let names: Vec<&str> = listing.lines().map(|l| l.split_whitespace().last().unwrap()).collect();
    assert_eq!(names, ["boot.kernel", "boot.initramfs"]);
    assert!(listing.lines().all(|l| l.starts_with("-rw-r--r--  0 0      0")), "{listing}");
    let x = dir.path("x");
    std::fs::create_dir(&x).unwrap();
    sh(&format!("cd {} && bsdtar -xf {}", x.display(), tar.display()));
    assert_eq!(std::fs::read(x.join("boot.kernel")).unwrap(), std::fs::read(kernel()).unwrap());
    let console = boot(&x.join("boot.initramfs"), "smelt.then=poweroff");
    assert!(console.contains("ISO boot marker"), "{console}");
}

/// A data image: files with contents to checksum, a hard link, symlinks, a setuid file,
/// a declared owner, a deep directory, a long name, device nodes, and text that
/// compresses (in the deep directory and under the long name too) beside bytes that do
/// not.
fn data_image(dir: &Dir) {
    data_image_stored(dir, "none");
}

/// [`data_image`] with `iso-compression` as given.
fn data_image_stored(dir: &Dir, compression: &str) {
    data_image_toml(dir, compression);
    dir.write(
        "elements/payload/element.toml",
        "description = \"payload\"\n[[permissions]]\npath = \"opt/kit/bin/tool\"\nmode = \"4755\"\n\
         [[permissions]]\npath = \"home/field/**\"\nuid = 1000\ngid = 1000\n\
         [[devices]]\npath = \"dev/console\"\nkind = \"char\"\nmajor = 5\nminor = 1\n\
         [[devices]]\npath = \"dev/null\"\nkind = \"char\"\nmajor = 1\nminor = 3\nmode = \"0666\"\n\
         [[devices]]\npath = \"dev/sdb\"\nkind = \"block\"\nmajor = 8\nminor = 16\nmode = \"0660\"\n",
    );
    let text: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
    dir.write("elements/payload/root/opt/kit/data/lines.txt", &text);
    dir.write("elements/payload/root/opt/kit/bin/tool", "#!/bin/sh\necho tool\n");
    dir.write("elements/payload/root/home/field/notes.md", "# notes\n");
    dir.write("elements/payload/root/a/b/c/d/e/f/g/h/i/deep.txt", "deep\n");
    let conf: String = (0..3000).map(|i| format!("key{i} = {}\n", i * 7)).collect();
    dir.write(&format!("elements/payload/root/opt/kit/{}.conf", "long-name-".repeat(7)), &conf);
    dir.write("elements/payload/root/a/b/c/d/e/f/g/h/i/deep-lines.txt", &text[..60_000]);
    // Bytes that do not compress, the same on every run: a chain of SHA-256 digests.
    use sha2::Digest as _;
    let noise: Vec<u8> = (0..1250u32).flat_map(|i| sha2::Sha256::digest(i.to_le_bytes())).collect();
    std::fs::write(dir.path("elements/payload/root/opt/kit/data/noise.bin"), noise).unwrap();
    std::fs::hard_link(
        dir.path("elements/payload/root/opt/kit/data/lines.txt"),
        dir.path("elements/payload/root/opt/kit/data/same.txt"),
    )
    .unwrap();
    std::os::unix::fs::symlink("data/lines.txt", dir.path("elements/payload/root/opt/kit/latest")).unwrap();
    std::os::unix::fs::symlink("/opt/kit/bin/tool", dir.path("elements/payload/root/opt/kit/tool")).unwrap();
    dir.write("elements/payload/iso/AUTORUN.TXT", "not in the image\n");
}

/// The data image's image.toml, its files stored as `compression` says.
fn data_image_toml(dir: &Dir, compression: &str) {
    dir.image(
        &Image::new("data", &["payload"])
            .outputs(&["iso"])
            .set("iso-label", "\"FIELDKIT\"")
            .set("iso-compression", &format!("\"{compression}\"")),
    );
}

type Listing = BTreeMap<String, (String, Option<u64>, Option<String>)>;

/// path → (mode string, size of regular files, link target or a device's `major,minor`)
/// from `ls -l`-like lines whose last fields are `name` or `name -> target`, given where
/// the size (or device numbers) and the name start.
fn listing(text: &str, size_field: usize, name_field: usize) -> Listing {
    let mut out = Listing::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let rest = f[name_field..].join(" ");
        let (name, target) = match rest.split_once(" -> ") {
            Some((n, t)) => (n.to_string(), Some(t.trim_matches('\'').to_string())),
            None => (rest, None),
        };
        let name = name.trim_matches('\'').trim_start_matches("./").trim_start_matches('/').to_string();
        let size = f[0].starts_with('-').then(|| f[size_field].parse().unwrap());
        let target = if f[0].starts_with(['c', 'b']) { Some(f[size_field].to_string()) } else { target };
        out.insert(name, (f[0].to_string(), size, target));
    }
    out.remove("");
    out.remove(".");
    out
}

fn report_listing(dir: &Dir) -> Listing {
    let manifest = crate::util::manifest(&dir.path("out"));
    let mut out = Listing::new();
    for e in manifest.as_array().unwrap() {
        let kind = e["kind"].as_str().unwrap();
        let mode = u32::from_str_radix(e["mode"].as_str().unwrap(), 8).unwrap();
        let bits = ["---", "--x", "-w-", "-wx", "r--", "r-x", "rw-", "rwx"];
        let mut m = format!(
            "{kind}{}{}{}",
            bits[(mode >> 6 & 7) as usize],
            bits[(mode >> 3 & 7) as usize],
            bits[(mode & 7) as usize]
        );
        if mode & 0o4000 != 0 {
            m.replace_range(3..4, if mode & 0o100 != 0 { "s" } else { "S" });
        }
        let size = (kind == "-").then(|| e["size"].as_u64().unwrap());
        let target = match e.get("rdev") {
            Some(rdev) => Some(format!("{},{}", rdev[0], rdev[1])),
            None => e.get("target").and_then(|t| t.as_str()).map(String::from),
        };
        out.insert(e["path"].as_str().unwrap().trim_start_matches('/').to_string(), (m, size, target));
    }
    out
}

#[test]
fn xorriso_isoinfo_and_bsdtar_read_the_data_iso_as_the_report_lists_it() {
    let dir = Dir::new();
    data_image(&dir);
    dir.build(&[]).ok();
    let iso = dir.path("out/data.iso");
    let mut expected = report_listing(&dir);
    expected.insert("AUTORUN.TXT".into(), ("-rw-r--r--".into(), Some(17), None));
    let mut xorriso =
        listing(&sh(&format!("xorriso -indev {} -find / -exec lsdl 2>/dev/null", iso.display())), 4, 8);
    // a/b/c/d/e/f/g/h/i is deeper than ISO 9660 allows: Rock Ridge relocates it under a
    // hidden .rr_moved, which xorriso shows and the kernel and libarchive hide.
    assert_eq!(xorriso.remove(".rr_moved").map(|e| e.0), Some("drwxr-xr-x".to_string()));
    let bsdtar_text = sh(&format!("bsdtar -tvf {}", iso.display()));
    // bsdtar names the second name of a hard link "X link to Y": check it, then read the
    // entry as the file it is.
    assert!(
        bsdtar_text.contains("./opt/kit/data/same.txt link to ./opt/kit/data/lines.txt"),
        "{bsdtar_text}"
    );
    let mut bsdtar = listing(&bsdtar_text.replace(" link to ./opt/kit/data/lines.txt", ""), 4, 8);
    if let Some(e) = bsdtar.get_mut("opt/kit/data/same.txt") {
        e.1 = expected["opt/kit/data/same.txt"].1;
    }
    // isoinfo lists directory by directory; rebuild full paths from its headers.
    let mut isoinfo_lines = String::new();
    let mut current = String::new();
    for line in sh(&format!("isoinfo -R -l -i {}", iso.display())).lines() {
        if let Some(d) = line.strip_prefix("Directory listing of ") {
            current = d.trim().to_string();
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 12 || f[11..].join(" ").is_empty() {
            continue;
        }
        let name = f[11..].join(" ");
        if name == "." || name == ".." {
            continue;
        }
        isoinfo_lines.push_str(&format!("{} 1 0 0 {} x x x {current}{name}\n", f[0], f[4]));
    }
    let isoinfo = listing(&isoinfo_lines, 4, 8);
    for (tool, got) in [("xorriso", &xorriso), ("bsdtar", &bsdtar)] {
        let differ: Vec<String> = expected
            .iter()
            .filter(|(p, e)| got.get(*p) != Some(e))
            .map(|(p, e)| format!("{p}: report {e:?}, {tool} {:?}", got.get(p)))
            .chain(got.keys().filter(|p| !expected.contains_key(*p)).map(|p| format!("{p}: only in {tool}")))
            .collect();
        assert!(differ.is_empty(), "{tool} disagrees:\n{}", differ.join("\n"));
    }
    // isoinfo prints no link targets or setuid bits, and lists relocated directories
    // where they physically are (it does not follow Rock Ridge relocation): compare
    // names, modes and sizes outside the relocated subtree.
    let strip = |l: &Listing| -> BTreeMap<String, (String, Option<u64>)> {
        l.iter()
            .filter(|(p, _)| !p.starts_with(".rr_moved") && !p.starts_with("a/b/c/d/e/f/g/h/"))
            .map(|(p, (m, s, _))| (p.clone(), (m.replace('s', "x"), *s)))
            .collect()
    };
    assert_eq!(strip(&isoinfo), strip(&expected), "isoinfo disagrees");
    assert_eq!(isoinfo[".rr_moved/h/i/deep.txt"].1, Some(5));
    assert_eq!(expected["dev/console"], ("crw-------".into(), None, Some("5,1".into())));
    assert_eq!(expected["dev/sdb"], ("brw-rw----".into(), None, Some("8,16".into())));
}

/// Regression: bsdtar could not extract an ISO holding device nodes ("Can't create
/// 'dev/null': Invalid argument"), since hadris-iso wrote Rock Ridge's PN as major/minor
/// halves. As root it now makes them with their numbers.
#[test]
fn bsdtar_extracts_the_device_nodes_of_an_iso() {
    let dir = Dir::new();
    data_image(&dir);
    dir.build(&[]).ok();
    let x = dir.path("x");
    std::fs::create_dir(&x).unwrap();
    let root = sh("id -u").trim() == "0";
    // Without root, mknod fails: list what libarchive read instead.
    let numbers = if root {
        sh(&format!(
            "cd {} && bsdtar -xf {} && stat -c '%n %F %t:%T %a' dev/*",
            x.display(),
            dir.path("out/data.iso").display()
        ))
    } else {
        eprintln!("bsdtar_extracts_the_device_nodes_of_an_iso: not root, checking bsdtar's listing only");
        sh(&format!(
            "bsdtar -tvf {} | grep '^[cb]' | awk '{{print $NF, $5}}'",
            dir.path("out/data.iso").display()
        ))
    };
    let want = if root {
        "dev/console character special file 5:1 600\ndev/null character special file 1:3 666\n\
         dev/sdb block special file 8:10 660\n"
    } else {
        "./dev/console 5,1\n./dev/null 1,3\n./dev/sdb 8,16\n"
    };
    assert_eq!(numbers, want);
}

#[test]
fn a_guest_mounts_the_data_iso_and_its_files_check_out() {
    guest_reads_the_data_iso("none");
}

/// Linux reads zisofs files as the plain files they were (CONFIG_ZISOFS), in relocated
/// directories and behind long names (continuation areas) too.
#[test]
fn a_guest_mounts_a_zisofs_data_iso_and_reads_the_plain_files() {
    guest_reads_the_data_iso("zisofs");
}

/// Boots a ramdisk that mounts [`data_image_stored`]'s ISO read-only (virtio disk) and
/// checks what it reads: contents, modes, owners, device numbers.
fn guest_reads_the_data_iso(compression: &str) {
    let dir = Dir::new();
    data_image_stored(&dir, compression);
    dir.build(&[]).ok();
    // A ramdisk that loads virtio_blk and isofs from the host kernel, mounts the ISO
    // and prints checksums of what it reads.
    let release = kernel().file_name().unwrap().to_string_lossy().trim_start_matches("vmlinuz-").to_string();
    let modules = [
        "virtio_ring",
        "virtio",
        "virtio_pci_legacy_dev",
        "virtio_pci_modern_dev",
        "virtio_pci",
        "virtio_blk",
        "cdrom",
        "isofs",
    ];
    for m in modules {
        let found = sh(&format!("find /lib/modules/{release}/kernel -name '{m}.ko*' | head -1"));
        let found = found.trim();
        assert!(found.ends_with(".ko"), "{m}: need an uncompressed module, found {found:?}");
        std::fs::create_dir_all(dir.path("elements/reader/root/modules")).unwrap();
        std::fs::copy(found, dir.path(&format!("elements/reader/root/modules/{m}.ko"))).unwrap();
    }
    let long = format!("opt/kit/{}.conf", "long-name-".repeat(7));
    let checked = [
        ("opt/kit/data/lines.txt", "opt/kit/data/lines.txt"),
        ("opt/kit/data/same.txt", "opt/kit/data/lines.txt"),
        ("opt/kit/data/noise.bin", "opt/kit/data/noise.bin"),
        ("a/b/c/d/e/f/g/h/i/deep.txt", "a/b/c/d/e/f/g/h/i/deep.txt"),
        ("a/b/c/d/e/f/g/h/i/deep-lines.txt", "a/b/c/d/e/f/g/h/i/deep-lines.txt"),
        (&long, &long),
        ("opt/kit/latest", "opt/kit/data/lines.txt"),
    ];
    let paths: Vec<&str> = checked.iter().map(|(p, _)| *p).collect();
    dir.write(
        "elements/reader/root/etc/smelt/init.d/50-read",
        &format!(
            "#!/bin/sh\nfor m in {}; do insmod /modules/$m.ko; done\n\
             i=0; while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done\n\
             mkdir -p /mnt && mount -t iso9660 -o ro /dev/vda /mnt && cd /mnt && \
             sha256sum {} && \
             echo \"mode $(stat -c %a opt/kit/bin/tool) owner $(stat -c %u:%g home/field/notes.md)\" && \
             echo devices $(stat -c '%t:%T' dev/console dev/null dev/sdb)\n",
            modules.join(" "),
            paths.join(" ")
        ),
    );
    dir.image_at(
        "reader.toml",
        &Image::new("reader", &["base-busybox", "init", "reader"]).params("init", "then = \"poweroff\""),
    );
    dir.smelt(&["build", "reader.toml", "--elements-path", "elements", "-o", "out"]).ok();
    let drive = format!("file={},if=virtio,format=raw,readonly=on", dir.path("out/data.iso").display());
    let console = boot_with(&dir.path("out/reader.cpio.zst"), &[], "", &["-drive", &drive]);
    let root = dir.path("elements/payload/root");
    let sum = |p: &str| {
        sh(&format!("sha256sum < {}", root.join(p).display())).split_whitespace().next().unwrap().to_string()
    };
    for (path, source) in checked {
        assert!(
            console.contains(&format!("{}  {path}", sum(source))),
            "{path} does not check out in the guest:\n{console}"
        );
    }
    assert!(console.contains("mode 4755 owner 1000:1000"), "{console}");
    // stat prints major:minor in hex: /dev/sdb is 8:16.
    assert!(console.contains("devices 5:1 1:3 8:10"), "{console}");
}

/// `iso-compression = "zisofs"`: a smaller ISO that bsdtar, xorriso and `smelt inspect`
/// read back as the same files; what would not take a sector less is stored plain; a
/// cold and a warm cache of compressed files give the same bytes; the budget counts
/// the compressed size.
#[test]
fn a_zisofs_data_iso_reads_back_as_the_plain_one() {
    let dir = Dir::new();
    data_image(&dir);
    let cache = dir.path("cache");
    let env = [("SMELT_CACHE_DIR", cache.to_str().unwrap())];
    let epoch = ["--source-date-epoch", "1700000000", "-q"];
    dir.build_into("plain", &epoch, &env).ok();
    data_image_toml(&dir, "zisofs");
    dir.build_into("cold", &epoch, &env).ok();
    dir.build_into("warm", &epoch, &env).ok();
    let (plain, iso) = (dir.path("plain/data.iso"), dir.path("cold/data.iso"));
    crate::util::assert_same_bytes(
        &iso,
        &dir.path("warm/data.iso"),
        "zisofs ISOs from a cold and a warm cache",
    );
    let size = |p: &std::path::Path| std::fs::metadata(p).unwrap().len();
    assert!(size(&iso) < size(&plain), "zisofs {} B, plain {} B", size(&iso), size(&plain));

    // The same files, as bsdtar and xorriso extract them, as from the plain ISO
    // (xorriso makes no device nodes).
    sh(&format!(
        "cd {d} && mkdir p z x && bsdtar -xf {plain} -C p && bsdtar -xf {iso} -C z && \
         xorriso -osirrox on -indev {iso} -extract / x 2>/dev/null && \
         diff -r --no-dereference p z && diff -r --no-dereference --exclude=.rr_moved --exclude=dev p x",
        d = dir.path("").display(),
        plain = plain.display(),
        iso = iso.display()
    ));
    // isoinfo knows no zisofs: it shows what is stored, compressed or plain.
    let stored = sh(&format!("isoinfo -R -l -i {} | grep -E ' (lines|noise)[.]'", iso.display()));
    let stored: BTreeMap<&str, u64> = stored
        .lines()
        .map(|l| {
            (l.split_whitespace().last().unwrap(), l.split_whitespace().nth(4).unwrap().parse().unwrap())
        })
        .collect();
    let lines_size = size(&dir.path("elements/payload/root/opt/kit/data/lines.txt"));
    assert!(stored["lines.txt"] < lines_size / 3, "{stored:?}");
    assert_eq!(stored["noise.bin"], 40_000, "noise does not shrink and is stored plain");

    // smelt inspect lists the plain sizes, as the report does.
    let listed = dir.smelt(&["inspect", iso.to_str().unwrap()]).ok().stdout;
    assert!(listed.contains(": ISO 9660 (zisofs files), "), "{listed}");
    let inspect: serde_json::Value =
        serde_json::from_str(&dir.smelt(&["inspect", "--json", iso.to_str().unwrap()]).ok().stdout).unwrap();
    let lines =
        inspect["entries"].as_array().unwrap().iter().find(|e| e["path"] == "/opt/kit/data/lines.txt");
    assert_eq!(lines.unwrap()["size"], lines_size);
    assert!(dir
        .smelt(&["diff", plain.to_str().unwrap(), iso.to_str().unwrap()])
        .ok()
        .stdout
        .contains("0 changed"));

    // A budget between the two sizes: the zisofs ISO fits it.
    dir.write("size-budget.toml", &format!("[output.iso]\nmax = \"{}B\"\n", size(&iso)));
    dir.build_into("budget", &epoch, &env).ok();
    crate::util::assert_same_bytes(&iso, &dir.path("budget/data.iso"), "the zisofs ISO at its exact budget");
}

#[test]
fn isos_and_tarballs_are_reproducible() {
    let outputs: Vec<Vec<Vec<u8>>> = (0..2)
        .map(|i| {
            if i == 1 {
                std::thread::sleep(std::time::Duration::from_millis(1100));
            }
            let dir = Dir::new();
            bootable(&dir);
            dir.build_into("out", &["-q"], &[("SOURCE_DATE_EPOCH", "1700000000")]).ok();
            let data = Dir::new();
            data_image(&data);
            data.build_into("out", &["-q"], &[("SOURCE_DATE_EPOCH", "1700000000")]).ok();
            ["out/boot.iso", "out/boot.tar"]
                .iter()
                .map(|p| std::fs::read(dir.path(p)).unwrap())
                .chain([std::fs::read(data.path("out/data.iso")).unwrap()])
                .collect()
        })
        .collect();
    for (i, name) in ["boot.iso", "boot.tar", "data.iso"].iter().enumerate() {
        assert!(outputs[0][i] == outputs[1][i], "{name} differs between two builds");
    }
}

#[test]
fn an_iso_over_budget_fails_fast_and_is_not_written() {
    let dir = Dir::new();
    data_image(&dir);
    dir.write("size-budget.toml", "[output.iso]\nmax = \"100KiB\"\n");
    let r = dir.build(&[]).fails(3);
    assert!(r.stderr.contains("smelt: over budget (1 limit exceeded):\n  output iso: "), "{}", r.stderr);
    assert!(r.stderr.contains("of 100.0 KiB allowed"), "{}", r.stderr);
    let left: Vec<_> = std::fs::read_dir(dir.path("out")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// With room to spare, the ISO is laid out once, by the write; near its limit, a layout
/// runs alongside the write to stop it. Both give the same bytes, and one byte over
/// the limit is refused.
#[test]
fn an_iso_near_its_budget_is_the_same_iso_and_one_byte_over_is_refused() {
    let dir = Dir::new();
    data_image(&dir);
    dir.build(&["--source-date-epoch", "1700000000"]).ok();
    let iso = std::fs::read(dir.path("out/data.iso")).unwrap();
    let size = iso.len();

    dir.write("size-budget.toml", &format!("[output.iso]\nmax = \"{size}B\"\n"));
    dir.build_into("exact", &["--source-date-epoch", "1700000000"], &[]).ok();
    assert!(std::fs::read(dir.path("exact/data.iso")).unwrap() == iso, "the ISO differs at its exact budget");

    dir.write("size-budget.toml", &format!("[output.iso]\nmax = \"{}B\"\n", size - 1));
    let r = dir.build_into("over", &["--source-date-epoch", "1700000000"], &[]).fails(3);
    assert!(r.stderr.contains("smelt: over budget (1 limit exceeded):\n  output iso: "), "{}", r.stderr);
    assert!(!dir.path("over/data.iso").exists());
    let left: Vec<_> =
        std::fs::read_dir(dir.path("over")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
