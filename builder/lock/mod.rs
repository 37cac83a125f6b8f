//! The lock: everything a build read from outside smelt itself — the project's files,
//! the element directories, what it took from the cache (the bootstrap tarball, apt's
//! and pip's downloads) and the host files and directories the image names — each by
//! SHA-256, written as `smelt.lock` beside the outputs. `smelt bundle` packs what it
//! names; `smelt build --from` puts it back and rebuilds with nothing else.
//!
//! Reads are recorded through one door, [`read`], which the code that opens a host path
//! calls; while a bundle is being rebuilt it also hands back the bundle's copy of a host
//! path that lies outside the project.

pub mod digest;
pub mod watch;

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// The file name of the lock, beside the outputs.
pub const FILE: &str = "smelt.lock";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Lock {
    pub lock_version: u32,
    pub smelt_version: String,
    /// The image's name (image.toml's `name`).
    pub name: String,
    /// image.toml, relative to the project (the image's directory).
    pub image: String,
    /// The client inventory, as an input's `kind/path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sets: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub per_node: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_date_epoch: Option<i64>,
    /// The secrets the image holds (image paths, as report.json's `secrets` names them)
    /// and whether each is meant to be there: a bundle carries the inputs they came
    /// from only when every one is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<ImageSecret>,
    pub inputs: Vec<Input>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ImageSecret {
    pub path: String,
    /// Made by smelt on purpose, or listed in `[secrets] allow`.
    pub expected: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Input {
    pub kind: Kind,
    /// Relative to the project (`project`), the cache (`cache`); the element's name
    /// (`element`); absolute (`host`).
    pub path: String,
    #[serde(rename = "type")]
    pub form: Form,
    /// Of the file's bytes, or of the directory as [`digest::dir_tar`] writes it.
    pub sha256: String,
    pub size: u64,
    /// A key smelt made and the image is meant to hold (the tls element's): carried by
    /// bundles, which say so.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secret: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Project,
    Element,
    Cache,
    Host,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Form {
    File,
    Dir,
}

impl Input {
    /// `kind/path`, how messages and annotations name an input.
    pub fn name(&self) -> String {
        format!("{}/{}", self.kind.as_str(), self.path.trim_start_matches('/'))
    }
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Project => "project",
            Kind::Element => "element",
            Kind::Cache => "cache",
            Kind::Host => "host",
        }
    }
}

impl Lock {
    pub fn read(path: &Path) -> anyhow::Result<Lock> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let lock: Lock =
            serde_json::from_str(&text).with_context(|| format!("{}: not a smelt lock", path.display()))?;
        anyhow::ensure!(
            lock.lock_version == 1,
            "{}: lock version {} is not one this smelt reads (1): rebuild with this smelt to make a new one",
            path.display(),
            lock.lock_version
        );
        Ok(lock)
    }

    pub fn find(&self, name: &str) -> Option<&Input> {
        self.inputs.iter().find(|i| i.name() == name)
    }
}

/// Where a rebuild from a bundle finds the host paths the bundle holds: `root/PATH`.
#[derive(Debug, Clone)]
pub struct Restored {
    pub host_root: PathBuf,
}

struct State {
    project: PathBuf,
    cache: PathBuf,
    /// Every host path read.
    seen: BTreeMap<PathBuf, Seen>,
    /// Every element read from a directory, by name.
    elements: BTreeMap<String, PathBuf>,
    restored: Option<Restored>,
}

#[derive(Clone, Copy, Default)]
struct Seen {
    secret: bool,
}

static RECORDING: Mutex<Option<State>> = Mutex::new(None);

/// A build's recording of its inputs, from [`Recording::begin`] to
/// [`Recording::finish`]; dropped unfinished (the build failed), it just stops.
pub struct Recording(());

impl Recording {
    /// Starts recording for a build of the project in `project` (the image's
    /// directory); `restored` when rebuilding from a bundle.
    pub fn begin(project: &Path, restored: Option<Restored>) -> Recording {
        let state = State {
            project: absolute(project),
            cache: absolute(&crate::cache::dir()),
            seen: BTreeMap::new(),
            elements: BTreeMap::new(),
            restored,
        };
        *RECORDING.lock().unwrap() = Some(state);
        Recording(())
    }

    /// Ends the recording: every input read, with the cache files `watched` saw
    /// opened or written, hashed (on every core) into the lock's inputs, in order.
    pub fn finish(self, watched: Vec<PathBuf>) -> anyhow::Result<Vec<Input>> {
        let Some(rec) = RECORDING.lock().unwrap().take() else { return Ok(Vec::new()) };
        let mut wanted: Vec<(Kind, String, PathBuf, bool)> = Vec::new();
        for (name, dir) in rec.elements {
            wanted.push((Kind::Element, name, dir, false));
        }
        let mut seen = rec.seen;
        for p in watched {
            seen.entry(absolute(&p)).or_default();
        }
        for (path, s) in seen {
            if path.symlink_metadata().is_err() {
                continue;
            }
            let (kind, rel) = if let Ok(rel) = path.strip_prefix(&rec.cache) {
                let rel = rel.to_string_lossy().into_owned();
                if !crate::cache::is_input(&rel) {
                    continue;
                }
                (Kind::Cache, rel)
            } else if let Ok(rel) = path.strip_prefix(&rec.project) {
                (Kind::Project, rel.to_string_lossy().into_owned())
            } else {
                (Kind::Host, path.to_string_lossy().into_owned())
            };
            wanted.push((kind, rel, path, s.secret));
        }
        let mut inputs = digest::all(&wanted)?;
        inputs.sort_by(|a, b| (a.kind, &a.path).cmp(&(b.kind, &b.path)));
        inputs.dedup_by(|a, b| a.kind == b.kind && a.path == b.path);
        Ok(inputs)
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        RECORDING.lock().unwrap().take();
    }
}

/// Records that the build reads `path` (a file or a whole directory) and returns the
/// path to open: the bundle's copy of a host path when rebuilding from one, else `path`.
pub fn read(path: &Path) -> PathBuf {
    record(path, Seen::default())
}

/// As [`read`], for a key smelt made that the image is meant to hold.
pub fn read_secret(path: &Path) -> PathBuf {
    record(path, Seen { secret: true })
}

fn record(path: &Path, seen: Seen) -> PathBuf {
    let mut guard = RECORDING.lock().unwrap();
    let Some(rec) = guard.as_mut() else { return path.to_path_buf() };
    let abs = absolute(path);
    let entry = rec.seen.entry(abs.clone()).or_default();
    entry.secret |= seen.secret;
    match &rec.restored {
        Some(r) if !abs.starts_with(&rec.project) && !abs.starts_with(&rec.cache) => {
            let copy = r.host_root.join(abs.strip_prefix("/").unwrap_or(&abs));
            if copy.symlink_metadata().is_ok() {
                return copy;
            }
            path.to_path_buf()
        }
        _ => path.to_path_buf(),
    }
}

/// The directory to list for `dir` on the host: the bundle's copy when rebuilding from
/// one that holds it (what is found there is then read through [`read`]).
pub fn listing(dir: &Path) -> PathBuf {
    let guard = RECORDING.lock().unwrap();
    match guard.as_ref().and_then(|r| r.restored.as_ref()) {
        Some(r) => {
            let copy = r.host_root.join(dir.strip_prefix("/").unwrap_or(dir));
            if copy.is_dir() {
                copy
            } else {
                dir.to_path_buf()
            }
        }
        None => dir.to_path_buf(),
    }
}

/// Records an element read from a directory (built-in elements are smelt itself).
pub fn element(name: &str, dir: &Path) {
    if let Some(rec) = RECORDING.lock().unwrap().as_mut() {
        rec.elements.insert(name.to_string(), absolute(dir));
    }
}

/// `path` made absolute and with `.` and `..` resolved by its words (symlinks kept).
pub fn absolute(path: &Path) -> PathBuf {
    let path = if path.as_os_str().is_empty() { Path::new(".") } else { path };
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Writes the lock to `OUTDIR/smelt.lock`, published once complete.
pub fn write(lock: &Lock, outdir: &Path) -> anyhow::Result<()> {
    let pending = crate::io::atomic::Pending::new(&outdir.join(FILE));
    let mut text = serde_json::to_string_pretty(lock)?;
    text.push('\n');
    std::fs::write(pending.temp_path(), text)
        .with_context(|| format!("writing {}", outdir.join(FILE).display()))?;
    pending.publish()
}
