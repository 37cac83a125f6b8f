//! The archive as GNU cpio and bsdtar read it must match what report.json says.

use std::collections::BTreeMap;

use crate::util::{sh, Dir, Image};

/// A tree with every kind of entry: files, a hard link pair, symlinks (relative and
/// absolute), directories, devices, a FIFO, a setuid file and a declared owner.
fn every_kind(dir: &Dir) {
    dir.image(&Image::new("kinds", &["base-busybox", "init", "kinds"]).set("compression", "\"zstd\""));
    dir.write(
        "elements/kinds/element.toml",
        r#"description = "one of everything"
[[devices]]
path = "dev/sda"
kind = "block"
major = 8
minor = 0
mode = "0660"
gid = 6
[[devices]]
path = "run/initctl"
kind = "fifo"
[[permissions]]
path = "home/agent/**"
uid = 1000
gid = 1000
[[permissions]]
path = "usr/local/bin/suid"
mode = "4755"
"#,
    );
    dir.write("elements/kinds/root/home/agent/.profile", "export A=1\n");
    dir.write("elements/kinds/root/usr/local/bin/suid", "#!/bin/sh\necho hi\n");
    dir.write("elements/kinds/root/data/one", &"x".repeat(5000));
    std::fs::hard_link(dir.path("elements/kinds/root/data/one"), dir.path("elements/kinds/root/data/two"))
        .unwrap();
    std::os::unix::fs::symlink("one", dir.path("elements/kinds/root/data/rel")).unwrap();
    std::os::unix::fs::symlink("/etc/motd", dir.path("elements/kinds/root/data/abs")).unwrap();
}

type Listing = BTreeMap<String, (String, String, String, Option<u64>, Option<String>)>;

/// Parses `ls -l`-style listings (cpio -tv --numeric-uid-gid, bsdtar -tv --numeric-owner)
/// into path → (mode, uid, gid, size of regular files, link target).
fn parse_listing(text: &str) -> Listing {
    let mut out = Listing::new();
    for line in text.lines().filter(|l| !l.ends_with("blocks") && !l.is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let mode = f[0].to_string();
        // Devices print "major, minor" (cpio) or "major,minor" (bsdtar) where files print
        // a size.
        let (size, rest) = if f[4].ends_with(',') { (None, &f[9..]) } else { (f[4].parse().ok(), &f[8..]) };
        let name_and_target = rest.join(" ");
        let (name, target) = match name_and_target.split_once(" -> ") {
            Some((n, t)) => (n.to_string(), Some(t.to_string())),
            None => match name_and_target.split_once(" link to ") {
                Some((n, _)) => (n.to_string(), None),
                None => (name_and_target, None),
            },
        };
        let name = name.trim_start_matches("./").to_string();
        let size = if mode.starts_with('-') { size } else { None };
        out.insert(name, (mode, f[2].to_string(), f[3].to_string(), size, target));
    }
    out
}

fn report_listing(manifest: &serde_json::Value) -> Listing {
    let mut out = Listing::new();
    for e in manifest.as_array().unwrap() {
        let kind = e["kind"].as_str().unwrap();
        let mode = u32::from_str_radix(e["mode"].as_str().unwrap(), 8).unwrap();
        let path = e["path"].as_str().unwrap().trim_start_matches('/').to_string();
        out.insert(
            path,
            (
                format!("{kind}{}", rwx(mode)),
                e["uid"].to_string(),
                e["gid"].to_string(),
                (kind == "-").then(|| e["size"].as_u64().unwrap()),
                e.get("target").and_then(|t| t.as_str()).map(String::from),
            ),
        );
    }
    out
}

fn rwx(mode: u32) -> String {
    let mut s = String::new();
    for (i, shift) in [6, 3, 0].iter().enumerate() {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        let special = [0o4000, 0o2000, 0o1000][i] & mode != 0;
        let x = bits & 1 != 0;
        s.push(match (i, special, x) {
            (2, true, true) => 't',
            (2, true, false) => 'T',
            (_, true, true) => 's',
            (_, true, false) => 'S',
            (_, false, true) => 'x',
            _ => '-',
        });
    }
    s
}

#[test]
fn gnu_cpio_and_bsdtar_list_what_the_report_lists() {
    let dir = Dir::new();
    every_kind(&dir);
    dir.build(&[]).ok();
    let expected = report_listing(&crate::util::manifest(&dir.path("out")));
    let archive = dir.path("out/kinds.cpio.zst");
    let mut cpio =
        parse_listing(&sh(&format!("zstd -dc {} | cpio -tv --numeric-uid-gid --quiet", archive.display())));
    let mut bsdtar =
        parse_listing(&sh(&format!("zstd -dc {} | bsdtar -tvf - --numeric-owner", archive.display())));
    for listing in [&mut cpio, &mut bsdtar] {
        let root = listing.remove(".").expect("the archive has a root entry");
        assert_eq!(root.0, "drwxr-xr-x");
        // The second name of a hard link carries no data; its size is the first's.
        if let Some(e) = listing.get_mut("data/two") {
            e.3 = expected["data/two"].3;
        }
    }
    for (tool, listing) in [("GNU cpio", &cpio), ("bsdtar", &bsdtar)] {
        let differ: Vec<_> = expected
            .iter()
            .filter(|(p, e)| listing.get(*p) != Some(e))
            .map(|(p, e)| format!("{p}: report {e:?}, {tool} {:?}", listing.get(p)))
            .chain(
                listing.keys().filter(|p| !expected.contains_key(*p)).map(|p| format!("{p}: only in {tool}")),
            )
            .collect();
        assert!(differ.is_empty(), "{tool} disagrees with report.json:\n{}", differ.join("\n"));
    }
    assert_eq!(expected["dev/sda"].0, "brw-rw----");
    assert_eq!(expected["usr/local/bin/suid"].0, "-rwsr-xr-x");
    assert_eq!(expected["home/agent/.profile"].1, "1000");
    assert_eq!(expected["data/rel"].4.as_deref(), Some("one"));
}

#[test]
fn gnu_cpio_extracts_hard_links_and_contents() {
    let dir = Dir::new();
    every_kind(&dir);
    dir.build(&[]).ok();
    let x = dir.path("x");
    std::fs::create_dir(&x).unwrap();
    sh(&format!(
        "cd {} && zstd -dc ../out/kinds.cpio.zst | cpio -id --quiet --no-absolute-filenames 'data/*' 'home/*' 'etc/*'",
        x.display()
    ));
    use std::os::unix::fs::MetadataExt;
    let one = std::fs::metadata(x.join("data/one")).unwrap();
    let two = std::fs::metadata(x.join("data/two")).unwrap();
    assert_eq!(one.ino(), two.ino(), "data/one and data/two are not one file");
    assert_eq!(std::fs::read_to_string(x.join("data/two")).unwrap(), "x".repeat(5000));
    assert_eq!(std::fs::read_to_string(x.join("home/agent/.profile")).unwrap(), "export A=1\n");
}
