//! The image's distribution as diskimage-builder names it (`DISTRO_NAME`), and the
//! family that decides its package manager and which names of a `pkg-map` apply.

/// The family of `distro`: `debian` (and any distro not known here), `redhat`, `suse`,
/// `alpine`, `gentoo`.
pub fn family(distro: &str) -> &'static str {
    match distro {
        "fedora" | "centos" | "rhel" | "rocky" | "almalinux" | "openeuler" => "redhat",
        "opensuse" | "sles" | "suse" => "suse",
        "alpine" => "alpine",
        "gentoo" => "gentoo",
        _ => "debian",
    }
}
