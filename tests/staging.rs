//! Staging behaviour users rely on: rootless builds, hook environments, offline hooks,
//! pruning, and which element each byte is attributed to.

use std::process::Command;

use crate::util::{member, sh, Dir, Image};

fn manifest(dir: &Dir) -> serde_json::Value {
    crate::util::manifest(&dir.path("out"))
}

fn entry<'a>(manifest: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    manifest.as_array().unwrap().iter().find(|e| e["path"] == path)
}

#[test]
fn a_build_by_an_unprivileged_user_yields_root_owned_files_and_runs_chroot_hooks() {
    let dir = Dir::new();
    dir.image(&Image::new("nr", &["base-busybox", "init", "app"]));
    dir.write(
        "elements/app/element.toml",
        "description = \"app\"\n[[permissions]]\npath = \"home/app\"\nuid = 1000\ngid = 1000\n",
    );
    dir.write("elements/app/root/home/app/.keep", "");
    dir.write(
        "elements/app/install.d/10-inside",
        "#!/bin/sh\nset -e\nmkdir -p /etc\nid -u > /etc/built-as\nmkdir -p /var/lib/app\n",
    );
    let me = unsafe { libc::geteuid() };
    let smelt = env!("CARGO_BIN_EXE_smelt");
    let mut cmd = if me == 0 {
        // Run as `nobody`, in a directory it owns: a rootless build, as field staff do.
        sh(&format!("chown -R 65534:65534 {}", dir.path("").display()));
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", smelt]);
        c
    } else {
        Command::new(smelt)
    };
    let out = cmd
        .args(["build", "image.toml", "--elements-path", "elements", "-o", "out", "-q"])
        .current_dir(dir.path(""))
        .env("HOME", dir.path(""))
        .output()
        .unwrap();
    assert!(out.status.success(), "rootless build failed: {}", String::from_utf8_lossy(&out.stderr));
    let listing = sh(&format!(
        "zstd -dc {} | cpio -tv --numeric-uid-gid --quiet",
        dir.path("out/nr.cpio.zst").display()
    ));
    let owners = |name: &str| -> String {
        let line = listing
            .lines()
            .find(|l| l.ends_with(&format!(" {name}")))
            .unwrap_or_else(|| panic!("{name} missing:\n{listing}"));
        let f: Vec<&str> = line.split_whitespace().collect();
        format!("{} {} {}", f[0], f[2], f[3])
    };
    assert_eq!(owners("etc/built-as"), "-rw-r--r-- 0 0");
    assert_eq!(owners("var/lib/app"), "drwxr-xr-x 0 0");
    assert_eq!(owners("home/app"), "drwxr-xr-x 1000 1000");
    assert_eq!(owners("bin/busybox"), "-rwxr-xr-x 0 0");
    assert!(listing.contains("crw-------   1 0        0          5,   1"), "dev/console:\n{listing}");
    assert_eq!(
        member(&dir.path("out/nr.cpio.zst"), "etc/built-as"),
        "0\n",
        "the chroot hook ran as root of its namespace"
    );
}

#[test]
fn hooks_see_params_environment_d_and_dib_variables() {
    let dir = Dir::new();
    dir.image(&Image::new("env", &["app"]).params("app", "ports = [80, 443]"));
    dir.write(
        "elements/app/element.toml",
        "description = \"app\"\n[params.ports]\ndefault = []\n[params.mode]\ndefault = \"fast\"\n",
    );
    dir.write(
        "elements/app/environment.d/10-app.bash",
        "export APP_HOME=/opt/app\nAPP_FROM_ENV_D=\"$SMELT_PARAM_APP_MODE-mode\"\n",
    );
    dir.write(
        "elements/app/post-root.d/10-env",
        "#!/bin/sh\nset -e\nout=\"$TARGET_ROOT/env.txt\"\n\
         echo \"ports=$SMELT_PARAM_APP_PORTS mode=$SMELT_PARAM_APP_MODE home=$APP_HOME from=$APP_FROM_ENV_D\" > \"$out\"\n\
         echo \"dib=$DIB_RELEASE phase=$SMELT_PHASE image=$SMELT_IMAGE_NAME arch=$ARCH\" >> \"$out\"\n\
         test -d \"$TMP_HOOKS_PATH\" && test -f \"$ELEMENT_DIR/element.toml\" && echo dirs-ok >> \"$out\"\n",
    );
    dir.build_into("out", &["--set", "app.mode=slow"], &[("DIB_RELEASE", "bookworm")]).ok();
    assert_eq!(
        member(&dir.path("out/env.cpio.zst"), "env.txt"),
        "ports=80 443 mode=slow home=/opt/app from=slow-mode\ndib=bookworm phase=post-root.d image=env arch=amd64\ndirs-ok\n"
    );
}

#[test]
fn offline_hooks_have_no_network() {
    let dir = Dir::new();
    dir.image(&Image::new("off", &["app"]));
    dir.write(
        "elements/app/post-root.d/10-net",
        "#!/bin/sh\ntail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ' ' > \"$TARGET_ROOT/interfaces\"\n",
    );
    dir.build(&["--offline"]).ok();
    let listing = member(&dir.path("out/off.cpio.zst"), "interfaces");
    assert_eq!(listing, "lo ", "an --offline hook saw more than loopback");
    dir.build(&[]).ok();
    let online = member(&dir.path("out/off.cpio.zst"), "interfaces");
    assert_ne!(online, "lo ", "without --offline the host's interfaces are visible");
}

#[test]
fn hook_changes_are_attributed_and_prune_removes_what_it_says() {
    let dir = Dir::new();
    dir.image(&Image::new("attr", &["base", "app", "slim"]));
    dir.write("elements/base/element.toml", "description = \"base\"\n");
    dir.write("elements/base/root/usr/share/doc/a/README", &"r".repeat(1000));
    dir.write("elements/base/root/usr/share/doc/keep/LICENSE", "MIT\n");
    dir.write("elements/base/root/etc/app.conf", "port = 1\n");
    dir.write("elements/app/element.toml", "description = \"app\"\n");
    dir.write(
        "elements/app/post-root.d/10-app",
        "#!/bin/sh\nset -e\nmkdir -p \"$TARGET_ROOT/opt/app\"\nhead -c 3000 /dev/zero > \"$TARGET_ROOT/opt/app/data\"\n\
         echo 'port = 2' > \"$TARGET_ROOT/etc/app.conf\"\n",
    );
    dir.write(
        "elements/slim/element.toml",
        "description = \"slim\"\n[prune]\nremove = [\"usr/share/doc/**\"]\nkeep = [\"usr/share/doc/keep/**\"]\n",
    );
    dir.build(&[]).ok();
    let r = manifest(&dir);
    assert_eq!(entry(&r, "/opt/app/data").unwrap()["element"], "app");
    assert_eq!(
        entry(&r, "/etc/app.conf").unwrap()["element"],
        "app",
        "a file a hook rewrote belongs to the hook's element"
    );
    assert_eq!(entry(&r, "/etc/app.conf").unwrap()["size"], 9);
    assert!(entry(&r, "/usr/share/doc/a/README").is_none());
    assert!(entry(&r, "/usr/share/doc/a").is_none());
    assert_eq!(entry(&r, "/usr/share/doc/keep/LICENSE").unwrap()["element"], "base");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("out/report.json")).unwrap()).unwrap();
    assert_eq!(report["tree"]["elements"]["app"]["apparent_bytes"], 3009);
    assert_eq!(report["tree"]["elements"]["base"]["apparent_bytes"], 4);
}

/// Regression: an element whose `root/` held device nodes (a root tree copied as root)
/// was refused. They are recorded with the numbers `stat` gives, as `base-rootfs` does;
/// FIFOs too. Making the char device needs root; the FIFO does not.
#[test]
fn device_nodes_and_fifos_in_an_elements_root_are_recorded() {
    let dir = Dir::new();
    dir.image(&Image::new("d", &["copied"]).set("compression", "\"none\""));
    dir.write("elements/copied/root/etc/hostname", "copied\n");
    let root = dir.path("elements/copied/root");
    let is_root = unsafe { libc::geteuid() } == 0;
    sh(&format!("mkdir -p {0}/dev {0}/run && mkfifo -m 0620 {0}/run/initctl", root.display()));
    if is_root {
        sh(&format!(
            "mknod -m 0600 {0}/dev/console c 5 1 && mknod -m 0660 {0}/dev/vdb b 254 16",
            root.display()
        ));
    } else {
        eprintln!(
            "device_nodes_and_fifos_in_an_elements_root_are_recorded: not root, checking the FIFO only"
        );
    }
    dir.build(&["-q"]).ok();
    let listing = sh(&format!("cpio -tv --numeric-uid-gid --quiet < {}", dir.path("out/d.cpio").display()));
    // mode, links, owner, group, then the size or a device's `major, minor`.
    let line = |name: &str, fields: usize| {
        let l = listing
            .lines()
            .find(|l| l.ends_with(&format!(" {name}")))
            .unwrap_or_else(|| panic!("{name}:\n{listing}"));
        l.split_whitespace().take(fields).collect::<Vec<_>>().join(" ")
    };
    assert_eq!(line("run/initctl", 5), "prw--w---- 1 0 0 0");
    if is_root {
        assert_eq!(line("dev/console", 6), "crw------- 1 0 0 5, 1");
        assert_eq!(line("dev/vdb", 6), "brw-rw---- 1 0 0 254, 16");
    }
    let report = manifest(&dir);
    if is_root {
        let console = entry(&report, "/dev/console").expect("dev/console in the report");
        assert_eq!((console["kind"].as_str(), &console["rdev"]), (Some("c"), &serde_json::json!([5, 1])));
        assert_eq!(entry(&report, "/dev/vdb").unwrap()["rdev"], serde_json::json!([254, 16]));
    }
    assert_eq!(entry(&report, "/run/initctl").unwrap()["kind"], "p");
}
