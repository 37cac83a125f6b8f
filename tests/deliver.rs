//! `smelt deliver` against a real Redfish service: sushy-tools' emulator (PyPI, pinned),
//! in a venv made by Debian's `/usr/bin/python3`. With its libvirt driver and libvirtd
//! from Debian's packages (started here, as root) two QEMU domains boot their per-node
//! ISOs through virtual media and check in; with its fake driver (no machines behind
//! it) the failures — a wrong password, an unreachable BMC, an untrusted certificate, a
//! node with the wrong MACs — and the config-drive and netboot paths are checked
//! against what the emulator recorded.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{cached, sh, Dir, Image, Slot};

const SUSHY: &str = "sushy-tools==2.2.0";
const PASSWORD: &str = "Sm3lt-s3cret-Pw";
/// Where the client's nodes read their BMC password from.
const ENV: &str = "password-env = \"LAB_BMC_PASSWORD\"";

/// A venv with sushy-tools, made once by Debian's Python (its `python3-libvirt` seen
/// through `--system-site-packages`).
fn sushy_venv() -> PathBuf {
    cached("sushy-tools-2.2.0-venv", |d| {
        let d = d.display();
        sh(&format!(
            "/usr/bin/python3 -m venv --system-site-packages {d} && \
             {d}/bin/pip install -q --disable-pip-version-check --no-cache-dir {SUSHY}"
        ));
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running `sushy-emulator`, stopped when dropped.
struct Emulator {
    child: Child,
    port: u16,
    log: PathBuf,
    /// `https` with the test CA, or `http`.
    scheme: &'static str,
    ca: Option<PathBuf>,
}

impl Emulator {
    /// Starts the emulator with `config` (Python) added to its state directory and port.
    fn start(dir: &Dir, name: &str, config: &str, tls: bool) -> Emulator {
        let venv = sushy_venv();
        let port = free_port();
        let state = dir.path(&format!("{name}-state"));
        std::fs::create_dir_all(&state).unwrap();
        let config_file = dir.write(
            &format!("{name}.conf"),
            &format!("SUSHY_EMULATOR_STATE_DIR = '{}'\n{config}\n", state.display()),
        );
        let log = dir.path(&format!("{name}.log"));
        // The script's `#!` names the directory the venv was made in, before the cache
        // renamed it: run it with the venv's interpreter.
        let mut command = Command::new(venv.join("bin/python3"));
        command.arg(venv.join("bin/sushy-emulator"));
        command.args(["--config", &config_file.display().to_string(), "--interface", "127.0.0.1"]);
        command.args(["--port", &port.to_string()]);
        let ca = tls.then(|| {
            test_ca(dir);
            command.args(["--ssl-certificate", &dir.path("bmc.pem").display().to_string()]);
            command.args(["--ssl-key", &dir.path("bmc.key").display().to_string()]);
            dir.path("ca.pem")
        });
        let child = command
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(&log).unwrap().try_clone().unwrap())
            .spawn()
            .unwrap();
        let emulator = Emulator { child, port, log, scheme: if tls { "https" } else { "http" }, ca };
        let started = Instant::now();
        while Command::new("curl")
            .args(emulator.curl_args("/redfish/v1/", None))
            .output()
            .unwrap()
            .stdout
            .is_empty()
        {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the emulator did not start:\n{}",
                emulator.log()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        emulator
    }

    fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.port)
    }

    fn curl_args(&self, path: &str, user: Option<&str>) -> Vec<String> {
        let mut args = vec!["-s".to_string(), "-m".into(), "10".into()];
        if let Some(ca) = &self.ca {
            args.extend(["--cacert".into(), ca.display().to_string()]);
        }
        if let Some(user) = user {
            args.extend(["-u".into(), user.to_string()]);
        }
        args.push(format!("{}{path}", self.url()));
        args
    }

    /// A resource of the emulator, as the right user reads it.
    fn get(&self, path: &str) -> serde_json::Value {
        let out = Command::new("curl")
            .args(self.curl_args(path, Some(&format!("admin:{PASSWORD}"))))
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("GET {path}: {e}: {}\n{}", String::from_utf8_lossy(&out.stdout), self.log())
        })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA and a certificate it signed for 127.0.0.1: ca.pem, bmc.pem, bmc.key in `dir`.
fn test_ca(dir: &Dir) {
    let d = dir.path("").display().to_string();
    sh(&format!(
        "cd {d} && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 30 -subj /CN=smelt-test-bmc-ca 2>/dev/null && \
         openssl req -newkey rsa:2048 -nodes -keyout bmc.key -out bmc.csr -subj /CN=127.0.0.1 2>/dev/null && \
         printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > bmc.ext && \
         openssl x509 -req -in bmc.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out bmc.pem -days 30 -extfile bmc.ext 2>/dev/null"
    ));
}

/// An htpasswd file (bcrypt, as the emulator wants) for admin with [`PASSWORD`].
fn htpasswd(dir: &Dir) -> PathBuf {
    let python = sushy_venv().join("bin/python3");
    let hash = sh(&format!(
        "{} -c 'import bcrypt; print(bcrypt.hashpw(b\"{PASSWORD}\", bcrypt.gensalt(4)).decode())'",
        python.display()
    ));
    dir.write("htpasswd", &format!("admin:{}\n", hash.trim()))
}

/// `smelt deliver` started in `dir`, its output collected when it ends.
fn deliver(dir: &Dir, args: &[&str], env: &[(&str, &str)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_smelt"))
        .arg("deliver")
        .args(args)
        .current_dir(dir.path(""))
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `OUTDIR --client client.toml --media MEDIA --serve SERVE` and `extra`.
fn args<'a>(media: &'a str, serve: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["out", "--client", "client.toml", "--media", media, "--serve", serve];
    args.extend_from_slice(extra);
    args
}

/// Waits for a deliver started by [`deliver`]: (exit code, stdout, stderr).
fn finish(child: Child) -> (i32, String, String) {
    let out = child.wait_with_output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

/// Polls `what` every half second until it holds, for at most `secs`.
fn until(secs: u64, mut what: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(secs) {
        if what() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    false
}

/// POSTs a check-in as the network element's script does.
fn check_in(port: u16, node: &str, macs: &str) -> String {
    sh(&format!(
        "curl -s -m 10 -H 'Content-Type: text/plain' --data-binary $'node={node}\\nsummary=node {node}: eth0 10.0.2.21/24;\\nmacs={macs}\\nfailed=0\\n' \
         http://127.0.0.1:{port}/check-in"
    ))
}

/// The fake driver's systems, one per node: uuid `…-00000000000N`.
fn fake_systems(n: usize) -> String {
    let systems: Vec<String> = (1..=n)
        .map(|i| {
            format!(
                "{{'uuid': '5e1f0000-0000-4000-8000-00000000000{i}', 'name': 'n{i}', 'power_state': 'Off', \
                 'nics': [{{'mac': '52:54:00:de:0{i}:01', 'ip': '10.0.2.2{i}'}}]}}"
            )
        })
        .collect();
    format!("SUSHY_EMULATOR_FAKE_DRIVER = True\nSUSHY_EMULATOR_FAKE_SYSTEMS = [{}]\n", systems.join(", "))
}

fn uuid(i: usize) -> String {
    format!("5e1f0000-0000-4000-8000-00000000000{i}")
}

/// A client of `n` nodes on QEMU's user network, each its own MAC and address, each
/// with the BMC `bmc(i)` (a TOML inline table's inside), checking in at `port`.
fn client(n: usize, port: u16, bmc: impl Fn(usize) -> String) -> String {
    let mut text = format!(
        "[client]\nname = \"lab\"\ndns = [\"10.0.2.3\"]\n\n[bmc]\nusername = \"admin\"\n\n\
         [deliver]\ncheck-in = \"http://10.0.2.2:{port}/check-in\"\n"
    );
    for i in 1..=n {
        text.push_str(&format!(
            "\n[[nodes]]\nname = \"n{i}\"\nbmc = {{ {} }}\nlinks = [{{ name = \"eth0\", mac = \"52:54:00:de:0{i}:01\", \
             addresses = [\"10.0.2.2{i}/24\"], gateway = \"10.0.2.2\" }}]\n",
            bmc(i)
        ));
    }
    text
}

/// The virtual CD the emulator shows under system `i` (where deliver found it first).
fn cd(emulator: &Emulator, i: usize) -> serde_json::Value {
    emulator.get(&format!("/redfish/v1/Systems/{}/VirtualMedia/Cd", uuid(i)))
}

/// The fake driver's BMCs: a node delivered with its config drive and checked in;
/// one with a wrong password, one unreachable, one whose certificate is not trusted,
/// each failed on its own with a message naming it and no password anywhere; then a
/// netboot delivery (a one-time PXE boot, no media) where one node checks in with MACs
/// the inventory does not give it; and `--dry-run`.
#[test]
fn deliver_drives_each_bmc_on_its_own_and_names_each_failure() {
    let dir = Dir::new();
    let serve = free_port();
    let emulator = Emulator::start(
        &dir,
        "fake",
        &format!("{}SUSHY_EMULATOR_AUTH_FILE = '{}'\n", fake_systems(5), htpasswd(&dir).display()),
        true,
    );
    let url = emulator.url();
    dir.write("wrong.pass", "not-the-password\n");
    dir.write(
        "client.toml",
        &client(5, serve, |i| match i {
            2 => format!(
                "url = \"{url}\", system = \"{}\", ca = \"ca.pem\", password-file = \"wrong.pass\"",
                uuid(2)
            ),
            3 => {
                format!("url = \"https://192.0.2.1:8443\", system = \"{}\", insecure = true, {ENV}", uuid(3))
            }
            4 => format!("url = \"{url}\", system = \"{}\", {ENV}", uuid(4)),
            _ => format!("url = \"{url}\", system = \"{}\", ca = \"ca.pem\", {ENV}", uuid(i)),
        }),
    );
    dir.image(
        &Image::new("lab", &["base-busybox", "init", "kernel-modules", "network"])
            .outputs(&["config-drive", "netboot"])
            .set("kernel", "\"auto\"")
            .params("kernel-modules", "modules = [\"virtio_pci\", \"virtio_net\"]"),
    );
    dir.build(&["--client", "client.toml"]).ok();
    let env = [("LAB_BMC_PASSWORD", PASSWORD)];
    let serve_at = format!("127.0.0.1:{serve}");

    // --dry-run sends nothing and masks the password.
    let dry = dir.smelt_env(
        &["deliver"].into_iter().chain(args("config-drive", &serve_at, &["--dry-run"])).collect::<Vec<_>>(),
        &env,
    );
    let dry = dry.ok();
    assert!(
        dry.stdout.contains("InsertMedia")
            && dry.stdout.contains(&format!("http://127.0.0.1:{serve}/config-drive/n1.iso")),
        "{}",
        dry.stdout
    );
    assert!(dry.stdout.contains("admin:******** (the password from $LAB_BMC_PASSWORD)"), "{}", dry.stdout);
    assert!(!dry.stdout.contains(PASSWORD) && !dry.stderr.contains(PASSWORD));
    assert!(cd(&emulator, 1)["Image"].as_str().unwrap_or("").is_empty(), "a dry run inserted media");

    // Config drives to n1–n4.
    let started = Instant::now();
    let run = deliver(
        &dir,
        &args(
            "config-drive",
            &serve_at,
            &["--wait", "90s", "--node", "n1", "--node", "n2", "--node", "n3", "--node", "n4"],
        ),
        &env,
    );
    // n1's BMC gets its config drive and a one-time CD boot, and powers it on; then it
    // "boots" (the test checks in for it, as its network step would).
    let inserted = until(60, || {
        let media = cd(&emulator, 1);
        media["Inserted"] == true
            && media["Image"].as_str().is_some_and(|i| i.ends_with("/config-drive/n1.iso"))
    });
    let system = emulator.get(&format!("/redfish/v1/Systems/{}", uuid(1)));
    assert!(inserted, "n1's config drive was not inserted: {}\n{}", cd(&emulator, 1), emulator.log());
    assert!(
        until(30, || emulator.get(&format!("/redfish/v1/Systems/{}", uuid(1)))["PowerState"] == "On"),
        "n1 not powered on"
    );
    assert_eq!(system["Boot"]["BootSourceOverrideTarget"], "Cd", "{system}");
    assert_eq!(check_in(serve, "n1", "52:54:00:de:01:01"), "thanks\n");
    let (code, stdout, stderr) = finish(run);
    let took = started.elapsed();
    assert_eq!(code, 1, "some nodes fail:\n{stdout}\n{stderr}");
    assert!(
        took < Duration::from_secs(80),
        "deliver took {took:?}: an unreachable BMC is given up on in bounded time"
    );
    let line = |node: &str| line_of(&stdout, node);
    assert!(
        line("n1").split_whitespace().filter(|c| *c == "yes").count() == 7,
        "n1: every step done:\n{stdout}"
    );
    for (node, why) in [
        ("n2", "n2: FAILED reaching the BMC: "),
        ("n3", "n3: FAILED reaching the BMC: https://192.0.2.1:8443: "),
        ("n4", "n4: FAILED reaching the BMC: "),
    ] {
        assert!(line(node).contains("FAILED") && stdout.contains(why), "{node}:\n{stdout}");
    }
    assert!(
        stdout.contains("refused user `admin` (HTTP 401)")
            && stdout.contains("password-env or password-file"),
        "{stdout}"
    );
    assert!(
        stdout.contains("did not answer within") || stdout.contains("cannot be reached"),
        "n3:\n{stdout}"
    );
    assert!(
        stdout.contains("ca = \"bmc-ca.pem\"") && stdout.contains("insecure = true"),
        "n4 names ca and insecure:\n{stdout}"
    );
    assert!(stdout.contains("3 of 4 node(s) FAILED"), "{stdout}");
    assert!(stderr.contains("3 of 4 node(s) not delivered: n2, n3, n4"), "{stderr}");
    assert!(
        stderr.contains("/config-drive/n1.iso") && stderr.contains("n1: fetched:"),
        "the fetch seen in the server's log:\n{stderr}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("out/deliver.json")).unwrap()).unwrap();
    let nodes = report["nodes"].as_array().unwrap();
    assert_eq!(nodes[0]["result"], "delivered", "{report}");
    assert_eq!(nodes[0]["steps"]["checked-in"]["state"], "done");
    assert_eq!(nodes[0]["macs"][0], "52:54:00:de:01:01");
    assert_eq!(nodes[1]["failure"]["step"], "bmc");
    let everything = format!("{stdout}{stderr}{report}{}", emulator.log());
    assert!(!format!("{stdout}{stderr}{report}").contains(PASSWORD), "a password was shown");
    assert!(!everything.contains("not-the-password"), "a password was shown");
    // Delivered: the media ejected and the override cleared after the check-in.
    assert_eq!(cd(&emulator, 1)["Inserted"], false, "{}", cd(&emulator, 1));

    // Netboot: a one-time PXE boot and no media; n5 checks in with MACs that are not its.
    let run = deliver(
        &dir,
        &args("netboot", &serve_at, &["--wait", "60s", "--node", "n1", "--node", "n5", "--keep-media"]),
        &env,
    );
    let pxe = |i: usize| {
        emulator.get(&format!("/redfish/v1/Systems/{}", uuid(i)))["Boot"]["BootSourceOverrideTarget"] == "Pxe"
    };
    assert!(until(60, || pxe(1) && pxe(5)), "no PXE override:\n{}", emulator.log());
    assert_eq!(check_in(serve, "n1", "52:54:00:de:01:01"), "thanks\n");
    assert_eq!(check_in(serve, "n5", "52:54:00:99:99:99"), "thanks\n");
    let (code, stdout, stderr) = finish(run);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stdout.contains("n5: FAILED checking in: it checked in, but its MACs do not match the inventory: it has 52:54:00:99:99:99, client.toml gives it 52:54:00:de:05:01"), "{stdout}");
    assert!(line_of(&stdout, "n1").contains("n/a"), "no media for a network boot:\n{stdout}");
    assert!(!line_of(&stdout, "n1").contains("FAILED"), "{stdout}");
    // --keep-media: the override stays for n1.
    assert!(pxe(1), "the override was cleared despite --keep-media");
    assert!(cd(&emulator, 1)["Image"].as_str().unwrap_or("").is_empty(), "a network boot inserted media");
}

fn line_of(stdout: &str, node: &str) -> String {
    stdout.lines().find(|l| l.starts_with(&format!("{node} "))).unwrap_or_default().to_string()
}

/// libvirtd, started as Debian's package would run it, and its default storage pool
/// (where sushy's libvirt driver puts inserted images).
fn libvirtd() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test starts libvirtd and QEMU domains, which needs root: run tests/run.sh as root"
    );
    sh("pgrep -x virtlogd >/dev/null || virtlogd -d; pgrep -x libvirtd >/dev/null || libvirtd -d");
    assert!(
        until(30, || sh("virsh -c qemu:///system version >/dev/null 2>&1 && echo ok || true").contains("ok")),
        "libvirtd did not start"
    );
    // Started unless it runs (a libvirtd left by an earlier run may have started it). No
    // `grep -q` on virsh's output: under pipefail, virsh killed by SIGPIPE fails the pipe.
    sh("virsh pool-info default >/dev/null 2>&1 || { virsh pool-define-as default dir --target /var/lib/libvirt/images && virsh pool-build default; } >/dev/null; \
        state=$(virsh pool-info default | awk '/^State:/ {print $2}'); \
        [ \"$state\" = running ] || virsh pool-start default >/dev/null");
}

/// A QEMU (TCG) domain whose NIC carries `mac`, its serial console written to `serial`;
/// undefined (and its uploaded images deleted) when dropped.
struct Domain {
    name: String,
    uuid: String,
}

impl Domain {
    fn define(dir: &Dir, name: &str, uuid: &str, mac: &str, serial: &Path) -> Domain {
        let xml = format!(
            "<domain type='qemu'><name>{name}</name><uuid>{uuid}</uuid><memory unit='MiB'>384</memory><vcpu>1</vcpu>\
             <os><type arch='x86_64' machine='pc'>hvm</type></os><features><acpi/><apic/></features><on_reboot>destroy</on_reboot>\
             <devices><emulator>/usr/bin/qemu-system-x86_64</emulator>\
             <interface type='user'><mac address='{mac}'/><model type='virtio'/></interface>\
             <serial type='file'><source path='{}'/><target port='0'/></serial>\
             </devices></domain>",
            serial.display()
        );
        let file = dir.write(&format!("{name}.xml"), &xml);
        sh(&format!("virsh -q define {} >/dev/null", file.display()));
        Domain { name: name.to_string(), uuid: uuid.to_string() }
    }
}

impl Drop for Domain {
    fn drop(&mut self) {
        let _ = Command::new("virsh").args(["-q", "destroy", &self.name]).output();
        let _ = Command::new("virsh").args(["-q", "undefine", &self.name]).output();
        let _ = Command::new("bash")
            .arg("-c")
            .arg(format!("for v in $(virsh -q vol-list default | awk '/{}/ {{print $1}}'); do virsh -q vol-delete --pool default $v; done", self.uuid))
            .output();
    }
}

/// Two QEMU domains behind sushy's libvirt driver, each with one of the client's
/// nodes' MACs: deliver inserts each node's own ISO (fetched from smelt's server by the
/// emulator into libvirt's pool), sets a CD boot and powers each on; both boot, apply
/// their own network (their own addresses, found by the image's stamp) and check in
/// through QEMU's user network; deliver exits 0 with both checked in.
#[test]
fn deliver_boots_two_libvirt_domains_through_virtual_media_and_both_check_in() {
    let dir = Dir::new();
    let serve = free_port();
    let stamp = std::process::id();
    let ids =
        [format!("5e1f1111-0000-4000-8000-{stamp:012}"), format!("5e1f2222-0000-4000-8000-{stamp:012}")];
    dir.write(
        "client.toml",
        &client(2, serve, |i| {
            format!("url = \"http://127.0.0.1:EMULATOR\", system = \"{}\", {ENV}", ids[i - 1])
        }),
    );
    dir.image(
        &Image::new("lab", &["base-busybox", "init", "kernel-modules", "network"])
            .outputs(&["iso"])
            .set("kernel", "\"auto\"")
            .set("cmdline", "\"console=ttyS0,115200 panic=-1\"")
            .params("kernel-modules", "modules = [\"virtio_pci\", \"virtio_net\"]"),
    );
    dir.build(&["--client", "client.toml", "--per-node"]).ok();
    assert!(dir.path("out/lab-n1.iso").exists() && dir.path("out/lab-n2.iso").exists());

    libvirtd();
    let serials: Vec<PathBuf> = (1..=2)
        .map(|i| PathBuf::from(format!("/var/log/libvirt/qemu/smelt-deliver-{stamp}-n{i}.serial")))
        .collect();
    let _domains: Vec<Domain> = (1..=2)
        .map(|i| {
            Domain::define(
                &dir,
                &format!("smelt-deliver-{stamp}-n{i}"),
                &ids[i - 1],
                &format!("52:54:00:de:0{i}:01"),
                &serials[i - 1],
            )
        })
        .collect();
    let emulator = Emulator::start(
        &dir,
        "libvirt",
        &format!("SUSHY_EMULATOR_LIBVIRT_URI = 'qemu:///system'\nSUSHY_EMULATOR_ALLOWED_INSTANCES = ['{}', '{}']\n", ids[0], ids[1]),
        false,
    );
    let text = std::fs::read_to_string(dir.path("client.toml"))
        .unwrap()
        .replace("EMULATOR", &emulator.port.to_string());
    dir.write("client.toml", &text);

    // Two guests on two cores: nothing heavy beside them.
    let cores = Slot::heavy();
    let (code, stdout, stderr) = finish(deliver(
        &dir,
        &["out", "--client", "client.toml", "--serve", &format!("0.0.0.0:{serve}"), "--wait", "8m"],
        &[("LAB_BMC_PASSWORD", "unused-by-this-emulator")],
    ));
    drop(cores);
    let consoles: Vec<String> =
        serials.iter().map(|s| std::fs::read_to_string(s).unwrap_or_default()).collect();
    let _ = serials.iter().map(std::fs::remove_file).count();
    let context = format!(
        "{stdout}\n{stderr}\n--- n1:\n{}\n--- n2:\n{}\n--- emulator:\n{}",
        consoles[0],
        consoles[1],
        emulator.log()
    );
    assert_eq!(code, 0, "{context}");
    assert!(stdout.contains("2 node(s) delivered"), "{context}");
    for i in 1..=2 {
        assert!(stderr.contains(&format!("n{i}: fetched: 127.0.0.1 fetched /lab-n{i}.iso")), "{context}");
        assert!(
            stderr.contains(&format!("n{i}: checked in: from 127.0.0.1: node n{i}: eth0 10.0.2.2{i}/24")),
            "{context}"
        );
        assert!(consoles[i - 1].contains(&format!("smelt-network: this is node n{i}")), "{context}");
        assert!(consoles[i - 1].contains("smelt-network: checked in at http://10.0.2.2:"), "{context}");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("out/deliver.json")).unwrap()).unwrap();
    assert!(report["nodes"].as_array().unwrap().iter().all(|n| n["result"] == "delivered"), "{report}");
}
