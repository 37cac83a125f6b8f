//! The config-drive output, read by cloud-init's own code (Debian's cloud-init package,
//! installed by tests/run.sh): the reader cloud-init runs at boot on a config-2 drive.

use std::path::Path;

use crate::util::{sh, Dir, Image};

#[test]
fn cloud_init_reads_every_nodes_config_drive() {
    assert!(
        Path::new("/usr/bin/python3").exists()
            && sh("/usr/bin/python3 -c 'import cloudinit' 2>&1 || true").is_empty(),
        "cloud-init is not installed: run tests/run.sh as root, or apt-get install cloud-init"
    );
    let dir = Dir::new();
    dir.fixture("examples/acme/client.toml", "client.toml");
    let client = std::fs::read_to_string(dir.path("client.toml")).unwrap().replace(
        "ntp = [\"10.10.0.123\"]",
        "ntp = [\"10.10.0.123\"]\nssh-keys = [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0wmN/Cr3JXqmLW7u+g9pTh+wyqDHpSQEIQczXkVx9q ops@acme\"]",
    );
    dir.write("client.toml", &client);
    dir.image(&Image::new("cd", &["network", "seed"]).outputs(&["config-drive"]));
    dir.write(
        "elements/seed/config-drive/openstack/latest/user_data.tera",
        "#cloud-config\nfqdn: {{ node.fqdn }}\ntimezone: {{ client.timezone }}\n",
    );
    dir.build(&["--client", "client.toml"]).ok();
    for (node, ip) in [("acme-n1", "10.10.0.11"), ("acme-n2", "10.10.0.12")] {
        let iso = dir.path(&format!("out/config-drive/{node}.iso"));
        assert_eq!(
            sh(&format!("isoinfo -d -i {} | grep 'Volume id'", iso.display())).trim(),
            "Volume id: config-2"
        );
        let x = dir.path(&format!("x-{node}"));
        std::fs::create_dir(&x).unwrap();
        sh(&format!("cd {} && bsdtar -xf {}", x.display(), iso.display()));
        let script = format!(
            "import json\n\
             from cloudinit.sources.DataSourceConfigDrive import read_config_drive\n\
             from cloudinit.sources.helpers.openstack import convert_net_json\n\
             r = read_config_drive('{}')\n\
             macs = [l['ethernet_mac_address'] for l in r['networkdata']['links'] if l['type'] == 'phy']\n\
             net = convert_net_json(r['networkdata'], known_macs={{m: 'eth%d' % i for i, m in enumerate(macs)}})\n\
             print(json.dumps({{'hostname': r['metadata']['hostname'], 'keys': r['metadata']['public_keys'], \
             'userdata': r['userdata'].decode(), 'net': net}}, sort_keys=True))\n",
            x.display()
        );
        let out = sh(&format!("/usr/bin/python3 -c \"$(cat <<'PY'\n{script}PY\n)\""));
        let got: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(got["hostname"], format!("{node}.acme.example"));
        assert!(got["keys"]["key-0"].as_str().unwrap().ends_with("ops@acme"));
        assert_eq!(
            got["userdata"],
            format!("#cloud-config\nfqdn: {node}.acme.example\ntimezone: Europe/Madrid\n")
        );
        let config = got["net"]["config"].as_array().unwrap();
        let bond = config.iter().find(|c| c["type"] == "bond").expect("a bond");
        assert_eq!(bond["params"]["bond_mode"], "802.3ad");
        assert_eq!(bond["bond_interfaces"].as_array().unwrap().len(), 2);
        let vlan100 = config.iter().find(|c| c["type"] == "vlan" && c["vlan_id"] == 100).expect("VLAN 100");
        assert_eq!(vlan100["subnets"][0]["address"], ip);
        assert_eq!(vlan100["subnets"][0]["routes"][0]["gateway"], "10.10.0.1");
        assert!(config.iter().any(|c| c["type"] == "nameserver" && c["address"] == "10.10.0.53"));
    }
    println!(
        "config drives read by cloud-init's own reader: {}",
        sh("/usr/bin/python3 -c 'import cloudinit.version as v; print(v.version_string())'").trim()
    );
}

#[test]
fn a_config_drive_needs_a_client() {
    let dir = Dir::new();
    dir.image(&Image::new("cd", &["network"]).outputs(&["config-drive"]));
    let r = dir.build(&[]).fails(1);
    assert_eq!(r.stderr, "smelt: output `config-drive` (in image.toml) makes one drive per node: add --client CLIENT.toml with its nodes\n");
}

/// Regression: a user wanting only each server's config drive (as Ironic deployments
/// do) was refused with "the image lists no elements"; the error stays for outputs
/// that pack a tree.
#[test]
fn config_drives_alone_need_no_elements() {
    let dir = Dir::new();
    dir.fixture("examples/acme/client.toml", "client.toml");
    dir.image(&Image::new("cd", &[]).outputs(&["config-drive"]));
    dir.build(&["--client", "client.toml", "-q"]).ok();
    for node in ["acme-n1", "acme-n2"] {
        let iso = dir.path(&format!("out/config-drive/{node}.iso"));
        let files = sh(&format!("bsdtar -tf {}", iso.display()));
        assert!(files.contains("openstack/latest/network_data.json"), "{node}: {files}");
    }
    dir.image(&Image::new("cd", &[]).outputs(&["config-drive", "iso"]));
    let r = dir.build(&["--client", "client.toml"]).fails(1);
    assert_eq!(
        r.stderr,
        "error: the image lists no elements\n  --> image.toml:3:12\n  |\n3 | elements = []\n  |            ^\n  \
         = help: only config-drive outputs can be made without elements\n1 error in input\n"
    );
}
