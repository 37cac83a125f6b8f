//! The element library: an agent ramdisk booted with its certificate, and the small
//! elements' effects and refusals.

use crate::util::{boot_with, member, sh, Dir, Image};

#[test]
fn an_agent_ramdisk_boots_and_its_agent_starts_with_its_certificate() {
    let dir = Dir::new();
    dir.fixture("examples/acme/client.toml", "client.toml");
    dir.write(
        "agent/bin/agent",
        "#!/bin/sh\n# A stand-in deploy agent: reports what it sees and stays up.\n\
         cd \"$(dirname \"$0\")/..\"\n\
         echo \"AGENT up on $(hostname): config $(cat agent.conf), cert $(head -1 /etc/smelt/tls/cert.pem), \
         key mode $(stat -c %a /etc/smelt/tls/key.pem), front $(ip -o -4 addr show dev front | awk '{print $4}')\"\n\
         while true; do sleep 60; done\n",
    );
    dir.write("agent.conf.tera", "listen={{ params.dest }}:9999 image={{ image.name }}");
    dir.image(
        &Image::new(
            "deploy",
            &["base-busybox", "init", "kernel-modules", "network", "tls", "agent", "settle"],
        )
        .params("kernel-modules", "modules = [\"virtio_pci\", \"virtio_net\", \"bonding\", \"8021q\"]")
        .params("network", "renderers = []")
        .params("tls", "hostname = \"agent.acme.example\"\nsans = [\"10.10.0.11\"]")
        .params(
            "agent",
            "payload = \"agent\"\ndest = \"/opt/agent\"\nstart = \"bin/agent\"\nconfig = \"agent.conf.tera\"",
        )
        .params("init", "then = \"poweroff\""),
    );
    // Give the agent a moment on the console before the guest powers off.
    dir.write("elements/settle/root/etc/smelt/init.d/99-settle", "#!/bin/sh\nsleep 2\n");
    let r = dir.build(&["--client", "client.toml"]).ok();
    assert!(
        r.stderr.contains("tls: generated a new key and certificate for agent.acme.example"),
        "{}",
        r.stderr
    );
    let key = dir.path(".smelt-state/tls/agent.acme.example/key.pem");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    let key_text = std::fs::read_to_string(&key).unwrap();
    assert!(!r.stderr.contains(key_text.lines().nth(1).unwrap()), "the key is printed");

    // The fingerprint in the report is the certificate's.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("out/report.json")).unwrap()).unwrap();
    let cert = report["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"] == "/etc/smelt/tls/cert.pem")
        .unwrap();
    let pem = dir.path(".smelt-state/tls/agent.acme.example/cert.pem");
    let openssl = sh(&format!("openssl x509 -in {} -noout -fingerprint -sha256", pem.display()));
    assert_eq!(openssl.trim().rsplit('=').next().unwrap(), cert["sha256_fingerprint"]);
    assert!(sh(&format!("openssl x509 -in {} -noout -ext subjectAltName", pem.display()))
        .contains("IP Address:10.10.0.11"));
    let listing = sh(&format!("zstd -dc {} | cpio -tv --quiet", dir.path("out/deploy.cpio.zst").display()));
    assert!(
        listing.lines().any(|l| l.starts_with("-rw-------") && l.ends_with("etc/smelt/tls/key.pem")),
        "{listing}"
    );

    let console =
        boot_with(&dir.path("out/deploy.cpio.zst"), &["52:54:00:00:01:01", "52:54:00:00:01:02"], "", &[]);
    assert!(console.contains("smelt-agent: started 'bin/agent'"), "{console}");
    assert!(
        console.contains(
            "AGENT up on acme-n1: config listen=/opt/agent:9999 image=deploy, cert -----BEGIN CERTIFICATE-----, key mode 600, front 10.10.0.11/24"
        ),
        "{console}"
    );

    // Later builds reuse the kept key and certificate: the same bytes.
    dir.build_into("out2", &["--client", "client.toml", "-q"], &[("SOURCE_DATE_EPOCH", "1700000000")]).ok();
    dir.build_into("out3", &["--client", "client.toml", "-q"], &[("SOURCE_DATE_EPOCH", "1700000000")]).ok();
    assert_eq!(
        std::fs::read(dir.path("out2/deploy.cpio.zst")).unwrap(),
        std::fs::read(dir.path("out3/deploy.cpio.zst")).unwrap()
    );
}

#[test]
fn inject_files_places_content_and_refuses_escapes() {
    let dir = Dir::new();
    dir.write("payload.bin", "from the host\n");
    dir.image(&Image::new("inj", &["inject-files"]).params("inject-files", "files = { \"/etc/secret\" = { content-base64 = \"c2VjcmV0Cg==\", mode = \"0600\" }, \"opt/payload.bin\" = { source = \"payload.bin\" } }"));
    dir.build(&[]).ok();
    let archive = dir.path("out/inj.cpio.zst");
    assert_eq!(member(&archive, "etc/secret"), "secret\n");
    assert_eq!(member(&archive, "opt/payload.bin"), "from the host\n");
    let listing = sh(&format!("zstd -dc {} | cpio -tv --quiet", archive.display()));
    assert!(listing.lines().any(|l| l.starts_with("-rw-------") && l.ends_with("etc/secret")), "{listing}");

    for (dest, message) in [
        ("../etc/shadow", "smelt: element `inject-files`: destination path `../etc/shadow` escapes the image root; destinations are paths inside the image\n"),
        ("/../../etc/shadow", "smelt: element `inject-files`: destination path `/../../etc/shadow` escapes the image root; destinations are paths inside the image\n"),
    ] {
        dir.write(
            "image.toml",
            &format!("[image]\nname = \"inj\"\nelements = [\"inject-files\"]\n[params.inject-files.files]\n\"{dest}\" = {{ content-base64 = \"eA==\" }}\n"),
        );
        assert_eq!(dir.build(&[]).fails(1).stderr, message);
    }
}

#[test]
fn a_staged_symlink_out_of_the_root_is_refused() {
    let dir = Dir::new();
    dir.image(&Image::new("ln", &["links"]));
    dir.write("elements/links/element.toml", "description = \"links\"\n");
    std::fs::create_dir_all(dir.path("elements/links/root/etc")).unwrap();
    std::os::unix::fs::symlink("../../../../etc/shadow", dir.path("elements/links/root/etc/stolen")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", dir.path("elements/links/root/etc/fine")).unwrap();
    let r = dir.build(&[]).fails(1);
    assert_eq!(
        r.stderr,
        "smelt: element `links`: symlink /etc/stolen -> ../../../../etc/shadow points outside the image root; \
         make it absolute (resolved inside the image) or point it within\n"
    );
}

#[test]
fn dev_user_timezone_and_module_autoload() {
    let dir = Dir::new();
    dir.image(&Image::new("dev", &["base-busybox", "init", "dev-user", "timezone", "module-autoload"]).outputs(&["initramfs"]).params("dev-user", "name = \"ops\"\npassword = \"hunter2\"\nauthorized-keys = [\"ssh-ed25519 AAAA ops@acme\"]\nsudo = true").params("timezone", "zone = \"Europe/Madrid\""));
    dir.build(&[]).ok();
    let archive = dir.path("out/dev.cpio.zst");
    assert!(member(&archive, "etc/passwd").contains("ops:x:1000:1000:ops:/home/ops:/bin/sh\n"));
    let shadow = member(&archive, "etc/shadow");
    let hash = shadow.lines().find(|l| l.starts_with("ops:")).unwrap().split(':').nth(1).unwrap().to_string();
    assert!(hash.starts_with("$6$"), "{hash}");
    // The system's crypt(3), through Python's crypt module, checks the hash.
    let verified = std::process::Command::new("/usr/bin/python3")
        .args([
            "-W",
            "ignore",
            "-c",
            "import crypt, os; h = os.environ['HASH']; print(crypt.crypt('hunter2', h) == h)",
        ])
        .env("HASH", &hash)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&verified.stdout).trim(),
        "True",
        "the shadow hash does not verify the password"
    );
    let listing = sh(&format!("zstd -dc {} | cpio -tv --quiet --numeric-uid-gid", archive.display()));
    let line = |name: &str| {
        listing
            .lines()
            .find(|l| l.ends_with(name))
            .unwrap_or_else(|| panic!("{name}:\n{listing}"))
            .to_string()
    };
    assert!(line("etc/shadow").starts_with("-rw-------"));
    assert!(line("home/ops/.ssh/authorized_keys").starts_with("-rw-------   1 1000     1000"));
    assert!(line("etc/sudoers.d/ops").starts_with("-r--r-----"));
    assert_eq!(member(&archive, "etc/sudoers.d/ops"), "ops ALL=(ALL) NOPASSWD:ALL\n");
    assert_eq!(member(&archive, "etc/timezone"), "Europe/Madrid\n");
    assert_eq!(
        sh(&format!("bsdtar -xOf {} etc/localtime | sha256sum", archive.display())),
        sh("sha256sum < /usr/share/zoneinfo/Europe/Madrid")
    );
    let console = crate::util::boot(&archive, "smelt.then=poweroff");
    assert!(console.contains("smelt-modules: "), "{console}");
}

/// DIB source-repository files: file, tar (`.`, `*`, a subdirectory) and git at a ref,
/// from local paths named through an environment variable, as DIB's eval expands it.
#[test]
fn dib_source_repositories_are_placed() {
    let dir = Dir::new();
    let src = dir.path("src");
    dir.write("src/notes.txt", "notes\n");
    dir.write("src/proj-1.0/README", "readme\n");
    dir.write("src/proj-1.0/sub/x", "x\n");
    sh(&format!("cd {} && tar -czf proj.tar.gz proj-1.0", src.display()));
    sh(&format!(
        "cd {} && git init -q -b master repo && cd repo && git config user.email t@t && git config user.name t && \
         echo one > hello.txt && git add . && git commit -qm one && git tag v1 && echo two > hello.txt && git commit -qam two",
        src.display()
    ));
    dir.write(
        "elements/sources/source-repository-app",
        "# name type destination location [ref]\n\
         app-file file /opt/src/notes.txt $SRCDIR/notes.txt\n\
         app-tar-all tar /opt/src/tar-all ${SRCDIR}/proj.tar.gz .\n\
         app-tar-star tar /opt/src/tar-star $SRCDIR/proj.tar.gz *\n\
         app-tar-sub tar /opt/src/tar-sub $SRCDIR/proj.tar.gz proj-1.0/sub\n\
         app-git git /opt/src/git $SRCDIR/repo v1\n",
    );
    dir.image(&Image::new("src", &["sources"]));
    dir.build_into("out", &[], &[("SRCDIR", src.to_str().unwrap())]).ok();
    let archive = dir.path("out/src.cpio.zst");
    assert_eq!(member(&archive, "opt/src/notes.txt"), "notes\n");
    assert_eq!(member(&archive, "opt/src/tar-all/proj-1.0/README"), "readme\n");
    assert_eq!(member(&archive, "opt/src/tar-star/sub/x"), "x\n");
    assert_eq!(member(&archive, "opt/src/tar-sub/x"), "x\n");
    assert_eq!(member(&archive, "opt/src/git/hello.txt"), "one\n", "the git ref is v1");
    let listing = sh(&format!("zstd -dc {} | cpio -t --quiet", archive.display()));
    assert!(!listing.contains("opt/src/git/.git"), "{listing}");
    assert!(!listing.contains("tar-sub/sub") && !listing.contains("tar-star/proj-1.0"), "{listing}");
}
