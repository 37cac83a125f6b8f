//! Input files: each is parsed raw (serde), then checked once into a model that later
//! code uses without re-validating. Errors point into the file with line and column.

pub mod budget;
pub mod client;
#[cfg(test)]
pub mod doc_keys;
pub mod image;
pub mod names;
pub mod size;
pub mod source;
