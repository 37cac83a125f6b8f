//! Same inputs and SOURCE_DATE_EPOCH give the same bytes, whatever the directory,
//! the time of the build, or the sources' own timestamps.

use crate::util::{Dir, Image};

fn image(dir: &Dir, compression: &str) {
    dir.write(
        "image.toml",
        &format!(
            "[image]\nname = \"r\"\nelements = [\"base-host\", \"init\", \"buildinfo\", \"extra\"]\noutputs = [\"initramfs\"]\ncompression = \"{compression}\"\n[params.base-host]\nbinaries = [\"sh\", \"ls\"]\n"
        ),
    );
    dir.write("elements/extra/element.toml", "description = \"extra\"\n");
    dir.write("elements/extra/root/etc/extra.conf", "a = 1\n");
    dir.write("elements/extra/templates/etc/when.tera", "{{ build.date }} {{ image.name }}\n");
    dir.write("elements/extra/install.d/10-touch", "#!/bin/sh\necho made-by-hook > /etc/hooked\n");
}

fn build(dir: &Dir, epoch: &str) -> Vec<u8> {
    dir.build_into("out", &["-q"], &[("SOURCE_DATE_EPOCH", epoch)]).ok();
    let name = std::fs::read_dir(dir.path("out"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("r.cpio"))
        .unwrap();
    std::fs::read(name).unwrap()
}

#[test]
fn two_builds_in_different_places_and_times_are_identical() {
    for compression in ["zstd", "gzip", "xz", "none"] {
        let a = Dir::new();
        image(&a, compression);
        let first = build(&a, "1700000000");
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let b = Dir::new();
        image(&b, compression);
        let second = build(&b, "1700000000");
        assert!(first == second, "{compression}: outputs differ between two builds");
        let other_epoch = build(&b, "1700000001");
        assert!(first != other_epoch, "{compression}: SOURCE_DATE_EPOCH does not reach the output");
    }
}

/// Without SOURCE_DATE_EPOCH a build reads the clock once: the date templates see at
/// staging, the dates of generated entries and of the outputs written seconds later
/// are all the same second.
#[test]
fn one_build_has_one_time_without_source_date_epoch() {
    use crate::util::{member, sh};
    let dir = Dir::new();
    dir.image(
        &Image::new("t", &["init", "buildinfo", "slow"])
            .outputs(&["initramfs", "ramdisk-tar"])
            .set("kernel", "\"auto\"")
            .set("compression", "\"none\""),
    );
    dir.write("elements/slow/post-root.d/50-wait", "#!/bin/sh\nsleep 2.2\n");
    dir.build(&["-q"]).ok();
    let info = member(&dir.path("out/t.cpio"), "etc/smelt/buildinfo.json");
    let built = info.split("\"date\": \"").nth(1).unwrap().split('"').next().unwrap().to_string();
    // Generated entries (the rendered /init and buildinfo.json), as GNU cpio dates them.
    let x = dir.path("x");
    std::fs::create_dir(&x).unwrap();
    let staged = sh(&format!(
        "cd {} && cpio -idm --quiet < {} init etc/smelt/buildinfo.json && \
         date -u -r init +%Y-%m-%dT%H:%M:%SZ && date -u -r etc/smelt/buildinfo.json +%Y-%m-%dT%H:%M:%SZ",
        x.display(),
        dir.path("out/t.cpio").display()
    ));
    // The tarball's members, written after the hook's 2 s, as GNU tar dates them.
    let tarred = sh(&format!(
        "tar -tvf {} --full-time --utc | awk '{{print $4 \"T\" $5 \"Z\"}}'",
        dir.path("out/t.tar").display()
    ));
    for when in staged.lines().chain(tarred.lines()) {
        assert_eq!(when, built, "dates of one build differ:\nstaged {staged}tarred {tarred}");
    }
    assert_eq!(tarred.lines().count(), 2);
}
