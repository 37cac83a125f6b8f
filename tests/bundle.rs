//! Bundles: a build's lock names every input, `smelt bundle` packs them as an OCI
//! layout that skopeo reads and copies, and `smelt build --from` rebuilds the same bytes
//! elsewhere, as another user, with no network and an empty cache — refusing a bundle
//! whose bytes were altered, and naming what.

use crate::util::{assert_same_bytes, sh, Dir};

/// The acme client's per-node ramdisk, with an element of the project's own and the tls
/// element's generated key: inputs of every kind.
fn project() -> Dir {
    let dir = Dir::new();
    dir.fixture("examples/acme/client.toml", "client.toml");
    dir.write(
        "image.toml",
        "[image]\nname = \"acme-deploy\"\n\
         elements = [\"base-busybox\", \"init\", \"kernel-modules\", \"network\", \"tls\", \"site\"]\n\
         outputs = [\"initramfs\"]\n\
         [params.kernel-modules]\nmodules = [\"virtio_pci\", \"virtio_net\", \"bonding\", \"8021q\"]\n\
         [params.network]\nrenderers = [\"networkd\", \"ramdisk\"]\n\
         [params.tls]\nhostname = \"deploy.acme.example\"\n",
    );
    dir.write("elements/site/element.toml", "description = \"the site's banner\"\n");
    dir.write("elements/site/root/etc/site-banner", "ACME data center 2\n");
    // An element file dated long before the build: kept as it is, not clamped; and a FIFO
    // in its root/, as a root tree copied from a system has.
    sh(&format!("touch -d @1600000000 {}", dir.path("elements/site/root/etc/site-banner").display()));
    sh(&format!("mkdir -p {0} && mkfifo -m 0620 {0}/initctl", dir.path("elements/site/root/run").display()));
    dir
}

const EPOCH: (&str, &str) = ("SOURCE_DATE_EPOCH", "1700000000");

/// `smelt bundle` of the project's build into `out`, with `extra`.
fn bundle(dir: &Dir, out: &str, extra: &[&str]) -> crate::util::Run {
    let mut args =
        vec!["bundle", "image.toml", "--client", "client.toml", "--elements-path", "elements", "-o", out];
    args.extend_from_slice(extra);
    dir.smelt(&args)
}

fn build_and_bundle(dir: &Dir) -> serde_json::Value {
    dir.smelt_env(
        &[
            "build",
            "image.toml",
            "--client",
            "client.toml",
            "--per-node",
            "--elements-path",
            "elements",
            "-o",
            "out",
        ],
        &[EPOCH],
    )
    .ok();
    let run = bundle(dir, "acme.tar", &[]);
    let run = run.ok();
    // The generated key rides along, and the bundle says so.
    assert!(run.stderr.contains("carries secrets the image is meant to hold (/etc/smelt/tls/key.pem; from project/.smelt-state/tls/deploy.acme.example)"), "{}", run.stderr);
    serde_json::from_str(&std::fs::read_to_string(dir.path("out/smelt.lock")).unwrap()).unwrap()
}

fn outputs(dir: &Dir) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.path("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_bundle_rebuilds_every_output_byte_for_byte_elsewhere_as_another_user_without_network() {
    let dir = project();
    let lock = build_and_bundle(&dir);

    // The lock names each input by kind, path and digest.
    let inputs = lock["inputs"].as_array().unwrap();
    let find = |kind: &str, path: &str| {
        inputs.iter().find(|i| i["kind"] == kind && i["path"].as_str().unwrap().ends_with(path)).cloned()
    };
    let image = find("project", "image.toml").expect("image.toml in the lock");
    assert_eq!(
        image["sha256"].as_str().unwrap(),
        sh(&format!("sha256sum {} | cut -c1-64", dir.path("image.toml").display())).trim()
    );
    assert_eq!(find("element", "site").expect("the site element")["type"], "dir");
    assert!(find("host", "/virtio_net.ko").is_some(), "the host's module in the lock: {inputs:?}");
    let key = find("project", "deploy.acme.example").expect("the tls state");
    assert_eq!(key["secret"], true);
    assert_eq!(lock["client"], "project/client.toml");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("out/report.json")).unwrap()).unwrap();
    assert_eq!(report["lock"], lock, "report.json carries the lock");

    // Standard tools read the layout and copy it: the copy is what gets rebuilt.
    let raw = sh(&format!("skopeo inspect --raw oci-archive:{}", dir.path("acme.tar").display()));
    let manifest: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(manifest["artifactType"], "application/vnd.smelt.bundle.v1");
    assert_eq!(manifest["config"]["mediaType"], "application/vnd.smelt.lock.v1+json");
    assert_eq!(manifest["layers"].as_array().unwrap().len(), inputs.len());
    let title = |l: &serde_json::Value| {
        l["annotations"]["org.opencontainers.image.title"].as_str().unwrap().to_string()
    };
    assert!(manifest["layers"].as_array().unwrap().iter().any(|l| title(l) == "element/site"));
    sh(&format!(
        "skopeo copy -q oci-archive:{} oci:{}:acme",
        dir.path("acme.tar").display(),
        dir.path("copied").display()
    ));

    let (there, run) = dir.rebuild_elsewhere("copied", &[]);
    run.ok();
    assert_eq!(outputs(&there), outputs(&dir));
    for name in outputs(&dir) {
        assert_same_bytes(&dir.path("out").join(&name), &there.path("out").join(&name), &name);
    }

    // A changed client.toml beside the bundle: one node's address moved. Rebuilt the
    // same way, only that node's network files differ.
    let client = std::fs::read_to_string(dir.path("client.toml")).unwrap();
    let (moved, run) = rebuild_with_client(&dir, &client.replace("10.10.0.12/24", "10.10.0.22/24"));
    run.ok();
    let (n1, n2) = ("acme-deploy-acme-n1.cpio.zst", "acme-deploy-acme-n2.cpio.zst");
    assert_same_bytes(
        &dir.path("out").join(n1),
        &moved.path("out").join(n1),
        "the node whose address stayed",
    );
    let diff = dir.smelt(&[
        "diff",
        dir.path("out").join(n2).to_str().unwrap(),
        moved.path("out").join(n2).to_str().unwrap(),
        "--json",
    ]);
    let diff: serde_json::Value = serde_json::from_str(&diff.ok().stdout).unwrap();
    let changed: Vec<&str> =
        diff["paths"].as_array().unwrap().iter().map(|p| p["path"].as_str().unwrap()).collect();
    assert!(!changed.is_empty(), "the moved node's image did not change");
    assert!(changed.iter().all(|p| p.starts_with("/etc/smelt/network/acme-n2/")), "{changed:?}");
    assert!(changed.contains(&"/etc/smelt/network/acme-n2/networkd/30-front.network"), "{changed:?}");
}

/// Rebuilds the bundle `copied` elsewhere with `client` as the client inventory given
/// beside it.
fn rebuild_with_client(dir: &Dir, client: &str) -> (Dir, crate::util::Run) {
    dir.write("copied/new-client.toml", client);
    dir.rebuild_elsewhere("copied", &["--client", "bundle/new-client.toml"])
}

#[test]
fn an_altered_or_incomplete_bundle_is_refused_naming_the_input_and_its_blob() {
    let dir = project();
    build_and_bundle(&dir);
    sh(&format!(
        "mkdir {0} && tar xf {1} -C {0}",
        dir.path("layout").display(),
        dir.path("acme.tar").display()
    ));
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("layout/index.json")).unwrap()).unwrap();
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap()[7..].to_string();
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path("layout/blobs/sha256").join(manifest_digest.trim())).unwrap(),
    )
    .unwrap();
    let layer = |title: &str| {
        manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["annotations"]["org.opencontainers.image.title"] == title)
            .unwrap()["digest"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // One byte of the site element's blob altered.
    let site = layer("element/site");
    let blob = dir.path("layout/blobs/sha256").join(&site[7..]);
    let mut bytes = std::fs::read(&blob).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    std::fs::write(&blob, &bytes).unwrap();
    let (there, run) = dir.rebuild_elsewhere("layout", &[]);
    let run = run.fails(1);
    assert!(run.stderr.contains("input element/site"), "{}", run.stderr);
    assert!(run.stderr.contains(&format!("blob {site}")), "{}", run.stderr);
    assert!(run.stderr.contains("damaged or was altered"), "{}", run.stderr);
    // Nothing was published, nothing half-written stays.
    assert_eq!(sh(&format!("ls -A {}", there.path("out").display())), "");

    // A blob gone: named too.
    std::fs::write(&blob, {
        bytes[mid] ^= 0x20;
        &bytes
    })
    .unwrap();
    let client = layer("project/client.toml");
    std::fs::remove_file(dir.path("layout/blobs/sha256").join(&client[7..])).unwrap();
    let run = dir.rebuild_elsewhere("layout", &[]).1.fails(1);
    assert!(
        run.stderr.contains(&format!("input project/client.toml: blob {client} is missing")),
        "{}",
        run.stderr
    );

    // An input changed since the build: bundling refuses it rather than pack other bytes.
    dir.write("elements/site/root/etc/site-banner", "ACME data center 3\n");
    let run = bundle(&dir, "again.tar", &[]);
    let run = run.fails(1);
    assert!(run.stderr.contains("input element/site"), "{}", run.stderr);
    assert!(run.stderr.contains("changed since the build"), "{}", run.stderr);
    assert!(!dir.path("again.tar").exists());
}

#[test]
fn a_signed_bundle_verifies_with_its_key_as_ssh_keygen_agrees_and_is_refused_otherwise() {
    let dir = project();
    build_and_bundle(&dir);
    sh(&format!(
        "cd {} && ssh-keygen -q -t ed25519 -N '' -C field -f field && ssh-keygen -q -t ed25519 -N '' -f other",
        dir.path("").display()
    ));
    let run = bundle(&dir, "signed", &["--sign", "field"]);
    let run = run.ok();
    let fingerprint = sh(&format!("ssh-keygen -lf {} | cut -d' ' -f2", dir.path("field.pub").display()));
    assert!(run.stderr.contains(&format!("signed by {}", fingerprint.trim())), "{}", run.stderr);

    // OpenSSH's own tool verifies the signature over the manifest's bytes.
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("signed/index.json")).unwrap()).unwrap();
    let blob = |d: &serde_json::Value| dir.path("signed/blobs/sha256").join(&d.as_str().unwrap()[7..]);
    let manifests = index["manifests"].as_array().unwrap();
    let signature =
        manifests.iter().find(|m| m["artifactType"] == "application/vnd.smelt.signature.v1").unwrap();
    let signature: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(&signature["digest"])).unwrap()).unwrap();
    assert_eq!(signature["subject"]["digest"], manifests[0]["digest"]);
    sh(&format!(
        "cd {d} && echo \"field $(cat field.pub)\" > allowed && ssh-keygen -Y verify -f allowed -I field -n smelt-bundle -s {sig} < {manifest}",
        d = dir.path("").display(),
        sig = blob(&signature["layers"][0]["digest"]).display(),
        manifest = blob(&manifests[0]["digest"]).display()
    ));

    // The keys travel beside the bundle, as a user hands them over.
    sh(&format!("cp {0}/field.pub {0}/other.pub {0}/signed/", dir.path("").display()));
    let (there, run) = dir.rebuild_elsewhere("signed", &["--verify", "bundle/field.pub"]);
    run.ok();
    assert_same_bytes(
        &dir.path("out/acme-deploy-acme-n1.cpio.zst"),
        &there.path("out/acme-deploy-acme-n1.cpio.zst"),
        "the verified rebuild",
    );
    let run = dir.rebuild_elsewhere("signed", &["--verify", "bundle/other.pub"]).1.fails(1);
    assert!(
        run.stderr.contains(&format!("is signed by {}, not by SHA256:", fingerprint.trim())),
        "{}",
        run.stderr
    );

    // Unsigned: refused when a signature is wanted.
    sh(&format!(
        "mkdir {0}/plain && tar xf {0}/acme.tar -C {0}/plain && cp {0}/field.pub {0}/plain/",
        dir.path("").display()
    ));
    let run = dir.rebuild_elsewhere("plain", &["--verify", "bundle/field.pub"]).1.fails(1);
    assert!(run.stderr.contains("is not signed"), "{}", run.stderr);

    // The manifest changed and re-indexed after signing: its signature is of another.
    let manifest_path = blob(&manifests[0]["digest"]);
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    manifest["annotations"]["dev.smelt.image"] = "someone-elses".into();
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let digest: String = {
        use sha2::Digest as _;
        sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect()
    };
    std::fs::write(dir.path("signed/blobs/sha256").join(digest.trim()), &bytes).unwrap();
    let mut index = index.clone();
    index["manifests"][0]["digest"] = format!("sha256:{}", digest.trim()).into();
    index["manifests"][0]["size"] = bytes.len().into();
    std::fs::write(dir.path("signed/index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    let run = dir.rebuild_elsewhere("signed", &["--verify", "bundle/field.pub"]).1.fails(1);
    assert!(run.stderr.contains("altered after it was signed"), "{}", run.stderr);
}

#[test]
fn a_bundle_never_carries_a_secret_nobody_allowed() {
    let dir = Dir::new();
    let image =
        "[image]\nname = \"keyed\"\nelements = [\"base-busybox\", \"app\"]\noutputs = [\"initramfs\"]\n";
    dir.write("image.toml", image);
    dir.write("elements/app/element.toml", "description = \"an app with a key someone left in\"\n");
    dir.write(
        "elements/app/root/etc/app/client.key",
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIFxmdmR0aGlzaXNub3RhcmVhbGtleWF0YWxsYQ==\n-----END PRIVATE KEY-----\n",
    );
    let bundle = ["bundle", "image.toml", "--elements-path", "elements", "-o", "keyed.tar"];
    dir.build(&[]).ok();
    let run = dir.smelt(&bundle).fails(1);
    assert!(run.stderr.contains("secrets nobody asked for (/etc/app/client.key"), "{}", run.stderr);
    assert!(run.stderr.contains("[secrets] allow"), "{}", run.stderr);
    assert!(!dir.path("keyed.tar").exists());
    assert!(!run.stderr.contains("MC4CAQAw"), "the key itself is never shown");

    // Allowed, it rides along, and the bundle says so.
    dir.write("image.toml", &format!("{image}[secrets]\nallow = [\"etc/app/client.key\"]\n"));
    dir.build(&[]).ok();
    let run = dir.smelt(&bundle).ok();
    assert!(
        run.stderr.contains("carries secrets the image is meant to hold (/etc/app/client.key)"),
        "{}",
        run.stderr
    );
}
