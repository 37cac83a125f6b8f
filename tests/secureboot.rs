//! Secure Boot, enforced by OVMF's Secure Boot firmware with Microsoft's keys enrolled:
//! the `secure-boot = "distribution"` ISO boots as a CD and as a USB disk, its netboot
//! tree over UEFI PXE, each to the ramdisk's last step with the kernel in lockdown and
//! signed NIC modules loaded; the same ISO built without it is refused; BIOS boot of the
//! signed-chain ISO is what it was.

use crate::netboot::{boot_until, netboot_image_with, summary};
use crate::util::{Dir, Image};

/// OVMF's Secure Boot firmware (SMM, so the variables cannot be written around it) and
/// a copy of `vars`, a variable store with keys enrolled.
pub fn secure_firmware(dir: &Dir, name: &str, code: &str, vars: &str) -> Vec<String> {
    let copy = dir.path(&format!("{name}.vars.fd"));
    std::fs::copy(format!("/usr/share/OVMF/{vars}"), &copy).expect("ovmf is installed");
    vec![
        "-machine".into(),
        "q35,smm=on".into(),
        "-global".into(),
        "driver=cfi.pflash01,property=secure,value=on".into(),
        "-drive".into(),
        format!("if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/{code}"),
        "-drive".into(),
        format!("if=pflash,format=raw,file={}", copy.display()),
    ]
}

/// Microsoft's keys, as on most servers: shim is signed by their UEFI CA.
fn microsoft(dir: &Dir, name: &str) -> Vec<String> {
    secure_firmware(dir, name, "OVMF_CODE_4M.secboot.fd", "OVMF_VARS_4M.ms.fd")
}

/// A virtio NIC with no option ROM: OVMF's own driver runs it, as QEMU's iPXE ROM is not
/// signed and Secure Boot would refuse it.
pub fn firmware_nic(mac: &str) -> Vec<String> {
    vec![
        "-netdev".into(),
        "user,id=n0".into(),
        "-device".into(),
        format!("virtio-net-pci,netdev=n0,mac={mac},romfile="),
    ]
}

/// One boot: its name, its QEMU arguments, and what on its console means it is done.
pub type Way<'a> = (&'a str, Vec<String>, &'a str);

/// Boots every way at once (QEMU's own limit of two at a time holds), each until its
/// line is on the console; their consoles, in order.
pub fn boot_each(dir: &Dir, ways: &[Way]) -> Vec<String> {
    std::thread::scope(|s| {
        let handles: Vec<_> = ways
            .iter()
            .map(|(how, args, want)| s.spawn(move || boot_until(dir, how, args, want, 900)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// The `probe` element: a start-up step that says what lockdown the kernel is in and
/// which NICs it has.
pub fn write_probe(dir: &Dir) {
    dir.write("elements/probe/element.toml", "description = \"says what Secure Boot the kernel found\"\n");
    dir.write(
        "elements/probe/root/etc/smelt/init.d/50-probe",
        "#!/bin/sh\nmount -t securityfs securityfs /sys/kernel/security\n\
         echo \"probe: lockdown $(cat /sys/kernel/security/lockdown)\"\n\
         echo \"probe: nics $(ls /sys/class/net | tr '\\n' ' ')\"\n",
    );
}

/// A ramdisk that loads its NIC's modules and says what Secure Boot its kernel found.
fn probed(dir: &Dir, name: &str, secure_boot: bool) {
    let mut image = Image::new(name, &["base-busybox", "init", "kernel-modules", "probe"])
        .outputs(&["iso"])
        .set("kernel", "\"auto\"")
        .set("cmdline", "\"console=ttyS0,115200 panic=-1\"")
        .params("init", "then = \"poweroff\"")
        .params("kernel-modules", "modules = [\"virtio_pci\", \"virtio_net\"]");
    if secure_boot {
        image = image.set("secure-boot", "\"distribution\"");
    }
    dir.image_at(&format!("{name}.toml"), &image);
    write_probe(dir);
}

/// What a guest's console shows when its kernel booted under Secure Boot, loaded the
/// NIC's signed modules in lockdown and reached the ramdisk's last step.
fn assert_secure(how: &str, console: &str) {
    for want in [
        "secureboot: Secure boot enabled",
        "probe: lockdown none [integrity] confidentiality",
        "smelt-init: module virtio_net: loaded",
        "probe: nics eth0 lo",
        "smelt-init: then: poweroff",
    ] {
        assert!(console.contains(want), "{how}: no `{want}` on the console:\n{console}");
    }
}

#[test]
fn the_distribution_chain_boots_under_secure_boot_from_cd_and_usb_and_an_unsigned_iso_is_refused() {
    let dir = Dir::new();
    probed(&dir, "signed", true);
    probed(&dir, "plain", false);
    dir.smelt(&["build", "signed.toml", "--elements-path", "elements", "-o", "out"]).ok();
    dir.smelt(&["build", "plain.toml", "--elements-path", "elements", "-o", "out"]).ok();
    let (signed, plain) = (dir.path("out/signed.iso"), dir.path("out/plain.iso"));
    let (signed, plain) = (signed.to_str().unwrap(), plain.to_str().unwrap());
    let nic = firmware_nic("52:54:00:00:0b:01");
    let cd = |iso: &str| vec!["-cdrom".to_string(), iso.to_string()];
    let usb = vec![
        "-drive".to_string(),
        format!("if=none,id=stick,format=raw,snapshot=on,file={signed}"),
        "-device".into(),
        "qemu-xhci".into(),
        "-device".into(),
        "usb-storage,drive=stick".into(),
    ];
    let refused = "failed to load Boot0001 \"UEFI QEMU DVD-ROM QM00005 \"";
    let ways: Vec<Way> = vec![
        (
            "secure-cd",
            [microsoft(&dir, "cd"), cd(signed), nic.clone()].concat(),
            "smelt-init: then: poweroff",
        ),
        ("secure-usb", [microsoft(&dir, "usb"), usb, nic.clone()].concat(), "smelt-init: then: poweroff"),
        // No NIC: the firmware would try the network after the CD, for minutes.
        (
            "unsigned-cd",
            [microsoft(&dir, "plain"), cd(plain), vec!["-net".into(), "none".into()]].concat(),
            "No bootable option",
        ),
        (
            "bios-cd",
            [vec!["-boot".to_string(), "d".into()], cd(signed), nic].concat(),
            "smelt-init: then: poweroff",
        ),
    ];
    let consoles = boot_each(&dir, &ways);
    assert_secure("secure-cd", &consoles[0]);
    assert_secure("secure-usb", &consoles[1]);
    // The firmware refused the unsigned GRUB; the kernel never started.
    let unsigned = &consoles[2];
    assert!(unsigned.contains(refused) && unsigned.contains("Access Denied"), "unsigned-cd:\n{unsigned}");
    assert!(!unsigned.contains("Linux version"), "unsigned-cd booted a kernel:\n{unsigned}");
    // BIOS boots the same ISO through isolinux, as before, with no Secure Boot.
    let bios = &consoles[3];
    assert!(bios.contains("smelt-init: module virtio_net: loaded"), "bios-cd:\n{bios}");
    assert!(bios.contains("probe: lockdown [none]"), "bios-cd:\n{bios}");
    assert!(bios.contains("smelt-init: then: poweroff"), "bios-cd:\n{bios}");
}

#[test]
fn the_distribution_chain_boots_a_node_over_uefi_pxe_under_secure_boot() {
    let dir = Dir::new();
    netboot_image_with(&dir, None, |image| image.set("secure-boot", "\"distribution\""));
    dir.build(&["--client", "client.toml"]).ok();
    let tree = dir.path("out/acme.netboot");
    // shim as the firmware's loader, the signed GRUB for the network beside it.
    for file in ["bootx64.efi", "grubx64.efi", "mmx64.efi"] {
        assert!(tree.join(file).is_file(), "no {file} in the tree");
    }
    let mut args = microsoft(&dir, "pxe");
    args.extend(["-boot".into(), "n".into()]);
    let mut nic = firmware_nic("52:54:00:00:01:01");
    nic[1] = format!("{},tftp={},bootfile=bootx64.efi", nic[1], tree.display());
    args.extend(nic);
    args.extend([
        "-netdev".into(),
        "user,id=n1".into(),
        "-device".into(),
        "virtio-net-pci,netdev=n1,mac=52:54:00:00:01:02,romfile=".into(),
    ]);
    let want = summary("acme-n1", "11");
    let console = boot_until(&dir, "pxe", &args, &want, 900);
    assert!(console.contains(&want), "no `{want}` on the console:\n{console}");
    assert!(console.contains("smelt: booting node acme-n1"), "{console}");
    assert!(console.contains("secureboot: Secure boot enabled"), "{console}");
    // The bond and VLANs came up: their modules, signed, loaded in lockdown.
    for module in ["virtio_net", "bonding", "8021q"] {
        assert!(console.contains(&format!("smelt-init: module {module}: loaded")), "{module}:\n{console}");
    }
}

#[test]
fn the_distribution_chain_refuses_a_kernel_the_distribution_did_not_sign() {
    let dir = Dir::new();
    dir.image(
        &Image::new("sb", &["base-busybox", "init"])
            .outputs(&["iso"])
            .set("kernel", "\"vmlinuz-unsigned\"")
            .set("secure-boot", "\"distribution\""),
    );
    // Debian's kernel with its signature taken off by sbsigntool, as a self-built one is.
    let unsigned = dir.path("vmlinuz-unsigned");
    std::fs::copy(crate::util::kernel(), &unsigned).unwrap();
    crate::util::sh(&format!("sbattach --remove {}", unsigned.display()));
    let run = dir.build(&[]).fails(1);
    assert!(run.stderr.contains("vmlinuz-unsigned carries no signature"), "{}", run.stderr);
    assert!(run.stderr.contains("image.toml"), "{}", run.stderr);
    assert!(!dir.path("out/sb.iso").exists());
}
