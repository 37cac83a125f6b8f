//! Same inputs and SOURCE_DATE_EPOCH give the same bytes, whatever the directory,
//! the time of the build, or the sources' own timestamps.

use crate::util::Dir;

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
