//! The network kit, for real: the `ansible` package from PyPI (ansible-core and about a
//! hundred collections, made with Debian's Python) trimmed by python-trim to what
//! examples/netkit's playbook uses, within a BMC's 50 MiB, then run from the read-only
//! CD on a Debian node that has NetworkManager and no Python: the bond, its members,
//! the VLAN on it, forwarding and the time zone are configured for real, not checked.

use std::path::{Path, PathBuf};

use crate::util::{cached, kernel, qemu_sized, sh, Dir, Image};

/// The `ansible` package and everything it depends on, pinned.
const ANSIBLE: &str = "ansible==12.3.0 ansible-core==2.19.14 cffi==2.1.1 cryptography==50.0.2 Jinja2==3.1.6 \
                       MarkupSafe==3.0.4 packaging==26.4 pycparser==3.12 PyYAML==6.0.4 resolvelib==1.2.1";

/// A venv of Debian's Python with the `ansible` package, made once.
fn ansible_package_venv() -> PathBuf {
    cached("ansible-12.3.0-venv-debian", |dir| {
        sh(&format!(
            "/usr/bin/python3 -m venv {d} && {d}/bin/pip install -q --disable-pip-version-check --no-cache-dir {ANSIBLE}",
            d = dir.display()
        ));
    })
}

/// examples/netkit in `dir`, built with the cached venv into `out` (zisofs, as the
/// example has it) and `plain` (files stored as they are).
fn net_kit(dir: &Dir) {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/netkit");
    sh(&format!("cp -r {}/. {}", example.display(), dir.path("").display()));
    let image = std::fs::read_to_string(dir.path("image.toml")).unwrap();
    dir.write("plain.toml", &image.replace("iso-compression = \"zisofs\"", "iso-compression = \"none\""));
    let payload = format!("agent.payload={}", ansible_package_venv().display());
    for (file, out) in [("image.toml", "out"), ("plain.toml", "plain")] {
        let args = ["build", file, "--elements-path", "elements", "-o", out, "--set", &payload];
        dir.smelt_env(&args, &[("SOURCE_DATE_EPOCH", "1700000000")]).ok();
    }
}

/// A Debian node with NetworkManager (udev and D-Bus started by its start-up step) and
/// no Python, the kernel's NIC, bond, VLAN and CD-ROM modules, which mounts the CD
/// read-only, runs the kit's playbook and shows what the node's network became.
fn node(dir: &Dir) -> PathBuf {
    dir.image_at(
        "node.toml",
        &Image::new("node", &["base-debian", "init", "kernel-modules", "runner"])
            .params("base-debian", "packages = [\"network-manager\", \"dbus\", \"udev\", \"kmod\", \"procps\", \"tzdata\", \"iproute2\"]")
            .params("init", "then = \"poweroff\"")
            .params(
                "kernel-modules",
                "modules = [\"virtio_pci\", \"virtio_net\", \"bonding\", \"8021q\", \"ata_piix\", \"sr_mod\", \"isofs\"]",
            ),
    );
    dir.write("node-elements/runner/element.toml", "description = \"runs the network kit from the CD\"\n");
    dir.write(
        "node-elements/runner/root/etc/smelt/init.d/50-netkit",
        "#!/bin/sh\n\
         /lib/systemd/systemd-udevd --daemon && udevadm trigger --action=add && udevadm settle --timeout=60\n\
         mkdir -p /run/dbus && dbus-daemon --system --fork && NetworkManager\n\
         i=0; until nmcli -t general status >/dev/null 2>&1 || [ $i -ge 120 ]; do sleep 1; i=$((i+1)); done\n\
         command -v python3 >/dev/null || [ -e /usr/bin/python3 ] || echo 'netkit: this node has no python'\n\
         i=0; while [ ! -b /dev/sr0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done\n\
         at=/media/kit-$(cut -c1-8 /proc/sys/kernel/random/uuid)\n\
         mkdir -p \"$at\" /tmp/home && mount -t iso9660 -o ro /dev/sr0 \"$at\" || exit 1\n\
         echo \"netkit: mounted read-only at $at\"\n\
         cd \"$at\" && HOME=/tmp/home ANSIBLE_NOCOLOR=1 ./ansible/bin/ansible-playbook -i inventory.ini site.yml -e '{\"nics\": [\"eth0\", \"eth1\"]}'\n\
         echo \"netkit: ansible-playbook exited $?\"\n\
         nmcli --colors no -t -f NAME,TYPE connection | sed 's/^/netkit: connection /'\n\
         echo \"netkit: bond $(cat /sys/class/net/bond0/bonding/mode)\"\n\
         grep '^bond0' /proc/net/vlan/config | tr -s ' ' | sed 's/^/netkit: vlan /'\n\
         echo \"netkit: ip_forward $(cat /proc/sys/net/ipv4/ip_forward)\"\n\
         echo \"netkit: timezone $(cat /etc/timezone)\"\n",
    );
    dir.write("node-budget.toml", "[output.initramfs]\nmax = \"400MiB\"\nmax-unpacked = \"2GiB\"\n");
    let node_toml = std::fs::read_to_string(dir.path("node.toml")).unwrap();
    dir.write("node.toml", &node_toml.replacen("[image]\n", "[image]\nbudget = \"node-budget.toml\"\n", 1));
    // Bootstrapped once: the cache outlives the test.
    let cache = cached("smelt-cache-netkit-node", |d| std::fs::create_dir_all(d).unwrap());
    let args = ["build", "node.toml", "--elements-path", "node-elements", "-o", "node", "-q"];
    dir.smelt_env(&args, &[("SMELT_CACHE_DIR", cache.to_str().unwrap())]).ok();
    dir.path("node/node.cpio.zst")
}

#[test]
fn the_ansible_package_trimmed_to_its_playbook_configures_a_bond_with_a_vlan_on_a_node_without_python() {
    assert_eq!(unsafe { libc::geteuid() }, 0, "the node's bootstrap needs root: run tests/run.sh as root");
    let dir = Dir::heavy();
    net_kit(&dir);
    let (iso, plain) = (dir.path("out/netkit.iso"), dir.path("plain/netkit.iso"));
    let (packed_bytes, plain_bytes) =
        (std::fs::metadata(&iso).unwrap().len(), std::fs::metadata(&plain).unwrap().len());
    assert!(plain_bytes <= 50 << 20, "the plain ISO is {plain_bytes} bytes, over a BMC's 50 MiB");
    assert!(packed_bytes <= 35 << 20, "the zisofs ISO is {packed_bytes} bytes, over 35 MiB");

    // What each collection kept, and which went whole.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("out/report.json")).unwrap()).unwrap();
    let trims = report["trim"].as_array().unwrap();
    let kept = |collection: &str| -> Vec<String> {
        let rule = format!("ansible collection {collection}: what no playbook uses");
        let t = trims
            .iter()
            .find(|t| t["rule"] == rule.as_str())
            .unwrap_or_else(|| panic!("no `{rule}` in {trims:?}"));
        t["kept"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_string()).collect()
    };
    assert_eq!(kept("community.general"), ["modules/nmcli", "modules/timezone"]);
    assert_eq!(kept("ansible.posix"), ["modules/sysctl"]);
    let gone = trims.iter().find(|t| t["rule"] == "ansible collections no playbook uses").unwrap();
    let gone: Vec<&str> = gone["paths"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    for collection in ["cisco.ios", "amazon.aws", "fortinet.fortios", "community.docker"] {
        assert!(gone.contains(&collection), "{collection} is not among the removed: {gone:?}");
    }
    let listing = sh(&format!("bsdtar -tf {}", plain.display()));
    assert!(
        listing.contains("ansible_collections/community/general/plugins/modules/nmcli.py"),
        "nmcli is gone"
    );
    assert!(!listing.contains("ansible_collections/cisco"), "cisco's collections are still in the kit");
    assert!(!listing.contains("ansible/modules/apt.py"), "ansible-core's apt module is still in the kit");

    let initrd = node(&dir);
    let k = kernel();
    let mut args: Vec<String> = [
        "-kernel",
        k.to_str().unwrap(),
        "-initrd",
        initrd.to_str().unwrap(),
        "-append",
        "console=ttyS0 panic=-1 net.ifnames=0",
        "-cdrom",
        iso.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec();
    args.extend(crate::util::nics(&["52:54:00:00:07:01", "52:54:00:00:07:02"]));
    let console = qemu_sized(1536, 2400, &args);
    for want in [
        "netkit: this node has no python",
        "netkit: mounted read-only at /media/kit-",
        "localhost                  : ok=6    changed=5    unreachable=0    failed=0",
        "netkit: ansible-playbook exited 0",
        "netkit: connection bond0:bond",
        "netkit: connection bond0-eth0:802-3-ethernet",
        "netkit: connection bond0-eth1:802-3-ethernet",
        "netkit: connection bond0.100:vlan",
        "netkit: bond 802.3ad 4",
        "netkit: vlan bond0.100 | 100 | bond0",
        "netkit: ip_forward 1",
        "netkit: timezone Europe/Madrid",
    ] {
        assert!(console.contains(want), "no `{want}` on the console:\n{console}");
    }
}

/// A module the venv does not have is a build error at the playbook's line, naming
/// what is missing, every one at once.
#[test]
fn a_playbook_naming_what_the_venv_lacks_fails_at_its_line() {
    let dir = Dir::heavy();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/netkit");
    sh(&format!("cp -r {}/. {}", example.display(), dir.path("").display()));
    dir.write(
        "elements/playbook/root/site.yml",
        "- hosts: node\n  tasks:\n    - name: fine\n      community.general.timezone: { name: UTC }\n\
         \x20   - name: misspelt\n      community.general.nmclii: { conn_name: x }\n\
         \x20   - name: a collection the venv lacks\n      acme.network.bond: {}\n\
         \x20   - name: a filter nobody has\n      ansible.builtin.debug: { msg: \"{{ 1 | acme.network.cidr }}\" }\n",
    );
    let payload = format!("agent.payload={}", ansible_package_venv().display());
    let r = dir.build(&["--set", &payload]).fails(1);
    for want in [
        "site.yml:6: module `community.general.nmclii`: collection `community.general` has no module `nmclii`",
        "site.yml:8: module `acme.network.bond`: collection `acme.network` (of module `acme.network.bond`) is not in the venv",
        "site.yml:10: filter `acme.network.cidr`: collection `acme.network` (of filter `acme.network.cidr`) is not in the venv",
    ] {
        assert!(r.stderr.contains(want), "no `{want}` in:\n{}", r.stderr);
    }
}
