//! What built-in elements found while staging, for `report.json`: what each trim
//! rule took out of the image (`trim`: the Python trim's rules, the kernel modules an
//! image's own kernel does without), and the Python kits made (`python`).

/// What staging found.
#[derive(Debug, Default)]
pub struct Findings {
    pub trimmed: Vec<Trimmed>,
    pub python_kits: Vec<PythonKit>,
}

/// A Python kit (`python-trim`): where it is, and which interpreter runs it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PythonKit {
    pub element: String,
    /// The kit's directory in the image.
    pub path: String,
    /// `system` (the node's Python) or `bundled` (carried in the kit).
    pub interpreter: &'static str,
    /// The interpreter the venv was made with, on the build host, and its version
    /// (`3.11.2`).
    pub python: String,
    pub version: String,
    /// Where that interpreter's `site` looks for packages: `upstream` or `debian`.
    pub site: &'static str,
}

/// One rule of a trim and what it took out of the image.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Trimmed {
    pub element: String,
    pub rule: String,
    pub files: usize,
    /// Bytes the image is smaller by (for `strip`, what stripping saved).
    pub bytes: u64,
    /// What it removed, where a user wants the names (the kernel modules dropped, the
    /// Ansible collections no playbook uses).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// What it kept, where a user wants the names (an Ansible collection's plugins).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<String>,
}
