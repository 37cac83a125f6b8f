//! Test helpers: a scratch directory with files, running the smelt binary, the system
//! tools we cross-check against, and QEMU boots (at most two at a time).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

pub struct Dir {
    pub tmp: tempfile::TempDir,
    /// Its builds hold both cores ([`Slot::heavy`]).
    heavy: bool,
}

impl Dir {
    pub fn new() -> Dir {
        Dir { tmp: tempfile::Builder::new().prefix("smelt-test-").tempdir().unwrap(), heavy: false }
    }

    /// A directory whose builds are heavy (a bootstrap, package installs, pip, DIB's
    /// elements): each smelt run holds both cores, so no QEMU guest shares them.
    pub fn heavy() -> Dir {
        Dir { heavy: true, ..Dir::new() }
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
        let _cores = self.heavy.then(Slot::heavy);
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
        let _cores = self.heavy.then(Slot::heavy);
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

impl Dir {
    /// Copies the bundle at `bundle` (here) into a fresh directory and runs `smelt build
    /// --from` there with `extra`: as another user (`nobody`, when root), with an empty
    /// `SMELT_CACHE_DIR` and home, in a network namespace with no network at all. The
    /// fresh directory (outputs in `out/`) and the run.
    pub fn rebuild_elsewhere(&self, bundle: &str, extra: &[&str]) -> (Dir, Run) {
        let there = Dir { heavy: self.heavy, ..Dir::new() };
        sh(&format!("cp -r {} {}", self.path(bundle).display(), there.path("bundle").display()));
        let root = unsafe { libc::geteuid() } == 0;
        let mut cmd = Command::new("unshare");
        if root {
            sh(&format!("chown -R 65534:65534 {}", there.path("").display()));
            cmd.args(["-n", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]);
        } else {
            cmd.args(["-r", "-n"]);
        }
        let _cores = self.heavy.then(Slot::heavy);
        let out = cmd
            .args([env!("CARGO_BIN_EXE_smelt"), "build", "--from", "bundle", "-o", "out", "-q"])
            .args(extra)
            .current_dir(there.path(""))
            .env_remove("SOURCE_DATE_EPOCH")
            .env_remove("SMELT_ELEMENTS_PATH")
            .env_remove("XDG_CACHE_HOME")
            .env("HOME", there.path(""))
            .env("SMELT_CACHE_DIR", there.path("cache"))
            .output()
            .unwrap();
        let run = Run::from(out, there.tmp.path());
        (there, run)
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

/// The machine's two cores, shared by what loads them: a QEMU guest (TCG, one vCPU)
/// holds one, a heavy step — a Debian bootstrap, a pip install, a build that runs
/// hooks — holds both, since it uses every core it gets. So a guest never shares the
/// machine with a heavy step, and runs at the speed its time limits assume. Waiters
/// are served in the order they asked, so none waits forever.
pub struct Slot {
    weight: u32,
}

const CORES: u32 = 2;

struct Cores {
    free: u32,
    /// Tickets of the waiters, first come first.
    queue: std::collections::VecDeque<u64>,
    next: u64,
}

static CORES_STATE: Mutex<Cores> =
    Mutex::new(Cores { free: CORES, queue: std::collections::VecDeque::new(), next: 0 });
static CORES_FREED: Condvar = Condvar::new();

thread_local! {
    /// What this thread holds already: a heavy step that boots a guest holds on.
    static HELD: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

impl Slot {
    /// Both cores, for a heavy step; held until dropped.
    pub fn heavy() -> Slot {
        Slot::take(CORES)
    }

    /// One core, for a QEMU guest.
    pub fn guest() -> Slot {
        Slot::take(1)
    }

    fn take(weight: u32) -> Slot {
        let need = weight.saturating_sub(HELD.get());
        if need == 0 {
            return Slot { weight: 0 };
        }
        let mut cores = CORES_STATE.lock().unwrap();
        let ticket = cores.next;
        cores.next += 1;
        cores.queue.push_back(ticket);
        while cores.queue.front() != Some(&ticket) || cores.free < need {
            cores = CORES_FREED.wait(cores).unwrap();
        }
        cores.queue.pop_front();
        cores.free -= need;
        drop(cores);
        // The next in line may fit in what is left.
        CORES_FREED.notify_all();
        HELD.set(HELD.get() + need);
        Slot { weight: need }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.weight == 0 {
            return;
        }
        HELD.set(HELD.get() - self.weight);
        CORES_STATE.lock().unwrap().free += self.weight;
        CORES_FREED.notify_all();
    }
}

/// How long a guest may print nothing before it is taken for hung and stopped. Under
/// TCG the quietest stretch seen is a Python program starting (tens of seconds).
pub const QUIET: Duration = Duration::from_secs(300);

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
/// the guest printed. It holds a core ([`Slot::guest`]) while it runs.
pub fn qemu<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> String {
    qemu_sized(512, 600, args)
}

/// As [`qemu`], with `mib` of RAM, stopped once it has printed nothing for [`QUIET`]
/// or after `ceiling` seconds in all.
pub fn qemu_sized<S: AsRef<std::ffi::OsStr>>(mib: u32, ceiling: u32, args: &[S]) -> String {
    let serial = tempfile::NamedTempFile::new().unwrap();
    // What the guest printed only: QEMU's own messages go elsewhere.
    let mut guest = Guest::spawn(mib, ceiling, serial.path(), args, false);
    guest.wait_for(u64::from(ceiling), || false);
    guest.stop();
    guest.console()
}

/// A QEMU guest (TCG, serial console to a file) holding a core ([`Slot::guest`]) until
/// dropped, which stops it.
pub struct Guest {
    child: std::process::Child,
    pub serial: PathBuf,
    /// How long it may print nothing before it is taken for hung ([`QUIET`]).
    pub quiet: Duration,
    _core: Slot,
}

impl Guest {
    /// Starts QEMU with `mib` of RAM, stopped after `ceiling` seconds at the latest;
    /// the serial console and QEMU's own messages go to `serial`.
    pub fn start<S: AsRef<std::ffi::OsStr>>(mib: u32, ceiling: u32, serial: &Path, args: &[S]) -> Guest {
        Guest::spawn(mib, ceiling, serial, args, true)
    }

    fn spawn<S: AsRef<std::ffi::OsStr>>(
        mib: u32,
        ceiling: u32,
        serial: &Path,
        args: &[S],
        qemu_too: bool,
    ) -> Guest {
        let core = Slot::guest();
        let log = std::fs::File::create(serial).unwrap();
        let stderr = if qemu_too { log.try_clone().unwrap().into() } else { std::process::Stdio::null() };
        let child = Command::new("timeout")
            .args([
                ceiling.to_string().as_str(),
                "qemu-system-x86_64",
                "-accel",
                "tcg",
                "-nographic",
                "-no-reboot",
            ])
            .args(["-m", mib.to_string().as_str()])
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .unwrap();
        Guest { child, serial: serial.to_path_buf(), quiet: QUIET, _core: core }
    }

    /// What the guest printed so far.
    pub fn console(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.serial).unwrap_or_default()).into_owned()
    }

    /// Waits until `done` holds (checked every second), the guest exits, it has printed
    /// nothing for `quiet` (it hung: a note is added to its console), or `ceiling`
    /// seconds pass; returns whether `done` held.
    pub fn wait_for(&mut self, ceiling: u64, mut done: impl FnMut() -> bool) -> bool {
        let started = Instant::now();
        let (mut printed, mut last) = (0, Instant::now());
        while started.elapsed() < Duration::from_secs(ceiling) {
            if done() {
                return true;
            }
            if self.child.try_wait().unwrap().is_some() {
                return done();
            }
            let now = std::fs::metadata(&self.serial).map_or(0, |m| m.len());
            if now != printed {
                (printed, last) = (now, Instant::now());
            } else if last.elapsed() > self.quiet {
                self.note(&format!("stopped: printed nothing for {} s", self.quiet.as_secs()));
                return done();
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        self.note(&format!("stopped: still running after {ceiling} s"));
        done()
    }

    /// Adds a line of the test's own to the console log.
    fn note(&self, what: &str) {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(&self.serial) {
            let _ = writeln!(f, "\n[test: {what}]");
        }
    }

    /// Stops the guest: SIGTERM, which `timeout` passes on to QEMU (a SIGKILL would
    /// orphan it).
    fn stop(&mut self) {
        if self.child.try_wait().unwrap().is_none() {
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        }
        let _ = self.child.wait();
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        self.stop();
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

    /// A key of `[image]`, its value as TOML (`"\"auto\""`, `"19"`), replacing the
    /// key's value when it is set already.
    pub fn set(mut self, key: &str, toml: &str) -> Image {
        let line = format!("{key} = {toml}");
        match self.lines.iter_mut().find(|l| l.starts_with(&format!("{key} = "))) {
            Some(l) => *l = line,
            None => self.lines.push(line),
        }
        self
    }

    /// Another table, `[name]` with `body` (TOML lines).
    pub fn table(mut self, name: &str, body: &str) -> Image {
        self.tables.push(format!("[{name}]\n{}\n", body.trim_end()));
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
/// attempt leaves nothing; and holding both cores ([`Slot::heavy`]).
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
        // Downloads and installs load the machine: no guest shares it with them.
        let cores = Slot::heavy();
        make(&partial);
        drop(cores);
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
