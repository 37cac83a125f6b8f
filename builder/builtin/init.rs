//! `init`: the ramdisk's `/init`, rendered from the element's template (which reads
//! `then`), with the device nodes the kernel needs before it runs. Its work here is
//! to say that what it puts in starts a ramdisk.

use super::BuiltIn;

#[derive(serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Init {
    /// What `/init` does after the start-up steps; its template reads it.
    #[allow(dead_code)]
    then: String,
}

impl BuiltIn for Init {
    fn starts_ramdisk(&self) -> bool {
        true
    }
}
