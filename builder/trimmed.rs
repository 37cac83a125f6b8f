//! What a trim took out of the image: one rule's removals, as `report.json`'s `trim`
//! lists them (the Python trim's rules, the kernel modules an image's own kernel does
//! without).

/// One rule of a trim and what it took out of the image.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Trimmed {
    pub element: String,
    pub rule: String,
    pub files: usize,
    /// Bytes the image is smaller by (for `strip`, what stripping saved).
    pub bytes: u64,
    /// What it removed, where a user wants the names (the kernel modules dropped).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
}
