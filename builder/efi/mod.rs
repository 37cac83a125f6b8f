//! EFI binaries: reading a PE image's headers ([`pe`]), making a unified kernel image
//! ([`uki`]), and Authenticode — digests, signatures, reading them back
//! ([`authenticode`], over the DER in [`der`]) — with a [`signer::Signer`] holding the
//! key.

pub mod authenticode;
pub mod der;
pub mod pe;
pub mod signer;
pub mod uki;

/// What a user enrols or allow-lists an EFI binary by: its Authenticode digest (what
/// firmware compares with `db`/`dbx` hashes), and who signed it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Identity {
    pub authenticode_sha256: String,
    pub signers: Vec<String>,
}

pub fn identify(pe: &pe::Pe) -> anyhow::Result<Identity> {
    let digest = authenticode::digest(pe)?;
    let signers = authenticode::signatures(pe, &digest)?.into_iter().map(|f| f.signer).collect();
    Ok(Identity { authenticode_sha256: authenticode::hex(&digest), signers })
}

/// What `smelt inspect` shows of an EFI binary.
#[derive(Debug, serde::Serialize)]
pub struct Described {
    pub sections: Vec<DescribedSection>,
    /// A UKI's `.uname`, `.cmdline` and os-release `PRETTY_NAME`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_release: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    pub authenticode_sha256: String,
    pub signatures: Vec<authenticode::Found>,
}

#[derive(Debug, serde::Serialize)]
pub struct DescribedSection {
    pub name: String,
    /// Bytes in memory, and on disk (file-aligned).
    pub virtual_size: u32,
    pub raw_size: u32,
    /// SHA-256 of the section's bytes (its virtual size, at most its raw size), so two
    /// images can be compared section by section.
    pub sha256: String,
}

/// Reads the EFI binary at `path`: its sections, a UKI's kernel release, command line
/// and OS, its Authenticode digest and each signature, checked.
pub fn describe(path: &std::path::Path) -> anyhow::Result<Described> {
    use sha2::Digest as _;
    use std::io::Read as _;
    let pe = pe::Pe::read(path)?;
    let digest = authenticode::digest(&pe)?;
    let mut sections = Vec::new();
    let mut text = std::collections::BTreeMap::new();
    for s in &pe.sections {
        let (mut reader, mut hash) = (pe.section_reader(s)?, sha2::Sha256::new());
        let mut buf = vec![0u8; 1 << 16];
        let mut first = Vec::new();
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            if first.len() < 4096 {
                first.extend_from_slice(&buf[..n.min(4096 - first.len())]);
            }
        }
        if [".uname", ".cmdline", ".osrel"].contains(&s.name.as_str()) {
            text.insert(
                s.name.clone(),
                String::from_utf8_lossy(&first).trim_end_matches('\0').trim().to_string(),
            );
        }
        sections.push(DescribedSection {
            name: s.name.clone(),
            virtual_size: s.virtual_size,
            raw_size: s.raw_size,
            sha256: authenticode::hex(&hash.finalize()),
        });
    }
    let os = text.get(".osrel").and_then(|o| {
        o.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=")).map(|v| v.trim_matches('"').to_string())
    });
    Ok(Described {
        sections,
        kernel_release: text.remove(".uname"),
        cmdline: text.remove(".cmdline"),
        os,
        authenticode_sha256: authenticode::hex(&digest),
        signatures: authenticode::signatures(&pe, &digest)?,
    })
}

/// Whether the file at `path` starts as a PE image does.
pub fn looks_like_pe(path: &std::path::Path) -> bool {
    use std::io::Read as _;
    let mut head = [0u8; 2];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)).is_ok() && &head == b"MZ"
}
