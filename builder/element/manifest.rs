//! What an element declares: `element.toml` (native form) or `element-deps` /
//! `element-provides` (diskimage-builder form), checked into one [`Manifest`].

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::param::{Named, Param, ParamType};
use crate::config::source::{Diagnostic, Diagnostics, TomlFile};
use crate::path::ImagePath;
pub use crate::tree::DeviceKind;

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawManifest {
    description: Option<String>,
    #[serde(default)]
    depends: Vec<String>,
    #[serde(default)]
    provides: Vec<String>,
    #[serde(default)]
    conflicts: Vec<String>,
    #[serde(default)]
    params: BTreeMap<String, RawParam>,
    prune: Option<RawPrune>,
    #[serde(default)]
    devices: Vec<RawDevice>,
    #[serde(default)]
    permissions: Vec<RawPermission>,
    #[serde(default)]
    packages: Vec<String>,
}

#[derive(Deserialize)]
struct RawParam {
    default: Option<Value>,
    description: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    choices: Option<Vec<Value>>,
}

#[derive(Deserialize)]
struct RawPrune {
    #[serde(default)]
    remove: Vec<String>,
    #[serde(default)]
    keep: Vec<String>,
}

#[derive(Deserialize)]
struct RawDevice {
    path: String,
    kind: String,
    #[serde(default)]
    major: u32,
    #[serde(default)]
    minor: u32,
    mode: Option<String>,
    uid: Option<u32>,
    gid: Option<u32>,
}

#[derive(Deserialize)]
struct RawPermission {
    path: String,
    mode: Option<String>,
    uid: Option<u32>,
    gid: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Form {
    Native,
    Dib,
}

/// A device node (or FIFO) the element puts into the image; no root needed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Device {
    pub path: ImagePath,
    pub kind: DeviceKind,
    pub major: u32,
    pub minor: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Ownership and mode set on every image path matching a glob, after staging.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Permission {
    pub glob: String,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Prune {
    pub remove: Vec<String>,
    pub keep: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Manifest {
    pub form: Form,
    pub description: String,
    pub depends: Vec<String>,
    pub provides: Vec<String>,
    pub conflicts: Vec<String>,
    pub params: BTreeMap<String, Param>,
    pub prune: Prune,
    pub devices: Vec<Device>,
    pub permissions: Vec<Permission>,
    /// Packages to install in install.d with the image's package manager.
    pub packages: Vec<String>,
}

impl Manifest {
    /// The DIB form: `element-deps` and `element-provides`, one name a line.
    pub fn from_dib(deps: Option<&str>, provides: Option<&str>) -> Manifest {
        let names = |text: Option<&str>| -> Vec<String> {
            text.unwrap_or("")
                .lines()
                .map(|l| l.split('#').next().unwrap_or("").trim())
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect()
        };
        Manifest {
            form: Form::Dib,
            description: String::new(),
            depends: names(deps),
            provides: names(provides),
            conflicts: Vec::new(),
            params: BTreeMap::new(),
            prune: Prune::default(),
            devices: Vec::new(),
            permissions: Vec::new(),
            packages: Vec::new(),
        }
    }

    /// The native form, `element.toml`; `file` names it in errors, every one at once.
    pub fn from_toml(file: &TomlFile) -> Result<Manifest, Diagnostics> {
        let raw: RawManifest = file.parse()?;
        let mut errs: Vec<Diagnostic> = Vec::new();
        let devices = devices(file, &raw.devices, &mut errs);
        let permissions = permissions(file, &raw.permissions, &mut errs);
        let prune = prune(file, raw.prune, &mut errs);
        let mut params = BTreeMap::new();
        for (name, p) in raw.params {
            params.insert(name.clone(), param(file, &name, p, &mut errs));
        }
        if !errs.is_empty() {
            return Err(Diagnostics(errs));
        }
        Ok(Manifest {
            form: Form::Native,
            description: raw.description.unwrap_or_default(),
            depends: raw.depends,
            provides: raw.provides,
            conflicts: raw.conflicts,
            params,
            prune,
            devices,
            permissions,
            packages: raw.packages,
        })
    }
}

/// A mode at `keys`, else `default`; a bad one is an error there.
fn mode(
    file: &TomlFile,
    keys: &[&str],
    text: &Option<String>,
    default: u32,
    errs: &mut Vec<Diagnostic>,
) -> u32 {
    match text {
        None => default,
        Some(t) => parse_mode(t).unwrap_or_else(|m| {
            errs.push(file.error_at(keys, m.to_string(), None));
            default
        }),
    }
}

/// `[[devices]]`, checked: a known kind, a path below the root, a mode.
fn devices(file: &TomlFile, raw: &[RawDevice], errs: &mut Vec<Diagnostic>) -> Vec<Device> {
    let mut devices = Vec::new();
    for (i, d) in raw.iter().enumerate() {
        let i = i.to_string();
        let at = |key: &'static str| -> [&str; 3] { ["devices", i.as_str(), key] };
        let kind = match d.kind.as_str() {
            "char" => DeviceKind::Char,
            "block" => DeviceKind::Block,
            "fifo" => DeviceKind::Fifo,
            other => {
                let message = format!("unknown device kind `{other}`: use char, block or fifo");
                errs.push(file.error_at(&at("kind"), message, None));
                continue;
            }
        };
        let path = match ImagePath::new(&d.path) {
            Ok(p) if !p.is_root() => p,
            Ok(_) => {
                errs.push(file.error_at(&at("path"), "a device cannot be the image root", None));
                continue;
            }
            Err(m) => {
                errs.push(file.error_at(&at("path"), format!("device {m}"), None));
                continue;
            }
        };
        let mode = mode(file, &at("mode"), &d.mode, 0o600, errs);
        let (uid, gid) = (d.uid.unwrap_or(0), d.gid.unwrap_or(0));
        devices.push(Device { path, kind, major: d.major, minor: d.minor, mode, uid, gid });
    }
    devices
}

/// `[[permissions]]`, checked: a path that stays in the image, a mode.
fn permissions(file: &TomlFile, raw: &[RawPermission], errs: &mut Vec<Diagnostic>) -> Vec<Permission> {
    let mut permissions = Vec::new();
    for (i, p) in raw.iter().enumerate() {
        let i = i.to_string();
        if let Err(m) = ImagePath::new(&p.path) {
            errs.push(file.error_at(&["permissions", &i, "path"], m.to_string(), None));
            continue;
        }
        let mode = p.mode.as_ref().map(|_| mode(file, &["permissions", &i, "mode"], &p.mode, 0, errs));
        permissions.push(Permission {
            glob: p.path.trim_start_matches('/').into(),
            mode,
            uid: p.uid,
            gid: p.gid,
        });
    }
    permissions
}

/// `[prune]`, its globs checked.
fn prune(file: &TomlFile, raw: Option<RawPrune>, errs: &mut Vec<Diagnostic>) -> Prune {
    let prune = raw.map(|p| Prune { remove: p.remove, keep: p.keep }).unwrap_or_default();
    for (key, globs) in [("remove", &prune.remove), ("keep", &prune.keep)] {
        for (i, g) in globs.iter().enumerate() {
            if let Err(e) = globset::Glob::new(g.trim_start_matches('/')) {
                errs.push(file.error_at(
                    &["prune", key, &i.to_string()],
                    format!("bad glob `{g}`: {e}"),
                    None,
                ));
            }
        }
    }
    prune
}

/// A declared param, checked: a known `type` (else its default's), choices of that
/// type, and a default that fits both.
fn param(file: &TomlFile, name: &str, raw: RawParam, errs: &mut Vec<Diagnostic>) -> Param {
    let mut kind = raw.default.as_ref().and_then(ParamType::of);
    if let Some(text) = &raw.kind {
        match ParamType::from_name(text) {
            Some(t) => kind = Some(t),
            None => errs.push(file.error_at(
                &["params", name, "type"],
                format!("param `{name}` has unknown type `{text}`"),
                Some(format!("types are {}", ParamType::listed())),
            )),
        }
    }
    let mut p = Param { default: None, description: raw.description, kind, choices: Vec::new() };
    // Each choice must itself be a value of the type (for a list, an item of it).
    let item = Param { kind: kind.filter(|k| *k != ParamType::List), ..p.clone() };
    for (i, choice) in raw.choices.iter().flatten().enumerate() {
        if let Err(m) = item.check(choice, &format!("param `{name}`")) {
            let i = i.to_string();
            errs.push(file.error_at(
                &["params", name, "choices", &i],
                format!("choice: {}", m.message),
                None,
            ));
        }
    }
    p.choices = raw.choices.unwrap_or_default();
    if let Some(default) = raw.default {
        match p.check(&default, &format!("param `{name}`")) {
            Ok(v) => p.default = Some(v),
            Err(m) => errs.push(file.error_at(
                &["params", name, "default"],
                format!("default: {}", m.message),
                m.help,
            )),
        }
    }
    p
}

/// An octal mode such as `0600` or `755`.
pub fn parse_mode(text: &str) -> Result<u32, BadMode> {
    u32::from_str_radix(text.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| BadMode(text.to_string()))
}

/// Text that is not an octal permission mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mode `{0}` is not an octal mode such as \"0644\"")]
pub struct BadMode(pub String);

/// Reads the manifest of an element directory on disk.
pub fn read_dir_manifest(dir: &Path) -> anyhow::Result<Manifest> {
    let toml = dir.join("element.toml");
    if toml.exists() {
        let file = TomlFile::read(&toml)?;
        return Ok(Manifest::from_toml(&file)?);
    }
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    let mut manifest =
        Manifest::from_dib(read("element-deps").as_deref(), read("element-provides").as_deref());
    manifest.description = read("README.rst").as_deref().map(readme_summary).unwrap_or_default();
    Ok(manifest)
}

/// The first line of prose in a DIB element's `README.rst`, below its title: what DIB's
/// own element docs show as the element's summary.
fn readme_summary(text: &str) -> String {
    let is_rule = |l: &str| !l.is_empty() && l.chars().all(|c| "=-~^*#".contains(c));
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    // The title ends at the first rule line that follows some text.
    let Some(title_end) = (1..lines.len()).find(|&i| is_rule(lines[i]) && !lines[i - 1].is_empty()) else {
        return String::new();
    };
    lines[title_end + 1..]
        .iter()
        .skip_while(|l| l.is_empty() || l.starts_with(".."))
        .take_while(|l| !l.is_empty() && !is_rule(l))
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_documents_every_element_toml_key() {
        use crate::config::doc_keys::{assert_documented, keys, ELEMENTS};
        let all = [
            keys::<RawManifest>(),
            keys::<RawParam>(),
            keys::<RawPrune>(),
            keys::<RawDevice>(),
            keys::<RawPermission>(),
        ];
        assert_documented(ELEMENTS, "# Elements", &all);
    }

    #[test]
    fn a_dib_readme_gives_its_first_sentence() {
        let text = "==========\ncache-url\n==========\nA helper script to download images.\nInto the cache.\n\nMore.\n";
        assert_eq!(readme_summary(text), "A helper script to download images. Into the cache.");
        assert_eq!(readme_summary("devuser\n=======\n\nCreates a user.\n"), "Creates a user.");
        assert_eq!(readme_summary("no title here\n"), "");
    }

    #[test]
    fn dib_lists_skip_comments() {
        let m = Manifest::from_dib(Some("a\n# c\n\nb # why\n"), None);
        assert_eq!(m.depends, vec!["a", "b"]);
    }

    #[test]
    fn device_paths_cannot_escape() {
        let f = TomlFile::from_text(
            Path::new("element.toml"),
            "[[devices]]\npath = \"../../dev/sda\"\nkind = \"block\"\nmajor = 8\n".into(),
        );
        let e = Manifest::from_toml(&f).unwrap_err().0;
        assert_eq!(e[0].message, "device path `../../dev/sda` escapes the image root");
        assert_eq!(e[0].at, Some((2, 8)));
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0600"), Ok(0o600));
        assert!(parse_mode("rw").is_err());
    }
}
