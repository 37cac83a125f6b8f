//! Whom smelt's own HTTPS clients (BMCs, registries) trust: the CAs of a PEM file the
//! user names, the system's CA bundle, or — when asked — nobody's word at all.

use std::path::Path;
use std::sync::Arc;

use ureq::tls::{parse_pem, PemItem, RootCerts, TlsConfig};

/// Where the system's CA bundle is, by distribution (as OpenSSL's builds look).
const SYSTEM_CAS: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

pub enum Trust<'a> {
    /// The certificates of this PEM file only.
    Ca(&'a Path),
    /// `SSL_CERT_FILE`, else the system's bundle.
    System,
    /// No verification (a lab BMC with a self-signed certificate, when asked).
    Insecure,
}

pub fn tls_config(trust: Trust) -> Result<TlsConfig, String> {
    Ok(match trust {
        Trust::Insecure => TlsConfig::builder().disable_verification(true).build(),
        Trust::Ca(path) => TlsConfig::builder().root_certs(certificates(path)?).build(),
        Trust::System => {
            let bundle = std::env::var("SSL_CERT_FILE")
                .ok()
                .or_else(|| SYSTEM_CAS.iter().find(|p| Path::new(p).is_file()).map(|p| p.to_string()));
            match bundle {
                Some(path) => TlsConfig::builder().root_certs(certificates(path.as_ref())?).build(),
                None => TlsConfig::builder().build(),
            }
        }
    })
}

/// The certificates of a PEM file.
fn certificates(path: &Path) -> Result<RootCerts, String> {
    let text = std::fs::read(path).map_err(|e| format!("the CA file {}: {e}", path.display()))?;
    let certs: Vec<_> = parse_pem(&text)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(c)) => Some(c.to_owned()),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(format!("the CA file {} holds no PEM certificate", path.display()));
    }
    Ok(RootCerts::Specific(Arc::new(certs)))
}
