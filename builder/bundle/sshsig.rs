//! Signatures in OpenSSH's own format (`ssh-keygen -Y sign`, PROTOCOL.sshsig): an
//! Ed25519 key read from an OpenSSH private key file signs a message (a bundle's
//! manifest) under a namespace; the armoured signature verifies with `ssh-keygen -Y
//! verify` as with smelt, against a public key in `.pub` form.

use std::path::Path;

use anyhow::{bail, Context as _};
use base64::Engine as _;
use sha2::{Digest, Sha256, Sha512};

/// The namespace bundle signatures are made in (`ssh-keygen -Y verify -n smelt-bundle`).
pub const NAMESPACE: &str = "smelt-bundle";
const MAGIC: &[u8] = b"SSHSIG";
const KEY_TYPE: &str = "ssh-ed25519";

/// An Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey(pub [u8; 32]);

/// An Ed25519 key pair, from an unencrypted OpenSSH private key file.
pub struct SigningKey {
    pair: ring::signature::Ed25519KeyPair,
    pub public: PublicKey,
}

impl PublicKey {
    /// Reads `ssh-ed25519 AAAA… comment` (a `.pub` file).
    pub fn read(path: &Path) -> anyhow::Result<PublicKey> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut words = text.split_whitespace();
        let (Some(kind), Some(b64)) = (words.next(), words.next()) else {
            bail!("{}: not an OpenSSH public key (ssh-ed25519 AAAA…)", path.display())
        };
        if kind != KEY_TYPE {
            bail!(
                "{}: a {kind} key; bundles are signed with Ed25519 keys (ssh-keygen -t ed25519)",
                path.display()
            );
        }
        let blob = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .with_context(|| format!("{}: the key is not base64", path.display()))?;
        PublicKey::from_wire(&blob).with_context(|| format!("{}: not an OpenSSH public key", path.display()))
    }

    fn from_wire(blob: &[u8]) -> anyhow::Result<PublicKey> {
        let mut r = Reader(blob);
        if r.string()? != KEY_TYPE.as_bytes() {
            bail!("not an ssh-ed25519 key");
        }
        let key: [u8; 32] =
            r.string()?.try_into().map_err(|_| anyhow::anyhow!("an Ed25519 key is 32 bytes"))?;
        Ok(PublicKey(key))
    }

    fn wire(&self) -> Vec<u8> {
        let mut w = Vec::new();
        put_string(&mut w, KEY_TYPE.as_bytes());
        put_string(&mut w, &self.0);
        w
    }

    /// `SHA256:…`, as `ssh-keygen -l` shows it.
    pub fn fingerprint(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD_NO_PAD.encode(Sha256::digest(self.wire()));
        format!("SHA256:{b64}")
    }
}

impl SigningKey {
    /// Reads an OpenSSH private key file (`ssh-keygen -t ed25519`), unencrypted.
    pub fn read(path: &Path) -> anyhow::Result<SigningKey> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let body: String = text
            .lines()
            .skip_while(|l| !l.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .collect();
        let not_key = || {
            anyhow::anyhow!(
                "{}: not an OpenSSH private key (ssh-keygen -t ed25519 makes one)",
                path.display()
            )
        };
        let blob = base64::engine::general_purpose::STANDARD.decode(body.trim()).map_err(|_| not_key())?;
        let rest = blob.strip_prefix(b"openssh-key-v1\0".as_slice()).ok_or_else(not_key)?;
        let mut r = Reader(rest);
        let (cipher, _kdf, _opts) = (r.string()?, r.string()?, r.string()?);
        if cipher != b"none" {
            bail!(
                "{}: the key is encrypted; sign with a copy without a passphrase kept where the signing runs \
                 (ssh-keygen -p -N '' -f COPY)",
                path.display()
            );
        }
        if r.u32()? != 1 {
            bail!("{}: holds several keys; give a file with one", path.display());
        }
        let public = PublicKey::from_wire(r.string()?).map_err(|e| {
            anyhow::anyhow!(
                "{}: {e}; bundles are signed with Ed25519 keys (ssh-keygen -t ed25519)",
                path.display()
            )
        })?;
        let mut private = Reader(r.string()?);
        if private.u32()? != private.u32()? {
            bail!("{}: damaged (its check words differ)", path.display());
        }
        let _kind = private.string()?;
        let _public = private.string()?;
        let secret = private.string()?;
        let seed = secret.get(..32).ok_or_else(not_key)?;
        let pair = ring::signature::Ed25519KeyPair::from_seed_and_public_key(seed, &public.0)
            .map_err(|_| anyhow::anyhow!("{}: its private and public halves do not match", path.display()))?;
        Ok(SigningKey { pair, public })
    }

    /// The armoured signature of `message` in `namespace`.
    pub fn sign(&self, message: &[u8], namespace: &str) -> String {
        let sig = self.pair.sign(&signed_data(message, namespace));
        let mut sig_wire = Vec::new();
        put_string(&mut sig_wire, KEY_TYPE.as_bytes());
        put_string(&mut sig_wire, sig.as_ref());
        let mut blob = MAGIC.to_vec();
        blob.extend_from_slice(&1u32.to_be_bytes());
        put_string(&mut blob, &self.public.wire());
        put_string(&mut blob, namespace.as_bytes());
        put_string(&mut blob, b"");
        put_string(&mut blob, b"sha512");
        put_string(&mut blob, &sig_wire);
        let b64 = base64::engine::general_purpose::STANDARD.encode(blob);
        let mut out = String::from("-----BEGIN SSH SIGNATURE-----\n");
        for chunk in b64.as_bytes().chunks(70) {
            out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
            out.push('\n');
        }
        out.push_str("-----END SSH SIGNATURE-----\n");
        out
    }
}

/// Who made an armoured signature, and whether it verifies for `message` in `namespace`.
pub fn check(armoured: &str, message: &[u8], namespace: &str) -> anyhow::Result<(PublicKey, bool)> {
    let body: String = armoured.lines().filter(|l| !l.starts_with("-----")).collect();
    let blob =
        base64::engine::general_purpose::STANDARD.decode(body.trim()).context("not an SSH signature")?;
    let rest = blob.strip_prefix(MAGIC).context("not an SSH signature")?;
    let mut r = Reader(rest);
    if r.u32()? != 1 {
        bail!("an SSH signature of a version smelt does not read");
    }
    let public = PublicKey::from_wire(r.string()?)?;
    let signed_namespace = r.string()?;
    let _reserved = r.string()?;
    if r.string()? != b"sha512" {
        bail!("an SSH signature over another hash than sha512");
    }
    let mut sig = Reader(r.string()?);
    let _kind = sig.string()?;
    let sig = sig.string()?;
    if signed_namespace != namespace.as_bytes() {
        return Ok((public, false));
    }
    let key = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &public.0);
    let ok = key.verify(&signed_data(message, namespace), sig).is_ok();
    Ok((public, ok))
}

/// What is signed: the preamble, the namespace and the message's SHA-512.
fn signed_data(message: &[u8], namespace: &str) -> Vec<u8> {
    let mut d = MAGIC.to_vec();
    put_string(&mut d, namespace.as_bytes());
    put_string(&mut d, b"");
    put_string(&mut d, b"sha512");
    put_string(&mut d, &Sha512::digest(message));
    d
}

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// SSH wire format: big-endian u32s and length-prefixed strings.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u32(&mut self) -> anyhow::Result<u32> {
        let (head, rest) = self.0.split_at_checked(4).context("truncated")?;
        self.0 = rest;
        Ok(u32::from_be_bytes(head.try_into().expect("4 bytes")))
    }

    fn string(&mut self) -> anyhow::Result<&'a [u8]> {
        let n = self.u32()? as usize;
        let (s, rest) = self.0.split_at_checked(n).context("truncated")?;
        self.0 = rest;
        Ok(s)
    }
}
