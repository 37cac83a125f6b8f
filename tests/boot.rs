//! Boots what smelt builds with Debian's kernel in QEMU and reads the serial console.

use crate::util::{boot, Dir, Image};

/// A busybox image whose `install.d` hook (run inside the image root) writes a marker,
/// and whose `post-root.d` hook (run on the host) writes another; a start-up step prints
/// both at boot.
pub fn marker_image(dir: &Dir, compression: &str) {
    dir.write(
        "image.toml",
        &format!(
            "[image]\nname = \"boot\"\nelements = [\"base-busybox\", \"init\", \"marker\"]\ncompression = \"{compression}\"\n[params.init]\nthen = \"poweroff\"\n"
        ),
    );
    dir.write("elements/marker/element.toml", "description = \"test marker\"\ndepends = [\"init\"]\n");
    dir.write(
        "elements/marker/install.d/50-marker",
        "#!/bin/sh\nset -e\necho \"marker from install.d in $SMELT_IMAGE_NAME, phase $SMELT_PHASE\" > /etc/marker\n",
    );
    dir.write(
        "elements/marker/post-root.d/60-host-marker",
        "#!/bin/sh\nset -e\necho \"host hook saw $(cat \"$TARGET_ROOT/etc/marker\" | wc -l) line\" > \"$TARGET_ROOT/etc/host-marker\"\n",
    );
    dir.write(
        "elements/marker/root/etc/smelt/init.d/50-show",
        "#!/bin/sh\ncat /etc/marker /etc/host-marker\n",
    );
}

#[test]
fn busybox_initramfs_boots_and_shows_the_hook_marker() {
    for compression in ["zstd", "xz"] {
        let dir = Dir::new();
        marker_image(&dir, compression);
        dir.build(&[]).ok();
        let suffix = if compression == "zstd" { "zst" } else { "xz" };
        let console = boot(&dir.path(&format!("out/boot.cpio.{suffix}")), "");
        for expected in [
            "marker from install.d in boot, phase install.d",
            "host hook saw 1 line",
            "smelt-init: step 50-show: ok",
            "smelt-init: then: poweroff",
        ] {
            assert!(console.contains(expected), "{compression}: `{expected}` not on the console:\n{console}");
        }
    }
}

#[test]
fn kernel_argument_overrides_then() {
    let dir = Dir::new();
    marker_image(&dir, "gzip");
    dir.image(
        &Image::new("boot", &["base-busybox", "init"])
            .set("compression", "\"gzip\"")
            .params("init", "then = \"shell\""),
    );
    dir.smelt(&["build", "image.toml", "-o", "out"]).ok();
    // More than one 1 MiB piece of smelt's parallel gzip: the kernel reads them as one stream.
    let unpacked: u64 = crate::util::sh(&format!("zcat {} | wc -c", dir.path("out/boot.cpio.gz").display()))
        .trim()
        .parse()
        .unwrap();
    assert!(unpacked > 1 << 20, "{unpacked} bytes: one piece only");
    let console = boot(&dir.path("out/boot.cpio.gz"), "smelt.then=poweroff");
    assert!(console.contains("smelt-init: then: poweroff"), "{console}");
}
