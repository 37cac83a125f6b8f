//! Authenticode, as UEFI firmware checks it: the image's digest (its headers without
//! the checksum and the certificate table's entry, then its sections in file order,
//! then whatever follows them up to the certificate table), and the PKCS#7 SignedData
//! that carries that digest and its signer, appended as a `WIN_CERTIFICATE`. What is
//! written here is what `sbsign` writes, less the signing time: two signings of the
//! same image with the same key give the same bytes.

use std::io::{Read, Seek, SeekFrom, Write};

use anyhow::Context as _;
use sha2::{Digest, Sha256};

use super::der::{self, algorithm, context, context_primitive, integer, oid, seq, set_of, tlv, Value};
use super::pe::{round_up, Pe, CERTIFICATE_TABLE};
use super::signer::Signer;

const SHA256: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 1];
const RSA_ENCRYPTION: &[u64] = &[1, 2, 840, 113549, 1, 1, 1];
const SIGNED_DATA: &[u64] = &[1, 2, 840, 113549, 1, 7, 2];
const CONTENT_TYPE: &[u64] = &[1, 2, 840, 113549, 1, 9, 3];
const MESSAGE_DIGEST: &[u64] = &[1, 2, 840, 113549, 1, 9, 4];
const SPC_INDIRECT_DATA: &[u64] = &[1, 3, 6, 1, 4, 1, 311, 2, 1, 4];
const SPC_PE_IMAGE_DATA: &[u64] = &[1, 3, 6, 1, 4, 1, 311, 2, 1, 15];
const SPC_SP_OPUS_INFO: &[u64] = &[1, 3, 6, 1, 4, 1, 311, 2, 1, 12];

/// `WIN_CERTIFICATE`'s revision and type for a PKCS#7 SignedData.
const WIN_CERT_REVISION_2_0: u16 = 0x0200;
const WIN_CERT_TYPE_PKCS_SIGNED_DATA: u16 = 0x0002;

/// The SHA-256 Authenticode digest of the image `pe` describes.
pub fn digest(pe: &Pe) -> anyhow::Result<[u8; 32]> {
    let mut hash = Sha256::new();
    let cert_entry = pe.directory_at(CERTIFICATE_TABLE).context("no certificate table directory")?;
    let h = &pe.headers;
    hash.update(&h[..pe.checksum_at()]);
    hash.update(&h[pe.checksum_at() + 4..cert_entry]);
    hash.update(&h[cert_entry + 8..]);
    let mut file = pe.open().with_context(|| format!("reading {}", pe.path.display()))?;
    let mut sections: Vec<_> = pe.sections.iter().filter(|s| s.raw_size > 0).collect();
    sections.sort_by_key(|s| s.raw_offset);
    let mut hashed_to = h.len() as u64;
    for s in sections {
        file.seek(SeekFrom::Start(s.raw_offset.into()))?;
        let copied = std::io::copy(&mut (&mut file).take(s.raw_size.into()), &mut HashWriter(&mut hash))?;
        anyhow::ensure!(
            copied == u64::from(s.raw_size),
            "{}: section {} runs past the end",
            pe.path.display(),
            s.name
        );
        hashed_to = hashed_to.max(u64::from(s.raw_offset) + u64::from(s.raw_size));
    }
    let end = pe.certificate_table().map_or(pe.file_len, |(offset, _)| u64::from(offset));
    if end > hashed_to {
        file.seek(SeekFrom::Start(hashed_to))?;
        std::io::copy(&mut (&mut file).take(end - hashed_to), &mut HashWriter(&mut hash))?;
    }
    Ok(hash.finalize().into())
}

struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Signs the unsigned image at `pe.path` in place: appends the certificate table and
/// points the optional header's entry at it.
pub fn sign(pe: &Pe, signer: &dyn Signer) -> anyhow::Result<()> {
    anyhow::ensure!(pe.certificate_table().is_none(), "{} is signed already", pe.path.display());
    let pkcs7 = signed_data(&digest(pe)?, signer)?;
    let entry = pe.directory_at(CERTIFICATE_TABLE).context("no certificate table directory")?;
    let mut file = std::fs::OpenOptions::new().read(true).write(true).open(&pe.path)?;
    // The table starts 8-byte aligned; the padding before it is hashed as trailing data
    // would be, so it is only ever needed for images whose end is unaligned.
    let offset = pe.file_len;
    anyhow::ensure!(offset.is_multiple_of(8), "{}: the image's end is not 8-byte aligned", pe.path.display());
    let length = round_up(8 + pkcs7.len() as u64, 8);
    let mut table = Vec::with_capacity(length as usize);
    table.extend((length as u32).to_le_bytes());
    table.extend(WIN_CERT_REVISION_2_0.to_le_bytes());
    table.extend(WIN_CERT_TYPE_PKCS_SIGNED_DATA.to_le_bytes());
    table.extend(&pkcs7);
    table.resize(length as usize, 0);
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(&table)?;
    file.seek(SeekFrom::Start(entry as u64))?;
    file.write_all(&(offset as u32).to_le_bytes())?;
    file.write_all(&(length as u32).to_le_bytes())?;
    Ok(())
}

/// The DER PKCS#7 SignedData over `digest` (an Authenticode SpcIndirectDataContent),
/// signed by `signer`, with its certificate.
fn signed_data(digest: &[u8; 32], signer: &dyn Signer) -> anyhow::Result<Vec<u8>> {
    let indirect = indirect_data(digest);
    // The message digest covers the SpcIndirectDataContent's contents, not its header.
    let (value, _) = Value::read(&indirect)?;
    let content_digest: [u8; 32] = Sha256::digest(value.contents).into();
    let attributes = vec![
        seq(der::SEQUENCE, &[&oid(CONTENT_TYPE), &seq(der::SET, &[&oid(SPC_INDIRECT_DATA)])]),
        seq(der::SEQUENCE, &[&oid(SPC_SP_OPUS_INFO), &seq(der::SET, &[&seq(der::SEQUENCE, &[])])]),
        seq(
            der::SEQUENCE,
            &[&oid(MESSAGE_DIGEST), &seq(der::SET, &[&tlv(der::OCTET_STRING, &content_digest)])],
        ),
    ];
    // Signed as a SET OF; stored as [0] IMPLICIT.
    let signed_attrs = set_of(der::SET, attributes);
    let signature = signer.sign(&signed_attrs)?;
    let cert = signer.certificate();
    let (issuer, serial) = issuer_and_serial(cert)?;
    let mut stored_attrs = signed_attrs.clone();
    stored_attrs[0] = context(0);
    let signer_info = seq(
        der::SEQUENCE,
        &[
            &integer(1),
            &seq(der::SEQUENCE, &[&issuer, &serial]),
            &algorithm(SHA256),
            &stored_attrs,
            &algorithm(RSA_ENCRYPTION),
            &tlv(der::OCTET_STRING, &signature),
        ],
    );
    let signed = seq(
        der::SEQUENCE,
        &[
            &integer(1),
            &seq(der::SET, &[&algorithm(SHA256)]),
            &seq(der::SEQUENCE, &[&oid(SPC_INDIRECT_DATA), &seq(context(0), &[&indirect])]),
            &seq(context(0), &[cert]),
            &seq(der::SET, &[&signer_info]),
        ],
    );
    Ok(seq(der::SEQUENCE, &[&oid(SIGNED_DATA), &seq(context(0), &[&signed])]))
}

/// SpcIndirectDataContent: "this is a PE image" (with the obsolete file link every
/// signer writes) and its digest.
fn indirect_data(digest: &[u8; 32]) -> Vec<u8> {
    let obsolete: Vec<u8> = "<<<Obsolete>>>".encode_utf16().flat_map(u16::to_be_bytes).collect();
    let file_link = seq(context(2), &[&tlv(context_primitive(0), &obsolete)]);
    let pe_image_data = seq(der::SEQUENCE, &[&tlv(der::BIT_STRING, &[0]), &seq(context(0), &[&file_link])]);
    let data = seq(der::SEQUENCE, &[&oid(SPC_PE_IMAGE_DATA), &pe_image_data]);
    let digest_info = seq(der::SEQUENCE, &[&algorithm(SHA256), &tlv(der::OCTET_STRING, digest)]);
    seq(der::SEQUENCE, &[&data, &digest_info])
}

/// The certificate's issuer Name and serial number, as DER values.
fn issuer_and_serial(cert: &[u8]) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let (certificate, _) = Value::read(cert)?;
    let tbs = certificate.child(0, der::SEQUENCE)?;
    let fields = tbs.children()?;
    // An explicit version [0] comes first when present.
    let skip = usize::from(fields.first().is_some_and(|f| f.tag == context(0)));
    let serial =
        fields.get(skip).filter(|f| f.tag == der::INTEGER).context("certificate without a serial")?;
    let issuer =
        fields.get(skip + 2).filter(|f| f.tag == der::SEQUENCE).context("certificate without an issuer")?;
    Ok((issuer.whole.to_vec(), serial.whole.to_vec()))
}

/// One signature found in an image's certificate table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Found {
    /// The signer certificate's subject, as OpenSSL prints it.
    pub signer: String,
    /// The Authenticode digest the signature is over, hex.
    pub signed_digest: String,
    /// Whether that digest is the image's, and the signer's key signed it.
    pub verifies: bool,
}

/// The signatures in the image's certificate table, each checked against `digest`.
pub fn signatures(pe: &Pe, digest: &[u8; 32]) -> anyhow::Result<Vec<Found>> {
    let Some((offset, size)) = pe.certificate_table() else { return Ok(Vec::new()) };
    let mut file = pe.open()?;
    file.seek(SeekFrom::Start(offset.into()))?;
    let mut table = vec![0u8; size as usize];
    file.read_exact(&mut table)
        .with_context(|| format!("{}: certificate table runs past the end", pe.path.display()))?;
    let mut found = Vec::new();
    let mut rest = table.as_slice();
    while rest.len() >= 8 {
        let length = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
        let kind = u16::from_le_bytes(rest[6..8].try_into().unwrap());
        if length < 8 || length > rest.len() {
            break;
        }
        if kind == WIN_CERT_TYPE_PKCS_SIGNED_DATA {
            found.push(
                read_signed_data(&rest[8..length], digest)
                    .with_context(|| format!("{}: reading its Authenticode signature", pe.path.display()))?,
            );
        }
        rest = &rest[round_up(length as u64, 8).min(rest.len() as u64) as usize..];
    }
    Ok(found)
}

fn read_signed_data(pkcs7: &[u8], digest: &[u8; 32]) -> anyhow::Result<Found> {
    let (info, _) = Value::read(pkcs7)?;
    let signed = info.child(1, context(0))?.child(0, der::SEQUENCE)?;
    let fields = signed.children()?;
    let content = fields.get(2).context("no content")?.child(1, context(0))?.child(0, der::SEQUENCE)?;
    let signed_digest = content.child(1, der::SEQUENCE)?.child(1, der::OCTET_STRING)?.contents.to_vec();
    let certs: Vec<Value> =
        fields.iter().find(|f| f.tag == context(0)).map(|c| c.children()).transpose()?.unwrap_or_default();
    let signer_info = fields.last().context("no signer")?.child(0, der::SEQUENCE)?;
    let si = signer_info.children()?;
    let serial = si.get(1).context("no issuer and serial")?.child(1, der::INTEGER)?;
    let attrs = si.iter().find(|v| v.tag == context(0)).context("no signed attributes")?;
    let signature = si.iter().rev().find(|v| v.tag == der::OCTET_STRING).context("no signature")?;
    // The signer is the certificate with the signer info's serial.
    let cert = certs
        .iter()
        .find(|c| issuer_and_serial(c.whole).is_ok_and(|(_, s)| s == serial.whole))
        .context("the signer's certificate is not in the signature")?;
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.whole)?;
    let mut stored = attrs.whole.to_vec();
    stored[0] = der::SET;
    let attribute_digest = Value::read(attrs.whole)?.0.children()?.into_iter().find_map(|a| {
        let kids = a.children().ok()?;
        (kids.first()?.whole == oid(MESSAGE_DIGEST).as_slice())
            .then(|| kids.get(1)?.child(0, der::OCTET_STRING).ok())?
    });
    let content_ok =
        attribute_digest.is_some_and(|d| d.contents == Sha256::digest(content.contents).as_slice());
    let key = rsa::PublicKey::try_from(
        rsa::pkcs8::SubjectPublicKeyInfoRef::try_from(parsed.tbs_certificate.subject_pki.raw)
            .map_err(|e| anyhow::anyhow!("signer's public key: {e}"))?,
    )
    .map_err(|e| anyhow::anyhow!("signer's public key: {e}"))?;
    let hashed = Sha256::digest(&stored);
    let signature_ok = key.verify(rsa::Pkcs1v15Sign::new::<Sha256>(), &hashed, signature.contents).is_ok();
    Ok(Found {
        signer: parsed.subject().to_string(),
        signed_digest: hex(&signed_digest),
        verifies: signed_digest == digest && content_ok && signature_ok,
    })
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
