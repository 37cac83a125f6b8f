//! The network element: every renderer's output pinned for typical inventories, and one
//! client image booted as two nodes and as a stranger.

use crate::util::{boot_with, snapshot, text_files, Dir, Image};

const CASES: [&str; 5] = ["bond-vlans", "active-backup", "flat", "ipv6", "dhcp"];

/// Renders every renderer for each golden case and compares with
/// tests/golden/network/CASE/expected (SNAPSHOTS=overwrite rewrites them).
#[test]
fn every_renderer_matches_its_golden_files() {
    let mut failures = Vec::new();
    for case in CASES {
        let dir = Dir::new();
        dir.fixture(&format!("tests/golden/network/{case}/client.toml"), "client.toml");
        dir.image(&Image::new("net", &["network"]).outputs(&["dir"]).params("network", "renderers = [\"networkd\", \"nm-keyfile\", \"ifupdown\", \"ifcfg-rh\", \"ifcfg-suse\", \"netplan\", \"network-data-json\", \"ramdisk\"]"));
        dir.smelt_env(
            &["build", "image.toml", "--client", "client.toml", "-o", "out", "-q"],
            &[("SOURCE_DATE_EPOCH", "1700000000")],
        )
        .ok();
        let rendered = dir.path("out/net.dir/etc/smelt/network");
        let got = text_files(&rendered);
        failures.extend(snapshot(&format!("tests/golden/network/{case}/expected"), &got));
        // The machine-read formats parse.
        for (rel, text) in &got {
            if rel.ends_with(".json") {
                serde_json::from_str::<serde_json::Value>(text)
                    .unwrap_or_else(|e| panic!("{case}: {rel}: {e}"));
            }
            if rel.ends_with(".yaml") {
                yaml_rust2::YamlLoader::load_from_str(text).unwrap_or_else(|e| panic!("{case}: {rel}: {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// One image for the whole client; the guest's NIC MACs decide which node it is.
fn client_image(dir: &Dir) {
    dir.fixture("examples/acme/client.toml", "client.toml");
    dir.image(
        &Image::new("acme", &["base-busybox", "init", "kernel-modules", "network"])
            .params("kernel-modules", "modules = [\"virtio_pci\", \"virtio_net\", \"bonding\", \"8021q\"]")
            .params("init", "then = \"poweroff\""),
    );
    dir.write(
        "elements/show/root/etc/smelt/init.d/90-show",
        "#!/bin/sh\necho \"state: bond0 slaves=[$(cat /sys/class/net/bond0/bonding/slaves 2>/dev/null)] \
         mode=$(cut -d' ' -f1 /sys/class/net/bond0/bonding/mode 2>/dev/null)\"\n\
         for v in front back; do echo \"state: $v $(ip -o -4 addr show dev $v 2>/dev/null | awk '{print $4}') \
         vlan=$(grep -s \"^$v \" /proc/net/vlan/config | cut -d'|' -f2 | tr -d ' ')\"; done\n\
         echo \"state: hostname $(hostname)\"\n",
    );
    dir.write(
        "image.toml",
        &std::fs::read_to_string(dir.path("image.toml"))
            .unwrap()
            .replace("\"network\"]", "\"network\", \"show\"]"),
    );
    dir.build(&["--client", "client.toml"]).ok();
}

fn boot_with_nics(dir: &Dir, macs: &[&str]) -> String {
    boot_with(&dir.path("out/acme.cpio.zst"), macs, "", &[])
}

fn boot_with_nics_from(dir: &Dir, initrd: &str, macs: &[&str]) -> String {
    boot_with(&dir.path(initrd), macs, "", &[])
}

#[test]
fn one_client_image_configures_whichever_node_boots_it() {
    let dir = Dir::new();
    client_image(&dir);
    let (n1, n2, stranger) = std::thread::scope(|s| {
        let a = s.spawn(|| boot_with_nics(&dir, &["52:54:00:00:01:01", "52:54:00:00:01:02"]));
        let b = s.spawn(|| boot_with_nics(&dir, &["52:54:00:00:02:01", "52:54:00:00:02:02"]));
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        (a, b, boot_with_nics(&dir, &["52:54:00:00:09:01"]))
    });
    for (node, console, last) in [("acme-n1", &n1, "11"), ("acme-n2", &n2, "12")] {
        for expected in [
            format!("smelt-network: this is node {node} (found by MAC"),
            format!("smelt-network: node {node}: bond0[fast0 fast1] up 802.3ad; front 10.10.0.{last}/24; back 192.168.50.{last}/24;"),
            "state: bond0 slaves=[fast0 fast1] mode=802.3ad".to_string(),
            format!("state: front 10.10.0.{last}/24 vlan=100"),
            format!("state: back 192.168.50.{last}/24 vlan=200"),
            format!("state: hostname {node}"),
        ] {
            assert!(console.contains(&expected), "{node}: `{expected}` not on the console:\n{console}");
        }
    }
    assert!(
        stranger.contains(
            "smelt-network: no node matches this machine (MACs: 52:54:00:00:09:01); DHCP on every interface"
        ),
        "{stranger}"
    );
    assert!(stranger.contains("smelt-network: eth0: DHCP 10.0.2.15/24"), "{stranger}");
}

#[test]
fn per_node_images_carry_only_their_node_and_boot_as_it() {
    let dir = Dir::new();
    client_image(&dir);
    dir.build_into("pn", &["--client", "client.toml", "--per-node"], &[]).ok();
    let n1 = dir.path("pn/acme-acme-n1.cpio.zst");
    let r = dir.smelt(&["inspect", n1.to_str().unwrap(), "--json"]).ok();
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(doc["compressions"], serde_json::json!(["zstd", "zstd"]), "the shared part, then the node's");
    let paths: Vec<&str> =
        doc["entries"].as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert!(
        paths.contains(&"/etc/smelt/network/acme-n1/ramdisk/apply.sh") && paths.contains(&"/etc/smelt/node")
    );
    assert!(!paths.iter().any(|p| p.contains("acme-n2/")), "acme-n1's image holds acme-n2's config");
    assert!(dir.path("pn/acme-acme-n2.cpio.zst").exists() && !dir.path("pn/acme.cpio.zst").exists());
    let console =
        boot_with_nics_from(&dir, "pn/acme-acme-n1.cpio.zst", &["52:54:00:00:01:01", "52:54:00:00:01:02"]);
    assert!(
        console.contains("smelt-network: this is node acme-n1 (found by this image's stamp)"),
        "{console}"
    );
    assert!(console.contains("state: front 10.10.0.11/24 vlan=100"), "{console}");
}

#[test]
fn a_node_is_found_by_dmi_serial_or_by_the_kernel_argument() {
    let dir = Dir::new();
    client_image(&dir);
    let boot = |extra: &[&str], append: &str| {
        boot_with(&dir.path("out/acme.cpio.zst"), &["52:54:00:00:09:09"], append, extra)
    };
    let (by_serial, by_arg) = std::thread::scope(|s| {
        let a = s.spawn(|| boot(&["-smbios", "type=1,serial=J30012AC"], ""));
        let b = s.spawn(|| boot(&[], "smelt.node=acme-n1"));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(
        by_serial.contains("smelt-network: this is node acme-n2 (found by serial J30012AC)"),
        "{by_serial}"
    );
    assert!(by_arg.contains("smelt-network: this is node acme-n1 (found by smelt.node=)"), "{by_arg}");
    // The node's NICs are not there: the applier says which, and that it failed.
    assert!(by_arg.contains("smelt-network: link fast0: no interface has MAC 52:54:00:00:01:01"), "{by_arg}");
    assert!(by_arg.contains("smelt-network: node acme-n1: some steps FAILED"), "{by_arg}");
}

#[test]
fn a_users_template_replaces_the_built_in_one() {
    let dir = Dir::new();
    dir.fixture("examples/acme/client.toml", "client.toml");
    dir.write(
        "my-templates/networkd/30-{iface}.network.tera",
        "# ours for {{ iface.name }} on {{ node.name }}\n",
    );
    dir.write("my-templates/networkd/99-extra.conf.tera", "extra for {{ node.hostname }}\n");
    dir.image(
        &Image::new("t", &["network"])
            .outputs(&["dir"])
            .params("network", "renderers = [\"networkd\"]\ntemplates = \"my-templates\""),
    );
    dir.build(&["--client", "client.toml"]).ok();
    let got = text_files(&dir.path("out/t.dir/etc/smelt/network/acme-n2/networkd"));
    assert_eq!(got["30-front.network"], "# ours for front on acme-n2\n");
    assert_eq!(got["99-extra.conf"], "extra for acme-n2\n");
    assert!(got["20-bond0.netdev"].contains("Mode=802.3ad"), "the other built-in templates stay");
    dir.write(
        "image.toml",
        &std::fs::read_to_string(dir.path("image.toml"))
            .unwrap()
            .replace("networkd\"]", "networkd\", \"systemd\"]"),
    );
    let r = dir.build(&["--client", "client.toml"]).fails(1);
    assert_eq!(
        r.stderr,
        "error: `systemd` is not a choice of param `renderers` of element `network`\n  --> image.toml:6:26\n  |\n\
         6 | renderers = [\"networkd\", \"systemd\"]\n  |                          ^\n  = help: each item one of \
         networkd, nm-keyfile, ifupdown, ifcfg-rh, ifcfg-suse, netplan, network-data-json, ramdisk\n1 error in input\n"
    );
}

/// Per-node bootable ISOs, as they go on BMC virtual media: each boots from CD and
/// configures its own node.
#[test]
fn a_per_node_bootable_iso_boots_as_its_node() {
    let dir = Dir::new();
    dir.fixture("examples/acme/client.toml", "client.toml");
    dir.image(
        &Image::new("acme", &["base-busybox", "init", "kernel-modules", "network"])
            .outputs(&["iso"])
            .set("kernel", "\"auto\"")
            .set("iso-label", "\"ACME\"")
            .set("cmdline", "\"console=ttyS0,115200 panic=-1 smelt.then=poweroff\"")
            .params("kernel-modules", "modules = [\"virtio_pci\", \"virtio_net\", \"bonding\", \"8021q\"]"),
    );
    dir.build(&["--client", "client.toml", "--per-node"]).ok();
    assert!(dir.path("out/acme-acme-n1.iso").exists() && dir.path("out/acme-acme-n2.iso").exists());
    let iso = dir.path("out/acme-acme-n2.iso");
    let console = crate::util::qemu(&[
        "-boot".to_string(),
        "d".into(),
        "-cdrom".into(),
        iso.display().to_string(),
        "-netdev".into(),
        "user,id=n0".into(),
        "-device".into(),
        "virtio-net-pci,netdev=n0,mac=52:54:00:00:02:01".into(),
        "-netdev".into(),
        "user,id=n1".into(),
        "-device".into(),
        "virtio-net-pci,netdev=n1,mac=52:54:00:00:02:02".into(),
    ]);
    assert!(
        console.contains("smelt-network: this is node acme-n2 (found by this image's stamp)"),
        "{console}"
    );
    assert!(
        console.contains("smelt-network: node acme-n2: bond0[fast0 fast1] up 802.3ad; front 10.10.0.12/24;"),
        "{console}"
    );
}

/// Regression: `virtio_net` without `virtio_pci` booted with no interfaces and only
/// "no node matches this machine (MACs:)". The build now names the missing transport
/// and the boot says what is wrong; dracut-style groups with module-autoload bring
/// the whole driver set instead.
#[test]
fn a_nic_without_its_transport_is_named_at_build_and_at_boot() {
    let dir = Dir::new();
    client_image(&dir);
    let image = std::fs::read_to_string(dir.path("image.toml")).unwrap();
    dir.write("image.toml", &image.replace("\"virtio_pci\", ", ""));
    let r = dir.build(&["--client", "client.toml"]).ok();
    assert!(
        r.stderr.contains(
            "smelt: warning: element `kernel-modules`: virtio_net drives devices on the virtio bus, but its \
             transport is not in the image: add \"virtio_pci\" to modules, or those devices will never appear\n"
        ),
        "{}",
        r.stderr
    );
    let console = boot_with_nics(&dir, &["52:54:00:00:01:01", "52:54:00:00:01:02"]);
    assert!(
        console.contains(
            "smelt-network: no network interfaces found; is the NIC's driver in kernel-modules? \
             (a virtio NIC needs virtio_pci too)"
        ),
        "{console}"
    );

    let groups = image
        .replace("\"init\", \"kernel-modules\"", "\"init\", \"module-autoload\", \"kernel-modules\"")
        .replace("\"virtio_pci\", \"virtio_net\", ", "\"=drivers/virtio\", \"=drivers/net\", ");
    dir.write("image.toml", &groups);
    let r = dir.build(&["--client", "client.toml"]).ok();
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
    let console = boot_with_nics(&dir, &["52:54:00:00:01:01", "52:54:00:00:01:02"]);
    assert!(console.contains("smelt-network: this is node acme-n1 (found by MAC"), "{console}");
    assert!(console.contains("state: front 10.10.0.11/24 vlan=100"), "{console}");
}
