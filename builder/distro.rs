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

/// What an image's `/etc/os-release` says, as diskimage-builder names it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct OsRelease {
    /// `DISTRO_NAME`: `ID` (`opensuse-leap` and `opensuse-tumbleweed` are `opensuse`),
    /// or the first of `ID_LIKE` smelt knows when `ID` is not one.
    pub distro: Option<String>,
    /// `DIB_RELEASE`: the codename for Debian and Ubuntu (`bookworm`), else `VERSION_ID`.
    pub release: Option<String>,
}

impl OsRelease {
    pub fn parse(text: &str) -> OsRelease {
        let get = |key: &str| {
            text.lines()
                .filter_map(|l| l.trim().split_once('='))
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
                .filter(|v| !v.is_empty())
        };
        let known = |id: &str| {
            let id = if id.starts_with("opensuse") { "opensuse" } else { id };
            (family(id) != "debian" || ["debian", "ubuntu"].contains(&id)).then(|| id.to_string())
        };
        let id = get("ID");
        let distro = id.as_deref().and_then(known).or_else(|| {
            let like = get("ID_LIKE").unwrap_or_default();
            like.split_whitespace().find_map(known).or(id.clone())
        });
        let release = match distro.as_deref() {
            Some("debian" | "ubuntu") => get("VERSION_CODENAME").or_else(|| get("VERSION_ID")),
            _ => get("VERSION_ID"),
        };
        OsRelease { distro, release }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_names_the_distro_as_dib_does() {
        let sles = OsRelease::parse(
            "NAME=\"SLES\"\nVERSION=\"15-SP5\"\nVERSION_ID=\"15.5\"\nID=\"sles\"\nID_LIKE=\"suse\"\n",
        );
        assert_eq!(sles, OsRelease { distro: Some("sles".into()), release: Some("15.5".into()) });
        let leap = OsRelease::parse("ID=\"opensuse-leap\"\nVERSION_ID=\"15.6\"\n");
        assert_eq!(leap.distro.as_deref(), Some("opensuse"));
        let debian = OsRelease::parse("ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n");
        assert_eq!(debian, OsRelease { distro: Some("debian".into()), release: Some("bookworm".into()) });
        let oracle = OsRelease::parse("ID=\"ol\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"9.3\"\n");
        assert_eq!(oracle.distro.as_deref(), Some("fedora"));
        assert_eq!(family(oracle.distro.as_deref().unwrap()), "redhat");
        assert_eq!(OsRelease::parse(""), OsRelease::default());
    }
}
