//! The element path: every `--elements-path` directory, then `SMELT_ELEMENTS_PATH`,
//! then the elements built into the binary; the first match of a name wins.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use include_dir::{include_dir, Dir, DirEntry};

use super::manifest::{read_dir_manifest, Manifest};
use super::{Element, ElementFile, FileKind, Origin, Stat};
use crate::config::source::TomlFile;
use crate::io::source::HostPath;
use crate::io::source::Source;

static BUILT_IN: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/elements");

pub struct Library {
    pub dirs: Vec<PathBuf>,
}

impl Library {
    /// `cli_dirs` first, then the colon-separated `env_path` (`SMELT_ELEMENTS_PATH`).
    pub fn new(cli_dirs: &[PathBuf], env_path: Option<&str>) -> Library {
        let mut dirs = cli_dirs.to_vec();
        dirs.extend(env_path.unwrap_or("").split(':').filter(|s| !s.is_empty()).map(PathBuf::from));
        Library { dirs }
    }

    pub fn from_env(cli_dirs: &[PathBuf]) -> Library {
        Library::new(cli_dirs, std::env::var("SMELT_ELEMENTS_PATH").ok().as_deref())
    }

    /// Where `name` would be loaded from, without reading it.
    pub fn locate(&self, name: &str) -> Option<Origin> {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return None;
        }
        for dir in &self.dirs {
            let candidate = dir.join(name);
            if candidate.is_dir() {
                return Some(Origin::Dir(candidate));
            }
        }
        BUILT_IN.get_dir(name).map(|_| Origin::BuiltIn)
    }

    pub fn load(&self, name: &str) -> anyhow::Result<Option<Element>> {
        match self.locate(name) {
            None => Ok(None),
            Some(Origin::Dir(dir)) => load_dir(name, &dir).map(Some),
            Some(Origin::BuiltIn) => load_built_in(name).map(Some),
        }
    }

    /// Every element name on the path with where it is found, sorted by name.
    pub fn names(&self) -> Vec<(String, Origin)> {
        let mut names: Vec<String> =
            BUILT_IN.dirs().map(|d| d.path().to_string_lossy().into_owned()).collect();
        for dir in &self.dirs {
            if let Ok(rd) = std::fs::read_dir(dir) {
                names.extend(
                    rd.flatten()
                        .filter(|e| e.path().is_dir())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| !n.starts_with('.') && !n.starts_with("__")), // `__pycache__` in a DIB wheel
                );
            }
        }
        names.sort();
        names.dedup();
        names.into_iter().filter_map(|n| Some((n.clone(), self.locate(&n)?))).collect()
    }

    /// The path as a human reads it, for "not found" errors.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.dirs.iter().map(|d| d.display().to_string()).collect();
        parts.push("built-in".into());
        parts.join(", ")
    }
}

fn load_dir(name: &str, dir: &Path) -> anyhow::Result<Element> {
    let manifest = read_dir_manifest(dir).with_context(|| format!("reading element `{name}`"))?;
    let mut files = Vec::new();
    // `root/` can be a whole filesystem: it is walked once, at staging, straight into the
    // image (`Element::visit_root`), not listed here.
    let walk = walkdir::WalkDir::new(dir).min_depth(1).sort_by_file_name().follow_links(false);
    for entry in walk
        .into_iter()
        .filter_entry(|e| e.file_name() != ".git" && !(e.depth() == 1 && e.file_name() == "root"))
    {
        let entry = entry.with_context(|| format!("reading element `{name}` in {}", dir.display()))?;
        let rel = entry.path().strip_prefix(dir)?.to_string_lossy().into_owned();
        files.push(walked_file(name, rel, &entry, || HostPath::new(entry.path()))?);
    }
    Ok(Element { name: name.into(), origin: Origin::Dir(dir.to_path_buf()), manifest, files })
}

/// An element file from a directory walk, with what `stat` said of it.
pub(super) fn walked_file(
    element: &str,
    rel: String,
    entry: &walkdir::DirEntry,
    host: impl FnOnce() -> HostPath,
) -> anyhow::Result<ElementFile> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = entry.metadata().with_context(|| format!("reading {}", entry.path().display()))?;
    let kind = if meta.is_dir() {
        FileKind::Dir
    } else if meta.file_type().is_symlink() {
        let target = std::fs::read_link(entry.path())?;
        FileKind::Symlink(target.to_string_lossy().into_owned())
    } else if meta.is_file() {
        FileKind::File(Source::Host(host()))
    } else {
        use super::manifest::DeviceKind;
        use std::os::unix::fs::FileTypeExt;
        let ft = meta.file_type();
        let kind = if ft.is_char_device() {
            DeviceKind::Char
        } else if ft.is_block_device() {
            DeviceKind::Block
        } else if ft.is_fifo() {
            DeviceKind::Fifo
        } else {
            anyhow::bail!(
                "element `{element}`: {} is a socket, which an image cannot hold; remove it from the element",
                entry.path().display()
            );
        };
        let (major, minor) = (libc::major(meta.rdev()), libc::minor(meta.rdev()));
        let (major, minor) = if kind == DeviceKind::Fifo { (0, 0) } else { (major, minor) };
        FileKind::Device { kind, major, minor }
    };
    let stat = Stat {
        size: meta.len(),
        alloc: meta.blocks() * 512,
        mtime: meta.mtime(),
        link: (meta.is_file() && meta.nlink() > 1).then(|| (meta.dev(), meta.ino())),
    };
    Ok(ElementFile { rel, kind, mode: meta.permissions().mode() & 0o7777, stat: Some(stat) })
}

fn load_built_in(name: &str) -> anyhow::Result<Element> {
    let dir = BUILT_IN.get_dir(name).expect("located above");
    let manifest = match dir.get_file(format!("{name}/element.toml")) {
        Some(f) => {
            let text = f.contents_utf8().context("built-in element.toml is UTF-8")?.to_string();
            Manifest::from_toml(&TomlFile::from_text(
                Path::new(&format!("<built-in>/{name}/element.toml")),
                text,
            ))?
        }
        None => {
            let read = |n: &str| dir.get_file(format!("{name}/{n}")).and_then(|f| f.contents_utf8());
            Manifest::from_dib(read("element-deps"), read("element-provides"))
        }
    };
    let mut files = Vec::new();
    collect_built_in(dir, name, &mut files);
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(Element { name: name.into(), origin: Origin::BuiltIn, manifest, files })
}

/// Embedded files carry no mode: scripts (a `#!` first line) get 0755, the rest 0644.
fn collect_built_in(dir: &Dir<'static>, name: &str, out: &mut Vec<ElementFile>) {
    for entry in dir.entries() {
        let rel = entry.path().strip_prefix(name).unwrap_or(entry.path()).to_string_lossy().into_owned();
        match entry {
            DirEntry::Dir(d) => {
                out.push(ElementFile { rel, kind: FileKind::Dir, mode: 0o755, stat: None });
                collect_built_in(d, name, out);
            }
            DirEntry::File(f) => {
                let mode = if f.contents().starts_with(b"#!") { 0o755 } else { 0o644 };
                out.push(ElementFile {
                    rel,
                    kind: FileKind::File(Source::Static(f.contents())),
                    mode,
                    stat: None,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_dirs_shadow_built_ins() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("init")).unwrap();
        let lib = Library::new(&[tmp.path().to_path_buf()], None);
        assert_eq!(lib.locate("init"), Some(Origin::Dir(tmp.path().join("init"))));
        assert_eq!(Library::new(&[], None).locate("init"), Some(Origin::BuiltIn));
        assert_eq!(lib.locate("../etc"), None);
    }

    #[test]
    fn built_ins_load() {
        let lib = Library::new(&[], None);
        for (name, _) in lib.names() {
            let e = lib.load(&name).unwrap().unwrap();
            assert!(!e.manifest.description.is_empty(), "{name} has no description");
        }
    }

    /// Users script against the built-in params: every one says what it takes.
    #[test]
    fn every_built_in_param_declares_its_type() {
        let lib = Library::new(&[], None);
        for (name, _) in lib.names() {
            for (param, p) in lib.load(&name).unwrap().unwrap().manifest.params {
                assert!(p.kind.is_some(), "built-in element `{name}`: param `{param}` has no type");
            }
        }
        let network = lib.load("network").unwrap().unwrap();
        let choices: Vec<_> =
            network.manifest.params["renderers"].choices.iter().map(|c| c.as_str().unwrap()).collect();
        assert_eq!(choices, crate::network::RENDERERS);
    }

    /// Every built-in element has a row in the reference's table naming each of its
    /// params.
    #[test]
    fn the_reference_lists_every_built_in_element_and_its_params() {
        use crate::config::doc_keys::{section, ELEMENTS};
        let table = section(ELEMENTS, "## Built-in elements");
        let lib = Library::new(&[], None);
        for (name, _) in lib.names() {
            let row = table.lines().find(|l| l.starts_with(&format!("| `{name}` |")));
            let row =
                row.unwrap_or_else(|| panic!("docs/elements.md has no row for built-in element `{name}`"));
            let params = row.rsplit(" | ").next().unwrap_or_default();
            for param in lib.load(&name).unwrap().unwrap().manifest.params.keys() {
                assert!(
                    params.contains(&format!("`{param}`")),
                    "docs/elements.md: `{name}` does not list its param `{param}`"
                );
            }
        }
    }
}
