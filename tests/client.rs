//! Every client inventory check, each with its exact message and place, all reported at
//! once by `smelt check` and before `smelt build` does any work.

use crate::util::{Dir, Image};

/// (message, line, column) of every `error:` in the output.
fn errors(stderr: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = stderr.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if let Some(msg) = l.strip_prefix("error: ") {
            let at = lines[i + 1].rsplit(':').take(2).collect::<Vec<_>>();
            out.push((msg.to_string(), at[1].parse().unwrap(), at[0].parse().unwrap()));
        }
    }
    out
}

#[test]
fn every_inventory_problem_is_reported_at_its_place() {
    let dir = Dir::new();
    dir.fixture("tests/fixtures/bad-client.toml", "client.toml");
    let r = dir.smelt(&["check", "client.toml"]).fails(1);
    let expected: Vec<(&str, usize, usize)> = vec![
        ("client: `10.0.0.300` is not an IP address", 3, 8),
        ("node n1: link `eth2`: `52:54:00:zz:00:03` is not a MAC address", 11, 26),
        ("node n1: VLAN `front`: id 4095 is outside 1-4094", 20, 42),
        ("node n1: bond `bond0`: `primary` does not apply to mode 802.3ad; it applies to active-backup, balance-tlb, balance-alb", 14, 77),
        ("node n1: link `eth0` is in two bonds, `bond0` and `bond1`", 15, 32),
        ("node n1: bond `bond1`: unknown link `eth9`", 15, 40),
        ("node n1: bond `bond1`: `lacp-rate` does not apply to mode active-backup; it applies to 802.3ad", 15, 85),
        ("node n1: bond `bond2` has no members", 16, 31),
        ("node n1: bond `bond2`: unknown mode `round-robin`", 16, 42),
        ("node n1: bond `bond3`: `xmit-hash-policy` does not apply to mode balance-rr; it applies to balance-xor, 802.3ad, balance-tlb", 17, 81),
        ("node n1: VLAN `back`: unknown link or bond `bond7`", 21, 27),
        ("node n1: link `eth1` is a member of bond `bond0` and cannot carry addresses, DHCP or a gateway", 10, 3),
        ("node n1: `front`: 10.0.0.0 is the network address of 10.0.0.0/24, not a host in it", 20, 61),
        ("node n1: `front`: gateway 10.9.9.1 is not on a connected prefix (10.0.0.0/24)", 20, 87),
        ("node n1: `back`: `10.0.2.5/33` is not an address with its prefix length, such as 10.0.0.5/24", 21, 59),
        ("node n1: the name is used by node #1 too", 25, 8),
        ("node n1: serial `S1` is node n1's too", 26, 10),
        ("node n1: link `eth0`: MAC 52:54:00:00:00:01 is also node n1's link `eth0`", 28, 26),
        ("node n1: `eth0`: address 10.0.1.5 is also node n1's on `eth1`", 28, 60),
        ("node n1: `eth0`: route via 10.60.0.1 is not on a connected prefix of the node", 28, 137),
    ];
    let got = errors(&r.stderr);
    let got: Vec<(&str, usize, usize)> = got.iter().map(|(m, l, c)| (m.as_str(), *l, *c)).collect();
    assert_eq!(got, expected);
    assert!(r.stderr.ends_with("20 errors in input\n"), "{}", r.stderr);

    // build runs the same checks before anything else.
    dir.image(&Image::new("x", &["network"]));
    let b = dir.smelt(&["build", "image.toml", "--client", "client.toml", "-o", "out"]).fails(1);
    assert_eq!(errors(&b.stderr).len(), 20);
    assert!(!dir.path("out").exists(), "nothing is written for a bad inventory");
}

#[test]
fn more_inventory_problems() {
    let dir = Dir::new();
    dir.write(
        "client.toml",
        r#"[client]
name = "acme"
timezone = "Europe/../etc"

[[nodes]]
name = "-bad-"
links = [
  { name = "a-very-long-interface-name", mac = "52:54:00:00:00:01", mtu = 20 },
  { name = "eth1", mac = "52:54:00:00:00:02", addresses = ["10.0.0.5/24"], gateway = "10.0.0.1", gateway6 = "10.0.0.2" },
  { name = "eth2", mac = "52:54:00:00:00:03", addresses = ["10.1.0.5/24"], gateway = "10.1.0.1" },
]
bonds = [{ name = "bond0", members = ["eth0x"], mode = "active-backup", primary = "eth1" }]
vlans = [
  { name = "v1", link = "eth2", id = 7 },
  { name = "v2", link = "eth2", id = 7 },
  { name = "v3", link = "v1", id = 8 },
]
"#,
    );
    let r = dir.smelt(&["check", "client.toml"]).fails(1);
    let got = errors(&r.stderr);
    let msgs: Vec<&str> = got.iter().map(|(m, _, _)| m.as_str()).collect();
    assert_eq!(
        msgs,
        [
            "client: `Europe/../etc` is not a time zone name such as `Europe/Madrid`",
            "node -bad-: `-bad-` is not a valid host name",
            "node -bad-: `a-very-long-interface-name` is not a Linux interface name",
            "node -bad-: bond `bond0`: unknown link `eth0x`",
            "node -bad-: bond `bond0`: primary `eth1` is not one of its members",
            "node -bad-: VLAN id 7 is used twice on `eth2`",
            "node -bad-: VLAN `v3` sits on VLAN `v1`; put it on a link or bond",
            "node -bad-: `a-very-long-interface-name`: MTU 20 is outside 68-65535",
            "node -bad-: `eth1`: gateway6 `10.0.0.2` is not an IPv6 address",
            "node -bad-: `eth2` and `eth1` both have an IPv4 default gateway; keep one",
        ]
    );
}

#[test]
fn bmc_passwords_never_sit_in_the_inventory_nor_show_in_its_errors() {
    let dir = Dir::new();
    dir.fixture("examples/acme/client.toml", "client.toml");
    let acme = std::fs::read_to_string(dir.path("client.toml")).unwrap();
    let with_bmc = |n1: &str| {
        format!(
            "{}\n[bmc]\nusername = \"admin\"\npassword-env = \"ACME_BMC_PASSWORD\"\ninsecure = true\n",
            acme.replace("name = \"acme-n1\"\n", &format!("name = \"acme-n1\"\nbmc = {n1}\n"))
        )
    };
    // The client's defaults and the node's URL: a valid BMC.
    dir.write("client.toml", &with_bmc("{ url = \"https://10.1.0.21\" }"));
    dir.smelt(&["check", "client.toml"]).ok();
    // A password written in the file: refused at its place, and not printed.
    dir.write("client.toml", &with_bmc("{ url = \"https://10.1.0.21\", password = \"s3cret-Pw\" }"));
    let r = dir.smelt(&["check", "client.toml"]).fails(1);
    assert!(r.stderr.contains("node acme-n1: a BMC password written in client.toml"), "{}", r.stderr);
    assert!(r.stderr.contains("password-env = \"ACME_BMC_PASSWORD\""), "{}", r.stderr);
    assert!(!r.stderr.contains("s3cret-Pw"), "{}", r.stderr);
    // So does build, before any work.
    dir.image(&Image::new("acme", &["base-busybox"]));
    let b = dir.build(&["--client", "client.toml"]).fails(1);
    assert!(!b.stderr.contains("s3cret-Pw") && b.stderr.contains("a BMC password"), "{}", b.stderr);
    // A plain-HTTP BMC is allowed, with a warning.
    dir.write("client.toml", &with_bmc("{ url = \"http://10.1.0.21\" }"));
    let w = dir.smelt(&["check", "client.toml"]).ok();
    assert!(
        w.stderr.contains("is plain HTTP: its password crosses the network in the clear"),
        "{}",
        w.stderr
    );
}
