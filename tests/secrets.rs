//! Secrets that ride into an image unasked are named — path, kind, element, mode —
//! in a warning and in report.json, never their content; `[secrets] allow` keeps them
//! on purpose; smelt's own (`tls`, `dev-user`) are expected.

use crate::util::{sh, Dir, Image};

/// A root tree copied from a host, as field reports found one: the snakeoil key (0640,
/// group ssl-cert), an SSH host key and a root password hash.
fn copied_root(dir: &Dir) {
    let root = dir.path("rootfs");
    sh(&format!(
        "mkdir -p {0}/etc/ssl/private {0}/etc/ssh {0}/usr/share/doc && \
         openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out {0}/etc/ssl/private/ssl-cert-snakeoil.key 2>/dev/null && \
         chmod 0640 {0}/etc/ssl/private/ssl-cert-snakeoil.key && \
         openssl genpkey -algorithm ed25519 -out {0}/etc/ssh/ssh_host_ed25519_key 2>/dev/null && \
         chmod 0600 {0}/etc/ssh/ssh_host_ed25519_key && \
         printf 'root:$6$rounds=5000$abcdefgh$0123456789abcdefghijklmnopqrstuv:19000:0:99999:7:::\\nnobody:*:19000::::::\\n' > {0}/etc/shadow && \
         echo 'not a key' > {0}/usr/share/doc/README",
        root.display()
    ));
    dir.image(
        &Image::new("s", &["base-rootfs", "tls", "dev-user"])
            .params("base-rootfs", "source = \"rootfs\"")
            .params("dev-user", "name = \"field\"\npassword = \"x\""),
    );
}

#[test]
fn keys_host_keys_and_hashes_that_ride_along_are_named_never_shown() {
    let dir = Dir::new();
    copied_root(&dir);
    let r = dir.build(&["--source-date-epoch", "1700000000"]).ok();
    let warnings: Vec<&str> = r.stderr.lines().filter(|l| l.starts_with("smelt: warning: /")).collect();
    let advice = "remove it, or list it in [secrets] allow in image.toml if it is meant to be there";
    assert_eq!(
        warnings,
        [
            format!(
                "smelt: warning: /etc/shadow holds password hashes (mode 0600, from element `dev-user`): \
                 password hashes of root; {advice}"
            ),
            format!(
                "smelt: warning: /etc/ssh/ssh_host_ed25519_key holds an SSH host key (mode 0600, from element \
                 `base-rootfs`): every machine that boots this image has the same SSH host identity; make host \
                 keys at first boot instead (DIB's runtime-ssh-host-keys); {advice}"
            ),
            format!(
                "smelt: warning: /etc/ssl/private/ssl-cert-snakeoil.key holds a private key (mode 0640, from \
                 element `base-rootfs`): mode 0640 lets other users read it; {advice}"
            ),
        ]
    );
    let report = std::fs::read_to_string(dir.path("out/report.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&report).unwrap();
    let secrets: Vec<(String, String, bool)> = json["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["path"].as_str().unwrap().into(),
                s["kind"].as_str().unwrap().into(),
                s["expected"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        secrets,
        [
            ("/etc/shadow".into(), "password-hash".into(), false),
            ("/etc/smelt/tls/key.pem".into(), "private-key".into(), true),
            ("/etc/ssh/ssh_host_ed25519_key".into(), "ssh-host-key".into(), false),
            ("/etc/ssl/private/ssl-cert-snakeoil.key".into(), "private-key".into(), false),
        ]
    );
    // Neither the report nor the terminal carries a key or a hash.
    let key = std::fs::read_to_string(dir.path("rootfs/etc/ssl/private/ssl-cert-snakeoil.key")).unwrap();
    let body = key.lines().nth(1).unwrap();
    for text in [&report, &r.stderr] {
        assert!(!text.contains(body) && !text.contains("0123456789abcdefghij"), "a secret was printed");
    }

    // Kept on purpose: no warnings, still listed, as expected.
    let image = std::fs::read_to_string(dir.path("image.toml")).unwrap();
    dir.write(
        "image.toml",
        &format!(
            "{image}[secrets]\nallow = [\"etc/ssl/private/*\", \"etc/ssh/ssh_host_*_key\", \"etc/shadow\"]\n"
        ),
    );
    let r = dir.build(&[]).ok();
    assert!(!r.stderr.contains("smelt: warning"), "{}", r.stderr);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("out/report.json")).unwrap()).unwrap();
    assert!(json["secrets"].as_array().unwrap().iter().all(|s| s["expected"] == true), "{}", json["secrets"]);
}
