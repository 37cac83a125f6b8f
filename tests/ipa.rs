//! An Ironic deploy ramdisk that boots and talks to Ironic: examples/ipa (smelt's own
//! elements, ironic-python-agent 13.0.0 from PyPI), with a hardware manager of ours
//! adding a deploy step, booted in QEMU with 2 GiB against a stub of Ironic's API.

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
        let child = Command::new("python3").arg(&script).arg(&port_file).arg(&log).spawn().unwrap();
        for _ in 0..100 {
            if let Some(port) = std::fs::read_to_string(&port_file).ok().and_then(|p| p.parse().ok()) {
                return Stub { child, port, log };
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
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

/// A free TCP port on the host, for QEMU's forward to the agent's API.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The test set-up's cache for smelt (debootstrap's tarball, apt's and pip's downloads),
/// kept between runs so a second run fetches nothing.
fn smelt_cache() -> String {
    cached("smelt-cache-ipa", |d| std::fs::create_dir_all(d).unwrap()).display().to_string()
}

fn copy_example(dir: &Dir) {
    sh(&format!("cp -r {}/examples/ipa/. {}", env!("CARGO_MANIFEST_DIR"), dir.path("").display()));
}

#[test]
fn the_native_ipa_ramdisk_boots_in_2_gib_and_talks_to_ironic() {
    assert_eq!(unsafe { libc::geteuid() }, 0, "the first bootstrap needs root: run tests/run.sh as root");
    let dir = Dir::new();
    copy_example(&dir);
    deploy_step_element(&dir);
    let image = std::fs::read_to_string(dir.path("image.toml")).unwrap();
    let image = image.replace("    \"dev-user\",\n]", "    \"dev-user\",\n    \"our-deploy-step\",\n]");
    assert!(image.contains("\"our-deploy-step\""), "the example's element list changed shape");
    dir.write("image.toml", &image.replace("checksums = [\"sha256\"]", "checksums = [\"sha256\", \"md5\"]"));
    let cache = smelt_cache();
    let env = [("SMELT_CACHE_DIR", cache.as_str()), ("SOURCE_DATE_EPOCH", "1700000000")];
    dir.smelt_env(&["build", "image.toml", "--elements-path", "elements", "-o", "out"], &env).ok();

    // The kernel and the initramfs, with checksum files Ironic and sha256sum read.
    let out = dir.path("out");
    assert_eq!(
        sh(&format!("cd {} && sha256sum -c ipa.tar.sha256 && md5sum -c ipa.tar.md5", out.display())),
        "ipa.tar: OK\nipa.tar: OK\n"
    );
    sh(&format!("cd {} && tar xf ipa.tar", out.display()));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let entries = report["entries"].as_array().unwrap();
    assert!(!entries.iter().any(|e| e["path"].as_str().unwrap().starts_with("/boot/")), "/boot stayed in");
    assert!(entries.iter().any(|e| e["path"].as_str().unwrap().starts_with("/usr/lib/modules/")));
    let fingerprint = report["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"] == "/etc/smelt/tls/cert.pem")
        .expect("the agent's certificate in report.json")["sha256_fingerprint"]
        .as_str()
        .unwrap()
        .to_string();

    let stub = Stub::start(&dir);
    let api = free_port();
    std::fs::File::create(dir.path("disk.raw")).unwrap().set_len(8 << 30).unwrap();
    let append = format!(
        "console=ttyS0,115200 panic=-1 ipa-api-url=http://10.0.2.2:{port} ipa-insecure=1 \
         ipa-inspection-callback-url=http://10.0.2.2:{port}/v1/continue_inspection",
        port = stub.port
    );
    let kernel = out.join("ipa.kernel").display().to_string();
    let initrd = out.join("ipa.initramfs").display().to_string();
    let netdev = format!("user,id=n0,hostfwd=tcp:127.0.0.1:{api}-:9999");
    let disk = format!("file={},format=raw,if=virtio", dir.path("disk.raw").display());
    let mut guest = Guest::start(
        2048,
        1200,
        &dir.path("serial.log"),
        &[
            "-smp",
            "2",
            "-kernel",
            &kernel,
            "-initrd",
            &initrd,
            "-append",
            &append,
            "-netdev",
            &netdev,
            "-device",
            "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56",
            "-drive",
            &disk,
        ],
    );
    let beat = guest.wait_for(900, || stub.find("POST", "/v1/heartbeat/").is_some());
    let console = guest.console();
    assert!(beat, "no heartbeat; requests {:?}\nconsole:\n{}", stub.requests(), tail(&console, 60));

    // Inspection: the inventory names the VM's NIC and its disk.
    let inspection = stub.find("POST", "/v1/continue_inspection").expect("an inspection callback");
    let inventory: serde_json::Value = serde_json::from_str(inspection["body"].as_str().unwrap()).unwrap();
    let inventory = &inventory["inventory"];
    assert!(
        inventory["interfaces"].as_array().unwrap().iter().any(|i| i["mac_address"] == "52:54:00:12:34:56"),
        "{inventory}"
    );
    assert!(inventory["disks"].as_array().unwrap().iter().any(|d| d["name"] == "/dev/vda"), "{inventory}");
    // Lookup by the VM's MAC, then a heartbeat with the token and a TLS callback.
    let lookup = stub.find("GET", "/v1/lookup").unwrap();
    assert!(lookup["path"].as_str().unwrap().contains("addresses=52%3A54%3A00%3A12%3A34%3A56"), "{lookup}");
    let heartbeat: serde_json::Value =
        serde_json::from_str(stub.find("POST", "/v1/heartbeat/").unwrap()["body"].as_str().unwrap()).unwrap();
    assert_eq!(heartbeat["agent_token"], TOKEN);
    assert_eq!(heartbeat["agent_version"], "13.0.0");
    assert!(heartbeat["callback_url"].as_str().unwrap().starts_with("https://10.0.2.15:9999"), "{heartbeat}");

    // The agent's API over TLS, with the certificate smelt made.
    let served = sh(&format!(
        "echo | timeout 60 openssl s_client -connect 127.0.0.1:{api} 2>/dev/null | openssl x509 -noout -fingerprint -sha256"
    ));
    assert_eq!(served.trim().split('=').nth(1), Some(fingerprint.as_str()), "{served}");
    // Its deploy steps include ours.
    // The node as Ironic sends it with a command.
    let node = r#"{"uuid": "1be26c0b-03f2-4d2e-ae87-c02d7f33c123", "properties": {}, "instance_info": {}, "driver_internal_info": {}}"#;
    let steps = sh(&format!(
        "timeout 120 curl -sSk -X POST -H 'Content-Type: application/json' \
         'https://127.0.0.1:{api}/v1/commands/?wait=true&agent_token={TOKEN}' \
         -d '{{\"name\": \"deploy.get_deploy_steps\", \"params\": {{\"node\": {node}, \"ports\": []}}}}'"
    ));
    let parsed: serde_json::Value = serde_json::from_str(&steps).unwrap_or_else(|e| panic!("{e}: {steps}"));
    let ours = &parsed["command_result"]["deploy_steps"]["SmeltFiles"];
    assert_eq!(ours[0]["step"], "smelt_inject_files", "{steps}\nconsole:\n{}", tail(&guest.console(), 80));
    drop(guest);

    // Offline, in a namespace with no network: pip installs from the wheelhouse the first
    // build filled, apt and debootstrap from the cache; the same bytes.
    let offline = Command::new("unshare")
        .args(["-n", env!("CARGO_BIN_EXE_smelt"), "build", "image.toml", "--elements-path", "elements"])
        .args(["-o", "offline", "-q", "--offline"])
        .current_dir(dir.path(""))
        .envs(env.iter().copied())
        .env_remove("SMELT_ELEMENTS_PATH")
        .output()
        .unwrap();
    assert!(offline.status.success(), "{}", String::from_utf8_lossy(&offline.stderr));
    assert_same_bytes(&out.join("ipa.tar"), &dir.path("offline/ipa.tar"), "the offline rebuild");
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
