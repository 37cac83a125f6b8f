//! An Ironic deploy ramdisk that boots and talks to Ironic: examples/ipa (smelt's own
//! elements, ironic-python-agent 13.0.0 from PyPI), with a hardware manager of ours
//! adding a deploy step, booted in QEMU with 2 GiB against a stub of Ironic's API.

use std::path::Path;
use std::process::{Child, Command};

use crate::util::{assert_same_bytes, cached, sh, Dir, Guest};

/// Ironic's API as the agent meets it: `GET /` (versions), `GET /v1/lookup` (node by
/// MAC, with an agent token), `POST /v1/heartbeat/UUID`, and the inspection callback.
/// Every request is one JSON line in the log; the port it listens on goes to a file.
const STUB_IRONIC: &str = r#"
import json, sys, http.server
port_file, log = sys.argv[1], open(sys.argv[2], "a", buffering=1)
NODE = "1be26c0b-03f2-4d2e-ae87-c02d7f33c123"
TOKEN = "smelt-test-agent-token-0123456789abcdef"
class Ironic(http.server.BaseHTTPRequestHandler):
    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        log.write(json.dumps({"method": "GET", "path": self.path}) + "\n")
        if self.path == "/":
            self.reply(200, {"default_version": {"version": "1.68"}})
        elif self.path.startswith("/v1/lookup"):
            self.reply(200, {"node": {"uuid": NODE, "properties": {}, "instance_info": {},
                                      "driver_internal_info": {}},
                             "config": {"heartbeat_timeout": 300, "agent_token": TOKEN}})
        else:
            self.reply(404, {"error_message": "no such resource"})
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        log.write(json.dumps({"method": "POST", "path": self.path, "body": body}) + "\n")
        if self.path.startswith("/v1/heartbeat/"):
            self.reply(202, {})
        elif self.path.startswith("/v1/continue_inspection"):
            self.reply(200, {"uuid": NODE})
        else:
            self.reply(404, {"error_message": "no such resource"})
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ironic)
open(port_file, "w").write(str(server.server_address[1]))
server.serve_forever()
"#;

const TOKEN: &str = "smelt-test-agent-token-0123456789abcdef";

/// A hardware manager of ours, in DIB form: its package in the element, installed into
/// IPA's virtualenv by `install.d`, adding an `inject_files`-style deploy step.
fn deploy_step_element(dir: &Dir) {
    dir.write("elements/our-deploy-step/element-deps", "ironic-python-agent\n");
    dir.write(
        "elements/our-deploy-step/install.d/70-our-deploy-step",
        "#!/bin/sh\nset -eu\n/opt/ironic-python-agent/bin/pip install --quiet --no-build-isolation \
         --disable-pip-version-check \"$(dirname \"$0\")/../our-hardware-manager\"\n",
    );
    dir.write(
        "elements/our-deploy-step/our-hardware-manager/setup.py",
        "from setuptools import setup\n\
         setup(name='smelt-test-hardware-manager', version='1.0', py_modules=['smelt_test_hwm'],\n\
         \x20     entry_points={'ironic_python_agent.hardware_managers': ['smelt_test = smelt_test_hwm:SmeltFiles']})\n",
    );
    dir.write(
        "elements/our-deploy-step/our-hardware-manager/smelt_test_hwm.py",
        "import base64, os\nfrom ironic_python_agent import hardware\n\n\
         class SmeltFiles(hardware.HardwareManager):\n\
         \x20   HARDWARE_MANAGER_NAME = 'SmeltFiles'\n\
         \x20   HARDWARE_MANAGER_VERSION = '1.0'\n\n\
         \x20   def evaluate_hardware_support(self):\n\
         \x20       return hardware.HardwareSupport.SERVICE_PROVIDER\n\n\
         \x20   def get_deploy_steps(self, node, ports):\n\
         \x20       return [{'step': 'smelt_inject_files', 'priority': 0, 'interface': 'deploy',\n\
         \x20                'reboot_requested': False,\n\
         \x20                'argsinfo': {'files': {'description': 'path -> base64 content', 'required': True}}}]\n\n\
         \x20   def smelt_inject_files(self, node, ports, files):\n\
         \x20       for path, content in files.items():\n\
         \x20           os.makedirs(os.path.dirname(path), exist_ok=True)\n\
         \x20           with open(path, 'wb') as f:\n\
         \x20               f.write(base64.b64decode(content))\n",
    );
}

struct Stub {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Stub {
    fn start(dir: &Dir) -> Stub {
        let script = dir.write("stub-ironic.py", STUB_IRONIC);
        let (port_file, log) = (dir.path("stub.port"), dir.path("stub.log"));
        let mut child = Command::new("python3").arg(&script).arg(&port_file).arg(&log).spawn().unwrap();
        for _ in 0..100 {
            if let Some(port) = std::fs::read_to_string(&port_file).ok().and_then(|p| p.parse().ok()) {
                return Stub { child, port, log };
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the stub of Ironic did not start");
    }

    fn requests(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    fn find(&self, method: &str, prefix: &str) -> Option<serde_json::Value> {
        self.requests()
            .into_iter()
            .find(|r| r["method"] == method && r["path"].as_str().unwrap().starts_with(prefix))
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A ramdisk (`out/ipa.kernel` + `out/ipa.initramfs`) booted in QEMU with 2 GiB, a
/// virtio NIC and an 8 GiB disk, against the stub of Ironic, once its first heartbeat
/// arrived; the agent's API is forwarded to `api` on the host.
struct Booted {
    stub: Stub,
    guest: Guest,
    api: u16,
}

impl Booted {
    fn start(dir: &Dir, out: &Path, append: &str) -> Booted {
        let stub = Stub::start(dir);
        let api = free_port();
        std::fs::File::create(dir.path("disk.raw")).unwrap().set_len(8 << 30).unwrap();
        let append = format!(
            "console=ttyS0,115200 panic=-1 ipa-api-url=http://10.0.2.2:{port} ipa-insecure=1 \
             ipa-inspection-callback-url=http://10.0.2.2:{port}/v1/continue_inspection {append}",
            port = stub.port
        );
        let kernel = out.join("ipa.kernel").display().to_string();
        let initrd = out.join("ipa.initramfs").display().to_string();
        let netdev = format!("user,id=n0,hostfwd=tcp:127.0.0.1:{api}-:9999");
        let disk = format!("file={},format=raw,if=virtio", dir.path("disk.raw").display());
        let nic = format!("virtio-net-pci,netdev=n0,mac={MAC}");
        let args = [
            "-smp", "2", "-kernel", &kernel, "-initrd", &initrd, "-append", &append, "-netdev", &netdev,
            "-device", &nic, "-drive", &disk,
        ];
        let mut guest = Guest::start(2048, 3000, &dir.path("serial.log"), &args);
        // Hardware inspection under TCG can be quiet on the console for a while.
        guest.quiet = std::time::Duration::from_secs(600);
        let beat = guest.wait_for(2400, || stub.find("POST", "/v1/heartbeat/").is_some());
        assert!(
            beat,
            "no heartbeat; requests {:?}\nconsole:\n{}",
            stub.requests(),
            tail(&guest.console(), 60)
        );
        Booted { stub, guest, api }
    }

    /// The inspection data the agent posted to the callback.
    fn inspection(&self) -> serde_json::Value {
        let inspection = self.stub.find("POST", "/v1/continue_inspection").expect("an inspection callback");
        serde_json::from_str(inspection["body"].as_str().unwrap()).unwrap()
    }

    /// Checks what every IPA ramdisk must have told Ironic: an inspection inventory
    /// naming the VM's NIC and its disk, a lookup by the VM's MAC, a heartbeat with the
    /// agent token. Returns the heartbeat.
    fn talked_to_ironic(&self) -> serde_json::Value {
        let inspection = self.inspection();
        let inventory = &inspection["inventory"];
        let nics = inventory["interfaces"].as_array().unwrap();
        assert!(nics.iter().any(|i| i["mac_address"] == MAC), "{inventory}");
        assert!(
            inventory["disks"].as_array().unwrap().iter().any(|d| d["name"] == "/dev/vda"),
            "{inventory}"
        );
        // Lookup by the VM's MAC, among the addresses the agent sends.
        let lookup = self.stub.find("GET", "/v1/lookup").unwrap();
        let path = lookup["path"].as_str().unwrap().replace("%3A", ":").replace("%2C", ",");
        let addresses =
            path.split_once("addresses=").map(|(_, a)| a.split('&').next().unwrap()).unwrap_or("");
        assert!(addresses.split(',').any(|a| a == MAC), "{lookup}");
        let body = self.stub.find("POST", "/v1/heartbeat/").unwrap()["body"].as_str().unwrap().to_string();
        let heartbeat: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(heartbeat["agent_token"], TOKEN);
        heartbeat
    }

    /// The SHA-256 fingerprint line of the certificate the agent's API presents.
    fn served_fingerprint(&self) -> String {
        sh(&format!(
            "echo | timeout 60 openssl s_client -connect 127.0.0.1:{} 2>/dev/null | openssl x509 -noout -fingerprint -sha256",
            self.api
        ))
    }
}

const MAC: &str = "52:54:00:12:34:56";

/// A free TCP port on the host, for QEMU's forward to the agent's API.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The test set-up's cache for smelt (the bootstrap tarball, apt's and pip's downloads),
/// kept between runs so a second run fetches nothing; one per build, since two apt runs
/// cannot share one download directory at once.
fn smelt_cache(which: &str) -> String {
    cached(&format!("smelt-cache-ipa-{which}"), |d| std::fs::create_dir_all(d).unwrap()).display().to_string()
}

fn copy_example(dir: &Dir) {
    sh(&format!("cp -r {}/examples/ipa/. {}", env!("CARGO_MANIFEST_DIR"), dir.path("").display()));
}

#[test]
fn the_native_ipa_ramdisk_boots_in_2_gib_and_talks_to_ironic() {
    assert_eq!(unsafe { libc::geteuid() }, 0, "the first bootstrap needs root: run tests/run.sh as root");
    let dir = Dir::heavy();
    copy_example(&dir);
    deploy_step_element(&dir);
    let image = std::fs::read_to_string(dir.path("image.toml")).unwrap();
    let image = image.replace("    \"dev-user\",\n]", "    \"dev-user\",\n    \"our-deploy-step\",\n]");
    assert!(image.contains("\"our-deploy-step\""), "the example's element list changed shape");
    dir.write("image.toml", &image.replace("checksums = [\"sha256\"]", "checksums = [\"sha256\", \"md5\"]"));
    let cache = smelt_cache("native");
    let env = [("SMELT_CACHE_DIR", cache.as_str()), ("SOURCE_DATE_EPOCH", "1700000000")];
    dir.smelt_env(&["build", "image.toml", "--elements-path", "elements", "-o", "out", "--manifest"], &env)
        .ok();

    // The kernel and the initramfs, with checksum files Ironic and sha256sum read.
    let out = dir.path("out");
    assert_eq!(
        sh(&format!("cd {} && sha256sum -c ipa.tar.sha256 && md5sum -c ipa.tar.md5", out.display())),
        "ipa.tar: OK\nipa.tar: OK\n"
    );
    sh(&format!("cd {} && tar xf ipa.tar", out.display()));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let manifest = crate::util::manifest(&out);
    let entries = manifest.as_array().unwrap();
    assert!(!entries.iter().any(|e| e["path"].as_str().unwrap().starts_with("/boot/")), "/boot stayed in");
    let has = |p: &str| entries.iter().any(|e| e["path"].as_str().unwrap().ends_with(p));
    assert!(has("/kernel/drivers/net/virtio_net.ko") && has("/kernel/drivers/net/bonding/bonding.ko"));
    assert!(has("/modules.dep.bin"), "depmod ran in the image after the trim");
    // The kernel for bare metal: physical NICs and RAID controllers stay, wireless goes.
    for module in
        ["/ethernet/intel/ixgbe/ixgbe.ko", "/ethernet/broadcom/bnxt/bnxt_en.ko", "/megaraid/megaraid_sas.ko"]
    {
        assert!(has(module), "{module} is not in the bare-metal ramdisk");
    }
    assert!(!entries.iter().any(|e| e["path"].as_str().unwrap().contains("/kernel/drivers/net/wireless/")));
    assert!(
        !entries.iter().any(|e| e["path"].as_str().unwrap().contains("-cloud-amd64/")),
        "the cloud kernel"
    );
    // The modules not listed are gone, and the report names them.
    let dropped = report["trim"].as_array().unwrap().iter().find(|t| t["element"] == "kernel-modules");
    let dropped = dropped.expect("kernel-modules' trim in report.json");
    let paths: Vec<&str> = dropped["paths"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    let infiniband =
        paths.iter().find(|p| p.contains("/kernel/drivers/infiniband/")).expect("InfiniBand dropped");
    let tail_of = |p: &str| p.split_once("/lib/modules/").map(|(_, t)| t.to_string()).unwrap();
    assert!(!has(&tail_of(infiniband)), "{infiniband} is still in the image");
    assert_eq!(dropped["files"], paths.len());
    let fingerprint = report["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"] == "/etc/smelt/tls/cert.pem")
        .expect("the agent's certificate in report.json")["sha256_fingerprint"]
        .as_str()
        .unwrap()
        .to_string();

    let booted = Booted::start(&dir, &out, "");
    let heartbeat = booted.talked_to_ironic();
    assert_eq!(heartbeat["agent_version"], "13.0.0");
    assert!(heartbeat["callback_url"].as_str().unwrap().starts_with("https://10.0.2.15:9999"), "{heartbeat}");
    // The agent's API over TLS, with the certificate smelt made.
    let served = booted.served_fingerprint();
    assert_eq!(served.trim().split('=').nth(1), Some(fingerprint.as_str()), "{served}");
    // Its deploy steps include ours.
    // The node as Ironic sends it with a command.
    let node = r#"{"uuid": "1be26c0b-03f2-4d2e-ae87-c02d7f33c123", "properties": {}, "instance_info": {}, "driver_internal_info": {}}"#;
    let api = booted.api;
    let steps = sh(&format!(
        "timeout 120 curl -sSk -X POST -H 'Content-Type: application/json' \
         'https://127.0.0.1:{api}/v1/commands/?wait=true&agent_token={TOKEN}' \
         -d '{{\"name\": \"deploy.get_deploy_steps\", \"params\": {{\"node\": {node}, \"ports\": []}}}}'"
    ));
    let parsed: serde_json::Value = serde_json::from_str(&steps).unwrap_or_else(|e| panic!("{e}: {steps}"));
    let ours = &parsed["command_result"]["deploy_steps"]["SmeltFiles"];
    assert_eq!(
        ours[0]["step"],
        "smelt_inject_files",
        "{steps}\nconsole:\n{}",
        tail(&booted.guest.console(), 80)
    );
    drop(booted);

    // Everything the build read, bundled; rebuilt from the bundle alone in a fresh
    // directory, as another user, with an empty cache and no network at all (pip
    // installs from the bundle's wheelhouse, the bootstrap is the bundle's): the same
    // bytes, and the same lock.
    let bundled =
        dir.smelt_env(&["bundle", "image.toml", "--elements-path", "elements", "-o", "ipa-bundle.tar"], &env);
    let bundled = bundled.ok();
    let lock: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("smelt.lock")).unwrap()).unwrap();
    let inputs = lock["inputs"].as_array().unwrap();
    let cached = |prefix: &str| {
        inputs
            .iter()
            .filter(|i| i["kind"] == "cache" && i["path"].as_str().unwrap().starts_with(prefix))
            .count()
    };
    assert_eq!(cached("base-debian/"), 1, "the bootstrap tarball in the lock: {inputs:?}");
    assert!(cached("pip-wheelhouse/ironic_python_agent-13.0.0-") == 1, "IPA's wheel in the lock: {inputs:?}");
    assert!(
        bundled.stderr.contains("from project/.smelt-state/tls/ironic-python-agent)"),
        "the agent's TLS key is carried and said so: {}",
        bundled.stderr
    );
    let (there, run) = dir.rebuild_elsewhere("ipa-bundle.tar", &[]);
    run.ok();
    for name in ["ipa.tar", "ipa.tar.sha256", "ipa.tar.md5", "smelt.lock"] {
        assert_same_bytes(&out.join(name), &there.path("out").join(name), "the rebuild from the bundle");
    }
}

/// The versions IPA's dependencies are held to, as openstack/requirements'
/// `upper-constraints.txt` holds them for a release (ours, for the test set-up).
const UPPER_CONSTRAINTS: &str = "certifi==2026.10.19.post1 cffi==2.1.1 charset-normalizer==3.5.3 cheroot==11.1.2 \
    cryptography==50.0.2 debtcollector==3.1.0 fasteners==0.20 flexcache==0.3 flexparser==0.4 futurist==3.5.0 \
    idna==3.20 ifaddr==0.2.0 iso8601==2.1.0 jaraco.functools==4.6.0 MarkupSafe==3.0.4 more-itertools==11.2.1 \
    msgpack==1.2.4 netaddr==1.3.0 oslo.concurrency==7.6.1 oslo.config==10.7.0 oslo.context==6.5.0 \
    oslo.i18n==6.9.0 oslo.log==8.3.2 oslo.serialization==5.11.0 oslo.utils==10.2.0 packaging==26.4 pbr==7.1.3 \
    Pint==0.25.3 platformdirs==4.14.9 psutil==7.2.2 pycparser==3.12 pyparsing==3.3.3 python-dateutil==4.0.0 \
    pyudev==0.24.5 PyYAML==6.0.4 requests==2.34.2 rfc3986==2.0.0 stevedore==5.10.0 tenacity==9.2.1 tooz==9.1.0 \
    typing_extensions==4.16.0 tzdata==2026.6 urllib3==2.8.0 voluptuous==0.16.0 Werkzeug==3.1.9 wrapt==2.5.2 \
    zeroconf==0.154.0 hardware==0.33.0 pexpect==4.9.0 ptyprocess==0.7.0";

/// A local git repository made from a PyPI sdist (tagged with its version), for DIB's
/// source-repositories: `DIB_REPOLOCATION_<name>` points at it, no network but PyPI.
fn git_from_sdist(name: &str, version: &str) -> String {
    cached(&format!("git-{name}-{version}"), |dir| {
        sh(&format!(
            "set -e; t=$(mktemp -d); python3 -m pip download -q --disable-pip-version-check --no-deps \
             --no-binary :all: -d $t {name}=={version}; mkdir -p {d}; tar xzf $t/*.tar.gz -C {d} --strip-components=1; \
             rm -rf $t; cd {d}; git init -q; git add -A; git -c user.name=smelt -c user.email=smelt@test commit -qm sdist; \
             git tag {version}",
            d = dir.display()
        ));
    })
    .display()
    .to_string()
}

/// openstack/requirements as DIB's ironic-python-agent-ramdisk-base clones it: a git
/// repository with `upper-constraints.txt`.
fn requirements_repo() -> String {
    cached("git-requirements-ipa-13.0.0-hardware-0.33.0", |dir| {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("upper-constraints.txt"), UPPER_CONSTRAINTS.split_whitespace().collect::<Vec<_>>().join("\n") + "\n")
            .unwrap();
        sh(&format!(
            "cd {} && git init -q && git add -A && git -c user.name=smelt -c user.email=smelt@test commit -qm uc",
            dir.display()
        ));
    })
    .display()
    .to_string()
}

/// ironic-python-agent-builder's own elements, unchanged (its wheel from PyPI), with
/// DIB's (its wheel) on base-debian: IPA from its sdist made a git repository, glean
/// likewise, upper constraints from a local file. The ramdisk boots with systemd and
/// DIB's dhcp-all-interfaces, and talks to Ironic as the native one does; its agent
/// serves the certificate ironic-python-agent-tls made.
#[test]
fn ironic_python_agent_builders_elements_build_a_ramdisk_that_talks_to_ironic() {
    assert_eq!(unsafe { libc::geteuid() }, 0, "the first bootstrap needs root: run tests/run.sh as root");
    let dir = Dir::heavy();
    dir.write(
        "image.toml",
        "[image]\nname = \"ipa\"\nelements = [\"base-debian\", \"ironic-python-agent-ramdisk\", \
         \"ironic-python-agent-tls\", \"extra-hardware\", \"devuser\", \"dynamic-login\", \"dhcp-all-interfaces\"]\n\
         outputs = [\"ramdisk-tar\"]\nkernel = \"image\"\nchecksums = [\"sha256\"]\n\
         [params.base-debian]\npackages = [\"linux-image-cloud-amd64\", \"systemd\", \"systemd-sysv\", \
         \"python3\", \"python3-venv\", \"git\"]\n",
    );
    dir.write("size-budget.toml", "[output.ramdisk-tar]\nmax = \"500MiB\"\n");
    let (ipa, glean, requirements) = (
        git_from_sdist("ironic-python-agent", "13.0.0"),
        git_from_sdist("glean", "1.25.1"),
        requirements_repo(),
    );
    let cache = smelt_cache("upstream");
    let env = [
        ("SMELT_CACHE_DIR", cache.as_str()),
        ("SOURCE_DATE_EPOCH", "1700000000"),
        ("DIB_REPOLOCATION_ironic_python_agent", ipa.as_str()),
        ("DIB_REPOREF_ironic_python_agent", "13.0.0"),
        ("DIB_REPOLOCATION_glean", glean.as_str()),
        ("DIB_REPOREF_glean", "1.25.1"),
        ("DIB_REPOLOCATION_requirements", requirements.as_str()),
        ("DIB_REPOREF_requirements", "master"),
        ("DIB_DEV_USER_USERNAME", "devuser"),
        ("DIB_DEV_USER_PWDLESS_SUDO", "yes"),
    ];
    let (ipa_elements, dib_elements) = (crate::dib::ipa_builder_elements(), crate::dib::dib_elements());
    let args = [
        "build",
        "image.toml",
        "-o",
        "out",
        "--elements-path",
        &ipa_elements,
        "--elements-path",
        &dib_elements,
    ];
    let r = dir.smelt_env(&args, &env).ok();
    assert!(r
        .stderr
        .contains("99-ramdisk-create of element `ironic-ramdisk-base` makes diskimage-builder's image"));
    let out = dir.path("out");
    assert_eq!(sh(&format!("cd {} && sha256sum -c ipa.tar.sha256", out.display())), "ipa.tar: OK\n");
    sh(&format!("cd {} && tar xf ipa.tar", out.display()));
    // The certificate ironic-python-agent-tls made, as it is in the image.
    let cert = dir.path("agent.crt");
    sh(&format!(
        "bsdtar -xOf {} etc/ironic-python-agent.d/agent.crt > {}",
        out.join("ipa.initramfs").display(),
        cert.display()
    ));
    let made = sh(&format!("openssl x509 -noout -fingerprint -sha256 -in {}", cert.display()));

    // extra-hardware's collector (the `hardware` package's hardware-detect) adds its
    // facts to the inspection data.
    let booted = Booted::start(&dir, &out, "ipa-inspection-collectors=default,extra-hardware");
    let heartbeat = booted.talked_to_ironic();
    assert!(heartbeat["callback_url"].as_str().unwrap().starts_with("https://"), "{heartbeat}");
    let served = booted.served_fingerprint();
    assert_eq!(served, made, "the agent serves another certificate than ironic-python-agent-tls made");
    let facts = booted.inspection()["data"].clone();
    let facts = facts.as_array().unwrap_or_else(|| panic!("no extra-hardware data: {}", booted.inspection()));
    let has = |kind: &str, item: &str| facts.iter().any(|f| f[0] == kind && f[1] == item);
    assert!(has("system", "product"), "no system product in {facts:?}");
    assert!(has("disk", "vda"), "no disk vda in {facts:?}");
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
