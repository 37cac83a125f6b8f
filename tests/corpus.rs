//! A corpus of broken inputs — TOML, params, command lines, elements, inventories,
//! budgets, paths, sizes — each run through smelt. For every one: the exit code it
//! should have, no panic, a message naming the file, element, node or param at fault,
//! at most 40 lines of stderr, and nothing published in the output directory.

use crate::util::Dir;

/// One broken input: files to write (`image.toml` defaults to an image of `init`; a
/// text `symlink:T` makes a symlink to T), the command (default: build), the exit
/// code, and what the message must name.
struct Case {
    name: &'static str,
    files: &'static [(&'static str, &'static str)],
    args: &'static [&'static str],
    code: i32,
    names: &'static [&'static str],
}

const IMAGE: &str = "[image]\nname = \"c\"\nelements = [\"init\"]\n";
const BUILD: &[&str] = &["build", "image.toml", "--elements-path", "elements", "-o", "out"];
const CLIENT: &[&str] =
    &["build", "image.toml", "--elements-path", "elements", "-o", "out", "--client", "client.toml"];

/// An image of `init` and `e` (an element the case writes).
const WITH_E: &str = "[image]\nname = \"c\"\nelements = [\"init\", \"e\"]\n";

const fn case(
    name: &'static str,
    files: &'static [(&'static str, &'static str)],
    code: i32,
    names: &'static [&'static str],
) -> Case {
    Case { name, files, args: BUILD, code, names }
}

const fn with_args(
    name: &'static str,
    files: &'static [(&'static str, &'static str)],
    args: &'static [&'static str],
    code: i32,
    names: &'static [&'static str],
) -> Case {
    Case { name, files, args, code, names }
}

const CASES: &[Case] = &[
    // image.toml
    case("unclosed table", &[("image.toml", "[image\nname = \"c\"\n")], 1, &["image.toml:1:"]),
    case("no name", &[("image.toml", "[image]\nelements = [\"init\"]\n")], 1, &["image.toml", "name"]),
    case("name with a space", &[("image.toml", "[image]\nname = \"a b\"\nelements = [\"init\"]\n")], 1, &["image.toml:2:", "a b"]),
    case("elements not a list", &[("image.toml", "[image]\nname = \"c\"\nelements = \"init\"\n")], 1, &["image.toml:3:"]),
    case("misspelt key", &[("image.toml", "[image]\nname = \"c\"\nelements = [\"init\"]\ncompresion = \"xz\"\n")], 1, &["image.toml:4:1", "compresion"]),
    case("unknown output", &[("image.toml", "[image]\nname = \"c\"\nelements = [\"init\"]\noutputs = [\"isoo\"]\n")], 1, &["image.toml:4:", "isoo"]),
    case("output twice", &[("image.toml", "[image]\nname = \"c\"\nelements = [\"init\"]\noutputs = [\"iso\", \"iso\"]\n")], 1, &["image.toml:4:", "twice"]),
    case("unknown compression", &[("image.toml", "[image]\nname = \"c\"\nelements = [\"init\"]\ncompression = \"lz4\"\n")], 1, &["image.toml:4:", "lz4"]),
    case("level out of range", &[("image.toml", "[image]\nname = \"c\"\nelements = [\"init\"]\ncompression-level = 30\n")], 1, &["image.toml:4:", "30"]),
    case("lower-case label", &[("image.toml", "[image]\nname = \"c\"\nelements = [\"init\"]\niso-label = \"kit\"\n")], 1, &["image.toml:4:", "iso-label"]),
    case("budget file missing", &[("image.toml", "[image]\nname = \"c\"\nelements = [\"init\"]\nbudget = \"nope.toml\"\n")], 1, &["nope.toml", "image.toml"]),
    case("params of an absent element", &[("image.toml", "[image]\nname = \"c\"\nelements = [\"init\"]\n[params.tls]\nhostname = \"x\"\n")], 1, &["image.toml:4:", "params.tls"]),
    case("unknown param", &[("image.toml", "[image]\nname = \"c\"\nelements = [\"init\"]\n[params.init]\nthan = \"shell\"\n")], 1, &["image.toml:5:", "than", "then"]),
    case("param of the wrong type", &[("image.toml", "[image]\nname = \"c\"\nelements = [\"init\"]\n[params.init]\nthen = 5\n")], 1, &["image.toml:5:", "then", "poweroff"]),
    case("param not a choice", &[("image.toml", "[image]\nname = \"c\"\nelements = [\"init\"]\n[params.init]\nthen = \"sideways\"\n")], 1, &["image.toml:5:", "sideways", "reboot"]),
    case("missing kernel", &[("image.toml", "[image]\nname = \"c\"\nelements = [\"init\"]\noutputs = [\"ramdisk-tar\"]\nkernel = \"vmlinuz-none\"\n")], 1, &["vmlinuz-none"]),
    case("ramdisk-tar without kernel", &[("image.toml", "[image]\nname = \"c\"\nelements = [\"init\"]\noutputs = [\"ramdisk-tar\"]\n")], 1, &["ramdisk-tar", "kernel"]),
    case("config-drive without client", &[("image.toml", "[image]\nname = \"c\"\nelements = [\"init\"]\noutputs = [\"config-drive\"]\n")], 1, &["config-drive", "--client"]),
    case("no elements", &[("image.toml", "[image]\nname = \"c\"\nelements = []\n")], 1, &["image.toml:3:", "no elements"]),
    case("bad secrets glob", &[("image.toml", "[image]\nname = \"c\"\nelements = [\"init\"]\n[secrets]\nallow = [\"etc/[\"]\n")], 1, &["image.toml:5:", "etc/["]),
    case("image not found", &[("other.toml", IMAGE)], 1, &["image.toml"]),
    // The command line
    with_args("--set without =", &[("image.toml", IMAGE)], &["build", "image.toml", "--set", "init"], 2, &["--set init"]),
    with_args("--set of an absent element", &[("image.toml", IMAGE)], &["build", "image.toml", "--set", "tls.days=3"], 2, &["--set tls.days=3", "tls"]),
    with_args("--set of the wrong type", &[("image.toml", IMAGE)], &["build", "image.toml", "--set", "init.then=[1]"], 2, &["--set init.then=[1]", "then"]),
    with_args("--set unknown param", &[("image.toml", IMAGE)], &["plan", "image.toml", "--set", "init.when=now"], 2, &["--set init.when=now", "when"]),
    with_args("epoch not a number", &[("image.toml", IMAGE)], &["build", "image.toml", "--source-date-epoch", "soon"], 2, &["soon"]),
    with_args("--per-node without client", &[("image.toml", IMAGE)], &["build", "image.toml", "--per-node"], 1, &["--per-node", "--client"]),
    // Elements
    case("missing element", &[("image.toml", WITH_E)], 1, &["`e`", "not found"]),
    case("cycle", &[("image.toml", WITH_E), ("elements/e/element-deps", "f\n"), ("elements/f/element-deps", "e\n")], 1, &["e => f => e"]),
    case("manifest syntax", &[("image.toml", WITH_E), ("elements/e/element.toml", "description = \n")], 1, &["elements/e/element.toml:1:"]),
    case("manifest unknown key", &[("image.toml", WITH_E), ("elements/e/element.toml", "description = \"e\"\ndepend = [\"x\"]\n")], 1, &["elements/e/element.toml:2:1", "depend"]),
    case("manifest param type", &[("image.toml", WITH_E), ("elements/e/element.toml", "description = \"e\"\n[params.n]\ntype = \"float\"\n")], 1, &["elements/e/element.toml:3:", "float"]),
    case("manifest default off its type", &[("image.toml", WITH_E), ("elements/e/element.toml", "description = \"e\"\n[params.n]\ntype = \"int\"\ndefault = \"ten\"\n")], 1, &["elements/e/element.toml:4:", "`n`"]),
    case("device kind", &[("image.toml", WITH_E), ("elements/e/element.toml", "description = \"e\"\n[[devices]]\npath = \"dev/x\"\nkind = \"pipe\"\n")], 1, &["elements/e/element.toml:4:", "pipe"]),
    case("device escapes", &[("image.toml", WITH_E), ("elements/e/element.toml", "description = \"e\"\n[[devices]]\npath = \"../x\"\nkind = \"fifo\"\n")], 1, &["elements/e/element.toml:3:", "escapes"]),
    case("device mode", &[("image.toml", WITH_E), ("elements/e/element.toml", "description = \"e\"\n[[devices]]\npath = \"dev/x\"\nkind = \"fifo\"\nmode = \"rw\"\n")], 1, &["elements/e/element.toml:5:", "rw"]),
    case("prune glob", &[("image.toml", WITH_E), ("elements/e/element.toml", "description = \"e\"\n[prune]\nremove = [\"usr/[\"]\n")], 1, &["elements/e/element.toml:3:", "usr/["]),
    case("permission mode", &[("image.toml", WITH_E), ("elements/e/element.toml", "description = \"e\"\n[[permissions]]\npath = \"etc\"\nmode = \"999\"\n")], 1, &["elements/e/element.toml:4:", "999"]),
    case("conflict", &[("image.toml", WITH_E), ("elements/e/element.toml", "description = \"e\"\nconflicts = [\"init\"]\n")], 1, &["`e`", "init", "conflict"]),
    case("hook name twice", &[("image.toml", "[image]\nname = \"c\"\nelements = [\"e\", \"f\"]\n"), ("elements/e/post-root.d/10-x", "#!/bin/sh\n"), ("elements/f/post-root.d/10-x", "#!/bin/sh\n")], 1, &["10-x", "`e`", "`f`"]),
    case("failing hook", &[("image.toml", WITH_E), ("elements/e/post-root.d/10-fail", "#!/bin/sh\necho broken >&2\nexit 3\n")], 1, &["`e`", "post-root.d", "10-fail", "status 3", "broken"]),
    case("hook without interpreter", &[("image.toml", WITH_E), ("elements/e/post-root.d/10-x", "#!/no/such/sh\n")], 1, &["`e`", "10-x", "interpreter"]),
    case("template syntax", &[("image.toml", WITH_E), ("elements/e/element.toml", "description = \"e\"\n"), ("elements/e/templates/etc/x.tera", "{{ nope }\n")], 1, &["`e`", "templates/etc/x.tera"]),
    case("template undefined", &[("image.toml", WITH_E), ("elements/e/element.toml", "description = \"e\"\n"), ("elements/e/templates/etc/x.tera", "{{ params.nope }}\n")], 1, &["`e`", "templates/etc/x.tera", "nope"]),
    case("package-installs not YAML", &[("image.toml", WITH_E), ("elements/e/package-installs.yaml", "jq: [\n")], 1, &["`e`", "package-installs.yaml"]),
    case("package-installs phase", &[("image.toml", WITH_E), ("elements/e/package-installs.yaml", "jq:\n  phase: install\n")], 1, &["`e`", "package-installs.yaml", "install"]),
    case("pkg-map not JSON", &[("image.toml", WITH_E), ("elements/e/package-installs.yaml", "jq:\n"), ("elements/e/pkg-map", "{family: x}\n")], 1, &["`e`", "pkg-map"]),
    case("source-repository malformed", &[("image.toml", WITH_E), ("elements/e/source-repository-x", "x git\n")], 1, &["`e`", "source-repository-x"]),
    // Built-in elements' params
    case("unknown program", &[("image.toml", "[image]\nname = \"c\"\nelements = [\"base-host\"]\n[params.base-host]\nbinaries = [\"no-such-tool\"]\n")], 1, &["base-host", "no-such-tool"]),
    case("misspelt module", &[("image.toml", "[image]\nname = \"c\"\nelements = [\"kernel-modules\"]\n[params.kernel-modules]\nmodules = [\"virtio_nte\"]\n")], 1, &["kernel-modules", "virtio_nte", "virtio_net"]),
    case("empty module group", &[("image.toml", "[image]\nname = \"c\"\nelements = [\"kernel-modules\"]\n[params.kernel-modules]\nmodules = [\"=drivers/nope\"]\n")], 1, &["kernel-modules", "=drivers/nope"]),
    case("firmware not there", &[("image.toml", "[image]\nname = \"c\"\nelements = [\"kernel-modules\"]\n[params.kernel-modules]\nmodules = [\"virtio_net\"]\nfirmware = [\"nope/*\"]\n")], 1, &["kernel-modules", "nope/*"]),
    case("unknown renderer", &[("image.toml", "[image]\nname = \"c\"\nelements = [\"network\"]\n[params.network]\nrenderers = [\"wicked\"]\n")], 1, &["image.toml:5:", "renderers", "wicked"]),
    with_args("network templates missing", &[("image.toml", "[image]\nname = \"c\"\nelements = [\"network\"]\n[params.network]\ntemplates = \"mine\"\n"), ("client.toml", "[client]\nname = \"acme\"\n[[nodes]]\nname = \"n1\"\nlinks = [{ name = \"e0\", mac = \"52:54:00:00:00:01\", dhcp = true }]\n")], CLIENT, 1, &["network", "templates", "mine"]),
    case("venv missing", &[("image.toml", "[image]\nname = \"c\"\nelements = [\"python-trim\"]\n[params.python-trim]\nvenv = \"/opt/venv\"\n")], 1, &["python-trim", "/opt/venv"]),
    case("inject bad base64", &[("image.toml", "[image]\nname = \"c\"\nelements = [\"inject-files\"]\n[params.inject-files.files]\n\"/etc/x\" = { content-base64 = \"@@@\" }\n")], 1, &["inject-files", "/etc/x"]),
    case("inject climbs out", &[("image.toml", "[image]\nname = \"c\"\nelements = [\"inject-files\"]\n[params.inject-files.files]\n\"../../etc/x\" = { content-base64 = \"eA==\" }\n")], 1, &["inject-files", "../../etc/x"]),
    case("tls key type", &[("image.toml", "[image]\nname = \"c\"\nelements = [\"tls\"]\n[params.tls]\nkey-type = \"rsa\"\n")], 1, &["image.toml:5:", "key-type", "ed25519"]),
    case("tls cert without key", &[("image.toml", "[image]\nname = \"c\"\nelements = [\"tls\"]\n[params.tls]\ncert = \"c.pem\"\n"), ("c.pem", "x")], 1, &["tls", "key"]),
    case("dev-user name", &[("image.toml", "[image]\nname = \"c\"\nelements = [\"dev-user\"]\n[params.dev-user]\nname = \"a b\"\n")], 1, &["dev-user", "a b"]),
    case("time zone", &[("image.toml", "[image]\nname = \"c\"\nelements = [\"timezone\"]\n[params.timezone]\nzone = \"Mars/Olympus\"\n")], 1, &["timezone", "Mars/Olympus"]),
    case("agent payload missing", &[("image.toml", "[image]\nname = \"c\"\nelements = [\"agent\"]\n[params.agent]\npayload = \"nope\"\n")], 1, &["agent", "nope"]),
    case("rootfs missing", &[("image.toml", "[image]\nname = \"c\"\nelements = [\"base-rootfs\"]\n[params.base-rootfs]\nsource = \"nope.tar\"\n")], 1, &["base-rootfs", "nope.tar"]),
    // Client inventories
    with_args("client without nodes", &[("image.toml", IMAGE), ("client.toml", "[client]\nname = \"acme\"\n")], CLIENT, 1, &["client.toml:1:", "no nodes"]),
    with_args("bad MAC", &[("image.toml", IMAGE), ("client.toml", "[client]\nname = \"acme\"\n[[nodes]]\nname = \"n1\"\nlinks = [{ name = \"e0\", mac = \"52:54:00:zz:00:01\" }]\n")], CLIENT, 1, &["client.toml:5:", "n1", "52:54:00:zz:00:01"]),
    with_args("MAC on two nodes", &[("image.toml", IMAGE), ("client.toml", "[client]\nname = \"acme\"\n[[nodes]]\nname = \"n1\"\nlinks = [{ name = \"e0\", mac = \"52:54:00:00:00:01\" }]\n[[nodes]]\nname = \"n2\"\nlinks = [{ name = \"e0\", mac = \"52:54:00:00:00:01\" }]\n")], CLIENT, 1, &["client.toml:8:", "n2", "n1"]),
    with_args("gateway off the subnet", &[("image.toml", IMAGE), ("client.toml", "[client]\nname = \"acme\"\n[[nodes]]\nname = \"n1\"\nlinks = [{ name = \"e0\", mac = \"52:54:00:00:00:01\", addresses = [\"10.0.0.5/24\"], gateway = \"10.9.0.1\" }]\n")], CLIENT, 1, &["client.toml:5:", "n1", "10.9.0.1"]),
    with_args("unknown bond member", &[("image.toml", IMAGE), ("client.toml", "[client]\nname = \"acme\"\n[[nodes]]\nname = \"n1\"\nlinks = [{ name = \"e0\", mac = \"52:54:00:00:00:01\" }]\nbonds = [{ name = \"bond0\", members = [\"e0\", \"e9\"], mode = \"active-backup\" }]\n")], CLIENT, 1, &["client.toml:6:", "n1", "e9"]),
    with_args("VLAN id", &[("image.toml", IMAGE), ("client.toml", "[client]\nname = \"acme\"\n[[nodes]]\nname = \"n1\"\nlinks = [{ name = \"e0\", mac = \"52:54:00:00:00:01\" }]\nvlans = [{ name = \"v\", link = \"e0\", id = 5000 }]\n")], CLIENT, 1, &["client.toml:6:", "n1", "5000"]),
    with_args("bad CIDR", &[("image.toml", IMAGE), ("client.toml", "[client]\nname = \"acme\"\n[[nodes]]\nname = \"n1\"\nlinks = [{ name = \"e0\", mac = \"52:54:00:00:00:01\", addresses = [\"10.0.0.5/33\"] }]\n")], CLIENT, 1, &["client.toml:5:", "n1", "10.0.0.5/33"]),
    with_args("bond mode", &[("image.toml", IMAGE), ("client.toml", "[client]\nname = \"acme\"\n[[nodes]]\nname = \"n1\"\nlinks = [{ name = \"e0\", mac = \"52:54:00:00:00:01\" }]\nbonds = [{ name = \"bond0\", members = [\"e0\"], mode = \"lacp\" }]\n")], CLIENT, 1, &["client.toml:6:", "n1", "lacp"]),
    with_args("client unknown key", &[("image.toml", IMAGE), ("client.toml", "[client]\nname = \"acme\"\ndomian = \"x\"\n[[nodes]]\nname = \"n1\"\n")], CLIENT, 1, &["client.toml:3:1", "domian"]),
    with_args("client time zone", &[("image.toml", IMAGE), ("client.toml", "[client]\nname = \"acme\"\ntimezone = \"../etc\"\n[[nodes]]\nname = \"n1\"\n")], CLIENT, 1, &["client.toml:3:", "../etc"]),
    with_args("node name twice", &[("image.toml", IMAGE), ("client.toml", "[client]\nname = \"acme\"\n[[nodes]]\nname = \"n1\"\n[[nodes]]\nname = \"n1\"\n")], CLIENT, 1, &["client.toml:6:", "n1"]),
    with_args("node host name", &[("image.toml", IMAGE), ("client.toml", "[client]\nname = \"acme\"\n[[nodes]]\nname = \"n_1!\"\n")], CLIENT, 1, &["client.toml:4:", "n_1!"]),
    with_args("client file missing", &[("image.toml", IMAGE)], CLIENT, 1, &["client.toml"]),
    with_args("check a node-less client", &[("client.toml", "[client]\nname = \"acme\"\n")], &["check", "client.toml"], 1, &["client.toml:1:"]),
    with_args("check a bad MTU", &[("client.toml", "[client]\nname = \"acme\"\n[[nodes]]\nname = \"n1\"\nlinks = [{ name = \"e0\", mac = \"52:54:00:00:00:01\", mtu = 60 }]\n")], &["check", "client.toml"], 1, &["client.toml:5:", "n1", "60"]),
    // Budgets and sizes
    case("size unit", &[("image.toml", IMAGE), ("size-budget.toml", "[output.initramfs]\nmax = \"10 parsecs\"\n")], 1, &["size-budget.toml:2:", "parsecs"]),
    case("negative size", &[("image.toml", IMAGE), ("size-budget.toml", "[output.initramfs]\nmax = \"-1MiB\"\n")], 1, &["size-budget.toml:2:", "`-1MiB` is not a size"]),
    case("budget for an unknown output", &[("image.toml", IMAGE), ("size-budget.toml", "[output.isoo]\nmax = \"1MiB\"\n")], 1, &["size-budget.toml:1:", "isoo"]),
    case("budget limit without max", &[("image.toml", IMAGE), ("size-budget.toml", "[element.init]\nmin = \"1MiB\"\n")], 1, &["size-budget.toml", "min"]),
    with_args("misspelt budget table", &[("size-budget.toml", "[outputz.iso]\nmax = \"50MiB\"\n")], &["check", "size-budget.toml"], 1, &["size-budget.toml:1:", "outputz", "[output]"]),
    case("over budget", &[("image.toml", IMAGE), ("size-budget.toml", "[output.initramfs]\nmax = \"10B\"\n")], 3, &["output initramfs", "10 B"]),
    case("over budget per element", &[("image.toml", IMAGE), ("size-budget.toml", "[element.init]\nmax = \"1B\"\n")], 3, &["element init"]),
    // Paths
    case("symlink climbing out", &[("image.toml", WITH_E), ("elements/e/root/etc/x", "symlink:../../../../etc/shadow")], 1, &["/etc/x", "../../../../etc/shadow"]),
    with_args("inspect of a non-archive", &[("image.toml", IMAGE)], &["inspect", "image.toml"], 1, &["image.toml"]),
    with_args("diff of a missing file", &[("image.toml", IMAGE)], &["diff", "a.iso", "b.iso"], 1, &["a.iso"]),
    with_args("show of a missing element", &[], &["elements", "show", "initt"], 1, &["initt", "init"]),
];

#[test]
fn every_broken_input_fails_clearly_and_publishes_nothing() {
    let mut problems = Vec::new();
    for c in CASES {
        let dir = Dir::new();
        let mut wrote_image = false;
        for (path, text) in c.files {
            match text.strip_prefix("symlink:") {
                Some(target) => {
                    std::fs::create_dir_all(dir.path(path).parent().unwrap()).unwrap();
                    std::os::unix::fs::symlink(target, dir.path(path)).unwrap();
                }
                None => {
                    dir.write(path, text);
                }
            }
            wrote_image |= *path == "image.toml" || *path == "other.toml";
        }
        if !wrote_image && c.args.first() == Some(&"build") {
            dir.write("image.toml", IMAGE);
        }
        let r = dir.smelt(c.args);
        let mut wrong = Vec::new();
        if r.code != c.code {
            wrong.push(format!("exit {} (wanted {})", r.code, c.code));
        }
        if r.stderr.contains("panicked") || r.stderr.contains("RUST_BACKTRACE") {
            wrong.push("a panic".into());
        }
        for name in c.names {
            if !r.stderr.contains(name) {
                wrong.push(format!("no `{name}`"));
            }
        }
        let lines = r.stderr.lines().count();
        if lines > 40 {
            wrong.push(format!("{lines} lines of stderr"));
        }
        if c.code != 0 {
            let out = dir.path("out");
            let left: Vec<String> = std::fs::read_dir(&out)
                .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            // A failed hook's tree is kept on purpose, for the user to look into.
            if left.iter().any(|n| n != "smelt-failed") {
                wrong.push(format!("left in out/: {left:?}"));
            }
        }
        if !wrong.is_empty() {
            problems.push(format!(
                "{}: {}\n    stderr: {}",
                c.name,
                wrong.join("; "),
                r.stderr.trim().replace('\n', "\n            ")
            ));
        }
    }
    assert!(CASES.len() >= 50);
    assert!(problems.is_empty(), "{} of {} cases:\n{}", problems.len(), CASES.len(), problems.join("\n"));
}
