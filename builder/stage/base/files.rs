//! Elements that place given files: `inject-files` (image path → inline bytes or a host
//! file), `dev-user` (a login with keys and sudo), and `agent` (a payload, its config
//! and a start-up step). Every destination is an image path: one that climbs out of
//! the image root is refused.

use std::path::Path;

use anyhow::{anyhow, bail, Context as _};
use serde_json::Value;

use crate::element::manifest::parse_mode;
use crate::path::ImagePath;
use crate::tree::disk::host_entry;
use crate::tree::{Entry, Kind, Tree};

fn dest(element: &str, what: &str, path: &str) -> anyhow::Result<ImagePath> {
    match ImagePath::new(path) {
        Ok(p) if !p.is_root() => Ok(p),
        Ok(_) => bail!("element `{element}`: {what} `{path}` is the image root; name a file"),
        Err(e) => bail!("element `{element}`: {what} {e}; destinations are paths inside the image"),
    }
}

/// `inject-files`: `files = { "/etc/x" = { content-base64 = "…", mode = "0600" },
/// "/opt/y" = { source = "host path" } }`.
pub fn inject(
    tree: &mut Tree,
    element: &str,
    params: &Value,
    image_dir: &Path,
    mtime: i64,
) -> anyhow::Result<usize> {
    use base64::Engine as _;
    let Some(files) = params.get("files").and_then(Value::as_object) else {
        bail!("element `{element}`: param `files` is empty; give a table of image path = {{ content-base64 = \"…\" }} or {{ source = \"…\" }}");
    };
    let mut count = 0;
    for (path, spec) in files {
        let at = dest(element, "destination", path)?;
        let mode = match spec.get("mode").and_then(Value::as_str) {
            Some(m) => parse_mode(m).map_err(|e| anyhow!("element `{element}`: {path}: {e}"))?,
            None => 0o644,
        };
        let mut entry = match (
            spec.get("content-base64").and_then(Value::as_str),
            spec.get("source").and_then(Value::as_str),
        ) {
            (Some(b64), None) => {
                let bytes = base64::engine::general_purpose::STANDARD.decode(b64.trim()).map_err(|e| {
                    anyhow!("element `{element}`: {path}: content-base64 is not base64 ({e})")
                })?;
                Entry::bytes(bytes, mode, mtime, element)
            }
            (None, Some(src)) => {
                let host = image_dir.join(src);
                let meta = std::fs::metadata(&host)
                    .with_context(|| format!("element `{element}`: {path}: reading {}", host.display()))?;
                if !meta.is_file() {
                    bail!("element `{element}`: {path}: source {} is not a file", host.display());
                }
                let mut e = host_entry(&host, &meta, element)?;
                e.mode = mode;
                e
            }
            _ => bail!("element `{element}`: {path}: give exactly one of content-base64 or source"),
        };
        entry.uid = 0;
        entry.gid = 0;
        tree.insert(&at, entry).map_err(|e| anyhow!("element `{element}`: {path}: {e}"))?;
        count += 1;
    }
    Ok(count)
}

/// `dev-user`: a login for debugging a node — passwd, group and shadow lines (the
/// shadow file 0600), a home with authorized_keys, and passwordless sudo if asked.
pub fn dev_user(tree: &mut Tree, element: &str, params: &Value, mtime: i64) -> anyhow::Result<usize> {
    let s = |k: &str| params.get(k).and_then(Value::as_str).filter(|v| !v.is_empty());
    let name = s("name").ok_or_else(|| anyhow!("element `{element}`: param `name` is empty"))?;
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') || name.len() > 32 {
        bail!("element `{element}`: `{name}` is not a user name (letters, digits, - and _, at most 32)");
    }
    let uid = params.get("uid").and_then(Value::as_u64).unwrap_or(1000) as u32;
    let hash = match (s("password-hash"), s("password")) {
        (Some(h), _) => h.to_string(),
        (None, Some(p)) => sha512_crypt(p, name)?,
        (None, None) => "!".to_string(),
    };
    if hash.contains(':') || hash.contains('\n') {
        bail!("element `{element}`: password-hash holds `:` or a line break");
    }
    let shell = s("shell").unwrap_or("/bin/sh");
    let home = format!("/home/{name}");
    let mut count = 0;
    let mut append =
        |tree: &mut Tree, path: &str, base: &str, line: String, mode: u32| -> anyhow::Result<()> {
            let at = ImagePath::new(path).expect("valid");
            let mut text = match tree.get(&at).map(|e| &e.kind) {
                Some(Kind::File { source, .. }) => String::from_utf8_lossy(&source.read_all()?).into_owned(),
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
            tree.insert(&at, Entry::bytes(text.into_bytes(), mode, mtime, element))
                .map_err(anyhow::Error::msg)?;
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
    append(tree, "etc/shadow", "root:*:0:0:99999:7:::\n", format!("{name}:{hash}:0:0:99999:7:::"), 0o600)?;
    let owned = |mut e: Entry| {
        e.uid = uid;
        e.gid = uid;
        e
    };
    let home_at = ImagePath::new(&home).expect("valid");
    tree.insert(&home_at, owned(Entry::dir(0o700, mtime, element))).map_err(anyhow::Error::msg)?;
    let keys: Vec<String> = match params.get("authorized-keys") {
        Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(String::from)).collect(),
        Some(Value::String(k)) => vec![k.clone()],
        _ => Vec::new(),
    };
    if !keys.is_empty() {
        let ssh = home_at.join(".ssh").map_err(anyhow::Error::msg)?;
        tree.insert(&ssh, owned(Entry::dir(0o700, mtime, element))).map_err(anyhow::Error::msg)?;
        let text = keys.join("\n") + "\n";
        let at = ssh.join("authorized_keys").map_err(anyhow::Error::msg)?;
        tree.insert(&at, owned(Entry::bytes(text.into_bytes(), 0o600, mtime, element)))
            .map_err(anyhow::Error::msg)?;
        count += 2;
    }
    if params.get("sudo").and_then(Value::as_bool).unwrap_or(false) {
        let at = ImagePath::new(&format!("etc/sudoers.d/{name}")).expect("valid");
        let text = format!("{name} ALL=(ALL) NOPASSWD:ALL\n");
        tree.insert(&at, Entry::bytes(text.into_bytes(), 0o440, mtime, element))
            .map_err(anyhow::Error::msg)?;
        count += 1;
    }
    Ok(count + 1)
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

/// `agent`: the payload (a file or a directory tree) at `dest`, its config rendered
/// from a template to `dest/agent.conf`, and a start-up step that starts it after the
/// network and says so on the console.
pub fn agent(
    tree: &mut Tree,
    element: &str,
    params: &Value,
    image_dir: &Path,
    context: &Value,
    mtime: i64,
) -> anyhow::Result<usize> {
    let s = |k: &str| params.get(k).and_then(Value::as_str).filter(|v| !v.is_empty());
    let payload =
        image_dir.join(s("payload").ok_or_else(|| anyhow!("element `{element}`: param `payload` is empty"))?);
    let dest_path = s("dest").unwrap_or("/opt/agent");
    let dest_at = dest(element, "dest", dest_path)?;
    let meta = std::fs::symlink_metadata(&payload)
        .with_context(|| format!("element `{element}`: payload {}", payload.display()))?;
    let mut count = 0;
    if meta.is_dir() {
        for e in walkdir::WalkDir::new(&payload).min_depth(1).sort_by_file_name() {
            let e = e?;
            let rel = e.path().strip_prefix(&payload)?.to_string_lossy().into_owned();
            let at = dest_at.join(&rel).map_err(anyhow::Error::msg)?;
            let mut entry = host_entry(e.path(), &e.metadata()?, element)?;
            entry.uid = 0;
            entry.gid = 0;
            tree.insert(&at, entry).map_err(|er| anyhow!("element `{element}`: {at}: {er}"))?;
            count += 1;
        }
    } else {
        let mut entry = host_entry(&payload, &std::fs::metadata(&payload)?, element)?;
        entry.uid = 0;
        entry.gid = 0;
        entry.mode |= 0o755;
        tree.insert(&dest_at, entry).map_err(|er| anyhow!("element `{element}`: {dest_at}: {er}"))?;
        count += 1;
    }
    let dir = if meta.is_dir() { dest_at.clone() } else { dest_at.parent().unwrap_or_else(ImagePath::root) };
    if let Some(config) = s("config") {
        let path = image_dir.join(config);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("element `{element}`: config {}", path.display()))?;
        let ctx = tera::Context::from_serialize(context).map_err(|e| anyhow!("{e}"))?;
        let rendered = tera::Tera::default()
            .render_str(&text, &ctx, false)
            .map_err(|e| anyhow!("element `{element}`: template {}: {e}", path.display()))?;
        let at = dir.join("agent.conf").map_err(anyhow::Error::msg)?;
        tree.insert(&at, Entry::bytes(rendered.into_bytes(), 0o600, mtime, element))
            .map_err(anyhow::Error::msg)?;
        count += 1;
    }
    if let Some(start) = s("start") {
        // Runs after the network (40-network) and before anything later; the agent keeps
        // running in its own session with its output on the console.
        let script = format!(
            "#!/bin/sh\n# Starts the agent; written by smelt's {element} element.\ncd {dir} || exit 1\n\
             setsid sh -c {quoted} </dev/null >/dev/console 2>&1 &\necho \"smelt-agent: started {quoted} (pid $!)\"\n",
            dir = shell_quote(&format!("/{}", dir.as_str())),
            quoted = shell_quote(start),
        );
        let at = ImagePath::new("etc/smelt/init.d/60-agent").expect("valid");
        tree.insert(&at, Entry::bytes(script.into_bytes(), 0o755, mtime, element))
            .map_err(anyhow::Error::msg)?;
        count += 1;
    }
    Ok(count)
}

/// `timezone`: `/etc/localtime` from the host's zoneinfo and `/etc/timezone`.
pub fn timezone(
    tree: &mut Tree,
    element: &str,
    params: &Value,
    client_zone: Option<&str>,
    mtime: i64,
) -> anyhow::Result<usize> {
    let zone =
        params.get("zone").and_then(Value::as_str).filter(|z| !z.is_empty()).or(client_zone).unwrap_or("UTC");
    if zone.contains("..") || zone.starts_with('/') {
        bail!("element `{element}`: `{zone}` is not a time zone name such as Europe/Madrid");
    }
    let host = Path::new("/usr/share/zoneinfo").join(zone);
    let meta = std::fs::metadata(&host).with_context(|| {
        format!(
            "element `{element}`: no {} on this host: is `{zone}` a time zone, and is tzdata installed?",
            host.display()
        )
    })?;
    let mut entry = host_entry(&host, &meta, element)?;
    entry.uid = 0;
    entry.gid = 0;
    entry.mode = 0o644;
    tree.insert(&ImagePath::new("etc/localtime").expect("valid"), entry).map_err(anyhow::Error::msg)?;
    let text = format!("{zone}\n").into_bytes();
    tree.insert(&ImagePath::new("etc/timezone").expect("valid"), Entry::bytes(text, 0o644, mtime, element))
        .map_err(anyhow::Error::msg)?;
    Ok(2)
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
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
