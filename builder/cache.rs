//! Where smelt keeps what it fetched or unpacked between builds (bootstrap tarballs,
//! unpacked rootfs tarballs, apt's lists and downloads): `SMELT_CACHE_DIR`, else
//! `$XDG_CACHE_HOME/smelt`, else `~/.cache/smelt`. Never part of an image.

use std::path::PathBuf;

pub fn dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SMELT_CACHE_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("smelt");
    }
    PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into())).join(".cache/smelt")
}
