//! Test helpers: a scratch directory with files, running the smelt binary, the system
//! tools we cross-check against, and QEMU boots (at most two at a time).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Condvar, Mutex};

pub struct Dir {
    pub tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Dir {
        Dir { tmp: tempfile::Builder::new().prefix("smelt-test-").tempdir().unwrap() }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// Writes a file, creating parents; `#!` files are made executable.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        if text.starts_with("#!") {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        p
    }

    /// Copies a file of the repository (`examples/acme/client.toml`) to `rel` here.
    pub fn fixture(&self, repo_path: &str, rel: &str) {
        std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join(repo_path), self.path(rel)).unwrap();
    }

    /// Runs smelt with `args` in this directory (SOURCE_DATE_EPOCH unset).
    pub fn smelt(&self, args: &[&str]) -> Run {
        self.smelt_env(args, &[])
    }

    /// Runs smelt with `args` and extra environment variables.
    pub fn smelt_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_smelt"))
            .args(args)
            .current_dir(self.tmp.path())
            .env_remove("SOURCE_DATE_EPOCH")
            .env_remove("SMELT_ELEMENTS_PATH")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        Run::from(out, self.tmp.path())
    }

    /// `smelt build image.toml --elements-path elements -o out` plus `extra`.
    pub fn build(&self, extra: &[&str]) -> Run {
        self.build_into("out", extra, &[])
    }

    /// `smelt build image.toml --elements-path elements -o <out>` plus `extra`, with extra
    /// environment variables.
    /// The manifest is written too (`--manifest`): tests read what the image holds from
    /// it ([`manifest`]).
    pub fn build_into(&self, out: &str, extra: &[&str], env: &[(&str, &str)]) -> Run {
        let mut args = vec!["build", "image.toml", "--elements-path", "elements", "-o", out, "--manifest"];
        args.extend_from_slice(extra);
        self.smelt_env(&args, env)
    }
}

impl Dir {
    /// `smelt build image.toml -o offline -q --offline` plus `extra`, in a network
    /// namespace with no network at all (`unshare -n`); fails the test if it fails.
    #[track_caller]
    pub fn build_offline(&self, extra: &[&str], env: &[(&str, &str)]) {
        let out = Command::new("unshare")
            .args([
                "-n",
                env!("CARGO_BIN_EXE_smelt"),
                "build",
                "image.toml",
                "-o",
                "offline",
                "-q",
                "--offline",
            ])
            .args(extra)
            .current_dir(self.tmp.path())
            .env_remove("SOURCE_DATE_EPOCH")
            .env_remove("SMELT_ELEMENTS_PATH")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(out.status.success(), "the offline build failed: {}", String::from_utf8_lossy(&out.stderr));
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    /// stderr with the scratch directory's path replaced by `[DIR]`.
    pub stderr: String,
}

impl Run {
    fn from(out: Output, dir: &Path) -> Run {
        let mask = |b: &[u8]| String::from_utf8_lossy(b).replace(&dir.display().to_string(), "[DIR]");
        Run { code: out.status.code().unwrap_or(-1), stdout: mask(&out.stdout), stderr: mask(&out.stderr) }
    }

    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "smelt failed:\n{}", self.stderr);
        self
    }

    #[track_caller]
    pub fn fails(self, code: i32) -> Run {
        assert_eq!(self.code, code, "expected exit {code}; stderr:\n{}", self.stderr);
        self
    }
}

/// Every entry of the manifest a build with `--manifest` wrote in `outdir`.
#[track_caller]
pub fn manifest(outdir: &Path) -> serde_json::Value {
    let file = std::fs::File::open(outdir.join("manifest.jsonl.zst")).expect("a build with --manifest");
    let text = std::io::read_to_string(zstd::stream::read::Decoder::new(file).unwrap()).unwrap();
    text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()).collect()
}

/// Runs a shell pipeline and returns its stdout; panics with its stderr on failure.
#[track_caller]
pub fn sh(script: &str) -> String {
    let out = Command::new("bash").arg("-c").arg(format!("set -euo pipefail; {script}")).output().unwrap();
    assert!(out.status.success(), "`{script}` failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One member of an archive (any compression), as bsdtar extracts it.
#[track_caller]
pub fn member(archive: &Path, name: &str) -> String {
    sh(&format!("bsdtar -xOf {} {name}", archive.display()))
}

/// The newest Debian kernel under /boot.
pub fn kernel() -> PathBuf {
    let mut kernels: Vec<PathBuf> = std::fs::read_dir("/boot")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("vmlinuz-"))
        .collect();
    kernels.sort();
    kernels.pop().expect("no /boot/vmlinuz-*: run tests/run.sh as root to install linux-image-cloud-amd64")
}

static QEMU_SLOTS: Mutex<u32> = Mutex::new(0);
static QEMU_FREE: Condvar = Condvar::new();

/// Boots `initrd` with the host kernel under TCG and returns the serial console.
pub fn boot(initrd: &Path, append: &str) -> String {
    boot_with(initrd, &[], append, &[])
}

/// Boots `initrd` with a virtio NIC per MAC, `append` on the kernel command line and
/// `extra` QEMU arguments; returns the serial console.
pub fn boot_with(initrd: &Path, macs: &[&str], append: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "-kernel".to_string(),
        kernel().display().to_string(),
        "-initrd".into(),
        initrd.display().to_string(),
        "-append".into(),
        format!("console=ttyS0 panic=-1 {append}"),
    ];
    args.extend(nics(macs));
    args.extend(extra.iter().map(|s| s.to_string()));
    qemu(&args)
}

/// QEMU arguments for one user-mode virtio NIC per MAC, in order.
pub fn nics(macs: &[&str]) -> Vec<String> {
    let mut args = Vec::new();
    for (i, mac) in macs.iter().enumerate() {
        args.extend([
            "-netdev".into(),
            format!("user,id=n{i}"),
            "-device".into(),
            format!("virtio-net-pci,netdev=n{i},mac={mac}"),
        ]);
    }
    args
}

/// Runs QEMU (TCG, 512 MiB, serial on stdout, no reboot) with `args` and returns what
/// the guest printed. At most two guests run at once: the machine has two cores.
pub fn qemu<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> String {
    qemu_sized(512, 180, args)
}

/// As [`qemu`], with `mib` of RAM and `seconds` before the guest is stopped.
pub fn qemu_sized<S: AsRef<std::ffi::OsStr>>(mib: u32, seconds: u32, args: &[S]) -> String {
    {
        let mut busy = QEMU_SLOTS.lock().unwrap();
        while *busy >= 2 {
            busy = QEMU_FREE.wait(busy).unwrap();
        }
        *busy += 1;
    }
    let (mib, seconds) = (mib.to_string(), seconds.to_string());
    let out = Command::new("timeout")
        .args([
            seconds.as_str(),
            "qemu-system-x86_64",
            "-accel",
            "tcg",
            "-m",
            mib.as_str(),
            "-nographic",
            "-no-reboot",
        ])
        .args(args)
        .output()
        .unwrap();
    *QEMU_SLOTS.lock().unwrap() -= 1;
    QEMU_FREE.notify_one();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A QEMU guest left running while the test talks to it (TCG, serial console to a
/// file), holding one of the two QEMU slots until dropped, which stops it.
pub struct Guest {
    child: std::process::Child,
    pub serial: PathBuf,
}

impl Guest {
    /// Starts QEMU with `mib` of RAM, stopped after `seconds` at the latest.
    pub fn start<S: AsRef<std::ffi::OsStr>>(mib: u32, seconds: u32, serial: &Path, args: &[S]) -> Guest {
        {
            let mut busy = QEMU_SLOTS.lock().unwrap();
            while *busy >= 2 {
                busy = QEMU_FREE.wait(busy).unwrap();
            }
            *busy += 1;
        }
        let log = std::fs::File::create(serial).unwrap();
        let child = Command::new("timeout")
            .args([
                seconds.to_string().as_str(),
                "qemu-system-x86_64",
                "-accel",
                "tcg",
                "-nographic",
                "-no-reboot",
            ])
            .args(["-m", mib.to_string().as_str()])
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Guest { child, serial: serial.to_path_buf() }
    }

    /// What the guest printed so far.
    pub fn console(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.serial).unwrap_or_default()).into_owned()
    }

    /// Waits until `done` holds (checked every two seconds) or `seconds` pass; returns
    /// whether it held.
    pub fn wait_for(&mut self, seconds: u64, mut done: impl FnMut() -> bool) -> bool {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
        while std::time::Instant::now() < until {
            if done() {
                return true;
            }
            if self.child.try_wait().unwrap().is_some() {
                return done();
            }
            std::thread::sleep(std::time::Duration::from_secs(2));
        }
        false
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        // SIGTERM, which `timeout` passes on to QEMU (a SIGKILL would orphan it).
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        *QEMU_SLOTS.lock().unwrap() -= 1;
        QEMU_FREE.notify_one();
    }
}

/// An image.toml for a test, built key by key instead of written out as TOML in every
/// test: `Image::new("n", &["init"]).outputs(&["iso"]).set("kernel", "\"auto\"")
/// .params("init", "then = \"poweroff\"")`, then `dir.image(&image)`.
#[derive(Clone)]
pub struct Image {
    lines: Vec<String>,
    tables: Vec<String>,
}

impl Image {
    pub fn new(name: &str, elements: &[&str]) -> Image {
        let list: Vec<String> = elements.iter().map(|e| format!("{e:?}")).collect();
        Image {
            lines: vec![format!("name = {name:?}"), format!("elements = [{}]", list.join(", "))],
            tables: Vec::new(),
        }
    }

    pub fn outputs(self, outputs: &[&str]) -> Image {
        let list: Vec<String> = outputs.iter().map(|o| format!("{o:?}")).collect();
        self.set("outputs", &format!("[{}]", list.join(", ")))
    }

    /// Another key of `[image]`, its value as TOML (`"\"auto\""`, `"19"`).
    pub fn set(mut self, key: &str, toml: &str) -> Image {
        self.lines.push(format!("{key} = {toml}"));
        self
    }

    /// A `[params.ELEMENT]` table with `body` (TOML lines).
    pub fn params(mut self, element: &str, body: &str) -> Image {
        self.tables.push(format!("[params.{element}]\n{}\n", body.trim_end()));
        self
    }

    pub fn text(&self) -> String {
        format!("[image]\n{}\n{}", self.lines.join("\n"), self.tables.concat())
    }
}

impl Dir {
    /// Writes `image` as image.toml.
    pub fn image(&self, image: &Image) -> PathBuf {
        self.write("image.toml", &image.text())
    }

    /// Writes `image` to another file of this directory.
    pub fn image_at(&self, rel: &str, image: &Image) -> PathBuf {
        self.write(rel, &image.text())
    }
}

/// Compares `got` (relative path → text) with the files under the repository's `golden`
/// directory; `SNAPSHOTS=overwrite` rewrites them instead (review the diff). Returns
/// what differs.
pub fn snapshot(golden: &str, got: &std::collections::BTreeMap<String, String>) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(golden);
    if std::env::var("SNAPSHOTS").is_ok_and(|v| v == "overwrite") {
        let _ = std::fs::remove_dir_all(&dir);
        for (rel, text) in got {
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        return Vec::new();
    }
    let want = text_files(&dir);
    got.keys()
        .chain(want.keys())
        .filter(|k| got.get(*k) != want.get(*k))
        .map(|k| format!("{golden}/{k} (SNAPSHOTS=overwrite rewrites, then review the diff)"))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Every file under `dir`, by path relative to it, with its text.
pub fn text_files(dir: &Path) -> std::collections::BTreeMap<String, String> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            (
                e.path().strip_prefix(dir).unwrap().display().to_string(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect()
}

/// A directory made once by `make` and kept between test runs (under cargo's
/// `target/tmp`): downloads such as a venv from PyPI. Made under a lock, in a temporary
/// directory renamed into place, so parallel tests wait for one another and a failed
/// attempt leaves nothing.
pub fn cached(name: &str, make: impl FnOnce(&Path)) -> PathBuf {
    use std::os::fd::AsRawFd;
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-cache");
    std::fs::create_dir_all(&root).unwrap();
    let lock = std::fs::File::create(root.join(format!("{name}.lock"))).unwrap();
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let dir = root.join(name);
    if !dir.exists() {
        let partial = root.join(format!("{name}.partial"));
        let _ = std::fs::remove_dir_all(&partial);
        make(&partial);
        std::fs::rename(&partial, &dir).unwrap();
    }
    dir
}

/// Asserts two outputs are the same bytes; when not, says what `smelt diff` finds
/// between them.
#[track_caller]
pub fn assert_same_bytes(a: &Path, b: &Path, what: &str) {
    if std::fs::read(a).unwrap() == std::fs::read(b).unwrap() {
        return;
    }
    // What differs: the listings (modes, owners, sizes, dates), then the contents.
    let tmp = tempfile::tempdir().unwrap();
    let script = format!(
        "cd {t} && mkdir a b && bsdtar -xf {a} -C a 2>/dev/null; bsdtar -xf {b} -C b 2>/dev/null; \
         diff <(bsdtar -tvf {a} 2>/dev/null) <(bsdtar -tvf {b} 2>/dev/null) | head -20; diff -rq a b | head -20",
        t = tmp.path().display(),
        a = a.display(),
        b = b.display()
    );
    let out = Command::new("bash").arg("-c").arg(script).output().unwrap();
    panic!("{what}: {} and {} differ:\n{}", a.display(), b.display(), String::from_utf8_lossy(&out.stdout));
}
