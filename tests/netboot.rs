//! The netboot output: QEMU boots from the network as the client's nodes, found by their
//! MACs — BIOS through the iPXE ROM QEMU ships and through PXELINUX, UEFI through OVMF
//! and GRUB, iPXE over HTTP from `smelt serve` — each applying its own network; other
//! machines are told they are unknown. The DHCP configs pass dnsmasq's and dhcpd's own
//! checks, and each node's kickstart holds its addresses.

use std::path::Path;

use crate::util::{nics, sh, Dir, Guest, Image};

/// The acme client with a provisioning network, two nodes booting with fixed addresses,
/// and an element shipping a kickstart template; the image boots as the acme ramdisk.
pub fn netboot_image(dir: &Dir, http: Option<&str>) {
    netboot_image_with(dir, http, |image| image);
}

/// As [`netboot_image`], with `more` adding to the image.
pub fn netboot_image_with(dir: &Dir, http: Option<&str>, more: impl FnOnce(Image) -> Image) {
    dir.fixture("examples/acme/client.toml", "client.toml");
    let client = std::fs::read_to_string(dir.path("client.toml"))
        .unwrap()
        .replace("name = \"acme-n1\"\n", "name = \"acme-n1\"\nnetboot-address = \"10.0.2.21\"\n")
        .replace("name = \"acme-n2\"\n", "name = \"acme-n2\"\nnetboot-address = \"10.0.2.22\"\n");
    let http = http.map_or(String::new(), |url| format!("http = \"{url}\"\n"));
    dir.write(
        "client.toml",
        &format!(
            "{client}\n[netboot]\nserver = \"10.0.2.2\"\nsubnet = \"10.0.2.0/24\"\nrange = [\"10.0.2.100\", \
             \"10.0.2.150\"]\nrouter = \"10.0.2.2\"\n{http}"
        ),
    );
    dir.image(&more(
        Image::new("acme", &["base-busybox", "init", "kernel-modules", "network", "kickstart"])
            .outputs(&["netboot"])
            .set("kernel", "\"auto\"")
            .set(
                "cmdline",
                "\"console=ttyS0 panic=-1 inst.ks={{ netboot.url }}nodes/{{ node.name }}/ks.cfg\"",
            )
            .params("kernel-modules", "modules = [\"virtio_pci\", \"virtio_net\", \"bonding\", \"8021q\"]")
            .params("init", "then = \"poweroff\""),
    ));
    dir.write("elements/kickstart/element.toml", "description = \"a kickstart per node\"\n");
    dir.write(
        "elements/kickstart/netboot/ks.cfg.tera",
        "# {{ node.name }}\n{% for v in node.vlans %}network --device={{ v.name }} --vlanid={{ v.id }} \
         --ip={{ v.addresses4[0].ip }} --netmask={{ v.addresses4[0].netmask }}\n{% endfor %}",
    );
    dir.write("elements/kickstart/netboot/README.txt", "served as it is\n");
}

/// QEMU arguments that boot from the first of `macs`' NICs over the network, with
/// QEMU's own TFTP serving `tree` and DHCP naming `bootfile`; with `uefi`, OVMF.
fn pxe(dir: &Dir, tree: &Path, bootfile: &str, macs: &[&str], uefi: bool) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    if uefi {
        let vars = dir.path(&format!("vars-{}.fd", macs[0].replace(':', "")));
        std::fs::copy("/usr/share/OVMF/OVMF_VARS_4M.fd", &vars).expect("ovmf is installed");
        args.extend([
            "-drive".into(),
            "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd".into(),
            "-drive".into(),
            format!("if=pflash,format=raw,file={}", vars.display()),
        ]);
    }
    args.extend(["-boot".into(), "n".into()]);
    let mut nics = nics(macs);
    nics[1] = format!("{},tftp={},bootfile={bootfile}", nics[1], tree.display());
    args.extend(nics);
    args
}

/// One network boot: its name, the boot file DHCP names, the MACs, whether UEFI, and
/// what the console must show.
type Way<'a> = (&'a str, &'a str, &'a [&'a str], bool, String);

/// Boots every way from `tree` at once (QEMU's own limit of two at a time holds), each
/// until its line is on the console; their consoles, in order.
fn boot_all(dir: &Dir, tree: &Path, ways: &[Way]) -> Vec<String> {
    std::thread::scope(|s| {
        let handles: Vec<_> = ways
            .iter()
            .map(|(name, bootfile, macs, uefi, want)| {
                let args = pxe(dir, tree, bootfile, macs, *uefi);
                s.spawn(move || boot_until(dir, name, &args, want, 900))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Boots until `want` is on the console (or `seconds` pass) and returns the console,
/// without the terminal escapes loaders print between characters.
pub fn boot_until(dir: &Dir, name: &str, args: &[String], want: &str, seconds: u64) -> String {
    let serial = dir.path(&format!("{name}.log"));
    let mut guest = Guest::start(512, seconds as u32 + 30, &serial, args);
    let plain = || strip_escapes(&String::from_utf8_lossy(&std::fs::read(&serial).unwrap_or_default()));
    guest.wait_for(seconds, || plain().contains(want));
    plain()
}

fn strip_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                // CSI: ESC [ parameters, then a final letter.
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for p in chars.by_ref() {
                        if p.is_ascii_alphabetic() {
                            break;
                        }
                    }
                }
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

pub fn summary(node: &str, last: &str) -> String {
    format!("smelt-network: node {node}: bond0[fast0 fast1] up 802.3ad; front 10.10.0.{last}/24; back 192.168.50.{last}/24;")
}

#[test]
fn nodes_boot_from_the_network_by_their_macs_bios_and_uefi() {
    let dir = Dir::new();
    netboot_image(&dir, None);
    dir.build(&["--client", "client.toml"]).ok();
    let tree = dir.path("out/acme.netboot");
    let (n1, n2, stranger) = (
        ["52:54:00:00:01:01", "52:54:00:00:01:02"],
        ["52:54:00:00:02:01", "52:54:00:00:02:02"],
        ["52:54:00:00:09:01"],
    );
    let unknown = "smelt: unknown node: MAC 52:54:00:00:09:01 is not in client acme's inventory";
    let ways: [Way; 7] = [
        ("ipxe-n1", "boot.ipxe", &n1, false, summary("acme-n1", "11")),
        ("pxelinux-n2", "pxelinux.0", &n2, false, summary("acme-n2", "12")),
        ("grub-n2", "bootx64.efi", &n2, true, summary("acme-n2", "12")),
        ("grub-n1", "bootx64.efi", &n1, true, summary("acme-n1", "11")),
        ("ipxe-unknown", "boot.ipxe", &stranger, false, unknown.to_string()),
        (
            "pxelinux-unknown",
            "pxelinux.0",
            &stranger,
            false,
            "smelt: unknown node: this machine's MAC".into(),
        ),
        ("grub-unknown", "bootx64.efi", &stranger, true, unknown.to_string()),
    ];
    let consoles = boot_all(&dir, &tree, &ways);
    for ((name, _, _, _, want), console) in ways.iter().zip(&consoles) {
        assert!(console.contains(want), "{name}: no `{want}` on the console:\n{console}");
    }
    // Each loader said which node it booted, and the node knew itself from the command line.
    for (i, node) in [(0, "acme-n1"), (1, "acme-n2"), (2, "acme-n2"), (3, "acme-n1")] {
        let console = &consoles[i];
        assert!(console.contains(&format!("smelt: booting node {node}")), "{}:\n{console}", ways[i].0);
        assert!(
            console.contains(&format!("smelt-network: this is node {node} (found by smelt.node=)")),
            "{}:\n{console}",
            ways[i].0
        );
        assert!(console.contains(&format!("inst.ks=tftp://10.0.2.2/nodes/{node}/ks.cfg")), "{console}");
    }
}

#[test]
fn smelt_serve_hands_a_node_its_kernel_and_initramfs_over_http() {
    let dir = Dir::new();
    let port = free_port();
    let url = format!("http://10.0.2.2:{port}/");
    netboot_image(&dir, Some(&url));
    dir.build(&["--client", "client.toml"]).ok();
    let log = std::fs::File::create(dir.path("serve.log")).unwrap();
    let tftp = free_port();
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_smelt"))
        .args(["serve", "out/acme.netboot", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--tftp", &format!("127.0.0.1:{tftp}")])
        .current_dir(dir.path(""))
        .stderr(log)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..50 {
        if sh(&format!("curl -s -o /dev/null -w '%{{http_code}}' {base}/boot.ipxe || true")) == "200" {
            up = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(up, "smelt serve did not answer");
    // What curl gets is the tree's bytes; nothing outside it, nothing missing.
    let tree = dir.path("out/acme.netboot");
    sh(&format!("curl -sf {base}/initrd.img | cmp - {}", tree.join("initrd.img").display()));
    sh(&format!(
        "curl -sf -r 100-199 {base}/vmlinuz | cmp - <(head -c 200 {} | tail -c 100)",
        tree.join("vmlinuz").display()
    ));
    let code =
        |path: &str| sh(&format!("curl -s -o /dev/null -w '%{{http_code}}' --path-as-is '{base}{path}'"));
    assert_eq!(code("/no-such-file"), "404");
    assert_eq!(code("/../client.toml"), "400");
    assert_eq!(code("/nodes/%2e%2e/%2e%2e/client.toml"), "400");
    // Links are followed only while they stay inside the tree.
    std::os::unix::fs::symlink("/etc/passwd", tree.join("leak")).unwrap();
    std::os::unix::fs::symlink("/etc", tree.join("nodes/escape")).unwrap();
    std::os::unix::fs::symlink("initrd.img", tree.join("alias.img")).unwrap();
    assert_eq!(code("/leak"), "403");
    assert_eq!(code("/nodes/escape/passwd"), "403");
    assert_eq!(code("/alias.img"), "200");
    let leaked = std::process::Command::new("curl")
        .args(["-sf", &format!("tftp://127.0.0.1:{tftp}/leak")])
        .output()
        .unwrap();
    assert!(!leaked.status.success() && leaked.stdout.is_empty(), "TFTP served a link out of the tree");
    // The same by TFTP, as PXE firmware and PXELINUX fetch.
    sh(&format!("curl -sf tftp://127.0.0.1:{tftp}/initrd.img | cmp - {}", tree.join("initrd.img").display()));
    let missing = std::process::Command::new("curl")
        .args(["-sf", &format!("tftp://127.0.0.1:{tftp}/no-such-file")])
        .status()
        .unwrap();
    assert!(!missing.success(), "TFTP served a file that is not there");

    let args = [vec!["-boot".to_string(), "n".into()], {
        let mut n = nics(&["52:54:00:00:02:01", "52:54:00:00:02:02"]);
        n[1] = format!("{},bootfile={url}boot.ipxe", n[1]);
        n
    }]
    .concat();
    let console = boot_until(&dir, "http", &args, &summary("acme-n2", "12"), 300);
    let _ = server.kill();
    let _ = server.wait();
    assert!(console.contains(&summary("acme-n2", "12")), "{console}");
    assert!(console.contains(&format!("inst.ks={url}nodes/acme-n2/ks.cfg")), "{console}");
    let served = std::fs::read_to_string(dir.path("serve.log")).unwrap();
    for want in [
        " acme-n2 GET /ipxe/52-54-00-00-02-01.ipxe 200".to_string(),
        " acme-n2 GET /vmlinuz 200".into(),
        " acme-n2 GET /initrd.img 200".into(),
        "127.0.0.1 TFTP /initrd.img ".into(),
        "TFTP /no-such-file not found".into(),
        "GET /leak 403 (a link out of the served directory)".into(),
        "TFTP /leak refused (a link out of the served directory)".into(),
    ] {
        assert!(served.contains(&want), "no `{want}` in what smelt serve showed:\n{served}");
    }
}

/// A port free for both TCP and UDP at the time of asking.
pub fn free_port() -> u16 {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

#[test]
fn the_dhcp_configs_pass_their_servers_checks_and_each_node_has_its_kickstart() {
    let dir = Dir::new();
    netboot_image(&dir, None);
    dir.build(&["--client", "client.toml", "--source-date-epoch", "1700000000"]).ok();
    let tree = dir.path("out/acme.netboot");
    let conf = tree.join("dnsmasq.conf");
    let checked =
        sh(&format!("dnsmasq --test --conf-file={} --tftp-root={} 2>&1", conf.display(), tree.display()));
    assert!(checked.contains("syntax check OK"), "{checked}");
    let dnsmasq = std::fs::read_to_string(&conf).unwrap();
    for line in [
        "dhcp-range=10.0.2.100,10.0.2.150,255.255.255.0,12h",
        "dhcp-host=52:54:00:00:01:01,52:54:00:00:01:02,acme-n1,10.0.2.21",
        "dhcp-host=52:54:00:00:02:01,52:54:00:00:02:02,acme-n2,10.0.2.22",
        "dhcp-boot=tag:!ipxe,tag:efi64,bootx64.efi,,10.0.2.2",
    ] {
        assert!(dnsmasq.lines().any(|l| l == line), "no `{line}` in dnsmasq.conf:\n{dnsmasq}");
    }
    // ISC dhcpd parses the fragment as it is included.
    dir.write("dhcpd-main.conf", &format!("include \"{}\";\n", tree.join("dhcpd.conf").display()));
    sh(&format!(
        "dhcpd -t -q -cf {} -lf /dev/null -pf {}",
        dir.path("dhcpd-main.conf").display(),
        dir.path("dhcpd.pid").display()
    ));
    let dhcpd = std::fs::read_to_string(tree.join("dhcpd.conf")).unwrap();
    assert!(dhcpd.contains("hardware ethernet 52:54:00:00:02:02;\n  fixed-address 10.0.2.22;"), "{dhcpd}");

    for (node, last) in [("acme-n1", "11"), ("acme-n2", "12")] {
        let ks = std::fs::read_to_string(tree.join(format!("nodes/{node}/ks.cfg"))).unwrap();
        assert_eq!(
            ks,
            format!(
                "# {node}\nnetwork --device=front --vlanid=100 --ip=10.10.0.{last} --netmask=255.255.255.0\n\
                 network --device=back --vlanid=200 --ip=192.168.50.{last} --netmask=255.255.255.0\n"
            )
        );
    }
    assert_eq!(std::fs::read_to_string(tree.join("README.txt")).unwrap(), "served as it is\n");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("out/report.json")).unwrap()).unwrap();
    let out = &report["outputs"][0];
    assert_eq!(out["kind"], "netboot");
    assert_eq!(
        out["bytes"].as_u64().unwrap(),
        sh(&format!("find {} -type f -printf '%s\\n' | awk '{{s += $1}} END {{print s}}'", tree.display()))
            .trim()
            .parse::<u64>()
            .unwrap()
    );

    // The same inputs give the same tree.
    dir.build_into("again", &["--client", "client.toml", "--source-date-epoch", "1700000000"], &[]).ok();
    sh(&format!("diff -r {} {}", tree.display(), dir.path("again/acme.netboot").display()));

    // Budgeted like every output: over it, nothing is published.
    dir.write("size-budget.toml", "[output.netboot]\nmax = \"1MiB\"\n");
    let r = dir.build_into("small", &["--client", "client.toml"], &[]).fails(3);
    assert!(r.stderr.contains("output netboot: "), "{}", r.stderr);
    assert!(!dir.path("small/acme.netboot").exists(), "an over-budget tree was published");
    std::fs::remove_file(dir.path("size-budget.toml")).unwrap();

    // Per node: each node's own initramfs, stamped, named by its configs.
    dir.build_into("pn", &["--client", "client.toml", "--per-node"], &[]).ok();
    let pn = dir.path("pn/acme.netboot");
    assert!(pn.join("initrd-acme-n1.img").is_file() && !pn.join("initrd.img").exists());
    let cfg = std::fs::read_to_string(pn.join("pxelinux.cfg/01-52-54-00-00-02-02")).unwrap();
    assert!(cfg.contains("INITRD initrd-acme-n2.img"), "{cfg}");
    let listed = dir.smelt(&["inspect", pn.join("initrd-acme-n2.img").to_str().unwrap()]).ok().stdout;
    assert!(listed.contains(" /etc/smelt/node\n"), "{listed}");
}

#[test]
fn netboot_needs_a_client_and_a_kernel_and_names_what_is_missing() {
    let dir = Dir::new();
    netboot_image(&dir, None);
    let r = dir.build(&[]).fails(1);
    assert!(
        r.stderr.contains(
            "output `netboot` (in image.toml) boots each node by its MACs: add --client CLIENT.toml"
        ),
        "{}",
        r.stderr
    );
    let image = std::fs::read_to_string(dir.path("image.toml")).unwrap().replace("kernel = \"auto\"\n", "");
    dir.write("image.toml", &image);
    let r = dir.build(&["--client", "client.toml"]).fails(1);
    assert!(
        r.stderr.starts_with(
            "error: output `netboot` boots a kernel, but the image names none\n  --> image.toml:"
        ),
        "{}",
        r.stderr
    );
}

#[test]
fn check_warns_where_dhcp_would_hand_out_an_address_twice_or_none() {
    let dir = Dir::new();
    netboot_image(&dir, None);
    let client = std::fs::read_to_string(dir.path("client.toml")).unwrap();
    // acme-n1's address inside the dynamic range; acme-n2 with none.
    dir.write(
        "client.toml",
        &client
            .replace("netboot-address = \"10.0.2.21\"", "netboot-address = \"10.0.2.120\"")
            .replace("netboot-address = \"10.0.2.22\"\n", ""),
    );
    let r = dir.smelt(&["check", "client.toml"]).ok();
    assert_eq!(r.stdout, "client.toml: ok (client inventory, 2 nodes, 1 warning)\n");
    assert!(
        r.stderr.contains(
            "warning: node acme-n1: boots with 10.0.2.120, inside [netboot] range 10.0.2.100-10.0.2.150: DHCP may \
             hand it to another machine first\n  --> client.toml:11:19"
        ),
        "{}",
        r.stderr
    );
    // Without a range, a node without an address is not answered; two with one address is an error.
    let no_range = std::fs::read_to_string(dir.path("client.toml"))
        .unwrap()
        .replace("range = [\"10.0.2.100\", \"10.0.2.150\"]\n", "");
    dir.write("client.toml", &no_range);
    let r = dir.smelt(&["check", "client.toml"]).ok();
    assert!(
        r.stderr.contains(
            "warning: node acme-n2: DHCP has no address for it at network boot, so it will not be answered"
        ),
        "{}",
        r.stderr
    );
    let twice =
        no_range.replace("name = \"acme-n2\"\n", "name = \"acme-n2\"\nnetboot-address = \"10.0.2.120\"\n");
    dir.write("client.toml", &twice);
    let r = dir.smelt(&["check", "client.toml"]).fails(1);
    assert!(
        r.stderr.contains("error: node acme-n2: boots with 10.0.2.120, as node acme-n1 does"),
        "{}",
        r.stderr
    );
    // A build shows the warnings too.
    dir.write("client.toml", &no_range);
    let r = dir.build(&["--client", "client.toml", "-q"]).ok();
    assert!(r.stderr.contains("smelt: warning: client.toml:"), "{}", r.stderr);
}

#[test]
fn with_unknown_image_a_stranger_boots_the_image_and_says_what_it_sees() {
    let dir = Dir::new();
    netboot_image(&dir, None);
    let client = std::fs::read_to_string(dir.path("client.toml")).unwrap();
    dir.write("client.toml", &format!("{client}unknown = \"discover\"\n"));
    let r = dir.smelt(&["check", "client.toml"]).fails(1);
    assert!(
        r.stderr.contains(
            "[netboot] unknown = `discover`: machines not in the inventory boot `local` or `image`"
        ),
        "{}",
        r.stderr
    );
    dir.write("client.toml", &format!("{client}unknown = \"image\"\n"));
    // The command line names a node's kickstart: a stranger has none, which the build says.
    let r = dir.build(&["--client", "client.toml"]).fails(1);
    assert!(
        r.stderr.contains(
            "image.toml: cmdline, rendered for machines no node has ([netboot] unknown = \"image\"):"
        ),
        "{}",
        r.stderr
    );
    let image = std::fs::read_to_string(dir.path("image.toml")).unwrap().replace(
        "inst.ks={{ netboot.url }}nodes/{{ node.name }}/ks.cfg",
        "{% if node %}inst.ks={{ netboot.url }}nodes/{{ node.name }}/ks.cfg{% endif %}",
    );
    dir.write("image.toml", &image);
    dir.build(&["--client", "client.toml"]).ok();
    let tree = dir.path("out/acme.netboot");
    let default = std::fs::read_to_string(tree.join("pxelinux.cfg/default")).unwrap();
    assert!(
        default.contains("APPEND console=ttyS0 panic=-1\n")
            || default.ends_with("APPEND console=ttyS0 panic=-1"),
        "{default}"
    );
    // The same machine unknown to BIOS iPXE and to UEFI GRUB boots the ramdisk, which finds no node.
    let stranger = ["52:54:00:00:09:01"];
    let seen = "smelt-network: no node matches this machine (MACs: 52:54:00:00:09:01)";
    let ways: [Way; 2] = [
        ("ipxe-stranger", "boot.ipxe", &stranger, false, seen.to_string()),
        ("grub-stranger", "bootx64.efi", &stranger, true, seen.to_string()),
    ];
    let consoles = boot_all(&dir, &tree, &ways);
    for ((name, _, _, _, _), console) in ways.iter().zip(&consoles) {
        assert!(
            // Loaders fold their lines, mid-word or at a space: compared without whitespace.
            squeeze(console).contains(&squeeze(
                "is not in client acme's inventory; booting the image to find out what it is"
            )),
            "{name}:\n{console}"
        );
        assert!(console.contains(seen), "{name}: no `{seen}`:\n{console}");
        assert!(!console.contains("smelt.node="), "{name}: a stranger was given a node:\n{console}");
    }
    // Per node there is no shared ramdisk to boot strangers with.
    let r = dir.build_into("pn", &["--client", "client.toml", "--per-node"], &[]).fails(1);
    assert!(
        r.stderr.contains(
            "--per-node makes only each node's: build without --per-node, or set unknown = \"local\""
        ),
        "{}",
        r.stderr
    );
    assert!(!dir.path("pn/acme.netboot").exists());
}

fn squeeze(text: &str) -> String {
    text.split_whitespace().collect()
}
