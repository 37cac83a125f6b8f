//! A bundle: every input a build's lock names, with the lock itself, as an OCI image
//! layout (`oci-layout`, `index.json`, `blobs/sha256/…`), a directory or its tar, that
//! registries and their tools (`skopeo`, `oras`) carry as an artifact. One manifest:
//! its config is the lock, each layer one input (a file, or a directory's canonical
//! tar), zstd-compressed unless already compressed, annotated with the input's kind,
//! path and digest. [`write`] makes one from a build's inputs; [`unpack`] checks every
//! digest and lays the inputs out for a rebuild.

pub mod remote;
pub mod sshsig;
mod unpack;
mod write;

pub use unpack::{unpack, untar_layout as untar};
pub use write::{write, Source};

/// The manifest's artifact type and its config's media type (the lock, JSON).
pub const ARTIFACT_TYPE: &str = "application/vnd.smelt.bundle.v1";
pub const LOCK_TYPE: &str = "application/vnd.smelt.lock.v1+json";
pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// A signature of a bundle: an artifact whose `subject` is the bundle's manifest (OCI
/// 1.1 referrers), its one layer the armoured SSH signature of the manifest's bytes.
pub const SIGNATURE_TYPE: &str = "application/vnd.smelt.signature.v1";
pub const SSHSIG_TYPE: &str = "application/vnd.smelt.sshsig.v1";
pub const EMPTY_TYPE: &str = "application/vnd.oci.empty.v1+json";

/// A layer's media type: the input's form, and `+zstd` when smelt compressed it.
fn layer_type(form: crate::lock::Form, zstd: bool) -> &'static str {
    use crate::lock::Form;
    match (form, zstd) {
        (Form::File, false) => "application/vnd.smelt.input.file.v1",
        (Form::File, true) => "application/vnd.smelt.input.file.v1+zstd",
        (Form::Dir, false) => "application/vnd.smelt.input.dir.v1.tar",
        (Form::Dir, true) => "application/vnd.smelt.input.dir.v1.tar+zstd",
    }
}

/// Annotation keys on each layer.
pub mod key {
    pub const TITLE: &str = "org.opencontainers.image.title";
    pub const KIND: &str = "dev.smelt.input.kind";
    pub const PATH: &str = "dev.smelt.input.path";
    pub const SHA256: &str = "dev.smelt.input.sha256";
    pub const MODE: &str = "dev.smelt.input.mode";
    pub const MTIME: &str = "dev.smelt.input.mtime";
    pub const SECRET: &str = "dev.smelt.input.secret";
    /// On the manifest.
    pub const CREATED: &str = "org.opencontainers.image.created";
    pub const VERSION: &str = "dev.smelt.version";
    pub const IMAGE: &str = "dev.smelt.image";
    pub const SECRETS: &str = "dev.smelt.secrets";
    /// On a signature: the signing key's `SHA256:…` fingerprint.
    pub const SIGNER: &str = "dev.smelt.signer";
    pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
}

/// `sha256:HEX`.
fn digest(hex: &str) -> String {
    format!("sha256:{hex}")
}
