//! The `uki` output: systemd's stub with the kernel, initramfs and command line as
//! sections, as binutils reads them; signed with `[secure-boot]`'s key as sbverify
//! accepts, the same bytes every time; booted by OVMF with its test keys enrolled
//! (Secure Boot enforced) from a USB disk's EFI system partition, and refused unsigned
//! or signed by a key the firmware does not know; bad keys named before anything runs.

use std::path::Path;

use crate::netboot::{boot_until, free_port, netboot_image_with, summary};
use crate::secureboot::{boot_each, firmware_nic, secure_firmware, write_probe, Way};
use crate::util::{sh, Dir, Image};

/// OVMF's test key store: its db holds the snakeoil certificate.
const SNAKEOIL_CERT: &str = "/usr/share/ovmf/PkKek-1-snakeoil.pem";

/// A ramdisk as a UKI (and as an initramfs, to compare with the UKI's `.initrd`),
/// signed by `signing` (TOML lines of `[secure-boot]`) when given.
fn uki_image(dir: &Dir, name: &str, signing: Option<&str>) {
    let mut image = Image::new(name, &["base-busybox", "init", "kernel-modules", "probe"])
        .outputs(&["uki", "initramfs"])
        .set("kernel", "\"auto\"")
        .set("cmdline", "\"console=ttyS0,115200 panic=-1\"")
        .params("init", "then = \"poweroff\"")
        .params("kernel-modules", "modules = [\"virtio_pci\", \"virtio_net\"]");
    if let Some(signing) = signing {
        image = image.table("secure-boot", signing);
    }
    dir.image_at(&format!("{name}.toml"), &image);
    write_probe(dir);
}

fn build(dir: &Dir, name: &str, out: &str) {
    dir.smelt_env(
        &["build", &format!("{name}.toml"), "--elements-path", "elements", "-o", out],
        &[("SNAKEOIL_PASSWORD", "snakeoil"), ("SOURCE_DATE_EPOCH", "1700000000")],
    )
    .ok();
}

const SNAKEOIL: &str = "key = \"/usr/share/ovmf/PkKek-1-snakeoil.key\"\ncert = \"/usr/share/ovmf/PkKek-1-snakeoil.pem\"\nkey-password-env = \"SNAKEOIL_PASSWORD\"";

/// A key and self-signed certificate made here with openssl, which no firmware knows.
fn own_key(dir: &Dir, name: &str) {
    sh(&format!(
        "cd {} && openssl req -x509 -newkey rsa:2048 -nodes -keyout {name}.key -out {name}.crt -days 30 \
         -subj /CN=smelt-test-{name} 2>/dev/null",
        dir.path("").display()
    ));
}

/// A USB disk whose FAT file system holds `efi` as the removable-media loader.
fn usb_with(dir: &Dir, name: &str, efi: &Path) -> Vec<String> {
    let esp = dir.path(&format!("esp-{name}/EFI/BOOT"));
    std::fs::create_dir_all(&esp).unwrap();
    std::fs::copy(efi, esp.join("BOOTX64.EFI")).unwrap();
    vec![
        "-drive".into(),
        format!(
            "if=none,id=stick,format=raw,readonly=on,file=fat:{}",
            dir.path(&format!("esp-{name}")).display()
        ),
        "-device".into(),
        "qemu-xhci".into(),
        "-device".into(),
        "usb-storage,drive=stick".into(),
    ]
}

/// A section's bytes, as objcopy extracts them.
fn section(efi: &Path, name: &str) -> Vec<u8> {
    let out = tempfile::NamedTempFile::new().unwrap();
    sh(&format!("objcopy -O binary --only-section={name} {} {}", efi.display(), out.path().display()));
    std::fs::read(out.path()).unwrap()
}

#[test]
fn a_signed_uki_boots_under_secure_boot_and_unsigned_or_foreign_ones_are_refused() {
    let dir = Dir::new();
    own_key(&dir, "stranger");
    uki_image(&dir, "plain", None);
    uki_image(&dir, "signed", Some(SNAKEOIL));
    uki_image(&dir, "foreign", Some("key = \"stranger.key\"\ncert = \"stranger.crt\""));
    for name in ["plain", "signed", "foreign"] {
        build(&dir, name, "out");
    }
    let efi = |name: &str| dir.path(&format!("out/{name}.efi"));

    // The sections ukify writes, in its order, as binutils reads them.
    let headers = sh(&format!("objdump -h {}", efi("plain").display()));
    let names: Vec<&str> = headers
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|n| [".osrel", ".cmdline", ".uname", ".initrd", ".linux"].contains(n))
        .collect();
    assert_eq!(names, [".osrel", ".cmdline", ".uname", ".initrd", ".linux"], "{headers}");
    assert_eq!(section(&efi("plain"), ".initrd"), std::fs::read(dir.path("out/plain.cpio.zst")).unwrap());
    assert_eq!(section(&efi("plain"), ".cmdline"), b"console=ttyS0,115200 panic=-1");
    let kernel = crate::util::kernel();
    let release = kernel.file_name().unwrap().to_string_lossy().trim_start_matches("vmlinuz-").to_string();
    assert_eq!(String::from_utf8(section(&efi("plain"), ".uname")).unwrap(), release);
    let linux = section(&efi("plain"), ".linux");
    assert_eq!(&linux[..std::fs::metadata(&kernel).unwrap().len() as usize], std::fs::read(&kernel).unwrap());

    // sbverify (sbsigntool) accepts the signature with the signing certificate only.
    let verify = |name: &str, cert: &str| {
        std::process::Command::new("sbverify").args(["--cert", cert]).arg(efi(name)).output().unwrap()
    };
    let ok = verify("signed", SNAKEOIL_CERT);
    assert!(
        ok.status.success(),
        "{}{}",
        String::from_utf8_lossy(&ok.stdout),
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(!verify("foreign", SNAKEOIL_CERT).status.success());
    assert!(verify("foreign", dir.path("stranger.crt").to_str().unwrap()).status.success());
    assert!(!verify("plain", SNAKEOIL_CERT).status.success());

    // Signed twice, the same bytes: no signing time, a deterministic RSA signature.
    build(&dir, "signed", "again");
    crate::util::assert_same_bytes(&efi("signed"), &dir.path("again/signed.efi"), "the signed UKI");

    // inspect reads what the UKI boots and who signed it; osslsigncode computes the
    // same Authenticode digest as report.json lists.
    let shown = dir.smelt(&["inspect", "out/signed.efi"]).ok().stdout;
    for want in
        [release.as_str(), "console=ttyS0,115200 panic=-1", "O=SnakeOil (verifies)", ".initrd", ".linux"]
    {
        assert!(shown.contains(want), "no `{want}` in:\n{shown}");
    }
    assert!(dir.smelt(&["inspect", "out/plain.efi"]).ok().stdout.contains("unsigned"));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("again/report.json")).unwrap()).unwrap();
    let listed = report["efi"].as_array().unwrap().iter().find(|e| e["file"] == "again/signed.efi").unwrap();
    assert_eq!(listed["signers"][0], "C=US, ST=Colorado, L=Fort Collins, O=SnakeOil");
    let ossl = sh(&format!(
        "osslsigncode verify -CAfile {SNAKEOIL_CERT} -in {} 2>&1 || true",
        efi("signed").display()
    ));
    assert!(ossl.contains("Signature verification: ok"), "{ossl}");
    let calculated = ossl.lines().find_map(|l| l.strip_prefix("Calculated message digest : ")).unwrap();
    assert_eq!(calculated.trim().to_lowercase(), listed["authenticode_sha256"].as_str().unwrap());
    // diff compares section by section.
    let diff = dir.smelt(&["diff", "out/plain.efi", "out/signed.efi"]).ok().stdout;
    assert!(diff.contains("signed by: unsigned -> C=US, ST=Colorado, L=Fort Collins, O=SnakeOil"), "{diff}");
    assert!(diff.lines().any(|l| l.starts_with("  .linux")), "the kernel is the same:\n{diff}");
    assert!(diff.lines().any(|l| l.starts_with("~ .initrd")), "{diff}");
    // One byte changed in the initramfs: the signature no longer verifies, for smelt as for sbverify.
    let tampered = dir.path("tampered.efi");
    let mut bytes = std::fs::read(efi("signed")).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    std::fs::write(&tampered, bytes).unwrap();
    assert!(dir.smelt(&["inspect", "tampered.efi"]).ok().stdout.contains("DOES NOT VERIFY"));
    assert!(!std::process::Command::new("sbverify")
        .args(["--cert", SNAKEOIL_CERT])
        .arg(&tampered)
        .output()
        .unwrap()
        .status
        .success());

    let nic = firmware_nic("52:54:00:00:0c:01");
    let ways: Vec<Way> = ["signed", "plain", "foreign"]
        .into_iter()
        .map(|name| {
            let args = [
                secure_firmware(&dir, name, "OVMF_CODE_4M.secboot.fd", "OVMF_VARS_4M.snakeoil.fd"),
                usb_with(&dir, name, &efi(name)),
                nic.clone(),
            ]
            .concat();
            let want = if name == "signed" { "smelt-init: then: poweroff" } else { "Access Denied" };
            (name, args, want)
        })
        .collect();
    let consoles = boot_each(&dir, &ways);
    for want in [
        "secureboot: Secure boot enabled",
        "probe: lockdown none [integrity] confidentiality",
        "smelt-init: then: poweroff",
    ] {
        assert!(consoles[0].contains(want), "signed: no `{want}`:\n{}", consoles[0]);
    }
    for (name, console) in [("plain", &consoles[1]), ("foreign", &consoles[2])] {
        assert!(
            console.contains("USB HARDDRIVE") && console.contains("Access Denied"),
            "{name}: not refused:\n{console}"
        );
        assert!(!console.contains("Linux version"), "{name} booted a kernel:\n{console}");
    }
}

#[test]
fn bad_keys_are_named_before_the_build_runs() {
    let dir = Dir::new();
    own_key(&dir, "mine");
    own_key(&dir, "other");
    // An expired certificate for mine.key, dated by openssl's own CA command.
    sh(&format!(
        "cd {} && mkdir -p ca/new && touch ca/index.txt && echo 01 > ca/serial && \
         printf '[ca]\\ndefault_ca=d\\n[d]\\ndir=ca\\ndatabase=ca/index.txt\\nnew_certs_dir=ca/new\\nserial=ca/serial\\n\
default_md=sha256\\npolicy=p\\n[p]\\ncommonName=supplied\\n' > ca.cnf && \
         openssl req -new -key mine.key -subj /CN=old -out old.csr 2>/dev/null && \
         openssl ca -batch -config ca.cnf -selfsign -keyfile mine.key -in old.csr -startdate 20200101000000Z \
         -enddate 20210101000000Z -out old.crt 2>/dev/null",
        dir.path("").display()
    ));
    dir.write("garbage.key", "not a key\n");
    let secret = std::fs::read_to_string(dir.path("mine.key")).unwrap().lines().nth(1).unwrap().to_string();
    let cases = [
        ("key = \"mine.key\"\ncert = \"other.crt\"", "mine.key does not match the certificate"),
        ("key = \"mine.key\"\ncert = \"old.crt\"", "old.crt expired on"),
        (
            "key = \"garbage.key\"\ncert = \"mine.crt\"",
            "cannot read the Secure Boot key garbage.key: not a PEM private key",
        ),
        (
            "key = \"absent.key\"\ncert = \"mine.crt\"",
            "cannot read the Secure Boot key absent.key: No such file",
        ),
        (SNAKEOIL, "variable SNAKEOIL_PASSWORD, which is not set"),
        ("key-env = \"SB_KEY\"\ncert = \"mine.crt\"", "variable SB_KEY, which is not set"),
        ("cert = \"mine.crt\"", "[secure-boot] names no key"),
    ];
    for (signing, want) in cases {
        uki_image(&dir, "bad", Some(signing));
        let run = dir.smelt(&["build", "bad.toml", "--elements-path", "elements", "-o", "out"]).fails(1);
        assert!(run.stderr.contains(want), "{signing}: wanted `{want}` in:\n{}", run.stderr);
        // Nothing of a key is printed.
        assert!(!run.stderr.contains("-----BEGIN") && !run.stderr.contains(&secret), "{}", run.stderr);
        assert!(!dir.path("out/bad.efi").exists());
    }
    // A stub someone signed already: a UKI is signed whole, so it is refused, with its signer.
    sh(&format!(
        "cd {} && sbsign --key other.key --cert other.crt --output signed-stub.efi /usr/lib/systemd/boot/efi/linuxx64.efi.stub 2>/dev/null",
        dir.path("").display()
    ));
    uki_image(&dir, "stub", Some("key = \"mine.key\"\ncert = \"mine.crt\""));
    let text = std::fs::read_to_string(dir.path("stub.toml")).unwrap();
    dir.write("stub.toml", &text.replacen("[image]\n", "[image]\nuki-stub = \"signed-stub.efi\"\n", 1));
    let run = dir.smelt(&["build", "stub.toml", "--elements-path", "elements", "-o", "out"]).fails(1);
    assert!(
        run.stderr.contains("signed-stub.efi: the EFI stub is signed already, by CN=smelt-test-other"),
        "{}",
        run.stderr
    );

    // A key named by a variable: the CI secret's way.
    uki_image(&dir, "byenv", Some("key-env = \"SB_KEY\"\ncert = \"mine.crt\""));
    dir.smelt_env(
        &["build", "byenv.toml", "--elements-path", "elements", "-o", "out"],
        &[("SB_KEY", "mine.key")],
    )
    .ok();
    let ok = std::process::Command::new("sbverify")
        .args(["--cert", dir.path("mine.crt").to_str().unwrap(), dir.path("out/byenv.efi").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(ok.status.success());
}

#[test]
fn a_node_http_boots_the_signed_uki_from_the_netboot_tree_under_secure_boot() {
    let dir = Dir::new();
    let port = free_port();
    let url = format!("http://10.0.2.2:{port}/");
    netboot_image_with(&dir, Some(&url), |image| {
        image.outputs(&["netboot", "uki"]).table("secure-boot", SNAKEOIL).set(
            "cmdline",
            "\"console=ttyS0 panic=-1{% if node %} inst.ks={{ netboot.url }}nodes/{{ node.name }}/ks.cfg{% endif %}\"",
        )
    });
    dir.smelt_env(
        &["build", "image.toml", "--elements-path", "elements", "-o", "out", "--client", "client.toml"],
        &[("SNAKEOIL_PASSWORD", "snakeoil")],
    )
    .ok();
    let tree = dir.path("out/acme.netboot");
    crate::util::assert_same_bytes(&tree.join("acme.efi"), &dir.path("out/acme.efi"), "the tree's UKI");
    // Its command line is the one machines no node has boot with: the ramdisk finds its
    // node by MAC. DHCP hands HTTP-boot firmware the UKI's URL.
    assert_eq!(section(&tree.join("acme.efi"), ".cmdline"), b"console=ttyS0 panic=-1");
    let dnsmasq = std::fs::read_to_string(tree.join("dnsmasq.conf")).unwrap();
    for line in
        ["dhcp-match=set:efihttp,option:client-arch,16", "dhcp-option-force=tag:efihttp,60,HTTPClient"]
    {
        assert!(dnsmasq.lines().any(|l| l == line), "no `{line}` in:\n{dnsmasq}");
    }
    assert!(dnsmasq.contains(&format!("dhcp-boot=tag:efihttp,{url}acme.efi")), "{dnsmasq}");
    sh(&format!(
        "dnsmasq --test --conf-file={} --tftp-root={}",
        tree.join("dnsmasq.conf").display(),
        tree.display()
    ));
    dir.write("dhcpd-main.conf", &format!("include \"{}\";\n", tree.join("dhcpd.conf").display()));
    sh(&format!(
        "dhcpd -t -q -cf {} -lf /dev/null -pf {}",
        dir.path("dhcpd-main.conf").display(),
        dir.path("dhcpd.pid").display()
    ));
    assert!(std::fs::read_to_string(tree.join("dhcpd.conf"))
        .unwrap()
        .contains(&format!("filename \"{url}acme.efi\";")));

    let log = std::fs::File::create(dir.path("serve.log")).unwrap();
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_smelt"))
        .args(["serve", "out/acme.netboot", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--tftp", &format!("127.0.0.1:{}", free_port())])
        .current_dir(dir.path(""))
        .stderr(log)
        .spawn()
        .unwrap();
    let mut args = secure_firmware(&dir, "http", "OVMF_CODE_4M.secboot.fd", "OVMF_VARS_4M.snakeoil.fd");
    args.extend(["-boot".into(), "n".into()]);
    let mut nic = firmware_nic("52:54:00:00:02:01");
    nic[1] = format!("{},bootfile={url}acme.efi", nic[1]);
    args.extend(nic);
    args.extend([
        "-netdev".into(),
        "user,id=n1".into(),
        "-device".into(),
        "virtio-net-pci,netdev=n1,mac=52:54:00:00:02:02,romfile=".into(),
    ]);
    let want = summary("acme-n2", "12");
    let console = boot_until(&dir, "http", &args, &want, 900);
    let _ = server.kill();
    let _ = server.wait();
    assert!(console.contains(&want), "no `{want}`:\n{console}");
    assert!(console.contains("secureboot: Secure boot enabled"), "{console}");
    assert!(console.contains("this is node acme-n2 (found by MAC"), "{console}");
    let served = std::fs::read_to_string(dir.path("serve.log")).unwrap();
    assert!(served.contains("GET /acme.efi 200"), "{served}");
}

#[test]
fn per_node_ukis_carry_their_node_and_the_tree_holds_each() {
    let dir = Dir::new();
    netboot_image_with(&dir, Some("http://10.0.2.2:8080/"), |image| {
        image.outputs(&["netboot", "uki"]).set(
            "cmdline",
            "\"console=ttyS0{% if node %} inst.ks={{ netboot.url }}nodes/{{ node.name }}/ks.cfg{% endif %}\"",
        )
    });
    dir.build(&["--client", "client.toml", "--per-node"]).ok();
    for node in ["acme-n1", "acme-n2"] {
        let own = dir.path(&format!("out/acme-{node}.efi"));
        let cmdline = String::from_utf8(section(&own, ".cmdline")).unwrap();
        assert_eq!(
            cmdline,
            format!("console=ttyS0 inst.ks=http://10.0.2.2:8080/nodes/{node}/ks.cfg smelt.node={node}")
        );
        let in_tree = dir.path(&format!("out/acme.netboot/nodes/{node}/acme.efi"));
        crate::util::assert_same_bytes(&own, &in_tree, "the node's UKI in the tree");
        // Its initramfs is the node's own.
        assert_eq!(
            section(&own, ".initrd"),
            std::fs::read(dir.path(&format!("out/acme.netboot/initrd-{node}.img"))).unwrap()
        );
    }
    assert!(!dir.path("out/acme.netboot/acme.efi").exists(), "no shared image with --per-node");
    // No shared UKI, so DHCP offers none: HTTP boot per node is configured by hand.
    let dnsmasq = std::fs::read_to_string(dir.path("out/acme.netboot/dnsmasq.conf")).unwrap();
    assert!(!dnsmasq.contains("efihttp"), "{dnsmasq}");
}
