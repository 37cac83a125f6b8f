//! Paths inside the image: relative to its root, normalised, never escaping it.

use std::fmt;

use crate::arena::keep_str;

/// Why text is not an image path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path {0:?} contains a NUL byte")]
    Nul(String),
    #[error("path `{0}` escapes the image root")]
    Escapes(String),
}

/// A normalised path inside the image, without a leading `/` (`usr/bin/sh`). The root
/// itself is the empty path. Its bytes are kept for the life of the process
/// ([`crate::arena`]), so it is copied freely; a parent or a file name is a slice of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct ImagePath(&'static str);

impl ImagePath {
    pub fn root() -> ImagePath {
        ImagePath("")
    }

    /// Accepts `/etc/x`, `etc/x`, `./etc//x/`; rejects `..` anywhere and NUL bytes: an
    /// image path never walks out of the image root.
    pub fn new(raw: &str) -> Result<ImagePath, PathError> {
        Ok(ImagePath(keep_str(&normalise(raw)?.unwrap_or_else(|| raw.into()))))
    }

    /// [`ImagePath::new`] of text kept already: used as it is when it is normalised.
    pub fn kept(raw: &'static str) -> Result<ImagePath, PathError> {
        match normalise(raw)? {
            None => Ok(ImagePath(raw)),
            Some(normal) => Ok(ImagePath(keep_str(&normal))),
        }
    }

    pub fn as_str(&self) -> &'static str {
        self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub fn parent(&self) -> Option<ImagePath> {
        if self.is_root() {
            return None;
        }
        Some(ImagePath(self.0.rsplit_once('/').map_or("", |(p, _)| p)))
    }

    pub fn file_name(&self) -> &'static str {
        self.0.rsplit('/').next().unwrap_or("")
    }

    pub fn join(&self, name: &str) -> Result<ImagePath, PathError> {
        ImagePath::new(&format!("{}/{name}", self.0))
    }

    /// Whether `self` is `prefix` or lies below it.
    pub fn starts_with(&self, prefix: &ImagePath) -> bool {
        prefix.is_root()
            || self.0 == prefix.0
            || (self.0.starts_with(prefix.0) && self.0.as_bytes().get(prefix.0.len()) == Some(&b'/'))
    }

    /// Resolves a symlink target found at `self` to the image path it names, as the
    /// kernel would inside the image: absolute targets from the image root, `..` clamped
    /// at the root.
    pub fn resolve_link(&self, target: &str) -> ImagePath {
        let base = if target.starts_with('/') { "" } else { self.parent().map_or("", |p| p.0) };
        let mut parts: Vec<&str> = base.split('/').filter(|s| !s.is_empty()).collect();
        for part in target.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                p => parts.push(p),
            }
        }
        ImagePath(keep_str(&parts.join("/")))
    }
}

/// `raw` normalised; `None` when it is already (as most paths come).
fn normalise(raw: &str) -> Result<Option<String>, PathError> {
    if raw.contains('\0') {
        return Err(PathError::Nul(raw.into()));
    }
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(PathError::Escapes(raw.into())),
            p => parts.push(p),
        }
    }
    if parts.iter().map(|p| p.len() + 1).sum::<usize>() == raw.len() + 1 {
        return Ok(None);
    }
    Ok(Some(parts.join("/")))
}

/// Lookups by `&str` in maps keyed by image paths: the order is the string's.
impl std::borrow::Borrow<str> for ImagePath {
    fn borrow(&self) -> &str {
        self.0
    }
}

impl fmt::Display for ImagePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        assert_eq!(ImagePath::new("/etc//x/./y/").unwrap().as_str(), "etc/x/y");
        assert!(ImagePath::new("").unwrap().is_root());
        assert_eq!(
            ImagePath::new("a/../../etc/passwd").unwrap_err().to_string(),
            "path `a/../../etc/passwd` escapes the image root"
        );
    }

    #[test]
    fn kept_text_is_used_as_it_is_when_normal() {
        let text = crate::arena::keep_str("usr/bin/sh");
        assert!(std::ptr::eq(ImagePath::kept(text).unwrap().as_str(), text));
        assert_eq!(ImagePath::kept(crate::arena::keep_str("/usr//bin/")).unwrap().as_str(), "usr/bin");
        assert!(ImagePath::kept("a/../..").is_err());
    }

    #[test]
    fn prefixes() {
        let p = ImagePath::new("usr/share/doc/x").unwrap();
        assert!(p.starts_with(&ImagePath::new("usr/share").unwrap()));
        assert!(!p.starts_with(&ImagePath::new("usr/sh").unwrap()));
        assert!(p.starts_with(&ImagePath::root()));
    }

    #[test]
    fn links_resolve_inside_the_image() {
        let p = ImagePath::new("lib64/ld.so").unwrap();
        assert_eq!(p.resolve_link("../lib/x/ld.so").as_str(), "lib/x/ld.so");
        assert_eq!(p.resolve_link("/usr/lib64/ld.so").as_str(), "usr/lib64/ld.so");
        assert_eq!(p.resolve_link("../../../../etc").as_str(), "etc");
        assert_eq!(ImagePath::new("bin").unwrap().resolve_link("usr/bin").as_str(), "usr/bin");
    }
}
