//! Secrets that ride into an image: private keys (PEM and OpenSSH), SSH host keys and
//! password hashes found in the staged tree. Those elements made on purpose (a
//! certificate's key, a debugging user's own shadow line: see [`Made`]) and those
//! `[secrets] allow` names are expected; the rest are warned about. Only paths, elements and modes are ever reported, never
//! what a secret holds.
//!
//! Reading every file would cost as much as the archive: only files named like keys
//! (`*.pem`, `*.key`, `id_*`, `*_key`, anything under `.ssh/`, `ssl/private/`,
//! `etc/ssh/`, `pki/`) of at most 64 KiB are read, and `etc/shadow`, `etc/passwd`.

use globset::GlobSet;
use serde::Serialize;

use crate::io::source::Source;
use crate::tree::{Entry, Kind, Tree};

/// One secret in the image.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Secret {
    pub path: String,
    pub kind: SecretKind,
    pub element: String,
    pub mode: String,
    /// Made by smelt on purpose, or named in `[secrets] allow`.
    pub expected: bool,
    /// What is wrong with it, for the warning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum SecretKind {
    PrivateKey,
    SshHostKey,
    /// `user` names whose hashes a passwd or shadow file holds.
    PasswordHash,
}

/// A secret an element puts into images on purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Made {
    /// The private keys the element writes.
    PrivateKeys { element: String },
    /// The hash of `user`'s password, in the passwd or shadow file the element writes.
    PasswordOf { element: String, user: String },
}

/// What is expected to be there.
pub struct Expected<'a> {
    /// What elements put in on purpose.
    pub made: &'a [Made],
    /// `[secrets] allow` globs over image paths.
    pub allow: &'a GlobSet,
}

impl Expected<'_> {
    /// Whether `element` puts `user`'s password hash in on purpose.
    fn password_of(&self, element: &str, user: &str) -> bool {
        self.made
            .iter()
            .any(|m| matches!(m, Made::PasswordOf { element: e, user: u } if e == element && u == user))
    }

    /// Whether `element` writes private keys on purpose.
    fn keys_of(&self, element: &str) -> bool {
        self.made.iter().any(|m| matches!(m, Made::PrivateKeys { element: e } if e == element))
    }
}

const MOST: u64 = 64 << 10;

pub fn find(tree: &Tree, expected: &Expected) -> Vec<Secret> {
    let mut out = Vec::new();
    for (path, e) in tree.iter() {
        let Kind::File { source, size, .. } = &e.kind else { continue };
        let p = path.as_str();
        let allowed = expected.allow.is_match(p);
        let found = |kind, own: bool, note: Option<String>| Secret {
            path: path.to_string(),
            kind,
            element: e.element.to_string(),
            mode: format!("{:04o}", e.mode),
            expected: own || allowed,
            note,
        };
        if p == "etc/shadow" || p == "etc/passwd" {
            let users = hashed_users(source);
            let others: Vec<&String> =
                users.iter().filter(|u| !expected.password_of(&e.element, u)).collect();
            if !users.is_empty() {
                let note = (!others.is_empty()).then(|| {
                    let names: Vec<&str> = others.iter().map(|u| u.as_str()).collect();
                    format!("password hashes of {}", names.join(", "))
                });
                out.push(found(SecretKind::PasswordHash, others.is_empty(), note));
            }
            continue;
        }
        if *size > MOST || !named_like_a_key(p) {
            continue;
        }
        let Ok(bytes) = source.read_all() else { continue };
        if !holds_private_key(&bytes) {
            continue;
        }
        if is_ssh_host_key(p) {
            let note =
                "every machine that boots this image has the same SSH host identity; make host keys at \
                        first boot instead (DIB's runtime-ssh-host-keys)";
            out.push(found(SecretKind::SshHostKey, false, Some(note.into())));
        } else {
            out.push(found(SecretKind::PrivateKey, expected.keys_of(&e.element), readable(&e)));
        }
    }
    out
}

fn readable(e: &Entry) -> Option<String> {
    (e.mode & 0o044 != 0).then(|| format!("mode {:04o} lets other users read it", e.mode))
}

fn named_like_a_key(p: &str) -> bool {
    let name = p.rsplit('/').next().unwrap_or(p);
    let ext = name.rsplit_once('.').map(|(_, e)| e);
    matches!(ext, Some("pem" | "key" | "p8" | "priv"))
        || (name.starts_with("id_") && ext != Some("pub"))
        || name.ends_with("_key")
        || p.contains("private")
        || p.starts_with("etc/ssh/")
        || p.starts_with(".ssh/")
        || p.contains("/.ssh/")
        || p.starts_with("etc/pki/")
}

fn is_ssh_host_key(p: &str) -> bool {
    let name = p.rsplit('/').next().unwrap_or(p);
    name.starts_with("ssh_host_") && name.ends_with("_key")
}

/// PEM private keys of every kind (PKCS#1, PKCS#8, SEC1, encrypted) and OpenSSH's.
fn holds_private_key(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    text.match_indices("-----BEGIN ").any(|(at, _)| {
        let label = text[at + 11..].split("-----").next().unwrap_or("");
        label.ends_with("PRIVATE KEY") && label.len() < 40
    })
}

/// Users whose line in a passwd or shadow file carries a crypt hash (`$id$…`, or DES:
/// 13 characters), locked (`!`) or not.
fn hashed_users(source: &Source) -> Vec<String> {
    let Ok(bytes) = source.read_all() else { return Vec::new() };
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let (user, hash) = (f.next()?, f.next()?.trim_start_matches('!'));
            let crypt = hash.starts_with('$') && hash.len() > 10
                || hash.len() == 13
                    && hash.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '/');
            crypt.then(|| user.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::ImagePath;

    fn tree(files: &[(&str, &str, u32, &str)]) -> Tree {
        let mut t = Tree::default();
        for (path, text, mode, element) in files {
            t.insert(
                &ImagePath::new(path).unwrap(),
                Entry::bytes(text.as_bytes().to_vec(), *mode, 0, element),
            )
            .unwrap();
        }
        t
    }

    #[test]
    fn keys_host_keys_and_hashes_are_found_and_their_content_never_shown() {
        let key = "-----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY-----\n";
        let ssh = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----\n";
        let t = tree(&[
            ("etc/ssl/private/ssl-cert-snakeoil.key", key, 0o640, "base"),
            ("etc/ssh/ssh_host_ed25519_key", ssh, 0o600, "base"),
            ("etc/ssh/ssh_host_ed25519_key.pub", "ssh-ed25519 AAAA", 0o644, "base"),
            ("etc/smelt/tls/key.pem", key, 0o600, "tls"),
            ("etc/smelt/tls/cert.pem", "-----BEGIN CERTIFICATE-----\n", 0o644, "tls"),
            (
                "etc/shadow",
                "root:$6$salt$hash0123456789:0:0:::\ndev:$6$s$abcdefghijk:0::\nnobody:*:0::\n",
                0o600,
                "dev-user",
            ),
            ("usr/share/doc/readme.txt", key, 0o644, "base"),
        ]);
        let none = GlobSet::empty();
        let made = [
            Made::PrivateKeys { element: "tls".into() },
            Made::PasswordOf { element: "dev-user".into(), user: "dev".into() },
        ];
        let found = find(&t, &Expected { made: &made, allow: &none });
        let brief: Vec<(&str, SecretKind, bool)> =
            found.iter().map(|s| (s.path.as_str(), s.kind, s.expected)).collect();
        assert_eq!(
            brief,
            [
                ("/etc/shadow", SecretKind::PasswordHash, false),
                ("/etc/smelt/tls/key.pem", SecretKind::PrivateKey, true),
                ("/etc/ssh/ssh_host_ed25519_key", SecretKind::SshHostKey, false),
                ("/etc/ssl/private/ssl-cert-snakeoil.key", SecretKind::PrivateKey, false),
            ]
        );
        assert_eq!(found[0].note.as_deref(), Some("password hashes of root"));
        assert_eq!(found[3].note.as_deref(), Some("mode 0640 lets other users read it"));
        let json = serde_json::to_string(&found).unwrap();
        assert!(!json.contains("MIIEvQ") && !json.contains("hash0123"), "{json}");

        let mut allow = globset::GlobSetBuilder::new();
        allow.add(globset::Glob::new("etc/ssl/private/*").unwrap());
        let allow = allow.build().unwrap();
        let found = find(&t, &Expected { made: &made, allow: &allow });
        assert!(found.iter().find(|s| s.path.ends_with("snakeoil.key")).unwrap().expected);
    }
}
