//! Who signs: a [`Signer`] holds a certificate and makes RSA PKCS#1 v1.5 SHA-256
//! signatures with the matching private key. [`KeyFile`] is a PEM key on disk; a
//! PKCS#11 token (an HSM, a cloud KMS) is another implementation of the same trait.

use std::path::{Path, PathBuf};

use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::pkcs8::DecodePrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use sha2::{Digest, Sha256};

pub trait Signer {
    /// The signing certificate, DER.
    fn certificate(&self) -> &[u8];
    /// The signature of SHA-256(`message`).
    fn sign(&self, message: &[u8]) -> anyhow::Result<Vec<u8>>;
}

/// Why a key and certificate cannot sign. Each names the file; none shows key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the Secure Boot key {}: {why}", path.display())]
    Unreadable { path: PathBuf, why: String },
    #[error("cannot read the Secure Boot certificate {}: {why}", path.display())]
    BadCertificate { path: PathBuf, why: String },
    #[error("the Secure Boot key {} does not match the certificate {}: sign with the key the certificate was made for", key.display(), cert.display())]
    Mismatch { key: PathBuf, cert: PathBuf },
    #[error("the Secure Boot certificate {} expired on {expired}: firmware refuses what it signs; make a new one and enrol it", path.display())]
    Expired { path: PathBuf, expired: String },
    #[error("the Secure Boot certificate {} is valid only from {from}", path.display())]
    NotYetValid { path: PathBuf, from: String },
}

/// A PEM private key (PKCS#8, encrypted PKCS#8 with a password, or PKCS#1) and its
/// PEM certificate.
pub struct KeyFile {
    key: rsa::PrivateKey,
    certificate: Vec<u8>,
}

impl KeyFile {
    /// Loads and checks `key` and `cert`: that they match and the certificate is valid
    /// at `now` (seconds since the epoch). `password` opens an encrypted key.
    pub fn load(key: &Path, cert: &Path, password: Option<&str>, now: i64) -> Result<KeyFile, KeyError> {
        let unreadable = |why: String| KeyError::Unreadable { path: key.to_path_buf(), why };
        let bad_cert = |why: String| KeyError::BadCertificate { path: cert.to_path_buf(), why };
        let text = std::fs::read_to_string(key).map_err(|e| unreadable(e.to_string()))?;
        let private = if text.contains("BEGIN ENCRYPTED PRIVATE KEY") {
            let password = password.ok_or_else(|| {
                unreadable(
                    "it is encrypted: name a variable holding its password with key-password-env".into(),
                )
            })?;
            rsa::PrivateKey::from_pkcs8_encrypted_pem(&text, password)
                .map_err(|_| unreadable("the password does not open it".into()))?
        } else if text.contains("BEGIN RSA PRIVATE KEY") {
            rsa::PrivateKey::from_pkcs1_pem(&text)
                .map_err(|e| unreadable(format!("not a PKCS#1 RSA key ({e})")))?
        } else if text.contains("BEGIN PRIVATE KEY") {
            rsa::PrivateKey::from_pkcs8_pem(&text).map_err(|e| unreadable(format!("not an RSA key ({e})")))?
        } else {
            return Err(unreadable(
                "not a PEM private key (BEGIN PRIVATE KEY, ENCRYPTED PRIVATE KEY or RSA PRIVATE KEY)".into(),
            ));
        };
        let pem_text = std::fs::read(cert).map_err(|e| bad_cert(e.to_string()))?;
        let block = pem::parse(&pem_text).map_err(|e| bad_cert(format!("not PEM ({e})")))?;
        if block.tag() != "CERTIFICATE" {
            return Err(bad_cert(format!("a PEM {}, not a CERTIFICATE", block.tag())));
        }
        let certificate = block.contents().to_vec();
        let (_, parsed) =
            x509_parser::parse_x509_certificate(&certificate).map_err(|e| bad_cert(e.to_string()))?;
        let public = rsa::PublicKey::try_from(
            rsa::pkcs8::SubjectPublicKeyInfoRef::try_from(parsed.tbs_certificate.subject_pki.raw)
                .map_err(|e| bad_cert(format!("its public key: {e}")))?,
        )
        .map_err(|_| bad_cert("its key is not RSA, which UEFI Secure Boot requires".into()))?;
        if public.n_bytes() != private.n_bytes() || public.e_bytes() != private.e_bytes() {
            return Err(KeyError::Mismatch { key: key.to_path_buf(), cert: cert.to_path_buf() });
        }
        let validity = parsed.validity();
        if now > validity.not_after.timestamp() {
            return Err(KeyError::Expired {
                path: cert.to_path_buf(),
                expired: validity.not_after.to_string(),
            });
        }
        if now < validity.not_before.timestamp() {
            return Err(KeyError::NotYetValid {
                path: cert.to_path_buf(),
                from: validity.not_before.to_string(),
            });
        }
        Ok(KeyFile { key: private, certificate })
    }
}

impl Signer for KeyFile {
    fn certificate(&self) -> &[u8] {
        &self.certificate
    }

    fn sign(&self, message: &[u8]) -> anyhow::Result<Vec<u8>> {
        let hashed = Sha256::digest(message);
        Ok(self.key.sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &hashed)?)
    }
}
