//! An OCI registry, through the distribution API (`/v2/…`) that every registry speaks
//! (GitHub's, GitLab's, Harbor, `distribution`): blobs by digest (checked as they
//! stream), manifests by tag. TLS against the system's CAs or a given CA file; plain
//! HTTP only for a registry on this machine (loopback) or when asked
//! (`SMELT_REGISTRY_PLAIN_HTTP=1`). Credentials as `docker login` keeps them
//! (`$DOCKER_CONFIG/config.json`, `~/.docker/config.json`), or
//! `SMELT_REGISTRY_USER`/`SMELT_REGISTRY_PASSWORD`, or a token in `SMELT_REGISTRY_TOKEN`;
//! a registry that answers 401 with a Bearer challenge gets them exchanged for a token.

pub mod cache;

use std::fs::File;
use std::io::{self, Read as _};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context as _};
use base64::Engine as _;

use crate::io::count::CountingWriter;

/// `oci://HOST[:PORT]/REPO[:TAG]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub host: String,
    pub repo: String,
    pub tag: Option<String>,
}

impl Reference {
    pub fn parse(text: &str) -> anyhow::Result<Reference> {
        let rest = text.strip_prefix("oci://").with_context(|| {
            format!("`{text}` is not a registry reference: write oci://HOST[:PORT]/REPO[:TAG]")
        })?;
        let (host, path) = rest
            .split_once('/')
            .with_context(|| format!("`{text}` names no repository: write oci://HOST[:PORT]/REPO[:TAG]"))?;
        let (repo, tag) = match path.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r, Some(t.to_string())),
            _ => (path, None),
        };
        let repo_ok = !repo.is_empty()
            && repo.split('/').all(|p| {
                !p.is_empty()
                    && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            });
        if host.is_empty() || !repo_ok {
            bail!("`{text}`: a repository is lower-case letters, digits, `.`, `_`, `-` and `/`");
        }
        if let Some(t) = &tag {
            if !valid_tag(t) {
                bail!("`{text}`: a tag is up to 128 letters, digits, `.`, `_` and `-`");
            }
        }
        Ok(Reference { host: host.to_string(), repo: repo.to_string(), tag })
    }

    /// Whether the registry is on this machine, where plain HTTP is allowed.
    fn loopback(&self) -> bool {
        let name = self.host.rsplit_once(':').map_or(self.host.as_str(), |(h, _)| h);
        matches!(name, "localhost" | "127.0.0.1" | "[::1]") || name.starts_with("127.")
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "oci://{}/{}", self.host, self.repo)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        Ok(())
    }
}

pub fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && !t.starts_with(['.', '-'])
        && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// A connection to one repository of a registry.
pub struct Registry {
    pub reference: Reference,
    agent: ureq::Agent,
    base: String,
    credentials: Option<(String, String)>,
    /// The `Authorization` header that worked last.
    authorization: Mutex<Option<String>>,
}

type Response = ureq::http::Response<ureq::Body>;

const MANIFEST_TYPES: &str =
    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

impl Registry {
    pub fn open(reference: &Reference, ca: Option<&Path>) -> anyhow::Result<Registry> {
        let plain =
            reference.loopback() || std::env::var("SMELT_REGISTRY_PLAIN_HTTP").is_ok_and(|v| v == "1");
        let trust = match ca {
            Some(path) => crate::trust::Trust::Ca(path),
            None => crate::trust::Trust::System,
        };
        let tls =
            crate::trust::tls_config(trust).map_err(|e| anyhow::anyhow!("registry {reference}: {e}"))?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_recv_response(Some(Duration::from_secs(120)))
            .max_redirects(5)
            .tls_config(tls)
            .user_agent(concat!("smelt/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let scheme = if plain { "http" } else { "https" };
        let authorization = std::env::var("SMELT_REGISTRY_TOKEN").ok().map(|t| format!("Bearer {t}"));
        Ok(Registry {
            reference: reference.clone(),
            agent,
            base: format!("{scheme}://{}/v2/{}", reference.host, reference.repo),
            credentials: credentials(&reference.host),
            authorization: Mutex::new(authorization),
        })
    }

    /// Sends a request (made again after authenticating, on a 401).
    fn send(
        &self,
        what: &str,
        make: &dyn Fn(Option<&str>) -> Result<Response, ureq::Error>,
    ) -> anyhow::Result<Response> {
        let failed =
            |e: ureq::Error| anyhow::anyhow!("registry {}: {what}: {}", self.reference.host, words(&e));
        let auth = self.authorization.lock().unwrap().clone();
        let response = make(auth.as_deref()).map_err(failed)?;
        if response.status() != 401 {
            return Ok(response);
        }
        let challenge = response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let header = self.authenticate(&challenge)?;
        *self.authorization.lock().unwrap() = Some(header.clone());
        let response = make(Some(&header)).map_err(failed)?;
        if response.status() == 401 || response.status() == 403 {
            bail!(
                "registry {}: {what}: refused ({}): log in with `docker login {}`, or set SMELT_REGISTRY_USER and \
                 SMELT_REGISTRY_PASSWORD (or SMELT_REGISTRY_TOKEN)",
                self.reference.host,
                response.status(),
                self.reference.host
            );
        }
        Ok(response)
    }

    /// The `Authorization` header a 401's challenge asks for: Basic with the
    /// credentials, or a Bearer token from the realm it names.
    fn authenticate(&self, challenge: &str) -> anyhow::Result<String> {
        let basic = self.credentials.as_ref().map(|(u, p)| {
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")))
        });
        let Some(params) = challenge.strip_prefix("Bearer ") else {
            return basic.with_context(|| {
                format!(
                    "registry {} wants credentials: log in with `docker login {}`, or set SMELT_REGISTRY_USER and \
                     SMELT_REGISTRY_PASSWORD",
                    self.reference.host, self.reference.host
                )
            });
        };
        let param = |name: &str| {
            params.split(',').find_map(|kv| {
                let (k, v) = kv.trim().split_once('=')?;
                (k == name).then(|| v.trim_matches('"').to_string())
            })
        };
        let realm = param("realm").context("a Bearer challenge without a realm")?;
        let mut url = format!("{realm}?");
        for name in ["service", "scope"] {
            if let Some(v) = param(name) {
                url.push_str(&format!("{name}={}&", v.replace(' ', "%20")));
            }
        }
        let mut req = self.agent.get(&url);
        if let Some(b) = &basic {
            req = req.header("Authorization", b);
        }
        let mut response =
            req.call().map_err(|e| anyhow::anyhow!("registry token from {realm}: {}", words(&e)))?;
        if !response.status().is_success() {
            bail!("registry token from {realm}: refused ({}): check the credentials", response.status());
        }
        let body: serde_json::Value = serde_json::from_str(&response.body_mut().read_to_string()?)?;
        let token = body["token"]
            .as_str()
            .or(body["access_token"].as_str())
            .context("a token reply without a token")?;
        Ok(format!("Bearer {token}"))
    }

    pub fn has_blob(&self, digest: &str) -> anyhow::Result<bool> {
        let url = format!("{}/blobs/{digest}", self.base);
        let r =
            self.send(&format!("HEAD blob {digest}"), &|auth| with_auth(self.agent.head(&url), auth).call())?;
        match r.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            s => bail!("registry {}: HEAD blob {digest}: HTTP {s}", self.reference.host),
        }
    }

    /// Streams a blob into `to`, checking it against its digest on the way; a wrong
    /// blob leaves nothing at `to`.
    pub fn get_blob(&self, digest: &str, to: &Path) -> anyhow::Result<u64> {
        let url = format!("{}/blobs/{digest}", self.base);
        let mut r =
            self.send(&format!("GET blob {digest}"), &|auth| with_auth(self.agent.get(&url), auth).call())?;
        if !r.status().is_success() {
            bail!("registry {}: GET blob {digest}: HTTP {}", self.reference.host, r.status());
        }
        let pending = crate::io::atomic::Pending::new(to);
        let mut out = CountingWriter::hashing(io::BufWriter::new(pending.create_file()?));
        let mut body = r.body_mut().with_config().limit(u64::MAX).reader();
        io::copy(&mut body, &mut out)
            .with_context(|| format!("registry {}: GET blob {digest}", self.reference.host))?;
        let (w, n, hash) = out.into_parts();
        w.into_inner().map_err(|e| e.into_error())?;
        let got = format!("sha256:{}", hash.expect("hashing"));
        if got != digest {
            bail!(
                "registry {}: blob {digest} arrived as {got}: the registry or the way to it is damaged",
                self.reference.host
            );
        }
        pending.publish()?;
        Ok(n)
    }

    /// Uploads a file as the blob `digest` (its SHA-256), unless the registry has it.
    /// Returns whether it was sent.
    pub fn put_blob(&self, path: &Path, digest: &str) -> anyhow::Result<bool> {
        if self.has_blob(digest)? {
            return Ok(false);
        }
        let url = self.upload_url(digest)?;
        let r = self.send(&format!("PUT blob {digest}"), &|auth| {
            let file = File::open(path)?;
            with_auth(self.agent.put(&url), auth)
                .header("Content-Type", "application/octet-stream")
                .send(file)
        })?;
        if r.status() != 201 {
            bail!(
                "registry {}: PUT blob {digest} ({}): HTTP {}",
                self.reference.host,
                path.display(),
                r.status()
            );
        }
        Ok(true)
    }

    /// Uploads small bytes (a config, a signature) as a blob; its digest.
    pub fn put_bytes(&self, bytes: &[u8]) -> anyhow::Result<String> {
        let hex = crate::io::count::sha256_hex(bytes);
        let digest = format!("sha256:{hex}");
        if !self.has_blob(&digest)? {
            let url = self.upload_url(&digest)?;
            let r = self.send(&format!("PUT blob {digest}"), &|auth| {
                with_auth(self.agent.put(&url), auth)
                    .header("Content-Type", "application/octet-stream")
                    .send(bytes)
            })?;
            if r.status() != 201 {
                bail!("registry {}: PUT blob {digest}: HTTP {}", self.reference.host, r.status());
            }
        }
        Ok(digest)
    }

    /// Starts a monolithic upload: where to PUT the blob `digest`.
    fn upload_url(&self, digest: &str) -> anyhow::Result<String> {
        let start = format!("{}/blobs/uploads/", self.base);
        let r =
            self.send("start an upload", &|auth| with_auth(self.agent.post(&start), auth).send_empty())?;
        if r.status() != 202 {
            bail!("registry {}: start an upload: HTTP {}", self.reference.host, r.status());
        }
        let location = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .context("an upload without a Location")?;
        let mut url = if location.starts_with("http") {
            location.to_string()
        } else {
            let origin = self.base.split("/v2/").next().unwrap_or_default();
            format!("{origin}{location}")
        };
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&format!("digest={}", digest.replace(':', "%3A")));
        Ok(url)
    }

    /// The manifest tagged `tag`, or none.
    pub fn get_manifest(&self, tag: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let url = format!("{}/manifests/{tag}", self.base);
        let mut r = self.send(&format!("GET manifest {tag}"), &|auth| {
            with_auth(self.agent.get(&url), auth).header("Accept", MANIFEST_TYPES).call()
        })?;
        match r.status().as_u16() {
            200 => Ok(Some(r.body_mut().with_config().limit(16 << 20).read_to_vec()?)),
            404 => Ok(None),
            s => bail!("registry {}: GET manifest {tag}: HTTP {s}", self.reference.host),
        }
    }

    pub fn put_manifest(&self, tag: &str, bytes: &[u8], media_type: &str) -> anyhow::Result<()> {
        let url = format!("{}/manifests/{tag}", self.base);
        let mut r = self.send(&format!("PUT manifest {tag}"), &|auth| {
            with_auth(self.agent.put(&url), auth).header("Content-Type", media_type).send(bytes)
        })?;
        if r.status() != 201 {
            let body = r.body_mut().read_to_string().unwrap_or_default();
            bail!(
                "registry {}: PUT manifest {tag}: HTTP {}: {}",
                self.reference.host,
                r.status(),
                body.trim()
            );
        }
        Ok(())
    }
}

fn with_auth<B>(req: ureq::RequestBuilder<B>, auth: Option<&str>) -> ureq::RequestBuilder<B> {
    match auth {
        Some(a) => req.header("Authorization", a),
        None => req,
    }
}

/// A transport failure in words.
fn words(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) => format!("cannot be reached: {io}"),
        ureq::Error::HostNotFound => "its host is not known to DNS".into(),
        ureq::Error::Timeout(_) => "did not answer in time".into(),
        e if e.to_string().contains("certificate") => {
            format!("its TLS certificate is not trusted ({e}): give its CA with --registry-ca")
        }
        e => e.to_string(),
    }
}

/// The user's credentials for `host`: the environment's, else `docker login`'s.
fn credentials(host: &str) -> Option<(String, String)> {
    if let (Ok(u), Ok(p)) = (std::env::var("SMELT_REGISTRY_USER"), std::env::var("SMELT_REGISTRY_PASSWORD")) {
        return Some((u, p));
    }
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker")))?;
    let mut text = String::new();
    File::open(dir.join("config.json")).ok()?.read_to_string(&mut text).ok()?;
    let config: serde_json::Value = serde_json::from_str(&text).ok()?;
    let auth = config["auths"][host]["auth"].as_str()?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(auth).ok()?;
    let (u, p) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_and_say_what_is_wrong() {
        let r = Reference::parse("oci://127.0.0.1:5000/smelt-cache").unwrap();
        assert_eq!(
            (r.host.as_str(), r.repo.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", "smelt-cache", None)
        );
        assert!(r.loopback());
        let r = Reference::parse("oci://ghcr.io/acme/images/ipa:v1.2").unwrap();
        assert_eq!(
            (r.host.as_str(), r.repo.as_str(), r.tag.as_deref()),
            ("ghcr.io", "acme/images/ipa", Some("v1.2"))
        );
        assert!(!r.loopback());
        assert!(Reference::parse("https://ghcr.io/x").unwrap_err().to_string().contains("oci://HOST"));
        assert!(Reference::parse("oci://ghcr.io/Acme").unwrap_err().to_string().contains("lower-case"));
    }
}
