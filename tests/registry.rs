//! The shared cache in an OCI registry, against Debian's own registry (`docker-registry`,
//! the CNCF distribution server) started here on 127.0.0.1: a runner that builds cold
//! pushes what it fetched; another runner with an empty cache, in a network namespace
//! where only the registry is reachable, builds the same image from it to the same bytes,
//! and rebuilds the signed bundle the first pushed, pulled by tag and verified.

use std::process::Command;

use crate::util::{assert_same_bytes, sh, Dir};

/// An image whose build fetches: a Debian bootstrap, and a wheel pip downloads into the
/// wheelhouse and installs from it (as the ironic-python-agent element does).
fn fetching_image(dir: &Dir) {
    dir.write(
        "image.toml",
        "[image]\nname = \"fetcher\"\nelements = [\"base-debian\", \"tool\"]\noutputs = [\"initramfs\"]\n\
         [params.base-debian]\npackages = [\"python3-venv\"]\n",
    );
    dir.write("elements/tool/element.toml", "description = \"a Python tool from PyPI\"\n");
    dir.write(
        "elements/tool/install.d/50-tool",
        "#!/bin/sh\nset -eu\npython3 -m venv /opt/tool\n\
         if [ \"${SMELT_OFFLINE:-0}\" != 1 ]; then\n\
         \x20   /opt/tool/bin/pip download -q --disable-pip-version-check --dest \"$SMELT_WHEELHOUSE\" six==1.16.0\n\
         fi\n\
         /opt/tool/bin/pip install -q --disable-pip-version-check --no-index --find-links \"$SMELT_WHEELHOUSE\" six==1.16.0\n",
    );
    dir.write("size-budget.toml", "[output.initramfs]\nmax = \"1GiB\"\nmax-unpacked = \"2GiB\"\n");
}

/// Starts `docker-registry` on 127.0.0.1:`port` with its storage in `dir/registry`, in
/// the current network namespace, and waits until it answers (stopped when the shell
/// exits): the shell commands that do it, for this namespace or another.
fn registry_command(dir: &Dir, port: u16) -> String {
    let config = dir.write(
        "registry.yml",
        &format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            dir.path("registry").display()
        ),
    );
    format!(
        "docker-registry serve {} >>{} 2>&1 & registry=$!; trap 'kill $registry' EXIT; \
         for i in $(seq 100); do curl -sf http://127.0.0.1:{port}/v2/ >/dev/null && break; sleep 0.1; done",
        config.display(),
        dir.path("registry.log").display()
    )
}

#[test]
fn a_runner_reaching_only_the_registry_builds_from_its_cache_to_the_same_bytes() {
    assert_eq!(unsafe { libc::geteuid() }, 0, "the cold bootstrap needs root: run tests/run.sh as root");
    let dir = Dir::heavy();
    fetching_image(&dir);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let start = registry_command(&dir, port);
    let cache = format!("oci://127.0.0.1:{port}/smelt-cache");
    let smelt = env!("CARGO_BIN_EXE_smelt");
    let build = format!(
        "SOURCE_DATE_EPOCH=1700000000 SMELT_CACHE={cache} {smelt} build image.toml --elements-path elements -o out"
    );

    // Runner A: a cold cache, the mirrors, then a push.
    let cores = crate::util::Slot::heavy();
    // It also signs its bundle and pushes it beside the cache, for the field.
    let a = sh(&format!(
        "cd {d}; {start}; SMELT_CACHE_DIR={d}/cache-a {build}-a 2>&1; ssh-keygen -q -t ed25519 -N '' -f field; \
         SMELT_CACHE_DIR={d}/cache-a {smelt} bundle image.toml --elements-path elements --lock out-a/smelt.lock \
         --sign field --push oci://127.0.0.1:{port}/bundles:fetcher 2>&1",
        d = dir.path("").display()
    ));
    assert!(a.contains(&format!("pushed the bundle to oci://127.0.0.1:{port}/bundles:fetcher")), "{a}");
    drop(cores);
    assert!(a.contains("has no fetcher-"), "{a}");
    assert!(a.contains("smelt: pushed this build's cache inputs"), "{a}");
    let tags = sh(&format!("{start}; curl -sf http://127.0.0.1:{port}/v2/smelt-cache/tags/list"));
    assert!(tags.contains("\"fetcher-"), "{tags}");

    // Runner B: another, empty cache; a network namespace with nothing but loopback,
    // where the registry runs on the same storage.
    let _cores = crate::util::Slot::heavy();
    let out = Command::new("unshare")
        .args(["-n", "bash", "-c"])
        .arg(format!(
            "set -e; ip link set lo up; cd {d}; {start}; \
             if curl -s -m 5 http://deb.debian.org/ >/dev/null; then echo 'the mirror is reachable'; exit 1; fi; \
             SMELT_CACHE_DIR={d}/cache-b {build}-b 2>&1; \
             SMELT_CACHE_DIR={d}/cache-c {smelt} build --from oci://127.0.0.1:{port}/bundles:fetcher \
             --verify field.pub -o out-c 2>&1",
            d = dir.path("").display()
        ))
        .output()
        .unwrap();
    let b = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "runner B failed:\n{b}{}", String::from_utf8_lossy(&out.stderr));
    assert!(b.contains("has this build's inputs as fetcher-"), "{b}");
    assert!(b.contains("building offline from them"), "{b}");
    assert!(b.contains("every digest checked; signed by SHA256:"), "{b}");
    for name in ["fetcher.cpio.zst", "smelt.lock"] {
        assert_same_bytes(&dir.path("out-a").join(name), &dir.path("out-b").join(name), "runner B's build");
        assert_same_bytes(
            &dir.path("out-a").join(name),
            &dir.path("out-c").join(name),
            "the pulled bundle's rebuild",
        );
    }
    let lock: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("out-b/smelt.lock")).unwrap()).unwrap();
    let cached: Vec<&str> = lock["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == "cache")
        .map(|i| i["path"].as_str().unwrap())
        .collect();
    assert!(cached.iter().any(|p| p.starts_with("base-debian/")), "{cached:?}");
    assert!(cached.iter().any(|p| p.starts_with("pip-wheelhouse/six-1.16.0-")), "{cached:?}");
}

/// A registry that wants credentials (htpasswd, as `distribution` is set up for CI)
/// gets them from the environment or from what `docker login` stored, and a wrong or
/// missing one is refused in words that say what to do.
#[test]
fn a_registry_with_credentials_takes_them_from_the_environment_or_docker_login() {
    let dir = Dir::new();
    dir.image(&crate::util::Image::new("tiny", &["base-busybox"]));
    dir.build(&["-q"]).ok();
    let hash = sh("/usr/bin/python3 -W ignore -c \"import crypt; print(crypt.crypt('s3cret', crypt.mksalt(crypt.METHOD_BLOWFISH)))\"");
    dir.write("htpasswd", &format!("ci:{}", hash.trim()));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.write(
        "auth.yml",
        &format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: 127.0.0.1:{port}\nauth:\n  htpasswd:\n    realm: smelt-test\n    path: {}\n",
            dir.path("registry").display(),
            dir.path("htpasswd").display()
        ),
    );
    let mut registry = Command::new("docker-registry")
        .args(["serve", config.to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    sh(&format!(
        "for i in $(seq 100); do curl -s http://127.0.0.1:{port}/v2/ >/dev/null && break; sleep 0.1; done"
    ));
    let to = format!("oci://127.0.0.1:{port}/bundles:tiny");
    let push = ["bundle", "image.toml", "--elements-path", "elements", "--push", to.as_str()];
    let none = dir.smelt(&push).fails(1);
    assert!(none.stderr.contains("wants credentials: log in with `docker login"), "{}", none.stderr);
    let wrong =
        dir.smelt_env(&push, &[("SMELT_REGISTRY_USER", "ci"), ("SMELT_REGISTRY_PASSWORD", "guess")]).fails(1);
    assert!(wrong.stderr.contains("refused (401"), "{}", wrong.stderr);
    assert!(!wrong.stderr.contains("guess"), "the password is never shown");
    let ok =
        dir.smelt_env(&push, &[("SMELT_REGISTRY_USER", "ci"), ("SMELT_REGISTRY_PASSWORD", "s3cret")]).ok();
    assert!(ok.stderr.contains(&format!("pushed the bundle to {to}")), "{}", ok.stderr);
    // `docker login`'s file: base64 of user:password under auths.HOST.
    dir.write(
        "docker/config.json",
        &format!("{{\"auths\": {{\"127.0.0.1:{port}\": {{\"auth\": \"Y2k6czNjcmV0\"}}}}}}"),
    );
    let docker = dir.path("docker").display().to_string();
    let from = ["build", "--from", to.as_str(), "-o", "pulled", "-q"];
    dir.smelt_env(&from, &[("DOCKER_CONFIG", docker.as_str())]).ok();
    registry.kill().unwrap();
    let _ = registry.wait();
    assert_same_bytes(
        &dir.path("out/tiny.cpio.zst"),
        &dir.path("pulled/tiny.cpio.zst"),
        "the pulled bundle's rebuild",
    );
}
