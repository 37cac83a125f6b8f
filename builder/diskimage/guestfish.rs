//! One libguestfs appliance over a disk image, read-only: `guestfish --ro` started once
//! and driven a command at a time through its stdin, each answer read up to a marker
//! line. The file systems are mounted inside the appliance (a small VM), never on the
//! host: nothing is left mounted, and no loop or nbd device is used, whatever happens.
//! The session's process group (guestfish and its QEMU) is registered with
//! [`crate::cleanup`] and killed when the session is dropped unfinished.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};

/// How long the appliance may take to start: it boots a kernel under TCG when the host
/// has no usable KVM (about 10 s here; a slow laptop takes longer).
const LAUNCH: Duration = Duration::from_secs(600);
/// How long any other command but `tar-out` may take.
const COMMAND: Duration = Duration::from_secs(300);

pub struct Session {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    stderr: Arc<Mutex<Vec<u8>>>,
    image: String,
    calls: u64,
    done: bool,
}

impl Session {
    /// Starts guestfish on `image` of the qemu-img `format` and launches its appliance.
    pub fn open(image: &Path, format: &str) -> anyhow::Result<Session> {
        let mut cmd = Command::new("guestfish");
        cmd.arg("--ro").arg(format!("--format={format}")).arg("-a").arg(image);
        // Not the libvirt daemon: QEMU run by guestfish itself, as the user running smelt.
        if std::env::var_os("LIBGUESTFS_BACKEND").is_none() {
            cmd.env("LIBGUESTFS_BACKEND", "direct");
        }
        // A /dev/kvm on a CPU without virtualisation (a nested guest) lets QEMU start and
        // then stop at the first unsupported instruction, silently: use TCG there.
        if std::env::var_os("LIBGUESTFS_BACKEND_SETTINGS").is_none() && !hardware_virtualisation() {
            cmd.env("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg");
        }
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = crate::cleanup::start(&mut cmd).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                anyhow!("guestfish is not installed: smelt reads disk images through libguestfs (Debian/Ubuntu: apt install libguestfs-tools; Fedora: dnf install guestfs-tools)")
            } else {
                anyhow!("starting guestfish: {e}")
            }
        })?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let mut err = child.stderr.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut kept = kept.lock().unwrap();
                kept.extend_from_slice(&buf[..n]);
                // The last 64 KiB are enough to say what went wrong.
                let excess = kept.len().saturating_sub(64 << 10);
                kept.drain(..excess);
            }
        });
        let mut session = Session {
            child,
            stdin,
            lines,
            stderr,
            image: image.display().to_string(),
            calls: 0,
            done: false,
        };
        // Every core: under TCG each vCPU is a host thread, and GNU tar reading while
        // guestfsd sends halves the time on two.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
        session.ask(&format!("set-smp {cores}"), COMMAND)?;
        session.ask("run", LAUNCH).context("starting the libguestfs appliance")?;
        Ok(session)
    }

    /// Runs one command, returning the lines it printed; its failure is an error.
    pub fn call(&mut self, command: &str) -> anyhow::Result<Vec<String>> {
        self.ask(command, COMMAND)
    }

    /// Runs one command whose failure is an answer (`-` before it: guestfish goes on).
    pub fn try_call(&mut self, command: &str) -> Vec<String> {
        self.ask(&format!("-{command}"), COMMAND).unwrap_or_default()
    }

    /// Writes the tree under `dir` of what is mounted as a tar file at `dest` (GNU tar in
    /// the appliance: numeric owners, extended attributes as pax records, hard links).
    pub fn tar_out(&mut self, dir: &str, dest: &Path, selinux: bool) -> anyhow::Result<()> {
        let dest = quote(&dest.display().to_string());
        let command =
            format!("tar-out {} {dest} numericowner:true xattrs:true selinux:{selinux}", quote(dir));
        // As long as the file system takes to read: no limit but the build's.
        self.ask(&command, Duration::MAX)?;
        Ok(())
    }

    /// Ends the session: the appliance is shut down and guestfish exits.
    pub fn close(mut self) -> anyhow::Result<()> {
        let _ = writeln!(self.stdin, "exit");
        let _ = self.stdin.flush();
        let status = self.child.wait();
        crate::cleanup::finished(&self.child);
        self.done = true;
        match status {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => bail!("guestfish on {} ended with {s}: {}", self.image, self.errors()),
            Err(e) => bail!("waiting for guestfish: {e}"),
        }
    }

    fn ask(&mut self, command: &str, limit: Duration) -> anyhow::Result<Vec<String>> {
        self.calls += 1;
        let marker = format!("@@smelt-{}-{}@@", std::process::id(), self.calls);
        let sent = writeln!(self.stdin, "{command}\necho {marker}").and_then(|_| self.stdin.flush());
        let word = command.trim_start_matches('-').split_whitespace().next().unwrap_or("").to_string();
        if sent.is_err() {
            bail!("guestfish on {} stopped before `{word}`: {}", self.image, self.errors());
        }
        let mut out = Vec::new();
        loop {
            let line = match self.lines.recv_timeout(limit.min(Duration::from_secs(1 << 30))) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => {
                    bail!("guestfish on {}: `{word}` gave no answer in {} s", self.image, limit.as_secs())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // guestfish exits at the first failed command: its message says why.
                    let _ = self.child.wait();
                    bail!("guestfish on {}: `{word}` failed: {}", self.image, self.errors());
                }
            };
            if line == marker {
                return Ok(out);
            }
            out.push(line);
        }
    }

    /// What guestfish said on stderr, its own lines (libguestfs's), last first.
    fn errors(&self) -> String {
        // The reader thread may still be taking the last bytes.
        std::thread::sleep(Duration::from_millis(100));
        let text = String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(6)..].join("; ");
        if tail.is_empty() {
            "it printed nothing".into()
        } else {
            tail
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.done {
            crate::cleanup::kill(&mut self.child);
        }
    }
}

/// A guestfish argument: double-quoted, with `\` and `"` escaped.
pub fn quote(arg: &str) -> String {
    format!("\"{}\"", arg.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Whether the CPU offers hardware virtualisation (`vmx` or `svm`) to this host.
fn hardware_virtualisation() -> bool {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    std::path::Path::new("/dev/kvm").exists()
        && cpuinfo
            .lines()
            .filter(|l| l.starts_with("flags"))
            .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"))
}
