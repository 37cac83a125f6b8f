//! `dev-user`: a login for debugging a node — passwd, group and shadow lines (the
//! shadow file 0600), a home with authorized_keys, and passwordless sudo if asked.

use anyhow::{anyhow, bail};

use super::{given, BuiltIn, Context};

use crate::path::ImagePath;
use crate::secrets;
use crate::tree::{Entry, Kind, Tree};

#[derive(serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DevUser {
    name: String,
    uid: u32,
    password_hash: Option<String>,
    password: Option<String>,
    authorized_keys: Vec<String>,
    sudo: bool,
    shell: String,
}

impl BuiltIn for DevUser {
    /// passwd, group and shadow lines (the shadow file 0600), a home with
    /// authorized_keys, and passwordless sudo if asked.
    fn stage(&self, tree: &mut Tree, cx: &mut Context) -> anyhow::Result<usize> {
        let (element, mtime) = (cx.element, cx.mtime);
        let name = self.name.as_str();
        if name.is_empty() {
            bail!("element `{element}`: param `name` is empty");
        }
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') || name.len() > 32 {
            bail!("element `{element}`: `{name}` is not a user name (letters, digits, - and _, at most 32)");
        }
        let uid = self.uid;
        let hash = match (given(&self.password_hash), given(&self.password)) {
            (Some(h), _) => h.to_string(),
            (None, Some(p)) => sha512_crypt(p, name)?,
            (None, None) => "!".to_string(),
        };
        if hash.contains(':') || hash.contains('\n') {
            bail!("element `{element}`: password-hash holds `:` or a line break");
        }
        let shell = &self.shell;
        let home = format!("/home/{name}");
        let mut count = 0;
        let mut append =
            |tree: &mut Tree, path: &str, base: &str, line: String, mode: u32| -> anyhow::Result<()> {
                let at = ImagePath::new(path).expect("valid");
                let mut text = match tree.get(&at).map(|e| e.kind) {
                    Some(Kind::File { source, .. }) => {
                        String::from_utf8_lossy(&source.read_all()?).into_owned()
                    }
                    _ => base.to_string(),
                };
                if text.lines().any(|l| l.split(':').next() == Some(name)) {
                    bail!("element `{element}`: user `{name}` is already in {path}");
                }
                if !text.is_empty() && !text.ends_with('\n') {
                    text.push('\n');
                }
                text.push_str(&line);
                text.push('\n');
                tree.insert(&at, Entry::bytes(text.into_bytes(), mode, mtime, element))?;
                count += 1;
                Ok(())
            };
        append(
            tree,
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\n",
            format!("{name}:x:{uid}:{uid}:{name}:{home}:{shell}"),
            0o644,
        )?;
        append(tree, "etc/group", "root:x:0:\n", format!("{name}:x:{uid}:"), 0o644)?;
        append(
            tree,
            "etc/shadow",
            "root:*:0:0:99999:7:::\n",
            format!("{name}:{hash}:0:0:99999:7:::"),
            0o600,
        )?;
        let owned = |mut e: Entry| {
            e.uid = uid;
            e.gid = uid;
            e
        };
        let home_at = ImagePath::new(&home).expect("valid");
        tree.insert(&home_at, owned(Entry::dir(0o700, mtime, element)))?;
        let keys = &self.authorized_keys;
        if !keys.is_empty() {
            let ssh = home_at.join(".ssh")?;
            tree.insert(&ssh, owned(Entry::dir(0o700, mtime, element)))?;
            let text = keys.join("\n") + "\n";
            let at = ssh.join("authorized_keys")?;
            tree.insert(&at, owned(Entry::bytes(text.into_bytes(), 0o600, mtime, element)))?;
            count += 2;
        }
        if self.sudo {
            let at = ImagePath::new(&format!("etc/sudoers.d/{name}")).expect("valid");
            let text = format!("{name} ALL=(ALL) NOPASSWD:ALL\n");
            tree.insert(&at, Entry::bytes(text.into_bytes(), 0o440, mtime, element))?;
            count += 1;
        }
        Ok(count + 1)
    }

    /// The user's own shadow line carries the hash asked for.
    fn secrets(&self, element: &str) -> Vec<secrets::Made> {
        vec![secrets::Made::PasswordOf { element: element.into(), user: self.name.clone() }]
    }
}

/// SHA-512 crypt (`$6$`) with a salt derived from the user and password, so the same
/// inputs give the same image; give password-hash to choose your own salt.
fn sha512_crypt(password: &str, user: &str) -> anyhow::Result<String> {
    use sha2::{Digest, Sha256};
    const SALT_CHARS: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let seed = Sha256::digest(format!("smelt-dev-user:{user}:{password}").as_bytes());
    let salt: String = seed.iter().take(16).map(|b| SALT_CHARS[(*b as usize) % 64] as char).collect();
    // sha-crypt's MCF writer base64-encodes the salt it was given, which crypt(3) then
    // reads as a different salt: hash with the raw function and encode as glibc does.
    let params = sha_crypt::Params::new(5000).map_err(|e| anyhow!("hashing the password: {e:?}"))?;
    let digest = sha_crypt::sha512_crypt(password.as_bytes(), salt.as_bytes(), params);
    Ok(format!("$6${salt}${}", crypt_b64_sha512(&digest)))
}

/// The SHA-512 crypt encoding of the digest: bytes in groups of three, in the
/// specification's order, six bits a character, least significant first.
fn crypt_b64_sha512(d: &[u8; 64]) -> String {
    const ALPHABET: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    const ORDER: [(usize, usize, usize); 21] = [
        (0, 21, 42),
        (22, 43, 1),
        (44, 2, 23),
        (3, 24, 45),
        (25, 46, 4),
        (47, 5, 26),
        (6, 27, 48),
        (28, 49, 7),
        (50, 8, 29),
        (9, 30, 51),
        (31, 52, 10),
        (53, 11, 32),
        (12, 33, 54),
        (34, 55, 13),
        (56, 14, 35),
        (15, 36, 57),
        (37, 58, 16),
        (59, 17, 38),
        (18, 39, 60),
        (40, 61, 19),
        (62, 20, 41),
    ];
    let mut out = String::with_capacity(86);
    let mut put = |w: u32, n: usize| {
        let mut w = w;
        for _ in 0..n {
            out.push(ALPHABET[(w & 0x3f) as usize] as char);
            w >>= 6;
        }
    };
    for (a, b, c) in ORDER {
        put(((d[a] as u32) << 16) | ((d[b] as u32) << 8) | d[c] as u32, 4);
    }
    put(d[63] as u32, 2);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn sha512_crypt_matches_glibc() {
        // glibc: crypt("hunter2", "$6$bdrEp6oN3BqRiRoB$")
        let params = sha_crypt::Params::new(5000).unwrap();
        let d = sha_crypt::sha512_crypt(b"hunter2", b"bdrEp6oN3BqRiRoB", params);
        assert_eq!(
            super::crypt_b64_sha512(&d),
            "WVTL68Z9Ls1WSRvPmkQItnivVA5FhuOSJ2xFw5dArH6hgCLUmFrNQmLHIa4M5G9criR.1mjDtJj0GQ8ZDwmwp1"
        );
    }
}
