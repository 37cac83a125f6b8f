//! The machine images are built for: this host's architecture, named as Debian and
//! diskimage-builder name it (`amd64`, `arm64`).

pub fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
