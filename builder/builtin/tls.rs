//! `tls`: a certificate and key in the image. Generated certificates (rcgen) are made
//! once and kept in a state directory beside the image — a new key, or even a new
//! ECDSA signature, would change the image's bytes on every build — and are made
//! again only when the names, lifetime or key type asked for change.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use serde_json::{json, Value};

use super::{given, BuiltIn, Context};
use crate::path::ImagePath;
use crate::secrets;
use crate::tree::{Entry, Tree};

#[derive(serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Tls {
    hostname: Option<String>,
    sans: Vec<String>,
    days: u64,
    key_type: String,
    cert: Option<String>,
    key: Option<String>,
    ca: Option<String>,
    client_ca: Option<String>,
    dest: String,
    state_dir: String,
}

impl BuiltIn for Tls {
    fn stage(&self, tree: &mut Tree, cx: &mut Context) -> anyhow::Result<usize> {
        self.put(tree, cx.element, cx.image.dir(), &cx.image.name, cx.mtime)
    }

    /// Its key is meant to be in the image.
    fn secrets(&self, element: &str) -> Vec<secrets::Made> {
        vec![secrets::Made::PrivateKeys { element: element.into() }]
    }
}

impl Tls {
    fn put(
        &self,
        tree: &mut Tree,
        element: &str,
        image_dir: &Path,
        image_name: &str,
        epoch: i64,
    ) -> anyhow::Result<usize> {
        let dest = &self.dest;
        let host_file = |v: &Option<String>| given(v).map(|p| crate::lock::read(&image_dir.join(p)));
        let (cert, key) = match (host_file(&self.cert), host_file(&self.key)) {
            (Some(c), Some(k)) => (read(&c, element)?, read(&k, element)?),
            (Some(_), None) | (None, Some(_)) => {
                bail!("element `{element}`: give both `cert` and `key`, or neither to generate them")
            }
            (None, None) => self.generated(element, image_dir, image_name, epoch)?,
        };
        let mut count = 0;
        let mut put = |name: &str, bytes: String, mode: u32| -> anyhow::Result<()> {
            let at = ImagePath::new(&format!("{dest}/{name}"))
                .map_err(|e| anyhow::anyhow!("element `{element}`: dest: {e}"))?;
            tree.insert(&at, Entry::bytes(bytes.into_bytes(), mode, epoch, element))?;
            count += 1;
            Ok(())
        };
        put("cert.pem", cert.clone(), 0o644)?;
        put("key.pem", key, 0o600)?;
        if let Some(ca) = host_file(&self.ca) {
            put("ca.pem", read(&ca, element)?, 0o644)?;
        }
        if let Some(ca) = host_file(&self.client_ca) {
            put("client-ca.pem", read(&ca, element)?, 0o644)?;
        }
        fingerprint(&cert).with_context(|| format!("element `{element}`: cert.pem"))?;
        Ok(count)
    }
}

fn read(path: &Path, element: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("element `{element}`: reading {}", path.display()))
}

impl Tls {
    /// The certificate and key kept in the state directory, made now if missing or if the
    /// parameters they were made for changed.
    fn generated(
        &self,
        element: &str,
        image_dir: &Path,
        image_name: &str,
        epoch: i64,
    ) -> anyhow::Result<(String, String)> {
        let hostname = given(&self.hostname).unwrap_or(image_name).to_string();
        let (sans, days, key_type) = (&self.sans, self.days, &self.key_type);
        // Not the build's time: a build without SOURCE_DATE_EPOCH would otherwise make a new
        // key every time. The certificate is valid from when it was made.
        let wanted = json!({ "hostname": hostname, "sans": sans, "days": days, "key-type": key_type });
        // Kept with the project and carried by its bundles: a rebuild must present the same key.
        let state: PathBuf =
            crate::lock::read_secret(&image_dir.join(&self.state_dir).join("tls").join(&hostname));
        let (cert_path, key_path, made_for) =
            (state.join("cert.pem"), state.join("key.pem"), state.join("made-for.json"));
        if let (Ok(cert), Ok(key), Ok(made)) = (
            std::fs::read_to_string(&cert_path),
            std::fs::read_to_string(&key_path),
            std::fs::read_to_string(&made_for),
        ) {
            if serde_json::from_str::<Value>(&made).ok().as_ref() == Some(&wanted) {
                return Ok((cert, key));
            }
        }
        let alg = match key_type.as_str() {
            "ecdsa-p256" => &rcgen::PKCS_ECDSA_P256_SHA256,
            "ecdsa-p384" => &rcgen::PKCS_ECDSA_P384_SHA384,
            "ed25519" => &rcgen::PKCS_ED25519,
            other => {
                bail!("element `{element}`: key-type `{other}` is not ecdsa-p256, ecdsa-p384 or ed25519")
            }
        };
        let key = rcgen::KeyPair::generate_for(alg)
            .with_context(|| format!("element `{element}`: generating a key"))?;
        let mut names = vec![hostname.clone()];
        names.extend(sans.iter().cloned());
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new())?;
        p.subject_alt_names = names
            .iter()
            .map(|n| match n.parse::<IpAddr>() {
                Ok(ip) => Ok(rcgen::SanType::IpAddress(ip)),
                Err(_) => n.clone().try_into().map(rcgen::SanType::DnsName),
            })
            .collect::<Result<_, _>>()
            .with_context(|| {
                format!("element `{element}`: a name in hostname or sans is not a DNS name or IP address")
            })?;
        p.distinguished_name.push(rcgen::DnType::CommonName, hostname.clone());
        p.not_before = time::OffsetDateTime::from_unix_timestamp(epoch)?;
        p.not_after = time::OffsetDateTime::from_unix_timestamp(epoch + days as i64 * 86_400)?;
        let cert = p.self_signed(&key)?;
        let (cert, key) = (cert.pem(), key.serialize_pem());
        write_secret_dir(&state)?;
        std::fs::write(&cert_path, &cert)?;
        write_secret(&key_path, &key)?;
        std::fs::write(&made_for, serde_json::to_string_pretty(&wanted)? + "\n")?;
        crate::ui::warning(&format!(
        "tls: generated a new key and certificate for {hostname} in {}; keep them (later builds reuse them, and so give the same bytes)",
        state.display()
    ));
        Ok((cert, key))
    }
}

fn write_secret_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    Ok(())
}

/// Writes a private key readable by its owner only, from its first byte.
fn write_secret(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// The SHA-256 of a PEM certificate's DER bytes, as `AB:CD:…`.
pub fn fingerprint(pem: &str) -> anyhow::Result<String> {
    use base64::Engine as _;
    use sha2::{Digest, Sha256};
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .context("the certificate is not PEM")?;
    Ok(Sha256::digest(&der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":"))
}
