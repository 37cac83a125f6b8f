//! `inspect` reads back what smelt writes as bsdtar does; `diff` shows what changed.

use std::collections::BTreeMap;

use crate::util::{sh, Dir};

fn image(dir: &Dir, compression: &str, extra: &str) {
    dir.write(
        "image.toml",
        &format!(
            "[image]\nname = \"i\"\nelements = [\"base-busybox\", \"init\", \"app\"{extra}]\noutputs = [\"initramfs\", \"iso\"]\ncompression = \"{compression}\"\n"
        ),
    );
    dir.write("elements/app/element.toml", "description = \"app\"\n");
    dir.write("elements/app/root/opt/app/config.toml", "port = 8080\n");
    dir.write("elements/app/root/opt/app/bin/run", "#!/bin/sh\necho run\n");
    std::os::unix::fs::symlink("bin/run", dir.path("elements/app/root/opt/app/start")).unwrap();
    dir.write("elements/extra/element.toml", "description = \"extra\"\n");
    dir.write("elements/extra/root/opt/extra/payload.bin", &"p".repeat(50_000));
    dir.write("elements/extra/root/etc/extra.conf", "x = 1\n");
}

/// path → (type+mode, uid, gid, size of files, link target).
type Listing = BTreeMap<String, (String, u64, u64, Option<u64>, Option<String>)>;

/// The listing `inspect --json` gives.
fn inspected(dir: &Dir, file: &str) -> (serde_json::Value, Listing) {
    let r = dir.smelt(&["inspect", file, "--json"]).ok();
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let mut out = BTreeMap::new();
    for e in doc["entries"].as_array().unwrap() {
        let kind = e["kind"].as_str().unwrap();
        let path = e["path"].as_str().unwrap().trim_start_matches('/').to_string();
        if path.is_empty() || path == ".rr_moved" {
            continue;
        }
        let mode = u32::from_str_radix(e["mode"].as_str().unwrap(), 8).unwrap();
        out.insert(
            path,
            (
                format!("{kind}{:03o}", mode & 0o777),
                e["uid"].as_u64().unwrap(),
                e["gid"].as_u64().unwrap(),
                (kind == "-").then(|| e["size"].as_u64().unwrap()),
                e.get("target").and_then(|t| t.as_str()).map(String::from),
            ),
        );
    }
    (doc, out)
}

/// The same shape from bsdtar's listing.
fn bsdtar(file: &std::path::Path) -> Listing {
    let mut out = BTreeMap::new();
    for line in sh(&format!("bsdtar -tvf {} --numeric-owner", file.display())).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let device = f[4].ends_with(',') || f[4].contains(',');
        let name_at = if f[4].ends_with(',') { 9 } else { 8 };
        let rest = f[name_at..].join(" ");
        let (name, target) = match rest.split_once(" -> ") {
            Some((n, t)) => (n.to_string(), Some(t.to_string())),
            None => (rest, None),
        };
        let name = name.trim_start_matches("./").to_string();
        if name.is_empty() || name == "." {
            continue;
        }
        let perms = &f[0][1..];
        let bits = |s: &str| {
            s.chars().zip([4, 2, 1].iter().cycle()).filter(|(c, _)| *c != '-').map(|(_, b)| *b).sum::<u32>()
        };
        let mode = (bits(&perms[0..3]) << 6) | (bits(&perms[3..6]) << 3) | bits(&perms[6..9]);
        let kind = &f[0][..1];
        let size = (kind == "-" && !device).then(|| f[4].parse().unwrap());
        out.insert(
            name,
            (format!("{kind}{mode:03o}"), f[2].parse().unwrap(), f[3].parse().unwrap(), size, target),
        );
    }
    out
}

#[test]
fn inspect_agrees_with_bsdtar_for_every_compression_and_the_iso() {
    for compression in ["zstd", "gzip", "xz", "none"] {
        let dir = Dir::new();
        image(&dir, compression, "");
        dir.build(&[]).ok();
        let suffix = match compression {
            "zstd" => ".zst",
            "gzip" => ".gz",
            "xz" => ".xz",
            _ => "",
        };
        let file = format!("out/i.cpio{suffix}");
        let (doc, got) = inspected(&dir, &file);
        assert_eq!(doc["compressions"], serde_json::json!([compression]));
        assert_eq!(got, bsdtar(&dir.path(&file)), "{compression}: inspect and bsdtar disagree");
        assert_eq!(got["opt/app/start"].4.as_deref(), Some("bin/run"));
        if compression == "zstd" {
            let (doc, iso) = inspected(&dir, "out/i.iso");
            assert_eq!(doc["format"], "iso");
            assert_eq!(iso, bsdtar(&dir.path("out/i.iso")), "iso: inspect and bsdtar disagree");
        }
    }
}

#[test]
fn inspect_reads_archives_back_to_back_as_the_kernel_does() {
    let dir = Dir::new();
    image(&dir, "none", "");
    dir.build(&[]).ok();
    let first = dir.path("out/i.cpio");
    let other = Dir::new();
    image(&other, "zstd", ", \"extra\"");
    other.build(&[]).ok();
    // Plain archive, padding, then a compressed one: the early-microcode layout.
    let both = dir.path("both.img");
    sh(&format!(
        "cat {} > {b}; head -c 512 /dev/zero >> {b}; cat {} >> {b}",
        first.display(),
        other.path("out/i.cpio.zst").display(),
        b = both.display()
    ));
    let (doc, got) = inspected(&dir, "both.img");
    assert_eq!(doc["compressions"], serde_json::json!(["none", "zstd"]));
    assert!(got.contains_key("opt/extra/payload.bin") && got.contains_key("opt/app/config.toml"));
}

#[test]
fn diff_shows_exactly_the_files_of_the_element_that_changed() {
    let before = Dir::new();
    image(&before, "zstd", "");
    before.build(&[]).ok();
    let after = Dir::new();
    image(&after, "zstd", ", \"extra\"");
    after.build(&[]).ok();
    let old = before.path("out/i.cpio.zst");
    let new = after.path("out/i.cpio.zst");
    let r = before.smelt(&["diff", old.to_str().unwrap(), new.to_str().unwrap(), "--json"]).ok();
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let paths: Vec<(&str, &str)> = doc["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["change"].as_str().unwrap(), p["path"].as_str().unwrap()))
        .collect();
    assert_eq!(
        paths,
        [
            ("added", "/opt/extra/payload.bin"),
            ("added", "/etc/extra.conf"),
            ("added", "/etc"),
            ("added", "/opt/extra")
        ],
        "the extra element's files (this image had no /etc before), largest first"
    );
    assert_eq!(doc["delta_bytes"], 50_006);
    assert_eq!(doc["dirs"][0]["path"], "/");
    assert_eq!(doc["dirs"][0]["delta"], 50_006);
    let text = before.smelt(&["diff", old.to_str().unwrap(), new.to_str().unwrap()]).ok().stdout;
    assert!(text.contains(": 4 added, 0 removed, 0 changed; +48.8 KiB in files\n"), "{text}");
    assert!(text.contains("  +    +48.8 KiB  /opt/extra/payload.bin\n"), "{text}");
}

/// report.json keeps the totals, never every entry; `--manifest` lists every entry, and
/// `inspect` and `diff` read a manifest as they read the image it describes.
#[test]
fn the_manifest_lists_every_entry_and_inspect_and_diff_read_it() {
    let dir = Dir::new();
    image(&dir, "zstd", "");
    dir.smelt(&["build", "image.toml", "--elements-path", "elements", "-o", "plain", "-q"]).ok();
    assert!(!dir.path("plain/manifest.jsonl.zst").exists(), "a manifest nobody asked for");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("plain/report.json")).unwrap()).unwrap();
    assert!(report.get("entries").is_none(), "report.json lists every entry again");
    assert!(report["tree"]["symlinks"].as_u64().unwrap() > 200, "{}", report["tree"]);

    dir.build(&[]).ok();
    let (doc, from_manifest) = inspected(&dir, "out/manifest.jsonl.zst");
    assert_eq!(doc["format"], "manifest");
    let (_, from_archive) = inspected(&dir, "out/i.cpio.zst");
    assert_eq!(from_manifest, from_archive);
    // The archive has its root directory too, as an ISO's listing and a manifest do not.
    let r = dir.smelt(&["diff", "out/manifest.jsonl.zst", "out/i.cpio.zst"]).ok();
    assert!(r.stdout.contains(": 1 added, 0 removed, 0 changed;"), "{}", r.stdout);
    assert!(r.stdout.contains("+ ") && r.stdout.contains("  /\n"), "{}", r.stdout);
    // Each line names the element the entry came from.
    let manifest = crate::util::manifest(&dir.path("out"));
    let run = manifest.as_array().unwrap().iter().find(|e| e["path"] == "/opt/app/bin/run").unwrap();
    assert_eq!((run["element"].as_str(), run["mode"].as_str()), (Some("app"), Some("0755")));
}
